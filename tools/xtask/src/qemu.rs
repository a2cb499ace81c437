//! `cargo xtask qemu` / `size` / `bless`: build the board firmware, run it under QEMU with
//! semihosting, decode its defmt output and compare the `seq=` lines with the host.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use std::{fs, thread};

use crate::boards::{self, Board};
use crate::defmt::Table;
use crate::{elf, root, Result};
use tinyrnn_host_npy::{Dataset, EXTRA_DATASETS};

/// Where the expected `seq=` lines come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// `target/release/tinyrnn run BLOB --input REC --lengths LEN --raw`, built first.
    Cli,
    /// `boards/qemu-common/expected.txt` (committed; `cargo xtask bless` rewrites it).
    File,
}

impl Expected {
    pub fn parse(s: &str) -> Result<Expected> {
        match s {
            "cli" => Ok(Expected::Cli),
            "file" => Ok(Expected::File),
            _ => Err(format!("--expected {s}: use cli or file").into()),
        }
    }
}

impl Default for Expected {
    /// `cli`, unless `TINYRNN_EXPECTED=file`.
    fn default() -> Self {
        match std::env::var("TINYRNN_EXPECTED").as_deref() {
            Ok("file") => Expected::File,
            _ => Expected::Cli,
        }
    }
}

pub struct Options {
    pub boards: Vec<&'static Board>,
    pub show: bool,
    pub size_only: bool,
    pub expected: Expected,
    pub timeout: u64,
    /// Build with the dev profile (`opt-level = "s"`, overflow checks) instead of release.
    pub dev: bool,
    /// Build the boards with `--no-default-features --features <this>` (e.g. `minimal`, or
    /// `lstm,int8`: tinyrnn's features, passed through qemu-common) instead of every cell
    /// kind and precision.
    pub features: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            boards: Vec::new(),
            show: false,
            size_only: false,
            expected: Expected::default(),
            timeout: 60,
            dev: false,
            features: None,
        }
    }
}

/// `boards/qemu-common/dataset.txt`, or the file `TINYRNN_DATASET` names (as the firmware's build
/// script reads it: `boards/board-support/build.rs`).
pub(crate) fn dataset() -> Result<Dataset> {
    let path = match std::env::var_os("TINYRNN_DATASET").filter(|p| !p.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => root().join("boards/qemu-common/dataset.txt"),
    };
    Ok(Dataset::read(&path)?)
}

/// One dataset the QEMU firmware streams: `dataset.txt`'s (name `main`, printed first, no
/// header) or one of `tinyrnn_host_npy::EXTRA_DATASETS` (feature `graph-models`), whose lines
/// follow a `dataset=<name> ...` line.
pub(crate) struct Set {
    pub name: &'static str,
    pub ds: Dataset,
}

/// The datasets a firmware built with `features` (`None`: the default features) runs, in order.
fn sets(features: Option<&str>) -> Result<Vec<Set>> {
    let mut sets = vec![Set {
        name: "main",
        ds: dataset()?,
    }];
    let graph = features.is_none_or(|f| f.split(',').any(|f| f.trim() == "graph-models"));
    if graph {
        for (name, file) in EXTRA_DATASETS {
            let path = root().join("boards/qemu-common").join(file);
            sets.push(Set {
                name,
                ds: Dataset::read_file(&path)?,
            });
        }
    }
    Ok(sets)
}

/// `expected.txt` for `main`, `expected-<name>.txt` for the others.
fn expected_path(set: &str) -> PathBuf {
    let file = match set {
        "main" => "expected.txt".to_string(),
        _ => format!("expected-{set}.txt"),
    };
    root().join("boards/qemu-common").join(file)
}

/// Only the lines that must match the host byte for byte.
pub(crate) fn seq_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with("seq="))
        .map(str::to_string)
        .collect()
}

