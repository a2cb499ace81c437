//! Portable dot-product kernels and the packing helpers of the scratch buffer.
//!
//! The portable kernels are six: one row at a time, [`dot_i8`], [`dot_i16`] and
//! [`dot_f32`]; four consecutive rows in one pass over the vector, [`dot4_i8`],
//! [`dot4_i16`] and [`dot4_f32`] (fused multiply-adds, [`fma`]). Every matrix–vector product of the runtime reaches them through this
//! module: the integer paths through the `IntKernel` trait (`pre` one row, `pre4` four rows,
//! `pre4x2` both products of four units), used by the cells' gates (`cell::IntGate`) and the
//! integer dense head; the f32 cells through [`dot4_f32_fast`] (`cell::Gate`), the f32
//! dense layers through [`pre_f32`].
//!
//! On Cortex-M cores with the DSP extension (cfg `tinyrnn_dsp`, module `dsp`) the int8
//! and int16 kernels are replaced, inside this module, by assembly computing the same
//! integers (`SMLAD` / `SMLALD`): [`dot_i8`] by `dsp::dot_i8`, [`dot4_i8`] by
//! `dsp::dot4_i8`, [`dot4_i16`] by `dsp::dot4_i16`; the single-row [`dot_i16`] (the last
//! `H mod 4` rows of an int16 gate, the int16 dense head) and [`dot_f32`] stay portable.
//! On the hard-float Cortex-M4F/M7/M33 (cfg `tinyrnn_fpu`) [`fma`] is `VFMA` and
//! [`dot4_f32_fast`] is `dsp::dot4_f32` (`VLDM` + `VFMA`); for f32 layers `cell::Gate` holds a
//! `dsp::GateF32` (both products of a block of four units in one call): the same bits as
//! [`dot4_f32`] with `libm::fmaf`, since each fused multiply-add is rounded once.
//! One path leaves this module's dispatch: for int8 layers `cell::IntGate` holds a
//! `dsp::Gate8`, and each full block of four units of a gate gets both products, the
//! biases and the requantization from one call of its assembly (`Gate8::block`); only a
//! gate `Gate8` refuses (never one of a validated model) falls back to `pre4x2`. On the
//! Cortex-M0 (cfg `tinyrnn_v6m`, no DSP) [`dot4_i8`] is `dsp::dot4_i8` too: `MULS` with the
//! four accumulators in r8–r11 and byte loads of the weights; the requantization's high
//! word is `mul_hi_split` (four 16-bit `MULS`, no `__aeabi_lmul`). Other cores (RISC-V,
//! the host) run the portable kernels, the Cortex-M3 four [`dot_i8`] passes instead of
//! [`dot4_i8`].
//!
//! * Activations are packed two `i16` per `u32`, low half = even index (the layout
//!   `SMLAD` multiplies). Rows and vectors are padded to a multiple of 4 with zeros.
//! * int8 weights are stored per block of four columns as `c0, c2, c1, c3` (see
//!   [`model`](crate::model)): one little-endian `u32` load `w` gives `(c0, c1)` in bytes 0
//!   and 2 and `(c2, c3)` in bytes 1 and 3, i.e. `SXTB16(w)` and `SXTB16(w ROR 8)`. The
//!   portable kernels read each weight as its own signed byte instead (`lb` / `ldrsb`): the
//!   cores they serve have no unaligned word loads.
//!
//! No kernel can overflow (the bounds are in [`fxp`](crate::fxp)'s overflow notes): the
//! `wrapping_*` operations below only spell out that no check is needed. No kernel can
//! panic: mismatched lengths simply stop at the shorter operand.

use crate::fxp::{sat_i32, Requant};

#[cfg(any(
    tinyrnn_dsp,
    all(target_arch = "arm", target_feature = "dsp"),
    all(tinyrnn_fpu, feature = "f32"),
    all(tinyrnn_v6m, feature = "int8")
))]
pub mod dsp;

/// The two `i16` halves of a packed word: `(low, high)`.
#[inline(always)]
fn halves(x: u32) -> (i32, i32) {
    (x as i16 as i32, (x >> 16) as i16 as i32)
}

/// `acc + c0·x0 + c1·x1 + c2·x2 + c3·x3` for one block of four int8 columns stored
/// `c0, c2, c1, c3` (bytes of `w`) and its activations `x01 = (x0, x1)`, `x23 = (x2, x3)`.
/// Each weight is read as its own signed byte (RISC-V `lb`, Arm `ldrsb`): no word load, which
/// cores without unaligned access (Cortex-M0, RV32) would assemble from four byte loads,
/// and no shifts to sign-extend. Each product is ≤ 2^22 in magnitude, the sum over ≤ 256
/// columns ≤ 2^30: no overflow, in any order.
#[inline(always)]
fn mac_block(acc: i32, w: &[u8; 4], (x0, x1): (i32, i32), (x2, x3): (i32, i32)) -> i32 {
    let c = |k: usize| w[k] as i8 as i32;
    acc.wrapping_add(c(0).wrapping_mul(x0))
        .wrapping_add(c(2).wrapping_mul(x1))
        .wrapping_add(c(1).wrapping_mul(x2))
        .wrapping_add(c(3).wrapping_mul(x3))
}

