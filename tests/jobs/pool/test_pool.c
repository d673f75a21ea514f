/* tests/jobs/pool/test_pool.c: the supervised process pool.
 *
 * The workers are this test executable exec'd again (the runner's main
 * calls coil_worker_main_if_requested), so the handlers below, registered
 * by constructors, exist on both sides. Each test starts its own pool and
 * stops it; the no-zombie checks rely on a test process having no other
 * children than its workers.
 */
#include "jobs/pool/pool_fixture.h"

#include <signal.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ handlers */

static int echo(const void *payload, size_t len, coil_job_ctx *ctx) {
    return coil_job_set_result(ctx, payload, len, "text/plain");
}
COIL_JOB_HANDLER("t.echo", echo)

static int fail(const void *payload, size_t len, coil_job_ctx *ctx) {
    coil_job_set_error(ctx, "bad input");
    return -EINVAL;
}
COIL_JOB_HANDLER("t.fail", fail)

static int progress(const void *payload, size_t len, coil_job_ctx *ctx) {
    for (int pct = 10; pct <= 100; pct += 10) {
        char msg[32];
        snprintf(msg, sizeof msg, "step %d", pct / 10);
        if (coil_job_progress(ctx, pct, msg)) return -EPIPE;
    }
    ASSERT_EQ(coil_job_progress(ctx, 101, NULL), -EINVAL);
    return coil_job_set_result(ctx, "done", 4, NULL);
}
COIL_JOB_HANDLER("t.progress", progress)

static int segv(const void *payload, size_t len, coil_job_ctx *ctx) {
    raise(SIGSEGV);
    return 0;
}
COIL_JOB_HANDLER("t.segv", segv)

static int exit3(const void *payload, size_t len, coil_job_ctx *ctx) { exit(3); }
COIL_JOB_HANDLER("t.exit3", exit3)

/* Sleeps for the payload's milliseconds, without polling cancellation. */
static int nap(const void *payload, size_t len, coil_job_ctx *ctx) {
    long ms = strtol(payload, NULL, 10);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0) {
    }
    return coil_job_set_result(ctx, "slept", 5, NULL);
}
COIL_JOB_HANDLER("t.sleep", nap)

/* Ignores SIGTERM and never returns. */
static int stuck(const void *payload, size_t len, coil_job_ctx *ctx) {
    signal(SIGTERM, SIG_IGN);
    for (;;) pause();
    return 0;
}
COIL_JOB_HANDLER("t.stuck", stuck)

/* Waits politely until asked to stop. */
static int polite(const void *payload, size_t len, coil_job_ctx *ctx) {
    while (!coil_job_cancelled(ctx)) usleep(1000);
    return -ECANCELED;
}
COIL_JOB_HANDLER("t.polite", polite)

/* Tries to allocate the payload's bytes; the result says whether it could. */
static int alloc(const void *payload, size_t len, coil_job_ctx *ctx) {
    size_t n = (size_t)strtoull(payload, NULL, 10);
    void *p = malloc(n);
    const char *r = p ? "ok" : "null";
    free(p);
    return coil_job_set_result(ctx, r, strlen(r), NULL);
}
COIL_JOB_HANDLER("t.alloc", alloc)

/* Burns CPU forever. */
static int burn(const void *payload, size_t len, coil_job_ctx *ctx) {
    volatile uint64_t x = 0;
    for (;;) x++;
    return 0;
}
COIL_JOB_HANDLER("t.burn", burn)

/* ------------------------------------------------------------------ helpers */

/* Waits (up to 20 s) until every worker is alive and idle. */
static void await_alive(coil_pool *p, size_t n) {
    coil_pool_stats st;
    for (int i = 0; i < 2000; i++) {
        coil_pool_get_stats(p, &st);
        if (st.alive == n && st.busy == 0) return;
        coil_sleep(COIL_MSEC(10));
    }
    ASSERT_EQ(st.alive, n);
}

static int run_simple(coil_pool *p, const char *kind, const char *payload, coil_job_outcome *out) {
    return coil_pool_run(p, kind, payload, strlen(payload), NULL, out);
}

/* ------------------------------------------------------------------ results */

