"""Plots of benchmark results (matplotlib, Agg backend: no display needed).

* :func:`plot_band_overlay` — reference band structure (black) and each model's (coloured) on the
  same q-path, frequencies in THz, imaginary modes drawn as negative frequencies.
* :func:`plot_parity` — model vs reference scatter of one per-material quantity (e.g. ω_max).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping

import numpy as np

_GAMMA_NAMES = {"G", "GAMMA", "Γ", r"\Gamma", r"$\Gamma$"}


def _agg_figure(figsize):
    """A figure on the Agg canvas, independent of pyplot's global backend and state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots()


def _colors() -> list:
    import matplotlib

    return matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]


def _bands_dict(x, which: str) -> dict:
    """The band-structure dict of a PhononResult, its as_dict() form, or a band-structure dict."""
    from pftflow.phonons.harmonic import PhononResult

    if isinstance(x, PhononResult):
        bs = x.band_structure
    elif isinstance(x, Mapping) and "frequencies_THz" in x and "distances" in x:
        bs = x
    elif isinstance(x, Mapping) and "band_structure" in x:
        bs = PhononResult.model_validate({k: v for k, v in x.items() if not str(k).startswith("@")}).band_structure  # a stored / dumped PhononResult
    else:
        raise TypeError(f"{which}: expected a PhononResult or dict, got {type(x).__name__}")
    if not bs:
        raise ValueError(f"{which}: no band structure (run analyze_phonons with with_bands=True)")
    return bs


def pretty_label(label: str) -> str:
    """High-symmetry label for an axis tick: GAMMA/G/\\Gamma -> Γ, ``$\\mathrm{X}$`` -> X."""
    s = str(label).strip()
    if s in _GAMMA_NAMES or s.upper() == "GAMMA":
        return "Γ"
    m = re.fullmatch(r"\$\\mathrm\{(.*)\}\$", s)
    if m:
        s = m.group(1)
    s = s.replace(r"$\Gamma$", "Γ").replace(r"\Gamma", "Γ")
    return s


def band_ticks(bands: Mapping) -> tuple[list[float], list[str]]:
    """Tick positions (path distance) and labels at segment ends; breaks shown as ``U|K``.

    Labels follow phonopy's convention: one label per segment start of a new (disconnected) piece
    and one per segment end, so ``len(labels) == n_segments + 1 + number of breaks``.
    """
    dists = [np.asarray(d, dtype=float) for d in bands["distances"]]
    labels = list(bands.get("labels") or [])
    conns = list(bands.get("path_connections") or [True] * (len(dists) - 1) + [False])
    ticks = [float(dists[0][0])] + [float(d[-1]) for d in dists]
    n_breaks = sum(1 for c in conns[:-1] if not c)
    if len(labels) != len(dists) + 1 + n_breaks:
        return ticks, [""] * len(ticks)
    out = [pretty_label(labels[0])]
    li = 1
    for i in range(len(dists)):
        lab = pretty_label(labels[li])
        li += 1
        if i < len(dists) - 1 and not conns[i]:
            lab = f"{lab}|{pretty_label(labels[li])}"
            li += 1
        out.append(lab)
    return ticks, out


def _plot_segments(ax, dists, freqs, *, label: str, **kw) -> None:
    """All bands of all segments in one style; one legend entry."""
    first = True
    for d, f in zip(dists, freqs):
        for line in ax.plot(d, f, **kw):
            if first:
                line.set_label(label)
                first = False


