"""Energy scans along imaginary modes (pftflow.phonons.modes) on a cell built to have them.

Simple-cubic (Po-like) Cu with ASE's EMT at a = 2.4 Å (about EMT's equilibrium volume for this lattice, stress
~0.01 eV/Å³) is dynamically unstable: in a 2x2x2 supercell phonopy gives −3.489 THz at M (0.5, 0.5, 0) and
−2.432 THz (twice) at X (0.5, 0, 0).  The mode patterns are checked against phonopy's eigenproblem, the curvature
of E(Q) at Q = 0 against phonopy's frequency, and the double well (symmetric minima at ±Q, E(Q) = E(−Q) exactly:
a zone-boundary pattern changes sign under a lattice translation) and the symmetry breaking against EMT itself.
No shared data, no MLIP: ~3 s.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones

from pftflow.phonons.harmonic import frequencies_at, produce_force_constants
from pftflow.phonons.modes import ImaginaryMode, analyse_well, default_amplitudes, imaginary_modes, mode_pattern, plot_mode_scans, scan_energies, scan_mode
from pftflow.sampling import fc2_displacements

M, X = [0.5, 0.5, 0.0], [0.5, 0.0, 0.0]
#: sqrt(eV/Å²/amu) in THz (phonopy's VaspToTHz)
TO_THZ = 15.633302


def _emt_phonopy(atoms: Atoms, n: int = 2):
    ph, supercells = fc2_displacements(atoms, n * np.eye(3, dtype=int))
    forces = []
    for sc in supercells:
        sc.calc = EMT()
        forces.append(sc.get_forces())
    produce_force_constants(ph, forces)
    return ph


@pytest.fixture(scope="module")
def sc_cu():
    return _emt_phonopy(Atoms("Cu", cell=np.eye(3) * 2.4, pbc=True))


def test_imaginary_modes_are_phonopys(sc_cu):
    modes = imaginary_modes(sc_cu)
    direct = frequencies_at(sc_cu, np.array([M, X]))
    assert [m.qpoint for m in modes] == [M, X]  # most negative first; equivalent q-points (stars) once
    assert modes[0].frequency_THz == pytest.approx(direct[0, 0], abs=1e-10) == pytest.approx(-3.489, abs=2e-3)
    assert modes[1].frequency_THz == pytest.approx(direct[1, 0], abs=1e-10) == pytest.approx(-2.432, abs=2e-3)
    assert (modes[0].band_index, modes[0].degeneracy, modes[1].degeneracy) == (0, 1, 2)
    assert imaginary_modes(sc_cu, max_modes=1) == modes[:1]
    assert imaginary_modes(sc_cu, threshold_THz=-3.0) == modes[:1]
    # fcc Cu is stable: nothing below the threshold, Γ's acoustic modes are never listed
    assert imaginary_modes(_emt_phonopy(bulk("Cu", "fcc", a=3.59))) == []


def test_mode_pattern_is_a_mass_weighted_eigenvector(sc_cu):
    """Σ m |u|² = 1, and sqrt(m)·pattern is an eigenvector of the supercell's mass-weighted force constants
    with eigenvalue −(3.489 THz / VaspToTHz)²: Q is the normal-mode coordinate (amu^½·Å)."""
    supercell, pattern = mode_pattern(sc_cu, M, 0)
    m = supercell.get_masses()
    assert np.sum(m[:, None] * pattern**2) == pytest.approx(1.0, abs=1e-12)
    assert np.allclose(supercell.positions, sc_cu.supercell.positions)  # one-atom primitive cell: phonopy's order
    fc = np.asarray(sc_cu.force_constants)  # (8, 8, 3, 3) eV/Å²
    n = len(m)
    d = fc.transpose(0, 2, 1, 3).reshape(3 * n, 3 * n) / np.sqrt(np.outer(np.repeat(m, 3), np.repeat(m, 3)))
    w = (np.sqrt(m)[:, None] * pattern).ravel()
    lam = -((3.48893874 / TO_THZ) ** 2)
    np.testing.assert_allclose(d @ w, lam * w, atol=1e-6)


def test_double_well_along_the_unstable_m_mode(sc_cu, tmp_path):
    mode = imaginary_modes(sc_cu)[0]
    q = default_amplitudes(20.0, 21)  # steps of 2 amu^½·Å: u up to 0.9 Å per atom
    lj = LennardJones(sigma=2.2, epsilon=0.05, rc=4.5)
    scan = scan_mode(sc_cu, mode, {"reference": EMT(), "LJ": lj}, q, material_id="Cu-sc")
    ref = scan.curves["reference"]
    e = np.asarray(ref.energies_eV)
    assert e[10] == 0.0 and np.allclose(e, e[::-1], atol=1e-9)  # E(Q) = E(−Q)
    # the double well: E drops by 1.70 eV per supercell at ±13.5 amu^½·Å (u ≈ 0.6 Å), EMT on the grid itself
    assert ref.double_well and ref.well_depth_eV == pytest.approx(-1.697, abs=5e-3)
    assert ref.q_min_negative_amu05_A == pytest.approx(-ref.q_min_positive_amu05_A, abs=1e-6)
    assert 12.0 < ref.q_min_positive_amu05_A < 15.0
    grid_min = scan_energies(scan.supercell, scan.pattern_A_per_amu05_A, [ref.q_min_positive_amu05_A], EMT())[0]
    e0 = scan_energies(scan.supercell, scan.pattern_A_per_amu05_A, [0.0], EMT())[0]
    assert grid_min - e0 <= ref.well_depth_eV + 1e-9  # the refined minimum is at least as low as the grid's
    # relaxing the supercell displaced to the minimum breaks the cubic symmetry (Pm-3m, 221) for good
    assert (ref.spacegroup_initial, ref.relax_converged, ref.spacegroup_changed) == (221, True, True) and ref.spacegroup_relaxed != 221
    assert ref.relaxed_energy_eV <= ref.well_depth_eV + 1e-6
    # a second calculator gets its own curve on the same pattern
    assert scan.curves["LJ"].double_well and scan.curves["LJ"].well_depth_eV > ref.well_depth_eV
    assert [r["calculator"] for r in scan.summary()] == ["reference", "LJ"]
    png = plot_mode_scans([scan], tmp_path / "scan.png")
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 10_000


def test_curvature_at_zero_is_phonopys_frequency(sc_cu):
    """The harmonic limit: d²E/dQ² at Q = 0 (±0.1 amu^½·Å) gives phonopy's frequency, with its sign."""
    for mode in imaginary_modes(sc_cu):
        supercell, pattern = mode_pattern(sc_cu, mode.qpoint, mode.band_index)
        q = [-0.1, 0.0, 0.1]
        w = analyse_well(q, scan_energies(supercell, pattern, q, EMT()))
        assert w["curvature_frequency_THz"] == pytest.approx(mode.frequency_THz, rel=2e-3)
        assert w["well_depth_eV"] < 0 and w["double_well"]


