/* bench/bench_pool.c: `coil bench pool [--quick]`, the process pool.
 *
 * Figures, one per line as "name value unit":
 *
 *   pool_spawn_ms         starting a one-worker pool: posix_spawn of this
 *                         executable, the worker's start-up, its HELLO;
 *                         median of several starts                     ms
 *   pool_spawn_loop_gap_ms  the longest a busy task on the loop went
 *                         without a turn during a start, median over
 *                         starts. The loop never waits for a spawn (it
 *                         runs on a thread); what remains is the loop
 *                         thread sharing the CPUs with the spawning
 *                         thread and the new process                  ms
 *   pool_noop_jobs        no-op jobs end to end through 2 workers, with
 *                         64 tasks submitting at once                  jobs/s
 *   pool_crash_detect_ms  a worker running a sleeping job is killed with
 *                         SIGKILL; from the kill to the job's outcome
 *                         arriving in its caller, median               ms
 *   pool_crash_detect_max_ms  the worst of those                       ms
 *
 * The sleeping job reports its pid as progress, so the benchmark knows
 * whom to kill without any other API. The handlers are registered by
 * constructors: `coil` runs them in its workers like any other kind.
 */
#include <coil/coil.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"

enum {
    SPAWN_RUNS = 10,
    NOOP_TASKS = 64,
    NOOP_JOBS = 40000,
    CRASH_RUNS = 20,
    QUICK_DIVISOR = 4, /* --quick does a quarter of the work */
};

/* ------------------------------------------------------------------ handlers */

static int bench_noop(const void *payload, size_t len, coil_job_ctx *ctx) { return 0; }
COIL_JOB_HANDLER("bench.noop", bench_noop)

/* Reports its pid, then sleeps until stopped. */
static int bench_sleep(const void *payload, size_t len, coil_job_ctx *ctx) {
    char pid[16];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    coil_job_progress(ctx, 0, pid);
    while (!coil_job_cancelled(ctx)) usleep(10000);
    return -ECANCELED;
}
COIL_JOB_HANDLER("bench.sleep", bench_sleep)

/* ------------------------------------------------------------------ helpers */

typedef struct pool_bench {
    int scale;               /* 1, or QUICK_DIVISOR */
    double spawn_ms[SPAWN_RUNS];
    double gap_ms[SPAWN_RUNS];
    double noop_rate;
    double crash_ms[CRASH_RUNS];
    int crash_runs;
    int failed;              /* a step went wrong: no figures */
} pool_bench;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double ms_since(coil_time t0) { return (double)(coil_now() - t0) / 1e6; }

/* ------------------------------------------------------------------ spawn */

/* Yields in a loop, recording the longest gap between two of its turns. */
typedef struct ticker {
    bool stop;
    coil_time max_gap;
} ticker;

static coil_result tick(void *arg) {
    ticker *t = arg;
    coil_time last = coil_now();
    while (!t->stop) {
        coil_yield();
        coil_time now = coil_now();
        if (now - last > t->max_gap) t->max_gap = now - last;
        last = now;
    }
    return coil_ok(NULL);
}

static int bench_spawn(pool_bench *b, int runs) {
    coil_pool_config cfg = {.workers = 1};
    for (int i = 0; i < runs; i++) { /* the start alone */
        coil_pool *p;
        coil_time t0 = coil_now();
        if (coil_pool_start(&cfg, &p)) return -1;
        b->spawn_ms[i] = ms_since(t0);
        coil_pool_stop(p, COIL_POOL_DRAIN);
    }
    for (int i = 0; i < runs; i++) { /* the start beside a busy task */
        coil_pool *p;
        ticker t = {0};
        coil_task *tt = coil_spawn(tick, &t);
        coil_yield();
        int err = coil_pool_start(&cfg, &p);
        t.stop = true;
        coil_join(tt, NULL);
        if (err) return -1;
        b->gap_ms[i] = (double)t.max_gap / 1e6;
        coil_pool_stop(p, COIL_POOL_DRAIN);
    }
    return 0;
}

/* ------------------------------------------------------------------ no-op jobs */

typedef struct noop_share {
    coil_pool *pool;
    int left;   /* jobs still to submit, shared by the tasks */
    int errors; /* jobs that did not succeed */
} noop_share;

