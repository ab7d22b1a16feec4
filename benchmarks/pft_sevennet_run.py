"""Real PFT run: SevenNet-0 fine-tuned on reference force constants of some materials, evaluated on held-out ones.

    OMP_NUM_THREADS=1 python benchmarks/pft_sevennet_run.py --out /tmp/pft_run [--epochs 4] [--mode full]

Default data (../shared/data): train on SnO2 (phonopy FORCE_SETS, 72-atom supercell), NaCl (phonopy, 64) and
BaTe (MDR mp-1000, 64); hold out Si (MDR mp-149, 64).  Co-training set: the reference displaced supercells of
the training materials with DFT forces (no energies -> w_E = 0 there too).  Reports before/after: the phonon
benchmark's MDR metrics (pftflow.phonons.metrics: ω_max in K at the commensurate q-points, S, F, C_V at 300 K,
q-point-weighted BZ-mesh frequency MAE), force-constant MAE (phonopy finite displacements with the exported model
loaded through pftflow's SevenNetCalculator, on the reference cell), and force errors on the co-training set and
on the held-out DFT displacements.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TRAIN = {"SnO2": "phonopy/phonopy_disp_SnO2.yaml", "NaCl": "phonopy/phonopy_params_NaCl.yaml.xz", "BaTe-mp-1000": "mdr/mp-1000.yaml.bz2"}
TEST = {"Si-mp-149": "mdr/mp-149.yaml.bz2"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/pft_run")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--copies", type=int, default=2, help="phonon structures per epoch = copies x materials")
    ap.add_argument("--mode", default="full")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--cotrain-ratio", type=int, default=4)
    ap.add_argument("--mesh", type=int, default=8)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import torch

    from pftflow.training import data as D
    from pftflow.phonons.harmonic import PhononSettings
    from pftflow.phonons.metrics import summarize
    from pftflow.training.evaluate import force_errors, phonon_comparison
    from pftflow.training.export import export_model
    from pftflow.calculators.energy_models import SevenNetEnergyModel
    from pftflow.training.trainer import TrainConfig, train

    t_start = time.perf_counter()
    train_ph, cot = [], []
    for mid, rel in TRAIN.items():
        train_ph += D.from_phonon_reference(DATA / rel, material_id=mid)
        cot += D.from_displacements(DATA / rel, material_id=mid)
    test_disp = []
    for mid, rel in TEST.items():
        test_disp += D.from_displacements(DATA / rel, material_id=mid)
    data = D.TrainingData(train_ph * args.copies, [], cot)
    print(f"train {len(train_ph)} phonon refs x{args.copies}, cotrain {len(cot)} displaced supercells, "
          f"held-out displacements {len(test_disp)}", flush=True)

    base_spec = {"backend": "sevennet", "model": "7net-0", "name": "SevenNet-0"}
    settings = PhononSettings(mesh=[args.mesh] * 3)
    report = {"train_materials": TRAIN, "test_materials": TEST, "args": vars(args)}

    t0 = time.perf_counter()
    before = {}
    for mid, rel in {**TEST, **TRAIN}.items():
        before[mid] = phonon_comparison(base_spec, DATA / rel, settings)
    base_model = SevenNetEnergyModel.from_checkpoint("7net-0")
    before_f = {"cotrain": force_errors(base_model, cot), "heldout_displacements": force_errors(base_model, test_disp)}
    report["eval_before_s"] = time.perf_counter() - t0

    cfg = TrainConfig(epochs=args.epochs, lr=args.lr, cotrain_ratio=args.cotrain_ratio, dtype="float32",
                      finetune={"mode": args.mode}, progress=True, seed=0)
    t0 = time.perf_counter()
    model, result = train(SevenNetEnergyModel.from_checkpoint("7net-0"), data, cfg, out / "work")
    report["train_s"] = time.perf_counter() - t0
    report["train"] = {"history": result.history, "best_epoch": result.best_epoch, "finetune_report": result.finetune_report}
    exported = export_model(model, out / "sevennet-pft.pth", data_hash=data.data_hash(), hyperparameters=cfg.as_dict(), name="SevenNet-0-PFT")
    report["exported"] = {"path": exported["path"], "calculator_spec": exported["calculator_spec"]}

    t0 = time.perf_counter()
    after = {}
    for mid, rel in {**TEST, **TRAIN}.items():
        after[mid] = phonon_comparison(exported["calculator_spec"], DATA / rel, settings)
    after_f = {"cotrain": force_errors(model, cot), "heldout_displacements": force_errors(model, test_disp)}
    report["eval_after_s"] = time.perf_counter() - t0
    report["phonons"] = {"before": before, "after": after}
    report["phonons_heldout_summary"] = {
        "before": summarize([before[m] for m in TEST]),
        "after": summarize([after[m] for m in TEST]),
    }
    report["forces"] = {"before": before_f, "after": after_f}
    report["total_s"] = time.perf_counter() - t_start

    def row(d):
        return (f"wmax err {d['omega_max_abs_error_K']:.1f} K | S err {d['entropy_abs_error_300K_J_per_K_mol']:.2f} | "
                f"F err {d['free_energy_abs_error_300K_kJ_per_mol']:.3f} | Cv err {d['heat_capacity_abs_error_300K_J_per_K_mol']:.3f} | "
                f"mesh MAE {d['mesh_mae_THz']:.3f} THz | fc MAE {d['force_constant_mae_eV_per_A2']:.4f}")

    for mid in {**TEST, **TRAIN}:
        tag = "HELD-OUT" if mid in TEST else "train"
        print(f"[{tag}] {mid}\n  before: {row(before[mid])}\n  after:  {row(after[mid])}")
    for k in before_f:
        print(f"{k}: force MAE {before_f[k]['force_mae_eV_per_A']:.4f} -> {after_f[k]['force_mae_eV_per_A']:.4f} eV/Å")
    print(f"train {report['train_s']:.0f} s, total {report['total_s']:.0f} s")
    (out / "report.json").write_text(json.dumps(report, indent=2, default=float))


if __name__ == "__main__":
    main()
