"""The query planner of the embedded store: which document fields have an SQL column
(:data:`INDEXED_FIELDS`), the column values of a document, and the SQL that selects a superset of a Mongo
query's matches (the Mongo matcher decides the rest), sort keys and projections."""

from __future__ import annotations

import math
import re
from typing import Any

from maggma.core import Sort
from mongomock_ng.filtering import NOTHING

from pftflow.store.codec import encode_doc


#: document fields with an SQL column + index (dotted path, column name); equality, ``$eq`` and
#: ``$in`` on these are answered by SQL, other fields are matched by scanning
INDEXED_FIELDS: tuple[tuple[str, str], ...] = (
    ("uuid", "k_uuid"),
    ("index", "k_index"),
    ("blob_uuid", "k_blob_uuid"),
    ("job_uuid", "k_job_uuid"),
    ("job_index", "k_job_index"),
    ("completed_at", "k_completed_at"),
    ("metadata.pftflow_key", "k_pftflow_key"),
    ("metadata.campaign", "k_campaign"),
    ("metadata.stage", "k_stage"),
    ("metadata.material_id", "k_material_id"),
    ("metadata.model", "k_model"),
    ("metadata.kind", "k_kind"),
)
_COLUMN = dict(INDEXED_FIELDS)
_PATHS = tuple(tuple(path.split(".")) for path, _ in INDEXED_FIELDS)
_SQL_INDEXES = (
    ("k_uuid", "k_index"),
    ("k_blob_uuid",),
    ("k_job_uuid", "k_job_index"),
    ("k_pftflow_key",),
    ("k_campaign", "k_stage"),
    ("k_stage",),
    ("k_material_id",),
    ("k_model",),
)
#: column value of a field that is present but not a plain string/number: every lookup on that
#: column also returns such rows, and the Mongo matcher decides
_MARKER = b"\x00"
_MARKER_SQL = "X'00'"
_MAX_SQL_IN = 10_000
_COLLECTION_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")



def _simple(v: Any) -> bool:
    """Values SQL compares exactly as Mongo does: str, 64-bit int (not bool), non-NaN float."""
    t = type(v)
    return t is str or (t is int and -(2**63) <= v < 2**63) or (t is float and not math.isnan(v))


def _index_values(doc: dict) -> list:
    """Column values of :data:`INDEXED_FIELDS`: the value, None (missing) or the marker."""
    out = []
    for parts in _PATHS:
        v: Any = doc
        for p in parts:
            if type(v) is dict:
                v = v.get(p, NOTHING)
                if v is NOTHING:
                    break
            elif type(v) is list:  # Mongo matches dotted keys through arrays: let the matcher decide
                v = _MARKER
                break
            else:
                v = NOTHING
                break
        out.append(None if v is NOTHING else (v if _simple(v) else _MARKER))
    return out


# ------------------------------------------------------------------------------ query helpers
def _plan(criteria: dict) -> tuple[str, list, bool, list[str]]:
    """SQL WHERE selecting a superset of the matches; ``exact`` if it is exact for marker-free rows."""
    clauses: list[str] = []
    params: list = []
    used: list[str] = []
    exact = True
    stack = [criteria]
    while stack:
        crit = stack.pop()
        for k, v in crit.items():
            if k == "$and" and isinstance(v, list) and v and all(type(c) is dict for c in v):
                stack.extend(v)
                continue
            col = _COLUMN.get(k)
            vals = None
            if col is not None:
                if _simple(v):
                    vals = [v]
                elif type(v) is dict and len(v) == 1:
                    op, arg = next(iter(v.items()))
                    if op == "$eq" and _simple(arg):
                        vals = [arg]
                    elif op == "$in" and isinstance(arg, (list, tuple)) and len(arg) < _MAX_SQL_IN and all(_simple(a) for a in arg):
                        vals = list(arg)
            if vals is None:
                exact = False
                continue
            clauses.append(f"{col} IN ({''.join('?,' for _ in vals)}{_MARKER_SQL})")
            params.extend(vals)
            used.append(col)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    return where, params, exact, used


def _sort_items(sort) -> list[tuple[str, int]]:
    if not sort:
        return []
    items = sort.items() if isinstance(sort, dict) else sort
    return [(k, (v.value if isinstance(v, Sort) else int(v))) for k, v in items]


def _sql_sort_key(v: Any) -> tuple:
    """Mongo order for column values: null/missing < numbers < strings (UTF-8 byte order)."""
    if v is None:
        return (0, 0)
    if isinstance(v, str):
        return (2, v)
    return (1, v)


def _projection(properties) -> tuple[dict, bool] | None:
    """(tree of dotted paths, include?) or None for whole documents."""
    if properties is None:
        return None
    spec = dict(properties) if isinstance(properties, dict) else {p: 1 for p in properties}
    want_id = spec.pop("_id", 0)  # documents carry no _id here
    if not spec:  # {} / [] -> whole documents (pymongo 4), {"_id": 1} -> only the (absent) _id
        return ({}, True) if want_id else None
    if any(isinstance(v, dict) for v in spec.values()):
        raise NotImplementedError(f"projection operators are not supported by SQLiteStore: {properties}")
    flags = {bool(v) for v in spec.values()}
    if len(flags) > 1:
        raise ValueError(f"properties mix included and excluded fields (Mongo forbids it): {properties}")
    tree: dict = {}
    for path in sorted(spec, key=lambda p: p.count(".")):  # the shorter path wins a collision
        node = tree
        parts = path.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if node is True:
                break
        else:
            node[parts[-1]] = True
    return tree, flags.pop()


def _project_value(v: Any, tree: dict, include: bool) -> Any:
    if type(v) is dict:
        return _project(v, tree, include)
    # lists: sub-documents are projected; an include projection drops the scalars
    return [_project_value(x, tree, include) for x in v if not include or type(x) in (dict, list)]


def _project(doc: dict, tree: dict, include: bool) -> dict:
    out = {}
    for k, v in doc.items():
        spec = tree.get(k)
        if spec is None:
            if not include:
                out[k] = v
        elif spec is True:
            if include:
                out[k] = v
        elif type(v) in (dict, list):
            out[k] = _project_value(v, spec, include)
        elif not include:
            out[k] = v
    return out


def _value_key(v: Any) -> tuple:
    """Hashable identity of a value with Mongo's equality (1 == 1.0, True != 1)."""
    if isinstance(v, bool) or v is None:
        return ("b", v)
    if isinstance(v, (int, float)):
        return ("n", v)
    if isinstance(v, str):
        return ("s", v)
    return ("x", encode_doc({"v": v}))
