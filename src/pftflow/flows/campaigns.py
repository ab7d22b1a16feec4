"""Campaign builders, one per kind: ``build(spec, store) -> (Flow, reused)`` and
``results(spec, store) -> dict``.

A kind is registered in :data:`KINDS`; the runner (:mod:`pftflow.run`), the results
(:mod:`pftflow.results`) and the CLI look it up here and nowhere else.

Reuse: every job carries ``metadata.pftflow_key`` (:func:`pftflow.identity.content_key`, chained
through the jobs of a flow).  Before a flow is returned, a stage whose last job's key already has an
output in the store is taken from the store instead of being run again: the reference phonons of a
material (its analysis job) and a model's comparison with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from jobflow import Flow
from monty.json import MontyDecoder

from pftflow.identity import REFERENCE_MODEL, ResultId, content_key, file_sha


def find_stored(store, key: str):
    """Decoded output (a document) of the latest completed job with ``metadata.pftflow_key == key``
    (None without a store)."""
    if store is None:
        return None
    doc = store.query_one({"metadata.pftflow_key": key}, properties=["uuid"], sort={"completed_at": -1})
    if doc is None:
        return None
    return MontyDecoder().process_decoded(store.get_output(doc["uuid"], which="last", load=True))


def latest_outputs(store, query: dict, keys: tuple[str, ...] = ("material_id", "model")) -> list[Any]:
    """Decoded outputs of the latest job (by completion time) per combination of metadata ``keys``."""
    docs = list(store.query(query, properties=["uuid", "index", "metadata", "completed_at"]))
    latest: dict = {}
    for d in sorted(docs, key=lambda d: (str(d.get("completed_at", "")), d.get("index", 0))):
        latest[tuple(d["metadata"].get(k) for k in keys)] = d
    dec = MontyDecoder()
    return [dec.process_decoded(store.get_output(d["uuid"], which="last", load=True)) for d in latest.values()]


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
    entries; ``models``: ``(calculator spec or OutputReference to one, name, key part)`` — the key
    part stands for the model in the content keys (its calculator spec, or the key of the job that
    trains it); ``settings``: :class:`~pftflow.spec.phonons.BenchmarkSettings`.  A reference or a
    comparison already stored under its key is reused.  Returns the flows to run and
    ``{"reference": [ids], "model": ["id/model"]}`` reused.
    """
    from pftflow.flows import jobs
    from pftflow.flows.phonons import mlip_phonon_maker, reference_phonon_maker

    psettings = settings.phonons.as_dict()
    relax_settings = settings.relax.model_dump()
    relax_models = settings.relax_models
    ref_calc = None if reference.calculator is None else reference.calculator.calculator_spec()
    ref_relax = None if reference.relax is None else reference.relax.model_dump()
    ref_maker = reference_phonon_maker(mode=reference.mode, settings=psettings, calculator=ref_calc, relax_settings=ref_relax)
    rid = ResultId(campaign=campaign, kind=kind, stage="reference")
    parts: list = []
    reused: dict[str, list[str]] = {"reference": [], "model": []}
    for mat in materials:
        entry = _material_input(mat)
        mid = entry["id"]
        ref_key = content_key("reference", reference.model_dump(mode="json"), {k: v for k, v in mat.entry().items() if k != "source"},
                              file_sha(entry.get("reference_file")))
        ref_flow = ref_maker.make(entry, rid, key=ref_key)
        ref_analysis_key = ref_flow.jobs[-1].metadata["pftflow_key"]
        ref_out = find_stored(store, ref_analysis_key)
        if ref_out is not None:
            reused["reference"].append(mid)
        else:
            parts.append(ref_flow)
            ref_out = ref_flow.output
        # the models start from the reference's cell: determined by everything before its analysis
        cell_key = ref_flow.jobs[-2].metadata["pftflow_key"]
        model_material = {"id": mid, "structure": ref_out.structure, "supercell_matrix": ref_out.supercell_matrix, "primitive_matrix": ref_out.primitive_matrix}
        for calc, name, key_part in models:
            maker = mlip_phonon_maker(calc, name, settings=psettings, relax_settings=relax_settings, relax=relax_models, key_part=key_part)
            mflow = maker.make(model_material, rid, key=content_key("model", cell_key, key_part), qpoints_from=ref_out, qpoints_key=ref_analysis_key)
            cmp_ = jobs.compare(ref_out, mflow.output)
            cmp_.name = f"compare {mid} {name}"
            cmp_key = content_key(mflow.jobs[-1].metadata["pftflow_key"], "compare")
            cmp_.metadata = rid.with_(material_id=mid, model=name, stage="compare").metadata(cmp_key)
            if find_stored(store, cmp_key) is not None:
                reused["model"].append(f"{mid}/{name}")
                continue
            parts.append(Flow([mflow, cmp_], output=cmp_.output, name=f"{mid} {name}"))
    return parts, reused


def build_phonons(spec, store) -> tuple[Flow, dict]:
    """Flow of a harmonic benchmark campaign, skipping stages already stored under the same key."""
    from pftflow.flows import jobs

    params = jobs.record_parameters(recorded_spec(spec))
    params.metadata = ResultId(campaign=spec.name, kind="phonons", stage="parameters").metadata()
    models = [(m.calculator_spec(), m.name, m.calculator_spec()) for m in spec.models]
    parts, reused = benchmark_flow(spec.name, "phonons", spec.reference, spec.materials, models, spec.settings, store)
    return Flow([params, *parts], name=f"campaign {spec.name}"), reused


def phonons_results(spec, store) -> dict:
    """Material × model rows (spec order) and the MDR summary per model."""
    from pftflow.phonons.metrics import summarize

    docs = latest_outputs(store, {"metadata.campaign": spec.name, "metadata.stage": "compare"})
    mat_order, mod_order = spec.material_ids, spec.model_names
    # the store may hold materials / models since removed from the spec: report the spec's
    rows = [d.row() for d in docs if d.material_id in mat_order and d.model in mod_order]
    rows.sort(key=lambda r: (mat_order.index(r["material_id"]), mod_order.index(r["model"])))
    summary = {m: summarize([r for r in rows if r["model"] == m]) for m in mod_order if any(r["model"] == m for r in rows)}
    return {"campaign": spec.name, "kind": "phonons", "rows": rows, "summary": summary}


def phonons_band_plots(spec, store, out_dir) -> list:
    """One PNG per material: the reference band structure and each model's, on the same q-path."""
    from pathlib import Path

    from pftflow.phonons.plotting import plot_band_overlay

    analyses = [a for a in latest_outputs(store, {"metadata.campaign": spec.name, "metadata.stage": "analysis"}) if not a.failed]
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

    return kappa_campaign_flow(spec.raw, store=store), {}


def _kappa_results(spec, store):
    from pftflow.flows.kappa import load_kappa_results

    return load_kappa_results(spec.raw, store)


def _build_finetune(spec, store):
    from pftflow.flows.training import build_finetune

    return build_finetune(spec, store)


def _finetune_results(spec, store):
    from pftflow.flows.training import load_finetune_results

    return load_finetune_results(spec.raw, store)


KINDS: dict[str, CampaignKind] = {
    "phonons": CampaignKind(build_phonons, phonons_results, phonons_band_plots),
    "kappa": CampaignKind(_build_kappa, _kappa_results),
    "finetune": CampaignKind(_build_finetune, _finetune_results),
}
