#!/usr/bin/env bash
# Real network partitions between real dso-server processes (needs root): three members in
# Linux network namespaces of their own, the recorded client workload and waves of cloud threads
# (killed, retried, raced by backups) in a hub namespace, and partitions of every kind (pair cut,
# one direction, a member cut from its peers, from everything, a bridge member) held and healed
# in turn. Prints, per kind, the longest wait of a call, the longest time without an answer,
# how soon after the heal the cluster served whole again and the configurations each partition
# cost; checks the history, the witness counter, every cloud thread and every balance.
#
# Usage: deploy/partitions.sh [--rounds N] [--hold-ms MS] [--healed-ms MS] [--seed S]
#                             [--threads-per-wave N] [--wave-interval-ms MS]
#                             [--kinds K,...] [--before REV] [--out DIR] [--history-out FILE]
#   --kinds K,... only these partition kinds (pair-cut, one-way, peers-cut, isolated, bridge,
#                 store-cut), in turn; all of them by default
#   --threads-per-wave, --wave-interval-ms  the cloud-thread workload (default 8 threads a
#                 second at most; each leaves its stored outcome behind, issue 20)
#   --before REV  measures the dso-server of commit REV instead (built in a worktree under
#                 target/partitions-before; the harness and its clients are this checkout's,
#                 so the old server is built announcing this checkout's protocol version).
#   --out DIR     where the summary, the per-partition lines and the logs go
#                 (default target/partitions).
#   --history-out FILE  also keeps the recorded history (JSON, for `crucial-sim check --model
#                 dso`; written before the check, about 100 bytes per operation).
# Exit status: 0 all good, 1 a violation, 2 it could not run.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=10 hold_ms=5000 healed_ms=4000 seed=1 before="" out=target/partitions
threads_per_wave=8 wave_interval_ms=1000 history_out=() kinds=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --hold-ms) hold_ms=$2; shift 2 ;;
    --healed-ms) healed_ms=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --threads-per-wave) threads_per_wave=$2; shift 2 ;;
    --wave-interval-ms) wave_interval_ms=$2; shift 2 ;;
    --before) before=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --history-out) history_out=(--history-out "$2"); shift 2 ;;
    --kinds) kinds=(--kinds "$2"); shift 2 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "network namespaces need root" >&2; exit 2; }
command -v ip >/dev/null && command -v tc >/dev/null || {
  apt-get install -y -q iproute2 >/dev/null 2>&1 || { echo "ip and tc (iproute2) are needed" >&2; exit 2; }
}
mkdir -p "$out"
rm -rf "$out/work" # the members append to their logs: one run per directory
cargo build --release --quiet -p crucial-dso --bin dso-server -p crucial-sim --bin crucial-sim --features crucial-dso/s3
server=$PWD/target/release/dso-server
label="this checkout ($(git rev-parse --short HEAD))"
if [ -n "$before" ]; then
  tree=target/partitions-before/src
  rm -rf "$tree"
  git worktree prune
  git worktree add --detach "$tree" "$before" >/dev/null
  trap 'git worktree remove --force "$tree" >/dev/null 2>&1 || true' EXIT
  version=$(sed -n 's/^pub const PROTOCOL_VERSION: u32 = \([0-9]*\);/\1/p' dso/core/src/protocol.rs)
  sed -i "s/^pub const PROTOCOL_VERSION: u32 = [0-9]*;/pub const PROTOCOL_VERSION: u32 = $version;/" \
    "$tree/dso/core/src/protocol.rs"
  (cd "$tree" && cargo build --release --quiet -p crucial-dso --bin dso-server --features s3 \
    --target-dir "$OLDPWD/target/partitions-before/target")
  server=$PWD/target/partitions-before/target/release/dso-server
  label="commit $(git rev-parse --short "$before")"
fi
echo "partitions: $rounds of them, held $hold_ms ms, then $healed_ms ms healed; server: $label" >&2
set +e
./target/release/crucial-sim partitions --server "$server" --rounds "$rounds" --hold-ms "$hold_ms" \
  --healed-ms "$healed_ms" --seed "$seed" --threads-per-wave "$threads_per_wave" \
  --wave-interval-ms "$wave_interval_ms" --work-dir "$out/work" --summary "$out/summary.md" \
  --rounds-out "$out/rounds.txt" "${history_out[@]}" "${kinds[@]}" | tee "$out/output.txt"
status=${PIPESTATUS[0]}
set -e
waves="--threads-per-wave $threads_per_wave --wave-interval-ms $wave_interval_ms"
echo "server: $label; command: deploy/partitions.sh --rounds $rounds --hold-ms $hold_ms --healed-ms $healed_ms --seed $seed $waves${kinds:+ ${kinds[*]}}${before:+ --before $before}" >>"$out/summary.md"
exit "$status"
