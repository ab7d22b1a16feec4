"""SevenNet with its interaction layers checkpointed (pftflow.calculators.sevennet_layers): the same numbers to float32
rounding, fewer tensors kept for the backward pass, and the memory estimate that follows the threshold."""

import numpy as np
import pytest
import torch
from ase.build import bulk

from pftflow.calculators.backends import SEVENNET_CHECKPOINT_ATOMS, SevenNetCalculator, get_calculator
from pftflow.calculators.sevennet_layers import CheckpointedLayer


def _cells():
    rng = np.random.default_rng(7)
    cells = []
    for a in (bulk("NaCl", "rocksalt", a=5.64, cubic=True) * (2, 2, 2), bulk("Si", "diamond", a=5.43, cubic=True) * (2, 2, 2)):
        a = a.copy()
        a.positions += rng.normal(0, 0.03, a.positions.shape)
        cells.append(a)
    return cells  # 64 atoms each


def _saved_bytes(calc, atoms) -> int:
    """Bytes of the tensors autograd keeps for the backward pass outside checkpointed regions (their own hooks take
    over inside them) during one force call."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    a = atoms.copy()
    a.calc = calc.ase_calculator()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        a.get_forces()
    return total


def test_checkpointed_layers_give_the_plain_model_to_float32_rounding():
    cells = _cells()
    plain = get_calculator({"backend": "sevennet", "checkpoint_atoms": 0})
    ckpt = get_calculator({"backend": "sevennet", "checkpoint_atoms": 1})  # every cell is checkpointed
    model = ckpt.ase_calculator().model
    layers = [m for m in model._modules.values() if isinstance(m, CheckpointedLayer)]
    assert len(layers) == 5  # SevenNet-0: five interaction layers, each regrouped whole
    assert [n for n in layers[0].layer] == ["0_self_connection_intro", "0_self_interaction_1", "0_convolution",
                                            "0_self_interaction_2", "0_self_connection_outro", "0_equivariant_gate"]
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in plain.ase_calculator().model.parameters())
    a, b = plain.compute(cells), ckpt.compute(cells)
    np.testing.assert_array_equal(a.energies_eV, b.energies_eV)  # the forward pass is the same computation
    # the backward pass sums the gradients reaching a layer's inputs in another order: measured here 4 of 192 force
    # entries 1 float32 ulp apart (7e-9 eV/Å); on two 960-atom mp-7943 cells, none.  1e-6 eV/Å leaves a 100x margin
    # and is 1e-4 of the 0.01 Å finite-displacement forces
    for fa, fb in zip(a.forces_eV_per_A, b.forces_eV_per_A):
        np.testing.assert_allclose(fb, fa, rtol=0, atol=1e-6)
    np.testing.assert_allclose(b.stresses_eV_per_A3, a.stresses_eV_per_A3, rtol=0, atol=1e-8)
    assert np.abs(a.forces_eV_per_A[0]).max() > 0.1  # the rattled cells have real forces to compare
    assert b.provenance["checkpoint_atoms"] == 1


def test_checkpointing_keeps_fewer_tensors_for_the_backward_pass_and_only_from_the_threshold():
    cell = _cells()[0]
    plain = _saved_bytes(get_calculator({"backend": "sevennet", "checkpoint_atoms": 0}), cell)
    ckpt = _saved_bytes(get_calculator({"backend": "sevennet", "checkpoint_atoms": 64}), cell)
    below = _saved_bytes(get_calculator({"backend": "sevennet", "checkpoint_atoms": 65}), cell)
    assert ckpt < 0.2 * plain, (ckpt, plain)
    assert below == plain


def test_memory_estimate_follows_the_threshold_and_bad_values_are_refused():
    default = SevenNetCalculator()
    assert default.checkpoint_atoms == SEVENNET_CHECKPOINT_ATOMS == 512
    # the coefficients' measurements: backends.py (960-atom mp-7943: 3.39 GiB plain, 1.84 GiB checkpointed)
    assert default.evaluation_GiB(960, 48) == pytest.approx(960 * default.memory_per_atom_checkpointed_GiB)
    assert default.evaluation_GiB(360, 24) == pytest.approx(360 * default.memory_per_atom_GiB)
    assert SevenNetCalculator(checkpoint_atoms=0).evaluation_GiB(960, 48) == pytest.approx(960 * default.memory_per_atom_GiB)
    for bad in (-1, 2.5, True, "512", float("nan")):
        with pytest.raises(ValueError, match="'checkpoint_atoms' must be an integer >= 1 atom"):
            get_calculator({"backend": "sevennet", "checkpoint_atoms": bad})
