"""Running a campaign locally (jobflow ``run_locally``, one progress bar, a summary).

Building is separate from running: the flow comes from the kind's builder
(:data:`pftflow.flows.campaigns.KINDS`), which has already dropped every job whose output is
stored (job-level reuse); this module only executes the rest, reports progress and writes the
summary.

* **Lock**: on the embedded store one run at a time holds the campaign
  (:class:`pftflow.run.lock.CampaignLock`); a second run refuses naming the holder, or waits.
* **Failures are results**: job failures do not stop the campaign (jobflow skips the failed job's
  children, the other materials finish).  Each failed job writes a
  :class:`~pftflow.documents.FailureDoc` into the store (material, model, stage, error class, a
  one-line reason, a hint when one is known); the whole traceback goes to
  ``<campaign>/logs/run-<time>.log``, not to the terminal.
* **Run record**: every job started gets ``metadata.run_id`` / ``metadata.started_at`` (stored with
  its output, so ``pftflow status`` knows its wall time and which run made it), and each run writes
  a record (``metadata.stage == "run"``: pid, host, start, end, counts) at its start and end.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import platform
import re
import sys
import time
import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import Path

from pftflow.documents import FailureDoc
from pftflow.flows.campaigns import KINDS
from pftflow.flows.reuse import record_failure
from pftflow.provenance import oom_kill_count
from pftflow.run.lock import CampaignLock
from pftflow.run.memory import release_free_heap
from pftflow.store import make_job_store

LAST_CAMPAIGN_FILE = Path("campaigns") / ".last_campaign"
#: ``metadata.stage`` of the per-run records
RUN_STAGE = "run"

_JOB_MSG = re.compile(r"^(Starting|Finished) job - (?P<name>.*) \((?P<uuid>[0-9a-f-]{36})(?:, (?P<index>\d+))?\)$", re.DOTALL)


@dataclass
class JobFailure:
    """One failed job: who it belongs to and why (one line)."""

    job: str
    material_id: str | None
    model: str | None
    stage: str | None
    reason: str
    error_class: str = ""
    hint: str | None = None


@dataclass
class RunSummary:
    """What a ``pftflow run`` did (``as_dict()`` is the ``--json`` output)."""

    campaign: str
    kind: str
    jobs_planned: int
    jobs_run: int
    reused: dict[str, list[str]]
    failures: list[JobFailure] = field(default_factory=list)
    wall_time_s: float = 0.0
    store: str = ""
    log_file: str | None = None
    plots: list[str] = field(default_factory=list)
    run_id: str = ""
    lock_note: str | None = None

    @property
    def failed_jobs(self) -> int:
        return len(self.failures)

    @property
    def jobs_reused(self) -> int:
        return len(self.reused.get("jobs", []))

    @property
    def jobs_not_run(self) -> int:
        """Planned jobs that did not run: children of a failed job (jobflow skips them)."""
        return max(self.jobs_planned - self.jobs_run - self.failed_jobs, 0)

    def as_dict(self) -> dict:
        from dataclasses import asdict

        d = asdict(self)
        d["failed_jobs"] = self.failed_jobs
        d["jobs_reused"] = self.jobs_reused
        d["jobs_not_run"] = self.jobs_not_run
        return d

    def text(self) -> str:
        lines = [self.lock_note] if self.lock_note else []
        lines.append(
            f"campaign {self.campaign} ({self.kind}): {self.jobs_run} jobs run, {self.jobs_reused} reused from the store, "
            f"{self.failed_jobs} failed" + (f", {self.jobs_not_run} not run after a failure" if self.failed_jobs and self.jobs_not_run else "")
            + f", {self.wall_time_s:.1f} s"
        )
        for f in self.failures:
            who = " / ".join(x for x in (f.material_id, f.model, f.stage) if x)
            lines.append(f"  FAILED {who or f.job}: {f.reason}")
            if f.hint:
                lines.append(f"    fix: {f.hint}")
        if self.failures and self.log_file:
            lines.append(f"  tracebacks: {self.log_file}")
        if self.plots:
            lines.append(f"plots: {Path(self.plots[0]).parent}/ ({len(self.plots)} PNG)")
        lines.append(f"store: {self.store}")
        return "\n".join(lines)


def one_line(exc: BaseException) -> str:
    """``ErrorClass: first line of the message`` (at most 300 characters)."""
    msg = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
    text = f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


#: the fix for a job that ran out of memory (a MemoryError, or its process killed by the OOM killer)
MEMORY_HINT = ("lower the model's chunk size: batch_atoms of a chgnet model (atoms per graph batch, default 2048), edge_chunk of "
               "a nequix model (edges per convolution chunk, default 8192), checkpoint_atoms of a sevennet model (cells from this many atoms "
               "recompute each layer in the backward pass, default 512); mace / ase evaluate one structure at a time, so use a smaller supercell or more memory. "
               "`pftflow validate <spec>` prints the estimated peak")

_OOM_TEXT = ("out of memory", "cannot allocate memory", "can't allocate memory", "resource_exhausted", "failed to allocate")


def hint_for(exc: BaseException) -> str | None:
    """How to fix a job failure, when it is known: the exception's own ``hint`` attribute (pftflow
    errors carry one), else a rule for common classes of failure."""
    hint = getattr(exc, "hint", None)
    if hint:
        return str(hint)
    text = str(exc)
    if isinstance(exc, ModuleNotFoundError):
        return f"install the package that provides '{exc.name}' (pip install ...) or fix the model's import_path"
    if isinstance(exc, FileNotFoundError):
        return f"check the path {exc.filename!r} in the spec" if exc.filename else "check the file paths in the spec"
    if isinstance(exc, MemoryError) or any(t in text.lower() for t in _OOM_TEXT):
        return MEMORY_HINT
    if "Could not resolve reference" in text:
        return "an input of this job is missing from the store: rerun the campaign (`pftflow run`) to recompute it"
    return None


def failure_log_header(job_name: str, meta: dict) -> str:
    """First line of a failed job's traceback entry in a log file: name, time, material / model / stage."""
    return f"=== {job_name} ({time.strftime('%Y-%m-%d %H:%M:%S')}) {meta.get('material_id')} / {meta.get('model')} / {meta.get('stage')}"


