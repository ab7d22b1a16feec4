#!/usr/bin/env bash
# Install GPAW (plane-wave DFT reference for pftflow) on a fresh Debian machine.
#
# Idempotent: if GPAW imports and its PAW setups (gpaw-data) are found, it exits
# at once. Run as root (apt-get). Never lets pip touch the installed torch.
#
# Why a siteconfig: a plain `pip install gpaw` compiles the C extension with
# gcc and `-std=c++17` on .c files, which fails. Building with g++, without MPI
# and with FFTW + OpenBLAS works (measured 2026-11-21, Debian, Python 3.11).
#
# Env overrides:
#   PYTHON        python interpreter to install into (default: python3 / python)
#   GPAW_VERSION  gpaw version to install (default: 26.7.0; "" = latest)
set -euo pipefail

PYTHON="${PYTHON:-$(command -v python || command -v python3)}"
GPAW_VERSION="${GPAW_VERSION-26.7.0}"

gpaw_ok() {
    OMP_NUM_THREADS=1 "$PYTHON" - <<'PY' >/dev/null 2>&1
import gpaw
gpaw.GPAW  # the calculator class is importable (C extension built)
from gpaw.setup_data import search_for_file
search_for_file('Si.PBE')  # PAW setups (gpaw-data) are found
PY
}

if gpaw_ok; then
    echo "install_gpaw.sh: GPAW already installed and setups found; nothing to do."
    exit 0
fi

start=$(date +%s)

# System libraries: libxc (XC functionals), OpenBLAS, FFTW3.
if command -v apt-get >/dev/null 2>&1; then
    need=()
    for p in libxc-dev libopenblas-dev libfftw3-dev g++; do
        dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
    done
    if ((${#need[@]})); then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update
        apt-get install -y "${need[@]}"
    fi
fi

tmpdir=$(mktemp -d)
trap 'rm -rf "$tmpdir"' EXIT
siteconfig="$tmpdir/gpaw_siteconfig.py"
cat > "$siteconfig" <<'PY'
# GPAW build configuration used by scripts/install_gpaw.sh
compiler = 'g++'
mpi = False
fftw = True
libraries += ['fftw3', 'openblas']
PY

# Pin torch to what is installed so pip never upgrades/downgrades it.
constraints="$tmpdir/constraints.txt"
torch_version=$("$PYTHON" -c "import torch; print(torch.__version__.split('+')[0])" 2>/dev/null || true)
if [[ -n "$torch_version" ]]; then
    echo "torch==$torch_version" > "$constraints"
else
    : > "$constraints"
fi

spec="gpaw"
[[ -n "$GPAW_VERSION" ]] && spec="gpaw==$GPAW_VERSION"

GPAW_CONFIG="$siteconfig" "$PYTHON" -m pip install --no-cache-dir -c "$constraints" "$spec"

if ! gpaw_ok; then
    echo "install_gpaw.sh: GPAW installed but import or setup lookup failed" >&2
    OMP_NUM_THREADS=1 "$PYTHON" -c "import gpaw; gpaw.GPAW; from gpaw.setup_data import search_for_file; search_for_file('Si.PBE')" || true
    exit 1
fi
echo "install_gpaw.sh: GPAW installed in $(( $(date +%s) - start )) s."
