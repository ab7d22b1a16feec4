"""VASP through atomate2, without VASP: tested the way atomate2 tests itself.

atomate2's ``atomate2.utils.testing.vasp.monkeypatch_vasp`` makes the input sets write
``POTCAR.spec`` (POTCAR symbols) instead of licensed POTCARs; ``run_vasp`` is replaced by a mock
that checks the INCAR / KPOINTS / POSCAR / POTCAR.spec the job wrote against a reference
``inputs/`` folder, then copies real VASP outputs from an ``outputs/`` folder
(atomate2's ``fake_run_vasp``).  On top of atomate2's checks the mock asserts here:

* the INCAR equals the phonon input set key by key, both ways (:data:`EXPECTED_INCAR` is written
  out by hand, not produced by pftflow's code);
* the KPOINTS mesh, its style and shift;
* the POSCAR in order (atomate2's check accepts any site order; a force set needs the order kept).

The outputs are the real ``vasprun.xml`` of the two NaCl displacements of phonopy's example
(``../shared/data/vasp/NaCl_displacements``, VASP 4.6.35, ENCUT 300, SIGMA 0.2: *not* the settings
the mock checks: the mock tests what pftflow asks for, the outputs what it reads back).  emmet's
TaskDoc parser also needs an OUTCAR and a CONTCAR, which that folder lacks: the CONTCAR is the
vasprun's final structure, the OUTCAR a stub with only the lines pymatgen's Outcar parser cannot
do without (header, NBANDS copied from the vasprun, NPLWV unknown, IBRION); no number a test
checks comes from it.
"""

from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest

NACL = "vasp/NaCl_displacements"
VASPRUNS = ("vasprun.xml-001", "vasprun.xml-002")

#: the phonon input set (docs/vasp.md) as the job must write it for the 64-atom NaCl supercell
EXPECTED_INCAR = {
    "ALGO": "Normal",
    "EDIFF": 1e-07,
    "ENCUT": 520.0,
    "GGA": "Pe",
    "IBRION": -1,
    "ISIF": 2,
    "ISMEAR": 0,
    "ISPIN": 2,
    "LAECHG": False,
    "LASPH": True,
    "LCHARG": False,
    "LELF": False,
    "LREAL": False,
    "LVTOT": False,
    "LWAVE": False,
    "MAGMOM": [0.6] * 64,
    "NELM": 200,
    "NSW": 0,
    "PREC": "Accurate",
    "SIGMA": 0.01,
}
#: 11.38 Å cubic supercell, 100 k-points per Å⁻³ of reciprocal volume: Γ-centred 2x2x2
EXPECTED_KPOINTS = {"style": "Gamma", "kpts": [(2, 2, 2)], "shift": (0, 0, 0)}
EXPECTED_POTCARS = ["Na_pv", "Cl"]


@pytest.fixture
def atomate2():
    return pytest.importorskip("atomate2", reason="atomate2 is not installed: the VASP path needs `pip install 'pftflow[vasp]'`")


@pytest.fixture
def nacl(shared_data):
    """phonopy's NaCl displacement set (POSCAR-unitcell + phonopy_disp.yaml) and the two vasprun.xml."""
    from phonopy import Phonopy
    from phonopy.interface.calculator import read_crystal_structure
    from phonopy.interface.phonopy_yaml import PhonopyYaml

    folder = shared_data / NACL
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    disp = PhonopyYaml()
    disp.read(folder / "phonopy_disp.yaml")
    unitcell, _ = read_crystal_structure(str(folder / "POSCAR-unitcell"), interface_mode="vasp")
    ph = Phonopy(unitcell, supercell_matrix=disp.supercell_matrix, primitive_matrix=disp.primitive_matrix)
    ph.dataset = disp.dataset
    return ph, [folder / v for v in VASPRUNS]


