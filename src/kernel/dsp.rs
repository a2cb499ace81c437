//! Cortex-M assembly kernels: DSP extension `SMLAD` + `SXTB16` (int8 weights) and `SMLALD`
//! (int16), FPU `VFMA` (f32), and an int8 four-row kernel for the Cortex-M0.
//!
//! The DSP kernels are compiled only for Cortex-M targets with the DSP extension: cfg
//! `tinyrnn_dsp`, which the crate's `build.rs` sets for every `thumbv7em-*` target
//! (Cortex-M4/M7; stable Rust has no Arm `target_feature` cfg), or
//! `all(target_arch = "arm", target_feature = "dsp")` where the toolchain exposes it; the
//! f32 ones for the hard-float targets (cfg `tinyrnn_fpu`); the Cortex-M0 one
//! (`dot4_i8` under cfg `tinyrnn_v6m`, every `thumbv6m-*` target: `MULS` only, 8 low
//! registers) at the end of the module. Every other target runs the portable kernels of
//! [`kernel`](crate::kernel). LLVM does not form `SMLAD` from the portable code, nor keep
//! four accumulators in the M0's high registers, hence hand-written assembly, in this one
//! module, the only place of the crate where `unsafe` is allowed.
//!
//! [`Gate8::block`] goes one step further for the cells: both products of four units of a
//! gate, biases and requantization included, in one call.
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

#[cfg(any(tinyrnn_dsp, all(target_arch = "arm", target_feature = "dsp")))]
use core::arch::asm;
use core::arch::global_asm;

#[cfg(any(tinyrnn_dsp, all(target_arch = "arm", target_feature = "dsp")))]
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
#[cfg(any(tinyrnn_dsp, all(target_arch = "arm", target_feature = "dsp")))]
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
            "ldr r10, [r3, r2]\n",
            "sxtb16 r11, r10\n",
            "smlad r7, r11, r8, r7\n",
            "sxtb16 r11, r10, ror #8\n",
            "smlad r7, r11, r9, r7\n",
            "ldr r10, [r3], #4\n",
            "sxtb16 r11, r10\n",
            "smlad r6, r11, r8, r6\n",
            "sxtb16 r11, r10, ror #8\n",
            "smlad r6, r11, r9, r6\n",
        )
    };
}

/// Row `k` (0..4) of a block: `acc ⊕= bias[k]` (`QADD`), then, for `shift ∈ 33..=62`, the
/// short exact requantization of [`requant_i32`](super::requant_i32)
/// (`((SMMUL(acc, mult) >> (shift − 33)) + 1) >> 1`, 11 instructions in all); other shifts
/// branch to `slow_row!`, which sets bit `bit` of the mask in r11 and leaves `acc ⊕ bias`
/// for the caller. r8: biases, r9: records; r1, r2 scratch.
#[cfg(any(tinyrnn_dsp, all(target_arch = "arm", target_feature = "dsp")))]
macro_rules! requant_row {
    ($acc:literal, $k:literal, $bit:literal) => {
        concat!(
            "ldr r1, [r8, #(",
            $k,
            " * 4)]\n",
            "qadd ",
            $acc,
            ", ",
            $acc,
            ", r1\n",
            "ldrb r2, [r9, #(",
            $k,
            " * 5 + 4)]\n",
            "subs r2, r2, #33\n",
            "cmp r2, #30\n",
            "bhs .Ltinyrnn_slow_",
            $bit,
            "\n",
            "ldr r1, [r9, #(",
            $k,
            " * 5)]\n",
            "smmul ",
            $acc,
            ", ",
            $acc,
            ", r1\n",
            "asr.w ",
            $acc,
            ", ",
            $acc,
            ", r2\n",
            "adds ",
            $acc,
            ", #1\n",
            "asrs ",
            $acc,
            ", ",
            $acc,
            ", #1\n",
            ".Ltinyrnn_back_",
            $bit,
            ":\n",
        )
    };
}

/// The out-of-line part of `requant_row!` for mask bit `bit`.
#[cfg(any(tinyrnn_dsp, all(target_arch = "arm", target_feature = "dsp")))]
macro_rules! slow_row {
    ($bit:literal) => {
        concat!(
            ".Ltinyrnn_slow_",
            $bit,
            ":\n",
            "orr r11, r11, #",
            $bit,
            "\n",
            "b .Ltinyrnn_back_",
            $bit,
            "\n",
        )
    };
}

