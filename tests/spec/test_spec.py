"""Typed campaign specs (pftflow.spec): the shipped specs load, bad specs fail at load with one-line
messages that name the file, the field and a fix, the JSON Schema accepts the shipped specs, and
plan() counts the jobs the builders create (counted by hand here).

The phonons / finetune / kappa corpora use files written to tmp_path (the spec only checks that
reference files exist; the kappa structures file is a real one-frame extxyz), so nothing here needs
../shared except the shipped workflows that point into it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from pftflow.spec import SpecError, load_spec, parse_spec, plan, spec_json_schema

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / "workflows").glob("*.yaml"))
SHARED = REPO.parent / "shared" / "data"

SI = {
    "id": "Si",
    "source": "diamond Si, a = 5.431 Å",
    "structure": {
        "cell_A": [[0.0, 2.7155, 2.7155], [2.7155, 0.0, 2.7155], [2.7155, 2.7155, 0.0]],
        "species": ["Si", "Si"],
        "frac_coords": [[0.0, 0.0, 0.0], [0.25, 0.25, 0.25]],
    },
    "supercell_matrix": [2, 2, 2],
}
NACL = {
    "id": "NaCl",
    "structure": {
        "cell_A": [[0.0, 2.82, 2.82], [2.82, 0.0, 2.82], [2.82, 2.82, 0.0]],
        "species": ["Na", "Cl"],
        "frac_coords": [[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]],
    },
    "supercell_matrix": [2, 2, 2],
}
EMT = {"backend": "ase", "name": "EMT", "import_path": "ase.calculators.emt:EMT"}
#: a reference calculator for Si and NaCl (EMT covers neither; LJ declares no element list)
LJ = {"backend": "ase", "name": "LJ", "import_path": "ase.calculators.lj:LennardJones"}


def phonons_spec() -> dict:
    """workflows/quickstart.yaml, with LJ as the reference calculator (no GPAW needed to validate)."""
    return {
        "name": "qs",
        "kind": "phonons",
        "store": {"path": "campaigns/qs"},
        "materials": [copy.deepcopy(SI), copy.deepcopy(NACL)],
        "reference": {"mode": "compute", "calculator": dict(LJ, name="LJ-ref")},
        "models": [{"backend": "sevennet", "model": "7net-0", "name": "SevenNet-0"}, {"backend": "chgnet", "name": "CHGNet"}],
        "settings": {"phonons": {"displacement_A": 0.01, "mesh": 100.0, "temperatures_K": [0, 75, 150, 300, 600]},
                     "relax": {"fmax_eV_per_A": 0.001, "steps": 500}},
    }


@pytest.fixture
def files(tmp_path, monkeypatch):
    """Small valid reference files (the spec reads and checks them), an extxyz set, a one-frame κ
    structures extxyz and a κ reference JSON (tests/spec/spec_files.py)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from spec_files import NACL_CELL, write_disp_and_force_sets, write_extxyz, write_kappa_files, write_reference

    monkeypatch.chdir(tmp_path)
    write_reference(tmp_path / "mp-149.yaml.bz2")
    write_reference(tmp_path / "phonopy_params_NaCl.yaml.xz", ("Na", "Cl"), NACL_CELL, ((0, 0, 0), (0.5, 0.5, 0.5)))
    write_disp_and_force_sets(tmp_path)
    write_extxyz(tmp_path / "up.extxyz")
    write_kappa_files(tmp_path)
    return tmp_path


def finetune_spec() -> dict:
    return {
        "name": "ft",
        "kind": "finetune",
        "train_materials": [{"id": "SnO2", "reference_file": "phonopy_disp_SnO2.yaml"}, "phonopy_params_NaCl.yaml.xz"],
        "test_materials": ["mp-149.yaml.bz2"],
        "training": {
            "base_model": {"backend": "sevennet", "model": "7net-0", "name": "SevenNet-0"},
            "export_name": "SevenNet-0-PFT",
            "fworker": None,
            "data": {"cotrain_extxyz": ["up.extxyz"]},
            "config": {"epochs": 2, "lr": 1.0e-4, "weights": {"energy": 20.0, "forces": 20.0, "stress": 5.0, "hessian": 100.0},
                       "finetune": {"mode": "lora", "lora_rank": 4}},
        },
        "settings": {"phonons": {"mesh": [6, 6, 6]}},
    }


