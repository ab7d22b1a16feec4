"""Spec errors as one line: ``<file>: <field.path>: <what is wrong>; expected <what>; e.g. <fix>``.

pydantic reports *where* (a location tuple) and *what* (an error type); this module turns that into
a message a user can act on: the dotted field path of the YAML (``materials[2].structure.cell_A``),
the field's description (with units) as the expectation, and an example fix taken from the field's
``examples`` or default.  Unknown keys get the nearest valid key (``difflib``).  pydantic offers no
such formatter, hence this one.

Validators that know more than pydantic raise :class:`FieldIssue` (a ``ValueError``): pydantic keeps
the exception in the error's ``ctx["error"]``, and its ``loc``, ``expected`` and ``example`` refine
the message.
"""

from __future__ import annotations

import collections.abc
import difflib
import inspect
import re
import types
import typing
from typing import Any, Iterable

import yaml
from pydantic import BaseModel, Tag, ValidationError
from pydantic_core import PydanticUndefined

from pftflow.issues import Issue

#: the most errors one message lists (the rest are counted)
MAX_ERRORS = 3


class SpecError(ValueError):
    """An invalid campaign spec; the message is one line naming the file, the field and the fix."""


class FieldIssue(Issue):
    """A validation problem with its own location (relative to the model that raises it), the
    expected value and an example fix."""


def suggest(word: str, options: Iterable[str]) -> str | None:
    """The option closest to ``word`` (case-insensitive), or None when none is close."""
    options = [str(o) for o in options]
    lower = {o.lower(): o for o in options}
    w = str(word).lower()
    if w in lower:
        return lower[w]
    if len(w) >= 3:  # a key without its unit suffix (fmax -> fmax_eV_per_A) or with a stray one
        pre = sorted((o for o in lower if o.startswith(w) or w.startswith(o)), key=len)
        if pre:
            return lower[pre[0]]
    hit = difflib.get_close_matches(w, list(lower), n=1, cutoff=0.6)
    return lower[hit[0]] if hit else None


def did_you_mean(word: str, options: Iterable[str]) -> str:
    s = suggest(word, options)
    return f"; did you mean '{s}'?" if s is not None else ""


def fmt_value(v: Any, limit: int = 80) -> str:
    """A value in YAML flow style, on one line (as the user would write it in the spec)."""
    if isinstance(v, BaseModel):
        v = v.model_dump(exclude_unset=True)
    try:
        text = yaml.safe_dump(_plain(v), default_flow_style=True, width=10_000, sort_keys=False, allow_unicode=True)
        text = text.strip()
        if text.endswith("\n..."):
            text = text[: -len("\n...")]
        if text.endswith("..."):
            text = text[:-3].strip()
    except yaml.YAMLError:
        text = repr(v)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _plain(v: Any) -> Any:
    if isinstance(v, BaseModel):
        return v.model_dump(exclude_unset=True)
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if hasattr(v, "tolist"):
        return v.tolist()
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)


def _got(v: Any) -> str:
    if isinstance(v, str):
        return f"got '{v if len(v) <= 60 else v[:57] + '...'}'" if v else "got an empty string"
    if v is None:
        return "got null"
    if isinstance(v, dict):
        return f"got a mapping {fmt_value(v, 60)}"
    return f"got {fmt_value(v, 60)}"


# ------------------------------------------------------------------------------ schema walking
def _members(t: Any) -> list[tuple[Any, str | None]]:
    """The concrete types an annotation stands for, with their discriminator tag (if any)."""
    origin = typing.get_origin(t)
    if origin is typing.Annotated:
        args = typing.get_args(t)
        tag = next((m.tag for m in args[1:] if isinstance(m, Tag)), None)
        inner = _members(args[0])
        return [(x, tag or xt) for x, xt in inner]
    if origin in (typing.Union, types.UnionType):
        out = []
        for a in typing.get_args(t):
            if a is not type(None):
                out += _members(a)
        return out
    return [(t, None)]


def _models(cands: list[tuple[Any, str | None]]) -> list[type[BaseModel]]:
    return [c for c, _ in cands if inspect.isclass(c) and issubclass(c, BaseModel)]


def _item_type(cands) -> Any:
    for c, _ in cands:
        origin = typing.get_origin(c)
        if origin in (list, tuple, set, frozenset, collections.abc.Sequence, typing.Sequence):
            args = typing.get_args(c)
            return args[0] if args else Any
    return None


def walk(root: type[BaseModel], loc: tuple) -> dict:
    """Follow a pydantic error location through the model tree.

    Returns ``{"path": display path, "owner": model class of the last field, "field": its name,
    "info": its FieldInfo, "type": annotation at the end (None if lost), "container": the model at
    the end (for unknown keys)}``.  Union member labels and discriminator tags are left out of the
    path.
    """
    t: Any = root
    shown: list[str | int] = []
    owner = field = info = None
    for el in loc:
        if t is None:
            shown.append(el)
            continue
        cands = _members(t)
        if isinstance(el, int):
            shown.append(el)
            t = _item_type(cands)
            continue
        model = next((m for m in _models(cands) if el in m.model_fields), None)
        if model is not None:
            owner, field, info = model, el, model.model_fields[el]
            shown.append(el)
            t = info.annotation
            continue
        tagged = [c for c, tag in cands if tag == el]
        if tagged:  # discriminator tag: not part of the YAML path
            t = tagged[0]
            continue
        dict_type = next((c for c, _ in cands if typing.get_origin(c) in (dict, collections.abc.Mapping)), None)
        if dict_type is not None:
            shown.append(el)
            args = typing.get_args(dict_type)
            t = args[1] if len(args) == 2 else Any
            continue
        if len(cands) > 1 or not _models(cands):  # union member label (e.g. 'list[int]'): not a YAML key
            if any(el == _label(c) for c, _ in cands):
                t = next(c for c, _ in cands if el == _label(c))
                continue
        shown.append(el)
        t = None
    models = _models(_members(t)) if t is not None else []
    return {"path": format_path(shown), "owner": owner, "field": field, "info": info, "type": t, "container": models[0] if models else None}


