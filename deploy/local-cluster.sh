#!/usr/bin/env bash
# A replicated cluster as real processes on this machine, and the proof that it survives a
# crash: three dso-server processes on loopback (rf 3) find each other through a configuration
# file (or S3: a local moto server), clients run a recorded workload, the primary of a counter
# is killed with SIGKILL mid-run (or, with --stop leave, asked to leave with SIGTERM) and
# started again; the history is checked for linearizability and the counter for lost increments.
#
# Usage: deploy/local-cluster.sh [file|s3] [crucial-sim processes flags...]
#   e.g. deploy/local-cluster.sh file --run-ms 20000 --stop-at-ms 5000 --clients 8
#        deploy/local-cluster.sh file --stop leave --with-token
# Server logs: target/crucial-processes/server-*.log
set -euo pipefail
cd "$(dirname "$0")/.."

store="${1:-file}"
[ $# -gt 0 ] && shift
cargo build --release -q -p crucial-dso --features s3 --bin dso-server
cargo build --release -q -p crucial-sim --bin crucial-sim

flags=()
if [ "$store" = s3 ]; then
  python3 -c "import moto" 2>/dev/null || pip install -q "moto[server]"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  python3 -m moto.server -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
  moto_pid=$!
  trap 'kill $moto_pid 2>/dev/null' EXIT
  for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  python3 -c "import boto3; boto3.client('s3', endpoint_url='http://127.0.0.1:$port', region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test').create_bucket(Bucket='crucial')"
  flags=(--s3-endpoint "http://127.0.0.1:$port" --bucket crucial)
elif [ "$store" != file ]; then
  echo "usage: $0 [file|s3] [crucial-sim processes flags...]" >&2
  exit 2
fi

./target/release/crucial-sim processes --server target/release/dso-server "${flags[@]}" "$@"
