//! `tinyrnn sign`: wrap a blob in a signed envelope ([`tinyrnn::signed`]) with a model
//! version, and the key-file helpers shared by `keygen`, `verify`, `inspect` and
//! `quantize --sign-key`.
//!
//! Key files are one line of text (so they survive copy and paste, and a private key is
//! never mistaken for a public one):
//!
//! | file | content |
//! |---|---|
//! | private key (`KEY`, mode 0600) | `tinyrnn-ed25519-secret ` + 64 hex digits (the 32-byte RFC 8032 seed) + `\n` |
//! | public key (`KEY.pub`) | `tinyrnn-ed25519-public ` + 64 hex digits (the 32-byte public key) + `\n` |
//!
//! The key id of a public key is the first 8 bytes of its SHA-512
//! ([`tinyrnn::signed::key_id`]), printed as 16 hex digits.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ed25519_dalek::{Signer, SigningKey};
use tinyrnn::signed::{self, PublicKey};
use tinyrnn::Model;

use crate::output;

/// First word of a private key file.
pub const SECRET_TAG: &str = "tinyrnn-ed25519-secret";
/// First word of a public key file.
pub const PUBLIC_TAG: &str = "tinyrnn-ed25519-public";

/// Arguments of `tinyrnn sign`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The blob to sign (from `tinyrnn quantize`).
    pub blob: PathBuf,
    /// Private key file (from `tinyrnn keygen`).
    #[arg(long, value_name = "KEY")]
    pub key: PathBuf,
    /// Model version written into the signed bytes (anti-rollback: firmware refuses a
    /// version below the lowest it accepts).
    #[arg(long, value_name = "N")]
    pub version: u32,
    /// Where to write the signed blob (written atomically).
    #[arg(long, short, value_name = "OUT")]
    pub output: PathBuf,
}

/// 32 bytes as 64 lowercase hex digits.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Reads a key file of kind `tag`; the error never contains the file's content.
fn read_key(path: &Path, tag: &str, what: &str) -> Result<[u8; 32]> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    let mut words = text.split_ascii_whitespace();
    let (Some(t), Some(h), None) = (words.next(), words.next(), words.next()) else {
        bail!(
            "{} is not a tinyrnn {what} file (expected one line `{tag} <64 hex digits>`)",
            path.display()
        );
    };
    if t != tag {
        let hint = if t == SECRET_TAG || t == PUBLIC_TAG {
            format!(
                " (it is a {} key)",
                if t == SECRET_TAG { "private" } else { "public" }
            )
        } else {
            String::new()
        };
        bail!("{} is not a tinyrnn {what} file{hint}", path.display());
    }
    unhex32(h).with_context(|| format!("{}: the key is not 64 hex digits", path.display()))
}

/// Reads a private key file.
///
/// # Errors
/// Unreadable file, wrong format (the message never shows the key).
pub fn read_secret(path: &Path) -> Result<SigningKey> {
    Ok(SigningKey::from_bytes(&read_key(
        path,
        SECRET_TAG,
        "private key",
    )?))
}

/// Reads a public key file and checks that it is a valid Ed25519 key.
///
/// # Errors
/// Unreadable file, wrong format, not a curve point.
pub fn read_public(path: &Path) -> Result<PublicKey> {
    let k = read_key(path, PUBLIC_TAG, "public key")?;
    ed25519_dalek::VerifyingKey::from_bytes(&k)
        .map_err(|_| anyhow::anyhow!("{}: not a valid Ed25519 public key", path.display()))?;
    Ok(k)
}

/// The text of a public key file.
pub fn public_file(public: &PublicKey) -> String {
    format!("{PUBLIC_TAG} {}\n", hex(public))
}

/// The text of a private key file.
pub fn secret_file(seed: &[u8; 32]) -> String {
    format!("{SECRET_TAG} {}\n", hex(seed))
}

/// Wraps `blob` (checked to load) in an envelope of model `version` signed by `key`, and
/// checks the result through the firmware's verifier.
///
/// # Errors
/// An invalid blob, an already signed input, a blob too long for the envelope.
pub fn sign_blob(blob: &[u8], key: &SigningKey, version: u32) -> Result<Vec<u8>> {
    if signed::is_envelope(blob) {
        bail!("the input is already signed (a TRNS envelope); sign the bare blob");
    }
    Model::from_blob(blob).map_err(|e| anyhow::anyhow!("not a valid blob: {e}"))?;
    let public = key.verifying_key().to_bytes();
    let mut out = signed::header(signed::key_id(&public), version, blob.len())
        .map_err(|e| anyhow::anyhow!("cannot sign: {e}"))?
        .to_vec();
    out.extend_from_slice(blob);
    let sig = key.sign(&out).to_bytes();
    out.extend_from_slice(&sig);
    // The firmware's path, with the signer's own key: catches any writer/reader drift.
    signed::verify(&out, &[public], version)
        .map_err(|e| anyhow::anyhow!("internal error: the signed blob does not verify: {e}"))?;
    Ok(out)
}

/// Runs `tinyrnn sign`.
///
/// # Errors
/// Unreadable inputs, an invalid blob or key, an unwritable output.
pub fn run(args: &Args) -> Result<()> {
    let inputs = [args.blob.as_path(), args.key.as_path()];
    output::check(&args.output, &inputs)?;
    let key = read_secret(&args.key)?;
    let blob = crate::data::read_file(&args.blob)?;
    let out =
        sign_blob(&blob, &key, args.version).with_context(|| format!("{}", args.blob.display()))?;
    output::write_atomic(&args.output, &out, &inputs)?;
    let id = signed::key_id(&key.verifying_key().to_bytes());
    println!(
        "wrote {} ({} bytes: blob {} bytes, model version {}, signed by key id {})",
        args.output.display(),
        out.len(),
        blob.len(),
        args.version,
        hex(&id)
    );
    Ok(())
}

/// The `TRUSTED_KEYS` static that `tinyrnn codegen --trusted-key` appends to the module.
///
/// # Errors
/// An unreadable or invalid public key file.
pub fn trusted_keys_source(files: &[PathBuf]) -> Result<String> {
    use std::fmt::Write as _;
    let mut s = String::new();
    writeln!(s)?;
    writeln!(
        s,
        "/// Ed25519 public keys whose signed blobs this firmware accepts: pass to\n\
         /// `tinyrnn::Model::from_signed_blob` or `tinyrnn::signed::verify` (tinyrnn cargo\n\
         /// feature `signed`). To rotate keys, ship a firmware with the new key added, sign\n\
         /// with it, then ship one without the old key (src/SIGNING.md)."
    )?;
    for f in files {
        let k = read_public(f)?;
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
        writeln!(
            s,
            "/// - key id {} ({})",
            hex(&signed::key_id(&k)),
            name.as_deref().unwrap_or("?")
        )?;
    }
    writeln!(
        s,
        "pub static TRUSTED_KEYS: [[u8; 32]; {}] = [",
        files.len()
    )?;
    for f in files {
        let k = read_public(f)?;
        let bytes: Vec<String> = k.iter().map(|b| format!("0x{b:02x}")).collect();
        writeln!(s, "    [")?;
        for row in bytes.chunks(8) {
            writeln!(s, "        {},", row.join(", "))?;
        }
        writeln!(s, "    ],")?;
    }
    writeln!(s, "];")?;
    Ok(s)
}
