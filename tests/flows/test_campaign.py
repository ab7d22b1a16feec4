"""End-to-end harmonic campaign on cheap EMT calculators (no shared data, no GPU).

EMT (ase.calculators.emt) stands in for the DFT reference and for the models: with
``relax_models: false`` a model identical to the reference must give zero errors, which checks
the whole chain (displacements -> forces -> force constants -> analysis -> comparison) for
self-consistency; a different model (EMT with the reference relaxed away, i.e. relaxed model)
must give non-zero errors.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from pftflow.campaign import CampaignSpec, SpecError, load_results, run_campaign

SPEC = """
name: emt-test
kind: phonons
store: {{path: {store}}}
materials:
  - id: Cu
    source: "fcc Cu a = 3.61 Å"
    structure:
      cell_A: [[0.0, 1.805, 1.805], [1.805, 0.0, 1.805], [1.805, 1.805, 0.0]]
      species: [Cu]
      frac_coords: [[0, 0, 0]]
    supercell_matrix: [3, 3, 3]
  - id: Al
    source: "fcc Al a = 4.05 Å"
    structure:
      cell_A: [[0.0, 2.025, 2.025], [2.025, 0.0, 2.025], [2.025, 2.025, 0.0]]
      species: [Al]
      frac_coords: [[0, 0, 0]]
    supercell_matrix: [3, 3, 3]
reference:
  mode: compute
  calculator: {{backend: ase, name: EMT-ref, import_path: "ase.calculators.emt:EMT"}}
models:
  - {{backend: ase, name: EMT-same, import_path: "ase.calculators.emt:EMT"}}
settings:
  phonons: {{mesh: [8, 8, 8], band_npoints: 11}}
  relax_models: {relax_models}
"""


def _spec(tmp_path, relax_models=False, name="spec.yaml"):
    p = tmp_path / name
    p.write_text(SPEC.format(store=tmp_path / "camp", relax_models=str(relax_models).lower()))
    return p


def test_identical_model_gives_zero_errors_and_rerun_reuses_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = CampaignSpec.from_yaml(_spec(tmp_path))
    summary = run_campaign(spec, progress=False, plots=True)
    assert summary["failed_jobs"] == 0, summary
    res = load_results(spec)
    rows = res["rows"]
    assert [(r["material_id"], r["model"]) for r in rows] == [("Cu", "EMT-same"), ("Al", "EMT-same")]
    for r in rows:
        assert not r["failed"]
        assert r["omega_max_K"] == pytest.approx(r["omega_max_K_ref"], abs=1e-9)
        assert r["omega_max_K"] > 100  # EMT Cu/Al phonons are a few THz
        assert r["mesh_mae_THz"] == pytest.approx(0.0, abs=1e-9)
        assert r["stable"] and r["stable_ref"]
    assert len(summary["plots"]) == 2 and all(p.endswith("_bands.png") for p in summary["plots"])

    # second run: every stage is reused from the store, only the parameters record runs
    again = run_campaign(CampaignSpec.from_yaml(_spec(tmp_path)), progress=False, plots=False)
    assert again["reused"]["reference"] == ["Cu", "Al"]
    assert again["reused"]["model"] == ["Cu/EMT-same", "Al/EMT-same"]
    assert again["jobs_run"] == 1


def test_relaxed_model_differs_and_store_is_readable_from_fresh_process(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec_path = _spec(tmp_path, relax_models=True)
    summary = run_campaign(CampaignSpec.from_yaml(spec_path), progress=False, plots=False)
    assert summary["failed_jobs"] == 0
    # the cells above are not EMT's equilibrium, so the relaxed model's phonons differ
    res = load_results(CampaignSpec.from_yaml(spec_path))
    assert all(abs(r["omega_max_K"] - r["omega_max_K_ref"]) > 1.0 for r in res["rows"])

    code = textwrap.dedent(
        f"""
        import json
        from pftflow.store import make_job_store
        st = make_job_store({str(tmp_path / 'camp')!r}); st.connect()
        out = {{}}
        for d in st.query({{}}, properties=["uuid", "name"]):
            o = st.get_output(d["uuid"], load=True)
            out[d["name"]] = sorted(o) if isinstance(o, dict) else type(o).__name__
        print(json.dumps(out))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    stored = json.loads(proc.stdout.strip().splitlines()[-1])
    names = set(stored)
    for stage in ("record_parameters", "reference displacements Cu", "reference forces Cu", "reference analysis Cu",
                  "relax Cu EMT-same", "displacements Cu EMT-same", "forces Cu EMT-same", "analysis Cu EMT-same",
                  "compare Cu EMT-same"):
        assert stage in names, f"{stage} missing from the store: {sorted(names)}"
    assert {"spec", "versions"} <= set(stored["record_parameters"])
    assert {"structure", "energy_eV", "converged"} <= set(stored["relax Cu EMT-same"])
    assert {"dataset", "supercells"} <= set(stored["displacements Cu EMT-same"])
    assert {"forces_eV_per_A", "energies_eV"} <= set(stored["forces Cu EMT-same"])
    assert {"force_constants", "result", "settings"} <= set(stored["analysis Cu EMT-same"])


