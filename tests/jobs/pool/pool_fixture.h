/* tests/jobs/pool/pool_fixture.h: what the pool's tests share: a job run in
 * a task of its own, a pool with the tests' graces, and the check that a
 * stop left no child process behind. */
#ifndef COIL_TESTS_POOL_FIXTURE_H
#define COIL_TESTS_POOL_FIXTURE_H

#include "test.h"

#include <errno.h>
#include <string.h>
#include <sys/wait.h>

/* One job run in its own task. */
typedef struct job_call {
    coil_pool *pool;
    const char *kind;
    const char *payload;
    coil_job_opts opts;
    coil_job_outcome out;
    int ret;
} job_call;

static inline coil_result run_call(void *arg) {
    job_call *c = arg;
    c->ret = coil_pool_run(c->pool, c->kind, c->payload, strlen(c->payload), &c->opts, &c->out);
    return coil_ok(NULL);
}

static inline coil_task *spawn_call(job_call *c) {
    coil_task *t = coil_spawn(run_call, c);
    ASSERT(t != NULL);
    return t;
}

/* A pool with `workers` workers and a short kill grace. The cancel grace
 * leaves a polling handler ample time to notice, even on a loaded machine. */
static inline coil_pool *start_pool(size_t workers, size_t max_queue) {
    coil_pool_config cfg = {.workers = workers, .max_queue = max_queue,
                            .cancel_grace = COIL_SEC(1), .kill_grace = COIL_MSEC(300)};
    coil_pool *p = NULL;
    ASSERT_EQ(coil_pool_start(&cfg, &p), 0);
    ASSERT(p != NULL);
    return p;
}

/* The stop left no child process behind, not even a zombie. */
static inline void assert_no_children(void) {
    ASSERT_EQ(waitpid(-1, NULL, WNOHANG), -1);
    ASSERT_EQ(errno, ECHILD);
}

#endif
