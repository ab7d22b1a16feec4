"""SevenNet export: a delta/LoRA fine-tuned SevenNet-0 is written as a sevenn checkpoint the backends load."""

import numpy as np
import torch
from ase.build import bulk

from pftflow.calculators import get_calculator
from pftflow.training.adapters import setup_finetuning
from pftflow.training.evaluate import model_forces
from pftflow.training.export import export_model
from pftflow.calculators.energy_models import SevenNetEnergyModel


def test_sevennet_lora_export_loads_in_calculator(tmp_path):
    atoms = bulk("Si", "diamond", a=5.43) * (2, 1, 1)
    atoms.positions[0] += 0.05
    m = SevenNetEnergyModel.from_checkpoint("7net-0", dtype=torch.float32)
    rep = setup_finetuning(m, {"mode": "lora", "lora_rank": 2})
    e0, _ = model_forces(m, [atoms])  # LoRA at init == base model
    torch.manual_seed(0)
    with torch.no_grad():
        for p in m.parameters():
            if p.requires_grad:
                p.add_(1e-2 * torch.randn_like(p))
    e_ref, f_ref = model_forces(m, [atoms])
    out = export_model(m, tmp_path / "7net-pft.pth", data_hash="d", hyperparameters={"mode": "lora"})
    assert out["calculator_spec"]["backend"] == "sevennet"
    assert out["provenance"]["base_model"]["sha256"]
    res = get_calculator(out["calculator_spec"]).compute([atoms], stress=False)
    assert abs(res.energies_eV[0] - e_ref[0]) < 1e-4 * len(atoms)
    assert abs(res.energies_eV[0] - e0[0]) > 10 * abs(res.energies_eV[0] - e_ref[0])  # the fine-tune changed it
    assert np.abs(res.forces_eV_per_A[0] - f_ref[0]).max() < 1e-4
    assert rep["n_trainable"] < rep["n_parameters_base"]
