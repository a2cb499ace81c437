//! Signed envelopes (feature `signed`): round trip, every single-bit flip refused, unknown
//! key, rollback, truncation, trailing bytes, and the verifier wired to RFC 8032 vectors.
//!
//! `cargo test -p tinyrnn --features signed --test signed`

use ed25519_compact::{KeyPair, Seed};
use tinyrnn::signed::{self, PublicKey, HEADER_LEN, OVERHEAD, SIGNATURE_LEN};
use tinyrnn::{Error, Model};

fn hex<const N: usize>(s: &str) -> [u8; N] {
    assert_eq!(s.len(), 2 * N);
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

/// RFC 8032 §7.1 TEST 1.
const T1_SECRET: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const T1_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const T1_SIG: &str = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065\
                      224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24\
                      655141438e7a100b";
/// RFC 8032 §7.1 TEST 2 (message 0x72).
const T2_PUBLIC: &str = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";
const T2_SIG: &str = "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223\
                      ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aee\
                      b00d291612bb0c00";

fn keypair(seed_byte: u8) -> KeyPair {
    KeyPair::from_seed(Seed::new([seed_byte; 32]))
}

fn public(kp: &KeyPair) -> PublicKey {
    *kp.pk
}

/// An envelope around `blob`, built from the crate's own header and signed.
fn sign(kp: &KeyPair, version: u32, blob: &[u8]) -> Vec<u8> {
    let head = signed::header(signed::key_id(&public(kp)), version, blob.len()).unwrap();
    let mut v = head.to_vec();
    v.extend_from_slice(blob);
    let sig = kp.sk.sign(&v, None);
    v.extend_from_slice(sig.as_ref());
    v
}

fn real_blob(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/blobs")
        .join(format!("{name}.trnn"));
    std::fs::read(p).expect("committed blob")
}

#[test]
fn rfc8032_vectors_through_the_detached_verifier() {
    // The secret of TEST 1 derives the public key given in the RFC (the test's signer and
    // the verifier agree on encoding).
    let kp = KeyPair::from_seed(Seed::new(hex::<32>(T1_SECRET)));
    assert_eq!(*kp.pk, hex::<32>(T1_PUBLIC));
    let t1_sig = hex::<64>(&T1_SIG.replace(' ', ""));
    assert_eq!(
        signed::verify_detached(&hex(T1_PUBLIC), b"", &t1_sig),
        Ok(())
    );
    let t2_sig = hex::<64>(&T2_SIG.replace(' ', ""));
    assert_eq!(
        signed::verify_detached(&hex(T2_PUBLIC), &[0x72], &t2_sig),
        Ok(())
    );
    // Swapped vectors and a changed message do not verify.
    assert_eq!(
        signed::verify_detached(&hex(T2_PUBLIC), b"", &t1_sig),
        Err(Error::BadSignature)
    );
    assert_eq!(
        signed::verify_detached(&hex(T2_PUBLIC), &[0x73], &t2_sig),
        Err(Error::BadSignature)
    );
    // A public key that is not a curve point is a bad key, not a bad signature.
    let mut not_a_point = [0u8; 32];
    not_a_point[0] = 2; // y = 2 has no x on edwards25519
    assert_eq!(
        signed::verify_detached(&not_a_point, b"", &t1_sig),
        Err(Error::BadKey)
    );
}

#[test]
fn key_id_is_sha512_prefix() {
    // SHA-512 of the RFC 8032 TEST 1 public key, first 8 bytes (computed independently:
    // `printf d75a98...511a | xxd -r -p | sha512sum`).
    let id = signed::key_id(&hex(T1_PUBLIC));
    assert_eq!(id, hex::<8>("0e02a50225b4baaa"));
}

#[test]
fn round_trip_loads_the_inner_model() {
    let kp = keypair(7);
    let blob = real_blob("vowels_lstm_int8");
    let env = sign(&kp, 42, &blob);
    assert_eq!(env.len(), blob.len() + OVERHEAD);
    let trusted = [public(&keypair(1)), public(&kp)];
    let v = signed::verify(&env, &trusted, 42).unwrap();
    assert_eq!(v.blob, &blob[..]);
    assert_eq!(v.version, 42);
    assert_eq!(v.key_index, 1);
    let m = Model::from_signed_blob(&env, &trusted, 0).unwrap();
    let plain = Model::from_blob(&blob).unwrap();
    assert_eq!(m.input_size(), plain.input_size());
    assert_eq!(m.output_size(), plain.output_size());
    // An authentic envelope around a corrupt blob is refused by the blob's own checks.
    let mut bad = blob.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let env = sign(&kp, 42, &bad);
    assert_eq!(
        Model::from_signed_blob(&env, &trusted, 0).unwrap_err(),
        Error::BadChecksum
    );
}

#[test]
fn every_single_bit_flip_is_refused() {
    let kp = keypair(3);
    let trusted = [public(&kp)];
    // A small inner payload keeps the flip count (and the signature checks) low: the
    // envelope does not look inside the blob.
    let inner: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(37)).collect();
    let env = sign(&kp, 5, &inner);
    assert!(signed::verify(&env, &trusted, 5).is_ok());
    let mut counts = [0usize; 5];
    for bit in 0..env.len() * 8 {
        let mut e = env.clone();
        e[bit / 8] ^= 1 << (bit % 8);
        match signed::verify(&e, &trusted, 0) {
            Ok(v) => panic!("bit {bit} flipped, accepted as version {}", v.version),
            Err(Error::BadSignature) => counts[0] += 1,
            Err(Error::BadEnvelope) => counts[1] += 1,
            Err(Error::Truncated) => counts[2] += 1,
            Err(Error::UnknownKey { .. }) => counts[3] += 1,
            Err(e) => panic!("bit {bit}: unexpected {e:?}"),
        }
        counts[4] += 1;
    }
    assert_eq!(counts[4], (inner.len() + OVERHEAD) * 8);
    // The key id's 64 bits name an unknown key; magic, version and flags bits are envelope
    // errors; the length's bits either shorten (trailing bytes: envelope error) or lengthen
    // (truncated); everything else (version, blob, signature) is a bad signature.
    assert_eq!(counts[3], 64);
    assert_eq!(counts[1] + counts[2], (8 + 4) * 8);
    assert_eq!(counts[0], (4 + inner.len() + SIGNATURE_LEN) * 8);
}

