"""MDR metrics (pftflow.phonons.metrics): hand-computed values on tiny synthetic results, the
q-point weighting checked against the full (unreduced) mesh on real phonons, and the summary's
MAE / classification numbers on a hand-made set."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pftflow.materials.reference import ThermalProperties
from pftflow.phonons.harmonic import PhononResult, PhononSettings, analyze_phonons, band_path, run_mesh
from pftflow.phonons.metrics import (
    band_rmse,
    material_metrics,
    mdr_summary,
    mesh_frequency_errors,
    stability_classification,
    summarize,
    thermal_field_names,
)

# --------------------------------------------------------------------------- synthetic data
QPOINTS = [[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.5, 0.5, 0.0]]
WEIGHTS = [1, 3, 4]  # irreducible points of a 2x2x2 mesh: multiplicities sum to 8
REF_MESH_F = [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
# model: bands at the second q-point given in descending order (must be sorted before comparing)
MODEL_MESH_F = [[0.5, 1.0], [3.5, 2.0], [4.0, 7.0]]

REF_BANDS_F = [[[0.0, 1.0], [1.0, 2.0], [2.0, 3.0]], [[3.0, 3.0], [4.0, 4.0]]]
MODEL_BANDS_F = [[[0.0, 1.0], [2.0, 1.0], [2.0, 4.0]], [[3.0, 3.0], [4.0, 2.0]]]
BAND_Q = [[[0, 0, 0], [0.25, 0, 0], [0.5, 0, 0]], [[0.5, 0, 0], [0.5, 0.5, 0]]]


def fake_result(omega_max_K, S, F, C, stable, mesh_f, bands_f, *, weights=WEIGHTS, qpoints=QPOINTS, mesh=(2, 2, 2)):
    thermal = ThermalProperties(
        temperatures_K=np.array([0.0, 300.0]),
        free_energy_kJ_per_mol=np.array([F + 1.0, F]),
        entropy_J_per_K_mol=np.array([0.0, S]),
        heat_capacity_J_per_K_mol=np.array([0.0, C]),
    )
    return PhononResult(
        thermal=thermal,
        commensurate_qpoints=np.zeros((1, 3)),
        commensurate_frequencies_THz=np.array([[0.0, omega_max_K / 47.992430733]]),
        omega_max_K=omega_max_K,
        stability={"stable": stable},
        band_structure={
            "qpoints": BAND_Q,
            "distances": [[0.0, 0.1, 0.2], [0.2, 0.3]],
            "frequencies_THz": bands_f,
            "labels": ["G", "X", "M"],
            "path_connections": [True, False],
        },
        mesh={
            "mesh": list(mesh),
            "qpoints": np.array(qpoints, dtype=float),
            "weights": np.array(weights),
            "frequencies_THz": np.array(mesh_f, dtype=float),
        },
    )


@pytest.fixture
def ref():
    return fake_result(500.0, S=10.0, F=5.0, C=20.0, stable=True, mesh_f=REF_MESH_F, bands_f=REF_BANDS_F)


@pytest.fixture
def model():
    return fake_result(450.0, S=12.0, F=4.5, C=19.0, stable=False, mesh_f=MODEL_MESH_F, bands_f=MODEL_BANDS_F)


# --------------------------------------------------------------------------- per material
def test_mesh_errors_hand_computed(ref, model):
    """sorted |Δf| = [[.5, 0], [0, .5], [0, 2]]; weights 1, 3, 4; 2 bands:
    MAE = (1·0.5 + 3·0.5 + 4·2) / (8·2) = 0.625 THz, RMSE = sqrt((1·.25 + 3·.25 + 4·4)/16) = sqrt(17)/4.
    Unweighted it would be 0.5 and without sorting 1.0, so this fails for either mistake."""
    e = mesh_frequency_errors(ref.mesh, model.mesh)
    assert e["mesh_mae_THz"] == pytest.approx(0.625, rel=1e-14)
    assert e["mesh_rmse_THz"] == pytest.approx(np.sqrt(17.0) / 4.0, rel=1e-14)
    # symmetric in the sense |model - ref|
    assert mesh_frequency_errors(model.mesh, ref.mesh)["mesh_mae_THz"] == pytest.approx(0.625)


def test_band_rmse_hand_computed(ref, model):
    """sorted Δ: segment 1 [0,0 | 0,0 | 0,1], segment 2 [0,0 | -2,0]: sqrt((1 + 4)/10)."""
    assert band_rmse(ref.band_structure, model.band_structure) == pytest.approx(np.sqrt(0.5), rel=1e-14)
    assert band_rmse(ref.band_structure, ref.band_structure) == 0.0


def test_material_metrics_hand_computed(ref, model):
    m = material_metrics(ref, model)
    assert m["temperature_K"] == 300.0
    assert m["omega_max_K"] == 450.0 and m["omega_max_K_ref"] == 500.0
    assert m["omega_max_error_K"] == -50.0 and m["omega_max_abs_error_K"] == 50.0
    assert m["entropy_300K_J_per_K_mol"] == 12.0 and m["entropy_300K_J_per_K_mol_ref"] == 10.0
    assert m["entropy_error_300K_J_per_K_mol"] == pytest.approx(2.0)
    assert m["entropy_abs_error_300K_J_per_K_mol"] == pytest.approx(2.0)
    assert m["free_energy_error_300K_kJ_per_mol"] == pytest.approx(-0.5)
    assert m["free_energy_abs_error_300K_kJ_per_mol"] == pytest.approx(0.5)
    assert m["heat_capacity_error_300K_J_per_K_mol"] == pytest.approx(-1.0)
    assert m["heat_capacity_abs_error_300K_J_per_K_mol"] == pytest.approx(1.0)
    assert m["stable"] is False and m["stable_ref"] is True and m["stability_agrees"] is False
    assert m["mesh"] == [2, 2, 2]
    assert m["mesh_mae_THz"] == pytest.approx(0.625)
    assert m["mesh_rmse_THz"] == pytest.approx(np.sqrt(17.0) / 4.0)
    assert m["band_rmse_THz"] == pytest.approx(np.sqrt(0.5))
    assert m["metric_errors"] == []
    # JSON-able as is (this is what `pftflow results --format json` prints), and dict input works
    assert json.loads(json.dumps(m)) == m
    assert material_metrics(ref.model_dump(), model.model_dump()) == m
    # the documented field names are the ones produced
    names = thermal_field_names(300.0)
    for stem in ("entropy", "free_energy", "heat_capacity"):
        for k in ("model", "ref", "error", "abs_error"):
            assert names[stem][k] in m


def test_material_metrics_other_temperature(ref, model):
    m = material_metrics(ref, model, temperature_K=0.0)
    assert m["free_energy_error_0K_kJ_per_mol"] == pytest.approx(-0.5)
    with pytest.raises(ValueError, match="150 K"):
        material_metrics(ref, model, temperature_K=150.0)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"mesh": (3, 3, 3)}, "mesh numbers differ"),
        ({"weights": [2, 2, 4]}, "weights differ at index 0"),
        ({"qpoints": [[0, 0, 0], [0.5, 0, 0], [0.5, 0.5, 0.5]]}, "q-points differ"),
        ({"qpoints": QPOINTS[:2], "weights": WEIGHTS[:2], "mesh_f": REF_MESH_F[:2]}, "irreducible q-points differs"),
        ({"mesh_f": [[0.0, 1.0, 2.0]] * 3}, "number of bands differs"),
    ],
)
def test_mesh_mismatch_is_named(ref, change, message):
    kw = {"mesh_f": REF_MESH_F, **change}
    other = fake_result(500.0, 10.0, 5.0, 20.0, True, bands_f=REF_BANDS_F, **kw)
    with pytest.raises(ValueError, match=message):
        mesh_frequency_errors(ref.mesh, other.mesh)
    with pytest.raises(ValueError, match=message):
        material_metrics(ref, other, strict=True)
    m = material_metrics(ref, other)  # campaigns: the metric is None, the reason recorded, the rest kept
    assert m["mesh_mae_THz"] is None and m["mesh_rmse_THz"] is None
    assert any(message in e for e in m["metric_errors"])
    assert m["omega_max_error_K"] == 0.0 and m["band_rmse_THz"] == 0.0


def test_mesh_points_equal_up_to_a_reciprocal_lattice_vector(ref, model, al_emt_phonopy):
    """A model whose symmetry reduction picked another representative of a zone-boundary q-point
    (q + G; seen on relaxed chalcogenide cells: [0.357, 0, -0.5] vs [0.357, 0, 0.5]) is compared
    at that point: phonopy's frequencies are periodic in G."""
    shifted = [[0.0, 0.0, 0.0], [-0.5, 0.0, 1.0], [0.5, -0.5, 0.0]]
    other = fake_result(450.0, S=12.0, F=4.5, C=19.0, stable=False, mesh_f=MODEL_MESH_F, bands_f=MODEL_BANDS_F, qpoints=shifted)
    assert mesh_frequency_errors(ref.mesh, other.mesh) == mesh_frequency_errors(ref.mesh, model.mesh)
    ph = al_emt_phonopy()
    q = np.array([[0.357, 0.0, -0.5], [0.25, 0.5, -0.6]])
    ph.run_qpoints(q)
    f = ph.qpoints.frequencies.copy()
    ph.run_qpoints(q + np.array([[0, 0, 1], [1, -1, 1]]))
    np.testing.assert_allclose(ph.qpoints.frequencies, f, atol=1e-10)


