"""Energy scans along imaginary phonon modes (the Equitrain paper's potential-energy surfaces), pure functions.

For a phonopy object with imaginary modes at q-points commensurate with its supercell:

1. :func:`imaginary_modes` - the modes below a threshold (THz, negative = imaginary) at the commensurate
   q-points, one per distinct frequency and q-point;
2. :func:`mode_pattern` - the supercell displacement of one mode per unit normal-mode amplitude Q
   (amu^½·Å), from phonopy's modulation of the mode (``Phonopy.run_modulations``), made real and
   mass-weight normalised so that Σ_i m_i |u_i|² = Q²; then E(Q) − E(0) ≈ ½ ω² Q² near Q = 0 with ω² the
   eigenvalue of the mass-weighted dynamical matrix (eV/Å²/amu);
3. :func:`scan_energies` - E(Q) of the displaced supercells with any calculator (eV per supercell);
4. :func:`analyse_well` - well depth (eV per supercell, min E(Q) − E(0), negative for a double well), the
   minimum position Q_min on each side, and the curvature at Q = 0 as a frequency (THz; negative =
   imaginary), which must agree with phonopy's frequency of the mode;
5. :func:`relax_displaced` - relax the supercell displaced to the well minimum (positions only by default)
   and compare its space group (spglib) with the undistorted supercell's;
6. :func:`scan_mode` runs 3-5 for several calculators (the reference and each model) and returns a
   :class:`ModeScan`; :func:`plot_mode_scans` draws reference vs models.

Units: Q in amu^½·Å, energies in eV per supercell, frequencies in THz.  The normalisation of the mode
pattern and the well analysis are written here (phonopy gives the modulation, not a normal-mode
coordinate or a well depth); everything else is phonopy, ASE and spglib.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from ase import Atoms
from pydantic import Field

from pftflow.materials.structures import phonopy_to_atoms
from pftflow.phonons.harmonic import commensurate_qpoints, frequencies_at
from pftflow.phonons.plotting import save_figure
from pftflow.phonons.relax import RelaxSettings, relax_structure, spacegroup_number
from pftflow.serialization import Array, Document, Structure

#: frequencies (THz) closer than this are one mode (degenerate) when modes are listed
DEGENERACY_TOL_THZ = 1e-3


def _to_thz() -> float:
    """sqrt(eV / Å² / amu) in THz (phonopy's default conversion factor)."""
    try:
        from phonopy.physical_units import get_physical_units

        return float(get_physical_units().DefaultToTHz)
    except ImportError:  # older phonopy
        from phonopy.units import VaspToTHz

        return float(VaspToTHz)


# ------------------------------------------------------------------------------------ documents
class ImaginaryMode(Document):
    """A phonon mode at a commensurate q-point (frequency below the threshold: imaginary)."""

    qpoint: list[float] = Field(description="q-point, fractional coordinates of the primitive reciprocal basis")
    band_index: int = Field(description="band index at the q-point (0-based, ascending frequency)")
    frequency_THz: float = Field(description="frequency (THz); negative = imaginary")
    degeneracy: int = Field(1, description="number of modes with this frequency at this q-point")


class ModeCurve(Document):
    """One calculator's energy along a mode, and what relaxing the displaced supercell does."""

    energies_eV: Array = Field(description="E(Q) − E(0) per supercell (eV), on the scan's amplitudes")
    well_depth_eV: float = Field(description="min over Q of E(Q) − E(0), eV per supercell (0: no well; negative: double well)")
    q_min_amu05_A: float = Field(description="Q of the lowest energy (amu^½·Å; parabola through the lowest grid point and its neighbours)")
    q_min_negative_amu05_A: float | None = Field(None, description="Q of the lowest energy on the Q < 0 side (amu^½·Å)")
    q_min_positive_amu05_A: float | None = Field(None, description="Q of the lowest energy on the Q > 0 side (amu^½·Å)")
    double_well: bool = Field(description="minima below E(0) on both sides of Q = 0")
    curvature_frequency_THz: float | None = Field(None, description="sign(k)·sqrt(|k|) of the curvature k = d²E/dQ² at Q = 0, as a frequency (THz)")
    spacegroup_initial: int | None = Field(None, description="space group of the undistorted supercell (spglib)")
    spacegroup_relaxed: int | None = Field(None, description="space group after relaxing the displaced supercell (spglib)")
    spacegroup_changed: bool | None = Field(None, description="the relaxed structure has another space group than the undistorted one "
                                            "(None when the relaxation did not converge)")
    relaxed_energy_eV: float | None = Field(None, description="energy of the relaxed structure − E(0), eV per supercell")
    relax_converged: bool | None = Field(None, description="the relaxation reached its force criterion")
    error: str | None = Field(None, description="why this calculator's scan failed")


class ModeScan(Document):
    """Energy scans along one mode for several calculators (reference and models)."""

    material_id: str = Field("", description="material id")
    source: str = Field("reference", description="whose force constants gave the mode (reference or a model name)")
    mode: ImaginaryMode = Field(description="the scanned mode")
    supercell: Structure = Field(description="the undistorted supercell of the scan (Å)")
    pattern_A_per_amu05_A: Array = Field(description="displacement per unit Q (Å per amu^½·Å), (n_atoms, 3); Σ m |pattern|² = 1")
    amplitudes_amu05_A: Array = Field(description="normal-mode amplitudes Q of the scan (amu^½·Å)")
    curves: dict[str, ModeCurve] = Field(default_factory=dict, description="calculator name -> its curve")

    def summary(self) -> list[dict[str, Any]]:
        """One flat row per calculator (for tables)."""
        out = []
        for name, c in self.curves.items():
            out.append({
                "material_id": self.material_id, "source": self.source, "qpoint": list(self.mode.qpoint), "band_index": self.mode.band_index,
                "frequency_THz": self.mode.frequency_THz, "calculator": name, "well_depth_eV": c.well_depth_eV,
                "q_min_amu05_A": c.q_min_amu05_A, "double_well": c.double_well, "curvature_frequency_THz": c.curvature_frequency_THz,
                "spacegroup_initial": c.spacegroup_initial, "spacegroup_relaxed": c.spacegroup_relaxed,
                "spacegroup_changed": c.spacegroup_changed, "relax_converged": c.relax_converged, "relaxed_energy_eV": c.relaxed_energy_eV,
                "error": c.error,
            })
        return out


# ------------------------------------------------------------------------------------ modes
def primitive_dimension(phonon) -> np.ndarray:
    """The supercell matrix relative to the primitive cell (phonopy's modulation ``dimension``)."""
    smat = np.asarray(phonon.supercell_matrix, dtype=float)
    pmat = phonon.primitive_matrix
    if pmat is None:
        return np.rint(smat).astype(int)
    return np.rint(np.linalg.inv(np.asarray(pmat, dtype=float)) @ smat).astype(int)


def imaginary_modes(phonon, threshold_THz: float = -0.1, *, max_modes: int | None = None, qpoints=None) -> list[ImaginaryMode]:
    """Modes with frequency below ``threshold_THz`` (THz) at the q-points commensurate with the supercell
    (all of them: ``commensurate_qpoints(convention="exact")``), most negative first; degenerate modes
    (within :data:`DEGENERACY_TOL_THZ`) at one q-point are listed once with their ``degeneracy``, and so
    are q-points with the same frequencies (symmetry-equivalent stars).  The three acoustic modes at Γ
    are never listed.  ``qpoints``: other q-points (fractional) instead."""
    q = np.asarray(commensurate_qpoints(phonon, "exact") if qpoints is None else qpoints, dtype=float).reshape(-1, 3)
    freqs = frequencies_at(phonon, q)
    found: list[ImaginaryMode] = []
    seen: set[int] = set()
    for iq, (qq, f) in enumerate(zip(q, freqs)):
        gamma = np.allclose(qq - np.rint(qq), 0.0, atol=1e-8)
        for b, fb in enumerate(f):
            if (gamma and b < 3) or fb >= threshold_THz:
                continue
            key = int(round(fb / DEGENERACY_TOL_THZ))
            if key in seen:
                if found and abs(found[-1].frequency_THz - fb) < DEGENERACY_TOL_THZ and np.allclose(found[-1].qpoint, qq):
                    found[-1].degeneracy += 1
                continue
            seen.add(key)
            found.append(ImaginaryMode(qpoint=[float(x) for x in qq], band_index=b, frequency_THz=float(fb)))
    found.sort(key=lambda m: m.frequency_THz)
    return found[:max_modes] if max_modes is not None else found


def mode_pattern(phonon, qpoint: Sequence[float], band_index: int) -> tuple[Atoms, np.ndarray]:
    """The undistorted supercell of the mode's modulation and the real displacement per unit normal-mode
    amplitude: u(Q) = Q · pattern (Å), Σ_i m_i |pattern_i|² = 1 (masses in amu), so Q is in amu^½·Å.

    phonopy's modulation (``run_modulations``, phase chosen so that the largest component is real) gives
    the complex displacement field; its real part is an eigenvector of the supercell's mass-weighted
    force-constant matrix with the mode's eigenvalue (for a q-point on the zone boundary it is the whole
    field), and is renormalised here.  The supercell is phonopy's (the primitive cell times
    :func:`primitive_dimension`), so its atom order may differ from ``phonon.supercell``."""
    mod = phonon.run_modulations(primitive_dimension(phonon), [[np.asarray(qpoint, dtype=float), int(band_index), 1.0, 0.0]])
    u, supercell = mod.get_modulations_and_supercell()
    masses = np.asarray(supercell.masses, dtype=float)
    pattern = np.real(u[0])
    if np.sqrt(np.sum(masses[:, None] * pattern**2)) < 1e-8 * np.sqrt(np.sum(masses[:, None] * np.abs(u[0]) ** 2)):
        pattern = np.imag(u[0])  # the real part vanishes: the imaginary part carries the mode
    pattern = pattern / np.sqrt(np.sum(masses[:, None] * pattern**2))
    atoms = phonopy_to_atoms(supercell)
    atoms.set_masses(masses)
    return atoms, pattern


def displaced(supercell: Atoms, pattern: np.ndarray, amplitude_amu05_A: float) -> Atoms:
    """``supercell`` displaced by ``amplitude_amu05_A`` · ``pattern`` (Å)."""
    a = supercell.copy()
    a.positions = a.positions + float(amplitude_amu05_A) * np.asarray(pattern)
    return a


def scan_energies(supercell: Atoms, pattern: np.ndarray, amplitudes_amu05_A: Sequence[float], calculator) -> np.ndarray:
    """Energies (eV per supercell) of the supercell displaced by each amplitude Q along ``pattern``.
    ``calculator``: a :class:`pftflow.calculators.base.ForceCalculator` (one batch call) or an ASE calculator."""
    structures = [displaced(supercell, pattern, q) for q in amplitudes_amu05_A]
    if hasattr(calculator, "compute"):
        return np.asarray(calculator.compute(structures, stress=False).energies_eV, dtype=float)
    out = []
    for a in structures:
        a.calc = calculator
        out.append(float(a.get_potential_energy()))
    return np.asarray(out, dtype=float)


def _parabola_min(x: np.ndarray, y: np.ndarray, i: int) -> float:
    """x of the vertex of the parabola through points i-1, i, i+1 (x[i] at an end of the grid)."""
    if i <= 0 or i >= len(x) - 1:
        return float(x[i])
    x0, x1, x2 = x[i - 1 : i + 2]
    y0, y1, y2 = y[i - 1 : i + 2]
    den = (x0 - x1) * (x0 - x2) * (x1 - x2)
    a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / den
    b = (x2**2 * (y0 - y1) + x1**2 * (y2 - y0) + x0**2 * (y1 - y2)) / den
    if a <= 0:
        return float(x1)
    return float(np.clip(-b / (2 * a), x0, x2))


def analyse_well(amplitudes_amu05_A: Sequence[float], energies_eV: Sequence[float]) -> dict[str, Any]:
    """Well depth and minima of E(Q) (eV per supercell) on a grid of Q (amu^½·Å) that contains Q = 0.

    Returns ``energies_eV`` (E − E(0)), ``well_depth_eV`` (min E − E(0) ≤ 0), ``q_min_amu05_A`` (the lowest
    point, refined by a parabola through it and its neighbours), ``q_min_negative_amu05_A`` /
    ``q_min_positive_amu05_A`` (the lowest point on each side), ``double_well`` (both sides dip below E(0))
    and ``curvature_frequency_THz``: sign(k)·sqrt(|k|) in THz of k = d²E/dQ² at Q = 0 (central difference
    on the two nearest grid points), which equals phonopy's frequency of the mode in the harmonic limit."""
    q = np.asarray(amplitudes_amu05_A, dtype=float)
    e = np.asarray(energies_eV, dtype=float)
    order = np.argsort(q)
    q, e = q[order], e[order]
    zero = np.flatnonzero(np.isclose(q, 0.0, atol=1e-12))
    if zero.size == 0:
        raise ValueError(f"the amplitude grid must contain Q = 0 (got {q.tolist()})")
    i0 = int(zero[0])
    rel = e - e[i0]
    imin = int(np.argmin(rel))
    out: dict[str, Any] = {"energies_eV": rel[np.argsort(order)], "well_depth_eV": float(min(rel[imin], 0.0))}
    out["q_min_amu05_A"] = 0.0 if rel[imin] >= 0 else _parabola_min(q, rel, imin)
    neg = np.flatnonzero(q < 0)
    pos = np.flatnonzero(q > 0)
    out["q_min_negative_amu05_A"] = _parabola_min(q, rel, int(neg[np.argmin(rel[neg])])) if neg.size and rel[neg].min() < 0 else None
    out["q_min_positive_amu05_A"] = _parabola_min(q, rel, int(pos[np.argmin(rel[pos])])) if pos.size and rel[pos].min() < 0 else None
    out["double_well"] = out["q_min_negative_amu05_A"] is not None and out["q_min_positive_amu05_A"] is not None
    curv = None
    if 0 < i0 < len(q) - 1:
        h1, h2 = q[i0] - q[i0 - 1], q[i0 + 1] - q[i0]
        k = 2.0 * (h1 * rel[i0 + 1] + h2 * rel[i0 - 1] - (h1 + h2) * rel[i0]) / (h1 * h2 * (h1 + h2))
        curv = float(np.sign(k) * np.sqrt(abs(k)) * _to_thz())
    out["curvature_frequency_THz"] = curv
    return out


def relax_displaced(atoms: Atoms, calculator, *, reference: Atoms | None = None, fmax_eV_per_A: float = 1e-3, steps: int = 300,
                    relax_cell: bool = False, symprec: float = 1e-3) -> dict[str, Any]:
    """Relax a displaced supercell without symmetry constraints (positions only unless ``relax_cell``) and
    compare its space group (spglib, ``symprec`` Å) with ``reference``'s (the undistorted supercell).
    ``calculator``: an ASE calculator.  Returns ``spacegroup_initial``, ``spacegroup_relaxed``,
    ``spacegroup_changed``, ``energy_eV``, ``converged``, ``structure``, ``error``."""
    settings = RelaxSettings(fmax_eV_per_A=fmax_eV_per_A, steps=steps, relax_cell=relax_cell, fix_symmetry=False, symprec=symprec)
    res = relax_structure(atoms, calculator, settings)
    sg0 = spacegroup_number(reference if reference is not None else atoms, symprec)
    sg1 = spacegroup_number(res.atoms, symprec)
    return {
        "spacegroup_initial": sg0,
        "spacegroup_relaxed": sg1,
        "spacegroup_changed": None if sg0 is None or sg1 is None or not res.converged else sg0 != sg1,
        "energy_eV": res.energy_eV,
        "converged": res.converged,
        "structure": res.atoms,
        "error": res.error,
    }


def default_amplitudes(q_max_amu05_A: float = 4.0, n_points: int = 17) -> np.ndarray:
    """A symmetric grid of ``n_points`` amplitudes from −q_max to q_max (amu^½·Å), Q = 0 included (odd n)."""
    if n_points < 3 or n_points % 2 == 0:
        raise ValueError(f"n_points must be odd and >= 3 (Q = 0 on the grid), got {n_points}")
    return np.linspace(-q_max_amu05_A, q_max_amu05_A, n_points)


def scan_mode(
    phonon,
    mode: ImaginaryMode,
    calculators: Mapping[str, Any],
    amplitudes_amu05_A: Sequence[float] | None = None,
    *,
    material_id: str = "",
    source: str = "reference",
    relax: bool = True,
    relax_steps: int = 300,
    fmax_eV_per_A: float = 1e-3,
    symprec: float = 1e-3,
    supercell_from=None,
) -> ModeScan:
    """Scan ``mode`` of ``phonon`` with every calculator of ``calculators`` (name -> ForceCalculator or ASE
    calculator): E(Q), the well, and (``relax``) the space group after relaxing the supercell displaced to
    that calculator's minimum (or, without a well, by the smallest non-zero amplitude).  A calculator that
    raises gets a curve with ``error`` set; the others still run.  ``supercell_from``: another phonopy object
    of the same cell and matrices (the reference) whose undistorted supercell is displaced by ``phonon``'s mode
    (a model's mode scanned on the reference cell); the atom order is the same for the same unit cell."""
    q = default_amplitudes() if amplitudes_amu05_A is None else np.asarray(amplitudes_amu05_A, dtype=float)
    supercell, pattern = mode_pattern(phonon, mode.qpoint, mode.band_index)
    if supercell_from is not None:
        other, _ = mode_pattern(supercell_from, mode.qpoint, mode.band_index)
        if len(other) != len(supercell) or other.get_chemical_symbols() != supercell.get_chemical_symbols():
            raise ValueError("supercell_from: its supercell has other atoms than the mode's phonopy object")
        supercell = other
    sg0 = spacegroup_number(supercell, symprec)
    curves: dict[str, ModeCurve] = {}
    for name, calc in calculators.items():
        try:
            e = scan_energies(supercell, pattern, q, calc)
            w = analyse_well(q, e)
            curve = ModeCurve(**w, spacegroup_initial=sg0)
            if relax:
                nonzero = q[np.abs(q) > 0]
                start_q = w["q_min_amu05_A"] if w["well_depth_eV"] < 0 else float(nonzero[np.argmin(np.abs(nonzero))])
                ase_calc = calc.ase_calculator() if hasattr(calc, "ase_calculator") else calc
                r = relax_displaced(displaced(supercell, pattern, start_q), ase_calc, reference=supercell, fmax_eV_per_A=fmax_eV_per_A,
                                    steps=relax_steps, symprec=symprec)
                e0 = e[int(np.flatnonzero(np.isclose(q, 0.0, atol=1e-12))[0])]
                curve.spacegroup_relaxed = r["spacegroup_relaxed"]
                curve.spacegroup_changed = r["spacegroup_changed"]
                curve.relaxed_energy_eV = None if r["energy_eV"] is None else float(r["energy_eV"] - e0)
                curve.relax_converged = r["converged"]
                curve.error = r["error"]
        except Exception as exc:
            curve = ModeCurve(energies_eV=np.full(len(q), np.nan), well_depth_eV=float("nan"), q_min_amu05_A=float("nan"), double_well=False,
                              error=f"{type(exc).__name__}: {exc}")
        curves[name] = curve
    return ModeScan(material_id=material_id, source=source, mode=mode, supercell=supercell, pattern_A_per_amu05_A=pattern,
                    amplitudes_amu05_A=q, curves=curves)


# ------------------------------------------------------------------------------------ plot
def plot_mode_scans(scans: Sequence[ModeScan], path: str | os.PathLike, *, reference: str = "reference", title: str | None = None,
                    dpi: int = 130) -> Path:
    """One panel per scan: E(Q) − E(0) (eV per supercell) against Q (amu^½·Å), the reference in black, each
    model in colour; the legend gives each curve's well depth.  Returns the written path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not scans:
        raise ValueError("no mode scans to plot")
    fig = Figure(figsize=(4.2 * len(scans), 3.8))
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(1, len(scans))).ravel()
    import matplotlib

    for ax, s in zip(axes, scans):
        q = np.asarray(s.amplitudes_amu05_A)
        others = [n for n in s.curves if n != reference]
        ncol = 10 if len(others) <= 10 else 20
        cmap = matplotlib.colormaps[f"tab{ncol}"]
        for name in ([reference] if reference in s.curves else []) + others:
            c = s.curves[name]
            if c.error and not np.isfinite(np.asarray(c.energies_eV, dtype=float)).any():
                continue
            ref = name == reference
            ax.plot(q, np.asarray(c.energies_eV), color="k" if ref else cmap(others.index(name) % ncol), lw=2.0 if ref else 1.2,
                    marker="o" if ref else None, ms=3, label=f"{name} ({c.well_depth_eV * 1000:.1f} meV)", zorder=3 if ref else 2)
        ax.axhline(0.0, color="0.7", lw=0.6, zorder=0)
        qp = ", ".join(f"{x:.3g}" for x in s.mode.qpoint)
        ax.set_title(f"{s.material_id} q=({qp}) band {s.mode.band_index}: {s.mode.frequency_THz:.2f} THz", fontsize=8)
        ax.set_xlabel("Q (amu$^{1/2}$ Å)", fontsize=9)
        ax.set_ylabel("E(Q) − E(0) (eV / supercell)", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=6.5, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()

    return save_figure(fig, path, dpi)
