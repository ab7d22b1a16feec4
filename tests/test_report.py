"""``pftflow report``: index.md, a self-contained index.html and PNG plots, from the store only.

The campaign is the EMT one of tests/test_results.py (EMT-same reproduces the reference, ``broken``
fails on both materials): the report's tables must hold the numbers of :func:`pftflow.results.load`,
the failed pairs with their reason, and the HTML must reference only files that exist.  The κ,
fine-tuning and error-vs-N parts are checked on hand-made rows with known means.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from pftflow.results import load
from pftflow.spec import load_spec

_spec = importlib.util.spec_from_file_location("_pftflow_test_results", Path(__file__).with_name("test_results.py"))
_results_tests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_results_tests)
campaign = _results_tests.campaign  # the EMT campaign with a failing model, run once for this module
REASON = _results_tests.REASON

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def check_png(path: Path, min_px: int = 300) -> None:
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == PNG_MAGIC, path
    img = imread(path)
    assert min(img.shape[:2]) >= min_px, (path, img.shape)
    assert img[..., :3].std() > 0.05, f"{path} looks blank"  # not a single colour


def md_rows(md: str, section: str) -> list[list[str]]:
    """Cells of the first table under the ``### section`` heading of index.md."""
    part = md.split(f"### {section}\n", 1)[1].split("\n#", 1)[0]
    lines = [ln for ln in part.splitlines() if ln.startswith("|")]
    return [[c.strip() for c in ln.strip("|").split(" | ")] for ln in lines[2:]]


@pytest.fixture(scope="module")
def report(campaign, tmp_path_factory):
    from pftflow.report import write_report

    _, p = campaign
    return write_report(load_spec(p), tmp_path_factory.mktemp("report") / "out")


def test_report_writes_markdown_html_and_pngs(report):
    assert report.index_md.is_file() and report.index_html.is_file()
    names = sorted(p.relative_to(report.out_dir).as_posix() for p in report.pngs)
    assert names == ["emt-report/Al_bands.png", "emt-report/Cu_bands.png", "emt-report/parity.png"]
    for p in report.pngs:
        check_png(p)
    assert report.notes == []
    assert report.campaigns == ["emt-report"]


def test_html_is_self_contained_and_references_only_existing_files(report):
    page = report.index_html.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page and "<script" not in page
    refs = re.findall(r'(?:src|href)="([^"]+)"', page)
    files = [r for r in refs if not r.startswith("#")]
    assert sorted(files) == sorted(p.relative_to(report.out_dir).as_posix() for p in report.pngs)
    for r in files:
        assert not r.startswith(("/", "http:", "https:", "file:")) and (report.out_dir / r).is_file(), r
    anchors = {r[1:] for r in refs if r.startswith("#")}
    ids = set(re.findall(r'id="([^"]+)"', page))
    assert anchors and anchors <= ids  # every navigation link lands on a heading
    md = report.index_md.read_text()
    assert sorted(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)) == sorted(files)


def test_tables_hold_the_numbers_of_results_load(campaign, report):
    from pftflow.report import fmt

    _, p = campaign
    df = load(p)
    md = report.index_md.read_text()
    page = report.index_html.read_text()
    per_material = {(r[0], r[1]): r for r in md_rows(md, "Per material")}
    assert set(per_material) == set(zip(df.material_id, df.model))
    bands = {(r[0], r[1]): r for r in md_rows(md, "Band errors")}
    for rec in df[df.status == "ok"].to_dict("records"):
        row = per_material[(rec["material_id"], rec["model"])]
        assert row[2] == fmt(rec["omega_max_K_ref"], "omega_max_K_ref") and row[3] == fmt(rec["omega_max_K"], "omega_max_K")
        assert float(row[2]) > 100 and row[2] == row[3]  # the identical model reproduces the reference
        assert row[5] == fmt(rec["entropy_error_300K_J_per_K_mol"], "entropy_error_300K_J_per_K_mol")
        assert bands[(rec["material_id"], rec["model"])][2] == fmt(rec["mesh_mae_THz"], "mesh_mae_THz") == "0.000"
        assert f"<td class=\"n\">{row[3]}</td>" in page
    # MDR summary: the identical model has zero errors over 2 materials, the broken one failed on both
    summary = {r[0]: r for r in md_rows(md, "MDR metrics per model")}
    assert summary["EMT-same"][1:5] == ["2", "0", "0", "0.0"]
    assert summary["broken"][1:4] == ["0", "2", "0"]
    # the failed pairs with stage and reason
    failures = md_rows(md, "Failed and missing")
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in failures] == [(m, "broken", "failed", "forces", REASON) for m in ("Cu", "Al")]
    assert "2 ok, 2 failed, 0 missing" in md
    assert "Error vs number of training structures" not in md  # no fine-tuning: skipped, no note needed
    assert not (report.out_dir / "error_vs_n.png").exists()


