//! Fixed-point formats and the integer helpers every integer kernel uses.
//!
//! # The Q formats, in one place
//!
//! | quantity | storage | format | range | LSB |
//! |---|---|---|---|---|
//! | layer input `x` (int paths) | `i16` | Q(15−f).f, `f = x_frac` chosen per model by calibration | ±2^(15−f) | 2^−f |
//! | hidden state `h` of tanh/sigmoid cells (LSTM, GRU, tanh-RNN) | `i16` | [`Act`] = Q0.15 (`I1F15`) | [−1, 1) | 3.05e−5 |
//! | hidden state `h` of a ReLU RNN | `i16` | Q(15−f).f, `f = h_frac` chosen by calibration | ±2^(15−f) | 2^−f |
//! | LSTM `m = o ⊙ tanh(c)` (the projection's input) | `i16` | [`Act`] = Q0.15 | [−1, 1) | 3.05e−5 |
//! | hidden state `h = W_hr·m` of an LSTM with projection | `i16` | Q(15−f).f, `f = h_frac` chosen by calibration | ±2^(15−f) | 2^−f |
//! | LSTM cell clip | `i32` | [`CellState`] = Q16.15, > 0 | (0, 65536) | 3.05e−5 |
//! | gate pre-activation (input of sigmoid/tanh) | `i32` | [`Pre`] = Q19.12 (`I20F12`), clamped to ±16 by the activations | ±16 used | 2.44e−4 |
//! | activation output (sigmoid, tanh, softmax) | `i16` | [`Act`] = Q0.15 | [−1, 1) | 3.05e−5 |
//! | LSTM cell state `c` | `i32` | [`CellState`] = Q16.15 (`I17F15`), saturating | ±65536 | 3.05e−5 |
//! | int8 weights | `i8` | per output row: real = q · scale_row | | |
//! | int16 weights | `i16` | per output row: real = q · scale_row | | |
//! | int8-path accumulator, biases | `i32` | real = acc · scale_row · 2^−x_frac | no overflow: see below | |
//! | int16-path accumulator, biases | `i64` | as above | no overflow: see below | |
//! | output of the dense head (identity) | `i16` | Q(15−f).f, `f = out_frac` chosen by calibration | | |
//!
//! # Requantization
//!
//! An accumulator is brought to its target format by a per-row [`Requant`]: a positive
//! multiplier `mult` and a right shift `shift`, `y = round(acc · mult / 2^shift)`, computed
//! exactly in a wider integer (`i64` for `i32` accumulators, `i128` for `i64` ones), rounded
//! to nearest with ties toward +∞ (add half, then arithmetic shift right: no truncation bias),
//! then saturated to the target type. The host tool chooses `mult ∈ [2^30, 2^31)` and
//! `shift` so that `mult / 2^shift` is the row's real factor to 31 significant bits.
//!
//! # Overflow
//!
//! * int8 × int16 dot products: at most [`MAX_DIM`](crate::MAX_DIM) = 256 terms of
//!   |w·x| ≤ 128 · 32768 = 2^22, so |Σ| ≤ 2^30 fits `i32`; the bias is added with
//!   `saturating_add`.
//! * int16 × int16 dot products: ≤ 256 terms of ≤ 2^30 → |Σ| ≤ 2^38 in `i64`; bias added
//!   saturating.
//! * Everything narrower is produced by [`sat_i16`] or a saturating operation; nothing wraps.

use fixed::types::{I17F15, I1F15, I20F12};

/// Activation / hidden-state format of tanh- and sigmoid-bounded values: Q0.15.
pub type Act = I1F15;
/// Gate pre-activation format (input of sigmoid and tanh): Q19.12 in an `i32`.
pub type Pre = I20F12;
/// LSTM cell-state format: Q16.15 in an `i32`, saturating.
pub type CellState = I17F15;

/// Fractional bits of [`Act`].
pub const ACT_FRAC: u32 = 15;
/// Fractional bits of [`Pre`].
pub const PRE_FRAC: u32 = 12;
/// Fractional bits of [`CellState`].
pub const CELL_FRAC: u32 = 15;
/// The value 1.0 in [`Act`], saturated (`32767`).
pub const ACT_ONE: i16 = i16::MAX;

/// Per-row requantization parameters: `y = round(acc · mult / 2^shift)`.
///
/// Stored in the blob as 5 bytes per row: `mult` as `i32` little-endian, then `shift` as `u8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Requant {
    /// Multiplier, `> 0`. The host tool normalises it into `[2^30, 2^31)`.
    pub mult: i32,
    /// Right shift, `1..=62` for `i32` accumulators and `1..=94` for `i64` ones.
    pub shift: u8,
}

impl Requant {
    /// Bytes one `Requant` takes in the blob.
    pub const BYTES: usize = 5;

    /// Decodes record `row` of a packed requant table. The loader has checked the length.
    #[inline(always)]
    pub fn read(table: &[u8], row: usize) -> Requant {
        let b = &table[row * 5..row * 5 + 5];
        Requant {
            mult: i32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            shift: b[4],
        }
    }

