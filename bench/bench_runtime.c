/* bench/bench_runtime.c: `coil bench runtime [--quick] [--no-anchors] [FIGURE...]`.
 *
 * Measures the runtime's basic costs, one figure per line as "name value
 * unit", in this order (FIGURE arguments select a subset by name prefix):
 *
 *   spawn_join        spawn a trivial task, join it, repeat      tasks/s
 *   spawn_join_batch  spawn 1000, join the 1000, repeat          tasks/s
 *   yield_resume      two tasks yielding to each other           ns/yield
 *   queue_items       producer -> bounded queue (1024) -> consumer  items/s
 *   to_thread         sequential coil_to_thread() round trips    calls/s
 *   parked_*          a million tasks parked on one future: RSS and page-table
 *                     bytes per task, memory mappings in use (to show they
 *                     stay far below vm.max_map_count), setup and teardown cost
 *
 * Method. Every timed figure runs once small as a warm-up (stacks pooled,
 * pool threads started, caches hot), then up to BENCH_REPS times, and the
 * BEST repetition is reported (highest rate, lowest ns): on a shared, noisy
 * machine the best run is the one least disturbed by others, and the median
 * would mostly measure the neighbours. The memory figures are measured once.
 *
 * Anchors. Then the same micro-benchmarks run in CPython asyncio and uvloop
 * (asyncio_micro.py from the anchors directory, found through
 * COIL_ANCHORS_DIR or next to the source tree), as a child process with a
 * pipe and a time limit, twice each (once with --quick), keeping each
 * figure's best run as for coil's own. Their figures are printed with the
 * anchor's name as prefix ("uvloop_spawn_join ..."), followed by ratios
 * "NAME_vs_ANCHOR RATIO x". Every ratio is oriented so that > 1 means coil
 * is better: coil/anchor for rates, anchor/coil for costs (ns per yield,
 * bytes per parked task). The anchor's spawn+join creates all its tasks and
 * then gathers them, so spawn_join_batch is its like-for-like figure;
 * spawn_join is compared too.
 */
#include <coil/coil.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench.h"

extern char **environ;

enum {
    BENCH_REPS = 5,           /* timed repetitions per figure (best kept) */
    BENCH_BATCH = 1000,       /* tasks per batch in spawn_join_batch */
    BENCH_PARK_BATCH = 100,   /* spawns between yields in parked_* */
    BENCH_QUEUE_CAP = 1024,   /* capacity of the queue in queue_items */
    BENCH_MAX_FIGURES = 16,   /* coil figures kept for the ratios */
    BENCH_ANCHOR_OUT = 4096,  /* bytes of anchor output kept */
};

/* How much work each figure does: the full run and --quick. */
typedef struct bench_size {
    long spawn;         /* tasks per repetition (both spawn figures) */
    long yields;        /* yields per task */
    long items;         /* queue items */
    long thread_calls;  /* to_thread round trips */
    long parked;        /* parked tasks */
    int reps;           /* timed repetitions */
    coil_time budget;   /* stop repeating a figure after this long */
    long anchor_n;      /* N passed to asyncio_micro.py */
    int anchor_runs;    /* runs per anchor (best kept) */
    int anchor_timeout; /* seconds per anchor run */
} bench_size;

static const bench_size full_size = {2000000, 2000000, 5000000, 50000, 1000000,
                                     BENCH_REPS, COIL_SEC(3), 50000, 2, 30};
static const bench_size quick_size = {200000, 200000, 500000, 5000, 100000,
                                      3, COIL_MSEC(600), 10000, 1, 15};

/* One coil figure, kept for the ratios printed after the anchors. */
typedef struct figure {
    const char *name;       /* as printed, e.g. "yield_resume" */
    const char *unit;       /* as printed, e.g. "ns/yield" */
    double value;           /* the best repetition */
    const char *anchor_key; /* the asyncio_micro.py figure it compares with */
    bool lower_better;      /* a cost (ns, bytes), not a rate */
} figure;

