//! Activation functions: integer sigmoid / tanh / exp, and their `f32` counterparts.
//!
//! # Integer path
//!
//! [`sigmoid_q`] and [`tanh_q`] take a gate pre-activation in [`Pre`](crate::fxp::Pre)
//! (Q19.12, any `i32`; inputs beyond ±16 saturate, which changes no output bit) and return
//! Q0.15. Both read one table, [`TANH_LUT`]: `tanh` on `[0, 6]` in steps of 1/64
//! (385 × `u16` = 770 bytes of flash), stored in Q0.16, with linear interpolation.
//!
//! * `tanh_q(x)`: odd symmetry, `|x|` indexes the table with 6 fractional index bits, one
//!   rounding to Q0.15 at the end. Beyond 6 the result is `ACT_ONE` (tanh(6) is already
//!   within 0.4 LSB of 1).
//! * `sigmoid_q(x) = (1 + tanh(x/2)) / 2`: the same table at `|x|/2` (7 fractional index bits),
//!   one rounding, and `σ(−x) = 1 − σ(x)` computed exactly, so the two sides add up to 1.0.
//!
//! The table nodes are not `tanh(x_k)` but `tanh(x_k) + h²·|tanh''(x_k)|/16` (h = 1/64):
//! lifting each node by half the chord's sag centres the interpolation error, halving it.
//! The table is built at compile time by a `const fn` (a `const` exp series, [`exp_f64`]);
//! a unit test regenerates it with `std`'s `f64::tanh`.
//!
//! Measured exhaustively over every input in `[−2^17, 2^17]` (test `exhaustive_error`), against
//! the exact function in Q0.15 clamped to the representable range `[−32768, 32767]`:
//!
//! | function | max error vs exact real | max error vs exact rounded to an integer |
//! |---|---|---|
//! | [`tanh_q`] | 1.08 LSB (3.3e-5) | 1 LSB |
//! | [`sigmoid_q`] | 0.80 LSB (2.4e-5) | 1 LSB |
//!
//! [`gelu_q`] (feature `dense-net`, the pre-net / head GELU, both forms) reads the same
//! machinery: [`GELU_LUT`] is `erf(x/√2)` built and lifted exactly like [`TANH_LUT`], and the
//! tanh form feeds `√(2/π)(x + 0.044715x³)` (computed in Q.18) to [`TANH_LUT`]; one rounding
//! of `x·Φ(x)` to the output format. Max error `0.5 LSB + 3.1e-5·2^y_frac` (exhaustive).
//!
//! [`exp_q`] (for the integer softmax) returns `e^x` for `x ≤ 0` in Q.12 as Q2.30, from two
//! small tables (`e^−k`, `e^−k/64`; 324 bytes) and a cubic for the last 6 bits; max error
//! 3.0 units of 2^−30 (2.8e-9) over every input in `[−2^16, 0]`.
//!
//! # `f32` path
//!
//! * [`F32Math::Fast`] (default): [`tanh_fast`], a `[13/6]` rational function of the clamped
//!   input (Eigen's `generic_fast_tanh_float` coefficients; 9 multiply–adds and one
//!   division, no branch but the clamp), and [`sigmoid_fast`]` = (1 + tanh(x/2))/2`.
//!   Domain: every `f32`. Max absolute error, measured exhaustively over every `f32` in
//!   `[−12, 12]` (beyond it both are constant) against the exact functions: tanh 4.1e-7,
//!   sigmoid 2.3e-7; test `f32_fast_error` re-checks it on a dense sweep (every 16th `f32`,
//!   also against libm). The softmax's `exp` is micromath's (`micromath::F32(x).exp()`,
//!   called as an inherent method so `std` cannot shadow it on the host; relative error up to
//!   ~1e-3: a 4-term series after range reduction).
//! * [`F32Math::Accurate`] (feature `libm`): `libm::expf` / `libm::tanhf`; measured max
//!   absolute error 8.9e-8 (sigmoid) and 8.1e-8 (tanh), i.e. f32 rounding.

use crate::fxp::ACT_ONE;

/// Which `f32` transcendental functions the `f32` path uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum F32Math {
    /// Rational tanh / sigmoid (fast; max absolute error 4.1e-7, see the [module docs](self)).
    #[default]
    Fast,
    /// libm (feature `libm`): matches PyTorch to f32 rounding.
    Accurate,
}

// ---------------------------------------------------------------------------------------
// Compile-time table construction
// ---------------------------------------------------------------------------------------

/// `e^x` in `const` f64 arithmetic: `(Σ_{n<18} (x/2^10)^n / n!)^(2^10)`.
///
/// Relative error below 1e-12 for `|x| ≤ 40` (the series is exact to f64 rounding for
/// `|x/2^10| ≤ 0.04`; ten squarings multiply the rounding error by 2^10). Only used to build
/// tables at compile time.
pub const fn exp_f64(x: f64) -> f64 {
    let r = x / 1024.0;
    let mut term = 1.0;
    let mut sum = 1.0;
    let mut n = 1;
    while n < 18 {
        term = term * r / n as f64;
        sum += term;
        n += 1;
    }
    let mut k = 0;
    while k < 10 {
        sum *= sum;
        k += 1;
    }
    sum
}

/// `tanh(x)` for `x ≥ 0` in `const` f64 arithmetic.
const fn tanh_f64(x: f64) -> f64 {
    let t = exp_f64(-2.0 * x);
    (1.0 - t) / (1.0 + t)
}

/// Table step: 1/64 in `x`, i.e. 64 units of Q.12 per node.
const LUT_SHIFT: u32 = 6;
/// Number of table intervals: `[0, 6]` in steps of 1/64.
const LUT_INTERVALS: usize = 384;
/// First input (Q.12, absolute value) at which [`tanh_q`] is saturated: 6.0.
const TANH_SAT: u32 = (LUT_INTERVALS as u32) << LUT_SHIFT;

