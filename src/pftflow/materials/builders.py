"""The one place phonopy / phono3py objects are built from a structure.

Every phonopy object of the pipeline (reference import, displacement sets, analysis, κ, training
Hessians) comes from :func:`build_phonopy` or :func:`build_phono3py`, so masses, matrices and the
symmetry tolerance are always passed the same way.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from pftflow.materials.structures import atoms_to_phonopy


def _matrix(m, dtype):
    return None if m is None else np.asarray(m, dtype=dtype)


#: pristine Phonopy objects by structure and matrices (the symmetry search with atomic permutations
#: costs ~1.5 s for a 216-atom supercell; a model's displacement and analysis jobs share one)
_PHONOPY_CACHE: dict[str, object] = {}
_PHONOPY_CACHE_MAX = 8


def _phonopy_key(unitcell: Atoms, supercell_matrix, primitive_matrix, symprec: float) -> str:
    import hashlib

    h = hashlib.sha256()
    for a in (unitcell.cell[:], unitcell.get_scaled_positions(wrap=False), unitcell.numbers, unitcell.get_masses(),
              np.asarray(supercell_matrix, dtype=float), np.zeros(1) if primitive_matrix is None else np.asarray(primitive_matrix, dtype=float)):
        h.update(np.ascontiguousarray(a, dtype=float).tobytes())
    h.update(repr(float(symprec)).encode())
    return h.hexdigest()


def build_phonopy(unitcell: Atoms, supercell_matrix, primitive_matrix=None, symprec: float = 1e-5):
    """A :class:`phonopy.Phonopy` for ``unitcell`` (masses kept; Å, amu), without displacements or
    force constants.  Identical inputs in one process get a copy of the same pristine object."""
    import copy

    import phonopy

    key = _phonopy_key(unitcell, supercell_matrix, primitive_matrix, symprec)
    if key not in _PHONOPY_CACHE:
        if len(_PHONOPY_CACHE) >= _PHONOPY_CACHE_MAX:
            _PHONOPY_CACHE.pop(next(iter(_PHONOPY_CACHE)))
        _PHONOPY_CACHE[key] = phonopy.Phonopy(
            atoms_to_phonopy(unitcell),
            supercell_matrix=np.asarray(supercell_matrix),
            primitive_matrix=_matrix(primitive_matrix, float),
            symprec=symprec,
        )
    return copy.deepcopy(_PHONOPY_CACHE[key])


def build_phono3py(unitcell: Atoms, fc2_supercell, fc3_supercell, primitive_matrix=None, *, symprec: float = 1e-5, log_level: int = 0):
    """A :class:`phono3py.Phono3py` with the fc3 supercell, the (phonon) fc2 supercell and the
    primitive matrix (None = the cell is primitive)."""
    from phono3py import Phono3py

    return Phono3py(
        atoms_to_phonopy(unitcell),
        supercell_matrix=np.asarray(fc3_supercell, dtype=int),
        phonon_supercell_matrix=np.asarray(fc2_supercell, dtype=int),
        primitive_matrix=_matrix(primitive_matrix, float),
        symprec=symprec,
        log_level=log_level,
    )
