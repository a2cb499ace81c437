//! Scalar and tensor quantization helpers: Q-format choice, per-row symmetric weight
//! scales, accumulator-scale biases, `Requant` records and the blob's byte layouts.
//!
//! Everything is computed in `f64` and rounded to nearest (ties away from zero, `f64::round`);
//! every narrowing conversion saturates and is counted.

use tinyrnn::fxp::Requant;
use tinyrnn::model::pad4;

/// Largest `f` in `0..=15` with `maxabs · headroom · 2^f ≤ 32767`: the most fractional bits
/// an `i16` can carry for values up to `maxabs` (times a safety margin).
pub fn choose_frac(maxabs: f64, headroom: f64) -> u8 {
    let m = maxabs * headroom;
    (0..=15u8)
        .rev()
        .find(|&f| m * (1u64 << f) as f64 <= i16::MAX as f64)
        .unwrap_or(0)
}

/// `2^e` as `f64` (exact for the exponents used here).
pub fn pow2(e: i32) -> f64 {
    2f64.powi(e)
}

/// Rounds `v` to nearest and saturates to `[lo, hi]`, counting saturations in `sat`.
pub fn round_sat(v: f64, lo: i64, hi: i64, sat: &mut u64) -> i64 {
    let r = v.round();
    if r > hi as f64 {
        *sat += 1;
        hi
    } else if r < lo as f64 {
        *sat += 1;
        lo
    } else {
        r as i64
    }
}

/// `round(v · 2^frac)` saturated to `i16`.
pub fn q_i16(v: f64, frac: u8, sat: &mut u64) -> i16 {
    round_sat(v * pow2(frac as i32), i16::MIN as i64, i16::MAX as i64, sat) as i16
}

/// `round(v · 2^frac)` saturated to `i32`.
pub fn q_i32(v: f64, frac: u8, sat: &mut u64) -> i32 {
    round_sat(v * pow2(frac as i32), i32::MIN as i64, i32::MAX as i64, sat) as i32
}

/// Why a requantization factor cannot be encoded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FactorTooLarge(pub f64);

/// The [`Requant`] whose `mult / 2^shift` equals `factor` to 31 significant bits, with
/// `mult ∈ [2^30, 2^31)` and `1 ≤ shift ≤ max_shift`.
///
/// Factors too small for `max_shift` (a row whose contribution is below one output LSB for
/// any representable accumulator) keep `shift = max_shift` and a smaller `mult` (at least 1):
/// the result is then exact to the precision `2^-max_shift` allows.
pub fn requant(factor: f64, max_shift: u8) -> Result<Requant, FactorTooLarge> {
    if !(factor.is_finite() && factor > 0.0) {
        return Err(FactorTooLarge(factor));
    }
    // e with factor · 2^e ∈ [2^30, 2^31); log2 may be off by one near powers of two.
    let mut e = 30 - factor.log2().floor() as i32;
    while factor * pow2(e) >= pow2(31) {
        e -= 1;
    }
    while factor * pow2(e) < pow2(30) {
        e += 1;
    }
    let mut mult = (factor * pow2(e)).round() as i64;
    if mult == 1i64 << 31 {
        mult = 1 << 30;
        e -= 1;
    }
    if e < 1 {
        return Err(FactorTooLarge(factor));
    }
    if e > max_shift as i32 {
        let m = (factor * pow2(max_shift as i32)).round().max(1.0) as i64;
        return Ok(Requant {
            mult: m as i32,
            shift: max_shift,
        });
    }
    Ok(Requant {
        mult: mult as i32,
        shift: e as u8,
    })
}

/// Serializes requant records (5 bytes each: `mult` i32 LE, `shift` u8).
pub fn requant_bytes(rq: &[Requant]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rq.len() * Requant::BYTES);
    for r in rq {
        out.extend_from_slice(&r.mult.to_le_bytes());
        out.push(r.shift);
    }
    out
}

/// A weight matrix quantized per output row, with its bias in accumulator scale.
#[derive(Debug, Clone, PartialEq)]
pub struct RowQuant {
    /// `rows × cols` integer weights, row-major, unpadded.
    pub w: Vec<i32>,
    /// `rows` integer biases (accumulator scale).
    pub b: Vec<i64>,
    /// Real value of one weight LSB, per row.
    pub scale: Vec<f64>,
    /// Weights that saturated (0 by construction; kept as a check).
    pub w_sat: u64,
    /// Biases that saturated.
    pub b_sat: u64,
    /// Rows whose scale was widened beyond `max|w|/qmax` so that the bias fits.
    pub widened_rows: usize,
}

/// Quantizes `w` (`rows × cols`, row-major) symmetrically per row to `[-qmax, qmax]`
/// (scale `max|w_row| / qmax`) and `b` to the accumulator scale `scale_row · 2^-in_frac`,
/// bounded by `±bias_max` (a row's scale is widened when its bias would not fit).
pub fn quantize_rows(
    w: &[f32],
    b: &[f32],
    rows: usize,
    cols: usize,
    in_frac: u8,
    qmax: i64,
    bias_max: i64,
) -> RowQuant {
    let mut out = RowQuant {
        w: Vec::with_capacity(rows * cols),
        b: Vec::with_capacity(rows),
        scale: Vec::with_capacity(rows),
        w_sat: 0,
        b_sat: 0,
        widened_rows: 0,
    };
    let lsb_in = pow2(-(in_frac as i32));
    for r in 0..rows {
        let row = &w[r * cols..(r + 1) * cols];
        let wmax = row.iter().fold(0.0f64, |m, &v| m.max((v as f64).abs()));
        let bias = b[r] as f64;
        let s_w = wmax / qmax as f64;
        // |bias / (s · lsb_in)| ≤ bias_max
        let s_b = bias.abs() / (lsb_in * bias_max as f64);
        let mut s = s_w;
        if s_b > s_w {
            s = s_b;
            if wmax > 0.0 {
                out.widened_rows += 1;
            }
        }
        if s == 0.0 {
            // All-zero row and bias: any scale represents it exactly.
            s = 1.0 / qmax as f64;
        }
        for &v in row {
            out.w
                .push(round_sat(v as f64 / s, -qmax, qmax, &mut out.w_sat) as i32);
        }
        out.b.push(round_sat(
            bias / (s * lsb_in),
            -bias_max,
            bias_max,
            &mut out.b_sat,
        ));
        out.scale.push(s);
    }
    out
}