const fn round_u16(v: f64) -> u16 {
    let r = v + 0.5;
    if r >= 65535.0 {
        65535
    } else if r <= 0.0 {
        0
    } else {
        r as u16
    }
}

/// `erf(z)` for `z ≥ 0` in `const` f64 arithmetic: `(2/√π)·e^(−z²)·Σ_n 2^n·z^(2n+1) /
/// (1·3·…·(2n+1))` (A&S 7.1.6; every term positive, so no cancellation). 200 terms: the
/// term ratio `2z²/(2n+1)` is below 0.1 long before for `z ≤ 6/√2`. Relative error ~1e-12
/// (that of [`exp_f64`]); only used to build [`GELU_LUT`] at compile time.
const fn erf_f64(z: f64) -> f64 {
    let z2 = z * z;
    let mut term = z;
    let mut sum = z;
    let mut n = 1;
    while n < 200 {
        term = term * 2.0 * z2 / (2 * n + 1) as f64;
        sum += term;
        n += 1;
    }
    // 2/√π
    core::f64::consts::FRAC_2_SQRT_PI * exp_f64(-z2) * sum
}

/// The table of `tanh(x)` (`gelu == false`) or of `erf(x/√2) = 2Φ(x) − 1` (`gelu == true`)
/// on `[0, 6]` in steps of 1/64, Q0.16, every node lifted by `h²·|f''(x)|/16` (both
/// functions are odd, increasing and concave on `x ≥ 0`: the same construction, the same
/// error argument).
const fn build_lut(gelu: bool) -> [u16; LUT_INTERVALS + 1] {
    let mut t = [0u16; LUT_INTERVALS + 1];
    let h = 1.0 / 64.0;
    let mut k = 0;
    while k <= LUT_INTERVALS {
        let x = k as f64 * h;
        let (y, d2) = if gelu {
            // d²/dx² erf(x/√2) = −2x·φ(x), φ(x) = e^(−x²/2)/√(2π)
            let y = erf_f64(x * core::f64::consts::FRAC_1_SQRT_2);
            (y, 2.0 * x * exp_f64(-x * x / 2.0) * 0.398_942_280_401_432_7)
        } else {
            let y = tanh_f64(x);
            // |tanh''(x)| = 2·tanh(x)·(1 − tanh²(x)) for x ≥ 0
            (y, 2.0 * y * (1.0 - y * y))
        };
        t[k] = round_u16((y + h * h * d2 / 16.0) * 65536.0);
        k += 1;
    }
    t
}

/// `tanh` on `[0, 6]` in steps of 1/64, Q0.16, nodes lifted by `h²·|tanh''|/16` (see the
/// [module docs](self)).
pub static TANH_LUT: [u16; LUT_INTERVALS + 1] = build_lut(false);

/// `erf(x/√2) = 2Φ(x) − 1` (Φ the standard normal CDF) on `[0, 6]` in steps of 1/64, Q0.16,
/// nodes lifted by `h²·|f''|/16` like [`TANH_LUT`]: the exact GELU's table (feature
/// `dense-net`; 770 bytes of flash, linked only when a model can use it).
#[cfg(feature = "dense-net")]
pub static GELU_LUT: [u16; LUT_INTERVALS + 1] = build_lut(true);

/// `e^−k` for `k = 0..=16`, Q2.30.
static EXP_INT: [u32; 17] = {
    let mut t = [0u32; 17];
    let mut k = 0;
    while k < 17 {
        t[k] = (exp_f64(-(k as f64)) * (1u64 << 30) as f64 + 0.5) as u32;
        k += 1;
    }
    t
};

/// `e^−k/64` for `k = 0..64`, Q2.30.
static EXP_MID: [u32; 64] = {
    let mut t = [0u32; 64];
    let mut k = 0;
    while k < 64 {
        t[k] = (exp_f64(-(k as f64) / 64.0) * (1u64 << 30) as f64 + 0.5) as u32;
        k += 1;
    }
    t
};

// ---------------------------------------------------------------------------------------
// Integer activations
// ---------------------------------------------------------------------------------------

/// Linear interpolation of `lut` ([`TANH_LUT`] or [`GELU_LUT`]) at `a / 2^frac_bits` table
/// steps, result in Q0.16 scaled by `2^frac_bits` (`frac_bits ≤ 12`). `a` must be below
/// `TANH_SAT << (frac_bits − 6)`; out of range returns the saturated value (never panics).
#[inline(always)]
fn lut_interp(lut: &[u16; LUT_INTERVALS + 1], a: u32, frac_bits: u32) -> u32 {
    let idx = (a >> frac_bits) as usize;
    let frac = a & ((1 << frac_bits) - 1);
    match (lut.get(idx), lut.get(idx.wrapping_add(1))) {
        (Some(&y0), Some(&y1)) => {
            // y1 ≥ y0 (both functions increase, the lift keeps it so: checked by a test), so
            // everything stays in u32: y0·2^12 + (y1 − y0)·4095 < 2^29.
            ((y0 as u32) << frac_bits) + (y1 as u32).wrapping_sub(y0 as u32).wrapping_mul(frac)
        }
        _ => 65536 << frac_bits,
    }
}

