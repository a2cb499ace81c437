#!/usr/bin/env bash
# Seeds the corpus of a fuzz target (tests/fuzz/corpus/TARGET) if it is empty:
#   load    the committed real blobs (tests/data/blobs/*.trnn)
#   stream  one input per committed blob (first byte = blob index), frames from a fixed pattern
#   model   a few fixed byte strings (the harness builds a valid model from any bytes)
#   import_keras   the committed .keras files (tests/data/keras, good and broken)
#   import_h5      the committed legacy .h5 files and the weights files inside the .keras zips
#   import_tflite  the committed .tflite files
#   import_onnx    the committed Keras-exported and PyTorch-exported ONNX files
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
  import_keras) cp "$fuzz"/../data/keras/*.keras "$dir"/ ;;
  import_h5)
    cp "$fuzz"/../data/keras/*.h5 "$dir"/
    for k in "$fuzz"/../data/keras/*.keras; do
      # the stored model.weights.h5 of each archive (python3's zipfile: stdlib only)
      python3 -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read("model.weights.h5"))' \
        "$k" > "$dir/$(basename "$k" .keras).weights.h5" 2>/dev/null || rm -f "$dir/$(basename "$k" .keras).weights.h5"
    done ;;
  import_tflite) cp "$fuzz"/../data/tflite/*.tflite "$fuzz"/../data/keras/*.tflite "$dir"/ ;;
  import_onnx)
    cp "$fuzz"/../data/keras/*.onnx "$dir"/
    for f in "$fuzz"/../data/vowels/*.onnx; do cp "$f" "$dir/torch_$(basename "$f")"; done ;;
  *) echo "unknown target $t" >&2; exit 2 ;;
esac
