//! Cortex-M DSP-extension kernels: `SMLAD` + `SXTB16` (int8 weights) and `SMLALD` (int16).
//!
//! Compiled only for Cortex-M targets with the DSP extension: cfg `tinyrnn_dsp`, which the
//! crate's `build.rs` sets for every `thumbv7em-*` target (Cortex-M4/M7; stable Rust has no
//! Arm `target_feature` cfg), or `all(target_arch = "arm", target_feature = "dsp")` where the
//! toolchain exposes it. Every other target runs the portable kernels of
//! [`kernel`](crate::kernel). LLVM does not form `SMLAD` from the
//! portable code, hence hand-written assembly, in this one module, the only place of the
//! crate where `unsafe` is allowed.
//!
//! The kernels compute exactly the integers of their portable twins ([`dot_i8`](super::dot_i8),
//! [`dot4_i8`](super::dot4_i8), [`dot4_i16`](super::dot4_i16)): `SMLALD` sums the two
//! 32-bit products of a pair of int16 weights in 64 bits, as the portable `i64` sum; the int8 layout (`c0, c2, c1, c3` per block of four
//! columns, see [`model`](crate::model)) makes one 32-bit load + `SXTB16` / `SXTB16 ROR 8`
//! yield the pairs `(c0, c1)`, `(c2, c3)` that `SMLAD` multiplies with two packed `i16`
//! activations, and `SMLAD`'s 32-bit sum cannot overflow (|Σ| ≤ 2^30, see
//! [`fxp`](crate::fxp)). The QEMU benchmark firmware (`boards/bench`, `cargo xtask bench
//! --check`) compares them with the portable kernels bit for bit on random rows.
//!
//! Safety argument (one for the module): each public function checks, before entering the
//! assembly, that every byte and word the assembly reads lies inside the slices it was
//! given, and falls back to the portable kernel otherwise. The assembly reads memory only
//! (weights with `LDR`, which Cortex-M allows unaligned; activations with `LDRD` from a
//! `&[u32]`, hence aligned), writes only the caller's output array, and follows the AAPCS.
#![allow(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

use core::arch::{asm, global_asm};

/// `Σ w[j]·x[j]` for one int8 row (as [`dot_i8`](super::dot_i8)): 8 instructions per
/// 4 columns.
#[inline]
pub fn dot_i8(w: &[u8], x: &[u32]) -> i32 {
    let blocks = (w.len() / 4).min(x.len() / 2);
    if blocks == 0 {
        return 0;
    }
    let mut acc = 0i32;
    // SAFETY: the loop runs `blocks ≥ 1` times and reads 4 bytes of `w` and 2 words of `x`
    // per iteration: `4·blocks ≤ w.len()` bytes and `2·blocks ≤ x.len()` words. `x` is a
    // `&[u32]`, so `LDRD` is aligned; `LDR` of weights may be unaligned (allowed on v7-M).
    unsafe {
        asm!(
            "2:",
            "ldr {w}, [{p}], #4",
            "ldrd {x01}, {x23}, [{xp}], #8",
            "sxtb16 {t}, {w}",
            "smlad {acc}, {t}, {x01}, {acc}",
            "sxtb16 {t}, {w}, ror #8",
            "smlad {acc}, {t}, {x23}, {acc}",
            "subs {n}, {n}, #1",
            "bne 2b",
            acc = inout(reg) acc,
            p = inout(reg) w.as_ptr() => _,
            xp = inout(reg) x.as_ptr() => _,
            n = inout(reg) blocks => _,
            w = out(reg) _,
            x01 = out(reg) _,
            x23 = out(reg) _,
            t = out(reg) _,
            options(pure, readonly, nostack),
        );
    }
    acc
}

