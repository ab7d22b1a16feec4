"""Force backends: batch results equal the calculator's own ASE results; clear offline errors."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from pftflow.calculators import get_calculator, resolve_mace_model
from pftflow.calculators.backends import cached_calculator


def _structures():
    si = bulk("Si", "diamond", a=5.43).repeat((2, 1, 1))
    si.positions[0] += [0.03, -0.02, 0.01]
    nacl = bulk("NaCl", "rocksalt", a=5.64)
    nacl.positions[1] += [0.02, 0.0, 0.05]
    nacl.set_cell(nacl.cell[:] * 0.97, scale_atoms=True)  # 3 % compression
    return [si, nacl]


@pytest.mark.parametrize("backend", ["sevennet", "chgnet"])
def test_batch_equals_ase_calculator(backend):
    """One batch call gives the same E (eV), F (eV/Å) and σ (eV/Å³, ASE sign) as the package's
    own ASE calculator on each structure (CHGNet's batch path converts GPa; a sign or unit slip
    fails here)."""
    calc = get_calculator(backend)
    structs = _structures()
    res = calc.compute(structs)
    ase_calc = calc.ase_calculator()
    for i, a in enumerate(structs):
        b = a.copy()
        b.calc = ase_calc
        assert res.energies_eV[i] == pytest.approx(b.get_potential_energy(), abs=1e-4)
        np.testing.assert_allclose(res.forces_eV_per_A[i], b.get_forces(), atol=1e-4)
        np.testing.assert_allclose(res.stresses_eV_per_A3[i], b.get_stress(voigt=True), atol=1e-5)
    # compressed NaCl pushes outwards: negative diagonal stress in ASE's convention
    assert np.all(res.stresses_eV_per_A3[1][:3] < -1e-3)
    prov = calc.provenance()
    assert prov["backend"] == backend and len(prov["sha256"]) == 64 and prov["version"]


def test_ase_backend_import_path_and_errors():
    calc = get_calculator({"backend": "ase", "import_path": "ase.calculators.emt:EMT", "name": "EMT"})
    cu = bulk("Cu", "fcc", a=3.6)
    r = calc.compute([cu, cu.repeat(2)])
    # EMT energy is extensive: 8x the cell gives 8x the energy
    assert r.energies_eV[1] == pytest.approx(8 * r.energies_eV[0], rel=1e-10)
    assert calc.provenance()["import_path"] == "ase.calculators.emt:EMT"
    with pytest.raises(ImportError, match="cannot import module 'no_such_pkg.mod' for calculator"):
        get_calculator({"backend": "ase", "import_path": "no_such_pkg.mod:Calc"}).ase_calculator()
    with pytest.raises(ImportError, match="has no attribute 'Nope'"):
        get_calculator({"backend": "ase", "import_path": "ase.calculators.emt:Nope"}).ase_calculator()
    with pytest.raises(ValueError, match="unknown calculator backend 'vasp-magic'"):
        get_calculator({"backend": "vasp-magic"})


def test_mace_foundation_name_fails_offline_with_instructions(tmp_path, monkeypatch):
    import pftflow.calculators.model_files as be

    monkeypatch.setattr(be, "MACE_CACHE_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="never downloads at run time") as exc:
        resolve_mace_model("medium-mpa-0")
    assert str(tmp_path) in str(exc.value)
    with pytest.raises(FileNotFoundError, match="MACE model file not found: nowhere/x.model"):
        resolve_mace_model("nowhere/x.model")
    # a file placed in the cache under the foundation name is found
    (tmp_path / "small.model").write_bytes(b"x")
    assert resolve_mace_model("small") == tmp_path / "small.model"


def test_cached_calculator_reuses_instances():
    spec = {"backend": "ase", "import_path": "ase.calculators.emt:EMT"}
    assert cached_calculator(spec) is cached_calculator(dict(spec))
