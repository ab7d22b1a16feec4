"""A store written before the issue-19 refactor (flows split by role, store split into a package) is reused
whole after it: the same content keys, the same documents (``@module`` / ``@class`` paths), the same numbers.

The fixture ``tests/data/prerefactor_emt`` (148 KB) is the EMT toy campaign of ``tests/conftest.py`` (fcc Cu,
relaxed model) run by pftflow at commit bd79966, before the refactor, with its result rows.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from jobflow import Flow
from monty.json import MontyDecoder
from pydantic import BaseModel

from pftflow.flows.campaigns import KINDS
from pftflow.results import load_results
from pftflow.run import open_store, run_campaign
from pftflow.spec import load_spec

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "prerefactor_emt"
#: the science fields of a result row (provenance fields name the run's machine and commit)
FIELDS = ("omega_max_K", "omega_max_K_ref", "entropy_300K_J_per_K_mol", "entropy_300K_J_per_K_mol_ref", "free_energy_300K_kJ_per_mol",
          "heat_capacity_300K_J_per_K_mol", "mesh_mae_THz", "mesh_rmse_THz", "band_rmse_THz", "stable", "stable_ref", "status")


def _copy(tmp_path, monkeypatch) -> Path:
    shutil.copytree(FIXTURE, tmp_path / "old")
    monkeypatch.chdir(tmp_path / "old")
    return tmp_path / "old" / "spec.yaml"


def test_old_store_documents_decode_to_the_same_classes(tmp_path, monkeypatch):
    spec = load_spec(_copy(tmp_path, monkeypatch))
    store = open_store(spec)
    try:
        docs = list(store.query({"metadata.campaign": spec.name, "metadata.pftflow_key": {"$exists": True}}, properties=["uuid", "name"]))
        assert len(docs) == 8  # every keyed job output (the run records are plain dicts)
        for d in docs:
            out = MontyDecoder().process_decoded(store.get_output(d["uuid"], which="last", load=True))
            assert isinstance(out, BaseModel), (d["name"], type(out))
    finally:
        store.close()


def test_old_store_is_reused_by_a_rerun(tmp_path, monkeypatch):
    spec_path = _copy(tmp_path, monkeypatch)
    spec = load_spec(spec_path)
    store = open_store(spec)
    try:
        flow, reused = KINDS[spec.kind].build(spec, store)
    finally:
        store.close()
    assert isinstance(flow, Flow)
    assert [j.name for j, _ in flow.iterflow()] == ["record_parameters"]  # the run record is written by every run
    assert reused["reference"] == ["Cu"] and reused["model"] == ["Cu/EMT-same"] and len(reused["jobs"]) == 8

    again = run_campaign(load_spec(spec_path), progress=False, plots=False)
    assert (again.jobs_run, again.jobs_reused, again.failed_jobs) == (1, 8, 0)
    before = json.loads((FIXTURE / "rows.json").read_text())
    after = load_results(load_spec(spec_path))["rows"]
    assert [(r["material_id"], r["model"]) for r in after] == [(r["material_id"], r["model"]) for r in before]
    for a, b in zip(after, before):
        assert {k: a[k] for k in FIELDS} == {k: b[k] for k in FIELDS}
