"""VASP through atomate2: the force sub-maker of ``reference: {mode: compute, code: vasp}``.

:class:`VaspForceMaker` is a :class:`~pftflow.flows.phonons.ForceMaker` variant: the phonon maker
gives it the displacement set (``d.output.supercells``, a
:class:`~pftflow.documents.StructureSet`) and reads a
:class:`~pftflow.calculators.base.ForceResults` back, exactly as from the ASE force maker.

The structure set is an ``OutputReference`` when the flow is built, so the number of structures is
known only at run time: ``make`` returns one job that, when it runs, replaces itself (jobflow
``Response(replace=...)``, as atomate2's ``run_phonon_displacements``) with the flow of
:meth:`VaspForceMaker.make_flow`:

* one atomate2 VASP static per structure (atomate2's ``StaticMaker`` with the phonon input set of
  :func:`pftflow.calculators.vasp.phonon_input_set`; the pymatgen ``Structure`` is built from the
  arrays in the set's atom order, and the input set does not sort it), each run in its own folder
  ``<run_dir>/<material>/static-<i>-<uuid>`` (:func:`vasp_static`);
* one :func:`collect_vasp_forces` job that turns the atomate2 ``TaskDoc`` outputs into a
  ``ForceResults`` (eV, eV/Å, eV/Å³ with ASE's sign) with the provenance of the run.

The replacement inherits the launching job's metadata (``pftflow_key``, material, stage), so the
force set is stored and found like any other.  Static ``i`` gets the key ``static_key(force set
key, i)``: when an interrupted force set runs again, the launcher (which sees the store) reads the
statics already stored and runs only the missing ones.  Under FireWorks each static is its own
Firework (resource category ``cpu-heavy``; the launcher and the collect job are ``light``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase.units import GPa
from jobflow import CURRENT_JOB, Flow, Job, OutputReference, Response, job

from pftflow.calculators.base import ForceResults
from pftflow.calculators.vasp import VaspSettings, phonon_input_set
from pftflow.documents import StructureSet
from pftflow.flows.jobs import BLOBS
from pftflow.flows.makers import ForceMaker, set_resources
from pftflow.flows.reuse import stored_jobs
from pftflow.identity import content_key

try:
    from atomate2.vasp.jobs.base import _DATA_OBJECTS
    from atomate2.vasp.jobs.core import StaticMaker
    from emmet.core.tasks import TaskDoc
except ImportError as err:  # pragma: no cover - exercised only without atomate2
    raise ImportError(
        "reference code 'vasp' needs atomate2 (VASP through atomate2): install it with `pip install 'pftflow[vasp]'`"
    ) from err

#: VASP reports stress in kBar with the opposite sign of ASE (positive = compressive); 1 kBar = 0.1 GPa
KBAR_TO_EV_PER_A3 = 0.1 * GPa


def vasp_stress_to_ase_voigt(stress_kbar) -> np.ndarray:
    """VASP's 3x3 stress (kBar, positive = compressive, as in vasprun.xml / OUTCAR "in kB") as
    ASE's Voigt stress (eV/Å³, xx yy zz yz xz xy, positive = tensile): ``-0.1 GPa x stress``, the
    conversion ASE's own vasprun reader applies."""
    from ase.stress import full_3x3_to_voigt_6_stress

    return full_3x3_to_voigt_6_stress(-np.asarray(stress_kbar, dtype=float).reshape(3, 3) * KBAR_TO_EV_PER_A3)


def to_pymatgen(structures: StructureSet) -> list:
    """pymatgen Structures of a structure set, atom order and Cartesian positions kept."""
    from pymatgen.core import Lattice, Structure

    return [
        Structure(Lattice(cell), structures.symbols, pos, coords_are_cartesian=True)
        for cell, pos in zip(structures.cells_A, structures.positions_A)
    ]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "structures"


