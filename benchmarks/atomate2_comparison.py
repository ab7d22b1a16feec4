#!/usr/bin/env python
"""Harmonic phonons with SevenNet-0: atomate2's force-field PhononMaker vs a pftflow campaign.

Same materials, same model, same protocol, one process, one run; prints wall and CPU time per
material and the ratio atomate2 / pftflow, plus ω_max from both so the comparison is fair.

What each side does per material (starting from the unit cell of the reference file):

* atomate2 (``atomate2.forcefields.flows.phonons.PhononMaker``, ``run_locally`` on
  ``MemoryStore``s, docs + the ``data`` additional store atomate2 expects): bulk relaxation (``ForceFieldRelaxMaker``: FIRE + FrechetCellFilter +
  FixSymmetry(1e-5), fmax 1e-3 eV/Å, 500 steps) -> phonopy displacements (0.01 Å, the reference's
  supercell matrix passed explicitly) -> one ``ForceFieldStaticMaker`` job per displacement ->
  ``PhononBSDOSDoc`` (force constants, band structure with 101 points per segment, DOS and
  thermal properties on the kppa-7000 mesh, 0-600 K in 75 K steps).  Switched off: the extra
  static energy job, Born charges, thermal displacements.  Its band-structure / DOS PDF plots
  cannot be switched off and are part of its doc job.
* pftflow (``phonons`` campaign, import mode, one campaign per material on a fresh store, run
  through the code path ``pftflow run`` uses: spec loaded from YAML -> run_campaign -> results
  table): import + analysis of the DFT reference, MLIP relaxation (same protocol), displacements,
  one batch force job, analysis (same mesh numbers as atomate2's DOS mesh, 101 band points per
  segment, same temperatures), comparison with the reference, band plot PNG.  pftflow does the
  reference analysis and the comparison on top of what atomate2 does.

Model loading is counted on both sides: atomate2 builds a calculator in every job; pftflow's
per-process model cache is cleared before each campaign, so each campaign loads the model once
(as a fresh ``pftflow run`` would).  Python imports are done once, untimed, before the first
material.  CPU time is this process's (``time.process_time``: all threads).

    OMP_NUM_THREADS=1 python benchmarks/atomate2_comparison.py [--materials Si NaCl BaTe] [--repeat 1]

Needs ``pip install -e .[bench]`` (atomate2) and ../shared/data.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
# sevenn checkpoints need torch's legacy (non weights-only) load; pftflow sets the same.
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"

#: material -> reference file (relative to the shared data folder)
MATERIALS = {
    "Si": "phonopy/phonopy_params_Si.yaml",
    "NaCl": "phonopy/phonopy_params_NaCl.yaml.xz",
    "BaTe": "atomate2_phonopy/mp-1000/phonopy.yaml.xz",
}

FMAX_EV_PER_A = 1e-3
RELAX_STEPS = 500
DISPLACEMENT_A = 0.01
SYMPREC = 1e-5
KPPA_DOS = 7000  # atomate2's default DOS / thermal mesh density (k-points per reciprocal atom)
BAND_NPOINTS = 101  # atomate2's default points per band segment
TEMPERATURES_K = [float(t) for t in np.arange(0, 601, 75)]  # 0, 75, ..., 600 K on both sides
THZ_TO_K = 47.99243073  # h * 1 THz / k_B in K


def _quiet() -> None:
    warnings.filterwarnings("ignore")
    for name in ("jobflow", "atomate2", "maggma", "matplotlib", "sevenn"):
        logging.getLogger(name).setLevel(logging.ERROR)


# ------------------------------------------------------------------------------------- inputs
def reference_cell(path: Path):
    """Unit cell (phonopy), supercell matrix and primitive cell of a reference phonopy yaml."""
    import phonopy

    ph = phonopy.load(str(path), produce_fc=False, log_level=0)
    return ph.unitcell, np.asarray(ph.supercell_matrix, dtype=int), ph.primitive


def atomate2_dos_mesh(primitive) -> list[int]:
    """The mesh atomate2's PhononBSDOSDoc uses for DOS and thermal properties (kppa 7000 on the
    primitive cell, Γ-centred); pftflow is given the same three integers."""
    from pymatgen.io.phonopy import get_pmg_structure
    from pymatgen.io.vasp import Kpoints

    kp = Kpoints.automatic_density(structure=get_pmg_structure(primitive), kppa=KPPA_DOS, force_gamma=True)
    return [int(x) for x in kp.kpts[0]]


def omega_max_K_from_fc(structure, supercell_matrix, primitive_matrix, force_constants) -> float:
    """ω_max (K) at the supercell-commensurate q-points, the MDR convention pftflow reports
    (phonopy ``get_commensurate_points(supercell_matrix)`` in the primitive basis)."""
    from phonopy import Phonopy
    from phonopy.harmonic.dynmat_to_fc import get_commensurate_points
    from pymatgen.io.phonopy import get_phonopy_structure

    ph = Phonopy(
        get_phonopy_structure(structure),
        supercell_matrix=np.asarray(supercell_matrix),
        primitive_matrix=None if primitive_matrix is None else np.asarray(primitive_matrix, dtype=float),
    )
    ph.force_constants = np.asarray(force_constants, dtype=float)
    ph.run_qpoints(np.array(get_commensurate_points(np.asarray(supercell_matrix, dtype=int))))
    return float(np.max(ph.get_qpoints_dict()["frequencies"]) * THZ_TO_K)


# ------------------------------------------------------------------------------------- atomate2
def import_atomate2():
    try:
        from atomate2.forcefields.flows.phonons import PhononMaker
        from atomate2.forcefields.jobs import (
            ForceFieldRelaxMaker,
            ForceFieldStaticMaker,
        )
    except ImportError as exc:
        sys.exit(f"atomate2 is not installed ({exc}): pip install -e '.[bench]' (atomate2 with its force-field support), then re-run")
    return PhononMaker, ForceFieldRelaxMaker, ForceFieldStaticMaker


def run_atomate2(unitcell, supercell_matrix, workdir: Path) -> dict:
    """atomate2 force-field PhononMaker with SevenNet-0 on a MemoryStore; returns timings + ω_max."""
    from jobflow import JobStore, run_locally
    from maggma.stores import MemoryStore
    from pymatgen.io.phonopy import get_pmg_structure

    PhononMaker, ForceFieldRelaxMaker, ForceFieldStaticMaker = import_atomate2()
    structure = get_pmg_structure(unitcell)
    workdir.mkdir(parents=True, exist_ok=True)
    w0, c0 = time.perf_counter(), time.process_time()
    maker = PhononMaker(
        bulk_relax_maker=ForceFieldRelaxMaker(
            force_field_name="SevenNet",
            relax_cell=True,
            fix_symmetry=True,
            symprec=SYMPREC,
            steps=RELAX_STEPS,
            relax_kwargs={"fmax": FMAX_EV_PER_A},
        ),
        static_energy_maker=None,
        born_maker=None,
        phonon_displacement_maker=ForceFieldStaticMaker(force_field_name="SevenNet"),
        displacement=DISPLACEMENT_A,
        symprec=SYMPREC,
        use_symmetrized_structure=None,
        create_thermal_displacements=False,
        store_force_constants=True,
        generate_frequencies_eigenvectors_kwargs={
            "npoints_band": BAND_NPOINTS,
            "kpoint_density_dos": KPPA_DOS,
            "tmin": 0,
            "tmax": 601,
            "tstep": 75,
        },
    )
    flow = maker.make(structure, supercell_matrix=supercell_matrix.tolist())
    store = JobStore(MemoryStore(), additional_stores={"data": MemoryStore()})  # atomate2 routes trajectories / fc to "data"
    with contextlib.redirect_stdout(io.StringIO()):
        responses = run_locally(flow, store=store, create_folders=True, root_dir=str(workdir), ensure_success=True, raise_immediately=True, log=False)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    doc = responses[flow.output.uuid][1].output
    fc = doc.force_constants.force_constants if hasattr(doc.force_constants, "force_constants") else doc.force_constants
    om = omega_max_K_from_fc(doc.structure, doc.supercell_matrix, doc.primitive_matrix, fc)
    return {"wall_s": wall, "cpu_s": cpu, "omega_max_K": om, "n_jobs": sum(len(r) for r in responses.values())}


# ------------------------------------------------------------------------------------- pftflow
def pftflow_api():
    """(load_spec, run_campaign, load_results) from the public API the CLI uses: the new
    ``pftflow.spec`` / ``pftflow.run`` modules if present, else ``pftflow.campaign``."""
    try:
        from pftflow.run import run_campaign
        from pftflow.spec import load_spec
    except ImportError:
        from pftflow.campaign import CampaignSpec, run_campaign

        load_spec = CampaignSpec.from_yaml
    load_results = None
    for mod in ("pftflow.results", "pftflow.run", "pftflow.campaign"):
        try:
            load_results = importlib.import_module(mod).load_results
            break
        except (ImportError, AttributeError):
            continue
    return load_spec, run_campaign, load_results


def clear_model_cache() -> None:
    """Drop pftflow's per-process model cache so each campaign loads the model (fresh-process cost)."""
    for mod in ("pftflow.calculators.backends", "pftflow.calculators"):
        try:
            cache = getattr(importlib.import_module(mod), "_CACHE", None)
        except ImportError:
            continue
        if isinstance(cache, dict):
            cache.clear()


