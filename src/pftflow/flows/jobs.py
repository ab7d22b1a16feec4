"""Jobs: each one call into a science function, returning a typed document.

atomate2 style: a job adapts (reads its inputs, calls pure code, wraps the result); every output
is a pydantic document of :mod:`pftflow.documents` declared as ``output_schema``, and every array
inside it travels as an :class:`~pftflow.serialization.ArrayBlob` to the additional ``data`` store
(``data=[ArrayBlob]``: routed by type, not by key name).
"""

from __future__ import annotations

import platform
import time

import numpy as np
from jobflow import job

from pftflow.calculators.backends import cached_calculator
from pftflow.calculators.base import ForceResults
from pftflow.documents import (
    ComparisonDoc,
    DisplacementSetDoc,
    ForceConstantsDoc,
    ParametersDoc,
    PhononAnalysisDoc,
    RelaxDoc,
    StructureSet,
)
from pftflow.materials.builders import build_phonopy
from pftflow.materials.readers import read_reference
from pftflow.materials.reference import PhononReference
from pftflow.phonons.harmonic import (
    PhononSettings,
    analyze_phonons,
    band_path as make_band_path,
    produce_force_constants,
)
from pftflow.phonons.hessian import hessian_force_constants as hessian_fc, independent_atoms
from pftflow.phonons.metrics import full_mesh_frequency_errors, material_metrics
from pftflow.phonons.relax import RelaxSettings, relax_structure
from pftflow.provenance import environment
from pftflow.sampling import fc2_displacements
from pftflow.serialization import ArrayBlob, dict_to_atoms

#: what goes to the additional store: every array blob, wherever it sits in a document
BLOBS = [ArrayBlob]


@job(output_schema=ParametersDoc)
def record_parameters(spec: dict) -> ParametersDoc:
    """Store the campaign spec and the software versions that ran it."""
    env = environment()
    return ParametersDoc(spec=spec, versions=env["versions"], host=platform.node(), time=time.time(), environment=env)


@job(output_schema=PhononReference, data=BLOBS)
def import_reference(path: str, fmt: str | None = None, material_id: str | None = None, force_sets: str | None = None, born: str | None = None) -> PhononReference:
    """Read a reference phonon file (phonopy / MDR / atomate2; format auto-detected)."""
    return read_reference(path, fmt=fmt, material_id=material_id, force_sets=force_sets, born=born)


@job(output_schema=RelaxDoc)
def relax(structure, calculator: dict, settings: dict | None = None) -> RelaxDoc:
    """Relaxation (FIRE + FrechetCellFilter + FixSymmetry); failures are recorded, not raised."""
    if isinstance(structure, dict):  # a structure dict: jobflow cannot take a raw ase.Atoms as a job argument (jsanitize)
        structure = dict_to_atoms(structure)
    calc = cached_calculator(calculator)
    t0 = time.perf_counter()
    res = relax_structure(structure, calc.ase_calculator(), RelaxSettings(**(settings or {})))
    return RelaxDoc(
        structure=res.atoms,
        converged=res.converged,
        n_steps=res.n_steps,
        fmax_final_eV_per_A=res.fmax_final_eV_per_A,
        energy_eV=res.energy_eV,
        spacegroup_initial=res.spacegroup_initial,
        spacegroup_final=res.spacegroup_final,
        symmetry_preserved=res.symmetry_preserved,
        error=res.error,
        wall_time_s=time.perf_counter() - t0,
        model=calc.provenance(),
        settings=settings or {},
    )


@job(output_schema=DisplacementSetDoc, data=BLOBS)
def displacements(structure, supercell_matrix, primitive_matrix=None, distance_A: float = 0.01, symprec: float = 1e-5) -> DisplacementSetDoc:
    """Symmetry-reduced finite displacements (phonopy) of the supercell of ``structure``."""
    ph, supercells = fc2_displacements(structure, supercell_matrix, primitive_matrix, distance_A=distance_A, symprec=symprec)
    return DisplacementSetDoc(
        unitcell=structure,
        supercell_matrix=np.asarray(supercell_matrix, dtype=int),
        primitive_matrix=primitive_matrix,
        distance_A=distance_A,
        symprec=symprec,
        dataset=ph.dataset,
        supercells=StructureSet.from_atoms(supercells),
    )


@job(output_schema=ForceResults, data=BLOBS)
def forces(structures: StructureSet, calculator: dict) -> ForceResults:
    """Energies (eV), forces (eV/Å), stresses (eV/Å³) of a structure set in one batch call."""
    calc = cached_calculator(calculator)
    t0 = time.perf_counter()
    res = calc.compute(structures.to_atoms(), progress=True, desc=f"{calc.name} forces")
    res.wall_time_s = time.perf_counter() - t0
    return res


@job(output_schema=ForceConstantsDoc, data=BLOBS)
def hessian_force_constants(structure, supercell_matrix, primitive_matrix, calculator: dict, symprec: float = 1e-5, symmetrize: bool = True) -> ForceConstantsDoc:
    """Force constants (eV/Å²) from the model's Hessian rows of the symmetry-independent supercell atoms
    (:func:`pftflow.phonons.hessian.hessian_force_constants`), instead of finite displacements."""
    calc = cached_calculator(calculator)
    ph = build_phonopy(structure, supercell_matrix, primitive_matrix, symprec)
    t0 = time.perf_counter()
    fc = hessian_fc(ph, calc, symmetrize=symmetrize)
    return ForceConstantsDoc(
        unitcell=structure,
        supercell_matrix=np.asarray(supercell_matrix, dtype=int),
        primitive_matrix=primitive_matrix,
        force_constants_eV_per_A2=fc,
        method="hessian",
        n_rows=3 * len(independent_atoms(ph)),
        wall_time_s=time.perf_counter() - t0,
        model=calc.provenance(),
    )


