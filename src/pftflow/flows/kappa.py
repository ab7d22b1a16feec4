"""κ benchmark flows (k_SRME protocol): relax -> fc2/fc3 displacements -> fc2 forces (one batch job)
-> fc2 + imaginary-mode / symmetry check -> [fc3 forces (one batch job) -> Wigner RTA κ + metrics].

The check job stops the material before fc3 when the relaxation failed or broke the space group,
or when fc2 has imaginary modes: it then returns the final result itself (SRD = −2, SRE = SRME = 2).
Otherwise it replaces itself (jobflow ``Response(replace=...)``) with the fc3 forces job and the
conductivity job, whose output becomes the material's output.  Either way the output of
``KappaMaker.make(...)`` is one JSON-able dict (keys in :data:`RESULT_KEYS`).

Large arrays (displaced supercells, forces, fc2/fc3, per-mode κ) go to the JobStore's additional
``data`` store; per-mode κ and force constants are stored compressed (:mod:`pftflow.kappa.encode`).
Campaign spec format: ``docs/kappa.md``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from jobflow import Flow, Maker, Response, job

from pftflow.flows import jobs

#: keys every final κ output has (``summarize_kappa`` reads these)
RESULT_KEYS = (
    "material_id", "name", "model", "kappa_ave_W_per_mK", "kappa_dft_W_per_mK", "srd", "sre", "srme",
    "failed", "failed_reason", "relax",
)
DISP_DATA_KEYS = ["fc2_supercells", "fc3_supercells", "phonon_dataset", "dataset"]
RESULT_DATA_KEYS = ["fc2", "fc3", "mode_kappa", "frequencies_THz", "qpoints"]


def ksrme_relax_settings(**kw) -> dict:
    """k_SRME relaxation settings as a dict for :func:`pftflow.flows.jobs.relax`."""
    from pftflow.phonons.relax import RelaxSettings

    return asdict(RelaxSettings.ksrme(**kw))


def _versions() -> dict:
    return jobs.software_versions()


def _load_reference(material: dict):
    """The material's :class:`KappaReference` (inline dict or from ``reference_path``), or None."""
    from pftflow.kappa.readers import KappaReference, read_kappa_reference

    if material.get("reference") is not None:
        return KappaReference.from_dict(material["reference"])
    if material.get("reference_path"):
        refs = read_kappa_reference(material["reference_path"], nac=material.get("nac", True))
        return refs.get(material["material_id"])
    return None


def _phono3py_for(material: dict, structure: dict, disp: dict, settings):
    """Phono3py for the relaxed structure with the stored displacement datasets restored."""
    from pftflow.kappa.conductivity import dataset_from_json, init_phono3py
    from pftflow.materials.structures import dict_to_atoms

    ph3 = init_phono3py(
        dict_to_atoms(structure), material["fc2_supercell"], material["fc3_supercell"], material.get("primitive_matrix"),
        symprec=settings.symprec, displacement_A=None,
    )
    ph3.phonon_dataset = dataset_from_json(disp["phonon_dataset"])
    ph3.dataset = dataset_from_json(disp["dataset"])
    return ph3


def _compact(ph3, fc: np.ndarray) -> np.ndarray:
    """Compact force constants (first index over primitive atoms) from full or compact ones."""
    if fc.shape[0] == fc.shape[1]:
        p2s = ph3.phonon_primitive.p2s_map if fc.ndim == 4 else ph3.primitive.p2s_map
        return np.asarray(fc)[np.asarray(p2s)]
    return np.asarray(fc)


def _result_base(material: dict, relax: dict, calculator: dict, settings, model: dict | None = None) -> dict:
    from pftflow.calculators import get_calculator

    calc = get_calculator(calculator)
    if model is None:
        model = relax.get("model") if relax else None
    if model is None:
        calc.ase_calculator()  # some backends set up their loaders here
        model = calc.provenance()
    relax_info = {k: relax.get(k) for k in (
        "converged", "n_steps", "fmax_final_eV_per_A", "energy_eV", "spacegroup_initial", "spacegroup_final",
        "symmetry_preserved", "error", "wall_time_s")} if relax else None
    return {
        "material_id": material["material_id"],
        "name": material.get("name", material["material_id"]),
        "model": calc.name,
        "model_provenance": model,
        "relax": relax_info,
        "structure_relaxed": relax.get("structure") if relax else None,
        "q_mesh": list(settings.q_mesh or material["q_mesh"]),
        "settings": settings.as_dict(),
        "versions": _versions(),
    }


