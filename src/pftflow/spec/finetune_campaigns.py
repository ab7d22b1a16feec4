"""``kind: finetune_per_material`` (Equitrain protocol) and ``kind: finetune_global`` (PFT paper, its spec in
:mod:`pftflow.spec.finetune_global`): fine-tuning campaigns over material sets (docs/finetuning-campaigns.md);
this module holds the per-material spec, what both kinds share and their plans.

* per material: N labelled rattled supercells of each material (the dataset kind's sampling and
  labeller), a seeded train / validation split, one fine-tune per mode (delta, lora, frozen, full, and a
  from-scratch baseline of the same architecture) and per N of the sweep, the phonon benchmark of every
  model against the material's reference phonons computed by the same labeller on the same cell, and
  energy scans along imaginary modes;
* global: materials split by material (a split file or a seeded split) into train / valid / test, one PFT
  fine-tune with co-training (upstream extxyz, or self-distillation on rattled cells of other
  chemistries labelled by the frozen base model) and early stopping on the validation phonon loss, and the
  benchmark of base and fine-tuned model on the test materials.
"""

from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import Field, ValidationError, field_validator, model_validator

from pftflow.identity import REFERENCE_MODEL
from pftflow.phonons.relax import RelaxSettings
from pftflow.spec.common import CampaignBase, ImportMaterial, ModelSpec, StrictModel, check_models_support, check_unique_ids
from pftflow.spec.dataset import DatasetSampling
from pftflow.spec.errors import FieldIssue
from pftflow.spec.finetune import DEFAULT_BASE_MODEL, DEFAULT_RUN_DIR, TrainableModelSpec
from pftflow.spec.phonons import BenchmarkSettings, ComputeMaterial, MaterialEntry
from pftflow.spec.plan_units import _model_stages, _summary, _unit
from pftflow.training.adapters import FinetuneMode
from pftflow.training.trainer import TrainConfig

PER_MATERIAL = "finetune_per_material"
GLOBAL = "finetune_global"
#: the from-scratch baseline: the base model's architecture with re-initialised weights, all parameters trained
SCRATCH = "scratch"
MODE_NAMES = ("full", "frozen", "delta", "lora", SCRATCH)
#: results label of the base model's rows (before fine-tuning)
BASE_MODE = "base"
LABELLER_EXAMPLE = "labeller: {backend: ase, name: GPAW-PBE, import_path: pftflow.calculators.gpaw_reference:make_gpaw_calculator}"


# ------------------------------------------------------------------------------ per material
class ModeEntry(StrictModel):
    """One fine-tuning mode of the per-material protocol (``FinetuneMode`` fields, plus ``scratch``)."""

    name: str | None = Field(None, description="name in the results (default: the mode; lora-r<rank> when a rank is given)", examples=["lora-r4"])
    mode: Literal["full", "frozen", "delta", "lora", "scratch"] = Field(
        description="full | frozen (all but `freeze`) | delta (W0 + ΔW, L2-SP) | lora (low-rank adapters) | "
        "scratch (same architecture, re-initialised weights, all parameters trained: the baseline)"
    )
    freeze: list[str] = Field(default_factory=list, description="frozen: layer groups (embedding, layer0 ... layerK, readout) or parameter-name patterns",
                              examples=[["embedding", "layer0"]])
    lora_rank: int | None = Field(None, ge=1, description="lora: rank (>= 1; default 4)", examples=[4])
    lora_alpha: float | None = Field(None, gt=0, description="lora: scaling alpha (> 0; default 1)", examples=[1.0])
    config: dict[str, Any] = Field(default_factory=dict, description="TrainConfig fields that differ for this mode (e.g. lr), on top of training.config",
                                   examples=[{"lr": 1.0e-3}])

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v):
        return {"mode": v} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _check(self):
        if self.freeze and self.mode == SCRATCH:
            raise FieldIssue("scratch trains every parameter: 'freeze' does not apply", loc=("freeze",), expected="no freeze with mode scratch",
                             example="{mode: frozen, freeze: [embedding]}")
        try:
            FinetuneMode(**self.finetune())
        except ValidationError as exc:
            err = exc.errors()[0]
            cause = (err.get("ctx") or {}).get("error")
            raise FieldIssue(str(err["msg"]).removeprefix("Value error, "), loc=("mode",), expected="a valid fine-tuning mode",
                             example=getattr(cause, "example", None) or "{mode: frozen, freeze: [embedding, layer0]}") from None
        if "finetune" in self.config:
            raise FieldIssue("the mode is set by this entry, not by config.finetune", loc=("config", "finetune"),
                             expected="mode / freeze / lora_rank / lora_alpha keys of the entry", example="{mode: lora, lora_rank: 4}")
        if self.name is None:
            self.name = f"lora-r{self.lora_rank}" if self.mode == "lora" and self.lora_rank is not None else self.mode
        if self.name in (BASE_MODE, REFERENCE_MODEL):
            raise FieldIssue(f"mode name '{self.name}' is reserved", loc=("name",), expected="another name", example=f"name: {self.mode}-1")
        return self

    def finetune(self) -> dict:
        """The :class:`~pftflow.training.adapters.FinetuneMode` dict (scratch: full) with the keys given."""
        out: dict[str, Any] = {"mode": "full" if self.mode == SCRATCH else self.mode}
        if self.freeze:
            out["freeze"] = list(self.freeze)
        if self.lora_rank is not None:
            out["lora_rank"] = self.lora_rank
        if self.lora_alpha is not None:
            out["lora_alpha"] = self.lora_alpha
        return out