def _label(t: Any) -> str:
    """pydantic's label of a union member in error locations (``int``, ``list[int]``, model name)."""
    if inspect.isclass(t) and issubclass(t, BaseModel):
        return t.__name__
    if inspect.isclass(t) and typing.get_origin(t) is None:
        return t.__name__
    text = repr(t).replace("typing.", "")
    return text


def format_path(loc: Iterable[str | int]) -> str:
    out = ""
    for el in loc:
        if isinstance(el, int):
            out += f"[{el}]"
        else:
            out += ("." if out else "") + str(el)
    return out


def field_example(owner: type[BaseModel] | None, field: str | None, info) -> str | None:
    """``key: value`` from the field's examples, else its (non-null) default."""
    if info is None or field is None:
        return None
    value = PydanticUndefined
    if info.examples:
        value = info.examples[0]
    elif info.default is not PydanticUndefined and info.default is not None:
        value = info.default
    elif info.default_factory is not None:
        try:
            value = info.default_factory()
        except TypeError:
            value = PydanticUndefined
    if value is PydanticUndefined or value is None or value == [] or value == {}:
        return None
    return f"{field}: {fmt_value(value)}"


def _options_from_expected(text: str) -> list[str]:
    return re.findall(r"'([^']*)'", text or "")


def _clean_msg(msg: str) -> str:
    msg = re.sub(r"^(Value error|Assertion failed), ", "", msg)
    msg = msg.replace("Input should be", "should be").replace("Input is", "is")
    return msg[:1].lower() + msg[1:] if msg and not msg[:2].isupper() else msg


def describe_error(err: dict, root: type[BaseModel]) -> str:
    """``<path>: <what>; expected <what>; e.g. <fix>`` for one pydantic error."""
    loc = tuple(err.get("loc", ()))
    typ = err.get("type", "")
    ctx = err.get("ctx") or {}
    inp = err.get("input")
    issue = ctx.get("error") if isinstance(ctx.get("error"), FieldIssue) else None
    cause = ctx.get("error")  # any exception may carry ``expected`` / ``example`` attributes
    if issue is not None:
        loc = loc + issue.loc
    w = walk(root, loc)
    path = w["path"] or "(top level)"
    info, field = w["info"], w["field"]
    # the field the problem is about: for list items / nested values, the nearest named field
    expected = (info.description if info is not None else None)
    example = field_example(w["owner"], field, info)
    key = loc[-1] if loc else None

    if issue is not None:
        what = issue.message
        expected = issue.expected or expected
        example = issue.example or example
    elif typ == "extra_forbidden":
        parent = walk(root, loc[:-1])
        container = parent["container"]
        valid = list(container.model_fields) if container is not None else []
        hint = suggest(str(key), valid)
        what = f"unknown key '{key}'" + (f"; did you mean '{hint}'?" if hint else "")
        expected = "one of the keys " + ", ".join(valid) if valid else "no such key"
        if hint:
            example = f"{hint}: {fmt_value(inp)}"
        else:
            example = f"remove '{key}'" + (f" (keys of {parent['path']}: {', '.join(valid)})" if parent["path"] and valid else "")
            expected = "one of the keys " + ", ".join(valid) if valid else expected
    elif typ == "missing":
        what = f"'{key}' is required"
    elif typ == "literal_error":
        options = _options_from_expected(ctx.get("expected", ""))
        what = f"{_got(inp)}" + (did_you_mean(str(inp), options) if isinstance(inp, str) else "")
        expected = "one of " + ", ".join(options) + (f" ({info.description})" if info is not None and info.description else "")
        hint = suggest(str(inp), options) if isinstance(inp, str) else None
        if field is not None and (hint or options):
            example = f"{field}: {hint or options[0]}"
    elif typ in ("model_type", "model_attributes_type", "dict_type"):
        what = f"should be a mapping, {_got(inp)}"
    else:
        what = _clean_msg(err.get("msg", typ))
        if "got " not in what and not isinstance(inp, dict):  # a whole section: the path says which
            what += f", {_got(inp)}"
        expected = getattr(cause, "expected", None) or expected
        example = getattr(cause, "example", None) or example
    if not expected:
        expected = "a valid value (see docs/campaign-spec.md)"
    if not example:
        example = "see the examples in workflows/*.yaml"
    return f"{path}: {what}; expected {expected}; e.g. {example}"


def format_validation_error(exc: ValidationError, root: type[BaseModel], where: str) -> str:
    """One line for a pydantic ``ValidationError`` of ``root``: the first errors joined by `` | ``."""
    seen: dict[str, str] = {}
    for err in exc.errors(include_url=False):
        text = describe_error(err, root)
        path = text.split(":", 1)[0]
        seen.setdefault(path, text)  # one message per field (union members repeat the same field)
    parts = list(seen.values())
    more = len(parts) - MAX_ERRORS
    line = " | ".join(parts[:MAX_ERRORS]) + (f" | (+{more} more)" if more > 0 else "")
    return one_line(f"{where}: {line}")


def one_line(text: str) -> str:
    return " ".join(str(text).split())
