/* tests/runtime/test_submit.c: cross-thread submission, remote futures,
 * call_soon_threadsafe and loop threads.
 *
 * COIL_TEST_THREADS: runs under TSan too.
 */
#include "test.h"

#include <unistd.h>

#include "runtime/internal.h"

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

static coil_result double_it(void *arg) {
    /* Suspends, so submissions interleave on the loop. */
    if (coil_yield()) return coil_fail(-ECANCELED);
    return coil_ok((void *)((intptr_t)arg * 2));
}

static coil_result which_loop(void *arg) {
    (void)arg;
    if (coil_sleep(COIL_MSEC(1))) return coil_fail(-ECANCELED);
    return coil_ok(coil_loop_current());
}

/* ------------------------------------------------------------------ basics */

TEST(call_sync_runs_on_the_loop_thread) {
    coil_loop *loop = coil_loop_thread_start();
    ASSERT(loop != NULL);
    coil_result r;
    ASSERT_EQ(coil_call_sync(loop, which_loop, NULL, &r), 0);
    ASSERT_EQ(r.err, 0);
    ASSERT(r.value == loop);
    ASSERT_EQ(coil_call_sync(loop, double_it, (void *)21, &r), 0);
    ASSERT_EQ((intptr_t)r.value, 42);
    coil_loop_thread_stop(loop);
}

static coil_result fails_enoent(void *arg) {
    (void)arg;
    return coil_fail(-ENOENT);
}

TEST(remote_result_carries_task_error) {
    coil_loop *loop = coil_loop_thread_start();
    ASSERT(loop != NULL);
    coil_remote *r = coil_submit(loop, fails_enoent, NULL);
    ASSERT(r != NULL);
    coil_result out;
    ASSERT_EQ(coil_remote_wait(r, &out, COIL_NEVER), 0);
    ASSERT_EQ(out.err, -ENOENT);
    /* A finished remote is returned at once, even with a zero timeout. */
    r = coil_submit(loop, double_it, (void *)4);
    ASSERT(r != NULL);
    ASSERT_EQ(coil_call_sync(loop, double_it, (void *)1, &out), 0); /* r ran before */
    ASSERT_EQ(coil_remote_wait(r, &out, 0), 0);
    ASSERT_EQ((intptr_t)out.value, 8);
    coil_loop_thread_stop(loop);
}

/* An idle loop thread waits for work; it is not deadlocked. */
TEST(idle_loop_thread_waits_for_work) {
    coil_loop *loop = coil_loop_thread_start();
    ASSERT(loop != NULL);
    sleep_ms(50);
    coil_result r;
    ASSERT_EQ(coil_call_sync(loop, double_it, (void *)5, &r), 0);
    ASSERT_EQ((intptr_t)r.value, 10);
    coil_loop_thread_stop(loop);
}

/* ------------------------------------------------------------------ many threads */

enum { SUBMITTERS = 8, PER_THREAD = 150 };

typedef struct submitter {
    coil_loop *loop;
    int id;
    int bad;      /* wrong results seen */
    int waited;   /* results checked */
} submitter;

static void *submit_many(void *arg) {
    submitter *s = arg;
    coil_remote *handles[PER_THREAD];
    for (int i = 0; i < PER_THREAD; i++) {
        handles[i] = coil_submit(s->loop, double_it, (void *)(intptr_t)(s->id * 100000 + i));
        if (!handles[i]) s->bad++;
    }
    for (int i = 0; i < PER_THREAD; i++) {
        if (!handles[i]) continue;
        coil_result out;
        int err = coil_remote_wait(handles[i], &out, COIL_NEVER);
        if (err || out.err || (intptr_t)out.value != 2 * (intptr_t)(s->id * 100000 + i)) s->bad++;
        s->waited++;
    }
    /* And the sync facade, interleaved with the other threads. */
    for (int i = 0; i < 20; i++) {
        coil_result out;
        int err = coil_call_sync(s->loop, double_it, (void *)(intptr_t)i, &out);
        if (err || out.err || (intptr_t)out.value != 2 * i) s->bad++;
        s->waited++;
    }
    return NULL;
}

TEST(submit_from_eight_threads) {
    coil_loop *loop = coil_loop_thread_start();
    ASSERT(loop != NULL);
    pthread_t th[SUBMITTERS];
    submitter s[SUBMITTERS];
    for (int i = 0; i < SUBMITTERS; i++) {
        s[i] = (submitter){loop, i + 1, 0, 0};
        ASSERT_EQ(pthread_create(&th[i], NULL, submit_many, &s[i]), 0);
    }
    for (int i = 0; i < SUBMITTERS; i++) {
        ASSERT_EQ(pthread_join(th[i], NULL), 0);
        ASSERT_EQ(s[i].bad, 0);
        ASSERT_EQ(s[i].waited, PER_THREAD + 20);
    }
    coil_loop_thread_stop(loop);
}

