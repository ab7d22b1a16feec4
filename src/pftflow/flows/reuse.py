"""Campaign plumbing every kind uses, importing no kind: stored jobs, job-level reuse, failures and the
recorded spec, and :class:`CampaignKind` (what a kind module exposes as ``KIND``; the registry
:data:`pftflow.flows.campaigns.KINDS` lists them).

Reuse, job by job: every job carries ``metadata.pftflow_key`` (:func:`pftflow.identity.content_key`,
chained through the jobs of a flow).  Every registered builder ends with :func:`reuse_stored`: a job
whose key already has a *complete* output in the store (:func:`stored_jobs`) is dropped from the
flow, and its consumers read the stored output instead (their references are pointed at the stored
job's uuid and resolved from the store when they run).  So a rerun after a crash or a SIGKILL at any
moment redoes no job that had finished.  ``reused`` reports it per stage (``reference``: materials
whose reference phonons are stored, ``model``: ``material/model`` comparisons, ``jobs``: every
reused job's name).

Failures: the runner writes a :class:`~pftflow.documents.FailureDoc` per failed job
(:func:`record_failure`, ``metadata.stage == "failure"``, the failed job's key in
``metadata.failed_key``, so no reuse lookup can take it for an output); :func:`stored_failures`
reads them back for the results table and ``pftflow status``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from jobflow import Flow, Job, OutputReference
from monty.json import MontyDecoder

from pftflow.documents import FailureDoc
from pftflow.identity import REFERENCE_MODEL
from pftflow.store import redact

#: ``metadata.stage`` of the failure documents the runner writes (not a pipeline stage)
FAILURE_STAGE = "failure"


# ------------------------------------------------------------------------------------ stored jobs
def _collect(obj: Any, pick, out: list) -> list:
    """``pick(d)`` of every dict inside a stored output that it is not None for (not descending into those)."""
    if isinstance(obj, dict):
        hit = pick(obj)
        if hit is not None:
            out.append(hit)
        else:
            for v in obj.values():
                _collect(v, pick, out)
    elif isinstance(obj, list):
        for v in obj:
            _collect(v, pick, out)
    return out


def _blob_refs(obj: Any, out: list) -> list:
    """(store name, blob_uuid) of the additional-store blobs a stored output points to."""
    return _collect(obj, lambda d: (d["store"], d["blob_uuid"]) if "blob_uuid" in d and "store" in d else None, out)


def _output_refs(obj: Any, out: list) -> list:
    """uuids of the OutputReferences inside a stored output (a job replaced by a flow stores one)."""
    return _collect(obj, lambda d: d["uuid"] if d.get("@class") == "OutputReference" and "uuid" in d else None, out)


def job_complete(store, uuid: str, depth: int = 0) -> bool:
    """True when job ``uuid``'s last output is stored whole: not None (a job that replaced itself
    stores None until its replacement finished), every blob it points to is in its additional
    store (jobflow writes the document before the blobs: a kill in between leaves a document
    without them), and every output it refers to is complete too."""
    doc = store.docs_store.query_one({"uuid": uuid}, properties=["output"], sort={"index": -1})
    if doc is None or doc.get("output") is None:
        return False
    out = doc["output"]
    blobs: dict[str, set] = {}
    for name, blob in _blob_refs(out, []):
        blobs.setdefault(name, set()).add(blob)
    for name, ids in blobs.items():
        extra = store.additional_stores.get(name)
        if extra is None or extra.count({"blob_uuid": {"$in": sorted(ids)}}) < len(ids):
            return False
    return depth < 8 and all(job_complete(store, u, depth + 1) for u in set(_output_refs(out, [])))


def stored_jobs(store, keys: Iterable[str]) -> dict[str, str]:
    """``{key: uuid}`` of the latest complete stored job (see :func:`job_complete`) per content key."""
    keys = sorted({k for k in keys if k})
    if store is None or not keys:
        return {}
    docs = list(store.query({"metadata.pftflow_key": {"$in": keys}}, properties=["uuid", "index", "completed_at", "metadata.pftflow_key"]))
    docs.sort(key=lambda d: (str(d.get("completed_at", "")), d.get("index", 0)), reverse=True)
    out: dict[str, str] = {}
    tried: set[str] = set()
    for d in docs:
        key, uuid = d["metadata"]["pftflow_key"], d["uuid"]
        if key in out or uuid in tried:
            continue
        tried.add(uuid)
        if job_complete(store, uuid):
            out[key] = uuid
    return out


def find_stored(store, key: str):
    """Decoded output (a document) of the latest complete job with ``metadata.pftflow_key == key``
    (None without a store or such a job)."""
    uuid = stored_jobs(store, [key]).get(key)
    if uuid is None:
        return None
    return MontyDecoder().process_decoded(store.get_output(uuid, which="last", load=True))


def latest_outputs(store, query: dict, keys: tuple[str, ...] = ("material_id", "model"), *, with_metadata: bool = False) -> list[Any]:
    """Decoded outputs of the latest complete job (by completion time) per combination of metadata
    ``keys`` (a document left without its blobs by a killed run is passed over), oldest first;
    ``with_metadata``: ``(job metadata, decoded output)`` pairs instead."""
    docs = list(store.query(query, properties=["uuid", "index", "metadata", "completed_at"]))
    latest: dict = {}
    for d in sorted(docs, key=lambda d: (str(d.get("completed_at", "")), d.get("index", 0)), reverse=True):
        group = tuple(d["metadata"].get(k) for k in keys)
        if group not in latest and job_complete(store, d["uuid"]):
            latest[group] = d
    latest = dict(reversed(list(latest.items())))  # oldest first, as before
    dec = MontyDecoder()
    outputs = [dec.process_decoded(store.get_output(d["uuid"], which="last", load=True)) for d in latest.values()]
    return [(d["metadata"], o) for d, o in zip(latest.values(), outputs)] if with_metadata else outputs


_STAGE_KEYS: dict[int, tuple[Any, dict[str, list[str]]]] = {}
#: the builder of each kind, by name (filled by :func:`campaign_kind` when a kind module is imported)
_BUILDERS: dict[str, Callable] = {}


def _stage_keys(spec) -> dict[str, list[str]]:
    """Content keys of every job ``spec``'s campaign builds, per stage (built without a store; cached
    per spec object).  Empty for what cannot be built: a campaign read back from a store without its
    spec file, or a spec whose inputs are gone."""
    hit = _STAGE_KEYS.get(id(spec))
    if hit is not None and hit[0] is spec:
        return hit[1]
    out: dict[str, list[str]] = {}
    build = _BUILDERS.get(getattr(spec, "kind", None))
    if build is not None and hasattr(spec, "model_dump"):
        try:
            flow, _ = build(spec, None)
        except Exception:  # noqa: BLE001 - the campaign-name query still finds the jobs it ran itself
            flow = None
        with warnings.catch_warnings():  # jobflow: "Some jobs are not connected" (independent materials)
            warnings.simplefilter("ignore", UserWarning)
            order = list(flow.iterflow()) if flow is not None else []
        for job, _ in order:
            meta = job.metadata or {}
            if meta.get("pftflow_key") and meta.get("stage"):
                out.setdefault(meta["stage"], []).append(meta["pftflow_key"])
    if len(_STAGE_KEYS) > 16:
        _STAGE_KEYS.clear()
    _STAGE_KEYS[id(spec)] = (spec, out)
    return out


def campaign_query(spec, stage: str, **criteria) -> dict:
    """Query for the stored jobs of ``stage`` that belong to ``spec``'s campaign: those it ran under its
    name, and those another campaign in the same store ran with the same content key, which this
    campaign reused instead of running them (so the results and ``pftflow status`` agree)."""
    q: dict[str, Any] = {"metadata.stage": stage, **criteria}
    keys = _stage_keys(spec).get(stage)
    if keys:
        q["$or"] = [{"metadata.campaign": spec.name}, {"metadata.pftflow_key": {"$in": keys}}]
    else:
        q["metadata.campaign"] = spec.name
    return q


# ------------------------------------------------------------------------------------ job-level reuse
def _jobs_of(items) -> list[Job]:
    out: list[Job] = []
    for it in items:
        out.extend(_jobs_of(it.jobs) if isinstance(it, Flow) else [it])
    return out


def retarget(value: Any, mapping: dict[str, str]) -> Any:
    """``value`` with every OutputReference to a job in ``mapping`` pointed at the stored job's uuid
    (nested in lists / dicts, or inside an MSONable object: serialised and decoded as jobflow does
    when it resolves references), and every string that is such a job's uuid replaced too (a job
    may name others by uuid: κ's fc2 check names its upstream jobs for the jobs it creates)."""
    if isinstance(value, OutputReference):
        return OutputReference(mapping[value.uuid], value.attributes, value.output_schema) if value.uuid in mapping else value
    if isinstance(value, str):
        return mapping.get(value, value)
    if value is None or isinstance(value, (int, float, bool)):
        return value
    if isinstance(value, (list, tuple)) and type(value) in (list, tuple):
        return type(value)(retarget(v, mapping) for v in value)
    if type(value) is dict and "@class" not in value:
        return {k: retarget(v, mapping) for k, v in value.items()}
    from jobflow.utils.find import find_key_value
    from monty.json import jsanitize
    from pydash import get

    try:
        encoded = jsanitize(value, strict=True, enum_values=True, allow_bson=True)
    except Exception:  # noqa: BLE001 - not serialisable: jobflow could not hold a reference in it either
        return value
    hits = [get(encoded, list(loc)) for loc in find_key_value(encoded, "@class", "OutputReference")]
    hits = [h for h in hits if h.get("uuid") in mapping]
    if not hits:
        return value
    for h in hits:
        h["uuid"] = mapping[h["uuid"]]
    return MontyDecoder().process_decoded(encoded)


