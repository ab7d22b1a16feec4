"""jobflow: training-data job -> train job (typed documents in the store, resource tag, resume, exported model
usable by get_calculator) and the finetune campaign (benchmark built and tagged as the phonons campaign)."""

import numpy as np
import phonopy
import pytest
import torch
from jobflow import Flow, run_locally
from monty.json import MontyDecoder

from pftflow.flows.training import (
    TrainingDataDoc,
    TrainingRunDoc,
    TrainMaker,
    pft_campaign_flow,
    train_workdir,
    training_data_job,
)
from pftflow.store import make_job_store

CFG = {"epochs": 2, "lr": 1e-3, "dtype": "float64", "progress": False}


def _si_hessian(path) -> np.ndarray:
    """Reference supercell Hessian (eV/Å²) straight from phonopy: H[3i+a, 3j+b] = fc[i, j, a, b]."""
    ph = phonopy.load(str(path), produce_fc=True, symmetrize_fc=True, is_compact_fc=False, log_level=0)
    fc = np.asarray(ph.force_constants)
    n = fc.shape[0]
    return fc.transpose(0, 2, 1, 3).reshape(3 * n, 3 * n)


def _jobs(flow):
    """All jobs of a (nested) flow."""
    return [j for x in flow.jobs for j in (_jobs(x) if isinstance(x, Flow) else [x])]


def test_train_flow_runs_and_exports(make_mace, shared, tmp_path, monkeypatch):
    path = shared("phonopy/phonopy_params_Si.yaml")
    monkeypatch.chdir(tmp_path)
    model_file = tmp_path / "tiny.model"
    torch.save(make_mace(atomic_numbers=(14,)), model_file)
    data = training_data_job([{"type": "phonon_reference", "path": str(path)}], None, [{"type": "displacements", "path": str(path)}])
    maker = TrainMaker(config=CFG, export_name="si-tiny")
    tj = maker.make(data.output, {"backend": "mace", "model": str(model_file)})
    assert tj.config.manager_config == {"_category": "gpu", "_fworker": "gpu"} and tj.metadata["resources"] == "gpu"
    store = make_job_store(tmp_path / "campaign")
    responses = run_locally(Flow([data, tj]), store=store, create_folders=False, ensure_success=True)
    out = responses[tj.uuid][1].output
    assert isinstance(out, TrainingRunDoc) and out.calculator_spec["backend"] == "mace"
    assert out.provenance["base_model"]["sha256"] and out.provenance["data_hash"] == out.data_hash
    assert len(out.history) == 2 and out.best_epoch in (0, 1) and out.resumed_from_epoch is None
    assert out.counts == {"train": 1, "valid": 0, "cotrain": 1}
    before, after = out.cotrain_errors.before, out.cotrain_errors.after
    assert before.n_structures == 1 and before.force_mae_eV_per_A > 0 and after.force_mae_eV_per_A > 0
    from ase.build import bulk

    from pftflow.calculators import get_calculator

    res = get_calculator(out.calculator_spec).compute([bulk("Si", "diamond", a=5.43)], stress=False)
    assert np.isfinite(res.energies_eV[0])

    store.connect()
    # the stored documents decode to their classes; the Hessian target round-trips bit for bit and equals the
    # reference force constants (phonopy), and its blob went to the additional data store
    stored = MontyDecoder().process_decoded(store.get_output(data.uuid, load=True))
    assert isinstance(stored, TrainingDataDoc) and stored.data_hash == out.data_hash == stored.training_data().data_hash()
    h = stored.train[0].hessian_eV_per_A2
    assert h.shape == (48, 48) and h.tobytes() == responses[data.uuid][1].output.train[0].hessian_eV_per_A2.tobytes()
    np.testing.assert_allclose(h, _si_hessian(path), rtol=0, atol=1e-10)  # symfc vs traditional symmetrization: ~1e-14
    assert stored.train[0].material_id == "Si" and stored.cotrain[0].kind == "displacement"
    assert store.additional_stores["data"].count() == 1  # the Hessian; the (16, 3) forces stay inline (<= INLINE_MAX)
    raw = store.query_one({"uuid": data.uuid}, properties=["output"])["output"]
    assert "npy_zlib_b64" not in str(raw)  # no array bytes left in the outputs collection
    again = MontyDecoder().process_decoded(store.get_output(tj.uuid, load=True))
    assert isinstance(again, TrainingRunDoc) and again.cotrain_errors.after == after