/// `Σ w[j]·x[j]` for one int8 row: `w` in the `c0, c2, c1, c3` block layout (`pad4(n)`
/// bytes), `x` packed `i16` pairs (`pad4(n)/2` words). Exact (|Σ| ≤ 2^30).
#[inline]
pub fn dot_i8(w: &[u8], x: &[u32]) -> i32 {
    let (wb, _) = w.as_chunks::<4>();
    let (xb, _) = x.as_chunks::<2>();
    let mut acc = 0i32;
    for (w4, &[x01, x23]) in wb.iter().zip(xb) {
        acc = mac_block(acc, w4, halves(x01), halves(x23));
    }
    acc
}

/// `Σ w[j]·x[j]` for one int16 row: `w` natural order `i16` LE (`2·pad4(n)` bytes), `x`
/// packed `i16` pairs. Each product fits `i32` (≤ 2^30); they are summed in `i64` (`SMLALD`).
#[inline]
pub fn dot_i16(w: &[u8], x: &[u32]) -> i64 {
    let (wb, _) = w.as_chunks::<8>();
    let (xb, _) = x.as_chunks::<2>();
    let mut acc = 0i64;
    for (&[a0, a1, b0, b1, c0, c1, d0, d1], &[x01, x23]) in wb.iter().zip(xb) {
        let (x0, x1) = halves(x01);
        let (x2, x3) = halves(x23);
        let p0 = (i16::from_le_bytes([a0, a1]) as i32).wrapping_mul(x0) as i64;
        let p1 = (i16::from_le_bytes([b0, b1]) as i32).wrapping_mul(x1) as i64;
        let p2 = (i16::from_le_bytes([c0, c1]) as i32).wrapping_mul(x2) as i64;
        let p3 = (i16::from_le_bytes([d0, d1]) as i32).wrapping_mul(x3) as i64;
        acc = acc
            .wrapping_add(p0.wrapping_add(p1))
            .wrapping_add(p2.wrapping_add(p3));
    }
    acc
}

/// `Σ w[j]·x[j]` for one f32 row: `w` `f32` LE, `x` `f32` bits. Sequential sum (same
/// order on every target; no fused multiply-add).
#[inline]
pub fn dot_f32(w: &[u8], x: &[u32]) -> f32 {
    let (wb, _) = w.as_chunks::<4>();
    let mut acc = 0.0f32;
    for (w, &x) in wb.iter().zip(x) {
        acc += f32::from_le_bytes(*w) * f32::from_bits(x);
    }
    acc
}

/// `a·b + c` with one rounding (IEEE 754 `fusedMultiplyAdd`): `VFMA.F32` on Cortex-M cores
/// with a single-precision FPU (cfg `tinyrnn_fpu`, `dsp::fma`), `libm::fmaf` (correctly
/// rounded in software) elsewhere. Exactly rounded either way, so the same bits on every
/// target (feature `f32`).
#[cfg(feature = "f32")]
#[inline(always)]
pub fn fma(a: f32, b: f32, c: f32) -> f32 {
    #[cfg(tinyrnn_fpu)]
    {
        dsp::fma(a, b, c)
    }
    #[cfg(not(tinyrnn_fpu))]
    {
        libm::fmaf(a, b, c)
    }
}

/// Four f32 rows at once: `acc_r ← fma(w_r[k], x[k], acc_r)` for `k = 0 ..` in order, row
/// `r` = bytes `r·row .. (r+1)·row` of `w4` (`f32` LE, `row/4` columns; a row missing from
/// a short `w4` leaves its `acc_r` unchanged; columns beyond `x` are not read). One chain of
/// fused multiply-adds per row, always in column order: the result does not depend on how
/// many rows a pass computes, and [`dot4_f32_fast`] (the assembly of `dsp`) gives the same
/// bits (feature `f32`).
#[cfg(feature = "f32")]
#[inline]
pub fn dot4_f32(w4: &[u8], row: usize, x: &[u32], acc: [f32; 4]) -> [f32; 4] {
    let mut out = acc;
    for (r, a) in out.iter_mut().enumerate() {
        let w = r
            .checked_mul(row)
            .and_then(|s| w4.get(s..))
            .and_then(|w| w.get(..row))
            .unwrap_or(&[]);
        let (wb, _) = w.as_chunks::<4>();
        for (w, &x) in wb.iter().zip(x) {
            *a = fma(f32::from_le_bytes(*w), f32::from_bits(x), *a);
        }
    }
    out
}

