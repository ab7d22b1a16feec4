"""Reading results back: rows per material × model from the store, and their tables.

``load_results(spec)`` asks the campaign kind's reader (:data:`pftflow.flows.campaigns.KINDS`);
:func:`format_results` renders them as a table, CSV or JSON.  Field names and units:
``docs/metrics.md`` (phonons), ``docs/kappa.md``, ``docs/training.md``.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from pftflow.flows.benchmark import pair_status
from pftflow.flows.campaigns import KINDS
from pftflow.flows.reuse import FAILURE_STAGE, campaign_query
from pftflow.identity import REFERENCE_MODEL
from pftflow.provenance import blas_kernels
from pftflow.run import open_store
from pftflow.spec import SpecError, load_spec
from pftflow.store import STORE_FILE, make_job_store

#: columns of the harmonic results table (JSON gives every field; see docs/metrics.md)
TABLE_COLUMNS = [
    ("material_id", "material", "{}"),
    ("model", "model", "{}"),
    ("omega_max_K_ref", "ω_max ref [K]", "{:.1f}"),
    ("omega_max_K", "ω_max [K]", "{:.1f}"),
    ("entropy_error_300K_J_per_K_mol", "ΔS300 [J/K/mol]", "{:+.2f}"),
    ("free_energy_error_300K_kJ_per_mol", "ΔF300 [kJ/mol]", "{:+.3f}"),
    ("heat_capacity_error_300K_J_per_K_mol", "ΔCv300 [J/K/mol]", "{:+.3f}"),
    ("mesh_mae_THz", "BZ MAE [THz]", "{:.3f}"),
    ("stable", "stable", "{}"),
    ("stable_ref", "stable ref", "{}"),
    ("status", "status", "{}"),  # ok | failed | missing (a failed job or a pair not run: see reason)
    ("error", "reason", "{:.80}"),
]

#: columns of the summary table (per model, over materials)
SUMMARY_COLUMNS = [
    ("n_evaluated", "n", "{}"),
    ("n_failed", "failed", "{}"),
    ("omega_max_mae_K", "ω_max MAE [K]", "{:.1f}"),
    ("entropy_mae_300K_J_per_K_mol", "S MAE [J/K/mol]", "{:.2f}"),
    ("free_energy_mae_300K_kJ_per_mol", "F MAE [kJ/mol]", "{:.3f}"),
    ("heat_capacity_mae_300K_J_per_K_mol", "Cv MAE [J/K/mol]", "{:.3f}"),
    ("mesh_mae_THz", "BZ MAE [THz]", "{:.3f}"),
    ("stability_accuracy", "stability acc.", "{:.2f}"),
]


def load_results(spec, store=None) -> dict:
    """Rows (one per material × model) and the summary per model, from the campaign's store."""
    own = store is None
    store = store or open_store(spec)
    try:
        res = KINDS[spec.kind].results(spec, store)
        attach_provenance(spec, res.get("rows") or [], store)
        return res
    finally:
        if own:
            store.close()


#: the provenance fields of every row (:func:`attach_provenance`)
PROVENANCE_FIELDS = ("model_file", "model_sha256", "pftflow_version", "git_commit", "versions", "cpu", "blas", "provenance_source")
#: stages whose stored output names the model's weights (output field with the calculator provenance)
_MODEL_STAGES = (("forces", "provenance"), ("relax", "model"), ("kappa", "model_provenance"))


def _latest(docs: list[dict]) -> list[dict]:
    return sorted(docs, key=lambda d: str(d.get("completed_at", "")), reverse=True)


