"""The maggma-backed jobflow JobStore every campaign writes to (:func:`make_job_store`).

* :mod:`pftflow.store.sqlite` - the embedded default, one SQLite file ``<campaign>/store.sqlite``
  (:class:`SQLiteStore`; why it is hand-written: its module docstring);
* :mod:`pftflow.store.query`  - its query planner (indexed fields, SQL for Mongo criteria);
* :mod:`pftflow.store.codec`  - its msgpack document codec;
* :mod:`pftflow.store.mongo`  - MongoDB (``store: {uri: ...}`` or ``$PFTFLOW_MONGODB_URI``), no password serialised.

Serialised stores (FireWorks copies the JobStore into every Firework) name their classes by module; the
classes stay importable from ``pftflow.store`` too, as before the package was split.
"""

from __future__ import annotations

import os
from pathlib import Path

from jobflow import JobStore

from pftflow.store.codec import decode_doc, encode_doc
from pftflow.store.mongo import (
    MONGODB_TIMEOUT_S,
    MONGODB_URI_ENV,
    MONGODB_URI_FILE,
    MONGODB_URI_FILE_ENV,
    MongoURIEnvStore,
    StoreConnectionError,
    redact,
    redact_uri,
    uri_hosts,
)
from pftflow.store.query import INDEXED_FIELDS
from pftflow.store.sqlite import DATA_STORE, SCHEMA_VERSION, STORE_FILE, SQLiteStore, StoreVersionError


def make_job_store(campaign_dir: str | os.PathLike, uri: str | None = None, database: str = "pftflow") -> JobStore:
    """JobStore for a campaign: embedded ``campaign_dir/store.sqlite`` or MongoDB at ``uri``.

    ``database`` names the MongoDB database; the embedded store has one file per campaign.
    Raises :class:`StoreVersionError` for a campaign folder written by pftflow 0.1 (montydb).
    """
    uri = uri or os.environ.get(MONGODB_URI_ENV)
    if uri:  # serialised without the password (FireWorks copies the store into every Firework)
        docs = MongoURIEnvStore("outputs", uri, database=database)
        data = MongoURIEnvStore("outputs_data", uri, database=database)
        return JobStore(docs, additional_stores={DATA_STORE: data})
    shown = Path(campaign_dir).expanduser()
    root = shown.resolve()
    if (root / "store").is_dir() and not (root / STORE_FILE).exists():
        old = shown / "store"
        raise StoreVersionError(f"{old} was written by pftflow 0.1 (montydb); move or delete it (`rm -r {old}`) and re-run: stored stages will be recomputed")
    path = str(root / STORE_FILE)
    docs = SQLiteStore(path, "outputs")
    data = SQLiteStore(path, "outputs_data")
    return JobStore(docs, additional_stores={DATA_STORE: data})


__all__ = [
    "DATA_STORE",
    "INDEXED_FIELDS",
    "MONGODB_TIMEOUT_S",
    "MONGODB_URI_ENV",
    "MONGODB_URI_FILE",
    "MONGODB_URI_FILE_ENV",
    "SCHEMA_VERSION",
    "STORE_FILE",
    "MongoURIEnvStore",
    "SQLiteStore",
    "StoreConnectionError",
    "StoreVersionError",
    "decode_doc",
    "encode_doc",
    "make_job_store",
    "redact",
    "redact_uri",
    "uri_hosts",
]
