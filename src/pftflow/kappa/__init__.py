"""phono3py Wigner-RTA lattice thermal conductivity and the k_SRME metrics (SRD, SRE, SRME).

Science functions only (numpy / phono3py in, results out); jobflow wrappers live in
:mod:`pftflow.flows.kappa`, the job documents in :mod:`pftflow.kappa.documents`, the material
records and their readers in :mod:`pftflow.materials.kappa`.  Displacement sets come from
:func:`pftflow.sampling.fc3_displacements`.  See ``docs/kappa.md``.
"""

from pftflow.kappa.conductivity import (
    KappaResult,
    KappaSettings,
    has_imaginary_modes,
    mesh_frequencies,
    mode_kappa_total,
    produce_fc2,
    produce_fc3,
    run_conductivity,
)
from pftflow.kappa.metrics import failed_metrics, material_metrics, mean_metrics, srd, sre, srme
from pftflow.materials.kappa import (
    KappaMaterial,
    KappaReference,
    read_kappa_reference,
    read_kappa_structures,
    resolve_reference_path,
)
from pftflow.sampling.displacements import fc2_supercells, fc3_displacements, fc3_supercells

__all__ = [
    "KappaMaterial",
    "KappaReference",
    "KappaResult",
    "KappaSettings",
    "failed_metrics",
    "fc2_supercells",
    "fc3_displacements",
    "fc3_supercells",
    "has_imaginary_modes",
    "material_metrics",
    "mean_metrics",
    "mesh_frequencies",
    "mode_kappa_total",
    "produce_fc2",
    "produce_fc3",
    "read_kappa_reference",
    "read_kappa_structures",
    "resolve_reference_path",
    "run_conductivity",
    "srd",
    "sre",
    "srme",
]