def band_overlay_figure(reference, models: Mapping[str, object], title: str | None = None):
    """The figure of :func:`plot_band_overlay` (matplotlib ``Figure`` on an Agg canvas, and its axes)."""
    ref = _bands_dict(reference, "reference")
    ref_d = [np.asarray(d, dtype=float) for d in ref["distances"]]
    ref_f = [np.asarray(f, dtype=float) for f in ref["frequencies_THz"]]
    model_f: dict[str, list[np.ndarray]] = {}
    for name, res in models.items():
        bs = _bands_dict(res, f"model {name!r}")
        fs = [np.asarray(f, dtype=float) for f in bs["frequencies_THz"]]
        if len(fs) != len(ref_f) or any(a.shape[0] != b.shape[0] for a, b in zip(fs, ref_f)):
            raise ValueError(
                f"model {name!r}: band path differs from the reference "
                f"({[len(a) for a in fs]} points per segment vs {[len(b) for b in ref_f]})"
            )
        model_f[name] = fs

    fig, ax = _agg_figure((8.0, 4.5))
    colors = _colors()
    # models first, reference on top: where a model agrees, the black line covers it
    for k, (name, fs) in enumerate(model_f.items()):
        _plot_segments(ax, ref_d, fs, color=colors[k % len(colors)], lw=1.3, label=name)
    _plot_segments(ax, ref_d, ref_f, color="black", lw=1.0, label="reference")

    ticks, tick_labels = band_ticks(ref)
    for x in ticks:
        ax.axvline(x, color="0.7", lw=0.6, zorder=0)
    ax.set_xticks(ticks)
    ax.set_xticklabels(tick_labels)
    ax.set_xlim(ticks[0], ticks[-1])
    ax.axhline(0.0, color="0.5", lw=0.6, ls="--", zorder=0)
    all_f = np.concatenate([np.ravel(f) for f in ref_f] + [np.ravel(f) for fs in model_f.values() for f in fs])
    lo, hi = float(min(all_f.min(), 0.0)), float(all_f.max())
    pad = 0.05 * (hi - lo if hi > lo else 1.0)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_ylabel("Frequency (THz)")
    if title:
        ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    return fig, ax


def plot_band_overlay(
    reference,
    models: Mapping[str, object],
    path: str | os.PathLike,
    title: str | None = None,
    *,
    dpi: int = 150,
) -> Path:
    """PNG of the reference phonon bands (black) with each model's bands (coloured) on top.

    ``reference`` and the values of ``models`` are :class:`PhononResult` objects, their
    ``as_dict()`` or band-structure dicts (``distances``, ``frequencies_THz``, ``qpoints``,
    ``labels``, ``path_connections``) on the same q-path.  The x axis is the reference's path
    distance (a model with a relaxed cell is drawn at the same fractional q-points), ticks at the
    high-symmetry points (Γ for GAMMA).  Imaginary modes appear as negative frequencies (THz).
    Raises ``ValueError`` if a model's path has a different number of segments or points.
    Returns the written path.
    """
    fig, _ = band_overlay_figure(reference, models, title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def plot_parity(
    rows: list[dict],
    quantity: str,
    path: str | os.PathLike,
    *,
    title: str | None = None,
    unit: str | None = None,
    dpi: int = 150,
) -> Path:
    """Model vs reference scatter of ``quantity`` over materials, one colour per model.

    ``rows`` are :func:`pftflow.phonons.metrics.material_metrics` rows (with ``model`` and
    ``material_id``); the reference value is read from ``quantity + "_ref"`` (e.g. ``omega_max_K``
    and ``omega_max_K_ref``).  Failed rows and rows without both values are skipped.  Draws the
    y = x line; the legend gives each model's MAE.  Returns the written path.
    """
    ref_key = f"{quantity}_ref"
    by_model: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        if r.get("failed") or r.get(quantity) is None or r.get(ref_key) is None:
            continue
        x, y = float(r[ref_key]), float(r[quantity])
        if np.isfinite(x) and np.isfinite(y):
            by_model.setdefault(str(r.get("model", "model")), []).append((x, y))
    if not by_model:
        raise ValueError(f"no rows with both '{quantity}' and '{ref_key}'")
    fig, ax = _agg_figure((4.8, 4.5))
    allv = []
    for name, pts in by_model.items():
        a = np.array(pts)
        allv.append(a.ravel())
        mae = float(np.abs(a[:, 1] - a[:, 0]).mean())
        ax.scatter(a[:, 0], a[:, 1], s=18, label=f"{name} (MAE {mae:.3g}, n={len(a)})")
    v = np.concatenate(allv)
    lo, hi = float(v.min()), float(v.max())
    pad = 0.05 * (hi - lo if hi > lo else max(abs(hi), 1.0))
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="black", lw=0.8)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_aspect("equal")
    u = f" ({unit})" if unit else ""
    ax.set_xlabel(f"reference {quantity}{u}")
    ax.set_ylabel(f"model {quantity}{u}")
    if title:
        ax.set_title(title)
    ax.legend(loc="upper left", fontsize=7, frameon=False)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path
