"""``pftflow report``: a folder with a Markdown and an HTML summary of a campaign, and its PNG plots.

:func:`write_report` reads the store only (it never runs a job) through :func:`pftflow.results.load`'s
rows, so every number in the tables is a value of that DataFrame (or a summary of it by
:func:`pftflow.phonons.metrics.summarize` / :func:`pftflow.kappa.metrics.mean_metrics`):

* phonons / finetune: MDR summary per model, per-material metrics, band errors, parity plots of
  ω_max, S, F and C_V, band overlays (the campaign kind's band plots, :data:`pftflow.flows.campaigns.KINDS`);
  finetune also before / after fine-tuning, the training run and error vs number of training structures;
* kappa: κ, SRD, SRE, SRME per material × model, mean SRE / SRME per model, κ vs DFT on log axes;
* dataset: counts and energy / force statistics per labelled set;
* every campaign: the failed and missing pairs with their reason.

``index.html`` is self-contained (inline CSS, PNGs referenced relatively): the folder can be moved or
zipped whole.  Layout and columns: docs/report.md.
"""

from __future__ import annotations

import datetime as dt
import html
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pftflow.flows.benchmark import phonons_band_plots
from pftflow.flows.campaigns import KINDS
from pftflow.kappa.metrics import mean_metrics
from pftflow.phonons.metrics import summarize
from pftflow.phonons.plotting import plot_error_vs_n, plot_kappa_parity, plot_parity_panels
from pftflow.results import COLUMNS, column_info, load_results, open_campaigns, results_frame, results_rows

#: display formats of table cells (column -> format); other numbers: 4 significant digits
FORMATS = {
    "omega_max_K": "{:.1f}", "omega_max_K_ref": "{:.1f}", "entropy_abs_error_300K_J_per_K_mol": "{:.2f}",
    "free_energy_abs_error_300K_kJ_per_mol": "{:.3f}", "heat_capacity_abs_error_300K_J_per_K_mol": "{:.3f}", "omega_max_error_K": "{:+.1f}", "omega_max_abs_error_K": "{:.1f}",
    "entropy_error_300K_J_per_K_mol": "{:+.2f}", "free_energy_error_300K_kJ_per_mol": "{:+.3f}",
    "heat_capacity_error_300K_J_per_K_mol": "{:+.3f}", "mesh_mae_THz": "{:.3f}", "mesh_rmse_THz": "{:.3f}", "band_rmse_THz": "{:.3f}",
    "kappa_W_per_mK": "{:.3f}", "kappa_dft_W_per_mK": "{:.3f}", "srd": "{:+.3f}", "sre": "{:.3f}", "srme": "{:.3f}",
    "omega_max_mae_K": "{:.1f}", "entropy_mae_300K_J_per_K_mol": "{:.2f}", "free_energy_mae_300K_kJ_per_mol": "{:.3f}",
    "heat_capacity_mae_300K_J_per_K_mol": "{:.3f}", "stability_accuracy": "{:.2f}", "mean_sre": "{:.3f}", "mean_srme": "{:.3f}",
    "energy_mean_eV_per_atom": "{:.4f}", "energy_std_eV_per_atom": "{:.4f}", "force_rms_eV_per_A": "{:.4f}",
    "force_max_eV_per_A": "{:.4f}", "displacement_std_A": "{:.4f}", "min_distance_A": "{:.3f}", "seconds_per_structure": "{:.2f}",
}

