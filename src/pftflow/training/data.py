"""Training data: structures with any of energy / forces / stress / Hessian targets, and their builders.

Builders (all pure: reference data in, :class:`LabelledStructure` list out):

* :func:`from_phonon_reference` - the (relaxed) reference supercell with its Hessian (3N, 3N) from the force
  constants (eV/Å², not mass-weighted); force and stress targets are 0 (the reference is relaxed), the energy
  target is the stored supercell energy when finite.
* :func:`from_displacements` - the displaced supercells of a finite-displacement dataset with reference forces
  (eV/Å) and energies when stored.
* :func:`from_labelled_atoms` / :func:`rattle_and_label` - labelled rattled structures.
* :func:`read_extxyz` / :func:`write_extxyz` - an upstream co-training set (``REF_energy``, ``REF_forces``,
  ``REF_stress`` keys, as MACE's fine-tuning sets use).

Units: Å, eV, eV/Å, eV/Å³ (ASE sign, positive = tensile; stored as 3x3), eV/Å².
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from ase import Atoms
from pydantic import Field, field_validator, model_validator

from pftflow.calculators import get_calculator
from pftflow.identity import material_id_from_path
from pftflow.materials.readers import read_reference
from pftflow.materials.structures import phonopy_to_atoms
from pftflow.serialization import Array, Document, Structure, atoms_to_dict
from pftflow.training.fold import fold_force_constants, reduced_matrix


class LabelledStructure(Document):
    """One training structure; any target may be ``None`` (a missing or non-finite energy is ``None``).

    A pydantic document: arrays are stored as compressed blobs (:mod:`pftflow.serialization`) and read back
    bit for bit.  Positional construction ``LabelledStructure(atoms, energy, forces, stress, hessian)`` is kept.
    """

    atoms: Structure = Field(description="the structure (cell and positions in Å, masses in amu)")
    energy_eV: float | None = Field(None, description="energy target (eV); None when unknown")
    forces_eV_per_A: Array | None = Field(None, description="force targets (eV/Å), shape (N, 3)")
    stress_eV_per_A3: Array | None = Field(None, description="stress target (eV/Å³, ASE sign, positive = tensile), 3x3")
    hessian_eV_per_A2: Array | None = Field(None, description="Hessian target d²E/dr dr (eV/Å², not mass-weighted), (3N, 3N)")
    material_id: str = Field("", description="material id the structure comes from")
    kind: str = Field("", description="phonon_reference | displacement | rattled | upstream")

    def __init__(self, atoms=None, energy_eV=None, forces_eV_per_A=None, stress_eV_per_A3=None, hessian_eV_per_A2=None, **kw):
        super().__init__(
            atoms=atoms, energy_eV=energy_eV, forces_eV_per_A=forces_eV_per_A, stress_eV_per_A3=stress_eV_per_A3,
            hessian_eV_per_A2=hessian_eV_per_A2, **kw,
        )

    @field_validator("energy_eV", mode="before")
    @classmethod
    def _energy(cls, v):
        if v is None:
            return None
        v = float(v)
        return v if math.isfinite(v) else None

    @model_validator(mode="after")
    def _shapes(self):
        n = len(self.atoms)
        if self.stress_eV_per_A3 is not None:
            self.stress_eV_per_A3 = voigt_to_matrix(self.stress_eV_per_A3)
        if self.forces_eV_per_A is not None:
            self.forces_eV_per_A = np.asarray(self.forces_eV_per_A, dtype=float).reshape(n, 3)
        if self.hessian_eV_per_A2 is not None:
            self.hessian_eV_per_A2 = np.asarray(self.hessian_eV_per_A2, dtype=float).reshape(3 * n, 3 * n)
        return self


def voigt_to_matrix(s) -> np.ndarray:
    """(6,) Voigt (xx, yy, zz, yz, xz, xy) or (9,) or (3, 3) -> symmetric (3, 3)."""
    s = np.asarray(s, dtype=float)
    if s.shape == (3, 3):
        return s
    if s.size == 9:
        return s.reshape(3, 3)
    if s.size == 6:
        xx, yy, zz, yz, xz, xy = s
        return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    raise ValueError(f"stress must have 6, 9 or 3x3 entries, got shape {s.shape}")


def _hash_record(s: LabelledStructure) -> dict:
    """Canonical JSON form of a structure for :func:`dataset_hash`: plain lists, independent of how the store
    encodes arrays (blob compression may differ between zlib versions); the same form as before issue 7, so
    the data hash of a training set did not change."""

    def arr(x):
        return None if x is None else np.asarray(x, dtype=float).tolist()

    return {
        "atoms": atoms_to_dict(s.atoms),
        "energy_eV": s.energy_eV,
        "forces_eV_per_A": arr(s.forces_eV_per_A),
        "stress_eV_per_A3": arr(s.stress_eV_per_A3),
        "hessian_eV_per_A2": arr(s.hessian_eV_per_A2),
        "material_id": s.material_id,
        "kind": s.kind,
    }


def dataset_hash(structures: Sequence[LabelledStructure]) -> str:
    """SHA-256 of the training data (structures and targets, full precision) for provenance."""
    h = hashlib.sha256()
    for s in structures:
        h.update(json.dumps(_hash_record(s), sort_keys=True, default=lambda x: round(float(x), 10)).encode())
    return h.hexdigest()


# ----------------------------------------------------------------------------------------- references
def as_reference(ref: Any):
    """A ``PhononReference`` from a path (any format :func:`pftflow.materials.readers.read_reference` reads),
    or ``ref`` itself when it already is one (or a :class:`phonopy.Phonopy` with force constants / forces)."""
    if isinstance(ref, (str, os.PathLike)):
        return read_reference(str(ref))
    return ref


def load_phonopy(ref: Any):
    """A :class:`phonopy.Phonopy` with force constants from a path, a ``PhononReference`` or a Phonopy."""
    ref = as_reference(ref)
    return ref.to_phonopy() if hasattr(ref, "to_phonopy") else ref


def _full_fc(ph) -> np.ndarray:
    fc = np.asarray(ph.force_constants)
    if fc.shape[0] != fc.shape[1]:
        from phonopy.harmonic.force_constants import compact_fc_to_full_fc

        fc = compact_fc_to_full_fc(ph.primitive, fc)
    return fc


def fc_to_hessian(fc: np.ndarray) -> np.ndarray:
    """Force constants (n, n, 3, 3) eV/Å² -> Hessian (3n, 3n) eV/Å² (not mass-weighted)."""
    n = fc.shape[0]
    return np.asarray(fc).transpose(0, 2, 1, 3).reshape(3 * n, 3 * n)


def hessian_to_fc(h: np.ndarray) -> np.ndarray:
    n = h.shape[0] // 3
    return np.asarray(h).reshape(n, 3, n, 3).transpose(0, 2, 1, 3)


def material_id_of(ref: Any, default: str = "") -> str:
    """Material id of a reference: its ``material_id`` when it has one, the file-name rule of
    :func:`pftflow.identity.material_id_from_path` for a path, else ``default``."""
    mid = getattr(ref, "material_id", None)
    if mid:
        return str(mid)
    if isinstance(ref, (str, os.PathLike)):
        return material_id_from_path(ref)
    return default


#: old private name, still imported by :mod:`pftflow.training.evaluate`
_material_id = material_id_of


def from_phonon_reference(ref: Any, material_id: str | None = None, fold_max_atoms: int | None = None) -> list[LabelledStructure]:
    """The reference supercell with Hessian target (eV/Å²), zero force and stress targets.

    ``fold_max_atoms``: fold the force constants (:mod:`pftflow.training.fold`, exact at the q-points
    commensurate with the smaller cell) onto a supercell whose matrix divides the reference's, dividing rows
    until it has at most this many atoms or no row divides further (the cell is then the smallest reached)."""
    ref = as_reference(ref)
    ph = load_phonopy(ref)
    n_big = len(ph.supercell)
    if fold_max_atoms is not None and n_big > fold_max_atoms:
        m = reduced_matrix(ph.supercell_matrix, ph.unitcell.cell, len(ph.unitcell), fold_max_atoms)
        if m is not None:
            ph = fold_force_constants(ph, m)
    atoms = phonopy_to_atoms(ph.supercell)
    n = len(atoms)
    energy = getattr(ref, "energy_eV", None)
    if energy is not None and n != n_big:  # the energy of the reference supercell, per the folded cell's atoms
        energy = float(energy) * n / n_big
    return [
        LabelledStructure(
            atoms=atoms,
            energy_eV=energy,
            forces_eV_per_A=np.zeros((n, 3)),
            stress_eV_per_A3=np.zeros((3, 3)),
            hessian_eV_per_A2=fc_to_hessian(_full_fc(ph)),
            material_id=material_id or material_id_of(ref, "material"),
            kind="phonon_reference",
        )
    ]


def from_displacements(ref: Any, material_id: str | None = None) -> list[LabelledStructure]:
    """Displaced supercells of the reference finite-displacement dataset with their DFT forces (eV/Å)."""
    ref = as_reference(ref)
    ph = load_phonopy(ref)
    forces = ph.forces
    if forces is None:
        raise ValueError(f"{material_id_of(ref, 'reference')}: the displacement dataset has no forces")
    energies = None
    ds = ph.dataset or {}
    if ds.get("supercell_energies") is not None:
        energies = np.asarray(ds["supercell_energies"], dtype=float)
    elif "first_atoms" in ds and all("supercell_energy" in fa for fa in ds["first_atoms"]):
        energies = np.array([fa["supercell_energy"] for fa in ds["first_atoms"]], dtype=float)
    mid = material_id or material_id_of(ref, "material")
    out = []
    for k, sc in enumerate(ph.supercells_with_displacements):
        out.append(
            LabelledStructure(
                atoms=phonopy_to_atoms(sc),
                energy_eV=None if energies is None else float(energies[k]),
                forces_eV_per_A=np.asarray(forces[k]),
                material_id=mid,
                kind="displacement",
            )
        )
    return out


def from_labelled_atoms(
    atoms_list: Sequence[Atoms],
    *,
    energy_key: str | None = None,
    forces_key: str | None = None,
    stress_key: str | None = None,
    material_id: str = "",
    kind: str = "rattled",
) -> list[LabelledStructure]:
    """Labelled structures from ASE Atoms: targets from ``info``/``arrays`` keys, or from an attached
    (single-point) calculator when the key is ``None``."""
    out = []
    for a in atoms_list:
        e = f = s = None
        if energy_key:
            e = a.info.get(energy_key)
        elif a.calc is not None and "energy" in a.calc.results:
            e = a.calc.results["energy"]
        if forces_key:
            f = a.arrays.get(forces_key)
        elif a.calc is not None and "forces" in a.calc.results:
            f = a.calc.results["forces"]
        if stress_key:
            s = a.info.get(stress_key)
        elif a.calc is not None and "stress" in a.calc.results:
            s = a.calc.results["stress"]
        atoms = Atoms(a.get_chemical_symbols(), positions=a.positions, cell=a.cell, pbc=a.pbc)
        out.append(LabelledStructure(atoms, e, f, s, material_id=material_id or a.info.get("material_id", ""), kind=kind))
    return out


def rattle_and_label(
    atoms: Atoms, calculator, n: int = 10, amplitude_A: float = 0.03, seed: int = 0, material_id: str = ""
) -> list[LabelledStructure]:
    """``n`` rattled copies (Gaussian, ``amplitude_A`` Å) labelled by a ``pftflow`` ForceCalculator (e.g. DFT)."""
    rng = np.random.default_rng(seed)
    structs = []
    for _ in range(n):
        a = atoms.copy()
        a.positions += rng.normal(scale=amplitude_A, size=a.positions.shape)
        structs.append(a)
    res = get_calculator(calculator).compute(structs, stress=True)
    out = []
    for k, a in enumerate(structs):
        out.append(
            LabelledStructure(
                a,
                float(res.energies_eV[k]),
                res.forces_eV_per_A[k],
                None if res.stresses_eV_per_A3 is None else res.stresses_eV_per_A3[k],
                material_id=material_id,
                kind="rattled",
            )
        )
    return out


def read_extxyz(
    path: str | os.PathLike,
    energy_key: str = "REF_energy",
    forces_key: str = "REF_forces",
    stress_key: str = "REF_stress",
    index: str = ":",
) -> list[LabelledStructure]:
    """Upstream co-training set from extxyz (missing keys -> no target of that kind)."""
    from ase.io import read

    frames = read(str(path), index=index, format="extxyz")
    return from_labelled_atoms(
        frames, energy_key=energy_key, forces_key=forces_key, stress_key=stress_key, kind="upstream"
    )


def write_extxyz(structures: Sequence[LabelledStructure], path: str | os.PathLike) -> Path:
    """Write structures with ``REF_energy`` / ``REF_forces`` / ``REF_stress`` (Voigt, eV/Å³) keys."""
    from ase.io import write

    frames = []
    for s in structures:
        a = s.atoms.copy()
        if s.energy_eV is not None:
            a.info["REF_energy"] = float(s.energy_eV)
        if s.forces_eV_per_A is not None:
            a.arrays["REF_forces"] = np.asarray(s.forces_eV_per_A, dtype=float)
        if s.stress_eV_per_A3 is not None:
            m = s.stress_eV_per_A3
            a.info["REF_stress"] = np.array([m[0, 0], m[1, 1], m[2, 2], m[1, 2], m[0, 2], m[0, 1]])
        if s.material_id:
            a.info["material_id"] = s.material_id
        frames.append(a)
    path = Path(path)
    write(str(path), frames, format="extxyz")
    return path


def build_training_set(spec: dict) -> list[LabelledStructure]:
    """Training structures from a spec (see docs/training.md)::

        {"phonon_references": [paths], "displacements": [paths], "extxyz": [paths],
         "rattled": [{"path": ..., "energy_key": ..., ...}]}
    """
    out: list[LabelledStructure] = []
    for p in spec.get("phonon_references", []) or []:
        out += from_phonon_reference(p)
    for p in spec.get("displacements", []) or []:
        out += from_displacements(p)
    for p in spec.get("extxyz", []) or []:
        out += read_extxyz(p) if isinstance(p, (str, os.PathLike)) else read_extxyz(**p)
    for r in spec.get("rattled", []) or []:
        from ase.io import read

        r = dict(r)
        frames = read(str(r.pop("path")), index=":")
        out += from_labelled_atoms(frames, **r)
    return out


class TrainingData(Document):
    """Train / validation / co-training structures as handed to the trainer (``TrainingData(train, valid,
    cotrain)`` positionally, as before)."""

    train: list[LabelledStructure] = Field(description="phonon (Hessian) and other training structures")
    valid: list[LabelledStructure] = Field(default_factory=list, description="validation structures (empty: validate on train)")
    cotrain: list[LabelledStructure] = Field(default_factory=list, description="upstream E/F/σ co-training structures")

    def __init__(self, train=None, valid=None, cotrain=None, **kw):
        super().__init__(train=list(train or []), valid=list(valid or []), cotrain=list(cotrain or []), **kw)

    def data_hash(self) -> str:
        return dataset_hash(list(self.train) + list(self.valid) + list(self.cotrain))

    def counts(self) -> dict[str, int]:
        return {"train": len(self.train), "valid": len(self.valid), "cotrain": len(self.cotrain)}
