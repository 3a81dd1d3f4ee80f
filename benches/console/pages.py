#!/usr/bin/env python3
"""The console benchmark's client (benches/console/run.sh), standard library only.

  pages.py URL ADMIN_TOKEN IDS_FILE DESTINATIONS_FILE [COUNT] [WARMUP] [ACTIONS]

First it makes an audit trail: ACTIONS (200) pauses and resumes through the
operator API, spread over the destinations. Then it signs in to the console
with the admin token (POST /ui/sign-in, as the form does) and times each
console page against the operator API's answer that holds the same data,
on one keep-alive connection each, sequentially: WARMUP (100) requests, then
COUNT (1000). Each answer is read whole and must be a 200 (an HTML page
must also not be the sign-in page). Prints one line per kind:

  kind bytes p50 p90 p99 max

bytes is the size of the first answer; the times are milliseconds.
"""

import http.client
import json
import os
import random
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "history"))
from latency import fail, percentile  # noqa: E402


class Connection:
    def __init__(self, url, headers):
        parts = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        self.headers = headers

    def request(self, method, path, body=None, headers=None, ok=(200,)):
        """The answer, its body and the request's milliseconds."""
        start = time.perf_counter_ns()
        self.conn.request(method, path, body=body, headers={**self.headers, **(headers or {})})
        response = self.conn.getresponse()
        data = response.read()
        took_ms = (time.perf_counter_ns() - start) / 1e6
        if response.status not in ok:
            fail(f"{method} {path}: {response.status} {data[:300]!r}")
        return response, data, took_ms

    def get(self, path):
        _, data, took_ms = self.request("GET", path)
        if data.startswith(b"<!DOCTYPE html>") and b'action="/ui/sign-in"' in data:
            fail(f"GET {path}: the sign-in page (the session was not taken)")
        return data, took_ms


def sign_in(url, token):
    """A console session: the ferrox_session cookie that POST /ui/sign-in sets."""
    conn = Connection(url, {})
    body = urllib.parse.urlencode({"token": token, "next": "/ui"})
    response, _, _ = conn.request(
        "POST", "/ui/sign-in", body=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"}, ok=(303,))
    for header, value in response.getheaders():
        if header.lower() == "set-cookie" and value.startswith("ferrox_session="):
            return value.split(";", 1)[0]
    fail("signing in set no ferrox_session cookie")


def measure(conn, name, paths, count, warmup):
    # A fresh connection: the server closes one left idle (keep-alive
    # timeout) while the other kind was measured. The first request, not
    # timed, opens it.
    conn.conn.close()
    first, _ = conn.get(paths(0))
    for i in range(warmup):
        conn.get(paths(i))
    times = sorted(conn.get(paths(warmup + i))[1] for i in range(count))
    p = [percentile(times, q) for q in (0.5, 0.9, 0.99)] + [times[-1]]
    print(f"{name} {len(first)} " + " ".join(f"{v:.2f}" for v in p), flush=True)


def make_audit_trail(api, destinations, actions):
    for i in range(actions):
        destination = destinations[(i // 2) % len(destinations)]
        verb = "pause" if i % 2 == 0 else "resume"
        api.request("POST", f"/api/v1/destinations/{destination}/{verb}", body=b"",
                    headers={"Content-Type": "application/json"})


def main(argv):
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    url, token, ids_file, destinations_file = argv[:4]
    count = int(argv[4]) if len(argv) > 4 else 1000
    warmup = int(argv[5]) if len(argv) > 5 else 100
    actions = int(argv[6]) if len(argv) > 6 else 200
    with open(ids_file) as f:
        ids = [line.strip() for line in f if line.strip()]
    with open(destinations_file) as f:
        destinations = [line.strip() for line in f if line.strip()]
    if not ids or not destinations:
        fail("no log IDs or no destinations to ask for")

    api = Connection(url, {"Authorization": f"Bearer {token}"})
    make_audit_trail(api, destinations, actions)
    page = Connection(url, {"Cookie": sign_in(url, token), "Accept": "text/html"})
    # The cursor of the second page of each destination's logs.
    second = {}
    for d in destinations:
        _, data, _ = api.request("GET", f"/api/v1/logs?destination={d}&limit=50")
        second[d] = json.loads(data)["next_cursor"]
        if not second[d]:
            fail(f"destination {d} has a single page of logs")

    def each_destination(template):
        return lambda i: template.format(d=destinations[i % len(destinations)],
                                         c=urllib.parse.quote(second[destinations[i % len(destinations)]]))

    rng = random.Random(20261205)
    picks = [rng.choice(ids) for _ in range(count + warmup + 1)]

    def each_log(template):
        return lambda i: template.format(id=picks[i % len(picks)])

    kinds = [
        ("destinations", lambda i: "/ui", lambda i: "/api/v1/destinations"),
        ("destination", each_destination("/ui/destinations/{d}"), each_destination("/api/v1/destinations/{d}/queue")),
        ("logs", lambda i: "/ui/logs", lambda i: "/api/v1/logs?limit=50"),
        ("logs-destination", each_destination("/ui/logs?destination={d}"),
         each_destination("/api/v1/logs?destination={d}&limit=50")),
        ("logs-page-2", each_destination("/ui/logs?destination={d}&cursor={c}"),
         each_destination("/api/v1/logs?destination={d}&limit=50&cursor={c}")),
        ("logs-failed", each_destination("/ui/logs?destination={d}&status=Failed"),
         each_destination("/api/v1/logs?destination={d}&status=Failed&limit=50")),
        ("log", each_log("/ui/logs/{id}"), each_log("/api/v1/logs/{id}")),
        ("alerts", lambda i: "/ui/alerts", lambda i: "/api/v1/alerts"),
        ("audit", lambda i: "/ui/audit", lambda i: "/api/v1/audit?limit=50"),
    ]
    for name, ui, json_api in kinds:
        measure(page, f"ui:{name}", ui, count, warmup)
        measure(api, f"api:{name}", json_api, count, warmup)
    for asset in ("console.css", "console.js"):
        measure(page, f"asset:{asset}", lambda i, a=asset: f"/ui/assets/{a}", count, warmup)


if __name__ == "__main__":
    main(sys.argv[1:])
