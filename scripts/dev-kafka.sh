#!/usr/bin/env bash
# A local Kafka-protocol broker (Tansu) for the examples and for trying Weir by hand.
#
#   scripts/dev-kafka.sh            # start on 127.0.0.1:9092 and create the examples' topics
#   scripts/dev-kafka.sh stop       # stop it
#   KAFKA_PORT=19092 scripts/dev-kafka.sh
#
# Storage is SQLite under target/dev-kafka (delete the folder to start empty). Then, in another
# terminal: `export KAFKA=127.0.0.1:9092` and `cargo run -p weir -- run examples/kafka-to-log.yaml`.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${KAFKA_PORT:-9092}
DIR=${WEIR_DEV_KAFKA_DIR:-$PWD/target/dev-kafka}
PIDFILE=$DIR/tansu.pid
mkdir -p "$DIR"

if [ "${1:-start}" = stop ]; then
    if [ -f "$PIDFILE" ] && kill "$(cat "$PIDFILE")" 2>/dev/null; then
        echo "stopped tansu (pid $(cat "$PIDFILE"))"
    else
        echo "tansu is not running"
    fi
    rm -f "$PIDFILE"
    exit 0
fi

if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    echo "tansu already running (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT"
    exit 0
fi

TANSU=$(scripts/install-tansu.sh)
# Tansu resolves the SQLite path against its working directory.
(cd "$DIR" && RUST_LOG=${TANSU_LOG:-warn} exec "$TANSU" broker \
    --listener-url "tcp://127.0.0.1:$PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$PORT" \
    --storage-engine sqlite://tansu.db >"$DIR/tansu.log" 2>&1) &
echo $! >"$PIDFILE"
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.1
done
for topic in orders alerts orders-dlq transactions card-transactions messaging_events_topic; do
    "$TANSU" topic create --broker "tcp://127.0.0.1:$PORT" --partitions 3 "$topic" >/dev/null 2>&1 \
        || echo "topic $topic exists already"
done
echo "tansu running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"), log $DIR/tansu.log)"
echo "export KAFKA=127.0.0.1:$PORT"
