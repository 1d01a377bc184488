#!/usr/bin/env bash
# Every test: the normal suite (with the simulation harnesses, the S3 store against moto's
# local S3 server, installed from PyPI here if missing, real partitions between members in
# network namespaces (iproute2, installed here if missing; root), and the load generator against
# redis-server, installed from Debian here if missing and possible), the deliberate bugs each checker must
# catch (canaries: only builds with `--cfg crucial_canary` have them), the Lambda executor
# through `cargo lambda watch` (cargo-lambda installed from PyPI if missing), and the madsim
# whole-stack suites (their own target dir, 20 seeds unless MADSIM_TEST_NUM says otherwise), then
# the deployment scripts' offline tests (pytest, against moto's server; pytest and the AWS CLI
# installed from PyPI here if missing). Ends with one line totalling every suite's result.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c "import moto.server" 2>/dev/null || python3 -m pip install --quiet "moto[server]"
python3 -c "import pytest" 2>/dev/null || python3 -m pip install --quiet pytest
python3 -c "import awscli" 2>/dev/null || python3 -m pip install --quiet awscli
command -v openssl >/dev/null || apt-get install -y -q openssl >/dev/null 2>&1 ||
  { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q openssl >/dev/null 2>&1; } ||
  echo "openssl could not be installed: the deployment tests will say so" >&2
cargo lambda --version >/dev/null 2>&1 || python3 -m pip install --quiet cargo-lambda
# The real-partition test builds network namespaces with ip and tc (iproute2).
command -v tc >/dev/null || apt-get install -y -q iproute2 >/dev/null 2>&1 ||
  { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q iproute2 >/dev/null 2>&1; } ||
  echo "iproute2 could not be installed: the partition test will say so" >&2
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
python3 -m pytest deploy/tests -q -p no:cacheprovider 2>&1 | tee -a "$log"
# cargo's lines: "test result: ok. 5 passed; 0 failed; 1 ignored; ...". pytest's summary:
# "2 failed, 46 passed, 1 skipped in 80.1s" (errors count as failures).
awk '/^test result:/ { passed += $4; failed += $6; ignored += $8; next }
     /^=* *[0-9]+ (passed|failed|skipped|errors?)/ && / in [0-9.]+s/ {
       for (i = 1; i < NF; i++) {
         if ($i !~ /^[0-9]+$/) continue
         word = $(i + 1); sub(/[,;=]+$/, "", word)
         if (word == "passed") passed += $i
         else if (word == "failed" || word == "error" || word == "errors") failed += $i
         else if (word == "skipped") ignored += $i
       }
     }
     END { printf "all suites: %d passed, %d failed, %d skipped\n", passed, failed, ignored }' "$log"
