"""Bad inputs are refused before any work, with one line naming the file, the field and the fix.

The corpus below holds the cases of issue 10 (species Xx, a kappa spec without structures, a missing
kappa file, a store.path that is a file, a corrupt .bz2, NaN forces, lr: "fast", atoms 0.1 Å apart,
a negative displacement, negative temperatures) and more, across the three campaign kinds.  Each one
goes through the command line in-process (``pftflow validate`` and ``pftflow run``): exit code 2,
exactly one line on stderr with the spec file, the field path, the problem and an ``e.g.`` fix, no
traceback, and no store created.  A sample also runs as a separate ``python -m pftflow.cli`` process
(library warnings or prints would show there).

The valid files the specs point to are written by tests/spec/spec_files.py (real phonopy yamls);
only the corrupt-.bz2 case uses ../shared (a truncated copy of mp-149.yaml.bz2), with a truncated
bz2 of a written file in its place when ../shared is absent.
"""

from __future__ import annotations

import bz2
import copy
import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from spec_files import CU_CELL, NACL_CELL, SI_CELL, truncated_copy, write_disp_and_force_sets, write_extxyz, write_kappa_files, write_reference

from pftflow.cli import main

REPO = Path(__file__).resolve().parents[2]
SHARED_MP149 = REPO.parent / "shared" / "data" / "mdr" / "mp-149.yaml.bz2"

EMT = {"backend": "ase", "name": "EMT", "import_path": "ase.calculators.emt:EMT"}
LJ = {"backend": "ase", "name": "LJ", "import_path": "ase.calculators.lj:LennardJones"}
AL_CELL = [[0.0, 2.025, 2.025], [2.025, 0.0, 2.025], [2.025, 2.025, 0.0]]


def _compute(mid, cell, species, frac, supercell=(3, 3, 3)):
    return {"id": mid, "structure": {"cell_A": cell, "species": list(species), "frac_coords": [list(f) for f in frac]}, "supercell_matrix": list(supercell)}


CU = _compute("Cu", CU_CELL, ["Cu"], [[0, 0, 0]])
AL = _compute("Al", AL_CELL, ["Al"], [[0, 0, 0]])
SI = _compute("Si", SI_CELL, ["Si", "Si"], [[0, 0, 0], [0.25, 0.25, 0.25]], (2, 2, 2))


# ------------------------------------------------------------------------------ valid bases
def phonons_compute() -> dict:
    """Cu and Al computed live with EMT (reference and model): validates without any model file."""
    return {
        "name": "bad-compute",
        "kind": "phonons",
        "materials": [copy.deepcopy(CU), copy.deepcopy(AL)],
        "reference": {"mode": "compute", "calculator": dict(EMT, name="EMT-ref")},
        "models": [dict(EMT)],
        "settings": {"phonons": {"displacement_A": 0.01, "mesh": [8, 8, 8], "temperatures_K": [0, 300]}, "relax_models": False},
    }


def phonons_import() -> dict:
    """Cu and Al reference files (phonopy yaml, bz2) against EMT."""
    return {"name": "bad-import", "kind": "phonons", "materials": ["Cu.yaml", {"id": "Al", "reference_file": "Al.yaml.bz2"}], "models": [dict(EMT)]}


def kappa() -> dict:
    return {"name": "bad-kappa", "kind": "kappa",
            "kappa": {"structures": "structures.extxyz", "reference": "kappas_NAC.json", "settings": {"q_mesh": [4, 4, 4], "temperatures_K": [300]}},
            "models": [dict(EMT)]}