@dataclass
class VaspForceMaker(ForceMaker):
    """Energies, forces and stresses of a structure set with VASP, one atomate2 static each.

    ``settings``: :class:`~pftflow.calculators.vasp.VaspSettings` fields (INCAR overrides,
    k-points, POTCARs, run folder, run_vasp options).  ``make(structures)`` returns a job whose
    output is the :class:`~pftflow.calculators.base.ForceResults` (the statics are added when it
    runs); :meth:`make_flow` builds the statics + collect flow for a set known now.
    """

    name: str = "vasp forces"
    calculator: Any = field(default_factory=lambda: {"code": "vasp"})
    settings: dict = field(default_factory=dict)

    def __post_init__(self):
        self.settings = VaspSettings(**self.settings).model_dump(mode="json")  # validated, defaults filled
        if self.key_part is None:  # what stands for the calculator in the content keys
            self.key_part = {"code": "vasp", **VaspSettings(**self.settings).key_dict()}

    def make(self, structures) -> Job:
        # the launcher only builds the statics (light); each static is the heavy part.  It sees the
        # store (expose_store) to reuse statics stored by an earlier, interrupted run.
        j = set_resources(vasp_forces(structures, self.settings), "light")
        j.config.expose_store = True
        return j

    def make_flow(
        self, structures: StructureSet, *, name: str | None = None, metadata: dict | None = None, folder: str | None = None, stored: dict[int, str] | None = None
    ) -> Flow:
        """Statics of every structure of ``structures`` and the collect job (its output: the
        ``ForceResults``).  ``name`` prefixes the job names; ``metadata`` tags the jobs, and its
        ``pftflow_key`` (the force set's key) gives static ``i`` the key :func:`static_key`;
        ``folder`` names their folder under ``run_dir``; ``stored``: ``{i: uuid}`` of statics
        already in the store, read from there instead of being run again."""
        s = VaspSettings(**self.settings)
        name = name or self.name
        parent_key = (metadata or {}).get("pftflow_key")
        meta = {k: v for k, v in (metadata or {}).items() if k != "pftflow_key"}
        folder = folder or _safe(str(meta.get("material_id") or name))
        stored = stored or {}
        n = len(structures)
        jobs_: list[Job] = []
        refs = []
        for i, structure in enumerate(to_pymatgen(structures)):
            if i in stored:
                refs.append(OutputReference(stored[i]))
                continue
            maker = StaticMaker(name=f"{name} static {i + 1}/{n}", input_set_generator=phonon_input_set(s, structure), run_vasp_kwargs=dict(s.run_vasp_kwargs))
            st = vasp_static(maker, structure, str(Path(s.run_dir) / folder / f"static-{i + 1:03d}"))
            st.name = maker.name
            st.metadata = {**meta, "vasp_static": i + 1}
            if parent_key:
                st.metadata["pftflow_key"] = static_key(parent_key, i)
            jobs_.append(set_resources(st, "cpu-heavy"))
            refs.append(st.output)
        collect = collect_vasp_forces(
            [r.output for r in refs],
            [r.input for r in refs],
            [r.vasp_version for r in refs],
            [r.dir_name for r in refs],
            [r.run_stats for r in refs],
            structures,
            self.settings,
        )
        collect.name = f"{name} collect"
        collect.metadata = {**meta}
        set_resources(collect, "light")
        return Flow([*jobs_, collect], output=collect.output, name=f"{name} vasp")


def static_key(force_set_key: str, i: int) -> str:
    """Content key of static ``i`` of a force set (its structure and settings are determined by the
    force set's key)."""
    return content_key(force_set_key, "vasp_static", i)


@job(data=BLOBS)  # no output_schema: the stored output is a reference to the collect job's ForceResults
def vasp_forces(structures: StructureSet, settings: dict) -> Response:
    """Replace this job by the VASP statics of ``structures`` and their collect job (the output,
    a ForceResults, is stored under this job's uuid and metadata)."""
    me = CURRENT_JOB.job
    meta = dict(me.metadata or {})
    stored: dict[int, str] = {}
    store = getattr(CURRENT_JOB, "store", None)
    if meta.get("pftflow_key") and store is not None:
        keys = {static_key(meta["pftflow_key"], i): i for i in range(len(structures))}
        stored = {keys[k]: uuid for k, uuid in stored_jobs(store, keys).items()}
    flow = VaspForceMaker(settings=settings).make_flow(structures, name=me.name, metadata=meta, stored=stored)
    return Response(replace=flow)


@job(data=_DATA_OBJECTS, output_schema=TaskDoc)
def vasp_static(maker: StaticMaker, structure, directory: str) -> Response:
    """atomate2's VASP static (``maker.make``'s own body: write inputs, run VASP through
    custodian, parse the TaskDoc, gzip) run in the folder ``<directory>-<first 8 characters of the
    job uuid>`` (created), so that statics run one after another in the same working directory
    (``run_locally``) do not share files and a rerun does not overwrite an earlier attempt."""
    path = Path(directory).expanduser()
    path = path.with_name(f"{path.name}-{CURRENT_JOB.job.uuid[:8]}")
    path.mkdir(parents=True, exist_ok=True)
    cwd = os.getcwd()
    os.chdir(path)
    try:
        # the undecorated body of atomate2's BaseVaspMaker.make (the decorator only makes it a job)
        return type(maker).make.original(maker, structure)
    finally:
        os.chdir(cwd)