def kappa_spec() -> dict:
    return {
        "name": "k",
        "kind": "kappa",
        "kappa": {"structures": "structures.extxyz", "reference": "kappas_NAC.json", "nac": True, "materials": "all",
                  "settings": {"q_mesh": [4, 4, 4], "relax": {"steps": 100}}},
        "models": [dict(EMT), dict(EMT, name="EMT-2")],
    }


# ------------------------------------------------------------------------------ shipped specs
@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_shipped_workflows_load(path, monkeypatch):
    monkeypatch.chdir(REPO)  # their relative paths are from the repository root
    text = path.read_text()
    if "../shared" in text and not SHARED.is_dir():
        pytest.skip(f"{path.name} points to ../shared/data, absent at {SHARED}")
    raw = yaml.safe_load(text)
    missing = [p for p in (raw.get("kappa") or {}).values() if isinstance(p, str) and p.startswith("data/") and not Path(p).exists()]
    if missing:  # kappa-103.yaml is a template: the k_SRME files are downloaded by the user
        with pytest.raises(SpecError) as exc:
            load_spec(path)
        msg = str(exc.value)
        assert msg.startswith(f"{path}: kappa.structures: file '{missing[0]}' does not exist") and "e.g. structures:" in msg
        return
    spec = load_spec(path)
    assert spec.kind == raw["kind"] and spec.name == raw["name"]
    assert spec.raw == raw and spec.path == path
    assert spec.store_dir == Path(raw["store"]["path"])
    assert plan(spec)["n_jobs"] > 0


# ------------------------------------------------------------------------------ typed values
def test_phonons_typed_values_and_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    raw = phonons_spec()
    del raw["kind"], raw["store"]  # kind defaults to phonons, store to campaigns/<name>
    spec = parse_spec(raw)
    assert type(spec).__name__ == "PhononsSpec" and spec.kind == "phonons"
    assert spec.store_dir == Path("campaigns/qs") and spec.path is None and spec.raw == raw
    si = spec.materials[0]
    assert si.supercell_matrix == [[2, 0, 0], [0, 2, 0], [0, 0, 2]]
    atoms = si.structure.atoms()
    assert atoms.get_volume() == pytest.approx(2 * 2.7155**3, rel=1e-12)  # fcc primitive cell: a³/4, a = 2 * 2.7155
    assert spec.settings.phonons.temperatures_K == [0, 75, 150, 300, 600]
    assert spec.settings.phonons.as_dict()["temperatures_K"] == [0.0, 75.0, 150.0, 300.0, 600.0]
    assert spec.settings.relax.fmax_eV_per_A == 1e-3 and spec.settings.relax_models is True
    assert spec.reference.calculator.calculator_spec() == {**LJ, "name": "LJ-ref"}
    assert spec.model_names == ["SevenNet-0", "CHGNet"] and spec.material_ids == ["Si", "NaCl"]
    # a model without a name gets identity.model_name's; a reference calculator without one is 'reference'
    raw["models"] = ["chgnet", {"backend": "mace", "model": "models/my.model"}]
    raw["reference"]["calculator"].pop("name")
    spec = parse_spec(raw)
    assert spec.model_names == ["chgnet", "mace:my.model"]
    assert spec.reference.calculator.name == "reference"


def test_import_materials_finetune_and_kappa_values(files):
    spec = parse_spec({"name": "imp", "materials": ["mp-149.yaml.bz2", {"reference_file": "phonopy_disp_SnO2.yaml", "force_sets": "FORCE_SETS_SnO2"}],
                       "models": ["sevennet"]})
    assert spec.material_ids == ["mp-149", "SnO2"]  # ids from the file names (identity.material_id_from_path)
    assert spec.materials[1].entry() == {"id": "SnO2", "reference_file": "phonopy_disp_SnO2.yaml", "force_sets": "FORCE_SETS_SnO2"}

    ft = parse_spec(finetune_spec())
    assert [m.id for m in ft.train_materials] == ["SnO2", "NaCl"] and ft.material_ids == ["mp-149"]
    cfg = ft.training.config
    assert cfg.finetune.mode == "lora" and cfg.finetune.lora_rank == 4 and cfg.epochs == 2
    assert cfg.as_dict()["finetune"] == {"mode": "lora", "lora_rank": 4}  # the keys given, as before (hash of the work dir)
    assert ft.model_names == ["SevenNet-0", "SevenNet-0-PFT"] and ft.training.fworker is None
    assert ft.training.data.cotrain_extxyz[0].energy_key == "REF_energy"

    k = parse_spec(kappa_spec())
    assert k.material_ids == ["mp-30"]
    s = k.kappa.settings
    assert s.q_mesh == [4, 4, 4] and s.conductivity == "wigner" and s.displacement_A == 0.03
    # relax overrides apply on top of the k_SRME protocol, not RelaxSettings' MDR defaults
    assert (s.relax.steps, s.relax.fmax_eV_per_A, s.relax.two_stage) == (100, 1e-4, True)
    assert s.kappa_settings().as_dict() == {**s.model_dump(exclude={"relax", "do_relax"})}


