//! `.npy` input and output: sequences, labels, lengths and model outputs.
//!
//! Every reader names the file in its errors; non-finite values are rejected with the file
//! and the index (`[n, t, f]`) of the first one; shape errors name the shapes involved.
//! Files are written through [`crate::output`] (atomic, never over an input).

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use npyz::{DType, NpyFile, TypeChar, WriterBuilder};

/// A batch of equally long (possibly zero-padded) sequences, batch-first, `f32`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sequences {
    /// Number of sequences `N`.
    pub n: usize,
    /// Frames per sequence `T` (the padded length).
    pub t: usize,
    /// Features per frame `F`.
    pub f: usize,
    /// `[N, T, F]` row-major.
    pub data: Vec<f32>,
    /// The file held a single `[T, F]` sequence (read as `N = 1`).
    pub single: bool,
}

impl Sequences {
    /// Wraps `[N, T, F]` data.
    ///
    /// # Panics
    /// If `data.len() != n·t·f` (programming error).
    pub fn new(n: usize, t: usize, f: usize, data: Vec<f32>) -> Self {
        assert_eq!(data.len(), n * t * f, "Sequences::new: length mismatch");
        Sequences {
            n,
            t,
            f,
            data,
            single: false,
        }
    }

    /// Sequence `i` as `[T, F]` row-major.
    pub fn seq(&self, i: usize) -> &[f32] {
        &self.data[i * self.t * self.f..(i + 1) * self.t * self.f]
    }

    /// Frame `t` of sequence `i` (`F` values).
    pub fn frame(&self, i: usize, t: usize) -> &[f32] {
        let o = (i * self.t + t) * self.f;
        &self.data[o..o + self.f]
    }

    /// The first `len` frames of sequence `i`, one slice per frame.
    pub fn frames(&self, i: usize, len: usize) -> Vec<&[f32]> {
        (0..len).map(|t| self.frame(i, t)).collect()
    }

    /// Checks that the frames have `features` values each.
    ///
    /// # Errors
    /// A one-line message naming both shapes.
    pub fn expect_features(&self, features: usize, what: &str) -> Result<()> {
        if self.f != features {
            bail!(
                "the input has {} features per frame (shape [{}, {}, {}]) but {what} expects {features}",
                self.f,
                self.n,
                self.t,
                self.f
            );
        }
        Ok(())
    }
}

/// A numeric `.npy` array read as `f64` (floats, ints and bools), with its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Values, C order.
    pub data: Vec<f64>,
    /// The file's dtype was an integer (or bool) type.
    pub is_int: bool,
}

fn shape_str(shape: &[usize]) -> String {
    let v: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", v.join(", "))
}

/// Formats a shape as `[a, b, c]` (for messages).
pub fn fmt_shape(shape: &[usize]) -> String {
    shape_str(shape)
}

/// Reads a whole file, naming it in the error.
///
/// # Errors
/// Missing or unreadable file.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Reads any numeric `.npy` file (C order, no pickles) as `f64`.
///
/// # Errors
/// Missing, empty, truncated or malformed files, unsupported dtypes, Fortran order.
pub fn read_array(path: &Path) -> Result<Array> {
    let bytes = read_file(path)?;
    parse_array(&bytes).with_context(|| format!("{}", path.display()))
}

