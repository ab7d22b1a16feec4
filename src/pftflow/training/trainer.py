"""Trainer: AdamW + gradient clipping + EMA (torch-ema), constant or plateau LR, co-training, resume.

Reproducibility: batch order and sampled Hessian columns are pure functions of (seed, epoch, step), and a
checkpoint (model incl. adapters, optimizer, EMA, scheduler, history) is written atomically after every epoch.
Restarting :func:`train` with the same ``workdir`` after a kill continues from the last finished epoch and ends
with the same weights as an uninterrupted run (same seed, same device/dtype).

Co-training (PFT): after each phonon batch, ``cotrain_ratio`` upstream E/F/S batches are taken (cycling through
the upstream set); the energy weight is 0 on phonon batches then.  Validation uses the EMA weights and one fixed
Hessian column per structure; the best-EMA weights are kept (``best.pt``) and loaded at the end.
"""

from __future__ import annotations

import copy
import math
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pftflow.training.adapters import FinetuneSpec, setup_finetuning, trainable_parameters
from pftflow.training.data import LabelledStructure, TrainingData
from pftflow.training.loss import LossWeights, Targets, pft_loss, sample_columns
from pftflow.calculators.energy_models import EnergyModel, GraphBatch
from pftflow.training.probes import ProbeSpec, batch_probes


def _all_set(model):
    """``model`` with every field marked as set (so ``model_dump(exclude_unset=True)`` gives all of them)."""
    return type(model).model_validate(model.model_dump())


