#!/usr/bin/env bash
# Seeds the corpus of a fuzz target (tests/fuzz/corpus/TARGET) if it is empty:
#   load    the committed real blobs (tests/data/blobs/*.trnn)
#   stream  one input per committed blob (first byte = blob index), frames from a fixed pattern
#   model   a few fixed byte strings (the harness builds a valid model from any bytes)
set -euo pipefail
fuzz="$(cd "$(dirname "$0")" && pwd)"
t=$1
dir="$fuzz/corpus/$t"
mkdir -p "$dir"
[[ -n "$(ls -A "$dir")" ]] && exit 0
case "$t" in
  load) cp "$fuzz"/../data/blobs/*.trnn "$dir"/ ;;
  stream)
    for i in 0 1 2 3 4 5 6 7 8; do
      { printf "\\x0$i"; head -c 256 /dev/zero | tr '\0' '\125'; } > "$dir/blob$i"
    done ;;
  model)
    for i in 0 1 2 3 4 5 6 7; do
      head -c $((64 * (i + 1))) /dev/zero | tr '\0' "\\$((101 + i))" > "$dir/seed$i"
    done ;;
  *) echo "unknown target $t" >&2; exit 2 ;;
esac
