"""More Hessian signal per backward pass: multi-column and Rademacher probes, size-independent normalisation.

Written by hand (no library offers it).  H·v is linear in v, so one Hessian-vector product (HVP) with a probe
vector v gives H·v, whose reference is H_DFT·v exactly, whatever v is:

* ``column``      - v = e_b, one Cartesian direction of one atom: one Hessian column (the PFT paper, the current
  behaviour of :func:`pftflow.training.loss.sample_columns`).
* ``multi_column`` - v = Σ_a e_(a, d_a) over k atoms chosen at least ``min_separation_A`` apart (minimum image).
  When the separation exceeds the model's Hessian reach, 2 × cutoff × n_layers (the energy of atom i depends on
  the atoms within n_layers × cutoff of it, so H_jk can be non-zero up to twice that distance), the k columns
  have disjoint supports and one HVP gives k exact columns; the target is always the sum of the same k DFT columns.
  For SevenNet-0 (5 Å, 5 layers: 50 Å) the strict reach exceeds every chalcogenide supercell, so the probe uses a
  near-field separation (2 × ``near_field_A`` by default): the near-field regions of the k atoms are disjoint and
  the comparison stays exact (the target is H_DFT·v), but far tails of one column overlap the near field of another.
* ``rademacher``  - v has random ±1 entries on every coordinate; target H_DFT·v.

Normalisation of the Hessian error (entry weights ``w`` of shape (P, N), summing to 1 over each probe's atoms):

* ``mean``        - mean |error| over every entry of the probed structure (the PFT paper; shrinks as 1/N with
  the cell size because most entries of a large cell are ~0 far-field entries).
* ``near_field``  - mean |error| over the entries of atoms within ``near_field_A`` of a probed atom
  (minimum image): the same atoms and the same number of entries in a 2x2x2 and a 4x4x4 repetition.
* ``column_sum``  - sum of |error| over the probe's entries divided by 3 × ``reference_atoms`` (the paper's
  cells have ~100 atoms): the mean a ``reference_atoms``-atom cell would give.

Units: positions Å, Hessian eV/Å², H·v eV/Å² (v dimensionless).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field


class ProbeSpec(BaseModel):
    """How the Hessian term is probed and normalised (default: the current behaviour, 1 column, mean)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    kind: Literal["column", "multi_column", "rademacher"] = Field(
        "column", description="column (one Hessian column per HVP) | multi_column (k far-apart atoms per HVP) | rademacher (random ±1 v)"
    )
    atoms_per_probe: int = Field(4, ge=1, description="multi_column: probed atoms per HVP (at most; fewer when the cell has no room)", examples=[4])
    min_separation_A: float | None = Field(
        None, gt=0, description="multi_column: minimum-image distance between probed atoms (Å); null = 2 × near_field_A", examples=[12.0]
    )
    normalisation: Literal["mean", "near_field", "column_sum"] = Field(
        "mean", description="Hessian error normalisation: mean over entries | near_field (entries within near_field_A) | column_sum (sum / 3·reference_atoms)"
    )
    near_field_A: float = Field(6.0, gt=0, description="near_field radius around a probed atom (Å)", examples=[6.0])
    reference_atoms: int = Field(100, ge=1, description="column_sum: atom count of the reference cell", examples=[100])


def hessian_reach_A(cutoff_A: float, n_layers: int) -> float:
    """Distance (Å) beyond which a message-passing model's Hessian entries vanish: 2 × cutoff × layers."""
    return 2.0 * float(cutoff_A) * int(n_layers)


def mic_distances(positions_A: np.ndarray, cell_A: np.ndarray, origin: int) -> np.ndarray:
    """Minimum-image distances (Å) of every atom to atom ``origin`` (periodic cell, any shape)."""
    from ase.geometry import find_mic

    d = np.asarray(positions_A) - np.asarray(positions_A)[origin]
    _, dist = find_mic(d, np.asarray(cell_A), pbc=True)
    return dist


def far_apart_atoms(positions_A: np.ndarray, cell_A: np.ndarray, k: int, min_separation_A: float, rng: np.random.Generator) -> list[int]:
    """Up to ``k`` atoms pairwise at least ``min_separation_A`` apart (minimum image): a random first atom,
    then random picks among the atoms far enough from all picked so far."""
    n = len(positions_A)
    picked = [int(rng.integers(n))]
    ok = mic_distances(positions_A, cell_A, picked[0]) >= min_separation_A
    while len(picked) < k and ok.any():
        a = int(rng.choice(np.flatnonzero(ok)))
        picked.append(a)
        ok &= mic_distances(positions_A, cell_A, a) >= min_separation_A
    return picked


