"""Training evaluation reports the phonon benchmark's MDR metrics (pftflow.phonons.metrics), checked against
phonopy directly on a real harmonic crystal: fcc Al with ASE's EMT (no reference data, no MLIP, ~1 s).

Known answer: the reference force constants are EMT's scaled by s = 0.81 and the model is EMT itself, so every
model frequency is the reference one divided by sqrt(s) = 0.9 exactly (imaginary ones included).
"""

import numpy as np
import pytest

from pftflow.phonons.harmonic import PhononSettings
from pftflow.phonons.metrics import summarize
from pftflow.training.evaluate import force_constant_mae, phonon_comparison
from pftflow.units import THZ_TO_K

EMT_SPEC = {"backend": "ase", "import_path": "ase.calculators.emt:EMT", "name": "EMT"}
SETTINGS = PhononSettings(mesh=[8, 8, 8], band_npoints=11)


def _phonopy_direct(ph):
    """ω_max (K) over phonopy's commensurate points of the supercell, S (J/K/mol) at 300 K and the mesh."""
    from phonopy.harmonic.dynmat_to_fc import get_commensurate_points

    ph.run_qpoints(get_commensurate_points(ph.supercell_matrix))
    omega_max_K = ph.qpoints.frequencies.max() * THZ_TO_K
    ph.run_mesh([8, 8, 8], is_gamma_center=True)
    ph.run_thermal_properties(temperatures=[300.0], exclude_gamma_acoustic=True)  # as PhononSettings' default
    return omega_max_K, ph.thermal_properties.entropy[0], ph.mesh.weights.copy(), ph.mesh.frequencies.copy()


@pytest.mark.blas_sensitive  # S at 300 K on an 8x8x8 mesh: moved 1 % between kernels while the Γ acoustic modes were in the sums
def test_phonon_comparison_known_answer_scaled_force_constants(al_emt_phonopy, pinned):
    s = 0.81
    ref = al_emt_phonopy(s)
    row = phonon_comparison(EMT_SPEC, ref, SETTINGS)

    omega_ref_K, entropy_ref, w, f_ref = _phonopy_direct(al_emt_phonopy(s))
    # reference side: MDR definitions straight from phonopy (K at the commensurate points, 300 K)
    assert row["omega_max_K_ref"] == pytest.approx(omega_ref_K, rel=1e-12)
    assert pinned("entropy_300K_J_per_K_mol_ref", row["entropy_300K_J_per_K_mol_ref"]) == pytest.approx(entropy_ref, rel=1e-12)
    assert row["temperature_K"] == 300.0
    assert row["mesh"] == [8, 8, 8]
    # model side: frequencies / 0.9
    assert row["omega_max_K"] == pytest.approx(omega_ref_K / 0.9, rel=1e-8)
    assert row["omega_max_abs_error_K"] == pytest.approx(omega_ref_K * (1 / 0.9 - 1), rel=1e-6)
    # q-point-weighted mesh MAE (THz): |f/0.9 - f| averaged with the mesh weights
    expected_mae = (1 / 0.9 - 1) * (w[:, None] * np.abs(f_ref)).sum() / (w.sum() * f_ref.shape[1])
    assert row["mesh_mae_THz"] == pytest.approx(expected_mae, rel=1e-6)
    assert row["band_rmse_THz"] > 0
    assert row["stable"] and row["stable_ref"] and row["stability_agrees"]
    assert row["entropy_abs_error_300K_J_per_K_mol"] > 0.1  # softer reference: higher S
    assert row["entropy_error_300K_J_per_K_mol"] < 0
    # force constants: model - reference = (1 - s) * EMT = (1 - s) / s * reference
    ref_fc = np.asarray(al_emt_phonopy(s).force_constants)
    assert row["force_constant_mae_eV_per_A2"] == pytest.approx((1 - s) / s * np.abs(ref_fc).mean(), rel=1e-6)
    assert force_constant_mae(EMT_SPEC, al_emt_phonopy(s), SETTINGS) == row["force_constant_mae_eV_per_A2"]
    assert row["metric_errors"] == []
    # the rows feed the benchmark's summary
    summ = summarize([row])
    assert summ["omega_max_mae_K"] == row["omega_max_abs_error_K"]
    assert summ["mesh_mae_THz"] == row["mesh_mae_THz"]
    assert summ["stability_accuracy"] == 1.0


def test_phonon_comparison_same_model_has_zero_errors(al_emt_phonopy):
    row = phonon_comparison(EMT_SPEC, al_emt_phonopy(1.0), SETTINGS)
    assert row["omega_max_abs_error_K"] < 1e-8
    assert row["heat_capacity_abs_error_300K_J_per_K_mol"] < 1e-8
    assert row["free_energy_abs_error_300K_kJ_per_mol"] < 1e-10
    assert row["mesh_mae_THz"] < 1e-8 and row["band_rmse_THz"] < 1e-8
    assert row["force_constant_mae_eV_per_A2"] < 1e-12
