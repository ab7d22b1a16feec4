"""The VASP input set for phonon force calculations (statics of displaced / rattled supercells).

Finite-displacement force constants are differences of forces of 0.01 Å displacements: the forces
must be converged far beyond what a relaxation needs.  :data:`PHONON_INCAR` is laid over
atomate2's base VASP set (itself MP's r2SCAN set switched to GGA) by
:func:`phonon_input_set`; every key can be overridden (``VaspSettings.incar``, a ``null``
value removes a key).  The choice of each value is explained in docs/vasp.md.

K-points: a Γ-centred mesh of ``reciprocal_density`` k-points per Å⁻³ of reciprocal-cell volume
(pymatgen's ``Kpoints.automatic_density_by_vol``, as atomate2's ``reciprocal_density``), or the Γ
point only when the supercell is large: ``gamma_only: null`` (default) switches to Γ-only when
the smallest width of the cell (distance between opposite faces, volume / largest face area) is at
least ``gamma_only_min_width_A`` (20 Å, the setting of the atomate2 PBE phonon sets in
``../shared/data/atomate2_phonopy``).

This module imports atomate2 only inside :func:`phonon_input_set`: the settings model is used by
the spec (``reference: {mode: compute, code: vasp, vasp: {...}}``) without atomate2 installed.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

#: INCAR of the phonon statics, laid over atomate2's base set (None removes a key of that set)
PHONON_INCAR: dict[str, Any] = {
    "PREC": "Accurate",  # accurate FFT grids: no wrap-around errors in the forces
    "ENCUT": 520,  # eV; MP / atomate2 PBE phonon sets; >= 1.3 x ENMAX of the usual POTCARs
    "EDIFF": 1e-7,  # eV (total, not per atom); forces converged to ~1e-5 eV/Å
    "LASPH": True,  # non-spherical gradient corrections inside the PAW spheres
    "ISMEAR": 0,  # Gaussian smearing: valid for insulators and metals alike
    "SIGMA": 0.01,  # eV; small, so the free energy and the forces are ~ the sigma -> 0 ones
    "LREAL": False,  # projections in reciprocal space: no real-space projection noise on forces
    "IBRION": -1,  # static: the ions do not move
    "NSW": 0,
    "ISIF": 2,  # forces and the full stress tensor, fixed cell
    "ALGO": "Normal",  # Davidson: robust at EDIFF 1e-7 (atomate2's phonon static)
    "GGA": "PE",  # PBE, the functional of MPtrj / MDR-PBE (set "PS" for PBEsol)
    "NELM": 200,
    "LCHARG": False,  # no CHGCAR / WAVECAR / LOCPOT / AECCAR / PROCAR: hundreds of statics
    "LWAVE": False,
    "LVTOT": False,
    "LAECHG": False,
    "LELF": False,
    "LORBIT": None,
    "EDIFFG": None,  # relaxation-only keys of the base set
    "LMIXTAU": None,  # meta-GGA only
    "ENAUG": None,  # VASP's default (the POTCAR's EAUG)
}

#: the phonon-accuracy floor: an override looser than this warns (the run still proceeds)
PHONON_LIMITS = {"EDIFF": ("<=", 1e-7), "ENCUT": (">=", 520.0), "SIGMA": ("<=", 0.05)}

#: pymatgen's UserPotcarFunctional values
_POTCAR_FUNCTIONALS = ("PBE", "PBE_52", "PBE_54", "PBE_64", "LDA", "LDA_52", "LDA_54", "PW91", "LDA_US", "PW91_US")


class VaspSettings(BaseModel):
    """``reference.vasp``: the VASP phonon input set and where the statics run (docs/vasp.md)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    incar: dict[str, Any] = Field(
        default_factory=dict,
        description="INCAR overrides on top of pftflow's phonon set (PHONON_INCAR, docs/vasp.md); a null value removes a key",
        examples=[{"ENCUT": 600, "ISPIN": 1, "NCORE": 8}],
    )
    reciprocal_density: float = Field(
        100.0, gt=0, description="k-points per Å⁻³ of reciprocal-cell volume (atomate2 / pymatgen reciprocal_density), Γ-centred mesh", examples=[100]
    )
    gamma_only: bool | None = Field(
        None, description="true: Γ point only; false: always the reciprocal_density mesh; null: Γ-only when the cell's smallest width >= gamma_only_min_width_A"
    )
    gamma_only_min_width_A: float = Field(20.0, gt=0, description="smallest cell width (Å, between opposite faces) from which gamma_only: null uses the Γ point only")
    potcar_functional: str = Field("PBE_54", description="POTCAR set (pymatgen user_potcar_functional)", examples=["PBE_54"])
    potcar: dict[str, str] = Field(default_factory=dict, description="POTCAR per element overriding atomate2's choice, e.g. {Na: Na_pv}", examples=[{"Na": "Na_pv"}])
    run_dir: str = Field("vasp_runs", description="folder (relative to the job's working directory) under which each static runs in its own subfolder")
    run_vasp_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="keyword arguments of atomate2's run_vasp (vasp_cmd, vasp_gamma_cmd, custodian_kwargs, ...)", examples=[{"vasp_cmd": "srun vasp_std"}]
    )

    @field_validator("incar")
    @classmethod
    def _incar(cls, v: dict[str, Any]) -> dict[str, Any]:
        v = {str(k).upper(): x for k, x in v.items()}
        for key, (op, limit) in PHONON_LIMITS.items():
            x = v.get(key)
            if isinstance(x, (int, float)) and not isinstance(x, bool) and ((op == "<=" and x > limit) or (op == ">=" and x < limit)):
                warnings.warn(
                    f"reference.vasp.incar.{key} = {x} is looser than the phonon setting ({key} {op} {limit:g}): finite-displacement forces may be noisy",
                    stacklevel=2,
                )
        return v

    @field_validator("potcar_functional")
    @classmethod
    def _functional(cls, v: str) -> str:
        if v not in _POTCAR_FUNCTIONALS:
            raise ValueError(f"potcar_functional must be one of {', '.join(_POTCAR_FUNCTIONALS)}, got {v!r}")
        return v

    def key_dict(self) -> dict[str, Any]:
        """The settings that determine the forces (content keys): not where or how VASP is launched."""
        return self.model_dump(mode="json", exclude={"run_dir", "run_vasp_kwargs"})