static coil_result results_main(void *arg) {
    coil_pool *p = start_pool(2, 0);
    coil_pool_stats st;
    coil_pool_get_stats(p, &st);
    ASSERT_EQ(st.workers, 2);
    ASSERT_EQ(st.alive, 2);
    ASSERT_EQ(st.spawned, 2);
    coil_job_outcome out;
    ASSERT_EQ(run_simple(p, "t.echo", "{\"hello\": 1}", &out), 0);
    ASSERT_EQ(out.err, 0);
    ASSERT_EQ(out.result_len, 12);
    ASSERT_STR_EQ(out.result, "{\"hello\": 1}"); /* NUL-terminated */
    ASSERT_STR_EQ(out.content_type, "text/plain");
    ASSERT(out.ran && !out.crashed && !out.oom);
    ASSERT_EQ(out.signal, 0);
    ASSERT_EQ(out.exit_status, -1);
    ASSERT(out.pid > 0 && out.pid != getpid());
    ASSERT_EQ(out.id, 1);
    coil_job_outcome_free(&out);
    ASSERT(out.result == NULL);
    /* A handler's error and message. */
    ASSERT_EQ(run_simple(p, "t.fail", "", &out), -EINVAL);
    ASSERT_EQ(out.err, -EINVAL);
    ASSERT_STR_EQ(out.error, "bad input");
    ASSERT(out.result == NULL && !out.crashed);
    /* Refused before anything runs. */
    ASSERT_EQ(run_simple(p, "t.nope", "", &out), -ENOENT);
    ASSERT(!out.ran);
    ASSERT_EQ(run_simple(p, "", "", &out), -EINVAL);
    coil_pool_get_stats(p, &st);
    ASSERT_EQ(st.submitted, 2);
    ASSERT_EQ(st.succeeded, 1);
    ASSERT_EQ(st.failed, 1);
    ASSERT_EQ(coil_pool_stop(p, COIL_POOL_DRAIN), 0);
    assert_no_children();
    return coil_ok(NULL);
}

TEST(jobs_run_and_return_results) { RUN_MAIN(results_main, NULL); }

static coil_result concurrent_main(void *arg) {
    coil_pool *p = start_pool(2, 0);
    enum { N = 24 };
    job_call calls[N];
    char payloads[N][16];
    coil_task *tasks[N];
    for (int i = 0; i < N; i++) {
        snprintf(payloads[i], sizeof payloads[i], "job-%d", i);
        calls[i] = (job_call){.pool = p, .kind = "t.echo", .payload = payloads[i]};
        tasks[i] = spawn_call(&calls[i]);
    }
    coil_yield(); /* they all submit: 2 run, the rest queue */
    coil_pool_stats st;
    coil_pool_get_stats(p, &st);
    ASSERT_EQ(st.busy, 2);
    ASSERT_EQ(st.queued, N - 2);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(coil_join(tasks[i], NULL), 0);
        ASSERT_EQ(calls[i].ret, 0);
        ASSERT_STR_EQ(calls[i].out.result, payloads[i]);
        coil_job_outcome_free(&calls[i].out);
    }
    coil_pool_get_stats(p, &st);
    ASSERT_EQ(st.queued, 0);
    ASSERT_EQ(st.succeeded, N);
    ASSERT_EQ(coil_pool_stop(p, COIL_POOL_DRAIN), 0);
    return coil_ok(NULL);
}

TEST(concurrent_jobs_queue_and_all_finish) { RUN_MAIN(concurrent_main, NULL); }

static coil_result queue_bound_main(void *arg) {
    coil_pool *p = start_pool(1, 1);
    job_call busy = {.pool = p, .kind = "t.sleep", .payload = "200"};
    job_call queued = {.pool = p, .kind = "t.echo", .payload = "x"};
    coil_task *a = spawn_call(&busy), *b = spawn_call(&queued);
    coil_yield();
    coil_job_outcome out;
    ASSERT_EQ(run_simple(p, "t.echo", "y", &out), -EAGAIN);
    ASSERT(!out.ran);
    ASSERT_EQ(coil_join(a, NULL), 0);
    ASSERT_EQ(coil_join(b, NULL), 0);
    ASSERT_EQ(busy.ret, 0);
    ASSERT_EQ(queued.ret, 0);
    coil_job_outcome_free(&busy.out);
    coil_job_outcome_free(&queued.out);
    ASSERT_EQ(coil_pool_stop(p, COIL_POOL_DRAIN), 0);
    return coil_ok(NULL);
}

