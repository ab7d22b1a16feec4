"""Fine-tuning campaigns over material sets: ``kind: finetune_per_material`` (Equitrain protocol) and
``kind: finetune_global`` (PFT paper).  Spec: :mod:`pftflow.spec.finetune_campaigns`; docs/finetuning-campaigns.md.

Per material (built from the existing makers, nothing re-written)::

    [relax (labeller)] -> DatasetMaker: sampling -> forces (labeller) -> labelled_set        (max N + n_valid structures)
        -> per N: training_data (first N of the train pool, the same n_valid validation structures)
            -> per mode: TrainMaker: train   (scratch: from the re-initialised base, one scratch_init job)
    benchmark_flow (flows.campaigns): reference phonons (labeller, on the same cell) -> base and every fine-tuned
    model: [relax] -> displacements -> forces -> analysis -> compare
    mode_scans: energies along the imaginary modes of the reference (or the models), for the labeller and every model

Global::

    [self_distillation (frozen base model)] -> training_data (train Hessians, valid Hessians, co-training)
        -> TrainMaker: train (early stopping on the validation loss, best EMA weights) -> cotrain_eval
    benchmark_flow on the test materials (imported references): base and fine-tuned model

Every job carries :class:`~pftflow.identity.ResultId` (``kind`` = the campaign kind) and a chained content key;
the registry's job-level reuse drops stored jobs, and a training run (and the scratch model) is reused only while
its model file exists.  Model jobs carry ``mode`` and ``n_structures`` in their metadata, which the results read.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from jobflow import Flow, Job, job
from pydantic import Field

from pftflow.documents import LabelledSetDoc, PhononAnalysisDoc
from pftflow.flows.campaigns import benchmark_flow, campaign_query, find_stored, latest_outputs, recorded_spec
from pftflow.flows.dataset import DatasetMaker, SamplingMaker
from pftflow.flows.jobs import phonopy_of
from pftflow.flows.phonons import ForceMaker, RelaxMaker, set_resources
from pftflow.flows.training import ForceErrors, TrainingDataDoc, TrainingRunDoc, TrainMaker, _data_sources, build_structures
from pftflow.identity import REFERENCE_MODEL, ResultId, content_key, file_sha
from pftflow.phonons.modes import ModeScan
from pftflow.serialization import ArrayBlob, Document, atoms_to_dict
from pftflow.training.data import LabelledStructure, TrainingData

PER_MATERIAL = "finetune_per_material"
GLOBAL = "finetune_global"
BASE_MODE = "base"
SCRATCH = "scratch"
BLOBS = [ArrayBlob]


# ------------------------------------------------------------------------------------ documents
class ScratchModelDoc(Document):
    """The base model's architecture with re-initialised weights (the from-scratch baseline's start)."""

    calculator_spec: dict[str, Any] = Field(description="calculator spec of the re-initialised model file")
    path: str = Field(description="the model file")
    seed: int = Field(description="torch seed of the initialisation")
    base_model: dict[str, Any] = Field(description="calculator spec of the base model whose architecture it has")
    n_parameters: int = Field(description="parameters of the model")


class ModeScansDoc(Document):
    """Energy scans along the imaginary modes of one material (:mod:`pftflow.phonons.modes`)."""

    material_id: str = Field(description="material id")
    imaginary: dict[str, list[dict]] = Field(default_factory=dict, description="per source (reference, model): its imaginary modes at commensurate q-points")
    scans: list[ModeScan] = Field(default_factory=list, description="the scans: reference (labeller) and every model along each mode")
    note: str | None = Field(None, description="why nothing was scanned, when nothing was")
    wall_time_s: float | None = Field(None, description="wall time (s)")


class DistillationDoc(Document):
    """Self-distillation co-training data: rattled cells of other chemistries labelled by the frozen base model."""

    cotrain: list[LabelledStructure] = Field(default_factory=list, description="co-training structures (E eV, F eV/Å, σ eV/Å³ of the base model)")
    heldout: list[LabelledStructure] = Field(default_factory=list, description="held-out structures of the same kind (drift of the fine-tuned model)")
    crystals: list[str] = Field(default_factory=list, description="the crystals used (formula and lattice)")
    labeller: dict[str, Any] = Field(default_factory=dict, description="the base model's calculator spec")
    wall_time_s: float | None = Field(None, description="labelling wall time (s)")


class CotrainEvalDoc(Document):
    """Force / energy errors of the base and the fine-tuned model on data not trained on."""

    distillation_heldout: dict[str, ForceErrors | None] = Field(
        default_factory=dict, description="base / finetuned on held-out self-distillation structures (labels: the base model, so base = 0)")
    test_displacements: dict[str, ForceErrors | None] = Field(
        default_factory=dict, description="base / finetuned on the test materials' displaced supercells (reference forces, eV/Å)")


# ------------------------------------------------------------------------------------ pure helpers
def reinitialised_model(model, seed: int = 0):
    """The same architecture as ``model`` (a :class:`pftflow.calculators.energy_models.EnergyModel`) with freshly
    initialised weights (``torch.manual_seed(seed)``), built by the backend's own constructor from the
    model's configuration: MACE ``mace.tools.scripts_utils.extract_config_mace_model`` + the model class,
    SevenNet ``sevenn.model_build.build_E3_equivariant_model``.  Buffers that come from the configuration
    (atomic energies, scale / shift, cutoff) are the base model's."""
    import torch

    from pftflow.calculators.energy_models import MACEEnergyModel, SevenNetEnergyModel

    dtype = model.dtype
    old = torch.get_default_dtype()
    torch.manual_seed(int(seed))
    try:
        torch.set_default_dtype(dtype)
        if isinstance(model, MACEEnergyModel):
            from mace.tools.scripts_utils import extract_config_mace_model

            cfg = extract_config_mace_model(model.model)
            net = type(model.model)(**cfg).to(dtype=dtype, device=model.device)
            heads = list(getattr(model.model, "heads", None) or ["Default"])
            return MACEEnergyModel(net, head=heads[model.head_index], source={**model.source, "reinitialised_seed": int(seed)})
        if isinstance(model, SevenNetEnergyModel):
            from sevenn.model_build import build_E3_equivariant_model

            net = build_E3_equivariant_model(copy.deepcopy(model.config)).to(dtype=dtype, device=model.device)
            return SevenNetEnergyModel(net, model.config, source={**model.source, "reinitialised_seed": int(seed)})
    finally:
        torch.set_default_dtype(old)
    raise TypeError(f"cannot re-initialise a {type(model).__name__}")


def split_indices(n_total: int, n_valid: int, seed: int) -> tuple[list[int], list[int]]:
    """``(valid, pool)``: ``n_valid`` indices drawn with ``numpy.random.default_rng(seed)`` and the others in
    their order; the N-structure training set is ``pool[:N]``, so the N = 2 set is the first 2 of the N = 5 set."""
    if n_valid >= n_total:
        raise ValueError(f"{n_total} structures cannot give {n_valid} validation structures and a training set")
    valid = sorted(int(i) for i in np.random.default_rng(seed).choice(n_total, size=n_valid, replace=False))
    return valid, [i for i in range(n_total) if i not in set(valid)]