def test_band_path_mismatch_is_named(ref):
    bs = dict(ref.band_structure)
    bs["qpoints"] = [BAND_Q[0], [[0.5, 0, 0], [0.5, 0.5, 0.5]]]
    with pytest.raises(ValueError, match="segment 1 at point 1"):
        band_rmse(ref.band_structure, bs)
    bs["qpoints"] = BAND_Q[:1]
    with pytest.raises(ValueError, match="reference has 2 segments, model 1"):
        band_rmse(ref.band_structure, bs)


# --------------------------------------------------------------------------- real phonons
@pytest.fixture(scope="module")
def al_pair(al_emt_phonopy):
    """fcc Al (EMT) as reference, and a 'model' whose force constants are 0.81x: every frequency is
    then exactly 0.9x the reference's."""
    ph, ph_m = al_emt_phonopy(), al_emt_phonopy(0.81)
    s = PhononSettings(mesh=[6, 6, 6], band_npoints=11)
    path = band_path(ph, s.band_npoints)
    ref = analyze_phonons(ph, s, band_path_spec=path, with_dos=False)
    return ph, ph_m, ref, analyze_phonons(ph_m, s, band_path_spec=path, with_dos=False)


def test_scaled_force_constants(al_pair):
    ph, _, ref, model = al_pair
    m = material_metrics(ref, model)
    assert m["omega_max_error_K"] == pytest.approx(-0.1 * ref.omega_max_K, rel=1e-10)
    w, f = ref.mesh["weights"], ref.mesh["frequencies_THz"]
    expected_mae = 0.1 * (w[:, None] * np.abs(f)).sum() / (w.sum() * f.shape[1])
    assert m["mesh_mae_THz"] == pytest.approx(expected_mae, rel=1e-9)
    bands = np.concatenate([np.ravel(b) for b in ref.band_structure["frequencies_THz"]])
    assert m["band_rmse_THz"] == pytest.approx(0.1 * np.sqrt(np.mean(bands**2)), rel=1e-9)
    assert m["stable"] and m["stable_ref"] and m["stability_agrees"]
    assert m["entropy_error_300K_J_per_K_mol"] > 0  # softer crystal, more entropy
    assert m["metric_errors"] == []


