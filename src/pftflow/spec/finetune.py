"""``kind: finetune``: fine-tune a model on reference phonons (PFT), then benchmark base and fine-tuned
model on held-out materials (docs/training.md).

The fine-tuning *mode* (full / frozen / delta / lora) is :class:`pftflow.training.adapters.FinetuneSpec`,
exported here as :data:`FinetuneMode` to keep it apart from the campaign spec :class:`FinetuneSpec`.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal, Union

from pydantic import Field, field_validator, model_validator

from pftflow.spec.common import CampaignBase, ImportMaterial, ModelSpec, StrictModel, check_models_support, check_unique_ids, existing_path
from pftflow.spec.errors import FieldIssue
from pftflow.spec.phonons import BenchmarkSettings
from pftflow.training.adapters import FinetuneMode
from pftflow.training.trainer import TrainConfig

#: backends :func:`pftflow.calculators.energy_models.load_energy_model` can fine-tune
TRAINABLE_BACKENDS = ("sevennet", "mace")
#: default base model (the offline SevenNet-0 weights of the sevenn package)
DEFAULT_BASE_MODEL = {"backend": "sevennet", "model": "7net-0", "name": "SevenNet-0"}
#: default folder of checkpoints and exported models (pftflow.flows.training.DEFAULT_RUN_DIR)
DEFAULT_RUN_DIR = "pft_runs"

__all__ = ["FinetuneMode", "FinetuneSpec", "TrainingSpec", "TrainingDataSpec", "ExtxyzSource", "TrainableModelSpec"]


class TrainableModelSpec(ModelSpec):
    """A base model that can be fine-tuned (``sevennet`` or ``mace``); mace may name a ``head``."""

    extra_options: ClassVar[dict[str, set[str]]] = {"mace": {"head"}}

    @field_validator("backend")
    @classmethod
    def _trainable(cls, v: str) -> str:
        if v not in TRAINABLE_BACKENDS:
            raise FieldIssue(
                f"backend '{v}' cannot be fine-tuned",
                expected="one of " + ", ".join(TRAINABLE_BACKENDS),
                example="base_model: {backend: sevennet, model: 7net-0, name: SevenNet-0}",
            )
        return v


class ExtxyzSource(StrictModel):
    """An upstream co-training set: extxyz with reference energies, forces, stresses."""

    path: str = Field(description="extxyz file", examples=["data/upstream.extxyz"])
    energy_key: str = Field("REF_energy", description="info key of the energy (eV)")
    forces_key: str = Field("REF_forces", description="array key of the forces (eV/Å)")
    stress_key: str = Field("REF_stress", description="info key of the stress (eV/Å³)")
    index: str = Field(":", description="ASE frame selection", examples=[":100"])

    @field_validator("path")
    @classmethod
    def _exists(cls, v: str) -> str:
        return existing_path(v, "path", example="data/upstream.extxyz")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v):
        return {"path": str(v)} if isinstance(v, (str, Path)) else v

    @model_validator(mode="after")
    def _readable(self):
        """The first frame parses as extended XYZ, and the selection ``index`` is one ASE accepts
        (the whole set is read by the training-data job)."""
        from ase.io import read
        from ase.io.formats import string2index

        try:
            ok = not isinstance(string2index(self.index), str)  # a string is a database accessor, not a selection
        except ValueError:
            ok = False
        if not ok:
            raise FieldIssue(
                f"'{self.index}' is not an ASE frame selection",
                loc=("index",),
                expected="':' (all), ':100' (first 100), '::2' (every other) or a frame number",
                example="index: ':100'",
            )
        try:
            read(self.path, index=0, format="extxyz")
        except Exception as exc:  # noqa: BLE001 - ase raises many types on a damaged file; name it
            raise FieldIssue(
                f"cannot read {self.path} as extended XYZ: {type(exc).__name__}: {exc}",
                loc=("path",),
                expected="an extxyz file with per-frame energies / forces / stresses under energy_key, forces_key, stress_key",
                example="path: data/upstream.extxyz",
            ) from None
        return self


class TrainingDataSpec(StrictModel):
    """What the model is trained on."""

    phonon_references: bool = Field(True, description="train on the references' supercell Hessians (eV/Å², from the force constants)")
    cotrain_displacements: bool = Field(True, description="co-train on the references' displaced supercells with their DFT forces")
    displacements_in_train: bool = Field(False, description="also put the displaced supercells into the training set itself")
    cotrain_extxyz: list[ExtxyzSource] = Field(
        default_factory=list, description="extra upstream co-training sets: paths or {path, energy_key, forces_key, stress_key}", examples=[["data/upstream.extxyz"]]
    )

    @field_validator("cotrain_extxyz", mode="before", json_schema_input_type=list[Union[str, ExtxyzSource]])
    @classmethod
    def _extxyz_input(cls, v):
        return v  # schema only: a set may be written as its path

    @model_validator(mode="after")
    def _something(self):
        if not (self.phonon_references or self.displacements_in_train):
            raise FieldIssue(
                "the training set is empty: phonon_references and displacements_in_train are both false",
                loc=("phonon_references",),
                expected="at least one of them true",
                example="phonon_references: true",
            )
        return self


class TrainingSpec(StrictModel):
    """The fine-tuning run: base model, output name and folder, data and hyperparameters."""

    base_model: TrainableModelSpec = Field(
        default_factory=lambda: TrainableModelSpec(**DEFAULT_BASE_MODEL), description="model to fine-tune (sevennet or mace)", examples=[DEFAULT_BASE_MODEL]
    )
    export_name: str | None = Field(None, description="name of the fine-tuned model in the results (default <base name>-pft)", examples=["SevenNet-0-PFT"])
    run_dir: str = Field(DEFAULT_RUN_DIR, description="folder of checkpoints (resume after a kill) and the exported model", examples=["campaigns/pft-example/runs"])
    fworker: str | None = Field("gpu", description="FireWorks worker tag of the train job (null: any worker)", examples=["gpu"])
    data: TrainingDataSpec = Field(default_factory=TrainingDataSpec, description="training-set sources", examples=[{"phonon_references": True}])
    valid_materials: list[ImportMaterial] = Field(default_factory=list, description="validation materials (default: validate on the training structures)", examples=[["../shared/data/mdr/mp-149.yaml.bz2"]])
    config: TrainConfig = Field(default_factory=TrainConfig, description="TrainConfig: epochs, lr, weights, finetune {mode, ...}, ...", examples=[{"epochs": 4, "lr": 1.0e-4, "finetune": {"mode": "lora", "lora_rank": 4}}])

    @field_validator("valid_materials", mode="before", json_schema_input_type=list[Union[str, ImportMaterial]])
    @classmethod
    def _materials_input(cls, v):
        return v  # schema only: a material may be written as the path of its reference file

    @model_validator(mode="after")
    def _names(self):
        if not self.export_name:
            self.export_name = f"{self.base_model.name}-pft"
        if self.export_name == self.base_model.name:
            raise FieldIssue(
                f"export_name '{self.export_name}' equals the base model's name: the results could not tell them apart",
                loc=("export_name",),
                expected="a different name for the fine-tuned model",
                example=f"export_name: {self.base_model.name}-pft",
            )
        check_unique_ids(self.valid_materials, "valid_materials")
        return self


class FinetuneSpec(CampaignBase):
    """``kind: finetune``: training data -> train -> benchmark of base and fine-tuned model on test materials."""

    kind: Literal["finetune"] = Field("finetune", description="campaign kind")
    train_materials: list[ImportMaterial] = Field(
        min_length=1, description="reference phonons to train on: paths or {id, reference_file}", examples=[[{"id": "NaCl", "reference_file": "../shared/data/phonopy/phonopy_params_NaCl.yaml.xz"}]]
    )
    test_materials: list[ImportMaterial] = Field(
        default_factory=list, description="held-out materials, benchmarked before and after fine-tuning", examples=[["../shared/data/mdr/mp-149.yaml.bz2"]]
    )
    training: TrainingSpec = Field(default_factory=TrainingSpec, description="base_model, export_name, run_dir, fworker, data, valid_materials, config", examples=[{"config": {"epochs": 4}}])
    settings: BenchmarkSettings = Field(default_factory=BenchmarkSettings, description="benchmark settings: phonons, relax, relax_models", examples=[{"phonons": {"mesh": 100.0}}])

    @field_validator("train_materials", "test_materials", mode="before", json_schema_input_type=list[Union[str, ImportMaterial]])
    @classmethod
    def _materials_input(cls, v):
        return v  # schema only: a material may be written as the path of its reference file

    @model_validator(mode="after")
    def _held_out(self):
        check_unique_ids(self.train_materials, "train_materials")
        check_unique_ids(self.test_materials, "test_materials")
        train_ids = {m.id: i for i, m in enumerate(self.train_materials)}
        train_files = {str(Path(m.reference_file).resolve()): i for i, m in enumerate(self.train_materials)}
        for j, m in enumerate(self.test_materials):
            i = train_ids.get(m.id, train_files.get(str(Path(m.reference_file).resolve())))
            if i is not None:
                raise FieldIssue(
                    f"test material '{m.id}' is also train_materials[{i}]: a held-out material must not be trained on",
                    loc=("test_materials", j),
                    expected="test materials that are not in train_materials",
                    example="test_materials: [../shared/data/mdr/mp-149.yaml.bz2]",
                )
        species = [
            (f"{key}[{j}]", m.id, m.species())
            for key, materials in (("train_materials", self.train_materials), ("test_materials", self.test_materials),
                                   ("training.valid_materials", self.training.valid_materials))
            for j, m in enumerate(materials)
        ]
        check_models_support([self.training.base_model], species, ("training", "base_model"), indexed=False)
        return self

    @property
    def material_ids(self) -> list[str]:
        """Test-material ids (the rows of the results)."""
        return [m.id for m in self.test_materials]

    @property
    def model_names(self) -> list[str]:
        """Base and fine-tuned model names (the columns of the results)."""
        return [self.training.base_model.name, self.training.export_name]
