#!/usr/bin/env bash
# User-space instructions per operation of the server and of the load generator, for DSO and
# Redis, counted by callgrind: unlike times on a shared machine, these counts repeat to within a
# percent, so they show what a change to the call path saves. Kernel work (TCP, wake-ups) is
# not counted: it is about the same for both (one read and one write per operation each side).
#
# Each system runs twice under callgrind, with 200 and with 600 increments per client (50
# clients, one key each, as in deploy/bench-single-node.sh); the difference over the 400 extra
# operations per client leaves out start-up and connection set-up.
#
# Needs valgrind and redis-server (Debian: apt-get install valgrind redis-server).
# Usage: deploy/bench-instructions.sh [CLIENTS]   (default 50)
set -euo pipefail
cd "$(dirname "$0")/.."
clients=${1:-50}
port=${PORT:-17120}
for tool in valgrind redis-server; do
  command -v "$tool" >/dev/null || { echo "$tool is needed: apt-get install valgrind redis-server" >&2; exit 2; }
done
cargo build --release --quiet -p crucial-dso --bin dso-server -p crucial-bench --bin cluster-bench
root=$PWD
work=$(mktemp -d)
server_pid=
trap '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"' EXIT

# Prints "SERVER_IR GENERATOR_IR" for one run of SYSTEM with OPS operations per client.
count() {
  local system=$1 ops=$2
  rm -f "$work/server.out" "$work/generator.out"
  if [ "$system" = redis ]; then
    valgrind --tool=callgrind --callgrind-out-file="$work/server.out" redis-server --port "$port" \
      --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >/dev/null 2>&1 &
  else
    valgrind --tool=callgrind --callgrind-out-file="$work/server.out" "$root/target/release/dso-server" \
      --bind "127.0.0.1:$port" >/dev/null 2>&1 &
  fi
  server_pid=$!
  for _ in $(seq 150); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.2
  done
  valgrind --tool=callgrind --callgrind-out-file="$work/generator.out" "$root/target/release/cluster-bench" \
    --system "$system" --endpoints "127.0.0.1:$port" --clients "$clients" --ops "$ops" --warmup-ops 0 \
    --format csv >/dev/null 2>&1
  kill -TERM "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  server_pid=
  echo "$(awk '/^summary:/ {print $2}' "$work/server.out") $(awk '/^summary:/ {print $2}' "$work/generator.out")"
}

results=()
for system in dso redis; do
  echo "counting $system..." >&2
  results+=("$system $(count "$system" 200) $(count "$system" 600)")
done

python3 - "$clients" "${results[@]}" <<'PY'
import sys
clients = int(sys.argv[1])
ops = clients * 400
rows = {}
for line in sys.argv[2:]:
    system, s1, g1, s2, g2 = line.split()
    rows[system] = ((int(s2) - int(s1)) / ops, (int(g2) - int(g1)) / ops)
print(f"User-space instructions per increment ({clients} clients, callgrind):")
print()
print("| system | server | generator (client) | total |")
print("|---|---:|---:|---:|")
for system, (server, generator) in rows.items():
    print(f"| {system} | {server:,.0f} | {generator:,.0f} | {server + generator:,.0f} |")
dso, redis = rows["dso"], rows["redis"]
print(f"| dso/redis | {dso[0] / redis[0]:.2f}x | {dso[1] / redis[1]:.2f}x | {sum(dso) / sum(redis):.2f}x |")
PY
