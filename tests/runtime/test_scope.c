/* tests/runtime/test_scope.c: deadline scopes, shields, nesting, sleep. */
#include "test.h"

static coil_result scope_expires_main(void *arg) {
    (void)arg;
    coil_scope s;
    coil_time start = coil_now();
    coil_scope_enter(&s, coil_now() + COIL_MSEC(20));
    ASSERT_EQ(coil_sleep(COIL_SEC(30)), -ETIMEDOUT);
    ASSERT(coil_scope_fired(&s));
    /* Level-triggered inside the scope. */
    ASSERT_EQ(coil_yield(), -ETIMEDOUT);
    ASSERT_EQ(coil_scope_exit(&s), -ETIMEDOUT);
    ASSERT_GE(coil_now() - start, COIL_MSEC(20));
    ASSERT(coil_now() - start < COIL_SEC(20));
    /* Outside the scope, suspension works again. */
    ASSERT_EQ(coil_sleep(COIL_MSEC(1)), 0);
    return coil_ok(NULL);
}

TEST(deadline_interrupts_sleep) { RUN_MAIN(scope_expires_main, NULL); }

static coil_result unexpired_main(void *arg) {
    (void)arg;
    coil_scope s;
    coil_scope_enter(&s, coil_now() + COIL_SEC(30));
    ASSERT_EQ(coil_sleep(COIL_MSEC(2)), 0);
    ASSERT(!coil_scope_fired(&s));
    ASSERT_EQ(coil_scope_exit(&s), 0);
    return coil_ok(NULL);
}

TEST(unexpired_scope_reports_zero) { RUN_MAIN(unexpired_main, NULL); }

static coil_result past_deadline_main(void *arg) {
    (void)arg;
    coil_scope s;
    coil_scope_enter(&s, coil_now() - 1);
    ASSERT_EQ(coil_yield(), -ETIMEDOUT);
    ASSERT_EQ(coil_check_cancel(), -ETIMEDOUT);
    ASSERT_EQ(coil_scope_exit(&s), -ETIMEDOUT);
    ASSERT_EQ(coil_check_cancel(), 0);
    return coil_ok(NULL);
}

TEST(deadline_already_past) { RUN_MAIN(past_deadline_main, NULL); }

static coil_result nested_main(void *arg) {
    (void)arg;
    coil_scope outer, inner;
    /* The outer scope expires first: the inner one has not fired, but the
     * code inside both sees the outer deadline. */
    coil_scope_enter(&outer, coil_now() + COIL_MSEC(10));
    coil_scope_enter(&inner, coil_now() + COIL_SEC(30));
    ASSERT_EQ(coil_sleep(COIL_SEC(30)), -ETIMEDOUT);
    ASSERT_EQ(coil_scope_exit(&inner), 0);
    ASSERT_EQ(coil_yield(), -ETIMEDOUT); /* still inside the fired outer */
    ASSERT_EQ(coil_scope_exit(&outer), -ETIMEDOUT);

    /* Inner expires first: only the inner reports it. */
    coil_scope_enter(&outer, coil_now() + COIL_SEC(30));
    coil_scope_enter(&inner, coil_now() + COIL_MSEC(5));
    ASSERT_EQ(coil_sleep(COIL_SEC(30)), -ETIMEDOUT);
    ASSERT_EQ(coil_scope_exit(&inner), -ETIMEDOUT);
    ASSERT_EQ(coil_sleep(COIL_MSEC(1)), 0);
    ASSERT_EQ(coil_scope_exit(&outer), 0);

    /* Both expire at the same instant. */
    coil_time d = coil_now() + COIL_MSEC(5);
    coil_scope_enter(&outer, d);
    coil_scope_enter(&inner, d);
    ASSERT_EQ(coil_sleep(COIL_SEC(30)), -ETIMEDOUT);
    ASSERT_EQ(coil_scope_exit(&inner), -ETIMEDOUT);
    ASSERT_EQ(coil_scope_exit(&outer), -ETIMEDOUT);
    return coil_ok(NULL);
}

TEST(nested_scopes) { RUN_MAIN(nested_main, NULL); }

static coil_result shield_main(void *arg) {
    (void)arg;
    coil_scope outer, shield;
    coil_scope_enter(&outer, coil_now() + COIL_MSEC(5));
    ASSERT_EQ(coil_sleep(COIL_SEC(30)), -ETIMEDOUT);
    /* Cleanup that must suspend: shielded from the fired outer scope. */
    coil_scope_enter_shielded(&shield, COIL_NEVER);
    ASSERT_EQ(coil_sleep(COIL_MSEC(2)), 0);
    ASSERT_EQ(coil_yield(), 0);
    ASSERT_EQ(coil_scope_exit(&shield), 0);
    ASSERT_EQ(coil_yield(), -ETIMEDOUT);
    ASSERT_EQ(coil_scope_exit(&outer), -ETIMEDOUT);
    return coil_ok(NULL);
}

