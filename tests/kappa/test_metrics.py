"""SRD / SRE / SRME (k_SRME definitions), failure rules, imaginary-mode rule, per-mode coherence split."""

import numpy as np
import pytest

from pftflow.kappa import (
    failed_metrics, has_imaginary_modes, material_metrics, mean_metrics, mode_kappa_total, srd, sre, srme,
)


def test_srd_sre_by_hand():
    assert srd(3.0, 1.0) == pytest.approx(1.0)  # 2 (3-1)/(3+1)
    assert srd(1.0, 3.0) == pytest.approx(-1.0)
    assert sre(1.0, 3.0) == pytest.approx(1.0)
    assert srd(float("nan"), 3.0) == -2.0


def test_srme_by_hand():
    ref = np.array([[1.0, 2.0], [3.0, 4.0]])  # 2 q-points x 2 bands, weights included
    w = np.array([1, 1])  # W = 2 -> κ_ref = 10 / 2 = 5
    pred = np.array([[1.5, 2.0], [3.0, 3.0]])  # κ_pred = 9.5 / 2 = 4.75
    kr, kp = ref.sum() / w.sum(), pred.sum() / w.sum()
    # Σ|Δ| = 0.5 + 1 = 1.5; micro = 1.5 / 2 = 0.75; SRME = 2 * 0.75 / (4.75 + 5) = 0.153846...
    assert srme(pred, ref, w, kp, kr) == pytest.approx(2 * 0.75 / 9.75)
    m = material_metrics(kp, pred, kr, ref, w)
    assert m["srd"] == pytest.approx(2 * (4.75 - 5) / 9.75)
    assert m["sre"] == pytest.approx(abs(m["srd"]))
    assert m["srme"] == pytest.approx(0.15384615384615385)
    # SRME >= SRE always (triangle inequality)
    assert m["srme"] >= m["sre"]


def test_failure_rules():
    for reason in ("imaginary_modes", "broken_symmetry", "relax_error"):
        m = material_metrics(5.0, np.ones((2, 2)), 5.0, np.ones((2, 2)), np.ones(2), failed_reason=reason)
        assert (m["srd"], m["sre"], m["srme"], m["failed"]) == (-2.0, 2.0, 2.0, True)
        assert m["failed_reason"] == reason
    m = material_metrics(float("nan"), np.ones((2, 2)), 5.0, np.ones((2, 2)), np.ones(2))
    assert (m["srd"], m["sre"], m["srme"]) == (-2.0, 2.0, 2.0)
    # q-point mismatch is a failure too (per-mode errors are meaningless otherwise)
    m = material_metrics(5.0, np.ones((3, 2)), 5.0, np.ones((2, 2)), np.ones(2))
    assert m["failed_reason"].startswith("qpoint_mismatch")
    rows = [failed_metrics("imaginary_modes"), {"sre": 0.2, "srme": 0.4, "failed": False}]
    mm = mean_metrics(rows)
    assert mm["mean_srme"] == pytest.approx(1.2) and mm["mean_sre"] == pytest.approx(1.1) and mm["n_failed"] == 1


def test_imaginary_mode_rule():
    f = np.array([[0.0, 0.0, 0.0, 5.0, 5.0, 5.0], [1.0, 1.0, 2.0, 5.0, 5.0, 6.0]])
    assert not has_imaginary_modes(f)
    g = f.copy(); g[0, 1] = -0.005  # Γ acoustic above -0.01 THz: tolerated
    assert not has_imaginary_modes(g)
    g = f.copy(); g[0, 1] = -0.02  # Γ acoustic below -0.01 THz
    assert has_imaginary_modes(g)
    g = f.copy(); g[0, 4] = -1e-4  # Γ optical < 0
    assert has_imaginary_modes(g)
    g = f.copy(); g[1, 0] = -1e-4  # any other q < 0
    assert has_imaginary_modes(g)
    g = f.copy(); g[1, 0] = np.nan
    assert has_imaginary_modes(g)


