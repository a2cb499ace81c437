//! A bounds-checked reader for the subset of the TensorFlow Lite flatbuffer schema
//! (`tensorflow/compiler/mlir/lite/schema/schema.fbs`) that the `.tflite` importer needs.
//!
//! Why hand-written: the `flatbuffers` runtime crate's accessors (`Table::get`, `follow`) are
//! `unsafe` and are only sound after a full verification pass over generated code for the
//! whole schema (~30 k generated lines for TFLite), and this project keeps `unsafe` out of the
//! tools. A flatbuffer is simple enough to read safely: every offset, vtable entry and vector
//! length below is checked against the buffer before use, every read returns a `Result`, and
//! nothing recurses (the importer follows fixed schema paths), so malformed bytes give an
//! error, never a panic, and work is bounded by the buffer size ([`MAX_ITEMS`] caps vectors
//! too).
//!
//! Field numbers are the schema's field ids (vtable slot `4 + 2·id`).

use anyhow::{bail, Context, Result};

/// Largest vector the reader accepts (tensors, operators, buffers, dims…).
pub const MAX_ITEMS: usize = 1 << 20;

/// The raw bytes of a flatbuffer.
#[derive(Clone, Copy)]
pub struct Buf<'a> {
    b: &'a [u8],
}

fn bad(what: &str) -> anyhow::Error {
    anyhow::anyhow!("corrupt flatbuffer: {what} out of bounds")
}

impl<'a> Buf<'a> {
    /// Wraps `b`.
    pub fn new(b: &'a [u8]) -> Self {
        Buf { b }
    }

    /// The whole buffer.
    pub fn bytes(&self) -> &'a [u8] {
        self.b
    }

    fn slice(&self, pos: usize, n: usize) -> Result<&'a [u8]> {
        pos.checked_add(n)
            .and_then(|end| self.b.get(pos..end))
            .ok_or_else(|| bad("read"))
    }

    fn u16(&self, pos: usize) -> Result<u16> {
        let s = self.slice(pos, 2)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }

    fn u32(&self, pos: usize) -> Result<u32> {
        let s = self.slice(pos, 4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }

    /// Follows the `uoffset` stored at `pos`.
    fn follow(&self, pos: usize) -> Result<usize> {
        let off = self.u32(pos)? as usize;
        let t = pos.checked_add(off).ok_or_else(|| bad("offset"))?;
        if t >= self.b.len() {
            return Err(bad("offset"));
        }
        Ok(t)
    }

    /// The root table.
    pub fn root(&self) -> Result<Table<'a>> {
        let pos = self.follow(0).context("root table")?;
        Table::at(*self, pos)
    }
}

/// A table: its position and its vtable, both checked.
#[derive(Clone, Copy)]
pub struct Table<'a> {
    buf: Buf<'a>,
    pos: usize,
    vt: usize,
    vt_len: usize,
    len: usize,
}

/// A vector: where its elements start and how many there are (already bounds-checked for
/// `elem` bytes each).
#[derive(Clone, Copy)]
pub struct Vector<'a> {
    buf: Buf<'a>,
    start: usize,
    len: usize,
}

impl<'a> Table<'a> {
    fn at(buf: Buf<'a>, pos: usize) -> Result<Self> {
        let soff = buf.u32(pos)? as i32 as i64;
        let vt = pos as i64 - soff;
        if vt < 0 {
            return Err(bad("vtable"));
        }
        let vt = vt as usize;
        let vt_len = buf.u16(vt)? as usize;
        let len = buf.u16(vt + 2)? as usize;
        if vt_len < 4 || !vt_len.is_multiple_of(2) {
            bail!("corrupt flatbuffer: vtable of {vt_len} bytes");
        }
        buf.slice(vt, vt_len)?;
        buf.slice(pos, len.max(4))?;
        Ok(Table {
            buf,
            pos,
            vt,
            vt_len,
            len,
        })
    }

    /// Position of field `id` holding `size` bytes, `None` if absent.
    fn field(&self, id: usize, size: usize) -> Result<Option<usize>> {
        let slot = 4 + 2 * id;
        if slot + 2 > self.vt_len {
            return Ok(None);
        }
        let off = self.buf.u16(self.vt + slot)? as usize;
        if off == 0 {
            return Ok(None);
        }
        if off + size > self.len {
            return Err(bad("field"));
        }
        Ok(Some(self.pos + off))
    }

    fn scalar<const N: usize>(&self, id: usize) -> Result<Option<[u8; N]>> {
        match self.field(id, N)? {
            None => Ok(None),
            Some(p) => {
                let s = self.buf.slice(p, N)?;
                let mut a = [0u8; N];
                a.copy_from_slice(s);
                Ok(Some(a))
            }
        }
    }

    /// A `ubyte`/`byte`/`bool` field (`default` if absent).
    pub fn u8(&self, id: usize, default: u8) -> Result<u8> {
        Ok(self.scalar::<1>(id)?.map_or(default, |a| a[0]))
    }

    /// An `int`/`uint` field (as i64; `default` if absent).
    pub fn i32(&self, id: usize, default: i32) -> Result<i32> {
        Ok(self.scalar::<4>(id)?.map_or(default, i32::from_le_bytes))
    }

    /// A `uint` field.
    pub fn u32(&self, id: usize, default: u32) -> Result<u32> {
        Ok(self.scalar::<4>(id)?.map_or(default, u32::from_le_bytes))
    }

    /// A `ulong` field.
    pub fn u64(&self, id: usize, default: u64) -> Result<u64> {
        Ok(self.scalar::<8>(id)?.map_or(default, u64::from_le_bytes))
    }