/// The firmware's output split by dataset: the lines before the first `dataset=` line
/// belong to `main`, then each `dataset=<name> ...` line starts the group `<name>`.
fn groups(lines: &[String]) -> Vec<(String, Vec<String>)> {
    let mut out = vec![("main".to_string(), Vec::new())];
    for l in lines {
        if let Some(rest) = l.strip_prefix("dataset=") {
            let name = rest.split(' ').next().unwrap_or("");
            out.push((name.to_string(), Vec::new()));
        } else if let Some((_, g)) = out.last_mut() {
            g.push(l.clone());
        }
    }
    out
}

/// Builds the host CLI and runs it on a dataset (`--raw`), returning its stdout.
fn cli_output(ds: &Dataset) -> Result<String> {
    cli_run(&ds.model, &ds.input, &ds.lengths)
}

/// Builds the host CLI (`cargo build --release -p tinyrnn-cli`) and returns its path.
fn cli() -> Result<PathBuf> {
    let root = root();
    let status = Command::new(cargo())
        .args(["build", "--release", "-p", "tinyrnn-cli"])
        .current_dir(&root)
        .status()?;
    if !status.success() {
        return Err("building tinyrnn-cli failed".into());
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or(root.join("target"));
    Ok(target.join("release").join("tinyrnn"))
}

/// Builds the host CLI and runs `tinyrnn run MODEL --input INPUT --lengths LENGTHS --raw`,
/// returning its stdout.
pub(crate) fn cli_run(model: &Path, input: &Path, lengths: &Path) -> Result<String> {
    let out = Command::new(cli()?)
        .arg("run")
        .arg(model)
        .arg("--input")
        .arg(input)
        .arg("--lengths")
        .arg(lengths)
        .arg("--raw")
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "tinyrnn run --raw failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// `tinyrnn quantize SOURCE --precision int8 --calib .. --calib-lengths .. [--normalize ..]
/// -o OUT` for a dataset that names its `source`; `Ok(false)` if it names none.
fn quantize(ds: &Dataset, out: &Path) -> Result<bool> {
    let (Some(source), Some(calib), Some(lengths)) = (&ds.source, &ds.calib, &ds.calib_lengths)
    else {
        return Ok(false);
    };
    let mut cmd = Command::new(cli()?);
    cmd.arg("quantize")
        .arg(source)
        .args(["--precision", "int8", "--calib"])
        .arg(calib)
        .arg("--calib-lengths")
        .arg(lengths);
    if let Some(n) = &ds.normalize {
        cmd.arg("--normalize").arg(n);
    }
    let run = cmd.arg("-o").arg(out).output()?;
    if !run.status.success() {
        return Err(format!(
            "tinyrnn quantize {} failed: {}",
            source.display(),
            String::from_utf8_lossy(&run.stderr)
        )
        .into());
    }
    Ok(true)
}

/// The `seq=` lines each set must print, in order.
fn expected_lines(src: Expected, sets: &[Set]) -> Result<Vec<Vec<String>>> {
    let overridden =
        std::env::var_os("TINYRNN_BLOB").is_some() || std::env::var_os("TINYRNN_DATASET").is_some();
    let mut all = Vec::new();
    for set in sets {
        let path = expected_path(set.name);
        let text = match src {
            Expected::Cli => {
                let text = cli_output(&set.ds)?;
                let committed = fs::read_to_string(&path).unwrap_or_default();
                if !(overridden && set.name == "main") {
                    if seq_lines(&committed) != seq_lines(&text) {
                        println!(
                            "note: {} differs from the CLI's output: refresh it with `cargo xtask bless`",
                            path.display()
                        );
                    }
                    // The committed blob is what the firmware embeds: say so if the CLI
                    // now quantizes its source differently.
                    let fresh = root()
                        .join("target/qemu-blobs")
                        .join(format!("{}.trnn", set.name));
                    fs::create_dir_all(fresh.parent().unwrap_or(Path::new(".")))?;
                    if quantize(&set.ds, &fresh)? && fs::read(&fresh)? != fs::read(&set.ds.model)? {
                        println!(
                            "note: {} differs from a fresh `tinyrnn quantize` of {}: refresh it with `cargo xtask bless`",
                            set.ds.model.display(),
                            set.ds.source.as_deref().unwrap_or(Path::new("")).display()
                        );
                    }
                }
                text
            }
            Expected::File => fs::read_to_string(&path)
                .map_err(|e| format!("{}: {e} (run `cargo xtask bless`)", path.display()))?,
        };
        let lines = seq_lines(&text);
        if lines.is_empty() {
            return Err(format!(
                "the host reference ({src:?}) for {} has no seq= lines",
                set.name
            )
            .into());
        }
        all.push(lines);
    }
    Ok(all)
}

/// `cargo xtask bless`: re-quantizes the blob of every dataset that names its `source`
/// (`dataset-<name>.txt`), then rewrites `boards/qemu-common/expected*.txt` from the host CLI.
pub fn bless() -> Result<()> {
    for set in sets(None)? {
        if quantize(&set.ds, &set.ds.model)? {
            println!("wrote {}", set.ds.model.display());
        }
        let lines = seq_lines(&cli_output(&set.ds)?);
        if lines.is_empty() {
            return Err(format!("tinyrnn run --raw printed no seq= lines for {}", set.name).into());
        }
        let path = expected_path(set.name);
        fs::write(&path, lines.join("\n") + "\n")?;
        println!("wrote {} ({} lines)", path.display(), lines.len());
    }
    Ok(())
}

pub(crate) fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// `cargo build [--release]` inside the board directory, so its `.cargo/config.toml` applies.
fn build(board: &Board, dev: bool, features: Option<&str>) -> Result<()> {
    let mut cmd = Command::new(cargo());
    cmd.arg("build");
    if !dev {
        cmd.arg("--release");
    }
    if let Some(f) = features {
        cmd.args(["--no-default-features", "--features", f]);
    }
    let status = cmd
        .current_dir(board.dir())
        .env("CARGO_TARGET_DIR", boards::target_dir())
        .status()?;
    if !status.success() {
        return Err(format!("{}: build failed", board.name).into());
    }
    Ok(())
}

/// What one QEMU run produced, decoded.
struct RunOutput {
    code: Option<i32>,
    timed_out: bool,
    lines: Vec<String>,
    stderr: String,
}

/// The QEMU command line for `elf` (also what `cargo run` in the board directory uses).
pub fn qemu_command(board: &Board, elf: &Path) -> Command {
    let mut cmd = Command::new(board.qemu);
    cmd.args(["-M", board.machine])
        .args(["-semihosting-config", "enable=on,target=native"])
        .args(["-display", "none", "-serial", "null", "-monitor", "none"])
        .arg("-kernel")
        .arg(elf);
    cmd
}

/// What a QEMU process printed and how it ended.
pub struct Captured {
    pub code: Option<i32>,
    pub timed_out: bool,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

/// Runs `cmd` (a [`qemu_command`]) with stdout and stderr captured; kills it after `timeout`.
pub fn run_captured(mut cmd: Command, timeout: Duration) -> Result<Captured> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    let mut out = child.stdout.take().ok_or("no stdout")?;
    let mut err = child.stderr.take().ok_or("no stderr")?;
    let reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf);
        buf
    });
    let err_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let (code, timed_out) = loop {
        if let Some(status) = child.try_wait()? {
            break (status.code(), false);
        }
        if start.elapsed() > timeout {
            child.kill()?;
            child.wait()?;
            break (None, true);
        }
        thread::sleep(Duration::from_millis(20));
    };
    Ok(Captured {
        code,
        timed_out,
        stdout: reader.join().map_err(|_| "stdout reader panicked")?,
        stderr: err_reader.join().map_err(|_| "stderr reader panicked")?,
    })
}

