"""The one exception shape of validation problems that know where they are: message, key path, expected
value and an example fix. :class:`pftflow.spec.errors.FieldIssue` (spec fields) and
:class:`pftflow.materials.checks.MaterialError` (physics of a material entry) derive from it; this
module imports nothing of pftflow, so both can (spec imports materials at import time)."""

from __future__ import annotations

from typing import Iterable


class Issue(ValueError):
    """A validation problem with its own location (``loc``, a key path), the expected value and an example fix."""

    def __init__(self, message: str, *, loc: Iterable[str | int] = (), expected: str | None = None, example: str | None = None):
        super().__init__(message)
        self.message = message
        self.loc = tuple(loc)
        self.expected = expected
        self.example = example
