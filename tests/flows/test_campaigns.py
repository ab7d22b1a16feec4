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

from pftflow.results import load_results
from pftflow.run import run_campaign
from pftflow.spec import SpecError, load_spec


def test_identical_model_gives_zero_errors_and_rerun_reuses_store(tmp_path, monkeypatch, emt_spec):
    monkeypatch.chdir(tmp_path)
    spec = load_spec(emt_spec(tmp_path))
    summary = run_campaign(spec, progress=False, plots=True)
    assert summary.failed_jobs == 0, summary.text()
    res = load_results(spec)
    rows = res["rows"]
    assert [(r["material_id"], r["model"]) for r in rows] == [("Cu", "EMT-same"), ("Al", "EMT-same")]
    for r in rows:
        assert not r["failed"]
        assert r["omega_max_K"] == pytest.approx(r["omega_max_K_ref"], abs=1e-9)
        assert r["omega_max_K"] > 100  # EMT Cu/Al phonons are a few THz
        assert r["mesh_mae_THz"] == pytest.approx(0.0, abs=1e-9)
        assert r["stable"] and r["stable_ref"]
    assert len(summary.plots) == 2 and all(p.endswith("_bands.png") for p in summary.plots)

    # second run: every stage is reused from the store, only the parameters record runs
    again = run_campaign(load_spec(emt_spec(tmp_path)), progress=False, plots=False)
    assert again.reused["reference"] == ["Cu", "Al"]
    assert again.reused["model"] == ["Cu/EMT-same", "Al/EMT-same"]
    assert again.jobs_run == 1

    # another campaign (other name, same store) reuses every job by key: its results show the reused
    # rows with the same numbers, not "missing" (they were stored under the first campaign's name)
    other = emt_spec(tmp_path, file="other.yaml", name="emt-other")
    third = run_campaign(load_spec(other), progress=False, plots=False)
    assert third.jobs_run == 1 and third.reused["model"] == ["Cu/EMT-same", "Al/EMT-same"]
    rows2 = load_results(load_spec(other))["rows"]
    assert [(r["material_id"], r["model"], r["status"]) for r in rows2] == [("Cu", "EMT-same", "ok"), ("Al", "EMT-same", "ok")]
    assert [r["omega_max_K"] for r in rows2] == [r["omega_max_K"] for r in rows]


