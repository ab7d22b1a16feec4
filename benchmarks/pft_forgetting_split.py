"""What the forgetting check measures (issue 18): split the DFT force error on displaced supercells into the
model's force at the DFT equilibrium geometry and its response to the displacement, and measure how far each
model's own equilibrium lies from the DFT structure.

For each validation material of ``workflows/finetune-global-chalcogenides.yaml`` (the test files are never read)
and each model (SevenNet-0 and a fine-tuned file):

- ``total``: mean |F_model(x+u) − F_DFT(x+u)| over every DFT displaced supercell, eV/Å — the forgetting check;
- ``at_eq``: mean |F_model(x_DFT)| at the undisplaced DFT supercell, eV/Å (DFT: ~0; the set is relaxed to EDIFF 1e-7);
- ``response``: mean |F_model(x+u) − F_model(x_DFT) − F_DFT(x+u)|, eV/Å — the error of the force the displacement
  causes (assumes F_DFT(x_DFT) ≈ 0; phonopy itself builds the force constants from F_DFT(x+u) alone);
- ``dx_rms``: RMS distance (Å) between the model's relaxed unit cell (positions only, DFT cell, symmetry kept,
  FIRE to 1e-4 eV/Å) and the DFT positions, rigid shift removed.

    OMP_NUM_THREADS=1 python benchmarks/pft_forgetting_split.py [--model models/SevenNet-0-pft-chalcogenides.pth]

The same check on the PFT paper's own pair (§15 of README_training.md): every train and validation material of the
split (never the test ones), at most 8 displaced cells each, each row marked by whether the material is in the
paper's MDR-PBE train split (the paper fitted its Hessian) or not (held out from the paper's PFT):

    OMP_NUM_THREADS=1 python benchmarks/pft_forgetting_split.py --roles train,valid --max-cells 8 \
        --base nequix:../shared/models/nequix/nequix-mp-1.nqx --model nequix:../shared/models/nequix/nequix-mp-1-pft.nqx
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from ase.constraints import FixSymmetry
from ase.optimize import FIRE

from pftflow.calculators.backends import get_calculator
from pftflow.identity import material_id_from_path
from pftflow.materials.readers import read_reference
from pftflow.materials.structures import phonopy_to_atoms
from pftflow.spec.finetune_global import read_split_file
from pftflow.training.data import from_displacements

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pft_probe import ROOT, split_roles  # noqa: E402  (the seeded split as the probe computes it)


def relaxed_offset(calc, unit) -> float:
    """RMS distance (Å) of the model's relaxed positions from the DFT ones, cell fixed, rigid shift removed."""
    a = phonopy_to_atoms(unit)
    a.calc = calc
    a.set_constraint(FixSymmetry(a, symprec=1e-5))
    FIRE(a, logfile=None).run(fmax=1e-4, steps=1000)
    d = a.get_scaled_positions(wrap=False) - np.asarray(unit.scaled_positions)
    d -= np.round(d)
    d = d @ np.asarray(unit.cell)
    d -= d.mean(axis=0)
    return float(np.sqrt((d**2).sum(axis=1).mean()))


MDR_SPLIT = ROOT.parent / "shared" / "data" / "mdr" / "pbe_mdr_split.json"


def model_spec(text: str) -> dict:
    """``backend:model`` (e.g. ``sevennet:7net-0``, ``nequix:path.nqx``) as a calculator spec; a bare name is SevenNet."""
    backend, sep, model = text.partition(":")
    return {"backend": backend, "model": model} if sep else {"backend": "sevennet", "model": text}


def every_nth(items: list, limit: int) -> list:
    """At most ``limit`` items spread evenly over ``items`` (all of them when ``limit`` is 0)."""
    if not limit or len(items) <= limit:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, limit).round().astype(int)]


def score(calc, path: Path, max_cells: int = 0) -> dict:
    ref = read_reference(str(path))
    ph = ref.to_phonopy(produce_fc=False)
    cells = every_nth(from_displacements(ref, material_id=path.name), max_cells)
    eq = phonopy_to_atoms(ph.supercell)
    eq.calc = calc
    f0 = eq.get_forces().copy()
    tot, resp = [], []
    for ls in cells:
        a = ls.atoms.copy()
        a.calc = calc
        f = a.get_forces()
        tot.append(np.abs(f - ls.forces_eV_per_A).mean())
        resp.append(np.abs(f - f0 - ls.forces_eV_per_A).mean())
    return {"material": material_id_from_path(path), "atoms": len(eq), "cells": len(cells), "total": float(np.mean(tot)),
            "at_eq": float(np.abs(f0).mean()), "response": float(np.mean(resp)), "dx_rms_A": relaxed_offset(calc, ph.unitcell)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workflow", default=str(ROOT / "workflows" / "finetune-global-chalcogenides.yaml"))
    ap.add_argument("--base", default="sevennet:7net-0", help="backend:model of the base model")
    ap.add_argument("--model", default="sevennet:" + str(ROOT / "models" / "SevenNet-0-pft-chalcogenides.pth"),
                    help="backend:model of the fine-tuned model")
    ap.add_argument("--roles", default="valid", help="comma-separated roles of the split to score: train, valid (never test)")
    ap.add_argument("--max-cells", type=int, default=0, help="displaced cells per material, spread evenly (0: all)")
    ap.add_argument("--only", choices=("base", "model"), default=None,
                    help="score one of the two models (two processes, one per core; the summary then lists that one)")
    ap.add_argument("--out", default=None, help="append one JSON line per material and model")
    args = ap.parse_args(argv)
    roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    if not roles or set(roles) - {"train", "valid"}:
        ap.error(f"--roles: choose from train, valid (the test split is read once, for the final table), got {args.roles!r}")
    split = split_roles(Path(args.workflow))
    paths = [(role, p) for role in roles for p in split[role]]
    mdr_train = set(read_split_file(MDR_SPLIT)["train"]) if MDR_SPLIT.exists() else None  # None: unknown
    rows = []
    names = [Path(model_spec(m)["model"]).name for m in (args.base, args.model)]
    pairs = list(zip(names, (args.base, args.model)))
    if args.only:
        pairs = [pairs[0 if args.only == "base" else 1]]
        names = [pairs[0][0]]
    for name, text in pairs:
        calc = get_calculator({**model_spec(text), "device": "cpu"}).ase_calculator()
        for role, p in paths:
            t = time.time()
            in_mdr = None if mdr_train is None else material_id_from_path(p) in mdr_train
            r = {"model": name, "role": role, "in_mdr_train": in_mdr, **score(calc, p, args.max_cells),
                 "wall_s": round(time.time() - t, 1)}
            rows.append(r)
            print(json.dumps(r), flush=True)
            if args.out:
                with open(args.out, "a") as fh:
                    fh.write(json.dumps(r) + "\n")
    print(f"\n{'model':38s} {'total':>8s} {'at_eq':>8s} {'response':>9s} {'dx_rms':>8s}   (eV/Å; Å; mean of {len(paths)} materials)")
    for name in names:
        sel = [r for r in rows if r["model"] == name]
        print(f"{name:38s} " + " ".join(f"{np.mean([r[k] for r in sel]):8.4f}" for k in ("total", "at_eq", "response")) +
              f" {np.mean([r['dx_rms_A'] for r in sel]):8.4f}")


if __name__ == "__main__":
    main()
