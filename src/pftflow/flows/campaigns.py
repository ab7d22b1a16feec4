"""Campaign builders, one per kind: ``build(spec, store) -> (Flow, reused)`` and
``results(spec, store) -> dict``.

A kind is registered in :data:`KINDS`; the runner (:mod:`pftflow.run`), the results
(:mod:`pftflow.results`) and the CLI look it up here and nowhere else.

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

import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from jobflow import Flow, Job, OutputReference
from monty.json import MontyDecoder

from pftflow.identity import REFERENCE_MODEL, ResultId, content_key, file_sha

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


def _stage_keys(spec) -> dict[str, list[str]]:
    """Content keys of every job ``spec``'s campaign builds, per stage (built without a store; cached
    per spec object).  Empty for what cannot be built: a campaign read back from a store without its
    spec file, or a spec whose inputs are gone."""
    hit = _STAGE_KEYS.get(id(spec))
    if hit is not None and hit[0] is spec:
        return hit[1]
    out: dict[str, list[str]] = {}
    kind = KINDS.get(getattr(spec, "kind", None))
    if kind is not None and hasattr(spec, "model_dump"):
        try:
            flow, _ = kind.build(spec, None)
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


def _retarget(value: Any, mapping: dict[str, str]) -> Any:
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
        return type(value)(_retarget(v, mapping) for v in value)
    if type(value) is dict and "@class" not in value:
        return {k: _retarget(v, mapping) for k, v in value.items()}
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
            it._output = _retarget(it.output, mapping)
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
            j.function_args = _retarget(j.function_args, mapping)
            j.function_kwargs = _retarget(j.function_kwargs, mapping)
    reused = [j for j in jobs if j.uuid in mapping]
    kept = _drop(items, gone, mapping)
    if isinstance(flow, Flow):
        flow.jobs = kept
        flow._output = _retarget(flow.output, mapping)
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
    from pftflow.documents import FailureDoc

    docs = list(store.docs_store.query({"metadata.campaign": campaign, "metadata.stage": FAILURE_STAGE, **(query or {})},
                                       properties=["output", "completed_at"]))
    docs.sort(key=lambda d: str(d.get("completed_at", "")))
    return [FailureDoc.model_validate(d["output"]) for d in docs]


# ------------------------------------------------------------------------------------ phonons
_SECRET = re.compile(r"(?P<scheme>[a-z+]+://)(?P<user>[^:@/]+):(?P<password>[^@/]+)@")


def redact(text: str) -> str:
    """A URI with its password replaced by ``***`` (``mongodb://u:pw@h`` -> ``mongodb://u:***@h``)."""
    return _SECRET.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)


def recorded_spec(spec) -> dict:
    """The validated spec as JSON, credentials redacted (what ``record_parameters`` stores)."""
    d = spec.model_dump(mode="json")
    if d.get("store", {}).get("uri"):
        d["store"]["uri"] = redact(d["store"]["uri"])
    return d


def _material_input(mat) -> dict:
    """A spec material entry as the phonon maker takes it (a compute entry's structure as Atoms)."""
    out = mat.entry()
    if hasattr(mat, "structure"):
        out["structure"] = mat.structure.atoms()
    return out


