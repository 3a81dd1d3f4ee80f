#!/usr/bin/env bash
# Restart with N pending messages (default 1,000,000): a release build of
# ferrox on a temporary data directory, one production destination paused
# by its operator, wrk sending 1 KiB PatientAdmin messages until N are
# accepted (all pending, in the paused queue). Then:
#   - a clean stop (SIGTERM) and a start: time from the start to
#     `GET /readyz` answering 200, and the records the start replayed;
#   - kill -9 after more SENDs, and a start again: the same figures;
#   - after each start, the queue's depth is checked to be N (N + the
#     later SENDs): nothing pending was lost.
#
#   bash benches/restart/run.sh [pending]
#
# FERROX_BIN=/path/to/ferrox runs another build; RESTART_JSON=FILE also writes
# the figures to FILE as JSON. Needs wrk, curl, python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
pending=${1:-1000000}
command -v wrk >/dev/null || { echo "install wrk first: apt-get install wrk" >&2; exit 1; }
bin=${FERROX_BIN:-./target/release/ferrox}
[ -n "${FERROX_BIN:-}" ] || cargo build --release --bin ferrox
data=$(mktemp -d "${TMPDIR:-/tmp}/ferrox-restart.XXXXXX")
dest=11111111-1111-4111-8111-111111111111
admin=restart-bench-operator-token
cat > "$data/ferrox.toml" <<TOML
admin_token = "$admin"
[[sources]]
id = "22222222-2222-4222-8222-222222222222"
name = "load"
api_key = "load-key"
secret = "load-secret"
[[destinations]]
id = "$dest"
name = "paused"
url = "http://127.0.0.1:9/never"
environment = "production"
[[subscriptions]]
source_id = "22222222-2222-4222-8222-222222222222"
destination_id = "$dest"
data_model = "PatientAdmin"
TOML
unset_ferrox=(); for v in $(compgen -e | grep '^FERROX_'); do unset_ferrox+=(-u "$v"); done
pid=
trap 'kill -9 $pid 2>/dev/null || true; rm -rf "$data"' EXIT
now_ms() { date +%s%3N; }

# Starts the engine; sets pid, url and ready_ms (start to /readyz 200).
start() {
    local started; started=$(now_ms)
    : > "$data/stdout"
    env "${unset_ferrox[@]}" RUST_LOG=warn "$bin" serve --config "$data/ferrox.toml" --data-dir "$data" \
        --listen 127.0.0.1:0 > "$data/stdout" 2>> "$data/stderr" &
    pid=$!
    url=
    for _ in $(seq 60000); do
        [ -n "$url" ] || url=$(sed -n 's/^ferrox listening on //p' "$data/stdout" | head -1)
        if [ -n "$url" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/readyz")" = 200 ]; then
            ready_ms=$(( $(now_ms) - started ))
            return
        fi
        sleep 0.005
    done
    cat "$data/stderr"; exit 1
}

metric() { curl -sf "$url/metrics" | sed -n "s/^$1 //p" | head -1; }
depth() {
    curl -sf "$url/api/v1/destinations/$dest/queue" -H "Authorization: Bearer $admin" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["depth"])'
}

# Sends with wrk until the queue holds $1 messages.
fill() {
    local token
    token=$(curl -sf -X POST "$url/auth/authenticate" -H 'content-type: application/json' \
        -d '{"apiKey":"load-key","secret":"load-secret"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["accessToken"])')
    while [ "$(depth)" -lt "$1" ]; do
        FERROX_TOKEN=$token wrk -t2 -c64 -d5s -s benches/load/send.lua "$url/endpoint" > /dev/null
    done
}

start
curl -sf -X POST "$url/api/v1/destinations/$dest/pause" -H "Authorization: Bearer $admin" > /dev/null
echo "filling the paused queue to $pending messages..." >&2
fill "$pending"
n=$(depth)
wal_mib=$(du -sm "$data/wal" | cut -f1)
kill -TERM "$pid"; wait "$pid" || true
start
clean_ms=$ready_ms; clean_replayed=$(metric ferrox_start_replayed_records); clean_depth=$(depth)
fill $((n + 20000))
n2=$(depth)
kill -9 "$pid"; wait "$pid" 2>/dev/null || true
start
crash_ms=$ready_ms; crash_replayed=$(metric ferrox_start_replayed_records); crash_depth=$(depth)
kib() { sed -n "s/^$1:\s*\([0-9]*\) kB/\1/p" "/proc/$pid/status"; }
anon_mib=$(( $(kib RssAnon) / 1024 )); file_mib=$(( $(kib RssFile) / 1024 ))

printf '| start after | pending messages | WAL | ready in | records replayed | pending after the start |\n|---|---|---|---|---|---|\n'
printf '| a clean stop (SIGTERM) | %s | %s MiB | **%s ms** | %s | %s |\n' "$n" "$wal_mib" "$clean_ms" "$clean_replayed" "$clean_depth"
printf '| kill -9 | %s | | **%s ms** | %s | %s |\n' "$n2" "$crash_ms" "$crash_replayed" "$crash_depth"
echo "resident memory after the last start: $anon_mib MiB anonymous, $file_mib MiB of mapped files (the WAL's pages the start read)"
[ "$clean_depth" = "$n" ] && [ "$crash_depth" = "$n2" ] || { echo "pending messages were lost" >&2; exit 1; }
if [ -n "${RESTART_JSON:-}" ]; then
    printf '{"pending": %s, "wal_mib": %s, "clean_ms": %s, "clean_replayed": %s, "crash_pending": %s, "crash_ms": %s, "crash_replayed": %s, "rss_anon_mib": %s}\n' \
        "$n" "$wal_mib" "$clean_ms" "$clean_replayed" "$n2" "$crash_ms" "$crash_replayed" "$anon_mib" > "$RESTART_JSON"
fi
