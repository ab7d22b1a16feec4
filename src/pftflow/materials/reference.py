"""The in-memory reference phonon object every reader returns.

A :class:`PhononReference` holds what a DFT phonon calculation produced for one material:
the unit cell, supercell and primitive matrices, the finite-displacement dataset with forces
and/or the force constants, and any thermal properties stored with it.  It knows how to build
a :class:`phonopy.Phonopy` object with force constants, which is how every downstream step
(phonon analysis, metrics, Hessians for training) consumes it.

Units: Å, eV/Å (forces), eV/Å² (force constants), THz, K, kJ/mol (free energy per mole of
primitive cells, as phonopy reports it), J/K/mol (entropy, heat capacity).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms

from pftflow.materials.structures import atoms_to_dict, atoms_to_phonopy, dict_to_atoms


class ReferenceFormatError(ValueError):
    """A reference file is missing data or has data of the wrong shape; the message names the file."""


@dataclass
class ThermalProperties:
    """Harmonic thermal properties per mole of primitive cells (phonopy's convention)."""

    temperatures_K: np.ndarray
    free_energy_kJ_per_mol: np.ndarray
    entropy_J_per_K_mol: np.ndarray
    heat_capacity_J_per_K_mol: np.ndarray

    def at(self, temperature_K: float) -> dict[str, float]:
        """Values at one temperature (must be on the grid)."""
        idx = np.flatnonzero(np.isclose(self.temperatures_K, temperature_K))
        if idx.size == 0:
            raise KeyError(f"temperature {temperature_K} K not in {list(self.temperatures_K)}")
        i = int(idx[0])
        return {
            "free_energy_kJ_per_mol": float(self.free_energy_kJ_per_mol[i]),
            "entropy_J_per_K_mol": float(self.entropy_J_per_K_mol[i]),
            "heat_capacity_J_per_K_mol": float(self.heat_capacity_J_per_K_mol[i]),
        }

    def as_dict(self) -> dict:
        return {k: np.asarray(v, dtype=float).tolist() for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "ThermalProperties":
        return cls(**{k: np.asarray(v, dtype=float) for k, v in d.items() if not k.startswith("@")})


@dataclass
class PhononReference:
    """Reference harmonic phonon data for one material.

    Attributes
    ----------
    material_id: identifier (e.g. ``mp-149``).
    unitcell: the cell the supercell matrix refers to (ASE Atoms with masses, Å).
    supercell_matrix: (3, 3) integer matrix, supercell = unitcell x matrix.
    primitive_matrix: (3, 3) matrix or ``None`` (unit cell is primitive).
    dataset: phonopy displacement dataset (``{"natom", "first_atoms": [...]}`` with ``forces`` in eV/Å,
        or type-2 ``{"displacements", "forces"}``) or ``None``.
    force_constants: full force constants (n_sc, n_sc, 3, 3) in eV/Å², or ``None``.
    thermal: thermal properties stored with the reference (DFT values), or ``None``.
    commensurate_frequencies_THz: stored frequencies at commensurate q-points (n_q, n_bands) or ``None``.
    nac_params: phonopy NAC parameters (born, dielectric, factor) or ``None``.
    energy_eV: total energy of the (undisplaced) supercell if stored; NaN or None when missing
        (stored as JSON null, read back as None).
    provenance: where the data came from (path, format, sha256, code versions).
    """

    material_id: str
    unitcell: Atoms
    supercell_matrix: np.ndarray
    primitive_matrix: np.ndarray | None = None
    dataset: dict | None = None
    force_constants: np.ndarray | None = None
    thermal: ThermalProperties | None = None
    commensurate_frequencies_THz: np.ndarray | None = None
    nac_params: dict | None = None
    energy_eV: float | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ phonopy
    def to_phonopy(
        self,
        *,
        produce_fc: bool = True,
        symmetrize_fc: bool = True,
        use_nac: bool = True,
        symprec: float = 1e-5,
    ):
        """Build a :class:`phonopy.Phonopy` with force constants (eV/Å²).

        Force constants come from the stored ``force_constants`` if present, otherwise they are
        produced from the displacement dataset (full, not compact, then symmetrized when
        ``symmetrize_fc`` with phonopy's traditional translational/permutational symmetrization).
        ``phonopy.load`` symmetrizes with the symfc projector instead (~100x slower for a 512-atom
        supercell); the two agree to ~3e-14 eV/Å², not bitwise.
        """
        import phonopy

        ph = phonopy.Phonopy(
            atoms_to_phonopy(self.unitcell),
            supercell_matrix=np.asarray(self.supercell_matrix),
            primitive_matrix=None if self.primitive_matrix is None else np.asarray(self.primitive_matrix),
            symprec=symprec,
        )
        if self.dataset is not None:
            ph.dataset = copy.deepcopy(self.dataset)
        if self.nac_params is not None and use_nac:
            ph.nac_params = copy.deepcopy(self.nac_params)
        if produce_fc:
            if self.force_constants is not None:
                ph.force_constants = np.asarray(self.force_constants, dtype=float)
            elif self.dataset is not None:
                ph.produce_force_constants()
                if symmetrize_fc:
                    ph.symmetrize_force_constants()
            else:
                raise ReferenceFormatError(
                    f"{self.material_id}: reference has neither force constants nor a displacement "
                    f"dataset with forces (source: {self.provenance.get('path', '?')})"
                )
        return ph

    @property
    def supercell(self) -> Atoms:
        """The phonopy supercell as ASE Atoms (ordering = phonopy's)."""
        from pftflow.materials.structures import phonopy_to_atoms

        return phonopy_to_atoms(self.to_phonopy(produce_fc=False).supercell)

    def supercell_hessian(self) -> np.ndarray:
        """Supercell Hessian d²E/dr_i dr_j as a (3N, 3N) array in eV/Å² (not mass-weighted)."""
        fc = self.to_phonopy().force_constants
        n = fc.shape[0]
        if fc.shape[1] != n:
            raise ValueError("compact force constants cannot be turned into a full Hessian")
        return np.asarray(fc).transpose(0, 2, 1, 3).reshape(3 * n, 3 * n)

    # ------------------------------------------------------------------ serialization
    def as_dict(self) -> dict:
        """JSON-able dict (for the store); large arrays are plain nested lists."""

        def arr(x):
            return None if x is None else np.asarray(x).tolist()

        return {
            "@module": self.__class__.__module__,
            "@class": self.__class__.__name__,
            "material_id": self.material_id,
            "unitcell": atoms_to_dict(self.unitcell),
            "supercell_matrix": arr(self.supercell_matrix),
            "primitive_matrix": arr(self.primitive_matrix),
            "dataset": _dataset_to_json(self.dataset),
            "force_constants": arr(self.force_constants),
            "thermal": None if self.thermal is None else self.thermal.as_dict(),
            "commensurate_frequencies_THz": arr(self.commensurate_frequencies_THz),
            "nac_params": _nac_to_json(self.nac_params),
            # NaN (missing energy in MDR files) is stored as null: strict JSON has no NaN
            "energy_eV": None if self.energy_eV is None or np.isnan(self.energy_eV) else float(self.energy_eV),
            "provenance": dict(self.provenance),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "PhononReference":
        def arr(x, dtype=float):
            return None if x is None else np.asarray(x, dtype=dtype)

        return cls(
            material_id=d["material_id"],
            unitcell=dict_to_atoms(d["unitcell"]),
            supercell_matrix=arr(d["supercell_matrix"], int),
            primitive_matrix=arr(d.get("primitive_matrix")),
            dataset=_dataset_from_json(d.get("dataset")),
            force_constants=arr(d.get("force_constants")),
            thermal=None if d.get("thermal") is None else ThermalProperties.from_dict(d["thermal"]),
            commensurate_frequencies_THz=arr(d.get("commensurate_frequencies_THz")),
            nac_params=_nac_from_json(d.get("nac_params")),
            energy_eV=d.get("energy_eV"),
            provenance=d.get("provenance", {}),
        )


def _dataset_to_json(ds: dict | None) -> dict | None:
    if ds is None:
        return None
    out: dict[str, Any] = {}
    for k, v in ds.items():
        if k == "first_atoms":
            out[k] = [
                {kk: (np.asarray(vv).tolist() if isinstance(vv, np.ndarray) else vv) for kk, vv in fa.items()}
                for fa in v
            ]
        elif isinstance(v, np.ndarray):
            out[k] = v.tolist()
        else:
            out[k] = v
    return out


def _dataset_from_json(ds: dict | None) -> dict | None:
    if ds is None:
        return None
    out: dict[str, Any] = {}
    for k, v in ds.items():
        if k == "first_atoms":
            fas = []
            for fa in v:
                fa = dict(fa)
                fa["number"] = int(fa["number"])
                fa["displacement"] = np.asarray(fa["displacement"], dtype=float)
                if fa.get("forces") is not None:
                    fa["forces"] = np.asarray(fa["forces"], dtype=float)
                fas.append(fa)
            out[k] = fas
        elif k in ("displacements", "forces", "supercell_energies"):
            out[k] = np.asarray(v, dtype=float)
        else:
            out[k] = v
    return out


def _nac_to_json(nac: dict | None) -> dict | None:
    if nac is None:
        return None
    return {k: (np.asarray(v).tolist() if isinstance(v, np.ndarray) else v) for k, v in nac.items()}


def _nac_from_json(nac: dict | None) -> dict | None:
    if nac is None:
        return None
    out = dict(nac)
    for k in ("born", "dielectric"):
        if k in out and out[k] is not None:
            out[k] = np.asarray(out[k], dtype=float)
    return out
