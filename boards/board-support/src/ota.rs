//! Model updates over a serial link into a [`ModelStore`] (feature `ota`).
//!
//! The board-independent half of the real boards' update path; a board supplies its flash
//! driver (any `embedded_storage` [`NorFlash`]), the flash [`Layout`] it reserved in its
//! link script, and a byte [`Link`] (its UART).
//!
//! * [`boot_blob`]: at boot, the newest valid model of the store (a signed envelope,
//!   verified again against [`TRUSTED_KEYS`]), or the built-in [`data::BLOB`] when both
//!   slots are empty or nothing in them verifies.
//! * [`Receiver`]: receives one blob in blocks while the stream keeps running (it is the
//!   `poll` of [`stream::run_polled`](crate::stream::run_polled)), writes it to the
//!   inactive slot as it arrives, and lets [`Update::finish`](tinyrnn::store::Update::finish)
//!   verify it (CRC read back, signature, version, model format, the firmware's buffers)
//!   before the one atomic commit.
//!
//! # Wire protocol (host → board, board → host), 8-bit bytes
//!
//! | step | direction | bytes |
//! |---|---|---|
//! | 1 | host → board | `b"TRNU"`, then the envelope length `n` as `u32` little-endian |
//! | 2 | board → host | `>`: send the next block |
//! | 3 | host → board | the next `min(BLOCK, left)` envelope bytes ([`BLOCK`] = 64) |
//! | … | | steps 2–3 until `n` bytes were sent |
//! | 4 | board → host | `ota ok version=<v>\n`, or `ota err <reason>\n` (the old model keeps running) |
//!
//! The board asks for every block (`>`) and then reads it at once, so a UART with a
//! one-byte receive register (STM32, nRF UARTE) cannot overrun while the board computes a
//! frame; the stream pauses for the host's round trip plus 64 byte times (5.6 ms at
//! 115 200 Bd) per block, and those frames come late (counted as `late`). Bytes of step 1
//! that arrive while the board computes may be lost: a host that gets no `>` within
//! 100 ms sends step 1 again (the board looks for the magic). A block that does not
//! complete within [`BLOCK_TIMEOUT_US`] aborts the update (`ota err truncated`).
//!
//! The payload is a signed envelope (`tinyrnn sign`, see `tinyrnn::signed`): unsigned
//! blobs are refused, so only a holder of a signing key in [`TRUSTED_KEYS`] can change
//! the model, and only to a higher version than every version committed before.

use embedded_storage::nor_flash::NorFlash;
use tinyrnn::signed::{self, PublicKey};
use tinyrnn::store::{Layout, ModelCheck, ModelStore, StoreError, Update, Verifier};
use tinyrnn::{Error, Model};

use crate::data::{self, INPUT, OUTPUT, SCRATCH, STATE};
use crate::line::Line;
use crate::source::Replay;
use crate::stream::{self, Control, FrameClock};

/// Largest envelope the boards accept (and the size of each RAM buffer the update path
/// needs, see [`Buffers`]). A slot of the board's [`Layout`] must be at least this big.
pub const MAX_BLOB: usize = 16 * 1024;
/// Bytes per requested block (step 3 of the protocol).
pub const BLOCK: usize = 64;
/// Microseconds the board waits for the bytes of one block before it aborts the update.
pub const BLOCK_TIMEOUT_US: u32 = 100_000;
/// The magic of step 1.
pub const MAGIC: [u8; 4] = *b"TRNU";

/// The public keys whose signatures the boards accept, embedded at build time from the
/// file named by `TINYRNN_OTA_PUBKEYS` (one or more 32-byte raw Ed25519 public keys back to
/// back, as `tinyrnn keygen` writes them); empty without it, and then every update is refused
/// with `UnknownKey`.
pub const TRUSTED_KEYS: &[PublicKey] = data::OTA_KEYS;

/// The serial link an update arrives on (a board implements it for its UART).
pub trait Link {
    /// The next received byte, if one is waiting; never blocks.
    fn try_read(&mut self) -> Option<u8>;
    /// Sends `bytes` (blocking until they are queued).
    fn write(&mut self, bytes: &[u8]);
}

/// The two RAM buffers of the update path: the running model's copy of its slot, and the
/// read-back copy [`Update::finish`](tinyrnn::store::Update::finish) verifies.
pub struct Buffers {
    /// The active envelope, read from flash at boot.
    pub model: [u8; MAX_BLOB],
    /// The received envelope, read back from flash before it is activated.
    pub verify: [u8; MAX_BLOB],
}