fn run_qemu(board: &Board, elf_path: &Path, timeout: Duration) -> Result<RunOutput> {
    let image = fs::read(elf_path).map_err(|e| format!("{}: {e}", elf_path.display()))?;
    let table = Table::parse(&image)?;
    let run = run_captured(qemu_command(board, elf_path), timeout)?;
    Ok(RunOutput {
        code: run.code,
        timed_out: run.timed_out,
        lines: table.decode(&run.stdout),
        stderr: run.stderr,
    })
}

fn field(lines: &[String], key: &str) -> Option<u64> {
    lines.iter().find_map(|l| l.strip_prefix(key)?.parse().ok())
}

/// One board's result row.
struct Report {
    board: &'static Board,
    pass: bool,
    note: String,
    sizes: Option<elf::Sizes>,
    stack: Option<u64>,
    stack_size: Option<u64>,
}

pub fn run(opts: &Options) -> Result<bool> {
    let sets = sets(opts.features.as_deref())?;
    let expected = if opts.show || opts.size_only {
        None
    } else {
        Some(expected_lines(opts.expected, &sets)?)
    };
    let mut blob_len = 0;
    for set in &sets {
        blob_len += fs::metadata(&set.ds.model)?.len();
    }
    let timeout = Duration::from_secs(opts.timeout);
    let mut reports = Vec::new();
    for &board in &opts.boards {
        println!(
            "== {} ({}, QEMU {} -M {})",
            board.name, board.cpu, board.qemu, board.machine
        );
        let mut rep = Report {
            board,
            pass: false,
            note: String::new(),
            sizes: None,
            stack: None,
            stack_size: None,
        };
        if let Err(e) = build(board, opts.dev, opts.features.as_deref()) {
            rep.note = e.to_string();
            reports.push(rep);
            continue;
        }
        rep.sizes = fs::read(board.elf(opts.dev))
            .ok()
            .and_then(|b| elf::Elf::parse(&b).and_then(|e| e.sizes()).ok());
        let out = match run_qemu(board, &board.elf(opts.dev), timeout) {
            Ok(o) => o,
            Err(e) => {
                rep.note = format!("run failed: {e}");
                reports.push(rep);
                continue;
            }
        };
        rep.stack = field(&out.lines, "stack_used=");
        rep.stack_size = field(&out.lines, "stack_size=");
        if opts.show {
            for l in &out.lines {
                println!("{l}");
            }
            if !out.stderr.trim().is_empty() {
                eprintln!("{}", out.stderr.trim_end());
            }
        }
        let status_ok = out.code == Some(0) && !out.timed_out;
        rep.note = if out.timed_out {
            format!("timed out after {} s", opts.timeout)
        } else {
            format!(
                "exit status {}",
                out.code.map_or("signal".into(), |c| c.to_string())
            )
        };
        rep.pass = status_ok;
        if let Some(exp) = &expected {
            let got = groups(&out.lines);
            let names: Vec<&str> = sets.iter().map(|s| s.name).collect();
            let got_names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
            let mut same = true;
            if got_names != names {
                same = false;
                rep.note
                    .push_str(&format!("; datasets {got_names:?}, expected {names:?}"));
            }
            let mut counts = Vec::new();
            let mut accuracies = Vec::new();
            for ((set, exp), (_, lines)) in sets.iter().zip(exp).zip(&got) {
                let seq = seq_lines(&lines.join("\n"));
                counts.push(format!("{} {}", set.name, seq.len()));
                if seq != *exp {
                    same = false;
                    rep.note.push_str(&format!(
                        "; {}: seq= lines differ from the host (diff above)",
                        set.name
                    ));
                    println!(
                        "{}: {}: seq= lines differ from the host (- host, + board):",
                        board.name, set.name
                    );
                    print_diff(exp, &seq);
                }
                match lines.iter().find(|l| l.starts_with("accuracy=")) {
                    Some(acc) => accuracies.push(format!("{} {}", set.name, acc)),
                    None => {
                        rep.pass = false;
                        rep.note
                            .push_str(&format!(", {}: no accuracy= line", set.name));
                    }
                }
            }
            if !same {
                rep.pass = false;
            } else if status_ok && accuracies.len() == sets.len() {
                rep.note = format!(
                    "seq= lines match the host ({}), {}",
                    counts.join(", "),
                    accuracies.join(", ")
                );
            }
        }
        if !status_ok && !opts.show {
            for l in out.lines.iter().filter(|l| !l.starts_with("seq=")) {
                println!("  | {l}");
            }
            if !out.stderr.trim().is_empty() {
                println!("  | qemu: {}", out.stderr.trim_end());
            }
        }
        reports.push(rep);
    }

    println!();
    println!(
        "{:<11} {:>8} {:>8} {:>6} {:>7} {:>8} {:>8} {:>7} {:>9}",
        "board", "text", "rodata", "data", "bss", "flash", "ram", "blob", "stack"
    );
    for r in &reports {
        let s = r.sizes.unwrap_or_default();
        let stack = match (r.stack, r.stack_size) {
            (Some(u), Some(t)) => format!("{u}/{t}"),
            (Some(u), None) => u.to_string(),
            _ => "-".into(),
        };
        println!(
            "{:<11} {:>8} {:>8} {:>6} {:>7} {:>8} {:>8} {:>7} {:>9}",
            r.board.name,
            s.text,
            s.rodata,
            s.data,
            s.bss,
            s.flash(),
            s.ram(),
            blob_len,
            stack
        );
    }
    println!("(bytes; flash = text + rodata + data, rodata includes the blob and the recording;");
    println!(" ram = data + bss, without the stack; stack = high-water mark / stack region)");
    println!();
    let mut all = true;
    for r in &reports {
        let verdict = if opts.size_only || opts.show {
            if r.pass {
                "OK  "
            } else {
                "FAIL"
            }
        } else if r.pass {
            "PASS"
        } else {
            "FAIL"
        };
        all &= r.pass;
        println!("{verdict} {:<11} {}", r.board.name, r.note);
    }
    Ok(all)
}

