"""Harmonic phonons by finite displacements (phonopy), pure functions.

Flow of data: unit cell + supercell/primitive matrices -> :func:`pftflow.sampling.fc2_displacements` (phonopy
object + displaced supercells) -> forces from any calculator -> :func:`produce_force_constants`
(drift subtraction, symmetrization) -> :func:`analyze_phonons` (thermal properties, ω_max,
stability, band structure, DOS, BZ-mesh frequencies).

Units: displacements Å, forces eV/Å, force constants eV/Å², frequencies THz (ω_max also in K,
THz × 47.992), F kJ/mol, S and C_V J/K/mol (per mole of primitive cells, as phonopy reports).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
from ase import Atoms
from pydantic import BaseModel, ConfigDict, Field, field_validator

from pftflow.materials.reference import ThermalProperties
from pftflow.materials.structures import atoms_to_phonopy, phonopy_to_atoms
from pftflow.serialization import Array, ArrayTree, Document
from pftflow.units import THZ_TO_K, temperatures_K_list

#: MDR temperature grid (K)
DEFAULT_TEMPERATURES_K = (0.0, 75.0, 150.0, 300.0, 600.0)
#: MDR stability thresholds: Γ acoustic below −35 K, Γ optical below 0, other commensurate below 0
GAMMA_ACOUSTIC_TOL_K = -35.0




class PhononSettings(BaseModel):
    """Finite-displacement and analysis settings.

    ``displacement_A``: displacement amplitude (Å); ``symprec``: phonopy symmetry tolerance;
    ``temperatures_K``: thermal-property grid; ``mesh``: BZ sampling for thermal properties/DOS and
    the frequency metrics — three integers, or a single float read as phonopy's length-based
    density (Å); ``band_npoints``: points per band-path segment; ``subtract_drift``: remove the
    mean force per displacement before fitting; ``symmetrize_fc``: translational/permutational
    symmetrization of the force constants.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    displacement_A: float = Field(0.01, gt=0, description="finite displacement amplitude (Å), > 0", examples=[0.01])
    symprec: float = Field(1e-5, gt=0, description="phonopy symmetry tolerance (Å), > 0", examples=[1e-5])
    temperatures_K: Sequence[float] = Field(
        DEFAULT_TEMPERATURES_K, min_length=1, description="temperatures of F, S, C_V (K), each >= 0", examples=[[0, 75, 150, 300, 600]]
    )
    mesh: list[int] | float = Field(
        100.0,
        description="BZ mesh for thermal properties, DOS and mesh metrics: 3 positive integers, or phonopy's "
        "length-based density (Å, > 0)",
        examples=[100.0, [8, 8, 8]],
    )
    band_npoints: int = Field(51, ge=2, description="points per band-path segment (>= 2)", examples=[51])
    subtract_drift: bool = Field(True, description="subtract the mean force of each displaced supercell before fitting")
    symmetrize_fc: bool = Field(True, description="phonopy's translational / permutational symmetrization of the force constants")
    exclude_gamma_acoustic: bool = Field(
        True,
        description="leave the three acoustic modes at Γ (zero up to round-off) out of F, S and C_V, as phonopy's "
        "exclude_gamma_acoustic does; False keeps phonopy's default, where the sign and size of their round-off noise "
        "moves S and F by up to ~R·ln(10)/N_q per decade of noise (docs/metrics.md, noise floor)",
    )

    @field_validator("temperatures_K", mode="before")
    @classmethod
    def _temperatures(cls, v):
        return temperatures_K_list(v)

    @field_validator("mesh", mode="before")
    @classmethod
    def _mesh(cls, v):
        v = v.tolist() if hasattr(v, "tolist") else v
        if isinstance(v, bool):
            raise ValueError(f"mesh must be 3 positive integers or a positive length (Å), got {v!r}")
        if isinstance(v, (int, float)):
            if not v > 0:
                raise ValueError(f"mesh length density must be > 0 Å, got {v!r}")
            return v
        if isinstance(v, (list, tuple)):
            if len(v) != 3 or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and float(x).is_integer() and x > 0 for x in v):
                raise ValueError(f"mesh must be 3 positive integers (or one positive length in Å), got {list(v)}")
            return [int(x) for x in v]
        return v

    def as_dict(self) -> dict:
        d = self.model_dump()
        d["temperatures_K"] = list(map(float, self.temperatures_K))
        d["mesh"] = self.mesh if isinstance(self.mesh, (int, float)) else list(self.mesh)
        return d


