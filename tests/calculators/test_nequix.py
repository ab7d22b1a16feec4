"""Nequix (JAX) backend: equals the nequix package's own ASE calculator; offline errors; shape buckets.

Needs the optional extra (``bash scripts/install_nequix.sh``) and the PFT paper's weights in
``../shared/models/nequix``; those tests skip cleanly without them.  The pure parts (model-file resolution,
bucket ladder) run everywhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

from pftflow.calculators import get_calculator
from pftflow.calculators.nequix import bucket_size, resolve_nequix_model

NEQUIX_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "models" / "nequix"


def nequix_weights(name: str = "nequix-mp-1") -> Path:
    path = NEQUIX_DIR / f"{name}.nqx"
    if not path.is_file():
        pytest.skip(f"Nequix weights {path} absent (../shared/models/nequix next to the repository)")
    return path


# ------------------------------------------------------------------------------ pure
def test_model_name_without_local_file_fails_offline(tmp_path, monkeypatch):
    import pftflow.calculators.nequix as nq

    monkeypatch.setenv("PFTFLOW_NEQUIX_DIR", str(tmp_path))
    monkeypatch.setattr(nq, "NEQUIX_CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(nq, "_REPO_ROOT", tmp_path / "repo")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="never downloads at run time") as exc:
        resolve_nequix_model("nequix-oam-1")
    assert str(tmp_path) in str(exc.value) and "nequix-oam-1.nqx" in str(exc.value)
    with pytest.raises(FileNotFoundError, match="Nequix model file not found: nowhere/x.nqx"):
        resolve_nequix_model("nowhere/x.nqx")
    (tmp_path / "m.pt").write_bytes(b"x")
    with pytest.raises(ValueError, match="expected a JAX '.nqx' file"):
        resolve_nequix_model(str(tmp_path / "m.pt"))
    (tmp_path / "nequix-oam-1.nqx").write_bytes(b"x")  # a file under the name is found, not downloaded
    assert resolve_nequix_model("nequix-oam-1") == tmp_path / "nequix-oam-1.nqx"


def test_bucket_ladder():
    ladder = sorted({bucket_size(n) for n in range(1, 300)})
    assert ladder[:10] == [16, 20, 24, 28, 32, 40, 48, 56, 64, 80]
    for n in range(1, 5000):
        b = bucket_size(n)
        assert b >= n and (n <= 16 or b < 1.25 * n + 1)
    assert bucket_size(17, steps_per_octave=1) == 32


def test_registered_backend_and_bad_batch_size():
    calc = get_calculator({"backend": "nequix", "model": "/x/y.nqx", "name": "nq"})
    assert calc.backend == "nequix" and calc.name == "nq"
    with pytest.raises(ValueError, match="'batch_size' must be >= 1"):
        get_calculator({"backend": "nequix", "batch_size": 0})


def test_supported_species_read_from_the_file_header():
    """89 elements (H-Pu less 84-88) from the .nqx JSON header, without JAX; None without the file."""
    calc = get_calculator({"backend": "nequix", "model": str(nequix_weights("nequix-mp-1"))})
    species = calc.supported_species()
    assert len(species) == 89 and {"Si", "Na", "Cl", "Pu"} <= species and not {"Po", "Rn", "Og"} & species
    assert get_calculator({"backend": "nequix", "model": "/nowhere/m.nqx"}).supported_species() is None


# ------------------------------------------------------------------------------ with JAX + weights
@pytest.fixture(scope="module")
def nequix_calc():
    pytest.importorskip("nequix", reason="nequix extra not installed (bash scripts/install_nequix.sh)", exc_type=ImportError)
    path = nequix_weights("nequix-mp-1")
    from pftflow.calculators.backends import cached_calculator

    # the session's shared instance (tests/phonons/test_hessian.py uses it too): compiled shapes are reused
    return cached_calculator({"backend": "nequix", "model": str(path)})


def _structures():
    """Si and NaCl 2x2x2 supercells (16 atoms) with seeded rattles, NaCl compressed 3 % (stress)."""
    si = bulk("Si", "diamond", a=5.431).repeat(2)
    si.rattle(0.03, seed=1)
    nacl = bulk("NaCl", "rocksalt", a=5.64).repeat(2)
    nacl.set_cell(nacl.cell[:] * 0.97, scale_atoms=True)
    nacl.rattle(0.03, seed=2)
    return [si, nacl]


def test_efs_equal_package_calculator(nequix_calc):
    """E ≤ 1e-6 eV/atom, F ≤ 1e-5 eV/Å, σ ≤ 1e-6 eV/Å³ against nequix's own ASE calculator."""
    structs = _structures()
    res = nequix_calc.compute(structs)
    ase_calc = nequix_calc.ase_calculator()
    for i, a in enumerate(structs):
        b = a.copy()
        b.calc = ase_calc
        assert abs(res.energies_eV[i] - b.get_potential_energy()) / len(a) <= 1e-6
        np.testing.assert_allclose(res.forces_eV_per_A[i], b.get_forces(), rtol=0, atol=1e-5)
        np.testing.assert_allclose(res.stresses_eV_per_A3[i], b.get_stress(voigt=True), rtol=0, atol=1e-6)
        assert np.abs(res.forces_eV_per_A[i]).max() > 0.05  # rattled: real forces, not zeros
    assert np.all(res.stresses_eV_per_A3[1][:3] < -1e-3)  # compressed NaCl pushes outwards (ASE sign)
    # batched: two structures in one padded graph give the same numbers
    batched = get_calculator({"backend": "nequix", "model": nequix_calc.model, "batch_size": 2}).compute(structs)
    np.testing.assert_allclose(batched.energies_eV, res.energies_eV, rtol=0, atol=1e-4)
    for f1, f2 in zip(batched.forces_eV_per_A, res.forces_eV_per_A):
        np.testing.assert_allclose(f1, f2, rtol=0, atol=1e-5)


