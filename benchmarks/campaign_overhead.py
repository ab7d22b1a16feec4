#!/usr/bin/env python
"""Orchestration overhead of a pftflow phonons campaign: the fraction of wall time spent outside
model evaluation and phonopy / phono3py.

Runs ``pftflow run SPEC --no-progress`` (the CLI, as a user would) in a subprocess under py-spy on
an import-mode ``phonons`` campaign over the N materials of ../shared/data/chalcogenides with the
smallest supercells (SevenNet-0, MDR relaxation protocol, default phonon settings, fresh store),
then classifies py-spy's samples of the main thread by their stack frames:

* model: torch, sevenn, e3nn, torch_geometric, chgnet, mace (forward/backward passes, graph
  building, model loading);
* phonopy: phonopy, phono3py, spglib, seekpath (displacements, force constants, mesh / band /
  DOS / thermal properties, symmetry);
* overhead: everything else, broken down into Python imports, orchestration (jobflow, maggma,
  montydb, monty, pydantic, bson, ... and the stdlib json / sqlite3 / copy they call), pftflow glue code, the ASE relaxation
  driver (optimizer steps, cell filter, symmetry constraint), plotting (matplotlib) and other.

A sample is attributed to the innermost frame that belongs to one of the named packages (so
numpy called from phonopy counts as phonopy, numpy called from jobflow's serialisation as
orchestration); any sample inside an import statement counts as "imports".  py-spy samples with
``--idle`` (waiting time counts: these are wall-time fractions) and ``--nonblocking`` (the
campaign is not paused while sampled).  Per-job times come from the store (consecutive
``completed_at`` stamps of the jobs, which run one after another).

    OMP_NUM_THREADS=1 python benchmarks/campaign_overhead.py [--n 5] [--rate 50]

Needs py-spy (``pip install -e .[bench]``) and ../shared/data.
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"

MODEL_PKGS = {"torch", "sevenn", "e3nn", "torch_geometric", "torch_scatter", "torch_cluster", "chgnet", "mace", "matgl", "opt_einsum_fx"}
PHONOPY_PKGS = {"phonopy", "phono3py", "spglib", "seekpath"}
#: orchestration packages; stdlib modules (json, yaml, pickle, copy, sqlite3, ...) are transparent:
#: a sample in them goes to the caller's bucket (json from monty = orchestration, pickle from
#: torch.load = model, yaml from phonopy.load = phonopy, json from pftflow = glue)
ORCH_PKGS = {"jobflow", "maggma", "montydb", "monty", "pydantic", "pydantic_core", "bson", "pymongo", "mongomock", "orjson", "networkx", "tqdm"}
#: named buckets in attribution order of precedence when found innermost-first
BUCKET_OF = {**{p: "model" for p in MODEL_PKGS}, **{p: "phonopy" for p in PHONOPY_PKGS}, **{p: "orchestration" for p in ORCH_PKGS}}
BUCKET_OF.update({"pftflow": "pftflow glue", "ase": "ASE relax driver", "matplotlib": "plotting"})
OVERHEAD_BUCKETS = ["imports", "orchestration", "pftflow glue", "ASE relax driver", "plotting", "other"]

FRAME_RE = re.compile(r"^(?P<func>.*) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")


# ------------------------------------------------------------------------------------- inputs
def pick_materials(data: Path, n: int) -> list[dict]:
    """The ``n`` chalcogenides with the smallest supercells (ties: fewer displacements, then id)."""
    index = data / "chalcogenides" / "index.csv"
    if not index.is_file():
        sys.exit(f"{index}: not found; pass --data /path/to/shared/data")
    with index.open() as fh:
        rows = list(csv.DictReader(fh))
    rows = [r for r in rows if (data / "chalcogenides" / f"{r['mp_id']}.phonopy.yaml.xz").is_file()]
    rows.sort(key=lambda r: (int(r["n_atoms_supercell"]), int(r["n_displacements"]), r["mp_id"]))
    return rows[:n]


def make_spec(name: str, rows: list[dict], data: Path, store_dir: Path) -> dict:
    return {
        "name": name,
        "kind": "phonons",
        "description": "campaign_overhead.py: import mode, smallest chalcogenide supercells, SevenNet-0",
        "store": {"path": str(store_dir)},
        "materials": [{"reference_file": str(data / "chalcogenides" / f"{r['mp_id']}.phonopy.yaml.xz"), "id": r["mp_id"]} for r in rows],
        "reference": {"mode": "import"},
        "models": [{"backend": "sevennet", "model": "7net-0", "name": "SevenNet-0"}],
        "settings": {"relax": {"fmax_eV_per_A": 1e-3, "steps": 500}},
    }


# ------------------------------------------------------------------------------------- py-spy
def frame_package(frame: str) -> str:
    m = FRAME_RE.match(frame)
    path = m.group("file") if m else frame
    if path.startswith("<frozen importlib"):
        return "importlib"
    if "/site-packages/" in path or "/dist-packages/" in path:
        rest = re.split(r"/(?:site|dist)-packages/", path, maxsplit=1)[1]
        return rest.split("/")[0].removesuffix(".py")
    if "/pftflow/" in path:
        return "pftflow"
    m2 = re.search(r"/lib/python3\.\d+/([^/]+)", path)
    if m2:
        return m2.group(1).removesuffix(".py")
    return "other"


def classify(frames: list[str]) -> str:
    """Bucket of one sample (frames outer -> inner)."""
    if any(f.startswith("_find_and_load ") for f in frames):
        return "imports"
    for f in reversed(frames):
        bucket = BUCKET_OF.get(frame_package(f))
        if bucket:
            return bucket
    return "other"


def read_raw(path: Path) -> dict[str, list[tuple[list[str], int]]]:
    """py-spy raw (collapsed) output with --threads: {thread id: [(frames, count)]}."""
    threads: dict[str, list] = collections.defaultdict(list)
    names: dict[str, str] = {}
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        parts = stack.split(";")
        m = re.match(r"thread \((\w+)\)(?::\s*(.*))?", parts[0])
        if not m:
            continue
        tid = m.group(1)
        if m.group(2):
            names[tid] = m.group(2).strip()
        threads[tid].append((parts[1:], int(count)))
    return {f"{tid}:{names.get(tid, '')}": v for tid, v in threads.items()}


def main_thread(threads: dict) -> str:
    named = [t for t in threads if t.endswith(":MainThread")]
    if named:
        return named[0]
    return max(threads, key=lambda t: sum(c for _, c in threads[t]))


# ------------------------------------------------------------------------------------- per job
def job_times(store_dir: Path, campaign: str, mids: list[str], models: list[str]) -> list[tuple[str, int, float]] | None:
    """(job type, count, mean s) from consecutive completed_at stamps; None if the store is unreadable."""
    try:
        from pftflow.store import make_job_store

        store = make_job_store(store_dir)
        store.connect()
        docs = list(store.query({"metadata.campaign": campaign}, properties=["name", "completed_at", "metadata"]))
        store.close()
    except Exception as exc:  # noqa: BLE001 - the store layout may change; this part is optional
        print(f"per-job timings: store not readable ({type(exc).__name__}: {exc})")
        return None
    docs = [d for d in docs if d.get("completed_at") and d.get("name") and (d.get("metadata") or {}).get("stage") != "run"]  # not run records
    docs.sort(key=lambda d: str(d["completed_at"]))
    stamps = [datetime.fromisoformat(str(d["completed_at"])) for d in docs]
    per: dict[str, list[float]] = collections.defaultdict(list)
    for prev, cur, d in zip(stamps, stamps[1:], docs[1:]):
        name = d.get("name", "?")
        for token in sorted(mids + models, key=len, reverse=True):
            name = name.replace(token, "")
        per[" ".join(name.split()) or "?"].append((cur - prev).total_seconds())
    return [(k, len(v), sum(v) / len(v)) for k, v in sorted(per.items(), key=lambda kv: -sum(kv[1]))]


# ------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=5, help="number of chalcogenides (smallest supercells first; default 5)")
    p.add_argument("--rate", type=int, default=50, help="py-spy samples per second (default 50)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"shared data folder (default {DEFAULT_DATA})")
    p.add_argument("--keep", type=Path, default=None, help="keep the spec, store and py-spy profile in this folder")
    args = p.parse_args(argv)
    pyspy = shutil.which("py-spy")
    if pyspy is None:
        sys.exit("py-spy is not installed: pip install -e '.[bench]' (or pip install py-spy), then re-run")
    import yaml

    rows = pick_materials(args.data, args.n)
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    where = subprocess.run([sys.executable, "-c", "import pftflow; print(pftflow.__file__)"], env=env, capture_output=True, text=True, check=False).stdout.strip()
    print(f"pftflow from {Path(where).parent}")
    print("materials: " + ", ".join(f"{r['mp_id']} {r['formula']} ({r['n_atoms_supercell']} atoms, {r['n_displacements']} displacements)" for r in rows))

    tmp_ctx = tempfile.TemporaryDirectory(prefix="pftflow_overhead_") if args.keep is None else None
    work = Path(tmp_ctx.name) if tmp_ctx else args.keep.resolve()
    work.mkdir(parents=True, exist_ok=True)
    try:
        name = "overhead"
        store_dir = work / "campaign"
        if store_dir.exists():
            shutil.rmtree(store_dir)  # fresh store: nothing reused
        spec_path = work / "overhead.yaml"
        spec_path.write_text(yaml.safe_dump(make_spec(name, rows, args.data.resolve(), store_dir), sort_keys=False))
        raw = work / "profile.raw"
        run_help = subprocess.run([sys.executable, "-m", "pftflow.cli", "run", "--help"], env=env, capture_output=True, text=True, check=False).stdout
        json_flag = ["--json"] if "--json" in run_help else []  # newer CLI: JSON summary on request; older: always
        cmd = [pyspy, "record", "--format", "raw", "-o", str(raw), "--idle", "--threads", "--full-filenames", "--nonblocking", "--rate", str(args.rate),
               "--", sys.executable, "-m", "pftflow.cli", "run", str(spec_path), "--no-progress", *json_flag]  # fmt: skip
        load0 = os.getloadavg()
        print(f"load average before: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, {os.cpu_count()} CPUs, OMP_NUM_THREADS={env['OMP_NUM_THREADS']}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        load1 = os.getloadavg()
        if proc.returncode != 0 or not raw.is_file():
            print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
            sys.exit(f"the campaign under py-spy failed (exit {proc.returncode}); output above")
        summary = {}
        if "{" in proc.stdout:
            try:
                summary, _ = json.JSONDecoder().raw_decode(proc.stdout[proc.stdout.index("{") :])
            except json.JSONDecodeError:
                pass

        threads = read_raw(raw)
        tid = main_thread(threads)
        buckets: collections.Counter = collections.Counter()
        pkgs: collections.Counter = collections.Counter()
        for frames, count in threads[tid]:
            b = classify(frames)
            buckets[b] += count
            if b == "other":
                pkgs[frame_package(frames[-1]) if frames else "(no Python frame: interpreter start / exit)"] += count
        total = sum(buckets.values())
        pct = {k: 100.0 * v / total for k, v in buckets.items()}
        overhead = sum(pct.get(k, 0.0) for k in OVERHEAD_BUCKETS)

        print(f"load average after: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
        print()
        print(f"wall time (pftflow run under py-spy, incl. interpreter start): {wall:.1f} s")
        if summary:
            print(f"campaign's own wall_time_s (run_locally): {summary.get('wall_time_s', float('nan')):.1f} s, jobs run {summary.get('jobs_run')}, failed {summary.get('failed_jobs')}")
        print(f"main-thread samples: {total} at {args.rate} Hz (= {total / args.rate:.1f} s sampled)")
        print()
        print(f"  model evaluation (torch/sevenn/e3nn/...)   {pct.get('model', 0.0):5.1f} %")
        print(f"  phonopy / phono3py / spglib / seekpath     {pct.get('phonopy', 0.0):5.1f} %")
        print(f"  everything else (overhead)                 {overhead:5.1f} %")
        for k in OVERHEAD_BUCKETS:
            print(f"      {k:38s} {pct.get(k, 0.0):5.1f} %")
        print(f"  overhead without Python imports            {overhead - pct.get('imports', 0.0):5.1f} %")
        if pkgs:
            print("  'other' by innermost package: " + ", ".join(f"{k} {100.0 * v / total:.1f} %" for k, v in pkgs.most_common(6)))

        jt = job_times(store_dir, name, [r["mp_id"] for r in rows], ["SevenNet-0"])
        if jt:
            n_jobs = sum(n for _, n, _ in jt) + 1
            print()
            print(f"time per job (consecutive completed_at stamps; {n_jobs} jobs, mean {summary.get('wall_time_s', wall) / max(n_jobs, 1):.2f} s/job):")
            for kind, n, mean in jt:
                print(f"  {kind:28s} n={n:3d}  mean {mean:7.2f} s  total {n * mean:7.1f} s")
    finally:
        if tmp_ctx:
            tmp_ctx.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
