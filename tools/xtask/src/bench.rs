//! `cargo xtask bench`: instruction counts per step under QEMU, the on-target bit-exactness
//! check, and the regression gate against the committed figures (src/gate.rs).
//!
//! 1. Builds the insn-count TCG plugin (`boards/qemu-plugin/insncount.c`) with the host `cc`
//!    into `target/bench/qemu-plugin/` when it is missing or older than its source.
//! 2. Builds `boards/bench` for each machine's target (`target/bench/`, release).
//! 3. Runs it under QEMU with the plugin, given the addresses of the firmware's marker
//!    functions `tinyrnn_bench_start` / `tinyrnn_bench_stop` from the ELF symbol table. Each
//!    case yields two windows (1 step, 65 steps): per step = (long − short) / 64.
//! 4. The firmware checks every state against the host's checksum (and, on DSP targets, the
//!    DSP kernels against the portable ones) and exits non-zero on a mismatch: the bench fails.
//! 5. Every measured case is compared with BENCHMARKS.md's committed figures: more than 1 %
//!    more instructions (per step, or in the 1-step run), a case without a figure or a
//!    figure without a case fails (src/gate.rs). `--update` rewrites BENCHMARKS.md's results
//!    (tables and committed figures) from the run instead.
//!
//! `.text` of a step: the functions executed inside a case's long window (translation-block
//! addresses traced by the plugin, mapped to ELF function symbols), without the firmware's
//! driver (`tinyrnn_bench::*` and the markers), summed by symbol size; the read-only
//! tables (`TANH_LUT`) are reported apart.
//!
//! `--check` (what CI runs) counts without the trace and prints only the checks and the
//! gate: about a second of QEMU once the firmware is built.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use object::elf::STT_OBJECT;

use crate::boards::{self, Board};
use crate::elf::{Elf, Symbol};
use crate::{gate, qemu, root, Result};

/// The boards (`boards::ALL`) the benchmark firmware `boards/bench` is built for.
pub const MACHINES: [&str; 3] = ["mps2-an386", "microbit", "sifive-e"];

/// Looks a benchmark machine up by its board name.
pub fn machine(name: &str) -> Result<&'static Board> {
    let b = boards::find(name)?;
    if !MACHINES.contains(&b.name) {
        return Err(format!(
            "no benchmark for board {name} (machines: {})",
            MACHINES.join(" ")
        )
        .into());
    }
    Ok(b)
}

/// ARM CMSIS-NN (commit 99f736a, gcc 12.2 -O2) instructions per LSTM step on mps2-an386,
/// same shapes and counting method (issue #5): `(input, hidden, s16, s8)`.
pub const CMSIS_LSTM: [(usize, usize, u64, u64); 3] = [
    (9, 32, 35_213, 29_982),
    (9, 64, 88_196, 73_765),
    (32, 128, 279_410, 228_081),
];

/// Steps of the firmware's long run (`boards/bench/src/cases.rs`).
pub const STEPS: u64 = 65;
/// Frames before a graph case's decision, and the windowed case's window.
pub const WINDOW: u64 = 64;

pub struct Options {
    pub machines: Vec<&'static Board>,
    pub json: bool,
    pub check: bool,
    pub update: bool,
    pub timeout: u64,
}

fn bench_dir() -> PathBuf {
    root().join("target").join("bench")
}

/// Builds the plugin if it is missing or older than its source; returns its path.
fn plugin() -> Result<PathBuf> {
    let src = root().join("boards/qemu-plugin/insncount.c");
    let dir = bench_dir().join("qemu-plugin");
    let lib = dir.join("libinsncount.so");
    let fresh = match (fs::metadata(&lib), fs::metadata(&src)) {
        (Ok(l), Ok(s)) => l.modified()? >= s.modified()?,
        _ => false,
    };
    if !fresh {
        fs::create_dir_all(&dir)?;
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let status = Command::new(&cc)
            .args([
                "-shared",
                "-fPIC",
                "-O2",
                "-Wall",
                "-fvisibility=hidden",
                "-o",
            ])
            .arg(&lib)
            .arg(&src)
            .status()
            .map_err(|e| format!("{cc}: {e}"))?;
        if !status.success() {
            return Err(format!("{cc}: building {} failed", src.display()).into());
        }
    }
    Ok(lib)
}