def _drop(items, gone: set[str], mapping: dict[str, str]) -> list:
    """``items`` without the jobs in ``gone`` (and without flows left empty), in place."""
    kept = []
    for it in items:
        if isinstance(it, Flow):
            it.jobs = _drop(it.jobs, gone, mapping)
            # the public setter insists every output reference is a job of this flow; the stored
            # job it now points to is not, by design
            it._output = retarget(it.output, mapping)
            if it.jobs:
                kept.append(it)
        elif it.uuid not in gone:
            kept.append(it)
    return kept


def reuse_stored(flow, store, *, keep_stages: Iterable[str] = ()) -> tuple[Any, list[Job]]:
    """Drop every job of ``flow`` (a Flow, or a list of jobs / flows) whose ``pftflow_key`` has a
    complete output in ``store``; its consumers' references are pointed at the stored job, so they
    read the stored output when they run.  Every other job runs, even one whose consumers are all
    stored (a deleted intermediate): its output is a result too (reference phonons, plots).  Jobs
    of ``keep_stages`` are left to the builder (a training run, reused only while its model file
    exists).

    Returns the flow (the same object, or the kept list) and the reused jobs.  The flow then holds
    references to jobs outside it: run it with ``allow_external_references=True``.
    """
    items = list(flow.jobs) if isinstance(flow, Flow) else list(flow)
    jobs = _jobs_of(items)
    keep_stages = set(keep_stages)
    if store is None or not jobs:
        return flow, []
    keyed = {j.uuid: j.metadata.get("pftflow_key") for j in jobs if (j.metadata or {}).get("pftflow_key") and j.metadata.get("stage") not in keep_stages}
    stored = stored_jobs(store, keyed.values())
    mapping = {u: stored[k] for u, k in keyed.items() if k in stored}
    if not mapping:
        return flow, []
    gone = set(mapping)
    for j in jobs:
        if j.uuid not in gone:
            j.function_args = retarget(j.function_args, mapping)
            j.function_kwargs = retarget(j.function_kwargs, mapping)
    reused = [j for j in jobs if j.uuid in mapping]
    kept = _drop(items, gone, mapping)
    if isinstance(flow, Flow):
        flow.jobs = kept
        flow._output = retarget(flow.output, mapping)
        return flow, reused
    return kept, reused


