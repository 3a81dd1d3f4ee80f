#!/usr/bin/env python3
"""A tiny destination for the README walk-through: prints every delivery.

    python3 examples/receiver.py [--port 9100] [--fail N]

answers 200, or 500 with a Redox error for the first N requests (--fail),
so a failure and its retry can be seen. A query (an EventType ending in
"Query", sent through POST /query) gets a made-up answer of its model's
"...QueryResponse" shape. --port 0 takes a free port; the first line printed
names the address.
"""
import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, default=9100)
parser.add_argument("--fail", type=int, default=0, help="answer 500 to this many requests first")
args = parser.parse_args()
failures_left = args.fail


def query_answer(request):
    """A records system's answer to a query: the patient asked for, found."""
    meta = request.get("Meta", {})
    patient = request.get("Patient", {})
    return {
        "Meta": {"DataModel": meta.get("DataModel"), "EventType": meta.get("EventType", "") + "Response"},
        "Patient": {
            "Identifiers": patient.get("Identifiers", []),
            "Demographics": {"FirstName": "Timothy", "LastName": "Bixby", "DOB": "2008-01-06"},
        },
        "AllergyText": "No known allergies",
    }


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
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            request = {}
        event = request.get("Meta", {}).get("EventType", "") if isinstance(request, dict) else ""
        if fail:
            reply = {"Meta": {"Errors": [{"Text": "receiver is down for maintenance"}]}}
        elif event.endswith("Query"):
            reply = query_answer(request)
        else:
            reply = {}
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_):
        pass


server = ThreadingHTTPServer(("127.0.0.1", args.port), Receiver)
print(f"receiver listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
server.serve_forever()
