//! Constant tensors of the ONNX importer: decoding `TensorProto`s and the few n-d operations
//! the glue of an exported graph needs (constant folding). Values are held as `f64` (exact
//! for `f32` weights and for any index below 2^53).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, bail, Result};

use super::proto::{dtype, TensorProto};

/// Bytes per element of the data types read from `raw_data` / external data.
fn elem_size(dt: i32) -> Option<usize> {
    match dt {
        dtype::FLOAT | dtype::INT32 | dtype::UINT32 => Some(4),
        dtype::DOUBLE | dtype::INT64 | dtype::UINT64 => Some(8),
        dtype::FLOAT16 | dtype::BFLOAT16 | dtype::INT16 | dtype::UINT16 => Some(2),
        dtype::INT8 | dtype::UINT8 | dtype::BOOL => Some(1),
        _ => None,
    }
}

/// ONNX external data: tensors whose bytes live in a separate file next to the model
/// (`model.onnx` + `model.onnx.data`, what `torch.onnx.export`'s default exporter writes).
///
/// Each such tensor carries `external_data` entries: `location` (a path relative to the
/// model file's folder), `offset` (default 0) and `length` (default: the size that the dims
/// and the data type give). Only the `length` bytes at `offset` are read. Refused, with one
/// line naming the tensor: an absolute `location`, a `location` with `..` or one that
/// resolves (through symlinks) outside the model's folder, a missing or non-regular file,
/// an `offset + length` past the end of the file, and a `length` that disagrees with the
/// dims × element size. A `checksum` entry is not verified; other keys are ignored.
#[derive(Debug, Clone)]
pub struct ExternalData {
    dir: PathBuf,
}

impl ExternalData {
    /// External data of the model file `model_path`: locations are relative to its folder.
    pub fn beside(model_path: &Path) -> Self {
        let dir = match model_path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        ExternalData { dir }
    }

    /// The `bytes` bytes of tensor `t`'s external data.
    ///
    /// # Errors
    /// See the type's docs; I/O errors.
    pub fn read(&self, t: &TensorProto, bytes: usize) -> Result<Vec<u8>> {
        let name = &t.name;
        let (mut location, mut offset, mut length) = (None, None, None);
        for e in &t.external_data {
            let num = || {
                e.value.trim().parse::<u64>().map_err(|_| {
                    anyhow!(
                        "tensor `{name}`: external data {} `{}` is not a byte count",
                        e.key,
                        e.value
                    )
                })
            };
            match e.key.as_str() {
                "location" => location = Some(e.value.as_str()),
                "offset" => offset = Some(num()?),
                "length" => length = Some(num()?),
                _ => {}
            }
        }
        let location = match location {
            Some(l) if !l.is_empty() => l,
            _ => bail!("tensor `{name}` is marked as external data but has no `location`"),
        };
        let rel = Path::new(location);
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| matches!(c, Component::RootDir | Component::Prefix(_)))
        {
            bail!(
                "tensor `{name}`: external data location `{location}` is an absolute path; only paths relative to the model's folder are read"
            );
        }
        if rel.components().any(|c| c == Component::ParentDir) {
            bail!(
                "tensor `{name}`: external data location `{location}` leaves the model's folder (`..`); only files inside it are read"
            );
        }
        let dir = std::fs::canonicalize(&self.dir).map_err(|e| {
            anyhow!(
                "tensor `{name}`: cannot resolve the model's folder {}: {e}",
                self.dir.display()
            )
        })?;
        let path = self.dir.join(rel);
        let real = match std::fs::canonicalize(&path) {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "tensor `{name}`: external data file {} not found (it must be next to the model, as the exporter wrote it)",
                path.display()
            ),
            Err(e) => bail!(
                "tensor `{name}`: external data file {}: {e}",
                path.display()
            ),
        };
        if !real.starts_with(&dir) {
            bail!(
                "tensor `{name}`: external data location `{location}` resolves to {}, outside the model's folder {} (a symlink?); only files inside it are read",
                real.display(),
                dir.display()
            );
        }
        let meta = std::fs::metadata(&real).map_err(|e| {
            anyhow!(
                "tensor `{name}`: external data file {}: {e}",
                path.display()
            )
        })?;
        if !meta.is_file() {
            bail!(
                "tensor `{name}`: external data location {} is not a regular file",
                path.display()
            );
        }
        let offset = offset.unwrap_or(0);
        let length = length.unwrap_or(bytes as u64);
        if length != bytes as u64 {
            bail!(
                "tensor `{name}`: external data length {length} bytes, but its dims {:?} and data type {} need {bytes} bytes",
                t.dims,
                t.data_type
            );
        }
        let end = offset.checked_add(length).ok_or_else(|| {
            anyhow!("tensor `{name}`: external data offset {offset} + length {length} overflows")
        })?;
        if end > meta.len() {
            bail!(
                "tensor `{name}`: external data {} is {} bytes, but offset {offset} + length {length} = {end} runs past its end (a truncated or mismatched .data file?)",
                path.display(),
                meta.len()
            );
        }
        let mut buf = vec![0u8; bytes];
        if bytes > 0 {
            let mut f = File::open(&real).map_err(|e| {
                anyhow!(
                    "tensor `{name}`: external data file {}: {e}",
                    path.display()
                )
            })?;
            f.seek(SeekFrom::Start(offset))
                .and_then(|_| f.read_exact(&mut buf))
                .map_err(|e| {
                    anyhow!(
                        "tensor `{name}`: reading {bytes} bytes at offset {offset} of {}: {e}",
                        path.display()
                    )
                })?;
        }
        Ok(buf)
    }
}