def finetune() -> dict:
    return {
        "name": "bad-finetune",
        "kind": "finetune",
        "train_materials": ["Cu.yaml"],
        "test_materials": [{"id": "Al", "reference_file": "Al.yaml.bz2"}],
        "training": {"base_model": {"backend": "sevennet", "model": "7net-0", "name": "SevenNet-0"}, "fworker": None,
                     "data": {"cotrain_extxyz": ["up.extxyz"]}, "config": {"epochs": 2, "lr": 1.0e-4}},
    }


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The files every valid base spec points to, written once."""
    d = tmp_path_factory.mktemp("bad_inputs")
    write_reference(d / "Cu.yaml", ("Cu",), CU_CELL, ((0, 0, 0),))
    write_reference(d / "Al.yaml.bz2", ("Al",), AL_CELL, ((0, 0, 0),))
    write_reference(d / "Si.yaml", ("Si", "Si"), SI_CELL, ((0, 0, 0), (0.25, 0.25, 0.25)))
    write_extxyz(d / "up.extxyz")
    write_kappa_files(d)
    (d / "a_file").write_text("not a folder\n")
    return d


# ------------------------------------------------------------------------------ mutations
def put(*keys_and_value):
    """Set a nested key (creating mappings on the way)."""
    *keys, value = keys_and_value

    def f(d, folder):
        for k in keys[:-1]:
            d = d.setdefault(k, {}) if isinstance(k, str) else d[k]
        d[keys[-1]] = value

    return f


def drop(*keys):
    def f(d, folder):
        for k in keys[:-1]:
            d = d[k]
        d.pop(keys[-1])

    return f


def with_file(name, writer, *then):
    """Write a file with ``writer(path)`` and apply the mutations ``then``."""

    def f(d, folder):
        writer(folder / name)
        for g in then:
            g(d, folder)

    return f


def seq(*fs):
    """Several mutations, in order."""

    def f(d, folder):
        for g in fs:
            g(d, folder)

    return f


def _corrupt_bz2(path):
    if SHARED_MP149.is_file():
        truncated_copy(SHARED_MP149, path)  # a real MDR file cut in half: a broken download
    else:
        tmp = write_reference(path.with_name("whole-" + path.name))
        truncated_copy(tmp, path)


def _xx_reference(path):
    write_reference(path, ("Cu",), CU_CELL, ((0, 0, 0),))
    path.write_text(path.read_text().replace("Cu", "Xx"))


def _no_forces(path):
    write_disp_and_force_sets(path.parent, name="NoForces")[1].unlink()


def _truncated_json_gz(path):
    data = gzip.compress(json.dumps({"mp_id": {"0": "mp-30"}, "kappa_TOT_ave": {"0": [1.0] * 200}}).encode())
    path.write_bytes(data[: len(data) // 2])


OVERLAP = [[0, 0, 0], [0.016, 0.016, 0.016]]  # 0.016 * (3.61, 3.61, 3.61) Å: 0.10 Å apart in the Cu cell
CU2 = (("Cu", "Cu"), CU_CELL, OVERLAP)

# (case, base spec, mutation, field path, fragment of the message)
CASES = [
    # --- phonons, compute mode: structures
    ("species_Xx", phonons_compute, put("materials", 0, "structure", "species", ["Xx"]), "materials[0].structure.species[0]", "unknown chemical symbol 'Xx'"),
    ("species_lowercase", phonons_compute, put("materials", 1, "structure", "species", ["al"]), "materials[1].structure.species[0]", "did you mean 'Al'?"),
    ("atoms_0.1A_apart", phonons_compute, put("materials", 0, "structure", {"cell_A": CU_CELL, "species": ["Cu", "Cu"], "frac_coords": OVERLAP}),
     "materials[0].structure.frac_coords", "0.1 Å apart"),
    ("duplicated_atom", phonons_compute, put("materials", 1, "structure", {"cell_A": AL_CELL, "species": ["Al", "Al"], "frac_coords": [[0, 0, 0], [1, 1, 1]]}),
     "materials[1].structure.frac_coords", "0 Å apart"),
    ("singular_cell", phonons_compute, put("materials", 0, "structure", "cell_A", [[1.8, 1.8, 0], [3.6, 3.6, 0], [0, 0, 1.8]]), "materials[0].structure.cell_A", "singular"),
    ("nan_cell", phonons_compute, put("materials", 0, "structure", "cell_A", [[float("nan"), 1.8, 1.8], [1.8, 0, 1.8], [1.8, 1.8, 0]]),
     "materials[0].structure.cell_A[0][0]", "finite number"),
    ("frac_count", phonons_compute, put("materials", 0, "structure", "frac_coords", [[0, 0, 0], [0.5, 0.5, 0.5]]), "materials[0].structure.frac_coords",
     "2 frac_coords for 1 species"),
    ("supercell_singular", phonons_compute, put("materials", 0, "supercell_matrix", [[1, 0, 0], [1, 0, 0], [0, 0, 1]]), "materials[0].supercell_matrix",
     "determinant 0"),
    ("supercell_non_integer", phonons_compute, put("materials", 0, "supercell_matrix", [2, 2.5, 2]), "materials[0].supercell_matrix", "must be integers"),
    ("supercell_left_handed", phonons_compute, put("materials", 1, "supercell_matrix", [-2, 2, 2]), "materials[1].supercell_matrix", "negative"),
    ("supercell_too_large", phonons_compute, put("materials", 0, "supercell_matrix", [20, 20, 20]), "materials[0].supercell_matrix", "8000 atoms"),
    ("primitive_matrix_inconsistent", phonons_compute, put("materials", 0, "primitive_matrix", [[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]),
     "materials[0].primitive_matrix", "phonopy refuses"),
    ("primitive_matrix_singular", phonons_compute, put("materials", 0, "primitive_matrix", [[1, 0, 0], [1, 0, 0], [0, 0, 1]]), "materials[0].primitive_matrix",
     "singular"),
    # --- phonons: models and the elements they support
    ("reference_calculator_lacks_Si", phonons_compute, put("materials", 1, copy.deepcopy(SI)), "reference.calculator", "EMT-ref does not support Si in materials[1] (Si)"),
    ("model_lacks_Si", phonons_compute, seq(put("materials", 1, copy.deepcopy(SI)), put("reference", "calculator", dict(LJ))),
     "models[0]", "EMT does not support Si in materials[1] (Si)"),
    ("chgnet_lacks_Og", phonons_compute,
     seq(put("materials", 1, _compute("X", AL_CELL, ["Og"], [[0, 0, 0]])), put("reference", "calculator", dict(LJ)),
               put("models", [{"backend": "chgnet", "name": "CHGNet-any"}, {"backend": "chgnet", "name": "CHGNet"}])),
     "models[0]", "CHGNet-any does not support Og in materials[1] (X)"),
    ("sevennet_lacks_Po", phonons_compute,
     seq(put("materials", 1, _compute("Po", AL_CELL, ["Po"], [[0, 0, 0]])), put("reference", "calculator", dict(LJ)),
               put("models", [{"backend": "chgnet", "name": "CHGNet"}, {"backend": "sevennet", "model": "7net-0", "name": "SevenNet-0"}])),
     "models[1]", "SevenNet-0 does not support Po in materials[1] (Po)"),
    ("sevennet_unknown_checkpoint", phonons_compute, put("models", [{"backend": "sevennet", "model": "7net-99"}]), "models[0].model",
     "neither a file nor a checkpoint name"),
    ("nequix_batch_size_zero", phonons_compute, put("models", [{"backend": "nequix", "batch_size": 0}]), "models[0]", "'batch_size' must be >= 1"),
    ("unknown_backend", phonons_compute, put("models", 0, "backend", "sevenet"), "models[0].backend", "did you mean 'sevennet'?"),
    ("backend_option_typo", phonons_compute, put("models", [{"backend": "chgnet", "batchatoms": 8}]), "models[0].batchatoms", "did you mean 'batch_atoms'?"),
    ("duplicate_model_names", phonons_compute, put("models", [dict(EMT), dict(EMT)]), "models[1].name", "duplicate model name 'EMT'"),
    ("compute_without_calculator", phonons_compute, drop("reference", "calculator"), "reference.calculator", "needs a reference calculator"),
    ("structure_in_import_mode", phonons_compute, drop("reference"), "materials[0]", "reference.mode is 'import'"),
    # --- phonons: numeric settings and types
    ("negative_displacement", phonons_compute, put("settings", "phonons", "displacement_A", -0.01), "settings.phonons.displacement_A", "greater than 0"),
    ("zero_displacement", phonons_compute, put("settings", "phonons", "displacement_A", 0), "settings.phonons.displacement_A", "greater than 0"),
    ("displacement_not_a_number", phonons_compute, put("settings", "phonons", "displacement_A", "small"), "settings.phonons.displacement_A", "got 'small'"),
    ("negative_temperatures", phonons_compute, put("settings", "phonons", "temperatures_K", [-100, -5]), "settings.phonons.temperatures_K", ">= 0 K"),
    ("mesh_two_numbers", phonons_compute, put("settings", "phonons", "mesh", [8, 8]), "settings.phonons.mesh", "3 positive integers"),
    ("relax_fmax_negative", phonons_compute, put("settings", "relax", "fmax_eV_per_A", -1e-3), "settings.relax.fmax_eV_per_A", "greater than 0"),
    ("relax_models_not_bool", phonons_compute, put("settings", "relax_models", "sometimes"), "settings.relax_models", "valid boolean"),
    ("unknown_top_key", phonons_compute, put("matrials", []), "matrials", "did you mean 'materials'?"),
    ("unknown_nested_key", phonons_compute, put("settings", "phonons", "displacment_A", 0.02), "settings.phonons.displacment_A", "did you mean 'displacement_A'?"),
    ("store_path_is_a_file", phonons_compute, put("store", "path", "a_file"), "store.path", "is a file"),
    ("store_path_inside_a_file", phonons_compute, put("store", "path", "a_file/campaign"), "store.path", "which is a file"),
    ("store_uri_scheme", phonons_compute, put("store", "uri", "http://localhost:27017"), "store.uri", "mongodb://"),
    ("bad_campaign_name", phonons_compute, put("name", "my campaign"), "name", "should match pattern"),
    ("bad_kind", phonons_compute, put("kind", "phonon"), "kind", "did you mean 'phonons'?"),
    # --- phonons, import mode: reference files
    ("missing_reference_file", phonons_import, put("materials", 0, "nowhere/Cu.yaml"), "materials[0].reference_file", "does not exist"),
    ("reference_file_is_a_directory", phonons_import, put("materials", 0, "."), "materials[0].reference_file", "is a directory"),
    ("corrupt_bz2", phonons_import, with_file("mp-149.yaml.bz2", _corrupt_bz2, put("materials", 0, "mp-149.yaml.bz2")), "materials[0].reference_file",
     "EOFError"),
    ("not_bz2_at_all", phonons_import, with_file("plain.yaml.bz2", lambda p: p.write_text("phonopy:\n  version: 2.20\n"), put("materials", 0, "plain.yaml.bz2")),
     "materials[0].reference_file", "bzip2 -t plain.yaml.bz2"),
    ("truncated_xz", phonons_import,
     with_file("phonopy_params_NaCl.yaml.xz", lambda p: (write_reference(p.with_name("whole.yaml.xz"), ("Na", "Cl"), NACL_CELL, ((0, 0, 0), (0.5, 0.5, 0.5))),
                                                         truncated_copy(p.with_name("whole.yaml.xz"), p)),
               put("materials", 1, "phonopy_params_NaCl.yaml.xz")),
     "materials[1].reference_file", "xz -t phonopy_params_NaCl.yaml.xz"),
    ("binary_reference", phonons_import, with_file("binary.yaml", lambda p: p.write_bytes(bytes(range(256)) * 8), put("materials", 0, "binary.yaml")),
     "materials[0].reference_file", "UnicodeDecodeError"),
    ("nan_forces", phonons_import, with_file("nan.yaml", lambda p: write_reference(p, ("Cu",), CU_CELL, ((0, 0, 0),), bad_force=np.nan),
                                             put("materials", 0, "nan.yaml")), "materials[0].reference_file", "non-finite"),
    ("inf_forces", phonons_import, with_file("inf.yaml.bz2", lambda p: write_reference(p, ("Al",), AL_CELL, ((0, 0, 0),), bad_force=np.inf),
                                             put("materials", 1, "inf.yaml.bz2")), "materials[1].reference_file", "non-finite"),
    ("reference_atoms_0.1A_apart", phonons_import, with_file("overlap.yaml", lambda p: write_reference(p, *CU2, supercell=(1, 1, 1)),
                                                             put("materials", 0, "overlap.yaml")), "materials[0].reference_file", "0.1 Å apart"),
    ("reference_species_Xx", phonons_import, with_file("xx.yaml", _xx_reference, put("materials", 0, "xx.yaml")), "materials[0].reference_file",
     "Invalid symbol: Xx"),
    ("reference_without_forces", phonons_import, with_file("phonopy_disp_NoForces.yaml", _no_forces, put("materials", 0, "phonopy_disp_NoForces.yaml")),
     "materials[0].reference_file", "no forces"),
    ("not_a_reference", phonons_import, with_file("other.yaml", lambda p: p.write_text("a: 1\nb: [2, 3]\n"), put("materials", 0, "other.yaml")),
     "materials[0].reference_file", "cannot tell the format"),
    ("reference_format_typo", phonons_import, put("materials", 1, "reference_format", "mdrr"), "materials[1].reference_format", "did you mean 'mdr'?"),
    ("model_lacks_reference_species", phonons_import, put("materials", 1, "Si.yaml"), "models[0]", "EMT does not support Si in materials[1] (Si)"),
    ("duplicate_material_ids", phonons_import, put("materials", 1, {"id": "Cu", "reference_file": "Al.yaml.bz2"}), "materials[1].id", "duplicate material id 'Cu'"),
    # --- kappa
    ("kappa_without_structures", kappa, drop("kappa", "structures"), "kappa.structures", "'structures' is required"),
    ("kappa_missing_structures_file", kappa, put("kappa", "structures", "nowhere.extxyz"), "kappa.structures", "does not exist"),
    ("kappa_missing_reference_file", kappa, put("kappa", "reference", "nowhere.json"), "kappa.reference", "does not exist"),
    ("kappa_corrupt_reference", kappa, with_file("kappas_NAC.json.gz", _truncated_json_gz, put("kappa", "reference", "kappas_NAC.json.gz")),
     "kappa.reference", "cannot read the κ reference"),
    ("kappa_reference_without_columns", kappa, with_file("empty.json", lambda p: p.write_text("{}"), put("kappa", "reference", "empty.json")),
     "kappa.reference", "lacks columns"),
    ("kappa_corrupt_structures", kappa, with_file("broken.extxyz", lambda p: p.write_text("2\nnot an extxyz header\nCu 0 0\n"),
                                                  put("kappa", "structures", "broken.extxyz")), "kappa.structures", "cannot read the structures file"),
    ("kappa_atoms_0.1A_apart", kappa, with_file("k-overlap", lambda p: write_kappa_files(p, symbols=CU2[0], frac=CU2[2]),
                                                put("kappa", "structures", "k-overlap/structures.extxyz")), "kappa.structures", "0.1 Å apart"),
    ("kappa_singular_fc2_supercell", kappa, with_file("k-fc2", lambda p: write_kappa_files(p, fc2_supercell=(0, 3, 3)),
                                                      put("kappa", "structures", "k-fc2/structures.extxyz")), "kappa.structures", "fc2_supercell has determinant 0"),
    ("kappa_model_lacks_species", kappa, with_file("k-si", lambda p: write_kappa_files(p, symbols=("Si", "Si"), cell=SI_CELL, frac=((0, 0, 0), (0.25, 0.25, 0.25)),
                                                                                     mp_id="mp-149", name="Si"),
                                                   put("kappa", "structures", "k-si/structures.extxyz"), put("kappa", "reference", None)),
     "models[0]", "EMT does not support Si in kappa.structures (mp-149, Si)"),
    ("kappa_negative_temperatures", kappa, put("kappa", "settings", "temperatures_K", [-300]), "kappa.settings.temperatures_K", ">= 0 K"),
    ("kappa_negative_displacement", kappa, put("kappa", "settings", "displacement_A", -0.03), "kappa.settings.displacement_A", "greater than 0"),
    ("kappa_q_mesh_zero", kappa, put("kappa", "settings", "q_mesh", [19, 0, 19]), "kappa.settings.q_mesh", "3 positive integers"),
    ("kappa_unknown_material", kappa, put("kappa", "materials", ["Cux"]), "kappa.materials[0]", "did you mean 'Cu'?"),
    ("kappa_conductivity_typo", kappa, put("kappa", "settings", "conductivity", "wigne"), "kappa.settings.conductivity", "did you mean 'wigner'?"),
    # --- finetune
    ("lr_fast", finetune, put("training", "config", "lr", "fast"), "training.config.lr", "got 'fast'"),
    ("cosine_min_lr_above_lr", finetune, put("training", "config", {"epochs": 2, "lr": 1.0e-4, "scheduler": "cosine", "min_lr": 1.0e-3}),
     "training.config", "min_lr (0.001) is above lr (0.0001): the cosine schedule would raise the learning rate"),
    ("epochs_negative", finetune, put("training", "config", "epochs", -1), "training.config.epochs", "greater than or equal to 0"),
    ("finetune_mode_typo", finetune, put("training", "config", "finetune", {"mode": "lorra"}), "training.config.finetune.mode", "did you mean 'lora'?"),
    ("untrainable_base_model", finetune, put("training", "base_model", {"backend": "chgnet"}), "training.base_model.backend", "cannot be fine-tuned"),
    ("base_model_unknown_checkpoint", finetune, put("training", "base_model", {"backend": "sevennet", "model": "7net-99"}), "training.base_model.model",
     "neither a file nor a checkpoint name"),
    ("base_model_lacks_Po", finetune, with_file("Po.yaml", lambda p: write_reference(p, ("Po",), CU_CELL, ((0, 0, 0),), masses=[209.0]),
                                                put("train_materials", ["Cu.yaml", "Po.yaml"])),
     "training.base_model", "SevenNet-0 does not support Po in train_materials[1] (Po)"),
    ("train_nan_forces", finetune, with_file("nan-train.yaml", lambda p: write_reference(p, ("Cu",), CU_CELL, ((0, 0, 0),), bad_force=np.nan),
                                             put("train_materials", ["nan-train.yaml"])), "train_materials[0].reference_file", "non-finite"),
    ("test_corrupt_bz2", finetune, with_file("test.yaml.bz2", lambda p: p.write_bytes(bz2.compress(b"phonopy:\n" * 1000)[:40]), put("test_materials", ["test.yaml.bz2"])),
     "test_materials[0].reference_file", "bzip2 -t test.yaml.bz2"),
    ("valid_material_missing", finetune, put("training", "valid_materials", ["nowhere.yaml"]), "training.valid_materials[0].reference_file", "does not exist"),
    ("held_out_material_trained_on", finetune, put("test_materials", ["Cu.yaml"]), "test_materials[0]", "a held-out material must not be trained on"),
    ("cotrain_not_extxyz", finetune, with_file("junk.extxyz", lambda p: p.write_text("3\nno lattice here\nCu 0 0 0 0\n"),
                                               put("training", "data", "cotrain_extxyz", ["junk.extxyz"])), "training.data.cotrain_extxyz[0].path", "cannot read"),
    ("cotrain_bad_index", finetune, put("training", "data", "cotrain_extxyz", [{"path": "up.extxyz", "index": "first"}]), "training.data.cotrain_extxyz[0].index",
     "not an ASE frame selection"),
    ("no_train_materials", finetune, put("train_materials", []), "train_materials", "at least 1 item"),
]


def _write(folder: Path, case: str, factory, mutate) -> Path:
    raw = factory()
    raw.setdefault("store", {}).setdefault("path", f"stores/{case}")
    mutate(raw, folder)
    path = folder / f"{case}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))
    return path


def _check_line(err: str, path: Path, field: str, fragment: str) -> None:
    lines = err.splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert "Traceback" not in err, err
    assert f"{path}: {field}: " in line, line  # the spec file, then the field path
    assert fragment in line, line
    assert "; e.g. " in line, line  # an example fix


def test_corpus_is_large_and_covers_the_issue():
    names = [c[0] for c in CASES]
    assert len(names) == len(set(names)) >= 40
    kinds = {c[1].__name__ for c in CASES}
    assert kinds == {"phonons_compute", "phonons_import", "kappa", "finetune"}
    for required in ("species_Xx", "kappa_without_structures", "kappa_missing_reference_file", "store_path_is_a_file", "corrupt_bz2", "nan_forces",
                     "lr_fast", "atoms_0.1A_apart", "negative_displacement", "negative_temperatures"):
        assert required in names


@pytest.mark.parametrize("case,factory,mutate,field,fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_with_exit_code_2(folder, monkeypatch, capsys, case, factory, mutate, field, fragment):
    monkeypatch.chdir(folder)
    path = _write(folder, case, factory, mutate)
    capsys.readouterr()
    assert main(["validate", str(path)]) == 2
    _check_line(capsys.readouterr().err, path, field, fragment)
    assert main(["run", str(path), "--no-progress", "--no-plots"]) == 2
    _check_line(capsys.readouterr().err, path, field, fragment)
    assert not (folder / "stores" / case).exists()  # refused before any work: no store was created


SUBPROCESS_SAMPLE = ["species_Xx", "corrupt_bz2", "nan_forces", "store_path_is_a_file", "kappa_without_structures", "lr_fast"]


def test_bad_inputs_in_a_fresh_process(folder):
    """The same through ``python -m pftflow.cli``: nothing else reaches stderr (library warnings, prints)."""
    by_name = {c[0]: c for c in CASES}
    for i, name in enumerate(SUBPROCESS_SAMPLE):
        case, factory, mutate, field, fragment = by_name[name]
        path = _write(folder, f"sub-{case}", factory, mutate)
        cmd = "run" if i == 0 else "validate"
        p = subprocess.run([sys.executable, "-m", "pftflow.cli", cmd, str(path)], check=False, cwd=folder, capture_output=True, text=True, timeout=300)
        assert p.returncode == 2, (name, p.stdout, p.stderr)
        _check_line(p.stderr, path, field, fragment)


def test_valid_bases_load(folder, monkeypatch):
    """The bases of the corpus are valid, so each case fails for its own mutation only."""
    from pftflow.spec import load_spec

    monkeypatch.chdir(folder)
    for factory in (phonons_compute, phonons_import, kappa, finetune):
        spec = load_spec(_write(folder, f"valid-{factory.__name__}", factory, lambda d, f: None))
        assert spec.name.startswith("bad-")
    spec = load_spec(folder / "valid-phonons_import.yaml")
    assert [m.species() for m in spec.materials] == [("Cu",), ("Al",)]


# ------------------------------------------------------------------------------ good materials finish
PICKY = '''
from ase.calculators.emt import EMT


class Picky(EMT):
    """EMT that fails at run time on any structure with Ni (a model broken for one material)."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        if atoms is not None and "Ni" in atoms.get_chemical_symbols():
            raise RuntimeError("picky model: no Ni")
        super().calculate(atoms, properties, system_changes)


