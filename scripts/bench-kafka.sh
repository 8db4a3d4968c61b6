#!/usr/bin/env bash
# Weir's Kafka → filter → Kafka pipeline against a bare rdkafka relay, on the same broker and the
# same backlog, one after the other. Prints records/s (until the output topic holds every
# record), CPU seconds per million records (user+sys of the process) and peak RSS, and the ratios.
#
#   scripts/bench-kafka.sh                      # 1,000,000 records of 300 bytes
#   BENCH_RECORDS=200000 BENCH_ROUNDS=5 scripts/bench-kafka.sh   # rounds: relay and Weir alternate
#   WEIR_THREADS=1 scripts/bench-kafka.sh       # `weir run --threads 1`
set -euo pipefail
cd "$(dirname "$0")/.."
N=${BENCH_RECORDS:-1000000}
SIZE=${BENCH_RECORD_BYTES:-300}
PARTS=${BENCH_PARTITIONS:-3}
PORT=${BENCH_KAFKA_PORT:-19192}
B=127.0.0.1:$PORT
TANSU=$(scripts/install-tansu.sh)
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)"; exit 1; }
cargo build --release -q -p weir -p kafka-relay-baseline
TOOL=target/release/kafka-relay-baseline
WEIR=target/release/weir

WORK=$(mktemp -d)
(cd "$WORK" && RUST_LOG=warn exec "$TANSU" broker --listener-url "tcp://$B" --advertised-listener-url "tcp://$B" \
    --storage-engine sqlite://tansu.db >"$WORK/tansu.log" 2>&1) &
BROKER=$!
trap 'kill $BROKER 2>/dev/null || true; wait $BROKER 2>/dev/null || true; [ -n "${BENCH_KEEP:-}" ] || rm -rf "$WORK"; echo "work dir: $WORK"' EXIT
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
ROUNDS=${BENCH_ROUNDS:-3}
for t in input $(for r in $(seq 1 "$ROUNDS"); do echo "out-relay-$r out-weir-$r"; done); do
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
    # CPU seconds per thread name (librdkafka's threads are rdk:main, rdk:broker<id>, ...).
    local child
    child=$(pgrep -P "$pid" | head -n 1 || true)
    for t in /proc/"$child"/task/*; do
        awk -v comm="$(cat "$t/comm" 2>/dev/null)" '{ printf "%s %.2f\n", comm, ($14 + $15) / 100 }' \
            "$t/stat" 2>/dev/null || true
    done | awk '{ cpu[$1] += $2 } END { for (c in cpu) printf "%s %.1f\n", c, cpu[c] }' |
        sort -k2 -nr | head -n 4 | sed "s/^/  $name thread CPU s: /" >&2 || true
    # SIGTERM the measured process (the child of time), then wait for time to report.
    pkill -TERM -P "$pid" 2>/dev/null || true
    wait "$pid" || true
    read -r user sys rss < <(tail -n 1 "$WORK/$name.time")
    awk -v n="$N" -v s="$start" -v e="$end" -v u="$user" -v y="$sys" -v r="$rss" -v name="$name" \
        'BEGIN { printf "%s %.0f %.2f %.1f\n", name, n / (e - s), (u + y) * 1e6 / n, r / 1024 }'
}

# weir_config ROUND: the pipeline, a fresh group and output topic per round.
weir_config() {
    cat <<YAML
pipelines:
  bench:
    source:
      type: kafka
      bootstrap_servers: "$B"
      topics: [input]
      group_id: bench-weir-$1
      start_from: earliest
      commit_interval: ${WEIR_COMMIT_INTERVAL:-1s}
      options: { "session.timeout.ms": 6000 }
    transforms:
      - type: filter
        patterns: [ { value: { seq: [ { exists: true } ] } } ]
    sinks:
      - type: kafka
        bootstrap_servers: "$B"
        topic: out-weir-$1
        batch: { max_records: ${WEIR_SINK_BATCH:-500} }
YAML
    # The sink's own default (kafka: 4, order kept) unless WEIR_SINK_IN_FLIGHT says otherwise.
    [ -z "${WEIR_SINK_IN_FLIGHT:-}" ] || echo "        max_in_flight: $WEIR_SINK_IN_FLIGHT"
}

# Tansu's throughput drifts between runs (seen here: the same binary 0.76 to 1.18 of the relay),
# so the relay and Weir alternate for ROUNDS rounds on the same backlog and medians are compared.
printf '%-6s %5s %12s %16s %14s\n' "" round "records/s" "cpu s/M records" "peak RSS MiB"
: >"$WORK/results"
for r in $(seq 1 "$ROUNDS"); do
    weir_config "$r" >"$WORK/weir-$r.yaml"
    run relay out-relay-$r "$TOOL" relay "$B" input out-relay-$r bench-relay-$r "$N" >>"$WORK/results"
    run weir out-weir-$r "$WEIR" run --log "${BENCH_WEIR_LOG:-info}" ${WEIR_THREADS:+--threads "$WEIR_THREADS"} \
        "$WORK/weir-$r.yaml" >>"$WORK/results"
    tail -n 2 "$WORK/results" | while read -r name rate cpu rss; do
        printf '%-6s %5s %12s %16s %14s\n' "$name" "$r" "$rate" "$cpu" "$rss"
    done
done
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { awk -v n="$1" -v c="$2" '$1 == n { print $c }' "$WORK/results" | median; }
r_rate=$(col relay 2); w_rate=$(col weir 2); r_cpu=$(col relay 3); w_cpu=$(col weir 3)
r_rss=$(awk '$1 == "relay" { print $4 }' "$WORK/results" | sort -n | tail -n 1)
w_rss=$(awk '$1 == "weir" { print $4 }' "$WORK/results" | sort -n | tail -n 1)
printf 'median  relay %s rec/s %s cpu s/M | weir %s rec/s %s cpu s/M | peak RSS relay %s MiB, weir %s MiB\n' \
    "$r_rate" "$r_cpu" "$w_rate" "$w_cpu" "$r_rss" "$w_rss"
awk -v a="$w_rate" -v b="$r_rate" -v c="$w_cpu" -v d="$r_cpu" \
    'BEGIN { printf "weir/relay (medians): throughput %.2f, cpu per record %.2f\n", a / b, c / d }'
