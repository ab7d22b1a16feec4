"""Batch-first force evaluation.

Every backend takes a *list* of structures and returns energies, forces and stresses for all of
them, so a whole displacement set is one call (one job).  The default implementation loops over
an ASE calculator; backends that can batch on a GPU override :meth:`ForceCalculator.compute`.

Units: energies eV, forces eV/Å, stresses eV/Å³ in Voigt order (xx, yy, zz, yz, xz, xy) with
ASE's sign convention (positive = tensile).
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from ase import Atoms


@dataclass
class ForceResults:
    """Results of one batch: ``energies_eV`` (n,), ``forces_eV_per_A`` list of (n_atoms_i, 3),
    ``stresses_eV_per_A3`` (n, 6) Voigt or ``None`` when the backend gives no stress."""

    energies_eV: np.ndarray
    forces_eV_per_A: list[np.ndarray]
    stresses_eV_per_A3: np.ndarray | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "energies_eV": np.asarray(self.energies_eV, dtype=float).tolist(),
            "forces_eV_per_A": [np.asarray(f, dtype=float).tolist() for f in self.forces_eV_per_A],
            "stresses_eV_per_A3": None
            if self.stresses_eV_per_A3 is None
            else np.asarray(self.stresses_eV_per_A3, dtype=float).tolist(),
            "provenance": self.provenance,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "ForceResults":
        return cls(
            energies_eV=np.asarray(d["energies_eV"], dtype=float),
            forces_eV_per_A=[np.asarray(f, dtype=float) for f in d["forces_eV_per_A"]],
            stresses_eV_per_A3=None
            if d.get("stresses_eV_per_A3") is None
            else np.asarray(d["stresses_eV_per_A3"], dtype=float),
            provenance=d.get("provenance", {}),
        )


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file (model weights provenance)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


class ForceCalculator(ABC):
    """A model (MLIP or DFT code) that evaluates energies, forces and stresses of structures."""

    #: short backend name, e.g. ``"sevennet"``
    backend: str = "base"

    def __init__(self, name: str):
        self.name = name

    # -- to implement -----------------------------------------------------------------------
    @abstractmethod
    def ase_calculator(self):
        """An ASE calculator for this model (used by relaxation and the default batch loop)."""

    def provenance(self) -> dict[str, Any]:
        """Model name, backend, code version and weights hash."""
        return {"name": self.name, "backend": self.backend}

    # -- batch interface ----------------------------------------------------------------------
    def compute(
        self,
        structures: Sequence[Atoms],
        *,
        stress: bool = True,
        progress: bool = False,
        desc: str | None = None,
    ) -> ForceResults:
        """Energies (eV), forces (eV/Å) and stresses (eV/Å³, Voigt) for all ``structures``."""
        from tqdm.auto import tqdm

        calc = self.ase_calculator()
        energies, forces, stresses = [], [], []
        it = tqdm(structures, desc=desc or f"{self.name} forces", disable=not progress, leave=False)
        for atoms in it:
            a = atoms.copy()
            a.calc = calc
            energies.append(float(a.get_potential_energy()))
            forces.append(np.array(a.get_forces(), dtype=float))
            if stress:
                try:
                    stresses.append(np.array(a.get_stress(voigt=True), dtype=float))
                except Exception:  # noqa: BLE001 - calculator without stress support
                    stress = False
                    stresses = []
        return ForceResults(
            energies_eV=np.array(energies),
            forces_eV_per_A=forces,
            stresses_eV_per_A3=np.array(stresses) if stress and stresses else None,
            provenance=self.provenance(),
        )

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(name={self.name!r})"
