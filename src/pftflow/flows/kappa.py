"""κ benchmark flows (k_SRME protocol): relax -> fc2/fc3 displacements -> fc2 forces (one batch job)
-> fc2 + imaginary-mode / symmetry check -> [fc3 forces (one batch job) -> Wigner RTA κ + metrics].

:class:`KappaMaker` is built from the same sub-makers as :class:`~pftflow.flows.phonons.PhononMaker`
(:class:`~pftflow.flows.phonons.RelaxMaker` with the k_SRME settings,
:class:`~pftflow.flows.phonons.ForceMaker`) plus :class:`Phono3pyDisplacementMaker` (fc2 + fc3 sets).
The check job stops the material before fc3 when the relaxation failed or broke the space group,
or when fc2 has imaginary modes: it then returns the final result itself (SRD = −2,
SRE = SRME = 2).  Otherwise it replaces itself (jobflow ``Response(replace=...)``) with the fc3
forces job and the conductivity job, whose output becomes the material's output.  Either way the
output of ``KappaMaker.make(...)`` is a :class:`~pftflow.kappa.documents.KappaResultDoc`.

Every job returns a typed document (``output_schema``) whose arrays travel as
:class:`~pftflow.serialization.ArrayBlob` to the additional ``data`` store (``data=[ArrayBlob]``),
and is tagged with its :class:`~pftflow.identity.ResultId` (``kind: kappa``) and a ``pftflow_key``
chained through the flow as :class:`~pftflow.flows.phonons.PhononMaker` does.
Campaign spec format: ``docs/kappa.md``.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from jobflow import Flow, Job, Maker, OutputReference, Response, job

from pftflow.calculators.base import ForceResults
from pftflow.documents import RelaxDoc, StructureSet
from pftflow.flows import jobs
from pftflow.flows.makers import ForceMaker, RelaxMaker, set_resources
from pftflow.flows.reuse import stored_jobs
from pftflow.identity import ResultId, content_key, model_name
from pftflow.kappa.conductivity import (
    KappaSettings,
    has_imaginary_modes,
    mesh_frequencies,
    produce_fc2,
    produce_fc3,
    run_conductivity,
)
from pftflow.kappa.documents import KappaResultDoc, Phono3pyDisplacementDoc
from pftflow.kappa.metrics import failed_metrics, material_metrics, srd, sre
from pftflow.materials.kappa import KappaMaterial, KappaReference
from pftflow.phonons.relax import RelaxSettings
from pftflow.provenance import package_versions
from pftflow.sampling import fc2_supercells, fc3_displacements, fc3_supercells
from pftflow.serialization import ArrayBlob, atoms_to_dict, dict_to_atoms

#: what goes to the additional store: every array blob, wherever it sits in a document
BLOBS = [ArrayBlob]


def ksrme_relax_settings(**kw) -> dict:
    """k_SRME relaxation settings as a dict for :func:`pftflow.flows.jobs.relax`."""
    return RelaxSettings.ksrme(**kw).as_dict()


def _phono3py_for(disp: Phono3pyDisplacementDoc):
    """Phono3py for the displaced structure with the stored displacement datasets restored."""
    ph3 = fc3_displacements(disp.unitcell, disp.fc2_supercell, disp.fc3_supercell, disp.primitive_matrix, distance_A=None, symprec=disp.symprec)
    # copies: phono3py writes the forces into its datasets, the document stays as stored
    ph3.phonon_dataset = copy.deepcopy(disp.fc2_dataset)
    ph3.dataset = copy.deepcopy(disp.fc3_dataset)
    return ph3


def _compact(ph3, fc: np.ndarray) -> np.ndarray:
    """Compact force constants (first index over primitive atoms) from full or compact ones."""
    if fc.shape[0] == fc.shape[1]:
        p2s = ph3.phonon_primitive.p2s_map if fc.ndim == 4 else ph3.primitive.p2s_map
        return np.asarray(fc)[np.asarray(p2s)]
    return np.asarray(fc)


def _reference_key(reference: KappaReference | None) -> str | None:
    """Hash of a reference's content (not its path)."""
    return None if reference is None else content_key(reference.model_dump(exclude={"source"}))


