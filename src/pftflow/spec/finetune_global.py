"""``kind: finetune_global`` (PFT paper): materials split by material (a split file or a seeded split) into
train / valid / test, one PFT fine-tune with co-training and early stopping on the validation phonon loss,
the benchmark of base and fine-tuned model on the test materials (docs/finetuning-campaigns.md).  What it
shares with ``finetune_per_material``: :mod:`pftflow.spec.finetune_campaigns`."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Literal, Union

import numpy as np
from pydantic import Field, PrivateAttr, field_validator, model_validator

from pftflow.spec.common import (
    CampaignBase,
    ImportMaterial,
    StrictModel,
    check_models_support,
    check_unique_ids,
    existing_path,
)
from pftflow.spec.errors import FieldIssue
from pftflow.spec.finetune import DEFAULT_BASE_MODEL, DEFAULT_RUN_DIR, ExtxyzSource, TrainableModelSpec
from pftflow.spec.finetune_campaigns import GLOBAL
from pftflow.spec.phonons import BenchmarkSettings, reference_files_in
from pftflow.training.trainer import TrainConfig


#: keys of the validation list in split files (MDR's pbe_mdr_split.json uses "val")
VALID_KEYS = ("valid", "val", "validation")
ROLES = ("train", "valid", "test")


def read_split_file(path: str | os.PathLike) -> dict[str, list[str]]:
    """``{"train": [...], "valid": [...], "test": [...]}`` material ids of a split file: JSON
    ``{"train": [...], "val" | "valid" | "validation": [...], "test": [...]}`` (MDR's pbe_mdr_split.json),
    a JSON list of ``{"id" | "material_id" | "mp_id", "split"}`` records, or a CSV with those columns.
    ValueError naming the file and what it expected."""
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    out: dict[str, list[str]] = {r: [] for r in ROLES}

    def role_of(v: str) -> str:
        v = str(v).strip().lower()
        if v in VALID_KEYS:
            return "valid"
        if v in ("train", "test"):
            return v
        raise ValueError(f"{p}: split '{v}' is not train, valid (val, validation) or test")

    def add_records(records):
        for i, r in enumerate(records):
            mid = next((r[k] for k in ("id", "material_id", "mp_id") if r.get(k)), None)
            if mid is None or not r.get("split"):
                raise ValueError(f"{p}: record {i} needs a material id (id, material_id or mp_id) and a split (train, valid or test)")
            out[role_of(r["split"])].append(str(mid).strip())

    if p.suffix.lower() == ".csv":
        add_records(list(csv.DictReader(text.splitlines())))
        return out
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{p}: not JSON ({exc.msg}); give a JSON split {{train: [...], val: [...], test: [...]}} or a .csv with columns id, split") from None
    if isinstance(data, dict):
        unknown = [k for k in data if k not in ("train", "test", *VALID_KEYS)]
        if unknown:
            raise ValueError(f"{p}: unknown keys {unknown}; expected train, val (or valid, validation) and test lists of material ids")
        for k, ids in data.items():
            out[role_of(k)] += [str(x) for x in ids]
        return out
    if isinstance(data, list):
        add_records(data)
        return out
    raise ValueError(f"{p}: expected a JSON object of lists or a list of {{id, split}} records, got {type(data).__name__}")


class MaterialSplit(StrictModel):
    """Split of the materials into train / valid / test, by material: a split file, or a seeded split."""

    file: str | None = Field(None, description="split file: JSON {train, val|valid, test} lists of material ids (MDR pbe_mdr_split.json), "
                             "a JSON list of {id, split} records or a CSV with columns id, split; materials it does not list are left out",
                             examples=["../shared/data/mdr/pbe_mdr_split.json"])
    n_valid: int | None = Field(None, ge=0, description="seeded split: validation materials (default: valid_fraction)", examples=[4])
    n_test: int | None = Field(None, ge=1, description="seeded split: test materials (default: test_fraction)", examples=[10])
    valid_fraction: float = Field(0.1, ge=0, lt=1, description="seeded split: fraction of validation materials (rounded)")
    test_fraction: float = Field(0.25, gt=0, lt=1, description="seeded split: fraction of test materials (rounded, at least 1)")
    seed: int = Field(0, ge=0, description="seed of the split (numpy default_rng permutation of the sorted ids)")

    @field_validator("file")
    @classmethod
    def _file(cls, v: str | None) -> str | None:
        if v is None:
            return v

        existing_path(v, "file", example="../shared/data/mdr/pbe_mdr_split.json")
        try:
            read_split_file(v)
        except ValueError as exc:
            raise FieldIssue(str(exc), expected="train / valid / test lists of material ids", example="file: ../shared/data/mdr/pbe_mdr_split.json") from None
        return v

    @model_validator(mode="after")
    def _one_way(self):
        if self.file is not None and (self.model_fields_set & {"n_valid", "n_test", "valid_fraction", "test_fraction", "seed"}):
            raise FieldIssue("give a split file or the seeded split's counts / fractions, not both", loc=("file",),
                             expected="file alone, or n_valid / n_test / fractions with seed", example="split: {n_test: 8, n_valid: 4, seed: 0}")
        return self

    def assign(self, ids: list[str]) -> dict[str, list[str]]:
        """``{"train", "valid", "test", "unused"}`` ids (in the order of ``ids`` within each role)."""
        if self.file is not None:
            roles = read_split_file(self.file)
            where = {mid: r for r in ROLES for mid in roles[r]}
            out = {r: [m for m in ids if where.get(m) == r] for r in ROLES}
            out["unused"] = [m for m in ids if m not in where]
            return out
        n = len(ids)
        n_test = self.n_test if self.n_test is not None else max(1, int(round(self.test_fraction * n)))
        n_valid = self.n_valid if self.n_valid is not None else int(round(self.valid_fraction * n))
        order = [sorted(ids)[i] for i in np.random.default_rng(self.seed).permutation(n)]
        test, valid, train = set(order[:n_test]), set(order[n_test : n_test + n_valid]), set(order[n_test + n_valid :])
        return {"train": [m for m in ids if m in train], "valid": [m for m in ids if m in valid], "test": [m for m in ids if m in test], "unused": []}


class SelfDistillation(StrictModel):
    """Co-training data without an upstream set: rattled cells of other chemistries labelled by the frozen base model."""

    enabled: bool = Field(True, description="use it when no cotrain_extxyz is given")
    source: Literal["builtin", "swap"] = Field(
        "builtin", description="builtin: simple crystals (elemental fcc / bcc / diamond / hcp, rocksalt, zincblende) the base model supports, "
        "other than the campaign's compositions | swap: the train materials' cells with their elements swapped among the train materials' elements")
    n_structures: int = Field(24, ge=1, description="co-training structures (spread over the crystals)", examples=[24])
    n_eval: int = Field(8, ge=0, description="held-out structures of the same kind, to measure how far the fine-tuned model drifts from the base model", examples=[8])
    amplitude_A: float = Field(0.05, gt=0, description="rattle standard deviation (Å)")
    min_atoms: int = Field(16, ge=1, description="supercells are repeated up to at least this many atoms")
    max_crystals: int = Field(12, ge=1, description="at most this many crystals")
    seed: int = Field(0, ge=0, description="seed of the crystal choice and the rattles")


class GlobalTrainingData(StrictModel):
    """What the global fine-tune trains and co-trains on."""

    phonon_references: bool = Field(True, description="train on the train materials' supercell Hessians (eV/Å²)")
    cotrain_displacements: bool = Field(True, description="co-train on the train materials' displaced supercells with their reference forces")
    cotrain_extxyz: list[ExtxyzSource] = Field(default_factory=list, description="upstream co-training sets (paths or {path, energy_key, ...}); "
                                               "when given, no self-distillation", examples=[["data/upstream.extxyz"]])
    self_distillation: SelfDistillation = Field(default_factory=SelfDistillation, description="co-training by self-distillation when no extxyz is given")
    fold_max_atoms: int | None = Field(
        None, ge=1, description="fold the train and validation materials' DFT force constants onto a smaller supercell whose matrix divides "
        "theirs, with at most this many atoms where one exists (exact at the q-points commensurate with it; training/fold.py); "
        "null = train on the full supercells", examples=[130],
    )

    @field_validator("cotrain_extxyz", mode="before", json_schema_input_type=list[Union[str, ExtxyzSource]])
    @classmethod
    def _extxyz_input(cls, v):
        return v

    @property
    def distill(self) -> bool:
        return self.self_distillation.enabled and not self.cotrain_extxyz


class GlobalTraining(StrictModel):
    """Base model, name, data and hyperparameters of the global fine-tune."""

    base_model: TrainableModelSpec = Field(default_factory=lambda: TrainableModelSpec(**DEFAULT_BASE_MODEL), description="model to fine-tune (sevennet or mace)",
                                           examples=[DEFAULT_BASE_MODEL])
    export_name: str | None = Field(None, description="name of the fine-tuned model (default <base name>-pft)", examples=["SevenNet-0-pft"])
    run_dir: str = Field(DEFAULT_RUN_DIR, description="folder of checkpoints and the exported model", examples=["campaigns/pft-global/runs"])
    fworker: str | None = Field("gpu", description="FireWorks worker tag of the train job (null: any worker)", examples=["gpu"])
    data: GlobalTrainingData = Field(default_factory=GlobalTrainingData, description="phonon_references, cotrain_displacements, cotrain_extxyz, self_distillation")
    config: TrainConfig = Field(default_factory=lambda: TrainConfig(early_stopping_patience=3), description="TrainConfig (early_stopping_patience on the validation loss)",
                                examples=[{"epochs": 20, "lr": 1.0e-4, "early_stopping_patience": 3, "finetune": {"mode": "full"}}])

    @model_validator(mode="after")
    def _names(self):
        if not self.export_name:
            self.export_name = f"{self.base_model.name}-pft"
        if self.export_name == self.base_model.name:
            raise FieldIssue(f"export_name '{self.export_name}' equals the base model's name", loc=("export_name",),
                             expected="a different name for the fine-tuned model", example=f"export_name: {self.base_model.name}-pft")
        return self


class FinetuneGlobalSpec(CampaignBase):
    """``kind: finetune_global`` (PFT paper, docs/finetuning-campaigns.md)."""

    kind: Literal["finetune_global"] = Field(GLOBAL, description="campaign kind")
    materials: list[ImportMaterial] = Field(
        min_length=2, description="reference phonons of every material: a folder (all its reference files) or a list of paths / {id, reference_file}",
        examples=["../shared/data/chalcogenides"],
    )
    split: MaterialSplit = Field(default_factory=MaterialSplit, description="by material: file, or seeded (n_valid, n_test or fractions, seed)",
                                 examples=[{"n_valid": 4, "n_test": 10, "seed": 0}])
    training: GlobalTraining = Field(default_factory=GlobalTraining, description="base_model, export_name, run_dir, fworker, data, config")
    settings: BenchmarkSettings = Field(default_factory=BenchmarkSettings, description="benchmark settings of the test materials")

    _materials_dir: str | None = PrivateAttr(default=None)
    _roles: dict | None = PrivateAttr(default=None)

    @field_validator("materials", mode="before", json_schema_input_type=Union[str, list[Union[str, ImportMaterial]]])
    @classmethod
    def _folder(cls, v):
        if isinstance(v, (str, os.PathLike)) and Path(v).is_dir():
            files = reference_files_in(v)
            if not files:
                raise FieldIssue(f"folder '{v}' holds no reference files", expected="phonopy / MDR / atomate2 yaml files (.yaml, .yaml.xz, .yaml.bz2)",
                                 example="materials: ../shared/data/chalcogenides")
            return files
        if isinstance(v, (str, os.PathLike)):
            raise FieldIssue(f"'{v}' is not a folder", expected="a folder of reference files or a list of them", example="materials: ../shared/data/chalcogenides")
        return v

    @model_validator(mode="after")
    def _check(self):
        check_unique_ids(self.materials, "materials")
        roles = self.roles
        if not roles["train"]:
            raise FieldIssue("no training material: the split leaves none", loc=("split",), expected="at least one train material",
                             example="split: {n_test: 2, n_valid: 1}")
        if not roles["test"]:
            raise FieldIssue("no test material: the split leaves none", loc=("split",), expected="at least one held-out test material",
                             example="split: {n_test: 2}")
        species = [(f"materials[{j}]", m.id, m.species()) for j, m in enumerate(self.materials)]
        check_models_support([self.training.base_model], species, ("training", "base_model"), indexed=False)
        return self

    @property
    def roles(self) -> dict[str, list[str]]:
        """Material ids per role: train, valid, test, unused (not in the split file)."""
        if self._roles is None:
            self._roles = self.split.assign([m.id for m in self.materials])
        return self._roles

    def role_materials(self, role: str) -> list[ImportMaterial]:
        ids = set(self.roles[role])
        return [m for m in self.materials if m.id in ids]

    @property
    def materials_dir(self) -> Path | None:
        """The folder every material file is in (index.csv with published baselines may sit there)."""
        folders = {Path(m.reference_file).resolve().parent for m in self.materials}
        return folders.pop() if len(folders) == 1 else None

    @property
    def material_ids(self) -> list[str]:
        """The test materials (the rows of the results)."""
        return list(self.roles["test"])

    @property
    def model_names(self) -> list[str]:
        return [self.training.base_model.name, self.training.export_name]


__all__ = ["FinetuneGlobalSpec", "MaterialSplit", "SelfDistillation", "read_split_file"]
