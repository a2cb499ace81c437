//! `tinyrnn keygen`: a new Ed25519 key pair for signing blobs, from the operating system's
//! random number generator. The private key file is created with mode 0600 (never readable
//! by others, not even for an instant) and its content is never printed; the public key is
//! written next to it as `KEY.pub`. Existing files are never overwritten. File formats:
//! [`super::sign`].

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ed25519_dalek::SigningKey;
use tinyrnn::signed;

use super::sign::{hex, public_file, secret_file};

/// Arguments of `tinyrnn keygen`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Private key file to create (mode 0600); the public key goes to `KEY.pub`. Neither may
    /// exist yet.
    #[arg(long, short, value_name = "KEY")]
    pub output: PathBuf,
}

/// `KEY.pub` for `KEY`.
pub fn public_path(key: &Path) -> PathBuf {
    let mut s = key.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

/// Creates `path` (which must not exist) with `mode` and writes `text`; on a write error
/// the new file is removed.
fn create_new(path: &Path, text: &str, mode: u32) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::anyhow!("{} exists; refusing to overwrite a key", path.display())
        } else {
            anyhow::anyhow!("cannot create {}: {e}", path.display())
        }
    })?;
    let res = f.write_all(text.as_bytes()).and_then(|()| f.sync_all());
    if let Err(e) = res {
        drop(f);
        let _ = std::fs::remove_file(path);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}

/// Runs `tinyrnn keygen`.
///
/// # Errors
/// An existing `KEY` or `KEY.pub`, an unwritable directory, no OS random numbers.
pub fn run(args: &Args) -> Result<()> {
    let pub_path = public_path(&args.output);
    for p in [&args.output, &pub_path] {
        if p.symlink_metadata().is_ok() {
            anyhow::bail!("{} exists; refusing to overwrite a key", p.display());
        }
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)
        .map_err(|e| anyhow::anyhow!("the OS random number generator failed: {e}"))?;
    let key = SigningKey::from_bytes(&seed);
    let public = key.verifying_key().to_bytes();
    // The public key first: if the private key cannot be written, nothing secret is left.
    create_new(&pub_path, &public_file(&public), 0o644)?;
    if let Err(e) = create_new(&args.output, &secret_file(&seed), 0o600) {
        let _ = std::fs::remove_file(&pub_path);
        return Err(e);
    }
    seed.fill(0);
    println!(
        "wrote {} (private key, mode 0600) and {} (public key id {})",
        args.output.display(),
        pub_path.display(),
        hex(&signed::key_id(&public))
    );
    Ok(())
}
