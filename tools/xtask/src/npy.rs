//! Writing `.npy` files (format 1.0, little-endian, C order).

use std::fs;
use std::path::Path;

use crate::Result;

fn write(path: &Path, descr: &str, shape: &[usize], data: &[u8]) -> Result<()> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(data);
    fs::write(path, out)?;
    Ok(())
}

/// `f32` array of `shape`.
pub fn write_f32(path: &Path, shape: &[usize], v: &[f32]) -> Result<()> {
    write(
        path,
        "<f4",
        shape,
        &v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>(),
    )
}

/// One-dimensional `i64` array.
pub fn write_i64(path: &Path, v: &[i64]) -> Result<()> {
    write(
        path,
        "<i8",
        &[v.len()],
        &v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>(),
    )
}
