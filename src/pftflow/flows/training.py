"""jobflow wrappers of the fine-tuning engine (:mod:`pftflow.training`): thin jobs returning typed documents.

* :func:`training_data_job` - labelled structures from reference files / extxyz, as a
  :class:`TrainingDataDoc` (Hessians and forces travel as array blobs to the additional ``data`` store).
* :class:`TrainMaker` - ``make(train_data, base_model_spec) -> Job``: fine-tune, export, return a
  :class:`TrainingRunDoc` (exported model path, ``calculator_spec`` for
  :func:`pftflow.calculators.get_calculator`, provenance, history, co-training force errors before / after).
  The job carries the resource category ``gpu``: ``job.config.manager_config["_category"] = "gpu"`` (only a
  FireWorker whose ``category`` includes ``gpu``, or names none, pulls it; docs/fireworks.md) and
  ``metadata["resources"] = "gpu"``; ``fworker`` (default ``gpu``) also pins it to a FireWorker of that
  ``name`` (``_fworker``), as before.  ``TrainMaker(fworker=None)`` lets any ``gpu`` worker run it.  Re-running it
  after a kill resumes from the last finished epoch (work directory keyed by data, base model and config).
* :func:`pft_campaign_flow` - campaign ``kind: finetune``: training data -> train -> harmonic benchmark of the
  base and the fine-tuned model on held-out materials, built from :mod:`pftflow.flows.phonons`
  (``reference_phonon_maker(mode="import")``, ``mlip_phonon_maker``, ``jobs.compare``) and tagged with
  :class:`~pftflow.identity.ResultId` exactly as the phonons campaign
  (:func:`pftflow.flows.phonons_campaign.build_phonons`).  Spec: docs/training.md.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from jobflow import Flow, Job, Maker, job
from monty.json import MontyDecoder
from pydantic import Field

from pftflow.calculators.energy_models import load_energy_model
from pftflow.flows import jobs
from pftflow.flows.benchmark import benchmark_flow as harmonic_benchmark
from pftflow.flows.makers import set_resources
from pftflow.flows.reuse import campaign_kind, find_stored, recorded_spec
from pftflow.identity import ResultId, content_key, file_sha, material_id_from_path, model_name
from pftflow.materials.readers import read_reference
from pftflow.phonons.metrics import summarize
from pftflow.serialization import ArrayBlob, Document
from pftflow.spec.finetune import DEFAULT_BASE_MODEL, FinetuneSpec
from pftflow.spec.load import parse_spec
from pftflow.spec.phonons import ReferenceSpec
from pftflow.training import data as D
from pftflow.training.data import LabelledStructure, TrainingData
from pftflow.training.evaluate import force_errors
from pftflow.training.export import export_model
from pftflow.training.trainer import TrainConfig, train

DEFAULT_RUN_DIR = "pft_runs"
KIND = "finetune"


# ------------------------------------------------------------------------------------ documents
class TrainingDataDoc(Document):
    """Train / validation / co-training structures built from source entries (each structure's arrays are
    blobs in the additional ``data`` store)."""

    train: list[LabelledStructure] = Field(description="phonon (Hessian) and other training structures")
    valid: list[LabelledStructure] = Field(default_factory=list, description="validation structures (empty: validate on train)")
    cotrain: list[LabelledStructure] = Field(default_factory=list, description="upstream E/F/σ co-training structures")
    data_hash: str = Field(description="SHA-256 of all structures and targets (training.data.dataset_hash)")
    counts: dict[str, int] = Field(description="number of structures per split")
    sources: dict[str, list[dict]] = Field(default_factory=dict, description="the source entries per split")

    @classmethod
    def of(cls, data: TrainingData, sources: dict | None = None) -> "TrainingDataDoc":
        return cls(train=data.train, valid=data.valid, cotrain=data.cotrain, data_hash=data.data_hash(), counts=data.counts(), sources=sources or {})

    def training_data(self) -> TrainingData:
        """The structures as the trainer takes them."""
        return TrainingData(self.train, self.valid, self.cotrain)


class ForceErrors(Document):
    """Errors of a model on labelled structures (:func:`pftflow.training.evaluate.force_errors`)."""

    energy_mae_eV_per_atom: float | None = Field(None, description="energy MAE (eV/atom) over structures with an energy")
    force_mae_eV_per_A: float | None = Field(None, description="force MAE per component (eV/Å)")
    n_structures: int = Field(0, description="structures evaluated")

    @classmethod
    def of(cls, d: dict | None) -> "ForceErrors | None":
        return None if d is None else cls(**{k: d.get(k) for k in cls.model_fields if k in d})


class CotrainErrors(Document):
    """Force / energy errors on the co-training set before and after fine-tuning (None: not evaluated)."""

    before: ForceErrors | None = Field(None, description="base model")
    after: ForceErrors | None = Field(None, description="fine-tuned model (best EMA weights)")


class TrainingRunDoc(Document):
    """A fine-tuning run: the exported model and how it was made."""

    model: str = Field(description="name of the fine-tuned model (results use it)")
    exported_model_path: str = Field(description="the exported model file")
    calculator_spec: dict[str, Any] = Field(description="calculator spec of the exported model (get_calculator)")
    base_model: dict[str, Any] = Field(description="calculator spec of the base model")
    provenance: dict[str, Any] = Field(description="base-model sha256, data hash, hyperparameters, code versions")
    data_hash: str = Field(description="SHA-256 of the training data")
    counts: dict[str, int] = Field(default_factory=dict, description="structures per split")
    config: dict[str, Any] = Field(description="TrainConfig used")
    finetune_report: dict[str, Any] = Field(default_factory=dict, description="fine-tuning mode and trainable-parameter counts")
    history: list[dict[str, Any]] = Field(default_factory=list, description="per epoch: lr, mean train and valid loss parts")
    best_epoch: int = Field(description="epoch of the best validation loss (-1: no epoch run)")
    best_valid_loss: float | None = Field(None, description="best validation loss, or with selection hessian the best validation Hessian-column "
                                          "error in eV/Å² (None: no epoch run)")
    selection: str = Field("loss", description="validation quantity that picked best_epoch: loss | hessian_mae_eV_per_A2 (both per epoch in history)")
    valid_before: dict[str, float] | None = Field(None, description="validation loss parts of the base model before the first epoch "
                                                  "(loss; MAEs in eV/Å, eV/Å³, eV/Å²), the yardstick of best_valid_loss")
    wall_time_s: float = Field(description="training wall time (s), this run only")
    resumed_from_epoch: int | None = Field(None, description="first epoch of this run when resumed from a checkpoint")
    continued_from: str | None = Field(None, description="work directory of the shorter run (same data, base model and "
                                       "hyperparameters, fewer epochs) whose last checkpoint this run continued")
    cotrain_errors: CotrainErrors = Field(default_factory=CotrainErrors, description="co-training errors before / after")
    workdir: str = Field(description="work directory (checkpoints, best weights, exported model)")


# ------------------------------------------------------------------------------------ training data
def build_structures(sources: list[dict]):
    """Labelled structures from source entries ``{"type": phonon_reference|displacements|extxyz|rattled, "path": ...}``;
    reference entries may carry ``material_id``, ``reference_format``, ``force_sets`` and ``born`` (as a spec's
    material entry), phonon_reference entries ``fold_max_atoms`` (:func:`pftflow.training.data.from_phonon_reference`), extxyz entries the keys of :func:`pftflow.training.data.read_extxyz`."""
    out = []
    for src in sources or []:
        src = dict(src)
        kind, path = src.pop("type"), src.pop("path")
        mid = src.pop("material_id", None)
        fold = src.pop("fold_max_atoms", None)
        if kind in ("phonon_reference", "displacements"):
            ref = path
            if any(src.get(k) for k in ("reference_format", "force_sets", "born")):
                ref = read_reference(path, fmt=src.get("reference_format"), material_id=mid, force_sets=src.get("force_sets"), born=src.get("born"))
            if kind == "phonon_reference":
                out += D.from_phonon_reference(ref, material_id=mid, fold_max_atoms=fold)
            else:
                out += D.from_displacements(ref, material_id=mid)
        elif kind == "extxyz":
            out += D.read_extxyz(path, **src)
        elif kind == "rattled":
            from ase.io import read

            out += D.from_labelled_atoms(read(str(path), index=":"), material_id=mid or "", **src)
        else:
            raise ValueError(f"training-data source {path}: unknown type {kind!r}; use phonon_reference, displacements, extxyz or rattled")
    return out


@job(output_schema=TrainingDataDoc, data=[ArrayBlob])
def training_data_job(train: list[dict], valid: list[dict] | None = None, cotrain: list[dict] | None = None) -> TrainingDataDoc:
    """Build train / valid / co-training structures (each a list of source entries)."""
    td = TrainingData(build_structures(train), build_structures(valid or []), build_structures(cotrain or []))
    return TrainingDataDoc.of(td, {"train": list(train or []), "valid": list(valid or []), "cotrain": list(cotrain or [])})


def _as_training_data(train_data) -> TrainingData:
    """A :class:`TrainingData` from a TrainingDataDoc (or its stored dict), or from source-entry lists."""
    if isinstance(train_data, dict) and "@class" in train_data:
        train_data = MontyDecoder().process_decoded(train_data)
    if isinstance(train_data, TrainingData):
        return train_data
    if isinstance(train_data, TrainingDataDoc):
        return train_data.training_data()
    splits = [train_data.get(k) or [] for k in ("train", "valid", "cotrain")]
    if any(isinstance(e, dict) and "type" in e and "path" in e for s in splits for e in s):
        return TrainingData(*(build_structures(s) for s in splits))
    return TrainingData.model_validate({k: s for k, s in zip(("train", "valid", "cotrain"), splits)})


# ------------------------------------------------------------------------------------ training
def train_workdir(run_dir: str, export_name: str, data_hash: str, base_model: dict, config: dict) -> Path:
    """Work directory of a fine-tuning run: ``<run_dir>/<export_name>-<hash of data, base model, config>``, so a
    re-run of the same job finds its checkpoint and resumes."""
    return Path(run_dir).expanduser().resolve() / f"{export_name}-{content_key(data_hash, base_model, config)[:12]}"


#: TrainConfig keys that set how long a run goes on, not what each epoch does: a run that differs from another
#: only in these continues the other's checkpoint (:func:`continuable_run`)
RUN_LENGTH_KEYS = ("epochs", "early_stopping_patience", "progress")


def continuable_run(run_dir: str, export_name: str, data_hash: str, base_model: dict, config: dict) -> Path | None:
    """The work directory under ``run_dir`` of a run with the same data, base model and hyperparameters as
    ``config`` but fewer epochs (only :data:`RUN_LENGTH_KEYS` differ) that has a checkpoint at or before
    ``config["epochs"]``: the one furthest along, or None.  Raising ``epochs`` of a finished or killed run
    then continues it: epochs are seeded by (seed, epoch), so the result is that of one uninterrupted run.

    A candidate is checked through its checkpoint's config: its directory name must be :func:`train_workdir`
    of that config with this data and base model (so the data and base model are the same)."""
    import torch

    def core(c: dict) -> dict:
        return {k: v for k, v in c.items() if k not in RUN_LENGTH_KEYS}

    if config.get("scheduler") == "cosine":  # the decay is spread over all epochs: a shorter run is not this run's beginning
        return None
    best: tuple[int, Path] | None = None
    root = Path(run_dir).expanduser().resolve()
    for d in sorted(root.glob(f"{export_name}-*")) if root.is_dir() else []:
        ck = d / "checkpoint.pt"
        if not ck.is_file():
            continue
        try:
            state = torch.load(ck, map_location="cpu", weights_only=False)
        except Exception:  # noqa: BLE001 - a torn or foreign file is no candidate
            continue
        c, epoch = state.get("config") or {}, state.get("epoch")
        if not isinstance(epoch, int) or core(c) != core(config) or epoch + 1 > config.get("epochs", 0):
            continue
        if train_workdir(run_dir, export_name, data_hash, base_model, c) != d.resolve():
            continue
        if best is None or epoch > best[0]:
            best = (epoch, d)
    return None if best is None else best[1]


@job(output_schema=TrainingRunDoc)
def train_job(
    train_data: TrainingDataDoc | dict,
    base_model: dict,
    config: dict,
    run_dir: str,
    export_name: str,
    evaluate_cotrain: bool = True,
) -> TrainingRunDoc:
    """Fine-tune ``base_model`` on ``train_data`` and export it.  Re-running after a kill resumes from the last
    epoch (the work directory is a hash of data, base model and config under ``run_dir``); a run with more
    epochs than an earlier one of the same data, base model and hyperparameters continues that run's last
    checkpoint (:func:`continuable_run`) instead of starting again."""
    import shutil

    data = _as_training_data(train_data)
    cfg = TrainConfig(**config)
    cfg_dict = cfg.as_dict()
    data_hash = data.data_hash()
    workdir = train_workdir(run_dir, export_name, data_hash, base_model, cfg_dict)
    continued_from = None
    if cfg.resume and not (workdir / "checkpoint.pt").exists():
        donor = continuable_run(run_dir, export_name, data_hash, base_model, cfg_dict)
        if donor is not None:
            workdir.mkdir(parents=True, exist_ok=True)
            for name in ("best.pt", "checkpoint.pt"):  # checkpoint last: it is what marks the copy complete
                if (donor / name).exists():
                    shutil.copy2(donor / name, workdir / f".{name}.tmp")
                    (workdir / f".{name}.tmp").replace(workdir / name)
            continued_from = str(donor)
    model = load_energy_model(base_model, dtype=cfg.dtype, device=cfg.device)
    cot = evaluate_cotrain and bool(data.cotrain)
    before = force_errors(model, data.cotrain) if cot else None
    model, result = train(model, data, cfg, workdir)
    best_loss = result.best_valid_loss if math.isfinite(result.best_valid_loss) else None
    suffix = ".model" if model.backend == "mace" else ".pth"
    exported = export_model(
        model,
        workdir / f"{export_name}{suffix}",
        data_hash=data_hash,
        hyperparameters=cfg_dict,
        name=export_name,
        extra={"train_result": {"best_epoch": result.best_epoch, "best_valid_loss": best_loss}},
    )
    after = force_errors(model, data.cotrain) if cot else None
    return TrainingRunDoc(
        model=export_name,
        exported_model_path=exported["path"],
        calculator_spec=exported["calculator_spec"],
        base_model=dict(base_model),
        provenance=exported["provenance"],
        data_hash=data_hash,
        counts=data.counts(),
        config=cfg_dict,
        finetune_report=result.finetune_report,
        history=result.history,
        best_epoch=result.best_epoch,
        best_valid_loss=best_loss,
        valid_before=result.valid_before,
        selection=result.selection,
        wall_time_s=result.wall_time_s,
        resumed_from_epoch=result.resumed_from_epoch,
        continued_from=continued_from,
        cotrain_errors=CotrainErrors(before=ForceErrors.of(before), after=ForceErrors.of(after)),
        workdir=str(workdir),
    )


@dataclass
class TrainMaker(Maker):
    """Fine-tune a model: ``make(train_data, base_model_spec) -> Job`` (output: :class:`TrainingRunDoc`).

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
        set_resources(j, "gpu")  # FireWorks category gpu (docs/fireworks.md)
        if self.fworker:  # and, as before, only a FireWorker of this name pulls it
            j.config.manager_config = {**j.config.manager_config, "_fworker": self.fworker}
        return j


