"""Where a forces job's memory goes (issue 17): peak RSS of one force evaluation of a material's displaced
supercells, one configuration per fresh process.

  OMP_NUM_THREADS=1 python benchmarks/memory_profile.py                    # the table below, ~5 min
  OMP_NUM_THREADS=1 python benchmarks/memory_profile.py --one chgnet-create-graph 8

Each row runs in its own process and reads ``ru_maxrss`` (the peak RSS ``/usr/bin/time -v`` reports) at three
points: imports done, model loaded, force set evaluated.  Material: ``../shared/data/chalcogenides/mp-35216``
(BiTe3, 24 displaced 360-atom supercells), the largest of the five-material memory benchmark.
Modes:
  * ``chgnet-create-graph``: ``CHGNet.predict_structure(batch_size=B)``, what pftflow ran before (CHGNet builds
    the double-backward graph even in inference);
  * ``chgnet-first``: :func:`pftflow.calculators.batching.chgnet_efs` (first derivatives only), batches of B;
  * ``chgnet-graphs``: only CHGNet's graph construction of B structures (no model call);
  * ``sevennet``: SevenNet-0, one structure per call (pftflow's default loop);
  * ``nequix``: nequix-mp-1 (JAX, CPU), ``batch_size`` B, edge-chunked convolutions (the default,
    :mod:`pftflow.calculators.nequix_edges`); ``nequix-unchunked``: the same with ``edge_chunk: 0``
    (``--material mp-19941 --n 1``: one 1176-atom cell).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHALCOGENIDES = ROOT.parent / "shared/data/chalcogenides"
REF = CHALCOGENIDES / "mp-35216.phonopy.yaml.xz"


def rss_GiB() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB -> GiB (Linux)


def one(mode: str, batch: int, material: str = "mp-35216", n_max: int | None = None) -> dict:
    import numpy as np
    from pymatgen.io.ase import AseAtomsAdaptor

    from pftflow.calculators.backends import CHGNetCalculator, SevenNetCalculator
    from pftflow.calculators.batching import chgnet_compute_batched
    from pftflow.materials.readers import read_reference
    from pftflow.training.data import from_displacements

    ref = read_reference(str(CHALCOGENIDES / f"{material}.phonopy.yaml.xz"))
    cells = [s.atoms for s in from_displacements(ref)][:n_max]  # the DFT displaced supercells, as a forces job gets them
    cells = cells[:batch] if mode == "chgnet-graphs" else cells
    out = {"mode": mode, "batch": batch, "n_structures": len(cells), "n_atoms": len(cells[0]), "rss_imports_GiB": rss_GiB()}
    t0 = time.perf_counter()
    if mode.startswith("chgnet"):
        calc = CHGNetCalculator()
        model = calc._load()
        out["rss_model_GiB"] = rss_GiB()
        if mode == "chgnet-create-graph":
            for i in range(0, len(cells), batch):
                model.predict_structure([AseAtomsAdaptor.get_structure(a) for a in cells[i : i + batch]], task="efs", batch_size=batch)
        elif mode == "chgnet-first":
            chgnet_compute_batched(calc, cells, batch_atoms=batch * len(cells[0]))
        elif mode == "chgnet-graphs":
            graphs = [model.graph_converter(AseAtomsAdaptor.get_structure(a)) for a in cells]
            out["n_graphs"] = len(graphs)
    elif mode == "sevennet":
        calc = SevenNetCalculator("7net-0")
        calc.ase_calculator()
        out["rss_model_GiB"] = rss_GiB()
        calc.compute(cells)
    elif mode in ("nequix", "nequix-unchunked"):
        from pftflow.calculators.nequix import NequixForceCalculator

        calc = NequixForceCalculator(str(ROOT.parent / "shared/models/nequix/nequix-mp-1.nqx"), batch_size=batch,
                                     edge_chunk=0 if mode == "nequix-unchunked" else None)
        calc.ase_calculator()
        out["rss_model_GiB"] = rss_GiB()
        calc.compute(cells)
        out["n_compiles"] = calc.n_compiles
    out["rss_peak_GiB"] = rss_GiB()
    out["wall_s"] = time.perf_counter() - t0
    return out


ROWS = [("chgnet-graphs", 16), ("chgnet-create-graph", 1), ("chgnet-create-graph", 4), ("chgnet-create-graph", 16),
        ("chgnet-first", 1), ("chgnet-first", 4), ("chgnet-first", 16), ("sevennet", 1)]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--one", nargs=2, metavar=("MODE", "BATCH"))
    ap.add_argument("--material", default="mp-35216", help="chalcogenide id (../shared/data/chalcogenides)")
    ap.add_argument("--n", type=int, default=None, help="at most this many displaced supercells")
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]), args.material, args.n)))
        return
    if not REF.exists():
        sys.exit(f"{REF} not found: this benchmark needs ../shared/data/chalcogenides")
    print(f"{'mode':22s} {'B':>3s} {'atoms/batch':>11s} {'imports':>8s} {'model':>7s} {'peak':>7s} {'above model':>11s} {'wall s':>7s}  (GiB)")
    for mode, b in ROWS:
        r = json.loads(subprocess.run([sys.executable, __file__, "--one", mode, str(b)], check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        print(f"{mode:22s} {b:3d} {b * r['n_atoms']:11d} {r['rss_imports_GiB']:8.2f} {r['rss_model_GiB']:7.2f} {r['rss_peak_GiB']:7.2f} "
              f"{r['rss_peak_GiB'] - r['rss_model_GiB']:11.2f} {r['wall_s']:7.1f}", flush=True)


if __name__ == "__main__":
    main()
