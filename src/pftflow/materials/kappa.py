"""κ-set material records and their readers (k_SRME phononDB PBE set; Póta et al. 2025, Matbench Discovery).

* structures: extended XYZ, one frame per material, ``info`` keys ``fc2_supercell``,
  ``fc3_supercell``, ``primitive_matrix`` (absent = the cell is primitive), ``q_mesh``, ``mp_id``,
  ``name``, ``symm.no`` -> :class:`KappaMaterial`.
* DFT reference: column-oriented JSON (``pandas.read_json``; ``.gz`` fine) with ``mp_id``,
  ``kappa_TOT_ave`` (W/m/K, per temperature), ``mode_kappa_TOT_ave`` (n_T, n_q, n_b; W/m/K with
  weights included), ``weights``, ``qpoints``, ``frequencies`` (THz), ``heat_capacity``,
  ``q_mesh``, ``temperatures`` -> :class:`KappaReference`.  The NAC and noNAC variants are
  separate files.

Both records are pydantic documents (:class:`~pftflow.serialization.Document`): they cross job
boundaries and the store as they are (arrays as :data:`~pftflow.serialization.Array`, the cell as
:data:`~pftflow.serialization.Structure`).

Users pass the paths of the full files (103 materials); ``../shared/data/ksrme`` has a 4-material
subset in the same format.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from ase import Atoms
from pydantic import Field, field_validator

from pftflow.serialization import Array, Document, Structure

REFERENCE_GLOBS = {True: ("*_NAC*.json*",), False: ("*noNAC*.json*",)}


class KappaMaterial(Document):
    """One material of the κ set.  Matrices as in phono3py (supercell = cell × matrix)."""

    material_id: str = Field(description="material id (the file's mp_id)")
    name: str = Field(description="display name, e.g. NaCl")
    atoms: Structure = Field(description="the DFT unit cell (Å, amu)")
    fc2_supercell: Array = Field(description="(3, 3) integers: phonon (fc2) supercell matrix")
    fc3_supercell: Array = Field(description="(3, 3) integers: fc3 supercell matrix")
    primitive_matrix: Array | None = Field(None, description="(3, 3) primitive matrix, or None (the cell is primitive)")
    q_mesh: list[int] = Field(min_length=3, max_length=3, description="Γ-centred q-mesh of the reference κ")
    spacegroup_number: int | None = Field(None, description="space group number of the file (symm.no)")

    @field_validator("fc2_supercell", "fc3_supercell", mode="after")
    @classmethod
    def _int_matrix(cls, v):
        return np.asarray(v, dtype=int)

    @field_validator("primitive_matrix", mode="after")
    @classmethod
    def _float_matrix(cls, v):
        return None if v is None else np.asarray(v, dtype=float)


class KappaReference(Document):
    """DFT κ of one material at one or more temperatures."""

    material_id: str = Field(description="material id (mp_id)")
    name: str | None = Field(None, description="display name")
    temperatures_K: Array = Field(description="temperatures (K), shape (n_T,)")
    kappa_TOT_ave_W_per_mK: Array = Field(description="κ = trace/3 of the total κ tensor (W/m/K), shape (n_T,)")
    mode_kappa_TOT_ave_W_per_mK: Array = Field(description="per-mode total κ, trace/3, q-point weights included (W/m/K), shape (n_T, n_q, n_b)")
    weights: Array = Field(description="irreducible q-point weights, shape (n_q,)")
    qpoints: Array = Field(description="irreducible q-points (reduced coordinates), shape (n_q, 3)")
    frequencies_THz: Array | None = Field(None, description="phonon frequencies (THz), shape (n_q, n_b)")
    q_mesh: list[int] | None = Field(None, description="Γ-centred q-mesh of the reference")
    nac: bool | None = Field(None, description="DFT with non-analytic correction (None: unknown)")
    source: str | None = Field(None, description="path of the reference file")

    @field_validator("temperatures_K", "kappa_TOT_ave_W_per_mK", "mode_kappa_TOT_ave_W_per_mK", "weights", "qpoints", "frequencies_THz", mode="after")
    @classmethod
    def _float(cls, v):
        return None if v is None else np.asarray(v, dtype=float)

    def kappa_at(self, temperature_K: float = 300.0) -> float:
        """κ (W/m/K) at one temperature of the reference."""
        return float(self.kappa_TOT_ave_W_per_mK[self._t_index(temperature_K)])

    def mode_kappa_at(self, temperature_K: float = 300.0) -> np.ndarray:
        """Per-mode κ (W/m/K, weights included), (n_q, n_b), at one temperature of the reference."""
        return self.mode_kappa_TOT_ave_W_per_mK[self._t_index(temperature_K)]

    def _t_index(self, temperature_K: float) -> int:
        idx = np.flatnonzero(np.isclose(self.temperatures_K, temperature_K))
        if idx.size == 0:
            raise KeyError(f"{self.material_id}: reference has no {temperature_K} K (has {self.temperatures_K.tolist()})")
        return int(idx[0])


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
