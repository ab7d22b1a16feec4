"""The campaign lock: a second run refuses naming the holder or waits for it; a lock left by a
killed run is taken over; two concurrent `pftflow run` of one campaign do the work once."""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter

import pytest

from pftflow.run.lock import (
    LOCK_FILE,
    CampaignLock,
    CampaignLocked,
    LockHolder,
    current_holder,
)


def _wait_for_holder(d, pid, timeout=60.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        h = LockHolder.read(d / LOCK_FILE)
        if h is not None and h.pid == pid:
            return h
        time.sleep(0.02)
    raise AssertionError(f"pid {pid} never took the lock")


HOLD = """
import sys, time
from pftflow.run.lock import CampaignLock
lock = CampaignLock(sys.argv[1], "camp").acquire()
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
lock.release()
"""


def test_second_holder_is_refused_with_the_holder_named(tmp_path):
    with CampaignLock(tmp_path, "camp") as lock:
        assert lock.stale is None and current_holder(tmp_path).pid == os.getpid()
        code = """
            import sys
            from pftflow.run.lock import CampaignLock, CampaignLocked
            try:
                CampaignLock(sys.argv[1], "camp").acquire()
            except CampaignLocked as e:
                print(e); sys.exit(3)
            """
        p = subprocess.run([sys.executable, "-c", textwrap.dedent(code), str(tmp_path)], capture_output=True, text=True, timeout=120, check=False)
        assert p.returncode == 3, p.stderr
        msg = p.stdout.strip()
        assert msg.startswith("campaign 'camp' is being run by pid ")
        assert f"pid {os.getpid()} on host {platform.node()}, started {time.strftime('%Y-%m-%d')}" in msg
        assert "--wait" in msg and "\n" not in msg
    assert current_holder(tmp_path) is None and (tmp_path / LOCK_FILE).read_text() == ""  # released: empty


def test_waits_for_the_holder(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path), "2.0"], stdout=subprocess.PIPE, text=True)
    try:
        _wait_for_holder(tmp_path, holder.pid)
        with pytest.raises(CampaignLocked):
            CampaignLock(tmp_path, "camp", wait_s=0.3).acquire()
        t0 = time.monotonic()
        with CampaignLock(tmp_path, "camp", wait_s=120) as lock:
            assert lock.waited_s > 0.3 and lock.stale is None  # released properly: not stale
            assert holder.wait(timeout=60) == 0
        assert time.monotonic() - t0 < 60
    finally:
        if holder.poll() is None:
            os.kill(holder.pid, signal.SIGKILL)


def test_stale_lock_of_a_killed_run_is_taken_over(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path), "600"], stdout=subprocess.PIPE, text=True)
    h = _wait_for_holder(tmp_path, holder.pid)
    assert current_holder(tmp_path) == h
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=60)
    assert current_holder(tmp_path) is None  # dead: not reported as running
    with CampaignLock(tmp_path, "camp") as lock:
        assert lock.stale is not None and lock.stale.pid == holder.pid


def test_stale_lock_kept_by_a_forked_child_is_taken_over(tmp_path):
    """The killed run's forked child (a worker) still holds the flock: the dead run's file is replaced."""
    code = """
    import os, signal, sys, time
    from pftflow.run.lock import CampaignLock
    lock = CampaignLock(sys.argv[1], "camp").acquire()
    child = os.fork()
    if child == 0:
        time.sleep(600)
        os._exit(0)
    print(child, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), str(tmp_path)], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    try:
        parent.wait(timeout=60)
        assert parent.returncode == -signal.SIGKILL
        with CampaignLock(tmp_path, "camp", poll_s=0.05) as lock:
            assert lock.stale is not None and lock.stale.pid == parent.pid
            assert current_holder(tmp_path).pid == os.getpid()
    finally:
        os.kill(child, signal.SIGKILL)


@pytest.mark.slow
def test_two_concurrent_runs_do_the_work_once(emt_campaign, run_tools, tmp_path):
    """Two `pftflow run --wait` started together on a fresh store, and a third without --wait once
    the campaign is held: the work is done once, the run that waited reuses all of it, the third
    refuses naming the holder; no store error, no traceback."""
    cli, keyed_docs, _ = run_tools
    spec = str(emt_campaign())
    a = cli(tmp_path, "run", spec, "--no-progress", "--no-plots", "--json", "--wait", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    b = cli(tmp_path, "run", spec, "--no-progress", "--no-plots", "--json", "--wait", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t0 = time.monotonic()
    while current_holder(tmp_path / "camp") is None and time.monotonic() - t0 < 120:
        time.sleep(0.02)
    first = current_holder(tmp_path / "camp")
    assert first is not None and first.pid in (a.pid, b.pid)
    c = cli(tmp_path, "run", spec, "--no-progress", "--no-plots", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out_c, err_c = c.communicate(timeout=300)
    outs = {p.pid: p.communicate(timeout=600) for p in (a, b)}
    for p in (a, b):
        assert p.returncode == 0, outs[p.pid][1][-3000:]
    for _, err in [*outs.values(), (out_c, err_c)]:
        assert "Traceback" not in err and "OperationalError" not in err, err[-3000:]
    assert c.returncode == 3 and f"is being run by pid {first.pid} on host {platform.node()}" in err_c, err_c
    runs = {pid: json.loads(out) for pid, (out, _) in outs.items()}
    worker, waiter = runs[first.pid], runs[b.pid if first.pid == a.pid else a.pid]
    assert worker["jobs_run"] == 17 and worker["jobs_reused"] == 0
    assert waiter["jobs_run"] == 1 and waiter["jobs_reused"] == 16  # only the parameters record
    assert waiter["lock_note"].startswith("note: waited") and worker["lock_note"] is None
    docs = keyed_docs(tmp_path / "camp" / "store.sqlite")
    assert len(docs) == 16 and set(Counter(k for k, *_ in docs).values()) == {1}
