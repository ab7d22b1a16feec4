"""Typed outputs of the κ jobs (:mod:`pftflow.flows.kappa`): the phono3py displacement set and the
per-material κ result.  Arrays are :data:`~pftflow.serialization.Array` /
:data:`~pftflow.serialization.ArrayTree` fields: they travel as compressed blobs to the job store's
additional ``data`` store; the scalars (κ, SRD, SRE, SRME, failure reason) stay queryable.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from pftflow.documents import RelaxDoc, StructureSet
from pftflow.serialization import Array, ArrayTree, Document, Structure


class Phono3pyDisplacementDoc(Document):
    """fc2 and fc3 finite-displacement sets of one structure (phono3py, symmetry-reduced)."""

    unitcell: Structure = Field(description="the displaced structure's unit cell (Å, amu)")
    fc2_supercell: Array = Field(description="(3, 3) integers: phonon (fc2) supercell matrix")
    fc3_supercell: Array = Field(description="(3, 3) integers: fc3 supercell matrix")
    primitive_matrix: Array | None = Field(None, description="(3, 3) primitive matrix, or None (the cell is primitive)")
    distance_A: float = Field(description="displacement amplitude (Å)")
    symprec: float = Field(description="phono3py symmetry tolerance (Å)")
    fc2_dataset: ArrayTree = Field(description="phono3py phonon_dataset (fc2 displacements, Å; no forces)")
    fc3_dataset: ArrayTree = Field(description="phono3py dataset (fc3 displacement pairs, Å; no forces)")
    fc2_supercells: StructureSet = Field(description="displaced fc2 supercells, in dataset order")
    fc3_supercells: StructureSet = Field(description="displaced fc3 supercells, in dataset order")

    @property
    def n_fc2(self) -> int:
        return len(self.fc2_supercells)

    @property
    def n_fc3(self) -> int:
        return len(self.fc3_supercells)


class KappaResultDoc(Document):
    """κ of one material with one model (k_SRME protocol) and its SRD / SRE / SRME against DFT.

    A material stopped before fc3 (relaxation error, broken symmetry, imaginary modes) has
    ``failed`` set, SRD = −2, SRE = SRME = 2 and no κ arrays.  Tensors are Voigt
    (xx, yy, zz, yz, xz, xy); per-mode arrays include the q-point weights
    (``mode.sum(over q, bands) / weights.sum()`` = κ).
    """

    material_id: str = Field(description="material id")
    name: str = Field(description="material display name")
    model: str = Field(description="model name")
    model_provenance: dict[str, Any] = Field(default_factory=dict, description="calculator provenance (name, backend, version, weights sha256)")
    # metrics
    kappa_ave_W_per_mK: float | None = Field(None, description="κ = trace/3 of the total κ tensor at the first temperature (W/m/K)")
    kappa_dft_W_per_mK: float | None = Field(None, description="DFT reference κ at the first temperature (W/m/K); None without reference")
    srd: float | None = Field(None, description="symmetric relative deviation 2(κ−κ_DFT)/(κ+κ_DFT); −2 on failure")
    sre: float | None = Field(None, description="symmetric relative error |SRD|; 2 on failure")
    srme: float | None = Field(None, description="symmetric relative mean error of the per-mode κ; 2 on failure, None off the reference mesh")
    failed: bool = Field(False, description="the material failed (k_SRME rule: SRD −2, SRE = SRME = 2)")
    failed_reason: str | None = Field(None, description="relax_error | broken_symmetry | imaginary_modes | qpoint_mismatch... | kappa_nan")
    error: str | None = Field(None, description="the relaxation error message (failed_reason relax_error)")
    metrics_note: str | None = Field(None, description="why SRME (or all metrics) is missing")
    # phonon check (fc2)
    imaginary_modes: bool | None = Field(None, description="fc2 has imaginary modes on the q-mesh (k_SRME rule)")
    min_frequency_THz: float | None = Field(None, description="lowest fc2 frequency on the q-mesh (THz)")
    gamma_frequencies_THz: list[float] | None = Field(None, description="fc2 frequencies at Γ (THz)")
    # κ
    temperatures_K: list[float] | None = Field(None, description="temperatures (K)")
    conductivity: str | None = Field(None, description="'wigner' (κ_P + κ_C) or 'rta' (κ_P)")
    kappa_P_ave_W_per_mK: float | None = Field(None, description="particle-like κ_P, trace/3, first temperature (W/m/K)")
    kappa_C_ave_W_per_mK: float | None = Field(None, description="coherence κ_C, trace/3, first temperature (W/m/K)")
    kappa_TOT_W_per_mK: Array | None = Field(None, description="total κ tensor (W/m/K), (n_T, 6)")
    kappa_P_W_per_mK: Array | None = Field(None, description="particle-like κ_P tensor (W/m/K), (n_T, 6)")
    kappa_C_W_per_mK: Array | None = Field(None, description="coherence κ_C tensor (W/m/K), (n_T, 6)")
    kappa_mode_sum_W_per_mK: Array | None = Field(None, description="κ tensor re-summed from the per-mode total κ (W/m/K), (n_T, 6)")
    qpoints: Array | None = Field(None, description="irreducible q-points (reduced coordinates), (n_q, 3)")
    weights: Array | None = Field(None, description="q-point weights (integers as float), (n_q,)")
    frequencies_THz: Array | None = Field(None, description="phonon frequencies (THz), (n_q, n_b)")
    mode_kappa_TOT_ave_W_per_mK: Array | None = Field(None, description="per-mode total κ, trace/3, weights included (W/m/K), (n_T, n_q, n_b)")
    mode_kappa_P_W_per_mK: Array | None = Field(None, description="per-mode κ_P, weights included (W/m/K), (n_T, n_q, n_b, 6)")
    mode_kappa_C_W_per_mK: Array | None = Field(
        None,
        description="band-pair coherence κ_C(q, s, s'), weights included (W/m/K), (n_T, n_q, n_b, n_b, 6); "
        "stored as float32 (the largest array, ~7 significant digits; κ, SRD, SRE, SRME come from float64); None for RTA",
    )
    heat_capacity_eV_per_K: Array | None = Field(None, description="mode heat capacities (eV/K, phono3py's unit), (n_T, n_q, n_b)")
    fc2_eV_per_A2: Array | None = Field(None, description="compact fc2 (eV/Å²), (n_prim, N_fc2, 3, 3); rows = fc2_p2s_map")
    fc2_p2s_map: list[int] | None = Field(None, description="fc2-supercell indices of the primitive atoms (rows of fc2)")
    fc3_eV_per_A3: Array | None = Field(None, description="compact fc3 (eV/Å³), (n_prim, N_fc3, N_fc3, 3, 3, 3); rows = fc3_p2s_map")
    fc3_p2s_map: list[int] | None = Field(None, description="fc3-supercell indices of the primitive atoms (rows of fc3)")
    # provenance
    relax: RelaxDoc | None = Field(None, description="the model relaxation (relaxed structure, steps, space groups); None without")
    q_mesh: list[int] = Field(description="Γ-centred q-mesh of κ")
    settings: dict[str, Any] = Field(default_factory=dict, description="KappaSettings used")
    versions: dict[str, str] = Field(default_factory=dict, description="package versions")
    n_fc2: int | None = Field(None, description="number of displaced fc2 supercells")
    n_fc3: int | None = Field(None, description="number of displaced fc3 supercells")
    fc2_forces_wall_time_s: float | None = Field(None, description="wall time of the fc2 force batch (s)")
    fc3_forces_wall_time_s: float | None = Field(None, description="wall time of the fc3 force batch (s)")
    conductivity_wall_time_s: float | None = Field(None, description="wall time of fc2 + fc3 + κ (s)")
    conductivity_cpu_time_s: float | None = Field(None, description="CPU time of fc2 + fc3 + κ (s)")

    def row(self) -> dict[str, Any]:
        """One table row of ``pftflow results`` (keys of :data:`pftflow.flows.kappa_campaign.KAPPA_COLUMNS`)."""
        return {
            "model": self.model,
            "material_id": self.material_id,
            "name": self.name,
            "kappa_W_per_mK": self.kappa_ave_W_per_mK,
            "kappa_dft_W_per_mK": self.kappa_dft_W_per_mK,
            "srd": self.srd,
            "sre": self.sre,
            "srme": self.srme,
            "failed": self.failed,
            "failed_reason": self.failed_reason,
        }
