//! `tinyrnn keygen`, `sign`, `verify`, `inspect --pubkey` and `quantize --sign-key` through
//! the built binary: key file permissions, exit codes, one `error:` line, tampering detected.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

fn tinyrnn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tinyrnn"))
        .args(args)
        .output()
        .expect("run tinyrnn")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Exit 0, one stdout line starting with `prefix`, nothing on stderr.
fn ok_line(out: &Output, prefix: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout {stdout} stderr {stderr}"
    );
    assert!(stderr.is_empty(), "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with(prefix), "{stdout}");
    stdout
}

/// Exit 1, exactly one stderr line `error: ...` containing `want`, nothing on stdout.
fn error_line(out: &Output, want: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains(want), "want {want:?} in {stderr}");
}

fn blob() -> PathBuf {
    data_dir().join("blobs/vowels_rnn_int8.trnn")
}

fn keygen(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(name);
    let out = tinyrnn(&["keygen", "-o", s(&key)]);
    ok_line(&out, "wrote ");
    (key.clone(), dir.join(format!("{name}.pub")))
}

#[test]
fn keygen_writes_a_0600_private_key_never_printed_and_never_overwrites() {
    let dir = scratch("signing_keygen");
    let key = dir.join("k");
    let out = tinyrnn(&["keygen", "-o", s(&key)]);
    let line = ok_line(&out, "wrote ");
    let secret = std::fs::read_to_string(&key).unwrap();
    let public = std::fs::read_to_string(dir.join("k.pub")).unwrap();
    let seed_hex = secret.split_whitespace().nth(1).unwrap();
    assert_eq!(seed_hex.len(), 64);
    assert!(secret.starts_with("tinyrnn-ed25519-secret "));
    assert!(public.starts_with("tinyrnn-ed25519-public "));
    assert!(!line.contains(seed_hex), "the private key was printed");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "private key mode {mode:o}");
    }
    // Never overwritten: neither the key nor a lone existing .pub.
    let again = tinyrnn(&["keygen", "-o", s(&key)]);
    error_line(&again, "exists");
    assert_eq!(std::fs::read_to_string(&key).unwrap(), secret);
    std::fs::write(dir.join("other.pub"), "keep").unwrap();
    error_line(&tinyrnn(&["keygen", "-o", s(&dir.join("other"))]), "exists");
    assert!(!dir.join("other").exists());
    assert_eq!(
        std::fs::read_to_string(dir.join("other.pub")).unwrap(),
        "keep"
    );
    // Two keys differ (the OS RNG is used).
    let (k2, _) = keygen(&dir, "k2");
    assert_ne!(std::fs::read_to_string(k2).unwrap(), secret);
}

#[test]
fn sign_verify_exit_codes_and_tampering() {
    let dir = scratch("signing_verify");
    let (key, public) = keygen(&dir, "k");
    let (_, other) = keygen(&dir, "other");
    let signed = dir.join("s.trnn");
    let out = tinyrnn(&[
        "sign",
        s(&blob()),
        "--key",
        s(&key),
        "--version",
        "7",
        "-o",
        s(&signed),
    ]);
    ok_line(&out, "wrote ");
    let bytes = std::fs::read(&signed).unwrap();
    let inner = std::fs::read(blob()).unwrap();
    assert_eq!(bytes.len(), inner.len() + tinyrnn::signed::OVERHEAD);
    assert_eq!(&bytes[24..24 + inner.len()], &inner[..]);

    let line = ok_line(
        &tinyrnn(&["verify", s(&signed), "--pubkey", s(&public)]),
        "ok: ",
    );
    assert!(line.contains("model version 7"), "{line}");
    ok_line(
        &tinyrnn(&[
            "verify",
            s(&signed),
            "--pubkey",
            s(&other),
            "--pubkey",
            s(&public),
            "--min-version",
            "7",
        ]),
        "ok: ",
    );
    error_line(
        &tinyrnn(&[
            "verify",
            s(&signed),
            "--pubkey",
            s(&public),
            "--min-version",
            "8",
        ]),
        "model version 7 is below the lowest accepted version 8",
    );
    error_line(
        &tinyrnn(&["verify", s(&signed), "--pubkey", s(&other)]),
        "not a trusted key",
    );
    error_line(
        &tinyrnn(&["verify", s(&blob()), "--pubkey", s(&public)]),
        "not signed",
    );
    error_line(
        &tinyrnn(&["verify", s(&signed), "--pubkey", s(&key)]),
        "is not a tinyrnn public key file",
    );
    // Tampering: one bit in each field and in the blob and the signature.
    let tampered = dir.join("t.trnn");
    for (at, want) in [
        (0, "not signed"),
        (4, "malformed"),
        (9, "not a trusted key"),
        (16, "forged or altered"),
        (21, "truncated"),
        (24 + 100, "forged or altered"),
        (bytes.len() - 1, "forged or altered"),
    ] {
        let mut t = bytes.clone();
        t[at] ^= 0x02;
        std::fs::write(&tampered, &t).unwrap();
        error_line(
            &tinyrnn(&["verify", s(&tampered), "--pubkey", s(&public)]),
            want,
        );
    }
    // Truncation and a trailing byte.
    std::fs::write(&tampered, &bytes[..bytes.len() - 1]).unwrap();
    error_line(
        &tinyrnn(&["verify", s(&tampered), "--pubkey", s(&public)]),
        "truncated",
    );
    let mut long = bytes.clone();
    long.push(0);
    std::fs::write(&tampered, &long).unwrap();
    error_line(
        &tinyrnn(&["verify", s(&tampered), "--pubkey", s(&public)]),
        "malformed",
    );
    // Commands that take a bare blob say so.
    error_line(
        &tinyrnn(&[
            "run",
            s(&signed),
            "--input",
            s(&data_dir().join("vowels/recording.npy")),
        ]),
        "a signed blob: check it with `tinyrnn verify`",
    );
    error_line(
        &tinyrnn(&["codegen", s(&signed), "-o", s(&dir.join("m.rs"))]),
        "a signed blob; codegen embeds the bare blob",
    );
    // Signing refuses an envelope and a public key in place of the private one.
    error_line(
        &tinyrnn(&[
            "sign",
            s(&signed),
            "--key",
            s(&key),
            "--version",
            "8",
            "-o",
            s(&tampered),
        ]),
        "already signed",
    );
    error_line(
        &tinyrnn(&[
            "sign",
            s(&blob()),
            "--key",
            s(&public),
            "--version",
            "8",
            "-o",
            s(&tampered),
        ]),
        "is not a tinyrnn private key file",
    );
}

