"""Running a campaign locally (jobflow ``run_locally``, one progress bar, a summary).

Building is separate from running: the flow comes from the kind's builder
(:data:`pftflow.flows.campaigns.KINDS`); this module only executes it, reports progress and writes
the summary.  Job failures do not stop the campaign: jobflow skips the failed job's children, the
other materials finish, and each failure is reported with material, model, stage and the last line
of its error; whole tracebacks go to ``<campaign>/logs/run-<time>.log``, not to the terminal.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from pftflow.flows.campaigns import KINDS
from pftflow.store import make_job_store

LAST_CAMPAIGN_FILE = Path("campaigns") / ".last_campaign"


@dataclass
class JobFailure:
    """One failed job: who it belongs to and why (one line)."""

    job: str
    material_id: str | None
    model: str | None
    stage: str | None
    reason: str


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

    @property
    def failed_jobs(self) -> int:
        return len(self.failures)

    def as_dict(self) -> dict:
        from dataclasses import asdict

        d = asdict(self)
        d["failed_jobs"] = self.failed_jobs
        return d

    def text(self) -> str:
        n_reused = sum(len(v) for v in self.reused.values())
        lines = [
            f"campaign {self.campaign} ({self.kind}): {self.jobs_run} jobs run, {n_reused} stages reused from the store, "
            f"{self.failed_jobs} failed, {self.wall_time_s:.1f} s",
        ]
        for f in self.failures:
            who = " / ".join(x for x in (f.material_id, f.model, f.stage) if x)
            lines.append(f"  FAILED {who or f.job}: {f.reason}")
        if self.failures and self.log_file:
            lines.append(f"  tracebacks: {self.log_file}")
        if self.plots:
            lines.append(f"plots: {Path(self.plots[0]).parent}/ ({len(self.plots)} PNG)")
        lines.append(f"store: {self.store}")
        return "\n".join(lines)


class _JobProgress(logging.Handler):
    """Advances the progress bar on jobflow's per-job log records and collects failures.

    jobflow's ``run_locally`` has no callback API; its log records ("Starting job - NAME (uuid)",
    "Finished job - NAME (uuid)", "NAME failed with exception:\\n<traceback>") are the only hook.
    """

    def __init__(self, bar, jobs_by_name: dict[str, dict], log_path: Path):
        super().__init__(logging.INFO)
        self.bar = bar
        self.jobs_by_name = jobs_by_name
        self.failures: list[JobFailure] = []
        self.log_path = log_path

    def emit(self, record):
        msg = record.getMessage()
        if " failed with exception:" in msg:
            name, _, tb = msg.partition(" failed with exception:")
            name = name.strip()
            meta = self.jobs_by_name.get(name, {})
            last = [ln for ln in tb.strip().splitlines() if ln.strip()]
            reason = last[-1].strip() if last else "unknown error"
            self.failures.append(JobFailure(name, meta.get("material_id"), meta.get("model"), meta.get("stage"), reason[:300]))
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("a") as fh:
                fh.write(f"=== {name} ({time.strftime('%Y-%m-%d %H:%M:%S')})\n{tb.strip()}\n\n")
        elif msg.startswith("Starting job"):
            self.bar.set_postfix_str(msg.split(" - ", 1)[-1].split(" (")[0][:40])
        elif msg.startswith("Finished job"):
            if self.bar.total is not None and self.bar.n >= self.bar.total:
                self.bar.total += 1  # jobs added at run time (dynamic flows, e.g. kappa)
            self.bar.update(1)


def open_store(spec):
    store = make_job_store(spec.store_dir, spec.store_uri)
    store.connect()
    return store


def run_campaign(spec, *, progress: bool = True, plots: bool = True) -> RunSummary:
    """Build and run a campaign locally on its store."""
    from jobflow import run_locally
    from tqdm.auto import tqdm

    store = open_store(spec)
    kind = KINDS[spec.kind]
    flow, reused = kind.build(spec, store)
    planned = [j for j, _parents in flow.iterflow()]
    jobs_by_name = {j.name: dict(j.metadata or {}) for j in planned}
    n_jobs = len(planned)
    log_path = Path(spec.store_dir) / "logs" / f"run-{time.strftime('%Y%m%d-%H%M%S')}.log"
    t0 = time.perf_counter()
    jf_logger = logging.getLogger("jobflow")
    old_level, old_prop, old_handlers = jf_logger.level, jf_logger.propagate, list(jf_logger.handlers)
    bar = tqdm(total=n_jobs, desc=f"{spec.name}", unit="job", disable=not progress, dynamic_ncols=True)
    handler = _JobProgress(bar, jobs_by_name, log_path)
    for h in old_handlers:
        jf_logger.removeHandler(h)
    jf_logger.addHandler(handler)
    jf_logger.setLevel(logging.INFO)
    jf_logger.propagate = False
    try:
        responses = run_locally(flow, store=store, create_folders=False, ensure_success=False, log=False)
    finally:
        jf_logger.removeHandler(handler)
        for h in old_handlers:
            jf_logger.addHandler(h)
        jf_logger.setLevel(old_level)
        jf_logger.propagate = old_prop
        bar.close()
    summary = RunSummary(
        campaign=spec.name,
        kind=spec.kind,
        jobs_planned=n_jobs,
        jobs_run=sum(1 for r in responses.values() for _ in r.values()),
        reused=reused,
        failures=handler.failures,
        wall_time_s=time.perf_counter() - t0,
        store=str(spec.store_uri_redacted if hasattr(spec, "store_uri_redacted") else (spec.store_uri or Path(spec.store_dir) / "store.sqlite")),
        log_file=str(log_path) if handler.failures else None,
    )
    LAST_CAMPAIGN_FILE.parent.mkdir(parents=True, exist_ok=True)
    LAST_CAMPAIGN_FILE.write_text(str(Path(spec.path).resolve()) if spec.path else "")
    if plots and kind.plots is not None:
        summary.plots = [str(p) for p in kind.plots(spec, store, Path(spec.store_dir) / "plots")]
    store.close()
    return summary
