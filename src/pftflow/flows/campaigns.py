"""The registry of campaign kinds: one module per kind, one line per kind here.

A kind module exposes ``CAMPAIGN_KIND`` (:func:`pftflow.flows.reuse.campaign_kind`: ``build(spec, store) ->
(Flow, reused)`` ending with job-level reuse, ``results(spec, store) -> dict``, optional ``plots``).  The
runner (:mod:`pftflow.run`), the results (:mod:`pftflow.results`), the report and the CLI look a kind up in
:data:`KINDS` and nowhere else.  A kind's module is imported when the kind is first used, so that the runner,
the results and the CLI start without phonopy and torch; the plumbing the kinds share
(:mod:`pftflow.flows.reuse`, :mod:`pftflow.flows.benchmark`) imports no kind.
"""

from __future__ import annotations

import importlib


class DeferredKind:
    """The ``CAMPAIGN_KIND`` of the module ``module``, imported at the first use of ``build``, ``results``
    or ``plots`` (tests/test_architecture.py counts the string as an import of that module)."""

    def __init__(self, module: str):
        self.module = module

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(importlib.import_module(self.module).CAMPAIGN_KIND, name)

    def __repr__(self) -> str:
        return f"DeferredKind({self.module!r})"


#: every kind by its spec ``kind``
KINDS = {
    "phonons": DeferredKind("pftflow.flows.phonons_campaign"),
    "kappa": DeferredKind("pftflow.flows.kappa_campaign"),
    "finetune": DeferredKind("pftflow.flows.training"),
    "dataset": DeferredKind("pftflow.flows.dataset"),
    "finetune_per_material": DeferredKind("pftflow.flows.finetune_per_material"),
    "finetune_global": DeferredKind("pftflow.flows.finetune_global"),
}
