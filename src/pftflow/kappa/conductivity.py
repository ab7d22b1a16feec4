"""Lattice thermal conductivity with phono3py (Wigner transport in the RTA) the k_SRME way.

Pure functions: structures / force arrays / :class:`phono3py.Phono3py` in, numpy results out.

Units: Å (positions, displacement distance), eV/Å (forces), eV/Å² and eV/Å³ (fc2, fc3), THz
(frequencies), K (temperatures), µm (boundary mean free path), W/(m K) (κ tensors, Voigt order
xx, yy, zz, yz, xz, xy), eV/K (mode heat capacities, phono3py's unit).

Per-mode κ conventions (as phono3py and k_SRME): ``mode_kappa_*`` arrays are summed over the
irreducible q-points with their weights already included, so that
``kappa = mode_kappa.sum(over q, bands) / weights.sum()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from pftflow.units import temperatures_K_list

#: k_SRME threshold for the three acoustic modes at Γ (THz)
ACOUSTIC_GAMMA_THRESHOLD_THZ = -0.01





class KappaSettings(BaseModel):
    """Settings of the κ calculation (k_SRME defaults).

    ``displacement_A``: finite displacement (Å); ``symprec``: symmetry tolerance (Å) for phono3py;
    ``temperatures_K``; ``is_isotope``: isotope scattering (natural abundances);
    ``boundary_mfp_um``: boundary mean free path (µm; 1e6 = effectively none);
    ``conductivity``: ``"wigner"`` (κ_P + κ_C, SMM19) or ``"rta"`` (particle-like only);
    ``symmetrize_fc2`` / ``symmetrize_fc3``: phono3py's symmetrization of the force constants;
    ``is_compact_fc``: compact (n_prim, n_sc, ...) or full force constants (k_SRME used full);
    ``q_mesh``: override of the material's q-mesh (None = the file's mesh);
    ``acoustic_threshold_THz``: Γ acoustic modes below this are imaginary;
    ``subtract_residual_forces``: subtract the forces of the undisplaced supercell (off, as k_SRME).
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    displacement_A: float = Field(0.03, gt=0, description="finite displacement of fc2 and fc3 (Å), > 0", examples=[0.03])
    symprec: float = Field(1e-5, gt=0, description="phono3py symmetry tolerance (Å), > 0", examples=[1e-5])
    temperatures_K: list[float] = Field(
        default_factory=lambda: [300.0], min_length=1, description="temperatures of κ (K), each >= 0", examples=[[300.0]]
    )
    is_isotope: bool = Field(True, description="isotope scattering with natural abundances")
    boundary_mfp_um: float | None = Field(
        1e6, gt=0, description="boundary mean free path (µm, > 0; 1e6 = effectively none; null = no boundary scattering)", examples=[1.0e6]
    )
    conductivity: Literal["wigner", "rta"] = Field(
        "wigner", description="'wigner' (κ_P + κ_C, Simoncelli-Marzari-Mauri 2019) or 'rta' (particle-like κ_P only)"
    )
    symmetrize_fc2: bool = Field(True, description="phono3py's symmetrization of fc2")
    symmetrize_fc3: bool = Field(True, description="phono3py's symmetrization of fc3")
    is_compact_fc: bool = Field(False, description="compact (n_prim, n_sc, ...) instead of full force constants (k_SRME: full)")
    q_mesh: list[int] | None = Field(
        None, min_length=3, max_length=3, description="q-mesh override: 3 positive integers, or null for the material's mesh", examples=[[19, 19, 19]]
    )
    acoustic_threshold_THz: float = Field(
        ACOUSTIC_GAMMA_THRESHOLD_THZ, le=0, description="Γ acoustic modes below this frequency (THz, <= 0) are imaginary", examples=[-0.01]
    )

    @field_validator("temperatures_K", mode="before")
    @classmethod
    def _temperatures(cls, v):
        return temperatures_K_list(v)

    @field_validator("q_mesh", mode="before")
    @classmethod
    def _q_mesh(cls, v):
        v = v.tolist() if hasattr(v, "tolist") else v
        if isinstance(v, (list, tuple)) and not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and float(x).is_integer() and x > 0 for x in v
        ):
            raise ValueError(f"q_mesh must be 3 positive integers, got {list(v)}")
        return v

    def as_dict(self) -> dict:
        return self.model_dump()

    @classmethod
    def from_dict(cls, d: dict | None) -> "KappaSettings":
        """Settings from a dict; unknown keys raise (``pydantic.ValidationError``, a ``ValueError``)."""
        return cls.model_validate(dict(d or {}))