def _structure_set(ph):
    from ase import Atoms

    from pftflow.documents import StructureSet

    return StructureSet.from_atoms(
        [Atoms(sc.symbols, cell=sc.cell, positions=sc.positions, masses=sc.masses, pbc=True) for sc in ph.supercells_with_displacements]
    )


def _reference_dirs(root: Path, vaspruns: list[Path]) -> list[Path]:
    """atomate2-style reference folders: inputs/ (what the job must write), outputs/ (what VASP wrote)."""
    import warnings

    from pymatgen.io.vasp import Incar, Kpoints, Poscar, Vasprun

    dirs = []
    for i, vr in enumerate(vaspruns):
        d = root / f"NaCl-{i + 1:03d}"
        (d / "inputs").mkdir(parents=True)
        (d / "outputs").mkdir()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # no POTCARs here to match the vasprun's TITELs against
            v = Vasprun(vr, parse_dos=False, parse_eigen=False, parse_potcar_file=False)
        Incar(EXPECTED_INCAR).write_file(d / "inputs" / "INCAR")
        Kpoints.gamma_automatic(EXPECTED_KPOINTS["kpts"][0]).write_file(d / "inputs" / "KPOINTS")
        Poscar(v.initial_structure).write_file(d / "inputs" / "POSCAR")
        (d / "inputs" / "POTCAR.spec").write_text("\n".join(EXPECTED_POTCARS) + "\n")
        shutil.copy(vr, d / "outputs" / "vasprun.xml")
        Poscar(v.final_structure).write_file(d / "outputs" / "CONTCAR")
        (d / "outputs" / "OUTCAR").write_text(
            f" vasp.{v.vasp_version} (stub: the shared data has no OUTCAR)\n"
            f"   number of bands    NBANDS=    {v.parameters['NBANDS']}\n"
            "   total plane-waves  NPLWV = ******\n"
            f"   IBRION =     {v.incar.get('IBRION', -1)}\n"
        )
        dirs.append(d)
    return dirs


def _check_written_inputs(ref: Path) -> None:
    """The strict part of the mock: INCAR key by key, KPOINTS, POSCAR in order, POTCAR symbols."""
    from pymatgen.io.vasp import Incar, Kpoints, Poscar

    incar = dict(Incar.from_file("INCAR"))
    for key in sorted(set(incar) | set(EXPECTED_INCAR)):
        assert incar.get(key) == EXPECTED_INCAR.get(key), f"INCAR {key}: wrote {incar.get(key)!r}, phonon set {EXPECTED_INCAR.get(key)!r}"
    k = Kpoints.from_file("KPOINTS")
    assert (k.style.name, [tuple(x) for x in k.kpts], tuple(k.kpts_shift)) == (EXPECTED_KPOINTS["style"], EXPECTED_KPOINTS["kpts"], EXPECTED_KPOINTS["shift"])
    mine, ref_pos = Poscar.from_file("POSCAR").structure, Poscar.from_file(ref / "inputs" / "POSCAR").structure
    assert [s.specie.symbol for s in mine] == [s.specie.symbol for s in ref_pos]
    np.testing.assert_allclose(mine.cart_coords, ref_pos.cart_coords, atol=1e-6, err_msg="POSCAR sites differ (or are reordered)")
    np.testing.assert_allclose(mine.lattice.matrix, ref_pos.lattice.matrix, atol=1e-6)
    assert Path("POTCAR.spec").read_text().split() == EXPECTED_POTCARS


