//! Exact bytes of the blob format (src/model.rs module docs are the spec), and one test per
//! loader error. The expected bytes below were written by hand from the byte tables in the
//! spec, not copied from the writer's output; the CRC was computed independently with
//! Python's `zlib.crc32` (CRC-32/ISO-HDLC):
//!
//! ```python
//! import zlib; zlib.crc32(bytes(PAYLOAD))     # 0x55501f2d
//! import zlib; zlib.crc32(bytes(PAYLOAD_V2))  # 0xe3fa8380
//! import zlib; zlib.crc32(bytes(PAYLOAD_V1))  # 0xce9865bc
//! import zlib; zlib.crc32(bytes(PAYLOAD_PROJ))  # 0x04710dcc
//! import zlib; zlib.crc32(bytes(PAYLOAD_BIDIR))  # 0xe6f0f4af
//! ```

use tinyrnn::model::{write_blob, CellKind, LayerDesc, ModelDesc, OutputAct, Precision, RnnAct};
use tinyrnn::{Error, Model, Session};

/// The payload of `tiny()`, field by field (format 3).
const PAYLOAD: [u8; 61] = [
    0x00, // precision: Int8 (variant 0)
    0x01, // input_size: 1 (varint)
    0x00, // norm: None
    0x00, // pre: no ops
    0x01, // layers: 1 element
    0x00, 0x00, // cell: Rnn (variant 0) (Tanh (variant 0))
    0x01, // input_size 1
    0x01, // hidden_size 1
    0x0C, // x_frac 12
    0x0F, // h_frac 15
    0x04, 0x05, 0x00, 0x00, 0x00, // w_ih: 4 bytes (1 row padded to 4 columns): 5
    0x04, 0xFD, 0x00, 0x00, 0x00, // w_hh: -3
    0x04, 0x64, 0x00, 0x00, 0x00, // b_ih: i32 100
    0x04, 0xFF, 0xFF, 0xFF, 0xFF, // b_hh: i32 -1
    0x05, 0x00, 0x00, 0x00, 0x40, 0x21, // rq_ih: mult 2^30, shift 33 (factor 1/8)
    0x05, 0x00, 0x00, 0x00, 0x40, 0x21, // rq_hh: same
    0x00, // peephole: empty
    0x00, // p_frac 0
    0x00, // h0: empty
    0x00, // c0: empty
    0x00, // proj_size 0 (no projection)
    0x00, // w_hr: empty
    0x00, // rq_hr: empty
    0x00, // cell_clip: empty
    0x00, // direction: Forward (variant 0)
    0x00, // backward: None
    0x00, // pool: Last (variant 0)
    0x00, // pool_frac 0
    0x00, // mlp: no ops
    0x00, // head: None
    0x00, // output_act: Identity
    0x0F, // output_frac 15
    0x01, 0x74, // name: "t"
];

/// The same model as a format-2 payload (layer records end at `c0`), field by field.
const PAYLOAD_V2: [u8; 55] = [
    0x00, // precision: Int8 (variant 0)
    0x01, // input_size: 1 (varint)
    0x00, // norm: None
    0x00, // pre: no ops
    0x01, // layers: 1 element
    0x00, 0x00, // cell: Rnn (variant 0) (Tanh (variant 0))
    0x01, // input_size 1
    0x01, // hidden_size 1
    0x0C, // x_frac 12
    0x0F, // h_frac 15
    0x04, 0x05, 0x00, 0x00, 0x00, // w_ih: 4 bytes (1 row padded to 4 columns): 5
    0x04, 0xFD, 0x00, 0x00, 0x00, // w_hh: -3
    0x04, 0x64, 0x00, 0x00, 0x00, // b_ih: i32 100
    0x04, 0xFF, 0xFF, 0xFF, 0xFF, // b_hh: i32 -1
    0x05, 0x00, 0x00, 0x00, 0x40, 0x21, // rq_ih: mult 2^30, shift 33 (factor 1/8)
    0x05, 0x00, 0x00, 0x00, 0x40, 0x21, // rq_hh: same
    0x00, // peephole: empty
    0x00, // p_frac 0
    0x00, // h0: empty
    0x00, // c0: empty
    0x00, // pool: Last (variant 0)
    0x00, // pool_frac 0
    0x00, // mlp: no ops
    0x00, // head: None
    0x00, // output_act: Identity
    0x0F, // output_frac 15
    0x01, 0x74, // name: "t"
];

/// The same model as a format-1 payload (no pre-net, pool or head ops), field by field.
const PAYLOAD_V1: [u8; 51] = [
    0x00, // precision: Int8 (variant 0)
    0x01, // input_size: 1 (varint)
    0x00, // norm: None
    0x01, // layers: 1 element
    0x00, 0x00, // cell: Rnn (variant 0) (Tanh (variant 0))
    0x01, // input_size 1
    0x01, // hidden_size 1
    0x0C, // x_frac 12
    0x0F, // h_frac 15
    0x04, 0x05, 0x00, 0x00, 0x00, // w_ih: 4 bytes (1 row padded to 4 columns): 5
    0x04, 0xFD, 0x00, 0x00, 0x00, // w_hh: -3
    0x04, 0x64, 0x00, 0x00, 0x00, // b_ih: i32 100
    0x04, 0xFF, 0xFF, 0xFF, 0xFF, // b_hh: i32 -1
    0x05, 0x00, 0x00, 0x00, 0x40, 0x21, // rq_ih: mult 2^30, shift 33 (factor 1/8)
    0x05, 0x00, 0x00, 0x00, 0x40, 0x21, // rq_hh: same
    0x00, // peephole: empty
    0x00, // p_frac 0
    0x00, // h0: empty
    0x00, // c0: empty
    0x00, // head: None
    0x00, // output_act: Identity
    0x0F, // output_frac 15
    0x01, 0x74, // name: "t"
];

const HEADER: [u8; 16] = [
    b'T', b'R', b'N', b'N', // magic
    0x03, 0x00, // format version 3
    0x00, 0x00, // flags
    61, 0x00, 0x00, 0x00, // payload length
    0x2d, 0x1f, 0x50, 0x55, // CRC-32 of the payload, little-endian
];

const HEADER_V2: [u8; 16] = [
    b'T', b'R', b'N', b'N', // magic
    0x02, 0x00, // format version 2
    0x00, 0x00, // flags
    55, 0x00, 0x00, 0x00, // payload length
    0x80, 0x83, 0xfa, 0xe3, // CRC-32 of the payload, little-endian
];