fn print_diff(expected: &[String], got: &[String]) {
    let n = expected.len().max(got.len());
    let mut shown = 0;
    for i in 0..n {
        let (e, g) = (expected.get(i), got.get(i));
        if e != g {
            println!("  - {}", e.map_or("<missing>", |s| s.as_str()));
            println!("  + {}", g.map_or("<missing>", |s| s.as_str()));
            shown += 1;
            if shown == 5 {
                println!(
                    "  ... ({} lines expected, {} received)",
                    expected.len(),
                    got.len()
                );
                break;
            }
        }
    }
}

/// The template's targets and the QEMU board (machine) each runs on.
pub const TEMPLATE_TARGETS: [(&str, &str); 2] = [
    ("thumbv7em-none-eabihf", "mps2-an386"),
    ("thumbv6m-none-eabi", "microbit"),
];

/// What the template prints for each `seq=` line of `tinyrnn run --raw`:
/// `seq=<i> class=<c> logits=<v0>,...` becomes `seq=<i> class=<c> score_q=<v_c>`.
fn template_lines(host: &str) -> Result<Vec<String>> {
    seq_lines(host)
        .iter()
        .map(|l| {
            let bad = || format!("unexpected `tinyrnn run --raw` line: {l}");
            let mut it = l.split(' ');
            let (Some(seq), Some(class), Some(logits), None) =
                (it.next(), it.next(), it.next(), it.next())
            else {
                return Err(bad().into());
            };
            let c: usize = class
                .strip_prefix("class=")
                .and_then(|c| c.parse().ok())
                .ok_or_else(bad)?;
            let score = logits
                .strip_prefix("logits=")
                .and_then(|v| v.split(',').nth(c))
                .ok_or_else(bad)?;
            Ok(format!("{seq} {class} score_q={score}"))
        })
        .collect()
}

