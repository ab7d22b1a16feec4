"""SevenNet-0 force calls with and without its interaction layers checkpointed (issue 17): peak memory and wall, in one run.

For each chalcogenide supercell it runs ``SevenNetCalculator(checkpoint_atoms=0)`` (what pftflow ran before, and what
sevenn's own ASE calculator does) and the default (layers checkpointed from 512 atoms; here forced on with
``checkpoint_atoms=1`` so that the smaller cell is measured too), each in a fresh process so that the peaks do not mix.
It prints the peak RSS above the loaded model (VmHWM - RSS after loading), the wall of ``--n`` force calls, their
ratios, and the largest force difference.

    OMP_NUM_THREADS=1 python benchmarks/sevennet_checkpoint.py            # ~3 min on one core

Needs ../shared/data/chalcogenides; GiB = 2**30 bytes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
MATERIALS = "mp-35216,mp-7943"  # BiTe3 360 atoms, mp-7943 960 atoms (the cell that set pft-paper-models' peak)


def _status_GiB(key: str) -> float:
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 2**20
    raise KeyError(key)


def child(material: str, checkpoint_atoms: int, n: int, out: str) -> None:
    import phonopy
    from ase import Atoms

    from pftflow.calculators.backends import get_calculator

    ph = phonopy.load(SHARED / f"data/chalcogenides/{material}.phonopy.yaml.xz", produce_fc=False)
    sc = ph.supercell
    cell = Atoms(symbols=sc.symbols, cell=sc.cell, scaled_positions=sc.scaled_positions, pbc=True)
    rng = np.random.default_rng(0)
    cells = []
    for _ in range(n):
        c = cell.copy()
        c.positions += rng.normal(0, 0.01, c.positions.shape)
        cells.append(c)
    calc = get_calculator({"backend": "sevennet", "model": "7net-0", "checkpoint_atoms": checkpoint_atoms})
    calc.ase_calculator()
    loaded = _status_GiB("VmRSS")
    t0 = time.perf_counter()
    res = calc.compute(cells)
    wall = time.perf_counter() - t0
    np.save(out, np.array(res.forces_eV_per_A))
    print(json.dumps({"atoms": len(cell), "above_model_GiB": _status_GiB("VmHWM") - loaded, "wall_s": wall}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--materials", default=MATERIALS)
    ap.add_argument("--n", type=int, default=2, help="force calls (rattled copies of the cell) per process")
    ap.add_argument("--child", nargs=3, metavar=("MATERIAL", "CHECKPOINT_ATOMS", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.n, args.child[2])
        return
    with tempfile.TemporaryDirectory() as tmp:
        for mid in args.materials.split(","):
            rows = {}
            for label, ck in (("plain", 0), ("checkpointed", 1)):
                out = f"{tmp}/{mid}_{label}.npy"
                proc = subprocess.run([sys.executable, __file__, "--n", str(args.n), "--child", mid, str(ck), out],
                                      capture_output=True, text=True, check=True)
                rows[label] = json.loads(proc.stdout.strip().splitlines()[-1]) | {"forces": np.load(out)}
            p, c = rows["plain"], rows["checkpointed"]
            print(f"{mid} ({p['atoms']} atoms, {args.n} calls): above the model {p['above_model_GiB']:.2f} -> "
                  f"{c['above_model_GiB']:.2f} GiB ({p['above_model_GiB'] / c['above_model_GiB']:.2f}x less); wall "
                  f"{p['wall_s']:.1f} -> {c['wall_s']:.1f} s ({c['wall_s'] / p['wall_s']:.2f}x); "
                  f"max |dF| {np.abs(p['forces'] - c['forces']).max():.1e} eV/Å", flush=True)


if __name__ == "__main__":
    main()
