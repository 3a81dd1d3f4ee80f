#!/usr/bin/env python3
"""Helpers of benches/history/run.sh, on the standard library alone.

  latency.py ready URL_FILE SINCE_NS PID [TIMEOUT_S]
      Waits for the engine started at SINCE_NS (nanoseconds since the epoch,
      from `date +%s%N` just before it was spawned) to print "ferrox
      listening on URL" into URL_FILE, then for GET /readyz to answer 200.
      Prints "URL LISTENING_MS READY_MS", both counted from SINCE_NS.

  latency.py bench URL ADMIN_TOKEN IDS_FILE DESTINATIONS_FILE [COUNT] [WARMUP]
      Sequential requests on one keep-alive connection: WARMUP (200) then
      COUNT (2000) of each kind, each answer read whole and checked to be a
      200. Prints one line per kind: its name, the logs in its answer (the
      first one's), and p50 p90 p99 max in milliseconds.

Kinds: `list-succeeded` and `list-failed` are
GET /api/v1/logs?destination=<id>&status=<status>&limit=50, the destination
taken in turn from DESTINATIONS_FILE; `get-log` is GET /api/v1/logs/{id} for
an ID drawn at random (seeded) from IDS_FILE.
"""

import http.client
import json
import math
import os
import random
import sys
import time
import urllib.parse

POLL_S = 0.002


def fail(message):
    print(f"latency.py: {message}", file=sys.stderr)
    sys.exit(1)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited: it is only waiting for run.sh to reap it.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def elapsed_ms(since_ns):
    return (time.time_ns() - since_ns) / 1e6


def ready(url_file, since_ns, pid, timeout_s):
    deadline = time.monotonic() + timeout_s
    url = None
    while url is None:
        try:
            with open(url_file) as f:
                for line in f:
                    if line.startswith("ferrox listening on "):
                        url = line.split()[-1]
                        break
        except FileNotFoundError:
            pass
        if url is None:
            if not alive(pid):
                fail(f"ferrox (pid {pid}) exited before listening")
            if time.monotonic() > deadline:
                fail(f"ferrox did not listen within {timeout_s} s")
            time.sleep(POLL_S)
    listening_ms = elapsed_ms(since_ns)
    parts = urllib.parse.urlsplit(url)
    while True:
        status = None
        try:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
            conn.request("GET", "/readyz")
            response = conn.getresponse()
            response.read()
            status = response.status
            conn.close()
        except OSError:
            pass
        if status == 200:
            break
        if not alive(pid):
            fail(f"ferrox (pid {pid}) exited before it was ready")
        if time.monotonic() > deadline:
            fail(f"ferrox was not ready within {timeout_s} s (last /readyz: {status})")
        time.sleep(POLL_S)
    print(f"{url} {listening_ms:.0f} {elapsed_ms(since_ns):.0f}")


def percentile(sorted_ms, q):
    """Nearest rank."""
    return sorted_ms[max(0, math.ceil(q * len(sorted_ms)) - 1)]


class Client:
    def __init__(self, url, token):
        parts = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path):
        """The answer's body and the request's milliseconds."""
        start = time.perf_counter_ns()
        self.conn.request("GET", path, headers=self.headers)
        response = self.conn.getresponse()
        body = response.read()
        took_ms = (time.perf_counter_ns() - start) / 1e6
        if response.status != 200:
            fail(f"GET {path}: {response.status} {body[:300]!r}")
        return body, took_ms


def measure(client, name, paths, count, warmup):
    first, _ = client.get(paths(0))
    answer = json.loads(first)
    logs = len(answer["logs"]) if "logs" in answer else 1
    for i in range(warmup):
        client.get(paths(i))
    times = sorted(client.get(paths(warmup + i))[1] for i in range(count))
    p = [percentile(times, q) for q in (0.5, 0.9, 0.99)] + [times[-1]]
    print(f"{name} {logs} " + " ".join(f"{v:.2f}" for v in p), flush=True)


def bench(url, token, ids_file, destinations_file, count, warmup):
    with open(ids_file) as f:
        ids = [line.strip() for line in f if line.strip()]
    with open(destinations_file) as f:
        destinations = [line.strip() for line in f if line.strip()]
    if not ids or not destinations:
        fail("no log IDs or no destinations to ask for")
    client = Client(url, token)
    rng = random.Random(20261204)

    def listing(status):
        return lambda i: f"/api/v1/logs?destination={destinations[i % len(destinations)]}&status={status}&limit=50"

    measure(client, "list-succeeded", listing("Succeeded"), count, warmup)
    measure(client, "list-failed", listing("Failed"), count, warmup)
    measure(client, "get-log", lambda i: f"/api/v1/logs/{rng.choice(ids)}", count, warmup)


def main(argv):
    if len(argv) >= 4 and argv[0] == "ready":
        timeout_s = float(argv[4]) if len(argv) > 4 else 600.0
        ready(argv[1], int(argv[2]), int(argv[3]), timeout_s)
    elif len(argv) >= 5 and argv[0] == "bench":
        count = int(argv[5]) if len(argv) > 5 else 2000
        warmup = int(argv[6]) if len(argv) > 6 else 200
        bench(argv[1], argv[2], argv[3], argv[4], count, warmup)
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