// tinyrnn_dsp_dot4_core: r0 = w, r1 = x, r2 = stride → r4–r7 = the four row sums.
//   Rows at w + r·stride (r = 0..4), each `stride` bytes = stride/4 blocks; x: stride/2 words.
//   Preconditions (checked by the Rust callers): stride a non-zero multiple of 4.
//   Clobbers r0–r3, r8–r12 and the flags; leaves lr (the return address) alone, so the
//   callers need no frame of their own for it.
// Registers: r0 rows 0/1 pointer, r3 rows 2/3 pointer, r1 x pointer, r12 end of x,
//   r4–r7 accumulators, r8/r9 two activation words, r10 weight word, r11 sign-extended pair.
// The loop body is unrolled four times; the entry point depends on the block count mod 4.
#[cfg(any(tinyrnn_dsp, all(target_arch = "arm", target_feature = "dsp")))]
global_asm!(
    ".pushsection .text.tinyrnn_dsp_dot4_core,\"ax\",%progbits",
    ".syntax unified",
    ".thumb",
    ".p2align 2",
    ".global tinyrnn_dsp_dot4_core",
    ".type tinyrnn_dsp_dot4_core,%function",
    ".thumb_func",
    "tinyrnn_dsp_dot4_core:",
    "add.w r12, r1, r2, lsl #1",
    "add.w r3, r0, r2, lsl #1",
    "movs r4, #0",
    "movs r5, #0",
    "movs r6, #0",
    "movs r7, #0",
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
    "bx lr",
    ".size tinyrnn_dsp_dot4_core, . - tinyrnn_dsp_dot4_core",
    // tinyrnn_dsp_dot4_i8(w: r0, x: r1, stride: r2, out: r3): the four sums into out[0..4].
    ".p2align 2",
    ".global tinyrnn_dsp_dot4_i8",
    ".type tinyrnn_dsp_dot4_i8,%function",
    ".thumb_func",
    "tinyrnn_dsp_dot4_i8:",
    "push {{r3, r4, r5, r6, r7, r8, r9, r10, r11, lr}}",
    "bl tinyrnn_dsp_dot4_core",
    "pop {{r3}}",
    "stm r3, {{r4, r5, r6, r7}}",
    "pop {{r4, r5, r6, r7, r8, r9, r10, r11, pc}}",
    ".size tinyrnn_dsp_dot4_i8, . - tinyrnn_dsp_dot4_i8",
    // tinyrnn_dsp_gate8_i8(g: r0 = *const Gate8Raw, j: r1, out: r2 = *mut [i32; 8]) → r0 = mask
    //   For units j..j+4 of the gate: out[0..4] = requantized (b_ih ⊕ W_ih·x) of the four
    //   rows, out[4..8] the same for W_hh·h; bit r of the mask: row r's shift is off the
    //   short path, out[r] holds the unrequantized sum (the caller finishes it).
    //   Frame: [sp] g, [sp+4] out, [sp+8] mask, [sp+12] j.
    ".p2align 2",
    ".global tinyrnn_dsp_gate8_i8",
    ".type tinyrnn_dsp_gate8_i8,%function",
    ".thumb_func",
    "tinyrnn_dsp_gate8_i8:",
    "push {{r4, r5, r6, r7, r8, r9, r10, r11, lr}}",
    "sub sp, #16",
    "str r0, [sp]",
    "str r2, [sp, #4]",
    "str r1, [sp, #12]",
    "ldr r2, [r0, #8]",
    "ldr r3, [r0]",
    "ldr r12, [r0, #4]",
    "mla r0, r1, r2, r3",
    "mov r1, r12",
    "bl tinyrnn_dsp_dot4_core",
    "ldr r0, [sp]",
    "ldr r3, [sp, #12]",
    "ldrd r8, r9, [r0, #12]",
    "add.w r8, r8, r3, lsl #2",
    "add.w r3, r3, r3, lsl #2",
    "add r9, r3",
    "movs r11, #0",
    requant_row!("r4", "0", "1"),
    requant_row!("r5", "1", "2"),
    requant_row!("r6", "2", "4"),
    requant_row!("r7", "3", "8"),
    "ldr r0, [sp, #4]",
    "stm r0, {{r4, r5, r6, r7}}",
    "str r11, [sp, #8]",
    "ldr r0, [sp]",
    "ldr r1, [sp, #12]",
    "ldr r2, [r0, #28]",
    "ldr r3, [r0, #20]",
    "ldr r12, [r0, #24]",
    "mla r0, r1, r2, r3",
    "mov r1, r12",
    "bl tinyrnn_dsp_dot4_core",
    "ldr r0, [sp]",
    "ldr r3, [sp, #12]",
    "ldrd r8, r9, [r0, #32]",
    "add.w r8, r8, r3, lsl #2",
    "add.w r3, r3, r3, lsl #2",
    "add r9, r3",
    "ldr r11, [sp, #8]",
    requant_row!("r4", "0", "16"),
    requant_row!("r5", "1", "32"),
    requant_row!("r6", "2", "64"),
    requant_row!("r7", "3", "128"),
    "ldr r0, [sp, #4]",
    "adds r0, #16",
    "stm r0, {{r4, r5, r6, r7}}",
    "mov r0, r11",
    "add sp, #16",
    "pop {{r4, r5, r6, r7, r8, r9, r10, r11, pc}}",
    slow_row!("1"),
    slow_row!("2"),
    slow_row!("4"),
    slow_row!("8"),
    slow_row!("16"),
    slow_row!("32"),
    slow_row!("64"),
    slow_row!("128"),
    ".size tinyrnn_dsp_gate8_i8, . - tinyrnn_dsp_gate8_i8",
    ".popsection",
);

