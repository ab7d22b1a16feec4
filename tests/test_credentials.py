"""Credentials are never stored, logged or printed.

A campaign whose ``store.uri`` carries a password (``mongodb://alice:S3cretPW@...``):

* with nothing listening there, ``pftflow run`` / ``submit`` / ``results`` fail within 5 s with a
  one-line message naming host and port, and the password is in no output and no file written;
* with a server (mongomock-ng stands in for pymongo's client), a submitted and launched campaign
  completes, and the password is in neither the LaunchPad, nor any file, nor any stored document:
  the store inside each Firework holds the URI with ``***`` and the name of the environment
  variable a worker reads it from.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

PASSWORD = "S3cretPW"
URI = f"mongodb://alice:{PASSWORD}@127.0.0.1:1/db"  # nothing listens on port 1

#: the emt_spec campaign (tests/conftest.py), Cu only, on a MongoDB store given by a URI with a password
SECRET_SPEC = {"name": "secret-test", "materials": ("Cu",)}


def _files_with_password(root: Path) -> list[str]:
    """Every file under ``root`` holding the password, except the spec the user wrote it into."""
    hits = []
    for p in root.rglob("*"):
        if p.is_file() and p.name != "spec.yaml" and PASSWORD.encode() in p.read_bytes():
            hits.append(str(p.relative_to(root)))
    return hits


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MONGOMOCK_SERVERSTORE_FILE", "PFTFLOW_MONGODB_URI", "PFTFLOW_MONGODB_URI_FILE")}
    env["OMP_NUM_THREADS"] = "1"
    env["HOME"] = os.environ.get("HOME", "/tmp")
    return env


def test_unreachable_mongodb_fails_fast_with_one_line_and_no_password(tmp_path, emt_spec):
    spec = emt_spec(tmp_path, store_uri=URI, **SECRET_SPEC)
    env = _env()

    def cli(*args):
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "pftflow.cli", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        return r, time.perf_counter() - t0

    # the time the CLI takes to start on this machine (validate does not contact the store)
    base, t_base = cli("validate", spec.name)
    assert base.returncode == 0, base.stderr
    assert PASSWORD not in base.stdout + base.stderr
    for cmd in ("run", "submit", "results"):
        r, t = cli(cmd, spec.name)
        assert r.returncode == 2, (cmd, r.stdout[-2000:], r.stderr[-2000:])
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in r.stderr, (cmd, r.stderr)
        assert lines[0].startswith("error: cannot reach the MongoDB store at 127.0.0.1:1 within"), lines[0]
        assert PASSWORD not in r.stdout + r.stderr
        assert t - t_base < 5.0, (cmd, t, t_base)
    assert _files_with_password(tmp_path) == []
    assert not list(tmp_path.rglob("fireworks_launchpad.json"))  # submit stopped before the LaunchPad


def test_open_store_gives_up_within_5_s():
    from pftflow.store import StoreConnectionError, make_job_store

    store = make_job_store("unused", URI)
    t0 = time.perf_counter()
    with pytest.raises(StoreConnectionError) as err:
        store.connect()
    dt = time.perf_counter() - t0
    assert dt < 5.0
    msg = str(err.value)
    assert "127.0.0.1:1" in msg and PASSWORD not in msg and "\n" not in msg
    assert err.value.__cause__ is None and err.value.__suppress_context__  # no pymongo traceback with the URI


class _SharedMongo:
    """pymongo.MongoClient stand-in: mongomock clients sharing one server, recording the URIs used."""

    def __init__(self):
        import mongomock_ng  # mongomock 4 lacks pymongo 4.9+'s ReplaceOne(sort=...) that maggma sends
        from mongomock_ng.store import ServerStore

        self.mongomock = mongomock_ng
        self.server = ServerStore()
        self.uris: list[str] = []

    def __call__(self, uri=None, *args, **kwargs):
        self.uris.append(uri)
        client = self.mongomock.MongoClient(uri, _store=self.server, **kwargs)
        client.close = lambda: None  # mongomock-ng's close empties the server: a real one keeps its data
        return client

    def dump(self) -> str:
        client = self.mongomock.MongoClient(_store=self.server)
        out = []
        for db in client.list_database_names():
            for coll in client[db].list_collection_names():
                out.extend(json.dumps(d, default=str) for d in client[db][coll].find({}))
        return "\n".join(out)


@pytest.fixture
def mongo(monkeypatch):
    import pymongo

    fake = _SharedMongo()
    monkeypatch.setattr(pymongo, "MongoClient", fake)
    for var in ("PFTFLOW_MONGODB_URI", "PFTFLOW_MONGODB_URI_FILE", "MONGOMOCK_SERVERSTORE_FILE"):
        monkeypatch.delenv(var, raising=False)
    return fake


def test_submitted_campaign_on_mongodb_keeps_the_password_out_of_everything(tmp_path, monkeypatch, mongo, emt_spec):
    """submit --launch on a MongoDB store with a password: the campaign completes (the stores in
    the Fireworks get the URI from the environment of the process that runs them), and the
    password is in no file (LaunchPad, launch folders, logs), no document and no output."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from pftflow.cli import main

    monkeypatch.chdir(tmp_path)
    spec = emt_spec(tmp_path, store_uri=URI, **SECRET_SPEC)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        assert main(["submit", spec.name, "--launch"]) == 0
        assert main(["results", spec.name, "--format", "json"]) == 0
        assert main(["run", spec.name, "--no-progress", "--no-plots"]) == 0  # all reused, prints the store
    text = out.getvalue() + err.getvalue()
    assert PASSWORD not in text
    assert "store: mongodb://127.0.0.1:1/pftflow/outputs" in text
    assert os.environ.get("PFTFLOW_MONGODB_URI") is None  # set for the rockets only
    res = _second_json(out.getvalue())
    assert [(r["material_id"], r["model"]) for r in res["rows"]] == [("Cu", "EMT-same")]
    assert res["rows"][0].get("omega_max_K", 0) > 200 and res["rows"][0]["omega_max_error_K"] == 0.0, (res["rows"], text[-3000:])

    lp_json = tmp_path / "campaigns" / "secret-test" / "fireworks_launchpad.json"
    lp_text = lp_json.read_text()
    assert lp_text.count("MongoURIEnvStore") >= 2 * 8  # docs + data store in each of the 8 Fireworks
    assert "mongodb://alice:***@127.0.0.1:1/db" in lp_text and '"uri_env": "PFTFLOW_MONGODB_URI"' in lp_text
    assert _files_with_password(tmp_path) == []
    stored = mongo.dump()
    assert '"stage": "parameters"' in stored and "alice:***@127.0.0.1:1" in stored  # the recorded spec, redacted
    assert PASSWORD not in stored
    assert all(u is None or PASSWORD in u for u in mongo.uris)  # the real URI was used to connect ...
    assert any(u and PASSWORD in u for u in mongo.uris)


