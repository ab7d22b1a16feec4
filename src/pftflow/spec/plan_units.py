"""The pieces every campaign plan is built from (:func:`pftflow.spec.plan.plan`): a unit of stages and the
summary over units; below the per-kind plans (``spec.dataset``, ``spec.finetune_campaigns``) and ``spec.plan``."""

from __future__ import annotations

#: stages of one model on one material in the harmonic benchmark (relax only with relax_models)
MODEL_STAGES = ("relax", "displacements", "forces", "analysis", "compare")


def _unit(material: str | None, model: str | None, stages: list[str], dynamic: tuple[str, ...] = ()) -> dict:
    n = len(stages)
    return {"material": material, "model": model, "stages": stages, "n_jobs": n, "n_jobs_min": n - sum(s in dynamic for s in stages)}


def _model_stages(relax_models: bool, force_constants: str = "displacements") -> list[str]:
    stages = [s for s in MODEL_STAGES if relax_models or s != "relax"]
    if force_constants == "hessian":  # one Hessian job replaces displacements + forces
        stages = [("hessian" if s == "forces" else s) for s in stages if s != "displacements"]
    return stages


def _summary(spec, materials: list[str], models: list[str], units: list[dict]) -> dict:
    return {
        "campaign": spec.name,
        "kind": spec.kind,
        "materials": materials,
        "models": models,
        "units": units,
        "n_units": len(units),
        "n_jobs": sum(u["n_jobs"] for u in units),
        "n_jobs_min": sum(u["n_jobs_min"] for u in units),
    }