/// Parses the bytes of a `.npy` file (see [`read_array`]).
///
/// # Errors
/// As [`read_array`], without the file name.
pub fn parse_array(bytes: &[u8]) -> Result<Array> {
    if bytes.is_empty() {
        bail!("the file is empty (not a .npy file)");
    }
    if !bytes.starts_with(b"\x93NUMPY") {
        bail!("not a .npy file (no \\x93NUMPY magic)");
    }
    check_shape(bytes)?;
    let npy = NpyFile::new(bytes).map_err(|e| anyhow!("malformed .npy header: {e}"))?;
    if npy.order() != npyz::Order::C {
        bail!("Fortran-order arrays are not supported (save with np.ascontiguousarray)");
    }
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| anyhow!("shape {} is too large", shape_str(&shape)))?;
    let dtype = npy.dtype();
    let ts = match &dtype {
        DType::Plain(ts) => ts.clone(),
        _ => bail!(
            "unsupported dtype {} (expected a plain numeric type)",
            dtype.descr()
        ),
    };
    let trunc = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            anyhow!(
                "the file is truncated (shape {} needs more data)",
                shape_str(&shape)
            )
        } else {
            anyhow!("cannot decode the data: {e}")
        }
    };
    let (data, is_int): (Vec<f64>, bool) = match (ts.type_char(), ts.size_field()) {
        (TypeChar::Float, 4) => (
            npy.into_vec::<f32>()
                .map_err(trunc)?
                .into_iter()
                .map(f64::from)
                .collect(),
            false,
        ),
        (TypeChar::Float, 8) => (npy.into_vec::<f64>().map_err(trunc)?, false),
        (TypeChar::Float, 2) => bail!("float16 arrays are not supported: save as float32"),
        (TypeChar::Int, 8) => (
            npy.into_vec::<i64>()
                .map_err(trunc)?
                .into_iter()
                .map(|v| v as f64)
                .collect(),
            true,
        ),
        (TypeChar::Int, 4) => (
            npy.into_vec::<i32>()
                .map_err(trunc)?
                .into_iter()
                .map(f64::from)
                .collect(),
            true,
        ),
        (TypeChar::Int, 2) => (
            npy.into_vec::<i16>()
                .map_err(trunc)?
                .into_iter()
                .map(f64::from)
                .collect(),
            true,
        ),
        (TypeChar::Int, 1) => (
            npy.into_vec::<i8>()
                .map_err(trunc)?
                .into_iter()
                .map(f64::from)
                .collect(),
            true,
        ),
        (TypeChar::Uint, 8) => (
            npy.into_vec::<u64>()
                .map_err(trunc)?
                .into_iter()
                .map(|v| v as f64)
                .collect(),
            true,
        ),
        (TypeChar::Uint, 4) => (
            npy.into_vec::<u32>()
                .map_err(trunc)?
                .into_iter()
                .map(f64::from)
                .collect(),
            true,
        ),
        (TypeChar::Uint, 2) => (
            npy.into_vec::<u16>()
                .map_err(trunc)?
                .into_iter()
                .map(f64::from)
                .collect(),
            true,
        ),
        (TypeChar::Uint, 1) => (
            npy.into_vec::<u8>()
                .map_err(trunc)?
                .into_iter()
                .map(f64::from)
                .collect(),
            true,
        ),
        (TypeChar::Bool, 1) => (
            npy.into_vec::<bool>()
                .map_err(trunc)?
                .into_iter()
                .map(|b| b as u8 as f64)
                .collect(),
            true,
        ),
        _ => bail!("unsupported dtype {}", dtype.descr()),
    };
    if data.len() != count {
        bail!(
            "the file holds {} values but its shape {} needs {count}",
            data.len(),
            shape_str(&shape)
        );
    }
    Ok(Array {
        shape,
        data,
        is_int,
    })
}

/// Checks the shape in a `.npy` header before the data is decoded: every dimension a
/// non-negative integer whose product (in checked arithmetic) is at most the number of data
/// bytes, so that no size computed from the shape later can overflow or claim more memory
/// than the file holds. A header this check cannot find a shape in is left to the decoder
/// (which refuses it).
fn check_shape(bytes: &[u8]) -> Result<()> {
    let le = |r: std::ops::Range<usize>| -> Result<usize> {
        let b = bytes
            .get(r)
            .ok_or_else(|| anyhow!("malformed .npy header: the file ends inside the preamble"))?;
        Ok(b.iter().rev().fold(0usize, |a, &x| (a << 8) | x as usize))
    };
    let (len, start) = match bytes.get(6) {
        Some(1) => (le(8..10)?, 10usize),
        Some(2) | Some(3) => (le(8..12)?, 12),
        Some(v) => bail!("unsupported .npy format version {v}"),
        None => bail!("malformed .npy header: the file ends inside the preamble"),
    };
    let end = start
        .checked_add(len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| {
            anyhow!(
                "malformed .npy header: its length ({len} bytes) runs past the end of the file ({} bytes)",
                bytes.len()
            )
        })?;
    let header = String::from_utf8_lossy(&bytes[start..end]);
    let Some(at) = header.find("'shape'").or_else(|| header.find("\"shape\"")) else {
        return Ok(());
    };
    let rest = header[at + 7..].trim_start();
    let Some(rest) = rest.strip_prefix(':').map(str::trim_start) else {
        return Ok(());
    };
    let Some(tuple) = rest.strip_prefix('(').and_then(|r| r.split_once(')')) else {
        return Ok(());
    };
    let mut count = 1u64;
    for d in tuple.0.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let v: u64 = d.parse().map_err(|_| {
            anyhow!(
                "malformed .npy header: shape ({}) is not a tuple of non-negative integers",
                tuple.0
            )
        })?;
        count = count.checked_mul(v).ok_or_else(|| {
            anyhow!(
                "shape ({}) has more elements than a 64-bit count holds",
                tuple.0
            )
        })?;
    }
    let data = (bytes.len() - end) as u64;
    if count > data {
        bail!(
            "the file is truncated or its header is corrupt: shape ({}) needs {count} values \
             but the file holds {data} bytes of data",
            tuple.0
        );
    }
    Ok(())
}