class TrainConfig(BaseModel):
    """Hyperparameters (defaults: PFT paper) - lr 1e-4, AdamW wd 1e-3, clip 100, EMA 0.999, weights 20/20/5/100."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    epochs: int = Field(10, ge=0, description="training epochs (>= 0)", examples=[4])
    batch_size: int = Field(1, ge=1, description="phonon structures per batch (>= 1)", examples=[1])
    cotrain_batch_size: int | None = Field(None, ge=1, description="co-training structures per batch (>= 1; null = batch_size)", examples=[4])
    cotrain_ratio: int = Field(4, ge=0, description="upstream E/F/σ batches after each phonon batch (>= 0; 0 = no co-training)", examples=[4])
    lr: float = Field(1e-4, gt=0, description="AdamW learning rate (> 0)", examples=[1e-4])
    weight_decay: float = Field(1e-3, ge=0, description="AdamW weight decay (>= 0; acts on ΔW only in mode delta)", examples=[1e-3])
    grad_clip: float = Field(100.0, gt=0, description="gradient-norm clipping threshold (> 0)", examples=[100.0])
    ema_decay: float = Field(0.999, ge=0, lt=1, description="exponential moving average decay of the weights (0 <= decay < 1)", examples=[0.999])
    scheduler: Literal["constant", "plateau", "cosine"] = Field(
        "constant", description="learning-rate schedule: constant | plateau (ReduceLROnPlateau, per epoch) | cosine (linear warm-up over "
        "warmup_steps, then cosine decay to min_lr at the last phonon step of the last epoch, per phonon step)")
    warmup_steps: int | None = Field(None, ge=0, description="cosine: phonon steps of linear warm-up from lr/100 to lr (>= 0; null = 0)", examples=[25])
    plateau_factor: float = Field(0.5, gt=0, lt=1, description="plateau: lr factor on a plateau (0 < factor < 1)", examples=[0.5])
    plateau_patience: int = Field(3, ge=0, description="plateau: epochs without improvement before reducing lr (>= 0)", examples=[3])
    min_lr: float = Field(1e-6, ge=0, description="plateau / cosine: lowest learning rate (>= 0)", examples=[1e-6])
    weights: LossWeights = Field(
        default_factory=lambda: _all_set(LossWeights()),
        description="loss weights {energy, forces, stress, hessian} (PFT: 20 / 20 / 5 / 100)",
        examples=[{"energy": 20.0, "forces": 20.0, "stress": 5.0, "hessian": 100.0}],
    )
    columns_per_structure: int = Field(1, ge=1, description="Hessian columns (HVPs) per structure and step (>= 1)", examples=[1])
    seed: int = Field(0, ge=0, description="random seed of batch order and Hessian columns (>= 0)", examples=[0])
    dtype: Literal["float32", "float64"] = Field("float32", description="torch dtype of the model: float32 | float64")
    device: str | None = Field(None, description="torch device: cpu, cuda, cuda:N or mps; null = cuda when available, else cpu", examples=["cuda"])
    finetune: FinetuneSpec = Field(
        default_factory=lambda: _all_set(FinetuneSpec()),
        description="fine-tuning mode {mode: full | frozen | delta | lora, freeze, lora_rank, lora_alpha}",
        examples=[{"mode": "lora", "lora_rank": 4}],
    )
    progress: bool = Field(True, description="show a progress bar per epoch")
    resume: bool = Field(True, description="continue from <workdir>/checkpoint.pt when present")
    early_stopping_patience: int | None = Field(
        None, ge=1, description="stop after this many epochs without a lower validation loss (>= 1; null = run all epochs); "
        "the best-EMA weights are kept either way", examples=[3]
    )

    selection: Literal["loss", "hessian"] | None = Field(
        None, description="what picks the best epoch (and early stopping): loss = the validation total loss | hessian = the validation "
        "Hessian-column error (a phonon criterion: the near-field error when hessian_probe.normalisation is near_field); null = loss. "
        "Both are recorded per epoch in the history",
    )
    valid_columns: int | None = Field(
        None, ge=1, description="fixed Hessian columns per validation structure (>= 1; null = 1); more give a less noisy selection", examples=[8]
    )
    hessian_probe: ProbeSpec | None = Field(
        None, description="Hessian probes and normalisation {kind: column | multi_column | rademacher, atoms_per_probe, "
        "min_separation_A, normalisation: mean | near_field | column_sum, near_field_A, reference_atoms} "
        "(training/probes.py); null = one random column per structure, MAE over entries (the PFT paper)",
        examples=[{"kind": "multi_column", "atoms_per_probe": 4, "normalisation": "near_field", "near_field_A": 6.0}],
    )

    @model_validator(mode="after")
    def _decay_goes_down(self):
        """plateau / cosine lower the lr towards min_lr: a min_lr above lr would raise it instead."""
        if self.scheduler in ("plateau", "cosine") and self.min_lr > self.lr:
            raise ValueError(f"min_lr ({self.min_lr:g}) is above lr ({self.lr:g}): the {self.scheduler} schedule would raise the "
                             f"learning rate; set min_lr below lr, e.g. min_lr: {self.lr / 50:g}")
        return self

    @field_validator("device")
    @classmethod
    def _device(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"cpu|cuda(:\d+)?|mps", v):
            raise ValueError(f"unknown torch device {v!r}; use cpu, cuda, cuda:N or mps")
        return v

    def as_dict(self) -> dict:
        """Plain dict; ``weights`` and ``finetune`` hold the keys that were given (all of them by default)."""
        d = self.model_dump()
        d["weights"] = self.weights.model_dump(exclude_unset=True)
        d["finetune"] = self.finetune.model_dump(exclude_unset=True)
        if d.get("early_stopping_patience") is None:  # unset: the dict (and every key made from it) as before the option existed
            d.pop("early_stopping_patience", None)
        for k in ("hessian_probe", "warmup_steps", "selection", "valid_columns"):
            if d.get(k) is None:  # idem: unset keeps the keys of runs made before these options existed
                d.pop(k, None)
        return d


@dataclass
class TrainResult:
    history: list[dict]
    best_epoch: int
    best_valid_loss: float
    finetune_report: dict
    workdir: str
    wall_time_s: float
    resumed_from_epoch: int | None = None
    valid_before: dict | None = None  # validation loss parts of the starting weights (before epoch 0)
    selection: str = "loss"  # the validation quantity best_epoch / best_valid_loss refer to

    def as_dict(self) -> dict:
        return asdict(self)


def cosine_warmup(warmup_steps: int, total_steps: int, min_ratio: float) -> Callable[[int], float]:
    """LR factor per step: linear 0.01 -> 1 over ``warmup_steps``, then cosine 1 -> ``min_ratio`` at ``total_steps``."""

    def factor(t: int) -> float:
        if t < warmup_steps:
            return 0.01 + 0.99 * t / warmup_steps
        p = min(1.0, (t - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * p))

    return factor


def _hessian_probes(graph, targets, spec: ProbeSpec | None, k: int, gen: torch.Generator):
    """(columns, probes) for :func:`pft_loss`: ``k`` probes of ``spec`` per structure (rng seeded from ``gen``), or
    ``k`` random columns without a spec; (None, None) when the batch has no Hessian target."""
    if not targets.has_hessian():
        return None, None
    if spec is None:
        return sample_columns(graph, targets, k, gen), None
    return None, batch_probes(graph, targets, spec, k, np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=gen))))


def _valid_line(val: dict) -> str:
    """``valid loss L part=v ...``: one validation result as a progress line."""
    return f"valid loss {val['loss']:.5g} " + " ".join(f"{k}={v:.4g}" for k, v in val.items() if k != "loss")


# ----------------------------------------------------------------------------------------- batching
def _targets_for(structures: Sequence[LabelledStructure], dtype, device) -> Targets:
    def t(x):
        return torch.as_tensor(np.asarray(x), dtype=dtype, device=device)

    b = len(structures)
    e_mask = torch.tensor([s.energy_eV is not None for s in structures], device=device)
    f_mask = torch.tensor([s.forces_eV_per_A is not None for s in structures], device=device)
    s_mask = torch.tensor([s.stress_eV_per_A3 is not None for s in structures], device=device)
    energy = t([s.energy_eV if s.energy_eV is not None else 0.0 for s in structures])
    forces = torch.cat(
        [t(s.forces_eV_per_A) if s.forces_eV_per_A is not None else torch.zeros(len(s.atoms), 3, dtype=dtype, device=device) for s in structures]
    )
    stress = torch.stack(
        [t(s.stress_eV_per_A3) if s.stress_eV_per_A3 is not None else torch.zeros(3, 3, dtype=dtype, device=device) for s in structures]
    ) if b else None
    hess = [t(s.hessian_eV_per_A2) if s.hessian_eV_per_A2 is not None else None for s in structures]
    return Targets(energy, e_mask, forces, f_mask, stress, s_mask, hess)


def concat_graphs(graphs: Sequence[GraphBatch]) -> GraphBatch:
    """Concatenate single-structure graphs into one batch (offsets applied)."""
    offs = np.cumsum([0] + [int(g.positions_A.shape[0]) for g in graphs])
    return GraphBatch(
        positions_A=torch.cat([g.positions_A for g in graphs]),
        cell_A=torch.cat([g.cell_A for g in graphs]),
        numbers=torch.cat([g.numbers for g in graphs]),
        batch=torch.cat([g.batch + k for k, g in enumerate(graphs)]),
        ptr=torch.as_tensor(offs, dtype=torch.long, device=graphs[0].ptr.device),
        edge_index=torch.cat([g.edge_index + int(o) for g, o in zip(graphs, offs[:-1])], dim=1),
        unit_shifts=torch.cat([g.unit_shifts for g in graphs]),
        n_atoms=torch.cat([g.n_atoms for g in graphs]),
        volume_A3=torch.cat([g.volume_A3 for g in graphs]),
    )


class _Collator:
    """Caches each structure's graph (neighbour list) and targets; collates index lists into batches."""

    def __init__(self, model: EnergyModel, structures: Sequence[LabelledStructure]):
        self.model = model
        self.structures = list(structures)
        self._graphs: dict[int, GraphBatch] = {}

    def __call__(self, idx: Sequence[int]) -> tuple[GraphBatch, Targets]:
        for i in idx:
            if i not in self._graphs:
                self._graphs[i] = self.model.build_graph([self.structures[i].atoms])
        graph = concat_graphs([self._graphs[i] for i in idx])
        targets = _targets_for([self.structures[i] for i in idx], graph.positions_A.dtype, graph.positions_A.device)
        return graph, targets


