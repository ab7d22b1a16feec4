"""Harmonic force constants from the model Hessian (instead of finite displacements).

Φ(i a, j b) = ∂²E/∂u_ia ∂u_jb = −∂F_jb/∂u_ia (eV/Å²).  A calculator that implements
:meth:`pftflow.calculators.base.ForceCalculator.hessian_rows` gives the rows Φ(i, ·) of the
symmetry-independent atoms i of the supercell (three Hessian-vector products per atom for torch models,
``jax.jvp`` of ``jax.grad`` for Nequix); phonopy's own ``distribute_force_constants`` fills the rows of the
other atoms with the supercell's space-group operations, exactly as it does for rows fitted from
displacement forces, and phonopy's translational / permutational symmetrization follows, as in
:func:`pftflow.phonons.harmonic.produce_force_constants`.

Cost: 3 × (number of independent atoms) Hessian-vector products on the undisplaced supercell, against one
force evaluation per symmetry-reduced displacement (docs/hessian.md, benchmarks/README.md).
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from pftflow.materials.structures import phonopy_to_atoms
from pftflow.phonons.harmonic import produce_force_constants

#: the two ways a model's force constants can be produced (campaign option ``force_constants``)
FC_METHODS = ("displacements", "hessian")


def independent_atoms(phonon) -> np.ndarray:
    """Symmetry-independent atoms of the supercell of ``phonon`` (phonopy's supercell symmetry, the same
    atoms phonopy displaces)."""
    return np.asarray(phonon.symmetry.get_independent_atoms(), dtype="int64")


def supercell_atoms(phonon) -> Atoms:
    """The undisplaced supercell of ``phonon`` as ASE Atoms (Å, masses kept)."""
    return phonopy_to_atoms(phonon.supercell)


def distribute_rows(phonon, rows_by_atom: dict[int, np.ndarray]) -> np.ndarray:
    """Full force constants (N, N, 3, 3) eV/Å² from rows ``{i: Φ(i, :, :, :) (N, 3, 3)}`` of a set of atoms
    that reaches every atom by a supercell symmetry operation (phonopy's ``distribute_force_constants``)."""
    from phonopy.harmonic.force_constants import distribute_force_constants

    n = len(phonon.supercell)
    fc = np.zeros((n, n, 3, 3), dtype="double", order="C")
    done = np.array(sorted(rows_by_atom), dtype="int64")
    for i in done:
        fc[i] = rows_by_atom[int(i)]
    sym = phonon.symmetry
    reached = set(np.asarray(sym.atomic_permutations)[:, done].ravel().tolist())
    if len(reached) < n:
        missing = sorted(set(range(n)) - reached)
        more = "..." if len(missing) > 10 else ""
        raise ValueError(
            f"Hessian rows of atoms {done.tolist()} do not cover atoms {missing[:10]}{more} by symmetry; "
            "give the rows of phonon.symmetry.get_independent_atoms()"
        )
    distribute_force_constants(
        fc,
        done,
        np.array(phonon.supercell.cell.T, dtype="double", order="C"),
        np.array(sym.symmetry_operations["rotations"], dtype="int64", order="C"),
        np.array(sym.atomic_permutations, dtype="int64", order="C"),
    )
    return fc


def site_symmetrize_rows(phonon, rows_by_atom: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """Average each row Φ(i, :) over the site-symmetry group of atom i: Φ(i, p(j)) = R Φ(i, j) Rᵀ for every
    supercell operation (R, p) that fixes i (phonopy's permutation convention).

    Needed for models that are not exactly invariant under the crystal's improper operations: SevenNet-0
    (``is_parity: False``, rotations only) gives Si a Hessian whose second-neighbour blocks break the Td site
    symmetry by ~2 %; phonopy's displacement fit averages over the site group implicitly (it rotates one
    displacement into all symmetry-equivalent ones), so without this step the two methods differ by that
    much.  For an O(3)-equivariant model it only removes round-off.  (Written by hand: phonopy symmetrizes
    fitted rows inside its solver only.)"""
    sym = phonon.symmetry
    lat = np.array(phonon.supercell.cell.T, dtype=float)
    inv = np.linalg.inv(lat)
    rots = [lat @ r @ inv for r in sym.symmetry_operations["rotations"]]
    perms = np.asarray(sym.atomic_permutations)
    out = {}
    for i, row in rows_by_atom.items():
        acc = np.zeros_like(row)
        ops = [(R, p) for R, p in zip(rots, perms) if p[i] == i]
        for R, p in ops:
            acc[p] += np.einsum("ab,jbc,dc->jad", R, row, R)
        out[i] = acc / len(ops)
    return out


def symmetrize_fc(phonon, fc: np.ndarray, level: int = 1) -> np.ndarray:
    """phonopy's translational + permutational symmetrization of full force constants (copy; the same
    routine :meth:`phonopy.Phonopy.symmetrize_force_constants` runs)."""
    from phonopy.harmonic.force_constants import symmetrize_force_constants

    out = np.array(fc, dtype="double", order="C")
    symmetrize_force_constants(out, level=level, lang=getattr(phonon, "_lang", "C"))
    return out


def hessian_force_constants(phonon, calculator, *, site_symmetrize: bool = True, symmetrize: bool = True) -> np.ndarray:
    """Full force constants (N, N, 3, 3) eV/Å² of the supercell of ``phonon`` from ``calculator``'s Hessian.

    ``calculator``: a :class:`~pftflow.calculators.base.ForceCalculator` with ``hessian_rows``.  Only the
    rows of the independent atoms are computed; they are averaged over their site-symmetry groups
    (``site_symmetrize``, :func:`site_symmetrize_rows`), the rest follow by symmetry, and phonopy's
    translational / permutational symmetrization is applied (``symmetrize``).  Pure: ``phonon`` is not
    modified (set ``phonon.force_constants = fc`` to analyse it).
    """
    atoms = supercell_atoms(phonon)
    idx = independent_atoms(phonon)
    rows = np.asarray(calculator.hessian_rows(atoms, [int(i) for i in idx]), dtype=float)
    n = len(atoms)
    if rows.shape != (len(idx), 3, n, 3):
        raise ValueError(f"{calculator!r}.hessian_rows returned shape {rows.shape}, expected {(len(idx), 3, n, 3)}")
    if not np.all(np.isfinite(rows)):
        raise FloatingPointError(f"{calculator!r}: non-finite Hessian entries for the supercell of {atoms.get_chemical_formula()}")
    # rows[k, a, j, b] = Φ(i_k a, j b)  ->  fc[i_k, j, a, b]
    by_atom = {int(i): rows[k].transpose(1, 0, 2) for k, i in enumerate(idx)}
    if site_symmetrize:
        by_atom = site_symmetrize_rows(phonon, by_atom)
    fc = distribute_rows(phonon, by_atom)
    return symmetrize_fc(phonon, fc) if symmetrize else fc


def force_constants_with(method: str, phonon, calculator, **kwargs) -> np.ndarray:
    """Force constants by ``method`` (``"hessian"`` or ``"displacements"``); with displacements the phonon
    must already hold the dataset and ``kwargs['forces_eV_per_A']`` the forces of its supercells.
    Sets and returns ``phonon.force_constants``."""
    if method not in FC_METHODS:
        raise ValueError(f"force_constants: {method!r} is not one of {FC_METHODS} (field 'force_constants' of the model)")
    if method == "hessian":
        fc = hessian_force_constants(phonon, calculator, symmetrize=kwargs.get("symmetrize", True))
        phonon.force_constants = fc
        return fc

    return produce_force_constants(
        phonon, kwargs["forces_eV_per_A"], subtract_drift=kwargs.get("subtract_drift", True), symmetrize=kwargs.get("symmetrize", True)
    )
