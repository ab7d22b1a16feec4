"""Which train materials drive the forgetting? (issue 18) Per-train-material influence on the probe's forgetting
proxy, validation materials only (the test split is never read: the roles come from pft_probe.split_roles).

For each of the train materials of workflows/finetune-global-chalcogenides.yaml (folded as in pft_probe.py), from
the base SevenNet-0:
  * first order: the gradient g_i of that material's PFT loss (the spec's settings: multi-column k=4 near-field
    probes, weights 20/20/5/100, mean over --samples probe draws), split into its Hessian term and its
    energy/force/stress term, against the gradient g_F of the forgetting proxy (the DFT force MAE on 3 displaced
    supercells of each validation material).  Adam's first step moves the weights by -lr sign(g), so the predicted
    change of the proxy is -lr g_F . sign(g_i) (eV/Å); the cosine of g_F and g_i is printed too.
  * measured: --steps Adam steps (lr --lr) on that material alone, then the change of the proxy (eV/Å) and of the
    validation near-field Hessian error hnf (eV/Å²); the model is reset to the base weights between materials.
One JSON line per material is appended to --out; a ranked table is printed at the end.

  OMP_NUM_THREADS=1 PYTHONPATH=src python3 benchmarks/pft_influence.py --steps 3
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pft_probe import (ROOT, force_mae, load_refs, near_field_eval, split_roles,  # noqa: E402
                       validation_columns, validation_force_cells)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workflow", default=str(ROOT / "workflows/finetune-global-chalcogenides.yaml"))
    ap.add_argument("--steps", type=int, default=3, help="Adam steps on each material alone (0: first order only)")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--samples", type=int, default=4, help="probe draws averaged into each material's gradient")
    ap.add_argument("--max-atoms", type=int, default=130)
    ap.add_argument("--valid-forces", type=int, default=3)
    ap.add_argument("--limit", type=int, default=0, help="only the first N train materials (0: all; for a smoke run)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/pft_influence.jsonl"))
    ap.add_argument("--cache", default="/tmp/pft_probe_cache")
    args = ap.parse_args(argv)
    torch.manual_seed(0)

    from pftflow.calculators.energy_models import SevenNetEnergyModel, predict
    from pftflow.training.data import from_phonon_reference
    from pftflow.training.loss import LossWeights, pft_loss
    from pftflow.training.probes import ProbeSpec, batch_probes
    from pftflow.training.adapters import setup_finetuning, trainable_parameters
    from pftflow.training.trainer import _targets_for

    cache = Path(args.cache); cache.mkdir(parents=True, exist_ok=True)
    roles = split_roles(Path(args.workflow))
    refs = load_refs(roles, args.max_atoms, True, cache)
    train = [(m, from_phonon_reference(ph, material_id=m)[0]) for m, ph in refs["train"]]
    valid = [(m, from_phonon_reference(ph, material_id=m)[0]) for m, ph in refs["valid"]]
    vforce = validation_force_cells(roles, args.valid_forces)
    model = SevenNetEnergyModel.from_checkpoint("7net-0", dtype=torch.float32)
    setup_finetuning(model, "full")
    params = trainable_parameters(model)
    theta0 = [p.detach().clone() for p in params]
    vcols = validation_columns(valid)
    spec = ProbeSpec(kind="multi_column", atoms_per_probe=4, normalisation="near_field")
    # the spec's weights 20/20/5/100 (LossWeights' defaults), its Hessian term alone, and the rest alone
    full, hess_only, rest = LossWeights(), LossWeights(energy=0.0, forces=0.0, stress=0.0), LossWeights(hessian=0.0)

    def flat_grad():
        return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])

    def proxy_gradient():
        """Gradient g_F of the forgetting proxy (force_mae on the validation displaced cells) w.r.t. the weights."""
        model.zero_grad(set_to_none=True)
        for ls in vforce:
            f = predict(model, model.build_graph([ls.atoms]), stress=False, create_graph=True)["forces_eV_per_A"]
            ((f - torch.as_tensor(ls.forces_eV_per_A, dtype=f.dtype)).abs().mean() / len(vforce)).backward()
        return flat_grad()

    t0 = time.process_time()
    p_base = force_mae(model, vforce)
    g_f = proxy_gradient()
    hnf_base = near_field_eval(model, valid, vcols)
    print(f"base: proxy {p_base:.5f} eV/Å on {len(vforce)} cells, hnf {hnf_base:.5f} eV/Å² ({time.process_time() - t0:.0f} CPU s)", flush=True)

    def grad_of(g, t, w, rng):
        """That material's loss gradient under weights w, mean over --samples probe draws."""
        acc = torch.zeros_like(g_f)
        for _ in range(args.samples):
            model.zero_grad(set_to_none=True)
            loss, _ = pft_loss(model, g, t, w, probes=batch_probes(g, t, spec, 1, rng))
            loss.backward()
            acc += flat_grad() / args.samples
        return acc

    rows = []
    for i, (mid, ls) in enumerate(train[: args.limit or None]):
        rec = {"material": mid, "n_atoms": len(ls.atoms), "proxy_base_eV_per_A": p_base, "hnf_base": hnf_base}
        g = model.build_graph([ls.atoms])
        t = _targets_for([ls], g.positions_A.dtype, g.positions_A.device)
        for name, w in (("full", full), ("hessian", hess_only), ("rest", rest)):
            gi = grad_of(g, t, w, np.random.default_rng(100 + i))
            rec[f"pred_dproxy_{name}_eV_per_A"] = float(-args.lr * (g_f @ torch.sign(gi)))
            rec[f"cos_{name}"] = float(g_f @ gi / (g_f.norm() * gi.norm() + 1e-30))
        if args.steps:
            opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=1e-3)
            rng = np.random.default_rng(200 + i)
            for _ in range(args.steps):
                opt.zero_grad(set_to_none=True)
                loss, _ = pft_loss(model, g, t, full, probes=batch_probes(g, t, spec, 1, rng))
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 100.0)
                opt.step()
            rec["dproxy_eV_per_A"] = force_mae(model, vforce) - p_base
            rec["dhnf_eV_per_A2"] = near_field_eval(model, valid, vcols) - hnf_base
            with torch.no_grad():
                for p, p0 in zip(params, theta0):
                    p.copy_(p0)
        rec["cpu_s"] = time.process_time() - t0
        rows.append(rec)
        print(json.dumps(rec), flush=True)
        with open(args.out, "a") as f:
            f.write(json.dumps(rec) + "\n")
    key = "dproxy_eV_per_A" if args.steps else "pred_dproxy_full_eV_per_A"
    print(f"\nranked by {key} (forgetting proxy change; base {p_base:.5f} eV/Å):")
    for r in sorted(rows, key=lambda r: -r[key]):
        meas = f"{100 * r['dproxy_eV_per_A'] / p_base:+6.2f} %  dhnf {r['dhnf_eV_per_A2']:+.5f}" if args.steps else ""
        print(f"{r['material']:>12} {r['n_atoms']:4d} at  pred full/hess/rest {r['pred_dproxy_full_eV_per_A']:+.5f} "
              f"{r['pred_dproxy_hessian_eV_per_A']:+.5f} {r['pred_dproxy_rest_eV_per_A']:+.5f}  {meas}")


if __name__ == "__main__":
    main()
