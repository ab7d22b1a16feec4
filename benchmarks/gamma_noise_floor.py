"""Noise floor of the MDR thermal metrics: how much S, F and C_V at 300 K move when the three Γ acoustic
frequencies (zero up to round-off) change, on the MDR mesh and on the small meshes of the tests (issue 17).

For MDR-PBE Si (mp-149, the stored DFT force constants) on the MDR mesh (length 100 -> 32x32x32), on the 8x8x8
mesh of tests/phonons and on the 4x4x4 mesh of the EMT campaign tests, the three Γ acoustic frequencies of
phonopy's mesh are set to +ν (ν = 1e-8 ... 1e-4 THz: round-off is 1e-8 ... 1e-6 THz) and the thermal
properties recomputed with phonopy's ThermalProperties, once with the modes in the sums (phonopy's default,
the MDR-PBE convention) and once without (``exclude_gamma_acoustic``, pftflow's default). Printed: the
change per decade of ν, and the largest change over the range, against the value.

    OMP_NUM_THREADS=1 python benchmarks/gamma_noise_floor.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from phonopy.phonon.thermal_properties import ThermalProperties

from pftflow.materials import read_reference

NUS_THZ = [1e-8, 1e-7, 1e-6, 1e-5, 1e-4]


def thermal_300(phonon, nu: float, exclude: bool) -> np.ndarray:
    mesh = phonon.mesh
    freqs = mesh.frequencies  # phonopy's own array: set the Γ acoustic modes to +ν in place
    g = mesh.gamma_index
    ac = np.argsort(np.abs(freqs[g]))[:3]
    freqs[g, ac] = nu
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the 'entered the sums' warning is the point of this measurement
        tp = ThermalProperties(mesh, exclude_gamma_acoustic=exclude)
        tp.temperatures = [300.0]
        tp.run()
    return np.array([tp.free_energy[0], tp.entropy[0], tp.heat_capacity[0]])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    a = ap.parse_args(argv)
    ref = read_reference(a.data / "mdr" / "mp-149.yaml.bz2")
    ph = ref.to_phonopy()
    print("MDR-PBE Si (mp-149), stored DFT force constants, T = 300 K; F kJ/mol, S and C_V J/K/mol per mole of primitive cells")
    print(f"{'mesh':>10} {'N_q':>6} {'Γ acoustic':>10} {'F':>10} {'S':>10} {'C_V':>10} | {'dF/decade':>10} {'dS/decade':>10} "
          f"{'max |ΔF|':>9} {'max |ΔS|':>9} {'max |ΔC_V|':>10} {'max |ΔS|/S':>10}")
    for mesh in ([32, 32, 32], [8, 8, 8], [4, 4, 4]):
        ph.run_mesh(mesh, is_gamma_center=True, with_eigenvectors=False)
        nq = int(np.sum(ph.mesh.weights))
        for exclude in (False, True):
            vals = np.array([thermal_300(ph, nu, exclude) for nu in NUS_THZ])
            per_decade = np.diff(vals, axis=0).mean(axis=0)
            spread = vals.max(axis=0) - vals.min(axis=0)
            print(f"{'x'.join(map(str, mesh)):>10} {nq:>6} {'excluded' if exclude else 'included':>10} {vals[2, 0]:>10.4f} "
                  f"{vals[2, 1]:>10.4f} {vals[2, 2]:>10.4f} | {per_decade[0]:>10.2e} {per_decade[1]:>10.2e} {spread[0]:>9.2e} "
                  f"{spread[1]:>9.2e} {spread[2]:>10.2e} {spread[1] / abs(vals[2, 1]):>10.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
