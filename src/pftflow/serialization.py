"""How science objects cross job boundaries: pydantic field types for arrays and structures.

jobflow serialises a job's output with monty (``jsanitize``) and the store writes it as JSON /
BSON.  A numpy array left to monty becomes nested Python lists (slow to encode, to store and to
decode again: ~70 % of a campaign's time before this module existed).  Here an array field is
serialised once into an :class:`ArrayBlob` — the raw bytes of one or several arrays, zlib-compressed
and base64-encoded — and jobflow routes every ``ArrayBlob`` to the additional ``data`` store *by
type* (``@job(data=[ArrayBlob])``), not by key name.  Reading a document back turns each blob into
numpy arrays again, bit for bit.

Field types (use them in pydantic documents):

* :data:`Array` — one numpy array; small arrays (≤ :data:`INLINE_MAX` elements) stay inline as
  lists so that they remain readable in the database (thermal properties, matrices).
* :data:`ArrayTree` — a dict / list tree with numpy arrays inside (phonopy displacement datasets,
  band structures, meshes), stored as one blob.
* :data:`Structure` — an ``ase.Atoms`` (cell Å, positions Å, masses amu).

No library offers a compact, exact, type-routed array encoding that monty, jobflow and maggma all
pass through unchanged; this is the small piece written by hand.
"""

from __future__ import annotations

import base64
import io
import json
import zlib
from typing import Annotated, Any

import numpy as np
from ase import Atoms
from monty.json import MSONable, TypeHandler, register
from pydantic import BaseModel, ConfigDict, PlainSerializer, PlainValidator, WithJsonSchema

#: arrays with at most this many elements stay inline (JSON lists) instead of becoming a blob
INLINE_MAX = 64
#: zlib level: 1 is ~4x faster than the default 6 and compresses float64 force constants almost as well
ZLIB_LEVEL = 1


