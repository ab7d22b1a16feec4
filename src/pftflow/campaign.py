"""Campaign specs (YAML), flow building with reuse of stored results, execution and results.

A campaign is re-run idempotently: every job carries ``metadata.pftflow_key``, a hash of what
determines its output (material, reference source and settings, model, settings).  Before
building the flow, stages whose key already has a completed output in the store are taken from
the store instead of being run again (so a second ``pftflow run`` reuses the DFT reference).

Relative paths in a spec are relative to the directory ``pftflow`` is run from.
"""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pftflow.flows.common import file_sha, find_stored, import_material, latest_by, stage_key, tag_jobs
from pftflow.store import make_job_store

KINDS = ("phonons", "kappa", "finetune")
LAST_CAMPAIGN_FILE = Path("campaigns") / ".last_campaign"


class SpecError(ValueError):
    """An invalid campaign spec; the message names the file, the field and the fix."""


# ------------------------------------------------------------------------------------ spec
@dataclass
class CampaignSpec:
    """A validated campaign spec (see docs/campaign-spec.md)."""

    name: str
    kind: str
    path: Path | None
    raw: dict
    store_dir: Path
    store_uri: str | None = None
    materials: list[dict] = field(default_factory=list)
    reference: dict = field(default_factory=dict)
    models: list[dict] = field(default_factory=list)
    settings: dict = field(default_factory=dict)

    # .................................................................................. loading
    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> "CampaignSpec":
        path = Path(path)
        if not path.is_file():
            raise SpecError(f"{path}: campaign spec not found")
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise SpecError(f"{path}: not valid YAML: {exc}") from exc
        return cls.from_dict(raw, path)

    @classmethod
    def from_dict(cls, raw: dict, path: Path | None = None) -> "CampaignSpec":
        where = str(path) if path else "<spec>"

        def err(msg: str) -> SpecError:
            return SpecError(f"{where}: {msg}")

        if not isinstance(raw, dict):
            raise err("top level must be a mapping with keys name, kind, materials, models, ...")
        unknown = set(raw) - {"name", "description", "kind", "store", "materials", "reference", "models", "settings", "outputs", "training", "kappa", "holdout", "train_materials", "test_materials", "fireworks"}
        if unknown:
            raise err(f"unknown top-level key(s) {sorted(unknown)}; see docs/campaign-spec.md")
        name = raw.get("name")
        if not name or not isinstance(name, str):
            raise err("'name' (a short string) is required")
        kind = raw.get("kind", "phonons")
        if kind not in KINDS:
            raise err(f"'kind' must be one of {KINDS}, got {kind!r}")
        store = raw.get("store") or {}
        store_dir = Path(store.get("path", Path("campaigns") / name))
        spec = cls(name=name, kind=kind, path=path, raw=copy.deepcopy(raw), store_dir=store_dir, store_uri=store.get("uri"))
        if kind != "phonons":
            return spec  # validated by the kind's own builder (kappa / finetune)

        models = raw.get("models")
        if not models or not isinstance(models, list):
            raise err("'models' must be a non-empty list of calculator specs, e.g. {backend: sevennet, model: 7net-0}")
        from pftflow.calculators.backends import BACKENDS

        for i, m in enumerate(models):
            m = {"backend": m} if isinstance(m, str) else dict(m)
            if m.get("backend") not in BACKENDS:
                raise err(f"models[{i}]: 'backend' must be one of {sorted(BACKENDS)}, got {m.get('backend')!r}")
            m.setdefault("name", m.get("model") and f"{m['backend']}:{m['model']}" or m["backend"])
            spec.models.append(m)
        names = [m["name"] for m in spec.models]
        if len(set(names)) != len(names):
            raise err(f"model names must be unique, got {names}; set 'name' on each model")

        ref = dict(raw.get("reference") or {"mode": "import"})
        if ref.get("mode") not in ("import", "compute"):
            raise err("reference.mode must be 'import' (files) or 'compute' (a calculator, e.g. GPAW)")
        if ref["mode"] == "compute":
            calc = ref.get("calculator")
            if not isinstance(calc, dict) or calc.get("backend") not in BACKENDS:
                raise err("reference.calculator must be a calculator spec, e.g. {backend: ase, import_path: pftflow.calculators.gpaw_reference:make_gpaw_calculator}")
            calc.setdefault("name", "reference")
        spec.reference = ref

        mats = raw.get("materials")
        if not mats or not isinstance(mats, list):
            raise err("'materials' must be a non-empty list")
        for i, m in enumerate(mats):
            spec.materials.append(_validate_material(m, i, ref["mode"], err))
        ids = [m["id"] for m in spec.materials]
        if len(set(ids)) != len(ids):
            raise err(f"material ids must be unique, got {ids}")

        settings = dict(raw.get("settings") or {})
        from pftflow.phonons.harmonic import PhononSettings
        from pftflow.phonons.relax import RelaxSettings

        for key, klass in (("phonons", PhononSettings), ("relax", RelaxSettings)):
            try:
                klass(**(settings.get(key) or {}))
            except TypeError as exc:
                raise err(f"settings.{key}: {exc}") from exc
        spec.settings = settings
        return spec


