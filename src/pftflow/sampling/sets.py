"""One entry point for every structure set of a material: :func:`sample_set`.

A :class:`SamplingSettings` says what to make (``kind``: rattle | mc_rattle | rattle_relax | strain |
displacements) and with which seed; :func:`sample_set` builds the supercell with the material's one
supercell matrix (:func:`pftflow.sampling.supercells.make_supercell`) and returns a
:class:`SampledSet`: the structures, the seed of each, what was done to each, and the checks
(:func:`pftflow.sampling.checks.check_set`).  Pure: the same inputs give the same structures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from ase import Atoms
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pftflow.sampling.checks import SetChecks, check_set
from pftflow.sampling.displacements import fc2_displacements
from pftflow.sampling.rattle import mc_rattle, rattle, relax_snapshots, structure_seeds
from pftflow.sampling.strain import strained
from pftflow.sampling.supercells import make_supercell

SAMPLING_KINDS = ("rattle", "mc_rattle", "rattle_relax", "strain", "displacements")


class SamplingSettings(BaseModel):
    """How one structure set of each material is generated (docs/dataset.md)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    kind: Literal["rattle", "mc_rattle", "rattle_relax", "strain", "displacements"] = Field(
        "rattle", description="rattle (Gaussian) | mc_rattle (Monte Carlo, min distance) | rattle_relax (rattle, then a snapshot of a short "
        "relaxation) | strain (volume scaling, shear) | displacements (phonopy fc2 finite displacements)"
    )
    name: str | None = Field(None, description="name of the set (default: the kind); unique within a campaign", examples=["rattled"])
    n_structures: int = Field(10, ge=1, description="structures per material (not used by displacements: phonopy decides)")
    amplitude_A: float = Field(0.03, ge=0, description="standard deviation of the Cartesian displacement components (Å); strain: rattle on top (0 = none)")
    min_distance_A: float | None = Field(None, gt=0, description="no two atoms closer than this (Å); required by mc_rattle")
    seed: int = Field(0, ge=0, description="one seed for the set; each structure gets its own seed spawned from it")
    n_iter: int = Field(10, ge=1, description="mc_rattle: Monte-Carlo cycles (hiphive n_iter)")
    width_A: float = Field(0.1, gt=0, description="mc_rattle: width (Å) of the acceptance error function around min_distance_A")
    volume_scale_range: tuple[float, float] = Field((0.97, 1.03), description="strain: smallest and largest volume scale V/V0 (evenly spaced)")
    shear_strain: float = Field(0.0, ge=0, description="strain: standard deviation of the off-diagonal strain components (dimensionless)")
    relax_steps: int = Field(20, ge=1, description="rattle_relax: FIRE steps at most (positions only, cell fixed)")
    relax_fmax_eV_per_A: float = Field(0.05, gt=0, description="rattle_relax: stop the relaxation below this max force (eV/Å)")
    distance_A: float = Field(0.01, gt=0, description="displacements: phonopy displacement distance (Å)")
    symprec: float = Field(1e-5, gt=0, description="displacements: symmetry tolerance (Å)")

    @model_validator(mode="after")
    def _consistent(self):
        if self.name is None:
            self.name = self.kind
        if self.kind == "mc_rattle" and self.min_distance_A is None:
            raise ValueError("kind mc_rattle needs min_distance_A (Å), e.g. min_distance_A: 1.5")
        if self.kind in ("rattle", "mc_rattle", "rattle_relax") and self.amplitude_A <= 0:
            raise ValueError(f"kind {self.kind} needs amplitude_A > 0 (Å), e.g. amplitude_A: 0.03")
        lo, hi = self.volume_scale_range
        if not 0 < lo <= hi:
            raise ValueError(f"volume_scale_range must be [low, high] with 0 < low <= high, got [{lo}, {hi}]")
        if self.kind == "strain" and self.n_structures > 1 and lo == hi and self.shear_strain == 0 and self.amplitude_A == 0:
            raise ValueError("kind strain would give identical structures: widen volume_scale_range, or set shear_strain or amplitude_A")
        return self


@dataclass
class SampledSet:
    """A sampled structure set (output of :func:`sample_set`)."""

    structures: list[Atoms]
    supercell: Atoms  # the undisturbed supercell
    supercell_matrix: np.ndarray
    seeds: list[int]  # per structure (displacements: empty)
    structure_info: list[dict]  # per structure: what was done to it
    checks: SetChecks
    extra: dict[str, Any] = field(default_factory=dict)  # kind-specific (mc step, phonopy dataset)


def sample_set(unitcell: Atoms, supercell_matrix, settings: SamplingSettings | dict, *, calculator=None) -> SampledSet:
    """The structure set ``settings`` describes, on the supercell ``supercell_matrix`` of ``unitcell``.
    ``calculator``: the ASE calculator of ``rattle_relax``."""
    s = settings if isinstance(settings, SamplingSettings) else SamplingSettings(**settings)
    matrix = np.asarray(supercell_matrix, dtype=int)
    sc = make_supercell(unitcell, matrix)
    n = s.n_structures
    seeds = structure_seeds(s.seed, n)
    info: list[dict] = [{"seed": k} for k in seeds]
    extra: dict[str, Any] = {}
    amplitude = s.amplitude_A
    if s.kind == "rattle":
        structures = rattle(sc, n, s.amplitude_A, s.seed, min_distance_A=s.min_distance_A)
    elif s.kind == "mc_rattle":
        structures, extra = mc_rattle(sc, n, s.amplitude_A, s.min_distance_A, s.seed, n_iter=s.n_iter, width_A=s.width_A)
    elif s.kind == "rattle_relax":
        if calculator is None:
            raise ValueError("kind rattle_relax needs a calculator for the relaxation")
        starts = (
            mc_rattle(sc, n, s.amplitude_A, s.min_distance_A, s.seed, n_iter=s.n_iter, width_A=s.width_A)[0]
            if s.min_distance_A is not None
            else rattle(sc, n, s.amplitude_A, s.seed)
        )
        structures, steps = relax_snapshots(starts, calculator, s.seed, steps=s.relax_steps, fmax_eV_per_A=s.relax_fmax_eV_per_A)
        info = [{**i, **st} for i, st in zip(info, steps)]
        amplitude = None  # the relaxation changes the displacements
    elif s.kind == "strain":
        structures, deform = strained(
            sc, n, s.seed, volume_scale_range=tuple(s.volume_scale_range), shear_strain=s.shear_strain,
            amplitude_A=s.amplitude_A, min_distance_A=s.min_distance_A,
        )
        info = [{**i, **d} for i, d in zip(info, deform)]
        amplitude = s.amplitude_A or None
    elif s.kind == "displacements":
        ph, structures = fc2_displacements(unitcell, matrix, distance_A=s.distance_A, symprec=s.symprec)
        seeds = []
        info = [{"atom": int(d["number"]), "displacement_A": np.asarray(d["displacement"], dtype=float).tolist()} for d in ph.dataset["first_atoms"]]
        extra = {"dataset": ph.dataset}
        amplitude = None
    else:  # pragma: no cover - guarded by SamplingSettings
        raise ValueError(f"unknown sampling kind {s.kind!r}")
    checks = check_set(sc, structures, min_distance_A=s.min_distance_A, amplitude_A=amplitude)
    return SampledSet(structures, sc, matrix, seeds, info, checks, extra)
