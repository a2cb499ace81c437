#!/usr/bin/env bash
# Link-time no-panic check (see README.md in this folder).
#
#   tests/no_panic/check.sh            release profile (as firmware ships: panic = "abort",
#                                      no overflow checks): thumbv7em-none-eabihf (DSP
#                                      kernels) with default features, with `libm` and with
#                                      only tinyrnn's `lstm,int8` (feature `lstm-int8` of
#                                      this crate, without its defaults),
#                                      thumbv6m-none-eabi and riscv32imc-unknown-none-elf
#                                      (portable kernels); and with the model/state store
#                                      (feature `store`) on thumbv7em and thumbv6m
#   tests/no_panic/check.sh --checked  the same with overflow-checks = true (profile
#                                      `checked`): also lists the arithmetic the optimizer
#                                      cannot prove overflow-free (informative, see README)
#
# Exit status 0: no panic path is linked. Otherwise the link error is printed and, if an
# llvm-objdump is available (PATH, or rustup's llvm-tools), the source location of every
# remaining panic call site, with its inlining chain.
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export CARGO_TERM_COLOR=never
log="$CARGO_TARGET_DIR/no-panic.log"
mkdir -p "$CARGO_TARGET_DIR"

find_tool() { # llvm-objdump / llvm-addr2line from PATH or rustup's llvm-tools
  local t
  for t in "$1" "$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/$1"; do
    if command -v "$t" >/dev/null 2>&1; then echo "$t"; return 0; fi
  done
  return 1
}

# Prints every call into core's panic machinery in the `report` build of `$1` (profile)
# for target `$2` with features `$3`: the call site and every branch into it, symbolized
# with their inlining chains.
report() {
  local profile=$1 target=$2 features=$3 objdump addr2line elf
  if ! objdump=$(find_tool llvm-objdump) || ! addr2line=$(find_tool llvm-addr2line); then
    echo "no-panic: install llvm (llvm-objdump, llvm-addr2line) or 'rustup component add" \
         "llvm-tools' to see which functions still panic" >&2
    return 0
  fi
  cargo build -q --profile "$profile" --target "$target" --features "report $features" \
    $(nodefault "$features") >/dev/null 2>&1 || return 0
  elf="$CARGO_TARGET_DIR/$target/$profile/tinyrnn-no-panic"
  # perl (essential on Debian) rather than awk: mawk lacks the needed match().
  "$objdump" -d -C --no-show-raw-insn "$elf" | perl -ne '
    BEGIN {
      $P = qr/<(core::panicking::|core::slice::index::|core::option::(unwrap|expect)_failed|core::result::unwrap_failed|core::cell::panic|core::panic|__rustc::rust_begin_unwind)/;
    }
    if (/^[0-9a-f]+ <.*>:$/) { $infn = /$P/; @insn = (); next }
    next unless /^ *([0-9a-f]+):\s/;
    my $a = $1; push @insn, $a; $text{$a} = $_;
    if (!$infn && /\tbl?(\.w)?\t0x[0-9a-f]+ </ && /$P/) {
      $site{$a} = 1;
      # the stub leading to the call: preceding instructions up to a terminator
      for my $k (reverse(($#insn > 3 ? $#insn - 3 : 0) .. $#insn - 1)) {
        my $t = $text{$insn[$k]};
        last if $t =~ /\tpop(\.w)?\t.*pc\}/ || $t =~ /\tb(\.w)?\t/ || $t =~ /\tbx\t/ || $t =~ $P;
        $site{$insn[$k]} = 1;
      }
    }
    $branch{$a} = $3 if /\t(b[a-z.]*|cbn?z)\t([^,]*, )?0x([0-9a-f]+)/;
    END {
      for (keys %site) { print "$_\n" if $text{$_} =~ $P }
      for (keys %branch) { print "$_\n" if $site{$branch{$_}} }
    }' |
    sort -u | while read -r a; do
      "$addr2line" -f -i -C -e "$elf" "0x$a" | paste - - |
        sed -E 's#::h[0-9a-f]{16}##; s#^_##; s#\$LT\$#<#g; s#\$GT\$#>#g; s#\$C\$#,#g;
                s#\$u20\$# #g; s#\$u7b\$#{#g; s#\$u7d\$#}#g; s#\$RF\$#\&#g; s#\.\.#::#g;
                s#[^\t]*/(registry/src/[^/]*|git/checkouts)/##; s#^(.*)\t'"$PWD"'/\.\./\.\./#\1\t#' |
        grep -v $'\t/rustc/' | grep -v $'\tlibrary/' |
        head -n 3 | awk -F'\t' '{ printf "%s%s (%s)", (NR > 1 ? " <- " : ""), $1, $2 } END { print "" }'
    done | sort | uniq -c | sort -rn
}

# `lstm-int8` replaces tinyrnn's default features (every cell and precision).
nodefault() { [[ "$1" == *lstm-int8* ]] && echo --no-default-features || true; }

status=0
echo "no-panic: canary (a deliberate out-of-bounds index must fail to link)"
if cargo build --release --target thumbv7em-none-eabihf --features canary >"$log" 2>&1; then
  echo "no-panic: FAILED: the canary linked, so the check proves nothing" >&2
  exit 1
elif ! grep -q 'undefined symbol: tinyrnn_panic_path_is_linked' "$log"; then
  cat "$log" >&2
  echo "no-panic: FAILED: the canary build failed for another reason" >&2
  exit 1
fi

builds=(
  "release thumbv7em-none-eabihf"
  "release thumbv7em-none-eabihf libm"
  "release thumbv7em-none-eabihf lstm-int8"
  "release thumbv6m-none-eabi"
  "release riscv32imc-unknown-none-elf"
  "release thumbv7em-none-eabihf store"
  "release thumbv6m-none-eabi store"
)
if [[ "${1:-}" == --checked ]]; then
  builds+=("checked thumbv7em-none-eabihf" "checked thumbv7em-none-eabihf libm")
fi
for b in "${builds[@]}"; do
  read -r profile target features <<<"$b"
  what="$profile, $target${features:+, features $features}"
  if cargo build --profile "$profile" --target "$target" --features "$features" \
    $(nodefault "$features") >"$log" 2>&1; then
    echo "no-panic: ok ($what): no panic path linked"
  elif grep -q 'undefined symbol: tinyrnn_panic_path_is_linked' "$log"; then
    grep -E 'undefined|referenced' "$log" >&2
    echo "no-panic: FAILED ($what): panic paths remain; call sites (count, innermost 3 frames):" >&2
    report "$profile" "$target" "$features" >&2
    status=1
  else
    cat "$log" >&2
    echo "no-panic: FAILED ($what): the build failed" >&2
    status=1
  fi
done
exit $status
