"""Force-calculator backends: SevenNet, CHGNet, MACE (local model files) and any ASE calculator.

All weights are loaded from local files; nothing is downloaded at run time.  A backend whose
weights are not on disk fails with a message that says which file is missing and how to get it.
"""

from __future__ import annotations

import importlib
import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from ase import Atoms

from pftflow.calculators.base import ForceCalculator, ForceResults, file_sha256
from pftflow.calculators.batching import CHGNET_BATCH_ATOMS, chgnet_compute_batched
from pftflow.calculators.model_files import prepare_sevenn_import, resolve_mace_model  # noqa: F401  (public here too)

#: SevenNet cells with at least this many atoms recompute each interaction layer in the backward pass instead of
#: keeping its intermediates (SevenNetCalculator(checkpoint_atoms=None); costs measured in
#: pftflow.calculators.sevennet_layers: 960 atoms -46 % memory at +11 % wall, 360 atoms -36 % at +27 %)
SEVENNET_CHECKPOINT_ATOMS = 512


def _pkg_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def default_device() -> str:
    """``cuda`` when a GPU is visible to torch, else ``cpu``."""
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


# ---------------------------------------------------------------------------------------- SevenNet
class SevenNetCalculator(ForceCalculator):
    """SevenNet with the checkpoints shipped inside the ``sevenn`` package (e.g. ``7net-0``)."""

    backend = "sevennet"
    # measured 2026-12-06 (benchmarks/memory_profile.py): SevenNet-0 loaded 0.28 GiB; one 360-atom cell 0.98 GiB
    memory_model_GiB = 0.28
    memory_per_atom_GiB = 2.7e-3
    # measured 2026-12-07 (960-atom mp-7943 cells, SevenNet-0, one core), layers checkpointed: 1.75 GiB above the model
    # for one call (a probe by hand), 1.84 GiB after 3 (benchmarks/sevennet_checkpoint.py; 3.39 GiB without)
    memory_per_atom_checkpointed_GiB = 1.9e-3

    def __init__(self, model: str = "7net-0", device: str | None = None, modal: str | None = None, checkpoint_atoms: int | None = None):
        """``checkpoint_atoms``: cells of at least this many atoms recompute each interaction layer in the backward
        pass instead of keeping its intermediates (:mod:`pftflow.calculators.sevennet_layers`: the same forces, about
        half the memory); ``None``: :data:`SEVENNET_CHECKPOINT_ATOMS` (512),
        ``0``: never.  Lower it when a job is killed for memory."""
        super().__init__(name=f"sevennet:{model}")
        self.model = model
        self.device = device or default_device()
        self.modal = modal
        valid = isinstance(checkpoint_atoms, (int, float)) and not isinstance(checkpoint_atoms, bool) and float(checkpoint_atoms).is_integer()
        if checkpoint_atoms is not None and not (valid and checkpoint_atoms >= 0):
            raise ValueError(f"sevennet calculator: field 'checkpoint_atoms' must be an integer >= 1 atom (or 0: never checkpoint), got {checkpoint_atoms!r}")
        self.checkpoint_atoms = SEVENNET_CHECKPOINT_ATOMS if checkpoint_atoms is None else int(checkpoint_atoms)
        self._calc = None

    def checkpoint_path(self) -> str:
        if os.path.isfile(self.model):
            return self.model
        prepare_sevenn_import()
        from sevenn.util import pretrained_name_to_path

        return str(pretrained_name_to_path(self.model))

    def ase_calculator(self):
        if self._calc is None:
            prepare_sevenn_import()
            import torch
            from sevenn.calculator import SevenNetCalculator as _Calc

            from pftflow.calculators.sevennet_layers import checkpoint_layers  # local: keeps torch off the import path

            kwargs = {"device": self.device}
            if self.modal:
                kwargs["modal"] = self.modal
            self._calc = _Calc(self.checkpoint_path(), **kwargs)
            if self.checkpoint_atoms and isinstance(self._calc.model, torch.nn.Module) and not isinstance(self._calc.model, torch.jit.ScriptModule):
                checkpoint_layers(self._calc.model, self.checkpoint_atoms)
        return self._calc

    def evaluation_GiB(self, n_atoms: int, n_structures: int) -> float:
        """Peak memory of one call above the loaded model: checkpointed from ``checkpoint_atoms`` on."""
        per_atom = self.memory_per_atom_checkpointed_GiB if 0 < self.checkpoint_atoms <= n_atoms else self.memory_per_atom_GiB
        return per_atom * self.atoms_at_once(n_atoms, n_structures)

    def supported_species(self) -> frozenset[str] | None:
        """The elements of the checkpoint's ``config["chemical_species"]`` (SevenNet-0: 89); None for a
        file that is not a training checkpoint (e.g. a deployed TorchScript model).  Reads the
        checkpoint's dict (~10 MB), does not build the network."""
        if os.path.isfile(self.model):
            path = self.model
        else:
            try:
                path = self.checkpoint_path()
            except ValueError as exc:  # sevenn: 'Not a valid potential'
                raise ValueError(f"sevennet model '{self.model}' is neither a file nor a checkpoint name sevenn knows, e.g. 7net-0 ({exc})") from None
        import torch

        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=False)
        except Exception:  # noqa: BLE001 - not a checkpoint dict: unknown, the run loads it its own way
            return None
        species = (ckpt.get("config") or {}).get("chemical_species") if isinstance(ckpt, dict) else None
        return frozenset(str(x) for x in species) if isinstance(species, (list, tuple)) and species else None

    def hessian_rows(self, atoms: Atoms, atom_indices: Sequence[int]) -> np.ndarray:
        """Hessian rows (len(idx), 3, N, 3) eV/Å² by double backward (the training energy model, float64)."""
        if self.modal:
            raise NotImplementedError(f"{self.name}: Hessian rows of multi-modal SevenNet (modal={self.modal!r}) are not supported; use force_constants: displacements")
        from pftflow.calculators.energy_models import cached_energy_model_rows  # local: keeps torch off the import path

        return cached_energy_model_rows(self, {"backend": "sevennet", "model": self.model}, atoms, atom_indices)

    def provenance(self) -> dict[str, Any]:
        path = self.checkpoint_path()
        return {
            "name": self.name,
            "backend": self.backend,
            "model": self.model,
            "version": _pkg_version("sevenn"),
            "file": os.path.basename(path),
            "sha256": file_sha256(path) if os.path.isfile(path) else None,
            "checkpoint_atoms": self.checkpoint_atoms,
        }


