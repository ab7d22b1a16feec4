"""SIGKILL a `pftflow run` at three moments, rerun after each: no finished job is redone, the
results have exactly one row per material × model, and the failed pairs are shown with their reason.

The campaign (EMT, tests/run/conftest.py) has 1 + 2 × (3 reference + 5 EMT-same + 5 broken) = 27
jobs; the broken model's relax fails, so 16 keyed jobs can finish.  The run is killed when the store
holds 3, 8 and 13 of them (polled in the SQLite file from this process), each time while the next
job is running (or being written: jobflow stores a job's document before its blobs, and a document
whose blobs are missing is not a finished job; it is redone, which this test counts separately).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter

import pytest

from pftflow.results import load_results
from pftflow.spec import load_spec

KILL_AT = (3, 8, 13)
N_KEYED = 16


@pytest.mark.slow
def test_sigkill_at_three_moments_then_rerun(emt_campaign, run_tools, tmp_path):
    cli, keyed_docs, complete_uuids = run_tools
    spec_path = emt_campaign(broken=True)
    db = tmp_path / "camp" / "store.sqlite"
    finished_before: dict[str, str] = {}  # uuid -> key of every job complete at a kill
    log = []
    for n in KILL_AT:
        proc = cli(tmp_path, "run", str(spec_path), "--no-progress", "--no-plots", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        t0 = time.monotonic()
        while len(keyed_docs(db)) < n and proc.poll() is None and time.monotonic() - t0 < 300:
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL, f"the run ended before the kill at {n} jobs: {err[-2000:]}"
        assert "Traceback" not in err, err[-3000:]
        done = complete_uuids(db)
        docs = keyed_docs(db)
        log.append((n, len(docs), len(done)))
        assert len(docs) >= n
        finished_before.update({u: k for k, u, *_ in docs if u in done})

    final = cli(tmp_path, "run", str(spec_path), "--no-progress", "--no-plots", "--json", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = final.communicate(timeout=600)
    assert final.returncode == 1, err[-3000:]  # the broken model's jobs failed: non-zero exit
    summary = json.loads(out)
    assert "took over the lock of a run that died" in summary["lock_note"]

    docs = keyed_docs(db)
    done = complete_uuids(db)
    by_key = Counter(k for k, u, *_ in docs if u in done)
    # 1. no finished job was redone: every job finished at a kill is still the only complete one of its key
    assert set(by_key) == {k for k, *_ in docs} and len(by_key) == N_KEYED
    assert all(c == 1 for c in by_key.values()), [k for k, c in by_key.items() if c > 1]
    assert all(u in done for u in finished_before)
    # what the last run did: the jobs that had not finished, and the broken model's relaxes (failed again)
    assert summary["jobs_reused"] == len(finished_before)
    assert summary["jobs_run"] == 1 + N_KEYED - len(finished_before)
    assert summary["failed_jobs"] == 2
    # 2. exactly one row per material × model; no duplicate comparison was read
    res = load_results(load_spec(spec_path))
    pairs = [(r["material_id"], r["model"]) for r in res["rows"]]
    assert pairs == [("Cu", "broken"), ("Cu", "EMT-same"), ("Al", "broken"), ("Al", "EMT-same")]
    assert Counter(s for _, _, s, _ in docs)["compare"] == 2
    # 3. the failed pairs with their reason; the others with the numbers of an uninterrupted run
    for r in res["rows"]:
        if r["model"] == "broken":
            assert r["status"] == "failed" and r["failed_stage"] == "relax"
            assert r["error"] == "ModelWeightsMissing: model weights missing: /nowhere/model.pth"
        else:
            assert r["status"] == "ok"
            assert r["omega_max_K"] == pytest.approx({"Cu": 336.85803695910437, "Al": 354.1353770696744}[r["material_id"]], rel=1e-10)
    print(f"kills (kill at, keyed docs, complete): {log}; finished before the last run: {len(finished_before)}; "
          f"incomplete documents redone: {len(docs) - len(done)}")
