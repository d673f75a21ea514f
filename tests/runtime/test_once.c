/* tests/runtime/test_once.c: the async once-initialiser: one init for many
 * concurrent callers, failure and retry, cancellation of a waiter and of
 * the caller running init. */
#include "test.h"

#define P(i) ((void *)(intptr_t)(i))
#define I(p) ((int)(intptr_t)(p))

/* Lets every spawned task run until it parks. */
static void settle(void) {
    for (int i = 0; i < 4; i++) ASSERT_EQ(coil_yield(), 0);
}

/* What an init does, and how often it ran. */
typedef struct resource {
    int runs;         /* calls to init */
    int fail_first;   /* the first N runs fail with -EIO */
    coil_time nap;    /* init sleeps this long (a suspension point) */
    bool ignore_cancel; /* finish init shielded even if cancelled */
} resource;

static coil_result slow_init(void *arg) {
    resource *r = arg;
    int run = ++r->runs;
    int err;
    if (r->ignore_cancel) {
        coil_scope s;
        coil_scope_enter_shielded(&s, COIL_NEVER);
        err = coil_sleep(r->nap);
        coil_scope_exit(&s);
    } else {
        err = coil_sleep(r->nap);
    }
    if (err) return coil_fail(err);
    if (run <= r->fail_first) return coil_fail(-EIO);
    return coil_ok(P(1000 + run));
}

typedef struct caller {
    coil_once *once;
    resource *res;
    void *value;
    int err;
} caller;

static coil_result call_once(void *arg) {
    caller *c = arg;
    c->value = NULL;
    c->err = coil_once_get(c->once, slow_init, c->res, &c->value);
    return coil_ok(NULL);
}

enum { MANY = 50 };

static coil_result many_main(void *arg) {
    (void)arg;
    coil_once o;
    coil_once_init(&o);
    resource res = {0, 0, COIL_MSEC(5), false};
    caller c[MANY];
    coil_task *t[MANY];
    for (int i = 0; i < MANY; i++) {
        c[i] = (caller){&o, &res, NULL, 1};
        t[i] = coil_spawn(call_once, &c[i]);
        ASSERT(t[i] != NULL);
    }
    for (int i = 0; i < MANY; i++) ASSERT_EQ(coil_join(t[i], NULL), 0);
    ASSERT_EQ(res.runs, 1);
    for (int i = 0; i < MANY; i++) {
        ASSERT_EQ(c[i].err, 0);
        ASSERT_EQ(I(c[i].value), 1001);
    }
    /* Done: later calls return the value without running init. */
    void *v = NULL;
    ASSERT_EQ(coil_once_get(&o, slow_init, &res, &v), 0);
    ASSERT_EQ(I(v), 1001);
    ASSERT_EQ(res.runs, 1);
    return coil_ok(NULL);
}

TEST(many_callers_one_init) { RUN_MAIN(many_main, NULL); }

static coil_result failure_main(void *arg) {
    (void)arg;
    coil_once o;
    coil_once_init(&o);
    resource res = {0, 1, COIL_MSEC(2), false};
    caller c[5];
    coil_task *t[5];
    for (int i = 0; i < 5; i++) {
        c[i] = (caller){&o, &res, NULL, 1};
        t[i] = coil_spawn(call_once, &c[i]);
    }
    for (int i = 0; i < 5; i++) ASSERT_EQ(coil_join(t[i], NULL), 0);
    /* One attempt, and everyone who waited for it shares its failure. */
    ASSERT_EQ(res.runs, 1);
    for (int i = 0; i < 5; i++) ASSERT_EQ(c[i].err, -EIO);
    /* The next call tries again, and succeeds. */
    void *v = NULL;
    ASSERT_EQ(coil_once_get(&o, slow_init, &res, &v), 0);
    ASSERT_EQ(I(v), 1002);
    ASSERT_EQ(res.runs, 2);
    ASSERT_EQ(coil_once_get(&o, slow_init, &res, &v), 0);
    ASSERT_EQ(res.runs, 2);
    return coil_ok(NULL);
}

TEST(init_failure_then_retry) { RUN_MAIN(failure_main, NULL); }

