#!/usr/bin/env bash
# The Cortex-M0 CMSIS-NN anchor of BENCHMARKS.md ("CMSIS-NN on the Cortex-M0"): builds ARM's
# arm_lstm_unidirectional_s16 (CMSIS-NN commit 99f736a, as the M4F anchor) for the Cortex-M0
# with Debian's gcc-arm-none-eabi (12.2, -O2) and counts it on QEMU microbit with the bench's
# plugin (run `cargo xtask bench microbit` once first to build it). Not part of CI.
#   usage: boards/cmsis-m0/run.sh PATH/TO/CMSIS-NN
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
cmsis="${1:?usage: $0 PATH/TO/CMSIS-NN (a checkout of ARM-software/CMSIS-NN at 99f736a)}"
out="$root/target/cmsis-m0"
mkdir -p "$out"
(cd "$out" && python3 "$here/gen.py")
srcs=$(ls "$cmsis"/Source/LSTMFunctions/arm_lstm_unidirectional_s16.c \
    "$cmsis"/Source/FullyConnectedFunctions/arm_vector_sum_s8_s64.c \
    "$cmsis"/Source/NNSupportFunctions/*.c "$cmsis"/Source/ActivationFunctions/*.c \
    "$cmsis"/Source/BasicMathFunctions/*.c | grep -v '_f16\|_f32\|flt')
arm-none-eabi-gcc -mcpu=cortex-m0 -mthumb -O2 -ffunction-sections -fdata-sections \
    -I"$cmsis/Include" -I"$out" -nostartfiles -T "$here/link.ld" -Wl,--gc-sections -w \
    -o "$out/cm0.elf" "$here/main.c" $srcs
addr() { arm-none-eabi-nm "$out/cm0.elf" | awk -v s="$1" '$3 == s { print "0x" $1 }'; }
plugin="$root/target/bench/qemu-plugin/libinsncount.so"
qemu-system-arm -M microbit -semihosting-config enable=on,target=native -display none \
    -serial null -monitor none -kernel "$out/cm0.elf" \
    -plugin "$plugin,start=$(addr tinyrnn_bench_start),stop=$(addr tinyrnn_bench_stop),out=$out/windows.txt"
# windows: (1 step, 65 steps) per shape I9H32, I9H64, I32H128
awk '{ w[NR] = $3 } END { split("I9H32 I9H64 I32H128", s, " ");
  for (k = 0; k < 3; k++) printf "%s %.1f instructions per step\n", s[k + 1], (w[2 * k + 2] - w[2 * k + 1]) / 64 }' "$out/windows.txt"