#[test]
fn inspect_shows_signature_status() {
    let dir = scratch("signing_inspect");
    let (key, public) = keygen(&dir, "k");
    let (_, other) = keygen(&dir, "other");
    let signed = dir.join("s.trnn");
    let sign = tinyrnn(&[
        "sign",
        s(&blob()),
        "--key",
        s(&key),
        "--version",
        "3",
        "-o",
        s(&signed),
    ]);
    ok_line(&sign, "wrote ");
    let id = sign.stdout.clone();
    let id = String::from_utf8(id).unwrap();
    let id = id
        .trim_end()
        .rsplit(' ')
        .next()
        .unwrap()
        .trim_end_matches(')');
    let first = |out: Output| -> String {
        assert_eq!(out.status.code(), Some(0));
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        first(tinyrnn(&["inspect", s(&signed)])),
        format!("signature: key id {id}, model version 3, not checked (pass --pubkey P to check)")
    );
    assert_eq!(
        first(tinyrnn(&["inspect", s(&signed), "--pubkey", s(&public)])),
        format!(
            "signature: key id {id}, model version 3, valid against {}",
            s(&public)
        )
    );
    assert!(
        first(tinyrnn(&["inspect", s(&signed), "--pubkey", s(&other)])).ends_with(&format!(
            "invalid: the blob is signed by key id {id}, which is not a trusted key"
        ))
    );
    // The version field altered: the blob still shows, the signature is invalid.
    let mut t = std::fs::read(&signed).unwrap();
    t[16] = 9;
    let tampered = dir.join("t.trnn");
    std::fs::write(&tampered, &t).unwrap();
    assert_eq!(
        first(tinyrnn(&["inspect", s(&tampered), "--pubkey", s(&public)])),
        format!(
            "signature: key id {id}, model version 9, invalid: the signature does not match: \
             the blob is forged or altered"
        )
    );
    let json = tinyrnn(&["inspect", "--json", s(&signed), "--pubkey", s(&public)]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["signature"]["status"], "valid");
    assert_eq!(v["signature"]["model_version"], 3);
    assert_eq!(v["file_kind"], "signed blob");
    error_line(
        &tinyrnn(&["inspect", s(&blob()), "--pubkey", s(&public)]),
        "not signed",
    );
}

