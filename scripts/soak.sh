#!/usr/bin/env bash
# A soak with faults (a bench, not part of scripts/test.sh). `weir serve` (release) runs two
# pipelines from one file, Kafka → filter → HTTPS (batched) and Kafka → Kafka, for SOAK_MINUTES at
# a steady rate, while faults come in turn: the broker unavailable for 20 s, the HTTPS target
# answering 503 for 30 s, and `kill -9` of weir then a restart. Every 5 s a sampler writes RSS,
# CPU, throughput and lag to a CSV. At the end the script waits until both pipelines have caught
# up, checks that every confirmed record that passes the filter reached the HTTPS server and
# every one reached the output topic, counts the duplicates per fault, and draws the samples as
# a PNG with the fault windows shaded.
#
#   scripts/soak.sh                                   # 30 minutes, 500 records/s, a fault every 5 min
#   SOAK_MINUTES=3 scripts/soak.sh                    # a short try (a fault every 45 s)
#   SOAK_RATE=1000 SOAK_FAULT_EVERY=240 scripts/soak.sh
#
# Options (environment):
#   SOAK_MINUTES (30), SOAK_RATE (records/s, 500)
#   SOAK_FAULT_EVERY  seconds between faults (300; 45 below 10 minutes); the first after half
#   SOAK_BROKER_FAULT freeze (default: SIGSTOP, SIGCONT after SOAK_BROKER_DOWN, 20 s) or restart
#                     (SIGTERM, then a new broker on the same port and storage)
#   SOAK_HTTP_DOWN    seconds of 503 (30)
#   SOAK_RESTART_DELAY seconds between the `kill -9` and the restart (50)
#   SOAK_DRAIN_TIMEOUT (300 s), SOAK_KAFKA_PORT (19292), SOAK_HTTPS_PORT (18443), SOAK_API_PORT (18980)
#   SOAK_PNG          the picture (docs/img/soak.png for runs of 30 minutes or more, else the work dir)
#   SOAK_KEEP=1       keep the broker's storage
#   SOAK_BUILD=0      use target/release/weir as it is (no cargo build first)
# The CSV, the logs and summary.json stay in the work dir it prints. Exit status 0 if nothing
# was lost, 1 if a record was lost or the run could not finish.
#
# Why freeze and a delayed restart: three limits of Tansu 0.6.0, each reproduced with plain
# confluent-kafka clients and no Weir at all:
#   - `restart`: an idempotent producer (Weir's kafka sink always is one) that reconnects to a
#     restarted Tansu panics its storage task ("more or less than one row", lite.rs:503); every
#     later request then fails.
#   - a member that joins while a dead member is still in the group (within its session
#     timeout) gets an empty assignment, and the group never rebalances once the dead one
#     expires; so weir restarts after the sources' session timeout (librdkafka's 45 s).
#   - a broker frozen for longer than the session timeout leaves its groups without assignment
#     the same way; so the freeze (20 s) stays below the 45 s.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MINUTES=${SOAK_MINUTES:-30}
RATE=${SOAK_RATE:-500}
DURATION=$((MINUTES * 60))
if [ "$MINUTES" -ge 10 ]; then FAULT_EVERY=${SOAK_FAULT_EVERY:-300}; else FAULT_EVERY=${SOAK_FAULT_EVERY:-45}; fi
BROKER_DOWN=${SOAK_BROKER_DOWN:-20}
BROKER_FAULT=${SOAK_BROKER_FAULT:-freeze}
case $BROKER_FAULT in freeze | restart) ;; *) echo "SOAK_BROKER_FAULT is freeze or restart" >&2; exit 1 ;; esac
HTTP_DOWN=${SOAK_HTTP_DOWN:-30}
RESTART_DELAY=${SOAK_RESTART_DELAY:-50}
DRAIN_TIMEOUT=${SOAK_DRAIN_TIMEOUT:-300}
KPORT=${SOAK_KAFKA_PORT:-19292}
HPORT=${SOAK_HTTPS_PORT:-18443}
APORT=${SOAK_API_PORT:-18980}
B=127.0.0.1:$KPORT
PARTS=3
IN=soak-in
OUT=soak-out
TOOLS=$ROOT/tools/soak
export PYTHONDONTWRITEBYTECODE=1 # no __pycache__ in tools/soak