@pytest.mark.blas_sensitive
def test_relaxed_model_differs_and_store_is_readable_from_fresh_process(tmp_path, monkeypatch, emt_spec, pinned):
    monkeypatch.chdir(tmp_path)
    spec_path = emt_spec(tmp_path, relax_models=True)
    summary = run_campaign(load_spec(spec_path), progress=False, plots=False)
    assert summary.failed_jobs == 0, summary.text()
    # the cells above are not EMT's equilibrium, so the relaxed model's phonons differ
    res = load_results(load_spec(spec_path))
    assert all(abs(r["omega_max_K"] - r["omega_max_K_ref"]) > 1.0 for r in res["rows"])
    # ω_max and the BZ errors: the numbers printed before the typed-document refactor (pftflow 0.1, commit 8833778);
    # F, S, C_V: with the three Γ acoustic modes left out of the sums (PhononSettings.exclude_gamma_acoustic, the
    # default since issue 17; with them in, S moved by 2 % between OpenBLAS kernels).
    expected = {
        "Cu": (336.85803695910437, 323.58610125534597, 30.948324791136237, -1.3274460951728673, 23.320229193070993, 0.2012975147290911, 0.20845678324258896),
        "Al": (354.1353770696744, 330.38301433879053, 30.47546126740736, -1.1527029488872038, 23.219349188884937, 0.3544027326781078, 0.3692794013516309),
    }
    keys = ("omega_max_K", "omega_max_K_ref", "entropy_300K_J_per_K_mol", "free_energy_300K_kJ_per_mol",
            "heat_capacity_300K_J_per_K_mol", "mesh_mae_THz", "band_rmse_THz")
    # Relative tolerances from benchmarks/cross_kernel.py (2026-12-06, AMD EPYC, 7 OpenBLAS kernels: unset=SkylakeX,
    # Haswell, Prescott, SkylakeX, Zen, SandyBridge, Nehalem; docs/metrics.md): largest spread of ω_max, S, F, C_V
    # 6.5e-13, of the band RMSE 3.0e-12, of the mesh MAE 1.3e-9 (the Γ acoustic noise, ~1e-7 THz, enters it with
    # weight 1/(N_q n_b)). Tolerances are 30-150x those spreads.
    rel = dict.fromkeys(keys, 1e-10) | {"mesh_mae_THz": 1e-7}
    for r in res["rows"]:
        for k, want in zip(keys, expected[r["material_id"]]):
            assert pinned(f"{k} {r['material_id']}", r[k]) == pytest.approx(want, rel=rel[k], abs=0), (r["material_id"], k)

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
    for stage in ("record_parameters", "displacements Cu reference", "forces Cu reference", "analysis Cu reference",
                  "relax Cu EMT-same", "displacements Cu EMT-same", "forces Cu EMT-same", "analysis Cu EMT-same",
                  "compare Cu EMT-same"):
        assert stage in names, f"{stage} missing from the store: {sorted(names)}"
    # every output is a typed document (@class), arrays as blobs
    assert {"spec", "versions", "@class"} <= set(stored["record_parameters"])
    assert {"structure", "energy_eV", "converged"} <= set(stored["relax Cu EMT-same"])
    assert {"dataset", "supercells"} <= set(stored["displacements Cu EMT-same"])
    assert {"forces_eV_per_A", "energies_eV"} <= set(stored["forces Cu EMT-same"])
    assert {"force_constants_eV_per_A2", "result", "settings"} <= set(stored["analysis Cu EMT-same"])


def test_every_job_carries_identity_and_a_chained_key(tmp_path, monkeypatch, emt_spec):
    """Jobs are tagged by the maker with campaign, kind, material, model, stage and a content key;
    the key changes when a setting that determines the output changes, and only downstream."""
    from pftflow.flows.phonons_campaign import build_phonons
    from pftflow.store import make_job_store

    monkeypatch.chdir(tmp_path)
    store = make_job_store(tmp_path / "camp")
    store.connect()
    flow, _ = build_phonons(load_spec(emt_spec(tmp_path)), store)
    jobs = [j for j, _ in flow.iterflow()]
    stages = {(j.metadata.get("material_id"), j.metadata.get("model"), j.metadata["stage"]) for j in jobs}
    assert ("Cu", "reference", "forces") in stages and ("Al", "EMT-same", "compare") in stages
    assert all(j.metadata["campaign"] == "emt-test" and j.metadata["kind"] == "phonons" for j in jobs)
    keys = [j.metadata.get("pftflow_key") for j in jobs if j.metadata["stage"] != "parameters"]
    assert len(set(keys)) == len(keys)  # one key per job
    flow2, _ = build_phonons(load_spec(emt_spec(tmp_path, file="spec2.yaml", band_npoints=13)), store)
    by = lambda fl: {(j.metadata.get("material_id"), j.metadata.get("model"), j.metadata["stage"]): j.metadata.get("pftflow_key") for j, _ in fl.iterflow()}  # noqa: E731
    k1, k2 = by(flow), by(flow2)
    # band_npoints is an analysis setting: displacements and forces keep their keys, analyses change
    assert k1[("Cu", "reference", "forces")] == k2[("Cu", "reference", "forces")]
    assert k1[("Cu", "reference", "analysis")] != k2[("Cu", "reference", "analysis")]
    store.close()


def test_cli_results_json(tmp_path, monkeypatch, emt_spec):
    from pftflow.cli import main

    monkeypatch.chdir(tmp_path)
    spec_path = emt_spec(tmp_path)
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


