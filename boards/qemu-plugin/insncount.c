/*
 * tinyrnn instruction-count TCG plugin for QEMU >= 9.0 (plugin API version 4 in QEMU 10.0).
 *
 * Counts every guest instruction executed (one inline add per instruction: exact, also
 * when a translation block is left early) and reports, for each pair of calls
 * start-marker / stop-marker, the number of instructions executed from the first
 * instruction of the start marker (included) to the first instruction of the stop marker
 * (excluded). The markers are two global, never-inlined functions of the firmware
 * (tinyrnn_bench_start / tinyrnn_bench_stop); their addresses come from the ELF symbol
 * table and are passed as arguments:
 *
 *   qemu-system-arm ... -plugin libinsncount.so,start=0x1234,stop=0x1240,out=FILE[,trace=on]
 *
 * (Thumb addresses may be given with bit 0 set; it is ignored.) Output, one line per
 * window, in order: `window <n> <instructions>`. With trace=on, each window is followed by
 * `tb <hex address> <instructions>` lines: the translation blocks executed inside it and the
 * instructions executed in each (the host maps them to functions: the code a step runs
 * through, and where its instructions go).
 *
 * Debian's QEMU ships no qemu-plugin.h: the few types and functions used are declared
 * below, as in QEMU's include/qemu/qemu-plugin.h (API version 4).
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- QEMU plugin API subset (include/qemu/qemu-plugin.h, QEMU 9.0 .. 10.0) ---- */
typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t {
    const char *target_name;
    struct {
        int min;
        int cur;
    } version;
    bool system_emulation;
    union {
        struct {
            int smp_vcpus;
            int max_vcpus;
        } system;
    };
} qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
struct qemu_plugin_scoreboard;
typedef struct {
    struct qemu_plugin_scoreboard *score;
    size_t offset;
} qemu_plugin_u64;
enum qemu_plugin_cb_flags {
    QEMU_PLUGIN_CB_NO_REGS,
    QEMU_PLUGIN_CB_R_REGS,
    QEMU_PLUGIN_CB_RW_REGS,
};
enum qemu_plugin_op {
    QEMU_PLUGIN_INLINE_ADD_U64,
    QEMU_PLUGIN_INLINE_STORE_U64,
};
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);

#define EXPORT __attribute__((visibility("default")))
EXPORT extern int qemu_plugin_version;
EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc,
                               char **argv);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, qemu_plugin_vcpu_udata_cb_t cb,
                                          enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn,
                                            qemu_plugin_vcpu_udata_cb_t cb,
                                            enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_vcpu_insn_exec_inline_per_vcpu(struct qemu_plugin_insn *insn,
                                                         enum qemu_plugin_op op,
                                                         qemu_plugin_u64 entry, uint64_t imm);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
struct qemu_plugin_scoreboard *qemu_plugin_scoreboard_new(size_t element_size);
uint64_t qemu_plugin_u64_sum(qemu_plugin_u64 entry);
/* ---- end of the API subset ---- */

EXPORT int qemu_plugin_version = 4;

static qemu_plugin_u64 count;
static uint64_t start_addr = UINT64_MAX, stop_addr = UINT64_MAX;
static uint64_t window_start;
static bool in_window;
static unsigned windows;
static bool trace;
static FILE *out;

/* Translation blocks executed in the current window (open addressing, reset per window):
 * start address and instructions executed there (executions x block length). */
#define TB_SET 8192
struct tb_info {
    uint64_t pc;
    uint64_t n_insns;
};
static struct {
    uint64_t pc; /* +1, so that 0 means empty */
    uint64_t insns;
} tb_set[TB_SET];
static unsigned tb_used;

