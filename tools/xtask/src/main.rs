//! Project tasks: `cargo xtask <command>` (alias in `.cargo/config.toml`); `cargo xtask --help`
//! prints the synopsis of each (one table, [`COMMANDS`], parsed by [`parse`]).
//!
//! ```text
//! cargo xtask qemu [BOARD...]            build, run under QEMU, compare with the host, sizes
//!       --show                           just print each board's decoded output
//!       --expected cli|file              host reference: `tinyrnn run --raw` (built here) or
//!                                        boards/qemu-common/expected*.txt (default: cli;
//!                                        TINYRNN_EXPECTED=file)
//!       --timeout SECS                   per-board QEMU time limit (default 60)
//!       --dev                            dev profile (opt-level "s", overflow checks) instead of release
//!       --features LIST                  build the boards with only these tinyrnn features
//!                                        (`minimal` = lstm,int8, what the bundled model needs;
//!                                        without `graph-models` only dataset.txt's model runs)
//! cargo xtask size [--dev] [--timeout SECS] [--features LIST] [BOARD...]
//!                                        build + run, print flash / RAM / stack per board
//! cargo xtask size minimal [--top N] [TARGET...]
//!                                        the smallest int8 LSTM classifier (boards/minimal)
//!                                        for thumbv6m and thumbv7em: sections, symbols largest
//!                                        first (top N per section, default 30), .text goal
//!                                        16 KB (fails above it; src/size.rs)
//! cargo xtask bless                      re-quantize the further QEMU blobs, write boards/qemu-common/expected*.txt
//! cargo xtask make-test-blob             regenerate the bring-up data in boards/qemu-common/data/
//! cargo xtask bench [--json] [--check] [--update] [--timeout SECS] [MACHINE...]
//!                                        instructions per step under QEMU (BENCHMARKS.md),
//!                                        compared with the committed figures (fails on > 1 %
//!                                        more, src/gate.rs); --check: only the on-target
//!                                        bit-exactness checks and that comparison (CI);
//!                                        --update: rewrite BENCHMARKS.md's results and figures;
//!                                        --timeout: per-machine limit (default 300)
//! cargo xtask test [--list] [FILTER...]  the whole test suite (src/ci.rs; what .ci/run runs)
//! cargo xtask demo [--board BOARD]       quantize the vowels LSTM and run it on a board (src/ci.rs)
//!                                        (test and demo first install what is missing: src/setup.rs)
//! cargo xtask setup [--check]            install the cross targets and QEMU if missing;
//!                                        --check: only say what is missing
//! cargo xtask ota [--timeout SECS]       signed model update over the UART of QEMU mps2-an386
//!                                        (boards/mps2-an386-ota, src/ota.rs): switch, then a
//!                                        forged, untrusted, rolled-back and truncated blob refused
//! cargo xtask template                   build boards/template for thumbv7em and thumbv6m, run
//!                                        both under QEMU, compare with `tinyrnn run --raw`
//! ```
//! Boards: mps2-an386 mps2-an385 microbit mps2-an505 sifive-e (default: all); bench machines:
//! mps2-an386 microbit sifive-e. A board is named by its directory under `boards/`; QEMU's
//! machine name (`-M sifive_e`) appears only in `src/boards.rs`. Board crates build into
//! `target/boards/` (shared, see boards/README.md).

mod bench;
mod boards;
mod ci;
mod defmt;
mod elf;
mod gate;
mod ota;
mod qemu;
mod setup;
mod size;
mod testdata;

use std::path::PathBuf;
use std::process::ExitCode;

pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The repository root (this crate lives in `<root>/tools/xtask`).
pub fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// One subcommand: its synopsis, flags, options that take a value, and whether it takes
/// positional arguments. `cargo xtask --help` and every usage error print from this table.
struct Cmd {
    name: &'static str,
    synopsis: &'static str,
    flags: &'static [&'static str],
    options: &'static [&'static str],
    positional: bool,
}

