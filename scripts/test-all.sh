#!/usr/bin/env bash
# Every test: the normal suite (with the simulation harnesses, the S3 store against moto's
# local S3 server, installed from PyPI here if missing, and the load generator against
# redis-server, installed from Debian here if missing and possible), the deliberate bugs each checker must
# catch (canaries: only builds with `--cfg crucial_canary` have them), the Lambda executor
# through `cargo lambda watch` (cargo-lambda installed from PyPI if missing), and the madsim
# whole-stack suites (their own target dir, 20 seeds unless MADSIM_TEST_NUM says otherwise).
# Ends with one line totalling every test binary's result.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c "import moto.server" 2>/dev/null || python3 -m pip install --quiet "moto[server]"
cargo lambda --version >/dev/null 2>&1 || python3 -m pip install --quiet cargo-lambda
command -v redis-server >/dev/null || {
  apt-get install -y -q redis-server >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q redis-server >/dev/null 2>&1; } ||
    echo "redis-server could not be installed: the Redis tests will say so" >&2
}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --features sim,crucial-dso/s3 2>&1 | tee -a "$log"
cargo canarytest -p crucial-sim -p crucial-models -p crucial-threads --features sim canary 2>&1 | tee -a "$log"
cargo test -p crucial-threads --features lambda --test lambda_watch 2>&1 | tee -a "$log"
export MADSIM_TEST_NUM=${MADSIM_TEST_NUM:-20}
cargo simtest -p crucial-dso --features sim --test madsim_partition 2>&1 | tee -a "$log"
cargo simtest -p crucial-threads --features sim --test simulated 2>&1 | tee -a "$log"
awk '/^test result:/ { passed += $4; failed += $6; ignored += $8 }
     END { printf "all suites: %d passed, %d failed, %d skipped\n", passed, failed, ignored }' "$log"
