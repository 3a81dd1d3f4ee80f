#!/usr/bin/env bash
# Durable SEND against PostgreSQL's durable INSERT, same machine, same run:
# ferrox (benches/load/run.sh: wrk, 1 KiB messages, N connections, its one
# destination paused so that the run measures accepting: journaled, synced,
# answered; as the INSERT is) and
# PostgreSQL 15 (pgbench, one 1 KiB row per transaction, N clients, fsync
# and synchronous_commit on, its defaults), alternating, `rounds` times.
#
#   bash benches/load/compare.sh [duration_s] [connections] [rounds]
#
# PostgreSQL runs from Debian's package (apt-get install postgresql-15) on a
# temporary cluster owned by the `postgres` user, on a Unix socket only.
# Needs wrk, curl, python3 and root (to run PostgreSQL as `postgres`).
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${1:-15}
connections=${2:-64}
rounds=${3:-2}
pg=/usr/lib/postgresql/15/bin
[ -x "$pg/pgbench" ] || { echo "install PostgreSQL 15 first: apt-get install postgresql-15" >&2; exit 1; }
[ -n "${FERROX_BIN:-}" ] || cargo build --release --bin ferrox
cluster=$(mktemp -d "${TMPDIR:-/tmp}/ferrox-pg.XXXXXX")
chown postgres "$cluster"
as_pg() { runuser -u postgres -- "$@"; }
trap 'as_pg "$pg/pg_ctl" -D "$cluster/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$cluster"' EXIT
as_pg "$pg/initdb" -D "$cluster/data" -A trust > /dev/null
as_pg "$pg/pg_ctl" -D "$cluster/data" -l "$cluster/log" -w \
    -o "-c listen_addresses='' -c unix_socket_directories='$cluster' -c max_connections=$((connections + 10)) -c fsync=on -c synchronous_commit=on" \
    start > /dev/null
psql() { as_pg "$pg/../bin/psql" -h "$cluster" -d postgres -qAt "$@"; }
psql -c "CREATE TABLE messages (id bigserial PRIMARY KEY, body text NOT NULL)"
# One transaction per INSERT of a 1 KiB body: pgbench's autocommit.
body=$(python3 -c 'print("x" * 1024)')
echo "INSERT INTO messages (body) VALUES ('$body');" > "$cluster/insert.sql"
chown postgres "$cluster/insert.sql"

declare -a ferrox_rps pg_tps ferrox_p99 pg_lat
for round in $(seq "$rounds"); do
    out=$(DESTINATION=paused bash benches/load/run.sh "$duration" "$connections" 2>&1) || { echo "$out" >&2; exit 1; }
    ferrox_rps+=("$(sed -n 's/^Requests\/sec: *//p' <<< "$out")")
    ferrox_p99+=("$(sed -n 's/.*p99 \([0-9.]*\) ms,.*/\1/p' <<< "$out")")
    out=$(as_pg "$pg/pgbench" -h "$cluster" -n -c "$connections" -j 2 -T "$duration" -f "$cluster/insert.sql" postgres 2>&1)
    pg_tps+=("$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<< "$out")")
    pg_lat+=("$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' <<< "$out")")
    echo "round $round: ferrox ${ferrox_rps[-1]} SENDs/s (p99 ${ferrox_p99[-1]} ms), PostgreSQL ${pg_tps[-1]} INSERTs/s (mean ${pg_lat[-1]} ms)" >&2
done
printf '| round | ferrox durable SEND/s (p99) | PostgreSQL durable INSERT/s (mean latency) | ratio |\n|---|---|---|---|\n'
for i in "${!pg_tps[@]}"; do
    ratio=$(python3 -c "print(f'{${ferrox_rps[$i]} / ${pg_tps[$i]}:.2f}')")
    printf '| %s | %.0f (%s ms) | %.0f (%s ms) | %s× |\n' "$((i + 1))" "${ferrox_rps[$i]}" "${ferrox_p99[$i]}" "${pg_tps[$i]}" "${pg_lat[$i]}" "$ratio"
done