/// One block of four columns for the four rows: `LDRD` two activation words, then per row
/// `LDR` + `SXTB16` ×2 + `SMLAD` ×2 (21 instructions for 16 MACs).
macro_rules! dot4_block {
    () => {
        concat!(
            "ldrd r8, r9, [r1], #8\n",
            "ldr r10, [r0, r2]\n",
            "sxtb16 r11, r10\n",
            "smlad r5, r11, r8, r5\n",
            "sxtb16 r11, r10, ror #8\n",
            "smlad r5, r11, r9, r5\n",
            "ldr r10, [r0], #4\n",
            "sxtb16 r11, r10\n",
            "smlad r4, r11, r8, r4\n",
            "sxtb16 r11, r10, ror #8\n",
            "smlad r4, r11, r9, r4\n",
            "ldr r10, [lr, r2]\n",
            "sxtb16 r11, r10\n",
            "smlad r7, r11, r8, r7\n",
            "sxtb16 r11, r10, ror #8\n",
            "smlad r7, r11, r9, r7\n",
            "ldr r10, [lr], #4\n",
            "sxtb16 r11, r10\n",
            "smlad r6, r11, r8, r6\n",
            "sxtb16 r11, r10, ror #8\n",
            "smlad r6, r11, r9, r6\n",
        )
    };
}

// tinyrnn_dsp_dot4_i8(w: r0, x: r1, stride: r2, out: r3)
//   rows at w, w + stride, w + 2·stride, w + 3·stride, each `stride` bytes = stride/4 blocks;
//   x: stride/2 words. Preconditions (checked by `dot4_i8`): stride a non-zero multiple of 4.
// Registers: r0 rows 0/1 pointer, lr rows 2/3 pointer, r1 x pointer, r12 end of x,
//   r4–r7 accumulators, r8/r9 two activation words, r10 weight word, r11 sign-extended pair.
// The loop body is unrolled four times; the entry point depends on the block count mod 4.
global_asm!(
    ".pushsection .text.tinyrnn_dsp_dot4_i8,\"ax\",%progbits",
    ".syntax unified",
    ".thumb",
    ".p2align 2",
    ".global tinyrnn_dsp_dot4_i8",
    ".type tinyrnn_dsp_dot4_i8,%function",
    ".thumb_func",
    "tinyrnn_dsp_dot4_i8:",
    "push {{r4, r5, r6, r7, r8, r9, r10, r11, lr}}",
    "add.w r12, r1, r2, lsl #1",
    "add.w lr, r0, r2, lsl #1",
    "movs r4, #0",
    "movs r5, #0",
    "movs r6, #0",
    "movs r7, #0",
    // enter the 4× unrolled loop so that the block count comes out right:
    // blocks mod 4 = 0 → copy 1, 3 → copy 2, 2 → copy 3, 1 → copy 4
    "ubfx r8, r2, #2, #2",
    "cmp r8, #2",
    "beq 4f",
    "bhi 3f",
    "cmp r8, #1",
    "beq 5f",
    "2:",
    dot4_block!(),
    "3:",
    dot4_block!(),
    "4:",
    dot4_block!(),
    "5:",
    dot4_block!(),
    "cmp r1, r12",
    "bne 2b",
    "stm r3, {{r4, r5, r6, r7}}",
    "pop {{r4, r5, r6, r7, r8, r9, r10, r11, pc}}",
    ".size tinyrnn_dsp_dot4_i8, . - tinyrnn_dsp_dot4_i8",
    ".popsection",
);

extern "C" {
    fn tinyrnn_dsp_dot4_i8(w: *const u8, x: *const u32, stride: usize, out: *mut [i32; 4]);
}

/// `Σ w_r[j]·x[j]` for four consecutive int8 rows (as [`dot4_i8`](super::dot4_i8)): one
/// pass over `x`, 21 instructions per 4 columns of the 4 rows plus 2 per 16 columns.
#[inline]
pub fn dot4_i8(w4: &[u8], x: &[u32]) -> [i32; 4] {
    let stride = 2 * x.len();
    if x.is_empty() || !x.len().is_multiple_of(2) || w4.len() < 4 * stride {
        return super::dot4_i8(w4, x);
    }
    let mut out = [0i32; 4];
    // SAFETY: `stride = 2·x.len()` is a non-zero multiple of 4; the assembly reads the
    // `4·stride ≤ w4.len()` bytes of `w4` and the `stride/2 = x.len()` words of `x`, and
    // writes the four words of `out`; it saves and restores r4–r11 (AAPCS).
    unsafe { tinyrnn_dsp_dot4_i8(w4.as_ptr(), x.as_ptr(), stride, &mut out) };
    out
}