/// `tanh(x)`: input Q19.12 (any `i32`, saturating beyond ±16), output Q0.15.
///
/// Max error 1.08 LSB vs the exact value (1 LSB vs the exact value rounded), measured
/// exhaustively; odd: `tanh_q(−x) == −tanh_q(x)`; monotonic.
///
/// # Examples
/// ```
/// use tinyrnn::activation::tanh_q;
/// assert_eq!(tanh_q(0), 0);
/// assert_eq!(tanh_q(4096), 24956); // tanh(1.0) = 0.761594 → 24956.0 / 32768
/// assert_eq!(tanh_q(-4096), -24956);
/// assert_eq!(tanh_q(i32::MAX), 32767);
/// ```
#[inline]
pub fn tanh_q(x: i32) -> i16 {
    let a = x.unsigned_abs();
    let t = if a >= TANH_SAT {
        ACT_ONE as i32
    } else {
        // Q0.16 · 2^6 → Q0.15: drop 7 bits with rounding; ≤ 32768, clamp to ACT_ONE.
        let v = (lut_interp(&TANH_LUT, a, LUT_SHIFT) + (1 << 6)) >> 7;
        if v > ACT_ONE as u32 {
            ACT_ONE as i32
        } else {
            v as i32
        }
    };
    if x < 0 {
        -t as i16
    } else {
        t as i16
    }
}

/// `σ(x) = 1 / (1 + e^−x)`: input Q19.12 (any `i32`, saturating beyond ±16), output Q0.15
/// in `[0, 32767]`.
///
/// Max error 0.80 LSB vs the exact value (1 LSB vs the exact value rounded), measured
/// exhaustively; `σ(x) + σ(−x) = 1.0` exactly (32768) unless `σ(x)` saturates at 32767;
/// monotonic.
///
/// # Examples
/// ```
/// use tinyrnn::activation::sigmoid_q;
/// assert_eq!(sigmoid_q(0), 16384);
/// assert_eq!(sigmoid_q(4096), 23956); // σ(1.0) · 32768 = 23955.4
/// assert_eq!(sigmoid_q(-4096), 8812); // 32768 − 23956: σ(−x) = 1 − σ(x) exactly
/// assert_eq!(sigmoid_q(i32::MIN), 0);
/// ```
#[inline]
pub fn sigmoid_q(x: i32) -> i16 {
    let a = x.unsigned_abs();
    // σ(|x|)·2^15 = 2^14 + tanh(|x|/2)·2^14, tanh at |x|/2 = table position a / 2^7.
    let s = if a >= TANH_SAT << 1 {
        1 << 15
    } else {
        // tanh in Q0.16·2^7 = Q.23; + 1.0 (2^23), then to Q0.15 of the half: drop 9 bits.
        ((1u32 << 23) + lut_interp(&TANH_LUT, a, LUT_SHIFT + 1) + (1 << 8)) >> 9
    };
    // s ∈ [16384, 32768]
    let s = s as i32;
    if x < 0 {
        ((1 << 15) - s) as i16
    } else if s > ACT_ONE as i32 {
        ACT_ONE
    } else {
        s as i16
    }
}

/// The Q0.15 multiplier of a LeakyReLU slope `alpha ∈ [0, 1]`: `round(alpha · 2^15)` (ties
/// away from zero), in `0..=32768`. IEEE basic operations only (exact power-of-two
/// scaling, one addition, a saturating `as`), so bit-identical on every target.
#[inline]
pub fn alpha_q15(alpha: f32) -> i32 {
    let r = (alpha * 32768.0 + 0.5) as i32; // `as` saturates, NaN → 0
    r.clamp(0, 32768)
}

/// Integer LeakyReLU: `v` for `v ≥ 0`, else `round(v · a / 2^15)` (ties up) with
/// `a = `[`alpha_q15`]`(alpha)`. `v` and the result share one Q format (any).
///
/// Domain: every `i16` `v`, every `a` in `0..=32768` (`alpha ∈ [0, 1]`, what the loader
/// accepts). Max error vs the exact `alpha·v`: **1 LSB**: the final rounding adds ≤ 0.5, and
/// `|a/2^15 − alpha| ≤ 2^−16` times `|v| ≤ 2^15` adds ≤ 0.5. `v·a ≥ −2^30` fits `i32`; the
/// result lies in `[v, 0]`, so no saturation. Checked exhaustively over every `i16` for
/// several slopes (test `leaky_relu_exhaustive`).
#[inline]
pub fn leaky_relu_q(v: i16, a: i32) -> i16 {
    if v >= 0 {
        v
    } else {
        crate::fxp::sat_i16(crate::fxp::round_shr(v as i32 * a, 15))
    }
}

/// `√(2/π)` in Q.32 (rounded): the tanh-form GELU's `k`.
#[cfg(feature = "dense-net")]
const GELU_K_Q32: u64 = 3_426_888_095;
/// `0.044715·√(2/π)` in Q.32 (rounded).
#[cfg(feature = "dense-net")]
const GELU_C_Q32: u64 = 153_233_301;

