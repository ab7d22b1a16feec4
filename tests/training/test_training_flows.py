"""jobflow: training-data job -> train job (store, resource tag, exported model usable by get_calculator)."""

import numpy as np
import pytest
import torch
from jobflow import Flow, run_locally

from pftflow.flows.training import TrainMaker, pft_campaign_flow, training_data_job
from pftflow.store import make_job_store


def test_train_flow_runs_and_exports(make_mace, shared, tmp_path, monkeypatch):
    path = str(shared("phonopy/phonopy_params_Si.yaml"))
    monkeypatch.chdir(tmp_path)
    model_file = tmp_path / "tiny.model"
    torch.save(make_mace(atomic_numbers=(14,)), model_file)
    data = training_data_job(
        [{"type": "phonon_reference", "path": path}], None, [{"type": "displacements", "path": path}]
    )
    maker = TrainMaker(config={"epochs": 2, "lr": 1e-3, "dtype": "float64", "progress": False}, export_name="si-tiny")
    tj = maker.make(data.output, {"backend": "mace", "model": str(model_file)})
    assert tj.config.manager_config == {"_fworker": "gpu"} and tj.metadata["resources"] == "gpu"
    store = make_job_store(tmp_path / "campaign")
    responses = run_locally(Flow([data, tj]), store=store, create_folders=False, ensure_success=True)
    out = responses[tj.uuid][1].output
    assert out["calculator_spec"]["backend"] == "mace"
    assert out["provenance"]["base_model"]["sha256"] and out["provenance"]["data_hash"] == out["data_hash"]
    assert out["cotrain_errors"]["before"]["force_mae_eV_per_A"] is not None
    from pftflow.calculators import get_calculator
    from ase.build import bulk

    res = get_calculator(out["calculator_spec"]).compute([bulk("Si", "diamond", a=5.43)], stress=False)
    assert np.isfinite(res.energies_eV[0])
    # the Hessian arrays went to the additional data store
    store.connect()
    stored = store.get_output(data.uuid, load=True)
    assert len(stored["train"][0]["hessian_eV_per_A2"]) == 48
    assert store.additional_stores["data"].count() > 0


def test_campaign_flow_structure(shared):
    si = str(shared("phonopy/phonopy_params_Si.yaml"))
    nacl = str(shared("phonopy/phonopy_params_NaCl.yaml.xz"))
    calls = []

    def bench(materials, calc):
        calls.append((tuple(m["id"] for m in materials), calc))
        return Flow([training_data_job([])], name="dummy benchmark")

    spec = {
        "name": "t", "kind": "finetune",
        "train_materials": [{"id": "NaCl", "reference_file": nacl}], "test_materials": [si],
        "training": {"base_model": {"backend": "sevennet", "model": "7net-0", "name": "SevenNet-0"}, "config": {"epochs": 1}},
    }
    flow = pft_campaign_flow(spec, bench)
    assert len(calls) == 2 and calls[0][1]["backend"] == "sevennet"
    assert type(calls[1][1]).__name__ == "OutputReference"  # fine-tuned calculator spec from the train job
    stages = [j.metadata.get("stage") for j in flow.jobs if not isinstance(j, Flow)]
    assert stages[:2] == ["training_data", "train"]


def test_finetune_campaign_end_to_end(make_mace, shared, tmp_path, monkeypatch):
    """kind: finetune through the campaign runner: data -> train -> benchmark of base and fine-tuned
    model on the held-out material; results list both models with the MDR metrics."""
    import yaml

    from pftflow.campaign import CampaignSpec, load_results, run_campaign

    train = str(shared("phonopy/phonopy_params_Si.yaml"))
    test = str(shared("mdr/mp-149.yaml.bz2"))
    monkeypatch.chdir(tmp_path)
    model_file = tmp_path / "tiny.model"
    torch.save(make_mace(atomic_numbers=(14,)), model_file)
    spec = {
        "name": "ft-e2e", "kind": "finetune", "store": {"path": str(tmp_path / "camp")},
        "train_materials": [{"id": "Si-train", "reference_file": train}],
        "test_materials": [test],
        "training": {
            "base_model": {"backend": "mace", "model": str(model_file), "name": "tiny"},
            "export_name": "tiny-pft", "run_dir": str(tmp_path / "runs"), "fworker": None,
            "config": {"epochs": 1, "lr": 1e-3, "dtype": "float64", "progress": False},
        },
        "settings": {"phonons": {"mesh": [6, 6, 6], "band_npoints": 5}, "relax_models": False},
    }
    p = tmp_path / "ft.yaml"
    p.write_text(yaml.safe_dump(spec))
    cs = CampaignSpec.from_yaml(p)
    summary = run_campaign(cs, progress=False, plots=False)
    assert summary["failed_jobs"] == 0, summary["job_failures"]
    res = load_results(cs)
    assert sorted((r["material_id"], r["model"]) for r in res["rows"]) == [("mp-149", "tiny"), ("mp-149", "tiny-pft")]
    assert set(res["summary"]) == {"tiny", "tiny-pft"}
    assert res["train"]["calculator_spec"]["backend"] == "mace"
    for r in res["rows"]:
        assert r["omega_max_K_ref"] == pytest.approx(725.04, abs=0.1)  # the MDR DFT reference (mp-149)