def _get(obj: Any, key: str, default: Any = None) -> Any:
    """A field of a TaskDoc part, whether jobflow handed it over as a document or as a dict."""
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _as_plain(obj: Any) -> Any:
    """A pymatgen / pydantic object as a plain dict (no ``@class``: provenance stays plain data)."""
    if hasattr(obj, "as_dict"):
        obj = obj.as_dict()
    elif hasattr(obj, "model_dump"):
        obj = obj.model_dump(mode="json")
    if isinstance(obj, dict):
        return {k: v for k, v in obj.items() if k not in ("@module", "@class", "@version")}
    return obj


def _check_order(i: int, structure: Any, symbols: list[str], cell, positions) -> None:
    """The structure VASP computed has the input's atoms in the input's order."""
    from pymatgen.core import Structure

    s = structure if isinstance(structure, Structure) else Structure.from_dict(structure)
    got = [site.specie.symbol for site in s]
    if got != list(symbols):
        k = next((j for j, (a, b) in enumerate(zip(got, symbols)) if a != b), min(len(got), len(symbols)))
        raise ValueError(
            f"VASP static {i + 1}: atom order differs from the structure set (site {k}: {got[k] if k < len(got) else None} "
            f"vs {symbols[k] if k < len(symbols) else None}); the input set must keep the order (sort_structure=False)"
        )
    frac_in = np.linalg.solve(np.asarray(cell, float).T, np.asarray(positions, float).T).T
    d = s.frac_coords - frac_in
    d -= np.round(d)
    dist = np.linalg.norm(d @ np.asarray(cell, float), axis=1)
    off = np.flatnonzero(dist > 1e-4)
    if off.size:
        k = int(off[0])
        raise ValueError(
            f"VASP static {i + 1}: site {k} is {dist[k]:.2e} Å from the structure set's position ({off.size} sites off); "
            "the statics must keep the set's atom order and positions"
        )


@job(output_schema=ForceResults, data=BLOBS)
def collect_vasp_forces(
    outputs: list, inputs: list, vasp_versions: list, dir_names: list, run_stats: list, structures: StructureSet, settings: dict
) -> ForceResults:
    """ForceResults of the VASP statics, from their atomate2 TaskDocs (``output``: energy eV,
    forces eV/Å, stress kBar in VASP's sign; ``input``: INCAR, k-points and POTCARs VASP ran with).

    Energies are VASP's energy(σ→0) as atomate2 / pymatgen report it (``Vasprun.final_energy``);
    stresses are converted to eV/Å³, Voigt, ASE's sign (:func:`vasp_stress_to_ase_voigt`).
    """
    from importlib.metadata import version

    if len(outputs) != len(structures):
        raise ValueError(f"{len(outputs)} VASP outputs for {len(structures)} structures")
    energies, forces, stresses = [], [], []
    for i, out in enumerate(outputs):
        _check_order(i, _get(out, "structure"), structures.symbols, structures.cells_A[i], structures.positions_A[i])
        f = np.asarray(_get(out, "forces"), dtype=float)
        if f.shape != (len(structures.symbols), 3):
            raise ValueError(f"VASP static {i + 1}: forces of shape {f.shape}, expected ({len(structures.symbols)}, 3)")
        forces.append(f)
        energies.append(float(_get(out, "energy")))
        stress = _get(out, "stress")
        stresses.append(None if stress is None else vasp_stress_to_ase_voigt(stress))

    def per_structure(values: list) -> Any:
        plain = [_as_plain(v) for v in values]
        return plain[0] if all(p == plain[0] for p in plain) else plain

    potcar_spec = [_as_plain(p) for p in (_get(inputs[0], "potcar_spec") or [])]
    times = [_get(_get(r, "standard") if isinstance(r, dict) else None, "elapsed_time") for r in run_stats]
    provenance = {
        "name": "VASP",
        "backend": "vasp",
        "code": "vasp",
        "version": per_structure([str(v).strip() for v in vasp_versions]),
        "atomate2_version": version("atomate2"),
        "incar": per_structure([_get(x, "incar") for x in inputs]),
        "kpoints": per_structure([_get(x, "kpoints") for x in inputs]),
        "potcar_symbols": _get(inputs[0], "potcar"),
        "potcar_titels": [_get(p, "titel") for p in potcar_spec],
        "potcar_hashes": [_get(p, "hash") for p in potcar_spec],
        "potcar_functional": settings.get("potcar_functional"),
        "settings": VaspSettings(**settings).key_dict(),
        "dir_names": [str(d) for d in dir_names],
        "energy": "VASP energy(sigma->0), pymatgen Vasprun.final_energy (eV)",
    }
    return ForceResults(
        energies_eV=np.array(energies),
        forces_eV_per_A=forces,
        stresses_eV_per_A3=None if any(s is None for s in stresses) else np.array(stresses),
        provenance=provenance,
        wall_time_s=float(sum(times)) if times and all(t is not None for t in times) else None,
    )
