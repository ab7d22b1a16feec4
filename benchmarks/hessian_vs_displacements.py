"""Force constants from the model Hessian vs finite displacements; Nequix JIT compile / recompile costs.

    OMP_NUM_THREADS=1 python benchmarks/hessian_vs_displacements.py [--models sevennet nequix] [--out results.json]

Part 1, per model and material (Si a = 5.431 Å, NaCl a = 5.64 Å, 2-atom fcc primitive cells, 2x2x2
supercells of 16 atoms, unrelaxed, atoms on their ideal sites):
  * accuracy: Hessian FCs against phonopy's fit of ±0.001 Å central differences of the same model
    (relative Frobenius error, max |Δf| at the commensurate q-points, THz);
  * cost: Hessian FCs against the campaign's displacement path at its default (0.01 Å, phonopy's
    symmetry-reduced set, forces in one ``compute`` batch, ``produce_force_constants``), both warm (model
    loaded, JIT compiled: each timed on its second run), wall and CPU seconds.
Part 2 (Nequix): a fresh calculator on Si 16 / NaCl 16 / Si 64 atoms (conventional 2x2x2) and displaced
copies: compile count and time, time per structure after compilation; the same sequence through the nequix
package's own ASE calculator, whose compilations are counted with jax.monitoring.
Part 3: distinct padded shapes (each one an XLA compilation) over the 39 chalcogenide supercells of
../shared/data (216-1176 atoms), this backend's ladder against the package's padding (no JIT needed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from ase.build import bulk

from pftflow.materials.structures import atoms_to_phonopy, phonopy_to_atoms
from pftflow.phonons.harmonic import produce_force_constants
from pftflow.phonons.hessian import hessian_force_constants, independent_atoms

ROOT = Path(__file__).resolve().parents[1]
NEQUIX = ROOT.parent / "shared" / "models" / "nequix" / "nequix-mp-1.nqx"
MATERIALS = {"Si": lambda: bulk("Si", "diamond", a=5.431), "NaCl": lambda: bulk("NaCl", "rocksalt", a=5.64)}
SMAT = 2 * np.eye(3, dtype=int)


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def phonon(at):
    import phonopy

    return phonopy.Phonopy(atoms_to_phonopy(at), supercell_matrix=SMAT)


def comm_freqs(ph, fc):
    from phonopy.harmonic.dynmat_to_fc import get_commensurate_points

    ph.force_constants = fc
    ph.run_qpoints(np.array(get_commensurate_points(SMAT)))
    return np.array(ph.qpoints.frequencies)


def displacement_fc(calc, at, distance, plusminus):
    ph = phonon(at)
    ph.generate_displacements(distance=distance, is_plusminus=plusminus)
    cells = [phonopy_to_atoms(s) for s in ph.supercells_with_displacements]
    res = calc.compute(cells, stress=False)
    return ph, produce_force_constants(ph, res.forces_eV_per_A), len(cells)


def part1(calc, label):
    rows = []
    for mat, make in MATERIALS.items():
        at = make()
        ph_fd, fc_fd, _ = displacement_fc(calc, at, 0.001, True)
        fc_h = hessian_force_constants(phonon(at), calc)  # warm-up (compile / load)
        fc_h, tw_h, tc_h = timed(lambda: hessian_force_constants(phonon(at), calc))
        displacement_fc(calc, at, 0.01, "auto")  # warm-up of the production displacement path
        (_, _, n_disp), tw_d, tc_d = timed(lambda: displacement_fc(calc, at, 0.01, "auto"))
        rel = float(np.linalg.norm(fc_h - fc_fd) / np.linalg.norm(fc_fd))
        dfreq = float(np.abs(comm_freqs(ph_fd, fc_h) - comm_freqs(ph_fd, fc_fd)).max())
        r = {
            "model": label, "material": mat, "n_atoms_supercell": 16,
            "n_independent_atoms": len(independent_atoms(ph_fd)), "n_displacements_0.01A": n_disp,
            "fc_rel_err_vs_fd_0.001A": rel, "max_abs_dfreq_commensurate_THz": dfreq,
            "hessian_wall_s": tw_h, "hessian_cpu_s": tc_h, "displacements_wall_s": tw_d, "displacements_cpu_s": tc_d,
            "cost_ratio_cpu_hessian_over_displacements": tc_h / tc_d,
        }
        print(json.dumps(r), flush=True)
        rows.append(r)
    return rows


def part2():
    import jax
    from nequix.calculator import NequixCalculator

    from pftflow.calculators.nequix import NequixForceCalculator

    compiles = {"n": 0, "s": 0.0}

    def listener(event, duration, **kw):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles["n"] += 1
            compiles["s"] += duration

    jax.monitoring.register_event_duration_secs_listener(listener)

    def seq():
        si, nacl, si64 = bulk("Si", "diamond", a=5.431).repeat(2), bulk("NaCl", "rocksalt", a=5.64).repeat(2), bulk("Si", "diamond", a=5.431, cubic=True).repeat(2)
        out = []
        for name, a in [("Si16", si), ("NaCl16", nacl), ("Si64", si64)]:
            for k in range(3):  # the undisplaced cell and two displaced copies (a displacement set)
                b = a.copy()
                if k:
                    b.positions[k] += [0.01, 0.0, 0.0]
                out.append((name, b))
        return out

    results = {}
    calc = NequixForceCalculator(str(NEQUIX))
    calc.ase_calculator()
    per = []
    for name, a in seq():
        n0, c0 = calc.n_compiles, compiles["n"]
        _, tw, tc = timed(lambda: calc.compute([a]))
        g, _ = calc._graph([a])
        per.append({"cell": name, "n_atoms": len(a), "padded_nodes": int(g.nodes["positions"].shape[0]),
                    "padded_edges": int(g.senders.shape[0]), "compiled": calc.n_compiles > n0,
                    "xla_compiles": compiles["n"] - c0, "wall_s": tw, "cpu_s": tc})
        print(json.dumps(per[-1]), flush=True)
    si16 = seq()[0][1]
    hw0 = timed(lambda: calc.hessian_rows(si16, [0]))
    hw1 = timed(lambda: calc.hessian_rows(si16, [0]))
    results["pftflow"] = {"per_call": per, "n_compiles_efs": calc.n_compiles, "n_compiles_hessian": calc.n_hessian_compiles,
                          "hessian_first_call_wall_s": hw0[1], "hessian_first_call_cpu_s": hw0[2],
                          "hessian_rows_one_atom_warm_wall_s": hw1[1], "hessian_rows_one_atom_warm_cpu_s": hw1[2]}
    pkg = NequixCalculator(model_path=str(NEQUIX), backend="jax", use_kernel=False)
    per = []
    for name, a in seq():
        c0 = compiles["n"]
        b = a.copy()
        b.calc = pkg
        _, tw, tc = timed(lambda: (b.get_potential_energy(), b.get_forces(), b.get_stress()))
        per.append({"cell": name, "xla_compiles": compiles["n"] - c0, "wall_s": tw, "cpu_s": tc})
        print(json.dumps(per[-1]), flush=True)
    results["nequix_package_calculator"] = {"per_call": per}
    return results


def part3(folder: Path):
    """Distinct padded graph shapes (= XLA compilations) over the supercells of a many-material campaign
    (the chalcogenide set in ../shared/data): this backend's ladder vs the package calculator's padding."""
    import glob

    import phonopy
    from matscipy.neighbours import neighbour_list

    from pftflow.calculators.nequix import bucket_size

    sizes = []
    for f in sorted(glob.glob(str(folder / "*.phonopy.yaml.xz"))):
        a = phonopy_to_atoms(phonopy.load(f, produce_fc=False, log_level=0).supercell)
        sizes.append((len(a), len(neighbour_list("i", positions=a.positions, cell=a.cell[:], pbc=a.pbc, cutoff=6.0))))
    pkg = [((n + 8) // 8 * 8, (int(np.ceil(e * 1.1)) + 63) // 64 * 64) for n, e in sizes]
    out = {"n_materials": len(sizes), "atoms_range": [min(n for n, _ in sizes), max(n for n, _ in sizes)],
           "edges_range": [min(e for _, e in sizes), max(e for _, e in sizes)],
           "package": {"distinct_shapes": len(set(pkg)), "mean_edge_padding": float(np.mean([p[1] / e for p, (_, e) in zip(pkg, sizes)]))}}
    for spo in (4, 2, 1):
        mine = [(bucket_size(n + 1, 16, spo), bucket_size(int(np.ceil(1.02 * e)), 64, spo)) for n, e in sizes]
        out[f"pftflow_steps_per_octave_{spo}"] = {"distinct_shapes": len(set(mine)), "mean_edge_padding": float(np.mean([m[1] / e for m, (_, e) in zip(mine, sizes)]))}
    print(json.dumps(out), flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["sevennet", "nequix"])
    ap.add_argument("--no-jit", action="store_true", help="skip part 2 (Nequix compile counts)")
    ap.add_argument("--shapes-only", action="store_true", help="only part 3 (padded shapes over the chalcogenide set)")
    ap.add_argument("--out", default="hessian_vs_displacements.json")
    args = ap.parse_args()
    from pftflow.calculators import get_calculator

    out = {"host": platform.node(), "cpu_count": os.cpu_count(), "omp": os.environ.get("OMP_NUM_THREADS"), "part1": [], "time": time.ctime()}
    chalc = ROOT.parent / "shared" / "data" / "chalcogenides"
    if args.shapes_only:
        out["part3"] = part3(chalc)
        Path(args.out).write_text(json.dumps(out, indent=1))
        return
    if "sevennet" in args.models:
        out["part1"] += part1(get_calculator({"backend": "sevennet", "model": "7net-0", "device": "cpu"}), "sevennet:7net-0")
    if "nequix" in args.models and NEQUIX.is_file():
        out["part1"] += part1(get_calculator({"backend": "nequix", "model": str(NEQUIX)}), "nequix:nequix-mp-1")
        if not args.no_jit:
            out["part2"] = part2()
    if chalc.is_dir():
        out["part3"] = part3(chalc)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
