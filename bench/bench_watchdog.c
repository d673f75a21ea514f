/* bench/bench_watchdog.c: `coil bench watchdog [--quick]`.
 *
 * What the stall detector and busy-time accounting cost the scheduler's
 * hot path. The two figures of `coil bench runtime` that a per-resume cost
 * would hurt most are measured here in three configurations, in the same
 * run and interleaved (off, on, untimed, off, on, ...), so that drift on a
 * shared machine hits all three alike:
 *
 *   on       the default: detector on (threshold 100 ms, the watchdog
 *            thread sampling the loop) and busy time measured
 *   off      detector off (threshold 0); busy time still measured
 *   untimed  detector off and busy-time accounting off: only the heartbeat
 *            stores remain, which are always there
 *
 * Figures, one per line as "name value unit":
 *
 *   watchdog_yield_resume_{on,off,untimed}   two tasks yielding   ns/yield
 *   watchdog_spawn_join_{on,off,untimed}     spawn+join, serial   tasks/s
 *   watchdog_*_on_vs_off, watchdog_*_on_vs_untimed               ratio x
 *
 * Ratios follow the bench convention: > 1 means "on" is better, so 0.97
 * means 3% slower.
 *
 * Method. A 3% difference is below the noise of a shared machine, so the
 * work is cut into many short runs (a few milliseconds each), timed with
 * the loop thread's CPU clock, which does not count time the thread spent
 * descheduled. Each round runs the three configurations back to back, in
 * an order that rotates from round to round. The figures printed for each
 * configuration are its best run; the ratios are the median over rounds of
 * the ratio within the round, so that a disturbance hitting one round
 * weighs no more than any other round. The watchdog thread's own work (a
 * sample every 25 ms) shows up only as what it costs the loop thread, such
 * as its cache line of heartbeat moving.
 */
#include <coil/coil.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bench.h"
#include "runtime/internal.h"

enum {
    MODES = 3,
    MAX_ROUNDS = 100,   /* runs of each configuration */
    QUICK_ROUNDS = 15,
    RUN_YIELDS = 100000, /* yields per task per run: 200k in all */
    RUN_SPAWNS = 100000, /* spawn+join pairs per run */
};

typedef enum mode { MODE_OFF, MODE_ON, MODE_UNTIMED } mode;
static const char *const mode_names[MODES] = {"off", "on", "untimed"};

typedef struct wd_bench {
    int rounds;                          /* runs of each mode */
    double yield_ns[MODES][MAX_ROUNDS];  /* CPU ns per yield, per round */
    double spawn_rate[MODES][MAX_ROUNDS]; /* tasks per CPU second, per round */
    int failed;
} wd_bench;

static void set_mode(mode m) {
    coil_watchdog_set_threshold(m == MODE_ON ? COIL_MSEC(100) : 0);
    atomic_store(&coil__busy_accounting, m != MODE_UNTIMED);
}

static coil_result nop(void *arg) { return coil_ok(arg); }

static coil_result yielder(void *arg) {
    long n = (long)(intptr_t)arg;
    for (long i = 0; i < n; i++)
        if (coil_yield()) return coil_fail(-ECANCELED);
    return coil_ok(NULL);
}

/* CPU time of the calling thread. */
static coil_time cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return COIL_SEC(ts.tv_sec) + ts.tv_nsec;
}

/* Two tasks, n yields each. Returns CPU ns per yield, or < 0 on error. */
static double yield_ns(long n) {
    coil_time t0 = cpu_now();
    coil_task *a = coil_spawn(yielder, (void *)(intptr_t)n);
    coil_task *b = coil_spawn(yielder, (void *)(intptr_t)n);
    if (!a || !b) {
        if (a) coil_join(a, NULL);
        return -1;
    }
    coil_join(a, NULL);
    coil_join(b, NULL);
    return (double)(cpu_now() - t0) / (2.0 * (double)n);
}

