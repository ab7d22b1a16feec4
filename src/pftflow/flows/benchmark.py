"""The harmonic benchmark every phonon-producing kind uses, importing no kind: reference phonons of each
material and each model compared with them (:func:`benchmark_flow`), the rows of pairs without a result
(:func:`pair_status`), the phonon results and band plots of a campaign."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jobflow import Flow

from pftflow.flows import jobs
from pftflow.flows.phonons import mlip_phonon_maker, reference_phonon_maker
from pftflow.flows.reuse import campaign_query, latest_outputs, stored_failures, stored_jobs
from pftflow.identity import REFERENCE_MODEL, ResultId, content_key, file_sha
from pftflow.phonons.metrics import summarize
from pftflow.phonons.plotting import plot_band_overlay


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
