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
from pydantic import Field, field_validator
from typing import Any, Sequence

import numpy as np
from ase import Atoms

from pftflow.serialization import Array, ArrayTree, Document


class ForceResults(Document):
    """Energies, forces and stresses of a batch of structures (the force-set document).

    ``forces_eV_per_A`` is a list with one (n_atoms_i, 3) array per structure (structures may
    differ in size); the list is stored as one compressed blob.
    """

    energies_eV: Array = Field(description="energies (eV), shape (n,)")
    forces_eV_per_A: ArrayTree = Field(description="forces (eV/Å): list of (n_atoms_i, 3) arrays")
    stresses_eV_per_A3: Array | None = Field(None, description="stresses (eV/Å³), Voigt xx yy zz yz xz xy, (n, 6); None without stress")
    provenance: dict[str, Any] = Field(default_factory=dict, description="model name, backend, versions, weights hash")
    wall_time_s: float | None = Field(None, description="wall time of the batch (s)")

    @field_validator("forces_eV_per_A", mode="after")
    @classmethod
    def _arrays(cls, v):
        return [np.asarray(f, dtype=float) for f in v]

    @property
    def n_structures(self) -> int:
        return len(self.forces_eV_per_A)


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
    #: peak-memory coefficients (GiB) for ``pftflow validate``'s estimate (pftflow.run.memory), measured per backend
    #: (benchmarks/README.md, "Peak memory"): the loaded model above the process, and one evaluation per atom
    #: held at once (:meth:`atoms_at_once`).  None: not measured for this backend, left out of the estimate.
    memory_model_GiB: float | None = None
    memory_per_atom_GiB: float | None = None

    def __init__(self, name: str):
        self.name = name

    # -- to implement -----------------------------------------------------------------------
    @abstractmethod
    def ase_calculator(self):
        """An ASE calculator for this model (used by relaxation and the default batch loop)."""

    def provenance(self) -> dict[str, Any]:
        """Model name, backend, code version and weights hash."""
        return {"name": self.name, "backend": self.backend}

    def supported_species(self) -> frozenset[str] | None:
        """Chemical symbols this model can evaluate, or None when unknown (then no material is
        refused).  The campaign spec asks it when it is loaded, so it should be cheap: read a
        checkpoint's config rather than build the model where the backend allows."""
        return None

    def hessian_rows(self, atoms: Atoms, atom_indices: Sequence[int]) -> np.ndarray:
        """Rows of the Hessian Φ(i a, j b) = ∂²E/∂u_ia ∂u_jb (eV/Å²) of the atoms ``atom_indices`` of
        ``atoms``: array (len(atom_indices), 3, N, 3).  Used by ``force_constants: hessian``
        (:func:`pftflow.phonons.hessian.hessian_force_constants`)."""
        raise NotImplementedError(
            f"{self.name} ({self.backend} backend) has no analytic Hessian: set the model's field "
            "'force_constants' to 'displacements' (Hessian rows exist for sevennet, mace and nequix)"
        )

    def atoms_at_once(self, n_atoms: int, n_structures: int) -> int:
        """Atoms one :meth:`compute` of ``n_structures`` cells of ``n_atoms`` holds at once: one structure here
        (the default loop evaluates them one by one)."""
        return int(n_atoms)

    def evaluation_GiB(self, n_atoms: int, n_structures: int) -> float:
        """Estimated peak memory (GiB) of one :meth:`compute` of ``n_structures`` cells of ``n_atoms`` above the loaded
        model: ``memory_per_atom_GiB`` x :meth:`atoms_at_once` (None coefficients: not estimated)."""
        return self.memory_per_atom_GiB * self.atoms_at_once(n_atoms, n_structures)

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
        it = tqdm(structures, desc=desc or f"{self.name} forces", disable=None if progress else True, leave=False)
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