# ------------------------------------------------------------------------------------ campaign
def finetune_spec(spec_raw):
    """The validated :class:`pftflow.spec.finetune.FinetuneSpec` of a spec dict (or the spec itself)."""
    if isinstance(spec_raw, FinetuneSpec):
        return spec_raw

    return parse_spec({**spec_raw, "kind": spec_raw.get("kind", KIND)})


def _data_sources(materials, *, phonon: bool = True, displacements: bool = False) -> list[dict]:
    """Source entries of spec materials (:class:`pftflow.spec.common.ImportMaterial`)."""
    out = []
    for m in materials:
        e = m.entry()
        extra = {k: e[k] for k in ("reference_format", "force_sets", "born") if e.get(k)}
        for use, kind in ((phonon, "phonon_reference"), (displacements, "displacements")):
            if use:
                out.append({"type": kind, "path": e["reference_file"], "material_id": e["id"], **extra})
    return out


def _tag_missing(flow_or_job, meta: dict) -> None:
    """Add ``meta`` keys a job's metadata lacks, in every job of a (nested) flow."""
    if isinstance(flow_or_job, Flow):
        for j in flow_or_job.jobs:
            _tag_missing(j, meta)
    else:
        flow_or_job.metadata = {**meta, **(flow_or_job.metadata or {})}


