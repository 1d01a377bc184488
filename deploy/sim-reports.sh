#!/usr/bin/env bash
# Regenerates reports/sim-sweep.md and reports/checker-bench.md from this machine.
# Usage: deploy/sim-reports.sh [SEEDS]   (default 5000; needs ../shared/histories for the checker bench)
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-5000}
cargo build --release --quiet -p crucial-sim
sim=./target/release/crucial-sim
sweep=$(mktemp)
$sim run --seeds "$seeds" --summary "$sweep" >/dev/null

{
  echo "# Simulation sweep"
  echo
  echo "Measured $(date -u +%Y-%m-%d) on this project's 2-core / 24 GiB machine with \`deploy/sim-reports.sh $seeds\`"
  echo "(\`crucial-sim run --seeds $seeds\`, release build, seeds run on both cores). Each seed runs a cluster"
  echo "of 3 to 5 members (the real sans-IO \`Node\`), rf 2 or 3 (both chosen by the seed), that keeps its"
  echo "configuration in a simulated S3 store (3-25 ms per request, 5% of requests fail) and hands keys"
  echo "over in state transfers cut into 256-byte parts (several messages each), and 6 client"
  echo "processes (the real \`ClientSession\`, routing by the configuration, following redirects) doing 60"
  echo "operations each over 17 keys, one per built-in type, parked operations included, under 6 faults"
  echo "drawn from the seed in a 3 s fault phase (every nemesis kind, membership changes included: joins,"
  echo "graceful departures, replacements; at most rf - 1 of the faults take a member out), then a 10 s"
  echo "quiet phase in which every operation issued after the heal must complete and every member asked"
  echo "to leave (and not crashed since) must be gone by the end. Histories are checked"
  echo "key by key against each type's own \`apply\`. CyclicBarrier keys, whose parties complete together"
  echo "(no single linearization point per call), are checked for the barrier's own property instead:"
  echo "every party that got through overlaps in real time the wait that tripped the barrier."
  echo
  cat "$sweep"
  echo
  echo
  echo "Events per second counts simulation and checking together, over wall time on two cores."
  echo
  echo "## Canaries"
  echo
  echo "Each deliberate bug, switched on with \`--canary\`, over the first seeds of a scenario that exercises"
  echo "it, and what \`shrink\` made of the first failing seed (faults, clients x operations per client,"
  echo "operations recorded, keys). The replication canaries need a crash of a primary while its backups lag"
  echo "(one hot key, slow links) and reconfigurations during traffic (joins and departures);"
  echo "\`forget-leave\` (a departure asked during a state transfer is forgotten) is a liveness bug."
  echo
  echo "| canary | scenario | seeds failing | first failing seed | failure | shrunk from | shrunk to |"
  echo "|---|---|---:|---:|---|---|---|"
  while IFS='|' read -r canary seeds flags; do
    # shellcheck disable=SC2086 # the flags are words
    sweep_output=$($sim run --seeds "$seeds" --canary "$canary" $flags 2>&1 || true)
    failing=$(echo "$sweep_output" | grep -E '^\| failures' | grep -oE '[0-9]+' || true)
    seed=$(echo "$sweep_output" | grep -oE '^seed [0-9]+' | cut -d' ' -f2 | sort -n | head -n 1 || true)
    # shellcheck disable=SC2086
    shrunk=$($sim shrink --seed "$seed" --canary "$canary" $flags 2>/dev/null || true)
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
CANARIES
  echo
  echo "Reproduce one: \`cargo run --release -p crucial-sim -- shrink --seed SEED --canary stale-reads\`."
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
