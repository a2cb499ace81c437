//! Fuzz target `stream`: see `tinyrnn_fuzz::stream` and README.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tinyrnn_fuzz::stream(data));
