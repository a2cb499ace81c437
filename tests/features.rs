//! The cargo features that select model code (crate docs, "Cargo features"): a blob whose
//! cell or precision is compiled in loads and steps to exactly the integers (f32: bits) of a
//! build with every feature; a valid blob that needs a disabled feature is rejected by the
//! loader with `Error::FeatureDisabled` naming it.
//!
//! Runs with default features in `cargo test` (everything loads, the fingerprints below
//! hold) and, in `cargo xtask test`, with a reduced set:
//!
//! ```sh
//! cargo test -p tinyrnn --no-default-features --features lstm,int8 --test features
//! ```
//!
//! The fingerprints are CRC-32s of every output of 40 steps on fixed pseudo-random frames,
//! recorded with all features (`-- --nocapture` prints them).

use tinyrnn::model::{crc32, write_blob, CellKind, LayerDesc, ModelDesc, OutputAct, Precision};
use tinyrnn::{Error, Model, Session};

/// The nine bundled JapaneseVowels blobs: (file, cell feature, precision feature,
/// fingerprint with all features).
const BLOBS: [(&str, &str, &str, u32); 9] = [
    ("vowels_rnn_int8", "rnn", "int8", 0xe3df_8a96),
    ("vowels_rnn_int16", "rnn", "int16", 0xec78_0c68),
    ("vowels_rnn_float32", "rnn", "f32", 0x0ffb_de6f),
    ("vowels_gru_int8", "gru", "int8", 0x1333_f9c7),
    ("vowels_gru_int16", "gru", "int16", 0x0ba1_e882),
    ("vowels_gru_float32", "gru", "f32", 0x524c_6ea7),
    ("vowels_lstm_int8", "lstm", "int8", 0x5d0c_42e8),
    ("vowels_lstm_int16", "lstm", "int16", 0xe033_9fa4),
    ("vowels_lstm_float32", "lstm", "f32", 0xc822_322b),
];

/// Whether this test binary was built with `feature` (the package's features are the
/// integration tests' cfg too).
fn enabled(feature: &str) -> bool {
    match feature {
        "rnn" => cfg!(feature = "rnn"),
        "gru" => cfg!(feature = "gru"),
        "lstm" => cfg!(feature = "lstm"),
        "lstm-peephole" => cfg!(feature = "lstm-peephole"),
        "lstm-proj" => cfg!(feature = "lstm-proj"),
        "lstm-clip" => cfg!(feature = "lstm-clip"),
        "int8" => cfg!(feature = "int8"),
        "int16" => cfg!(feature = "int16"),
        "f32" => cfg!(feature = "f32"),
        "window" => cfg!(feature = "window"),
        _ => panic!("unknown feature {feature}"),
    }
}

fn read_blob(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/data/blobs/{name}.trnn",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Frames of `width` values in about [−2, 2] from a fixed LCG.
fn frames(width: usize, n: usize) -> Vec<Vec<f32>> {
    let mut s = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|_| {
            (0..width)
                .map(|_| {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
                })
                .collect()
        })
        .collect()
}

/// CRC-32 of every output (integer models: `output_q`; f32: the `f32` bits) and the state
/// after every step.
fn fingerprint(model: &Model<'_>) -> u32 {
    let mut s = Session::<'_, 256, 256>::new(model).unwrap();
    let mut bytes = Vec::new();
    for f in frames(model.input_size(), 40) {
        s.step(&f).unwrap();
        if model.precision().is_int() {
            let mut q = vec![0i16; model.output_size()];
            s.output_q(&mut q).unwrap();
            bytes.extend(q.iter().flat_map(|v| v.to_le_bytes()));
        } else {
            let mut y = vec![0f32; model.output_size()];
            s.output(&mut y).unwrap();
            bytes.extend(y.iter().flat_map(|v| v.to_bits().to_le_bytes()));
        }
        bytes.extend(s.state().iter().flat_map(|v| v.to_le_bytes()));
        let d = s.classify().unwrap();
        bytes.extend(d.class.to_le_bytes());
    }
    crc32(&bytes)
}

