"""``kind: dataset``: sampled structure sets labelled by a calculator, or imported labelled data.

Per compute material the supercell is chosen once (:meth:`pftflow.spec.dataset.DatasetSpec.supercells`,
before any job exists, so a cell over the atom limit warns first); every sampling set of the material is
then made on that one matrix by a :class:`DatasetMaker`::

    SamplingMaker: sampling  ->  ForceMaker (the labeller): forces  ->  labelled_set

The labeller is the phonon flows' :class:`~pftflow.flows.phonons.ForceMaker` with any calculator spec
(GPAW or any ASE calculator, an MLIP teacher; a VASP force maker fits the same field).  Imported
materials (phonopy / MDR / atomate2 displacement datasets with forces, extxyz with reference labels) are
one ``labelled_set`` job each, no calculation.

Jobs carry :class:`~pftflow.identity.ResultId` (``kind="dataset"``, ``model`` = labeller name or
``import``, ``stage`` = sampling / forces / labelled_set) plus ``set_name``, and chained content keys
(structure and supercell matrix -> sampling settings -> labeller -> labelled set), so a changed
setting re-runs the jobs from the step that uses it; stored jobs are reused job by job.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from jobflow import Flow, Job, Maker, job
from pydantic import Field

from pftflow.calculators.backends import cached_calculator
from pftflow.calculators.base import ForceResults
from pftflow.documents import LabelledSetDoc, StructureSet
from pftflow.flows import jobs
from pftflow.flows.makers import ForceMaker, _key_part, _tag, set_resources
from pftflow.flows.reuse import campaign_kind, campaign_query, latest_outputs, recorded_spec, stored_jobs
from pftflow.identity import ResultId, content_key, file_sha
from pftflow.materials.readers import read_reference
from pftflow.sampling.checks import SetChecks
from pftflow.sampling.sets import SamplingSettings, sample_set
from pftflow.serialization import Array, ArrayBlob, ArrayTree, Document, Structure, atoms_to_dict, dict_to_atoms
from pftflow.spec.phonons import ComputeMaterial

KIND = "dataset"
BLOBS = [ArrayBlob]
IMPORT_MODEL = "import"


def _atoms(structure):
    return dict_to_atoms({k: v for k, v in structure.items() if not k.startswith("@")}) if isinstance(structure, dict) else structure


# ------------------------------------------------------------------------------------ documents
class SampledSetDoc(Document):
    """A sampled (unlabelled) structure set of one material."""

    material_id: str = Field(description="material id")
    name: str = Field(description="set name")
    kind: str = Field(description="rattle | mc_rattle | rattle_relax | strain | displacements")
    unitcell: Structure = Field(description="the material's unit cell (Å)")
    supercell_matrix: Array = Field(description="(3, 3) integers, phonopy convention (the material's one matrix)")
    supercell: Structure = Field(description="the undisturbed supercell (Å)")
    structures: StructureSet = Field(description="the sampled structures (Å)")
    seeds: list[int] = Field(default_factory=list, description="per-structure seeds spawned from the set's seed (empty for displacements)")
    structure_info: list[dict[str, Any]] = Field(default_factory=list, description="per structure: seed, volume scale / strain, relaxation step, displaced atom")
    settings: dict[str, Any] = Field(description="SamplingSettings used")
    relax_calculator: dict[str, Any] | None = Field(None, description="rattle_relax: calculator provenance of the relaxation")
    checks: SetChecks = Field(description="min distance (Å), displacement statistics (Å), duplicates")
    extra: ArrayTree = Field(None, description="kind-specific: MC step (Å), phonopy displacement dataset")
    wall_time_s: float | None = Field(None, description="wall time (s)")


# ------------------------------------------------------------------------------------ jobs
@job(output_schema=SampledSetDoc, data=BLOBS)
def sample_structures(material_id: str, structure, supercell_matrix, settings: dict, relax_calculator: dict | None = None) -> SampledSetDoc:
    """A structure set of a material on its supercell (:func:`pftflow.sampling.sample_set`)."""
    s = SamplingSettings(**settings)
    unitcell = _atoms(structure)
    calc, prov = None, None
    if relax_calculator is not None:
        c = cached_calculator(relax_calculator)
        calc, prov = c.ase_calculator(), c.provenance()
    t0 = time.perf_counter()
    out = sample_set(unitcell, supercell_matrix, s, calculator=calc)
    return SampledSetDoc(
        material_id=material_id,
        name=s.name,
        kind=s.kind,
        unitcell=unitcell,
        supercell_matrix=np.asarray(out.supercell_matrix, dtype=int),
        supercell=out.supercell,
        structures=StructureSet.from_atoms(out.structures),
        seeds=out.seeds,
        structure_info=out.structure_info,
        settings=s.model_dump(mode="json"),
        relax_calculator=prov,
        checks=out.checks,
        extra=out.extra or None,
        wall_time_s=time.perf_counter() - t0,
    )


def pseudopotential_ids(provenance: dict, symbols: list[str]) -> dict[str, str] | None:
    """Pseudopotential / PAW-setup identifiers of a labeller, when they can be known: the
    calculator provenance's own ``pseudopotentials`` (e.g. a VASP labeller's POTCARs), or for GPAW
    the setup file of each element with the first 16 hex digits of its SHA-256."""
    if provenance.get("pseudopotentials"):
        return dict(provenance["pseudopotentials"])
    if "gpaw" not in str(provenance.get("import_path", "")).lower():
        return None
    try:
        import hashlib

        from gpaw.setup_data import search_for_file

        kwargs = provenance.get("kwargs") or {}
        xc, setups = kwargs.get("xc", "PBE"), kwargs.get("setups") or {}
        out = {}
        for sym in sorted(set(symbols)):
            name = setups.get(sym, "paw") if isinstance(setups, dict) else setups
            fname = f"{sym}.{xc}" if name in (None, "paw") else f"{sym}.{name}.{xc}"
            path, data = search_for_file(fname)
            out[sym] = f"{path.rsplit('/', 1)[-1]} sha256:{hashlib.sha256(data).hexdigest()[:16]}"
        return out
    except Exception:  # noqa: BLE001 - provenance only: unknown rather than failing the set
        return None


@job(output_schema=LabelledSetDoc, data=BLOBS)
def label_set(sampled: SampledSetDoc, forces: ForceResults, labeller: str) -> LabelledSetDoc:
    """The sampled set with the labeller's energies (eV), forces (eV/Å) and stresses (eV/Å³)."""
    n, nat = len(sampled.structures), len(sampled.structures.symbols)
    if forces.n_structures != n:
        raise ValueError(f"{sampled.material_id}/{sampled.name}: {forces.n_structures} force sets for {n} structures")
    prov = dict(forces.provenance or {})
    return LabelledSetDoc(
        material_id=sampled.material_id,
        name=sampled.name,
        kind=sampled.kind,
        labeller=labeller,
        structures=sampled.structures,
        energies_eV=np.asarray(forces.energies_eV, dtype=float),
        forces_eV_per_A=np.asarray(forces.forces_eV_per_A, dtype=float).reshape(n, nat, 3),
        stresses_eV_per_A3=None if forces.stresses_eV_per_A3 is None else np.asarray(forces.stresses_eV_per_A3, dtype=float),
        unitcell=sampled.unitcell,
        supercell_matrix=np.asarray(sampled.supercell_matrix, dtype=int),
        structure_info=sampled.structure_info,
        checks=sampled.checks.model_dump(mode="json"),
        provenance={
            "code": prov.get("backend"),
            "calculator": prov,
            "settings": prov.get("kwargs"),
            "pseudopotentials": pseudopotential_ids(prov, sampled.structures.symbols),
            "seed": sampled.settings.get("seed"),
            "seeds": sampled.seeds,
            "sampling": sampled.settings,
            "relax_calculator": sampled.relax_calculator,
            "labelling_wall_time_s": forces.wall_time_s,
        },
    )


