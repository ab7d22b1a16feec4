"""Running campaigns: building is separate from running (the kinds of :data:`pftflow.flows.campaigns.KINDS` build).

* :mod:`pftflow.run.local` — ``run_campaign``: jobflow ``run_locally``, progress bar, summary;
* :mod:`pftflow.run.fireworks` — ``submit_campaign``: the same flow on a FireWorks LaunchPad.
"""

from pftflow.run.local import LAST_CAMPAIGN_FILE, JobFailure, RunSummary, open_store, run_campaign


def __getattr__(name: str):
    """``submit_campaign`` imported when used: FireWorks is an optional extra (``pip install pftflow[fireworks]``)."""
    if name == "submit_campaign":
        from pftflow.run.fireworks import submit_campaign  # local: FireWorks is an optional extra

        return submit_campaign
    raise AttributeError(f"module 'pftflow.run' has no attribute {name!r}")

__all__ = ["LAST_CAMPAIGN_FILE", "JobFailure", "RunSummary", "open_store", "run_campaign", "submit_campaign"]
