//! Output files: the one way every command writes a file (`quantize -o`, `run -o`,
//! `generate -o`, `eval --plot`, `codegen -o` and its blob copy).
//!
//! The rules (README, "Output files"):
//!
//! * **An input is never an output.** An output path that is the same file as any of the
//!   command's inputs (same device and inode: a hard link, a symlinked input or a `./`
//!   spelling count as the same file) is refused before anything is computed.
//! * **No writing through symbolic links.** An output path whose last component is a symbolic
//!   link is refused (the message names the link's target): replacing the link would break it
//!   and writing its target would modify a file the user did not name. Give the target's
//!   path instead. Symbolic links among the *directories* of the path are followed.
//! * **Only regular files are replaced.** An existing output that is a directory, a FIFO, a
//!   socket or a device node is refused (so `-o /dev/null` as root cannot replace the device
//!   node with a regular file).
//! * **Atomic.** The bytes go to a temporary file in the output's directory (mode 0666 minus
//!   the umask, or the replaced file's mode), which is synced, renamed over the output, and
//!   the directory synced. A command that fails leaves every file as it was and no
//!   temporary file behind.

use std::fs::{File, Metadata};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use tempfile::NamedTempFile;

/// Whether two metadata describe the same file (device and inode on Unix).
#[cfg(unix)]
fn same_inode(a: &Metadata, b: &Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_inode(_: &Metadata, _: &Metadata) -> bool {
    false
}

/// Whether `a` and `b` name the same existing file (after following symbolic links; by
/// device and inode on Unix, by canonical path elsewhere). `false` if either is missing.
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) if cfg!(unix) => same_inode(&x, &y),
        (Ok(_), Ok(_)) => matches!(
            (a.canonicalize(), b.canonicalize()),
            (Ok(x), Ok(y)) if x == y
        ),
        _ => false,
    }
}

/// What a non-regular file is, for messages.
fn kind(m: &Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = m.file_type();
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_block_device() || t.is_char_device() {
            return "a device node";
        }
    }
    if m.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// Checks that `path` may be written by a command reading `inputs` (see the module docs).
/// Returns the metadata of the existing file, if any.
///
/// # Errors
/// `path` is a symbolic link, a directory or another non-regular file, or the same file
/// as one of `inputs`; its metadata cannot be read.
pub fn check(path: &Path, inputs: &[&Path]) -> Result<Option<Metadata>> {
    let shown = path.display();
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = parent_dir(path);
            if !dir.is_dir() {
                bail!(
                    "cannot write {shown}: the directory {} does not exist",
                    dir.display()
                );
            }
            return Ok(None);
        }
        Err(e) => bail!("cannot write {shown}: {e}"),
    };
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(path)
            .map(|t| t.display().to_string())
            .unwrap_or_else(|_| "?".into());
        bail!(
            "refusing to write {shown}: it is a symbolic link (to {target}); tinyrnn does not \
             write through links: give the target's path or remove the link"
        );
    }
    if meta.is_dir() {
        bail!("cannot write {shown}: it is a directory");
    }
    if !meta.is_file() {
        bail!(
            "refusing to write {shown}: it is {}; only regular files are replaced",
            kind(&meta)
        );
    }
    for input in inputs {
        if let Ok(im) = std::fs::metadata(input) {
            if same_inode(&meta, &im) || (!cfg!(unix) && same_file(path, input)) {
                bail!(
                    "refusing to write {shown}: it is the input {} (writing would destroy it); \
                     choose another output path",
                    input.display()
                );
            }
        }
    }
    Ok(Some(meta))
}

/// The directory a new file at `path` lives in.
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// An output being written: a temporary file next to the destination. Dropping it
/// without [`Pending::commit`] removes the temporary file and leaves the destination as
/// it was.
pub struct Pending {
    path: PathBuf,
    inputs: Vec<PathBuf>,
    tmp: BufWriter<NamedTempFile>,
}

impl Pending {
    /// Starts writing `path` for a command reading `inputs` (checked as [`check`] does).
    ///
    /// # Errors
    /// As [`check`]; the directory does not exist or is not writable.
    pub fn create(path: &Path, inputs: &[&Path]) -> Result<Pending> {
        let existing = check(path, inputs)?;
        let name = path
            .file_name()
            .ok_or_else(|| anyhow!("cannot write {}: not a file name", path.display()))?;
        let prefix = format!(".{}.", name.to_string_lossy());
        let mut b = tempfile::Builder::new();
        b.prefix(&prefix).suffix(".tmp");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            b.permissions(std::fs::Permissions::from_mode(0o666));
        }
        let tmp = b
            .tempfile_in(parent_dir(path))
            .map_err(|e| anyhow!("cannot write {}: {}", path.display(), plain(e)))?;
        if let Some(m) = existing {
            tmp.as_file()
                .set_permissions(m.permissions())
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(Pending {
            path: path.to_path_buf(),
            inputs: inputs.iter().map(|p| p.to_path_buf()).collect(),
            tmp: BufWriter::new(tmp),
        })
    }

