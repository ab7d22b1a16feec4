"""Typed job outputs (pydantic, units in the field descriptions).

Every job returns one of these (declared with ``@job(output_schema=..., data=[ArrayBlob])``, as
atomate2 does with ``PhononBSDOSDoc``): arrays travel as :class:`~pftflow.serialization.ArrayBlob`
into the additional ``data`` store, the rest stays queryable in the ``outputs`` collection.

Science objects are documents themselves and are defined next to the code that makes them:
:class:`~pftflow.materials.reference.PhononReference` (imported reference phonons),
:class:`~pftflow.calculators.base.ForceResults` (a force set),
:class:`~pftflow.phonons.harmonic.PhononResult` (thermal properties, bands, mesh, stability).
This module holds the stage documents that wrap them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ase import Atoms
from pydantic import Field

from pftflow.calculators.base import ForceResults  # noqa: F401  (re-exported: the force-set document)
from pftflow.materials.reference import PhononReference, ThermalProperties  # noqa: F401
from pftflow.phonons.harmonic import PhononResult
from pftflow.serialization import Array, ArrayTree, Document, Structure


class ParametersDoc(Document):
    """The campaign spec (credentials redacted) and the software that ran it."""

    spec: dict = Field(description="the validated campaign spec")
    versions: dict[str, str] = Field(description="package versions")
    host: str = Field(description="host name")
    time: float = Field(description="UNIX time of the run (s)")
    environment: dict[str, Any] = Field(
        default_factory=dict, description="pftflow version and git commit, package versions, host, CPU, BLAS kernels (pftflow.provenance.environment)"
    )


class RelaxDoc(Document):
    """A relaxation (FIRE + FrechetCellFilter + FixSymmetry); a failure is recorded in ``error``."""

    structure: Structure = Field(description="relaxed structure (Å); the input structure when it failed")
    converged: bool = Field(description="max force below fmax within the step budget")
    n_steps: int = Field(description="optimizer steps taken")
    fmax_final_eV_per_A: float | None = Field(None, description="final max force (eV/Å)")
    energy_eV: float | None = Field(None, description="final energy (eV)")
    spacegroup_initial: int | None = Field(None, description="space group number before")
    spacegroup_final: int | None = Field(None, description="space group number after")
    symmetry_preserved: bool = Field(description="space group unchanged")
    error: str | None = Field(None, description="why the relaxation failed, None on success")
    wall_time_s: float | None = Field(None, description="wall time (s)")
    model: dict[str, Any] = Field(default_factory=dict, description="calculator provenance")
    settings: dict[str, Any] = Field(default_factory=dict, description="RelaxSettings used")


class StructureSet(Document):
    """Structures of one supercell size (displaced or rattled), as arrays."""

    symbols: list[str] = Field(description="chemical symbols (shared by all structures)")
    masses_amu: Array = Field(description="masses (amu), shape (N,)")
    cells_A: Array = Field(description="cells (Å), shape (n, 3, 3)")
    positions_A: Array = Field(description="Cartesian positions (Å), shape (n, N, 3)")

    @classmethod
    def from_atoms(cls, structures: list[Atoms]) -> "StructureSet":
        first = structures[0]
        return cls(
            symbols=list(first.get_chemical_symbols()),
            masses_amu=np.asarray(first.get_masses(), dtype=float),
            cells_A=np.array([np.asarray(a.cell[:], dtype=float) for a in structures]).reshape(-1, 3, 3),
            positions_A=np.array([a.positions for a in structures], dtype=float).reshape(len(structures), len(first), 3),
        )

    def to_atoms(self) -> list[Atoms]:
        out = []
        for cell, pos in zip(self.cells_A, self.positions_A):
            a = Atoms(symbols=self.symbols, cell=cell, positions=pos, pbc=True)
            a.set_masses(self.masses_amu)
            out.append(a)
        return out

    def __len__(self) -> int:
        return len(self.positions_A)


class DisplacementSetDoc(Document):
    """A finite-displacement set (phonopy fc2) of a structure's supercell."""

    unitcell: Structure = Field(description="the displaced structure's unit cell (Å)")
    supercell_matrix: Array = Field(description="(3, 3) integers")
    primitive_matrix: Array | None = Field(None, description="(3, 3) or None")
    distance_A: float = Field(description="displacement amplitude (Å)")
    symprec: float = Field(description="symmetry tolerance (Å)")
    dataset: ArrayTree = Field(description="phonopy displacement dataset (type 1, no forces)")
    supercells: StructureSet = Field(description="the displaced supercells")

    @property
    def n_displacements(self) -> int:
        return len(self.supercells)