def attach_provenance(spec, rows: list[dict], store) -> list[dict]:
    """Fill the :data:`PROVENANCE_FIELDS` of each row in place from the documents that store them: the
    model file and its sha256 from the model's stored force / relax / κ output (calculator provenance),
    pftflow version, git commit, package versions, CPU and BLAS kernel from the row's phonon analysis
    (``PhononAnalysisDoc.environment``, where the kernel-dependent numbers were computed), else from the
    campaign's last run record (``ParametersDoc.environment``; ``provenance_source`` says which). Documents
    written before pftflow recorded an environment leave those fields None."""
    docs = store.docs_store

    def env_of(d: dict) -> dict:
        out = d.get("output") or {}
        env = dict(out.get("environment") or {})
        if not env and out.get("versions"):  # a run record or κ result from before the environment field
            env = {"versions": out.get("versions"), "pftflow": (out.get("versions") or {}).get("pftflow"), "host": out.get("host")}
        return env

    run_env: dict = {}
    for d in _latest(list(docs.query(campaign_query(spec, "parameters"), properties=["output.environment", "output.versions", "output.host", "completed_at"]))):
        run_env = env_of(d)
        break
    analysis_env: dict[tuple, dict] = {}
    for d in _latest(list(docs.query(campaign_query(spec, "analysis"), properties=["metadata", "output.environment", "completed_at"]))):
        m = d.get("metadata") or {}
        analysis_env.setdefault((m.get("material_id"), m.get("model")), (d.get("output") or {}).get("environment") or {})
    model_prov: dict[str, dict] = {}
    for model in dict.fromkeys(r.get("model") for r in rows if r.get("model")):
        for stage, field in _MODEL_STAGES:
            found = [(d.get("output") or {}).get(field) or {} for d in
                     _latest(list(docs.query(campaign_query(spec, stage, **{"metadata.model": model}), properties=[f"output.{field}", "completed_at"], limit=5)))]
            found = [p for p in found if p.get("sha256") or p.get("file")]
            if found:
                model_prov[model] = found[0]
                break
    for r in rows:
        env, source = analysis_env.get((r.get("material_id"), r.get("model"))) or {}, "analysis"
        if not env:
            env, source = run_env, ("run" if run_env else None)
        mp = model_prov.get(r.get("model")) or {}
        r.update(
            model_file=mp.get("file") or mp.get("path"),
            model_sha256=mp.get("sha256"),
            pftflow_version=env.get("pftflow"),
            git_commit=(env.get("git_commit") + ("+dirty" if env.get("git_dirty") else "")) if env.get("git_commit") else None,
            versions=env.get("versions"),
            cpu=env.get("cpu"),
            blas=blas_kernels(env),
            provenance_source=source,
        )
    return rows


def _fmt(v, f):
    if v is None:
        return "-"
    if isinstance(v, float) and np.isnan(v):
        return "nan"
    try:
        return f.format(v)
    except (ValueError, TypeError):
        return str(v)


def render_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)), "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(out)


def jsonable(x):
    """Plain JSON values (NaN -> null, numpy scalars and arrays -> Python)."""
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (np.floating, float)):
        return None if np.isnan(x) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, Path):
        return str(x)
    return x


def format_results(res: dict, fmt: str) -> str:
    """``res`` from :func:`load_results` as ``table``, ``csv`` or ``json``."""
    if fmt == "json":
        return json.dumps(jsonable(res), indent=2)
    cols = res.get("columns") or TABLE_COLUMNS
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        keys = [k for k, _, _ in cols]
        w.writerow(keys)
        for r in res["rows"]:
            w.writerow(["" if r.get(k) is None else r.get(k) for k in keys])
        return buf.getvalue()
    rows = [[_fmt(r.get(k), f) for k, _, f in cols] for r in res["rows"]]
    text = render_table([h for _, h, _ in cols], rows)
    summ = res.get("summary") or {}
    if summ and all(isinstance(v, dict) and "omega_max_mae_K" in v for v in summ.values()):  # MDR summaries
        srows = [[m] + [_fmt(s.get(k), f) for k, _, f in SUMMARY_COLUMNS] for m, s in summ.items()]
        text += "\n\nMAE over materials (MDR metrics at 300 K):\n"
        text += render_table(["model"] + [h for _, h, _ in SUMMARY_COLUMNS], srows) + "\n"
    elif summ:
        text += "\n\nSummary:\n"
        for model, s in summ.items():
            if isinstance(s, dict):
                text += f"  {model}: " + ", ".join(f"{k}={_fmt(v, '{:.4g}')}" for k, v in s.items()) + "\n"
            else:
                text += f"  {model}: {s}\n"
    return text


# ------------------------------------------------------------------------------------ pandas

