/* bench/bench_store.c: `coil bench store [--quick] [--dir DIR]`.
 *
 * The durable job store on its own, without HTTP: every write counted here
 * was acknowledged only after its commit was fsync'd, on the file system
 * of DIR (default: a fresh directory under $TMPDIR or /tmp, removed after).
 *
 * Figures, one per line as "name value unit":
 *
 *   store_enqueue_rate            64 tasks enqueue back to back        jobs/s
 *   store_commits_per_enqueue     fsync'd commits / enqueues, same run ratio
 *   store_enqueue_serial_rate     one task: each enqueue waits for a
 *                                 commit of its own                    jobs/s
 *   store_enqueue_rate_vs_serial  what group commit buys               x
 *   store_start_complete_rate     one task peeks jobs, 64 start and
 *                                 complete them (two durable writes
 *                                 per job, as the scheduler does)      jobs/s
 *   store_ids_rate                64 tasks take durable sequence ids   ids/s
 *
 * Each figure runs for 3 s (--quick: 1 s) on one loop; the writer thread
 * does the SQLite work. Tasks count what was acknowledged by the deadline.
 */
#include <coil/coil.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench.h"
#include "jobs/store/store.h"

enum { TASKS = 64 };

typedef struct store_bench {
    const char *dir;         /* data directory */
    coil_time run;           /* length of each figure */
    coil__store *s;
    coil_time deadline;      /* the running figure stops here */
    uint64_t done;           /* operations acknowledged */
    int err;                 /* first failure, 0 if none */
    int next_task;           /* numbers the tasks (lease owners) */
} store_bench;

static void note_err(store_bench *b, int err) {
    if (!b->err) b->err = err;
}

static coil_result enqueuer(void *arg) {
    store_bench *b = arg;
    static const char payload[] = "{\"ms\":10}";
    coil__job_spec spec = {.kind = "demo.cpu", .payload = payload,
                           .payload_len = sizeof payload - 1};
    while (coil_now() < b->deadline && !b->err) {
        coil__enqueued e;
        int err = coil__store_enqueue(b->s, &spec, &e);
        if (err) note_err(b, err);
        else b->done++;
    }
    return coil_ok(NULL);
}

/* The scheduler's way to take jobs, without the pool: one task peeks up to
 * TASKS runnable jobs at a time, passing over those still in flight, and
 * TASKS runners start and complete them. */
typedef struct take_bench {
    store_bench *b;
    coil_queue ready;        /* peeked jobs for the runners */
    uint64_t inflight[TASKS]; /* seqs peeked and not finished, ascending */
    size_t ninflight;
    coil_event room;         /* set when a runner finishes one */
} take_bench;

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void inflight_remove(take_bench *t, uint64_t seq) {
    for (size_t i = 0; i < t->ninflight; i++) {
        if (t->inflight[i] != seq) continue;
        memmove(&t->inflight[i], &t->inflight[i + 1], (t->ninflight - i - 1) * sizeof seq);
        t->ninflight--;
        break;
    }
    coil_event_set(&t->room);
}

static coil_result peeker(void *arg) {
    take_bench *t = arg;
    store_bench *b = t->b;
    coil__job *jobs[TASKS];
    while (coil_now() < b->deadline && !b->err) {
        if (t->ninflight == TASKS) {
            coil_event_clear(&t->room);
            coil_event_wait(&t->room);
            continue;
        }
        size_t n = 0;
        int err = coil__store_peek(b->s, t->inflight, t->ninflight, jobs, TASKS - t->ninflight,
                                   0, &n, NULL);
        if (err == -EAGAIN) break; /* ran out of jobs */
        if (err) {
            note_err(b, err);
            break;
        }
        for (size_t i = 0; i < n; i++) {
            t->inflight[t->ninflight++] = jobs[i]->seq;
            (void)coil_queue_put(&t->ready, jobs[i]);
        }
        qsort(t->inflight, t->ninflight, sizeof t->inflight[0], cmp_u64);
    }
    coil_queue_close(&t->ready);
    return coil_ok(NULL);
}

static coil_result runner(void *arg) {
    take_bench *t = arg;
    store_bench *b = t->b;
    char owner[32];
    snprintf(owner, sizeof owner, "bench:%d", b->next_task++);
    void *item;
    while (coil_queue_get(&t->ready, &item) == 0) {
        coil__job *j = item;
        coil__job_result res = {.data = "{}", .len = 2, .content_type = "application/json"};
        int err = coil__store_start(b->s, j->id, owner, NULL);
        if (!err) err = coil__store_complete(b->s, j->id, &res);
        if (err) note_err(b, err);
        else if (coil_now() < b->deadline) b->done++;
        inflight_remove(t, j->seq);
        coil__job_free(j);
    }
    return coil_ok(NULL);
}