def test_spec_errors_name_the_field(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: x\nmodels: [{backend: nope}]\nmaterials: [a]\n")
    with pytest.raises(SpecError, match=r"bad.yaml: models\[0\]: 'backend' must be one of"):
        CampaignSpec.from_yaml(p)
    p.write_text("name: x\nmodels: [sevennet]\nmaterials: [does/not/exist.yaml]\n")
    with pytest.raises(SpecError, match="reference_file 'does/not/exist.yaml' does not exist"):
        CampaignSpec.from_yaml(p)
    p.write_text("name: x\nmodels: [sevennet]\nmaterials: [{id: A, structure: {cell_A: [[1,0,0]]}}]\nreference: {mode: compute, calculator: {backend: ase, import_path: 'ase.calculators.emt:EMT'}}\n")
    with pytest.raises(SpecError, match=r"materials\[0\] \(A\): 'structure' needs cell_A"):
        CampaignSpec.from_yaml(p)


def test_cli_results_json(tmp_path, monkeypatch):
    from pftflow.cli import main

    monkeypatch.chdir(tmp_path)
    spec_path = _spec(tmp_path)
    assert main(["run", str(spec_path), "--no-progress", "--no-plots"]) == 0
    import io
    from contextlib import redirect_stdout

    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(["results", "--format", "json"]) == 0  # last campaign run from this directory
    data = json.loads(buf.getvalue())
    assert len(data["rows"]) == 2
    for r in data["rows"]:
        for key in ("omega_max_K", "entropy_300K_J_per_K_mol", "free_energy_300K_kJ_per_mol", "heat_capacity_300K_J_per_K_mol", "stable"):
            assert key in r, key
    assert np.isfinite(data["summary"]["EMT-same"]["omega_max_mae_K"])


def _last_json(text: str) -> dict:
    """The JSON object the CLI prints last (FireWorks may log lines before it)."""
    start = 0 if text.startswith("{") else text.rindex("\n{\n") + 1
    return json.loads(text[start:])


def test_fireworks_submit_and_launch_embedded(tmp_path):
    """`pftflow submit --launch` on FireWorks' mongomock LaunchPad runs every job; a second submit
    only adds the stages that are not yet in the store (here: none but the parameters record)."""
    spec_path = _spec(tmp_path)
    env = {k: v for k, v in __import__("os").environ.items() if k != "MONGOMOCK_SERVERSTORE_FILE"}
    run = lambda *a: subprocess.run([sys.executable, "-m", "pftflow.cli", *a], cwd=tmp_path, env=env, capture_output=True, text=True)  # noqa: E731
    first = run("submit", str(spec_path), "--launch")
    assert first.returncode == 0, first.stderr[-3000:]
    out = _last_json(first.stdout)
    assert out["states"] == {"COMPLETED": out["fireworks_added"]}
    second = run("submit", str(spec_path))
    out2 = _last_json(second.stdout)
    assert out2["fireworks_added"] == 1 and out2["reused"]["model"] == ["Cu/EMT-same", "Al/EMT-same"]


def test_relaxed_reference_and_identically_relaxed_model_agree(tmp_path, monkeypatch):
    """reference.relax relaxes the cell with the reference calculator first; a model that is the
    same calculator, relaxed with the same protocol, then reaches the same cell and phonons."""
    monkeypatch.chdir(tmp_path)
    text = SPEC.format(store=tmp_path / "camp", relax_models="true").replace(
        'import_path: "ase.calculators.emt:EMT"}\nmodels', 'import_path: "ase.calculators.emt:EMT"}\n  relax: {fmax_eV_per_A: 1.0e-5, steps: 300}\nmodels'
    )
    text = text.replace("  relax_models: true", "  relax_models: true\n  relax: {fmax_eV_per_A: 1.0e-5, steps: 300}")
    p = tmp_path / "spec.yaml"
    p.write_text(text)
    spec = CampaignSpec.from_yaml(p)
    assert spec.reference["relax"] == {"fmax_eV_per_A": 1e-5, "steps": 300}
    summary = run_campaign(spec, progress=False, plots=False)
    assert summary["failed_jobs"] == 0, summary
    for r in load_results(spec)["rows"]:
        assert r["relax_converged"] is True
        # same minimum to ~1e-5 eV/Å forces: ω_max equal to far better than the 1 K the unrelaxed test sees
        assert r["omega_max_K"] == pytest.approx(r["omega_max_K_ref"], abs=0.05)
        assert r["mesh_mae_THz"] < 1e-3


def test_failing_model_is_reported_and_others_still_run(tmp_path, monkeypatch):
    """A model whose calculator cannot be built fails its own jobs only: the exit summary counts
    the failure (non-zero for the CLI) and the other model's results are complete."""
    monkeypatch.chdir(tmp_path)
    text = SPEC.format(store=tmp_path / "camp", relax_models="false").replace(
        "models:\n", 'models:\n  - {backend: ase, name: broken, import_path: "ase.calculators.emt:NoSuchCalc"}\n'
    )
    p = tmp_path / "spec.yaml"
    p.write_text(text)
    spec = CampaignSpec.from_yaml(p)
    summary = run_campaign(spec, progress=False, plots=False)
    assert summary["failed_jobs"] == 2  # the forces job of "broken" on Cu and on Al
    assert all("forces" in f and "broken" in f for f in summary["job_failures"])
    rows = load_results(spec)["rows"]
    assert [(r["material_id"], r["model"]) for r in rows] == [("Cu", "EMT-same"), ("Al", "EMT-same")]
