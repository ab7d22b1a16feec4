"""``kind: kappa``: phono3py Wigner-RTA κ and SRME on a k_SRME-style structure set (docs/kappa.md)."""

from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import Field, PrivateAttr, field_validator, model_validator

from pftflow.kappa.conductivity import KappaSettings
from pftflow.materials.checks import (
    MAX_SUPERCELL_ATOMS,
    MaterialError,
    check_atoms,
    check_supercell_matrix,
    check_supercell_size,
)
from pftflow.materials.kappa import read_kappa_reference, read_kappa_structures, resolve_reference_path
from pftflow.phonons.relax import RelaxSettings
from pftflow.spec.common import (
    CampaignBase,
    ModelSpec,
    StrictModel,
    check_models_support,
    check_unique_model_names,
    existing_path,
)
from pftflow.spec.errors import FieldIssue, suggest

#: keys of the ``kappa:`` block that may also be written at the top level of the spec
BLOCK_KEYS = ("structures", "reference", "nac", "materials", "settings")

#: κ references read while validating, by (absolute path, size, mtime, nac): a spec loaded twice in
#: one process (validate, then build) reads the file once
_REFERENCES: dict[tuple, Any] = {}


def _read_reference_cached(path, nac: bool):
    import os

    st = os.stat(path)
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns, bool(nac))
    if key not in _REFERENCES:
        _REFERENCES.clear()  # one reference per campaign: keep only the last
        _REFERENCES[key] = read_kappa_reference(path, nac=nac)
    return _REFERENCES[key]


def _check_material(m) -> None:
    """Physics checks on one frame of the κ structures file (cell, species, distances, fc2 / fc3
    supercells), reported at ``kappa.structures``."""
    where = f"{m.material_id} ({m.name})"
    try:
        check_atoms(m.atoms, species_loc=(), cell_loc=(), coords_loc=())
        for name in ("fc2_supercell", "fc3_supercell"):
            check_supercell_matrix(getattr(m, name), loc=(), name=name)
            check_supercell_size(len(m.atoms), getattr(m, name), limit=MAX_SUPERCELL_ATOMS, loc=(), name=name)
    except MaterialError as exc:
        raise FieldIssue(
            f"material {where} of the structures file: {exc.message}",
            loc=("structures",),
            expected=exc.expected,
            example=f"fix frame {where} of the structures file, or leave it out with materials: [...]",
        ) from None


class KappaCampaignSettings(KappaSettings):
    """:class:`KappaSettings` plus the relaxation of each model (k_SRME protocol, overridable)."""

    relax: RelaxSettings = Field(
        default_factory=RelaxSettings.ksrme,
        description="overrides of the k_SRME relaxation RelaxSettings.ksrme() (fmax 1e-4 eV/Å, 300 steps, two stages)",
        examples=[{"fmax_eV_per_A": 1.0e-4, "steps": 300}],
    )
    do_relax: bool = Field(True, description="relax each model's cell first (false: use the file's cell as is)")

    @model_validator(mode="after")
    def _ksrme_defaults(self):
        # the given keys override the k_SRME protocol, not RelaxSettings' MDR defaults
        self.relax = RelaxSettings.ksrme(**self.relax.model_dump(exclude_unset=True))
        return self

    def kappa_settings(self) -> KappaSettings:
        """The :class:`KappaSettings` part (without relax / do_relax)."""
        return KappaSettings(**self.model_dump(exclude={"relax", "do_relax"}))


