"""Running campaigns: building is separate from running (:mod:`pftflow.flows.campaigns` builds).

* :mod:`pftflow.run.local` — ``run_campaign``: jobflow ``run_locally``, progress bar, summary;
* :mod:`pftflow.run.fireworks` — ``submit_campaign``: the same flow on a FireWorks LaunchPad.
"""

from pftflow.run.fireworks import submit_campaign
from pftflow.run.local import LAST_CAMPAIGN_FILE, JobFailure, RunSummary, open_store, run_campaign

__all__ = ["LAST_CAMPAIGN_FILE", "JobFailure", "RunSummary", "open_store", "run_campaign", "submit_campaign"]