const HEADER_V1: [u8; 16] = [
    b'T', b'R', b'N', b'N', // magic
    0x01, 0x00, // format version 1
    0x00, 0x00, // flags
    51, 0x00, 0x00, 0x00, // payload length
    0xbc, 0x65, 0x98, 0xce, // CRC-32 of the payload, little-endian
];

const RQ: [u8; 5] = [0x00, 0x00, 0x00, 0x40, 0x21];

fn layer<'a>() -> LayerDesc<'a> {
    LayerDesc {
        cell: CellKind::Rnn(RnnAct::Tanh),
        input_size: 1,
        hidden_size: 1,
        x_frac: 12,
        h_frac: 15,
        w_ih: &[5, 0, 0, 0],
        w_hh: &[0xFD, 0, 0, 0],
        b_ih: &[100, 0, 0, 0],
        b_hh: &[0xFF; 4],
        rq_ih: &RQ,
        rq_hh: &RQ,
        peephole: &[],
        p_frac: 0,
        h0: &[],
        c0: &[],
        proj_size: 0,
        w_hr: &[],
        rq_hr: &[],
        cell_clip: &[],
        direction: tinyrnn::Direction::Forward,
        backward: None,
    }
}

fn tiny<'a>() -> ModelDesc<'a> {
    let mut layers = heapless::Vec::new();
    layers.push(layer()).unwrap();
    ModelDesc {
        precision: Precision::Int8,
        input_size: 1,
        norm: None,
        pre: heapless::Vec::new(),
        layers,
        pool: tinyrnn::Pool::Last,
        pool_frac: 0,
        mlp: heapless::Vec::new(),
        head: None,
        output_act: OutputAct::Identity,
        output_frac: 15,
        name: "t",
    }
}