/// The four-row f32 kernel of this target: `dsp::dot4_f32` (`VLDM` + `VFMA`) with an FPU,
/// else [`dot4_f32`]. Same bits either way (feature `f32`).
#[cfg(feature = "f32")]
#[inline(always)]
pub fn dot4_f32_fast(w4: &[u8], row: usize, x: &[u32], acc: &mut [f32; 4]) {
    #[cfg(tinyrnn_fpu)]
    {
        dsp::dot4_f32(w4, row, x, acc)
    }
    #[cfg(not(tinyrnn_fpu))]
    {
        *acc = dot4_f32(w4, row, x, *acc);
    }
}

/// `Σ w_r[j]·x[j]` for four consecutive int8 rows `w_r` (layout as [`dot_i8`]): `w4` holds
/// the rows back to back, each `2·x.len()` bytes (a row of `pad4(n)` weights for `pad4(n)/2`
/// packed words). One pass over `x` for the four rows: each block of activations is
/// unpacked once for 16 multiply-adds. Rows missing from a short `w4` give 0. Exact, the
/// same integers as four calls of [`dot_i8`]. On RV32 (`riscv32imc`) the loop is 2 `lw` +
/// 6 shifts + 16 × (`lb`, `mul`, `add`) + 5 pointer increments + 1 branch per block: about
/// 4 instructions per multiply-add.
#[inline]
pub fn dot4_i8(w4: &[u8], x: &[u32]) -> [i32; 4] {
    let row = 2 * x.len();
    let rows = [0, 1, 2, 3].map(|r| w4.get(r * row..(r + 1) * row).unwrap_or(&[]));
    let [Some((r0, _)), Some((r1, _)), Some((r2, _)), Some((r3, _))] =
        rows.map(|r| (r.len() == row).then_some(r.as_chunks::<4>()))
    else {
        return rows.map(|r| dot_i8(r, x));
    };
    let (xb, _) = x.as_chunks::<2>();
    let (mut a0, mut a1, mut a2, mut a3) = (0i32, 0i32, 0i32, 0i32);
    for ((((&[x01, x23], w0), w1), w2), w3) in xb.iter().zip(r0).zip(r1).zip(r2).zip(r3) {
        let (x01, x23) = (halves(x01), halves(x23));
        a0 = mac_block(a0, w0, x01, x23);
        a1 = mac_block(a1, w1, x01, x23);
        a2 = mac_block(a2, w2, x01, x23);
        a3 = mac_block(a3, w3, x01, x23);
    }
    [a0, a1, a2, a3]
}

/// `Σ w_r[j]·x[j]` for four consecutive int16 rows (layout as [`dot_i16`]), each
/// `4·x.len()` bytes, back to back in `w4`. Exact, the same integers as four [`dot_i16`].
#[inline]
pub fn dot4_i16(w4: &[u8], x: &[u32]) -> [i64; 4] {
    let row = 4 * x.len();
    [0, 1, 2, 3].map(|r| dot_i16(w4.get(r * row..(r + 1) * row).unwrap_or(&[]), x))
}

/// [`Int8::pre4`]'s tail for short bias / requant slices (never after validation): missing
/// biases and records give 0. Out of line: not on the step path.
#[cfg(feature = "int8")]
#[cold]
#[inline(never)]
fn pre4_short_i8(acc: [i32; 4], bias4: &[u8], rq4: &[u8]) -> [i32; 4] {
    let mut out = [0; 4];
    for (r, (o, a)) in out.iter_mut().zip(acc).enumerate() {
        let b = le_i32(bias4.get(4 * r..).unwrap_or(&[]));
        let rq = le_requant(rq4.get(5 * r..).unwrap_or(&[]));
        *o = requant_i32(a.saturating_add(b), rq);
    }
    out
}

/// `round(acc · mult / 2^shift)` saturated to `i32`: exactly [`Requant::apply`], with a short
/// path for `shift ∈ 33..=62` (every scale below 1/4, i.e. all but extreme models):
/// there `(p + 2^(s−1)) >> s = ((⌊p / 2^32⌋ >> (s − 33)) + 1) >> 1` with `p = acc·mult`
/// (nested floor divisions compose; the rounding half is a multiple of 2^32), `⌊p / 2^32⌋`
/// is one high-word multiply (`SMMUL`, RV32 `mulh`) and never needs saturation
/// (`|⌊p / 2^32⌋| ≤ 2^30`).
#[inline(always)]
pub(crate) fn requant_i32(acc: i32, rq: Requant) -> i32 {
    let k = (rq.shift as u32).wrapping_sub(33);
    if k < 30 {
        let hi = mul_hi(acc, rq.mult);
        ((hi >> k) + 1) >> 1
    } else {
        requant_wide_shift(acc, rq)
    }
}

/// `⌊a·b / 2^32⌋`, the high word of the 64-bit product: one `i64` multiply (`SMMUL`, RV32
/// `mulh`, x86 `imul`), but on the Cortex-M0 (cfg `tinyrnn_v6m`, `MULS` only: the `i64`
/// product is a call of `__aeabi_lmul`) [`mul_hi_split`].
#[inline(always)]
fn mul_hi(a: i32, b: i32) -> i32 {
    #[cfg(tinyrnn_v6m)]
    {
        mul_hi_split(a, b)
    }
    #[cfg(not(tinyrnn_v6m))]
    {
        ((a as i64).wrapping_mul(b as i64) >> 32) as i32
    }
}

