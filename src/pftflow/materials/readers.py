"""Readers of reference phonon data; each returns a :class:`PhononReference`.

Formats
-------
* phonopy: ``phonopy_params.yaml`` / ``phonopy.yaml`` (with displacements+forces or force
  constants, BORN inside when present), or classic ``FORCE_SETS`` + ``phonopy_disp.yaml``;
  read with :func:`phonopy.load` (no force constants produced at read time).
* MDR-PBE (``mp-XXX.yaml(.bz2)``): unit_cell, supercell_matrix, primitive_matrix, displacements with
  forces, force_constants, temperatures, free_e (kJ/mol), entropy and heat_capacity (J/K/mol),
  phonon_freq (THz at commensurate q-points), energy (eV, may be NaN).
* atomate2 ``phonopy.yaml(.xz)`` from a PhononMaker run: phonopy yaml with displacements and forces.

Bad files raise :class:`ReferenceFormatError` naming the file and what is wrong.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import json
import lzma
import os
import tempfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import yaml

from pftflow.materials.reference import PhononReference, ReferenceFormatError, ThermalProperties
from pftflow.materials.structures import phonopy_to_atoms


def _open_text(path: Path):
    suffix = path.suffix.lower()
    if suffix == ".bz2":
        return bz2.open(path, "rt")
    if suffix in (".xz", ".lzma"):
        return lzma.open(path, "rt")
    if suffix == ".gz":
        return gzip.open(path, "rt")
    return open(path, "rt")


#: what reading a damaged (compressed) text file raises: truncated bz2 / xz give EOFError, garbage
#: OSError / LZMAError, binary content UnicodeDecodeError
_READ_ERRORS = (OSError, EOFError, lzma.LZMAError, UnicodeDecodeError)


def _compression_note(path: Path) -> str:
    tool = {".bz2": "bzip2 -t", ".xz": "xz -t", ".lzma": "xz -t", ".gz": "gzip -t"}.get(Path(path).suffix.lower())
    return f" (damaged or truncated {Path(path).suffix} file? `{tool} {Path(path).name}` tests it)" if tool else ""


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _provenance(path: Path, fmt: str, **extra) -> dict:
    import phonopy

    return {
        "path": str(Path(path).resolve()),
        "format": fmt,
        "sha256": _sha256(path),
        "phonopy_version": phonopy.__version__,
        **extra,
    }


def _default_material_id(path: Path) -> str:
    name = path.name
    for ext in (".bz2", ".xz", ".lzma", ".gz", ".yaml", ".yml"):
        if name.endswith(ext):
            name = name[: -len(ext)]
    generic = {"phonopy", "phonopy_params", "phonopy_disp", "FORCE_SETS"}
    if name in generic or not name:
        return path.parent.name
    for prefix in ("phonopy_params_", "phonopy_disp_", "FORCE_SETS_"):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def _load_yaml(path: Path) -> dict:
    try:
        with _open_text(path) as fh:
            data = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (*_READ_ERRORS, yaml.YAMLError) as exc:
        raise ReferenceFormatError(f"{path}: cannot read as (compressed) YAML{_compression_note(path)}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(data, dict):
        raise ReferenceFormatError(f"{path}: expected a YAML mapping at top level, got {type(data).__name__}")
    return data


# ------------------------------------------------------------------------------------ phonopy
def read_phonopy(
    path: str | os.PathLike,
    *,
    force_sets: str | os.PathLike | None = None,
    born: str | os.PathLike | None = None,
    material_id: str | None = None,
    fmt: str = "phonopy",
) -> PhononReference:
    """Read a phonopy yaml (``phonopy_params``/``phonopy.yaml``/``phonopy_disp.yaml``) with optional
    ``FORCE_SETS`` and ``BORN`` files.  Masses in the yaml are kept.
    """
    import phonopy

    path = Path(path)
    if not path.is_file():
        raise ReferenceFormatError(f"{path}: file not found")
    if force_sets is None and path.name.startswith("phonopy_disp"):
        cand = path.parent / path.name.replace("phonopy_disp", "FORCE_SETS").replace(".yaml", "")
        if cand.is_file():
            force_sets = cand
        elif (path.parent / "FORCE_SETS").is_file():
            force_sets = path.parent / "FORCE_SETS"
    try:
        ph = phonopy.load(
            str(path),
            force_sets_filename=None if force_sets is None else str(force_sets),
            born_filename=None if born is None else str(born),
            produce_fc=False,
            log_level=0,
        )
    except Exception as exc:  # noqa: BLE001 - phonopy raises many types; we name the file
        note = _compression_note(path) if isinstance(exc, _READ_ERRORS) else ""
        raise ReferenceFormatError(f"{path}: phonopy could not load it{note}: {type(exc).__name__}: {exc}") from exc

    dataset = ph.dataset
    fc = ph.force_constants
    if fc is None and not _dataset_has_forces(dataset):
        raise ReferenceFormatError(
            f"{path}: no forces in the displacement dataset and no force constants; "
            "pass the FORCE_SETS file (force_sets=...) or a phonopy_params.yaml with forces"
        )
    if fc is not None and fc.shape[0] != fc.shape[1]:
        fc = None if _dataset_has_forces(dataset) else _compact_to_full(ph, fc)
    prov_extra = {"force_sets": None if force_sets is None else str(Path(force_sets).resolve())}
    return PhononReference(
        material_id=material_id or _default_material_id(path if force_sets is None else Path(force_sets)),
        unitcell=phonopy_to_atoms(ph.unitcell),
        supercell_matrix=np.array(ph.supercell_matrix, dtype=int),
        primitive_matrix=None if ph.primitive_matrix is None else np.array(ph.primitive_matrix, dtype=float),
        dataset=dataset,
        force_constants=None if fc is None else np.array(fc, dtype=float),
        nac_params=ph.nac_params,
        provenance=_provenance(path, fmt, **prov_extra),
    )


def _compact_to_full(ph, fc):
    from phonopy.harmonic.force_constants import compact_fc_to_full_fc

    return compact_fc_to_full_fc(ph.primitive, fc)


def _dataset_has_forces(ds: dict | None) -> bool:
    if not ds:
        return False
    if "first_atoms" in ds:
        return len(ds["first_atoms"]) > 0 and all("forces" in d for d in ds["first_atoms"])
    return "forces" in ds


def read_atomate2(path: str | os.PathLike, *, material_id: str | None = None) -> PhononReference:
    """Read an atomate2 PhononMaker ``phonopy.yaml(.xz)`` (displacements with DFT forces).

    The material id defaults to the parent folder's name (atomate2 campaigns store one folder per
    material, e.g. ``mp-2534/phonopy.yaml.xz``).
    """
    path = Path(path)
    return read_phonopy(path, material_id=material_id or path.parent.name, fmt="atomate2")


# ------------------------------------------------------------------------------------ MDR
def _mdr_cell(block: dict, path: Path, key: str):
    from phonopy.structure.atoms import PhonopyAtoms

    try:
        points = block["points"]
        patoms = PhonopyAtoms(
            symbols=[p["symbol"] for p in points],
            cell=np.array(block["lattice"], dtype=float),
            scaled_positions=np.array([p["coordinates"] for p in points], dtype=float),
            masses=[float(p["mass"]) for p in points] if all("mass" in p for p in points) else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ReferenceFormatError(f"{path}: '{key}' block is malformed ({exc})") from exc
    return phonopy_to_atoms(patoms)


def read_mdr(path: str | os.PathLike, *, material_id: str | None = None) -> PhononReference:
    """Read an MDR-PBE phonon file (``mp-XXX.yaml`` or ``.yaml.bz2``).

    NaN total energies (as in some MDR files) are kept as NaN, not treated as an error.
    """
    path = Path(path)
    if not path.is_file():
        raise ReferenceFormatError(f"{path}: file not found")
    d = _load_yaml(path)
    for key in ("unit_cell", "supercell_matrix"):
        if key not in d:
            raise ReferenceFormatError(f"{path}: missing required key '{key}' (MDR format)")
    unitcell = _mdr_cell(d["unit_cell"], path, "unit_cell")
    n_uc = len(unitcell)
    smat = np.array(d["supercell_matrix"], dtype=int)
    if smat.shape != (3, 3):
        raise ReferenceFormatError(f"{path}: supercell_matrix must be 3x3, got shape {smat.shape}")
    n_sc = int(round(abs(np.linalg.det(smat)))) * n_uc
    pmat = None if d.get("primitive_matrix") is None else np.array(d["primitive_matrix"], dtype=float)

    dataset = None
    if d.get("displacements"):
        first_atoms = []
        for i, disp in enumerate(d["displacements"]):
            try:
                entry = {"number": int(disp["atom"]) - 1, "displacement": np.array(disp["displacement"], dtype=float)}
                if "forces" in disp:
                    f = np.array(disp["forces"], dtype=float)
                    if f.shape != (n_sc, 3):
                        raise ReferenceFormatError(
                            f"{path}: displacement {i + 1} has forces of shape {f.shape}, expected ({n_sc}, 3)"
                        )
                    entry["forces"] = f
            except (KeyError, TypeError) as exc:
                raise ReferenceFormatError(f"{path}: displacement {i + 1} is malformed ({exc})") from exc
            first_atoms.append(entry)
        dataset = {"natom": n_sc, "first_atoms": first_atoms}

    fc = None
    if d.get("force_constants") is not None:
        block = d["force_constants"]
        elements = block.get("elements") if isinstance(block, dict) else block
        fc = np.array(elements, dtype=float)
        if fc.ndim == 3 and fc.shape[1:] == (3, 3):  # flattened (n*n, 3, 3)
            fc = fc.reshape(n_sc, -1, 3, 3)
        if fc.shape not in ((n_sc, n_sc, 3, 3),):
            raise ReferenceFormatError(
                f"{path}: force_constants has shape {fc.shape}, expected full ({n_sc}, {n_sc}, 3, 3)"
            )
    if fc is None and not _dataset_has_forces(dataset):
        raise ReferenceFormatError(f"{path}: neither force_constants nor displacements with forces")

    thermal = None
    if all(k in d for k in ("temperatures", "free_e", "entropy", "heat_capacity")):
        thermal = ThermalProperties(
            temperatures_K=np.array(d["temperatures"], dtype=float),
            free_energy_kJ_per_mol=np.array(d["free_e"], dtype=float),
            entropy_J_per_K_mol=np.array(d["entropy"], dtype=float),
            heat_capacity_J_per_K_mol=np.array(d["heat_capacity"], dtype=float),
        )
    freqs = None if d.get("phonon_freq") is None else np.array(d["phonon_freq"], dtype=float)
    energy = d.get("energy")
    energy = float("nan") if energy is None or (isinstance(energy, str) and energy.lower() == "nan") else float(energy)
    extra = {}
    if isinstance(d.get("space_group"), dict):
        extra["space_group_number"] = d["space_group"].get("number")
    return PhononReference(
        material_id=material_id or _default_material_id(path),
        unitcell=unitcell,
        supercell_matrix=smat,
        primitive_matrix=pmat,
        dataset=dataset,
        force_constants=fc,
        thermal=thermal,
        commensurate_frequencies_THz=freqs,
        energy_eV=energy,
        provenance=_provenance(path, "mdr", **extra),
    )


# ------------------------------------------------------------------------------------ dispatch
FORMATS = ("phonopy", "mdr", "atomate2")


def detect_format(path: str | os.PathLike) -> str:
    """Guess the format of a reference file from its name and top-level keys."""
    path = Path(path)
    name = path.name
    if name.startswith("FORCE_SETS") or name.startswith("phonopy_disp") or name.startswith("phonopy_params"):
        return "phonopy"
    if name.startswith("phonopy.yaml"):
        return "atomate2"
    try:
        with _open_text(path) as fh:  # top-level keys only; files are at most a few MB
            keys = {line.split(":")[0] for line in fh if line[:1].isalpha() and ":" in line}
    except _READ_ERRORS as exc:
        raise ReferenceFormatError(f"{path}: cannot read it{_compression_note(path)}: {type(exc).__name__}: {exc}") from exc
    if keys & {"free_e", "phonon_freq"}:
        return "mdr"
    if "phonopy" in keys:
        return "phonopy"
    raise ReferenceFormatError(f"{path}: cannot tell the format (expected phonopy, MDR or atomate2 yaml)")


def read_reference(
    path: str | os.PathLike,
    *,
    fmt: str | None = None,
    material_id: str | None = None,
    force_sets: str | os.PathLike | None = None,
    born: str | os.PathLike | None = None,
) -> PhononReference:
    """Read any supported reference file (format auto-detected unless ``fmt`` is given).

    Every problem with the file is a :class:`ReferenceFormatError` naming it (a damaged ``.bz2`` /
    ``.xz`` included).  A file read before in this process, unchanged since (same size and mtime),
    is not parsed again: the campaign spec reads every reference file when it is validated, and the
    import job of the run then gets a copy of that result.
    """
    path = Path(path)
    if not path.exists():
        raise ReferenceFormatError(f"{path}: file not found")
    if path.is_dir():
        raise ReferenceFormatError(f"{path}: is a directory, not a reference file")
    key = _cache_key(path, fmt, force_sets, born)
    ref = _CACHE.get(key) if key is not None else None
    if ref is None:
        ref = _read_uncached(path, fmt=fmt, force_sets=force_sets, born=born)
        if key is not None:
            _cache_put(key, ref)
    ref = ref.model_copy(deep=True)  # callers may change what they get; the cached one stays as read
    if material_id:
        ref.material_id = material_id
    return ref


def _read_uncached(path: Path, *, fmt, force_sets, born) -> PhononReference:
    try:
        fmt = fmt or detect_format(path)
        if fmt == "mdr":
            return read_mdr(path)
        if fmt == "atomate2":
            return read_atomate2(path)
        if fmt == "phonopy":
            return read_phonopy(path, force_sets=force_sets, born=born)
    except ReferenceFormatError:
        raise
    except Exception as exc:  # noqa: BLE001 - numpy / phonopy / yaml raise many types on bad content; name the file
        raise ReferenceFormatError(f"{path}: cannot read it{_compression_note(path) if isinstance(exc, _READ_ERRORS) else ''}: {type(exc).__name__}: {exc}") from exc
    raise ReferenceFormatError(f"{path}: unknown format {fmt!r}; choose one of {FORMATS}")


# ------------------------------------------------------------------------------------ parse cache
#: parsed references by (absolute path, size, mtime, format, auxiliary files); bounded by the bytes
#: of their arrays (a 216-atom MDR file holds 3.4 MB of force constants)
_CACHE: "OrderedDict[tuple, PhononReference]" = OrderedDict()
CACHE_MAX_BYTES = 512 * 2**20


def _stat_key(p: str | os.PathLike | None):
    if p is None:
        return None
    st = os.stat(p)
    return (os.path.abspath(p), st.st_size, st.st_mtime_ns)


def _cache_key(path: Path, fmt, force_sets, born) -> tuple | None:
    try:
        return (_stat_key(path), fmt, _stat_key(force_sets), _stat_key(born))
    except OSError:
        return None


def _nbytes(ref: PhononReference) -> int:
    n = 0 if ref.force_constants is None else np.asarray(ref.force_constants).nbytes
    ds = ref.dataset or {}
    for d in ds.get("first_atoms", []):
        n += np.asarray(d.get("forces", 0.0)).nbytes
    if "forces" in ds:
        n += np.asarray(ds["forces"]).nbytes
    return n + 10_000


def _cache_put(key: tuple, ref: PhononReference) -> None:
    _CACHE[key] = ref
    _CACHE.move_to_end(key)
    while len(_CACHE) > 1 and sum(_nbytes(r) for r in _CACHE.values()) > CACHE_MAX_BYTES:
        _CACHE.popitem(last=False)


def clear_cache() -> None:
    """Forget the parsed reference files."""
    _CACHE.clear()


# ------------------------------------------------------------------------------------ checked-file record
#: Reference files that passed the spec's load-time checks, across processes: a small JSON file
#: ``$PFTFLOW_CACHE_DIR`` (default ``$XDG_CACHE_HOME/pftflow`` or ``~/.cache/pftflow``) /
#: ``checked-references.json`` mapping (absolute path, size, mtime, format, auxiliary files, checks
#: version) to the file's elements.  A spec over 39 atomate2 files then loads in well under a second
#: the second time instead of re-parsing every file (~1-1.5 s each); any change to a file (size or
#: mtime) or to the checks reads it again.  No library offers this; it is a plain JSON dict.
CHECKS_VERSION = 1


def _cache_dir() -> Path:
    root = os.environ.get("PFTFLOW_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pftflow"
    return Path(root)


def _checked_key(path, fmt, force_sets, born) -> str | None:
    key = _cache_key(Path(path), fmt, force_sets, born)
    return None if key is None else repr((key, CHECKS_VERSION))


def _checked_records() -> dict:
    try:
        return json.loads((_cache_dir() / "checked-references.json").read_text())
    except (OSError, ValueError):
        return {}


def checked_species(path, *, fmt=None, force_sets=None, born=None) -> tuple[str, ...] | None:
    """The elements of a reference file that passed the load-time checks before, unchanged since;
    None when it has not (read and check it, then :func:`remember_checked`)."""
    key = _checked_key(path, fmt, force_sets, born)
    hit = _checked_records().get(key) if key is not None else None
    return tuple(hit) if isinstance(hit, list) else None


def remember_checked(path, species, *, fmt=None, force_sets=None, born=None) -> None:
    """Record that ``path`` passed the load-time checks (best effort: an unwritable cache is skipped)."""
    key = _checked_key(path, fmt, force_sets, born)
    if key is None:
        return
    records = _checked_records()
    records[key] = list(species)
    try:
        d = _cache_dir()
        d.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=d, delete=False, suffix=".tmp") as fh:
            json.dump(records, fh)
        os.replace(fh.name, d / "checked-references.json")
    except OSError:
        pass
