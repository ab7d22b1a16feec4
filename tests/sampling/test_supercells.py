"""The supercell rule (pymatgen CubicSupercellTransformation as atomate2 uses it): lengths and atom
counts within the rule, the smallest cell that reaches the length (known answers for cubic crystals),
a warning / error before any calculation when the atom limit is exceeded, and one matrix shared by the
rattled and displaced sets of a material."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from ase.build import bulk

from pftflow.sampling import SupercellRule, SupercellWarning, choose_supercell, make_supercell, sample_set

CRYSTALS = {
    "Si": lambda: bulk("Si", "diamond", a=5.431),
    "NaCl": lambda: bulk("NaCl", "rocksalt", a=5.64),
    "Cu": lambda: bulk("Cu", "fcc", a=3.61),
    "Mg": lambda: bulk("Mg", "hcp", a=3.21, c=5.21),
}


@pytest.mark.parametrize("name", list(CRYSTALS))
@pytest.mark.parametrize("min_length", [8.0, 12.0])
def test_rule_lengths_and_atom_counts(name, min_length):
    unit = CRYSTALS[name]()
    rule = SupercellRule(min_length_A=min_length, max_atoms=400)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SupercellWarning)  # within the limit: no warning
        c = choose_supercell(unit, rule, material_id=name)
    m = c.supercell_matrix
    assert m.dtype.kind == "i" and m.shape == (3, 3)
    assert c.n_atoms == round(abs(np.linalg.det(m))) * len(unit) <= rule.max_atoms
    assert min(c.widths_A) >= min_length - 1e-9  # 90° cells: the face-to-face widths are the rule's lengths
    assert c.angles_deg == pytest.approx([90, 90, 90], abs=rule.angle_tolerance_deg)
    assert not c.exceeds_max_atoms and c.message is None
    # the supercell built from the matrix (phonopy convention) is the one described
    sc = make_supercell(unit, m)
    assert len(sc) == c.n_atoms
    assert np.allclose(sc.cell[:], m.T @ unit.cell[:])
    assert np.allclose(sc.cell.cellpar()[:3], c.lengths_A)


@pytest.mark.parametrize(
    "name,min_length,n_atoms",
    [("Cu", 10.0, 108), ("Cu", 7.0, 32), ("Si", 10.0, 64), ("NaCl", 12.0, 216)],
)
def test_smallest_cubic_cell_that_reaches_the_length(name, min_length, n_atoms):
    """Cubic crystals: the conventional cube a repeated ceil(L / a) times (Cu a = 3.61 Å: 2a = 7.22 Å
    < 10 Å <= 3a = 10.83 Å -> 108 atoms; Si a = 5.431: 2a = 10.86 Å -> 64; NaCl 2a = 11.28 < 12 -> 216)."""
    c = choose_supercell(CRYSTALS[name](), SupercellRule(min_length_A=min_length, max_atoms=1000))
    assert c.n_atoms == n_atoms
    a = {"Cu": 3.61, "Si": 5.431, "NaCl": 5.64}[name]
    assert c.widths_A == pytest.approx([a * np.ceil(min_length / a)] * 3)


def test_warns_before_any_calculation_when_the_cell_is_too_large():
    si = CRYSTALS["Si"]()
    with pytest.warns(SupercellWarning, match=r"Si: .* 64 atoms, more than supercell.max_atoms = 50 .*lower supercell.min_length_A"):
        c = choose_supercell(si, SupercellRule(min_length_A=10.0, max_atoms=50), material_id="Si")
    assert c.exceeds_max_atoms and c.n_atoms == 64 and min(c.widths_A) >= 10.0
    with pytest.raises(ValueError, match="more than supercell.max_atoms = 50"):
        choose_supercell(si, SupercellRule(min_length_A=10.0, max_atoms=50, on_exceed="error"), material_id="Si")
    # a matrix given for the material is checked against the same limit
    with pytest.warns(SupercellWarning, match="the given supercell_matrix has 128 atoms"):
        choose_supercell(si, SupercellRule(max_atoms=100), supercell_matrix=[4, 4, 4])
    given = choose_supercell(si, SupercellRule(max_atoms=100), supercell_matrix=[2, 2, 2])
    assert given.source == "given" and given.n_atoms == 16 and given.supercell_matrix.tolist() == [[2, 0, 0], [0, 2, 0], [0, 0, 2]]


def test_rattled_strained_and_displaced_sets_share_the_supercell():
    """All sets of a material are built on its one matrix: same cell, same atom order, and the
    rattled / displaced structures are small displacements of the same undisturbed supercell."""
    nacl = CRYSTALS["NaCl"]()
    m = choose_supercell(nacl, SupercellRule(min_length_A=10.0)).supercell_matrix
    sets = {
        kind: sample_set(nacl, m, {"kind": kind, "n_structures": 3, "amplitude_A": 0.02, "seed": 5, "min_distance_A": 2.0})
        for kind in ("rattle", "mc_rattle", "displacements")
    }
    base = sets["rattle"].supercell
    for kind, s in sets.items():
        assert np.array_equal(s.supercell_matrix, m), kind
        assert np.array_equal(s.supercell.positions, base.positions) and np.array_equal(s.supercell.cell[:], base.cell[:]), kind
        for a in s.structures:
            assert np.array_equal(a.cell[:], base.cell[:]) and a.get_chemical_symbols() == base.get_chemical_symbols(), kind
            assert np.abs(a.positions - base.positions).max() < 0.2, kind
    # the displaced structures are phonopy's: one atom moved by distance_A (0.01 Å), the others not
    for a in sets["displacements"].structures:
        d = np.linalg.norm(a.positions - base.positions, axis=1)
        assert np.sum(d > 1e-9) == 1 and d.max() == pytest.approx(0.01, abs=1e-12)