def test_provenance_and_shape_buckets(nequix_calc, monkeypatch):
    from pftflow.calculators import file_sha256, nequix as nequix_module

    monkeypatch.setattr(nequix_module, "NEQUIX_MAX_COMPILED_SHAPES", 10**6)  # no cache clearing inside this test

    prov = nequix_calc.provenance()
    assert prov["backend"] == "nequix" and prov["sha256"] == file_sha256(nequix_weights("nequix-mp-1"))
    assert prov["version"] and prov["versions"]["jax"] and prov["file"] == "nequix-mp-1.nqx"
    # displaced copies of one supercell share the padded shape: no recompilation
    si = _structures()[0]
    nequix_calc.compute([si])
    n0 = nequix_calc.n_compiles
    moved = [si.copy() for _ in range(3)]
    for k, a in enumerate(moved):
        a.positions[k] += [0.01, 0.0, -0.01]
    nequix_calc.compute(moved)
    assert nequix_calc.n_compiles == n0


def test_compiled_shapes_are_bounded(monkeypatch):
    """Past NEQUIX_MAX_COMPILED_SHAPES compiles the calculator drops its executables (memory mappings: issue 17);
    a shape met again recompiles and gives the same numbers."""
    from pftflow.calculators import nequix as nequix_module

    pytest.importorskip("nequix", reason="nequix extra not installed (bash scripts/install_nequix.sh)", exc_type=ImportError)
    monkeypatch.setattr(nequix_module, "NEQUIX_MAX_COMPILED_SHAPES", 2)
    calc = get_calculator({"backend": "nequix", "model": str(nequix_weights("nequix-mp-1"))})
    si = _structures()[0]
    small = bulk("Si", "diamond", a=5.431)
    first = calc.compute([si]).forces_eV_per_A[0]
    assert calc.n_compiles == 1 and calc._efs_fn is not None
    calc.compute([small])  # second shape: the bound is reached, executables dropped
    assert calc.n_compiles == 2 and calc._efs_fn is None
    again = calc.compute([si]).forces_eV_per_A[0]
    assert calc.n_compiles == 3  # recompiled
    np.testing.assert_allclose(again, first, rtol=0, atol=1e-6)


def test_missing_elements_named(nequix_calc):
    from ase import Atoms

    og = Atoms("Og", cell=[5, 5, 5], pbc=True)
    with pytest.raises(ValueError, match=r"no weights for atomic numbers \[118\]"):
        nequix_calc.compute([og])


def test_edge_chunked_convolutions_equal_the_model(nequix_calc):
    """calculators/nequix_edges.py only reorders the sum over edges: E/F/σ and Hessian rows of a chunked model
    (100 edges per chunk: 8 chunks of the 768 padded edges, the last one padded further) equal the unchunked
    model's to float32 rounding."""
    si = _structures()[0]
    chunked = get_calculator({"backend": "nequix", "model": nequix_calc.model, "edge_chunk": 100})
    graph, _ = chunked._graph([si])
    assert graph.senders.shape[0] == 768  # several chunks, a padded last one
    assert chunked._jax_model(graph) is not nequix_calc._jax_model(graph)  # 16 atoms: the default does not chunk
    a, b = nequix_calc.compute([si]), chunked.compute([si])
    assert abs(a.energies_eV[0] - b.energies_eV[0]) <= 1e-4
    np.testing.assert_allclose(b.forces_eV_per_A[0], a.forces_eV_per_A[0], rtol=0, atol=1e-5)
    np.testing.assert_allclose(b.stresses_eV_per_A3[0], a.stresses_eV_per_A3[0], rtol=0, atol=1e-6)
    assert np.abs(a.forces_eV_per_A[0]).max() > 0.05
    np.testing.assert_allclose(chunked.hessian_rows(si, [3]), nequix_calc.hessian_rows(si, [3]), rtol=0, atol=1e-4)
    assert chunked.provenance()["edge_chunk"] == 100
    with pytest.raises(ValueError, match="'edge_chunk' must be >= 1 edge"):
        get_calculator({"backend": "nequix", "edge_chunk": -1})