def failure_doc(meta: dict, *, campaign: str, kind: str, job_name: str, job_uuid: str | None, reason: str, error_class: str,
                hint: str | None, when: float, log_file: str | None):
    """The :class:`~pftflow.documents.FailureDoc` of a failed job with metadata ``meta`` (identity from it;
    ``campaign`` / ``kind`` where it has none), as the local runner and the FireWorks task write it."""
    return FailureDoc(
        campaign=meta.get("campaign") or campaign, kind=meta.get("kind") or kind, material_id=meta.get("material_id"),
        model=meta.get("model"), stage=meta.get("stage"), error_class=error_class, reason=reason, hint=hint, job_name=job_name,
        job_uuid=job_uuid, pftflow_key=meta.get("pftflow_key"), time=when, host=platform.node(), log_file=log_file,
    )


class _JobProgress(logging.Handler):
    """Advances the progress bar on jobflow's per-job log records, stamps each job's metadata with
    the run id and start time, and records failures.

    jobflow's ``run_locally`` has no callback API; its log records ("Starting job - NAME (uuid)",
    "Finished job - NAME (uuid)", "NAME failed with exception:\\n<traceback>", the latter logged
    inside the ``except`` block, so ``sys.exc_info()`` is the exception) are the only hook.  A
    job's ``metadata`` dict is stored with its output, so what is set on "Starting job" is saved.
    """

    def __init__(self, bar, jobs: list, log_path: Path, *, store, campaign: str, kind: str, run_id: str, on_current=None):
        super().__init__(logging.INFO)
        # jobs running now (uuid -> identity and start), handed to ``on_current`` at every change: the run
        # record keeps it, so a process abort (out of memory, a signal) that writes no FailureDoc still
        # leaves which job it died in (``pftflow status``)
        self.current: dict[str, dict] = {}
        self.on_current = on_current
        self.bar = bar
        self.jobs_by_uuid = {j.uuid: j for j in jobs}
        self.jobs_by_name = {j.name: j for j in jobs}
        self.failures: list[JobFailure] = []
        self.log_path = log_path
        self.store = store
        self.campaign, self.kind, self.run_id = campaign, kind, run_id
        self.started: dict[str, float] = {}  # uuid -> start time (s), dynamic jobs included
        self.timings: dict[str, dict] = {}  # uuid -> {name, start, end} of finished jobs

    def emit(self, record):
        try:
            self._emit(record)
        except Exception:  # noqa: BLE001 - a reporting problem must never stop the campaign: to the log file
            import traceback

            try:
                self.log_path.parent.mkdir(parents=True, exist_ok=True)
                with self.log_path.open("a") as fh:
                    fh.write(f"=== pftflow could not record: {record.getMessage()[:200]}\n{traceback.format_exc()}\n")
            except OSError:
                pass

    def _emit(self, record):
        msg = record.getMessage()
        if " failed with exception:" in msg:
            self._failure(msg, record.created)
            release_free_heap()
            return
        m = _JOB_MSG.match(msg)
        if m is None:
            return
        uid = m["uuid"]
        if m.group(1) == "Starting":
            self.started[uid] = record.created
            job = self.jobs_by_uuid.get(uid)
            if job is not None and m["index"] is None:  # not the output job of a replacement (same uuid, index > 1)
                if job.metadata is None:
                    job.metadata = {}
                job.metadata["run_id"] = self.run_id
                job.metadata["started_at"] = dt.datetime.fromtimestamp(record.created).isoformat()
                self._set_current(uid, {"name": job.name, "key": job.metadata.get("pftflow_key"), "material_id": job.metadata.get("material_id"),
                                        "model": job.metadata.get("model"), "stage": job.metadata.get("stage"), "started_at": record.created})
            self.bar.set_postfix_str(m["name"][:60])
        else:
            self._set_current(uid, None)
            self.timings[uid] = {"name": m["name"], "start": self.started.get(uid), "end": record.created}
            if self.bar.total is not None and self.bar.n >= self.bar.total:
                self.bar.total += 1  # jobs added at run time (dynamic flows, e.g. kappa)
            self.bar.update(1)
            release_free_heap()  # what this job's temporaries freed goes back to the OS, not into the next job's floor

    def _set_current(self, uid: str, info: dict | None) -> None:
        if info is not None:
            self.current[uid] = info
        elif self.current.pop(uid, None) is None:  # not a job this run started: nothing changed
            return
        if self.on_current is not None:
            self.on_current(dict(self.current))

    def _failure(self, msg: str, when: float):
        from jobflow import CURRENT_JOB

        name, _, tb = msg.partition(" failed with exception:")
        name = name.strip()
        exc = sys.exc_info()[1]
        job = CURRENT_JOB.job if CURRENT_JOB.job is not None and CURRENT_JOB.job.name == name else self.jobs_by_name.get(name)
        meta = dict(job.metadata or {}) if job is not None else {}
        if exc is not None:
            reason, error_class, hint = one_line(exc), type(exc).__name__, hint_for(exc)
        else:  # no exception at hand: the traceback's last line
            last = [ln for ln in tb.strip().splitlines() if ln.strip()]
            reason = (last[-1].strip() if last else "unknown error")[:300]
            error_class, hint = reason.split(":", 1)[0], None
        self.failures.append(JobFailure(name, meta.get("material_id"), meta.get("model"), meta.get("stage"), reason, error_class, hint))
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a") as fh:
            fh.write(f"{failure_log_header(name, meta)}\n{tb.strip()}\n\n")
        doc = failure_doc(meta, campaign=self.campaign, kind=self.kind, job_name=name, job_uuid=None if job is None else job.uuid,
                          reason=reason, error_class=error_class, hint=hint, when=when, log_file=str(self.log_path))
        record_failure(self.store, doc, {**meta, "run_id": self.run_id})
        if job is not None:
            self._set_current(job.uuid, None)