def test_kappa_keys_at_top_level(files):
    """structures / reference / nac / materials / settings may be top-level keys (the block wins)."""
    raw = kappa_spec()
    block = raw.pop("kappa")
    top = parse_spec({**raw, **block})
    assert top.kappa.model_dump() == parse_spec(kappa_spec()).kappa.model_dump()
    both = parse_spec({**raw, "materials": ["nothing-like-this"], "kappa": block})
    assert both.material_ids == ["mp-30"]


def test_settings_classes_keep_their_helpers():
    from pftflow.kappa.conductivity import KappaSettings
    from pftflow.phonons.harmonic import PhononSettings
    from pftflow.phonons.relax import RelaxSettings
    from pftflow.training.adapters import FinetuneSpec
    from pftflow.training.loss import LossWeights
    from pftflow.training.trainer import TrainConfig

    assert PhononSettings().as_dict() == {"displacement_A": 0.01, "symprec": 1e-5, "temperatures_K": [0.0, 75.0, 150.0, 300.0, 600.0],
                                          "mesh": 100.0, "band_npoints": 51, "subtract_drift": True, "symmetrize_fc": True,
                                          "exclude_gamma_acoustic": True}
    assert PhononSettings(mesh=[6, 6, 6]).as_dict()["mesh"] == [6, 6, 6]
    assert RelaxSettings.ksrme().as_dict() == {"fmax_eV_per_A": 1e-4, "steps": 300, "restarts": 0, "relax_cell": True, "fix_symmetry": True,
                                               "symprec": 1e-5, "two_stage": True, "cell_mask": None, "optimizer": "FIRE"}
    assert RelaxSettings.mdr(steps=10).steps == 10
    assert KappaSettings.from_dict({"q_mesh": [4, 4, 4]}).as_dict()["q_mesh"] == [4, 4, 4]
    with pytest.raises(ValueError, match="q_mseh"):
        KappaSettings.from_dict({"q_mseh": [4, 4, 4]})
    cfg = TrainConfig(weights={"hessian": 50}, finetune="delta")
    assert cfg.as_dict()["weights"] == {"hessian": 50.0} and cfg.as_dict()["finetune"] == {"mode": "delta"}
    assert LossWeights(**cfg.weights) == LossWeights(energy=20, forces=20, stress=5, hessian=50)  # what train() does
    assert FinetuneSpec(**cfg.finetune).mode == "delta"
    assert TrainConfig().as_dict()["finetune"] == {"mode": "full", "freeze": [], "lora_rank": 4, "lora_alpha": 1.0}
    assert TrainConfig(**TrainConfig(lr="1e-3").as_dict()).lr == 1e-3  # YAML's 1e-3 (a string) is read as a number


# ------------------------------------------------------------------------------ error corpus
def _set(*keys_and_value):
    *keys, value = keys_and_value

    def f(d):
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value

    return f


def _pop(*keys):
    def f(d):
        for k in keys[:-1]:
            d = d[k]
        d.pop(keys[-1])

    return f


def _dup_material(d):
    d["materials"][1]["id"] = "Si"


def _held_out(d):
    d["test_materials"].append("phonopy_params_NaCl.yaml.xz")


