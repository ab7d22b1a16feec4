"""Rattled structure sets: normal rattle, Monte-Carlo rattle with a minimum distance, and
"rattle then relax" snapshots along short relaxation trajectories.

The displacements come from hiphive (``generate_rattled_structures``, ``generate_mc_rattled_structures``),
called once per structure with that structure's own seed.  The seeds are spawned from the set's one
seed with :class:`numpy.random.SeedSequence` (:func:`structure_seeds`): the same seed gives the same
set, and no two structures of a set share a seed (one seed and one scale for the whole set gives
identical structures, the autoplex bug).

What is written here by hand (no library offers it): the seed derivation, redrawing a structure whose
atoms come closer than ``min_distance_A`` (from further seeds of the same structure's sequence, so it
stays reproducible), calibrating the MC rattle step so that the displacement standard deviation
matches ``amplitude_A``, and sampling a snapshot from an ASE optimizer's trajectory.

Amplitude convention: ``amplitude_A`` is the standard deviation (Å) of the Cartesian displacement
components of the set (a normal rattle's ``rattle_std``); :func:`pftflow.sampling.checks.displacement_stats`
measures it.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from ase import Atoms

from pftflow.sampling.checks import displacement_stats, min_distance

#: tries per structure to stay above min_distance_A before giving up
MAX_TRIES = 20


def structure_seeds(seed: int, n: int) -> list[int]:
    """``n`` independent 32-bit seeds derived from one ``seed`` (``SeedSequence(seed).spawn(n)``)."""
    return [int(c.generate_state(1, dtype=np.uint32)[0]) for c in np.random.SeedSequence(int(seed)).spawn(n)]


def _tries(structure_seed: int) -> list[int]:
    """Seeds of the successive tries of one structure: its own seed first, then spawned ones."""
    extra = np.random.SeedSequence(structure_seed).generate_state(MAX_TRIES - 1, dtype=np.uint32)
    return [structure_seed, *(int(s) for s in extra)]


def _plain(atoms: Atoms) -> Atoms:
    a = Atoms(atoms.get_chemical_symbols(), cell=atoms.cell[:], positions=atoms.positions, pbc=atoms.pbc)
    a.set_masses(atoms.get_masses())
    return a


def _draw(atoms: Atoms, seeds: list[int], draw_one: Callable[[Atoms, int], Atoms], min_distance_A: float | None, what: str) -> list[Atoms]:
    out = []
    for k, s in enumerate(seeds):
        for t in _tries(s):
            a = draw_one(atoms, t)
            if min_distance_A is None or min_distance(a) >= min_distance_A:
                break
        else:
            raise ValueError(
                f"{what}: structure {k} has atoms closer than min_distance_A = {min_distance_A} Å after {MAX_TRIES} draws; "
                "lower amplitude_A or min_distance_A"
            )
        out.append(_plain(a))
    return out


def rattle(atoms: Atoms, n_structures: int, amplitude_A: float, seed: int, *, min_distance_A: float | None = None) -> list[Atoms]:
    """``n_structures`` copies of ``atoms`` with Gaussian displacements of standard deviation
    ``amplitude_A`` (Å) per Cartesian component (hiphive ``generate_rattled_structures``), one
    seed per structure; with ``min_distance_A`` a structure with a closer pair is drawn again."""
    from hiphive.structure_generation import generate_rattled_structures

    def one(a, s):
        return generate_rattled_structures(a, 1, amplitude_A, seed=s)[0]

    return _draw(atoms, structure_seeds(seed, n_structures), one, min_distance_A, "rattle")


def mc_rattle(
    atoms: Atoms,
    n_structures: int,
    amplitude_A: float,
    min_distance_A: float,
    seed: int,
    *,
    n_iter: int = 10,
    width_A: float = 0.1,
    calibrate: bool = True,
    max_rounds: int = 4,
    tolerance: float = 0.03,
) -> tuple[list[Atoms], dict]:
    """Monte-Carlo rattle (hiphive ``generate_mc_rattled_structures``): a move is accepted with the
    probability (1 + erf((d - d_min) / width_A)) / 2 of the moved atom's nearest distance d; here
    ``d_min = min_distance_A + 2 width_A``, so a move onto the floor ``min_distance_A`` is accepted
    with p = 0.2 %, and a structure still below the floor is drawn again.  The MC step is ``amplitude_A / sqrt(n_iter)`` and, with ``calibrate``, rescaled (same seeds)
    until the set's displacement standard deviation is within ``tolerance`` of ``amplitude_A``.

    Returns ``(structures, info)`` with ``info = {"rattle_std_A": MC step used, "rounds": n}``.
    """
    from hiphive.structure_generation import generate_mc_rattled_structures

    seeds = structure_seeds(seed, n_structures)
    d_min = min_distance_A + 2 * width_A  # hiphive's erf centre: a move to the floor is accepted with p = 0.2 %
    step = amplitude_A / np.sqrt(n_iter)
    rounds = 0
    while True:
        rounds += 1

        def one(a, s, step=step):
            return generate_mc_rattled_structures(a, 1, step, d_min, seed=s, n_iter=n_iter, width=width_A)[0]

        structures = _draw(atoms, seeds, one, min_distance_A, "mc_rattle")
        std = displacement_stats(atoms, structures)["std_A"]
        if not calibrate or rounds >= max_rounds or std <= 0 or abs(std / amplitude_A - 1) <= tolerance:
            return structures, {"rattle_std_A": float(step), "rounds": rounds, "n_iter": n_iter, "width_A": width_A, "hiphive_d_min_A": d_min}
        step *= amplitude_A / std


def relax_snapshots(
    starts: list[Atoms],
    calculator,
    seed: int,
    *,
    steps: int = 20,
    fmax_eV_per_A: float = 0.05,
) -> tuple[list[Atoms], list[dict]]:
    """One snapshot per start structure from a short positions-only FIRE relaxation with the ASE
    ``calculator`` (cell fixed, so the supercell matrix still holds): the frame is drawn uniformly
    from steps 1..n of the trajectory with the structure's own seed (step 0 when it is already
    relaxed).  Returns the snapshots and per structure ``{"step", "n_steps"}``."""
    from ase.optimize import FIRE

    out, info = [], []
    for start, s in zip(starts, structure_seeds(seed, len(starts))):
        a = _plain(start)
        a.calc = calculator
        frames: list[np.ndarray] = [a.positions.copy()]
        opt = FIRE(a, logfile=None)
        opt.attach(lambda a=a, frames=frames: frames.append(a.positions.copy()), interval=1)
        opt.run(fmax=fmax_eV_per_A, steps=steps)
        traj = _unique(frames)  # the observer also runs before the first step
        step = int(np.random.default_rng(s).integers(1, len(traj))) if len(traj) > 1 else 0
        snap = _plain(start)
        snap.positions = traj[step]
        out.append(snap)
        info.append({"step": step, "n_steps": len(traj) - 1})
    return out, info


def _unique(frames: list[np.ndarray]) -> list[np.ndarray]:
    keep = [frames[0]]
    for p in frames[1:]:
        if not np.array_equal(p, keep[-1]):
            keep.append(p)
    return keep
