/* tests/jobs/pool/test_pool_await.c: awaiting job kinds (worker_await.c and
 * the pool's side of them).
 *
 * As in test_pool.c, the workers are this executable exec'd again, so the
 * handlers below exist on both sides. The HTTP case runs coil's server on
 * a thread of the test process; the worker fetches from it.
 * COIL_TEST_THREADS: the server's thread.
 */
#include "jobs/pool/pool_fixture.h"
#include "http/loopback_server.h"

#include <coil/http.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------------ handlers */

/* In a worker, per kind: its jobs running now, and the most seen at once. */
typedef struct counts {
    int running, most;
} counts;

/* Sleeps for the payload's milliseconds on the worker's loop; the result
 * is "PID MOST", MOST the most jobs of the kind this worker ran at once
 * so far. */
static int sleep_counting(const char *payload, coil_job_ctx *ctx, counts *c) {
    if (++c->running > c->most) c->most = c->running;
    int err = coil_sleep(COIL_MSEC(strtol(payload, NULL, 10)));
    c->running--;
    if (err) return err;
    char out[64];
    snprintf(out, sizeof out, "%d %d", (int)getpid(), c->most);
    return coil_job_set_result(ctx, out, strlen(out), "text/plain");
}

static int await_sleep(const void *payload, size_t len, coil_job_ctx *ctx) {
    (void)len;
    static counts c;
    return sleep_counting(payload, ctx, &c);
}
COIL_JOB_AWAITING_HANDLER("t.await_sleep", await_sleep, 8)

static int await_three(const void *payload, size_t len, coil_job_ctx *ctx) {
    (void)len;
    static counts c;
    return sleep_counting(payload, ctx, &c);
}
COIL_JOB_AWAITING_HANDLER("t.await_three", await_three, 3)

/* Waits on its loop until cancelled; says whether coil_job_cancelled()
 * agreed once it was. */
static int await_forever(const void *payload, size_t len, coil_job_ctx *ctx) {
    (void)payload, (void)len;
    int err = coil_sleep(COIL_SEC(600));
    if (err == -ECANCELED && coil_job_cancelled(ctx)) coil_job_set_error(ctx, "told to stop");
    return err;
}
COIL_JOB_AWAITING_HANDLER("t.await_forever", await_forever, 4)

static int await_segv(const void *payload, size_t len, coil_job_ctx *ctx) {
    (void)payload, (void)len, (void)ctx;
    coil_sleep(COIL_MSEC(100));
    raise(SIGSEGV);
    return 0;
}
COIL_JOB_AWAITING_HANDLER("t.await_segv", await_segv, 4)

static int plain_pid(const void *payload, size_t len, coil_job_ctx *ctx) {
    (void)payload, (void)len;
    char out[32];
    snprintf(out, sizeof out, "%d", (int)getpid());
    return coil_job_set_result(ctx, out, strlen(out), "text/plain");
}
COIL_JOB_HANDLER("t.plain_pid", plain_pid)

/* GETs the payload's URL ten times at once (coil_gather); the result is
 * how many answered 200. */
typedef struct fetch_one {
    const char *url;
    int status;
} fetch_one;

static coil_result fetch_call(void *arg) {
    fetch_one *f = arg;
    coil_http_client_response r;
    int err = coil_http_get(f->url, &r);
    if (err) return coil_fail(err);
    f->status = r.status;
    coil_http_client_response_free(&r);
    return coil_ok(NULL);
}

static int await_fetch(const void *payload, size_t len, coil_job_ctx *ctx) {
    (void)len;
    enum { N = 10 };
    fetch_one f[N];
    coil_call calls[N];
    for (int i = 0; i < N; i++) {
        f[i] = (fetch_one){.url = payload};
        calls[i] = (coil_call){.fn = fetch_call, .arg = &f[i]};
    }
    int err = coil_gather(calls, N);
    int ok = 0;
    for (int i = 0; i < N; i++) ok += f[i].status == 200;
    char out[16];
    snprintf(out, sizeof out, "%d", ok);
    coil_job_set_result(ctx, out, strlen(out), "text/plain");
    return err;
}
COIL_JOB_AWAITING_HANDLER("t.await_fetch", await_fetch, 1)

/* ------------------------------------------------------------------ helpers */

/* Runs n calls of `kind` with `payload` at once and waits for them all. */
static void run_many(coil_pool *p, const char *kind, const char *payload, job_call *calls,
                     size_t n) {
    coil_task *tasks[32];
    ASSERT(n <= 32);
    for (size_t i = 0; i < n; i++) {
        calls[i] = (job_call){.pool = p, .kind = kind, .payload = payload};
        tasks[i] = spawn_call(&calls[i]);
    }
    for (size_t i = 0; i < n; i++) ASSERT_EQ(coil_join(tasks[i], NULL), 0);
}

/* ------------------------------------------------------------------ concurrency */

