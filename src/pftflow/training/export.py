"""Export a fine-tuned model as a file the project's force backends load, with provenance.

* MACE: the merged ``torch.nn.Module`` saved with ``torch.save`` (the standard ``.model`` file
  ``mace.calculators.MACECalculator`` and ``pftflow.calculators.MACECalculator`` load).
* SevenNet: a checkpoint in sevenn's own format (``model_state_dict`` + ``config`` of the base checkpoint) that
  ``sevenn.calculator.SevenNetCalculator`` / ``pftflow.calculators.SevenNetCalculator(model=path)`` load.

LoRA / delta adapters are merged first (on a copy).  Provenance (base model hash, training-data hash,
hyperparameters, code versions) is written next to the file as ``<file>.provenance.json`` and returned.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

from pftflow.calculators import file_sha256
from pftflow.calculators.energy_models import EnergyModel, MACEEnergyModel, SevenNetEnergyModel
from pftflow.training.adapters import merge_adapters


def code_versions() -> dict:
    out = {}
    for pkg in ("pftflow", "torch", "mace-torch", "sevenn", "e3nn", "torch-ema", "phonopy", "ase"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    try:
        out["pftflow_git"] = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        ).stdout.strip() or None
    except Exception:  # noqa: BLE001 - not a git checkout
        out["pftflow_git"] = None
    return out


def export_model(
    model: EnergyModel,
    path: str | os.PathLike,
    *,
    data_hash: str | None = None,
    hyperparameters: dict | None = None,
    name: str | None = None,
    extra: dict | None = None,
) -> dict:
    """Write the merged model to ``path``; returns ``{"path", "calculator_spec", "provenance"}``.

    ``calculator_spec`` is the dict :func:`pftflow.calculators.get_calculator` takes.
    """
    path = Path(path).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    merged = merge_adapters(copy.deepcopy(model))
    merged.eval()
    if isinstance(merged, MACEEnergyModel):
        torch.save(merged.model.cpu(), path)
        spec = {"backend": "mace", "model": str(path)}
    elif isinstance(merged, SevenNetEnergyModel):
        base = torch.load(merged.source["path"], map_location="cpu", weights_only=False)
        state = {k: v.detach().cpu().to(base["model_state_dict"][k].dtype) if k in base["model_state_dict"] else v.detach().cpu()
                 for k, v in merged.model.state_dict().items()}
        missing = set(base["model_state_dict"]) - set(state)
        if missing:
            raise RuntimeError(f"merged SevenNet state lacks keys of the base checkpoint: {sorted(missing)[:5]}")
        torch.save({"model_state_dict": state, "config": base["config"], "epoch": base.get("epoch", 0)}, path)
        spec = {"backend": "sevennet", "model": str(path)}
    else:
        raise TypeError(f"cannot export {type(model).__name__}")
    spec["name"] = name or path.stem
    prov = {
        "file": str(path),
        "sha256": file_sha256(path),
        "backend": merged.backend,
        "base_model": dict(model.source),
        "finetune": None if getattr(model, "finetune_spec", None) is None else model.finetune_spec.as_dict(),
        "data_hash": data_hash,
        "hyperparameters": hyperparameters or {},
        "code_versions": code_versions(),
        "created": datetime.now(timezone.utc).isoformat(),
        **(extra or {}),
    }
    Path(str(path) + ".provenance.json").write_text(json.dumps(prov, indent=2, default=str))
    return {"path": str(path), "calculator_spec": spec, "provenance": prov}