#: columns of :func:`load` (``name -> (unit, description)``); units in the names as in
#: docs/metrics.md.  Unit ``-``: a label or flag; ``1``: a dimensionless number.  Thermal fields at
#: another temperature than 300 K carry it in their name (``entropy_600K_J_per_K_mol``), see
#: :func:`column_info`.  Rendered in docs/report.md.
COLUMNS: dict[str, tuple[str, str]] = {
    # identity: one row per campaign × material × model × variant
    "campaign": ("-", "campaign name (spec `name`)"),
    "kind": ("-", "campaign kind: phonons | kappa | finetune | dataset"),
    "material_id": ("-", "material id"),
    "model": ("-", "model name (dataset: the labeller)"),
    "variant": ("-", "what else tells rows of one material × model apart: phonons: the reference (its calculator "
                     "name, `vasp` or `import`); kappa: the conductivity (wigner | rta); finetune: the strategy; "
                     "dataset: the set name"),
    "strategy": ("-", "finetune: `base` for the base model, else the fine-tuning mode (full | frozen | delta | lora); "
                      "None for other kinds"),
    "n_train_structures": ("structures", "finetune: structures in the fine-tuning training split (0 for the base "
                                         "model); None for other kinds"),
    "status": ("-", "ok | failed | missing (missing: not run yet or not finished)"),
    "failed": ("-", "True when the job failed or the model gave no result (the reason says why)"),
    "reason": ("-", "one line: why the row failed or is missing (None when ok)"),
    "failed_stage": ("-", "stage of the failed job (relax, forces, ...; `reference ...` when the reference failed)"),
    "hint": ("-", "how to fix the failure, when known"),
    # harmonic phonons (phonons, finetune): docs/metrics.md
    "relax_converged": ("-", "the model relaxation converged"),
    "symmetry_preserved": ("-", "the model relaxation kept the space group"),
    "temperature_K": ("K", "temperature of the thermal metrics"),
    "omega_max_K": ("K", "ω_max of the model: max frequency over the commensurate q-points"),
    "omega_max_K_ref": ("K", "ω_max of the reference"),
    "omega_max_error_K": ("K", "ω_max model − reference"),
    "omega_max_abs_error_K": ("K", "|ω_max model − reference|"),
    "entropy_300K_J_per_K_mol": ("J/K/mol", "S(300 K) of the model, per mole of primitive cells"),
    "entropy_300K_J_per_K_mol_ref": ("J/K/mol", "S(300 K) of the reference"),
    "entropy_error_300K_J_per_K_mol": ("J/K/mol", "S model − reference"),
    "entropy_abs_error_300K_J_per_K_mol": ("J/K/mol", "|S model − reference|"),
    "free_energy_300K_kJ_per_mol": ("kJ/mol", "F(300 K) of the model incl. zero-point, per mole of primitive cells"),
    "free_energy_300K_kJ_per_mol_ref": ("kJ/mol", "F(300 K) of the reference"),
    "free_energy_error_300K_kJ_per_mol": ("kJ/mol", "F model − reference"),
    "free_energy_abs_error_300K_kJ_per_mol": ("kJ/mol", "|F model − reference|"),
    "heat_capacity_300K_J_per_K_mol": ("J/K/mol", "C_V(300 K) of the model, per mole of primitive cells"),
    "heat_capacity_300K_J_per_K_mol_ref": ("J/K/mol", "C_V(300 K) of the reference"),
    "heat_capacity_error_300K_J_per_K_mol": ("J/K/mol", "C_V model − reference"),
    "heat_capacity_abs_error_300K_J_per_K_mol": ("J/K/mol", "|C_V model − reference|"),
    "stable": ("-", "MDR dynamical stability of the model"),
    "stable_ref": ("-", "MDR dynamical stability of the reference"),
    "stability_agrees": ("-", "stable == stable_ref"),
    "mesh": ("-", "Γ-centred BZ mesh numbers of the thermal and mesh metrics, e.g. [32, 32, 32]"),
    "mesh_mae_THz": ("THz", "weighted MAE of the frequencies on the BZ mesh"),
    "mesh_rmse_THz": ("THz", "weighted RMSE of the frequencies on the BZ mesh"),
    "band_rmse_THz": ("THz", "RMSE of the frequencies along the band path"),
    "metric_errors": ("-", "why a metric is None (mesh or path mismatch, data missing)"),
    # provenance (every kind): pftflow.results.attach_provenance
    "model_file": ("-", "file name of the model's weights, as stored with its forces / relaxation / κ"),
    "model_sha256": ("-", "sha256 of that file (None for a model without a weights file, e.g. EMT)"),
    "pftflow_version": ("-", "pftflow version that computed the row"),
    "git_commit": ("-", "git commit of the pftflow source that computed the row (`+dirty`: with uncommitted changes); None for an installed wheel"),
    "versions": ("-", "versions of python, numpy, scipy, phonopy, phono3py, spglib, ASE, jobflow, torch and the model packages"),
    "cpu": ("-", "CPU model of the machine that computed the row"),
    "blas": ("-", "BLAS library, version and kernel (OpenBLAS picks one per CPU, or OPENBLAS_CORETYPE): round-off differs between kernels"),
    "provenance_source": ("-", "analysis: the fields above come from the row's phonon analysis; run: from the campaign's last run record"),
    # κ (kappa): docs/kappa.md
    "name": ("-", "kappa: material display name (formula)"),
    "kappa_W_per_mK": ("W/m/K", "κ of the model: trace/3 of the total κ tensor at the first temperature"),
    "kappa_dft_W_per_mK": ("W/m/K", "DFT reference κ at the same temperature"),
    "srd": ("1", "symmetric relative deviation 2(κ − κ_DFT)/(κ + κ_DFT); −2 on failure"),
    "sre": ("1", "symmetric relative error |SRD|; 2 on failure"),
    "srme": ("1", "symmetric relative mean error of the per-mode κ; 2 on failure"),
    # labelled sets (dataset): docs/dataset.md
    "set_kind": ("-", "dataset: how the set was made (rattle | mc_rattle | rattle_relax | strain | displacements | import)"),
    "n_structures": ("structures", "dataset: labelled structures in the set"),
    "n_atoms": ("atoms", "dataset: atoms per structure"),
    "energy_mean_eV_per_atom": ("eV/atom", "dataset: mean energy"),
    "energy_std_eV_per_atom": ("eV/atom", "dataset: energy standard deviation"),
    "energy_range_eV_per_atom": ("eV/atom", "dataset: max − min energy"),
    "force_rms_eV_per_A": ("eV/Å", "dataset: RMS force component"),
    "force_max_eV_per_A": ("eV/Å", "dataset: largest force norm"),
    "force_mean_norm_eV_per_A": ("eV/Å", "dataset: mean force norm"),
    "stress_max_abs_eV_per_A3": ("eV/Å³", "dataset: largest |stress component|"),
    "displacement_std_A": ("Å", "dataset: standard deviation of the displacements from the unit cell"),
    "min_distance_A": ("Å", "dataset: shortest interatomic distance in the set"),
    "checks_ok": ("-", "dataset: the sampling checks passed"),
    "seconds_per_structure": ("s", "dataset: labelling wall time per structure"),
}

