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
CACHE=${WEIR_CACHE:-$ROOT/.cache}
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

step "formatting and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast
    # nextest does not run doctests
    cargo test --workspace --locked --doc
else
    cargo test --workspace --locked --no-fail-fast
fi

step "every example passes weir validate"
cargo build --locked -q -p weir-runner
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
    (cd fuzz && RUSTC_BOOTSTRAP=1 "$FUZZ_BIN" run config_loader "$CACHE/fuzz-corpus" seeds/config_loader -- \
        -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=4096)
fi

step "all passed"
