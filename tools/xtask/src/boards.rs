//! The QEMU boards: crate directory, Rust target, emulator and machine.

use std::path::PathBuf;

use crate::Result;

/// One board crate under `boards/`.
pub struct Board {
    /// Directory and package (and binary) name.
    pub name: &'static str,
    /// Rust target triple (also in the board's `.cargo/config.toml`).
    pub target: &'static str,
    /// QEMU executable.
    pub qemu: &'static str,
    /// QEMU `-M` machine (the only place QEMU's spelling appears: `sifive_e` for the board
    /// `sifive-e`).
    pub machine: &'static str,
    /// What it emulates.
    pub cpu: &'static str,
}

pub const ALL: [Board; 5] = [
    Board {
        name: "mps2-an386",
        target: "thumbv7em-none-eabihf",
        qemu: "qemu-system-arm",
        machine: "mps2-an386",
        cpu: "Cortex-M4F",
    },
    Board {
        name: "mps2-an385",
        target: "thumbv7m-none-eabi",
        qemu: "qemu-system-arm",
        machine: "mps2-an385",
        cpu: "Cortex-M3",
    },
    Board {
        name: "microbit",
        target: "thumbv6m-none-eabi",
        qemu: "qemu-system-arm",
        machine: "microbit",
        cpu: "Cortex-M0",
    },
    Board {
        name: "mps2-an505",
        target: "thumbv8m.main-none-eabihf",
        qemu: "qemu-system-arm",
        machine: "mps2-an505",
        cpu: "Cortex-M33",
    },
    Board {
        name: "sifive-e",
        target: "riscv32imac-unknown-none-elf",
        qemu: "qemu-system-riscv32",
        machine: "sifive_e",
        cpu: "RV32IMAC",
    },
];

/// Looks a board up by name.
pub fn find(name: &str) -> Result<&'static Board> {
    ALL.iter().find(|b| b.name == name).ok_or_else(|| {
        if let Some(b) = ALL.iter().find(|b| b.machine == name) {
            return format!(
                "unknown board {name}: the board is {} (QEMU's machine name is {name})",
                b.name
            )
            .into();
        }
        let names: Vec<_> = ALL.iter().map(|b| b.name).collect();
        format!("unknown board {name} (boards: {})", names.join(" ")).into()
    })
}

impl Board {
    /// `boards/<name>`.
    pub fn dir(&self) -> PathBuf {
        crate::root().join("boards").join(self.name)
    }
    /// The ELF of a `release` or `dev` build.
    pub fn elf(&self, dev: bool) -> PathBuf {
        let profile = if dev { "debug" } else { "release" };
        target_dir().join(self.target).join(profile).join(self.name)
    }
}

/// The board crates' shared target directory (also set in each `.cargo/config.toml`).
pub fn target_dir() -> PathBuf {
    crate::root().join("target").join("boards")
}
