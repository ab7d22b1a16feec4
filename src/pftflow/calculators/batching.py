"""True batched force evaluation: SevenNet and CHGNet, one graph batch per chunk of structures.

Chunks hold at most ``batch_atoms`` atoms in all (at least one structure), so the number of structures per batch
follows from the cell size: 16 unit cells of 8 atoms go in one batch, 360-atom supercells 5 at a time.  Memory
grows with the atoms of one batch (CHGNet: 0.41 MB per atom, benchmarks/README.md "Peak memory"), not with the
size of the displacement set.

SevenNet's ASE calculator evaluates one structure per call.  For a displacement set (hundreds of
supercells of the same size) the per-call overhead (graph build, Python dispatch, small
matrix products) dominates on CPU and leaves a GPU idle.  :func:`sevennet_compute_batched` builds
each structure's graph with sevenn's own ``unlabeled_atoms_to_graph``, collates them with
``torch_geometric``'s ``Batch.from_data_list`` (what sevenn's own ``inference`` script does via its
DataLoader) and runs the model once per chunk with ``set_is_batch_data(True)``.

Units: energies eV, forces eV/Å, stresses eV/Å³ (Voigt xx, yy, zz, yz, xz, xy; ASE sign, i.e. the
negative of SevenNet's ``inferred_stress``, exactly as ``sevenn.calculator`` converts it).

Hook (minimal edit in ``calculators/backends.py``)::

    class SevenNetCalculator(ForceCalculator):
        batch_size: int = 32
        def compute(self, structures, *, stress=True, progress=False, desc=None):
            from pftflow.calculators.batching import sevennet_compute_batched
            return sevennet_compute_batched(self, structures, stress=stress, progress=progress,
                                            desc=desc, batch_size=self.batch_size)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from ase import Atoms

from pftflow.calculators.base import ForceCalculator, ForceResults


#: atoms of one CHGNet graph batch when the model spec sets no ``batch_atoms``: 5 x 360-atom supercells, about
#: 0.6 GiB above the loaded model with first derivatives only (benchmarks/README.md, "Peak memory")
CHGNET_BATCH_ATOMS = 2048


def _chunks_by_atoms(structures: Sequence[Atoms], batch_size: int, max_atoms: int | None) -> list[list[int]]:
    """Index chunks of at most ``batch_size`` structures and (if given) ``max_atoms`` atoms in total."""
    chunks: list[list[int]] = []
    cur: list[int] = []
    n_cur = 0
    for i, a in enumerate(structures):
        n = len(a)
        if cur and (len(cur) >= batch_size or (max_atoms is not None and n_cur + n > max_atoms)):
            chunks.append(cur)
            cur, n_cur = [], 0
        cur.append(i)
        n_cur += n
    if cur:
        chunks.append(cur)
    return chunks


def sevennet_compute_batched(
    calculator,
    structures: Sequence[Atoms],
    *,
    stress: bool = True,
    progress: bool = False,
    desc: str | None = None,
    batch_size: int = 32,
    max_atoms: int | None = 4096,
) -> ForceResults:
    """Energies, forces and (optionally) stresses of ``structures`` with a SevenNet model, batched.

    ``calculator`` is a :class:`pftflow.calculators.SevenNetCalculator` (its ASE calculator holds
    the loaded model, device, cutoff and type map).  Structures are processed in chunks of at most
    ``batch_size`` structures and ``max_atoms`` atoms.  TorchScript (deployed) models are not
    batchable this way and fall back to the per-structure loop.
    """
    import torch
    from sevenn import _keys as KEY
    from sevenn.atom_graph_data import AtomGraphData
    from sevenn.train.dataload import unlabeled_atoms_to_graph
    from torch_geometric.data import Batch
    from tqdm.auto import tqdm

    ase_calc = calculator.ase_calculator()
    model = ase_calc.model
    if isinstance(model, torch.jit.ScriptModule):  # deployed model: no batch mode
        return ForceCalculator.compute(calculator, structures, stress=stress, progress=progress, desc=desc)

    device = ase_calc.device
    cutoff = float(ase_calc.cutoff)
    energies = np.zeros(len(structures))
    forces: list[np.ndarray | None] = [None] * len(structures)
    stresses = np.zeros((len(structures), 6)) if stress else None
    chunks = _chunks_by_atoms(structures, batch_size, max_atoms)
    model.set_is_batch_data(True)
    try:
        for idx in tqdm(chunks, desc=desc or f"{calculator.name} forces (batched)", disable=None if progress else True, leave=False):
            for i in idx:
                ase_calc.set_atoms(structures[i])  # checks the model knows every element
            graphs = [AtomGraphData.from_numpy_dict(unlabeled_atoms_to_graph(structures[i], cutoff)) for i in idx]
            batch = Batch.from_data_list(graphs).to(device)
            out = model(batch)
            e = out[KEY.PRED_TOTAL_ENERGY].detach().cpu().numpy().reshape(-1)
            f = out[KEY.PRED_FORCE].detach().cpu().numpy()
            counts = [len(structures[i]) for i in idx]
            f_split = np.split(f, np.cumsum(counts)[:-1])
            if stress:
                s = -out[KEY.PRED_STRESS].detach().cpu().numpy().reshape(len(idx), 6)[:, [0, 1, 2, 4, 5, 3]]
            for k, i in enumerate(idx):
                energies[i] = float(e[k])
                forces[i] = np.asarray(f_split[k], dtype=float)
                if stress:
                    stresses[i] = s[k]
    finally:
        model.set_is_batch_data(False)  # the ASE calculator shares this model object
    return ForceResults(
        energies_eV=energies,
        forces_eV_per_A=[np.asarray(f) for f in forces],
        stresses_eV_per_A3=stresses,
        provenance={**calculator.provenance(), "batched": True, "batch_size": batch_size},
    )


def chgnet_efs(model, graphs: Sequence, *, stress: bool = True):
    """Total energies (eV), forces (eV/Å) and stresses (GPa, CHGNet's sign) of CHGNet ``graphs`` in one batch.

    Written by hand because CHGNet 0.4's ``CHGNet._compute`` takes forces and stress with
    ``torch.autograd.grad(..., create_graph=True)`` even in inference: it builds the graph of the derivative,
    needed only to train on forces, and holds it until the batch ends (3-4x the memory of the first derivative,
    benchmarks/README.md "Peak memory").  This is the same computation as ``CHGNet.forward(task="efs")`` with
    ``create_graph=False``: ``tests/calculators/test_batching.py`` checks it against
    ``CHGNet.predict_structure``.  Returns (energies (B,), list of (n_i, 3) forces, list of (3, 3) stresses | None).
    """
    import torch
    from chgnet.model.model import BatchedGraph

    comp = 0 if model.composition_model is None else model.composition_model(graphs)
    bg = BatchedGraph.from_graphs(graphs, bond_basis_expansion=model.bond_basis_expansion,
                                  angle_basis_expansion=model.angle_basis_expansion, compute_stress=stress)
    pred = model._compute(bg, compute_force=False, compute_stress=False)
    n_per = torch.bincount(bg.atom_owners)
    e_model = pred["e"] * n_per if model.is_intensive else pred["e"]  # the model part, extensive (eV)
    wrt = list(bg.atom_positions) + (list(bg.strains) if stress else [])
    grads = torch.autograd.grad(e_model.sum(), wrt)
    forces = [-g.detach() for g in grads[: len(graphs)]]
    stresses = None
    if stress:
        scale = 160.21766208 / bg.volumes  # eV/Å³ -> GPa, as CHGNet
        stresses = [g.detach() * s for g, s in zip(grads[len(graphs):], scale)]
    energy = (pred["e"] + comp) * (n_per if model.is_intensive else 1)
    return energy.detach(), forces, stresses


def chgnet_compute_batched(
    calculator,
    structures: Sequence[Atoms],
    *,
    stress: bool = True,
    progress: bool = False,
    desc: str | None = None,
    batch_atoms: int = CHGNET_BATCH_ATOMS,
) -> ForceResults:
    """Energies, forces and (optionally) stresses of ``structures`` with CHGNet, in graph batches of at most
    ``batch_atoms`` atoms, first derivatives only (:func:`chgnet_efs`).  Units: eV, eV/Å, eV/Å³ (Voigt, ASE sign)."""
    from pymatgen.io.ase import AseAtomsAdaptor
    from tqdm.auto import tqdm

    model = calculator._load()
    model.eval()
    device = next(model.parameters()).device
    energies = np.zeros(len(structures))
    forces: list[np.ndarray | None] = [None] * len(structures)
    stresses = np.zeros((len(structures), 6)) if stress else None
    chunks = _chunks_by_atoms(structures, len(structures) or 1, batch_atoms)
    for idx in tqdm(chunks, desc=desc or f"{calculator.name} forces", disable=None if progress else True, leave=False):
        graphs = [model.graph_converter(AseAtomsAdaptor.get_structure(structures[i])).to(device) for i in idx]
        e, f, s = chgnet_efs(model, graphs, stress=stress)
        for k, i in enumerate(idx):
            energies[i] = float(e[k])
            forces[i] = f[k].cpu().numpy().astype(float)
            if stress:
                # CHGNet's stress (GPa) has ASE's sign (as its own ASE calculator uses it): to eV/Å³, Voigt
                v = s[k].cpu().numpy().astype(float) / 160.21766208
                stresses[i] = [v[0, 0], v[1, 1], v[2, 2], v[1, 2], v[0, 2], v[0, 1]]
        del graphs, e, f, s
    return ForceResults(
        energies_eV=energies,
        forces_eV_per_A=[np.asarray(f) for f in forces],
        stresses_eV_per_A3=stresses,
        provenance={**calculator.provenance(), "batch_atoms": int(batch_atoms)},
    )
