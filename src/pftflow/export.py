"""Export of labelled structure sets to extended XYZ, the training format of mace-torch and Equitrain.

Per frame: ``REF_energy`` (eV, info), ``REF_forces`` (eV/Å, per-atom array), ``REF_stress`` (eV/Å³,
info, Voigt xx yy zz yz xz xy with ASE's sign, positive = tensile: mace-torch reads a 6- or 9-vector),
and ``material_id``, ``config_type`` (the set name), ``labeller``.  Written with ``ase.io.write``;
per-atom arrays (positions, forces) are written with 8 decimals (ASE's ``%16.8f``), info values in full.
Read back with :func:`pftflow.training.data.read_extxyz` (the fine-tuning engine's co-training reader,
same keys), or with ``ase.io.read``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
from ase import Atoms

from pftflow.documents import LabelledSetDoc
from pftflow.flows.dataset import load_labelled_sets
from pftflow.run import open_store

ENERGY_KEY, FORCES_KEY, STRESS_KEY = "REF_energy", "REF_forces", "REF_stress"


def labelled_frames(doc: LabelledSetDoc) -> list[Atoms]:
    """The frames of one labelled set, with ``REF_*`` keys."""
    frames = []
    for k, a in enumerate(doc.to_atoms()):
        if doc.energies_eV is not None:
            a.info[ENERGY_KEY] = float(doc.energies_eV[k])
        if doc.stresses_eV_per_A3 is not None:
            a.info[STRESS_KEY] = np.asarray(doc.stresses_eV_per_A3[k], dtype=float)
        a.arrays[FORCES_KEY] = np.asarray(doc.forces_eV_per_A[k], dtype=float)
        a.info["material_id"] = doc.material_id
        a.info["config_type"] = doc.name
        a.info["labeller"] = doc.labeller
        frames.append(a)
    return frames


def write_extxyz(docs: Sequence[LabelledSetDoc], path: str | os.PathLike) -> Path:
    """Write every frame of ``docs`` to one extxyz file (parent folders are created)."""
    from ase.io import write

    frames = [f for d in docs for f in labelled_frames(d)]
    if not frames:
        raise ValueError(f"{path}: nothing to export (no labelled sets)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write(str(path), frames, format="extxyz")
    return path


def export_campaign(spec, out: str | os.PathLike, store=None) -> dict:
    """The latest labelled sets of a ``dataset`` campaign (spec order) written to ``out``; returns
    ``{"path", "n_frames", "sets": [{material_id, name, n_structures}]}``."""
    if getattr(spec, "kind", None) != "dataset":
        where = spec.path or spec.name
        raise ValueError(f"{where}: kind: export needs a 'dataset' campaign, this one is '{spec.kind}'; e.g. pftflow export workflows/dataset-gpaw-si-nacl.yaml --out data.extxyz")
    own = store is None
    store = store or open_store(spec)
    try:
        docs = load_labelled_sets(spec, store)
    finally:
        if own:
            store.close()
    if not docs:
        raise ValueError(f"{spec.path or spec.name}: the store {spec.store_dir} holds no labelled sets of campaign '{spec.name}'; run it first: pftflow run {spec.path or 'SPEC'}")
    path = write_extxyz(docs, out)
    return {"path": str(path), "n_frames": sum(d.n_structures for d in docs), "sets": [{"material_id": d.material_id, "name": d.name, "n_structures": d.n_structures} for d in docs]}
