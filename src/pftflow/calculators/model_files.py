"""Model files and imports of the torch backends, below both the ASE calculators
(:mod:`pftflow.calculators.backends`) and the differentiable energy models
(:mod:`pftflow.calculators.energy_models`): where a MACE foundation model is cached, how sevenn is imported."""

from __future__ import annotations

import os
from pathlib import Path


def prepare_sevenn_import() -> None:
    """Call before importing sevenn: its checkpoints need e3nn's legacy (non weights-only)
    torch.load; importing mace first sets that up, the environment variable is the documented
    alternative (DEVELOPERS.md)."""
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    try:
        import mace  # noqa: F401
    except ImportError:
        pass


MACE_CACHE_DIR = Path(os.environ.get("PFTFLOW_MACE_CACHE", Path.home() / ".cache" / "mace"))


def resolve_mace_model(model: str) -> Path:
    """A MACE model file path, or a foundation-model name resolved to a local cache file.

    Foundation names (``small``, ``medium``, ``medium-mpa-0``, ...) map to the file name that
    ``mace_mp()`` would download into ``~/.cache/mace`` (or ``$PFTFLOW_MACE_CACHE``).  Nothing is
    downloaded here: a missing file is an error that says where to put it.
    """
    p = Path(model).expanduser()
    if p.is_file():
        return p
    if p.suffix == ".model" or os.sep in model:
        raise FileNotFoundError(f"MACE model file not found: {model}")
    candidates = [MACE_CACHE_DIR / model, MACE_CACHE_DIR / f"{model}.model"]
    try:  # the URL table of mace's own foundation-model loader gives the cached file name
        from mace.calculators import foundations_models as fm

        urls = getattr(fm, "mace_mp_urls", None) or {}
        if model in urls:
            url = urls[model]
            base = os.path.basename(url).split("?")[0]
            candidates.insert(0, MACE_CACHE_DIR / base)
            candidates.insert(1, MACE_CACHE_DIR / "".join(c if c.isalnum() else "_" for c in base))
    except Exception:  # noqa: BLE001 - mace missing or its internals changed
        pass
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(
        f"MACE foundation model '{model}' is not in the local cache ({MACE_CACHE_DIR}); pftflow never "
        "downloads at run time. Download the model file on a machine with internet, copy it to that "
        f"directory (tried: {', '.join(str(c) for c in candidates)}) or give the path to a .model file."
    )
