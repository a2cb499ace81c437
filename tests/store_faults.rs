//! Fault injection for `tinyrnn::store` (feature `store`): a simulated NOR flash cuts the
//! power at every erase and page program of an update, leaving the interrupted operation
//! half done, then the device "reboots" (a new `ModelStore` on the same flash) and must
//! come up with exactly the old model or exactly the new one; the next update after that
//! reboot is cut once more (somewhere else) with the same demand, and a further one must
//! go through.
//!
//! The counts of cut points per scenario are printed; see them with
//! `cargo test -p tinyrnn --features store --release --test store_faults -- --nocapture`.
#![cfg(feature = "store")]

use std::path::PathBuf;

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use tinyrnn::store::{
    record_len, Active, Layout, ModelCheck, ModelStore, Slot, StateRegion, StateStore, StoreError,
    Verifier,
};
use tinyrnn::{Buffer, Error, Model, Session};

// ---------------------------------------------------------------------------------------
// The simulated flash
// ---------------------------------------------------------------------------------------

/// splitmix64: the deterministic source of every "random" partial state.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SimError {
    PowerLost,
    NotAligned,
    OutOfBounds,
}

impl NorFlashError for SimError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            SimError::PowerLost => NorFlashErrorKind::Other,
            SimError::NotAligned => NorFlashErrorKind::NotAligned,
            SimError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
        }
    }
}

/// How an interrupted operation leaves its bytes (chosen per cut; see `cut_program` and
/// `cut_erase`).
const MODES: u64 = 4;

/// A NOR flash: `W`-byte write units, `P`-byte program pages, `E`-byte erase units.
///
/// * Program only clears bits (1 → 0), must be `W`-aligned and only targets erased
///   (all-`0xFF`) write units; anything else is a bug of the store and panics.
/// * A `write` is one operation per page it touches, an `erase` one per erase unit.
/// * A power cut armed at operation `k` applies a partial effect of operation `k`, then
///   fails it and every later operation (reads included) with `PowerLost`.
#[derive(Clone)]
struct Sim<const W: usize, const P: usize, const E: usize> {
    mem: Vec<u8>,
    /// Operations done since the last `reset_ops`.
    ops: u64,
    erases: u64,
    /// Erases done per erase unit (wear).
    unit_erases: Vec<u32>,
    /// (operation index, partial-state seed)
    cut: Option<(u64, u64)>,
    dead: bool,
}

impl<const W: usize, const P: usize, const E: usize> Sim<W, P, E> {
    fn new(capacity: usize) -> Self {
        Sim {
            mem: vec![0xFF; capacity],
            ops: 0,
            erases: 0,
            unit_erases: vec![0; capacity / E],
            cut: None,
            dead: false,
        }
    }

    fn reset_ops(&mut self) {
        self.ops = 0;
        self.erases = 0;
    }

    /// Power back on: the cut is disarmed, the memory is what the cut left.
    fn reboot(mut self) -> Self {
        self.cut = None;
        self.dead = false;
        self
    }

    /// Counts one operation; `Some(seed)` if the power goes during it.
    fn op(&mut self) -> Result<Option<u64>, SimError> {
        if self.dead {
            return Err(SimError::PowerLost);
        }
        let k = self.ops;
        self.ops += 1;
        match self.cut {
            Some((at, seed)) if at == k => {
                self.dead = true;
                Ok(Some(seed))
            }
            _ => Ok(None),
        }
    }

    /// Interrupted program of `data` at `at` (one page): mode `seed % MODES`.
    fn cut_program(&mut self, at: usize, data: &[u8], seed: u64) {
        let mut rng = Rng(seed);
        let target = &mut self.mem[at..at + data.len()];
        match seed % MODES {
            // In order: some write units done, one half done, the rest untouched.
            0 => {
                let units = data.len() / W;
                let done = rng.below(units + 1);
                for (k, (t, d)) in target.iter_mut().zip(data).enumerate() {
                    if k / W < done {
                        *t &= d;
                    } else if k / W == done {
                        *t &= d | rng.byte();
                    }
                }
            }
            // Everywhere at once: each bit that should clear did so or not.
            1 => {
                for (t, d) in target.iter_mut().zip(data) {
                    *t &= d | rng.byte();
                }
            }
            // Nothing happened.
            2 => {}
            // All done, the power went right after.
            _ => {
                for (t, d) in target.iter_mut().zip(data) {
                    *t &= d;
                }
            }
        }
    }

    /// Interrupted erase of the unit at `at`: mode `seed % MODES`.
    fn cut_erase(&mut self, at: usize, seed: u64) {
        let mut rng = Rng(seed);
        let unit = &mut self.mem[at..at + E];
        match seed % MODES {
            // In order: a prefix of write units erased, the rest old.
            0 => {
                let done = rng.below(E / W + 1) * W;
                unit[..done].fill(0xFF);
            }
            // Each programmed bit came back or not.
            1 => {
                for b in unit.iter_mut() {
                    *b |= rng.byte();
                }
            }
            // Scattered write units erased, others old.
            2 => {
                for w in unit.chunks_mut(W) {
                    if rng.next() & 1 == 1 {
                        w.fill(0xFF);
                    }
                }
            }
            _ => unit.fill(0xFF),
        }
    }
}

