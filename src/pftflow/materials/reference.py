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
from typing import Any

import numpy as np
from ase import Atoms
from pydantic import Field, field_serializer, field_validator

from pftflow.materials.builders import build_phonopy
from pftflow.materials.structures import phonopy_to_atoms
from pftflow.serialization import Array, ArrayTree, Document, Structure


class ReferenceFormatError(ValueError):
    """A reference file is missing data or has data of the wrong shape; the message names the file."""


class ThermalProperties(Document):
    """Harmonic thermal properties per mole of primitive cells (phonopy's convention)."""

    temperatures_K: Array = Field(description="temperature grid (K)")
    free_energy_kJ_per_mol: Array = Field(description="Helmholtz free energy F (kJ/mol)")
    entropy_J_per_K_mol: Array = Field(description="entropy S (J/K/mol)")
    heat_capacity_J_per_K_mol: Array = Field(description="isochoric heat capacity C_V (J/K/mol)")

    @field_validator("*", mode="after")
    @classmethod
    def _float(cls, v):
        return np.asarray(v, dtype=float)

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


class PhononReference(Document):
    """Reference harmonic phonon data for one material (what every reader returns).

    ``dataset`` is a phonopy displacement dataset (type 1 ``{"natom", "first_atoms": [...]}`` with
    ``forces`` in eV/Å, or type 2 ``{"displacements", "forces"}``); ``energy_eV`` is None when the
    file has none (MDR files store NaN).
    """

    material_id: str = Field(description="material identifier, e.g. mp-149")
    unitcell: Structure = Field(description="the cell the supercell matrix refers to (Å, amu)")
    supercell_matrix: Array = Field(description="(3, 3) integers: supercell = unitcell x matrix")
    primitive_matrix: Array | None = Field(None, description="(3, 3) or None (unit cell is primitive)")
    dataset: ArrayTree = Field(None, description="phonopy displacement dataset, forces in eV/Å")
    force_constants: Array | None = Field(None, description="full force constants (N, N, 3, 3), eV/Å²")
    thermal: ThermalProperties | None = Field(None, description="thermal properties stored with the reference (DFT)")
    commensurate_frequencies_THz: Array | None = Field(None, description="stored frequencies at commensurate q-points (THz)")
    nac_params: ArrayTree = Field(None, description="phonopy NAC parameters (born, dielectric, factor)")
    energy_eV: float | None = Field(None, description="energy of the undisplaced supercell (eV); NaN in memory / null in the store when the file has none")
    provenance: dict[str, Any] = Field(default_factory=dict, description="path, format, sha256, code versions")

    @field_validator("supercell_matrix", mode="after")
    @classmethod
    def _int_matrix(cls, v):
        return np.asarray(v, dtype=int)

    @field_validator("primitive_matrix", "force_constants", "commensurate_frequencies_THz", mode="after")
    @classmethod
    def _float_array(cls, v):
        return None if v is None else np.asarray(v, dtype=float)

    @field_serializer("energy_eV")
    def _nan_as_null(self, v):  # strict JSON has no NaN: a missing energy is stored as null
        return None if v is None or np.isnan(v) else float(v)

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
        ph = build_phonopy(self.unitcell, self.supercell_matrix, self.primitive_matrix, symprec)
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
        return phonopy_to_atoms(self.to_phonopy(produce_fc=False).supercell)

    def supercell_hessian(self) -> np.ndarray:
        """Supercell Hessian d²E/dr_i dr_j as a (3N, 3N) array in eV/Å² (not mass-weighted)."""
        fc = self.to_phonopy().force_constants
        n = fc.shape[0]
        if fc.shape[1] != n:
            raise ValueError("compact force constants cannot be turned into a full Hessian")
        return np.asarray(fc).transpose(0, 2, 1, 3).reshape(3 * n, 3 * n)
