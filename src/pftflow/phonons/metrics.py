"""MDR phonon-benchmark metrics of a model against a reference, and their summary over materials.

Pure numpy functions on :class:`pftflow.phonons.harmonic.PhononResult` objects (or their
``as_dict()`` form).  Formulas, units and the JSON field names are documented in
``docs/metrics.md``; the field names are what ``pftflow results --format json`` shows.

Per material (:func:`material_metrics`): ω_max (K), entropy S and heat capacity C_V (J/K/mol) and
Helmholtz free energy F (kJ/mol) at 300 K, model and reference values, signed errors
(model − reference) and absolute errors; MDR stability of each and whether they agree;
BZ-mesh frequency MAE / RMSE (THz, q-point weighted, bands sorted per q) and band-path RMSE (THz).

Over materials (:func:`summarize`, alias :func:`mdr_summary`): MAE and mean signed error of each
quantity, mean of the per-material frequency errors, stability-classification accuracy and
precision / recall / F1 of detecting dynamical instability ("unstable" is the positive class,
the reference is the truth).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np

from pftflow.phonons.harmonic import PhononResult, run_mesh

#: temperature (K) at which the MDR thermal metrics are reported
MDR_TEMPERATURE_K = 300.0

#: (quantity key in ThermalProperties.at(), JSON stem, unit suffix)
_THERMAL = (
    ("entropy_J_per_K_mol", "entropy", "J_per_K_mol"),
    ("free_energy_kJ_per_mol", "free_energy", "kJ_per_mol"),
    ("heat_capacity_J_per_K_mol", "heat_capacity", "J_per_K_mol"),
)

_QPOINT_ATOL = 1e-8  # fractional q-point coordinates compared with this tolerance


def _temp_tag(temperature_K: float) -> str:
    return f"{float(temperature_K):g}K"


def thermal_field_names(temperature_K: float = MDR_TEMPERATURE_K) -> dict[str, dict[str, str]]:
    """JSON field names of the thermal metrics at ``temperature_K``.

    ``{"entropy": {"model": "entropy_300K_J_per_K_mol", "ref": "entropy_300K_J_per_K_mol_ref",
    "error": "entropy_error_300K_J_per_K_mol", "abs_error": "entropy_abs_error_300K_J_per_K_mol",
    "mae": "entropy_mae_300K_J_per_K_mol", "mean_error": "entropy_mean_error_300K_J_per_K_mol"}, ...}``
    """
    t = _temp_tag(temperature_K)
    out = {}
    for _, stem, unit in _THERMAL:
        value = f"{stem}_{t}_{unit}"
        out[stem] = {
            "model": value,
            "ref": f"{value}_ref",
            "error": f"{stem}_error_{t}_{unit}",
            "abs_error": f"{stem}_abs_error_{t}_{unit}",
            "mae": f"{stem}_mae_{t}_{unit}",
            "mean_error": f"{stem}_mean_error_{t}_{unit}",
        }
    return out


def _as_result(x):
    if isinstance(x, PhononResult):
        return x
    if isinstance(x, Mapping):
        return PhononResult.model_validate({k: v for k, v in x.items() if not str(k).startswith("@")})
    raise TypeError(f"expected a PhononResult or its as_dict() form, got {type(x).__name__}")


# ------------------------------------------------------------------------------ frequency errors
def _mesh_arrays(mesh: Mapping, which: str):
    try:
        numbers = [int(n) for n in mesh["mesh"]]
        q = np.asarray(mesh["qpoints"], dtype=float).reshape(-1, 3)
        w = np.asarray(mesh["weights"], dtype=float).ravel()
        f = np.asarray(mesh["frequencies_THz"], dtype=float)
    except (KeyError, TypeError) as exc:
        raise ValueError(
            f"{which} mesh data must have 'mesh', 'qpoints', 'weights', 'frequencies_THz' ({exc!r})"
        ) from exc
    if f.ndim != 2 or f.shape[0] != q.shape[0] or w.shape[0] != q.shape[0]:
        raise ValueError(
            f"{which} mesh data is inconsistent: {q.shape[0]} q-points, {w.shape[0]} weights, "
            f"frequencies of shape {f.shape}"
        )
    return numbers, q, w, f


def mesh_frequency_errors(reference_mesh: Mapping, model_mesh: Mapping) -> dict[str, float]:
    """Weighted MAE and RMSE (THz) of phonon frequencies on the same Γ-centred BZ mesh.

    Both arguments are ``PhononResult.mesh`` dicts (``mesh``, ``qpoints``, ``weights``,
    ``frequencies_THz``) computed with the same mesh numbers and the same symmetry reduction.
    Bands are sorted ascending at each q-point; each (q, band) term is weighted by the q-point
    weight (its multiplicity in the full mesh)::

        MAE  = Σ_q w_q Σ_b |f_model(q,b) − f_ref(q,b)|   / (n_bands Σ_q w_q)
        RMSE = sqrt( Σ_q w_q Σ_b (f_model − f_ref)²     / (n_bands Σ_q w_q) )

    Imaginary modes enter as negative frequencies (phonopy convention).  q-points that differ by a
    reciprocal lattice vector are the same point.  Raises ``ValueError`` naming the mismatch when the
    meshes, q-points, weights or band counts differ.
    """
    n_ref, q_ref, w_ref, f_ref = _mesh_arrays(reference_mesh, "reference")
    n_mod, q_mod, w_mod, f_mod = _mesh_arrays(model_mesh, "model")
    if n_ref != n_mod:
        raise ValueError(f"mesh numbers differ: reference {n_ref}, model {n_mod}")
    if q_ref.shape != q_mod.shape:
        raise ValueError(
            f"number of irreducible q-points differs on mesh {n_ref}: reference {q_ref.shape[0]}, "
            f"model {q_mod.shape[0]} (different symmetry reduction)"
        )
    # the same q-point up to a reciprocal lattice vector (frequencies are periodic in G): the symmetry
    # reduction of a relaxed model cell may pick another representative on the zone boundary
    dq = q_ref - q_mod
    dq = np.abs(dq - np.rint(dq))
    bad = np.flatnonzero((dq > _QPOINT_ATOL).any(axis=1))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"q-points differ on mesh {n_ref}: {bad.size} of {q_ref.shape[0]} differ, first at index {i}: "
            f"reference {q_ref[i].tolist()}, model {q_mod[i].tolist()}"
        )
    if not np.array_equal(w_ref, w_mod):
        i = int(np.flatnonzero(w_ref != w_mod)[0])
        raise ValueError(f"q-point weights differ at index {i}: reference {w_ref[i]:g}, model {w_mod[i]:g}")
    if f_ref.shape[1] != f_mod.shape[1]:
        raise ValueError(f"number of bands differs: reference {f_ref.shape[1]}, model {f_mod.shape[1]}")
    diff = np.sort(f_mod, axis=1) - np.sort(f_ref, axis=1)
    norm = w_ref.sum() * f_ref.shape[1]
    return {
        "mesh_mae_THz": float((w_ref[:, None] * np.abs(diff)).sum() / norm),
        "mesh_rmse_THz": float(np.sqrt((w_ref[:, None] * diff**2).sum() / norm)),
    }


def full_mesh_frequency_errors(reference_phonon, model_phonon, mesh) -> dict[str, float]:
    """:func:`mesh_frequency_errors` on every q-point of ``mesh`` (numbers), without symmetry reduction,
    from two Phonopy objects with force constants.  For a model whose relaxed cell has another symmetry
    than the reference (its irreducible q-points differ): the same average over the whole BZ mesh."""
    return mesh_frequency_errors(run_mesh(reference_phonon, mesh, symmetry=False), run_mesh(model_phonon, mesh, symmetry=False))


def band_rmse(reference_bands: Mapping, model_bands: Mapping) -> float:
    """RMSE (THz) of band-structure frequencies on the same q-path.

    Both arguments are ``PhononResult.band_structure`` dicts (``qpoints`` and ``frequencies_THz``
    as lists of path segments).  Bands are sorted ascending at each q-point; every path point and
    band counts once (segment end points shared by connected segments appear twice, as phonopy
    returns them).  Raises ``ValueError`` naming the mismatch when the paths differ.
    """
    try:
        q_ref = [np.asarray(s, dtype=float) for s in reference_bands["qpoints"]]
        q_mod = [np.asarray(s, dtype=float) for s in model_bands["qpoints"]]
        f_ref = [np.asarray(s, dtype=float) for s in reference_bands["frequencies_THz"]]
        f_mod = [np.asarray(s, dtype=float) for s in model_bands["frequencies_THz"]]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"band-structure dicts need 'qpoints' and 'frequencies_THz' segments ({exc!r})") from exc
    if len(q_ref) != len(q_mod):
        raise ValueError(f"band paths differ: reference has {len(q_ref)} segments, model {len(q_mod)}")
    sq = 0.0
    n = 0
    for i, (qr, qm, fr, fm) in enumerate(zip(q_ref, q_mod, f_ref, f_mod)):
        if qr.shape != qm.shape:
            raise ValueError(
                f"band paths differ in segment {i}: reference {qr.shape[0]} q-points, model {qm.shape[0]}"
            )
        if qr.size and np.abs(qr - qm).max() > _QPOINT_ATOL:
            j = int(np.flatnonzero((np.abs(qr - qm) > _QPOINT_ATOL).any(axis=1))[0])
            raise ValueError(
                f"band paths differ in segment {i} at point {j}: reference q {qr[j].tolist()}, model {qm[j].tolist()}"
            )
        if fr.shape != fm.shape:
            raise ValueError(
                f"band frequencies differ in shape in segment {i}: reference {fr.shape}, model {fm.shape}"
            )
        d = np.sort(fm, axis=1) - np.sort(fr, axis=1)
        sq += float((d**2).sum())
        n += d.size
    if n == 0:
        raise ValueError("band paths are empty")
    return float(np.sqrt(sq / n))


# ------------------------------------------------------------------------------ per material
def material_metrics(
    ref,
    model,
    *,
    temperature_K: float = MDR_TEMPERATURE_K,
    strict: bool = False,
) -> dict[str, Any]:
    """MDR metrics of one model on one material (see ``docs/metrics.md`` for every field).

    ``ref`` and ``model`` are :class:`~pftflow.phonons.harmonic.PhononResult` objects (or their
    ``as_dict()``) computed with the same settings (temperature grid, mesh, band path).
    Thermal values are read at ``temperature_K`` (must be on both temperature grids).

    The frequency metrics need matching meshes / band paths.  With ``strict=False`` (default,
    used by campaigns) a mismatch or missing data sets that metric to ``None`` and appends the
    reason to ``metric_errors``, so one model that broke the symmetry does not lose its other
    metrics; with ``strict=True`` the ``ValueError`` propagates.
    """
    r = _as_result(ref)
    m = _as_result(model)
    t = float(temperature_K)
    out: dict[str, Any] = {"temperature_K": t}
    errors: list[str] = []

    out["omega_max_K"] = float(m.omega_max_K)
    out["omega_max_K_ref"] = float(r.omega_max_K)
    out["omega_max_error_K"] = out["omega_max_K"] - out["omega_max_K_ref"]
    out["omega_max_abs_error_K"] = abs(out["omega_max_error_K"])

    names = thermal_field_names(t)
    try:
        tm = m.thermal.at(t)
        tr = r.thermal.at(t)
    except KeyError as exc:
        raise ValueError(f"thermal metrics at {t:g} K: {exc.args[0]}") from exc
    for key, stem, _unit in _THERMAL:
        n = names[stem]
        out[n["model"]] = float(tm[key])
        out[n["ref"]] = float(tr[key])
        out[n["error"]] = out[n["model"]] - out[n["ref"]]
        out[n["abs_error"]] = abs(out[n["error"]])

    out["stable"] = bool(m.stability["stable"])
    out["stable_ref"] = bool(r.stability["stable"])
    out["stability_agrees"] = out["stable"] == out["stable_ref"]

    out["mesh"] = None
    out["mesh_mae_THz"] = None
    out["mesh_rmse_THz"] = None
    if r.mesh is None or m.mesh is None:
        errors.append("mesh: frequencies on the BZ mesh missing from " + ("reference" if r.mesh is None else "model"))
    else:
        try:
            out.update(mesh_frequency_errors(r.mesh, m.mesh))
            out["mesh"] = [int(x) for x in r.mesh["mesh"]]
        except ValueError as exc:
            if strict:
                raise
            errors.append(f"mesh: {exc}")

    out["band_rmse_THz"] = None
    if r.band_structure is None or m.band_structure is None:
        errors.append("bands: band structure missing from " + ("reference" if r.band_structure is None else "model"))
    else:
        try:
            out["band_rmse_THz"] = band_rmse(r.band_structure, m.band_structure)
        except ValueError as exc:
            if strict:
                raise
            errors.append(f"bands: {exc}")
    out["metric_errors"] = errors
    return out


# ------------------------------------------------------------------------------ over materials
def _finite(values: Iterable) -> np.ndarray:
    a = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    return a[np.isfinite(a)]


def _mean_or_none(a: np.ndarray) -> float | None:
    return float(a.mean()) if a.size else None


def stability_classification(stable_ref: Iterable[bool], stable_model: Iterable[bool]) -> dict[str, Any]:
    """Confusion counts, accuracy, and precision / recall / F1 of predicting *instability*.

    "Unstable" is the positive class and the reference is the truth: TP = both unstable,
    FP = model unstable but reference stable, FN = reference unstable but model stable.
    precision = TP/(TP+FP), recall = TP/(TP+FN), F1 = 2PR/(P+R); ``None`` where the denominator
    is zero (e.g. recall when no reference material is unstable).
    """
    ref = np.asarray(list(stable_ref), dtype=bool)
    mod = np.asarray(list(stable_model), dtype=bool)
    if ref.shape != mod.shape:
        raise ValueError(f"{ref.size} reference labels but {mod.size} model labels")
    tp = int(np.sum(~ref & ~mod))
    fp = int(np.sum(ref & ~mod))
    fn = int(np.sum(~ref & mod))
    tn = int(np.sum(ref & mod))
    n = ref.size
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    if precision is None or recall is None:
        f1 = None
    else:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {
        "n_classified": n,
        "stability_accuracy": (tp + tn) / n if n else None,
        "unstable_precision": precision,
        "unstable_recall": recall,
        "unstable_f1": f1,
        "unstable_true_positives": tp,
        "unstable_false_positives": fp,
        "unstable_false_negatives": fn,
        "stable_true_negatives": tn,
    }


def summarize(rows: list[dict]) -> dict[str, Any]:
    """Summary over materials of :func:`material_metrics` rows (one model).

    Rows with ``failed: True`` (no phonons from the model) are counted in ``n_failed`` and left out
    of every average and of the stability classification.  A ``None``/NaN value is left out of
    the average of that quantity only; ``n_mesh``, ``n_bands`` and ``n_classified`` count the
    materials behind the frequency averages and the classification.
    """
    rows = list(rows)
    ok = [r for r in rows if not r.get("failed")]
    out: dict[str, Any] = {"n_materials": len(rows), "n_failed": len(rows) - len(ok), "n_evaluated": len(ok)}
    temps = {float(r.get("temperature_K", MDR_TEMPERATURE_K)) for r in ok}
    if len(temps) > 1:
        raise ValueError(f"rows mix thermal metrics at different temperatures: {sorted(temps)} K")
    t = temps.pop() if temps else MDR_TEMPERATURE_K
    out["temperature_K"] = t

    def agg(err_key: str, mae_key: str, me_key: str):
        e = _finite(r.get(err_key) for r in ok)
        out[mae_key] = _mean_or_none(np.abs(e))
        out[me_key] = _mean_or_none(e)

    agg("omega_max_error_K", "omega_max_mae_K", "omega_max_mean_error_K")
    for stem, n in thermal_field_names(t).items():
        agg(n["error"], n["mae"], n["mean_error"])

    for key in ("mesh_mae_THz", "mesh_rmse_THz", "band_rmse_THz"):
        out[key] = _mean_or_none(_finite(r.get(key) for r in ok))
    out["n_mesh"] = int(_finite(r.get("mesh_mae_THz") for r in ok).size)
    out["n_bands"] = int(_finite(r.get("band_rmse_THz") for r in ok).size)

    labelled = [r for r in ok if r.get("stable") is not None and r.get("stable_ref") is not None]
    out.update(stability_classification([r["stable_ref"] for r in labelled], [r["stable"] for r in labelled]))
    return out


#: the name used in the MDR benchmark's terms
mdr_summary = summarize