static coil_result share_main(void *arg) {
    (void)arg;
    coil_pool *p = start_pool(2, 0);
    /* Eight at once, all in one worker (the other stays free for plain
     * jobs), and all eight seen running together there. */
    job_call calls[8];
    run_many(p, "t.await_sleep", "200", calls, 8);
    int pid0 = 0;
    for (int i = 0; i < 8; i++) {
        ASSERT_EQ(calls[i].ret, 0);
        int pid, seen;
        ASSERT_EQ(sscanf(calls[i].out.result, "%d %d", &pid, &seen), 2);
        if (!pid0) pid0 = pid;
        ASSERT_EQ(pid, pid0);
        ASSERT_LE(seen, 8);
        if (i == 7) ASSERT_EQ(seen, 8);
        coil_job_outcome_free(&calls[i].out);
    }
    /* A kind's concurrency bounds it in a worker: nine of a kind of three
     * run at most three at a time in each worker they reach. */
    job_call three[9];
    run_many(p, "t.await_three", "100", three, 9);
    int most = 0;
    for (int i = 0; i < 9; i++) {
        ASSERT_EQ(three[i].ret, 0);
        int pid, seen;
        ASSERT_EQ(sscanf(three[i].out.result, "%d %d", &pid, &seen), 2);
        ASSERT_LE(seen, 3);
        if (seen > most) most = seen;
        coil_job_outcome_free(&three[i].out);
    }
    ASSERT_EQ(most, 3);
    /* Both workers run loops now: a plain job gets a fresh one. */
    coil_job_outcome out;
    ASSERT_EQ(coil_pool_run(p, "t.plain_pid", "", 0, NULL, &out), 0);
    ASSERT(atoi(out.result) != pid0);
    coil_job_outcome_free(&out);
    ASSERT_EQ(coil_pool_stop(p, COIL_POOL_DRAIN), 0);
    assert_no_children();
    return coil_ok(NULL);
}

TEST(awaiting_jobs_run_together_in_one_worker) { RUN_MAIN(share_main, NULL); }

/* With one worker, which runs a loop after an awaiting job, a plain job
 * gets a fresh worker; and awaiting jobs come back after it. */
static coil_result mixed_main(void *arg) {
    (void)arg;
    coil_pool *p = start_pool(1, 0);
    coil_job_outcome out;
    ASSERT_EQ(coil_pool_run(p, "t.await_sleep", "10", 2, NULL, &out), 0);
    int awaiting_pid = atoi(out.result);
    coil_job_outcome_free(&out);
    ASSERT_EQ(coil_pool_run(p, "t.plain_pid", "", 0, NULL, &out), 0);
    int plain_pid = atoi(out.result);
    coil_job_outcome_free(&out);
    ASSERT(plain_pid > 0 && plain_pid != awaiting_pid);
    ASSERT_EQ(coil_pool_run(p, "t.plain_pid", "", 0, NULL, &out), 0);
    ASSERT_EQ(atoi(out.result), plain_pid); /* a plain worker stays */
    coil_job_outcome_free(&out);
    ASSERT_EQ(coil_pool_run(p, "t.await_sleep", "10", 2, NULL, &out), 0);
    ASSERT_EQ(out.err, 0);
    coil_job_outcome_free(&out);
    coil_pool_stats st;
    coil_pool_get_stats(p, &st);
    ASSERT_EQ(st.crashes, 0);
    ASSERT_EQ(coil_pool_stop(p, COIL_POOL_DRAIN), 0);
    assert_no_children();
    return coil_ok(NULL);
}

TEST(a_plain_job_after_awaiting_ones_gets_a_fresh_worker) { RUN_MAIN(mixed_main, NULL); }

/* ------------------------------------------------------------------ stopping */

static coil_result cancel_main(void *arg) {
    (void)arg;
    coil_pool *p = start_pool(1, 0);
    job_call a = {.pool = p, .kind = "t.await_forever", .payload = ""};
    job_call b = {.pool = p, .kind = "t.await_sleep", .payload = "300"};
    coil_task *ta = coil_spawn(run_call, &a);
    coil_task *tb = coil_spawn(run_call, &b);
    coil_sleep(COIL_MSEC(100));
    coil_cancel(ta); /* reaches the suspended handler: it returns, no signal */
    ASSERT_EQ(coil_join(ta, NULL), 0);
    ASSERT_EQ(a.ret, -ECANCELED);
    ASSERT_EQ(a.out.signal, 0);
    ASSERT_STR_EQ(a.out.error, "told to stop");
    ASSERT(a.out.ran && !a.out.crashed);
    ASSERT_EQ(coil_join(tb, NULL), 0); /* its neighbour went on */
    ASSERT_EQ(b.ret, 0);
    ASSERT_EQ(b.out.pid, a.out.pid);
    coil_job_outcome_free(&b.out);
    /* A deadline stops one the same way. */
    coil_scope sc;
    coil_scope_enter(&sc, coil_now() + COIL_MSEC(100));
    coil_job_outcome out;
    ASSERT_EQ(coil_pool_run(p, "t.await_forever", "", 0, NULL, &out), -ETIMEDOUT);
    coil_scope_exit(&sc);
    ASSERT_EQ(out.signal, 0);
    ASSERT_EQ(out.pid, a.out.pid); /* the same worker, still alive */
    ASSERT_EQ(coil_pool_stop(p, COIL_POOL_DRAIN), 0);
    assert_no_children();
    return coil_ok(NULL);
}

