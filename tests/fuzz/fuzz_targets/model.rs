//! Fuzz target `model`: see `tinyrnn_fuzz::model` and README.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tinyrnn_fuzz::model(data));
