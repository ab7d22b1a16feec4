"""Arrays cross job boundaries bit for bit, as blobs routed to the data store by type."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk
from jobflow import job, run_locally
from monty.json import MontyDecoder, jsanitize

from pftflow.serialization import INLINE_MAX, Array, ArrayBlob, ArrayTree, Document, Structure


class _Doc(Document):
    a: Array
    tree: ArrayTree = None
    atoms: Structure | None = None


def _roundtrip(doc):
    wire = json.loads(json.dumps(jsanitize(doc, strict=True, allow_bson=True)))
    return MontyDecoder().process_decoded(wire), wire


def test_arrays_trees_and_structures_round_trip_exactly():
    rng = np.random.default_rng(0)
    fc = rng.normal(size=(8, 16, 3, 3))
    ds = {"natom": 16, "first_atoms": [{"number": 0, "displacement": np.array([0.01, 0.0, 0.0]), "forces": rng.normal(size=(16, 3))}]}
    si = bulk("Si")
    back, wire = _roundtrip(_Doc(a=fc, tree=ds, atoms=si))
    assert isinstance(back, _Doc)
    np.testing.assert_array_equal(back.a, fc)  # bit for bit
    assert back.a.dtype == np.float64
    fa = back.tree["first_atoms"][0]
    assert fa["number"] == 0 and isinstance(fa["number"], int)
    np.testing.assert_array_equal(fa["forces"], ds["first_atoms"][0]["forces"])
    np.testing.assert_allclose(back.atoms.positions, si.positions, rtol=0, atol=0)
    np.testing.assert_array_equal(back.atoms.get_masses(), si.get_masses())
    # large arrays are blobs (no nested lists on the wire); small ones stay readable lists
    assert wire["a"]["@class"] == "ArrayBlob" and isinstance(wire["a"]["npy_zlib_b64"], str)
    small, wire2 = _roundtrip(_Doc(a=np.arange(INLINE_MAX, dtype=float)))
    assert isinstance(wire2["a"], list) and small.a.tolist() == list(range(INLINE_MAX))


def test_blob_keeps_dtype_and_shape():
    for a in (np.arange(200, dtype=np.int32).reshape(10, 20), np.ones((3, 0)), np.array(np.pi, dtype=np.float32)):
        b = ArrayBlob.from_dict(json.loads(json.dumps(ArrayBlob.pack(a).as_dict()))).unpack()
        assert b.dtype == a.dtype and b.shape == a.shape and np.array_equal(a, b)


@job(output_schema=_Doc, data=[ArrayBlob])
def _make(n: int) -> _Doc:
    return _Doc(a=np.arange(n * n, dtype=float).reshape(n, n))


@job
def _total(doc: _Doc) -> float:
    return float(doc.a.sum())


def test_jobflow_routes_blobs_to_the_data_store_by_type(tmp_path):
    from jobflow import Flow

    from pftflow.store import make_job_store

    store = make_job_store(tmp_path)
    j1 = _make(30)
    j2 = _total(j1.output)
    run_locally(Flow([j1, j2]), store=store, create_folders=False, log=False)
    store.connect()
    raw = store.query_one({"uuid": j1.uuid}, load=False)
    assert raw["output"]["a"]["@class"] == "ArrayBlob" and "blob_uuid" in raw["output"]["a"]  # a reference, not data
    assert store.additional_stores["data"].count({"job_uuid": j1.uuid}) == 1
    assert store.get_output(j2.uuid) == pytest.approx(float(np.arange(900).sum()))
    doc = MontyDecoder().process_decoded(store.get_output(j1.uuid, load=True))
    np.testing.assert_array_equal(doc.a, np.arange(900, dtype=float).reshape(30, 30))
