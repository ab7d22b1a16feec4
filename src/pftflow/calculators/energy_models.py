"""Energy models: an MLIP's energy as a twice-differentiable function of positions and strain (the
adapters, their loading and provenance, :func:`predict` and the Hessian rows of the torch backends).

Forces, Hessians (:mod:`pftflow.phonons.hessian`) and the PFT loss (:mod:`pftflow.training.loss`) all stand
on these; they import nothing above :mod:`pftflow.calculators`.

Every adapter exposes ``energy(graph, positions_A, strain) -> (n_structures,) eV`` where ``positions_A``
(N_total, 3) Å and ``strain`` (n_structures, 3, 3) (dimensionless, symmetrised inside) are leaf tensors the
loss differentiates through (forces, stress, and the Hessian-vector product by double backward).  The
neighbour list is built once per structure (ASE ``neighbor_list``) and kept fixed: the training structures do
not move, only their derivatives are taken.

Backends: MACE (``mace.modules.MACE`` / ``ScaleShiftMACE`` modules or ``.model`` files) and SevenNet
(``sevenn`` checkpoints, e.g. the offline ``7net-0``).  We do not use the backends' own force heads because
they do not expose a strain input we control and (SevenNet) differentiate with respect to edge vectors.

Units: Å, eV; stress from these energies is eV/Å³ (ASE sign convention, positive = tensile).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from ase import Atoms
from ase.neighborlist import neighbor_list

from pftflow.calculators.base import file_sha256
from pftflow.calculators.model_files import prepare_sevenn_import, resolve_mace_model


# ----------------------------------------------------------------------------------------- graph batch
@dataclass
class GraphBatch:
    """Structures of different sizes concatenated into one graph (fixed neighbour list).

    positions_A (N, 3), cell_A (B, 3, 3), numbers (N,), batch (N,) structure index of each atom,
    ptr (B+1,), edge_index (2, E) with edge vector ``r[j] - r[i] + S @ cell`` for edge (i, j),
    unit_shifts (E, 3), n_atoms (B,), volume_A3 (B,).
    """

    positions_A: torch.Tensor
    cell_A: torch.Tensor
    numbers: torch.Tensor
    batch: torch.Tensor
    ptr: torch.Tensor
    edge_index: torch.Tensor
    unit_shifts: torch.Tensor
    n_atoms: torch.Tensor
    volume_A3: torch.Tensor

    @property
    def n_structures(self) -> int:
        return int(self.n_atoms.shape[0])

    def to(self, device=None, dtype=None) -> "GraphBatch":
        kw = {}
        for k, v in self.__dict__.items():
            if v.is_floating_point():
                kw[k] = v.to(device=device, dtype=dtype)
            else:
                kw[k] = v.to(device=device)
        return GraphBatch(**kw)


def build_graph(structures: Sequence[Atoms], cutoff_A: float, dtype=torch.float64) -> GraphBatch:
    """Batch ``structures`` into one :class:`GraphBatch` with neighbours within ``cutoff_A`` (Å)."""
    pos, cells, nums, batch, ei, shifts, nat, vol = [], [], [], [], [], [], [], []
    offset = 0
    for s, atoms in enumerate(structures):
        i, j, S = neighbor_list("ijS", atoms, float(cutoff_A), self_interaction=False)
        pos.append(np.asarray(atoms.positions, dtype=float))
        cells.append(np.asarray(atoms.cell[:], dtype=float))
        nums.append(atoms.numbers)
        batch.append(np.full(len(atoms), s))
        ei.append(np.stack([i, j]) + offset)
        shifts.append(S.astype(float))
        nat.append(len(atoms))
        vol.append(abs(np.linalg.det(atoms.cell[:])) if atoms.cell.rank == 3 else 1.0)
        offset += len(atoms)
    n = np.asarray(nat)
    return GraphBatch(
        positions_A=torch.tensor(np.concatenate(pos), dtype=dtype),
        cell_A=torch.tensor(np.stack(cells), dtype=dtype),
        numbers=torch.tensor(np.concatenate(nums), dtype=torch.long),
        batch=torch.tensor(np.concatenate(batch), dtype=torch.long),
        ptr=torch.tensor(np.concatenate([[0], np.cumsum(n)]), dtype=torch.long),
        edge_index=torch.tensor(np.concatenate(ei, axis=1), dtype=torch.long),
        unit_shifts=torch.tensor(np.concatenate(shifts), dtype=dtype),
        n_atoms=torch.tensor(n, dtype=torch.long),
        volume_A3=torch.tensor(np.asarray(vol), dtype=dtype),
    )


def strained_geometry(graph: GraphBatch, positions_A: torch.Tensor, strain: torch.Tensor):
    """Apply the symmetric strain of each structure to positions and cells.

    Returns (positions (N,3), cell (B,3,3), edge shift vectors (E,3) = S @ cell) in Å.
    """
    sym = 0.5 * (strain + strain.transpose(-1, -2))
    pos = positions_A + torch.einsum("ni,nij->nj", positions_A, sym[graph.batch])
    cell = graph.cell_A + torch.bmm(graph.cell_A, sym)
    sender = graph.edge_index[0]
    shifts = torch.einsum("ei,eij->ej", graph.unit_shifts, cell[graph.batch[sender]])
    return pos, cell, shifts


# ----------------------------------------------------------------------------------------- adapters
class EnergyModel(torch.nn.Module):
    """Base class: wraps a backend ``torch.nn.Module`` as ``self.model``."""

    backend = "base"

    def __init__(self, model: torch.nn.Module, cutoff_A: float, source: dict | None = None):
        super().__init__()
        self.model = model
        self.cutoff_A = float(cutoff_A)
        #: where the base model came from (path, sha256, name) - used for export/provenance
        self.source = dict(source or {})

    def build_graph(self, structures: Sequence[Atoms]) -> GraphBatch:
        p = next(self.model.parameters())
        return build_graph(structures, self.cutoff_A, dtype=p.dtype).to(device=p.device)

    def energy(self, graph: GraphBatch, positions_A: torch.Tensor, strain: torch.Tensor) -> torch.Tensor:
        """Total energy of each structure (B,) in eV (with delta weights W₀ + ΔW in delta mode)."""
        delta = getattr(self, "delta", None)
        if delta is not None:
            params = delta.effective(self.model, prefix="model.")
            return torch.func.functional_call(self, params, (graph, positions_A, strain), strict=False)
        return self(graph, positions_A, strain)

    def forward(self, graph: GraphBatch, positions_A: torch.Tensor, strain: torch.Tensor) -> torch.Tensor:
        """Backend energy (B,) eV of the module's current parameters."""
        raise NotImplementedError

    def parameter_groups(self) -> dict[str, list[str]]:
        """Layer groups ``embedding``, ``layer0`` ... ``layerK``, ``readout`` -> parameter names of ``self.model``."""
        groups: dict[str, list[str]] = {}
        for name, _ in self.model.named_parameters():
            groups.setdefault(self._group_of(name), []).append(name)
        return groups

    def _group_of(self, name: str) -> str:
        raise NotImplementedError

    @property
    def dtype(self):
        return next(self.model.parameters()).dtype

    @property
    def device(self):
        return next(self.model.parameters()).device


