"""``kind: phonons``: harmonic MDR benchmark of models against imported or computed reference phonons."""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal, Union

import numpy as np
from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from pftflow.calculators.vasp import VaspSettings
from pftflow.materials.builders import build_phonopy
from pftflow.materials.checks import (
    MAX_SUPERCELL_ATOMS,
    MaterialError,
    check_distances,
    check_supercell_matrix,
    check_supercell_size,
)
from pftflow.materials.structures import atoms_to_dict
from pftflow.phonons.harmonic import PhononSettings
from pftflow.phonons.relax import RelaxSettings
from pftflow.spec.common import (
    CampaignBase,
    ImportMaterial,
    ModelSpec,
    StrictModel,
    check_models_support,
    check_unique_ids,
    check_unique_model_names,
    field_issue,
)
from pftflow.spec.errors import FieldIssue, fmt_value, suggest

Matrix3 = Annotated[list[Annotated[list[float], Field(min_length=3, max_length=3)]], Field(min_length=3, max_length=3)]
IntMatrix3 = Annotated[list[Annotated[list[int], Field(min_length=3, max_length=3)]], Field(min_length=3, max_length=3)]

SI_EXAMPLE = "{cell_A: [[0, 2.7155, 2.7155], [2.7155, 0, 2.7155], [2.7155, 2.7155, 0]], species: [Si, Si], frac_coords: [[0, 0, 0], [0.25, 0.25, 0.25]]}"


def _as_list(v: Any) -> Any:
    return v.tolist() if hasattr(v, "tolist") else v


class StructureSpec(StrictModel):
    """A crystal written down in the spec: lattice vectors (rows, Å), species, fractional coordinates."""

    cell_A: Matrix3 = Field(description="3x3 lattice vectors as rows (Å)", examples=[[[0.0, 2.7155, 2.7155], [2.7155, 0.0, 2.7155], [2.7155, 2.7155, 0.0]]])
    species: list[str] = Field(min_length=1, description="chemical symbol of each atom", examples=[["Si", "Si"]])
    frac_coords: list[Annotated[list[float], Field(min_length=3, max_length=3)]] = Field(
        min_length=1, description="fractional coordinates [x, y, z] of each atom, one per species", examples=[[[0, 0, 0], [0.25, 0.25, 0.25]]]
    )

    @field_validator("cell_A", "frac_coords", mode="before")
    @classmethod
    def _arrays(cls, v):
        return _as_list(v)

    @field_validator("cell_A")
    @classmethod
    def _volume(cls, v):
        vol = float(np.linalg.det(np.asarray(v, dtype=float)))
        if abs(vol) < 1e-6:
            raise ValueError(f"cell_A is singular (volume {vol:.3g} Å³): the 3 lattice vectors must be linearly independent")
        return v

    @field_validator("species")
    @classmethod
    def _species(cls, v: list[str]) -> list[str]:
        from ase.data import chemical_symbols

        symbols = chemical_symbols[1:]
        for i, s in enumerate(v):
            if s not in symbols:
                hint = suggest(s, symbols)
                raise FieldIssue(
                    f"unknown chemical symbol '{s}'" + (f"; did you mean '{hint}'?" if hint else ""),
                    loc=(i,),
                    expected="element symbols such as Si, Na, Cl",
                    example=f"species: {fmt_value([(hint or 'Si') if j == i else x for j, x in enumerate(v)])}",
                )
        return v

    @model_validator(mode="after")
    def _counts(self):
        if len(self.frac_coords) != len(self.species):
            raise FieldIssue(
                f"{len(self.frac_coords)} frac_coords for {len(self.species)} species",
                loc=("frac_coords",),
                expected="one [x, y, z] per entry of species",
                example=f"structure: {SI_EXAMPLE}",
            )
        return self

    @model_validator(mode="after")
    def _distances(self):
        """No two atoms (periodic images included) closer than checks.MIN_DISTANCE_A."""
        try:
            check_distances(self.atoms(), loc=("frac_coords",))
        except MaterialError as exc:
            raise field_issue(exc) from None
        return self

    def atoms(self):
        """The structure as :class:`ase.Atoms` (periodic)."""
        from ase import Atoms

        return Atoms(self.species, cell=np.asarray(self.cell_A, float), scaled_positions=np.asarray(self.frac_coords, float), pbc=True)