/// A loader result for a blob needing `need`: loads iff every feature is enabled, else the
/// error names a disabled one.
fn check_result(what: &str, r: &Result<Model<'_>, Error>, need: &[&str]) -> bool {
    let missing: Vec<&str> = need.iter().copied().filter(|f| !enabled(f)).collect();
    match r {
        Ok(_) => {
            assert!(missing.is_empty(), "{what}: loaded without {missing:?}");
            true
        }
        Err(Error::FeatureDisabled(f)) => {
            assert!(
                missing.contains(f),
                "{what}: {f} reported, missing {missing:?}"
            );
            let msg = r.as_ref().unwrap_err().to_string();
            assert!(msg.contains(&format!("`{f}`")), "{what}: {msg}");
            false
        }
        Err(e) => panic!("{what}: unexpected {e:?} (missing {missing:?})"),
    }
}

#[test]
fn bundled_blobs_load_iff_their_features_are_enabled_and_run_bit_exactly() {
    let (mut loaded, mut bad) = (0, Vec::new());
    for (name, cell, precision, want) in BLOBS {
        let blob = read_blob(name);
        let r = Model::from_blob(&blob);
        if check_result(name, &r, &[cell, precision]) {
            let model = r.unwrap();
            assert_eq!(
                model.desc().required_features().as_slice(),
                [cell, precision],
                "{name}"
            );
            let got = fingerprint(&model);
            println!("{name}: fingerprint {got:#010x}");
            if got != want {
                bad.push(name);
            }
            loaded += 1;
        }
    }
    let expect = BLOBS
        .iter()
        .filter(|(_, c, p, _)| enabled(c) && enabled(p))
        .count();
    assert!(
        bad.is_empty(),
        "outputs differ from the all-features build: {bad:?}"
    );
    assert_eq!(loaded, expect);
    if cfg!(all(feature = "lstm", feature = "int8")) {
        assert!(loaded >= 1, "the int8 LSTM must load");
    }
}

/// A hand-built int8 LSTM with peepholes (1 input, 4 units, no head): its own feature.
#[test]
fn peephole_lstm_needs_its_feature() {
    let rq = [0x00u8, 0x00, 0x00, 0x40, 0x21].repeat(16);
    let w_ih: Vec<u8> = (0..16 * 4).map(|k| (k * 37 % 23) as u8).collect();
    let w_hh: Vec<u8> = (0..16 * 4).map(|k| (k * 11 % 17) as u8).collect();
    let bias = [0u8; 16 * 4];
    let peep: Vec<u8> = (0..12i16)
        .flat_map(|k| (k * 300 - 1800).to_le_bytes())
        .collect();
    let desc = ModelDesc {
        precision: Precision::Int8,
        input_size: 1,
        norm: None,
        pre: heapless::Vec::new(),
        layers: heapless::Vec::from_slice(&[LayerDesc {
            cell: CellKind::Lstm { peepholes: true },
            input_size: 1,
            hidden_size: 4,
            x_frac: 12,
            h_frac: 15,
            w_ih: &w_ih,
            w_hh: &w_hh,
            b_ih: &bias,
            b_hh: &bias,
            rq_ih: &rq,
            rq_hh: &rq,
            peephole: &peep,
            p_frac: 12,
            h0: &[],
            c0: &[],
            proj_size: 0,
            w_hr: &[],
            rq_hr: &[],
            cell_clip: &[],
            direction: tinyrnn::Direction::Forward,
            backward: None,
        }])
        .unwrap(),
        pool: tinyrnn::Pool::Last,
        pool_frac: 0,
        mlp: heapless::Vec::new(),
        head: None,
        output_act: OutputAct::Identity,
        output_frac: 15,
        name: "peephole",
    };
    assert_eq!(
        desc.required_features().as_slice(),
        ["lstm", "lstm-peephole", "int8"]
    );
    let mut buf = vec![0u8; 1024];
    let n = write_blob(&desc, &mut buf).unwrap();
    let r = Model::from_blob(&buf[..n]);
    if check_result("peephole", &r, &["lstm", "lstm-peephole", "int8"]) {
        let got = fingerprint(&r.unwrap());
        println!("peephole: fingerprint {got:#010x}");
        assert_eq!(
            got, 0x1d31_3a18,
            "outputs differ from the all-features build"
        );
    }
    // the same layer without peepholes needs only `lstm`
    let mut plain = desc.clone();
    plain.layers[0].cell = CellKind::Lstm { peepholes: false };
    plain.layers[0].peephole = &[];
    let mut buf2 = vec![0u8; 1024];
    let n = write_blob(&plain, &mut buf2).unwrap();
    check_result("plain", &Model::from_blob(&buf2[..n]), &["lstm", "int8"]);
}