def _result_base(material: KappaMaterial, model: str, s: KappaSettings, relax: RelaxDoc | None, disp: Phono3pyDisplacementDoc, fc2_forces: ForceResults) -> dict:
    """Fields of every :class:`KappaResultDoc` of a material (identity and provenance)."""
    return {
        "material_id": material.material_id,
        "name": material.name,
        "model": model,
        "model_provenance": dict(fc2_forces.provenance or {}),
        "relax": relax,
        "q_mesh": [int(x) for x in (s.q_mesh or material.q_mesh)],
        "settings": s.as_dict(),
        "versions": package_versions(),
        "n_fc2": disp.n_fc2,
        "n_fc3": disp.n_fc3,
        "fc2_forces_wall_time_s": fc2_forces.wall_time_s,
    }


# ---------------------------------------------------------------------------------------- jobs
@job(output_schema=Phono3pyDisplacementDoc, data=BLOBS)
def kappa_displacements(material: KappaMaterial, structure=None, *, distance_A: float = 0.03, symprec: float = 1e-5) -> Phono3pyDisplacementDoc:
    """fc2 and fc3 displaced supercells (phono3py, ``distance_A`` Å) of ``structure`` (the relaxed
    cell; None = the material's cell) with the material's supercell and primitive matrices."""
    cell = material.atoms if structure is None else (dict_to_atoms(structure) if isinstance(structure, dict) else structure)
    ph3 = fc3_displacements(cell, material.fc2_supercell, material.fc3_supercell, material.primitive_matrix, distance_A=distance_A, symprec=symprec)
    return Phono3pyDisplacementDoc(
        unitcell=cell,
        fc2_supercell=material.fc2_supercell,
        fc3_supercell=material.fc3_supercell,
        primitive_matrix=material.primitive_matrix,
        distance_A=distance_A,
        symprec=symprec,
        fc2_dataset=ph3.phonon_dataset,
        fc3_dataset=ph3.dataset,
        fc2_supercells=StructureSet.from_atoms(fc2_supercells(ph3)),
        fc3_supercells=StructureSet.from_atoms(fc3_supercells(ph3)),
    )


def _stored_job(key: str | None) -> str | None:
    """uuid of a complete stored job with content key ``key`` in the store the running job writes to
    (jobflow's ``CURRENT_JOB.store``, set for jobs with ``config.expose_store``), or None."""
    from jobflow import CURRENT_JOB

    store = CURRENT_JOB.store
    if key is None or store is None:
        return None
    return stored_jobs(store, [key]).get(key)


