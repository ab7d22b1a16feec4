"""One supercell rule for every structure set of a material (rattled, strained, displaced).

:func:`choose_supercell` picks the supercell matrix once per material from a :class:`SupercellRule`
(minimum length in Å, maximum number of atoms, near-cubic with 90° angles preferred), with pymatgen's
``CubicSupercellTransformation`` exactly as atomate2's ``get_supercell_matrix`` uses it: first with
``force_90_degrees``, then without.  Every set of the material is then built on that one matrix
(:func:`make_supercell`, phonopy's supercell builder, so a rattled set and a phonopy displacement set
have the same cell and the same atom order).

When no cell within ``max_atoms`` reaches ``min_length_A``, the smallest near-cubic cell that does is
returned with ``exceeds_max_atoms=True`` and a :class:`SupercellWarning` is issued; the campaign
builder and ``pftflow validate`` call this before any calculation, so the warning comes first.
``on_exceed: error`` makes it an error instead.

Matrix convention: phonopy's (``supercell lattice (columns) = unit-cell lattice (columns) @ matrix``),
the convention of every ``supercell_matrix`` in pftflow; pymatgen's row-form matrix is its transpose.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
from ase import Atoms
from pydantic import BaseModel, ConfigDict, Field

from pftflow.materials.structures import atoms_to_phonopy, phonopy_to_atoms
from pftflow.serialization import Array, Document

#: the atom count used to find a cell that reaches min_length_A when max_atoms cannot (then warned)
_UNLIMITED_ATOMS = 100_000


class SupercellWarning(UserWarning):
    """A material's supercell exceeds the rule's atom limit (raised before any calculation)."""


class SupercellRule(BaseModel):
    """How the supercell of every structure set of a material is chosen."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    min_length_A: float = Field(10.0, gt=0, description="minimum supercell length (Å): pymatgen's CubicSupercellTransformation "
                                "criterion, the smallest face-to-face height of the cell", examples=[10.0])
    max_atoms: int = Field(200, gt=0, description="largest supercell (atoms) before the rule warns (or fails with on_exceed: error)", examples=[200])
    prefer_90_degrees: bool = Field(True, description="look for a cell with 90° angles first (atomate2's prefer_90_degrees)")
    force_diagonal: bool = Field(False, description="only diagonal matrices (multiples of the unit cell; length criterion on the cell vectors)")
    angle_tolerance_deg: float = Field(1e-2, gt=0, description="tolerance (degrees) of the 90° search")
    on_exceed: Literal["warn", "error"] = Field("warn", description="when the cell has more than max_atoms atoms: warn (and use it) or error")


class SupercellChoice(Document):
    """The supercell chosen for a material, and how it meets the rule."""

    supercell_matrix: Array = Field(description="(3, 3) integers, phonopy convention")
    n_atoms: int = Field(description="atoms in the supercell")
    lengths_A: list[float] = Field(description="supercell vector lengths a, b, c (Å)")
    angles_deg: list[float] = Field(description="supercell angles α, β, γ (degrees)")
    widths_A: list[float] = Field(description="perpendicular distances between opposite faces (Å): V/|b×c|, V/|c×a|, V/|a×b|")
    exceeds_max_atoms: bool = Field(False, description="more atoms than the rule's max_atoms")
    source: str = Field(description="cubic_90 | cubic | diagonal | given (a matrix given in the spec)")
    message: str | None = Field(None, description="the warning issued, if any")


def _to_pymatgen(atoms: Atoms):
    from pymatgen.io.ase import AseAtomsAdaptor

    return AseAtomsAdaptor.get_structure(Atoms(atoms.get_chemical_symbols(), cell=atoms.cell[:], positions=atoms.positions, pbc=True))


def _transform(structure, rule: SupercellRule, *, max_atoms: int, force_90: bool) -> np.ndarray:
    from pymatgen.transformations.advanced_transformations import CubicSupercellTransformation

    t = CubicSupercellTransformation(
        min_length=rule.min_length_A,
        max_atoms=max_atoms,
        force_diagonal=rule.force_diagonal,
        force_90_degrees=force_90,
        angle_tolerance=rule.angle_tolerance_deg,
    )
    t.apply_transformation(structure)
    return np.asarray(np.round(t.transformation_matrix), dtype=int).T  # pymatgen rows -> phonopy columns


