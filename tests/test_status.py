"""`pftflow status`: per material × model × stage done / reused / failed (with reason) / missing,
totals and wall time per stage, on a one-material EMT campaign with a model that fails."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout

import pytest

from pftflow.run import run_campaign
from pftflow.spec import load_spec
from pftflow.status import campaign_status, format_status

STAGES_REF = ["displacements", "forces", "analysis"]
STAGES_MODEL = ["displacements", "forces", "analysis", "compare"]


def _by(st):
    return {(j["material_id"], j["model"], j["stage"]): j for j in st["jobs"]}


def test_status_before_during_and_after_runs(tmp_path, monkeypatch, emt_spec):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    fixed = tmp_path / "fixed"  # the model works once this file exists
    (tmp_path / "statusbroken.py").write_text(
        f"import os\nfrom ase.calculators.emt import EMT\n\ndef make():\n    if os.path.exists({str(fixed)!r}):\n        return EMT()\n"
        "    raise FileNotFoundError(2, 'No such file', '/nowhere/w.pth')\n")
    path = emt_spec(tmp_path, name="emt-status", materials=("Cu",), models=(("broken", "statusbroken:make"), "EMT-same"))

    # nothing run: every job missing, no run recorded
    st = campaign_status(load_spec(path))
    assert st["totals"] == {"done": 0, "reused": 0, "running": 0, "failed": 0, "missing": 1 + 3 + 4 + 4}
    assert st["last_run"] is None and st["running"] is None

    summary = run_campaign(load_spec(path), progress=False, plots=False)
    assert summary.failed_jobs == 1
    st = campaign_status(load_spec(path))
    jobs = _by(st)
    assert [k for k in jobs] == [(None, None, "parameters")] + [("Cu", "reference", s) for s in STAGES_REF] + [
        ("Cu", "broken", s) for s in STAGES_MODEL] + [("Cu", "EMT-same", s) for s in STAGES_MODEL]
    assert st["totals"] == {"done": 1 + 3 + 1 + 4, "reused": 0, "running": 0, "failed": 1, "missing": 2}
    f = jobs[("Cu", "broken", "forces")]
    assert f["status"] == "failed" and f["reason"] == "FileNotFoundError: [Errno 2] No such file: '/nowhere/w.pth'"
    assert f["hint"] == "check the path '/nowhere/w.pth' in the spec"
    for s in ("analysis", "compare"):
        assert jobs[("Cu", "broken", s)]["status"] == "missing"
        assert jobs[("Cu", "broken", s)]["reason"] == "not run: forces of Cu / broken failed"
    # wall times: every finished job has one, bounded by the run's own wall time
    done = [j for j in st["jobs"] if j["status"] == "done" and j["stage"] != "parameters"]
    assert all(j["wall_time_s"] is not None and 0 <= j["wall_time_s"] < summary.wall_time_s for j in done)
    stage_sum = sum(v["wall_time_s"] for v in st["stages"].values())
    assert 0 < stage_sum <= summary.wall_time_s
    assert st["stages"]["forces"] == {"jobs": 3, "done": 2, "reused": 0, "running": 0, "failed": 1, "missing": 0,
                                      "wall_time_s": pytest.approx(jobs[("Cu", "reference", "forces")]["wall_time_s"] + jobs[("Cu", "EMT-same", "forces")]["wall_time_s"])}
    assert st["last_run"]["jobs_run"] == summary.jobs_run and st["last_run"]["finished_at"] is not None

    # the model fixed, rerun: the jobs stored by the first run are "reused", the redone ones "done"
    fixed.touch()
    again = run_campaign(load_spec(path), progress=False, plots=False)
    assert again.failed_jobs == 0 and again.jobs_run == 1 + 3
    st2 = campaign_status(load_spec(path))
    jobs2 = _by(st2)
    assert st2["totals"] == {"done": 1 + 3, "reused": 3 + 1 + 4, "running": 0, "failed": 0, "missing": 0}
    assert {k[2] for k, j in jobs2.items() if j["status"] == "done" and k[1] == "broken"} == {"forces", "analysis", "compare"}
    assert jobs2[("Cu", "EMT-same", "forces")]["wall_time_s"] == jobs[("Cu", "EMT-same", "forces")]["wall_time_s"]  # from its run

    text = format_status(st)
    assert "Cu        broken     forces         failed" in text
    assert "fix Cu / broken / forces: check the path '/nowhere/w.pth' in the spec" in text
    assert "12 jobs: 9 done, 0 reused, 0 running, 1 failed, 2 missing" in text and "last run: " in text

    from pftflow.cli import main

    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(["status", "--json"]) == 0  # the last campaign run from this directory
    assert json.loads(buf.getvalue())["totals"] == st2["totals"]
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(["status", str(path)]) == 0
    assert "stage          jobs  done  reused  running  failed  missing  wall [s]" in buf.getvalue()


def test_status_names_the_running_job_and_the_job_a_killed_run_died_in(tmp_path, monkeypatch, emt_spec):
    """A job shows as running while the run's process runs it; after SIGKILL (what the kernel's OOM killer
    sends: no traceback, no FailureDoc) it is failed with an "aborted" reason and a hint, and its
    dependants are missing "not run"; a rerun finishes it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    started, go = tmp_path / "started", tmp_path / "go"
    (tmp_path / "slowcalc.py").write_text(
        "import os, pathlib, time\nfrom ase.calculators.emt import EMT\n\ndef make():\n"
        f"    pathlib.Path({str(started)!r}).touch()\n"
        f"    while not os.path.exists({str(go)!r}):\n        time.sleep(0.05)\n    return EMT()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = emt_spec(tmp_path, name="emt-abort", materials=("Cu",), models=(("slow", "slowcalc:make"),))
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "pftflow.cli", "run", str(path), "--no-progress", "--no-plots"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t0 = time.time()
        while not started.exists():
            assert proc.poll() is None and time.time() - t0 < 120, "the run ended before reaching the slow model"
            time.sleep(0.1)
        jobs = _by(campaign_status(load_spec(path)))
        assert jobs[("Cu", "slow", "forces")]["status"] == "running" and jobs[("Cu", "slow", "forces")]["reason"].startswith("running since ")
        assert jobs[("Cu", "reference", "forces")]["status"] == "done"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    st = campaign_status(load_spec(path))
    jobs = _by(st)
    f = jobs[("Cu", "slow", "forces")]
    assert f["status"] == "failed" and f["reason"].startswith(f"aborted: the process of the run (pid {proc.pid} on ")
    assert "killed by a signal or out of memory" in f["reason"] and "run the campaign again" in f["hint"]
    assert jobs[("Cu", "slow", "analysis")]["reason"] == "not run: forces of Cu / slow was aborted"
    assert st["totals"]["failed"] == 1 and st["running"] is None
    assert "the last run's process died while running Cu / slow / forces" in format_status(st)

    # the same death with the OOM killer's count of this cgroup grown since the run started: "killed for memory"
    import pftflow.status as status_mod
    from pftflow.run import open_store
    from pftflow.run.local import write_run_record

    spec = load_spec(path)
    record = dict(st["last_run"], oom_kills_at_start=3)  # what a run records (provenance.oom_kill_count)
    store = open_store(spec)
    try:
        write_run_record(store, spec, record["run_id"], record)
    finally:
        store.close()
    monkeypatch.setattr(status_mod, "oom_kill_count", lambda: 4)
    st_oom = campaign_status(spec)
    f = _by(st_oom)[("Cu", "slow", "forces")]
    assert f["reason"].startswith("killed for memory: the kernel's OOM killer ended the process of the run")
    assert "(OOM kills in this cgroup: 3 when the run started, 4 now)" in f["reason"] and "batch_atoms of a chgnet model" in f["hint"]
    assert "was killed for memory (the kernel's OOM killer) while running Cu / slow / forces" in format_status(st_oom)
    monkeypatch.setattr(status_mod, "oom_kill_count", lambda: 3)  # no new OOM kill: a plain abort again
    assert _by(campaign_status(spec))[("Cu", "slow", "forces")]["reason"].startswith("aborted: ")

    go.touch()  # the rerun gets past the model: the aborted job is done
    assert run_campaign(load_spec(path), progress=False, plots=False).failed_jobs == 0
    st = campaign_status(load_spec(path))
    assert st["totals"]["failed"] == 0 and st["totals"]["missing"] == 0 and _by(st)[("Cu", "slow", "forces")]["status"] == "done"
