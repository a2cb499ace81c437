//! Project tasks: `cargo xtask <command>` (alias in `.cargo/config.toml`).
//!
//! ```text
//! cargo xtask qemu [BOARD...]            build, run under QEMU, compare with the host, sizes
//!       --show                           just print each board's decoded output
//!       --expected cli|file              host reference: `tinyrnn run --raw` (built here) or
//!                                        boards/qemu-common/expected.txt (default: cli; TINYRNN_EXPECTED=file)
//!       --timeout SECS                   per-board QEMU time limit (default 60)
//!       --dev                            dev profile (opt-level "s", overflow checks) instead of release
//!       --features LIST                  build the boards with only these tinyrnn features
//!                                        (`minimal` = lstm,int8, what the bundled model needs)
//! cargo xtask size [--features LIST] [BOARD...]
//!                                        build + run, print flash / RAM / stack per board
//! cargo xtask bless                      write boards/qemu-common/expected.txt from the host CLI
//! cargo xtask make-test-blob             regenerate the bring-up data in boards/qemu-common/data/
//! cargo xtask test [--list] [FILTER]     the whole test suite (src/ci.rs; what .ci/run runs)
//! cargo xtask demo [--board BOARD]       quantize the vowels LSTM and run it on a board (src/ci.rs)
//! cargo xtask bench [--json] [--check] [MACHINE...]
//!                                        instructions per step under QEMU (BENCHMARKS.md);
//!                                        --check: only the on-target bit-exactness checks
//! ```
//! Boards: mps2-an386 mps2-an385 microbit mps2-an505 sifive-e (default: all). Board crates
//! build into `target/boards/` (shared, see boards/README.md).

mod bench;
mod boards;
mod ci;
mod defmt;
mod elf;
mod qemu;
mod testdata;

use std::path::PathBuf;
use std::process::ExitCode;

pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The repository root (this crate lives in `<root>/tools/xtask`).
pub fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

const USAGE: &str =
    "usage: cargo xtask qemu [--show] [--dev] [--expected cli|file] [--timeout SECS] [--features LIST] [BOARD...]
       cargo xtask size [--dev] [--features LIST] [BOARD...]
       cargo xtask bless
       cargo xtask make-test-blob
       cargo xtask bench [--json] [--check] [--timeout SECS] [mps2-an386|microbit|sifive_e...]
       cargo xtask test [--list] [FILTER]
       cargo xtask demo [--board BOARD]
boards: mps2-an386 mps2-an385 microbit mps2-an505 sifive-e";

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
    let Some((cmd, rest)) = args.split_first() else {
        println!("{USAGE}");
        return Ok(false);
    };
    match cmd.as_str() {
        "qemu" | "size" => {
            let mut opts = qemu::Options {
                size_only: cmd == "size",
                ..qemu::Options::default()
            };
            let mut it = rest.iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--show" => opts.show = true,
                    "--dev" => opts.dev = true,
                    "--expected" => {
                        opts.expected =
                            qemu::Expected::parse(it.next().ok_or("--expected needs cli|file")?)?
                    }
                    "--timeout" => {
                        opts.timeout = it.next().ok_or("--timeout needs seconds")?.parse()?
                    }
                    "--features" => {
                        opts.features = Some(
                            it.next()
                                .ok_or("--features needs a list, e.g. minimal or lstm,int8")?
                                .clone(),
                        )
                    }
                    b if !b.starts_with('-') => opts.boards.push(boards::find(b)?),
                    _ => return Err(format!("unknown option {a}\n{USAGE}").into()),
                }
            }
            if opts.boards.is_empty() {
                opts.boards = boards::ALL.iter().collect();
            }
            qemu::run(&opts)
        }
        "bless" => qemu::bless().map(|_| true),
        "bench" => bench::run(&bench::parse(rest)?),
        "test" => ci::test(rest),
        "demo" => ci::demo(rest),
        "make-test-blob" => {
            testdata::make(&root().join("boards/qemu-common/data"))?;
            Ok(true)
        }
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(true)
        }
        _ => Err(format!("unknown command {cmd}\n{USAGE}").into()),
    }
}
