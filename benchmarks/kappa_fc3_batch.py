"""fc3 force-set time: pftflow batch force interface vs a plain per-structure ASE loop (k_SRME way).

One material (default NaCl-rs of the k_SRME subset: 146 displaced 64-atom fc3 supercells at
0.03 Å), one model (SevenNet-0), one run.  Three ways to get the same forces:

* ``ase_loop``  - what k_SRME's scripts do: ``atoms.calc = calc; atoms.get_forces()`` per supercell;
* ``compute``   - ``SevenNetCalculator.compute`` as the backend currently is (the job's call);
* ``batched``   - ``pftflow.calculators.batching.sevennet_compute_batched`` (one graph batch per
  ``--batch-size`` supercells).

To be fair under a shared, loaded machine, the set is processed in chunks and the methods are
interleaved chunk by chunk; CPU time (``time.process_time``) and wall time are summed per method.

Usage: OMP_NUM_THREADS=1 python benchmarks/kappa_fc3_batch.py [--material mp-22862] [--n 146]
       [--batch-size 16] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ksrme"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--material", default="mp-22862")
    ap.add_argument("--n", type=int, default=None, help="first n fc3 supercells (default all)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--chunk", type=int, default=16)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from pftflow.calculators import get_calculator
    from pftflow.calculators.batching import sevennet_compute_batched
    from pftflow.kappa import fc3_displacements, fc3_supercells, read_kappa_structures

    mat = {m.material_id: m for m in read_kappa_structures(DATA / "phononDB-PBE-structures_subset.extxyz")}[args.material]
    ph3 = fc3_displacements(mat.atoms, mat.fc2_supercell, mat.fc3_supercell, mat.primitive_matrix, distance_A=0.03)
    cells = fc3_supercells(ph3)[: args.n]
    calc = get_calculator({"backend": "sevennet", "model": "7net-0", "device": args.device})
    ase_calc = calc.ase_calculator()
    # warm-up (model load, first-call overheads) for every method
    w = cells[0].copy(); w.calc = ase_calc; w.get_forces()
    calc.compute(cells[:1], stress=False)
    sevennet_compute_batched(calc, cells[:2], stress=False, batch_size=2)

    def ase_loop(chunk):
        out = []
        for a in chunk:
            a = a.copy()
            a.calc = ase_calc
            out.append(a.get_forces().copy())
        return out

    methods = {
        "ase_loop": ase_loop,
        "compute": lambda chunk: calc.compute(chunk, stress=False).forces_eV_per_A,
        "batched": lambda chunk: sevennet_compute_batched(calc, chunk, stress=False, batch_size=args.batch_size).forces_eV_per_A,
    }
    t = {k: {"cpu_s": 0.0, "wall_s": 0.0} for k in methods}
    forces = {k: [] for k in methods}
    for i in range(0, len(cells), args.chunk):
        chunk = cells[i : i + args.chunk]
        for k, fn in methods.items():
            c0, w0 = time.process_time(), time.perf_counter()
            forces[k] += fn(chunk)
            t[k]["cpu_s"] += time.process_time() - c0
            t[k]["wall_s"] += time.perf_counter() - w0
        print(f"{i + len(chunk)}/{len(cells)}", {k: round(v["cpu_s"], 1) for k, v in t.items()}, flush=True)
    dev = {k: float(max(np.abs(a - b).max() for a, b in zip(forces[k], forces["ase_loop"]))) for k in methods}
    res = {
        "material": mat.name, "material_id": mat.material_id, "n_supercells": len(cells), "n_atoms": len(cells[0]),
        "batch_size": args.batch_size, "device": args.device, "timing": t,
        "ratio_cpu_ase_loop_over": {k: t["ase_loop"]["cpu_s"] / v["cpu_s"] for k, v in t.items()},
        "ratio_wall_ase_loop_over": {k: t["ase_loop"]["wall_s"] / v["wall_s"] for k, v in t.items()},
        "max_force_diff_vs_ase_loop_eV_per_A": dev,
        "machine": platform.machine(), "cpus": os.cpu_count(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "date": time.strftime("%Y-%m-%d"),
    }
    print(json.dumps(res, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
