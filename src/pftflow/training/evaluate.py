"""Evaluation of (fine-tuned) models against reference phonons - pure functions on phonopy objects.

* :func:`model_phonopy` - phonopy object of the reference cell with the model's force constants, built by the
  benchmark's own finite-displacement functions (:mod:`pftflow.phonons.harmonic`).
* :func:`model_force_constants` / :func:`force_constant_mae` - model force constants (n, n, 3, 3) eV/Å² and their
  MAE (eV/Å²) against the reference's.
* :func:`phonon_comparison` - the phonon benchmark's MDR metrics of one model on one material
  (:func:`pftflow.phonons.metrics.material_metrics`: ω_max in K at the commensurate q-points, S / F / C_V at
  300 K, stability, q-point-weighted BZ-mesh frequency MAE / RMSE, band RMSE) plus the force-constant MAE.
  Several materials: :func:`pftflow.phonons.metrics.summarize` over the rows.
* :func:`force_errors` - energy (eV/atom) and force (eV/Å) MAEs of a model on labelled (co-training) structures.

Unlike a benchmark campaign, the model is evaluated on the reference cell as given (no relaxation with the model),
so the numbers measure the force constants alone.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from pftflow.calculators import get_calculator
from pftflow.calculators.energy_models import EnergyModel
from pftflow.materials.structures import phonopy_to_atoms
from pftflow.phonons.harmonic import PhononSettings, analyze_phonons, band_path, produce_force_constants
from pftflow.phonons.metrics import material_metrics
from pftflow.sampling import fc2_displacements
from pftflow.training.data import LabelledStructure, _material_id, as_reference
from pftflow.training.loss import predict


def model_forces(model, structures) -> tuple[np.ndarray, list[np.ndarray]]:
    """Energies (eV) and forces (eV/Å) of ASE structures from an EnergyModel or a ForceCalculator / spec."""
    if isinstance(model, EnergyModel):
        energies, forces = [], []
        for a in structures:
            g = model.build_graph([a])
            out = predict(model, g, stress=False, create_graph=False)
            energies.append(float(out["energy_eV"].detach()))
            forces.append(out["forces_eV_per_A"].detach().cpu().numpy().astype(float))
        return np.array(energies), forces

    res = get_calculator(model).compute(list(structures), stress=False)
    return np.asarray(res.energies_eV), [np.asarray(f) for f in res.forces_eV_per_A]


def reference_phonopy(reference: Any, settings=None):
    """Phonopy object with the reference force constants, built as the benchmark's reference analysis builds it
    (``PhononReference.to_phonopy`` with the settings' ``symmetrize_fc`` / ``symprec``).  ``reference``: a path,
    a ``PhononReference``, or a :class:`phonopy.Phonopy` with force constants (used as is)."""
    s = settings or PhononSettings()
    ref = as_reference(reference)
    if hasattr(ref, "to_phonopy"):
        return ref.to_phonopy(symmetrize_fc=s.symmetrize_fc, symprec=s.symprec)
    return ref


def model_phonopy(model, reference: Any, settings=None):
    """``(model_phonon, reference_phonon)``: phonopy objects of the reference cell/supercell, the first with the
    model's force constants (eV/Å², full) from the benchmark's displacement / drift-subtraction / symmetrization
    functions with ``settings`` (:class:`~pftflow.phonons.harmonic.PhononSettings`, defaults if ``None``)."""
    s = settings or PhononSettings()
    ref_ph = reference_phonopy(reference, s)
    ph, structs = fc2_displacements(
        phonopy_to_atoms(ref_ph.unitcell),
        ref_ph.supercell_matrix,
        ref_ph.primitive_matrix,
        distance_A=s.displacement_A,
        symprec=s.symprec,
    )
    _, forces = model_forces(model, structs)
    produce_force_constants(ph, forces, subtract_drift=s.subtract_drift, symmetrize=s.symmetrize_fc)
    return ph, ref_ph


def _fc_mae(ph, ref_ph) -> float:
    return float(np.abs(np.asarray(ph.force_constants) - np.asarray(ref_ph.force_constants)).mean())


def model_force_constants(model, reference: Any, settings=None) -> np.ndarray:
    return np.asarray(model_phonopy(model, reference, settings)[0].force_constants)


def force_constant_mae(model, reference: Any, settings=None) -> float:
    """MAE (eV/Å²) over all supercell force-constant entries, model vs reference."""
    return _fc_mae(*model_phonopy(model, reference, settings))


def phonon_comparison(model, reference: Any, settings=None, *, with_bands: bool = True) -> dict:
    """MDR metrics of ``model`` on one reference material, defined as in the phonon benchmark.

    Both phonopy objects are analysed by :func:`pftflow.phonons.harmonic.analyze_phonons` with the same
    ``settings`` (:class:`~pftflow.phonons.harmonic.PhononSettings`; the model uses the reference's mesh numbers
    and band path, as a campaign does) and compared by :func:`pftflow.phonons.metrics.material_metrics`, so the
    fields and units are those of ``docs/metrics.md`` (e.g. ``omega_max_abs_error_K``,
    ``entropy_abs_error_300K_J_per_K_mol``, ``mesh_mae_THz``).  Added: ``material_id``, ``failed`` (False) and
    ``force_constant_mae_eV_per_A2``.  The returned rows feed :func:`pftflow.phonons.metrics.summarize`.
    """
    s = settings or PhononSettings()
    ref = as_reference(reference)  # read a file once
    ph, ref_ph = model_phonopy(model, ref, s)
    path = band_path(ref_ph, s.band_npoints) if with_bands else None
    ref_res = analyze_phonons(ref_ph, s, band_path_spec=path, with_bands=with_bands, with_dos=False)
    model_s = s.model_copy(update={"mesh": [int(x) for x in ref_res.mesh["mesh"]]})
    model_res = analyze_phonons(ph, model_s, band_path_spec=path, with_bands=with_bands, with_dos=False)
    row: dict[str, Any] = {"material_id": _material_id(ref, "") or _material_id(reference, "material"), "failed": False}
    row.update(material_metrics(ref_res, model_res))
    row["force_constant_mae_eV_per_A2"] = _fc_mae(ph, ref_ph)
    return row


def force_errors(model, structures: Sequence[LabelledStructure]) -> dict:
    """Energy MAE (eV/atom, structures with energies) and force MAE (eV/Å, per component) of a model."""
    energies, forces = model_forces(model, [s.atoms for s in structures])
    e_err = [abs(e - s.energy_eV) / len(s.atoms) for e, s in zip(energies, structures) if s.energy_eV is not None]
    f_err = [np.abs(f - s.forces_eV_per_A).ravel() for f, s in zip(forces, structures) if s.forces_eV_per_A is not None]
    return {
        "energy_mae_eV_per_atom": float(np.mean(e_err)) if e_err else None,
        "force_mae_eV_per_A": float(np.mean(np.concatenate(f_err))) if f_err else None,
        "n_structures": len(structures),
    }
