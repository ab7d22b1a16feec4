"""What a campaign process keeps between jobs, and what a heap trim gives back (issue 17).

One process, the three models of workflows/pft-paper-models.yaml, one force call per model on the supercells of a
few chalcogenides of growing size (the campaign's sizes). After each call it prints RSS and glibc's heap counters
(``mallinfo2``: bytes in use and free inside the heap), then at the end what ``gc``, one
:func:`pftflow.run.memory.release_free_heap` (glibc ``malloc_trim``) and dropping the JAX executables give back.
``--trim-each`` trims after every call, as ``pftflow run`` does after every job.

    bash scripts/install_nequix.sh
    OMP_NUM_THREADS=1 python benchmarks/memory_heap_floor.py             # ~3 min on one core
    OMP_NUM_THREADS=1 python benchmarks/memory_heap_floor.py --trim-each

Needs glibc (Linux) and ../shared/data/chalcogenides; GiB = 2**30 bytes.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
MODELS = [
    {"backend": "nequix", "model": str(SHARED / "models/nequix/nequix-mp-1.nqx"), "name": "nequix-mp-1"},
    {"backend": "nequix", "model": str(SHARED / "models/nequix/nequix-mp-1-pft.nqx"), "name": "nequix-mp-1-pft"},
    {"backend": "sevennet", "model": "7net-0", "name": "SevenNet-0"},
]
# supercells of 512, 640, 768, 864, 960 and 1176 atoms
MATERIALS = "mp-2534,mp-7845,mp-1100425,mp-23116,mp-7943,mp-19941"


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                                                 "fordblks", "keepcost")]


def _status(key: str) -> float:
    with open("/proc/self/status") as fh:
        return next(int(ln.split()[1]) for ln in fh if ln.startswith(key)) / 2**20  # kB -> GiB


_LIBC = ctypes.CDLL(None)
_LIBC.mallinfo2.restype = _MallInfo2


def snapshot(tag: str, t0: float) -> dict:
    m = _LIBC.mallinfo2()
    row = {"tag": tag, "rss_GiB": round(_status("VmRSS"), 3), "peak_GiB": round(_status("VmHWM"), 3),
           "heap_in_use_GiB": round(m.uordblks / 2**30, 3), "heap_free_GiB": round(m.fordblks / 2**30, 3),
           "wall_s": round(time.perf_counter() - t0, 1)}
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--materials", default=MATERIALS, help="chalcogenide ids (comma-separated), in the order run")
    ap.add_argument("--trim-each", action="store_true", help="release_free_heap after every call, as pftflow run after every job")
    args = ap.parse_args()
    t0 = time.perf_counter()
    import phonopy
    from ase import Atoms

    from pftflow.calculators.backends import cached_calculator
    from pftflow.run.memory import release_free_heap

    calcs = [cached_calculator(s) for s in MODELS]
    snapshot("models loaded", t0)
    for mid in args.materials.split(","):
        sc = phonopy.load(SHARED / f"data/chalcogenides/{mid}.phonopy.yaml.xz", produce_fc=False).supercell
        atoms = Atoms(symbols=sc.symbols, cell=sc.cell, scaled_positions=sc.scaled_positions, pbc=True)
        atoms.positions += np.random.default_rng(0).normal(0.0, 0.01, atoms.positions.shape)  # seeded: a displaced cell
        for c in calcs:
            c.compute([atoms], stress=False)
            snapshot(f"{mid} ({len(atoms)} atoms) {c.name}", t0)
            if args.trim_each:
                gc.collect()
                release_free_heap(min_growth_MiB=0.0)
                snapshot("  trimmed", t0)
    gc.collect()
    last = snapshot("after the last call, gc", t0)
    release_free_heap(min_growth_MiB=0.0)
    trimmed = snapshot("one release_free_heap", t0)
    import jax

    for c in calcs:  # what the compiled shapes hold (NEQUIX_MAX_COMPILED_SHAPES bounds them per model)
        if hasattr(c, "_efs_fn"):
            c._efs_fn = c._hess_fn = None
            c._chunked.clear()
    jax.clear_caches()
    gc.collect()
    release_free_heap(min_growth_MiB=0.0)
    dropped = snapshot("JAX executables dropped, trimmed", t0)
    print(f"RSS floor after the last call {last['rss_GiB']:.2f} GiB; after one trim {trimmed['rss_GiB']:.2f} GiB "
          f"({last['rss_GiB'] / trimmed['rss_GiB']:.2f}x less); without the compiled shapes {dropped['rss_GiB']:.2f} GiB; "
          f"peak {trimmed['peak_GiB']:.2f} GiB")


if __name__ == "__main__":
    main()