TEST(queue_is_bounded) { RUN_MAIN(queue_bound_main, NULL); }

static coil_result start_fails_main(void *arg) {
    /* No worker can be ready within a nanosecond: the start fails, and
     * nothing is left running. */
    coil_pool_config cfg = {.workers = 2, .spawn_timeout = 1};
    coil_pool *p = NULL;
    ASSERT_EQ(coil_pool_start(&cfg, &p), -ECHILD);
    ASSERT(p == NULL);
    assert_no_children();
    cfg = (coil_pool_config){.kill_grace = -1};
    ASSERT_EQ(coil_pool_start(&cfg, &p), -EINVAL);
    /* The registry is frozen once a pool has started. */
    ASSERT_EQ(coil_job_register("t.late", echo), -EBUSY);
    return coil_ok(NULL);
}

TEST(failed_start_leaves_nothing) { RUN_MAIN(start_fails_main, NULL); }

static coil_result spin(void *arg) {
    const bool *stop = arg;
    while (!*stop) coil_yield();
    return coil_ok(NULL);
}

static coil_result busy_loop_main(void *arg) {
    /* A task that never parks keeps the loop turning without blocking: the
     * spawn's completion, frames and exits must still get through. */
    bool stop = false;
    coil_task *t = coil_spawn(spin, &stop);
    coil_pool *p = start_pool(1, 0);
    coil_job_outcome out;
    ASSERT_EQ(run_simple(p, "t.echo", "busy", &out), 0);
    ASSERT_STR_EQ(out.result, "busy");
    coil_job_outcome_free(&out);
    ASSERT_EQ(run_simple(p, "t.exit3", "", &out), -ECHILD);
    ASSERT_EQ(out.exit_status, 3);
    ASSERT_EQ(coil_pool_stop(p, COIL_POOL_DRAIN), 0);
    stop = true;
    ASSERT_EQ(coil_join(t, NULL), 0);
    return coil_ok(NULL);
}

TEST(works_beside_a_busy_task) { RUN_MAIN(busy_loop_main, NULL); }

