#!/usr/bin/env bash
# Every speed target of the engine, measured in one run, each beside the
# baseline the same run measured, printed as one table. The benchmarks
# themselves are the ones docs/performance.md describes:
#   - durable SEND against PostgreSQL's durable INSERT (benches/load/compare.sh)
#   - fan-out, lanes against strict FIFO, accept -> delivered at light load
#     (cargo bench --bench delivery)
#   - restart with a million pending messages (benches/restart/run.sh)
#   - WAL group commit with 64 appenders, against one raw pwrite + fdatasync
#     (cargo bench --bench wal)
#
#   bash benches/targets.sh
#
# About 10 minutes on 2 cores. Needs what those need: wrk, curl, python3,
# PostgreSQL 15 (Debian's package) and root to run it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin ferrox
log=$(mktemp -d "${TMPDIR:-/tmp}/ferrox-targets.XXXXXX")
trap 'rm -rf "$log"' EXIT

echo "== durable SEND against PostgreSQL" >&2
bash benches/load/compare.sh 15 64 1 > "$log/compare" 2>&1 || { cat "$log/compare" >&2; exit 1; }
echo "== delivery: fan-out, lanes, latency" >&2
FERROX_BENCH_PHASES=fanout,lanes,latency cargo bench --bench delivery > "$log/delivery" 2>&1 || { cat "$log/delivery" >&2; exit 1; }
echo "== restart with 1,000,000 pending messages" >&2
bash benches/restart/run.sh 1000000 > "$log/restart" 2>&1 || { cat "$log/restart" >&2; exit 1; }
echo "== WAL group commit" >&2
cargo bench --bench wal -- 'append_commit/64 tasks/256B|raw_baseline/pwrite' > "$log/wal" 2>&1 || { cat "$log/wal" >&2; exit 1; }

LOG=$log python3 - <<'PY'
import os, re
log = os.environ["LOG"]
read = lambda name: open(os.path.join(log, name)).read()
rows = []

compare = read("compare")
m = re.search(r"^\| 1 \| (\d+) \(([\d.]+) ms\) \| (\d+) \(([\d.]+) ms\) \| ([\d.]+)×", compare, re.M)
if m:
    rows.append(("durable SEND, 64 connections, 1 KiB", "≥ 2× PostgreSQL, p99 ≤ 10 ms",
                 f"{m[1]}/s, p99 {m[2]} ms: {m[5]}×", f"PostgreSQL INSERT {m[3]}/s"))

delivery = read("delivery")
m = re.search(r"fan-out: (\d+) deliveries to (\d+) destinations in [\d.]+ s: (\d+) deliveries/s", delivery)
if m:
    rows.append((f"fan-out to {m[2]} destinations", "≥ 30k deliveries/s", f"{m[3]}/s", "—"))
m = re.search(r"strict FIFO (\d+) deliveries/s, (\d+) lanes (\d+) deliveries/s: ([\d.]+)x", delivery)
if m:
    rows.append((f"5 ms receiver: {m[2]} lanes", "≥ 14× strict FIFO", f"{m[3]}/s: {m[4]}×", f"strict FIFO {m[1]}/s"))
m = re.search(r"p50 ([\d.]+) ms, p99 ([\d.]+) ms, max", delivery)
if m:
    rows.append(("accept → delivered, light load", "p50 ≤ 1 ms, p99 ≤ 5 ms", f"p50 {m[1]} ms, p99 {m[2]} ms", "—"))

restart = read("restart")
for m in re.finditer(r"^\| (a clean stop \(SIGTERM\)|kill -9) \| (\d+) \|[^|]*\| \*\*(\d+) ms\*\*", restart, re.M):
    rows.append((f"restart after {m[1]}, {int(m[2]):,} pending", "ready ≤ 2 s", f"{int(m[3]) / 1000:.2f} s", "—"))

wal = read("wal")
def thrpt(name):
    m = re.search(re.escape(name) + r"[\s\S]*?thrpt:\s+\[[\d.]+ [A-Za-z/]+ ([\d.]+) ([KMG]?)elem/s", wal)
    if not m:
        return None
    return float(m[1]) * {"": 1, "K": 1e3, "M": 1e6, "G": 1e9}[m[2]]
def time_us(name):
    m = re.search(re.escape(name) + r"[\s\S]*?time:\s+\[[\d.]+ \S+ ([\d.]+) (ns|µs|us|ms)", wal)
    if not m:
        return None
    return float(m[1]) * {"ns": 1e-3, "µs": 1, "us": 1, "ms": 1e3}[m[2]]
commit, raw = thrpt("append_commit/64 tasks/256B"), time_us("raw_baseline/pwrite")
if commit:
    rows.append(("WAL group commit, 64 appenders, 256 B", "≥ 1M records/s", f"{commit / 1e3:.0f}k records/s",
                 f"one raw pwrite + fdatasync {raw:.0f} µs" if raw else "—"))

print("| measure | target | measured | baseline, same run |")
print("|---|---|---|---|")
for row in rows:
    print("| " + " | ".join(row) + " |")
missing = 7 - len(rows)
if missing:
    print(f"\n{missing} figure(s) missing: see the logs above", flush=True)
    raise SystemExit(1)
PY