_THERMAL = re.compile(r"^(entropy|free_energy|heat_capacity)(_error|_abs_error)?_(\d+(?:\.\d+)?)K_(J_per_K_mol|kJ_per_mol)(_ref)?$")


def column_info(name: str) -> tuple[str, str]:
    """``(unit, description)`` of a column of :func:`load` (thermal fields at any temperature:
    ``entropy_600K_J_per_K_mol`` is described as its 300 K twin, at 600 K).  KeyError for an unknown name."""
    if name in COLUMNS:
        return COLUMNS[name]
    m = _THERMAL.match(name)
    if m:
        unit, desc = COLUMNS[f"{m[1]}{m[2] or ''}_300K_{m[4]}{m[5] or ''}"]
        return unit, desc.replace("(300 K)", f"({m[3]} K)") + f" (at {m[3]} K)"
    raise KeyError(f"{name}: not a column of pftflow.results.load (see pftflow.results.COLUMNS)")


_ID_COLUMNS = ["campaign", "kind", "material_id", "model", "variant", "strategy", "n_train_structures", "status", "failed", "reason", "failed_stage", "hint"]


@dataclass
class StoredCampaign:
    """A campaign read back from a store without its spec file: what the results readers use
    (``name``, ``kind``, ``material_ids``, ``model_names``, ``set_names``, ``raw``), from the spec the
    campaign recorded (``metadata.stage == "parameters"``) or, without one, from the stored jobs."""

    name: str
    kind: str
    material_ids: list[str]
    model_names: list[str]
    set_names: list[str]
    raw: dict
    store_dir: Path | None = None
    store_uri: str | None = None
    recorded: bool = False