typedef struct bench {
    bench_size size;
    int nselect;              /* FIGURE arguments; 0: all */
    char **select;            /* name prefixes to run (malloc'd array) */
    bool anchors;             /* run the asyncio/uvloop anchors */
    figure figs[BENCH_MAX_FIGURES]; /* figures measured so far */
    int nfigs;
    int failed;               /* figures that could not be measured */
} bench;

/* ------------------------------------------------------------------ output */

static bool selected(const bench *b, const char *name) {
    if (b->nselect == 0) return true;
    for (int i = 0; i < b->nselect; i++)
        if (strncmp(name, b->select[i], strlen(b->select[i])) == 0) return true;
    return false;
}

/* Decimals worth printing: one for nanoseconds, none for the rest. */
static int decimals(const char *unit) { return strncmp(unit, "ns/", 3) == 0 ? 1 : 0; }

static void emit(bench *b, const char *name, double value, const char *unit,
                 const char *anchor_key, bool lower_better) {
    printf("%s %.*f %s\n", name, decimals(unit), value, unit);
    if (b->nfigs < BENCH_MAX_FIGURES)
        b->figs[b->nfigs++] = (figure){name, unit, value, anchor_key, lower_better};
}

static void fail(bench *b, const char *name, const char *why) {
    fprintf(stderr, "coil bench: %s: %s\n", name, why);
    b->failed++;
}

/* Keeps the better of two measurements. */
static double better(double best, double v, bool lower_better, int rep) {
    if (rep == 0) return v;
    return lower_better ? (v < best ? v : best) : (v > best ? v : best);
}

/* ------------------------------------------------------------------ spawn_join */

static coil_result nop(void *arg) { return coil_ok(arg); }

/* Spawns and joins one task at a time. Returns seconds, or < 0 on error. */
static double spawn_join_once(long n) {
    coil_time t0 = coil_now();
    for (long i = 0; i < n; i++) {
        coil_task *t = coil_spawn(nop, NULL);
        if (!t) return -1;
        coil_join(t, NULL);
    }
    return (double)(coil_now() - t0) / 1e9;
}

static double spawn_join_batch_once(long n) {
    coil_task *batch[BENCH_BATCH];
    coil_time t0 = coil_now();
    for (long done = 0; done < n; done += BENCH_BATCH) {
        int k = 0;
        for (; k < BENCH_BATCH; k++)
            if (!(batch[k] = coil_spawn(nop, NULL))) break;
        for (int i = 0; i < k; i++) coil_join(batch[i], NULL);
        if (k < BENCH_BATCH) return -1;
    }
    return (double)(coil_now() - t0) / 1e9;
}

/* ------------------------------------------------------------------ yield_resume */

static coil_result yielder(void *arg) {
    long n = (long)(intptr_t)arg;
    for (long i = 0; i < n; i++)
        if (coil_yield()) return coil_fail(-ECANCELED);
    return coil_ok(NULL);
}

/* Two tasks, n yields each. Returns seconds for the 2n yields. */
static double yield_once(long n) {
    coil_time t0 = coil_now();
    coil_task *a = coil_spawn(yielder, (void *)(intptr_t)n);
    coil_task *b = coil_spawn(yielder, (void *)(intptr_t)n);
    if (!a || !b) {
        if (a) coil_join(a, NULL);
        return -1;
    }
    coil_join(a, NULL);
    coil_join(b, NULL);
    return (double)(coil_now() - t0) / 1e9;
}

/* ------------------------------------------------------------------ queue_items */

typedef struct queue_run {
    coil_queue q;
    long n;        /* items to send */
    long received; /* items the consumer got */
} queue_run;

static coil_result producer(void *arg) {
    queue_run *r = arg;
    for (long i = 1; i <= r->n; i++) {
        int err = coil_queue_put(&r->q, (void *)(intptr_t)i);
        if (err) return coil_fail(err);
    }
    coil_queue_close(&r->q);
    return coil_ok(NULL);
}

static coil_result consumer(void *arg) {
    queue_run *r = arg;
    void *item;
    int err;
    while ((err = coil_queue_get(&r->q, &item)) == 0) r->received++;
    return err == -EPIPE ? coil_ok(NULL) : coil_fail(err);
}

