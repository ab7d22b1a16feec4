"""Trainer: the PFT loss falls, columns are seeded, kill-and-resume equals uninterrupted training, export loads."""

import functools

import numpy as np
import pytest
import torch
from ase.build import bulk

from pftflow.training.data import LabelledStructure, TrainingData, read_extxyz, write_extxyz
from pftflow.training.loss import LossWeights, pft_loss, sample_columns
from pftflow.calculators.energy_models import MACEEnergyModel
from pftflow.training.trainer import _Collator, cosine_warmup, train

from pft_testutils import tiny_mace


@functools.lru_cache(maxsize=None)
def _tiny_set(n_cotrain=2):
    """Two small 'phonon' structures labelled by a teacher MACE (other seed, 3x interaction scale): Hessian,
    forces and stress targets, plus a co-training set with energies, forces, stresses from the same teacher."""
    from pftflow.training.loss import model_hessian, predict

    teacher = MACEEnergyModel(tiny_mace(seed=1, scale=3.0))
    rng = np.random.default_rng(0)

    def label(a, with_h):
        g = teacher.build_graph([a])
        out = predict(teacher, g, create_graph=False)
        h = model_hessian(teacher, g).numpy() if with_h else None
        return LabelledStructure(
            a, float(out["energy_eV"][0]) if not with_h else None, out["forces_eV_per_A"].detach().numpy(),
            out["stress_eV_per_A3"][0].detach().numpy(), h, kind="phonon_reference" if with_h else "upstream",
        )

    phonon = [label(a, True) for a in (bulk("Si", "diamond", a=5.43), bulk("NaCl", "rocksalt", a=5.64))]
    cot = []
    for k in range(n_cotrain):
        a = bulk("Si", "diamond", a=5.43)
        a.positions += rng.normal(scale=0.05, size=a.positions.shape)
        cot.append(label(a, False))
    return phonon, cot