def benchmark_flow(campaign: str, kind: str, reference, materials, models: list[tuple[Any, str, Any]], settings, store) -> tuple[list, dict]:
    """Reference phonons of each material and each model compared with them (the harmonic benchmark,
    used by the ``phonons`` and ``finetune`` kinds).

    ``reference``: a :class:`~pftflow.spec.phonons.ReferenceSpec`; ``materials``: spec material
    entries; ``models``: ``(calculator spec or OutputReference to one, name, key part[, force-constant
    method])`` — the key part stands for the model in the content keys (its calculator spec, or the
    key of the job that trains it); the method is ``displacements`` (default) or ``hessian``; ``settings``: :class:`~pftflow.spec.phonons.BenchmarkSettings`.  Returns every
    material's and model's flow, and ``{"reference": [ids], "model": ["id/model"]}``: the reference
    phonons and comparisons already complete in ``store``.  Stored jobs are dropped afterwards, job
    by job, by :func:`reuse_stored` (every registered builder ends with it).
    """
    from pftflow.flows import jobs
    from pftflow.flows.phonons import mlip_phonon_maker, reference_phonon_maker

    psettings = settings.phonons.as_dict()
    relax_settings = settings.relax.model_dump()
    relax_models = settings.relax_models
    ref_calc = None if reference.calculator is None else reference.calculator.calculator_spec()
    ref_relax = None if reference.relax is None else reference.relax.model_dump()
    ref_code = getattr(reference, "code", "ase")
    ref_vasp = None if getattr(reference, "vasp", None) is None else reference.vasp.model_dump(mode="json")
    ref_maker = reference_phonon_maker(mode=reference.mode, settings=psettings, calculator=ref_calc, relax_settings=ref_relax, code=ref_code, vasp=ref_vasp)
    ref_spec = reference.model_dump(mode="json")
    if ref_code == "ase":  # the keys of references stored before `code` existed stay valid
        ref_spec = {k: v for k, v in ref_spec.items() if k not in ("code", "vasp")}
    elif reference.vasp is not None:  # where / how VASP is launched does not change the forces
        ref_spec["vasp"] = reference.vasp.key_dict()
    rid = ResultId(campaign=campaign, kind=kind, stage="reference")
    parts: list = []
    stage_keys: list[tuple[str, str, str]] = []  # (what, name, key of its last job)
    for mat in materials:
        entry = _material_input(mat)
        mid = entry["id"]
        ref_key = content_key("reference", ref_spec, {k: v for k, v in mat.entry().items() if k != "source"},
                              file_sha(entry.get("reference_file")))
        ref_flow = ref_maker.make(entry, rid, key=ref_key)
        ref_analysis_key = ref_flow.jobs[-1].metadata["pftflow_key"]
        stage_keys.append(("reference", mid, ref_analysis_key))
        parts.append(ref_flow)
        ref_out = ref_flow.output
        # the models start from the reference's cell: determined by everything before its analysis
        cell_key = ref_flow.jobs[-2].metadata["pftflow_key"]
        model_material = {"id": mid, "structure": ref_out.structure, "supercell_matrix": ref_out.supercell_matrix, "primitive_matrix": ref_out.primitive_matrix}
        for calc, name, key_part, *fc_method in models:
            maker = mlip_phonon_maker(calc, name, settings=psettings, relax_settings=relax_settings, relax=relax_models, key_part=key_part,
                                      force_constants=fc_method[0] if fc_method else "displacements")
            mflow = maker.make(model_material, rid, key=content_key("model", cell_key, key_part), qpoints_from=ref_out, qpoints_key=ref_analysis_key)
            cmp_ = jobs.compare(ref_out, mflow.output)
            cmp_.name = f"compare {mid} {name}"
            cmp_key = content_key(mflow.jobs[-1].metadata["pftflow_key"], "compare")
            cmp_.metadata = rid.with_(material_id=mid, model=name, stage="compare").metadata(cmp_key)
            stage_keys.append(("model", f"{mid}/{name}", cmp_key))
            parts.append(Flow([mflow, cmp_], output=cmp_.output, name=f"{mid} {name}"))
    done = stored_jobs(store, [k for _, _, k in stage_keys])
    reused: dict[str, list[str]] = {"reference": [], "model": []}
    for what, name, key in stage_keys:
        if key in done:
            reused[what].append(name)
    return parts, reused


def build_phonons(spec, store) -> tuple[Flow, dict]:
    """Flow of a harmonic benchmark campaign (registered with job-level reuse: :func:`with_job_reuse`)."""
    from pftflow.flows import jobs

    params = jobs.record_parameters(recorded_spec(spec))
    params.metadata = ResultId(campaign=spec.name, kind="phonons", stage="parameters").metadata()
    models = [(m.calculator_spec(), m.name, m.calculator_spec(), getattr(m, "force_constants", "displacements")) for m in spec.models]
    parts, reused = benchmark_flow(spec.name, "phonons", spec.reference, spec.materials, models, spec.settings, store)
    return Flow([params, *parts], name=f"campaign {spec.name}"), reused


