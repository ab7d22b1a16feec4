import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

SHARED = Path(__file__).parents[2].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared reference data not found at {SHARED} (../shared/data relative to the repository root)")
    return SHARED


@pytest.fixture(scope="session")
def ksrme_dir(shared_data) -> Path:
    d = shared_data / "ksrme"
    if not (d / "phononDB-PBE-structures_subset.extxyz").is_file():
        pytest.skip(f"k_SRME subset not found in {d}")
    return d
