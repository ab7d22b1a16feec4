"""The ``finetune_per_material`` campaign kind (Equitrain protocol): per material, a labelled set, fine-tuned
models per mode × N, their phonon benchmark against the labeller's reference and mode scans; results and plots.
What it shares with ``finetune_global``: :mod:`pftflow.flows.finetune_campaigns`; docs/finetuning-campaigns.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jobflow import Flow

from pftflow.flows.benchmark import benchmark_flow
from pftflow.flows.dataset import DatasetMaker, SamplingMaker
from pftflow.flows.finetune_campaigns import (
    BASE_MODE,
    PER_MATERIAL,
    SCRATCH,
    _Cell,
    _Structure,
    ModeScansDoc,
    ScratchModelDoc,
    _make_train,
    _material_cell,
    _not_done,
    _params_job,
    _stored_training,
    _tag_models,
    _train_summary,
    mode_scans_job,
    per_material_data_job,
    scratch_model_job,
)
from pftflow.flows.makers import ForceMaker, RelaxMaker, set_resources
from pftflow.flows.reuse import campaign_kind, campaign_query, find_stored, latest_outputs
from pftflow.flows.training import TrainMaker
from pftflow.identity import REFERENCE_MODEL, ResultId, content_key
from pftflow.phonons.metrics import summarize
from pftflow.phonons.modes import plot_mode_scans
from pftflow.phonons.plotting import plot_band_overlay, plot_error_vs_n
from pftflow.serialization import atoms_to_dict
from pftflow.spec.phonons import ReferenceSpec


def build_per_material(spec, store) -> tuple[Flow, dict]:
    """Flow of a ``finetune_per_material`` campaign and what was reused (``train``: fine-tuned models whose
    stored run and model file exist; ``reference`` / ``model`` from the benchmark)."""
    kind, name, tr = PER_MATERIAL, spec.name, spec.training
    labeller = spec.labeller.calculator_spec()
    base = tr.base_model.calculator_spec()
    base_name = tr.base_model.name
    rid = ResultId(campaign=name, kind=kind, stage="parameters")
    reused: dict[str, list[str]] = {"train": [], "reference": [], "model": []}
    parts: list = [_params_job(spec, kind)]

    # the scratch baseline's starting model: one per campaign
    scratch_calc, scratch_key = None, None
    if any(m.mode == SCRATCH for m in tr.modes):
        scratch_key = content_key("scratch_init", base, tr.scratch_seed)
        stored = find_stored(store, scratch_key)
        if isinstance(stored, ScratchModelDoc) and Path(stored.path).is_file():
            scratch_calc = stored.calculator_spec
        else:
            suffix = ".model" if base["backend"] == "mace" else ".pth"
            path = str(Path(tr.run_dir).expanduser().resolve() / f"{base_name}-scratch-{scratch_key[:12]}{suffix}")
            sj = set_resources(scratch_model_job(base, tr.scratch_seed, path, f"{base_name}-scratch"), "light")
            sj.name = f"scratch_init {base_name}"
            sj.metadata = rid.with_(model=f"{base_name}-scratch", stage="scratch_init").metadata(scratch_key)
            parts.append(sj)
            scratch_calc = sj.output.calculator_spec

    reference = ReferenceSpec(mode="compute", calculator=spec.labeller.model_dump(exclude_none=True))
    n_total = tr.n_labelled
    for mat in spec.materials:
        mid = mat.id
        atoms, smat, pmat = _material_cell(mat)
        key_structure: Any = atoms_to_dict(atoms)
        structure: Any = atoms
        if spec.reference.relax is not None:
            relax_settings = spec.reference.relax.model_dump()
            rkey = content_key("reference", "relax", labeller, key_structure, relax_settings)
            rj = RelaxMaker(calculator=labeller, settings=relax_settings).make(atoms)
            rj.name = f"relax {mid} {REFERENCE_MODEL}"
            rj.metadata = rid.with_(material_id=mid, model=REFERENCE_MODEL, stage="relax").metadata(rkey)
            parts.append(rj)
            structure, key_structure = rj.output.structure, {"relaxed_by": spec.labeller.name, "key": rkey}
        # labelled structures: max N + n_valid rattled supercells of the (relaxed) cell, by the labeller
        cell_key = content_key(kind, "cell", key_structure, smat)
        dmaker = DatasetMaker(
            labeller=spec.labeller.name,
            sampling_maker=SamplingMaker(settings=spec.sampling.settings_for(n_total), relax_calculator=(spec.sampling.relax_calculator.calculator_spec()
                                         if spec.sampling.relax_calculator is not None else labeller) if spec.sampling.kind == "rattle_relax" else None),
            force_maker=ForceMaker(calculator=labeller),
        )
        dflow = dmaker.make({"id": mid, "structure": structure, "supercell_matrix": smat}, rid, key=cell_key)
        parts.append(dflow)
        lab_key = dflow.jobs[-1].metadata["pftflow_key"]

        models: list[tuple] = [(base, base_name, base)]
        tags: dict[str, dict] = {base_name: {"mode": BASE_MODE, "n_structures": 0}}
        for n in tr.n_structures:
            data_key = content_key(lab_key, "training_data", n, tr.valid.n_valid, tr.valid.seed, base)
            data_job = set_resources(per_material_data_job(dflow.output, n, tr.valid.n_valid, tr.valid.seed, base), "light")
            data_job.name = f"training_data {mid} N{n}"
            data_job.metadata = rid.with_(material_id=mid, stage="training_data").metadata(data_key, n_structures=n)
            data_used = False
            for m in tr.modes:
                mname = tr.model_name(m, n)
                cfg = tr.mode_config(m)
                start, start_key = (scratch_calc, {"scratch": scratch_key}) if m.mode == SCRATCH else (base, base)
                train_key = content_key(data_key, "train", start_key, cfg, mname, tr.run_dir)
                stored = _stored_training(store, train_key)
                if stored is not None:
                    reused["train"].append(f"{mid}/{mname}")
                    calc = stored.calculator_spec
                else:
                    maker = TrainMaker(name=f"train {mid} {mname}", config=cfg, run_dir=tr.run_dir, export_name=mname, fworker=tr.fworker,
                                       evaluate_cotrain=False)
                    tj = _make_train(maker, data_job.output, start)
                    tj.metadata = {**(tj.metadata or {}), **rid.with_(material_id=mid, model=mname, stage="train").metadata(train_key)}
                    parts.append(tj)
                    data_used = True
                    calc = tj.output.calculator_spec
                models.append((calc, mname, {"trained": train_key}))
                tags[mname] = {"mode": m.name, "n_structures": n, "finetune_mode": m.mode}
            if data_used:
                parts.append(data_job)
        material = _Cell(mid, _Structure(structure), {"id": mid, "structure": key_structure, "supercell_matrix": smat,
                                                      **({"primitive_matrix": pmat} if pmat is not None else {})})
        bparts, more = benchmark_flow(name, kind, reference, [material], models, spec.settings, store)
        _tag_models(bparts, tags)
        reused["reference"] += more["reference"]
        reused["model"] += more["model"]
        parts += bparts
        if spec.mode_scans.enabled:
            ref_flow, model_flows = bparts[0], bparts[1:]
            analyses = {mname: mf.jobs[0].output for (_, mname, _), mf in zip(models, model_flows)}
            calcs = {REFERENCE_MODEL: labeller, **{mname: calc for calc, mname, _ in models}}
            scan_settings = spec.mode_scans.model_dump(exclude={"enabled"})
            keys = [ref_flow.jobs[-1].metadata["pftflow_key"]] + [mf.jobs[0].jobs[-1].metadata["pftflow_key"] for mf in model_flows]
            scan_key = content_key("mode_scans", keys, labeller, [k for _, _, k in models], scan_settings)
            sj = set_resources(mode_scans_job(mid, ref_flow.output, analyses, calcs, scan_settings), "cpu-heavy")
            sj.name = f"mode_scans {mid}"
            sj.metadata = rid.with_(material_id=mid, stage="mode_scans").metadata(scan_key)
            parts.append(sj)
    return Flow(parts, name=f"{kind} {name}"), reused


def _raw_names(spec) -> tuple[list[str], list[str]]:
    """(mode names, material ids) in spec order, from the spec's raw dict (no validation: the results of a
    stored campaign read it too)."""
    raw = spec.raw if isinstance(getattr(spec, "raw", None), dict) else {}
    modes = []
    for m in (raw.get("training") or {}).get("modes") or []:
        m = {"mode": m} if isinstance(m, str) else dict(m)
        modes.append(m.get("name") or (f"lora-r{m['lora_rank']}" if m.get("mode") == "lora" and m.get("lora_rank") else m.get("mode")))
    return modes, list(getattr(spec, "material_ids", []) or [])


#: columns of ``pftflow results`` for the per-material kind
PER_MATERIAL_COLUMNS = [
    ("material_id", "material", "{}"),
    ("mode", "mode", "{}"),
    ("n_structures", "N", "{}"),
    ("model", "model", "{}"),
    ("omega_max_abs_error_K", "|Δω_max| [K]", "{:.1f}"),
    ("entropy_error_300K_J_per_K_mol", "ΔS300 [J/K/mol]", "{:+.2f}"),
    ("free_energy_error_300K_kJ_per_mol", "ΔF300 [kJ/mol]", "{:+.3f}"),
    ("heat_capacity_error_300K_J_per_K_mol", "ΔCv300 [J/K/mol]", "{:+.3f}"),
    ("mesh_mae_THz", "BZ MAE [THz]", "{:.3f}"),
    ("mesh_mae_reduction", "BZ MAE red.", "{:+.0%}"),
    ("stable", "stable", "{}"),
    ("stable_ref", "stable ref", "{}"),
    ("status", "status", "{}"),
    ("error", "reason", "{:.60}"),
]


def per_material_results(spec, store) -> dict:
    """Rows per material × model (base, then mode × N in spec order) with the MDR metrics, ``mode``,
    ``n_structures`` (0 for the base model) and the change against the base model on the same material
    (``mesh_mae_THz_base``, ``mesh_mae_reduction`` = 1 − after / before); ``summary`` per model (MDR MAEs over
    materials); ``error_vs_n`` points (mode, N, mean errors over materials; the base model at N = 0 in every
    mode but scratch); ``train`` per material and model; ``mode_scans`` per material; ``reference_protocol``."""
    name = spec.name
    mode_order, mat_order = _raw_names(spec)
    cmp_ = latest_outputs(store, campaign_query(spec, "compare", **{"metadata.kind": PER_MATERIAL}), with_metadata=True)
    rows = []
    for meta, doc in cmp_:
        if not hasattr(doc, "row"):
            continue
        mode = meta.get("mode") or BASE_MODE
        r = {"material_id": doc.material_id, "model": doc.model, "mode": mode, "n_structures": int(meta.get("n_structures") or 0),
             "finetune_mode": meta.get("finetune_mode", BASE_MODE if mode == BASE_MODE else None)}
        r.update(doc.row())
        r["status"] = "failed" if r.get("failed") else "ok"
        r["strategy"], r["n_train_structures"] = r["mode"], r["n_structures"]
        rows.append(r)
    rows += _not_done(spec, store, rows, mat_order)
    base = {r["material_id"]: r for r in rows if r["mode"] == BASE_MODE}
    for r in rows:
        b = base.get(r["material_id"])
        for key in ("mesh_mae_THz", "omega_max_abs_error_K", "entropy_abs_error_300K_J_per_K_mol"):
            bv, v = (b or {}).get(key), r.get(key)
            r[f"{key}_base"] = bv
            if key == "mesh_mae_THz":
                r["mesh_mae_reduction"] = (1.0 - v / bv) if (v is not None and bv not in (None, 0)) else None

    def order(r):
        m = r["mode"]
        mi = -1 if m == BASE_MODE else (mode_order.index(m) if m in mode_order else len(mode_order))
        return (mat_order.index(r["material_id"]) if r["material_id"] in mat_order else len(mat_order), mi, r["n_structures"], r["model"])

    rows.sort(key=order)
    summary: dict[str, dict] = {}
    for r in (r for r in rows if r.get("status") != "missing"):
        summary.setdefault(r["model"], {"mode": r["mode"], "n_structures": r["n_structures"], "_rows": []})["_rows"].append(r)
    for model, s in summary.items():
        s.update(summarize(s.pop("_rows")))
    points = []
    for model, s in summary.items():
        if s["mode"] == BASE_MODE:
            continue
        points.append({"series": s["mode"], "n": s["n_structures"], "model": model, "mesh_mae_THz": s.get("mesh_mae_THz"),
                       "omega_max_mae_K": s.get("omega_max_mae_K"), "entropy_mae_300K_J_per_K_mol": s.get("entropy_mae_300K_J_per_K_mol")})
    base_s = next((s for s in summary.values() if s["mode"] == BASE_MODE), None)
    scratch = {r["mode"] for r in rows if r.get("finetune_mode") == SCRATCH}  # N = 0 of scratch is no trained model at all
    if base_s is not None:
        for series in (s for s in dict.fromkeys(p["series"] for p in points) if s not in scratch):
            points.append({"series": series, "n": 0, "model": "base", "mesh_mae_THz": base_s.get("mesh_mae_THz"),
                           "omega_max_mae_K": base_s.get("omega_max_mae_K"), "entropy_mae_300K_J_per_K_mol": base_s.get("entropy_mae_300K_J_per_K_mol")})
    points.sort(key=lambda p: (mode_order.index(p["series"]) if p["series"] in mode_order else len(mode_order), p["n"]))
    train = {f"{m.get('material_id')}/{m.get('model')}": _train_summary(d)
             for m, d in latest_outputs(store, campaign_query(spec, "train", **{"metadata.kind": PER_MATERIAL}), with_metadata=True)}
    scans = {}
    for meta, d in latest_outputs(store, campaign_query(spec, "mode_scans", **{"metadata.kind": PER_MATERIAL}), keys=("material_id",), with_metadata=True):
        if isinstance(d, ModeScansDoc):
            scans[d.material_id] = {"imaginary": d.imaginary, "note": d.note, "curves": [row for s in d.scans for row in s.summary()]}
    raw = spec.raw if isinstance(getattr(spec, "raw", None), dict) else {}
    protocol = getattr(spec, "reference_protocol", None) or _protocol_of(raw)
    return {"campaign": name, "kind": PER_MATERIAL, "columns": PER_MATERIAL_COLUMNS, "reference_protocol": protocol, "rows": rows,
            "summary": summary, "error_vs_n": points, "train": train, "mode_scans": scans}


def _protocol_of(raw: dict) -> str:
    relaxed = (raw.get("reference") or {}).get("relax", {}) is not None
    models = ((raw.get("settings") or {}).get("relax_models", True))
    return ("reference relaxed with its own calculator (the labeller)" if relaxed else "reference on the cell as given") + "; " + (
        "models relaxed with their own calculator first (MDR)" if models else "models evaluated on the reference cell")


def per_material_plots(spec, store, out_dir) -> list:
    """PNGs: per material the band overlay of the reference, the base model and the largest-N model of every
    mode; the error-vs-N curves per mode (BZ MAE, |Δω_max|; mean over materials); the mode scans."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    res = per_material_results(spec, store)
    paths = []
    largest: dict[str, tuple[int, str]] = {}
    for r in res["rows"]:
        if r["mode"] != BASE_MODE and r["n_structures"] >= largest.get(r["mode"], (-1, ""))[0]:
            largest[r["mode"]] = (r["n_structures"], r["model"])
    keep = {r["model"] for r in res["rows"] if r["mode"] == BASE_MODE} | {m for _, m in largest.values()}
    analyses = [a for a in latest_outputs(store, campaign_query(spec, "analysis")) if not a.failed]
    for mid in dict.fromkeys(r["material_id"] for r in res["rows"]):
        ref = [a for a in analyses if a.material_id == mid and a.model == REFERENCE_MODEL]
        models = {a.model: a.result for a in analyses if a.material_id == mid and a.model in keep}
        if ref:
            paths.append(plot_band_overlay(ref[-1].result, models, out_dir / f"{mid}_bands.png", title=f"{mid}: reference ({spec.name}) vs base and fine-tuned"))
    pts = [p for p in res["error_vs_n"] if p.get("mesh_mae_THz") is not None]
    if len({p["n"] for p in pts}) >= 2:
        paths.append(plot_error_vs_n(pts, out_dir / "error_vs_n.png", [("mesh_mae_THz", "BZ MAE (THz)"), ("omega_max_mae_K", "|Δω_max| MAE (K)")],
                                     title=f"{spec.name}: error vs number of structures"))
    for meta, d in latest_outputs(store, campaign_query(spec, "mode_scans", **{"metadata.kind": PER_MATERIAL}), keys=("material_id",), with_metadata=True):
        if isinstance(d, ModeScansDoc) and d.scans:
            paths.append(plot_mode_scans(d.scans, out_dir / f"{d.material_id}_mode_scans.png", title=f"{d.material_id}: energy along imaginary modes"))
    return paths


#: a training run (and the scratch model) is reused only while its model file exists: the builder decides
CAMPAIGN_KIND = campaign_kind(PER_MATERIAL, build_per_material, per_material_results, per_material_plots, keep_stages=("train", "scratch_init"))
