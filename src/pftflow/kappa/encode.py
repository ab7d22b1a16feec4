"""Compact, JSON-able encoding of large float arrays (per-mode κ) for the store.

``encode_array`` stores ``{"dtype", "shape", "zlib_b64"}``: the array cast to ``dtype``
(float32 by default, ~7 significant digits — enough for per-mode κ), zlib-compressed,
base64 text.  ``decode_array`` inverts it (returns float64).
"""

from __future__ import annotations

import base64
import zlib

import numpy as np


def encode_array(arr, dtype: str = "float32", level: int = 6) -> dict | None:
    if arr is None:
        return None
    a = np.ascontiguousarray(np.asarray(arr, dtype=dtype))
    return {
        "encoding": "zlib+base64",
        "dtype": str(a.dtype),
        "shape": list(a.shape),
        "zlib_b64": base64.b64encode(zlib.compress(a.tobytes(), level)).decode("ascii"),
    }


def decode_array(d: dict | None) -> np.ndarray | None:
    if d is None:
        return None
    raw = zlib.decompress(base64.b64decode(d["zlib_b64"]))
    return np.frombuffer(raw, dtype=d["dtype"]).reshape(d["shape"]).astype(float)