def _batches(n: int, batch_size: int, rng: np.random.Generator | None) -> list[list[int]]:
    order = rng.permutation(n) if rng is not None else np.arange(n)
    return [order[i : i + batch_size].tolist() for i in range(0, n, batch_size)]


def _step_generator(seed: int, epoch: int, step: int, stream: int = 0) -> torch.Generator:
    """Generator seeded by (seed, stream, epoch, step): training stream 0, validation stream 1."""
    g = torch.Generator()
    g.manual_seed(int(np.random.SeedSequence([seed, stream, epoch, step]).generate_state(1)[0]))
    return g


# ----------------------------------------------------------------------------------------- training
def evaluate(
    model: EnergyModel,
    structures: Sequence[LabelledStructure],
    weights: LossWeights,
    *,
    batch_size: int = 1,
    column_seed: int = 1234,
    collator: _Collator | None = None,
    columns: int = 1,
    probe: ProbeSpec | None = None,
) -> dict[str, float]:
    """Mean loss parts over ``structures`` with ``columns`` fixed Hessian columns per structure (no parameter
    update).  With ``probe`` (its normalisation is used; the columns stay single columns) the Hessian part is
    normalised as in training, e.g. the near-field error."""
    collator = collator or _Collator(model, structures)
    sums: dict[str, float] = {}
    count = 0
    single = None if probe is None else probe.model_copy(update={"kind": "column"})
    for k, idx in enumerate(_batches(len(structures), batch_size, None)):
        graph, targets = collator(idx)
        cols, probes = _hessian_probes(graph, targets, single, columns, _step_generator(column_seed, 0, k, stream=1))
        _, parts = pft_loss(model, graph, targets, weights, columns=cols, probes=probes, create_graph=False)
        for key, v in parts.items():
            sums[key] = sums.get(key, 0.0) + v * len(idx)
        count += len(idx)
    return {k: v / max(count, 1) for k, v in sums.items()}


