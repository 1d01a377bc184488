#!/usr/bin/env bash
# Single-node benchmark, side by side in one run: dso-bench against a dso-server process and
# redis-benchmark -t incr against a redis-server, both on loopback, 1 and 50 clients, several
# alternating rounds; writes reports/bench-single-node.md with medians and ratios.
#
# Needs redis-server and redis-benchmark (Debian: apt-get install redis-server redis-tools).
# Usage: deploy/bench-single-node.sh [ROUNDS]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
dso_port=${DSO_PORT:-17001}
redis_port=${REDIS_PORT:-17002}
ops_one=${OPS_ONE:-30000}
ops_many=${OPS_MANY:-300000}
out=reports/bench-single-node.md

cargo build --release --quiet --bin dso-server --bin dso-bench
command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null || {
  echo "redis-server and redis-benchmark are needed: apt-get install redis-server redis-tools" >&2
  exit 2
}

./target/release/dso-server --bind "127.0.0.1:$dso_port" >/tmp/bench-dso-server.log 2>&1 &
dso_pid=$!
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >/tmp/bench-redis.log 2>&1 &
redis_pid=$!
trap 'kill $dso_pid $redis_pid 2>/dev/null || true' EXIT
sleep 1

results=$(mktemp)
for round in $(seq 1 "$rounds"); do
  for clients in 1 50; do
    ops=$([ "$clients" = 1 ] && echo "$ops_one" || echo "$ops_many")
    # clients,ops,seconds,ops_per_second,p50_us,p99_us
    dso=$(./target/release/dso-bench --addr "127.0.0.1:$dso_port" --clients "$clients" --ops "$ops" --format csv)
    echo "dso,$dso" >>"$results"
    # "INCR","rps","avg_ms","min_ms","p50_ms","p95_ms","p99_ms","max_ms"
    redis-benchmark -p "$redis_port" -t incr -c "$clients" -n "$ops" --csv | tail -n 1 | tr -d '"' |
      awk -F, -v c="$clients" -v n="$ops" '{ printf "redis,%s,%s,0,%.0f,%.0f,%.0f\n", c, n, $2, $5*1000, $7*1000 }' >>"$results"
    echo "round $round, $clients clients: $(tail -n 2 "$results" | tr '\n' ' ')" >&2
  done
done

python3 - "$results" "$out" "$rounds" <<'PY'
import statistics, sys, datetime, platform, os
rows = [line.strip().split(",") for line in open(sys.argv[1]) if line.strip()]
def median(system, clients, column):
    values = [float(r[column]) for r in rows if r[0] == system and r[1] == str(clients)]
    return statistics.median(values)
lines = [
    "# Single-node benchmark: DSO increments vs Redis INCR",
    "",
    f"Measured {datetime.date.today()} on this project's 2-core / 24 GiB machine ({platform.machine()}, "
    f"{os.cpu_count()} cores), both servers on loopback in the same run, {sys.argv[3]} alternating rounds; "
    "figures are medians over the rounds. `dso-bench` keeps one `AtomicLong::increment_and_get` in flight "
    "per client on its own connection (rf=1, one `dso-server` process, default settings); "
    "`redis-benchmark -t incr` does the same with INCR (no pipelining).",
    "",
    "| clients | system | ops/s | p50 (us) | p99 (us) |",
    "|---:|---|---:|---:|---:|",
]
for clients in (1, 50):
    for system in ("dso", "redis"):
        lines.append(f"| {clients} | {system} | {median(system, clients, 4):.0f} | "
                     f"{median(system, clients, 5):.0f} | {median(system, clients, 6):.0f} |")
lines += ["", "| clients | throughput dso/redis | p50 dso/redis |", "|---:|---:|---:|"]
for clients in (1, 50):
    lines.append(f"| {clients} | {median('dso', clients, 4) / median('redis', clients, 4):.2f}x | "
                 f"{median('dso', clients, 5) / median('redis', clients, 5):.2f}x |")
lines += ["", "Raw rows (system,clients,ops,seconds,ops/s,p50_us,p99_us; redis seconds not reported):", "", "```"]
lines += [",".join(r) for r in rows] + ["```", ""]
lines += ["Reproduce: `deploy/bench-single-node.sh [ROUNDS]` (needs `redis-server`, `redis-tools`).", ""]
# Hand-written analysis (sections after the generated part, from "## " on) is kept.
try:
    previous = open(sys.argv[2]).read()
except OSError:
    previous = ""
kept = previous.find("\n## ")
if kept >= 0:
    lines += [previous[kept + 1:].rstrip("\n"), ""]
open(sys.argv[2], "w").write("\n".join(lines))
print("\n".join(lines[:16]))
PY
