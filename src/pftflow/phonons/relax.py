"""MLIP relaxation (MDR / k_SRME protocols) with ASE optimizers and filters.

Pure function: an ASE calculator and a structure in, a :class:`RelaxResult` out.  Failures
(non-convergence, calculator exceptions, lost symmetry) are recorded in the result, never raised,
so one bad material does not stop a campaign.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from pydantic import BaseModel, ConfigDict, Field, field_validator


def _ase_optimizers() -> tuple[str, ...]:
    """Names of the ASE optimizer classes (``ase.optimize``) ``optimizer`` may name."""
    from ase import optimize
    from ase.optimize.optimize import Optimizer

    return tuple(n for n in dir(optimize) if isinstance(getattr(optimize, n), type) and issubclass(getattr(optimize, n), Optimizer))


class RelaxSettings(BaseModel):
    """Relaxation protocol.

    ``fmax_eV_per_A``: force criterion (eV/Å); ``steps``: max optimizer steps per stage;
    ``restarts``: extra full restarts if not converged; ``relax_cell``: use FrechetCellFilter;
    ``fix_symmetry`` + ``symprec``: ASE FixSymmetry constraint; ``two_stage``: after the cell stage,
    a positions-only stage with the same criterion (k_SRME); ``cell_mask``: FrechetCellFilter mask
    (6 booleans, Voigt) or None for all components.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    fmax_eV_per_A: float = Field(1e-3, gt=0, description="force convergence criterion (eV/Å), > 0", examples=[1e-3])
    steps: int = Field(500, ge=0, description="maximum optimizer steps per stage (>= 0)", examples=[500])
    restarts: int = Field(0, ge=0, description="extra full restarts when not converged (>= 0)", examples=[0])
    relax_cell: bool = Field(True, description="relax the cell too (ASE FrechetCellFilter)")
    fix_symmetry: bool = Field(True, description="keep the space group (ASE FixSymmetry)")
    symprec: float = Field(1e-5, gt=0, description="symmetry tolerance of FixSymmetry and spglib (Å), > 0", examples=[1e-5])
    two_stage: bool = Field(False, description="after the cell stage, a positions-only stage (k_SRME)")
    cell_mask: list[bool] | None = Field(
        None, min_length=6, max_length=6, description="FrechetCellFilter mask: 6 booleans (Voigt order) or null for all", examples=[[True, True, True, False, False, False]]
    )
    optimizer: str = Field("FIRE", description="ASE optimizer class name (ase.optimize), e.g. FIRE, BFGS, LBFGS", examples=["FIRE"])

    @field_validator("optimizer")
    @classmethod
    def _optimizer(cls, v: str) -> str:
        names = _ase_optimizers()
        if v not in names:
            raise ValueError(f"unknown ASE optimizer {v!r}; choose one of {list(names)}")
        return v

    def as_dict(self) -> dict:
        return self.model_dump()

    @classmethod
    def mdr(cls, **kw) -> "RelaxSettings":
        """MDR phonon benchmark protocol: FIRE + FrechetCellFilter + FixSymmetry."""
        return cls(**{"fmax_eV_per_A": 1e-3, "steps": 500, **kw})

    @classmethod
    def ksrme(cls, **kw) -> "RelaxSettings":
        """k_SRME protocol: two-stage FIRE + FrechetCellFilter + FixSymmetry(1e-5), fmax 1e-4, 300 steps."""
        return cls(**{"fmax_eV_per_A": 1e-4, "steps": 300, "two_stage": True, "symprec": 1e-5, **kw})


@dataclass
class RelaxResult:
    atoms: Atoms
    converged: bool
    n_steps: int
    fmax_final_eV_per_A: float
    energy_eV: float | None
    spacegroup_initial: int | None
    spacegroup_final: int | None
    symmetry_preserved: bool
    error: str | None = None
    log: list[str] = field(default_factory=list)


def spacegroup_number(atoms: Atoms, symprec: float = 1e-5) -> int | None:
    """International space-group number from spglib (None if spglib fails)."""
    import spglib

    cell = (np.array(atoms.cell[:]), atoms.get_scaled_positions(), atoms.numbers)
    ds = spglib.get_symmetry_dataset(cell, symprec=symprec)
    return None if ds is None else int(ds.number)


def _max_force(atoms: Atoms) -> float:
    return float(np.sqrt((atoms.get_forces() ** 2).sum(axis=1)).max())


def relax_structure(atoms: Atoms, calculator, settings: RelaxSettings | None = None) -> RelaxResult:
    """Relax ``atoms`` with ``calculator`` (an ASE calculator) following ``settings``.

    Returns the relaxed copy with the constraint removed; ``converged`` is True when the final
    max force is below ``settings.fmax_eV_per_A`` (and, with a cell filter, the stress too).
    """
    from ase import optimize
    from ase.constraints import FixSymmetry
    from ase.filters import FrechetCellFilter

    s = settings or RelaxSettings()
    work = atoms.copy()
    work.calc = calculator
    sg0 = spacegroup_number(work, s.symprec)
    n_total = 0
    converged = False
    log: list[str] = []
    Optimizer = getattr(optimize, s.optimizer)
    try:
        if s.fix_symmetry:
            work.set_constraint(FixSymmetry(work, symprec=s.symprec))
        for attempt in range(1 + s.restarts):
            stages = []
            if s.relax_cell:
                stages.append(FrechetCellFilter(work, mask=s.cell_mask) if s.cell_mask else FrechetCellFilter(work))
            if s.two_stage or not s.relax_cell:
                stages.append(work)
            ok = True
            for target in stages:
                opt = Optimizer(target, logfile=None)
                ok_stage = opt.run(fmax=s.fmax_eV_per_A, steps=s.steps)
                n_total += opt.nsteps
                ok = ok and bool(ok_stage)
            log.append(f"attempt {attempt}: steps={n_total} fmax={_max_force(work):.2e}")
            if ok:
                converged = True
                break
        energy = float(work.get_potential_energy())
        fmax = _max_force(work)
        error = None
    except Exception as exc:  # noqa: BLE001 - recorded, not raised through the campaign
        energy, fmax = None, float("nan")
        error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
    out = work.copy()
    out.set_constraint()
    out.calc = None
    sg1 = spacegroup_number(out, s.symprec) if error is None else None
    return RelaxResult(
        atoms=out,
        converged=converged,
        n_steps=n_total,
        fmax_final_eV_per_A=fmax,
        energy_eV=energy,
        spacegroup_initial=sg0,
        spacegroup_final=sg1,
        symmetry_preserved=(sg0 is not None and sg0 == sg1),
        error=error,
        log=log,
    )