class MACEEnergyModel(EnergyModel):
    """MACE / ScaleShiftMACE (mace-torch).  ``head`` selects a head of multi-head models (default: first)."""

    backend = "mace"

    def __init__(self, model: torch.nn.Module, head: str | None = None, source: dict | None = None):
        super().__init__(model, float(model.r_max), source)
        heads = list(getattr(model, "heads", None) or ["Default"])
        self.head_index = heads.index(head) if head is not None else 0

    @classmethod
    def from_file(cls, path: str | os.PathLike, head: str | None = None, dtype=torch.float64, device="cpu"):
        model = torch.load(str(path), map_location=device, weights_only=False)
        model = model.to(dtype=dtype)
        return cls(model, head=head, source={"path": str(Path(path).resolve()), "sha256": file_sha256(path)})

    def forward(self, graph, positions_A, strain):
        pos, cell, shifts = strained_geometry(graph, positions_A, strain)
        z = self.model.atomic_numbers
        index = (graph.numbers.unsqueeze(-1) == z.unsqueeze(0)).long().argmax(-1)
        node_attrs = torch.nn.functional.one_hot(index, num_classes=len(z)).to(pos.dtype)
        data = {
            "positions": pos,
            "cell": cell.reshape(-1, 3),
            "node_attrs": node_attrs,
            "edge_index": graph.edge_index,
            "shifts": shifts,
            "unit_shifts": graph.unit_shifts,
            "batch": graph.batch,
            "ptr": graph.ptr,
            "head": torch.full((graph.n_structures,), self.head_index, dtype=torch.long, device=pos.device),
        }
        out = self.model(data, training=True, compute_force=False)
        return out["energy"]

    def _group_of(self, name: str) -> str:
        m = re.match(r"(interactions|products)\.(\d+)\.", name)
        if m:
            return f"layer{m.group(2)}"
        if name.startswith(("readouts", "scale_shift")):
            return "readout"
        return "embedding"


