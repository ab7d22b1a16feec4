"""The one phonon maker: [relax] -> displacements -> forces -> analysis, written once.

Like atomate2's ``BasePhononMaker`` and its force-field subclass, the variants differ only in
fields (sub-makers), never in steps:

=====================  ===============================  ======================  =====================
variant                relax_maker                      force_maker             import_file
=====================  ===============================  ======================  =====================
reference, import      None                             None                    the reference file
reference, compute     None or RelaxMaker(DFT calc)     ForceMaker(DFT calc)    None
MLIP                   RelaxMaker(model) or None        ForceMaker(model)       None
=====================  ===============================  ======================  =====================

(The κ maker, :class:`pftflow.flows.kappa.KappaMaker`, reuses the same relax and force makers
with a phono3py displacement set.)  :func:`mlip_phonon_maker` and :func:`reference_phonon_maker`
build the variants.  Every job is tagged with its :class:`~pftflow.identity.ResultId` and a
``pftflow_key`` (hash of what determines its output) by the maker itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jobflow import Flow, Job, Maker

from pftflow.flows import jobs
from pftflow.flows.makers import DisplacementMaker, ForceMaker, HessianMaker, RelaxMaker, _key_part, _tag, set_resources
from pftflow.identity import ResultId, content_key


@dataclass
class PhononMaker(Maker):
    """Harmonic phonons of one material: [import | [relax] -> displacements -> forces] -> analysis.

    ``make(material, result_id, key=..., qpoints_from=None)``: ``material`` has ``id`` and either
    ``reference_file`` (import; with optional ``reference_format``, ``force_sets``, ``born``) or
    ``structure`` (ASE Atoms), ``supercell_matrix`` and ``primitive_matrix``; the latter three may be
    OutputReferences (a model uses the reference's cell and matrices).  ``qpoints_from``: the
    reference's analysis, whose band path and mesh numbers the model is analysed on, and
    ``qpoints_key`` its key.  ``key``: the hash of what determines the flow's input structure; each
    job's key chains it with the job's own settings, so a changed setting re-runs only the jobs at
    and after the step that uses it.
    The flow's output is the :class:`~pftflow.documents.PhononAnalysisDoc`.
    """

    name: str = "phonons"
    model: str = "reference"
    import_file: bool = False
    relax_maker: RelaxMaker | None = None
    displacement_maker: DisplacementMaker = field(default_factory=DisplacementMaker)
    force_maker: ForceMaker | None = None
    hessian_maker: HessianMaker | None = None  # set: force constants from the Hessian instead of displacements + forces
    settings: dict = field(default_factory=dict)  # PhononSettings fields

    def make(self, material: dict, result_id: ResultId, *, key: str, qpoints_from=None, qpoints_key: str | None = None) -> Flow:
        mid = material["id"]
        rid = result_id.with_(material_id=mid, model=self.model)
        job_list: list[Job] = []

        def add(j: Job, stage: str, name: str, *parts: Any) -> Job:
            nonlocal key
            key = content_key(key, stage, *parts)
            j.name = f"{name} {mid} {self.model}"
            job_list.append(_tag(j, rid, stage, key))
            return j

        if self.import_file:
            imp = add(
                jobs.import_reference(material["reference_file"], fmt=material.get("reference_format"), material_id=mid,
                                      force_sets=material.get("force_sets"), born=material.get("born")),
                "reference", "import",
            )
            set_resources(imp, "light")
            ana = jobs.phonon_analysis(mid, self.model, self.settings, reference=imp.output)
        else:
            if self.force_maker is None and self.hessian_maker is None:
                raise ValueError(f"{self.name}: a computed phonon flow needs a force_maker or a hessian_maker (calculator)")
            structure, relax = material["structure"], None
            if self.relax_maker is not None:
                r = add(self.relax_maker.make(structure), "relax", "relax", _key_part(self.relax_maker), self.relax_maker.settings)
                structure, relax = r.output.structure, r.output
        if not self.import_file and self.hessian_maker is not None:
            h = add(
                self.hessian_maker.make(structure, material["supercell_matrix"], material.get("primitive_matrix")),
                "forces", "hessian", _key_part(self.hessian_maker), self.hessian_maker.symprec, self.hessian_maker.symmetrize,
            )
            ana = jobs.phonon_analysis(mid, self.model, self.settings, force_constants=h.output, qpoints_from=qpoints_from, relax=relax)
        elif not self.import_file:
            d = add(
                self.displacement_maker.make(structure, material["supercell_matrix"], material.get("primitive_matrix")),
                "displacements", "displacements", self.displacement_maker.distance_A, self.displacement_maker.symprec,
            )
            f = add(self.force_maker.make(d.output.supercells), "forces", "forces", _key_part(self.force_maker))
            ana = jobs.phonon_analysis(
                mid, self.model, self.settings, displacements=d.output, forces=f.output, qpoints_from=qpoints_from, relax=relax,
            )
        add(set_resources(ana, "light"), "analysis", "analysis", self.settings, qpoints_key)
        return Flow(job_list, output=ana.output, name=f"{self.name} {mid} {self.model}")


def reference_phonon_maker(
    *, mode: str, settings: dict, calculator: dict | None = None, relax_settings: dict | None = None, code: str = "ase", vasp: dict | None = None
) -> PhononMaker:
    """The reference variant: ``mode="import"`` reads files; ``mode="compute"`` runs ``calculator``
    (e.g. GPAW) on the given cell, relaxed first with the same calculator if ``relax_settings``;
    ``code="vasp"`` swaps only the force sub-maker for VASP through atomate2
    (:class:`pftflow.flows.vasp.VaspForceMaker`, ``vasp``: its settings, docs/vasp.md)."""
    if mode == "import":
        return PhononMaker(name="reference phonons", import_file=True, settings=settings)
    if code == "vasp":
        from pftflow.flows.vasp import VaspForceMaker  # local: keeps atomate2 (pymatgen, custodian) off the import path

        if relax_settings is not None:
            raise ValueError("reference code 'vasp' does not relax the cell: give a relaxed cell and leave reference.relax out")
        force_maker: ForceMaker = VaspForceMaker(settings=vasp or {})
    elif calculator is None:
        raise ValueError("reference mode 'compute' needs a calculator")
    else:
        force_maker = ForceMaker(calculator=calculator)
    relax = RelaxMaker(calculator=calculator, settings=relax_settings) if relax_settings is not None else None
    return PhononMaker(
        name="reference phonons",
        relax_maker=relax,
        displacement_maker=DisplacementMaker(distance_A=settings.get("displacement_A", 0.01), symprec=settings.get("symprec", 1e-5)),
        force_maker=force_maker,
        settings=settings,
    )


def mlip_phonon_maker(
    calculator, model: str, *, settings: dict, relax_settings: dict | None, relax: bool = True, key_part: Any = None, force_constants: str = "displacements"
) -> PhononMaker:
    """The MLIP variant: relax with the model (MDR protocol) unless ``relax=False``, then its forces
    on the displacement set, or (``force_constants="hessian"``) its Hessian.
    ``calculator``: a calculator spec or an OutputReference to one (``key_part`` then stands for it)."""
    if force_constants not in ("displacements", "hessian"):
        raise ValueError(f"force_constants: {force_constants!r} is not 'displacements' or 'hessian'")
    hessian = None
    if force_constants == "hessian":
        hessian = HessianMaker(calculator=calculator, symprec=settings.get("symprec", 1e-5), symmetrize=settings.get("symmetrize_fc", True), key_part=key_part)
    return PhononMaker(
        name="mlip phonons",
        model=model,
        hessian_maker=hessian,
        relax_maker=RelaxMaker(calculator=calculator, settings=relax_settings or {}, key_part=key_part) if relax else None,
        displacement_maker=DisplacementMaker(distance_A=settings.get("displacement_A", 0.01), symprec=settings.get("symprec", 1e-5)),
        force_maker=ForceMaker(calculator=calculator, key_part=key_part),
        settings=settings,
    )
