//! A minimal defmt decoder: just what the board firmware prints.
//!
//! The full `defmt-decoder` crate pulls in regex, serde_json, gimli, time, ... (minutes of
//! build on a 2-core CI machine); the firmware only logs messages whose parameters are
//! `{=str}` and fixed-width integers (`{=u8}` ... `{=u64}`, `{=i8}` ... `{=i64}`,
//! `{=usize}`, `{=isize}`), so this module decodes exactly that and fails loudly on
//! anything else (a `{}` of a `Format` type, bools, slices, hints are ignored).
//!
//! Wire format (defmt 1.x, `_defmt_version_ = 4`, `_defmt_encoding_ = rzcobs`, no
//! timestamp): each log call is one frame, rzCOBS-encoded and terminated by `0x00`; the
//! decoded frame is the 16-bit little-endian index of the interned format string, then the
//! arguments in order: integers little-endian at their width (`usize`/`isize`: 4 bytes),
//! `str` as a `u32` length and the bytes. The interned strings are the names of the ELF's
//! symbols in the `.defmt` sections (JSON: `{"package":..,"tag":..,"data":"<format>",..}`),
//! the symbol's value being the index.

use std::collections::HashMap;

use crate::Result;

/// Format strings by index, read from the firmware ELF.
pub struct Table {
    strings: HashMap<u16, (String, String)>, // index -> (tag, format string)
}

fn rd<const N: usize>(b: &[u8], o: usize) -> Result<[u8; N]> {
    Ok(b.get(o..o + N).ok_or("ELF truncated")?.try_into()?)
}
fn u16_at(b: &[u8], o: usize) -> Result<u16> {
    Ok(u16::from_le_bytes(rd(b, o)?))
}
fn u32_at(b: &[u8], o: usize) -> Result<usize> {
    Ok(u32::from_le_bytes(rd(b, o)?) as usize)
}
fn cstr(b: &[u8], o: usize) -> Result<&str> {
    let s = b.get(o..).ok_or("ELF truncated")?;
    let n = s
        .iter()
        .position(|&c| c == 0)
        .ok_or("unterminated ELF string")?;
    Ok(std::str::from_utf8(&s[..n])?)
}

/// Extracts the string value of `"key":"..."` from a defmt symbol name (JSON).
fn json_field(json: &str, key: &str) -> Option<String> {
    let pat = format!("\"{key}\":\"");
    let start = json.find(&pat)? + pat.len();
    let mut out = String::new();
    let mut chars = json[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                c => out.push(c), // \" \\ \/
            },
            c => out.push(c),
        }
    }
    None
}

impl Table {
    /// Reads the interned strings of an ELF32 little-endian firmware image.
    pub fn parse(elf: &[u8]) -> Result<Table> {
        let shoff = u32_at(elf, 0x20)?;
        let shentsize = u16_at(elf, 0x2E)? as usize;
        let shnum = u16_at(elf, 0x30)? as usize;
        let shstrndx = u16_at(elf, 0x32)? as usize;
        let hdr = |i: usize| shoff + i * shentsize;
        let shstr = u32_at(elf, hdr(shstrndx) + 0x10)?;
        let mut defmt_sections = Vec::new();
        let mut symtab = None;
        let mut encoding_ok = false;
        for i in 0..shnum {
            let name = cstr(elf, shstr + u32_at(elf, hdr(i))?)?;
            if name == ".defmt" || name.starts_with(".defmt.") {
                defmt_sections.push(i);
            }
            if u32_at(elf, hdr(i) + 0x04)? == 2 {
                symtab = Some(i); // SHT_SYMTAB
            }
        }
        let symtab = symtab.ok_or("the ELF has no symbol table")?;
        if defmt_sections.is_empty() {
            return Err("the ELF has no .defmt section (not a defmt firmware?)".into());
        }
        let (off, size) = (
            u32_at(elf, hdr(symtab) + 0x10)?,
            u32_at(elf, hdr(symtab) + 0x14)?,
        );
        let strtab = u32_at(elf, hdr(u32_at(elf, hdr(symtab) + 0x18)?) + 0x10)?;
        let mut strings = HashMap::new();
        for s in (off..off + size).step_by(16) {
            let name = cstr(elf, strtab + u32_at(elf, s)?)?;
            if name == "_defmt_encoding_ = rzcobs" {
                encoding_ok = true;
            }
            let shndx = u16_at(elf, s + 14)? as usize;
            if !defmt_sections.contains(&shndx) || !name.starts_with('{') {
                continue;
            }
            let (Some(tag), Some(data)) = (json_field(name, "tag"), json_field(name, "data"))
            else {
                continue;
            };
            strings.insert(u32_at(elf, s + 4)? as u16, (tag, data));
        }
        if !encoding_ok {
            return Err("the firmware's defmt encoding is not rzcobs".into());
        }
        Ok(Table { strings })
    }