def test_train_job_resumes_after_kill(make_mace, shared, tmp_path):
    """A train job whose work directory holds a checkpoint of epoch 0 (a run killed after one epoch) continues
    with epoch 1 and keeps the first epoch's history."""
    from pftflow.training.data import TrainingData, from_displacements, from_phonon_reference
    from pftflow.calculators.energy_models import load_energy_model
    from pftflow.training.trainer import TrainConfig, train

    path = shared("phonopy/phonopy_params_Si.yaml")
    model_file = tmp_path / "tiny.model"
    torch.save(make_mace(atomic_numbers=(14,)), model_file)
    base = {"backend": "mace", "model": str(model_file)}
    data = TrainingData(from_phonon_reference(path), [], from_displacements(path))
    cfg = TrainConfig(**CFG)
    workdir = train_workdir(str(tmp_path / "runs"), "si-tiny", data.data_hash(), base, cfg.as_dict())
    _, first = train(load_energy_model(base, dtype="float64"), data, TrainConfig(**{**CFG, "epochs": 1}), workdir)
    tj = TrainMaker(config=CFG, run_dir=str(tmp_path / "runs"), export_name="si-tiny", fworker=None, evaluate_cotrain=False).make(data, base)
    out = run_locally(Flow([tj]), store=make_job_store(tmp_path / "s"), create_folders=False, ensure_success=True)[tj.uuid][1].output
    assert out.workdir == str(workdir) and out.resumed_from_epoch == 1
    assert [h["epoch"] for h in out.history] == [0, 1] and out.history[0] == first.history[0]
    assert out.cotrain_errors.before is None


def test_train_job_with_more_epochs_continues_a_shorter_run(make_mace, shared, tmp_path):
    """Raising ``epochs`` continues the last checkpoint of the shorter run (same data, base model, other
    hyperparameters) and gives the weights of one uninterrupted run; another learning rate starts afresh."""
    from pftflow.training.data import TrainingData, from_displacements, from_phonon_reference
    from pftflow.calculators.energy_models import load_energy_model
    from pftflow.training.trainer import TrainConfig, train

    path = shared("phonopy/phonopy_params_Si.yaml")
    model_file = tmp_path / "tiny.model"
    torch.save(make_mace(atomic_numbers=(14,)), model_file)
    base = {"backend": "mace", "model": str(model_file)}
    data = TrainingData(from_phonon_reference(path), [], from_displacements(path))
    runs = str(tmp_path / "runs")

    def job(cfg):
        tj = TrainMaker(config=cfg, run_dir=runs, export_name="si-tiny", fworker=None, evaluate_cotrain=False).make(data, base)
        return run_locally(Flow([tj]), store=make_job_store(tmp_path / "s"), create_folders=False, ensure_success=True)[tj.uuid][1].output

    short = job({**CFG, "epochs": 1})
    assert short.continued_from is None and short.resumed_from_epoch is None
    longer = job({**CFG, "epochs": 3})
    assert longer.continued_from == short.workdir != longer.workdir and longer.resumed_from_epoch == 1
    assert [h["epoch"] for h in longer.history] == [0, 1, 2] and longer.history[0] == short.history[0]
    # the same weights as one uninterrupted 3-epoch run
    straight, _ = train(load_energy_model(base, dtype="float64"), data, TrainConfig(**{**CFG, "epochs": 3}), tmp_path / "straight")
    cont = torch.load(f"{longer.workdir}/best.pt", weights_only=False)["model"]
    ref = torch.load(tmp_path / "straight" / "best.pt", weights_only=False)["model"]
    assert cont.keys() == ref.keys() and all(torch.equal(cont[k], ref[k]) for k in ref)
    other = job({**CFG, "epochs": 3, "lr": 5e-4})
    assert other.continued_from is None and other.resumed_from_epoch is None


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
    assert len(calls) == 2 and calls[0][0] == ("Si",) and calls[0][1]["backend"] == "sevennet"
    assert type(calls[1][1]).__name__ == "OutputReference"  # fine-tuned calculator spec from the train job
    top = [j for j in flow.jobs if not isinstance(j, Flow)]
    assert [j.metadata.get("stage") for j in top] == ["parameters", "training_data", "train"]
    tj = top[2]
    assert tj.metadata["model"] == "SevenNet-0-pft" and tj.metadata["kind"] == "finetune" and tj.metadata["resources"] == "gpu"
    assert tj.config.manager_config == {"_category": "gpu", "_fworker": "gpu"}
    # custom benchmark jobs get the campaign identity and their model's name
    bench_models = [j.metadata["model"] for f in flow.jobs if isinstance(f, Flow) for j in f.jobs]
    assert bench_models == ["SevenNet-0", "SevenNet-0-pft"]


