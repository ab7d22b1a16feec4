"""Finite-displacement sets: phonopy (fc2) and phono3py (fc2 + fc3), symmetry-reduced.

Pure functions: a structure and matrices in, the phonopy / phono3py object (which holds the
displacement dataset) and the displaced supercells (ASE Atoms, Å) out.
"""

from __future__ import annotations

from ase import Atoms

from pftflow.materials.builders import build_phono3py, build_phonopy
from pftflow.materials.structures import phonopy_to_atoms


def fc2_displacements(unitcell: Atoms, supercell_matrix, primitive_matrix=None, *, distance_A: float = 0.01, symprec: float = 1e-5):
    """Symmetry-reduced phonopy displacements; returns ``(phonon, displaced_supercells)``."""
    ph = build_phonopy(unitcell, supercell_matrix, primitive_matrix, symprec)
    ph.generate_displacements(distance=distance_A)
    return ph, [phonopy_to_atoms(sc) for sc in ph.supercells_with_displacements]


def fc3_displacements(
    unitcell: Atoms, fc2_supercell, fc3_supercell, primitive_matrix=None, *, distance_A: float | None = 0.03, symprec: float = 1e-5
):
    """A phono3py object with the fc3 and fc2 displacement datasets (phono3py's defaults:
    symmetry-reduced, ± where needed) when ``distance_A`` is set; without, just the object."""
    ph3 = build_phono3py(unitcell, fc2_supercell, fc3_supercell, primitive_matrix, symprec=symprec)
    if distance_A is not None:
        ph3.generate_displacements(distance=distance_A)
        ph3.generate_fc2_displacements(distance=distance_A)
    return ph3


def fc2_supercells(ph3) -> list[Atoms]:
    """Displaced fc2 (phonon) supercells of a phono3py object, in dataset order."""
    return [phonopy_to_atoms(s) for s in ph3.phonon_supercells_with_displacements]


def fc3_supercells(ph3) -> list[Atoms]:
    """Displaced fc3 supercells, in dataset order (no pair cutoff, so none is skipped)."""
    cells = ph3.supercells_with_displacements
    if any(c is None for c in cells):
        raise ValueError("fc3 dataset has skipped (None) supercells; pair cutoffs are not supported here")
    return [phonopy_to_atoms(s) for s in cells]
