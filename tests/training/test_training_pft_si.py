"""PFT on real DFT force constants (Si, phonopy test data): the force-constant MAE falls by at least 50 %."""

import pytest
import torch

from pftflow.training.data import TrainingData, from_phonon_reference
from pftflow.training.evaluate import force_constant_mae
from pftflow.calculators.energy_models import MACEEnergyModel
from pftflow.training.trainer import train

pytestmark = pytest.mark.shared_data


def test_pft_finetune_lowers_si_force_constant_mae(make_mace, shared, tmp_path):
    path = shared("phonopy/phonopy_params_Si.yaml")  # Si, 2x2x2 supercell of the primitive cell (16 atoms)
    data = from_phonon_reference(path)
    assert data[0].hessian_eV_per_A2.shape == (48, 48)
    model = MACEEnergyModel(make_mace(atomic_numbers=(14,), r_max=4.0))
    before = force_constant_mae(model, path)
    cfg = dict(
        epochs=6, lr=1e-2, dtype="float64", ema_decay=0.9, progress=False, columns_per_structure=4,
        weights={"energy": 0.0, "forces": 20.0, "stress": 5.0, "hessian": 100.0},
    )
    # one structure, 4 sampled columns per step, 4 steps per epoch
    model, res = train(model, TrainingData(data * 4), cfg, tmp_path)
    after = force_constant_mae(model, path)
    assert after <= 0.5 * before, f"force-constant MAE {before:.3f} -> {after:.3f} eV/A^2"
