"""The embedded store of a campaign (no server): :class:`SQLiteStore`, one SQLite file ``<campaign_dir>/store.sqlite``
(WAL journal, busy timeout: a FireWorks ``rlaunch`` worker in another process can write to it at
the same time).  Job documents go to the table of collection ``outputs``, large arrays (forces,
force constants, per-mode kappa, Hessians) to the additional store ``data`` (collection
``outputs_data``) in the same file.  Passing a MongoDB URI (campaign spec ``store: {uri:
mongodb://...}`` or env ``PFTFLOW_MONGODB_URI``) switches both to a real MongoDB server.

Why a hand-written store: pftflow 0.1 used maggma's ``MontyStore`` (montydb on sqlite), whose
``replace_one`` decodes every stored document to find the one to replace, so each job write cost
O(stored documents) and a campaign O(N^2) (4.7 GB and >3 min per job at job 42 of 73).  No library
offers an indexed, embedded, multi-process Mongo-like store that maggma/jobflow can use (mongomock
is in-memory and single-process, montydb scans, TinyDB/UnQLite have no maggma Store), so this
module writes one on the stdlib ``sqlite3``:

* one table per collection; each row holds the document as msgpack (for a float array: 0.35 MB
  vs 0.76 MB of JSON text, decoded 2x faster than orjson and 8x faster than json, measured in
  ``benchmarks/store_scaling.py``) and indexed columns for the fields jobflow and pftflow look up
  by equality (:data:`INDEXED_FIELDS`);
* criteria: equality / ``$eq`` / ``$in`` on indexed fields become SQL on those columns and select
  the candidate rows; everything else (``$exists``, ``$gt``, ``$or``, dotted keys into arrays, ...)
  is decided by mongomock's Mongo matcher (``mongomock_ng.filtering.filter_applies``) on the
  decoded candidates.  A field whose value is not a plain string/number (array, sub-document,
  null, bool, NaN, date, ...) is stored as a marker that every indexed lookup also returns, so the
  SQL step can only widen the candidate set, never lose a match;
* writes are upserts on ``key`` inside ``BEGIN IMMEDIATE`` transactions, so two processes
  upserting the same key serialise on SQLite's write lock and never duplicate a document.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from maggma.core import Sort, Store, StoreError
from mongomock_ng.filtering import (
    NOTHING,
    filter_applies,
    iter_key_candidates,
    resolve_sort_key,
)
from monty.json import jsanitize

from pftflow.store.codec import _is_plain, decode_doc, encode_doc
from pftflow.store.query import (
    _COLLECTION_RE,
    _COLUMN,
    _MARKER,
    _SQL_INDEXES,
    INDEXED_FIELDS,
    _index_values,
    _plan,
    _project,
    _projection,
    _sort_items,
    _sql_sort_key,
    _value_key,
)

#: name of the additional store that receives large arrays (``@job(data=...)``)
DATA_STORE = "data"
#: file of the embedded store inside the campaign folder
STORE_FILE = "store.sqlite"
#: layout version of the SQLite file, kept in ``PRAGMA user_version``
SCHEMA_VERSION = 1

class StoreVersionError(RuntimeError):
    """A campaign store written by another (incompatible) pftflow version."""


# ------------------------------------------------------------------------------ the store
class SQLiteStore(Store):
    """maggma Store in one SQLite file, a table per collection (see the module docstring).

    Several stores (collections) and several processes can share the file.  Documents carry no
    ``_id``; ``_collection`` is not a pymongo collection (this store does not need one).

    Args:
        path: the SQLite file (created on connect, with its folder).
        collection_name: table of this store.
        key: default upsert key (jobflow sets ``uuid`` / ``blob_uuid``).
        last_updated_field: maggma's timestamp field.
        timeout_s: how long a write waits for another process' write lock (s).
        journal_mode: SQLite journal mode; ``wal`` lets readers run beside a writer (use
            ``delete`` on network file systems without shared memory).
    """

    #: serialised (FireWorks, pickle) under the path it had before pftflow.store became a package
    __module__ = "pftflow.store"

    def __init__(
        self,
        path: str,
        collection_name: str,
        key: str = "task_id",
        last_updated_field: str = "last_updated",
        timeout_s: float = 120.0,
        journal_mode: str = "wal",
        **kwargs,
    ):
        if not _COLLECTION_RE.match(collection_name):
            raise ValueError(f"SQLiteStore: collection_name {collection_name!r} may only hold letters, digits, '_', '.', '-'")
        self.path = str(path)
        self.collection_name = collection_name
        self.timeout_s = float(timeout_s)
        self.journal_mode = journal_mode
        self.kwargs = kwargs
        self._conn: sqlite3.Connection | None = None
        self._pid: int | None = None
        self._lock = threading.RLock()
        self._table = f'"c_{collection_name}"'
        super().__init__(key=key, last_updated_field=last_updated_field, **kwargs)

    # ---------------------------------------------------------------- connection
    @property
    def name(self) -> str:
        return f"sqlite://{self.path}/{self.collection_name}"

    @property
    def _collection(self):
        """The sqlite3 connection (there is no pymongo collection behind this store)."""
        return self._connection()

    def connect(self, force_reset: bool = False):
        if self._conn is not None and not force_reset and self._pid == os.getpid():
            return
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None
        path = Path(self.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), timeout=self.timeout_s, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout_s * 1000)}")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise StoreVersionError(f"{path} has store layout {version}, this pftflow reads layout {SCHEMA_VERSION}: use the pftflow version that wrote it, or move it away and re-run (stored stages will be recomputed)")
            conn.execute(f"PRAGMA journal_mode = {self.journal_mode}")
            conn.execute("PRAGMA synchronous = NORMAL")  # WAL: durable across process crashes
            cols = ", ".join(f"{c}" for _, c in INDEXED_FIELDS)  # no type: values keep their SQL class
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(f"CREATE TABLE IF NOT EXISTS {self._table} (id INTEGER PRIMARY KEY, {cols}, doc BLOB NOT NULL)")
                for idx in _SQL_INDEXES:
                    conn.execute(f'CREATE INDEX IF NOT EXISTS "i_{self.collection_name}_{"_".join(idx)}" ON {self._table} ({", ".join(idx)})')
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError as err:
            conn.close()
            raise StoreVersionError(f"{path} is not a pftflow store ({err}): move it away and re-run") from err
        except BaseException:
            conn.close()
            raise
        self._conn, self._pid = conn, os.getpid()

    def close(self):
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"Must connect {self.name} before attempting to use it")
        if self._pid != os.getpid():  # forked child: never share the parent's sqlite handle
            self._conn = None
            self.connect()
        return self._conn

    @contextmanager
    def _write(self):
        conn = self._connection()
        with self._lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # ---------------------------------------------------------------- row access
    def _load(self, rowid: int) -> dict | None:
        with self._lock:
            row = self._connection().execute(f"SELECT doc FROM {self._table} WHERE id = ?", (rowid,)).fetchone()
        return None if row is None else decode_doc(row[0])

    def _candidates(self, criteria: dict, sort_cols: list[str] = ()) -> list[tuple[int, bool, tuple]]:
        """(rowid, needs the Mongo matcher, sort column values) of the SQL candidates, in insertion order."""
        where, params, exact, used = _plan(criteria)
        cols = ["id", *used, *sort_cols]
        with self._lock:
            rows = self._connection().execute(f"SELECT {', '.join(cols)} FROM {self._table}{where} ORDER BY id", params).fetchall()
        nu = len(used)
        out = []
        for r in rows:
            need = not exact or any(v == _MARKER for v in r[1 : 1 + nu])
            out.append((r[0], need, r[1 + nu :]))
        return out

    def _matching(self, criteria: dict) -> Iterator[tuple[int, dict | None]]:
        """(rowid, decoded doc or None if it was not needed) of the documents matching ``criteria``."""
        for rowid, need, _ in self._candidates(criteria):
            if not need:
                yield rowid, None
                continue
            doc = self._load(rowid)
            if doc is not None and filter_applies(criteria, doc):
                yield rowid, doc

    # ---------------------------------------------------------------- Store interface
    def count(self, criteria: dict | None = None, hint: dict | None = None) -> int:
        criteria = criteria or {}
        if not criteria:
            with self._lock:
                return self._connection().execute(f"SELECT COUNT(*) FROM {self._table}").fetchone()[0]
        return sum(1 for _ in self._matching(criteria))

    def query(
        self,
        criteria: dict | None = None,
        properties: dict | list | None = None,
        sort: dict[str, Sort | int] | None = None,
        skip: int = 0,
        limit: int = 0,
    ) -> Iterator[dict]:
        criteria = criteria or {}
        proj = _projection(properties)
        sort_items = _sort_items(sort)
        limit = abs(int(limit or 0))
        skip = int(skip or 0)
        sort_cols = [_COLUMN[k] for k, _ in sort_items] if sort_items and all(k in _COLUMN for k, _ in sort_items) else []
        rows = self._candidates(criteria, sort_cols)
        if sort_items and sort_cols and not any(v == _MARKER for _, _, sv in rows for v in sv):
            # sort on indexed columns holding only strings/numbers/missing: no decoding needed
            for i in reversed(range(len(sort_items))):
                rows.sort(key=lambda r, i=i: _sql_sort_key(r[2][i]), reverse=sort_items[i][1] < 0)
            order = [(rowid, need) for rowid, need, _ in rows]
        elif sort_items:
            # decode the candidates for their sort keys (keep only the keys, not the documents)
            keyed = []
            for rowid, need, _ in rows:
                doc = self._load(rowid)
                if doc is None or (need and not filter_applies(criteria, doc)):
                    continue
                keyed.append((rowid, [resolve_sort_key(k, doc) for k, _ in sort_items]))
            for i in reversed(range(len(sort_items))):
                keyed.sort(key=lambda r, i=i: r[1][i], reverse=sort_items[i][1] < 0)
            order = [(rowid, False) for rowid, _ in keyed]
        else:
            order = [(rowid, need) for rowid, need, _ in rows]

        skipped = returned = 0
        for rowid, need in order:
            if not need and skipped < skip:
                skipped += 1
                continue
            doc = self._load(rowid)
            if doc is None or (need and not filter_applies(criteria, doc)):
                continue
            if skipped < skip:
                skipped += 1
                continue
            yield doc if proj is None else _project(doc, *proj)
            returned += 1
            if limit and returned >= limit:
                return

    def update(self, docs: list[dict] | dict, key: list | str | None = None):
        if not isinstance(docs, list):
            docs = [docs]
        prepared = []
        for d in docs:
            if not _is_plain(d):
                d = jsanitize(d, allow_bson=True, recursive_msonable=True)
            if self.validator and not self.validator.is_valid(d):
                if self.validator.strict:
                    raise ValueError(self.validator.validation_errors(d))
                self.logger.error(self.validator.validation_errors(d))
                continue
            k = key or self.key
            search = {f: d[f] for f in k} if isinstance(k, list) else {k: d[k]}
            prepared.append((search, encode_doc(d), _index_values(d)))
        if not prepared:
            return
        cols = ", ".join(c for _, c in INDEXED_FIELDS)
        marks = ", ".join("?" for _ in INDEXED_FIELDS)
        sets = ", ".join(f"{c} = ?" for _, c in INDEXED_FIELDS)
        with self._write() as conn:
            for search, blob, vals in prepared:
                target = next(self._matching(search), None)
                if target is None:
                    conn.execute(f"INSERT INTO {self._table} ({cols}, doc) VALUES ({marks}, ?)", (*vals, blob))
                else:
                    conn.execute(f"UPDATE {self._table} SET {sets}, doc = ? WHERE id = ?", (*vals, blob, target[0]))

    def remove_docs(self, criteria: dict):
        with self._write() as conn:
            ids = [rowid for rowid, _ in self._matching(criteria or {})]
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                conn.execute(f"DELETE FROM {self._table} WHERE id IN ({', '.join('?' for _ in chunk)})", chunk)

    def ensure_index(self, key: str, unique: bool = False) -> bool:
        """True for the built-in indexed fields (:data:`INDEXED_FIELDS`); other fields (and unique
        indexes) are not indexed: queries on them still work, by scanning."""
        return key in _COLUMN and not unique

    def distinct(self, field: str, criteria: dict | None = None, all_exist: bool = False) -> list:
        seen, out = set(), []
        for doc in self.query(criteria, properties=[field]):
            for v in iter_key_candidates(field, doc):
                if v is NOTHING:
                    continue
                for x in v if isinstance(v, list) else [v]:
                    k = _value_key(x)
                    if k not in seen:
                        seen.add(k)
                        out.append(x)
        return out

    def groupby(
        self,
        keys: list[str] | str,
        criteria: dict | None = None,
        properties: dict | list | None = None,
        sort: dict[str, Sort | int] | None = None,
        skip: int = 0,
        limit: int = 0,
    ) -> Iterator[tuple[dict, list[dict]]]:
        from pydash import set_

        keys = [keys] if isinstance(keys, str) else list(keys)
        if properties is not None:
            properties = [*(properties.keys() if isinstance(properties, dict) else properties), *keys]
        groups: dict[bytes, tuple[dict, list]] = {}
        for doc in self.query(criteria, properties=properties, sort=sort, skip=skip, limit=limit):
            id_doc: dict = {}
            token = []
            for k in keys:
                v = next(iter(iter_key_candidates(k, doc)), NOTHING)
                if v is not NOTHING:
                    set_(id_doc, k, v)
                token.append(None if v is NOTHING else [v])
            groups.setdefault(encode_doc({"t": token}), (id_doc, []))[1].append(doc)
        yield from groups.values()

    # ---------------------------------------------------------------- identity
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SQLiteStore):
            return False
        return (self.path, self.collection_name, self.last_updated_field) == (other.path, other.collection_name, other.last_updated_field)

    def __hash__(self) -> int:
        return hash((self.path, self.collection_name, self.last_updated_field))
