//! Reading `.npy` files: just enough of the format (v1–v3, little-endian, C order).
//!
//! Host code shared by `boards/board-support/build.rs` and `xtask` (both include this file with
//! `#[path]`), so the firmware and the host comparison read the recording the same way.

use std::fs;
use std::path::{Path, PathBuf};

/// A loaded array: dtype descriptor, shape and raw little-endian data.
pub struct Npy {
    /// numpy dtype string, e.g. `<f4`.
    pub descr: String,
    /// Dimensions, C order.
    pub shape: Vec<usize>,
    data: Vec<u8>,
    path: PathBuf,
}

impl Npy {
    /// Reads and parses the header of `path`.
    pub fn read(path: &Path) -> Result<Npy, String> {
        let err = |m: &str| format!("{}: {m}", path.display());
        let bytes = fs::read(path).map_err(|e| err(&e.to_string()))?;
        if !bytes.starts_with(b"\x93NUMPY") || bytes.len() < 12 {
            return Err(err("not a .npy file"));
        }
        let (hlen, hstart) = match bytes[6] {
            1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
            _ => (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            ),
        };
        let header = bytes
            .get(hstart..hstart + hlen)
            .and_then(|h| std::str::from_utf8(h).ok())
            .ok_or_else(|| err("bad header"))?;
        let field = |key: &str| -> Result<&str, String> {
            let at = header
                .find(key)
                .ok_or_else(|| err(&format!("no {key} in header")))?;
            Ok(header[at + key.len()..].trim_start_matches([':', ' ', '\'']))
        };
        if !field("'fortran_order'")?.starts_with("False") {
            return Err(err("Fortran order is not supported"));
        }
        let descr = field("'descr'")?
            .split('\'')
            .next()
            .unwrap_or("")
            .to_string();
        let shape = field("'shape'")?;
        let close = shape.find(')').ok_or_else(|| err("bad shape"))?;
        let shape = shape[1..close]
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().map_err(|_| err("bad shape")))
            .collect::<Result<Vec<usize>, String>>()?;
        let npy = Npy {
            descr,
            shape,
            data: bytes[hstart + hlen..].to_vec(),
            path: path.into(),
        };
        if npy.data.len() < npy.count() * npy.width()? {
            return Err(err("data shorter than the shape says"));
        }
        Ok(npy)
    }

    /// Number of elements.
    pub fn count(&self) -> usize {
        self.shape.iter().product()
    }

    fn width(&self) -> Result<usize, String> {
        match self.descr.get(1..) {
            Some("f4" | "i4" | "u4") => Ok(4),
            Some("f8" | "i8" | "u8") => Ok(8),
            Some("i2" | "u2") => Ok(2),
            Some("i1" | "u1" | "b1") => Ok(1),
            _ => Err(format!(
                "{}: unsupported dtype {}",
                self.path.display(),
                self.descr
            )),
        }
    }

    /// The elements as `f32` (`<f4`; `<f8` is rounded to nearest `f32`).
    pub fn floats(&self) -> Result<Vec<f32>, String> {
        let n = self.count();
        match self.descr.as_str() {
            "<f4" => Ok(self
                .data
                .chunks_exact(4)
                .take(n)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()),
            "<f8" => Ok(self
                .data
                .chunks_exact(8)
                .take(n)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
                .collect()),
            d => Err(format!("{}: dtype {d} is not f32/f64", self.path.display())),
        }
    }

    /// The elements as `i64` (any little-endian integer dtype).
    pub fn ints(&self) -> Result<Vec<i64>, String> {
        let w = self.width()?;
        let signed = match self.descr.as_bytes().get(1) {
            Some(b'i') => true,
            Some(b'u') => false,
            _ => {
                return Err(format!(
                    "{}: dtype {} is not an integer type",
                    self.path.display(),
                    self.descr
                ))
            }
        };
        Ok(self
            .data
            .chunks_exact(w)
            .take(self.count())
            .map(|c| {
                let mut b = [0u8; 8];
                b[..w].copy_from_slice(c);
                let u = u64::from_le_bytes(b);
                let s = 64 - 8 * w as u32;
                if signed {
                    ((u << s) as i64) >> s
                } else {
                    u as i64
                }
            })
            .collect())
    }
}

/// The files named in `boards/qemu-common/dataset.txt`, resolved against its folder.
pub struct Dataset {
    /// Model blob.
    pub model: PathBuf,
    /// Recording, `(N, T, F)` floats.
    pub input: PathBuf,
    /// `(N,)` true lengths.
    pub lengths: PathBuf,
    /// `(N,)` labels.
    pub labels: PathBuf,
}

impl Dataset {
    /// Parses `key = path` lines (`#` comments); the environment variable `TINYRNN_BLOB`,
    /// if set, overrides `model`.
    pub fn read(path: &Path) -> Result<Dataset, String> {
        let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let get = |key: &str| -> Result<PathBuf, String> {
            text.lines()
                .map(str::trim)
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.split_once('='))
                .find(|(k, _)| k.trim() == key)
                .map(|(_, v)| dir.join(v.trim()))
                .ok_or_else(|| format!("{}: no `{key} = ...` line", path.display()))
        };
        // `TINYRNN_BLOB` replaces the model (e.g. a blob just quantized by `cargo xtask demo`);
        // xtask makes it absolute before building, so both sides read the same file.
        let model = match std::env::var_os("TINYRNN_BLOB") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => get("model")?,
        };
        Ok(Dataset {
            model,
            input: get("input")?,
            lengths: get("lengths")?,
            labels: get("labels")?,
        })
    }
}
