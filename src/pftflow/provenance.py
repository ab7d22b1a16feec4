"""Where a result came from: code version, packages, host, CPU and BLAS kernel.

:func:`environment` is stored by every run (``ParametersDoc.environment``) and by every phonon analysis
(``PhononAnalysisDoc.environment``: the step whose numbers depend on the BLAS kernel), and
``pftflow results`` / ``pftflow report`` show it per row (:func:`pftflow.results.attach_provenance`).
Why the BLAS kernel: OpenBLAS picks a compute kernel per CPU (or ``OPENBLAS_CORETYPE``), and quantities
that amplify round-off differ between kernels (docs/metrics.md, "Noise floor").

Standard library plus threadpoolctl; no pftflow imports (it sits at the bottom of the layers with
``identity`` and ``serialization``).
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

#: packages whose versions a result records (the ones a number can depend on)
KEY_PACKAGES = ("pftflow", "numpy", "scipy", "phonopy", "phono3py", "spglib", "ase", "jobflow", "maggma", "torch",
                "sevenn", "chgnet", "mace-torch", "gpaw", "nequix", "jax")


def package_versions() -> dict[str, str]:
    """Python and the installed versions of :data:`KEY_PACKAGES` (absent ones left out)."""
    out = {"python": platform.python_version()}
    for pkg in KEY_PACKAGES:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


@functools.lru_cache(maxsize=1)
def git_commit() -> dict[str, object]:
    """``{"commit": sha, "dirty": bool}`` of the git work tree pftflow is imported from (an editable
    install or a checkout), ``{}`` for an installed wheel or without git. A dirty tree means the
    result may come from uncommitted code."""
    src = Path(__file__).resolve().parent
    try:
        top = subprocess.run(["git", "-C", str(src), "rev-parse", "--show-toplevel"], capture_output=True, text=True, timeout=5)
        root = Path(top.stdout.strip())
        if top.returncode != 0 or not (root / "src" / "pftflow").is_dir():
            return {}
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", "src"],
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return {}
    if sha.returncode != 0:
        return {}
    return {"commit": sha.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_info() -> list[dict[str, object]]:
    """The BLAS libraries loaded in this process (threadpoolctl): library, version, the kernel it runs
    (OpenBLAS ``architecture``, e.g. Haswell / SkylakeX / Zen) and its threads. Loads numpy's BLAS first."""
    import numpy  # noqa: F401  (so that its BLAS is loaded and reported)
    from threadpoolctl import threadpool_info

    return [
        {"library": i.get("internal_api"), "version": i.get("version"), "kernel": i.get("architecture"),
         "threads": i.get("num_threads"), "file": Path(i.get("filepath") or "").name}
        for i in threadpool_info() if i.get("user_api") == "blas"
    ]


def environment() -> dict[str, object]:
    """Everything a second user needs to rerun a result and to understand a difference: pftflow
    version and git commit, package versions, host, CPU, BLAS kernels and the ``OPENBLAS_CORETYPE`` /
    ``OMP_NUM_THREADS`` settings of the process."""
    versions = package_versions()
    g = git_commit()
    return {
        "pftflow": versions.get("pftflow"),
        "git_commit": g.get("commit"),
        "git_dirty": g.get("dirty"),
        "versions": versions,
        "host": platform.node(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "blas": blas_info(),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }


def blas_kernels(env: dict | None) -> str | None:
    """``"openblas 0.3.31 SkylakeX"`` (one per library, joined by '; ') from an :func:`environment` dict."""
    libs = (env or {}).get("blas") or []
    parts = [" ".join(str(x) for x in (b.get("library"), b.get("version"), b.get("kernel")) if x) for b in libs]
    return "; ".join(dict.fromkeys(p for p in parts if p)) or None


def oom_kill_count() -> int | None:
    """How many processes the kernel's OOM killer has ended in this process's memory cgroup so far (field
    ``oom_kill`` of cgroup v2 ``memory.events`` or of cgroup v1 ``memory.oom_control``), or None where it cannot be
    read (not Linux, no memory cgroup).  A run records it when it starts; ``pftflow status`` compares it with the
    count now to tell a run killed for memory from one ended by another signal."""
    try:
        lines = open("/proc/self/cgroup").read().splitlines()
    except OSError:
        return None
    candidates = []
    for ln in lines:
        _, controllers, rel = (ln.split(":", 2) + ["", ""])[:3]
        if controllers == "":  # cgroup v2 (unified)
            candidates.append(os.path.join("/sys/fs/cgroup", rel.lstrip("/"), "memory.events"))
        elif "memory" in controllers.split(","):  # cgroup v1 memory controller
            candidates.append(os.path.join("/sys/fs/cgroup/memory", rel.lstrip("/"), "memory.oom_control"))
    for path in candidates:
        try:
            for row in open(path):
                key, _, value = row.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            continue
    return None
