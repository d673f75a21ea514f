/* tests/jobs/store/test_store_pg.c: what only the PostgreSQL store does:
 * several nodes on one database claim without overlap, a lapsed node's
 * jobs are rescued, the lost node's late outcome is refused (fencing), a
 * cancel reaches the node that runs the job, and coil_enqueue() enqueues
 * from SQL inside the caller's own transaction.
 * COIL_TEST_PG_ONLY: every case needs the test server. COIL_TEST_THREADS. */
#include "jobs/store/store_fixture.h"

enum { JOBS = 200, NODES = 2 };

/* A watcher's events, kept. */
typedef struct seen {
    coil__job_event ev[512];
    size_t n;
} seen;

static void keep_events(const coil__job_event *events, size_t n, void *arg) {
    seen *w = arg;
    for (size_t i = 0; i < n && w->n < 512; i++) w->ev[w->n++] = events[i];
}

/* Waits (10 s at most) until `w` holds an event for `id` that `pred` likes. */
static const coil__job_event *await_event(seen *w, const char *id,
                                          bool (*pred)(const coil__job_event *)) {
    coil_time until = coil_now() + COIL_SEC(10);
    for (;;) {
        for (size_t i = 0; i < w->n; i++)
            if (strcmp(w->ev[i].id, id) == 0 && pred(&w->ev[i])) return &w->ev[i];
        ASSERT(coil_now() < until);
        coil_sleep(COIL_MSEC(5));
    }
}

/* ------------------------------------------------------------------ claims */

typedef struct claimer {
    coil__store *s;
    char (*ids)[COIL__JOB_ID_SIZE]; /* every id claimed, by everyone */
    size_t *n;
} claimer;

static coil_result claim_all(void *arg) {
    claimer *c = arg;
    for (;;) {
        coil__job *got[16];
        size_t n = 0;
        int err = coil__store_peek(c->s, NULL, 0, got, 16, 0, &n, NULL);
        if (err == -EAGAIN) return coil_ok(NULL);
        ASSERT_EQ(err, 0);
        for (size_t i = 0; i < n; i++) {
            ASSERT_EQ(got[i]->state, COIL__JOB_RUNNING); /* a peek claims here */
            memcpy(c->ids[(*c->n)++], got[i]->id, COIL__JOB_ID_SIZE);
            ASSERT_EQ(coil__store_complete(c->s, got[i]->id, NULL), 0);
            coil__job_free(got[i]);
        }
    }
}

static int cmp_id(const void *a, const void *b) { return strcmp(a, b); }

static coil_result exclusive_main(void *arg) {
    const char *url = arg;
    coil__store *nodes[NODES];
    for (int i = 0; i < NODES; i++) nodes[i] = fx_open(url, NULL);
    for (int i = 0; i < JOBS; i++) {
        coil__enqueued e;
        ASSERT_EQ(fx_enqueue(nodes[i % NODES], "demo.cpu", i % 3, &e), 0);
    }
    static char ids[JOBS * 2][COIL__JOB_ID_SIZE];
    size_t n = 0;
    claimer c[NODES];
    coil_group g;
    coil_group_init(&g);
    for (int i = 0; i < NODES; i++) {
        c[i] = (claimer){.s = nodes[i], .ids = ids, .n = &n};
        coil_group_spawn(&g, claim_all, &c[i]);
    }
    ASSERT_EQ(coil_group_wait(&g), 0);
    coil_group_destroy(&g);
    /* Every job claimed once, by one node. */
    ASSERT_EQ(n, JOBS);
    qsort(ids, n, sizeof ids[0], cmp_id);
    for (size_t i = 1; i < n; i++) ASSERT(strcmp(ids[i - 1], ids[i]) != 0);
    uint64_t counts[COIL__JOB_NSTATES];
    ASSERT_EQ(coil__store_counts(nodes[0], counts), 0);
    ASSERT_EQ(counts[COIL__JOB_SUCCEEDED], JOBS);
    for (int i = 0; i < NODES; i++) ASSERT_EQ(coil__store_close(nodes[i]), 0);
    return coil_ok(NULL);
}

TEST(nodes_claim_each_job_once) {
    char *url = fx_tmpdir();
    RUN_MAIN(exclusive_main, url);
    fx_rmtree(url);
}

/* ------------------------------------------------------------------ rescue, fencing */

static bool is_lost(const coil__job_event *e) { return e->lost; }
static bool is_failed(const coil__job_event *e) { return e->state == COIL__JOB_FAILED; }
static bool is_flagged(const coil__job_event *e) { return e->cancel_requested; }
static bool is_queued(const coil__job_event *e) { return e->state == COIL__JOB_QUEUED; }