impl Buffers {
    /// Two zeroed buffers (put them in a `static` or on `main`'s stack).
    pub const fn new() -> Self {
        Buffers {
            model: [0; MAX_BLOB],
            verify: [0; MAX_BLOB],
        }
    }
}

impl Default for Buffers {
    fn default() -> Self {
        Self::new()
    }
}

/// Where the model [`boot_blob`] returned comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, defmt::Format)]
pub enum Origin {
    /// A slot of the store, at this model version.
    Stored(u32),
    /// The blob built into the firmware.
    BuiltIn,
}

/// Checks that a verified inner blob loads and fits this firmware: format, the session's
/// compile-time buffers, and the frame/logit widths of the streaming loop.
fn check_fits(blob: &[u8]) -> Result<(), Error> {
    ModelCheck::for_session::<STATE, SCRATCH>(0).verify(blob)?;
    let m = Model::from_blob(blob)?;
    if m.input_size() != INPUT || m.output_size() != OUTPUT {
        return Err(Error::ShapeMismatch);
    }
    Ok(())
}

/// The [`Verifier`] of an update: a signed envelope from one of `keys`, whose inner blob
/// fits this firmware ([`check_fits`]). Its version is the envelope's (signed) version;
/// the store then refuses it unless it is above every committed version.
pub struct SignedFit<'k> {
    /// The trusted keys.
    pub keys: &'k [PublicKey],
}

impl Verifier for SignedFit<'_> {
    fn verify(&self, envelope: &[u8]) -> Result<u32, Error> {
        let v = signed::verify(envelope, self.keys, 0)?;
        check_fits(v.blob)?;
        Ok(v.version)
    }
}

/// The model to run at boot: the store's active envelope, verified again (signature and
/// fit), read into `buf`; else the built-in [`data::BLOB`].
pub fn boot_blob<'b, F: NorFlash>(
    store: &mut ModelStore<F>,
    buf: &'b mut [u8],
    keys: &[PublicKey],
) -> (&'b [u8], Origin) {
    let Some(active) = store.active() else {
        defmt::info!("ota: both slots empty, running the built-in model");
        return (data::BLOB, Origin::BuiltIn);
    };
    let stored = match store.read_active(buf) {
        Ok(env) => match signed::verify(env, keys, 0) {
            Ok(v) => check_fits(v.blob).map(|()| v.blob),
            Err(e) => Err(e),
        },
        Err(_) => Err(Error::BadChecksum),
    };
    match stored {
        Ok(blob) => {
            defmt::info!(
                "ota: running slot {} version {=u32}",
                active.slot,
                active.version
            );
            (blob, Origin::Stored(active.version))
        }
        Err(e) => {
            defmt::warn!(
                "ota: stored model refused ({}), running the built-in one",
                e
            );
            (data::BLOB, Origin::BuiltIn)
        }
    }
}

/// What one [`Receiver::poll`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, defmt::Format)]
pub enum Poll {
    /// Nothing decided yet (idle, or in the middle of a transfer).
    Pending,
    /// A new model was committed at this version: restart on it.
    Activated(u32),
    /// The transfer was refused or failed; the running model stays active. The receiver
    /// is spent: restart the stream to accept another update.
    Refused,
}

// No allocator to box the update in; the receiver lives on `main`'s stack, once.
#[allow(clippy::large_enum_variant)]
enum Phase<'s, F: NorFlash> {
    Idle(&'s mut ModelStore<F>),
    Receiving(Update<'s, F>),
    Done,
}

/// Receives one update (see the [module docs](self) for the protocol).
pub struct Receiver<'s, F: NorFlash> {
    phase: Phase<'s, F>,
    verify_buf: &'s mut [u8],
    keys: &'s [PublicKey],
    header: [u8; 8],
    header_len: usize,
    left: usize,
    /// Version of the active model when the transfer started (`None`: nothing stored).
    current: Option<u32>,
}

