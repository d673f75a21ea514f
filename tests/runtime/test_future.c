/* tests/runtime/test_future.c: one-shot futures with many waiters. */
#include "test.h"

static coil_result waiter(void *arg) {
    void *v = NULL;
    int err = coil_future_wait(arg, &v);
    if (err) return coil_fail(err);
    return coil_ok(v);
}

static coil_result many_waiters_main(void *arg) {
    (void)arg;
    coil_future f;
    coil_future_init(&f);
    coil_task *t[10];
    for (int i = 0; i < 10; i++) t[i] = coil_spawn(waiter, &f);
    ASSERT_EQ(coil_yield(), 0);
    ASSERT(!coil_future_done(&f));
    ASSERT_EQ(coil_future_resolve(&f, (void *)99), 0);
    ASSERT_EQ(coil_future_resolve(&f, (void *)1), -EALREADY);
    ASSERT_EQ(coil_future_reject(&f, -EIO), -EALREADY);
    for (int i = 0; i < 10; i++) {
        coil_result r;
        ASSERT_EQ(coil_join(t[i], &r), 0);
        ASSERT_EQ(r.err, 0);
        ASSERT_EQ((intptr_t)r.value, 99);
    }
    /* A late waiter gets the value at once. */
    void *v;
    ASSERT_EQ(coil_future_wait(&f, &v), 0);
    ASSERT_EQ((intptr_t)v, 99);
    return coil_ok(NULL);
}

TEST(resolve_wakes_every_waiter) { RUN_MAIN(many_waiters_main, NULL); }

static coil_result reject_main(void *arg) {
    (void)arg;
    coil_future f;
    coil_future_init(&f);
    coil_task *t = coil_spawn(waiter, &f);
    ASSERT_EQ(coil_yield(), 0);
    ASSERT_EQ(coil_future_reject(&f, -EIO), 0);
    coil_result r;
    ASSERT_EQ(coil_join(t, &r), 0);
    ASSERT_EQ(r.err, -EIO);
    ASSERT_EQ(coil_future_reject(&f, -EPIPE), -EALREADY);
    return coil_ok(NULL);
}

TEST(reject_reaches_waiters) { RUN_MAIN(reject_main, NULL); }

static coil_result cancel_waiter_main(void *arg) {
    (void)arg;
    coil_future f;
    coil_future_init(&f);
    coil_task *a = coil_spawn(waiter, &f);
    coil_task *b = coil_spawn(waiter, &f);
    ASSERT_EQ(coil_yield(), 0);
    coil_cancel(a);
    coil_result r;
    ASSERT_EQ(coil_join(a, &r), 0);
    ASSERT_EQ(r.err, -ECANCELED);
    /* The future is unaffected; the other waiter still gets the value. */
    ASSERT(!coil_future_done(&f));
    ASSERT_EQ(coil_future_resolve(&f, (void *)5), 0);
    ASSERT_EQ(coil_join(b, &r), 0);
    ASSERT_EQ((intptr_t)r.value, 5);
    return coil_ok(NULL);
}

TEST(cancelled_waiter_leaves_future_intact) { RUN_MAIN(cancel_waiter_main, NULL); }

TEST(reject_needs_negative_error) {
    coil_future f;
    coil_future_init(&f);
    ASSERT_EQ(coil_future_reject(&f, 0), -EINVAL);
    ASSERT(!coil_future_done(&f));
}