static double queue_once(long n) {
    queue_run r = {.n = n};
    if (coil_queue_init(&r.q, COIL_QUEUE_FIFO, BENCH_QUEUE_CAP)) return -1;
    coil_time t0 = coil_now();
    coil_task *c = coil_spawn(consumer, &r);
    coil_task *p = coil_spawn(producer, &r);
    coil_result rc = {0}, rp = {0};
    if (c) coil_join(c, &rc);
    if (p) coil_join(p, &rp);
    double dt = (double)(coil_now() - t0) / 1e9;
    coil_queue_destroy(&r.q);
    if (!c || !p || rc.err || rp.err || r.received != n) return -1;
    return dt;
}

/* ------------------------------------------------------------------ to_thread */

static void *echo(void *arg) { return arg; }

static double to_thread_once(long n) {
    coil_time t0 = coil_now();
    for (long i = 0; i < n; i++) {
        void *out = NULL;
        if (coil_to_thread(echo, (void *)(intptr_t)(i + 1), &out) ||
            out != (void *)(intptr_t)(i + 1))
            return -1;
    }
    return (double)(coil_now() - t0) / 1e9;
}

/* ------------------------------------------------------------------ timed figures */

typedef double (*bench_once)(long n);

/* Warm-up, then repetitions; the best rate (or lowest cost) is emitted.
 * `per` converts seconds for n units into the figure's value. */
static void timed(bench *b, const char *name, const char *unit, bench_once once, long n,
                  bool lower_better, double (*per)(double secs, long n),
                  const char *anchor_key) {
    if (!selected(b, name)) return;
    if (once(n / 10 > 0 ? n / 10 : 1) < 0) {
        fail(b, name, "a call or task failed");
        return;
    }
    double best = 0;
    coil_time start = coil_now();
    for (int rep = 0; rep < b->size.reps; rep++) {
        if (rep > 0 && coil_now() - start > b->size.budget) break;
        double secs = once(n);
        if (secs <= 0) {
            fail(b, name, "a call or task failed");
            return;
        }
        best = better(best, per(secs, n), lower_better, rep);
    }
    emit(b, name, best, unit, anchor_key, lower_better);
}

static double rate(double secs, long n) { return (double)n / secs; }
/* yield_once(n) makes 2n yields. */
static double ns_per_yield(double secs, long n) { return secs * 1e9 / (2.0 * (double)n); }

/* ------------------------------------------------------------------ /proc */

static long page_bytes(void) { return sysconf(_SC_PAGESIZE); }

/* Resident set in bytes (second field of /proc/self/statm), or -1. */
static long rss_bytes(void) {
    long size, resident = -1;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2) resident = -1;
    fclose(f);
    return resident < 0 ? -1 : resident * page_bytes();
}

/* A "Key:  N kB" line of /proc/self/status or /proc/meminfo, in bytes. */
static long proc_kib_field(const char *path, const char *key) {
    char line[256];
    long v = -1;
    size_t klen = strlen(key);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            char *end;
            long kib = strtol(line + klen + 1, &end, 10);
            if (end != line + klen + 1) v = kib * 1024;
            break;
        }
    }
    fclose(f);
    return v;
}

/* Lines of /proc/self/maps: one per memory mapping. */
static long count_maps(void) {
    char buf[2048]; /* tasks have small stacks */
    long lines = 0;
    size_t got;
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return -1;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0)
        for (size_t i = 0; i < got; i++) lines += buf[i] == '\n';
    fclose(f);
    return lines;
}

/* ------------------------------------------------------------------ parked */

typedef struct parked_run {
    coil_future gate; /* every task waits on it */
    long parked;      /* tasks that reached the wait */
} parked_run;

static coil_result park_on_gate(void *arg) {
    parked_run *p = arg;
    p->parked++;
    int err = coil_future_wait(&p->gate, NULL);
    return err ? coil_fail(err) : coil_ok(NULL);
}

