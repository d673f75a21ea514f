/* tests/runtime/test_threadpool.c: coil_to_thread and the blocking-call pool.
 *
 * COIL_TEST_THREADS: runs under TSan too. Each TEST runs in its own process,
 * so each may configure the pool before its first use.
 */
#include "test.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Polls `flag` until it is non-zero, for at most ~10 s. */
static bool wait_flag(atomic_int *flag) {
    for (int i = 0; i < 10000 && !atomic_load(flag); i++) sleep_ms(1);
    return atomic_load(flag) != 0;
}

/* From a task: sleeps until the pool shows `busy` running and `queued`
 * waiting, for at most ~10 s. */
static void await_stats(size_t busy, size_t queued) {
    coil_threadpool_stats st;
    for (int i = 0; i < 10000; i++) {
        coil_threadpool_get_stats(&st);
        if (st.busy == busy && st.queued == queued) return;
        ASSERT_EQ(coil_sleep(COIL_MSEC(1)), 0);
    }
    coil_threadpool_get_stats(&st);
    ASSERT_EQ(st.busy, busy);
    ASSERT_EQ(st.queued, queued);
}

/* A blocking call that holds its pool thread until `release` is set. */
static atomic_int release;
static atomic_int started;

static void *blocker(void *arg) {
    atomic_fetch_add(&started, 1);
    wait_flag(&release);
    return arg;
}

static coil_result offload_blocker(void *arg) {
    void *out = NULL;
    int err = coil_to_thread(blocker, arg, &out);
    if (err) return coil_fail(err);
    return coil_ok(out);
}

/* ------------------------------------------------------------------ results */

static atomic_int ticks;

static coil_result ticker(void *arg) {
    atomic_int *stop = arg;
    while (!atomic_load(stop)) {
        if (coil_sleep(COIL_MSEC(2))) break;
        atomic_fetch_add(&ticks, 1);
    }
    return coil_ok(NULL);
}

/* Blocks its thread for 100 ms, and until the other task has ticked five
 * times: that can only happen if the loop kept running meanwhile. */
static void *slow_plus_one(void *arg) {
    sleep_ms(100);
    for (int i = 0; i < 10000 && atomic_load(&ticks) < 5; i++) sleep_ms(1);
    return (void *)((intptr_t)arg + 1);
}

static coil_result only_caller_waits_main(void *arg) {
    (void)arg;
    atomic_int stop = 0;
    coil_task *t = coil_spawn(ticker, &stop);
    void *out = NULL;
    ASSERT_EQ(coil_to_thread(slow_plus_one, (void *)41, &out), 0);
    ASSERT_EQ((intptr_t)out, 42);
    ASSERT_GE(atomic_load(&ticks), 5);
    atomic_store(&stop, 1);
    ASSERT_EQ(coil_join(t, NULL), 0);
    /* The result pointer may be NULL. */
    ASSERT_EQ(coil_to_thread(slow_plus_one, (void *)1, NULL), 0);
    return coil_ok(NULL);
}

TEST(to_thread_result_only_caller_waits) { RUN_MAIN(only_caller_waits_main, NULL); }

/* With a pool call in flight and nothing else, the loop is not deadlocked. */
static void *nap(void *arg) {
    sleep_ms(30);
    return arg;
}

static coil_result lone_offload_main(void *arg) {
    (void)arg;
    void *out = NULL;
    ASSERT_EQ(coil_to_thread(nap, (void *)7, &out), 0);
    ASSERT_EQ((intptr_t)out, 7);
    return coil_ok(NULL);
}

TEST(pending_call_is_not_deadlock) { RUN_MAIN(lone_offload_main, NULL); }

static void *square(void *arg) {
    intptr_t v = (intptr_t)arg;
    return (void *)(v * v);
}

static coil_result squarer(void *arg) {
    intptr_t base = (intptr_t)arg;
    for (intptr_t i = 0; i < 20; i++) {
        void *out = NULL;
        int err = coil_to_thread(square, (void *)(base + i), &out);
        if (err) return coil_fail(err);
        if ((intptr_t)out != (base + i) * (base + i)) return coil_fail(-EINVAL);
    }
    return coil_ok(NULL);
}

