//! The firmware template `boards/template` and the README's firmware guide cannot drift:
//!
//! * every README code block announced by `<!-- include: PATH -->` or
//!   `<!-- include: PATH#NAME -->` is exactly that file, or the lines between its
//!   `ANCHOR: NAME` and `ANCHOR_END: NAME` comments (marker lines left out);
//! * `src/model.rs` and `src/model.trnn` are what `tinyrnn codegen` writes for the bundled int8
//!   LSTM blob today;
//! * the stand-in sensor's `src/recording.bin` and `LENGTHS` are the valid frames of
//!   `tests/data/vowels/recording.npy` (the recording `cargo xtask template` runs the host CLI on).
//!
//! `TINYRNN_BLESS=1` rewrites the generated files (model.rs, model.trnn, recording.bin).
//! `cargo xtask template` builds the crate for two targets and runs it under QEMU.

use std::path::{Path, PathBuf};

use tinyrnn_cli::cmd::codegen::{module_source, Embed};
use tinyrnn_cli::data;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn template() -> PathBuf {
    root().join("boards/template")
}

fn bless() -> bool {
    std::env::var_os("TINYRNN_BLESS").is_some_and(|v| v == "1")
}

fn is_marker(line: &str) -> bool {
    line.contains("ANCHOR: ") || line.contains("ANCHOR_END: ")
}

/// The text a README include stands for: the whole file or one anchored region, without the
/// marker lines.
fn included(spec: &str) -> String {
    let (path, anchor) = match spec.split_once('#') {
        Some((p, a)) => (p, Some(a)),
        None => (spec, None),
    };
    let text = std::fs::read_to_string(root().join(path))
        .unwrap_or_else(|e| panic!("README includes {path}: {e}"));
    let lines: Vec<&str> = text.lines().collect();
    let body: Vec<&str> = match anchor {
        None => lines,
        Some(a) => {
            let start = lines
                .iter()
                .position(|l| l.trim_end().ends_with(&format!("ANCHOR: {a}")))
                .unwrap_or_else(|| panic!("{path}: no `ANCHOR: {a}`"));
            let end = lines
                .iter()
                .position(|l| l.trim_end().ends_with(&format!("ANCHOR_END: {a}")))
                .unwrap_or_else(|| panic!("{path}: no `ANCHOR_END: {a}`"));
            assert!(start < end, "{path}: ANCHOR_END: {a} before ANCHOR: {a}");
            lines[start + 1..end].to_vec()
        }
    };
    body.into_iter()
        .filter(|l| !is_marker(l))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// `(spec, block)` for every `<!-- include: SPEC -->` line followed by a fenced block.
fn readme_includes(readme: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(spec) = l
            .trim()
            .strip_prefix("<!-- include: ")
            .and_then(|s| s.strip_suffix(" -->"))
        else {
            continue;
        };
        let fence = lines.get(i + 1).copied().unwrap_or_default();
        assert!(
            fence.starts_with("```"),
            "README line {}: `<!-- include: {spec} -->` must be followed by a ``` block",
            i + 1
        );
        let body: String = lines[i + 2..]
            .iter()
            .take_while(|l| !l.starts_with("```"))
            .map(|l| format!("{l}\n"))
            .collect();
        out.push((spec.to_string(), body));
    }
    out
}

#[test]
fn readme_quotes_the_template() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let blocks = readme_includes(&readme);
    let specs: Vec<&str> = blocks.iter().map(|(s, _)| s.as_str()).collect();
    // The guide's files, in the order a newcomer meets them.
    for want in [
        "boards/template/src/main.rs#snippet",
        "boards/template/Cargo.toml",
        "boards/template/memory.x",
        "boards/template/build.rs",
        "boards/template/src/main.rs#runtime",
        "boards/template/src/main.rs#panic",
        "boards/template/.cargo/config.toml",
    ] {
        assert!(specs.contains(&want), "README does not include {want}");
    }
    for (spec, block) in &blocks {
        let want = included(spec);
        assert!(
            *block == want,
            "README's block for {spec} differs from the file; it should be:\n{want}"
        );
    }
}

#[test]
fn included_regions_leave_out_markers() {
    let text = "a\n// ANCHOR: x\nb\n// ANCHOR: y\nc\n// ANCHOR_END: y\n// ANCHOR_END: x\nd\n";
    let dir = std::env::temp_dir().join(format!("tinyrnn-template-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("f.rs"), text).unwrap();
    let rel = |a: &str| format!("{}#{a}", dir.join("f.rs").display());
    // `root().join(absolute)` is the absolute path
    assert_eq!(included(&rel("x")), "b\nc\n");
    assert_eq!(included(&rel("y")), "c\n");
    assert_eq!(
        included(&dir.join("f.rs").display().to_string()),
        "a\nb\nc\nd\n"
    );
    let blocks = readme_includes("x\n<!-- include: p#q -->\n```rust\nl1\nl2\n```\ny\n");
    assert_eq!(blocks, vec![("p#q".to_string(), "l1\nl2\n".to_string())]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn template_model_is_codegen_output() {
    let blob_path = root().join("tests/data/blobs/vowels_lstm_int8.trnn");
    let blob = std::fs::read(&blob_path).unwrap();
    let text = module_source(
        &blob,
        "vowels_lstm_int8.trnn",
        Embed::IncludeBytes("model.trnn"),
    )
    .unwrap();
    let (rs, trnn) = (
        template().join("src/model.rs"),
        template().join("src/model.trnn"),
    );
    if bless() {
        std::fs::write(&rs, &text).unwrap();
        std::fs::write(&trnn, &blob).unwrap();
        return;
    }
    let msg = "stale: run `tinyrnn codegen tests/data/blobs/vowels_lstm_int8.trnn -o \
               boards/template/src/model.rs` (or this test with TINYRNN_BLESS=1)";
    assert!(
        std::fs::read_to_string(&rs).unwrap() == text,
        "{}: {msg}",
        rs.display()
    );
    assert!(
        std::fs::read(&trnn).unwrap() == blob,
        "{}: {msg}",
        trnn.display()
    );
}

#[test]
fn template_recording_is_the_vowels_recording() {
    let d = root().join("tests/data/vowels");
    let x = data::read_inputs(&d.join("recording.npy")).unwrap();
    let lengths = data::read_lengths(&d.join("recording_lengths.npy"), x.n, x.t).unwrap();
    let mut bytes = Vec::new();
    for (i, &len) in lengths.iter().enumerate() {
        for t in 0..len {
            for v in x.frame(i, t) {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    let bin = template().join("src/recording.bin");
    if bless() {
        std::fs::write(&bin, &bytes).unwrap();
    } else {
        assert!(
            std::fs::read(&bin).unwrap() == bytes,
            "{} is stale (TINYRNN_BLESS=1 rewrites it)",
            bin.display()
        );
    }
    let list: Vec<String> = lengths.iter().map(usize::to_string).collect();
    let want = format!(
        "const LENGTHS: [usize; {}] = [{}];",
        lengths.len(),
        list.join(", ")
    );
    let sensor = std::fs::read_to_string(template().join("src/sensor.rs")).unwrap();
    assert!(
        sensor.contains(&want),
        "boards/template/src/sensor.rs must contain `{want}`"
    );
    assert_eq!(
        x.f, 12,
        "the template's frames are [f32; model::INPUT = 12]"
    );
}
