"""Helpers for the fine-tuning tests (unique module name so it never clashes with other conftest modules)."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def shared_file(rel: str) -> Path:
    p = SHARED_DATA / rel
    if not p.exists():
        pytest.skip(f"reference data {rel} not found under {SHARED_DATA} (../shared/data next to the repo)")
    return p


def tiny_mace(atomic_numbers=(11, 14, 17), r_max=4.0, seed=0, dtype=torch.float64, channels=8, scale=1.0):
    """A small ScaleShiftMACE (2 interactions, ``channels``x0e+``channels``x1o) for tests (a fresh copy)."""
    import copy

    return copy.deepcopy(_tiny_mace(tuple(atomic_numbers), r_max, seed, dtype, channels, scale))


@functools.lru_cache(maxsize=None)
def _tiny_mace(atomic_numbers, r_max, seed, dtype, channels, scale):
    from e3nn import o3
    from mace import modules

    torch.manual_seed(seed)
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        model = modules.ScaleShiftMACE(
            r_max=r_max,
            num_bessel=6,
            num_polynomial_cutoff=5,
            max_ell=2,
            interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
            interaction_cls_first=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
            num_interactions=2,
            num_elements=len(atomic_numbers),
            hidden_irreps=o3.Irreps(f"{channels}x0e + {channels}x1o"),
            MLP_irreps=o3.Irreps("8x0e"),
            gate=torch.nn.functional.silu,
            atomic_energies=np.array([-1.0 - 0.1 * i for i in range(len(atomic_numbers))]),
            avg_num_neighbors=10.0,
            atomic_numbers=list(atomic_numbers),
            correlation=2,
            radial_type="bessel",
            atomic_inter_scale=scale,
            atomic_inter_shift=0.0,
        )
    finally:
        torch.set_default_dtype(old)
    return model.to(dtype)


def rattled_si(n_rep=1, amp=0.05, seed=0):
    from ase.build import bulk

    a = bulk("Si", "diamond", a=5.43, cubic=True).repeat(n_rep)
    rng = np.random.default_rng(seed)
    a.positions += rng.normal(scale=amp, size=a.positions.shape)
    return a


def rattled_nacl(amp=0.05, seed=1):
    from ase.build import bulk

    a = bulk("NaCl", "rocksalt", a=5.64)
    a = a.repeat((2, 1, 1))
    rng = np.random.default_rng(seed)
    a.positions += rng.normal(scale=amp, size=a.positions.shape)
    return a