class ForceConstantsDoc(Document):
    """Force constants computed directly (the model's Hessian), not fitted from a displacement set."""

    unitcell: Structure = Field(description="unit cell (Å)")
    supercell_matrix: Array = Field(description="(3, 3) integers")
    primitive_matrix: Array | None = Field(None, description="(3, 3) or None")
    force_constants_eV_per_A2: Array = Field(description="full force constants (N, N, 3, 3), eV/Å²")
    method: str = Field(description="how they were computed: hessian (Hessian-vector products of the model energy)")
    n_rows: int = Field(description="Hessian rows computed: 3 per symmetry-independent supercell atom")
    wall_time_s: float | None = Field(None, description="wall time (s)")
    model: dict[str, Any] = Field(default_factory=dict, description="calculator provenance")


class PhononAnalysisDoc(Document):
    """Harmonic phonons of one material with one model (or the reference)."""

    material_id: str = Field(description="material id")
    model: str = Field(description="model name (`reference` for the reference)")
    failed: bool = Field(False, description="the analysis could not be done (see error)")
    error: str | None = Field(None, description="why it failed")
    structure: Structure | None = Field(None, description="unit cell the phonons were computed for (Å)")
    supercell_matrix: Array | None = Field(None, description="(3, 3) integers")
    primitive_matrix: Array | None = Field(None, description="(3, 3) or None")
    force_constants_eV_per_A2: Array | None = Field(
        None, description="compact force constants (n_primitive_atoms, N, 3, 3), eV/Å² (rows of p2s_map)"
    )
    p2s_map: list[int] | None = Field(None, description="supercell indices of the primitive-cell atoms (rows of the compact fc)")
    reference_thermal: ThermalProperties | None = Field(None, description="thermal properties stored with an imported reference (DFT)")
    band_path: ArrayTree = Field(None, description="band q-path (fractional): qpoints, labels, path_connections")
    result: PhononResult | None = Field(None, description="thermal properties, ω_max, stability, bands, DOS, mesh")
    settings: dict[str, Any] = Field(default_factory=dict, description="PhononSettings used")
    environment: dict[str, Any] = Field(
        default_factory=dict, description="where the analysis ran: pftflow version and git commit, packages, CPU, BLAS kernel (pftflow.provenance)"
    )
    relax: RelaxDoc | None = Field(None, description="the model relaxation before the phonons, if any")

    @property
    def mesh_numbers(self) -> list[int] | None:
        return None if self.result is None or self.result.mesh is None else [int(x) for x in self.result.mesh["mesh"]]


class ComparisonDoc(Document):
    """MDR metrics of one model against the reference on one material (docs/metrics.md)."""

    material_id: str = Field(description="material id")
    model: str = Field(description="model name")
    failed: bool = Field(description="no metrics: the model's phonons failed (see error)")
    error: str | None = Field(None, description="why it failed")
    relax_converged: bool | None = Field(None, description="the model relaxation converged")
    symmetry_preserved: bool | None = Field(None, description="the model relaxation kept the space group")
    metrics: dict[str, Any] = Field(default_factory=dict, description="metric name -> value (units in the names, docs/metrics.md)")

    def row(self) -> dict[str, Any]:
        """One flat table row: identity, status and every metric."""
        out = {k: getattr(self, k) for k in ("material_id", "model", "relax_converged", "symmetry_preserved", "failed")}
        if self.error is not None:
            out["error"] = self.error
        out.update(self.metrics)
        return out


class FailureDoc(Document):
    """A job that failed: written by the runner into the store (``metadata.stage == "failure"``;
    the failed job's key is in ``metadata.failed_key``, never in ``pftflow_key``, so reuse lookups
    cannot take it for an output).  The whole traceback is in ``log_file``."""

    campaign: str = Field(description="campaign name (spec `name`)")
    kind: str = Field(description="campaign kind: phonons | kappa | finetune")
    material_id: str | None = Field(None, description="material id")
    model: str | None = Field(None, description="model name (`reference` for the reference calculation)")
    stage: str | None = Field(None, description="pipeline stage of the failed job (pftflow.identity.STAGES)")
    error_class: str = Field(description="exception class name, e.g. RuntimeError")
    reason: str = Field(description="one line: `ErrorClass: message`")
    hint: str | None = Field(None, description="how to fix it, when known")
    job_name: str = Field(description="jobflow job name")
    job_uuid: str | None = Field(None, description="jobflow job uuid")
    pftflow_key: str | None = Field(None, description="content key of the failed job (metadata.pftflow_key)")
    time: float = Field(description="UNIX time of the failure (s)")
    host: str | None = Field(None, description="host name of the run")
    log_file: str | None = Field(None, description="log file holding the whole traceback")


