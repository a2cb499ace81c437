//! The one ELF reader of xtask (the `object` crate, ELF only): section sizes (what `size -A`
//! shows) for `qemu`/`size`, symbols for `bench` (marker addresses, functions) and the defmt
//! decoder (interned format strings). Every firmware here is ELF32 little-endian.

use object::elf::{SHF_ALLOC, SHF_EXECINSTR, SHF_WRITE, SHT_NOBITS, SHT_PROGBITS, STT_FUNC};
use object::read::elf::{ElfFile32, FileHeader, SectionHeader};
use object::{LittleEndian, Object, ObjectSection, ObjectSymbol};

use crate::Result;

/// A parsed firmware image.
pub struct Elf<'a>(ElfFile32<'a, LittleEndian>);

/// One symbol of the ELF's `.symtab`.
#[derive(Debug, Clone)]
pub struct Symbol {
    pub name: String,
    /// `st_value` as stored (Thumb functions have bit 0 set).
    pub value: u64,
    pub size: u64,
    /// `STT_*`.
    pub kind: u8,
    /// Name of the section it is defined in, if any.
    pub section: Option<String>,
}

impl Symbol {
    /// `STT_FUNC`.
    pub fn is_func(&self) -> bool {
        self.kind == STT_FUNC
    }
    /// The code or data address (Thumb bit cleared).
    pub fn addr(&self) -> u64 {
        self.value & !1
    }
}

/// Memory use in the `size` (Berkeley) sense.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sizes {
    /// Code (executable sections; cortex-m-rt's vector table is not one: it counts as
    /// read-only data).
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

impl<'a> Elf<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Elf<'a>> {
        let file = ElfFile32::<LittleEndian>::parse(bytes)
            .map_err(|e| format!("not an ELF32 little-endian file: {e}"))?;
        if !file.elf_header().is_little_endian() {
            return Err("not a little-endian ELF".into());
        }
        Ok(Elf(file))
    }

    /// The allocated sections classified as `size` does. riscv-rt's fictitious `.heap` and
    /// `.stack` regions (the free RAM) are not counted.
    pub fn sizes(&self) -> Result<Sizes> {
        let e = LittleEndian;
        let mut s = Sizes::default();
        for sec in self.0.sections() {
            let h = sec.elf_section_header();
            let flags = h.sh_flags(e);
            let name = sec.name().unwrap_or("");
            if flags & SHF_ALLOC == 0 || name == ".heap" || name == ".stack" {
                continue;
            }
            let size = u64::from(h.sh_size(e));
            match h.sh_type(e) {
                SHT_NOBITS => s.bss += size,
                SHT_PROGBITS if flags & SHF_EXECINSTR != 0 => s.text += size,
                SHT_PROGBITS if flags & SHF_WRITE != 0 => s.data += size,
                SHT_PROGBITS => s.rodata += size,
                _ => {}
            }
        }
        Ok(s)
    }

    /// Every named symbol of `.symtab`.
    pub fn symbols(&self) -> Result<Vec<Symbol>> {
        if self.0.elf_symbol_table().is_empty() {
            return Err("the ELF has no symbol table".into());
        }
        let mut out = Vec::new();
        for sym in self.0.symbols() {
            let name = String::from_utf8_lossy(sym.name_bytes()?).into_owned();
            if name.is_empty() {
                continue;
            }
            let section = match sym.section_index() {
                Some(i) => Some(self.0.section_by_index(i)?.name()?.to_string()),
                None => None,
            };
            out.push(Symbol {
                name,
                value: sym.address(),
                size: sym.size(),
                kind: sym.elf_symbol().st_type(),
                section,
            });
        }
        Ok(out)
    }
}
