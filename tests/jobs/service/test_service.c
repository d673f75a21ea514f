/* tests/jobs/service/test_service.c: the job system as a whole (coil_jobs_*), without
 * HTTP: the scheduler between the store and the pool.
 *
 * Each test starts the service on a scratch directory from the test's plain
 * thread (it runs its own loop thread), drives it from tasks of a loop of
 * the test's own (RUN_MAIN), stops it, and then reads the store directly to
 * see what was left on disk. Workers are this executable exec'd again, so
 * the handlers below exist on both sides. The service and the store run
 * threads of their own (COIL_TEST_THREADS: these run under TSan too).
 */
#include "jobs/store/store_fixture.h"
#include "jobs/service/service.h"

#include <jansson.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>

/* ------------------------------------------------------------------ handlers */

static int ok(const void *payload, size_t len, coil_job_ctx *ctx) {
    return coil_job_set_result(ctx, payload, len, "application/json");
}
COIL_JOB_HANDLER("s.ok", ok)

/* Sleeps for the payload's milliseconds, stopping early when cancelled. */
static int nap(const void *payload, size_t len, coil_job_ctx *ctx) {
    long ms = strtol(payload, NULL, 10);
    for (long slept = 0; slept < ms; slept += 5) {
        if (coil_job_cancelled(ctx)) return -ECANCELED;
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    return coil_job_set_result(ctx, "{}", 2, "application/json");
}
COIL_JOB_HANDLER("s.sleep", nap)

/* Appends the payload's tag to the payload's file: "PATH TAG". The order
 * of the lines is the order the jobs ran in. */
static int log_tag(const void *payload, size_t len, coil_job_ctx *ctx) {
    const char *sp = memchr(payload, ' ', len);
    if (!sp) return -EINVAL;
    char path[256];
    snprintf(path, sizeof path, "%.*s", (int)(sp - (const char *)payload), (const char *)payload);
    FILE *f = fopen(path, "a");
    if (!f) return -errno;
    fprintf(f, "%s\n", sp + 1);
    fclose(f);
    return 0;
}
COIL_JOB_HANDLER("s.log", log_tag)

static int segv(const void *payload, size_t len, coil_job_ctx *ctx) {
    raise(SIGSEGV);
    return 0;
}
COIL_JOB_HANDLER("s.segv", segv)

/* Fails for good: another attempt could not help. */
static int refuse(const void *payload, size_t len, coil_job_ctx *ctx) {
    coil_job_set_error(ctx, "refused for good");
    return COIL_JOB_NO_RETRY;
}
COIL_JOB_HANDLER("s.refuse", refuse)

/* Writes its whole payload to the file its "file" member names. */
static int record(const void *payload, size_t len, coil_job_ctx *ctx) {
    json_t *doc = json_loads(payload, 0, NULL);
    const char *path = json_string_value(json_object_get(doc, "file"));
    FILE *f = path ? fopen(path, "w") : NULL;
    if (f) {
        fwrite(payload, 1, len, f);
        fclose(f);
    }
    json_decref(doc);
    return f ? 0 : -EINVAL;
}
COIL_JOB_HANDLER("s.record", record)

/* ------------------------------------------------------------------ helpers */

typedef struct fixture {
    char *dir;
    coil_jobs *jobs;
    char ids[8][COIL_JOB_ID_SIZE];
} fixture;

static void start_service(fixture *f, size_t workers) {
    coil_jobs_config jc;
    coil_jobs_config_init(&jc);
    jc.data_dir = f->dir;
    jc.pool.workers = workers;
    jc.stop_grace = -1; /* stop running jobs at once */
    jc.log = false;
    ASSERT_EQ(coil_jobs_start(&jc, &f->jobs), 0);
}

static void enqueue(fixture *f, int i, const char *kind, const char *payload, int priority,
                    int max_attempts) {
    coil_jobs_enqueue_opts o = {.priority = priority, .max_attempts = max_attempts,
                                .backoff = COIL_MSEC(5)};
    ASSERT_EQ(coil_jobs_enqueue(f->jobs, kind, payload, strlen(payload), &o, f->ids[i], NULL),
              0);
}

/* A wait timed out: everything the service holds, the tasks of this loop,
 * then the failure. */
static void stall_dump(fixture *f, const coil_jobs_stats *st) {
    fprintf(stderr,
            "stall: claimed %llu succeeded %llu failed %llu crashed %llu cancelled %llu "
            "waiting %zu running %zu store_errors %llu\n",
            (unsigned long long)st->claimed, (unsigned long long)st->succeeded,
            (unsigned long long)st->failed, (unsigned long long)st->crashed,
            (unsigned long long)st->cancelled, st->waiting, st->running,
            (unsigned long long)st->store_errors);
    coil_jobs_dump(f->jobs, stderr);
    coil_dump_tasks(stderr);
    coil_test_fail(__FILE__, __LINE__, "the service stalled (dump above)");
}

/* Waits (10 s at most, else the test fails) until the service's counters
 * reach at least the nonzero fields of `want`. */
static void await_stats(fixture *f, coil_jobs_stats want) {
    coil_time until = coil_now() + COIL_SEC(10);
    for (;;) {
        coil_jobs_stats st;
        coil_jobs_get_stats(f->jobs, &st);
        if (st.running >= want.running && st.waiting >= want.waiting &&
            st.succeeded >= want.succeeded && st.crashed >= want.crashed &&
            st.cancelled >= want.cancelled)
            return;
        if (coil_now() >= until) stall_dump(f, &st);
        coil_sleep(COIL_MSEC(2));
    }
}

/* Reads job i from a store opened on the fixture's directory. */
static coil__job *read_job(coil__store *s, fixture *f, int i) {
    coil__job *j = NULL;
    ASSERT_EQ(coil__store_get(s, f->ids[i], &j), 0);
    return j;
}

/* Waits (10 s at most) until job i is in a final state; returns it. */
static coil__job *await_final(coil__store *s, fixture *f, int i) {
    coil_time until = coil_now() + COIL_SEC(10);
    for (;;) {
        coil__job *j = read_job(s, f, i);
        if (coil__job_state_final(j->state)) return j;
        coil__job_free(j);
        ASSERT(coil_now() < until);
        coil_sleep(COIL_MSEC(5));
    }
}

/* Opens the fixture's store once the service has stopped. */
static coil__store *open_after(fixture *f) { return fx_open(f->dir, NULL); }

/* ------------------------------------------------------------------ tests */

/* The service's own store connection, through the API of a task. */
static coil_result run_and_record_main(void *arg) {
    fixture *f = arg;
    enqueue(f, 0, "s.ok", "{\"n\":1}", 0, 0);
    enqueue(f, 1, "s.segv", "{}", 0, 2);
    char id[COIL_JOB_ID_SIZE];
    ASSERT_EQ(coil_jobs_enqueue(f->jobs, "no.such.kind", "{}", 2, NULL, id, NULL), -ENOENT);
    coil_jobs_enqueue_opts bad = {.priority = 5000};
    ASSERT_EQ(coil_jobs_enqueue(f->jobs, "s.ok", "{}", 2, &bad, id, NULL), -EINVAL);
    /* The service's store is reachable through its own API only; wait on
     * the stats, which the scheduler updates as it records. */
    await_stats(f, (coil_jobs_stats){.succeeded = 1, .crashed = 2});
    coil_jobs_stats st;
    coil_jobs_get_stats(f->jobs, &st);
    ASSERT_EQ(st.claimed, 3);
    ASSERT_EQ(st.failed, 2);
    return coil_ok(NULL);
}

static coil_result run_and_record_check(void *arg) {
    fixture *f = arg;
    coil__store *s = open_after(f);
    coil__job *j = await_final(s, f, 0);
    ASSERT_EQ(j->state, COIL__JOB_SUCCEEDED);
    ASSERT_EQ(j->attempts, 1);
    ASSERT_STR_EQ((const char *)j->result, "{\"n\":1}");
    ASSERT_STR_EQ(j->result_type, "application/json");
    coil__job_free(j);
    j = await_final(s, f, 1);
    ASSERT_EQ(j->state, COIL__JOB_DEAD); /* crashes count as attempts */
    ASSERT_EQ(j->attempts, 2);
    ASSERT_EQ(j->error_signal, SIGSEGV);
    ASSERT(strstr(j->error_msg, "signal 11") != NULL);
    coil__job_free(j);
    ASSERT_EQ(coil__store_close(s), 0);
    return coil_ok(NULL);
}

TEST(jobs_run_and_outcomes_are_recorded) {
    fixture f = {.dir = fx_tmpdir()};
    start_service(&f, 2);
    RUN_MAIN(run_and_record_main, &f);
    coil_jobs_stop(f.jobs);
    RUN_MAIN(run_and_record_check, &f);
    fx_rmtree(f.dir);
}

/* With one worker busy, a later job of higher priority runs before an
 * earlier one of lower priority; a cancelled waiting job never runs. */
static coil_result order_main(void *arg) {
    fixture *f = arg;
    enqueue(f, 0, "s.sleep", "300", 0, 0);
    await_stats(f, (coil_jobs_stats){.running = 1}); /* the blocker is in the worker */
    char payload[3][300];
    const char *tags[3] = {"low", "doomed", "high"};
    for (int i = 0; i < 3; i++)
        snprintf(payload[i], sizeof payload[i], "%s/order %s", f->dir, tags[i]);
    enqueue(f, 1, "s.log", payload[0], -5, 0);
    enqueue(f, 2, "s.log", payload[1], 0, 0);
    enqueue(f, 3, "s.log", payload[2], 7, 0);
    ASSERT_EQ(coil_jobs_cancel(f->jobs, f->ids[2]), 0);
    /* Cancelled at once, or (held by the scheduler) flagged and given back
     * cancelled without running: asked again, it is final or flagged. */
    int again = coil_jobs_cancel(f->jobs, f->ids[2]);
    ASSERT(again == -EALREADY || again == 0);
    await_stats(f, (coil_jobs_stats){.succeeded = 3});
    return coil_ok(NULL);
}

static coil_result order_check(void *arg) {
    fixture *f = arg;
    coil__store *s = open_after(f);
    coil__job *blocker = await_final(s, f, 0), *low = await_final(s, f, 1),
              *doomed = await_final(s, f, 2), *high = await_final(s, f, 3);
    ASSERT_EQ(low->state, COIL__JOB_SUCCEEDED);
    ASSERT_EQ(high->state, COIL__JOB_SUCCEEDED);
    /* The jobs wrote their tags in the order they ran. */
    char path[300], order[64] = "";
    snprintf(path, sizeof path, "%s/order", f->dir);
    FILE *fp = fopen(path, "r");
    ASSERT(fp != NULL);
    size_t n = fread(order, 1, sizeof order - 1, fp);
    fclose(fp);
    order[n] = '\0';
    ASSERT_STR_EQ(order, "high\nlow\n");
    ASSERT_EQ(doomed->state, COIL__JOB_CANCELLED);
    ASSERT_EQ(doomed->attempts, 0);
    ASSERT_EQ(doomed->started, 0);
    coil__job_free(blocker);
    coil__job_free(low);
    coil__job_free(doomed);
    coil__job_free(high);
    ASSERT_EQ(coil__store_close(s), 0);
    return coil_ok(NULL);
}

TEST(priority_decides_what_a_free_worker_runs) {
    fixture f = {.dir = fx_tmpdir()};
    start_service(&f, 1);
    RUN_MAIN(order_main, &f);
    coil_jobs_stop(f.jobs);
    RUN_MAIN(order_check, &f);
    fx_rmtree(f.dir);
}

/* A running job cancelled through the service stops and ends cancelled. */
static coil_result cancel_running_main(void *arg) {
    fixture *f = arg;
    enqueue(f, 0, "s.sleep", "20000", 0, 0);
    await_stats(f, (coil_jobs_stats){.running = 1});
    ASSERT_EQ(coil_jobs_cancel(f->jobs, f->ids[0]), 0);
    await_stats(f, (coil_jobs_stats){.cancelled = 1});
    return coil_ok(NULL);
}

static coil_result cancel_running_check(void *arg) {
    fixture *f = arg;
    coil__store *s = open_after(f);
    coil__job *j = await_final(s, f, 0);
    ASSERT_EQ(j->state, COIL__JOB_CANCELLED);
    ASSERT_EQ(j->attempts, 1);
    ASSERT(j->cancel_requested);
    coil__job_free(j);
    ASSERT_EQ(coil__store_close(s), 0);
    return coil_ok(NULL);
}

TEST(cancel_stops_a_running_job) {
    fixture f = {.dir = fx_tmpdir()};
    start_service(&f, 1);
    RUN_MAIN(cancel_running_main, &f);
    coil_jobs_stop(f.jobs);
    RUN_MAIN(cancel_running_check, &f);
    fx_rmtree(f.dir);
}

/* Stopping the service gives running and waiting jobs back to the queue,
 * their attempts uncounted; the next start runs them. */
static coil_result stop_main(void *arg) {
    fixture *f = arg;
    enqueue(f, 0, "s.sleep", "20000", 0, 0);
    enqueue(f, 1, "s.ok", "{}", 0, 0);
    await_stats(f, (coil_jobs_stats){.running = 1, .waiting = 1});
    return coil_ok(NULL);
}

static coil_result stop_check(void *arg) {
    fixture *f = arg;
    coil__store *s = open_after(f);
    for (int i = 0; i < 2; i++) {
        coil__job *j = read_job(s, f, i);
        ASSERT_EQ(j->state, COIL__JOB_QUEUED);
        ASSERT_EQ(j->attempts, 0);
        coil__job_free(j);
    }
    ASSERT_EQ(coil__store_close(s), 0);
    return coil_ok(NULL);
}

static coil_result restart_main(void *arg) {
    fixture *f = arg;
    /* Both run again after the restart: the quick one to the end. */
    await_stats(f, (coil_jobs_stats){.succeeded = 1, .running = 1});
    return coil_ok(NULL);
}

TEST(stop_gives_jobs_back_uncounted) {
    fixture f = {.dir = fx_tmpdir()};
    start_service(&f, 1);
    RUN_MAIN(stop_main, &f);
    coil_jobs_stop(f.jobs);
    RUN_MAIN(stop_check, &f);
    start_service(&f, 2);
    RUN_MAIN(restart_main, &f);
    coil_jobs_stop(f.jobs);
    fx_rmtree(f.dir);
}

/* The scheduler's stop from a task that is cancelled already: it still
 * waits for the running job through its grace, and waits rather than
 * spins (its thread's CPU time stays far below the grace), and a second
 * stop does nothing. */
typedef struct cancelled_stop {
    coil_jobs *jobs;
    coil_time took, cpu;
} cancelled_stop;

static coil_time thread_cpu(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (coil_time)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static coil_result cancelled_stop_main(void *arg) {
    cancelled_stop *c = arg;
    coil_cancel(coil_current());
    coil_time t0 = coil_now(), cpu0 = thread_cpu();
    coil__sched_stop(c->jobs, COIL_MSEC(400));
    c->took = coil_now() - t0;
    c->cpu = thread_cpu() - cpu0;
    coil__sched_stop(c->jobs, COIL_MSEC(400));
    return coil_ok(NULL);
}

static coil_result start_long_job(void *arg) {
    fixture *f = arg;
    enqueue(f, 0, "s.sleep", "60000", 0, 0);
    await_stats(f, (coil_jobs_stats){.running = 1});
    return coil_ok(NULL);
}

TEST(a_cancelled_stop_waits_without_spinning) {
    fixture f = {.dir = fx_tmpdir()};
    coil_jobs_config jc;
    coil_jobs_config_init(&jc);
    jc.data_dir = f.dir;
    jc.pool.workers = 1;
    jc.log = false;
    ASSERT_EQ(coil_jobs_start(&jc, &f.jobs), 0);
    RUN_MAIN(start_long_job, &f);
    cancelled_stop c = {.jobs = f.jobs};
    coil_result r;
    ASSERT_EQ(coil_call_sync(f.jobs->loop, cancelled_stop_main, &c, &r), 0);
    ASSERT_GE(c.took, COIL_MSEC(350)); /* the grace, then the job was stopped */
    ASSERT_LE(c.cpu, COIL_MSEC(150));  /* a 10 ms poll loop spinning would burn it all */
    coil_jobs_stop(f.jobs);            /* the pool and the store; the scheduler is done */
    fx_rmtree(f.dir);
}

TEST(start_refuses_bad_setups) {
    coil_jobs *jobs = NULL;
    coil_jobs_config jc;
    coil_jobs_config_init(&jc);
    ASSERT_EQ(coil_jobs_start(&jc, &jobs), -EINVAL); /* no directory */
    fixture f = {.dir = fx_tmpdir()};
    start_service(&f, 1);
    jc.data_dir = f.dir; /* taken by the first */
    jc.log = false;
    ASSERT_EQ(coil_jobs_start(&jc, &jobs), -EBUSY);
    ASSERT(jobs == NULL);
    coil_jobs_stop(f.jobs);
    fx_rmtree(f.dir);
}

/* While the store refuses writes, a finished job's outcome waits, and is
 * written once the store takes writes again; the service carries on. */
static coil_result readonly_main(void *arg) {
    fixture *f = arg;
    coil__store *store = f->jobs->store;
    enqueue(f, 0, "s.sleep", "400", 0, 0);
    /* `running` counts a job as it reaches its worker, before the store has
     * its start: wait for the start, so that only the outcome is refused. */
    coil_time started_by = coil_now() + COIL_SEC(10);
    for (;;) {
        coil__job *job = read_job(store, f, 0);
        coil__job_state state = job->state;
        coil__job_free(job);
        if (state == COIL__JOB_RUNNING) break;
        ASSERT_EQ(state, COIL__JOB_QUEUED);
        ASSERT(coil_now() < started_by);
        coil_sleep(COIL_MSEC(2));
    }
    ASSERT_EQ(coil__store_set_readonly(store, true), 0);
    char id[COIL_JOB_ID_SIZE];
    ASSERT_EQ(coil_jobs_enqueue(f->jobs, "s.ok", "{}", 2, NULL, id, NULL), -EROFS);
    coil_time until = coil_now() + COIL_SEC(10);
    coil_jobs_stats st;
    do { /* the job ends, and its record is refused */
        ASSERT(coil_now() < until);
        coil_sleep(COIL_MSEC(5));
        coil_jobs_get_stats(f->jobs, &st);
    } while (st.store_errors == 0);
    ASSERT_EQ(st.succeeded, 0);
    ASSERT_EQ(coil__store_set_readonly(store, false), 0);
    await_stats(f, (coil_jobs_stats){.succeeded = 1});
    return coil_ok(NULL);
}

static coil_result readonly_check(void *arg) {
    fixture *f = arg;
    coil__store *s = open_after(f);
    coil__job *j = await_final(s, f, 0);
    ASSERT_EQ(j->state, COIL__JOB_SUCCEEDED);
    ASSERT_EQ(j->attempts, 1);
    coil__job_free(j);
    ASSERT_EQ(fx_total(s), 1); /* the refused enqueue left nothing */
    ASSERT_EQ(coil__store_close(s), 0);
    return coil_ok(NULL);
}

TEST(outcomes_wait_for_a_store_that_refuses_writes) {
    fixture f = {.dir = fx_tmpdir()};
    start_service(&f, 1);
    coil_test_capture_stderr_begin();
    RUN_MAIN(readonly_main, &f);
    char *err = coil_test_capture_stderr_end();
    ASSERT(strstr(err, "retrying") != NULL);
    free(err);
    coil_jobs_stop(f.jobs);
    RUN_MAIN(readonly_check, &f);
    fx_rmtree(f.dir);
}

/* coil_jobs_wait: only the waiting task waits, until the job is final or
 * the timeout passes. */
static coil_result ticker(void *arg) {
    int *ticks = arg;
    for (;;) {
        if (coil_sleep(COIL_MSEC(5))) return coil_ok(NULL);
        (*ticks)++;
    }
}

static coil_result wait_main(void *arg) {
    fixture *f = arg;
    int ticks = 0;
    coil_task *t = coil_spawn(ticker, &ticks);
    ASSERT(t != NULL);
    enqueue(f, 0, "s.sleep", "300", 0, 0);
    const char *state = NULL;
    ASSERT_EQ(coil_jobs_wait(f->jobs, f->ids[0], COIL_MSEC(50), &state), -ETIMEDOUT);
    ASSERT(state == NULL);
    ASSERT_EQ(coil_jobs_wait(f->jobs, f->ids[0], COIL_SEC(10), &state), 0);
    ASSERT_STR_EQ(state, "succeeded");
    ASSERT_GE(ticks, 10); /* the loop ran other tasks meanwhile */
    enqueue(f, 1, "s.segv", "{}", 0, 1);
    ASSERT_EQ(coil_jobs_wait(f->jobs, f->ids[1], COIL_NEVER, &state), 0);
    ASSERT_STR_EQ(state, "dead");
    ASSERT_EQ(coil_jobs_wait(f->jobs, "0123456789abcdef0123456789abcdef", COIL_SEC(1), &state),
              -ENOENT);
    coil_cancel(t);
    ASSERT_EQ(coil_join(t, NULL), 0);
    return coil_ok(NULL);
}

TEST(wait_suspends_only_the_waiting_task) {
    fixture f = {.dir = fx_tmpdir()};
    start_service(&f, 1);
    RUN_MAIN(wait_main, &f);
    coil_jobs_stop(f.jobs);
    fx_rmtree(f.dir);
}

/* Jobs held ahead of the workers are bounded by their payloads' bytes too:
 * large payloads are not all read into memory at once. */
static coil_result budget_main(void *arg) {
    fixture *f = arg;
    enqueue(f, 0, "s.sleep", "1000", 0, 0);
    await_stats(f, (coil_jobs_stats){.running = 1});
    enum { BIG = 64 * 1024 };
    char *big = malloc(BIG + 1);
    ASSERT(big != NULL);
    memset(big, ' ', BIG);
    memcpy(big, "{}", 2);
    big[BIG] = '\0';
    for (int i = 1; i <= 5; i++) enqueue(f, i, "s.ok", big, 0, 0);
    free(big);
    await_stats(f, (coil_jobs_stats){.waiting = 2});
    coil_sleep(COIL_MSEC(100)); /* time enough to take more, if it would */
    coil_jobs_stats st;
    coil_jobs_get_stats(f->jobs, &st);
    if (st.running == 1) ASSERT_EQ(st.waiting, 2); /* 64 + 64 KiB reach the 100 KiB */
    await_stats(f, (coil_jobs_stats){.succeeded = 6});
    return coil_ok(NULL);
}

TEST(held_jobs_are_bounded_by_payload_bytes) {
    fixture f = {.dir = fx_tmpdir()};
    coil_jobs_config jc;
    coil_jobs_config_init(&jc);
    jc.data_dir = f.dir;
    jc.pool.workers = 1;
    jc.prefetch_bytes = 100 * 1024;
    jc.stop_grace = -1;
    jc.log = false;
    ASSERT_EQ(coil_jobs_start(&jc, &f.jobs), 0);
    RUN_MAIN(budget_main, &f);
    coil_jobs_stop(f.jobs);
    fx_rmtree(f.dir);
}

/* The stall dump names every job the scheduler holds and where it is, the
 * pool's slots, and the jobs loop's tasks. */
static coil_result dump_main(void *arg) {
    fixture *f = arg;
    enqueue(f, 0, "s.sleep", "20000", 0, 0);
    enqueue(f, 1, "s.ok", "{}", 0, 0);
    await_stats(f, (coil_jobs_stats){.running = 1, .waiting = 1});
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    ASSERT(out != NULL);
    coil_jobs_dump(f->jobs, out);
    ASSERT_EQ(fclose(out), 0);
    char want[128];
    snprintf(want, sizeof want, "job %s kind s.sleep", f->ids[0]);
    ASSERT(strstr(text, want) != NULL);
    snprintf(want, sizeof want, "job %s kind s.ok", f->ids[1]);
    ASSERT(strstr(text, want) != NULL);
    ASSERT(strstr(text, "in pool") != NULL);
    ASSERT(strstr(text, " ready") != NULL);
    ASSERT(strstr(text, "slot 0 busy pid ") != NULL);
    ASSERT(strstr(text, "jobs claimer") != NULL); /* the loop's tasks */
    free(text);
    return coil_ok(NULL);
}

TEST(dump_shows_where_each_job_is) {
    fixture f = {.dir = fx_tmpdir()};
    start_service(&f, 1);
    RUN_MAIN(dump_main, &f);
    coil_jobs_stop(f.jobs);
    fx_rmtree(f.dir);
}

/* A chain of three: a succeeds, so b runs; b fails for good (dead after
 * one attempt of five), so b's on-failure follow-up runs and sees b as its
 * parent; the follow-ups for the other outcomes never run. */
typedef struct chain_fixture {
    fixture f;
    char on_b_failed[160], on_b_succeeded[160], on_a_failed[160];
} chain_fixture;

static char *slurp(const char *path) {
    FILE *in = fopen(path, "r");
    ASSERT(in != NULL);
    static char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, in);
    fclose(in);
    buf[n] = '\0';
    return strdup(buf);
}

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}


