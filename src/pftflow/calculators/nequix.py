"""Nequix (JAX) force backend: local ``.nqx`` weights through the ``nequix`` package.

Optional extra (``pip install -e .[nequix]`` is *not* enough offline / CPU-only: use
``scripts/install_nequix.sh``, which installs CPU JAX and then ``nequix --no-deps``).

* Weights: a local ``.nqx`` file, or a model name (``nequix-mp-1``, ``nequix-mp-1-pft``) resolved to a file
  in ``$PFTFLOW_NEQUIX_DIR``, ``../shared/models/nequix`` (next to the working directory or the repository)
  or nequix's own cache ``~/.cache/nequix/models``.  Nothing is downloaded: a name with no local file is an
  error that says where to put it.
* The model is the one loaded by the package's own ASE calculator
  (``NequixCalculator(model_path=..., backend="jax", use_kernel=False)``); the graph is built by the
  package's ``preprocess_graph`` (float32, matscipy neighbour list), so E/F/σ equal the package's calculator.
* JIT: XLA compiles once per padded graph shape (first call 20-40 s on CPU).  The package's own calculator
  pads nodes to multiples of 8 and edges to multiples of 64, so almost every new structure of a campaign
  recompiles.  Here node and edge counts are rounded up on a geometric ladder (``steps_per_octave`` sizes per
  factor 2, default 4: at most 25 % padding), so the structures of a campaign share a handful of shapes;
  :attr:`NequixForceCalculator.n_compiles` counts the traces (= compilations) of this instance.
* Hessian rows (force constants from the model Hessian): forward-over-reverse
  ``jax.jvp(jax.grad(E))`` on the same padded graph, three directions of one atom per call (vmapped), compiled
  once per shape like E/F/σ.

Units: Å, eV, eV/Å, eV/Å³ (ASE sign, positive = tensile), Hessian eV/Å².
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from pftflow.calculators.base import ForceCalculator, ForceResults, file_sha256

#: nequix's own download cache (we only ever read from it)
NEQUIX_CACHE_DIR = Path("~/.cache/nequix/models").expanduser()
_REPO_ROOT = Path(__file__).resolve().parents[3]

INSTALL_HINT = (
    "the 'nequix' extra is not installed: run `bash scripts/install_nequix.sh` (CPU JAX, then "
    "`pip install --no-deps nequix`); plain `pip install nequix` pulls CUDA JAX"
)


def _pkg_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def nequix_model_dirs() -> list[Path]:
    """Folders searched for ``<name>.nqx``, in order."""
    dirs = []
    if os.environ.get("PFTFLOW_NEQUIX_DIR"):
        dirs.append(Path(os.environ["PFTFLOW_NEQUIX_DIR"]).expanduser())
    dirs += [Path.cwd().parent / "shared" / "models" / "nequix", _REPO_ROOT.parent / "shared" / "models" / "nequix"]
    dirs.append(NEQUIX_CACHE_DIR)
    out: list[Path] = []
    for d in dirs:
        if d not in out:
            out.append(d)
    return out


def resolve_nequix_model(model: str) -> Path:
    """Path of a local ``.nqx`` file for ``model`` (a path or a model name); never downloads."""
    p = Path(model).expanduser()
    if p.is_file():
        if p.suffix != ".nqx":
            raise ValueError(f"Nequix model file {p}: expected a JAX '.nqx' file (field 'model'); convert torch '.pt' models with nequix first")
        return p
    if p.suffix == ".nqx" or os.sep in model:
        raise FileNotFoundError(f"Nequix model file not found: {model} (field 'model': give an existing .nqx path)")
    candidates = [d / f"{model}.nqx" for d in nequix_model_dirs()]
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(
        f"Nequix model '{model}' is not a local file; pftflow never downloads at run time. Copy {model}.nqx "
        f"into $PFTFLOW_NEQUIX_DIR or one of ({', '.join(str(c.parent) for c in candidates)}), or set the "
        "calculator's 'model' field to the path of a .nqx file."
    )


#: edges per chunk of each convolution when a graph has more edges than this (``NequixForceCalculator(edge_chunk=None)``,
#: :mod:`pftflow.calculators.nequix_edges`); measured on mp-19941 (1176 atoms, 49 152 edges): benchmarks/README.md,
#: "Peak memory"
NEQUIX_EDGE_CHUNK = 8192
#: edges per atom of the padded graph of mp-19941 (49 152 / 1176), for the memory estimate of edge-chunked calls
NEQUIX_EDGES_PER_ATOM = 42
#: compiled shapes a calculator keeps before it drops its jitted functions and JAX's caches: each compiled shape holds
#: 1000-1300 memory mappings on CPU (benchmarks/nequix_shapes_maps.py), and a whole campaign over ~23 padded sizes per
#: model died in an LLVM "Cannot allocate memory" near the 65530 mappings of vm.max_map_count (benchmarks/README.md)
NEQUIX_MAX_COMPILED_SHAPES = 8


def bucket_size(n: int, minimum: int = 16, steps_per_octave: int = 4) -> int:
    """Smallest size >= ``n`` on the ladder ``minimum``, then ``steps_per_octave`` sizes per factor 2
    (4: 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, ...).  Padded shapes on this ladder are shared by
    many structures, so XLA recompiles rarely; the padding overhead is below 1/steps_per_octave."""
    n = int(n)
    if n <= minimum:
        return int(minimum)
    octave = 2 ** int(math.floor(math.log2(n)))
    step = max(1, octave // steps_per_octave)
    return int(-(-n // step) * step)


class NequixForceCalculator(ForceCalculator):
    """Nequix through JAX, batch-first, with shape bucketing and an analytic Hessian.

    ``model``: ``.nqx`` path or model name (see :func:`resolve_nequix_model`); ``batch_size``: structures
    per jitted call (several small supercells in one padded graph pays on a GPU; 1 is best on CPU);
    ``steps_per_octave``: padding ladder resolution; ``device``: ``"cpu"``, ``"gpu"`` or ``None`` (JAX's
    default device: the GPU when a CUDA JAX sees one); ``edge_chunk``: edges per chunk of each convolution
    (:mod:`pftflow.calculators.nequix_edges`: same results, memory of one chunk's tensor product instead of all
    edges'): ``None`` chunks graphs with more than :data:`NEQUIX_EDGE_CHUNK`
    edges by that many, ``0`` never chunks.  Lower it when a job is killed for memory.
    """

    backend = "nequix"
    # measured 2026-12-06 (benchmarks/memory_profile.py, JAX CPU): nequix-mp-1 loaded 0.27 GiB; one 1176-atom cell
    # (mp-19941, padded to 1280 nodes / 49152 edges) unchunked 7.8 GiB above it (XLA temporaries 7.2 GiB): 6.6 MB per
    # atom.  Edge-chunked (2026-12-07, 8192 edges = 196 atoms' edges at once): 1.34 GiB above it = 6.6 MB x 196 + ~0
    memory_model_GiB = 0.27
    memory_per_atom_GiB = 6.6e-3

    def __init__(
        self,
        model: str = "nequix-mp-1",
        batch_size: int = 1,
        steps_per_octave: int = 4,
        device: str | None = None,
        edge_chunk: int | None = None,
    ):
        super().__init__(name=f"nequix:{Path(model).stem if model.endswith('.nqx') else model}")
        if int(batch_size) < 1:
            raise ValueError(f"nequix calculator: field 'batch_size' must be >= 1, got {batch_size}")
        if edge_chunk is not None and int(edge_chunk) < 0:
            raise ValueError(f"nequix calculator: field 'edge_chunk' must be >= 1 edge (or 0: never chunk), got {edge_chunk}")
        self.edge_chunk = None if edge_chunk is None else int(edge_chunk)
        self._chunked: dict[int, Any] = {}
        self.model = model
        self.batch_size = int(batch_size)
        self.steps_per_octave = int(steps_per_octave)
        self.device = device
        self._calc = None
        self._efs_fn = None
        self._hess_fn = None
        #: number of XLA compilations (traces) of the E/F/σ and Hessian functions of this instance
        self.n_compiles = 0
        self.n_hessian_compiles = 0
        self._compiles_at_clear = 0
        #: wall seconds spent in calls that compiled (first call of a shape), for benchmarks
        self.compile_wall_s: list[float] = []

    @property
    def edge_chunk_size(self) -> int:
        """Edges per convolution chunk in effect (0: never chunk)."""
        return NEQUIX_EDGE_CHUNK if self.edge_chunk is None else self.edge_chunk

    def atoms_at_once(self, n_atoms: int, n_structures: int) -> int:
        """Atoms of one compiled call: ``batch_size`` cells (padding not counted); where the call is edge-chunked,
        the atoms whose edges one chunk holds (:data:`NEQUIX_EDGES_PER_ATOM`), since the per-edge tensor product
        sets the peak."""
        atoms = int(n_atoms) * min(max(1, int(n_structures)), self.batch_size)
        size = self.edge_chunk_size
        if size and atoms * NEQUIX_EDGES_PER_ATOM > size:
            return min(atoms, -(-size // NEQUIX_EDGES_PER_ATOM))
        return atoms

    # ------------------------------------------------------------------------------ loading
    def model_path(self) -> Path:
        return resolve_nequix_model(self.model)

    def ase_calculator(self):
        """The nequix package's own ASE calculator on the local weights (JAX, no custom kernels)."""
        if self._calc is None:
            try:
                from nequix.calculator import NequixCalculator
            except ImportError as exc:
                raise ImportError(f"nequix backend: {INSTALL_HINT} ({exc})") from exc
            path = self.model_path()  # resolved first: NequixCalculator would download a bare name
            self._calc = NequixCalculator(model_path=str(path), backend="jax", use_kernel=False)
        return self._calc

    def supported_species(self) -> frozenset[str] | None:
        """Elements of the model's ``atomic_numbers`` (the .nqx file's first line is its JSON config; read
        without JAX); None when the weights are not here (the run reports that)."""
        import json

        from ase.data import chemical_symbols

        try:
            with open(self.model_path(), "rb") as fh:
                z = json.loads(fh.readline().decode()).get("atomic_numbers")
        except (FileNotFoundError, ValueError):
            return None
        return frozenset(chemical_symbols[int(x)] for x in z) if z else None

    def provenance(self) -> dict[str, Any]:
        path = self.model_path()
        return {
            "name": self.name,
            "backend": self.backend,
            "model": self.model,
            "file": path.name,
            "sha256": file_sha256(path),
            "version": _pkg_version("nequix"),
            "versions": {p: _pkg_version(p) for p in ("nequix", "jax", "jaxlib", "equinox", "e3nn-jax", "jraph", "matscipy")},
            "jax_backend": self._jax_backend(),
            "edge_chunk": self.edge_chunk,
            "dtype": "float32",
        }

    def _jax_backend(self) -> str | None:
        try:
            import jax

            return self._device().platform if self.device else jax.default_backend()
        except Exception:  # noqa: BLE001 - jax missing: provenance still reports the file
            return None

    def _device(self):
        import jax

        if self.device is None:
            return None
        try:
            return jax.devices(self.device)[0]
        except RuntimeError as exc:
            raise RuntimeError(f"nequix calculator: field 'device'={self.device!r} is not available to JAX ({exc}); use 'cpu' or leave it unset") from exc

    # ------------------------------------------------------------------------------ graphs
    def _graph(self, structures: Sequence[Atoms]):
        """One padded jraph graph of ``structures`` (n_graph = batch_size + 1 always, nodes and edges on
        the bucket ladder) -> (graph, n_atoms list, n_edges total)."""
        import jraph
        from nequix.data import dict_to_graphstuple, preprocess_graph

        calc = self.ase_calculator()
        graphs = []
        for a in structures:
            if not np.all(a.pbc):
                raise ValueError(f"nequix calculator: structure {a.get_chemical_formula()} is not periodic in 3D (field 'pbc'); pftflow computes bulk phonons only")
            unknown = sorted(int(z) for z in set(a.numbers) - set(calc.atom_indices))
            if unknown:
                raise ValueError(f"nequix model {self.model}: no weights for atomic numbers {unknown} (field 'model': pick a model trained on these elements)")
            graphs.append(dict_to_graphstuple(preprocess_graph(a, calc.atom_indices, calc.cutoff, False)))
        g = jraph.batch_np(graphs) if len(graphs) > 1 else graphs[0]
        n_node = int(np.sum(g.n_node))
        n_edge = int(np.sum(g.n_edge))
        s = self.steps_per_octave
        padded = jraph.pad_with_graphs(
            g,
            n_node=bucket_size(n_node + 1, 16, s),
            # 2 % headroom: a displaced copy that gains a few neighbours keeps the undisplaced cell's shape
            n_edge=bucket_size(max(int(math.ceil(1.02 * n_edge)), 1), 64, s),
            n_graph=max(len(structures), self.batch_size) + 1,
        )
        return padded, [len(a) for a in structures]

    # ------------------------------------------------------------------------------ E / F / σ
    def _jax_model(self, graph):
        """The loaded model, with edge-chunked convolutions where the graph has more edges than the chunk.
        (Force and Hessian jobs only: :meth:`ase_calculator`, used by relaxations of unit cells, stays unchunked.)"""
        from pftflow.calculators.nequix_edges import chunk_edges  # local: needs the optional JAX extra

        model = self.ase_calculator().model
        size = self.edge_chunk_size
        if size == 0 or graph.senders.shape[0] <= size:
            return model
        if size not in self._chunked:
            self._chunked[size] = chunk_edges(model, size)
        return self._chunked[size]

    def _efs(self):
        if self._efs_fn is None:
            import equinox as eqx

            def efs(model, graph):
                self.n_compiles += 1  # Python side effect: runs only while tracing (= compiling)
                return model(graph)

            self._efs_fn = eqx.filter_jit(efs)
        return self._efs_fn

    def _run(self, fn, *args):
        import jax

        dev = self._device()
        n0 = self.n_compiles + self.n_hessian_compiles
        t0 = time.perf_counter()
        if dev is None:
            out = jax.block_until_ready(fn(*args))
        else:
            with jax.default_device(dev):
                out = jax.block_until_ready(fn(*args))
        n1 = self.n_compiles + self.n_hessian_compiles
        if n1 > n0:
            self.compile_wall_s.append(time.perf_counter() - t0)
        if n1 - self._compiles_at_clear >= NEQUIX_MAX_COMPILED_SHAPES:
            # bound the executables held for the whole process (calculators are cached per campaign): the next call
            # of a shape recompiles it
            self._efs_fn = self._hess_fn = None
            jax.clear_caches()
            self._compiles_at_clear = n1
        return out

    def compute(self, structures: Sequence[Atoms], *, stress: bool = True, progress: bool = False, desc: str | None = None) -> ForceResults:
        from tqdm.auto import tqdm

        energies, forces, stresses = [], [], []
        chunks = [structures[i : i + self.batch_size] for i in range(0, len(structures), self.batch_size)]
        for chunk in tqdm(chunks, desc=desc or f"{self.name} forces", disable=None if progress else True, leave=False):
            graph, n_atoms = self._graph(chunk)
            e, f, s = self._run(self._efs(), self._jax_model(graph), graph)
            e, f = np.asarray(e, dtype=float), np.asarray(f, dtype=float)
            s = None if s is None else np.asarray(s, dtype=float)
            start = 0
            for k, n in enumerate(n_atoms):
                energies.append(float(e[k]))
                forces.append(f[start : start + n].copy())
                start += n
                if stress and s is not None:
                    m = s[k]  # full 3x3 -> Voigt (xx, yy, zz, yz, xz, xy)
                    stresses.append(np.array([m[0, 0], m[1, 1], m[2, 2], m[1, 2], m[0, 2], m[0, 1]]))
        return ForceResults(
            energies_eV=np.array(energies),
            forces_eV_per_A=forces,
            stresses_eV_per_A3=np.array(stresses) if stress and stresses else None,
            provenance=self.provenance(),
        )

    # ------------------------------------------------------------------------------ Hessian
    def _hess(self):
        if self._hess_fn is None:
            import equinox as eqx
            import jax
            import jax.numpy as jnp

            def rows(model, graph, atom):
                """d²E/dr_atom,a dr (3, n_pad, 3) by forward-over-reverse (jvp of grad), eV/Å²."""
                self.n_hessian_compiles += 1
                cell_per_edge = jnp.repeat(
                    graph.globals["cell"], graph.n_edge, axis=0, total_repeat_length=graph.edges["shifts"].shape[0]
                )
                offsets = jnp.einsum("ij,ijk->ik", graph.edges["shifts"], cell_per_edge)

                def energy(pos):
                    r = pos[graph.senders] - pos[graph.receivers] + offsets
                    return jnp.sum(model.node_energies(r, graph.nodes["species"], graph.senders, graph.receivers))

                pos = graph.nodes["positions"]
                grad = jax.grad(energy)
                basis = jnp.zeros((3,) + pos.shape, pos.dtype).at[jnp.arange(3), atom, jnp.arange(3)].set(1.0)
                return jax.vmap(lambda v: jax.jvp(grad, (pos,), (v,))[1])(basis)

            self._hess_fn = eqx.filter_jit(rows)
        return self._hess_fn

    def hessian_rows(self, atoms: Atoms, atom_indices: Sequence[int]) -> np.ndarray:
        """Rows of the Hessian d²E/du_i du_j (eV/Å²) for the atoms ``atom_indices``:
        array (len(atom_indices), 3, N, 3), entry [k, a, j, b] = Φ(i_k a, j b)."""
        import jax.numpy as jnp

        graph, (n,) = self._graph([atoms])
        out = np.zeros((len(atom_indices), 3, n, 3))
        for k, i in enumerate(atom_indices):
            if not 0 <= int(i) < n:
                raise IndexError(f"hessian_rows: atom index {i} outside 0..{n - 1}")
            h = self._run(self._hess(), self._jax_model(graph), graph, jnp.asarray(int(i), dtype=jnp.int32))
            out[k] = np.asarray(h, dtype=float)[:, :n, :]
        return out
