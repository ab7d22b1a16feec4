"""Fixtures shared by all tests.

``shared_data``: the read-only reference DFT data in ``../shared/data`` (next to the repository
root, see its README.md).  Tests that need it skip with a reason when it is absent (fresh clone);
they are also marked ``shared_data`` so ``pytest -m "not shared_data"`` deselects them.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
# the record of checked reference files (pftflow.materials.readers) goes to a fresh folder, not ~/.cache
os.environ["PFTFLOW_CACHE_DIR"] = tempfile.mkdtemp(prefix="pftflow-test-cache-")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.shared_data)


@pytest.fixture
def pinned(request):
    """``pinned("S_300K Cu", value)`` returns ``value`` and, when ``PFTFLOW_PINNED_OUT`` names a file, appends
    ``{test, quantity, value, blas}`` to it as one JSON line. ``benchmarks/cross_kernel.py`` runs the tests marked
    ``blas_sensitive`` once per OpenBLAS kernel with it set and prints the spread of every pinned quantity: the
    number a cross-machine tolerance is taken from."""
    out = os.environ.get("PFTFLOW_PINNED_OUT")

    def _pin(quantity: str, value):
        if out:
            from threadpoolctl import threadpool_info

            kernels = sorted({i.get("architecture") or "?" for i in threadpool_info() if i.get("internal_api") == "openblas"})
            with open(out, "a") as fh:
                fh.write(json.dumps({"test": request.node.nodeid, "quantity": quantity, "value": float(value), "blas": kernels}) + "\n")
        return value

    return _pin


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
    """Factory ``make(scale=1.0, strain=(1, 1, 1))`` -> phonopy object of fcc Al (a = 4.05 Å, ASE's EMT
    potential, 2x2x2 supercell of the primitive cell) with its force constants multiplied by ``scale``;
    ``strain`` scales the Cartesian axes of the cell (e.g. (1, 1, 1.02): tetragonal, lower symmetry).

    A real harmonic crystal that needs no reference data and no MLIP (one displacement, < 1 s);
    scaling the force constants by s scales every frequency by sqrt(s) exactly.
    """
    import numpy as np
    from ase.build import bulk
    from ase.calculators.emt import EMT

    from pftflow.materials.builders import build_phonopy as make_phonopy
    from pftflow.phonons.harmonic import produce_force_constants
    from pftflow.sampling import fc2_displacements as make_displacements

    smat = 2 * np.eye(3, dtype=int)
    cache: dict = {}

    def make(scale: float = 1.0, strain=(1.0, 1.0, 1.0)):
        strain = tuple(float(x) for x in strain)
        if strain not in cache:
            al = bulk("Al", "fcc", a=4.05)
            al.set_cell(al.cell[:] @ np.diag(strain), scale_atoms=True)
            ph, supercells = make_displacements(al, smat)
            forces = []
            for sc in supercells:
                sc.calc = EMT()
                forces.append(sc.get_forces())
            cache[strain] = (al, produce_force_constants(ph, forces).copy())
        al, fc = cache[strain]
        p = make_phonopy(al, smat)
        p.force_constants = scale * fc
        return p

    return make


#: fcc cells of the EMT campaign: lattice constant a and half of it (the primitive cell's entries), in Å
_EMT_FCC = {"Cu": ("3.61", "1.805"), "Al": ("4.05", "2.025")}
_EMT_IMPORT = "ase.calculators.emt:EMT"


def _write_emt_spec(
    folder: Path,
    *,
    file: str = "spec.yaml",
    name: str = "emt-test",
    store: str | Path | None = None,
    store_uri: str | None = None,
    materials: tuple[str, ...] = ("Cu", "Al"),
    models: tuple[str | tuple[str, str], ...] = ("EMT-same",),
    relax_models: bool = False,
    relax: str | None = None,
    band_npoints: int = 11,
) -> Path:
    lines = [f"name: {name}", "kind: phonons"]
    lines.append(f'store: {{uri: "{store_uri}"}}' if store_uri else f"store: {{path: {folder / 'camp' if store is None else store}}}")
    lines.append("materials:")
    for el in materials:
        a, h = _EMT_FCC[el]
        lines += [
            f"  - id: {el}",
            f'    source: "fcc {el} a = {a} Å"',
            "    structure:",
            f"      cell_A: [[0.0, {h}, {h}], [{h}, 0.0, {h}], [{h}, {h}, 0.0]]",
            f"      species: [{el}]",
            "      frac_coords: [[0, 0, 0]]",
            "    supercell_matrix: [3, 3, 3]",
        ]
    lines += ["reference:", "  mode: compute", f'  calculator: {{backend: ase, name: EMT-ref, import_path: "{_EMT_IMPORT}"}}']
    if relax:
        lines.append(f"  relax: {relax}")
    lines.append("models:")
    for m in models:
        model, import_path = (m, _EMT_IMPORT) if isinstance(m, str) else m
        lines.append(f'  - {{backend: ase, name: {model}, import_path: "{import_path}"}}')
    lines += ["settings:", f"  phonons: {{mesh: [8, 8, 8], band_npoints: {band_npoints}}}", f"  relax_models: {str(relax_models).lower()}"]
    if relax:
        lines.append(f"  relax: {relax}")
    path = folder / file
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def emt_spec():
    """Writer ``emt_spec(folder, **options) -> path`` of a cheap harmonic campaign spec (``folder/file``,
    default ``spec.yaml``) in which ASE's EMT stands in for the DFT reference (``EMT-ref``, computed)
    and for the models: fcc Cu (a = 3.61 Å) and Al (a = 4.05 Å), one-atom primitive cells,
    3x3x3 supercells, an 8x8x8 mesh.  No shared data, no MLIP; seconds per material.

    Options: ``name`` (campaign, default ``emt-test``); ``store`` (store folder, default the absolute
    ``folder/camp``; a relative one is written as is) or ``store_uri`` (a ``store: {uri: ...}`` block
    instead); ``materials`` (subset of ``("Cu", "Al")``); ``models``: each a name (an EMT model,
    identical to the reference) or a ``(name, import_path)`` pair (e.g. a calculator that raises);
    ``relax_models``; ``relax``: a YAML flow mapping set as both ``reference.relax`` and
    ``settings.relax``; ``band_npoints`` (default 11).
    """
    return _write_emt_spec
