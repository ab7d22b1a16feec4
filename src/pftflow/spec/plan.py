"""What a run of a spec would create: materials x models x stages and the number of jobs.

A pure function of the spec (no store: stages a re-run would reuse are counted as well).  The stages
mirror the campaign builders (pftflow.flows): keep the two in step.
"""

from __future__ import annotations

from pftflow.identity import REFERENCE_MODEL
from pftflow.spec.common import CampaignBase
from pftflow.spec.dataset import dataset_plan
from pftflow.spec.phonons import ComputeMaterial
from pftflow.spec.plan_units import MODEL_STAGES, _model_stages, _summary, _unit  # noqa: F401  (MODEL_STAGES: public here too)

#: κ stages of one model on one material; the last two are added at run time when the fc2 check passes
KAPPA_STAGES = ("relax", "displacements", "fc2_forces", "fc2_check", "fc3_forces", "kappa")
KAPPA_DYNAMIC = ("fc3_forces", "kappa")


def _reference_stages(material, spec) -> list[str]:
    if isinstance(material, ComputeMaterial):
        return (["relax"] if spec.reference.relax is not None else []) + ["displacements", "forces", "analysis"]
    return ["import", "analysis"]


def plan(spec: CampaignBase) -> dict:
    """Materials, models, and per (material, model) unit the stages and job count a fresh run creates.

    Returns ``{campaign, kind, materials, models, units: [{material, model, stages, n_jobs, n_jobs_min}],
    n_units, n_jobs, n_jobs_min}``.  ``n_jobs_min`` differs from ``n_jobs`` only for κ, whose fc3 forces
    and κ jobs are added at run time for materials that pass the fc2 check (``n_jobs``: all pass;
    ``n_jobs_min``: all stop at the check).  ``model`` is ``"reference"`` for reference stages and None
    for campaign-wide jobs.
    """
    kind = getattr(spec, "kind", None) if isinstance(spec, CampaignBase) else None
    if kind == "phonons":
        units = [_unit(None, None, ["parameters"])]
        model_stages = _model_stages(spec.settings.relax_models)
        for m in spec.materials:
            units.append(_unit(m.id, REFERENCE_MODEL, _reference_stages(m, spec)))
            units += [_unit(m.id, model.name, _model_stages(spec.settings.relax_models, model.force_constants)) for model in spec.models]
        return _summary(spec, spec.material_ids, spec.model_names, units)

    if kind == "kappa":
        stages = [s for s in KAPPA_STAGES if spec.kappa.settings.do_relax or s != "relax"]
        units = [_unit(mid, model.name, list(stages), KAPPA_DYNAMIC) for model in spec.models for mid in spec.material_ids]
        return _summary(spec, spec.material_ids, spec.model_names, units)

    if kind == "finetune":
        tr = spec.training
        units = [_unit(None, None, ["parameters"]), _unit(None, None, ["training_data"]), _unit(None, tr.export_name, ["train"])]
        model_stages = _model_stages(spec.settings.relax_models)
        for m in spec.test_materials:  # one reference import per material, both models compared to it
            units.append(_unit(m.id, REFERENCE_MODEL, ["import", "analysis"]))
            units += [_unit(m.id, name, list(model_stages)) for name in (tr.base_model.name, tr.export_name)]
        return _summary(spec, spec.material_ids, spec.model_names, units)

    if kind == "dataset":
        return dataset_plan(spec)

    if kind in ("finetune_per_material", "finetune_global"):
        from pftflow.spec.finetune_campaigns import campaign_plan  # local: it imports torch (TrainConfig)

        return campaign_plan(spec)

    raise TypeError(f"plan() needs a campaign spec from pftflow.spec.load_spec / parse_spec, got {type(spec).__name__}")