class ArrayBlob(MSONable):
    """A tree (dict / list / scalars) with numpy arrays inside, as one compressed binary blob.

    ``skeleton`` is the JSON tree with every array replaced by ``{"__array__": i}``; ``npy_zlib_b64``
    is the base64 text of the zlib-compressed concatenation of the arrays' ``.npy`` bytes.
    """

    def __init__(self, skeleton: Any, npy_zlib_b64: str, n_arrays: int = 0):
        self.skeleton = skeleton
        self.npy_zlib_b64 = npy_zlib_b64
        self.n_arrays = n_arrays

    # ------------------------------------------------------------------ packing
    @classmethod
    def pack(cls, tree: Any) -> "ArrayBlob":
        arrays: list[np.ndarray] = []

        def walk(x):
            if isinstance(x, np.ndarray):
                arrays.append(x if x.flags.c_contiguous else np.array(x, order="C"))
                return {"__array__": len(arrays) - 1}
            if isinstance(x, dict):
                return {str(k): walk(v) for k, v in x.items()}
            if isinstance(x, (list, tuple)):
                return [walk(v) for v in x]
            if isinstance(x, np.generic):
                return x.item()
            return x

        skeleton = walk(tree)
        buf = io.BytesIO()
        for a in arrays:
            np.lib.format.write_array(buf, a, allow_pickle=False)
        data = base64.b64encode(zlib.compress(buf.getvalue(), ZLIB_LEVEL)).decode("ascii")
        return cls(skeleton, data, len(arrays))

    def unpack(self) -> Any:
        buf = io.BytesIO(zlib.decompress(base64.b64decode(self.npy_zlib_b64)))
        arrays = [np.lib.format.read_array(buf, allow_pickle=False) for _ in range(self.n_arrays)]

        def walk(x):
            if isinstance(x, dict):
                if set(x) == {"__array__"}:
                    return arrays[x["__array__"]]
                return {k: walk(v) for k, v in x.items()}
            if isinstance(x, list):
                return [walk(v) for v in x]
            return x

        return walk(self.skeleton)

    def as_dict(self) -> dict:
        return {
            "@module": self.__class__.__module__,
            "@class": self.__class__.__name__,
            "skeleton": self.skeleton,
            "npy_zlib_b64": self.npy_zlib_b64,
            "n_arrays": self.n_arrays,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "ArrayBlob":
        return cls(d["skeleton"], d["npy_zlib_b64"], d.get("n_arrays", 0))


def _is_blob_dict(v: Any) -> bool:
    return isinstance(v, dict) and v.get("@class") == "ArrayBlob" and "npy_zlib_b64" in v


def _unblob(v: Any) -> Any:
    if isinstance(v, ArrayBlob):
        return v.unpack()
    if _is_blob_dict(v):
        return ArrayBlob.from_dict(v).unpack()
    return v


# ---------------------------------------------------------------------------------- Array
def _array_in(v: Any) -> np.ndarray:
    v = _unblob(v)
    return v if isinstance(v, np.ndarray) else np.asarray(v)


def _array_out(a: np.ndarray) -> Any:
    a = np.asarray(a)
    if a.size <= INLINE_MAX and a.dtype.kind in "biuf":
        return a.tolist()
    return ArrayBlob.pack(a).as_dict()


Array = Annotated[
    np.ndarray,
    PlainValidator(_array_in),
    PlainSerializer(_array_out, when_used="always"),
    WithJsonSchema({"type": "array", "description": "numpy array (stored as a compressed blob when large)"}),
]

# -------------------------------------------------------------------------------- ArrayTree
#: keys of phonopy / phono3py displacement datasets whose values are float arrays
_DATASET_ARRAY_KEYS = {"displacement", "forces", "displacements", "supercell_energies"}


def _tree_in(v: Any) -> Any:
    v = _unblob(v)

    def norm(x, key=None):
        if key in _DATASET_ARRAY_KEYS and isinstance(x, list):
            return np.asarray(x, dtype=float)
        if isinstance(x, dict):
            return {k: norm(val, k) for k, val in x.items()}
        if isinstance(x, list):
            return [norm(val) for val in x]
        return x

    return norm(v)


def _tree_out(v: Any) -> Any:
    return None if v is None else ArrayBlob.pack(v).as_dict()


ArrayTree = Annotated[
    Any,
    PlainValidator(_tree_in),
    PlainSerializer(_tree_out, when_used="always"),
    WithJsonSchema({"type": "object", "description": "tree with numpy arrays (one compressed blob)"}),
]

# -------------------------------------------------------------------------------- Structure
def atoms_to_dict(atoms: Atoms) -> dict:
    """JSON-able dict of an ASE Atoms (cell and positions in Å, masses in amu)."""
    return {
        "symbols": list(atoms.get_chemical_symbols()),
        "cell_A": np.asarray(atoms.cell[:], dtype=float).tolist(),
        "positions_A": np.asarray(atoms.positions, dtype=float).tolist(),
        "masses_amu": np.asarray(atoms.get_masses(), dtype=float).tolist(),
        "pbc": [bool(p) for p in atoms.pbc],
    }


def dict_to_atoms(d: dict) -> Atoms:
    """Inverse of :func:`atoms_to_dict`."""
    atoms = Atoms(
        symbols=d["symbols"],
        cell=np.array(d["cell_A"], dtype=float),
        positions=np.array(d["positions_A"], dtype=float),
        pbc=d.get("pbc", True),
    )
    if d.get("masses_amu") is not None:
        atoms.set_masses(np.array(d["masses_amu"], dtype=float))
    return atoms


class AtomsCodec:
    """How an ``ase.Atoms`` passed to a job is serialised by monty / jobflow (ASE objects are not
    MSONable): encoded by the handler registered below, decoded by ``from_dict``."""

    @classmethod
    def from_dict(cls, d: dict) -> Atoms:
        return dict_to_atoms(d)


class _AtomsHandler(TypeHandler):
    module = __name__
    class_name = "AtomsCodec"

    def matches(self, obj: Any) -> bool:
        return isinstance(obj, Atoms)

    def encode(self, obj: Any) -> dict:
        return {"@module": self.module, "@class": self.class_name, **atoms_to_dict(obj)}

    def decode(self, d: dict) -> Any:
        return dict_to_atoms(d)

    def sanitize(self, obj: Any, recurse: Any, **opts: Any) -> Any:
        return self.encode(obj)


register(_AtomsHandler())


def _atoms_in(v: Any) -> Atoms:
    if isinstance(v, Atoms):
        return v
    if isinstance(v, dict):
        return dict_to_atoms({k: x for k, x in v.items() if not k.startswith("@")})
    raise ValueError(f"expected ase.Atoms or a structure dict (symbols, cell_A, positions_A), got {type(v).__name__}")


Structure = Annotated[
    Atoms,
    PlainValidator(_atoms_in),
    PlainSerializer(atoms_to_dict, when_used="always"),
    WithJsonSchema({"type": "object", "description": "structure: symbols, cell_A (Å), positions_A (Å), masses_amu"}),
]


class Document(BaseModel):
    """Base of every typed document: arbitrary (numpy / ASE) types allowed, unknown fields refused.

    Serialise with ``model_dump()`` / ``model_validate()``; monty and jobflow do so themselves
    (no ``as_dict`` here: monty would call it on the class when a job's ``output_schema`` is
    serialised)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", validate_default=False)


def to_json_value(x: Any) -> Any:
    """A value as plain JSON (arrays to lists) — for ``--json`` output and tables, not storage."""
    return json.loads(json.dumps(x, default=lambda o: o.tolist() if isinstance(o, (np.ndarray, np.generic)) else str(o)))
