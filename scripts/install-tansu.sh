#!/usr/bin/env bash
# Installs the Tansu Kafka-protocol broker (0.6.0, SQLite and memory storage) into the tool cache
# once, and prints the path of its binary. Building it takes about 15 minutes on 2 cores.
#
#   TANSU=$(scripts/install-tansu.sh)
set -euo pipefail
CACHE=${WEIR_CACHE:-${HOME:-/tmp}/.cache/weir}
ROOT=$CACHE/tansu
BIN=$ROOT/bin/tansu
if [ ! -x "$BIN" ] || ! "$BIN" --version 2>/dev/null | grep -q '0\.6\.0'; then
    echo "installing tansu 0.6.0 into $ROOT (once; about 15 minutes)" >&2
    cargo install tansu --version 0.6.0 --locked --features dynostore,libsql --root "$ROOT" >&2
fi
echo "$BIN"