/// A hand-built int8 LSTM with projection (1 input, 4 units, `P` = 3) and a cell clip: each
/// has its own feature.
#[test]
fn projected_lstm_needs_its_feature() {
    let rq = [0x00u8, 0x00, 0x00, 0x40, 0x21].repeat(16);
    let rq_hr = [0x00u8, 0x00, 0x00, 0x40, 0x22].repeat(3);
    let w_ih: Vec<u8> = (0..16 * 4).map(|k| (k * 37 % 23) as u8).collect();
    let w_hh: Vec<u8> = (0..16 * 4).map(|k| (k * 11 % 17) as u8).collect();
    let w_hr: Vec<u8> = (0..3 * 4).map(|k| (k * 53 % 251) as u8).collect();
    let bias = [0u8; 16 * 4];
    let clip = 20000i32.to_le_bytes();
    let desc = ModelDesc {
        precision: Precision::Int8,
        input_size: 1,
        norm: None,
        pre: heapless::Vec::new(),
        layers: heapless::Vec::from_slice(&[LayerDesc {
            cell: CellKind::Lstm { peepholes: false },
            input_size: 1,
            hidden_size: 4,
            x_frac: 12,
            h_frac: 13,
            w_ih: &w_ih,
            w_hh: &w_hh,
            b_ih: &bias,
            b_hh: &bias,
            rq_ih: &rq,
            rq_hh: &rq,
            peephole: &[],
            p_frac: 0,
            h0: &[],
            c0: &[],
            proj_size: 3,
            w_hr: &w_hr,
            rq_hr: &rq_hr,
            cell_clip: &clip,
            direction: tinyrnn::Direction::Forward,
            backward: None,
        }])
        .unwrap(),
        pool: tinyrnn::Pool::Last,
        pool_frac: 0,
        mlp: heapless::Vec::new(),
        head: None,
        output_act: OutputAct::Identity,
        output_frac: 13,
        name: "proj",
    };
    assert_eq!(
        desc.required_features().as_slice(),
        ["lstm", "lstm-proj", "lstm-clip", "int8"]
    );
    let mut buf = vec![0u8; 1024];
    let n = write_blob(&desc, &mut buf).unwrap();
    let r = Model::from_blob(&buf[..n]);
    if check_result("proj", &r, &["lstm", "lstm-proj", "lstm-clip", "int8"]) {
        let got = fingerprint(&r.unwrap());
        println!("proj: fingerprint {got:#010x}");
        assert_eq!(
            got, 0x1144_49ce,
            "outputs differ from the all-features build"
        );
    }
    // the same layer without the projection needs only `lstm-clip` (w_hh: pad4(3) = pad4(4))
    let mut clip = desc.clone();
    clip.layers[0].proj_size = 0;
    clip.layers[0].w_hr = &[];
    clip.layers[0].rq_hr = &[];
    clip.layers[0].h_frac = 15;
    clip.output_frac = 15;
    assert_eq!(
        clip.required_features().as_slice(),
        ["lstm", "lstm-clip", "int8"]
    );
    let mut buf2 = vec![0u8; 1024];
    let n = write_blob(&clip, &mut buf2).unwrap();
    check_result(
        "clip",
        &Model::from_blob(&buf2[..n]),
        &["lstm", "lstm-clip", "int8"],
    );
}

