#!/usr/bin/env bash
# Cluster benchmark, side by side in one run: a 3-member DSO cluster (rf 3, file discovery)
# and a 3-member etcd cluster, all on loopback, loaded by the same generator
# (cluster-bench): a linearizable read-modify-write and plain puts, 1 and 50 clients, several
# alternating rounds; writes reports/bench-cluster.md with medians and ratios.
#
# Needs etcd and protoc (Debian: apt-get install etcd-server protobuf-compiler).
# Usage: deploy/bench-cluster.sh [ROUNDS]   (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
ops_one=${OPS_ONE:-3000}
ops_many=${OPS_MANY:-400}
out=reports/bench-cluster.md
work=$(mktemp -d)
etcd_data=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)

command -v etcd >/dev/null || { echo "etcd is needed: apt-get install etcd-server" >&2; exit 2; }
command -v protoc >/dev/null || { echo "protoc is needed: apt-get install protobuf-compiler" >&2; exit 2; }
cargo build --release --quiet -p crucial-dso --bin dso-server
cargo build --release --quiet -p crucial-bench --features etcd --bin cluster-bench

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null; rm -rf "$work" "$etcd_data"' EXIT
dso_endpoints=127.0.0.1:17101,127.0.0.1:17102,127.0.0.1:17103
for port in 17101 17102 17103; do
  ./target/release/dso-server --bind "127.0.0.1:$port" --discovery "file:$work/cluster.json" --rf 3 \
    >"$work/dso-$port.log" 2>&1 &
  pids+=($!)
  sleep 0.3
done
cluster=e1=http://127.0.0.1:12381,e2=http://127.0.0.1:12382,e3=http://127.0.0.1:12383
etcd_endpoints=127.0.0.1:12371,127.0.0.1:12372,127.0.0.1:12373
for n in 1 2 3; do
  etcd --name "e$n" --data-dir "$etcd_data/e$n" \
    --listen-client-urls "http://127.0.0.1:1237$n" --advertise-client-urls "http://127.0.0.1:1237$n" \
    --listen-peer-urls "http://127.0.0.1:1238$n" --initial-advertise-peer-urls "http://127.0.0.1:1238$n" \
    --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token bench \
    >"$work/etcd-$n.log" 2>&1 &
  pids+=($!)
done
# Both clusters ready: all three DSO members in one active configuration, etcd healthy.
for _ in $(seq 100); do
  python3 - "$work/cluster.json" <<'PY' && break
import json, sys
c = json.load(open(sys.argv[1]))["config"]
sys.exit(0 if len(c["members"]) == 3 and c["source"] is None else 1)
PY
  sleep 0.2
done
ETCDCTL_API=3 etcdctl --endpoints "$etcd_endpoints" endpoint health >/dev/null

results=$(mktemp)
for round in $(seq 1 "$rounds"); do
  for clients in 1 50; do
    ops=$([ "$clients" = 1 ] && echo "$ops_one" || echo "$ops_many")
    for workload in rmw put; do
      for system in dso etcd; do
        endpoints=$([ "$system" = dso ] && echo "$dso_endpoints" || echo "$etcd_endpoints")
        line=$(./target/release/cluster-bench --system "$system" --endpoints "$endpoints" \
          --workload "$workload" --clients "$clients" --ops "$ops")
        echo "$system,$workload,$line" >>"$results"
        echo "round $round: $system $workload $line" >&2
      done
    done
  done
done

python3 - "$results" "$out" "$rounds" "$(etcd --version | head -1)" <<'PY'
import statistics, sys, datetime, platform, os
rows = [line.strip().split(",") for line in open(sys.argv[1]) if line.strip()]
# system,workload,clients,ops,seconds,ops_per_second,p50_us,p99_us
def median(system, workload, clients, column):
    return statistics.median(float(r[column]) for r in rows if r[:3] == [system, workload, str(clients)])
names = {"rmw": "read-modify-write", "put": "put"}
lines = [
    "# Cluster benchmark: DSO (rf 3) vs etcd, 3 members each",
    "",
    f"Measured {datetime.date.today()} on this project's 2-core / 24 GiB machine ({platform.machine()}, "
    f"{os.cpu_count()} cores): both clusters on loopback in the same run, {sys.argv[3]} alternating rounds, "
    "medians over the rounds. Both are driven by the same load generator (`cluster-bench`): every client "
    "has its own connection, one operation in flight and its own key.",
    "",
    "- DSO: 3 `dso-server` processes, `--rf 3`, file discovery; every operation goes to the key's primary, "
    "which answers once both backups hold it. Read-modify-write is `AtomicLong::increment_and_get`, put is "
    "`AtomicLong::set`.",
    f"- etcd: {sys.argv[4]} (Debian `etcd-server`), 3 members, data directories on tmpfs (so its disk "
    "writes cost little: a conservative comparison for DSO, which keeps its state in memory). "
    "Read-modify-write is a transaction comparing the value last read and putting its increment "
    "(reading again and retrying on conflict; with one key per client there are none after the first read); "
    "put is a plain `put`. Client: the `etcd-client` crate.",
    "",
    "| workload | clients | system | ops/s | p50 (us) | p99 (us) |",
    "|---|---:|---|---:|---:|---:|",
]
for workload in ["rmw", "put"]:
    for clients in [1, 50]:
        for system in ["dso", "etcd"]:
            lines.append(f"| {names[workload]} | {clients} | {system} | {median(system, workload, clients, 5):,.0f} | "
                         f"{median(system, workload, clients, 6):,.0f} | {median(system, workload, clients, 7):,.0f} |")
lines += ["", "Ratios (DSO / etcd; goals: p50 at most 0.20, throughput at least 3x):", "",
          "| workload | clients | p50 ratio | p99 ratio | throughput ratio |", "|---|---:|---:|---:|---:|"]
for workload in ["rmw", "put"]:
    for clients in [1, 50]:
        p50 = median("dso", workload, clients, 6) / median("etcd", workload, clients, 6)
        p99 = median("dso", workload, clients, 7) / median("etcd", workload, clients, 7)
        tput = median("dso", workload, clients, 5) / median("etcd", workload, clients, 5)
        lines.append(f"| {names[workload]} | {clients} | {p50:.2f} | {p99:.2f} | {tput:.2f}x |")
missed = [f"{names[w]} with {c} client{'s' if c > 1 else ''}" for w in ["rmw", "put"] for c in [1, 50]
          if median("dso", w, c, 6) > 0.2 * median("etcd", w, c, 6)]
slow = [f"{names[w]} with {c} clients" for w in ["rmw", "put"] for c in [1, 50]
        if median("dso", w, c, 5) < 3 * median("etcd", w, c, 5)]
lines += ["", "Goals: throughput " + ("met in every row" if not slow else "missed for " + ", ".join(slow))
          + "; p50 " + ("met in every row" if not missed else "missed for " + ", ".join(missed)) + "."]
lines += ["", "Reproduce: `deploy/bench-cluster.sh " + sys.argv[3] + "` (needs `etcd-server` and `protobuf-compiler`).", ""]
open(sys.argv[2], "w").write("\n".join(lines))
print("\n".join(lines))
PY