def test_weighted_irreducible_mesh_equals_full_mesh(al_pair):
    """The q-point weights make the MAE/RMSE on the symmetry-reduced mesh equal to the plain mean
    over the full 6x6x6 mesh (216 points, phonopy without mesh symmetry; 16 irreducible)."""
    ph, ph_m, ref, model = al_pair
    e_irr = mesh_frequency_errors(ref.mesh, model.mesh)
    assert len(ref.mesh["weights"]) < 216

    def full(p):
        p.run_mesh([6, 6, 6], is_gamma_center=True, is_mesh_symmetry=False)
        return np.sort(p.mesh.frequencies, axis=1)

    d = full(ph_m) - full(ph)
    assert d.shape[0] == 216
    assert e_irr["mesh_mae_THz"] == pytest.approx(np.abs(d).mean(), rel=1e-9)
    assert e_irr["mesh_rmse_THz"] == pytest.approx(np.sqrt((d**2).mean()), rel=1e-9)
    # and run_mesh's dict is what the metrics consume
    assert run_mesh(ph, [6, 6, 6])["weights"].sum() == 216


def test_model_with_other_mesh_is_rejected(al_pair):
    ph, ph_m, ref, _ = al_pair
    other = analyze_phonons(ph_m, PhononSettings(mesh=[5, 5, 5]), band_path_spec=None, with_bands=False, with_dos=False)
    with pytest.raises(ValueError, match=r"mesh numbers differ: reference \[6, 6, 6\], model \[5, 5, 5\]"):
        material_metrics(ref, other, strict=True)
    m = material_metrics(ref, other)
    assert m["mesh_mae_THz"] is None and m["band_rmse_THz"] is None and len(m["metric_errors"]) == 2


# --------------------------------------------------------------------------- summary
def _row(model_err, stable, stable_ref, mesh_mae=0.1, **extra):
    r = {
        "temperature_K": 300.0,
        "omega_max_error_K": model_err,
        "entropy_error_300K_J_per_K_mol": 2 * model_err,
        "free_energy_error_300K_kJ_per_mol": -model_err,
        "heat_capacity_error_300K_J_per_K_mol": 0.5 * model_err,
        "stable": stable,
        "stable_ref": stable_ref,
        "mesh_mae_THz": mesh_mae,
        "mesh_rmse_THz": None if mesh_mae is None else 2 * mesh_mae,
        "band_rmse_THz": 0.3,
    }
    r.update(extra)
    return r


