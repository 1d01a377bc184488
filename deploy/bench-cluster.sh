#!/usr/bin/env bash
# Cluster benchmark, side by side in one run: a 3-member DSO cluster (rf 3, file discovery),
# a 3-member etcd cluster and a Redis primary with two replicas (each write followed by
# WAIT 2), all on loopback, loaded by the same generator (cluster-bench): a read-modify-write
# and plain puts, 1 and 50 clients, several alternating rounds, plus the loopback round trip
# (the floor). Runs twice: with one thread
# per member on both sides (the main figures: the members share two cores here), where a
# second DSO cluster also busy-polls (`--busy-poll-us`), and with each runtime's defaults. In
# both settings a third DSO cluster requires a token and serves TLS (certificates of a CA made
# for the run with openssl), as deployed: its rows give the cost of TLS.
# Writes reports/bench-cluster.md with medians and ratios.
#
# Needs etcd, redis-server, protoc and openssl (Debian: apt-get install etcd-server
# redis-server protobuf-compiler openssl).
# Usage: deploy/bench-cluster.sh [ROUNDS]   (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
ops_one=${OPS_ONE:-3000}
ops_many=${OPS_MANY:-400}
busy_poll_us=${BUSY_POLL_US:-300}
out=reports/bench-cluster.md
work=$(mktemp -d)
results=$(mktemp)

command -v etcd >/dev/null || { echo "etcd is needed: apt-get install etcd-server" >&2; exit 2; }
command -v redis-server >/dev/null || { echo "redis-server is needed: apt-get install redis-server" >&2; exit 2; }
command -v protoc >/dev/null || { echo "protoc is needed: apt-get install protobuf-compiler" >&2; exit 2; }
command -v openssl >/dev/null || { echo "openssl is needed: apt-get install openssl" >&2; exit 2; }
cargo build --release --quiet -p crucial-dso --bin dso-server
cargo build --release --quiet -p crucial-bench --features etcd --bin cluster-bench

# The TLS cluster's secrets: a CA, a certificate for the cluster's name signed by it, a token.
secrets=$work/secrets
mkdir -p "$secrets" && chmod 700 "$secrets"
(
  cd "$secrets"
  umask 077
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=bench CA" \
    -keyout ca.key -out ca.crt 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=crucial-dso" \
    -keyout tls.key -out tls.csr 2>/dev/null
  printf 'subjectAltName=DNS:crucial-dso\n' >san.ext
  openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext \
    -out tls.crt 2>/dev/null
  openssl rand -hex 24 >token
)
tls_server_args=(--token-file "$secrets/token" --tls-cert "$secrets/tls.crt" --tls-key "$secrets/tls.key"
  --tls-ca "$secrets/ca.crt")
tls_client_args=(--tls-ca "$secrets/ca.crt" --token-file "$secrets/token")

pids=()
stop_clusters() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  pids=()
}
trap 'stop_clusters; rm -rf "$work" "$results"' EXIT

