/* tests/faults/test_faults_runtime.c: the runtime under allocation failure
 * (COIL_TEST_ALLOC_FAULTS): a loop, tasks spawned and joined, a group, a
 * queue between a producer and a consumer, task-locals inherited by a
 * child, a call on the thread pool, gather. Each step hands its error on;
 * the sweep asserts that every run ends cleanly. */
#include "faults/alloc_faults.h"
#include "test.h"

#include <coil/coil.h>
#include <errno.h>

COIL_LOCAL_KEY(user_key, "user");

static coil_result child(void *arg) {
    int *n = arg;
    int err = coil_sleep(COIL_MSEC(1));
    if (err) return coil_fail(err);
    (*n)++;
    return coil_ok(NULL);
}

static coil_result reads_local(void *arg) {
    (void)arg;
    return coil_ok(coil_local_get(&user_key));
}

static coil_result producer(void *arg) {
    coil_queue *q = arg;
    static int items[16];
    for (int i = 0; i < 16; i++) {
        int err = coil_queue_put(q, &items[i]);
        if (err) {
            coil_queue_close(q);
            return coil_fail(err);
        }
    }
    coil_queue_close(q);
    return coil_ok(NULL);
}

static void *on_thread(void *arg) { return arg; }

/* Joins t (NULL: its spawn failed, with errno set). */
static int join_of(coil_task *t, coil_result *r) {
    if (!t) return errno ? -errno : -ENOMEM;
    int err = coil_join(t, r);
    return err ? err : r->err;
}

static coil_result runtime_main(void *arg) {
    (void)arg;
    int n = 0;
    coil_result r;
    /* Tasks. */
    for (int i = 0; i < 4; i++) {
        int err = join_of(coil_spawn(child, &n), &r);
        if (err) return coil_fail(err);
    }
    /* A group. */
    coil_group g;
    coil_group_init(&g);
    int err = 0;
    for (int i = 0; i < 4 && !err; i++)
        if (!coil_group_spawn(&g, child, &n)) err = -ENOMEM;
    int werr = coil_group_wait(&g);
    coil_group_destroy(&g);
    if (err || werr) return coil_fail(err ? err : werr);
    /* A queue. */
    coil_queue q;
    if ((err = coil_queue_init(&q, COIL_QUEUE_FIFO, 4)) != 0) return coil_fail(err);
    coil_task *p = coil_spawn(producer, &q);
    int got = 0;
    void *item;
    while (p && coil_queue_get(&q, &item) == 0) got++;
    err = join_of(p, &r);
    coil_queue_destroy(&q);
    if (err) return coil_fail(err);
    if (got != 16) return coil_fail(-EIO);
    /* Task-locals, inherited by a child. */
    static char user[] = "ada";
    if ((err = coil_local_set(&user_key, user)) != 0) return coil_fail(err);
    if ((err = join_of(coil_spawn(reads_local, NULL), &r)) != 0) return coil_fail(err);
    if (r.value != user) return coil_fail(-EIO);
    /* The thread pool. */
    void *back = NULL;
    if ((err = coil_to_thread(on_thread, &n, &back)) != 0) return coil_fail(err);
    if (back != &n) return coil_fail(-EIO);
    /* Gather. */
    coil_call calls[3];
    for (int i = 0; i < 3; i++) calls[i] = (coil_call){.fn = child, .arg = &n};
    if ((err = coil_gather(calls, 3)) != 0) return coil_fail(err);
    return n == 11 ? coil_ok(NULL) : coil_fail(-EIO);
}

static int runtime_scenario(void *arg) {
    coil_result r;
    int err = coil_run(runtime_main, arg, &r);
    return err ? err : r.err;
}

TEST(runtime_ends_cleanly_whichever_allocation_fails) {
    coil_faults_sweep("runtime", runtime_scenario, NULL);
}
