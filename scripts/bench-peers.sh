#!/usr/bin/env bash
# Weir side by side with Vector, on the same work configured as each tool's users write it
# (benches/peers/weir/*.yaml and benches/peers/vector/*.yaml):
#   1. JSON lines from a file → filter (a numeric range and an anything-but) → discard
#   2. the same file → filter → mask the card number → JSON lines in a file
#   3. the same file → HTTP, NDJSON batches of 500, gzip, 4 in flight → benches/peers/count_server.py
#   4. Kafka → filter → Kafka on one Tansu broker (SQLite storage)
# Runs alternate (Weir, Vector, Weir, Vector, ...) after one warm-up pair that is not counted, and
# every run's output is checked: the same record count on both sides, computed from the input by
# benches/peers/check.py (and the same content for 2, the same lines for 3). A mismatch fails the
# script. Prints per pipeline the medians of records/s, CPU seconds (user+sys) per million input
# records and peak RSS, and the Weir/Vector ratios (medians of the per-pair ratios).
#
#   scripts/bench-peers.sh                      # 1,000,000 records (300,000 on Kafka), 5 runs each
#   BENCH_QUICK=1 scripts/bench-peers.sh        # 200,000 records (100,000 on Kafka), 3 runs each
#   BENCH_PIPELINES="1 3" BENCH_RUNS=7 scripts/bench-peers.sh
#   VECTOR=/path/to/vector scripts/bench-peers.sh   # default: ../shared/peers/vector from the repo
#
# Records/s is input records over the time from the start of the process until its whole output
# was seen (the file complete, the server's count, the topic's watermarks, Weir's exit), start-up
# included. CPU and peak RSS are /usr/bin/time's accounting of the whole process.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
QUICK=${BENCH_QUICK:-}
N=${BENCH_RECORDS:-$([ -n "$QUICK" ] && echo 200000 || echo 1000000)}
NK=${BENCH_KAFKA_RECORDS:-$([ -n "$QUICK" ] && echo 100000 || echo 300000)}
RUNS=${BENCH_RUNS:-$([ -n "$QUICK" ] && echo 3 || echo 5)}
PIPELINES=${BENCH_PIPELINES:-1 2 3 4}
TIMEOUT=${BENCH_RUN_TIMEOUT:-300}
VECTOR=${VECTOR:-$ROOT/../shared/peers/vector}
PEERS=$ROOT/benches/peers

fail() { echo "bench-peers: $*" >&2; exit 1; }
[ -x "$VECTOR" ] || fail "no Vector binary at $VECTOR: build Vector 0.56 (see its README for the
features: sources file, kafka; transforms filter, remap; sinks blackhole, file, http, kafka) and
put it there, or point VECTOR=/path/to/vector at one"
"$VECTOR" --version | grep -q '^vector 0\.56' ||
    echo "bench-peers: warning: $("$VECTOR" --version) is not the 0.56 the figures in docs/performance.md are for" >&2
[ -x /usr/bin/time ] || fail "needs GNU time at /usr/bin/time (apt-get install time)"
command -v python3 >/dev/null || fail "needs python3"
command -v curl >/dev/null || fail "needs curl"
has() { [[ " $PIPELINES " == *" $1 "* ]]; }
if has 4; then
    python3 -c 'import confluent_kafka' 2>/dev/null ||
        fail "pipeline 4 needs Python's confluent-kafka (pip install confluent-kafka) to check the output topic"
fi

cargo build --release -q -p weir -p kafka-relay-baseline
WEIR=${CARGO_TARGET_DIR:-$ROOT/target}/release/weir
RELAY=${CARGO_TARGET_DIR:-$ROOT/target}/release/kafka-relay-baseline