class SevenNetEnergyModel(EnergyModel):
    """SevenNet (``AtomGraphSequential``): runs every module except the force/stress output head."""

    backend = "sevennet"
    _SKIP = ("force_output",)

    def __init__(self, model: torch.nn.Module, config: dict, source: dict | None = None):
        import sevenn._keys as KEY

        super().__init__(model, float(config[KEY.CUTOFF]), source)
        self.config = config
        model.set_is_batch_data(True)

    @classmethod
    def from_checkpoint(cls, model: str = "7net-0", dtype=torch.float32, device="cpu"):
        """Load a SevenNet checkpoint file or a packaged name (``7net-0``), offline."""
        prepare_sevenn_import()
        from sevenn.util import model_from_checkpoint, pretrained_name_to_path

        path = model if os.path.isfile(model) else str(pretrained_name_to_path(model))
        net, config = model_from_checkpoint(path)
        net = net.to(device=device, dtype=dtype)
        src = {"name": model, "path": str(Path(path).resolve()), "sha256": file_sha256(path)}
        return cls(net, config, source=src)

    def forward(self, graph, positions_A, strain):
        import sevenn._keys as KEY

        pos, cell, shifts = strained_geometry(graph, positions_A, strain)
        i, j = graph.edge_index
        edge_vec = pos[j] - pos[i] + shifts
        data = {
            KEY.EDGE_IDX: graph.edge_index,
            KEY.EDGE_VEC: edge_vec,
            KEY.BATCH: graph.batch,
            KEY.NUM_ATOMS: graph.n_atoms,
            KEY.CELL_VOLUME: graph.volume_A3,
            KEY.ATOMIC_NUMBERS: graph.numbers,
            KEY.NODE_FEATURE: graph.numbers,
        }
        if self.model.eval_type_map:
            data[KEY.NODE_FEATURE] = self.model._atomic_numbers_to_onehot(graph.numbers)
        for name, module in self.model._modules.items():
            if name in self._SKIP:
                continue
            data = module(data)
            if name == "onehot_idx_to_onehot":  # sevenn hard-codes float32 one-hots
                for key in (KEY.NODE_FEATURE, KEY.NODE_ATTR):
                    if key in data:
                        data[key] = data[key].to(pos.dtype)
        return data[KEY.PRED_TOTAL_ENERGY]

    def _group_of(self, name: str) -> str:
        m = re.match(r"(\d+)_", name)
        if m:
            return f"layer{m.group(1)}"
        if name.startswith(("reduce_", "rescale_")):
            return "readout"
        return "embedding"


def load_energy_model(spec: dict | str, dtype: str | torch.dtype = "float32", device: str | None = None) -> EnergyModel:
    """Energy model from a calculator-style spec: ``{"backend": "sevennet", "model": "7net-0"}`` or
    ``{"backend": "mace", "model": "path.model", "head": ...}`` (foundation names resolved from the local cache)."""
    if isinstance(spec, str):
        spec = {"backend": spec}
    dt = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    backend = spec.get("backend")
    if backend == "sevennet":
        return SevenNetEnergyModel.from_checkpoint(spec.get("model", "7net-0"), dtype=dt, device=device)
    if backend == "mace":
        return MACEEnergyModel.from_file(resolve_mace_model(spec["model"]), head=spec.get("head"), dtype=dt, device=device)
    raise ValueError(f"fine-tuning supports backends 'mace' and 'sevennet', not {backend!r}")


# ------------------------------------------------------------------------------ prediction
def predict(
    model: EnergyModel,
    graph: GraphBatch,
    *,
    columns: torch.Tensor | None = None,
    stress: bool = True,
    create_graph: bool = True,
    probes: torch.Tensor | None = None,
) -> dict:
    """Energies (B,) eV, forces (N,3) eV/Å, stresses (B,3,3) eV/Å³ and Hessian columns.

    ``columns`` (k, B) long: column index (0 .. 3N_s-1, local to each structure) of the Hessian to compute
    for each structure, k columns per structure; a negative entry skips that structure.  Returns
    ``hessian_columns`` (k, N, 3): entry [c, atoms of s] = H_s[:, columns[c, s]] reshaped (N_s, 3).
    ``create_graph=True`` keeps the graph so the loss can be backpropagated to the parameters.
    ``probes`` (P, N, 3): probe vectors v instead of columns (:mod:`pftflow.training.probes`); returns
    ``hessian_probes_eV_per_A2`` (P, N, 3) = H·v.
    """
    positions = graph.positions_A.detach().clone().requires_grad_(True)
    strain = torch.zeros(graph.n_structures, 3, 3, dtype=positions.dtype, device=positions.device)
    strain.requires_grad_(stress)
    energy = model.energy(graph, positions, strain)
    need_hvp = columns is not None or probes is not None
    inputs = [positions, strain] if stress else [positions]
    grads = torch.autograd.grad(energy.sum(), inputs, create_graph=create_graph or need_hvp)
    out = {"energy_eV": energy, "forces_eV_per_A": -grads[0]}
    if stress:
        out["stress_eV_per_A3"] = grads[1] / graph.volume_A3.view(-1, 1, 1)
    if columns is not None:
        cols = []
        for c in range(columns.shape[0]):
            v = torch.zeros_like(positions).reshape(-1)
            sel = columns[c] >= 0
            flat = 3 * graph.ptr[:-1][sel] + columns[c][sel]
            v[flat] = 1.0
            (hv,) = torch.autograd.grad(
                grads[0], positions, grad_outputs=v.view_as(positions), create_graph=create_graph, retain_graph=True
            )
            cols.append(hv)
        out["hessian_columns_eV_per_A2"] = torch.stack(cols)
    if probes is not None:
        out["hessian_probes_eV_per_A2"] = torch.stack(
            [torch.autograd.grad(grads[0], positions, grad_outputs=v.to(positions.dtype), create_graph=create_graph, retain_graph=True)[0] for v in probes]
        )
    return out