impl<'s, F: NorFlash> Receiver<'s, F> {
    /// A receiver writing into `store`, verifying in `verify_buf` (at least the slot's
    /// size, see [`Buffers::verify`]) against `keys`.
    pub fn new(
        store: &'s mut ModelStore<F>,
        verify_buf: &'s mut [u8],
        keys: &'s [PublicKey],
    ) -> Self {
        Receiver {
            phase: Phase::Idle(store),
            verify_buf,
            keys,
            header: [0; 8],
            header_len: 0,
            left: 0,
            current: None,
        }
    }

    /// Handles what the link has: the start of a transfer (never blocks), or the next block
    /// (blocks until it is complete or [`BLOCK_TIMEOUT_US`] passed by `now_us`).
    /// Call it whenever the board waits (between frames).
    pub fn poll<L: Link>(&mut self, link: &mut L, now_us: &mut dyn FnMut() -> u32) -> Poll {
        match &self.phase {
            Phase::Done => Poll::Refused,
            Phase::Idle(_) => self.poll_header(link),
            Phase::Receiving(_) => self.poll_block(link, now_us),
        }
    }

    fn poll_header<L: Link>(&mut self, link: &mut L) -> Poll {
        while let Some(b) = link.try_read() {
            if self.header_len < MAGIC.len() && b != MAGIC[self.header_len] {
                // Resynchronise on the magic.
                self.header_len = usize::from(b == MAGIC[0]);
                self.header[0] = b;
                continue;
            }
            self.header[self.header_len] = b;
            self.header_len += 1;
            if self.header_len == self.header.len() {
                self.header_len = 0;
                return self.start(link);
            }
        }
        Poll::Pending
    }

    fn start<L: Link>(&mut self, link: &mut L) -> Poll {
        let n = u32::from_le_bytes([
            self.header[4],
            self.header[5],
            self.header[6],
            self.header[7],
        ]) as usize;
        let Phase::Idle(store) = core::mem::replace(&mut self.phase, Phase::Done) else {
            return Poll::Refused;
        };
        let capacity = (store.layout().slot_size as usize).min(self.verify_buf.len());
        if n == 0 || n > capacity {
            defmt::warn!(
                "ota: {=usize} bytes announced, room for {=usize}",
                n,
                capacity
            );
            link.write(b"ota err too large\n");
            // Nothing was written: the receiver stays usable.
            self.phase = Phase::Idle(store);
            return Poll::Pending;
        }
        self.current = store.active().map(|a| a.version);
        match store.begin_update(n) {
            Ok(up) => {
                defmt::info!("ota: receiving {=usize} bytes into slot {}", n, up.slot());
                self.phase = Phase::Receiving(up);
                self.left = n;
                link.write(b">");
                Poll::Pending
            }
            Err(e) => self.refuse(link, &e),
        }
    }

    fn poll_block<L: Link>(&mut self, link: &mut L, now_us: &mut dyn FnMut() -> u32) -> Poll {
        let want = self.left.min(BLOCK);
        let mut block = [0u8; BLOCK];
        let mut got = 0;
        // Once a block is asked for, wait for all of it (a UART with a one-byte register
        // would lose bytes to a frame computed meanwhile); the stream pauses for at most
        // BLOCK_TIMEOUT_US, usually the host's round trip plus 64 byte times.
        let since = now_us();
        while got < want {
            if let Some(b) = link.try_read() {
                block[got] = b;
                got += 1;
            } else if now_us().wrapping_sub(since) > BLOCK_TIMEOUT_US {
                break;
            }
        }
        let Phase::Receiving(up) = &mut self.phase else {
            return Poll::Refused;
        };
        if got < want {
            // A block that started but did not complete: the transfer is lost.
            let e: StoreError<F::Error> = StoreError::Incomplete {
                expected: up.received() + self.left,
                got: up.received() + got,
            };
            self.phase = Phase::Done;
            return self.refuse(link, &e);
        }
        if up.received() == 0 {
            // The envelope header is in the first block: refuse what can never verify
            // (layout, length, unknown key, not newer than what runs) before anything is
            // written, so such a blob does not erase the spare slot.
            let early = match tinyrnn::signed::check_header(&block[..got], self.keys, self.left) {
                Err(e) => Some(StoreError::Rejected(e)),
                Ok(version) => self
                    .current
                    .filter(|&c| version <= c)
                    .map(|current| StoreError::RolledBack { version, current }),
            };
            if let Some(e) = early {
                self.phase = Phase::Done;
                return self.refuse(link, &e);
            }
        }
        if let Err(e) = up.write_chunk(&block[..got]) {
            self.phase = Phase::Done;
            return self.refuse(link, &e);
        }
        self.left -= got;
        if self.left > 0 {
            link.write(b">");
            return Poll::Pending;
        }
        let Phase::Receiving(up) = core::mem::replace(&mut self.phase, Phase::Done) else {
            return Poll::Refused;
        };
        match up.finish(&SignedFit { keys: self.keys }, self.verify_buf) {
            Ok(active) => {
                defmt::info!(
                    "ota: activated slot {} version {=u32}",
                    active.slot,
                    active.version
                );
                let mut line = Line::<40>::new();
                line.str("ota ok version=")
                    .int(active.version.into())
                    .str("\n");
                link.write(line.as_str().as_bytes());
                Poll::Activated(active.version)
            }
            Err(e) => self.refuse(link, &e),
        }
    }

