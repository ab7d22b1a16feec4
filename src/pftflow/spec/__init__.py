"""Typed campaign specs (pydantic v2): one model per campaign kind, discriminated on ``kind``.

* :func:`load_spec` (YAML file) / :func:`parse_spec` (dict) -> :class:`PhononsSpec` | :class:`KappaSpec` |
  :class:`FinetuneSpec`; every problem is a :class:`SpecError` whose message is one line:
  ``<file>: <field.path>: <what is wrong>; expected <what>; e.g. <fix>`` (several problems joined by `` | ``).
* :func:`spec_json_schema` - JSON Schema of all kinds, for editors.
* :func:`plan` - materials x models x stages and the number of jobs a run creates.

Nested settings are the science modules' own pydantic models (:class:`~pftflow.phonons.harmonic.PhononSettings`,
:class:`~pftflow.phonons.relax.RelaxSettings`, :class:`~pftflow.kappa.conductivity.KappaSettings`,
:class:`~pftflow.training.trainer.TrainConfig` with :data:`FinetuneMode` and ``LossWeights``), so a bad value
fails when the spec is loaded, not inside a job.  Materials are checked at load too
(:mod:`pftflow.materials.checks`): reference files are read (readable, decompressible, finite forces;
the parse is cached for the run's import job), structures have known elements, non-singular cells,
no atoms closer than 0.5 Å, integer supercell matrices of det >= 1 and <= 2000 atoms, and every model
supports the elements of every material (``ForceCalculator.supported_species()``).  Every spec keeps ``.raw`` (the dict as read), ``.path``
(source file) and ``store_dir``.  Relative paths in a spec are checked from the current directory.
"""

from pftflow.spec.common import CampaignBase, FireworksSpec, ImportMaterial, ModelSpec, StoreSpec
from pftflow.spec.errors import FieldIssue, SpecError
from pftflow.spec.kappa import KappaBlock, KappaCampaignSettings, KappaSpec
from pftflow.spec.load import KINDS, campaign_spec_type, load_spec, parse_spec, spec_class, spec_json_schema
from pftflow.spec.phonons import BenchmarkSettings, ComputeMaterial, PhononsSpec, ReferenceSpec, StructureSpec
from pftflow.spec.plan import plan

#: imported on first access (pftflow.spec.finetune imports torch through TrainConfig)
_FINETUNE_NAMES = ("FinetuneSpec", "TrainingSpec", "TrainingDataSpec", "ExtxyzSource", "TrainableModelSpec", "FinetuneMode")


def __getattr__(name: str):
    if name in _FINETUNE_NAMES:
        from pftflow.spec import finetune  # local: pftflow.spec.finetune imports torch (TrainConfig)

        return getattr(finetune, name)
    if name == "CampaignSpec":
        return campaign_spec_type()
    raise AttributeError(f"module 'pftflow.spec' has no attribute {name!r}")


__all__ = [
    "load_spec",
    "parse_spec",
    "spec_json_schema",
    "plan",
    "SpecError",
    "FieldIssue",
    "CampaignSpec",
    "KINDS",
    "spec_class",
    "campaign_spec_type",
    "CampaignBase",
    "PhononsSpec",
    "KappaSpec",
    "FinetuneSpec",
    "StoreSpec",
    "FireworksSpec",
    "ModelSpec",
    "TrainableModelSpec",
    "ImportMaterial",
    "ComputeMaterial",
    "StructureSpec",
    "ReferenceSpec",
    "BenchmarkSettings",
    "KappaBlock",
    "KappaCampaignSettings",
    "TrainingSpec",
    "TrainingDataSpec",
    "ExtxyzSource",
    "FinetuneMode",
]
