"""The ``phonons`` campaign kind: the harmonic benchmark of models against a reference
(:func:`pftflow.flows.benchmark.benchmark_flow`); results and band plots are the benchmark's."""

from __future__ import annotations

from jobflow import Flow

from pftflow.flows import jobs
from pftflow.flows.benchmark import benchmark_flow, phonons_band_plots, phonons_results
from pftflow.flows.reuse import campaign_kind, recorded_spec
from pftflow.identity import ResultId


def build_phonons(spec, store) -> tuple[Flow, dict]:
    """Flow of a harmonic benchmark campaign (registered with job-level reuse: :func:`~pftflow.flows.reuse.with_job_reuse`)."""
    params = jobs.record_parameters(recorded_spec(spec))
    params.metadata = ResultId(campaign=spec.name, kind="phonons", stage="parameters").metadata()
    models = [(m.calculator_spec(), m.name, m.calculator_spec(), getattr(m, "force_constants", "displacements")) for m in spec.models]
    parts, reused = benchmark_flow(spec.name, "phonons", spec.reference, spec.materials, models, spec.settings, store)
    return Flow([params, *parts], name=f"campaign {spec.name}"), reused


CAMPAIGN_KIND = campaign_kind("phonons", build_phonons, phonons_results, phonons_band_plots)
