//! Section sizes from an ELF32 little-endian file's section headers (what `size -A` shows),
//! read directly: no external tool, no dependency.

use crate::Result;

/// One allocated section.
#[derive(Debug, Clone)]
pub struct Section {
    pub name: String,
    pub size: u64,
    flags: u32,
    kind: u32,
}

const SHT_PROGBITS: u32 = 1;
const SHT_NOBITS: u32 = 8;
const SHF_WRITE: u32 = 1;
const SHF_ALLOC: u32 = 2;
const SHF_EXECINSTR: u32 = 4;

fn u16_at(b: &[u8], o: usize) -> Result<u16> {
    Ok(u16::from_le_bytes(
        b.get(o..o + 2).ok_or("ELF truncated")?.try_into()?,
    ))
}
fn u32_at(b: &[u8], o: usize) -> Result<u32> {
    Ok(u32::from_le_bytes(
        b.get(o..o + 4).ok_or("ELF truncated")?.try_into()?,
    ))
}

/// The allocated (`SHF_ALLOC`) sections of an ELF32 LE image.
pub fn sections(elf: &[u8]) -> Result<Vec<Section>> {
    if !elf.starts_with(b"\x7fELF") || elf.get(4) != Some(&1) || elf.get(5) != Some(&1) {
        return Err("not an ELF32 little-endian file".into());
    }
    let shoff = u32_at(elf, 0x20)? as usize;
    let shentsize = u16_at(elf, 0x2E)? as usize;
    let shnum = u16_at(elf, 0x30)? as usize;
    let shstrndx = u16_at(elf, 0x32)? as usize;
    let hdr = |i: usize| shoff + i * shentsize;
    let strtab = u32_at(elf, hdr(shstrndx) + 0x10)? as usize;
    let mut out = Vec::new();
    for i in 0..shnum {
        let h = hdr(i);
        let flags = u32_at(elf, h + 0x08)?;
        if flags & SHF_ALLOC == 0 {
            continue;
        }
        let name_off = strtab + u32_at(elf, h)? as usize;
        let name_len = elf[name_off..]
            .iter()
            .position(|&c| c == 0)
            .ok_or("bad section name")?;
        out.push(Section {
            name: String::from_utf8_lossy(&elf[name_off..name_off + name_len]).into_owned(),
            size: u32_at(elf, h + 0x14)? as u64,
            flags,
            kind: u32_at(elf, h + 0x04)?,
        });
    }
    Ok(out)
}

/// Memory use in the `size` (Berkeley) sense.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sizes {
    /// Code (executable sections, incl. vector table).
    pub text: u64,
    /// Read-only data (incl. the model blob and the recording).
    pub rodata: u64,
    /// Initialised data (in flash and in RAM).
    pub data: u64,
    /// Zero-initialised and uninitialised RAM.
    pub bss: u64,
}

impl Sizes {
    pub fn flash(&self) -> u64 {
        self.text + self.rodata + self.data
    }
    pub fn ram(&self) -> u64 {
        self.data + self.bss
    }
}

/// Classifies the allocated sections. riscv-rt's fictitious `.heap` and `.stack` regions
/// (the free RAM) are not counted.
pub fn sizes(elf: &[u8]) -> Result<Sizes> {
    let mut s = Sizes::default();
    for sec in sections(elf)? {
        if sec.name == ".heap" || sec.name == ".stack" {
            continue;
        }
        match sec.kind {
            SHT_NOBITS => s.bss += sec.size,
            SHT_PROGBITS if sec.flags & SHF_EXECINSTR != 0 => s.text += sec.size,
            SHT_PROGBITS if sec.flags & SHF_WRITE != 0 => s.data += sec.size,
            SHT_PROGBITS => s.rodata += sec.size,
            _ => {}
        }
    }
    Ok(s)
}
