"""Structure sets of a material: finite-displacement sets (phonopy fc2, phono3py fc3)."""

from pftflow.sampling.displacements import fc2_displacements, fc2_supercells, fc3_displacements, fc3_supercells

__all__ = ["fc2_displacements", "fc2_supercells", "fc3_displacements", "fc3_supercells"]
