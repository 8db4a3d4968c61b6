#!/usr/bin/env bash
# Weir's Kafka → filter → Kafka pipeline against a bare rdkafka relay, on the same broker and the
# same backlog, one after the other. Prints records/s (until the output topic holds every
# record), CPU seconds per million records (user+sys of the process) and peak RSS, and the ratios.
#
#   scripts/bench-kafka.sh                      # 1,000,000 records of 300 bytes
#   BENCH_RECORDS=200000 scripts/bench-kafka.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${BENCH_RECORDS:-1000000}
SIZE=${BENCH_RECORD_BYTES:-300}
PARTS=${BENCH_PARTITIONS:-3}
PORT=${BENCH_KAFKA_PORT:-19192}
B=127.0.0.1:$PORT
TANSU=$(scripts/install-tansu.sh)
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)"; exit 1; }
cargo build --release -q -p weir-runner -p kafka-relay-baseline
TOOL=target/release/kafka-relay-baseline
WEIR=target/release/weir

WORK=$(mktemp -d)
(cd "$WORK" && exec "$TANSU" broker --listener-url "tcp://$B" --advertised-listener-url "tcp://$B" \
    --storage-engine sqlite://tansu.db >"$WORK/tansu.log" 2>&1) &
BROKER=$!
trap 'kill $BROKER 2>/dev/null || true; wait $BROKER 2>/dev/null || true; [ -n "${BENCH_KEEP:-}" ] || rm -rf "$WORK"; echo "work dir: $WORK"' EXIT
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
for t in input out-relay out-weir; do
    "$TANSU" topic create --broker "tcp://$B" --partitions "$PARTS" "$t" >/dev/null
done

echo "producing $N records of $SIZE bytes to $PARTS partitions"
"$TOOL" produce "$B" input "$N" "$SIZE"

# run NAME OUTPUT COMMAND...: starts the command under /usr/bin/time, waits until OUTPUT holds N
# records, stops it with SIGTERM, and prints "NAME rate cpu_per_million peak_rss_mib".
run() {
    local name=$1 out=$2; shift 2
    local start end
    start=$(date +%s.%N)
    /usr/bin/time -f "%U %S %M" -o "$WORK/$name.time" "$@" >"$WORK/$name.log" 2>&1 &
    local pid=$!
    "$TOOL" wait "$B" "$out" "$PARTS" "$N" 900
    end=$(date +%s.%N)
    # SIGTERM the measured process (the child of time), then wait for time to report.
    pkill -TERM -P "$pid" 2>/dev/null || true
    wait "$pid" || true
    read -r user sys rss < <(tail -n 1 "$WORK/$name.time")
    awk -v n="$N" -v s="$start" -v e="$end" -v u="$user" -v y="$sys" -v r="$rss" -v name="$name" \
        'BEGIN { printf "%s %.0f %.2f %.1f\n", name, n / (e - s), (u + y) * 1e6 / n, r / 1024 }'
}

cat >"$WORK/weir.yaml" <<YAML
pipelines:
  bench:
    source:
      type: kafka
      bootstrap_servers: "$B"
      topics: [input]
      group_id: bench-weir
      start_from: earliest
      options: { "session.timeout.ms": 6000 }
    transforms:
      - type: filter
        patterns: [ { value: { seq: [ { exists: true } ] } } ]
    sinks:
      - type: kafka
        bootstrap_servers: "$B"
        topic: out-weir
        batch: { max_records: ${WEIR_SINK_BATCH:-500} }
        max_in_flight: ${WEIR_SINK_IN_FLIGHT:-1}
YAML

RELAY=$(run relay out-relay "$TOOL" relay "$B" input out-relay bench-relay "$N")
WEIRR=$(run weir out-weir "$WEIR" run "$WORK/weir.yaml")
printf '%-6s %12s %16s %14s\n' "" "records/s" "cpu s/M records" "peak RSS MiB"
for line in "$RELAY" "$WEIRR"; do
    read -r name rate cpu rss <<<"$line"
    printf '%-6s %12s %16s %14s\n' "$name" "$rate" "$cpu" "$rss"
done
read -r _ r_rate r_cpu _ <<<"$RELAY"
read -r _ w_rate w_cpu _ <<<"$WEIRR"
awk -v a="$w_rate" -v b="$r_rate" -v c="$w_cpu" -v d="$r_cpu" \
    'BEGIN { printf "weir/relay: throughput %.2f, cpu per record %.2f\n", a / b, c / d }'
