/* tests/jobs/store/test_store_sched.c: the store operations the scheduler claims
 * with: peek (read runnable jobs in claim order, passing over held ones),
 * start (one job by id to running), release (give a started job back
 * without counting the attempt). The writer is a thread: COIL_TEST_THREADS.
 * This is SQLite's way to claim; test_store_pg.c tests PostgreSQL's. */
#include "jobs/store/store_fixture.h"

static coil__job *get_job(coil__store *s, const char *id) {
    coil__job *j = NULL;
    ASSERT_EQ(coil__store_get(s, id, &j), 0);
    return j;
}

/* Counts the RUNNING and SUCCEEDED events a watcher sees. */
static void count_states(const coil__job_event *ev, size_t n, void *arg) {
    int **counts = arg;
    for (size_t i = 0; i < n; i++) {
        if (ev[i].state == COIL__JOB_RUNNING) (*counts[0])++;
        if (ev[i].state == COIL__JOB_SUCCEEDED) (*counts[1])++;
    }
}

static coil_result peek_main(void *arg) {
    char *dir = arg;
    coil__store *s = fx_open(dir, NULL);
    int prios[] = {0, 5, 1, 5, -3};
    coil__enqueued e[5];
    for (int i = 0; i < 5; i++) ASSERT_EQ(fx_enqueue(s, "demo.cpu", prios[i], &e[i]), 0);

    /* Claim order: priority, then age; nothing changes. */
    coil__job *got[8];
    size_t n = 0;
    ASSERT_EQ(coil__store_peek(s, NULL, 0, got, 8, 0, &n, NULL), 0);
    ASSERT_EQ(n, 5);
    int want[] = {1, 3, 2, 0, 4};
    uint64_t seqs[5];
    for (size_t i = 0; i < n; i++) {
        ASSERT_STR_EQ(got[i]->id, e[want[i]].id);
        ASSERT_EQ(got[i]->state, COIL__JOB_QUEUED);
        ASSERT_EQ(got[i]->attempts, 0);
        ASSERT_STR_EQ((const char *)got[i]->payload, "{\"n\":1}");
        seqs[i] = got[i]->seq;
        coil__job_free(got[i]);
    }
    ASSERT_EQ(fx_state(s, e[1].id), COIL__JOB_QUEUED);

    /* A byte budget stops the read once the payloads reach it (7 bytes
     * each here), and never stops it before the first job. */
    ASSERT_EQ(coil__store_peek(s, NULL, 0, got, 8, 10, &n, NULL), 0);
    ASSERT_EQ(n, 2);
    coil__job_free(got[0]);
    coil__job_free(got[1]);
    ASSERT_EQ(coil__store_peek(s, NULL, 0, got, 8, 1, &n, NULL), 0);
    ASSERT_EQ(n, 1);
    ASSERT_STR_EQ(got[0]->id, e[1].id);
    coil__job_free(got[0]);

    /* Held jobs are passed over; `max` bounds the answer. */
    uint64_t skip[2] = {seqs[0], seqs[1]}; /* jobs 1 and 3 */
    if (skip[0] > skip[1]) {
        uint64_t t = skip[0];
        skip[0] = skip[1];
        skip[1] = t;
    }
    ASSERT_EQ(coil__store_peek(s, skip, 2, got, 2, 0, &n, NULL), 0);
    ASSERT_EQ(n, 2);
    ASSERT_STR_EQ(got[0]->id, e[2].id);
    ASSERT_STR_EQ(got[1]->id, e[0].id);
    coil__job_free(got[0]);
    coil__job_free(got[1]);

    /* Everything held: nothing runnable, and no later run_at. */
    int64_t next = -1;
    qsort(seqs, 5, sizeof seqs[0], fx_cmp_u64);
    ASSERT_EQ(coil__store_peek(s, seqs, 5, got, 8, 0, &n, &next), -EAGAIN);
    ASSERT_EQ(n, 0);
    ASSERT_EQ(next, 0);

    /* A delayed job is not runnable; peek says when it will be. */
    coil__job_spec later = {.kind = "demo.cpu", .run_at = coil__wall_ms() + 60000};
    coil__enqueued d;
    ASSERT_EQ(coil__store_enqueue(s, &later, &d), 0);
    ASSERT_EQ(coil__store_peek(s, seqs, 5, got, 8, 0, &n, &next), -EAGAIN);
    ASSERT_EQ(next, later.run_at);

    /* Delayed jobs of a higher priority are passed over until due, and the
     * earliest run_at of any level is the answer. */
    coil__job_spec urgent_later = {.kind = "demo.cpu", .priority = 9,
                                   .run_at = coil__wall_ms() + 30000};
    ASSERT_EQ(coil__store_enqueue(s, &urgent_later, &d), 0);
    coil__enqueued e6;
    ASSERT_EQ(fx_enqueue(s, "demo.cpu", 2, &e6), 0);
    ASSERT_EQ(coil__store_peek(s, seqs, 5, got, 8, 0, &n, &next), 0);
    ASSERT_EQ(n, 1);
    ASSERT_STR_EQ(got[0]->id, e6.id);
    uint64_t all[6];
    memcpy(all, seqs, sizeof seqs);
    all[5] = got[0]->seq;
    coil__job_free(got[0]);
    qsort(all, 6, sizeof all[0], fx_cmp_u64);
    ASSERT_EQ(coil__store_peek(s, all, 6, got, 8, 0, &n, &next), -EAGAIN);
    ASSERT_EQ(next, urgent_later.run_at);
    ASSERT_EQ(coil__store_close(s), 0);
    return coil_ok(NULL);
}

