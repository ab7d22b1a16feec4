"""Fine-tuning campaigns end to end at toy scale (no shared data, no GPU, ~1 min):

* ``finetune_per_material`` (Equitrain protocol): simple-cubic Cu (EMT makes it dynamically unstable, so the
  campaign scans imaginary modes too), labelled and referenced by ASE's EMT as the teacher, a tiny MACE as
  the base model; every mode (delta, lora, frozen, full, scratch) at N = 2 and 5 from one labelled set;
* ``finetune_global`` (PFT paper): seven fcc metals with EMT references written by phonopy, split by a
  split file in MDR's format; self-distillation co-training; early stopping with a patience of 1 on a
  validation material whose reference is the base model itself (so the validation loss is lowest before
  the model has moved far and rises after);
* split files, the seeded split and spec errors.

Numbers are checked against EMT, phonopy and the training engine called directly.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from pft_testutils import tiny_mace

from pftflow.spec import SpecError
from pftflow.spec.load import load_spec, parse_spec

EMT_SPEC = {"backend": "ase", "name": "EMT", "import_path": "ase.calculators.emt:EMT"}
MODES = ["delta", {"mode": "lora", "lora_rank": 2}, {"mode": "frozen", "freeze": ["embedding", "layer0"]}, "full", "scratch"]
MODE_NAMES = ["delta", "lora-r2", "frozen", "full", "scratch"]
CFG = {"epochs": 4, "lr": 1e-2, "dtype": "float64", "progress": False, "ema_decay": 0.99}


def _outputs(store, campaign: str, stage: str) -> list[tuple[dict, object]]:
    from monty.json import MontyDecoder

    docs = list(store.query({"metadata.campaign": campaign, "metadata.stage": stage}, properties=["uuid", "metadata"]))
    return [(d["metadata"], MontyDecoder().process_decoded(store.get_output(d["uuid"], which="last", load=True))) for d in docs]


# ------------------------------------------------------------------------------------ per material
def per_material_spec(tmp_path: Path) -> dict:
    model = tmp_path / "tiny.model"
    if not model.exists():
        torch.save(tiny_mace(atomic_numbers=(29,)), model)
    return {
        "name": "pm", "kind": "finetune_per_material", "store": {"path": str(tmp_path / "camp")},
        "materials": [{"id": "Cu-sc", "structure": {"cell_A": [[2.4, 0, 0], [0, 2.4, 0], [0, 0, 2.4]], "species": ["Cu"], "frac_coords": [[0, 0, 0]]},
                       "supercell_matrix": [2, 2, 2]}],
        "labeller": EMT_SPEC,
        "reference": {"relax": {"fmax_eV_per_A": 1e-4, "steps": 200}},
        "sampling": {"kind": "rattle", "amplitude_A": 0.05, "seed": 0},
        "training": {"base_model": {"backend": "mace", "model": str(model), "name": "tiny"}, "modes": MODES, "n_structures": [5, 2],
                     "valid": {"n_valid": 2, "seed": 3}, "run_dir": str(tmp_path / "runs"), "fworker": None, "scratch_seed": 1, "config": CFG},
        "settings": {"phonons": {"mesh": [4, 4, 4], "band_npoints": 5}, "relax_models": False},
        "mode_scans": {"q_max_amu05_A": 4.0, "n_points": 9, "relax_steps": 100},
    }


@pytest.fixture(scope="module")
def per_material(tmp_path_factory):
    """The per-material campaign, run once through the runner (~30 s)."""
    from pftflow.run import run_campaign

    tmp = tmp_path_factory.mktemp("pm")
    path = tmp / "pm.yaml"
    path.write_text(yaml.safe_dump(per_material_spec(tmp)))
    spec = load_spec(path)
    summary = run_campaign(spec, progress=False, plots=True)
    assert summary.failed_jobs == 0, summary.failures
    return tmp, spec, summary


def test_per_material_labels_split_and_reference(per_material):
    """Labels are EMT's on rattled copies of the EMT-relaxed cell; the N = 2 training set is the first 2 of the
    N = 5 set, both with the same 2 validation structures; the reference phonons are EMT's on that cell."""
    from pftflow.phonons.harmonic import frequencies_at, produce_force_constants
    from pftflow.run import open_store
    from pftflow.sampling import fc2_displacements

    _, spec, _ = per_material
    store = open_store(spec)
    try:
        (relax,) = [d for m, d in _outputs(store, "pm", "relax") if m["model"] == "reference"]
        (labelled,) = [d for _, d in _outputs(store, "pm", "labelled_set")]
        data = {m["n_structures"]: d for m, d in _outputs(store, "pm", "training_data")}
        (scans,) = [d for _, d in _outputs(store, "pm", "mode_scans")]
    finally:
        store.close()
    a = float(relax.structure.cell[0, 0])
    assert relax.converged and 2.40 < a < 2.43  # EMT's simple-cubic equilibrium, not the 2.4 Å given
    assert labelled.n_structures == 7 and labelled.labeller == "EMT"  # largest N + n_valid
    for atoms, f, e in zip(labelled.to_atoms(), labelled.forces_eV_per_A, labelled.energies_eV):
        np.testing.assert_allclose(atoms.cell[:], 2 * relax.structure.cell[:], atol=1e-12)
        atoms.calc = EMT()
        np.testing.assert_allclose(atoms.get_forces(), f, atol=1e-10)
        assert atoms.get_potential_energy() == pytest.approx(e, abs=1e-10)
    assert sorted(data) == [2, 5] and data[2].counts == {"train": 2, "valid": 2, "cotrain": 0}
    pos = {n: [s.atoms.positions for s in d.train] for n, d in data.items()}
    for p2, p5 in zip(pos[2], pos[5][:2]):
        np.testing.assert_array_equal(p2, p5)
    valid = [s.atoms.positions for s in data[2].valid]
    for p, q in zip(valid, [s.atoms.positions for s in data[5].valid]):
        np.testing.assert_array_equal(p, q)
    assert not any(np.array_equal(v, t) for v in valid for t in pos[5])
    shift = data[2].sources["train"][0]["energy_shift_eV_per_atom"]
    assert shift == data[5].sources["train"][0]["energy_shift_eV_per_atom"] != 0.0  # one offset per material: forces untouched
    np.testing.assert_allclose(data[5].train[0].forces_eV_per_A, labelled.forces_eV_per_A[data[5].sources["train"][0]["indices"][0]], atol=0)
    # reference: EMT phonons of the relaxed cell, computed here directly
    ph, supercells = fc2_displacements(relax.structure, 2 * np.eye(3, dtype=int))
    forces = []
    for sc in supercells:
        sc.calc = EMT()
        forces.append(sc.get_forces())
    produce_force_constants(ph, forces)
    direct = frequencies_at(ph, np.array([[0.5, 0.5, 0.0]]))[0, 0]
    m_mode = scans.imaginary["reference"][0]
    assert m_mode["qpoint"] == [0.5, 0.5, 0.0] and m_mode["frequency_THz"] == pytest.approx(direct, abs=1e-8) == pytest.approx(-3.44, abs=0.02)