/* ------------------------------------------------------------------ waiting in a task */

static atomic_int ticks;

static coil_result ticker(void *arg) {
    atomic_int *stop = arg;
    while (!atomic_load(stop)) {
        if (coil_sleep(COIL_MSEC(2))) break;
        atomic_fetch_add(&ticks, 1);
    }
    return coil_ok(NULL);
}

/* Runs on the remote loop: at least 100 ms, and until the waiting loop has
 * ticked five times, which it can only do if its waiter did not block it. */
static coil_result slow_remote(void *arg) {
    if (coil_sleep(COIL_MSEC(100))) return coil_fail(-ECANCELED);
    for (int i = 0; i < 10000 && atomic_load(&ticks) < 5; i++)
        if (coil_sleep(COIL_MSEC(1))) return coil_fail(-ECANCELED);
    return coil_ok((void *)((intptr_t)arg + 1));
}

static coil_result wait_in_task_main(void *arg) {
    coil_loop *remote_loop = arg;
    atomic_int stop = 0;
    coil_task *t = coil_spawn(ticker, &stop);
    coil_remote *r = coil_submit(remote_loop, slow_remote, (void *)7);
    ASSERT(r != NULL);
    coil_result out;
    ASSERT_EQ(coil_remote_wait(r, &out, COIL_NEVER), 0);
    ASSERT_EQ(out.err, 0);
    ASSERT_EQ((intptr_t)out.value, 8);
    ASSERT_GE(atomic_load(&ticks), 5);
    atomic_store(&stop, 1);
    ASSERT_EQ(coil_join(t, NULL), 0);
    /* coil_call_sync from a task suspends it the same way. */
    ASSERT_EQ(coil_call_sync(remote_loop, double_it, (void *)3, &out), 0);
    ASSERT_EQ((intptr_t)out.value, 6);
    return coil_ok(NULL);
}

TEST(remote_wait_in_task_suspends_only_that_task) {
    coil_loop *loop = coil_loop_thread_start();
    ASSERT(loop != NULL);
    RUN_MAIN(wait_in_task_main, loop);
    coil_loop_thread_stop(loop);
}

/* The target is the waiter's own loop: it must not deadlock. */
static coil_result own_loop_main(void *arg) {
    (void)arg;
    coil_remote *r = coil_submit(coil_loop_current(), double_it, (void *)50);
    ASSERT(r != NULL);
    coil_result out;
    ASSERT_EQ(coil_remote_wait(r, &out, COIL_NEVER), 0);
    ASSERT_EQ((intptr_t)out.value, 100);
    ASSERT_EQ(coil_call_sync(coil_loop_current(), which_loop, NULL, &out), 0);
    ASSERT(out.value == coil_loop_current());
    return coil_ok(NULL);
}

TEST(remote_wait_on_own_loop) {
    RUN_MAIN(own_loop_main, NULL);
    /* And on a loop thread, from a task submitted to it. */
    coil_loop *loop = coil_loop_thread_start();
    ASSERT(loop != NULL);
    coil_result out;
    ASSERT_EQ(coil_call_sync(loop, own_loop_main, NULL, &out), 0);
    ASSERT_EQ(out.err, 0);
    coil_loop_thread_stop(loop);
}

/* Several tasks of one loop wait on another loop at once. */
static coil_result fan_out(void *arg) {
    coil_loop *remote_loop = arg;
    coil_remote *r[20];
    for (intptr_t i = 0; i < 20; i++) {
        r[i] = coil_submit(remote_loop, double_it, (void *)i);
        ASSERT(r[i] != NULL);
    }
    for (intptr_t i = 19; i >= 0; i--) {
        coil_result out;
        ASSERT_EQ(coil_remote_wait(r[i], &out, COIL_NEVER), 0);
        ASSERT_EQ((intptr_t)out.value, 2 * i);
    }
    return coil_ok(NULL);
}

static coil_result fan_out_main(void *arg) {
    coil_group g;
    coil_group_init(&g);
    for (int i = 0; i < 10; i++) ASSERT(coil_group_spawn(&g, fan_out, arg));
    ASSERT_EQ(coil_group_wait(&g), 0);
    coil_group_destroy(&g);
    return coil_ok(NULL);
}