/* Jobs started and completed per second. Returns -1 on failure. */
static double measure_take(store_bench *b) {
    take_bench t = {.b = b};
    int qerr = coil_queue_init(&t.ready, COIL_QUEUE_FIFO, TASKS);
    if (qerr) {
        note_err(b, qerr);
        return -1;
    }
    coil_event_init(&t.room);
    b->done = 0;
    coil_time t0 = coil_now();
    b->deadline = t0 + b->run;
    coil_group g;
    coil_group_init(&g);
    coil_group_spawn(&g, peeker, &t);
    for (int i = 0; i < TASKS; i++) coil_group_spawn(&g, runner, &t);
    int err = coil_group_wait(&g);
    coil_group_destroy(&g);
    coil_queue_destroy(&t.ready);
    if (err) note_err(b, err);
    coil_time end = coil_now() < b->deadline ? coil_now() : b->deadline;
    double secs = (double)(end - t0) / 1e9;
    return b->err ? -1 : (double)b->done / secs;
}

static coil_result id_taker(void *arg) {
    store_bench *b = arg;
    while (coil_now() < b->deadline && !b->err) {
        uint64_t v;
        int err = coil__store_next_id(b->s, &v);
        if (err) note_err(b, err);
        else b->done++;
    }
    return coil_ok(NULL);
}

/* Runs `ntasks` copies of fn for the figure's time. Returns operations per
 * second, or -1 on failure. */
static double measure(store_bench *b, coil_fn fn, int ntasks) {
    b->done = 0;
    coil_time t0 = coil_now();
    b->deadline = t0 + b->run;
    coil_group g;
    coil_group_init(&g);
    for (int i = 0; i < ntasks; i++) coil_group_spawn(&g, fn, b);
    int err = coil_group_wait(&g);
    coil_group_destroy(&g);
    if (err) note_err(b, err);
    double secs = (double)(coil_now() - t0) / 1e9;
    return b->err ? -1 : (double)b->done / secs;
}

static coil_result bench_main(void *arg) {
    store_bench *b = arg;
    int err = coil__store_open(b->dir, NULL, &b->s);
    if (err) return coil_fail(err);

    coil__store_stats st0, st1;
    coil__store_get_stats(b->s, &st0);
    double rate = measure(b, enqueuer, TASKS);
    coil__store_get_stats(b->s, &st1);
    if (rate < 0) goto out;
    printf("store_enqueue_rate %.0f jobs/s\n", rate);
    uint64_t writes = st1.writes - st0.writes;
    printf("store_commits_per_enqueue %.4f ratio\n",
           writes ? (double)(st1.commits - st0.commits) / (double)writes : 0.0);
    fflush(stdout);

    double serial = measure(b, enqueuer, 1);
    if (serial < 0) goto out;
    printf("store_enqueue_serial_rate %.0f jobs/s\n", serial);
    printf("store_enqueue_rate_vs_serial %.1f x\n", serial > 0 ? rate / serial : 0.0);
    fflush(stdout);

    double cc = measure_take(b);
    if (cc < 0) goto out;
    printf("store_start_complete_rate %.0f jobs/s\n", cc);
    fflush(stdout);

    double ids = measure(b, id_taker, TASKS);
    if (ids < 0) goto out;
    printf("store_ids_rate %.0f ids/s\n", ids);
out:
    err = coil__store_close(b->s);
    if (b->err) return coil_fail(b->err);
    return err ? coil_fail(err) : coil_ok(NULL);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int coil_bench_store(int argc, char **argv) {
    store_bench b = {.run = COIL_SEC(3)};
    const char *dir = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            b.run = COIL_SEC(1);
        } else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else {
            fprintf(stderr, "usage: coil bench store [--quick] [--dir DIR]\n");
            return 2;
        }
    }
    char tmp[512];
    if (!dir) {
        const char *base = getenv("TMPDIR");
        snprintf(tmp, sizeof tmp, "%s/coil-bench-store-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(tmp)) {
            perror("coil bench store: mkdtemp");
            return 1;
        }
    }
    b.dir = dir ? dir : tmp;
    coil_result r;
    int err = coil_run(bench_main, &b, &r);
    if (!err) err = r.err;
    if (!dir) nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (err) {
        fprintf(stderr, "coil bench store: %s\n", coil_strerror(err));
        return 1;
    }
    return 0;
}
