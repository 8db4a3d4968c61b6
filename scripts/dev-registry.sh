#!/usr/bin/env bash
# A local Confluent-compatible Schema Registry (rivven-schema, in memory) for the Avro examples.
#
#   scripts/dev-registry.sh          # start on 127.0.0.1:8081
#   scripts/dev-registry.sh stop     # stop it
#   REGISTRY_PORT=18081 scripts/dev-registry.sh
#
# It keeps schemas in memory: restarting it forgets them, so restart the producers too.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${REGISTRY_PORT:-8081}
DIR=${WEIR_DEV_REGISTRY_DIR:-$PWD/target/dev-registry}
PIDFILE=$DIR/registry.pid
mkdir -p "$DIR"

if [ "${1:-start}" = stop ]; then
    if [ -f "$PIDFILE" ] && kill "$(cat "$PIDFILE")" 2>/dev/null; then
        echo "stopped the schema registry (pid $(cat "$PIDFILE"))"
    else
        echo "the schema registry is not running"
    fi
    rm -f "$PIDFILE"
    exit 0
fi

if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    echo "schema registry already running (pid $(cat "$PIDFILE")) on http://127.0.0.1:$PORT"
    exit 0
fi

REGISTRY=$(scripts/install-registry.sh)
"$REGISTRY" serve --host 127.0.0.1 --port "$PORT" --log-level warn >"$DIR/registry.log" 2>&1 &
echo $! >"$PIDFILE"
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.1
done
echo "schema registry running on http://127.0.0.1:$PORT (pid $(cat "$PIDFILE"), log $DIR/registry.log)"
echo "export SCHEMA_REGISTRY=http://127.0.0.1:$PORT"
