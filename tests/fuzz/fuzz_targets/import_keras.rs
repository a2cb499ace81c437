//! Fuzz target `import_keras`: see `tinyrnn_fuzz::import` and README.md.
#![no_main]

use tinyrnn_fuzz::import::{import, Format};

libfuzzer_sys::fuzz_target!(|data: &[u8]| import(Format::Keras, data));
