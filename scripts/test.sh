#!/usr/bin/env bash
# The whole test suite, as CI runs it (`.ci/run` calls exactly this) and as a developer runs it on
# a fresh machine. Installs what the tests need and the machine lacks, starts what they need,
# runs every test, validates every example, fuzzes the config loader briefly, and stops what it
# started.
#
#   scripts/test.sh                  # everything
#   WEIR_FUZZ_SECONDS=0 scripts/test.sh   # skip the fuzz run
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# Outside the clone, so tools built once (cargo-fuzz, later the Tansu broker) survive fresh clones.
CACHE=${WEIR_CACHE:-${HOME:-/tmp}/.cache/weir}
FUZZ_SECONDS=${WEIR_FUZZ_SECONDS:-30}
mkdir -p "$CACHE"

step() { printf '\n==> %s\n' "$*"; }

PIDS=()
cleanup() {
    for pid in "${PIDS[@]:-}"; do
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

step "toolchain"
cargo --version
rustc --version

step "system packages"
# librdkafka is built from source (needs make, OpenSSL and zlib headers); stunnel4 puts TLS in
# front of the test broker for the Kafka TLS and mutual-TLS tests, whose certificates openssl makes;
# curl calls the operations API as operators do; prometheus (with promtool) scrapes `weir serve`;
# chromium with its WebDriver is the browser whose EventSource reads the `sse` sink; the Redis
# tests start redis-server processes of their own (one per test, on a free port).
PACKAGES=(make pkg-config libssl-dev zlib1g-dev openssl stunnel4 curl prometheus chromium chromium-driver redis-server)
NEED=()
for pkg in "${PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || NEED+=("$pkg")
done
if [ ${#NEED[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${NEED[@]}"
fi
echo "present: ${PACKAGES[*]}"

step "Tansu, the Kafka-protocol broker the Kafka tests start (one per test)"
WEIR_TANSU=$(scripts/install-tansu.sh)
export WEIR_TANSU
"$WEIR_TANSU" --version

# The Confluent-compatible Schema Registry (rivven-schema, built once into the cache) and the
# third-party Avro client (Python confluent-kafka with its Avro serializers) for the format tests.
WEIR_SCHEMA_REGISTRY=$(scripts/install-registry.sh)
export WEIR_SCHEMA_REGISTRY
"$WEIR_SCHEMA_REGISTRY" --version
# The `avro` extra pins a certifi newer than the package index has; install its parts instead.
python3 -m pip install -q --disable-pip-version-check confluent-kafka==2.16.1 fastavro==1.13.1 \
    avro==1.12.2 requests attrs cachetools "authlib>=1.8" httpx2
# schemathesis tests the operations API against its OpenAPI document.
python3 -m pip install -q --disable-pip-version-check schemathesis==4.32.5
schemathesis --version
# Third-party SSE clients (httpx-sse, sseclient-py) and the browser driver (selenium) for the
# `sse` sink's tests.
python3 -m pip install -q --disable-pip-version-check httpx==0.28.1 httpx-sse==0.4.3 \
    sseclient-py==1.9.0 selenium==4.51.0
python3 -c "import httpx_sse, sseclient, selenium"
# The Python Redis client reads back what the redis sink wrote (an independent client).
python3 -m pip install -q --disable-pip-version-check redis==8.1.0
python3 -c "import redis"
python3 -c "from confluent_kafka.schema_registry.avro import AvroSerializer, AvroDeserializer"
# Smoke check of scripts/dev-kafka.sh (the examples' broker), in a folder of its own so a
# developer's running broker is left alone.
SMOKE=$(mktemp -d)
export WEIR_DEV_KAFKA_DIR=$SMOKE
KAFKA_PORT=${WEIR_DEV_KAFKA_PORT:-19092} scripts/dev-kafka.sh
PIDS+=("$(cat "$SMOKE/tansu.pid")")
# A record produced to one of the examples' topics must come back, or the smoke check fails.
python3 - "127.0.0.1:${WEIR_DEV_KAFKA_PORT:-19092}" <<'PY'
import sys, time, uuid
from confluent_kafka import Consumer, Producer
broker, marker = sys.argv[1], str(uuid.uuid4())
p = Producer({"bootstrap.servers": broker})
p.produce("messaging_events_topic", marker.encode())
if p.flush(10) != 0:
    sys.exit("dev-kafka smoke: the record was not acknowledged")
c = Consumer({"bootstrap.servers": broker, "group.id": "smoke-" + marker, "auto.offset.reset": "earliest"})
c.subscribe(["messaging_events_topic"])
deadline = time.time() + 30
while time.time() < deadline:
    m = c.poll(1.0)
    if m is not None and m.error() is None and m.value() == marker.encode():
        print("dev-kafka smoke: produced and consumed a record")
        break
else:
    sys.exit("dev-kafka smoke: the record produced was not consumed within 30 s")
c.close()
PY
scripts/dev-kafka.sh stop
PIDS=()
unset WEIR_DEV_KAFKA_DIR
rm -rf "$SMOKE"

step "formatting and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The runner without its optional connectors and formats (the fuzz target builds it so) compiles too.
cargo check --locked -q -p weir --no-default-features

step "tests"
RESULTS=$CACHE/test-output.txt
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast 2>&1 | tee "$RESULTS"
    SUMMARY=$(grep -E '^ +Summary' "$RESULTS" | tail -n 1)
    PASSED=$(sed -nE 's/.* ([0-9]+) passed.*/\1/p' <<<"$SUMMARY")
    FAILED=$(sed -nE 's/.* ([0-9]+) failed.*/\1/p' <<<"$SUMMARY")
else
    cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$RESULTS"
    PASSED=$(grep -E '^test result:' "$RESULTS" | sed -nE 's/.* ([0-9]+) passed.*/\1/p' | paste -sd+ | bc)
    FAILED=$(grep -E '^test result:' "$RESULTS" | sed -nE 's/.* ([0-9]+) failed.*/\1/p' | paste -sd+ | bc)
fi

step "every example passes weir validate"
cargo build --locked -q -p weir
for f in examples/*.yaml examples/*/*.yaml; do
    [ -e "$f" ] || continue
    ./target/debug/weir validate "$f"
done

step "fuzzing the config loader for ${FUZZ_SECONDS}s"
if [ "$FUZZ_SECONDS" -gt 0 ]; then
    FUZZ_BIN=$CACHE/cargo-fuzz/bin/cargo-fuzz
    if [ ! -x "$FUZZ_BIN" ]; then
        cargo install cargo-fuzz --locked --root "$CACHE/cargo-fuzz"
    fi
    # cargo-fuzz needs nightly flags; the stable toolchain accepts them with RUSTC_BOOTSTRAP.
    mkdir -p "$CACHE/fuzz-corpus"
    (cd fuzz && CARGO_TARGET_DIR="$CACHE/fuzz-target" RUSTC_BOOTSTRAP=1 "$FUZZ_BIN" run config_loader \
        "$CACHE/fuzz-corpus" seeds/config_loader -- -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=4096)
fi

step "all passed"
echo "weir: ${PASSED:-0} passed, ${FAILED:-0} failed"
