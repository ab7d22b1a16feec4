"""jobflow wrappers of the fine-tuning engine (:mod:`pftflow.training`): thin jobs, pure science underneath.

* :func:`training_data_job` - builds labelled structures from reference files / extxyz into the store (Hessians
  and forces go to the additional ``data`` store).
* :class:`TrainMaker` - ``make(train_data, base_model_spec) -> Job``: fine-tune, export, return
  ``exported_model_path`` and ``calculator_spec`` (a dict :func:`pftflow.calculators.get_calculator` takes).
  The job carries a resource tag: ``job.config.manager_config = {"_fworker": "gpu"}`` (FireWorks routes it to a
  worker whose ``name``/``category`` is ``gpu`` when the flow is submitted with ``flow_to_workflow``) and
  ``metadata["resources"] = "gpu"``.  Set ``TrainMaker(fworker=None)`` to run it on any worker.
* :func:`pft_campaign_flow` - campaign ``kind: finetune``: training data -> train -> harmonic benchmark of the
  base and the fine-tuned model on held-out materials (``benchmark_flow_fn``).  Spec: docs/training.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from jobflow import Flow, Job, Maker, job

from pftflow.flows.common import import_material, latest_by, stage_key, tag_jobs
from pftflow.training.data import LARGE_KEYS

DEFAULT_RUN_DIR = "pft_runs"


def _materials_data_spec(materials: list[dict], *, phonon: bool = True, displacements: bool = False) -> list[dict]:
    out = []
    for m in materials:
        path = m["reference_file"] if isinstance(m, dict) else m
        if phonon:
            out.append({"type": "phonon_reference", "path": path, "material_id": m.get("id") if isinstance(m, dict) else None})
        if displacements:
            out.append({"type": "displacements", "path": path, "material_id": m.get("id") if isinstance(m, dict) else None})
    return out


def build_structures(sources: list[dict]):
    """Labelled structures from source entries ``{"type": phonon_reference|displacements|extxyz|rattled, "path": ...}``."""
    from pftflow.training import data as D

    out = []
    for src in sources or []:
        src = dict(src)
        kind, path = src.pop("type"), src.pop("path")
        mid = src.pop("material_id", None)
        if kind == "phonon_reference":
            out += D.from_phonon_reference(path, material_id=mid)
        elif kind == "displacements":
            out += D.from_displacements(path, material_id=mid)
        elif kind == "extxyz":
            out += D.read_extxyz(path, **src)
        elif kind == "rattled":
            from ase.io import read

            out += D.from_labelled_atoms(read(str(path), index=":"), material_id=mid or "", **src)
        else:
            raise ValueError(f"unknown training-data source type {kind!r}")
    return out


@job(data=LARGE_KEYS)
def training_data_job(train: list[dict], valid: list[dict] | None = None, cotrain: list[dict] | None = None) -> dict:
    """Build train / valid / co-training structures (each a list of source entries) into the store."""
    from pftflow.training.data import TrainingData, structures_to_dicts

    td = TrainingData(build_structures(train), build_structures(valid or []), build_structures(cotrain or []))
    return {
        "train": structures_to_dicts(td.train),
        "valid": structures_to_dicts(td.valid),
        "cotrain": structures_to_dicts(td.cotrain),
        "data_hash": td.data_hash(),
        "counts": {"train": len(td.train), "valid": len(td.valid), "cotrain": len(td.cotrain)},
    }


def _as_training_data(train_data):
    from pftflow.training.data import TrainingData, structures_from_dicts

    if isinstance(train_data, dict) and "train" in train_data and train_data["train"] and isinstance(train_data["train"][0], dict) and "atoms" in train_data["train"][0]:
        return TrainingData(
            structures_from_dicts(train_data["train"]),
            structures_from_dicts(train_data.get("valid") or []),
            structures_from_dicts(train_data.get("cotrain") or []),
        )
    return TrainingData(
        build_structures(train_data.get("train", [])),
        build_structures(train_data.get("valid", [])),
        build_structures(train_data.get("cotrain", [])),
    )


@job
def train_job(
    train_data: dict,
    base_model: dict,
    config: dict,
    run_dir: str,
    export_name: str,
    evaluate_cotrain: bool = True,
) -> dict:
    """Fine-tune ``base_model`` on ``train_data`` and export it.  Re-running after a kill resumes from the last
    epoch (the work directory is a hash of data, base model and config under ``run_dir``)."""
    from pftflow.training.evaluate import force_errors
    from pftflow.training.export import export_model
    from pftflow.training.models import load_energy_model
    from pftflow.training.trainer import TrainConfig, train

    data = _as_training_data(train_data)
    cfg = TrainConfig(**config)
    data_hash = data.data_hash()
    workdir = Path(run_dir).expanduser().resolve() / f"{export_name}-{stage_key(data_hash, base_model, cfg.as_dict())[:12]}"
    model = load_energy_model(base_model, dtype=cfg.dtype, device=cfg.device)
    before = force_errors(model, data.cotrain) if evaluate_cotrain and data.cotrain else None
    model, result = train(model, data, cfg, workdir)
    suffix = ".model" if model.backend == "mace" else ".pth"
    exported = export_model(
        model,
        workdir / f"{export_name}{suffix}",
        data_hash=data_hash,
        hyperparameters=cfg.as_dict(),
        name=export_name,
        extra={"train_result": {"best_epoch": result.best_epoch, "best_valid_loss": result.best_valid_loss}},
    )
    after = force_errors(model, data.cotrain) if evaluate_cotrain and data.cotrain else None
    return {
        "exported_model_path": exported["path"],
        "calculator_spec": exported["calculator_spec"],
        "provenance": exported["provenance"],
        "data_hash": data_hash,
        "finetune_report": result.finetune_report,
        "history": result.history,
        "best_epoch": result.best_epoch,
        "best_valid_loss": result.best_valid_loss,
        "wall_time_s": result.wall_time_s,
        "resumed_from_epoch": result.resumed_from_epoch,
        "cotrain_errors": {"before": before, "after": after},
        "workdir": str(workdir),
    }


@dataclass
class TrainMaker(Maker):
    """Fine-tune a model: ``make(train_data, base_model_spec) -> Job``.

    ``train_data``: the output of :func:`training_data_job` (or an OutputReference to it), or a dict
    ``{"train": [sources], "valid": [...], "cotrain": [...]}`` of source entries.  ``base_model_spec``: a
    calculator spec (``{"backend": "sevennet", "model": "7net-0"}`` or ``{"backend": "mace", "model": path}``).
    ``config``: :class:`pftflow.training.TrainConfig` fields (incl. ``finetune`` mode).  ``fworker``: FireWorks
    worker tag for the job (``None`` = any worker).
    """

    name: str = "pft train"
    config: dict = field(default_factory=dict)
    run_dir: str = DEFAULT_RUN_DIR
    export_name: str = "pft-finetuned"
    fworker: str | None = "gpu"
    evaluate_cotrain: bool = True

    def make(self, train_data, base_model_spec: dict) -> Job:
        j = train_job(train_data, dict(base_model_spec), dict(self.config), self.run_dir, self.export_name, self.evaluate_cotrain)
        j.name = self.name
        if self.fworker:
            j.update_config({"manager_config": {"_fworker": self.fworker}})
            j.metadata = {**(j.metadata or {}), "resources": self.fworker}
        return j


# ------------------------------------------------------------------------------------ campaign
def default_benchmark_flow(materials: list[dict], calculator, model_name: str, settings: dict | None = None) -> Flow:
    """Harmonic benchmark (pftflow.flows.phonons) of one model on ``materials`` (``id`` + ``reference_file``)."""
    from pftflow.flows.phonons import MLIPPhononMaker, ReferencePhononMaker
    from pftflow.phonons.harmonic import PhononSettings

    settings = settings or {}
    ps = PhononSettings(**(settings.get("phonons") or {}))
    ref_maker = ReferencePhononMaker(mode="import", settings=ps)
    mlip = MLIPPhononMaker(relax_settings=settings.get("relax") or {}, settings=ps, relax=settings.get("relax_models", True))
    parts = []
    for m in materials:
        rf = ref_maker.make(m)
        mf = mlip.make(rf.output, calculator, m["id"], model_name)
        for j in mf.jobs:
            j.metadata = {**(j.metadata or {}), "material_id": m["id"], "model": model_name, "stage": "model"}
        mf.jobs[-1].metadata["stage"] = "compare"
        parts += [rf, mf]
    return Flow(parts, name=f"benchmark {model_name}")


def pft_campaign_flow(
    spec: dict,
    benchmark_flow_fn: Callable[[list[dict], Any], Flow] | None = None,
    store=None,
) -> Flow:
    """Campaign ``kind: finetune``: data -> train -> benchmark base and fine-tuned model on ``test_materials``.

    ``benchmark_flow_fn(materials, calculator_spec_or_OutputReference)`` builds the benchmark flow of one model;
    default: :func:`default_benchmark_flow`.  ``store`` is accepted for the campaign runner (unused: the training
    job resumes by itself from its work directory).
    """
    tr = dict(spec.get("training") or {})
    name = spec.get("name", "finetune")
    base = tr.get("base_model") or {"backend": "sevennet", "model": "7net-0", "name": "SevenNet-0"}
    base_name = base.get("name") or base.get("model")
    ft_name = tr.get("export_name") or f"{base_name}-pft"
    train_mats = [import_material(m) for m in spec.get("train_materials") or []]
    test_mats = [import_material(m) for m in spec.get("test_materials") or []]
    if not train_mats:
        raise ValueError("finetune campaign needs 'train_materials' (reference_file paths)")
    dsrc = tr.get("data") or {}
    sources = {
        "train": _materials_data_spec(train_mats, phonon=dsrc.get("phonon_references", True), displacements=dsrc.get("displacements_in_train", False)),
        "valid": _materials_data_spec([import_material(m) for m in tr.get("valid_materials") or []]),
        "cotrain": (_materials_data_spec(train_mats, phonon=False, displacements=True) if dsrc.get("cotrain_displacements", True) else [])
        + [{"type": "extxyz", "path": p} if isinstance(p, str) else {"type": "extxyz", **p} for p in dsrc.get("cotrain_extxyz") or []],
    }
    meta = {"campaign": name}
    data_job = training_data_job(sources["train"], sources["valid"], sources["cotrain"])
    data_job.name = "training data"
    data_job.metadata = {**meta, "stage": "training_data"}
    maker = TrainMaker(config=tr.get("config") or {}, run_dir=tr.get("run_dir", DEFAULT_RUN_DIR), export_name=ft_name, fworker=tr.get("fworker", "gpu"))
    tj = maker.make(data_job.output, base)
    tj.metadata = {**(tj.metadata or {}), **meta, "stage": "train"}
    parts: list = [data_job, tj]
    bench = benchmark_flow_fn or (lambda mats, calc, model_name: default_benchmark_flow(mats, calc, model_name, spec.get("settings")))
    if test_mats:
        for calc, mname in ((base, base_name), (tj.output["calculator_spec"], ft_name)):
            try:
                f = bench(test_mats, calc, mname)
            except TypeError:  # a benchmark_flow_fn(materials, calculator) without the model name
                f = bench(test_mats, calc)
            for j in f.jobs if isinstance(f, Flow) else [f]:
                tag_jobs(j, {**meta, "model": mname}, overwrite=False)
            parts.append(f)
    return Flow(parts, output={"train": tj.output}, name=f"finetune {name}")


def load_finetune_results(spec: dict, store) -> dict:
    """Training summary and the benchmark rows (base vs fine-tuned) of a finetune campaign from the store."""
    name = spec.get("name", "finetune")
    tdoc = store.query_one({"metadata.campaign": name, "metadata.stage": "train"}, properties=["uuid"], sort={"completed_at": -1})
    train = store.get_output(tdoc["uuid"], which="last", load=True) if tdoc else None
    docs = list(store.query({"metadata.campaign": name, "metadata.stage": "compare"}, properties=["uuid", "index", "metadata", "completed_at"]))
    rows = [store.get_output(d["uuid"], which="last", load=True) for d in latest_by(docs)]
    summary = {}
    try:
        from pftflow.phonons.metrics import summarize

        for mname in sorted({r.get("model") for r in rows if isinstance(r, dict)}):
            summary[mname] = summarize([r for r in rows if r.get("model") == mname])
    except Exception:  # noqa: BLE001 - benchmark rows of a custom benchmark_flow_fn
        pass
    train_summary = None
    if train:
        train_summary = {k: train.get(k) for k in ("exported_model_path", "calculator_spec", "data_hash", "finetune_report", "best_epoch", "best_valid_loss", "wall_time_s", "cotrain_errors")}
    return {"campaign": name, "kind": "finetune", "train": train_summary, "rows": rows, "summary": summary}