# ----------------------------------------------------------------------------- force constants
def produce_fc2(ph3, forces_eV_per_A: Sequence[np.ndarray], settings: KappaSettings | None = None) -> np.ndarray:
    """Set the fc2 forces (one (n_atoms, 3) array per displaced supercell) and produce fc2 (eV/Å²),
    symmetrized (phono3py's traditional translational + permutation symmetrization, 3 passes)
    when ``settings.symmetrize_fc2``."""
    s = settings or KappaSettings()
    ph3.phonon_forces = np.asarray(forces_eV_per_A, dtype=float)
    ph3.produce_fc2(is_compact_fc=s.is_compact_fc)
    if s.symmetrize_fc2:
        ph3.symmetrize_fc2()
    return np.asarray(ph3.fc2)


def produce_fc3(ph3, forces_eV_per_A: Sequence[np.ndarray], settings: KappaSettings | None = None) -> np.ndarray:
    """Set the fc3 forces (one array per displaced supercell) and produce fc3 (eV/Å³), symmetrized
    when ``settings.symmetrize_fc3`` (with fc2 too when phono3py made it here: no phonon supercell)."""
    s = settings or KappaSettings()
    ph3.forces = np.asarray(forces_eV_per_A, dtype=float)
    ph3.produce_fc3(is_compact_fc=s.is_compact_fc)
    if s.symmetrize_fc3:
        ph3.symmetrize_fc3()
        if ph3.phonon_supercell_matrix is None:
            ph3.symmetrize_fc2()
    return np.asarray(ph3.fc3)


