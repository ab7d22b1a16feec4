"""Physics checks on materials, run when a campaign spec is loaded (before any job).

A material that passes these can still give bad phonons, but one that fails them cannot give good
ones: an element the periodic table does not have, a singular cell, atoms on top of each other (0.1 Å
apart gave ω_max = 12,193 K, shown as a normal row), a singular or non-integer supercell matrix, a
supercell too large to compute, NaN / inf forces in a reference file (phonopy then fails with
``arange: cannot compute length``), or an element the model was never trained on.

Every check raises :class:`MaterialError`: a ``ValueError`` whose message says what is wrong, with
``loc`` (the key path inside the material entry the problem is about), ``expected`` and ``example``
(a fix), which :mod:`pftflow.spec` turns into its one-line ``file: field: what; expected; e.g.``
message.  The checks are pure functions of arrays / :class:`ase.Atoms` /
:class:`~pftflow.materials.reference.PhononReference`: no files, no models.

Units: Å (positions, distances), Å³ (volumes), eV/Å (forces), eV/Å² (force constants).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from ase import Atoms

from pftflow.issues import Issue

#: atoms closer than this (Å, periodic images included) are refused: the shortest bond in a solid is
#: H-H at 0.74 Å; anything below 0.5 Å is a typo in the coordinates or a duplicated atom
MIN_DISTANCE_A = 0.5
#: largest supercell (atoms) a computed material may ask for; beyond it every force job is slow and
#: memory-bound, and a typo (supercell_matrix: [20, 20, 20]) is far more likely than intent
MAX_SUPERCELL_ATOMS = 2000
#: |det(cell)| below this (Å³) is a singular cell
MIN_VOLUME_A3 = 1e-6


class MaterialError(Issue):
    """A physics problem with a material: message, key path inside the material entry, expected value, fix."""


# ------------------------------------------------------------------------------ species
def chemical_symbols() -> list[str]:
    """Element symbols H ... Og (ASE's table without its placeholder 'X')."""
    from ase.data import chemical_symbols as table

    return list(table[1:])


def unknown_species(symbols: Iterable[str]) -> list[str]:
    """The symbols that are not chemical elements, in order of first appearance."""
    known = set(chemical_symbols())
    out: list[str] = []
    for s in symbols:
        if s not in known and s not in out:
            out.append(str(s))
    return out


def check_species(symbols: Sequence[str], *, loc: Iterable[str | int] = ("species",)) -> None:
    bad = unknown_species(symbols)
    if bad:
        raise MaterialError(
            f"unknown chemical element(s) {', '.join(bad)}",
            loc=loc,
            expected="element symbols such as Si, Na, Cl (case matters)",
            example="species: [Na, Cl]",
        )


def unsupported_species(symbols: Iterable[str], supported: Iterable[str] | None) -> list[str]:
    """The elements of ``symbols`` a model does not cover (sorted); [] when ``supported`` is None (unknown)."""
    if supported is None:
        return []
    cover = set(supported)
    return sorted({str(s) for s in symbols} - cover, key=_z)


def _z(symbol: str) -> int:
    try:
        return chemical_symbols().index(symbol) + 1
    except ValueError:
        return 10_000


def describe_species(symbols: Iterable[str], limit: int = 15) -> str:
    """'Ag, Al, Au' or '89 elements, H to Pu' for a long list (in order of atomic number)."""
    s = sorted(set(symbols), key=_z)
    if len(s) <= limit:
        return ", ".join(s)
    return f"{len(s)} elements, {s[0]} to {s[-1]}"


# ------------------------------------------------------------------------------ cells and atoms
def check_cell(cell: Any, *, loc: Iterable[str | int] = ("cell_A",)) -> float:
    """The cell volume (Å³); refuses non-finite or singular (|det| < 1e-6 Å³) cells."""
    c = np.asarray(cell, dtype=float)
    if c.shape != (3, 3) or not np.all(np.isfinite(c)):
        raise MaterialError(
            f"the cell must be 3x3 finite numbers (Å), got shape {c.shape}" + ("" if np.all(np.isfinite(c)) else " with NaN / inf"),
            loc=loc,
            expected="3 lattice vectors as rows (Å)",
            example="cell_A: [[0, 2.7155, 2.7155], [2.7155, 0, 2.7155], [2.7155, 2.7155, 0]]",
        )
    vol = float(np.linalg.det(c))
    if abs(vol) < MIN_VOLUME_A3:
        raise MaterialError(
            f"the cell is singular (volume {vol:.3g} Å³): its 3 lattice vectors are not linearly independent",
            loc=loc,
            expected="3 linearly independent lattice vectors as rows (Å)",
            example="cell_A: [[0, 2.7155, 2.7155], [2.7155, 0, 2.7155], [2.7155, 2.7155, 0]]",
        )
    return abs(vol)


def closest_pair(atoms: Atoms, cutoff: float = MIN_DISTANCE_A) -> tuple[float, int, int] | None:
    """(distance Å, i, j) of the closest pair of atoms nearer than ``cutoff``, periodic images
    included (i == j: an atom and its own image, i.e. a lattice vector shorter than ``cutoff``);
    None when no pair is that close."""
    from ase.neighborlist import neighbor_list

    i, j, d = neighbor_list("ijd", atoms, float(cutoff))
    if len(d) == 0:
        return None
    k = int(np.argmin(d))
    a, b = sorted((int(i[k]), int(j[k])))
    return float(d[k]), a, b


def check_distances(atoms: Atoms, *, min_distance_A: float = MIN_DISTANCE_A, loc: Iterable[str | int] = ("frac_coords",)) -> None:
    """Refuses atoms closer than ``min_distance_A`` (Å), periodic images included."""
    hit = closest_pair(atoms, min_distance_A)
    if hit is None:
        return
    d, i, j = hit
    sym = atoms.get_chemical_symbols()
    who = f"atom {i} ({sym[i]}) and its own periodic image" if i == j else f"atoms {i} ({sym[i]}) and {j} ({sym[j]})"
    raise MaterialError(
        f"{who} are {d:.3g} Å apart, closer than {min_distance_A} Å: overlapping atoms give meaningless phonons",
        loc=loc,
        expected=f"interatomic distances >= {min_distance_A} Å (fractional coordinates of distinct sites; Å for the cell)",
        example="frac_coords: [[0, 0, 0], [0.25, 0.25, 0.25]] (check for a duplicated atom or a coordinate typo)",
    )


def check_atoms(atoms: Atoms, *, min_distance_A: float = MIN_DISTANCE_A, species_loc=("species",), cell_loc=("cell_A",), coords_loc=("frac_coords",)) -> None:
    """Species, cell and interatomic distances of a structure."""
    check_species(atoms.get_chemical_symbols(), loc=species_loc)
    check_cell(atoms.cell[:], loc=cell_loc)
    if not np.all(np.isfinite(atoms.positions)):
        raise MaterialError("atomic positions contain NaN / inf", loc=coords_loc, expected="finite coordinates", example="frac_coords: [[0, 0, 0]]")
    check_distances(atoms, min_distance_A=min_distance_A, loc=coords_loc)


# ------------------------------------------------------------------------------ supercells
def check_supercell_matrix(matrix: Any, *, loc: Iterable[str | int] = ("supercell_matrix",), name: str = "supercell_matrix") -> np.ndarray:
    """The matrix as (3, 3) ints; 3 numbers are its diagonal.  Refuses non-integer, non-finite and
    singular / negative-determinant matrices."""
    example = f"{name}: [2, 2, 2]"
    try:
        m = np.asarray(matrix, dtype=float)
    except (TypeError, ValueError):
        raise MaterialError(f"{name} must be numbers, got {matrix!r}", loc=loc, expected="3 positive integers or a 3x3 integer matrix", example=example) from None
    if m.shape == (3,):
        m = np.diag(m)
    if m.shape != (3, 3):
        raise MaterialError(f"{name} must be 3 integers or a 3x3 matrix, got shape {m.shape}", loc=loc, expected="3 positive integers or a 3x3 integer matrix", example=example)
    if not np.all(np.isfinite(m)) or not np.allclose(m, np.round(m)):
        raise MaterialError(f"{name} must be integers, got {m.tolist()}", loc=loc, expected="integer entries (a supercell is made of whole cells)", example=example)
    det = float(np.linalg.det(np.round(m)))
    if det < 0.5:
        raise MaterialError(
            f"{name} has determinant {det:.3g}: " + ("singular" if abs(det) < 0.5 else "left-handed (negative)"),
            loc=loc,
            expected="a supercell of >= 1 cell: positive determinant",
            example=example,
        )
    return np.round(m).astype(int)


def supercell_atoms(n_atoms: int, matrix: Any) -> int:
    """Number of atoms of the supercell ``matrix`` of a cell with ``n_atoms`` atoms."""
    m = np.asarray(matrix, dtype=float)
    if m.shape == (3,):
        m = np.diag(m)
    return round(abs(float(np.linalg.det(m)))) * int(n_atoms)


def check_supercell_size(n_atoms: int, matrix: Any, *, limit: int = MAX_SUPERCELL_ATOMS, loc: Iterable[str | int] = ("supercell_matrix",), name: str = "supercell_matrix") -> int:
    """Number of supercell atoms; refuses more than ``limit``."""
    n = supercell_atoms(n_atoms, matrix)
    if n > limit:
        raise MaterialError(
            f"{name} makes a supercell of {n} atoms ({n_atoms} per cell), more than the limit of {limit}",
            loc=loc,
            expected=f"a supercell of <= {limit} atoms (raise max_supercell_atoms to allow more)",
            example=f"{name}: [2, 2, 2] ({8 * n_atoms} atoms)",
        )
    return n


# ------------------------------------------------------------------------------ reference data
def _non_finite(a: Any) -> int:
    try:
        x = np.asarray(a, dtype=float)
    except (TypeError, ValueError):
        return -1
    return int(x.size - np.count_nonzero(np.isfinite(x)))


def check_finite_dataset(dataset: dict | None, force_constants: Any = None, *, source: str = "the file", loc: Iterable[str | int] = ()) -> None:
    """Refuses NaN / inf in the displacements, forces (eV/Å) or force constants (eV/Å²) of a reference."""
    example = "re-export the forces of that displacement from the DFT run, or drop this material"
    if dataset:
        if "first_atoms" in dataset:
            for n, d in enumerate(dataset["first_atoms"], start=1):
                for key, unit in (("displacement", "Å"), ("forces", "eV/Å")):
                    if key in d and (bad := _non_finite(d[key])):
                        what = f"{abs(bad)} non-finite value(s) (NaN / inf)" if bad > 0 else "non-numeric values"
                        raise MaterialError(
                            f"{key} of displacement {n} (atom {int(d.get('number', -1))}) in {source} contain {what}",
                            loc=loc,
                            expected=f"finite {key} ({unit}) for every displacement",
                            example=example,
                        )
        else:
            for key, unit in (("displacements", "Å"), ("forces", "eV/Å")):
                if key in dataset and (bad := _non_finite(dataset[key])):
                    raise MaterialError(
                        f"{key} in {source} contain {abs(bad)} non-finite value(s) (NaN / inf)",
                        loc=loc,
                        expected=f"finite {key} ({unit})",
                        example=example,
                    )
    if force_constants is not None and (bad := _non_finite(force_constants)):
        raise MaterialError(
            f"force_constants in {source} contain {abs(bad)} non-finite value(s) (NaN / inf)",
            loc=loc,
            expected="finite force constants (eV/Å²)",
            example="recompute the force constants, or drop this material",
        )


def check_reference(ref, *, min_distance_A: float = MIN_DISTANCE_A, loc: Iterable[str | int] = ()) -> None:
    """All checks on a :class:`~pftflow.materials.reference.PhononReference` as read from its file:
    species, cell, interatomic distances of the unit cell, supercell matrix, finite data."""
    loc = tuple(loc)
    source = ref.provenance.get("path", ref.material_id) if isinstance(ref.provenance, dict) else ref.material_id
    atoms = ref.unitcell
    try:
        check_atoms(atoms, min_distance_A=min_distance_A, species_loc=loc, cell_loc=loc, coords_loc=loc)
        check_supercell_matrix(ref.supercell_matrix, loc=loc)
    except MaterialError as exc:
        raise MaterialError(f"{exc.message} (unit cell of {source})", loc=loc, expected=exc.expected, example="fix or replace the reference file, or drop this material") from None
    check_finite_dataset(ref.dataset, ref.force_constants, source=source, loc=loc)
