/* tests/runtime/test_task.c: spawn, join, detach, cancel, yield. */
#include "test.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static coil_result add_one(void *arg) { return coil_ok((void *)((intptr_t)arg + 1)); }

static coil_result spawn_join_main(void *arg) {
    (void)arg;
    coil_task *t = coil_spawn(add_one, (void *)41);
    ASSERT(t != NULL);
    coil_result r;
    ASSERT_EQ(coil_join(t, &r), 0);
    ASSERT_EQ(r.err, 0);
    ASSERT_EQ((intptr_t)r.value, 42);
    return coil_ok(NULL);
}

TEST(spawn_join) { RUN_MAIN(spawn_join_main, NULL); }

static coil_result fails(void *arg) { return coil_fail((int)(intptr_t)arg); }

static coil_result join_error_main(void *arg) {
    (void)arg;
    coil_result r;
    ASSERT_EQ(coil_join(coil_spawn(fails, (void *)-ENOENT), &r), 0);
    ASSERT_EQ(r.err, -ENOENT);
    return coil_ok(NULL);
}

TEST(join_reports_child_error) { RUN_MAIN(join_error_main, NULL); }

static coil_result main_result(void *arg) { return coil_ok(arg); }

TEST(run_returns_main_result) {
    coil_result r;
    ASSERT_EQ(coil_run(main_result, (void *)7, &r), 0);
    ASSERT_EQ((intptr_t)r.value, 7);
    ASSERT_EQ(coil_run(fails, (void *)-EBUSY, &r), 0);
    ASSERT_EQ(r.err, -EBUSY);
}

static int order[8];
static int norder;

static coil_result yielder(void *arg) {
    for (int i = 0; i < 3; i++) {
        order[norder++] = (int)(intptr_t)arg;
        ASSERT_EQ(coil_yield(), 0);
    }
    return coil_ok(NULL);
}

static coil_result yield_main(void *arg) {
    (void)arg;
    coil_task *a = coil_spawn(yielder, (void *)1);
    coil_task *b = coil_spawn(yielder, (void *)2);
    ASSERT_EQ(coil_join(a, NULL), 0);
    ASSERT_EQ(coil_join(b, NULL), 0);
    return coil_ok(NULL);
}

TEST(yield_interleaves_fifo) {
    norder = 0;
    RUN_MAIN(yield_main, NULL);
    int want[6] = {1, 2, 1, 2, 1, 2};
    ASSERT_EQ(norder, 6);
    for (int i = 0; i < 6; i++) ASSERT_EQ(order[i], want[i]);
}

static coil_result sleeper(void *arg) {
    int *saw = arg;
    *saw = coil_sleep(COIL_SEC(60));
    /* Level-triggered: every later suspension point fails too. */
    ASSERT_EQ(coil_yield(), -ECANCELED);
    ASSERT_EQ(coil_sleep(COIL_MSEC(1)), -ECANCELED);
    return coil_fail(*saw);
}

static coil_result cancel_sleep_main(void *arg) {
    (void)arg;
    int saw = 0;
    coil_task *t = coil_spawn(sleeper, &saw);
    ASSERT_EQ(coil_sleep(COIL_MSEC(5)), 0);
    coil_time start = coil_now();
    coil_cancel(t);
    coil_result r;
    ASSERT_EQ(coil_join(t, &r), 0);
    ASSERT_EQ(saw, -ECANCELED);
    ASSERT_EQ(r.err, -ECANCELED);
    ASSERT(coil_now() - start < COIL_SEC(30)); /* woke, did not sleep out */
    return coil_ok(NULL);
}

TEST(cancel_wakes_sleeper) { RUN_MAIN(cancel_sleep_main, NULL); }

static int started;
static coil_result mark_started(void *arg) {
    (void)arg;
    started = 1;
    return coil_ok(NULL);
}

static coil_result cancel_before_start_main(void *arg) {
    (void)arg;
    started = 0;
    coil_task *t = coil_spawn(mark_started, NULL);
    coil_cancel(t);
    coil_result r;
    ASSERT_EQ(coil_join(t, &r), 0);
    ASSERT_EQ(r.err, -ECANCELED);
    ASSERT_EQ(started, 0);
    return coil_ok(NULL);
}

