//! `--normalize STATS`: per-feature training statistics folded into the model's
//! normalization `x = (raw − mean) / std`.
//!
//! Accepted: JSON `{"mean": [...], "std": [...]}` or a `.npy` `[2, F]` array (row 0 the
//! mean, row 1 the standard deviation). Every std must be finite and `> 0`.

use std::path::Path;

use anyhow::{anyhow, bail, Result};

use crate::data;
use crate::ir::Norm;

fn finite_f32(v: f64, what: &str, i: usize) -> Result<f32> {
    let x = v as f32;
    if !x.is_finite() {
        bail!("{what}[{i}] = {v} is not a finite float32");
    }
    Ok(x)
}

/// Builds a [`Norm`] from mean and std vectors.
///
/// # Errors
/// Lengths differing from `features`, non-finite values, a std `≤ 0`.
pub fn from_mean_std(mean: &[f64], std: &[f64], features: usize) -> Result<Norm> {
    if mean.len() != features || std.len() != features {
        bail!(
            "the statistics have {} means and {} stds but the model has {features} input features",
            mean.len(),
            std.len()
        );
    }
    let mut offset = Vec::with_capacity(features);
    let mut scale = Vec::with_capacity(features);
    for i in 0..features {
        offset.push(finite_f32(mean[i], "mean", i)?);
        let s = std[i];
        if !(s.is_finite() && s > 0.0) {
            bail!("std[{i}] = {s} must be finite and > 0");
        }
        scale.push(finite_f32(1.0 / s, "1/std", i)?);
    }
    Ok(Norm { offset, scale })
}

fn json_vec(v: &serde_json::Value, key: &str) -> Result<Vec<f64>> {
    let arr = v.get(key).and_then(|a| a.as_array()).ok_or_else(|| {
        anyhow!("no \"{key}\" array (expected {{\"mean\": [...], \"std\": [...]}})")
    })?;
    arr.iter()
        .enumerate()
        .map(|(i, x)| {
            x.as_f64()
                .ok_or_else(|| anyhow!("\"{key}\"[{i}] is not a number"))
        })
        .collect()
}

/// Parses statistics from bytes (JSON or `.npy`).
///
/// # Errors
/// As [`load_stats`], without the file name.
pub fn parse_stats(bytes: &[u8], features: usize) -> Result<Norm> {
    if bytes.is_empty() {
        bail!("the file is empty");
    }
    if bytes.starts_with(b"\x93NUMPY") {
        let a = data::parse_array(bytes)?;
        if a.shape.len() != 2 || a.shape[0] != 2 {
            bail!(
                "a .npy of statistics must have shape [2, F] (mean row, std row), got {}",
                data::fmt_shape(&a.shape)
            );
        }
        let f = a.shape[1];
        return from_mean_std(&a.data[..f], &a.data[f..], features);
    }
    let v: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| anyhow!("neither a .npy file nor valid JSON: {e}"))?;
    from_mean_std(&json_vec(&v, "mean")?, &json_vec(&v, "std")?, features)
}

/// Reads `--normalize` statistics for a model with `features` inputs.
///
/// # Errors
/// Unreadable file, malformed JSON/.npy, wrong lengths, a std `≤ 0` or non-finite value;
/// the message names the file.
pub fn load_stats(path: &Path, features: usize) -> Result<Norm> {
    let bytes = data::read_file(path)?;
    parse_stats(&bytes, features).map_err(|e| anyhow!("{}: {e:#}", path.display()))
}

/// The normalization that applies `outer` to the raw frame and then `inner`
/// (`inner((raw − o₁)·s₁)` as one `(raw − o)·s`).
pub fn compose(outer: &Norm, inner: &Norm) -> Norm {
    let mut offset = Vec::with_capacity(outer.offset.len());
    let mut scale = Vec::with_capacity(outer.offset.len());
    for i in 0..outer.offset.len() {
        let (o1, s1) = (outer.offset[i] as f64, outer.scale[i] as f64);
        let (o2, s2) = (inner.offset[i] as f64, inner.scale[i] as f64);
        // ((raw − o1)·s1 − o2)·s2 = (raw − (o1 + o2/s1))·(s1·s2)
        offset.push((o1 + o2 / s1) as f32);
        scale.push((s1 * s2) as f32);
    }
    Norm { offset, scale }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_stats() {
        let n = parse_stats(br#"{"mean":[1,2],"std":[2,4]}"#, 2).unwrap();
        assert_eq!(n.offset, vec![1.0, 2.0]);
        assert_eq!(n.scale, vec![0.5, 0.25]);
        assert!(parse_stats(br#"{"mean":[1],"std":[2,4]}"#, 2).is_err());
        assert!(parse_stats(br#"{"mean":[1,2],"std":[0,4]}"#, 2).is_err());
    }

    #[test]
    fn npy_stats_and_compose() {
        let b = data::npy_bytes_f32(&[2, 2], &[1.0, 2.0, 2.0, 4.0]).unwrap();
        let n = parse_stats(&b, 2).unwrap();
        let inner = Norm {
            offset: vec![0.5, -1.0],
            scale: vec![3.0, 2.0],
        };
        let c = compose(&n, &inner);
        for (i, raw) in [7.0f64, -3.0].iter().enumerate() {
            let two = ((raw - n.offset[i] as f64) * n.scale[i] as f64 - inner.offset[i] as f64)
                * inner.scale[i] as f64;
            let one = (raw - c.offset[i] as f64) * c.scale[i] as f64;
            assert!((one - two).abs() < 1e-6);
        }
    }
}
