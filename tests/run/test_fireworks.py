"""FireWorks at scale: idempotent submission, relative store paths, resource categories, a
separate ``rlaunch`` worker process on the embedded (mongomock-persistence) LaunchPad, and failed
jobs recorded in the store (FailureDoc) as ``pftflow run`` records them.

The campaign is the cheap EMT one of tests/flows/test_campaigns.py (ase EMT stands in for the
reference and the models; a model identical to the reference must give zero errors), with its
store at the *relative* path ``camp`` (the default store path is relative too).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pftflow.results import load_results
from pftflow.spec import load_spec

#: the emt_spec campaign (tests/conftest.py) with its store at the relative path ``camp``
FW_SPEC = {"name": "emt-fw", "store": "camp"}
#: Fireworks of the campaign: per material 3 reference jobs (displacements, forces, analysis) and 4
#: per model (+ compare), and the parameters record
N_ONE_MODEL = 2 * (3 + 4) + 1


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MONGOMOCK_SERVERSTORE_FILE", "PFTFLOW_MONGODB_URI")}
    env["OMP_NUM_THREADS"] = "1"
    return env


def _launchpad_fws(path: Path) -> list[dict]:
    """Firework documents of an embedded LaunchPad file (read as FireWorks wrote it)."""
    from bson import json_util

    data = json_util.loads(path.read_text())
    return [doc for _, doc in data["fireworks"]["fireworks"]["documents"]]


def _compare_rows(spec) -> dict:
    res = load_results(spec)
    return {(r["material_id"], r["model"]): r for r in res["rows"]}


def test_submit_twice_adds_the_work_once_and_a_new_model_only_its_jobs(tmp_path, monkeypatch, emt_spec):
    """A second submit adds nothing; a spec with one more model adds only that model's jobs (and
    the new parameters record), chained after the reference Fireworks already on the LaunchPad;
    ``--launch`` (rapidfire, relative store path) then completes all of it once."""
    from pftflow.run import submit_campaign

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MONGOMOCK_SERVERSTORE_FILE", raising=False)
    one = load_spec(emt_spec(tmp_path, **FW_SPEC))
    two = load_spec(emt_spec(tmp_path, file="spec2.yaml", models=("EMT-same", "EMT-b"), **FW_SPEC))

    first = submit_campaign(one)
    lp_file = Path(first["launchpad"])
    assert lp_file == (tmp_path / "camp" / "fireworks_launchpad.json").resolve()
    assert first["fireworks_added"] == N_ONE_MODEL and first["states"] == {"READY": 3, "WAITING": N_ONE_MODEL - 3}  # roots: the record and the reference displacements
    fws = _launchpad_fws(lp_file)
    assert len(fws) == N_ONE_MODEL
    assert all(f["spec"]["_category"] in ("light", "cpu-heavy") for f in fws)
    assert {f["spec"]["_category"] for f in fws if f["name"].startswith("forces")} == {"cpu-heavy"}
    assert {f["spec"]["_category"] for f in fws if not f["name"].startswith("forces")} == {"light"}

    second = submit_campaign(one)
    assert second["fireworks_added"] == 0 and second["fireworks_on_launchpad"] == N_ONE_MODEL
    assert len(_launchpad_fws(lp_file)) == N_ONE_MODEL

    third = submit_campaign(two)
    assert third["fireworks_added"] == 2 * 4 + 1  # EMT-b on Cu and Al, and the changed spec's record
    assert third["fireworks_on_launchpad"] == N_ONE_MODEL - 1
    fws = _launchpad_fws(lp_file)
    assert len(fws) == 2 * N_ONE_MODEL - 6
    keys = [f["spec"]["pftflow_fw_key"] for f in fws]
    assert len(set(keys)) == len(keys)
    # the new model starts from the reference's cell: it waits for the reference Fireworks
    new_model = [f for f in fws if f["spec"].get("model") == "EMT-b"]
    assert len(new_model) == 8 and {f["state"] for f in new_model} == {"WAITING"}

    done = submit_campaign(two, launch=True)
    assert done["fireworks_added"] == 0
    assert done["states"] == {"COMPLETED": len(fws)}
    rows = _compare_rows(two)
    assert set(rows) == {(m, k) for m in ("Cu", "Al") for k in ("EMT-same", "EMT-b")}
    for r in rows.values():  # identical calculator: zero error, a real ω_max
        assert r.get("omega_max_K", 0) > 200 and abs(r["omega_max_K"] - r["omega_max_K_ref"]) < 1e-6, r
    assert (tmp_path / "camp" / "fw_launches").is_dir()

    # a COMPLETED Firework whose output has gone from the store is submitted again
    for f in (tmp_path / "camp").glob("store.sqlite*"):
        f.unlink()
    lost = submit_campaign(two)
    assert lost["fireworks_added"] == 2 * (3 + 2 * 4)  # every keyed job; the parameters record stays
    assert lost["states"] == {"COMPLETED": len(fws), "READY": 2, "WAITING": 2 * (3 + 2 * 4) - 2}


def test_rlaunch_worker_process_light_then_cpu(tmp_path, emt_spec):
    """``pftflow submit`` (no launch), then separate ``rlaunch`` processes on the same
    mongomock-persistence file: a ``light``-only worker runs only light jobs; a light + cpu-heavy
    worker completes the campaign; ``pftflow results`` shows its rows."""
    spec_path = emt_spec(tmp_path, **FW_SPEC)
    env = _env()
    cli = lambda *a: subprocess.run([sys.executable, "-m", "pftflow.cli", *a], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)  # noqa: E731
    sub = cli("submit", str(spec_path.name))
    assert sub.returncode == 0, sub.stderr[-3000:]
    out = json.loads(sub.stdout)
    lp_file = Path(out["launchpad"])
    assert out["fireworks_added"] == N_ONE_MODEL and "rlaunch -l" in out["worker"]

    (tmp_path / "light.yaml").write_text("name: light-worker\ncategory: light\nquery: '{}'\n")
    (tmp_path / "cpu.yaml").write_text("name: cpu-worker\ncategory: [light, cpu-heavy]\nquery: '{}'\n")
    work = tmp_path / "worker"
    work.mkdir()
    wenv = {**env, "MONGOMOCK_SERVERSTORE_FILE": str(lp_file)}
    rlaunch = lambda w: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "fireworks.scripts.rlaunch_run", "-l", str(lp_file.with_name("fireworks_launchpad.yaml")), "-w", str(w), "rapidfire"],
        cwd=work, env=wenv, capture_output=True, text=True, timeout=300,
    )
    r1 = rlaunch(tmp_path / "light.yaml")
    assert r1.returncode == 0, r1.stderr[-3000:]
    fws = _launchpad_fws(lp_file)
    done = [f for f in fws if f["state"] == "COMPLETED"]
    # the roots: the parameters record and the 2 reference displacement sets (the model's wait for the reference)
    assert len(done) == 3 and {f["spec"]["_category"] for f in done} == {"light"}
    assert {f["state"] for f in fws if f["spec"]["_category"] == "cpu-heavy"} <= {"READY", "WAITING"}

    r2 = rlaunch(tmp_path / "cpu.yaml")
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert {f["state"] for f in _launchpad_fws(lp_file)} == {"COMPLETED"}
    res = cli("results", spec_path.name, "--format", "json")
    assert res.returncode == 0, res.stderr[-3000:]
    rows = json.loads(res.stdout)["rows"]
    assert sorted((r["material_id"], r["model"]) for r in rows) == [("Al", "EMT-same"), ("Cu", "EMT-same")]
    assert all(r["omega_max_K"] > 200 and abs(r["omega_max_K"] - r["omega_max_K_ref"]) < 1e-6 for r in rows)


def test_light_worker_does_not_pull_gpu_jobs(tmp_path):
    """A training job is category ``gpu``: a light (or light + cpu-heavy) FireWorker leaves it
    READY, while the light job beside it runs; a ``gpu`` worker would get it."""
    from fireworks import FWorker
    from jobflow import Flow

    from pftflow.flows import jobs
    from pftflow.flows.training import TrainMaker
    from pftflow.identity import ResultId
    from pftflow.run.fireworks import add_flow, launch_rockets, open_embedded_launchpad, save_launchpad
    from pftflow.store import make_job_store

    rid = ResultId(campaign="gpu-test", kind="finetune", stage="parameters")
    params = jobs.record_parameters({"name": "gpu-test"})
    params.metadata = rid.metadata()
    train = TrainMaker(run_dir=str(tmp_path / "runs"), fworker=None).make({"train": []}, {"backend": "ase", "name": "EMT", "import_path": "ase.calculators.emt:EMT"})
    train.metadata = {**train.metadata, **rid.with_(stage="train", model="tiny").metadata("k-train")}
    assert train.config.manager_config == {"_category": "gpu"} and train.metadata["resources"] == "gpu"
    assert TrainMaker().make({"train": []}, {}).config.manager_config == {"_category": "gpu", "_fworker": "gpu"}

    store = make_job_store(tmp_path / "camp")
    store.connect()
    lp = open_embedded_launchpad(tmp_path / "lp.json")
    try:
        assert add_flow(lp, Flow([params, train]), store, campaign="gpu-test")["fireworks_added"] == 2
        launch_rockets(lp, launch_dir=tmp_path / "launches", categories=["light"])
        launch_rockets(lp, launch_dir=tmp_path / "launches", categories=["light", "cpu-heavy"])
        states = {d["name"]: (d["state"], d["spec"]["_category"]) for d in lp.fireworks.find({}, {"name": 1, "state": 1, "spec._category": 1})}
        assert states == {"record_parameters": ("COMPLETED", "light"), "pft train": ("READY", "gpu")}
        assert not lp.run_exists(FWorker(category="light")) and not lp.run_exists(FWorker(category=["light", "cpu-heavy"]))
        assert lp.run_exists(FWorker(category="gpu")) and lp.run_exists(FWorker(name="gpu-node-7", category=["gpu", "light"]))
    finally:
        save_launchpad(lp)
        store.close()


def test_relative_file_arguments_become_absolute(tmp_path, monkeypatch):
    """A worker runs jobs in its own launch directory: file paths in job arguments are made absolute
    when the flow is prepared for FireWorks (other strings are left alone)."""
    from jobflow import Flow

    from pftflow.flows import jobs
    from pftflow.flows.phonons import ForceMaker
    from pftflow.run.fireworks import prepare_jobs

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "ref.yaml").write_text("x")
    imp = jobs.import_reference("data/ref.yaml", fmt="phonopy", material_id="Si")
    calc = ForceMaker(calculator={"backend": "ase", "model": "data/ref.yaml", "import_path": "ase.calculators.emt:EMT", "name": "EMT"}).make(imp.output)
    (j1, j2) = prepare_jobs(Flow([imp, calc]))
    assert j1.function_args[0] == str(tmp_path / "data" / "ref.yaml") and j1.function_kwargs["fmt"] == "phonopy"
    assert j2.function_args[1]["model"] == str(tmp_path / "data" / "ref.yaml")
    assert j2.function_args[1]["import_path"] == "ase.calculators.emt:EMT" and j2.function_args[1]["name"] == "EMT"
    assert j1.config.manager_config["_category"] == "light" and j2.config.manager_config["_category"] == "cpu-heavy"


@pytest.mark.parametrize("category", ["gpu", "cpu-heavy", "light"])
def test_set_resources_tags_job_and_firework_spec(category):
    from jobflow.managers.fireworks import flow_to_workflow

    from pftflow.flows import jobs
    from pftflow.flows.phonons import set_resources

    j = set_resources(jobs.compare(None, None), category)
    fw = flow_to_workflow(j).fws[0]
    assert fw.spec["_category"] == category and fw.spec["resources"] == category
    with pytest.raises(ValueError, match="resource category"):
        set_resources(j, "big")


# ------------------------------------------------------------------------------------ failures
#: what the broken model of the ``emt_campaign`` fixture (tests/run/conftest.py) fails with: the
#: first line of its message, and the hint its exception class carries
BROKEN_REASON = "ModelWeightsMissing: model weights missing: /nowhere/model.pth"
BROKEN_HINT = "download the weights to /nowhere/model.pth or point the model's path at them"
FIRETASK = "{{pftflow.run.fireworks.PftflowJobFiretask}}"
#: ω_max of the EMT campaign with relaxed models (the values of tests/run/test_local.py)
OMEGA_MAX_K = {"Cu": 336.85803695910437, "Al": 354.1353770696744}


def test_failed_firework_writes_a_failure_doc_and_a_rerun_makes_the_row_ok(emt_campaign, monkeypatch):
    """``submit --launch`` with a good and a broken model: the broken model's relax FIZZLES and
    writes a FailureDoc like ``pftflow run`` does, so ``pftflow results`` has the pair as failed
    (stage, reason, hint) and ``pftflow status`` lists the job as failed with its reason.  Once the
    model is fixed, a second submit reruns the FIZZLED Fireworks and the rows become ok."""
    from pftflow.flows.reuse import stored_failures
    from pftflow.run import open_store, submit_campaign
    from pftflow.status import campaign_status, format_status
    import pftflow.run.fireworks as fw_mod

    trims = []  # the task offers the C heap back after every job, completed or fizzled (pftflow.run.memory)
    monkeypatch.setattr(fw_mod, "release_free_heap", lambda: trims.append(1))
    spec = load_spec(emt_campaign(broken=True))
    out = submit_campaign(spec, launch=True)
    n = 1 + 2 * (3 + 5 + 5)  # the record; per material the reference and two relaxed models (+ compare)
    assert out["fireworks_added"] == n
    # the broken relax FIZZLES on both materials; the 4 jobs after it per material wait for it
    assert out["states"] == {"COMPLETED": n - 10, "FIZZLED": 2, "WAITING": 8}
    assert len(trims) == n - 8
    lp_file = Path(out["launchpad"])
    fws = _launchpad_fws(lp_file)
    assert {t["_fw_name"] for f in fws for t in f["spec"]["_tasks"]} == {FIRETASK}
    fizzled = {f["spec"]["material_id"]: f for f in fws if f["state"] == "FIZZLED"}
    assert set(fizzled) == {"Cu", "Al"} and {f["spec"]["stage"] for f in fizzled.values()} == {"relax"}

    store = open_store(spec)
    try:
        fails = {f.material_id: f for f in stored_failures(store, spec.name)}
    finally:
        store.close()
    assert set(fails) == {"Cu", "Al"}
    for mid, f in fails.items():
        fw = fizzled[mid]
        assert (f.campaign, f.kind, f.model, f.stage, f.error_class) == ("emt-run", "phonons", "broken", "relax", "ModelWeightsMissing")
        assert f.reason == BROKEN_REASON and f.hint == BROKEN_HINT
        assert f.job_name == f"relax {mid} broken" and f.pftflow_key == fw["spec"]["pftflow_key"]
        assert f.job_uuid == fw["spec"]["_tasks"][0]["job"]["uuid"] and f.host
        # the whole traceback: in the Firework's launch directory (and FireWorks' launch record)
        log = Path(f.log_file)
        assert log.parent.parent == (Path(spec.store_dir) / "fw_launches").resolve() and log.name == "pftflow_failure.log"
        text = log.read_text()
        assert text.count("Traceback (most recent call last)") == 1 and "second line of the message" in text

    rows = _compare_rows(spec)
    for mid in ("Cu", "Al"):
        bad, good = rows[(mid, "broken")], rows[(mid, "EMT-same")]
        assert (bad["status"], bad["failed"], bad["failed_stage"], bad["error"], bad["hint"]) == ("failed", True, "relax", BROKEN_REASON, BROKEN_HINT)
        assert good["status"] == "ok" and good["omega_max_K"] == pytest.approx(OMEGA_MAX_K[mid], rel=1e-10)
    st = campaign_status(spec)
    failed = [(j["material_id"], j["stage"], j["reason"], j["hint"]) for j in st["jobs"] if j["status"] == "failed"]
    assert failed == [("Cu", "relax", BROKEN_REASON, BROKEN_HINT), ("Al", "relax", BROKEN_REASON, BROKEN_HINT)]
    assert st["totals"] == {"done": n - 10, "reused": 0, "running": 0, "failed": 2, "missing": 8}
    text = format_status(st)
    assert text.count(BROKEN_REASON) == 2 and "fix Cu / broken / relax: download the weights" in text

    # the model fixed (same import path: same keys): the FIZZLED Fireworks are rerun and succeed
    Path("runtest_brokencalc.py").write_text("from ase.calculators.emt import EMT as make  # fixed: the model loads now\n")
    monkeypatch.delitem(sys.modules, "runtest_brokencalc", raising=False)
    again = submit_campaign(spec, launch=True)
    assert again["fireworks_added"] == 0 and again["fireworks_rerun"] == 2
    assert again["states"] == {"COMPLETED": n}
    rows = _compare_rows(spec)  # the old FailureDocs stay in the store; the results win over them
    for mid in ("Cu", "Al"):
        fixed = rows[(mid, "broken")]
        assert fixed["status"] == "ok" and not fixed["failed"] and fixed.get("error") is None
        assert fixed["omega_max_K"] == pytest.approx(OMEGA_MAX_K[mid], rel=1e-10)  # EMT now: the reference's ω_max
    st = campaign_status(spec)
    assert st["totals"] == {"done": n, "reused": 0, "running": 0, "failed": 0, "missing": 0}


def test_rlaunch_worker_process_records_failures(tmp_path, emt_campaign, emt_spec):
    """A separate ``rlaunch`` process runs the Fireworks (importing the pftflow Firetask by module
    path): the broken model's failure reaches the store, ``pftflow results`` and ``pftflow status``."""
    spec_path = emt_spec(tmp_path, file="one.yaml", name="emt-fw-fail", store="camp", materials=("Cu",),
                         models=(("broken", "runtest_brokencalc:make"), "EMT-same"))
    env = {**_env(), "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}  # runtest_brokencalc (emt_campaign)
    cli = lambda *a: subprocess.run([sys.executable, "-m", "pftflow.cli", *a], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)  # noqa: E731
    sub = cli("submit", spec_path.name)
    assert sub.returncode == 0, sub.stderr[-3000:]
    lp_file = Path(json.loads(sub.stdout)["launchpad"])
    (tmp_path / "cpu.yaml").write_text("name: cpu-worker\ncategory: [light, cpu-heavy]\nquery: '{}'\n")
    work = tmp_path / "worker"
    work.mkdir()
    r = subprocess.run(
        [sys.executable, "-m", "fireworks.scripts.rlaunch_run", "-l", str(lp_file.with_name("fireworks_launchpad.yaml")), "-w", str(tmp_path / "cpu.yaml"), "rapidfire"],
        cwd=work, env={**env, "MONGOMOCK_SERVERSTORE_FILE": str(lp_file)}, capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    fws = _launchpad_fws(lp_file)
    states = {(f["spec"].get("model"), f["spec"].get("stage")): f["state"] for f in fws}
    # forces of the broken model: the one job of it that builds the calculator (no relax here)
    assert states[("broken", "forces")] == "FIZZLED" and states[("EMT-same", "compare")] == "COMPLETED"
    assert {t["_fw_name"] for f in fws for t in f["spec"]["_tasks"]} == {FIRETASK}

    res = cli("results", spec_path.name, "--format", "json")
    assert res.returncode == 0, res.stderr[-3000:]
    rows = {(r["material_id"], r["model"]): r for r in json.loads(res.stdout)["rows"]}
    bad, good = rows[("Cu", "broken")], rows[("Cu", "EMT-same")]
    assert (bad["status"], bad["failed_stage"], bad["error"], bad["hint"]) == ("failed", "forces", BROKEN_REASON, BROKEN_HINT)
    assert good["status"] == "ok" and abs(good["omega_max_K"] - good["omega_max_K_ref"]) < 1e-6 and good["omega_max_K"] > 200
    st = cli("status", spec_path.name, "--json")
    assert st.returncode == 0, st.stderr[-3000:]
    failed = [(j["model"], j["stage"], j["reason"]) for j in json.loads(st.stdout)["jobs"] if j["status"] == "failed"]
    assert failed == [("broken", "forces", BROKEN_REASON)]
    log = next(work.glob("launcher_*/pftflow_failure.log"))  # the worker's launch directory
    assert "second line of the message" in log.read_text()


DYNAMIC_JOBS = '''
from jobflow import Response, job


@job
def fails(x):
    raise ValueError(f"replacement failed on {x}\\nsecond line")


@job
def check(x):
    """Replaces itself, as the kappa fc2 check does with the fc3 forces and the conductivity."""
    return Response(replace=fails(x))


@job
def ok(x):
    return x
'''


def test_jobs_added_at_run_time_record_failures_too(tmp_path, monkeypatch):
    """A job that replaces itself (Response.replace): the replacement's Firework runs the pftflow
    Firetask too, and its failure is written with the identity of the job it replaced."""
    from jobflow import Flow

    from pftflow.flows.reuse import stored_failures
    from pftflow.identity import ResultId
    from pftflow.run.fireworks import add_flow, launch_rockets, open_embedded_launchpad, save_launchpad
    from pftflow.store import make_job_store

    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "fwtest_dynamic.py").write_text(DYNAMIC_JOBS)
    import fwtest_dynamic as dyn

    chk = dyn.check(3)
    chk.metadata = ResultId(campaign="dyn", kind="kappa", material_id="Si", model="m", stage="fc2_check").metadata("k-check")
    store = make_job_store(tmp_path / "camp")
    store.connect()
    lp = open_embedded_launchpad(tmp_path / "lp.json")
    try:
        assert add_flow(lp, Flow([chk]), store, campaign="dyn")["fireworks_added"] == 1
        launch_rockets(lp, launch_dir=tmp_path / "launches")
        fws = list(lp.fireworks.find({}, {"name": 1, "state": 1, "spec._tasks": 1}))
        assert sorted((d["name"], d["state"]) for d in fws) == [("check", "COMPLETED"), ("fails", "FIZZLED")]
        assert {t["_fw_name"] for d in fws for t in d["spec"]["_tasks"]} == {FIRETASK}
        (f,) = stored_failures(store, "dyn")
        assert (f.material_id, f.model, f.stage, f.kind, f.job_name) == ("Si", "m", "fc2_check", "kappa", "fails")
        assert f.reason == "ValueError: replacement failed on 3" and f.hint is None and f.job_uuid == chk.uuid
    finally:
        save_launchpad(lp)
        store.close()


def test_recording_a_failure_never_masks_the_job_error(tmp_path, monkeypatch):
    """When the failure cannot be written (store down), the Firework still FIZZLES with the job's
    own exception in FireWorks' launch record; a job that succeeds is untouched."""
    from jobflow import Flow

    from pftflow.flows import reuse
    from pftflow.identity import ResultId
    from pftflow.run.fireworks import add_flow, launch_rockets, open_embedded_launchpad, save_launchpad
    from pftflow.store import make_job_store

    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "fwtest_dynamic.py").write_text(DYNAMIC_JOBS)
    import fwtest_dynamic as dyn

    def store_down(*a, **k):
        raise ConnectionError("store down")

    monkeypatch.setattr(reuse, "record_failure", store_down)
    bad, good = dyn.fails(5), dyn.ok(7)
    rid = ResultId(campaign="mask", kind="phonons", material_id="Si", model="m", stage="forces")
    bad.metadata, good.metadata = rid.with_(stage="forces").metadata("k-bad"), rid.with_(stage="analysis").metadata("k-good")
    store = make_job_store(tmp_path / "camp")
    store.connect()
    lp = open_embedded_launchpad(tmp_path / "lp.json")
    try:
        for j in (bad, good):  # two independent workflows
            add_flow(lp, Flow([j]), store, campaign="mask")
        launch_rockets(lp, launch_dir=tmp_path / "launches")
        states = {d["name"]: (d["state"], d["fw_id"]) for d in lp.fireworks.find({}, {"name": 1, "state": 1, "fw_id": 1})}
        assert states["fails"][0] == "FIZZLED" and states["ok"][0] == "COMPLETED"
        launch = lp.launches.find_one({"fw_id": states["fails"][1]})
        trace = launch["action"]["stored_data"]["_exception"]["_stacktrace"]
        assert "ValueError: replacement failed on 5" in trace and "store down" not in trace
        assert store.docs_store.count({"metadata.campaign": "mask", "metadata.stage": "failure"}) == 0
        assert store.query_one({"uuid": good.uuid})["output"] == 7
    finally:
        save_launchpad(lp)
        store.close()