/// Index of flat position `i` in `shape`, as `[a, b, c]`.
pub fn unravel(mut i: usize, shape: &[usize]) -> String {
    let mut idx = vec![0; shape.len()];
    for (k, &d) in shape.iter().enumerate().rev() {
        if d > 0 {
            idx[k] = i % d;
            i /= d;
        }
    }
    shape_str(&idx)
}

/// Reads input sequences: float32/float64 `[N, T, F]`, or one `[T, F]` sequence.
///
/// # Errors
/// Unreadable or malformed file, integer dtype, wrong rank, empty dimension, NaN/inf
/// (named by file and index), values that overflow `f32`.
pub fn read_inputs(path: &Path) -> Result<Sequences> {
    let (x, overflow) = read_unchecked(path)?;
    check_frames(path, &x, &overflow, None)?;
    Ok(x)
}

/// Reads input sequences and, with `lengths`, their true lengths (see [`read_lengths`]).
/// Only the frames within each sequence's length must be finite: the zero padding past it
/// is never read, so it may hold anything.
///
/// # Errors
/// As [`read_inputs`] and [`read_lengths`].
pub fn read_inputs_lengths(
    path: &Path,
    lengths: Option<&Path>,
) -> Result<(Sequences, Option<Vec<usize>>)> {
    let (x, overflow) = read_unchecked(path)?;
    let l = match lengths {
        Some(lp) => Some(read_lengths(lp, x.n, x.t)?),
        None => None,
    };
    check_frames(path, &x, &overflow, l.as_deref())?;
    Ok((x, l))
}

/// Reads `[N, T, F]` / `[T, F]` float data as `f32` without checking the values. Finite
/// values beyond `f32` become infinite; they are returned too (flat index, value) for
/// [`check_frames`]'s message.
fn read_unchecked(path: &Path) -> Result<(Sequences, Vec<(usize, f64)>)> {
    let a = read_array(path)?;
    if a.is_int {
        bail!(
            "{}: inputs must be float32 or float64, not an integer array",
            path.display()
        );
    }
    let (n, t, f, single) = match a.shape[..] {
        [n, t, f] => (n, t, f, false),
        [t, f] => (1, t, f, true),
        _ => bail!(
            "{}: inputs must have shape [N, T, F] (or [T, F]), got {}",
            path.display(),
            shape_str(&a.shape)
        ),
    };
    if n == 0 || t == 0 || f == 0 {
        bail!(
            "{}: inputs have an empty dimension: shape {}",
            path.display(),
            shape_str(&a.shape)
        );
    }
    let data: Vec<f32> = a.data.iter().map(|&v| v as f32).collect();
    let overflow = a
        .data
        .iter()
        .zip(&data)
        .enumerate()
        .filter(|(_, (o, v))| o.is_finite() && !v.is_finite())
        .map(|(j, (&o, _))| (j, o))
        .collect();
    Ok((
        Sequences {
            n,
            t,
            f,
            data,
            single,
        },
        overflow,
    ))
}

/// Every value of the frames in use (all, or the first `lengths[i]` of sequence `i`) is a
/// finite `f32`. The message names the file, the index in the file, and the sequence,
/// frame and feature; `overflow` lists the finite values of the file that `f32` cannot hold.
fn check_frames(
    path: &Path,
    x: &Sequences,
    overflow: &[(usize, f64)],
    lengths: Option<&[usize]>,
) -> Result<()> {
    for i in 0..x.n {
        let len = lengths.map_or(x.t, |l| l[i]);
        for t in 0..len {
            for (k, &v) in x.frame(i, t).iter().enumerate() {
                if v.is_finite() {
                    continue;
                }
                let idx = if x.single {
                    format!("[{t}, {k}]")
                } else {
                    format!("[{i}, {t}, {k}]")
                };
                let at = format!("(sequence {i}, frame {t}, feature {k})");
                let flat = (i * x.t + t) * x.f + k;
                match overflow.iter().find(|(j, _)| *j == flat) {
                    Some((_, o)) => bail!(
                        "{}: value {o:e} at index {idx} {at} is out of range: it overflows float32",
                        path.display()
                    ),
                    None => bail!(
                        "{}: non-finite value {v} at index {idx} {at}",
                        path.display()
                    ),
                }
            }
        }
    }
    Ok(())
}

