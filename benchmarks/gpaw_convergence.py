"""Convergence of GPAW forces/stresses with plane-wave cutoff and k-point density.

For each crystal a 16-atom supercell (2x2x2 of the 2-atom primitive cell) gets one atom
(``--atom``, default 0: Si, Na, Mg) displaced by +0.01 Å along x, as in a phonopy
finite-displacement run.  Two one-dimensional scans are made:

* cutoff scan: ``--ecuts`` at k-point density ``--scan-density``; reference = largest cutoff;
* k-point scan: ``--densities`` at cutoff ``--scan-ecut``; reference = largest density.

Each row prints the largest change of any force component against the scan's reference (eV/Å),
the largest change of any stress component (GPa), the number of SCF iterations and the CPU and wall
time of one ``get_forces()`` + ``get_stress()`` call with a fresh calculator (one process, one
thread; CPU time is the robust number when other processes share the cores).

Run::

    OMP_NUM_THREADS=1 python benchmarks/gpaw_convergence.py --json gpaw_convergence.json

The default grid (references 500 eV and 4x4x4) takes ~17 min of CPU for Si + NaCl; ``--quick``
(cutoffs 300/350/450 eV, k-densities 1.5/2.2, i.e. 2x2x2 vs 3x3x3) about 8 min.  ``--jobs 2`` runs
the crystals side by side (timings are then taken with both cores busy).  Results of 2026-11-21:
``benchmarks/README_gpaw.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

EV_PER_A3_TO_GPA = 160.21766208

#: Lattice parameters (Å) of the conventional cubic cells; see docs/gpaw.md for the sources.
CRYSTALS = {
    "Si": ("diamond", 5.431),
    "NaCl": ("rocksalt", 5.64),
    "MgO": ("rocksalt", 4.21),
}


def displaced_supercell(name: str, displacement: float = 0.01, atom: int = 0):
    from ase.build import bulk

    structure, a = CRYSTALS[name]
    atoms = bulk(name, structure, a=a).repeat((2, 2, 2))
    atoms.positions[atom, 0] += displacement
    return atoms


def run_one(name: str, ecut: float, density: float, setups: dict | None = None, atom: int = 0) -> dict:
    """Forces and stress of the displaced supercell at one setting (fresh calculator)."""
    from pftflow.calculators.gpaw_reference import kpoint_grid, make_gpaw_calculator

    atoms = displaced_supercell(name, atom=atom)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "gpaw.txt"
        atoms.calc = make_gpaw_calculator(ecut_ev=ecut, kpoint_density=density, setups=setups, txt=str(log))
        t0, c0 = time.perf_counter(), time.process_time()
        forces = atoms.get_forces()
        stress = atoms.get_stress(voigt=True)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        atoms.calc = None  # closes the log
        niter = sum(1 for line in log.read_text().splitlines() if line.startswith("|iter:"))
    return {
        "system": name,
        "ecut_ev": ecut,
        "kpoint_density": density,
        "setups": setups,
        "displaced_atom": atom,
        "kgrid": list(kpoint_grid(atoms, density)),
        "wall_s": wall,
        "cpu_s": cpu,
        "scf_iterations": niter,
        "forces": forces.tolist(),
        "stress_eV_per_A3": stress.tolist(),
    }


def run_system(
    name: str, ecuts, densities, scan_ecut: float, scan_density: float, setups=None, atom: int = 0, verbose=True
):
    settings = [(e, scan_density) for e in ecuts] + [(scan_ecut, d) for d in densities]
    results: dict[tuple[float, float], dict] = {}
    for ecut, dens in settings:
        key = (float(ecut), float(dens))
        if key in results:
            continue
        results[key] = run_one(name, *key, setups=setups, atom=atom)
        if verbose:
            r = results[key]
            print(
                f"  [{name}] ecut={ecut:g} eV density={dens:g} Å kgrid={r['kgrid']} "
                f"{r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU ({r['scf_iterations']} SCF it)",
                file=sys.stderr,
                flush=True,
            )

    rows = []
    for scan, values, ref_key in (
        ("ecut", ecuts, (float(max(ecuts)), float(scan_density))),
        ("kpts", densities, (float(scan_ecut), float(max(densities)))),
    ):
        ref = results[ref_key]
        f_ref = np.array(ref["forces"])
        s_ref = np.array(ref["stress_eV_per_A3"])
        for v in values:
            key = (float(v), float(scan_density)) if scan == "ecut" else (float(scan_ecut), float(v))
            r = results[key]
            rows.append(
                {
                    **{k: r[k] for k in ("system", "ecut_ev", "kpoint_density", "kgrid", "wall_s", "cpu_s", "scf_iterations")},
                    "scan": scan,
                    "is_reference": key == ref_key,
                    "max_dF_eV_per_A": float(np.abs(np.array(r["forces"]) - f_ref).max()),
                    "max_dstress_GPa": float(np.abs(np.array(r["stress_eV_per_A3"]) - s_ref).max() * EV_PER_A3_TO_GPA),
                    "F_displaced_x_eV_per_A": float(r["forces"][atom][0]),
                    "pressure_GPa": float(-np.mean(r["stress_eV_per_A3"][:3]) * EV_PER_A3_TO_GPA),
                }
            )
    return rows, list(results.values())


def format_table(rows) -> str:
    head = (
        "| system | scan | ecut (eV) | k-density (Å) | k-grid | max ΔF (eV/Å) | max Δσ (GPa) | "
        "F_x disp. atom (eV/Å) | P (GPa) | SCF it | CPU (s) | wall (s) |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        ref = " (ref)" if r["is_reference"] else ""
        lines.append(
            f"| {r['system']} | {r['scan']}{ref} | {r['ecut_ev']:g} | {r['kpoint_density']:g} | "
            f"{'x'.join(map(str, r['kgrid']))} | {r['max_dF_eV_per_A']:.1e} | {r['max_dstress_GPa']:.3f} | "
            f"{r['F_displaced_x_eV_per_A']:.4f} | {r['pressure_GPa']:.2f} | {r['scf_iterations']} | "
            f"{r['cpu_s']:.1f} | {r['wall_s']:.1f} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--systems", nargs="+", default=["Si", "NaCl"], choices=sorted(CRYSTALS))
    p.add_argument("--ecuts", nargs="+", type=float, default=None, help="default 250 300 350 400 500")
    p.add_argument("--densities", nargs="+", type=float, default=None, help="default 1.5 2.5 3.5")
    p.add_argument("--quick", action="store_true", help="smaller grid: --ecuts 300 350 450 --densities 1.5 2.2")
    p.add_argument("--scan-ecut", type=float, default=350.0, help="cutoff of the k-point scan (eV)")
    p.add_argument("--scan-density", type=float, default=1.5, help="k-point density of the cutoff scan (Å)")
    p.add_argument("--setups", type=json.loads, default=None, help='GPAW setups as JSON, e.g. \'{"Mg": "2"}\'')
    p.add_argument("--atom", type=int, default=0, help="index of the displaced atom (1 = Cl/O in rocksalt)")
    p.add_argument("--jobs", type=int, default=1, help="crystals run in parallel (1 = clean timings)")
    p.add_argument("--json", type=Path, help="write all rows and raw results here")
    args = p.parse_args(argv)
    if args.ecuts is None:
        args.ecuts = [300.0, 350.0, 450.0] if args.quick else [250.0, 300.0, 350.0, 400.0, 500.0]
    if args.densities is None:
        args.densities = [1.5, 2.2] if args.quick else [1.5, 2.5, 3.5]

    t0 = time.perf_counter()
    jobs = [(s, args.ecuts, args.densities, args.scan_ecut, args.scan_density, args.setups, args.atom) for s in args.systems]
    if args.jobs > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as ex:
            outs = list(ex.map(run_system, *zip(*jobs)))
    else:
        outs = [run_system(*j) for j in jobs]
    rows = [r for o in outs for r in o[0]]
    raw = [r for o in outs for r in o[1]]
    total = time.perf_counter() - t0

    import gpaw

    meta = {
        "gpaw": gpaw.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "jobs": args.jobs,
        "total_wall_s": total,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    print(format_table(rows))
    print(f"\ntotal wall time {total:.0f} s; {meta}")
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "rows": rows, "raw": raw}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
