"""GPAW (plane waves, PBE) as the live DFT reference for phonons of small crystals.

Used through the generic ASE backend::

    {"backend": "ase",
     "import_path": "pftflow.calculators.gpaw_reference:make_gpaw_calculator",
     "kwargs": {"ecut_ev": 350, "kpoint_density": 2.2}}

which calls ``make_gpaw_calculator(**kwargs)`` once and reuses the calculator for every structure of
a batch (all displaced supercells of one material).  GPAW is optional: it is imported lazily and a
missing installation raises an :class:`ImportError` that names ``scripts/install_gpaw.sh``.

The defaults were chosen from ``benchmarks/gpaw_convergence.py`` (table in
``benchmarks/README_gpaw.md``, reasoning in ``docs/gpaw.md``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

INSTALL_HINT = (
    "GPAW is not installed (or its PAW setups are missing). Install it with "
    "`bash scripts/install_gpaw.sh` (Debian, runs as root: apt libxc/openblas/fftw + pip gpaw "
    "built with a siteconfig)."
)

#: Default settings with units and the reason for each value.  ``make_gpaw_calculator`` takes its
#: defaults from ``GPAW_DEFAULTS[name]["value"]``.
GPAW_DEFAULTS: dict[str, dict[str, Any]] = {
    "ecut_ev": {
        "value": 350.0,
        "unit": "eV",
        "doc": "Plane-wave kinetic-energy cutoff (GPAW PW mode). 16-atom supercells, 0.01 Å displacement, "
        "vs 500 eV: Si max |ΔF| 3e-5 eV/Å, |Δσ| 0.002 GPa; NaCl 4e-5 eV/Å, 0.02 GPa (300 eV: NaCl "
        "with Cl displaced 1.1e-3 eV/Å, 0.18 GPa). NOT enough for oxides: the O (and 10-electron Mg) setups need "
        ">= 600 eV (MgO at 350 eV: >= 3e-3 eV/Å, stress off by > 80 GPa). benchmarks/README_gpaw.md.",
    },
    "kpoint_density": {
        "value": 2.2,
        "unit": "Å (k-points per Å⁻¹, 2π included, ASE convention)",
        "doc": "Monkhorst-Pack size along b_i is ceil(2π |b_i| × density) (ASE's kpts2sizeandoffsets). "
        "2.2 gives a 3×3×3 grid (≙ 6×6×6 in the primitive cell) for every 2×2×2 fcc-primitive "
        "supercell with cubic a between 3.99 and 5.98 Å (Si, NaCl, MgO), far from rounding edges. "
        "Vs 4×4×4: Si max |ΔF| 1.9e-4 eV/Å, |Δσ| 0.07 GPa (2×2×2: 1.3e-3 eV/Å, 0.63 GPa); NaCl "
        "7e-6 eV/Å (2×2×2: 3e-5); MgO 3e-5-2e-4 eV/Å (2×2×2: 2e-4-1e-3).",
    },
    "gamma": {
        "value": True,
        "unit": "bool",
        "doc": "Γ-centred grid. Shifted even MP grids of the rhombohedral fcc supercells break the "
        "cubic symmetry: a 2×2×2 shifted grid gave spurious force components of 0.019 eV/Å on Si.",
    },
    "xc": {"value": "PBE", "unit": "-", "doc": "Exchange-correlation functional."},
    "smearing_ev": {
        "value": 0.01,
        "unit": "eV",
        "doc": "Fermi-Dirac width; negligible for gapped Si/NaCl/MgO, keeps early SCF steps stable. "
        "0 selects fixed occupations.",
    },
    "scf_energy_tol": {
        "value": 1e-6,
        "unit": "eV per valence electron",
        "doc": "SCF stops when the energy changed less than this over the last 3 iterations.",
    },
    "scf_density_tol": {
        "value": 1e-5,
        "unit": "electrons per valence electron",
        "doc": "SCF stops when the integrated |Δn| per valence electron is below this.",
    },
    "scf_forces_tol": {
        "value": 1e-4,
        "unit": "eV/Å",
        "doc": "SCF also requires the largest change of any atomic force between two iterations "
        "to be below this (phonon forces are ~0.01-0.1 eV/Å for 0.01 Å displacements).",
    },
    "maxiter": {"value": 200, "unit": "SCF iterations", "doc": "Fail instead of looping forever."},
    "symmetry": {
        "value": {"point_group": False, "time_reversal": True},
        "unit": "-",
        "doc": "Point-group symmetry OFF: GPAW fixes the symmetry group and IBZ at the first structure "
        "and keeps them when a reused calculator moves atoms, which would symmetrise forces of "
        "displaced supercells with the wrong group. Time reversal (k ≡ -k) is exact for "
        "non-magnetic systems without SOC at any positions and halves the k-points.",
    },
    "mixer": {
        "value": None,
        "unit": "-",
        "doc": "None = GPAW's default density mixer (MSR1 in GPAW 26.7); it converged Si in 12 SCF "
        "steps vs 15 for Pulay(beta=0.2). Pass a GPAW mixer dict to override.",
    },
    "setups": {
        "value": None,
        "unit": "-",
        "doc": "None = GPAW's standard PBE PAW setups from gpaw-data (Na 7 e with 2p semicore; "
        "Mg 10 e). {'Mg': '2'} / {'Na': '1'} select valence-only setups (fewer bands, cheaper).",
    },
}


def _default(name: str) -> Any:
    value = GPAW_DEFAULTS[name]["value"]
    return dict(value) if isinstance(value, dict) else value


def _positive(name: str, value: Any, *, allow_zero: bool = False) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(x) or x < 0 or (x == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value!r}")
    return x


def kpoint_grid(atoms, kpoint_density: float, *, gamma: bool = True) -> tuple[int, int, int]:
    """Monkhorst-Pack grid size for ``atoms`` at ``kpoint_density`` (k-points per Å⁻¹, 2π included).

    Identical to what GPAW does with ``kpts={'density': d, 'gamma': gamma}`` (ASE's
    ``kpts2sizeandoffsets``): ``ceil(2π |b_i| d)`` per periodic direction, 1 otherwise.
    """
    from ase.calculators.calculator import kpts2sizeandoffsets

    _positive("kpoint_density", kpoint_density)
    size, _ = kpts2sizeandoffsets(density=kpoint_density, gamma=gamma, atoms=atoms)
    return tuple(int(n) for n in size)


def gpaw_parameters(
    atoms=None,
    *,
    ecut_ev: float = _default("ecut_ev"),
    kpoint_density: float = _default("kpoint_density"),
    gamma: bool = _default("gamma"),
    xc: str = _default("xc"),
    smearing_ev: float = _default("smearing_ev"),
    scf_energy_tol: float = _default("scf_energy_tol"),
    scf_density_tol: float = _default("scf_density_tol"),
    scf_forces_tol: float | None = _default("scf_forces_tol"),
    maxiter: int = _default("maxiter"),
    mixer: dict | None = None,
    setups: str | dict | None = None,
    txt: str | None = None,
) -> dict[str, Any]:
    """Validated GPAW keyword arguments (no GPAW import needed); see :func:`make_gpaw_calculator`."""
    ecut = _positive("ecut_ev", ecut_ev)
    density = _positive("kpoint_density", kpoint_density)
    width = _positive("smearing_ev", smearing_ev, allow_zero=True)
    conv: dict[str, Any] = {
        "energy": _positive("scf_energy_tol", scf_energy_tol),
        "density": _positive("scf_density_tol", scf_density_tol),
    }
    if scf_forces_tol is not None:
        conv["forces"] = _positive("scf_forces_tol", scf_forces_tol)
    if not isinstance(xc, str) or not xc.strip():
        raise ValueError(f"xc must be a functional name such as 'PBE', got {xc!r}")
    if not isinstance(gamma, (bool, np.bool_)):
        raise ValueError(f"gamma must be True or False, got {gamma!r}")
    if isinstance(maxiter, bool) or not isinstance(maxiter, (int, np.integer)) or maxiter < 1:
        raise ValueError(f"maxiter must be a positive integer, got {maxiter!r}")
    if mixer is not None and not isinstance(mixer, dict):
        raise ValueError(f"mixer must be None or a GPAW mixer dict, got {mixer!r}")

    kpts: dict[str, Any] = {"density": density, "gamma": bool(gamma)}
    if atoms is not None:
        if not all(atoms.pbc):
            raise ValueError("the GPAW reference is for bulk crystals: atoms.pbc must be True in all directions")
        if abs(atoms.cell.volume) < 1e-6:
            raise ValueError("atoms has a degenerate (zero-volume) cell")
        # Same rule GPAW applies at calculation time; fixing the size makes it visible.
        kpts = {"size": kpoint_grid(atoms, density, gamma=bool(gamma)), "gamma": bool(gamma)}

    params: dict[str, Any] = {
        "mode": {"name": "pw", "ecut": ecut},
        "xc": xc,
        "kpts": kpts,
        "occupations": {"name": "fermi-dirac", "width": width} if width > 0 else {"name": "fixed"},
        "convergence": conv,
        "maxiter": int(maxiter),
        "symmetry": _default("symmetry"),
        "txt": txt,
    }
    if mixer is not None:
        params["mixer"] = dict(mixer)
    if setups is not None:
        params["setups"] = setups
    return params


def make_gpaw_calculator(atoms=None, *, seed: int | None = None, **settings):
    """A GPAW plane-wave calculator (ASE interface) with converged-for-phonons defaults.

    Keyword settings are those of :func:`gpaw_parameters` (units in :data:`GPAW_DEFAULTS`):

    atoms
        Optional.  When given, it is validated (periodic, finite volume) and the k-grid is fixed to
        the Monkhorst-Pack size for *its* cell; the atoms are not modified and the calculator is not
        attached.  When ``None`` (the generic-backend call), GPAW derives the grid from each
        structure's cell with the same rule.
    ecut_ev, kpoint_density, gamma, xc, smearing_ev
        Plane-wave cutoff (eV), k-point density (Å), Γ-centring, functional, Fermi-Dirac width (eV).
    scf_energy_tol, scf_density_tol, scf_forces_tol, maxiter
        SCF stopping criteria (eV/valence electron, electrons/valence electron, eV/Å; ``None``
        disables the force criterion) and iteration limit.
    mixer, setups
        Passed to GPAW unchanged when not ``None``.
    txt
        GPAW log file; ``None`` = silent, ``"-"`` = stdout.
    seed
        Accepted for a uniform calculator interface; GPAW starts from a deterministic LCAO guess,
        so results do not depend on it.  Must be ``None`` or an integer.
    """
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise ValueError(f"seed must be None or an integer, got {seed!r}")
    params = gpaw_parameters(atoms, **settings)  # validates every setting, defaults from GPAW_DEFAULTS
    try:
        from gpaw import GPAW
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise ImportError(f"{INSTALL_HINT} (import error: {exc})") from exc
    return GPAW(**params)


def gpaw_available() -> bool:
    """True when GPAW imports and its PBE setups are found (same check as the installer)."""
    try:
        import gpaw  # noqa: F401
        from gpaw.setup_data import search_for_file

        search_for_file("Si.PBE")
    except Exception:  # noqa: BLE001 - any failure means "not usable"
        return False
    return True