/// `⌊a·b / 2^32⌋` from four 16×16-bit products, each exact in 32 bits. With
/// `a = ah·2^16 + al`, `b = bh·2^16 + bl` (`ah`, `bh` signed, `al`, `bl` unsigned 16-bit):
/// `a·b = ah·bh·2^32 + (X + Y)·2^16 + Z` with `X = ah·bl`, `Y = al·bh` (|·| < 2^31) and
/// `Z = al·bl` (< 2^32 unsigned); nested floor divisions compose, so
/// `⌊a·b / 2^32⌋ = ah·bh + ⌊X / 2^16⌋ + ⌊Y / 2^16⌋ + ⌊(X mod 2^16 + Y mod 2^16 + ⌊Z / 2^16⌋) / 2^16⌋`,
/// every partial sum within `i32` (the last bracket < 3·2^16, the result |·| ≤ 2^30).
/// Exact for every `a`, `b` (host tests against the `i64` product).
#[cfg_attr(not(any(tinyrnn_v6m, test)), allow(dead_code))]
#[inline(always)]
fn mul_hi_split(a: i32, b: i32) -> i32 {
    let (ah, al) = (a >> 16, a & 0xFFFF);
    let (bh, bl) = (b >> 16, b & 0xFFFF);
    let x = ah.wrapping_mul(bl);
    let y = al.wrapping_mul(bh);
    let z = (al as u32).wrapping_mul(bl as u32);
    let low = (x & 0xFFFF) + (y & 0xFFFF) + (z >> 16) as i32;
    ah.wrapping_mul(bh)
        .wrapping_add(x >> 16)
        .wrapping_add(y >> 16)
        .wrapping_add(low >> 16)
}

/// [`Requant::apply`] for the shifts [`requant_i32`]'s short path does not take (scales of
/// 1/4 and above: rare); out of line to keep the callers small.
#[cold]
#[inline(never)]
fn requant_wide_shift(acc: i32, rq: Requant) -> i32 {
    rq.apply(acc)
}

/// `round(acc · mult / 2^shift)` saturated to `i32` for an `i64` accumulator: exactly
/// [`Requant::apply_wide`], with a short path for `shift ∈ 33..=94` as in
/// [`requant_i32`]: `⌊p / 2^32⌋ = ah·mult + ⌊al·mult / 2^32⌋` for `acc = ah·2^32 + al`
/// (`al` unsigned) is exact in `i64` (`|p| < 2^94`), two 32×32→64 multiplies instead of a
/// 128-bit product.
#[inline(always)]
pub(crate) fn requant_i64(acc: i64, rq: Requant) -> i32 {
    let k = (rq.shift as u32).wrapping_sub(33);
    if k < 62 && rq.mult > 0 {
        let (ah, al) = ((acc >> 32) as i32, acc as u32);
        let m = rq.mult as u32;
        let t = (ah as i64)
            .wrapping_mul(m as i64)
            .wrapping_add(((al as u64).wrapping_mul(m as u64) >> 32) as i64);
        sat_i32(((t >> k) + 1) >> 1)
    } else {
        requant_wide_slow(acc, rq)
    }
}

/// [`Requant::apply_wide`] off [`requant_i64`]'s short path; out of line.
#[cold]
#[inline(never)]
fn requant_wide_slow(acc: i64, rq: Requant) -> i32 {
    rq.apply_wide(acc)
}

/// The four-row int16 kernel of this target: `dsp::dot4_i16` with the DSP extension, else
/// [`dot4_i16`]. Same integers either way.
#[cfg(feature = "int16")]
#[inline(always)]
fn fast_dot4_i16(w4: &[u8], x: &[u32]) -> [i64; 4] {
    #[cfg(any(tinyrnn_dsp, all(target_arch = "arm", target_feature = "dsp")))]
    {
        dsp::dot4_i16(w4, x)
    }
    #[cfg(not(any(tinyrnn_dsp, all(target_arch = "arm", target_feature = "dsp"))))]
    {
        dot4_i16(w4, x)
    }
}

/// The int8 row kernel of this target: `dsp::dot_i8` with the DSP extension, else
/// [`dot_i8`]. Same integers either way.
#[inline(always)]
fn fast_dot_i8(w: &[u8], x: &[u32]) -> i32 {
    #[cfg(any(tinyrnn_dsp, all(target_arch = "arm", target_feature = "dsp")))]
    {
        dsp::dot_i8(w, x)
    }
    #[cfg(not(any(tinyrnn_dsp, all(target_arch = "arm", target_feature = "dsp"))))]
    {
        dot_i8(w, x)
    }
}

