//! tinyrnn OTA demo on QEMU `mps2-an386` (Cortex-M4F): classifies the bundled recording over
//! and over while signed model updates arrive on UART0, stores them with
//! [`tinyrnn::store::ModelStore`], verifies them with [`SignedCheck`] before activating
//! them, and switches to an accepted model at the end of the running pass (README.md).
//!
//! The NOR flash is **emulated in RAM** ([`flash::RamFlash`]: erase sets 0xFF, program only
//! clears bits, 4 KiB erase units): QEMU's mps2-an386 has no writable flash device, so the
//! store's contents do not survive a QEMU restart. Protocol on UART0 (host → board):
//! `U` + `u32` little-endian length + that many bytes (an update), or `Q` (print the
//! summary and exit 0).
#![no_std]
#![no_main]

use core::fmt::Write as _;

use cortex_m as _; // critical-section implementation (single core)
use cortex_m_rt::{entry, exception, ExceptionFrame};
use qemu_common::argmax;
use qemu_common::data::{self, INPUT, LABELS, LENGTHS, N_SEQ, OUTPUT, SCRATCH, STATE};
use qemu_common::line::Line;
use tinyrnn::store::{Active, Layout, ModelStore, SignedCheck, StoreError};
use tinyrnn::{signed, Classifier, Config, Model};

mod flash;
mod uart;

use flash::RamFlash;
use uart::Uart;

/// The factory model (bare blob, trusted as part of the firmware image) and `TRUSTED_KEYS`:
/// `tinyrnn codegen BLOB --inline --trusted-key KEY.pub`, written by `cargo xtask ota`.
#[allow(clippy::all)]
mod model {
    include!(concat!(env!("OUT_DIR"), "/model.rs"));
}

/// Bytes of a model slot: the largest envelope the firmware takes.
const SLOT: usize = 16 * 1024;
/// Bytes of the commit journal (two erase units).
const JOURNAL: usize = 8 * 1024;
/// The emulated flash: slot A, slot B, journal.
const FLASH: usize = 2 * SLOT + JOURNAL;
/// Bytes written to the store per `write_chunk`.
const CHUNK: usize = 64;

type Store<'f> = ModelStore<RamFlash<'f>>;
type Error = StoreError<embedded_storage::nor_flash::NorFlashErrorKind>;

/// A line formatted with `core::fmt` (for `Debug` of the typed errors), sent as `{=str}`.
struct Text {
    buf: [u8; 200],
    len: usize,
}

impl Text {
    fn new() -> Self {
        Text {
            buf: [0; 200],
            len: 0,
        }
    }
    fn print(&self) {
        defmt::println!(
            "{=str}",
            core::str::from_utf8(&self.buf[..self.len]).unwrap_or("<non-utf8>")
        );
    }
}

impl core::fmt::Write for Text {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(core::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

macro_rules! say {
    ($($arg:tt)*) => {{
        let mut t = Text::new();
        let _ = write!(t, $($arg)*);
        t.print();
    }};
}

/// Why the firmware stops with an error.
enum Failure {
    Tinyrnn(tinyrnn::Error),
    Store(Error),
    LineOverflow,
}

impl From<tinyrnn::Error> for Failure {
    fn from(e: tinyrnn::Error) -> Self {
        Failure::Tinyrnn(e)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Store(e)
    }
}

/// The classification of the recording, one frame per call, pass after pass.
struct Runner<'m> {
    clf: Classifier<'m, STATE, SCRATCH, 1>,
    version: u32,
    pass: u32,
    /// Global frame index, sequence index, frame within the sequence.
    t: usize,
    seq: usize,
    j: usize,
    correct: usize,
    started: bool,
}

impl<'m> Runner<'m> {
    fn new(model: &'m Model<'m>, version: u32, pass: u32) -> Result<Self, Failure> {
        Ok(Runner {
            clf: Classifier::new(model, Config::default())?,
            version,
            pass,
            t: 0,
            seq: 0,
            j: 0,
            correct: 0,
            started: false,
        })
    }