/* Tasks we can park without risking the machine: a parked task costs about
 * one page of stack plus page tables; count two, and use at most half of
 * the memory available. */
static long parked_target(long wanted) {
    long avail = proc_kib_field("/proc/meminfo", "MemAvailable");
    long cost = 2 * page_bytes();
    if (avail > 0 && wanted > avail / 2 / cost) {
        long n = avail / 2 / cost;
        fprintf(stderr, "coil bench: parked: only %ld tasks fit in half the available memory\n",
                n);
        return n;
    }
    return wanted;
}

/* Spawns the tasks into `g` and lets them all park. Returns how many parked.
 * Spawning does not suspend, so it goes in batches with a yield after each:
 * a million spawns in one go would hold the loop long enough for the
 * watchdog to report a stall. */
static long park_all(coil_group *g, parked_run *p, long n) {
    long spawned = 0;
    bool ok = true;
    while (ok && spawned < n) {
        for (long i = 0; i < BENCH_PARK_BATCH && spawned < n && ok; i++)
            if ((ok = coil_group_spawn(g, park_on_gate, p) != NULL)) spawned++;
        if (coil_yield()) break; /* the new tasks run up to their wait */
    }
    while (p->parked < spawned) /* in case the run phase was cut short */
        if (coil_yield()) break;
    return spawned;
}

static void parked_figures(bench *b) {
    if (!selected(b, "parked")) return;
    long n = parked_target(b->size.parked);
    parked_run p = {.parked = 0};
    coil_future_init(&p.gate);
    coil_scope bound; /* teardown must not hang the benchmark */
    coil_scope_enter(&bound, coil_now() + COIL_SEC(120));
    coil_group g;
    coil_group_init(&g);

    long rss0 = rss_bytes(), pte0 = proc_kib_field("/proc/self/status", "VmPTE");
    coil_time t0 = coil_now();
    long parked = park_all(&g, &p, n);
    coil_time t1 = coil_now();
    long rss1 = rss_bytes(), pte1 = proc_kib_field("/proc/self/status", "VmPTE");
    long maps = count_maps();

    coil_future_resolve(&p.gate, NULL);
    int err = coil_group_wait(&g);
    coil_time t2 = coil_now();
    coil_group_destroy(&g);
    int expired = coil_scope_exit(&bound);

    if (parked < n) fprintf(stderr, "coil bench: parked: spawn failed after %ld tasks\n", parked);
    if (parked == 0 || rss0 < 0 || rss1 < 0) {
        fail(b, "parked", parked ? "cannot read /proc/self/statm" : "no task could be spawned");
        return;
    }
    double np = (double)parked;
    emit(b, "parked_tasks", np, "tasks", NULL, false);
    emit(b, "parked_rss", (double)(rss1 - rss0) / np, "bytes/task", "bytes_per_parked_task",
         true);
    if (pte0 >= 0 && pte1 >= 0)
        emit(b, "parked_pte", (double)(pte1 - pte0) / np, "bytes/task", NULL, true);
    if (maps >= 0) emit(b, "parked_maps", (double)maps, "mappings", NULL, true);
    emit(b, "parked_setup", (double)(t1 - t0) / np, "ns/task", NULL, true);
    emit(b, "parked_teardown", (double)(t2 - t1) / np, "ns/task", NULL, true);
    if (err || expired) fail(b, "parked teardown", coil_strerror(err ? err : expired));
}

/* ------------------------------------------------------------------ coil figures */

static coil_result bench_main(void *arg) {
    bench *b = arg;
    const bench_size *s = &b->size;
    timed(b, "spawn_join", "tasks/s", spawn_join_once, s->spawn, false, rate,
          "spawn_join_per_s");
    timed(b, "spawn_join_batch", "tasks/s", spawn_join_batch_once, s->spawn, false, rate,
          "spawn_join_per_s");
    timed(b, "yield_resume", "ns/yield", yield_once, s->yields, true, ns_per_yield,
          "yield_resume_ns");
    timed(b, "queue_items", "items/s", queue_once, s->items, false, rate, "queue_items_per_s");
    timed(b, "to_thread", "calls/s", to_thread_once, s->thread_calls, false, rate,
          "to_thread_roundtrips_per_s");
    parked_figures(b);
    return coil_ok(NULL);
}

