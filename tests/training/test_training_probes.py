"""Multi-column / Rademacher Hessian probes and size-independent normalisation (training/probes.py)."""

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.lj import LennardJones

from pft_testutils import tiny_mace
from pftflow.training.loss import LossWeights, Targets, pft_loss, predict
from pftflow.calculators.energy_models import MACEEnergyModel
from pftflow.training.probes import (
    ProbeSpec, batch_probes, far_apart_atoms, hessian_reach_A, make_probe, near_field_mask, probe_error, reference_hv,
)

R_MAX, N_LAYERS = 4.0, 2  # tiny MACE: Hessian reach 2 × 4 Å × 2 layers = 16 Å


@pytest.fixture(scope="module")
def si_long():
    """Si, 1x1x8 conventional cells (64 atoms, 43 Å along z), rattled so no entry is zero by symmetry."""
    a = bulk("Si", "diamond", a=5.43, cubic=True).repeat((1, 1, 8))
    a.positions += np.random.default_rng(0).normal(scale=0.03, size=a.positions.shape)
    return a


@pytest.fixture(scope="module")
def model():
    return MACEEnergyModel(tiny_mace(atomic_numbers=(14,), r_max=R_MAX))


def _hv(model, atoms, v):
    g = model.build_graph([atoms])
    return predict(model, g, probes=torch.as_tensor(v)[None], stress=False, create_graph=False)["hessian_probes_eV_per_A2"][0].detach().numpy()


def test_multi_column_gives_exact_columns_beyond_the_reach(model, si_long):
    reach = hessian_reach_A(R_MAX, N_LAYERS)
    atoms = far_apart_atoms(si_long.positions, si_long.cell[:], 2, reach, np.random.default_rng(1))
    assert len(atoms) == 2
    cols = []
    for a, d in zip(atoms, (0, 2)):
        v = np.zeros((len(si_long), 3)); v[a, d] = 1.0
        cols.append(_hv(model, si_long, v))
    v = np.zeros((len(si_long), 3)); v[atoms[0], 0] = v[atoms[1], 2] = 1.0
    multi = _hv(model, si_long, v)
    np.testing.assert_allclose(multi, cols[0] + cols[1], atol=1e-10)
    # disjoint supports: near each probed atom the multi-column probe IS that atom's column
    for a, col in zip(atoms, cols):
        m = near_field_mask(si_long.positions, si_long.cell[:], [a], reach / 2)
        np.testing.assert_allclose(multi[m], col[m], atol=1e-10)
        assert np.abs(col[m]).max() > 1e-2  # a real column, not zeros


def test_rademacher_probe_is_a_finite_difference_of_forces(model, si_long):
    spec = ProbeSpec(kind="rademacher")
    v, w, _ = make_probe(si_long.positions, si_long.cell[:], spec, np.random.default_rng(2))
    assert set(np.unique(v)) == {-1.0, 1.0} and np.isclose(w.sum(), 1.0)
    hv = _hv(model, si_long, v)
    eps = 1e-4

    def forces(sign):
        a = si_long.copy(); a.positions += sign * eps * v
        g = model.build_graph([a])
        return predict(model, g, stress=False, create_graph=False)["forces_eV_per_A"].detach().numpy()

    fd = (forces(-1) - forces(+1)) / (2 * eps)
    np.testing.assert_allclose(hv, fd, atol=2e-6 * np.abs(hv).max())


def test_probe_loss_column_equals_current_column_loss(model, si_long):
    """kind column + mean normalisation reproduces the current one-column MAE for the same column."""
    g = model.build_graph([si_long])
    n = len(si_long)
    h = torch.as_tensor(np.random.default_rng(3).normal(size=(3 * n, 3 * n)))
    t = Targets(hessians_eV_per_A2=[h])
    w = LossWeights(energy=0, forces=0, stress=0, hessian=1.0)
    spec = ProbeSpec()
    v, ref, wt = batch_probes(g, t, spec, 1, np.random.default_rng(4))
    col = int(np.flatnonzero(v[0].reshape(-1).numpy())[0])
    _, p_probe = pft_loss(model, g, t, w, probes=(v, ref, wt), create_graph=False)
    _, p_col = pft_loss(model, g, t, w, columns=torch.tensor([[col]]), create_graph=False)
    assert p_probe["hessian_mae_eV_per_A2"] == pytest.approx(p_col["hessian_mae_eV_per_A2"], rel=1e-12)
    np.testing.assert_allclose(ref[0].reshape(-1).numpy(), h[:, col].numpy())
    assert reference_hv(h, v[0]).shape == (n, 3)


def _lj_column(atoms, sigma, atom, d, eps=1e-4):
    """Hessian column (N, 3) eV/Å² of a short-range LJ (cutoff 3 Å: first fcc shell) by central differences."""
    def f(s):
        a = atoms.copy(); a.calc = LennardJones(sigma=sigma, epsilon=0.4, rc=3.0, smooth=True)
        a.positions[atom, d] += s * eps
        return a.get_forces()
    return (f(-1) - f(1)) / (2 * eps)


@pytest.mark.parametrize("norm", ["near_field", "column_sum"])
def test_normalisation_invariant_under_repeating_the_cell(norm):
    """Cu-like fcc, 2x2x2 vs 4x4x4 conventional (32 / 256 atoms): the near-field and column-sum errors of a
    column are the same in both, the mean over entries is 8x smaller in the big cell.  LJ (reach 3 Å, under half
    the 7.2 Å small cell) instead of EMT, whose many-body reach would fold images into the 2x2x2 column."""
    errs, means = [], []
    for rep in (2, 4):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(rep)
        pred, ref = _lj_column(atoms, 2.30, 0, 0), _lj_column(atoms, 2.35, 0, 0)
        spec = ProbeSpec(normalisation=norm, near_field_A=3.0)
        mask = near_field_mask(atoms.positions, atoms.cell[:], [0], spec.near_field_A)
        w = mask / mask.sum() if norm == "near_field" else mask / spec.reference_atoms
        errs.append(float(probe_error(torch.tensor(pred)[None], torch.tensor(ref)[None], torch.tensor(w)[None])))
        means.append(np.abs(pred - ref).mean())
    assert errs[0] > 1e-3
    assert errs[1] == pytest.approx(errs[0], rel=1e-6)
    assert means[0] / means[1] == pytest.approx(8.0, rel=1e-6)


def test_trainer_option_default_keeps_the_config_dict_and_trains_with_probes(model, si_long, tmp_path):
    from pftflow.training.data import LabelledStructure, TrainingData
    from pftflow.training.trainer import TrainConfig, train

    assert "hessian_probe" not in TrainConfig().as_dict()  # default: store keys of existing runs unchanged
    cfg = TrainConfig(epochs=1, cotrain_ratio=0, lr=1e-3, progress=False, dtype="float64", device="cpu",
                      weights={"energy": 0, "forces": 0, "stress": 0, "hessian": 100.0},
                      hessian_probe={"kind": "multi_column", "atoms_per_probe": 2, "min_separation_A": 16.0, "normalisation": "near_field"})
    assert cfg.as_dict()["hessian_probe"]["kind"] == "multi_column"
    n = len(si_long)
    ls = LabelledStructure(si_long, None, None, None, np.eye(3 * n) * 5.0)
    import copy
    m = copy.deepcopy(model)
    m, res = train(m, TrainingData([ls], [ls]), cfg, tmp_path / "run")
    assert res.history[0]["valid"]["hessian_mae_eV_per_A2"] < res.valid_before["hessian_mae_eV_per_A2"]