TEST(peek_reads_in_claim_order_and_skips_held) {
    char *dir = fx_tmpdir();
    RUN_MAIN(peek_main, dir);
    fx_rmtree(dir);
}

static coil_result start_main(void *arg) {
    char *dir = arg;
    coil__store *s = fx_open(dir, NULL);
    coil__enqueued a, b;
    ASSERT_EQ(fx_enqueue(s, "demo.cpu", 0, &a), 0);
    ASSERT_EQ(fx_enqueue(s, "demo.cpu", 0, &b), 0);

    int attempts = 0;
    ASSERT_EQ(coil__store_start(s, a.id, "pid:7", &attempts), 0);
    ASSERT_EQ(attempts, 1);
    coil__job *j = get_job(s, a.id);
    ASSERT_EQ(j->state, COIL__JOB_RUNNING);
    ASSERT_STR_EQ(j->lease_owner, "pid:7");
    ASSERT_GE(j->started, j->created);
    coil__job_free(j);
    /* Started once only; unknown and malformed ids are not found. */
    ASSERT_EQ(coil__store_start(s, a.id, "pid:7", NULL), -EINVAL);
    ASSERT_EQ(coil__store_start(s, "0123456789abcdef0123456789abcdef", "pid:7", NULL), -ENOENT);
    ASSERT_EQ(coil__store_start(s, "nope", "pid:7", NULL), -ENOENT);

    /* A job cancelled before its start cannot start. */
    ASSERT_EQ(coil__store_cancel(s, b.id, NULL), 0);
    ASSERT_EQ(coil__store_start(s, b.id, "pid:7", NULL), -EINVAL);
    ASSERT_EQ(fx_state(s, b.id), COIL__JOB_CANCELLED);

    /* A failed job (waiting for its retry) starts again, attempt 2. */
    coil__job_error err = {.message = "boom", .exit_status = -1};
    coil__job_state st;
    ASSERT_EQ(coil__store_fail(s, a.id, &err, &st), 0);
    ASSERT_EQ(st, COIL__JOB_FAILED);
    ASSERT_EQ(coil__store_start(s, a.id, "pid:7", &attempts), 0);
    ASSERT_EQ(attempts, 2);
    ASSERT_EQ(coil__store_close(s), 0);
    return coil_ok(NULL);
}

TEST(start_moves_one_job_to_running) {
    char *dir = fx_tmpdir();
    RUN_MAIN(start_main, dir);
    fx_rmtree(dir);
}