TEST(register_checks_kinds) {
    ASSERT_EQ(coil_job_register("t.echo", echo), -EEXIST);
    ASSERT_EQ(coil_job_register("", echo), -EINVAL);
    ASSERT_EQ(coil_job_register("t.null", NULL), -EINVAL);
    char big[COIL_JOB_KIND_MAX + 2];
    memset(big, 'k', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ASSERT_EQ(coil_job_register(big, echo), -EINVAL);
    big[COIL_JOB_KIND_MAX] = '\0';
    ASSERT_EQ(coil_job_register(big, echo), 0);
}

/* ------------------------------------------------------------------ progress */

typedef struct progress_log {
    int n;
    int percents[16];
    char messages[16][32];
    coil_loop *loop; /* the loop the callback ran on */
} progress_log;

static void on_progress(void *arg, int percent, const char *message) {
    progress_log *log = arg;
    ASSERT(log->n < 16);
    log->percents[log->n] = percent;
    snprintf(log->messages[log->n], sizeof log->messages[0], "%s", message);
    log->loop = coil_loop_current();
    log->n++;
}

static coil_result progress_main(void *arg) {
    coil_pool *p = start_pool(1, 0);
    progress_log log = {0};
    coil_job_opts opts = {.on_progress = on_progress, .progress_arg = &log};
    coil_job_outcome out;
    ASSERT_EQ(coil_pool_run(p, "t.progress", "", 0, &opts, &out), 0);
    ASSERT_STR_EQ(out.result, "done");
    ASSERT_STR_EQ(out.content_type, "application/octet-stream");
    ASSERT_EQ(log.n, 10);
    for (int i = 0; i < 10; i++) {
        ASSERT_EQ(log.percents[i], (i + 1) * 10);
        char want[32];
        snprintf(want, sizeof want, "step %d", i + 1);
        ASSERT_STR_EQ(log.messages[i], want);
    }
    ASSERT(log.loop == coil_loop_current());
    coil_job_outcome_free(&out);
    ASSERT_EQ(coil_pool_stop(p, COIL_POOL_DRAIN), 0);
    return coil_ok(NULL);
}

TEST(progress_arrives_in_order) { RUN_MAIN(progress_main, NULL); }

/* ------------------------------------------------------------------ crashes */

static coil_result crash_main(void *arg) {
    coil_pool *p = start_pool(2, 0);
    job_call slow = {.pool = p, .kind = "t.sleep", .payload = "400"};
    coil_task *t = spawn_call(&slow);
    coil_sleep(COIL_MSEC(50)); /* the slow job is running on one worker */
    coil_job_outcome out;
    ASSERT_EQ(run_simple(p, "t.segv", "", &out), -ECHILD);
    ASSERT_EQ(out.err, -ECHILD);
    ASSERT_EQ(out.signal, SIGSEGV);
    ASSERT_EQ(out.exit_status, -1);
    ASSERT(out.crashed && out.ran && !out.oom);
    ASSERT_CONTAINS(out.error, "signal 11");
    int dead = out.pid;
    /* The other job was not affected. */
    ASSERT_EQ(coil_join(t, NULL), 0);
    ASSERT_EQ(slow.ret, 0);
    ASSERT_STR_EQ(slow.out.result, "slept");
    coil_job_outcome_free(&slow.out);
    /* The worker was replaced, and the pool serves on. */
    await_alive(p, 2);
    for (int i = 0; i < 4; i++) {
        ASSERT_EQ(run_simple(p, "t.echo", "again", &out), 0);
        ASSERT_NE(out.pid, dead);
        coil_job_outcome_free(&out);
    }
    coil_pool_stats st;
    coil_pool_get_stats(p, &st);
    ASSERT_EQ(st.crashes, 1);
    ASSERT_EQ(st.spawned, 3);
    ASSERT_EQ(coil_pool_stop(p, COIL_POOL_DRAIN), 0);
    assert_no_children();
    return coil_ok(NULL);
}

TEST(crash_fails_only_its_job) { RUN_MAIN(crash_main, NULL); }

static coil_result exit_main(void *arg) {
    coil_pool *p = start_pool(1, 0);
    coil_job_outcome out;
    ASSERT_EQ(run_simple(p, "t.exit3", "", &out), -ECHILD);
    ASSERT_EQ(out.exit_status, 3);
    ASSERT_EQ(out.signal, 0);
    ASSERT(out.crashed);
    ASSERT_CONTAINS(out.error, "status 3");
    ASSERT_EQ(run_simple(p, "t.echo", "after", &out), 0);
    coil_job_outcome_free(&out);
    ASSERT_EQ(coil_pool_stop(p, COIL_POOL_DRAIN), 0);
    return coil_ok(NULL);
}

TEST(exit_status_is_recorded) { RUN_MAIN(exit_main, NULL); }

static coil_result idle_death_main(void *arg) {
    coil_pool *p = start_pool(1, 0);
    coil_job_outcome out;
    ASSERT_EQ(run_simple(p, "t.echo", "a", &out), 0);
    ASSERT_EQ(kill(out.pid, SIGKILL), 0);
    coil_job_outcome_free(&out);
    coil_pool_stats st;
    for (int i = 0; i < 2000; i++) { /* wait for the replacement */
        coil_pool_get_stats(p, &st);
        if (st.spawned == 2 && st.alive == 1) break;
        coil_sleep(COIL_MSEC(10));
    }
    ASSERT_EQ(st.spawned, 2);
    ASSERT_EQ(run_simple(p, "t.echo", "b", &out), 0);
    coil_job_outcome_free(&out);
    coil_pool_get_stats(p, &st);
    ASSERT_EQ(st.crashes, 0); /* no job was running */
    ASSERT_EQ(st.failed, 0);
    ASSERT_EQ(coil_pool_stop(p, COIL_POOL_DRAIN), 0);
    return coil_ok(NULL);
}

TEST(idle_worker_death_is_replaced) { RUN_MAIN(idle_death_main, NULL); }

/* ------------------------------------------------------------------ stopping jobs */

static coil_result timeout_main(void *arg) {
    coil_pool *p = start_pool(1, 0);
    coil_job_opts opts = {.timeout = COIL_MSEC(100)};
    coil_job_outcome out;
    /* Ignores the CANCEL frame and SIGTERM: SIGKILL after the grace. */
    ASSERT_EQ(coil_pool_run(p, "t.stuck", "", 0, &opts, &out), -ETIMEDOUT);
    ASSERT_EQ(out.signal, SIGKILL);
    ASSERT(out.ran && !out.crashed && !out.oom);
    /* Does not poll but dies of SIGTERM. */
    ASSERT_EQ(coil_pool_run(p, "t.sleep", "60000", 5, &opts, &out), -ETIMEDOUT);
    ASSERT_EQ(out.signal, SIGTERM);
    /* Polls coil_job_cancelled(): returns, and its worker is kept. */
    ASSERT_EQ(coil_pool_run(p, "t.polite", "", 0, &opts, &out), -ETIMEDOUT);
    ASSERT_EQ(out.signal, 0);
    int kept = out.pid;
    ASSERT_EQ(run_simple(p, "t.echo", "next", &out), 0);
    ASSERT_EQ(out.pid, kept);
    coil_job_outcome_free(&out);
    coil_pool_stats st;
    coil_pool_get_stats(p, &st);
    ASSERT_EQ(st.crashes, 0);
    ASSERT_EQ(coil_pool_stop(p, COIL_POOL_DRAIN), 0);
    assert_no_children();
    return coil_ok(NULL);
}

TEST(timeout_stops_a_job) { RUN_MAIN(timeout_main, NULL); }

static coil_result cancel_queued_main(void *arg) {
    coil_pool *p = start_pool(1, 0);
    job_call busy = {.pool = p, .kind = "t.sleep", .payload = "300"};
    job_call queued = {.pool = p, .kind = "t.echo", .payload = "never"};
    coil_task *a = spawn_call(&busy), *b = spawn_call(&queued);
    coil_sleep(COIL_MSEC(20));
    coil_pool_stats st;
    coil_pool_get_stats(p, &st);
    ASSERT_EQ(st.queued, 1);
    coil_cancel(b);
    ASSERT_EQ(coil_join(b, NULL), 0);
    ASSERT_EQ(queued.ret, -ECANCELED);
    ASSERT_EQ(queued.out.err, -ECANCELED);
    ASSERT(!queued.out.ran && queued.out.pid == 0);
    coil_pool_get_stats(p, &st);
    ASSERT_EQ(st.queued, 0);
    ASSERT_EQ(coil_join(a, NULL), 0);
    ASSERT_EQ(busy.ret, 0);
    coil_job_outcome_free(&busy.out);
    coil_pool_get_stats(p, &st);
    ASSERT_EQ(st.submitted, 2);
    ASSERT_EQ(st.succeeded, 1);
    ASSERT_EQ(coil_pool_stop(p, COIL_POOL_DRAIN), 0);
    return coil_ok(NULL);
}

TEST(cancel_queued_job) { RUN_MAIN(cancel_queued_main, NULL); }

static coil_result cancel_running_main(void *arg) {
    coil_pool *p = start_pool(1, 0);
    job_call c = {.pool = p, .kind = "t.sleep", .payload = "60000"};
    coil_task *t = spawn_call(&c);
    coil_sleep(COIL_MSEC(100));
    coil_cancel(t);
    ASSERT_EQ(coil_join(t, NULL), 0);
    ASSERT_EQ(c.ret, -ECANCELED);
    ASSERT_EQ(c.out.err, -ECANCELED);
    ASSERT_EQ(c.out.signal, SIGTERM);
    ASSERT(c.out.ran && !c.out.crashed);
    /* The caller's deadline scope stops a job the same way. */
    coil_scope sc;
    coil_scope_enter(&sc, coil_now() + COIL_MSEC(100));
    coil_job_outcome out;
    ASSERT_EQ(coil_pool_run(p, "t.polite", "", 0, NULL, &out), -ETIMEDOUT);
    ASSERT_EQ(coil_scope_exit(&sc), -ETIMEDOUT);
    ASSERT_EQ(out.err, -ETIMEDOUT);
    ASSERT_EQ(out.signal, 0);
    ASSERT_EQ(run_simple(p, "t.echo", "alive", &out), 0);
    coil_job_outcome_free(&out);
    ASSERT_EQ(coil_pool_stop(p, COIL_POOL_DRAIN), 0);
    return coil_ok(NULL);
}

TEST(cancel_running_job) { RUN_MAIN(cancel_running_main, NULL); }

/* ------------------------------------------------------------------ limits */

/* Under a sanitizer a failed allocation aborts unless told otherwise; the
 * workers inherit the environment. */
static void let_malloc_fail(void) {
    const char *vars[] = {"ASAN_OPTIONS", "TSAN_OPTIONS"};
    for (int i = 0; i < 2; i++) {
        const char *old = getenv(vars[i]);
        char opts[512];
        snprintf(opts, sizeof opts, "%s%sallocator_may_return_null=1", old ? old : "",
                 old && *old ? ":" : "");
        setenv(vars[i], opts, 1);
    }
}

static coil_result address_space_main(void *arg) {
    let_malloc_fail();
    coil_pool *p = start_pool(1, 0);
    coil_job_opts opts = {.max_address_space = 64u << 20};
    coil_job_outcome out;
    ASSERT_EQ(coil_pool_run(p, "t.alloc", "1073741824", 10, &opts, &out), 0);
    ASSERT_STR_EQ(out.result, "null");
    int pid = out.pid;
    coil_job_outcome_free(&out);
    /* Small allocations still work under the limit. */
    ASSERT_EQ(coil_pool_run(p, "t.alloc", "1048576", 7, &opts, &out), 0);
    ASSERT_STR_EQ(out.result, "ok");
    coil_job_outcome_free(&out);
    /* The limit was the job's only: the same worker can map 1 GiB again. */
    ASSERT_EQ(run_simple(p, "t.alloc", "1073741824", &out), 0);
    ASSERT_STR_EQ(out.result, "ok");
    ASSERT_EQ(out.pid, pid);
    coil_job_outcome_free(&out);
    ASSERT_EQ(coil_pool_stop(p, COIL_POOL_DRAIN), 0);
    return coil_ok(NULL);
}

TEST(address_space_limit_fails_malloc) { RUN_MAIN(address_space_main, NULL); }

static coil_result cpu_limit_main(void *arg) {
    coil_pool *p = start_pool(1, 0);
    coil_job_opts opts = {.max_cpu_seconds = 1};
    coil_job_outcome out;
    ASSERT_EQ(coil_pool_run(p, "t.burn", "", 0, &opts, &out), -ECHILD);
    ASSERT_EQ(out.signal, SIGXCPU);
    ASSERT(out.crashed);
    ASSERT_EQ(run_simple(p, "t.echo", "after", &out), 0);
    coil_job_outcome_free(&out);
    ASSERT_EQ(coil_pool_stop(p, COIL_POOL_DRAIN), 0);
    return coil_ok(NULL);
}

TEST(cpu_limit_kills_with_sigxcpu) { RUN_MAIN(cpu_limit_main, NULL); }

/* The nice field (19th) of /proc/PID/stat. */
static int nice_of(int pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    ASSERT(f != NULL);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    ASSERT(p != NULL);
    int field = 2;
    for (p++; *p && field < 19; p++)
        if (*p == ' ') field++;
    return (int)strtol(p, NULL, 10);
}

static int worker_nice(coil_pool *p) {
    coil_job_outcome out;
    ASSERT_EQ(run_simple(p, "t.echo", "", &out), 0);
    coil_job_outcome_free(&out);
    return nice_of(out.pid);
}

static coil_result nice_main(void *arg) {
    int mine = nice_of(getpid());
    coil_pool *p = start_pool(1, 0);
    ASSERT_EQ(worker_nice(p), mine + 10 > 19 ? 19 : mine + 10);
    ASSERT_EQ(coil_pool_stop(p, COIL_POOL_DRAIN), 0);
    coil_pool_config cfg = {.workers = 1, .nice = 3};
    ASSERT_EQ(coil_pool_start(&cfg, &p), 0);
    ASSERT_EQ(worker_nice(p), mine + 3 > 19 ? 19 : mine + 3);
    ASSERT_EQ(coil_pool_stop(p, COIL_POOL_DRAIN), 0);
    cfg.nice = -1;
    ASSERT_EQ(coil_pool_start(&cfg, &p), 0);
    ASSERT_EQ(worker_nice(p), mine);
    ASSERT_EQ(coil_pool_stop(p, COIL_POOL_DRAIN), 0);
    return coil_ok(NULL);
}

TEST(workers_run_niced) { RUN_MAIN(nice_main, NULL); }

/* ------------------------------------------------------------------ stop */

typedef struct stopper {
    coil_pool *pool;
    coil_pool_stop_mode mode;
    int ret;
} stopper;

static coil_result stop_task(void *arg) {
    stopper *s = arg;
    s->ret = coil_pool_stop(s->pool, s->mode);
    return coil_ok(NULL);
}

static coil_result drain_main(void *arg) {
    coil_pool *p = start_pool(1, 0);
    job_call calls[3];
    coil_task *tasks[3];
    for (int i = 0; i < 3; i++) {
        calls[i] = (job_call){.pool = p, .kind = "t.sleep", .payload = "50"};
        tasks[i] = spawn_call(&calls[i]);
    }
    coil_yield();
    stopper st = {p, COIL_POOL_DRAIN, -1};
    coil_task *s = coil_spawn(stop_task, &st);
    coil_yield(); /* the stop has begun: new jobs are refused */
    coil_job_outcome out;
    ASSERT_EQ(run_simple(p, "t.echo", "late", &out), -EPIPE);
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(coil_join(tasks[i], NULL), 0);
        ASSERT_EQ(calls[i].ret, 0);
        coil_job_outcome_free(&calls[i].out);
    }
    ASSERT_EQ(coil_join(s, NULL), 0);
    ASSERT_EQ(st.ret, 0);
    assert_no_children();
    return coil_ok(NULL);
}