static coil_result chain_main(void *arg) {
    chain_fixture *cf = arg;
    fixture *f = &cf->f;
    char c_payload[256], d_payload[256], e_payload[256];
    snprintf(c_payload, sizeof c_payload, "{\"file\":\"%s\"}", cf->on_b_failed);
    snprintf(d_payload, sizeof d_payload, "{\"file\":\"%s\"}", cf->on_b_succeeded);
    snprintf(e_payload, sizeof e_payload, "{\"file\":\"%s\"}", cf->on_a_failed);
    coil_job_followup after_b[] = {
        {.kind = "s.record", .payload = c_payload, .when = COIL_JOB_ON_FAILURE},
        {.kind = "s.record", .payload = d_payload, .when = COIL_JOB_ON_SUCCESS},
    };
    coil_job_followup after_a[] = {
        {.kind = "s.refuse", .when = COIL_JOB_ON_SUCCESS, .max_attempts = 5,
         .followups = after_b, .nfollowups = 2},
        {.kind = "s.record", .payload = e_payload, .when = COIL_JOB_ON_FAILURE},
    };
    coil_jobs_enqueue_opts o = {.followups = after_a, .nfollowups = 2};
    ASSERT_EQ(coil_jobs_enqueue(f->jobs, "s.ok", "{}", 2, &o, f->ids[0], NULL), 0);
    /* Follow-ups of unknown kinds, and malformed ones, are refused. */
    char id[COIL_JOB_ID_SIZE];
    coil_job_followup unknown = {.kind = "no.such.kind", .when = COIL_JOB_ON_DONE};
    coil_jobs_enqueue_opts bad = {.followups = &unknown, .nfollowups = 1};
    ASSERT_EQ(coil_jobs_enqueue(f->jobs, "s.ok", "{}", 2, &bad, id, NULL), -ENOENT);
    coil_job_followup not_object = {.kind = "s.ok", .payload = "[1]", .when = COIL_JOB_ON_DONE};
    bad.followups = &not_object;
    ASSERT_EQ(coil_jobs_enqueue(f->jobs, "s.ok", "{}", 2, &bad, id, NULL), -EINVAL);
    coil_job_followup no_when = {.kind = "s.ok"};
    bad.followups = &no_when;
    ASSERT_EQ(coil_jobs_enqueue(f->jobs, "s.ok", "{}", 2, &bad, id, NULL), -EINVAL);
    coil_time until = coil_now() + COIL_SEC(20);
    while (!exists(cf->on_b_failed)) {
        ASSERT(coil_now() < until);
        coil_sleep(COIL_MSEC(10));
    }
    return coil_ok(NULL);
}

