"""The document codec of the embedded store: msgpack bytes of a (sanitised) job document, with
datetimes and ObjectIds kept (0.35 MB vs 0.76 MB of JSON for a float array, decoded 2x faster than orjson;
``benchmarks/store_scaling.py``)."""

from __future__ import annotations

import datetime as _dt
import gc
from itertools import chain
from typing import Any

import msgpack


# ------------------------------------------------------------------------------ encoding
_SCALAR_TYPES = frozenset({str, int, float, bool, type(None), bytes, _dt.datetime})
_PLAIN_TYPES = _SCALAR_TYPES | {dict, list}
_EXT_DATETIME, _EXT_OBJECTID = 1, 2

try:  # pymongo's bson (a maggma dependency): ObjectId values survive a round trip
    from bson import ObjectId
except ImportError:  # pragma: no cover
    ObjectId = None


def _is_plain(obj: Any) -> bool:
    """True if ``obj`` is only dicts with str keys, lists, str, numbers, bool, None, bytes, datetime.

    Such documents are stored as they are; anything else goes through ``jsanitize`` first (as
    maggma's MongoStore.update does).  Nested lists of numbers (arrays) are checked a whole level
    at a time with C-level ``set(map(type, ...))``, so a 110k-float array costs ~ms, not jsanitize's ~0.1 s.
    """
    stack = [obj]
    while stack:
        o = stack.pop()
        if type(o) is dict:
            if o and set(map(type, o)) != {str}:
                return False
            vals = list(o.values())
        else:
            vals = o
        types = set(map(type, vals))
        if types <= _SCALAR_TYPES:
            continue
        if not types <= _PLAIN_TYPES:
            return False
        if types == {list}:
            stack.append(list(chain.from_iterable(vals)))
        else:
            stack.extend(v for v in vals if type(v) is dict or type(v) is list)
    return True


def _default(o: Any) -> Any:
    if isinstance(o, _dt.datetime):
        return msgpack.ExtType(_EXT_DATETIME, o.isoformat().encode())
    if ObjectId is not None and isinstance(o, ObjectId):
        return msgpack.ExtType(_EXT_OBJECTID, o.binary)
    raise TypeError(f"cannot store a {type(o).__name__} in a pftflow store document: convert it to str/number/list/dict first")


def _ext_hook(code: int, data: bytes) -> Any:
    if code == _EXT_DATETIME:
        return _dt.datetime.fromisoformat(data.decode())
    if code == _EXT_OBJECTID and ObjectId is not None:
        return ObjectId(data)
    return msgpack.ExtType(code, data)


def encode_doc(doc: dict) -> bytes:
    """msgpack bytes of a (sanitised) document."""
    return msgpack.packb(doc, default=_default, use_bin_type=True, datetime=False)


def decode_doc(blob: bytes) -> dict:
    """Document from msgpack bytes.  The cyclic GC is paused while a large document (arrays: ~16k
    lists per 64x64x3x3 array) is built, as msgpack recommends: it cannot create cycles, and
    the collections its allocations trigger cost up to 10x the decoding itself (measured)."""
    if len(blob) < 65536 or not gc.isenabled():
        return msgpack.unpackb(blob, ext_hook=_ext_hook, raw=False, strict_map_key=True, timestamp=0)
    gc.disable()
    try:
        return msgpack.unpackb(blob, ext_hook=_ext_hook, raw=False, strict_map_key=True, timestamp=0)
    finally:
        gc.enable()