fn elf_path(m: &Board) -> PathBuf {
    bench_dir()
        .join(m.target)
        .join("release")
        .join("tinyrnn-bench")
}

fn build(m: &Board) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet", "--target", m.target])
        .current_dir(root().join("boards/bench"))
        .env("CARGO_TARGET_DIR", bench_dir())
        .status()?;
    if !status.success() {
        return Err(format!("boards/bench: build for {} failed", m.target).into());
    }
    Ok(())
}

/// A Rust symbol demangled without its hash (`foo::bar`), LLVM's `.llvm.NNN` suffix dropped;
/// anything else as is.
pub fn demangle(s: &str) -> String {
    let s = s.split(".llvm.").next().unwrap_or(s);
    format!("{:#}", rustc_demangle::demangle(s))
}

// ---------------------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------------------

/// One measured case.
#[derive(Debug, Clone)]
pub struct Record {
    pub machine: &'static str,
    pub cell: String,
    pub precision: String,
    pub input: u64,
    pub hidden: u64,
    pub short: u64,
    pub long: u64,
    /// Graph cases (`cell` is `lstm+mlp`, …): one decision (`Session::output_q` /
    /// `output`, or `output_window_q` / `output_window` over the window) after [`WINDOW`]
    /// frames.
    pub decision: Option<u64>,
    pub text_bytes: u64,
    pub functions: Vec<Func>,
}

impl Record {
    /// The recurrent cell (`lstm` of `lstm+mlp`).
    pub fn cell_kind(&self) -> &str {
        self.cell.split('+').next().unwrap_or("")
    }
    /// The graph around the cell (`mlp` of `lstm+mlp`; empty for a plain case).
    pub fn graph(&self) -> &str {
        self.cell.split_once('+').map_or("", |(_, g)| g)
    }
    pub fn gates(&self) -> u64 {
        match self.cell_kind() {
            "lstm" => 4,
            "gru" => 3,
            _ => 1,
        }
    }
    pub fn macs(&self) -> u64 {
        self.gates() * self.hidden * (self.input + self.hidden)
    }
    pub fn per_step(&self) -> f64 {
        (self.long as f64 - self.short as f64) / (STEPS - 1) as f64
    }
    pub fn per_mac(&self) -> f64 {
        self.per_step() / self.macs() as f64
    }
    /// `.text` of the cell's own step code: the executed functions minus the model-generic
    /// driver (`Session::*`: input packing, layer loop, precision and cell dispatch).
    pub fn cell_text_bytes(&self) -> u64 {
        self.functions
            .iter()
            .filter(|f| !f.name.starts_with("tinyrnn::session::"))
            .map(|f| f.size)
            .sum()
    }
    /// `(s16, s8)` CMSIS-NN reference for an int8 LSTM on the M4F.
    pub fn cmsis(&self) -> Option<(u64, u64)> {
        if self.machine != "mps2-an386" || self.cell != "lstm" || self.precision != "int8" {
            return None;
        }
        CMSIS_LSTM
            .iter()
            .find(|c| c.0 as u64 == self.input && c.1 as u64 == self.hidden)
            .map(|c| (c.2, c.3))
    }
}

/// What one machine gave.
struct MachineResult {
    records: Vec<Record>,
    lut_bytes: u64,
    ok: bool,
    notes: Vec<String>,
}