def test_fireworks_submit_and_launch_embedded(tmp_path, emt_spec):
    """`pftflow submit --launch` on FireWorks' mongomock LaunchPad runs every job; a second submit
    adds nothing: the work is in the store and the parameters record on the LaunchPad
    (tests/run/test_fireworks.py checks more)."""
    spec_path = emt_spec(tmp_path)
    env = {k: v for k, v in __import__("os").environ.items() if k != "MONGOMOCK_SERVERSTORE_FILE"}
    run = lambda *a: subprocess.run([sys.executable, "-m", "pftflow.cli", *a], cwd=tmp_path, env=env, capture_output=True, text=True)  # noqa: E731
    first = run("submit", str(spec_path), "--launch")
    assert first.returncode == 0, first.stderr[-3000:]
    out = _last_json(first.stdout)
    assert out["states"] == {"COMPLETED": out["fireworks_added"]}
    second = run("submit", str(spec_path))
    out2 = _last_json(second.stdout)
    assert out2["fireworks_added"] == 0 and out2["reused"]["model"] == ["Cu/EMT-same", "Al/EMT-same"]


def test_relaxed_reference_and_identically_relaxed_model_agree(tmp_path, monkeypatch, emt_spec):
    """reference.relax relaxes the cell with the reference calculator first; a model that is the
    same calculator, relaxed with the same protocol, then reaches the same cell and phonons."""
    monkeypatch.chdir(tmp_path)
    spec = load_spec(emt_spec(tmp_path, relax_models=True, relax="{fmax_eV_per_A: 1.0e-5, steps: 300}"))
    assert spec.reference.relax.fmax_eV_per_A == 1e-5 and spec.reference.relax.steps == 300
    summary = run_campaign(spec, progress=False, plots=False)
    assert summary.failed_jobs == 0, summary.text()
    for r in load_results(spec)["rows"]:
        assert r["relax_converged"] is True
        # same minimum to ~1e-5 eV/Å forces: ω_max equal to far better than the 1 K the unrelaxed test sees
        assert r["omega_max_K"] == pytest.approx(r["omega_max_K_ref"], abs=0.05)
        assert r["mesh_mae_THz"] < 1e-3


def _broken_calculator():
    raise RuntimeError("model weights missing: /nowhere/model.pth")


def test_failing_model_is_reported_and_others_still_run(tmp_path, monkeypatch, emt_spec):
    """A model whose calculator fails at run time fails its own jobs only: the summary names the
    material, model, stage and the reason, the traceback goes to the campaign log (not the
    terminal), the CLI exits non-zero, and the other model's results are complete."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "brokencalc.py").write_text("def make():\n    raise RuntimeError('model weights missing: /nowhere/model.pth')\n")
    spec = load_spec(emt_spec(tmp_path, models=(("broken", "brokencalc:make"), "EMT-same")))
    summary = run_campaign(spec, progress=False, plots=False)
    assert summary.failed_jobs == 2  # the forces job of "broken" on Cu and on Al
    assert {(f.material_id, f.model, f.stage) for f in summary.failures} == {("Cu", "broken", "forces"), ("Al", "broken", "forces")}
    assert all(f.reason == "RuntimeError: model weights missing: /nowhere/model.pth" for f in summary.failures)
    text = summary.text()
    assert "FAILED Cu / broken / forces: RuntimeError: model weights missing" in text and "Traceback" not in text
    assert "Traceback" in open(summary.log_file).read()
    rows = load_results(spec)["rows"]
    assert [(r["material_id"], r["model"]) for r in rows if r["status"] == "ok"] == [("Cu", "EMT-same"), ("Al", "EMT-same")]
    # the failed pairs are rows too, with their reason and stage (tests/run/test_local.py checks more)
    failed = [(r["material_id"], r["model"], r["failed_stage"], r["error"]) for r in rows if r["status"] == "failed"]
    assert failed == [(m, "broken", "forces", "RuntimeError: model weights missing: /nowhere/model.pth") for m in ("Cu", "Al")]