/// `cargo xtask template`: builds `boards/template` (the README's firmware guide) for the
/// Cortex-M4F and the Cortex-M0, runs each under QEMU (mps2-an386, microbit), prints the
/// decoded output and compares its `seq=` lines with `tinyrnn run --raw` on the template's
/// model and the recording its stand-in sensor replays.
pub fn template() -> Result<bool> {
    let root = root();
    let dir = root.join("boards/template");
    let vowels = root.join("tests/data/vowels");
    let host = cli_run(
        &dir.join("src/model.trnn"),
        &vowels.join("recording.npy"),
        &vowels.join("recording_lengths.npy"),
    )?;
    let expected = template_lines(&host)?;
    if expected.is_empty() {
        return Err("tinyrnn run --raw printed no seq= lines".into());
    }
    let mut verdicts = Vec::new();
    for (target, machine) in TEMPLATE_TARGETS {
        let board = boards::find(machine)?;
        println!(
            "== boards/template, {target} ({}, QEMU {} -M {})",
            board.cpu, board.qemu, board.machine
        );
        let status = Command::new(cargo())
            .args(["build", "--release", "--target", target])
            .current_dir(&dir)
            .env("CARGO_TARGET_DIR", boards::target_dir())
            .status()?;
        if !status.success() {
            verdicts.push(format!("FAIL {target}: build failed"));
            continue;
        }
        let elf = boards::target_dir()
            .join(target)
            .join("release")
            .join("tinyrnn-template");
        let out = run_qemu(board, &elf, Duration::from_secs(60))?;
        for l in &out.lines {
            println!("  | {l}");
        }
        if !out.stderr.trim().is_empty() {
            println!("  | qemu: {}", out.stderr.trim_end());
        }
        // `defmt::info!` lines come out as `INFO <message>`.
        let got: Vec<String> = out
            .lines
            .iter()
            .filter_map(|l| l.strip_prefix("INFO "))
            .filter(|l| l.starts_with("seq="))
            .map(str::to_string)
            .collect();
        let verdict = if out.timed_out {
            "timed out after 60 s".to_string()
        } else if out.code != Some(0) {
            format!(
                "exit status {}",
                out.code.map_or("signal".into(), |c| c.to_string())
            )
        } else if got != expected {
            println!("{target}: seq= lines differ from the host (- host, + board):");
            print_diff(&expected, &got);
            "seq= lines differ from the host".to_string()
        } else {
            String::new()
        };
        verdicts.push(if verdict.is_empty() {
            format!(
                "PASS {target} on {machine}: {} seq= lines match `tinyrnn run --raw`",
                got.len()
            )
        } else {
            format!("FAIL {target} on {machine}: {verdict}")
        });
    }
    println!();
    for v in &verdicts {
        println!("{v}");
    }
    Ok(verdicts.iter().all(|v| v.starts_with("PASS")))
}