class ValidSplit(StrictModel):
    """The validation structures of each material: ``n_valid`` of the labelled set, drawn with ``seed``."""

    n_valid: int = Field(2, ge=1, description="validation structures per material (>= 1), the same for every N of the sweep", examples=[2])
    seed: int = Field(0, ge=0, description="seed of the draw (numpy default_rng)", examples=[0])


class PerMaterialTraining(StrictModel):
    """Base model, modes, the N sweep and hyperparameters of the per-material fine-tunes."""

    base_model: TrainableModelSpec = Field(default_factory=lambda: TrainableModelSpec(**DEFAULT_BASE_MODEL), description="model to fine-tune (sevennet or mace)",
                                           examples=[DEFAULT_BASE_MODEL])
    modes: list[ModeEntry] = Field(
        default_factory=lambda: [ModeEntry(mode="delta"), ModeEntry(mode="lora", lora_rank=4)], min_length=1,
        description="fine-tuning modes: names or {mode, name, freeze, lora_rank, lora_alpha, config}",
        examples=[["delta", {"mode": "lora", "lora_rank": 4}, {"mode": "frozen", "freeze": ["embedding", "layer0"]}, "full", "scratch"]],
    )
    n_structures: list[int] = Field(default_factory=lambda: [2, 5, 10], min_length=1, description="the N sweep: training structures per material (each >= 1)",
                                    examples=[[2, 5, 10]])
    valid: ValidSplit = Field(default_factory=ValidSplit, description="validation split: n_valid structures per material, seed")
    run_dir: str = Field(DEFAULT_RUN_DIR, description="folder of checkpoints and exported models", examples=["campaigns/equitrain/runs"])
    fworker: str | None = Field("gpu", description="FireWorks worker tag of the train jobs (null: any worker)", examples=["gpu"])
    scratch_seed: int = Field(0, ge=0, description="torch seed of the re-initialised weights of mode scratch", examples=[0])
    config: TrainConfig = Field(default_factory=TrainConfig, description="TrainConfig of every fine-tune (finetune is set per mode)",
                                examples=[{"epochs": 50, "lr": 1.0e-4, "early_stopping_patience": 10}])

    @field_validator("modes", mode="before", json_schema_input_type=list[Union[str, ModeEntry]])
    @classmethod
    def _modes_input(cls, v):
        return v

    @field_validator("n_structures", mode="before", json_schema_input_type=Union[int, list[int]])
    @classmethod
    def _sweep(cls, v):
        v = [v] if isinstance(v, int) and not isinstance(v, bool) else v
        if isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in v):
            if any(x < 1 for x in v):
                raise FieldIssue(f"every N must be >= 1, got {v}", expected="positive numbers of training structures", example="n_structures: [2, 5, 10]")
            if len(set(v)) != len(v):
                raise FieldIssue(f"N values repeat: {v}", expected="distinct numbers of training structures", example="n_structures: [2, 5, 10]")
            return sorted(v)
        return v

    @model_validator(mode="after")
    def _check(self):
        seen: dict[str, int] = {}
        for i, m in enumerate(self.modes):
            if m.name in seen:
                raise FieldIssue(f"duplicate mode name '{m.name}' (also modes[{seen[m.name]}])", loc=("modes", i, "name"),
                                 expected="a unique name per mode", example=f"name: {m.name}-2")
            seen[m.name] = i
            try:
                self.mode_config(m)
            except ValidationError as exc:
                err = exc.errors()[0]
                what = ".".join(str(x) for x in err["loc"])
                raise FieldIssue(f"config of mode '{m.name}': {what}: {err['msg']}", loc=("modes", i, "config"),
                                 expected="TrainConfig fields (epochs, lr, weight_decay, ...)", example="config: {lr: 1.0e-3}") from None
        if "finetune" in self.config.model_fields_set:
            raise FieldIssue("config.finetune is set per mode in this protocol", loc=("config", "finetune"),
                             expected="the modes list", example="modes: [delta, {mode: lora, lora_rank: 4}]")
        return self

    def mode_config(self, m: ModeEntry) -> dict:
        """The TrainConfig dict of one mode: ``config`` with the mode's overrides and its ``finetune``."""
        base = self.config.as_dict()
        return TrainConfig(**{**base, **m.config, "finetune": m.finetune()}).as_dict()

    def model_name(self, m: ModeEntry, n: int) -> str:
        """Name of the model fine-tuned in mode ``m`` on ``n`` structures (the same for every material)."""
        return f"{self.base_model.name}-{m.name}-N{n}"

    @property
    def n_labelled(self) -> int:
        """Structures labelled per material: the largest N plus the validation structures."""
        return max(self.n_structures) + self.valid.n_valid