class LabelledSetDoc(Document):
    """A labelled structure set of one material: structures with reference energies (eV), forces
    (eV/Å) and stresses (eV/Å³), and where they come from (``kind: dataset``, docs/dataset.md).

    Export: :func:`pftflow.export.write_extxyz` (``REF_energy`` / ``REF_forces`` / ``REF_stress``);
    training: :meth:`to_labelled_structures` (:class:`pftflow.training.data.LabelledStructure`)."""

    material_id: str = Field(description="material id")
    name: str = Field(description="set name (spec sampling name, or 'import')")
    kind: str = Field(description="rattle | mc_rattle | rattle_relax | strain | displacements | import")
    labeller: str = Field(description="display name of the calculator that labelled the set, or import:<format>")
    structures: StructureSet = Field(description="the labelled structures (Å)")
    energies_eV: Array | None = Field(None, description="energies (eV), shape (n,); None when the source has none")
    forces_eV_per_A: Array = Field(description="forces (eV/Å), shape (n, N, 3)")
    stresses_eV_per_A3: Array | None = Field(None, description="stresses (eV/Å³), Voigt xx yy zz yz xz xy, ASE sign (positive = tensile), (n, 6)")
    unitcell: Structure | None = Field(None, description="the material's unit cell (Å), when known")
    supercell_matrix: Array | None = Field(None, description="(3, 3) integers (phonopy convention) shared by every set of the material")
    structure_info: list[dict[str, Any]] = Field(default_factory=list, description="per structure: seed and what was done to it")
    checks: dict[str, Any] | None = Field(None, description="sampling checks: min distance (Å), displacement std (Å), duplicates")
    provenance: dict[str, Any] = Field(
        default_factory=dict, description="code, calculator settings, pseudopotential ids when known, seeds, sampling settings, source file"
    )

    @property
    def n_structures(self) -> int:
        return len(self.structures)

    def to_atoms(self) -> list[Atoms]:
        """The structures as ASE Atoms (no labels attached)."""
        return self.structures.to_atoms()

    def to_labelled_structures(self) -> list:
        """The set as :class:`pftflow.training.data.LabelledStructure` objects (fine-tuning engine)."""
        from pftflow.training.data import LabelledStructure  # local: pftflow.training imports torch

        tag = {"displacements": "displacement", "import": "upstream", "strain": "strained"}.get(self.kind, "rattled")
        out = []
        for k, atoms in enumerate(self.to_atoms()):
            out.append(
                LabelledStructure(
                    atoms,
                    None if self.energies_eV is None else float(self.energies_eV[k]),
                    np.asarray(self.forces_eV_per_A[k]),
                    None if self.stresses_eV_per_A3 is None else np.asarray(self.stresses_eV_per_A3[k]),
                    material_id=self.material_id,
                    kind=tag,
                )
            )
        return out

    def statistics(self) -> dict[str, Any]:
        """Counts, energy (eV/atom) and force (eV/Å) statistics of the set."""
        n_atoms = len(self.structures.symbols)
        f = np.asarray(self.forces_eV_per_A, dtype=float).reshape(self.n_structures, n_atoms, 3)
        norms = np.linalg.norm(f, axis=-1)
        out: dict[str, Any] = {
            "n_structures": self.n_structures,
            "n_atoms": n_atoms,
            "force_rms_eV_per_A": float(np.sqrt(np.mean(f**2))),
            "force_max_eV_per_A": float(norms.max()) if norms.size else 0.0,
            "force_mean_norm_eV_per_A": float(norms.mean()) if norms.size else 0.0,
        }
        if self.energies_eV is not None:
            e = np.asarray(self.energies_eV, dtype=float) / n_atoms
            out.update(energy_mean_eV_per_atom=float(e.mean()), energy_std_eV_per_atom=float(e.std()), energy_range_eV_per_atom=float(e.max() - e.min()))
        if self.stresses_eV_per_A3 is not None:
            out["stress_max_abs_eV_per_A3"] = float(np.abs(self.stresses_eV_per_A3).max())
        return out