def near_field_mask(positions_A: np.ndarray, cell_A: np.ndarray, atoms: list[int], radius_A: float) -> np.ndarray:
    """(N,) bool: atoms within ``radius_A`` (minimum image) of any of ``atoms``."""
    m = np.zeros(len(positions_A), dtype=bool)
    for a in atoms:
        m |= mic_distances(positions_A, cell_A, a) <= radius_A
    return m


def make_probe(positions_A: np.ndarray, cell_A: np.ndarray, spec: ProbeSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """One probe of one structure: v (N, 3), entry weights w (N,) summing to 1 (``column_sum``: to
    N / reference_atoms), and the probed atoms (all atoms for rademacher)."""
    n = len(positions_A)
    v = np.zeros((n, 3))
    if spec.kind == "rademacher":
        v = rng.choice([-1.0, 1.0], size=(n, 3))
        atoms = list(range(n))
    else:
        k = 1 if spec.kind == "column" else spec.atoms_per_probe
        sep = spec.min_separation_A or 2.0 * spec.near_field_A
        atoms = far_apart_atoms(positions_A, cell_A, k, sep, rng) if k > 1 else [int(rng.integers(n))]
        for a in atoms:
            v[a, int(rng.integers(3))] = 1.0
    if spec.normalisation == "near_field" and spec.kind != "rademacher":
        mask = near_field_mask(positions_A, cell_A, atoms, spec.near_field_A)
    else:
        mask = np.ones(n, dtype=bool)
    w = mask / mask.sum()
    if spec.normalisation == "column_sum":
        w = mask / float(spec.reference_atoms)
    return v, w, atoms


def hvp(forces_graph: torch.Tensor, positions: torch.Tensor, v: torch.Tensor, *, create_graph: bool) -> torch.Tensor:
    """H·v (N, 3) eV/Å² from the gradient dE/dr (``forces_graph`` = ∂E/∂r, kept with create_graph) and v (N, 3)."""
    (hv,) = torch.autograd.grad(forces_graph, positions, grad_outputs=v, create_graph=create_graph, retain_graph=True)
    return hv


def reference_hv(hessian_eV_per_A2: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """H_ref·v (N, 3) eV/Å² for a (3N, 3N) reference Hessian and v (N, 3)."""
    return (hessian_eV_per_A2 @ v.reshape(-1)).reshape(-1, 3)


def probe_error(pred_hv: torch.Tensor, ref_hv: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Normalised Hessian error of probes: Σ_atoms w · mean_xyz |pred - ref|, averaged over probes.

    ``pred_hv``/``ref_hv`` (P, N, 3) eV/Å², ``weights`` (P, N).  With w = 1/N this is the MAE over the entries."""
    per_atom = (pred_hv - ref_hv).abs().mean(-1)
    return (per_atom * weights).sum(-1).mean()


def batch_probes(graph, targets, spec: ProbeSpec, k: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``k`` probes of every structure of a batch that has a Hessian target, as :func:`pftflow.training.loss.pft_loss`
    takes them: v (k, N, 3), H_ref·v (k, N, 3) eV/Å², entry weights (k, N) (each structure's weights scaled by
    1 / the number of structures with a Hessian, so the error is a mean over structures)."""
    pos = graph.positions_A.detach().cpu().numpy()
    cells = graph.cell_A.detach().cpu().numpy()
    dtype, device = graph.positions_A.dtype, graph.positions_A.device
    n = pos.shape[0]
    v = torch.zeros(k, n, 3, dtype=dtype, device=device)
    ref = torch.zeros(k, n, 3, dtype=dtype, device=device)
    w = torch.zeros(k, n, dtype=dtype, device=device)
    with_h = [s for s, h in enumerate(targets.hessians_eV_per_A2) if h is not None]
    for s in with_h:
        a, b = int(graph.ptr[s]), int(graph.ptr[s + 1])
        h = targets.hessians_eV_per_A2[s]
        for c in range(k):
            vs, ws, _ = make_probe(pos[a:b], cells[s], spec, rng)
            vt = torch.as_tensor(vs, dtype=dtype, device=device)
            v[c, a:b] = vt
            ref[c, a:b] = reference_hv(h, vt)
            w[c, a:b] = torch.as_tensor(ws, dtype=dtype, device=device) / len(with_h)
    return v, ref, w