# no output_schema here: the output of a Flow replacement is stored by jobflow's ``store_inputs`` job,
# which inherits this job's schema but stores an (unresolved) OutputReference to the conductivity job's
# KappaResultDoc, so a schema would reject it; readers get the resolved document either way.
@job(data=BLOBS)
def kappa_fc2_check(
    material: KappaMaterial,
    displacements: Phono3pyDisplacementDoc,
    fc2_forces: ForceResults,
    settings: dict,
    *,
    model: str,
    force_maker: ForceMaker | None = None,
    relax: RelaxDoc | None = None,
    reference: KappaReference | None = None,
    result_id: ResultId | None = None,
    key: str | None = None,
    upstream: dict[str, str] | None = None,
):
    """fc2 + phonons on the q-mesh; stop (final failed result) on relax error, broken symmetry or
    imaginary modes, else replace this job by [fc3 forces (``force_maker``), conductivity].

    ``relax`` None: the material's cell was not relaxed (symmetry counts as kept).
    ``result_id`` / ``key``: identity and key of this job, from which the replacement jobs' tags
    are chained.  ``upstream``: uuids of the ``displacements``, ``fc2_forces`` and ``relax`` jobs,
    so that the replacement jobs reference the stored outputs instead of carrying copies.
    """
    s = KappaSettings.from_dict(settings)
    mesh = list(s.q_mesh or material.q_mesh)
    failed, info = None, {}
    if relax is not None and relax.error:
        failed = "relax_error"
    else:
        ph3 = _phono3py_for(displacements)
        produce_fc2(ph3, fc2_forces.forces_eV_per_A, s)
        _, freqs = mesh_frequencies(ph3, mesh)
        imag = has_imaginary_modes(freqs, s.acoustic_threshold_THz)
        info = {"imaginary_modes": bool(imag), "min_frequency_THz": float(np.min(freqs)),
                "gamma_frequencies_THz": np.asarray(freqs[0], dtype=float).tolist()}
        if imag:
            failed = "imaginary_modes"
        elif relax is not None and not relax.symmetry_preserved:
            failed = "broken_symmetry"
    mid = material.material_id
    if failed is None:
        if force_maker is None:
            raise ValueError(f"kappa_fc2_check {mid}: no force_maker for the fc3 forces")
        up = upstream or {}
        ref = lambda name, value: OutputReference(up[name]) if up.get(name) else value  # noqa: E731
        disp_in = ref("displacements", displacements)
        f3_key = None if result_id is None else content_key(key, "forces", force_maker.calculator, "fc3")
        # fc3 forces finished by an earlier run that stopped before the conductivity (killed): reused
        stored_f3 = _stored_job(f3_key)
        f3 = None
        if stored_f3 is None:
            f3 = force_maker.make(disp_in.fc3_supercells)
            f3.name = f"fc3 forces {mid} {model}"
        cond = kappa_conductivity(
            material, disp_in, ref("fc2_forces", fc2_forces), f3.output if f3 is not None else OutputReference(stored_f3), settings,
            model=model, relax=ref("relax", relax), reference=reference, phonon_info=info,
        )
        cond.name = f"kappa {mid} {model}"
        set_resources(cond, "cpu-heavy")  # f3 is cpu-heavy from the force maker
        if result_id is not None:
            if f3 is not None:
                f3.metadata = {**(f3.metadata or {}), **result_id.with_(stage="forces").metadata(f3_key, force_set="fc3")}
            cond.metadata = {**(cond.metadata or {}), **result_id.with_(stage="kappa").metadata(content_key(f3_key, "kappa"))}
        jobs = [cond] if f3 is None else [f3, cond]
        return Response(replace=Flow(jobs, output=cond.output, name=f"fc3 + kappa {mid} {model}"))
    out = _result_base(material, model, s, relax, displacements, fc2_forces)
    return KappaResultDoc(
        **out,
        **info,
        **failed_metrics(failed),
        kappa_dft_W_per_mK=None if reference is None else reference.kappa_at(s.temperatures_K[0]),
        error=relax.error if failed == "relax_error" else None,
    )


