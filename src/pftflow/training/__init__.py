"""Fine-tuning engine: PFT (Hessian-vector-product loss) with full / frozen / delta (L2-SP) / LoRA modes.

Pure functions and small classes; jobflow wrappers live in :mod:`pftflow.flows.training`.

* :mod:`~pftflow.training.data`     - labelled structures (E / F / σ / Hessian targets) and their builders
* :mod:`~pftflow.calculators.energy_models` - (below training) MACE / SevenNet energy as a twice-differentiable function of r and strain
* :mod:`~pftflow.training.loss`     - PFT loss, Hessian columns by double backward
* :mod:`~pftflow.training.adapters` - fine-tuning modes
* :mod:`~pftflow.training.trainer`  - AdamW / EMA / co-training / resume
* :mod:`~pftflow.training.export`   - model files for the force backends, with provenance
* :mod:`~pftflow.training.evaluate` - force-constant, phonon and force errors vs reference
"""

from pftflow.training.adapters import FinetuneSpec, merge_adapters, setup_finetuning, trainable_parameters
from pftflow.training.data import (
    LabelledStructure,
    TrainingData,
    build_training_set,
    dataset_hash,
    from_displacements,
    from_labelled_atoms,
    from_phonon_reference,
    rattle_and_label,
    read_extxyz,
    write_extxyz,
)
from pftflow.calculators.energy_models import (
    EnergyModel,
    GraphBatch,
    MACEEnergyModel,
    SevenNetEnergyModel,
    build_graph,
    load_energy_model,
    predict,
)
from pftflow.training.loss import LossWeights, Targets, model_hessian, pft_loss
from pftflow.training.trainer import TrainConfig, TrainResult, evaluate, train
from pftflow.training.export import export_model

__all__ = [
    "FinetuneSpec",
    "merge_adapters",
    "setup_finetuning",
    "trainable_parameters",
    "LabelledStructure",
    "TrainingData",
    "build_training_set",
    "dataset_hash",
    "from_displacements",
    "from_labelled_atoms",
    "from_phonon_reference",
    "rattle_and_label",
    "read_extxyz",
    "write_extxyz",
    "LossWeights",
    "Targets",
    "model_hessian",
    "pft_loss",
    "predict",
    "EnergyModel",
    "GraphBatch",
    "MACEEnergyModel",
    "SevenNetEnergyModel",
    "build_graph",
    "load_energy_model",
    "TrainConfig",
    "TrainResult",
    "evaluate",
    "train",
    "export_model",
]