TEST(stop_drains_queued_jobs) { RUN_MAIN(drain_main, NULL); }

static coil_result stop_cancel_main(void *arg) {
    coil_pool *p = start_pool(1, 0);
    job_call running = {.pool = p, .kind = "t.stuck", .payload = ""};
    job_call queued = {.pool = p, .kind = "t.echo", .payload = "never"};
    coil_task *a = spawn_call(&running), *b = spawn_call(&queued);
    coil_sleep(COIL_MSEC(50));
    ASSERT_EQ(coil_pool_stop(p, COIL_POOL_CANCEL), 0);
    ASSERT_EQ(coil_join(a, NULL), 0);
    ASSERT_EQ(coil_join(b, NULL), 0);
    ASSERT_EQ(running.ret, -ECANCELED);
    ASSERT_EQ(running.out.signal, SIGKILL);
    ASSERT(running.out.ran && !running.out.crashed);
    ASSERT_EQ(queued.ret, -ECANCELED);
    ASSERT(!queued.out.ran);
    assert_no_children();
    return coil_ok(NULL);
}

TEST(stop_cancels_and_reaps) { RUN_MAIN(stop_cancel_main, NULL); }

static coil_result stop_interrupted_main(void *arg) {
    coil_pool *p = start_pool(2, 0);
    job_call running = {.pool = p, .kind = "t.stuck", .payload = ""};
    coil_task *a = spawn_call(&running);
    coil_sleep(COIL_MSEC(50));
    /* Draining would wait forever; the deadline makes it kill. */
    coil_scope sc;
    coil_scope_enter(&sc, coil_now() + COIL_MSEC(100));
    ASSERT_EQ(coil_pool_stop(p, COIL_POOL_DRAIN), -ETIMEDOUT);
    coil_scope_exit(&sc);
    ASSERT_EQ(coil_join(a, NULL), 0);
    ASSERT_EQ(running.out.err, -ECANCELED);
    ASSERT_EQ(running.out.signal, SIGKILL);
    assert_no_children();
    return coil_ok(NULL);
}

TEST(interrupted_stop_kills_and_reaps) { RUN_MAIN(stop_interrupted_main, NULL); }