def _stored_campaigns(store, store_dir: Path) -> list[StoredCampaign]:
    """Every campaign in ``store`` (its jobs' ``metadata.campaign`` / ``metadata.kind``)."""
    out = []
    for name in sorted(c for c in store.docs_store.distinct("metadata.campaign") if c):
        kinds = [k for k in store.docs_store.distinct("metadata.kind", {"metadata.campaign": name}) if k in KINDS]
        if not kinds:
            continue
        kind = kinds[0]
        par = store.docs_store.query_one({"metadata.campaign": name, "metadata.stage": "parameters"}, properties=["output"],
                                         sort={"completed_at": -1})
        raw = dict(((par or {}).get("output") or {}).get("spec") or {})
        raw.setdefault("name", name)
        mids: list[str] = []
        models: list[str] = []
        sets: list[str] = []
        if kind == "phonons":
            mids = [m.get("id") for m in raw.get("materials") or [] if isinstance(m, dict)]
            models = [m.get("name") for m in raw.get("models") or [] if isinstance(m, dict)]
        elif kind == "finetune":
            mids = [m.get("id") for m in raw.get("test_materials") or [] if isinstance(m, dict)]
            tr = raw.get("training") or {}
            models = [n for n in ((tr.get("base_model") or {}).get("name"), tr.get("export_name")) if n]
        elif kind == "dataset":
            mids = [m.get("id") for m in raw.get("materials") or [] if isinstance(m, dict)]
            models = [n for n in [(raw.get("labeller") or {}).get("name")] if n]
            sets = [s.get("name") for s in raw.get("sampling") or [] if isinstance(s, dict)]
        if not mids or (kind != "dataset" and not models):  # no recorded spec (κ records none): the stored results
            stage = {"kappa": "kappa", "dataset": "labelled_set"}.get(kind, "compare")
            q = {"metadata.campaign": name, "metadata.stage": {"$in": [stage, "failure"]}}
            docs = sorted(store.docs_store.query(q, properties=["metadata", "completed_at"]), key=lambda d: str(d.get("completed_at", "")))
            mids = list(dict.fromkeys(d["metadata"].get("material_id") for d in docs if d["metadata"].get("material_id")))
            models = list(dict.fromkeys(d["metadata"].get("model") for d in docs if d["metadata"].get("model") not in (None, REFERENCE_MODEL)))
            sets = list(dict.fromkeys(d["metadata"].get("set_name") for d in docs if d["metadata"].get("set_name")))
        out.append(StoredCampaign(name, kind, [m for m in mids if m], [m for m in models if m], [s for s in sets if s], raw,
                                  store_dir=store_dir, recorded=par is not None))
    return out


