"""Readers of reference phonon data (phonopy, MDR-PBE, atomate2) on real DFT files from ../shared/data.

What is checked here: each reader loads its files with the right cell, supercell, displacement
dataset, DFT forces, NAC, stored thermal data and energy; physically, the force on each displaced
atom points against its displacement (a restoring force) and the forces of each supercell sum to
~0 (DFT drift ≤ 2e-7 eV/Å measured); bad files raise ReferenceFormatError naming the file;
PhononReference survives a JSON round trip; the supercell Hessian is symmetric (3N, 3N).
The numerical equivalence with phonopy itself is in tests/phonons/test_harmonic.py.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from pftflow.materials import PhononReference, ReferenceFormatError, read_mdr, read_phonopy, read_reference
from pftflow.materials.readers import detect_format

# rel path: (format, material_id, formula, supercell diagonal, n_displacements, n_supercell, has fc, has thermal)
FILES = {
    "phonopy/phonopy_params_NaCl.yaml.xz": ("phonopy", "NaCl", "Cl4Na4", (2, 2, 2), 2, 64, False, False),
    "phonopy/phonopy_params_Si.yaml": ("phonopy", "Si", "Si2", (2, 2, 2), 1, 16, False, False),
    "phonopy/phonopy_disp_SnO2.yaml": ("phonopy", "SnO2", "O4Sn2", (2, 2, 3), 5, 72, False, False),
    "mdr/mp-149.yaml.bz2": ("mdr", "mp-149", "Si8", (2, 2, 2), 1, 64, True, True),
    "mdr/mp-1000.yaml.bz2": ("mdr", "mp-1000", "Ba4Te4", (2, 2, 2), 2, 64, True, True),
    "atomate2_phonopy/mp-1000/phonopy.yaml.xz": ("atomate2", "mp-1000", "Ba4Te4", (3, 3, 3), 2, 216, False, False),
    "atomate2_phonopy/mp-2534/phonopy.yaml.xz": ("atomate2", "mp-2534", "As4Ga4", (4, 4, 4), 2, 512, False, False),
    "atomate2_phonopy/mp-2231/phonopy.yaml.xz": ("atomate2", "mp-2231", "S4Sn4", (5, 5, 2), 8, 400, False, False),
}


@pytest.mark.parametrize("rel", list(FILES))
def test_reader_loads_file(rel, shared_data, load_reference):
    fmt, mid, formula, sc_diag, n_disp, n_sc, has_fc, has_thermal = FILES[rel]
    assert detect_format(shared_data / rel) == fmt
    ref = load_reference(rel)
    assert ref.material_id == mid
    assert ref.provenance["format"] == fmt
    assert len(ref.provenance["sha256"]) == 64
    assert ref.unitcell.get_chemical_formula() == formula
    assert np.all(ref.unitcell.get_masses() > 1.0)
    np.testing.assert_array_equal(ref.supercell_matrix, np.diag(sc_diag))
    fa = ref.dataset["first_atoms"]
    assert ref.dataset["natom"] == n_sc
    assert len(fa) == n_disp
    for d in fa:
        assert d["forces"].shape == (n_sc, 3)
        assert np.linalg.norm(d["displacement"]) == pytest.approx(0.01, rel=1e-9)  # 0.01 Å in all these sets
        # restoring force on the displaced atom, net force ~0 (DFT drift, measured <= 2e-7 eV/Å)
        assert np.dot(d["forces"][d["number"]], d["displacement"]) < 0
        assert np.abs(d["forces"].sum(axis=0)).max() < 1e-6
    assert (ref.force_constants is not None) == has_fc
    if has_fc:
        assert ref.force_constants.shape == (n_sc, n_sc, 3, 3)
    assert (ref.thermal is not None) == has_thermal
    if has_thermal:
        np.testing.assert_array_equal(ref.thermal.temperatures_K, [0.0, 75.0, 150.0, 300.0, 600.0])
        assert ref.commensurate_frequencies_THz.shape == (8, 3 * len(ref.to_phonopy(produce_fc=False).primitive))


def test_phonopy_nacl_has_born_charges(load_reference):
    ref = load_reference("phonopy/phonopy_params_NaCl.yaml.xz")
    nac = ref.nac_params
    assert nac["born"].shape == (2, 3, 3)  # one tensor per primitive-cell atom
    assert nac["dielectric"].shape == (3, 3)
    # Na and Cl charges are equal and opposite (charge neutrality), isotropic in rocksalt
    np.testing.assert_allclose(nac["born"][0] + nac["born"][1], 0.0, atol=1e-6)
    assert nac["born"][0, 0, 0] > 1.0 and nac["dielectric"][0, 0] > 2.0
    assert ref.to_phonopy(produce_fc=False).nac_params is not None


def test_sno2_force_sets_found_next_to_disp_yaml(load_reference, shared_data):
    ref = load_reference("phonopy/phonopy_disp_SnO2.yaml")
    assert Path(ref.provenance["force_sets"]) == (shared_data / "phonopy" / "FORCE_SETS_SnO2").resolve()
    explicit = read_phonopy(
        shared_data / "phonopy" / "phonopy_disp_SnO2.yaml", force_sets=shared_data / "phonopy" / "FORCE_SETS_SnO2"
    )
    for a, b in zip(explicit.dataset["first_atoms"], ref.dataset["first_atoms"]):
        np.testing.assert_array_equal(a["forces"], b["forces"])


def test_mdr_energies(load_reference):
    assert load_reference("mdr/mp-149.yaml.bz2").energy_eV == pytest.approx(-43.36303155, abs=1e-10)
    e = load_reference("mdr/mp-1000.yaml.bz2").energy_eV  # stored as .nan in the file: kept, not an error
    assert isinstance(e, float) and math.isnan(e)


# ------------------------------------------------------------------------------------ bad files
MDR_MINI = {
    "unit_cell": {
        "lattice": [[0.0, 2.7, 2.7], [2.7, 0.0, 2.7], [2.7, 2.7, 0.0]],
        "points": [
            {"symbol": "Si", "coordinates": [0.0, 0.0, 0.0], "mass": 28.0855},
            {"symbol": "Si", "coordinates": [0.25, 0.25, 0.25], "mass": 28.0855},
        ],
    },
    "supercell_matrix": [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
    "displacements": [{"atom": 1, "displacement": [0.01, 0.0, 0.0], "forces": [[-0.1, 0.0, 0.0], [0.1, 0.0, 0.0]]}],
    "temperatures": [0.0, 300.0],
    "free_e": [1.0, 0.5],
    "entropy": [0.0, 10.0],
    "heat_capacity": [0.0, 20.0],
}


def _write_mdr(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_minimal_mdr_file_reads(tmp_path):
    """The hand-written file the bad-file tests below corrupt is itself valid."""
    ref = read_mdr(_write_mdr(tmp_path / "mp-0.yaml", MDR_MINI))
    assert ref.material_id == "mp-0" and len(ref.unitcell) == 2
    assert ref.thermal.at(300.0)["entropy_J_per_K_mol"] == 10.0
    assert math.isnan(ref.energy_eV)


def _raises_naming(path: Path, *match: str, reader=read_reference):
    with pytest.raises(ReferenceFormatError) as exc:
        reader(path)
    msg = str(exc.value)
    assert str(path) in msg, msg
    for m in match:
        assert m in msg, msg
    return msg


def test_malformed_yaml(tmp_path):
    p = tmp_path / "mp-1.yaml"
    p.write_text("free_e: [1.0, 2.0\nunit_cell: {lattice: [[1, 0, 0]]\n  - broken: : :\n")
    _raises_naming(p, "YAML", reader=read_mdr)


def test_yaml_not_a_mapping(tmp_path):
    p = tmp_path / "mp-2.yaml"
    p.write_text("- 1\n- 2\n")
    _raises_naming(p, "mapping", reader=read_mdr)


def test_missing_key(tmp_path):
    d = copy.deepcopy(MDR_MINI)
    del d["supercell_matrix"]
    _raises_naming(_write_mdr(tmp_path / "mp-3.yaml", d), "supercell_matrix")


def test_wrong_force_shape(tmp_path):
    d = copy.deepcopy(MDR_MINI)
    d["displacements"][0]["forces"] = [[0.1, 0.0, 0.0]] * 3  # 3 atoms, supercell has 2
    _raises_naming(_write_mdr(tmp_path / "mp-4.yaml", d), "displacement 1", "(3, 3)", "(2, 3)")


def test_wrong_force_constant_shape(tmp_path):
    d = copy.deepcopy(MDR_MINI)
    d["force_constants"] = {"elements": np.zeros((3, 2, 3, 3)).tolist()}
    _raises_naming(_write_mdr(tmp_path / "mp-5.yaml", d), "force_constants", "(2, 2, 3, 3)")


def test_malformed_cell_block(tmp_path):
    d = copy.deepcopy(MDR_MINI)
    del d["unit_cell"]["points"][0]["coordinates"]
    _raises_naming(_write_mdr(tmp_path / "mp-6.yaml", d), "unit_cell")


def test_no_forces_no_fc(tmp_path):
    d = copy.deepcopy(MDR_MINI)
    del d["displacements"][0]["forces"]
    _raises_naming(_write_mdr(tmp_path / "mp-7.yaml", d), "neither force_constants nor displacements")


def test_phonopy_disp_without_force_sets(tmp_path, shared_data):
    """A phonopy_disp.yaml alone has displacements but no forces: the error says what to pass."""
    p = tmp_path / "phonopy_disp.yaml"
    p.write_bytes((shared_data / "phonopy" / "phonopy_disp_SnO2.yaml").read_bytes())
    _raises_naming(p, "FORCE_SETS")


def test_missing_file(tmp_path):
    _raises_naming(tmp_path / "nothing.yaml", "not found")


def test_truncated_compressed_file(tmp_path, shared_data):
    p = tmp_path / "mp-149.yaml.bz2"
    p.write_bytes((shared_data / "mdr" / "mp-149.yaml.bz2").read_bytes()[:5000])
    _raises_naming(p, reader=read_mdr)


# ------------------------------------------------------------------------------------ round trip
@pytest.mark.parametrize("rel", ["phonopy/phonopy_params_NaCl.yaml.xz", "mdr/mp-1000.yaml.bz2"])
def test_as_dict_from_dict_round_trip(rel, load_reference):
    ref = load_reference(rel)
    d = json.loads(json.dumps(ref.model_dump()))  # must be JSON-able (NaN energy -> NaN)
    back = PhononReference.model_validate(d)
    assert back.material_id == ref.material_id
    assert back.provenance == ref.provenance
    assert back.unitcell.get_chemical_symbols() == ref.unitcell.get_chemical_symbols()
    np.testing.assert_array_equal(back.unitcell.positions, ref.unitcell.positions)
    np.testing.assert_array_equal(back.unitcell.cell[:], ref.unitcell.cell[:])
    np.testing.assert_array_equal(back.unitcell.get_masses(), ref.unitcell.get_masses())
    np.testing.assert_array_equal(back.supercell_matrix, ref.supercell_matrix)
    np.testing.assert_array_equal(back.primitive_matrix, ref.primitive_matrix)
    assert len(back.dataset["first_atoms"]) == len(ref.dataset["first_atoms"])
    for a, b in zip(back.dataset["first_atoms"], ref.dataset["first_atoms"]):
        assert a["number"] == b["number"]
        np.testing.assert_array_equal(a["displacement"], b["displacement"])
        np.testing.assert_array_equal(a["forces"], b["forces"])
    if ref.force_constants is None:
        assert back.force_constants is None
    else:
        np.testing.assert_array_equal(back.force_constants, ref.force_constants)
    if ref.thermal is not None:
        for k, v in ref.thermal.__dict__.items():
            np.testing.assert_array_equal(getattr(back.thermal, k), v)
        np.testing.assert_array_equal(back.commensurate_frequencies_THz, ref.commensurate_frequencies_THz)
    if ref.nac_params is not None:
        np.testing.assert_array_equal(back.nac_params["born"], ref.nac_params["born"])
        np.testing.assert_array_equal(back.nac_params["dielectric"], ref.nac_params["dielectric"])
        assert back.nac_params["factor"] == ref.nac_params["factor"]
    if ref.energy_eV is not None and math.isnan(ref.energy_eV):
        assert back.energy_eV is None  # a missing (NaN) energy is stored as JSON null
        assert "NaN" not in json.dumps(ref.model_dump())
    # the restored object gives the same phonons
    np.testing.assert_array_equal(back.to_phonopy().force_constants, ref.to_phonopy().force_constants)


# ------------------------------------------------------------------------------------ Hessian
@pytest.mark.parametrize("rel", ["phonopy/phonopy_params_Si.yaml", "mdr/mp-149.yaml.bz2"])
def test_supercell_hessian(rel, load_reference):
    ref = load_reference(rel)
    fc = ref.to_phonopy().force_constants
    n = fc.shape[0]
    h = ref.supercell_hessian()
    assert h.shape == (3 * n, 3 * n)
    # d²E/dr_i dr_j is symmetric; symmetrized (phonopy) or stored DFT fc, measured <= 1e-13 eV/Å²
    np.testing.assert_allclose(h, h.T, rtol=0, atol=1e-10)
    # layout: H[3i+a, 3j+b] = Φ_ij^ab
    assert h[3 * 1 + 0, 3 * 5 + 2] == fc[1, 5, 0, 2]
    # translational invariance (acoustic sum rule): Σ_j Φ_ij = 0, measured <= 1e-12 eV/Å²
    np.testing.assert_allclose(h.reshape(3 * n, n, 3).sum(axis=1), 0.0, atol=1e-8)
    # a real crystal: the Hessian is positive semi-definite up to the 3 zero translations
    w = np.linalg.eigvalsh(h)
    assert w[:3].max() < 1e-8 and w[3] > 1e-3
