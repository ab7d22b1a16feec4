"""``kind: dataset``: generate and label reference structure sets per material (docs/dataset.md).

Materials are compute entries (``{id, structure, supercell_matrix?}`` as in phonons compute mode: sampled
on the material's one supercell, then labelled by ``labeller``), reference files (phonopy / MDR /
atomate2 displacement datasets with forces: imported, no calculation) or extxyz files with reference
energies / forces / stresses (imported).  ``supercell`` is the rule that picks each compute material's
supercell (unless the entry gives ``supercell_matrix``); ``sampling`` lists the sets made on it.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, PrivateAttr, Tag, field_validator, model_validator

from pftflow.sampling.sets import SamplingSettings
from pftflow.sampling.supercells import SupercellChoice, SupercellRule, choose_supercell
from pftflow.spec.common import CampaignBase, ImportMaterial, ModelSpec, StrictModel, check_unique_ids, existing_path
from pftflow.spec.errors import FieldIssue
from pftflow.spec.phonons import ComputeMaterial
from pftflow.spec.plan_units import _summary, _unit

LABELLER_EXAMPLE = "labeller: {backend: ase, name: GPAW-PBE, import_path: pftflow.calculators.gpaw_reference:make_gpaw_calculator}"


class ExtxyzMaterial(StrictModel):
    """A labelled set read from an extxyz file (no calculation); all frames are one material."""

    id: str = Field(min_length=1, description="material id", examples=["Si"])
    extxyz: str = Field(description="extxyz file with reference energies (eV), forces (eV/Å), stresses (eV/Å³)", examples=["data/si_rattled.extxyz"])
    energy_key: str = Field("REF_energy", description="info key of the energy (eV)")
    forces_key: str = Field("REF_forces", description="array key of the forces (eV/Å)")
    stress_key: str = Field("REF_stress", description="info key of the stress (eV/Å³, Voigt or 3x3, ASE sign)")
    index: str = Field(":", description="ASE frame selection", examples=[":10"])

    @field_validator("extxyz")
    @classmethod
    def _exists(cls, v: str) -> str:
        return existing_path(v, "extxyz", example="data/si_rattled.extxyz")

    def entry(self) -> dict:
        return self.model_dump()


def _material_tag(v: Any) -> str | None:
    if isinstance(v, ComputeMaterial):
        return "compute"
    if isinstance(v, ExtxyzMaterial):
        return "extxyz"
    if isinstance(v, (str, os.PathLike, ImportMaterial)):
        return "import"
    if isinstance(v, dict):
        for key, tag in (("structure", "compute"), ("extxyz", "extxyz"), ("reference_file", "import")):
            if key in v:
                return tag
    return None


DatasetMaterial = Annotated[
    Union[Annotated[ComputeMaterial, Tag("compute")], Annotated[ImportMaterial, Tag("import")], Annotated[ExtxyzMaterial, Tag("extxyz")]],
    Discriminator(
        _material_tag,
        custom_error_type="material_entry",
        custom_error_message="a dataset material needs 'structure' (sampled and labelled: {id, structure, supercell_matrix?}), "
        "'reference_file' (phonopy / MDR / atomate2 displacements with forces, imported) or 'extxyz' (labelled frames, imported)",
    ),
]


class DatasetSampling(SamplingSettings):
    """A structure set made for every compute material (:class:`pftflow.sampling.SamplingSettings`)."""

    relax_calculator: ModelSpec | None = Field(
        None, description="rattle_relax: calculator of the short relaxation (an MLIP); null = the labeller", examples=[{"backend": "sevennet", "model": "7net-0"}]
    )

    @model_validator(mode="before")
    @classmethod
    def _required_for_kind(cls, v):
        if isinstance(v, dict):
            kind = v.get("kind", "rattle")
            if kind == "mc_rattle" and v.get("min_distance_A") is None:
                raise FieldIssue("kind mc_rattle needs min_distance_A", loc=("min_distance_A",),
                                 expected="the smallest interatomic distance allowed (Å), below the nearest-neighbour distance", example="min_distance_A: 1.5")
            if kind in ("rattle", "mc_rattle", "rattle_relax") and v.get("amplitude_A") is not None and v["amplitude_A"] <= 0:
                raise FieldIssue(f"kind {kind} needs amplitude_A > 0", loc=("amplitude_A",),
                                 expected="standard deviation of the displacement components (Å)", example="amplitude_A: 0.03")
        return v

    def settings(self) -> dict:
        """The :class:`SamplingSettings` part, as :func:`pftflow.sampling.sample_set` takes it."""
        return self.model_dump(mode="json", exclude={"relax_calculator"})


class DatasetSpec(CampaignBase):
    """``kind: dataset`` (docs/dataset.md): sampled sets labelled by a calculator, or imported labelled data."""

    kind: Literal["dataset"] = Field("dataset", description="campaign kind")
    materials: list[DatasetMaterial] = Field(
        min_length=1,
        description="compute: {id, source, structure {cell_A, species, frac_coords}, supercell_matrix (default: the supercell rule)}; "
        "import: a reference file (path or {id, reference_file, ...}); extxyz: {id, extxyz, energy_key, forces_key, stress_key, index}",
        examples=[[{"id": "Si", "structure": {"cell_A": [[0, 2.7155, 2.7155], [2.7155, 0, 2.7155], [2.7155, 2.7155, 0]], "species": ["Si", "Si"],
                                             "frac_coords": [[0, 0, 0], [0.25, 0.25, 0.25]]}}]],
    )
    supercell: SupercellRule = Field(default_factory=SupercellRule, description="supercell rule of the compute materials: min_length_A, max_atoms, prefer_90_degrees, ...",
                                     examples=[{"min_length_A": 10.0, "max_atoms": 200}])
    sampling: list[DatasetSampling] = Field(
        default_factory=lambda: [DatasetSampling()], description="structure sets per compute material: {kind, n_structures, amplitude_A, min_distance_A, seed, ...}",
        examples=[[{"kind": "rattle", "n_structures": 10, "amplitude_A": 0.03, "seed": 0}]],
    )
    labeller: ModelSpec | None = Field(None, description="calculator that labels the sampled sets (GPAW, an MLIP teacher, any ASE calculator)",
                                       examples=[{"backend": "ase", "name": "GPAW-PBE", "import_path": "pftflow.calculators.gpaw_reference:make_gpaw_calculator"}])

    _supercells: dict | None = PrivateAttr(default=None)

    @field_validator("materials", mode="before", json_schema_input_type=list[Union[str, ImportMaterial, ComputeMaterial, ExtxyzMaterial]])
    @classmethod
    def _materials_input(cls, v):
        return v  # schema only: a reference file may be written as its path

    @field_validator("sampling", mode="before", json_schema_input_type=Union[DatasetSampling, list[DatasetSampling]])
    @classmethod
    def _one_or_many(cls, v):
        return [v] if isinstance(v, dict) else v

    @model_validator(mode="after")
    def _consistent(self):
        check_unique_ids(self.materials, "materials")
        seen: dict[str, int] = {}
        for i, s in enumerate(self.sampling):
            if s.name in seen:
                raise FieldIssue(
                    f"duplicate set name '{s.name}' (also sampling[{seen[s.name]}])", loc=("sampling", i, "name"),
                    expected="a unique name per set", example=f"name: {s.name}-2",
                )
            seen[s.name] = i
        if self.labeller is None:
            for i, m in enumerate(self.materials):
                if isinstance(m, ComputeMaterial):
                    raise FieldIssue(
                        f"material '{m.id}' is sampled (it has a structure) but there is no labeller", loc=("labeller",),
                        expected="a calculator spec that labels the sampled structures", example=LABELLER_EXAMPLE,
                    )
        return self

    # ------------------------------------------------------------------ derived
    @property
    def material_ids(self) -> list[str]:
        return [m.id for m in self.materials]

    @property
    def set_names(self) -> list[str]:
        return [s.name for s in self.sampling]

    @property
    def model_names(self) -> list[str]:
        return [self.labeller.name] if self.labeller is not None else []

    def compute_materials(self) -> list[ComputeMaterial]:
        return [m for m in self.materials if isinstance(m, ComputeMaterial)]

    def supercells(self) -> dict[str, SupercellChoice]:
        """The supercell of each compute material (rule, or the entry's supercell_matrix), chosen once
        per spec object; a cell over ``supercell.max_atoms`` warns here, before any calculation."""
        if self._supercells is None:
            out = {}
            for m in self.compute_materials():
                given = m.supercell_matrix if "supercell_matrix" in m.model_fields_set else None

                out[m.id] = choose_supercell(m.structure.atoms(), self.supercell, material_id=m.id, supercell_matrix=given)
            self._supercells = out
        return self._supercells

    def relax_calculator(self, s: DatasetSampling) -> dict | None:
        """The calculator spec of a rattle_relax set (its own, else the labeller's); None otherwise."""
        if s.kind != "rattle_relax":
            return None
        calc = s.relax_calculator or self.labeller
        return None if calc is None else calc.calculator_spec()


def dataset_plan(spec: DatasetSpec) -> dict:
    """:func:`pftflow.spec.plan` of a dataset campaign: per compute material and set sampling -> forces ->
    labelled_set, per imported material one labelled_set job; plus ``supercells`` per compute material."""
    units = [_unit(None, None, ["parameters"])]
    labeller = spec.labeller.name if spec.labeller is not None else None
    for m in spec.materials:
        if isinstance(m, ComputeMaterial):
            units += [_unit(m.id, f"{s.name}/{labeller}", ["sampling", "forces", "labelled_set"]) for s in spec.sampling]
        else:
            units.append(_unit(m.id, "import", ["labelled_set"]))
    out = _summary(spec, spec.material_ids, spec.model_names, units)
    out["supercells"] = {mid: {"supercell_matrix": c.supercell_matrix.tolist(), "n_atoms": c.n_atoms, "widths_A": c.widths_A,
                               "exceeds_max_atoms": c.exceeds_max_atoms} for mid, c in spec.supercells().items()}
    return out


__all__ = ["DatasetSpec", "DatasetSampling", "ExtxyzMaterial", "dataset_plan"]
