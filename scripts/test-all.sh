#!/usr/bin/env bash
# Every test: the normal suite (with the simulation harnesses, the canaries and the S3 store
# against moto's local S3 server, installed from PyPI here if missing) and the madsim
# whole-stack suite (its own target dir, 20 seeds unless MADSIM_TEST_NUM says otherwise).
# Ends with one line totalling every test binary's result.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c "import moto.server" 2>/dev/null || python3 -m pip install --quiet "moto[server]"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --features sim,crucial-dso/s3 2>&1 | tee -a "$log"
MADSIM_TEST_NUM=${MADSIM_TEST_NUM:-20} cargo simtest -p crucial-dso --features sim --tests 2>&1 | tee -a "$log"
awk '/^test result:/ { passed += $4; failed += $6; ignored += $8 }
     END { printf "all suites: %d passed, %d failed, %d skipped\n", passed, failed, ignored }' "$log"
