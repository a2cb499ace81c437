//! tinyrnn on QEMU `sifive_e` (FE310, RV32IMAC): runs the embedded recording and exits
//! through semihosting.
#![no_std]
#![no_main]

use riscv as _; // critical-section implementation (single hart)
use riscv_rt::entry;

#[entry]
fn main() -> ! {
    qemu_common::run("sifive-e")
}

/// Any trap (exception) the firmware does not expect ends the run.
#[export_name = "ExceptionHandler"]
fn exception_handler(_frame: &riscv_rt::TrapFrame) -> ! {
    qemu_common::fault("exception")
}
