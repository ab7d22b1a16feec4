"""The ``kappa`` campaign kind (k_SRME protocol): one :class:`~pftflow.flows.kappa.KappaMaker` flow per
model × material of a ``kind: kappa`` spec, and its results table.  Spec format: ``docs/kappa.md``."""

from __future__ import annotations

from typing import Any

from jobflow import Flow
from monty.json import MontyDecoder

from pftflow.flows.benchmark import pair_status
from pftflow.flows.kappa import kappa_maker, ksrme_relax_settings
from pftflow.flows.reuse import campaign_kind, find_stored
from pftflow.identity import ResultId, content_key, model_name
from pftflow.kappa.conductivity import KappaSettings
from pftflow.kappa.documents import KappaResultDoc
from pftflow.kappa.metrics import failed_metrics, mean_metrics
from pftflow.materials.kappa import KappaMaterial, KappaReference, read_kappa_reference, read_kappa_structures


def normalize_kappa_spec(spec: dict) -> dict:
    """The campaign spec with the keys of an optional ``kappa:`` block (``structures``,
    ``reference``, ``nac``, ``materials``, ``settings``) lifted to the top level (block wins)."""
    out = {k: v for k, v in spec.items() if k != "kappa"}
    block = spec.get("kappa") or {}
    if not isinstance(block, dict):
        raise ValueError("'kappa' must be a mapping with structures, reference, nac, materials, settings")
    out.update(block)
    return out


def kappa_materials(spec: dict) -> list[KappaMaterial]:
    """The materials selected by a campaign spec (``materials``: ids or names, or ``"all"``)."""
    spec = normalize_kappa_spec(spec)
    mats = read_kappa_structures(spec["structures"])
    wanted = spec.get("materials", "all")
    if wanted not in (None, "all", ["all"]):
        by_id = {m.material_id: m for m in mats}
        by_name = {m.name: m for m in mats}
        missing = [w for w in wanted if w not in by_id and w not in by_name]
        if missing:
            raise ValueError(f"materials {missing} not in {spec['structures']} (ids: {sorted(by_id)})")
        mats = [by_id.get(w) or by_name[w] for w in wanted]
    return mats


def kappa_references(spec: dict) -> dict[str, KappaReference]:
    """DFT references by material id of a campaign spec (``reference`` + ``nac``); {} without."""
    spec = normalize_kappa_spec(spec)
    if not spec.get("reference"):
        return {}
    return read_kappa_reference(spec["reference"], nac=bool(spec.get("nac", True)))


#: columns of ``pftflow results`` for kappa campaigns: (row key, header, format)
KAPPA_COLUMNS = [
    ("material_id", "material", "{}"),
    ("name", "name", "{}"),
    ("model", "model", "{}"),
    ("kappa_W_per_mK", "κ [W/m/K]", "{:.4f}"),
    ("kappa_dft_W_per_mK", "κ DFT [W/m/K]", "{:.4f}"),
    ("srd", "SRD", "{:+.4f}"),
    ("sre", "SRE", "{:.4f}"),
    ("srme", "SRME", "{:.4f}"),
    ("failed_reason", "failed", "{}"),
]


def _stored_result(store, key: str) -> KappaResultDoc | None:
    """The finished κ result stored under ``key``, or None (absent, unfinished or unreadable)."""
    try:
        done = find_stored(store, key)
    except Exception:  # noqa: BLE001 - an unreadable old entry is simply recomputed
        return None
    return done if isinstance(done, KappaResultDoc) else None


def kappa_campaign_flow(spec: dict, store=None) -> Flow:
    """One :class:`KappaMaker` flow per (model, material) of a ``kind: kappa`` campaign spec.

    Spec keys (docs/kappa.md): ``name``, ``structures`` (extxyz path), ``reference`` (JSON path or
    directory), ``nac`` (default true), ``materials`` (ids or names, or ``"all"``), ``models``
    (calculator specs), ``settings`` (:class:`KappaSettings` fields, plus ``relax`` (RelaxSettings
    fields overriding the k_SRME ones) and ``do_relax``).  Every job is tagged with its
    :class:`~pftflow.identity.ResultId` (``campaign``, ``kind: kappa``, ``material_id``, ``model``,
    ``stage``) and ``pftflow_key``; the job whose (final) output is the material's result has
    ``stage: "kappa"``.  With ``store`` given, a (material, model) whose key already has a finished
    result in the store is not run again.  The flow's output is the list of the per-material
    :class:`KappaResultDoc` of the flows that run.
    """
    spec = normalize_kappa_spec(spec)
    if spec.get("kind", "kappa") != "kappa":
        raise ValueError(f"kappa_campaign_flow needs kind: kappa, got {spec.get('kind')!r}")
    for k in ("structures", "models"):
        if not spec.get(k):
            raise ValueError(f"kappa campaign '{spec.get('name')}': '{k}' is required (see docs/kappa.md)")
    settings = dict(spec.get("settings") or {})
    relax_over = settings.pop("relax", None) or {}
    do_relax = bool(settings.pop("do_relax", True))
    settings = KappaSettings.from_dict(settings).as_dict()  # validate early
    relax_settings = ksrme_relax_settings(**relax_over)
    materials = kappa_materials(spec)
    references = kappa_references(spec)
    name = spec.get("name", "kappa")
    rid = ResultId(campaign=name, kind="kappa", stage="kappa")
    flows = []
    for model in spec["models"]:
        model = {"backend": model} if isinstance(model, str) else dict(model)
        maker = kappa_maker(model, model_name(model), settings=settings, relax_settings=relax_settings, relax=do_relax)
        for m in materials:
            key = content_key("kappa", m.model_dump(), model)
            f = maker.make(m, rid, key=key, reference=references.get(m.material_id))
            if store is not None and _stored_result(store, f.jobs[-1].metadata["pftflow_key"]) is not None:
                continue
            flows.append(f)
    return Flow(flows, output=[f.output for f in flows], name=f"campaign {name}")


