//! Bit-exactness of the DSP kernels (`tinyrnn::kernel::dsp`) against the portable ones
//! (`tinyrnn::kernel::{dot_i8, dot4_i8, dot4_i16}`), on the target itself: every row length from 4 to
//! 256 columns, weight slices at every byte alignment, random and extreme values. cfg
//! `bench_dsp` (set by `build.rs` for `thumbv7em-*`, where tinyrnn selects them) marks the
//! targets that have them. (The
//! sessions of every case are compared with the host separately, in `main.rs`.)

/// Compares the target's fast kernels with the portable ones; `true` if they agree.
#[cfg(bench_dsp)]
pub fn kernels() -> bool {
    use crate::cases::mix;
    use tinyrnn::kernel::{dot4_i16, dot4_i8, dot_i8, dsp};

    const MAX: usize = 256;
    let mut w = [0u8; 8 * MAX + 3];
    let mut x = [0u32; MAX / 2];
    let mut compared = 0u32;
    for round in 0..4u32 {
        // rounds 0, 1: random; 2: extremes (−128 · −32768 everywhere: |Σ| = 2^30);
        // 3: mixed extremes (+127 / −128 against ±32767 / −32768)
        for (i, b) in w.iter_mut().enumerate() {
            let r = mix(i as u32 ^ round << 24);
            *b = match round {
                2 => 0x80,
                3 => [0x7f, 0x80][r as usize & 1],
                _ => r as u8,
            };
        }
        for (i, v) in x.iter_mut().enumerate() {
            let r = mix(i as u32 ^ round << 24 ^ 0x00ab_0000);
            *v = match round {
                2 => 0x8000_8000,
                3 => [0x8000_7fff, 0x7fff_8000, 0x8000_8000][r as usize % 3],
                _ => r,
            };
        }
        for n in (4..=MAX).step_by(4) {
            let xs = &x[..n / 2];
            for off in 0..4 {
                let w4 = &w[off..off + 4 * n];
                let (a, b) = (dsp::dot4_i8(w4, xs), dot4_i8(w4, xs));
                let (c, d) = (dsp::dot_i8(&w4[..n], xs), dot_i8(&w4[..n], xs));
                if a != b || c != d {
                    semihosting::println!(
                        "kernels MISMATCH round={} n={} offset={} dot4 {:?} vs {:?}, dot {} vs {}",
                        round,
                        n,
                        off,
                        a,
                        b,
                        c,
                        d
                    );
                    return false;
                }
                compared += 5;
            }
            for off in 0..4 {
                let w4 = &w[off..off + 8 * n];
                let (a, b) = (dsp::dot4_i16(w4, xs), dot4_i16(w4, xs));
                if a != b {
                    semihosting::println!(
                        "kernels MISMATCH round={} n={} offset={} dot4_i16 {:?} vs {:?}",
                        round,
                        n,
                        off,
                        a,
                        b
                    );
                    return false;
                }
                compared += 4;
            }
        }
    }
    semihosting::println!("kernels ok: DSP == portable on {} rows", compared);
    true
}

/// No DSP kernels on this target: nothing to compare.
#[cfg(not(bench_dsp))]
pub fn kernels() -> bool {
    true
}
