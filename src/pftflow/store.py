"""The maggma-backed jobflow JobStore every campaign writes to.

Embedded default (no server): maggma ``MontyStore`` (montydb, sqlite storage) in
``<campaign_dir>/store``; job outputs go to the ``outputs`` collection, large arrays (forces,
force constants, per-mode kappa, Hessians) to the additional store ``data``.  Passing a MongoDB
URI (campaign spec ``store: {uri: mongodb://...}`` or env ``PFTFLOW_MONGODB_URI``) switches both to
a real MongoDB server.
"""

from __future__ import annotations

import os
from pathlib import Path

from jobflow import JobStore

#: name of the additional store that receives large arrays (``@job(data=...)``)
DATA_STORE = "data"


def make_job_store(campaign_dir: str | os.PathLike, uri: str | None = None, database: str = "pftflow") -> JobStore:
    """JobStore for a campaign: embedded montydb under ``campaign_dir/store`` or MongoDB at ``uri``."""
    uri = uri or os.environ.get("PFTFLOW_MONGODB_URI")
    if uri:
        from maggma.stores import MongoURIStore

        docs = MongoURIStore(uri, collection_name="outputs", database=database)
        data = MongoURIStore(uri, collection_name="outputs_data", database=database)
    else:
        from maggma.stores import MontyStore

        path = Path(campaign_dir).expanduser().resolve() / "store"
        path.mkdir(parents=True, exist_ok=True)
        docs = MontyStore("outputs", database_path=str(path), database_name=database, storage="sqlite")
        data = MontyStore("outputs_data", database_path=str(path), database_name=database, storage="sqlite")
    return JobStore(docs, additional_stores={DATA_STORE: data})