# Starts both clusters for one setting ("one": one thread per member; "default"), on ports
# of its own so that a restart never races the previous members' sockets.
start_clusters() {
  local setting=$1 base=$2 dir="$work/$1"
  local threads=() gomaxprocs=
  member_pids=([dso]= [dso-poll]= [dso-tls]= [etcd]= [redis-wait]=)
  if [ "$setting" = one ]; then threads=(--threads 1); gomaxprocs=1; fi
  mkdir -p "$dir" && etcd_data=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)
  dso_endpoints=127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2)),127.0.0.1:$((base + 3))
  poll_endpoints=127.0.0.1:$((base + 31)),127.0.0.1:$((base + 32)),127.0.0.1:$((base + 33))
  tls_endpoints=127.0.0.1:$((base + 51)),127.0.0.1:$((base + 52)),127.0.0.1:$((base + 53))
  for n in 1 2 3; do
    ./target/release/dso-server --bind "127.0.0.1:$((base + n))" --discovery "file:$dir/cluster.json" --rf 3 \
      "${threads[@]}" >"$dir/dso-$n.log" 2>&1 &
    pids+=($!)
    member_pids[dso]+=" $!"
    ./target/release/dso-server --bind "127.0.0.1:$((base + 50 + n))" --discovery "file:$dir/tls.json" --rf 3 \
      "${threads[@]}" "${tls_server_args[@]}" >"$dir/tls-$n.log" 2>&1 &
    pids+=($!)
    member_pids[dso-tls]+=" $!"
    if [ "$setting" = one ]; then
      ./target/release/dso-server --bind "127.0.0.1:$((base + 30 + n))" --discovery "file:$dir/poll.json" \
        --rf 3 "${threads[@]}" --busy-poll-us "$busy_poll_us" >"$dir/poll-$n.log" 2>&1 &
      pids+=($!)
      member_pids[dso-poll]+=" $!"
    fi
    sleep 0.3
  done
  local cluster=e1=http://127.0.0.1:$((base + 21)),e2=http://127.0.0.1:$((base + 22)),e3=http://127.0.0.1:$((base + 23))
  etcd_endpoints=127.0.0.1:$((base + 11)),127.0.0.1:$((base + 12)),127.0.0.1:$((base + 13))
  for n in 1 2 3; do
    GOMAXPROCS=$gomaxprocs etcd --name "e$n" --data-dir "$etcd_data/e$n" \
      --listen-client-urls "http://127.0.0.1:$((base + 10 + n))" \
      --advertise-client-urls "http://127.0.0.1:$((base + 10 + n))" \
      --listen-peer-urls "http://127.0.0.1:$((base + 20 + n))" \
      --initial-advertise-peer-urls "http://127.0.0.1:$((base + 20 + n))" \
      --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token "bench-$setting" \
      >"$dir/etcd-$n.log" 2>&1 &
    pids+=($!)
    member_pids[etcd]+=" $!"
  done
  # Redis: a primary and two replicas (single-threaded, as Redis is by default), no persistence.
  redis_endpoint=127.0.0.1:$((base + 41))
  for n in 1 2 3; do
    local replica=()
    if [ "$n" != 1 ]; then replica=(--replicaof 127.0.0.1 $((base + 41))); fi
    mkdir -p "$dir/redis-$n"
    redis-server --port $((base + 40 + n)) --bind 127.0.0.1 --save '' --appendonly no --dir "$dir/redis-$n" \
      --repl-diskless-sync-delay 0 "${replica[@]}" >"$dir/redis-$n.log" 2>&1 &
    pids+=($!)
    member_pids[redis-wait]+=" $!"
  done
  # Every cluster ready: all three DSO members in one active configuration, etcd healthy,
  # both Redis replicas online.
  for _ in $(seq 100); do
    python3 - "$dir"/*.json <<'PY' && break
import json, sys
for path in sys.argv[1:]:
    try:
        c = json.load(open(path))["config"]
    except (OSError, ValueError, KeyError):
        sys.exit(1)
    if len(c["members"]) != 3 or c["source"] is not None:
        sys.exit(1)
PY
    sleep 0.2
  done
  for _ in $(seq 50); do
    ETCDCTL_API=3 etcdctl --endpoints "$etcd_endpoints" endpoint health >/dev/null 2>&1 && break
    sleep 0.2
  done
  ETCDCTL_API=3 etcdctl --endpoints "$etcd_endpoints" endpoint health >/dev/null
  for _ in $(seq 100); do
    [ "$(redis-cli -p $((base + 41)) info replication | grep -c 'state=online')" = 2 ] && return
    sleep 0.2
  done
  echo "the Redis replicas did not come online" >&2
  exit 1
}

declare -A member_pids
# CPU time (clock ticks) the given processes have used so far.
cpu_ticks() {
  local total=0 pid fields
  for pid in "$@"; do
    read -r -a fields <"/proc/$pid/stat"
    total=$((total + fields[13] + fields[14]))
  done
  echo "$total"
}

# Runs cluster-bench against `system`; appends the cores its members kept busy meanwhile.
bench() {
  local system=$1; shift
  local pids=${member_pids[$system]:-}
  local before started line
  # shellcheck disable=SC2086
  before=$(cpu_ticks $pids)
  started=$(date +%s.%N)
  line=$(./target/release/cluster-bench --format csv "$@") || { echo "cluster-bench failed: $*" >&2; exit 1; }
  # shellcheck disable=SC2086
  echo "$line,$(python3 -c "import sys; print(f'{($(cpu_ticks $pids) - $before) / $(getconf CLK_TCK) / ($(date +%s.%N) - $started):.2f}')")"
}

for setting in one default; do
  base=$([ "$setting" = one ] && echo 17100 || echo 17200)
  start_clusters "$setting" "$base"
  for round in $(seq 1 "$rounds"); do
    line=$(bench loopback --system loopback --clients 1 --ops "$ops_one")
    echo "$setting,loopback,put,$line" >>"$results"
    for clients in 1 50; do
      ops=$([ "$clients" = 1 ] && echo "$ops_one" || echo "$ops_many")
      for workload in rmw put; do
        systems=(dso dso-tls etcd redis-wait)
        if [ "$setting" = one ]; then systems=(dso dso-poll dso-tls etcd redis-wait); fi
        for system in "${systems[@]}"; do
          extra=()
          case $system in
            dso) endpoints=$dso_endpoints ;;
            dso-poll) endpoints=$poll_endpoints ;;
            dso-tls) endpoints=$tls_endpoints extra=("${tls_client_args[@]}") ;;
            etcd) endpoints=$etcd_endpoints ;;
            redis-wait) endpoints=$redis_endpoint ;;
          esac
          line=$(bench "$system" --system "${system%-*}" --endpoints "$endpoints" --workload "$workload" \
            --clients "$clients" --ops "$ops" "${extra[@]}")
          echo "$setting,$system,$workload,$line" >>"$results"
          echo "$setting round $round: $system $workload $line" >&2
        done
      done
    done
  done
  stop_clusters
  rm -rf "$etcd_data"
done

python3 - "$results" "$out" "$rounds" "$(etcd --version | head -1)" "$busy_poll_us" "$(redis-server --version | cut -d' ' -f1-3)" <<'PY'
import statistics, sys, datetime, platform, os
rows = [line.strip().split(",") for line in open(sys.argv[1]) if line.strip()]
# setting,system,workload,clients,ops,seconds,ops_per_second,p50_us,p99_us,member_cores
OPS, P50, P99, CORES = 6, 7, 8, 9
def median(setting, system, workload, clients, column):
    return statistics.median(float(r[column]) for r in rows if r[:4] == [setting, system, workload, str(clients)])
names = {"rmw": "read-modify-write", "put": "put"}
rounds = sys.argv[3]

def tables(setting, variants):
    """The figures of one setting: a table of every system, the ratios of each DSO variant."""
    m = lambda *key: median(setting, *key)
    systems = [system for system, _ in variants] + ["etcd", "redis-wait"]
    label = dict(variants + [("etcd", "etcd"), ("redis-wait", "redis, WAIT 2")])
    out = ["| workload | clients | system | ops/s | p50 (us) | p99 (us) | members' CPU (cores) |",
           "|---|---:|---|---:|---:|---:|---:|"]
    for workload in ["rmw", "put"]:
        for clients in [1, 50]:
            for system in systems:
                out.append(f"| {names[workload]} | {clients} | {label[system]} | {m(system, workload, clients, OPS):,.0f} | "
                           f"{m(system, workload, clients, P50):,.0f} | {m(system, workload, clients, P99):,.0f} | "
                           f"{m(system, workload, clients, CORES):.2f} |")
    out += ["", "Ratios to etcd (goals: p50 at most 0.20, throughput at least 3x):", "",
            "| DSO | workload | clients | p50 ratio | p99 ratio | throughput ratio |", "|---|---|---:|---:|---:|---:|"]
    verdicts = []
    floor = m("loopback", "put", 1, P50)
    for system, name in variants:
        for workload in ["rmw", "put"]:
            for clients in [1, 50]:
                p50 = m(system, workload, clients, P50) / m("etcd", workload, clients, P50)
                p99 = m(system, workload, clients, P99) / m("etcd", workload, clients, P99)
                tput = m(system, workload, clients, OPS) / m("etcd", workload, clients, OPS)
                out.append(f"| {name} | {names[workload]} | {clients} | {p50:.2f} | {p99:.2f} | {tput:.2f}x |")
        missed = [f"{names[w]} with {c} client{'s' if c > 1 else ''}" for w in ["rmw", "put"] for c in [1, 50]
                  if m(system, w, c, P50) > 0.2 * m("etcd", w, c, P50)]
        slow = [f"{names[w]} with {c} clients" for w in ["rmw", "put"] for c in [1, 50]
                if m(system, w, c, OPS) < 3 * m("etcd", w, c, OPS)]
        verdicts.append(f"- {name}: throughput " + ("met in every row" if not slow else "missed for " + ", ".join(slow))
                        + "; p50 " + ("met in every row" if not missed else "missed for " + ", ".join(missed)) + ".")
    out += ["", "Ratios to Redis with `WAIT 2` after each write (goal: DSO p50 at most 1.0x):", "",
            "| DSO | workload | clients | p50 ratio | p99 ratio | throughput ratio |", "|---|---|---:|---:|---:|---:|"]
    for system, name in variants:
        for workload in ["rmw", "put"]:
            for clients in [1, 50]:
                ratio = lambda column: m(system, workload, clients, column) / m("redis-wait", workload, clients, column)
                out.append(f"| {name} | {names[workload]} | {clients} | {ratio(P50):.2f} | {ratio(P99):.2f} | "
                           f"{ratio(OPS):.2f}x |")
        behind = [f"{names[w]} with {c} client{'s' if c > 1 else ''}" for w in ["rmw", "put"] for c in [1, 50]
                  if m(system, w, c, P50) > m("redis-wait", w, c, P50)]
        verdicts.append(f"- {name} against Redis with WAIT 2: p50 "
                        + ("met in every row" if not behind else "missed for " + ", ".join(behind)) + ".")
    out += ["", "Goals:", ""] + verdicts + [
        "", f"For scale: a 64-byte TCP echo on loopback between two threads that sleep between messages "
        f"(`cluster-bench --system loopback`) took {floor:.0f} us (p50) in this setting; on this machine it "
        "has measured from 6 us to 66 us between runs, depending on whether the cores are kept awake. "
        "A call on rf 3 is two round trips (client to primary; primary to both backups and back)."]
    return out

def tls_cost(setting):
    """What TLS and the token cost: the TLS cluster against the plain one, same setting and run."""
    m = lambda *key: median(setting, *key)
    out = ["### The cost of TLS", "",
           "The same DSO cluster serving TLS and requiring a token (`--tls-cert`, `--tls-key`, `--tls-ca`, "
           "`--token-file`), against the plain one, in this setting and run:", "",
           "| workload | clients | p50 plain (us) | p50 TLS (us) | p50 ratio | ops/s plain | ops/s TLS | throughput ratio |",
           "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for workload in ["rmw", "put"]:
        for clients in [1, 50]:
            p50 = (m("dso", workload, clients, P50), m("dso-tls", workload, clients, P50))
            ops = (m("dso", workload, clients, OPS), m("dso-tls", workload, clients, OPS))
            out.append(f"| {names[workload]} | {clients} | {p50[0]:,.0f} | {p50[1]:,.0f} | {p50[1] / p50[0]:.2f} | "
                       f"{ops[0]:,.0f} | {ops[1]:,.0f} | {ops[1] / ops[0]:.2f}x |")
    return out

lines = [
    "# Cluster benchmark: DSO (rf 3) vs etcd and Redis with WAIT, 3 members each",
    "",
    f"Measured {datetime.date.today()} on this project's 2-core / 24 GiB machine ({platform.machine()}, "
    f"{os.cpu_count()} cores): every cluster on loopback in the same run, {rounds} alternating rounds, "
    "medians over the rounds. All are driven by the same load generator (`cluster-bench`): every client "
    "has its own connection, one operation in flight and its own key. \"Members' CPU\" is the CPU time the "
    "system's three members used during a run (warm-up included) over its wall time: 1.00 is one core "
    "kept busy.",
    "",
    "- DSO: 3 `dso-server` processes, `--rf 3`, file discovery; every operation goes to the key's primary, "
    "which answers once both backups hold it. Read-modify-write is `AtomicLong::increment_and_get`, put is "
    "`AtomicLong::set`.",
    "- DSO with TLS: the same with a token and TLS (TLS 1.3, ECDSA P-256 certificates of a CA made for the run, "
    "rustls on ring) between clients and members and between members, as a deployment runs; the plain "
    "cluster has neither. A TLS connection's answers are written by its writer task (a TLS stream cannot be "
    "written without possibly waiting), where plain TCP writes them inline.",
    f"- etcd: {sys.argv[4]} (Debian `etcd-server`), 3 members, data directories on tmpfs (so its disk "
    "writes cost little: a conservative comparison for DSO, which keeps its state in memory). "
    "Read-modify-write is a transaction comparing the value last read and putting its increment "
    "(reading again and retrying on conflict; with one key per client there are none after the first read); "
    "put is a plain `put`. Client: the `etcd-client` crate.",
    f"- Redis: {sys.argv[6]}, a primary and two replicas (`--replicaof`), persistence off; read-modify-write "
    "is `INCR`, put is `SET`, each followed by `WAIT 2 5000`, which answers once both replicas acknowledged the "
    "write (the 5 s bound, never reached, only turns a missing replica into an error): the closest "
    "in-memory analogue of rf 3 primary-backup (Redis replicates asynchronously and `WAIT` only waits; a "
    "failover can still lose acknowledged writes). Client: the `redis` crate, connected to the primary, "
    "without a response timeout.",
    "", "Against Redis with `WAIT`: at one client DSO answers sooner (one round trip from the client where Redis "
    "takes two, `INCR` then `WAIT`). At 50 clients Redis batches what DSO does per call: it sends its replicas "
    "one write per event-loop turn carrying every write of that turn, and asks them for acknowledgements once "
    "per turn for all the clients waiting, where a DSO primary sends each call to each backup in a message of "
    "its own and each backup acknowledges each one. Under load a DSO member writes the messages it has for "
    "another member together (`--peer-coalesce-us`, default 100 us): one write, and one read at the other end, "
    "for the calls ready at once; the messages and acknowledgements themselves stay one per call.",
    "",
    "## One thread per member (main figures)",
    "",
    "The members and the load generator share two cores, so each member gets one thread: `dso-server "
    "--threads 1` (a single-threaded runtime) and etcd with `GOMAXPROCS=1` (which makes etcd slightly faster "
    "here than its default, so the comparison stays conservative); Redis is single-threaded in both settings. A second DSO cluster adds "
    f"`--busy-poll-us {sys.argv[5]}`: after serving anything a member keeps polling its sockets for that long "
    "before it sleeps, so the next message of a conversation finds it awake. Waking an idle virtual core "
    "costs tens of microseconds here, and a call on rf 3 wakes four processes in turn; the price is a core "
    "kept busy while traffic lasts (and for the window after each heartbeat when idle).",
    "",
] + tables("one", [("dso", "dso"), ("dso-poll", f"dso, busy-poll {sys.argv[5]} us"), ("dso-tls", "dso, TLS")]) + [
    "",
] + tls_cost("one") + [
    "",
    "## Runtime defaults",
    "",
    "The same run with each runtime's defaults (`dso-server` with one worker thread per core, etcd with "
    "`GOMAXPROCS` unset): cross-thread wake-ups cost DSO throughput on two shared cores.",
    "",
] + tables("default", [("dso", "dso"), ("dso-tls", "dso, TLS")]) + [
    "",
] + tls_cost("default") + [
    "",
    "Reproduce: `deploy/bench-cluster.sh " + rounds + "` (needs `etcd-server`, `redis-server`, `protobuf-compiler` "
    "and `openssl`).",
    "",
]
open(sys.argv[2], "w").write("\n".join(lines))
print("\n".join(lines))
PY