# ---------------------------------------------------------------------------------------- jobs
@job(data=DISP_DATA_KEYS)
def kappa_displacements(material: dict, structure: dict, settings: dict) -> dict:
    """fc2 and fc3 displaced supercells (phono3py, ``settings.displacement_A`` Å) of ``structure``."""
    from pftflow.kappa.conductivity import KappaSettings, dataset_to_json, fc2_supercells, fc3_supercells, init_phono3py
    from pftflow.materials.structures import atoms_to_dict, dict_to_atoms

    s = KappaSettings.from_dict(settings)
    ph3 = init_phono3py(
        dict_to_atoms(structure), material["fc2_supercell"], material["fc3_supercell"], material.get("primitive_matrix"),
        symprec=s.symprec, displacement_A=s.displacement_A,
    )
    sc2, sc3 = fc2_supercells(ph3), fc3_supercells(ph3)
    return {
        "fc2_supercells": [atoms_to_dict(a) for a in sc2],
        "fc3_supercells": [atoms_to_dict(a) for a in sc3],
        "phonon_dataset": dataset_to_json(ph3.phonon_dataset),
        "dataset": dataset_to_json(ph3.dataset),
        "n_fc2": len(sc2),
        "n_fc3": len(sc3),
        "n_atoms_fc2": len(sc2[0]),
        "n_atoms_fc3": len(sc3[0]),
        "displacement_A": s.displacement_A,
    }


@job(data=["fc2", "frequencies_THz"])
def kappa_fc2_check(material: dict, relax: dict, disp: dict, fc2_forces: dict, settings: dict, calculator: dict):
    """fc2 + phonons on the q-mesh; stop (final failed result) on relax error, broken symmetry or
    imaginary modes, else replace this job by [fc3 forces, conductivity]."""
    from pftflow.kappa.conductivity import KappaSettings, has_imaginary_modes, mesh_frequencies, produce_fc2
    from pftflow.kappa.metrics import failed_metrics

    s = KappaSettings.from_dict(settings)
    mesh = list(s.q_mesh or material["q_mesh"])
    failed, info = None, {}
    if relax.get("error"):
        failed = "relax_error"
    else:
        ph3 = _phono3py_for(material, relax["structure"], disp, s)
        produce_fc2(ph3, fc2_forces["forces_eV_per_A"], s)
        _, freqs = mesh_frequencies(ph3, mesh)
        imag = has_imaginary_modes(freqs, s.acoustic_threshold_THz)
        info = {"imaginary_modes": bool(imag), "min_frequency_THz": float(np.min(freqs)),
                "gamma_frequencies_THz": np.asarray(freqs[0]).tolist()}
        if imag:
            failed = "imaginary_modes"
        elif not relax.get("symmetry_preserved", False):
            failed = "broken_symmetry"
    if failed is None:
        fc3_forces = jobs.forces(disp["fc3_supercells"], calculator)
        fc3_forces.name = f"fc3 forces {material['material_id']}"
        cond = kappa_conductivity(material, relax, disp, fc2_forces, fc3_forces.output, settings, calculator, info)
        cond.name = f"kappa {material['material_id']}"
        return Response(replace=Flow([fc3_forces, cond], output=cond.output, name=f"fc3 + kappa {material['material_id']}"))
    ref = _load_reference(material)
    out = _result_base(material, relax, calculator, s)
    out.update(info)
    out.update(failed_metrics(failed))
    out.update({
        "kappa_ave_W_per_mK": None,
        "kappa_dft_W_per_mK": None if ref is None else ref.kappa_at(s.temperatures_K[0]),
        "n_fc2": disp["n_fc2"], "n_fc3": disp["n_fc3"],
        "fc2_forces_wall_time_s": fc2_forces.get("wall_time_s"),
    })
    if failed == "relax_error":
        out["error"] = relax.get("error")
    return out