    /// Decodes one 5-byte record (`mult` `i32` LE, then `shift`). Cannot panic.
    #[inline(always)]
    pub fn from_bytes(b: [u8; 5]) -> Requant {
        let [m0, m1, m2, m3, shift] = b;
        Requant {
            mult: i32::from_le_bytes([m0, m1, m2, m3]),
            shift,
        }
    }

    /// `round(acc · mult / 2^shift)` for an `i32` accumulator, saturated to `i32`.
    #[inline(always)]
    pub fn apply(self, acc: i32) -> i32 {
        let p = acc as i64 * self.mult as i64;
        let s = self.shift as u32;
        sat_i32((p + (1i64 << (s - 1))) >> s)
    }

    /// `round(acc · mult / 2^shift)` for an `i64` accumulator, saturated to `i32`.
    #[inline(always)]
    pub fn apply_wide(self, acc: i64) -> i32 {
        let p = acc as i128 * self.mult as i128;
        let s = self.shift as u32;
        let r = (p + (1i128 << (s - 1))) >> s;
        if r > i32::MAX as i128 {
            i32::MAX
        } else if r < i32::MIN as i128 {
            i32::MIN
        } else {
            r as i32
        }
    }
}

/// Saturates an `i32` to `i16`.
#[inline(always)]
pub fn sat_i16(v: i32) -> i16 {
    if v > i16::MAX as i32 {
        i16::MAX
    } else if v < i16::MIN as i32 {
        i16::MIN
    } else {
        v as i16
    }
}

/// Saturates an `i64` to `i32`.
#[inline(always)]
pub fn sat_i32(v: i64) -> i32 {
    if v > i32::MAX as i64 {
        i32::MAX
    } else if v < i32::MIN as i64 {
        i32::MIN
    } else {
        v as i32
    }
}

/// `round(v / 2^s)` with ties toward +∞, for `s` in `1..=31`.
#[inline(always)]
pub fn round_shr(v: i32, s: u32) -> i32 {
    ((v as i64 + (1i64 << (s - 1))) >> s) as i32
}

/// `round(a · b / 2^15)` for a Q0.15 factor `b`, exact in `i64`, saturated to `i32`.
#[inline(always)]
pub fn mul_q15(a: i32, b: i16) -> i32 {
    sat_i32((a as i64 * b as i64 + (1 << 14)) >> 15)
}

/// Quantizes a real value to `i16` with `frac` fractional bits: round to nearest
/// (ties away from zero), saturating; NaN maps to 0. Uses only IEEE-754 `f32` basic
/// operations, so it is bit-identical on every target.
#[inline]
pub fn quantize_f32(v: f32, frac: u32) -> i16 {
    // exact: power-of-two scaling; 2^frac built from its bits (no u32 → f32 conversion
    // routine on a core without an FPU)
    let s = v * f32::from_bits((127 + frac) << 23);
    let r = if s >= 0.0 { s + 0.5 } else { s - 0.5 };
    // `as` saturates and maps NaN to 0.
    let i = r as i32;
    sat_i16(i)
}

/// Dequantizes an integer with `frac` fractional bits (exact for |q| < 2^24); `frac` ≤ 126
/// (the blob formats have ≤ 15), larger gives ±0.
///
/// `q·2^−frac` as a product with the exact power of two: the correctly rounded `q / 2^frac`,
/// bit for bit, without the division and the `u64 → f32` conversion (on a core without an
/// FPU, `__aeabi_fdiv` and `__aeabi_ul2f` are not linked: −0.6 KB on the Cortex-M0).
#[inline]
pub fn dequantize(q: i32, frac: u32) -> f32 {
    q as f32 * f32::from_bits(127u32.saturating_sub(frac) << 23)
}

