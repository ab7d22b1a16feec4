"""Plots of benchmark results (matplotlib, Agg backend: no display needed).

* :func:`plot_band_overlay` — reference band structure (black) and each model's (coloured) on the
  same q-path, frequencies in THz, imaginary modes drawn as negative frequencies.
* :func:`plot_parity` — model vs reference scatter of one per-material quantity (e.g. ω_max).
* :func:`plot_parity_panels` — one panel per quantity (ω_max, S, F, C_V at 300 K), for ``pftflow report``.
* :func:`plot_kappa_parity` — κ model vs DFT on log axes.
* :func:`plot_error_vs_n` — error against the number of fine-tuning structures.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping

import numpy as np

from pftflow.phonons.harmonic import PhononResult

_GAMMA_NAMES = {"G", "GAMMA", "Γ", r"\Gamma", r"$\Gamma$"}


def _agg_figure(figsize):
    """A figure on the Agg canvas, independent of pyplot's global backend and state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots()


def save_figure(fig, path: str | os.PathLike, dpi: int) -> Path:
    """Write ``fig`` to ``path`` (its folder created) at ``dpi``; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def _colors() -> list:
    import matplotlib

    return matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]


def _bands_dict(x, which: str) -> dict:
    """The band-structure dict of a PhononResult, its as_dict() form, or a band-structure dict."""
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
    return save_figure(fig, path, dpi)


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
    return save_figure(fig, path, dpi)


# ------------------------------------------------------------------------------------ report plots
#: the MDR thermal quantities of :func:`plot_parity_panels` (row field, panel title, unit)
PARITY_QUANTITIES = [
    ("omega_max_K", "maximum frequency ω_max", "K"),
    ("entropy_300K_J_per_K_mol", "entropy S at 300 K", "J/K/mol"),
    ("free_energy_300K_kJ_per_mol", "free energy F at 300 K", "kJ/mol"),
    ("heat_capacity_300K_J_per_K_mol", "heat capacity C_V at 300 K", "J/K/mol"),
]


def _model_colors(names) -> dict:
    colors = _colors()
    return {n: colors[i % len(colors)] for i, n in enumerate(dict.fromkeys(names))}


def _ok_pairs(rows, x_key: str, y_key: str) -> dict[str, list[tuple[float, float, str]]]:
    """``{model: [(x, y, material_id)]}`` of rows not failed and with finite x and y."""
    out: dict[str, list[tuple[float, float, str]]] = {}
    for r in rows:
        x, y = r.get(x_key), r.get(y_key)
        if r.get("failed") or x is None or y is None:
            continue
        try:
            x, y = float(x), float(y)
        except (TypeError, ValueError):
            continue
        if np.isfinite(x) and np.isfinite(y):
            out.setdefault(str(r.get("model", "model")), []).append((x, y, str(r.get("material_id", ""))))
    return out


def _annotate(ax, by_model: dict, max_labels: int = 12) -> None:
    """Material ids next to the points, once per material (beside its lowest point, in grey), when
    there are at most ``max_labels`` materials."""
    lowest: dict[str, tuple[float, float]] = {}
    for pts in by_model.values():
        for x, y, label in pts:
            if label not in lowest or y < lowest[label][1]:
                lowest[label] = (x, y)
    if len(lowest) > max_labels:
        return
    for label, (x, y) in lowest.items():
        ax.annotate(label, (x, y), xytext=(5, -11), textcoords="offset points", fontsize=7.5, color="0.25")


def plot_parity_panels(
    rows: list[dict],
    path: str | os.PathLike,
    quantities=PARITY_QUANTITIES,
    *,
    title: str | None = None,
    dpi: int = 130,
) -> Path:
    """One PNG with a model vs reference parity panel per quantity (default ω_max, S, F and C_V at
    300 K, as MDR): one colour per model (same in every panel), the y = x line, each model's MAE in
    the panel, material ids next to the points when there are few.

    ``rows``: result rows with ``model``, ``material_id``, ``<field>`` and ``<field>_ref``
    (:func:`pftflow.results.load` records or :func:`pftflow.phonons.metrics.material_metrics` rows);
    failed rows and missing values are left out.  ``quantities``: ``(field, title, unit)``.
    ValueError when no row has a value for any quantity.  Returns the written path."""
    panels = [(q, t, u, _ok_pairs(rows, f"{q}_ref", q)) for q, t, u in quantities]
    panels = [p for p in panels if p[3]]
    if not panels:
        raise ValueError("no rows with model and reference values of " + ", ".join(q for q, _, _ in quantities))
    colors = _model_colors(m for _, _, _, by in panels for m in by)
    n = len(panels)
    ncols = 2 if n > 1 else 1
    nrows = (n + ncols - 1) // ncols
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.3 * ncols, 4.1 * nrows + 0.5))
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
    for ax, (q, t, u, by_model) in zip(axes, panels):
        v = np.array([c for pts in by_model.values() for x, y, _ in pts for c in (x, y)])
        lo, hi = float(v.min()), float(v.max())
        pad = 0.08 * (hi - lo if hi > lo else max(abs(hi), 1.0))
        lim = (lo - pad, hi + pad)
        ax.plot(lim, lim, color="0.3", lw=0.8, zorder=0)
        text = []
        for name, pts in by_model.items():
            a = np.array([(x, y) for x, y, _ in pts])
            ax.scatter(a[:, 0], a[:, 1], s=28, color=colors[name], edgecolor="white", linewidth=0.5, zorder=2)
            text.append((f"{name}: MAE {np.abs(a[:, 1] - a[:, 0]).mean():.3g} {u}", colors[name]))
        # the MAE lines go into the emptier corner: upper left (model > reference) or lower right
        frac = (v.reshape(-1, 2) - lim[0]) / (lim[1] - lim[0])
        upper = int(np.sum(frac[:, 1] > frac[:, 0])) <= int(np.sum(frac[:, 1] < frac[:, 0]))
        _annotate(ax, by_model)
        for i, (s, c) in enumerate(text):
            y = 0.97 - 0.07 * i if upper else 0.03 + 0.07 * (len(text) - 1 - i)
            ax.text(0.03 if upper else 0.97, y, s, transform=ax.transAxes, fontsize=7.5, color=c, va="top" if upper else "bottom",
                    ha="left" if upper else "right", bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1.0}, zorder=3)
        ax.set_xlim(lim)
        ax.set_ylim(lim)
        ax.set_aspect("equal")
        ax.set_title(t, fontsize=10)
        ax.set_xlabel(f"reference ({u})", fontsize=9)
        ax.set_ylabel(f"model ({u})", fontsize=9)
        ax.tick_params(labelsize=8)
    for ax in axes[n:]:
        ax.set_visible(False)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="o", ls="", color=c, label=m) for m, c in colors.items()]
    handles.append(Line2D([], [], color="0.3", lw=0.8, label="y = x"))
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 5), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return save_figure(fig, path, dpi)


def plot_kappa_parity(rows: list[dict], path: str | os.PathLike, *, title: str | None = None, dpi: int = 130) -> Path:
    """κ of each model vs the DFT κ on log axes (W/m/K): one colour per model, the y = x line and
    the factor-2 band (dashed), each model's mean SRE in the legend.  ``rows``: κ rows with
    ``model``, ``material_id`` (or ``name``), ``kappa_W_per_mK``, ``kappa_dft_W_per_mK``, ``sre``;
    failed rows (no κ) are left out.  ValueError without a plottable row.  Returns the written path."""
    named = [dict(r, material_id=r.get("name") or r.get("material_id")) for r in rows]
    by_model = _ok_pairs(named, "kappa_dft_W_per_mK", "kappa_W_per_mK")
    by_model = {m: [p for p in pts if p[0] > 0 and p[1] > 0] for m, pts in by_model.items()}
    by_model = {m: pts for m, pts in by_model.items() if pts}
    if not by_model:
        raise ValueError("no rows with positive kappa_W_per_mK and kappa_dft_W_per_mK")
    colors = _model_colors(by_model)
    fig, ax = _agg_figure((5.2, 5.0))
    v = np.array([c for pts in by_model.values() for x, y, _ in pts for c in (x, y)])
    lo, hi = float(v.min()) / 2.5, float(v.max()) * 2.5
    xs = np.array([lo, hi])
    ax.plot(xs, xs, color="0.3", lw=0.8, label="y = x", zorder=0)
    ax.plot(xs, 2 * xs, color="0.6", lw=0.7, ls="--", label="×2 / ×½", zorder=0)
    ax.plot(xs, xs / 2, color="0.6", lw=0.7, ls="--", zorder=0)
    for name, pts in by_model.items():
        a = np.array([(x, y) for x, y, _ in pts])
        sre = [float(r["sre"]) for r in rows if str(r.get("model")) == name and r.get("sre") is not None]
        lab = f"{name} (n={len(a)}" + (f", mean SRE {np.mean(sre):.3f})" if sre else ")")
        ax.scatter(a[:, 0], a[:, 1], s=30, color=colors[name], edgecolor="white", linewidth=0.5, label=lab, zorder=2)
    _annotate(ax, by_model, max_labels=20)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    from matplotlib.ticker import FuncFormatter

    few = np.log10(hi / lo) < 2.5  # a narrow range: label 2 and 5 between the decades too
    for axis in (ax.xaxis, ax.yaxis):  # plain numbers (0.5, 2, 10), not 2×10⁰
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if few and f"{v:.0e}"[0] in "25" else ""))
    ax.tick_params(which="both", labelsize=8)
    ax.set_aspect("equal")
    ax.set_xlabel("κ DFT (W/m/K)")
    ax.set_ylabel("κ model (W/m/K)")
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", fontsize=7.5, frameon=False)
    fig.tight_layout()
    return save_figure(fig, path, dpi)


def plot_error_vs_n(
    points: list[dict],
    path: str | os.PathLike,
    metrics: list[tuple[str, str]],
    *,
    title: str | None = None,
    dpi: int = 130,
) -> Path:
    """Error against the number of training structures: one panel per metric, one line per series.

    ``points``: dicts with ``series`` (e.g. the fine-tuning strategy), ``n`` (training structures;
    0 = the base model) and a value per metric key; ``metrics``: ``(key, axis label with unit)``.
    ValueError with fewer than two distinct ``n``.  Returns the written path."""
    ns = {p["n"] for p in points if p.get("n") is not None}
    if len(ns) < 2:
        raise ValueError(f"error vs N needs at least two numbers of training structures, got {sorted(ns)}")
    series: dict[str, list[dict]] = {}
    for p in points:
        series.setdefault(str(p.get("series", "")), []).append(p)
    colors = _model_colors(series)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.6 * len(metrics), 3.6))
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(1, len(metrics))).ravel()
    for ax, (key, label) in zip(axes, metrics):
        for name, pts in series.items():
            pts = sorted((p for p in pts if p.get(key) is not None and np.isfinite(float(p[key]))), key=lambda p: p["n"])
            if pts:
                ax.plot([p["n"] for p in pts], [float(p[key]) for p in pts], marker="o", ms=5, color=colors[name], label=name)
        from matplotlib.ticker import MaxNLocator

        vals = [float(p[key]) for p in points if p.get(key) is not None and np.isfinite(float(p[key]))]
        ax.set_xlabel("training structures N", fontsize=9)
        ax.set_ylabel(label, fontsize=9)
        ax.set_ylim(0, 1.15 * max(vals) if vals and max(vals) > 0 else 1.0)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7.5, frameon=False, loc="lower left")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return save_figure(fig, path, dpi)