#[cfg(test)]
mod tests {
    use super::{groups, template_lines};

    #[test]
    fn output_splits_by_dataset() {
        let lines: Vec<String> = [
            "board=x blob=1B seqs=1",
            "seq=0 class=1 logits=1,2",
            "accuracy=1/1",
            "dataset=mlp blob=2B seqs=1 window=0w",
            "seq=0 class=0 logits=3,2",
            "dataset=bidir blob=3B seqs=1 window=9w",
            "stack_used=4",
        ]
        .map(String::from)
        .to_vec();
        let g = groups(&lines);
        let names: Vec<&str> = g.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["main", "mlp", "bidir"]);
        assert_eq!(g[0].1[1], "seq=0 class=1 logits=1,2");
        assert_eq!(g[1].1, ["seq=0 class=0 logits=3,2"]);
        assert_eq!(g[2].1, ["stack_used=4"]);
    }

    #[test]
    fn template_lines_pick_the_class_logit() {
        let host = "seq=0 class=2 logits=5,-7,9,1\nnoise\nseq=1 class=0 logits=-3,-4\n";
        assert_eq!(
            template_lines(host).unwrap(),
            ["seq=0 class=2 score_q=9", "seq=1 class=0 score_q=-3"]
        );
        assert!(template_lines("seq=0 class=5 logits=1,2\n").is_err());
        assert!(template_lines("seq=0 class=x logits=1,2\n").is_err());
        assert!(template_lines("seq=0 logits=1,2\n").is_err());
    }
}
