"""pftflow.provenance: what every result records about the code and the machine that computed it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from threadpoolctl import threadpool_info

from pftflow import __version__
from pftflow.provenance import blas_kernels, environment, git_commit, package_versions

ROOT = Path(__file__).resolve().parents[1]


def test_environment_names_code_packages_cpu_and_the_blas_kernel_that_runs():
    env = environment()
    assert env["pftflow"] == __version__
    assert {"python", "numpy", "phonopy", "ase"} <= set(env["versions"])
    assert env["versions"] == package_versions()
    assert env["cpu"]
    openblas = [i for i in threadpool_info() if i.get("internal_api") == "openblas"]
    if openblas:  # the kernel OpenBLAS really runs (not the OPENBLAS_CORETYPE request)
        assert openblas[0]["architecture"] in blas_kernels(env)
    json.dumps(env)  # plain JSON for the store


def test_git_commit_is_the_checkout_pftflow_is_imported_from():
    src = Path(__import__("pftflow").__file__).resolve().parent
    head = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True)
    g = git_commit()
    if head.returncode != 0:  # an installed wheel: nothing claimed
        assert g == {}
    else:
        assert g["commit"] == head.stdout.strip() and isinstance(g["dirty"], bool)


def test_blas_kernels_of_an_old_document_is_none():
    assert blas_kernels({}) is None and blas_kernels(None) is None
    assert blas_kernels({"blas": [{"library": "openblas", "version": "0.3.31", "kernel": "Haswell"}]}) == "openblas 0.3.31 Haswell"