/// One block of four columns (two activation words) for the four int16 rows: per word
/// `LDR` the activations, then per row `LDR` + `SMLALD` (18 instructions for 16 MACs).
macro_rules! dot4_i16_word {
    () => {
        concat!(
            "ldr r3, [r1], #4\n",
            "ldr r12, [r0, r2]\n",
            "smlald r6, r7, r12, r3\n",
            "ldr r12, [r0], #4\n",
            "smlald r4, r5, r12, r3\n",
            "ldr r12, [lr, r2]\n",
            "smlald r10, r11, r12, r3\n",
            "ldr r12, [lr], #4\n",
            "smlald r8, r9, r12, r3\n",
        )
    };
}

// tinyrnn_dsp_dot4_i16(w: r0, x: r1, stride: r2, out: r3)
//   rows at w + r·stride (r = 0..4), each `stride` bytes = stride/4 weight pairs; x: stride/4
//   words. Preconditions (checked by `dot4_i16`): stride a non-zero multiple of 8.
// Registers: r0 rows 0/1, lr rows 2/3, r1 x pointer, r3 activation word, r12 weight pair,
//   r4:r5, r6:r7, r8:r9, r10:r11 the four 64-bit accumulators (lo:hi); the end of x and the
//   output pointer live on the stack (no register left).
global_asm!(
    ".pushsection .text.tinyrnn_dsp_dot4_i16,\"ax\",%progbits",
    ".syntax unified",
    ".thumb",
    ".p2align 2",
    ".global tinyrnn_dsp_dot4_i16",
    ".type tinyrnn_dsp_dot4_i16,%function",
    ".thumb_func",
    "tinyrnn_dsp_dot4_i16:",
    "push {{r3, r4, r5, r6, r7, r8, r9, r10, r11, lr}}",
    "add.w r12, r1, r2",
    "push {{r12}}",
    "add.w lr, r0, r2, lsl #1",
    "movs r4, #0",
    "movs r5, #0",
    "movs r6, #0",
    "movs r7, #0",
    "mov.w r8, #0",
    "mov.w r9, #0",
    "mov.w r10, #0",
    "mov.w r11, #0",
    "2:",
    dot4_i16_word!(),
    dot4_i16_word!(),
    "ldr r12, [sp]",
    "cmp r1, r12",
    "bne 2b",
    "ldr r3, [sp, #4]",
    "stm r3, {{r4, r5, r6, r7, r8, r9, r10, r11}}",
    "add sp, #8",
    "pop {{r4, r5, r6, r7, r8, r9, r10, r11, pc}}",
    ".size tinyrnn_dsp_dot4_i16, . - tinyrnn_dsp_dot4_i16",
    ".popsection",
);

extern "C" {
    fn tinyrnn_dsp_dot4_i16(w: *const u8, x: *const u32, stride: usize, out: *mut [i64; 4]);
}

/// `Σ w_r[j]·x[j]` for four consecutive int16 rows (as [`dot4_i16`](super::dot4_i16)),
/// `SMLALD`: one pass over `x`, 18 instructions per 4 columns of the 4 rows plus 3 per loop.
#[inline]
pub fn dot4_i16(w4: &[u8], x: &[u32]) -> [i64; 4] {
    let stride = 4 * x.len();
    if x.is_empty() || !x.len().is_multiple_of(2) || w4.len() < 4 * stride {
        return super::dot4_i16(w4, x);
    }
    let mut out = [0i64; 4];
    // SAFETY: `stride = 4·x.len()` is a non-zero multiple of 8; the assembly reads the
    // `4·stride ≤ w4.len()` bytes of `w4` (word loads, unaligned allowed) and the `x.len()`
    // words of `x` (two per iteration: `x.len()` is even), writes the 32 bytes of `out`, keeps
    // its stack balanced and saves and restores r4–r11 (AAPCS).
    unsafe { tinyrnn_dsp_dot4_i16(w4.as_ptr(), x.as_ptr(), stride, &mut out) };
    out
}