# (case, spec factory, mutation, field path in the message, a fragment of the message)
CORPUS = [
    ("top_unknown", phonons_spec, _set("matrials", []), "matrials", "did you mean 'materials'?"),
    ("nested_typo", phonons_spec, _set("settings", "phonons", "displacment_A", 0.02), "settings.phonons.displacment_A",
     "did you mean 'displacement_A'?"),
    ("unit_suffix", phonons_spec, _set("settings", "relax", "fmax", 1e-3), "settings.relax.fmax", "did you mean 'fmax_eV_per_A'?"),
    ("negative_displacement", phonons_spec, _set("settings", "phonons", "displacement_A", -0.01), "settings.phonons.displacement_A",
     "greater than 0"),
    ("negative_temperature", phonons_spec, _set("settings", "phonons", "temperatures_K", [0, -5]), "settings.phonons.temperatures_K", ">= 0 K"),
    ("bad_mesh", phonons_spec, _set("settings", "phonons", "mesh", [8, 8]), "settings.phonons.mesh", "3 positive integers"),
    ("zero_fmax", phonons_spec, _set("settings", "relax", "fmax_eV_per_A", 0), "settings.relax.fmax_eV_per_A", "greater than 0"),
    ("negative_steps", phonons_spec, _set("settings", "relax", "steps", -1), "settings.relax.steps", "greater than or equal to 0"),
    ("bad_cell", phonons_spec, _set("materials", 1, "structure", "cell_A", [[1, 0, 0]]), "materials[1].structure.cell_A", "at least 3 items"),
    ("singular_cell", phonons_spec, _set("materials", 0, "structure", "cell_A", [[1, 0, 0], [2, 0, 0], [0, 0, 1]]),
     "materials[0].structure.cell_A", "singular"),
    ("bad_species", phonons_spec, _set("materials", 1, "structure", "species", ["Na", "CL"]), "materials[1].structure.species[1]",
     "did you mean 'Cl'?"),
    ("frac_count", phonons_spec, _set("materials", 1, "structure", "frac_coords", [[0, 0, 0]]), "materials[1].structure.frac_coords",
     "1 frac_coords for 2 species"),
    ("bad_supercell", phonons_spec, _set("materials", 0, "supercell_matrix", [2, 0, 2]), "materials[0].supercell_matrix", "determinant"),
    ("duplicate_ids", phonons_spec, _dup_material, "materials[1].id", "duplicate material id 'Si'"),
    ("unknown_backend", phonons_spec, _set("models", 0, "backend", "sevenet"), "models[0].backend", "did you mean 'sevennet'?"),
    ("duplicate_models", phonons_spec, _set("models", 1, "name", "SevenNet-0"), "models[1].name", "duplicate model name"),
    ("backend_option", phonons_spec, _set("models", 0, "kwargs", {"a": 1}), "models[0].kwargs", "not an option of backend 'sevennet'"),
    ("no_structure", phonons_spec, _pop("materials", 0, "structure"), "materials[0]", "'structure'"),
    ("compute_without_calculator", phonons_spec, _pop("reference", "calculator"), "reference.calculator", "needs a reference calculator"),
    ("import_path_module", phonons_spec, _set("reference", "calculator", "import_path", "ase.calculators.emtt:EMT"),
     "reference.calculator.import_path", "cannot be imported"),
    ("missing_reference_file", phonons_spec,
     lambda d: d.update(materials=["does/not/exist.yaml"], reference={"mode": "import"}), "materials[0].reference_file", "does not exist"),
    ("bad_kind", phonons_spec, _set("kind", "phonon"), "kind", "did you mean 'phonons'?"),
    ("bad_name", phonons_spec, _set("name", "my campaign"), "name", "should match pattern"),
    ("store_uri", phonons_spec, _set("store", "uri", "http://db"), "store.uri", "mongodb://"),
    ("lr_fast", finetune_spec, _set("training", "config", "lr", "fast"), "training.config.lr", "got 'fast'"),
    ("lr_typo", finetune_spec, _set("training", "config", "lrr", 1e-3), "training.config.lrr", "unknown key 'lrr'; did you mean 'lr'?"),
    ("bad_mode", finetune_spec, _set("training", "config", "finetune", {"mode": "lorra"}), "training.config.finetune.mode",
     "unknown fine-tuning mode 'lorra'; did you mean 'lora'?"),
    ("lora_rank_0", finetune_spec, _set("training", "config", "finetune", {"mode": "lora", "lora_rank": 0}),
     "training.config.finetune.lora_rank", "greater than or equal to 1"),
    ("frozen_without_groups", finetune_spec, _set("training", "config", "finetune", {"mode": "frozen"}), "training.config.finetune",
     "e.g. finetune: {mode: frozen, freeze: [embedding, layer0]}"),
    ("lora_rank_without_lora", finetune_spec, _set("training", "config", "finetune", {"mode": "delta", "lora_rank": 8}),
     "training.config.finetune", "only applies to mode 'lora'"),
    ("weights_typo", finetune_spec, _set("training", "config", "weights", "hessain", 1.0), "training.config.weights.hessain",
     "did you mean 'hessian'?"),
    ("ema_decay", finetune_spec, _set("training", "config", "ema_decay", 1.0), "training.config.ema_decay", "less than 1"),
    ("untrainable_base", finetune_spec, _set("training", "base_model", {"backend": "chgnet"}), "training.base_model.backend",
     "cannot be fine-tuned"),
    ("held_out", finetune_spec, _held_out, "test_materials[1]", "a held-out material must not be trained on"),
    ("no_train_materials", finetune_spec, _set("train_materials", []), "train_materials", "at least 1 item"),
    ("kappa_without_structures", kappa_spec, _pop("kappa", "structures"), "kappa.structures", "'structures' is required"),
    ("kappa_unknown_material", kappa_spec, _set("kappa", "materials", ["Cux"]), "kappa.materials[0]", "did you mean 'Cu'?"),
    ("kappa_conductivity", kappa_spec, _set("kappa", "settings", "conductivity", "wigne"), "kappa.settings.conductivity",
     "did you mean 'wigner'?"),
    ("kappa_q_mesh", kappa_spec, _set("kappa", "settings", "q_mesh", [19, 0, 19]), "kappa.settings.q_mesh", "3 positive integers"),
    ("kappa_reference_missing", kappa_spec, _set("kappa", "reference", "nowhere.json"), "kappa.reference", "does not exist"),
    ("kappa_negative_temperature", kappa_spec, _set("kappa", "settings", "temperatures_K", [-300]), "kappa.settings.temperatures_K", ">= 0 K"),
]


