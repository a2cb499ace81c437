//! `cargo xtask ota`: a signed model update over the air, on QEMU `mps2-an386`
//! (`boards/mps2-an386-ota`).
//!
//! 1. Generates a fresh signing key (and an attacker's key) with `tinyrnn keygen` in
//!    `target/ota/`: no private key is committed; the public key is compiled into the
//!    firmware through `tinyrnn codegen --trusted-key` (the factory model is the dataset's
//!    blob, `boards/qemu-common/dataset.txt`).
//! 2. Signs the update (the int8 GRU, version 2) and builds the bad ones: a forged copy
//!    (one weight bit flipped after signing), one signed by the untrusted key, a rolled-back
//!    one (the factory model signed as version 1) and a truncated one.
//! 3. Builds the firmware and runs it under QEMU with UART0 on a pipe (`-serial stdio`;
//!    defmt goes out through semihosting). The board classifies the recording pass after
//!    pass; every pass's `seq=` lines must equal `tinyrnn run --raw` of the model the
//!    pass names (`pass=K version=V`). xtask sends the update, waits for `ota: accepted`
//!    and a pass of the new model, then sends each bad blob and waits for its typed
//!    refusal and another pass of the good model; then `Q`, and the board exits 0.
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};
use std::{fs, thread};

use crate::defmt::Table;
use crate::qemu::{cargo, cli_run, dataset, seq_lines};
use crate::{boards, root, Result};

/// The firmware crate (its directory and binary name).
const CRATE: &str = "mps2-an386-ota";
const TARGET: &str = "thumbv7em-none-eabihf";
/// The update: the int8 GRU (same input and output sizes as the bundled LSTM, smaller
/// buffers).
const UPDATE: &str = "tests/data/blobs/vowels_gru_int8.trnn";
const UPDATE_VERSION: u32 = 2;

fn cli() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or(root().join("target"));
    target.join("release").join("tinyrnn")
}