log() { echo "$(date -u +%H:%M:%S) soak: $*"; }
now() { date +%s.%N; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$KPORT" "$HPORT" "$APORT"; do
    if port_open "$p"; then echo "port $p is in use; set SOAK_KAFKA_PORT / SOAK_HTTPS_PORT / SOAK_API_PORT" >&2; exit 1; fi
done

[ -f /tmp/weir-env.sh ] && . /tmp/weir-env.sh
TANSU=${WEIR_TANSU:-}
[ -x "$TANSU" ] || TANSU=$(scripts/install-tansu.sh)
command -v openssl >/dev/null || { echo "needs openssl" >&2; exit 1; }
python3 -c 'import confluent_kafka' 2>/dev/null || python3 -m pip install -q confluent-kafka
python3 -c 'import matplotlib' 2>/dev/null || python3 -m pip install -q matplotlib
[ "${SOAK_BUILD:-1}" = 0 ] || cargo build --release -q -p weir
WEIR=$ROOT/target/release/weir

WORK=$(mktemp -d /tmp/weir-soak.XXXXXX)
PNG=${SOAK_PNG:-}
if [ -z "$PNG" ]; then
    if [ "$MINUTES" -ge 30 ]; then PNG=$ROOT/docs/img/soak.png; else PNG=$WORK/soak.png; fi
fi
log "work dir $WORK; $MINUTES min at $RATE records/s, a fault every $FAULT_EVERY s"

# Every process this script starts is a direct child whose pid is kept here; the trap stops
# exactly those (SIGTERM, then SIGKILL after 15 s), and nothing else.
BROKER= HTTPS= WEIR_PID= PRODUCER= SAMPLER=
stop_pid() { # stop_pid PID: SIGTERM, wait up to 15 s, then SIGKILL
    local pid=$1 i
    [ -n "$pid" ] || return 0
    kill -CONT "$pid" 2>/dev/null || true # a frozen broker would not see SIGTERM
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for pid in "$PRODUCER" "$SAMPLER" "$WEIR_PID" "$HTTPS" "$BROKER"; do stop_pid "$pid"; done
    [ -n "${SOAK_KEEP:-}" ] || rm -f "$WORK"/tansu.db*
    log "work dir (samples, logs, summary): $WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_broker() {
    (cd "$WORK" && RUST_LOG=warn exec "$TANSU" broker --listener-url "tcp://$B" --advertised-listener-url "tcp://$B" \
        --storage-engine sqlite://tansu.db >>"$WORK/tansu.log" 2>&1) &
    BROKER=$!
    local i
    for i in $(seq 300); do port_open "$KPORT" && return 0; sleep 0.1; done
    log "the broker did not open port $KPORT within 30 s"; return 1
}
start_weir() {
    echo "=== $(date -u +%FT%TZ) weir serve starts" >>"$WORK/weir.log"
    "$WEIR" serve "$WORK/pipelines.yaml" --listen "127.0.0.1:$APORT" --state-dir "$WORK/state" --log info \
        >>"$WORK/weir.log" 2>&1 &
    WEIR_PID=$!
    echo "$WEIR_PID" >"$WORK/weir.pid"
}
wait_ready() { # wait_ready SECONDS: until /readyz answers 200
    local i
    for i in $(seq $(($1 * 5))); do
        curl -sf -o /dev/null "http://127.0.0.1:$APORT/readyz" && return 0
        sleep 0.2
    done
    return 1
}

# The HTTPS target's certificates: a throwaway CA and a server certificate for 127.0.0.1.
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/ca.key" -out "$WORK/ca.pem" -days 2 \
    -subj "/CN=weir soak CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout "$WORK/server.key" -out "$WORK/server.csr" -subj "/CN=127.0.0.1" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' \
    >"$WORK/server.ext"
openssl x509 -req -in "$WORK/server.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial \
    -out "$WORK/server.pem" -days 2 -extfile "$WORK/server.ext" 2>/dev/null

cat >"$WORK/pipelines.yaml" <<YAML
pipelines:
  to-https:
    source:
      type: kafka
      bootstrap_servers: "$B"
      topics: [$IN]
      group_id: soak-https
      start_from: earliest
    transforms:
      - type: filter
        patterns: [ { value: { status: [paid] } } ]
    sinks:
      - type: http
        url: https://127.0.0.1:$HPORT/ingest
        tls: { ca_file: "$WORK/ca.pem" }
        batch_format: json_array
        batch: { max_records: 200, max_wait: 200ms }
        max_in_flight: 2
        retry: { max_attempts: -1, initial_backoff: 200ms, max_backoff: 5s }
  to-kafka:
    source:
      type: kafka
      bootstrap_servers: "$B"
      topics: [$IN]
      group_id: soak-kafka
      start_from: earliest
    sinks:
      - type: kafka
        bootstrap_servers: "$B"
        topic: $OUT
        retry: { max_attempts: -1, initial_backoff: 200ms, max_backoff: 5s }
YAML

start_broker
for t in "$IN" "$OUT"; do "$TANSU" topic create --broker "tcp://$B" --partitions "$PARTS" "$t" >/dev/null; done
python3 "$TOOLS/https_server.py" --port "$HPORT" --cert "$WORK/server.pem" --key "$WORK/server.key" \
    --fail-file "$WORK/http-503" --dump "$WORK/https" >"$WORK/https.log" 2>&1 &
HTTPS=$!
for _ in $(seq 100); do port_open "$HPORT" && break; sleep 0.1; done
start_weir
wait_ready 60 || { log "weir serve not ready within 60 s"; tail -n 30 "$WORK/weir.log"; exit 1; }

echo "kind,start,end" >"$WORK/faults.csv"
python3 "$TOOLS/sampler.py" --csv "$WORK/samples.csv" --watermarks "$WORK/watermarks.jsonl" \
    --pid-file "$WORK/weir.pid" --fault-file "$WORK/fault.now" --producer-stats "$WORK/producer.json" \
    --api "127.0.0.1:$APORT" --https "127.0.0.1:$HPORT" --ca "$WORK/ca.pem" --bootstrap "$B" \
    --input "$IN" --output "$OUT" --partitions "$PARTS" --pipelines to-https:soak-https,to-kafka:soak-kafka \
    --stop-file "$WORK/sampler.stop" --max-seconds $((DURATION + DRAIN_TIMEOUT + 600)) >"$WORK/sampler.log" 2>&1 &
SAMPLER=$!
sleep 5 # a first sample before anything flows
python3 "$TOOLS/producer.py" --bootstrap "$B" --topic "$IN" --rate "$RATE" --seconds "$DURATION" \
    --out "$WORK/produced.bin" --stats "$WORK/producer.json" >"$WORK/producer.log" 2>&1 &
PRODUCER=$!
T0=$(date +%s)
log "producing (pid $PRODUCER), weir serve pid $WEIR_PID, broker pid $BROKER"

# fault KIND: runs one fault to its end and logs its window to faults.csv.
fault() {
    local kind=$1 start end
    echo "$kind" >"$WORK/fault.now"
    start=$(now)
    log "fault $kind starts"
    case $kind in
    broker-freeze)
        kill -STOP "$BROKER"
        sleep "$BROKER_DOWN"
        kill -CONT "$BROKER"
        ;;
    broker-restart)
        stop_pid "$BROKER"
        echo "=== $(date -u +%FT%TZ) broker stopped" >>"$WORK/tansu.log"
        sleep "$BROKER_DOWN"
        start_broker
        ;;
    https-503)
        touch "$WORK/http-503"
        sleep "$HTTP_DOWN"
        rm -f "$WORK/http-503"
        ;;
    kill-9)
        kill -KILL "$WEIR_PID"
        wait "$WEIR_PID" 2>/dev/null || true
        echo "=== $(date -u +%FT%TZ) weir serve killed with SIGKILL" >>"$WORK/weir.log"
        : >"$WORK/weir.pid"
        sleep "$RESTART_DELAY"
        start_weir
        wait_ready 120 || log "weir serve not ready within 120 s of its restart"
        ;;
    esac
    end=$(now)
    rm -f "$WORK/fault.now"
    echo "$kind,$start,$end" >>"$WORK/faults.csv"
    log "fault $kind ends after $(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.1f", e - s }') s"
}

