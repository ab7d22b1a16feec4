"""``pftflow.results.load``: the pandas API over a campaign's store.

One EMT campaign (as tests/flows/test_campaigns.py: EMT stands in for the reference and for the
model, so the model's metrics equal the reference's) with a model whose calculator cannot be built
(the broken-calculator trick of test_failing_model_is_reported_and_others_still_run): the frame has
one row per material × model, the failed pairs carry their reason, and the numbers are the ones
``load_results`` (the ``pftflow results`` table) gives.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from pftflow.results import COLUMNS, column_info, load, load_results
from pftflow.run import run_campaign
from pftflow.spec import SpecError, load_spec

REASON = "RuntimeError: model weights missing: /nowhere/model.pth"
#: the campaign's models: EMT as the reference (zero errors) and one whose calculator cannot be built
MODELS = ("EMT-same", ("broken", "brokencalc:make"))


@pytest.fixture(scope="module")
def campaign(tmp_path_factory, emt_spec):
    """(folder, spec path): the campaign run once, the broken model failing on both materials."""
    import sys

    root = tmp_path_factory.mktemp("emt_report")
    (root / "brokencalc.py").write_text("def make():\n    raise RuntimeError('model weights missing: /nowhere/model.pth')\n")
    sys.path.insert(0, str(root))
    try:
        p = emt_spec(root, name="emt-report", models=MODELS)
        summary = run_campaign(load_spec(p), progress=False, plots=False)
        assert summary.failed_jobs == 2, summary.text()
        yield root, p
    finally:
        sys.path.remove(str(root))


def test_one_row_per_material_model_with_reasons(campaign):
    root, p = campaign
    df = load(p)
    assert list(zip(df.material_id, df.model)) == [("Cu", "EMT-same"), ("Cu", "broken"), ("Al", "EMT-same"), ("Al", "broken")]
    assert set(df.campaign) == {"emt-report"} and set(df.kind) == {"phonons"}
    assert set(df.variant) == {"EMT-ref"}  # phonons: the reference is the variant
    ok, bad = df[df.model == "EMT-same"], df[df.model == "broken"]
    assert (ok.status == "ok").all() and not ok.failed.any() and ok.reason.isna().all()
    assert (bad.status == "failed").all() and bad.failed.all()
    assert list(bad.reason) == [REASON, REASON] and list(bad.failed_stage) == ["forces", "forces"]
    # the identical model reproduces the reference; EMT Cu / Al phonons are a few THz
    assert np.allclose(ok.omega_max_K, ok.omega_max_K_ref, atol=1e-9) and (ok.omega_max_K > 100).all()
    assert np.allclose(ok.entropy_error_300K_J_per_K_mol, 0.0, atol=1e-6)
    assert ok.entropy_300K_J_per_K_mol.between(10, 100).all()  # S(300 K) of a one-atom cell: ~3R·ln(kT/hν) + 3R
    assert bad.omega_max_K.isna().all()


def test_numbers_are_those_of_pftflow_results(campaign):
    _, p = campaign
    spec = load_spec(p)
    rows = {(r["material_id"], r["model"]): r for r in load_results(spec)["rows"]}
    df = load(spec)
    assert len(df) == len(rows)
    for rec in df.to_dict("records"):
        r = rows[(rec["material_id"], rec["model"])]
        for k in ("omega_max_K", "omega_max_K_ref", "free_energy_300K_kJ_per_mol", "heat_capacity_300K_J_per_K_mol_ref", "mesh_mae_THz"):
            if r.get(k) is None:
                assert rec.get(k) is None or math.isnan(rec[k])
            else:
                assert rec[k] == r[k]


def test_filters(campaign):
    _, p = campaign
    spec = load_spec(p)
    assert list(load(spec, material="Al").model) == ["EMT-same", "broken"]
    assert list(load(spec, model=["broken"]).material_id) == ["Cu", "Al"]
    assert list(zip(*[load(spec, material="Cu", model="EMT-same")[c] for c in ("material_id", "model")])) == [("Cu", "EMT-same")]
    assert load(spec, campaign="another").empty and load(spec, kind="kappa").empty
    assert load(spec, strategy="full").empty  # phonons rows have no strategy (finetune only)
    assert len(load(spec, kind="phonons")) == 4


def test_store_folder_reads_the_same_rows_without_the_spec(campaign):
    root, p = campaign
    by_spec = load(p)
    by_store = load(root / "camp")
    assert list(by_store.columns) == list(by_spec.columns)
    assert by_store.equals(by_spec)
    assert list(by_store.reason) == list(by_spec.reason)
    assert len(load(root / "camp" / "store.sqlite", campaign="emt-report")) == 4
    with pytest.raises(SpecError, match="no campaign named 'nope'.*campaigns: emt-report"):
        load(root / "camp", campaign="nope")
    with pytest.raises(SpecError, match="no store.sqlite in this folder"):
        load(root)
    with pytest.raises(SpecError, match="no such file or folder"):
        load(root / "missing.yaml")


def test_a_pair_not_run_is_a_missing_row(campaign, emt_spec):
    root, _ = campaign
    more = emt_spec(root, file="more.yaml", name="emt-report", models=(*MODELS, "EMT-new"))  # EMT-new added after the run
    df = load(more, model="EMT-new")
    assert list(df.material_id) == ["Cu", "Al"] and (df.status == "missing").all() and not df.failed.any()
    assert df.reason.str.contains("not run").all()


def test_every_column_is_documented_with_a_unit(campaign):
    _, p = campaign
    for c in load(p).columns:
        unit, desc = column_info(c)
        assert unit and desc, c
    # units are in the names (docs/metrics.md)
    assert COLUMNS["omega_max_K"][0] == "K" and COLUMNS["entropy_300K_J_per_K_mol"][0] == "J/K/mol"
    assert COLUMNS["free_energy_error_300K_kJ_per_mol"][0] == "kJ/mol" and COLUMNS["kappa_W_per_mK"][0] == "W/m/K"
    assert COLUMNS["mesh_mae_THz"][0] == "THz" and COLUMNS["srme"][0] == "1"
    assert column_info("entropy_600K_J_per_K_mol_ref")[0] == "J/K/mol" and "600 K" in column_info("entropy_600K_J_per_K_mol_ref")[1]
    with pytest.raises(KeyError, match="not a column"):
        column_info("omega_max_eV")
