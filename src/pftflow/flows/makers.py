"""The sub-makers of the phonon and κ makers, one step each: relax, displacements, forces, Hessian; the
resource categories of jobs and the tags (:class:`~pftflow.identity.ResultId`, ``pftflow_key``) every
job carries.  Composed by :class:`pftflow.flows.phonons.PhononMaker`, :class:`pftflow.flows.kappa.KappaMaker`,
the dataset maker and :class:`pftflow.flows.vasp.VaspForceMaker` (a force sub-maker)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jobflow import Job, Maker

from pftflow.flows import jobs
from pftflow.identity import ResultId


def _key_part(maker) -> Any:
    """The calculator's stand-in in content keys: an OutputReference (a model trained in the same
    flow) has a new uuid each build, so such a maker is given a stable ``key_part``."""
    return maker.calculator if maker.key_part is None else maker.key_part


#: resource categories of jobs (docs/fireworks.md): ``gpu`` (training), ``cpu-heavy`` (a calculator's
#: forces or relaxation: DFT, reference, MLIP force sets; phono3py κ), ``light`` (everything else:
#: reading files, displacements, analysis, comparison, parameters)
RESOURCE_CATEGORIES = ("gpu", "cpu-heavy", "light")


def set_resources(j: Job, category: str) -> Job:
    """Tag a job with its resource category: ``metadata["resources"]`` and the FireWorks
    ``_category`` in ``job.config.manager_config`` (a FireWorker pulls only the categories in its
    ``my_fworker.yaml``, or all of them when it names none).  Set on the job itself, not with
    ``update_config``, which would also overwrite the jobs a job creates at run time."""
    if category not in RESOURCE_CATEGORIES:
        raise ValueError(f"resource category {category!r}: use one of {', '.join(RESOURCE_CATEGORIES)}")
    j.config.manager_config = {**(j.config.manager_config or {}), "_category": category}
    j.metadata = {**(j.metadata or {}), "resources": category}
    return j


def _tag(j: Job, rid: ResultId, stage: str, key: str) -> Job:
    j.metadata = {**(j.metadata or {}), **rid.with_(stage=stage).metadata(key)}
    return j


@dataclass
class RelaxMaker(Maker):
    """Relax a structure with a calculator (settings: :class:`pftflow.phonons.relax.RelaxSettings`)."""

    name: str = "relax"
    calculator: Any = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    key_part: Any = None  # what stands for the calculator in content keys (default: the calculator spec)

    def make(self, structure) -> Job:
        return set_resources(jobs.relax(structure, self.calculator, self.settings), "cpu-heavy")


@dataclass
class DisplacementMaker(Maker):
    """Symmetry-reduced phonopy displacement set (fc2)."""

    name: str = "displacements"
    distance_A: float = 0.01
    symprec: float = 1e-5

    def make(self, structure, supercell_matrix, primitive_matrix=None) -> Job:
        return set_resources(jobs.displacements(structure, supercell_matrix, primitive_matrix, distance_A=self.distance_A, symprec=self.symprec), "light")


@dataclass
class ForceMaker(Maker):
    """Energies, forces and stresses of a structure set with one calculator, in one batch job."""

    name: str = "forces"
    calculator: Any = field(default_factory=dict)
    key_part: Any = None  # what stands for the calculator in content keys (default: the calculator spec)

    def make(self, structures) -> Job:
        return set_resources(jobs.forces(structures, self.calculator), "cpu-heavy")


@dataclass
class HessianMaker(Maker):
    """Force constants from the model's Hessian (one job; replaces the displacement and force
    makers: ``force_constants: hessian`` in a model spec, docs/hessian.md)."""

    name: str = "hessian"
    calculator: Any = field(default_factory=dict)
    symprec: float = 1e-5
    symmetrize: bool = True
    key_part: Any = None  # what stands for the calculator in content keys (default: the calculator spec)

    def make(self, structure, supercell_matrix, primitive_matrix=None) -> Job:
        j = jobs.hessian_force_constants(structure, supercell_matrix, primitive_matrix, self.calculator, self.symprec, self.symmetrize)
        return set_resources(j, "cpu-heavy")
