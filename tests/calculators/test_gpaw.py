"""GPAW reference calculator: input validation (always) and force = -dE/dx (needs GPAW).

The GPAW tests are skipped when GPAW or its PAW setups are missing; install with
``bash scripts/install_gpaw.sh``.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from pftflow.calculators.gpaw_reference import (
    GPAW_DEFAULTS,
    gpaw_available,
    gpaw_parameters,
    kpoint_grid,
    make_gpaw_calculator,
)

needs_gpaw = pytest.mark.skipif(
    not gpaw_available(), reason="GPAW (with gpaw-data setups) not installed: run scripts/install_gpaw.sh"
)


# ------------------------------------------------------------------------------ no GPAW needed
def test_defaults_document_value_and_unit():
    for name, entry in GPAW_DEFAULTS.items():
        assert {"value", "unit", "doc"} <= set(entry), name
        assert entry["doc"].strip(), name


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"ecut_ev": -100}, "ecut_ev"),
        ({"ecut_ev": float("nan")}, "ecut_ev"),
        ({"ecut_ev": "high"}, "ecut_ev"),
        ({"kpoint_density": 0}, "kpoint_density"),
        ({"smearing_ev": -0.1}, "smearing_ev"),
        ({"scf_energy_tol": 0}, "scf_energy_tol"),
        ({"scf_density_tol": -1e-5}, "scf_density_tol"),
        ({"scf_forces_tol": float("inf")}, "scf_forces_tol"),
        ({"xc": ""}, "xc"),
        ({"maxiter": 0}, "maxiter"),
        ({"gamma": "yes"}, "gamma"),
        ({"mixer": "pulay"}, "mixer"),
        ({"seed": "42"}, "seed"),
    ],
)
def test_invalid_input_raises_clear_error(kwargs, match):
    # Validation happens before GPAW is imported, so this runs without GPAW too.
    with pytest.raises(ValueError, match=match):
        make_gpaw_calculator(**kwargs)


def test_non_periodic_atoms_rejected():
    molecule = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]], cell=[5, 5, 5], pbc=False)
    with pytest.raises(ValueError, match="pbc"):
        gpaw_parameters(molecule)


def test_parameters_without_and_with_atoms():
    p = gpaw_parameters()
    assert p["mode"] == {"name": "pw", "ecut": GPAW_DEFAULTS["ecut_ev"]["value"]}
    assert p["kpts"] == {"density": GPAW_DEFAULTS["kpoint_density"]["value"], "gamma": True}
    assert p["symmetry"] == {"point_group": False, "time_reversal": True}
    assert p["xc"] == "PBE" and p["txt"] is None
    assert p["occupations"]["name"] == "fermi-dirac"
    assert gpaw_parameters(smearing_ev=0)["occupations"] == {"name": "fixed"}
    assert "forces" not in gpaw_parameters(scf_forces_tol=None)["convergence"]

    si16 = bulk("Si", "diamond", a=5.431).repeat((2, 2, 2))
    assert gpaw_parameters(si16)["kpts"] == {"size": (3, 3, 3), "gamma": True}


def test_default_kpoint_grids_of_the_16_atom_supercells():
    # The default density sits away from rounding edges for all three crystals.
    d = GPAW_DEFAULTS["kpoint_density"]["value"]
    grids = {
        name: kpoint_grid(bulk(name, s, a=a).repeat((2, 2, 2)), d)
        for name, s, a in [("Si", "diamond", 5.431), ("NaCl", "rocksalt", 5.64), ("MgO", "rocksalt", 4.21)]
    }
    assert grids == {"Si": (3, 3, 3), "NaCl": (3, 3, 3), "MgO": (3, 3, 3)}
    for name, s, a in [("Si", "diamond", 5.431), ("NaCl", "rocksalt", 5.64), ("MgO", "rocksalt", 4.21)]:
        cell = bulk(name, s, a=a).repeat((2, 2, 2))
        assert kpoint_grid(cell, d * 0.97) == grids[name] == kpoint_grid(cell, d * 1.03)


def test_missing_gpaw_names_the_installer(monkeypatch):
    monkeypatch.setitem(sys.modules, "gpaw", None)  # makes `import gpaw` raise ImportError
    with pytest.raises(ImportError, match="scripts/install_gpaw.sh"):
        make_gpaw_calculator()


# ------------------------------------------------------------------------------ GPAW
@needs_gpaw
def test_factory_works_without_atoms():
    calc = make_gpaw_calculator(ecut_ev=300, kpoint_density=2.0)
    for method in ("get_potential_energy", "get_forces", "get_stress"):  # ASE calculator interface
        assert callable(getattr(calc, method))
    assert calc.params.mode.ecut == 300
    assert calc.params.kpts.density == 2.0 and calc.params.kpts.gamma


@needs_gpaw
def test_force_equals_central_difference_of_energy():
    """GPAW force on a displaced atom == -(E(x+h) - E(x-h)) / 2h.

    2-atom Si primitive cell, atom 1 displaced by 0.05 Å along x (force ~0.75 eV/Å), 200 eV cutoff,
    3x3x3 Γ-centred grid, tight SCF.  One calculator is reused for the three structures, which also
    checks that moving atoms in a reused calculator (as the batch backend does) gives exact forces.

    Tolerance: measured |F - FD| = 9e-7 eV/Å (GPAW 26.7, h = 1e-3 Å; the same at 10x looser SCF,
    so it is the O(h^2) difference error, not SCF noise).  5e-5 eV/Å leaves a 50x margin and is still
    ~1e-4 of the force, so unit (Ha/Bohr), sign or missing-term errors cannot pass.
    """
    atoms = bulk("Si", "diamond", a=5.431)
    atoms.positions[1, 0] += 0.05
    calc = make_gpaw_calculator(
        ecut_ev=200,
        kpoint_density=1.4,  # 3x3x3 for the primitive cell
        scf_energy_tol=1e-7,
        scf_density_tol=1e-6,
        scf_forces_tol=1e-5,
    )
    atoms.calc = calc
    force = atoms.get_forces()[1, 0]
    assert abs(force) > 0.3  # a real restoring force, not a symmetry zero

    h = 1e-3
    energies = []
    for sign in (+1, -1):
        moved = atoms.copy()
        moved.positions[1, 0] += sign * h
        moved.calc = calc
        energies.append(moved.get_potential_energy(force_consistent=True))
    fd = -(energies[0] - energies[1]) / (2 * h)
    assert force < 0  # pulled back towards the ideal site
    np.testing.assert_allclose(force, fd, rtol=0, atol=5e-5)