#: (column, header) of the per-material table of a harmonic benchmark
MATERIAL_TABLE = [
    ("material_id", "material"), ("model", "model"), ("omega_max_K_ref", "ω_max ref [K]"), ("omega_max_K", "ω_max [K]"),
    ("omega_max_error_K", "Δω_max [K]"), ("entropy_error_300K_J_per_K_mol", "ΔS300 [J/K/mol]"),
    ("free_energy_error_300K_kJ_per_mol", "ΔF300 [kJ/mol]"), ("heat_capacity_error_300K_J_per_K_mol", "ΔCv300 [J/K/mol]"),
    ("stable", "stable"), ("stable_ref", "stable ref"), ("status", "status"),
]
#: band errors of a harmonic benchmark
BAND_TABLE = [
    ("material_id", "material"), ("model", "model"), ("mesh_mae_THz", "BZ-mesh MAE [THz]"), ("mesh_rmse_THz", "BZ-mesh RMSE [THz]"),
    ("band_rmse_THz", "band-path RMSE [THz]"), ("mesh", "mesh"),
]
#: MDR summary per model (keys of :func:`pftflow.phonons.metrics.summarize`)
SUMMARY_TABLE = [
    ("model", "model"), ("n_evaluated", "n"), ("n_failed", "failed"), ("n_missing", "missing"), ("omega_max_mae_K", "ω_max MAE [K]"),
    ("entropy_mae_300K_J_per_K_mol", "S MAE [J/K/mol]"), ("free_energy_mae_300K_kJ_per_mol", "F MAE [kJ/mol]"),
    ("heat_capacity_mae_300K_J_per_K_mol", "Cv MAE [J/K/mol]"), ("mesh_mae_THz", "BZ MAE [THz]"), ("band_rmse_THz", "band RMSE [THz]"),
    ("stability_accuracy", "stability acc."),
]
KAPPA_TABLE = [
    ("material_id", "material"), ("name", "name"), ("model", "model"), ("kappa_W_per_mK", "κ [W/m/K]"),
    ("kappa_dft_W_per_mK", "κ DFT [W/m/K]"), ("srd", "SRD"), ("sre", "SRE"), ("srme", "SRME"), ("status", "status"),
]
KAPPA_SUMMARY = [("model", "model"), ("n_materials", "n"), ("n_failed", "failed"), ("n_missing", "missing"), ("mean_sre", "mean SRE"),
                 ("mean_srme", "mean SRME")]
DATASET_TABLE = [
    ("material_id", "material"), ("variant", "set"), ("set_kind", "kind"), ("model", "labeller"), ("n_structures", "n"), ("n_atoms", "atoms"),
    ("energy_mean_eV_per_atom", "E mean [eV/atom]"), ("energy_std_eV_per_atom", "E std [eV/atom]"), ("force_rms_eV_per_A", "F rms [eV/Å]"),
    ("force_max_eV_per_A", "|F| max [eV/Å]"), ("displacement_std_A", "u std [Å]"), ("min_distance_A", "d min [Å]"),
    ("seconds_per_structure", "s/structure"),
]
#: the provenance table: one row per model × distinct (code, machine) that computed its rows
PROVENANCE_TABLE = [("model", "model"), ("model_file", "weights file"), ("model_sha256", "sha256"), ("pftflow_version", "pftflow"),
                    ("git_commit", "git commit"), ("key_versions", "packages"), ("cpu", "CPU"), ("blas", "BLAS kernel"),
                    ("n_rows", "rows"), ("provenance_source", "from")]
FAILURE_TABLE = [("material_id", "material"), ("model", "model"), ("status", "status"), ("failed_stage", "stage"), ("reason", "reason"),
                 ("hint", "hint")]
#: (absolute-error column, label) compared before / after fine-tuning and plotted against N
FINETUNE_METRICS = [
    ("omega_max_abs_error_K", "|Δω_max| [K]"), ("entropy_abs_error_300K_J_per_K_mol", "|ΔS300| [J/K/mol]"),
    ("free_energy_abs_error_300K_kJ_per_mol", "|ΔF300| [kJ/mol]"), ("heat_capacity_abs_error_300K_J_per_K_mol", "|ΔCv300| [J/K/mol]"),
    ("mesh_mae_THz", "BZ MAE [THz]"), ("band_rmse_THz", "band RMSE [THz]"),
]


# ------------------------------------------------------------------------------------ blocks
@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    caption: str | None = None


@dataclass
class Image:
    src: str  # relative to the report folder
    alt: str
    caption: str | None = None


@dataclass
class Section:
    title: str
    blocks: list = field(default_factory=list)  # str (a paragraph), Table, Image, or a nested Section
    level: int = 2
    anchor: str = ""  # HTML id (default: the title's slug)

    def __post_init__(self):
        self.anchor = self.anchor or _slug(self.title)