def _validate_material(m: Any, i: int, mode: str, err) -> dict:
    if isinstance(m, str):
        m = {"reference_file": m}
    if not isinstance(m, dict):
        raise err(f"materials[{i}] must be a mapping")
    m = dict(m)
    if mode == "import":
        f = m.get("reference_file")
        if not f:
            raise err(f"materials[{i}]: import mode needs 'reference_file' (phonopy / MDR / atomate2 yaml)")
        if not os.path.exists(f):
            raise err(f"materials[{i}]: reference_file '{f}' does not exist (relative paths are from the current directory {os.getcwd()})")
        return import_material(m)
    if "id" not in m:
        raise err(f"materials[{i}]: 'id' is required")
    st = m.get("structure")
    if not isinstance(st, dict) or not {"cell_A", "species", "frac_coords"} <= set(st):
        raise err(f"materials[{i}] ({m['id']}): 'structure' needs cell_A (3x3, Å), species and frac_coords")
    cell = np.asarray(st["cell_A"], dtype=float)
    frac = np.asarray(st["frac_coords"], dtype=float)
    if cell.shape != (3, 3) or frac.ndim != 2 or frac.shape[1] != 3 or len(frac) != len(st["species"]):
        raise err(f"materials[{i}] ({m['id']}): cell_A must be 3x3 and frac_coords one [x, y, z] per species")
    from ase import Atoms

    atoms = Atoms(st["species"], cell=cell, scaled_positions=frac, pbc=True)
    from pftflow.materials.structures import atoms_to_dict

    m["structure"] = atoms_to_dict(atoms)
    smat = np.asarray(m.get("supercell_matrix", np.eye(3, dtype=int) * 2))
    if smat.shape == (3,):
        smat = np.diag(smat)
    if smat.shape != (3, 3):
        raise err(f"materials[{i}] ({m['id']}): supercell_matrix must be 3 integers or 3x3")
    m["supercell_matrix"] = smat.astype(int).tolist()
    if m.get("primitive_matrix") is not None:
        m["primitive_matrix"] = np.asarray(m["primitive_matrix"], dtype=float).tolist()
    return m