    /// A `float` field.
    pub fn f32(&self, id: usize, default: f32) -> Result<f32> {
        Ok(self.scalar::<4>(id)?.map_or(default, f32::from_le_bytes))
    }

    fn target(&self, id: usize) -> Result<Option<usize>> {
        match self.field(id, 4)? {
            None => Ok(None),
            Some(p) => self.buf.follow(p).map(Some),
        }
    }

    /// A sub-table field.
    pub fn table(&self, id: usize) -> Result<Option<Table<'a>>> {
        match self.target(id)? {
            None => Ok(None),
            Some(t) => Table::at(self.buf, t).map(Some),
        }
    }

    /// A vector field whose elements are `elem` bytes (4 for offsets), empty if absent.
    pub fn vector(&self, id: usize, elem: usize) -> Result<Vector<'a>> {
        let Some(t) = self.target(id)? else {
            return Ok(Vector {
                buf: self.buf,
                start: 0,
                len: 0,
            });
        };
        let len = self.buf.u32(t)? as usize;
        if len > MAX_ITEMS {
            bail!("corrupt flatbuffer: a vector of {len} elements");
        }
        self.buf.slice(t + 4, len * elem)?;
        Ok(Vector {
            buf: self.buf,
            start: t + 4,
            len,
        })
    }

    /// A string field (`None` if absent; invalid UTF-8 is replaced).
    pub fn string(&self, id: usize) -> Result<Option<String>> {
        let v = self.vector(id, 1)?;
        if self.target(id)?.is_none() {
            return Ok(None);
        }
        Ok(Some(String::from_utf8_lossy(v.bytes()?).into_owned()))
    }

    /// `[int]` field.
    pub fn i32s(&self, id: usize) -> Result<Vec<i32>> {
        let v = self.vector(id, 4)?;
        (0..v.len).map(|i| v.i32(i)).collect()
    }

    /// `[float]` field.
    pub fn f32s(&self, id: usize) -> Result<Vec<f32>> {
        let v = self.vector(id, 4)?;
        (0..v.len)
            .map(|i| v.i32(i).map(|x| f32::from_bits(x as u32)))
            .collect()
    }

    /// `[long]` field.
    pub fn i64s(&self, id: usize) -> Result<Vec<i64>> {
        let v = self.vector(id, 8)?;
        (0..v.len)
            .map(|i| {
                let s = v.buf.slice(v.start + 8 * i, 8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(s);
                Ok(i64::from_le_bytes(a))
            })
            .collect()
    }

    /// `[Table]` field.
    pub fn tables(&self, id: usize) -> Result<Vec<Table<'a>>> {
        let v = self.vector(id, 4)?;
        (0..v.len)
            .map(|i| {
                let t = v.buf.follow(v.start + 4 * i)?;
                Table::at(v.buf, t)
            })
            .collect()
    }
}

impl<'a> Vector<'a> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it has no element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn i32(&self, i: usize) -> Result<i32> {
        Ok(self.buf.u32(self.start + 4 * i)? as i32)
    }

    /// The elements of a `[ubyte]` vector.
    pub fn bytes(&self) -> Result<&'a [u8]> {
        if self.len == 0 {
            return Ok(&[]);
        }
        self.buf.slice(self.start, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table with one `int` field (id 1 = 7) and one string field (id 0 = "ab").
    fn tiny() -> Vec<u8> {
        // 0: root uoffset -> 12
        // 4: vtable [vt_len 8, tbl_len 12, f0 @4, f1 @8]
        // 12: table soffset 8 (vtable at 4); 16: uoffset to string (-> 24); 20: i32 7
        // 24: string len 2, "ab", pad
        let mut b = vec![];
        b.extend(12u32.to_le_bytes());
        b.extend([8u16, 12, 4, 8].iter().flat_map(|v| v.to_le_bytes()));
        b.extend(8i32.to_le_bytes());
        b.extend(8u32.to_le_bytes());
        b.extend(7i32.to_le_bytes());
        b.extend(2u32.to_le_bytes());
        b.extend(b"ab\0\0");
        b
    }

    #[test]
    fn reads_fields() {
        let b = tiny();
        let t = Buf::new(&b).root().unwrap();
        assert_eq!(t.i32(1, 0).unwrap(), 7);
        assert_eq!(t.string(0).unwrap().as_deref(), Some("ab"));
        assert_eq!(t.i32(5, -3).unwrap(), -3);
        assert!(t.string(5).unwrap().is_none());
        assert!(t.i32s(5).unwrap().is_empty());
    }

    /// Every truncation and every single-byte corruption is an error or a value, never a
    /// panic.
    #[test]
    fn malformed_never_panics() {
        let b = tiny();
        for n in 0..b.len() {
            let _ = Buf::new(&b[..n])
                .root()
                .and_then(|t| Ok((t.i32(1, 0)?, t.string(0)?)));
        }
        for i in 0..b.len() {
            for v in [0u8, 1, 0x7f, 0x80, 0xff] {
                let mut c = b.clone();
                c[i] = v;
                let _ = Buf::new(&c)
                    .root()
                    .and_then(|t| Ok((t.i32(1, 0)?, t.string(0)?, t.i32s(0)?, t.tables(0)?.len())));
            }
        }
        assert!(Buf::new(&b[..3]).root().is_err());
        let mut c = b.clone();
        c[16] = 0xf0; // string offset past the end
        assert!(Buf::new(&c).root().unwrap().string(0).is_err());
    }
}
