/* tests/runtime/test_mailbox.c: the single-slot latest-value mailbox:
 * replacement and the drop callback, waking at once, timeouts,
 * cancellation, close. */
#include "test.h"

#define P(i) ((void *)(intptr_t)(i))
#define I(p) ((int)(intptr_t)(p))

/* Lets every spawned task run until it parks. */
static void settle(void) {
    for (int i = 0; i < 4; i++) ASSERT_EQ(coil_yield(), 0);
}

/* Values handed to the drop callback, in order. */
static int dropped[16];
static int ndropped;

static void record_drop(void *value) {
    ASSERT(ndropped < 16);
    dropped[ndropped++] = I(value);
}

static void reset_drops(void) {
    ndropped = 0;
    memset(dropped, 0, sizeof dropped);
}

static coil_result basic_main(void *arg) {
    (void)arg;
    coil_mailbox m;
    void *v = NULL;
    coil_mailbox_init(&m, record_drop);
    ASSERT_EQ(coil_mailbox_post(&m, P(1)), 0);
    ASSERT_EQ(coil_mailbox_take(&m, &v, COIL_NEVER), 0);
    ASSERT_EQ(I(v), 1);
    ASSERT_EQ(coil_mailbox_take(&m, &v, 0), -ETIMEDOUT);
    ASSERT_EQ(coil_mailbox_take(&m, &v, COIL_MSEC(5)), -ETIMEDOUT);
    ASSERT_EQ(coil_mailbox_post(&m, P(2)), 0);
    ASSERT_EQ(coil_mailbox_post(&m, P(3)), 0);
    ASSERT_EQ(ndropped, 1);
    ASSERT_EQ(dropped[0], 2);
    ASSERT_EQ(coil_mailbox_take(&m, &v, 0), 0); /* no wait: timeout unused */
    ASSERT_EQ(I(v), 3);
    ASSERT_EQ(coil_mailbox_post(&m, P(4)), 0);
    coil_mailbox_destroy(&m); /* a pending value is dropped */
    ASSERT_EQ(ndropped, 2);
    ASSERT_EQ(dropped[1], 4);
    return coil_ok(NULL);
}

TEST(post_take_replace_destroy) {
    reset_drops();
    RUN_MAIN(basic_main, NULL);
}

/* A worker that waits for its next command with a timeout. */
typedef struct worker {
    coil_mailbox *m;
    coil_time timeout;
    int got[8];      /* commands taken */
    int ngot;
    int last_err;    /* what ended the loop */
} worker;

static coil_result command_worker(void *arg) {
    worker *w = arg;
    void *cmd;
    int err;
    while ((err = coil_mailbox_take(w->m, &cmd, w->timeout)) == 0) w->got[w->ngot++] = I(cmd);
    w->last_err = err;
    return coil_ok(NULL);
}

static coil_result replace_pending_main(void *arg) {
    (void)arg;
    coil_mailbox m;
    coil_mailbox_init(&m, record_drop);
    worker w = {&m, COIL_MSEC(20), {0}, 0, 0};
    coil_task *t = coil_spawn(command_worker, &w);
    /* Both posted before the worker first runs: only B counts. */
    ASSERT_EQ(coil_mailbox_post(&m, P('A')), 0);
    ASSERT_EQ(coil_mailbox_post(&m, P('B')), 0);
    ASSERT_EQ(coil_join(t, NULL), 0);
    ASSERT_EQ(w.ngot, 1);
    ASSERT_EQ(w.got[0], 'B');
    ASSERT_EQ(ndropped, 1);
    ASSERT_EQ(dropped[0], 'A');
    ASSERT_EQ(w.last_err, -ETIMEDOUT); /* then no command came in time */
    coil_mailbox_destroy(&m);
    ASSERT_EQ(ndropped, 1);
    return coil_ok(NULL);
}

TEST(pending_command_replaced_and_dropped) {
    reset_drops();
    RUN_MAIN(replace_pending_main, NULL);
}