/* ------------------------------------------------------------------ child processes */

/* Runs argv with stdout into `out` (NUL-terminated, truncated to cap - 1)
 * and stdin, and stderr too when `quiet`, on /dev/null. Kills the child
 * after `timeout_s` seconds. Returns the exit status (>= 0), or -1 if it
 * could not run, was killed or timed out. Never blocks past the limit. */
static int run_child(char *const argv[], bool quiet, int timeout_s, char *out, size_t cap) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC)) return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    if (quiet) posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int err = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (err) {
        close(fds[0]);
        return -1;
    }
    size_t len = 0;
    bool timed_out = false;
    coil_time deadline = coil_now() + COIL_SEC(timeout_s);
    for (;;) {
        coil_time left = deadline - coil_now();
        struct pollfd pfd = {fds[0], POLLIN, 0};
        int ready = left > 0 ? poll(&pfd, 1, (int)(left / 1000000) + 1) : 0;
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0) {
            timed_out = true;
            break;
        }
        char buf[512];
        ssize_t got = read(fds[0], buf, sizeof buf);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break; /* EOF: the child closed its stdout */
        size_t keep = (size_t)got < cap - 1 - len ? (size_t)got : cap - 1 - len;
        memcpy(out + len, buf, keep);
        len += keep;
    }
    out[len] = '\0';
    close(fds[0]);
    /* After EOF the child is exiting; give it until the deadline. */
    int status = 0;
    pid_t reaped = 0;
    while (!timed_out && (reaped = waitpid(pid, &status, WNOHANG)) == 0) {
        if (coil_now() > deadline) timed_out = true;
        else usleep(10000);
    }
    if (timed_out) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        return -1;
    }
    return reaped == pid && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ------------------------------------------------------------------ anchors */

static const char *python = "/usr/bin/python3";

/* asyncio_micro.py figures: name in its output, our name and unit. */
static const struct {
    const char *key;
    const char *name;
    const char *unit;
    bool lower_better;
} anchor_figures[] = {
    {"spawn_join_per_s", "spawn_join", "tasks/s", false},
    {"yield_resume_ns", "yield_resume", "ns/yield", true},
    {"queue_items_per_s", "queue_items", "items/s", false},
    {"to_thread_roundtrips_per_s", "to_thread", "calls/s", false},
    {"bytes_per_parked_task", "parked_rss", "bytes/task", true},
};
enum { ANCHOR_FIGURES = sizeof anchor_figures / sizeof anchor_figures[0] };

/* The best value of each anchor figure over its runs. */
typedef struct anchor_best {
    double value[ANCHOR_FIGURES];
    int runs[ANCHOR_FIGURES]; /* runs that reported it */
} anchor_best;

/* Finds asyncio_micro.py: COIL_ANCHORS_DIR, else next to the source tree. */
static bool find_anchor_script(char *path, size_t cap) {
    const char *dir = getenv("COIL_ANCHORS_DIR");
    int n = dir && *dir ? snprintf(path, cap, "%s/asyncio_micro.py", dir)
                        : snprintf(path, cap, "%s/../shared/anchors/asyncio_micro.py",
                                   COIL_SOURCE_DIR);
    return n > 0 && (size_t)n < cap && access(path, R_OK) == 0;
}

/* Prints the ratios of every coil figure that compares with `key`. */
static void print_ratios(const bench *b, const char *kind, const char *key, double anchor) {
    for (int i = 0; i < b->nfigs; i++) {
        const figure *f = &b->figs[i];
        if (!f->anchor_key || strcmp(f->anchor_key, key) != 0) continue;
        if (anchor <= 0 || f->value <= 0) continue;
        /* > 1 means coil is better: faster rate, or lower cost. */
        double ratio = f->lower_better ? anchor / f->value : f->value / anchor;
        printf("%s_vs_%s %.2f x\n", f->name, kind, ratio);
    }
}