@job(output_schema=KappaResultDoc, data=BLOBS)
def kappa_conductivity(
    material: KappaMaterial,
    displacements: Phono3pyDisplacementDoc,
    fc2_forces: ForceResults,
    fc3_forces: ForceResults,
    settings: dict,
    *,
    model: str,
    relax: RelaxDoc | None = None,
    reference: KappaReference | None = None,
    phonon_info: dict | None = None,
) -> KappaResultDoc:
    """fc2 + fc3 -> Wigner (or RTA) κ on the q-mesh -> SRD/SRE/SRME against the DFT reference."""
    s = KappaSettings.from_dict(settings)
    mesh = list(s.q_mesh or material.q_mesh)
    t0 = time.perf_counter()
    c0 = time.process_time()
    ph3 = _phono3py_for(displacements)
    fc2 = produce_fc2(ph3, fc2_forces.forces_eV_per_A, s)
    fc3 = produce_fc3(ph3, fc3_forces.forces_eV_per_A, s)
    kr = run_conductivity(
        ph3, mesh, temperatures_K=s.temperatures_K, conductivity=s.conductivity, is_isotope=s.is_isotope,
        boundary_mfp_um=s.boundary_mfp_um,
    )
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    T = s.temperatures_K[0]
    kappa = float(kr.kappa_TOT_ave_W_per_mK[0])
    mode = kr.mode_kappa_TOT_ave_W_per_mK[0]
    if reference is None:
        metrics = {"srd": None, "sre": None, "srme": None, "failed": False, "failed_reason": None,
                   "metrics_note": "no DFT reference for this material"}
        kdft = None
    else:
        kdft = reference.kappa_at(T)
        if list(reference.q_mesh or []) == mesh:
            metrics = material_metrics(kappa, mode, kdft, reference.mode_kappa_at(T), reference.weights,
                                       qpoints_pred=kr.qpoints, qpoints_ref=reference.qpoints)
        else:  # a reduced mesh: SRD/SRE are indicative, SRME needs the reference's q-points
            metrics = {"srd": srd(kappa, kdft), "sre": sre(kappa, kdft), "srme": None, "failed": False, "failed_reason": None,
                       "metrics_note": f"q_mesh {mesh} differs from the reference's {reference.q_mesh}: no SRME"}
    mode_C = kr.mode_kappa_C_W_per_mK
    return KappaResultDoc(
        **_result_base(material, model, s, relax, displacements, fc2_forces),
        **(phonon_info or {}),
        **metrics,
        kappa_ave_W_per_mK=kappa,
        kappa_dft_W_per_mK=kdft,
        kappa_P_ave_W_per_mK=float(kr.kappa_P_W_per_mK[0, :3].mean()),
        kappa_C_ave_W_per_mK=float(kr.kappa_C_W_per_mK[0, :3].mean()),
        kappa_TOT_W_per_mK=kr.kappa_TOT_W_per_mK,
        kappa_P_W_per_mK=kr.kappa_P_W_per_mK,
        kappa_C_W_per_mK=kr.kappa_C_W_per_mK,
        kappa_mode_sum_W_per_mK=kr.mode_sum_W_per_mK(),
        temperatures_K=[float(t) for t in kr.temperatures_K],
        conductivity=kr.conductivity,
        qpoints=kr.qpoints,
        weights=kr.weights,
        frequencies_THz=kr.frequencies_THz,
        mode_kappa_TOT_ave_W_per_mK=kr.mode_kappa_TOT_ave_W_per_mK,
        mode_kappa_P_W_per_mK=kr.mode_kappa_P_W_per_mK,
        mode_kappa_C_W_per_mK=None if mode_C is None else np.asarray(mode_C, dtype=np.float32),  # documented float32
        heat_capacity_eV_per_K=kr.heat_capacity_eV_per_K,
        fc2_eV_per_A2=_compact(ph3, fc2),
        fc2_p2s_map=[int(i) for i in ph3.phonon_primitive.p2s_map],
        fc3_eV_per_A3=_compact(ph3, fc3),
        fc3_p2s_map=[int(i) for i in ph3.primitive.p2s_map],
        fc3_forces_wall_time_s=fc3_forces.wall_time_s,
        conductivity_wall_time_s=wall,
        conductivity_cpu_time_s=cpu,
    )


# ---------------------------------------------------------------------------------------- makers
@dataclass
class Phono3pyDisplacementMaker(Maker):
    """Symmetry-reduced phono3py displacement sets (fc2 and fc3) of a κ material's structure."""

    name: str = "kappa displacements"
    distance_A: float = 0.03
    symprec: float = 1e-5

    def make(self, material: KappaMaterial, structure=None) -> Job:
        return set_resources(kappa_displacements(material, structure, distance_A=self.distance_A, symprec=self.symprec), "light")


