#!/usr/bin/env bash
# The `sse` sink under many clients (a benchmark, not a test): `weir run` serves a stream fed by
# a generator at 1,000 events/s over 100 tenants, with JWT auth and per-tenant isolation, and
# `tools/sse-bench` opens 10,000 authenticated SSE connections (one tenant each), then measures a
# window: deliveries, latency from the pipeline to the client's read, tenant violations and gaps.
# The script samples weir's CPU and memory over the same window. Bounded: about 70 s with the
# default 60 s window once both binaries are built (at most ramp 45 s + window + 45 s).
#
#   scripts/bench-sse.sh                              # 10,000 clients, 100 tenants, 1,000 events/s, 60 s
#   BENCH_CONNECTIONS=1000 scripts/bench-sse.sh       # fewer clients
#   BENCH_SOURCE_BATCH=100 scripts/bench-sse.sh       # the generator's own pacing: 100 records every 100 ms
#   BENCH_MAX_WAIT=100ms scripts/bench-sse.sh         # the sink's default batching
#   BENCH_RING_EVENTS=1000 scripts/bench-sse.sh       # a smaller resume ring (default 10,000 events)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${BENCH_CONNECTIONS:-10000}
TENANTS=${BENCH_TENANTS:-100}
RATE=${BENCH_RATE:-1000}
DURATION=${BENCH_DURATION:-60}
PORT=${BENCH_PORT:-18080}
# Records per generator batch: 10 means a batch every 10 ms at 1,000/s (the generator's default
# at this rate is 100 every 100 ms).
SOURCE_BATCH=${BENCH_SOURCE_BATCH:-10}
# The sse sink's `batch.max_wait` (the runner's default is 100ms, which adds up to 100 ms).
MAX_WAIT=${BENCH_MAX_WAIT:-1ms}
RAMP_BATCH=${BENCH_RAMP_BATCH:-100}   # below the listener's accept backlog (128)
RAMP_TIMEOUT=${BENCH_RAMP_TIMEOUT:-45}
CLIENT_THREADS=${BENCH_CLIENT_THREADS:-2}
RING_EVENTS=${BENCH_RING_EVENTS:-10000}   # the sink's default
TIMELINE=${BENCH_TIMELINE:-5}   # seconds per line of the client's timeline (0: none)

# Each process holds one descriptor per connection.
want=$((N + 512))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$want" ]; then
    hard=$(ulimit -Hn)
    if [ "$hard" = unlimited ] || [ "$hard" -ge "$want" ]; then
        ulimit -n "$want"
    else
        ulimit -n "$hard"
        echo "warning: ulimit -n is at most $hard; $N connections need about $want" >&2
    fi
fi

cargo build --release -q -p weir
CARGO_TARGET_DIR=target-bench cargo build --release -q -p sse-bench
WEIR=./target/release/weir
BENCH=./target-bench/release/sse-bench