#[test]
fn bit_flips_of_a_real_blob_envelope_are_refused() {
    // Header, signature, and every 8th bit of an 8 KiB model: all refused.
    let kp = keypair(4);
    let trusted = [public(&kp)];
    let env = sign(&kp, 1, &real_blob("vowels_lstm_int8"));
    let n = env.len() * 8;
    let bits = (0..HEADER_LEN * 8)
        .chain((HEADER_LEN * 8..n - SIGNATURE_LEN * 8).step_by(61))
        .chain(n - SIGNATURE_LEN * 8..n);
    for bit in bits {
        let mut e = env.clone();
        e[bit / 8] ^= 1 << (bit % 8);
        assert!(
            Model::from_signed_blob(&e, &trusted, 0).is_err(),
            "bit {bit} accepted"
        );
    }
}

#[test]
fn wrong_key_is_unknown() {
    let signer = keypair(9);
    let env = sign(&signer, 1, b"blob");
    let trusted = [public(&keypair(10)), public(&keypair(11))];
    assert_eq!(
        signed::verify(&env, &trusted, 0),
        Err(Error::UnknownKey {
            key_id: signed::key_id(&public(&signer))
        })
    );
    assert_eq!(
        signed::verify(&env, &[], 0),
        Err(Error::UnknownKey {
            key_id: signed::key_id(&public(&signer))
        })
    );
    // A forger who copies a trusted key's id but signs with his own key: bad signature.
    let forger = keypair(12);
    let mut v = signed::header(signed::key_id(&trusted[0]), 1, 4)
        .unwrap()
        .to_vec();
    v.extend_from_slice(b"blob");
    let sig = forger.sk.sign(&v, None);
    v.extend_from_slice(sig.as_ref());
    assert_eq!(signed::verify(&v, &trusted, 0), Err(Error::BadSignature));
}