def open_campaigns(spec_or_store, campaign: str | None = None):
    """``(store, [spec])``: the open store and the campaign(s) to read from it.

    ``spec_or_store``: a loaded spec (:func:`pftflow.spec.load_spec`), the path of a spec (YAML /
    JSON), or a store directory (holding ``store.sqlite``; every campaign in it, or only ``campaign``).
    The caller closes the store.  :class:`~pftflow.spec.SpecError` for a path that is neither."""
    if isinstance(spec_or_store, (str, Path)):
        p = Path(spec_or_store).expanduser()
        if p.is_file() and p.name == STORE_FILE:
            p = p.parent
        if p.is_dir():
            if not (p / STORE_FILE).is_file():
                raise SpecError(f"{p}: no {STORE_FILE} in this folder: pass a campaign store folder (e.g. campaigns/quickstart) or a spec YAML")
            store = make_job_store(p)
            store.connect()
            specs = _stored_campaigns(store, p)
            names = ", ".join(s.name for s in specs) or "none"
            if campaign is not None:
                specs = [s for s in specs if s.name == campaign]
            if not specs:
                store.close()
                raise SpecError(f"{p / STORE_FILE}: no campaign{'' if campaign is None else f' named {campaign!r}'} in this store "
                                f"(campaigns: {names}): run one first (pftflow run SPEC) or pick one of those")
            return store, specs
        if not p.exists():
            raise SpecError(f"{p}: no such file or folder: pass a campaign spec (YAML) or a store folder (e.g. campaigns/quickstart)")
        spec_or_store = load_spec(p)
    spec = spec_or_store
    if not hasattr(spec, "kind") or spec.kind not in KINDS:
        raise SpecError(f"{spec!r}: not a campaign spec: pass pftflow.spec.load_spec(path), a spec path or a store folder")
    return open_store(spec), [spec]


def _variant(spec) -> str | None:
    """The campaign-wide part of ``variant``: the reference of a phonons campaign, κ's conductivity."""
    raw = spec.raw if isinstance(getattr(spec, "raw", None), dict) else {}
    if spec.kind == "phonons":
        ref = getattr(spec, "reference", None)
        ref = ref.model_dump(mode="json") if ref is not None else raw.get("reference") or {}
        if ref.get("code") == "vasp":
            return "vasp"
        if ref.get("mode") == "compute":
            return (ref.get("calculator") or {}).get("name") or "reference"
        return "import"
    if spec.kind == "kappa":
        block = raw.get("kappa") if isinstance(raw.get("kappa"), dict) else raw
        return ((block or {}).get("settings") or {}).get("conductivity") or "wigner"
    return None


def results_rows(spec, res: dict, store=None) -> list[dict]:
    """The rows of :func:`load` for one campaign: the reader's rows (``res`` from
    :func:`load_results`) with identity, status and reason filled in, failed / missing pairs
    added for kinds whose reader leaves them out (``store`` needed for their reasons)."""
    kind, campaign = res.get("kind", spec.kind), res.get("campaign", spec.name)
    variant = _variant(spec)
    train = res.get("train") or {}
    mode = (train.get("finetune_report") or {}).get("mode") or ((train.get("finetune_report") or {}).get("spec") or {}).get("mode")
    n_train = (train.get("counts") or {}).get("train")
    ft_model = train.get("model") or (spec.model_names[-1] if kind == "finetune" and spec.model_names else None)
    rows = []
    for r in res.get("rows") or []:
        r = dict(r)
        row: dict[str, Any] = {"campaign": campaign, "kind": kind}
        if kind == "dataset":
            r["set_kind"] = r.pop("kind", None)
            r["model"] = r.pop("labeller", None)
            row["variant"] = r.pop("set", None)
        failed = bool(r.get("failed"))
        reason = r.pop("error", None)
        kreason = r.pop("failed_reason", None)
        if kreason and reason:
            reason = f"{kreason}: {reason}"
        reason = reason or kreason
        status = r.pop("status", None) or ("failed" if failed else "ok")
        row.update(failed=failed or status == "failed", status=status, reason=reason)
        if kind == "finetune":
            is_ft = r.get("model") == ft_model
            row.update(strategy=(mode or "fine-tuned") if is_ft else "base", n_train_structures=(n_train if is_ft else 0))
            row["variant"] = row["strategy"]
        elif kind != "dataset":
            row["variant"] = variant
        row.update({k: v for k, v in r.items() if k not in row})
        rows.append(row)
    if kind == "dataset" and store is not None:  # a set whose job failed: a row per material × set, its latest failure
        done = {(r["material_id"], r.get("variant")) for r in rows}
        latest: dict[tuple, dict] = {}
        fails = store.docs_store.query({"metadata.campaign": campaign, "metadata.stage": FAILURE_STAGE}, properties=["output", "metadata", "completed_at"])
        for d in sorted(fails, key=lambda d: str(d.get("completed_at", ""))):
            f, m = d.get("output") or {}, d.get("metadata") or {}
            latest[(f.get("material_id"), m.get("set_name"))] = {"campaign": campaign, "kind": kind, "material_id": f.get("material_id"),
                                                                  "model": f.get("model"), "variant": m.get("set_name"), "status": "failed",
                                                                  "failed": True, "reason": f.get("reason"), "failed_stage": f.get("stage"),
                                                                  "hint": f.get("hint")}
        rows += [r for k, r in latest.items() if k not in done]
    if kind in ("kappa", "finetune") and store is not None and spec.material_ids and spec.model_names:
        done = {(r["material_id"], r["model"]) for r in rows}
        pairs = [(m, mod) for m in spec.material_ids for mod in spec.model_names]
        for r in pair_status(campaign, store, pairs, done).values():
            row = {"campaign": campaign, "kind": kind, **r, "reason": r.pop("error", None)}
            if kind == "finetune":
                is_ft = r["model"] == ft_model
                row.update(strategy=(mode or "fine-tuned") if is_ft else "base", n_train_structures=(n_train if is_ft else 0))
                row["variant"] = row["strategy"]
            else:
                row["variant"] = variant
            rows.append(row)
        order_m, order_mod = spec.material_ids, spec.model_names
        rows.sort(key=lambda r: (order_mod.index(r["model"]) if r["model"] in order_mod else len(order_mod),
                                 order_m.index(r["material_id"]) if r["material_id"] in order_m else len(order_m))
                  if kind == "kappa" else
                  (order_m.index(r["material_id"]) if r["material_id"] in order_m else len(order_m),
                   order_mod.index(r["model"]) if r["model"] in order_mod else len(order_mod)))
    return rows