@pytest.fixture
def mock_vasp(atomate2, nacl, tmp_path, monkeypatch):
    """atomate2's VASP mock (POTCAR.spec input sets, fake_run_vasp) with the strict checks above.

    Yields ``state``: ``calls`` (job names the mock ran for) and ``fail`` (structure numbers whose
    first run raises, as a crashed VASP would)."""
    import atomate2.vasp.jobs.base
    import atomate2.vasp.run
    from atomate2.utils.testing.vasp import fake_run_vasp, monkeypatch_vasp
    from jobflow import CURRENT_JOB

    refs = _reference_dirs(tmp_path / "vasp_reference", nacl[1])
    state = {"calls": [], "fail": set()}

    def run_vasp(*_args, **_kwargs):
        name = CURRENT_JOB.job.name
        m = re.search(r"static (\d+)/(\d+)$", name)
        assert m, f"unexpected VASP job name {name!r}"
        i = int(m[1])
        state["calls"].append(name)
        if i in state["fail"]:
            state["fail"].discard(i)
            raise RuntimeError(f"mock VASP crash on structure {i}")
        ref = refs[i - 1]
        _check_written_inputs(ref)
        fake_run_vasp(ref, check_inputs=("incar", "kpoints", "poscar", "potcar"))

    gen = monkeypatch_vasp(monkeypatch, tmp_path / "vasp_reference")
    next(gen)
    monkeypatch.setattr(atomate2.vasp.jobs.base, "run_vasp", run_vasp)
    monkeypatch.setattr(atomate2.vasp.run, "run_vasp", run_vasp)
    monkeypatch.chdir(tmp_path)
    yield state
    next(gen, None)


def _vasprun_reference(path: Path):
    """Energy (eV), forces (eV/Å) and stress (eV/Å³, Voigt, ASE sign) read directly: pymatgen's
    Vasprun for energy and forces, ASE's own vasprun reader for the stress (its sign and units)."""
    import warnings

    import ase.io
    from pymatgen.io.vasp import Vasprun

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        v = Vasprun(path, parse_dos=False, parse_eigen=False, parse_potcar_file=False)
    atoms = ase.io.read(path, format="vasp-xml")
    return float(v.final_energy), np.array(v.ionic_steps[-1]["forces"]), atoms.get_stress(voigt=True), np.array(v.ionic_steps[-1]["stress"])


def _run(flow, store, *, raise_immediately: bool = True):
    from jobflow import run_locally

    run_locally(flow, store=store, create_folders=False, raise_immediately=raise_immediately, log=False, allow_external_references=True)


def _output(store, uuid):
    from monty.json import MontyDecoder

    return MontyDecoder().process_decoded(store.get_output(uuid, which="last", load=True))


# ------------------------------------------------------------------------------------ input set
def test_phonon_input_set_defaults_overrides_and_gamma_only(atomate2):
    from ase.build import bulk
    from pymatgen.io.ase import AseAtomsAdaptor

    from pftflow.calculators.vasp import PHONON_INCAR, VaspSettings, min_width_A, phonon_input_set

    conv = AseAtomsAdaptor.get_structure(bulk("NaCl", "rocksalt", a=5.6903, cubic=True))
    small, large = conv * (2, 2, 2), conv * (4, 4, 4)  # 11.4 Å and 22.8 Å cubes

    def inputs(settings, s):
        vis = phonon_input_set(settings, s).get_input_set(s, potcar_spec=True)
        return dict(vis.incar), vis.kpoints

    incar, kp = inputs({}, small)
    for key, value in {"EDIFF": 1e-7, "ENCUT": 520, "LASPH": True, "ISMEAR": 0, "SIGMA": 0.01, "LREAL": False, "PREC": "Accurate",
                       "IBRION": -1, "NSW": 0}.items():
        assert incar[key] == value, key
    assert incar["EDIFF"] <= 1e-7 and incar["ENCUT"] >= 520
    assert not {"EDIFFG", "LMIXTAU", "ENAUG", "LORBIT", "KSPACING", "METAGGA"} & set(incar)
    assert kp.style.name == "Gamma" and list(kp.kpts[0]) == [2, 2, 2]
    # Γ-only from 20 Å of cell width, or when asked
    assert min_width_A(large.lattice.matrix) == pytest.approx(4 * 5.6903)
    assert list(inputs({}, large)[1].kpts[0]) == [1, 1, 1]
    assert list(inputs({"gamma_only": True}, small)[1].kpts[0]) == [1, 1, 1]
    assert list(inputs({"gamma_only_min_width_A": 10.0}, small)[1].kpts[0]) == [1, 1, 1]
    # 400 k-points per Å⁻³ x (2π / 11.38 Å)³ = 67 k-points ~ 4³
    assert list(inputs({"reciprocal_density": 400}, small)[1].kpts[0]) == [4, 4, 4]
    # the width, not the lattice length: a hexagonal cell with a = 22 Å is 19.05 Å wide
    hexa = np.array([[22.0, 0, 0], [-11.0, 11.0 * 3**0.5, 0], [0, 0, 30.0]])
    assert min_width_A(hexa) == pytest.approx(11.0 * 3**0.5)
    # overrides win, a null removes the key
    incar, _ = inputs({"incar": {"encut": 600, "ISPIN": 1, "MAGMOM": None, "NCORE": 4}}, small)
    assert (incar["ENCUT"], incar["ISPIN"], incar["NCORE"]) == (600, 1, 4) and "MAGMOM" not in incar
    assert PHONON_INCAR["EDIFF"] == 1e-7  # the module default is not mutated by an override
    with pytest.warns(UserWarning, match="EDIFF = 1e-05 is looser"):
        VaspSettings(incar={"EDIFF": 1e-5})
    with pytest.raises(ValueError, match="potcar_functional"):
        VaspSettings(potcar_functional="PBE_99")