TEST(cancel_before_start_never_runs) { RUN_MAIN(cancel_before_start_main, NULL); }

static coil_result long_sleeper(void *arg) {
    (void)arg;
    int err = coil_sleep(COIL_SEC(60));
    return coil_fail(err);
}

static coil_result join_cancelled_main(void *arg) {
    coil_task **child = arg;
    *child = coil_spawn(long_sleeper, NULL);
    coil_result r;
    int err = coil_join(*child, &r);
    ASSERT_EQ(err, -ECANCELED);
    /* The child was cancelled and awaited, not orphaned. */
    ASSERT_EQ(r.err, -ECANCELED);
    return coil_fail(err);
}

static coil_result canceller(void *arg) {
    coil_task *target = arg;
    ASSERT_EQ(coil_sleep(COIL_MSEC(2)), 0);
    coil_cancel(target);
    return coil_ok(NULL);
}

static coil_result join_interrupted_main(void *arg) {
    (void)arg;
    coil_task *child = NULL;
    coil_task *joiner = coil_spawn(join_cancelled_main, &child);
    coil_task *c = coil_spawn(canceller, joiner);
    coil_result r;
    ASSERT_EQ(coil_join(joiner, &r), 0);
    ASSERT_EQ(r.err, -ECANCELED);
    ASSERT_EQ(coil_join(c, NULL), 0);
    return coil_ok(NULL);
}

TEST(cancelled_join_cancels_child) { RUN_MAIN(join_interrupted_main, NULL); }

static coil_result current_main(void *arg) {
    (void)arg;
    coil_task *self = coil_current();
    ASSERT(self != NULL);
    ASSERT_STR_EQ(coil_task_name(self), "main");
    coil_task *t = coil_spawn_named("worker-7", add_one, NULL);
    ASSERT_STR_EQ(coil_task_name(t), "worker-7");
    ASSERT_EQ(coil_join(t, NULL), 0);
    return coil_ok(NULL);
}

TEST(current_and_names) {
    ASSERT(coil_current() == NULL);
    RUN_MAIN(current_main, NULL);
}

static coil_result detached_fail(void *arg) {
    (void)arg;
    return coil_fail(-EBUSY);
}

static coil_result detach_main(void *arg) {
    (void)arg;
    coil_detach(coil_spawn_named("doomed", detached_fail, NULL));
    ASSERT_EQ(coil_sleep(COIL_MSEC(1)), 0);
    return coil_ok(NULL);
}

TEST(detached_failure_is_logged) {
    coil_test_capture_stderr_begin();
    RUN_MAIN(detach_main, NULL);
    char *err = coil_test_capture_stderr_end();
    ASSERT_CONTAINS(err, "detached task 'doomed'");
    ASSERT_CONTAINS(err, "test_task.c");
    ASSERT_CONTAINS(err, "EBUSY");
    free(err);
}

static coil_result forever(void *arg) {
    (void)arg;
    return coil_fail(coil_sleep(COIL_SEC(3600)));
}

static coil_result leak_main(void *arg) {
    (void)arg;
    coil_spawn_named("forgotten", forever, NULL); /* handle dropped on purpose */
    coil_spawn_named("finished-unjoined", add_one, NULL);
    ASSERT_EQ(coil_yield(), 0);
    return coil_ok(NULL);
}

TEST(shutdown_reports_leaks) {
    coil_test_capture_stderr_begin();
    coil_time start = coil_now();
    RUN_MAIN(leak_main, NULL);
    char *err = coil_test_capture_stderr_end();
    ASSERT(coil_now() - start < COIL_SEC(60)); /* the sleeper was cancelled */
    ASSERT_CONTAINS(err, "'forgotten'");
    ASSERT_CONTAINS(err, "still running when main returned");
    ASSERT_CONTAINS(err, "'finished-unjoined'");
    ASSERT_CONTAINS(err, "never joined");
    free(err);
}

static coil_result deadlock_main(void *arg) {
    (void)arg;
    coil_future f;
    coil_future_init(&f);
    return coil_fail(coil_future_wait(&f, NULL)); /* nobody will resolve it */
}