# ---------------------------------------------------------------------------------------- CHGNet
class CHGNetCalculator(ForceCalculator):
    """CHGNet with the weights shipped inside the ``chgnet`` package.

    Evaluates structures in graph batches of at most ``batch_atoms`` atoms (at least one structure per batch), so
    the structures per batch follow from the cell size; None takes :data:`~pftflow.calculators.batching.CHGNET_BATCH_ATOMS`.
    Forces and stresses are first derivatives only (:func:`~pftflow.calculators.batching.chgnet_efs`): peak memory
    ~0.41 MB per atom of a batch above the loaded model.  Lower ``batch_atoms`` when a job is killed for memory.
    """

    backend = "chgnet"
    # measured 2026-12-06 (benchmarks/memory_profile.py, 360-atom cells, first derivatives): loaded 0.05 GiB,
    # 0.19 / 0.66 / 2.38 GiB for batches of 1 / 4 / 16 cells: 0.044 GiB + 0.41 MB per atom of a batch
    memory_model_GiB = 0.10
    memory_per_atom_GiB = 4.1e-4

    def __init__(self, model: str = "0.3.0", device: str | None = None, batch_atoms: int | None = None):
        super().__init__(name=f"chgnet:{model}")
        if batch_atoms is not None and int(batch_atoms) < 1:
            raise ValueError(f"chgnet calculator: field 'batch_atoms' must be >= 1 atom, got {batch_atoms}")
        self.model_version = model
        self.device = device or default_device()
        self.batch_atoms = CHGNET_BATCH_ATOMS if batch_atoms is None else int(batch_atoms)
        self._model = None

    def _load(self):
        if self._model is None:
            from chgnet.model import CHGNet

            self._model = CHGNet.load(model_name=self.model_version, use_device=self.device, verbose=False)
        return self._model

    def supported_species(self) -> frozenset[str]:
        """H to Pu (Z = 1-94): CHGNet's atom embedding has one row per element up to Z = 94."""
        from ase.data import chemical_symbols

        return frozenset(chemical_symbols[1:95])

    def hessian_rows(self, atoms: Atoms, atom_indices: Sequence[int]) -> np.ndarray:
        """Hessian rows (len(idx), 3, N, 3) eV/Å² by double backward through CHGNet's force graph (float32)."""
        from pftflow.calculators.energy_models import chgnet_hessian_rows  # local: keeps torch off the import path

        return chgnet_hessian_rows(self._load(), atoms, atom_indices)

    def ase_calculator(self):
        from chgnet.model.dynamics import CHGNetCalculator as _Calc

        return _Calc(model=self._load(), use_device=self.device)

    def atoms_at_once(self, n_atoms: int, n_structures: int) -> int:
        """Atoms of one graph batch: as many cells as fit in ``batch_atoms`` (one at least)."""
        return int(n_atoms) * min(max(1, int(n_structures)), max(1, self.batch_atoms // max(1, int(n_atoms))))

    def compute(self, structures: Sequence[Atoms], *, stress=True, progress=False, desc=None) -> ForceResults:
        return chgnet_compute_batched(self, structures, stress=stress, progress=progress, desc=desc, batch_atoms=self.batch_atoms)

    def provenance(self) -> dict[str, Any]:
        import chgnet

        path = Path(chgnet.__file__).parent / "pretrained"
        files = sorted(path.rglob(f"*{self.model_version}*.pth.tar")) if path.exists() else []
        return {
            "name": self.name,
            "backend": self.backend,
            "version": _pkg_version("chgnet"),
            "file": files[0].name if files else None,
            "sha256": file_sha256(files[0]) if files else None,
        }


# ---------------------------------------------------------------------------------------- MACE
class MACECalculator(ForceCalculator):
    """MACE from a local model file (or a foundation-model name found in the local cache)."""

    backend = "mace"

    def __init__(self, model: str, device: str | None = None, default_dtype: str = "float64"):
        super().__init__(name=f"mace:{Path(model).stem if os.sep in model or model.endswith('.model') else model}")
        self.model = model
        self.device = device or default_device()
        self.default_dtype = default_dtype
        self._calc = None

    def ase_calculator(self):
        if self._calc is None:
            from mace.calculators import MACECalculator as _Calc

            path = resolve_mace_model(self.model)
            self._calc = _Calc(model_paths=str(path), device=self.device, default_dtype=self.default_dtype)
        return self._calc

    def supported_species(self) -> frozenset[str] | None:
        """The elements of the model's ``atomic_numbers``; None when the model file is not here yet
        (the run reports that).  Loads the model file once (torch.load on the CPU)."""
        try:
            path = resolve_mace_model(self.model)
        except FileNotFoundError:
            return None
        import torch
        from ase.data import chemical_symbols

        model = torch.load(str(path), map_location="cpu", weights_only=False)
        z = getattr(model, "atomic_numbers", None)
        if z is None:
            return None
        z = z.detach().cpu().numpy() if hasattr(z, "detach") else np.asarray(z)
        return frozenset(chemical_symbols[int(x)] for x in np.ravel(z))

    def hessian_rows(self, atoms: Atoms, atom_indices: Sequence[int]) -> np.ndarray:
        """Hessian rows (len(idx), 3, N, 3) eV/Å² by double backward (the training energy model, float64)."""
        from pftflow.calculators.energy_models import cached_energy_model_rows  # local: keeps torch off the import path

        return cached_energy_model_rows(self, {"backend": "mace", "model": self.model}, atoms, atom_indices)

    def provenance(self) -> dict[str, Any]:
        path = resolve_mace_model(self.model)
        return {
            "name": self.name,
            "backend": self.backend,
            "version": _pkg_version("mace-torch"),
            "file": path.name,
            "sha256": file_sha256(path),
        }


# ---------------------------------------------------------------------------------------- ASE
def import_object(import_path: str):
    """Import ``package.module:attr`` (or ``package.module.attr``)."""
    if ":" in import_path:
        mod, attr = import_path.split(":", 1)
    else:
        mod, _, attr = import_path.rpartition(".")
    if not mod:
        raise ValueError(f"import path '{import_path}' must look like 'package.module:ClassOrFunction'")
    try:
        obj = importlib.import_module(mod)
    except ImportError as exc:
        raise ImportError(f"cannot import module '{mod}' for calculator '{import_path}': {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise ImportError(f"module '{mod}' has no attribute '{attr}' (calculator '{import_path}')") from exc
    return obj


#: the GPAW reference factory of the quickstart
GPAW_FACTORY = "pftflow.calculators.gpaw_reference:make_gpaw_calculator"
#: peak-memory coefficients (model GiB, GiB per atom) of the ASE calculators that have them.  GPAW (the quickstart's
#: defaults, 16-atom cells): 0.3 GiB, from the quickstart's measured peak (benchmarks/README.md, "Peak memory"); its
#: growth with cell size is not measured.  EMT: negligible.  Any other import path: unknown (left out of the estimate).
ASE_MEMORY_GiB = {GPAW_FACTORY: (0.30, 0.0), "ase.calculators.emt:EMT": (0.0, 0.0)}


class ASECalculator(ForceCalculator):
    """Any ASE calculator given by import path and keyword arguments.

    This is how DFT codes other than VASP come in, e.g. GPAW through
    ``pftflow.calculators.gpaw_reference:make_gpaw_calculator``.  The callable is called with
    ``**kwargs`` and must return an ASE calculator.
    """

    backend = "ase"

    def __init__(self, import_path: str, kwargs: dict | None = None, name: str | None = None):
        super().__init__(name=name or import_path.replace(":", "."))
        self.import_path = import_path
        self.kwargs = dict(kwargs or {})
        self.memory_model_GiB, self.memory_per_atom_GiB = ASE_MEMORY_GiB.get(import_path, (None, None))

    def ase_calculator(self):
        factory = import_object(self.import_path)
        return factory(**self.kwargs)

    def supported_species(self) -> frozenset[str] | None:
        """ASE's EMT: the 11 elements of its parameter table (Al Cu Ag Au Ni Pd Pt C N O H); other
        calculators: None (unknown)."""
        if self.import_path.replace(":", ".") in ("ase.calculators.emt.EMT", "ase.calculators.emt.emt.EMT"):
            from ase.calculators.emt import parameters

            return frozenset(parameters)
        return None

    def provenance(self) -> dict[str, Any]:
        top = self.import_path.split(":")[0].split(".")[0]
        return {
            "name": self.name,
            "backend": self.backend,
            "import_path": self.import_path,
            "kwargs": self.kwargs,
            "version": _pkg_version(top) or getattr(importlib.import_module(top), "__version__", None),
        }


from pftflow.calculators.nequix import NequixForceCalculator  # noqa: E402  (imports JAX only when used)

BACKENDS = {
    "nequix": NequixForceCalculator,
    "sevennet": SevenNetCalculator,
    "chgnet": CHGNetCalculator,
    "mace": MACECalculator,
    "ase": ASECalculator,
}


def get_calculator(spec: dict | str | ForceCalculator) -> ForceCalculator:
    """Build a :class:`ForceCalculator` from a campaign-spec entry.

    Accepted forms: ``"sevennet"`` / ``"chgnet"``; ``{"backend": "sevennet", "model": "7net-0"}``;
    ``{"backend": "mace", "model": "path/to/file.model"}``;
    ``{"backend": "ase", "import_path": "pkg.mod:factory", "kwargs": {...}}``.
    Optional ``name`` overrides the display name; other keys go to the backend's constructor.
    """
    if isinstance(spec, ForceCalculator):
        return spec
    if isinstance(spec, str):
        spec = {"backend": spec}
    spec = dict(spec)
    backend = spec.pop("backend", None) or spec.pop("type", None)
    if backend not in BACKENDS:
        raise ValueError(f"unknown calculator backend {backend!r}; choose one of {sorted(BACKENDS)}")
    name = spec.pop("name", None)
    calc = BACKENDS[backend](**spec)
    if name:
        calc.name = name
    return calc


_CACHE: dict[str, ForceCalculator] = {}


def cached_calculator(spec: dict | str) -> ForceCalculator:
    """Like :func:`get_calculator`, but reuses a loaded model for an identical spec within this
    process (relax and force jobs of one campaign then load the weights once)."""
    import json

    key = json.dumps(spec, sort_keys=True, default=str)
    if key not in _CACHE:
        _CACHE[key] = get_calculator(spec)
    return _CACHE[key]
