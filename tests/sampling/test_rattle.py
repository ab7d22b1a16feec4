"""Rattled, strained and "rattle then relax" sets: reproducible with a seed, different across
structures (per-structure seeds spawned from one seed, not one seed for all), displacement standard
deviation within 10 % of the request, minimum distances, and the displacements are hiphive's."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from pftflow.sampling import (
    SamplingSettings,
    displacement_stats,
    duplicate_pairs,
    make_supercell,
    mc_rattle,
    min_distance,
    rattle,
    sample_set,
    strained,
    structure_seeds,
)

SI = bulk("Si", "diamond", a=5.431)
SI64 = make_supercell(SI, [[-2, 2, 2], [2, -2, 2], [2, 2, -2]])  # 2x2x2 conventional, 64 atoms
SI_NN_A = 5.431 * np.sqrt(3) / 4  # 2.3517 Å


def test_structure_seeds_are_reproducible_and_distinct():
    a, b = structure_seeds(7, 50), structure_seeds(7, 50)
    assert a == b and len(set(a)) == 50
    assert structure_seeds(8, 50) != a
    assert structure_seeds(7, 10) == a[:10]  # spawning more keeps the first ones: adding structures keeps the set


def test_rattle_reproducible_distinct_and_amplitude():
    s1 = rattle(SI64, 10, 0.05, seed=3)
    s2 = rattle(SI64, 10, 0.05, seed=3)
    s3 = rattle(SI64, 10, 0.05, seed=4)
    assert all(np.array_equal(a.positions, b.positions) for a, b in zip(s1, s2))
    assert not any(np.allclose(a.positions, b.positions) for a, b in zip(s1, s3))
    assert duplicate_pairs(s1) == []
    stats = displacement_stats(SI64, s1)
    assert stats["std_A"] == pytest.approx(0.05, rel=0.10)  # 1920 components: sampling error ~1.6 %
    assert all(s == pytest.approx(0.05, rel=0.3) for s in stats["per_structure_std_A"])
    assert len(set(stats["per_structure_std_A"])) == 10


def test_rattle_uses_hiphive_with_one_seed_per_structure():
    """Structure k is hiphive's generate_rattled_structures with the k-th spawned seed; hiphive called
    with one seed for every structure (the autoplex bug) gives identical structures."""
    from hiphive.structure_generation import generate_rattled_structures

    ours = rattle(SI64, 3, 0.04, seed=11)
    for k, s in enumerate(structure_seeds(11, 3)):
        assert np.array_equal(ours[k].positions, generate_rattled_structures(SI64, 1, 0.04, seed=s)[0].positions)
    same_seed = [generate_rattled_structures(SI64, 1, 0.04, seed=11)[0] for _ in range(3)]
    assert duplicate_pairs(same_seed) == [(0, 1), (0, 2), (1, 2)]


def test_mc_rattle_keeps_min_distance_where_a_plain_rattle_does_not():
    amplitude, dmin = 0.1, 2.0
    plain = rattle(SI64, 3, amplitude, seed=1)
    assert min(min_distance(a) for a in plain) < dmin  # the request is not trivially met
    mc, info = mc_rattle(SI64, 3, amplitude, dmin, seed=1)
    assert all(min_distance(a) >= dmin for a in mc)
    assert displacement_stats(SI64, mc)["std_A"] == pytest.approx(amplitude, rel=0.10)
    assert duplicate_pairs(mc) == []
    again, _ = mc_rattle(SI64, 3, amplitude, dmin, seed=1)
    assert all(np.array_equal(a.positions, b.positions) for a, b in zip(mc, again))
    assert info["rattle_std_A"] > 0 and info["rounds"] >= 1
    # a plain rattle with a floor redraws the structures that break it, from their own seeds
    floored = rattle(SI64, 3, amplitude, seed=1, min_distance_A=dmin)
    assert all(min_distance(a) >= dmin for a in floored)
    redrawn = [k for k, (a, b) in enumerate(zip(plain, floored)) if not np.array_equal(a.positions, b.positions)]
    assert redrawn and all(min_distance(plain[k]) < dmin for k in redrawn)  # only the ones that broke it
    again = rattle(SI64, 3, amplitude, seed=1, min_distance_A=dmin)
    assert all(np.array_equal(a.positions, b.positions) for a, b in zip(floored, again))


def test_min_distance_of_ideal_crystals():
    assert min_distance(SI) == pytest.approx(SI_NN_A, abs=1e-9)
    assert min_distance(SI64) == pytest.approx(SI_NN_A, abs=1e-9)
    assert min_distance(bulk("Cu", "fcc", a=3.61)) == pytest.approx(3.61 / np.sqrt(2), abs=1e-9)


def test_strain_volumes_shear_and_seeds():
    cu = make_supercell(bulk("Cu", "fcc", a=3.61), [[2, 0, 0], [0, 2, 0], [0, 0, 2]])
    v0 = cu.get_volume()
    out, info = strained(cu, 5, seed=2, volume_scale_range=(0.95, 1.05), shear_strain=0.02)
    again, _ = strained(cu, 5, seed=2, volume_scale_range=(0.95, 1.05), shear_strain=0.02)
    assert [i["volume_scale"] for i in info] == pytest.approx(np.linspace(0.95, 1.05, 5))
    for a, b, i in zip(out, again, info):
        eps = np.array(i["strain"])
        assert np.allclose(eps, eps.T) and np.allclose(np.diag(eps), 0) and np.abs(eps).max() > 0
        assert a.get_volume() == pytest.approx(v0 * i["volume_scale"] * np.linalg.det(np.eye(3) + eps), rel=1e-12)
        df = a.get_scaled_positions() - cu.get_scaled_positions()
        assert np.allclose(df - np.round(df), 0, atol=1e-12)  # a homogeneous deformation
        assert np.array_equal(a.positions, b.positions)
    assert len({tuple(np.round(np.array(i["strain"]).ravel(), 12)) for i in info}) == 5  # one draw per structure
    assert duplicate_pairs(out) == []


def test_rattle_relax_snapshots_are_reproducible_and_lower_in_energy():
    cu = make_supercell(bulk("Cu", "fcc", a=3.61), [[2, 0, 0], [0, 2, 0], [0, 0, 2]])
    settings = SamplingSettings(kind="rattle_relax", n_structures=4, amplitude_A=0.1, seed=9, relax_steps=15)
    a = sample_set(cu, np.eye(3, dtype=int), settings, calculator=EMT())
    b = sample_set(cu, np.eye(3, dtype=int), settings, calculator=EMT())
    assert all(np.array_equal(x.positions, y.positions) for x, y in zip(a.structures, b.structures))
    assert a.structure_info == b.structure_info
    steps = [i["step"] for i in a.structure_info]
    assert all(1 <= s <= i["n_steps"] <= 15 for s, i in zip(steps, a.structure_info))
    assert len(set(steps)) > 1  # drawn per structure
    starts = rattle(cu, 4, 0.1, seed=9)  # the rattled starts of the relaxations
    for start, snap in zip(starts, a.structures):
        start.calc, snap.calc = EMT(), EMT()
        assert snap.get_potential_energy() < start.get_potential_energy()
    assert a.checks.ok and a.checks.duplicates == []


def test_settings_refuse_sets_that_cannot_be_made():
    with pytest.raises(ValueError, match="mc_rattle needs min_distance_A"):
        SamplingSettings(kind="mc_rattle")
    with pytest.raises(ValueError, match="identical structures"):
        SamplingSettings(kind="strain", volume_scale_range=(1.0, 1.0), amplitude_A=0.0)
    with pytest.raises(ValueError, match="after 20 draws"):
        rattle(SI64, 1, 0.05, seed=0, min_distance_A=3.0)  # above the nearest-neighbour distance
