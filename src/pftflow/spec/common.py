"""Pieces every campaign kind shares: the strict base model, store / FireWorks blocks, calculator
(model) specs, reference-file checks, and the campaign base with ``.raw`` / ``.path`` / ``store_dir``."""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from pftflow.calculators.backends import BACKENDS, get_calculator
from pftflow.identity import REFERENCE_MODEL, material_id_from_path, model_name
from pftflow.materials.checks import MaterialError, check_reference, describe_species, unsupported_species
from pftflow.materials.readers import FORMATS, checked_species, read_reference, remember_checked
from pftflow.materials.reference import ReferenceFormatError
from pftflow.spec.errors import FieldIssue, did_you_mean, suggest


class StrictModel(BaseModel):
    """Base of every spec block: unknown keys are errors, NaN / inf are not numbers."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def existing_path(value: str, key: str, *, kind: str = "file", example: str | None = None) -> str:
    """``value`` if it names an existing file (``kind="file"``) or file-or-directory (``"any"``);
    relative paths are taken from the current directory, as the campaign runner does."""
    p = Path(value).expanduser()
    ok = p.is_file() if kind == "file" else p.exists()
    if not ok and kind == "file" and p.is_dir():
        raise FieldIssue(f"'{value}' is a directory, not a file", expected="a file", example=f"{key}: {example or value}")
    if not ok:
        where = "" if p.is_absolute() else f" (relative paths are from the current directory {os.getcwd()})"
        raise FieldIssue(
            f"{'file' if kind == 'file' else 'path'} '{value}' does not exist{where}",
            expected=f"an existing {'file' if kind == 'file' else 'file or directory'}",
            example=f"{key}: {example or value}",
        )
    return value


# ------------------------------------------------------------------------------ store, FireWorks
class StoreSpec(StrictModel):
    """Where the campaign's JobStore lives: an embedded store under ``path`` or a MongoDB ``uri``."""

    path: str | None = Field(None, description="folder of the embedded store (default campaigns/<name>)", examples=["campaigns/quickstart"])
    uri: str | None = Field(
        None, description="MongoDB server instead of the embedded store (mongodb:// or mongodb+srv://)", examples=["mongodb://user:pw@host/db"]
    )

    @field_validator("path")
    @classmethod
    def _folder(cls, v: str | None) -> str | None:
        """The folder (or the first of its parents that exists) must be a directory: a run creates
        the store inside it."""
        if v is None:
            return v
        if not v.strip():
            raise FieldIssue("store path is empty", expected="a folder for the campaign's store", example="path: campaigns/my-campaign")
        p = Path(v).expanduser()
        for q in (p, *p.parents):
            if q.exists():
                if not q.is_dir():
                    what = "is a file" if q == p else f"is inside '{q}', which is a file"
                    raise FieldIssue(
                        f"store path '{v}' {what}, not a folder",
                        expected="a folder (new or existing) where the run keeps store.sqlite and logs/",
                        example=f"path: {p.with_name(p.name + '-campaign') if q == p else 'campaigns/' + p.name}",
                    )
                break
        return v

    @field_validator("uri")
    @classmethod
    def _uri(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^mongodb(\+srv)?://", v):
            shown = re.sub(r"^([a-z+]*://[^:@/]+):[^@/]*@", r"\1:***@", v)  # never print a password
            raise ValueError(f"store uri must start with mongodb:// or mongodb+srv://, got {shown!r}")
        return v


class FireworksSpec(StrictModel):
    """FireWorks submission: LaunchPad file (MongoDB) and the worker name ``--launch`` runs as."""

    launchpad_file: str | None = Field(
        None, description="FireWorks LaunchPad YAML (MongoDB); null = embedded mongomock LaunchPad in the store folder", examples=["my_launchpad.yaml"]
    )
    fworker: str | None = Field(None, description="name of the FireWorker that `pftflow submit --launch` runs as", examples=["gpu"])

    @field_validator("launchpad_file")
    @classmethod
    def _launchpad(cls, v: str | None) -> str | None:
        return None if v is None else existing_path(v, "launchpad_file", example="my_launchpad.yaml")


# ------------------------------------------------------------------------------ models
def _backends() -> dict:
    return BACKENDS


def _constructor_options(backend: str) -> tuple[set[str], set[str]]:
    """(all keyword options, required options) of a backend's constructor."""
    sig = inspect.signature(_backends()[backend].__init__)
    params = [p for p in sig.parameters.values() if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return {p.name for p in params}, {p.name for p in params if p.default is inspect.Parameter.empty}


#: backends whose calculators implement ``hessian_rows`` (docs/hessian.md)
HESSIAN_BACKENDS = ("sevennet", "mace", "chgnet", "nequix")


class ModelSpec(BaseModel):
    """A calculator (MLIP or reference) as :func:`pftflow.calculators.get_calculator` takes it.

    Besides the listed keys, a backend's own constructor options are accepted (``modal`` of sevennet,
    ``batch_atoms`` of chgnet, ``batch_size`` and ``edge_chunk`` of nequix, ``default_dtype`` of mace); anything else is an
    error.
    """

    # extra keys are checked against the backend's constructor in _check_options
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    #: keys accepted on top of the constructor's (per backend)
    extra_options: ClassVar[dict[str, set[str]]] = {}

    backend: str = Field(
        description="force backend (pftflow.calculators.backends.BACKENDS)",
        json_schema_extra=lambda schema: schema.update(enum=sorted(_backends())),
        examples=["sevennet"],
    )
    name: str | None = Field(None, description="display name in the results (default: backend:model, or the backend)", examples=["SevenNet-0"])
    model: str | None = Field(None, description="model name or file (sevennet: 7net-0; mace: path.model or a foundation name)", examples=["7net-0"])
    import_path: str | None = Field(
        None, description="ase backend: 'package.module:factory' returning an ASE calculator", examples=["ase.calculators.emt:EMT"]
    )
    kwargs: dict[str, Any] | None = Field(None, description="ase backend: keyword arguments of the factory", examples=[{}])
    device: str | None = Field(None, description="torch device (cpu, cuda, cuda:N); null = automatic", examples=["cuda"])
    force_constants: Literal["displacements", "hessian"] = Field(
        "displacements",
        description="how the model's force constants are made: displacements (finite differences, like the reference) | "
        "hessian (exact Hessian rows of the symmetry-independent atoms; sevennet, mace, chgnet, nequix; docs/hessian.md)",
        examples=["hessian"],
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v):
        return {"backend": v} if isinstance(v, str) else v

    @field_validator("backend")
    @classmethod
    def _backend(cls, v: str) -> str:
        names = sorted(_backends())
        if v not in names:
            raise FieldIssue(
                f"unknown backend '{v}'{did_you_mean(v, names)}",
                expected="one of " + ", ".join(names),
                example=f"backend: {suggest(v, names) or 'sevennet'}",
            )
        return v

    @field_validator("import_path")
    @classmethod
    def _import_path(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*", v):
            raise ValueError(f"import_path must be 'package.module:factory', got {v!r}")
        module = v.split(":", 1)[0]
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise FieldIssue(
                f"module '{module}' of import_path '{v}' cannot be imported here",
                expected="'package.module:factory' of an installed module",
                example="import_path: pftflow.calculators.gpaw_reference:make_gpaw_calculator",
            )
        return v

    @model_validator(mode="after")
    def _check_options(self):
        options, required = _constructor_options(self.backend)
        options = options | self.extra_options.get(self.backend, set())
        given = (self.model_fields_set | set(self.model_extra or {})) - {"backend", "name", "force_constants"}
        if self.force_constants == "hessian" and self.backend not in HESSIAN_BACKENDS:
            raise FieldIssue(
                f"backend '{self.backend}' gives no Hessian rows",
                loc=("force_constants",),
                expected="force_constants: hessian with one of " + ", ".join(HESSIAN_BACKENDS) + " (docs/hessian.md)",
                example="force_constants: displacements",
            )
        for key in sorted(given):
            value = getattr(self, key, None) if key in type(self).model_fields else (self.model_extra or {}).get(key)
            if key not in options and value is not None:
                hint = suggest(key, sorted(options))
                raise FieldIssue(
                    f"'{key}' is not an option of backend '{self.backend}'" + (f"; did you mean '{hint}'?" if hint else ""),
                    loc=(key,),
                    expected="one of " + ", ".join(["backend", "name", *sorted(options)]),
                    example=f"{hint}: ..." if hint else f"remove '{key}'",
                )
        for key in sorted(required - given):
            raise FieldIssue(
                f"backend '{self.backend}' needs '{key}'",
                loc=(key,),
                expected=type(self).model_fields[key].description if key in type(self).model_fields else f"'{key}'",
                example={"import_path": "import_path: ase.calculators.emt:EMT", "model": "model: path/to/model.model"}.get(key, f"{key}: ..."),
            )
        if self.name is None:
            self.name = model_name(self.calculator_spec(with_name=False))
        return self

    def calculator_spec(self, *, with_name: bool = True) -> dict:
        """The dict :func:`pftflow.calculators.get_calculator` takes: the given keys plus ``name``."""
        out = {"backend": self.backend}
        for key in type(self).model_fields:
            if key not in ("backend", "force_constants") and key in self.model_fields_set and getattr(self, key) is not None:
                out[key] = getattr(self, key)
        out.update(self.model_extra or {})
        if with_name and self.name is not None:
            out["name"] = self.name
        elif not with_name:
            out.pop("name", None)
        return out


def check_unique_model_names(models: list[ModelSpec], key: str = "models") -> None:
    def not_reserved(i: int, m: ModelSpec) -> None:
        if m.name == REFERENCE_MODEL:
            raise FieldIssue(
                f"model name '{REFERENCE_MODEL}' is reserved for the reference calculation",
                loc=(key, i, "name"),
                expected="another name",
                example=f"name: {m.backend}-model",
            )

    check_unique(models, "name", key, "model", each=not_reserved)


# ------------------------------------------------------------------------------ import materials
class ImportMaterial(StrictModel):
    """A material whose reference phonons are read from a file (phonopy / MDR / atomate2)."""

    id: str | None = Field(None, description="material id (default: from the file name, e.g. mp-149.yaml.bz2 -> mp-149)", examples=["mp-149"])
    reference_file: str = Field(
        description="reference phonon file: phonopy yaml (with forces or FORCE_SETS), MDR yaml.bz2 or atomate2 phonopy.yaml.xz",
        examples=["../shared/data/mdr/mp-149.yaml.bz2"],
    )
    reference_format: str | None = Field(None, description="phonopy | mdr | atomate2; null = detected from the file", examples=["phonopy"])
    force_sets: str | None = Field(None, description="FORCE_SETS file of a phonopy_disp.yaml", examples=["data/FORCE_SETS_SnO2"])
    born: str | None = Field(None, description="BORN file (non-analytic correction)", examples=["data/BORN"])

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v):
        return {"reference_file": v} if isinstance(v, (str, os.PathLike)) else v

    @field_validator("reference_file")
    @classmethod
    def _file(cls, v: str) -> str:
        return existing_path(v, "reference_file", example="../shared/data/mdr/mp-149.yaml.bz2")

    @field_validator("force_sets", "born")
    @classmethod
    def _aux(cls, v: str | None, info) -> str | None:
        return None if v is None else existing_path(v, info.field_name)

    @field_validator("reference_format")
    @classmethod
    def _format(cls, v: str | None) -> str | None:
        if v is not None and v not in FORMATS:
            raise FieldIssue(
                f"unknown reference_format '{v}'{did_you_mean(v, FORMATS)}",
                expected="one of " + ", ".join(FORMATS) + " (or leave it out: detected from the file)",
                example=f"reference_format: {suggest(v, FORMATS) or 'phonopy'}",
            )
        return v

    _species: tuple[str, ...] | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _default_id(self):
        if not self.id:
            self.id = material_id_from_path(self.reference_file)
        return self

    @model_validator(mode="after")
    def _content(self):
        """Read the file now (parsed once per process: the import job gets the cached result) and
        check it: readable / decompressible, parses, finite forces, no overlapping atoms.  A file that
        passed before and is unchanged since (size, mtime) is not read again
        (:func:`pftflow.materials.readers.checked_species`)."""
        files = {"fmt": self.reference_format, "force_sets": self.force_sets, "born": self.born}
        known = checked_species(self.reference_file, **files)
        if known is not None:  # passed these checks before and unchanged since: not parsed again
            self._species = known
            return self
        try:
            ref = read_reference(self.reference_file, fmt=self.reference_format, force_sets=self.force_sets, born=self.born)
        except ReferenceFormatError as exc:
            text = str(exc)
            if "no forces" in text or "neither force_constants" in text:
                example = "force_sets: path/to/FORCE_SETS (the forces of this displacement yaml), or a phonopy_params.yaml with forces"
            else:
                example = "reference_file: ../shared/data/mdr/mp-149.yaml.bz2 (copy or download a damaged file again)"
            raise FieldIssue(
                text,
                loc=("reference_file",),
                expected="a readable reference phonon file: phonopy yaml with forces (or FORCE_SETS), MDR yaml(.bz2) or atomate2 phonopy.yaml(.xz)",
                example=example,
            ) from None
        try:
            check_reference(ref, loc=("reference_file",))
        except MaterialError as exc:
            raise field_issue(exc) from None
        self._species = tuple(sorted(set(ref.unitcell.get_chemical_symbols())))
        remember_checked(self.reference_file, self._species, **files)
        return self

    def species(self) -> tuple[str, ...]:
        """Elements of the reference's unit cell (read when the spec was validated)."""
        return self._species or ()

    def entry(self) -> dict:
        """The material dict of the current builders (``{id, reference_file, ...}``)."""
        return self.model_dump(exclude_none=True)


def field_issue(exc, loc_prefix: tuple = ()) -> FieldIssue:
    """A :class:`pftflow.materials.checks.MaterialError` as a :class:`FieldIssue` (its loc under ``loc_prefix``)."""
    return FieldIssue(exc.message, loc=tuple(loc_prefix) + tuple(exc.loc), expected=exc.expected, example=exc.example)


# ------------------------------------------------------------------------------ models x species
_SPECIES: dict[str, Any] = {}


class ModelIssue(ValueError):
    """The backend refuses a model spec: ``where`` is ``"settings"`` (its constructor) or ``"model"``
    (it cannot identify the model, e.g. an unknown sevennet checkpoint name)."""

    def __init__(self, message: str, where: str):
        super().__init__(message)
        self.where = where


def model_species(model: ModelSpec) -> frozenset[str] | None:
    """The elements a model supports (its backend's ``supported_species()``), None when unknown.
    Asked once per model spec and process (it may read a checkpoint).  Raises :class:`ModelIssue`
    when the backend refuses the spec (a ValueError of its constructor or of the lookup)."""
    import json

    key = json.dumps(model.calculator_spec(with_name=False), sort_keys=True, default=str)
    if key not in _SPECIES:
        import contextlib
        import io
        import warnings

        where = "settings"
        try:  # library chatter while a checkpoint is read (import-time prints, torch.load warnings) is not the user's business here
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                calc = get_calculator(model.calculator_spec())
                where = "model"
                _SPECIES[key] = calc.supported_species()
        except ValueError as exc:
            _SPECIES[key] = ModelIssue(str(exc), where)
        except Exception:  # noqa: BLE001 - the check could not be made (library missing, ...): unknown, the run decides
            _SPECIES[key] = None
    out = _SPECIES[key]
    if isinstance(out, ModelIssue):
        raise out
    return out


def check_models_support(models: list[ModelSpec], materials: list[tuple[str, str, tuple[str, ...]]], key: str | tuple = "models", *, indexed: bool = True) -> None:
    """Refuse a model that does not support an element of a material.

    ``materials``: (label in the spec, material id, elements), e.g. ("materials[0]", "mp-149", ("Si",)).
    ``key``: the spec key of ``models`` (a tuple for a nested one); ``indexed`` False for a single model.
    """
    from ase.data import atomic_numbers as Z_OF

    base = key if isinstance(key, tuple) else (key,)
    for i, m in enumerate(models):
        loc = base + ((i,) if indexed else ())
        try:
            supported = model_species(m)
        except ModelIssue as exc:
            on_model = exc.where == "model" and m.model is not None
            raise FieldIssue(
                str(exc),
                loc=loc + (("model",) if on_model else ()),
                expected=f"a model name or file that backend '{m.backend}' can load" if on_model else f"settings backend '{m.backend}' accepts",
                example=("model: 7net-0" if m.backend == "sevennet" else "model: path/to/model") if on_model else f"{{backend: {m.backend}}} with its defaults",
            ) from None
        if supported is None:
            continue
        for label, mid, species in materials:
            missing = unsupported_species(species, supported)
            if missing:
                other = " (e.g. {backend: chgnet}: H to Pu)" if m.backend != "chgnet" and all(Z_OF.get(x, 999) <= 94 for x in missing) else ""
                raise FieldIssue(
                    f"{m.name} does not support {', '.join(missing)} in {label} ({mid})",
                    loc=loc,
                    expected=f"materials made of the elements {m.name} covers ({describe_species(supported)})",
                    example=f"remove {label}, or use a model trained on {', '.join(missing)}{other}",
                )


def check_unique(items: list, attr: str, key: str, what: str, each=None) -> None:
    """Raise a :class:`FieldIssue` at ``key[i].attr`` for the first item whose ``attr`` an earlier one has;
    ``each(i, item)``, when given, checks every item before (in list order)."""
    seen: dict[str, int] = {}
    for i, m in enumerate(items):
        if each is not None:
            each(i, m)
        v = getattr(m, attr)
        if v in seen:
            raise FieldIssue(
                f"duplicate {what} {attr} '{v}' (also {key}[{seen[v]}])",
                loc=(key, i, attr),
                expected=f"a unique {attr} per {what}",
                example=f"{attr}: {v}-2",
            )
        seen[v] = i


def check_unique_ids(materials: list, key: str) -> None:
    check_unique(materials, "id", key, "material")


# ------------------------------------------------------------------------------ campaign base
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class CampaignBase(StrictModel):
    """Keys of every campaign spec (docs/campaign-spec.md)."""

    name: str = Field(
        pattern=NAME_PATTERN,
        description="campaign name: letters, digits, '.', '_', '-' (also the default store folder campaigns/<name>)",
        examples=["quickstart"],
    )
    description: str | None = Field(None, description="free text", examples=["SevenNet-0 vs DFT on Si"])
    store: StoreSpec = Field(default_factory=StoreSpec, description="embedded store folder or MongoDB uri", examples=[{"path": "campaigns/my-campaign"}])
    fireworks: FireworksSpec = Field(default_factory=FireworksSpec, description="FireWorks LaunchPad and worker", examples=[{"launchpad_file": "my_launchpad.yaml"}])

    _raw: dict = PrivateAttr(default_factory=dict)
    _path: Path | None = PrivateAttr(default=None)

    @property
    def raw(self) -> dict:
        """The spec as read (before defaults), for builders that still take dicts."""
        return self._raw

    @property
    def path(self) -> Path | None:
        """The YAML file the spec came from (None for a dict)."""
        return self._path

    @property
    def store_dir(self) -> Path:
        """Folder of the embedded store (``store.path``, default ``campaigns/<name>``)."""
        return Path(self.store.path) if self.store.path else Path("campaigns") / self.name

    @property
    def store_uri(self) -> str | None:
        return self.store.uri