/// The four-row int8 kernel of this target: `dsp::dot4_i8` with the DSP extension
/// (`SMLAD`) and on the Cortex-M0 (cfg `tinyrnn_v6m`: `MULS`, accumulators in r8–r11); on
/// other Arm cores without DSP (Cortex-M3) four [`dot_i8`] passes; elsewhere (RISC-V, the
/// host) [`dot4_i8`]. Same integers in every case.
#[cfg(feature = "int8")]
#[inline(always)]
fn fast_dot4_i8(w4: &[u8], x: &[u32]) -> [i32; 4] {
    #[cfg(any(
        tinyrnn_dsp,
        tinyrnn_v6m,
        all(target_arch = "arm", target_feature = "dsp")
    ))]
    {
        dsp::dot4_i8(w4, x)
    }
    #[cfg(all(
        target_arch = "arm",
        not(any(tinyrnn_dsp, tinyrnn_v6m, target_feature = "dsp"))
    ))]
    {
        let row = 2 * x.len();
        [0, 1, 2, 3].map(|r| dot_i8(w4.get(r * row..(r + 1) * row).unwrap_or(&[]), x))
    }
    #[cfg(not(target_arch = "arm"))]
    {
        dot4_i8(w4, x)
    }
}

/// One integer path: weight width, accumulator, bias decoding and requantization.
#[cfg(any(feature = "int8", feature = "int16"))]
pub(crate) trait IntKernel {
    /// Bytes per weight.
    const WEIGHT_BYTES: usize;
    /// Bytes per bias.
    const BIAS_BYTES: usize;
    /// `rq.apply(dot(w_row, x) + bias)` (bias added saturating), the pre-activation.
    fn pre(w_row: &[u8], x: &[u32], bias: &[u8], rq: Requant) -> i32;
    /// [`pre`](Self::pre) of four consecutive rows: `w4` starts with the four rows back to
    /// back, `bias4` with their four biases, `rq4` with their four 5-byte requant records
    /// (longer slices are fine). Rows, biases or records missing from short slices give 0
    /// (never after validation).
    fn pre4(w4: &[u8], x: &[u32], bias4: &[u8], rq4: &[u8]) -> [i32; 4];
    /// Both products of four consecutive units: `pre4(w_ih, x, ..)` then `pre4(w_hh, h, ..)`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn pre4x2(
        w_ih: &[u8],
        x: &[u32],
        b_ih: &[u8],
        rq_ih: &[u8],
        w_hh: &[u8],
        h: &[u32],
        b_hh: &[u8],
        rq_hh: &[u8],
    ) -> [i32; 8] {
        concat8(
            Self::pre4(w_ih, x, b_ih, rq_ih),
            Self::pre4(w_hh, h, b_hh, rq_hh),
        )
    }
}

/// `[a, b]` as one array.
#[cfg(any(feature = "int8", feature = "int16"))]
#[inline(always)]
fn concat8(a: [i32; 4], b: [i32; 4]) -> [i32; 8] {
    [a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]]
}

/// int8 weights, `i32` accumulator (feature `int8`).
#[cfg(feature = "int8")]
pub(crate) struct Int8;
/// int16 weights, `i64` accumulator (feature `int16`).
#[cfg(feature = "int16")]
pub(crate) struct Int16;

#[cfg(feature = "int8")]
impl IntKernel for Int8 {
    const WEIGHT_BYTES: usize = 1;
    const BIAS_BYTES: usize = 4;
    #[inline(always)]
    fn pre(w_row: &[u8], x: &[u32], bias: &[u8], rq: Requant) -> i32 {
        requant_i32(fast_dot_i8(w_row, x).saturating_add(le_i32(bias)), rq)
    }
    #[inline(always)]
    fn pre4(w4: &[u8], x: &[u32], bias4: &[u8], rq4: &[u8]) -> [i32; 4] {
        let acc = fast_dot4_i8(w4, x);
        let (Some(b), Some(q)) = (bias4.first_chunk::<16>(), rq4.first_chunk::<20>()) else {
            return pre4_short_i8(acc, bias4, rq4);
        };
        let mut out = [0; 4];
        for (r, (o, a)) in out.iter_mut().zip(acc).enumerate() {
            let bias = i32::from_le_bytes([b[4 * r], b[4 * r + 1], b[4 * r + 2], b[4 * r + 3]]);
            let k = 5 * r;
            let rq = Requant::from_bytes([q[k], q[k + 1], q[k + 2], q[k + 3], q[k + 4]]);
            *o = requant_i32(a.saturating_add(bias), rq);
        }
        out
    }
}

#[cfg(feature = "int16")]
impl IntKernel for Int16 {
    const WEIGHT_BYTES: usize = 2;
    const BIAS_BYTES: usize = 8;
    #[inline(always)]
    fn pre(w_row: &[u8], x: &[u32], bias: &[u8], rq: Requant) -> i32 {
        pre_i16(w_row, x, le_i64(bias), rq)
    }
    #[inline(always)]
    fn pre4(w4: &[u8], x: &[u32], bias4: &[u8], rq4: &[u8]) -> [i32; 4] {
        let acc = fast_dot4_i16(w4, x);
        let mut out = [0; 4];
        for (r, (o, a)) in out.iter_mut().zip(acc).enumerate() {
            let b = le_i64(bias4.get(8 * r..).unwrap_or(&[]));
            let rq = le_requant(rq4.get(5 * r..).unwrap_or(&[]));
            *o = requant_i64(a.saturating_add(b), rq);
        }
        out
    }
}

