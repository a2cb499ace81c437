#!/usr/bin/env bash
# Ed25519 verifier comparison: .text bytes (firmware minus the `none` baseline) and
# instructions per verification under QEMU with the insn-count TCG plugin, on the Cortex-M4F
# (mps2-an386, thumbv7em-none-eabihf) and the Cortex-M0 (microbit, thumbv6m-none-eabi).
# Usage: boards/sigbench/measure.sh [release|release-s]   (from anywhere; needs qemu-system-arm, cc, llvm-size or
# arm-none-eabi-size)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
profile="${1:-release}"
out="$root/target/sigbench"
mkdir -p "$out"
plugin="$out/libinsncount.so"
cc -shared -fPIC -O2 -Wall -fvisibility=hidden -o "$plugin" "$root/boards/qemu-plugin/insncount.c"
size_tool="$(command -v llvm-size || command -v arm-none-eabi-size || true)"
if [ -z "$size_tool" ]; then
    size_tool="$(find "$(rustc --print sysroot)" -name llvm-size -type f | head -1)"
fi
nm_tool="$(command -v llvm-nm || command -v arm-none-eabi-nm || find "$(rustc --print sysroot)" -name llvm-nm -type f | head -1)"
echo "profile $profile"
printf '%-22s %-16s %10s %10s %14s %14s\n' target verifier text text-base insn-test1 insn-4KiB
for pair in thumbv7em-none-eabihf:mps2-an386 thumbv6m-none-eabi:microbit; do
    target="${pair%%:*}"; machine="${pair##*:}"
    base=""
    for v in ${VERIFIERS:-none dalek compact compact-small salty tinyrnn}; do
        if ! (cd "$here" && cargo build -q --profile "$profile" --target "$target" \
            --features "$v" --target-dir "$out/$v" 2>"$out/$v-$target.build.log"); then
            printf '%-22s %-16s %10s\n' "$target" "$v" "does not link (see $out/$v-$target.build.log)"
            continue
        fi
        elf="$out/$v/$target/$profile/tinyrnn-sigbench"
        text=$("$size_tool" -A "$elf" | awk '$1==".text"{print $2}')
        [ "$v" = none ] && base=$text
        start=$("$nm_tool" "$elf" | awk '$3=="tinyrnn_bench_start"{print $1}')
        stop=$("$nm_tool" "$elf" | awk '$3=="tinyrnn_bench_stop"{print $1}')
        rm -f "$out/windows.txt"
        timeout 600 qemu-system-arm -M "$machine" -semihosting-config enable=on,target=native \
            -display none -serial null -monitor none \
            -plugin "$plugin,start=0x$start,stop=0x$stop,out=$out/windows.txt" \
            -kernel "$elf" >"$out/$v-$target.log"
        w=($(awk '$1=="window"{print $3}' "$out/windows.txt"))
        printf '%-22s %-16s %10s %10s %14s %14s\n' "$target" "$v" "$text" "$((text - base))" "${w[0]}" "${w[1]}"
    done
done
