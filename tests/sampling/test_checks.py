"""Set checks on structures whose answers are known by construction."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from pftflow.sampling import check_set, displacement_stats, duplicate_pairs, make_supercell, min_distance


def _nacl():
    return make_supercell(bulk("NaCl", "rocksalt", a=5.64), [[2, 0, 0], [0, 2, 0], [0, 0, 2]])


def test_displacement_stats_of_known_displacements():
    base = _nacl()
    a, b = base.copy(), base.copy()
    u = np.zeros((len(base), 3))
    u[0] = [0.3, 0.0, -0.4]  # |u| = 0.5 Å
    a.positions += u
    b.positions -= u
    b.wrap()  # wrapped positions are still 0.5 Å displacements (minimum image)
    st = displacement_stats(base, [a, b])
    comps = np.concatenate([u.ravel(), -u.ravel()])
    assert st["std_A"] == pytest.approx(comps.std(), abs=1e-12)
    assert st["rms_A"] == pytest.approx(np.sqrt(np.mean(comps**2)), abs=1e-12)
    assert st["max_norm_A"] == pytest.approx(0.5, abs=1e-12)


def test_min_distance_duplicates_and_check_set():
    base = _nacl()
    assert min_distance(base) == pytest.approx(5.64 / 2, abs=1e-9)
    close = base.copy()
    close.positions[0] += [1.0, 0, 0]  # Na moved 1 Å towards its Cl neighbour at +a/2 x
    assert min_distance(close) == pytest.approx(5.64 / 2 - 1.0, abs=1e-9)
    other = base.copy()
    other.positions[3] += [0, 0.01, 0]
    assert duplicate_pairs([close, other, close.copy()]) == [(0, 2)]
    ok = check_set(base, [close, other], min_distance_A=1.5)
    assert ok.ok and ok.problems == [] and ok.min_distance_A == pytest.approx(1.82, abs=1e-9)
    bad = check_set(base, [close, other, close.copy()], min_distance_A=2.0)
    assert not bad.ok and bad.duplicates == [(0, 2)] and len(bad.problems) == 2