fn blob_of(desc: &ModelDesc<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let n = write_blob(desc, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// A blob with a valid header (length, CRC) around an arbitrary payload.
fn wrap(payload: &[u8]) -> Vec<u8> {
    let mut b = HEADER.to_vec();
    b[8..12].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    b[12..16].copy_from_slice(&tinyrnn::model::crc32(payload).to_le_bytes());
    b.extend_from_slice(payload);
    b
}

#[test]
fn writer_produces_the_specified_bytes() {
    let blob = blob_of(&tiny());
    assert_eq!(&blob[..16], &HEADER);
    assert_eq!(&blob[16..], &PAYLOAD);
    assert_eq!(tinyrnn::model::crc32(&PAYLOAD), 0x5550_1f2d);
    assert_eq!(tinyrnn::model::crc32(&PAYLOAD_V2), 0xe3fa_8380);
    assert_eq!(tinyrnn::model::crc32(&PAYLOAD_V1), 0xce98_65bc);
}

#[test]
fn format_2_blob_loads_as_format_3() {
    let mut blob = HEADER_V2.to_vec();
    blob.extend_from_slice(&PAYLOAD_V2);
    let model = Model::from_blob(&blob).unwrap();
    assert_eq!(model.desc(), &tiny());
    // a format-2 payload under a format-3 header does not decode, and the other way round
    let mut b = HEADER.to_vec();
    b.extend_from_slice(&PAYLOAD_V2);
    b[8] = 55;
    b[12..16].copy_from_slice(&tinyrnn::model::crc32(&PAYLOAD_V2).to_le_bytes());
    assert!(Model::from_blob(&b).is_err());
    let mut b = HEADER_V2.to_vec();
    b.extend_from_slice(&PAYLOAD);
    b[8] = 61;
    b[12..16].copy_from_slice(&tinyrnn::model::crc32(&PAYLOAD).to_le_bytes());
    assert!(Model::from_blob(&b).is_err());
}

#[test]
fn format_1_blob_loads_as_format_3() {
    let mut blob = HEADER_V1.to_vec();
    blob.extend_from_slice(&PAYLOAD_V1);
    let model = Model::from_blob(&blob).unwrap();
    assert_eq!(model.desc(), &tiny());
    // a format-1 payload under a format-3 header does not decode, and the other way round
    let mut b = HEADER_V1.to_vec();
    b.extend_from_slice(&PAYLOAD);
    b[8] = 61;
    b[12..16].copy_from_slice(&tinyrnn::model::crc32(&PAYLOAD).to_le_bytes());
    assert!(matches!(
        Model::from_blob(&b),
        Err(Error::Decode(_) | Error::TrailingBytes)
    ));
    let mut b = HEADER.to_vec();
    b.extend_from_slice(&PAYLOAD_V1);
    b[8] = 51;
    b[12..16].copy_from_slice(&tinyrnn::model::crc32(&PAYLOAD_V1).to_le_bytes());
    assert!(Model::from_blob(&b).is_err());
}

#[test]
fn hand_written_blob_loads_and_runs() {
    let mut blob = HEADER.to_vec();
    blob.extend_from_slice(&PAYLOAD);
    let model = Model::from_blob(&blob).unwrap();
    assert_eq!(model.desc(), &tiny());
    assert_eq!((model.input_size(), model.output_size()), (1, 1));
    assert_eq!((model.state_len(), model.scratch_len()), (1, 4));
    let mut s: Session<'_, 1, 4> = Session::new(&model).unwrap();
    // x = 1.0 -> 4096 (Q3.12); a_ih = 5·4096 + 100 = 20580 -> ·1/8 = 2572.5 -> 2573 (ties up);
    // a_hh = -3·0 - 1 = -1 -> -0.125 -> 0. h = tanh(2573 / 4096) in Q0.15.
    s.step(&[1.0]).unwrap();
    let mut out = [0i16; 1];
    s.output_q(&mut out).unwrap();
    let exact = ((2573.0f64 / 4096.0).tanh() * 32768.0).round() as i16;
    assert!((out[0] - exact).abs() <= 1, "{} vs {}", out[0], exact);
    assert_eq!(exact, 18245); // tanh(0.62817) = 0.55679
}

#[test]
fn header_errors() {
    let good = blob_of(&tiny());
    assert_eq!(Model::from_blob(&good[..15]), Err(Error::Truncated));
    assert_eq!(Model::from_blob(&[]), Err(Error::Truncated));
    let mut b = good.clone();
    b[0] = b'X';
    assert_eq!(Model::from_blob(&b), Err(Error::BadMagic));
    let mut b = good.clone();
    b[4] = 4;
    assert_eq!(Model::from_blob(&b), Err(Error::UnsupportedVersion(4)));
    let mut b = good.clone();
    b[4] = 0;
    assert_eq!(Model::from_blob(&b), Err(Error::UnsupportedVersion(0)));
    let mut b = good.clone();
    b[6] = 1;
    assert_eq!(Model::from_blob(&b), Err(Error::Unsupported));
    assert_eq!(
        Model::from_blob(&good[..good.len() - 1]),
        Err(Error::Truncated)
    );
    let mut b = good.clone();
    b.push(0);
    assert_eq!(Model::from_blob(&b), Err(Error::TrailingBytes));
    let mut b = good.clone();
    let last = b.len() - 1;
    b[last] ^= 0x01;
    assert_eq!(Model::from_blob(&b), Err(Error::BadChecksum));
    // Valid header and CRC, but bytes left over after the description.
    let mut p = PAYLOAD.to_vec();
    p.push(0);
    assert_eq!(Model::from_blob(&wrap(&p)), Err(Error::TrailingBytes));
    // Valid header and CRC around a payload that does not decode.
    assert!(matches!(
        Model::from_blob(&wrap(&[0x07])),
        Err(Error::Decode(_))
    ));
    assert!(matches!(
        Model::from_blob(&wrap(&PAYLOAD[..30])),
        Err(Error::Decode(_))
    ));
}

fn with_layer(f: impl FnOnce(&mut LayerDesc<'static>)) -> Result<(), Error> {
    let mut d = tiny();
    f(&mut d.layers[0]);
    let blob = blob_of(&d);
    Model::from_blob(&blob).map(|_| ())
}

#[test]
fn description_errors() {
    assert_eq!(
        with_layer(|l| l.w_ih = &[5, 0, 0]),
        Err(Error::ShapeMismatch)
    );
    assert_eq!(with_layer(|l| l.b_hh = &[0; 8]), Err(Error::ShapeMismatch));
    assert_eq!(
        with_layer(|l| l.rq_hh = &RQ[..4]),
        Err(Error::ShapeMismatch)
    );
    assert_eq!(with_layer(|l| l.h0 = &[0; 3]), Err(Error::ShapeMismatch));
    assert_eq!(with_layer(|l| l.c0 = &[0; 4]), Err(Error::ShapeMismatch)); // c0 on an RNN
    assert_eq!(with_layer(|l| l.hidden_size = 0), Err(Error::BadDimension));
    assert_eq!(
        with_layer(|l| l.hidden_size = 257),
        Err(Error::BadDimension)
    );
    assert_eq!(with_layer(|l| l.input_size = 2), Err(Error::BadDimension));
    assert_eq!(with_layer(|l| l.h_frac = 14), Err(Error::BadQuantization));
    assert_eq!(with_layer(|l| l.x_frac = 16), Err(Error::BadQuantization));
    assert_eq!(
        with_layer(|l| l.rq_ih = &[0, 0, 0, 0x40, 0]),
        Err(Error::BadQuantization)
    ); // shift 0
    assert_eq!(
        with_layer(|l| l.rq_ih = &[0, 0, 0, 0x40, 63]),
        Err(Error::BadQuantization)
    ); // shift 63 > 62 for an i32 accumulator
    assert_eq!(
        with_layer(|l| l.rq_ih = &[0, 0, 0, 0x80, 33]),
        Err(Error::BadQuantization)
    ); // negative multiplier
    let mut d = tiny();
    d.output_act = OutputAct::Sigmoid;
    d.output_frac = 15;
    assert_eq!(Model::from_blob(&blob_of(&d)), Err(Error::Unsupported));
    let mut d = tiny();
    d.output_frac = 12;
    assert_eq!(Model::from_blob(&blob_of(&d)), Err(Error::BadQuantization));
    let mut d = tiny();
    d.input_size = 0;
    assert_eq!(Model::from_blob(&blob_of(&d)), Err(Error::BadDimension));
    let mut d = tiny();
    d.layers.clear();
    assert_eq!(Model::from_blob(&blob_of(&d)), Err(Error::BadDimension));
}

/// `PAYLOAD` with its one layer repeated `n` times and the count `n`: 1×1 layers chain,
/// and every layer after the first reads its input in the `h_frac` (15) of the one below.
fn payload_with_layers(n: u8) -> Vec<u8> {
    // bytes 5..53 are the layer, from `cell` to `backward` (x_frac at 9); 53.. are pool, ...
    assert_eq!((PAYLOAD[4], PAYLOAD[9], PAYLOAD[53]), (1, 12, 0x00));
    let mut p = PAYLOAD[..4].to_vec();
    p.push(n);
    for k in 0..n {
        p.extend_from_slice(&PAYLOAD[5..53]);
        if k > 0 {
            let x_frac = p.len() - 48 + 4;
            p[x_frac] = 15;
        }
    }
    p.extend_from_slice(&PAYLOAD[53..]);
    p
}

#[test]
fn more_than_max_layers_is_too_many_layers() {
    assert_eq!(tinyrnn::MAX_LAYERS, 4);
    let four = wrap(&payload_with_layers(4));
    assert_eq!(Model::from_blob(&four).unwrap().layers().len(), 4);
    // five well-formed layers: the count alone decides
    let five = wrap(&payload_with_layers(5));
    assert_eq!(Model::from_blob(&five), Err(Error::TooManyLayers));
    assert_eq!(
        Error::TooManyLayers.to_string(),
        "the model has more layers than MAX_LAYERS = 4"
    );
    // a count of 5 followed by a single layer: still the count
    let mut p = PAYLOAD.to_vec();
    p[4] = 5;
    assert_eq!(Model::from_blob(&wrap(&p)), Err(Error::TooManyLayers));
    // a pre-net op count of 5: the count alone decides
    let mut p = PAYLOAD.to_vec();
    p[3] = 5;
    assert_eq!(Model::from_blob(&wrap(&p)), Err(Error::TooManyOps));
    // a count of 2 with only one layer present is a decoding error, not a layer count one
    let mut p = PAYLOAD.to_vec();
    p[4] = 2;
    assert!(matches!(Model::from_blob(&wrap(&p)), Err(Error::Decode(_))));
}

/// `value` encoded alone, as it is inside a payload.
fn encoded<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut buf = [0u8; 64];
    postcard::to_slice(value, &mut buf).unwrap().to_vec()
}

/// Every variant of every enum in the payload with its exact bytes (the "Enum indices" table
/// of src/model.rs), both ways. A reordered variant changes a byte here; an added one makes
/// the index after the last listed one decode, which the test refuses.
#[test]
fn enum_indices_are_pinned() {
    let precisions = [
        (Precision::Int8, [0x00]),
        (Precision::Int16, [0x01]),
        (Precision::F32, [0x02]),
    ];
    for (p, bytes) in precisions {
        assert_eq!(encoded(&p), bytes, "{p:?}");
        assert_eq!(postcard::from_bytes::<Precision>(&bytes), Ok(p));
    }
    let acts = [(RnnAct::Tanh, [0x00]), (RnnAct::Relu, [0x01])];
    for (a, bytes) in acts {
        assert_eq!(encoded(&a), bytes, "{a:?}");
        assert_eq!(postcard::from_bytes::<RnnAct>(&bytes), Ok(a));
    }
    let cells = [
        (CellKind::Rnn(RnnAct::Tanh), [0x00, 0x00]),
        (CellKind::Rnn(RnnAct::Relu), [0x00, 0x01]),
        (
            CellKind::Gru {
                linear_before_reset: false,
            },
            [0x01, 0x00],
        ),
        (
            CellKind::Gru {
                linear_before_reset: true,
            },
            [0x01, 0x01],
        ),
        (CellKind::Lstm { peepholes: false }, [0x02, 0x00]),
        (CellKind::Lstm { peepholes: true }, [0x02, 0x01]),
    ];
    for (c, bytes) in cells {
        assert_eq!(encoded(&c), bytes, "{c:?}");
        assert_eq!(postcard::from_bytes::<CellKind>(&bytes), Ok(c));
    }
    let outputs = [
        (OutputAct::Identity, [0x00]),
        (OutputAct::Sigmoid, [0x01]),
        (OutputAct::Tanh, [0x02]),
        (OutputAct::Softmax, [0x03]),
    ];
    for (o, bytes) in outputs {
        assert_eq!(encoded(&o), bytes, "{o:?}");
        assert_eq!(postcard::from_bytes::<OutputAct>(&bytes), Ok(o));
    }
    let pools = [
        (tinyrnn::Pool::Last, [0x00]),
        (tinyrnn::Pool::Mean, [0x01]),
        (tinyrnn::Pool::Max, [0x02]),
        (tinyrnn::Pool::Sum, [0x03]),
        (tinyrnn::Pool::FinalStates, [0x04]),
    ];
    for (o, bytes) in pools {
        assert_eq!(encoded(&o), bytes, "{o:?}");
        assert_eq!(postcard::from_bytes::<tinyrnn::Pool>(&bytes), Ok(o));
    }
    use tinyrnn::DenseAct;
    let acts: [(DenseAct, &[u8]); 8] = [
        (DenseAct::Identity, &[0x00]),
        (DenseAct::Relu, &[0x01]),
        // lo, hi: f32 LE each (0.0, 6.0)
        (
            DenseAct::Clip { lo: 0.0, hi: 6.0 },
            &[0x02, 0, 0, 0, 0, 0x00, 0x00, 0xC0, 0x40],
        ),
        // alpha 0.5
        (
            DenseAct::LeakyRelu { alpha: 0.5 },
            &[0x03, 0x00, 0x00, 0x00, 0x3F],
        ),
        (DenseAct::Tanh, &[0x04]),
        (DenseAct::Sigmoid, &[0x05]),
        (DenseAct::Gelu, &[0x06]),
        (DenseAct::GeluTanh, &[0x07]),
    ];
    for (a, bytes) in acts {
        assert_eq!(encoded(&a), bytes, "{a:?}");
        assert_eq!(postcard::from_bytes::<DenseAct>(bytes), Ok(a));
    }
    assert!(postcard::from_bytes::<tinyrnn::Pool>(&[0x05]).is_err());
    let dirs = [
        (tinyrnn::Direction::Forward, [0x00]),
        (tinyrnn::Direction::Reverse, [0x01]),
        (tinyrnn::Direction::Bidirectional, [0x02]),
    ];
    for (o, bytes) in dirs {
        assert_eq!(encoded(&o), bytes, "{o:?}");
        assert_eq!(postcard::from_bytes::<tinyrnn::Direction>(&bytes), Ok(o));
    }
    assert!(postcard::from_bytes::<tinyrnn::Direction>(&[0x03]).is_err());
    assert!(postcard::from_bytes::<DenseAct>(&[0x08]).is_err());
    // one past the last index of each enum does not decode: the lists above are complete
    assert!(postcard::from_bytes::<Precision>(&[0x03]).is_err());
    assert!(postcard::from_bytes::<RnnAct>(&[0x02]).is_err());
    assert!(postcard::from_bytes::<CellKind>(&[0x03, 0x00]).is_err());
    assert!(postcard::from_bytes::<OutputAct>(&[0x04]).is_err());
    // and in place: PAYLOAD's cell (bytes 4 and 5) set to each one decodes to that cell
    for (c, bytes) in cells {
        let mut p = PAYLOAD.to_vec();
        p[5..7].copy_from_slice(&bytes);
        let desc: ModelDesc<'_> = postcard::from_bytes(&p).unwrap();
        assert_eq!(desc.layers[0].cell, c);
    }
}

/// A 1×1 f32 layer of `cell` (zero weights), its byte tensors leaked for `'static`.
fn f32_layer(cell: CellKind) -> LayerDesc<'static> {
    let zeros = |n: usize| -> &'static [u8] { Box::leak(vec![0u8; n].into_boxed_slice()) };
    let g = cell.gates();
    LayerDesc {
        cell,
        input_size: 1,
        hidden_size: 1,
        x_frac: 0,
        h_frac: 0,
        w_ih: zeros(4 * g * 4), // g rows × pad4(1) columns × 4 bytes
        w_hh: zeros(4 * g * 4),
        b_ih: zeros(4 * g),
        b_hh: zeros(4 * g),
        rq_ih: &[],
        rq_hh: &[],
        peephole: if cell == (CellKind::Lstm { peepholes: true }) {
            zeros(3 * 4)
        } else {
            &[]
        },
        p_frac: 0,
        h0: &[],
        c0: &[],
        proj_size: 0,
        w_hr: &[],
        rq_hr: &[],
        cell_clip: &[],
        direction: tinyrnn::Direction::Forward,
        backward: None,
    }
}

/// The bytes the saved-state tag hashes before the state words (the table in
/// `Session::save_state`'s docs), written out by hand for a one-layer 1 → 1 model.
fn tag_prefix(precision: u8, cell: u8, x_frac: u8, h_frac: u8) -> Vec<u8> {
    vec![precision, 1, 0, cell, x_frac, h_frac, 1, 0, 1, 0]
}

/// Saves the state of a fresh session after one step on `model` and checks the tag against
/// `prefix` followed by the saved words.
fn check_tag(model: &Model<'_>, prefix: &[u8], what: &str) {
    let mut s = Session::<2, 16>::new(model).unwrap();
    s.step(&[0.5]).unwrap();
    let mut saved = [0u8; 12];
    let n = s.save_state(&mut saved).unwrap();
    assert_eq!(n, 4 * model.state_len() + 4, "{what}");
    let (body, tag) = saved[..n].split_at(n - 4);
    let mut hashed = prefix.to_vec();
    hashed.extend_from_slice(body);
    let want = tinyrnn::model::crc32(&hashed);
    assert_eq!(tag, want.to_le_bytes(), "{what}");
}

/// The saved-state tag's numbering of precisions and cells is fixed (independent of the
/// enums' declaration order): a state saved by one release restores in the next.
#[test]
fn saved_state_tag_numbering_is_pinned() {
    // precision byte: 0 int8 (the hand-written blob: RNN tanh, x_frac 12, h_frac 15)
    let mut blob = HEADER.to_vec();
    blob.extend_from_slice(&PAYLOAD);
    let int8 = Model::from_blob(&blob).unwrap();
    check_tag(&int8, &tag_prefix(0, 0, 12, 15), "int8");
    // 1 int16: the same layer with int16 weights and i64 biases
    let mut d = tiny();
    d.precision = Precision::Int16;
    d.layers[0].w_ih = &[5, 0, 0, 0, 0, 0, 0, 0];
    d.layers[0].w_hh = &[0xFD, 0xFF, 0, 0, 0, 0, 0, 0];
    d.layers[0].b_ih = &[100, 0, 0, 0, 0, 0, 0, 0];
    d.layers[0].b_hh = &[0xFF; 8];
    let int16 = Model::from_desc(d).unwrap();
    check_tag(&int16, &tag_prefix(1, 0, 12, 15), "int16");
    // 2 f32, and the six cell numbers
    let cells = [
        (CellKind::Rnn(RnnAct::Tanh), 0),
        (CellKind::Rnn(RnnAct::Relu), 1),
        (
            CellKind::Gru {
                linear_before_reset: true,
            },
            2,
        ),
        (
            CellKind::Gru {
                linear_before_reset: false,
            },
            3,
        ),
        (CellKind::Lstm { peepholes: false }, 4),
        (CellKind::Lstm { peepholes: true }, 5),
    ];
    for (cell, id) in cells {
        let mut d = tiny();
        d.precision = Precision::F32;
        d.output_frac = 0;
        d.layers[0] = f32_layer(cell);
        let m = Model::from_desc(d).unwrap();
        check_tag(&m, &tag_prefix(2, id, 0, 0), &format!("{cell:?}"));
    }
}

#[test]
fn op_record_bytes() {
    use tinyrnn::model::{DenseDesc, DenseOpDesc, OpDesc};
    let op = OpDesc::Dense(DenseOpDesc {
        act: tinyrnn::DenseAct::Relu,
        x_frac: 12,
        y_frac: 10,
        dense: DenseDesc {
            out_size: 1,
            in_size: 1,
            weight: &[5, 0, 0, 0],
            bias: &[0x64, 0, 0, 0],
            rq: &RQ,
        },
    });
    let want = [
        0x00, // OpDesc::Dense
        0x01, // act: Relu
        0x0C, // x_frac 12
        0x0A, // y_frac 10
        0x01, 0x01, // out_size, in_size
        0x04, 0x05, 0x00, 0x00, 0x00, // weight
        0x04, 0x64, 0x00, 0x00, 0x00, // bias i32 100
        0x05, 0x00, 0x00, 0x00, 0x40, 0x21, // rq
    ];
    assert_eq!(encoded(&op), want);
    assert_eq!(postcard::from_bytes::<OpDesc<'_>>(&want), Ok(op));
    assert!(postcard::from_bytes::<OpDesc<'_>>(&[0x01]).is_err());
    // in a model: pre-net op before the layer (x_frac 12 → layer x_frac 10)
    let mut d = tiny();
    d.pre.push(op).unwrap();
    d.layers[0].x_frac = 10;
    let b = blob_of(&d);
    let model = Model::from_blob(&b).unwrap();
    assert_eq!(model.input_frac(), 12);
    assert_eq!(
        model.desc().required_features().as_slice(),
        ["rnn", "dense-net", "int8"]
    );
    // a broken frac chain is refused
    d.layers[0].x_frac = 12;
    assert_eq!(Model::from_blob(&blob_of(&d)), Err(Error::BadQuantization));
    // pooling: state words and features
    let mut d = tiny();
    d.pool = tinyrnn::Pool::Mean;
    let b = blob_of(&d);
    let model = Model::from_blob(&b).unwrap();
    assert_eq!((model.state_len(), model.pool_words()), (1 + 4, 4));
    assert_eq!(
        model.desc().required_features().as_slice(),
        ["rnn", "pool", "int8"]
    );
    d.pool_frac = 3; // only a sum may drop bits
    assert_eq!(Model::from_blob(&blob_of(&d)), Err(Error::BadQuantization));
}

/// The committed format-1 and format-2 blobs (tests/data/blobs_v1, blobs_v2, written by
/// earlier releases) load, and decode to exactly the description of their format-3 twins
/// (tests/data/blobs: the format-2 blobs loaded and written again by `write_blob`).
#[test]
fn committed_format_1_and_2_blobs_load_as_their_format_3_twins() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
    let mut n = 0;
    for cell in ["rnn", "gru", "lstm"] {
        for p in ["int8", "int16", "float32"] {
            let name = format!("vowels_{cell}_{p}.trnn");
            let v1 = std::fs::read(format!("{dir}/blobs_v1/{name}")).unwrap();
            let v2 = std::fs::read(format!("{dir}/blobs_v2/{name}")).unwrap();
            let v3 = std::fs::read(format!("{dir}/blobs/{name}")).unwrap();
            assert_eq!((v1[4], v2[4], v3[4]), (1, 2, 3), "{name}");
            let (a, b, c) = (
                Model::from_blob(&v1).unwrap(),
                Model::from_blob(&v2).unwrap(),
                Model::from_blob(&v3).unwrap(),
            );
            assert_eq!(a.desc(), b.desc(), "{name}");
            assert_eq!(b.desc(), c.desc(), "{name}");
            n += 1;
        }
    }
    assert_eq!(n, 9);
}

/// An int8 LSTM record with a projection and a cell clip (format 3), field by field: 1 input,
/// `H` = 1, `P` = 5, clip 0.5, no head (the output is the projected `h`, Q2.13).
/// `zlib.crc32(bytes(PAYLOAD_PROJ)) == 0x04710dcc`.
const PAYLOAD_PROJ: [u8; 204] = [
    0x00, // precision: Int8
    0x01, // input_size 1
    0x00, // norm: None
    0x00, // pre: no ops
    0x01, // layers: 1 element
    0x02, 0x00, // cell: Lstm (variant 2), peepholes false
    0x01, // input_size 1
    0x01, // hidden_size H = 1
    0x0C, // x_frac 12
    0x0D, // h_frac 13: a projected h is calibrated, not Q0.15
    0x10, // w_ih: 16 bytes, 4 gate rows (i, f, g, o) × pad4(1)
    0x40, 0, 0, 0, // i: 64
    0, 0, 0, 0, // f: 0
    0x7F, 0, 0, 0, // g: 127
    0, 0, 0, 0,    // o: 0
    0x20, // w_hh: 32 bytes, 4 rows × pad4(P = 5) = 8 columns: zeros
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, //
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,    //
    0x10, // b_ih: 4 × i32 0
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,    //
    0x10, // b_hh: 4 × i32 0
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,    //
    0x14, // rq_ih: 4 records, mult 2^30, shift 33 (factor 1/8)
    0x00, 0x00, 0x00, 0x40, 0x21, 0x00, 0x00, 0x00, 0x40, 0x21, //
    0x00, 0x00, 0x00, 0x40, 0x21, 0x00, 0x00, 0x00, 0x40, 0x21, //
    0x14, // rq_hh: the same
    0x00, 0x00, 0x00, 0x40, 0x21, 0x00, 0x00, 0x00, 0x40, 0x21, //
    0x00, 0x00, 0x00, 0x40, 0x21, 0x00, 0x00, 0x00, 0x40, 0x21, //
    0x00, // peephole: empty
    0x00, // p_frac 0
    0x00, // h0: empty
    0x00, // c0: empty
    0x05, // proj_size P = 5
    0x14, // w_hr: 20 bytes, 5 rows × pad4(H = 1)
    0x7F, 0, 0, 0, // 127
    0x81, 0, 0, 0, // −127
    0x40, 0, 0, 0, // 64
    0x00, 0, 0, 0, // 0
    0x64, 0, 0, 0,    // 100
    0x19, // rq_hr: 5 records, mult 2^30, shift 37 (factor 1/128)
    0x00, 0x00, 0x00, 0x40, 0x25, 0x00, 0x00, 0x00, 0x40, 0x25, //
    0x00, 0x00, 0x00, 0x40, 0x25, 0x00, 0x00, 0x00, 0x40, 0x25, //
    0x00, 0x00, 0x00, 0x40, 0x25, //
    0x04, 0x00, 0x40, 0x00, 0x00, // cell_clip: 4 bytes, i32 16384 = 0.5 in Q16.15
    0x00, // direction: Forward
    0x00, // backward: None
    0x00, // pool: Last
    0x00, // pool_frac 0
    0x00, // mlp: no ops
    0x00, // head: None
    0x00, // output_act: Identity
    0x0D, // output_frac 13 (the last h_frac)
    0x01, 0x74, // name: "t"
];

/// [`PAYLOAD_PROJ`] as a description.
fn proj_desc<'a>() -> ModelDesc<'a> {
    const RQ8: [u8; 20] = [
        0x00, 0x00, 0x00, 0x40, 0x21, 0x00, 0x00, 0x00, 0x40, 0x21, 0x00, 0x00, 0x00, 0x40, 0x21,
        0x00, 0x00, 0x00, 0x40, 0x21,
    ];
    const RQ_HR: [u8; 25] = [
        0x00, 0x00, 0x00, 0x40, 0x25, 0x00, 0x00, 0x00, 0x40, 0x25, 0x00, 0x00, 0x00, 0x40, 0x25,
        0x00, 0x00, 0x00, 0x40, 0x25, 0x00, 0x00, 0x00, 0x40, 0x25,
    ];
    let mut d = tiny();
    d.layers[0] = LayerDesc {
        cell: CellKind::Lstm { peepholes: false },
        input_size: 1,
        hidden_size: 1,
        x_frac: 12,
        h_frac: 13,
        w_ih: &[0x40, 0, 0, 0, 0, 0, 0, 0, 0x7F, 0, 0, 0, 0, 0, 0, 0],
        w_hh: &[0; 32],
        b_ih: &[0; 16],
        b_hh: &[0; 16],
        rq_ih: &RQ8,
        rq_hh: &RQ8,
        peephole: &[],
        p_frac: 0,
        h0: &[],
        c0: &[],
        proj_size: 5,
        w_hr: &[
            0x7F, 0, 0, 0, 0x81, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0, 0x64, 0, 0, 0,
        ],
        rq_hr: &RQ_HR,
        cell_clip: &[0x00, 0x40, 0x00, 0x00],
        direction: tinyrnn::Direction::Forward,
        backward: None,
    };
    d.output_frac = 13;
    d
}

/// The projected + clipped record: the writer produces the hand-written bytes, they load,
/// the state and scratch are sized by `P` and `H`, and one step gives the hand-computed
/// values: x = 1.0 → 4096 (Q3.12); pre_i = 64·4096/8 = 32768 (8.0), pre_f = pre_o = 0,
/// pre_g = 127·4096/8 = 65024 (15.9); c' = σ(0)·0 + σ(8)·tanh(15.9) = 0.99966 > clip →
/// c' = 16384 exactly (the clamp); m = σ(0)·tanh(0.5) = 0.231059 (Q0.15 ≈ 7571);
/// h_p = round(W_hr[p]·m / 128) in Q2.13. The activations are the tables' (≤ 1.1 LSB
/// each, so |m − exact| ≤ 2 LSB and |h_p − exact| ≤ 2·127/128 + 0.5 < 3 LSB).
#[test]
fn projected_clipped_record_bytes() {
    assert_eq!(
        tinyrnn::model::crc32(&PAYLOAD_PROJ),
        0x0471_0dcc,
        "zlib.crc32"
    );
    let blob = blob_of(&proj_desc());
    assert_eq!(&blob[16..], &PAYLOAD_PROJ[..]);
    let model = Model::from_blob(&blob).unwrap();
    assert_eq!(model.desc(), &proj_desc());
    assert_eq!(
        model.desc().required_features().as_slice(),
        &["lstm", "lstm-proj", "lstm-clip", "int8"]
    );
    assert_eq!(model.output_size(), 5);
    // h (P = 5) + c (H = 1); scratch: x pad4(1) + h pad4(5) + m pad4(1) i16s, two per word
    assert_eq!((model.state_len(), model.scratch_len()), (6, 8));
    let mut s: Session<'_, 6, 8> = Session::new(&model).unwrap();
    s.step(&[1.0]).unwrap();
    assert_eq!(s.state()[5], 16384, "c clamped to the clip");
    let mut out = [0i16; 5];
    s.output_q(&mut out).unwrap();
    let m = 0.5 * 0.5f64.tanh();
    for (p, w) in [127.0, -127.0, 64.0, 0.0, 100.0].iter().enumerate() {
        let exact = w * m * 32768.0 / 128.0;
        assert!(
            (out[p] as f64 - exact).abs() < 3.0,
            "h[{p}] = {} vs {exact}",
            out[p]
        );
    }
    assert_eq!(out[3], 0);
    assert_eq!(out[0], -out[1]);
}

/// The loader's checks of projections and clips, one error each.
#[test]
fn projection_and_clip_errors() {
    let load = |f: &dyn Fn(&mut ModelDesc<'static>)| {
        let mut d = proj_desc();
        f(&mut d);
        Model::from_blob(&blob_of(&d)).map(|_| ())
    };
    assert_eq!(load(&|_| ()), Ok(()));
    // on a cell other than the LSTM: the tiny RNN with a projection / a clip
    assert_eq!(
        with_layer(|l| {
            l.proj_size = 1;
            l.w_hr = &[1, 0, 0, 0];
            l.rq_hr = &RQ;
        }),
        Err(Error::Unsupported)
    );
    assert_eq!(
        with_layer(|l| l.cell_clip = &[0, 0x40, 0, 0]),
        Err(Error::Unsupported)
    );
    // dimensions and lengths
    assert_eq!(
        load(&|d| d.layers[0].proj_size = 257),
        Err(Error::BadDimension)
    );
    assert_eq!(
        load(&|d| d.layers[0].w_hr = &[0; 16]),
        Err(Error::ShapeMismatch)
    );
    assert_eq!(
        load(&|d| d.layers[0].rq_hr = &RQ),
        Err(Error::ShapeMismatch)
    );
    assert_eq!(
        load(&|d| d.layers[0].w_hh = &[0; 16]),
        Err(Error::ShapeMismatch)
    ); // w_hh reads P = 5 (pad4 8) columns, not H
    assert_eq!(
        load(&|d| d.layers[0].h0 = &[0; 2]),
        Err(Error::ShapeMismatch)
    ); // h0 is P wide
    assert_eq!(load(&|d| d.layers[0].h0 = &[0; 10]), Ok(()));
    assert_eq!(
        load(&|d| d.layers[0].c0 = &[0; 20]),
        Err(Error::ShapeMismatch)
    ); // c0 is H wide
       // W_hr and its records without a projection
    assert_eq!(
        load(&|d| d.layers[0].proj_size = 0),
        Err(Error::ShapeMismatch)
    );
    // requant records: the gates' bounds
    assert_eq!(
        load(&|d| d.layers[0].rq_hr = &[
            0, 0, 0, 0x40, 63, 0, 0, 0, 0x40, 33, 0, 0, 0, 0x40, 33, 0, 0, 0, 0x40, 33, 0, 0, 0,
            0x40, 33
        ]),
        Err(Error::BadQuantization)
    );
    // the clip: 4 bytes, positive
    assert_eq!(
        load(&|d| d.layers[0].cell_clip = &[0, 0x40, 0]),
        Err(Error::ShapeMismatch)
    );
    assert_eq!(
        load(&|d| d.layers[0].cell_clip = &[0, 0, 0, 0]),
        Err(Error::BadQuantization)
    );
    assert_eq!(
        load(&|d| d.layers[0].cell_clip = &[0, 0, 0, 0x80]),
        Err(Error::BadQuantization)
    );
    // h_frac 13 needs the projection: a plain LSTM's h is Q0.15
    let mut d = proj_desc();
    d.layers[0].proj_size = 0;
    d.layers[0].w_hr = &[];
    d.layers[0].rq_hr = &[];
    d.layers[0].w_hh = &[0; 16];
    assert_eq!(Model::from_blob(&blob_of(&d)), Err(Error::BadQuantization));
    // f32: a finite positive clip
    let mut d = tiny();
    d.precision = Precision::F32;
    d.output_frac = 0;
    d.layers[0] = f32_layer(CellKind::Lstm { peepholes: false });
    let ok = |v: f32| {
        let mut d = d.clone();
        d.layers[0].cell_clip = Box::leak(Box::new(v.to_le_bytes()));
        Model::from_desc(d).map(|_| ())
    };
    assert_eq!(ok(10.0), Ok(()));
    assert_eq!(ok(f32::NAN), Err(Error::NonFinite));
    assert_eq!(ok(f32::INFINITY), Err(Error::NonFinite));
    assert_eq!(ok(0.0), Err(Error::BadQuantization));
    assert_eq!(ok(-1.0), Err(Error::BadQuantization));
}

/// A projected layer's saved-state tag adds its `proj_size` (`u16` LE) after the layer's
/// seven bytes (`Session::save_state`'s table).
#[test]
fn saved_state_tag_of_a_projected_layer() {
    let blob = blob_of(&proj_desc());
    let model = Model::from_blob(&blob).unwrap();
    let mut s = Session::<6, 8>::new(&model).unwrap();
    s.step(&[0.5]).unwrap();
    let mut saved = [0u8; 28];
    assert_eq!(s.save_state(&mut saved).unwrap(), 28);
    let (body, tag) = saved.split_at(24);
    // int8, input 1, LSTM 4, x_frac 12, h_frac 13, input 1, hidden 1, proj 5
    let mut hashed = vec![0, 1, 0, 4, 12, 13, 1, 0, 1, 0, 5, 0];
    hashed.extend_from_slice(body);
    assert_eq!(tag, tinyrnn::model::crc32(&hashed).to_le_bytes());
}

/// `tiny()` with its layer bidirectional (the reverse direction's own weights) and
/// `FinalStates` pooling, field by field (format 3): the output is `[fwd h; bwd h]`.
const PAYLOAD_BIDIR: [u8; 98] = [
    0x00, // precision: Int8 (variant 0)
    0x01, // input_size: 1 (varint)
    0x00, // norm: None
    0x00, // pre: no ops
    0x01, // layers: 1 element
    0x00, 0x00, // cell: Rnn (variant 0) (Tanh (variant 0))
    0x01, // input_size 1
    0x01, // hidden_size 1 (per direction)
    0x0C, // x_frac 12
    0x0F, // h_frac 15 (both directions)
    0x04, 0x05, 0x00, 0x00, 0x00, // w_ih (forward): 5
    0x04, 0xFD, 0x00, 0x00, 0x00, // w_hh (forward): -3
    0x04, 0x64, 0x00, 0x00, 0x00, // b_ih (forward): i32 100
    0x04, 0xFF, 0xFF, 0xFF, 0xFF, // b_hh (forward): i32 -1
    0x05, 0x00, 0x00, 0x00, 0x40, 0x21, // rq_ih (forward)
    0x05, 0x00, 0x00, 0x00, 0x40, 0x21, // rq_hh (forward)
    0x00, // peephole: empty
    0x00, // p_frac 0
    0x00, // h0: empty
    0x00, // c0: empty
    0x00, // proj_size 0
    0x00, // w_hr: empty
    0x00, // rq_hr: empty
    0x00, // cell_clip: empty
    0x02, // direction: Bidirectional (variant 2)
    0x01, // backward: Some, then DirWeights:
    0x04, 0x07, 0x00, 0x00, 0x00, //   w_ih (reverse): 7
    0x04, 0xFE, 0x00, 0x00, 0x00, //   w_hh (reverse): -2
    0x04, 0x32, 0x00, 0x00, 0x00, //   b_ih (reverse): i32 50
    0x04, 0x01, 0x00, 0x00, 0x00, //   b_hh (reverse): i32 1
    0x05, 0x00, 0x00, 0x00, 0x40, 0x21, //   rq_ih (reverse)
    0x05, 0x00, 0x00, 0x00, 0x40, 0x21, //   rq_hh (reverse)
    0x00, //   peephole: empty
    0x00, //   h0: empty
    0x00, //   c0: empty
    0x00, //   w_hr: empty
    0x00, //   rq_hr: empty
    0x04, // pool: FinalStates (variant 4)
    0x00, // pool_frac 0
    0x00, // mlp: no ops
    0x00, // head: None
    0x00, // output_act: Identity
    0x0F, // output_frac 15
    0x01, 0x74, // name: "t"
];

fn bidir<'a>() -> ModelDesc<'a> {
    let mut d = tiny();
    d.layers[0].direction = tinyrnn::Direction::Bidirectional;
    d.layers[0].backward = Some(tinyrnn::model::DirWeights {
        w_ih: &[7, 0, 0, 0],
        w_hh: &[0xFE, 0, 0, 0],
        b_ih: &[50, 0, 0, 0],
        b_hh: &[1, 0, 0, 0],
        rq_ih: &RQ,
        rq_hh: &RQ,
        peephole: &[],
        h0: &[],
        c0: &[],
        w_hr: &[],
        rq_hr: &[],
    });
    d.pool = tinyrnn::Pool::FinalStates;
    d
}

/// The byte table of a bidirectional layer record (and `FinalStates`), both ways, with
/// the CRC computed independently; the loader's checks of the direction fields.
#[test]
fn bidirectional_record_bytes() {
    let d = bidir();
    let b = blob_of(&d);
    let mut header = HEADER;
    header[8] = 98;
    header[12..16].copy_from_slice(&0xe6f0f4af_u32.to_le_bytes());
    assert_eq!(&b[..16], &header);
    assert_eq!(&b[16..], &PAYLOAD_BIDIR);
    let model = Model::from_blob(&b).unwrap();
    assert_eq!(model.desc(), &d);
    assert_eq!(
        model.desc().required_features().as_slice(),
        ["rnn", "pool", "window", "int8"]
    );
    assert_eq!(model.window_layer(), Some(0));
    assert_eq!((model.pooled_size(), model.output_size()), (2, 2));
    // per frame: the input (pad4(1) = 4 values) and the output [fwd; bwd] (pad4(2) = 4
    // values), two i16 per word
    assert_eq!(model.window_frame_words(), 4);
    assert_eq!(model.window_words(64), 256);
    // the reverse weights come exactly with a bidirectional layer
    let mut e = bidir();
    e.layers[0].backward = None;
    assert_eq!(Model::from_blob(&blob_of(&e)), Err(Error::ShapeMismatch));
    let mut e = bidir();
    e.layers[0].direction = tinyrnn::Direction::Reverse;
    assert_eq!(Model::from_blob(&blob_of(&e)), Err(Error::ShapeMismatch));
    // the reverse tensors are checked like the forward ones
    let mut e = bidir();
    if let Some(w) = e.layers[0].backward.as_mut() {
        w.w_hh = &[0xFE, 0, 0];
    }
    assert_eq!(Model::from_blob(&blob_of(&e)), Err(Error::ShapeMismatch));
    let mut e = bidir();
    if let Some(w) = e.layers[0].backward.as_mut() {
        w.rq_ih = &[0, 0, 0, 0x40, 0];
    }
    assert_eq!(Model::from_blob(&blob_of(&e)), Err(Error::BadQuantization));
    // a reverse layer: no reverse weights, output H wide
    let mut r = tiny();
    r.layers[0].direction = tinyrnn::Direction::Reverse;
    let rb = blob_of(&r);
    let rm = Model::from_blob(&rb).unwrap();
    assert_eq!((rm.pooled_size(), rm.window_frame_words()), (1, 4));
    // a one-frame window: the reverse pass is one step from h0 = 0, like the forward one
    let mut s = Session::<4, 16>::new(&model).unwrap();
    let mut buf = [0u32; 4];
    let mut win = tinyrnn::Window::new(&mut buf);
    s.step_window(&[0.5], &mut win).unwrap();
    let mut out = [0i16; 2];
    s.output_window_q(&mut win, &mut out).unwrap();
    let mut f = Session::<4, 16>::new(&rm).unwrap();
    let mut fbuf = [0u32; 4];
    let mut fwin = tinyrnn::Window::new(&mut fbuf);
    f.step_window(&[0.5], &mut fwin).unwrap();
    let mut one = [0i16; 1];
    f.output_window_q(&mut fwin, &mut one).unwrap();
    // the forward weights in a one-frame reverse pass give the forward half
    assert_eq!(out[0], one[0]);
    assert_ne!(out[0], out[1], "the reverse half uses the reverse weights");
    assert_eq!(
        s.step_window(&[0.5], &mut win),
        Err(Error::TooLarge {
            buffer: tinyrnn::Buffer::Window,
            needed: 8,
            capacity: 4
        })
    );
}