def pftflow_spec(name: str, ref_file: Path, store_dir: Path, mesh: list[int]) -> dict:
    return {
        "name": name,
        "kind": "phonons",
        "store": {"path": str(store_dir)},
        "materials": [{"reference_file": str(ref_file), "id": name}],
        "reference": {"mode": "import"},
        "models": [{"backend": "sevennet", "model": "7net-0", "name": "SevenNet-0"}],
        "settings": {
            "phonons": {
                "displacement_A": DISPLACEMENT_A,
                "symprec": SYMPREC,
                "mesh": mesh,
                "band_npoints": BAND_NPOINTS,
                "temperatures_K": TEMPERATURES_K,
            },
            "relax": {"fmax_eV_per_A": FMAX_EV_PER_A, "steps": RELAX_STEPS},
        },
    }


def run_pftflow(name: str, ref_file: Path, mesh: list[int], workdir: Path, clear_cache: bool = True) -> dict:
    """One pftflow phonons campaign on a fresh store, as ``pftflow run spec.yaml`` runs it."""
    import yaml

    load_spec, run_campaign, load_results = pftflow_api()
    workdir.mkdir(parents=True, exist_ok=True)
    spec_path = workdir / f"{name}.yaml"
    spec_path.write_text(yaml.safe_dump(pftflow_spec(name, ref_file, workdir / "campaign", mesh), sort_keys=False))
    if clear_cache:
        clear_model_cache()
    old_cwd = os.getcwd()
    os.chdir(workdir)  # run_campaign writes campaigns/.last_campaign relative to the cwd
    try:
        w0, c0 = time.perf_counter(), time.process_time()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            spec = load_spec(str(spec_path))
            try:
                summary = run_campaign(spec, progress=False)
            except TypeError:
                summary = run_campaign(spec)
            results = load_results(spec) if load_results else None
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    finally:
        os.chdir(old_cwd)
    if hasattr(summary, "as_dict"):  # pftflow.run.RunSummary
        summary = summary.as_dict()
    failed = summary.get("failed_jobs")
    if failed:
        raise RuntimeError(f"pftflow campaign {name}: {failed} failed job(s): {summary.get('failures') or summary.get('job_failures')}")
    rows = (results or {}).get("rows") or [{}]
    row = rows[0] if isinstance(rows[0], dict) else getattr(rows[0], "__dict__", {})
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "omega_max_K": row.get("omega_max_K", float("nan")),
        "omega_max_K_ref": row.get("omega_max_K_ref", float("nan")),
        "n_jobs": summary.get("jobs_run"),
    }


