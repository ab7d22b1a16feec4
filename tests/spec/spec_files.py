"""Small, valid input files for spec tests (the spec reads reference files, κ structures and
references, and extxyz sets when it is loaded), and broken variants of them.

Reference files are real phonopy yamls written by phonopy itself (``Phonopy.save``), with seeded
random forces (0.01 eV/Å scale): the spec checks readability and finiteness, not the physics.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
from pathlib import Path

import numpy as np

SI_CELL = [[0.0, 2.7155, 2.7155], [2.7155, 0.0, 2.7155], [2.7155, 2.7155, 0.0]]
NACL_CELL = [[0.0, 2.82, 2.82], [2.82, 0.0, 2.82], [2.82, 2.82, 0.0]]
CU_CELL = [[0.0, 1.805, 1.805], [1.805, 0.0, 1.805], [1.805, 1.805, 0.0]]
_COMPRESS = {".bz2": bz2.compress, ".xz": lzma.compress, ".gz": gzip.compress}


def _phonopy(symbols, cell, frac, supercell=(2, 2, 2), masses=None):
    import phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    unitcell = PhonopyAtoms(symbols=list(symbols), cell=cell, scaled_positions=frac, masses=None if masses is None else list(masses))
    ph = phonopy.Phonopy(unitcell, supercell_matrix=np.diag(supercell))
    ph.generate_displacements(distance=0.01)
    return ph


def _forces(ph, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(scale=0.01, size=(len(ph.supercells_with_displacements), len(ph.supercell), 3))


def write_reference(path, symbols=("Si", "Si"), cell=SI_CELL, frac=((0, 0, 0), (0.25, 0.25, 0.25)), *, supercell=(2, 2, 2),
                    bad_force: float | None = None, masses=None, seed: int = 0) -> Path:
    """A phonopy_params-style yaml with displacements and forces at ``path``; compressed by the
    suffix (.bz2 / .xz / .gz).  ``bad_force`` (e.g. NaN): the first force of the first displacement."""
    path = Path(path)
    ph = _phonopy(symbols, cell, frac, supercell, masses)
    forces = _forces(ph, seed)
    if bad_force is not None:
        forces[0, 0, 0] = bad_force
    ph.forces = forces
    plain = path.with_name(path.name + ".plain.yaml")
    ph.save(plain)
    data = plain.read_bytes()
    plain.unlink()
    path.write_bytes(_COMPRESS.get(path.suffix, lambda b: b)(data))
    return path


def write_disp_and_force_sets(folder, name="SnO2", symbols=("Sn", "O"), cell=NACL_CELL, frac=((0, 0, 0), (0.5, 0.5, 0.5))) -> tuple[Path, Path]:
    """``phonopy_disp_<name>.yaml`` (no forces) and ``FORCE_SETS_<name>`` next to it."""
    from phonopy.file_IO import write_FORCE_SETS

    folder = Path(folder)
    ph = _phonopy(symbols, cell, frac)
    disp = folder / f"phonopy_disp_{name}.yaml"
    ph.save(disp, settings={"force_sets": False})
    ph.forces = _forces(ph)
    fs = folder / f"FORCE_SETS_{name}"
    write_FORCE_SETS(ph.dataset, fs)
    return disp, fs


def write_kappa_files(folder, *, symbols=("Cu",), cell=CU_CELL, frac=((0, 0, 0),), mp_id="mp-30", name="Cu",
                      fc2_supercell=(3, 3, 3), fc3_supercell=(2, 2, 2)) -> tuple[Path, Path]:
    """A one-frame κ structures extxyz and a matching column-oriented κ reference JSON."""
    import pandas as pd
    from ase import Atoms
    from ase.io import write

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atoms = Atoms(list(symbols), cell=cell, scaled_positions=frac, pbc=True)
    atoms.info.update({"mp_id": mp_id, "name": name, "fc2_supercell": list(fc2_supercell), "fc3_supercell": list(fc3_supercell), "q_mesh": [4, 4, 4], "symm.no": 225})
    structures = folder / "structures.extxyz"
    write(structures, [atoms], format="extxyz")
    reference = folder / "kappas_NAC.json"
    nb = 3 * len(symbols)
    pd.DataFrame({"mp_id": [mp_id], "name": [name], "kappa_TOT_ave": [[400.0]], "mode_kappa_TOT_ave": [np.full((1, 1, nb), 400.0 / nb).tolist()],
                  "weights": [[1]], "qpoints": [[[0.0, 0.0, 0.0]]], "temperatures": [[300.0]], "q_mesh": [[4, 4, 4]]}).to_json(reference)
    return structures, reference


def write_extxyz(path, n: int = 2) -> Path:
    """``n`` labelled Cu frames (REF_energy, REF_forces, REF_stress)."""
    from ase.build import bulk
    from ase.io import write

    rng = np.random.default_rng(1)
    frames = []
    for _ in range(n):
        a = bulk("Cu", "fcc", a=3.61, cubic=True)
        a.positions += rng.normal(scale=0.02, size=a.positions.shape)
        a.info.update(REF_energy=-3.5 * len(a), REF_stress=[0.0] * 6)
        a.arrays["REF_forces"] = rng.normal(scale=0.1, size=a.positions.shape)
        frames.append(a)
    write(path, frames, format="extxyz")
    return Path(path)


def truncated_copy(src, dst, fraction: float = 0.5) -> Path:
    """The first ``fraction`` of the bytes of ``src`` (a damaged download)."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: max(16, int(len(data) * fraction))])
    return Path(dst)
