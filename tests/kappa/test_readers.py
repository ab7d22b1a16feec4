import numpy as np
import pytest

pytestmark = pytest.mark.shared_data


def test_read_subset_structures(ksrme_dir):
    from pftflow.kappa import KappaMaterial, read_kappa_structures

    mats = {m.material_id: m for m in read_kappa_structures(ksrme_dir / "phononDB-PBE-structures_subset.extxyz")}
    assert set(mats) == {"mp-22862", "mp-10695", "mp-569346", "mp-22905"}
    nacl = mats["mp-22862"]
    assert nacl.name == "NaCl" and nacl.spacegroup_number == 225 and nacl.q_mesh == [19, 19, 19]
    np.testing.assert_array_equal(nacl.fc2_supercell, 4 * np.eye(3))
    np.testing.assert_array_equal(nacl.fc3_supercell, 2 * np.eye(3))
    assert nacl.primitive_matrix is not None and len(nacl.atoms) == 8
    cui = mats["mp-569346"]
    assert cui.primitive_matrix is None and cui.q_mesh == [19, 19, 15]
    back = KappaMaterial.model_validate(nacl.model_dump())
    np.testing.assert_allclose(back.atoms.positions, nacl.atoms.positions)
    assert back.q_mesh == nacl.q_mesh


def test_read_reference_nac_variants(ksrme_dir):
    from pftflow.kappa import KappaReference, read_kappa_reference

    nac = read_kappa_reference(ksrme_dir, nac=True)
    nonac = read_kappa_reference(ksrme_dir / "kappas_phononDB_PBE_noNAC_subset.json.gz")
    assert nac["mp-22862"].kappa_at(300) == pytest.approx(7.1038, abs=1e-4)  # README table
    assert nonac["mp-22862"].kappa_at(300) != pytest.approx(7.1038, abs=1e-3)
    assert nac["mp-22862"].nac is True and nonac["mp-22862"].nac is False
    r = nac["mp-569346"]
    assert r.mode_kappa_TOT_ave_W_per_mK.shape == (1, len(r.weights), 12)
    assert r.weights.sum() == 19 * 19 * 15
    assert KappaReference.model_validate(r.model_dump()).kappa_at(300) == r.kappa_at(300)
    with pytest.raises(FileNotFoundError):
        read_kappa_reference(ksrme_dir / "missing.json.gz")