TEST(many_tasks_wait_on_remote_loop) {
    coil_loop *loop = coil_loop_thread_start();
    ASSERT(loop != NULL);
    RUN_MAIN(fan_out_main, loop);
    coil_loop_thread_stop(loop);
}

/* ------------------------------------------------------------------ timeouts and cancellation */

static atomic_int sleeper_saw;
static atomic_int sleeper_done;

static coil_result long_sleeper(void *arg) {
    (void)arg;
    int err = coil_sleep(COIL_SEC(60));
    atomic_store(&sleeper_saw, err);
    atomic_store(&sleeper_done, 1);
    return coil_fail(err);
}

TEST(remote_wait_timeout_cancels_task) {
    coil_loop *loop = coil_loop_thread_start();
    ASSERT(loop != NULL);
    coil_remote *r = coil_submit(loop, long_sleeper, NULL);
    ASSERT(r != NULL);
    coil_result out = {NULL, 0};
    ASSERT_EQ(coil_remote_wait(r, &out, COIL_MSEC(30)), -ETIMEDOUT);
    ASSERT_EQ(out.err, -ETIMEDOUT);
    ASSERT(wait_flag(&sleeper_done));
    ASSERT_EQ(atomic_load(&sleeper_saw), -ECANCELED);
    coil_loop_thread_stop(loop);
}

static coil_result timeout_in_task_main(void *arg) {
    coil_loop *remote_loop = arg;
    coil_remote *r = coil_submit(remote_loop, long_sleeper, NULL);
    ASSERT(r != NULL);
    coil_result out = {NULL, 0};
    ASSERT_EQ(coil_remote_wait(r, &out, COIL_MSEC(30)), -ETIMEDOUT);
    ASSERT_EQ(out.err, -ETIMEDOUT);
    /* The waiter is not cancelled by its own timeout. */
    ASSERT_EQ(coil_check_cancel(), 0);
    for (int i = 0; i < 10000 && !atomic_load(&sleeper_done); i++)
        ASSERT_EQ(coil_sleep(COIL_MSEC(1)), 0);
    ASSERT_EQ(atomic_load(&sleeper_saw), -ECANCELED);
    return coil_ok(NULL);
}

TEST(remote_wait_timeout_in_task_cancels_task) {
    coil_loop *loop = coil_loop_thread_start();
    ASSERT(loop != NULL);
    RUN_MAIN(timeout_in_task_main, loop);
    coil_loop_thread_stop(loop);
}

static coil_result scoped_wait(void *arg) {
    coil_loop *remote_loop = arg;
    coil_remote *r = coil_submit(remote_loop, long_sleeper, NULL);
    if (!r) return coil_fail(-ENOMEM);
    coil_scope s;
    coil_scope_enter(&s, coil_now() + COIL_MSEC(30));
    coil_result out;
    int err = coil_remote_wait(r, &out, COIL_NEVER);
    coil_scope_exit(&s);
    return coil_fail(err);
}

static coil_result scope_main(void *arg) {
    coil_result r;
    ASSERT_EQ(coil_join(coil_spawn(scoped_wait, arg), &r), 0);
    ASSERT_EQ(r.err, -ETIMEDOUT);
    for (int i = 0; i < 10000 && !atomic_load(&sleeper_done); i++)
        ASSERT_EQ(coil_sleep(COIL_MSEC(1)), 0);
    ASSERT_EQ(atomic_load(&sleeper_saw), -ECANCELED);
    return coil_ok(NULL);
}

TEST(remote_wait_in_expired_scope_cancels_task) {
    coil_loop *loop = coil_loop_thread_start();
    ASSERT(loop != NULL);
    RUN_MAIN(scope_main, loop);
    coil_loop_thread_stop(loop);
}

TEST(remote_cancel) {
    coil_loop *loop = coil_loop_thread_start();
    ASSERT(loop != NULL);
    coil_remote *r = coil_submit(loop, long_sleeper, NULL);
    ASSERT(r != NULL);
    coil_remote_cancel(r);
    coil_remote_cancel(r); /* idempotent */
    coil_result out;
    ASSERT_EQ(coil_remote_wait(r, &out, COIL_NEVER), 0);
    ASSERT_EQ(out.err, -ECANCELED);
    coil_loop_thread_stop(loop);
}

/* ------------------------------------------------------------------ stopping */