def pair_status(campaign: str, store, pairs: list[tuple[str, str]], done: set[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    """Rows for material × model ``pairs`` without a result (not in ``done``): ``status: "failed"``
    with the reason, stage and hint of the latest failure of the pair (or of its material's
    reference, which the model needs), else ``status: "missing"`` (not run, or not finished)."""
    fails = stored_failures(store, campaign)
    out = {}
    for mid, model in pairs:
        if (mid, model) in done:
            continue
        mine = [f for f in fails if f.material_id == mid and f.model in (model, REFERENCE_MODEL)]
        row: dict[str, Any] = {"material_id": mid, "model": model}
        if mine:
            f = mine[-1]
            who = "reference" if f.model == REFERENCE_MODEL and model != REFERENCE_MODEL else ""
            row.update(failed=True, status="failed", failed_stage=f"{who} {f.stage}".strip(), error=f.reason, hint=f.hint)
        else:
            row.update(failed=False, status="missing", error="no result yet: not run or not finished (pftflow status)")
        out[(mid, model)] = row
    return out


def phonons_results(spec, store) -> dict:
    """Material × model rows (spec order) and the MDR summary per model.  A pair whose job failed
    is a row with ``failed: True``, its ``error`` and ``failed_stage`` (counted in the summary's
    ``n_failed``); a pair not run yet is a row with ``status: "missing"`` (counted in ``n_missing``)."""
    from pftflow.phonons.metrics import summarize

    docs = latest_outputs(store, campaign_query(spec, "compare"))
    mat_order, mod_order = spec.material_ids, spec.model_names
    # the store may hold materials / models since removed from the spec: report the spec's
    rows = [dict(d.row(), status="failed" if d.failed else "ok") for d in docs if d.material_id in mat_order and d.model in mod_order]
    pairs = [(m, mod) for m in mat_order for mod in mod_order]
    rows += pair_status(spec.name, store, pairs, {(r["material_id"], r["model"]) for r in rows}).values()
    rows.sort(key=lambda r: (mat_order.index(r["material_id"]), mod_order.index(r["model"])))
    summary = {}
    for m in mod_order:
        mine = [r for r in rows if r["model"] == m]
        if any(r["status"] != "missing" for r in mine):
            summary[m] = summarize([r for r in mine if r["status"] != "missing"])
            summary[m]["n_missing"] = sum(r["status"] == "missing" for r in mine)
    return {"campaign": spec.name, "kind": "phonons", "rows": rows, "summary": summary}


def phonons_band_plots(spec, store, out_dir) -> list:
    """One PNG per material: the reference band structure and each model's, on the same q-path."""
    from pathlib import Path

    from pftflow.phonons.plotting import plot_band_overlay

    analyses = [a for a in latest_outputs(store, campaign_query(spec, "analysis")) if not a.failed]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for mid in spec.material_ids:
        ref = [a for a in analyses if a.material_id == mid and a.model == REFERENCE_MODEL]
        models = {a.model: a.result for a in analyses if a.material_id == mid and a.model != REFERENCE_MODEL}
        if not ref:
            continue
        p = out_dir / f"{mid}_bands.png"
        plot_band_overlay(ref[-1].result, models, p, title=f"{mid}: reference vs models")
        paths.append(p)
    return paths


# ------------------------------------------------------------------------------------ registry
@dataclass(frozen=True)
class CampaignKind:
    """How a campaign kind is built and read back."""

    build: Callable[[Any, Any], tuple[Flow, dict]]
    results: Callable[[Any, Any], dict]
    plots: Callable[[Any, Any, Any], list] | None = None


def _build_kappa(spec, store):
    from pftflow.flows.kappa import kappa_campaign_flow

    # built whole: the registry's job-level reuse drops what is stored, job by job (κ's own
    # store lookup would only skip whole materials)
    return kappa_campaign_flow(spec.raw, store=None), {}


def _kappa_results(spec, store):
    from pftflow.flows.kappa import load_kappa_results

    return load_kappa_results(spec.raw, store)


def _build_finetune(spec, store):
    from pftflow.flows.training import build_finetune

    return build_finetune(spec, store)


def _finetune_results(spec, store):
    from pftflow.flows.training import load_finetune_results

    return load_finetune_results(spec.raw, store)


def _build_dataset(spec, store):
    from pftflow.flows.dataset import build_dataset

    return build_dataset(spec, store)


def _dataset_results(spec, store):
    from pftflow.flows.dataset import dataset_results

    return dataset_results(spec, store)


#: every builder ends with job-level reuse (:func:`reuse_stored`); a training run stays the
#: finetune builder's decision (reused only while its exported model file exists)
KINDS: dict[str, CampaignKind] = {
    "phonons": CampaignKind(with_job_reuse(build_phonons), phonons_results, phonons_band_plots),
    "kappa": CampaignKind(with_job_reuse(_build_kappa), _kappa_results),
    "finetune": CampaignKind(with_job_reuse(_build_finetune, keep_stages=("train",)), _finetune_results),
    "dataset": CampaignKind(with_job_reuse(_build_dataset), _dataset_results),
}


def _finetune_campaign_kinds() -> dict[str, CampaignKind]:
    """``finetune_per_material`` / ``finetune_global`` (pftflow.flows.finetune_campaigns), imported when used."""

    def call(fn: str):
        def run(*args):
            from pftflow.flows import finetune_campaigns

            return getattr(finetune_campaigns, fn)(*args)

        run.__name__ = fn
        return run

    keep = ("train", "scratch_init")  # reused only while the model file exists: the builder decides
    return {
        "finetune_per_material": CampaignKind(with_job_reuse(call("build_per_material"), keep), call("per_material_results"), call("per_material_plots")),
        "finetune_global": CampaignKind(with_job_reuse(call("build_global"), keep), call("global_results"), call("global_plots")),
    }


KINDS.update(_finetune_campaign_kinds())