/// Windows of the plugin's output: `(count, traced blocks as (address, instructions))`.
fn parse_windows(text: &str) -> Vec<(u64, Vec<(u64, u64)>)> {
    let mut out: Vec<(u64, Vec<(u64, u64)>)> = Vec::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f.as_slice() {
            ["window", _, n] => out.push((n.parse().unwrap_or(0), Vec::new())),
            ["tb", a, n] => {
                if let (Some(w), Ok(a)) = (
                    out.last_mut(),
                    u64::from_str_radix(a.trim_start_matches("0x"), 16),
                ) {
                    w.1.push((a, n.parse().unwrap_or(0)));
                }
            }
            _ => {}
        }
    }
    out
}

/// A function executed in a window: demangled name, size in bytes, instructions executed.
#[derive(Debug, Clone)]
pub struct Func {
    pub name: String,
    pub size: u64,
    pub insns: u64,
}

/// The functions containing the traced blocks, minus the driver, by address.
fn step_functions(funcs: &[Symbol], tbs: &[(u64, u64)]) -> Vec<Func> {
    let mut set: BTreeMap<u64, Func> = BTreeMap::new();
    for &(a, n) in tbs {
        // funcs sorted by address: the last one starting at or before `a`.
        let i = funcs.partition_point(|f| f.addr() <= a);
        if let Some(f) = i.checked_sub(1).map(|i| &funcs[i]) {
            if a < f.addr() + f.size.max(1) {
                set.entry(f.addr())
                    .or_insert_with(|| Func {
                        name: demangle(&f.name),
                        size: f.size,
                        insns: 0,
                    })
                    .insns += n;
            }
        }
    }
    set.into_values()
        .filter(|f| {
            !(f.name.starts_with("tinyrnn_bench::") || f.name.starts_with("tinyrnn_bench_"))
        })
        .collect()
}

fn run_machine(m: &'static Board, opts: &Options, plugin: &Path) -> Result<MachineResult> {
    build(m)?;
    let elf_file = elf_path(m);
    let elf = fs::read(&elf_file).map_err(|e| format!("{}: {e}", elf_file.display()))?;
    let syms = Elf::parse(&elf)?.symbols()?;
    let find = |n: &str| {
        syms.iter()
            .find(|s| s.name == n)
            .map(Symbol::addr)
            .ok_or_else(|| format!("{}: no symbol {n}", elf_file.display()))
    };
    let (start, stop) = (find("tinyrnn_bench_start")?, find("tinyrnn_bench_stop")?);
    let windows_file = bench_dir().join(format!("{}.windows", m.name));
    let _ = fs::remove_file(&windows_file);
    // The trace (translation blocks per window) only feeds the `.text` columns.
    let trace = if opts.check { "" } else { ",trace=on" };
    let plugin_arg = format!(
        "{},start={start:#x},stop={stop:#x},out={}{trace}",
        plugin.display(),
        windows_file.display()
    );
    let mut cmd = qemu::qemu_command(m, &elf_file);
    cmd.arg("-plugin").arg(plugin_arg);
    let run = qemu::run_captured(cmd, Duration::from_secs(opts.timeout))?;
    let stdout = String::from_utf8_lossy(&run.stdout);
    let mut notes = Vec::new();
    let mut ok = run.code == Some(0) && !run.timed_out && stdout.contains("done ok");
    if run.timed_out {
        notes.push(format!("timed out after {} s", opts.timeout));
    }
    for l in stdout.lines() {
        let bad = l.starts_with("kernels") && !l.starts_with("kernels ok")
            || l.starts_with("case") && !l.ends_with(" ok")
            || l.starts_with("panic")
            || l.starts_with("error");
        if bad || l.starts_with("kernels") {
            notes.push(l.to_string());
        }
    }
    if !ok {
        notes.push(format!(
            "exit status {:?}; stderr: {}",
            run.code,
            run.stderr.trim()
        ));
    }
    let mut records = Vec::new();
    let mut funcs: Vec<Symbol> = syms.iter().filter(|s| s.is_func()).cloned().collect();
    funcs.sort_by_key(Symbol::addr);
    let lut_bytes = syms
        .iter()
        .filter(|s| s.kind == STT_OBJECT && s.name.contains("TANH_LUT"))
        .map(|s| s.size)
        .sum();
    let text = fs::read_to_string(&windows_file).unwrap_or_default();
    let windows = parse_windows(&text);
    // Windows in case order: a plain case has two (1 step, 65 steps), a graph case three
    // (the decision after 64 frames too).
    let mut next = 0;
    for l in stdout.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        let ["case", k, cell, prec, input, hidden, _verdict] = f.as_slice() else {
            continue;
        };
        let graph = cell.contains('+');
        let first = next;
        next += if graph { 3 } else { 2 };
        let (Some(short), Some(long)) = (windows.get(first), windows.get(first + 1)) else {
            ok = false;
            notes.push(format!("case {k}: missing windows"));
            continue;
        };
        let decision = if graph {
            let Some(d) = windows.get(first + 2) else {
                ok = false;
                notes.push(format!("case {k}: missing decision window"));
                continue;
            };
            Some(d.0)
        } else {
            None
        };
        let functions = step_functions(&funcs, &long.1);
        records.push(Record {
            machine: m.name,
            cell: cell.to_string(),
            precision: prec.to_string(),
            input: input.parse()?,
            hidden: hidden.parse()?,
            short: short.0,
            long: long.0,
            decision,
            text_bytes: functions.iter().map(|f| f.size).sum(),
            functions,
        });
    }
    Ok(MachineResult {
        records,
        lut_bytes,
        ok,
        notes,
    })
}