/* n spawn+join pairs, one at a time. Returns tasks per CPU second. */
static double spawn_rate(long n) {
    coil_time t0 = cpu_now();
    for (long i = 0; i < n; i++) {
        coil_task *t = coil_spawn(nop, NULL);
        if (!t) return -1;
        coil_join(t, NULL);
    }
    return (double)n * 1e9 / (double)(cpu_now() - t0);
}

static coil_result bench_main(void *arg) {
    wd_bench *b = arg;
    /* Warm-up: stacks pooled, the watchdog thread started, caches hot. */
    set_mode(MODE_ON);
    if (yield_ns(RUN_YIELDS) < 0 || spawn_rate(RUN_SPAWNS) < 0) b->failed = 1;
    for (int r = 0; r < b->rounds && !b->failed; r++) {
        for (int k = 0; k < MODES; k++) {
            int m = (r + k) % MODES; /* rotate: no mode always runs first */
            set_mode((mode)m);
            b->yield_ns[m][r] = yield_ns(RUN_YIELDS);
            b->spawn_rate[m][r] = spawn_rate(RUN_SPAWNS);
            if (b->yield_ns[m][r] < 0 || b->spawn_rate[m][r] < 0) b->failed = 1;
        }
    }
    set_mode(MODE_ON);
    return coil_ok(NULL);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Best of the rounds: lowest cost or highest rate. */
static double best(const double *v, int n, bool lower_better) {
    double b = v[0];
    for (int i = 1; i < n; i++)
        if (lower_better ? v[i] < b : v[i] > b) b = v[i];
    return b;
}

/* Median over rounds of num[r] / den[r]. */
static double median_ratio(const double *num, const double *den, int n) {
    double r[MAX_ROUNDS];
    for (int i = 0; i < n; i++) r[i] = num[i] / den[i];
    qsort(r, (size_t)n, sizeof *r, cmp_double);
    return n % 2 ? r[n / 2] : (r[n / 2 - 1] + r[n / 2]) / 2;
}

static void print_figures(const wd_bench *b) {
    int n = b->rounds;
    for (int m = 0; m < MODES; m++)
        printf("watchdog_yield_resume_%s %.1f ns/yield\n", mode_names[m],
               best(b->yield_ns[m], n, true));
    /* Costs: the other configuration over "on", so > 1 favours "on". */
    printf("watchdog_yield_resume_on_vs_off %.3f x\n",
           median_ratio(b->yield_ns[MODE_OFF], b->yield_ns[MODE_ON], n));
    printf("watchdog_yield_resume_on_vs_untimed %.3f x\n",
           median_ratio(b->yield_ns[MODE_UNTIMED], b->yield_ns[MODE_ON], n));
    for (int m = 0; m < MODES; m++)
        printf("watchdog_spawn_join_%s %.0f tasks/s\n", mode_names[m],
               best(b->spawn_rate[m], n, false));
    printf("watchdog_spawn_join_on_vs_off %.3f x\n",
           median_ratio(b->spawn_rate[MODE_ON], b->spawn_rate[MODE_OFF], n));
    printf("watchdog_spawn_join_on_vs_untimed %.3f x\n",
           median_ratio(b->spawn_rate[MODE_ON], b->spawn_rate[MODE_UNTIMED], n));
}

int coil_bench_watchdog(int argc, char **argv) {
    static wd_bench b; /* a few KiB: not on the caller's stack */
    memset(&b, 0, sizeof b);
    b.rounds = MAX_ROUNDS;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            b.rounds = QUICK_ROUNDS;
        } else {
            fprintf(stderr, "usage: coil bench watchdog [--quick]\n");
            return 2;
        }
    }
    coil_time saved = coil_watchdog_threshold();
    coil_result r;
    int err = coil_run(bench_main, &b, &r);
    coil_watchdog_set_threshold(saved);
    atomic_store(&coil__busy_accounting, true);
    if (err || r.err || b.failed) {
        fprintf(stderr, "coil bench watchdog: a task failed\n");
        return 1;
    }
    print_figures(&b);
    return 0;
}