/// Integer GELU, `gelu(x) = x·Φ(x)`: input Q19.12 (any `i32`, the requantized row), output
/// `i16` in `y_frac` fractional bits (`y_frac ≤ 15`, what the loader accepts). `tanh_form`
/// selects `Φ_t(x) = (1 + tanh(√(2/π)·(x + 0.044715·x³)))/2` (PyTorch
/// `approximate="tanh"`) instead of the exact `Φ(x) = (1 + erf(x/√2))/2`.
///
/// ```text
/// a = |x|
/// exact:  fb = 6,  t = interp(GELU_LUT, a, 6)                    erf(a/√2) in Q.22
/// tanh:   fb = 12, m = K + ⌊min(a, 2^15)²·C / 2^24⌋              k·(1 + 0.044715·x²), Q.32
///                  u = ⌊(min(a, 2^15)·m + 2^25) / 2^26⌋           u = √(2/π)(a + 0.044715a³), Q.18
///                  t = interp(TANH_LUT, u, 12)                    tanh(u) in Q.28
/// P = 2^(16+fb) + t  (x ≥ 0),  2^(16+fb) − t  (x < 0)             Φ(x) in Q.(17+fb)
/// gelu_q = clamp_i16(⌊(±a·P + 2^(s−1)) / 2^s⌋),  s = 29 + fb − y_frac   (sign of x; one rounding)
/// ```
///
/// `interp` is the tables' linear interpolation (saturating at 1.0 from the last node on,
/// so huge `|x|` give exactly `x` or 0); `a·P < 2^60` in `u64`. Both tables are built and
/// lifted the same way ([`TANH_LUT`], [`GELU_LUT`]).
///
/// Max error, measured exhaustively over every input in `[−2^17, 2^17]` (±32; beyond, the
/// result is `sat_i16(x)` or 0 within the same bound) and every `y_frac` in `0..=15`
/// (test `gelu_exhaustive_error`), against the exact function of each form (f64): the
/// value before the final rounding is within **3.1e-5** (exact form) / **2.6e-5** (tanh form)
/// of the exact one, so the output is within `0.5 LSB + 3.1e-5·2^y_frac` resp.
/// `0.5 LSB + 2.6e-5·2^y_frac` of the exact value clamped to the `i16` range; measured:
/// 0.51 / 0.53 LSB at `y_frac = 10`, 1.0 / 0.86 LSB at 15. The largest part is the table's
/// Q0.16 resolution of `1 − Φ` in the negative tail (`2^−17·|x|` near `x ≈ −4.3`).
#[cfg(feature = "dense-net")]
#[inline]
pub fn gelu_q(x: i32, y_frac: u32, tanh_form: bool) -> i16 {
    let a = x.unsigned_abs();
    let (t, fb) = if tanh_form {
        // x ≥ 8 saturates tanh (u ≥ 24.6 > 6) and keeps a² < 2^31
        let ac = a.min(1 << 15) as u64;
        let m = GELU_K_Q32 + ((ac * ac * GELU_C_Q32) >> 24); // < 2^35
        let u = (ac * m + (1 << 25)) >> 26; // < 2^24
        (lut_interp(&TANH_LUT, u as u32, 12), 12)
    } else {
        (lut_interp(&GELU_LUT, a, LUT_SHIFT), LUT_SHIFT)
    };
    // t ≤ 2^(16+fb): P ≥ 0
    let half = 1u64 << (16 + fb);
    let p = if x < 0 {
        half - t as u64
    } else {
        half + t as u64
    };
    let v = (a as u64 * p) as i64; // < 2^31 · 2^29
    let v = if x < 0 { -v } else { v };
    let s = 29 + fb - y_frac.min(15);
    let r = (v + (1i64 << (s - 1))) >> s;
    r.clamp(i16::MIN as i64, i16::MAX as i64) as i16
}

/// The integer activation of a pre-net / hidden head dense op on one requantized row `y`,
/// output `i16` in `y_frac` fractional bits (see [`DenseOpDesc`](crate::model::DenseOpDesc)):
///
/// | act | input `y` | output |
/// |---|---|---|
/// | Identity | `y_frac` | `sat_i16(y)` (exact) |
/// | ReLU | `y_frac` | `max(sat_i16(y), 0)` (exact) |
/// | Clip `{lo, hi}` | `y_frac` | `sat_i16(y)` clamped to `[q(lo), q(hi)]`, `q` = [`quantize_f32`](crate::fxp::quantize_f32)`(·, y_frac)`: bounds within 0.5 LSB |
/// | LeakyReLU `{alpha}` | `y_frac` | [`leaky_relu_q`] (≤ 1 LSB) |
/// | Tanh / Sigmoid | Q19.12 | [`tanh_q`] / [`sigmoid_q`], Q0.15 (≤ 1.08 / 0.80 LSB) |
/// | GELU / GELU (tanh) | Q19.12 | [`gelu_q`] in `y_frac` (≤ 0.5 LSB + 2.9e-5 / 3.3e-5) |
#[inline]
pub fn dense_act_q(act: crate::model::DenseAct, y: i32, y_frac: u32) -> i16 {
    use crate::fxp::{quantize_f32, sat_i16};
    use crate::model::DenseAct;
    match act {
        DenseAct::Identity => sat_i16(y),
        #[cfg(feature = "dense-net")]
        DenseAct::Gelu => gelu_q(y, y_frac, false),
        #[cfg(feature = "dense-net")]
        DenseAct::GeluTanh => gelu_q(y, y_frac, true),
        #[cfg(not(feature = "dense-net"))]
        DenseAct::Gelu | DenseAct::GeluTanh => sat_i16(y),
        DenseAct::Relu => sat_i16(y).max(0),
        DenseAct::Clip { lo, hi } => {
            let (l, h) = (quantize_f32(lo, y_frac), quantize_f32(hi, y_frac));
            sat_i16(y).max(l).min(h)
        }
        DenseAct::LeakyRelu { alpha } => leaky_relu_q(sat_i16(y), alpha_q15(alpha)),
        DenseAct::Tanh => tanh_q(y),
        DenseAct::Sigmoid => sigmoid_q(y),
    }
}

/// `e^x` for `x ≤ 0` in Q19.12, as Q2.30 (`1 << 30` is 1.0). Positive `x` is treated as 0;
/// `x < −16` returns `e^−16` rounded (≤ 121 units), which is negligible for a Q0.15 softmax.
///
/// `e^x = e^−i · e^−j/64 · e^−f/4096` with `−x = 4096·i + 64·j + f`: two tables and a cubic
/// Taylor polynomial; max error 3.0 units of 2^−30, measured exhaustively.
///
/// # Examples
/// ```
/// use tinyrnn::activation::exp_q;
/// assert_eq!(exp_q(0), 1 << 30);
/// assert!((exp_q(-4096) as i64 - 395_007_542).abs() <= 2); // e^-1 · 2^30
/// ```
#[inline]
pub fn exp_q(x: i32) -> u32 {
    let a = if x >= 0 {
        0
    } else {
        x.unsigned_abs().min(16 << 12)
    };
    let i = (a >> 12) as usize;
    let j = ((a >> 6) & 63) as usize;
    let f = (a & 63) as u64;
    let e_i = EXP_INT.get(i).map_or(0, |&v| v as u64);
    let e_j = EXP_MID.get(j).map_or(0, |&v| v as u64);
    // e^−u, u = f/4096 ≤ 63/4096: 1 − u + u²/2 − u³/6 in Q.30 (error < 3e-9).
    let poly = (1u64 << 30) - (f << 18) + ((f * f) << 5) - (f * f * f + 192) / 384;
    let p = (e_i * e_j + (1 << 29)) >> 30; // ≤ 2^30
    ((p * poly + (1 << 29)) >> 30) as u32
}