const COMMANDS: &[Cmd] = &[
    Cmd {
        name: "qemu",
        synopsis:
            "[--show] [--dev] [--expected cli|file] [--timeout SECS] [--features LIST] [BOARD...]",
        flags: &["--show", "--dev"],
        options: &["--expected", "--timeout", "--features"],
        positional: true,
    },
    Cmd {
        name: "size",
        synopsis:
            "[--dev] [--timeout SECS] [--features LIST] [BOARD...] | minimal [--top N] [TARGET...]",
        flags: &["--dev"],
        options: &["--timeout", "--features", "--top"],
        positional: true,
    },
    Cmd {
        name: "bless",
        synopsis: "",
        flags: &[],
        options: &[],
        positional: false,
    },
    Cmd {
        name: "make-test-blob",
        synopsis: "",
        flags: &[],
        options: &[],
        positional: false,
    },
    Cmd {
        name: "bench",
        synopsis: "[--json] [--check] [--update] [--timeout SECS] [MACHINE...]",
        flags: &["--json", "--check", "--update"],
        options: &["--timeout"],
        positional: true,
    },
    Cmd {
        name: "test",
        synopsis: "[--list] [FILTER...]",
        flags: &["--list"],
        options: &[],
        positional: true,
    },
    Cmd {
        name: "demo",
        synopsis: "[--board BOARD]",
        flags: &[],
        options: &["--board"],
        positional: false,
    },
    Cmd {
        name: "setup",
        synopsis: "[--check]",
        flags: &["--check"],
        options: &[],
        positional: false,
    },
    Cmd {
        name: "ota",
        synopsis: "[--timeout SECS]",
        flags: &[],
        options: &["--timeout"],
        positional: false,
    },
    Cmd {
        name: "template",
        synopsis: "",
        flags: &[],
        options: &[],
        positional: false,
    },
];

fn usage() -> String {
    let mut s = String::new();
    for (i, c) in COMMANDS.iter().enumerate() {
        let lead = if i == 0 { "usage:" } else { "      " };
        let line = format!("{lead} cargo xtask {} {}", c.name, c.synopsis);
        s += line.trim_end();
        s.push('\n');
    }
    let boards: Vec<&str> = boards::ALL.iter().map(|b| b.name).collect();
    s += &format!(
        "BOARD: {} (default: all)\nMACHINE: {} (default: all)",
        boards.join(" "),
        bench::MACHINES.join(" ")
    );
    s
}

/// The arguments of one subcommand, checked against its [`Cmd`] entry.
#[derive(Default)]
struct Parsed {
    flags: Vec<&'static str>,
    options: Vec<(&'static str, String)>,
    positional: Vec<String>,
}

impl Parsed {
    fn flag(&self, name: &str) -> bool {
        self.flags.contains(&name)
    }
    fn option(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
    fn number(&self, name: &str) -> Result<Option<u64>> {
        self.option(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| format!("{name} {v}: not a whole number").into())
            })
            .transpose()
    }
}