def labelled_set_from_structures(structs, *, material_id: str, name: str, kind: str, labeller: str, provenance: dict, where: str) -> LabelledSetDoc:
    """A :class:`LabelledSetDoc` from :class:`pftflow.training.data.LabelledStructure` objects of one
    material (same species order in every frame; every frame with forces)."""
    if not structs:
        raise ValueError(f"{where}: no structures")
    symbols = structs[0].atoms.get_chemical_symbols()
    for k, s in enumerate(structs):
        if s.atoms.get_chemical_symbols() != symbols:
            raise ValueError(f"{where}: frame {k} has other atoms than frame 0; one file per material with the same atoms in every frame")
        if s.forces_eV_per_A is None:
            raise ValueError(f"{where}: frame {k} has no reference forces; give forces_key (e.g. forces_key: REF_forces)")
    energies = [s.energy_eV for s in structs]
    stresses = [s.stress_eV_per_A3 for s in structs]
    voigt = None
    if all(m is not None for m in stresses):
        voigt = np.array([[m[0, 0], m[1, 1], m[2, 2], m[1, 2], m[0, 2], m[0, 1]] for m in stresses], dtype=float)
    return LabelledSetDoc(
        material_id=material_id,
        name=name,
        kind=kind,
        labeller=labeller,
        structures=StructureSet.from_atoms([s.atoms for s in structs]),
        energies_eV=np.array(energies, dtype=float) if all(e is not None for e in energies) else None,
        forces_eV_per_A=np.array([s.forces_eV_per_A for s in structs], dtype=float),
        stresses_eV_per_A3=voigt,
        provenance=provenance,
    )


