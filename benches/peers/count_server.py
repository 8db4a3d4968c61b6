#!/usr/bin/env python3
"""The HTTP receiver of bench-peers.sh's pipeline 3: counts the NDJSON lines POSTed to it.

    count_server.py PORT

Listens on 127.0.0.1:PORT (HTTP/1.1, keep-alive). Every POST body is gunzipped when it says
`Content-Encoding: gzip` and split into lines; the server answers 200 and adds to its totals:
requests, records (non-empty lines), bytes (decompressed) and an order-independent checksum of the
lines (the sum of their CRC-32s, mod 2**64), so the two tools' deliveries can be compared without
keeping them. `GET /count` returns the totals as JSON and `POST /reset` zeroes them. A body that
cannot be decoded gets 400 and is counted under `bad`.
"""

import gzip
import json
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
TOTALS = {}


def reset():
    TOTALS.update(requests=0, records=0, bytes=0, checksum=0, bad=0)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body=b""):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if body:
            self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path != "/count":
            return self.answer(404)
        with LOCK:
            body = json.dumps(TOTALS).encode()
        self.answer(200, body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.path == "/reset":
            with LOCK:
                reset()
            return self.answer(200)
        try:
            if self.headers.get("Content-Encoding", "").lower() == "gzip":
                body = gzip.decompress(body)
            lines = [line for line in body.split(b"\n") if line]
        except (OSError, EOFError, zlib.error):
            with LOCK:
                TOTALS["bad"] += 1
            return self.answer(400)
        checksum = sum(zlib.crc32(line) for line in lines)
        with LOCK:
            TOTALS["requests"] += 1
            TOTALS["records"] += len(lines)
            TOTALS["bytes"] += len(body)
            TOTALS["checksum"] = (TOTALS["checksum"] + checksum) % (1 << 64)
        self.answer(200)


def main():
    reset()
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