impl<const W: usize, const P: usize, const E: usize> ErrorType for Sim<W, P, E> {
    type Error = SimError;
}

impl<const W: usize, const P: usize, const E: usize> ReadNorFlash for Sim<W, P, E> {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), SimError> {
        if self.dead {
            return Err(SimError::PowerLost);
        }
        let at = offset as usize;
        let src = self
            .mem
            .get(at..at + bytes.len())
            .ok_or(SimError::OutOfBounds)?;
        bytes.copy_from_slice(src);
        Ok(())
    }
    fn capacity(&self) -> usize {
        self.mem.len()
    }
}

impl<const W: usize, const P: usize, const E: usize> NorFlash for Sim<W, P, E> {
    const WRITE_SIZE: usize = W;
    const ERASE_SIZE: usize = E;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), SimError> {
        let (from, to) = (from as usize, to as usize);
        if !from.is_multiple_of(E) || !to.is_multiple_of(E) || to < from {
            return Err(SimError::NotAligned);
        }
        if to > self.mem.len() {
            return Err(SimError::OutOfBounds);
        }
        for at in (from..to).step_by(E) {
            if let Some(seed) = self.op()? {
                self.cut_erase(at, seed);
                return Err(SimError::PowerLost);
            }
            self.erases += 1;
            self.unit_erases[at / E] += 1;
            self.mem[at..at + E].fill(0xFF);
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), SimError> {
        let start = offset as usize;
        if !start.is_multiple_of(W) || !bytes.len().is_multiple_of(W) {
            return Err(SimError::NotAligned);
        }
        if start + bytes.len() > self.mem.len() {
            return Err(SimError::OutOfBounds);
        }
        let mut at = start;
        while at < start + bytes.len() {
            let end = ((at / P + 1) * P).min(start + bytes.len());
            let data = &bytes[at - start..end - start];
            if let Some(seed) = self.op()? {
                self.cut_program(at, data, seed);
                return Err(SimError::PowerLost);
            }
            for (k, unit) in self.mem[at..end].chunks(W).enumerate() {
                assert!(
                    unit.iter().all(|&b| b == 0xFF),
                    "program over a non-erased write unit at {:#x}",
                    at + k * W
                );
            }
            for (t, d) in self.mem[at..end].iter_mut().zip(data) {
                *t &= d;
            }
            at = end;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

fn blob(name: &str) -> Vec<u8> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/blobs/{name}.trnn"));
    std::fs::read(path).expect("committed blob")
}

/// The firmware's buffers: every bundled model fits.
fn check(version: u32) -> ModelCheck {
    ModelCheck::for_session::<128, 64>(version)
}

/// Writes `blob` through an update in chunks of pseudo-random length (1..=97, as a UART
/// or radio would deliver them) and finishes it with `verifier`.
fn update<F: NorFlash>(
    store: &mut ModelStore<F>,
    blob: &[u8],
    verifier: &(impl Verifier + ?Sized),
    seed: u64,
) -> Result<Active, StoreError<F::Error>> {
    let mut up = store.begin_update(blob.len())?;
    let mut rng = Rng(seed);
    let mut rest = blob;
    while !rest.is_empty() {
        let n = (1 + rng.below(97)).min(rest.len());
        up.write_chunk(&rest[..n])?;
        rest = &rest[n..];
    }
    let mut buf = vec![0u8; blob.len()];
    up.finish(verifier, &mut buf)
}

fn active_bytes<F: NorFlash>(store: &mut ModelStore<F>) -> Option<Vec<u8>> {
    let a = store.active()?;
    let mut buf = vec![0u8; a.len as usize];
    let got = store
        .read_active(&mut buf)
        .expect("the active slot reads back");
    Some(got.to_vec())
}

/// One flash geometry and its layout.
struct Geometry<const W: usize, const P: usize, const E: usize> {
    name: &'static str,
    layout: Layout,
    capacity: usize,
}

impl<const W: usize, const P: usize, const E: usize> Geometry<W, P, E> {
    /// Slots of `slot_units` erase units at the start, a two-unit journal after them.
    fn new(name: &'static str, slot_units: u32) -> Self {
        let slot = slot_units * E as u32;
        let layout = Layout::contiguous(0, slot, 2 * E as u32);
        Geometry {
            name,
            layout,
            capacity: (2 * slot + 2 * E as u32) as usize,
        }
    }

    fn blank(&self) -> Sim<W, P, E> {
        Sim::new(self.capacity)
    }

    fn open(&self, flash: Sim<W, P, E>) -> ModelStore<Sim<W, P, E>> {
        ModelStore::new(flash, self.layout).expect("layout fits")
    }

    /// A flash on which `history` was committed, versions 1, 2, … in order.
    fn with_history(&self, history: &[&[u8]]) -> Sim<W, P, E> {
        let mut store = self.open(self.blank());
        for (k, b) in history.iter().enumerate() {
            update(&mut store, b, &check(k as u32 + 1), k as u64).expect("setup update");
        }
        store.into_inner()
    }
}

/// Outcome counts of one scenario.
#[derive(Default, Debug)]
struct Tally {
    cut_points: u64,
    trials: u64,
    came_up_old: u64,
    came_up_new: u64,
    came_up_none: u64,
    double_cuts: u64,
}

/// Updates `base` (whose active model is `old`, version `old_version`, or nothing) to
/// `new` with version `old_version + 1`, cutting the power at every operation of the
/// update in every partial mode. After each cut: reboot, assert exactly old or exactly
/// new, then a clean update to `third` must work and survive another reboot.
fn cut_everywhere<const W: usize, const P: usize, const E: usize>(
    g: &Geometry<W, P, E>,
    scenario: &str,
    base: &Sim<W, P, E>,
    new: &[u8],
    third: &[u8],
) -> Tally {
    let (old, old_version) = {
        let mut s = g.open(base.clone());
        (active_bytes(&mut s), s.active().map(|a| a.version))
    };
    let floor = g.open(base.clone()).version_floor().unwrap_or(0);
    let new_version = floor + 1;

    // The uncut run: how many operations the update takes.
    let mut flash = base.clone();
    flash.reset_ops();
    let mut store = g.open(flash);
    let a = update(&mut store, new, &check(new_version), 7).expect("uncut update");
    assert_eq!(a.version, new_version);
    let flash = store.into_inner();
    let ops = flash.ops;
    assert!(ops > 0);
    let mut tally = Tally {
        cut_points: ops,
        ..Tally::default()
    };
    let mut check_store = g.open(flash.reboot());
    assert_eq!(active_bytes(&mut check_store).as_deref(), Some(new));

    for k in 0..ops {
        for mode in 0..MODES {
            let seed = (k * MODES + mode) ^ (0x5EED << 32) ^ (ops << 48);
            // `seed % MODES == mode` picks the partial state; the rest varies its bits.
            let seed = seed - seed % MODES + mode;
            let mut flash = base.clone();
            flash.reset_ops();
            flash.cut = Some((k, seed));
            let mut store = g.open(flash);
            let r = update(&mut store, new, &check(new_version), 7);
            assert!(
                matches!(r, Err(StoreError::Flash(SimError::PowerLost))),
                "{}/{scenario}: cut at op {k} mode {mode}: the update returned {r:?}",
                g.name
            );
            let mut store = g.open(store.into_inner().reboot());
            let now = active_bytes(&mut store);
            let version = store.active().map(|a| a.version);
            let what = format!("{}/{scenario}: cut at op {k}/{ops} mode {mode}", g.name);
            match now.as_deref() {
                Some(b) if b == new => {
                    assert_eq!(version, Some(new_version), "{what}");
                    tally.came_up_new += 1;
                }
                Some(b) if Some(b) == old.as_deref() => {
                    assert_eq!(version, old_version, "{what}");
                    tally.came_up_old += 1;
                }
                None if old.is_none() => tally.came_up_none += 1,
                None => panic!("{what}: no model after the cut (the old one was lost)"),
                Some(b) => panic!("{what}: a mix: {} bytes, neither old nor new", b.len()),
            }
            // A second cut, during the update after the reboot (which now meets the
            // first cut's debris), at a point that moves with k: again old or new.
            let v3 = store.version_floor().unwrap_or(0) + 1;
            let mut flash = store.into_inner();
            let mut dry = g.open(flash.clone());
            dry.flash().reset_ops();
            update(&mut dry, third, &check(v3), k).expect("uncut second update");
            let ops2 = dry.into_inner().ops;
            let k2 = (k * 31 + mode * 7) % ops2;
            flash.reset_ops();
            flash.cut = Some((
                k2,
                seed.rotate_left(17) - seed.rotate_left(17) % MODES + mode,
            ));
            let mut cut2 = g.open(flash);
            let r = update(&mut cut2, third, &check(v3), k);
            assert!(
                matches!(r, Err(StoreError::Flash(SimError::PowerLost))),
                "{what}: {r:?}"
            );
            let mut store = g.open(cut2.into_inner().reboot());
            let again = active_bytes(&mut store);
            assert!(
                again == now || again.as_deref() == Some(third),
                "{what}, second cut at {k2}/{ops2}: neither the model before it nor the new one"
            );
            tally.double_cuts += 1;

            // The device keeps working: the next update goes through.
            let v3 = store.version_floor().unwrap_or(0) + 1;
            let a = update(&mut store, third, &check(v3), k)
                .unwrap_or_else(|e| panic!("{what}: the update after the reboot failed: {e}"));
            assert_eq!(a.version, v3, "{what}");
            let mut store = g.open(store.into_inner().reboot());
            assert_eq!(active_bytes(&mut store).as_deref(), Some(third), "{what}");
            tally.trials += 1;
        }
    }
    assert_eq!(tally.double_cuts, tally.trials);
    assert!(tally.came_up_new > 0 && (tally.came_up_old > 0 || tally.came_up_none > 0));
    println!(
        "{:<28} {:<34} cut points {:>4} × {} modes = {:>5} reboots: old {:>5}, new {:>5}, none {:>3}",
        g.name,
        scenario,
        tally.cut_points,
        MODES,
        tally.trials,
        tally.came_up_old,
        tally.came_up_new,
        tally.came_up_none
    );
    tally
}

/// The four update scenarios on one geometry; returns (cut points, reboots).
fn all_scenarios<const W: usize, const P: usize, const E: usize>(
    g: &Geometry<W, P, E>,
) -> (u64, u64) {
    let lstm = blob("vowels_lstm_int8");
    let gru = blob("vowels_gru_int8");
    let rnn = blob("vowels_rnn_int8");
    let rnn16 = blob("vowels_rnn_int16");
    let mut sum = (0, 0);
    let mut add = |t: Tally| {
        sum.0 += t.cut_points;
        sum.1 += t.trials;
    };

    // First install on a blank flash: before the commit there is no model, after it
    // the new one.
    add(cut_everywhere(
        g,
        "first install (blank -> A)",
        &g.blank(),
        &gru,
        &rnn,
    ));

    // The usual update: A active, the new model goes to B.
    let base = g.with_history(&[&lstm]);
    add(cut_everywhere(g, "update A -> B", &base, &gru, &rnn));

    // B active, the new model overwrites A, the previous model.
    let base = g.with_history(&[&lstm, &rnn16]);
    add(cut_everywhere(
        g,
        "update B -> A (over the fallback)",
        &base,
        &gru,
        &rnn,
    ));

    // The journal's units are full: the commit erases the oldest unit of the ring, which
    // still holds valid (old) records, before writing.
    let per_unit = E / record_len(W);
    let fill: Vec<&[u8]> = (0..2 * per_unit)
        .map(|k| if k % 2 == 0 { &rnn[..] } else { &rnn16[..] })
        .collect();
    let base = g.with_history(&fill);
    {
        let mut flash = base.clone();
        flash.reset_ops();
        let mut store = g.open(flash);
        update(&mut store, &gru, &check(fill.len() as u32 + 1), 1).expect("wrap update");
        let f = store.into_inner();
        let slot_units = (gru.len() as u64).div_ceil(E as u64);
        assert_eq!(f.erases, slot_units + 1, "the commit erased a journal unit");
    }
    add(cut_everywhere(
        g,
        "update with journal wrap-around",
        &base,
        &gru,
        &lstm,
    ));
    sum
}

#[test]
fn power_cut_at_every_operation_leaves_old_or_new_model() {
    // nRF52-like: 4-byte words, 4 KiB erase pages (page program = 256 B burst).
    let nrf = Geometry::<4, 256, 4096>::new("W4 P256 E4096 (nRF52/STM32)", 3);
    // Small pages and units: many more cut points per blob.
    let small = Geometry::<8, 32, 1024>::new("W8 P32 E1024 (small pages)", 9);
    // RP2040-like: 256-byte program pages, 4 KiB sectors; one record per 256 bytes.
    let rp = Geometry::<256, 256, 4096>::new("W256 P256 E4096 (RP2040)", 3);
    let mut total = (0, 0);
    for (c, t) in [
        all_scenarios(&nrf),
        all_scenarios(&small),
        all_scenarios(&rp),
    ] {
        total.0 += c;
        total.1 += t;
    }
    println!(
        "total: {} cut points × {} partial-state modes = {} power cuts with reboot, each followed by a \
         second cut during the next update ({} more): all came up with the old or the new model",
        total.0, MODES, total.1, total.1
    );
    assert_eq!(total.1, total.0 * MODES);
}

// ---------------------------------------------------------------------------------------
// Other faults
// ---------------------------------------------------------------------------------------

type Nrf = Sim<4, 256, 4096>;

fn nrf() -> Geometry<4, 256, 4096> {
    Geometry::new("nrf", 3)
}

#[test]
fn bit_rot_in_the_active_slot_falls_back_to_the_other_then_to_none() {
    let g = nrf();
    let (lstm, gru) = (blob("vowels_lstm_int8"), blob("vowels_gru_int8"));
    let mut flash: Nrf = g.with_history(&[&lstm, &gru]);
    let store = g.open(flash.clone());
    assert_eq!(
        store.active().map(|a| (a.slot, a.version)),
        Some((Slot::B, 2))
    );

    // One bit of B flips (charge loss, 0 -> 1 or the other way): A, the previous model,
    // is active again; its version is lower but it was committed, so it may run.
    flash.mem[g.layout.slot_b as usize + 1000] ^= 0x10;
    let mut store = g.open(flash.clone());
    assert_eq!(
        store.active().map(|a| (a.slot, a.version)),
        Some((Slot::A, 1))
    );
    assert_eq!(active_bytes(&mut store), Some(lstm.clone()));
    // The anti-rollback floor stays at the highest committed version.
    assert_eq!(store.version_floor(), Some(2));
    let r = update(&mut store, &gru, &check(2), 0);
    assert!(
        matches!(
            r,
            Err(StoreError::RolledBack {
                version: 2,
                current: 2
            })
        ),
        "{r:?}"
    );
    // A repair update goes to the rotten slot B, not over A.
    let a = update(&mut store, &gru, &check(3), 0).expect("repair update");
    assert_eq!((a.slot, a.version), (Slot::B, 3));

    // Both slots rot: no model, reported as none (not a broken one).
    flash.mem[g.layout.slot_a as usize + 17] ^= 0x01;
    let mut store = g.open(flash);
    assert_eq!(store.active(), None);
    let mut buf = vec![0u8; 10_000];
    assert!(matches!(
        store.read_active(&mut buf),
        Err(StoreError::NoModel)
    ));
}

#[test]
fn rot_after_boot_is_caught_by_read_active() {
    let g = nrf();
    let lstm = blob("vowels_lstm_int8");
    let flash: Nrf = g.with_history(&[&lstm]);
    let mut store = g.open(flash);
    store.flash().mem[g.layout.slot_a as usize + 5] ^= 0x80;
    let mut buf = vec![0u8; lstm.len()];
    assert!(matches!(
        store.read_active(&mut buf),
        Err(StoreError::Corrupt)
    ));
}

#[test]
fn bit_rot_in_the_newest_record_falls_back_to_the_previous_record() {
    let g = nrf();
    let (lstm, gru) = (blob("vowels_lstm_int8"), blob("vowels_gru_int8"));
    let mut flash: Nrf = g.with_history(&[&lstm, &gru]);
    // The second record (position 1 of the journal's first unit), any single bit.
    let rec = g.layout.journal as usize + record_len(4);
    for bit in 0..8 * 32 {
        let mut f = flash.clone();
        f.mem[rec + bit / 8] ^= 1 << (bit % 8);
        let mut store = g.open(f);
        let a = store.active().expect("a model");
        assert_eq!((a.slot, a.version), (Slot::A, 1), "bit {bit}");
        assert_eq!(active_bytes(&mut store), Some(lstm.clone()));
    }
    flash.mem[rec] ^= 1;
    let mut store = g.open(flash);
    // The rotten record's position is skipped when appending: the next commit goes after it.
    let a = update(&mut store, &gru, &check(5), 0).expect("update");
    let mut store = g.open(store.into_inner());
    assert_eq!(store.active(), Some(a));
    assert_eq!(active_bytes(&mut store), Some(gru));
}

#[test]
fn a_blob_larger_than_a_slot_is_refused_before_anything_is_erased() {
    let g = nrf();
    let lstm = blob("vowels_lstm_int8");
    let big = blob("vowels_lstm_float32"); // 24,898 bytes > 3 × 4 KiB
    let mut flash: Nrf = g.with_history(&[&lstm]);
    flash.reset_ops();
    let before = flash.mem.clone();
    let mut store = g.open(flash);
    let r = store.begin_update(big.len()).map(|_| ());
    assert_eq!(
        r,
        Err(StoreError::TooLarge {
            len: big.len(),
            capacity: g.layout.slot_size as usize
        })
    );
    let flash = store.into_inner();
    assert_eq!(flash.ops, 0);
    assert!(flash.mem == before);
    let mut store = g.open(flash);
    assert_eq!(active_bytes(&mut store), Some(lstm));
}

/// Each refused blob: typed error, the old model stays active, now and after a reboot.
fn refused(blob_bytes: &[u8], verifier: &dyn Verifier, want: fn(&StoreError<SimError>) -> bool) {
    let g = nrf();
    let lstm = blob("vowels_lstm_int8");
    let flash: Nrf = g.with_history(&[&lstm]);
    let mut store = g.open(flash);
    let before = store.active();
    let r = update(&mut store, blob_bytes, verifier, 3);
    match &r {
        Err(e) if want(e) => {}
        other => panic!("unexpected outcome {other:?}"),
    }
    assert_eq!(store.active(), before);
    let mut store = g.open(store.into_inner());
    assert_eq!(store.active(), before);
    assert_eq!(active_bytes(&mut store), Some(lstm));
}

#[test]
fn a_forged_or_corrupted_blob_is_refused_and_the_old_model_stays() {
    let mut gru = blob("vowels_gru_int8");
    // Refused by a (signature-like) verifier that does not trust the blob.
    refused(&gru, &|_: &[u8]| Err(Error::Unsupported), |e| {
        matches!(e, StoreError::Rejected(Error::Unsupported))
    });
    // One byte changed in the payload: the blob's own CRC catches it.
    gru[2000] ^= 0x55;
    refused(&gru, &check(2), |e| {
        matches!(e, StoreError::Rejected(Error::BadChecksum))
    });
    // Not a blob at all.
    refused(&[0x42; 3000], &check(2), |e| {
        matches!(e, StoreError::Rejected(Error::BadMagic))
    });
}

#[test]
fn a_rolled_back_version_is_refused() {
    let gru = blob("vowels_gru_int8");
    // The history committed version 1; the same and a lower version are refused.
    refused(&gru, &check(1), |e| {
        matches!(
            e,
            StoreError::RolledBack {
                version: 1,
                current: 1
            }
        )
    });
    refused(&gru, &check(0), |e| {
        matches!(
            e,
            StoreError::RolledBack {
                version: 0,
                current: 1
            }
        )
    });
}

#[test]
fn a_blob_too_big_for_the_firmware_buffers_is_refused() {
    let gru = blob("vowels_gru_int8"); // state 32 words, scratch 22 words
    refused(&gru, &ModelCheck::for_session::<16, 64>(2), |e| {
        matches!(
            e,
            StoreError::Rejected(Error::TooLarge {
                buffer: Buffer::State,
                needed: 32,
                capacity: 16
            })
        )
    });
    refused(&gru, &ModelCheck::for_session::<128, 8>(2), |e| {
        matches!(
            e,
            StoreError::Rejected(Error::TooLarge {
                buffer: Buffer::Scratch,
                capacity: 8,
                ..
            })
        )
    });
}

#[test]
fn chunk_sizes_do_not_matter_and_the_bytes_are_exact() {
    let g = nrf();
    let gru = blob("vowels_gru_int8");
    for chunk in [1, 3, 4, 5, 64, 255, 256, 257, 4096, gru.len()] {
        let mut store = g.open(g.blank());
        let mut up = store.begin_update(gru.len()).expect("fits");
        assert_eq!(up.slot(), Slot::A);
        for c in gru.chunks(chunk) {
            up.write_chunk(c).expect("write");
        }
        assert_eq!(up.received(), gru.len());
        let mut buf = vec![0u8; gru.len() + 100];
        let a = up.finish(&check(1), &mut buf).expect("finish");
        assert_eq!(&buf[..gru.len()], &gru[..]);
        assert_eq!(
            (a.slot, a.offset, a.len as usize),
            (Slot::A, g.layout.slot_a, gru.len())
        );
        let mut store = g.open(store.into_inner());
        assert_eq!(active_bytes(&mut store), Some(gru.clone()), "chunk {chunk}");
    }
}

#[test]
fn memory_mapped_finish_checks_the_mapped_view() {
    let g = nrf();
    let (lstm, gru) = (blob("vowels_lstm_int8"), blob("vowels_gru_int8"));
    let mut store = g.open(g.with_history(&[&lstm]));
    let mut up = store.begin_update(gru.len()).expect("fits");
    up.write_chunk(&gru).expect("write");
    // A wrong view (another slot's bytes) is refused.
    let r = up.finish_mapped(&check(2), &lstm[..gru.len()]);
    assert!(matches!(r, Err(StoreError::ReadBack)), "{r:?}");
    assert_eq!(store.active().map(|a| a.slot), Some(Slot::A));

    let mut up = store.begin_update(gru.len()).expect("fits");
    up.write_chunk(&gru).expect("write");
    let slot_b = g.layout.slot_b as usize;
    // On an MCU `mapped` is the slot's address range; here, the bytes the slot holds.
    let a = up.finish_mapped(&check(2), &gru).expect("finish");
    assert_eq!((a.slot, a.offset as usize, a.version), (Slot::B, slot_b, 2));
    let mut store = g.open(store.into_inner());
    assert_eq!(active_bytes(&mut store), Some(gru));
}

#[test]
fn protocol_errors_are_typed_and_abort_the_update() {
    let g = nrf();
    let (lstm, gru) = (blob("vowels_lstm_int8"), blob("vowels_gru_int8"));
    let mut store = g.open(g.with_history(&[&lstm]));
    assert_eq!(
        store.begin_update(0).map(|_| ()),
        Err(StoreError::Rejected(Error::Truncated))
    );
    // More bytes than announced.
    let mut up = store.begin_update(100).expect("fits");
    assert_eq!(
        up.write_chunk(&gru[..101]),
        Err(StoreError::Overflow { expected: 100 })
    );
    assert_eq!(up.write_chunk(&gru[..10]), Err(StoreError::Aborted));
    // Fewer bytes than announced.
    let mut up = store.begin_update(gru.len()).expect("fits");
    up.write_chunk(&gru[..1000]).expect("write");
    let mut buf = vec![0u8; gru.len()];
    let r = up.finish(&check(2), &mut buf);
    assert_eq!(
        r,
        Err(StoreError::Incomplete {
            expected: gru.len(),
            got: 1000
        })
    );
    // A RAM buffer shorter than the blob.
    let mut up = store.begin_update(gru.len()).expect("fits");
    up.write_chunk(&gru).expect("write");
    let mut small = vec![0u8; 100];
    let r = up.finish(&check(2), &mut small);
    assert_eq!(
        r,
        Err(StoreError::BufferTooSmall {
            needed: gru.len(),
            got: 100
        })
    );
    // None of it changed the active model.
    let mut store = g.open(store.into_inner());
    assert_eq!(active_bytes(&mut store), Some(lstm));
    let e = StoreError::<SimError>::RolledBack {
        version: 3,
        current: 4,
    };
    assert_eq!(
        e.to_string(),
        "model version 3 is not newer than the committed version 4"
    );
    assert_eq!(
        StoreError::Flash(SimError::NotAligned).to_string(),
        "the flash operation failed: Arguments are not properly aligned"
    );
}

#[test]
fn layouts_that_do_not_fit_the_flash_are_refused() {
    let bad = |layout: Layout| match ModelStore::new(Nrf::new(64 * 1024), layout) {
        Err(StoreError::BadLayout(why)) => why,
        other => panic!("{layout:?} accepted: {:?}", other.map(|s| s.active())),
    };
    let e = 4096;
    assert_eq!(
        bad(Layout {
            slot_a: 0,
            slot_b: 2 * e,
            slot_size: 3 * e,
            journal: 8 * e,
            journal_size: 2 * e
        }),
        "two regions overlap"
    );
    assert_eq!(
        bad(Layout::contiguous(100, 3 * e, 2 * e)),
        "a region does not start on an erase unit"
    );
    assert_eq!(
        bad(Layout::contiguous(0, 3 * e + 4, 2 * e)),
        "the slot size is not a non-zero multiple of the erase size"
    );
    assert_eq!(
        bad(Layout::contiguous(0, 3 * e, e)),
        "the journal is not a multiple of the erase size of at least two units"
    );
    assert_eq!(
        bad(Layout::contiguous(0, 8 * e, 2 * e)),
        "a region ends beyond the flash's capacity"
    );
    assert!(ModelStore::new(Nrf::new(64 * 1024), Layout::contiguous(0, 7 * e, 2 * e)).is_ok());
}

// ---------------------------------------------------------------------------------------
// Session state across deep sleep
// ---------------------------------------------------------------------------------------

type Small = Sim<8, 32, 1024>;
type Sess<'m> = Session<'m, 128, 64>;

/// A session of `model` after `frames` frames of a fixed pseudo-random input.
fn run<'m>(model: &'m Model<'m>, frames: usize) -> Sess<'m> {
    let mut s = Sess::new(model).expect("fits");
    let mut rng = Rng(42);
    for _ in 0..frames {
        let frame: Vec<f32> = (0..model.input_size())
            .map(|_| (rng.below(2001) as f32 - 1000.0) / 500.0)
            .collect();
        s.step(&frame).expect("step");
    }
    s
}

const REGION: StateRegion = StateRegion {
    offset: 0,
    size: 2 * 1024,
};

#[test]
fn state_round_trips_and_is_bound_to_its_model() {
    let (lstm, gru) = (blob("vowels_lstm_int8"), blob("vowels_gru_int8"));
    let (ml, mg) = (
        Model::from_blob(&lstm).unwrap(),
        Model::from_blob(&gru).unwrap(),
    );
    let (crc_l, crc_g) = (tinyrnn::model::crc32(&lstm), tinyrnn::model::crc32(&gru));
    let mut flash = Small::new(8 * 1024);
    let mut st = StateStore::new(&mut flash, REGION).expect("region");
    let mut buf = vec![0u8; 1024];
    let a = run(&ml, 25);
    st.save(&mut flash, &a, crc_l, &mut buf).expect("save");

    // After "deep sleep": a new store on the same flash, a fresh session.
    let mut st = StateStore::new(&mut flash, REGION).expect("region");
    let mut b = Sess::new(&ml).unwrap();
    assert_ne!(b.state(), a.state());
    st.restore(&mut flash, &mut b, crc_l, &mut buf)
        .expect("restore");
    assert_eq!(b.state(), a.state());
    let (mut oa, mut ob) = ([0i16; 9], [0i16; 9]);
    let mut a = a;
    a.step(&[0.5; 12]).unwrap();
    b.step(&[0.5; 12]).unwrap();
    a.output_q(&mut oa).unwrap();
    b.output_q(&mut ob).unwrap();
    assert_eq!(oa, ob);

    // Another model (an update happened) finds no state; so does a session of another
    // shape that claims the same model.
    let mut g = Sess::new(&mg).unwrap();
    assert_eq!(
        st.restore(&mut flash, &mut g, crc_g, &mut buf),
        Err(StoreError::NoState)
    );
    assert_eq!(
        st.restore(&mut flash, &mut g, crc_l, &mut buf),
        Err(StoreError::NoState)
    );
    // A buffer too small for the state.
    let mut tiny = [0u8; 8];
    assert!(matches!(
        st.save(&mut flash, &a, crc_l, &mut tiny),
        Err(StoreError::BufferTooSmall { got: 8, .. })
    ));
}

#[test]
fn state_saves_wear_the_ring_evenly() {
    let lstm = blob("vowels_lstm_int8");
    let m = Model::from_blob(&lstm).unwrap();
    let crc = tinyrnn::model::crc32(&lstm);
    let s = run(&m, 3);
    // 64 state words + tag = 260 bytes, + 32-byte header = 292 -> 296: 3 entries a unit.
    let mut flash = Small::new(8 * 1024);
    let region = StateRegion {
        offset: 2048,
        size: 4 * 1024,
    };
    let mut st = StateStore::new(&mut flash, region).expect("region");
    let mut buf = vec![0u8; 1024];
    let saves = 600;
    for _ in 0..saves {
        st.save(&mut flash, &s, crc, &mut buf).expect("save");
    }
    let wear = &flash.unit_erases[2..6];
    // Each unit takes 3 entries: one erase per 3 saves, spread round the ring.
    assert_eq!(wear.iter().sum::<u32>(), saves / 3);
    let (lo, hi) = (wear.iter().min().unwrap(), wear.iter().max().unwrap());
    assert!(hi - lo <= 1, "uneven wear {wear:?}");
    assert!(flash.unit_erases[..2]
        .iter()
        .chain(&flash.unit_erases[6..])
        .all(|&n| n == 0));
    let mut st = StateStore::new(&mut flash, region).expect("region");
    let mut r = Sess::new(&m).unwrap();
    st.restore(&mut flash, &mut r, crc, &mut buf)
        .expect("restore");
    assert_eq!(r.state(), s.state());
}

#[test]
fn a_power_cut_during_a_state_save_keeps_the_previous_state() {
    let lstm = blob("vowels_lstm_int8");
    let m = Model::from_blob(&lstm).unwrap();
    let crc = tinyrnn::model::crc32(&lstm);
    let (s1, s2, s3) = (run(&m, 5), run(&m, 9), run(&m, 14));
    let mut buf = vec![0u8; 1024];
    let mut total = 0;
    // Before the cut: 1 entry (the save fits in the same unit), or 3 (the unit is full
    // and the save erases the next one).
    for before in [1, 3] {
        let mut base = Small::new(8 * 1024);
        let mut st = StateStore::new(&mut base, REGION).unwrap();
        for _ in 0..before {
            st.save(&mut base, &s1, crc, &mut buf).unwrap();
        }
        let mut dry = base.clone();
        dry.reset_ops();
        let mut st = StateStore::new(&mut dry, REGION).unwrap();
        st.save(&mut dry, &s2, crc, &mut buf).unwrap();
        let ops = dry.ops;
        assert_eq!(dry.erases, u64::from(before == 3));
        for k in 0..ops {
            for mode in 0..MODES {
                let mut f = base.clone();
                f.reset_ops();
                f.cut = Some((k, k * 7919 * MODES + mode));
                let mut st = StateStore::new(&mut f, REGION).unwrap();
                let r = st.save(&mut f, &s2, crc, &mut buf);
                assert_eq!(r, Err(StoreError::Flash(SimError::PowerLost)));
                let mut f = f.reboot();
                let mut st = StateStore::new(&mut f, REGION).unwrap();
                let mut r = Sess::new(&m).unwrap();
                st.restore(&mut f, &mut r, crc, &mut buf)
                    .unwrap_or_else(|e| panic!("cut at {k} mode {mode}: {e}"));
                assert!(
                    r.state() == s1.state() || r.state() == s2.state(),
                    "cut at {k} mode {mode}: a state that was never saved"
                );
                // And the next save after the reboot works.
                st.save(&mut f, &s3, crc, &mut buf).unwrap();
                let mut st = StateStore::new(&mut f, REGION).unwrap();
                st.restore(&mut f, &mut r, crc, &mut buf).unwrap();
                assert_eq!(r.state(), s3.state(), "cut at {k} mode {mode}");
                total += 1;
            }
        }
    }
    println!("state save: {total} power cuts with reboot, all restored the old or the new state");
}

#[test]
fn a_corrupted_newest_state_falls_back_to_the_one_before() {
    let lstm = blob("vowels_lstm_int8");
    let m = Model::from_blob(&lstm).unwrap();
    let crc = tinyrnn::model::crc32(&lstm);
    let (s1, s2) = (run(&m, 5), run(&m, 9));
    let mut flash = Small::new(8 * 1024);
    let mut st = StateStore::new(&mut flash, REGION).unwrap();
    let mut buf = vec![0u8; 1024];
    st.save(&mut flash, &s1, crc, &mut buf).unwrap();
    st.save(&mut flash, &s2, crc, &mut buf).unwrap();
    // One bit of the second entry's state bytes (after its 32-byte header).
    flash.mem[296 + 32 + 40] ^= 0x04;
    let mut r = Sess::new(&m).unwrap();
    st.restore(&mut flash, &mut r, crc, &mut buf).unwrap();
    assert_eq!(r.state(), s1.state());
}