def _images(blocks) -> list[Image]:
    out = []
    for b in blocks:
        out += _images(b.blocks) if isinstance(b, Section) else [b] if isinstance(b, Image) else []
    return out


@dataclass
class Report:
    """What :func:`write_report` wrote."""

    out_dir: Path
    index_md: Path
    index_html: Path
    pngs: list[Path]
    campaigns: list[str]
    notes: list[str]  # plots skipped, and why

    def text(self) -> str:
        lines = [f"report: {self.index_html}", f"        {self.index_md}", f"        {len(self.pngs)} PNG(s) in {self.out_dir}"]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def fmt(value: Any, column: str | None = None) -> str:
    """One table cell: ``-`` for None / NaN, the column's format (:data:`FORMATS`), else 4 significant digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, (list, tuple)):
        return "×".join(str(v) for v in value) if all(isinstance(v, int) for v in value) else ", ".join(map(str, value))
    if hasattr(value, "tolist"):  # numpy scalar / array
        return fmt(value.tolist(), column)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        f = FORMATS.get(column or "")
        return f.format(value) if f else f"{value:.4g}"
    return str(value)


def _table(records: list[dict], columns: list[tuple[str, str]], caption: str | None = None) -> Table:
    return Table([h for _, h in columns], [[fmt(r.get(c), c) for c, _ in columns] for r in records], caption)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "campaign"


# ------------------------------------------------------------------------------------ sections
def _summaries(records: list[dict], models: list[str]) -> list[dict]:
    out = []
    for m in models:
        mine = [r for r in records if r["model"] == m]
        done = [r for r in mine if r.get("status") != "missing"]
        s = summarize(done) if done else {"n_evaluated": 0, "n_failed": 0}
        out.append({"model": m, **s, "n_missing": len(mine) - len(done)})
    return out


def _finetune_blocks(spec, records: list[dict], res: dict) -> list:
    """Before / after fine-tuning per test material, and the training run."""
    blocks: list = []
    base = [r for r in records if r.get("strategy") == "base"]
    tuned = [r for r in records if r.get("strategy") not in (None, "base")]
    rows = []
    for b in base:
        for t in (t for t in tuned if t["material_id"] == b["material_id"]):
            for col, label in FINETUNE_METRICS:
                x, y = b.get(col), t.get(col)
                ok = all(isinstance(v, (int, float)) and not math.isnan(v) for v in (x, y))
                rows.append([b["material_id"], label, fmt(x, col), fmt(y, col), f"{y - x:+.3g}" if ok else "-",
                             f"{100 * (y - x) / x:+.1f} %" if ok and x else "-"])
    if rows:
        blocks.append(Table(["material", "error", f"base ({base[0]['model']})", f"fine-tuned ({tuned[0]['model']})", "change", "change [%]"], rows,
                            "absolute errors against the reference; negative change = the fine-tuned model is closer"))
    else:
        blocks.append("No material has both a base and a fine-tuned result yet.")
    tr = res.get("train") or {}
    if tr:
        cnt, rep, cot = tr.get("counts") or {}, tr.get("finetune_report") or {}, tr.get("cotrain_errors") or {}
        before, after = cot.get("before") or {}, cot.get("after") or {}
        rows = [
            ["fine-tuned model", tr.get("model")],
            ["strategy (mode)", rep.get("mode")],
            ["training / validation / co-training structures", f"{cnt.get('train', '-')} / {cnt.get('valid', '-')} / {cnt.get('cotrain', '-')}"],
            ["trainable parameters", f"{rep.get('n_trainable', '-')} of {rep.get('n_parameters_base', '-')}"],
            ["best epoch / best validation loss", f"{fmt(tr.get('best_epoch'))} / {fmt(tr.get('best_valid_loss'))}"],
            ["training wall time [s]", fmt(tr.get("wall_time_s"))],
            ["co-training force MAE before → after [eV/Å]", f"{fmt(before.get('force_mae_eV_per_A'))} → {fmt(after.get('force_mae_eV_per_A'))}"],
        ]
        blocks.append(Table(["training run", "value"], [[a, fmt(b)] for a, b in rows]))
    return blocks


def _phonon_sections(spec, records: list[dict], res: dict, store, out_dir: Path, sub: str, notes: list[str]) -> list[Section]:
    models = list(dict.fromkeys([*spec.model_names, *(r["model"] for r in records)]))
    secs = [Section("MDR metrics per model", [
        _table(_summaries(records, models), SUMMARY_TABLE,
               "mean absolute errors over the materials at 300 K (docs/metrics.md); failed and missing pairs are counted, not averaged"),
    ])]
    if spec.kind == "finetune":
        secs.append(Section("Before / after fine-tuning", _finetune_blocks(spec, records, res)))
    secs.append(Section("Per material", [_table(records, MATERIAL_TABLE, "signed errors model − reference")]))
    secs.append(Section("Band errors", [_table(records, BAND_TABLE, "frequency errors on the BZ mesh and along the band path")]))
    par = Section("Parity plots", [])
    try:
        p = plot_parity_panels(records, out_dir / sub / "parity.png", title=f"{spec.name}: model vs reference")
        par.blocks.append(Image(f"{sub}/parity.png", "parity plots of ω_max, S, F and C_V",
                                "model vs reference at 300 K, one colour per model, y = x line; MAE per model in each panel"))
    except ValueError as exc:
        notes.append(f"{spec.name}: parity plots not drawn: {exc}")
        par.blocks.append(f"Not drawn: {exc}.")
    secs.append(par)
    bands = Section("Band structures", [])
    plots = KINDS[spec.kind].plots or (phonons_band_plots if spec.kind.startswith("finetune") else None)
    try:
        pngs = plots(spec, store, out_dir / sub) if plots else []
    except Exception as exc:  # noqa: BLE001 - a band plot that cannot be drawn must not lose the report
        pngs = []
        notes.append(f"{spec.name}: band plots not drawn: {type(exc).__name__}: {exc}")
    for p in pngs:
        bands.blocks.append(Image(f"{sub}/{Path(p).name}", f"band structure {Path(p).stem}",
                                  f"{Path(p).stem.removesuffix('_bands')}: reference (black) and each model on the reference's q-path"))
    if not pngs:
        bands.blocks.append("No band structure stored yet (the reference analysis of a material is needed).")
    secs.append(bands)
    return secs


def _kappa_sections(spec, records: list[dict], out_dir: Path, sub: str, notes: list[str]) -> list[Section]:
    models = list(dict.fromkeys([*spec.model_names, *(r["model"] for r in records)]))
    summ = []
    for m in models:
        mine = [r for r in records if r["model"] == m]
        done = [r for r in mine if r.get("status") != "missing"]
        s = mean_metrics(done)
        s["n_failed"] = sum(bool(r.get("failed")) for r in done)
        summ.append({"model": m, **s, "n_missing": len(mine) - len(done)})
    secs = [Section("κ SRME per model", [_table(summ, KAPPA_SUMMARY, "means over materials; a failed material counts SRE = SRME = 2 (k_SRME)")]),
            Section("κ per material", [_table(records, KAPPA_TABLE, "κ = trace/3 of the total κ tensor at the first temperature")])]
    sc = Section("κ model vs DFT", [])
    try:
        plot_kappa_parity(records, out_dir / sub / "kappa.png", title=f"{spec.name}: κ model vs DFT")
        sc.blocks.append(Image(f"{sub}/kappa.png", "kappa model vs DFT", "log axes, y = x (solid) and factor 2 (dashed)"))
    except ValueError as exc:
        notes.append(f"{spec.name}: κ plot not drawn: {exc}")
        sc.blocks.append(f"Not drawn: {exc}.")
    secs.append(sc)
    return secs


def _dataset_sections(spec, records: list[dict]) -> list[Section]:
    per = {}
    for r in (r for r in records if r.get("status") == "ok"):
        p = per.setdefault(r["material_id"], {"material_id": r["material_id"], "n_sets": 0, "n_structures": 0})
        p["n_sets"] += 1
        p["n_structures"] += int(r.get("n_structures") or 0)
    ok = [r for r in records if r.get("status") == "ok"]
    if not ok:
        return [Section("Labelled sets", ["No labelled set stored yet."])]
    return [Section("Labelled sets per material", [_table(list(per.values()), [("material_id", "material"), ("n_sets", "sets"),
                                                                                ("n_structures", "structures")])]),
            Section("Set statistics", [_table(ok, DATASET_TABLE, "energies per atom, forces per component (rms) and per atom (max norm)")])]


def _error_vs_n(records: list[dict], out_dir: Path, notes: list[str]) -> Section | None:
    """Error vs number of training structures over the finetune rows of the report (None without any)."""
    rows = [r for r in records if str(r.get("kind", "")).startswith("finetune") and r.get("status") == "ok" and r.get("n_train_structures") is not None
            and not (isinstance(r["n_train_structures"], float) and math.isnan(r["n_train_structures"]))]
    if not rows:
        return None
    metrics = FINETUNE_METRICS[:2] + FINETUNE_METRICS[4:5]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["campaign"], r["strategy"], int(r["n_train_structures"])), []).append(r)
    points = []
    for (camp, strategy, n), mine in groups.items():
        if strategy == "base":
            continue
        for s, rr in (("base", [r for r in rows if r["campaign"] == camp and r["strategy"] == "base"]), (strategy, mine)):
            if rr:
                pt = {"series": strategy, "n": 0 if s == "base" else n}
                for col, _ in metrics:
                    v = [float(r[col]) for r in rr if r.get(col) is not None and not math.isnan(float(r[col]))]
                    pt[col] = sum(v) / len(v) if v else None
                points.append(pt)
    sec = Section("Error vs number of training structures", [])
    try:
        plot_error_vs_n(points, out_dir / "error_vs_n.png", [(c, f"mean {lab}") for c, lab in metrics],
                        title="mean error over test materials (N = 0: base model)")
        sec.blocks.append(Image("error_vs_n.png", "error vs number of training structures",
                                "mean absolute error over the test materials against the structures in the fine-tuning set; N = 0 is the base model"))
    except ValueError as exc:
        notes.append(f"error vs N not drawn: {exc}")
        sec.blocks.append(f"Not drawn: {exc}.")
    return sec


def _provenance_section(records: list[dict]) -> Section:
    """Who computed the rows: model weights (sha256), pftflow version and commit, packages, CPU and BLAS
    kernel, one line per model and distinct combination (a campaign resumed on another machine has two)."""
    groups: dict[tuple, dict] = {}
    for r in records:
        if r.get("status") == "missing":
            continue
        v = r.get("versions") if isinstance(r.get("versions"), dict) else {}
        key_versions = ", ".join(f"{p} {v[p]}" for p in ("numpy", "phonopy", "phono3py", "torch") if v.get(p))
        row = {c: r.get(c) for c, _ in PROVENANCE_TABLE if c not in ("key_versions", "n_rows")}
        row["model_sha256"] = (row["model_sha256"] or "")[:16] or None
        row["git_commit"] = (row["git_commit"] or "")[:12] + ("+dirty" if str(row["git_commit"]).endswith("+dirty") else "") or None
        row["key_versions"] = key_versions or None
        g = groups.setdefault(tuple(sorted((k, str(x)) for k, x in row.items())), {**row, "n_rows": 0})
        g["n_rows"] += 1
    text = ("Where the numbers came from, read from the stored documents; pftflow results --format json has the full sha256 "
            "and every package version per row. Round-off-sensitive quantities can differ in their last digits between BLAS "
            "kernels (docs/metrics.md, noise floor).")
    return Section("Provenance", [text, _table(list(groups.values()), PROVENANCE_TABLE)] if groups else [text, "No stored results yet."])


def _campaign_section(spec, store, out_dir: Path, multi: bool, notes: list[str]) -> tuple[Section, list[dict]]:
    res = load_results(spec, store)
    df = results_frame(results_rows(spec, res, store))
    records = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in df.to_dict("records")]
    sub = _slug(spec.name)
    raw = spec.raw if isinstance(getattr(spec, "raw", None), dict) else {}
    desc = getattr(spec, "description", None) or raw.get("description")
    counts = {s: sum(r["status"] == s for r in records) for s in ("ok", "failed", "missing")}
    what = ("set" if spec.kind == "dataset" else "material × model pair") + ("" if len(records) == 1 else "s")
    intro = (f"Kind **{spec.kind}**" + (f": {desc}" if desc else "") + f". {len(records)} {what}: {counts['ok']} ok, "
             f"{counts['failed']} failed, {counts['missing']} missing.")
    sec = Section(f"Campaign {spec.name}" if multi else "Overview", [intro], level=2)
    if spec.kind == "phonons" or spec.kind.startswith("finetune"):
        subs = _phonon_sections(spec, records, res, store, out_dir, sub, notes)
    elif spec.kind == "kappa":
        subs = _kappa_sections(spec, records, out_dir, sub, notes)
    else:
        subs = _dataset_sections(spec, records)
    subs.append(_provenance_section(records))
    bad = [r for r in records if r["status"] != "ok"]
    none = "None: every pair has a result." if records else "Nothing stored yet for this campaign (pftflow status shows what ran)."
    subs.append(Section("Failed and missing", [_table(bad, FAILURE_TABLE, "tracebacks: the campaign's logs/ folder; per stage: pftflow status")
                                               if bad else none]))
    for s in subs:
        s.level = 3
        s.anchor = f"{sub}-{s.anchor}" if multi else s.anchor
    sec.blocks += subs
    return sec, records


def write_report(spec_or_store, out_dir: str | Path | None = None, *, campaign: str | None = None) -> Report:
    """Write ``index.md``, ``index.html`` and the PNGs of a campaign's report into ``out_dir``
    (default ``<campaign store folder>/report``) and return what was written.

    ``spec_or_store``: as for :func:`pftflow.results.load` (a loaded spec, a spec path, or a store
    folder: every campaign in it, or only ``campaign``).  Reads the store; runs nothing."""
    store, specs = open_campaigns(spec_or_store, campaign)
    try:
        out = Path(out_dir) if out_dir is not None else Path(specs[0].store_dir) / "report"
        out.mkdir(parents=True, exist_ok=True)
        for old in [out / "error_vs_n.png", *(p for s in specs for p in (out / _slug(s.name)).glob("*.png"))]:
            old.unlink(missing_ok=True)  # a rerun leaves no stale plot of its own behind
        notes: list[str] = []
        sections, records = [], []
        for spec in specs:
            sec, rec = _campaign_section(spec, store, out, len(specs) > 1, notes)
            sections.append(sec)
            records += rec
    finally:
        store.close()
    nsec = _error_vs_n(records, out, notes)
    if nsec is not None:
        sections.append(nsec)
    names = [s.name for s in specs]
    title = f"pftflow report: {', '.join(names)}"
    where = f"store {Path(specs[0].store_dir)}" if getattr(specs[0], "store_dir", None) else "store"
    meta = f"Generated {dt.datetime.now().strftime('%Y-%m-%d %H:%M')} from the {where} by `pftflow report` (reads the store only)."
    md = out / "index.md"
    md.write_text(render_markdown(title, meta, sections, notes))
    page = out / "index.html"
    page.write_text(render_html(title, meta, sections, notes))
    pngs = sorted({out / im.src for im in _images(sections)})
    return Report(out, md, page, pngs, names, notes)


# ------------------------------------------------------------------------------------ rendering
def _md_cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def _md(blocks: list, out: list[str]) -> None:
    for b in blocks:
        if isinstance(b, Section):
            out += [f"{'#' * b.level} {b.title}", ""]
            _md(b.blocks, out)
        elif isinstance(b, Table):
            if b.caption:
                out += [f"*{b.caption}*", ""]
            out.append("| " + " | ".join(_md_cell(h) for h in b.headers) + " |")
            out.append("|" + "|".join("---" for _ in b.headers) + "|")
            out += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in b.rows]
            out.append("")
        elif isinstance(b, Image):
            out += [f"![{b.alt}]({b.src})", ""]
            if b.caption:
                out += [f"*{b.caption}*", ""]
        else:
            out += [str(b), ""]


def render_markdown(title: str, meta: str, sections: list[Section], notes: list[str]) -> str:
    out = [f"# {title}", "", meta, ""]
    _md(sections, out)
    if notes:
        out += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(out)


CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1250px;padding:0 20px;color:#1d2330;line-height:1.45}
h1{font-size:1.6em;border-bottom:2px solid #2c5d8f;padding-bottom:6px}
h2{font-size:1.3em;margin-top:1.8em;color:#2c5d8f}
h3{font-size:1.08em;margin-top:1.4em}
.meta{color:#667;font-size:.9em}
nav{font-size:.9em;background:#f3f6fa;padding:8px 14px;border-radius:6px}
nav a{margin-right:14px;text-decoration:none;color:#2c5d8f}
.tw{overflow-x:auto;margin:6px 0 4px}
table{border-collapse:collapse;font-size:.86em}
th,td{border:1px solid #cfd6e0;padding:3px 9px;white-space:nowrap}
th{background:#e8eef6;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}
tr:nth-child(even) td{background:#fafbfd}
td.failed{color:#b00020;font-weight:600}
td.missing{color:#a06000}
td.wrap{white-space:normal;min-width:260px;max-width:520px}
.cap{color:#556;font-size:.85em;font-style:italic;margin:2px 0 8px}
figure{margin:10px 0 18px}
figure img{max-width:100%;border:1px solid #dde3ea}
.fig1 img{max-width:min(100%,900px)}
.figs{display:flex;flex-wrap:wrap;gap:14px}
.figs figure{flex:1 1 560px;max-width:820px}
.notes li{color:#a06000}
"""