/// Runs the host CLI (built by `cli_run`), failing on a non-zero exit.
fn tinyrnn(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Result<()> {
    let mut c = Command::new(cli());
    for a in args {
        c.arg(a);
    }
    let out = c.output()?;
    if !out.status.success() {
        return Err(format!(
            "tinyrnn {:?} failed: {}",
            c.get_args().collect::<Vec<_>>(),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(())
}

/// One message for the board and what it must answer.
struct Bad {
    what: &'static str,
    bytes: Vec<u8>,
    /// The refusal line must start with this.
    refusal: String,
}

/// Decoded lines of the running firmware, and what the checks saw.
struct Board {
    rx: Receiver<String>,
    deadline: Instant,
    /// `seq=` lines expected per model version.
    expected: Vec<(u32, Vec<String>)>,
    /// Versions a pass may run now (the factory before the switch, then only the update).
    allowed: Vec<u32>,
    pass: Option<(String, u32, Vec<String>)>,
    passes_ok: u64,
    /// Print the next complete pass in full.
    show_next: bool,
    elided: u64,
}

enum Event {
    PassDone(u32),
    Ota(String),
}

impl Board {
    fn next(&mut self) -> Result<Event> {
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            let line = match self.rx.recv_timeout(left) {
                Ok(l) => l,
                Err(RecvTimeoutError::Timeout) => return Err("timed out".into()),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err("the board stopped printing (QEMU exited?)".into())
                }
            };
            if let Some(rest) = line.strip_prefix("pass=") {
                let v = rest
                    .split(" version=")
                    .nth(1)
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| format!("bad pass line {line}"))?;
                self.pass = Some((line.clone(), v, Vec::new()));
            } else if line.starts_with("seq=") {
                let p = self.pass.as_mut().ok_or("seq= line outside a pass")?;
                p.2.push(line);
            } else if line.starts_with("accuracy=") {
                let (head, v, got) = self.pass.take().ok_or("accuracy= outside a pass")?;
                if !self.allowed.contains(&v) {
                    return Err(format!("{head}: the board runs version {v} now").into());
                }
                let want = &self
                    .expected
                    .iter()
                    .find(|(ev, _)| *ev == v)
                    .ok_or_else(|| format!("{head}: no host reference for version {v}"))?
                    .1;
                if &got != want {
                    let mut msg = format!("{head}: seq= lines differ from tinyrnn run --raw\n");
                    for (w, g) in want.iter().zip(&got) {
                        msg += &format!("  host:  {w}\n  board: {g}\n");
                    }
                    return Err(msg.into());
                }
                self.passes_ok += 1;
                if self.show_next {
                    self.flush_elided();
                    println!("{head}");
                    for l in &got {
                        println!("{l}");
                    }
                    println!("{line}   (== tinyrnn run --raw of version {v})");
                    self.show_next = false;
                } else {
                    self.elided += 1;
                }
                return Ok(Event::PassDone(v));
            } else if line.starts_with("ota:") {
                self.flush_elided();
                println!("{line}");
                return Ok(Event::Ota(line));
            } else {
                self.flush_elided();
                println!("{line}");
                if line.starts_with("error") || line.starts_with("panic") || line.starts_with('<') {
                    return Err(format!("the board failed: {line}").into());
                }
            }
        }
    }

    fn flush_elided(&mut self) {
        if self.elided > 0 {
            println!(
                "   ... {} more passes, every seq= line == tinyrnn run --raw",
                self.elided
            );
            self.elided = 0;
        }
    }

    /// Reads until `f` says stop.
    fn until(&mut self, mut f: impl FnMut(&Event) -> Result<bool>) -> Result<()> {
        loop {
            let e = self.next()?;
            if f(&e)? {
                return Ok(());
            }
        }
    }
}

fn send(stdin: &mut impl Write, bytes: &[u8]) -> Result<()> {
    let mut msg = vec![b'U'];
    msg.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    msg.extend_from_slice(bytes);
    stdin.write_all(&msg)?;
    stdin.flush()?;
    Ok(())
}

/// `cargo xtask ota [--timeout SECS]`.
pub fn run(timeout: u64) -> Result<bool> {
    let root = root();
    let dir = root.join("target/ota");
    fs::create_dir_all(&dir)?;
    let ds = dataset()?;
    let update = root.join(UPDATE);
    // Host references (this builds the CLI).
    let factory_lines = seq_lines(&cli_run(&ds.model, &ds.input, &ds.lengths)?);
    let update_lines = seq_lines(&cli_run(&update, &ds.input, &ds.lengths)?);
    if factory_lines.is_empty() || factory_lines == update_lines {
        return Err("the host references are empty or equal".into());
    }

    // Keys: fresh for every run, never committed.
    let key = dir.join("release.key");
    let evil = dir.join("attacker.key");
    for k in [&key, &evil] {
        for p in [k.clone(), k.with_extension("key.pub")] {
            let _ = fs::remove_file(p);
        }
        tinyrnn(&[&"keygen", &"-o", k])?;
    }
    let public = dir.join("release.key.pub");
    let sign = |blob: &Path, k: &Path, v: u32, name: &str| -> Result<Vec<u8>> {
        let out = dir.join(name);
        let _ = fs::remove_file(&out);
        let v = v.to_string();
        tinyrnn(&[&"sign", &blob, &"--key", &k, &"--version", &v, &"-o", &out])?;
        Ok(fs::read(&out)?)
    };
    let good = sign(&update, &key, UPDATE_VERSION, "update-v2.trnn")?;
    let v3 = sign(&update, &key, 3, "update-v3.trnn")?;
    // A newer version, so that its header passes the firmware's early check and the
    // signature is what refuses it.
    let mut forged = v3.clone();
    forged[24 + 1000] ^= 0x01;
    let bad = vec![
        Bad {
            what: "forged (version 3, one weight bit flipped after signing)",
            bytes: forged,
            refusal: "ota: refused Rejected(BadSignature)".into(),
        },
        Bad {
            what: "replayed (the accepted version 2 sent again)",
            bytes: good.clone(),
            refusal: format!(
                "ota: refused RolledBack {{ version: {UPDATE_VERSION}, current: {UPDATE_VERSION} }}"
            ),
        },
        Bad {
            what: "signed by an untrusted key",
            bytes: sign(&update, &evil, 3, "attacker-v3.trnn")?,
            refusal: "ota: refused Rejected(UnknownKey".into(),
        },
        Bad {
            what: "rolled back (the factory model signed as version 1)",
            bytes: sign(&ds.model, &key, 1, "rollback-v1.trnn")?,
            refusal: format!("ota: refused RolledBack {{ version: 1, current: {UPDATE_VERSION} }}"),
        },
        Bad {
            what: "truncated (version 3 without its last 100 bytes)",
            bytes: v3[..v3.len() - 100].to_vec(),
            refusal: "ota: refused Rejected(Truncated)".into(),
        },
    ];

    // The firmware: factory model + trusted public key through codegen.
    let module = dir.join("model.rs");
    tinyrnn(&[
        &"codegen",
        &ds.model,
        &"--inline",
        &"--trusted-key",
        &public,
        &"-o",
        &module,
    ])?;
    let status = Command::new(cargo())
        .args(["build", "--release"])
        .current_dir(root.join("boards").join(CRATE))
        .env("CARGO_TARGET_DIR", boards::target_dir())
        .env("TINYRNN_OTA_MODULE", &module)
        .status()?;
    if !status.success() {
        return Err(format!("{CRATE}: build failed").into());
    }
    let elf = boards::target_dir()
        .join(TARGET)
        .join("release")
        .join(CRATE);
    let table = Table::parse(&fs::read(&elf)?)?;

    let mut child = Command::new("qemu-system-arm")
        .args(["-M", "mps2-an386"])
        .args(["-semihosting-config", "enable=on,target=native"])
        .args(["-display", "none", "-serial", "stdio", "-monitor", "none"])
        .arg("-kernel")
        .arg(&elf)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("qemu-system-arm: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let mut out = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut frame = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            for &b in &buf[..n] {
                frame.push(b);
                if b == 0 {
                    for l in table.decode(&frame) {
                        if tx.send(l).is_err() {
                            return;
                        }
                    }
                    frame.clear();
                }
            }
        }
    });
    let mut board = Board {
        rx,
        deadline: Instant::now() + Duration::from_secs(timeout),
        expected: vec![(0, factory_lines), (UPDATE_VERSION, update_lines)],
        allowed: vec![0],
        pass: None,
        passes_ok: 0,
        show_next: true,
        elided: 0,
    };
    let script = (|| -> Result<()> {
        board.until(|e| Ok(matches!(e, Event::PassDone(0))))?;
        println!(
            "xtask: sending the update ({} bytes, version {UPDATE_VERSION})",
            good.len()
        );
        send(&mut stdin, &good)?;
        board.until(|e| match e {
            Event::Ota(l) if l.starts_with("ota: accepted") => Ok(true),
            Event::Ota(l) if l.starts_with("ota: refused") => Err("the update was refused".into()),
            _ => Ok(false),
        })?;
        board.allowed.push(UPDATE_VERSION);
        board.until(|e| Ok(matches!(e, Event::Ota(l) if l.starts_with("ota: switched"))))?;
        board.allowed = vec![UPDATE_VERSION];
        board.show_next = true;
        board.until(|e| Ok(matches!(e, Event::PassDone(UPDATE_VERSION))))?;
        for b in &bad {
            println!(
                "xtask: sending a bad blob: {} ({} bytes)",
                b.what,
                b.bytes.len()
            );
            send(&mut stdin, &b.bytes)?;
            board.until(|e| match e {
                Event::Ota(l) if l.starts_with("ota: refused") => {
                    if l.starts_with(&b.refusal) {
                        Ok(true)
                    } else {
                        Err(format!("expected `{}…`, got `{l}`", b.refusal).into())
                    }
                }
                Event::Ota(l) if l.starts_with("ota: accepted") => {
                    Err(format!("the board accepted a bad blob: {}", b.what).into())
                }
                _ => Ok(false),
            })?;
            board.show_next = true;
            // A whole pass after the refusal, still the good model.
            board.until(|e| Ok(matches!(e, Event::PassDone(UPDATE_VERSION))))?;
            board.until(|e| Ok(matches!(e, Event::PassDone(UPDATE_VERSION))))?;
        }
        stdin.write_all(b"Q")?;
        stdin.flush()?;
        board.until(|e| Ok(matches!(e, Event::Ota(l) if l.starts_with("ota: done"))))?;
        Ok(())
    })();
    // Let the board finish (or stop it), then collect its last lines.
    let start = Instant::now();
    let code = loop {
        if let Some(s) = child.try_wait()? {
            break s.code();
        }
        if script.is_err() || start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let _ = reader.join();
    while let Ok(l) = board.rx.try_recv() {
        println!("{l}");
    }
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    if !err.trim().is_empty() {
        eprintln!("qemu stderr: {}", err.trim());
    }
    match script {
        Err(e) => {
            println!("xtask ota: FAILED: {e}");
            Ok(false)
        }
        Ok(()) if code != Some(0) => {
            println!("xtask ota: FAILED: the board exited with {code:?}");
            Ok(false)
        }
        Ok(()) => {
            println!(
                "xtask ota: ok: update accepted and switched, {} bad blobs refused with their typed errors, {} passes all == tinyrnn run --raw",
                bad.len(),
                board.passes_ok
            );
            Ok(true)
        }
    }
}