    fn refuse<L: Link>(&mut self, link: &mut L, e: &StoreError<F::Error>) -> Poll {
        let why = reason(e);
        defmt::warn!("ota: update refused: {=str}", why);
        link.write(b"ota err ");
        link.write(why.as_bytes());
        link.write(b"\n");
        self.phase = Phase::Done;
        Poll::Refused
    }
}

/// The update firmware's main loop, the same on every board: run the model [`boot_blob`]
/// picks on the recording (replayed over and over), receive updates on `link` while it
/// streams, and restart on the new model after each commit (on the same one after a
/// refusal). Never returns.
pub fn serve<F: NorFlash, L: Link, C: FrameClock>(
    store: &mut ModelStore<F>,
    bufs: &mut Buffers,
    link: &mut L,
    clock: &mut C,
) -> ! {
    let mut source = Replay::new();
    loop {
        let (blob, origin) = boot_blob(store, &mut bufs.model, TRUSTED_KEYS);
        let model = match Model::from_blob(blob) {
            Ok(m) => m,
            Err(e) => defmt::panic!("invalid model blob: {}", e),
        };
        defmt::info!("ota: model {} ready, {=usize} B", origin, blob.len());
        let mut rx = Receiver::new(store, &mut bufs.verify, TRUSTED_KEYS);
        let mut stopped = false;
        let mut poll = |c: &mut C| match rx.poll(link, &mut || c.now_us()) {
            Poll::Pending => Control::Continue,
            Poll::Activated(_) | Poll::Refused => {
                stopped = true;
                Control::Stop
            }
        };
        let cfg = tinyrnn::Config::default();
        match stream::run_polled(&model, &mut source, clock, cfg, None, &mut poll) {
            Ok(_) => {}
            Err(e) => defmt::error!("stream stopped: {}", e),
        }
        if !stopped {
            // The recording ended: replay it from the start.
            source = Replay::new();
        }
    }
}

/// A short, stable reason for the `ota err` line (the typed error's name).
pub fn reason<E>(e: &StoreError<E>) -> &'static str {
    match e {
        StoreError::Flash(_) => "flash",
        StoreError::BadLayout(_) => "layout",
        StoreError::TooLarge { .. } => "too large",
        StoreError::Overflow { .. } => "overflow",
        StoreError::Incomplete { .. } => "truncated",
        StoreError::BufferTooSmall { .. } => "buffer",
        StoreError::ReadBack => "read back",
        StoreError::Corrupt => "corrupt",
        StoreError::RolledBack { .. } => "rolled back",
        StoreError::Rejected(Error::BadSignature) => "bad signature",
        StoreError::Rejected(Error::UnknownKey { .. }) => "unknown key",
        StoreError::Rejected(Error::BadKey) => "bad key",
        StoreError::Rejected(Error::BadEnvelope) => "not a signed envelope",
        StoreError::Rejected(Error::Truncated) => "truncated",
        StoreError::Rejected(Error::TooLarge { .. }) => "model too large for this firmware",
        StoreError::Rejected(Error::ShapeMismatch) => "model shape differs from this firmware",
        StoreError::Rejected(_) => "invalid model",
        _ => "store",
    }
}

/// Opens the store on `flash` (its [`Layout`] checked against the flash's geometry).
///
/// # Errors
/// The store's: a layout that does not fit the flash, a flash read error.
pub fn open<F: NorFlash>(flash: F, layout: Layout) -> Result<ModelStore<F>, StoreError<F::Error>> {
    ModelStore::new(flash, layout)
}
