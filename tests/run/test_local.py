"""The local runner: failures are results (FailureDoc in the store, rows in `pftflow results`), and
job-level reuse (a rerun redoes exactly the jobs whose complete output is not stored)."""

from __future__ import annotations

import pytest

from pftflow.flows.reuse import FAILURE_STAGE, find_stored, stored_failures, stored_jobs
from pftflow.flows.campaigns import KINDS
from pftflow.results import format_results, load_results
from pftflow.run import open_store, run_campaign
from pftflow.spec import load_spec

# ω_max of the EMT campaign with relaxed models (tests/flows/test_campaigns.py, values of pftflow 0.1)
OMEGA_MAX_K = {"Cu": 336.85803695910437, "Al": 354.1353770696744}


def _keyed(store, campaign):
    return list(store.query({"metadata.campaign": campaign, "metadata.pftflow_key": {"$exists": True}},
                            properties=["uuid", "name", "metadata"]))


def test_failed_jobs_are_stored_shown_as_rows_and_not_reused(emt_campaign, monkeypatch):
    import pftflow.run.local as local

    trims = []  # the runner offers the C heap back after every job, finished or failed (pftflow.run.memory)
    monkeypatch.setattr(local, "release_free_heap", lambda: trims.append(1))
    spec = load_spec(emt_campaign(broken=True))
    summary = run_campaign(spec, progress=False, plots=False)
    assert len(trims) == summary.jobs_run + summary.failed_jobs
    # the broken model's relax fails on each material; its 4 later jobs per material are not run
    assert {(f.material_id, f.model, f.stage) for f in summary.failures} == {("Cu", "broken", "relax"), ("Al", "broken", "relax")}
    assert summary.jobs_planned == 1 + 2 * (3 + 5 + 5) and summary.jobs_run == 1 + 2 * (3 + 5)
    assert summary.jobs_not_run == 8
    reason = "ModelWeightsMissing: model weights missing: /nowhere/model.pth"  # first line of the message only
    assert all(f.reason == reason and f.error_class == "ModelWeightsMissing" for f in summary.failures)
    text = summary.text()
    assert "FAILED Cu / broken / relax: " + reason in text and "fix: download the weights" in text
    assert "8 not run after a failure" in text and "Traceback" not in text
    with open(summary.log_file) as fh:
        log = fh.read()
    assert log.count("Traceback (most recent call last)") == 2 and "second line of the message" in log

    store = open_store(spec)
    try:
        fails = stored_failures(store, spec.name)
        assert len(fails) == 2
        for f in fails:
            assert (f.campaign, f.kind, f.model, f.stage) == ("emt-run", "phonons", "broken", "relax")
            assert f.reason == reason and f.hint.startswith("download the weights") and f.log_file == summary.log_file
            assert f.job_name == f"relax {f.material_id} broken" and f.job_uuid and f.pftflow_key
            # a failure is never taken for an output: its key has no stored job
            assert stored_jobs(store, [f.pftflow_key]) == {} and find_stored(store, f.pftflow_key) is None
        assert store.count({"metadata.stage": FAILURE_STAGE, "metadata.pftflow_key": {"$exists": True}}) == 0
    finally:
        store.close()

    res = load_results(spec)
    rows = {(r["material_id"], r["model"]): r for r in res["rows"]}
    assert list(rows) == [("Cu", "broken"), ("Cu", "EMT-same"), ("Al", "broken"), ("Al", "EMT-same")]  # spec order
    for mid in ("Cu", "Al"):
        bad, good = rows[(mid, "broken")], rows[(mid, "EMT-same")]
        assert bad["failed"] is True and bad["status"] == "failed" and bad["failed_stage"] == "relax" and bad["error"] == reason
        assert good["status"] == "ok" and good["omega_max_K"] == pytest.approx(OMEGA_MAX_K[mid], rel=1e-10)
    assert res["summary"]["broken"]["n_failed"] == 2 and res["summary"]["broken"]["n_evaluated"] == 0
    assert res["summary"]["EMT-same"]["n_failed"] == 0
    table = format_results(res, "table")
    assert table.count("failed  ModelWeightsMissing: model weights missing") == 2

    # a rerun tries the failed jobs again (a failure may be transient) and reuses every finished job
    again = run_campaign(load_spec(emt_campaign(broken=True)), progress=False, plots=False)
    assert again.jobs_run == 1 and again.failed_jobs == 2 and again.jobs_reused == 2 * (3 + 5)


