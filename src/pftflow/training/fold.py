"""Folded supercells: force constants of a large supercell summed over images onto a smaller periodic cell.

Where the small supercell matrix divides the large one (M_big · M_small⁻¹ integer), the small cell's force
constants are, exactly, Φ_small(i, j) = Σ_{j' ≡ j mod small lattice} Φ_big(i', j'), with i' the large-cell atom at
the position of small-cell atom i.  The small cell then has the large cell's dynamical matrix at every q-point
commensurate with the small cell (Γ included): the phase factors of those q are periodic on the small lattice,
so the sum over images loses nothing there.  A periodic model's Hessian in the small cell is the same fold of
its large-cell Hessian, so a Hessian loss on the folded cell compares like with like at 1/8 of the atoms for a
halving in each direction (a step costs ~8× less, memory ~64× less for a full (3N)² target).

phonopy builds both supercells (:class:`phonopy.Phonopy`) and computes their frequencies; it has no folding of
force constants onto a smaller supercell, so the image sum and the atom map below are written by hand.

Units: force constants eV/Å², positions Å.
"""

from __future__ import annotations

import numpy as np


def _full_fc(ph) -> np.ndarray:
    fc = np.asarray(ph.force_constants)
    if fc.shape[0] != fc.shape[1]:
        from phonopy.harmonic.force_constants import compact_fc_to_full_fc

        fc = compact_fc_to_full_fc(ph.primitive, fc)
    return fc


def small_matrix_divides(big_matrix, small_matrix) -> bool:
    """True when the small supercell lattice contains the large one (M_big · M_small⁻¹ is an integer matrix)."""
    q = np.asarray(big_matrix, dtype=float) @ np.linalg.inv(np.asarray(small_matrix, dtype=float))
    return bool(np.allclose(q, np.round(q), atol=1e-8))


def halved_matrix(big_matrix) -> np.ndarray | None:
    """The supercell matrix with every row halved where that stays integer (row i of M_big even -> M_big[i]/2),
    None when no row can be halved."""
    m = np.asarray(big_matrix, dtype=int).copy()
    changed = False
    for i in range(3):
        if np.all(m[i] % 2 == 0) and np.any(m[i] != 0):
            m[i] //= 2
            changed = True
    return m if changed else None


def reduced_matrix(big_matrix, unit_lattice_A, n_unit_atoms: int, max_atoms: int) -> np.ndarray | None:
    """A supercell matrix that divides ``big_matrix``, with at most ``max_atoms`` atoms where one exists: rows are
    divided, the longest (Å) first, by the smallest prime factor of the gcd of their entries (a row [5, 5, 0]
    -> [1, 1, 0]).  None when no row can be divided."""
    from math import gcd

    m = np.asarray(big_matrix, dtype=int).copy()
    lat = np.asarray(unit_lattice_A, dtype=float)
    changed = False
    while n_unit_atoms * abs(round(np.linalg.det(m))) > max_atoms:
        cands = [i for i in range(3) if gcd(*[abs(int(x)) for x in m[i]]) > 1]
        if not cands:
            break
        i = max(cands, key=lambda r: np.linalg.norm(m[r] @ lat))
        g = gcd(*[abs(int(x)) for x in m[i]])
        p = next(d for d in range(2, g + 1) if g % d == 0)
        m[i] //= p
        changed = True
    return m if changed else None


def fold_force_constants(ph_big, small_matrix, *, symprec: float = 1e-5):
    """A :class:`phonopy.Phonopy` on the supercell ``small_matrix`` of ``ph_big``'s unit cell, with the force
    constants of ``ph_big`` folded onto it (full (n, n, 3, 3) eV/Å²).  Refused when the matrix does not divide."""
    from phonopy import Phonopy

    big = np.asarray(ph_big.supercell_matrix)
    small = np.asarray(small_matrix, dtype=int)
    if not small_matrix_divides(big, small):
        raise ValueError(f"small supercell matrix {small.tolist()} does not divide {big.tolist()}: use one with M_big · M_small⁻¹ integer")
    ph = Phonopy(ph_big.unitcell, supercell_matrix=small, primitive_matrix=ph_big.primitive_matrix, symprec=symprec)
    fc_big = _full_fc(ph_big)
    sc_b, sc_s = ph_big.supercell, ph.supercell
    lat_s = np.asarray(sc_s.cell)
    inv_s = np.linalg.inv(lat_s)
    frac_s = np.asarray(sc_s.scaled_positions) % 1.0

    def to_small(cart):
        f = (np.asarray(cart) @ inv_s) % 1.0
        d = f[:, None, :] - frac_s[None, :, :]
        d -= np.round(d)
        dist = np.linalg.norm(d @ lat_s, axis=-1)
        idx = dist.argmin(axis=1)
        if np.any(dist[np.arange(len(idx)), idx] > 1e-4):
            raise ValueError("supercell atoms do not map onto the small cell: the two supercells are not commensurate")
        return idx

    big_to_small = to_small(sc_b.positions)                     # j' -> j
    # i' for each small atom i: a big-cell atom at its position (the first one of its class)
    first_big = np.full(len(sc_s), -1)
    for jp, j in enumerate(big_to_small):
        if first_big[j] < 0:
            first_big[j] = jp
    if np.any(first_big < 0):
        raise ValueError("some small-cell atoms have no image in the large cell")
    ns = len(sc_s)
    fc = np.zeros((ns, ns, 3, 3))
    for i in range(ns):
        np.add.at(fc[i], big_to_small, fc_big[first_big[i]])
    ph.force_constants = fc
    return ph