@job(data=RESULT_DATA_KEYS)
def kappa_conductivity(
    material: dict, relax: dict, disp: dict, fc2_forces: dict, fc3_forces: dict, settings: dict, calculator: dict,
    phonon_info: dict | None = None,
) -> dict:
    """fc2 + fc3 -> Wigner (or RTA) κ on the q-mesh -> SRD/SRE/SRME against the DFT reference."""
    from pftflow.kappa.conductivity import KappaSettings, produce_fc2, produce_fc3, run_conductivity
    from pftflow.kappa.encode import encode_array
    from pftflow.kappa.metrics import material_metrics, srd, sre

    s = KappaSettings.from_dict(settings)
    mesh = list(s.q_mesh or material["q_mesh"])
    t0 = time.perf_counter()
    c0 = time.process_time()
    ph3 = _phono3py_for(material, relax["structure"], disp, s)
    fc2 = produce_fc2(ph3, fc2_forces["forces_eV_per_A"], s)
    fc3 = produce_fc3(ph3, fc3_forces["forces_eV_per_A"], s)
    kr = run_conductivity(
        ph3, mesh, temperatures_K=s.temperatures_K, conductivity=s.conductivity, is_isotope=s.is_isotope,
        boundary_mfp_um=s.boundary_mfp_um,
    )
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    T = s.temperatures_K[0]
    kappa = float(kr.kappa_TOT_ave_W_per_mK[0])
    mode = kr.mode_kappa_TOT_ave_W_per_mK[0]
    ref = _load_reference(material)
    out = _result_base(material, relax, calculator, s)
    out.update(phonon_info or {})
    if ref is None:
        metrics = {"srd": None, "sre": None, "srme": None, "failed": False, "failed_reason": None,
                   "metrics_note": "no DFT reference for this material"}
        kdft = None
    else:
        kdft = ref.kappa_at(T)
        if list(ref.q_mesh or []) == mesh:
            metrics = material_metrics(kappa, mode, kdft, ref.mode_kappa_at(T), ref.weights,
                                       qpoints_pred=kr.qpoints, qpoints_ref=ref.qpoints)
        else:  # a reduced mesh: SRD/SRE are indicative, SRME needs the reference's q-points
            metrics = {"srd": srd(kappa, kdft), "sre": sre(kappa, kdft), "srme": None, "failed": False, "failed_reason": None,
                       "metrics_note": f"q_mesh {mesh} differs from the reference's {ref.q_mesh}: no SRME"}
    out.update(metrics)
    p2 = lambda x: np.asarray(x, float).tolist()  # noqa: E731
    out.update({
        "kappa_ave_W_per_mK": kappa,
        "kappa_dft_W_per_mK": kdft,
        "kappa_P_ave_W_per_mK": float(kr.kappa_P_W_per_mK[0, :3].mean()),
        "kappa_C_ave_W_per_mK": float(kr.kappa_C_W_per_mK[0, :3].mean()),
        "kappa_TOT_W_per_mK": p2(kr.kappa_TOT_W_per_mK),
        "kappa_P_W_per_mK": p2(kr.kappa_P_W_per_mK),
        "kappa_C_W_per_mK": p2(kr.kappa_C_W_per_mK),
        "kappa_mode_sum_W_per_mK": p2(kr.mode_sum_W_per_mK()),
        "temperatures_K": p2(kr.temperatures_K),
        "conductivity": kr.conductivity,
        "weights": [int(w) for w in kr.weights],
        "qpoints": encode_array(kr.qpoints, "float64"),
        "frequencies_THz": encode_array(kr.frequencies_THz, "float32"),
        "mode_kappa": {
            "mode_kappa_TOT_ave_W_per_mK": encode_array(kr.mode_kappa_TOT_ave_W_per_mK),
            "mode_kappa_P_W_per_mK": encode_array(kr.mode_kappa_P_W_per_mK),
            "mode_kappa_C_W_per_mK": encode_array(kr.mode_kappa_C_W_per_mK),
            "heat_capacity_eV_per_K": encode_array(kr.heat_capacity_eV_per_K),
        },
        "fc2": {"compact_eV_per_A2": encode_array(_compact(ph3, fc2), "float64"),
                "p2s_map": np.asarray(ph3.phonon_primitive.p2s_map).tolist()},
        "fc3": {"compact_eV_per_A3": encode_array(_compact(ph3, fc3), "float64"),
                "p2s_map": np.asarray(ph3.primitive.p2s_map).tolist()},
        "n_fc2": disp["n_fc2"], "n_fc3": disp["n_fc3"],
        "fc2_forces_wall_time_s": fc2_forces.get("wall_time_s"),
        "fc3_forces_wall_time_s": fc3_forces.get("wall_time_s"),
        "conductivity_wall_time_s": wall,
        "conductivity_cpu_time_s": cpu,
    })
    return out


