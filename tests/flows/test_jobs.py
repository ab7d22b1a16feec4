"""flows.jobs: the compare job's BZ-mesh errors when the model's relaxed cell has another symmetry than the
reference (irreducible q-point sets differ): recomputed over the whole mesh from both force constants."""

from __future__ import annotations

import numpy as np
import pytest

from pftflow.documents import ForceConstantsDoc
from pftflow.flows.jobs import compare, phonon_analysis, phonopy_of
from pftflow.materials.structures import phonopy_to_atoms


def _fc_doc(ph) -> ForceConstantsDoc:
    return ForceConstantsDoc(unitcell=phonopy_to_atoms(ph.unitcell), supercell_matrix=ph.supercell_matrix, primitive_matrix=None,
                             force_constants_eV_per_A2=np.asarray(ph.force_constants), method="finite differences (test)", n_rows=0)


def test_compare_of_lower_symmetry_model_uses_the_full_mesh(al_emt_phonopy):
    settings = {"mesh": [6, 6, 6], "band_npoints": 5}
    ref = phonon_analysis.original("Al", "reference", settings, force_constants=_fc_doc(al_emt_phonopy()))
    strained = al_emt_phonopy(strain=(1.0, 1.0, 1.02))  # tetragonal: 16 of fcc's 48 operations
    model = phonon_analysis.original("Al", "EMT-strained", settings, force_constants=_fc_doc(strained), qpoints_from=ref)
    assert len(ref.result.mesh["weights"]) < len(model.result.mesh["weights"])  # other irreducible sets

    m = compare.original(ref, model).metrics
    assert m["metric_errors"] == [] and m["mesh"] == [6, 6, 6]
    assert "over all 216 q-points of the mesh" in m["mesh_note"] and "irreducible q-points differs" in m["mesh_note"]

    def full(doc):  # phonopy directly, no symmetry reduction
        p = phonopy_of(doc)
        p.run_mesh([6, 6, 6], is_gamma_center=True, is_mesh_symmetry=False)
        return np.sort(p.mesh.frequencies, axis=1)

    d = full(model) - full(ref)
    assert d.shape == (216, 3) and np.abs(d).mean() > 0.01  # a real difference (THz), not zero
    assert m["mesh_mae_THz"] == pytest.approx(np.abs(d).mean(), rel=1e-10)
    assert m["mesh_rmse_THz"] == pytest.approx(np.sqrt((d**2).mean()), rel=1e-10)

    # same symmetry: the irreducible comparison, no note
    same = compare.original(ref, phonon_analysis.original("Al", "EMT", settings, force_constants=_fc_doc(al_emt_phonopy()), qpoints_from=ref)).metrics
    assert same["mesh_mae_THz"] == pytest.approx(0, abs=1e-9) and "mesh_note" not in same
