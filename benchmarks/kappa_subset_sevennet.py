"""Measured (not a test): SevenNet-0 κ and SRME on the four k_SRME subset materials.

Runs the published k_SRME protocol through pftflow's science functions (the same ones the κ jobs
wrap): relaxation (two-stage FIRE + FrechetCellFilter + FixSymmetry 1e-5, fmax 1e-4 eV/Å, 300
steps) -> fc2 / fc3 force sets (displacement 0.03 Å, one batch call per set) -> imaginary-mode
check -> Wigner RTA (isotopes, boundary mfp 1e6 µm, 300 K) on the file's q-mesh -> SRD/SRE/SRME
against the NAC reference (the one k_SRME's published tables use; noNAC also reported).

Usage:  OMP_NUM_THREADS=1 python benchmarks/kappa_subset_sevennet.py [--materials mp-22862 ...]
        [--q-mesh 9 9 9] [--out /tmp/kappa_subset_sevennet]
Writes one JSON per material (+ an .npz with per-mode arrays) into --out and prints a table.
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
PUBLISHED = {  # ../shared/data/README.md (k_SRME models/*/metrics.txt, NAC reference, 300 K)
    "mp-22862": {"name": "NaCl", "kappa": 5.5090, "srme": 0.3853},
    "mp-10695": {"name": "ZnS", "kappa": 36.7407, "srme": 0.6979},
    "mp-569346": {"name": "CuI", "kappa": 5.4006, "srme": 0.2925},
    "mp-22905": {"name": "LiCl", "kappa": 4.8108, "srme": 0.3760},
}


class Timer:
    def __init__(self):
        self.rows = {}

    def __call__(self, name):
        timer = self

        class _T:
            def __enter__(self):
                self.w, self.c = time.perf_counter(), time.process_time()

            def __exit__(self, *exc):
                timer.rows[name] = {"wall_s": time.perf_counter() - self.w, "cpu_s": time.process_time() - self.c}

        return _T()


def run_material(mat, refs, calc, q_mesh=None):
    from pftflow.kappa import (
        KappaSettings, fc2_supercells, fc3_displacements, fc3_supercells, has_imaginary_modes,
        material_metrics, mesh_frequencies, produce_fc2, produce_fc3, run_conductivity,
    )
    from pftflow.phonons.relax import RelaxSettings, relax_structure

    s = KappaSettings()
    T = Timer()
    out = {"material_id": mat.material_id, "name": mat.name}
    with T("relax"):
        rr = relax_structure(mat.atoms, calc.ase_calculator(), RelaxSettings.ksrme())
    out["relax"] = {"converged": rr.converged, "n_steps": rr.n_steps, "fmax": rr.fmax_final_eV_per_A,
                    "sg_initial": rr.spacegroup_initial, "sg_final": rr.spacegroup_final,
                    "symmetry_preserved": rr.symmetry_preserved, "error": rr.error,
                    "a_A": float(np.linalg.norm(rr.atoms.cell[0]))}
    mesh = list(q_mesh or mat.q_mesh)
    with T("displacements"):
        ph3 = fc3_displacements(rr.atoms, mat.fc2_supercell, mat.fc3_supercell, mat.primitive_matrix,
                                distance_A=s.displacement_A, symprec=s.symprec)
        sc2, sc3 = fc2_supercells(ph3), fc3_supercells(ph3)
    out["n_fc2"], out["n_fc3"] = len(sc2), len(sc3)
    out["n_atoms_fc2"], out["n_atoms_fc3"] = len(sc2[0]), len(sc3[0])
    print(f"{mat.name}: relaxed ({rr.n_steps} steps, sg {rr.spacegroup_initial}->{rr.spacegroup_final}); "
          f"{len(sc2)} fc2 x {len(sc2[0])} atoms, {len(sc3)} fc3 x {len(sc3[0])} atoms", flush=True)
    with T("fc2_forces"):
        f2 = calc.compute(sc2, stress=False).forces_eV_per_A
    with T("fc2_and_phonons"):
        produce_fc2(ph3, f2, s)
        q, freqs = mesh_frequencies(ph3, mesh)
    imag = has_imaginary_modes(freqs, s.acoustic_threshold_THz)
    out["imaginary_modes"] = bool(imag)
    out["min_frequency_THz"] = float(freqs.min())
    failed = "imaginary_modes" if imag else (None if rr.symmetry_preserved else "broken_symmetry")
    if failed is None:
        with T("fc3_forces"):
            f3 = calc.compute(sc3, stress=False).forces_eV_per_A
        with T("fc3"):
            produce_fc3(ph3, f3, s)
        print(f"{mat.name}: fc3 done, conductivity on {mesh} ...", flush=True)
        with T("conductivity"):
            kr = run_conductivity(ph3, mesh, temperatures_K=s.temperatures_K, conductivity=s.conductivity,
                                  is_isotope=s.is_isotope, boundary_mfp_um=s.boundary_mfp_um)
        k = float(kr.kappa_TOT_ave_W_per_mK[0])
        out.update(kappa=k, kappa_P=float(kr.kappa_P_W_per_mK[0, :3].mean()), kappa_C=float(kr.kappa_C_W_per_mK[0, :3].mean()),
                   kappa_tensor=kr.kappa_TOT_W_per_mK[0].tolist(),
                   mode_sum_check=float(np.abs(kr.mode_sum_W_per_mK() - kr.kappa_TOT_W_per_mK).max()))
        mode = kr.mode_kappa_TOT_ave_W_per_mK[0]
        # alternative coherence split (the other band index), to show the sensitivity of SRME to it
        cv = kr.heat_capacity_eV_per_K
        with np.errstate(divide="ignore", invalid="ignore"):
            alt = 2 * ((kr.mode_kappa_C_W_per_mK * cv[:, :, :, None, None]) / (cv[:, :, :, None, None] + cv[:, :, None, :, None])).sum(axis=3)
        alt[np.isnan(alt)] = 0
        mode_alt = (kr.mode_kappa_P_W_per_mK + alt)[0, ..., :3].mean(-1)
        mode_P_only = kr.mode_kappa_P_W_per_mK[0, ..., :3].mean(-1)
        for tag, ref in refs.items():
            r = ref[mat.material_id]
            m = material_metrics(k, mode, r.kappa_at(300), r.mode_kappa_at(300), r.weights,
                                 qpoints_pred=kr.qpoints, qpoints_ref=r.qpoints) if kr.q_mesh == r.q_mesh else {}
            if kr.q_mesh == r.q_mesh:
                m["srme_alt_split"] = material_metrics(k, mode_alt, r.kappa_at(300), r.mode_kappa_at(300), r.weights)["srme"]
                m["srme_P_modes_only"] = material_metrics(k, mode_P_only, r.kappa_at(300), r.mode_kappa_at(300), r.weights)["srme"]
            m["kappa_dft"] = r.kappa_at(300)
            out[f"metrics_{tag}"] = m
        out["_arrays"] = {"mode_kappa_TOT_ave": mode, "mode_alt": mode_alt, "qpoints": kr.qpoints, "weights": kr.weights,
                          "frequencies": kr.frequencies_THz}
    else:
        from pftflow.kappa import failed_metrics
        for tag, ref in refs.items():
            out[f"metrics_{tag}"] = {**failed_metrics(failed), "kappa_dft": ref[mat.material_id].kappa_at(300)}
    out["failed_reason"] = failed
    out["timing"] = T.rows
    out["cpu_s_total"] = sum(v["cpu_s"] for v in T.rows.values())
    out["wall_s_total"] = sum(v["wall_s"] for v in T.rows.values())
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--materials", nargs="*", default=["mp-22862", "mp-22905", "mp-10695", "mp-569346"])
    ap.add_argument("--q-mesh", nargs=3, type=int, default=None)
    ap.add_argument("--model", default="7net-0")
    ap.add_argument("--out", default="/tmp/kappa_subset_sevennet")
    args = ap.parse_args()
    from pftflow.calculators import get_calculator
    from pftflow.kappa import read_kappa_reference, read_kappa_structures

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    mats = {m.material_id: m for m in read_kappa_structures(DATA / "phononDB-PBE-structures_subset.extxyz")}
    refs = {"NAC": read_kappa_reference(DATA, nac=True), "noNAC": read_kappa_reference(DATA, nac=False)}
    calc = get_calculator({"backend": "sevennet", "model": args.model, "device": "cpu"})
    calc.ase_calculator()  # loads the model (and sets up e3nn's legacy torch.load) before provenance()
    env = {"machine": platform.machine(), "cpus": os.cpu_count(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
           "model": calc.provenance()}
    for mid in args.materials:
        res = run_material(mats[mid], refs, calc, args.q_mesh)
        arrays = res.pop("_arrays", None)
        if arrays:
            np.savez_compressed(out_dir / f"{mid}.npz", **arrays)
        res["env"] = env
        res["published"] = PUBLISHED.get(mid)
        (out_dir / f"{mid}.json").write_text(json.dumps(res, indent=1, default=float))
        m = res["metrics_NAC"]
        pub = PUBLISHED.get(mid, {})
        print(f"RESULT {res['name']:5s} kappa={res.get('kappa', float('nan')):.4f} (published {pub.get('kappa')}) "
              f"DFT={m['kappa_dft']:.4f} SRE={m.get('sre')} SRME={m.get('srme')} (published {pub.get('srme')}) "
              f"alt-split SRME={m.get('srme_alt_split')} cpu={res['cpu_s_total']:.0f}s wall={res['wall_s_total']:.0f}s", flush=True)


if __name__ == "__main__":
    main()