/// Reads a 1-D integer array (int64/int32/…) of `[N]` values.
fn read_ints(path: &Path, what: &str, n: Option<usize>) -> Result<Vec<i64>> {
    let a = read_array(path)?;
    if !a.is_int {
        bail!(
            "{}: {what} must be an integer array (int64 or int32)",
            path.display()
        );
    }
    let len = match a.shape[..] {
        [len] => len,
        _ => bail!(
            "{}: {what} must have shape [N], got {}",
            path.display(),
            shape_str(&a.shape)
        ),
    };
    if let Some(n) = n {
        if len != n {
            bail!(
                "{}: {what} has shape [{len}] but the inputs hold {n} sequences",
                path.display()
            );
        }
    }
    Ok(a.data.iter().map(|&v| v as i64).collect())
}

/// Reads class labels: int64/int32 `[N]`, each `≥ 0`. With `n`, the count must match.
///
/// # Errors
/// As [`read_array`]; a float array, a wrong shape, a negative label.
pub fn read_labels(path: &Path, n: Option<usize>) -> Result<Vec<usize>> {
    let v = read_ints(path, "labels", n)?;
    v.iter()
        .enumerate()
        .map(|(i, &l)| {
            usize::try_from(l)
                .map_err(|_| anyhow!("{}: negative label {l} at index [{i}]", path.display()))
        })
        .collect()
}

/// Reads sequence lengths: int `[N]`, each in `1..=t`.
///
/// # Errors
/// As [`read_array`]; a float array, a wrong shape, a length out of range.
pub fn read_lengths(path: &Path, n: usize, t: usize) -> Result<Vec<usize>> {
    let v = read_ints(path, "lengths", Some(n))?;
    v.iter()
        .enumerate()
        .map(|(i, &l)| {
            if l < 1 || l as u64 > t as u64 {
                bail!(
                    "{}: length {l} at index [{i}] is outside 1..={t} (the inputs have T = {t})",
                    path.display()
                );
            }
            Ok(l as usize)
        })
        .collect()
}

/// Serializes an `f32` array as `.npy` bytes.
///
/// # Errors
/// If `shape` does not match `data.len()`.
pub fn npy_bytes_f32(shape: &[usize], data: &[f32]) -> Result<Vec<u8>> {
    if shape.iter().product::<usize>() != data.len() {
        bail!(
            "internal: shape {} does not hold {} values",
            shape_str(shape),
            data.len()
        );
    }
    let mut buf = Vec::new();
    {
        let shape64: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        let mut w = npyz::WriteOptions::<f32>::new()
            .default_dtype()
            .shape(&shape64)
            .writer(&mut buf)
            .begin_nd()?;
        w.extend(data.iter().copied())?;
        w.finish()?;
    }
    Ok(buf)
}

/// Serializes an `i64` array as `.npy` bytes.
///
/// # Errors
/// If `shape` does not match `data.len()`.
pub fn npy_bytes_i64(shape: &[usize], data: &[i64]) -> Result<Vec<u8>> {
    if shape.iter().product::<usize>() != data.len() {
        bail!(
            "internal: shape {} does not hold {} values",
            shape_str(shape),
            data.len()
        );
    }
    let mut buf = Vec::new();
    {
        let shape64: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        let mut w = npyz::WriteOptions::<i64>::new()
            .default_dtype()
            .shape(&shape64)
            .writer(&mut buf)
            .begin_nd()?;
        w.extend(data.iter().copied())?;
        w.finish()?;
    }
    Ok(buf)
}

/// Writes an `f32` array `.npy` file with [`crate::output::write_atomic`] (e.g. `[N, C]`
/// or `[N, T, C]`) for a command reading `inputs`.
///
/// # Errors
/// As [`crate::output::write_atomic`] (an existing file is left untouched).
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32], inputs: &[&Path]) -> Result<()> {
    let bytes = npy_bytes_f32(shape, data)?;
    crate::output::write_atomic(path, &bytes, inputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_f32() {
        let b = npy_bytes_f32(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.5]).unwrap();
        let a = parse_array(&b).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.data[5], 6.5);
        assert!(!a.is_int);
        let b = npy_bytes_i64(&[3], &[1, -2, 3]).unwrap();
        let a = parse_array(&b).unwrap();
        assert!(a.is_int);
        assert_eq!(a.data, vec![1.0, -2.0, 3.0]);
    }

    #[test]
    fn truncated_and_empty() {
        let b = npy_bytes_f32(&[2, 3], &[0.0; 6]).unwrap();
        let e = parse_array(&b[..b.len() - 3]).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
        assert!(parse_array(&[]).is_err());
        assert!(parse_array(b"hello world").is_err());
    }

    #[test]
    fn unravel_index() {
        assert_eq!(unravel(7, &[2, 3, 2]), "[1, 0, 1]");
    }
}