@pytest.mark.parametrize("case,factory,mutate,field,fragment", CORPUS, ids=[c[0] for c in CORPUS])
def test_error_corpus(files, case, factory, mutate, field, fragment):
    raw = factory()
    mutate(raw)
    path = files / f"{case}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    with pytest.raises(SpecError) as exc:
        load_spec(path)
    msg = str(exc.value)
    assert "\n" not in msg, msg
    assert msg.startswith(f"{path}: {field}: "), msg  # file, then the field path
    assert fragment in msg, msg
    assert "; expected " in msg and "; e.g. " in msg, msg  # what is expected and an example fix
    for noise in ("Traceback", "pydantic", "errors.pydantic.dev", "For further information", "validation error"):
        assert noise not in msg, msg
    assert exc.value.__cause__ is None and (exc.value.__context__ is None or exc.value.__suppress_context__)  # no chained traceback


def test_several_errors_are_joined_on_one_line(files):
    raw = phonons_spec()
    raw["settings"]["phonons"].update(displacement_A=-1, symprec=0)
    with pytest.raises(SpecError) as exc:
        parse_spec(raw, "s.yaml")
    msg = str(exc.value)
    assert msg.startswith("s.yaml: settings.phonons.displacement_A: ") and " | settings.phonons.symprec: " in msg and "\n" not in msg


def test_file_level_errors(tmp_path):
    missing = tmp_path / "nope.yaml"
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("name: x\nmodels: [sevennet\n")
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    a_list = tmp_path / "list.yaml"
    a_list.write_text("- name: x\n")
    for path, fragment in ((missing, "(file): campaign spec not found"), (bad_yaml, "not valid YAML"), (empty, "(top level): the spec is empty"),
                           (a_list, "(top level): got a list, not a mapping")):
        with pytest.raises(SpecError) as exc:
            load_spec(path)
        msg = str(exc.value)
        assert msg.startswith(f"{path}: ") and fragment in msg and "e.g." in msg and "\n" not in msg, msg
    with pytest.raises(SpecError, match=r"bad.yaml: line 3, column 1: not valid YAML"):
        load_spec(bad_yaml)


# ------------------------------------------------------------------------------ schema, plan
def test_json_schema_covers_the_three_kinds_and_accepts_the_shipped_specs():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(json.dumps(spec_json_schema()))  # plain JSON
    assert schema["discriminator"]["propertyName"] == "kind"
    assert set(schema["discriminator"]["mapping"]) == {"phonons", "kappa", "finetune", "dataset", "finetune_per_material", "finetune_global"}
    defs = schema["$defs"]
    assert {"PhononsSpec", "KappaSpec", "FinetuneSpec", "PhononSettings", "RelaxSettings", "KappaSettings" if "KappaSettings" in defs else "KappaCampaignSettings",
            "TrainConfig", "FinetuneMode", "LossWeights"} <= set(defs)
    assert defs["PhononSettings"]["properties"]["displacement_A"]["exclusiveMinimum"] == 0
    assert defs["FinetuneMode"]["properties"]["mode"]["enum"] == ["full", "frozen", "delta", "lora"]
    assert "sevennet" in defs["ModelSpec"]["properties"]["backend"]["enum"]
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for path in WORKFLOWS:
        raw = yaml.safe_load(path.read_text())
        assert not list(validator.iter_errors(raw)), path.name
    bad = phonons_spec()
    bad["settings"]["phonons"]["displacement_A"] = -0.01
    assert list(validator.iter_errors(bad))


