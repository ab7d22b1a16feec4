"""Running a campaign on FireWorks: the same flow as a local run, converted with jobflow's
``flow_to_workflow`` and added to a LaunchPad (docs/fireworks.md).

* **Idempotent**: every Firework carries the job's content key (``spec.pftflow_key``, from the job
  metadata, and ``spec.pftflow_fw_key``: that key, or a hash of the arguments of a job without
  one).  A job whose key is already on the LaunchPad for the same campaign is not added again; the
  new jobs that consume it are pointed at the Firework already there (and linked after it when it
  has not finished).  A FIZZLED one is rerun (``rerun_fw``), as ``pftflow run`` retries failures.
  Jobs whose output is in the store are not in the flow at all (the builders' reuse).
* **Resource categories**: every Firework has ``spec._category`` (``gpu``, ``cpu-heavy``,
  ``light``; set by the makers, :func:`pftflow.flows.phonons.set_resources`, ``light`` for a job
  without one).  A FireWorker whose ``category`` names some of them pulls only those.
* **Paths**: relative file paths in job arguments are made absolute before the jobs are
  serialised (a worker, and ``rapidfire``, run jobs in their own launch directories); the embedded
  store's path is absolute already (:func:`pftflow.store.make_job_store`).
* **Store**: jobflow serialises the JobStore into each Firework.  The embedded store travels as its
  absolute SQLite path (a worker on the same file system reaches it); a MongoDB store travels
  without its password (:class:`pftflow.store.MongoURIEnvStore`: the worker reads the URI from
  ``$PFTFLOW_MONGODB_URI`` or a file), so the LaunchPad never holds it.
* **LaunchPad**: ``fireworks: {launchpad_file: my_launchpad.yaml}`` in the spec (MongoDB), else
  FireWorks' mongomock-persistence LaunchPad in ``<store>/fireworks_launchpad.json`` (no server;
  one process at a time: it is read whole when opened and written whole when closed).
* **Failures are results**: every Firework runs its job with :class:`PftflowJobFiretask` (jobflow's
  ``JobFiretask`` that, when the job raises, writes a :class:`~pftflow.documents.FailureDoc` into
  the job's store as ``pftflow run`` does, then re-raises so the Firework FIZZLES), the Fireworks a
  job adds at run time (replace / addition / detour) included.  ``pftflow results`` / ``status``
  show the pair as failed with its reason; a rerun that succeeds makes it ``ok`` again.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fireworks import explicit_serialize
from jobflow.managers.fireworks import JobFiretask

from pftflow.flows import reuse
from pftflow.flows.campaigns import KINDS
from pftflow.flows.makers import set_resources
from pftflow.flows.reuse import retarget
from pftflow.identity import content_key
from pftflow.run.local import failure_doc, failure_log_header, hint_for, one_line, open_store
from pftflow.run.memory import release_free_heap
from pftflow.store import MONGODB_URI_ENV

#: file of the embedded (mongomock-persistence) LaunchPad inside the campaign store folder
EMBEDDED_LAUNCHPAD = "fireworks_launchpad.json"
#: LaunchPad file written next to it for ``rlaunch -l``
EMBEDDED_LAUNCHPAD_YAML = "fireworks_launchpad.yaml"
#: category of a job whose maker gave it none
DEFAULT_CATEGORY = "light"
#: Firework spec field identifying the work a Firework does (used to find it again)
FW_KEY = "pftflow_fw_key"
#: Firework states that count as "already on the LaunchPad", most advanced first.  A job with a
#: ``pftflow_key`` whose Firework is COMPLETED is not in the build (the builders reuse its stored
#: output) unless that output was lost from the store (it is then added again) or is still being
#: computed by the jobs it replaced itself with (kept).
_KEPT_STATES = ("COMPLETED", "RUNNING", "RESERVED", "READY", "WAITING", "PAUSED", "DEFUSED", "FIZZLED")
_STATE_RANK = {s: i for i, s in enumerate(_KEPT_STATES)}
_MONGOMOCK_ENV = "MONGOMOCK_SERVERSTORE_FILE"


# ------------------------------------------------------------------------------------ LaunchPad
def embedded_launchpad_path(spec) -> Path:
    """The embedded LaunchPad file: ``$MONGOMOCK_SERVERSTORE_FILE`` (FireWorks' own setting) or
    ``<store>/fireworks_launchpad.json``, absolute."""
    return Path(os.environ.get(_MONGOMOCK_ENV) or Path(spec.store_dir) / EMBEDDED_LAUNCHPAD).expanduser().resolve()


@contextmanager
def _mongomock_client(path: Path):
    """FireWorks picks mongomock-persistence only when ``$MONGOMOCK_SERVERSTORE_FILE`` is set at
    its import; this opens one embedded LaunchPad whatever was imported first."""
    import fireworks.core.launchpad as lpmod
    import mongomock.gridfs
    import mongomock_persistence

    if not getattr(_mongomock_client, "gridfs", False):
        mongomock.gridfs.enable_gridfs_integration()  # widens gridfs' isinstance checks only
        _mongomock_client.gridfs = True
    old_env, old_client = os.environ.get(_MONGOMOCK_ENV), lpmod.MongoClient
    os.environ[_MONGOMOCK_ENV] = str(path)
    lpmod.MongoClient = mongomock_persistence.MongoClient
    try:
        yield
    finally:
        lpmod.MongoClient = old_client
        if old_env is None:
            os.environ.pop(_MONGOMOCK_ENV, None)
        else:
            os.environ[_MONGOMOCK_ENV] = old_env


def open_embedded_launchpad(path: str | os.PathLike):
    """The mongomock-persistence LaunchPad in ``path`` (created and initialised if new), with a
    ``fireworks_launchpad.yaml`` beside it for ``rlaunch -l``."""
    from fireworks import LaunchPad

    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.is_file() or path.stat().st_size == 0
    if new:  # mongomock-persistence reads the file when the client opens: it must exist
        path.write_text("{}")
    with _mongomock_client(path):
        lp = LaunchPad(strm_lvl="WARNING")
    if new:
        lp.reset("", require_password=False)
    yaml = path.with_name(EMBEDDED_LAUNCHPAD_YAML)
    if path.name == EMBEDDED_LAUNCHPAD and not yaml.exists():
        yaml.write_text(f"# embedded LaunchPad: run workers with {_MONGOMOCK_ENV}={path}\nhost: localhost\nport: 27017\nname: fireworks\n")
    lp._pftflow_embedded = path
    return lp


def save_launchpad(lp) -> None:
    """Write an embedded LaunchPad to its file now, and stop it from writing again when it is
    garbage-collected (which would overwrite what a worker process wrote since)."""
    if getattr(lp, "_pftflow_embedded", None) is None:
        return
    server = lp.connection._store
    server._to_file()
    server._finalizer.detach()


def open_launchpad(spec):
    """The campaign's LaunchPad and where it is (``launchpad_file`` or the embedded one)."""
    from fireworks import LaunchPad

    lp_file = spec.fireworks.launchpad_file
    if lp_file:
        return LaunchPad.from_file(lp_file), str(lp_file)
    path = embedded_launchpad_path(spec)
    return open_embedded_launchpad(path), str(path)


# ------------------------------------------------------------------------------------ failures
#: file in a Firework's launch directory holding the traceback of its failed job
FAILURE_LOG = "pftflow_failure.log"


@explicit_serialize
class PftflowJobFiretask(JobFiretask):
    """jobflow's ``JobFiretask`` (same ``job`` / ``store`` parameters, same store handling) that
    records a failed job: on an exception it writes a :class:`~pftflow.documents.FailureDoc` into
    the job's store (the fields ``pftflow run`` writes; ``log_file``: the traceback, written to
    ``pftflow_failure.log`` in the launch directory) and re-raises, so the Firework still FIZZLES
    and FireWorks keeps the traceback.  The Fireworks a job adds at run time (its Response's
    replace / addition / detour) run with this task too.  ``_fw_name`` is
    ``{{pftflow.run.fireworks.PftflowJobFiretask}}``: a worker imports it by module path."""

    def run_task(self, fw_spec):
        try:
            action = super().run_task(fw_spec)
        except BaseException as exc:
            if isinstance(exc, Exception):  # not KeyboardInterrupt / SystemExit: the job did not fail by itself
                self._record_failure(exc, fw_spec)
            raise
        finally:
            release_free_heap()  # a rapidfire worker runs many jobs in one process (pftflow.run.memory)
        for wf in (action.detours or []) + (action.additions or []):
            use_pftflow_tasks(wf)
        return action

    def _record_failure(self, exc: Exception, fw_spec: dict) -> None:
        """Write the FailureDoc; a problem doing so is logged, never raised (the job's exception
        is what FireWorks must record)."""
        import logging
        import time
        import traceback

        try:
            from jobflow import SETTINGS

            job = self.get("job")
            meta = dict(getattr(job, "metadata", None) or {})
            name = getattr(job, "name", None) or "?"
            log_file = None
            try:  # the rocket runs the task in its launch directory
                log = Path.cwd() / FAILURE_LOG
                with log.open("a") as fh:
                    fh.write(failure_log_header(name, meta) + "\n" + "".join(traceback.format_exception(exc)) + "\n")
                log_file = str(log)
            except OSError:
                pass
            doc = failure_doc(meta, campaign=fw_spec.get("campaign") or "", kind=fw_spec.get("kind") or "", job_name=name,
                              job_uuid=getattr(job, "uuid", None), reason=one_line(exc), error_class=type(exc).__name__,
                              hint=hint_for(exc), when=time.time(), log_file=log_file)
            store = self.get("store") or SETTINGS.JOB_STORE
            store.connect()  # a no-op when the job connected it (jobflow's run_task does first)
            reuse.record_failure(store, doc, meta)
        except Exception:  # noqa: BLE001 - never mask the job's own exception
            logging.getLogger(__name__).warning("pftflow could not record the failure of a Firework job:\n%s", traceback.format_exc())


def use_pftflow_tasks(wf):
    """``wf`` (a FireWorks Workflow) with the jobflow ``JobFiretask`` of each Firework replaced by
    :class:`PftflowJobFiretask` (same parameters), in place."""
    for fw in wf.fws:
        fw.tasks = [PftflowJobFiretask(dict(t)) if type(t) is JobFiretask else t for t in fw.tasks]
    return wf


# ------------------------------------------------------------------------------------ jobs
def _absolute_paths(value: Any) -> Any:
    """``value`` with every string that names an existing relative file or folder made absolute
    (in lists, tuples and dicts; other objects are left as they are)."""
    if isinstance(value, str):
        if value and len(value) < 4096 and "://" not in value and not os.path.isabs(value) and (os.sep in value or "." in os.path.basename(value)):
            try:
                if os.path.exists(value):
                    return os.path.abspath(value)
            except (OSError, ValueError):
                pass
        return value
    if type(value) in (list, tuple):
        return type(value)(_absolute_paths(v) for v in value)
    if type(value) is dict:
        return {k: _absolute_paths(v) for k, v in value.items()}
    return value


def fw_key(job) -> str:
    """What identifies a job's work on the LaunchPad: its ``pftflow_key``, or a hash of its name and
    arguments (a job without a key, e.g. the parameters record; unstable if it takes references)."""
    key = (job.metadata or {}).get("pftflow_key")
    return key or content_key("fw", job.name, job.function_args, job.function_kwargs)


def prepare_jobs(flow) -> list:
    """The flow's jobs, each with a resource category (``light`` if its maker set none) and absolute
    file paths in its arguments."""
    jobs = [j for j, _ in flow.iterflow()]
    for j in jobs:
        if not (j.config.manager_config or {}).get("_category"):
            set_resources(j, DEFAULT_CATEGORY)
        j.function_args = _absolute_paths(j.function_args)
        j.function_kwargs = _absolute_paths(j.function_kwargs)
    return jobs


def _on_launchpad(lp, campaign: str, keys: list[str]) -> dict[str, dict]:
    """``{key: firework doc}`` of the campaign's Fireworks already on the LaunchPad (one per key,
    the most advanced state first)."""
    if not keys:
        return {}
    docs = lp.fireworks.find(
        {f"spec.{FW_KEY}": {"$in": keys}, "spec.campaign": campaign, "state": {"$in": list(_KEPT_STATES)}},
        {"fw_id": 1, "state": 1, f"spec.{FW_KEY}": 1, "spec._tasks": 1},
    )
    out: dict[str, dict] = {}
    for d in sorted(docs, key=lambda d: (_STATE_RANK.get(d["state"], 99), d["fw_id"])):
        out.setdefault(d["spec"][FW_KEY], d)
    return out


def _job_uuid(fw_doc: dict) -> str | None:
    for t in fw_doc.get("spec", {}).get("_tasks", []):
        job = t.get("job")
        if isinstance(job, dict) and job.get("uuid"):
            return job["uuid"]
    return None


def _components(fws: list) -> list[list]:
    """Connected groups of Fireworks (parent links among ``fws``), each in the given order."""
    ids = {fw.fw_id: i for i, fw in enumerate(fws)}
    root = list(range(len(fws)))

    def find(i):
        while root[i] != i:
            root[i] = root[root[i]]
            i = root[i]
        return i

    for i, fw in enumerate(fws):
        for p in fw.parents:
            if p.fw_id in ids:
                root[find(i)] = find(ids[p.fw_id])
    groups: dict[int, list] = {}
    for i, fw in enumerate(fws):
        groups.setdefault(find(i), []).append(fw)
    return list(groups.values())


def add_flow(lp, flow, store, *, campaign: str, name: str | None = None, rerun_fizzled: bool = True) -> dict[str, Any]:
    """Add the jobs of ``flow`` that are not yet on the LaunchPad (see the module docstring).

    Returns ``fireworks_added``, ``fireworks_on_launchpad`` (jobs of the flow found there),
    ``fireworks_rerun`` (FIZZLED ones rerun), ``workflows`` (fw_id of a Firework of each workflow
    added to or appended to) and ``warnings``.
    """
    from fireworks import Workflow
    from jobflow import Flow
    from jobflow.managers.fireworks import flow_to_workflow

    if isinstance(flow, Flow) and not flow.jobs:
        return {"fireworks_added": 0, "fireworks_on_launchpad": 0, "fireworks_rerun": 0, "workflows": [], "warnings": []}
    prepare_jobs(flow)
    wf = use_pftflow_tasks(flow_to_workflow(flow, store=store, allow_external_references=True))
    job_of = {fw.fw_id: fw.tasks[0]["job"] for fw in wf.fws}
    for fw in wf.fws:
        fw.spec[FW_KEY] = fw_key(job_of[fw.fw_id])
        fw.spec.setdefault("campaign", campaign)
    existing = _on_launchpad(lp, campaign, sorted({fw.spec[FW_KEY] for fw in wf.fws}))

    def kept(fw, d) -> bool:
        """A COMPLETED Firework of a keyed job is in the build only if its output is not (yet) in the
        store: kept when the store has its job's document (it replaced itself and the replacement
        is still running), added again when the output was lost."""
        if d["state"] != "COMPLETED" or not job_of[fw.fw_id].metadata.get("pftflow_key"):
            return True
        uuid = _job_uuid(d)
        return bool(uuid) and store is not None and store.docs_store.count({"uuid": uuid}) > 0

    old = {fw.fw_id: d for fw in wf.fws if (d := existing.get(fw.spec[FW_KEY])) is not None and kept(fw, d)}
    mapping = {job_of[i].uuid: u for i, d in old.items() if (u := _job_uuid(d))}
    warnings: list[str] = []
    rerun = 0
    if rerun_fizzled:
        for d in {d["fw_id"]: d for d in old.values() if d["state"] == "FIZZLED"}.values():
            lp.rerun_fw(d["fw_id"])
            rerun += 1
    new = [fw for fw in wf.fws if fw.fw_id not in old]
    new_ids = {fw.fw_id for fw in new}
    external: dict[int, set[int]] = {}  # new fw -> unfinished Fireworks already on the LaunchPad it waits for
    for fw in new:
        job = job_of[fw.fw_id]
        if mapping:
            job.function_args = retarget(job.function_args, mapping)
            job.function_kwargs = retarget(job.function_kwargs, mapping)
        external[fw.fw_id] = {old[p.fw_id]["fw_id"] for p in fw.parents if p.fw_id in old and old[p.fw_id]["state"] != "COMPLETED"}
        fw.parents = [p for p in fw.parents if p.fw_id in new_ids]
    workflows: list[int] = []
    wf_name = name or wf.name
    for group in _components(new) if old else ([new] if new else []):
        parents = sorted(set().union(*(external[fw.fw_id] for fw in group)))
        sub = Workflow(group, name=wf_name, metadata={"campaign": campaign})
        if not parents:
            ids = lp.add_wf(sub)
            workflows.append(min(ids.values()))
            continue
        # FireWorks links across workflows are not possible: append to the workflow of the parents
        by_wf: dict[int, list[int]] = {}
        for p in parents:
            w = lp.workflows.find_one({"nodes": p}, {"nodes": 1})
            by_wf.setdefault(min(w["nodes"]) if w else p, []).append(p)
        home = max(by_wf, key=lambda k: len(by_wf[k]))
        if len(by_wf) > 1:
            warnings.append(f"{group[0].name}: waits for unfinished Fireworks in {len(by_wf)} workflows; linked to those of workflow {home} only")
        lp.append_wf(sub, by_wf[home], pull_spec_mods=False)
        workflows.append(home)
    return {
        "fireworks_added": len(new),
        "fireworks_on_launchpad": len(old),
        "fireworks_rerun": rerun,
        "workflows": sorted(set(workflows)),
        "warnings": warnings,
    }


# ------------------------------------------------------------------------------------ running
@contextmanager
def _worker_uri(spec):
    """While rockets run in this process: the MongoDB URI of the spec in ``$PFTFLOW_MONGODB_URI``
    (the stores inside the Fireworks do not hold the password), in memory only."""
    uri = spec.store_uri
    if not uri or os.environ.get(MONGODB_URI_ENV):
        yield
        return
    os.environ[MONGODB_URI_ENV] = uri
    try:
        yield
    finally:
        os.environ.pop(MONGODB_URI_ENV, None)


def launch_rockets(lp, *, launch_dir: str | os.PathLike, fworker: str | None = None, categories: list[str] | None = None, max_launches: int = 0) -> None:
    """Run the READY Fireworks with ``rapidfire`` here, as a FireWorker named ``fworker`` pulling
    ``categories`` (None: all), in ``launch_dir`` (made absolute: rapidfire changes directory).
    FireWorks' and jobflow's log lines go to stderr (stdout stays for the command's result)."""
    import sys
    from contextlib import redirect_stdout

    from fireworks import FWorker
    from fireworks.core import rocket
    from fireworks.core.rocket_launcher import rapidfire

    launch_dir = Path(launch_dir).resolve()
    launch_dir.mkdir(parents=True, exist_ok=True)
    worker = FWorker(name=fworker or "pftflow-submit", category=list(categories) if categories else "")
    cwd, ping = os.getcwd(), rocket.start_ping_launch
    if getattr(lp, "_pftflow_embedded", None) is not None:
        # no ping thread: it only serves `lpad detect_lostruns`, and on mongomock it races the
        # main thread's update of the launch document ("No Launch exists with launch_id")
        rocket.start_ping_launch = lambda launchpad, launch_id: None
    try:
        with redirect_stdout(sys.stderr):  # their handlers bind sys.stdout when created, i.e. in here
            rapidfire(lp, worker, nlaunches=max_launches, m_dir=str(launch_dir), strm_lvl="WARNING")
    finally:
        os.chdir(cwd)  # rapidfire leaves the process in launch_dir
        rocket.start_ping_launch = ping


def campaign_states(lp, campaign: str) -> dict[str, int]:
    """Number of the campaign's Fireworks per state."""
    out: dict[str, int] = {}
    for d in lp.fireworks.find({"spec.campaign": campaign}, {"state": 1}):
        out[d["state"]] = out.get(d["state"], 0) + 1
    return out


def worker_command(spec, where: str) -> str:
    """The ``rlaunch`` command a worker runs for this campaign's LaunchPad."""
    if spec.fireworks.launchpad_file:
        return f"rlaunch -l {Path(spec.fireworks.launchpad_file).resolve()} -w my_fworker.yaml rapidfire"
    return f"{_MONGOMOCK_ENV}={where} rlaunch -l {Path(where).with_name(EMBEDDED_LAUNCHPAD_YAML)} -w my_fworker.yaml rapidfire"


def submit_campaign(
    spec,
    *,
    launch: bool = False,
    max_launches: int = 0,
    fworker: str | None = None,
    categories: list[str] | None = None,
) -> dict[str, Any]:
    """Add the campaign's flow to a FireWorks LaunchPad; with ``launch``, also run it here with
    rapidfire (as FireWorker ``fworker`` / ``fireworks.fworker``, pulling ``categories``; None: all).

    Jobs already in the store are not in the flow; jobs already on the LaunchPad are not added again
    (module docstring).  The store is opened first: an unreachable MongoDB fails fast with
    :class:`pftflow.store.StoreConnectionError`, before the LaunchPad is touched.
    """
    store = open_store(spec)
    lp = None
    try:
        lp, where = open_launchpad(spec)
        flow, reused = KINDS[spec.kind].build(spec, store)
        added = add_flow(lp, flow, store, campaign=spec.name, name=f"campaign {spec.name}")
        out: dict[str, Any] = {"campaign": spec.name, **added, "reused": reused, "launchpad": where}
        if launch:
            with _worker_uri(spec):
                launch_rockets(lp, launch_dir=Path(spec.store_dir) / "fw_launches", fworker=fworker or spec.fireworks.fworker,
                               categories=categories, max_launches=max_launches)
        out["states"] = campaign_states(lp, spec.name)
        out["worker"] = worker_command(spec, where)
        return out
    finally:
        if lp is not None:
            save_launchpad(lp)
        store.close()