_NUM = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?( %)?$")


def _html(blocks: list, out: list[str]) -> None:
    i = 0
    while i < len(blocks):
        b = blocks[i]
        if isinstance(b, Section):
            out.append(f'<h{b.level} id="{b.anchor}">{html.escape(b.title)}</h{b.level}>')
            _html(b.blocks, out)
        elif isinstance(b, Table):
            out.append('<div class="tw"><table><thead><tr>' + "".join(f"<th>{html.escape(h)}</th>" for h in b.headers) + "</tr></thead><tbody>")
            for r in b.rows:
                cells = []
                for h, c in zip(b.headers, r):
                    cls = "n" if _NUM.match(c) else ("failed" if c == "failed" else "missing" if c == "missing" else "wrap" if h in ("reason", "hint") else "")
                    cells.append(f'<td class="{cls}">{html.escape(c)}</td>' if cls else f"<td>{html.escape(c)}</td>")
                out.append("<tr>" + "".join(cells) + "</tr>")
            out.append("</tbody></table></div>")
            if b.caption:
                out.append(f'<div class="cap">{html.escape(b.caption)}</div>')
        elif isinstance(b, Image):
            imgs = [b]
            while i + 1 < len(blocks) and isinstance(blocks[i + 1], Image):  # consecutive figures side by side
                i += 1
                imgs.append(blocks[i])
            out.append('<div class="figs">' if len(imgs) > 1 else '<div class="fig1">')
            for im in imgs:
                cap = f"<figcaption class=\"cap\">{html.escape(im.caption)}</figcaption>" if im.caption else ""
                out.append(f'<figure><img src="{html.escape(im.src)}" alt="{html.escape(im.alt)}">{cap}</figure>')
            out.append("</div>")
        else:
            text = html.escape(str(b))
            text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
            out.append(f"<p>{text}</p>")
        i += 1


def render_html(title: str, meta: str, sections: list[Section], notes: list[str]) -> str:
    nav = []
    for s in sections:
        nav.append(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>')
        nav += [f'<a href="#{x.anchor}">{html.escape(x.title)}</a>' for x in s.blocks if isinstance(x, Section)]
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{html.escape(title)}</title>",
           f"<style>{CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1>",
           f'<p class="meta">{html.escape(meta).replace("`pftflow report`", "<code>pftflow report</code>")}</p>',
           "<nav>" + "".join(nav) + "</nav>"]
    _html(sections, out)
    if notes:
        out.append('<h2 id="notes">Notes</h2><ul class="notes">' + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def columns_markdown() -> str:
    """The column reference of :func:`pftflow.results.load` as a Markdown table (docs/report.md)."""
    lines = ["| column | unit | description |", "|---|---|---|"]
    lines += [f"| `{c}` | {column_info(c)[0]} | {column_info(c)[1].replace('|', chr(92) + '|')} |" for c in COLUMNS]
    return "\n".join(lines)