static coil_result rescue_main(void *arg) {
    const char *url = arg;
    coil__store_opts quick = {.lease_ms = 400, .heartbeat_ms = 100};
    coil__store *a = fx_open(url, &quick), *b = fx_open(url, &quick);
    static seen wa, wb; /* large: not on a task's stack */
    coil__store_watcher *watch_a, *watch_b;
    ASSERT_EQ(coil__store_watch(a, keep_events, &wa, &watch_a), 0);
    ASSERT_EQ(coil__store_watch(b, keep_events, &wb, &watch_b), 0);
    coil__enqueued e;
    ASSERT_EQ(fx_enqueue(a, "demo.sleep", 0, &e), 0);
    coil__job *j;
    ASSERT_EQ(fx_claim(a, "a", &j, NULL), 0);
    ASSERT_EQ(j->attempts, 1);
    coil__job_free(j);

    /* Node a is declared lost (as when it stays silent past its lease: the
     * cluster test pauses a real node for that): b rescues its job. */
    fx_pg_sql(url, "UPDATE coil_nodes SET lost = true"
             " WHERE id = (SELECT node FROM coil_jobs WHERE state = 1)");
    const coil__job_event *ev = await_event(&wb, e.id, is_failed);
    ASSERT_EQ(ev->attempts, 1);
    ASSERT_EQ(coil__store_get(b, e.id, &j), 0);
    ASSERT_EQ(j->state, COIL__JOB_FAILED);
    ASSERT(j->error_msg && strstr(j->error_msg, "node lost"));
    coil__job_free(j);
    /* a learns it lost the attempt, and is told to stop it. */
    await_event(&wa, e.id, is_lost);

    /* b runs it again; a's late outcome is refused and changes nothing. */
    ASSERT_EQ(fx_claim(b, "b", &j, NULL), 0);
    ASSERT_EQ(j->attempts, 2);
    coil__job_free(j);
    coil__job_result late = {.data = "zombie", .len = 6};
    ASSERT_EQ(coil__store_complete(a, e.id, &late), -ESTALE);
    coil__job_state st;
    ASSERT_EQ(coil__store_fail(a, e.id, NULL, &st), -ESTALE);
    ASSERT_EQ(coil__store_release(a, e.id, NULL), -ESTALE);
    coil__job_result mine = {.data = "rescuer", .len = 7};
    ASSERT_EQ(coil__store_complete(b, e.id, &mine), 0);
    ASSERT_EQ(coil__store_get(a, e.id, &j), 0);
    ASSERT_EQ(j->state, COIL__JOB_SUCCEEDED);
    ASSERT_STR_EQ((const char *)j->result, "rescuer");
    ASSERT_EQ(j->attempts, 2);
    coil__job_free(j);

    /* a serves on under a new node id: it claims and completes again. */
    coil__enqueued e2;
    ASSERT_EQ(fx_enqueue(b, "demo.cpu", 0, &e2), 0);
    ASSERT_EQ(fx_claim(a, "a", &j, NULL), 0);
    ASSERT_STR_EQ(j->id, e2.id);
    coil__job_free(j);
    ASSERT_EQ(coil__store_complete(a, e2.id, NULL), 0);

    coil__store_unwatch(watch_a);
    coil__store_unwatch(watch_b);
    ASSERT_EQ(coil__store_close(a), 0);
    ASSERT_EQ(coil__store_close(b), 0);
    return coil_ok(NULL);
}

TEST(lapsed_node_is_rescued_and_its_late_outcome_refused) {
    char *url = fx_tmpdir();
    RUN_MAIN(rescue_main, url);
    fx_rmtree(url);
}

/* A node that stops cleanly hands back what it still ran at once. */
static coil_result leave_main(void *arg) {
    const char *url = arg;
    coil__store *a = fx_open(url, NULL), *b = fx_open(url, NULL);
    coil__enqueued e;
    ASSERT_EQ(fx_enqueue(a, "demo.sleep", 0, &e), 0);
    coil__job *j;
    ASSERT_EQ(fx_claim(a, "a", &j, NULL), 0);
    coil__job_free(j);
    coil_time t0 = coil_now();
    ASSERT_EQ(coil__store_close(a), 0);
    ASSERT_EQ(coil__store_get(b, e.id, &j), 0);
    ASSERT_EQ(j->state, COIL__JOB_FAILED); /* due now, with its attempt counted */
    ASSERT_LE(j->run_at, coil__wall_ms());
    coil__job_free(j);
    ASSERT_LE(coil_now() - t0, COIL_SEC(5)); /* not a lease later */
    ASSERT_EQ(coil__store_close(b), 0);
    return coil_ok(NULL);
}

TEST(a_node_that_leaves_hands_back_its_jobs) {
    char *url = fx_tmpdir();
    RUN_MAIN(leave_main, url);
    fx_rmtree(url);
}

/* ------------------------------------------------------------------ notifications */