def _params(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def test_columns_seeded_and_loss_parts(make_mace):
    phonon, _ = _tiny_set()
    model = MACEEnergyModel(make_mace())
    graph, targets = _Collator(model, phonon)([0, 1])
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    c1, c2 = sample_columns(graph, targets, 2, g1), sample_columns(graph, targets, 2, g2)
    assert torch.equal(c1, c2) and c1.shape == (2, 2)
    assert int(c1[:, 0].max()) < 6 and int(c1[:, 1].max()) < 6
    loss, parts = pft_loss(model, graph, targets, LossWeights(), columns=c1)
    assert {"force_l2_eV_per_A", "stress_mae_eV_per_A3", "hessian_mae_eV_per_A2", "loss"} <= set(parts)
    assert "energy_mae_eV_per_atom" not in parts  # no energy targets
    assert loss.requires_grad


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_pft_loss_falls(make_mace, tmp_path, mode):
    phonon, cot = _tiny_set()
    cfg = dict(epochs=6, lr=5e-3, dtype="float64", ema_decay=0.5, progress=False, cotrain_ratio=1,
               columns_per_structure=2, finetune={"mode": mode, "lora_rank": 4})
    model, res = train(MACEEnergyModel(make_mace()), TrainingData(phonon, [], cot), cfg, tmp_path / mode)
    losses = [h["valid"]["loss"] for h in res.history]
    assert losses[-1] < 0.9 * losses[0], losses
    assert res.best_valid_loss == min(losses)
    assert "cotrain_energy_mae_eV_per_atom" in res.history[0]["train"]
    assert "phonon_energy_mae_eV_per_atom" not in res.history[0]["train"]  # w_E = 0 on phonon batches


@pytest.mark.parametrize("scheduler", ["plateau", "cosine"])
def test_kill_and_resume_reproduces_uninterrupted(make_mace, tmp_path, scheduler):
    phonon, cot = _tiny_set()
    data = TrainingData(phonon, [], cot)
    cfg = dict(epochs=3, lr=2e-3, dtype="float64", progress=False, cotrain_ratio=1, scheduler=scheduler, seed=7)
    if scheduler == "cosine":  # the per-step schedule's state is in the checkpoint too
        cfg.update(warmup_steps=1, min_lr=1e-5)

    ref_model, ref_res = train(MACEEnergyModel(make_mace()), data, cfg, tmp_path / "a")

    class Killed(RuntimeError):
        pass

    def kill(epoch, step, parts):
        if epoch == 1 and step == 1:
            raise Killed

    with pytest.raises(Killed):
        train(MACEEnergyModel(make_mace()), data, cfg, tmp_path / "b", callback=kill)
    model, res = train(MACEEnergyModel(make_mace()), data, cfg, tmp_path / "b")
    assert res.resumed_from_epoch == 1
    assert torch.equal(_params(model), _params(ref_model))
    assert [h["valid"]["loss"] for h in res.history] == [h["valid"]["loss"] for h in ref_res.history]


def test_export_mace_lora_and_delta_load_in_calculator(make_mace, tmp_path):
    from pftflow.calculators import get_calculator
    from pftflow.training.adapters import setup_finetuning
    from pftflow.training.export import export_model
    from pftflow.training.evaluate import model_forces

    atoms = bulk("NaCl", "rocksalt", a=5.64) * (2, 1, 1)
    atoms.positions[0] += 0.05
    for mode in ("lora", "delta"):
        m = MACEEnergyModel(make_mace())
        setup_finetuning(m, mode)
        with torch.no_grad():
            for p in m.parameters():
                if p.requires_grad:
                    p.add_(1e-2 * torch.randn_like(p))
        e_ref, f_ref = model_forces(m, [atoms])
        out = export_model(m, tmp_path / f"ft_{mode}.model", data_hash="abc", hyperparameters={"lr": 1e-3})
        assert out["provenance"]["data_hash"] == "abc" and out["provenance"]["finetune"]["mode"] == mode
        calc = get_calculator(out["calculator_spec"])
        res = calc.compute([atoms], stress=False)
        assert abs(res.energies_eV[0] - e_ref[0]) < 1e-8
        assert np.abs(res.forces_eV_per_A[0] - f_ref[0]).max() < 1e-8


def test_extxyz_round_trip(tmp_path):
    _, cot = _tiny_set()
    path = write_extxyz(cot, tmp_path / "up.extxyz")
    back = read_extxyz(path)
    assert len(back) == len(cot)
    for a, b in zip(cot, back):
        assert a.energy_eV == pytest.approx(b.energy_eV)
        assert np.allclose(a.forces_eV_per_A, b.forces_eV_per_A)
        assert np.allclose(a.stress_eV_per_A3, b.stress_eV_per_A3)


def test_cosine_warmup_factor():
    f = cosine_warmup(10, 110, 0.02)
    assert f(0) == pytest.approx(0.01) and f(5) == pytest.approx(0.505)  # linear warm-up from lr/100
    assert f(10) == pytest.approx(1.0) and f(60) == pytest.approx(0.51)  # half-way down: (1 + 0.02) / 2
    assert f(110) == pytest.approx(0.02) and f(500) == pytest.approx(0.02)


def test_cosine_lr_per_phonon_step_and_selection_on_hessian(make_mace, tmp_path):
    """lr of each epoch follows cosine_warmup per phonon step (2 per epoch here); selection: hessian picks the epoch
    of the lowest validation Hessian error (8 fixed columns), recorded next to the total loss in the history."""
    phonon, _ = _tiny_set()
    cfg = dict(epochs=4, lr=4e-3, dtype="float64", progress=False, cotrain_ratio=0, scheduler="cosine", warmup_steps=2,
               min_lr=4e-5, selection="hessian", valid_columns=8, ema_decay=0.5, seed=3,
               hessian_probe={"kind": "column", "normalisation": "near_field", "near_field_A": 3.0})
    _, res = train(MACEEnergyModel(make_mace()), TrainingData(phonon, phonon, []), cfg, tmp_path / "c")
    f = cosine_warmup(2, 8, 4e-5 / 4e-3)
    assert [h["lr"] for h in res.history] == pytest.approx([4e-3 * f(2 * (e + 1)) for e in range(4)])
    hs = [h["valid"]["hessian_mae_eV_per_A2"] for h in res.history]
    assert res.selection == "hessian_mae_eV_per_A2"
    assert res.best_epoch == int(np.argmin(hs)) and res.best_valid_loss == min(hs)
    assert all("loss" in h["valid"] for h in res.history)
