"""Fine-tuning modes on an :class:`~pftflow.calculators.energy_models.EnergyModel`: full, frozen, delta (L2-SP), LoRA.

* ``full``   - every parameter trains.
* ``frozen`` - parameters of the listed layer groups (``embedding``, ``layer0`` ... ``layerK``, ``readout``; see
  ``EnergyModel.parameter_groups``) or ``fnmatch`` patterns of parameter names are frozen, the rest train.
* ``delta``  - W = W₀ + ΔW for every parameter (of the non-frozen groups); only ΔW trains and AdamW's weight
  decay acts on ΔW only, i.e. it pulls W back to the pretrained W₀ (L2-SP, as in Equitrain).  Written by hand
  (a small ``torch.func.functional_call`` wrapper): no library offers it for arbitrary modules.
* ``lora``   - low-rank adapters on every equivariant ``o3.Linear``, ``nn.Linear`` and e3nn
  ``FullyConnectedNet`` layer, from ``mace.modules.lora`` (inject / merge).  The same library adapters fit
  SevenNet, whose linear layers are e3nn ``o3.Linear`` (inside ``IrrepsLinear``/self-connections) and e3nn
  ``FullyConnectedNet`` (radial weight networks), so both backends share one implementation.

At initialisation delta (ΔW = 0) and LoRA (B = 0) reproduce the base model exactly.  :func:`merge_adapters`
folds the adapters back into plain weights for export.
"""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass, field
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pftflow.calculators.energy_models import EnergyModel

MODES = ("full", "frozen", "delta", "lora")