/// One record of `--json`.
fn to_json(r: &Record) -> serde_json::Value {
    let round = |x: f64, digits: i32| {
        let p = 10f64.powi(digits);
        (x * p).round() / p
    };
    let mut v = serde_json::json!({
        "cell": r.cell,
        "precision": r.precision,
        "machine": r.machine,
        "input": r.input,
        "hidden": r.hidden,
        "macs": r.macs(),
        "instructions_per_step": round(r.per_step(), 1),
        "instructions_per_mac": round(r.per_mac(), 3),
        "instructions_1_step": r.short,
        format!("instructions_{STEPS}_steps"): r.long,
        "step_text_bytes": r.text_bytes,
        "cell_text_bytes": r.cell_text_bytes(),
    });
    if let Some(d) = r.decision {
        v["instructions_decision"] = d.into();
        v["decision_after_frames"] = WINDOW.into();
    }
    if let Some((s16, s8)) = r.cmsis() {
        v["cmsis_nn_s16"] = s16.into();
        v["cmsis_nn_s8"] = s8.into();
        v["ratio_to_cmsis_s16"] = round(r.per_step() / s16 as f64, 3).into();
        v["ratio_to_cmsis_s8"] = round(r.per_step() / s8 as f64, 3).into();
    }
    v
}

fn thousands(v: f64) -> String {
    let n = v.round() as i64;
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// The Markdown section of one machine (what BENCHMARKS.md's "Results" holds), starting
/// with its `### name` heading.
fn machine_section(m: &Board, r: &MachineResult) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "### {} ({}, `{} -M {}`)\n",
        m.name, m.cpu, m.qemu, m.machine
    );
    let _ = writeln!(
        s,
        "| cell | precision | I | H | MACs | instructions / step | instructions / MAC | step `.text` bytes |"
    );
    let _ = writeln!(s, "|---|---|--:|--:|--:|--:|--:|--:|");
    for x in r.records.iter().filter(|x| x.graph().is_empty()) {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {:.2} | {} |",
            x.cell,
            x.precision,
            x.input,
            x.hidden,
            thousands(x.macs() as f64),
            thousands(x.per_step()),
            x.per_mac(),
            thousands(x.text_bytes as f64)
        );
    }
    graph_table(&mut s, r);
    let cmsis: Vec<&Record> = r.records.iter().filter(|x| x.cmsis().is_some()).collect();
    if !cmsis.is_empty() {
        let _ = writeln!(
            s,
            "\nint8 LSTM vs CMSIS-NN (instructions per step, same method):\n"
        );
        let _ = writeln!(
            s,
            "| shape | tinyrnn int8 | CMSIS-NN s16 | ratio | CMSIS-NN s8 | ratio |"
        );
        let _ = writeln!(s, "|---|--:|--:|--:|--:|--:|");
        for x in cmsis {
            let (s16, s8) = x.cmsis().unwrap_or((1, 1));
            let _ = writeln!(
                s,
                "| I{} H{} | {} | {} | {:.2} | {} | {:.2} |",
                x.input,
                x.hidden,
                thousands(x.per_step()),
                thousands(s16 as f64),
                x.per_step() / s16 as f64,
                thousands(s8 as f64),
                x.per_step() / s8 as f64
            );
        }
    }
    // The step path of the int8 LSTM, function by function (largest shape).
    if let Some(x) = r
        .records
        .iter()
        .filter(|x| x.cell == "lstm" && x.precision == "int8")
        .max_by_key(|x| x.hidden)
    {
        let _ = writeln!(
            s,
            "\nint8 LSTM step path (functions executed in a step, I{} H{}): {} bytes of `.text` ({} without the model-generic `Session` driver) + {} bytes of tables (`TANH_LUT`)\n",
            x.input, x.hidden, x.text_bytes, x.cell_text_bytes(), r.lut_bytes
        );
        let total: u64 = x.functions.iter().map(|f| f.insns).sum::<u64>().max(1);
        let _ = writeln!(
            s,
            "| function | bytes | share of the {STEPS}-step run's instructions |\n|---|--:|--:|"
        );
        for f in &x.functions {
            let _ = writeln!(
                s,
                "| `{}` | {} | {:.1} % |",
                f.name,
                f.size,
                100.0 * f.insns as f64 / total as f64
            );
        }
    }
    s
}

