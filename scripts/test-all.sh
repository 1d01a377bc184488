#!/usr/bin/env bash
# Every test: the normal suite (with the simulation harnesses and canaries) and the madsim
# whole-stack suite (its own target dir, 20 seeds unless MADSIM_TEST_NUM says otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --features sim
MADSIM_TEST_NUM=${MADSIM_TEST_NUM:-20} cargo simtest -p crucial-dso --features sim --tests
