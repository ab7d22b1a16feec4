"""One identity for every result: campaign, kind, material id, model name, stage.

Everything that names a result goes through this module: job tagging (``metadata``), store
queries, reuse keys and result tables.  The two naming rules live here and nowhere else:

* :func:`material_id_from_path` — the material id of a reference file when the spec gives none;
* :func:`model_name` — the display name of a calculator spec.

A :class:`ResultId` is stored in every job's ``metadata`` (flat keys, so MongoDB / SQLite-store
queries like ``{"metadata.material_id": "Si"}`` work) together with ``pftflow_key``, the hash of
everything that determines the job's output (:func:`content_key`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

#: stage names, in pipeline order (a job's ``metadata.stage``)
STAGES = (
    "parameters",  # the recorded spec and software versions
    "reference",  # reference phonons: import, or relax -> displacements -> forces (DFT / teacher)
    "relax",  # model relaxation
    "displacements",  # displacement set (phonopy fc2 / phono3py fc3)
    "forces",  # force set of a model or reference calculator
    "analysis",  # phonon analysis (force constants, thermal, bands, mesh)
    "compare",  # metrics of a model against the reference
    "kappa",  # phono3py conductivity and SRME
    "training_data",  # labelled structures for fine-tuning
    "train",  # a fine-tuning run
)

REFERENCE_MODEL = "reference"

_COMPRESSED = (".bz2", ".xz", ".lzma", ".gz")
_YAML = (".yaml", ".yml")
_GENERIC_STEMS = {"phonopy", "phonopy_params", "phonopy_disp", "FORCE_SETS"}
_PREFIXES = ("phonopy_params_", "phonopy_disp_", "FORCE_SETS_")


class ResultId(BaseModel):
    """Who a job's output belongs to (stored flat in the job's ``metadata``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    campaign: str = Field(description="campaign name (spec `name`)")
    kind: str = Field(description="campaign kind: phonons | kappa | finetune")
    material_id: str | None = Field(None, description="material id (spec `id`, else from the file name)")
    model: str | None = Field(None, description="model name (`reference` for the reference calculation)")
    stage: str = Field(description=f"pipeline stage, one of {STAGES}")

    def metadata(self, key: str | None = None, **extra: Any) -> dict:
        """Flat job metadata: the identity, plus ``pftflow_key`` when given."""
        out = {k: v for k, v in self.model_dump().items() if v is not None}
        if key is not None:
            out["pftflow_key"] = key
        out.update(extra)
        return out

    def query(self) -> dict:
        """Store query for jobs of this identity (``metadata.*`` fields)."""
        return {f"metadata.{k}": v for k, v in self.model_dump().items() if v is not None}

    def with_(self, **kw: Any) -> "ResultId":
        return self.model_copy(update=kw)


def material_id_from_path(path: str | os.PathLike) -> str:
    """Material id of a reference file: the file stem without compression / YAML suffixes and
    phonopy prefixes (``mp-149.yaml.bz2`` -> ``mp-149``, ``phonopy_params_NaCl.yaml.xz`` ->
    ``NaCl``); the folder name for a generic name (atomate2's ``mp-2534/phonopy.yaml.xz`` ->
    ``mp-2534``); the chalcogenide set's ``mp-1000.phonopy.yaml.xz`` -> ``mp-1000``."""
    path = Path(path)
    name = path.name
    for ext in _COMPRESSED:
        if name.endswith(ext):
            name = name[: -len(ext)]
    for ext in _YAML:
        if name.endswith(ext):
            name = name[: -len(ext)]
    if name.endswith(".phonopy"):
        name = name[: -len(".phonopy")]
    if name in _GENERIC_STEMS or not name:
        return path.parent.name
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def model_name(spec: dict | str) -> str:
    """Display name of a calculator spec: its ``name``, else ``backend:model`` (or the backend)."""
    if isinstance(spec, str):
        return spec
    if spec.get("name"):
        return str(spec["name"])
    backend = spec.get("backend") or spec.get("type") or "model"
    model = spec.get("model")
    if model:
        return f"{backend}:{Path(str(model)).name if os.sep in str(model) else model}"
    return str(backend)


def content_key(*parts: Any) -> str:
    """Hash of everything that determines an output (``metadata.pftflow_key``)."""
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def file_sha(path: str | os.PathLike | None) -> str | None:
    """SHA-256 of a file, or None when there is no such file."""
    if path is None or not os.path.isfile(path):
        return None
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()
