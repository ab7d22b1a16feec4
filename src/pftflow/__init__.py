"""pftflow: benchmark and fine-tune machine-learned interatomic potentials (MLIPs) for phonons.

Pipeline layout (one subpackage per stage):

materials  -> crystal records and readers of reference phonon data (phonopy, MDR, atomate2)
sampling   -> displaced / rattled supercells
calculators-> batch-first force evaluation (SevenNet, CHGNet, MACE, any ASE calculator incl. GPAW)
phonons    -> relaxation, harmonic phonons, thermal properties, stability, MDR metrics
kappa      -> phono3py Wigner-RTA thermal conductivity and SRME
training   -> PFT (Hessian-vector-product loss) and LoRA/delta/frozen/full fine-tuning
flows      -> jobflow Makers wrapping the pure science functions above
store / campaign / cli -> maggma JobStore, campaign specs, command line
"""

__version__ = "0.1.0"