/// One gate's operands for the assembly (field order and offsets are the assembly's): the
/// tensors from the gate's first unit, the activation vectors and the row strides in bytes.
#[cfg(all(
    feature = "int8",
    any(tinyrnn_dsp, all(target_arch = "arm", target_feature = "dsp"))
))]
#[repr(C)]
#[derive(Clone, Copy)]
struct Gate8Raw {
    w_ih: *const u8,
    x: *const u32,
    stride_ih: usize,
    b_ih: *const u8,
    rq_ih: *const u8,
    w_hh: *const u8,
    h: *const u32,
    stride_hh: usize,
    b_hh: *const u8,
    rq_hh: *const u8,
}

#[cfg(any(tinyrnn_dsp, all(target_arch = "arm", target_feature = "dsp")))]
extern "C" {
    fn tinyrnn_dsp_dot4_i8(w: *const u8, x: *const u32, stride: usize, out: *mut [i32; 4]);
    #[cfg(all(
        feature = "int8",
        any(tinyrnn_dsp, all(target_arch = "arm", target_feature = "dsp"))
    ))]
    fn tinyrnn_dsp_gate8_i8(g: *const Gate8Raw, j: usize, out: *mut [i32; 8]) -> u32;
}

#[cfg(any(tinyrnn_dsp, all(target_arch = "arm", target_feature = "dsp")))]
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

/// One int8 gate of a layer step, checked once for [`Gate8::block`]: the weights, biases and
/// requant records of its `units` rows for both products, and the two activation vectors.
#[cfg(all(
    feature = "int8",
    any(tinyrnn_dsp, all(target_arch = "arm", target_feature = "dsp"))
))]
#[derive(Clone, Copy)]
pub struct Gate8<'a> {
    raw: Gate8Raw,
    units: usize,
    rq_ih: &'a [u8],
    rq_hh: &'a [u8],
}

#[cfg(all(
    feature = "int8",
    any(tinyrnn_dsp, all(target_arch = "arm", target_feature = "dsp"))
))]
impl<'a> Gate8<'a> {
    /// The gate whose rows start `w_ih` (rows of `2·x.len()` bytes) and `w_hh` (rows of
    /// `2·h.len()` bytes), with `i32` biases `b_*` and 5-byte records `rq_*`, one per row.
    /// `None` if `x` or `h` is empty or odd-sized; otherwise `units` is the number of rows
    /// every tensor holds in full.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        w_ih: &'a [u8],
        x: &'a [u32],
        b_ih: &'a [u8],
        rq_ih: &'a [u8],
        w_hh: &'a [u8],
        h: &'a [u32],
        b_hh: &'a [u8],
        rq_hh: &'a [u8],
    ) -> Option<Self> {
        let even = |v: &[u32]| !v.is_empty() && v.len().is_multiple_of(2);
        if !(even(x) && even(h)) {
            return None;
        }
        let (s_ih, s_hh) = (2 * x.len(), 2 * h.len());
        let units = (w_ih.len() / s_ih)
            .min(w_hh.len() / s_hh)
            .min(b_ih.len() / 4)
            .min(b_hh.len() / 4)
            .min(rq_ih.len() / 5)
            .min(rq_hh.len() / 5);
        Some(Gate8 {
            raw: Gate8Raw {
                w_ih: w_ih.as_ptr(),
                x: x.as_ptr(),
                stride_ih: s_ih,
                b_ih: b_ih.as_ptr(),
                rq_ih: rq_ih.as_ptr(),
                w_hh: w_hh.as_ptr(),
                h: h.as_ptr(),
                stride_hh: s_hh,
                b_hh: b_hh.as_ptr(),
                rq_hh: rq_hh.as_ptr(),
            },
            units,
            rq_ih,
            rq_hh,
        })
    }

    /// Units `j..j+4`: `rq_ih.apply(b_ih ⊕ W_ih·x)` for the four rows, then
    /// `rq_hh.apply(b_hh ⊕ W_hh·h)`: the integers of the portable composition of
    /// [`dot4_i8`](super::dot4_i8), a saturating bias add and
    /// [`Requant::apply`](crate::fxp::Requant::apply), in one call into the assembly.
    /// `None` if the gate has fewer than `j + 4` units.
    #[inline(always)]
    pub fn block(&self, j: usize) -> Option<[i32; 8]> {
        if j > self.units.saturating_sub(4) || self.units < 4 {
            return None;
        }
        let mut out = [0i32; 8];
        // SAFETY: `new` checked that both strides are non-zero multiples of 4 and that every
        // tensor holds `units ≥ j + 4` full rows: the assembly reads rows `j..j+4` (`4·stride`
        // bytes from `j·stride`), biases `4j..4j+16`, records `5j..5j+20` and the `stride/2`
        // activation words of `x` and `h` (unaligned weight, bias and record loads are
        // allowed), writes the eight words of `out`, keeps its stack balanced and saves and
        // restores r4–r11 (AAPCS). The borrows in `self` keep every pointer valid.
        let mask = unsafe { tinyrnn_dsp_gate8_i8(&self.raw, j, &mut out) };
        if mask != 0 {
            let part = |s: &'a [u8]| s.get(5 * j..).unwrap_or(&[]);
            finish_wide_shifts(&mut out, mask, part(self.rq_ih), part(self.rq_hh));
        }
        Some(out)
    }
}

