"""Batched force evaluation (calculators/batching.py): CHGNet with first derivatives only, chunks by atoms."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from pftflow.calculators.batching import _chunks_by_atoms

pytest.importorskip("chgnet")


def _rattled():
    rng = np.random.default_rng(0)
    cells = [bulk("NaCl", "rocksalt", a=5.64).repeat((2, 2, 2)), bulk("Si", "diamond", a=5.43).repeat((2, 2, 2)),
             bulk("NaCl", "rocksalt", a=5.70).repeat((2, 2, 1))]
    for a in cells:
        a.positions += rng.normal(0.0, 0.05, a.positions.shape)
    return cells  # 64, 64 and 32 atoms


@pytest.fixture(scope="module")
def chgnet():
    from pftflow.calculators.backends import get_calculator

    return get_calculator({"backend": "chgnet", "batch_atoms": 100})


def test_chunks_follow_cell_size():
    from ase import Atoms

    cells = [Atoms("H" * n) for n in (360, 360, 360, 360, 360, 360, 8, 8)]
    assert _chunks_by_atoms(cells, len(cells), 2048) == [[0, 1, 2, 3, 4], [5, 6, 7]]  # 5 x 360 = 1800 <= 2048
    assert _chunks_by_atoms(cells, len(cells), 100) == [[0], [1], [2], [3], [4], [5], [6, 7]]  # one structure at least


def test_chgnet_first_derivatives_equal_chgnet_predict_structure(chgnet):
    """The library's own inference (predict_structure, create_graph=True) is the reference; float32 model."""
    from pymatgen.io.ase import AseAtomsAdaptor

    cells = _rattled()
    res = chgnet.compute(cells)
    assert res.provenance["batch_atoms"] == 100
    preds = chgnet._load().predict_structure([AseAtomsAdaptor.get_structure(a) for a in cells], task="efs", batch_size=3)
    for a, p, e, f, s in zip(cells, preds, res.energies_eV, res.forces_eV_per_A, res.stresses_eV_per_A3):
        assert e == pytest.approx(float(p["e"]) * len(a), abs=1e-4)  # CHGNet predicts eV/atom
        np.testing.assert_allclose(f, p["f"], atol=2e-5)  # eV/Å; forces here are O(1) eV/Å
        gpa = np.asarray(p["s"]) / 160.21766208  # CHGNet GPa, ASE sign -> eV/Å³
        np.testing.assert_allclose(s, [gpa[0, 0], gpa[1, 1], gpa[2, 2], gpa[1, 2], gpa[0, 2], gpa[0, 1]], atol=1e-6)
    assert np.abs(np.concatenate(res.forces_eV_per_A)).max() > 0.1  # rattled: the comparison is not of zeros


def test_chgnet_batches_do_not_change_results(chgnet):
    from pftflow.calculators.backends import get_calculator

    cells = _rattled()
    one_by_one = chgnet.compute(cells)  # 100 atoms: one structure per batch
    together = get_calculator({"backend": "chgnet", "batch_atoms": 4096}).compute(cells)  # one batch of all three
    np.testing.assert_allclose(np.concatenate(together.forces_eV_per_A), np.concatenate(one_by_one.forces_eV_per_A), atol=2e-5)
    np.testing.assert_allclose(together.energies_eV, one_by_one.energies_eV, atol=1e-4)


def test_bad_batch_atoms_refused():
    from pftflow.calculators.backends import get_calculator

    with pytest.raises(ValueError, match="'batch_atoms' must be >= 1 atom, got 0"):
        get_calculator({"backend": "chgnet", "batch_atoms": 0})
