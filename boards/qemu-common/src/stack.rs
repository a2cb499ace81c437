//! Stack high-water mark by painting.
//!
//! [`paint`] fills the unused stack, from the lowest stack address (`__sheap`, the end of
//! `.bss`/`.uninit`, provided by both cortex-m-rt and riscv-rt) up to a little below the
//! current stack pointer, with [`PATTERN`]. [`used`] later finds the lowest word that no
//! longer holds the pattern: everything above it, up to `_stack_start` (the initial stack
//! pointer), has been used at some point. The figure includes the start-up code's frames
//! and the exception/trap frames, and is exact to one word unless a frame happened to
//! store the pattern itself.

/// The paint value.
pub const PATTERN: u32 = 0xCCCC_CCCC;
/// Bytes below the stack pointer that [`paint`] leaves alone (its own frame and callees').
const MARGIN: usize = 64;

extern "C" {
    static __sheap: u32;
    static _stack_start: u32;
}

fn bottom() -> usize {
    // Only the address of the linker symbol is taken.
    core::ptr::addr_of!(__sheap) as usize
}

fn top() -> usize {
    core::ptr::addr_of!(_stack_start) as usize
}

#[inline(always)]
fn sp() -> usize {
    let sp: usize;
    // SAFETY: reads the stack pointer register, no memory access.
    unsafe {
        #[cfg(target_arch = "arm")]
        core::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags));
        #[cfg(target_arch = "riscv32")]
        core::arch::asm!("mv {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags));
    }
    sp
}

/// Size of the stack region in bytes (`_stack_start − __sheap`).
pub fn size() -> usize {
    top() - bottom()
}

/// Paints the free stack below the current stack pointer. Call it first thing in `main`.
#[inline(never)]
pub fn paint() {
    let end = (sp() - MARGIN) & !3;
    let mut p = bottom();
    while p < end {
        // SAFETY: `[__sheap, sp − MARGIN)` is RAM the linker reserved for the stack and that
        // no live frame occupies (the stack grows down from `sp`).
        unsafe { core::ptr::write_volatile(p as *mut u32, PATTERN) };
        p += 4;
    }
}

/// Bytes of stack used since [`paint`]: from the lowest overwritten word to the top.
pub fn used() -> usize {
    let mut p = bottom();
    let end = top();
    // SAFETY: reads RAM inside the stack region, word aligned (both symbols are 4-aligned).
    while p < end && unsafe { core::ptr::read_volatile(p as *const u32) } == PATTERN {
        p += 4;
    }
    end - p
}