# ---------------------------------------------------------------------------------------- maker
@dataclass
class KappaMaker(Maker):
    """κ of one material with one model (k_SRME protocol).

    ``make(material, calculator_spec)``: ``material`` is :meth:`KappaMaterial.as_dict` plus
    optionally ``reference`` (:meth:`KappaReference.as_dict`) or ``reference_path`` + ``nac``;
    ``calculator_spec`` is what :func:`pftflow.calculators.get_calculator` takes.  The flow's
    output is the final result dict (see :data:`RESULT_KEYS`).  ``relax=False`` uses the file's cell.
    """

    name: str = "kappa"
    settings: dict = field(default_factory=dict)  # KappaSettings fields
    relax_settings: dict = field(default_factory=ksrme_relax_settings)
    relax: bool = True

    def make(self, material: dict, calculator_spec: dict) -> Flow:
        from pftflow.calculators import get_calculator
        from pftflow.kappa.conductivity import KappaSettings

        settings = KappaSettings.from_dict(self.settings).as_dict()
        mid = material["material_id"]
        model = get_calculator(calculator_spec).name
        job_list = []
        if self.relax:
            rlx = jobs.relax(material["structure"], calculator_spec, self.relax_settings)
            rlx.name = f"relax {mid} {model}"
            job_list.append(rlx)
            relax_out = rlx.output
            structure = rlx.output["structure"]
        else:
            structure = material["structure"]
            relax_out = {"structure": structure, "symmetry_preserved": True, "error": None, "converged": None}
        disp = kappa_displacements(material, structure, settings)
        disp.name = f"kappa displacements {mid}"
        f2 = jobs.forces(disp.output["fc2_supercells"], calculator_spec)
        f2.name = f"fc2 forces {mid} {model}"
        chk = kappa_fc2_check(material, relax_out, disp.output, f2.output, settings, calculator_spec)
        chk.name = f"fc2 check {mid} {model}"
        job_list += [disp, f2, chk]
        return Flow(job_list, output=chk.output, name=f"{self.name} {mid} {model}")


# ---------------------------------------------------------------------------------------- campaign
def normalize_kappa_spec(spec: dict) -> dict:
    """The campaign spec with the keys of an optional ``kappa:`` block (``structures``,
    ``reference``, ``nac``, ``materials``, ``settings``) lifted to the top level (block wins)."""
    out = {k: v for k, v in spec.items() if k != "kappa"}
    block = spec.get("kappa") or {}
    if not isinstance(block, dict):
        raise ValueError("'kappa' must be a mapping with structures, reference, nac, materials, settings")
    out.update(block)
    return out


def kappa_materials(spec: dict) -> list[dict]:
    """Material dicts (with ``reference_path`` / ``nac``) selected by a campaign spec."""
    from pftflow.kappa.readers import read_kappa_structures, resolve_reference_path

    spec = normalize_kappa_spec(spec)
    nac = bool(spec.get("nac", True))
    mats = read_kappa_structures(spec["structures"])
    wanted = spec.get("materials", "all")
    if wanted not in (None, "all", ["all"]):
        by_id = {m.material_id: m for m in mats}
        by_name = {m.name: m for m in mats}
        missing = [w for w in wanted if w not in by_id and w not in by_name]
        if missing:
            raise ValueError(f"materials {missing} not in {spec['structures']} (ids: {sorted(by_id)})")
        mats = [by_id.get(w) or by_name[w] for w in wanted]
    ref_path = str(resolve_reference_path(spec["reference"], nac)) if spec.get("reference") else None
    out = []
    for m in mats:
        d = m.as_dict()
        d["reference_path"] = ref_path
        d["nac"] = nac
        out.append(d)
    return out


#: columns of ``pftflow results`` for kappa campaigns: (row key, header, format)
KAPPA_COLUMNS = [
    ("material_id", "material", "{}"),
    ("name", "name", "{}"),
    ("model", "model", "{}"),
    ("kappa_W_per_mK", "κ [W/m/K]", "{:.4f}"),
    ("kappa_dft_W_per_mK", "κ DFT [W/m/K]", "{:.4f}"),
    ("srd", "SRD", "{:+.4f}"),
    ("sre", "SRE", "{:.4f}"),
    ("srme", "SRME", "{:.4f}"),
    ("failed_reason", "failed", "{}"),
]


def _model_name(model: dict | str) -> str:
    from pftflow.calculators import get_calculator

    return get_calculator(model).name


def _material_key(spec_name: str, material: dict, model: dict, maker: "KappaMaker") -> str:
    from pftflow.flows.common import file_sha, stage_key

    m = {k: v for k, v in material.items() if k != "reference_path"}
    return stage_key("kappa", m, file_sha(material.get("reference_path")), model, maker.settings, maker.relax_settings, maker.relax)


