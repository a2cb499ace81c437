//! The model store with signed blobs (features `store` and `signed`): `SignedCheck` as the
//! store's `Verifier`. A signed update is committed with its authenticated version; a
//! forged, unknown-key, rolled-back, truncated, unsigned or too-large envelope is refused
//! with its typed error and the previous model stays active, also after a reboot; a power
//! cut at every flash operation of a signed update leaves exactly the old or the new one.
//!
//! `cargo test -p tinyrnn --profile checked --features store,signed --test store_signed`

use std::cell::Cell;

use ed25519_compact::{KeyPair, Seed};
use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash};
use tinyrnn::signed::{self, PublicKey};
use tinyrnn::store::{Active, Layout, ModelStore, SignedCheck, Slot, StoreError, Verifier};
use tinyrnn::{Buffer, Error, Model, Session};

/// A NOR flash in RAM (erase sets bytes to 0xFF, program only clears bits) whose power can
/// be cut: after `budget` operations every erase and program fails.
struct Ram {
    mem: Vec<u8>,
    budget: Cell<Option<u64>>,
}

impl Ram {
    fn new() -> Self {
        Ram {
            mem: vec![0xFF; CAPACITY],
            budget: Cell::new(None),
        }
    }
    fn op(&self) -> Result<(), NorFlashErrorKind> {
        match self.budget.get() {
            Some(0) => Err(NorFlashErrorKind::Other),
            Some(n) => {
                self.budget.set(Some(n - 1));
                Ok(())
            }
            None => Ok(()),
        }
    }
}

impl ErrorType for Ram {
    type Error = NorFlashErrorKind;
}

impl ReadNorFlash for Ram {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        let o = offset as usize;
        bytes.copy_from_slice(&self.mem[o..o + bytes.len()]);
        Ok(())
    }
    fn capacity(&self) -> usize {
        self.mem.len()
    }
}

impl NorFlash for Ram {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = 4096;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        self.op()?;
        self.mem[from as usize..to as usize].fill(0xFF);
        Ok(())
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        self.op()?;
        for (d, s) in self.mem[offset as usize..].iter_mut().zip(bytes) {
            assert_eq!(*d, 0xFF, "program of a unit that is not erased");
            *d &= s;
        }
        Ok(())
    }
}

const SLOT: u32 = 16 * 1024;
const CAPACITY: usize = 2 * SLOT as usize + 8 * 1024;

fn layout() -> Layout {
    Layout::contiguous(0, SLOT, 8 * 1024)
}

fn keypair(seed_byte: u8) -> KeyPair {
    KeyPair::from_seed(Seed::new([seed_byte; 32]))
}

fn public(kp: &KeyPair) -> PublicKey {
    *kp.pk
}

/// An envelope around `blob`, signed by `kp`.
fn sign(kp: &KeyPair, version: u32, blob: &[u8]) -> Vec<u8> {
    let mut v = signed::header(signed::key_id(&public(kp)), version, blob.len())
        .unwrap()
        .to_vec();
    v.extend_from_slice(blob);
    let sig = kp.sk.sign(&v, None);
    v.extend_from_slice(sig.as_ref());
    v
}

fn blob(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/blobs")
        .join(format!("{name}.trnn"));
    std::fs::read(p).expect("committed blob")
}

/// Writes `bytes` in 61-byte chunks (as a UART would deliver them) and finishes.
fn update(
    store: &mut ModelStore<Ram>,
    bytes: &[u8],
    verifier: &impl Verifier,
) -> Result<Active, StoreError<NorFlashErrorKind>> {
    let mut up = store.begin_update(bytes.len())?;
    for c in bytes.chunks(61) {
        up.write_chunk(c)?;
    }
    let mut ram = vec![0u8; SLOT as usize];
    up.finish(verifier, &mut ram)
}

/// The inner blob of the active envelope, read back and parsed as the firmware does.
fn active_inner(store: &mut ModelStore<Ram>) -> Vec<u8> {
    let mut ram = vec![0u8; SLOT as usize];
    let env = store.read_active(&mut ram).expect("an active model");
    signed::parse(env).expect("an envelope").blob.to_vec()
}

/// The logits of the first frames of a fixed input (to tell models apart by running them).
fn logits(inner: &[u8]) -> Vec<i16> {
    let m = Model::from_blob(inner).unwrap();
    let mut s = Session::<128, 64>::new(&m).unwrap();
    let frame = vec![0.25f32; m.input_size()];
    for _ in 0..5 {
        s.step(&frame).unwrap();
    }
    let mut out = vec![0i16; m.output_size()];
    s.output_q(&mut out).unwrap();
    out
}

/// A store on which the LSTM was committed as version 2, signed by key 1.
fn with_lstm_v2(trusted: &[PublicKey]) -> ModelStore<Ram> {
    let mut store = ModelStore::new(Ram::new(), layout()).unwrap();
    let env = sign(&keypair(1), 2, &blob("vowels_lstm_int8"));
    let a = update(
        &mut store,
        &env,
        &SignedCheck::for_session::<128, 64>(trusted),
    )
    .unwrap();
    assert_eq!((a.slot, a.version, a.len as usize), (Slot::A, 2, env.len()));
    store
}