def open_store(spec):
    store = make_job_store(spec.store_dir, spec.store_uri)
    store.connect()
    return store


def write_run_record(store, spec, run_id: str, record: dict) -> None:
    """Upsert this run's record (``metadata.stage == "run"``) in the store's documents."""
    doc = {
        "uuid": f"run:{run_id}",
        "index": 1,
        "name": f"run {spec.name}",
        "completed_at": dt.datetime.now().isoformat(),
        "metadata": {"campaign": spec.name, "kind": spec.kind, "stage": RUN_STAGE, "run_id": run_id},
        "output": record,
        "hosts": [],
    }
    store.docs_store.update(doc, key=["uuid", "index"])


def run_campaign(spec, *, progress: bool = True, plots: bool = True, wait_s: float = 0.0) -> RunSummary:
    """Build and run a campaign locally on its store.

    On the embedded store the campaign is locked for the run (:class:`~pftflow.run.lock.CampaignLock`):
    with another live run holding it, wait up to ``wait_s`` seconds (``math.inf``: as long as it
    takes), then raise :class:`~pftflow.run.lock.CampaignLocked` naming the holder.
    """
    from contextlib import nullcontext

    lock = nullcontext() if spec.store_uri or os.environ.get("PFTFLOW_MONGODB_URI") else CampaignLock(spec.store_dir, spec.name, wait_s=wait_s)
    with lock as held:
        note = None
        if held is not None and held.stale is not None:
            note = f"note: took over the lock of a run that died ({held.stale.describe()}); its finished jobs are reused"
        elif held is not None and held.waited_s > 1:
            note = f"note: waited {held.waited_s:.0f} s for another run of this campaign to finish"
        summary = _run(spec, progress=progress, plots=plots)
        summary.lock_note = note
        return summary