# ------------------------------------------------------------------------------ forces and Hessian rows
def energy_model_hessian_rows(model, atoms: Atoms, atom_indices: Sequence[int]) -> np.ndarray:
    """Hessian rows (len(idx), 3, N, 3) eV/Å² of an :class:`EnergyModel` by the
    project's Hessian-vector products (:func:`predict`, double backward): the Hessian
    is symmetric, so column 3i+a is row (i, a)."""
    n = len(atoms)
    idx = [int(i) for i in atom_indices]
    if any(not 0 <= i < n for i in idx):
        raise IndexError(f"hessian_rows: atom indices {idx} outside 0..{n - 1}")
    if not idx:
        return np.zeros((0, 3, n, 3))
    graph = model.build_graph([atoms])
    cols = torch.tensor([[3 * i + a] for i in idx for a in range(3)], dtype=torch.long, device=graph.positions_A.device)
    out = predict(model, graph, columns=cols, stress=False, create_graph=False)
    h = out["hessian_columns_eV_per_A2"].detach().cpu().double().numpy()  # (3k, N, 3)
    return h.reshape(len(idx), 3, n, 3)


def cached_energy_model_rows(calculator, spec: dict, atoms: Atoms, atom_indices: Sequence[int], dtype: str = "float64") -> np.ndarray:
    """``hessian_rows`` of a torch-backed calculator: loads (once per calculator) the training energy model of
    ``spec`` (:func:`load_energy_model`, float64 by default, same weights as the ASE
    calculator) and runs :func:`energy_model_hessian_rows`."""
    key = (dtype, tuple(sorted((k, str(v)) for k, v in spec.items())))
    cache = calculator.__dict__.setdefault("_hessian_energy_models", {})
    if key not in cache:
        cache[key] = load_energy_model(spec, dtype=dtype, device=getattr(calculator, "device", None))
    return energy_model_hessian_rows(cache[key], atoms, atom_indices)


def chgnet_hessian_rows(model, atoms: Atoms, atom_indices: Sequence[int]) -> np.ndarray:
    """Hessian rows (len(idx), 3, N, 3) eV/Å² of a ``chgnet.model.CHGNet`` (float32) by double backward.

    CHGNet's forward already builds its force graph with ``create_graph=True``; its Cartesian positions
    are ``frac @ lattice`` inside the model, so we differentiate the forces with respect to the fractional
    coordinates of its input graph and map back: ∂/∂frac_j = L ∂/∂r_j, hence ∂/∂r_j = L⁻¹ ∂/∂frac_j.
    (The training adapters have no CHGNet energy model, so this uses CHGNet's own graph directly.)
    """
    from pymatgen.io.ase import AseAtomsAdaptor

    n = len(atoms)
    idx = [int(i) for i in atom_indices]
    if any(not 0 <= i < n for i in idx):
        raise IndexError(f"hessian_rows: atom indices {idx} outside 0..{n - 1}")
    device = next(model.parameters()).device
    graph = model.graph_converter(AseAtomsAdaptor.get_structure(atoms)).to(device)
    graph.atom_frac_coord = graph.atom_frac_coord.detach().clone().requires_grad_(True)
    forces = model([graph], task="ef")["f"][0]  # (N, 3) eV/Å, graph kept (CHGNet uses create_graph=True)
    lat_inv = np.linalg.inv(graph.lattice.detach().cpu().double().numpy())
    out = np.zeros((len(idx), 3, n, 3))
    for k, i in enumerate(idx):
        for a in range(3):
            (g,) = torch.autograd.grad(forces[i, a], graph.atom_frac_coord, retain_graph=True)
            out[k, a] = -(g.detach().cpu().double().numpy() @ lat_inv.T)  # Φ(ia, jb) = -∂F_ia/∂r_jb
    return out