WORK=$(mktemp -d)
SERVER= BROKER=
cleanup() {
    for p in $SERVER $BROKER; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    if [ -n "${BENCH_KEEP:-}" ]; then echo "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
check() { python3 "$PEERS/check.py" "$@"; }
json() { python3 -c "import json, sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%Y-%m-%dT%H:%MZ)"
echo "weir: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates Cargo.toml Cargo.lock || echo '+changes'); $("$VECTOR" --version)"
echo "runs: $RUNS per tool and pipeline after a warm-up pair; $N records ($NK on Kafka)"

INPUT=$WORK/input.ndjson
if has 1 || has 2 || has 3; then
    BENCH_RECORDS=$N BENCH_INPUT=$INPUT "$WEIR" run --log warn --data-dir "$WORK/generate" \
        "$PEERS/weir/generate.yaml"
    EXPECT=$(check expect "$INPUT")
    LINES=$(json lines <<<"$EXPECT")
    [ "$LINES" = "$N" ] || fail "the generated input has $LINES lines, not $N"
    echo "input: $N card transactions, $(($(stat -c %s "$INPUT") / N)) bytes a line on average;" \
        "filter 1 keeps $(json kept1 <<<"$EXPECT"), filter 2 keeps $(json kept2 <<<"$EXPECT")"
fi

if has 3; then
    HTTP_PORT=$(free_port)
    python3 "$PEERS/count_server.py" "$HTTP_PORT" >"$WORK/count_server.log" 2>&1 &
    SERVER=$!
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$HTTP_PORT/count" >/dev/null && break; sleep 0.1; done
    curl -sf "http://127.0.0.1:$HTTP_PORT/count" >/dev/null || fail "count_server.py did not start: $(cat "$WORK/count_server.log")"
fi

if has 4; then
    TANSU=${WEIR_TANSU:-$(scripts/install-tansu.sh)}
    KAFKA_PORT=$(free_port)
    KAFKA=127.0.0.1:$KAFKA_PORT
    mkdir -p "$WORK/tansu"
    (cd "$WORK/tansu" && RUST_LOG=warn exec "$TANSU" broker --listener-url "tcp://$KAFKA" \
        --advertised-listener-url "tcp://$KAFKA" --storage-engine sqlite://tansu.db >tansu.log 2>&1) &
    BROKER=$!
    for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$KAFKA_PORT") 2>/dev/null && break; sleep 0.1; done
    for t in input $(for r in $(seq 0 "$RUNS"); do echo "out-weir-$r out-vector-$r"; done); do
        "$TANSU" topic create --broker "tcp://$KAFKA" --partitions 3 "$t" >/dev/null
    done
    "$RELAY" produce "$KAFKA" input "$NK" 300
    KAFKA_KEPT=$(check kafka-expect "$NK")
    echo "kafka: $NK records of 300 bytes in 3 partitions on Tansu (SQLite); the filter keeps $KAFKA_KEPT"
fi

# run PIPELINE SIDE ROUND: one measured run. Appends "PIPELINE SIDE ROUND wall cpu rss_mib" to
# $WORK/results, after checking the run's output.
run() {
    local p=$1 side=$2 r=$3 id="$1-$2-$3"
    local dir=$WORK/$id out=$WORK/$id.out log=$WORK/$id.log
    mkdir -p "$dir"
    local -a cmd
    if [ "$side" = weir ]; then
        cmd=("$WEIR" run --data-dir "$dir" "$PEERS/weir/$p-"*.yaml)
    else
        cmd=("$VECTOR" --config "$PEERS/vector/$p-"*.yaml)
    fi
    [ "$p" != 3 ] || curl -sf -X POST "http://127.0.0.1:$HTTP_PORT/reset" >/dev/null
    local start
    start=$(date +%s.%N)
    BENCH_INPUT=$INPUT BENCH_OUTPUT=$out BENCH_DATA_DIR=$dir BENCH_HTTP_URL="http://127.0.0.1:${HTTP_PORT:-0}/in" \
        BENCH_KAFKA=${KAFKA:-} BENCH_TOPIC_IN=input BENCH_TOPIC_OUT="out-$side-$r" BENCH_GROUP="bench-$id" \
        /usr/bin/time -f "%e %U %S %M" -o "$WORK/$id.time" "${cmd[@]}" >"$log" 2>&1 &
    local tpid=$! end
    local -a what
    case "$p-$side" in
        1-weir) what=(exit) ;;
        1-vector) what=(log "$log" "$(json kept1 <<<"$EXPECT")") ;;
        2-*) what=(lines "$out" "$(json kept2 <<<"$EXPECT")") ;;
        3-*) what=(http "http://127.0.0.1:$HTTP_PORT/count" "$N") ;;
        4-*) what=(kafka "$KAFKA" "out-$side-$r" "$KAFKA_KEPT") ;;
    esac
    if ! end=$(check wait "${what[@]}" "$tpid" "$TIMEOUT"); then
        pkill -KILL -P "$tpid" 2>/dev/null || true
        wait "$tpid" || true
        tail -n 20 "$log" >&2
        fail "pipeline $p, $side, run $r did not finish (log above, work dir $WORK)"
    fi
    # On Kafka, where the CPU goes: seconds per thread name (librdkafka's are rdk:*), summed.
    if [ "$p" = 4 ]; then
        local child
        child=$(pgrep -P "$tpid" | head -n 1 || true)
        for t in /proc/"$child"/task/*; do
            awk -v comm="$(cat "$t/comm" 2>/dev/null)" '{ printf "%s %.2f\n", comm, ($14 + $15) / 100 }' "$t/stat" 2>/dev/null || true
        done | awk '{ cpu[$1] += $2 } END { for (c in cpu) printf "%s %.2f\n", c, cpu[c] }' | sort -k2 -gr | head -n 4 |
            paste -sd' ' >"$WORK/$id.threads" || true
    fi
    # Stop what does not end by itself (Vector always; Weir's Kafka pipeline): SIGTERM to the
    # child of time, a graceful shutdown for both.
    pkill -TERM -P "$tpid" 2>/dev/null || true
    wait "$tpid" || true
    [ "$p-$side" != 1-vector ] || end=$(check vector-discard-end "$log" "$(json kept1 <<<"$EXPECT")")
    local wall user sys rss
    read -r _ user sys rss <"$WORK/$id.time" || fail "no timing for $id: $(cat "$WORK/$id.time")"
    wall=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f", e - s }')
    verify "$p" "$side" "$r" "$log" "$out"
    echo "$p $side $r $wall $(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }') $((rss / 1024))" >>"$WORK/results"
}

# verify PIPELINE SIDE ROUND LOG OUTPUT: the run's output is what check.py computed from the input.
verify() {
    local p=$1 side=$2 r=$3 log=$4 out=$5 got want
    case "$p" in
        1)
            want=$(json kept1 <<<"$EXPECT")
            if [ "$side" = weir ]; then
                got=$(sed -n 's/.*component=null-0 kind="sink" received=[0-9]* sent=\([0-9]*\).*/\1/p' "$log")
            else
                got=$(grep 'Collected events' "$log" | tail -n 1 | sed 's/.*events=\([0-9]*\).*/\1/')
            fi
            [ "$got" = "$want" ] || fail "pipeline 1, $side, run $r: discarded ${got:-no count} records, expected $want"
            ;;
        2)
            got=$(check digest-json "$out")
            want=$(json kept2 <<<"$EXPECT")
            [ "$(json lines <<<"$got")" = "$want" ] || fail "pipeline 2, $side, run $r: $(json lines <<<"$got") lines written, expected $want ($out)"
            [ "$(json digest <<<"$got")" = "$(json digest2 <<<"$EXPECT")" ] ||
                fail "pipeline 2, $side, run $r: the records written differ from the masked input ($out)"
            rm -f "$out"
            ;;
        3)
            got=$(curl -sf "http://127.0.0.1:$HTTP_PORT/count")
            [ "$(json records <<<"$got")" = "$N" ] || fail "pipeline 3, $side, run $r: the server received $(json records <<<"$got") records, expected $N"
            [ "$(json checksum <<<"$got")" = "$(json crc <<<"$EXPECT")" ] || fail "pipeline 3, $side, run $r: the lines received differ from the input"
            [ "$(json bad <<<"$got")" = 0 ] || fail "pipeline 3, $side, run $r: $(json bad <<<"$got") bodies could not be decoded"
            ;;
        4)
            got=$(check kafka-count "$KAFKA" "out-$side-$r")
            [ "$(json records <<<"$got")" = "$KAFKA_KEPT" ] && [ "$(json distinct <<<"$got")" = "$KAFKA_KEPT" ] ||
                fail "pipeline 4, $side, run $r: the output topic holds $got, expected $KAFKA_KEPT records, each once"
            ;;
    esac
}