static coil_result release_main(void *arg) {
    char *dir = arg;
    coil__store *s = fx_open(dir, NULL);
    coil__enqueued a, b;
    ASSERT_EQ(fx_enqueue(s, "demo.cpu", 0, &a), 0);
    ASSERT_EQ(fx_enqueue(s, "demo.cpu", 0, &b), 0);

    /* Released: queued again, the attempt uncounted, runnable at once. */
    ASSERT_EQ(coil__store_start(s, a.id, "pid:7", NULL), 0);
    coil__job_state st;
    ASSERT_EQ(coil__store_release(s, a.id, &st), 0);
    ASSERT_EQ(st, COIL__JOB_QUEUED);
    coil__job *j = get_job(s, a.id);
    ASSERT_EQ(j->state, COIL__JOB_QUEUED);
    ASSERT_EQ(j->attempts, 0);
    ASSERT(j->lease_owner == NULL);
    coil__job_free(j);
    coil__job *got[2];
    size_t n;
    ASSERT_EQ(coil__store_peek(s, NULL, 0, got, 2, 0, &n, NULL), 0);
    ASSERT_EQ(n, 2);
    ASSERT_STR_EQ(got[0]->id, a.id);
    coil__job_free(got[0]);
    coil__job_free(got[1]);

    /* Peeked, a job is held until started or given back; then it is neither
     * running nor held, and cannot be released again. */
    ASSERT_EQ(coil__store_release(s, a.id, &st), 0);
    ASSERT_EQ(st, COIL__JOB_QUEUED);
    ASSERT_EQ(coil__store_release(s, a.id, NULL), -EINVAL);

    /* Released after a cancel request: cancelled, and final. */
    ASSERT_EQ(coil__store_start(s, b.id, "pid:7", NULL), 0);
    ASSERT_EQ(coil__store_cancel(s, b.id, &st), 0);
    ASSERT_EQ(st, COIL__JOB_RUNNING);
    ASSERT_EQ(coil__store_release(s, b.id, &st), 0);
    ASSERT_EQ(st, COIL__JOB_CANCELLED);
    j = get_job(s, b.id);
    ASSERT_EQ(j->state, COIL__JOB_CANCELLED);
    ASSERT_GE(j->finished, j->created);
    coil__job_free(j);
    ASSERT_EQ(coil__store_close(s), 0);
    return coil_ok(NULL);
}

TEST(release_gives_a_started_job_back) {
    char *dir = fx_tmpdir();
    RUN_MAIN(release_main, dir);
    fx_rmtree(dir);
}

static coil_result run_outcome_main(void *arg) {
    char *dir = arg;
    coil__store *s = fx_open(dir, NULL);
    coil__enqueued a, b, c;
    ASSERT_EQ(fx_enqueue(s, "demo.cpu", 0, &a), 0);
    ASSERT_EQ(fx_enqueue(s, "demo.cpu", 0, &b), 0);
    ASSERT_EQ(fx_enqueue(s, "demo.cpu", 0, &c), 0);
    int running = 0, succeeded = 0;
    int *counts[2] = {&running, &succeeded};
    coil__store_watcher *w;
    ASSERT_EQ(coil__store_watch(s, count_states, counts, &w), 0);

    /* Started and completed in one write: attempt 1, both events seen. */
    coil__job_result res = {.data = "ok", .len = 2, .content_type = "text/plain"};
    ASSERT_EQ(coil__store_run_complete(s, a.id, "pid:7", &res), 0);
    coil__job *j = get_job(s, a.id);
    ASSERT_EQ(j->state, COIL__JOB_SUCCEEDED);
    ASSERT_EQ(j->attempts, 1);
    ASSERT_STR_EQ((const char *)j->result, "ok");
    ASSERT_GE(j->finished, j->started);
    ASSERT_GE(j->started, j->created);
    coil__job_free(j);
    ASSERT_EQ(running, 1);
    ASSERT_EQ(succeeded, 1);

    /* Started and failed in one write: a retry is scheduled. */
    coil__job_error e = {.message = "boom", .signal = 11, .exit_status = -1};
    coil__job_state st;
    ASSERT_EQ(coil__store_run_fail(s, b.id, "pid:7", &e, &st), 0);
    ASSERT_EQ(st, COIL__JOB_FAILED);
    j = get_job(s, b.id);
    ASSERT_EQ(j->attempts, 1);
    ASSERT_EQ(j->error_signal, 11);
    coil__job_free(j);

    /* A job cancelled first cannot be run: nothing is written. */
    ASSERT_EQ(coil__store_cancel(s, c.id, NULL), 0);
    ASSERT_EQ(coil__store_run_complete(s, c.id, "pid:7", &res), -EINVAL);
    j = get_job(s, c.id);
    ASSERT_EQ(j->state, COIL__JOB_CANCELLED);
    ASSERT_EQ(j->attempts, 0);
    ASSERT(j->result == NULL);
    coil__job_free(j);
    /* Already running: run_* refuses, complete() is the call. */
    ASSERT_EQ(coil__store_start(s, b.id, "pid:7", NULL), 0);
    ASSERT_EQ(coil__store_run_complete(s, b.id, "pid:7", &res), -EINVAL);
    ASSERT_EQ(coil__store_run_complete(s, b.id, NULL, &res), -EINVAL);
    coil__store_unwatch(w);
    ASSERT_EQ(coil__store_close(s), 0);
    return coil_ok(NULL);
}