def test_reference_spec_code_vasp():
    import importlib.util

    from pydantic import ValidationError

    from pftflow.spec.phonons import ReferenceSpec

    good = {"mode": "compute", "code": "vasp", "vasp": {"incar": {"ENCUT": 600}, "run_dir": "x"}}
    if importlib.util.find_spec("atomate2") is None:  # a fresh clone without the vasp extra: one clear error
        with pytest.raises(ValidationError, match=re.escape("pip install 'pftflow[vasp]'")):
            ReferenceSpec(**good)
        return
    ref = ReferenceSpec(**good)
    assert ref.vasp.incar == {"ENCUT": 600} and ref.vasp.key_dict().get("run_dir") is None
    assert ReferenceSpec().code == "ase"
    emt = {"backend": "ase", "import_path": "ase.calculators.emt:EMT"}
    for bad, msg in [
        ({"code": "vasp"}, "needs mode: compute"),
        ({"mode": "compute", "code": "vasp", "calculator": emt}, "'calculator' is not used with code: vasp"),
        ({"mode": "compute", "code": "vasp", "relax": {"steps": 10}}, "'relax' is not used with code: vasp"),
        ({"mode": "compute", "calculator": emt, "vasp": {}}, "only used with code: vasp"),
        ({"mode": "compute", "code": "vasp", "vasp": {"kpoints": 3}}, "Extra inputs are not permitted"),
    ]:
        with pytest.raises(ValidationError, match=re.escape(msg)):
            ReferenceSpec(**bad)