static coil_result cancel_main(void *arg) {
    const char *url = arg;
    coil__store *a = fx_open(url, NULL), *b = fx_open(url, NULL);
    static seen wa;
    coil__store_watcher *watch;
    ASSERT_EQ(coil__store_watch(a, keep_events, &wa, &watch), 0);
    coil__enqueued e;
    ASSERT_EQ(fx_enqueue(a, "demo.sleep", 0, &e), 0);
    coil__job *j;
    ASSERT_EQ(fx_claim(a, "a", &j, NULL), 0);
    coil__job_free(j);
    /* Cancelled on b; a runs it, and hears of it. */
    coil__job_state st;
    ASSERT_EQ(coil__store_cancel(b, e.id, &st), 0);
    ASSERT_EQ(st, COIL__JOB_RUNNING);
    const coil__job_event *ev = await_event(&wa, e.id, is_flagged);
    ASSERT_EQ(ev->state, COIL__JOB_RUNNING);
    ASSERT_EQ(coil__store_fail(a, e.id, NULL, &st), 0);
    ASSERT_EQ(st, COIL__JOB_CANCELLED);
    coil__store_unwatch(watch);
    ASSERT_EQ(coil__store_close(a), 0);
    ASSERT_EQ(coil__store_close(b), 0);
    return coil_ok(NULL);
}

TEST(cancel_reaches_the_node_that_runs_the_job) {
    char *url = fx_tmpdir();
    RUN_MAIN(cancel_main, url);
    fx_rmtree(url);
}

/* coil_enqueue() inside the caller's transaction: no job on ROLLBACK; on
 * COMMIT a job, and the nodes hear of it. */
static coil_result sql_main(void *arg) {
    const char *url = arg;
    coil__store *s = fx_open(url, NULL);
    static seen w;
    coil__store_watcher *watch;
    ASSERT_EQ(coil__store_watch(s, keep_events, &w, &watch), 0);
    fx_pg_sql(url, "BEGIN; SELECT coil_enqueue('demo.cpu', '{\"ms\": 1}'); ROLLBACK");
    ASSERT_EQ(fx_total(s), 0);
    PGconn *c = PQconnectdb(url);
    ASSERT(PQstatus(c) == CONNECTION_OK);
    PGresult *r = PQexec(c, "BEGIN; SELECT coil_enqueue('demo.cpu', '{\"ms\": 1}',"
                            " '{\"priority\": 4, \"max_attempts\": 2}')");
    ASSERT_EQ(PQresultStatus(r), PGRES_TUPLES_OK);
    char id[COIL__JOB_ID_SIZE];
    snprintf(id, sizeof id, "%s", PQgetvalue(r, 0, 0));
    ASSERT(coil__job_id_valid(id));
    PQclear(r);
    coil_sleep(COIL_MSEC(50));
    ASSERT_EQ(fx_total(s), 0); /* not before COMMIT */
    r = PQexec(c, "COMMIT");
    ASSERT_EQ(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    PQfinish(c);
    await_event(&w, id, is_queued);
    coil__job *j;
    ASSERT_EQ(fx_claim(s, "a", &j, NULL), 0);
    ASSERT_STR_EQ(j->id, id);
    ASSERT_STR_EQ(j->kind, "demo.cpu");
    ASSERT_EQ(j->priority, 4);
    ASSERT_EQ(j->max_attempts, 2);
    ASSERT_STR_EQ((const char *)j->payload, "{\"ms\": 1}");
    coil__job_free(j);
    /* Idempotent: the same key names the first job. */
    fx_pg_sql(url, "SELECT coil_enqueue('demo.cpu', '{}', '{\"idempotency_key\": \"k1\"}')");
    fx_pg_sql(url, "SELECT coil_enqueue('demo.cpu', '{}', '{\"idempotency_key\": \"k1\"}')");
    ASSERT_EQ(fx_total(s), 2);
    coil__store_unwatch(watch);
    ASSERT_EQ(coil__store_close(s), 0);
    return coil_ok(NULL);
}

TEST(sql_enqueue_is_part_of_the_callers_transaction) {
    char *url = fx_tmpdir();
    RUN_MAIN(sql_main, url);
    fx_rmtree(url);
}

/* A bad URL and an unreachable server fail at open, at once. */
static coil_result bad_main(void *arg) {
    (void)arg;
    coil__store *s = NULL;
    coil_time t0 = coil_now();
    ASSERT_EQ(coil__store_open("postgresql://x@/db?host=/nonexistent-dir", NULL, &s),
              -ECONNREFUSED);
    ASSERT_EQ(coil__store_open("postgresql://[bad", NULL, &s), -EINVAL);
    ASSERT(s == NULL);
    ASSERT_LE(coil_now() - t0, COIL_SEC(5));
    return coil_ok(NULL);
}

TEST(bad_urls_fail_at_open_with_a_reason) {
    coil_test_capture_stderr_begin();
    RUN_MAIN(bad_main, NULL);
    char *err = coil_test_capture_stderr_end();
    ASSERT(strstr(err, "cannot connect") != NULL);
    free(err);
}