def _run(spec, *, progress: bool, plots: bool) -> RunSummary:
    from jobflow import run_locally
    from tqdm.auto import tqdm

    store = open_store(spec)
    kind = KINDS[spec.kind]
    flow, reused = kind.build(spec, store)
    planned = [j for j, _parents in flow.iterflow()] if flow.job_uuids else []  # empty: everything reused
    n_jobs = len(planned)
    run_id = uuidlib.uuid4().hex[:12]
    log_path = Path(spec.store_dir) / "logs" / f"run-{time.strftime('%Y%m%d-%H%M%S')}.log"
    t0 = time.perf_counter()
    record = {"run_id": run_id, "pid": os.getpid(), "host": platform.node(), "started_at": time.time(), "finished_at": None,
              "oom_kills_at_start": oom_kill_count(),
              "jobs_planned": n_jobs, "jobs_reused": len(reused.get("jobs", [])), "jobs_run": None, "failed": None}
    write_run_record(store, spec, run_id, record)
    jf_logger = logging.getLogger("jobflow")
    old_level, old_prop, old_handlers = jf_logger.level, jf_logger.propagate, list(jf_logger.handlers)
    bar = tqdm(total=n_jobs, desc=f"{spec.name}", unit="job", disable=None if progress else True, dynamic_ncols=True)
    def on_current(current: dict) -> None:
        record["current_jobs"] = list(current.values())
        write_run_record(store, spec, run_id, record)

    handler = _JobProgress(bar, planned, log_path, store=store, campaign=spec.name, kind=spec.kind, run_id=run_id, on_current=on_current)
    for h in old_handlers:
        jf_logger.removeHandler(h)
    jf_logger.addHandler(handler)
    jf_logger.setLevel(logging.INFO)
    jf_logger.propagate = False
    try:
        # reused jobs are outside the flow: their consumers read them from the store
        responses = run_locally(flow, store=store, create_folders=False, ensure_success=False, log=False, allow_external_references=True) if planned else {}
    finally:
        jf_logger.removeHandler(handler)
        for h in old_handlers:
            jf_logger.addHandler(h)
        jf_logger.setLevel(old_level)
        jf_logger.propagate = old_prop
        bar.close()
    jobs_run = sum(1 for r in responses.values() for _ in r.values())
    summary = RunSummary(
        campaign=spec.name,
        kind=spec.kind,
        jobs_planned=n_jobs,
        jobs_run=jobs_run,
        reused=reused,
        failures=handler.failures,
        wall_time_s=time.perf_counter() - t0,
        store=str(store.docs_store.name if spec.store_uri or os.environ.get("PFTFLOW_MONGODB_URI") else Path(spec.store_dir) / "store.sqlite"),  # name: no password
        log_file=str(log_path) if handler.failures else None,
        run_id=run_id,
    )
    record.update(finished_at=time.time(), jobs_run=jobs_run, failed=summary.failed_jobs, timings=handler.timings, current_jobs=[])
    write_run_record(store, spec, run_id, record)
    LAST_CAMPAIGN_FILE.parent.mkdir(parents=True, exist_ok=True)
    LAST_CAMPAIGN_FILE.write_text(str(Path(spec.path).resolve()) if spec.path else "")
    if plots and kind.plots is not None:
        summary.plots = [str(p) for p in kind.plots(spec, store, Path(spec.store_dir) / "plots")]
    store.close()
    return summary