@job(output_schema=LabelledSetDoc, data=BLOBS)
def import_labelled_set(entry: dict) -> LabelledSetDoc:
    """A labelled set read from a reference file (phonopy / MDR / atomate2 displacements with forces)
    or an extxyz file with reference labels; no calculation."""
    from pftflow.training import data as D  # local: pftflow.training imports torch

    mid = entry["id"]
    if "extxyz" in entry:
        path = entry["extxyz"]
        structs = D.read_extxyz(path, energy_key=entry.get("energy_key", "REF_energy"), forces_key=entry.get("forces_key", "REF_forces"),
                                stress_key=entry.get("stress_key", "REF_stress"), index=entry.get("index", ":"))
        prov = {"code": "import", "source": {"path": str(path), "format": "extxyz", "sha256": file_sha(path),
                                            **{k: entry.get(k) for k in ("energy_key", "forces_key", "stress_key", "index")}}}
        return labelled_set_from_structures(structs, material_id=mid, name=IMPORT_MODEL, kind="import", labeller="import:extxyz", provenance=prov, where=str(path))

    path = entry["reference_file"]
    ref = read_reference(path, fmt=entry.get("reference_format"), material_id=mid, force_sets=entry.get("force_sets"), born=entry.get("born"))
    structs = D.from_displacements(ref, material_id=mid)
    fmt = ref.provenance.get("format", entry.get("reference_format") or "reference")
    doc = labelled_set_from_structures(structs, material_id=mid, name=IMPORT_MODEL, kind="import", labeller=f"import:{fmt}",
                                       provenance={"code": "import", "source": dict(ref.provenance)}, where=str(path))
    doc.unitcell, doc.supercell_matrix = ref.unitcell, np.asarray(ref.supercell_matrix, dtype=int)
    return doc


# ------------------------------------------------------------------------------------ makers
@dataclass
class SamplingMaker(Maker):
    """A structure set on a material's supercell (settings: :class:`pftflow.sampling.SamplingSettings`)."""

    name: str = "sampling"
    settings: dict = field(default_factory=dict)
    relax_calculator: dict | None = None  # rattle_relax only

    def make(self, material_id: str, structure, supercell_matrix) -> Job:
        j = sample_structures(material_id, structure, supercell_matrix, self.settings, self.relax_calculator)
        return set_resources(j, "cpu-heavy" if self.relax_calculator is not None else "light")


@dataclass
class DatasetMaker(Maker):
    """sampling -> forces (the labeller) -> labelled_set, for one material and one set.

    ``make(material, result_id, *, key)``: ``material`` has ``id``, ``structure`` (atoms dict) and
    ``supercell_matrix``; ``key`` is the hash of the structure and matrix, chained through the jobs.
    The flow's output is the :class:`~pftflow.documents.LabelledSetDoc`."""

    name: str = "dataset"
    labeller: str = "labeller"
    sampling_maker: SamplingMaker = field(default_factory=SamplingMaker)
    force_maker: ForceMaker | None = None

    def make(self, material: dict, result_id: ResultId, *, key: str) -> Flow:
        if self.force_maker is None:
            raise ValueError(f"{self.name}: a sampled set needs a force_maker (the labeller)")
        mid = material["id"]
        set_name = self.sampling_maker.settings.get("name") or self.sampling_maker.settings.get("kind", "set")
        rid = result_id.with_(material_id=mid, model=self.labeller)
        job_list: list[Job] = []

        def add(j: Job, stage: str, *parts: Any) -> Job:
            nonlocal key
            key = content_key(key, stage, *parts)
            j.name = f"{stage} {mid} {set_name}"
            _tag(j, rid, stage, key)
            j.metadata["set_name"] = set_name
            job_list.append(j)
            return j

        s = add(self.sampling_maker.make(mid, material["structure"], material["supercell_matrix"]), "sampling",
                self.sampling_maker.settings, self.sampling_maker.relax_calculator)
        f = add(self.force_maker.make(s.output.structures), "forces", _key_part(self.force_maker))
        lab = add(set_resources(label_set(s.output, f.output, self.labeller), "light"), "labelled_set")
        return Flow(job_list, output=lab.output, name=f"{self.name} {mid} {set_name}")


