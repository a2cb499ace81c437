//! The board-independent update loop (`ota` module) on the host, against a simulated NOR
//! flash (erase-before-write, 4 KiB sectors, 4-byte words: the nRF52840/ESP32-C3 geometry)
//! and a scripted serial link. The board crates cannot run here (no hardware); this checks
//! the protocol, the verification before activation and the boot choice they all share.
//!
//! `cargo xtask test ota_host`, or `cd boards/board-support && cargo test --features ota
//! --target host-tuple --test ota_host` (the crate's `.cargo/config.toml` targets an MCU).

use std::collections::VecDeque;

use ed25519_compact::{KeyPair, Seed};
use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash};
use tinyrnn::signed::{self, PublicKey};
use tinyrnn::store::{Layout, ModelStore};
use tinyrnn_board_support::data;
use tinyrnn_board_support::ota::{self, Link, Origin, Poll, Receiver, BLOCK, MAGIC};

// defmt needs a global logger and panic handler at link time; the host discards the log.
#[defmt::global_logger]
struct NoLog;
unsafe impl defmt::Logger for NoLog {
    fn acquire() {}
    unsafe fn flush() {}
    unsafe fn release() {}
    unsafe fn write(_: &[u8]) {}
}
#[defmt::panic_handler]
fn defmt_panic() -> ! {
    panic!("defmt panic")
}
defmt::timestamp!("{=u32}", 0);

/// NOR flash: erase sets 4 KiB to 0xFF, program can only clear bits, words of 4 bytes.
struct Nor(Vec<u8>);

impl ErrorType for Nor {
    type Error = NorFlashErrorKind;
}
impl ReadNorFlash for Nor {
    const READ_SIZE: usize = 1;
    fn read(&mut self, o: u32, b: &mut [u8]) -> Result<(), Self::Error> {
        let o = o as usize;
        b.copy_from_slice(
            self.0
                .get(o..o + b.len())
                .ok_or(NorFlashErrorKind::OutOfBounds)?,
        );
        Ok(())
    }
    fn capacity(&self) -> usize {
        self.0.len()
    }
}
impl NorFlash for Nor {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = 4096;
    fn erase(&mut self, f: u32, t: u32) -> Result<(), Self::Error> {
        assert!(f.is_multiple_of(4096) && t.is_multiple_of(4096));
        self.0[f as usize..t as usize].fill(0xFF);
        Ok(())
    }
    fn write(&mut self, o: u32, b: &[u8]) -> Result<(), Self::Error> {
        assert!(
            o.is_multiple_of(4) && b.len().is_multiple_of(4),
            "unaligned program"
        );
        for (d, s) in self.0[o as usize..].iter_mut().zip(b) {
            *d &= s;
        }
        Ok(())
    }
}

/// The host side of the wire: answers every `>` with the next block, records the replies.
struct Host {
    to_board: VecDeque<u8>,
    payload: Vec<u8>,
    sent: usize,
    /// Stop answering `>` after this many payload bytes (a cable pulled mid-transfer).
    cut_at: Option<usize>,
    replies: Vec<u8>,
}

impl Host {
    fn new(payload: &[u8], announced: u32) -> Self {
        let mut to_board: VecDeque<u8> = b"xx".iter().copied().collect(); // noise first
        to_board.extend(MAGIC);
        to_board.extend(announced.to_le_bytes());
        Host {
            to_board,
            payload: payload.to_vec(),
            sent: 0,
            cut_at: None,
            replies: Vec::new(),
        }
    }
    fn reply(&self) -> String {
        String::from_utf8_lossy(&self.replies).into_owned()
    }
}

impl Link for Host {
    fn try_read(&mut self) -> Option<u8> {
        self.to_board.pop_front()
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'>' {
                let end = (self.sent + BLOCK).min(self.payload.len());
                let end = self.cut_at.map_or(end, |c| end.min(c));
                self.to_board.extend(&self.payload[self.sent..end]);
                self.sent = end;
            } else {
                self.replies.push(b);
            }
        }
    }
}

const LAYOUT: Layout = Layout::contiguous(0, 16 * 1024, 16 * 1024);

fn keypair(b: u8) -> KeyPair {
    KeyPair::from_seed(Seed::new([b; 32]))
}

fn sign(kp: &KeyPair, version: u32, blob: &[u8]) -> Vec<u8> {
    let head = signed::header(signed::key_id(&kp.pk), version, blob.len()).unwrap();
    let mut v = head.to_vec();
    v.extend_from_slice(blob);
    v.extend_from_slice(kp.sk.sign(&v, None).as_ref());
    v
}

