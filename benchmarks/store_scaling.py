#!/usr/bin/env python
"""Job-store cost vs the number of stored jobs: pftflow's SQLiteStore vs maggma's MontyStore.

pftflow 0.1 stored campaigns in maggma ``MontyStore`` (montydb, sqlite storage), whose upsert
(``replace_one``) and lookups decode every stored document: a job write costs O(stored jobs).
This script measures, in one run and on the same documents, for N = 10, 50, 200, 1000 stored jobs:

* write: ``JobStore.update(doc, save={"data": [...]})``, exactly what jobflow's ``Job.run`` calls
  when a job finishes (jobflow's own jsanitize + deepcopy of the arrays included, same for both);
* read: ``JobStore.get_output(uuid, load=True)`` of a stored job (document + its 3 arrays).

A job is phonon-analysis-like: three 64x64x3x3 float64 arrays (force-constant sized, 0.9 MB of
raw doubles together) routed to the additional ``data`` store, plus small output and metadata
(``metadata.campaign/stage/material_id/model/pftflow_key``) in the docs store.  The stores are
filled to N by direct inserts (for montydb ``insert_many``, which does not scan) so that filling
is linear for both; only the timed operations go through the normal upsert path.

Also printed: the document encoding the store uses (msgpack) against JSON text for one blob.

    OMP_NUM_THREADS=1 python benchmarks/store_scaling.py [--sizes 10 50 200 1000] [--reps 3]
                                                         [--old-max 1000] [--dir /tmp]

Times (median over the repetitions) are CPU seconds of this process (``time.process_time``; the ratio is what matters on a
shared machine) and wall seconds.  Disk: about 2 x 1.1 GB at N = 1000 (removed at the end).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
import uuid as _uuid
from pathlib import Path

import numpy as np
from jobflow import JobStore

from pftflow.store import SQLiteStore, decode_doc, encode_doc

ARRAY_KEYS = ["force_constants", "force_constants_ref", "group_velocities"]


def payloads(seed: int = 0) -> dict:
    """Output arrays as jobflow stores them (monty's jsanitize: nested lists)."""
    rng = np.random.default_rng(seed)
    return {k: rng.normal(size=(64, 64, 3, 3)).tolist() for k in ARRAY_KEYS}


def job_doc(i: int, arrays: dict) -> dict:
    """A finished job as jobflow hands it to JobStore.update (JobStoreDocument.model_dump())."""
    mid, model = f"mp-{1000 + i % 97}", ["sevennet", "mace", "chgnet"][i % 3]
    return {
        "uuid": str(_uuid.UUID(int=i + 1)),
        "index": 1,
        "output": {**arrays, "material_id": mid, "label": model, "omega_max_THz": 7.0 + (i % 13) * 0.1, "stable": True,
                   "thermal_300K": {"S_J_per_K_mol": 50.0 + i % 7, "Cv_J_per_K_mol": 24.0, "F_kJ_per_mol": -3.2}},
        "completed_at": f"2026-11-22T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}.000000",
        "metadata": {"campaign": "bench", "stage": "analysis", "material_id": mid, "model": model, "pftflow_key": f"{i:064x}"},
        "hosts": [str(_uuid.UUID(int=10**6 + i))],
        "name": f"analysis {mid} {model}",
    }


def split(doc: dict) -> tuple[dict, list[dict]]:
    """(job document with blob references, blobs): JobStore.update's split, for the fast fill."""
    doc = dict(doc, output=dict(doc["output"]))
    blobs = []
    for k in ARRAY_KEYS:
        b = str(_uuid.uuid4())
        blobs.append({"@class": "", "@module": "", "blob_uuid": b, "data": doc["output"][k], "job_uuid": doc["uuid"], "job_index": doc["index"]})
        doc["output"][k] = {"@class": "", "@module": "", "blob_uuid": b, "store": "data"}
    return doc, blobs


def new_store(root: Path) -> JobStore:
    path = str(root / "store.sqlite")
    return JobStore(SQLiteStore(path, "outputs"), additional_stores={"data": SQLiteStore(path, "outputs_data")})


def old_store(root: Path) -> JobStore:
    from maggma.stores import MontyStore

    kw = {"database_path": str(root / "store"), "database_name": "pftflow", "storage": "sqlite"}
    return JobStore(MontyStore("outputs", **kw), additional_stores={"data": MontyStore("outputs_data", **kw)})


def fill(js: JobStore, start: int, stop: int, arrays: dict, old: bool) -> None:
    docs, blobs = [], []
    for i in range(start, stop):
        d, b = split(job_doc(i, arrays))
        docs.append(d)
        blobs.extend(b)
        if len(docs) == 20 or i == stop - 1:
            if old:  # insert_many does not scan; MontyStore.update would (that is what is measured)
                js.docs_store._collection.insert_many(docs)
                js.additional_stores["data"]._collection.insert_many(blobs)
            else:
                js.docs_store.update(docs, key=["uuid", "index"])
                js.additional_stores["data"].update(blobs, key="blob_uuid")
            docs, blobs = [], []


def timed(fn) -> tuple[float, float]:
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c0, time.perf_counter() - w0


def run_store(kind: str, root: Path, sizes: list[int], reps: int, arrays: dict, reps_large: int) -> dict:
    js = old_store(root) if kind == "old" else new_store(root)
    js.connect()
    res, n, next_id = {}, 0, 0
    for size in sizes:
        fill(js, next_id, next_id + size - n, arrays, kind == "old")
        next_id += size - n
        n = size
        k = reps if size <= 200 else reps_large
        writes, reads, store_reads = [], [], []
        for _ in range(k):
            doc = job_doc(next_id, arrays)
            next_id += 1
            n += 1
            writes.append(timed(lambda doc=doc: js.update(doc, key=["uuid", "index"], save={"data": ARRAY_KEYS})))
        for r in range(k):
            u = str(_uuid.UUID(int=1 + (r * 7919) % size))  # a job stored during the fill
            out = {}
            reads.append(timed(lambda u=u, out=out: out.update(v=js.get_output(u, load=True))))
            assert np.asarray(out["v"]["force_constants"]).shape == (64, 64, 3, 3)
            if kind == "new":  # the store's share of get_output: the query jobflow makes (no reference scan)
                store_reads.append(timed(lambda u=u: js.query_one({"uuid": u}, properties=["output"], sort={"index": -1}, load=True)))
        assert js.count() == n
        res[size] = {"write": np.median(writes, axis=0), "read": np.median(reads, axis=0), "store_read": np.median(store_reads, axis=0) if store_reads else None, "reps": k}
        w, rd = res[size]["write"], res[size]["read"]
        extra = f" | store part {res[size]['store_read'][0] * 1e3:6.1f} ms CPU" if store_reads else ""
        print(f"  {kind} N={size:5d} ({k} reps): write {w[0] * 1e3:9.1f} ms CPU {w[1] * 1e3:9.1f} ms wall | get_output {rd[0] * 1e3:9.1f} ms CPU {rd[1] * 1e3:9.1f} ms wall{extra}", flush=True)
    js.close()
    res["peak_rss_MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return res


def encoding_table(arrays: dict) -> None:
    import json

    import orjson

    blob = {"blob_uuid": "x", "data": arrays[ARRAY_KEYS[0]], "job_uuid": "y", "job_index": 1}
    print("document encoding, one 64x64x3x3 float64 blob (0.29 MB of raw doubles):")
    for name, enc, dec in [("json (stdlib)", lambda d: json.dumps(d).encode(), json.loads), ("json (orjson)", orjson.dumps, orjson.loads), ("msgpack (used)", encode_doc, decode_doc)]:
        b = enc(blob)
        te = min(timed(lambda enc=enc: enc(blob))[0] for _ in range(5))
        td = min(timed(lambda dec=dec, b=b: dec(b))[0] for _ in range(5))
        assert dec(b) == blob
        print(f"  {name:15s} {len(b) / 1e6:6.3f} MB  encode {te * 1e3:6.1f} ms  decode {td * 1e3:6.1f} ms (CPU, best of 5)")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 200, 1000])
    ap.add_argument("--reps", type=int, default=3, help="timed writes and reads per size")
    ap.add_argument("--old-max", type=int, default=1000, help="largest N to run MontyStore at (slow: minutes per write at 1000)")
    ap.add_argument("--reps-large", type=int, default=1, help="timed writes and reads per size above 200")
    ap.add_argument("--dir", default=None, help="where the temporary stores go (default: system temp)")
    args = ap.parse_args(argv)
    arrays = payloads()
    encoding_table(arrays)
    tmp = Path(tempfile.mkdtemp(prefix="pftflow-store-bench-", dir=args.dir))
    try:
        print("new: pftflow SQLiteStore")
        new = run_store("new", tmp / "new", args.sizes, args.reps, arrays, max(args.reps_large, args.reps))
        print(f"  peak RSS so far {new['peak_rss_MB']:.0f} MB")
        print("old: maggma MontyStore (montydb, sqlite storage)")
        old = run_store("old", tmp / "old", [s for s in args.sizes if s <= args.old_max], args.reps, arrays, args.reps_large)
        print(f"  peak RSS so far {old['peak_rss_MB']:.0f} MB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n| stored jobs N | write new (ms CPU) | write old (ms CPU) | old/new | get_output new (ms CPU) | of which store (ms CPU) | get_output old (ms CPU) | old/new |")
    print("|---|---|---|---|---|---|---|---|")
    for s in args.sizes:
        nw, nr, ns = new[s]["write"][0] * 1e3, new[s]["read"][0] * 1e3, new[s]["store_read"][0] * 1e3
        if s in old:
            ow, orr = old[s]["write"][0] * 1e3, old[s]["read"][0] * 1e3
            print(f"| {s} | {nw:.1f} | {ow:.0f} | {ow / nw:.0f} | {nr:.1f} | {ns:.1f} | {orr:.0f} | {orr / nr:.1f} |")
        else:
            print(f"| {s} | {nw:.1f} | - | - | {nr:.1f} | {ns:.1f} | - | - |")


if __name__ == "__main__":
    main()
