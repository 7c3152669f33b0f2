#!/usr/bin/env python3
"""A notification receiver for the tests: answers 500 to the first --fail-first requests, waits
--delay seconds before each answer, and logs every request it answered 200 as a JSON line
(idempotency key, event kind, whether the X-Cairn-Signature HMAC verified, the body).

Usage: receiver.py PORT_FILE LOG_FILE [--fail-first N] [--delay SECONDS] [--secret TEXT]
"""
import hashlib
import hmac
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

args = sys.argv[1:]
port_file, log_file = args[0], args[1]
options = dict(zip(args[2::2], args[3::2]))
fail_first = int(options.get("--fail-first", "0"))
delay = float(options.get("--delay", "0"))
secret = options.get("--secret")
seen = {"requests": 0}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        seen["requests"] += 1
        time.sleep(delay)
        if seen["requests"] <= fail_first:
            self.send_response(500)
            self.end_headers()
            return
        signature = self.headers.get("X-Cairn-Signature", "")
        valid = secret is not None and hmac.compare_digest(
            signature, "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest())
        with open(log_file, "a") as log:
            log.write(json.dumps({"path": self.path, "key": self.headers.get("Idempotency-Key"), "kind": self.headers.get("X-Cairn-Event"),
                                  "signed": valid, "body": json.loads(body)}) + "\n")
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_):
        pass


server = HTTPServer(("127.0.0.1", 0), Handler)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