/// The graph cases of a machine (issue #10's ops): per frame against the plain row of the
/// same cell, precision and shape, and the decision.
fn graph_table(s: &mut String, r: &MachineResult) {
    let graphs: Vec<&Record> = r.records.iter().filter(|x| !x.graph().is_empty()).collect();
    if graphs.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "\nGraph cases (see \"Graph ops\" above): instructions per frame (same method), the plain row of \
         the same cell, precision and shape, and one decision (`output_q` / `output`; \
         `output_window_q` / `output_window` over the window) after {WINDOW} frames; amortized = \
         per frame + decision / {WINDOW} (a decision every {WINDOW} frames).\n"
    );
    let _ = writeln!(
        s,
        "| model | precision | I | H | instructions / frame | plain row | ratio | decision | amortized / frame |"
    );
    let _ = writeln!(s, "|---|---|--:|--:|--:|--:|--:|--:|--:|");
    for x in graphs {
        let plain = r.records.iter().find(|p| {
            p.graph().is_empty()
                && p.cell == x.cell_kind()
                && p.precision == x.precision
                && p.input == x.input
                && p.hidden == x.hidden
        });
        let d = x.decision.unwrap_or(0) as f64;
        let (plain_s, ratio) = match plain {
            Some(p) => (
                thousands(p.per_step()),
                format!("{:.3}", x.per_step() / p.per_step()),
            ),
            None => ("–".into(), "–".into()),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            x.cell,
            x.precision,
            x.input,
            x.hidden,
            thousands(x.per_step()),
            plain_s,
            ratio,
            thousands(d),
            thousands(x.per_step() + d / WINDOW as f64)
        );
    }
}

/// The first line of `prog --version` (`rustc 1.95.0 (...)`, `QEMU emulator version ...`).
fn version(prog: &str, dir: &Path) -> String {
    Command::new(prog)
        .arg("--version")
        .current_dir(dir)
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(|l| l.trim().to_string())
        })
        .unwrap_or_else(|| format!("{prog}: unknown version"))
}

const RESULTS: &str = "## Results";

