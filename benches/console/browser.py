#!/usr/bin/env python3
"""Page loads of the console in a real headless Chromium, for
benches/console/run.sh, on the standard library alone: it speaks WebDriver
(JSON over HTTP) to its own `chromedriver` on a free port.

  browser.py URL ADMIN_TOKEN IDS_FILE DESTINATIONS_FILE [COUNT]

Signs in through the sign-in form, then opens each page COUNT (50) times
after 5 warm-up loads, and prints one line per page:

  kind ttfb_p50 ttfb_p99 dom_p50 dom_p99 load_p50 load_p99

from the page's Navigation Timing entry, in milliseconds from the start of
the navigation: ttfb to the answer's first byte, dom to DOMContentLoaded's
end (the page parsed and the script run: times shown in the viewer's zone),
load to the load event's end. The browser's cache is on, as it is for a
person: the stylesheet and the script come from it after the first load.
"""

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "history"))
from latency import fail, percentile  # noqa: E402

NAVIGATION = (
    "const e = performance.getEntriesByType('navigation')[0];"
    "return [e.responseStart - e.startTime, e.domContentLoadedEventEnd - e.startTime,"
    " e.loadEventEnd - e.startTime, location.pathname];"
)


class Driver:
    def __init__(self):
        binary = os.environ.get("CHROMEDRIVER", "chromedriver")
        if shutil.which(binary) is None:
            fail(f"{binary} not found: apt-get install chromium chromium-driver")
        self.profile = tempfile.mkdtemp(prefix="ferrox-console-bench-")
        self.process = subprocess.Popen([binary, "--port=0"], stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True)
        self.base = None
        for line in self.process.stdout:
            if "was started successfully on port" in line:
                port = line.rsplit("port", 1)[1].strip().rstrip(".")
                self.base = f"http://127.0.0.1:{port}"
                break
        if self.base is None:
            fail("chromedriver did not say its port")
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--window-size=1440,900", f"--user-data-dir={self.profile}"]
        chrome = {"binary": os.environ.get("CHROMIUM", "/usr/bin/chromium"), "args": args}
        answer = self.call("POST", "/session",
                           {"capabilities": {"alwaysMatch": {"goog:chromeOptions": chrome}}})
        self.session = f"/session/{answer['sessionId']}"

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return json.load(response)["value"]
        except urllib.error.HTTPError as e:
            fail(f"WebDriver {method} {path}: {e.code} {e.read()[:300]!r}")

    def goto(self, url):
        self.call("POST", f"{self.session}/url", {"url": url})

    def run(self, script):
        return self.call("POST", f"{self.session}/execute/sync", {"script": script, "args": []})

    def close(self):
        try:
            self.call("DELETE", self.session)
        finally:
            self.process.terminate()
            self.process.wait()
            shutil.rmtree(self.profile, ignore_errors=True)


def main(argv):
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    url, token, ids_file, destinations_file = argv[:4]
    count = int(argv[4]) if len(argv) > 4 else 50
    warmup = 5
    with open(ids_file) as f:
        ids = [line.strip() for line in f if line.strip()]
    with open(destinations_file) as f:
        destinations = [line.strip() for line in f if line.strip()]
    rng = random.Random(20261205)
    driver = Driver()
    try:
        driver.goto(f"{url}/ui/sign-in")
        driver.run("document.querySelector('input[name=token]').value = "
                   + json.dumps(token) + "; document.querySelector('form').submit();")
        deadline = time.monotonic() + 30
        while driver.run("return location.pathname") != "/ui":
            if time.monotonic() > deadline:
                fail("signing in did not reach /ui")
            time.sleep(0.05)
        kinds = [
            ("destinations", lambda i: "/ui"),
            ("destination", lambda i: f"/ui/destinations/{destinations[i % len(destinations)]}"),
            ("logs", lambda i: "/ui/logs"),
            ("logs-failed", lambda i: f"/ui/logs?destination={destinations[i % len(destinations)]}&status=Failed"),
            ("log", lambda i: f"/ui/logs/{rng.choice(ids)}"),
            ("audit", lambda i: "/ui/audit"),
        ]
        for name, path in kinds:
            samples = []
            for i in range(warmup + count):
                driver.goto(url + path(i))
                ttfb, dom, load, at = driver.run(NAVIGATION)
                if at == "/ui/sign-in":
                    fail(f"{path(i)}: the sign-in page")
                if i >= warmup:
                    samples.append((ttfb, dom, load))
            columns = []
            for k in range(3):
                times = sorted(s[k] for s in samples)
                columns += [percentile(times, 0.5), percentile(times, 0.99)]
            print(f"browser:{name} " + " ".join(f"{v:.1f}" for v in columns), flush=True)
    finally:
        driver.close()


if __name__ == "__main__":
    main(sys.argv[1:])
