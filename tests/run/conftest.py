"""Helpers for the runner tests: the cheap EMT harmonic campaign of the ``emt_spec`` fixture
(tests/conftest.py), optionally with a model that fails at run time, and direct reads of the
embedded store's SQLite file (safe beside a running writer: WAL)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

BROKEN_MODULE = '''
class ModelWeightsMissing(RuntimeError):
    hint = "download the weights to /nowhere/model.pth or point the model's path at them"


def make():
    raise ModelWeightsMissing("model weights missing: /nowhere/model.pth\\n(second line of the message)")
'''


@pytest.fixture
def emt_campaign(tmp_path, monkeypatch, emt_spec):
    """``make(broken=False, name="spec.yaml") -> spec path`` in ``tmp_path`` (cwd), the store in
    ``tmp_path/camp``; ``broken=True`` adds a model whose calculator raises (with a hint)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "runtest_brokencalc.py").write_text(BROKEN_MODULE)

    def make(broken: bool = False, name: str = "spec.yaml", same: bool = True) -> Path:
        models = ((("broken", "runtest_brokencalc:make"),) if broken else ()) + (("EMT-same",) if same else ())
        return emt_spec(tmp_path, file=name, name="emt-run", models=models, relax_models=True)

    return make


def cli(tmp_path: Path, *args: str, **kw) -> subprocess.Popen:
    """``python -m pftflow.cli ARGS`` in ``tmp_path`` (runtest_brokencalc importable), as a subprocess."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "pftflow.cli", *args], cwd=tmp_path, env=env, text=True, **kw)


def keyed_docs(db: Path) -> list[tuple[str, str, str, str | None]]:
    """(pftflow_key, uuid, stage, name) of the stored job documents with a content key."""
    if not db.is_file():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute('SELECT k_pftflow_key, k_uuid, k_stage, k_material_id FROM "c_outputs" WHERE k_pftflow_key IS NOT NULL').fetchall()
    except sqlite3.OperationalError:  # tables not created yet
        return []
    finally:
        con.close()


def complete_uuids(db: Path) -> set[str]:
    """uuids of the keyed job documents that are complete (every blob they point to is stored):
    what the runner counts as finished (pftflow.flows.reuse.job_complete)."""
    from pftflow.flows.reuse import job_complete
    from pftflow.store import make_job_store

    st = make_job_store(db.parent)
    st.connect()
    try:
        return {u for _, u, *_ in keyed_docs(db) if job_complete(st, u)}
    finally:
        st.close()


@pytest.fixture
def run_tools():
    """``(cli, keyed_docs, complete_uuids)`` for the subprocess tests (conftest is not importable
    with ``--import-mode=importlib``)."""
    return cli, keyed_docs, complete_uuids
