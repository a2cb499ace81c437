//! Library behind the `tinyrnn` host tool. Everything here is `std`; the blob is written
//! and read with the `tinyrnn` crate's own structs and loader.

pub mod cmd;
pub mod data;
pub mod exec;
pub mod import;
pub mod ir;
pub mod output;
pub mod plot;
pub mod quantize;