TEST(deadlock_detected_and_broken) {
    coil_test_capture_stderr_begin();
    coil_result r;
    ASSERT_EQ(coil_run(deadlock_main, NULL, &r), -EDEADLK);
    char *err = coil_test_capture_stderr_end();
    ASSERT_EQ(r.err, -ECANCELED);
    ASSERT_CONTAINS(err, "deadlock");
    free(err);
}

TEST(spawn_outside_task_fails) {
    errno = 0;
    ASSERT(coil_spawn(add_one, NULL) == NULL);
    ASSERT_EQ(errno, EPERM);
}

TEST(strerror_names_codes) {
    ASSERT_STR_EQ(coil_err_name(-ECANCELED), "ECANCELED");
    ASSERT_STR_EQ(coil_strerror(-ETIMEDOUT), "deadline expired");
    ASSERT_STR_EQ(coil_strerror(0), "success");
}

/* run_next: first in line, ahead of the tasks that were ready before it. */
static int ran[3], nran;

static coil_result note(void *arg) {
    ran[nran++] = (int)(intptr_t)arg;
    return coil_ok(NULL);
}

static coil_result run_next_main(void *arg) {
    (void)arg;
    nran = 0;
    coil_task *a = coil_spawn(note, (void *)1);
    coil_task *b = coil_spawn(note, (void *)2);
    coil_task *c = coil_spawn_at(&(coil_spawn_opts){.run_next = true}, note, (void *)3, __FILE__,
                                 __LINE__);
    ASSERT_EQ(coil_join(a, NULL), 0);
    ASSERT_EQ(coil_join(b, NULL), 0);
    ASSERT_EQ(coil_join(c, NULL), 0);
    ASSERT_EQ(nran, 3);
    ASSERT_EQ(ran[0], 3);
    ASSERT_EQ(ran[1], 1);
    ASSERT_EQ(ran[2], 2);
    return coil_ok(NULL);
}

TEST(run_next_goes_first) { RUN_MAIN(run_next_main, NULL); }

/* A handle used after its task was joined (and freed) is caught: the call
 * names itself and its site, and the process aborts, rather than acting on
 * whatever the slot holds. Run in a child, whose stderr is read back. */
static coil_result nothing(void *arg) {
    (void)arg;
    return coil_ok(NULL);
}

static coil_result stale_main(void *arg) {
    (void)arg;
    coil_task *t = coil_spawn(nothing, NULL);
    ASSERT(t != NULL);
    ASSERT_EQ(coil_join(t, NULL), 0);
    coil_join(t, NULL); /* the stale use */
    return coil_ok(NULL);
}

/* The same handle once its slot holds the next task: still caught. */
static coil_result reused_main(void *arg) {
    (void)arg;
    coil_task *old = coil_spawn(nothing, NULL);
    ASSERT_EQ(coil_join(old, NULL), 0);
    coil_task *next = coil_spawn(nothing, NULL); /* the pool's hot stack: the same slot */
    ASSERT(next != NULL && next != old);
    coil_cancel(old); /* the stale use */
    coil_join(next, NULL);
    return coil_ok(NULL);
}

/* Runs `fn` in a child whose stderr comes back in buf; returns its wait
 * status. */
static int run_child_main(coil_fn fn, char *buf, size_t cap) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        coil_run(fn, NULL, NULL);
        _exit(0);
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t n;
    while (len < cap - 1 && (n = read(fds[0], buf + len, cap - 1 - len)) > 0) len += (size_t)n;
    buf[len] = '\0';
    close(fds[0]);
    int status;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    return status;
}

TEST(a_stale_handle_is_caught_after_its_slot_is_reused) {
    char buf[1024];
    int status = run_child_main(reused_main, buf, sizeof buf);
    ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    ASSERT_CONTAINS(buf, "coil: coil_cancel(");
    ASSERT_CONTAINS(buf, "its slot holds another task now");
}

TEST(a_stale_handle_is_caught) {
    char buf[1024];
    int status = run_child_main(stale_main, buf, sizeof buf);
    ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    ASSERT_CONTAINS(buf, "coil: coil_join(");
    ASSERT_CONTAINS(buf, "its task was freed");
    ASSERT_CONTAINS(buf, "called at tests/runtime/test_task.c:");
}
