//! tinyrnn on QEMU `mps2-an386` (MPS2 AN386 (Cortex-M4F)): runs the embedded recording and exits through semihosting.
#![no_std]
#![no_main]

use cortex_m as _; // critical-section implementation (single core)
use cortex_m_rt::{entry, exception, ExceptionFrame};

#[entry]
fn main() -> ! {
    qemu_common::run("mps2-an386")
}

#[exception]
unsafe fn HardFault(_frame: &ExceptionFrame) -> ! {
    qemu_common::fault("HardFault")
}
