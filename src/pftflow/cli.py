"""Command line (thin: parses arguments, calls spec / run / results).

``pftflow run SPEC [--wait]``, ``pftflow results [SPEC] --format table|csv|json``, ``pftflow status [SPEC]``,
``pftflow report [SPEC] [--out DIR]`` (Markdown + HTML + PNGs), ``pftflow submit SPEC
[--launch]`` (FireWorks), ``pftflow validate SPEC`` (the plan), ``pftflow schema`` (JSON Schema).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _quiet_library_warnings() -> None:
    """Library chatter that is not actionable for a user and would garble the progress bar.

    Each filter names the library message; pftflow's own warnings are never silenced."""
    import warnings

    for message in (
        "Some jobs are not connected",  # jobflow: independent materials are unconnected by design
        "cd is deprecated",  # jobflow's local manager uses monty's cd
        ".*TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD.*",  # sevenn's legacy checkpoint loading
        # CHGNet converts to pymatgen for its graph and says FixSymmetry is dropped there; the ASE
        # optimizer still applies the constraint, so the relaxation keeps its symmetry.
        "Only FixAtoms and FixCartesian is supported",
        "Converting a tensor with requires_grad=True to a scalar",  # chgnet
    ):
        warnings.filterwarnings("ignore", message=message)
    for module in ("e3nn", "torch", "monty", "jobflow", "maggma", "pymatgen", "chgnet", "sevenn", "mace", "spglib", "phonopy", "fireworks"):
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=module)
        warnings.filterwarnings("ignore", category=FutureWarning, module=module)


def _spec(path: str):
    from pftflow.spec import load_spec  # local: the CLI parses its arguments before importing the pipeline (torch, phonopy)

    return load_spec(path)


def _resolve_spec(path: str | None):
    """The spec at ``path``, or the last campaign run from this directory."""
    from pftflow.run import LAST_CAMPAIGN_FILE  # local: the CLI parses its arguments before importing the pipeline (torch, phonopy)
    from pftflow.spec import SpecError  # local: the CLI parses its arguments before importing the pipeline (torch, phonopy)

    if path is None:
        if not LAST_CAMPAIGN_FILE.is_file() or not LAST_CAMPAIGN_FILE.read_text().strip():
            raise SpecError("no campaign given and none run from this directory yet: pass the spec, e.g. 'pftflow results workflows/quickstart.yaml'")
        path = LAST_CAMPAIGN_FILE.read_text().strip()
    return _spec(path)


