#!/usr/bin/env bash
# Single-node benchmark, side by side in one run: one dso-server process and one redis-server,
# both on loopback with their default settings, loaded by the same generator (cluster-bench:
# one connection and one operation in flight per client, each client on its own key) with
# increments (DSO AtomicLong::increment_and_get, Redis INCR), 1 and 50 clients, several
# alternating rounds; writes reports/bench-single-node.md with medians and ratios.
#
# Needs redis-server (Debian: apt-get install redis-server).
# Usage: deploy/bench-single-node.sh [ROUNDS]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
dso_port=${DSO_PORT:-17001}
redis_port=${REDIS_PORT:-17002}
ops_one=${OPS_ONE:-30000}
ops_each=${OPS_EACH:-6000}
out=reports/bench-single-node.md

command -v redis-server >/dev/null || { echo "redis-server is needed: apt-get install redis-server" >&2; exit 2; }
cargo build --release --quiet -p crucial-dso --bin dso-server -p crucial-bench --bin cluster-bench

./target/release/dso-server --bind "127.0.0.1:$dso_port" >/tmp/bench-dso-server.log 2>&1 &
dso_pid=$!
redis_dir=$(mktemp -d)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$redis_dir" \
  >/tmp/bench-redis.log 2>&1 &
redis_pid=$!
trap 'kill $dso_pid $redis_pid 2>/dev/null || true; rm -rf "$redis_dir"' EXIT
sleep 1

results=$(mktemp)
for round in $(seq 1 "$rounds"); do
  for clients in 1 50; do
    ops=$([ "$clients" = 1 ] && echo "$ops_one" || echo "$ops_each")
    for system in dso redis; do
      port=$([ "$system" = dso ] && echo "$dso_port" || echo "$redis_port")
      # clients,ops,seconds,ops_per_second,p50_us,p99_us
      line=$(./target/release/cluster-bench --system "$system" --endpoints "127.0.0.1:$port" \
        --workload rmw --clients "$clients" --ops "$ops" --format csv)
      echo "$system,$line" >>"$results"
    done
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
    "figures are medians over the rounds. Both are loaded by the same generator, `cluster-bench`: every "
    "client has its own connection, one operation in flight and its own key; DSO runs "
    "`AtomicLong::increment_and_get` (one `dso-server` process, rf 1, default settings), Redis `INCR` "
    "(one `redis-server`, persistence off, otherwise default settings; client: the `redis` crate).",
    "",
    "| clients | system | ops/s | p50 (us) | p99 (us) |",
    "|---:|---|---:|---:|---:|",
]
for clients in (1, 50):
    for system in ("dso", "redis"):
        lines.append(f"| {clients} | {system} | {median(system, clients, 4):.0f} | "
                     f"{median(system, clients, 5):.0f} | {median(system, clients, 6):.0f} |")
lines += ["", "| clients | throughput dso/redis | p50 dso/redis | p99 dso/redis |", "|---:|---:|---:|---:|"]
for clients in (1, 50):
    lines.append(f"| {clients} | {median('dso', clients, 4) / median('redis', clients, 4):.2f}x | "
                 f"{median('dso', clients, 5) / median('redis', clients, 5):.2f}x | "
                 f"{median('dso', clients, 6) / median('redis', clients, 6):.2f}x |")
p50_one = median('dso', 1, 5) / median('redis', 1, 5)
tput_many = median('dso', 50, 4) / median('redis', 50, 4)
lines += ["", "Goals:", "",
          f"- 1 client, p50 at most 1.0x Redis: {p50_one:.2f}x, {'met' if p50_one <= 1.0 else 'missed'}.",
          f"- 50 clients, throughput at least 1.0x Redis: {tput_many:.2f}x, {'met' if tput_many >= 1.0 else 'missed'}."]
lines += ["", "Raw rows (system,clients,ops,seconds,ops/s,p50_us,p99_us):", "", "```"]
lines += [",".join(r) for r in rows] + ["```", ""]
lines += ["Reproduce: `deploy/bench-single-node.sh " + sys.argv[3] + "` (needs `redis-server`).", ""]
# Hand-written analysis (sections after the generated part, from "## " on) is kept.
try:
    previous = open(sys.argv[2]).read()
except OSError:
    previous = ""
kept = previous.find("\n## ")
if kept >= 0:
    lines += [previous[kept + 1:].rstrip("\n"), ""]
open(sys.argv[2], "w").write("\n".join(lines))
print("\n".join(lines[:24]))
PY
