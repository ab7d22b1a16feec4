"""Folded supercells (training/fold.py): folded force constants keep the big cell's commensurate phonons."""

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from phonopy import Phonopy
from phonopy.structure.atoms import PhonopyAtoms

from pftflow.training.data import from_phonon_reference
from pftflow.training.fold import fold_force_constants, halved_matrix, small_matrix_divides


@pytest.fixture(scope="module")
def cu_4x4x4():
    """EMT Cu, primitive fcc, 4x4x4 supercell (64 atoms), force constants by phonopy finite displacements."""
    prim = bulk("Cu", "fcc", a=3.6)
    unit = PhonopyAtoms(symbols=prim.get_chemical_symbols(), cell=prim.cell[:], scaled_positions=prim.get_scaled_positions())
    ph = Phonopy(unit, supercell_matrix=np.diag([4, 4, 4]))
    ph.generate_displacements(distance=0.01)
    forces = []
    for sc in ph.supercells_with_displacements:
        from ase import Atoms
        a = Atoms(sc.symbols, cell=sc.cell, scaled_positions=sc.scaled_positions, pbc=True)
        a.calc = EMT()
        forces.append(a.get_forces())
    ph.forces = forces
    ph.produce_force_constants()
    return ph


def test_folded_cell_has_the_big_cells_commensurate_frequencies(cu_4x4x4):
    small = halved_matrix(cu_4x4x4.supercell_matrix)
    np.testing.assert_array_equal(small, np.diag([2, 2, 2]))
    ph2 = fold_force_constants(cu_4x4x4, small)
    assert len(ph2.supercell) == 8 and ph2.force_constants.shape == (8, 8, 3, 3)
    qs = [[0, 0, 0], [0.5, 0, 0], [0.5, 0.5, 0], [0.5, 0.5, 0.5], [0, 0.5, 0.5]]
    for q in qs:
        f_big = cu_4x4x4.get_frequencies(q)
        f_small = ph2.get_frequencies(q)
        np.testing.assert_allclose(f_small, f_big, atol=1e-6)
    assert cu_4x4x4.get_frequencies([0.5, 0.5, 0.5]).max() > 5.0  # THz: a real spectrum
    # acoustic sum rule survives the fold
    np.testing.assert_allclose(ph2.force_constants.sum(axis=1), 0, atol=1e-8)
    # an incommensurate q is NOT kept (the fold is exact only where it should be)
    assert np.abs(ph2.get_frequencies([0.25, 0, 0]) - cu_4x4x4.get_frequencies([0.25, 0, 0])).max() > 1e-2
    # the folded cell is training data like any reference
    ls = from_phonon_reference(ph2, material_id="cu-emt-folded")[0]
    assert ls.hessian_eV_per_A2.shape == (24, 24)


def test_non_dividing_matrix_refused(cu_4x4x4):
    assert not small_matrix_divides(cu_4x4x4.supercell_matrix, np.diag([3, 3, 3]))
    with pytest.raises(ValueError, match="does not divide"):
        fold_force_constants(cu_4x4x4, np.diag([3, 3, 3]))


def test_reduced_matrix_divides_rows_by_their_gcd(cu_4x4x4):
    from pftflow.training.fold import reduced_matrix

    m = reduced_matrix([[5, 5, 0], [-3, 3, 0], [0, 0, 1]], np.eye(3), 12, 100)
    assert small_matrix_divides([[5, 5, 0], [-3, 3, 0], [0, 0, 1]], m) and 12 * abs(round(np.linalg.det(m))) <= 100
    m = reduced_matrix(cu_4x4x4.supercell_matrix, cu_4x4x4.unitcell.cell, 1, 8)
    assert abs(round(np.linalg.det(m))) == 8
    ph = fold_force_constants(cu_4x4x4, m)
    np.testing.assert_allclose(ph.get_frequencies([0.5, 0.5, 0.5]), cu_4x4x4.get_frequencies([0.5, 0.5, 0.5]), atol=1e-6)


def test_phonon_reference_folded_on_request(cu_4x4x4):
    """``fold_max_atoms`` (spec: training.data.fold_max_atoms) gives the folded cell and its Hessian; a cell that
    already fits stays as it is."""
    from pftflow.training.data import fc_to_hessian

    ls = from_phonon_reference(cu_4x4x4, material_id="cu", fold_max_atoms=8)[0]
    assert len(ls.atoms) == 8
    np.testing.assert_allclose(ls.hessian_eV_per_A2, fc_to_hessian(fold_force_constants(cu_4x4x4, np.diag([2, 2, 2])).force_constants), atol=0)
    assert len(from_phonon_reference(cu_4x4x4, material_id="cu", fold_max_atoms=64)[0].atoms) == 64
    assert len(from_phonon_reference(cu_4x4x4, material_id="cu", fold_max_atoms=20)[0].atoms) == 16  # 4x4x4 -> 4x2x2 (16 atoms)