def test_default_benchmark_tagged_as_phonons_campaign(shared, tmp_path):
    """The finetune benchmark of the base model builds the same jobs under the same content keys as a phonons
    campaign of the same material, model and settings (so both read and reuse each other's stored results)."""
    from pftflow.flows.phonons_campaign import build_phonons
    from pftflow.spec.load import parse_spec

    train, test = str(shared("phonopy/phonopy_params_Si.yaml")), str(shared("mdr/mp-149.yaml.bz2"))
    model_file = tmp_path / "tiny.model"
    model_file.write_bytes(b"")  # only hashed into keys here, never loaded
    base = {"backend": "mace", "model": str(model_file), "name": "tiny"}
    settings = {"phonons": {"mesh": [6, 6, 6], "band_npoints": 5}, "relax_models": True}
    ft = {
        "name": "ft", "kind": "finetune", "train_materials": [train], "test_materials": [test],
        "training": {"base_model": base, "export_name": "tiny-pft", "fworker": None}, "settings": settings,
    }
    flow = pft_campaign_flow(ft, store=None)
    ph = parse_spec({"name": "ph", "kind": "phonons", "materials": [test], "models": [base], "settings": settings})
    empty = make_job_store(tmp_path / "empty")
    empty.connect()
    ph_flow, _ = build_phonons(ph, empty)

    def keyed(f):
        return {(j.metadata.get("model"), j.metadata["stage"]): j.metadata["pftflow_key"] for j in _jobs(f) if "pftflow_key" in j.metadata}

    ft_keys, ph_keys = keyed(flow), keyed(ph_flow)
    stages = [("reference", "reference"), ("reference", "analysis"), ("tiny", "relax"), ("tiny", "displacements"), ("tiny", "forces"),
              ("tiny", "analysis"), ("tiny", "compare")]
    for k in stages:
        assert ft_keys[k] == ph_keys[k], k
    cmp_jobs = [j for j in _jobs(flow) if j.metadata.get("stage") == "compare"]
    assert sorted(j.metadata["model"] for j in cmp_jobs) == ["tiny", "tiny-pft"]
    assert all(j.metadata["campaign"] == "ft" and j.metadata["kind"] == "finetune" and j.metadata["material_id"] == "mp-149" for j in cmp_jobs)
    # one reference import per test material, shared by both models; the fine-tuned model's chain differs
    assert sum(1 for j in _jobs(flow) if j.metadata.get("stage") == "reference") == 1
    assert ft_keys[("tiny-pft", "compare")] != ft_keys[("tiny", "compare")]


def test_finetune_campaign_end_to_end(make_mace, shared, tmp_path, monkeypatch):
    """kind: finetune through the campaign runner: data -> train -> benchmark of base and fine-tuned
    model on the held-out material; results list both models with the MDR metrics.  A second run reuses
    the training run, the reference and the base model's comparison."""
    import yaml

    from pftflow.results import load_results
    from pftflow.run import open_store, run_campaign

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
    from pftflow.spec.load import load_spec

    cs = load_spec(p)
    summary = run_campaign(cs, progress=False, plots=False)
    assert summary.failed_jobs == 0, summary.failures
    res = load_results(cs)
    assert set(res) == {"campaign", "kind", "train", "rows", "summary"} and res["kind"] == "finetune"
    assert [(r["material_id"], r["model"]) for r in res["rows"]] == [("mp-149", "tiny"), ("mp-149", "tiny-pft")]
    assert set(res["summary"]) == {"tiny", "tiny-pft"} and res["summary"]["tiny"]["n_evaluated"] == 1
    assert res["train"]["calculator_spec"]["backend"] == "mace" and res["train"]["model"] == "tiny-pft"
    assert res["train"]["cotrain_errors"]["before"]["force_mae_eV_per_A"] > 0
    for r in res["rows"]:
        assert r["omega_max_K_ref"] == pytest.approx(725.04, abs=0.1)  # the MDR DFT reference (mp-149)
        assert not r["failed"] and np.isfinite(r["omega_max_K"])
    # the fine-tuned model is a different model: its phonons differ from the base model's
    assert res["rows"][0]["omega_max_K"] != res["rows"][1]["omega_max_K"]

    from pftflow.flows.training import build_finetune

    store = open_store(cs)
    try:
        _, reused = build_finetune(cs.raw, store)
    finally:
        store.close()
    # the fine-tuned model stands in the keys by its training run's key, so its comparison is reused too
    assert reused["train"] == ["tiny-pft"] and reused["reference"] == ["mp-149"] and reused["model"] == ["mp-149/tiny", "mp-149/tiny-pft"]
