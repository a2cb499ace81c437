//! Prerequisites: what `cargo xtask demo` and `cargo xtask test` install before they start
//! (and `cargo xtask setup [--check]` alone).
//!
//! * the Rust cross targets ([`TARGETS`]): `rustup target add`;
//! * QEMU >= 9 (`qemu-system-arm`, `qemu-system-riscv32`; the instruction-count plugin needs
//!   the plugin API of QEMU 9, Debian bookworm has 7.2): on bookworm from bookworm-backports
//!   (the source is added if no apt source names it), on another apt system from its own
//!   archive. That needs root; run as another user, the command stops with one line giving
//!   the exact command to run as root.
//!
//! The nightly toolchain and cargo-fuzz, which only the fuzz smoke step needs, are installed
//! by that step (`tests/fuzz/smoke.sh`).
//!
//! [`probe`] looks at the machine, [`plan`] decides (a pure function, unit-tested below),
//! [`ensure`] carries the plan out.

use std::path::Path;
use std::process::Command;

use crate::Result;

/// Rust targets the suite cross-compiles for.
pub const TARGETS: &[&str] = &[
    "thumbv6m-none-eabi",
    "thumbv7m-none-eabi",
    "thumbv7em-none-eabihf",
    "thumbv8m.main-none-eabihf",
    "riscv32imac-unknown-none-elf",
    "riscv32imc-unknown-none-elf",
];

/// The emulators the suite runs.
pub const QEMU_BINARIES: [&str; 2] = ["qemu-system-arm", "qemu-system-riscv32"];
/// The Debian packages that hold them.
pub const QEMU_PACKAGES: [&str; 2] = ["qemu-system-arm", "qemu-system-misc"];
/// Oldest QEMU major version that works.
pub const QEMU_MIN_MAJOR: u32 = 9;

const BACKPORTS: &str = "bookworm-backports";
const BACKPORTS_SOURCES: &str = "/etc/apt/sources.list.d/bookworm-backports.sources";
const BACKPORTS_LIST: &str = "/etc/apt/sources.list.d/bookworm-backports.list";
const DEBIAN_SOURCES: &str = "/etc/apt/sources.list.d/debian.sources";
const BACKPORTS_LINE: &str = "deb http://deb.debian.org/debian bookworm-backports main";

/// What the machine has.
#[derive(Debug, Clone, Default)]
pub struct Found {
    /// `rustup target list --installed` ran.
    pub rustup: bool,
    /// Its output, one target per entry.
    pub targets: Vec<String>,
    /// The first line of `<binary> --version` for each of [`QEMU_BINARIES`] (None: it did
    /// not run).
    pub qemu: Vec<(&'static str, Option<String>)>,
    /// Running as root.
    pub root: bool,
    /// `apt-get` is on the PATH.
    pub apt: bool,
    /// `VERSION_CODENAME` of /etc/os-release.
    pub codename: Option<String>,
    /// An apt source already names bookworm-backports.
    pub backports: bool,
}

/// One thing to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `rustup target add <targets>`.
    AddTargets(Vec<String>),
    /// `apt-get install` [`QEMU_PACKAGES`], from bookworm-backports (added first unless
    /// already configured) when `backports`.
    InstallQemu { backports: bool, add_source: bool },
}

/// What [`ensure`] will do, and what it cannot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// What to install.
    pub actions: Vec<Action>,
    /// What is missing and cannot be installed from here: one line each, with the exact
    /// command that fixes it.
    pub blocked: Vec<String>,
}

/// The major version in `QEMU emulator version 10.0.2 (Debian ...)`.
pub fn qemu_major(version_line: &str) -> Option<u32> {
    let rest = version_line.split("version ").nth(1)?;
    rest.split('.').next()?.trim().parse().ok()
}

/// The `apt-get install` command line for QEMU.
fn apt_install(backports: bool) -> String {
    let from = if backports {
        format!("-t {BACKPORTS} ")
    } else {
        String::new()
    };
    format!(
        "apt-get install -y --no-install-recommends {from}{}",
        QEMU_PACKAGES.join(" ")
    )
}

/// Decides what to install on a machine like `f`.
pub fn plan(f: &Found) -> Plan {
    let mut p = Plan::default();
    let absent: Vec<String> = TARGETS
        .iter()
        .filter(|t| !f.targets.iter().any(|i| i == *t))
        .map(|t| t.to_string())
        .collect();
    if !absent.is_empty() {
        if f.rustup {
            p.actions.push(Action::AddTargets(absent));
        } else {
            p.blocked.push(format!(
                "rustup is missing (the Rust cross targets come from it): install it from \
                 https://rustup.rs, then run `rustup target add {}`",
                absent.join(" ")
            ));
        }
    }
    let qemu_ok = QEMU_BINARIES.iter().all(|b| {
        f.qemu.iter().any(|(name, v)| {
            name == b
                && v.as_deref()
                    .and_then(qemu_major)
                    .is_some_and(|m| m >= QEMU_MIN_MAJOR)
        })
    });
    if qemu_ok {
        return p;
    }
    let what = format!(
        "QEMU >= {QEMU_MIN_MAJOR} ({}) is missing",
        QEMU_BINARIES.join(", ")
    );
    if !f.apt {
        p.blocked.push(format!(
            "{what}: install it with your system's package manager"
        ));
        return p;
    }
    let backports = f.codename.as_deref() == Some("bookworm");
    let add_source = backports && !f.backports;
    if f.root {
        p.actions.push(Action::InstallQemu {
            backports,
            add_source,
        });
    } else {
        let mut cmd = Vec::new();
        if add_source {
            cmd.push(format!("echo '{BACKPORTS_LINE}' > {BACKPORTS_LIST}"));
        }
        cmd.push("apt-get update".to_string());
        cmd.push(apt_install(backports));
        p.blocked.push(format!(
            "{what}; as root, run: sudo sh -c \"{}\"",
            cmd.join(" && ")
        ));
    }
    p
}