def cell_geometry(cell) -> dict:
    """Lengths (Å), angles (degrees) and face-to-face widths (Å) of a cell (rows = vectors)."""
    from ase.cell import Cell

    c = Cell(np.asarray(cell, dtype=float))
    par = c.cellpar()
    vol = abs(c.volume)
    a, b, cc = c[:]
    widths = [vol / np.linalg.norm(np.cross(b, cc)), vol / np.linalg.norm(np.cross(cc, a)), vol / np.linalg.norm(np.cross(a, b))]
    return {"lengths_A": [float(x) for x in par[:3]], "angles_deg": [float(x) for x in par[3:]], "widths_A": [float(x) for x in widths]}


def make_supercell(unitcell: Atoms, supercell_matrix) -> Atoms:
    """The supercell of ``unitcell`` (phonopy's builder: same cell and atom order as phonopy's
    displacement supercells; masses kept)."""
    from phonopy.structure.cells import get_supercell

    return phonopy_to_atoms(get_supercell(atoms_to_phonopy(unitcell), np.asarray(supercell_matrix, dtype=int)))


def _describe(unitcell: Atoms, matrix: np.ndarray, source: str) -> dict:
    det = int(round(abs(np.linalg.det(matrix))))
    cell = matrix.T @ np.asarray(unitcell.cell[:], dtype=float)  # rows: phonopy matrix transposed
    return {"supercell_matrix": matrix, "n_atoms": det * len(unitcell), "source": source, **cell_geometry(cell)}


def choose_supercell(unitcell: Atoms, rule: SupercellRule | None = None, *, material_id: str = "", supercell_matrix=None) -> SupercellChoice:
    """The supercell of a material under ``rule`` (or the ``supercell_matrix`` given for it, checked
    against the atom limit).  Warns (:class:`SupercellWarning`) or raises ``ValueError`` when the
    cell has more than ``rule.max_atoms`` atoms — call it before any calculation."""
    rule = rule or SupercellRule()
    who = f"{material_id}: " if material_id else ""
    if supercell_matrix is not None:
        m = np.asarray(supercell_matrix, dtype=int)
        if m.shape == (3,):
            m = np.diag(m)
        info = _describe(unitcell, m, "given")
    else:
        structure = _to_pymatgen(unitcell)
        info = None
        attempts = [(True, "cubic_90"), (False, "cubic")] if rule.prefer_90_degrees and not rule.force_diagonal else [(False, "diagonal" if rule.force_diagonal else "cubic")]
        for force_90, source in attempts:
            try:
                info = _describe(unitcell, _transform(structure, rule, max_atoms=rule.max_atoms, force_90=force_90), source)
                break
            except AttributeError:  # pymatgen's way of saying "not within max_atoms"
                continue
        if info is None:  # nothing within max_atoms: the smallest cell that reaches min_length
            source = "diagonal" if rule.force_diagonal else "cubic"
            info = _describe(unitcell, _transform(structure, rule, max_atoms=_UNLIMITED_ATOMS, force_90=False), source)
    choice = SupercellChoice(**info)
    if choice.n_atoms > rule.max_atoms:
        what = "the given supercell_matrix" if supercell_matrix is not None else f"the smallest near-cubic supercell with length >= {rule.min_length_A:g} Å"
        msg = (
            f"{who}{what} has {choice.n_atoms} atoms, more than supercell.max_atoms = {rule.max_atoms} "
            f"(matrix {choice.supercell_matrix.tolist()}, widths {', '.join(f'{w:.2f}' for w in choice.widths_A)} Å); "
            "lower supercell.min_length_A or raise supercell.max_atoms if the code can afford it"
        )
        choice.exceeds_max_atoms, choice.message = True, msg
        if rule.on_exceed == "error":
            raise ValueError(msg)
        warnings.warn(msg, SupercellWarning, stacklevel=2)
    return choice
