"""Hessian-vector products (double backward) equal finite differences of forces; batched over sizes."""

import numpy as np
import pytest
import torch

from pftflow.training.loss import predict
from pftflow.calculators.energy_models import MACEEnergyModel, SevenNetEnergyModel


def _fd_check(model, structs, columns, h=1e-4):
    g = model.build_graph(structs)
    cols = torch.tensor([columns])
    hv = predict(model, g, columns=cols, create_graph=False)["hessian_columns_eV_per_A2"][0]
    for s, c in enumerate(columns):
        a = int(g.ptr[s])

        def forces(delta):
            g2 = model.build_graph(structs)
            p = g.positions_A.clone()
            p.view(-1)[3 * a + c] += delta
            g2.positions_A = p
            return predict(model, g2, stress=False, create_graph=False)["forces_eV_per_A"].detach()

        fd = -(forces(h) - forces(-h)) / (2 * h)
        n0, n1 = int(g.ptr[s]), int(g.ptr[s + 1])
        rel = (hv[n0:n1] - fd[n0:n1]).abs().max() / fd[n0:n1].abs().max()
        assert rel <= 1e-5, f"structure {s} column {c}: relative HVP error {rel:.2e}"


def test_hvp_matches_finite_differences_mace(make_mace, si_rattled, nacl_rattled):
    model = MACEEnergyModel(make_mace(dtype=torch.float64))
    _fd_check(model, [si_rattled(), nacl_rattled()], [5, 7])


def test_hvp_matches_finite_differences_sevennet(si_rattled, nacl_rattled):
    model = SevenNetEnergyModel.from_checkpoint("7net-0", dtype=torch.float64)
    _fd_check(model, [si_rattled(), nacl_rattled()], [4, 10])


def test_sevennet_adapter_matches_calculator(si_rattled):
    """Energy, forces and stress (ASE sign) of the adapter agree with sevenn's own ASE calculator."""
    from sevenn.calculator import SevenNetCalculator

    model = SevenNetEnergyModel.from_checkpoint("7net-0", dtype=torch.float32)
    atoms = si_rattled()
    out = predict(model, model.build_graph([atoms]), create_graph=False)
    a = atoms.copy()
    a.calc = SevenNetCalculator("7net-0", device="cpu")
    assert abs(a.get_potential_energy() - float(out["energy_eV"][0])) < 1e-3
    assert np.abs(a.get_forces() - out["forces_eV_per_A"].detach().numpy()).max() < 1e-4
    s = out["stress_eV_per_A3"][0].detach().numpy()
    voigt = s[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
    assert np.abs(a.get_stress() - voigt).max() < 1e-5


def test_mace_stress_is_strain_derivative(make_mace, si_rattled):
    """σ = (1/V) dE/dε (eV/Å³) checked by finite differences of the energy under a symmetric strain."""
    model = MACEEnergyModel(make_mace(dtype=torch.float64))
    atoms = si_rattled()
    g = model.build_graph([atoms])
    sigma = predict(model, g, create_graph=False)["stress_eV_per_A3"][0]
    eps = 1e-5
    for i, j in [(0, 0), (1, 2)]:
        e = torch.zeros(1, 3, 3, dtype=torch.float64)
        e[0, i, j] = e[0, j, i] = eps
        ep = model.energy(g, g.positions_A, e).detach()
        em = model.energy(g, g.positions_A, -e).detach()
        fd = (ep - em) / (2 * eps) / g.volume_A3 / (1 if i == j else 2)
        assert abs(float(fd[0]) - float(sigma[i, j])) < 1e-7