/// Requantizes the rows the assembly left (shift off its short path: scales ≥ 1/4, rare).
#[cfg(all(
    feature = "int8",
    any(tinyrnn_dsp, all(target_arch = "arm", target_feature = "dsp"))
))]
#[cold]
#[inline(never)]
fn finish_wide_shifts(out: &mut [i32; 8], mask: u32, rq_ih: &[u8], rq_hh: &[u8]) {
    for (r, o) in out.iter_mut().enumerate() {
        if mask >> r & 1 != 0 {
            let rec = if r < 4 { rq_ih } else { rq_hh };
            *o = super::le_requant(rec.get(5 * (r & 3)..).unwrap_or(&[])).apply(*o);
        }
    }
}

/// One block of four columns (two activation words) for the four int16 rows: per word
/// `LDR` the activations, then per row `LDR` + `SMLALD` (18 instructions for 16 MACs).
#[cfg(any(tinyrnn_dsp, all(target_arch = "arm", target_feature = "dsp")))]
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
#[cfg(any(tinyrnn_dsp, all(target_arch = "arm", target_feature = "dsp")))]
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

#[cfg(any(tinyrnn_dsp, all(target_arch = "arm", target_feature = "dsp")))]
extern "C" {
    fn tinyrnn_dsp_dot4_i16(w: *const u8, x: *const u32, stride: usize, out: *mut [i64; 4]);
}

#[cfg(any(tinyrnn_dsp, all(target_arch = "arm", target_feature = "dsp")))]
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

// ---------------------------------------------------------------------------------------
// f32 (cfg `tinyrnn_fpu`: FPv4-SP / FPv5 with `VFMA`)
// ---------------------------------------------------------------------------------------

// Stable Rust's inline assembly takes `s` registers only with the `vfp2` target feature,
// which the single-precision `thumbv7em-none-eabihf` / `thumbv8m.main-none-eabihf` targets
// do not have (`vfp4d16sp`, `fp-armv8d16sp`): the f32 kernels are functions of their own,
// called with the hard-float AAPCS (f32 arguments in s0–s15, s0–s15 caller-saved).
//
// tinyrnn_fpu_fma(a: s0, b: s1, c: s2) -> s0 = a·b + c, one rounding.
#[cfg(all(feature = "f32", tinyrnn_fpu))]
global_asm!(
    ".pushsection .text.tinyrnn_fpu_fma,\"ax\",%progbits",
    ".syntax unified",
    ".thumb",
    ".fpu fpv4-sp-d16",
    ".p2align 2",
    ".global tinyrnn_fpu_fma",
    ".type tinyrnn_fpu_fma,%function",
    ".thumb_func",
    "tinyrnn_fpu_fma:",
    "vfma.f32 s2, s0, s1",
    "vmov.f32 s0, s2",
    "bx lr",
    ".size tinyrnn_fpu_fma, . - tinyrnn_fpu_fma",
    ".popsection",
);