def test_plan_quickstart_counts_by_hand(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    raw = phonons_spec()  # 2 materials computed live, 2 models
    p = plan(parse_spec(raw))
    # 1 parameters job; per material the reference: displacements, forces, analysis (3);
    # per material x model: relax, displacements, forces, analysis, compare (5)
    assert p["n_jobs"] == 1 + 2 * 3 + 2 * 2 * 5 == 27 and p["n_jobs_min"] == 27
    assert p["materials"] == ["Si", "NaCl"] and p["models"] == ["SevenNet-0", "CHGNet"]
    assert [u["stages"] for u in p["units"][:3]] == [["parameters"], ["displacements", "forces", "analysis"],
                                                    ["relax", "displacements", "forces", "analysis", "compare"]]
    assert [(u["material"], u["model"]) for u in p["units"][1:4]] == [("Si", "reference"), ("Si", "SevenNet-0"), ("Si", "CHGNet")]
    raw["settings"]["relax_models"] = False  # no model relaxation: 4 stages per model
    raw["reference"]["relax"] = {"fmax_eV_per_A": 0.005}  # the reference cell is relaxed first: +1 per material
    assert plan(parse_spec(raw))["n_jobs"] == 1 + 2 * 4 + 2 * 2 * 4 == 25


def test_plan_finetune_and_kappa(files):
    ft = finetune_spec()
    ft["test_materials"].append({"id": "Si-2", "reference_file": "mp-149.yaml.bz2"})
    p = plan(parse_spec(ft))
    # parameters, training data, train; per test material one reference import + analysis, and the
    # base and the fine-tuned model: relax, displacements, forces, analysis, compare
    assert p["n_jobs"] == 3 + 2 * (2 + 2 * 5) == 27
    assert p["models"] == ["SevenNet-0", "SevenNet-0-PFT"] and p["materials"] == ["mp-149", "Si-2"]

    k = kappa_spec()
    p = plan(parse_spec(k))
    # 1 material x 2 models: relax, displacements, fc2 forces, fc2 check (+ fc3 forces, kappa at run time)
    assert (p["n_jobs"], p["n_jobs_min"]) == (2 * 6, 2 * 4)
    k["kappa"]["settings"]["do_relax"] = False
    p = plan(parse_spec(k))
    assert (p["n_jobs"], p["n_jobs_min"]) == (2 * 5, 2 * 3)


def test_checked_reference_files_are_not_parsed_again(tmp_path, monkeypatch):
    """A reference file that passed the load-time checks is recorded (path, size, mtime) and not
    parsed again by the next load, in any process; a changed file is read and checked again."""
    import sys

    from pftflow.materials import readers

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from spec_files import write_reference

    monkeypatch.setenv("PFTFLOW_CACHE_DIR", str(tmp_path / "cache"))
    ref = write_reference(tmp_path / "Si.yaml")
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump({"name": "checked", "kind": "phonons", "materials": [str(ref)],
                                         "models": [{"backend": "ase", "name": "LJ", "import_path": "ase.calculators.lj:LennardJones"}]}))
    assert load_spec(spec_path).materials[0].species() == ("Si",)
    assert readers.checked_species(ref) == ("Si",)

    readers.clear_cache()
    parsed = []
    real = readers._read_uncached
    monkeypatch.setattr(readers, "_read_uncached", lambda *a, **k: parsed.append(a) or real(*a, **k))
    assert load_spec(spec_path).materials[0].species() == ("Si",)
    assert parsed == []  # not read again

    # the file changes (NaN force): read again, and refused as before
    write_reference(ref, bad_force=float("nan"))
    with pytest.raises(SpecError, match=r"materials\[0\]\.reference_file"):
        load_spec(spec_path)
    assert len(parsed) == 1