class PerMaterialSampling(DatasetSampling):
    """How the labelled structures of each material are made (``n_structures`` follows from the N sweep)."""

    @model_validator(mode="before")
    @classmethod
    def _no_count(cls, v):
        if isinstance(v, dict):
            if "n_structures" in v:
                raise FieldIssue("the number of structures follows from training.n_structures (largest N + training.valid.n_valid)",
                                 loc=("n_structures",), expected="no n_structures here", example="training: {n_structures: [2, 5, 10]}")
            if v.get("kind") == "displacements":
                raise FieldIssue("kind displacements gives phonopy's displacement set, not N structures", loc=("kind",),
                                 expected="rattle, mc_rattle, rattle_relax or strain", example="kind: rattle")
        return v

    def settings_for(self, n: int) -> dict:
        return {**self.settings(), "n_structures": int(n)}


class PerMaterialReference(StrictModel):
    """The reference phonons: computed by the labeller on each material's cell."""

    relax: RelaxSettings | None = Field(
        default_factory=RelaxSettings.mdr,
        description="relax each cell with the labeller first (the rattled structures are made on that relaxed cell too); "
        "null = use the cells as given (then set settings.relax_models: false to evaluate the models on the reference cell)",
        examples=[{"fmax_eV_per_A": 0.001, "steps": 300}],
    )


class ModeScanSettings(StrictModel):
    """Energy scans along imaginary modes (pftflow.phonons.modes) of each material whose reference or models have them."""

    enabled: bool = Field(True, description="scan imaginary modes at the commensurate q-points")
    threshold_THz: float = Field(-0.1, lt=0, description="a mode below this frequency (THz, < 0) is imaginary", examples=[-0.1])
    max_modes: int = Field(2, ge=1, description="most negative modes scanned per material and source", examples=[2])
    q_max_amu05_A: float = Field(4.0, gt=0, description="largest normal-mode amplitude Q of the scan (amu^½·Å)", examples=[4.0])
    n_points: int = Field(13, ge=3, description="amplitudes from −q_max to q_max (odd: Q = 0 included)", examples=[13])
    relax: bool = Field(True, description="relax the displaced supercell at each curve's minimum and compare space groups (spglib)")
    relax_steps: int = Field(200, ge=1, description="FIRE steps of that relaxation (positions only)", examples=[200])
    fmax_eV_per_A: float = Field(1e-3, gt=0, description="force criterion of that relaxation (eV/Å)")
    symprec: float = Field(1e-3, gt=0, description="spglib tolerance of the space-group comparison (Å)")

    @field_validator("n_points")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise FieldIssue(f"n_points must be odd (Q = 0 on the grid), got {v}", expected="an odd number >= 3", example=f"n_points: {v + 1}")
        return v