def test_per_material_every_mode_and_n_sweep(per_material):
    """Rows for the base model and every mode × N; the modes train what they say; fine-tuning on EMT labels
    brings the phonons closer to EMT's."""
    from pftflow.results import load_results
    from pftflow.run import open_store
    from pftflow.calculators.energy_models import MACEEnergyModel

    tmp, spec, summary = per_material
    res = load_results(spec)
    rows = {r["model"]: r for r in res["rows"]}
    assert [(r["mode"], r["n_structures"]) for r in res["rows"]] == [("base", 0)] + [(m, n) for m in MODE_NAMES for n in (2, 5)]
    assert all(r["status"] == "ok" and r["material_id"] == "Cu-sc" for r in res["rows"])
    assert res["reference_protocol"].startswith("reference relaxed with its own calculator") and "models evaluated on the reference cell" in res["reference_protocol"]
    base = rows["tiny"]
    assert base["mesh_mae_THz"] > 3.0 and base["mesh_mae_reduction"] == 0.0  # a random tiny MACE against EMT
    for m in ("full", "delta"):
        assert rows[f"tiny-{m}-N5"]["mesh_mae_reduction"] > 0.5, rows[f"tiny-{m}-N5"]
        assert rows[f"tiny-{m}-N5"]["mesh_mae_THz_base"] == base["mesh_mae_THz"]
    train = res["train"]
    n_full = train["Cu-sc/tiny-full-N2"]["n_trainable"]
    assert train["Cu-sc/tiny-delta-N2"]["n_trainable"] == n_full == sum(p.numel() for p in tiny_mace(atomic_numbers=(29,)).parameters())
    assert 0 < train["Cu-sc/tiny-lora-r2-N2"]["n_trainable"] < train["Cu-sc/tiny-frozen-N2"]["n_trainable"] < n_full
    assert train["Cu-sc/tiny-full-N5"]["counts"] == {"train": 5, "valid": 2, "cotrain": 0}
    # frozen: the embedding and layer-0 parameters of the exported model are the base model's
    base_m = MACEEnergyModel(torch.load(tmp / "tiny.model", weights_only=False))
    frozen = torch.load(train["Cu-sc/tiny-frozen-N5"]["exported_model_path"], weights_only=False)
    groups = base_m.parameter_groups()
    fp, bp = dict(frozen.named_parameters()), dict(base_m.model.named_parameters())
    assert all(torch.equal(fp[n], bp[n]) for g in ("embedding", "layer0") for n in groups[g])
    assert not all(torch.equal(fp[n], bp[n]) for n in groups["layer1"])
    # scratch: same architecture, other weights than the base model, so other results than full
    store = open_store(spec)
    try:
        (scratch,) = [d for _, d in _outputs(store, "pm", "scratch_init")]
    finally:
        store.close()
    sm = torch.load(scratch.path, weights_only=False)
    assert scratch.n_parameters == n_full and type(sm) is type(base_m.model)
    assert not torch.equal(next(sm.parameters()), next(base_m.model.parameters()))
    assert rows["tiny-scratch-N2"]["mesh_mae_THz"] != rows["tiny-full-N2"]["mesh_mae_THz"]
    # error-vs-N data: every mode at N = 0 (the base model), 2 and 5, means over materials
    pts = {(p["series"], p["n"]): p for p in res["error_vs_n"]}
    assert set(pts) == {(m, n) for m in MODE_NAMES for n in (0, 2, 5)} - {("scratch", 0)}  # scratch at N = 0 is no model
    assert pts[("full", 5)]["mesh_mae_THz"] == pytest.approx(rows["tiny-full-N5"]["mesh_mae_THz"])
    assert pts[("lora-r2", 0)]["mesh_mae_THz"] == pytest.approx(base["mesh_mae_THz"])
    assert {Path(p).name for p in summary.plots} == {"Cu-sc_bands.png", "error_vs_n.png", "Cu-sc_mode_scans.png"}