/// Dense helper, int8: `rq.apply(bias ⊕ Σ w·x)` (`⊕` saturating).
#[inline(always)]
pub fn pre_i8(w_row: &[u8], x: &[u32], bias: i32, rq: Requant) -> i32 {
    requant_i32(fast_dot_i8(w_row, x).saturating_add(bias), rq)
}

/// Dense helper, int16: `rq.apply_wide(bias ⊕ Σ w·x)` (`⊕` saturating).
#[inline(always)]
pub fn pre_i16(w_row: &[u8], x: &[u32], bias: i64, rq: Requant) -> i32 {
    requant_i64(dot_i16(w_row, x).saturating_add(bias), rq)
}

/// Dense helper, f32: `bias + Σ w·x`.
#[inline(always)]
pub fn pre_f32(w_row: &[u8], x: &[u32], bias: f32) -> f32 {
    bias + dot_f32(w_row, x)
}

/// `i16` from 2 LE bytes (0 if `b` is shorter).
#[inline(always)]
pub(crate) fn le_i16(b: &[u8]) -> i16 {
    match *b {
        [b0, b1, ..] => i16::from_le_bytes([b0, b1]),
        _ => 0,
    }
}

/// `i32` from 4 LE bytes (0 if `b` is shorter; never after validation).
#[inline(always)]
pub(crate) fn le_i32(b: &[u8]) -> i32 {
    match *b {
        [b0, b1, b2, b3, ..] => i32::from_le_bytes([b0, b1, b2, b3]),
        _ => 0,
    }
}

/// `i64` from 8 LE bytes (0 if `b` is shorter).
#[cfg(feature = "int16")]
#[inline(always)]
pub(crate) fn le_i64(b: &[u8]) -> i64 {
    match *b {
        [b0, b1, b2, b3, b4, b5, b6, b7, ..] => {
            i64::from_le_bytes([b0, b1, b2, b3, b4, b5, b6, b7])
        }
        _ => 0,
    }
}

/// `f32` from 4 LE bytes (0.0 if `b` is shorter).
#[inline(always)]
pub(crate) fn le_f32(b: &[u8]) -> f32 {
    f32::from_bits(le_i32(b) as u32)
}

/// [`Requant`] from a 5-byte record (mult 0 / shift 1 if `b` is shorter: output 0).
#[cfg(any(feature = "int8", feature = "int16"))]
#[inline(always)]
pub(crate) fn le_requant(b: &[u8]) -> Requant {
    match *b {
        [b0, b1, b2, b3, b4, ..] => Requant::from_bytes([b0, b1, b2, b3, b4]),
        _ => Requant { mult: 0, shift: 1 },
    }
}

/// Consecutive `len`-byte rows of a tensor. Unlike `chunks_exact` it has no panic path
/// (no zero-size check): it stops when fewer than `len` bytes remain.
#[derive(Debug, Clone)]
pub(crate) struct Rows<'a> {
    rest: &'a [u8],
    len: usize,
}

impl<'a> Rows<'a> {
    /// Rows of `len` bytes of `bytes`.
    #[inline(always)]
    pub(crate) fn new(bytes: &'a [u8], len: usize) -> Self {
        Rows { rest: bytes, len }
    }
}

impl<'a> Iterator for Rows<'a> {
    type Item = &'a [u8];
    #[inline(always)]
    fn next(&mut self) -> Option<&'a [u8]> {
        let (row, rest) = self.rest.split_at_checked(self.len)?;
        self.rest = rest;
        Some(row)
    }
}

/// Bytes `g·n .. (g+1)·n` of `bytes` (empty if out of range: never after validation).
#[inline(always)]
pub(crate) fn block(bytes: &[u8], g: usize, n: usize) -> &[u8] {
    g.checked_mul(n)
        .and_then(|start| bytes.get(start..))
        .and_then(|b| b.get(..n))
        .unwrap_or(&[])
}

/// Packs `i16` values two per word (low half = even index) into `dst`, zero-filling the
/// words (and the half word) past the end of `src`.
#[inline]
pub fn pack_i16(dst: &mut [u32], src: impl IntoIterator<Item = i16>) {
    let mut it = src.into_iter();
    for w in dst.iter_mut() {
        let lo = it.next().map_or(0, |v| v as u16 as u32);
        let hi = it.next().map_or(0, |v| v as u16 as u32);
        *w = lo | hi << 16;
    }
}

/// Copies words into `dst`, zero-filling past the end of `src` (f32 bits: 0 is +0.0).
#[inline]
pub(crate) fn copy_words(dst: &mut [u32], src: impl IntoIterator<Item = u32>) {
    let mut it = src.into_iter();
    for w in dst.iter_mut() {
        *w = it.next().unwrap_or(0);
    }
}