# ------------------------------------------------------------------------------------ build
def build_phonon_flow(spec: CampaignSpec, store) -> tuple[Any, dict]:
    """jobflow Flow for a harmonic benchmark campaign, skipping stages stored under the same key."""
    from jobflow import Flow

    from pftflow.flows import jobs
    from pftflow.flows.phonons import MLIPPhononMaker, ReferencePhononMaker
    from pftflow.phonons.harmonic import PhononSettings

    psettings = PhononSettings(**(spec.settings.get("phonons") or {}))
    relax_settings = spec.settings.get("relax") or {}
    ref_maker = ReferencePhononMaker(
        mode=spec.reference["mode"],
        calculator=spec.reference.get("calculator"),
        settings=psettings,
        relax_settings=spec.reference.get("relax"),
    )
    mlip_maker = MLIPPhononMaker(relax_settings=relax_settings, settings=psettings, relax=spec.settings.get("relax_models", True))
    parts = []
    reused = {"reference": [], "model": []}
    params = jobs.record_parameters(spec.raw)
    tag_jobs(params, {"campaign": spec.name, "stage": "parameters"})
    parts.append(params)
    for mat in spec.materials:
        mid = mat["id"]
        ref_key = stage_key("reference", spec.reference, {k: v for k, v in mat.items() if k != "source"}, file_sha(mat.get("reference_file")), psettings.as_dict())
        ref_out = find_stored(store, ref_key)
        if ref_out is not None:
            reused["reference"].append(mid)
        else:
            ref_flow = ref_maker.make(mat)
            tag_jobs(ref_flow, {"campaign": spec.name, "material_id": mid, "stage": "reference", "model": "reference"})
            ref_flow.jobs[-1].metadata["pftflow_key"] = ref_key
            ref_flow.jobs[-1].metadata["stage"] = "analysis"
            parts.append(ref_flow)
            ref_out = ref_flow.output
        for model in spec.models:
            mkey = stage_key("model", ref_key, model, relax_settings, psettings.as_dict(), spec.settings.get("relax_models", True))
            if find_stored(store, mkey) is not None:
                reused["model"].append(f"{mid}/{model['name']}")
                continue
            mflow = mlip_maker.make(ref_out, model, mid, model["name"])
            tag_jobs(mflow, {"campaign": spec.name, "material_id": mid, "model": model["name"], "stage": "model"})
            analysis, compare = mflow.jobs[-2], mflow.jobs[-1]
            analysis.metadata["stage"] = "analysis"
            compare.metadata.update({"stage": "compare", "pftflow_key": mkey})
            parts.append(mflow)
    return Flow(parts, name=f"campaign {spec.name}"), reused


def build_flow(spec: CampaignSpec, store):
    if spec.kind == "phonons":
        return build_phonon_flow(spec, store)
    if spec.kind == "kappa":
        from pftflow.flows.kappa import kappa_campaign_flow

        return kappa_campaign_flow(spec.raw, store=store), {}
    if spec.kind == "finetune":
        from pftflow.flows.training import pft_campaign_flow

        return pft_campaign_flow(spec.raw, store=store), {}
    raise SpecError(f"unknown kind {spec.kind}")


# ------------------------------------------------------------------------------------ run
class _JobProgress(logging.Handler):
    """Advances a tqdm bar on jobflow's 'Finished job' log lines (jobflow has no callbacks)."""

    def __init__(self, bar):
        super().__init__(logging.INFO)
        self.bar = bar
        self.failures: list[str] = []

    def emit(self, record):
        msg = record.getMessage()
        if "failed with exception" in msg:
            self.failures.append(msg)
            self.bar.write(f"[pftflow] job {msg.strip()[-3000:]}")
        elif msg.startswith("Starting job"):
            self.bar.set_postfix_str(msg.split(" - ", 1)[-1].split(" (")[0][:50])
        elif msg.startswith("Finished job"):
            if self.bar.total is not None and self.bar.n >= self.bar.total:
                self.bar.total += 1  # jobs added at run time (dynamic flows, e.g. kappa)
            self.bar.update(1)


def count_jobs(flow) -> int:
    return sum(1 for _ in flow.iterflow())


