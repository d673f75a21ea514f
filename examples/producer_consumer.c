/* producer_consumer: two producers and three consumers share a bounded
 * coil_queue. Producers work in bursts, faster than the consumers can keep
 * up, with a pause between bursts.
 *
 *  - Back-pressure: the queue holds 4 jobs. A producer that finds it full is
 *    suspended in coil_queue_put() until a consumer makes room.
 *  - Shutdown: when both producers are done, main closes the queue. The
 *    consumers drain what is left, then coil_queue_get() returns -EPIPE and
 *    they return. No sentinel values, no counting.
 *  - Timeouts: the "watcher" consumer waits at most 50 ms for each job with
 *    coil_queue_get_timeout(); during the pause between bursts the
 *    queue runs dry, so the watcher sees -ETIMEDOUT and simply waits again.
 */
#include <coil/coil.h>
#include <stdint.h>
#include <stdio.h>

enum { BURSTS = 2, JOBS_PER_BURST = 4, QUEUE_CAPACITY = 4 };

static coil_queue jobs; /* every task of this loop may use it */

/* Jobs are small integers passed as pointers: 101 is producer 1's job 1. */
static coil_result producer(void *arg) {
    int id = *(int *)arg;
    for (int k = 1; k <= BURSTS * JOBS_PER_BURST; k++) {
        int job = id * 100 + k;
        if (coil_queue_len(&jobs) == QUEUE_CAPACITY)
            printf("producer %d  queue full, waiting\n", id);
        int err = coil_queue_put(&jobs, (void *)(intptr_t)job); /* waits while full */
        if (err) return coil_fail(err);
        /* A job handed straight to a waiting consumer never sits in the
         * queue, so the length shown may be 0. */
        printf("producer %d  put job %d  (queue: %zu/%d)\n", id, job, coil_queue_len(&jobs),
               QUEUE_CAPACITY);
        if (k % JOBS_PER_BURST == 0 && k < BURSTS * JOBS_PER_BURST)
            coil_sleep(COIL_MSEC(300)); /* pause between bursts */
    }
    return coil_ok(NULL);
}

/* Takes jobs until the queue is closed and empty. */
static coil_result consumer(void *arg) {
    const char *name = arg;
    void *item;
    int err;
    while ((err = coil_queue_get(&jobs, &item)) == 0) {
        printf("            %-8s got job %d\n", name, (int)(intptr_t)item);
        coil_sleep(COIL_MSEC(40)); /* "work" on the job */
    }
    return err == -EPIPE ? coil_ok(NULL) : coil_fail(err); /* -EPIPE: closed */
}

/* Like consumer, but never waits more than 50 ms at a time for a job. */
static coil_result watcher(void *arg) {
    void *item;
    for (;;) {
        int err = coil_queue_get_timeout(&jobs, &item, COIL_MSEC(50));
        if (err == -ETIMEDOUT) {
            printf("            watcher  nothing for 50 ms, waiting again\n");
            continue;
        }
        if (err == -EPIPE) return coil_ok(NULL);
        if (err) return coil_fail(err);
        printf("            watcher  got job %d\n", (int)(intptr_t)item);
        coil_sleep(COIL_MSEC(40));
    }
}

static coil_result shop_main(void *arg) {
    static int ids[] = {1, 2};
    if (coil_queue_init(&jobs, COIL_QUEUE_FIFO, QUEUE_CAPACITY)) return coil_fail(-ENOMEM);

    /* Groups own their tasks: coil_group_wait() returns when all are done.
     * They nest like scopes: the inner group (producers) is waited first. */
    coil_group consumers, producers;
    coil_group_init(&consumers);
    coil_group_spawn(&consumers, consumer, "alice");
    coil_group_spawn(&consumers, consumer, "bob");
    coil_group_spawn(&consumers, watcher, NULL);

    coil_group_init(&producers);
    coil_group_spawn(&producers, producer, &ids[0]);
    coil_group_spawn(&producers, producer, &ids[1]);
    int err = coil_group_wait(&producers);
    coil_group_destroy(&producers);

    printf("producers done: closing the queue (%zu jobs still inside)\n",
           coil_queue_len(&jobs));
    coil_queue_close(&jobs); /* consumers drain the rest, then see -EPIPE */
    int cerr = coil_group_wait(&consumers);
    coil_group_destroy(&consumers);
    coil_queue_destroy(&jobs);
    printf("all consumers finished\n");
    err = err ? err : cerr;
    return err ? coil_fail(err) : coil_ok(NULL);
}

int main(void) {
    coil_result r = {0};
    int err = coil_run(shop_main, NULL, &r);
    if (err || r.err) fprintf(stderr, "error: %s\n", coil_strerror(err ? err : r.err));
    return err || r.err ? 1 : 0;
}
