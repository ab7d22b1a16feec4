"""The ``dataset`` campaign kind end to end at toy scale.

* EMT teacher on Cu and Al (no shared data, ~15 s): every stored label equals a direct EMT calculation
  of the stored structure; every set of a material shares its supercell; the stored structures are the
  ones ``sample_set`` makes from the seed; results statistics equal numpy on the stored arrays; a rerun
  reuses every job, a changed seed re-runs only that set; ``pftflow export`` writes extxyz whose
  ``REF_*`` keys read back (ase, and the fine-tuning engine's reader) equal the stored values; an
  extxyz import comes back unchanged.
* GPAW on a 2-atom Si cell (skipped without GPAW): momentum conservation, restoring forces, and the
  stored forces equal a fresh GPAW calculation of the same structure.
* Import of phonopy / atomate2 displacement datasets (shared data): the labels are phonopy's forces.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io import read, write

from pftflow.calculators.gpaw_reference import gpaw_available
from pftflow.cli import main as cli
from pftflow.flows.dataset import import_labelled_set, load_labelled_sets
from pftflow.results import load_results
from pftflow.run import open_store, run_campaign
from pftflow.sampling import SupercellRule, SupercellWarning, choose_supercell, sample_set
from pftflow.spec import load_spec, parse_spec, plan

EMT_SPEC = {"backend": "ase", "name": "EMT", "import_path": "ase.calculators.emt:EMT"}


def fcc(symbol: str, a: float) -> dict:
    h = a / 2
    return {"id": symbol, "structure": {"cell_A": [[0, h, h], [h, 0, h], [h, h, 0]], "species": [symbol], "frac_coords": [[0, 0, 0]]}}


def emt_spec(store, extxyz) -> dict:
    return {
        "name": "ds-emt",
        "kind": "dataset",
        "store": {"path": str(store)},
        "materials": [fcc("Cu", 3.61), fcc("Al", 4.05), {"id": "Cu-upstream", "extxyz": str(extxyz)}],
        "supercell": {"min_length_A": 7.0, "max_atoms": 64},
        "sampling": [
            {"kind": "rattle", "n_structures": 3, "amplitude_A": 0.05, "seed": 1},
            {"kind": "mc_rattle", "n_structures": 2, "amplitude_A": 0.08, "min_distance_A": 2.0, "seed": 2},
            {"kind": "rattle_relax", "n_structures": 2, "amplitude_A": 0.1, "relax_steps": 8, "seed": 3},
            {"kind": "displacements"},
        ],
        "labeller": EMT_SPEC,
    }


def _emt_labels(atoms):
    a = atoms.copy()
    a.calc = EMT()
    return a.get_potential_energy(), a.get_forces(), a.get_stress(voigt=True)


def _upstream(path):
    """Two rattled Cu cells labelled by EMT, written with REF_* keys (the import source)."""
    frames = []
    for k in range(2):
        a = bulk("Cu", "fcc", a=3.61, cubic=True)
        a.positions += np.random.default_rng(k).normal(0, 0.03, a.positions.shape)
        e, f, s = _emt_labels(a)
        a.info.update(REF_energy=e, REF_stress=s)
        a.arrays["REF_forces"] = f
        frames.append(a)
    write(str(path), frames, format="extxyz")
    return frames


def test_dataset_emt_end_to_end(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    upstream = _upstream(tmp_path / "upstream.extxyz")
    raw = emt_spec(tmp_path / "camp", tmp_path / "upstream.extxyz")
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(raw))
    spec = load_spec(spec_path)
    p = plan(spec)
    assert p["n_jobs"] == 1 + 2 * 4 * 3 + 1 and p["supercells"]["Cu"]["n_atoms"] == 32 and p["supercells"]["Al"]["n_atoms"] == 32

    summary = run_campaign(spec, progress=False)
    assert summary.failed_jobs == 0, summary.text()
    assert summary.jobs_run == p["n_jobs"]

    store = open_store(spec)
    try:
        docs = load_labelled_sets(spec, store)
    finally:
        store.close()
    assert [(d.material_id, d.name) for d in docs] == [(m, s) for m in ("Cu", "Al") for s in ("rattle", "mc_rattle", "rattle_relax", "displacements")] + [("Cu-upstream", "import")]

    for mid, a in (("Cu", 3.61), ("Al", 4.05)):
        mine = [d for d in docs if d.material_id == mid]
        unit = spec.materials[spec.material_ids.index(mid)].structure.atoms()
        smat = choose_supercell(unit, SupercellRule(min_length_A=7.0, max_atoms=64)).supercell_matrix
        for d in mine:
            # one supercell matrix and cell for every set of the material
            assert np.array_equal(d.supercell_matrix, smat), (mid, d.name)
            assert all(np.allclose(c, 2 * a * np.eye(3)) for c in d.structures.cells_A), (mid, d.name)
            # labels: exactly what the teacher gives for the stored structure
            for k, atoms in enumerate(d.to_atoms()):
                e, f, s = _emt_labels(atoms)
                assert d.energies_eV[k] == pytest.approx(e, abs=1e-10)
                assert np.allclose(d.forces_eV_per_A[k], f, atol=1e-10, rtol=0)
                assert np.allclose(d.stresses_eV_per_A3[k], s, atol=1e-12, rtol=0)
            assert d.checks["ok"] and d.checks["duplicates"] == [], (mid, d.name, d.checks)
            assert d.provenance["code"] == "ase" and d.provenance["sampling"]["kind"] == d.kind
        # the structures are the seeded sample (same seed -> same set, per-structure seeds stored)
        rat = next(d for d in mine if d.name == "rattle")
        again = sample_set(unit, smat, raw["sampling"][0])
        assert np.array_equal(rat.structures.positions_A, np.array([x.positions for x in again.structures]))
        assert rat.provenance["seeds"] == again.seeds and len(set(again.seeds)) == 3
        mc = next(d for d in mine if d.name == "mc_rattle")
        assert mc.checks["min_distance_A"] >= 2.0
        assert next(d for d in mine if d.name == "rattle_relax").provenance["relax_calculator"]["name"] == "EMT"  # default: the labeller

    # results: counts and statistics are those of the stored arrays
    res = load_results(spec)
    assert len(res["rows"]) == len(docs)
    for row, d in zip(res["rows"], docs):
        f = np.asarray(d.forces_eV_per_A)
        assert (row["material_id"], row["set"], row["n_structures"], row["n_atoms"]) == (d.material_id, d.name, len(f), f.shape[1])
        assert row["force_rms_eV_per_A"] == pytest.approx(np.sqrt(np.mean(f**2)), rel=1e-12)
        assert row["force_max_eV_per_A"] == pytest.approx(np.linalg.norm(f, axis=-1).max(), rel=1e-12)
        e = np.asarray(d.energies_eV) / f.shape[1]
        assert row["energy_mean_eV_per_atom"] == pytest.approx(e.mean(), rel=1e-12)
        assert row["energy_std_eV_per_atom"] == pytest.approx(e.std(), rel=1e-12, abs=1e-15)
    assert res["summary"]["Cu"]["n_structures"] == 3 + 2 + 2 + 1

    # the imported extxyz comes back unchanged (labels and positions)
    imp = docs[-1]
    assert imp.labeller == "import:extxyz" and imp.provenance["source"]["format"] == "extxyz"
    for k, fr in enumerate(upstream):
        assert imp.energies_eV[k] == fr.info["REF_energy"]
        assert np.allclose(imp.forces_eV_per_A[k], fr.arrays["REF_forces"], atol=1e-8, rtol=0)
        assert np.array_equal(imp.stresses_eV_per_A3[k], fr.info["REF_stress"])

    # export: REF_* keys read back equal the stored values (info in full precision, per-atom arrays 8 decimals)
    out = tmp_path / "export" / "data.extxyz"
    assert cli(["export", str(spec_path), "--out", str(out)]) == 0
    frames = read(str(out), index=":")
    assert len(frames) == sum(d.n_structures for d in docs)
    i = 0
    for d in docs:
        for k in range(d.n_structures):
            fr = frames[i]
            i += 1
            assert (fr.info["material_id"], fr.info["config_type"]) == (d.material_id, d.name)
            assert fr.info["REF_energy"] == d.energies_eV[k]
            assert np.array_equal(fr.info["REF_stress"], d.stresses_eV_per_A3[k])
            assert np.allclose(fr.arrays["REF_forces"], d.forces_eV_per_A[k], atol=1e-8, rtol=0)
            assert np.allclose(fr.positions, d.structures.positions_A[k], atol=1e-8, rtol=0)
    # ... and the fine-tuning engine takes them directly
    from pftflow.training.data import read_extxyz

    engine = read_extxyz(out)
    direct = [s for d in docs for s in d.to_labelled_structures()]
    assert len(engine) == len(direct)
    for a, b in zip(engine, direct):
        assert a.energy_eV == b.energy_eV and a.material_id == b.material_id
        assert np.allclose(a.forces_eV_per_A, b.forces_eV_per_A, atol=1e-8) and np.allclose(a.stress_eV_per_A3, b.stress_eV_per_A3, atol=1e-15)

    # rerun: every job reused; a changed seed re-runs that set's three jobs per material only
    again = run_campaign(load_spec(spec_path), progress=False)
    assert again.jobs_run == 1 and sorted(again.reused["sets"]) == sorted(f"{d.material_id}/{d.name}" for d in docs)
    raw["sampling"][0]["seed"] = 7
    spec_path.write_text(yaml.safe_dump(raw))
    changed = run_campaign(load_spec(spec_path), progress=False)
    assert changed.failed_jobs == 0 and changed.jobs_run == 1 + 2 * 3
    assert "Cu/rattle" not in changed.reused["sets"] and "Cu/mc_rattle" in changed.reused["sets"]


def test_oversized_supercell_warns_at_plan_time(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    raw = {"name": "big", "kind": "dataset", "materials": [fcc("Cu", 3.61)], "supercell": {"min_length_A": 10.0, "max_atoms": 100}, "labeller": EMT_SPEC}
    spec = parse_spec(raw)
    with pytest.warns(SupercellWarning, match="Cu: .*108 atoms, more than supercell.max_atoms = 100"):
        p = plan(spec)
    assert p["supercells"]["Cu"]["exceeds_max_atoms"]
    spec = parse_spec({**raw, "supercell": {"min_length_A": 10.0, "max_atoms": 100, "on_exceed": "error"}})
    with pytest.raises(ValueError, match="108 atoms"):
        plan(spec)


@pytest.mark.skipif(not gpaw_available(), reason="GPAW (with gpaw-data setups) not installed: run scripts/install_gpaw.sh")
def test_dataset_gpaw_two_atom_si(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    kwargs = {"ecut_ev": 200.0, "kpoint_density": 1.5}
    raw = {
        "name": "ds-gpaw",
        "kind": "dataset",
        "store": {"path": str(tmp_path / "camp")},
        "materials": [{"id": "Si", "structure": {"cell_A": [[0, 2.7155, 2.7155], [2.7155, 0, 2.7155], [2.7155, 2.7155, 0]],
                                                  "species": ["Si", "Si"], "frac_coords": [[0, 0, 0], [0.25, 0.25, 0.25]]},
                       "supercell_matrix": [1, 1, 1]}],
        "sampling": {"kind": "rattle", "n_structures": 2, "amplitude_A": 0.05, "seed": 0},
        "labeller": {"backend": "ase", "name": "GPAW-PBE", "import_path": "pftflow.calculators.gpaw_reference:make_gpaw_calculator", "kwargs": kwargs},
    }
    spec = parse_spec(raw)
    summary = run_campaign(spec, progress=False)
    assert summary.failed_jobs == 0, summary.text()
    store = open_store(spec)
    try:
        (doc,) = load_labelled_sets(spec, store)
    finally:
        store.close()
    unit = spec.materials[0].structure.atoms()
    for k, atoms in enumerate(doc.to_atoms()):
        f = doc.forces_eV_per_A[k]
        assert np.abs(f.sum(axis=0)).max() < 1e-3  # momentum conservation
        u = atoms.positions - unit.positions
        assert np.sum(f * (u - u.mean(axis=0))) < 0  # harmonic restoring forces: sum F.u = -u.Phi.u < 0
        assert np.abs(f).max() > 0.05
    from pftflow.calculators.gpaw_reference import make_gpaw_calculator

    a = doc.to_atoms()[0]
    a.calc = make_gpaw_calculator(**kwargs)
    assert np.allclose(doc.forces_eV_per_A[0], a.get_forces(), atol=2e-4, rtol=0)
    assert doc.energies_eV[0] == pytest.approx(a.get_potential_energy(), abs=1e-4)
    assert doc.provenance["settings"] == kwargs
    assert doc.provenance["pseudopotentials"]["Si"].startswith("Si.PBE")


@pytest.mark.parametrize("rel,fmt", [("phonopy/phonopy_params_Si.yaml", "phonopy"), ("atomate2_phonopy/mp-1000/phonopy.yaml.xz", "atomate2")])
def test_import_displacements_labels_are_phonopys_forces(shared_data, rel, fmt):
    """phonopy and atomate2 displacement datasets imported without calculation: the labels are the
    forces phonopy itself reads from the file."""
    import phonopy

    path = shared_data / rel
    doc = import_labelled_set.original({"id": "x", "reference_file": str(path)})
    ph = phonopy.load(str(path), produce_fc=False)
    assert doc.n_structures == len(ph.supercells_with_displacements) and doc.labeller == f"import:{fmt}"
    assert np.array_equal(doc.forces_eV_per_A, np.asarray(ph.forces))
    assert np.allclose(doc.structures.positions_A[0], ph.supercells_with_displacements[0].positions, atol=1e-12)
    assert np.array_equal(doc.supercell_matrix, ph.supercell_matrix)
    assert doc.provenance["source"]["sha256"]