/* Folds one "name value" line of the anchor's output into `best`. */
static void anchor_line(anchor_best *best, const char *line) {
    char key[64];
    double value;
    if (line[0] == '#' || sscanf(line, "%63s %lf", key, &value) != 2) return;
    for (int i = 0; i < ANCHOR_FIGURES; i++) {
        if (strcmp(key, anchor_figures[i].key) != 0) continue;
        best->value[i] = better(best->value[i], value, anchor_figures[i].lower_better,
                                best->runs[i]++);
    }
}

/* Runs one anchor once, folding its figures into `best`. */
static void run_anchor_once(const bench *b, const char *script, const char *kind,
                            anchor_best *best) {
    char n[32], out[BENCH_ANCHOR_OUT];
    snprintf(n, sizeof n, "%ld", b->size.anchor_n);
    char *argv[] = {(char *)python, (char *)script, (char *)kind, n, NULL};
    int status = run_child(argv, false, b->size.anchor_timeout, out, sizeof out);
    if (status != 0)
        fprintf(stderr, "coil bench: anchor %s %s; the figures it printed are kept\n", kind,
                status < 0 ? "timed out or could not run" : "failed");
    for (char *save = NULL, *line = strtok_r(out, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save))
        anchor_line(best, line);
}

/* Runs an anchor like coil's own figures (best of its runs), then prints
 * its figures and the ratios. */
static void run_anchor(const bench *b, const char *script, const char *kind) {
    anchor_best best = {{0}, {0}};
    for (int run = 0; run < b->size.anchor_runs; run++)
        run_anchor_once(b, script, kind, &best);
    for (int i = 0; i < ANCHOR_FIGURES; i++) {
        if (!best.runs[i]) continue;
        printf("%s_%s %.*f %s\n", kind, anchor_figures[i].name,
               decimals(anchor_figures[i].unit), best.value[i], anchor_figures[i].unit);
        print_ratios(b, kind, anchor_figures[i].key, best.value[i]);
    }
}

static void run_anchors(const bench *b) {
    char script[4096];
    if (!find_anchor_script(script, sizeof script)) {
        fprintf(stderr, "coil bench: anchors not found (set COIL_ANCHORS_DIR); skipped\n");
        return;
    }
    char out[64];
    char *probe[] = {(char *)python, "-c", "import uvloop", NULL};
    if (access(python, X_OK) != 0 || run_child(probe, true, 20, out, sizeof out) != 0) {
        fprintf(stderr, "coil bench: %s with uvloop not available; anchors skipped\n", python);
        return;
    }
    fprintf(stderr, "coil bench: anchors with n=%ld, best of %d runs; NAME_vs_ANCHOR > 1 "
                    "means coil is better (faster, or less memory)\n",
            b->size.anchor_n, b->size.anchor_runs);
    fflush(stdout);
    run_anchor(b, script, "asyncio");
    run_anchor(b, script, "uvloop");
}

/* ------------------------------------------------------------------ entry */

static int usage(void) {
    fprintf(stderr, "usage: coil bench runtime [--quick] [--no-anchors] [FIGURE...]\n");
    return 2;
}

int coil_bench_runtime(int argc, char **argv) {
    static bench b; /* static: it holds the figure table */
    b.size = full_size;
    b.anchors = true;
    b.select = calloc((size_t)argc + 1, sizeof *b.select);
    if (!b.select) return 1;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) b.size = quick_size;
        else if (strcmp(argv[i], "--no-anchors") == 0) b.anchors = false;
        else if (argv[i][0] == '-') {
            free(b.select);
            return usage();
        }
        else b.select[b.nselect++] = argv[i];
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    coil_result r = {0};
    int err = coil_run(bench_main, &b, &r);
    free(b.select);
    if (err || r.err) {
        fprintf(stderr, "coil bench: %s\n", coil_strerror(err ? err : r.err));
        return 1;
    }
    if (b.anchors) run_anchors(&b);
    return b.failed ? 1 : 0;
}