// tinyrnn_fpu_dot4_f32(w: r0, x: r1, row: r2, acc: r3)
//   rows at w + r·row (r = 0..4), each `row` bytes = row/4 f32 columns, word-aligned; x:
//   row/4 words; acc: the four accumulators, read and written. Preconditions (checked by
//   `dot4_f32`): row a non-zero multiple of 16, w word-aligned.
// Registers: r0, r12, r4, r5 the four row pointers, lr the block count; s0–s3 four x
//   values, s4–s7 the accumulators, s8–s15 the weights of two rows (only caller-saved
//   registers of the FPU).
// Per block of 4 columns: one `VLDM` of x, per row one `VLDM` + four `VFMA` in column
//   order (each row's chain of fused multiply-adds is that of the portable kernel).
#[cfg(all(feature = "f32", tinyrnn_fpu))]
global_asm!(
    ".pushsection .text.tinyrnn_fpu_dot4_f32,\"ax\",%progbits",
    ".syntax unified",
    ".thumb",
    ".fpu fpv4-sp-d16",
    ".p2align 2",
    ".global tinyrnn_fpu_dot4_f32",
    ".type tinyrnn_fpu_dot4_f32,%function",
    ".thumb_func",
    "tinyrnn_fpu_dot4_f32:",
    "push {{r4, r5, r6, lr}}",
    "add.w r12, r0, r2",
    "add.w r4, r12, r2",
    "add.w r5, r4, r2",
    "lsrs.w lr, r2, #4",
    "vldmia r3, {{s4-s7}}",
    "2:",
    "vldmia r1!, {{s0-s3}}",
    "vldmia r0!, {{s8-s11}}",
    "vldmia r12!, {{s12-s15}}",
    "vfma.f32 s4, s8, s0",
    "vfma.f32 s4, s9, s1",
    "vfma.f32 s4, s10, s2",
    "vfma.f32 s4, s11, s3",
    "vldmia r4!, {{s8-s11}}",
    "vfma.f32 s5, s12, s0",
    "vfma.f32 s5, s13, s1",
    "vfma.f32 s5, s14, s2",
    "vfma.f32 s5, s15, s3",
    "vldmia r5!, {{s12-s15}}",
    "vfma.f32 s6, s8, s0",
    "vfma.f32 s6, s9, s1",
    "vfma.f32 s6, s10, s2",
    "vfma.f32 s6, s11, s3",
    "vfma.f32 s7, s12, s0",
    "vfma.f32 s7, s13, s1",
    "vfma.f32 s7, s14, s2",
    "vfma.f32 s7, s15, s3",
    "subs.w lr, lr, #1",
    "bne 2b",
    "vstmia r3, {{s4-s7}}",
    "pop {{r4, r5, r6, pc}}",
    ".size tinyrnn_fpu_dot4_f32, . - tinyrnn_fpu_dot4_f32",
    ".popsection",
);

// tinyrnn_fpu_gate4_f32(g: r0 -> GateF32Raw, j: r1, acc: r2)
//   Both products of units j..j+4 of a gate, added to acc: the rows of `W_ih` (then of
//   `W_hh`) at w + (j + r)·row, r = 0..4, against x (then h), each row one chain of
//   `VFMA` in column order (as `tinyrnn_fpu_dot4_f32` twice). Preconditions (checked by
//   `GateF32::new` once and `GateF32::block` per call): both rows non-zero multiples of 16
//   bytes, word-aligned weights, j + 4 ≤ the gate's units.
// Registers: r4–r7 the row pointers, r8 the vector, r3 the row length, lr the block count;
//   s0–s3 the vector, s4–s7 the accumulators, s8–s15 weights.
#[cfg(all(feature = "f32", tinyrnn_fpu))]
global_asm!(
    ".pushsection .text.tinyrnn_fpu_gate4_f32,\"ax\",%progbits",
    ".syntax unified",
    ".thumb",
    ".fpu fpv4-sp-d16",
    ".p2align 2",
    ".global tinyrnn_fpu_gate4_f32",
    ".type tinyrnn_fpu_gate4_f32,%function",
    ".thumb_func",
    "tinyrnn_fpu_gate4_f32:",
    "push {{r4, r5, r6, r7, r8, lr}}",
    "vldmia r2, {{s4-s7}}",
    "ldr r3, [r0, #8]",
    "ldr r4, [r0, #0]",
    "mla r4, r1, r3, r4",
    "ldr r8, [r0, #4]",
    "add.w r5, r4, r3",
    "add.w r6, r5, r3",
    "add.w r7, r6, r3",
    "lsrs.w lr, r3, #4",
    "2:",
    "vldmia r8!, {{s0-s3}}",
    "vldmia r4!, {{s8-s11}}",
    "vldmia r5!, {{s12-s15}}",
    "vfma.f32 s4, s8, s0",
    "vfma.f32 s4, s9, s1",
    "vfma.f32 s4, s10, s2",
    "vfma.f32 s4, s11, s3",
    "vldmia r6!, {{s8-s11}}",
    "vfma.f32 s5, s12, s0",
    "vfma.f32 s5, s13, s1",
    "vfma.f32 s5, s14, s2",
    "vfma.f32 s5, s15, s3",
    "vldmia r7!, {{s12-s15}}",
    "vfma.f32 s6, s8, s0",
    "vfma.f32 s6, s9, s1",
    "vfma.f32 s6, s10, s2",
    "vfma.f32 s6, s11, s3",
    "vfma.f32 s7, s12, s0",
    "vfma.f32 s7, s13, s1",
    "vfma.f32 s7, s14, s2",
    "vfma.f32 s7, s15, s3",
    "subs.w lr, lr, #1",
    "bne 2b",
    "ldr r3, [r0, #20]",
    "ldr r4, [r0, #12]",
    "mla r4, r1, r3, r4",
    "ldr r8, [r0, #16]",
    "add.w r5, r4, r3",
    "add.w r6, r5, r3",
    "add.w r7, r6, r3",
    "lsrs.w lr, r3, #4",
    "3:",
    "vldmia r8!, {{s0-s3}}",
    "vldmia r4!, {{s8-s11}}",
    "vldmia r5!, {{s12-s15}}",
    "vfma.f32 s4, s8, s0",
    "vfma.f32 s4, s9, s1",
    "vfma.f32 s4, s10, s2",
    "vfma.f32 s4, s11, s3",
    "vldmia r6!, {{s8-s11}}",
    "vfma.f32 s5, s12, s0",
    "vfma.f32 s5, s13, s1",
    "vfma.f32 s5, s14, s2",
    "vfma.f32 s5, s15, s3",
    "vldmia r7!, {{s12-s15}}",
    "vfma.f32 s6, s8, s0",
    "vfma.f32 s6, s9, s1",
    "vfma.f32 s6, s10, s2",
    "vfma.f32 s6, s11, s3",
    "vfma.f32 s7, s12, s0",
    "vfma.f32 s7, s13, s1",
    "vfma.f32 s7, s14, s2",
    "vfma.f32 s7, s15, s3",
    "subs.w lr, lr, #1",
    "bne 3b",
    "vstmia r2, {{s4-s7}}",
    "pop {{r4, r5, r6, r7, r8, pc}}",
    ".size tinyrnn_fpu_gate4_f32, . - tinyrnn_fpu_gate4_f32",
    ".popsection",
);

