"""Conversions between ASE Atoms, phonopy's PhonopyAtoms and plain JSON-able dicts.

Structures travel through the pipeline as ``ase.Atoms`` (positions in Å, cell in Å, masses in amu)
and are stored as plain dicts so every store backend (montydb, MongoDB) can hold them.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from phonopy.structure.atoms import PhonopyAtoms


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


def atoms_to_dict(atoms: Atoms) -> dict:
    """JSON-able dict of an ASE Atoms (cell and positions in Å, masses in amu)."""
    return {
        "symbols": list(atoms.get_chemical_symbols()),
        "cell_A": np.asarray(atoms.cell[:], dtype=float).tolist(),
        "positions_A": np.asarray(atoms.positions, dtype=float).tolist(),
        "masses_amu": np.asarray(atoms.get_masses(), dtype=float).tolist(),
        "pbc": [bool(p) for p in atoms.pbc],
    }


def dict_to_atoms(d: dict) -> Atoms:
    """Inverse of :func:`atoms_to_dict`."""
    atoms = Atoms(
        symbols=d["symbols"],
        cell=np.array(d["cell_A"], dtype=float),
        positions=np.array(d["positions_A"], dtype=float),
        pbc=d.get("pbc", True),
    )
    if d.get("masses_amu") is not None:
        atoms.set_masses(np.array(d["masses_amu"], dtype=float))
    return atoms
