//! `tinyrnn codegen`: the committed module tests/data/blobs/vowels_lstm_int8.rs (generated
//! from the committed int8 LSTM blob next to it) is compiled into this test through
//! `include!` — exactly as a firmware would use it — and must be what `codegen` generates
//! today (`TINYRNN_BLESS=1` rewrites it).

use std::path::{Path, PathBuf};

use tinyrnn::Config;
use tinyrnn_cli::cmd::codegen::{self, module_source, Embed};
use tinyrnn_cli::data;
use tinyrnn_cli::exec::{self, Runnable, Steps};
use tinyrnn_cli::import::ImportOptions;

mod model {
    include!("../../tests/data/blobs/vowels_lstm_int8.rs");
}

/// The same module with none of its items used: it must still compile without a warning
/// (a firmware uses only some items; `codegen` marks each `#[allow(dead_code)]`). A
/// warning here fails the build of this test.
#[deny(warnings)]
mod unused_model {
    include!("../../tests/data/blobs/vowels_lstm_int8.rs");
}

fn blobs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/blobs")
}

#[test]
fn committed_module_is_up_to_date() {
    let blob = std::fs::read(blobs().join("vowels_lstm_int8.trnn")).unwrap();
    let text = module_source(
        &blob,
        "vowels_lstm_int8.trnn",
        Embed::IncludeBytes("vowels_lstm_int8.trnn"),
    )
    .unwrap();
    let path = blobs().join("vowels_lstm_int8.rs");
    if std::env::var_os("TINYRNN_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap();
    assert!(
        committed == text,
        "{} is stale: re-run with TINYRNN_BLESS=1",
        path.display()
    );
}

#[test]
fn generated_module_sizes_a_working_session() {
    let m = model::model().unwrap();
    assert_eq!(model::BLOB_LEN, model::BLOB.0.len());
    assert_eq!(
        model::BLOB.0.as_ptr() as usize % 4,
        0,
        "BLOB is 4-byte aligned"
    );
    assert_eq!(m.input_size(), model::INPUT);
    assert_eq!(m.output_size(), model::OUTPUT);
    assert_eq!(m.layers().len(), model::LAYERS);
    assert_eq!(model::HIDDEN, [32]);
    assert_eq!(m.state_len(), model::STATE_LEN);
    assert_eq!(m.scratch_len(), model::SCRATCH_LEN);
    assert_eq!(model::PRECISION, tinyrnn::Precision::Int8);
    assert_eq!(model::INPUT_FRAC, u32::from(m.layers()[0].x_frac));
    assert_eq!(model::OUTPUT_FRAC, u32::from(m.desc().output_frac));

    // A session of exactly the generated capacity classifies the test set like the host
    // tool's (larger) sessions.
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/vowels");
    let x = data::read_inputs(&d.join("test_raw.npy")).unwrap();
    let lengths = data::read_lengths(&d.join("test_lengths.npy"), x.n, x.t).unwrap();
    let host = exec::run(
        &exec::load(
            &blobs().join("vowels_lstm_int8.trnn"),
            &ImportOptions::default(),
        )
        .unwrap(),
        &x,
        Some(&lengths),
        Steps::Last,
    )
    .unwrap();
    let mut s = model::Session::new(&m).unwrap();
    let mut saved = [0u8; model::SAVED_STATE_LEN];
    let mut c: model::Classifier<'_, 4> = model::Classifier::new(&m, Config::default()).unwrap();
    for (i, &len) in lengths.iter().enumerate().take(40) {
        s.reset();
        for t in 0..len {
            s.step(x.frame(i, t)).unwrap();
            c.push(x.frame(i, t)).unwrap();
        }
        assert_eq!(s.save_state(&mut saved).unwrap(), model::SAVED_STATE_LEN);
        let d = s.classify().unwrap();
        assert_eq!(d.class as usize, host.class(i), "sequence {i}");
        assert_eq!(c.end_sequence().unwrap().class, d.class);
    }
    assert!(matches!(
        exec::load(
            &blobs().join("vowels_lstm_int8.trnn"),
            &ImportOptions::default()
        )
        .unwrap(),
        Runnable::Blob(_)
    ));
}

#[test]
fn cli_writes_module_and_blob() {
    let dir = std::env::temp_dir().join(format!("tinyrnn-codegen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = blobs().join("vowels_rnn_int16.trnn");
    codegen::run(&codegen::Args {
        blob: src.clone(),
        output: dir.join("net.rs"),
        inline: false,
        trusted_key: vec![],
        window: None,
    })
    .unwrap();
    let text = std::fs::read_to_string(dir.join("net.rs")).unwrap();
    assert!(text.contains("include_bytes!(\"net.trnn\")"), "{text}");
    assert!(text.contains("pub const STATE_LEN: usize = 32;"), "{text}");
    assert!(!text.contains("Generator"), "a classifier cannot generate");
    assert_eq!(
        std::fs::read(dir.join("net.trnn")).unwrap(),
        std::fs::read(&src).unwrap()
    );
    // --inline: the bytes in the module, no blob file
    codegen::run(&codegen::Args {
        blob: src.clone(),
        output: dir.join("inl.rs"),
        inline: true,
        trusted_key: vec![],
        window: None,
    })
    .unwrap();
    let text = std::fs::read_to_string(dir.join("inl.rs")).unwrap();
    assert!(
        text.contains("&Aligned([\n    0x54, 0x52, 0x4e, 0x4e,"),
        "{text}"
    );
    assert!(!dir.join("inl.trnn").exists());
    // errors: not a blob, not .rs
    let e = codegen::run(&codegen::Args {
        blob: blobs().join("../vowels/lstm.onnx"),
        output: dir.join("x.rs"),
        inline: false,
        trusted_key: vec![],
        window: None,
    })
    .unwrap_err();
    assert!(format!("{e:#}").contains("invalid blob"), "{e:#}");
    let e = codegen::run(&codegen::Args {
        blob: src,
        output: dir.join("x.txt"),
        inline: false,
        trusted_key: vec![],
        window: None,
    })
    .unwrap_err();
    assert!(format!("{e:#}").contains(".rs"), "{e:#}");
    std::fs::remove_dir_all(&dir).unwrap();
}
