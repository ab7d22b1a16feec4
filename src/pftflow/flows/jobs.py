"""Thin jobflow jobs around the science functions (atomate2 style: jobs do I/O, science is pure).

Every job returns a JSON-able dict.  Keys listed in ``LARGE_KEYS`` are routed to the JobStore's
additional ``data`` store (see :mod:`pftflow.store`), so the docs store stays small.
"""

from __future__ import annotations

import platform
import time
from importlib.metadata import PackageNotFoundError, version

import numpy as np
from jobflow import job

from pftflow.materials.reference import PhononReference
from pftflow.materials.structures import atoms_to_dict, dict_to_atoms

#: output keys stored in the additional "data" store (large arrays)
LARGE_KEYS = [
    "force_constants",
    "dataset",
    "forces_eV_per_A",
    "supercells",
    "band_structure",
    "mesh",
    "dos",
]


def software_versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in ("pftflow", "phonopy", "phono3py", "ase", "spglib", "jobflow", "maggma", "torch", "sevenn", "chgnet", "mace-torch", "gpaw"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


@job
def record_parameters(spec: dict) -> dict:
    """Store the campaign spec and the software versions that ran it."""
    return {"spec": spec, "versions": software_versions(), "host": platform.node(), "time": time.time()}


@job(data=LARGE_KEYS)
def import_reference(path: str, fmt: str | None = None, material_id: str | None = None, force_sets: str | None = None, born: str | None = None) -> dict:
    """Read a reference phonon file into the store (format auto-detected)."""
    from pftflow.materials.readers import read_reference

    ref = read_reference(path, fmt=fmt, material_id=material_id, force_sets=force_sets, born=born)
    return {"material_id": ref.material_id, "reference": ref.as_dict()}


@job
def relax(structure: dict, calculator: dict, settings: dict | None = None) -> dict:
    """MLIP relaxation (FIRE + FrechetCellFilter + FixSymmetry); failures are recorded, not raised."""
    from pftflow.calculators.backends import cached_calculator
    from pftflow.phonons.relax import RelaxSettings, relax_structure

    calc = cached_calculator(calculator)
    t0 = time.perf_counter()
    res = relax_structure(dict_to_atoms(structure), calc.ase_calculator(), RelaxSettings(**(settings or {})))
    return {
        "structure": atoms_to_dict(res.atoms),
        "converged": res.converged,
        "n_steps": res.n_steps,
        "fmax_final_eV_per_A": res.fmax_final_eV_per_A,
        "energy_eV": res.energy_eV,
        "spacegroup_initial": res.spacegroup_initial,
        "spacegroup_final": res.spacegroup_final,
        "symmetry_preserved": res.symmetry_preserved,
        "error": res.error,
        "wall_time_s": time.perf_counter() - t0,
        "model": calc.provenance(),
        "settings": settings or {},
    }


@job(data=LARGE_KEYS)
def displacements(structure: dict, supercell_matrix, primitive_matrix=None, distance_A: float = 0.01, symprec: float = 1e-5) -> dict:
    """Finite displacements (phonopy) of the supercell of ``structure``."""
    from pftflow.phonons.harmonic import make_displacements

    ph, supercells = make_displacements(
        dict_to_atoms(structure), supercell_matrix, primitive_matrix, distance_A=distance_A, symprec=symprec
    )
    from pftflow.materials.reference import _dataset_to_json

    return {
        "dataset": _dataset_to_json(ph.dataset),
        "supercells": [atoms_to_dict(a) for a in supercells],
        "n_displacements": len(supercells),
        "n_atoms_supercell": len(supercells[0]) if supercells else 0,
        "distance_A": distance_A,
    }


@job(data=LARGE_KEYS)
def forces(supercells: list[dict], calculator: dict) -> dict:
    """Energies (eV), forces (eV/Å), stresses (eV/Å³) of all supercells in one batch call."""
    from pftflow.calculators.backends import cached_calculator

    calc = cached_calculator(calculator)
    t0 = time.perf_counter()
    res = calc.compute([dict_to_atoms(s) for s in supercells], progress=True, desc=f"{calc.name} forces")
    out = res.as_dict()
    out["wall_time_s"] = time.perf_counter() - t0
    out["n_structures"] = len(supercells)
    return out


@job(data=LARGE_KEYS)
def phonon_analysis(
    material_id: str,
    structure: dict | None,
    supercell_matrix,
    primitive_matrix,
    settings: dict,
    dataset: dict | None = None,
    forces_eV_per_A: list | None = None,
    reference: dict | None = None,
    band_path_spec: dict | None = None,
    label: str = "reference",
    relax_info: dict | None = None,
    mesh: list | None = None,
) -> dict:
    """Force constants (eV/Å²) + thermal properties, ω_max, stability, bands, DOS, mesh.

    Either ``reference`` (an imported :class:`PhononReference` dict) or ``structure`` +
    ``dataset`` + ``forces_eV_per_A`` (computed here) must be given.  ``mesh`` (three integers)
    overrides the settings' mesh: models use the reference's mesh numbers, since a length-based
    density could round to a different mesh for a relaxed lattice and the BZ metrics need the same
    q-points.
    """
    from pftflow.materials.reference import _dataset_from_json
    from pftflow.phonons.harmonic import PhononSettings, analyze_phonons, band_path, make_phonopy, produce_force_constants

    s = PhononSettings(**settings)
    if mesh is not None:
        s.mesh = [int(x) for x in mesh]
    if relax_info is not None and relax_info.get("error"):
        return {"material_id": material_id, "label": label, "failed": True, "error": relax_info["error"], "result": None}
    if reference is not None:
        ref = reference if isinstance(reference, PhononReference) else PhononReference.from_dict(reference)
        ph = ref.to_phonopy(symmetrize_fc=s.symmetrize_fc, symprec=s.symprec)
    else:
        ph = make_phonopy(dict_to_atoms(structure), supercell_matrix, primitive_matrix, s.symprec)
        ph.dataset = _dataset_from_json(dataset)
        produce_force_constants(ph, forces_eV_per_A, subtract_drift=s.subtract_drift, symmetrize=s.symmetrize_fc)
        ref = PhononReference(
            material_id=material_id,
            unitcell=dict_to_atoms(structure),
            supercell_matrix=np.asarray(supercell_matrix, dtype=int),
            primitive_matrix=None if primitive_matrix is None else np.asarray(primitive_matrix, dtype=float),
            dataset=ph.dataset,  # displacements with the (drift-subtracted) forces
            force_constants=np.array(ph.force_constants),
            provenance={"computed_by": label},
        )
    path = band_path_spec or band_path(ph, s.band_npoints)
    res = analyze_phonons(ph, s, band_path_spec=path)
    out_ref = ref.as_dict()
    return {
        "material_id": material_id,
        "label": label,
        "failed": False,
        "structure": out_ref["unitcell"],
        "supercell_matrix": out_ref["supercell_matrix"],
        "primitive_matrix": out_ref["primitive_matrix"],
        "force_constants": np.asarray(ph.force_constants).tolist(),
        "stored_thermal": out_ref["thermal"],
        "band_path": path,
        "result": res.as_dict(),
        "settings": s.as_dict(),
        "relax": relax_info,
    }


@job
def compare(reference: dict, model: dict, model_name: str) -> dict:
    """Per-material metrics of a model against the reference (see docs/metrics.md)."""
    from pftflow.phonons.harmonic import PhononResult
    from pftflow.phonons.metrics import material_metrics

    row = {"material_id": reference["material_id"], "model": model_name}
    relax_info = model.get("relax") or {}
    row["relax_converged"] = relax_info.get("converged")
    row["symmetry_preserved"] = relax_info.get("symmetry_preserved")
    if model.get("failed") or model.get("result") is None:
        row["failed"] = True
        row["error"] = model.get("error")
        return row
    row["failed"] = False
    row.update(material_metrics(PhononResult.from_dict(reference["result"]), PhononResult.from_dict(model["result"])))
    return row