#: simple crystals of self-distillation (formula, ase.build.bulk structure, a in Å, c in Å or None): room-temperature
#: experimental lattice constants, rounded; the base model labels whatever cell it is given
BUILTIN_CRYSTALS: tuple[tuple[str, str, float, float | None], ...] = (
    ("Si", "diamond", 5.43, None), ("Ge", "diamond", 5.66, None), ("C", "diamond", 3.57, None),
    ("Cu", "fcc", 3.61, None), ("Al", "fcc", 4.05, None), ("Ni", "fcc", 3.52, None), ("Ag", "fcc", 4.09, None), ("Au", "fcc", 4.08, None),
    ("Pd", "fcc", 3.89, None), ("Pt", "fcc", 3.92, None), ("Pb", "fcc", 4.95, None),
    ("Fe", "bcc", 2.87, None), ("W", "bcc", 3.16, None), ("Mo", "bcc", 3.15, None), ("Cr", "bcc", 2.91, None), ("V", "bcc", 3.03, None),
    ("Nb", "bcc", 3.30, None), ("Ta", "bcc", 3.31, None), ("Li", "bcc", 3.51, None), ("Na", "bcc", 4.23, None), ("K", "bcc", 5.23, None),
    ("Mg", "hcp", 3.21, 5.21), ("Ti", "hcp", 2.95, 4.68), ("Zn", "hcp", 2.66, 4.95), ("Zr", "hcp", 3.23, 5.15),
    ("NaCl", "rocksalt", 5.64, None), ("KCl", "rocksalt", 6.29, None), ("LiF", "rocksalt", 4.03, None), ("MgO", "rocksalt", 4.21, None),
    ("CaO", "rocksalt", 4.81, None), ("PbS", "rocksalt", 5.94, None), ("PbTe", "rocksalt", 6.46, None), ("SnTe", "rocksalt", 6.32, None),
    ("GaAs", "zincblende", 5.65, None), ("ZnS", "zincblende", 5.41, None), ("ZnSe", "zincblende", 5.67, None), ("InP", "zincblende", 5.87, None),
    ("CdTe", "zincblende", 6.48, None), ("AlP", "zincblende", 5.46, None), ("SiC", "zincblende", 4.36, None), ("CuCl", "zincblende", 5.41, None),
)


def _formula(atoms) -> str:
    from pymatgen.core import Composition

    return Composition(atoms.get_chemical_formula()).reduced_formula


def builtin_crystals(supported: set[str] | frozenset[str] | None, exclude_formulas=(), *, max_crystals: int = 12, seed: int = 0) -> list:
    """Crystals of :data:`BUILTIN_CRYSTALS` made of ``supported`` elements (all when None), without the reduced
    formulas in ``exclude_formulas``; at most ``max_crystals``, chosen by a seeded permutation."""
    from ase.build import bulk
    from ase.data import chemical_symbols

    exclude = {str(f) for f in exclude_formulas}
    out = []
    for name, structure, a, c in BUILTIN_CRYSTALS:
        atoms = bulk(name, structure, a=a, c=c) if c is not None else bulk(name, structure, a=a)
        symbols = set(atoms.get_chemical_symbols())
        if supported is not None and not symbols <= set(supported):
            continue
        if _formula(atoms) in exclude or not symbols <= set(chemical_symbols):
            continue
        out.append(atoms)
    order = np.random.default_rng(seed).permutation(len(out))
    return [out[i] for i in order[:max_crystals]]


def swapped_crystals(unitcells, *, max_crystals: int = 12, seed: int = 0) -> list:
    """The ``unitcells`` with every element replaced by the next element (sorted by atomic number) of the
    elements they contain, cyclically; the cell scaled by the ratio of mean covalent radii (ase.data)."""
    from ase.data import atomic_numbers, covalent_radii

    elements = sorted({s for a in unitcells for s in a.get_chemical_symbols()}, key=lambda s: atomic_numbers[s])
    if len(elements) < 2:
        raise ValueError("self_distillation source swap needs materials with at least two elements among them; use source: builtin")
    nxt = {e: elements[(i + 1) % len(elements)] for i, e in enumerate(elements)}
    out = []
    for a in unitcells:
        b = a.copy()
        old_r = np.mean([covalent_radii[z] for z in a.numbers])
        b.set_chemical_symbols([nxt[s] for s in a.get_chemical_symbols()])
        new_r = np.mean([covalent_radii[z] for z in b.numbers])
        b.set_cell(np.asarray(a.cell[:]) * new_r / old_r, scale_atoms=True)
        out.append(b)
    order = np.random.default_rng(seed).permutation(len(out))
    return [out[i] for i in order[:max_crystals]]


def _repeat_to(atoms, min_atoms: int):
    k = 1
    while len(atoms) * k**3 < min_atoms:
        k += 1
    return atoms.repeat(k)