    /// Runs one frame; prints `pass=`, `seq=` and `accuracy=` lines as they come. Returns
    /// whether a pass over the recording just ended.
    fn frame(&mut self) -> Result<bool, Failure> {
        if !self.started {
            self.started = true;
            let mut l = Line::<48>::new();
            l.str("pass=")
                .int(self.pass as i64)
                .str(" version=")
                .int(self.version as i64);
            defmt::println!("{=str}", l.as_str());
        }
        let mut frame = [0f32; INPUT];
        data::frame(self.t, &mut frame);
        self.t += 1;
        self.j += 1;
        self.clf.push(&frame)?;
        if self.j < LENGTHS[self.seq] as usize {
            return Ok(false);
        }
        let mut logits = [0i16; OUTPUT];
        self.clf.session().output_q(&mut logits)?;
        let class = argmax(&logits);
        self.clf.end_sequence()?;
        if class == LABELS[self.seq] as usize {
            self.correct += 1;
        }
        let mut line = Line::<{ 40 + 7 * OUTPUT }>::new();
        line.str("seq=")
            .int(self.seq as i64)
            .str(" class=")
            .int(class as i64)
            .str(" logits=");
        for (k, &v) in logits.iter().enumerate() {
            if k > 0 {
                line.str(",");
            }
            line.int(v as i64);
        }
        if line.overflowed() {
            return Err(Failure::LineOverflow);
        }
        defmt::println!("{=str}", line.as_str());
        self.seq += 1;
        self.j = 0;
        if self.seq < N_SEQ {
            return Ok(false);
        }
        let mut l = Line::<48>::new();
        l.str("accuracy=")
            .int(self.correct as i64)
            .str("/")
            .int(N_SEQ as i64);
        defmt::println!("{=str}", l.as_str());
        self.pass += 1;
        self.t = 0;
        self.seq = 0;
        self.correct = 0;
        self.started = false;
        Ok(true)
    }
}

/// Waits for the next UART byte, classifying frames meanwhile.
fn next_byte(uart: &mut Uart, run: &mut Runner<'_>) -> Result<u8, Failure> {
    loop {
        if let Some(b) = uart.read() {
            return Ok(b);
        }
        run.frame()?;
    }
}

/// Receives one update (after its `U`): the length, then the bytes in [`CHUNK`]-byte
/// pieces into the store, one frame classified between pieces; then verifies and commits
/// it. `Some` if it was accepted (`spare` then holds the new envelope).
fn receive(
    uart: &mut Uart,
    store: &mut Store<'_>,
    spare: &mut [u8],
    check: &SignedCheck<'_>,
    run: &mut Runner<'_>,
) -> Result<Option<Active>, Failure> {
    let mut len = [0u8; 4];
    for b in len.iter_mut() {
        *b = next_byte(uart, run)?;
    }
    let n = u32::from_le_bytes(len) as usize;
    say!("ota: receiving {} bytes", n);
    let current = store.active().map(|a| a.version);
    let mut up = store.begin_update(n);
    let mut failed: Option<Error> = None;
    let mut chunk = [0u8; CHUNK];
    let (mut got, mut fill, mut frames) = (0usize, 0usize, 0u32);
    while got + fill < n {
        run.frame()?;
        frames += 1;
        let mut idle = 0;
        while fill < CHUNK && got + fill < n && idle < 2000 {
            match uart.read() {
                Some(b) => {
                    chunk[fill] = b;
                    fill += 1;
                    idle = 0;
                }
                None => idle += 1,
            }
        }
        if fill == CHUNK || got + fill == n {
            if got == 0 {
                // The envelope header is in the first chunk: refuse what can never verify
                // (layout, length, unknown key, not newer than what runs) before anything
                // is written, so a refused blob does not erase the spare slot.
                match signed::check_header(&chunk[..fill], &model::TRUSTED_KEYS, n) {
                    Err(e) => {
                        failed.get_or_insert(StoreError::Rejected(e));
                    }
                    Ok(version) => {
                        if let Some(current) = current.filter(|&c| version <= c) {
                            failed.get_or_insert(StoreError::RolledBack { version, current });
                        }
                    }
                }
            }
            if let (Ok(u), None) = (up.as_mut(), failed.as_ref()) {
                if let Err(e) = u.write_chunk(&chunk[..fill]) {
                    failed.get_or_insert(e);
                }
            }
            got += fill;
            fill = 0;
        }
    }
    let result = match (up, failed) {
        (Err(e), _) | (Ok(_), Some(e)) => Err(e),
        (Ok(u), None) => u.finish(check, spare),
    };
    match result {
        Ok(a) => {
            say!(
                "ota: accepted version={} slot={:?} len={} ({} frames classified while receiving)",
                a.version,
                a.slot,
                a.len,
                frames
            );
            Ok(Some(a))
        }
        Err(e) => {
            say!("ota: refused {:?}", e);
            Ok(None)
        }
    }
}

fn ota() -> Result<u32, Failure> {
    let mut mem = [0xFFu8; FLASH];
    let mut buf_a = [0u8; SLOT];
    let mut buf_b = [0u8; SLOT];
    let layout = Layout::contiguous(0, SLOT as u32, JOURNAL as u32);
    let mut store: Store<'_> = ModelStore::new(RamFlash::new(&mut mem), layout)?;
    let check = SignedCheck::for_session::<STATE, SCRATCH>(&model::TRUSTED_KEYS);
    let mut uart = Uart::new();
    say!(
        "ota: board=mps2-an386-ota flash=ram({} B: 2 slots of {} B, journal {} B) keys={} state={}w scratch={}w",
        FLASH,
        SLOT,
        JOURNAL,
        model::TRUSTED_KEYS.len(),
        STATE,
        SCRATCH
    );
    let (mut active, mut spare): (&mut [u8], &mut [u8]) = (&mut buf_a, &mut buf_b);
    if let Some(a) = store.active() {
        store.read_active(active)?;
        say!("ota: stored model version={}", a.version);
    } else {
        say!("ota: no stored model: factory model, version=0");
    }
    let mut pass = 0;
    loop {
        // One model until a pass ends after an accepted update (`switch`).
        let switch = {
            let (blob, version) = match store.active() {
                Some(a) => (signed::parse(&active[..a.len as usize])?.blob, a.version),
                None => (&model::BLOB.0[..], 0),
            };
            let m = Model::from_blob(blob)?;
            let mut run = Runner::new(&m, version, pass)?;
            let mut switch = None;
            loop {
                let ended = run.frame()?;
                if ended && switch.is_some() {
                    break;
                }
                if switch.is_some() {
                    continue;
                }
                match uart.read() {
                    Some(b'U') => switch = receive(&mut uart, &mut store, spare, &check, &mut run)?,
                    Some(b'Q') => {
                        say!("ota: done passes={} version={}", run.pass, version);
                        return Ok(run.pass);
                    }
                    Some(b) => say!("ota: unknown command byte {}", b),
                    None => {}
                }
            }
            pass = run.pass;
            switch
        };
        if let Some(a) = switch {
            core::mem::swap(&mut active, &mut spare);
            say!("ota: switched to version={} slot={:?}", a.version, a.slot);
        }
    }
}

#[entry]
fn main() -> ! {
    qemu_common::stack::paint();
    let status = match ota() {
        Ok(_) => 0,
        Err(Failure::Tinyrnn(e)) => {
            say!("error: {:?}", e);
            qemu_common::EXIT_ERROR
        }
        Err(Failure::Store(e)) => {
            say!("error: {:?}", e);
            qemu_common::EXIT_ERROR
        }
        Err(Failure::LineOverflow) => {
            say!("error: output line too long");
            qemu_common::EXIT_ERROR
        }
    };
    say!("stack_used={}", qemu_common::stack::used());
    qemu_common::exit(status)
}

#[exception]
unsafe fn HardFault(_frame: &ExceptionFrame) -> ! {
    qemu_common::fault("HardFault")
}