fn first_line(cmd: &str, args: &[&str]) -> Option<String> {
    let o = Command::new(cmd).args(args).output().ok()?;
    if !o.status.success() {
        return None;
    }
    Some(
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()?
            .to_string(),
    )
}

/// Whether any apt source file names bookworm-backports.
fn backports_configured() -> bool {
    let mut files = vec![Path::new("/etc/apt/sources.list").to_path_buf()];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        files.extend(
            dir.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "list" || e == "sources")),
        );
    }
    files.iter().any(|p| {
        std::fs::read_to_string(p).is_ok_and(|t| {
            t.lines()
                .any(|l| !l.trim_start().starts_with('#') && l.contains(BACKPORTS))
        })
    })
}

/// Looks at the machine.
pub fn probe() -> Found {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .ok()
        .filter(|o| o.status.success());
    let codename = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("VERSION_CODENAME=").map(str::to_string))
        })
        .map(|c| c.trim_matches('"').to_string());
    Found {
        rustup: installed.is_some(),
        targets: installed
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .map(|l| l.trim().to_string())
                    .collect()
            })
            .unwrap_or_default(),
        qemu: QEMU_BINARIES
            .iter()
            .map(|b| (*b, first_line(b, &["--version"])))
            .collect(),
        root: first_line("id", &["-u"]).as_deref() == Some("0"),
        apt: first_line("apt-get", &["--version"]).is_some(),
        codename,
        backports: backports_configured(),
    }
}

/// The bookworm-backports source in deb822 form: the first stanza of `debian_sources` (same
/// mirror and keyring) with its suites replaced; None if it has no `Suites:` line.
pub fn backports_stanza(debian_sources: &str) -> Option<String> {
    let stanza: Vec<&str> = debian_sources
        .lines()
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| !l.trim().is_empty())
        .collect();
    if !stanza.iter().any(|l| l.starts_with("Suites:")) {
        return None;
    }
    let lines: Vec<String> = stanza
        .iter()
        .map(|l| {
            if l.starts_with("Suites:") {
                format!("Suites: {BACKPORTS}")
            } else {
                l.to_string()
            }
        })
        .collect();
    Some(lines.join("\n") + "\n")
}

fn run(what: &str, cmd: &mut Command) -> Result<()> {
    eprintln!("setup: {what}");
    if cmd.status()?.success() {
        Ok(())
    } else {
        Err(format!("setup: `{what}` failed").into())
    }
}

fn install(a: &Action) -> Result<()> {
    match a {
        Action::AddTargets(t) => run(
            &format!("rustup target add {}", t.join(" ")),
            Command::new("rustup").args(["target", "add"]).args(t),
        ),
        Action::InstallQemu {
            backports,
            add_source,
        } => {
            if *add_source {
                // Same mirror and keyring as the main archive when it is in deb822 form.
                let stanza = std::fs::read_to_string(DEBIAN_SOURCES)
                    .ok()
                    .and_then(|t| backports_stanza(&t));
                let (path, text) = match stanza {
                    Some(s) => (BACKPORTS_SOURCES, s),
                    None => (BACKPORTS_LIST, format!("{BACKPORTS_LINE}\n")),
                };
                eprintln!("setup: adding the apt source {path}");
                std::fs::write(path, text)?;
            }
            run(
                "apt-get update",
                Command::new("apt-get").args(["update", "-qq"]),
            )?;
            let line = apt_install(*backports);
            let mut words = line.split(' ');
            let mut c = Command::new(words.next().unwrap_or("apt-get"));
            c.args(words)
                .arg("-qq")
                .env("DEBIAN_FRONTEND", "noninteractive");
            run(&line, &mut c)
        }
    }
}