#[test]
fn quantize_signs_in_one_step() {
    let dir = scratch("signing_quantize");
    let (key, public) = keygen(&dir, "k");
    let onnx = golden("lstm_1l", "model.onnx");
    let out = dir.join("q.trnn");
    let q = tinyrnn(&[
        "quantize",
        s(&onnx),
        "--precision",
        "float32",
        "--sign-key",
        s(&key),
        "--version",
        "12",
        "-o",
        s(&out),
    ]);
    assert_eq!(
        q.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&q.stderr)
    );
    let line = ok_line(
        &tinyrnn(&["verify", s(&out), "--pubkey", s(&public)]),
        "ok: ",
    );
    assert!(line.contains("model version 12"), "{line}");
    let j = tinyrnn(&[
        "quantize",
        s(&onnx),
        "--precision",
        "float32",
        "--sign-key",
        s(&key),
        "--version",
        "13",
        "--json",
        "-o",
        s(&dir.join("j.trnn")),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
    assert_eq!(v["signed"]["model_version"], 13);
    assert_eq!(
        v["signed"]["envelope_bytes"],
        std::fs::metadata(dir.join("j.trnn")).unwrap().len()
    );
    // The inner blob is the one quantize writes without signing.
    let plain = dir.join("p.trnn");
    let p = tinyrnn(&[
        "quantize",
        s(&onnx),
        "--precision",
        "float32",
        "-o",
        s(&plain),
    ]);
    assert_eq!(p.status.code(), Some(0));
    let plain = std::fs::read(plain).unwrap();
    let env = std::fs::read(&out).unwrap();
    assert_eq!(&env[24..24 + plain.len()], &plain[..]);
    // --version alone is a usage error; a bad key fails before anything is written.
    let u = tinyrnn(&[
        "quantize",
        s(&onnx),
        "--precision",
        "float32",
        "--version",
        "1",
        "-o",
        s(&dir.join("u.trnn")),
    ]);
    assert_eq!(u.status.code(), Some(2));
    let bad = dir.join("bad.trnn");
    error_line(
        &tinyrnn(&[
            "quantize",
            s(&onnx),
            "--precision",
            "float32",
            "--sign-key",
            s(&public),
            "--version",
            "1",
            "-o",
            s(&bad),
        ]),
        "is not a tinyrnn private key file",
    );
    assert!(!bad.exists());
}

#[test]
fn codegen_embeds_trusted_keys() {
    let dir = scratch("signing_codegen");
    let (_, a) = keygen(&dir, "a");
    let (_, b) = keygen(&dir, "b");
    let module = dir.join("model.rs");
    let out = tinyrnn(&[
        "codegen",
        s(&blob()),
        "-o",
        s(&module),
        "--trusted-key",
        s(&a),
        "--trusted-key",
        s(&b),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&module).unwrap();
    let start = text
        .find("pub static TRUSTED_KEYS: [[u8; 32]; 2] = [")
        .expect("TRUSTED_KEYS");
    let body = &text[start..text[start..].find("\n];").unwrap() + start];
    let bytes: Vec<u8> = body
        .split(|c: char| c == ',' || c.is_whitespace() || c == '[' || c == ']')
        .filter_map(|w| w.strip_prefix("0x"))
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
    let hex_of = |p: &Path| -> String {
        std::fs::read_to_string(p)
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    };
    let want = hex_of(&a) + &hex_of(&b);
    let got: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(got, want);
    // A private key is refused, and nothing is written.
    let (k, _) = keygen(&dir, "k");
    let m2 = dir.join("m2.rs");
    error_line(
        &tinyrnn(&["codegen", s(&blob()), "-o", s(&m2), "--trusted-key", s(&k)]),
        "is not a tinyrnn public key file",
    );
    assert!(!m2.exists());
}

/// `sign -o` and `quantize --sign-key -o` naming an input (the blob, the key, the model) are
/// refused and leave every file as it was; a private key is never replaced by a blob.
#[test]
fn signing_outputs_never_overwrite_an_input() {
    let dir = scratch("signing_no_clobber");
    let (key, _) = keygen(&dir, "k");
    let b = dir.join("m.trnn");
    std::fs::copy(blob(), &b).unwrap();
    let (key_before, blob_before) = (std::fs::read(&key).unwrap(), std::fs::read(&b).unwrap());
    for out_path in [&b, &key] {
        let out = tinyrnn(&[
            "sign",
            s(&b),
            "--key",
            s(&key),
            "--version",
            "3",
            "-o",
            s(out_path),
        ]);
        error_line(&out, "is the input");
        assert_eq!(std::fs::read(&key).unwrap(), key_before);
        assert_eq!(std::fs::read(&b).unwrap(), blob_before);
    }
    let v = data_dir().join("vowels");
    let out = tinyrnn(&[
        "quantize",
        s(&v.join("lstm.onnx")),
        "--normalize",
        s(&v.join("norm.json")),
        "--calib",
        s(&v.join("calib_raw.npy")),
        "--calib-lengths",
        s(&v.join("calib_lengths.npy")),
        "--sign-key",
        s(&key),
        "--version",
        "1",
        "-o",
        s(&key),
    ]);
    error_line(&out, "is the input");
    assert_eq!(std::fs::read(&key).unwrap(), key_before);
}