KINDS=(broker-$BROKER_FAULT https-503 kill-9)
next=$((FAULT_EVERY / 2))
k=0
unexpected=0
while kill -0 "$PRODUCER" 2>/dev/null && [ "$(date +%s)" -lt $((T0 + DURATION + 400)) ]; do
    elapsed=$(($(date +%s) - T0))
    # A fault only if it has room to finish (and be recovered from) before production stops.
    if [ "$elapsed" -ge "$next" ] && [ $((next + 60)) -le "$DURATION" ]; then
        fault "${KINDS[k % 3]}"
        k=$((k + 1))
        next=$((next + FAULT_EVERY))
    fi
    # Anything that died without being asked to is logged and started again.
    if ! kill -0 "$WEIR_PID" 2>/dev/null; then
        wait "$WEIR_PID" 2>/dev/null && rc=0 || rc=$?
        log "weir serve (pid $WEIR_PID) exited by itself with status $rc; starting it again"
        echo "=== $(date -u +%FT%TZ) weir serve exited by itself ($rc)" >>"$WORK/weir.log"
        echo "weir-exited,$(now),$(now)" >>"$WORK/faults.csv"
        unexpected=$((unexpected + 1))
        start_weir
        wait_ready 120 || true
    fi
    if ! kill -0 "$BROKER" 2>/dev/null; then
        log "the broker exited by itself; starting it again"
        unexpected=$((unexpected + 1))
        start_broker
    fi
    sleep 1
