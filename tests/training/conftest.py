"""Fixtures for the fine-tuning tests: tiny MACE models built in the test, small crystals, shared data."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # pft_testutils (unique name, no package needed)

from pft_testutils import rattled_nacl, rattled_si, shared_file, tiny_mace  # noqa: F401

@pytest.fixture
def make_mace():
    return tiny_mace


@pytest.fixture
def shared():
    return shared_file


@pytest.fixture
def si_rattled():
    return rattled_si


@pytest.fixture
def nacl_rattled():
    return rattled_nacl
