//! Fuzz target `load`: see `tinyrnn_fuzz::load` and README.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tinyrnn_fuzz::load(data));
