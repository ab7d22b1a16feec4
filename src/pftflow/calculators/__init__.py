"""Batch-first force evaluation backends."""

from pftflow.calculators.base import ForceCalculator, ForceResults, file_sha256
from pftflow.calculators.backends import (
    ASECalculator,
    CHGNetCalculator,
    MACECalculator,
    SevenNetCalculator,
    get_calculator,
    resolve_mace_model,
)

__all__ = [
    "ForceCalculator",
    "ForceResults",
    "file_sha256",
    "ASECalculator",
    "CHGNetCalculator",
    "MACECalculator",
    "SevenNetCalculator",
    "get_calculator",
    "resolve_mace_model",
]