/// Corruption is still reported as before, whatever the features: the feature check comes
/// after every format check.
#[test]
fn invalid_blobs_get_their_format_error_first() {
    for (name, ..) in BLOBS {
        let mut blob = read_blob(name);
        let last = blob.len() - 1;
        blob[last] ^= 1;
        assert_eq!(
            Model::from_blob(&blob).unwrap_err(),
            Error::BadChecksum,
            "{name}"
        );
        assert_eq!(
            Model::from_blob(&blob[..last]).unwrap_err(),
            Error::Truncated,
            "{name}"
        );
    }
}

/// A bidirectional int8 LSTM (1 input, 4 units per direction, output `[fwd; bwd]`) needs
/// the `window` feature; a build without it refuses the valid blob by name.
#[test]
fn bidirectional_layer_needs_the_window_feature() {
    let rq = [0x00u8, 0x00, 0x00, 0x40, 0x21].repeat(16);
    let w_ih: Vec<u8> = (0..16 * 4).map(|k| (k * 37 % 23) as u8).collect();
    let w_hh: Vec<u8> = (0..16 * 4).map(|k| (k * 11 % 17) as u8).collect();
    let w_rev: Vec<u8> = (0..16 * 4).map(|k| (k * 13 % 29) as u8).collect();
    let bias = [0u8; 16 * 4];
    let desc = ModelDesc {
        precision: Precision::Int8,
        input_size: 1,
        norm: None,
        pre: heapless::Vec::new(),
        layers: heapless::Vec::from_slice(&[LayerDesc {
            cell: CellKind::Lstm { peepholes: false },
            input_size: 1,
            hidden_size: 4,
            x_frac: 12,
            h_frac: 15,
            w_ih: &w_ih,
            w_hh: &w_hh,
            b_ih: &bias,
            b_hh: &bias,
            rq_ih: &rq,
            rq_hh: &rq,
            peephole: &[],
            p_frac: 0,
            h0: &[],
            c0: &[],
            proj_size: 0,
            w_hr: &[],
            rq_hr: &[],
            cell_clip: &[],
            direction: tinyrnn::Direction::Bidirectional,
            backward: Some(tinyrnn::model::DirWeights {
                w_ih: &w_rev,
                w_hh: &w_hh,
                b_ih: &bias,
                b_hh: &bias,
                rq_ih: &rq,
                rq_hh: &rq,
                peephole: &[],
                h0: &[],
                c0: &[],
                w_hr: &[],
                rq_hr: &[],
            }),
        }])
        .unwrap(),
        pool: tinyrnn::Pool::Last,
        pool_frac: 0,
        mlp: heapless::Vec::new(),
        head: None,
        output_act: OutputAct::Identity,
        output_frac: 15,
        name: "bidirectional",
    };
    assert_eq!(
        desc.required_features().as_slice(),
        ["lstm", "window", "int8"]
    );
    let mut buf = vec![0u8; 2048];
    let n = write_blob(&desc, &mut buf).unwrap();
    let r = Model::from_blob(&buf[..n]);
    if check_result("bidirectional", &r, &["lstm", "window", "int8"]) {
        #[cfg(feature = "window")]
        {
            let m = r.unwrap();
            let mut s = Session::<32, 16>::new(&m).unwrap();
            let mut words = vec![0u32; m.window_words(5)];
            let mut win = tinyrnn::Window::new(&mut words);
            for f in frames(1, 5) {
                s.step_window(&f, &mut win).unwrap();
            }
            let mut out = [0i16; 8];
            s.output_window_q(&mut win, &mut out).unwrap();
            assert_eq!(s.step(&[0.5]), Err(Error::NeedsWindow));
        }
    }
}
