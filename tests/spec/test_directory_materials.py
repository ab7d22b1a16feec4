"""`{directory, pattern}` material entries expand to one import entry per matching reference file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pftflow.spec import SpecError, parse_spec

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _spec(materials):
    return {"name": "dir", "materials": materials, "models": [{"backend": "ase", "import_path": "ase.calculators.lj:LennardJones", "name": "LJ"}]}


@pytest.mark.skipif(not (SHARED / "phonopy").is_dir(), reason="needs ../shared/data (absent in a fresh clone)")
def test_directory_entry_expands_sorted_with_ids_from_file_names(tmp_path):
    for name in ("phonopy_params_Si.yaml", "phonopy_params_NaCl.yaml.xz"):
        shutil.copy(SHARED / "phonopy" / name, tmp_path / name)
    (tmp_path / "notes.txt").write_text("not a reference file")
    spec = parse_spec(_spec([{"directory": str(tmp_path), "pattern": "phonopy_params_*"}]))
    assert spec.material_ids == ["NaCl", "Si"]  # sorted by file name, ids from the names


def test_directory_entry_errors_name_the_field(tmp_path):
    with pytest.raises(SpecError, match=r"materials\[0\]\.directory: directory '.*nowhere' does not exist"):
        parse_spec(_spec([{"directory": str(tmp_path / "nowhere")}]))
    with pytest.raises(SpecError, match=r"materials\[0\]\.pattern: no file in .* matches '\*\.xyz'"):
        parse_spec(_spec([{"directory": str(tmp_path), "pattern": "*.xyz"}]))