@job(output_schema=PhononAnalysisDoc, data=BLOBS)
def phonon_analysis(
    material_id: str,
    model: str,
    settings: dict,
    *,
    reference: PhononReference | None = None,
    displacements: DisplacementSetDoc | None = None,
    forces: ForceResults | None = None,
    force_constants: ForceConstantsDoc | None = None,
    qpoints_from: PhononAnalysisDoc | None = None,
    relax: RelaxDoc | None = None,
) -> PhononAnalysisDoc:
    """Force constants (eV/Å²) + thermal properties, ω_max, stability, bands, DOS, mesh.

    The force constants come from an imported ``reference`` (its stored force constants or its
    displacement forces), from ``displacements`` + ``forces`` computed by the flow, or directly
    from ``force_constants`` (the model's Hessian).
    ``qpoints_from`` (the reference's analysis) fixes the band path and the mesh numbers, so that
    a model is evaluated on the reference's q-points (a length-based mesh density could round to
    a different mesh for a relaxed lattice).
    """
    s = PhononSettings(**settings)
    band_path = None
    if qpoints_from is not None:
        band_path, s.mesh = qpoints_from.band_path, qpoints_from.mesh_numbers
    if relax is not None and relax.error:
        return PhononAnalysisDoc(material_id=material_id, model=model, failed=True, error=f"relax: {relax.error}", settings=s.as_dict(), relax=relax)
    reference_thermal = None
    if reference is not None:
        ph = reference.to_phonopy(symmetrize_fc=s.symmetrize_fc, symprec=s.symprec)
        structure, reference_thermal = reference.unitcell, reference.thermal
    elif force_constants is not None:
        structure = force_constants.unitcell
        ph = build_phonopy(structure, force_constants.supercell_matrix, force_constants.primitive_matrix, s.symprec)
        ph.force_constants = force_constants.force_constants_eV_per_A2
    else:
        structure = displacements.unitcell
        ph = build_phonopy(structure, displacements.supercell_matrix, displacements.primitive_matrix, s.symprec)
        ph.dataset = displacements.dataset
        produce_force_constants(ph, forces.forces_eV_per_A, subtract_drift=s.subtract_drift, symmetrize=s.symmetrize_fc)
    path = band_path or make_band_path(ph, s.band_npoints)
    res = analyze_phonons(ph, s, band_path_spec=path)
    fc = np.asarray(ph.force_constants)
    p2s = np.asarray(ph.primitive.p2s_map)
    return PhononAnalysisDoc(
        material_id=material_id,
        model=model,
        structure=structure,
        supercell_matrix=np.asarray(ph.supercell_matrix, dtype=int),
        primitive_matrix=ph.primitive_matrix,
        force_constants_eV_per_A2=fc if fc.shape[0] != fc.shape[1] else fc[p2s],
        p2s_map=[int(i) for i in p2s],
        reference_thermal=reference_thermal,
        band_path=path,
        result=res,
        settings=s.as_dict(),
        relax=relax,
        environment=environment(),
    )


def phonopy_of(doc: PhononAnalysisDoc):
    """The Phonopy object of an analysis document, force constants set (its cell, supercell and primitive matrices)."""
    ph = build_phonopy(doc.structure, doc.supercell_matrix, doc.primitive_matrix, (doc.settings or {}).get("symprec", 1e-5))
    ph.force_constants = np.asarray(doc.force_constants_eV_per_A2)
    return ph


@job(output_schema=ComparisonDoc)
def compare(reference: PhononAnalysisDoc, model: PhononAnalysisDoc) -> ComparisonDoc:
    """MDR metrics of a model against the reference (docs/metrics.md).  When the two irreducible q-point
    sets differ (a relaxed model cell of other symmetry), the BZ mesh errors are taken over the whole mesh
    from both force constants instead (``mesh_note`` says so)."""
    relax = model.relax
    doc = ComparisonDoc(
        material_id=reference.material_id,
        model=model.model,
        failed=bool(model.failed or model.result is None),
        error=model.error,
        relax_converged=None if relax is None else relax.converged,
        symmetry_preserved=None if relax is None else relax.symmetry_preserved,
    )
    if not doc.failed:
        doc.metrics = m = material_metrics(reference.result, model.result)
        mesh_errors = [e for e in m["metric_errors"] if e.startswith("mesh: ")]
        can = reference.result.mesh is not None and model.result.mesh is not None and all(
            d.force_constants_eV_per_A2 is not None and d.structure is not None for d in (reference, model))
        if m["mesh_mae_THz"] is None and mesh_errors and can:
            numbers = [int(x) for x in reference.result.mesh["mesh"]]
            try:
                m.update(full_mesh_frequency_errors(phonopy_of(reference), phonopy_of(model), numbers), mesh=numbers)
            except ValueError as exc:  # e.g. other band counts: the metric stays null, both reasons kept
                m["metric_errors"].append(f"mesh (full mesh): {exc}")
            else:
                m["metric_errors"] = [e for e in m["metric_errors"] if e not in mesh_errors]
                m["mesh_note"] = f"over all {int(np.prod(numbers))} q-points of the mesh, not the irreducible ones ({mesh_errors[0].removeprefix('mesh: ')})"
    return doc