class ComputeMaterial(StrictModel):
    """A material whose reference phonons are computed live (``reference.mode: compute``)."""

    id: str = Field(min_length=1, description="material id", examples=["Si"])
    source: str | None = Field(None, description="where the cell comes from (free text)", examples=["diamond Si, a = 5.431 Å (CODATA)"])
    structure: StructureSpec = Field(description="the unit cell {cell_A (3x3, Å), species, frac_coords}")
    supercell_matrix: IntMatrix3 | list[int] = Field(
        default_factory=lambda: [[2, 0, 0], [0, 2, 0], [0, 0, 2]],
        description="supercell of the finite displacements: 3 positive integers (diagonal) or a 3x3 integer matrix (det > 0)",
        examples=[[2, 2, 2]],
    )
    primitive_matrix: Matrix3 | None = Field(None, description="primitive cell in units of the given cell (3x3); null = the cell is primitive", examples=[[[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]])
    max_supercell_atoms: int = Field(
        MAX_SUPERCELL_ATOMS, ge=1, description="largest supercell (atoms) this material may ask for; raise it for a deliberately large supercell", examples=[4000]
    )

    @field_validator("supercell_matrix", mode="before")
    @classmethod
    def _supercell(cls, v):
        v = _as_list(v)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            v = [v, v, v]
        try:
            np.asarray(v, dtype=float)
        except (TypeError, ValueError):
            return v  # not numbers: pydantic reports the type
        try:
            return check_supercell_matrix(v, loc=()).tolist()
        except MaterialError as exc:
            raise field_issue(exc) from None

    @model_validator(mode="after")
    def _size_and_primitive(self):
        """The supercell is not too large, and phonopy accepts the primitive matrix for this cell."""
        atoms = self.structure.atoms()
        try:
            check_supercell_size(len(atoms), self.supercell_matrix, limit=self.max_supercell_atoms, loc=("supercell_matrix",))
        except MaterialError as exc:
            raise field_issue(exc) from None
        if self.primitive_matrix is not None:
            try:
                build_phonopy(atoms, self.supercell_matrix, self.primitive_matrix)
            except Exception as exc:  # noqa: BLE001 - phonopy raises RuntimeError / ValueError / TypeError here
                raise FieldIssue(
                    f"phonopy refuses this primitive_matrix for the cell: {type(exc).__name__}: {exc}",
                    loc=("primitive_matrix",),
                    expected="the primitive cell in units of the given cell, with the supercell a multiple of it (or null: the cell is primitive)",
                    example="primitive_matrix: [[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]] (for a conventional fcc cell)",
                ) from None
        return self

    def species(self) -> tuple[str, ...]:
        """Elements of the structure."""
        return tuple(sorted(set(self.structure.species)))

    @field_validator("primitive_matrix", mode="before")
    @classmethod
    def _primitive(cls, v):
        v = _as_list(v)
        try:
            a = np.asarray(v, dtype=float)
        except (TypeError, ValueError):
            return v
        if a.shape == (3, 3) and abs(np.linalg.det(a)) < 1e-6:
            raise ValueError("primitive_matrix is singular")
        return v

    def entry(self) -> dict:
        """The material dict of the current builders: ``structure`` as an atoms dict, 3x3 supercell."""
        out = {"id": self.id, "structure": atoms_to_dict(self.structure.atoms()), "supercell_matrix": self.supercell_matrix}
        if self.source is not None:
            out["source"] = self.source
        if self.primitive_matrix is not None:
            out["primitive_matrix"] = self.primitive_matrix
        return out


class MaterialDirectory(StrictModel):
    """Every reference file of a folder that matches ``pattern`` (import mode; ids from the file names)."""

    directory: str = Field(description="folder of reference files (e.g. an atomate2 campaign's output)", examples=["../shared/data/chalcogenides"])
    pattern: str = Field("*.yaml*", description="glob pattern of the files", examples=["*.phonopy.yaml.xz"])


#: reference-file suffixes taken from a materials directory without a glob pattern
_REFERENCE_SUFFIXES = (".yaml", ".yml", ".yaml.xz", ".yaml.bz2", ".yaml.gz", ".yaml.lzma", ".yml.xz", ".yml.bz2", ".yml.gz")


def reference_files_in(folder: str | os.PathLike, pattern: str | None = None) -> list[str]:
    """The files of ``folder`` matching the glob ``pattern``, sorted; without a pattern its phonon reference
    files (phonopy / MDR / atomate2 yaml, compressed or not)."""
    from pathlib import Path

    p = Path(folder)
    if pattern is None:
        files = (f for f in p.iterdir() if f.name.lower().endswith(_REFERENCE_SUFFIXES))
    else:
        files = p.glob(pattern)
    return [str(f) for f in sorted(files) if f.is_file()]


def expand_directories(entries: Any) -> Any:
    """Material entries with each ``{directory: DIR, pattern: GLOB}`` replaced by one import entry per
    matching file, sorted by name (``pattern`` default ``*.yaml*``)."""
    if not isinstance(entries, list):
        return entries
    from pathlib import Path

    out: list = []
    for i, e in enumerate(entries):
        if not (isinstance(e, dict) and "directory" in e):
            out.append(e)
            continue
        unknown = set(e) - {"directory", "pattern"}
        if unknown:
            raise FieldIssue(
                f"unknown key(s) {sorted(unknown)} in a directory entry", loc=(i,), expected="{directory, pattern}",
                example="{directory: ../shared/data/chalcogenides, pattern: '*.phonopy.yaml.xz'}",
            )
        folder, pattern = Path(str(e["directory"])), str(e.get("pattern") or "*.yaml*")
        if not folder.is_dir():
            raise FieldIssue(
                f"directory '{folder}' does not exist (relative paths are from the current directory)", loc=(i, "directory"),
                expected="a folder of reference files", example="directory: ../shared/data/chalcogenides",
            )
        files = reference_files_in(folder, pattern)
        if not files:
            raise FieldIssue(
                f"no file in '{folder}' matches '{pattern}'", loc=(i, "pattern"), expected="a glob pattern matching reference files",
                example="pattern: '*.phonopy.yaml.xz'",
            )
        out += files
    return out


def _material_tag(v: Any) -> str | None:
    """Which kind of material entry ``v`` is: 'compute' (has a structure) or 'import' (a path or a
    reference_file); None when it cannot be told."""
    if isinstance(v, ComputeMaterial):
        return "compute"
    if isinstance(v, (str, ImportMaterial)):
        return "import"
    if isinstance(v, dict):
        if "structure" in v:
            return "compute"
        if "reference_file" in v:
            return "import"
    return None


MaterialEntry = Annotated[
    Union[Annotated[ImportMaterial, Tag("import")], Annotated[ComputeMaterial, Tag("compute")]],
    Discriminator(
        _material_tag,
        custom_error_type="material_entry",
        custom_error_message="a material needs 'reference_file' (import mode: a path or {id, reference_file}) or 'structure' (compute mode: {id, structure, supercell_matrix})",
    ),
]


class ReferenceSpec(StrictModel):
    """Where reference phonons come from: files (``import``) or a calculator (``compute``, e.g. GPAW)."""

    mode: Literal["import", "compute"] = Field("import", description="import (reference files) | compute (a reference calculator, e.g. GPAW)")
    calculator: ModelSpec | None = Field(
        None,
        description="compute mode: the reference calculator spec",
        examples=[{"backend": "ase", "name": "GPAW-PBE", "import_path": "pftflow.calculators.gpaw_reference:make_gpaw_calculator"}],
    )
    relax: RelaxSettings | None = Field(
        None, description="compute mode: relax the cell with the reference calculator first (RelaxSettings); null = use the cell as given", examples=[{"fmax_eV_per_A": 0.005, "steps": 100}]
    )
    code: Literal["ase", "vasp"] = Field(
        "ase", description="compute mode: ase (the reference `calculator`, e.g. GPAW) | vasp (VASP through atomate2, settings in `vasp`, docs/vasp.md)"
    )
    vasp: VaspSettings | None = Field(
        None,
        description="code vasp: the VASP phonon input set (INCAR overrides, k-points or Γ-only, POTCARs) and run folder (docs/vasp.md); null = the defaults",
        examples=[{"incar": {"ENCUT": 600, "ISPIN": 1}, "reciprocal_density": 100, "potcar_functional": "PBE_54"}],
    )

    @model_validator(mode="before")
    @classmethod
    def _calculator_name(cls, v):
        if isinstance(v, dict) and isinstance(v.get("calculator"), dict) and not v["calculator"].get("name"):
            v = {**v, "calculator": {**v["calculator"], "name": "reference"}}  # the old default display name
        return v

    @model_validator(mode="after")
    def _consistent(self):
        if self.code == "vasp" or self.vasp is not None:
            self._check_vasp()
            return self
        if self.mode == "compute" and self.calculator is None:
            raise FieldIssue(
                "mode 'compute' needs a reference calculator",
                loc=("calculator",),
                expected="a calculator spec",
                example="calculator: {backend: ase, name: GPAW-PBE, import_path: pftflow.calculators.gpaw_reference:make_gpaw_calculator}",
            )
        if self.mode == "import" and (self.calculator is not None or self.relax is not None):
            key = "calculator" if self.calculator is not None else "relax"
            raise FieldIssue(
                f"'{key}' is only used with mode: compute, but mode is 'import'",
                loc=(key,),
                expected="mode: compute with a calculator, or no calculator / relax for reference files",
                example="reference: {mode: compute, calculator: {backend: ase, import_path: ase.calculators.emt:EMT}}",
            )
        return self

    def _check_vasp(self) -> None:
        """``code: vasp``: compute mode, no ASE calculator, no relaxation; ``vasp`` only with it."""
        example = "reference: {mode: compute, code: vasp, vasp: {incar: {ENCUT: 600}}}"
        if self.code != "vasp":
            raise FieldIssue("'vasp' settings are only used with code: vasp", loc=("vasp",), expected="code: vasp, or no vasp block", example=example)
        if self.mode != "compute":
            raise FieldIssue("code: vasp computes the reference: it needs mode: compute", loc=("mode",), expected="mode: compute", example=example)
        for key in ("calculator", "relax"):
            if getattr(self, key) is not None:
                raise FieldIssue(
                    f"'{key}' is not used with code: vasp (VASP computes the forces on the cell as given)",
                    loc=(key,),
                    expected=f"no '{key}' with code: vasp (give a relaxed cell), or code: ase",
                    example=example,
                )
        import importlib.util

        if importlib.util.find_spec("atomate2") is None:
            raise FieldIssue(
                "code: vasp runs VASP through atomate2, which is not installed: pip install 'pftflow[vasp]'",
                loc=("code",),
                expected="atomate2 installed, or code: ase with a calculator",
                example=example,
            )


class BenchmarkSettings(StrictModel):
    """Settings of the harmonic benchmark (phonons campaigns, and the benchmark of finetune campaigns)."""

    phonons: PhononSettings = Field(default_factory=PhononSettings, description="finite displacements and phonon analysis (PhononSettings)", examples=[{"displacement_A": 0.01, "mesh": 100.0}])
    relax: RelaxSettings = Field(default_factory=RelaxSettings.mdr, description="MLIP relaxation, MDR protocol (RelaxSettings)", examples=[{"fmax_eV_per_A": 0.001, "steps": 500}])
    relax_models: bool = Field(True, description="relax each model's cell first (false: evaluate the models on the reference cell as given)")


class PhononsSpec(CampaignBase):
    """``kind: phonons`` (docs/campaign-spec.md): models benchmarked against reference phonons."""

    kind: Literal["phonons"] = Field("phonons", description="campaign kind")
    reference: ReferenceSpec = Field(default_factory=ReferenceSpec, description="reference phonons: import (files) or compute (calculator)", examples=[{"mode": "import"}])
    materials: list[MaterialEntry] = Field(
        min_length=1,
        description="import mode: reference files (path or {id, reference_file, reference_format, force_sets, born}, or "
        "{directory, pattern} for every matching file of a folder, e.g. an atomate2 campaign's output); "
        "compute mode: {id, source, structure {cell_A, species, frac_coords}, supercell_matrix, primitive_matrix}",
        examples=[["../shared/data/mdr/mp-149.yaml.bz2"]],
    )
    models: list[ModelSpec] = Field(min_length=1, description="calculator specs, one column of the results each", examples=[[{"backend": "sevennet", "model": "7net-0", "name": "SevenNet-0"}]])
    settings: BenchmarkSettings = Field(default_factory=BenchmarkSettings, description="phonons, relax, relax_models", examples=[{"phonons": {"mesh": 100.0}}])

    @field_validator("materials", mode="before", json_schema_input_type=list[Union[str, ImportMaterial, ComputeMaterial, MaterialDirectory]])
    @classmethod
    def _materials_input(cls, v):
        return expand_directories(v)  # a material may also be the path of its reference file

    @field_validator("models", mode="before", json_schema_input_type=list[Union[str, ModelSpec]])
    @classmethod
    def _models_input(cls, v):
        return v  # schema only: a model may be written as its backend name

    @model_validator(mode="after")
    def _consistent(self):
        mode = self.reference.mode
        for i, m in enumerate(self.materials):
            if mode == "compute" and isinstance(m, ImportMaterial):
                raise FieldIssue(
                    "reference.mode is 'compute' but this entry has no 'structure'",
                    loc=("materials", i),
                    expected="{id, structure {cell_A, species, frac_coords}, supercell_matrix} for each material",
                    example=f"{{id: Si, structure: {SI_EXAMPLE}, supercell_matrix: [2, 2, 2]}}",
                )
            if mode == "import" and isinstance(m, ComputeMaterial):
                raise FieldIssue(
                    "this entry has a 'structure' but reference.mode is 'import' (the default)",
                    loc=("materials", i),
                    expected="reference files in import mode, or reference: {mode: compute, calculator: ...}",
                    example="reference: {mode: compute, calculator: {backend: ase, name: GPAW-PBE, import_path: pftflow.calculators.gpaw_reference:make_gpaw_calculator}}",
                )
        check_unique_ids(self.materials, "materials")
        check_unique_model_names(self.models)
        species = [(f"materials[{j}]", m.id, m.species()) for j, m in enumerate(self.materials)]
        if mode == "compute" and self.reference.calculator is not None:
            check_models_support([self.reference.calculator], species, ("reference", "calculator"), indexed=False)
        check_models_support(self.models, species, "models")
        return self

    @property
    def material_ids(self) -> list[str]:
        return [m.id for m in self.materials]

    @property
    def model_names(self) -> list[str]:
        return [m.name for m in self.models]
