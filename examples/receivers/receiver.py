#!/usr/bin/env python3
"""A ferrox destination that does what docs/receiving.md asks of one.

    python3 examples/receivers/receiver.py --listen 127.0.0.1:9100 \
        --secret whsec_... --out processed.jsonl

(the secret may come from WEBHOOK_SECRET instead). For each POST it

- checks the Standard Webhooks signature (webhook-id, webhook-timestamp,
  webhook-signature) with the destination's signing secret, and a
  timestamp within 5 minutes of now: otherwise it answers 401;
- drops a webhook-id it has already processed (ferrox delivers at least
  once): it answers 200 without processing it again;
- processes the message: appends one JSON line to --out (and syncs it)
  or prints it, then answers 200.

Only the standard library. It prints "receiver listening on
http://HOST:PORT" once it listens (port 0 picks a free one).
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# How far webhook-timestamp may be from this machine's clock: a captured
# request cannot be replayed later than this.
TOLERANCE_S = 5 * 60
# Bodies larger than ferrox's default max_body_bytes are not ferrox's.
MAX_BODY_BYTES = 10 * 1024 * 1024


def signing_key(secret):
    """The HMAC key inside a `whsec_` secret."""
    if not secret.startswith("whsec_"):
        raise ValueError("the signing secret must start with whsec_")
    return base64.b64decode(secret[len("whsec_"):], validate=True)


def verify(key, headers, body, now):
    """None if the request is signed by `key` and fresh, else the reason."""
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not msg_id or not timestamp or not signatures:
        return "missing webhook-id, webhook-timestamp or webhook-signature"
    try:
        sent_at = int(timestamp)
    except ValueError:
        return "webhook-timestamp is not a number"
    if abs(now - sent_at) > TOLERANCE_S:
        return "webhook-timestamp is too far from now"
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    # The header may list several signatures ("v1,<sig> v1,<sig>"), e.g.
    # while a secret is being rotated: one valid is enough.
    for candidate in signatures.split(" "):
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return None
    return "no valid signature"


class Processed:
    """The messages processed, by webhook-id, kept in an append-only file so
    that a restart of the receiver still knows them."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.ids = set()
        if path and os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        self.ids.add(json.loads(line)["webhook_id"])

    def process_once(self, msg_id, record):
        """Processes `record` unless `msg_id` was; says whether it did."""
        with self.lock:
            if msg_id in self.ids:
                return False
            line = json.dumps(record, separators=(",", ":")) + "\n"
            if self.path:
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(line)
                    f.flush()
                    os.fsync(f.fileno())
            else:
                sys.stdout.write(line)
                sys.stdout.flush()
            self.ids.add(msg_id)
            return True


def make_handler(key, processed):
    class Receiver(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            if length > MAX_BODY_BYTES:
                self.answer(413, "body too large")
                self.close_connection = True
                return
            body = self.rfile.read(length)
            reason = verify(key, self.headers, body, int(time.time()))
            if reason is not None:
                self.answer(401, reason)
                return
            msg_id = self.headers["webhook-id"]
            try:
                message = json.loads(body)
            except ValueError:
                # Not ours to fix, and a non-2xx would hold the queue: take
                # it, keep it as text.
                message = body.decode("utf-8", errors="replace")
            record = {
                "webhook_id": msg_id,
                "message_id": self.headers.get("ferrox-message-id"),
                "received_at": self.headers.get("ferrox-received-at"),
                "body": message,
            }
            if processed.process_once(msg_id, record):
                self.answer(200, None)
            else:
                self.answer(200, None, duplicate=True)

        def answer(self, status, error, duplicate=False):
            reply = {"Meta": {"Errors": [{"Text": error}]}} if error else {"duplicate": duplicate}
            data = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_):
            pass

    return Receiver


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:9100", help="HOST:PORT")
    parser.add_argument("--secret", default=os.environ.get("WEBHOOK_SECRET"),
                        help="the destination's signing_secret (whsec_...); default $WEBHOOK_SECRET")
    parser.add_argument("--out", help="append processed messages here (JSON lines); default stdout")
    args = parser.parse_args()
    if not args.secret:
        parser.error("--secret or WEBHOOK_SECRET is required")
    host, _, port = args.listen.rpartition(":")
    server = ThreadingHTTPServer((host, int(port)), make_handler(signing_key(args.secret), Processed(args.out)))
    print(f"receiver listening on http://{host}:{server.server_address[1]}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
