/* tests/jobs/service/test_limits.c: per-kind limits (coil_jobs_config.limits),
 * as the jobs themselves see them, on both stores; on PostgreSQL also across
 * two nodes sharing the store. COIL_TEST_BOTH_STORES, COIL_TEST_THREADS.
 *
 * The jobs count themselves in files of a scratch directory, under flock,
 * since they run in several worker processes: how many run now, and the
 * most that ever ran at once.
 */
#include "jobs/store/store_fixture.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ the counting job */

/* DIR/count holds "NOW MOST"; `delta` is +1 or -1. */
static int count(const char *dir, int delta) {
    char path[300];
    snprintf(path, sizeof path, "%s/count", dir);
    int fd = open(path, O_RDWR | O_CREAT, 0644);
    if (fd < 0) return -errno;
    flock(fd, LOCK_EX);
    char buf[64] = "";
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    int now = 0, most = 0;
    if (n > 0) sscanf(buf, "%d %d", &now, &most);
    now += delta;
    if (now > most) most = now;
    int len = snprintf(buf, sizeof buf, "%d %d\n", now, most);
    int err = ftruncate(fd, 0) || pwrite(fd, buf, (size_t)len, 0) != len ? -EIO : 0;
    flock(fd, LOCK_UN);
    close(fd);
    return err;
}

/* Payload: the directory. Counts itself in, works 40 ms, counts itself out. */
static int counted(const void *payload) {
    int err = count(payload, +1);
    if (err) return err;
    struct timespec ts = {0, 40 * 1000000L};
    nanosleep(&ts, NULL);
    return count(payload, -1);
}

static int limited(const void *payload, size_t len, coil_job_ctx *ctx) {
    (void)len, (void)ctx;
    return counted(payload);
}
COIL_JOB_HANDLER("l.limited", limited)

static int unlimited(const void *payload, size_t len, coil_job_ctx *ctx) {
    (void)len, (void)ctx;
    return counted(payload);
}
COIL_JOB_HANDLER("l.free", unlimited)

/* ------------------------------------------------------------------ helpers */

static const coil_job_limit LIMITS[] = {{"l.limited", 2}};

static coil_jobs *start_node(const char *where) {
    coil_jobs_config jc;
    coil_jobs_config_init(&jc);
    if (fx_pg()) jc.store = where;
    else jc.data_dir = where;
    jc.pool.workers = 4;
    jc.limits = LIMITS;
    jc.nlimits = 1;
    jc.stop_grace = -1;
    jc.log = false;
    coil_jobs *j = NULL;
    ASSERT_EQ(coil_jobs_start(&jc, &j), 0);
    return j;
}

typedef struct run_case {
    coil_jobs *nodes[2];
    size_t nnodes;
    const char *kind;
    char dir[64];
} run_case;

/* Enqueues 20 jobs of the case's kind, spread over its nodes, and waits for
 * them all to succeed. */
static coil_result run_twenty(void *arg) {
    run_case *c = arg;
    char ids[20][COIL_JOB_ID_SIZE];
    for (int i = 0; i < 20; i++)
        ASSERT_EQ(coil_jobs_enqueue(c->nodes[i % c->nnodes], c->kind, c->dir, strlen(c->dir),
                                    NULL, ids[i], NULL),
                  0);
    for (int i = 0; i < 20; i++) {
        const char *st = NULL;
        ASSERT_EQ(coil_jobs_wait(c->nodes[i % c->nnodes], ids[i], COIL_SEC(60), &st), 0);
        ASSERT_STR_EQ(st, "succeeded");
    }
    return coil_ok(NULL);
}

/* The most jobs that ran at once in the case's directory. */
static int most_at_once(const run_case *c) {
    char path[128], buf[64] = "";
    snprintf(path, sizeof path, "%s/count", c->dir);
    FILE *f = fopen(path, "r");
    ASSERT(f != NULL);
    ASSERT(fgets(buf, sizeof buf, f) != NULL);
    fclose(f);
    int now, most;
    ASSERT_EQ(sscanf(buf, "%d %d", &now, &most), 2);
    ASSERT_EQ(now, 0);
    return most;
}

static void run(run_case *c, const char *kind) {
    c->kind = kind;
    snprintf(c->dir, sizeof c->dir, "/tmp/coil-limits-XXXXXX");
    ASSERT(mkdtemp(c->dir) != NULL);
    RUN_MAIN(run_twenty, c);
}

static void clean(run_case *c) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", c->dir);
    ASSERT_EQ(system(cmd), 0);
}

/* ------------------------------------------------------------------ tests */

TEST(a_limited_kind_never_runs_more_than_its_limit) {
    char *where = fx_tmpdir();
    run_case c = {.nodes = {start_node(where)}, .nnodes = 1};
    run(&c, "l.limited");
    ASSERT_EQ(most_at_once(&c), 2); /* the limit, and all of it used */
    clean(&c);
    /* The same four workers run an unlimited kind more at once: the
     * count above is the limit's doing. */
    run(&c, "l.free");
    ASSERT_GE(most_at_once(&c), 3);
    clean(&c);
    coil_jobs_stop(c.nodes[0]);
    fx_rmtree(where);
}

TEST(a_limit_holds_across_nodes) {
    if (!fx_pg()) return; /* one process owns an SQLite store */
    char *where = fx_tmpdir();
    run_case c = {.nodes = {start_node(where), start_node(where)}, .nnodes = 2};
    run(&c, "l.limited");
    ASSERT_EQ(most_at_once(&c), 2);
    clean(&c);
    coil_jobs_stop(c.nodes[0]);
    coil_jobs_stop(c.nodes[1]);
    fx_rmtree(where);
}