static coil_result many_calls_main(void *arg) {
    (void)arg;
    coil_group g;
    coil_group_init(&g);
    for (intptr_t i = 0; i < 40; i++) ASSERT(coil_group_spawn(&g, squarer, (void *)(i * 100)));
    ASSERT_EQ(coil_group_wait(&g), 0);
    coil_group_destroy(&g);
    coil_threadpool_stats st;
    coil_threadpool_get_stats(&st);
    ASSERT_EQ(st.done, 40 * 20);
    ASSERT_EQ(st.busy, 0);
    ASSERT_EQ(st.queued, 0);
    ASSERT_LE(st.threads, 4);
    return coil_ok(NULL);
}

TEST(many_tasks_many_calls) {
    ASSERT_EQ(coil_threadpool_configure(4, 0), 0);
    RUN_MAIN(many_calls_main, NULL);
}

/* ------------------------------------------------------------------ threads and stats */

static coil_result lazy_threads_main(void *arg) {
    (void)arg;
    coil_threadpool_stats st;
    coil_threadpool_get_stats(&st);
    ASSERT_EQ(st.threads, 0); /* nothing started before first use */
    /* One task calling back to back needs one thread. */
    for (intptr_t i = 0; i < 200; i++) {
        void *out = NULL;
        ASSERT_EQ(coil_to_thread(square, (void *)i, &out), 0);
        ASSERT_EQ((intptr_t)out, i * i);
    }
    coil_threadpool_get_stats(&st);
    ASSERT_EQ(st.threads, 1);
    ASSERT_EQ(st.done, 200);
    /* Three blocking at once need three. */
    coil_task *t[3];
    for (intptr_t i = 0; i < 3; i++) t[i] = coil_spawn(offload_blocker, (void *)i);
    await_stats(3, 0);
    coil_threadpool_get_stats(&st);
    ASSERT_EQ(st.threads, 3);
    atomic_store(&release, 1);
    for (intptr_t i = 0; i < 3; i++) {
        coil_result r;
        ASSERT_EQ(coil_join(t[i], &r), 0);
        ASSERT_EQ(r.err, 0);
        ASSERT_EQ((intptr_t)r.value, i);
    }
    return coil_ok(NULL);
}

TEST(threads_start_lazily_up_to_bound) {
    ASSERT_EQ(coil_threadpool_configure(3, 0), 0);
    RUN_MAIN(lazy_threads_main, NULL);
}

static coil_result queue_depth_main(void *arg) {
    (void)arg;
    coil_task *t[5];
    for (intptr_t i = 0; i < 5; i++) t[i] = coil_spawn(offload_blocker, (void *)i);
    await_stats(2, 3);
    coil_threadpool_stats st;
    coil_threadpool_get_stats(&st);
    ASSERT_EQ(st.threads, 2);
    ASSERT_EQ(st.busy, 2);
    ASSERT_EQ(st.queued, 3);
    ASSERT_EQ(st.done, 0);
    atomic_store(&release, 1);
    for (intptr_t i = 0; i < 5; i++) {
        coil_result r;
        ASSERT_EQ(coil_join(t[i], &r), 0);
        ASSERT_EQ(r.err, 0);
        ASSERT_EQ((intptr_t)r.value, i);
    }
    coil_threadpool_get_stats(&st);
    ASSERT_EQ(st.busy, 0);
    ASSERT_EQ(st.queued, 0);
    ASSERT_EQ(st.done, 5);
    return coil_ok(NULL);
}

TEST(stats_report_queue_depth) {
    ASSERT_EQ(coil_threadpool_configure(2, 16), 0);
    RUN_MAIN(queue_depth_main, NULL);
}

static coil_result configure_main(void *arg) {
    (void)arg;
    ASSERT_EQ(coil_to_thread(square, (void *)3, NULL), 0);
    ASSERT_EQ(coil_threadpool_configure(8, 100), -EBUSY);
    return coil_ok(NULL);
}

TEST(configure_only_before_first_use) {
    ASSERT_EQ(coil_threadpool_configure(2, 10), 0);
    ASSERT_EQ(coil_threadpool_configure(3, 10), 0); /* still before use */
    RUN_MAIN(configure_main, NULL);
    ASSERT_EQ(coil_threadpool_configure(8, 100), -EBUSY);
}

TEST(to_thread_outside_task_is_eperm) {
    ASSERT_EQ(coil_to_thread(square, (void *)3, NULL), -EPERM);
    ASSERT(!coil_thread_cancelled());
}

/* ------------------------------------------------------------------ bounds */

