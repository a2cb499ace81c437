#!/usr/bin/env bash
# Runs one fuzz target on one core at low priority, from the repository root:
#   tests/fuzz/run.sh TARGET [libFuzzer options]      e.g. tests/fuzz/run.sh load -runs=10000000
# Targets: load, stream, model, import_keras, import_h5, import_tflite, import_onnx (README.md). Needs nightly and cargo-fuzz.
# Crashes are written to tests/fuzz/artifacts/TARGET/; reproduce one with
#   cargo +nightly fuzz run --fuzz-dir tests/fuzz -s none TARGET tests/fuzz/artifacts/TARGET/crash-...
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
t=$1
shift
tests/fuzz/seed.sh "$t"
exec nice -n 10 cargo +nightly fuzz run --fuzz-dir tests/fuzz -s none "$t" -- \
  -print_final_stats=1 "$@"