/// Parses `args` for `cmd`; an unknown option or a missing value is an error that ends with
/// that subcommand's usage line.
fn parse(cmd: &Cmd, args: &[String]) -> Result<Parsed> {
    let fail = |msg: String| -> Box<dyn std::error::Error> {
        let line = format!("usage: cargo xtask {} {}", cmd.name, cmd.synopsis);
        format!("{msg}\n{}", line.trim_end()).into()
    };
    let mut p = Parsed::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some(&f) = cmd.flags.iter().find(|f| **f == a) {
            p.flags.push(f);
        } else if let Some(&o) = cmd.options.iter().find(|o| **o == a) {
            let v = it
                .next()
                .ok_or_else(|| fail(format!("{o} needs a value")))?;
            p.options.push((o, v.clone()));
        } else if a.starts_with('-') {
            return Err(fail(format!("unknown option {a}")));
        } else if cmd.positional {
            p.positional.push(a.clone());
        } else {
            return Err(fail(format!("unexpected argument {a}")));
        }
    }
    Ok(p)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `TINYRNN_BLOB=path` replaces the dataset's model, `TINYRNN_DATASET=path` the whole
    // dataset file (boards/qemu-common/dataset.txt), for the firmware build (boards/board-support/build.rs)
    // and the host comparison alike: make them absolute for the child builds.
    for var in ["TINYRNN_BLOB", "TINYRNN_DATASET"] {
        if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
            match std::fs::canonicalize(&p) {
                Ok(abs) => std::env::set_var(var, abs),
                Err(e) => {
                    eprintln!("xtask: {var}={}: {e}", PathBuf::from(p).display());
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<bool> {
    let Some((name, rest)) = args.split_first() else {
        println!("{}", usage());
        return Ok(false);
    };
    if matches!(name.as_str(), "-h" | "--help" | "help") {
        println!("{}", usage());
        return Ok(true);
    }
    let cmd = COMMANDS
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| format!("unknown command {name}\n{}", usage()))?;
    let p = parse(cmd, rest)?;
    match cmd.name {
        "size" if p.positional.first().is_some_and(|b| b == "minimal") => {
            let top = p.number("--top")?.unwrap_or(30);
            size::run(&p.positional[1..], usize::try_from(top)?)
        }
        "qemu" | "size" => {
            if p.option("--top").is_some() {
                return Err("--top is an option of `cargo xtask size minimal`".into());
            }
            let mut opts = qemu::Options {
                size_only: cmd.name == "size",
                show: p.flag("--show"),
                dev: p.flag("--dev"),
                features: p.option("--features").map(str::to_string),
                ..qemu::Options::default()
            };
            if let Some(e) = p.option("--expected") {
                opts.expected = qemu::Expected::parse(e)?;
            }
            if let Some(t) = p.number("--timeout")? {
                opts.timeout = t;
            }
            opts.boards = p
                .positional
                .iter()
                .map(|b| boards::find(b))
                .collect::<Result<_>>()?;
            if opts.boards.is_empty() {
                opts.boards = boards::ALL.iter().collect();
            }
            qemu::run(&opts)
        }
        "bless" => qemu::bless().map(|_| true),
        "make-test-blob" => {
            testdata::make(&root().join("boards/qemu-common/data"))?;
            Ok(true)
        }
        "bench" => {
            let mut machines = p
                .positional
                .iter()
                .map(|m| bench::machine(m))
                .collect::<Result<Vec<_>>>()?;
            if machines.is_empty() {
                machines = bench::MACHINES
                    .iter()
                    .map(|m| bench::machine(m))
                    .collect::<Result<_>>()?;
            }
            if p.flag("--update") && (p.flag("--check") || p.flag("--json")) {
                return Err(
                    "--update measures everything (the tables too): not with --check or --json"
                        .into(),
                );
            }
            bench::run(&bench::Options {
                machines,
                json: p.flag("--json"),
                check: p.flag("--check"),
                update: p.flag("--update"),
                timeout: p.number("--timeout")?.unwrap_or(300),
            })
        }
        "test" => ci::test(p.flag("--list"), &p.positional),
        "demo" => ci::demo(p.option("--board").unwrap_or("mps2-an386")),
        "setup" => setup::ensure(p.flag("--check")),
        "template" => qemu::template(),
        "ota" => ota::run(p.number("--timeout")?.unwrap_or(120)),
        other => Err(format!("command {other} has no handler").into()),
    }
}

#[cfg(test)]
mod tests {
    use super::{parse, COMMANDS};

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_against_the_table() {
        let qemu = COMMANDS.iter().find(|c| c.name == "qemu").unwrap();
        let p = parse(qemu, &args(&["--show", "--timeout", "9", "microbit"])).unwrap();
        assert!(p.flag("--show") && !p.flag("--dev"));
        assert_eq!(p.number("--timeout").unwrap(), Some(9));
        assert_eq!(p.positional, ["microbit"]);
        let e = parse(qemu, &args(&["--json"])).err().unwrap().to_string();
        assert_eq!(
            e,
            "unknown option --json\nusage: cargo xtask qemu [--show] [--dev] [--expected cli|file] \
             [--timeout SECS] [--features LIST] [BOARD...]"
        );
        let e = parse(qemu, &args(&["--timeout"]))
            .err()
            .unwrap()
            .to_string();
        assert!(e.starts_with("--timeout needs a value\n"), "{e}");
        let p = parse(qemu, &args(&["--timeout", "x"])).unwrap();
        assert!(p.number("--timeout").is_err());
        let bless = COMMANDS.iter().find(|c| c.name == "bless").unwrap();
        let e = parse(bless, &args(&["x"])).err().unwrap().to_string();
        assert_eq!(e, "unexpected argument x\nusage: cargo xtask bless");
    }
}