static coil_result cancel_waiter_main(void *arg) {
    (void)arg;
    coil_once o;
    coil_once_init(&o);
    resource res = {0, 0, COIL_MSEC(10), false};
    caller c[3];
    coil_task *t[3];
    for (int i = 0; i < 3; i++) {
        c[i] = (caller){&o, &res, NULL, 1};
        t[i] = coil_spawn(call_once, &c[i]);
    }
    settle();
    coil_cancel(t[1]); /* a waiter, not the runner */
    settle();
    ASSERT_EQ(c[1].err, -ECANCELED);
    for (int i = 0; i < 3; i++) ASSERT_EQ(coil_join(t[i], NULL), 0);
    ASSERT_EQ(res.runs, 1);
    ASSERT_EQ(c[0].err, 0);
    ASSERT_EQ(c[2].err, 0);
    ASSERT_EQ(I(c[2].value), 1001);
    return coil_ok(NULL);
}

TEST(cancelled_waiter_leaves_init_alone) { RUN_MAIN(cancel_waiter_main, NULL); }

static coil_result cancel_runner_main(void *arg) {
    (void)arg;
    coil_once o;
    coil_once_init(&o);
    resource res = {0, 0, COIL_MSEC(10), false};
    caller c[3];
    coil_task *t[3];
    for (int i = 0; i < 3; i++) {
        c[i] = (caller){&o, &res, NULL, 1};
        t[i] = coil_spawn(call_once, &c[i]);
    }
    settle();
    coil_cancel(t[0]); /* the runner: init's sleep sees it */
    for (int i = 0; i < 3; i++) ASSERT_EQ(coil_join(t[i], NULL), 0);
    /* init's own failure is the outcome, for the runner and its waiters. */
    ASSERT_EQ(res.runs, 1);
    for (int i = 0; i < 3; i++) ASSERT_EQ(c[i].err, -ECANCELED);
    /* Not done: the next call runs init again. */
    void *v = NULL;
    ASSERT_EQ(coil_once_get(&o, slow_init, &res, &v), 0);
    ASSERT_EQ(res.runs, 2);
    ASSERT_EQ(I(v), 1002);
    return coil_ok(NULL);
}

TEST(cancelled_runner_init_failure_counts) { RUN_MAIN(cancel_runner_main, NULL); }

static coil_result cancel_shielded_runner_main(void *arg) {
    (void)arg;
    coil_once o;
    coil_once_init(&o);
    resource res = {0, 0, COIL_MSEC(10), true};
    caller c[2];
    coil_task *t[2];
    for (int i = 0; i < 2; i++) {
        c[i] = (caller){&o, &res, NULL, 1};
        t[i] = coil_spawn(call_once, &c[i]);
    }
    settle();
    coil_cancel(t[0]);
    for (int i = 0; i < 2; i++) ASSERT_EQ(coil_join(t[i], NULL), 0);
    /* init finished despite the cancellation: its value counts. */
    ASSERT_EQ(res.runs, 1);
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(c[i].err, 0);
        ASSERT_EQ(I(c[i].value), 1001);
    }
    return coil_ok(NULL);
}

TEST(cancelled_runner_init_success_counts) { RUN_MAIN(cancel_shielded_runner_main, NULL); }

static coil_result deadline_main(void *arg) {
    (void)arg;
    coil_once o;
    coil_once_init(&o);
    resource res = {0, 0, COIL_MSEC(30), false};
    caller c = {&o, &res, NULL, 1};
    coil_task *t = coil_spawn(call_once, &c);
    settle();
    /* Waiting for someone else's init, with a deadline. */
    coil_scope s;
    void *v = NULL;
    coil_scope_enter(&s, coil_now() + COIL_MSEC(2));
    ASSERT_EQ(coil_once_get(&o, slow_init, &res, &v), -ETIMEDOUT);
    ASSERT_EQ(coil_scope_exit(&s), -ETIMEDOUT);
    ASSERT_EQ(coil_join(t, NULL), 0);
    ASSERT_EQ(c.err, 0);
    ASSERT_EQ(res.runs, 1);
    ASSERT_EQ(coil_once_get(&o, slow_init, &res, &v), 0);
    ASSERT_EQ(I(v), 1001);
    /* A cancelled caller gets nothing, even from a finished once. */
    coil_cancel(coil_current());
    ASSERT_EQ(coil_once_get(&o, slow_init, &res, &v), -ECANCELED);
    return coil_ok(NULL);
}

TEST(deadline_while_waiting_and_cancelled_caller) { RUN_MAIN(deadline_main, NULL); }