def benchmark_flow(spec, models: list[tuple[Any, str, Any]], store=None) -> tuple[Flow, dict]:
    """Harmonic benchmark of ``models`` (``(calculator spec or OutputReference, name, key part)``) on the
    spec's ``test_materials``: :func:`pftflow.flows.benchmark.benchmark_flow` with imported references."""
    parts, reused = harmonic_benchmark(spec.name, KIND, ReferenceSpec(mode="import"), spec.test_materials, models, spec.settings, store)
    return Flow(parts, name=f"benchmark {spec.name}"), reused


def build_finetune(spec_raw, store=None, benchmark_flow_fn: Callable | None = None) -> tuple[Flow, dict]:
    """Flow of a ``kind: finetune`` campaign (``spec_raw``: the spec dict or its validated
    :class:`~pftflow.spec.finetune.FinetuneSpec`) and what was reused from ``store``: ``train`` (a finished
    fine-tuning run under the same key whose exported model file still exists), ``reference`` / ``model`` (see
    :func:`benchmark_flow`)."""
    spec = finetune_spec(spec_raw)
    tr = spec.training
    name, ft_name = spec.name, tr.export_name
    base = tr.base_model.calculator_spec()
    sources = {
        "train": _data_sources(spec.train_materials, phonon=tr.data.phonon_references, displacements=tr.data.displacements_in_train),
        "valid": _data_sources(tr.valid_materials),
        "cotrain": (_data_sources(spec.train_materials, phonon=False, displacements=True) if tr.data.cotrain_displacements else [])
        + [{"type": "extxyz", **x.model_dump()} for x in tr.data.cotrain_extxyz],
    }
    config = tr.config.as_dict()
    rid = ResultId(campaign=name, kind=KIND, stage="parameters")
    reused: dict[str, list[str]] = {"train": [], "reference": [], "model": []}

    params = jobs.record_parameters(recorded_spec(spec))
    params.name = f"parameters {name}"
    params.metadata = rid.metadata()
    set_resources(params, "light")
    parts: list = [params]

    files = sorted({s[k] for split in sources.values() for s in split for k in ("path", "force_sets", "born") if s.get(k)})
    data_key = content_key("training_data", sources, {f: file_sha(f) for f in files})
    train_key = content_key(data_key, "train", base, config, ft_name, tr.run_dir)
    stored = find_stored(store, train_key)
    if isinstance(stored, TrainingRunDoc) and Path(stored.exported_model_path).is_file():
        reused["train"].append(ft_name)
        ft_calc, train_out = stored.calculator_spec, stored.model_dump()
    else:
        data_job = training_data_job(sources["train"], sources["valid"], sources["cotrain"])
        data_job.name = f"training data {name}"
        data_job.metadata = rid.with_(stage="training_data").metadata(data_key)
        set_resources(data_job, "light")
        maker = TrainMaker(name=f"train {ft_name}", config=config, run_dir=tr.run_dir, export_name=ft_name, fworker=tr.fworker)
        tj = maker.make(data_job.output, base)
        tj.metadata = {**(tj.metadata or {}), **rid.with_(model=ft_name, stage="train").metadata(train_key)}
        parts += [data_job, tj]
        ft_calc, train_out = tj.output.calculator_spec, tj.output
    models = [(base, tr.base_model.name, base), (ft_calc, ft_name, {"trained": train_key})]
    if spec.test_materials:
        if benchmark_flow_fn is None:
            bench, more = benchmark_flow(spec, models, store)
            reused["reference"] += more["reference"]
            reused["model"] += more["model"]
            parts.append(bench)
        else:
            test_mats = [m.entry() for m in spec.test_materials]
            n_args = len(inspect.signature(benchmark_flow_fn).parameters)
            for calc, mname, _ in models:
                f = benchmark_flow_fn(test_mats, calc, mname) if n_args >= 3 else benchmark_flow_fn(test_mats, calc)
                _tag_missing(f, {"campaign": name, "kind": KIND, "model": mname})
                parts.append(f)
    return Flow(parts, output={"train": train_out}, name=f"finetune {name}"), reused