TMP=$(mktemp -d)
WPID=
BPID=
cleanup() {
    [ -n "$BPID" ] && kill "$BPID" 2>/dev/null || true
    [ -n "$BPID" ] && wait "$BPID" 2>/dev/null || true
    if [ -n "$WPID" ]; then
        kill "$WPID" 2>/dev/null || true
        # weir drains on SIGTERM; it gets 5 s.
        for _ in $(seq 50); do kill -0 "$WPID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$WPID" 2>/dev/null || true
        wait "$WPID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

SSE_BENCH_SECRET=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
export SSE_BENCH_SECRET
# Each record gets its tenant (`ccid`, from the generator's sequence number modulo the tenants),
# that number (`seq`, so clients can see gaps) and the time it entered the pipeline (`sent_ms`,
# jq's `now`), in front of the generated transaction (~300 bytes).
cat >"$TMP/sse-bench.yaml" <<EOF
pipelines:
  sse-bench:
    source:
      type: generator
      rate_per_sec: $RATE
      max_batch: $SOURCE_BATCH
      seed: 1
    transforms:
      - type: jq
        input: value
        program: '(.id | split("-")[2] | tonumber) as \$n | {ccid: "t\(\$n % $TENANTS)", seq: \$n, sent_ms: (now * 1000)} + .'
    sinks:
      - type: sse
        stream: bench
        listen: 127.0.0.1:$PORT
        tenant: <\$.value.ccid>
        ring_max_events: $RING_EVENTS
        batch: { max_wait: $MAX_WAIT }
        auth:
          hs256_secret: \${SSE_BENCH_SECRET}
          tenant_claim: ccid
EOF

$WEIR run --log info "$TMP/sse-bench.yaml" >"$TMP/weir.log" 2>&1 &
WPID=$!
for _ in $(seq 100); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/v1/streams/bench" || true)
    [ "$code" = 401 ] && break
    kill -0 "$WPID" 2>/dev/null || { cat "$TMP/weir.log"; exit 1; }
    sleep 0.1
done
[ "$code" = 401 ] || { echo "the stream did not come up (HTTP $code)"; cat "$TMP/weir.log"; exit 1; }

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
status_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
listen_overflows() {
    awk '/^TcpExt:/ { if (!h) { for (i = 1; i <= NF; i++) n[i] = $i; h = 1 }
                      else { for (i = 1; i <= NF; i++) if (n[i] == "ListenOverflows") print $i } }' /proc/net/netstat
}
# The host's busy CPU ticks (all cores): the machine is shared, so this shows what else ran.
host_busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
# Per thread of a process: tid, name, ticks.
thread_ticks() {
    for t in /proc/"$1"/task/*; do
        echo "$(basename "$t") $(tr ' ' _ <"$t/comm") $(awk '{print $14 + $15}' "$t/stat")"
    done 2>/dev/null
}
CLK=$(getconf CLK_TCK)
NCPU=$(nproc)
overflows0=$(listen_overflows)
rss_idle=$(status_kib "$WPID" VmRSS)

# sse-bench stops itself at the latest RAMP_TIMEOUT + DURATION + 30 s.
$BENCH --addr "127.0.0.1:$PORT" --stream bench \
    --connections "$N" --tenants "$TENANTS" --duration "$DURATION" --batch "$RAMP_BATCH" \
    --ramp-timeout "$RAMP_TIMEOUT" --threads "$CLIENT_THREADS" --timeline "$TIMELINE" >"$TMP/bench.out" 2>"$TMP/bench.err" &
BPID=$!

# The window: from the client's `window: start` to its `window: end`.
until grep -qs '^window: start' "$TMP/bench.out"; do
    kill -0 "$BPID" 2>/dev/null || { cat "$TMP/bench.out" "$TMP/bench.err"; exit 1; }
    sleep 0.1
done
t0=$(date +%s.%N)
w0=$(ticks "$WPID")
h0=$(host_busy)
thread_ticks "$WPID" >"$TMP/threads0"
rss0=$(status_kib "$WPID" VmRSS)
overflows_ramp=$(listen_overflows)
rss_samples=()
host_samples=()
hprev=$h0
tprev=$t0
i=0
until grep -q '^window: end' "$TMP/bench.out"; do
    kill -0 "$BPID" 2>/dev/null || break
    sleep 0.1
    i=$((i + 1))
    if [ $((i % 100)) -eq 0 ]; then
        rss_samples+=("$(($(status_kib "$WPID" VmRSS) / 1024))")
        hb=$(host_busy)
        tb=$(date +%s.%N)
        host_samples+=("$(echo "scale=2; ($hb - $hprev) / $CLK / ($tb - $tprev)" | bc)")
        hprev=$hb
        tprev=$tb
    fi
done
kill -0 "$WPID" 2>/dev/null || { echo "weir exited during the window"; cat "$TMP/weir.log"; exit 1; }
t1=$(date +%s.%N)
w1=$(ticks "$WPID")
h1=$(host_busy)
thread_ticks "$WPID" >"$TMP/threads1"
rss1=$(status_kib "$WPID" VmRSS)
hwm=$(status_kib "$WPID" VmHWM)
threads=$(status_kib "$WPID" Threads)
wait "$BPID" || echo "sse-bench exited with $?"
BPID=
overflows1=$(listen_overflows)

cat "$TMP/bench.out"
grep -v '^ramp: [0-9]* attempted' "$TMP/bench.err" || true
window=$(echo "$t1 - $t0" | bc)
weir_cpu=$(echo "scale=1; ($w1 - $w0) / $CLK" | bc)
echo
echo "== SSE bench: $N connections, $TENANTS tenants, $RATE events/s (source batches of $SOURCE_BATCH, sink max_wait $MAX_WAIT) =="
grep -E '^(ramp: [0-9]+ established|ramp: failed|connections|events|source|latency|violations|missing)' "$TMP/bench.out" | grep -v 'dropped: ' || true
echo "weir CPU over the $(printf %.1f "$window") s window: ${weir_cpu} s = $(echo "scale=2; ($w1 - $w0) / $CLK / $window" | bc) cores ($threads threads)"
grep '^client CPU' "$TMP/bench.out" | sed 's/^client/sse-bench (the client)/' || true
echo "weir CPU by thread: $(LC_ALL=C join "$TMP/threads0" "$TMP/threads1" | awk -v c="$CLK" '{d = ($5 - $3) / c; if (d > 0) printf "%s %.1f s, ", $2, d}' | sed 's/, $//')"
echo "host CPU over the window: $(echo "scale=2; ($h1 - $h0) / $CLK / $window" | bc) of $NCPU cores busy (weir, sse-bench, the kernel's share of them, and anything else running)"
echo "weir RSS: $((rss_idle / 1024)) MiB before the clients, $((rss0 / 1024)) MiB at the window's start, $((rss1 / 1024)) MiB at its end, peak (VmHWM) $((hwm / 1024)) MiB"
echo "weir RSS every 10 s in the window (MiB): ${rss_samples[*]:-}"
echo "host CPU busy every 10 s in the window (cores): ${host_samples[*]:-}"
echo "listen queue overflows (TcpExtListenOverflows, whole host): $((overflows_ramp - overflows0)) during the ramp, $((overflows1 - overflows_ramp)) after"
if grep -qE ' (WARN|ERROR) |fell behind' "$TMP/weir.log"; then
    echo "weir's log (warnings, errors, slow clients):"
    grep -E ' (WARN|ERROR) |fell behind' "$TMP/weir.log" | tail -n 20
fi
