//! Link-time proof that no panic path survives in tinyrnn's loader, step path and streaming
//! APIs (see `../README.md`).
//!
//! The panic handler calls `tinyrnn_panic_path_is_linked`, a function that is declared but
//! defined nowhere. The binary is built in release with fat LTO for `thumbv7em-none-eabihf`;
//! `--gc-sections` drops every function `_start` cannot reach. So the link succeeds if and
//! only if the optimizer removed every call to the panic machinery: every bounds check and
//! every `unwrap` on the reachable paths has been proven unreachable.
//!
//! What the optimizer sees must be what firmware sees, so nothing is a compile-time
//! constant: the blob, every frame, every length, the window and the saved state all come
//! through `black_box` (opaque: any bytes, any length). The committed blob is only there so
//! that the binary is a realistic program: the proof covers every blob.
#![no_std]
#![no_main]

use core::hint::black_box;

use tinyrnn::{Classifier, Config, F32Math, Generator, Model, Session};

/// Words of state / scratch: enough for the bundled model and anything like it.
const STATE: usize = 256;
const SCRATCH: usize = 256;
/// Longest frame the firmware could pass.
const FRAME: usize = 64;

/// A real bundled blob: the JapaneseVowels LSTM classifier, int8 (12 features, 32 units,
/// 9 classes, normalization and a dense head).
static BLOB: &[u8] = include_bytes!("../../data/blobs/vowels_lstm_int8.trnn");

extern "C" {
    /// Never defined: referencing it makes the link fail.
    #[cfg(not(feature = "report"))]
    fn tinyrnn_panic_path_is_linked() -> !;
}

#[cfg(not(feature = "report"))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    // SAFETY: never called — the point is that the link fails if this is reachable.
    unsafe { tinyrnn_panic_path_is_linked() }
}

#[cfg(feature = "report")]
#[panic_handler]
#[inline(never)]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {
        core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
    }
}

/// An arbitrary slice of `buf` (opaque length).
fn some<T>(buf: &[T]) -> &[T] {
    let n = black_box(buf.len());
    buf.get(..n).unwrap_or(buf)
}

/// An arbitrary mutable slice of `buf` (opaque length).
fn some_mut<T>(buf: &mut [T]) -> &mut [T] {
    let n = black_box(buf.len()).min(buf.len());
    match buf.split_at_mut_checked(n) {
        Some((a, _)) => a,
        None => &mut [],
    }
}

/// A signed envelope's checks (feature `signed`): any bytes, any trusted keys, any minimum.
#[cfg(feature = "signed")]
fn signed(bytes: &[u8]) {
    let keys = black_box([[0x5au8; 32]; 2]);
    let keys = some(&keys);
    let _ = black_box(tinyrnn::signed::verify(bytes, keys, black_box(3)));
    if let Ok(m) = black_box(Model::from_signed_blob(bytes, keys, black_box(0))) {
        let _ = black_box(m.weight_bytes());
    }
    let _ = black_box(tinyrnn::signed::parse(bytes));
}

/// One model's life in firmware: load, stream, classify, save/restore, generate.
fn run(blob: &[u8]) {
    let Ok(model) = black_box(Model::from_blob(blob)) else {
        return;
    };
    let _ = black_box(model.weight_bytes());

    // Session: every public operation, frames of any value and length.
    if let Ok(mut s) = Session::<STATE, SCRATCH>::new(&model) {
        let _ = s.set_f32_math(black_box(F32Math::Accurate));
        for _ in 0..black_box(3) {
            let frame = black_box([0.0f32; FRAME]);
            let _ = black_box(s.step(some(&frame)));
            let q = black_box([0i16; FRAME]);
            let _ = black_box(s.step_q(some(&q)));
        }
        let mut out = [0.0f32; FRAME];
        let _ = black_box(s.output(some_mut(&mut out)));
        let mut out_q = [0i16; FRAME];
        let _ = black_box(s.output_q(some_mut(&mut out_q)));
        let _ = black_box(s.classify());
        let _ = black_box(s.state());
        let mut saved = [0u8; 4 * STATE + 4];
        let n = s.save_state(some_mut(&mut saved));
        let _ = black_box(n);
        let saved = black_box(saved);
        let _ = black_box(s.restore_state(some(&saved)));
        s.reset();
        black_box(&s);
    }

    // Streaming classifier, window and smoothing opaque.
    let mut cfg = Config::default();
    cfg.window = black_box(Some(50));
    cfg.smoothing = black_box(true);
    if let Ok(mut clf) = Classifier::<STATE, SCRATCH, 5>::new(&model, cfg) {
        for _ in 0..black_box(100) {
            let frame = black_box([0.0f32; FRAME]);
            let _ = black_box(clf.push(some(&frame)));
            let _ = black_box(clf.smoothed());
        }
        let _ = black_box(clf.end_sequence());
        let _ = black_box(clf.frames());
    }

    // Window mode (reverse / bidirectional layers): a session over a window buffer, and a
    // classifier with overlapping windows, every length opaque.
    #[cfg(feature = "all-models")]
    {
        let mut buf = black_box([0u32; 512]);
        let mut win = tinyrnn::Window::new(some_mut(&mut buf));
        if let Ok(mut s) = Session::<STATE, SCRATCH>::new(&model) {
            for _ in 0..black_box(3) {
                let frame = black_box([0.0f32; FRAME]);
                let _ = black_box(s.step_window(some(&frame), &mut win));
            }
            let mut out = [0.0f32; FRAME];
            let _ = black_box(s.output_window(&mut win, some_mut(&mut out)));
            let mut out_q = [0i16; FRAME];
            let _ = black_box(s.output_window_q(&mut win, some_mut(&mut out_q)));
            let _ = black_box(s.classify_window(&mut win));
            black_box(&s);
        }
        win.clear();
        let mut cfg = Config::default();
        cfg.window = black_box(Some(16));
        cfg.hop = black_box(Some(4));
        if let Ok(mut clf) = Classifier::<STATE, SCRATCH, 0>::new(&model, cfg) {
            for _ in 0..black_box(40) {
                let frame = black_box([0.0f32; FRAME]);
                let _ = black_box(clf.push_window(some(&frame), &mut win));
            }
        }
    }

    // Generator.
    if let Ok(mut g) = Generator::<STATE, SCRATCH>::new(&model) {
        let frame = black_box([0.0f32; FRAME]);
        let _ = black_box(g.prime(some(&frame)));
        let mut out = [0.0f32; FRAME];
        for _ in 0..black_box(10) {
            let _ = black_box(g.next(some_mut(&mut out)));
        }
    }
}

