"""Fixtures shared by all tests.

``shared_data``: the read-only reference DFT data in ``../shared/data`` (next to the repository
root, see its README.md).  Tests that need it skip with a reason when it is absent (fresh clone);
they are also marked ``shared_data`` so ``pytest -m "not shared_data"`` deselects them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.shared_data)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ``../shared/data``; skips the test when the folder is missing."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"../shared/data not found: reference DFT data absent (fresh clone); expected at {SHARED_DATA} "
            "(see the README of the shared data for what it holds)"
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def load_reference(shared_data):
    """``load_reference("mdr/mp-149.yaml.bz2")`` -> PhononReference, read once per session.

    The returned object is shared between tests: do not modify it (``copy.copy`` it first).
    """
    from pftflow.materials import read_reference

    cache: dict[str, object] = {}

    def _load(rel: str):
        if rel not in cache:
            path = shared_data / rel
            if not path.exists():
                pytest.skip(f"{rel} not found under {shared_data}")
            cache[rel] = read_reference(path)
        return cache[rel]

    return _load


@pytest.fixture(scope="session")
def al_emt_phonopy():
    """Factory ``make(scale=1.0)`` -> phonopy object of fcc Al (a = 4.05 Å, ASE's EMT potential,
    2x2x2 supercell of the primitive cell) with its force constants multiplied by ``scale``.

    A real harmonic crystal that needs no reference data and no MLIP (one displacement, < 1 s);
    scaling the force constants by s scales every frequency by sqrt(s) exactly.
    """
    import numpy as np
    from ase.build import bulk
    from ase.calculators.emt import EMT

    from pftflow.materials.builders import build_phonopy as make_phonopy
    from pftflow.phonons.harmonic import produce_force_constants
    from pftflow.sampling import fc2_displacements as make_displacements

    al = bulk("Al", "fcc", a=4.05)
    smat = 2 * np.eye(3, dtype=int)
    ph, supercells = make_displacements(al, smat)
    forces = []
    for sc in supercells:
        sc.calc = EMT()
        forces.append(sc.get_forces())
    fc = produce_force_constants(ph, forces).copy()

    def make(scale: float = 1.0):
        p = make_phonopy(al, smat)
        p.force_constants = scale * fc
        return p

    return make
