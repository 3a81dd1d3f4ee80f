#!/usr/bin/env bash
# The performance curves: the load tool (examples/load) swept over
# connections, payload size, destinations and lanes, and the restart
# benchmark over the size of the WAL; the figures go to
# docs/curves/curves.json and the plots to docs/curves/*.png.
#
#   bash benches/curves/run.sh [seconds per point]
#   SWEEPS="destinations lanes" bash benches/curves/run.sh   # some sweeps only
#
# Each point is its own engine on a fresh data directory, with everything
# but the swept value at its default (64 connections, 1 KiB, 1 destination,
# strict FIFO):
#   connections   1, 4, 16, 64, 128, 256; closed loop for the given seconds
#   payload       256 B to 1 MiB; the same
#   destinations  1, 10, 50, 100, 200, every message to each; a burst of
#                 100,000 deliveries, timed to the last one
#   lanes         1 (strict FIFO) to 64, one destination whose receiver
#                 takes 5 ms a request; a burst of 600 messages a lane
#   recovery      100k, 250k, 500k and 1M pending messages
# In the closed-loop sweeps the one strict-FIFO destination takes fewer
# messages a second than the sources send: deliveries/s is what arrived in
# the window, and its accept → delivered is drawn only where every delivery
# arrived within 2 s of the run's end.
# Needs wrk, curl and python3 (for the restart benchmark), and a TrueType
# font for the plots (see examples/plot.rs).
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-8}
sweeps=${SWEEPS:-connections payload destinations lanes recovery}
wants() { [[ " $sweeps " == *" $1 "* ]]; }
out=docs/curves
cargo build --release --bin ferrox --example load --example plot
work=$(mktemp -d "${TMPDIR:-/tmp}/ferrox-curves.XXXXXX")
trap 'rm -rf "$work"' EXIT
load() {
    local name=$1; shift
    echo "== $name: $*" >&2
    ./target/release/examples/load --json "$work/$name.json" "$@" >&2
}
timed=(--duration "$seconds" --warmup 2 --drain-limit 2)
if wants connections; then
    for c in 1 4 16 64 128 256; do load "connections-$c" "${timed[@]}" --connections "$c"; done
fi
if wants payload; then
    for p in 256 1024 4096 16384 65536 262144 1048576; do load "payload-$p" "${timed[@]}" --payload "$p"; done
fi
if wants destinations; then
    for d in 1 10 50 100 200; do load "destinations-$d" --messages $((100000 / d)) --destinations "$d"; done
fi
if wants lanes; then
    for l in 1 2 4 8 16 32 64; do load "lanes-$l" --messages $((600 * l)) --lanes "$l" --receiver-delay-ms 5; done
fi
if wants recovery; then
    for n in 100000 250000 500000 1000000; do
        echo "== recovery: $n pending" >&2
        FERROX_BIN=./target/release/ferrox RESTART_JSON="$work/recovery-$n.json" bash benches/restart/run.sh "$n" >&2
    done
fi
mkdir -p "$out"
# The sweeps run now replace theirs in curves.json; the others stay.
python3 - "$work" "$out/curves.json" "$sweeps" <<'PY'
import glob, json, os, sys, time
work, target, sweeps = sys.argv[1], sys.argv[2], sys.argv[3].split()
keys = {"connections": "connections", "payload": "payload_bytes", "destinations": "destinations",
        "lanes": "lanes", "recovery": "pending"}
curves = json.load(open(target)) if os.path.exists(target) else {}
for sweep in sweeps:
    found = [json.load(open(f)) for f in glob.glob(os.path.join(work, sweep + "-*.json"))]
    curves[sweep] = sorted(found, key=lambda r: r[keys[sweep]])
curves["context"] = (f"measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores, load tool and engine "
                     "on the same machine, every SEND durable; each point one run")
json.dump(curves, open(target, "w"), indent=1)
PY
./target/release/examples/plot "$out/curves.json" "$out"