# ------------------------------------------------------------------------------------ campaign
def build_dataset(spec, store) -> tuple[Flow, dict]:
    """Flow of a dataset campaign; ``reused["sets"]``: ``material/set`` whose labelled set is stored."""
    params = jobs.record_parameters(recorded_spec(spec))
    params.metadata = ResultId(campaign=spec.name, kind=KIND, stage="parameters").metadata()
    rid = ResultId(campaign=spec.name, kind=KIND, stage="sampling")
    supercells = spec.supercells()  # warns about oversized cells before anything runs
    labeller = spec.labeller.calculator_spec() if spec.labeller is not None else None
    parts: list = []
    final_keys: list[tuple[str, str]] = []
    for mat in spec.materials:
        if isinstance(mat, ComputeMaterial):
            structure = atoms_to_dict(mat.structure.atoms())
            smat = supercells[mat.id].supercell_matrix.tolist()
            entry = {"id": mat.id, "structure": structure, "supercell_matrix": smat}
            key0 = content_key(KIND, structure, smat)
            for s in spec.sampling:
                maker = DatasetMaker(
                    labeller=spec.labeller.name,
                    sampling_maker=SamplingMaker(settings=s.settings(), relax_calculator=spec.relax_calculator(s)),
                    force_maker=ForceMaker(calculator=labeller),
                )
                flow = maker.make(entry, rid, key=key0)
                parts.append(flow)
                final_keys.append((f"{mat.id}/{s.name}", flow.jobs[-1].metadata["pftflow_key"]))
        else:
            entry = mat.entry()
            path = entry.get("extxyz") or entry.get("reference_file")
            key = content_key(KIND, "import", entry, file_sha(path), file_sha(entry.get("force_sets")))
            j = set_resources(import_labelled_set(entry), "light")
            j.name = f"labelled_set {mat.id} {IMPORT_MODEL}"
            j.metadata = {**rid.with_(material_id=mat.id, model=IMPORT_MODEL, stage="labelled_set").metadata(key), "set_name": IMPORT_MODEL}
            parts.append(j)
            final_keys.append((f"{mat.id}/{IMPORT_MODEL}", key))
    reused: dict[str, list[str]] = {"sets": []}
    if store is not None:
        done = stored_jobs(store, [k for _, k in final_keys])
        reused["sets"] = [name for name, k in final_keys if k in done]
    return Flow([params, *parts], name=f"campaign {spec.name}"), reused


def load_labelled_sets(spec, store) -> list[LabelledSetDoc]:
    """The latest labelled set per material and set of the campaign, in spec order (materials, then
    sets; sets no longer in the spec are left out)."""
    docs = latest_outputs(store, campaign_query(spec, "labelled_set"), keys=("material_id", "set_name"))
    mids = spec.material_ids
    names = [*spec.set_names, IMPORT_MODEL]
    docs = [d for d in docs if d.material_id in mids and d.name in names]
    docs.sort(key=lambda d: (mids.index(d.material_id), names.index(d.name)))
    return docs


#: table columns of ``pftflow results`` for a dataset campaign
COLUMNS = [
    ("material_id", "material", "{}"),
    ("set", "set", "{}"),
    ("labeller", "labeller", "{}"),
    ("n_structures", "n", "{}"),
    ("n_atoms", "atoms", "{}"),
    ("energy_mean_eV_per_atom", "E mean [eV/atom]", "{:.4f}"),
    ("energy_std_eV_per_atom", "E std [eV/atom]", "{:.4f}"),
    ("force_rms_eV_per_A", "F rms [eV/Å]", "{:.4f}"),
    ("force_max_eV_per_A", "|F| max [eV/Å]", "{:.4f}"),
    ("displacement_std_A", "u std [Å]", "{:.4f}"),
    ("min_distance_A", "d min [Å]", "{:.3f}"),
    ("seconds_per_structure", "s/structure", "{:.2f}"),
]


def dataset_results(spec, store) -> dict:
    """One row per material and set: counts, energy (eV/atom) and force (eV/Å) statistics, sampling
    checks and labelling time per structure; summary per material (structures in all)."""
    rows = []
    for d in load_labelled_sets(spec, store):
        checks = d.checks or {}
        wall = (d.provenance or {}).get("labelling_wall_time_s")
        rows.append({
            "material_id": d.material_id, "set": d.name, "kind": d.kind, "labeller": d.labeller, **d.statistics(),
            "displacement_std_A": checks.get("displacement_std_A"), "min_distance_A": checks.get("min_distance_A"),
            "checks_ok": checks.get("ok"), "seconds_per_structure": None if wall is None else wall / max(d.n_structures, 1),
        })
    summary = {}
    for mid in spec.material_ids:
        mine = [r for r in rows if r["material_id"] == mid]
        if mine:
            summary[mid] = {"n_sets": len(mine), "n_structures": sum(r["n_structures"] for r in mine)}
    return {"campaign": spec.name, "kind": KIND, "columns": COLUMNS, "rows": rows, "summary": summary}


CAMPAIGN_KIND = campaign_kind(KIND, build_dataset, dataset_results)