TEST(shield_protects_cleanup) { RUN_MAIN(shield_main, NULL); }

static coil_result shielded_child(void *arg) {
    int *phase = arg;
    coil_scope shield;
    coil_scope_enter_shielded(&shield, COIL_NEVER);
    ASSERT_EQ(coil_sleep(COIL_MSEC(20)), 0); /* cancel arrives meanwhile */
    *phase = 1;
    ASSERT_EQ(coil_scope_exit(&shield), 0);
    /* Held-back cancellation is delivered at the next suspension point. */
    int err = coil_yield();
    *phase = 2;
    return coil_fail(err);
}

static coil_result shield_task_cancel_main(void *arg) {
    (void)arg;
    int phase = 0;
    coil_task *t = coil_spawn(shielded_child, &phase);
    ASSERT_EQ(coil_sleep(COIL_MSEC(2)), 0);
    coil_cancel(t);
    coil_result r;
    ASSERT_EQ(coil_join(t, &r), 0);
    ASSERT_EQ(phase, 2);
    ASSERT_EQ(r.err, -ECANCELED);
    return coil_ok(NULL);
}

TEST(shield_holds_task_cancel) { RUN_MAIN(shield_task_cancel_main, NULL); }

static coil_result shield_own_deadline_main(void *arg) {
    (void)arg;
    coil_scope shield;
    coil_scope_enter_shielded(&shield, coil_now() + COIL_MSEC(5));
    ASSERT_EQ(coil_sleep(COIL_SEC(30)), -ETIMEDOUT);
    ASSERT_EQ(coil_scope_exit(&shield), -ETIMEDOUT);
    return coil_ok(NULL);
}

TEST(shield_keeps_its_own_deadline) { RUN_MAIN(shield_own_deadline_main, NULL); }

static coil_result scope_cancel_main(void *arg) {
    (void)arg;
    coil_scope s;
    coil_scope_enter(&s, COIL_NEVER);
    coil_scope_cancel(&s);
    ASSERT_EQ(coil_sleep(COIL_MSEC(1)), -ECANCELED);
    ASSERT_EQ(coil_scope_exit(&s), -ECANCELED);
    ASSERT_EQ(coil_sleep(COIL_MSEC(1)), 0);
    return coil_ok(NULL);
}

TEST(explicit_scope_cancel) { RUN_MAIN(scope_cancel_main, NULL); }

static coil_result slow_child(void *arg) {
    int *finished = arg;
    int err = coil_sleep(COIL_SEC(30));
    *finished = 1;
    return coil_fail(err);
}

static coil_result timeout_join_main(void *arg) {
    (void)arg;
    int finished = 0;
    coil_task *t = coil_spawn(slow_child, &finished);
    coil_scope s;
    coil_scope_enter(&s, coil_now() + COIL_MSEC(10));
    coil_result r;
    /* asyncio.wait_for: the timeout cancels the work and waits for it. */
    ASSERT_EQ(coil_join(t, &r), -ETIMEDOUT);
    ASSERT_EQ(finished, 1);
    ASSERT_EQ(r.err, -ECANCELED);
    ASSERT_EQ(coil_scope_exit(&s), -ETIMEDOUT);
    return coil_ok(NULL);
}

TEST(timeout_cancels_guarded_work) { RUN_MAIN(timeout_join_main, NULL); }

static int woke[5];
static int nwoke;

static coil_result sleep_n(void *arg) {
    int ms = (int)(intptr_t)arg;
    ASSERT_EQ(coil_sleep(COIL_MSEC(ms)), 0);
    woke[nwoke++] = ms;
    return coil_ok(NULL);
}

static coil_result sleep_order_main(void *arg) {
    (void)arg;
    int ms[5] = {40, 10, 30, 20, 50};
    coil_task *t[5];
    for (int i = 0; i < 5; i++) t[i] = coil_spawn(sleep_n, (void *)(intptr_t)ms[i]);
    for (int i = 0; i < 5; i++) ASSERT_EQ(coil_join(t[i], NULL), 0);
    return coil_ok(NULL);
}

TEST(sleepers_wake_in_deadline_order) {
    nwoke = 0;
    RUN_MAIN(sleep_order_main, NULL);
    ASSERT_EQ(nwoke, 5);
    for (int i = 0; i < 5; i++) ASSERT_EQ(woke[i], (i + 1) * 10);
}

static coil_result many_timers_main(void *arg) {
    (void)arg;
    /* Many scopes entered and left without firing: the heap must shrink
     * back, and the one that fires must be the right one. */
    for (int i = 0; i < 10000; i++) {
        coil_scope s;
        coil_scope_enter(&s, coil_now() + COIL_SEC(10 + i % 7));
        ASSERT_EQ(coil_scope_exit(&s), 0);
    }
    ASSERT_EQ(coil_sleep(COIL_MSEC(1)), 0);
    return coil_ok(NULL);
}

TEST(timer_heap_churn) { RUN_MAIN(many_timers_main, NULL); }