# ------------------------------------------------------------------------------------- main
def warm_up() -> None:
    """Import everything both sides use (untimed), so neither pays Python imports in its timing."""
    import_atomate2()
    pftflow_api()
    import phonopy  # noqa: F401
    import sevenn.calculator  # noqa: F401
    from pymatgen.io.phonopy import get_pmg_structure  # noqa: F401

    try:
        from pftflow.cli import _quiet_library_warnings

        _quiet_library_warnings()
    except ImportError:
        pass


def fmt_row(cols, widths):
    return "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(cols, widths)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--materials", nargs="+", default=list(MATERIALS), choices=list(MATERIALS), help="materials (default: all)")
    p.add_argument("--repeat", type=int, default=1, help="runs per tool and material; the fastest wall time is reported (default 1)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"shared data folder (default {DEFAULT_DATA})")
    p.add_argument(
        "--campaign",
        action="store_true",
        help="pftflow loads the model once for the whole material set, as one `pftflow run` over the set does "
        "(default: every material is a separate campaign that loads the model again, like a fresh process); "
        "atomate2 builds its calculator in every job either way",
    )
    args = p.parse_args(argv)
    if not args.data.is_dir():
        sys.exit(f"{args.data}: shared data folder not found; pass --data /path/to/shared/data")
    _quiet()
    import pftflow

    print(f"pftflow from {Path(pftflow.__file__).parent}")
    print(f"load average before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}, {os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}")
    t0 = time.perf_counter()
    warm_up()
    _quiet()
    print(f"imports (untimed warm-up): {time.perf_counter() - t0:.1f} s")

    rows = []
    with tempfile.TemporaryDirectory(prefix="pftflow_a2cmp_") as tmp:
        tmp = Path(tmp)
        for name in args.materials:
            ref = args.data / MATERIALS[name]
            if not ref.is_file():
                sys.exit(f"{ref}: reference file for {name} not found under --data {args.data}")
            unitcell, smat, prim = reference_cell(ref)
            mesh = atomate2_dos_mesh(prim)
            runs = {"atomate2": [], "pftflow": []}
            for r in range(args.repeat):
                order = ["atomate2", "pftflow"] if r % 2 == 0 else ["pftflow", "atomate2"]
                for tool in order:
                    wd = tmp / f"{name}_{tool}_{r}"
                    if tool == "atomate2":
                        res = run_atomate2(unitcell, smat, wd)
                    else:
                        res = run_pftflow(name, ref, mesh, wd, clear_cache=not args.campaign or not rows and r == 0)
                    runs[tool].append(res)
                    print(f"  {name:5s} {tool:8s} run {r + 1}: wall {res['wall_s']:7.1f} s  CPU {res['cpu_s']:7.1f} s  jobs {res['n_jobs']}  ω_max {res['omega_max_K']:.1f} K   (load {os.getloadavg()[0]:.2f})", flush=True)
            best = {t: min(v, key=lambda x: x["wall_s"]) for t, v in runs.items()}
            rows.append((name, len(unitcell), round(abs(np.linalg.det(smat))) * len(unitcell), mesh, best))

    print()
    print("mode:", "campaign (pftflow model loaded once for the set)" if args.campaign else "one campaign per material (pftflow model reloaded each time)")
    print(f"SevenNet-0 (7net-0), relax fmax {FMAX_EV_PER_A:g} eV/Å, displacement {DISPLACEMENT_A} Å, symprec {SYMPREC:g}; fastest of {args.repeat} run(s); load average after: {os.getloadavg()[0]:.2f}")
    print()
    print("ω_max (K, commensurate q-points, MDR convention): both tools' force constants vs the DFT reference")
    w = [8, 12, 12, 12, 14]
    print(fmt_row(["material", "atomate2", "pftflow", "DFT ref", "a2 - pftflow"], w))
    for name, _, _, _, best in rows:
        a, b = best["atomate2"]["omega_max_K"], best["pftflow"]["omega_max_K"]
        print(fmt_row([name, f"{a:.1f}", f"{b:.1f}", f"{best['pftflow']['omega_max_K_ref']:.1f}", f"{a - b:+.2f}"], w))
    print()
    w = [8, 6, 9, 12, 12, 12, 12, 11, 10]
    print(fmt_row(["material", "atoms", "sc atoms", "a2 wall s", "a2 CPU s", "pft wall s", "pft CPU s", "wall ratio", "CPU ratio"], w))
    tot = np.zeros(4)
    for name, nat, nsc, mesh, best in rows:
        a, b = best["atomate2"], best["pftflow"]
        tot += [a["wall_s"], a["cpu_s"], b["wall_s"], b["cpu_s"]]
        print(fmt_row([name, nat, nsc, f"{a['wall_s']:.1f}", f"{a['cpu_s']:.1f}", f"{b['wall_s']:.1f}", f"{b['cpu_s']:.1f}", f"{a['wall_s'] / b['wall_s']:.2f}", f"{a['cpu_s'] / b['cpu_s']:.2f}"], w))
    print(fmt_row(["total", "", "", f"{tot[0]:.1f}", f"{tot[1]:.1f}", f"{tot[2]:.1f}", f"{tot[3]:.1f}", f"{tot[0] / tot[2]:.2f}", f"{tot[1] / tot[3]:.2f}"], w))
    print(f"\ntotal ratio atomate2 / pftflow: wall {tot[0] / tot[2]:.2f}x, CPU {tot[1] / tot[3]:.2f}x (>1: pftflow faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