static void tb_exec(unsigned int vcpu, void *udata)
{
    (void)vcpu;
    const struct tb_info *tb = udata;
    if (!in_window) {
        return;
    }
    uint64_t pc = tb->pc + 1;
    size_t h = (size_t)((pc * 0x9E3779B97F4A7C15ull) >> 51) & (TB_SET - 1);
    while (tb_set[h].pc != 0 && tb_set[h].pc != pc) {
        h = (h + 1) & (TB_SET - 1);
    }
    if (tb_set[h].pc == 0) {
        if (tb_used >= TB_SET / 2) {
            return; /* full: the profile of this window is incomplete, the count is not */
        }
        tb_set[h].pc = pc;
        tb_used++;
    }
    tb_set[h].insns += tb->n_insns;
}

static void on_start(unsigned int vcpu, void *udata)
{
    (void)vcpu;
    (void)udata;
    window_start = qemu_plugin_u64_sum(count);
    in_window = true;
    memset(tb_set, 0, sizeof tb_set);
    tb_used = 0;
}

static void on_stop(unsigned int vcpu, void *udata)
{
    (void)vcpu;
    (void)udata;
    if (!in_window) {
        return;
    }
    in_window = false;
    windows++;
    fprintf(out, "window %u %" PRIu64 "\n", windows, qemu_plugin_u64_sum(count) - window_start);
    if (trace) {
        for (size_t i = 0; i < TB_SET; i++) {
            if (tb_set[i].pc != 0) {
                fprintf(out, "tb 0x%" PRIx64 " %" PRIu64 "\n", tb_set[i].pc - 1, tb_set[i].insns);
            }
        }
    }
    fflush(out);
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    if (trace) {
        /* one record per translation, kept for the plugin's lifetime (QEMU may translate a
         * block again after a flush; the firmware's code is small and static) */
        struct tb_info *info = malloc(sizeof *info);
        if (info != NULL) {
            info->pc = qemu_plugin_tb_vaddr(tb);
            info->n_insns = n;
            qemu_plugin_register_vcpu_tb_exec_cb(tb, tb_exec, QEMU_PLUGIN_CB_NO_REGS, info);
        }
    }
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t pc = qemu_plugin_insn_vaddr(insn);
        /* Callbacks run in registration order: the marker callbacks read the count before
         * the marker's own instruction is added. */
        if (pc == start_addr) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_start, QEMU_PLUGIN_CB_NO_REGS, NULL);
        } else if (pc == stop_addr) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_stop, QEMU_PLUGIN_CB_NO_REGS, NULL);
        }
        qemu_plugin_register_vcpu_insn_exec_inline_per_vcpu(insn, QEMU_PLUGIN_INLINE_ADD_U64,
                                                            count, 1);
    }
}

static void at_exit(qemu_plugin_id_t id, void *udata)
{
    (void)id;
    (void)udata;
    if (in_window) {
        fprintf(out, "unterminated window\n");
    }
    fflush(out);
    if (out != stderr) {
        fclose(out);
    }
}

static bool parse_addr(const char *s, uint64_t *v)
{
    char *end;
    *v = strtoull(s, &end, 0) & ~(uint64_t)1; /* Thumb bit */
    return *s != 0 && *end == 0;
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc,
                               char **argv)
{
    if (info->version.cur < 2) {
        fprintf(stderr, "insncount: QEMU plugin API %d is too old (needs >= 2)\n",
                info->version.cur);
        return -1;
    }
    out = stderr;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        bool ok = true;
        if (strncmp(a, "start=", 6) == 0) {
            ok = parse_addr(a + 6, &start_addr);
        } else if (strncmp(a, "stop=", 5) == 0) {
            ok = parse_addr(a + 5, &stop_addr);
        } else if (strcmp(a, "trace=on") == 0) {
            trace = true;
        } else if (strncmp(a, "out=", 4) == 0) {
            out = fopen(a + 4, "w");
            ok = out != NULL;
        } else {
            ok = false;
        }
        if (!ok) {
            fprintf(stderr, "insncount: bad argument '%s'\n", a);
            return -1;
        }
    }
    if (start_addr == UINT64_MAX || stop_addr == UINT64_MAX) {
        fprintf(stderr, "insncount: needs start=ADDR,stop=ADDR\n");
        return -1;
    }
    count.score = qemu_plugin_scoreboard_new(sizeof(uint64_t));
    count.offset = 0;
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