def test_cli_report_from_spec_and_from_store_folder(campaign, tmp_path, capsys):
    from pftflow.cli import main

    root, p = campaign
    assert main(["report", str(p), "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert f"report: {tmp_path / 'r' / 'index.html'}" in out and "3 PNG(s)" in out
    assert main(["report", str(root / "camp")]) == 0  # a store folder: default <store>/report
    assert (root / "camp" / "report" / "index.html").is_file()
    assert (root / "camp" / "report" / "emt-report" / "parity.png").is_file()
    assert main(["report", str(root / "camp"), "--campaign", "nope"]) == 2
    assert "no campaign named 'nope'" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ κ, fine-tuning, N
def test_kappa_section_and_log_scatter(tmp_path):
    from pftflow.phonons.plotting import plot_kappa_parity
    from pftflow.report import _kappa_sections, render_markdown

    rows = [
        {"material_id": "mp-1", "name": "NaCl", "model": "A", "kappa_W_per_mK": 8.0, "kappa_dft_W_per_mK": 6.0, "srd": 0.2857, "sre": 0.2857,
         "srme": 0.4, "failed": False, "status": "ok"},
        {"material_id": "mp-2", "name": "CuI", "model": "A", "kappa_W_per_mK": 0.5, "kappa_dft_W_per_mK": 1.0, "srd": -0.6667, "sre": 0.6667,
         "srme": 0.9, "failed": False, "status": "ok"},
        {"material_id": "mp-3", "name": "ZnS", "model": "A", "kappa_W_per_mK": None, "kappa_dft_W_per_mK": 20.0, "srd": -2.0, "sre": 2.0,
         "srme": 2.0, "failed": True, "status": "failed", "reason": "imaginary_modes"},
    ]
    notes: list[str] = []
    secs = _kappa_sections(SimpleNamespace(name="k", model_names=["A"]), rows, tmp_path, "k", notes)
    md = render_markdown("t", "m", secs, notes)
    # mean over 3 materials, the failure counting 2 (k_SRME): SRE (0.2857 + 0.6667 + 2) / 3, SRME (0.4 + 0.9 + 2) / 3
    assert "| A | 3 | 1 | 0 | 0.984 | 1.100 |" in md
    check_png(tmp_path / "k" / "kappa.png")
    with pytest.raises(ValueError, match="no rows with positive"):
        plot_kappa_parity(rows[2:], tmp_path / "none.png")


def _ft_row(model, strategy, n, mid, err_w, err_s):
    return {"campaign": "ft", "kind": "finetune", "material_id": mid, "model": model, "strategy": strategy, "n_train_structures": n,
            "status": "ok", "failed": False, "omega_max_abs_error_K": err_w, "entropy_abs_error_300K_J_per_K_mol": err_s,
            "mesh_mae_THz": 0.1 * err_w}


def test_before_after_and_error_vs_n(tmp_path, monkeypatch):
    from pftflow.phonons.plotting import plot_error_vs_n
    from pftflow.report import _error_vs_n, _finetune_blocks, _images

    rows = [_ft_row("base", "base", 0, "Si", 100.0, 4.0), _ft_row("base-pft", "full", 12, "Si", 60.0, 3.0),
            _ft_row("base", "base", 0, "Ge", 50.0, 2.0), _ft_row("base-pft", "full", 12, "Ge", 40.0, 2.5)]
    table = _finetune_blocks(None, rows, {"train": None})[0]
    si = {r[1]: r for r in table.rows if r[0] == "Si"}
    assert si["|Δω_max| [K]"][2:] == ["100.0", "60.0", "-40", "-40.0 %"]
    notes: list[str] = []
    sec = _error_vs_n(rows, tmp_path, notes)
    assert notes == [] and [im.src for im in _images([sec])] == ["error_vs_n.png"]
    check_png(tmp_path / "error_vs_n.png", min_px=200)
    # the plotted means: N = 0 -> (100 + 50) / 2 = 75 K, N = 12 -> (60 + 40) / 2 = 50 K
    seen = {}

    def spy(points, path, metrics, **kw):
        seen.update({(p["series"], p["n"]): p["omega_max_abs_error_K"] for p in points})
        return plot_error_vs_n(points, path, metrics, **kw)

    monkeypatch.setattr("pftflow.report.plot_error_vs_n", spy)
    _error_vs_n(rows, tmp_path, [])
    monkeypatch.undo()
    assert seen == {("full", 0): pytest.approx(75.0), ("full", 12): pytest.approx(50.0)}
    # one N only (no base model rows): skipped with a reason, no plot
    with pytest.raises(ValueError, match="at least two numbers"):
        plot_error_vs_n([{"series": "full", "n": 12, "x": 1.0}], tmp_path / "x.png", [("x", "x")])
    notes = []
    sec = _error_vs_n(rows[1::2], tmp_path / "one", notes)
    assert _images([sec]) == [] and "not drawn" in notes[0] and not (tmp_path / "one" / "error_vs_n.png").exists()
    assert _error_vs_n([dict(r, kind="phonons") for r in rows], tmp_path, []) is None  # not a fine-tuning campaign


def test_parity_panels_need_values():
    from pftflow.phonons.plotting import plot_parity_panels

    with pytest.raises(ValueError, match="no rows with model and reference values"):
        plot_parity_panels([{"model": "m", "material_id": "x", "failed": True, "omega_max_K": 1.0, "omega_max_K_ref": 1.0}], "unused.png")


def test_results_and_report_carry_provenance(campaign, report):
    """Every row (JSON too) names the code, packages, CPU and BLAS kernel that computed it, and the report shows
    them; from the analysis documents (issue 17)."""
    import json

    from pftflow.provenance import environment
    from pftflow.results import format_results, load_results

    _, p = campaign
    res = load_results(load_spec(p))
    here = environment()
    ok = [r for r in res["rows"] if not r.get("failed")]
    assert ok
    for r in ok:
        assert r["provenance_source"] == "analysis"
        assert r["pftflow_version"] == here["pftflow"] and r["cpu"] == here["cpu"]
        assert r["versions"]["phonopy"] == here["versions"]["phonopy"]
        assert r["blas"] and r["git_commit"] == (here["git_commit"] and here["git_commit"] + ("+dirty" if here["git_dirty"] else ""))
        assert r["model_sha256"] is None  # EMT has no weights file
    rows = json.loads(format_results(res, "json"))["rows"]
    assert all(k in rows[0] for k in ("model_sha256", "git_commit", "versions", "cpu", "blas"))
    md = report.index_md.read_text()
    cells = md_rows(md, "Provenance")
    assert cells and any(here["cpu"] in c for c in cells[0])
    assert "Provenance" in report.index_html.read_text()


def test_docs_list_every_column_with_its_unit():
    from pftflow.report import columns_markdown
    from pftflow.results import COLUMNS

    doc = (Path(__file__).resolve().parents[1] / "docs" / "report.md").read_text()
    assert columns_markdown() in doc, "docs/report.md: paste pftflow.report.columns_markdown() under '### Columns'"
    assert len(COLUMNS) > 50 and "| `kappa_W_per_mK` | W/m/K |" in doc


def test_dataset_report_shows_the_set_statistics_of_load(tmp_path, monkeypatch):
    """A toy dataset campaign (EMT labels of rattled Cu): the set table holds load()'s counts and
    statistics, and the energies are those of EMT on the stored structures (mean over 3 structures)."""
    from pftflow.flows.dataset import load_labelled_sets
    from pftflow.report import fmt, write_report
    from pftflow.run import open_store, run_campaign
    from pftflow.spec import parse_spec

    monkeypatch.chdir(tmp_path)
    h = 3.61 / 2
    spec = parse_spec({
        "name": "ds-report", "kind": "dataset", "store": {"path": str(tmp_path / "camp")},
        "materials": [{"id": "Cu", "structure": {"cell_A": [[0, h, h], [h, 0, h], [h, h, 0]], "species": ["Cu"], "frac_coords": [[0, 0, 0]]}}],
        "supercell": {"min_length_A": 7.0, "max_atoms": 64},
        "sampling": [{"kind": "rattle", "n_structures": 3, "amplitude_A": 0.05, "seed": 1}],
        "labeller": {"backend": "ase", "name": "EMT", "import_path": "ase.calculators.emt:EMT"},
    })
    assert run_campaign(spec, progress=False, plots=False).failed_jobs == 0
    df = load(spec)
    assert list(zip(df.material_id, df.model, df.variant, df.n_structures)) == [("Cu", "EMT", "rattle", 3)]
    store = open_store(spec)
    try:
        (labelled,) = load_labelled_sets(spec, store)
    finally:
        store.close()
    from ase.calculators.emt import EMT

    energies = []
    for a in labelled.to_atoms():
        a.calc = EMT()
        energies.append(a.get_potential_energy() / len(a))
    assert df.energy_mean_eV_per_atom[0] == pytest.approx(sum(energies) / 3, abs=1e-10)
    rep = write_report(spec, tmp_path / "r")
    row = md_rows(rep.index_md.read_text(), "Set statistics")[0]
    assert row[:6] == ["Cu", "rattle", "rattle", "EMT", "3", str(int(df.n_atoms[0]))]
    assert row[6] == fmt(df.energy_mean_eV_per_atom[0], "energy_mean_eV_per_atom")
    assert row[8] == fmt(df.force_rms_eV_per_A[0], "force_rms_eV_per_A") and float(row[8]) > 0
    assert rep.pngs == [] and "1 set: 1 ok, 0 failed, 0 missing" in rep.index_md.read_text()