def make():
    return Picky()
'''


def test_one_material_failing_at_run_time_leaves_the_others_finished(tmp_path, monkeypatch):
    """3 reference files that pass validation; one model fails on one of them at run time: the
    other material x model pairs finish and are in the results.  (The same for a model that fails
    on every material: tests/flows/test_campaigns.py::test_failing_model_is_reported_and_others_still_run.)"""
    from ase.build import bulk
    from ase.calculators.emt import EMT as AseEMT

    from pftflow.results import load_results
    from pftflow.run import run_campaign
    from pftflow.spec import load_spec

    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "pickycalc.py").write_text(PICKY)
    for sym, a in (("Cu", 3.61), ("Al", 4.05), ("Ni", 3.52)):  # EMT references: real forces
        write_emt_reference(tmp_path / f"{sym}.yaml", bulk(sym, "fcc", a=a), AseEMT())
    spec_path = tmp_path / "three.yaml"
    spec_path.write_text(yaml.safe_dump({
        "name": "three", "kind": "phonons", "store": {"path": str(tmp_path / "camp")},
        "materials": ["Cu.yaml", "Al.yaml", "Ni.yaml"],
        "models": [dict(EMT, name="EMT-same"), {"backend": "ase", "name": "picky", "import_path": "pickycalc:make"}],
        "settings": {"phonons": {"mesh": [6, 6, 6], "band_npoints": 5}, "relax_models": False},
    }))
    from pftflow.materials import readers

    parsed = []
    real = readers._read_uncached
    monkeypatch.setattr(readers, "_read_uncached", lambda path, **kw: parsed.append(Path(path).name) or real(path, **kw))
    spec = load_spec(spec_path)  # all three pass validation (and are parsed here)
    summary = run_campaign(spec, progress=False, plots=False)
    assert sorted(parsed) == ["Al.yaml", "Cu.yaml", "Ni.yaml"]  # the import jobs reused the parse of the validation
    assert summary.failed_jobs >= 1
    assert {(f.material_id, f.model) for f in summary.failures} == {("Ni", "picky")}
    rows = load_results(spec)["rows"]
    # a finished pair has a model ω_max (K); failed / missing pairs may be listed too, with a status
    done = {(r["material_id"], r["model"]) for r in rows
            if r.get("status", "ok") == "ok" and isinstance(r.get("omega_max_K"), float) and np.isfinite(r["omega_max_K"])}
    assert done == {("Cu", "EMT-same"), ("Al", "EMT-same"), ("Ni", "EMT-same"), ("Cu", "picky"), ("Al", "picky")}
    same = {r["material_id"]: r for r in rows if r["model"] == "EMT-same"}
    assert all(abs(same[m]["omega_max_K"] - same[m]["omega_max_K_ref"]) < 1e-6 for m in ("Cu", "Al", "Ni"))  # EMT model = EMT reference


def write_emt_reference(path: Path, atoms, calc, supercell=(2, 2, 2)) -> Path:
    """A phonopy_params yaml with forces from an ASE calculator (here EMT) on phonopy's displacements."""
    import phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    ph = phonopy.Phonopy(PhonopyAtoms(symbols=atoms.get_chemical_symbols(), cell=atoms.cell[:], scaled_positions=atoms.get_scaled_positions()),
                         supercell_matrix=np.diag(supercell))
    ph.generate_displacements(distance=0.01)
    forces = []
    from ase import Atoms

    for sc in ph.supercells_with_displacements:
        a = Atoms(sc.symbols, cell=sc.cell, scaled_positions=sc.scaled_positions, pbc=True)
        a.calc = calc
        forces.append(a.get_forces())
    ph.forces = np.array(forces)
    ph.save(path)
    return path