class FinetunePerMaterialSpec(CampaignBase):
    """``kind: finetune_per_material`` (Equitrain protocol, docs/finetuning-campaigns.md)."""

    kind: Literal["finetune_per_material"] = Field(PER_MATERIAL, description="campaign kind")
    materials: list[MaterialEntry] = Field(
        min_length=1,
        description="cells to fine-tune on: {id, structure {cell_A, species, frac_coords}, supercell_matrix, primitive_matrix} or a reference file "
        "(its unit cell and matrices are used; its own phonons are not: the labeller computes the reference)",
        examples=[[{"id": "Si", "structure": {"cell_A": [[0, 2.7155, 2.7155], [2.7155, 0, 2.7155], [2.7155, 2.7155, 0]], "species": ["Si", "Si"],
                                             "frac_coords": [[0, 0, 0], [0.25, 0.25, 0.25]]}, "supercell_matrix": [2, 2, 2]}]],
    )
    labeller: ModelSpec = Field(description="calculator of the labels and of the reference phonons (GPAW, VASP-free DFT, a teacher MLIP, any ASE calculator)",
                                examples=[{"backend": "ase", "name": "GPAW-PBE", "import_path": "pftflow.calculators.gpaw_reference:make_gpaw_calculator"}])
    reference: PerMaterialReference = Field(default_factory=PerMaterialReference, description="relax: relax the cells with the labeller first (default MDR protocol)")
    sampling: PerMaterialSampling = Field(default_factory=PerMaterialSampling, description="rattle / mc_rattle / rattle_relax / strain settings (amplitude_A, seed, ...)",
                                          examples=[{"kind": "rattle", "amplitude_A": 0.03, "seed": 0}])
    training: PerMaterialTraining = Field(default_factory=PerMaterialTraining, description="base_model, modes, n_structures (N sweep), valid, config")
    settings: BenchmarkSettings = Field(default_factory=BenchmarkSettings, description="benchmark settings: phonons, relax, relax_models")
    mode_scans: ModeScanSettings = Field(default_factory=ModeScanSettings, description="energy scans along imaginary modes")

    @field_validator("materials", mode="before", json_schema_input_type=list[Union[str, ImportMaterial, ComputeMaterial]])
    @classmethod
    def _materials_input(cls, v):
        return v

    @model_validator(mode="after")
    def _check(self):
        check_unique_ids(self.materials, "materials")
        species = [(f"materials[{j}]", m.id, m.species()) for j, m in enumerate(self.materials)]
        check_models_support([self.labeller], species, ("labeller",), indexed=False)
        check_models_support([self.training.base_model], species, ("training", "base_model"), indexed=False)
        if self.labeller.name in (REFERENCE_MODEL, self.training.base_model.name):
            raise FieldIssue(f"labeller name '{self.labeller.name}' is taken", loc=("labeller", "name"), expected="a name of its own", example="name: GPAW-PBE")
        return self

    @property
    def material_ids(self) -> list[str]:
        return [m.id for m in self.materials]

    @property
    def model_names(self) -> list[str]:
        """Base model, then every fine-tuned model (mode × N)."""
        tr = self.training
        return [tr.base_model.name] + [tr.model_name(m, n) for m in tr.modes for n in tr.n_structures]

    @property
    def reference_protocol(self) -> str:
        """Which cells the labels, the reference and the models share (said in the results)."""
        ref = "reference relaxed with its own calculator (the labeller); the training structures are rattled from that cell" \
            if self.reference.relax is not None else "reference on the cell as given (not relaxed)"
        models = "models relaxed with their own calculator first (MDR)" if self.settings.relax_models else "models evaluated on the reference cell"
        return f"{ref}; {models}"


# ------------------------------------------------------------------------------ plans
def campaign_plan(spec) -> dict:
    """:func:`pftflow.spec.plan` of both kinds."""
    units = [_unit(None, None, ["parameters"])]
    model_stages = _model_stages(spec.settings.relax_models)
    if spec.kind == PER_MATERIAL:
        tr = spec.training
        if any(m.mode == SCRATCH for m in tr.modes):
            units.append(_unit(None, f"{tr.base_model.name}-scratch-init", ["scratch_init"]))
        for m in spec.materials:
            ref = (["relax"] if spec.reference.relax is not None else []) + ["displacements", "forces", "analysis"]
            units.append(_unit(m.id, REFERENCE_MODEL, ref))
            units.append(_unit(m.id, spec.labeller.name, ["sampling", "forces", "labelled_set"] + ["training_data"] * len(tr.n_structures)))
            units.append(_unit(m.id, tr.base_model.name, list(model_stages)))
            for mode in tr.modes:
                for n in tr.n_structures:
                    units.append(_unit(m.id, tr.model_name(mode, n), ["train", *model_stages]))
            if spec.mode_scans.enabled:
                units.append(_unit(m.id, None, ["mode_scans"]))
        return _summary(spec, spec.material_ids, spec.model_names, units)
    tr = spec.training
    data_stages = ["training_data"] + (["self_distillation"] if tr.data.distill else [])
    units += [_unit(None, None, data_stages), _unit(None, tr.export_name, ["train", "cotrain_eval"])]
    for mid in spec.roles["test"]:
        units.append(_unit(mid, REFERENCE_MODEL, ["import", "analysis"]))
        units += [_unit(mid, name, list(model_stages)) for name in spec.model_names]
    out = _summary(spec, spec.material_ids, spec.model_names, units)
    out["split"] = {k: list(v) for k, v in spec.roles.items()}
    return out


__all__ = ["FinetunePerMaterialSpec", "ModeEntry", "campaign_plan"]
