//! `tinyrnn verify`: check a signed blob exactly as firmware does
//! ([`tinyrnn::Model::from_signed_blob`]: envelope layout, trusted key, Ed25519 signature,
//! model version ≥ `--min-version`, then the inner blob's own checks). Prints one line and
//! exits 0 if it would load, else one `error:` line and exit 1.

use std::path::PathBuf;

use anyhow::{Context, Result};
use tinyrnn::{signed, Model};

use super::sign::{hex, read_public};

/// Arguments of `tinyrnn verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The signed blob (from `tinyrnn sign` or `tinyrnn quantize --sign-key`).
    pub blob: PathBuf,
    /// A trusted public key file (`KEY.pub` from `tinyrnn keygen`); repeat for several.
    #[arg(long, value_name = "P", required = true)]
    pub pubkey: Vec<PathBuf>,
    /// Lowest model version accepted (anti-rollback).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub min_version: u32,
}

/// Runs `tinyrnn verify`.
///
/// # Errors
/// Unreadable files, an unsigned, malformed, untrusted, forged or rolled-back blob, or an
/// inner blob that does not load.
pub fn run(args: &Args) -> Result<()> {
    let keys = args
        .pubkey
        .iter()
        .map(|p| read_public(p))
        .collect::<Result<Vec<_>>>()?;
    let bytes = crate::data::read_file(&args.blob)?;
    let name = args.blob.display();
    if !signed::is_envelope(&bytes) {
        anyhow::bail!("{name}: not signed (no TRNS envelope; sign it with `tinyrnn sign`)");
    }
    let v = signed::verify(&bytes, &keys, args.min_version)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("{name}"))?;
    Model::from_signed_blob(&bytes, &keys, args.min_version)
        .map_err(|e| anyhow::anyhow!("{name}: signature valid but the blob does not load: {e}"))?;
    println!(
        "ok: {name}: valid signature by key id {} ({}), model version {}, blob {} bytes",
        hex(&signed::key_id(&keys[v.key_index])),
        args.pubkey[v.key_index].display(),
        v.version,
        v.blob.len()
    );
    Ok(())
}

/// `inspect`'s description of a signed blob: the inner blob's description plus a
/// `signature` object (`key_id`, `model_version`, `status`: `valid`, `invalid: <reason>`
/// or `not checked`, and the matching key file when valid).
///
/// # Errors
/// A malformed envelope, an unreadable key file, an inner blob that does not load.
pub fn envelope_json(bytes: &[u8], pubkeys: &[PathBuf]) -> Result<serde_json::Value> {
    let env = signed::parse(bytes).map_err(|e| anyhow::anyhow!("malformed signed blob: {e}"))?;
    let (status, key_file) = if pubkeys.is_empty() {
        ("not checked".to_string(), None)
    } else {
        let keys = pubkeys
            .iter()
            .map(|p| read_public(p))
            .collect::<Result<Vec<_>>>()?;
        match signed::verify(bytes, &keys, 0) {
            Ok(v) => (
                "valid".to_string(),
                Some(pubkeys[v.key_index].display().to_string()),
            ),
            Err(e) => (format!("invalid: {e}"), None),
        }
    };
    let inner = crate::exec::Blob::from_bytes(env.blob.to_vec()).context("the inner blob")?;
    let mut v = super::inspect::blob_json(&inner.model(), env.blob.len(), None);
    v["file_kind"] = serde_json::json!("signed blob");
    v["signature"] = serde_json::json!({
        "key_id": hex(&env.key_id),
        "model_version": env.version,
        "status": status,
        "key_file": key_file,
        "envelope_bytes": bytes.len(),
    });
    Ok(v)
}

/// The signature line of `inspect`'s text output for [`envelope_json`]'s value.
pub fn signature_text(v: &serde_json::Value) -> String {
    let s = &v["signature"];
    let status = s["status"].as_str().unwrap_or("");
    let against = match s["key_file"].as_str() {
        Some(k) => format!(" against {k}"),
        None if status == "not checked" => " (pass --pubkey P to check)".to_string(),
        None => String::new(),
    };
    format!(
        "signature: key id {}, model version {}, {status}{against}\n",
        s["key_id"].as_str().unwrap_or(""),
        s["model_version"],
    )
}
