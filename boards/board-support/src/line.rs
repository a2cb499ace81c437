//! A fixed-capacity text line built without `core::fmt` (which costs kilobytes of flash).
//!
//! The result lines are formatted on the target and logged as one `{=str}`, so they read
//! exactly like the host's `tinyrnn run --raw` output and can be diffed against it.

/// A line of at most `N` bytes of ASCII; what does not fit is dropped and flagged.
pub struct Line<const N: usize> {
    buf: [u8; N],
    len: usize,
    overflow: bool,
}

impl<const N: usize> Line<N> {
    /// An empty line.
    pub const fn new() -> Self {
        Line {
            buf: [0; N],
            len: 0,
            overflow: false,
        }
    }

    /// Appends ASCII text; sets the overflow flag instead of writing past `N`.
    pub fn str(&mut self, s: &str) -> &mut Self {
        for &b in s.as_bytes() {
            if self.len == N {
                self.overflow = true;
                break;
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        self
    }

    /// Appends a signed decimal integer (`-` for negatives, no leading zeros).
    pub fn int(&mut self, v: i64) -> &mut Self {
        if v < 0 {
            self.str("-");
        }
        let mut m = v.unsigned_abs();
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (m % 10) as u8;
            m /= 10;
            if m == 0 {
                break;
            }
        }
        // Only ASCII digits were written.
        self.str(core::str::from_utf8(&digits[i..]).unwrap_or(""))
    }

    /// The text so far.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    /// Whether something did not fit.
    pub fn overflowed(&self) -> bool {
        self.overflow
    }
}

impl<const N: usize> Default for Line<N> {
    fn default() -> Self {
        Self::new()
    }
}
