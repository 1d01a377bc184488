#!/usr/bin/env bash
# Regenerates reports/sim-sweep.md and reports/checker-bench.md from this machine.
# Usage: deploy/sim-reports.sh [SEEDS]   (default 10000, then SEEDS/2 at 10 and at 12 faults;
# needs ../shared/histories for the checker bench)
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-10000}
cargo build --release --quiet -p crucial-sim
sim=./target/release/crucial-sim
# The canaries' code is only in builds with `--cfg crucial_canary` (cargo canaryrun).
cargo build --release --quiet --config "build.rustflags=['--cfg','crucial_canary']" \
  --config "build.target-dir='target/canary'" -p crucial-sim
canary_sim=./target/canary/release/crucial-sim
sweep=$(mktemp)
$sim run --seeds "$seeds" --summary "$sweep" >/dev/null
more=$((seeds / 2))
sweep10=$(mktemp)
$sim run --seeds "$more" --first-seed "$seeds" --faults 10 --summary "$sweep10" >/dev/null
sweep12=$(mktemp)
$sim run --seeds "$more" --first-seed $((seeds + more)) --faults 12 --summary "$sweep12" >/dev/null

{
  echo "# Simulation sweep"
  echo
  echo "Measured $(date -u +%Y-%m-%d) at commit $(git rev-parse --short HEAD) on this project's 2-core / 24 GiB machine with"
  echo "\`deploy/sim-reports.sh $seeds\` (release build, seeds run on both cores)."
  echo
  echo "Each seed runs a cluster of 3 to 5 members (the real sans-IO \`Node\`), rf 2 or 3 (both chosen by"
  echo "the seed), that keeps its configuration in a simulated S3 store (3-25 ms per request, 5% of"
  echo "requests lost) and hands keys over in state transfers cut into 256-byte parts, and 6 client"
  echo "processes (the real \`ClientSession\`, which routes as the async client does: it learns"
  echo "configurations only from redirects, and after two unanswered resends sends every other"
  echo "resend to another member in turn) doing 60 operations each, client c with up to 1 + c mod 3"
  echo "calls in flight on its session (each lane a Jepsen process of its own). Keys: 17 made at setup,"
  echo "one per built-in type, and a new generation of young keys every 300 ms (Counter, List, Map,"
  echo "AtomicReference and a user-defined Stack registered like an application's), which the clients"
  echo "race to create during faults: by \`Create\` calls carrying random states of their own (the"
  echo "\`<create>\` rows; the checker models the key's absent state) and by first calls, which create"
  echo "the default. The workload calls every method of every type, waits with and"
  echo "without a timeout, acquires and releases several permits, names the wrong type now and then"
  echo "(which must be refused without effect), and each key keeps 4 sessions, so tables evict"
  echo "(a call of an evicted session is refused with \`SessionExpired\`; its outcome is unknown)."
  echo
  echo "Faults, drawn from the seed in a 3 s fault phase (at most rf - 1 of them take a member out):"
  echo "message loss, duplication, reordering, heavy-tailed delay; partitions between clients and"
  echo "members (one-way, ring) and between members (an isolated member, majority/minority halves"
  echo "with clients on both sides, a bridge member seeing both halves, a one-way member link, a"
  echo "member cut from its peers only, a member cut from the store only); a flaky store (lost"
  echo "requests, compare-and-swaps applied but unanswered, latency spikes up to 1.5 s); crashes,"
  echo "restarts under the same member id, pauses, clock jumps and skew; client retries and clients"
  echo "dying mid-call; joins, graceful departures and replacements."
  echo
  echo "Checks: each key's history against its type's own \`apply\` (CyclicBarrier keys against the"
  echo "barrier's own property: every party that got through overlaps the wait that tripped it);"
  echo "every replica of a key starts each epoch from the same copy, and after the run settles (3 s"
  echo "more without faults) every replica of every key of the final active configuration holds the"
  echo "same object, session records and parked calls; every operation issued after the heal"
  echo "completes (waits without a timeout excepted) and every departure asked for happens."
  echo
  echo "## Default: 6 faults per run"
  echo
  cat "$sweep"
  echo
  echo
  echo "## 10 faults per run"
  echo
  cat "$sweep10"
  echo
  echo
  echo "## 12 faults per run"
  echo
  cat "$sweep12"
  echo
  echo
  echo "Events per second counts simulation and checking together, over wall time on two cores."
  echo "\"during a state transfer\": the fault was active while the store held a configuration"
  echo "waiting for its transfer. \"unknown\": the client gave up, died, or its session expired."
  echo
  echo "## Canaries"
  echo
  echo "Each deliberate bug, switched on with \`--canary\`, over the first seeds of a scenario that exercises"
  echo "it, and what \`shrink\` made of the first failing seed (faults, clients x operations per client,"
  echo "operations recorded, keys). The replication canaries need a crash of a primary while its backups lag"
  echo "(one hot key, slow links) and reconfigurations during traffic (joins and departures);"
  echo "\`forget-leave\` (a departure asked during a state transfer is forgotten) is a liveness bug;"
  echo "\`non-authoritative-installs\` (a backup keeps keys its new primary lacks) is caught by the"
  echo "replica-agreement check; \`trust-reused-ids\` (a process restarted under an earlier one's id"
  echo "counts as it) by the restart fault; \`answer-without-silent-backups\` (a primary stops waiting for"
  echo "backups it does not hear) only by partitions between members, and by none of the other faults;"
  echo "\`remove-without-majority\` (a member hearing fewer than half removes the others anyway) turns an"
  echo "isolation and a crash, the \`rf - 1\` faults a run may have, into the loss of every copy (the key"
  echo "then never serves again), which the correct rule survives."
  echo
  echo "| canary | scenario | seeds failing | first failing seed | failure | shrunk from | shrunk to |"
  echo "|---|---|---:|---:|---|---|---|"
  while IFS='|' read -r canary seeds flags; do
    # shellcheck disable=SC2086 # the flags are words
    sweep_output=$($canary_sim run --seeds "$seeds" --canary "$canary" $flags 2>&1 || true)
    failing=$(echo "$sweep_output" | grep -E '^\| failures' | grep -oE '[0-9]+' || true)
    seed=$(echo "$sweep_output" | grep -oE '^seed [0-9]+' | cut -d' ' -f2 | sort -n | head -n 1 || true)
    # shellcheck disable=SC2086
    shrunk=$($canary_sim shrink --seed "$seed" --canary "$canary" $flags 2>/dev/null || true)
    first=$(echo "$shrunk" | sed -n 1p | sed "s/^seed $seed: //")
    sizes=$(echo "$shrunk" | sed -n 2p | sed -E 's/^shrunk from (.*) to ([^:]*): .*/\1|\2/')
    echo "| $canary | \`${flags:-default}\` | $failing of $seeds | $seed | $first | ${sizes%%|*} | ${sizes##*|} |"
  done <<'CANARIES'
skip-deduplication|50|
stale-reads|50|
drop-timeouts|50|
reply-before-backup-acks|200|--nodes 3 --rf 3 --keys 1 --nemesis crash,delay --faults 6
accept-old-epochs|100|--nemesis join,leave,loss,delay --faults 8
forget-leave|200|--nemesis join,leave,replace --faults 8
non-authoritative-installs|200|--nodes 3 --rf 3 --nemesis peer-one-way,client-crash
trust-reused-ids|200|--nemesis restart,loss,delay --faults 10
answer-without-silent-backups|200|--nemesis halves,bridge,isolate-peers,peer-one-way
answer-without-silent-backups|200|--nemesis loss,delay,one-way,ring,client-retry
remove-without-majority|1000|--nodes 3 --rf 3 --nemesis isolate-peers,crash
CANARIES
  echo
  echo "Reproduce one: \`cargo canaryrun --release -p crucial-sim -- shrink --seed SEED --canary stale-reads\`."
} > reports/sim-sweep.md