def test_per_material_mode_scans_and_results_table(per_material, capsys):
    from pftflow.cli import main
    from pftflow.results import load, load_results

    tmp, spec, _ = per_material
    res_scans = load_results(spec)["mode_scans"]["Cu-sc"]
    curves = {(tuple(c["qpoint"]), c["calculator"]): c for c in res_scans["curves"]}
    ref_m = curves[((0.5, 0.5, 0.0), "reference")]
    # the reference (EMT) along its own M mode: a well, curvature at Q = 0 = the mode's frequency (grid step 1 amu^½·Å)
    assert ref_m["well_depth_eV"] < -0.2 and ref_m["double_well"]
    assert ref_m["curvature_frequency_THz"] == pytest.approx(res_scans["imaginary"]["reference"][0]["frequency_THz"], rel=0.03)
    assert {c for _, c in curves} == {"reference", *spec.model_names}
    # pftflow results: JSON rows with mode and n_structures; the pandas frame has them as columns
    assert main(["results", str(spec.path), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"mode", "n_structures", "mesh_mae_THz", "omega_max_abs_error_K"} <= set(out["rows"][1]) and out["rows"][1]["n_structures"] == 2
    df = load(tmp / "camp")  # from the store folder alone
    assert {"mode", "n_structures", "strategy", "n_train_structures"} <= set(df.columns) and len(df) == 11
    assert sorted(df.loc[df["mode"] == "delta", "n_structures"]) == [2, 5]
    assert main(["results", str(spec.path)]) == 0 and "BZ MAE red." in capsys.readouterr().out


def test_per_material_rerun_reuses_everything(per_material):
    from pftflow.flows.campaigns import KINDS
    from pftflow.run import open_store

    _, spec, _ = per_material
    store = open_store(spec)
    try:
        flow, reused = KINDS[spec.kind].build(spec, store)
    finally:
        store.close()
    assert sorted(reused["train"]) == sorted(f"Cu-sc/{m}" for m in spec.model_names[1:])
    assert reused["reference"] == ["Cu-sc"] and len(reused["model"]) == 11
    assert [j.metadata["stage"] for j in flow.jobs] == ["parameters"]  # the rest is in the store


def test_per_material_new_n_reuses_the_labels(per_material):
    """Adding N = 3 (below the largest N) reuses the labelled set, the reference and the N = 2, 5 models; only the
    N = 3 data, fine-tunes and benchmarks (and the mode scans, which see the new models) are new.  Before they
    run, the results list the new pairs as missing."""
    from pftflow.flows.campaigns import KINDS
    from pftflow.flows.finetune_campaigns import _all_jobs
    from pftflow.flows.finetune_per_material import per_material_results
    from pftflow.run import open_store

    _, spec, _ = per_material
    raw = yaml.safe_load(spec.path.read_text())
    raw["training"]["n_structures"] = [2, 3, 5]
    spec3 = parse_spec(raw)
    store = open_store(spec3)
    try:
        flow, reused = KINDS[spec3.kind].build(spec3, store)
        res = per_material_results(spec3, store)
    finally:
        store.close()
    jobs = _all_jobs(flow.jobs)
    assert len(reused["train"]) == 10 and not any(j.metadata.get("model") == "EMT" for j in jobs)  # no new label
    assert sorted(j.metadata["model"] for j in jobs if j.metadata["stage"] == "train") == sorted(f"tiny-{m}-N3" for m in MODE_NAMES)
    assert [j.metadata["n_structures"] for j in jobs if j.metadata["stage"] == "training_data"] == [3]
    missing = [r for r in res["rows"] if r["status"] == "missing"]
    assert sorted(r["model"] for r in missing) == sorted(f"tiny-{m}-N3" for m in MODE_NAMES) and all(r["n_structures"] == 3 for r in missing)
    assert len(res["rows"]) == 16 and res["summary"]["tiny-full-N5"]["n_evaluated"] == 1 and "tiny-full-N3" not in res["summary"]


def test_per_material_cell_from_a_reference_file(tmp_path):
    """A material given as a reference file: its unit cell and supercell matrix are used, its phonons are not
    (the labeller computes the reference); built only."""
    from pftflow.flows.campaigns import KINDS
    from pftflow.flows.finetune_campaigns import _all_jobs

    raw = per_material_spec(tmp_path)
    _write_reference(tmp_path / "Cu.yaml", "Cu", 3.59, EMT())
    raw["materials"] = [str(tmp_path / "Cu.yaml")]
    raw["training"]["modes"] = ["delta"]
    spec = parse_spec(raw)
    flow, _ = KINDS[spec.kind].build(spec, None)
    jobs = _all_jobs(flow.jobs)
    (relax,) = [j for j in jobs if j.metadata["stage"] == "relax" and j.metadata["model"] == "reference"]
    cell = relax.function_args[0]
    np.testing.assert_allclose(cell.cell[:], bulk("Cu", "fcc", a=3.59).cell[:], atol=1e-12)
    (sampling,) = [j for j in jobs if j.metadata["stage"] == "sampling"]
    assert sampling.metadata["material_id"] == "Cu" and np.asarray(sampling.function_args[2]).tolist() == (2 * np.eye(3, dtype=int)).tolist()
    assert sampling.function_args[3]["n_structures"] == 7
    assert not any(j.metadata["stage"] == "reference" for j in jobs)  # no import: the labeller computes it


def test_scratch_seed_equal_to_the_base_initialisation_is_refused(tmp_path):
    from pftflow.flows.finetune_campaigns import scratch_model_job

    torch.save(tiny_mace(atomic_numbers=(29,)), tmp_path / "tiny.model")  # itself a fresh init with torch seed 0
    with pytest.raises(ValueError, match="scratch_seed 0: the re-initialised weights equal"):
        scratch_model_job.original({"backend": "mace", "model": str(tmp_path / "tiny.model")}, 0, str(tmp_path / "s.model"), "s")


# ------------------------------------------------------------------------------------ global
def _write_reference(path: Path, symbol: str, a: float, calc) -> None:
    """A phonopy_params yaml of fcc ``symbol`` (2x2x2 supercell) with forces of ``calc``."""
    import phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    at = bulk(symbol, "fcc", a=a)
    ph = phonopy.Phonopy(PhonopyAtoms(symbols=[symbol], cell=np.asarray(at.cell[:]), scaled_positions=[[0, 0, 0]]),
                         supercell_matrix=2 * np.eye(3, dtype=int))
    ph.generate_displacements(distance=0.01)
    forces = []
    for sc in ph.supercells_with_displacements:
        s = Atoms(sc.symbols, cell=sc.cell, scaled_positions=sc.scaled_positions, pbc=True)
        s.calc = calc
        forces.append(s.get_forces())
    ph.forces = np.array(forces)
    ph.save(path)


#: tiny MACE elements: the seven metals and Pb (only Pb is left for self-distillation's built-in crystals)
Z_GLOBAL = (13, 28, 29, 46, 47, 78, 79, 82)


def global_spec(tmp: Path) -> dict:
    from pftflow.calculators import get_calculator

    model = tmp / "tiny.model"
    refs = tmp / "refs"
    if not refs.exists():
        refs.mkdir()
        torch.save(tiny_mace(atomic_numbers=Z_GLOBAL), model)
        for sym, a in (("Cu", 3.59), ("Al", 4.05), ("Ni", 3.52), ("Pd", 3.89), ("Pt", 3.92), ("Au", 4.08)):
            _write_reference(refs / f"{sym}.yaml", sym, a, EMT())
        # the validation material's reference is the base model's own: its loss can only grow as the model moves
        _write_reference(refs / "Ag.yaml", "Ag", 4.09, get_calculator({"backend": "mace", "model": str(model)}).ase_calculator())
        (refs / "index.csv").write_text("mp_id,formula,mace_mp0b3_bz_mae_THz\nPd,Pd,0.25\nPt,Pt,0.35\nCu,Cu,0.1\n")
        (tmp / "split.json").write_text(json.dumps({"train": ["Cu", "Al", "Ni", "mp-149"], "val": ["Ag"], "test": ["Pd", "Pt"]}))
    return {
        "name": "gl", "kind": "finetune_global", "store": {"path": str(tmp / "camp")},
        "materials": str(refs), "split": {"file": str(tmp / "split.json")},
        "training": {"base_model": {"backend": "mace", "model": str(model), "name": "tiny"}, "export_name": "tiny-pft", "run_dir": str(tmp / "runs"),
                     "fworker": None, "data": {"self_distillation": {"n_structures": 4, "n_eval": 2, "min_atoms": 8}},
                     "config": {**CFG, "epochs": 6, "early_stopping_patience": 1, "weights": {"stress": 0.0}, "cotrain_ratio": 1}},
        "settings": {"phonons": {"mesh": [4, 4, 4], "band_npoints": 5}, "relax_models": False},
    }


def test_global_split_distillation_early_stopping_and_rows(tmp_path):
    from pftflow.phonons.harmonic import PhononSettings
    from pftflow.results import load_results
    from pftflow.run import open_store, run_campaign
    from pftflow.training.data import from_phonon_reference
    from pftflow.training.evaluate import phonon_comparison
    from pftflow.training.loss import LossWeights
    from pftflow.calculators.energy_models import load_energy_model
    from pftflow.training.trainer import evaluate

    raw = global_spec(tmp_path)
    spec = parse_spec(raw)
    # by material, from a split file in MDR's format ("val"); Au is in the folder but not in the file, mp-149 the reverse
    assert spec.roles == {"train": ["Al", "Cu", "Ni"], "valid": ["Ag"], "test": ["Pd", "Pt"], "unused": ["Au"]}
    summary = run_campaign(spec, progress=False, plots=True)
    assert summary.failed_jobs == 0, summary.failures
    res = load_results(spec)
    # early stopping: patience 1, the validation loss rose after epoch 0 -> 2 of 6 epochs, best = epoch 0
    tr = res["train"]
    assert tr["stopped_early"] and tr["epochs_run"] == 2 and tr["epochs"] == 6 and tr["best_epoch"] == 0
    assert tr["valid_loss"][1] > tr["valid_loss"][0] == tr["best_valid_loss"]
    # the exported model holds the best EMA weights: its validation loss, evaluated here, is the best one
    model = load_energy_model({"backend": "mace", "model": tr["exported_model_path"]}, dtype="float64", device="cpu")
    valid = from_phonon_reference(tmp_path / "refs" / "Ag.yaml")
    assert evaluate(model, valid, LossWeights(**{**LossWeights().model_dump(), "stress": 0.0}))["loss"] == pytest.approx(tr["best_valid_loss"], rel=1e-9)
    # the yardstick: the base model's validation loss before the first epoch (its own reference: Hessian error only)
    base = load_energy_model({"backend": "mace", "model": str(tmp_path / "tiny.model")}, dtype="float64", device="cpu")
    assert evaluate(base, valid, LossWeights(**{**LossWeights().model_dump(), "stress": 0.0}))["loss"] == pytest.approx(tr["valid_loss_before"], rel=1e-9)
    assert tr["valid_loss_before"] < tr["best_valid_loss"] and tr["resumed_from_epoch"] is None and tr["continued_from"] is None
    assert tr["counts"] == {"train": 3, "valid": 1, "cotrain": 3 + 4}  # Al, Cu, Ni displacements + 4 distilled
    # self-distillation: the base model's labels (so its held-out error is exactly 0) on Pb, the one supported crystal
    # outside the campaign; the fine-tuned model drifts from it, measured
    store = open_store(spec)
    try:
        (dist,) = [d for _, d in _outputs(store, "gl", "self_distillation")]
    finally:
        store.close()
    assert [c.split()[0] for c in dist.crystals] == ["Pb"] and len(dist.cotrain) == 4 and len(dist.heldout) == 2
    ev = res["cotrain_eval"]
    assert ev["distillation_heldout"]["base"]["force_mae_eV_per_A"] == 0.0 < ev["distillation_heldout"]["finetuned"]["force_mae_eV_per_A"]
    assert ev["test_displacements"]["base"]["n_structures"] == 2 and tr["cotrain_errors"]["after"]["force_mae_eV_per_A"] > 0
    # rows: the test materials, base then fine-tuned; the base rows equal the training engine's own evaluation
    assert [(r["material_id"], r["model"], r["mode"]) for r in res["rows"]] == [
        ("Pd", "tiny", "base"), ("Pd", "tiny-pft", "full"), ("Pt", "tiny", "base"), ("Pt", "tiny-pft", "full")]
    settings = PhononSettings(mesh=[4, 4, 4], band_npoints=5)
    for r in res["rows"]:
        if r["mode"] == "base":
            direct = phonon_comparison({"backend": "mace", "model": str(tmp_path / "tiny.model")}, tmp_path / "refs" / f"{r['material_id']}.yaml", settings)
            for k in ("omega_max_K_ref", "omega_max_K", "mesh_mae_THz", "entropy_error_300K_J_per_K_mol"):
                assert r[k] == pytest.approx(direct[k], rel=1e-6, abs=1e-9), k
    assert [r["mace_mp0b3_bz_mae_THz"] for r in res["rows"]] == [0.25, 0.25, 0.35, 0.35] and res["baseline"]["mesh_mae_THz"] == pytest.approx(0.30)
    ch, s = res["change"]["tiny-pft"], res["summary"]
    assert ch["mesh_mae_THz"] == pytest.approx(s["tiny-pft"]["mesh_mae_THz"] / s["tiny"]["mesh_mae_THz"] - 1)
    assert {Path(p).name for p in summary.plots} == {"Pd_bands.png", "Pt_bands.png"}


def test_seeded_split_and_split_files(tmp_path):
    from pftflow.spec.finetune_global import MaterialSplit, read_split_file

    ids = [f"mp-{i}" for i in range(40)]
    a = MaterialSplit(n_test=8, n_valid=4, seed=7).assign(ids)
    b = MaterialSplit(n_test=8, n_valid=4, seed=7).assign(list(reversed(ids)))  # the input order does not matter
    assert {k: set(v) for k, v in a.items()} == {k: set(v) for k, v in b.items()}
    assert (len(a["train"]), len(a["valid"]), len(a["test"])) == (28, 4, 8) and not set(a["train"]) & set(a["test"])
    assert MaterialSplit(n_test=8, n_valid=4, seed=8).assign(ids)["test"] != a["test"]
    f = MaterialSplit(seed=0).assign(ids)  # fractions 0.1 / 0.25
    assert (len(f["valid"]), len(f["test"])) == (4, 10)
    (tmp_path / "s.csv").write_text("material_id,split\nmp-1,train\nmp-2,validation\nmp-3,test\n")
    assert read_split_file(tmp_path / "s.csv") == {"train": ["mp-1"], "valid": ["mp-2"], "test": ["mp-3"]}
    (tmp_path / "s.json").write_text(json.dumps([{"id": "mp-1", "split": "train"}, {"id": "mp-3", "split": "test"}]))
    assert read_split_file(tmp_path / "s.json") == {"train": ["mp-1"], "valid": [], "test": ["mp-3"]}
    (tmp_path / "bad.json").write_text(json.dumps({"train": [], "holdout": []}))
    with pytest.raises(ValueError, match="unknown keys"):
        read_split_file(tmp_path / "bad.json")


def test_mdr_split_file_reads(shared_data):
    from pftflow.spec.finetune_global import read_split_file

    roles = read_split_file(shared_data / "mdr" / "pbe_mdr_split.json")
    assert (len(roles["train"]), len(roles["valid"]), len(roles["test"])) == (8510, 448, 1000)


@pytest.mark.parametrize("mutate, fragment", [
    (lambda r: r["sampling"].update(n_structures=10), "sampling.n_structures: the number of structures follows from training.n_structures"),
    (lambda r: r["training"].update(modes=["delta", {"mode": "frozen"}]), "training.modes[1].mode: mode 'frozen' needs 'freeze'"),
    (lambda r: r["training"].update(modes=["delta", "delta"]), "duplicate mode name 'delta'"),
    (lambda r: r["training"].update(n_structures=[2, 2]), "N values repeat"),
    (lambda r: r["training"]["config"].update(finetune={"mode": "lora"}), "config.finetune is set per mode"),
    (lambda r: r["training"].update(modes=[{"mode": "delta", "config": {"lr": -1}}]), "config of mode 'delta': lr"),
    (lambda r: r["mode_scans"].update(n_points=8), "n_points must be odd"),
])
def test_per_material_spec_errors(tmp_path, mutate, fragment):
    raw = per_material_spec(tmp_path)
    mutate(raw)
    with pytest.raises(SpecError) as exc:
        parse_spec(raw, tmp_path / "spec.yaml")
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(f"{tmp_path / 'spec.yaml'}: ") and fragment in msg and "e.g." in msg, msg


def test_global_spec_errors(tmp_path):
    raw = global_spec(tmp_path)
    bad = json.loads(json.dumps(raw))
    bad["split"] = {"file": raw["split"]["file"], "n_test": 2}
    with pytest.raises(SpecError, match="give a split file or the seeded split"):
        parse_spec(bad)
    (tmp_path / "none.json").write_text(json.dumps({"train": ["Cu"], "test": []}))
    bad["split"] = {"file": str(tmp_path / "none.json")}
    with pytest.raises(SpecError, match="no test material"):
        parse_spec(bad)
    bad["split"], bad["materials"] = {}, str(tmp_path / "nowhere")
    with pytest.raises(SpecError, match="is not a folder"):
        parse_spec(bad)


def test_early_stopping_stops_and_stays_stopped_on_resume(tmp_path):
    """TrainConfig.early_stopping_patience (training/trainer.py): a validation loss that never improves (lr
    1e-30: the weights do not move) stops after 1 + patience epochs; a rerun on the same work directory resumes
    from the checkpoint and stops at once, with the same history."""
    from pftflow.training.data import LabelledStructure, TrainingData
    from pftflow.calculators.energy_models import MACEEnergyModel
    from pftflow.training.trainer import TrainConfig, train

    atoms = bulk("Cu", "fcc", a=3.59).repeat(2)
    atoms.positions += np.random.default_rng(0).normal(scale=0.05, size=atoms.positions.shape)
    atoms.calc = EMT()
    s = LabelledStructure(atoms.copy(), atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress())
    data = TrainingData([s], [s])
    cfg = TrainConfig(epochs=6, lr=1e-30, dtype="float64", progress=False, early_stopping_patience=2)
    assert "early_stopping_patience" not in TrainConfig().as_dict()  # unset: the keys of existing runs do not change
    _, res = train(MACEEnergyModel(tiny_mace(atomic_numbers=(29,))), data, cfg, tmp_path / "run")
    assert [h["epoch"] for h in res.history] == [0, 1, 2] and res.best_epoch == 0
    assert res.history[2]["valid"]["loss"] == res.history[0]["valid"]["loss"]
    _, again = train(MACEEnergyModel(tiny_mace(atomic_numbers=(29,))), data, cfg, tmp_path / "run")
    assert again.resumed_from_epoch == 3 and again.history == res.history
    _, full = train(MACEEnergyModel(tiny_mace(atomic_numbers=(29,))), data, cfg.model_copy(update={"early_stopping_patience": None}), tmp_path / "all")
    assert len(full.history) == 6


def test_global_fold_max_atoms_reaches_the_training_data_only_when_set(tmp_path):
    """training.data.fold_max_atoms goes into the train / validation phonon-reference sources (so into the training
    data's content key) and is absent when unset (the keys of unfolded runs stay as they were)."""
    from pftflow.flows.finetune_global import build_global
    from pftflow.flows.training import build_structures
    from pftflow.run import open_store

    def data_sources(raw):
        spec = parse_spec(raw)
        store = open_store(spec)
        try:
            flow, _ = build_global(spec, store)
        finally:
            store.close()
        (job,) = [j for j in flow.jobs if j.name.startswith("training_data")]
        return job.function_args[0], job.function_args[1], job.metadata

    raw = global_spec(tmp_path)
    train, valid, meta = data_sources(raw)
    assert all("fold_max_atoms" not in s for s in train + valid)
    raw["training"]["data"]["fold_max_atoms"] = 4
    train_f, valid_f, meta_f = data_sources(raw)
    assert {s["fold_max_atoms"] for s in train_f + valid_f if s["type"] == "phonon_reference"} == {4}
    assert meta_f != meta  # another content key
    (cu,) = build_structures([s for s in train_f if s["material_id"] == "Cu"])
    assert len(cu.atoms) == 4 and cu.hessian_eV_per_A2.shape == (12, 12)  # 2x2x2 fcc (8 atoms) folded to 4