def _print_plan(spec, path: str) -> None:
    from pftflow.spec import plan  # local: the CLI parses its arguments before importing the pipeline (torch, phonopy)

    p = plan(spec)
    print(f"{path}: OK — {spec.kind} campaign '{spec.name}'")
    for key in ("materials", "models"):
        vals = p.get(key)
        if vals:
            shown = ", ".join(map(str, vals[:12])) + (f", … ({len(vals)} in all)" if len(vals) > 12 else "")
            print(f"  {key} ({len(vals)}): {shown}")
    units = p.get("units") or []
    shown = units if len(units) <= 40 else units[:40]
    for u in shown:
        who = " × ".join(str(x) for x in (u.get("material"), u.get("model")) if x) or "campaign"
        n = u["n_jobs"] if u["n_jobs"] == u.get("n_jobs_min", u["n_jobs"]) else f"{u.get('n_jobs_min')}–{u['n_jobs']}"
        print(f"    {who}: {' → '.join(u['stages'])} ({n} jobs)")
    if len(units) > len(shown):
        print(f"    … {len(units) - len(shown)} more")
    from pftflow.run.memory import estimate_memory  # local: the CLI parses its arguments before importing the pipeline (torch, phonopy)

    for line in estimate_memory(spec).lines():
        print(f"  {line}")
    n_jobs = p["n_jobs"] if p["n_jobs"] == p.get("n_jobs_min", p["n_jobs"]) else f"{p.get('n_jobs_min')}–{p['n_jobs']} (κ: fc3 jobs only for materials that pass the fc2 check)"
    print(f"  jobs: {n_jobs}")
    store = Path(spec.store_dir) / "store.sqlite"
    if spec.store_uri:
        print("  store: MongoDB (not contacted by validate)")
    elif store.is_file():
        from pftflow.flows.campaigns import KINDS  # local: the CLI parses its arguments before importing the pipeline (torch, phonopy)
        from pftflow.run import open_store  # local: the CLI parses its arguments before importing the pipeline (torch, phonopy)

        st = open_store(spec)
        try:
            n_done = st.count({"metadata.campaign": spec.name})
            _, reused = KINDS[spec.kind].build(spec, st)
        finally:
            st.close()
        n_reused = sum(len(v) for k, v in reused.items() if k != "jobs")
        print(f"  store: {store} holds {n_done} documents of this campaign; a run would reuse {len(reused.get('jobs', []))} stored job(s), {n_reused} whole stage(s)")
    else:
        print(f"  store: {store} (new)")


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _quiet_library_warnings()
    parser = argparse.ArgumentParser(prog="pftflow", description="Benchmark and fine-tune MLIPs for phonons.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_run = sub.add_parser("run", help="run a campaign spec (YAML) on its store")
    p_run.add_argument("spec")
    p_run.add_argument("--no-progress", action="store_true", help="no progress bar")
    p_run.add_argument("--no-plots", action="store_true", help="skip band-structure PNGs")
    p_run.add_argument("--json", action="store_true", help="print the run summary as JSON instead of text")
    p_run.add_argument("--wait", nargs="?", type=float, const=float("inf"), default=0.0, metavar="SECONDS",
                       help="if another run holds the campaign, wait for it (up to SECONDS; no value: as long as it takes) instead of refusing")
    p_res = sub.add_parser("results", help="material x model metrics from the store")
    p_res.add_argument("spec", nargs="?", help="campaign spec (default: the last one run from this directory)")
    p_res.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p_sub = sub.add_parser("submit", help="add the campaign to a FireWorks LaunchPad (embedded mongomock by default)")
    p_sub.add_argument("spec")
    p_sub.add_argument("--launch", action="store_true", help="also run it here with rapidfire")
    p_sub.add_argument("--fworker", metavar="NAME", help="with --launch: FireWorker name to run as (default: fireworks.fworker of the spec)")
    p_sub.add_argument("--category", action="append", choices=["gpu", "cpu-heavy", "light"], metavar="CATEGORY",
                       help="with --launch: pull only jobs of this resource category (gpu, cpu-heavy, light; repeat for several; default: all)")
    p_sub.add_argument("--max-launches", type=int, default=0, metavar="N", help="with --launch: stop after N jobs (default 0: all)")
    p_st = sub.add_parser("status", help="per material x model x stage: done, reused, failed (with reason) or missing; wall time per stage")
    p_st.add_argument("spec", nargs="?", help="campaign spec (default: the last one run from this directory)")
    p_st.add_argument("--json", action="store_true", help="print the status as JSON")
    p_rep = sub.add_parser("report", help="write a Markdown + HTML summary with metric tables and PNG plots (reads the store only)")
    p_rep.add_argument("spec", nargs="?", help="campaign spec or store folder (default: the last campaign run from this directory)")
    p_rep.add_argument("--out", metavar="DIR", help="report folder (default: <campaign store folder>/report)")
    p_rep.add_argument("--campaign", metavar="NAME", help="with a store folder holding several campaigns: only this one")
    p_exp = sub.add_parser("export", help="write the labelled sets of a dataset campaign to extxyz (REF_energy / REF_forces / REF_stress)")
    p_exp.add_argument("spec", nargs="?", help="dataset campaign spec (default: the last one run from this directory)")
    p_exp.add_argument("--out", required=True, help="extxyz file to write")
    p_val = sub.add_parser("validate", help="check a campaign spec and print its plan, without running it")
    p_val.add_argument("spec")
    sub.add_parser("schema", help="print the JSON Schema of campaign specs (for editors)")
    args = parser.parse_args(argv)

    from pftflow.results import format_results, jsonable, load_results  # local: the CLI parses its arguments before importing the pipeline (torch, phonopy)
    from pftflow.run.lock import CampaignLocked  # local: the CLI parses its arguments before importing the pipeline (torch, phonopy)
    from pftflow.spec import SpecError  # local: the CLI parses its arguments before importing the pipeline (torch, phonopy)
    from pftflow.store import StoreConnectionError, StoreVersionError  # local: the CLI parses its arguments before importing the pipeline (torch, phonopy)

    try:
        if args.cmd == "schema":
            from pftflow.spec import spec_json_schema  # local: the CLI parses its arguments before importing the pipeline (torch, phonopy)

            print(json.dumps(spec_json_schema(), indent=2))
            return 0
        if args.cmd == "validate":
            _print_plan(_spec(args.spec), args.spec)
            return 0
        if args.cmd == "run":
            from pftflow.run import run_campaign  # local: the CLI parses its arguments before importing the pipeline (torch, phonopy)

            spec = _spec(args.spec)
            summary = run_campaign(spec, progress=not args.no_progress, plots=not args.no_plots, wait_s=args.wait)
            if args.json:
                print(json.dumps(jsonable(summary.as_dict()), indent=2))
            else:
                print(format_results(load_results(spec), "table"))
                print(summary.text())
            return 0 if summary.failed_jobs == 0 else 1
        if args.cmd == "submit":
            try:
                from pftflow.run import submit_campaign  # local: the CLI parses its arguments before importing the pipeline (torch, phonopy)
            except ModuleNotFoundError as exc:
                if (exc.name or "").split(".")[0] != "fireworks":
                    raise
                print("pftflow submit: FireWorks is not installed: pip install 'pftflow[fireworks]' (or use pftflow run)", file=sys.stderr)
                return 2
            out = submit_campaign(_spec(args.spec), launch=args.launch, fworker=args.fworker, categories=args.category, max_launches=args.max_launches)
            print(json.dumps(jsonable(out), indent=2))
            return 0
        if args.cmd == "export":
            from pftflow.export import export_campaign  # local: the CLI parses its arguments before importing the pipeline (torch, phonopy)

            try:
                out = export_campaign(_resolve_spec(args.spec), args.out)
            except ValueError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            sets = ", ".join(f"{x['material_id']}/{x['name']} {x['n_structures']}" for x in out["sets"])
            print(f"{out['path']}: {out['n_frames']} structures ({sets})")
            return 0
        if args.cmd == "results":
            print(format_results(load_results(_resolve_spec(args.spec)), args.format))
            return 0
        if args.cmd == "report":
            from pftflow.report import write_report  # local: the CLI parses its arguments before importing the pipeline (torch, phonopy)

            target = args.spec if args.spec is not None and Path(args.spec).is_dir() else _resolve_spec(args.spec)
            print(write_report(target, args.out, campaign=args.campaign).text())
            return 0
        if args.cmd == "status":
            from pftflow.status import campaign_status, format_status  # local: the CLI parses its arguments before importing the pipeline (torch, phonopy)

            st = campaign_status(_resolve_spec(args.spec))
            print(json.dumps(jsonable(st), indent=2) if args.json else format_status(st))
            return 0
    except (SpecError, StoreVersionError, StoreConnectionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except CampaignLocked as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    return 1


if __name__ == "__main__":
    sys.exit(main())