done
if kill -0 "$PRODUCER" 2>/dev/null; then log "the producer did not finish in time"; exit 1; fi
wait "$PRODUCER" || { log "the producer failed: $(tail -n 3 "$WORK/producer.log")"; exit 1; }
PRODUCER=
log "producer done: $(tail -n 1 "$WORK/producer.log")"

log "waiting (at most $DRAIN_TIMEOUT s) until both pipelines have committed everything"
drain_start=$(now)
drained=0
python3 "$TOOLS/verify.py" drain --bootstrap "$B" --input "$IN" --output "$OUT" --partitions "$PARTS" \
    --groups soak-https,soak-kafka --timeout "$DRAIN_TIMEOUT" >"$WORK/drain.log" 2>&1 && drained=1
log "$(tail -n 1 "$WORK/drain.log") after $(awk -v s="$drain_start" -v e="$(now)" 'BEGIN { printf "%.0f", e - s }') s"
sleep 10 # a few samples of the idle pipelines
touch "$WORK/sampler.stop"
wait "$SAMPLER" || true
SAMPLER=

# weir serve stops gracefully on SIGTERM (exit 0) with nothing left to do.
kill -TERM "$WEIR_PID"
for _ in $(seq 600); do kill -0 "$WEIR_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$WEIR_PID" 2>/dev/null; then
    log "weir serve still running 60 s after SIGTERM"
else
    wait "$WEIR_PID" && rc=0 || rc=$?
    log "weir serve exited with status $rc after SIGTERM"
fi
WEIR_PID=

curl -sf --cacert "$WORK/ca.pem" -X POST "https://127.0.0.1:$HPORT/dump" >"$WORK/https-stats.json"
status=0
python3 "$TOOLS/verify.py" check --bootstrap "$B" --input "$IN" --output "$OUT" --partitions "$PARTS" \
    --csv "$WORK/samples.csv" --faults "$WORK/faults.csv" --produced "$WORK/produced.bin" \
    --https-counts "$WORK/https-counts.bin" --https-dups "$WORK/https-dups.json" \
    --watermarks "$WORK/watermarks.jsonl" --summary "$WORK/summary.json" --rate "$RATE" || status=1
[ "$drained" = 1 ] || { log "the pipelines did not catch up within $DRAIN_TIMEOUT s"; status=1; }
[ "$unexpected" = 0 ] || log "$unexpected process(es) exited by themselves (see faults.csv and the logs)"

mkdir -p "$(dirname "$PNG")"
python3 "$TOOLS/plot.py" --csv "$WORK/samples.csv" --faults "$WORK/faults.csv" --out "$PNG" \
    --title "weir serve: Kafka → filter → HTTPS and Kafka → Kafka, $RATE records/s, $MINUTES min, $(date -u +%F) (shared 2-core machine)"
log "picture: $PNG"
grep -ciE ' (WARN|ERROR) ' "$WORK/weir.log" | sed 's/^/weir.log warnings and errors: /' || true
exit "$status"