def reused_stages(jobs: Iterable[Job]) -> dict[str, list[str]]:
    """What reused ``jobs`` stand for: ``reference`` (material ids whose reference phonon analysis
    is stored), ``model`` (``material/model`` whose comparison is stored), ``kappa`` (``material/model``
    whose κ result is stored), ``jobs`` (every name)."""
    out: dict[str, list[str]] = {"reference": [], "model": [], "jobs": []}
    for j in jobs:
        m = j.metadata or {}
        out["jobs"].append(j.name)
        if m.get("stage") == "analysis" and m.get("model") == REFERENCE_MODEL:
            out["reference"].append(m.get("material_id"))
        elif m.get("stage") == "compare":
            out["model"].append(f"{m.get('material_id')}/{m.get('model')}")
        elif m.get("stage") == "kappa" and m.get("kind") == "kappa":
            out.setdefault("kappa", []).append(f"{m.get('material_id')}/{m.get('model')}")
    return out


def with_job_reuse(build: Callable, keep_stages: Iterable[str] = ()) -> Callable:
    """A builder that ends with :func:`reuse_stored` and adds what it reused to ``reused``."""

    def built(spec, store):
        flow, reused = build(spec, store)
        flow, jobs = reuse_stored(flow, store, keep_stages=keep_stages)
        reused = {k: list(v) for k, v in reused.items()}
        for k, v in reused_stages(jobs).items():
            reused[k] = reused.get(k, []) + [x for x in v if x not in reused.get(k, [])]
        return flow, reused

    built.__doc__ = build.__doc__
    built.__name__ = getattr(build, "__name__", "build")
    return built


