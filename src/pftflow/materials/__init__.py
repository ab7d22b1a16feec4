"""Crystal records and readers of reference phonon data."""

from pftflow.materials.reference import PhononReference, ThermalProperties, ReferenceFormatError
from pftflow.materials.readers import (
    read_reference,
    read_phonopy,
    read_mdr,
    read_atomate2,
)

__all__ = [
    "PhononReference",
    "ThermalProperties",
    "ReferenceFormatError",
    "read_reference",
    "read_phonopy",
    "read_mdr",
    "read_atomate2",
]
