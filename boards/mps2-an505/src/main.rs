//! tinyrnn on QEMU `mps2-an505` (MPS2 AN505 (Cortex-M33, secure)): runs the embedded recording and exits through semihosting.
#![no_std]
#![no_main]

use cortex_m as _; // critical-section implementation (single core)
use cortex_m_rt::{entry, exception, ExceptionFrame};

#[entry]
fn main() -> ! {
    qemu_common::run("mps2-an505")
}

#[exception]
unsafe fn HardFault(_frame: &ExceptionFrame) -> ! {
    qemu_common::fault("HardFault")
}