# ------------------------------------------------------------------------------------ force sets
def test_vasp_force_maker_stores_the_vasprun_forces(mock_vasp, nacl, tmp_path):
    from jobflow import Flow

    from pftflow.flows.vasp import VaspForceMaker
    from pftflow.store import make_job_store

    ph, vaspruns = nacl
    structures = _structure_set(ph)
    store = make_job_store(tmp_path / "camp")
    store.connect()
    j = VaspForceMaker().make(structures)
    j.name = "forces NaCl reference"
    j.metadata = {"material_id": "NaCl"}
    _run(Flow([j]), store)
    assert mock_vasp["calls"] == ["forces NaCl reference static 1/2", "forces NaCl reference static 2/2"]
    res = _output(store, j.uuid)  # the launcher's uuid holds the force set (jobflow replace)
    assert type(res).__name__ == "ForceResults" and res.n_structures == 2
    for i, path in enumerate(vaspruns):
        energy, forces, stress_ase, stress_kbar = _vasprun_reference(path)
        np.testing.assert_allclose(res.forces_eV_per_A[i], forces, rtol=0, atol=1e-8)
        assert res.energies_eV[i] == pytest.approx(energy, abs=1e-8)
        # kBar, VASP sign -> eV/Å³, ASE sign: the same numbers as ASE's own vasprun reader
        np.testing.assert_allclose(res.stresses_eV_per_A3[i], stress_ase, rtol=1e-10, atol=1e-14)
        assert res.stresses_eV_per_A3[i][0] == pytest.approx(-stress_kbar[0][0] * 0.1 / 160.21766208, rel=1e-6)
    assert res.forces_eV_per_A[0][0, 0] == pytest.approx(-0.01806194)  # the displaced Na pulls back
    p = res.provenance
    assert (p["code"], p["version"]) == ("vasp", "4.6.35")
    assert p["incar"]["ENCUT"] == 300 and p["incar"]["SIGMA"] == pytest.approx(0.2)  # what VASP ran, from its output
    assert p["potcar_titels"] == ["PAW_PBE Na_pv 05Jan2001", "PAW_PBE Cl 17Jan2003"]
    assert p["potcar_symbols"] == ["Na_pv", "Cl"]
    assert p["kpoints"]["kpoints"] == [[2, 2, 2]] and p["potcar_functional"] == "PBE_54"
    assert [Path(d).parent.name for d in p["dir_names"]] == ["NaCl", "NaCl"]
    assert all((tmp_path / "vasp_runs" / "NaCl").glob("static-00*")) and len(list((tmp_path / "vasp_runs" / "NaCl").iterdir())) == 2


def test_interrupted_force_set_reruns_only_the_missing_static(mock_vasp, nacl, tmp_path):
    from jobflow import Flow

    from pftflow.flows.reuse import stored_jobs
    from pftflow.flows.vasp import VaspForceMaker, static_key
    from pftflow.store import make_job_store

    ph, vaspruns = nacl
    store = make_job_store(tmp_path / "camp")
    store.connect()

    def launcher():
        j = VaspForceMaker().make(_structure_set(ph))
        j.name = "forces NaCl reference"
        j.metadata = {"material_id": "NaCl", "pftflow_key": "force-set-key"}
        return j

    mock_vasp["fail"] = {2}
    first = launcher()
    _run(Flow([first]), store, raise_immediately=False)
    assert mock_vasp["calls"] == ["forces NaCl reference static 1/2", "forces NaCl reference static 2/2"]
    assert set(stored_jobs(store, ["force-set-key", static_key("force-set-key", 0), static_key("force-set-key", 1)])) == {static_key("force-set-key", 0)}
    mock_vasp["calls"].clear()
    again = launcher()
    _run(Flow([again]), store)
    assert mock_vasp["calls"] == ["forces NaCl reference static 2/2"]  # static 1 read from the store
    res = _output(store, again.uuid)
    for i, path in enumerate(vaspruns):
        np.testing.assert_allclose(res.forces_eV_per_A[i], _vasprun_reference(path)[1], rtol=0, atol=1e-8)


def test_collect_refuses_reordered_atoms(atomate2, nacl):
    import warnings

    from pymatgen.io.vasp import Vasprun

    from pftflow.documents import StructureSet
    from pftflow.flows.vasp import collect_vasp_forces

    ph, vaspruns = nacl
    structures = _structure_set(ph)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        v = Vasprun(vaspruns[0], parse_dos=False, parse_eigen=False, parse_potcar_file=False)
    out = {"structure": v.final_structure.as_dict(), "energy": v.final_energy, "forces": v.ionic_steps[-1]["forces"], "stress": v.ionic_steps[-1]["stress"]}
    one = StructureSet(symbols=structures.symbols, masses_amu=structures.masses_amu, cells_A=structures.cells_A[:1], positions_A=structures.positions_A[:1])
    collect = collect_vasp_forces.original
    ok = collect([out], [{"incar": {}, "potcar_spec": []}], ["6.4.3"], ["d"], [None], one, {})
    np.testing.assert_allclose(ok.forces_eV_per_A[0], v.ionic_steps[-1]["forces"], atol=1e-12)
    swapped = one.positions_A.copy()
    swapped[0, [0, 1]] = swapped[0, [1, 0]]  # two Na exchanged: same species list, wrong rows
    bad = StructureSet(symbols=one.symbols, masses_amu=one.masses_amu, cells_A=one.cells_A, positions_A=swapped)
    with pytest.raises(ValueError, match="VASP static 1: site 0 is"):
        collect([out], [{"incar": {}}], ["6.4.3"], ["d"], [None], bad, {})