static coil_result noop_task(void *arg) {
    noop_share *sh = arg;
    while (sh->left > 0) {
        sh->left--;
        coil_job_outcome out;
        if (coil_pool_run(sh->pool, "bench.noop", "", 0, NULL, &out)) sh->errors++;
        coil_job_outcome_free(&out);
    }
    return coil_ok(NULL);
}

static int bench_noop_jobs(pool_bench *b, int jobs) {
    coil_pool_config cfg = {.workers = 2};
    noop_share sh = {.left = jobs};
    if (coil_pool_start(&cfg, &sh.pool)) return -1;
    coil_time t0 = coil_now();
    coil_group g;
    coil_group_init(&g);
    for (int i = 0; i < NOOP_TASKS; i++) coil_group_spawn(&g, noop_task, &sh);
    int err = coil_group_wait(&g);
    coil_group_destroy(&g);
    b->noop_rate = jobs / (ms_since(t0) / 1e3);
    coil_pool_stop(sh.pool, COIL_POOL_DRAIN);
    return err || sh.errors ? -1 : 0;
}

/* ------------------------------------------------------------------ crash detection */

typedef struct crash_run {
    coil_pool *pool;
    int pid;            /* the worker, from the job's progress */
    coil_time killed;   /* when it was sent SIGKILL */
    coil_time detected; /* when the outcome reached the caller */
    int signal;         /* what the outcome said */
} crash_run;

static void got_pid(void *arg, int percent, const char *message) {
    ((crash_run *)arg)->pid = (int)strtol(message, NULL, 10);
}

static coil_result crash_task(void *arg) {
    crash_run *r = arg;
    coil_job_opts opts = {.on_progress = got_pid, .progress_arg = r};
    coil_job_outcome out;
    coil_pool_run(r->pool, "bench.sleep", "", 0, &opts, &out);
    r->detected = coil_now();
    r->signal = out.signal;
    coil_job_outcome_free(&out);
    return coil_ok(NULL);
}

static int bench_crash(pool_bench *b, int runs) {
    coil_pool_config cfg = {.workers = 2};
    coil_pool *p;
    if (coil_pool_start(&cfg, &p)) return -1;
    int err = 0;
    for (int i = 0; i < runs && !err; i++) {
        crash_run r = {.pool = p};
        coil_task *t = coil_spawn(crash_task, &r);
        while (!r.pid) coil_sleep(COIL_MSEC(1));
        coil_sleep(COIL_MSEC(5)); /* let it settle into its sleep */
        r.killed = coil_now();
        kill(r.pid, SIGKILL);
        coil_join(t, NULL);
        if (r.signal != SIGKILL) err = -1;
        b->crash_ms[i] = (double)(r.detected - r.killed) / 1e6;
        b->crash_runs++;
    }
    coil_pool_stop(p, COIL_POOL_DRAIN);
    return err;
}

/* ------------------------------------------------------------------ main */

static coil_result bench_main(void *arg) {
    pool_bench *b = arg;
    int spawn_runs = SPAWN_RUNS / b->scale; /* at most SPAWN_RUNS */
    if (bench_spawn(b, spawn_runs) || bench_noop_jobs(b, NOOP_JOBS / b->scale) ||
        bench_crash(b, CRASH_RUNS / b->scale)) {
        b->failed = 1;
        return coil_ok(NULL);
    }
    printf("pool_spawn_ms %.2f ms\n", median(b->spawn_ms, spawn_runs));
    printf("pool_spawn_loop_gap_ms %.2f ms\n", median(b->gap_ms, spawn_runs));
    printf("pool_noop_jobs %.0f jobs/s\n", b->noop_rate);
    printf("pool_crash_detect_ms %.2f ms\n", median(b->crash_ms, b->crash_runs));
    printf("pool_crash_detect_max_ms %.2f ms\n", b->crash_ms[b->crash_runs - 1]);
    return coil_ok(NULL);
}

int coil_bench_pool(int argc, char **argv) {
    pool_bench b = {.scale = 1};
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            b.scale = QUICK_DIVISOR;
        } else {
            fprintf(stderr, "usage: coil bench pool [--quick]\n");
            return 2;
        }
    }
    coil_result r;
    if (coil_run(bench_main, &b, &r) != 0 || r.err || b.failed) {
        fprintf(stderr, "coil bench pool: a step failed\n");
        return 1;
    }
    return 0;
}
