#!/usr/bin/env bash
# Fuzz smoke run for CI: every target for SECONDS (default 20, so about 2.5 minutes in all)
# on fresh corpora seeded from the committed blobs and model files. Exit status 1 on any crash, with the
# reproducer path. Installs the nightly toolchain (minimal profile) and cargo-fuzz when
# missing: allow a few minutes for that and for the first build (see README.md).
#   tests/fuzz/smoke.sh [SECONDS]
set -euo pipefail
fuzz="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$fuzz/../.." && pwd)"
cd "$root"
secs="${1:-20}"

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz smoke: installing the nightly toolchain"
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz smoke: installing cargo-fuzz"
  cargo install cargo-fuzz --version 0.13.2 --locked
fi
start=$(date +%s)
cargo +nightly fuzz build --fuzz-dir tests/fuzz -s none
echo "fuzz smoke: build $(( $(date +%s) - start )) s"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
status=0
for t in load stream model import_keras import_h5 import_tflite import_onnx; do
  corpus="$work/$t"
  mkdir -p "$corpus" "$fuzz/artifacts/$t"
  # seed.sh fills tests/fuzz/corpus/TARGET; copy from there when it already exists
  "$fuzz/seed.sh" "$t"
  cp "$fuzz/corpus/$t"/* "$corpus"/ 2>/dev/null || true
  if cargo +nightly fuzz run --fuzz-dir tests/fuzz -s none "$t" "$corpus" -- \
      -max_total_time="$secs" -print_final_stats=1 >"$work/$t.log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log")
    echo "fuzz smoke: $t ok, $runs executions in $secs s"
  else
    tail -n 40 "$work/$t.log"
    echo "fuzz smoke: $t FAILED; reproducer in tests/fuzz/artifacts/$t/" >&2
    status=1
  fi
done
exit $status