/// The operands of `tinyrnn_fpu_gate4_f32` (layout read by the assembly).
#[cfg(all(feature = "f32", tinyrnn_fpu))]
#[repr(C)]
#[derive(Clone, Copy)]
struct GateF32Raw {
    w_ih: *const u8,
    x: *const u32,
    row_ih: usize,
    w_hh: *const u8,
    h: *const u32,
    row_hh: usize,
}

/// One f32 gate of a layer step, checked once for [`GateF32::block`]: the weights of its
/// `units` rows for both products and the two vectors.
#[cfg(all(feature = "f32", tinyrnn_fpu))]
#[derive(Clone, Copy)]
pub struct GateF32<'a> {
    raw: GateF32Raw,
    units: usize,
    _borrow: core::marker::PhantomData<(&'a [u8], &'a [u32])>,
}

#[cfg(all(feature = "f32", tinyrnn_fpu))]
impl<'a> GateF32<'a> {
    /// The gate of `units` rows of `row_ih` / `row_hh` bytes, or `None` if the assembly
    /// cannot take it (a row not a non-zero multiple of 16 bytes, weights not word-aligned
    /// or shorter than `units` rows, a vector shorter than a row).
    #[inline]
    pub fn new(
        w_ih: &'a [u8],
        x: &'a [u32],
        row_ih: usize,
        w_hh: &'a [u8],
        h: &'a [u32],
        row_hh: usize,
        units: usize,
    ) -> Option<Self> {
        let ok = |w: &[u8], v: &[u32], row: usize| {
            row != 0
                && row.is_multiple_of(16)
                && v.len() >= row / 4
                && units.checked_mul(row).is_some_and(|n| w.len() >= n)
                && (w.as_ptr() as usize).is_multiple_of(4)
        };
        (ok(w_ih, x, row_ih) && ok(w_hh, h, row_hh)).then_some(GateF32 {
            raw: GateF32Raw {
                w_ih: w_ih.as_ptr(),
                x: x.as_ptr(),
                row_ih,
                w_hh: w_hh.as_ptr(),
                h: h.as_ptr(),
                row_hh,
            },
            units,
            _borrow: core::marker::PhantomData,
        })
    }

    /// `acc_r += W_ih[j+r]·x + W_hh[j+r]·h` (each row one chain of fused multiply-adds in
    /// column order, `x` first: the bits of [`dot4_f32`](super::dot4_f32) on `acc`, then
    /// on its result), if units `j .. j+4` are rows of the gate; else `false`, `acc`
    /// untouched.
    #[inline(always)]
    pub fn block(&self, j: usize, acc: &mut [f32; 4]) -> bool {
        if j.checked_add(4).is_none_or(|e| e > self.units) {
            return false;
        }
        // SAFETY: `new` checked that both weight tensors hold `units` rows of their (non-zero
        // multiple of 16) row length, word-aligned, and that each vector holds a row's
        // columns; with `j + 4 ≤ units` the assembly reads rows `j .. j+4` of each and the
        // row's words of each vector, and reads and writes the four words of `acc`; it
        // saves r4–r8 and uses only caller-saved FPU registers (AAPCS).
        unsafe { tinyrnn_fpu_gate4_f32(&self.raw, j, acc) };
        true
    }
}

