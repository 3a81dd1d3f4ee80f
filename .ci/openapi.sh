#!/usr/bin/env bash
# The API document against the real server: starts the release binary on a
# free 127.0.0.1 port with a temporary data directory and a configuration
# with a source, a destination, a subscription and an admin token; checks
# GET /api/v1/openapi.json with openapi-spec-validator; then lets
# schemathesis generate requests for every operation and checks that no
# answer is a 5xx and that every answer conforms to the document.
# Installs its tools into a venv (FERROX_OPENAPI_VENV, default
# target/openapi-venv); builds the release binary unless FERROX_BIN names
# one. Runs alone: .ci/openapi.sh
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${FERROX_OPENAPI_VENV:-${CARGO_TARGET_DIR:-target}/openapi-venv}"
# Requests per operation in each generation phase: enough to find shapes
# the document misses, small enough for a few minutes on two cores.
examples="${FERROX_OPENAPI_EXAMPLES:-25}"

echo "== openapi: tools in $venv"
if ! [ -x "$venv/bin/schemathesis" ] || ! [ -x "$venv/bin/openapi-spec-validator" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check openapi-spec-validator schemathesis
fi
"$venv/bin/schemathesis" --version

bin="${FERROX_BIN:-}"
if [ -z "$bin" ]; then
    echo "== openapi: release binary"
    cargo build --release --bin ferrox
    bin="${CARGO_TARGET_DIR:-target}/release/ferrox"
fi

work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
admin_token="openapi-admin-token-$(python3 -c 'import secrets; print(secrets.token_hex(8))')"
cat > "$work/ferrox.toml" <<EOF
listen = "127.0.0.1:$port"
data_dir = "$work/data"
admin_token = "$admin_token"

[[sources]]
id = "11111111-1111-4111-8111-111111111111"
name = "EHR"
api_key = "openapi-ehr-key"
secret = "openapi-ehr-secret-0123456789"

# Nothing listens on port 9: deliveries fail, and development queues go on.
[[destinations]]
id = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
name = "Lab"
url = "http://127.0.0.1:9/lab"
environment = "development"

[[subscriptions]]
source_id = "11111111-1111-4111-8111-111111111111"
destination_id = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
data_model = "PatientAdmin"
event_types = []
EOF

echo "== openapi: ferrox serve on $base"
"$bin" serve --config "$work/ferrox.toml" > "$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 300); do
    if curl -fsS "$base/readyz" > /dev/null 2>&1; then break; fi
    if ! kill -0 "$server_pid" 2>/dev/null; then cat "$work/server.log"; exit 1; fi
    sleep 0.1
done
curl -fsS "$base/readyz" > /dev/null

curl -fsS "$base/api/v1/openapi.json" -o "$work/openapi.json"
echo "== openapi: openapi-spec-validator"
"$venv/bin/openapi-spec-validator" "$work/openapi.json"

source_token="$(curl -fsS -H 'content-type: application/json' \
    -d '{"apiKey": "openapi-ehr-key", "secret": "openapi-ehr-secret-0123456789"}' \
    "$base/auth/authenticate" | python3 -c 'import json, sys; print(json.load(sys.stdin)["accessToken"])')"

# The operator token by default; the source's access token where the
# operations take one.
cat > "$work/schemathesis.toml" <<EOF
headers = { Authorization = "Bearer $admin_token" }

[[operations]]
include-tag = "Send"
headers = { Authorization = "Bearer $source_token" }

[[operations]]
include-tag = "Query"
headers = { Authorization = "Bearer $source_token" }
EOF

echo "== openapi: schemathesis ($examples examples per operation and phase)"
status=0
"$venv/bin/schemathesis" --config-file "$work/schemathesis.toml" run "$work/openapi.json" \
    --url "$base" \
    --checks not_a_server_error,response_schema_conformance \
    --phases examples,coverage,fuzzing \
    --max-examples "$examples" \
    --workers 2 \
    --seed 1 \
    --generation-database none \
    --generation-with-security-parameters false \
    --request-timeout 10 \
    --no-color || status=$?
if [ "$status" -ne 0 ]; then
    echo "-- server log (last 50 lines)"
    tail -n 50 "$work/server.log"
    exit "$status"
fi
echo "== openapi passed"