def test_stable_mode_has_no_well_and_relaxes_back(sc_cu):
    f = frequencies_at(sc_cu, np.array([M]))[0, 1]  # the stable transverse mode at M, +7.870 THz
    scan = scan_mode(sc_cu, ImaginaryMode(qpoint=M, band_index=1, frequency_THz=float(f)), {"reference": EMT()}, default_amplitudes(1.0, 11))
    c = scan.curves["reference"]
    assert c.well_depth_eV == 0.0 and c.q_min_amu05_A == 0.0 and not c.double_well
    assert c.curvature_frequency_THz == pytest.approx(f, rel=5e-3) and f == pytest.approx(7.870, abs=2e-3)
    assert (c.spacegroup_relaxed, c.spacegroup_changed) == (221, False)  # back to simple cubic


def test_bad_grid_and_failing_calculator(sc_cu):
    with pytest.raises(ValueError, match="must contain Q = 0"):
        analyse_well([-1.0, 1.0], [0.0, 0.0])
    with pytest.raises(ValueError, match="odd"):
        default_amplitudes(1.0, 4)

    class Broken:
        def compute(self, structures, stress=False):
            raise RuntimeError("no energies today")

    scan = scan_mode(sc_cu, imaginary_modes(sc_cu)[0], {"reference": EMT(), "broken": Broken()}, default_amplitudes(2.0, 5), relax=False)
    assert scan.curves["broken"].error == "RuntimeError: no energies today" and scan.curves["reference"].error is None
