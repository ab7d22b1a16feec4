"""Plumbing shared by the campaign builders (phonons, kappa, finetune): stage keys for store
reuse, job tagging, lookups of stored outputs, and material entries of import-mode specs."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from jobflow import Flow


def stage_key(*parts: Any) -> str:
    """Hash of everything that determines a stage's output (``metadata.pftflow_key``)."""
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def file_sha(path: str | None) -> str | None:
    """SHA-256 of a file, or None when there is no such file."""
    if path is None or not os.path.isfile(path):
        return None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tag_jobs(flow_or_job, meta: dict, *, overwrite: bool = True) -> None:
    """Merge ``meta`` into the metadata of every job of a (nested) flow; with
    ``overwrite=False`` keys a job already has are kept."""
    if isinstance(flow_or_job, Flow):
        for j in flow_or_job.jobs:
            tag_jobs(j, meta, overwrite=overwrite)
        return
    old = flow_or_job.metadata or {}
    flow_or_job.metadata = {**old, **meta} if overwrite else {**meta, **old}


def find_stored(store, key: str) -> dict | None:
    """Output of the latest completed job with ``metadata.pftflow_key == key`` (blobs loaded)."""
    doc = store.query_one({"metadata.pftflow_key": key}, properties=["uuid", "index"], sort={"completed_at": -1})
    if doc is None:
        return None
    return store.get_output(doc["uuid"], which="last", load=True)


def latest_by(docs: list[dict], keys: tuple[str, ...] = ("material_id", "model")) -> list[dict]:
    """The latest job doc (by completion time, then index) per combination of metadata ``keys``."""
    out: dict = {}
    for d in sorted(docs, key=lambda d: (str(d.get("completed_at", "")), d.get("index", 0))):
        out[tuple(d["metadata"].get(k) for k in keys)] = d
    return list(out.values())


def import_material(m: str | dict) -> dict:
    """An import-mode material entry: a path or ``{reference_file, id?, ...}``; the id defaults
    to the reader's (file stem, or folder name for atomate2's ``phonopy.yaml``)."""
    from pftflow.materials.readers import _default_material_id

    m = {"reference_file": m} if isinstance(m, str) else dict(m)
    m.setdefault("id", _default_material_id(Path(m["reference_file"])))
    return m
