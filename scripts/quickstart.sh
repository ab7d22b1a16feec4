#!/usr/bin/env bash
# Set-up command 1: install, then run the offline quickstart campaign on the embedded store and
# print its results once (`pftflow run` ends with the results table; a second run reuses every
# stored stage; `pftflow results` prints the table again at any time).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
bash scripts/install.sh
pftflow run workflows/quickstart.yaml
