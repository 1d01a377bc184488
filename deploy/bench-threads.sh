#!/usr/bin/env bash
# Cloud-thread benchmarks, each beside its floor or native counterpart in the same run
# (threads/examples/bench.rs), with the issue's anchors measured in the same run (Lithops 3.8
# localhost and its Redis-backed barrier: bench/anchors/lithops_anchor.py), plus the Invoke
# latency through `cargo lambda watch`; installs cargo-lambda, lithops and redis (PyPI) if
# missing (redis-server: apt-get install redis-server); writes reports/threads.md, keeping its
# hand-written sections (from the first "## " heading after the figures).
# Usage: deploy/bench-threads.sh [ROUNDS]   (default 7)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-7}
port=${LAMBDA_PORT:-19321}
redis_port=${REDIS_PORT:-19322}
out=reports/threads.md

command -v cargo-lambda >/dev/null || python3 -m pip install --quiet cargo-lambda
python3 -c "import lithops, redis" 2>/dev/null || python3 -m pip install --quiet "lithops==3.8.0" redis
command -v redis-server >/dev/null || { echo "redis-server is needed: apt-get install redis-server" >&2; exit 2; }
cargo build --release --quiet -p crucial-threads --features lambda --example bench --bin crucial-lambda-handler
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
cargo lambda watch --quiet --ignore-changes --release -p crucial-threads --bin crucial-lambda-handler \
  --features lambda --invoke-address 127.0.0.1 --invoke-port "$port" --concurrency 16 \
  >/tmp/bench-threads-lambda.log 2>&1 &
lambda_pid=$!
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >/tmp/bench-threads-redis.log 2>&1 &
redis_pid=$!
trap 'kill $lambda_pid $redis_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done

anchors=$(mktemp)
(cd "$(mktemp -d)" && python3 "$OLDPWD/bench/anchors/lithops_anchor.py" "$redis_port" "$rounds") >"$anchors"
figures=$(./target/release/examples/bench --rounds "$rounds" --lambda-endpoint "http://127.0.0.1:$port" --anchors "$anchors")
kept=""
[ -f "$out" ] && kept=$(awk '/^## /{ keep = 1 } keep' "$out")
{
  echo "# Cloud threads: benchmarks"
  echo
  echo "Measured $(date -u +%F) at commit $(git rev-parse --short HEAD) on this project's $(nproc)-core machine by \`deploy/bench-threads.sh $rounds\`"
  echo "(release build; medians of $rounds rounds; each row's counterpart measured in the same run)."
  echo "Local executor with an embedded DSO server on loopback; every cloud thread is encoded to JSON"
  echo "and back, runs in its own DSO session, stores its result in the DSO and releases the records"
  echo "of the keys it used."
  echo
  echo "$figures"
  echo
  echo "$kept"
} >"$out"
echo "wrote $out" >&2
