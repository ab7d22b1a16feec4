"""The ``finetune_global`` campaign kind (PFT paper): one model fine-tuned on the Hessians of the training
materials (with optional self-distillation and co-training), benchmarked on held-out materials; results and
plots.  What it shares with ``finetune_per_material``: :mod:`pftflow.flows.finetune_campaigns`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from jobflow import Flow

from pftflow.flows.benchmark import benchmark_flow, phonons_band_plots
from pftflow.flows.finetune_campaigns import (
    BASE_MODE,
    GLOBAL,
    _formula,
    _not_done,
    _params_job,
    _stored_training,
    _tag_models,
    _train_summary,
    builtin_crystals,
    cotrain_eval_job,
    global_training_data_job,
    self_distillation_job,
    swapped_crystals,
)
from pftflow.flows.makers import set_resources
from pftflow.flows.reuse import campaign_kind, campaign_query, latest_outputs
from pftflow.flows.training import TrainMaker, _data_sources
from pftflow.identity import ResultId, content_key, file_sha
from pftflow.materials.readers import read_reference
from pftflow.phonons.metrics import summarize
from pftflow.serialization import atoms_to_dict
from pftflow.spec.common import model_species
from pftflow.spec.phonons import ReferenceSpec


def distillation_crystals(spec) -> list:
    """The self-distillation crystals of a global spec (chosen when the flow is built, from the spec alone)."""
    sd = spec.training.data.self_distillation
    if sd.source == "swap":
        cells = [read_reference(m.reference_file, fmt=m.reference_format, material_id=m.id).unitcell for m in spec.role_materials("train")]
        return swapped_crystals(cells, max_crystals=sd.max_crystals, seed=sd.seed)
    supported = model_species(spec.training.base_model)
    formulas = set()
    for m in spec.materials:
        formulas.add(_formula(read_reference(m.reference_file, fmt=m.reference_format, material_id=m.id).unitcell))
    return builtin_crystals(supported, formulas, max_crystals=sd.max_crystals, seed=sd.seed)


def build_global(spec, store) -> tuple[Flow, dict]:
    """Flow of a ``finetune_global`` campaign and what was reused."""
    kind, name, tr = GLOBAL, spec.name, spec.training
    base, base_name, ft_name = tr.base_model.calculator_spec(), tr.base_model.name, tr.export_name
    rid = ResultId(campaign=name, kind=kind, stage="parameters")
    reused: dict[str, list[str]] = {"train": [], "reference": [], "model": []}
    parts: list = [_params_job(spec, kind)]
    train_m, valid_m, test_m = (spec.role_materials(r) for r in ("train", "valid", "test"))
    sources = {
        "train": _data_sources(train_m, phonon=tr.data.phonon_references, displacements=not tr.data.phonon_references),
        "valid": _data_sources(valid_m),
        "cotrain": (_data_sources(train_m, phonon=False, displacements=True) if tr.data.cotrain_displacements else [])
        + [{"type": "extxyz", **x.model_dump()} for x in tr.data.cotrain_extxyz],
    }
    if tr.data.fold_max_atoms is not None:  # only when set, so the content keys of unfolded runs stay as they were
        for split in ("train", "valid"):
            sources[split] = [dict(s, fold_max_atoms=tr.data.fold_max_atoms) if s["type"] == "phonon_reference" else s for s in sources[split]]
    files = sorted({s[k] for split in sources.values() for s in split for k in ("path", "force_sets", "born") if s.get(k)})
    distill_out, distill_key = None, None
    if tr.data.distill:
        sd = tr.data.self_distillation
        crystals = [atoms_to_dict(c) for c in distillation_crystals(spec)]
        if not crystals:
            raise ValueError(f"{name}: training.data.self_distillation: no built-in crystal of elements {base_name} supports outside the campaign's "
                             "compositions; use source: swap, or give cotrain_extxyz")
        dset = sd.model_dump(exclude={"enabled", "source", "max_crystals"})
        distill_key = content_key("self_distillation", base, crystals, dset)
        dj = set_resources(self_distillation_job(base, crystals, dset), "cpu-heavy")
        dj.name = f"self_distillation {name}"
        dj.metadata = rid.with_(model=base_name, stage="self_distillation").metadata(distill_key)
        parts.append(dj)
        distill_out = dj.output
    data_key = content_key("training_data", sources, {f: file_sha(f) for f in files}, distill_key)
    config = tr.config.as_dict()
    train_key = content_key(data_key, "train", base, config, ft_name, tr.run_dir)
    stored = _stored_training(store, train_key)
    if stored is not None:
        reused["train"].append(ft_name)
        ft_calc = stored.calculator_spec
    else:
        dj = set_resources(global_training_data_job(sources["train"], sources["valid"], sources["cotrain"], distill_out), "light")
        dj.name = f"training_data {name}"
        dj.metadata = rid.with_(stage="training_data").metadata(data_key)
        tj = TrainMaker(name=f"train {ft_name}", config=config, run_dir=tr.run_dir, export_name=ft_name, fworker=tr.fworker).make(dj.output, base)
        tj.metadata = {**(tj.metadata or {}), **rid.with_(model=ft_name, stage="train").metadata(train_key)}
        parts += [dj, tj]
        ft_calc = tj.output.calculator_spec
    test_src = _data_sources(test_m, phonon=False, displacements=True)
    ej = set_resources(cotrain_eval_job(base, ft_calc, distill_out, test_src), "cpu-heavy")
    ej.name = f"cotrain_eval {name}"
    ej.metadata = rid.with_(model=ft_name, stage="cotrain_eval").metadata(content_key(train_key, "cotrain_eval", distill_key, test_src,
                                                                                         {s["path"]: file_sha(s["path"]) for s in test_src}))
    parts.append(ej)
    mode = tr.config.finetune.mode
    models = [(base, base_name, base), (ft_calc, ft_name, {"trained": train_key})]
    bparts, more = benchmark_flow(name, kind, ReferenceSpec(mode="import"), test_m, models, spec.settings, store)
    _tag_models(bparts, {base_name: {"mode": BASE_MODE, "n_structures": 0},
                         ft_name: {"mode": mode, "n_structures": len(train_m), "finetune_mode": mode}})
    reused["reference"] += more["reference"]
    reused["model"] += more["model"]
    parts += bparts
    return Flow(parts, name=f"{kind} {name}"), reused


def _baselines(spec) -> dict[str, dict]:
    """Per material id, the published baseline columns of an ``index.csv`` next to the reference files
    (the chalcogenide set's MACE-MP-0b3 BZ / band-path MAE in THz)."""
    import csv

    folder = getattr(spec, "materials_dir", None)
    if folder is None:
        raw = spec.raw if isinstance(getattr(spec, "raw", None), dict) else {}
        mats = raw.get("materials")
        folder = Path(mats) if isinstance(mats, str) and Path(mats).is_dir() else None
    idx = None if folder is None else Path(folder) / "index.csv"
    if idx is None or not idx.is_file():
        return {}
    out = {}
    for r in csv.DictReader(idx.read_text().splitlines()):
        mid = r.get("mp_id") or r.get("material_id") or r.get("id")
        vals = {k: float(v) for k, v in r.items() if k.startswith("mace_mp0b3") and k.endswith("_THz") and v not in (None, "")}
        if mid and vals:
            out[mid] = vals
    return out


#: summary quantities whose relative change (after / before − 1) the global results report
CHANGE_KEYS = ("omega_max_mae_K", "entropy_mae_300K_J_per_K_mol", "free_energy_mae_300K_kJ_per_mol", "heat_capacity_mae_300K_J_per_K_mol", "mesh_mae_THz")

GLOBAL_COLUMNS = [
    ("material_id", "material", "{}"),
    ("model", "model", "{}"),
    ("mode", "mode", "{}"),
    ("omega_max_abs_error_K", "|Δω_max| [K]", "{:.1f}"),
    ("entropy_error_300K_J_per_K_mol", "ΔS300 [J/K/mol]", "{:+.2f}"),
    ("free_energy_error_300K_kJ_per_mol", "ΔF300 [kJ/mol]", "{:+.3f}"),
    ("heat_capacity_error_300K_J_per_K_mol", "ΔCv300 [J/K/mol]", "{:+.3f}"),
    ("mesh_mae_THz", "BZ MAE [THz]", "{:.3f}"),
    ("mace_mp0b3_bz_mae_THz", "MACE-MP-0b3 BZ [THz]", "{:.3f}"),
    ("stable", "stable", "{}"),
    ("stable_ref", "stable ref", "{}"),
    ("status", "status", "{}"),
    ("error", "reason", "{:.60}"),
]


def global_results(spec, store) -> dict:
    """Rows of the test materials (base, fine-tuned) with the MDR metrics and, when the materials' folder
    has an ``index.csv``, the published MACE-MP-0b3 BZ MAE; ``summary`` per model; ``change``: relative change
    of each MAE (after / before − 1); ``train`` (best epoch, epochs run, early stop, validation losses,
    co-training errors before / after); ``cotrain_eval``; ``split``."""
    name = spec.name
    test_ids = list(getattr(spec, "material_ids", []) or [])
    base_line = _baselines(spec)
    rows = []
    for meta, doc in latest_outputs(store, campaign_query(spec, "compare", **{"metadata.kind": GLOBAL}), with_metadata=True):
        if not hasattr(doc, "row"):
            continue
        r = {"material_id": doc.material_id, "model": doc.model, "mode": meta.get("mode") or BASE_MODE, "n_structures": int(meta.get("n_structures") or 0),
             "role": "test"}
        r.update(doc.row())
        r["status"] = "failed" if r.get("failed") else "ok"
        r["strategy"], r["n_train_structures"] = r["mode"], r["n_structures"]
        r.update(base_line.get(doc.material_id, {}))
        rows.append(r)
    rows += [dict(r, role="test") for r in _not_done(spec, store, rows, test_ids)]
    rows.sort(key=lambda r: (test_ids.index(r["material_id"]) if r["material_id"] in test_ids else len(test_ids), r["mode"] != BASE_MODE, r["model"]))
    models = list(dict.fromkeys(r["model"] for r in sorted(rows, key=lambda r: r["mode"] != BASE_MODE)))
    summary = {m: summarize([r for r in rows if r["model"] == m and r.get("status") != "missing"]) for m in models}
    change = {}
    base_name = next((r["model"] for r in rows if r["mode"] == BASE_MODE), None)
    for m in models:
        if m == base_name or base_name is None:
            continue
        change[m] = {k: (summary[m][k] / summary[base_name][k] - 1.0) if summary[m].get(k) is not None and summary[base_name].get(k) else None
                     for k in CHANGE_KEYS}
        vals = [v for v in change[m].values() if v is not None]
        change[m]["mean_change"] = float(np.mean(vals)) if vals else None
    baseline = None
    ids = [r["material_id"] for r in rows if r["mode"] == BASE_MODE]
    if base_line and ids:
        vals = [base_line[i]["mace_mp0b3_bz_mae_THz"] for i in ids if "mace_mp0b3_bz_mae_THz" in base_line.get(i, {})]
        baseline = {"model": "MACE-MP-0b3 (index.csv)", "mesh_mae_THz": float(np.mean(vals)) if vals else None, "n_materials": len(vals)}
    tr = latest_outputs(store, campaign_query(spec, "train", **{"metadata.kind": GLOBAL}), keys=("model",), with_metadata=True)
    ev = latest_outputs(store, campaign_query(spec, "cotrain_eval", **{"metadata.kind": GLOBAL}), keys=("model",), with_metadata=True)
    split = {k: list(v) for k, v in spec.roles.items()} if hasattr(spec, "roles") else None
    return {
        "campaign": name, "kind": GLOBAL, "columns": GLOBAL_COLUMNS, "rows": rows, "summary": summary, "change": change, "baseline": baseline,
        "train": _train_summary(tr[-1][1]) if tr else None, "cotrain_eval": ev[-1][1].model_dump() if ev and hasattr(ev[-1][1], "model_dump") else None,
        "split": split,
    }


def global_plots(spec, store, out_dir) -> list:
    """Band overlays (reference, base, fine-tuned) per test material."""
    return phonons_band_plots(spec, store, out_dir)


#: a training run is reused only while its model file exists: the builder decides
CAMPAIGN_KIND = campaign_kind(GLOBAL, build_global, global_results, global_plots, keep_stages=("train", "scratch_init"))
