"""Fast PFT efficacy probe (issue 18): N PFT steps of SevenNet-0 on the train split of
workflows/finetune-global-chalcogenides.yaml, scored on validation materials only (the 10 test materials are
never read: the split is computed from the file names with the spec's seeded MaterialSplit).

Every reference is folded (training/fold.py) by dividing its supercell matrix (fold.reduced_matrix) until it has <= --max-atoms atoms
(or, with --no-fold, kept only when it already has <= --max-atoms atoms).  Printed against step and CPU seconds:
  * hnf: validation Hessian-column error on near-field entries (within 6 Å of the probed atom), eV/Å², mean over
    6 fixed columns of each validation material (the same columns for every configuration);
  * at the first and last step: the ω_max error (K) and the frequency MAE (K) at the q-points commensurate with the
    folded cell (phonopy finite displacements with the model's forces on the folded cell vs the folded DFT force
    constants; exact DFT frequencies at those q).
--volume: also the same errors after relaxing the cell with the model itself (SevenNet-0, ASE FrechetCellFilter),
i.e. how much of the error comes from the model's volume.

  OMP_NUM_THREADS=1 PYTHONPATH=src python3 benchmarks/pft_probe.py --steps 30 --lr 3e-4 --probe column --norm mean
Options: --optimizer adamw|sgd, --adam-eps (README_training §10), --exclude (train materials left out), --l2sp (weight-space anchor to the base model), --w-forces, --cotrain none|distill|dft, --probe column|multi_column|rademacher, --k atoms per probe, --norm
mean|near_field|column_sum.  No EMA (the raw weights are scored), AdamW wd 1e-3, clip 100, weights 20/20/5/100.
Results are appended as one JSON line to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import yaml
from torch_ema import ExponentialMovingAverage

THZ_TO_K = 47.99243
ROOT = Path(__file__).resolve().parents[1]


def split_roles(workflow: Path) -> dict[str, list[str]]:
    from pftflow.identity import material_id_from_path
    from pftflow.spec.finetune_global import MaterialSplit

    raw = yaml.safe_load(workflow.read_text())
    folder = (ROOT / raw["materials"]).resolve()
    files = {material_id_from_path(p): p for p in sorted(folder.glob("*.phonopy.yaml*"))}
    roles = MaterialSplit(**raw["split"]).assign(sorted(files))
    return {r: [files[m] for m in roles[r]] for r in ("train", "valid")}  # test paths are not even kept


def folded(path: Path, max_atoms: int, fold: bool):
    """(material id, Phonopy with force constants on the folded cell) or None when too big."""
    from pftflow.materials.readers import read_reference
    from pftflow.training.fold import fold_force_constants, reduced_matrix

    ph = read_reference(str(path)).to_phonopy()
    if fold and len(ph.supercell) > max_atoms:
        m = reduced_matrix(ph.supercell_matrix, ph.unitcell.cell, len(ph.unitcell), max_atoms)
        if m is not None:
            ph = fold_force_constants(ph, m)
    return ph if len(ph.supercell) <= max_atoms else None


def load_refs(roles, max_atoms, fold, cache: Path):
    key = cache / f"refs_{max_atoms}_{int(fold)}.pkl"
    if key.exists():
        return pickle.loads(key.read_bytes())
    out = {}
    for role, paths in roles.items():
        out[role] = []
        for p in paths:
            ph = folded(p, max_atoms, fold)
            if ph is not None:
                out[role].append((p.name.split(".")[0], ph))
    key.write_bytes(pickle.dumps(out))
    return out


def validation_force_cells(roles, n_per_material: int):
    """n DFT displaced supercells (LabelledStructure) of each validation material, seeded: the forgetting proxy."""
    from pftflow.materials.readers import read_reference
    from pftflow.training.data import from_displacements

    out, frng = [], np.random.default_rng(7)
    for p in roles["valid"] if n_per_material else []:
        ds = from_displacements(read_reference(str(p)), material_id=p.name)
        out += [ds[int(i)] for i in frng.choice(len(ds), min(n_per_material, len(ds)), replace=False)]
    return out


def validation_equilibrium_cells(roles):
    """The undisplaced supercells (ASE Atoms) of the validation materials (DFT-relaxed: DFT forces ~ 0)."""
    from ase import Atoms
    from pftflow.materials.readers import read_reference

    out = []
    for p in roles["valid"]:
        sc = read_reference(str(p)).to_phonopy(produce_fc=False).supercell
        out.append(Atoms(sc.symbols, cell=sc.cell, scaled_positions=sc.scaled_positions, pbc=True))
    return out


#: element -> a neighbour of its group (one fixed swap each), for --cotrain minimum: new chemistries of the same
#: structure types as the train set, chosen without looking at the validation or test materials
SUBSTITUTE = {"S": "Se", "Se": "Te", "Te": "Se", "O": "S", "As": "Sb", "Sb": "Bi", "Bi": "Sb", "Ge": "Sn", "Sn": "Ge",
              "Pb": "Sn", "Ga": "In", "In": "Ga", "Tl": "In", "Cu": "Ag", "Ag": "Cu", "Zn": "Cd", "Cd": "Zn", "Hg": "Cd",
              "Li": "Na", "Na": "K", "K": "Rb", "Rb": "K", "Mg": "Ca", "Ca": "Sr", "Sr": "Ca", "Ba": "Sr", "Cl": "Br",
              "Br": "I", "I": "Br"}


def minimum_structures(roles, base_model_name: str, cache: Path):
    """--cotrain minimum: each train material's unit cell with SUBSTITUTE applied, relaxed by the base model (FIRE,
    FrechetCellFilter + FixSymmetry, fmax 1e-3 eV/Å, <= 300 steps) and labelled by it at its minimum
    (LabelledStructure, kind 'upstream').  Cached in ``cache``."""
    from ase import Atoms
    from ase.constraints import FixSymmetry
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE

    from pftflow.calculators.backends import SevenNetCalculator
    from pftflow.materials.readers import read_reference
    from pftflow.training.data import LabelledStructure

    import hashlib

    tag = hashlib.sha256(json.dumps([base_model_name, SUBSTITUTE, [p.name for p in roles["train"]]], sort_keys=True).encode()).hexdigest()[:12]
    key = cache / f"minimum_structures_{tag}.pkl"  # a new swap table or split is not read from an old cache
    if key.exists():
        return pickle.loads(key.read_bytes())
    calc = SevenNetCalculator(model=base_model_name, device="cpu").ase_calculator()
    out = []
    for p in roles["train"]:
        u = read_reference(str(p)).to_phonopy(produce_fc=False).unitcell
        a = Atoms([SUBSTITUTE.get(x, x) for x in u.symbols], cell=u.cell, scaled_positions=u.scaled_positions, pbc=True)
        a.calc = calc
        a.set_constraint(FixSymmetry(a, symprec=1e-5))
        converged = FIRE(FrechetCellFilter(a), logfile=None).run(fmax=1e-3, steps=300)
        a.set_constraint()  # labels of the unconstrained structure
        ls = LabelledStructure(a.copy(), float(a.get_potential_energy()), a.get_forces().copy(),
                               a.get_stress(voigt=False).copy(), material_id=p.name.split(".")[0] + "-swapped", kind="upstream")
        print(f"minimum: {p.name.split('.')[0]} -> {a.get_chemical_formula()} ({len(a)} atoms), converged {converged}, "
              f"max |F| {np.abs(ls.forces_eV_per_A).max():.1e} eV/Å", flush=True)
        out.append(ls)
    key.write_bytes(pickle.dumps(out))
    return out


def model_forces(model, atoms_list):
    from pftflow.training.loss import predict

    out = []
    for a in atoms_list:
        g = model.build_graph([a])
        out.append(predict(model, g, stress=False, create_graph=False)["forces_eV_per_A"].detach().double().numpy())
    return out


def commensurate_q(ph):
    m = np.asarray(ph.supercell_matrix, dtype=float)
    # q-points of the primitive/unit reciprocal lattice commensurate with the supercell: q = n · M⁻¹ (mod 1)
    from phonopy.harmonic.dynmat_to_fc import get_commensurate_points

    return get_commensurate_points(m)


def model_frequencies(model, ph_ref, cell_scale=None):
    """Model frequencies (THz) at the commensurate q of ph_ref's folded cell (phonopy finite displacements)."""
    from ase import Atoms
    from phonopy import Phonopy

    unit = ph_ref.unitcell.copy()
    if cell_scale is not None:
        unit.cell = np.asarray(unit.cell) @ cell_scale
    ph = Phonopy(unit, supercell_matrix=ph_ref.supercell_matrix, primitive_matrix=ph_ref.primitive_matrix)
    ph.generate_displacements(distance=0.01)
    scs = [Atoms(s.symbols, cell=s.cell, scaled_positions=s.scaled_positions, pbc=True) for s in ph.supercells_with_displacements]
    ph.forces = model_forces(model, scs)
    ph.produce_force_constants()
    qs = commensurate_q(ph_ref)
    return np.array([ph.get_frequencies(q) for q in qs]), len(scs)