TEST(loop_thread_stop_cancels_its_tasks) {
    coil_loop *loop = coil_loop_thread_start();
    ASSERT(loop != NULL);
    coil_remote *r = coil_submit(loop, long_sleeper, NULL);
    ASSERT(r != NULL);
    coil_result out;
    ASSERT_EQ(coil_call_sync(loop, double_it, (void *)1, &out), 0); /* r has started */
    coil_loop_thread_stop(loop);
    ASSERT_EQ(atomic_load(&sleeper_saw), -ECANCELED);
    /* The handle outlives the loop. */
    ASSERT_EQ(coil_remote_wait(r, &out, COIL_NEVER), 0);
    ASSERT_EQ(out.err, -ECANCELED);
}

/* Holds the loop until it is being stopped, then until `go`. */
static atomic_int stubborn_started;
static atomic_int saw_stop;
static atomic_int go;
static atomic_int late_ran;

static coil_result stubborn(void *arg) {
    (void)arg;
    atomic_store(&stubborn_started, 1);
    while (coil_sleep(COIL_MSEC(1)) == 0) {
    }
    atomic_store(&saw_stop, 1);
    coil_scope shield;
    coil_scope_enter_shielded(&shield, COIL_NEVER);
    while (!atomic_load(&go)) coil_sleep(COIL_MSEC(1));
    coil_scope_exit(&shield);
    return coil_ok(NULL);
}

static coil_result late(void *arg) {
    (void)arg;
    atomic_store(&late_ran, 1);
    return coil_ok(NULL);
}

static void *stopper(void *arg) {
    coil_loop_thread_stop(arg);
    return NULL;
}

TEST(submit_to_stopping_loop_is_esrch) {
    coil_loop *loop = coil_loop_thread_start();
    ASSERT(loop != NULL);
    coil_remote *held = coil_submit(loop, stubborn, NULL);
    ASSERT(held != NULL);
    ASSERT(wait_flag(&stubborn_started));
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, stopper, loop), 0);
    ASSERT(wait_flag(&saw_stop));
    /* Stopping, not yet closed: accepted, then refused. */
    coil_remote *r = coil_submit(loop, late, NULL);
    ASSERT(r != NULL);
    coil_result out;
    ASSERT_EQ(coil_remote_wait(r, &out, COIL_NEVER), -ESRCH);
    ASSERT_EQ(out.err, -ESRCH);
    atomic_store(&go, 1);
    ASSERT_EQ(pthread_join(th, NULL), 0);
    ASSERT_EQ(coil_remote_wait(held, &out, COIL_NEVER), 0);
    ASSERT_EQ(out.err, 0);
    ASSERT_EQ(atomic_load(&late_ran), 0);
}

/* Blocks the loop thread (on purpose) until two cross-thread calls are
 * queued behind it, so that they run in one batch. */
static coil_result hog_until_two_queued(void *arg) {
    (void)arg;
    coil_loop *loop = coil_loop_current();
    for (int i = 0; i < 10000; i++) {
        pthread_mutex_lock(&loop->xlock);
        bool two = loop->xcalls_head && loop->xcalls_head->next;
        pthread_mutex_unlock(&loop->xlock);
        if (two) break;
        sleep_ms(1);
    }
    return coil_ok(NULL);
}

TEST(remote_cancelled_before_it_ran) {
    coil_loop *loop = coil_loop_thread_start();
    ASSERT(loop != NULL);
    coil_remote *hog = coil_submit(loop, hog_until_two_queued, NULL);
    ASSERT(hog != NULL);
    coil_result out;
    /* Wait until the hog holds the loop: its start call is consumed. */
    for (int i = 0; i < 10000; i++) {
        pthread_mutex_lock(&loop->xlock);
        bool empty = loop->xcalls_head == NULL;
        pthread_mutex_unlock(&loop->xlock);
        if (empty) break;
        sleep_ms(1);
    }
    /* Spawned, then cancelled by the stop in the same batch: it never runs,
     * and its waiter still hears about it. */
    coil_remote *r = coil_submit(loop, late, NULL);
    ASSERT(r != NULL);
    coil_loop_thread_stop(loop);
    ASSERT_EQ(coil_remote_wait(r, &out, COIL_NEVER), 0);
    ASSERT_EQ(out.err, -ECANCELED);
    ASSERT_EQ(atomic_load(&late_ran), 0);
    ASSERT_EQ(coil_remote_wait(hog, &out, COIL_NEVER), 0);
}

/* ------------------------------------------------------------------ call_soon_threadsafe */

enum { NCALLS = 1000 };

typedef struct order_log {
    int seen[3 * NCALLS]; /* loop thread only */
    int n;
} order_log;

