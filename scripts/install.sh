#!/usr/bin/env bash
# Install pftflow and everything it needs on a fresh Debian machine (idempotent, fast when done).
#   torch is pinned to the local CPU build (2.13.0) first, then everything else is installed with a
#   constraint so pip never swaps it for a CUDA build.  GPAW (the quickstart's DFT reference) is
#   compiled by scripts/install_gpaw.sh.
# Quiet: one line per step; the full pip / apt / compiler output goes to the log file below
# (PFTFLOW_INSTALL_LOG, default .install.log in the repository), named when a step fails.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
PY=${PYTHON:-python3}
LOG=${PFTFLOW_INSTALL_LOG:-$PWD/.install.log}
: > "$LOG"
constraint=$(mktemp)
echo "torch==2.13.0" > "$constraint"
trap 'rm -f "$constraint"' EXIT

step() {  # step "what" command...: one line, the command's output to the log; on failure its tail and the log's name
  local what=$1; shift
  local t0=$SECONDS
  printf '[install] %s ... ' "$what"
  echo "=== $what: $*" >> "$LOG"
  if "$@" >> "$LOG" 2>&1; then
    echo "done ($((SECONDS - t0)) s)"
  else
    local rc=$?
    echo "FAILED (exit $rc)"
    echo "[install] last lines of the log:" >&2
    tail -n 25 "$LOG" | sed 's/^/    /' >&2
    echo "[install] full log: $LOG" >&2
    exit "$rc"
  fi
}

if ! "$PY" -c "import torch; assert torch.__version__.startswith('2.13.0')" 2>/dev/null; then
  step "torch 2.13.0 (CPU)" "$PY" -m pip install -q "torch==2.13.0"
fi
if ! "$PY" -c "import phonopy, phono3py, seekpath, jobflow, maggma, montydb, fireworks, mongomock, sevenn, chgnet, mace, torch_ema, pytest, pandas, matplotlib, hiphive, atomate2, threadpoolctl" 2>/dev/null \
   || ! "$PY" -c "import phonopy, sys; sys.exit(tuple(map(int, phonopy.__version__.split('.')[:2])) < (4, 10))" 2>/dev/null; then
  step "scientific stack (phonopy, phono3py, jobflow, maggma, FireWorks, SevenNet, CHGNet, MACE, atomate2)" \
    "$PY" -m pip install -q -c "$constraint" -e ".[mlip,fireworks,test,vasp]"
else
  step "pftflow (editable)" "$PY" -m pip install -q --no-deps -e .
fi
step "GPAW (compiled, with PAW setups)" bash scripts/install_gpaw.sh
echo "[install] ready: $("$PY" -c 'import pftflow; print("pftflow", pftflow.__version__)') (log: $LOG)"