    /// The destination.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes and syncs the temporary file, renames it over the destination (checked
    /// again), and syncs the directory.
    ///
    /// # Errors
    /// Disk full, I/O errors, or the destination became unwritable meanwhile; the
    /// destination is then as it was.
    pub fn commit(self) -> Result<()> {
        let ctx = || format!("cannot write {}", self.path.display());
        let tmp = self
            .tmp
            .into_inner()
            .map_err(|e| anyhow!("{}: {}", ctx(), e.error()))?;
        tmp.as_file().sync_all().with_context(ctx)?;
        let inputs: Vec<&Path> = self.inputs.iter().map(PathBuf::as_path).collect();
        check(&self.path, &inputs)?;
        tmp.persist(&self.path)
            .map_err(|e| anyhow!("{}: {}", ctx(), plain(e.error)))?;
        sync_dir(&parent_dir(&self.path)).with_context(ctx)
    }
}

impl Write for Pending {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tmp.write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.tmp.write_all(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.tmp.flush()
    }
}

/// An I/O error without the temporary file's path that `tempfile` adds to it (the messages
/// name the destination instead).
fn plain(e: std::io::Error) -> std::io::Error {
    match e.raw_os_error() {
        Some(code) => std::io::Error::from_raw_os_error(code),
        None => e,
    }
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Writes `bytes` to `path` (see the module docs) for a command reading `inputs`.
///
/// # Errors
/// As [`Pending::create`] and [`Pending::commit`]; the message names `path`.
pub fn write_atomic(path: &Path, bytes: &[u8], inputs: &[&Path]) -> Result<()> {
    let mut p = Pending::create(path, inputs)?;
    p.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    p.commit()
}

/// Commits several outputs of one command, after every one of them was written in full:
/// a command whose outputs cannot all be written leaves them all as they were (short of
/// a rename failing between two commits).
///
/// # Errors
/// As [`Pending::commit`].
pub fn commit_all(outputs: Vec<Pending>) -> Result<()> {
    outputs.into_iter().try_for_each(Pending::commit)
}

/// Collects the paths of a command's inputs: `Some` entries of `opt`, then `paths`.
pub fn inputs<'a>(paths: &[&'a Path], opt: &[Option<&'a Path>]) -> Vec<&'a Path> {
    let mut v = paths.to_vec();
    v.extend(opt.iter().flatten());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tinyrnn-output-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn listing(d: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_replaces_and_refuses() {
        let d = dir("unit");
        let out = d.join("out.bin");
        write_atomic(&out, b"one", &[]).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"one");
        write_atomic(&out, b"two", &[]).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"two");
        // same file as an input, also through a hard link
        let input = d.join("in.bin");
        std::fs::write(&input, b"input").unwrap();
        let e = write_atomic(&input, b"x", &[&input])
            .unwrap_err()
            .to_string();
        assert!(e.contains("is the input"), "{e}");
        let hard = d.join("hard.bin");
        std::fs::hard_link(&input, &hard).unwrap();
        let e = write_atomic(&hard, b"x", &[&input])
            .unwrap_err()
            .to_string();
        assert!(e.contains("is the input"), "{e}");
        assert_eq!(std::fs::read(&input).unwrap(), b"input");
        // a dropped Pending leaves nothing behind
        let before = listing(&d);
        let mut p = Pending::create(&d.join("new.bin"), &[]).unwrap();
        p.write_all(b"partial").unwrap();
        drop(p);
        assert_eq!(listing(&d), before);
        assert!(!d.join("new.bin").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_and_modes() {
        use std::os::unix::fs::PermissionsExt;
        let d = dir("links");
        let target = d.join("target.bin");
        std::fs::write(&target, b"target").unwrap();
        let link = d.join("link.bin");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = write_atomic(&link, b"x", &[]).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read(&target).unwrap(), b"target");
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        // the replaced file's mode is kept
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&target, b"new", &[]).unwrap();
        let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        // an input reached through a symlink is still the input
        let e = write_atomic(&target, b"x", &[&link])
            .unwrap_err()
            .to_string();
        assert!(e.contains("is the input"), "{e}");
        assert!(same_file(&link, &target));
        assert!(!same_file(&link, &d.join("missing")));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
