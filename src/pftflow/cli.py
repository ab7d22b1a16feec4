"""Command line: ``pftflow run SPEC``, ``pftflow results [SPEC] --format table|csv|json``,
``pftflow submit SPEC [--launch]`` (FireWorks), ``pftflow validate SPEC``."""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

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
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(out)


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if np.isnan(x) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def format_results(res: dict, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(_jsonable(res), indent=2)
    if res.get("kind") in ("kappa", "finetune") and "columns" in res:
        cols = res["columns"]
        rows = [[_fmt(r.get(k), f) for k, _, f in cols] for r in res["rows"]]
        headers = [h for _, h, _ in cols]
    else:
        cols = TABLE_COLUMNS
        rows = [[_fmt(r.get(k), f) for k, _, f in cols] for r in res["rows"]]
        headers = [h for _, h, _ in cols]
    if fmt == "csv":
        import csv
        import io

        buf = io.StringIO()
        w = csv.writer(buf)
        keys = [k for k, _, _ in cols]
        w.writerow(keys)
        for r in res["rows"]:
            w.writerow(["" if r.get(k) is None else r.get(k) for k in keys])
        return buf.getvalue()
    text = render_table(headers, rows)
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


def _quiet_library_warnings() -> None:
    """Deprecation chatter from jobflow/monty/e3nn would garble the progress bar."""
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message="Some jobs are not connected")
    warnings.filterwarnings("ignore", message=".*TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD.*")
    # CHGNet converts to pymatgen for its graph and says FixSymmetry is dropped there; the ASE
    # optimizer still applies the constraint, so the relaxation keeps its symmetry.
    warnings.filterwarnings("ignore", message="Only FixAtoms and FixCartesian is supported")
    warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True to a scalar")


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _quiet_library_warnings()
    parser = argparse.ArgumentParser(prog="pftflow", description="Benchmark and fine-tune MLIPs for phonons.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_run = sub.add_parser("run", help="run a campaign spec (YAML) on its store")
    p_run.add_argument("spec")
    p_run.add_argument("--no-progress", action="store_true", help="no progress bar")
    p_run.add_argument("--no-plots", action="store_true", help="skip band-structure PNGs")
    p_res = sub.add_parser("results", help="material x model metrics from the store")
    p_res.add_argument("spec", nargs="?", help="campaign spec (default: the last one run from this directory)")
    p_res.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p_sub = sub.add_parser("submit", help="add the campaign to a FireWorks LaunchPad (embedded mongomock by default)")
    p_sub.add_argument("spec")
    p_sub.add_argument("--launch", action="store_true", help="also run it here with rapidfire")
    p_val = sub.add_parser("validate", help="check a campaign spec without running it")
    p_val.add_argument("spec")
    args = parser.parse_args(argv)

    from pftflow.campaign import CampaignSpec, SpecError, load_results, resolve_spec, run_campaign

    try:
        if args.cmd == "validate":
            spec = CampaignSpec.from_yaml(args.spec)
            print(f"{args.spec}: OK ({spec.kind} campaign '{spec.name}', {len(spec.materials)} materials, {len(spec.models)} models)")
            return 0
        if args.cmd == "run":
            spec = CampaignSpec.from_yaml(args.spec)
            summary = run_campaign(spec, progress=not args.no_progress, plots=not args.no_plots)
            print(json.dumps(_jsonable(summary), indent=2))
            print(format_results(load_results(spec), "table"))
            return 0 if summary["failed_jobs"] == 0 else 1
        if args.cmd == "submit":
            from pftflow.campaign import submit_campaign

            spec = CampaignSpec.from_yaml(args.spec)
            print(json.dumps(_jsonable(submit_campaign(spec, launch=args.launch)), indent=2))
            return 0
        if args.cmd == "results":
            spec = resolve_spec(args.spec)
            print(format_results(load_results(spec), args.format))
            return 0
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
