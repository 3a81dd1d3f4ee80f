#!/usr/bin/env bash
# Load test of POST /endpoint: a release build of ferrox on a temporary data
# directory, wrk sending 1 KiB PatientAdmin messages over 64 connections.
# Every 200 is durable: the engine answers only after fdatasync.
#
#   bash benches/load/run.sh [duration_s] [connections]
#
# FERROX_BIN=/path/to/ferrox runs another build (a baseline) instead.
#
# The one destination subscribed: by default a staging one where nothing
# listens, so each SEND also costs a failed delivery attempt (refused
# connection, its outcome journaled and written to the history).
# DESTINATION=paused makes it a production destination paused by its
# operator, so its queue holds every message and the run measures the
# accept path alone (compare.sh does this).
#
# Needs wrk (Debian package `wrk`), curl and python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${1:-20}
connections=${2:-64}
command -v wrk >/dev/null || { echo "install wrk first: apt-get install wrk" >&2; exit 1; }
bin=${FERROX_BIN:-./target/release/ferrox}
[ -n "${FERROX_BIN:-}" ] || cargo build --release --bin ferrox
destination=${DESTINATION:-unreachable}
case $destination in
    unreachable) environment=staging ;;
    paused) environment=production ;;
    *) echo "DESTINATION is unreachable or paused, not $destination" >&2; exit 1 ;;
esac
data=$(mktemp -d "${TMPDIR:-/tmp}/ferrox-load.XXXXXX")
cat > "$data/ferrox.toml" <<TOML
admin_token = "load-test-operator-token"
[[sources]]
id = "22222222-2222-4222-8222-222222222222"
name = "load"
api_key = "load-key"
secret = "load-secret"
[[destinations]]
id = "11111111-1111-4111-8111-111111111111"
name = "sink"
url = "http://127.0.0.1:9/sink"
environment = "$environment"
[[subscriptions]]
source_id = "22222222-2222-4222-8222-222222222222"
destination_id = "11111111-1111-4111-8111-111111111111"
data_model = "PatientAdmin"
TOML
# The engine takes every FERROX_ variable as a configuration key: the
# script's own (FERROX_BIN) must not reach it.
unset_ferrox=(); for v in $(compgen -e | grep '^FERROX_'); do unset_ferrox+=(-u "$v"); done
env "${unset_ferrox[@]}" RUST_LOG=warn "$bin" serve --config "$data/ferrox.toml" --data-dir "$data" \
    --listen 127.0.0.1:0 > "$data/stdout" 2> "$data/stderr" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 100); do
    grep -q "listening on" "$data/stdout" && break
    sleep 0.1
done
url=$(sed -n 's/^ferrox listening on //p' "$data/stdout" | head -1)
[ -n "$url" ] || { cat "$data/stderr"; exit 1; }
token=$(curl -sf -X POST "$url/auth/authenticate" -H 'content-type: application/json' \
    -d '{"apiKey":"load-key","secret":"load-secret"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["accessToken"])')
if [ "$destination" = paused ]; then
    curl -sf -X POST "$url/api/v1/destinations/11111111-1111-4111-8111-111111111111/pause" \
        -H "Authorization: Bearer load-test-operator-token" > /dev/null
fi
before=$(curl -sf "$url/metrics" | sed -n 's/^ferrox_messages_accepted_total //p')
echo "wrk: $connections connections, ${duration}s, against $url/endpoint (destination: $destination)"
FERROX_TOKEN=$token wrk -t2 -c"$connections" -d"${duration}s" --latency -s benches/load/send.lua "$url/endpoint"
after=$(curl -sf "$url/metrics" | sed -n 's/^ferrox_messages_accepted_total //p')
echo "messages accepted by the engine during the run: $((after - before))"
