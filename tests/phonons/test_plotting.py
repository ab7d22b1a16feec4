"""Band-structure overlay and parity plots (pftflow.phonons.plotting): files written, and what is
drawn — labels, legend, axis units, imaginary modes below zero, the colours in the PNG."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from pftflow.phonons.harmonic import PhononSettings, analyze_phonons, band_path
from pftflow.phonons.plotting import band_overlay_figure, band_ticks, plot_band_overlay, plot_parity, pretty_label

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def al_bands(al_emt_phonopy):
    """Reference bands of fcc Al (EMT; no reference data needed) and two models on the same
    q-path: all frequencies x0.85, and one whose lowest branch turns imaginary (down to -2 THz)
    at the path end."""
    ph = al_emt_phonopy()
    path = band_path(ph, 21)
    ref = analyze_phonons(ph, PhononSettings(mesh=[4, 4, 4]), band_path_spec=path, with_dos=False)
    soft = copy.deepcopy(ref.band_structure)
    soft["frequencies_THz"] = [(0.85 * np.asarray(f)).tolist() for f in soft["frequencies_THz"]]
    unstable = copy.deepcopy(ref.band_structure)
    f = np.asarray(unstable["frequencies_THz"][-1])
    f[-5:, 0] = [-0.5, -1.0, -1.5, -2.0, -1.5]
    unstable["frequencies_THz"][-1] = f.tolist()
    return ref, soft, unstable


def test_pretty_labels():
    assert pretty_label("GAMMA") == "Γ"
    assert pretty_label("G") == "Γ"
    assert pretty_label("$\\Gamma$") == "Γ"
    assert pretty_label("$\\mathrm{X}$") == "X"
    assert pretty_label("K") == "K"


def test_band_ticks_follow_phonopy_label_convention(al_bands):
    ref, _, _ = al_bands
    bs = ref.band_structure
    ticks, labels = band_ticks(bs)
    # seekpath's fcc path with one break (U|K)
    assert labels == ["Γ", "X", "U|K", "Γ", "L", "W", "X"]
    assert len(ticks) == len(bs["distances"]) + 1
    assert ticks[0] == 0.0 and np.all(np.diff(ticks) >= 0)


def test_band_overlay_figure_contents(al_bands):
    ref, soft, unstable = al_bands
    fig, ax = band_overlay_figure(ref, {"soft": soft, "unstable": unstable}, title="Al")
    assert ax.get_ylabel() == "Frequency (THz)"
    assert ax.get_title() == "Al"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Γ", "X", "U|K", "Γ", "L", "W", "X"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["soft", "unstable", "reference"]
    lo, hi = ax.get_ylim()
    assert lo < -2.0 < 0.0  # the imaginary branch (-2 THz) is shown below zero
    assert hi > np.max(np.concatenate([np.ravel(f) for f in ref.band_structure["frequencies_THz"]]))
    # one line per band and segment for each curve set; the reference's black ones drawn last (on top)
    data_lines = [ln for ln in ax.get_lines() if len(ln.get_xdata()) > 2]
    n = 3 * len(ref.band_structure["distances"])  # 3 bands (one atom per primitive cell)
    assert len(data_lines) == 3 * n
    assert {ln.get_color() for ln in data_lines[-n:]} == {"black"}
    assert "black" not in {ln.get_color() for ln in data_lines[:-n]}
    # without imaginary modes the axis starts just below 0
    _, ax2 = band_overlay_figure(ref, {"soft": soft})
    assert -1.0 < ax2.get_ylim()[0] < 0.0


def test_band_overlay_png(al_bands, tmp_path):
    from matplotlib.colors import to_rgb
    from matplotlib.image import imread

    ref, soft, unstable = al_bands
    out = plot_band_overlay(ref, {"soft": soft}, tmp_path / "plots" / "al_bands.png", title="Al (EMT): reference vs model")
    assert out.read_bytes()[:8] == PNG_MAGIC
    img = imread(out)[..., :3]
    assert img.shape[0] > 400 and img.shape[1] > 800
    black = np.all(img < 0.15, axis=-1).sum()
    c0 = np.array(to_rgb("C0"))  # the first model's colour
    blue = np.all(np.abs(img - c0) < 0.08, axis=-1).sum()
    assert black > 2000 and blue > 2000, (black, blue)


def test_band_overlay_accepts_results_and_dicts(al_bands, tmp_path):
    ref, soft, _ = al_bands
    p1 = plot_band_overlay(ref.model_dump(), {"soft": soft}, tmp_path / "a.png")
    p2 = plot_band_overlay(ref.band_structure, {}, tmp_path / "b.png")
    assert p1.stat().st_size > 10_000 and p2.stat().st_size > 10_000


def test_band_overlay_rejects_other_path(al_bands, tmp_path):
    ref, soft, _ = al_bands
    short = copy.deepcopy(soft)
    short["frequencies_THz"][0] = short["frequencies_THz"][0][:-1]
    with pytest.raises(ValueError, match="model 'short': band path differs"):
        plot_band_overlay(ref, {"short": short}, tmp_path / "x.png")
    no_bands = copy.deepcopy(ref)
    no_bands.band_structure = None
    with pytest.raises(ValueError, match="no band structure"):
        plot_band_overlay(no_bands, {}, tmp_path / "y.png")


def test_parity_plot(tmp_path):
    rows = [
        {"material_id": "mp-1", "model": "a", "omega_max_K": 700.0, "omega_max_K_ref": 725.0},
        {"material_id": "mp-2", "model": "a", "omega_max_K": 170.0, "omega_max_K_ref": 165.0},
        {"material_id": "mp-1", "model": "b", "omega_max_K": 760.0, "omega_max_K_ref": 725.0},
        {"material_id": "mp-3", "model": "b", "failed": True},
        {"material_id": "mp-4", "model": "b", "omega_max_K": None, "omega_max_K_ref": 300.0},
    ]
    out = plot_parity(rows, "omega_max_K", tmp_path / "parity.png", unit="K")
    assert out.read_bytes()[:8] == PNG_MAGIC and out.stat().st_size > 10_000
    with pytest.raises(ValueError, match="no rows with both"):
        plot_parity(rows[3:], "omega_max_K", tmp_path / "none.png")