def test_missing_pairs_are_rows_until_run(emt_campaign):
    spec = load_spec(emt_campaign(same=True))
    assert run_campaign(spec, progress=False, plots=False).failed_jobs == 0
    # a model added to the spec: its pairs are rows with status "missing" until the campaign is rerun
    bigger = load_spec(emt_campaign(broken=True, name="bigger.yaml"))
    rows = load_results(bigger)["rows"]
    assert [(r["material_id"], r["model"], r["status"]) for r in rows] == [
        ("Cu", "broken", "missing"), ("Cu", "EMT-same", "ok"), ("Al", "broken", "missing"), ("Al", "EMT-same", "ok")]
    assert all(r["failed"] is False and "not run" in r["error"] for r in rows if r["status"] == "missing")
    assert "broken" not in load_results(bigger)["summary"]  # nothing evaluated or failed yet


def test_rerun_redoes_exactly_the_jobs_without_a_complete_output(emt_campaign):
    """Job-level reuse: delete some outputs (and, as a kill between jobflow's document and blob
    writes would leave it, the blobs of another), rerun: exactly those jobs run again, the others
    are reused, and the numbers are the same to the last bit."""
    spec = load_spec(emt_campaign())
    first = run_campaign(spec, progress=False, plots=False)
    assert first.jobs_run == 17 and first.jobs_reused == 0
    before = {(r["material_id"], r["model"]): r for r in load_results(spec)["rows"]}

    store = open_store(spec)
    try:
        docs = {d["name"]: d for d in _keyed(store, spec.name)}
        assert len(docs) == 16
        # Cu's model: forces, analysis, compare gone -> those 3 run again
        for name in ("forces Cu EMT-same", "analysis Cu EMT-same", "compare Cu EMT-same"):
            store.docs_store.remove_docs({"uuid": docs[name]["uuid"]})
        # Al's reference analysis: document there, blobs gone (as a kill between jobflow's two
        # writes leaves it) -> not complete, run again; the model jobs after it keep their keys
        # (keys are chained from settings, not from outputs) and stay reused
        ana = docs["analysis Al reference"]
        assert store.additional_stores["data"].count({"job_uuid": ana["uuid"]}) > 0
        store.additional_stores["data"].remove_docs({"job_uuid": ana["uuid"]})
        assert stored_jobs(store, [ana["metadata"]["pftflow_key"]]) == {}
        flow, reused = KINDS[spec.kind].build(spec, store)
        to_run = sorted(j.name for j, _ in flow.iterflow())
    finally:
        store.close()
    assert to_run == sorted(["record_parameters", "forces Cu EMT-same", "analysis Cu EMT-same", "compare Cu EMT-same", "analysis Al reference"])
    assert reused["reference"] == ["Cu"] and reused["model"] == ["Al/EMT-same"] and len(reused["jobs"]) == 12

    again = run_campaign(load_spec(emt_campaign()), progress=False, plots=False)
    assert again.jobs_run == 5 and again.jobs_reused == 12 and again.failed_jobs == 0
    after = {(r["material_id"], r["model"]): r for r in load_results(spec)["rows"]}
    assert list(after) == list(before)
    for k, r in before.items():
        for field in ("omega_max_K", "omega_max_K_ref", "entropy_300K_J_per_K_mol", "mesh_mae_THz", "band_rmse_THz"):
            assert after[k][field] == r[field], (k, field)


def test_deleted_intermediate_is_rerun_alone(emt_campaign):
    """A stored job whose producer was deleted stays reused; the producer runs again by itself."""
    spec = load_spec(emt_campaign())
    run_campaign(spec, progress=False, plots=False)
    store = open_store(spec)
    try:
        store.docs_store.remove_docs({"metadata.campaign": spec.name, "metadata.material_id": "Cu", "metadata.model": "EMT-same", "metadata.stage": "relax"})
        flow, reused = KINDS[spec.kind].build(spec, store)
        assert sorted(j.name for j, _ in flow.iterflow()) == ["record_parameters", "relax Cu EMT-same"]
        assert len(reused["jobs"]) == 15
    finally:
        store.close()
