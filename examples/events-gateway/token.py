#!/usr/bin/env python3
"""Prints an HS256 JWT for a tenant (standard library only): token.py <ccid> [seconds]."""
import base64, hashlib, hmac, json, os, sys, time

def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

secret = os.environ.get("SSE_JWT_SECRET", "dev-only-secret-change-me-0123456789").encode()
ccid = sys.argv[1] if len(sys.argv) > 1 else "c-1"
ttl = int(sys.argv[2]) if len(sys.argv) > 2 else 3600
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b64(json.dumps({"sub": "demo", "ccid": ccid, "exp": int(time.time()) + ttl}).encode())
sig = b64(hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest())
print(f"{head}.{body}.{sig}")