    /// Decodes a whole captured stream into text lines (one per log call).
    pub fn decode(&self, stream: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        for frame in stream.split(|&b| b == 0).filter(|f| !f.is_empty()) {
            // A frame that does not decode becomes a visible line: the run then fails the
            // comparison (or the status check) with the reason on screen.
            match rzcobs_decode(frame).and_then(|bytes| self.format(&bytes)) {
                Ok(line) => lines.push(line),
                Err(e) => lines.push(format!("<defmt: {e}>")),
            }
        }
        lines
    }

    fn format(&self, frame: &[u8]) -> Result<String> {
        let idx = u16::from_le_bytes(rd(frame, 0)?);
        let (tag, fmt) = self
            .strings
            .get(&idx)
            .ok_or_else(|| format!("unknown defmt string index {idx}"))?;
        let mut pos = 2;
        let mut out = String::new();
        if let Some(level) = tag.strip_prefix("defmt_") {
            if level != "println" {
                out.push_str(&format!("{} ", level.to_uppercase()));
            }
        }
        let mut rest = fmt.as_str();
        while let Some(i) = rest.find(['{', '}']) {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if after.starts_with(rest[i..].chars().next().unwrap()) {
                out.push_str(&rest[i..i + 1]); // `{{` or `}}`
                rest = &after[1..];
                continue;
            }
            let end = after.find('}').ok_or("unterminated defmt parameter")?;
            let param = &after[..end];
            let ty = param
                .strip_prefix('=')
                .map(|t| t.split(':').next().unwrap_or(t));
            let mut take = |n: usize| -> Result<&[u8]> {
                let b = frame.get(pos..pos + n).ok_or("defmt frame too short")?;
                pos += n;
                Ok(b)
            };
            let text = match ty {
                Some("u8") => take(1)?[0].to_string(),
                Some("i8") => (take(1)?[0] as i8).to_string(),
                Some("u16") => u16::from_le_bytes(take(2)?.try_into()?).to_string(),
                Some("i16") => i16::from_le_bytes(take(2)?.try_into()?).to_string(),
                Some("u32" | "usize") => u32::from_le_bytes(take(4)?.try_into()?).to_string(),
                Some("i32" | "isize") => i32::from_le_bytes(take(4)?.try_into()?).to_string(),
                Some("u64") => u64::from_le_bytes(take(8)?.try_into()?).to_string(),
                Some("i64") => i64::from_le_bytes(take(8)?.try_into()?).to_string(),
                Some("str") => {
                    let n = u32::from_le_bytes(take(4)?.try_into()?) as usize;
                    String::from_utf8_lossy(take(n)?).into_owned()
                }
                _ => {
                    return Err(format!("xtask's defmt decoder does not handle {{{param}}}").into())
                }
            };
            out.push_str(&text);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// Inverse of defmt's rzCOBS encoder (one frame, without its `0x00` terminator): the frame
/// is read from its end, every byte a code:
/// `0xxxxxxx`: 7 slots, LSB first, bit set = a zero byte, clear = a byte from the stream;
/// `1nnnnnnn` (< 0xFF): `n + 7` stream bytes then a zero; `0xFF`: 134 stream bytes.
fn rzcobs_decode(data: &[u8]) -> Result<Vec<u8>> {
    let mut res = Vec::with_capacity(data.len());
    let mut it = data.iter().rev().copied();
    let malformed = || "malformed rzCOBS frame".to_string();
    while let Some(x) = it.next() {
        match x {
            0 => return Err(malformed().into()),
            0x01..=0x7F => {
                for i in 0..7 {
                    if x & (1 << (6 - i)) == 0 {
                        res.push(it.next().ok_or_else(malformed)?);
                    } else {
                        res.push(0);
                    }
                }
            }
            0x80..=0xFE => {
                res.push(0);
                for _ in 0..(x & 0x7F) + 7 {
                    res.push(it.next().ok_or_else(malformed)?);
                }
            }
            0xFF => {
                for _ in 0..134 {
                    res.push(it.next().ok_or_else(malformed)?);
                }
            }
        }
    }
    res.reverse();
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::rzcobs_decode;

    /// Vectors from defmt's encoder tests (`defmt/src/encoding/rzcobs.rs`); the decoded
    /// frame may carry trailing zeros the encoder compressed away (harmless: a frame is
    /// parsed from its start).
    #[test]
    fn rzcobs_vectors() {
        let cases: &[(&[u8], &[u8])] = &[
            (&[0x01], &[0x01, 0x7e]),
            (&[0x00, 0x01], &[0x01, 0x7d]),
            (&[0x01, 0x02], &[0x01, 0x02, 0x7c]),
            (
                &[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x00],
                &[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x40],
            ),
            (
                &[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77],
                &[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x80],
            ),
        ];
        for (plain, enc) in cases {
            let dec = rzcobs_decode(enc).unwrap();
            assert!(
                dec.starts_with(plain),
                "{enc:02x?} -> {dec:02x?}, want {plain:02x?}"
            );
            assert!(dec[plain.len()..].iter().all(|&b| b == 0));
        }
    }
}