#[test]
fn versions_below_the_minimum_are_rolled_back() {
    let kp = keypair(5);
    let trusted = [public(&kp)];
    let env = sign(&kp, 6, b"model");
    assert_eq!(signed::verify(&env, &trusted, 6).unwrap().version, 6);
    assert_eq!(signed::verify(&env, &trusted, 0).unwrap().version, 6);
    assert_eq!(
        signed::verify(&env, &trusted, 7),
        Err(Error::RolledBack { version: 6, min: 7 })
    );
    let top = sign(&kp, u32::MAX, b"model");
    assert_eq!(
        signed::verify(&top, &trusted, u32::MAX).unwrap().version,
        u32::MAX
    );
    // A forged envelope with a low version is a bad signature, not a rollback: the version
    // is only trusted after the signature.
    let mut forged = env.clone();
    forged[HEADER_LEN] ^= 1;
    assert_eq!(
        signed::verify(&forged, &trusted, 7),
        Err(Error::BadSignature)
    );
}

#[test]
fn truncated_trailing_and_malformed_envelopes() {
    let kp = keypair(6);
    let trusted = [public(&kp)];
    let env = sign(&kp, 1, &real_blob("vowels_rnn_int8"));
    for len in 0..env.len() {
        assert_eq!(
            signed::verify(&env[..len], &trusted, 0),
            Err(Error::Truncated),
            "length {len}"
        );
        assert_eq!(
            Model::from_signed_blob(&env[..len], &trusted, 0).unwrap_err(),
            Error::Truncated
        );
    }
    let mut long = env.clone();
    long.push(0);
    assert_eq!(signed::verify(&long, &trusted, 0), Err(Error::BadEnvelope));
    // A bare blob is not an envelope.
    let blob = real_blob("vowels_rnn_int8");
    assert!(!signed::is_envelope(&blob) && signed::is_envelope(&env));
    assert_eq!(signed::verify(&blob, &trusted, 0), Err(Error::BadEnvelope));
    // A declared length near u32::MAX does not wrap.
    let mut huge = env.clone();
    huge[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(signed::verify(&huge, &trusted, 0), Err(Error::Truncated));
    // Other envelope versions and non-zero flags are refused before any cryptography.
    for at in [4, 5, 6, 7] {
        let mut e = env.clone();
        e[at] ^= 0x80;
        assert_eq!(signed::verify(&e, &trusted, 0), Err(Error::BadEnvelope));
    }
}

#[test]
fn header_refuses_lengths_beyond_u32() {
    let id = [0u8; 8];
    assert!(signed::header(id, 0, u32::MAX as usize - OVERHEAD).is_ok());
    assert_eq!(
        signed::header(id, 0, u32::MAX as usize - OVERHEAD + 1),
        Err(Error::BadEnvelope)
    );
    #[cfg(target_pointer_width = "64")]
    assert_eq!(
        signed::header(id, 0, u32::MAX as usize + 1),
        Err(Error::BadEnvelope)
    );
}

#[test]
fn error_messages_are_sentences() {
    assert_eq!(
        Error::UnknownKey {
            key_id: hex("0e02a50225b4baaa")
        }
        .to_string(),
        "the blob is signed by key id 0e02a50225b4baaa, which is not a trusted key"
    );
    assert_eq!(
        Error::RolledBack { version: 3, min: 4 }.to_string(),
        "the blob's model version 3 is below the lowest accepted version 4"
    );
}

/// Feeds `env`'s blob to a [`signed::StreamVerifier`] in `chunk`-byte pieces.
fn stream(
    env: &[u8],
    trusted: &[PublicKey],
    min: u32,
    chunk: usize,
) -> Result<(u32, usize), Error> {
    let header: &[u8; HEADER_LEN] = env[..HEADER_LEN].try_into().unwrap();
    let sig: &[u8; SIGNATURE_LEN] = env[env.len() - SIGNATURE_LEN..].try_into().unwrap();
    let (mut v, n) = signed::StreamVerifier::new(header, sig, trusted, min)?;
    let blob = &env[HEADER_LEN..(HEADER_LEN + n).min(env.len() - SIGNATURE_LEN)];
    for c in blob.chunks(chunk) {
        v.absorb(c)?;
    }
    v.finish()
}

#[test]
fn streaming_verification_agrees_with_the_slice_verifier() {
    let kp = keypair(8);
    let trusted = [public(&keypair(1)), public(&kp)];
    let env = sign(&kp, 9, &real_blob("vowels_rnn_int8"));
    for chunk in [1, 7, 64, 256, 4096] {
        assert_eq!(stream(&env, &trusted, 9, chunk), Ok((9, 1)));
    }
    assert_eq!(
        stream(&env, &trusted, 10, 64),
        Err(Error::RolledBack {
            version: 9,
            min: 10
        })
    );
    assert!(matches!(
        stream(&env, &trusted[..1], 0, 64),
        Err(Error::UnknownKey { .. })
    ));
    // Every bit of the blob and of the signature, sampled: the two verifiers agree.
    for bit in (HEADER_LEN * 8..env.len() * 8).step_by(13) {
        let mut e = env.clone();
        e[bit / 8] ^= 1 << (bit % 8);
        let slice = signed::verify(&e, &trusted, 0).map(|v| (v.version, v.key_index));
        assert_eq!(stream(&e, &trusted, 0, 100), slice, "bit {bit}");
        assert!(slice.is_err());
    }
    // More or fewer bytes than declared.
    let header: &[u8; HEADER_LEN] = env[..HEADER_LEN].try_into().unwrap();
    let sig: &[u8; SIGNATURE_LEN] = env[env.len() - SIGNATURE_LEN..].try_into().unwrap();
    let (mut v, n) = signed::StreamVerifier::new(header, sig, &trusted, 0).unwrap();
    assert_eq!(n, env.len() - OVERHEAD);
    assert_eq!(v.absorb(&vec![0; n + 1]), Err(Error::BadEnvelope));
    v.absorb(&env[HEADER_LEN..HEADER_LEN + n - 1]).unwrap();
    assert_eq!(v.finish(), Err(Error::Truncated));
}

#[test]
fn header_check_refuses_what_can_never_verify_before_the_body_arrives() {
    let kp = keypair(7);
    let blob = real_blob("vowels_lstm_int8");
    let env = sign(&kp, 42, &blob);
    let trusted = [public(&keypair(1)), public(&kp)];
    let n = env.len();
    // the header alone is enough; the version is reported, unauthenticated
    assert_eq!(
        signed::check_header(&env[..HEADER_LEN], &trusted, n),
        Ok(42)
    );
    assert_eq!(signed::check_header(&env, &trusted, n), Ok(42));
    assert_eq!(
        signed::check_header(&env[..HEADER_LEN - 1], &trusted, n),
        Err(Error::Truncated)
    );
    // a transfer shorter or longer than the header declares
    assert_eq!(
        signed::check_header(&env, &trusted, n - 100),
        Err(Error::Truncated)
    );
    assert_eq!(
        signed::check_header(&env, &trusted, n + 1),
        Err(Error::BadEnvelope)
    );
    // a key the firmware does not trust
    let other = [public(&keypair(1))];
    assert!(matches!(
        signed::check_header(&env, &other, n),
        Err(Error::UnknownKey { .. })
    ));
    // every corrupted header byte of the fixed layout is refused
    for i in [0, 3, 4, 5, 6, 7] {
        let mut bad = env.clone();
        bad[i] ^= 0x40;
        assert_eq!(
            signed::check_header(&bad, &trusted, n),
            Err(Error::BadEnvelope),
            "byte {i}"
        );
    }
    // what the header check passes, `verify` still decides on: a flipped body bit
    let mut forged = env.clone();
    forged[HEADER_LEN + 5] ^= 1;
    assert_eq!(signed::check_header(&forged, &trusted, n), Ok(42));
    assert_eq!(
        signed::verify(&forged, &trusted, 0).unwrap_err(),
        Error::BadSignature
    );
}
