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
 *   store_claim_complete_rate     64 tasks claim a job and complete it
 *                                 (two durable writes per job)         jobs/s
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

static coil_result claimer(void *arg) {
    store_bench *b = arg;
    char owner[32];
    snprintf(owner, sizeof owner, "bench:%d", b->next_task++);
    while (coil_now() < b->deadline && !b->err) {
        coil__job *j = NULL;
        int err = coil__store_claim(b->s, owner, &j, NULL);
        if (err == -EAGAIN) break; /* ran out of jobs */
        if (err) {
            note_err(b, err);
            break;
        }
        coil__job_result res = {.data = "{}", .len = 2, .content_type = "application/json"};
        err = coil__store_complete(b->s, j->id, &res);
        coil__job_free(j);
        if (err) note_err(b, err);
        else b->done++;
    }
    return coil_ok(NULL);
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

    double cc = measure(b, claimer, TASKS);
    if (cc < 0) goto out;
    printf("store_claim_complete_rate %.0f jobs/s\n", cc);
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