static coil_result wake_at_once_main(void *arg) {
    (void)arg;
    coil_mailbox m;
    coil_mailbox_init(&m, record_drop);
    worker w = {&m, COIL_SEC(3600), {0}, 0, 0};
    coil_task *t = coil_spawn(command_worker, &w);
    settle();
    ASSERT_EQ(w.ngot, 0);
    ASSERT_EQ(coil_mailbox_post(&m, P(1)), 0);
    settle();
    ASSERT_EQ(w.ngot, 1); /* woke without waiting out its timeout */
    ASSERT_EQ(w.got[0], 1);
    /* Woken but not yet run: a newer post still replaces. */
    ASSERT_EQ(coil_mailbox_post(&m, P(2)), 0);
    ASSERT_EQ(coil_mailbox_post(&m, P(3)), 0);
    settle();
    ASSERT_EQ(w.ngot, 2);
    ASSERT_EQ(w.got[1], 3);
    ASSERT_EQ(ndropped, 1);
    ASSERT_EQ(dropped[0], 2);
    coil_mailbox_close(&m);
    ASSERT_EQ(coil_join(t, NULL), 0);
    ASSERT_EQ(w.last_err, -EPIPE);
    coil_mailbox_destroy(&m);
    return coil_ok(NULL);
}

TEST(post_wakes_waiter_and_latest_wins) {
    reset_drops();
    RUN_MAIN(wake_at_once_main, NULL);
}

static coil_result close_main(void *arg) {
    (void)arg;
    coil_mailbox m;
    void *v = NULL;
    coil_mailbox_init(&m, record_drop);
    worker w[2] = {{&m, COIL_NEVER, {0}, 0, 0}, {&m, COIL_NEVER, {0}, 0, 0}};
    coil_task *t0 = coil_spawn(command_worker, &w[0]);
    coil_task *t1 = coil_spawn(command_worker, &w[1]);
    settle();
    coil_mailbox_close(&m);
    ASSERT_EQ(coil_join(t0, NULL), 0);
    ASSERT_EQ(coil_join(t1, NULL), 0);
    ASSERT_EQ(w[0].last_err, -EPIPE);
    ASSERT_EQ(w[1].last_err, -EPIPE);
    ASSERT_EQ(coil_mailbox_post(&m, P(5)), -EPIPE);
    ASSERT_EQ(ndropped, 0); /* refused, so still the caller's */
    coil_mailbox_destroy(&m);

    /* A value posted before the close can still be taken. */
    coil_mailbox_init(&m, record_drop);
    ASSERT_EQ(coil_mailbox_post(&m, P(6)), 0);
    coil_mailbox_close(&m);
    ASSERT_EQ(coil_mailbox_take(&m, &v, COIL_NEVER), 0);
    ASSERT_EQ(I(v), 6);
    ASSERT_EQ(coil_mailbox_take(&m, &v, COIL_MSEC(1)), -EPIPE);
    coil_mailbox_destroy(&m);
    ASSERT_EQ(ndropped, 0);
    return coil_ok(NULL);
}

TEST(close_wakes_takers_and_refuses_posts) {
    reset_drops();
    RUN_MAIN(close_main, NULL);
}