def run_campaign(spec: CampaignSpec, *, progress: bool = True, plots: bool = True) -> dict:
    """Build and run a campaign locally on its store; returns a summary dict."""
    import time

    from jobflow import run_locally
    from tqdm.auto import tqdm

    store = make_job_store(spec.store_dir, spec.store_uri)
    store.connect()
    flow, reused = build_flow(spec, store)
    n_jobs = count_jobs(flow)
    t0 = time.perf_counter()
    jf_logger = logging.getLogger("jobflow")
    old_level, old_prop = jf_logger.level, jf_logger.propagate
    bar = tqdm(total=n_jobs, desc=f"campaign {spec.name}", unit="job", disable=not progress)
    handler = _JobProgress(bar)
    jf_logger.addHandler(handler)
    jf_logger.setLevel(logging.INFO)
    jf_logger.propagate = False
    for h in list(jf_logger.handlers):
        if h is not handler:
            h.setLevel(logging.WARNING)
    try:
        responses = run_locally(flow, store=store, create_folders=False, ensure_success=False, log=False)
    finally:
        jf_logger.removeHandler(handler)
        jf_logger.setLevel(old_level)
        jf_logger.propagate = old_prop
        bar.close()
    wall = time.perf_counter() - t0
    n_done = sum(1 for r in responses.values() for _ in r.values())
    LAST_CAMPAIGN_FILE.parent.mkdir(parents=True, exist_ok=True)
    LAST_CAMPAIGN_FILE.write_text(str(spec.path.resolve()) if spec.path else "")
    # jobflow skips the children of a failed job without logging them, and dynamic flows add jobs
    # at run time, so failures are counted from the logged exceptions, not from planned - run.
    summary = {
        "campaign": spec.name,
        "jobs_planned": n_jobs,
        "jobs_run": n_done,
        "failed_jobs": len(handler.failures),
        "job_failures": [f.splitlines()[0] for f in handler.failures],
        "wall_time_s": wall,
        "reused": reused,
        "store": str(spec.store_uri or spec.store_dir),
    }
    if plots and spec.kind == "phonons":
        summary["plots"] = [str(p) for p in make_band_plots(spec, store)]
    store.close()
    return summary


# ------------------------------------------------------------------------------------ results
def load_results(spec: CampaignSpec, store=None) -> dict:
    """Material x model rows and the summary over materials, from the store."""
    own = store is None
    store = store or make_job_store(spec.store_dir, spec.store_uri)
    store.connect()
    try:
        if spec.kind == "kappa":
            from pftflow.flows.kappa import load_kappa_results

            return load_kappa_results(spec.raw, store)
        if spec.kind == "finetune":
            from pftflow.flows.training import load_finetune_results

            return load_finetune_results(spec.raw, store)
        docs = list(store.query({"metadata.campaign": spec.name, "metadata.stage": "compare"}, properties=["uuid", "metadata", "completed_at", "output"]))
        rows = []
        for d in latest_by(docs):
            rows.append(store.get_output(d["uuid"], which="last", load=True))
        mat_order = [m["id"] for m in spec.materials]
        mod_order = [m["name"] for m in spec.models]
        # the store may hold materials/models since removed from the spec: report the spec's
        rows = [r for r in rows if r["material_id"] in mat_order and r["model"] in mod_order]
        rows.sort(key=lambda r: (mat_order.index(r["material_id"]) if r["material_id"] in mat_order else 1e9, mod_order.index(r["model"]) if r["model"] in mod_order else 1e9))
        from pftflow.phonons.metrics import summarize

        summary = {m: summarize([r for r in rows if r["model"] == m]) for m in mod_order if any(r["model"] == m for r in rows)}
        return {"campaign": spec.name, "kind": spec.kind, "rows": rows, "summary": summary}
    finally:
        if own:
            store.close()


def load_stage_outputs(spec: CampaignSpec, store, stage: str) -> list[dict]:
    """Latest outputs (blobs loaded) of all jobs of ``stage`` in this campaign."""
    docs = list(store.query({"metadata.campaign": spec.name, "metadata.stage": stage}, properties=["uuid", "metadata", "completed_at"]))
    return [store.get_output(d["uuid"], which="last", load=True) for d in latest_by(docs)]


