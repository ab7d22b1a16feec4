"""Evaluation of (fine-tuned) models against reference phonons - pure functions on phonopy objects.

* :func:`model_force_constants` - force constants (n, n, 3, 3) eV/Å² of an energy model or a ``pftflow``
  ForceCalculator by finite displacements on the reference supercell (phonopy, symmetry-reduced).
* :func:`force_constant_mae` - MAE (eV/Å²) between model and reference force constants.
* :func:`phonon_comparison` - MDR-style metrics at 300 K (ω_max THz, S and C_V J/K/mol, F kJ/mol) and
  BZ-mesh frequency MAE (THz), model vs reference, both from phonopy with the same settings.
* :func:`force_errors` - energy (eV/atom) and force (eV/Å) MAEs of a model on labelled structures.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from pftflow.materials.structures import phonopy_to_atoms
from pftflow.training.data import LabelledStructure, load_phonopy


def model_forces(model, structures) -> tuple[np.ndarray, list[np.ndarray]]:
    """Energies (eV) and forces (eV/Å) of ASE structures from an EnergyModel or a ForceCalculator / spec."""
    from pftflow.training.loss import predict
    from pftflow.training.models import EnergyModel

    if isinstance(model, EnergyModel):
        energies, forces = [], []
        for a in structures:
            g = model.build_graph([a])
            out = predict(model, g, stress=False, create_graph=False)
            energies.append(float(out["energy_eV"].detach()))
            forces.append(out["forces_eV_per_A"].detach().cpu().numpy().astype(float))
        return np.array(energies), forces
    from pftflow.calculators import get_calculator

    res = get_calculator(model).compute(list(structures), stress=False)
    return np.asarray(res.energies_eV), [np.asarray(f) for f in res.forces_eV_per_A]


def model_phonopy(model, reference: Any, distance_A: float = 0.01):
    """Phonopy object of the reference cell/supercell with the model's force constants (eV/Å², full),
    built with the benchmark's own displacement / drift-subtraction / symmetrization functions."""
    from pftflow.phonons.harmonic import make_displacements, produce_force_constants

    ref_ph = load_phonopy(reference)
    ph, structs = make_displacements(
        phonopy_to_atoms(ref_ph.unitcell), ref_ph.supercell_matrix, ref_ph.primitive_matrix, distance_A=distance_A
    )
    _, forces = model_forces(model, structs)
    produce_force_constants(ph, forces)
    return ph, ref_ph


def model_force_constants(model, reference: Any, distance_A: float = 0.01) -> np.ndarray:
    return np.asarray(model_phonopy(model, reference, distance_A)[0].force_constants)


def force_constant_mae(model, reference: Any, distance_A: float = 0.01) -> float:
    """MAE (eV/Å²) over all supercell force-constant entries, model vs reference."""
    ph, ref_ph = model_phonopy(model, reference, distance_A)
    return float(np.abs(np.asarray(ph.force_constants) - np.asarray(ref_ph.force_constants)).mean())


def _props(ph, mesh, t_K: float) -> dict:
    ph.run_mesh(mesh, with_eigenvectors=False, is_mesh_symmetry=False)
    freqs = np.asarray(ph.get_mesh_dict()["frequencies"])
    ph.run_thermal_properties(temperatures=[t_K])
    tp = ph.get_thermal_properties_dict()
    return {
        "frequencies_THz": freqs,
        "omega_max_THz": float(freqs.max()),
        "free_energy_kJ_per_mol": float(tp["free_energy"][0]),
        "entropy_J_per_K_mol": float(tp["entropy"][0]),
        "heat_capacity_J_per_K_mol": float(tp["heat_capacity"][0]),
    }


def phonon_comparison(model, reference: Any, mesh=(10, 10, 10), temperature_K: float = 300.0, distance_A: float = 0.01) -> dict:
    """Model vs reference: ω_max (THz), F (kJ/mol), S, C_V (J/K/mol) at ``temperature_K``, mesh-frequency MAE (THz),
    force-constant MAE (eV/Å²).  Thermal properties per mole of primitive cells (phonopy)."""
    ph, ref_ph = model_phonopy(model, reference, distance_A)
    m, r = _props(ph, mesh, temperature_K), _props(ref_ph, mesh, temperature_K)
    out: dict[str, Any] = {"mesh": list(mesh), "temperature_K": temperature_K}
    for k in ("omega_max_THz", "free_energy_kJ_per_mol", "entropy_J_per_K_mol", "heat_capacity_J_per_K_mol"):
        out[k] = {"model": m[k], "reference": r[k], "abs_error": abs(m[k] - r[k])}
    out["mesh_frequency_mae_THz"] = float(np.abs(m["frequencies_THz"] - r["frequencies_THz"]).mean())
    out["force_constant_mae_eV_per_A2"] = float(np.abs(np.asarray(ph.force_constants) - np.asarray(ref_ph.force_constants)).mean())
    return out


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
