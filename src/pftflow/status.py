"""``pftflow status``: where a campaign stands, per material × model × stage.

The campaign is built from its spec without the store (every job it needs, with its content key)
and each job is looked up by key:

* ``done`` — its output is in the store and was made by the latest run;
* ``reused`` — its output is in the store from an earlier run (the latest run did not redo it);
* ``failed`` — its latest attempt failed (reason and fix from its
  :class:`~pftflow.documents.FailureDoc`);
* ``running`` — the live run of the campaign is running it now;
* ``failed`` also for a job that was running when its run's process died (out of memory, a signal:
  such an abort writes no FailureDoc, but the run record names the jobs it was running);
* ``missing`` — not run yet, not finished (killed), or not run because a job it needs failed
  (the reason says which).

Wall times come from the jobs' documents (``metadata.started_at`` stamped by the runner and
jobflow's ``completed_at``, up to the end of its replacement for a job that replaced itself; else
the output's ``wall_time_s``; else the run record's timings).
Jobs a flow creates while it runs (κ: the fc3 forces and the conductivity) are not known before
they exist and are not listed; their parent's status stands for them.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
from dataclasses import asdict, dataclass
from typing import Any

from pftflow.flows.campaigns import KINDS
from pftflow.flows.reuse import stored_failures, stored_jobs
from pftflow.identity import REFERENCE_MODEL, STAGES
from pftflow.results import render_table
from pftflow.provenance import oom_kill_count
from pftflow.run.local import MEMORY_HINT, RUN_STAGE, open_store
from pftflow.run.lock import current_holder

STATUSES = ("done", "reused", "running", "failed", "missing")


@dataclass
class JobStatus:
    """One job of the campaign and where it stands."""

    material_id: str | None
    model: str | None
    stage: str
    status: str
    job: str
    wall_time_s: float | None = None
    reason: str | None = None
    hint: str | None = None
    key: str | None = None


def _iso(t) -> float | None:
    try:
        return dt.datetime.fromisoformat(str(t)).timestamp()
    except (TypeError, ValueError):
        return None


def campaign_status(spec, store=None) -> dict[str, Any]:
    """Status of every job of ``spec``'s campaign (see the module docstring).

    Returns ``{"campaign", "kind", "jobs": [JobStatus as dict], "totals": {status: n},
    "stages": {stage: {"jobs", "wall_time_s", <status>: n}}, "last_run": run record or None,
    "running": the live holder of the campaign lock or None}``.
    """
    own = store is None
    store = store or open_store(spec)
    try:
        flow, _ = KINDS[spec.kind].build(spec, None)
        order = list(flow.iterflow())
        keys = {j.uuid: (j.metadata or {}).get("pftflow_key") for j, _ in order}
        stored = stored_jobs(store, keys.values())
        docs: dict[str, dict] = {}  # uuid -> its first document, with the span over all its indexes
        if stored:
            props = ["uuid", "index", "completed_at", "metadata.run_id", "metadata.started_at", "output.wall_time_s"]
            found = sorted(store.docs_store.query({"uuid": {"$in": sorted(set(stored.values()))}}, properties=props), key=lambda d: d.get("index", 1))
            for d in found:
                if d["uuid"] not in docs:
                    docs[d["uuid"]] = dict(d, started=_iso((d.get("metadata") or {}).get("started_at")), ended=_iso(d.get("completed_at")))
                else:  # a job replaced at run time (κ fc2 check) lasts until its replacement finished
                    docs[d["uuid"]]["ended"] = _iso(d.get("completed_at")) or docs[d["uuid"]]["ended"]
        failures = {f.pftflow_key: f for f in stored_failures(store, spec.name) if f.pftflow_key}
        runs = sorted(store.docs_store.query({"metadata.campaign": spec.name, "metadata.stage": RUN_STAGE}, properties=["output"]),
                      key=lambda d: d["output"].get("started_at") or 0)
        last_run = runs[-1]["output"] if runs else None
        timings: dict[str, dict] = {}
        for r in runs:
            timings.update(r["output"].get("timings") or {})
        params = store.docs_store.query_one({"metadata.campaign": spec.name, "metadata.stage": "parameters"}, properties=["uuid"])
        embedded = not (spec.store_uri or os.environ.get("PFTFLOW_MONGODB_URI"))  # only the embedded store is locked, so only there is a dead run known
        holder = current_holder(spec.store_dir) if embedded else None
        # jobs the last run was running: now (its process holds the lock) or when its process died
        live = holder is not None and last_run is not None and holder.pid == last_run.get("pid") and holder.host == last_run.get("host")
        # killed for memory: the OOM killer's count in this cgroup grew since the run started (same host only)
        oom_now = oom_kill_count() if last_run and last_run.get("host") == platform.node() else None
        oom_killed = oom_now is not None and isinstance(last_run.get("oom_kills_at_start"), int) and oom_now > last_run["oom_kills_at_start"]
        in_flight = {c["key"]: c for c in (last_run or {}).get("current_jobs") or [] if c.get("key")} if last_run and last_run.get("finished_at") is None else {}

        rows: list[JobStatus] = []
        blocked: dict[str, str] = {}  # uuid -> why it cannot run (a job it needs failed)
        for job, parents in order:
            meta = job.metadata or {}
            key = keys[job.uuid]
            row = JobStatus(meta.get("material_id"), meta.get("model"), meta.get("stage", "?"), "missing", job.name, key=key)
            if key is None:  # the parameters record: made by every run
                row.status = "done" if params is not None else "missing"
            elif key in stored:
                d = docs.get(stored[key], {})
                m = d.get("metadata") or {}
                row.status = "reused" if last_run is not None and m.get("run_id") != last_run.get("run_id") else "done"
                start, end = d.get("started"), d.get("ended")
                if start is not None and end is not None:
                    row.wall_time_s = end - start
                elif isinstance((d.get("output") or {}).get("wall_time_s"), (int, float)):
                    row.wall_time_s = float(d["output"]["wall_time_s"])
                elif (t := timings.get(stored[key])) and t.get("start") is not None:
                    row.wall_time_s = t["end"] - t["start"]
            elif key in failures:
                f = failures[key]
                row.status, row.reason, row.hint = "failed", f.reason, f.hint
                blocked[job.uuid] = f"{row.stage} of {row.material_id} / {row.model} failed"
            elif key in in_flight and live:
                row.status, row.reason = "running", f"running since {_when(in_flight[key].get('started_at'))}"
            elif key in in_flight and holder is None and embedded:
                row.status = "failed"
                began = f"(started {_when(in_flight[key].get('started_at'))})"
                who = f"the process of the run (pid {last_run.get('pid')} on {last_run.get('host')})"
                if oom_killed:
                    row.reason = (f"killed for memory: the kernel's OOM killer ended {who} while this job ran {began} "
                                  f"(OOM kills in this cgroup: {last_run.get('oom_kills_at_start')} when the run started, {oom_now} now)")
                    row.hint = MEMORY_HINT + "; then run the campaign again (finished jobs are reused)"
                else:
                    row.reason = f"aborted: {who} died while this job ran {began}; killed by a signal or out of memory, so no traceback"
                    row.hint = "run the campaign again (finished jobs are reused); if memory ran out: " + MEMORY_HINT
                blocked[job.uuid] = f"{row.stage} of {row.material_id} / {row.model} was aborted"
            else:
                why = next((blocked[p] for p in parents if p in blocked), None)
                if why is not None:
                    blocked[job.uuid] = why
                    row.reason = f"not run: {why}"
            rows.append(row)

        mats = list(dict.fromkeys(r.material_id for r in rows))
        mods = list(dict.fromkeys([REFERENCE_MODEL] + [r.model for r in rows]))
        rank = {s: i for i, s in enumerate(STAGES)}
        rows.sort(key=lambda r: (r.material_id is not None, mats.index(r.material_id), mods.index(r.model), rank.get(r.stage, len(rank))))
        totals = {s: sum(r.status == s for r in rows) for s in STATUSES}
        stages: dict[str, dict] = {}
        for r in rows:
            st = stages.setdefault(r.stage, {"jobs": 0, "wall_time_s": 0.0, **{s: 0 for s in STATUSES}})
            st["jobs"] += 1
            st[r.status] += 1
            st["wall_time_s"] += r.wall_time_s or 0.0
        return {
            "campaign": spec.name,
            "kind": spec.kind,
            "jobs": [asdict(r) for r in rows],
            "totals": totals,
            "stages": dict(sorted(stages.items(), key=lambda kv: rank.get(kv[0], len(rank)))),
            "last_run": None if last_run is None else {k: v for k, v in last_run.items() if k != "timings"},
            "running": None if holder is None else asdict(holder),
        }
    finally:
        if own:
            store.close()


def _when(t: float | None) -> str:
    return "-" if t is None else dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def format_status(st: dict) -> str:
    """The status as tables: one row per job, the totals, wall time per stage, the last run."""
    def cut(s, n=90):
        return "-" if not s else (s if len(s) <= n else s[: n - 1] + "…")

    rows = [[j["material_id"] or "-", j["model"] or "-", j["stage"], j["status"],
             "-" if j["wall_time_s"] is None else f"{j['wall_time_s']:.2f}", cut(j["reason"])] for j in st["jobs"]]
    out = [f"campaign {st['campaign']} ({st['kind']})", render_table(["material", "model", "stage", "status", "wall [s]", "reason"], rows)]
    hints = [j for j in st["jobs"] if j["status"] == "failed" and j["hint"]]
    for j in hints:
        out.append(f"  fix {j['material_id']} / {j['model']} / {j['stage']}: {j['hint']}")
    t = st["totals"]
    out.append("")
    out.append(f"{len(st['jobs'])} jobs: " + ", ".join(f"{t[s]} {s}" for s in STATUSES))
    srows = [[s, str(v["jobs"]), *(str(v[k]) for k in STATUSES), f"{v['wall_time_s']:.2f}"] for s, v in st["stages"].items()]
    out.append(render_table(["stage", "jobs", *STATUSES, "wall [s]"], srows))
    lr = st.get("last_run")
    if lr:
        end = "not finished (killed, or still running)" if lr.get("finished_at") is None else f"finished {_when(lr['finished_at'])}"
        out.append(f"last run: {_when(lr.get('started_at'))} pid {lr.get('pid')} on {lr.get('host')}, {end}; "
                   f"{lr.get('jobs_run') if lr.get('jobs_run') is not None else '?'} jobs run, {lr.get('jobs_reused')} reused")
    else:
        out.append("last run: none recorded")
    if st.get("running"):
        h = st["running"]
        out.append(f"running now: pid {h['pid']} on {h['host']} since {_when(h['started_at'])}")
    elif lr and lr.get("finished_at") is None and lr.get("current_jobs"):
        jobs = ", ".join(f"{c.get('material_id')} / {c.get('model')} / {c.get('stage')}" for c in lr["current_jobs"])
        if any((j.get("reason") or "").startswith("killed for memory") for j in st["jobs"]):
            out.append(f"the last run's process was killed for memory (the kernel's OOM killer) while running {jobs}: lower the chunk size "
                       "(see the fix above), then `pftflow run` again resumes")
        else:
            out.append(f"the last run's process died while running {jobs}: a signal or out of memory (no traceback); `pftflow run` again resumes")
    return "\n".join(out)