// ---------------------------------------------------------------------------------------
// f32 activations
// ---------------------------------------------------------------------------------------

/// `f32` transcendental functions of one [`F32Math`] mode (monomorphised in the cells).
#[cfg(feature = "f32")]
pub(crate) trait Math {
    fn exp(x: f32) -> f32;
    fn sigmoid(x: f32) -> f32;
    fn tanh(x: f32) -> f32;
}

/// [`F32Math::Fast`].
#[cfg(feature = "f32")]
pub(crate) struct FastMath;

#[cfg(feature = "f32")]
impl Math for FastMath {
    #[inline]
    fn exp(x: f32) -> f32 {
        exp_fast(x)
    }
    #[inline]
    fn sigmoid(x: f32) -> f32 {
        sigmoid_fast(x)
    }
    #[inline]
    fn tanh(x: f32) -> f32 {
        tanh_fast(x)
    }
}

/// [`F32Math::Accurate`].
#[cfg(all(feature = "f32", feature = "libm"))]
pub(crate) struct AccurateMath;

#[cfg(all(feature = "f32", feature = "libm"))]
impl Math for AccurateMath {
    #[inline]
    fn exp(x: f32) -> f32 {
        libm::expf(x)
    }
    #[inline]
    fn sigmoid(x: f32) -> f32 {
        sigmoid_accurate(x)
    }
    #[inline]
    fn tanh(x: f32) -> f32 {
        libm::tanhf(x)
    }
}

/// micromath's `e^x` (relative error up to ~1e-3) (feature `f32`).
#[cfg(feature = "f32")]
#[inline]
pub fn exp_fast(x: f32) -> f32 {
    micromath::F32(x).exp().0
}

/// Exact GELU `x·Φ(x) = x·erfc(−x/√2)/2` in `f32` with `libm::erfcf` (both [`F32Math`]
/// modes; `erfc` rather than `1 + erf` so negative inputs keep their relative accuracy).
///
/// Domain: every finite `f32` (x ≥ 10: `x`; x ≤ −14: a non-positive value above −1e-40, the
/// exact value being below that too). Max absolute error 3.9e-7 on `[−12, 12]` against the exact function (f64
/// `libm::erfc`), measured on every 16th `f32` (test `f32_gelu_error`): f32 rounding (half
/// an ulp of 12 is 4.8e-7); `x` itself beyond.
#[cfg(all(feature = "f32", feature = "dense-net"))]
#[inline]
pub fn gelu_f32(x: f32) -> f32 {
    0.5 * x * libm::erfcf(-x * core::f32::consts::FRAC_1_SQRT_2)
}

/// `σ(x) = (1 + tanh(x/2)) / 2` with [`tanh_fast`] (feature `f32`): two more operations.
///
/// Domain: every `f32` (NaN gives NaN). Max absolute error 2.3e-7 (about 2 ulp of 1.0),
/// measured exhaustively over every `f32` in `[−12, 12]` against the exact function (f64),
/// beyond which the result is constant (`σ(±24)` is within 4e-11 of 0 / 1); test
/// `f32_fast_error` re-checks a dense sweep against libm.
#[cfg(feature = "f32")]
#[inline]
pub fn sigmoid_fast(x: f32) -> f32 {
    0.5 + 0.5 * tanh_fast(0.5 * x)
}

/// `tanh(x)` as a `[13/6]` rational function of `x` (Eigen's `generic_fast_tanh_float`
/// coefficients): `x` clamped to `±7.998_811_7`, then `x·P(x²) / Q(x²)` in Horner form,
/// plain `f32` multiplies and adds (no fused multiply-add, so the same bits on every
/// target) and one division (feature `f32`).
///
/// Domain: every `f32` (NaN gives NaN; beyond the clamp the result is the constant
/// `tanh(±7.9988…)`, within 2.3e-7 of ±1). Max absolute error 4.1e-7 (at x ≈ 5.83), measured
/// exhaustively over every `f32` in `[−12, 12]` against the exact function (f64; the
/// function is odd bit for bit); test `f32_fast_error` re-checks a dense sweep against libm.
#[cfg(feature = "f32")]
#[inline]
pub fn tanh_fast(x: f32) -> f32 {
    // Eigen's coefficients rounded to f32 (bit patterns: the values the error was measured
    // with).
    const CLAMP: f32 = f32::from_bits(0x40ff_f644); // 7.998_811_7
    const A1: f32 = f32::from_bits(0x3ba0_59dc); // 4.893_524_6e-3
    const A3: f32 = f32::from_bits(0x3a27_0ded); // 6.372_619_5e-4
    const A5: f32 = f32::from_bits(0x3779_434a); // 1.485_722_4e-5
    const A7: f32 = f32::from_bits(0x335c_0041); // 5.122_297_3e-8
    const A9: f32 = f32::from_bits(0xaebd_37ff); // -8.604_672e-11
    const A11: f32 = f32::from_bits(0x2a61_337e); // 2.000_188e-13
    const A13: f32 = f32::from_bits(0xa59f_25c0); // -2.760_768_4e-16
    const B0: f32 = f32::from_bits(0x3ba0_59dd); // 4.893_525e-3
    const B2: f32 = f32::from_bits(0x3b14_aa05); // 2.268_434_7e-3
    const B4: f32 = f32::from_bits(0x38f8_95d6); // 1.185_347_1e-4
    const B6: f32 = f32::from_bits(0x35a0_d3d8); // 1.198_258_4e-6

    // (not `f32::clamp`: it carries an assertion, i.e. a panic path)
    #[allow(clippy::manual_clamp)]
    let x = if x > CLAMP {
        CLAMP
    } else if x < -CLAMP {
        -CLAMP
    } else {
        x
    };
    let x2 = x * x;
    let p = x2 * A13 + A11;
    let p = x2 * p + A9;
    let p = x2 * p + A7;
    let p = x2 * p + A5;
    let p = x2 * p + A3;
    let p = x2 * p + A1;
    let q = x2 * B6 + B4;
    let q = x2 * q + B2;
    let q = x2 * q + B0;
    x * p / q
}

