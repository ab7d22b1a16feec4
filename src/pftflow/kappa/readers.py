"""Readers for the k_SRME κ benchmark set (phononDB PBE; Póta et al. 2025, Matbench Discovery).

* structures: extended XYZ, one frame per material, ``info`` keys ``fc2_supercell``,
  ``fc3_supercell``, ``primitive_matrix`` (absent = the cell is primitive), ``q_mesh``, ``mp_id``,
  ``name``, ``symm.no``.
* DFT reference: column-oriented JSON (``pandas.read_json``; ``.gz`` fine) with ``mp_id``,
  ``kappa_TOT_ave`` (W/m/K, per temperature), ``mode_kappa_TOT_ave`` (n_T, n_q, n_b; W/m/K with
  weights included), ``weights``, ``qpoints``, ``frequencies`` (THz), ``heat_capacity``,
  ``q_mesh``, ``temperatures``.  The NAC and noNAC variants are separate files.

Users pass the paths of the full files (103 materials); ``../shared/data/ksrme`` has a 4-material
subset in the same format.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

REFERENCE_GLOBS = {True: ("*_NAC*.json*",), False: ("*noNAC*.json*",)}


@dataclass
class KappaMaterial:
    """One material of the κ set.  Cell in Å; matrices as in phono3py (supercell = cell × matrix)."""

    material_id: str
    name: str
    atoms: Atoms
    fc2_supercell: np.ndarray  # (3, 3) int
    fc3_supercell: np.ndarray  # (3, 3) int
    primitive_matrix: np.ndarray | None  # (3, 3) or None
    q_mesh: list[int]
    spacegroup_number: int | None

    def as_dict(self) -> dict:
        from pftflow.materials.structures import atoms_to_dict

        return {
            "material_id": self.material_id,
            "name": self.name,
            "structure": atoms_to_dict(self.atoms),
            "fc2_supercell": np.asarray(self.fc2_supercell, dtype=int).tolist(),
            "fc3_supercell": np.asarray(self.fc3_supercell, dtype=int).tolist(),
            "primitive_matrix": None if self.primitive_matrix is None else np.asarray(self.primitive_matrix, float).tolist(),
            "q_mesh": [int(x) for x in self.q_mesh],
            "spacegroup_number": self.spacegroup_number,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "KappaMaterial":
        from pftflow.materials.structures import dict_to_atoms

        return cls(
            material_id=d["material_id"],
            name=d.get("name", d["material_id"]),
            atoms=dict_to_atoms(d["structure"]),
            fc2_supercell=np.asarray(d["fc2_supercell"], dtype=int),
            fc3_supercell=np.asarray(d["fc3_supercell"], dtype=int),
            primitive_matrix=None if d.get("primitive_matrix") is None else np.asarray(d["primitive_matrix"], float),
            q_mesh=[int(x) for x in d["q_mesh"]],
            spacegroup_number=d.get("spacegroup_number"),
        )


@dataclass
class KappaReference:
    """DFT κ of one material.  ``kappa_TOT_ave_W_per_mK`` (n_T,), ``mode_kappa_TOT_ave_W_per_mK``
    (n_T, n_q, n_b) with weights included, ``weights`` (n_q,), ``qpoints`` (n_q, 3),
    ``frequencies_THz`` (n_q, n_b)."""

    material_id: str
    name: str | None
    temperatures_K: np.ndarray
    kappa_TOT_ave_W_per_mK: np.ndarray
    mode_kappa_TOT_ave_W_per_mK: np.ndarray
    weights: np.ndarray
    qpoints: np.ndarray
    frequencies_THz: np.ndarray | None
    q_mesh: list[int] | None
    nac: bool | None = None
    source: str | None = None

    def kappa_at(self, temperature_K: float = 300.0) -> float:
        i = self._t_index(temperature_K)
        return float(self.kappa_TOT_ave_W_per_mK[i])

    def mode_kappa_at(self, temperature_K: float = 300.0) -> np.ndarray:
        return self.mode_kappa_TOT_ave_W_per_mK[self._t_index(temperature_K)]

    def _t_index(self, temperature_K: float) -> int:
        idx = np.flatnonzero(np.isclose(self.temperatures_K, temperature_K))
        if idx.size == 0:
            raise KeyError(f"{self.material_id}: reference has no {temperature_K} K (has {self.temperatures_K.tolist()})")
        return int(idx[0])

    def as_dict(self) -> dict:
        return {
            "material_id": self.material_id,
            "name": self.name,
            "temperatures_K": self.temperatures_K.tolist(),
            "kappa_TOT_ave_W_per_mK": self.kappa_TOT_ave_W_per_mK.tolist(),
            "mode_kappa_TOT_ave_W_per_mK": self.mode_kappa_TOT_ave_W_per_mK.tolist(),
            "weights": self.weights.tolist(),
            "qpoints": self.qpoints.tolist(),
            "frequencies_THz": None if self.frequencies_THz is None else self.frequencies_THz.tolist(),
            "q_mesh": self.q_mesh,
            "nac": self.nac,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "KappaReference":
        return cls(
            material_id=d["material_id"],
            name=d.get("name"),
            temperatures_K=np.asarray(d["temperatures_K"], float),
            kappa_TOT_ave_W_per_mK=np.asarray(d["kappa_TOT_ave_W_per_mK"], float),
            mode_kappa_TOT_ave_W_per_mK=np.asarray(d["mode_kappa_TOT_ave_W_per_mK"], float),
            weights=np.asarray(d["weights"], float),
            qpoints=np.asarray(d["qpoints"], float),
            frequencies_THz=None if d.get("frequencies_THz") is None else np.asarray(d["frequencies_THz"], float),
            q_mesh=d.get("q_mesh"),
            nac=d.get("nac"),
            source=d.get("source"),
        )


def _as_matrix(x, name: str, path, dtype=float) -> np.ndarray:
    m = np.asarray(x, dtype=dtype)
    if m.shape == (3,):
        m = np.diag(m)
    if m.shape != (3, 3):
        raise ValueError(f"{path}: info key {name!r} must be a 3x3 matrix (or 3 diagonal values), got shape {m.shape}")
    return m


def read_kappa_structures(path: str | os.PathLike) -> list[KappaMaterial]:
    """All materials of a κ-set structures extxyz file (k_SRME ``phononDB-PBE-structures.extxyz``)."""
    import ase.io

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"kappa structures file not found: {path}")
    out = []
    for i, atoms in enumerate(ase.io.read(path, index=":", format="extxyz")):
        info = atoms.info
        missing = [k for k in ("fc2_supercell", "fc3_supercell", "q_mesh", "mp_id") if k not in info]
        if missing:
            raise ValueError(f"{path}: frame {i} lacks info keys {missing}")
        a = Atoms(atoms.get_chemical_symbols(), cell=atoms.cell[:], positions=atoms.positions, pbc=True)
        sg = info.get("symm.no")
        out.append(
            KappaMaterial(
                material_id=str(info["mp_id"]),
                name=str(info.get("name", info["mp_id"])),
                atoms=a,
                fc2_supercell=_as_matrix(info["fc2_supercell"], "fc2_supercell", path, int),
                fc3_supercell=_as_matrix(info["fc3_supercell"], "fc3_supercell", path, int),
                primitive_matrix=None if info.get("primitive_matrix") is None else _as_matrix(info["primitive_matrix"], "primitive_matrix", path),
                q_mesh=[int(x) for x in np.asarray(info["q_mesh"]).ravel()],
                spacegroup_number=None if sg is None else int(sg),
            )
        )
    return out


def resolve_reference_path(path: str | os.PathLike, nac: bool = True) -> Path:
    """A reference file path; a directory is searched for the NAC (``*_NAC*.json*``) or noNAC
    (``*noNAC*.json*``) file."""
    p = Path(path).expanduser()
    if p.is_file():
        return p
    if p.is_dir():
        hits = sorted(h for g in REFERENCE_GLOBS[bool(nac)] for h in p.glob(g))
        if nac:
            hits = [h for h in hits if "noNAC" not in h.name]
        if len(hits) == 1:
            return hits[0]
        raise FileNotFoundError(
            f"{p}: expected exactly one {'NAC' if nac else 'noNAC'} reference JSON, found {[h.name for h in hits]}"
        )
    raise FileNotFoundError(f"kappa reference not found: {p}")


def read_kappa_reference(path: str | os.PathLike, nac: bool | None = None) -> dict[str, KappaReference]:
    """DFT κ reference by material id from the column-oriented JSON (k_SRME
    ``kappas_phononDB_PBE_{NAC,noNAC}.json.gz``); ``path`` may be a directory (then ``nac`` picks
    the file, default NAC)."""
    import pandas as pd

    p = resolve_reference_path(path, True if nac is None else nac)
    df = pd.read_json(p)
    need = ["mp_id", "kappa_TOT_ave", "mode_kappa_TOT_ave", "weights", "qpoints"]
    missing = [k for k in need if k not in df.columns]
    if missing:
        raise ValueError(f"{p}: reference JSON lacks columns {missing} (has {list(df.columns)})")
    if nac is None:
        nac = None if "NAC" not in p.name else ("noNAC" not in p.name)
    out = {}
    for _, row in df.iterrows():
        kap = np.atleast_1d(np.asarray(row["kappa_TOT_ave"], dtype=float))
        mode = np.asarray(row["mode_kappa_TOT_ave"], dtype=float)
        if mode.ndim == 2:
            mode = mode[None]
        temps = row["temperatures"] if "temperatures" in df.columns else [300.0]
        mid = str(row["mp_id"])
        out[mid] = KappaReference(
            material_id=mid,
            name=str(row["name"]) if "name" in df.columns else None,
            temperatures_K=np.atleast_1d(np.asarray(temps, dtype=float)),
            kappa_TOT_ave_W_per_mK=kap,
            mode_kappa_TOT_ave_W_per_mK=mode,
            weights=np.asarray(row["weights"], dtype=float),
            qpoints=np.asarray(row["qpoints"], dtype=float),
            frequencies_THz=np.asarray(row["frequencies"], dtype=float) if "frequencies" in df.columns else None,
            q_mesh=[int(x) for x in row["q_mesh"]] if "q_mesh" in df.columns else None,
            nac=nac,
            source=str(p),
        )
    return out