static coil_result queue_full_main(void *arg) {
    (void)arg;
    coil_task *t[3];
    t[0] = coil_spawn(offload_blocker, (void *)0);
    await_stats(1, 0);
    for (intptr_t i = 1; i < 3; i++) t[i] = coil_spawn(offload_blocker, (void *)i);
    await_stats(1, 2);
    /* One running, two queued: the queue bound is hit. */
    ASSERT_EQ(coil_to_thread(square, (void *)2, NULL), -EAGAIN);
    coil_threadpool_stats st;
    coil_threadpool_get_stats(&st);
    ASSERT_EQ(st.queued, 2);
    atomic_store(&release, 1);
    for (intptr_t i = 0; i < 3; i++) {
        coil_result r;
        ASSERT_EQ(coil_join(t[i], &r), 0);
        ASSERT_EQ(r.err, 0);
        ASSERT_EQ((intptr_t)r.value, i);
    }
    /* Room again. */
    void *out = NULL;
    ASSERT_EQ(coil_to_thread(square, (void *)2, &out), 0);
    ASSERT_EQ((intptr_t)out, 4);
    return coil_ok(NULL);
}

TEST(full_queue_is_eagain) {
    ASSERT_EQ(coil_threadpool_configure(1, 2), 0);
    RUN_MAIN(queue_full_main, NULL);
}

/* ------------------------------------------------------------------ cancellation */

static atomic_int ran;

static void *must_not_run(void *arg) {
    atomic_store(&ran, 1);
    return arg;
}

static coil_result offload_must_not_run(void *arg) {
    (void)arg;
    return coil_fail(coil_to_thread(must_not_run, NULL, NULL));
}

static coil_result offload_must_not_run_in_scope(void *arg) {
    (void)arg;
    coil_scope s;
    coil_scope_enter(&s, coil_now() + COIL_MSEC(20));
    int err = coil_to_thread(must_not_run, NULL, NULL);
    coil_scope_exit(&s);
    return coil_fail(err);
}

static coil_result cancel_queued_main(void *arg) {
    (void)arg;
    coil_task *busy = coil_spawn(offload_blocker, (void *)5);
    await_stats(1, 0);
    coil_task *victim = coil_spawn(offload_must_not_run, NULL);
    await_stats(1, 1);
    coil_cancel(victim);
    coil_result r;
    ASSERT_EQ(coil_join(victim, &r), 0);
    ASSERT_EQ(r.err, -ECANCELED);
    coil_threadpool_stats st;
    coil_threadpool_get_stats(&st);
    ASSERT_EQ(st.queued, 0); /* taken out of the queue */

    /* An expiring deadline scope does the same, with -ETIMEDOUT. */
    coil_task *timed = coil_spawn(offload_must_not_run_in_scope, NULL);
    ASSERT_EQ(coil_join(timed, &r), 0);
    ASSERT_EQ(r.err, -ETIMEDOUT);
    coil_threadpool_get_stats(&st);
    ASSERT_EQ(st.queued, 0);

    atomic_store(&release, 1);
    ASSERT_EQ(coil_join(busy, &r), 0);
    ASSERT_EQ((intptr_t)r.value, 5);
    /* The pool goes on, and the cancelled calls never ran. */
    ASSERT_EQ(coil_to_thread(square, (void *)3, NULL), 0);
    coil_threadpool_get_stats(&st);
    ASSERT_EQ(st.done, 2);
    ASSERT_EQ(atomic_load(&ran), 0);
    return coil_ok(NULL);
}

TEST(cancel_queued_call_never_runs) {
    ASSERT_EQ(coil_threadpool_configure(1, 16), 0);
    RUN_MAIN(cancel_queued_main, NULL);
    ASSERT_EQ(atomic_load(&ran), 0);
}

/* Runs until asked to stop; returns 1 if it was asked. */
static atomic_int finished;

static void *until_cancelled(void *arg) {
    (void)arg;
    atomic_store(&started, 1);
    bool asked = false;
    for (int i = 0; i < 10000 && !(asked = coil_thread_cancelled()); i++) sleep_ms(1);
    sleep_ms(20); /* the task must still wait for this */
    atomic_store(&finished, 1);
    return (void *)(intptr_t)asked;
}

typedef struct offload_out {
    int err;
    void *value;
    int finished_seen;
} offload_out;

static coil_result offload_until_cancelled(void *arg) {
    offload_out *o = arg;
    o->err = coil_to_thread(until_cancelled, NULL, &o->value);
    o->finished_seen = atomic_load(&finished);
    /* Level-triggered: the cancellation stays pending. */
    ASSERT_EQ(coil_yield(), -ECANCELED);
    return coil_ok(NULL);
}

