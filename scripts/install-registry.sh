#!/usr/bin/env bash
# Installs rivven-schema (0.0.22), a Confluent-compatible Schema Registry server written in Rust,
# into the tool cache once, and prints the path of its binary. The Avro tests start it with
# in-memory storage (`rivven-schema serve --port N`).
#
#   REGISTRY=$(scripts/install-registry.sh)
set -euo pipefail
CACHE=${WEIR_CACHE:-${HOME:-/tmp}/.cache/weir}
ROOT=$CACHE/rivven-schema
BIN=$ROOT/bin/rivven-schema
if [ ! -x "$BIN" ] || ! "$BIN" --version 2>/dev/null | grep -q '0\.0\.22'; then
    echo "installing rivven-schema 0.0.22 into $ROOT (once)" >&2
    cargo install rivven-schema --version 0.0.22 --locked --root "$ROOT" >&2
fi
echo "$BIN"
