#!/usr/bin/env bash
# `weir serve` hosting many pipelines at once (a benchmark, not a test): creates N pipelines
# (generator at a low rate → filter → null) over the API, lets them run, then reports the
# process's resident memory and how long `GET /metrics` takes.
#
#   scripts/bench-serve.sh                 # 100 pipelines
#   BENCH_PIPELINES=300 scripts/bench-serve.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${BENCH_PIPELINES:-100}
RATE=${BENCH_RATE:-10}
SCRAPES=${BENCH_SCRAPES:-50}
PORT=${BENCH_PORT:-18999}
cargo build --release -q -p weir
STATE=$(mktemp -d)
./target/release/weir serve --listen 127.0.0.1:$PORT --state-dir "$STATE" --log warn >"$STATE/serve.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$STATE"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/livez" >/dev/null && break; sleep 0.1; done

start=$(date +%s.%N)
for i in $(seq "$N"); do
    curl -sf -o /dev/null -X POST "http://127.0.0.1:$PORT/v1/pipelines" -H 'content-type: application/json' \
        -d "{\"name\":\"p$i\",\"source\":{\"type\":\"generator\",\"rate_per_sec\":$RATE},\"transforms\":[{\"type\":\"filter\",\"patterns\":[{\"value\":{\"amount\":[{\"numeric\":[\">\",100]}]}}]}],\"sinks\":[{\"type\":\"null\"}]}"
done
created=$(date +%s.%N)
for _ in $(seq 300); do
    running=$(curl -sf "http://127.0.0.1:$PORT/v1/pipelines" | grep -o '"state":"running"' | wc -l)
    [ "$running" -ge "$N" ] && break
    sleep 0.1
done
echo "pipelines: $N created in $(echo "$created - $start" | bc) s, $running running"
sleep 10

rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status")
hwm_kib=$(awk '/VmHWM/ {print $2}' "/proc/$PID/status")
cpu_ticks=$(awk '{print $14 + $15}' "/proc/$PID/stat")
times=()
for _ in $(seq "$SCRAPES"); do
    times+=("$(curl -sf -o /dev/null -w '%{time_total}' "http://127.0.0.1:$PORT/metrics")")
done
size=$(curl -sf "http://127.0.0.1:$PORT/metrics" | wc -c)
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
median=$(echo "$sorted" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
p99=$(echo "$sorted" | awk '{a[NR]=$1} END {i=int(NR*0.99); if (i<1) i=1; print a[i]}')
max=$(echo "$sorted" | tail -n 1)
echo "RSS: $((rss_kib / 1024)) MiB (peak $((hwm_kib / 1024)) MiB)"
echo "CPU: $cpu_ticks ticks ($(getconf CLK_TCK)/s) since start"
echo "GET /metrics ($size bytes), $SCRAPES scrapes: median ${median}s, p99 ${p99}s, max ${max}s"