#[cfg(all(feature = "f32", tinyrnn_fpu))]
extern "C" {
    fn tinyrnn_fpu_fma(a: f32, b: f32, c: f32) -> f32;
    fn tinyrnn_fpu_dot4_f32(w: *const u8, x: *const u32, row: usize, acc: *mut [f32; 4]);
    fn tinyrnn_fpu_gate4_f32(g: *const GateF32Raw, j: usize, acc: *mut [f32; 4]);
}

/// `a·b + c` with one rounding (`VFMA.F32`): the IEEE 754 fused multiply-add, the same
/// value as the portable `libm::fmaf` (see [`fma`](super::fma)).
#[cfg(all(feature = "f32", tinyrnn_fpu))]
#[inline(always)]
pub fn fma(a: f32, b: f32, c: f32) -> f32 {
    // SAFETY: a register-only leaf function of the hard-float AAPCS (no memory access).
    unsafe { tinyrnn_fpu_fma(a, b, c) }
}

/// `acc_r ← fma(w_r[k], x[k], acc_r)` for `k = 0, 1, …` in order, for four rows of `row`
/// bytes back to back in `w4` (as [`dot4_f32`](super::dot4_f32): the same sequence of
/// fused multiply-adds per row, so the same bits). One pass over `x`: per 4 columns one
/// `VLDM` of `x`, one `VLDM` per row and 16 `VFMA` (23 instructions for 16 MACs with the
/// loop). `VLDM` needs word-aligned weights; an unaligned `w4` (a blob at an odd address)
/// or a row that is not a multiple of 4 columns falls back to the portable kernel.
#[cfg(all(feature = "f32", tinyrnn_fpu))]
#[inline(always)]
pub fn dot4_f32(w4: &[u8], row: usize, x: &[u32], acc: &mut [f32; 4]) {
    let blocks = row / 16;
    if blocks == 0
        || !row.is_multiple_of(16)
        || x.len() < 4 * blocks
        || w4.len() / 4 < row
        || !(w4.as_ptr() as usize).is_multiple_of(4)
    {
        return dot4_f32_fallback(w4, row, x, acc);
    }
    // SAFETY: `w4` holds at least `4·row` bytes, word-aligned, `row` a non-zero multiple of
    // 16: the assembly reads bytes `r·row .. (r+1)·row` of `w4` for r = 0..4 and the first
    // `row/4 = 4·blocks ≤ x.len()` words of `x` (aligned), and reads and writes the four
    // words of `acc`; it saves r4–r6 and uses only caller-saved FPU registers (AAPCS).
    unsafe { tinyrnn_fpu_dot4_f32(w4.as_ptr(), x.as_ptr(), row, acc) };
}

/// [`dot4_f32`]'s portable path (unaligned weights, odd row lengths); out of line.
#[cfg(all(feature = "f32", tinyrnn_fpu))]
#[cold]
#[inline(never)]
fn dot4_f32_fallback(w4: &[u8], row: usize, x: &[u32], acc: &mut [f32; 4]) {
    *acc = super::dot4_f32(w4, row, x, *acc);
}

// ---------------------------------------------------------------------------------------
// Cortex-M0 / M0+ (ARMv6-M, cfg `tinyrnn_v6m`: no DSP extension, 8 low registers)
// ---------------------------------------------------------------------------------------
//
// `MULS` (32×32 → 32) is the only multiply, and most instructions reach only r0–r7. The
// four accumulators live in r8–r11 (`ADD` takes high registers), so four rows share one
// unpacking of the activations. Weights are read byte by byte (`LDRSB`, register offset):
// ARMv6-M faults on unaligned words, and a blob's tensors have no alignment.

/// Half a block of the four rows: one activation word (`LDM`), its halves into r2 (low)
/// and r5 (high), then per row two `LDRSB` (offsets r3 = 0 and r4 = 2 from r0: the
/// columns of the two halves), two `MULS` and two `ADD` into the row's accumulator, the rows
/// visited in the order of the accumulators given, the pointer moved by `$step` (r12 = +stride
/// or lr = −stride) between them (3 + 4 × 6 + 3 = 30 instructions for 8 MACs).
#[cfg(tinyrnn_v6m)]
macro_rules! v6m_half {
    ($a:literal, $b:literal, $c:literal, $d:literal, $step:literal) => {
        concat!(
            "ldm r1!, {{r2}}\n",
            "asrs r5, r2, #16\n",
            "sxth r2, r2\n",
            v6m_half!(@row $a),
            "add r0, ", $step, "\n",
            v6m_half!(@row $b),
            "add r0, ", $step, "\n",
            v6m_half!(@row $c),
            "add r0, ", $step, "\n",
            v6m_half!(@row $d),
        )
    };
    (@row $acc:literal) => {
        concat!(
            "ldrsb r7, [r0, r3]\n",
            "muls r7, r2, r7\n",
            "add ", $acc, ", r7\n",
            "ldrsb r7, [r0, r4]\n",
            "muls r7, r5, r7\n",
            "add ", $acc, ", r7\n",
        )
    };
}