def results_frame(rows: list[dict]):
    """A DataFrame of :func:`results_rows` rows: identity columns first, then the
    :data:`COLUMNS` order, then any other column (thermal fields at another temperature)."""
    import pandas as pd

    df = pd.DataFrame(rows)
    for c in _ID_COLUMNS:
        if c not in df.columns:
            df[c] = None
    known = [c for c in COLUMNS if c in df.columns and c not in _ID_COLUMNS]
    rest = [c for c in df.columns if c not in _ID_COLUMNS and c not in COLUMNS]
    df = df[_ID_COLUMNS + known + rest]
    df["failed"] = df["failed"].fillna(False).astype(bool)
    return df.reset_index(drop=True)


def load(spec_or_store, *, campaign: str | None = None, material: str | Iterable[str] | None = None,
         model: str | Iterable[str] | None = None, strategy: str | Iterable[str] | None = None,
         kind: str | Iterable[str] | None = None):
    """Results as a ``pandas.DataFrame``: one row per campaign × material × model × variant.

    ``spec_or_store``: a loaded spec (:func:`pftflow.spec.load_spec`), a spec path, or a store folder
    (every campaign stored in it, found by the jobs' ``metadata.campaign`` / ``metadata.kind``).
    Filters (a value or a list of values): ``campaign``, ``material`` (material id), ``model``,
    ``strategy`` (finetune: ``base`` or the fine-tuning mode), ``kind``.  Failed pairs are rows with
    ``failed == True``, ``status == "failed"`` and the ``reason``; pairs not run yet have ``status ==
    "missing"``.  Columns and units: :data:`COLUMNS` (docs/report.md)::

        df = load("workflows/quickstart.yaml")
        df.pivot(index="material_id", columns="model", values="omega_max_abs_error_K")
    """
    import pandas as pd

    def pick(v):
        return None if v is None else ({v} if isinstance(v, str) else set(v))

    camps, kinds = pick(campaign), pick(kind)
    store, specs = open_campaigns(spec_or_store, campaign if isinstance(campaign, str) else None)
    rows: list[dict] = []
    try:
        for spec in specs:
            if (camps and spec.name not in camps) or (kinds and spec.kind not in kinds):
                continue
            rows += results_rows(spec, load_results(spec, store), store)
    finally:
        store.close()
    df = results_frame(rows) if rows else pd.DataFrame(columns=_ID_COLUMNS)
    for col, want in (("material_id", pick(material)), ("model", pick(model)), ("strategy", pick(strategy))):
        if want is not None:
            df = df[df[col].isin(want)]
    return df.reset_index(drop=True)
