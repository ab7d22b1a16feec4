"""Cross-kernel spread of the numerically sensitive tests (issue 17).

OpenBLAS picks a compute kernel per CPU (Haswell, SkylakeX, Zen, Prescott, ...), and some machines set
``OPENBLAS_CORETYPE`` so that it does not crash. The same inputs then give results that differ in the last bits,
and a quantity that amplifies round-off (a log of a near-zero frequency, a relaxation that stops at a force
threshold) differs by more. This script runs the tests marked ``blas_sensitive`` once per kernel, each in its
own process with ``OPENBLAS_CORETYPE`` set for that process only (tests and CI never set it), collects every
value those tests pin through the ``pinned`` fixture, and prints per quantity the values, the relative spread
and the tolerance a cross-machine test may use.

    OMP_NUM_THREADS=1 python benchmarks/cross_kernel.py [--kernels unset Haswell Prescott SkylakeX] [-- pytest args]

Each run also records which kernel numpy's OpenBLAS really ran (threadpoolctl), since an unknown or unsupported
name falls back silently. Exit status 1 if any run failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def default_kernels() -> list[str]:
    kernels = ["unset", "Haswell", "Prescott"]
    if "avx512f" in cpu_flags():
        kernels.append("SkylakeX")
    return kernels


def run_kernel(kernel: str, pytest_args: list[str], out: Path) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE",)}
    env["OMP_NUM_THREADS"] = "1"
    if kernel != "unset":
        env["OPENBLAS_CORETYPE"] = kernel
    else:
        env.pop("OPENBLAS_L2_SIZE", None)
    env["PFTFLOW_PINNED_OUT"] = str(out)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "blas_sensitive", *pytest_args]
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    tail = [ln for ln in p.stdout.splitlines() if ln.strip()][-1:] or [""]
    return p.returncode, tail[0]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kernels", nargs="+", default=None, help="OPENBLAS_CORETYPE values ('unset': the library's own choice)")
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --), e.g. a test path")
    a = ap.parse_args(argv)
    kernels = a.kernels or default_kernels()
    values: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    ran: dict[str, str] = {}
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for k in kernels:
            out = Path(tmp) / f"{k}.jsonl"
            rc, tail = run_kernel(k, a.pytest_args, out)
            bad |= rc != 0
            recs = [json.loads(ln) for ln in out.read_text().splitlines()] if out.exists() else []
            ran[k] = ",".join(sorted({b for r in recs for b in r["blas"]})) or "?"
            print(f"OPENBLAS_CORETYPE={k:<9} ran kernel {ran[k]:<10} pytest: {tail}", flush=True)
            for r in recs:
                values[(r["test"].split("::")[-1], r["quantity"])][k] = r["value"]
    print()
    print(f"{'test':<58} {'quantity':<34} " + " ".join(f"{k:>19}" for k in kernels) + f" {'rel. spread':>11}")
    for (test, q), per in sorted(values.items()):
        vals = [per.get(k) for k in kernels]
        got = [v for v in vals if v is not None]
        scale = max(abs(v) for v in got) or 1.0
        spread = (max(got) - min(got)) / scale if got else float("nan")
        print(f"{test[:58]:<58} {q[:34]:<34} " + " ".join(f"{v:>19.12g}" if v is not None else f"{'-':>19}" for v in vals) + f" {spread:>11.2e}")
    return int(bad)


if __name__ == "__main__":
    raise SystemExit(main())