def load_kappa_results(spec: dict, store) -> dict:
    """Rows (latest result per material × model) and mean SRE/SRME per model from the store,
    in the shape ``pftflow results`` prints (``columns`` = :data:`KAPPA_COLUMNS`)."""
    name = spec.get("name", "kappa")
    docs = list(store.query({"metadata.campaign": name, "metadata.stage": "kappa"},
                            properties=["uuid", "index", "metadata", "completed_at"]))
    latest: dict = {}
    for d in sorted(docs, key=lambda d: (str(d.get("completed_at", "")), d.get("index", 0))):
        latest[(d["metadata"].get("material_id"), d["metadata"].get("model"))] = d
    decoder = MontyDecoder()
    outputs = []
    for d in latest.values():
        try:
            out = decoder.process_decoded(store.get_output(d["uuid"], which="last", load=True))
        except Exception:  # noqa: BLE001 - job not finished / failed
            continue
        if isinstance(out, KappaResultDoc):
            outputs.append(out)
    rows, _ = summarize_kappa(outputs)  # the means are taken below, over the failed pairs too
    order = {}
    try:
        mats = kappa_materials(spec)
    except Exception:  # noqa: BLE001 - input files moved: keep store order, list only what is stored
        mats = []
    order = {m.material_id: i for i, m in enumerate(mats)}
    # every material x model of the spec has a row.  Without a result it is failed (a stored FailureDoc:
    # the job crashed) or missing (not run / not finished).  A failed pair counts SRD = SRE = SRME = 2 in the
    # means, like a physics failure (k_SRME rule: a model that cannot give κ is scored as the worst case);
    # a missing pair stays out of the means and is counted in n_missing.
    names = {m.material_id: m.name for m in mats}
    pairs = [(m.material_id, model_name(c)) for c in spec.get("models") or [] for m in mats]
    n_missing: dict[str, int] = {}
    for r in pair_status(name, store, pairs, {(r["material_id"], r["model"]) for r in rows}).values():
        row = {**{c: None for c, _, _ in KAPPA_COLUMNS}, "material_id": r["material_id"], "name": names.get(r["material_id"]), "model": r["model"],
               "status": r["status"], "failed_stage": r.get("failed_stage"), "hint": r.get("hint")}
        if r["failed"]:
            row.update(failed_metrics(f"{r.get('failed_stage') or 'job'} failed: {r.get('error')}"))
        else:
            row.update(failed=False, failed_reason="missing: not run or not finished (pftflow status)")
            n_missing[r["model"]] = n_missing.get(r["model"], 0) + 1
        rows.append(row)
    means: dict[str, dict] = {}
    for model in dict.fromkeys(r["model"] for r in rows):
        scored = [r for r in rows if r["model"] == model and r.get("status") != "missing"]
        means[model] = {**(mean_metrics(scored) if scored else {}), **({"n_missing": n_missing[model]} if model in n_missing else {})}
    rows.sort(key=lambda r: (str(r["model"]), order.get(r["material_id"], 1e9)))
    return {"campaign": name, "kind": "kappa", "rows": rows, "summary": means, "columns": KAPPA_COLUMNS}


def summarize_kappa(outputs: list[KappaResultDoc]) -> tuple[list[dict], dict]:
    """Table rows (one per model × material, :meth:`KappaResultDoc.row`) and mean metrics per model.

    Rows: model, material_id, name, kappa_W_per_mK, kappa_dft_W_per_mK, srd, sre, srme, failed, failed_reason.
    Mean: ``{model: {"n_materials", "n_failed", "mean_sre", "mean_srme"}}`` (failures count 2).
    """
    rows = [o.row() for o in outputs if o is not None]
    means: dict[str, Any] = {}
    for model in dict.fromkeys(r["model"] for r in rows):
        means[model] = mean_metrics(r for r in rows if r["model"] == model)
    return rows, means


def _build(spec, store):
    # built whole: the registry's job-level reuse drops what is stored, job by job (κ's own
    # store lookup would only skip whole materials)
    return kappa_campaign_flow(spec.raw, store=None), {}


def _results(spec, store):
    return load_kappa_results(spec.raw, store)


CAMPAIGN_KIND = campaign_kind("kappa", _build, _results)