def ref_frequencies(ph_ref):
    return np.array([ph_ref.get_frequencies(q) for q in commensurate_q(ph_ref)])


def freq_errors(f_model, f_ref):
    return {"wmax_err_K": float(abs(f_model.max() - f_ref.max()) * THZ_TO_K),
            "wmax_signed_K": float((f_model.max() - f_ref.max()) * THZ_TO_K),
            "freq_mae_K": float(np.abs(np.sort(f_model, axis=1) - np.sort(f_ref, axis=1)).mean() * THZ_TO_K)}


def relaxed_scale(model_name, ph_ref):
    """Cell deformation (3x3, row-vector convention) of the unit cell relaxed by SevenNet-0 itself."""
    from ase import Atoms
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE
    from sevenn.calculator import SevenNetCalculator

    u = ph_ref.unitcell
    a = Atoms(u.symbols, cell=u.cell, scaled_positions=u.scaled_positions, pbc=True)
    a.calc = SevenNetCalculator(model_name, device="cpu")
    FIRE(FrechetCellFilter(a), logfile=None).run(fmax=0.005, steps=300)
    return np.linalg.solve(np.asarray(u.cell), np.asarray(a.cell[:])), a.get_volume() / abs(np.linalg.det(u.cell))


def force_mae(model, cells) -> float:
    """DFT force MAE (eV/Å) of the model on labelled cells (the validation displaced supercells: what the
    forgetting check measures on test): mean over cells of the mean |F_model - F_DFT|."""
    pred = model_forces(model, [ls.atoms for ls in cells])
    return float(np.mean([np.abs(f - ls.forces_eV_per_A).mean() for f, ls in zip(pred, cells)]))


