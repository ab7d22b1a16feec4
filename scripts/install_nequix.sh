#!/usr/bin/env bash
# Install the optional Nequix (JAX) force backend: CPU JAX + the nequix package without its dependencies.
#
# Why not `pip install nequix`: on Linux it requires jax[cuda12] (GBs of CUDA wheels) plus wandb; the JAX
# calculator needs neither.  This script installs CPU JAX and the packages the calculator imports, then
# `nequix --no-deps`.  On a GPU machine install a CUDA JAX (`pip install "jax[cuda12]"`) afterwards: the
# backend uses whatever device JAX sees.  torch is never touched (constraint torch==2.13.0).
# Idempotent: exits at once when nequix's JAX calculator imports.  Not called by install.sh (optional).
#
# Env overrides: PYTHON (interpreter), NEQUIX_VERSION (default 0.4.5, the version tested with the
# PFT paper's .nqx files in ../shared/models/nequix).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
NEQUIX_VERSION="${NEQUIX_VERSION-0.4.5}"

nequix_present() {  # fast check (no JAX import): all modules findable
    "$PYTHON" -c "import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is None for m in ('jax', 'jaxlib', 'equinox', 'e3nn_jax', 'jraph', 'matscipy', 'optax', 'nequix')))" >/dev/null 2>&1
}
nequix_ok() {
    OMP_NUM_THREADS=1 "$PYTHON" -c "import jax, equinox, e3nn_jax, jraph, matscipy; from nequix.calculator import NequixCalculator" >/dev/null 2>&1
}

if nequix_present; then
    echo "install_nequix.sh: nequix JAX backend already installed; nothing to do."
    exit 0
fi
constraint=$(mktemp)
echo "torch==2.13.0" > "$constraint"
trap 'rm -f "$constraint"' EXIT
echo "[install_nequix] CPU JAX, equinox, e3nn-jax, jraph, matscipy, cloudpickle, h5py, optax"
"$PYTHON" -m pip install -q -c "$constraint" \
    "jax>=0.4.34" "equinox>=0.11.11" "e3nn-jax>=0.20.8" "jraph>=0.0.6.dev0" "matscipy>=1.1.1" \
    "cloudpickle>=3.1.1" "h5py>=3.14.0" "optax>=0.2.5"
echo "[install_nequix] nequix ${NEQUIX_VERSION:-latest} (--no-deps)"
"$PYTHON" -m pip install -q --no-deps "nequix${NEQUIX_VERSION:+==$NEQUIX_VERSION}"
if ! nequix_ok; then
    echo "install_nequix.sh: nequix installed but 'from nequix.calculator import NequixCalculator' fails" >&2
    exit 1
fi
echo "[install_nequix] done: nequix $("$PYTHON" -c 'from importlib.metadata import version; print(version("nequix"))')"
