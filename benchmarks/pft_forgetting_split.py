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

from pftflow.calculators.backends import SevenNetCalculator
from pftflow.materials.readers import read_reference
from pftflow.materials.structures import phonopy_to_atoms
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


def score(calc, path: Path) -> dict:
    ref = read_reference(str(path))
    ph = ref.to_phonopy(produce_fc=False)
    cells = from_displacements(ref, material_id=path.name)
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
    return {"material": path.name.split(".")[0], "atoms": len(eq), "cells": len(cells), "total": float(np.mean(tot)),
            "at_eq": float(np.abs(f0).mean()), "response": float(np.mean(resp)), "dx_rms_A": relaxed_offset(calc, ph.unitcell)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workflow", default=str(ROOT / "workflows" / "finetune-global-chalcogenides.yaml"))
    ap.add_argument("--model", default=str(ROOT / "models" / "SevenNet-0-pft-chalcogenides.pth"))
    ap.add_argument("--out", default=None, help="append one JSON line per material and model")
    args = ap.parse_args(argv)
    paths = split_roles(Path(args.workflow))["valid"]
    rows = []
    for name in ("7net-0", args.model):
        calc = SevenNetCalculator(model=name, device="cpu").ase_calculator()
        for p in paths:
            t = time.time()
            r = {"model": Path(name).name, **score(calc, p), "wall_s": round(time.time() - t, 1)}
            rows.append(r)
            print(json.dumps(r), flush=True)
            if args.out:
                with open(args.out, "a") as fh:
                    fh.write(json.dumps(r) + "\n")
    print(f"\n{'model':38s} {'total':>8s} {'at_eq':>8s} {'response':>9s} {'dx_rms':>8s}   (eV/Å; Å; mean of {len(paths)} materials)")
    for name in ("7net-0", Path(args.model).name):
        sel = [r for r in rows if r["model"] == Path(name).name]
        print(f"{name:38s} " + " ".join(f"{np.mean([r[k] for r in sel]):8.4f}" for k in ("total", "at_eq", "response")) +
              f" {np.mean([r['dx_rms_A'] for r in sel]):8.4f}")


if __name__ == "__main__":
    main()
