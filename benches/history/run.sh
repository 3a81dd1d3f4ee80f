#!/usr/bin/env bash
# History on disk: the engine holding N retained messages whose logs have
# all ended, against the same engine holding a baseline of 10,000.
#
#   bash benches/history/run.sh [messages] [baseline_messages]
#
# Defaults 200000 and 10000 (the CI-sized run); the full run is 10000000
# (about 15 GiB of WAL under ${TMPDIR:-/tmp}). For each size,
# `examples/make_history.rs` writes a data directory straight through the
# journal; then the engine is started on it (first start: it may build
# derived indexes), stopped with SIGTERM and started again (restart), and
# the script reads RssAnon, measures GET /api/v1/logs?destination=&status=
# (Succeeded, common; Failed, one log in 1000) and GET /api/v1/logs/{id}
# (`latency.py`: sequential, keep-alive, 200 warm-up then 2000 each), and
# reads RssAnon again. Targets: RssAnon at N ≤ 1.5x the baseline's; list
# p99 ≤ 50 ms; lookup p99 ≤ 5 ms; restart to ready ≤ 2 s. It reports
# numbers, it passes or fails nothing.
#
# Environment:
#   FERROX_BIN=/path/to/ferrox   measure another build (a baseline)
#   MAKE_HISTORY_BIN=/path/...   use another generator (else built here)
#   FAILED_EVERY=K               every K-th log of each destination fails (1000)
#   REUSE=1   reuse a directory of the same size and K that a KEEP=1 run
#             made less than 24 h ago (its history must stay in retention)
#   KEEP=1    keep the generated directories
#   COUNT=2000 WARMUP=200        requests per kind
#
# Everything listens on 127.0.0.1. Needs python3 (standard library only).
set -euo pipefail
cd "$(dirname "$0")/../.."
messages=${1:-200000}
baseline=${2:-10000}
failed_every=${FAILED_EVERY:-1000}
count=${COUNT:-2000}
warmup=${WARMUP:-200}
tmp=${TMPDIR:-/tmp}
helper=benches/history/latency.py
admin_token=history-bench-admin-token
ready_timeout_s=3600

