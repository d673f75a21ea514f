/* next_id: seed 002's get_next_id(), twice: as a counter on the loop, and
 * as coil's durable sequence (GET /ids/next).
 *
 *     ./next_id [DATA_DIR]            (default: ./ids-data)
 *
 * 1. On one loop, code between two suspension points runs without any other
 *    task in between: `return ++next;` needs no lock, however many tasks
 *    call it. Put a suspension point inside (read, await, write) and two
 *    tasks read the same value: duplicates. The rule is per loop: tasks on
 *    two loops (two threads) do run at once, and a shared counter then
 *    needs an atomic or a lock like any threaded C.
 * 2. A counter in memory starts again at 1 after a restart. The job store's
 *    sequence does not: each value is on disk before it is handed out, so
 *    no restart repeats one. Run this twice: the second run goes on where
 *    the first stopped.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep under -std=c11 */
#include <coil/coil.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { TASKS = 100, DURABLE = 5 };

/* ------------------------------------------------------------------ on the loop */

static uint64_t next;

static uint64_t get_next_id(void) { return ++next; } /* atomic: no suspension inside */

static uint64_t get_next_id_badly(void) {
    uint64_t id = next + 1;
    coil_yield(); /* an await between the read and the write */
    next = id;
    return id;
}

typedef struct taker_arg {
    uint64_t (*get)(void); /* which get_next_id */
    uint64_t id;           /* what it gave this task */
} taker_arg;

static coil_result taker(void *arg) {
    taker_arg *t = arg;
    coil_yield(); /* let every task start first */
    t->id = t->get();
    return coil_ok(NULL);
}

/* How many of the TASKS ids repeat an earlier one. */
static int run_takers(uint64_t (*get)(void)) {
    next = 0;
    static taker_arg args[TASKS];
    coil_group g;
    coil_group_init(&g);
    for (int i = 0; i < TASKS; i++) {
        args[i] = (taker_arg){.get = get};
        coil_group_spawn(&g, taker, &args[i]);
    }
    coil_group_wait(&g);
    coil_group_destroy(&g);
    int dups = 0;
    for (int i = 0; i < TASKS; i++)
        for (int k = 0; k < i; k++)
            if (args[k].id == args[i].id) {
                dups++;
                break;
            }
    return dups;
}

static coil_result counter_main(void *arg) {
    (void)arg;
    printf("on the loop, ++next: %d duplicates among %d tasks\n", run_takers(get_next_id), TASKS);
    printf("with a yield between read and write: %d duplicates\n",
           run_takers(get_next_id_badly));
    return coil_ok(NULL);
}

/* ------------------------------------------------------------------ durable */

static coil_result take_durable(void *arg) {
    int port = *(int *)arg;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ids/next", port);
    coil_http_client_response r;
    int err = coil_http_get(url, &r);
    if (err) return coil_fail(err);
    json_t *doc = NULL;
    err = coil_http_client_status_error(&r);
    if (!err) err = coil_http_client_json(&r, (void **)&doc, NULL, 0);
    coil_http_client_response_free(&r);
    if (err) return coil_fail(err);
    intptr_t id = (intptr_t)json_integer_value(json_object_get(doc, "id"));
    json_decref(doc);
    return coil_ok((void *)id);
}

static coil_result durable_main(void *arg) {
    coil_call calls[DURABLE];
    for (int i = 0; i < DURABLE; i++) calls[i] = (coil_call){.fn = take_durable, .arg = arg};
    int err = coil_gather(calls, DURABLE); /* five at once */
    if (err) return coil_fail(err);
    intptr_t lo = INTPTR_MAX, hi = 0;
    bool repeated = false;
    for (int i = 0; i < DURABLE; i++) {
        intptr_t v = (intptr_t)calls[i].result.value;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
        for (int k = 0; k < i; k++) repeated = repeated || (intptr_t)calls[k].result.value == v;
    }
    printf("durable ids: %ld to %ld, %s\n", (long)lo, (long)hi,
           repeated ? "SOME REPEATED" : "each once");
    return coil_ok(NULL);
}

static void *serve(void *arg) {
    coil_http_server_run(arg);
    return NULL;
}

int main(int argc, char **argv) {
    if (coil_run(counter_main, NULL, NULL) != 0) return 1;
    coil_jobs_config jc;
    coil_jobs_config_init(&jc);
    jc.data_dir = argc > 1 ? argv[1] : "./ids-data";
    jc.no_workers = true; /* the sequence only: no worker processes */
    jc.log = false;
    coil_jobs *jobs;
    if (coil_jobs_start(&jc, &jobs) != 0) return 1;
    coil_http_config cfg;
    coil_http_config_init(&cfg);
    cfg.host = "127.0.0.1";
    cfg.port = 0;
    cfg.workers = 1;
    cfg.access_log = false;
    cfg.handle_signals = false;
    coil_http_server *srv = coil_http_server_new(&cfg);
    if (!srv || coil_jobs_mount(jobs, srv) != 0) return 1;
    pthread_t t;
    if (pthread_create(&t, NULL, serve, srv) != 0) return 1;
    int port;
    while ((port = coil_http_server_port(srv)) == -EAGAIN)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    coil_result r = {0};
    int err = port > 0 ? coil_run(durable_main, &port, &r) : port;
    coil_http_server_stop(srv);
    pthread_join(t, NULL);
    coil_http_server_free(srv);
    coil_jobs_stop(jobs);
    return err || r.err ? 1 : 0;
}