/// BENCHMARKS.md's "Results" section (from its heading to the next `## ` heading) with the
/// sections of the measured machines (`### name ...`, from [`machine_section`]) replaced or
/// added, the others kept; machines in [`MACHINES`] order.
fn replace_results(doc: &str, sections: &[(&str, String)]) -> Result<String> {
    let head = format!("\n{RESULTS}\n");
    let start = doc
        .find(&head)
        .map(|i| i + head.len())
        .ok_or_else(|| format!("BENCHMARKS.md: no section \"{RESULTS}\""))?;
    let end = doc[start..]
        .find("\n## ")
        .map_or(doc.len(), |i| start + i + 1);
    let body = &doc[start..end];
    let mut parts = body.split("\n### ");
    let preamble = parts.next().unwrap_or("").trim();
    let mut old: Vec<(String, String)> = parts
        .map(|p| {
            let name = p.split_whitespace().next().unwrap_or("").to_string();
            (name, format!("### {}\n", p.trim_end()))
        })
        .collect();
    for (name, text) in sections {
        let text = format!("{}\n", text.trim_end());
        match old.iter_mut().find(|(n, _)| n == name) {
            Some(o) => o.1 = text,
            None => old.push((name.to_string(), text)),
        }
    }
    let rank = |n: &str| {
        MACHINES
            .iter()
            .position(|m| *m == n)
            .unwrap_or(MACHINES.len())
    };
    old.sort_by_key(|(n, _)| rank(n));
    let mut out = String::new();
    out.push_str(&doc[..start]);
    out.push('\n');
    if !preamble.is_empty() {
        out.push_str(preamble);
        out.push_str("\n\n");
    }
    let texts: Vec<&str> = old.iter().map(|(_, t)| t.as_str()).collect();
    out.push_str(&texts.join("\n"));
    if end < doc.len() {
        out.push('\n');
    }
    out.push_str(&doc[end..]);
    Ok(out)
}

