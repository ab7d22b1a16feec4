"""Reading results back: rows per material × model from the store, and their tables.

``load_results(spec)`` asks the campaign kind's reader (:data:`pftflow.flows.campaigns.KINDS`);
:func:`format_results` renders them as a table, CSV or JSON.  Field names and units:
``docs/metrics.md`` (phonons), ``docs/kappa.md``, ``docs/training.md``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from pftflow.flows.campaigns import KINDS

#: columns of the harmonic results table (JSON gives every field; see docs/metrics.md)
TABLE_COLUMNS = [
    ("material_id", "material", "{}"),
    ("model", "model", "{}"),
    ("omega_max_K_ref", "ω_max ref [K]", "{:.1f}"),
    ("omega_max_K", "ω_max [K]", "{:.1f}"),
    ("entropy_error_300K_J_per_K_mol", "ΔS300 [J/K/mol]", "{:+.2f}"),
    ("free_energy_error_300K_kJ_per_mol", "ΔF300 [kJ/mol]", "{:+.3f}"),
    ("heat_capacity_error_300K_J_per_K_mol", "ΔCv300 [J/K/mol]", "{:+.3f}"),
    ("mesh_mae_THz", "BZ MAE [THz]", "{:.3f}"),
    ("stable", "stable", "{}"),
    ("stable_ref", "stable ref", "{}"),
]

#: columns of the summary table (per model, over materials)
SUMMARY_COLUMNS = [
    ("n_evaluated", "n", "{}"),
    ("n_failed", "failed", "{}"),
    ("omega_max_mae_K", "ω_max MAE [K]", "{:.1f}"),
    ("entropy_mae_300K_J_per_K_mol", "S MAE [J/K/mol]", "{:.2f}"),
    ("free_energy_mae_300K_kJ_per_mol", "F MAE [kJ/mol]", "{:.3f}"),
    ("heat_capacity_mae_300K_J_per_K_mol", "Cv MAE [J/K/mol]", "{:.3f}"),
    ("mesh_mae_THz", "BZ MAE [THz]", "{:.3f}"),
    ("stability_accuracy", "stability acc.", "{:.2f}"),
]


def load_results(spec, store=None) -> dict:
    """Rows (one per material × model) and the summary per model, from the campaign's store."""
    from pftflow.run import open_store

    own = store is None
    store = store or open_store(spec)
    try:
        return KINDS[spec.kind].results(spec, store)
    finally:
        if own:
            store.close()


def _fmt(v, f):
    if v is None:
        return "-"
    if isinstance(v, float) and np.isnan(v):
        return "nan"
    try:
        return f.format(v)
    except (ValueError, TypeError):
        return str(v)


def render_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)), "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(out)


def jsonable(x):
    """Plain JSON values (NaN -> null, numpy scalars and arrays -> Python)."""
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (np.floating, float)):
        return None if np.isnan(x) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, Path):
        return str(x)
    return x


def format_results(res: dict, fmt: str) -> str:
    """``res`` from :func:`load_results` as ``table``, ``csv`` or ``json``."""
    if fmt == "json":
        return json.dumps(jsonable(res), indent=2)
    cols = res.get("columns") or TABLE_COLUMNS
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        keys = [k for k, _, _ in cols]
        w.writerow(keys)
        for r in res["rows"]:
            w.writerow(["" if r.get(k) is None else r.get(k) for k in keys])
        return buf.getvalue()
    rows = [[_fmt(r.get(k), f) for k, _, f in cols] for r in res["rows"]]
    text = render_table([h for _, h, _ in cols], rows)
    summ = res.get("summary") or {}
    if summ and all(isinstance(v, dict) and "omega_max_mae_K" in v for v in summ.values()):  # MDR summaries
        srows = [[m] + [_fmt(s.get(k), f) for k, _, f in SUMMARY_COLUMNS] for m, s in summ.items()]
        text += "\n\nMAE over materials (MDR metrics at 300 K):\n"
        text += render_table(["model"] + [h for _, h, _ in SUMMARY_COLUMNS], srows) + "\n"
    elif summ:
        text += "\n\nSummary:\n"
        for model, s in summ.items():
            if isinstance(s, dict):
                text += f"  {model}: " + ", ".join(f"{k}={_fmt(v, '{:.4g}')}" for k, v in s.items()) + "\n"
            else:
                text += f"  {model}: {s}\n"
    return text
