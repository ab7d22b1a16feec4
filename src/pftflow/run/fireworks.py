"""Running a campaign on FireWorks: the same flow as a local run, converted with jobflow's
``flow_to_workflow`` and added to a LaunchPad."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pftflow.flows.campaigns import KINDS
from pftflow.run.local import open_store


def submit_campaign(spec, *, launch: bool = False, max_launches: int = 0) -> dict[str, Any]:
    """Add the campaign's flow to a FireWorks LaunchPad (and optionally run it with rapidfire).

    LaunchPad: ``fireworks: {launchpad_file: my_launchpad.yaml}`` in the spec (a real MongoDB), else
    FireWorks' built-in mongomock persistence in ``<store path>/fireworks_launchpad.json`` (no
    server).  Stages already in the store are not resubmitted.  Jobs tagged with a ``_fworker``
    (the fine-tuning job's ``gpu``) are only pulled by a FireWorker of that name.
    """
    fw_cfg = spec.raw.get("fireworks") or {}
    lp_file = fw_cfg.get("launchpad_file")
    new_launchpad = False
    if not lp_file:
        Path(spec.store_dir).mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("MONGOMOCK_SERVERSTORE_FILE", str((Path(spec.store_dir) / "fireworks_launchpad.json").resolve()))
        lp_json = Path(os.environ["MONGOMOCK_SERVERSTORE_FILE"])
        new_launchpad = not lp_json.exists()
        if new_launchpad:  # mongomock-persistence needs an existing (empty) file
            lp_json.write_text("{}")
    from fireworks import FWorker, LaunchPad
    from fireworks.core.rocket_launcher import rapidfire
    from jobflow.managers.fireworks import flow_to_workflow

    lp = LaunchPad.from_file(lp_file) if lp_file else LaunchPad()
    if not lp_file and new_launchpad:
        lp.reset("", require_password=False)  # initialise the fresh embedded LaunchPad
    store = open_store(spec)
    flow, reused = KINDS[spec.kind].build(spec, store)
    wf = flow_to_workflow(flow, store=store)
    lp.add_wf(wf)
    out: dict[str, Any] = {"campaign": spec.name, "fireworks_added": len(wf.fws), "reused": reused, "launchpad": lp_file or os.environ["MONGOMOCK_SERVERSTORE_FILE"]}
    if launch:
        launch_dir = Path(spec.store_dir) / "fw_launches"
        launch_dir.mkdir(parents=True, exist_ok=True)
        rapidfire(lp, FWorker(name=fw_cfg.get("fworker")), nlaunches=max_launches, m_dir=str(launch_dir), strm_lvl="WARNING")
        states = lp.get_wf_summary_dict(wf.fws[0].fw_id)["states"]
        out["states"] = {k: sum(1 for v in states.values() if v == k) for k in set(states.values())}
    store.close()
    return out