# ------------------------------------------------------------------------------------ campaign
CAMPAIGN = """
name: nacl-vasp
kind: phonons
store: {{path: {store}}}
materials:
  - id: NaCl
    source: "phonopy example NaCl, POSCAR-unitcell (a = 5.6903 Å)"
    structure:
      cell_A: {cell}
      species: {species}
      frac_coords: {frac}
    supercell_matrix: [2, 2, 2]
    primitive_matrix: [[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]
reference: {{mode: compute, code: vasp}}
models:
  - {{backend: ase, name: LJ, import_path: "ase.calculators.lj:LennardJones", kwargs: {{sigma: 2.5, epsilon: 0.01, rc: 6.0}}}}
settings:
  phonons: {{mesh: [4, 4, 4], band_npoints: 5, subtract_drift: false, symmetrize_fc: false}}
  relax_models: false
"""


def test_phonons_campaign_with_vasp_reference(mock_vasp, nacl, tmp_path):
    """reference {mode: compute, code: vasp} swaps only the force sub-maker: the reference force
    constants equal phonopy's own from the vasprun.xml forces."""
    from monty.json import MontyDecoder

    from pftflow.results import load_results
    from pftflow.run import run_campaign
    from pftflow.spec import load_spec
    from pftflow.store import make_job_store

    ph, vaspruns = nacl
    uc = ph.unitcell
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(textwrap.dedent(CAMPAIGN).format(
        store=tmp_path / "camp", cell=np.round(uc.cell, 12).tolist(), species=list(uc.symbols), frac=np.round(uc.scaled_positions, 12).tolist(),
    ))
    spec = load_spec(spec_path)
    summary = run_campaign(spec, progress=False, plots=False)
    assert summary.failed_jobs == 0, summary.text()
    assert mock_vasp["calls"] == ["forces NaCl reference static 1/2", "forces NaCl reference static 2/2"]

    ph.forces = [_vasprun_reference(p)[1] for p in vaspruns]
    ph.produce_force_constants()
    store = make_job_store(tmp_path / "camp")
    store.connect()
    doc = store.query_one({"metadata.stage": "analysis", "metadata.model": "reference"}, properties=["uuid"])
    ana = MontyDecoder().process_decoded(store.get_output(doc["uuid"], which="last", load=True))
    assert not ana.failed, ana.error
    fc = np.asarray(ph.force_constants)
    np.testing.assert_allclose(ana.force_constants_eV_per_A2, fc[ana.p2s_map] if fc.shape[0] != len(ana.p2s_map) else fc, rtol=0, atol=1e-8)
    forces_doc = store.query_one({"metadata.stage": "forces", "metadata.model": "reference", "name": "forces NaCl reference"}, properties=["uuid"])
    assert _output(store, forces_doc["uuid"]).provenance["code"] == "vasp"
    rows = load_results(spec)["rows"]
    assert [(r["material_id"], r["model"]) for r in rows] == [("NaCl", "LJ")]
    assert rows[0]["omega_max_K_ref"] > 100  # NaCl's optical modes (~5 THz ~ 240 K) from the VASP forces

    # a second run reuses everything: no VASP call
    mock_vasp["calls"].clear()
    again = run_campaign(load_spec(spec_path), progress=False, plots=False)
    assert again.failed_jobs == 0 and mock_vasp["calls"] == [] and again.reused["reference"] == ["NaCl"]