def kappa_campaign_flow(spec: dict, store=None) -> Flow:
    """One :class:`KappaMaker` flow per (model, material) of a ``kind: kappa`` campaign spec.

    Spec keys (docs/kappa.md): ``name``, ``structures`` (extxyz path), ``reference`` (JSON path or
    directory), ``nac`` (default true), ``materials`` (ids or names, or ``"all"``), ``models``
    (calculator specs), ``settings`` (:class:`KappaSettings` fields, plus ``relax`` (RelaxSettings
    fields overriding the k_SRME ones) and ``do_relax``).  Every job is tagged with
    ``metadata = {campaign, material_id, model, stage}``; the job whose (final) output is the
    material's result has ``stage: "kappa"`` and ``pftflow_key``.  With ``store`` given, a
    (material, model) whose key already has a completed result in the store is not run again.
    The flow's output is the list of per-material result dicts of the flows that run.
    """
    spec = normalize_kappa_spec(spec)
    if spec.get("kind", "kappa") != "kappa":
        raise ValueError(f"kappa_campaign_flow needs kind: kappa, got {spec.get('kind')!r}")
    for key in ("structures", "models"):
        if not spec.get(key):
            raise ValueError(f"kappa campaign '{spec.get('name')}': '{key}' is required (see docs/kappa.md)")
    settings = dict(spec.get("settings") or {})
    relax_over = settings.pop("relax", None) or {}
    do_relax = bool(settings.pop("do_relax", True))
    from pftflow.kappa.conductivity import KappaSettings

    KappaSettings.from_dict(settings)  # validate early
    maker = KappaMaker(settings=settings, relax_settings=ksrme_relax_settings(**relax_over), relax=do_relax)
    materials = kappa_materials(spec)
    name = spec.get("name", "kappa")
    flows = []
    for model in spec["models"]:
        model = {"backend": model} if isinstance(model, str) else dict(model)
        mname = _model_name(model)
        for m in materials:
            key = _material_key(name, m, model, maker)
            if store is not None:
                from pftflow.flows.common import find_stored

                try:
                    done = find_stored(store, key)
                except Exception:  # noqa: BLE001 - an unreadable old entry is simply recomputed
                    done = None
                if isinstance(done, dict) and "srme" in done:
                    continue
            f = maker.make(m, model)
            meta = {"campaign": name, "material_id": m["material_id"], "model": mname}
            for j in f.jobs:
                j.metadata = {**(j.metadata or {}), **meta, "stage": j.metadata.get("stage") if j.metadata else None}
            f.jobs[-1].metadata.update({"stage": "kappa", "pftflow_key": key})
            flows.append(f)
    return Flow(flows, output=[f.output for f in flows], name=f"campaign {name}")


def load_kappa_results(spec: dict, store) -> dict:
    """Rows (latest result per material × model) and mean SRE/SRME per model from the store,
    in the shape ``pftflow results`` prints (``columns`` = :data:`KAPPA_COLUMNS`)."""
    name = spec.get("name", "kappa")
    docs = list(store.query({"metadata.campaign": name, "metadata.stage": "kappa"},
                            properties=["uuid", "index", "metadata", "completed_at"]))
    from pftflow.flows.common import latest_by

    outputs = []
    for uuid in (d["uuid"] for d in latest_by(docs)):
        try:
            out = store.get_output(uuid, which="last", load=True)
        except Exception:  # noqa: BLE001 - job not finished / failed
            continue
        if isinstance(out, dict) and "srme" in out:
            outputs.append(out)
    rows, means = summarize_kappa(outputs)
    order = {}
    try:
        order = {m["material_id"]: i for i, m in enumerate(kappa_materials(spec))}
    except Exception:  # noqa: BLE001 - input files moved: keep store order
        pass
    rows.sort(key=lambda r: (str(r["model"]), order.get(r["material_id"], 1e9)))
    return {"campaign": name, "kind": "kappa", "rows": rows, "summary": means, "columns": KAPPA_COLUMNS}


def summarize_kappa(outputs: list[dict]) -> tuple[list[dict], dict]:
    """Table rows (one per model × material) and mean metrics per model.

    Rows: model, material_id, name, kappa_W_per_mK, kappa_dft_W_per_mK, srd, sre, srme, failed_reason.
    Mean: ``{model: {"n_materials", "n_failed", "mean_sre", "mean_srme"}}`` (failures count 2).
    """
    from pftflow.kappa.metrics import mean_metrics

    rows = []
    for o in outputs:
        if o is None:
            continue
        rows.append({
            "model": o.get("model"),
            "material_id": o.get("material_id"),
            "name": o.get("name"),
            "kappa_W_per_mK": o.get("kappa_ave_W_per_mK"),
            "kappa_dft_W_per_mK": o.get("kappa_dft_W_per_mK"),
            "srd": o.get("srd"),
            "sre": o.get("sre"),
            "srme": o.get("srme"),
            "failed": o.get("failed", False),
            "failed_reason": o.get("failed_reason"),
        })
    means: dict[str, Any] = {}
    for model in dict.fromkeys(r["model"] for r in rows):
        means[model] = mean_metrics(r for r in rows if r["model"] == model)
    return rows, means
