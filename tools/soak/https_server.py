"""The soak's HTTPS target: counts the records of the `http` sink's batches by id.

Every POST body is a JSON array (`batch_format: json_array`) of records with an integer `id`.
While the control file exists, every request is answered 503 and nothing is counted. A record
whose id was already counted is a duplicate; duplicates are counted per second of arrival, so
they can be put down to the fault that was going on. `GET /stats` answers the running counts as
JSON; `POST /dump` writes the per-id counts (one byte per id, capped at 255) and the duplicates
per second next to the given prefix and answers the same JSON.

    python3 https_server.py --port 18443 --cert server.pem --key server.key \
        --fail-file /tmp/work/http-503 --dump /tmp/work/https
"""
import argparse
import gzip
import json
import os
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Counts:
    """Per-id counts (a growing bytearray), duplicates per second, request tallies."""

    def __init__(self):
        self.lock = threading.Lock()
        self.by_id = bytearray()
        self.received = 0
        self.unique = 0
        self.duplicates = 0
        self.dup_per_sec = {}
        self.requests = 0
        self.refused = 0
        self.bad = 0

    def add(self, ids, now):
        with self.lock:
            self.requests += 1
            for i in ids:
                if i >= len(self.by_id):
                    self.by_id.extend(bytes(max(i + 1 - len(self.by_id), 1 << 16)))
                c = self.by_id[i]
                if c == 0:
                    self.unique += 1
                else:
                    self.duplicates += 1
                    s = int(now)
                    self.dup_per_sec[s] = self.dup_per_sec.get(s, 0) + 1
                if c < 255:
                    self.by_id[i] = c + 1
                self.received += 1

    def stats(self):
        with self.lock:
            return {
                "received": self.received,
                "unique": self.unique,
                "duplicates": self.duplicates,
                "requests": self.requests,
                "refused_503": self.refused,
                "bad_requests": self.bad,
            }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--fail-file", required=True)
    ap.add_argument("--dump", required=True, help="path prefix for the dump files")
    args = ap.parse_args()
    counts = Counts()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):  # quiet: one line per request would be noise
            pass

        def _answer(self, code, body=b"", ctype="application/json"):
            self.send_response(code)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self):
            if self.headers.get("transfer-encoding", "").lower() == "chunked":
                parts = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()
                data = b"".join(parts)
            else:
                data = self.rfile.read(int(self.headers.get("content-length", "0")))
            if self.headers.get("content-encoding", "").lower() == "gzip":
                data = gzip.decompress(data)
            return data

        def do_GET(self):
            if self.path == "/stats":
                self._answer(200, json.dumps(counts.stats()).encode())
            else:
                self._answer(404)

        def do_POST(self):
            data = self._body()
            if self.path == "/dump":
                with counts.lock:
                    with open(args.dump + "-counts.bin", "wb") as f:
                        f.write(counts.by_id)
                    with open(args.dump + "-dups.json", "w") as f:
                        json.dump({str(k): v for k, v in sorted(counts.dup_per_sec.items())}, f)
                self._answer(200, json.dumps(counts.stats()).encode())
                return
            if os.path.exists(args.fail_file):
                with counts.lock:
                    counts.refused += 1
                self._answer(503, b'{"error":"fault injected"}')
                return
            try:
                records = json.loads(data)
                if isinstance(records, dict):
                    records = [records]
                ids = [int(r["id"]) for r in records]
            except (ValueError, KeyError, TypeError):
                with counts.lock:
                    counts.bad += 1
                self._answer(400, b'{"error":"expected a JSON array of records with an id"}')
                return
            counts.add(ids, time.time())
            self._answer(200, b"{}")

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