/// Runs one transfer to its end; returns the outcome, the host's transcript, and polls used.
fn transfer(store: &mut ModelStore<Nor>, keys: &[PublicKey], host: &mut Host) -> (Poll, usize) {
    let mut verify = vec![0u8; ota::MAX_BLOB];
    let mut rx = Receiver::new(store, &mut verify, keys);
    let mut t = 0u32;
    for polls in 1..10_000 {
        // A fake microsecond clock: every reading advances 1 ms.
        let mut now = || {
            t += 1_000;
            t
        };
        match rx.poll(host, &mut now) {
            Poll::Pending => {}
            p => return (p, polls),
        }
    }
    panic!("transfer never ended: {}", host.reply());
}

#[test]
fn update_verify_activate_and_refusals() {
    let kp = keypair(7);
    let keys = [*kp.pk];
    let mut store = ModelStore::new(Nor(vec![0xFF; 64 * 1024]), LAYOUT).unwrap();
    let mut buf = vec![0u8; ota::MAX_BLOB];

    // Blank flash: the built-in blob runs.
    let (blob, origin) = ota::boot_blob(&mut store, &mut buf, &keys);
    assert_eq!(origin, Origin::BuiltIn);
    assert_eq!(blob, data::BLOB);

    // A good update (version 3) is received in 64-byte blocks and activated.
    let good = sign(&kp, 3, data::BLOB);
    let mut host = Host::new(&good, good.len() as u32);
    let (p, _) = transfer(&mut store, &keys, &mut host);
    assert_eq!(p, Poll::Activated(3), "{}", host.reply());
    assert_eq!(host.reply(), "ota ok version=3\n");
    assert_eq!(host.sent, good.len());

    // Forged (one byte of the model flipped), unknown key, rolled back, truncated, too big,
    // unsigned: each refused with its reason; the version-3 model stays active.
    // (a newer version: its header passes the early check, the signature refuses it)
    let v4 = sign(&kp, 4, data::BLOB);
    let mut forged = v4.clone();
    forged[signed::HEADER_LEN + 100] ^= 0x01;
    let stranger = sign(&keypair(9), 4, data::BLOB);
    let old = sign(&kp, 2, data::BLOB);
    let same = sign(&kp, 3, data::BLOB);
    // The last field: refused from the envelope header, before anything is written.
    let cases: [(&[u8], Option<usize>, u32, &str, bool); 6] = [
        (
            &forged,
            None,
            forged.len() as u32,
            "ota err bad signature\n",
            false,
        ),
        (
            &stranger,
            None,
            stranger.len() as u32,
            "ota err unknown key\n",
            true,
        ),
        (&old, None, old.len() as u32, "ota err rolled back\n", true),
        (
            &same,
            None,
            same.len() as u32,
            "ota err rolled back\n",
            true,
        ),
        (
            &v4,
            Some(1000),
            v4.len() as u32,
            "ota err truncated\n",
            false,
        ),
        (
            data::BLOB,
            None,
            data::BLOB.len() as u32,
            "ota err not a signed envelope\n",
            true,
        ),
    ];
    for (payload, cut, announced, want, early) in cases {
        let before = store.flash().0.clone();
        let mut host = Host::new(payload, announced);
        host.cut_at = cut;
        let (p, _) = transfer(&mut store, &keys, &mut host);
        assert_eq!(p, Poll::Refused, "{want}");
        assert_eq!(host.reply(), want);
        assert_eq!(
            store.flash().0 == before,
            early,
            "{want}: flash untouched iff refused from the header"
        );
        let active = store.active().unwrap();
        assert_eq!(active.version, 3, "{want}: the good model must stay active");
    }

    // Larger than a slot: refused before anything is written, and the receiver stays usable.
    {
        let mut verify = vec![0u8; ota::MAX_BLOB];
        let mut rx = Receiver::new(&mut store, &mut verify, &keys);
        let mut host = Host::new(&[], 64 * 1024);
        assert_eq!(rx.poll(&mut host, &mut || 0), Poll::Pending);
        assert_eq!(host.reply(), "ota err too large\n");
    }

    // Reboot: the store still opens on version 3, and the board runs it (not the built-in).
    let flash = store.into_inner();
    let mut store = ModelStore::new(flash, LAYOUT).unwrap();
    let (blob, origin) = ota::boot_blob(&mut store, &mut buf, &keys);
    assert_eq!(origin, Origin::Stored(3));
    assert_eq!(blob, data::BLOB);

    // A firmware built without that key refuses the stored model and falls back.
    let other = [*keypair(9).pk];
    let (blob, origin) = ota::boot_blob(&mut store, &mut buf, &other);
    assert_eq!(origin, Origin::BuiltIn);
    assert_eq!(blob, data::BLOB);

    // A newer version goes to the other slot and wins.
    let v5 = sign(&kp, 5, data::BLOB);
    let before = store.active().unwrap().slot;
    let mut host = Host::new(&v5, v5.len() as u32);
    assert_eq!(transfer(&mut store, &keys, &mut host).0, Poll::Activated(5));
    assert_eq!(store.active().unwrap().slot, before.other());
}
