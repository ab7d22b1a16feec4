"""Fine-tuning modes: exact at init, only adapter parameters get gradients, merging preserves the model."""

import copy
import functools

import pytest
import torch
from ase.build import bulk

from pftflow.training.adapters import merge_adapters, setup_finetuning, trainable_parameters
from pftflow.training.loss import predict
from pftflow.calculators.energy_models import MACEEnergyModel, SevenNetEnergyModel


def _check_mode(make_model, structs, mode, freeze=()):
    base = make_model()
    g = base.build_graph(structs)
    e0 = predict(base, g, stress=False, create_graph=False)["energy_eV"].detach()
    m = make_model()
    rep = setup_finetuning(m, {"mode": mode, "freeze": list(freeze)})
    assert 0 < rep["n_trainable"] <= rep["n_parameters_base"] or mode == "lora"
    out = predict(m, g, stress=False, create_graph=True)
    # exact reproduction of the base model at initialisation
    assert torch.equal(out["energy_eV"].detach(), e0)
    (out["energy_eV"].sum() + out["forces_eV_per_A"].pow(2).sum()).backward()
    trainable = {id(p) for p in trainable_parameters(m)}
    for name, p in m.named_parameters():
        if id(p) not in trainable:
            assert p.grad is None, f"{mode}: non-adapter parameter {name} got a gradient"
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainable_parameters(m))
    if mode in ("delta", "lora"):
        names = [n for n, p in m.named_parameters() if p.requires_grad]
        assert all(("delta" in n) or ("lora_" in n) for n in names), names[:5]
    with torch.no_grad():
        for p in trainable_parameters(m):
            p.add_(1e-2 * torch.randn_like(p))
    e1 = predict(m, g, stress=False, create_graph=False)["energy_eV"].detach()
    assert not torch.equal(e1, e0)
    merge_adapters(m)
    e2 = predict(m, g, stress=False, create_graph=False)["energy_eV"].detach()
    assert torch.allclose(e1, e2, rtol=0, atol=1e-10)
    return rep


@functools.lru_cache(maxsize=None)
def _sevennet64():
    return SevenNetEnergyModel.from_checkpoint("7net-0", dtype=torch.float64)


def _small_structs():
    si = bulk("Si", "diamond", a=5.43)
    si.positions[0] += 0.05
    nacl = bulk("NaCl", "rocksalt", a=5.64)
    nacl.positions[1] += [0.03, -0.02, 0.01]
    return [si, nacl]


@pytest.mark.parametrize("mode", ["full", "frozen", "delta", "lora"])
def test_modes_mace(mode, make_mace):
    torch.manual_seed(0)
    base = MACEEnergyModel(make_mace())
    rep = _check_mode(
        lambda: copy.deepcopy(base), _small_structs(), mode,
        freeze=["embedding", "layer0"] if mode == "frozen" else (),
    )
    if mode == "lora":
        assert rep["n_trainable"] < rep["n_parameters_base"]
    if mode == "frozen":
        assert rep["n_trainable"] < rep["n_parameters_base"]


@pytest.mark.parametrize("mode", ["delta", "lora"])
def test_modes_sevennet(mode):
    torch.manual_seed(0)
    rep = _check_mode(lambda: copy.deepcopy(_sevennet64()), _small_structs()[:1], mode)
    if mode == "lora":
        assert rep["n_trainable"] < 0.1 * rep["n_parameters_base"]


def test_parameter_groups_and_bad_mode(make_mace):
    m = MACEEnergyModel(make_mace())
    groups = m.parameter_groups()
    assert {"embedding", "layer0", "layer1", "readout"} <= set(groups)
    with pytest.raises(ValueError, match="unknown fine-tuning mode"):
        setup_finetuning(m, "everything")
    with pytest.raises(ValueError, match="freeze"):
        setup_finetuning(MACEEnergyModel(make_mace()), "frozen")
