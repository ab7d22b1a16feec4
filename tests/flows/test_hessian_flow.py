"""`force_constants: hessian` in a model spec: the phonon maker swaps displacements + forces for one
Hessian job, and the phonons agree with fine finite differences of the same model."""

from __future__ import annotations

import pytest

pytest.importorskip("sevenn")

from pftflow.results import load_results  # noqa: E402
from pftflow.run import run_campaign  # noqa: E402
from pftflow.spec import SpecError, load_spec  # noqa: E402

SPEC = """
name: hessian-flow
kind: phonons
store: {{path: {store}}}
materials:
  - id: Si
    structure:
      cell_A: [[0.0, 2.7155, 2.7155], [2.7155, 0.0, 2.7155], [2.7155, 2.7155, 0.0]]
      species: [Si, Si]
      frac_coords: [[0, 0, 0], [0.25, 0.25, 0.25]]
    supercell_matrix: [2, 2, 2]
reference:
  mode: compute
  calculator: {{backend: sevennet, model: 7net-0, name: SevenNet-0-FD}}
models:
  - {{backend: sevennet, model: 7net-0, name: SevenNet-0-Hessian, force_constants: {fc}}}
settings:
  phonons: {{mesh: [8, 8, 8], band_npoints: 11, displacement_A: 0.001}}
  relax_models: false
"""


def test_hessian_model_matches_fine_finite_differences(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = tmp_path / "spec.yaml"
    p.write_text(SPEC.format(store=tmp_path / "camp", fc="hessian"))
    spec = load_spec(p)
    summary = run_campaign(spec, progress=False, plots=False)
    assert summary.failed_jobs == 0, summary.text()
    # the model's flow: one Hessian job instead of displacements + forces
    from pftflow.store import make_job_store

    st = make_job_store(tmp_path / "camp")
    st.connect()
    names = {d["name"] for d in st.query({"metadata.model": "SevenNet-0-Hessian"}, properties=["name"])}
    st.close()
    assert names == {"hessian Si SevenNet-0-Hessian", "analysis Si SevenNet-0-Hessian", "compare Si SevenNet-0-Hessian"}
    (row,) = load_results(spec)["rows"]
    # same model, exact Hessian vs ±0.001 Å finite differences (measured 0.0075 K, 0.00026 THz)
    assert row["omega_max_K"] == pytest.approx(row["omega_max_K_ref"], abs=0.1)
    assert row["mesh_mae_THz"] < 0.002 and row["band_rmse_THz"] < 0.002


def test_hessian_needs_a_backend_with_hessian_rows(tmp_path):
    p = tmp_path / "spec.yaml"
    p.write_text(SPEC.format(store=tmp_path / "camp", fc="hessian").replace(
        "{backend: sevennet, model: 7net-0, name: SevenNet-0-Hessian, force_constants: hessian}",
        "{backend: ase, import_path: 'ase.calculators.lj:LennardJones', name: LJ, force_constants: hessian}"))
    with pytest.raises(SpecError, match=r"models\[0\]\.force_constants: backend 'ase' gives no Hessian rows"):
        load_spec(p)