@dataclass
class KappaMaker(Maker):
    """κ of one material with one model: [relax] -> fc2/fc3 displacements -> fc2 forces -> check
    -> [fc3 forces -> κ + metrics].

    ``make(material, result_id, key=..., reference=None)``: ``material`` a :class:`KappaMaterial`,
    ``reference`` its DFT :class:`KappaReference` (None: κ without metrics), ``key`` the hash of
    what determines the flow's inputs (each job's ``pftflow_key`` chains it with the job's
    settings).  The flow's output is the :class:`~pftflow.kappa.documents.KappaResultDoc`.
    Without ``relax_maker`` the file's cell is used as is.  :func:`kappa_maker` builds one.
    """

    name: str = "kappa"
    model: str = "model"
    relax_maker: RelaxMaker | None = None
    displacement_maker: Phono3pyDisplacementMaker = field(default_factory=Phono3pyDisplacementMaker)
    force_maker: ForceMaker | None = None
    settings: dict = field(default_factory=dict)  # KappaSettings fields

    def make(self, material: KappaMaterial, result_id: ResultId, *, key: str, reference: KappaReference | None = None) -> Flow:
        if self.force_maker is None:
            raise ValueError(f"{self.name}: a kappa flow needs a force_maker (calculator)")
        settings = KappaSettings.from_dict(self.settings).as_dict()
        mid = material.material_id
        rid = result_id.with_(kind="kappa", material_id=mid, model=self.model)
        job_list: list[Job] = []

        def add(j: Job, stage: str, name: str, *parts: Any, **extra: Any) -> Job:
            nonlocal key
            key = content_key(key, stage, *parts)
            j.name = f"{name} {mid} {self.model}"
            j.metadata = {**(j.metadata or {}), **rid.with_(stage=stage).metadata(key, **extra)}
            job_list.append(j)
            return j

        structure, relax, upstream = None, None, {}
        if self.relax_maker is not None:
            r = add(self.relax_maker.make(atoms_to_dict(material.atoms)), "relax", "relax", self.relax_maker.calculator, self.relax_maker.settings)
            structure, relax, upstream["relax"] = r.output.structure, r.output, r.uuid
        dm = self.displacement_maker
        d = add(dm.make(material, structure), "displacements", "kappa displacements", dm.distance_A, dm.symprec)
        f2 = add(self.force_maker.make(d.output.fc2_supercells), "forces", "fc2 forces", self.force_maker.calculator, "fc2", force_set="fc2")
        upstream.update(displacements=d.uuid, fc2_forces=f2.uuid)
        chk_key = content_key(key, "kappa", settings, _reference_key(reference))
        chk = kappa_fc2_check(
            material, d.output, f2.output, settings, model=self.model, force_maker=self.force_maker, relax=relax,
            reference=reference, result_id=rid, key=chk_key, upstream=upstream,
        )
        chk.name = f"fc2 check {mid} {self.model}"
        set_resources(chk, "light")
        chk.config.pass_manager_config = False  # its replacement jobs keep their own categories
        chk.config.expose_store = True  # it looks up fc3 forces a killed run finished (CURRENT_JOB.store)
        chk.metadata = {**(chk.metadata or {}), **rid.with_(stage="kappa").metadata(chk_key)}
        job_list.append(chk)
        return Flow(job_list, output=chk.output, name=f"{self.name} {mid} {self.model}")


def kappa_maker(calculator: dict, model: str | None = None, *, settings: dict | None = None, relax_settings: dict | None = None,
                relax: bool = True) -> KappaMaker:
    """The k_SRME κ maker of one calculator: relax with it (``relax_settings``, default
    :func:`ksrme_relax_settings`) unless ``relax=False``, phono3py displacements at
    ``settings.displacement_A``, fc2 / fc3 forces with it."""
    s = KappaSettings.from_dict(settings).as_dict()
    return KappaMaker(
        model=model or model_name(calculator),
        relax_maker=RelaxMaker(calculator=calculator, settings=ksrme_relax_settings() if relax_settings is None else relax_settings) if relax else None,
        displacement_maker=Phono3pyDisplacementMaker(distance_A=s["displacement_A"], symprec=s["symprec"]),
        force_maker=ForceMaker(calculator=calculator),
        settings=s,
    )