def test_mode_kappa_total_split_conserves_sum():
    rng = np.random.default_rng(0)
    nT, nq, nb = 1, 4, 3
    P = rng.random((nT, nq, nb, 6))
    C = rng.random((nT, nq, nb, nb, 6))
    C = C + C.transpose(0, 1, 3, 2, 4)
    idx = np.arange(nb)
    C[:, :, idx, idx] = 0
    cv = rng.random((nT, nq, nb))
    cv[0, 0, :2] = 0  # acoustic modes at Γ: 0/0 -> 0
    C[0, 0, 0, 1] = C[0, 0, 1, 0] = 0
    tot = mode_kappa_total(P, C, cv)
    assert np.isfinite(tot).all()
    np.testing.assert_allclose(tot.sum(axis=(1, 2)), P.sum(axis=(1, 2)) + C.sum(axis=(1, 2, 3)))
    # by hand for one mode: κ(q,s') = κ_P + 2 Σ_s κ_C(s,s') C_s / (C_s + C_s')
    q, sp = 2, 1
    hand = P[0, q, sp] + sum(2 * C[0, q, s, sp] * cv[0, q, s] / (cv[0, q, s] + cv[0, q, sp]) for s in range(nb))
    np.testing.assert_allclose(tot[0, q, sp], hand)


def test_reference_against_itself_and_perturbed(ksrme_dir):
    """SRME of the DFT reference against itself is 0; a known perturbation gives the hand values."""
    from pftflow.kappa import read_kappa_reference

    refs = read_kappa_reference(ksrme_dir, nac=True)
    assert len(refs) == 4
    rows = []
    for mid, r in refs.items():
        k, mode, w = r.kappa_at(300), r.mode_kappa_at(300), r.weights
        assert mode.sum() / w.sum() == pytest.approx(k, rel=1e-8)  # weights included in the per-mode κ
        m = material_metrics(k, mode, k, mode, w, qpoints_pred=r.qpoints, qpoints_ref=r.qpoints)
        assert m["srd"] == 0 and m["sre"] == 0 and m["srme"] == 0
        shifted = np.asarray(r.qpoints) + np.eye(3, dtype=int)[np.arange(len(r.qpoints)) % 3]  # q + G: same points
        assert material_metrics(k, mode, k, mode, w, qpoints_pred=shifted, qpoints_ref=r.qpoints)["srme"] == 0
        assert material_metrics(k, mode, k, mode, w, qpoints_pred=np.asarray(r.qpoints) + 0.01, qpoints_ref=r.qpoints)["failed_reason"].startswith("qpoint_mismatch")
        # uniform scaling by 1.2: every mode error = 0.2 κ(q,s) -> SRME = SRE = 2 * 0.2 / 2.2
        m = material_metrics(1.2 * k, 1.2 * mode, k, mode, w)
        assert m["srd"] == pytest.approx(0.4 / 2.2) and m["srme"] == pytest.approx(0.4 / 2.2)
        rows.append(m)
    # move 10 % of κ from the first to the last mode: κ unchanged (SRE 0), SRME = 2 (2 × 0.1 κ) / (2 κ) = 0.2
    r = refs["mp-22862"]
    k, mode, w = r.kappa_at(300), r.mode_kappa_at(300).copy(), r.weights
    pert = mode.copy()
    pert[0, -1] -= 0.1 * k * w.sum()
    pert[-1, -1] += 0.1 * k * w.sum()
    m = material_metrics(pert.sum() / w.sum(), pert, k, mode, w)
    assert m["sre"] == pytest.approx(0, abs=1e-9) and m["srme"] == pytest.approx(0.2)
    rows.append(m)
    rows.append(failed_metrics("imaginary_modes"))
    mm = mean_metrics(rows)
    assert mm["mean_sre"] == pytest.approx((4 * 0.4 / 2.2 + 0 + 2) / 6)
    assert mm["mean_srme"] == pytest.approx((4 * 0.4 / 2.2 + 0.2 + 2) / 6)
