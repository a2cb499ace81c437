//! ONNX → [`FloatModel`] (in progress).

use anyhow::{bail, Result};

use super::ImportOptions;
use crate::ir::FloatModel;

/// Imports an ONNX model.
///
/// # Errors
/// Always, for now.
pub fn import(_bytes: &[u8], _opts: &ImportOptions) -> Result<FloatModel> {
    bail!("ONNX import is not implemented yet")
}