: >"$WORK/results"
NAMES=([1]="file > filter > discard" [2]="file > filter > mask > file" [3]="file > http (gzip NDJSON)" [4]="kafka > filter > kafka")
for p in $PIPELINES; do
    echo "pipeline $p: ${NAMES[$p]}"
    for r in $(seq 0 "$RUNS"); do
        for side in weir vector; do
            run "$p" "$side" "$r"
            [ "$r" = 0 ] || tail -n 1 "$WORK/results" | awk -v n="$([ "$p" = 4 ] && echo "$NK" || echo "$N")" \
                '{ printf "  run %d %-6s %9.0f records/s %6.2f cpu s/M records %5d MiB\n", $3, $2, n / $4, $5 * 1e6 / n, $6 }'
            [ "$r" = 0 ] || [ ! -s "$WORK/$p-$side-$r.threads" ] || echo "    cpu s by thread: $(cat "$WORK/$p-$side-$r.threads")"
        done
    done
done

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo
printf '%-30s | %-24s | %-24s | %-16s | %s\n' "medians of $RUNS runs" "records/s weir / vector" \
    "cpu s/M rec weir / vector" "peak RSS MiB" "weir/vector: rec/s, rec per cpu-s, RSS"
for p in $PIPELINES; do
    n=$([ "$p" = 4 ] && echo "$NK" || echo "$N")
    col() { awk -v p="$p" -v s="$1" -v c="$2" '$1 == p && $2 == s && $3 > 0 { print $c }' "$WORK/results"; }
    # Per-pair ratios (run r of Weir with run r of Vector), then their median.
    pair() {
        awk -v p="$p" -v c="$1" -v inv="$2" '$1 == p && $3 > 0 { v[$2, $3] = $c; r[$3] = 1 }
            END { for (i in r) print inv ? v["vector", i] / v["weir", i] : v["weir", i] / v["vector", i] }' "$WORK/results" | median
    }
    ww=$(col weir 4 | median); vw=$(col vector 4 | median)
    wc=$(col weir 5 | median); vc=$(col vector 5 | median)
    wr=$(col weir 6 | median); vr=$(col vector 6 | median)
    printf '%-30s | %10.0f / %-11.0f | %10.2f / %-11.2f | %6.0f / %-7.0f | %.2f, %.2f, %.2f\n' "$p. ${NAMES[$p]}" \
        "$(awk -v n="$n" -v w="$ww" 'BEGIN { print n / w }')" "$(awk -v n="$n" -v w="$vw" 'BEGIN { print n / w }')" \
        "$(awk -v n="$n" -v c="$wc" 'BEGIN { print c * 1e6 / n }')" "$(awk -v n="$n" -v c="$vc" 'BEGIN { print c * 1e6 / n }')" \
        "$wr" "$vr" "$(pair 4 1)" "$(pair 5 1)" "$(pair 6 0)"
done
echo "(rec/s and rec per cpu-s ratios above 1 favour Weir; the RSS ratio below 1 does. Every run's output was checked.)"
