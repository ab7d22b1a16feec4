"""One identity: material ids from file names, model names from calculator specs, content keys."""

from __future__ import annotations

import pytest

from pftflow.identity import ResultId, content_key, material_id_from_path, model_name


@pytest.mark.parametrize(
    "path, expected",
    [
        ("../shared/data/mdr/mp-149.yaml.bz2", "mp-149"),
        ("../shared/data/phonopy/phonopy_params_NaCl.yaml.xz", "NaCl"),
        ("../shared/data/phonopy/phonopy_disp_SnO2.yaml", "SnO2"),
        ("data/FORCE_SETS_SnO2", "SnO2"),
        ("../shared/data/atomate2_phonopy/mp-2534/phonopy.yaml.xz", "mp-2534"),  # generic name: the folder
        ("../shared/data/chalcogenides/mp-1000.phonopy.yaml.xz", "mp-1000"),
        ("runs/GaAs/phonopy_params.yaml", "GaAs"),
    ],
)
def test_material_id_from_path(path, expected):
    assert material_id_from_path(path) == expected


def test_model_name_rules():
    assert model_name({"backend": "sevennet", "model": "7net-0", "name": "SevenNet-0"}) == "SevenNet-0"
    assert model_name({"backend": "sevennet", "model": "7net-0"}) == "sevennet:7net-0"
    assert model_name({"backend": "chgnet"}) == "chgnet"
    assert model_name({"backend": "mace", "model": "/models/my/small.model"}) == "mace:small.model"


def test_result_id_metadata_and_query():
    rid = ResultId(campaign="c", kind="phonons", material_id="Si", model="SevenNet-0", stage="forces")
    assert rid.metadata("abc") == {"campaign": "c", "kind": "phonons", "material_id": "Si", "model": "SevenNet-0", "stage": "forces", "pftflow_key": "abc"}
    assert rid.with_(stage="compare").query() == {
        "metadata.campaign": "c", "metadata.kind": "phonons", "metadata.material_id": "Si", "metadata.model": "SevenNet-0", "metadata.stage": "compare"}
    with pytest.raises(Exception):
        ResultId(campaign="c", kind="phonons", stage="x", colour="red")  # unknown field


def test_content_key_is_order_independent_for_mappings_and_sensitive_to_values():
    assert content_key({"a": 1, "b": 2}) == content_key({"b": 2, "a": 1})
    assert content_key({"a": 1}) != content_key({"a": 1.0000001})
    assert content_key("x", [1, 2]) != content_key("x", [2, 1])
    assert len(content_key("x")) == 24
