"""Time of one PFT optimizer step (E/F/σ + 1 Hessian column by HVP) vs one plain E/F/σ step, same batch.

    OMP_NUM_THREADS=1 python benchmarks/pft_step.py [--model 7net-0] [--sizes 64 216 512] [--repeat 3]

Structures: diamond Si supercells (8 atoms x n^3 cells: 64, 216, 512), rattled 0.03 Å.  Model: SevenNet-0
(float32) by default, or a tiny MACE (--model tiny-mace).  Reports median wall times (s) and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from ase.build import bulk  # noqa: E402


def structure(n_atoms: int):
    reps = {64: 2, 216: 3, 512: 4}[n_atoms]
    a = bulk("Si", "diamond", a=5.43, cubic=True).repeat(reps)
    a.positions += np.random.default_rng(0).normal(scale=0.03, size=a.positions.shape)
    return a


def load(model: str):
    from pftflow.calculators.energy_models import MACEEnergyModel, SevenNetEnergyModel

    if model == "tiny-mace":
        import sys

        sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "training"))
        from pft_testutils import tiny_mace

        return MACEEnergyModel(tiny_mace(atomic_numbers=(14,), dtype=torch.float32, r_max=5.0))
    return SevenNetEnergyModel.from_checkpoint(model, dtype=torch.float32)


def time_steps(model, atoms, repeat: int) -> dict:
    from pftflow.training.adapters import setup_finetuning, trainable_parameters
    from pftflow.training.data import LabelledStructure
    from pftflow.training.loss import LossWeights, pft_loss, sample_columns
    from pftflow.training.trainer import _Collator

    n = len(atoms)
    s = LabelledStructure(atoms, -5.0 * n, np.zeros((n, 3)), np.zeros((3, 3)), np.eye(3 * n), kind="phonon_reference")
    graph, targets = _Collator(model, [s])([0])
    params = trainable_parameters(model)
    opt = torch.optim.AdamW(params, lr=1e-12)
    gen = torch.Generator().manual_seed(0)
    out = {}
    for label, use_h in (("plain_EFS", False), ("pft_EFS_H", True)):
        times = []
        for r in range(repeat + 1):
            cols = sample_columns(graph, targets, 1, gen) if use_h else None
            t0 = time.perf_counter()
            opt.zero_grad()
            loss, _ = pft_loss(model, graph, targets, LossWeights(), columns=cols)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 100.0)
            opt.step()
            if r > 0:  # first call warms up
                times.append(time.perf_counter() - t0)
        out[label] = statistics.median(times)
    out["ratio"] = out["pft_EFS_H"] / out["plain_EFS"]
    out["n_atoms"] = n
    out["n_edges"] = int(graph.edge_index.shape[1])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="7net-0")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 216, 512])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    from pftflow.training.adapters import setup_finetuning

    model = load(args.model)
    setup_finetuning(model, "full")
    rows = []
    for n in args.sizes:
        r = time_steps(model, structure(n), args.repeat)
        rows.append(r)
        print(f"{args.model} N={n:4d} edges={r['n_edges']:6d}  plain {r['plain_EFS']:.3f} s  PFT {r['pft_EFS_H']:.3f} s  ratio {r['ratio']:.2f}", flush=True)
    info = {
        "model": args.model,
        "machine": f"{platform.machine()} {os.cpu_count()} cores, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}",
        "torch": torch.__version__,
        "device": "cpu",
        "rows": rows,
    }
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(info, fh, indent=2)
    return info


if __name__ == "__main__":
    main()
