"""phono3py Wigner-RTA lattice thermal conductivity and the k_SRME metrics (SRD, SRE, SRME).

Science functions only (numpy / phono3py in, results out); jobflow wrappers live in
:mod:`pftflow.flows.kappa`.  See ``docs/kappa.md``.
"""

from pftflow.kappa.conductivity import (
    KappaResult,
    KappaSettings,
    fc2_supercells,
    fc3_supercells,
    has_imaginary_modes,
    init_phono3py,
    mesh_frequencies,
    mode_kappa_total,
    produce_fc2,
    produce_fc3,
    run_conductivity,
)
from pftflow.kappa.encode import decode_array, encode_array
from pftflow.kappa.metrics import failed_metrics, material_metrics, mean_metrics, srd, sre, srme
from pftflow.kappa.readers import (
    KappaMaterial,
    KappaReference,
    read_kappa_reference,
    read_kappa_structures,
    resolve_reference_path,
)

__all__ = [
    "KappaMaterial",
    "KappaReference",
    "KappaResult",
    "KappaSettings",
    "decode_array",
    "encode_array",
    "failed_metrics",
    "fc2_supercells",
    "fc3_supercells",
    "has_imaginary_modes",
    "init_phono3py",
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