def min_width_A(cell) -> float:
    """Smallest width of a cell (Å): the distance between its closest pair of opposite faces."""
    c = np.asarray(cell, dtype=float)
    vol = abs(np.linalg.det(c))
    areas = [np.linalg.norm(np.cross(c[i], c[j])) for i, j in ((1, 2), (2, 0), (0, 1))]
    return float(vol / max(areas))


def use_gamma_only(settings: VaspSettings, cell) -> bool:
    """Whether a structure of this cell is computed at the Γ point only."""
    if settings.gamma_only is not None:
        return settings.gamma_only
    return min_width_A(cell) >= settings.gamma_only_min_width_A


def phonon_incar(settings: VaspSettings | dict | None = None) -> dict[str, Any]:
    """The INCAR updates of the phonon set with the user's overrides (None = remove the key)."""
    s = settings if isinstance(settings, VaspSettings) else VaspSettings(**(settings or {}))
    return {**PHONON_INCAR, **s.incar}


def phonon_input_set(settings: VaspSettings | dict | None, structure):
    """atomate2 ``StaticSetGenerator`` of the phonon set for ``structure`` (a pymatgen Structure or
    anything with a ``cell`` / ``lattice``); atom order is kept (``sort_structure=False``)."""
    from atomate2.vasp.sets.core import StaticSetGenerator
    from pymatgen.io.vasp import Kpoints

    s = settings if isinstance(settings, VaspSettings) else VaspSettings(**(settings or {}))
    cell = structure.lattice.matrix if hasattr(structure, "lattice") else structure.cell
    kpoints: Any = Kpoints.gamma_automatic((1, 1, 1)) if use_gamma_only(s, cell) else {"reciprocal_density": s.reciprocal_density}
    return StaticSetGenerator(
        user_incar_settings=phonon_incar(s),
        user_kpoints_settings=kpoints,
        user_potcar_settings=dict(s.potcar),
        user_potcar_functional=s.potcar_functional,
        sort_structure=False,  # the force set's rows must stay in the displacement set's atom order
        force_gamma=True,
        auto_ismear=False,  # no previous calculation: keep ISMEAR / SIGMA as set
        auto_ispin=False,
    )