def produce_force_constants(
    phonon, forces_eV_per_A: Sequence[np.ndarray], *, subtract_drift: bool = True, symmetrize: bool = True
) -> np.ndarray:
    """Fit full force constants (eV/Å²) from forces on the displaced supercells of ``phonon``.

    ``subtract_drift`` removes the mean force of each supercell (the net force a non-conserving
    or noisy calculator leaves); ``symmetrize`` applies phonopy's symmetrization.  The force
    constants are set on ``phonon`` and returned.
    """
    forces = np.array([np.asarray(f, dtype=float) for f in forces_eV_per_A])
    n_disp = len(phonon.displacements) if isinstance(phonon.displacements, list) else len(phonon.dataset["first_atoms"])
    if forces.shape[0] != n_disp:
        raise ValueError(f"got forces for {forces.shape[0]} supercells, phonopy has {n_disp} displacements")
    if subtract_drift:
        forces = forces - forces.mean(axis=1, keepdims=True)
    phonon.forces = forces
    phonon.produce_force_constants()
    if symmetrize:
        phonon.symmetrize_force_constants()
    return np.array(phonon.force_constants)


def commensurate_qpoints(phonon, convention: str = "mdr") -> np.ndarray:
    """q-points (fractional, primitive reciprocal basis) used for ω_max and stability.

    ``convention="mdr"`` (default) reproduces the MDR-PBE files: phonopy's
    ``get_commensurate_points(supercell_matrix)`` read in the primitive basis (for Si with a 2x2x2
    conventional supercell: the 8 points Γ, L, X of a 2x2x2 primitive mesh, in that order).  It is
    exact when the unit cell is primitive.  ``convention="exact"`` gives all q-points truly
    commensurate with the supercell (32 for that Si example).
    """
    from phonopy.harmonic.dynmat_to_fc import get_commensurate_points

    smat = np.asarray(phonon.supercell_matrix)
    if convention == "exact" and phonon.primitive_matrix is not None:
        smat = np.rint(np.linalg.inv(phonon.primitive_matrix) @ smat).astype(int)
    elif convention not in ("mdr", "exact"):
        raise ValueError(f"unknown commensurate-point convention {convention!r} (use 'mdr' or 'exact')")
    return np.array(get_commensurate_points(smat))


def frequencies_at(phonon, qpoints: np.ndarray) -> np.ndarray:
    """Frequencies (THz), shape (n_q, n_bands), ascending per q."""
    phonon.run_qpoints(np.asarray(qpoints, dtype=float))
    return np.array(phonon.qpoints.frequencies)