// tinyrnn_v6m_dot4_i8(w: r0, x: r1, stride: r2, out: r3): the four row sums into out[0..4].
//   Rows at w + r·stride (r = 0..4), each `stride` bytes = stride/4 blocks; x: stride/2
//   words. Preconditions (checked by `dot4_i8`): stride a non-zero multiple of 4.
// Registers: r0 the weight pointer, r1 the x pointer, r2/r5 two activations, r3 = 0 and
//   r4 = 2 (the `LDRSB` offsets), r6 the end of x, r7 scratch, r8–r11 the accumulators,
//   r12 = +stride, lr = −stride; [sp] out.
// A block of four columns (bytes c0, c2, c1, c3 per row) in two halves, one pointer walking
//   the rows in a zigzag (no register is left for four): x0, x1 (first word) times bytes 0
//   and 2 of rows 0, 1, 2, 3; `ADDS r0, #1`; x2, x3 (second word) times bytes 1 and 3 of
//   rows 3, 2, 1, 0; `ADDS r0, #3` to row 0 of the next block.
//   Per block (16 MACs): 2 × 30 + 2 + 2 (loop) = 64 instructions.
#[cfg(tinyrnn_v6m)]
global_asm!(
    ".pushsection .text.tinyrnn_v6m_dot4_i8,\"ax\",%progbits",
    ".syntax unified",
    ".thumb",
    ".p2align 2",
    ".global tinyrnn_v6m_dot4_i8",
    ".type tinyrnn_v6m_dot4_i8,%function",
    ".thumb_func",
    "tinyrnn_v6m_dot4_i8:",
    "push {{r4, r5, r6, r7, lr}}",
    "mov r4, r8",
    "mov r5, r9",
    "mov r6, r10",
    "mov r7, r11",
    "push {{r3, r4, r5, r6, r7}}",
    "lsls r6, r2, #1",
    "adds r6, r1, r6",
    "mov r12, r2",
    "rsbs r5, r2, #0",
    "mov lr, r5",
    "movs r3, #0",
    "mov r8, r3",
    "mov r9, r3",
    "mov r10, r3",
    "mov r11, r3",
    "movs r4, #2",
    "1:",
    v6m_half!("r8", "r9", "r10", "r11", "r12"),
    "adds r0, #1",
    v6m_half!("r11", "r10", "r9", "r8", "lr"),
    "adds r0, #3",
    "cmp r1, r6",
    "bne 1b",
    "pop {{r3}}",
    "mov r4, r8",
    "mov r5, r9",
    "mov r6, r10",
    "mov r7, r11",
    "stm r3!, {{r4, r5, r6, r7}}",
    "pop {{r4, r5, r6, r7}}",
    "mov r8, r4",
    "mov r9, r5",
    "mov r10, r6",
    "mov r11, r7",
    "pop {{r4, r5, r6, r7, pc}}",
    ".size tinyrnn_v6m_dot4_i8, . - tinyrnn_v6m_dot4_i8",
    ".popsection",
);

#[cfg(tinyrnn_v6m)]
extern "C" {
    fn tinyrnn_v6m_dot4_i8(w: *const u8, x: *const u32, stride: usize, out: *mut [i32; 4]);
}

/// `Σ w_r[j]·x[j]` for four consecutive int8 rows (as [`dot4_i8`](super::dot4_i8)) on the
/// Cortex-M0: one pass over `x` for the four rows, 64 instructions per 4 columns (4 per
/// multiply-add) plus about 40 per call.
#[cfg(tinyrnn_v6m)]
#[inline]
pub fn dot4_i8(w4: &[u8], x: &[u32]) -> [i32; 4] {
    let stride = 2 * x.len();
    if x.is_empty() || !x.len().is_multiple_of(2) || w4.len() < 4 * stride {
        return dot4_i8_short(w4, x);
    }
    let mut out = [0i32; 4];
    // SAFETY: `stride = 2·x.len()` is a non-zero multiple of 4; the assembly reads the
    // `4·stride ≤ w4.len()` bytes of `w4` (byte loads: any alignment) and the
    // `stride/2 = x.len()` words of `x` (a `&[u32]`: aligned for `LDM`), writes the four
    // words of `out`, and saves and restores r4–r11 (AAPCS).
    unsafe { tinyrnn_v6m_dot4_i8(w4.as_ptr(), x.as_ptr(), stride, &mut out) };
    out
}

/// [`dot4_i8`]'s portable path for short or odd operands (never for a validated model's
/// full blocks); out of line.
#[cfg(tinyrnn_v6m)]
#[cold]
#[inline(never)]
fn dot4_i8_short(w4: &[u8], x: &[u32]) -> [i32; 4] {
    super::dot4_i8(w4, x)
}
