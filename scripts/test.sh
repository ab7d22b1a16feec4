#!/usr/bin/env bash
# Set-up command 2: install, then run the test suite (tests needing ../shared/data skip without it).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
bash scripts/install.sh
python3 -m pytest tests "$@"
