"""The registry of campaign kinds: one module per kind, one line per kind here.

A kind module exposes ``CAMPAIGN_KIND`` (:func:`pftflow.flows.reuse.campaign_kind`: ``build(spec, store) ->
(Flow, reused)`` ending with job-level reuse, ``results(spec, store) -> dict``, optional ``plots``).  The
runner (:mod:`pftflow.run`), the results (:mod:`pftflow.results`), the report and the CLI look a kind up in
:data:`KINDS` and nowhere else.  This module imports the kind modules only; the plumbing they share
(:mod:`pftflow.flows.reuse`, :mod:`pftflow.flows.benchmark`) imports no kind.
"""

from __future__ import annotations

from pftflow.flows import dataset, finetune_global, finetune_per_material, kappa_campaign, phonons_campaign, training

#: every kind by its spec ``kind``
KINDS = {
    "phonons": phonons_campaign.CAMPAIGN_KIND,
    "kappa": kappa_campaign.CAMPAIGN_KIND,
    "finetune": training.CAMPAIGN_KIND,
    "dataset": dataset.CAMPAIGN_KIND,
    "finetune_per_material": finetune_per_material.CAMPAIGN_KIND,
    "finetune_global": finetune_global.CAMPAIGN_KIND,
}
