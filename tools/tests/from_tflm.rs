//! `FROM_TFLM.md` ("Coming from TensorFlow Lite Micro / NNoM") cannot rot: every command of
//! its `sh` blocks is run here, in page order, and its output compared with the page.
//!
//! * The page's first `sh` block only sets the fixture folders (`K=… L=… D=…`); it is put
//!   before every other command.
//! * Every other `sh` block holds one or more `tinyrnn …` commands (a line ending in `\`
//!   continues on the next); the `text` block right after it is the expected output of its
//!   commands, one after the other, each as printed (stderr and stdout in one stream).
//! * In the expected output a line `...` matches any number of lines, and `...` inside a
//!   line matches any text.
//! * A command whose own output has an `error:` line must exit with status 1 and print
//!   exactly one line; every other command must exit with 0.
//!
//! Commands run under `bash` with the built `tinyrnn` first on `PATH`, in one scratch folder
//! where `tests` links to the repository's `tests/` (later commands read what earlier ones
//! wrote).

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A fenced block of the page: its language and its lines (fence indentation removed).
struct Block {
    lang: String,
    lines: Vec<String>,
    line_no: usize,
}

fn blocks(page: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, Block)> = None;
    for (i, line) in page.lines().enumerate() {
        let indent = line.len() - line.trim_start().len();
        let t = line.trim();
        match &mut cur {
            None => {
                if let Some(lang) = t.strip_prefix("```") {
                    cur = Some((
                        indent,
                        Block {
                            lang: lang.to_string(),
                            lines: Vec::new(),
                            line_no: i + 1,
                        },
                    ));
                }
            }
            Some((ind, b)) => {
                if t == "```" {
                    out.push(cur.take().unwrap().1);
                } else {
                    let cut = (*ind).min(indent);
                    b.lines.push(line[cut..].to_string());
                }
            }
        }
    }
    assert!(cur.is_none(), "unclosed code block in FROM_TFLM.md");
    out
}

/// The commands of an `sh` block, continuation lines joined.
fn commands(b: &Block) -> Vec<String> {
    let mut out = Vec::new();
    let mut acc = String::new();
    for l in &b.lines {
        if let Some(head) = l.strip_suffix('\\') {
            acc.push_str(head);
            continue;
        }
        acc.push_str(l);
        let c = acc.split_whitespace().collect::<Vec<_>>().join(" ");
        if !c.is_empty() {
            out.push(c);
        }
        acc.clear();
    }
    assert!(acc.is_empty(), "line {}: dangling `\\`", b.line_no);
    out
}

/// Does `actual` match the expected line (`...` inside it matches any text)?
fn line_matches(expected: &str, actual: &str) -> bool {
    let parts: Vec<&str> = expected.split("...").collect();
    if parts.len() == 1 {
        return expected == actual;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !actual.starts_with(first) || actual.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &actual[first.len()..actual.len() - last.len()];
    if !actual.ends_with(last) {
        return false;
    }
    for p in &parts[1..parts.len() - 1] {
        match rest.find(p) {
            Some(k) => rest = &rest[k + p.len()..],
            None => return false,
        }
    }
    true
}

/// Do the actual lines match the expected ones (a `...` line matches any number of lines)?
fn lines_match(expected: &[String], actual: &[&str]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((e, rest)) if e.trim() == "..." => {
            (0..=actual.len()).any(|k| lines_match(rest, &actual[k..]))
        }
        Some((e, rest)) => actual
            .split_first()
            .is_some_and(|(a, arest)| line_matches(e, a) && lines_match(rest, arest)),
    }
}

#[test]
fn matcher_is_strict() {
    let e = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(lines_match(&e(&["a", "...", "c"]), &["a", "b", "b", "c"]));
    assert!(lines_match(&e(&["a", "...", "c"]), &["a", "c"]));
    assert!(!lines_match(&e(&["a", "...", "c"]), &["a", "b"]));
    assert!(!lines_match(&e(&["a", "b"]), &["a", "b", "c"]));
    assert!(line_matches(
        "key id ... (key.pub)",
        "key id 0123 (key.pub)"
    ));
    assert!(!line_matches(
        "key id ... (key.pub)",
        "key id 0123 (other.pub)"
    ));
    assert!(!line_matches("accuracy 95.41%", "accuracy 95.40%"));
}

#[test]
fn every_command_of_the_page_prints_what_the_page_says() {
    let page = std::fs::read_to_string(root().join("FROM_TFLM.md")).unwrap();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_tinyrnn")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let dir = common::scratch("from_tflm");
    std::os::unix::fs::symlink(root().join("tests"), dir.join("tests")).unwrap();

    let all = blocks(&page);
    let mut sh = all.iter().enumerate().filter(|(_, b)| b.lang == "sh");
    let (_, prelude) = sh.next().expect("the page has no sh block");
    let prelude = prelude.lines.join("\n");
    assert!(
        prelude.starts_with("K=") && !prelude.contains("tinyrnn"),
        "the first sh block only sets the fixture folders"
    );
    let mut ran = 0;
    for (i, b) in sh {
        let expected = all
            .get(i + 1)
            .filter(|n| n.lang == "text")
            .unwrap_or_else(|| panic!("line {}: an sh block without a text block", b.line_no));
        let mut printed = String::new();
        for cmd in commands(b) {
            assert!(cmd.starts_with("tinyrnn "), "line {}: {cmd}", b.line_no);
            let out = Command::new("bash")
                .arg("-c")
                .arg(format!("exec 2>&1\n{prelude}\n{cmd}"))
                .current_dir(&dir)
                .env("PATH", &path)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let code = out.status.code().unwrap_or(-1);
            if text.lines().any(|l| l.starts_with("error:")) {
                assert_eq!(code, 1, "{cmd}: an error must exit with 1:\n{text}");
                assert_eq!(text.lines().count(), 1, "{cmd}: one line:\n{text}");
            } else {
                assert_eq!(code, 0, "{cmd} failed:\n{text}");
            }
            printed.push_str(&text);
            ran += 1;
        }
        let actual: Vec<&str> = printed.lines().collect();
        assert!(
            lines_match(&expected.lines, &actual),
            "FROM_TFLM.md line {}: the output differs from the page's.\npage:\n{}\nprinted:\n{}",
            expected.line_no,
            expected.lines.join("\n"),
            printed
        );
    }
    assert!(ran >= 20, "only {ran} commands found in the page");
    eprintln!("FROM_TFLM.md: {ran} commands, every output as on the page");
}
