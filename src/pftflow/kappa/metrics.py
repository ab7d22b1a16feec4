"""κ benchmark metrics of k_SRME (Póta, Ahlawat, Csányi, Simoncelli, npj Comput. Mater. 2025) as used
by Matbench Discovery: SRD, SRE and SRME per material, mean SRE / SRME over a set.

Pure functions of κ values (W/m/K).  Formulas and failure rules: ``docs/kappa.md``.

* SRD  = 2 (κ_pred − κ_DFT) / (κ_pred + κ_DFT)          (κ = trace/3 of the total κ tensor)
* SRE  = |SRD|
* SRME = 2 Σ_{q,s} |κ_pred(q,s) − κ_DFT(q,s)| / (W (κ_pred + κ_DFT)),  W = Σ_q w_q
  with κ(q,s) the per-mode total κ (trace/3, q-point weights included).
* Failure (imaginary modes, broken symmetry, relaxation error, NaN κ): SRD = −2, SRE = SRME = 2.
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np

FAILED_SRD = -2.0
FAILED_SRE = 2.0
FAILED_SRME = 2.0


def srd(kappa_pred_W_per_mK: float, kappa_ref_W_per_mK: float) -> float:
    """Symmetric relative deviation 2 (κ_pred − κ_ref) / (κ_pred + κ_ref); −2 for NaN κ_pred."""
    kp, kr = float(kappa_pred_W_per_mK), float(kappa_ref_W_per_mK)
    if math.isnan(kp):
        return FAILED_SRD
    if kp + kr == 0:
        return 0.0
    return 2.0 * (kp - kr) / (kp + kr)


def sre(kappa_pred_W_per_mK: float, kappa_ref_W_per_mK: float) -> float:
    """Symmetric relative error |SRD|."""
    return abs(srd(kappa_pred_W_per_mK, kappa_ref_W_per_mK))


def srme(
    mode_kappa_pred_W_per_mK: np.ndarray,
    mode_kappa_ref_W_per_mK: np.ndarray,
    weights: np.ndarray,
    kappa_pred_W_per_mK: float,
    kappa_ref_W_per_mK: float,
) -> float:
    """Symmetric relative mean error of the per-mode κ (trace/3 per mode, weights included).

    ``mode_kappa_*``: (n_q, n_b) (or with a leading temperature axis of length 1) on the same
    irreducible q-points in the same order; ``weights``: (n_q,) q-point weights of the reference.
    """
    mp = np.asarray(mode_kappa_pred_W_per_mK, dtype=float)
    mr = np.asarray(mode_kappa_ref_W_per_mK, dtype=float)
    if mp.shape != mr.shape:
        raise ValueError(f"per-mode kappa shapes differ: predicted {mp.shape}, reference {mr.shape}")
    kp, kr = float(kappa_pred_W_per_mK), float(kappa_ref_W_per_mK)
    if math.isnan(kp) or np.isnan(mp).any():
        return FAILED_SRME
    micro = np.abs(mp - mr).sum() / float(np.sum(weights))
    return 2.0 * micro / (kp + kr)


def failed_metrics(reason: str) -> dict:
    """Metrics of a failed material (k_SRME rule)."""
    return {"srd": FAILED_SRD, "sre": FAILED_SRE, "srme": FAILED_SRME, "failed": True, "failed_reason": reason}


def material_metrics(
    kappa_pred_W_per_mK: float | None,
    mode_kappa_pred_W_per_mK: np.ndarray | None,
    kappa_ref_W_per_mK: float,
    mode_kappa_ref_W_per_mK: np.ndarray,
    weights: np.ndarray,
    *,
    qpoints_pred: np.ndarray | None = None,
    qpoints_ref: np.ndarray | None = None,
    failed_reason: str | None = None,
) -> dict:
    """SRD, SRE, SRME of one material; a ``failed_reason`` (or NaN κ) gives the failure values.

    With ``qpoints_pred`` and ``qpoints_ref`` the irreducible q-points are checked to be the same
    (same order); a mismatch is recorded as failure ``qpoint_mismatch``.
    """
    if failed_reason:
        return failed_metrics(failed_reason)
    if kappa_pred_W_per_mK is None or math.isnan(float(kappa_pred_W_per_mK)):
        return failed_metrics("kappa_nan")
    mp = np.asarray(mode_kappa_pred_W_per_mK, dtype=float).reshape(np.shape(mode_kappa_ref_W_per_mK)) if (
        np.size(mode_kappa_pred_W_per_mK) == np.size(mode_kappa_ref_W_per_mK)) else None
    if mp is None:
        return failed_metrics(
            f"qpoint_mismatch: per-mode shapes {np.shape(mode_kappa_pred_W_per_mK)} vs {np.shape(mode_kappa_ref_W_per_mK)}"
        )
    if qpoints_pred is not None and qpoints_ref is not None:
        qp, qr = np.asarray(qpoints_pred, float), np.asarray(qpoints_ref, float)
        # the same point up to a reciprocal lattice vector counts as the same (κ modes are periodic in G)
        if qp.shape != qr.shape or not np.allclose(qp - qr - np.rint(qp - qr), 0.0, atol=1e-6):
            return failed_metrics("qpoint_mismatch: irreducible q-points differ from the reference")
    return {
        "srd": srd(kappa_pred_W_per_mK, kappa_ref_W_per_mK),
        "sre": sre(kappa_pred_W_per_mK, kappa_ref_W_per_mK),
        "srme": srme(mp, mode_kappa_ref_W_per_mK, weights, kappa_pred_W_per_mK, kappa_ref_W_per_mK),
        "failed": False,
        "failed_reason": None,
    }


def mean_metrics(rows: Iterable[dict]) -> dict:
    """Mean SRE and SRME over materials (failures count with 2), number of materials and failures."""
    rows = list(rows)
    sres = [float(r["sre"]) for r in rows if r.get("sre") is not None]
    srmes = [float(r["srme"]) for r in rows if r.get("srme") is not None]
    return {
        "n_materials": len(rows),
        "n_failed": sum(1 for r in rows if r.get("failed")),
        "mean_sre": float(np.mean(sres)) if sres else float("nan"),
        "mean_srme": float(np.mean(srmes)) if srmes else float("nan"),
    }
