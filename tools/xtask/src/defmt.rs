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
//! symbols in the `.defmt` sections (JSON: `{"package":..,"tag":..,"data":"<format>",..}`,
//! read with serde_json; the ELF with `crate::elf`), the symbol's value being the index.

use std::collections::HashMap;

use crate::elf::Elf;
use crate::Result;

/// Format strings by index, read from the firmware ELF.
pub struct Table {
    strings: HashMap<u16, (String, String)>, // index -> (tag, format string)
}

fn rd<const N: usize>(b: &[u8], o: usize) -> Result<[u8; N]> {
    Ok(b.get(o..o + N).ok_or("defmt frame too short")?.try_into()?)
}

impl Table {
    /// Reads the interned strings of a firmware image (its symbols in `.defmt*` sections).
    pub fn parse(elf: &[u8]) -> Result<Table> {
        let symbols = Elf::parse(elf)?.symbols()?;
        if !symbols
            .iter()
            .any(|s| s.name == "_defmt_encoding_ = rzcobs")
        {
            return Err("the firmware's defmt encoding is not rzcobs".into());
        }
        let mut strings = HashMap::new();
        let mut any_section = false;
        for s in &symbols {
            let in_defmt = s
                .section
                .as_deref()
                .is_some_and(|n| n == ".defmt" || n.starts_with(".defmt."));
            any_section |= in_defmt;
            if !in_defmt || !s.name.starts_with('{') {
                continue;
            }
            let Ok(json) = serde_json::from_str::<serde_json::Value>(&s.name) else {
                continue;
            };
            let (Some(tag), Some(data)) = (json["tag"].as_str(), json["data"].as_str()) else {
                continue;
            };
            let index = u16::try_from(s.value)
                .map_err(|_| format!("defmt string index {} out of range", s.value))?;
            strings.insert(index, (tag.to_string(), data.to_string()));
        }
        if !any_section {
            return Err("the ELF has no .defmt section (not a defmt firmware?)".into());
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