/// Installs what is missing (or, with `check_only`, only says what it would do). Returns
/// false, after one line per problem, if something is missing that cannot be installed here.
pub fn ensure(check_only: bool) -> Result<bool> {
    let p = plan(&probe());
    if check_only {
        for a in &p.actions {
            match a {
                Action::AddTargets(t) => {
                    println!("would run: rustup target add {}", t.join(" "))
                }
                Action::InstallQemu {
                    backports,
                    add_source,
                } => {
                    if *add_source {
                        println!("would add an apt source for {BACKPORTS}");
                    }
                    println!("would run: apt-get update && {}", apt_install(*backports));
                }
            }
        }
        for b in &p.blocked {
            println!("missing: {b}");
        }
        if p.actions.is_empty() && p.blocked.is_empty() {
            println!("setup: nothing missing");
        }
        return Ok(p.actions.is_empty() && p.blocked.is_empty());
    }
    // What can be installed is, even when something else cannot (e.g. the targets without
    // root); then one line per missing piece.
    for a in &p.actions {
        install(a)?;
    }
    if !p.blocked.is_empty() {
        for b in &p.blocked {
            eprintln!("xtask: {b}");
        }
        return Ok(false);
    }
    if !p.actions.is_empty() {
        // Installed: the machine must now be complete (e.g. not an apt archive whose QEMU
        // is older than 9).
        let after = plan(&probe());
        if !after.actions.is_empty() || !after.blocked.is_empty() {
            return Err(format!("setup: still missing after installing: {after:?}").into());
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete() -> Found {
        Found {
            rustup: true,
            targets: TARGETS.iter().map(|t| t.to_string()).collect(),
            qemu: QEMU_BINARIES
                .iter()
                .map(|b| {
                    (
                        *b,
                        Some("QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2)".into()),
                    )
                })
                .collect(),
            root: false,
            apt: true,
            codename: Some("bookworm".into()),
            backports: false,
        }
    }

    #[test]
    fn versions() {
        assert_eq!(
            qemu_major("QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)"),
            Some(10)
        );
        assert_eq!(qemu_major("QEMU emulator version 7.2.15"), Some(7));
        assert_eq!(qemu_major("QEMU emulator version 9.0.0"), Some(9));
        assert_eq!(qemu_major("qemu-system-arm: garbage"), None);
    }

    #[test]
    fn nothing_to_do_on_a_complete_machine() {
        assert_eq!(plan(&complete()), Plan::default());
    }

    #[test]
    fn missing_targets_are_added_with_rustup() {
        let mut f = complete();
        f.targets
            .retain(|t| t != "thumbv6m-none-eabi" && t != "riscv32imc-unknown-none-elf");
        let p = plan(&f);
        assert_eq!(
            p.actions,
            [Action::AddTargets(vec![
                "thumbv6m-none-eabi".into(),
                "riscv32imc-unknown-none-elf".into()
            ])]
        );
        assert!(p.blocked.is_empty());
        f.rustup = false;
        let p = plan(&f);
        assert!(p.actions.is_empty());
        assert_eq!(p.blocked.len(), 1);
        assert!(
            p.blocked[0]
                .contains("rustup target add thumbv6m-none-eabi riscv32imc-unknown-none-elf"),
            "{p:?}"
        );
    }

    #[test]
    fn old_or_absent_qemu_is_installed_from_backports_as_root() {
        for qemu in [
            Some("QEMU emulator version 7.2.15 (Debian 1:7.2+dfsg-7+deb12u7)".to_string()),
            None,
        ] {
            let mut f = complete();
            f.root = true;
            f.qemu[1].1 = qemu; // qemu-system-riscv32 too old / absent
            assert_eq!(
                plan(&f).actions,
                [Action::InstallQemu {
                    backports: true,
                    add_source: true
                }]
            );
            f.backports = true;
            assert_eq!(
                plan(&f).actions,
                [Action::InstallQemu {
                    backports: true,
                    add_source: false
                }]
            );
            // Another apt system (e.g. trixie): its own archive.
            f.codename = Some("trixie".into());
            assert_eq!(
                plan(&f).actions,
                [Action::InstallQemu {
                    backports: false,
                    add_source: false
                }]
            );
        }
    }

    #[test]
    fn without_root_one_line_gives_the_command() {
        let mut f = complete();
        f.qemu[0].1 = None;
        let p = plan(&f);
        assert!(p.actions.is_empty());
        assert_eq!(
            p.blocked,
            [format!(
                "QEMU >= 9 (qemu-system-arm, qemu-system-riscv32) is missing; as root, run: \
                 sudo sh -c \"echo '{BACKPORTS_LINE}' > {BACKPORTS_LIST} && apt-get update && \
                 apt-get install -y --no-install-recommends -t bookworm-backports \
                 qemu-system-arm qemu-system-misc\""
            )]
        );
        f.apt = false;
        let p = plan(&f);
        assert_eq!(p.blocked.len(), 1);
        assert!(p.blocked[0].contains("package manager"), "{p:?}");
    }

    #[test]
    fn backports_stanza_keeps_mirror_and_keyring() {
        let debian = "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n\
                      Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n\
                      Types: deb\nURIs: http://security.example\nSuites: bookworm-security\n";
        assert_eq!(
            backports_stanza(debian).unwrap(),
            "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm-backports\n\
             Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        );
        assert_eq!(backports_stanza("deb http://x bookworm main\n"), None);
    }
}
