//! `.npy` files (format v1–v3, little-endian, C order) and the `dataset.txt` manifest, for
//! host code: `boards/board-support/build.rs` (which embeds the recording into the firmware)
//! and `xtask` (which runs the host CLI on the same files and writes the bring-up data). One
//! copy, so every consumer reads the recording the same way.
//!
//! Every size taken from a file is checked: a shape whose element count or byte size does
//! not fit in `usize` is an error, never a wrapped or panicking product.

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

/// Bytes per element of a little-endian (or byte-wide) numpy dtype.
fn dtype_width(descr: &str) -> Option<usize> {
    match descr.get(1..)? {
        "f4" | "i4" | "u4" => Some(4),
        "f8" | "i8" | "u8" => Some(8),
        "i2" | "u2" => Some(2),
        "i1" | "u1" | "b1" => Some(1),
        _ => None,
    }
}

impl Npy {
    /// Reads `path` and checks its header against its data.
    pub fn read(path: &Path) -> Result<Npy, String> {
        let bytes = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Npy::parse(&bytes, path)
    }

    /// Parses the bytes of a `.npy` file (`path` names it in messages).
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Npy, String> {
        let err = |m: &str| format!("{}: {m}", path.display());
        if !bytes.starts_with(b"\x93NUMPY") || bytes.len() < 10 {
            return Err(err("not a .npy file"));
        }
        let (hlen, hstart): (usize, usize) = match bytes[6] {
            1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
            2 | 3 => {
                let b = bytes.get(8..12).ok_or_else(|| err("truncated header"))?;
                (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 12)
            }
            v => return Err(err(&format!(".npy format version {v} is not supported"))),
        };
        let hend = hstart
            .checked_add(hlen)
            .ok_or_else(|| err("bad header length"))?;
        let header = bytes
            .get(hstart..hend)
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
        let width =
            dtype_width(&descr).ok_or_else(|| err(&format!("unsupported dtype {descr}")))?;
        let shape = field("'shape'")?;
        let close = shape.find(')').ok_or_else(|| err("bad shape"))?;
        let shape = shape
            .get(1..close)
            .ok_or_else(|| err("bad shape"))?
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().map_err(|_| err("bad shape")))
            .collect::<Result<Vec<usize>, String>>()?;
        let too_large = || err(&format!("shape {shape:?} is too large"));
        let count = checked_count(&shape).ok_or_else(too_large)?;
        let need = count.checked_mul(width).ok_or_else(too_large)?;
        let data = &bytes[hend..];
        if data.len() < need {
            return Err(err(&format!(
                "data is {} bytes, shape {shape:?} of {descr} needs {need}",
                data.len()
            )));
        }
        Ok(Npy {
            descr,
            shape,
            data: data[..need].to_vec(),
            path: path.into(),
        })
    }

    /// Number of elements (checked when the file was read).
    pub fn count(&self) -> usize {
        checked_count(&self.shape).unwrap_or(0)
    }

    /// The elements as `f32` (`<f4`; `<f8` is rounded to nearest `f32`).
    pub fn floats(&self) -> Result<Vec<f32>, String> {
        match self.descr.as_str() {
            "<f4" => Ok(self
                .data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()),
            "<f8" => Ok(self
                .data
                .chunks_exact(8)
                .map(|c| {
                    f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
                })
                .collect()),
            d => Err(format!("{}: dtype {d} is not f32/f64", self.path.display())),
        }
    }

    /// The elements as `i64` (any little-endian integer dtype up to 64 bits; `<u8` values
    /// above `i64::MAX` are an error).
    pub fn ints(&self) -> Result<Vec<i64>, String> {
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
        let w = dtype_width(&self.descr).unwrap_or(8);
        self.data
            .chunks_exact(w)
            .map(|c| {
                let mut b = [0u8; 8];
                b[..w].copy_from_slice(c);
                let u = u64::from_le_bytes(b);
                let s = 64 - 8 * w as u32;
                if signed {
                    Ok(((u << s) as i64) >> s)
                } else {
                    i64::try_from(u).map_err(|_| {
                        format!("{}: value {u} does not fit in i64", self.path.display())
                    })
                }
            })
            .collect()
    }
}

