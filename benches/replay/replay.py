"""Drives the replay benchmark (see run.sh): sends, replays, measures."""
import http.client, json, os, threading, time, urllib.parse

URL, PID, DEST = os.environ["URL"], os.environ["PID"], os.environ["DEST"]
ADMIN = {"Authorization": "Bearer replay-bench-operator-token", "Content-Type": "application/json"}
host = urllib.parse.urlparse(URL).netloc


def call(method, path, body=None, headers=None, conn=None):
    c = conn or http.client.HTTPConnection(host, timeout=600)
    c.request(method, path, body=None if body is None else json.dumps(body), headers=headers or ADMIN)
    r = c.getresponse()
    data = r.read()
    return r.status, (json.loads(data) if data else None)


def rss_kib(field="VmRSS"):
    for line in open(f"/proc/{PID}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])


def metric(name):
    _, _ = None, None
    c = http.client.HTTPConnection(host)
    c.request("GET", "/metrics")
    for line in c.getresponse().read().decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


_, auth = call("POST", "/auth/authenticate", {"apiKey": "bench-key", "secret": "bench-secret"},
               {"Content-Type": "application/json"})
SEND = {"Authorization": "Bearer " + auth["accessToken"], "Content-Type": "application/json"}
MSG = {"Meta": {"DataModel": "PatientAdmin", "EventType": "NewPatient"},
       "Patient": {"Identifiers": [{"ID": "0000012345", "IDType": "MR"}], "Notes": ["x" * 700]}}


def send(n):
    conn = http.client.HTTPConnection(host, timeout=60)
    for _ in range(n):
        status, _ = call("POST", "/endpoint", MSG, SEND, conn)
        assert status == 200, status


send(1)
_, first = call("GET", "/api/v1/logs?limit=1")
first_at = first["logs"][0]["received_at"]
time.sleep(0.01)
start = time.time()
threads = [threading.Thread(target=send, args=(100_000 // 50,)) for _ in range(50)]
[t.start() for t in threads]
[t.join() for t in threads]
print(f"sent 100,001 messages in {time.time() - start:.1f} s")
while metric('ferrox_logs{status="Filtered"}') < 100_001:
    time.sleep(0.2)

status, body = call("POST", f"/api/v1/destinations/{DEST}/replay", {"since": first_at})
print(f"replay of 100,001: HTTP {status}: {body['Meta']['Errors'][0]['Text'] if status == 400 else body}")
assert status == 400

# Exactly the 100,000 after the first message.
since = first_at[:-1]  # ...123Z -> +1 ms
ms = int(since[-3:]) + 1
since = since[:-3] + f"{ms:03d}Z" if ms < 1000 else None
assert since, "the first message's millisecond rolled over: run again"
before, peak_before = rss_kib(), rss_kib("VmHWM")
start = time.time()
status, body = call("POST", f"/api/v1/destinations/{DEST}/replay", {"since": since})
answered = time.time() - start
after = rss_kib()
assert status == 200 and body["resent"] == 100_000, (status, body)
while metric('ferrox_logs{status="Filtered"}') < 200_001:
    time.sleep(0.1)
ended = time.time() - start
time.sleep(1)
print(f"replay of 100,000 logs: answered (durable) in {answered:.2f} s; all 100,000 resent logs ended in {ended:.2f} s")
print(f"RSS: before {before / 1024:.0f} MiB, right after {after / 1024:.0f} MiB, "
      f"at the end {rss_kib() / 1024:.0f} MiB; peak before {peak_before / 1024:.0f} MiB, "
      f"peak after {rss_kib('VmHWM') / 1024:.0f} MiB")