/// `cargo xtask bench`.
pub fn run(opts: &Options) -> Result<bool> {
    let plugin = plugin()?;
    let doc_path = root().join("BENCHMARKS.md");
    let doc = fs::read_to_string(&doc_path).map_err(|e| format!("{}: {e}", doc_path.display()))?;
    let committed = gate::parse(&doc)?;
    let mut results = Vec::new();
    let mut all_ok = true;
    let mut seen = BTreeSet::new();
    for &m in &opts.machines {
        if !seen.insert(m.name) {
            continue;
        }
        if !opts.json {
            eprintln!("== {} ({}): build, run", m.name, m.cpu);
        }
        let r = match run_machine(m, opts, &plugin) {
            Ok(r) => r,
            Err(e) => MachineResult {
                records: Vec::new(),
                lut_bytes: 0,
                ok: false,
                notes: vec![e.to_string()],
            },
        };
        all_ok &= r.ok;
        results.push((m, r));
    }
    if opts.json {
        let all: Vec<serde_json::Value> = results
            .iter()
            .flat_map(|(_, r)| r.records.iter().map(to_json))
            .collect();
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else if !opts.check {
        println!(
            "Instructions per step = (count of a {STEPS}-step run − count of a 1-step run) / {}; MAC = gates·H·(I+H).",
            STEPS - 1
        );
        for (m, r) in results.iter().filter(|(_, r)| !r.records.is_empty()) {
            print!("\n{}", machine_section(m, r));
        }
        println!();
    }
    // Sent to stderr with --json (stdout is the JSON).
    let say = |line: &str| {
        if opts.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    for (m, r) in &results {
        let verdict = if r.ok { "PASS" } else { "FAIL" };
        let what = if opts.check {
            "on-target results == host (bit for bit)"
        } else {
            "measured; on-target results == host (bit for bit)"
        };
        if r.ok {
            say(&format!("{verdict} {:<10} {what}", m.name));
        } else {
            say(&format!("{verdict} {:<10} {}", m.name, r.notes.join("; ")));
        }
        for n in r.notes.iter().filter(|n| n.starts_with("kernels ok")) {
            say(&format!("     {n}"));
        }
    }
    let measured: Vec<(gate::Key, gate::Counts)> = results
        .iter()
        .flat_map(|(_, r)| r.records.iter())
        .map(|x| {
            (
                gate::key(x),
                gate::Counts {
                    short: x.short,
                    long: x.long,
                    decision: x.decision,
                },
            )
        })
        .collect();
    // A machine that failed already fails the run; its cases are not "missing" as well.
    let measured_machines: Vec<&str> = results
        .iter()
        .filter(|(_, r)| r.ok)
        .map(|(m, _)| m.name)
        .collect();
    let bench_dir_src = root().join("boards/bench");
    let rustc = version(
        &std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()),
        &bench_dir_src,
    );
    let qemu_version = version("qemu-system-arm", &bench_dir_src);
    if opts.update {
        if !all_ok {
            say("BENCHMARKS.md not updated: a machine failed");
            return Ok(false);
        }
        let fig = gate::merge(&committed, &measured, &rustc, &qemu_version);
        let sections: Vec<(&str, String)> = results
            .iter()
            .map(|(m, r)| (m.name, machine_section(m, r)))
            .collect();
        let doc = replace_results(&doc, &sections)?;
        let doc = gate::replace_block(&doc, &fig)?;
        fs::write(&doc_path, doc)?;
        say(&format!(
            "updated BENCHMARKS.md: results and committed figures of {} ({} cases); commit them with the change",
            measured_machines.join(" "),
            measured.len()
        ));
        return Ok(true);
    }
    let outcome = gate::compare(&committed, &measured, &measured_machines);
    for l in gate::report(&outcome, &committed, &rustc, &qemu_version) {
        say(&l);
    }
    Ok(all_ok && outcome.pass())
}

#[cfg(test)]
mod tests {
    use super::{demangle, replace_results};

    #[test]
    fn results_sections_are_replaced_by_machine() {
        let doc = "# B\n\n## Results\n\nPer step = x.\n\n### mps2-an386 (M4F)\n\n| a |\n\n\
                   ### sifive-e (RV)\n\n| s |\n\n## Committed figures\n\n```json\n{}\n```\n";
        let new =
            replace_results(doc, &[("microbit", "### microbit (M0)\n\n| m |\n".into())]).unwrap();
        assert_eq!(
            new,
            "# B\n\n## Results\n\nPer step = x.\n\n### mps2-an386 (M4F)\n\n| a |\n\n\
             ### microbit (M0)\n\n| m |\n\n### sifive-e (RV)\n\n| s |\n\n## Committed figures\n\n```json\n{}\n```\n"
        );
        let again =
            replace_results(&new, &[("sifive-e", "### sifive-e (RV)\n\n| t |\n".into())]).unwrap();
        assert_eq!(again, new.replace("| s |", "| t |"));
        // Idempotent.
        assert_eq!(replace_results(&new, &[]).unwrap(), new);
        assert!(replace_results("# B\n", &[]).is_err());
    }

    #[test]
    fn demangles_legacy_and_v0_without_hash() {
        assert_eq!(
            demangle("_ZN7tinyrnn7session7Session4step17h0123456789abcdefE"),
            "tinyrnn::session::Session::step"
        );
        assert_eq!(
            demangle("_ZN4core3ptr13drop_in_place17h0123456789abcdefE.llvm.123"),
            "core::ptr::drop_in_place"
        );
        // `_<impl ...>` in the hand-written demangler's tables: rustc-demangle drops the `_`.
        assert_eq!(
            demangle("_ZN4core5array40_$LT$impl$u20$$u5b$T$u3b$$u20$N$u5d$$GT$7try_map17h0123456789abcdefE"),
            "core::array::<impl [T; N]>::try_map"
        );
        assert_eq!(demangle("_RNvCs1234_7mycrate3foo"), "mycrate::foo");
        assert_eq!(demangle("memcpy"), "memcpy");
    }
}