TEST(a_cancel_reaches_a_suspended_handler) { RUN_MAIN(cancel_main, NULL); }

/* Two jobs of one worker cancelled together: each returns by itself, and
 * the second cancel does not hurry the worker's stop sequence on to
 * SIGTERM. */
static coil_result cancel_two_main(void *arg) {
    (void)arg;
    coil_pool *p = start_pool(1, 0);
    job_call a = {.pool = p, .kind = "t.await_forever", .payload = ""};
    job_call b = {.pool = p, .kind = "t.await_forever", .payload = ""};
    coil_task *ta = coil_spawn(run_call, &a);
    coil_task *tb = coil_spawn(run_call, &b);
    coil_sleep(COIL_MSEC(100));
    coil_cancel(ta);
    coil_cancel(tb);
    ASSERT_EQ(coil_join(ta, NULL), 0);
    ASSERT_EQ(coil_join(tb, NULL), 0);
    for (job_call *c = &a; c; c = c == &a ? &b : NULL) {
        ASSERT_EQ(c->ret, -ECANCELED);
        ASSERT_EQ(c->out.signal, 0);
        ASSERT_STR_EQ(c->out.error, "told to stop");
    }
    ASSERT_EQ(a.out.pid, b.out.pid);
    coil_job_outcome out; /* the worker lives on */
    ASSERT_EQ(coil_pool_run(p, "t.await_sleep", "1", 1, NULL, &out), 0);
    ASSERT_EQ(out.pid, a.out.pid);
    coil_job_outcome_free(&out);
    ASSERT_EQ(coil_pool_stop(p, COIL_POOL_DRAIN), 0);
    assert_no_children();
    return coil_ok(NULL);
}

TEST(two_cancels_in_one_worker_stop_two_jobs_not_the_worker) { RUN_MAIN(cancel_two_main, NULL); }

/* A crash takes every job of its worker with it, each recorded as one. */
static coil_result crash_main(void *arg) {
    (void)arg;
    coil_pool *p = start_pool(1, 0);
    job_call calls[2];
    calls[0] = (job_call){.pool = p, .kind = "t.await_forever", .payload = ""};
    calls[1] = (job_call){.pool = p, .kind = "t.await_segv", .payload = ""};
    coil_task *t0 = coil_spawn(run_call, &calls[0]);
    coil_task *t1 = coil_spawn(run_call, &calls[1]);
    ASSERT_EQ(coil_join(t1, NULL), 0);
    ASSERT_EQ(coil_join(t0, NULL), 0);
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(calls[i].ret, -ECHILD);
        ASSERT_EQ(calls[i].out.signal, SIGSEGV);
        ASSERT(calls[i].out.crashed);
    }
    coil_job_outcome out; /* and the pool goes on */
    ASSERT_EQ(coil_pool_run(p, "t.await_sleep", "1", 1, NULL, &out), 0);
    coil_job_outcome_free(&out);
    ASSERT_EQ(coil_pool_stop(p, COIL_POOL_DRAIN), 0);
    assert_no_children();
    return coil_ok(NULL);
}

TEST(a_crash_fails_every_job_of_its_worker) { RUN_MAIN(crash_main, NULL); }

/* ------------------------------------------------------------------ HTTP in a job */

/* What /slow saw: requests in flight now, and the most at once. */
static atomic_int in_flight, most_in_flight;

/* /slow: 200 ms on the server's loop, counting requests in flight. */
static int h_slow(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)req, (void)arg;
    int now = atomic_fetch_add(&in_flight, 1) + 1;
    for (int m = atomic_load(&most_in_flight);
         now > m && !atomic_compare_exchange_weak(&most_in_flight, &m, now);) {
    }
    int err = coil_sleep(COIL_MSEC(200));
    atomic_fetch_sub(&in_flight, 1);
    if (err) return err;
    return coil_http_respond_text(res, 200, "slow");
}

static coil_result fetch_main(void *arg) {
    loopback_server *s = arg;
    coil_pool *p = start_pool(1, 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/slow", s->port);
    coil_job_outcome out;
    ASSERT_EQ(coil_pool_run(p, "t.await_fetch", url, strlen(url), NULL, &out), 0);
    ASSERT_STR_EQ(out.result, "10");
    /* All ten were in flight at once: the job took about one delay, not ten. */
    ASSERT_EQ(atomic_load(&most_in_flight), 10);
    ASSERT_LE(out.run_ns, COIL_MSEC(1500));
    coil_job_outcome_free(&out);
    ASSERT_EQ(coil_pool_stop(p, COIL_POOL_DRAIN), 0);
    return coil_ok(NULL);
}

TEST(ten_downloads_in_one_job_run_at_once) {
    loopback_server s;
    ASSERT_EQ(loopback_new(&s), 0);
    ASSERT_EQ(coil_http_route(s.srv, "GET", "/slow", h_slow, NULL, 0), 0);
    ASSERT_GE(loopback_start(&s), 1);
    RUN_MAIN(fetch_main, &s);
    ASSERT_EQ(loopback_stop(&s), 0);
}