def _second_json(text: str) -> dict:
    """The JSON object printed by the second command (submit prints one, results the next)."""
    dec = json.JSONDecoder()
    objs, i = [], 0
    while (i := text.find("{", i)) != -1:
        try:
            obj, end = dec.raw_decode(text, i)
        except json.JSONDecodeError:
            i += 1
            continue
        objs.append(obj)
        i = end
    return objs[1]


def test_worker_reads_the_uri_from_env_or_file(tmp_path, monkeypatch):
    """The store as a Firework carries it (as_dict -> from_dict) has no password; a worker gets the
    URI from $PFTFLOW_MONGODB_URI or from the file $PFTFLOW_MONGODB_URI_FILE names; a URI without
    a password travels whole."""
    from jobflow import JobStore

    from pftflow.store import MongoURIEnvStore, StoreConnectionError, make_job_store

    for var in ("PFTFLOW_MONGODB_URI", "PFTFLOW_MONGODB_URI_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.config/pftflow/mongodb_uri
    d = make_job_store("unused", URI).as_dict()
    assert PASSWORD not in json.dumps(d)
    worker = JobStore.from_dict(d)
    assert isinstance(worker.docs_store, MongoURIEnvStore)
    with pytest.raises(StoreConnectionError, match=r"\$PFTFLOW_MONGODB_URI") as err:
        worker.docs_store.resolved_uri()
    assert PASSWORD not in str(err.value)
    monkeypatch.setenv("PFTFLOW_MONGODB_URI", URI)
    assert worker.docs_store.resolved_uri() == URI
    monkeypatch.delenv("PFTFLOW_MONGODB_URI")
    f = tmp_path / "uri.txt"
    f.write_text(URI + "\n")
    monkeypatch.setenv("PFTFLOW_MONGODB_URI_FILE", str(f))
    assert JobStore.from_dict(d).additional_stores["data"].resolved_uri() == URI
    plain = JobStore.from_dict(make_job_store("unused", "mongodb://db.example.org:27018/x").as_dict())
    assert plain.docs_store.resolved_uri() == "mongodb://db.example.org:27018/x"
    assert plain.docs_store.name == "mongodb://db.example.org:27018/pftflow/outputs"


def test_recorded_spec_and_spec_errors_redact_the_password(tmp_path, emt_spec):
    from pftflow.flows.reuse import recorded_spec
    from pftflow.spec import SpecError, load_spec

    spec = load_spec(emt_spec(tmp_path, store_uri=URI, **SECRET_SPEC))
    assert recorded_spec(spec)["store"]["uri"] == "mongodb://alice:***@127.0.0.1:1/db"
    bad = emt_spec(tmp_path, file="bad.yaml", store_uri=URI.replace("mongodb://", "postgres://"), **SECRET_SPEC)
    with pytest.raises(SpecError) as err:
        load_spec(bad)
    assert "store.uri" in str(err.value) and "alice:***@" in str(err.value) and PASSWORD not in str(err.value)