static coil_result cancel_main(void *arg) {
    (void)arg;
    coil_mailbox m;
    coil_mailbox_init(&m, NULL);
    worker w[2] = {{&m, COIL_NEVER, {0}, 0, 0}, {&m, COIL_SEC(3600), {0}, 0, 0}};
    coil_task *t0 = coil_spawn(command_worker, &w[0]);
    coil_task *t1 = coil_spawn(command_worker, &w[1]);
    settle();
    coil_cancel(t0);
    ASSERT_EQ(coil_join(t0, NULL), 0);
    ASSERT_EQ(w[0].last_err, -ECANCELED);
    /* The cancelled taker left: the value goes to the other one. */
    ASSERT_EQ(coil_mailbox_post(&m, P(9)), 0);
    settle();
    ASSERT_EQ(w[1].ngot, 1);
    ASSERT_EQ(w[1].got[0], 9);
    coil_cancel(t1);
    ASSERT_EQ(coil_join(t1, NULL), 0);
    ASSERT_EQ(w[1].last_err, -ECANCELED);
    /* Nobody waits any more: a post stays in the slot. */
    ASSERT_EQ(coil_mailbox_post(&m, P(10)), 0);
    void *v;
    ASSERT_EQ(coil_mailbox_take(&m, &v, 0), 0);
    ASSERT_EQ(I(v), 10);
    coil_mailbox_destroy(&m);
    return coil_ok(NULL);
}

TEST(cancelled_take) { RUN_MAIN(cancel_main, NULL); }

static coil_result deadline_main(void *arg) {
    (void)arg;
    coil_mailbox m;
    void *v;
    coil_mailbox_init(&m, NULL);
    /* An enclosing deadline cuts a take with a longer (or no) timeout. */
    coil_scope s;
    coil_scope_enter(&s, coil_now() + COIL_MSEC(5));
    ASSERT_EQ(coil_mailbox_take(&m, &v, COIL_SEC(3600)), -ETIMEDOUT);
    ASSERT_EQ(coil_scope_exit(&s), -ETIMEDOUT);
    coil_scope_enter(&s, coil_now() + COIL_MSEC(5));
    ASSERT_EQ(coil_mailbox_take(&m, &v, COIL_NEVER), -ETIMEDOUT);
    ASSERT_EQ(coil_scope_exit(&s), -ETIMEDOUT);
    /* A cancelled task takes nothing, even with a value waiting. */
    ASSERT_EQ(coil_mailbox_post(&m, P(1)), 0);
    coil_cancel(coil_current());
    ASSERT_EQ(coil_mailbox_take(&m, &v, COIL_NEVER), -ECANCELED);
    coil_mailbox_destroy(&m);
    return coil_ok(NULL);
}

TEST(deadline_and_cancelled_caller) { RUN_MAIN(deadline_main, NULL); }

/* Two takers: values go to them in the order they started waiting, and a
 * taker whose value was taken by a faster task keeps its turn. */
static coil_result fair_main(void *arg) {
    (void)arg;
    coil_mailbox m;
    void *v;
    coil_mailbox_init(&m, NULL);
    worker w[2] = {{&m, COIL_NEVER, {0}, 0, 0}, {&m, COIL_NEVER, {0}, 0, 0}};
    coil_task *t0 = coil_spawn(command_worker, &w[0]);
    coil_task *t1 = coil_spawn(command_worker, &w[1]);
    settle();
    ASSERT_EQ(coil_mailbox_post(&m, P(1)), 0); /* wakes w0 */
    ASSERT_EQ(coil_mailbox_take(&m, &v, 0), 0); /* but we take it first */
    ASSERT_EQ(I(v), 1);
    settle(); /* w0 finds nothing and waits again, ahead of w1 */
    ASSERT_EQ(w[0].ngot + w[1].ngot, 0);
    ASSERT_EQ(coil_mailbox_post(&m, P(2)), 0);
    settle();
    ASSERT_EQ(w[0].ngot, 1);
    ASSERT_EQ(w[0].got[0], 2);
    ASSERT_EQ(coil_mailbox_post(&m, P(3)), 0);
    settle();
    ASSERT_EQ(w[1].ngot, 1);
    ASSERT_EQ(w[1].got[0], 3);
    coil_mailbox_close(&m);
    ASSERT_EQ(coil_join(t0, NULL), 0);
    ASSERT_EQ(coil_join(t1, NULL), 0);
    coil_mailbox_destroy(&m);
    return coil_ok(NULL);
}

TEST(takers_served_in_order) { RUN_MAIN(fair_main, NULL); }