def make_band_plots(spec: CampaignSpec, store) -> list[Path]:
    """One PNG per material: reference band structure vs each model's, on the same q-path."""
    from pftflow.phonons.harmonic import PhononResult
    from pftflow.phonons.plotting import plot_band_overlay

    outs = [o for o in load_stage_outputs(spec, store, "analysis") if o and not o.get("failed")]
    out_dir = Path(spec.store_dir) / "plots"
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for mat in spec.materials:
        mid = mat["id"]
        ref = [o for o in outs if o["material_id"] == mid and o["label"] == "reference"]
        models = {o["label"]: PhononResult.from_dict(o["result"]) for o in outs if o["material_id"] == mid and o["label"] != "reference"}
        if not ref:
            continue
        p = out_dir / f"{mid}_bands.png"
        plot_band_overlay(PhononResult.from_dict(ref[-1]["result"]), models, p, title=f"{mid}: reference vs models")
        paths.append(p)
    return paths


def resolve_spec(path: str | None) -> CampaignSpec:
    """The spec at ``path``, or the last campaign run from this directory."""
    if path is None:
        if not LAST_CAMPAIGN_FILE.is_file() or not LAST_CAMPAIGN_FILE.read_text().strip():
            raise SpecError("no campaign given and none run from this directory yet: pass the spec, e.g. 'pftflow results workflows/quickstart.yaml'")
        path = LAST_CAMPAIGN_FILE.read_text().strip()
    return CampaignSpec.from_yaml(path)


# ------------------------------------------------------------------------------------ FireWorks
def submit_campaign(spec: CampaignSpec, *, launch: bool = False, max_launches: int = 0) -> dict:
    """Add the campaign's flow to a FireWorks LaunchPad (and optionally run it with rapidfire).

    LaunchPad: ``fireworks: {launchpad_file: my_launchpad.yaml}`` in the spec (a real MongoDB), else
    FireWorks' built-in mongomock persistence in ``<store path>/fireworks_launchpad.json``
    (single process, no server).  Stages already in the store are not resubmitted, so submitting
    the same campaign again only adds what is missing.  Jobs tagged with a ``_fworker`` (e.g. the
    fine-tuning job's ``gpu``) are only pulled by a FireWorker of that name.
    """
    fw_cfg = spec.raw.get("fireworks") or {}
    lp_file = fw_cfg.get("launchpad_file")
    if not lp_file:
        Path(spec.store_dir).mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("MONGOMOCK_SERVERSTORE_FILE", str((Path(spec.store_dir) / "fireworks_launchpad.json").resolve()))
        lp_json = Path(os.environ["MONGOMOCK_SERVERSTORE_FILE"])
        new_launchpad = not lp_json.exists()
        if new_launchpad:  # mongomock-persistence needs an existing (empty) file
            lp_json.write_text("{}")
    from fireworks import FWorker, LaunchPad
    from fireworks.core.rocket_launcher import rapidfire
    from jobflow.managers.fireworks import flow_to_workflow

    lp = LaunchPad.from_file(lp_file) if lp_file else LaunchPad()
    if not lp_file and new_launchpad:
        lp.reset("", require_password=False)  # initialise the fresh embedded LaunchPad
    store = make_job_store(spec.store_dir, spec.store_uri)
    store.connect()
    flow, reused = build_flow(spec, store)
    wf = flow_to_workflow(flow, store=store)
    lp.add_wf(wf)
    out = {"campaign": spec.name, "fireworks_added": len(wf.fws), "reused": reused, "launchpad": lp_file or os.environ["MONGOMOCK_SERVERSTORE_FILE"]}
    if launch:
        launch_dir = Path(spec.store_dir) / "fw_launches"
        launch_dir.mkdir(parents=True, exist_ok=True)
        rapidfire(lp, FWorker(name=fw_cfg.get("fworker")), nlaunches=max_launches, m_dir=str(launch_dir), strm_lvl="WARNING")
        states = lp.get_wf_summary_dict(wf.fws[0].fw_id)["states"]
        out["states"] = {k: sum(1 for v in states.values() if v == k) for k in set(states.values())}
    store.close()
    return out