static coil_result offload_until_deadline(void *arg) {
    offload_out *o = arg;
    coil_scope s;
    coil_scope_enter(&s, coil_now() + COIL_MSEC(30));
    o->err = coil_to_thread(until_cancelled, NULL, &o->value);
    o->finished_seen = atomic_load(&finished);
    ASSERT_EQ(coil_scope_exit(&s), -ETIMEDOUT);
    return coil_ok(NULL);
}

static coil_result cancel_running_main(void *arg) {
    (void)arg;
    offload_out o = {0, NULL, 0};
    coil_task *t = coil_spawn(offload_until_cancelled, &o);
    for (int i = 0; i < 10000 && !atomic_load(&started); i++) ASSERT_EQ(coil_sleep(COIL_MSEC(1)), 0);
    ASSERT_EQ(atomic_load(&started), 1);
    coil_cancel(t);
    ASSERT_EQ(coil_join(t, NULL), 0);
    ASSERT_EQ(o.err, -ECANCELED);
    ASSERT_EQ((intptr_t)o.value, 1);  /* fn saw the flag; its result is stored */
    ASSERT_EQ(o.finished_seen, 1);    /* and the task waited for fn to return */

    atomic_store(&started, 0);
    atomic_store(&finished, 0);
    offload_out d = {0, NULL, 0};
    t = coil_spawn(offload_until_deadline, &d);
    ASSERT_EQ(coil_join(t, NULL), 0);
    ASSERT_EQ(d.err, -ETIMEDOUT);
    ASSERT_EQ((intptr_t)d.value, 1);
    ASSERT_EQ(d.finished_seen, 1);
    coil_threadpool_stats st;
    coil_threadpool_get_stats(&st);
    ASSERT_EQ(st.done, 2);
    return coil_ok(NULL);
}

TEST(cancel_running_call_sets_flag) {
    ASSERT_EQ(coil_threadpool_configure(2, 16), 0);
    RUN_MAIN(cancel_running_main, NULL);
}

static coil_result cancel_then_offload(void *arg) {
    (void)arg;
    coil_cancel(coil_current());
    return coil_fail(coil_to_thread(must_not_run, NULL, NULL));
}

static coil_result pending_cancel_main(void *arg) {
    (void)arg;
    coil_result r;
    ASSERT_EQ(coil_join(coil_spawn(cancel_then_offload, NULL), &r), 0);
    ASSERT_EQ(r.err, -ECANCELED);
    ASSERT_EQ(atomic_load(&ran), 0);
    return coil_ok(NULL);
}

TEST(pending_cancellation_skips_call) { RUN_MAIN(pending_cancel_main, NULL); }

/* ------------------------------------------------------------------ several loops */

/* Every loop is set up before any closes: libuv closes descriptors with a
 * raw syscall TSan does not see, so a number reused across threads would
 * look like a race. */
static pthread_barrier_t all_up;

static coil_result offload_on_loop(void *arg) {
    intptr_t base = (intptr_t)arg;
    pthread_barrier_wait(&all_up);
    for (intptr_t i = 0; i < 50; i++) {
        void *out = NULL;
        int err = coil_to_thread(square, (void *)(base + i), &out);
        if (err) return coil_fail(err);
        if ((intptr_t)out != (base + i) * (base + i)) return coil_fail(-EINVAL);
    }
    return coil_ok((void *)base);
}

static void *run_loop_thread(void *arg) {
    coil_result r;
    int err = coil_run(offload_on_loop, arg, &r);
    return (void *)(intptr_t)(err ? err : r.err);
}

TEST(loops_on_many_threads_share_the_pool) {
    ASSERT_EQ(coil_threadpool_configure(3, 0), 0);
    ASSERT_EQ(pthread_barrier_init(&all_up, NULL, 4), 0);
    pthread_t th[4];
    for (intptr_t i = 0; i < 4; i++)
        ASSERT_EQ(pthread_create(&th[i], NULL, run_loop_thread, (void *)(i * 1000)), 0);
    for (int i = 0; i < 4; i++) {
        void *ret;
        ASSERT_EQ(pthread_join(th[i], &ret), 0);
        ASSERT_EQ((intptr_t)ret, 0);
    }
    coil_threadpool_stats st;
    coil_threadpool_get_stats(&st);
    ASSERT_EQ(st.done, 4 * 50);
    ASSERT_LE(st.threads, 3);
}
