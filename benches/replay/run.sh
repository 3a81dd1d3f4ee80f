#!/usr/bin/env bash
# Replay of 100,000 logs (SPEC §13): a release build of ferrox on a
# temporary data directory, one destination whose transform filters every
# message (so each log ends at once, without a receiver), 100,001 messages
# sent, then:
#   - a replay of all 100,001 is refused (400, the limit named);
#   - a replay of exactly 100,000 is timed (the POST, answered once the
#     action is durable) and the time until all 100,000 resent logs ended;
#   - resident memory before, right after, and at the end; and the peak.
#
#   bash benches/replay/run.sh
#
# FERROX_BIN=/path/to/ferrox runs another build. Needs curl and python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${FERROX_BIN:-./target/release/ferrox}
[ -n "${FERROX_BIN:-}" ] || cargo build --release --bin ferrox
data=$(mktemp -d "${TMPDIR:-/tmp}/ferrox-replay.XXXXXX")
dest=11111111-1111-4111-8111-111111111111
cat > "$data/ferrox.toml" <<TOML
admin_token = "replay-bench-operator-token"
[[sources]]
id = "22222222-2222-4222-8222-222222222222"
name = "bench"
api_key = "bench-key"
secret = "bench-secret"
[[destinations]]
id = "$dest"
name = "filtered"
url = "http://127.0.0.1:9/never"
environment = "staging"
[[subscriptions]]
source_id = "22222222-2222-4222-8222-222222222222"
destination_id = "$dest"
data_model = "PatientAdmin"
transform = "empty"
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
URL=$url PID=$pid DEST=$dest python3 benches/replay/replay.py