#[test]
fn a_signed_update_commits_its_authenticated_version_and_runs_after_a_reboot() {
    let trusted = [public(&keypair(9)), public(&keypair(1))];
    let check = SignedCheck::for_session::<128, 64>(&trusted);
    let mut store = with_lstm_v2(&trusted);
    let gru = blob("vowels_gru_int8");
    let a = update(&mut store, &sign(&keypair(1), 5, &gru), &check).unwrap();
    assert_eq!((a.slot, a.version), (Slot::B, 5));
    assert_eq!(store.version_floor(), Some(5));
    let mut store = ModelStore::new(store.into_inner(), layout()).unwrap();
    assert_eq!(store.active(), Some(a));
    let inner = active_inner(&mut store);
    assert_eq!(inner, gru);
    assert_eq!(logits(&inner), logits(&gru));
    assert_ne!(logits(&inner), logits(&blob("vowels_lstm_int8")));
}

/// Sends `env`, expects the refusal `want`, and checks that the LSTM (version 2) is still
/// active, before and after a reboot.
fn refused(env: &[u8], want: StoreError<NorFlashErrorKind>) {
    let trusted = [public(&keypair(1))];
    let check = SignedCheck::for_session::<128, 64>(&trusted);
    let mut store = with_lstm_v2(&trusted);
    let before = store.active();
    assert_eq!(update(&mut store, env, &check), Err(want));
    assert_eq!(store.active(), before);
    assert_eq!(store.version_floor(), Some(2));
    let mut store = ModelStore::new(store.into_inner(), layout()).unwrap();
    assert_eq!(store.active(), before);
    assert_eq!(active_inner(&mut store), blob("vowels_lstm_int8"));
}

#[test]
fn a_forged_envelope_is_refused_as_a_bad_signature() {
    let mut env = sign(&keypair(1), 3, &blob("vowels_gru_int8"));
    env[signed::HEADER_LEN + 1000] ^= 0x01; // one weight bit
    refused(&env, StoreError::Rejected(Error::BadSignature));
    // A forged version (3 → 4) is a bad signature too, never a valid newer release.
    let mut env = sign(&keypair(1), 3, &blob("vowels_gru_int8"));
    env[16] = 4;
    refused(&env, StoreError::Rejected(Error::BadSignature));
}

#[test]
fn an_envelope_signed_by_an_untrusted_key_is_refused() {
    let env = sign(&keypair(7), 3, &blob("vowels_gru_int8"));
    refused(
        &env,
        StoreError::Rejected(Error::UnknownKey {
            key_id: signed::key_id(&public(&keypair(7))),
        }),
    );
}

#[test]
fn a_rolled_back_or_replayed_version_is_refused_after_the_signature_check() {
    let gru = blob("vowels_gru_int8");
    refused(
        &sign(&keypair(1), 1, &gru),
        StoreError::RolledBack {
            version: 1,
            current: 2,
        },
    );
    refused(
        &sign(&keypair(1), 2, &gru),
        StoreError::RolledBack {
            version: 2,
            current: 2,
        },
    );
}

#[test]
fn a_truncated_or_unsigned_blob_is_refused() {
    let gru = blob("vowels_gru_int8");
    let env = sign(&keypair(1), 3, &gru);
    refused(
        &env[..env.len() - 100],
        StoreError::Rejected(Error::Truncated),
    );
    refused(&env[..10], StoreError::Rejected(Error::Truncated));
    // A bare blob (valid CRC, no envelope).
    refused(&gru, StoreError::Rejected(Error::BadEnvelope));
}

#[test]
fn an_authentic_blob_too_big_for_the_firmware_buffers_is_refused() {
    let trusted = [public(&keypair(1))];
    let mut store = with_lstm_v2(&trusted);
    // The GRU needs 32 state words.
    let small = SignedCheck::for_session::<16, 64>(&trusted);
    let env = sign(&keypair(1), 3, &blob("vowels_gru_int8"));
    assert_eq!(
        update(&mut store, &env, &small),
        Err(StoreError::Rejected(Error::TooLarge {
            buffer: Buffer::State,
            needed: 32,
            capacity: 16
        }))
    );
    assert_eq!(store.active().map(|a| a.version), Some(2));
}

#[test]
fn a_power_cut_at_every_operation_of_a_signed_update_leaves_old_or_new() {
    let trusted = [public(&keypair(1))];
    let check = SignedCheck::for_session::<128, 64>(&trusted);
    let lstm = blob("vowels_lstm_int8");
    let gru = blob("vowels_gru_int8");
    let env = sign(&keypair(1), 3, &gru);
    let base = with_lstm_v2(&trusted).into_inner();
    let (mut old, mut new) = (0, 0);
    for budget in 0.. {
        let flash = Ram {
            mem: base.mem.clone(),
            budget: Cell::new(Some(budget)),
        };
        let mut store = ModelStore::new(flash, layout()).unwrap();
        let r = update(&mut store, &env, &check);
        let done = r.is_ok();
        let flash = store.into_inner();
        flash.budget.set(None);
        let mut store = ModelStore::new(flash, layout()).unwrap();
        let inner = active_inner(&mut store);
        if inner == lstm {
            assert!(
                !done,
                "budget {budget}: update reported done, old model active"
            );
            assert_eq!(store.version_floor(), Some(2));
            old += 1;
        } else {
            assert_eq!(inner, gru, "budget {budget}: neither old nor new");
            assert_eq!(store.version_floor(), Some(3));
            new += 1;
        }
        if done {
            break;
        }
    }
    // Every cut point but the last left the old model; the last one completed.
    assert_eq!(new, 1);
    assert!(old > 2, "{old} cut points");
}