def stability(qpoints: np.ndarray, frequencies_THz: np.ndarray) -> dict:
    """MDR stability rules on commensurate frequencies.

    Unstable if any Γ acoustic mode < −35 K, any Γ optical mode < 0 K, or any mode at another
    commensurate q-point < 0 K.  Γ modes: the three with the smallest |frequency| are acoustic
    (as phonopy identifies them); taking the three *lowest* would count a slightly imaginary
    optical mode (−35 K < f < 0) as acoustic and let the sign of the acoustic noise decide.
    """
    f_K = np.asarray(frequencies_THz, dtype=float) * THZ_TO_K
    qpoints = np.asarray(qpoints, dtype=float)
    is_gamma = np.all(np.abs(qpoints - np.rint(qpoints)) < 1e-8, axis=1)
    acoustic_min, optical_min = 0.0, float("inf")
    if is_gamma.any():
        g = f_K[is_gamma]
        g = np.take_along_axis(g, np.argsort(np.abs(g), axis=1, kind="stable"), axis=1)
        acoustic_min = float(g[:, :3].min())
        optical_min = float(g[:, 3:].min()) if g.shape[1] > 3 else float("inf")
    other_min = float(f_K[~is_gamma].min()) if (~is_gamma).any() else float("inf")
    stable = acoustic_min >= GAMMA_ACOUSTIC_TOL_K and optical_min >= 0.0 and other_min >= 0.0
    return {
        "stable": bool(stable),
        "gamma_acoustic_min_K": acoustic_min,
        "gamma_optical_min_K": optical_min,
        "other_commensurate_min_K": other_min,
    }


def band_path(phonon, npoints: int = 51) -> dict:
    """Seekpath band path for the primitive cell of ``phonon`` (fractional, primitive basis)."""
    from phonopy.phonon.band_structure import get_band_qpoints_by_seekpath

    bands, labels, connections = get_band_qpoints_by_seekpath(phonon.primitive, npoints, is_const_interval=False)
    return {
        "qpoints": [np.asarray(b).tolist() for b in bands],
        "labels": list(labels),
        "path_connections": [bool(c) for c in connections],
    }


def band_structure(phonon, path: dict) -> dict:
    """Frequencies (THz) along a band path from :func:`band_path` (so a model and its reference
    are evaluated on the same fractional q-points)."""
    bands = [np.asarray(b, dtype=float) for b in path["qpoints"]]
    phonon.run_band_structure(bands, labels=path["labels"], path_connections=path["path_connections"])
    bs = phonon.band_structure
    return {
        "qpoints": [np.asarray(q).tolist() for q in bs.qpoints],
        "distances": [np.asarray(d).tolist() for d in bs.distances],
        "frequencies_THz": [np.asarray(f).tolist() for f in bs.frequencies],
        "labels": list(path["labels"]),
        "path_connections": list(path["path_connections"]),
    }


def run_mesh(phonon, mesh, *, symmetry: bool = True) -> dict:
    """Frequencies on a Γ-centred BZ mesh (q-points, weights, THz): reduced to the irreducible q-points of
    the crystal's symmetry, or with ``symmetry=False`` every q-point of the mesh with weight 1."""
    phonon.run_mesh(mesh, is_gamma_center=True, with_eigenvectors=False, is_mesh_symmetry=symmetry)
    m = phonon.mesh
    return {
        "mesh": [int(x) for x in m.mesh_numbers],
        "qpoints": np.asarray(m.qpoints),
        "weights": np.asarray(m.weights),
        "frequencies_THz": np.asarray(m.frequencies),
    }


def thermal_properties(phonon, temperatures_K: Sequence[float], mesh, *, exclude_gamma_acoustic: bool = True) -> ThermalProperties:
    """Harmonic F (kJ/mol), S, C_V (J/K/mol) per mole of primitive cells on ``mesh`` (None: the
    mesh phonopy already holds, from :func:`run_mesh`).

    ``exclude_gamma_acoustic`` (default): the three acoustic modes at Γ, the three smallest |f| there, are left
    out of the sums (phonopy's own ``exclude_gamma_acoustic``). Their frequencies are zero only up to round-off
    (±1e-8 … 1e-6 THz), and with phonopy's default a positive one adds ~R·(1 + ln(k_B T / hν)) / N_q to S, so
    the BLAS kernel alone moved S by 2 % on an 8×8×8 mesh (docs/metrics.md, noise floor). ``False`` keeps
    phonopy's default (the MDR-PBE convention), and phonopy then warns that they entered the sums.
    """
    if mesh is not None:
        phonon.run_mesh(mesh, is_gamma_center=True, with_eigenvectors=False)
    phonon.run_thermal_properties(temperatures=np.asarray(temperatures_K, dtype=float), exclude_gamma_acoustic=exclude_gamma_acoustic)
    tp = phonon.thermal_properties
    return ThermalProperties(
        temperatures_K=np.asarray(tp.temperatures, dtype=float),
        free_energy_kJ_per_mol=np.asarray(tp.free_energy, dtype=float),
        entropy_J_per_K_mol=np.asarray(tp.entropy, dtype=float),
        heat_capacity_J_per_K_mol=np.asarray(tp.heat_capacity, dtype=float),
    )