/// A NOR flash whose contents, capacity and every outcome are opaque.
#[cfg(feature = "store")]
mod flash {
    use core::hint::black_box;
    use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash};

    pub struct Opaque;

    fn outcome() -> Result<(), NorFlashErrorKind> {
        if black_box(false) {
            Err(NorFlashErrorKind::Other)
        } else {
            Ok(())
        }
    }

    impl ErrorType for Opaque {
        type Error = NorFlashErrorKind;
    }
    impl ReadNorFlash for Opaque {
        const READ_SIZE: usize = 1;
        fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
            black_box(offset);
            for b in bytes.iter_mut() {
                *b = black_box(0xFF);
            }
            outcome()
        }
        fn capacity(&self) -> usize {
            black_box(1 << 20)
        }
    }
    impl NorFlash for Opaque {
        const WRITE_SIZE: usize = 4;
        const ERASE_SIZE: usize = 4096;
        fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
            black_box((from, to));
            outcome()
        }
        fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
            black_box((offset, bytes));
            outcome()
        }
    }
}

/// The model store and the state store: boot, an update in chunks of any length (both
/// finishes), reading the active model, saving and restoring a session's state.
#[cfg(feature = "store")]
fn store(blob: &[u8]) {
    use tinyrnn::store::{Layout, ModelCheck, ModelStore, StateRegion, StateStore};
    let layout = Layout {
        slot_a: black_box(0),
        slot_b: black_box(0x1_0000),
        slot_size: black_box(0x1_0000),
        journal: black_box(0x2_0000),
        journal_size: black_box(0x2000),
    };
    let Ok(mut st) = ModelStore::new(flash::Opaque, layout) else {
        return;
    };
    let _ = black_box(st.active());
    let mut ram = [0u8; 0x1_0000];
    let _ = black_box(st.read_active(some_mut(&mut ram)).map(|b| b.len()));
    let check = ModelCheck::for_session::<STATE, SCRATCH>(black_box(1));
    if let Ok(mut up) = st.begin_update(black_box(blob.len())) {
        for _ in 0..black_box(10) {
            let _ = black_box(up.write_chunk(some(blob)));
        }
        let _ = black_box(up.finish(&check, some_mut(&mut ram)).is_ok());
    }
    if let Ok(mut up) = st.begin_update(black_box(blob.len())) {
        let _ = black_box(up.write_chunk(some(blob)));
        let _ = black_box(up.finish_mapped(&check, some(blob)).is_ok());
    }
    let Ok(model) = Model::from_blob(blob) else {
        return;
    };
    let Ok(mut s) = Session::<STATE, SCRATCH>::new(&model) else {
        return;
    };
    let region = StateRegion {
        offset: black_box(0x3_0000),
        size: black_box(0x4000),
    };
    let flash = st.flash();
    if let Ok(mut ss) = StateStore::new(flash, region) {
        let mut buf = [0u8; 4 * STATE + 4];
        let crc = black_box(7);
        let _ = black_box(ss.save(flash, &s, crc, some_mut(&mut buf)));
        let _ = black_box(ss.restore(flash, &mut s, crc, some_mut(&mut buf)));
    }
}

/// The entry point (and the root of `--gc-sections`).
#[no_mangle]
pub extern "C" fn _start() -> ! {
    #[cfg(feature = "canary")]
    {
        // A bounds check the optimizer cannot remove: the link must fail.
        let v = black_box([1u8, 2, 3]);
        black_box(v[black_box(7usize)]);
    }
    loop {
        run(black_box(BLOB));
        #[cfg(feature = "store")]
        store(black_box(BLOB));
        #[cfg(feature = "signed")]
        signed(black_box(BLOB));
    }
}
