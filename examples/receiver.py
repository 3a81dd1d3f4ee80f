#!/usr/bin/env python3
"""A tiny destination for the README walk-through: prints every delivery.

    python3 examples/receiver.py [--port 9100] [--fail N]

answers 200, or 500 with a Redox error for the first N requests (--fail),
so a failure and its retry can be seen.
"""
import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, default=9100)
parser.add_argument("--fail", type=int, default=0, help="answer 500 to this many requests first")
args = parser.parse_args()
failures_left = args.fail


class Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        global failures_left
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        fail = failures_left > 0
        failures_left -= 1 if fail else 0
        status = 500 if fail else 200
        print(f"{self.path} <- message {self.headers.get('ferrox-message-id')} "
              f"log {self.headers.get('webhook-id')} attempt {self.headers.get('ferrox-attempt-id')}: "
              f"answering {status}", flush=True)
        print("   " + body.decode(errors="replace")[:300], flush=True)
        reply = {"Meta": {"Errors": [{"Text": "receiver is down for maintenance"}]}} if fail else {}
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_):
        pass


ThreadingHTTPServer(("127.0.0.1", args.port), Receiver).serve_forever()