/// `σ(x)` with `libm::expf`; max absolute error 8.9e-8 (f32 rounding).
#[cfg(feature = "libm")]
#[inline]
pub fn sigmoid_accurate(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + libm::expf(-x))
    } else {
        let e = libm::expf(x);
        e / (1.0 + e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exact_q15(v: f64) -> f64 {
        (v * 32768.0).clamp(-32768.0, 32767.0)
    }

    #[test]
    fn lut_regenerates_with_std() {
        let h = 1.0f64 / 64.0;
        for (k, &t) in TANH_LUT.iter().enumerate() {
            let y = (k as f64 * h).tanh();
            let d2 = 2.0 * y * (1.0 - y * y);
            let want = ((y + h * h * d2 / 16.0) * 65536.0 + 0.5)
                .floor()
                .min(65535.0) as u16;
            assert_eq!(t, want, "node {k}");
        }
        // monotonic, so lut_interp never underflows
        assert!(TANH_LUT.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(TANH_LUT[0], 0);
        assert_eq!(TANH_LUT[LUT_INTERVALS], 65535);
    }

    #[test]
    fn const_exp_is_accurate() {
        for i in -400..=400 {
            let x = i as f64 / 10.0;
            let rel = (exp_f64(x) - x.exp()).abs() / x.exp();
            assert!(rel < 1e-12, "exp({x}): rel err {rel}");
        }
    }

    /// Every input in [−2^17, 2^17]: max error of tanh_q / sigmoid_q.
    #[test]
    fn exhaustive_error() {
        let (mut et, mut es, mut et_r, mut es_r) = (0f64, 0f64, 0f64, 0f64);
        for x in -(1i32 << 17)..=(1 << 17) {
            let xf = x as f64 / 4096.0;
            let t = exact_q15(xf.tanh());
            let s = exact_q15(1.0 / (1.0 + (-xf).exp()));
            let (tq, sq) = (tanh_q(x) as f64, sigmoid_q(x) as f64);
            et = et.max((tq - t).abs());
            es = es.max((sq - s).abs());
            et_r = et_r.max((tq - t.round().min(32767.0)).abs());
            es_r = es_r.max((sq - s.round().min(32767.0)).abs());
        }
        println!("tanh_q max error {et:.4} LSB (vs rounded: {et_r}), sigmoid_q {es:.4} LSB (vs rounded: {es_r})");
        assert!(et <= 1.1 && es <= 0.82, "tanh {et}, sigmoid {es}");
        assert!(et_r <= 1.0 && es_r <= 1.0);
    }

    #[test]
    fn exhaustive_invariants() {
        let mut pt = tanh_q(-(1 << 17));
        let mut ps = sigmoid_q(-(1 << 17));
        for x in -(1i32 << 17) + 1..=(1 << 17) {
            let (t, s) = (tanh_q(x), sigmoid_q(x));
            assert!(t >= pt && s >= ps, "not monotonic at {x}");
            assert_eq!(tanh_q(-x), -t);
            assert!(s >= 0);
            let sn = sigmoid_q(-x);
            let sum = s as i32 + sn as i32;
            let saturated = s == ACT_ONE || sn == ACT_ONE;
            assert!(
                sum == 32768 || (saturated && sum == 32767),
                "σ({x}) + σ(−x) = {sum}"
            );
            (pt, ps) = (t, s);
        }
    }

    #[test]
    fn saturation_and_edges() {
        assert_eq!(tanh_q(0), 0);
        assert_eq!(sigmoid_q(0), 16384);
        for x in [16 << 12, (16 << 12) + 1, 1 << 20, i32::MAX] {
            assert_eq!(tanh_q(x), ACT_ONE);
            assert_eq!(tanh_q(-x), -ACT_ONE);
            assert_eq!(sigmoid_q(x), ACT_ONE);
            assert_eq!(sigmoid_q(-x), 0);
        }
        assert_eq!(tanh_q(i32::MIN), -ACT_ONE);
        assert_eq!(sigmoid_q(i32::MIN), 0);
        // just below the table end
        assert_eq!(tanh_q(TANH_SAT as i32 - 1), ACT_ONE);
        assert_eq!(tanh_q(-(TANH_SAT as i32) + 1), -ACT_ONE);
    }

    #[test]
    fn leaky_relu_exhaustive() {
        for alpha in [0.0f32, 0.01, 0.1, 0.2, 0.3, 0.5, 0.999, 1.0] {
            let a = alpha_q15(alpha);
            let mut worst = 0.0f64;
            for v in i16::MIN..=i16::MAX {
                let q = leaky_relu_q(v, a);
                let exact = if v >= 0 {
                    v as f64
                } else {
                    alpha as f64 * v as f64
                };
                worst = worst.max((q as f64 - exact).abs());
                assert!(v >= 0 && q == v || v < 0 && (v..=0).contains(&q), "{v} {q}");
            }
            assert!(worst <= 1.0, "alpha {alpha}: {worst} LSB");
        }
        assert_eq!(alpha_q15(1.0), 32768);
        assert_eq!(alpha_q15(0.01), 328);
        assert_eq!(leaky_relu_q(-32768, 32768), -32768);
        assert_eq!(leaky_relu_q(-100, 328), -1);
        assert_eq!(leaky_relu_q(1234, 328), 1234);
    }

    #[test]
    fn dense_act_q_examples() {
        use crate::model::DenseAct;
        assert_eq!(dense_act_q(DenseAct::Relu, -5, 10), 0);
        assert_eq!(dense_act_q(DenseAct::Relu, 70000, 10), 32767);
        // ReLU6 in Q5.10: 6.0 = 6144
        let c = DenseAct::Clip { lo: 0.0, hi: 6.0 };
        assert_eq!(dense_act_q(c, 7000, 10), 6144);
        assert_eq!(dense_act_q(c, -7, 10), 0);
        assert_eq!(dense_act_q(c, 3000, 10), 3000);
        assert_eq!(dense_act_q(DenseAct::Identity, -40000, 3), -32768);
        assert_eq!(dense_act_q(DenseAct::Tanh, 4096, 15), 24956);
        assert_eq!(dense_act_q(DenseAct::Sigmoid, 0, 15), 16384);
        assert_eq!(
            dense_act_q(DenseAct::LeakyRelu { alpha: 0.5 }, -1001, 8),
            -500
        );
    }

    #[test]
    fn exp_q_exhaustive() {
        let mut worst = 0f64;
        for x in -(1i32 << 16)..=0 {
            let e = (x as f64 / 4096.0).exp() * (1u64 << 30) as f64;
            worst = worst.max((exp_q(x) as f64 - e).abs());
        }
        println!("exp_q max error {worst:.3} units of 2^-30");
        assert!(worst <= 3.1, "{worst}");
        assert_eq!(exp_q(5000), 1 << 30);
        assert_eq!(exp_q(i32::MIN), exp_q(-(16 << 12)));
        assert!(exp_q(-(16 << 12)) <= 121);
    }

    fn f32_error(s: fn(f32) -> f32, t: fn(f32) -> f32) -> (f64, f64) {
        let (mut es, mut et) = (0f64, 0f64);
        for i in -200_000..=200_000 {
            let x = i as f32 * 1e-4;
            let xd = x as f64;
            es = es.max((s(x) as f64 - 1.0 / (1.0 + (-xd).exp())).abs());
            et = et.max((t(x) as f64 - xd.tanh()).abs());
        }
        (es, et)
    }

    /// The exact GELU's table, regenerated with libm's f64 `erf`; increasing.
    #[cfg(feature = "dense-net")]
    #[test]
    fn gelu_lut_regenerates_with_libm() {
        let h = 1.0f64 / 64.0;
        for (k, &t) in GELU_LUT.iter().enumerate() {
            let x = k as f64 * h;
            let y = libm::erf(x / core::f64::consts::SQRT_2);
            let d2 = 2.0 * x * (-x * x / 2.0).exp() / (2.0 * core::f64::consts::PI).sqrt();
            let want = ((y + h * h * d2 / 16.0) * 65536.0 + 0.5)
                .floor()
                .min(65535.0) as u16;
            assert_eq!(t, want, "node {k}");
        }
        assert!(GELU_LUT.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!((GELU_LUT[0], GELU_LUT[LUT_INTERVALS]), (0, 65535));
    }

    #[cfg(feature = "dense-net")]
    fn gelu_exact(x: f64) -> f64 {
        0.5 * x * libm::erfc(-x / core::f64::consts::SQRT_2)
    }

    #[cfg(feature = "dense-net")]
    fn gelu_tanh_exact(x: f64) -> f64 {
        let k = (2.0 / core::f64::consts::PI).sqrt();
        0.5 * x * (1.0 + (k * (x + 0.044_715 * x * x * x)).tanh())
    }

    /// Every input in [−2^17, 2^17] (±32) and every `y_frac`: |gelu_q − exact·2^f| ≤ 0.5 +
    /// E·2^f (E = 3.1e-5 exact form, 2.6e-5 tanh form), exact clamped to the i16 range;
    /// plus far inputs and oddities.
    #[cfg(feature = "dense-net")]
    #[test]
    fn gelu_exhaustive_error() {
        for (tanh_form, bound) in [(false, 3.1e-5), (true, 2.6e-5)] {
            let mut worst = [0f64; 16];
            for x in -(1i32 << 17)..=(1 << 17) {
                let xf = x as f64 / 4096.0;
                let g = if tanh_form {
                    gelu_tanh_exact(xf)
                } else {
                    gelu_exact(xf)
                };
                for (f, w) in worst.iter_mut().enumerate() {
                    let want = (g * (1u32 << f) as f64).clamp(-32768.0, 32767.0);
                    let got = gelu_q(x, f as u32, tanh_form) as f64;
                    *w = w.max((got - want).abs());
                }
            }
            // implied approximation error before the final rounding
            let e = worst
                .iter()
                .enumerate()
                .map(|(f, w)| (w - 0.5) / (1u32 << f) as f64)
                .fold(0f64, f64::max);
            println!(
                "gelu_q (tanh form: {tanh_form}): max error per y_frac 0..=15 (LSB) {:.3?}; \
                 implied pre-rounding error ≤ {e:.2e}",
                worst
            );
            for (f, w) in worst.iter().enumerate() {
                assert!(
                    *w <= 0.5 + bound * (1u32 << f) as f64,
                    "tanh form {tanh_form}, y_frac {f}: {w} LSB"
                );
            }
            // saturation: huge inputs give x (saturated to i16) or 0
            for f in [0u32, 7, 12, 15] {
                assert_eq!(gelu_q(i32::MIN, f, tanh_form), 0);
                assert_eq!(gelu_q(i32::MAX, f, tanh_form), i16::MAX);
                assert_eq!(gelu_q(-(40 << 12), f, tanh_form), 0);
                assert_eq!(gelu_q(0, f, tanh_form), 0);
            }
            assert_eq!(gelu_q(40 << 12, 8, tanh_form), 40 << 8);
        }
    }

    /// f32 exact GELU vs f64 on every 16th f32 in [0, 12] and its negative.
    #[cfg(all(feature = "f32", feature = "dense-net"))]
    #[test]
    fn f32_gelu_error() {
        let mut e = 0f64;
        let top = 12.0f32.to_bits();
        for b in (0..=top).step_by(16) {
            for x in [f32::from_bits(b), -f32::from_bits(b)] {
                e = e.max((gelu_f32(x) as f64 - gelu_exact(x as f64)).abs());
            }
        }
        println!("f32 exact GELU: max abs error {e:.3e} on [−12, 12]");
        assert!(e <= 3.9e-7, "{e}");
        for x in [10.0f32, 100.0, 1e30] {
            assert_eq!(gelu_f32(x), x);
        }
        for x in [-14.0f32, -100.0, -1e30] {
            assert!(gelu_f32(x) <= 0.0 && gelu_f32(x) > -1e-40, "{x}");
        }
    }

    #[test]
    fn f32_fast_error() {
        let (es, et) = f32_error(sigmoid_fast, tanh_fast);
        println!("f32 fast, grid: sigmoid max abs error {es:.3e}, tanh {et:.3e}");
        assert!(es <= 2.3e-7 && et <= 4.2e-7, "{es} {et}");
        // Dense sweep: every 16th f32 in [0, 12] and its negative (about 68 M inputs each),
        // against the exact function (f64) and against libm; oddness / symmetry bit for bit.
        let (mut es, mut et, mut el) = (0f64, 0f64, 0f64);
        let top = 12.0f32.to_bits();
        for b in (0..=top).step_by(16) {
            let x = f32::from_bits(b);
            let t = tanh_fast(x);
            assert_eq!(tanh_fast(-x).to_bits(), (-t).to_bits(), "tanh odd at {x}");
            let xd = x as f64;
            et = et.max((t as f64 - xd.tanh()).abs());
            el = el.max((t as f64 - libm::tanhf(x) as f64).abs());
            let s = 1.0 / (1.0 + (-xd).exp());
            es = es.max((sigmoid_fast(x) as f64 - s).abs());
            es = es.max((sigmoid_fast(-x) as f64 - (1.0 - s)).abs());
        }
        println!("f32 fast, dense: sigmoid {es:.3e}, tanh {et:.3e} (vs libm::tanhf {el:.3e})");
        assert!(
            es <= 2.3e-7 && et <= 4.2e-7 && el <= 4.2e-7,
            "{es} {et} {el}"
        );
        assert_eq!(sigmoid_fast(0.0), 0.5);
        assert_eq!(tanh_fast(0.0), 0.0);
        // beyond the clamp: within 2.4e-7 of ±1, and the outputs stay inside [0, 1] / [−1, 1]
        for x in [8.0f32, 100.0, 1e30, f32::INFINITY] {
            let t = tanh_fast(x);
            assert!(
                (1.0 - t) <= 2.4e-7 && t <= 1.0 && tanh_fast(-x) == -t,
                "{x}"
            );
            let (s0, s1) = (sigmoid_fast(-2.0 * x), sigmoid_fast(2.0 * x));
            assert!((0.0..=1.2e-7).contains(&s0) && (1.0 - s1) <= 1.2e-7 && s1 <= 1.0);
        }
        assert!(tanh_fast(f32::NAN).is_nan());
    }

    #[cfg(feature = "libm")]
    #[test]
    fn f32_accurate_error() {
        let (es, et) = f32_error(sigmoid_accurate, libm::tanhf);
        println!("f32 accurate: sigmoid max abs error {es:.3e}, tanh {et:.3e}");
        assert!(es <= 1.2e-7 && et <= 1.2e-7, "{es} {et}");
    }

    proptest! {
        #[test]
        fn tanh_odd_bounded_monotonic(x in any::<i32>(), y in any::<i32>()) {
            let (t, u) = (tanh_q(x), tanh_q(y));
            prop_assert!((-ACT_ONE..=ACT_ONE).contains(&t));
            prop_assert_eq!(tanh_q(x.saturating_neg()), -t);
            if x <= y { prop_assert!(t <= u); }
        }

        #[test]
        fn sigmoid_symmetric_bounded_monotonic(x in any::<i32>(), y in any::<i32>()) {
            let (s, u) = (sigmoid_q(x), sigmoid_q(y));
            prop_assert!((0..=ACT_ONE).contains(&s));
            let sum = s as i32 + sigmoid_q(x.saturating_neg()) as i32;
            prop_assert!((sum - 32768).abs() <= 1, "sum {}", sum);
            if x <= y { prop_assert!(s <= u); }
        }

        #[test]
        fn exp_monotonic_bounded(x in any::<i32>(), y in any::<i32>()) {
            let (e, f) = (exp_q(x), exp_q(y));
            prop_assert!(e <= 1 << 30);
            if x <= y { prop_assert!(e <= f); }
        }

        #[test]
        fn f32_fast_matches_within_bound(x in -30.0f32..30.0) {
            let xd = x as f64;
            prop_assert!((sigmoid_fast(x) as f64 - 1.0 / (1.0 + (-xd).exp())).abs() <= 2.3e-7);
            prop_assert!((tanh_fast(x) as f64 - xd.tanh()).abs() <= 4.2e-7);
        }
    }
}