/// int8 matrix bytes: rows padded to `pad4(cols)`, each block of four columns stored in the
/// order `c0, c2, c1, c3` (the `SXTB16` / `SMLAD` interleave of the blob format).
pub fn pack_i8(q: &[i32], rows: usize, cols: usize) -> Vec<u8> {
    const POS: [usize; 4] = [0, 2, 1, 3];
    let cp = pad4(cols);
    let mut out = vec![0u8; rows * cp];
    for r in 0..rows {
        for c in 0..cols {
            let pos = c / 4 * 4 + POS[c % 4];
            out[r * cp + pos] = (q[r * cols + c] as i8) as u8;
        }
    }
    out
}

/// int16 matrix bytes: rows padded to `pad4(cols)`, natural order, little-endian.
pub fn pack_i16(q: &[i32], rows: usize, cols: usize) -> Vec<u8> {
    let cp = pad4(cols);
    let mut out = vec![0u8; rows * cp * 2];
    for r in 0..rows {
        for c in 0..cols {
            let i = (r * cp + c) * 2;
            out[i..i + 2].copy_from_slice(&(q[r * cols + c] as i16).to_le_bytes());
        }
    }
    out
}

/// f32 matrix bytes: rows padded to `pad4(cols)`, natural order, little-endian.
pub fn pack_f32(w: &[f32], rows: usize, cols: usize) -> Vec<u8> {
    let cp = pad4(cols);
    let mut out = vec![0u8; rows * cp * 4];
    for r in 0..rows {
        for c in 0..cols {
            let i = (r * cp + c) * 4;
            out[i..i + 4].copy_from_slice(&w[r * cols + c].to_le_bytes());
        }
    }
    out
}

/// f32 vector bytes, little-endian.
pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// i16 vector bytes, little-endian.
pub fn i16_bytes(v: &[i16]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// i32 vector bytes, little-endian.
pub fn i32_bytes(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frac_choice() {
        assert_eq!(choose_frac(0.0, 1.0), 15);
        assert_eq!(choose_frac(0.99, 1.0), 15);
        assert_eq!(choose_frac(1.0, 1.0), 14);
        assert_eq!(choose_frac(3.9, 1.0), 13);
        assert_eq!(choose_frac(4.5, 1.0), 12);
        assert_eq!(choose_frac(30000.0, 1.0), 0);
        assert_eq!(choose_frac(1e9, 1.0), 0);
    }

    #[test]
    fn requant_factors() {
        for &f in &[1.0, 0.5, 0.75, 1e-3, 3.0e-6, 123.456, 0.999_999_999_9] {
            let r = requant(f, 62).unwrap();
            assert!(r.mult >= 1 << 30, "{f}: {r:?}");
            let got = r.mult as f64 / pow2(r.shift as i32);
            assert!((got / f - 1.0).abs() < 1e-9, "{f}: {got}");
        }
        // 1.0 exactly: 2^30 / 2^30
        assert_eq!(
            requant(1.0, 62).unwrap(),
            Requant {
                mult: 1 << 30,
                shift: 30
            }
        );
        assert!(requant(2f64.powi(31), 62).is_err());
        assert!(requant(0.0, 62).is_err());
        assert!(requant(f64::NAN, 62).is_err());
        // Tiny factor: clamped to max_shift.
        let r = requant(1e-25, 62).unwrap();
        assert_eq!(r.shift, 62);
        assert!(r.mult >= 1);
    }

    #[test]
    fn int8_interleave() {
        let q: Vec<i32> = (1..=6).collect();
        // one row of 6 columns -> padded to 8: 1 3 2 4 | 5 0 6 0
        let b = pack_i8(&q, 1, 6);
        assert_eq!(b, vec![1, 3, 2, 4, 5, 0, 6, 0]);
        let b = pack_i8(&[-1, -128 + 1], 1, 2);
        assert_eq!(b, vec![0xff, 0, 0x81, 0]);
    }

    #[test]
    fn rows_and_bias() {
        let w = [0.5f32, -1.0, 0.25, 0.0, 0.0, 0.0];
        let b = [0.1f32, 0.0];
        let q = quantize_rows(&w, &b, 2, 3, 12, 127, 1 << 30);
        assert_eq!(&q.w[..3], &[64, -127, 32]);
        assert_eq!(&q.w[3..], &[0, 0, 0]);
        // bias 0.1 in units of (1/127) * 2^-12
        assert_eq!(q.b[0], (0.1f32 as f64 * 127.0 * 4096.0).round() as i64);
        assert_eq!(q.w_sat + q.b_sat, 0);
        // a huge bias widens the scale
        let q = quantize_rows(&[1e-6, 1e-6], &[100.0], 1, 2, 15, 127, 1 << 30);
        assert_eq!(q.widened_rows, 1);
        assert!(q.b[0].abs() <= 1 << 30);
    }
}
