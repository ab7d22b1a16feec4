"""What the two fine-tuning campaign kinds over material sets share: ``kind: finetune_per_material``
(Equitrain protocol, :mod:`pftflow.flows.finetune_per_material`) and ``kind: finetune_global`` (PFT paper,
:mod:`pftflow.flows.finetune_global`): their documents, jobs and builder helpers.  Spec: :mod:`pftflow.spec.finetune_campaigns`; docs/finetuning-campaigns.md.

Per material (built from the existing makers, nothing re-written)::

    [relax (labeller)] -> DatasetMaker: sampling -> forces (labeller) -> labelled_set        (max N + n_valid structures)
        -> per N: training_data (first N of the train pool, the same n_valid validation structures)
            -> per mode: TrainMaker: train   (scratch: from the re-initialised base, one scratch_init job)
    benchmark_flow (flows.benchmark): reference phonons (labeller, on the same cell) -> base and every fine-tuned
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

from pftflow.calculators.backends import cached_calculator
from pftflow.calculators.energy_models import MACEEnergyModel, SevenNetEnergyModel, load_energy_model
from pftflow.documents import LabelledSetDoc, PhononAnalysisDoc
from pftflow.flows import jobs
from pftflow.flows.benchmark import pair_status
from pftflow.flows.jobs import phonopy_of
from pftflow.flows.makers import set_resources
from pftflow.flows.reuse import find_stored, recorded_spec
from pftflow.flows.training import ForceErrors, TrainingDataDoc, TrainingRunDoc, TrainMaker, build_structures, train_job
from pftflow.identity import REFERENCE_MODEL, ResultId
from pftflow.materials.readers import read_reference
from pftflow.phonons.modes import ModeScan, default_amplitudes, imaginary_modes, scan_mode
from pftflow.sampling.rattle import rattle, structure_seeds
from pftflow.serialization import ArrayBlob, Document, dict_to_atoms
from pftflow.training.data import LabelledStructure, TrainingData
from pftflow.training.evaluate import force_errors
from pftflow.training.export import export_model

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
    out = CotrainEvalDoc()
    if distilled is not None and distilled.heldout:
        out.distillation_heldout = {k: ForceErrors.of(force_errors(m, distilled.heldout)) for k, m in (("base", base_model), ("finetuned", finetuned))}
    test = build_structures(test_sources) if test_sources else []
    if test:
        out.test_displacements = {k: ForceErrors.of(force_errors(m, test)) for k, m in (("base", base_model), ("finetuned", finetuned))}
    return out


# ------------------------------------------------------------------------------------ builder helpers
class _Structure:
    """What ``flows.benchmark.benchmark_flow`` asks of a material's structure: ``atoms()`` (Atoms or a job output)."""

    def __init__(self, value):
        self._value = value

    def atoms(self):
        return self._value


@dataclass
class _Cell:
    """A compute material for :func:`pftflow.flows.benchmark.benchmark_flow` whose cell may be a job's output
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

    if not isinstance(start, OutputReference):
        return maker.make(data, start)
    j = train_job(data, start, dict(maker.config), maker.run_dir, maker.export_name, maker.evaluate_cotrain)
    j.name = maker.name
    set_resources(j, "gpu")
    if maker.fworker:
        j.config.manager_config = {**j.config.manager_config, "_fworker": maker.fworker}
    return j


# ------------------------------------------------------------------------------------ results helpers
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
        "selection": d.get("selection") or "loss",
        "valid_hessian_before": (d.get("valid_before") or {}).get("hessian_mae_eV_per_A2"),
        "valid_hessian_mae_eV_per_A2": [h.get("valid", {}).get("hessian_mae_eV_per_A2") for h in hist],
        "resumed_from_epoch": d.get("resumed_from_epoch"), "continued_from": d.get("continued_from"),
        "n_trainable": (d.get("finetune_report") or {}).get("n_trainable"), "finetune_mode": (d.get("finetune_report") or {}).get("mode"),
        "counts": d.get("counts"), "cotrain_errors": d.get("cotrain_errors"), "provenance_sha256": (d.get("provenance") or {}).get("sha256"),
    }


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
    tags = _model_tags(spec)
    if not tags or not material_ids:
        return []
    done = {(r["material_id"], r["model"]) for r in rows}
    out = []
    for r in pair_status(spec.name, store, [(m, mod) for m in material_ids for mod in tags], done).values():
        mode, n, fm = tags[r["model"]]
        out.append({**r, "mode": mode, "n_structures": n, "finetune_mode": fm, "strategy": mode, "n_train_structures": n})
    return out


__all__ = [
    "reinitialised_model", "split_indices", "builtin_crystals", "swapped_crystals", "distillation_structures",
    "ScratchModelDoc", "ModeScansDoc", "DistillationDoc", "CotrainEvalDoc",
]
