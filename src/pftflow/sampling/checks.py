"""Checks of a structure set: minimum interatomic distance, displacement statistics, distinctness.

Distances include periodic images (``ase.neighborlist.neighbor_list``); displacements are taken
relative to the undisturbed supercell with the minimum-image convention (``ase.geometry.find_mic``),
so wrapped positions do not count as large displacements.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from ase import Atoms
from pydantic import Field

from pftflow.serialization import Document


def min_distance(atoms: Atoms, cutoff_A: float = 3.0) -> float:
    """Shortest interatomic distance (Å), periodic images included (inf for a single atom
    without images within 24 Å)."""
    from ase.neighborlist import neighbor_list

    cutoff = cutoff_A
    while cutoff <= 24.0:
        d = neighbor_list("d", atoms, cutoff)
        if len(d):
            return float(d.min())
        cutoff *= 2
    return float("inf")


def displacements_A(reference: Atoms, atoms: Atoms) -> np.ndarray:
    """Displacements (N, 3) in Å of ``atoms`` from ``reference`` (same atom order), minimum image
    in the cell of ``atoms``."""
    from ase.geometry import find_mic

    d, _ = find_mic(atoms.positions - reference.positions, atoms.cell, pbc=atoms.pbc)
    return d


def displacement_stats(reference: Atoms, structures: Sequence[Atoms]) -> dict:
    """Statistics of the Cartesian displacement components of a set (Å): ``std_A`` (all components
    of all structures), ``rms_A``, ``max_norm_A`` (largest atomic displacement) and
    ``per_structure_std_A``.  Structures whose cell differs from the reference's (strained) are
    compared in fractional coordinates mapped to the reference cell."""
    per, comps, norms = [], [], []
    for a in structures:
        if not np.allclose(a.cell[:], reference.cell[:]):
            a = a.copy()
            a.set_cell(reference.cell, scale_atoms=True)
        d = displacements_A(reference, a)
        per.append(float(d.std()))
        comps.append(d.ravel())
        norms.append(np.linalg.norm(d, axis=1).max() if len(d) else 0.0)
    allc = np.concatenate(comps) if comps else np.zeros(0)
    return {
        "std_A": float(allc.std()) if allc.size else 0.0,
        "rms_A": float(np.sqrt(np.mean(allc**2))) if allc.size else 0.0,
        "max_norm_A": float(max(norms)) if norms else 0.0,
        "per_structure_std_A": per,
    }


def duplicate_pairs(structures: Sequence[Atoms], tol_A: float = 1e-6) -> list[tuple[int, int]]:
    """Pairs ``(i, j)`` of structures whose cells and positions agree within ``tol_A`` (Å)."""
    out = []
    for i in range(len(structures)):
        for j in range(i + 1, len(structures)):
            a, b = structures[i], structures[j]
            if len(a) != len(b) or a.get_chemical_symbols() != b.get_chemical_symbols():
                continue
            if np.abs(a.cell[:] - b.cell[:]).max() > tol_A:
                continue
            if np.abs(displacements_A(a, b)).max() <= tol_A:
                out.append((i, j))
    return out


class SetChecks(Document):
    """What was checked on a sampled set, with the measured values."""

    n_structures: int = Field(description="structures in the set")
    min_distance_A: float | None = Field(description="shortest interatomic distance over the set (Å); None: no pair within 24 Å")
    min_distance_required_A: float | None = Field(None, description="the requested floor (Å), if any")
    displacement_std_A: float = Field(description="standard deviation of the displacement components from the undisturbed supercell (Å)")
    displacement_rms_A: float = Field(description="root mean square displacement component (Å)")
    max_displacement_A: float = Field(description="largest atomic displacement (Å)")
    amplitude_requested_A: float | None = Field(None, description="the requested amplitude (Å), if any")
    duplicates: list[tuple[int, int]] = Field(default_factory=list, description="pairs of identical structures (should be empty)")
    ok: bool = Field(description="min distance respected and every structure distinct")
    problems: list[str] = Field(default_factory=list, description="what failed")


def check_set(
    reference: Atoms,
    structures: Sequence[Atoms],
    *,
    min_distance_A: float | None = None,
    amplitude_A: float | None = None,
    tol_A: float = 1e-6,
) -> SetChecks:
    """Minimum distance, displacement statistics and distinctness of a set (``reference``: the
    undisturbed supercell)."""
    dmin = min((min_distance(a) for a in structures), default=float("inf"))
    stats = displacement_stats(reference, structures)
    dups = duplicate_pairs(structures, tol_A)
    problems = []
    if min_distance_A is not None and dmin < min_distance_A:
        problems.append(f"two atoms at {dmin:.3f} Å < min_distance_A {min_distance_A} Å")
    if dups:
        problems.append(f"{len(dups)} pair(s) of identical structures, e.g. {dups[0]}")
    return SetChecks(
        n_structures=len(structures),
        min_distance_A=dmin if np.isfinite(dmin) else None,
        min_distance_required_A=min_distance_A,
        displacement_std_A=stats["std_A"],
        displacement_rms_A=stats["rms_A"],
        max_displacement_A=stats["max_norm_A"],
        amplitude_requested_A=amplitude_A,
        duplicates=dups,
        ok=not problems,
        problems=problems,
    )