histories=../shared/histories
if [ -d "$histories" ]; then
  {
    echo "# Checker benchmark"
    echo
    echo "Measured $(date -u +%Y-%m-%d) with \`deploy/sim-reports.sh\`: \`crucial-sim check --repeat 51 FILE\`, release"
    echo "build, one core per history (one partition each). The time is the median of 51 checks of the file"
    echo "already in memory (parsing included, process start excluded), in microseconds."
    echo
    echo "| file | verdict | median check time (us) |"
    echo "|---|---|---:|"
    for file in "$histories"/porcupine-etcd/*.log "$histories"/porcupine-kv/*.txt "$histories"/knossos-cas/*/*.edn; do
      line=$($sim check --repeat 51 "$file" 2>/dev/null || true)
      name=${file#"$histories"/}
      verdict=$(echo "$line" | cut -f2)
      micros=$(echo "$line" | cut -f3)
      echo "| $name | $verdict | $micros |"
    done
    echo
    echo "Method: Wing & Gong's search with Lowe's memoisation (a set of (linearized operations, model"
    echo "state) pairs already explored), on a doubly linked list of call and return events; partitions (keys)"
    echo "are checked in parallel; a time budget answers \`unknown\` instead of hanging."
    echo
    echo "Porcupine itself could not be run beside it here: it is a Go module fetched from GitHub or"
    echo "proxy.golang.org, neither of which this machine reaches (only crates.io, PyPI, Debian and npm), so"
    echo "the side-by-side figure the issue asks for is still missing."
  } > reports/checker-bench.md
fi
echo "wrote reports/sim-sweep.md and reports/checker-bench.md"
