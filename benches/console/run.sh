#!/usr/bin/env bash
# The console at scale: its pages timed against the operator API's answers
# holding the same data, with the engine holding N messages' logs, and the
# same with a baseline of 10,000.
#
#   bash benches/console/run.sh [messages] [baseline_messages]
#
# Defaults 1000000 and 10000 (about 1.5 GiB of WAL under ${TMPDIR:-/tmp}).
# The data directories are the history benchmark's (`examples/make_history.rs`:
# four destinations, 1 KiB messages, one attempt per log, every 1000th log of
# each destination Failed), and REUSE=1 / KEEP=1 mean the same as there. On
# each: start the release build, wait for /readyz, run `pages.py` (200 pauses
# and resumes for an audit trail, sign in with the admin token, then per kind
# 100 warm-up and 1000 sequential keep-alive requests, each page read whole),
# stop with SIGTERM. It reports numbers, it passes or fails nothing.
#
# Then, when chromedriver is installed, `browser.py` signs in to a headless
# Chromium and loads six pages 50 times each, reading their Navigation
# Timing (first byte, DOMContentLoaded, load).
#
# Environment: FERROX_BIN, MAKE_HISTORY_BIN, FAILED_EVERY, REUSE, KEEP as in
# benches/history/run.sh; COUNT=1000 WARMUP=100 requests per kind;
# BROWSER_COUNT=50 loads per page in the browser.
#
# Everything listens on 127.0.0.1. Needs python3 (standard library only).
set -euo pipefail
cd "$(dirname "$0")/../.."
messages=${1:-1000000}
baseline=${2:-10000}
failed_every=${FAILED_EVERY:-1000}
count=${COUNT:-1000}
warmup=${WARMUP:-100}
browser_count=${BROWSER_COUNT:-50}
tmp=${TMPDIR:-/tmp}
admin_token=history-bench-admin-token

bin=${FERROX_BIN:-./target/release/ferrox}
gen=${MAKE_HISTORY_BIN:-./target/release/examples/make_history}
targets=()
[ -n "${FERROX_BIN:-}" ] || targets+=(--bin ferrox)
[ -n "${MAKE_HISTORY_BIN:-}" ] || targets+=(--example make_history)
[ ${#targets[@]} -eq 0 ] || cargo build --release "${targets[@]}"

running=""
dirs=()
cleanup() {
    if [ -n "$running" ]; then
        kill -TERM "$running" 2>/dev/null || true
        wait "$running" 2>/dev/null || true
    fi
    if [ "${KEEP:-0}" != 1 ]; then
        local d
        for d in ${dirs[@]+"${dirs[@]}"}; do rm -rf "$d"; done
    elif [ ${#dirs[@]} -gt 0 ]; then
        echo "kept: ${dirs[*]}" >&2
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

dir_of() { echo "$tmp/ferrox-history-$1-k$failed_every"; }

generate() {
    local dir
    dir=$(dir_of "$1")
    dirs+=("$dir")
    if [ "${REUSE:-0}" = 1 ] && [ -n "$(find "$dir/generated.txt" -mmin -1440 2>/dev/null)" ]; then
        echo "reusing $dir (made $(date -r "$dir/generated.txt"))" >&2
    else
        rm -rf "$dir"
        "$gen" "$dir" "$1" --failed-every "$failed_every" >&2
    fi
    rm -f "$dir"/stdout.* "$dir"/stderr.*
}

measure() {
    local n=$1 dir since line url pid
    dir=$(dir_of "$n")
    echo "== $n messages" >&2
    since=$(date +%s%N)
    # The engine takes every FERROX_ variable as a configuration key: the
    # script's own (FERROX_BIN) must not reach it.
    unset_ferrox=(); for v in $(compgen -e | grep '^FERROX_'); do unset_ferrox+=(-u "$v"); done
    env "${unset_ferrox[@]}" RUST_LOG=${RUST_LOG:-warn} "$bin" serve --config "$dir/ferrox.toml" --data-dir "$dir/data" \
        --listen 127.0.0.1:0 > "$dir/stdout.console" 2> "$dir/stderr.console" &
    pid=$!
    running=$pid
    if ! line=$(python3 benches/history/latency.py ready "$dir/stdout.console" "$since" "$pid" 3600); then
        tail -n 20 "$dir/stderr.console" >&2
        exit 1
    fi
    read -r url _ _ <<< "$line"
    python3 benches/console/pages.py "$url" "$admin_token" "$dir/ids.txt" "$dir/destinations.txt" \
        "$count" "$warmup" | tee "$dir/pages.txt" >&2
    if command -v "${CHROMEDRIVER:-chromedriver}" >/dev/null; then
        python3 benches/console/browser.py "$url" "$admin_token" "$dir/ids.txt" "$dir/destinations.txt" \
            "$browser_count" | tee -a "$dir/pages.txt" >&2
    else
        echo "no chromedriver: page loads in a browser not measured (apt-get install chromium chromium-driver)" >&2
    fi
    kill -TERM "$pid"
    wait "$pid" || true
    running=""
}

generate "$baseline"
generate "$messages"
measure "$baseline"
measure "$messages"

n=$messages
b=$baseline
echo
echo "console pages: $("$bin" --version 2>/dev/null || echo "$bin"), $n messages against $b; bytes and p50/p90/p99/max ms"
printf '%-18s %-34s %-34s %-34s\n' "" "console page at N" "operator API at N" "console page at $b"
for kind in destinations destination logs logs-destination logs-page-2 logs-failed log alerts audit; do
    cell() { awk -v k="$1" '$1 == k { printf "%s B, %s/%s/%s/%s", $2, $3, $4, $5, $6 }' "$2"; }
    printf '%-18s %-34s %-34s %-34s\n' "$kind" "$(cell "ui:$kind" "$(dir_of "$n")/pages.txt")" \
        "$(cell "api:$kind" "$(dir_of "$n")/pages.txt")" "$(cell "ui:$kind" "$(dir_of "$b")/pages.txt")"
done
for asset in console.css console.js; do
    printf '%-18s %-34s\n' "$asset" "$(awk -v k="asset:$asset" '$1 == k { printf "%s B, %s/%s/%s/%s", $2, $3, $4, $5, $6 }' "$(dir_of "$n")/pages.txt")"
done
echo
echo "in headless Chromium, ms from the navigation's start: first byte, DOMContentLoaded, load (p50 / p99)"
printf '%-18s %-30s %-30s\n' "" "at N" "at $b"
for kind in destinations destination logs logs-failed log audit; do
    cell() { awk -v k="browser:$1" '$1 == k { printf "%s/%s, %s/%s, %s/%s", $2, $3, $4, $5, $6, $7 }' "$2"; }
    printf '%-18s %-30s %-30s\n' "$kind" "$(cell "$kind" "$(dir_of "$n")/pages.txt")" "$(cell "$kind" "$(dir_of "$b")/pages.txt")"
done
