"""Structure sets of a material, pure functions, every structure seeded and reproducible.

* :mod:`~pftflow.sampling.supercells` — one supercell rule per material (:func:`choose_supercell`,
  pymatgen's ``CubicSupercellTransformation`` as atomate2 uses it) and :func:`make_supercell`;
* :mod:`~pftflow.sampling.displacements` — finite-displacement sets (phonopy fc2, phono3py fc3);
* :mod:`~pftflow.sampling.rattle` — normal and Monte-Carlo rattles (hiphive), "rattle then relax";
* :mod:`~pftflow.sampling.strain` — volume scaling and shear strain;
* :mod:`~pftflow.sampling.checks` — minimum distance, displacement statistics, distinctness;
* :mod:`~pftflow.sampling.sets` — :func:`sample_set`, one entry point for all kinds.
"""

from pftflow.sampling.checks import SetChecks, check_set, displacement_stats, duplicate_pairs, min_distance
from pftflow.sampling.displacements import fc2_displacements, fc2_supercells, fc3_displacements, fc3_supercells
from pftflow.sampling.rattle import mc_rattle, rattle, relax_snapshots, structure_seeds
from pftflow.sampling.sets import SAMPLING_KINDS, SampledSet, SamplingSettings, sample_set
from pftflow.sampling.strain import strained
from pftflow.sampling.supercells import SupercellChoice, SupercellRule, SupercellWarning, choose_supercell, make_supercell

__all__ = [
    "fc2_displacements",
    "fc2_supercells",
    "fc3_displacements",
    "fc3_supercells",
    "SupercellRule",
    "SupercellChoice",
    "SupercellWarning",
    "choose_supercell",
    "make_supercell",
    "rattle",
    "mc_rattle",
    "relax_snapshots",
    "structure_seeds",
    "strained",
    "SetChecks",
    "check_set",
    "displacement_stats",
    "duplicate_pairs",
    "min_distance",
    "SAMPLING_KINDS",
    "SampledSet",
    "SamplingSettings",
    "sample_set",
]