/// Most elements of a constant the importer builds from a shape in the file (`2^24`, 128 MiB
/// of `f64`; the largest weight of a model the runtime accepts has `4·256·256`).
pub const MAX_ELEMENTS: usize = 1 << 24;

/// A constant tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Dimensions (empty for a scalar).
    pub dims: Vec<usize>,
    /// Values, C order.
    pub data: Vec<f64>,
    /// Integer (or bool) element type.
    pub int: bool,
}

fn le<const N: usize>(c: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&c[..N]);
    a
}

impl Tensor {
    /// A scalar or tensor of `dims` with `data`.
    pub fn new(dims: Vec<usize>, data: Vec<f64>, int: bool) -> Self {
        Tensor { dims, data, int }
    }

    /// An integer 1-D tensor.
    pub fn ints(v: &[i64]) -> Self {
        Tensor::new(vec![v.len()], v.iter().map(|&x| x as f64).collect(), true)
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Values as `i64` (indices, axes, shapes).
    pub fn as_i64(&self) -> Vec<i64> {
        self.data.iter().map(|&v| v as i64).collect()
    }

    /// Values as `f32`.
    pub fn as_f32(&self) -> Vec<f32> {
        self.data.iter().map(|&v| v as f32).collect()
    }

    /// Decodes a `TensorProto` whose data is inside the model file.
    ///
    /// # Errors
    /// External data (use [`Tensor::from_proto_in`]), unsupported element types, element
    /// counts that do not match the dims.
    pub fn from_proto(t: &TensorProto) -> Result<Tensor> {
        Self::from_proto_in(t, None)
    }

    /// Decodes a `TensorProto`, reading external data (if the tensor has any) through `ext`.
    ///
    /// # Errors
    /// As [`Tensor::from_proto`], plus every refusal of [`ExternalData::read`]; external
    /// data with `ext = None`.
    pub fn from_proto_in(t: &TensorProto, ext: Option<&ExternalData>) -> Result<Tensor> {
        let dims: Vec<usize> = t
            .dims
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| anyhow!("tensor `{}` has dim {d}", t.name)))
            .collect::<Result<_>>()?;
        let count = dims
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| anyhow!("tensor `{}` is too large", t.name))?;
        let external;
        let raw: &[u8] = if t.data_location == 1 || !t.external_data.is_empty() {
            let Some(ext) = ext else {
                bail!(
                    "tensor `{}` is stored as external data, but the model file's folder is not known (load the model from its file)",
                    t.name
                );
            };
            let size = elem_size(t.data_type).ok_or_else(|| {
                anyhow!(
                    "tensor `{}` has unsupported data type {}",
                    t.name,
                    t.data_type
                )
            })?;
            let bytes = count
                .checked_mul(size)
                .ok_or_else(|| anyhow!("tensor `{}` is too large", t.name))?;
            external = ext.read(t, bytes)?;
            if external.is_empty() {
                // An empty tensor: nothing was read, and `raw` must not fall back to the
                // typed fields below.
                return Ok(Tensor {
                    dims,
                    data: Vec::new(),
                    int: !matches!(
                        t.data_type,
                        dtype::FLOAT | dtype::DOUBLE | dtype::FLOAT16 | dtype::BFLOAT16
                    ),
                });
            }
            &external
        } else {
            &t.raw_data
        };
        let dt = t.data_type;
        let int = !matches!(
            dt,
            dtype::FLOAT | dtype::DOUBLE | dtype::FLOAT16 | dtype::BFLOAT16
        );
        let data: Vec<f64> = if !raw.is_empty() {
            let size = elem_size(dt)
                .ok_or_else(|| anyhow!("tensor `{}` has unsupported data type {dt}", t.name))?;
            if Some(raw.len()) != count.checked_mul(size) {
                bail!(
                    "tensor `{}`: {} bytes of raw data for {count} elements of {size} bytes",
                    t.name,
                    raw.len()
                );
            }
            raw.chunks_exact(size)
                .map(|c| match dt {
                    dtype::FLOAT => f32::from_le_bytes(le(c)) as f64,
                    dtype::DOUBLE => f64::from_le_bytes(le(c)),
                    dtype::FLOAT16 => half::f16::from_le_bytes(le(c)).to_f64(),
                    dtype::BFLOAT16 => half::bf16::from_le_bytes(le(c)).to_f64(),
                    dtype::INT32 => i32::from_le_bytes(le(c)) as f64,
                    dtype::UINT32 => u32::from_le_bytes(le(c)) as f64,
                    dtype::INT64 => i64::from_le_bytes(le(c)) as f64,
                    dtype::UINT64 => u64::from_le_bytes(le(c)) as f64,
                    dtype::INT16 => i16::from_le_bytes(le(c)) as f64,
                    dtype::UINT16 => u16::from_le_bytes(le(c)) as f64,
                    dtype::INT8 => c[0] as i8 as f64,
                    _ => c[0] as f64,
                })
                .collect()
        } else {
            match dt {
                dtype::FLOAT => t.float_data.iter().map(|&v| v as f64).collect(),
                dtype::DOUBLE => t.double_data.clone(),
                dtype::INT64 => t.int64_data.iter().map(|&v| v as f64).collect(),
                dtype::UINT32 | dtype::UINT64 => t.uint64_data.iter().map(|&v| v as f64).collect(),
                dtype::FLOAT16 => t
                    .int32_data
                    .iter()
                    .map(|&v| half::f16::from_bits(v as u16).to_f64())
                    .collect(),
                dtype::BFLOAT16 => t
                    .int32_data
                    .iter()
                    .map(|&v| half::bf16::from_bits(v as u16).to_f64())
                    .collect(),
                dtype::INT32
                | dtype::INT16
                | dtype::INT8
                | dtype::UINT16
                | dtype::UINT8
                | dtype::BOOL => t.int32_data.iter().map(|&v| v as f64).collect(),
                other => bail!("tensor `{}` has unsupported data type {other}", t.name),
            }
        };
        if data.len() != count {
            bail!(
                "tensor `{}` has {} values for dims {:?}",
                t.name,
                data.len(),
                dims
            );
        }
        if !int {
            if let Some(i) = data.iter().position(|v| !v.is_finite()) {
                bail!(
                    "tensor `{}` has a non-finite value at flat index {i}",
                    t.name
                );
            }
        }
        Ok(Tensor { dims, data, int })
    }

    fn strides(dims: &[usize]) -> Vec<usize> {
        let mut s = vec![1; dims.len()];
        for k in (0..dims.len().saturating_sub(1)).rev() {
            s[k] = s[k + 1] * dims[k + 1];
        }
        s
    }

    /// The element count of `dims` (checked), at most [`MAX_ELEMENTS`]: shapes computed
    /// from a file (`ConstantOfShape`, `Expand`, …) must not overflow or ask for more memory
    /// than any recurrent model's constants need.
    ///
    /// # Errors
    /// The product overflows or exceeds [`MAX_ELEMENTS`].
    pub fn element_count(dims: &[usize]) -> Result<usize> {
        dims.iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .filter(|&n| n <= MAX_ELEMENTS)
            .ok_or_else(|| {
                anyhow!(
                    "a constant of shape {dims:?} is too large (more than {MAX_ELEMENTS} elements)"
                )
            })
    }

    /// Builds a tensor of `dims` where element `idx` is `self.data[f(idx)]`.
    fn remap(&self, dims: Vec<usize>, f: impl Fn(&[usize]) -> usize) -> Result<Tensor> {
        let count = Self::element_count(&dims)?;
        let mut data = Vec::with_capacity(count);
        let mut idx = vec![0usize; dims.len()];
        for _ in 0..count {
            data.push(self.data[f(&idx)]);
            for k in (0..dims.len()).rev() {
                idx[k] += 1;
                if idx[k] < dims[k] {
                    break;
                }
                idx[k] = 0;
            }
        }
        Ok(Tensor {
            dims,
            data,
            int: self.int,
        })
    }

    /// `Transpose` with `perm`.
    pub fn transpose(&self, perm: &[usize]) -> Result<Tensor> {
        let mut sorted = perm.to_vec();
        sorted.sort_unstable();
        if perm.len() != self.dims.len() || sorted.iter().enumerate().any(|(k, &p)| k != p) {
            bail!(
                "Transpose perm {perm:?} is not a permutation of rank {}",
                self.dims.len()
            );
        }
        let st = Self::strides(&self.dims);
        let dims: Vec<usize> = perm.iter().map(|&p| self.dims[p]).collect();
        self.remap(dims, |idx| {
            idx.iter().zip(perm).map(|(&i, &p)| i * st[p]).sum()
        })
    }

    /// `Gather` along `axis` with integer `indices` (negative counts from the end).
    pub fn gather(&self, axis: usize, indices: &Tensor) -> Result<Tensor> {
        let n = self.dims[axis] as i64;
        let idx: Vec<usize> = indices
            .as_i64()
            .iter()
            .map(|&i| {
                let j = if i < 0 { i + n } else { i };
                if j < 0 || j >= n {
                    bail!("Gather index {i} out of range for a dimension of {n}");
                }
                Ok(j as usize)
            })
            .collect::<Result<_>>()?;
        let st = Self::strides(&self.dims);
        let mut dims = self.dims[..axis].to_vec();
        dims.extend(&indices.dims);
        dims.extend(&self.dims[axis + 1..]);
        let r = indices.dims.len();
        let ist = Self::strides(&indices.dims);
        self.remap(dims, |o| {
            let mut off = 0;
            for k in 0..axis {
                off += o[k] * st[k];
            }
            let mut flat = 0;
            for k in 0..r {
                flat += o[axis + k] * ist[k];
            }
            off += idx[flat] * st[axis];
            for k in axis + 1..self.dims.len() {
                off += o[k + r - 1] * st[k];
            }
            off
        })
    }

    /// `Slice` with per-axis `(start, end, step)` already resolved against the dims.
    pub fn slice(&self, ranges: &[(usize, i64, i64, i64)]) -> Result<Tensor> {
        let mut start = vec![0i64; self.dims.len()];
        let mut step = vec![1i64; self.dims.len()];
        let mut dims = self.dims.clone();
        for &(axis, s, e, st) in ranges {
            let (s, len) = resolve_slice(self.dims[axis] as i64, s, e, st)?;
            start[axis] = s;
            step[axis] = st;
            dims[axis] = len;
        }
        let strides = Self::strides(&self.dims);
        self.remap(dims, |o| {
            o.iter()
                .enumerate()
                .map(|(k, &i)| (start[k] + i as i64 * step[k]) as usize * strides[k])
                .sum()
        })
    }

    /// `Concat` along `axis`.
    pub fn concat(parts: &[Tensor], axis: usize) -> Result<Tensor> {
        let Some(first) = parts.first() else {
            bail!("Concat of nothing");
        };
        let mut dims = first.dims.clone();
        dims[axis] = 0;
        for p in parts {
            if p.dims.len() != first.dims.len()
                || p.dims
                    .iter()
                    .enumerate()
                    .any(|(k, &d)| k != axis && d != first.dims[k])
            {
                bail!("Concat of shapes {:?} and {:?}", first.dims, p.dims);
            }
            dims[axis] += p.dims[axis];
        }
        let outer: usize = dims[..axis].iter().product();
        let mut data = Vec::new();
        for o in 0..outer {
            for p in parts {
                let chunk: usize = p.dims[axis..].iter().product();
                data.extend_from_slice(&p.data[o * chunk..(o + 1) * chunk]);
            }
        }
        Ok(Tensor {
            dims,
            data,
            int: parts.iter().all(|p| p.int),
        })
    }

    /// Element-wise binary operation with numpy broadcasting.
    pub fn binop(&self, other: &Tensor, f: impl Fn(f64, f64) -> f64) -> Result<Tensor> {
        let dims = broadcast(&self.dims, &other.dims)?;
        let a = self.expand_to(&dims)?;
        let b = other.expand_to(&dims)?;
        Ok(Tensor {
            dims,
            data: a.data.iter().zip(&b.data).map(|(&x, &y)| f(x, y)).collect(),
            int: self.int && other.int,
        })
    }

    /// Broadcasts to `dims`.
    pub fn expand_to(&self, dims: &[usize]) -> Result<Tensor> {
        let r = dims.len();
        if self.dims.len() > r {
            bail!("cannot broadcast {:?} to {:?}", self.dims, dims);
        }
        let pad = r - self.dims.len();
        let st = Self::strides(&self.dims);
        for (k, &d) in self.dims.iter().enumerate() {
            if d != 1 && d != dims[pad + k] {
                bail!("cannot broadcast {:?} to {:?}", self.dims, dims);
            }
        }
        self.remap(dims.to_vec(), |o| {
            self.dims
                .iter()
                .enumerate()
                .map(|(k, &d)| if d == 1 { 0 } else { o[pad + k] * st[k] })
                .sum()
        })
    }

    /// Same data, new dims.
    pub fn reshaped(&self, dims: Vec<usize>) -> Result<Tensor> {
        if dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) != Some(self.data.len()) {
            bail!("cannot reshape {:?} to {:?}", self.dims, dims);
        }
        Ok(Tensor {
            dims,
            data: self.data.clone(),
            int: self.int,
        })
    }
}