def pft_campaign_flow(spec_raw: dict, benchmark_flow_fn: Callable[..., Flow] | None = None, store=None) -> Flow:
    """Campaign ``kind: finetune``: data -> train -> benchmark base and fine-tuned model on ``test_materials``.

    ``benchmark_flow_fn(materials, calculator[, model_name])`` builds the benchmark of one model (``materials``:
    ``{id, reference_file, ...}`` dicts; ``calculator``: the base spec dict, or the train job's OutputReference to
    ``calculator_spec``); its jobs get the campaign's identity (campaign, kind, model; rows are read from jobs
    with ``metadata.stage == "compare"``).  Default: :func:`benchmark_flow`.  ``store``: reuse of stored
    results (see :func:`build_finetune`).
    """
    return build_finetune(spec_raw, store, benchmark_flow_fn)[0]


def load_finetune_results(spec_raw: dict, store) -> dict:
    """Training summary and the benchmark rows (base vs fine-tuned) of a finetune campaign from the store:
    ``{campaign, kind, train, rows, summary}``; rows are :meth:`ComparisonDoc.row` of the latest comparison per
    material and model, in the order of ``test_materials`` then (base, fine-tuned).  Reads names from the spec
    dict without validating it (the reference files need not exist any more)."""
    name = spec_raw.get("name", KIND)
    tr = spec_raw.get("training") or {}
    base_name = model_name(tr.get("base_model") or DEFAULT_BASE_MODEL)
    ft_name = tr.get("export_name") or f"{base_name}-pft"
    mat_order = []
    for m in spec_raw.get("test_materials") or []:
        m = {"reference_file": m} if isinstance(m, str) else m
        mat_order.append(m.get("id") or material_id_from_path(m["reference_file"]))
    mod_order = [base_name, ft_name]

    dec = MontyDecoder()
    rid = ResultId(campaign=name, kind=KIND, stage="train")
    tdoc = store.query_one(rid.query(), properties=["uuid"], sort={"completed_at": -1})
    train = dec.process_decoded(store.get_output(tdoc["uuid"], which="last", load=True)) if tdoc else None
    docs = list(store.query(rid.with_(stage="compare").query(), properties=["uuid", "index", "metadata", "completed_at"]))
    latest: dict = {}
    for d in sorted(docs, key=lambda d: (str(d.get("completed_at", "")), d.get("index", 0))):
        latest[(d["metadata"].get("material_id"), d["metadata"].get("model"))] = d
    outs = [dec.process_decoded(store.get_output(d["uuid"], which="last", load=True)) for d in latest.values()]

    def order(r):
        mid, mod = r.get("material_id"), r.get("model")
        return (mat_order.index(mid) if mid in mat_order else len(mat_order), mod_order.index(mod) if mod in mod_order else 2, str(mid), str(mod))

    rows = sorted((o.row() if hasattr(o, "row") else o for o in outs if hasattr(o, "row") or isinstance(o, dict)), key=order)
    compared = [o.row() for o in outs if hasattr(o, "row")]  # summaries only over ComparisonDoc rows
    summary = {m: summarize([r for r in compared if r["model"] == m]) for m in mod_order if any(r["model"] == m for r in compared)}
    train_summary = None
    if train is not None:
        keep = ("model", "exported_model_path", "calculator_spec", "data_hash", "counts", "finetune_report", "best_epoch",
                "best_valid_loss", "wall_time_s", "resumed_from_epoch", "cotrain_errors")
        train_summary = train.model_dump(include=set(keep)) if isinstance(train, TrainingRunDoc) else {k: train.get(k) for k in keep}
    return {"campaign": name, "kind": KIND, "train": train_summary, "rows": rows, "summary": summary}


def _results(spec, store):
    return load_finetune_results(spec.raw, store)


#: a training run stays the builder's decision (reused only while its exported model file exists)
CAMPAIGN_KIND = campaign_kind(KIND, build_finetune, _results, keep_stages=("train",))
