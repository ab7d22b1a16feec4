"""Deformed structure sets: volume scaling and optional shear strain (and an optional rattle on top).

Structure ``i`` of ``n`` has the volume scale ``linspace(*volume_scale_range, n)[i]`` (isotropic:
lattice × s^(1/3), fractional coordinates kept) and, when ``shear_strain > 0``, a symmetric strain
whose off-diagonal components are drawn from N(0, shear_strain) with the structure's own seed
(:func:`pftflow.sampling.rattle.structure_seeds`); the deformation gradient ``I + ε`` multiplies the
cell rows.  With ``amplitude_A > 0`` each deformed structure is also rattled (hiphive, same seed).
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from pftflow.sampling.rattle import rattle, structure_seeds


def strained(
    atoms: Atoms,
    n_structures: int,
    seed: int,
    *,
    volume_scale_range: tuple[float, float] = (0.97, 1.03),
    shear_strain: float = 0.0,
    amplitude_A: float = 0.0,
    min_distance_A: float | None = None,
) -> tuple[list[Atoms], list[dict]]:
    """Deformed copies of ``atoms``; returns them and per structure ``{"volume_scale", "strain"}``
    (strain: the symmetric 3x3 ε, dimensionless, applied after the volume scaling)."""
    lo, hi = volume_scale_range
    scales = np.linspace(lo, hi, n_structures) if n_structures > 1 else np.array([0.5 * (lo + hi)])
    out, info = [], []
    for k, (scale, s) in enumerate(zip(scales, structure_seeds(seed, n_structures))):
        eps = np.zeros((3, 3))
        if shear_strain > 0:
            off = np.random.default_rng(s).normal(0.0, shear_strain, 3)
            eps[0, 1] = eps[1, 0] = off[0]
            eps[0, 2] = eps[2, 0] = off[1]
            eps[1, 2] = eps[2, 1] = off[2]
        a = Atoms(atoms.get_chemical_symbols(), cell=atoms.cell[:], positions=atoms.positions, pbc=atoms.pbc)
        a.set_masses(atoms.get_masses())
        cell = np.asarray(atoms.cell[:], dtype=float) * float(scale) ** (1.0 / 3.0)
        a.set_cell(cell @ (np.eye(3) + eps), scale_atoms=True)
        if amplitude_A > 0:
            a = rattle(a, 1, amplitude_A, s, min_distance_A=min_distance_A)[0]
        out.append(a)
        info.append({"volume_scale": float(scale), "strain": eps.tolist()})
    return out, info