def test_stability_classification_hand_made():
    """Truth (reference) vs prediction, 'unstable' positive: TP=2, FP=1, FN=2, TN=1.
    precision 2/3, recall 2/4, F1 = 2·(2/3)(1/2)/(2/3+1/2) = 4/7, accuracy 3/6."""
    ref_stable = [False, False, True, False, False, True]
    mod_stable = [False, False, False, True, True, True]
    c = stability_classification(ref_stable, mod_stable)
    assert (c["unstable_true_positives"], c["unstable_false_positives"]) == (2, 1)
    assert (c["unstable_false_negatives"], c["stable_true_negatives"]) == (2, 1)
    assert c["unstable_precision"] == pytest.approx(2 / 3)
    assert c["unstable_recall"] == pytest.approx(1 / 2)
    assert c["unstable_f1"] == pytest.approx(4 / 7)
    assert c["stability_accuracy"] == pytest.approx(0.5)


def test_stability_classification_undefined_cases():
    c = stability_classification([True, True], [True, True])  # nothing unstable anywhere
    assert c["unstable_precision"] is None and c["unstable_recall"] is None and c["unstable_f1"] is None
    assert c["stability_accuracy"] == 1.0
    c = stability_classification([False, True], [True, True])  # missed the only unstable one
    assert c["unstable_recall"] == 0.0 and c["unstable_precision"] is None
    c = stability_classification([False, True], [True, False])
    assert c["unstable_precision"] == 0.0 and c["unstable_recall"] == 0.0 and c["unstable_f1"] == 0.0
    with pytest.raises(ValueError):
        stability_classification([True], [True, False])


def test_summarize_hand_made():
    rows = [
        _row(-50.0, False, False),
        _row(30.0, False, False, mesh_mae=0.3),
        _row(10.0, False, True, mesh_mae=None),  # mesh mismatch: left out of the mesh average only
        _row(-20.0, True, False),
        _row(40.0, True, False),
        _row(0.0, True, True),
        {"material_id": "mp-x", "failed": True, "error": "relaxation failed"},
    ]
    s = summarize(rows)
    assert (s["n_materials"], s["n_failed"], s["n_evaluated"]) == (7, 1, 6)
    assert s["temperature_K"] == 300.0
    assert s["omega_max_mae_K"] == pytest.approx((50 + 30 + 10 + 20 + 40 + 0) / 6)
    assert s["omega_max_mean_error_K"] == pytest.approx((-50 + 30 + 10 - 20 + 40) / 6)
    assert s["entropy_mae_300K_J_per_K_mol"] == pytest.approx(2 * 150 / 6)
    assert s["free_energy_mae_300K_kJ_per_mol"] == pytest.approx(150 / 6)
    assert s["free_energy_mean_error_300K_kJ_per_mol"] == pytest.approx(-10 / 6)
    assert s["heat_capacity_mae_300K_J_per_K_mol"] == pytest.approx(0.5 * 150 / 6)
    assert s["mesh_mae_THz"] == pytest.approx((0.1 + 0.3 + 0.1 + 0.1 + 0.1) / 5)
    assert s["mesh_rmse_THz"] == pytest.approx(2 * 0.7 / 5)
    assert s["n_mesh"] == 5 and s["n_bands"] == 6
    assert s["band_rmse_THz"] == pytest.approx(0.3)
    assert s["n_classified"] == 6
    assert s["unstable_precision"] == pytest.approx(2 / 3)
    assert s["unstable_recall"] == pytest.approx(1 / 2)
    assert s["unstable_f1"] == pytest.approx(4 / 7)
    assert s["stability_accuracy"] == pytest.approx(0.5)
    assert mdr_summary(rows) == s
    json.dumps(s)


def test_summarize_from_material_metrics(ref, model):
    rows = [material_metrics(ref, model), material_metrics(ref, ref)]
    s = summarize(rows)
    assert s["omega_max_mae_K"] == pytest.approx(25.0)
    assert s["entropy_mae_300K_J_per_K_mol"] == pytest.approx(1.0)
    assert s["mesh_mae_THz"] == pytest.approx(0.625 / 2)
    # reference stable in both; model says unstable once: one false positive
    assert s["unstable_false_positives"] == 1 and s["unstable_precision"] == 0.0 and s["unstable_recall"] is None


def test_summarize_edge_cases():
    s = summarize([])
    assert s["n_materials"] == 0 and s["omega_max_mae_K"] is None and s["stability_accuracy"] is None
    with pytest.raises(ValueError, match="different temperatures"):
        summarize([_row(1.0, True, True), _row(1.0, True, True, temperature_K=0.0)])