/// The product of the dimensions, `None` on overflow.
pub fn checked_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// Writes a `.npy` file (format 1.0, C order) of `shape` with `dtype` (e.g. `<f4`) and the
/// little-endian element bytes `data`.
fn write(path: &Path, descr: &str, shape: &[usize], data: &[u8]) -> Result<(), String> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let width = dtype_width(descr).ok_or_else(|| format!("unsupported dtype {descr}"))?;
    if checked_count(shape).and_then(|n| n.checked_mul(width)) != Some(data.len()) {
        return Err(format!(
            "{}: {} bytes of data do not match shape {shape:?} of {descr}",
            path.display(),
            data.len()
        ));
    }
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let hlen = u16::try_from(header.len()).map_err(|_| "npy header too long".to_string())?;
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend(hlen.to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(data);
    fs::write(path, out).map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes an `f32` array of `shape`.
pub fn write_f32(path: &Path, shape: &[usize], v: &[f32]) -> Result<(), String> {
    let data: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    write(path, "<f4", shape, &data)
}

/// Writes a one-dimensional `i64` array.
pub fn write_i64(path: &Path, v: &[i64]) -> Result<(), String> {
    let data: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    write(path, "<i8", &[v.len()], &data)
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
    /// How `cargo xtask bless` rebuilds `model` (optional keys): `tinyrnn quantize SOURCE
    /// --precision int8 --calib CALIB --calib-lengths CALIB_LENGTHS [--normalize NORMALIZE]`.
    pub source: Option<PathBuf>,
    /// Calibration sequences for [`source`](Self::source).
    pub calib: Option<PathBuf>,
    /// Their true lengths.
    pub calib_lengths: Option<PathBuf>,
    /// Input standardization (`norm.json`) folded into the blob.
    pub normalize: Option<PathBuf>,
}

/// The QEMU boards' further datasets (feature `graph-models` of the board crates): name and
/// file in `boards/qemu-common/`, in the order the firmware runs them after `dataset.txt`'s.
/// Read by `boards/board-support/build.rs` (which embeds them) and by `cargo xtask qemu`
/// (which compares each one's `seq=` lines with `tinyrnn run --raw`).
pub const EXTRA_DATASETS: [(&str, &str); 3] = [
    ("mlp", "dataset-mlp.txt"),
    ("pre", "dataset-pre.txt"),
    ("bidir", "dataset-bidir.txt"),
];

impl Dataset {
    /// Parses `key = path` lines (`#` comments); the environment variable `TINYRNN_BLOB`,
    /// if set, overrides `model`.
    pub fn read(path: &Path) -> Result<Dataset, String> {
        let mut ds = Dataset::read_file(path)?;
        // `TINYRNN_BLOB` replaces the model (e.g. a blob just quantized by `cargo xtask demo`);
        // xtask makes it absolute before building, so both sides read the same file.
        if let Some(p) = std::env::var_os("TINYRNN_BLOB").filter(|p| !p.is_empty()) {
            ds.model = PathBuf::from(p);
        }
        Ok(ds)
    }

    /// [`read`](Self::read) without the `TINYRNN_BLOB` override.
    pub fn read_file(path: &Path) -> Result<Dataset, String> {
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
        Ok(Dataset {
            model: get("model")?,
            input: get("input")?,
            lengths: get("lengths")?,
            labels: get("labels")?,
            source: get("source").ok(),
            calib: get("calib").ok(),
            calib_lengths: get("calib_lengths").ok(),
            normalize: get("normalize").ok(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}\n");
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((header.len() as u16).to_le_bytes());
        out.extend(header.as_bytes());
        out.extend(data);
        out
    }

    #[test]
    fn round_trip() {
        let dir = std::env::temp_dir().join(format!("host-npy-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let (f, i) = (dir.join("f.npy"), dir.join("i.npy"));
        write_f32(&f, &[2, 3], &[0.5, -1.0, 2.25, 3.0, 4.0, -0.125]).unwrap();
        write_i64(&i, &[7, -3, i64::MAX]).unwrap();
        let a = Npy::read(&f).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.floats().unwrap(), vec![0.5, -1.0, 2.25, 3.0, 4.0, -0.125]);
        let b = Npy::read(&i).unwrap();
        assert_eq!(b.shape, vec![3]);
        assert_eq!(b.ints().unwrap(), vec![7, -3, i64::MAX]);
        assert!(write_f32(&f, &[2, 2], &[1.0]).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    /// The committed dataset files parse, relative to their folder; the optional quantize
    /// keys are there for the further datasets only.
    #[test]
    fn committed_datasets() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../qemu-common");
        let main = Dataset::read_file(&dir.join("dataset.txt")).unwrap();
        assert!(main.model.ends_with("vowels_lstm_int8.trnn"));
        assert!(main.source.is_none() && main.calib.is_none());
        for (name, file) in EXTRA_DATASETS {
            let ds = Dataset::read_file(&dir.join(file)).unwrap();
            for p in [&ds.model, &ds.input, &ds.lengths, &ds.labels] {
                assert!(p.is_file(), "{name}: {}", p.display());
            }
            for p in [&ds.source, &ds.calib, &ds.calib_lengths, &ds.normalize] {
                assert!(p.as_ref().is_some_and(|p| p.is_file()), "{name}: {p:?}");
            }
        }
    }

    #[test]
    fn shape_overflow_is_an_error() {
        let p = Path::new("x.npy");
        let huge = format!("({}, {}, 2)", usize::MAX / 2, usize::MAX / 3);
        let e = Npy::parse(&npy("<f4", &huge, &[0; 16]), p).err().unwrap();
        assert!(e.contains("too large"), "{e}");
        // Element count fits, byte size does not.
        let wide = format!("({},)", usize::MAX / 2);
        let e = Npy::parse(&npy("<f4", &wide, &[0; 16]), p).err().unwrap();
        assert!(e.contains("too large"), "{e}");
    }

    #[test]
    fn short_data_and_bad_dtype() {
        let p = Path::new("x.npy");
        let e = Npy::parse(&npy("<f4", "(2, 2)", &[0; 15]), p)
            .err()
            .unwrap();
        assert!(e.contains("needs 16"), "{e}");
        let e = Npy::parse(&npy("<c8", "(1,)", &[0; 8]), p).err().unwrap();
        assert!(e.contains("unsupported dtype"), "{e}");
        let u = Npy::parse(&npy("<u8", "(1,)", &u64::MAX.to_le_bytes()), p).unwrap();
        assert!(u.ints().is_err());
        let s = Npy::parse(&npy("<i2", "(2,)", &[0xff, 0xff, 0x02, 0x00]), p).unwrap();
        assert_eq!(s.ints().unwrap(), vec![-1, 2]);
    }
}
