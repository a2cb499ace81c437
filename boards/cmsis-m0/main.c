/* CMSIS-NN arm_lstm_unidirectional_s16 instruction-count anchor for the Cortex-M0 (QEMU
 * microbit): per shape, a 1-step window and a 65-step window (one call per step, the state
 * kept in the context, like tinyrnn's Session::step_q), bracketed by the marker functions
 * the insncount plugin counts between. Multipliers/shifts: CMSIS-NN's lstm_1_s16 test. */
#include <stdint.h>
#include <string.h>
#include "arm_nnfunctions.h"
#include "data.h" /* written by gen.py (run.sh) */

__attribute__((noinline, used)) void tinyrnn_bench_start(void) { __asm volatile("nop"); }
__attribute__((noinline, used)) void tinyrnn_bench_stop(void) { __asm volatile("nop\n nop"); }

static int64_t ks[8][128];
static int16_t t1[128], t2[128], cell[128], hid[128], out[128];

static void sh_write0(const char *s) {
    register int r0 __asm("r0") = 4; register const char *r1 __asm("r1") = s;
    __asm volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
}
static void sh_exit(int code) {
    register int r0 __asm("r0") = 0x18; register int r1 __asm("r1") = code == 0 ? 0x20026 : 0x20023;
    __asm volatile("bkpt 0xab" : : "r"(r0), "r"(r1) : "memory");
    for (;;) {}
}

#define GATE(g, i, h, mi, si, mh, shh, n, act) { mi, si, w_##g##x_##i##_##h, ks[2*n], mh, shh, w_##g##h_##i##_##h, ks[2*n+1], b_##g##_##i##_##h, act }

#define CASE(I, H) do { \
    arm_vector_sum_s8_s64(ks[0], I, H, w_fx_##I##_##H, 0, b_f_##I##_##H); \
    arm_vector_sum_s8_s64(ks[1], H, H, w_fh_##I##_##H, 0, NULL); \
    arm_vector_sum_s8_s64(ks[2], I, H, w_ix_##I##_##H, 0, b_i_##I##_##H); \
    arm_vector_sum_s8_s64(ks[3], H, H, w_ih_##I##_##H, 0, NULL); \
    arm_vector_sum_s8_s64(ks[4], I, H, w_cx_##I##_##H, 0, b_c_##I##_##H); \
    arm_vector_sum_s8_s64(ks[5], H, H, w_ch_##I##_##H, 0, NULL); \
    arm_vector_sum_s8_s64(ks[6], I, H, w_ox_##I##_##H, 0, b_o_##I##_##H); \
    arm_vector_sum_s8_s64(ks[7], H, H, w_oh_##I##_##H, 0, NULL); \
    const cmsis_nn_lstm_params p = {1, 1, 1, I, H, 0, \
        1073741824, -14, 1197688178, -20, 32767, -9, 1351257732, -19, 0, \
        GATE(f, I, H, 1572134572, -9, 1085133323, -8, 0, ARM_SIGMOID), \
        GATE(i, I, H, 1957187837, -9, 1710701326, -8, 1, ARM_SIGMOID), \
        GATE(c, I, H, 1951202553, -10, 1114839066, -9, 2, ARM_TANH), \
        GATE(o, I, H, 1819526307, -12, 1350737615, -8, 3, ARM_SIGMOID)}; \
    for (int steps = 1; steps <= 65; steps += 64) { \
        memset(cell, 0, sizeof cell); memset(hid, 0, sizeof hid); \
        cmsis_nn_lstm_context ctx = {t1, t2, cell, hid}; \
        tinyrnn_bench_start(); \
        for (int t = 0; t < steps; t++) \
            if (arm_lstm_unidirectional_s16(&x_##I##_##H[t * I], out, &p, &ctx) != ARM_CMSIS_NN_SUCCESS) bad = 1; \
        tinyrnn_bench_stop(); \
    } \
    sh_write0("case lstm s16 " #I " " #H " ok\n"); \
} while (0)

int main(void) {
    int bad = 0;
    sh_write0("bench machine=microbit cmsis-nn s16\n");
    CASE(9, 32);
    CASE(9, 64);
    CASE(32, 128);
    sh_write0(bad ? "error\n" : "done ok\n");
    sh_exit(bad);
    return 0;
}

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
void Reset_Handler(void) {
    uint32_t *s = &_sidata, *d = &_sdata;
    while (d < &_edata) *d++ = *s++;
    for (d = &_sbss; d < &_ebss;) *d++ = 0;
    main();
    sh_exit(1);
}
void Default_Handler(void) { sh_write0("fault\n"); sh_exit(2); }
__attribute__((section(".isr_vector"), used)) void (*const vectors[16])(void) = {
    (void (*)(void))&_estack, Reset_Handler, Default_Handler, Default_Handler,
    0, 0, 0, 0, 0, 0, 0, Default_Handler, 0, 0, Default_Handler, Default_Handler};