/// Numpy broadcast of two shapes.
pub fn broadcast(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for (k, o) in out.iter_mut().enumerate() {
        let da = if k + a.len() >= r {
            a[k + a.len() - r]
        } else {
            1
        };
        let db = if k + b.len() >= r {
            b[k + b.len() - r]
        } else {
            1
        };
        *o = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            bail!("shapes {a:?} and {b:?} do not broadcast");
        };
    }
    Ok(out)
}

/// Resolves ONNX `Slice` bounds on a dimension of `n`: returns `(first index, count)`.
pub fn resolve_slice(n: i64, start: i64, end: i64, step: i64) -> Result<(i64, usize)> {
    if step == 0 {
        bail!("Slice step 0");
    }
    let clamp = |v: i64, lo: i64, hi: i64| v.max(lo).min(hi);
    let norm = |v: i64| if v < 0 { v.saturating_add(n) } else { v };
    if step > 0 {
        let s = clamp(norm(start), 0, n);
        let e = clamp(norm(end), 0, n);
        // (e - s - 1) / step + 1 = ceil((e - s) / step), without overflow for any step
        let len = if e > s { (e - s - 1) / step + 1 } else { 0 };
        Ok((s, len as usize))
    } else {
        let s = clamp(norm(start), -1, n - 1);
        let e = clamp(norm(end), -1, n - 1);
        let len = if s > e {
            // in i128: -i64::MIN does not fit an i64
            ((i128::from(s - e) - 1) / -i128::from(step) + 1) as i64
        } else {
            0
        };
        Ok((s, len as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops() {
        let t = Tensor::new(vec![2, 3], (0..6).map(|v| v as f64).collect(), false);
        let tt = t.transpose(&[1, 0]).unwrap();
        assert_eq!(tt.dims, vec![3, 2]);
        assert_eq!(tt.data, vec![0., 3., 1., 4., 2., 5.]);
        let g = t.gather(1, &Tensor::new(vec![], vec![-1.0], true)).unwrap();
        assert_eq!(g.dims, vec![2]);
        assert_eq!(g.data, vec![2., 5.]);
        let s = t.slice(&[(1, 1, i64::MAX, 1)]).unwrap();
        assert_eq!(s.data, vec![1., 2., 4., 5.]);
        let c = Tensor::concat(&[t.clone(), t.clone()], 0).unwrap();
        assert_eq!(c.dims, vec![4, 3]);
        let b = t
            .binop(&Tensor::new(vec![3], vec![1., 2., 3.], false), |a, b| a + b)
            .unwrap();
        assert_eq!(b.data, vec![1., 3., 5., 4., 6., 8.]);
        assert_eq!(resolve_slice(5, -1, i64::MAX, 1).unwrap(), (4, 1));
        assert_eq!(resolve_slice(5, -1, i64::MIN, -1).unwrap(), (4, 5));
        assert_eq!(resolve_slice(5, 0, 5, 2).unwrap(), (0, 3));
        assert_eq!(resolve_slice(5, 4, -10, -2).unwrap(), (4, 3));
        // Extreme steps (a fuzzed file): one element, no overflow.
        assert_eq!(resolve_slice(5, 0, 5, i64::MAX).unwrap(), (0, 1));
        assert_eq!(resolve_slice(5, 4, -10, i64::MIN).unwrap(), (4, 1));
    }
}