TEST(run_complete_and_run_fail_start_in_the_same_write) {
    char *dir = fx_tmpdir();
    RUN_MAIN(run_outcome_main, dir);
    fx_rmtree(dir);
}

/* The fence between a cancel and a peeked job: held from the peek until
 * its start or its release, a job is flagged, not cancelled; a restart
 * cancels a flagged one left behind. Requeue never lets attempts exceed
 * max_attempts. */
static coil_result held_main(void *arg) {
    char *dir = arg;
    coil__store *s = fx_open(dir, NULL);
    coil__enqueued a, b, c, d;
    ASSERT_EQ(fx_enqueue(s, "demo.cpu", 3, &a), 0);
    ASSERT_EQ(fx_enqueue(s, "demo.cpu", 2, &b), 0);
    ASSERT_EQ(fx_enqueue(s, "demo.cpu", 1, &c), 0);
    coil__job *got[3];
    size_t n;
    ASSERT_EQ(coil__store_peek(s, NULL, 0, got, 3, 0, &n, NULL), 0);
    ASSERT_EQ(n, 3);
    for (size_t i = 0; i < n; i++) coil__job_free(got[i]);

    /* Held, then started: the flag goes with it into running. */
    coil__job_state st;
    ASSERT_EQ(coil__store_cancel(s, a.id, &st), 0);
    ASSERT_EQ(st, COIL__JOB_RUNNING);
    coil__job *j = get_job(s, a.id);
    ASSERT_EQ(j->state, COIL__JOB_QUEUED);
    ASSERT(j->cancel_requested);
    coil__job_free(j);
    ASSERT_EQ(coil__store_start(s, a.id, "pid:7", NULL), 0);
    j = get_job(s, a.id);
    ASSERT_EQ(j->state, COIL__JOB_RUNNING);
    ASSERT(j->cancel_requested);
    coil__job_free(j);
    ASSERT_EQ(coil__store_fail(s, a.id, NULL, &st), 0);
    ASSERT_EQ(st, COIL__JOB_CANCELLED);

    /* Held, then given back: cancelled, never started. */
    ASSERT_EQ(coil__store_cancel(s, b.id, &st), 0);
    ASSERT_EQ(st, COIL__JOB_RUNNING);
    ASSERT_EQ(coil__store_release(s, b.id, &st), 0);
    ASSERT_EQ(st, COIL__JOB_CANCELLED);
    j = get_job(s, b.id);
    ASSERT_EQ(j->attempts, 0);
    ASSERT_EQ(j->started, 0);
    coil__job_free(j);

    /* Running on its last attempt when the process ends: dead, not run a
     * fourth time. */
    ASSERT_EQ(fx_enqueue(s, "demo.cpu", 0, &d), 0);
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(coil__store_start(s, d.id, "pid:7", NULL), 0);
        if (i < 2) ASSERT_EQ(coil__store_requeue_running(s, NULL), 0);
    }
    ASSERT_EQ(fx_state(s, c.id), COIL__JOB_QUEUED); /* unflagged: left alone */

    /* Held and flagged when the process ends: cancelled at the next start. */
    ASSERT_EQ(coil__store_cancel(s, c.id, &st), 0);
    ASSERT_EQ(st, COIL__JOB_RUNNING);
    ASSERT_EQ(coil__store_close(s), 0);

    s = fx_open(dir, NULL);
    size_t count;
    ASSERT_EQ(coil__store_requeue_running(s, &count), 0);
    ASSERT_EQ(count, 2);
    ASSERT_EQ(fx_state(s, c.id), COIL__JOB_CANCELLED);
    j = get_job(s, d.id);
    ASSERT_EQ(j->state, COIL__JOB_DEAD);
    ASSERT_EQ(j->attempts, 3);
    ASSERT(j->error_msg && strstr(j->error_msg, "interrupted") != NULL);
    coil__job_free(j);
    ASSERT_EQ(coil__store_close(s), 0);
    return coil_ok(NULL);
}

TEST(held_jobs_are_flagged_by_a_cancel_not_cancelled) {
    char *dir = fx_tmpdir();
    RUN_MAIN(held_main, dir);
    fx_rmtree(dir);
}
