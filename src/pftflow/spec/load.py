"""Loading: YAML file -> dict -> the typed spec of its ``kind``; JSON Schema of all kinds."""

from __future__ import annotations

import copy
import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Union

import yaml
from pydantic import Field, TypeAdapter, ValidationError

from pftflow.spec.errors import SpecError, did_you_mean, format_validation_error, one_line, suggest

if TYPE_CHECKING:
    from pftflow.spec.finetune import FinetuneSpec
    from pftflow.spec.kappa import KappaSpec
    from pftflow.spec.phonons import PhononsSpec

#: campaign kinds and where their spec models live (imported on first use: the finetune spec
#: validates TrainConfig, whose module imports torch, ~4 s that phonons / kappa specs do not need)
SPEC_MODELS = {
    "phonons": ("pftflow.spec.phonons", "PhononsSpec"),
    "kappa": ("pftflow.spec.kappa", "KappaSpec"),
    "finetune": ("pftflow.spec.finetune", "FinetuneSpec"),
    "dataset": ("pftflow.spec.dataset", "DatasetSpec"),
    "finetune_per_material": ("pftflow.spec.finetune_campaigns", "FinetunePerMaterialSpec"),
    "finetune_global": ("pftflow.spec.finetune_global", "FinetuneGlobalSpec"),
}
KINDS = tuple(SPEC_MODELS)
DEFAULT_KIND = "phonons"


def spec_class(kind: str) -> type:
    """The spec model of a campaign kind."""
    module, name = SPEC_MODELS[kind]
    return getattr(importlib.import_module(module), name)


def campaign_spec_type() -> Any:
    """``Annotated[Union[PhononsSpec, KappaSpec, FinetuneSpec], Field(discriminator="kind")]``."""
    return Annotated[Union[tuple(spec_class(k) for k in KINDS)], Field(discriminator="kind")]


_EXAMPLE = "e.g. name: my-campaign, kind: phonons, materials: [...], models: [{backend: sevennet, model: 7net-0}] (see workflows/quickstart.yaml)"


def parse_spec(raw: Any, path: str | os.PathLike | None = None) -> "PhononsSpec | KappaSpec | FinetuneSpec":
    """The typed spec of a campaign dict (``kind`` defaults to phonons); raises :class:`SpecError`.

    ``path`` only names the source in messages and is kept as ``spec.path``; relative paths inside the
    spec are checked from the current directory.
    """
    where = str(path) if path is not None else "<spec>"
    if raw is None:
        raise SpecError(f"{where}: (top level): the spec is empty; expected a mapping with keys name, kind, ...; {_EXAMPLE}")
    if not isinstance(raw, dict):
        raise SpecError(one_line(f"{where}: (top level): got a {type(raw).__name__}, not a mapping; expected keys name, kind, ... at the top level; {_EXAMPLE}"))
    kind = raw.get("kind", DEFAULT_KIND)
    if kind not in SPEC_MODELS:
        raise SpecError(
            one_line(
                f"{where}: kind: unknown campaign kind {kind!r}{did_you_mean(str(kind), KINDS)}; "
                f"expected one of {', '.join(KINDS)}; e.g. kind: {suggest(str(kind), KINDS) or DEFAULT_KIND}"
            )
        )
    cls = spec_class(kind)
    try:
        spec = cls.model_validate({**raw, "kind": kind})
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc, cls, where)) from None
    spec._raw = copy.deepcopy(raw)
    spec._path = Path(path) if path is not None else None
    return spec


def load_spec(path: str | os.PathLike) -> "PhononsSpec | KappaSpec | FinetuneSpec":
    """Read and validate a campaign YAML file; raises :class:`SpecError` (one line) when it is not valid."""
    p = Path(path)
    if not p.is_file():
        what = "is a directory" if p.is_dir() else "not found"
        raise SpecError(
            one_line(
                f"{p}: (file): campaign spec {what} (current directory {os.getcwd()}); "
                "expected a YAML campaign spec file; e.g. pftflow validate workflows/quickstart.yaml"
            )
        )
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise SpecError(f"{p}: (file): not a text file; expected a YAML campaign spec; {_EXAMPLE}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "(yaml)"
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(
            one_line(
                f"{p}: {where}: not valid YAML ({problem}); expected YAML mappings (key: value), "
                "lists as [a, b] or '- a' lines, consistent indentation; e.g. models: [{backend: sevennet, model: 7net-0}]"
            )
        ) from None
    return parse_spec(raw, p)


def spec_json_schema() -> dict:
    """JSON Schema (draft 2020-12) of a campaign spec, all kinds (for editors: yaml-language-server)."""
    schema = TypeAdapter(campaign_spec_type()).json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "pftflow campaign spec",
        "description": "kind: phonons | kappa | finetune | dataset (docs/campaign-spec.md, docs/kappa.md, docs/training.md, docs/dataset.md); "
        "kind may be left out for phonons",
        **schema,
    }