static coil_result chain_check(void *arg) {
    chain_fixture *cf = arg;
    fixture *f = &cf->f;
    coil__store *s = open_after(f);
    coil__job *a = await_final(s, f, 0);
    ASSERT_EQ(a->state, COIL__JOB_SUCCEEDED);
    ASSERT(a->followups != NULL);
    coil__job *b = fx_only_followup(s, a->id);
    ASSERT_STR_EQ(b->kind, "s.refuse");
    ASSERT_STR_EQ(b->parent, a->id);
    ASSERT_EQ(b->state, COIL__JOB_DEAD);
    ASSERT_EQ(b->attempts, 1); /* of 5: COIL_JOB_NO_RETRY */
    ASSERT_EQ(b->max_attempts, 5);
    ASSERT_STR_EQ(b->error_msg, "refused for good");
    coil__job *c = fx_only_followup(s, b->id);
    ASSERT_EQ(c->state, COIL__JOB_SUCCEEDED);
    /* c saw its parent, b, and how it ended. */
    char *seen = slurp(cf->on_b_failed);
    json_t *doc = json_loads(seen, 0, NULL);
    json_t *parent = json_object_get(doc, "parent");
    ASSERT_STR_EQ(json_string_value(json_object_get(parent, "id")), b->id);
    ASSERT_STR_EQ(json_string_value(json_object_get(parent, "kind")), "s.refuse");
    ASSERT_STR_EQ(json_string_value(json_object_get(parent, "status")), "dead");
    ASSERT_STR_EQ(json_string_value(json_object_get(parent, "error")), "refused for good");
    ASSERT_EQ(json_integer_value(json_object_get(parent, "attempts")), 1);
    json_decref(doc);
    free(seen);
    ASSERT(!exists(cf->on_b_succeeded));
    ASSERT(!exists(cf->on_a_failed));
    coil__job_free(a);
    coil__job_free(b);
    coil__job_free(c);
    ASSERT_EQ(coil__store_close(s), 0);
    return coil_ok(NULL);
}

TEST(a_chain_runs_the_follow_up_of_the_outcome) {
    chain_fixture t = {.f = {.dir = fx_tmpdir()}};
    char scratch[] = "/tmp/coil-chain-XXXXXX";
    ASSERT(mkdtemp(scratch) != NULL);
    snprintf(t.on_b_failed, sizeof t.on_b_failed, "%s/c", scratch);
    snprintf(t.on_b_succeeded, sizeof t.on_b_succeeded, "%s/d", scratch);
    snprintf(t.on_a_failed, sizeof t.on_a_failed, "%s/e", scratch);
    start_service(&t.f, 1);
    RUN_MAIN(chain_main, &t);
    coil_jobs_stop(t.f.jobs);
    RUN_MAIN(chain_check, &t);
    fx_rmtree(t.f.dir);
    fx_rmtree(strdup(scratch));
}