# ----------------------------------------------------------------------------- harmonic check
def mesh_frequencies(ph3, q_mesh: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Phonon frequencies (THz) from fc2 on the irreducible Γ-centred ``q_mesh``.

    Returns ``(qpoints, frequencies)`` with shapes (n_irq, 3) and (n_irq, n_bands); the first
    q-point is Γ.  Uses phonopy's mesh with the phonon supercell and primitive of ``ph3``.
    """
    import phonopy

    ph = phonopy.Phonopy(
        ph3.unitcell,
        supercell_matrix=ph3.supercell_matrix if ph3.phonon_supercell_matrix is None else ph3.phonon_supercell_matrix,
        primitive_matrix=ph3.primitive_matrix,
        symprec=ph3.symmetry.tolerance,
    )
    ph.force_constants = ph3.fc2
    if ph3.nac_params is not None:
        ph.nac_params = ph3.nac_params
    ph.run_mesh(list(q_mesh), is_gamma_center=True, with_eigenvectors=False)
    q = np.asarray(ph.mesh.qpoints)
    f = np.asarray(ph.mesh.frequencies)
    if not np.allclose(q[0], 0):
        raise RuntimeError("first mesh q-point is not Γ")
    return q, f


def has_imaginary_modes(frequencies_THz: np.ndarray, acoustic_threshold_THz: float = ACOUSTIC_GAMMA_THRESHOLD_THZ) -> bool:
    """k_SRME rule on mesh frequencies (n_q, n_bands) with Γ as row 0: imaginary (True) when a Γ
    optical mode < 0, a Γ acoustic mode < ``acoustic_threshold_THz`` or any mode at another
    q-point < 0 THz.  NaN frequencies count as imaginary."""
    f = np.asarray(frequencies_THz, dtype=float)
    if np.isnan(f).any():
        return True
    return bool((f[0, 3:] < 0).any() or (f[0, :3] < acoustic_threshold_THz).any() or (f[1:] < 0).any())


# ----------------------------------------------------------------------------- per-mode kappa
def mode_kappa_total(mode_kappa_P: np.ndarray, mode_kappa_C: np.ndarray, heat_capacity: np.ndarray) -> np.ndarray:
    """Per-mode total κ (W/m/K, weights included): κ_P(q,s) plus the coherence term split onto modes.

    As k_SRME's ``calculate_mode_kappa_TOT`` (Matbench Discovery ``calc_mode_kappa_tot``):
    ``κ_C(q,s') = 2 Σ_s κ_C(q,s,s') C(q,s) / (C(q,s) + C(q,s'))`` with NaN (0/0, acoustic modes at
    Γ) set to 0.  ``mode_kappa_P``: (n_T, n_q, n_b, 6); ``mode_kappa_C``: (n_T, n_q, n_b, n_b, 6)
    with a zero diagonal; ``heat_capacity``: (n_T, n_q, n_b).  Since κ_C(q,s,s') is symmetric in
    (s, s'), the sum over modes of the split equals the sum of κ_C.
    """
    cv = np.asarray(heat_capacity, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = (np.asarray(mode_kappa_C) * cv[:, :, :, None, None]) / (cv[:, :, :, None, None] + cv[:, :, None, :, None])
    # k_SRME sets NaN to 0 after the sum over s; zeroing each 0/0 term instead is identical on
    # phono3py output (κ_C vanishes where both heat capacities do: acoustic modes at Γ) and keeps
    # the sum rule exact otherwise.
    terms[np.isnan(terms)] = 0
    return np.asarray(mode_kappa_P) + 2 * terms.sum(axis=2)


@dataclass
class KappaResult:
    """κ of one material.  Tensors (n_T, 6) in W/m/K (Voigt xx, yy, zz, yz, xz, xy);
    per-mode arrays (n_T, n_q, n_b, 6) with q-point weights included (sum / weights.sum() = κ);
    ``*_ave`` = mean of xx, yy, zz (trace/3)."""

    temperatures_K: np.ndarray
    q_mesh: list[int]
    qpoints: np.ndarray  # (n_q, 3) irreducible, reduced coordinates
    weights: np.ndarray  # (n_q,)
    frequencies_THz: np.ndarray  # (n_q, n_b)
    heat_capacity_eV_per_K: np.ndarray  # (n_T, n_q, n_b)
    kappa_TOT_W_per_mK: np.ndarray  # (n_T, 6)
    kappa_P_W_per_mK: np.ndarray
    kappa_C_W_per_mK: np.ndarray
    mode_kappa_P_W_per_mK: np.ndarray  # (n_T, n_q, n_b, 6)
    mode_kappa_C_W_per_mK: np.ndarray | None  # (n_T, n_q, n_b, n_b, 6) or None (RTA)
    mode_kappa_TOT_W_per_mK: np.ndarray  # (n_T, n_q, n_b, 6)
    conductivity: str = "wigner"

    @property
    def kappa_TOT_ave_W_per_mK(self) -> np.ndarray:
        return self.kappa_TOT_W_per_mK[..., :3].mean(axis=-1)

    @property
    def mode_kappa_TOT_ave_W_per_mK(self) -> np.ndarray:
        return self.mode_kappa_TOT_W_per_mK[..., :3].mean(axis=-1)

    def mode_sum_W_per_mK(self) -> np.ndarray:
        """κ tensor (n_T, 6) re-summed from the per-mode total (consistency check)."""
        return self.mode_kappa_TOT_W_per_mK.sum(axis=(1, 2)) / self.weights.sum()


def run_conductivity(
    ph3,
    q_mesh: Sequence[int],
    *,
    temperatures_K: Sequence[float] = (300.0,),
    conductivity: str = "wigner",
    is_isotope: bool = True,
    boundary_mfp_um: float | None = 1e6,
    sigma_THz: float | None = None,
    log_level: int = 0,
) -> KappaResult:
    """Run phono3py's RTA conductivity on ``ph3`` (fc2 and fc3 set) and collect tensors and modes.

    ``conductivity="wigner"``: phono3py's Wigner transport equation (``transport_type="SMM19"``,
    Simoncelli-Marzari-Mauri 2019; called ``conductivity_type="wigner"`` in phono3py < 4): κ_P is
    the band-diagonal part of phono3py's ``mode_kappa_matrix`` (identical to the standard RTA
    per-mode κ), κ_C the off-diagonal part.  ``conductivity="rta"``: standard RTA, κ_C = 0.

    ``sigma_THz``: None (default, as k_SRME) integrates the energy-conservation delta with the linear
    tetrahedron method; a width (THz, > 0) uses Gaussian smearing instead.  On coarse meshes the
    tetrahedron linewidths jump with the last bits of the frequencies (NaCl 4×4×4: 1e-7 THz moves
    single linewidths 14 % and κ 2.8 %, docs/kappa.md); smeared ones do not.
    """
    if sigma_THz is not None and not sigma_THz > 0:
        raise ValueError(f"sigma_THz must be > 0 (THz) or None for the tetrahedron method, got {sigma_THz!r}")
    ph3.sigmas = [None if sigma_THz is None else float(sigma_THz)]
    ph3.mesh_numbers = list(q_mesh)
    ph3.init_phph_interaction()
    kw: dict[str, Any] = dict(
        is_LBTE=False,
        temperatures=list(temperatures_K),
        is_isotope=is_isotope,
        boundary_mfp=boundary_mfp_um,
        log_level=log_level,
    )
    conductivity = conductivity.lower()
    if conductivity == "wigner":
        kw["transport_type"] = "SMM19"
    elif conductivity != "rta":
        raise ValueError(f"conductivity must be 'wigner' or 'rta', got {conductivity!r}")
    ph3.run_thermal_conductivity(**kw)
    tc = ph3.thermal_conductivity
    weights = np.asarray(tc.grid_weights, dtype=float)
    cv = np.asarray(tc.mode_heat_capacities, dtype=float)
    freqs = np.asarray(tc.frequencies, dtype=float)
    if freqs.shape[0] != weights.shape[0]:  # frequencies on all BZ grid points
        freqs = freqs[np.asarray(tc.grid_points)]
    if conductivity == "wigner":
        M = np.asarray(tc.mode_kappa_matrix[0], dtype=float)  # (n_T, n_q, n_b, n_b, 6), first sigma
        nb = M.shape[2]
        diag = np.arange(nb)
        mode_P = M[:, :, diag, diag, :].copy()
        mode_C = M.copy()
        mode_C[:, :, diag, diag, :] = 0.0
        kappa_tot = np.asarray(tc.kappa[0], dtype=float)
        kappa_P = mode_P.sum(axis=(1, 2)) / weights.sum()
        kappa_C = kappa_tot - kappa_P
        mode_tot = mode_kappa_total(mode_P, mode_C, cv)
    else:
        mode_P = np.asarray(tc.mode_kappa[0], dtype=float)
        mode_C = None
        kappa_tot = np.asarray(tc.kappa[0], dtype=float)
        kappa_P = kappa_tot.copy()
        kappa_C = np.zeros_like(kappa_tot)
        mode_tot = mode_P.copy()
    return KappaResult(
        temperatures_K=np.asarray(temperatures_K, dtype=float),
        q_mesh=[int(x) for x in q_mesh],
        qpoints=np.asarray(tc.qpoints, dtype=float),
        weights=weights,
        frequencies_THz=freqs,
        heat_capacity_eV_per_K=cv,
        kappa_TOT_W_per_mK=kappa_tot,
        kappa_P_W_per_mK=kappa_P,
        kappa_C_W_per_mK=kappa_C,
        mode_kappa_P_W_per_mK=mode_P,
        mode_kappa_C_W_per_mK=mode_C,
        mode_kappa_TOT_W_per_mK=mode_tot,
        conductivity=conductivity,
    )