/// Writes `v` as element `j` of a packed `i16` vector (no-op if out of range).
#[cfg(all(feature = "gru", any(feature = "int8", feature = "int16")))]
#[inline(always)]
pub(crate) fn set_i16(dst: &mut [u32], j: usize, v: i16) {
    if let Some(w) = dst.get_mut(j / 2) {
        let v = v as u16 as u32;
        *w = if j & 1 == 0 {
            (*w & 0xFFFF_0000) | v
        } else {
            (*w & 0x0000_FFFF) | v << 16
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// int8 row in the c0, c2, c1, c3 block layout, padded.
    fn layout_i8(w: &[i8]) -> Vec<u8> {
        let mut out = vec![0u8; w.len().div_ceil(4) * 4];
        for (j, &v) in w.iter().enumerate() {
            let (b, c) = (j / 4, j % 4);
            let pos = [0, 2, 1, 3][c];
            out[b * 4 + pos] = v as u8;
        }
        out
    }

    fn packed(x: &[i16]) -> Vec<u32> {
        let mut out = vec![0u32; x.len().div_ceil(4) * 2];
        pack_i16(&mut out, x.iter().copied());
        out
    }

    #[test]
    fn int8_layout_example() {
        // w = [1, 2, 3, 4, -5], x = [10, 20, 30, 40, 50]
        let w = layout_i8(&[1, 2, 3, 4, -5]);
        assert_eq!(w, [1, 3, 2, 4, 0xFB, 0, 0, 0]);
        let x = packed(&[10, 20, 30, 40, 50]);
        assert_eq!(x, [10 | 20 << 16, 30 | 40 << 16, 50, 0]);
        assert_eq!(dot_i8(&w, &x), 10 + 40 + 90 + 160 - 250);
    }

    #[test]
    fn extremes_do_not_overflow() {
        // 256 columns of (−128)·(−32768) = 2^22 each: 2^30.
        let w = layout_i8(&[-128; 256]);
        let x = packed(&[i16::MIN; 256]);
        assert_eq!(dot_i8(&w, &x), 1 << 30);
        let w16: Vec<u8> = [i16::MIN; 256]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(dot_i16(&w16, &x), 1i64 << 38);
    }

    #[test]
    fn pack_and_set() {
        let mut d = [0xFFFF_FFFFu32; 3];
        pack_i16(&mut d, [1i16, -1, 2]);
        assert_eq!(d, [1 | 0xFFFF << 16, 2, 0]);
        set_i16(&mut d, 3, -2);
        set_i16(&mut d, 0, 7);
        set_i16(&mut d, 99, 7);
        assert_eq!(d, [7 | 0xFFFF << 16, 2 | 0xFFFE << 16, 0]);
        let mut f = [9u32; 3];
        copy_words(&mut f, [1u32]);
        assert_eq!(f, [1, 0, 0]);
    }

    #[test]
    fn dense_helpers() {
        let w = layout_i8(&[2, 3]);
        let x = packed(&[100, -50]);
        // acc = 200 − 150 + 1000 = 1050; × 0.5 = 525
        let rq = Requant {
            mult: 1 << 30,
            shift: 31,
        };
        assert_eq!(pre_i8(&w, &x, 1000, rq), 525);
        assert_eq!(pre_i8(&w, &x, i32::MAX, rq), 1 << 30); // bias saturates, then halves
        let w16: Vec<u8> = [2i16, 3, 0, 0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(pre_i16(&w16, &x, 1000, rq), 525);
        let wf: Vec<u8> = [0.5f32, -2.0, 0.0, 0.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let xf = [3.0f32.to_bits(), 1.0f32.to_bits(), 0, 0];
        assert_eq!(pre_f32(&wf, &xf, 0.25), 0.25 + 1.5 - 2.0);
    }

    #[test]
    fn rows_and_blocks() {
        let b = [1u8, 2, 3, 4, 5, 6, 7];
        let rows: Vec<&[u8]> = Rows::new(&b, 3).collect();
        assert_eq!(rows, [&[1u8, 2, 3][..], &[4, 5, 6]]); // the incomplete tail is dropped
        assert_eq!(Rows::new(&b, 0).take(2).count(), 2); // no panic on 0: empty rows
        assert_eq!(block(&b, 1, 3), [4, 5, 6]);
        assert_eq!(block(&b, 2, 3), [] as [u8; 0]);
        assert_eq!(block(&b, usize::MAX, 2), [] as [u8; 0]);
    }

    #[test]
    fn short_inputs_are_harmless() {
        assert_eq!(le_i32(&[1, 2]), 0);
        assert_eq!(le_i64(&[1; 7]), 0);
        assert_eq!(le_requant(&[1; 4]).apply(1 << 20), 0);
        assert_eq!(dot_i8(&[1, 1, 1, 1, 1], &[1]), 0); // x shorter than one block
    }

    proptest! {
        /// The four-row kernels give the integers of four single-row calls.
        #[test]
        fn four_rows_match_one_row(
            blocks in 1usize..20,
            seed in proptest::collection::vec((any::<i8>(), any::<i16>()), 4 * 80),
            x in proptest::collection::vec(any::<i16>(), 80),
        ) {
            let n = 4 * blocks;
            let xp = packed(&x[..n]);
            let w8: Vec<u8> = seed[..4 * n].iter().map(|s| s.0 as u8).collect();
            let want: Vec<i32> = w8.chunks(n).map(|r| dot_i8(r, &xp)).collect();
            prop_assert_eq!(dot4_i8(&w8, &xp).to_vec(), want);
            let w16: Vec<u8> = seed[..4 * n].iter().flat_map(|s| s.1.to_le_bytes()).collect();
            let want: Vec<i64> = w16.chunks(2 * n).map(|r| dot_i16(r, &xp)).collect();
            prop_assert_eq!(dot4_i16(&w16, &xp).to_vec(), want);
            // short weights: missing rows are 0, present ones unchanged
            let got = dot4_i8(&w8[..2 * n + 1], &xp);
            prop_assert_eq!(&got[2..], &[0, 0]);
        }

        /// The short wide requantization path is exactly `Requant::apply_wide`.
        #[test]
        fn requant_wide_short_path_is_exact(acc in any::<i64>(), mult in 1i32..=i32::MAX, shift in 1u8..=94) {
            let rq = Requant { mult, shift };
            prop_assert_eq!(requant_i64(acc, rq), rq.apply_wide(acc));
        }

        /// The short requantization path is exactly `Requant::apply`.
        #[test]
        fn requant_short_path_is_exact(acc in any::<i32>(), mult in 1i32..=i32::MAX, shift in 1u8..=62) {
            let rq = Requant { mult, shift };
            prop_assert_eq!(requant_i32(acc, rq), rq.apply(acc));
        }
    }

    #[test]
    fn requant_wide_short_path_extremes() {
        for shift in 1..=94u8 {
            for mult in [1, 2, (1 << 30) - 1, 1 << 30, i32::MAX] {
                for acc in [
                    i64::MIN,
                    i64::MIN + 1,
                    -(1 << 40),
                    -1,
                    0,
                    1,
                    1 << 38,
                    i64::MAX,
                    u32::MAX as i64,
                ] {
                    let rq = Requant { mult, shift };
                    assert_eq!(
                        requant_i64(acc, rq),
                        rq.apply_wide(acc),
                        "{acc} {mult} {shift}"
                    );
                }
            }
        }
    }

    proptest! {
        /// The 16-bit split high word is the `i64` product's.
        #[test]
        fn mul_hi_split_is_exact(a in any::<i32>(), b in any::<i32>()) {
            prop_assert_eq!(mul_hi_split(a, b), ((a as i64 * b as i64) >> 32) as i32);
        }
    }

    #[test]
    fn mul_hi_split_extremes() {
        let v = [
            i32::MIN,
            i32::MIN + 1,
            -65537,
            -65536,
            -65535,
            -1,
            0,
            1,
            65535,
            65536,
            1 << 30,
            i32::MAX,
        ];
        for a in v {
            for b in v {
                assert_eq!(
                    mul_hi_split(a, b),
                    ((a as i64 * b as i64) >> 32) as i32,
                    "{a} {b}"
                );
            }
        }
    }

    #[test]
    fn requant_short_path_extremes() {
        for shift in 1..=62u8 {
            for mult in [1, 2, (1 << 30) - 1, 1 << 30, i32::MAX] {
                for acc in [
                    i32::MIN,
                    i32::MIN + 1,
                    -1,
                    0,
                    1,
                    i32::MAX,
                    1 << 30,
                    -(1 << 30),
                ] {
                    let rq = Requant { mult, shift };
                    assert_eq!(requant_i32(acc, rq), rq.apply(acc), "{acc} {mult} {shift}");
                }
            }
        }
    }

    proptest! {
        #[test]
        fn kernels_match_naive(
            cols in 1usize..40,
            seed in proptest::collection::vec((any::<i8>(), any::<i16>(), any::<i16>()), 40),
        ) {
            let w8: Vec<i8> = seed[..cols].iter().map(|s| s.0).collect();
            let w16: Vec<i16> = seed[..cols].iter().map(|s| s.1).collect();
            let x: Vec<i16> = seed[..cols].iter().map(|s| s.2).collect();
            let xp = packed(&x);
            let want8: i64 = w8.iter().zip(&x).map(|(&a, &b)| a as i64 * b as i64).sum();
            prop_assert_eq!(dot_i8(&layout_i8(&w8), &xp) as i64, want8);
            let mut w16b: Vec<u8> = w16.iter().flat_map(|v| v.to_le_bytes()).collect();
            w16b.resize(cols.div_ceil(4) * 8, 0);
            let want16: i64 = w16.iter().zip(&x).map(|(&a, &b)| a as i64 * b as i64).sum();
            prop_assert_eq!(dot_i16(&w16b, &xp), want16);
        }
    }
}