bin=${FERROX_BIN:-./target/release/ferrox}
gen=${MAKE_HISTORY_BIN:-./target/release/examples/make_history}
targets=()
[ -n "${FERROX_BIN:-}" ] || targets+=(--bin ferrox)
[ -n "${MAKE_HISTORY_BIN:-}" ] || targets+=(--example make_history)
[ ${#targets[@]} -eq 0 ] || cargo build --release "${targets[@]}"

# One engine runs at a time: its pid while it runs.
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

# Writes (or, with REUSE=1, finds) the directory of $1 messages.
generate() {
    local n=$1 dir="$tmp/ferrox-history-$1-k$failed_every"
    dirs+=("$dir")
    if [ "${REUSE:-0}" = 1 ] && [ -n "$(find "$dir/generated.txt" -mmin -1440 2>/dev/null)" ]; then
        echo "reusing $dir (made $(date -r "$dir/generated.txt"))" >&2
        rm -f "$dir"/stdout.* "$dir"/stderr.*
        reused[$n]=1
    else
        rm -rf "$dir"
        "$gen" "$dir" "$n" --failed-every "$failed_every" >&2
        reused[$n]=0
    fi
}

# Starts the engine on directory $1, its output in files labelled $2;
# sets pid, url and ready_ms (spawn to /readyz 200).
start() {
    local dir=$1 label=$2 since line
    since=$(date +%s%N)
    # The engine takes every FERROX_ variable as a configuration key: the
    # script's own (FERROX_BIN) must not reach it.
    unset_ferrox=(); for v in $(compgen -e | grep '^FERROX_'); do unset_ferrox+=(-u "$v"); done
    env "${unset_ferrox[@]}" RUST_LOG=${RUST_LOG:-info} "$bin" serve --config "$dir/ferrox.toml" --data-dir "$dir/data" \
        --listen 127.0.0.1:0 > "$dir/stdout.$label" 2> "$dir/stderr.$label" &
    pid=$!
    running=$pid
    if ! line=$(python3 "$helper" ready "$dir/stdout.$label" "$since" "$pid" "$ready_timeout_s"); then
        tail -n 20 "$dir/stderr.$label" >&2
        exit 1
    fi
    read -r url _ ready_ms <<< "$line"
}

stop() {
    local status=0
    kill -TERM "$pid"
    wait "$pid" || status=$?
    running=""
    [ "$status" -eq 0 ] || echo "warning: ferrox (pid $pid) exited with status $status" >&2
}

# RssAnon (or the field named) of the running engine, in KiB.
rss_kib() {
    awk -v field="${1:-RssAnon}:" '$1 == field { print $2 }' "/proc/$pid/status"
}

# What the engine's log says about a start: WAL recovery time, compactions.
start_notes() {
    local log=$1
    sed 's/\x1b\[[0-9;]*m//g' "$log" | awk '
        /write-ahead log recovered/ { for (i = 1; i <= NF; i++) if ($i ~ /^duration_ms=/) { split($i, a, "="); wal = a[2] } }
        /journal compacted/ { compacted++ }
        END { printf "%s %d\n", (wal == "" ? "?" : wal), compacted }'
}

# The engine's warnings and errors during a run, without colours.
warnings() {
    sed 's/\x1b\[[0-9;]*m//g' "$1" | grep -E ' (WARN|ERROR) ' | head -n 5 || true
}

declare -A result reused
measure() {
    local n=$1 dir="$tmp/ferrox-history-$1-k$failed_every"
    echo "== $n messages: first start" >&2
    start "$dir" first
    result[$n,first_ms]=$ready_ms
    result[$n,rss_first]=$(rss_kib)
    stop
    result[$n,notes_first]=$(start_notes "$dir/stderr.first")
    result[$n,warnings_first]=$(warnings "$dir/stderr.first")
    echo "== $n messages: restart, then queries" >&2
    start "$dir" restart
    result[$n,restart_ms]=$ready_ms
    result[$n,rss_restart]=$(rss_kib)
    result[$n,rss_file_restart]=$(rss_kib RssFile)
    python3 "$helper" bench "$url" "$admin_token" "$dir/ids.txt" "$dir/destinations.txt" "$count" "$warmup" \
        | tee "$dir/latency.txt" >&2
    result[$n,rss_queries]=$(rss_kib)
    result[$n,rss_file_queries]=$(rss_kib RssFile)
    stop
    result[$n,notes_restart]=$(start_notes "$dir/stderr.restart")
    result[$n,warnings_restart]=$(warnings "$dir/stderr.restart")
    local kind
    for kind in list-succeeded list-failed get-log; do
        result[$n,$kind]=$(awk -v k="$kind" '$1 == k {
            printf "%s / %s / %s / %s", $3, $4, $5, $6
            if (k ~ /^list/) printf " (%s logs)", $2
        }' "$dir/latency.txt")
    done
    local key
    for key in messages_per_s wal_record_bytes_per_message segment_files; do
        result[$n,$key]=$(sed -n "s/^$key=//p" "$dir/generated.txt")
    done
    result[$n,wal_disk_kib]=$(awk -F= '$1 == "wal_disk_bytes" { print $2 / 1024 }' "$dir/generated.txt")
}

generate "$baseline"
generate "$messages"
measure "$baseline"
measure "$messages"

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf (b > 0 ? "%.2fx" : "?"), a / b }'; }
row() { printf '%-44s %-38s %-38s %s\n' "$@"; }
n=$messages
b=$baseline
echo
echo "history on disk: $("$bin" --version 2>/dev/null || echo "$bin"), $n messages against $b, every ${failed_every}th log of each destination Failed"
row "" "N = $n" "baseline = $b" "target"
row "first start to ready, ms" "${result[$n,first_ms]}" "${result[$b,first_ms]}" ""
row "restart to ready, ms" "${result[$n,restart_ms]}" "${result[$b,restart_ms]}" "≤ 2000 at N"
row "WAL recovery ms / compactions, first start" "${result[$n,notes_first]/ / / }" "${result[$b,notes_first]/ / / }" ""
row "WAL recovery ms / compactions, restart" "${result[$n,notes_restart]/ / / }" "${result[$b,notes_restart]/ / / }" ""
row "RssAnon after first start, MiB" "$(mib "${result[$n,rss_first]}")" "$(mib "${result[$b,rss_first]}")" ""
row "RssAnon after restart, MiB" "$(mib "${result[$n,rss_restart]}")" "$(mib "${result[$b,rss_restart]}")" ""
row "RssAnon after the queries, MiB" "$(mib "${result[$n,rss_queries]}")" "$(mib "${result[$b,rss_queries]}")" ""
row "RssFile after restart / queries, MiB" "$(mib "${result[$n,rss_file_restart]}") / $(mib "${result[$n,rss_file_queries]}")" \
    "$(mib "${result[$b,rss_file_restart]}") / $(mib "${result[$b,rss_file_queries]}")" "(the WAL's map; not counted)"
row "RssAnon ratio N / baseline, after restart" "$(ratio "${result[$n,rss_restart]}" "${result[$b,rss_restart]}")" "" "≤ 1.5x"
row "RssAnon ratio N / baseline, after queries" "$(ratio "${result[$n,rss_queries]}" "${result[$b,rss_queries]}")" "" "≤ 1.5x"
row "list Succeeded p50/p90/p99/max ms" "${result[$n,list-succeeded]}" "${result[$b,list-succeeded]}" "p99 ≤ 50"
row "list Failed p50/p90/p99/max ms" "${result[$n,list-failed]}" "${result[$b,list-failed]}" "p99 ≤ 50"
row "GET log p50/p90/p99/max ms" "${result[$n,get-log]}" "${result[$b,get-log]}" "p99 ≤ 5"
row "generator, messages/s" "${result[$n,messages_per_s]}" "${result[$b,messages_per_s]}" ""
row "WAL record bytes per message" "${result[$n,wal_record_bytes_per_message]}" "${result[$b,wal_record_bytes_per_message]}" ""
row "WAL on disk, MiB (segment files)" "$(mib "${result[$n,wal_disk_kib]}") (${result[$n,segment_files]})" \
    "$(mib "${result[$b,wal_disk_kib]}") (${result[$b,segment_files]})" ""
if [ "${reused[$n]}" = 1 ] || [ "${reused[$b]}" = 1 ]; then
    echo "(a directory was reused: its \"first start\" was not the first)"
fi
for size in "$n" "$b"; do
    for run in first restart; do
        if [ -n "${result[$size,warnings_$run]}" ]; then
            echo "engine warnings, $size messages, $run start (first 5):"
            sed 's/^/  /' <<< "${result[$size,warnings_$run]}" | cut -c1-240
        fi
    done
done