# ------------------------------------------------------------------------------------ failures
def record_failure(store, failure, job_metadata: dict | None = None) -> None:
    """Write a :class:`~pftflow.documents.FailureDoc` into the store's documents, shaped like a job
    document (``uuid``: ``failure:<job uuid>``) so the store indexes find it by campaign, material,
    model and ``stage: "failure"``; the failed job's stage and key go to ``failed_stage`` /
    ``failed_key``."""
    import datetime as dt

    meta = {k: v for k, v in (job_metadata or {}).items() if k not in ("pftflow_key", "stage")}
    meta.update({"campaign": failure.campaign, "kind": failure.kind, "stage": FAILURE_STAGE, "failed_stage": failure.stage,
                 "failed_key": failure.pftflow_key})
    if failure.material_id is not None:
        meta["material_id"] = failure.material_id
    if failure.model is not None:
        meta["model"] = failure.model
    doc = {
        "uuid": f"failure:{failure.job_uuid or failure.job_name}:{failure.time:.6f}",
        "index": 1,
        "name": failure.job_name,
        "completed_at": dt.datetime.fromtimestamp(failure.time).isoformat(),
        "metadata": meta,
        "output": failure.model_dump(mode="json"),
        "hosts": [],
    }
    store.docs_store.update(doc, key=["uuid", "index"])


def stored_failures(store, campaign: str, query: dict | None = None) -> list:
    """The :class:`~pftflow.documents.FailureDoc` of a campaign, oldest first."""
    docs = list(store.docs_store.query({"metadata.campaign": campaign, "metadata.stage": FAILURE_STAGE, **(query or {})},
                                       properties=["output", "completed_at"]))
    docs.sort(key=lambda d: str(d.get("completed_at", "")))
    return [FailureDoc.model_validate(d["output"]) for d in docs]



# ------------------------------------------------------------------------------------ spec
def recorded_spec(spec) -> dict:
    """The validated spec as JSON, credentials redacted (what ``record_parameters`` stores)."""
    d = spec.model_dump(mode="json")
    if d.get("store", {}).get("uri"):
        d["store"]["uri"] = redact(d["store"]["uri"])
    return d


# ------------------------------------------------------------------------------------ kinds
@dataclass(frozen=True)
class CampaignKind:
    """How a campaign kind is built and read back: ``build(spec, store) -> (Flow, reused)`` (ending with
    :func:`with_job_reuse`), ``results(spec, store) -> dict``, optional ``plots(spec, store, out_dir) -> [paths]``."""

    build: Callable[[Any, Any], tuple[Flow, dict]]
    results: Callable[[Any, Any], dict]
    plots: Callable[[Any, Any, Any], list] | None = None


def campaign_kind(name: str, build: Callable, results: Callable, plots: Callable | None = None, *, keep_stages: Iterable[str] = ()) -> CampaignKind:
    """The ``KIND`` of a kind module: ``build`` wrapped with :func:`with_job_reuse` (``keep_stages``: stages
    the builder itself decides to reuse), registered under ``name`` for :func:`campaign_query`."""
    kind = CampaignKind(with_job_reuse(build, keep_stages), results, plots)
    _BUILDERS[name] = kind.build
    return kind