static order_log olog;

static void record(void *arg) { olog.seen[olog.n++] = (int)(intptr_t)arg; }

typedef struct poster {
    coil_loop *loop;
    int base; /* values base, base+1, ... */
    int err;
} poster;

static void *post_many(void *arg) {
    poster *p = arg;
    for (int i = 0; i < NCALLS; i++) {
        int err = coil_call_soon_threadsafe(p->loop, record, (void *)(intptr_t)(p->base + i));
        if (err) p->err = err;
    }
    return NULL;
}

static coil_result read_log(void *arg) {
    order_log *copy = arg;
    *copy = olog;
    return coil_ok(NULL);
}

TEST(call_soon_threadsafe_keeps_order) {
    coil_loop *loop = coil_loop_thread_start();
    ASSERT(loop != NULL);
    /* One thread: exactly in order. */
    poster p = {loop, 0, 0};
    post_many(&p);
    ASSERT_EQ(p.err, 0);
    static order_log copy;
    coil_result out;
    ASSERT_EQ(coil_call_sync(loop, read_log, &copy, &out), 0);
    ASSERT_EQ(copy.n, NCALLS);
    for (int i = 0; i < NCALLS; i++) ASSERT_EQ(copy.seen[i], i);

    /* Two threads at once: each one's calls stay in its order. */
    pthread_t th[2];
    poster ps[2] = {{loop, 10000, 0}, {loop, 20000, 0}};
    for (int i = 0; i < 2; i++) ASSERT_EQ(pthread_create(&th[i], NULL, post_many, &ps[i]), 0);
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(pthread_join(th[i], NULL), 0);
        ASSERT_EQ(ps[i].err, 0);
    }
    ASSERT_EQ(coil_call_sync(loop, read_log, &copy, &out), 0);
    ASSERT_EQ(copy.n, 3 * NCALLS); /* the first batch and two more */
    int next[2] = {10000, 20000};
    for (int i = NCALLS; i < copy.n; i++) {
        int v = copy.seen[i];
        int who = v >= 20000;
        ASSERT_EQ(v, next[who]);
        next[who]++;
    }
    ASSERT_EQ(next[0], 10000 + NCALLS);
    ASSERT_EQ(next[1], 20000 + NCALLS);
    coil_loop_thread_stop(loop);
}

/* A task that shields itself and waits for nothing keeps the loop from
 * draining: stop still returns, reports it, and the loop refuses work. */
static coil_result stuck_forever(void *arg) {
    (void)arg;
    coil_event never;
    coil_event_init(&never);
    coil_scope shield;
    coil_scope_enter_shielded(&shield, COIL_NEVER);
    coil_event_wait(&never);
    coil_scope_exit(&shield);
    return coil_ok(NULL);
}

TEST(loop_thread_stop_with_stuck_task) {
    coil_loop *loop = coil_loop_thread_start();
    ASSERT(loop != NULL);
    coil_result out;
    ASSERT_EQ(coil_call_sync(loop, double_it, (void *)1, &out), 0);
    coil_remote *r = coil_submit(loop, stuck_forever, NULL);
    ASSERT(r != NULL);
    ASSERT_EQ(coil_call_sync(loop, double_it, (void *)1, &out), 0); /* r is parked */
    coil_test_capture_stderr_begin();
    coil_loop_thread_stop(loop);
    char *log = coil_test_capture_stderr_end();
    ASSERT_CONTAINS(log, "tasks cannot finish");
    ASSERT_CONTAINS(log, "remote");
    free(log);
    ASSERT_EQ(coil_remote_wait(r, &out, COIL_MSEC(1)), -ETIMEDOUT);
    /* The stuck loop is leaked on purpose (its task's stack is still in
     * use): skip the leak check that exit() would run. */
    fflush(NULL);
    _exit(0);
}

/* From the loop's own thread: never run inside the call. */
static void set_flag(void *arg) { *(int *)arg = 1; }

static coil_result post_to_self_main(void *arg) {
    (void)arg;
    int ran = 0;
    ASSERT_EQ(coil_call_soon_threadsafe(coil_loop_current(), set_flag, &ran), 0);
    ASSERT_EQ(ran, 0);
    for (int i = 0; i < 10000 && !ran; i++) ASSERT_EQ(coil_sleep(COIL_MSEC(1)), 0);
    ASSERT_EQ(ran, 1);
    return coil_ok(NULL);
}

TEST(call_soon_threadsafe_from_own_loop) { RUN_MAIN(post_to_self_main, NULL); }