def total_dos(phonon, mesh, freq_pitch_THz: float = 0.05) -> dict:
    """Total phonon DOS (states/THz per primitive cell) on ``mesh`` (None: the mesh phonopy holds)."""
    if mesh is not None:
        phonon.run_mesh(mesh, is_gamma_center=True, with_eigenvectors=False)
    phonon.run_total_dos(freq_pitch=freq_pitch_THz)
    d = phonon.total_dos
    return {"frequency_points_THz": np.asarray(d.frequency_points), "total_dos": np.asarray(d.dos)}


class PhononResult(Document):
    """Everything the benchmark compares, for one material and one model (or the reference).

    ``band_structure``, ``dos`` and ``mesh`` are dicts of numpy arrays (see :func:`band_structure`,
    :func:`total_dos`, :func:`run_mesh`); each is stored as one compressed blob.
    """

    thermal: ThermalProperties = Field(description="F (kJ/mol), S and C_V (J/K/mol) per mole of primitive cells")
    commensurate_qpoints: Array = Field(description="commensurate q-points (fractional, primitive reciprocal basis)")
    commensurate_frequencies_THz: Array = Field(description="frequencies at the commensurate q-points (THz)")
    omega_max_K: float = Field(description="maximum commensurate frequency (K)")
    stability: dict = Field(description="MDR stability verdict and the minimum Γ acoustic / optical / other frequencies (K)")
    band_structure: ArrayTree = Field(None, description="band path: qpoints, distances, frequencies_THz, labels")
    dos: ArrayTree = Field(None, description="total DOS: frequency_points_THz, total_dos (states/THz per primitive cell)")
    mesh: ArrayTree = Field(None, description="BZ mesh: mesh numbers, qpoints, weights, frequencies_THz")
    extra: dict = Field(default_factory=dict)


def analyze_phonons(
    phonon,
    settings: PhononSettings | None = None,
    *,
    band_path_spec: dict | None = None,
    with_bands: bool = True,
    with_dos: bool = True,
) -> PhononResult:
    """All benchmark quantities from a phonopy object that has force constants.

    ``band_path_spec`` (from :func:`band_path`, typically the reference's) fixes the band q-path so
    model and reference are compared on the same points; computed from ``phonon`` otherwise.
    """
    s = settings or PhononSettings()
    if phonon.force_constants is None:
        raise ValueError("phonon has no force constants; call produce_force_constants first")
    qc = commensurate_qpoints(phonon)
    fc_freqs = frequencies_at(phonon, qc)
    mesh = run_mesh(phonon, s.mesh)  # one mesh run for the frequencies, thermal properties and DOS
    thermal = thermal_properties(phonon, s.temperatures_K, None, exclude_gamma_acoustic=s.exclude_gamma_acoustic)
    dos = total_dos(phonon, None) if with_dos else None
    bands = None
    if with_bands:
        bands = band_structure(phonon, band_path_spec or band_path(phonon, s.band_npoints))
    return PhononResult(
        thermal=thermal,
        commensurate_qpoints=qc,
        commensurate_frequencies_THz=fc_freqs,
        omega_max_K=float(fc_freqs.max() * THZ_TO_K),
        stability=stability(qc, fc_freqs),
        band_structure=bands,
        dos=dos,
        mesh=mesh,
    )
