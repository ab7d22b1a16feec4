"""Conversions between ASE Atoms, phonopy's PhonopyAtoms and plain JSON-able dicts.

Structures travel through the pipeline as ``ase.Atoms`` (positions in Å, cell in Å, masses in amu)
and are stored as plain dicts (``pftflow.serialization.atoms_to_dict``) so every store backend can hold them.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from phonopy.structure.atoms import PhonopyAtoms

from pftflow.serialization import atoms_to_dict, dict_to_atoms  # noqa: F401  (the one structure codec)


def atoms_to_phonopy(atoms: Atoms) -> PhonopyAtoms:
    """ASE Atoms -> PhonopyAtoms, keeping masses (amu)."""
    return PhonopyAtoms(
        symbols=atoms.get_chemical_symbols(),
        cell=np.array(atoms.cell[:], dtype=float),
        scaled_positions=atoms.get_scaled_positions(wrap=False),
        masses=atoms.get_masses(),
    )


def phonopy_to_atoms(patoms: PhonopyAtoms) -> Atoms:
    """PhonopyAtoms -> periodic ASE Atoms, keeping masses (amu)."""
    atoms = Atoms(
        symbols=patoms.symbols,
        cell=np.array(patoms.cell, dtype=float),
        scaled_positions=np.array(patoms.scaled_positions, dtype=float),
        pbc=True,
    )
    if patoms.masses is not None:
        atoms.set_masses(np.array(patoms.masses, dtype=float))
    return atoms
