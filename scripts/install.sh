#!/usr/bin/env bash
# Install pftflow and everything it needs on a fresh Debian machine (idempotent, fast when done).
#   torch is pinned to the local CPU build (2.13.0) first, then everything else is installed with a
#   constraint so pip never swaps it for a CUDA build.  GPAW (the quickstart's DFT reference) is
#   compiled by scripts/install_gpaw.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
PY=${PYTHON:-python3}
constraint=$(mktemp)
echo "torch==2.13.0" > "$constraint"
trap 'rm -f "$constraint"' EXIT

if ! "$PY" -c "import torch; assert torch.__version__.startswith('2.13.0')" 2>/dev/null; then
  echo "[install] torch 2.13.0 (CPU)"
  "$PY" -m pip install -q "torch==2.13.0"
fi
if ! "$PY" -c "import phonopy, phono3py, seekpath, jobflow, maggma, montydb, fireworks, mongomock, sevenn, chgnet, mace, torch_ema, pytest, pandas, matplotlib, hiphive, atomate2" 2>/dev/null; then
  echo "[install] scientific stack (phonopy, phono3py, jobflow, maggma, montydb, FireWorks, SevenNet, CHGNet, MACE, atomate2)"
  "$PY" -m pip install -q -c "$constraint" -e ".[mlip,fireworks,test,vasp]"
else
  "$PY" -m pip install -q --no-deps -e .
fi
bash scripts/install_gpaw.sh
echo "[install] done: $("$PY" -c 'import pftflow; print("pftflow", pftflow.__version__)')"