def validation_columns(valid, per_material: int = 6):
    """The fixed Hessian columns scored by near_field_eval (seeded: the same in every run)."""
    vrng = np.random.default_rng(1234)
    return [vrng.choice(3 * len(s.atoms), per_material, replace=False) for _, s in valid]


def near_field_eval(model, valid, columns, radius_A=6.0):
    """Mean near-field |ΔH| (eV/Å²) over fixed columns of the validation cells."""
    from pftflow.training.probes import near_field_mask

    errs = []
    for (mid, ls), cols in zip(valid, columns):
        g = model.build_graph([ls.atoms])
        n = len(ls.atoms)
        h = torch.as_tensor(ls.hessian_eV_per_A2)
        for c in cols:
            v = torch.zeros(n, 3, dtype=g.positions_A.dtype); v.view(-1)[c] = 1.0
            from pftflow.training.loss import predict

            hv = predict(model, g, probes=v[None], stress=False, create_graph=False)["hessian_probes_eV_per_A2"][0].detach().double()
            m = near_field_mask(ls.atoms.positions, ls.atoms.cell[:], [c // 3], radius_A)
            errs.append(float((hv - h[:, c].reshape(n, 3))[torch.as_tensor(m)].abs().mean()))
    return float(np.mean(errs))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--workflow", default=str(ROOT / "workflows/finetune-global-chalcogenides.yaml"))
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--probe", default="column", choices=["column", "multi_column", "rademacher"])
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--norm", default="mean", choices=["mean", "near_field", "column_sum"])
    ap.add_argument("--cotrain", default="none", choices=["none", "distill", "dft", "minimum"],
                    help="minimum: the train materials' unit cells with every element swapped for a neighbour of its group (SUBSTITUTE), relaxed by the base model (cell and positions, symmetry kept) and labelled by it there: its minimum of chemistries outside the train set, with forces ~0, so no curvature to pull back (README_training.md §14)")
    ap.add_argument("--cotrain-ratio", type=int, default=2)
    ap.add_argument("--cotrain-max-atoms", type=int, default=300, help="dft co-training: displaced supercells up to this size")
    ap.add_argument("--cotrain-per-material", type=int, default=2, help="dft co-training: displaced supercells per train material")
    ap.add_argument("--l2sp", type=float, default=0.0, help="L2-SP: + l2sp * sum (theta - theta_base)^2 on every step (0: off)")
    ap.add_argument("--anchor-wd", type=float, default=0.0,
                    help="decoupled weight decay toward the base weights, theta -= lr*wd*(theta - theta_base) after each step, "
                    "instead of AdamW's decay toward 0: what finetune mode delta with this weight_decay does (0: off)")
    ap.add_argument("--finetune", default="full",
                    help="fine-tuning mode as in the spec's training.config.finetune, JSON or a mode name, e.g. "
                         "'{\"mode\": \"lora\", \"lora_rank\": 4}' or '{\"mode\": \"frozen\", \"freeze\": [\"embedding\", \"layer0\"]}'")
    ap.add_argument("--w-forces", type=float, default=20.0, help="force weight (both phonon and co-training steps)")
    ap.add_argument("--valid-forces", type=int, default=3,
                    help="forgetting proxy: DFT force MAE on this many displaced supercells of each validation material (0: off)")
    ap.add_argument("--max-atoms", type=int, default=130)
    ap.add_argument("--no-fold", action="store_true")
    ap.add_argument("--n-valid-freq", type=int, default=3)
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--volume", action="store_true")
    ap.add_argument("--seed", type=int, default=0,
                    help="seed of the training run: initial torch state, order of train materials, probe columns "
                         "(the validation columns and cells scored stay fixed; 0 is every earlier row's seed)")
    ap.add_argument("--ema", type=float, default=0.0,
                    help="score the EMA of the weights (torch-ema, this decay, with its warm-up as in the trainer) "
                         "instead of the raw weights (0: off, every earlier row)")
    ap.add_argument("--curve-forces", action="store_true",
                    help="also evaluate the forgetting proxy at every --eval-every step (curve entries 'force_mae'; "
                         "their CPU time, ~20-35 s each here, is then part of the curve's cpu_s)")
    ap.add_argument("--optimizer", default="adamw", choices=["adamw", "sgd"],
                    help="adamw (the trainer's) or SGD with --momentum (steps proportional to the gradient)")
    ap.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    ap.add_argument("--adam-eps", type=float, default=1e-8,
                    help="AdamW eps: weights whose gradient RMS is below it move less (1e-8: torch's default)")
    ap.add_argument("--warmup", type=int, default=0,
                    help="steps of linear lr warm-up from lr/100 (the trainer's cosine_warmup; 0: none, the probe's default)")
    ap.add_argument("--schedule", default="constant", choices=["constant", "cosine"],
                    help="lr after the warm-up: constant, or cosine down to --min-lr at the last step (the spec's scheduler)")
    ap.add_argument("--min-lr", type=float, default=1e-5, help="cosine: lr at the last step")
    ap.add_argument("--exclude", default="",
                    help="comma-separated train material ids to leave out of training (e.g. from pft_influence.py)")
    ap.add_argument("--label", default="")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/pft_probe_results.jsonl"))
    ap.add_argument("--cache", default="/tmp/pft_probe_cache")
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)

    from pftflow.training.data import from_displacements, from_phonon_reference
    from pftflow.training.loss import LossWeights, pft_loss, sample_columns
    from pftflow.calculators.energy_models import SevenNetEnergyModel
    from pftflow.training.probes import ProbeSpec, batch_probes
    from pftflow.training.adapters import setup_finetuning, trainable_parameters
    from pftflow.training.trainer import _targets_for, cosine_warmup

    cache = Path(args.cache); cache.mkdir(parents=True, exist_ok=True)
    t_cpu0 = time.process_time()
    roles = split_roles(Path(args.workflow))
    refs = load_refs(roles, args.max_atoms, not args.no_fold, cache)
    excluded = {m for m in args.exclude.split(",") if m}
    unknown = excluded - {m for m, _ in refs["train"]}
    if unknown:
        raise SystemExit(f"--exclude: {sorted(unknown)} are not train materials of {args.workflow}")
    train = [(m, from_phonon_reference(ph, material_id=m)[0]) for m, ph in refs["train"] if m not in excluded]
    valid = [(m, from_phonon_reference(ph, material_id=m)[0]) for m, ph in refs["valid"]]
    print(f"train {len(train)} cells ({[len(s.atoms) for _, s in train]} atoms), valid {len(valid)} ({[len(s.atoms) for _, s in valid]})", flush=True)
    model = SevenNetEnergyModel.from_checkpoint("7net-0", dtype=torch.float32)
    vcols = validation_columns(valid)
    vfreq = sorted(range(len(valid)), key=lambda i: len(valid[i][1].atoms))[: args.n_valid_freq]

    def freq_eval(tag):
        res = {}
        for i in vfreq:
            mid, ph = refs["valid"][i]
            fm, nd = model_frequencies(model, ph)
            res[mid] = freq_errors(fm, ref_frequencies(ph))
        return res

    cot = []
    base = SevenNetEnergyModel.from_checkpoint("7net-0", dtype=torch.float32) if args.cotrain == "distill" else None
    if args.cotrain == "distill":
        from pftflow.flows.finetune_campaigns import builtin_crystals, distillation_structures
        from pftflow.training.loss import predict as _pred

        crystals = builtin_crystals(None, max_crystals=16, seed=0)
        structs = distillation_structures(crystals, 48, 0.05, 16, 0)
        from pftflow.training.data import LabelledStructure

        for a in structs:
            g = base.build_graph([a])
            p = _pred(base, g, stress=True, create_graph=False)
            cot.append(LabelledStructure(a, float(p["energy_eV"][0]), p["forces_eV_per_A"].detach().double().numpy(),
                                         p["stress_eV_per_A3"][0].detach().double().numpy(), kind="rattled"))
    elif args.cotrain == "minimum":
        cot = minimum_structures(roles, base_model_name="7net-0", cache=cache)
    elif args.cotrain == "dft":
        rng = np.random.default_rng(0)
        from pftflow.materials.readers import read_reference

        for p in roles["train"]:
            ref = read_reference(str(p))
            ph = ref.to_phonopy()
            if len(ph.supercell) > args.cotrain_max_atoms:
                continue
            ds = from_displacements(ref, material_id=p.name)
            cot += [ds[int(i)] for i in rng.choice(len(ds), min(args.cotrain_per_material, len(ds)), replace=False)]
    print(f"co-training: {args.cotrain}, {len(cot)} structures", flush=True)

    rec = {"label": args.label, "args": vars(args), "curve": []}
    if args.volume:
        vol = {}
        for i in vfreq:
            mid, ph = refs["valid"][i]
            scale, vratio = relaxed_scale("7net-0", ph)
            f_ref = ref_frequencies(ph)
            vol[mid] = {"volume_ratio": vratio, "at_dft_cell": freq_errors(model_frequencies(model, ph)[0], f_ref),
                        "at_model_cell": freq_errors(model_frequencies(model, ph, scale)[0], f_ref)}
            print(mid, json.dumps(vol[mid]), flush=True)
        rec["volume"] = vol

    weights = LossWeights(forces=args.w_forces)
    ph_w = LossWeights(energy=0.0, forces=weights.forces, stress=weights.stress, hessian=weights.hessian) if cot else weights
    spec = None if (args.probe == "column" and args.norm == "mean") else ProbeSpec(kind=args.probe, atoms_per_probe=args.k, normalisation=args.norm)
    ft = json.loads(args.finetune) if args.finetune.strip().startswith("{") else args.finetune
    rec["finetune"] = setup_finetuning(model, ft)
    params = trainable_parameters(model)
    theta0 = [p.detach().clone() for p in params] if (args.l2sp or args.anchor_wd) else None
    wd = 0.0 if args.anchor_wd else 1e-3
    if args.optimizer == "sgd":  # plain gradient steps: each weight moves in proportion to its gradient
        opt = torch.optim.SGD(params, lr=args.lr, momentum=args.momentum, weight_decay=wd)
    else:  # Adam normalises each weight's step: weights with tiny gradients move about as far as the rest
        opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=wd, eps=args.adam_eps)
    # the trainer's schedule (warm-up from lr/100, then cosine to min_lr), per phonon step; constant by default
    min_ratio = args.min_lr / args.lr if args.schedule == "cosine" else 1.0
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine_warmup(args.warmup, args.steps, min_ratio))
    # use_num_updates (the default): decay min(ema, (1+n)/(10+n)), as in the trainer
    ema = ExponentialMovingAverage(params, decay=args.ema) if args.ema else None

    def scored():
        """The weights that are scored: the EMA's while evaluating, when --ema is on."""
        return ema.average_parameters() if ema is not None else nullcontext()
    graphs = {}

    def batch(ls, key):
        if key not in graphs:
            graphs[key] = model.build_graph([ls.atoms])
        g = graphs[key]
        return g, _targets_for([ls], g.positions_A.dtype, g.positions_A.device)

    vforce = validation_force_cells(roles, args.valid_forces)
    veq = validation_equilibrium_cells(roles) if args.valid_forces else []

    def force_eval():
        return force_mae(model, vforce) if vforce else None

    def f0_eval(forces):
        """Mean |F| (eV/Å) of the model at the DFT equilibrium supercells of the validation materials: the part of
        the displaced-cell force error that does not come from the displacement."""
        return float(np.mean([np.abs(f).mean() for f in forces])) if veq else None

    f0_base = model_forces(model, veq) if veq else []

    def f0_scaling(forces):
        """How the model's forces at the DFT equilibrium supercells moved from the base model's: the least-squares
        slope s of F_after on F_base, their cosine, and the mean |F_after - s F_base| (eV/Å).  s > 1 with a cosine
        near 1 means training scaled the base model's residual forces (a stiffer energy surface) rather than
        changing them."""
        if not veq:
            return None
        fa = np.concatenate([f.ravel() for f in forces])
        fb = np.concatenate([f.ravel() for f in f0_base])
        s = float(fa @ fb / (fb @ fb))
        return {"slope": s, "cosine": float(fa @ fb / np.linalg.norm(fa) / np.linalg.norm(fb)),
                "residual_eV_per_A": float(np.abs(fa - s * fb).mean())}

    rec["valid_force_mae_before"] = force_eval()
    rec["valid_f0_before"] = f0_eval(f0_base)
    print(f"validation DFT force MAE on {len(vforce)} displaced supercells: {rec['valid_force_mae_before']}", flush=True)
    rec["freq_before"] = freq_eval("before")
    hnf0 = near_field_eval(model, valid, vcols)
    rec["curve"].append({"step": 0, "cpu_s": 0.0, "hnf": hnf0})
    print(f"step 0 hnf {hnf0:.5f} freq {json.dumps(rec['freq_before'])}", flush=True)
    t_train0 = time.process_time()
    rng = np.random.default_rng(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    co_ptr = 0
    for step in range(1, args.steps + 1):
        i = int(rng.integers(len(train)))
        g, t = batch(train[i][1], ("t", i))
        if spec is None:
            cols, probes = sample_columns(g, t, 1, gen), None
        else:
            cols, probes = None, batch_probes(g, t, spec, 1, rng)
        plan = [(g, t, ph_w, cols, probes)]
        for _ in range(args.cotrain_ratio if cot else 0):
            j = co_ptr % len(cot); co_ptr += 1
            gc, tc = batch(cot[j], ("c", j))
            plan.append((gc, tc, weights, None, None))
        for gg, tt, ww, cc, pp in plan:
            opt.zero_grad(set_to_none=True)
            loss, parts = pft_loss(model, gg, tt, ww, columns=cc, probes=pp)
            if args.l2sp:  # L2-SP: stay near the base weights
                loss = loss + args.l2sp * sum(((p - p0) ** 2).sum() for p, p0 in zip(params, theta0))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 100.0)
            opt.step()
            if args.anchor_wd:
                with torch.no_grad():
                    for p, p0 in zip(params, theta0):
                        p.sub_(opt.param_groups[0]["lr"] * args.anchor_wd * (p - p0))
            if ema is not None:
                ema.update()
        sched.step()
        if step % args.eval_every == 0 or step == args.steps:
            with scored():
                hnf = near_field_eval(model, valid, vcols)
                cpu = time.process_time() - t_train0  # as before --curve-forces: training + the Hessian evaluations
                entry = {"step": step, "cpu_s": cpu, "hnf": hnf}
                if args.curve_forces and step != args.steps:
                    entry["force_mae"] = force_eval()
            rec["curve"].append(entry)
            extra = f" force MAE {entry['force_mae']:.5f}" if "force_mae" in entry else ""
            print(f"step {step} cpu {cpu:.0f} s hnf {hnf:.5f}{extra} (train loss {parts['loss']:.4g})", flush=True)
    if ema is not None:
        ema.copy_to(params)  # score the EMA weights from here on
    rec["freq_after"] = freq_eval("after")
    rec["valid_force_mae_after"] = force_eval()
    if args.curve_forces:
        rec["curve"][-1]["force_mae"] = rec["valid_force_mae_after"]
    f0_after = model_forces(model, veq) if veq else []
    rec["valid_f0_after"] = f0_eval(f0_after)
    rec["valid_f0_scaling"] = f0_scaling(f0_after)
    rec["cpu_total_s"] = time.process_time() - t_cpu0
    wb = np.mean([v["wmax_err_K"] for v in rec["freq_before"].values()])
    wa = np.mean([v["wmax_err_K"] for v in rec["freq_after"].values()])
    fb = np.mean([v["freq_mae_K"] for v in rec["freq_before"].values()])
    fa = np.mean([v["freq_mae_K"] for v in rec["freq_after"].values()])
    rec["summary"] = {"hnf_before": hnf0, "hnf_after": rec["curve"][-1]["hnf"], "wmax_before_K": wb, "wmax_after_K": wa,
                      "freq_mae_before_K": fb, "freq_mae_after_K": fa, "train_cpu_s": rec["curve"][-1]["cpu_s"],
                      "valid_force_mae_before": rec["valid_force_mae_before"], "valid_force_mae_after": rec["valid_force_mae_after"],
                      "valid_f0_before": rec["valid_f0_before"], "valid_f0_after": rec["valid_f0_after"],
                      "valid_f0_scaling": rec["valid_f0_scaling"]}
    print("SUMMARY", args.label, json.dumps(rec["summary"]), json.dumps(rec["freq_after"]), flush=True)
    with open(args.out, "a") as f:
        f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
