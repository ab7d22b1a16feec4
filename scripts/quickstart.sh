#!/usr/bin/env bash
# Set-up command 1: install, then run the offline quickstart campaign on the embedded store and
# print its results (a second run reuses the stored GPAW reference).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
bash scripts/install.sh
pftflow run workflows/quickstart.yaml
pftflow results --format table