class KappaBlock(StrictModel):
    """Input files and selection of a κ campaign (the ``kappa:`` block)."""

    structures: str = Field(
        description="extended XYZ of the κ set, one frame per material with fc2_supercell, fc3_supercell, q_mesh, mp_id (k_SRME phononDB-PBE-structures.extxyz)",
        examples=["../shared/data/ksrme/phononDB-PBE-structures_subset.extxyz"],
    )
    reference: str | None = Field(
        None,
        description="DFT κ reference: column-oriented JSON(.gz), or a directory where `nac` picks the NAC / noNAC file; null = no SRME",
        examples=["../shared/data/ksrme"],
    )
    nac: bool = Field(True, description="use the DFT reference with non-analytic correction (k_SRME's published tables)")
    materials: Literal["all"] | list[str] = Field("all", description="'all', or material ids / names of the structures file", examples=[["mp-22862", "ZnS"]])
    settings: KappaCampaignSettings = Field(default_factory=KappaCampaignSettings, description="KappaSettings fields plus relax and do_relax", examples=[{"q_mesh": None}])

    _selected: list[tuple[str, str]] = PrivateAttr(default_factory=list)
    _species: dict[str, tuple[str, ...]] = PrivateAttr(default_factory=dict)

    @field_validator("structures")
    @classmethod
    def _structures(cls, v: str) -> str:
        return existing_path(v, "structures", example="../shared/data/ksrme/phononDB-PBE-structures_subset.extxyz")

    @field_validator("reference")
    @classmethod
    def _reference(cls, v: str | None) -> str | None:
        return None if v is None else existing_path(v, "reference", kind="any", example="../shared/data/ksrme")

    @field_validator("materials", mode="before")
    @classmethod
    def _all(cls, v: Any) -> Any:
        if v is None or v == ["all"]:
            return "all"
        return v

    @field_validator("materials")
    @classmethod
    def _unique(cls, v):
        if isinstance(v, list):
            if not v:
                raise ValueError("an empty material list selects nothing; write 'all' or some ids")
            seen = set()
            for i, w in enumerate(v):
                if w in seen:
                    raise FieldIssue(f"'{w}' is listed twice", loc=(i,), expected="each material once", example=f"materials: {sorted(set(v))}")
                seen.add(w)
        return v

    @model_validator(mode="after")
    def _files(self):
        try:
            mats = read_kappa_structures(self.structures)
        except Exception as exc:  # noqa: BLE001 - ase / numpy raise many types on a damaged extxyz; name the file
            raise FieldIssue(
                f"cannot read the structures file {self.structures}: {type(exc).__name__}: {exc}",
                loc=("structures",),
                expected="an extxyz with info keys mp_id, fc2_supercell, fc3_supercell, q_mesh per frame",
                example="structures: ../shared/data/ksrme/phononDB-PBE-structures_subset.extxyz",
            ) from None
        by_id = {m.material_id: m for m in mats}
        by_name = {m.name: m for m in mats}
        if self.materials == "all":
            selected = mats
        else:
            selected = []
            for i, w in enumerate(self.materials):
                m = by_id.get(w) or by_name.get(w)
                if m is None:
                    hint = suggest(w, list(by_id) + list(by_name))
                    raise FieldIssue(
                        f"'{w}' is not in {self.structures}" + (f"; did you mean '{hint}'?" if hint else ""),
                        loc=("materials", i),
                        expected="ids or names of the structures file: " + ", ".join(f"{k} ({m.name})" for k, m in list(by_id.items())[:12]),
                        example=f"materials: [{hint or next(iter(by_id), 'all')}]",
                    )
                selected.append(m)
        self._selected = [(m.material_id, m.name) for m in selected]
        for m in selected:
            _check_material(m)
        self._species = {m.material_id: tuple(sorted(set(m.atoms.get_chemical_symbols()))) for m in selected}
        if self.reference is not None:
            try:
                path = resolve_reference_path(self.reference, self.nac)
            except FileNotFoundError as exc:
                raise FieldIssue(
                    str(exc),
                    loc=("reference",),
                    expected=f"a JSON file, or a directory with exactly one {'NAC' if self.nac else 'noNAC'} reference file",
                    example="reference: ../shared/data/ksrme/kappas_phononDB_PBE_NAC_subset.json.gz",
                ) from None
            try:
                _read_reference_cached(path, self.nac)
            except Exception as exc:  # noqa: BLE001 - gzip / pandas / numpy on a damaged file: name it
                raise FieldIssue(
                    f"cannot read the κ reference {path}: {type(exc).__name__}: {exc}",
                    loc=("reference",),
                    expected="a column-oriented JSON(.gz) with mp_id, kappa_TOT_ave, mode_kappa_TOT_ave, weights, qpoints (k_SRME kappas_phononDB_PBE_NAC.json.gz)",
                    example="reference: ../shared/data/ksrme/kappas_phononDB_PBE_NAC_subset.json.gz (copy or download a damaged file again)",
                ) from None
        return self

    def species(self) -> dict[str, tuple[str, ...]]:
        """Elements of each selected material, by material id."""
        return dict(self._species)

    @property
    def material_ids(self) -> list[str]:
        """Ids of the selected materials, in the order the campaign runs them."""
        return [mid for mid, _ in self._selected]


class KappaSpec(CampaignBase):
    """``kind: kappa``: κ of every (model, material) with the k_SRME protocol, and SRD / SRE / SRME."""

    kind: Literal["kappa"] = Field("kappa", description="campaign kind")
    kappa: KappaBlock = Field(
        description="structures, reference, nac, materials, settings (these keys may also be given at the top level; the block wins)",
        examples=[{"structures": "../shared/data/ksrme/phononDB-PBE-structures_subset.extxyz", "reference": "../shared/data/ksrme"}],
    )
    models: list[ModelSpec] = Field(min_length=1, description="calculator specs", examples=[[{"backend": "sevennet", "model": "7net-0", "name": "SevenNet-0"}]])

    @model_validator(mode="before")
    @classmethod
    def _lift(cls, v: Any) -> Any:
        """Top-level structures / reference / nac / materials / settings go into the ``kappa`` block
        (as pftflow.flows.kappa.normalize_kappa_spec does; keys in the block win)."""
        if not isinstance(v, dict) or not any(k in v for k in BLOCK_KEYS):
            return v
        block = v.get("kappa")
        if block is not None and not isinstance(block, dict):
            return v  # pydantic reports the type
        out = {k: x for k, x in v.items() if k not in BLOCK_KEYS}
        out["kappa"] = {**{k: v[k] for k in BLOCK_KEYS if k in v}, **(block or {})}
        return out

    @field_validator("models", mode="before", json_schema_input_type=list[Union[str, ModelSpec]])
    @classmethod
    def _models_input(cls, v):
        return v  # schema only: a model may be written as its backend name

    @model_validator(mode="after")
    def _names(self):
        check_unique_model_names(self.models)
        names = dict(self.kappa._selected)
        species = [("kappa.structures", f"{mid}, {names.get(mid, mid)}", sp) for mid, sp in self.kappa.species().items()]
        check_models_support(self.models, species, "models")
        return self

    @property
    def material_ids(self) -> list[str]:
        return self.kappa.material_ids

    @property
    def model_names(self) -> list[str]:
        return [m.name for m in self.models]