/// `min(⌊num / den⌋, 32767)`: the quotient of the integer softmax (`dense::softmax_q`) by
/// 15 steps of restoring division instead of a 64-bit divide (`__aeabi_uldivmod`, ~1 KB of
/// `.text` on a Cortex-M, and slower there). Exact for every `num` and `den`.
pub fn div_sat_q15(num: u64, den: core::num::NonZeroU64) -> i16 {
    let den = den.get();
    // ⌊num / 2^15⌋ ≥ den ⇔ num ≥ den·2^15 ⇔ the quotient saturates.
    if num >> 15 >= den {
        return i16::MAX;
    }
    let (mut r, mut q) = (num, 0u16);
    for b in (0..15).rev() {
        // ⌊r / 2^b⌋ ≥ den ⇔ r ≥ den·2^b (which then does not overflow).
        if r >> b >= den {
            r -= den << b;
            q |= 1 << b;
        }
    }
    q as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requant_rounds_to_nearest() {
        // factor 0.5: mult 2^30, shift 31
        let r = Requant {
            mult: 1 << 30,
            shift: 31,
        };
        assert_eq!(r.apply(3), 2); // 1.5 -> 2 (tie toward +inf)
        assert_eq!(r.apply(-3), -1); // -1.5 -> -1 (tie toward +inf)
        assert_eq!(r.apply(5), 3);
        assert_eq!(r.apply(4), 2);
        assert_eq!(r.apply(i32::MAX), 1 << 30);
        assert_eq!(r.apply_wide(3), 2);
        assert_eq!(r.apply_wide(1 << 40), i32::MAX);
    }

    #[test]
    fn requant_saturates() {
        let r = Requant {
            mult: i32::MAX,
            shift: 1,
        };
        assert_eq!(r.apply(i32::MAX), i32::MAX);
        assert_eq!(r.apply(i32::MIN), i32::MIN);
        assert_eq!(r.apply_wide(i64::MAX), i32::MAX);
        assert_eq!(r.apply_wide(i64::MIN), i32::MIN);
    }

    #[test]
    fn requant_mean_error_is_zero() {
        // Rounding to nearest: the mean error over a full period is exactly zero
        // except for the tie (+1/2 on one of 2^s residues).
        let r = Requant {
            mult: 1 << 30,
            shift: 33,
        }; // factor 1/8
        let mut err = 0i64;
        for acc in -4096..4096 {
            err += 8 * r.apply(acc) as i64 - acc as i64;
        }
        // ties (acc ≡ 4 mod 8) round up by 4/8 each: 1024 ties * 4 = 4096 in units of 1/8
        assert_eq!(err, 4096);
    }

    #[test]
    fn quantize_roundtrip() {
        assert_eq!(quantize_f32(0.5, 15), 16384);
        assert_eq!(quantize_f32(1.0, 15), i16::MAX);
        assert_eq!(quantize_f32(-1.0, 15), i16::MIN);
        assert_eq!(quantize_f32(-2.0, 15), i16::MIN);
        assert_eq!(quantize_f32(f32::NAN, 15), 0);
        assert_eq!(quantize_f32(1.25, 12), 5120);
        assert_eq!(quantize_f32(-0.00006, 15), -2);
        assert_eq!(dequantize(16384, 15), 0.5);
    }

    #[test]
    fn quantize_scale_is_the_power_of_two() {
        for frac in 0..32 {
            assert_eq!(f32::from_bits((127 + frac) << 23), (1u64 << frac) as f32);
        }
        assert_eq!(quantize_f32(0.3, 0), 0);
        assert_eq!(quantize_f32(-3.5, 0), -4);
        assert_eq!(quantize_f32(1.0 / 65536.0, 31), i16::MAX);
    }

    #[test]
    fn div_sat_q15_is_the_saturated_quotient() {
        use core::num::NonZeroU64;
        let check = |num: u64, den: u64| {
            let want = (num / den).min(32767) as i16;
            let got = div_sat_q15(num, NonZeroU64::new(den).unwrap());
            assert_eq!(got, want, "{num} / {den}");
        };
        for (num, den) in [
            (0, 1),
            (32767, 1),
            (32768, 1),
            (u64::MAX, 1),
            (u64::MAX, u64::MAX),
            (u64::MAX - 1, u64::MAX),
            (32767 * 7 + 6, 7),
            (32768 * 7, 7),
            (32768 * 7 - 1, 7),
            (1 << 45, (1 << 30) + 1),
            (u64::MAX, 1 << 49),
            (u64::MAX, (1 << 49) - 1),
            (u64::MAX >> 1, u64::MAX >> 15),
        ] {
            check(num, den);
        }
        // The softmax's range (numerators < 2^46, sums < 2^38) and beyond, random.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..200_000 {
            let (a, b, s) = (next(), next(), next());
            let num = a >> (s % 64);
            let den = (b >> ((s >> 8) % 64)).max(1);
            check(num, den);
            check(num, (num >> ((s >> 16) % 20)).max(1));
        }
    }

    #[test]
    fn dequantize_is_the_division_bit_for_bit() {
        let qs = [
            0,
            1,
            -1,
            3,
            -7,
            16_383,
            -32_768,
            32_767,
            (1 << 24) + 1, // not exact in f32: rounded once, then scaled exactly
            -(1 << 25) - 3,
            i32::MAX,
            i32::MIN,
        ];
        for frac in 0..64 {
            for &q in &qs {
                let want = q as f32 / (1u64 << frac) as f32;
                let got = dequantize(q, frac);
                assert_eq!(got.to_bits(), want.to_bits(), "q {q} frac {frac}");
            }
        }
        assert_eq!(dequantize(5, 126), 5.0 * f32::from_bits(1 << 23));
        assert_eq!(dequantize(5, 127), 0.0);
    }

    #[test]
    fn q15_products() {
        assert_eq!(mul_q15(1000, 16384), 500);
        assert_eq!(mul_q15(-1001, 16384), -500); // -500.5 -> -500
        assert_eq!(sat_i16(40000), i16::MAX);
        assert_eq!(sat_i16(-40000), i16::MIN);
        assert_eq!(round_shr(7, 2), 2);
        assert_eq!(round_shr(-6, 2), -1);
    }
}