def _atomic_save(obj, path: Path):
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train(
    model: EnergyModel,
    data: TrainingData,
    config: TrainConfig | dict,
    workdir: str | os.PathLike,
    *,
    callback: Callable[[int, int, dict], None] | None = None,
) -> tuple[EnergyModel, TrainResult]:
    """Fine-tune ``model`` (a fresh base model; the fine-tuning mode is applied here) on ``data``.

    ``workdir`` receives ``checkpoint.pt`` (resume state, every epoch) and ``best.pt`` (best-EMA weights).
    ``callback(epoch, step, parts)`` is called after every optimizer step.  Returns the model with the best EMA
    weights loaded (adapters not merged) and a :class:`TrainResult`.
    """
    from torch_ema import ExponentialMovingAverage
    from tqdm.auto import tqdm

    cfg = TrainConfig(**config) if isinstance(config, dict) else config
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(cfg.seed)
    model.to(device=device, dtype=getattr(torch, cfg.dtype))
    report = setup_finetuning(model, FinetuneSpec(**cfg.finetune))
    params = trainable_parameters(model)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = (
        torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, factor=cfg.plateau_factor, patience=cfg.plateau_patience, min_lr=cfg.min_lr
        )
        if cfg.scheduler == "plateau"
        else None
    )
    n_steps = len(_batches(len(data.train), cfg.batch_size, None))
    step_sched = (
        torch.optim.lr_scheduler.LambdaLR(opt, cosine_warmup(cfg.warmup_steps or 0, cfg.epochs * n_steps, cfg.min_lr / cfg.lr))
        if cfg.scheduler == "cosine"
        else None
    )
    sel_key = "hessian_mae_eV_per_A2" if cfg.selection == "hessian" else "loss"
    v_kw = {"columns": cfg.valid_columns or 1, "probe": cfg.hessian_probe if cfg.selection is not None else None}
    ema = ExponentialMovingAverage(params, decay=cfg.ema_decay)
    weights = LossWeights(**cfg.weights)
    phonon_weights = copy.copy(weights)
    use_cotrain = cfg.cotrain_ratio > 0 and len(data.cotrain) > 0
    if use_cotrain:
        phonon_weights.energy = 0.0
    train_c = _Collator(model, data.train)
    co_c = _Collator(model, data.cotrain) if use_cotrain else None
    valid_set = data.valid or data.train
    valid_c = _Collator(model, valid_set) if data.valid else train_c

    history: list[dict] = []
    best = (math.inf, -1)
    start_epoch = 0
    resumed = None
    ckpt_path, best_path = workdir / "checkpoint.pt", workdir / "best.pt"
    valid_before = None
    if cfg.resume and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        ema.load_state_dict(state["ema"])
        if sched is not None and state.get("scheduler") is not None:
            sched.load_state_dict(state["scheduler"])
        if step_sched is not None and state.get("step_scheduler") is not None:
            step_sched.load_state_dict(state["step_scheduler"])
        history, best = state["history"], tuple(state["best"])
        start_epoch = resumed = state["epoch"] + 1
        valid_before = state.get("valid_before")
    elif cfg.epochs > 0:  # the yardstick of every epoch: the starting weights on the validation set (EMA = weights now)
        valid_before = evaluate(model, valid_set, weights, batch_size=cfg.batch_size, collator=valid_c, **v_kw)
        if cfg.progress:
            tqdm.write(f"before training: {_valid_line(valid_before)}")

    t0 = time.perf_counter()
    for epoch in range(start_epoch, cfg.epochs):
        # early stopping: checked before each epoch, so a run resumed after the stop stops too
        if cfg.early_stopping_patience is not None and best[1] >= 0 and epoch - 1 - best[1] >= cfg.early_stopping_patience:
            break
        model.train()
        rng = np.random.default_rng([cfg.seed, epoch])
        batches = _batches(len(data.train), cfg.batch_size, rng)
        co_batches = _batches(len(data.cotrain), cfg.cotrain_batch_size or cfg.batch_size, rng) if use_cotrain else []
        co_ptr = 0
        sums: dict[str, float] = {}
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=None if cfg.progress else True, leave=False)
        for step, idx in enumerate(bar):
            plan = [("phonon", idx)]
            for _ in range(cfg.cotrain_ratio if use_cotrain else 0):
                plan.append(("cotrain", co_batches[co_ptr % len(co_batches)]))
                co_ptr += 1
            for kind, bidx in plan:
                graph, targets = (train_c if kind == "phonon" else co_c)(bidx)
                cols, probes = _hessian_probes(graph, targets, cfg.hessian_probe, cfg.columns_per_structure, _step_generator(cfg.seed, epoch, step))
                w = phonon_weights if kind == "phonon" else weights
                opt.zero_grad(set_to_none=True)
                loss, parts = pft_loss(model, graph, targets, w, columns=cols, probes=probes)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                opt.step()
                ema.update()
                if step_sched is not None and kind == "phonon":
                    step_sched.step()
                for key, v in parts.items():
                    sums[f"{kind}_{key}"] = sums.get(f"{kind}_{key}", 0.0) + v
                if kind == "phonon":
                    bar.set_postfix(loss=f"{parts['loss']:.4g}")
                if callback is not None:
                    callback(epoch, step, parts)
        train_means = {k: v / n_steps / (cfg.cotrain_ratio if k.startswith("cotrain") else 1) for k, v in sums.items()}
        with ema.average_parameters():
            val = evaluate(model, valid_set, weights, batch_size=cfg.batch_size, collator=valid_c, **v_kw)
            if val.get(sel_key, val["loss"]) < best[0]:
                best = (val.get(sel_key, val["loss"]), epoch)
                _atomic_save({"model": model.state_dict(), "epoch": epoch, "valid": val}, best_path)
        if sched is not None:
            sched.step(val["loss"])
        rec = {"epoch": epoch, "lr": opt.param_groups[0]["lr"], "train": train_means, "valid": val}
        history.append(rec)
        _atomic_save(
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "ema": ema.state_dict(),
                "scheduler": None if sched is None else sched.state_dict(),
                "step_scheduler": None if step_sched is None else step_sched.state_dict(),
                "history": history,
                "best": list(best),
                "epoch": epoch,
                "config": cfg.as_dict(),
                "valid_before": valid_before,
            },
            ckpt_path,
        )
        if cfg.progress:
            tqdm.write(f"epoch {epoch + 1}: {_valid_line(val)}")
    if best_path.exists():
        model.load_state_dict(torch.load(best_path, map_location=device, weights_only=False)["model"])
    result = TrainResult(
        history=history,
        best_epoch=int(best[1]),
        best_valid_loss=float(best[0]),
        finetune_report=report,
        workdir=str(workdir),
        wall_time_s=time.perf_counter() - t0,
        resumed_from_epoch=resumed,
        valid_before=valid_before,
        selection=sel_key,
    )
    return model, result