def distillation_structures(crystals, n: int, amplitude_A: float, min_atoms: int, seed: int) -> list:
    """``n`` rattled supercells (each crystal repeated to >= ``min_atoms``), crystal k % len(crystals) for the
    k-th structure, Gaussian rattles of ``amplitude_A`` with one spawned seed per crystal
    (:func:`pftflow.sampling.rattle.rattle`)."""
    from pftflow.sampling.rattle import rattle, structure_seeds

    if not crystals or n <= 0:
        return []
    seeds = structure_seeds(seed, len(crystals))
    per = [len(range(i, n, len(crystals))) for i in range(len(crystals))]
    sets = [rattle(_repeat_to(c, min_atoms), k, amplitude_A, s) if k else [] for c, k, s in zip(crystals, per, seeds)]
    return [sets[k % len(crystals)][k // len(crystals)] for k in range(n)]


# ------------------------------------------------------------------------------------ jobs
@job(output_schema=ScratchModelDoc)
def scratch_model_job(base_model: dict, seed: int, path: str, name: str) -> ScratchModelDoc:
    """Write the base model's architecture with re-initialised weights to ``path``."""
    from pftflow.training.export import export_model
    from pftflow.calculators.energy_models import load_energy_model

    base = load_energy_model(base_model, dtype="float64", device="cpu")
    fresh = reinitialised_model(base, seed)
    pairs = [(a, b) for a, b in zip(base.model.parameters(), fresh.model.parameters()) if a.numel() > 1]
    if pairs and all(a.shape == b.shape and bool((a == b.to(a.dtype)).all()) for a, b in pairs):
        raise ValueError(f"training.scratch_seed {seed}: the re-initialised weights equal the base model's: the base model is itself an "
                         "untrained initialisation with this seed; set another scratch_seed")
    out = export_model(fresh, path, name=name, extra={"reinitialised": {"seed": int(seed), "base_model": dict(base_model)}})
    return ScratchModelDoc(calculator_spec=out["calculator_spec"], path=out["path"], seed=int(seed), base_model=dict(base_model),
                           n_parameters=int(sum(p.numel() for p in fresh.model.parameters())))


@job(output_schema=TrainingDataDoc, data=BLOBS)
def per_material_data_job(labelled: LabelledSetDoc, n_train: int, n_valid: int, seed: int, energy_reference: dict | None = None) -> TrainingDataDoc:
    """Train / validation structures of one material and one N: the validation structures drawn with ``seed``
    (:func:`split_indices`), the first ``n_train`` of the others for training.  ``energy_reference``: a
    calculator spec (the base model) whose mean energy per atom over the whole labelled set the labels are
    shifted to (one constant per atom for the set, so forces and phonons are unchanged; it removes the offset
    between the labeller's and the model's energy zero)."""
    structs = labelled.to_labelled_structures()
    valid, pool = split_indices(len(structs), n_valid, seed)
    if n_train > len(pool):
        raise ValueError(f"{labelled.material_id}: {n_train} training structures asked, the labelled set has {len(pool)} besides the validation ones")
    shift = 0.0
    if energy_reference is not None and all(s.energy_eV is not None for s in structs):
        from pftflow.calculators.backends import cached_calculator

        res = cached_calculator(energy_reference).compute([s.atoms for s in structs], stress=False)
        shift = float(np.mean([(e - s.energy_eV) / len(s.atoms) for e, s in zip(res.energies_eV, structs)]))
        for s in structs:
            s.energy_eV = s.energy_eV + shift * len(s.atoms)
    td = TrainingData([structs[i] for i in pool[:n_train]], [structs[i] for i in valid], [])
    src = {"material_id": labelled.material_id, "set": labelled.name, "labeller": labelled.labeller, "energy_shift_eV_per_atom": shift}
    return TrainingDataDoc.of(td, {"train": [{**src, "indices": pool[:n_train]}], "valid": [{**src, "indices": valid}]})


@job(output_schema=ModeScansDoc, data=BLOBS)
def mode_scans_job(material_id: str, reference: PhononAnalysisDoc, models: dict, calculators: dict, settings: dict) -> ModeScansDoc:
    """Scan the imaginary modes of ``reference`` (or, when it has none, the most negative modes of the
    ``models``' analyses) with every calculator (``calculators``: name -> spec; ``reference`` = the labeller);
    scans are on the reference cell (a model's mode pattern is put on the reference supercell: same atom order)."""
    from pftflow.calculators.backends import cached_calculator
    from pftflow.phonons.modes import default_amplitudes, imaginary_modes, scan_mode

    t0 = time.perf_counter()
    s = dict(settings)
    thr, max_modes = s.get("threshold_THz", -0.1), s.get("max_modes", 2)
    out = ModeScansDoc(material_id=material_id)
    if reference is None or reference.failed or reference.force_constants_eV_per_A2 is None:
        out.note = "no reference phonons"
        return out
    ref_ph = phonopy_of(reference)
    candidates = []
    ref_modes = imaginary_modes(ref_ph, thr, max_modes=max_modes)
    out.imaginary[REFERENCE_MODEL] = [m.model_dump() for m in ref_modes]
    candidates += [(REFERENCE_MODEL, ref_ph, m) for m in ref_modes]
    for name, doc in (models or {}).items():
        if doc is None or doc.failed or doc.force_constants_eV_per_A2 is None:
            continue
        ph = phonopy_of(doc)
        if len(ph.supercell) != len(ref_ph.supercell):
            continue
        mine = imaginary_modes(ph, thr, max_modes=max_modes)
        out.imaginary[name] = [m.model_dump() for m in mine]
        if not ref_modes:
            candidates += [(name, ph, m) for m in mine]
    if not candidates:
        out.note = f"no mode below {thr} THz at the commensurate q-points of the reference or the models"
        out.wall_time_s = time.perf_counter() - t0
        return out
    candidates.sort(key=lambda c: c[2].frequency_THz)
    calcs = {name: cached_calculator(spec) for name, spec in calculators.items()}
    q = default_amplitudes(s.get("q_max_amu05_A", 4.0), s.get("n_points", 13))
    for source, ph, mode in candidates[:max_modes]:
        scan = scan_mode(ph, mode, calcs, q, material_id=material_id, source=source, relax=s.get("relax", True), relax_steps=s.get("relax_steps", 200),
                         fmax_eV_per_A=s.get("fmax_eV_per_A", 1e-3), symprec=s.get("symprec", 1e-3),
                         supercell_from=None if source == REFERENCE_MODEL else ref_ph)
        out.scans.append(scan)
    out.wall_time_s = time.perf_counter() - t0
    return out


@job(output_schema=DistillationDoc, data=BLOBS)
def self_distillation_job(base_model: dict, crystals: list, settings: dict) -> DistillationDoc:
    """Rattled supercells of ``crystals`` (atoms dicts) labelled by the frozen base model: ``n_structures``
    for co-training and ``n_eval`` held out (another seed stream: changing one count keeps the other set)."""
    from pftflow.calculators.backends import cached_calculator
    from pftflow.serialization import dict_to_atoms

    cells = [dict_to_atoms({k: v for k, v in c.items() if not k.startswith("@")}) if isinstance(c, dict) else c for c in crystals]
    s = dict(settings)
    amp, min_atoms, seed = s.get("amplitude_A", 0.05), s.get("min_atoms", 16), s.get("seed", 0)
    cot = distillation_structures(cells, s.get("n_structures", 24), amp, min_atoms, seed)
    held = distillation_structures(cells, s.get("n_eval", 0), amp, min_atoms, seed + 1_000_003)
    calc = cached_calculator(base_model)
    t0 = time.perf_counter()

    def label(structs):
        if not structs:
            return []
        res = calc.compute(structs, stress=True)
        return [
            LabelledStructure(a, float(res.energies_eV[k]), np.asarray(res.forces_eV_per_A[k]),
                              None if res.stresses_eV_per_A3 is None else np.asarray(res.stresses_eV_per_A3[k]),
                              material_id=_formula(a), kind="distilled")
            for k, a in enumerate(structs)
        ]

    out = DistillationDoc(cotrain=label(cot), heldout=label(held), labeller=dict(base_model))
    out.crystals = [f"{_formula(c)} a={np.linalg.norm(c.cell[0]):.3f} Å ({len(c)} atoms/cell)" for c in cells]
    out.wall_time_s = time.perf_counter() - t0
    return out


@job(output_schema=TrainingDataDoc, data=BLOBS)
def global_training_data_job(train: list[dict], valid: list[dict], cotrain: list[dict], distilled: DistillationDoc | None = None) -> TrainingDataDoc:
    """Training data of the global protocol: source entries (:func:`pftflow.flows.training.build_structures`)
    plus the self-distillation co-training structures."""
    extra = list(distilled.cotrain) if distilled is not None else []
    td = TrainingData(build_structures(train), build_structures(valid), build_structures(cotrain) + extra)
    src = {"train": list(train), "valid": list(valid), "cotrain": list(cotrain) + ([{"type": "self_distillation", "n": len(extra)}] if extra else [])}
    return TrainingDataDoc.of(td, src)


@job(output_schema=CotrainEvalDoc)
def cotrain_eval_job(base_model: dict, finetuned: dict, distilled: DistillationDoc | None, test_sources: list[dict]) -> CotrainEvalDoc:
    """Force / energy MAE of base and fine-tuned model on the held-out self-distillation structures (labels:
    the base model) and on the test materials' displaced supercells (reference forces)."""
    from pftflow.training.evaluate import force_errors

    out = CotrainEvalDoc()
    if distilled is not None and distilled.heldout:
        out.distillation_heldout = {k: ForceErrors.of(force_errors(m, distilled.heldout)) for k, m in (("base", base_model), ("finetuned", finetuned))}
    test = build_structures(test_sources) if test_sources else []
    if test:
        out.test_displacements = {k: ForceErrors.of(force_errors(m, test)) for k, m in (("base", base_model), ("finetuned", finetuned))}
    return out


# ------------------------------------------------------------------------------------ builder helpers
class _Structure:
    """What ``flows.campaigns.benchmark_flow`` asks of a material's structure: ``atoms()`` (Atoms or a job output)."""

    def __init__(self, value):
        self._value = value

    def atoms(self):
        return self._value


@dataclass
class _Cell:
    """A compute material for :func:`pftflow.flows.campaigns.benchmark_flow` whose cell may be a job's output
    (the cell relaxed by the labeller): ``entry()`` holds what identifies it in content keys."""

    id: str
    structure: _Structure
    key: dict

    def entry(self) -> dict:
        return dict(self.key)


def _material_cell(m) -> tuple[Any, list, list | None]:
    """(unit cell Atoms, supercell matrix 3x3, primitive matrix or None) of a compute or import material."""
    if hasattr(m, "structure"):
        return m.structure.atoms(), np.asarray(m.supercell_matrix, dtype=int).tolist(), m.primitive_matrix
    from pftflow.materials.readers import read_reference

    ref = read_reference(m.reference_file, fmt=m.reference_format, material_id=m.id, force_sets=m.force_sets, born=m.born)
    pm = None if ref.primitive_matrix is None else np.asarray(ref.primitive_matrix, dtype=float).tolist()
    return ref.unitcell.copy(), np.asarray(ref.supercell_matrix, dtype=int).tolist(), pm


def _all_jobs(items) -> list[Job]:
    out: list[Job] = []
    for it in items:
        out.extend(_all_jobs(it.jobs) if isinstance(it, Flow) else [it])
    return out


def _tag_models(parts, tags: dict[str, dict]) -> None:
    """Add ``tags[model]`` (mode, n_structures) to the metadata of every job of that model."""
    for j in _all_jobs(parts):
        extra = tags.get((j.metadata or {}).get("model"))
        if extra:
            j.metadata.update(extra)


def _params_job(spec, kind: str) -> Job:
    from pftflow.flows import jobs

    params = jobs.record_parameters(recorded_spec(spec))
    params.name = f"parameters {spec.name}"
    params.metadata = ResultId(campaign=spec.name, kind=kind, stage="parameters").metadata()
    return set_resources(params, "light")


def _stored_training(store, key: str):
    """A stored TrainingRunDoc under ``key`` whose exported model file still exists, else None."""
    stored = find_stored(store, key)
    if isinstance(stored, TrainingRunDoc) and Path(stored.exported_model_path).is_file():
        return stored
    return None


def _make_train(maker: TrainMaker, data, start) -> Job:
    """``maker.make(data, start)``; ``start`` may be a job's output (the re-initialised model's calculator
    spec), which ``TrainMaker.make`` cannot copy into a dict: the same job, tags and resources then."""
    from jobflow import OutputReference

    from pftflow.flows.training import train_job

    if not isinstance(start, OutputReference):
        return maker.make(data, start)
    j = train_job(data, start, dict(maker.config), maker.run_dir, maker.export_name, maker.evaluate_cotrain)
    j.name = maker.name
    set_resources(j, "gpu")
    if maker.fworker:
        j.config.manager_config = {**j.config.manager_config, "_fworker": maker.fworker}
    return j


# ------------------------------------------------------------------------------------ per material
def build_per_material(spec, store) -> tuple[Flow, dict]:
    """Flow of a ``finetune_per_material`` campaign and what was reused (``train``: fine-tuned models whose
    stored run and model file exist; ``reference`` / ``model`` from the benchmark)."""
    from pftflow.spec.phonons import ReferenceSpec

    kind, name, tr = PER_MATERIAL, spec.name, spec.training
    labeller = spec.labeller.calculator_spec()
    base = tr.base_model.calculator_spec()
    base_name = tr.base_model.name
    rid = ResultId(campaign=name, kind=kind, stage="parameters")
    reused: dict[str, list[str]] = {"train": [], "reference": [], "model": []}
    parts: list = [_params_job(spec, kind)]

    # the scratch baseline's starting model: one per campaign
    scratch_calc, scratch_key = None, None
    if any(m.mode == SCRATCH for m in tr.modes):
        scratch_key = content_key("scratch_init", base, tr.scratch_seed)
        stored = find_stored(store, scratch_key)
        if isinstance(stored, ScratchModelDoc) and Path(stored.path).is_file():
            scratch_calc = stored.calculator_spec
        else:
            suffix = ".model" if base["backend"] == "mace" else ".pth"
            path = str(Path(tr.run_dir).expanduser().resolve() / f"{base_name}-scratch-{scratch_key[:12]}{suffix}")
            sj = set_resources(scratch_model_job(base, tr.scratch_seed, path, f"{base_name}-scratch"), "light")
            sj.name = f"scratch_init {base_name}"
            sj.metadata = rid.with_(model=f"{base_name}-scratch", stage="scratch_init").metadata(scratch_key)
            parts.append(sj)
            scratch_calc = sj.output.calculator_spec

    reference = ReferenceSpec(mode="compute", calculator=spec.labeller.model_dump(exclude_none=True))
    n_total = tr.n_labelled
    for mat in spec.materials:
        mid = mat.id
        atoms, smat, pmat = _material_cell(mat)
        key_structure: Any = atoms_to_dict(atoms)
        structure: Any = atoms
        if spec.reference.relax is not None:
            relax_settings = spec.reference.relax.model_dump()
            rkey = content_key("reference", "relax", labeller, key_structure, relax_settings)
            rj = RelaxMaker(calculator=labeller, settings=relax_settings).make(atoms)
            rj.name = f"relax {mid} {REFERENCE_MODEL}"
            rj.metadata = rid.with_(material_id=mid, model=REFERENCE_MODEL, stage="relax").metadata(rkey)
            parts.append(rj)
            structure, key_structure = rj.output.structure, {"relaxed_by": spec.labeller.name, "key": rkey}
        # labelled structures: max N + n_valid rattled supercells of the (relaxed) cell, by the labeller
        cell_key = content_key(kind, "cell", key_structure, smat)
        dmaker = DatasetMaker(
            labeller=spec.labeller.name,
            sampling_maker=SamplingMaker(settings=spec.sampling.settings_for(n_total), relax_calculator=(spec.sampling.relax_calculator.calculator_spec()
                                         if spec.sampling.relax_calculator is not None else labeller) if spec.sampling.kind == "rattle_relax" else None),
            force_maker=ForceMaker(calculator=labeller),
        )
        dflow = dmaker.make({"id": mid, "structure": structure, "supercell_matrix": smat}, rid, key=cell_key)
        parts.append(dflow)
        lab_key = dflow.jobs[-1].metadata["pftflow_key"]

        models: list[tuple] = [(base, base_name, base)]
        tags: dict[str, dict] = {base_name: {"mode": BASE_MODE, "n_structures": 0}}
        for n in tr.n_structures:
            data_key = content_key(lab_key, "training_data", n, tr.valid.n_valid, tr.valid.seed, base)
            data_job = set_resources(per_material_data_job(dflow.output, n, tr.valid.n_valid, tr.valid.seed, base), "light")
            data_job.name = f"training_data {mid} N{n}"
            data_job.metadata = rid.with_(material_id=mid, stage="training_data").metadata(data_key, n_structures=n)
            data_used = False
            for m in tr.modes:
                mname = tr.model_name(m, n)
                cfg = tr.mode_config(m)
                start, start_key = (scratch_calc, {"scratch": scratch_key}) if m.mode == SCRATCH else (base, base)
                train_key = content_key(data_key, "train", start_key, cfg, mname, tr.run_dir)
                stored = _stored_training(store, train_key)
                if stored is not None:
                    reused["train"].append(f"{mid}/{mname}")
                    calc = stored.calculator_spec
                else:
                    maker = TrainMaker(name=f"train {mid} {mname}", config=cfg, run_dir=tr.run_dir, export_name=mname, fworker=tr.fworker,
                                       evaluate_cotrain=False)
                    tj = _make_train(maker, data_job.output, start)
                    tj.metadata = {**(tj.metadata or {}), **rid.with_(material_id=mid, model=mname, stage="train").metadata(train_key)}
                    parts.append(tj)
                    data_used = True
                    calc = tj.output.calculator_spec
                models.append((calc, mname, {"trained": train_key}))
                tags[mname] = {"mode": m.name, "n_structures": n, "finetune_mode": m.mode}
            if data_used:
                parts.append(data_job)
        material = _Cell(mid, _Structure(structure), {"id": mid, "structure": key_structure, "supercell_matrix": smat,
                                                      **({"primitive_matrix": pmat} if pmat is not None else {})})
        bparts, more = benchmark_flow(name, kind, reference, [material], models, spec.settings, store)
        _tag_models(bparts, tags)
        reused["reference"] += more["reference"]
        reused["model"] += more["model"]
        parts += bparts
        if spec.mode_scans.enabled:
            ref_flow, model_flows = bparts[0], bparts[1:]
            analyses = {mname: mf.jobs[0].output for (_, mname, _), mf in zip(models, model_flows)}
            calcs = {REFERENCE_MODEL: labeller, **{mname: calc for calc, mname, _ in models}}
            scan_settings = spec.mode_scans.model_dump(exclude={"enabled"})
            keys = [ref_flow.jobs[-1].metadata["pftflow_key"]] + [mf.jobs[0].jobs[-1].metadata["pftflow_key"] for mf in model_flows]
            scan_key = content_key("mode_scans", keys, labeller, [k for _, _, k in models], scan_settings)
            sj = set_resources(mode_scans_job(mid, ref_flow.output, analyses, calcs, scan_settings), "cpu-heavy")
            sj.name = f"mode_scans {mid}"
            sj.metadata = rid.with_(material_id=mid, stage="mode_scans").metadata(scan_key)
            parts.append(sj)
    return Flow(parts, name=f"{kind} {name}"), reused


def _raw_names(spec) -> tuple[list[str], list[str]]:
    """(mode names, material ids) in spec order, from the spec's raw dict (no validation: the results of a
    stored campaign read it too)."""
    raw = spec.raw if isinstance(getattr(spec, "raw", None), dict) else {}
    modes = []
    for m in (raw.get("training") or {}).get("modes") or []:
        m = {"mode": m} if isinstance(m, str) else dict(m)
        modes.append(m.get("name") or (f"lora-r{m['lora_rank']}" if m.get("mode") == "lora" and m.get("lora_rank") else m.get("mode")))
    return modes, list(getattr(spec, "material_ids", []) or [])


#: columns of ``pftflow results`` for the per-material kind
PER_MATERIAL_COLUMNS = [
    ("material_id", "material", "{}"),
    ("mode", "mode", "{}"),
    ("n_structures", "N", "{}"),
    ("model", "model", "{}"),
    ("omega_max_abs_error_K", "|Δω_max| [K]", "{:.1f}"),
    ("entropy_error_300K_J_per_K_mol", "ΔS300 [J/K/mol]", "{:+.2f}"),
    ("free_energy_error_300K_kJ_per_mol", "ΔF300 [kJ/mol]", "{:+.3f}"),
    ("heat_capacity_error_300K_J_per_K_mol", "ΔCv300 [J/K/mol]", "{:+.3f}"),
    ("mesh_mae_THz", "BZ MAE [THz]", "{:.3f}"),
    ("mesh_mae_reduction", "BZ MAE red.", "{:+.0%}"),
    ("stable", "stable", "{}"),
    ("stable_ref", "stable ref", "{}"),
    ("status", "status", "{}"),
    ("error", "reason", "{:.60}"),
]


def _train_summary(doc) -> dict | None:
    if doc is None:
        return None
    d = doc.model_dump() if hasattr(doc, "model_dump") else dict(doc)
    hist = d.get("history") or []
    epochs = (d.get("config") or {}).get("epochs")
    return {
        "model": d.get("model"), "exported_model_path": d.get("exported_model_path"), "best_epoch": d.get("best_epoch"),
        "best_valid_loss": d.get("best_valid_loss"), "epochs_run": len(hist), "epochs": epochs,
        "stopped_early": epochs is not None and len(hist) < epochs,
        "valid_loss_before": (d.get("valid_before") or {}).get("loss"),
        "valid_loss": [h.get("valid", {}).get("loss") for h in hist], "wall_time_s": d.get("wall_time_s"),
        "resumed_from_epoch": d.get("resumed_from_epoch"), "continued_from": d.get("continued_from"),
        "n_trainable": (d.get("finetune_report") or {}).get("n_trainable"), "finetune_mode": (d.get("finetune_report") or {}).get("mode"),
        "counts": d.get("counts"), "cotrain_errors": d.get("cotrain_errors"), "provenance_sha256": (d.get("provenance") or {}).get("sha256"),
    }


def per_material_results(spec, store) -> dict:
    """Rows per material × model (base, then mode × N in spec order) with the MDR metrics, ``mode``,
    ``n_structures`` (0 for the base model) and the change against the base model on the same material
    (``mesh_mae_THz_base``, ``mesh_mae_reduction`` = 1 − after / before); ``summary`` per model (MDR MAEs over
    materials); ``error_vs_n`` points (mode, N, mean errors over materials; the base model at N = 0 in every
    mode but scratch); ``train`` per material and model; ``mode_scans`` per material; ``reference_protocol``."""
    from pftflow.phonons.metrics import summarize

    name = spec.name
    mode_order, mat_order = _raw_names(spec)
    cmp_ = latest_outputs(store, campaign_query(spec, "compare", **{"metadata.kind": PER_MATERIAL}), with_metadata=True)
    rows = []
    for meta, doc in cmp_:
        if not hasattr(doc, "row"):
            continue
        mode = meta.get("mode") or BASE_MODE
        r = {"material_id": doc.material_id, "model": doc.model, "mode": mode, "n_structures": int(meta.get("n_structures") or 0),
             "finetune_mode": meta.get("finetune_mode", BASE_MODE if mode == BASE_MODE else None)}
        r.update(doc.row())
        r["status"] = "failed" if r.get("failed") else "ok"
        r["strategy"], r["n_train_structures"] = r["mode"], r["n_structures"]
        rows.append(r)
    rows += _not_done(spec, store, rows, mat_order)
    base = {r["material_id"]: r for r in rows if r["mode"] == BASE_MODE}
    for r in rows:
        b = base.get(r["material_id"])
        for key in ("mesh_mae_THz", "omega_max_abs_error_K", "entropy_abs_error_300K_J_per_K_mol"):
            bv, v = (b or {}).get(key), r.get(key)
            r[f"{key}_base"] = bv
            if key == "mesh_mae_THz":
                r["mesh_mae_reduction"] = (1.0 - v / bv) if (v is not None and bv not in (None, 0)) else None

    def order(r):
        m = r["mode"]
        mi = -1 if m == BASE_MODE else (mode_order.index(m) if m in mode_order else len(mode_order))
        return (mat_order.index(r["material_id"]) if r["material_id"] in mat_order else len(mat_order), mi, r["n_structures"], r["model"])

    rows.sort(key=order)
    summary: dict[str, dict] = {}
    for r in (r for r in rows if r.get("status") != "missing"):
        summary.setdefault(r["model"], {"mode": r["mode"], "n_structures": r["n_structures"], "_rows": []})["_rows"].append(r)
    for model, s in summary.items():
        s.update(summarize(s.pop("_rows")))
    points = []
    for model, s in summary.items():
        if s["mode"] == BASE_MODE:
            continue
        points.append({"series": s["mode"], "n": s["n_structures"], "model": model, "mesh_mae_THz": s.get("mesh_mae_THz"),
                       "omega_max_mae_K": s.get("omega_max_mae_K"), "entropy_mae_300K_J_per_K_mol": s.get("entropy_mae_300K_J_per_K_mol")})
    base_s = next((s for s in summary.values() if s["mode"] == BASE_MODE), None)
    scratch = {r["mode"] for r in rows if r.get("finetune_mode") == SCRATCH}  # N = 0 of scratch is no trained model at all
    if base_s is not None:
        for series in (s for s in dict.fromkeys(p["series"] for p in points) if s not in scratch):
            points.append({"series": series, "n": 0, "model": "base", "mesh_mae_THz": base_s.get("mesh_mae_THz"),
                           "omega_max_mae_K": base_s.get("omega_max_mae_K"), "entropy_mae_300K_J_per_K_mol": base_s.get("entropy_mae_300K_J_per_K_mol")})
    points.sort(key=lambda p: (mode_order.index(p["series"]) if p["series"] in mode_order else len(mode_order), p["n"]))
    train = {f"{m.get('material_id')}/{m.get('model')}": _train_summary(d)
             for m, d in latest_outputs(store, campaign_query(spec, "train", **{"metadata.kind": PER_MATERIAL}), with_metadata=True)}
    scans = {}
    for meta, d in latest_outputs(store, campaign_query(spec, "mode_scans", **{"metadata.kind": PER_MATERIAL}), keys=("material_id",), with_metadata=True):
        if isinstance(d, ModeScansDoc):
            scans[d.material_id] = {"imaginary": d.imaginary, "note": d.note, "curves": [row for s in d.scans for row in s.summary()]}
    raw = spec.raw if isinstance(getattr(spec, "raw", None), dict) else {}
    protocol = getattr(spec, "reference_protocol", None) or _protocol_of(raw)
    return {"campaign": name, "kind": PER_MATERIAL, "columns": PER_MATERIAL_COLUMNS, "reference_protocol": protocol, "rows": rows,
            "summary": summary, "error_vs_n": points, "train": train, "mode_scans": scans}


def _model_tags(spec) -> dict[str, tuple]:
    """``{model: (mode, n_structures, finetune_mode)}`` of a validated spec (empty for a campaign read from a store)."""
    tr = getattr(spec, "training", None)
    if tr is None or not hasattr(tr, "base_model"):
        return {}
    out = {tr.base_model.name: (BASE_MODE, 0, BASE_MODE)}
    if hasattr(tr, "modes"):
        out.update({tr.model_name(m, n): (m.name, n, m.mode) for m in tr.modes for n in tr.n_structures})
    else:
        mode = tr.config.finetune.mode
        out[tr.export_name] = (mode, len(spec.roles["train"]), mode)
    return out


def _not_done(spec, store, rows: list[dict], material_ids: list[str]) -> list[dict]:
    """Rows of material × model pairs of the spec without a comparison: ``status`` failed (with the reason of
    the failed job) or missing (not run yet), as the phonons results give them."""
    from pftflow.flows.campaigns import pair_status

    tags = _model_tags(spec)
    if not tags or not material_ids:
        return []
    done = {(r["material_id"], r["model"]) for r in rows}
    out = []
    for r in pair_status(spec.name, store, [(m, mod) for m in material_ids for mod in tags], done).values():
        mode, n, fm = tags[r["model"]]
        out.append({**r, "mode": mode, "n_structures": n, "finetune_mode": fm, "strategy": mode, "n_train_structures": n})
    return out


def _protocol_of(raw: dict) -> str:
    relaxed = (raw.get("reference") or {}).get("relax", {}) is not None
    models = ((raw.get("settings") or {}).get("relax_models", True))
    return ("reference relaxed with its own calculator (the labeller)" if relaxed else "reference on the cell as given") + "; " + (
        "models relaxed with their own calculator first (MDR)" if models else "models evaluated on the reference cell")


def per_material_plots(spec, store, out_dir) -> list:
    """PNGs: per material the band overlay of the reference, the base model and the largest-N model of every
    mode; the error-vs-N curves per mode (BZ MAE, |Δω_max|; mean over materials); the mode scans."""
    from pftflow.phonons.modes import plot_mode_scans
    from pftflow.phonons.plotting import plot_band_overlay, plot_error_vs_n

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    res = per_material_results(spec, store)
    paths = []
    largest: dict[str, tuple[int, str]] = {}
    for r in res["rows"]:
        if r["mode"] != BASE_MODE and r["n_structures"] >= largest.get(r["mode"], (-1, ""))[0]:
            largest[r["mode"]] = (r["n_structures"], r["model"])
    keep = {r["model"] for r in res["rows"] if r["mode"] == BASE_MODE} | {m for _, m in largest.values()}
    analyses = [a for a in latest_outputs(store, campaign_query(spec, "analysis")) if not a.failed]
    for mid in dict.fromkeys(r["material_id"] for r in res["rows"]):
        ref = [a for a in analyses if a.material_id == mid and a.model == REFERENCE_MODEL]
        models = {a.model: a.result for a in analyses if a.material_id == mid and a.model in keep}
        if ref:
            paths.append(plot_band_overlay(ref[-1].result, models, out_dir / f"{mid}_bands.png", title=f"{mid}: reference ({spec.name}) vs base and fine-tuned"))
    pts = [p for p in res["error_vs_n"] if p.get("mesh_mae_THz") is not None]
    if len({p["n"] for p in pts}) >= 2:
        paths.append(plot_error_vs_n(pts, out_dir / "error_vs_n.png", [("mesh_mae_THz", "BZ MAE (THz)"), ("omega_max_mae_K", "|Δω_max| MAE (K)")],
                                     title=f"{spec.name}: error vs number of structures"))
    for meta, d in latest_outputs(store, campaign_query(spec, "mode_scans", **{"metadata.kind": PER_MATERIAL}), keys=("material_id",), with_metadata=True):
        if isinstance(d, ModeScansDoc) and d.scans:
            paths.append(plot_mode_scans(d.scans, out_dir / f"{d.material_id}_mode_scans.png", title=f"{d.material_id}: energy along imaginary modes"))
    return paths


# ------------------------------------------------------------------------------------ global
def distillation_crystals(spec) -> list:
    """The self-distillation crystals of a global spec (chosen when the flow is built, from the spec alone)."""
    from pftflow.materials.readers import read_reference
    from pftflow.spec.common import model_species

    sd = spec.training.data.self_distillation
    if sd.source == "swap":
        cells = [read_reference(m.reference_file, fmt=m.reference_format, material_id=m.id).unitcell for m in spec.role_materials("train")]
        return swapped_crystals(cells, max_crystals=sd.max_crystals, seed=sd.seed)
    supported = model_species(spec.training.base_model)
    formulas = set()
    for m in spec.materials:
        formulas.add(_formula(read_reference(m.reference_file, fmt=m.reference_format, material_id=m.id).unitcell))
    return builtin_crystals(supported, formulas, max_crystals=sd.max_crystals, seed=sd.seed)


def build_global(spec, store) -> tuple[Flow, dict]:
    """Flow of a ``finetune_global`` campaign and what was reused."""
    from pftflow.spec.phonons import ReferenceSpec

    kind, name, tr = GLOBAL, spec.name, spec.training
    base, base_name, ft_name = tr.base_model.calculator_spec(), tr.base_model.name, tr.export_name
    rid = ResultId(campaign=name, kind=kind, stage="parameters")
    reused: dict[str, list[str]] = {"train": [], "reference": [], "model": []}
    parts: list = [_params_job(spec, kind)]
    train_m, valid_m, test_m = (spec.role_materials(r) for r in ("train", "valid", "test"))
    sources = {
        "train": _data_sources(train_m, phonon=tr.data.phonon_references, displacements=not tr.data.phonon_references),
        "valid": _data_sources(valid_m),
        "cotrain": (_data_sources(train_m, phonon=False, displacements=True) if tr.data.cotrain_displacements else [])
        + [{"type": "extxyz", **x.model_dump()} for x in tr.data.cotrain_extxyz],
    }
    files = sorted({s[k] for split in sources.values() for s in split for k in ("path", "force_sets", "born") if s.get(k)})
    distill_out, distill_key = None, None
    if tr.data.distill:
        sd = tr.data.self_distillation
        crystals = [atoms_to_dict(c) for c in distillation_crystals(spec)]
        if not crystals:
            raise ValueError(f"{name}: training.data.self_distillation: no built-in crystal of elements {base_name} supports outside the campaign's "
                             "compositions; use source: swap, or give cotrain_extxyz")
        dset = sd.model_dump(exclude={"enabled", "source", "max_crystals"})
        distill_key = content_key("self_distillation", base, crystals, dset)
        dj = set_resources(self_distillation_job(base, crystals, dset), "cpu-heavy")
        dj.name = f"self_distillation {name}"
        dj.metadata = rid.with_(model=base_name, stage="self_distillation").metadata(distill_key)
        parts.append(dj)
        distill_out = dj.output
    data_key = content_key("training_data", sources, {f: file_sha(f) for f in files}, distill_key)
    config = tr.config.as_dict()
    train_key = content_key(data_key, "train", base, config, ft_name, tr.run_dir)
    stored = _stored_training(store, train_key)
    if stored is not None:
        reused["train"].append(ft_name)
        ft_calc = stored.calculator_spec
    else:
        dj = set_resources(global_training_data_job(sources["train"], sources["valid"], sources["cotrain"], distill_out), "light")
        dj.name = f"training_data {name}"
        dj.metadata = rid.with_(stage="training_data").metadata(data_key)
        tj = TrainMaker(name=f"train {ft_name}", config=config, run_dir=tr.run_dir, export_name=ft_name, fworker=tr.fworker).make(dj.output, base)
        tj.metadata = {**(tj.metadata or {}), **rid.with_(model=ft_name, stage="train").metadata(train_key)}
        parts += [dj, tj]
        ft_calc = tj.output.calculator_spec
    test_src = _data_sources(test_m, phonon=False, displacements=True)
    ej = set_resources(cotrain_eval_job(base, ft_calc, distill_out, test_src), "cpu-heavy")
    ej.name = f"cotrain_eval {name}"
    ej.metadata = rid.with_(model=ft_name, stage="cotrain_eval").metadata(content_key(train_key, "cotrain_eval", distill_key, test_src,
                                                                                         {s["path"]: file_sha(s["path"]) for s in test_src}))
    parts.append(ej)
    mode = tr.config.finetune.mode
    models = [(base, base_name, base), (ft_calc, ft_name, {"trained": train_key})]
    bparts, more = benchmark_flow(name, kind, ReferenceSpec(mode="import"), test_m, models, spec.settings, store)
    _tag_models(bparts, {base_name: {"mode": BASE_MODE, "n_structures": 0},
                         ft_name: {"mode": mode, "n_structures": len(train_m), "finetune_mode": mode}})
    reused["reference"] += more["reference"]
    reused["model"] += more["model"]
    parts += bparts
    return Flow(parts, name=f"{kind} {name}"), reused


def _baselines(spec) -> dict[str, dict]:
    """Per material id, the published baseline columns of an ``index.csv`` next to the reference files
    (the chalcogenide set's MACE-MP-0b3 BZ / band-path MAE in THz)."""
    import csv

    folder = getattr(spec, "materials_dir", None)
    if folder is None:
        raw = spec.raw if isinstance(getattr(spec, "raw", None), dict) else {}
        mats = raw.get("materials")
        folder = Path(mats) if isinstance(mats, str) and Path(mats).is_dir() else None
    idx = None if folder is None else Path(folder) / "index.csv"
    if idx is None or not idx.is_file():
        return {}
    out = {}
    for r in csv.DictReader(idx.read_text().splitlines()):
        mid = r.get("mp_id") or r.get("material_id") or r.get("id")
        vals = {k: float(v) for k, v in r.items() if k.startswith("mace_mp0b3") and k.endswith("_THz") and v not in (None, "")}
        if mid and vals:
            out[mid] = vals
    return out


#: summary quantities whose relative change (after / before − 1) the global results report
CHANGE_KEYS = ("omega_max_mae_K", "entropy_mae_300K_J_per_K_mol", "free_energy_mae_300K_kJ_per_mol", "heat_capacity_mae_300K_J_per_K_mol", "mesh_mae_THz")

GLOBAL_COLUMNS = [
    ("material_id", "material", "{}"),
    ("model", "model", "{}"),
    ("mode", "mode", "{}"),
    ("omega_max_abs_error_K", "|Δω_max| [K]", "{:.1f}"),
    ("entropy_error_300K_J_per_K_mol", "ΔS300 [J/K/mol]", "{:+.2f}"),
    ("free_energy_error_300K_kJ_per_mol", "ΔF300 [kJ/mol]", "{:+.3f}"),
    ("heat_capacity_error_300K_J_per_K_mol", "ΔCv300 [J/K/mol]", "{:+.3f}"),
    ("mesh_mae_THz", "BZ MAE [THz]", "{:.3f}"),
    ("mace_mp0b3_bz_mae_THz", "MACE-MP-0b3 BZ [THz]", "{:.3f}"),
    ("stable", "stable", "{}"),
    ("stable_ref", "stable ref", "{}"),
    ("status", "status", "{}"),
    ("error", "reason", "{:.60}"),
]


def global_results(spec, store) -> dict:
    """Rows of the test materials (base, fine-tuned) with the MDR metrics and, when the materials' folder
    has an ``index.csv``, the published MACE-MP-0b3 BZ MAE; ``summary`` per model; ``change``: relative change
    of each MAE (after / before − 1); ``train`` (best epoch, epochs run, early stop, validation losses,
    co-training errors before / after); ``cotrain_eval``; ``split``."""
    from pftflow.phonons.metrics import summarize

    name = spec.name
    test_ids = list(getattr(spec, "material_ids", []) or [])
    base_line = _baselines(spec)
    rows = []
    for meta, doc in latest_outputs(store, campaign_query(spec, "compare", **{"metadata.kind": GLOBAL}), with_metadata=True):
        if not hasattr(doc, "row"):
            continue
        r = {"material_id": doc.material_id, "model": doc.model, "mode": meta.get("mode") or BASE_MODE, "n_structures": int(meta.get("n_structures") or 0),
             "role": "test"}
        r.update(doc.row())
        r["status"] = "failed" if r.get("failed") else "ok"
        r["strategy"], r["n_train_structures"] = r["mode"], r["n_structures"]
        r.update(base_line.get(doc.material_id, {}))
        rows.append(r)
    rows += [dict(r, role="test") for r in _not_done(spec, store, rows, test_ids)]
    rows.sort(key=lambda r: (test_ids.index(r["material_id"]) if r["material_id"] in test_ids else len(test_ids), r["mode"] != BASE_MODE, r["model"]))
    models = list(dict.fromkeys(r["model"] for r in sorted(rows, key=lambda r: r["mode"] != BASE_MODE)))
    summary = {m: summarize([r for r in rows if r["model"] == m and r.get("status") != "missing"]) for m in models}
    change = {}
    base_name = next((r["model"] for r in rows if r["mode"] == BASE_MODE), None)
    for m in models:
        if m == base_name or base_name is None:
            continue
        change[m] = {k: (summary[m][k] / summary[base_name][k] - 1.0) if summary[m].get(k) is not None and summary[base_name].get(k) else None
                     for k in CHANGE_KEYS}
        vals = [v for v in change[m].values() if v is not None]
        change[m]["mean_change"] = float(np.mean(vals)) if vals else None
    baseline = None
    ids = [r["material_id"] for r in rows if r["mode"] == BASE_MODE]
    if base_line and ids:
        vals = [base_line[i]["mace_mp0b3_bz_mae_THz"] for i in ids if "mace_mp0b3_bz_mae_THz" in base_line.get(i, {})]
        baseline = {"model": "MACE-MP-0b3 (index.csv)", "mesh_mae_THz": float(np.mean(vals)) if vals else None, "n_materials": len(vals)}
    tr = latest_outputs(store, campaign_query(spec, "train", **{"metadata.kind": GLOBAL}), keys=("model",), with_metadata=True)
    ev = latest_outputs(store, campaign_query(spec, "cotrain_eval", **{"metadata.kind": GLOBAL}), keys=("model",), with_metadata=True)
    split = {k: list(v) for k, v in spec.roles.items()} if hasattr(spec, "roles") else None
    return {
        "campaign": name, "kind": GLOBAL, "columns": GLOBAL_COLUMNS, "rows": rows, "summary": summary, "change": change, "baseline": baseline,
        "train": _train_summary(tr[-1][1]) if tr else None, "cotrain_eval": ev[-1][1].model_dump() if ev and hasattr(ev[-1][1], "model_dump") else None,
        "split": split,
    }


def global_plots(spec, store, out_dir) -> list:
    """Band overlays (reference, base, fine-tuned) per test material."""
    from pftflow.flows.campaigns import phonons_band_plots

    return phonons_band_plots(spec, store, out_dir)


__all__ = [
    "build_per_material", "per_material_results", "per_material_plots", "build_global", "global_results", "global_plots",
    "reinitialised_model", "split_indices", "builtin_crystals", "swapped_crystals", "distillation_structures",
    "ScratchModelDoc", "ModeScansDoc", "DistillationDoc", "CotrainEvalDoc",
]