class FinetuneMode(BaseModel):
    """How to fine-tune: ``mode`` in full / frozen / delta / lora; ``freeze``: layer groups or parameter-name
    patterns kept fixed (any mode); LoRA ``lora_rank`` and ``lora_alpha`` (scaling alpha/rank).

    Also importable as ``FinetuneSpec`` (its former name; ``pftflow.spec.FinetuneSpec`` is the campaign spec)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    mode: Literal["full", "frozen", "delta", "lora"] = Field(
        "full", description="what trains: full (all parameters) | frozen (all but `freeze`) | delta (W0 + ΔW, L2-SP) | lora (low-rank adapters)"
    )
    freeze: list[str] = Field(
        default_factory=list,
        description="layer groups (embedding, layer0 ... layerK, readout) or fnmatch patterns of parameter names kept fixed; "
        "required for mode frozen",
        examples=[["embedding", "layer0"]],
    )
    lora_rank: int = Field(4, ge=1, description="LoRA rank (>= 1; mode lora only)", examples=[4])
    lora_alpha: float = Field(1.0, gt=0, description="LoRA scaling alpha (> 0; adapters scaled by alpha / rank; mode lora only)", examples=[1.0])

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v):
        return {"mode": v} if isinstance(v, str) else v

    @field_validator("mode", mode="before")
    @classmethod
    def _known_mode(cls, v):
        if isinstance(v, str) and v not in MODES:
            import difflib

            hint = difflib.get_close_matches(v.lower(), MODES, n=1)
            err = ValueError(f"unknown fine-tuning mode {v!r}" + (f"; did you mean {hint[0]!r}?" if hint else "") + f"; choose one of {MODES}")
            err.example = f"mode: {hint[0] if hint else 'full'}"  # shown by pftflow.spec errors
            raise err
        return v

    @model_validator(mode="after")
    def _consistent(self):
        if self.mode == "frozen" and not self.freeze:
            err = ValueError("mode 'frozen' needs 'freeze': layer groups (embedding, layer0 ... layerK, readout) or parameter-name patterns")
            err.example = "finetune: {mode: frozen, freeze: [embedding, layer0]}"  # shown by pftflow.spec errors
            raise err
        if any(not f.strip() for f in self.freeze):
            raise ValueError("'freeze' entries must be non-empty group names or patterns")
        if self.mode != "lora":
            default = type(self).model_fields
            changed = [k for k in ("lora_rank", "lora_alpha") if getattr(self, k) != default[k].default]
            if changed:
                raise ValueError(f"{' and '.join(changed)} only appl{'y' if len(changed) > 1 else 'ies'} to mode 'lora', but mode is {self.mode!r}")
        return self

    def as_dict(self) -> dict:
        return self.model_dump()

    # mapping protocol, so that ``FinetuneSpec(**spec)`` and ``dict(spec)`` keep working on an instance
    def keys(self):
        return type(self).model_fields.keys()

    def __getitem__(self, key: str):
        return getattr(self, key)


#: the name the training code uses
FinetuneSpec = FinetuneMode


class DeltaParameters(torch.nn.Module):
    """ΔW for each adapted parameter (zero-initialised); effective weights W₀ + ΔW."""

    def __init__(self, model: torch.nn.Module, names: list[str]):
        super().__init__()
        params = dict(model.named_parameters())
        self.names = list(names)
        self.deltas = torch.nn.ParameterList([torch.nn.Parameter(torch.zeros_like(params[n])) for n in self.names])

    def effective(self, model: torch.nn.Module, prefix: str = "model.") -> dict[str, torch.Tensor]:
        params = dict(model.named_parameters())
        return {prefix + n: params[n] + d for n, d in zip(self.names, self.deltas)}


def _frozen_names(model: EnergyModel, patterns: list[str]) -> set[str]:
    groups = model.parameter_groups()
    out: set[str] = set()
    for pat in patterns:
        if pat in groups:
            out.update(groups[pat])
        else:
            out.update(n for n, _ in model.model.named_parameters() if fnmatch.fnmatch(n, pat))
    return out


def setup_finetuning(model: EnergyModel, spec: FinetuneSpec | dict | str = "full") -> dict:
    """Prepare ``model`` (in place) for the fine-tuning mode; returns a report with trainable-parameter counts."""
    if isinstance(spec, str):
        spec = FinetuneSpec(mode=spec)
    elif isinstance(spec, dict):
        spec = FinetuneSpec(**spec)
    if spec.mode not in MODES:
        raise ValueError(f"unknown fine-tuning mode {spec.mode!r}; choose one of {MODES}")
    if getattr(model, "finetune_spec", None) is not None:
        raise RuntimeError("model is already set up for fine-tuning; build a fresh one")
    frozen = _frozen_names(model, spec.freeze)
    if spec.mode == "frozen" and not frozen:
        raise ValueError(f"mode 'frozen' needs 'freeze' groups {sorted(model.parameter_groups())} or name patterns")
    n_total = sum(p.numel() for p in model.model.parameters())
    if spec.mode in ("full", "frozen"):
        for n, p in model.model.named_parameters():
            p.requires_grad_(n not in frozen)
    elif spec.mode == "delta":
        names = [n for n, _ in model.model.named_parameters() if n not in frozen]
        for p in model.model.parameters():
            p.requires_grad_(False)
        model.delta = DeltaParameters(model.model, names)
    elif spec.mode == "lora":
        from mace.modules.lora import inject_lora

        inject_lora(model.model, rank=spec.lora_rank, alpha=spec.lora_alpha)  # freezes all but lora_A / lora_B
        if frozen:  # frozen groups: their LoRA factors do not train either
            for n, p in model.model.named_parameters():
                base = n.replace(".lora_A", "").replace(".lora_B", "")
                if any(base.startswith(f.rsplit(".", 1)[0]) for f in frozen):
                    p.requires_grad_(False)
    model.finetune_spec = spec
    n_train = sum(p.numel() for p in trainable_parameters(model))
    return {
        "mode": spec.mode,
        "spec": spec.as_dict(),
        "n_parameters_base": int(n_total),
        "n_trainable": int(n_train),
        "trainable_fraction": float(n_train / max(n_total, 1)),
    }


def trainable_parameters(model: EnergyModel) -> list[torch.nn.Parameter]:
    """Parameters the optimizer updates (adapters for delta / LoRA)."""
    return [p for p in model.parameters() if p.requires_grad]


def merge_adapters(model: EnergyModel) -> EnergyModel:
    """Fold delta / LoRA adapters into the base weights (in place); the result is a plain backend model."""
    spec = getattr(model, "finetune_spec", None)
    mode = spec.mode if spec is not None else "full"
    if mode == "delta":
        params = dict(model.model.named_parameters())
        with torch.no_grad():
            for n, d in zip(model.delta.names, model.delta.deltas):
                params[n].add_(d)
        del model.delta
    elif mode == "lora":
        from mace.modules.lora import merge_lora_weights

        merge_lora_weights(model.model, inplace=True)
    for p in model.model.parameters():
        p.requires_grad_(True)
    model.finetune_spec = None
    return model
