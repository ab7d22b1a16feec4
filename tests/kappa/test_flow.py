"""End-to-end κ flows: campaign on a cheap calculator (ASE EMT, Cu), the stop rules, and one
k_SRME subset material (NaCl) with SevenNet-0 on reduced supercells and mesh."""

import json

import numpy as np
import pytest

EMT = {"backend": "ase", "import_path": "ase.calculators.emt:EMT", "name": "EMT"}
FCC_PRIM = [[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]
MESH = [6, 6, 6]


def _cu_material():
    from ase.build import bulk

    from pftflow.kappa import KappaMaterial

    return KappaMaterial("emt-Cu", "Cu", bulk("Cu", "fcc", a=3.6, cubic=True), 2 * np.eye(3, dtype=int),
                         2 * np.eye(3, dtype=int), np.array(FCC_PRIM), MESH, 225)


@pytest.fixture(scope="module")
def cu_files(tmp_path_factory):
    """extxyz with the Cu material + a reference JSON = pftflow's own EMT κ scaled by 1.2."""
    import ase.io
    import pandas as pd

    from pftflow.calculators import get_calculator
    from pftflow.kappa import (KappaSettings, fc2_supercells, fc3_supercells, init_phono3py, produce_fc2,
                               produce_fc3, run_conductivity)
    from pftflow.phonons.relax import RelaxSettings, relax_structure

    d = tmp_path_factory.mktemp("cu")
    m = _cu_material()
    a = m.atoms.copy()
    a.info.update({"fc2_supercell": m.fc2_supercell, "fc3_supercell": m.fc3_supercell, "primitive_matrix": m.primitive_matrix,
                   "q_mesh": np.array(MESH), "mp_id": m.material_id, "name": m.name, "symm.no": 225})
    ase.io.write(d / "structures.extxyz", [a], format="extxyz")
    calc = get_calculator(EMT)
    s = KappaSettings()
    rr = relax_structure(m.atoms, calc.ase_calculator(), RelaxSettings.ksrme())
    ph3 = init_phono3py(rr.atoms, m.fc2_supercell, m.fc3_supercell, m.primitive_matrix)
    produce_fc2(ph3, calc.compute(fc2_supercells(ph3)).forces_eV_per_A, s)
    produce_fc3(ph3, calc.compute(fc3_supercells(ph3)).forces_eV_per_A, s)
    kr = run_conductivity(ph3, MESH)
    k, mode = float(kr.kappa_TOT_ave_W_per_mK[0]), kr.mode_kappa_TOT_ave_W_per_mK
    df = pd.DataFrame({"mp_id": [m.material_id], "name": ["Cu"], "kappa_TOT_ave": [[1.2 * k]],
                       "mode_kappa_TOT_ave": [(1.2 * mode).tolist()], "weights": [kr.weights.tolist()],
                       "qpoints": [kr.qpoints.tolist()], "frequencies": [kr.frequencies_THz.tolist()],
                       "temperatures": [[300.0]], "q_mesh": [MESH]}, index=[7])
    df.to_json(d / "kappas_EMT_NAC.json.gz")
    return {"dir": d, "kappa": k, "mode": mode[0], "weights": kr.weights}


def test_campaign_emt_end_to_end(cu_files, tmp_path):
    from jobflow import run_locally

    from pftflow.flows.kappa import kappa_campaign_flow, load_kappa_results
    from pftflow.kappa import decode_array
    from pftflow.store import make_job_store

    spec = {"name": "kappa-emt", "kind": "kappa", "models": [EMT],
            "kappa": {"structures": str(cu_files["dir"] / "structures.extxyz"), "reference": str(cu_files["dir"]),
                      "nac": True, "materials": ["Cu"], "settings": {"q_mesh": MESH}}}
    store = make_job_store(tmp_path)
    store.connect()
    flow = kappa_campaign_flow(spec, store=store)
    run_locally(flow, store=store, create_folders=False, ensure_success=True, log=False)
    res = load_kappa_results(spec, store)
    assert res["kind"] == "kappa" and len(res["rows"]) == 1 and res["columns"]
    row = res["rows"][0]
    k = cu_files["kappa"]
    assert row["kappa_W_per_mK"] == pytest.approx(k, rel=1e-8)
    assert row["kappa_dft_W_per_mK"] == pytest.approx(1.2 * k, rel=1e-8)
    assert row["srd"] == pytest.approx(2 * (1 - 1.2) / 2.2, rel=1e-6)
    w, mode = cu_files["weights"], cu_files["mode"]
    assert row["srme"] == pytest.approx(2 * 0.2 * np.abs(mode).sum() / w.sum() / (2.2 * k), rel=1e-6)
    assert res["summary"]["EMT"]["mean_srme"] == pytest.approx(row["srme"])
    # full output: internal consistency, stored arrays, provenance
    doc = store.query_one({"metadata.campaign": "kappa-emt", "metadata.stage": "kappa"}, properties=["uuid"])
    out = store.get_output(doc["uuid"], which="last", load=True)
    kt = np.asarray(out["kappa_TOT_W_per_mK"])[0]
    np.testing.assert_allclose(out["kappa_mode_sum_W_per_mK"], out["kappa_TOT_W_per_mK"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(kt[:3], kt[0], rtol=1e-8)  # cubic: isotropic
    np.testing.assert_allclose(kt[3:], 0, atol=1e-8 * kt[0])
    assert out["kappa_ave_W_per_mK"] == pytest.approx(out["kappa_P_ave_W_per_mK"] + out["kappa_C_ave_W_per_mK"])
    mk = decode_array(out["mode_kappa"]["mode_kappa_TOT_ave_W_per_mK"])
    assert mk.sum() / sum(out["weights"]) == pytest.approx(k, rel=1e-5)  # float32 storage
    fc3 = decode_array(out["fc3"]["compact_eV_per_A3"])
    assert fc3.shape == (1, 32, 32, 3, 3, 3)
    assert out["relax"]["symmetry_preserved"] and out["versions"]["phono3py"]
    assert out["settings"]["displacement_A"] == 0.03 and out["n_fc3"] > 0
    json.dumps({k_: v for k_, v in out.items()})  # JSON-able
    # large arrays live in the additional "data" store
    assert store.additional_stores["data"].count() > 0
    # a second build reuses the stored result
    assert len(kappa_campaign_flow(spec, store=store).jobs) == 0
    store.close()


def _check_inputs(calc_spec=EMT, negate=False, symmetry_preserved=True):
    from pftflow.calculators import get_calculator
    from pftflow.flows import jobs
    from pftflow.flows.kappa import kappa_displacements
    from pftflow.materials.structures import dict_to_atoms

    m = _cu_material().as_dict()
    settings = {"q_mesh": [4, 4, 4]}
    relax = {"structure": m["structure"], "symmetry_preserved": symmetry_preserved, "error": None, "converged": True}
    disp = kappa_displacements.original(m, m["structure"], settings)
    res = get_calculator(calc_spec).compute([dict_to_atoms(a) for a in disp["fc2_supercells"]])
    forces = [(-f if negate else f).tolist() for f in res.forces_eV_per_A]
    return m, relax, disp, {"forces_eV_per_A": forces}, settings
    del jobs


@pytest.mark.parametrize("case", ["imaginary", "broken_symmetry", "relax_error"])
def test_stop_rules_give_srme_2(case):
    from jobflow import Response

    from pftflow.flows.kappa import kappa_fc2_check

    m, relax, disp, f2, settings = _check_inputs(negate=case == "imaginary", symmetry_preserved=case != "broken_symmetry")
    if case == "relax_error":
        relax["error"] = "RuntimeError: boom"
    out = kappa_fc2_check.original(m, relax, disp, f2, settings, EMT)
    assert not isinstance(out, Response)  # stopped before fc3
    assert (out["srd"], out["sre"], out["srme"], out["failed"]) == (-2.0, 2.0, 2.0, True)
    assert out["failed_reason"] == {"imaginary": "imaginary_modes", "broken_symmetry": "broken_symmetry",
                                    "relax_error": "relax_error"}[case]
    if case == "imaginary":
        assert out["imaginary_modes"] and out["min_frequency_THz"] < 0


def test_stable_case_continues_to_fc3():
    from jobflow import Response

    from pftflow.flows.kappa import kappa_fc2_check

    out = kappa_fc2_check.original(*_check_inputs(), EMT)
    assert isinstance(out, Response) and out.replace is not None
    assert [j.name for j in out.replace.jobs] == ["fc3 forces emt-Cu", "kappa emt-Cu"]


def test_yaml_specs_build(ksrme_dir, monkeypatch):
    """workflows/kappa-shared-subset.yaml builds one flow per subset material (paths from the repo root)."""
    from pathlib import Path

    import yaml

    from pftflow.flows.kappa import kappa_campaign_flow, kappa_materials

    root = Path(__file__).parents[2]
    monkeypatch.chdir(root)
    spec = yaml.safe_load((root / "workflows" / "kappa-shared-subset.yaml").read_text())
    mats = kappa_materials(spec)
    assert [m["material_id"] for m in mats] == ["mp-22905", "mp-22862", "mp-569346", "mp-10695"]
    assert all(m["reference_path"].endswith("kappas_phononDB_PBE_NAC_subset.json.gz") for m in mats)
    flow = kappa_campaign_flow(spec)
    assert len(flow.jobs) == 4
    spec103 = yaml.safe_load((root / "workflows" / "kappa-103.yaml").read_text())
    assert spec103["kind"] == "kappa" and spec103["kappa"]["nac"] is True


def test_nacl_sevennet_reduced(ksrme_dir, tmp_path):
    """NaCl-rs with SevenNet-0 (fc3 supercell 2x primitive = 16 atoms, fc2 2x2x2 conventional, mesh 4^3): the full
    k_SRME chain runs, κ from the per-mode sum equals κ_ave, the cubic tensor is isotropic."""
    pytest.importorskip("sevenn", reason="SevenNet (sevenn) not installed")
    from jobflow import run_locally

    from pftflow.flows.kappa import KappaMaker
    from pftflow.kappa import read_kappa_structures
    from pftflow.store import make_job_store

    mats = {m.material_id: m for m in read_kappa_structures(ksrme_dir / "phononDB-PBE-structures_subset.extxyz")}
    m = mats["mp-22862"].as_dict()
    m["fc3_supercell"] = [[0, 1, 1], [1, 0, 1], [1, 1, 0]]  # 2 x primitive; a 1x1x1 conventional cell gives nonsense κ
    m["fc2_supercell"] = (2 * np.eye(3, dtype=int)).tolist()
    m["reference_path"], m["nac"] = str(ksrme_dir), True
    flow = KappaMaker(settings={"q_mesh": [4, 4, 4]}).make(m, {"backend": "sevennet", "model": "7net-0", "device": "cpu"})
    store = make_job_store(tmp_path)
    run_locally(flow, store=store, create_folders=False, ensure_success=True, log=False)
    store.connect()
    out = store.get_output(flow.output.uuid, which="last", load=True)
    assert not out["failed"], out["failed_reason"]
    assert out["relax"]["symmetry_preserved"] and out["relax"]["spacegroup_final"] == 225
    kt = np.asarray(out["kappa_TOT_W_per_mK"])[0]
    assert 0.5 < out["kappa_ave_W_per_mK"] < 50
    np.testing.assert_allclose(out["kappa_mode_sum_W_per_mK"], out["kappa_TOT_W_per_mK"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(kt[:3], kt[0], rtol=1e-6)
    np.testing.assert_allclose(kt[3:], 0, atol=1e-6 * kt[0])
    assert out["kappa_dft_W_per_mK"] == pytest.approx(7.1038, abs=1e-4)
    assert out["srd"] is not None and out["srme"] is None and "differs" in out["metrics_note"]
    assert out["model_provenance"]["sha256"]
    store.close()
