/* tests/runtime/test_queue.c: bounded FIFO, LIFO and priority queues:
 * ordering, direct hand-off to parked getters and putters, cancellation and
 * deadlines at both ends, timeouts, and close. */
#include "test.h"

#define P(i) ((void *)(intptr_t)(i))
#define I(p) ((int)(intptr_t)(p))

/* Lets every spawned task run until it parks. */
static void settle(void) {
    for (int i = 0; i < 4; i++) ASSERT_EQ(coil_yield(), 0);
}

/* One task doing a single get or put, recording what happened. */
typedef struct op {
    coil_queue *q;
    int item;      /* put: what to put; get: what it got */
    int err;       /* the call's result; 1 until it returns */
    coil_time timeout;
} op;

static coil_result getter(void *arg) {
    op *o = arg;
    void *item = NULL;
    o->err = coil_queue_get(o->q, &item);
    if (o->err == 0) o->item = I(item);
    return coil_ok(NULL);
}

static coil_result putter(void *arg) {
    op *o = arg;
    o->err = coil_queue_put(o->q, P(o->item));
    return coil_ok(NULL);
}

static coil_task *spawn_op(coil_fn fn, op *o, coil_queue *q, int item) {
    *o = (op){q, item, 1, 0};
    coil_task *t = coil_spawn(fn, o);
    ASSERT(t != NULL);
    return t;
}

static int get_int(coil_queue *q) {
    void *item = NULL;
    ASSERT_EQ(coil_queue_get(q, &item), 0);
    return I(item);
}

/* ------------------------------------------------------------------ ordering */

static coil_result fifo_main(void *arg) {
    (void)arg;
    coil_queue q;
    ASSERT_EQ(coil_queue_init(&q, COIL_QUEUE_FIFO, 4), 0);
    /* Wrap around the ring a few times. */
    int next_in = 1, next_out = 1;
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < 3; i++) ASSERT_EQ(coil_queue_put(&q, P(next_in++)), 0);
        ASSERT_EQ(coil_queue_len(&q), 3);
        for (int i = 0; i < 3; i++) ASSERT_EQ(get_int(&q), next_out++);
    }
    ASSERT_EQ(next_out, next_in);
    coil_queue_destroy(&q);
    return coil_ok(NULL);
}

TEST(fifo_order_across_wraparound) { RUN_MAIN(fifo_main, NULL); }

static coil_result lifo_main(void *arg) {
    (void)arg;
    coil_queue q;
    ASSERT_EQ(coil_queue_init(&q, COIL_QUEUE_LIFO, 8), 0);
    for (int i = 1; i <= 5; i++) ASSERT_EQ(coil_queue_put(&q, P(i)), 0);
    ASSERT_EQ(get_int(&q), 5);
    ASSERT_EQ(get_int(&q), 4);
    ASSERT_EQ(coil_queue_put(&q, P(9)), 0);
    ASSERT_EQ(get_int(&q), 9);
    ASSERT_EQ(get_int(&q), 3);
    ASSERT_EQ(get_int(&q), 2);
    ASSERT_EQ(get_int(&q), 1);
    ASSERT_EQ(coil_queue_len(&q), 0);
    coil_queue_destroy(&q);
    return coil_ok(NULL);
}

TEST(lifo_order) { RUN_MAIN(lifo_main, NULL); }

static coil_result prio_main(void *arg) {
    (void)arg;
    coil_queue q;
    ASSERT_EQ(coil_queue_init(&q, COIL_QUEUE_PRIORITY, 16), 0);
    /* item = 10 * priority + arrival index among equals. */
    int64_t prios[] = {3, 1, 2, 1, 3, 0, 1, 2, -5, 3};
    int seen[16] = {0};
    for (size_t i = 0; i < sizeof prios / sizeof *prios; i++) {
        int64_t p = prios[i];
        int item = (int)(10 * (p + 5) + seen[p + 5]++);
        ASSERT_EQ(coil_queue_put_prio(&q, P(item), p), 0);
    }
    int want[] = {0, 50, 60, 61, 62, 70, 71, 80, 81, 82};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) ASSERT_EQ(get_int(&q), want[i]);
    /* Plain put means priority 0; try_put_prio works like put_prio. */
    ASSERT_EQ(coil_queue_try_put_prio(&q, P(1), 1), 0);
    ASSERT_EQ(coil_queue_put(&q, P(2)), 0);
    ASSERT_EQ(coil_queue_try_put_prio(&q, P(3), -1), 0);
    ASSERT_EQ(get_int(&q), 3);
    ASSERT_EQ(get_int(&q), 2);
    ASSERT_EQ(get_int(&q), 1);
    coil_queue_destroy(&q);
    return coil_ok(NULL);
}

TEST(priority_order_stable_among_equals) { RUN_MAIN(prio_main, NULL); }

/* A priority queue against a sorted reference, under random puts and gets. */
static uint64_t rng_state = 88172645463325252ull;
static uint64_t rng(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

typedef struct ref_item {
    int64_t prio;
    int id;
} ref_item;

static coil_result prio_model_main(void *arg) {
    (void)arg;
    enum { CAP = 64, OPS = 20000 };
    coil_queue q;
    ASSERT_EQ(coil_queue_init(&q, COIL_QUEUE_PRIORITY, CAP), 0);
    ref_item ref[CAP]; /* kept sorted by (prio, id); ids grow with time */
    size_t n = 0;
    int next_id = 0;
    for (int op_i = 0; op_i < OPS; op_i++) {
        bool do_put = n == 0 || (n < CAP && rng() % 2);
        if (do_put) {
            ref_item it = {(int64_t)(rng() % 8) - 4, next_id++};
            ASSERT_EQ(coil_queue_try_put_prio(&q, P(it.id), it.prio), 0);
            size_t at = n;
            while (at > 0 && ref[at - 1].prio > it.prio) {
                ref[at] = ref[at - 1];
                at--;
            }
            ref[at] = it;
            n++;
        } else {
            void *got;
            ASSERT_EQ(coil_queue_try_get(&q, &got), 0);
            ASSERT_EQ(I(got), ref[0].id);
            memmove(ref, ref + 1, --n * sizeof *ref);
        }
        ASSERT_EQ(coil_queue_len(&q), n);
    }
    coil_queue_destroy(&q);
    return coil_ok(NULL);
}

TEST(priority_matches_reference_model) { RUN_MAIN(prio_model_main, NULL); }

TEST(init_rejects_zero_capacity) {
    coil_queue q;
    ASSERT_EQ(coil_queue_init(&q, COIL_QUEUE_FIFO, 0), -EINVAL);
    ASSERT_EQ(coil_queue_init(&q, (coil_queue_kind)42, 4), -EINVAL);
}

static coil_result try_main(void *arg) {
    (void)arg;
    coil_queue q;
    void *item;
    ASSERT_EQ(coil_queue_init(&q, COIL_QUEUE_FIFO, 2), 0);
    ASSERT_EQ(coil_queue_try_get(&q, &item), -EAGAIN);
    ASSERT_EQ(coil_queue_try_put(&q, P(1)), 0);
    ASSERT_EQ(coil_queue_try_put(&q, P(2)), 0);
    ASSERT_EQ(coil_queue_try_put(&q, P(3)), -EAGAIN);
    ASSERT_EQ(coil_queue_len(&q), 2);
    ASSERT_EQ(coil_queue_try_get(&q, &item), 0);
    ASSERT_EQ(I(item), 1);
    coil_queue_close(&q);
    ASSERT_EQ(coil_queue_try_put(&q, P(4)), -EPIPE);
    ASSERT_EQ(coil_queue_try_get(&q, &item), 0); /* drains after close */
    ASSERT_EQ(I(item), 2);
    ASSERT_EQ(coil_queue_try_get(&q, &item), -EPIPE);
    coil_queue_destroy(&q);
    return coil_ok(NULL);
}

TEST(try_variants) { RUN_MAIN(try_main, NULL); }

/* ------------------------------------------------------------------ hand-off */

static coil_result handoff_get_main(void *arg) {
    (void)arg;
    enum { CAP = 4 };
    coil_queue q;
    ASSERT_EQ(coil_queue_init(&q, COIL_QUEUE_FIFO, CAP), 0);
    op g;
    coil_task *t = spawn_op(getter, &g, &q, 0);
    settle();
    ASSERT_EQ(g.err, 1);
    /* The first item goes straight to the parked getter, the producer keeps
     * running and fills the queue: a whole batch per switch. */
    ASSERT_EQ(coil_queue_try_put(&q, P(100)), 0);
    ASSERT_EQ(coil_queue_len(&q), 0);
    for (int i = 0; i < CAP; i++) ASSERT_EQ(coil_queue_try_put(&q, P(i)), 0);
    ASSERT_EQ(coil_queue_try_put(&q, P(9)), -EAGAIN);
    ASSERT_EQ(g.err, 1); /* has not run yet */
    ASSERT_EQ(coil_join(t, NULL), 0);
    ASSERT_EQ(g.err, 0);
    ASSERT_EQ(g.item, 100);
    for (int i = 0; i < CAP; i++) ASSERT_EQ(get_int(&q), i);
    coil_queue_destroy(&q);
    return coil_ok(NULL);
}

TEST(put_hands_item_to_parked_getter) { RUN_MAIN(handoff_get_main, NULL); }

static coil_result handoff_put_main(void *arg) {
    (void)arg;
    coil_queue q;
    ASSERT_EQ(coil_queue_init(&q, COIL_QUEUE_FIFO, 2), 0);
    ASSERT_EQ(coil_queue_put(&q, P(1)), 0);
    ASSERT_EQ(coil_queue_put(&q, P(2)), 0);
    op p3, p4;
    coil_task *t3 = spawn_op(putter, &p3, &q, 3);
    coil_task *t4 = spawn_op(putter, &p4, &q, 4);
    settle();
    ASSERT_EQ(p3.err, 1);
    ASSERT_EQ(p4.err, 1);
    /* Each get moves the first parked putter's item in. */
    ASSERT_EQ(get_int(&q), 1);
    ASSERT_EQ(coil_queue_len(&q), 2);
    ASSERT_EQ(get_int(&q), 2);
    ASSERT_EQ(coil_queue_len(&q), 2);
    ASSERT_EQ(get_int(&q), 3);
    ASSERT_EQ(get_int(&q), 4);
    ASSERT_EQ(coil_join(t3, NULL), 0);
    ASSERT_EQ(coil_join(t4, NULL), 0);
    ASSERT_EQ(p3.err, 0);
    ASSERT_EQ(p4.err, 0);
    coil_queue_destroy(&q);
    return coil_ok(NULL);
}

TEST(get_admits_parked_putter_in_order) { RUN_MAIN(handoff_put_main, NULL); }

/* ------------------------------------------------------------------ cancel */

static coil_result cancel_getter_main(void *arg) {
    (void)arg;
    coil_queue q;
    ASSERT_EQ(coil_queue_init(&q, COIL_QUEUE_FIFO, 4), 0);
    op g1, g2;
    coil_task *t1 = spawn_op(getter, &g1, &q, 0);
    coil_task *t2 = spawn_op(getter, &g2, &q, 0);
    settle();
    coil_cancel(t1);
    settle();
    ASSERT_EQ(g1.err, -ECANCELED);
    /* The cancelled getter left the line: the item goes to the next one. */
    ASSERT_EQ(coil_queue_put(&q, P(7)), 0);
    ASSERT_EQ(coil_join(t2, NULL), 0);
    ASSERT_EQ(g2.err, 0);
    ASSERT_EQ(g2.item, 7);
    ASSERT_EQ(coil_join(t1, NULL), 0);
    /* And a later item is not handed to a ghost. */
    ASSERT_EQ(coil_queue_put(&q, P(8)), 0);
    ASSERT_EQ(coil_queue_len(&q), 1);
    ASSERT_EQ(get_int(&q), 8);
    coil_queue_destroy(&q);
    return coil_ok(NULL);
}

TEST(cancelled_getter_does_not_swallow_item) { RUN_MAIN(cancel_getter_main, NULL); }

static coil_result cancel_after_handoff_main(void *arg) {
    (void)arg;
    coil_queue q;
    ASSERT_EQ(coil_queue_init(&q, COIL_QUEUE_FIFO, 4), 0);
    op g;
    coil_task *t = spawn_op(getter, &g, &q, 0);
    settle();
    ASSERT_EQ(coil_queue_put(&q, P(5)), 0);
    coil_cancel(t); /* too late: it already owns the item */
    ASSERT_EQ(coil_join(t, NULL), 0);
    ASSERT_EQ(g.err, 0);
    ASSERT_EQ(g.item, 5);
    ASSERT_EQ(coil_queue_len(&q), 0);
    coil_queue_destroy(&q);
    return coil_ok(NULL);
}

TEST(cancel_after_handoff_keeps_item) { RUN_MAIN(cancel_after_handoff_main, NULL); }

static coil_result cancel_putter_main(void *arg) {
    (void)arg;
    coil_queue q;
    ASSERT_EQ(coil_queue_init(&q, COIL_QUEUE_FIFO, 1), 0);
    ASSERT_EQ(coil_queue_put(&q, P(1)), 0);
    op p2, p3;
    coil_task *t2 = spawn_op(putter, &p2, &q, 2);
    coil_task *t3 = spawn_op(putter, &p3, &q, 3);
    settle();
    coil_cancel(t2);
    settle();
    ASSERT_EQ(p2.err, -ECANCELED);
    ASSERT_EQ(get_int(&q), 1);
    ASSERT_EQ(get_int(&q), 3); /* 2 never entered the queue */
    ASSERT_EQ(coil_queue_len(&q), 0);
    ASSERT_EQ(coil_join(t2, NULL), 0);
    ASSERT_EQ(coil_join(t3, NULL), 0);
    ASSERT_EQ(p3.err, 0);
    coil_queue_destroy(&q);
    return coil_ok(NULL);
}

TEST(cancelled_putter_item_stays_out) { RUN_MAIN(cancel_putter_main, NULL); }

static coil_result cancelled_checkpoint_main(void *arg) {
    (void)arg;
    coil_queue q;
    void *item = NULL;
    ASSERT_EQ(coil_queue_init(&q, COIL_QUEUE_FIFO, 2), 0);
    ASSERT_EQ(coil_queue_put(&q, P(1)), 0);
    coil_cancel(coil_current());
    /* Neither end needs to wait, yet both report the cancellation and
     * leave the queue alone. */
    ASSERT_EQ(coil_queue_get(&q, &item), -ECANCELED);
    ASSERT_EQ(coil_queue_put(&q, P(2)), -ECANCELED);
    ASSERT_EQ(coil_queue_get_timeout(&q, &item, COIL_SEC(1)), -ECANCELED);
    ASSERT_EQ(coil_queue_len(&q), 1);
    ASSERT_EQ(coil_queue_try_get(&q, &item), 0);
    ASSERT_EQ(I(item), 1);
    coil_queue_destroy(&q);
    return coil_ok(NULL);
}

TEST(cancelled_task_takes_nothing) { RUN_MAIN(cancelled_checkpoint_main, NULL); }

/* ------------------------------------------------------------------ deadlines */

static coil_result deadline_main(void *arg) {
    (void)arg;
    coil_queue q;
    void *item = NULL;
    ASSERT_EQ(coil_queue_init(&q, COIL_QUEUE_FIFO, 1), 0);
    coil_scope s;
    coil_scope_enter(&s, coil_now() + COIL_MSEC(5));
    ASSERT_EQ(coil_queue_get(&q, &item), -ETIMEDOUT);
    ASSERT_EQ(coil_scope_exit(&s), -ETIMEDOUT);
    ASSERT_EQ(coil_queue_put(&q, P(1)), 0);
    coil_scope_enter(&s, coil_now() + COIL_MSEC(5));
    ASSERT_EQ(coil_queue_put(&q, P(2)), -ETIMEDOUT);
    ASSERT_EQ(coil_scope_exit(&s), -ETIMEDOUT);
    /* Neither timed-out waiter left a trace. */
    ASSERT_EQ(coil_queue_len(&q), 1);
    ASSERT_EQ(get_int(&q), 1);
    ASSERT_EQ(coil_queue_try_get(&q, &item), -EAGAIN);
    coil_queue_destroy(&q);
    return coil_ok(NULL);
}

TEST(deadline_scope_interrupts_get_and_put) { RUN_MAIN(deadline_main, NULL); }

static coil_result late_putter(void *arg) {
    coil_queue *q = arg;
    ASSERT_EQ(coil_sleep(COIL_MSEC(5)), 0);
    ASSERT_EQ(coil_queue_put(q, P(42)), 0);
    return coil_ok(NULL);
}

static coil_result late_getter(void *arg) {
    coil_queue *q = arg;
    ASSERT_EQ(coil_sleep(COIL_MSEC(5)), 0);
    ASSERT_EQ(get_int(q), 1);
    return coil_ok(NULL);
}

static coil_result timeout_main(void *arg) {
    (void)arg;
    coil_queue q;
    void *item = NULL;
    ASSERT_EQ(coil_queue_init(&q, COIL_QUEUE_FIFO, 1), 0);
    ASSERT_EQ(coil_queue_get_timeout(&q, &item, COIL_MSEC(5)), -ETIMEDOUT);
    ASSERT_EQ(coil_queue_get_timeout(&q, &item, 0), -ETIMEDOUT);
    /* An item that arrives in time. */
    coil_task *t = coil_spawn(late_putter, &q);
    ASSERT_EQ(coil_queue_get_timeout(&q, &item, COIL_SEC(30)), 0);
    ASSERT_EQ(I(item), 42);
    ASSERT_EQ(coil_join(t, NULL), 0);
    /* No wait needed: the timeout is not even looked at. */
    ASSERT_EQ(coil_queue_put_timeout(&q, P(1), 0), 0);
    ASSERT_EQ(coil_queue_put_timeout(&q, P(2), COIL_MSEC(5)), -ETIMEDOUT);
    ASSERT_EQ(coil_queue_len(&q), 1);
    /* Room that frees up in time. */
    t = coil_spawn(late_getter, &q);
    ASSERT_EQ(coil_queue_put_timeout(&q, P(3), COIL_SEC(30)), 0);
    ASSERT_EQ(coil_join(t, NULL), 0);
    ASSERT_EQ(get_int(&q), 3);
    /* A huge timeout must not overflow the deadline. */
    t = coil_spawn(late_putter, &q);
    ASSERT_EQ(coil_queue_get_timeout(&q, &item, COIL_NEVER - 1), 0);
    ASSERT_EQ(I(item), 42);
    ASSERT_EQ(coil_join(t, NULL), 0);
    coil_queue_destroy(&q);
    return coil_ok(NULL);
}

TEST(get_timeout_and_put_timeout) { RUN_MAIN(timeout_main, NULL); }

/* ------------------------------------------------------------------ close */

static coil_result close_getters_main(void *arg) {
    (void)arg;
    coil_queue q;
    ASSERT_EQ(coil_queue_init(&q, COIL_QUEUE_FIFO, 2), 0);
    op g[3];
    coil_task *t[3];
    for (int i = 0; i < 3; i++) t[i] = spawn_op(getter, &g[i], &q, 0);
    settle();
    coil_queue_close(&q);
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(coil_join(t[i], NULL), 0);
        ASSERT_EQ(g[i].err, -EPIPE);
    }
    ASSERT_EQ(coil_queue_put(&q, P(1)), -EPIPE);
    void *item;
    ASSERT_EQ(coil_queue_get(&q, &item), -EPIPE);
    coil_queue_destroy(&q);
    return coil_ok(NULL);
}

TEST(close_wakes_parked_getters) { RUN_MAIN(close_getters_main, NULL); }

static coil_result close_putters_main(void *arg) {
    (void)arg;
    coil_queue q;
    ASSERT_EQ(coil_queue_init(&q, COIL_QUEUE_FIFO, 2), 0);
    ASSERT_EQ(coil_queue_put(&q, P(1)), 0);
    ASSERT_EQ(coil_queue_put(&q, P(2)), 0);
    op p[3];
    coil_task *t[3];
    for (int i = 0; i < 3; i++) t[i] = spawn_op(putter, &p[i], &q, 10 + i);
    settle();
    coil_queue_close(&q);
    coil_queue_close(&q); /* idempotent */
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(coil_join(t[i], NULL), 0);
        ASSERT_EQ(p[i].err, -EPIPE);
    }
    /* What was inside is still drained, then the end is reported. */
    ASSERT_EQ(coil_queue_len(&q), 2);
    ASSERT_EQ(get_int(&q), 1);
    ASSERT_EQ(get_int(&q), 2);
    void *item;
    ASSERT_EQ(coil_queue_get(&q, &item), -EPIPE);
    ASSERT_EQ(coil_queue_get_timeout(&q, &item, COIL_SEC(1)), -EPIPE);
    coil_queue_destroy(&q);
    return coil_ok(NULL);
}

TEST(close_wakes_parked_putters_and_drains) { RUN_MAIN(close_putters_main, NULL); }

/* ------------------------------------------------------------------ volume */

typedef struct stream {
    coil_queue *q;
    int n;
    long long sum;
    int bad_order;
} stream;

static coil_result producer(void *arg) {
    stream *s = arg;
    for (int i = 1; i <= s->n; i++) ASSERT_EQ(coil_queue_put(s->q, P(i)), 0);
    coil_queue_close(s->q);
    return coil_ok(NULL);
}

static coil_result consumer(void *arg) {
    stream *s = arg;
    int expect = 1;
    void *item;
    int err;
    while ((err = coil_queue_get(s->q, &item)) == 0) {
        if (I(item) != expect) s->bad_order++;
        expect++;
        s->sum += I(item);
    }
    ASSERT_EQ(err, -EPIPE);
    return coil_ok(NULL);
}

static coil_result stream_main(void *arg) {
    (void)arg;
    coil_queue q;
    ASSERT_EQ(coil_queue_init(&q, COIL_QUEUE_FIFO, 16), 0);
    stream s = {&q, 100000, 0, 0};
    coil_task *c = coil_spawn(consumer, &s);
    coil_task *p = coil_spawn(producer, &s);
    ASSERT_EQ(coil_join(p, NULL), 0);
    ASSERT_EQ(coil_join(c, NULL), 0);
    ASSERT_EQ(s.bad_order, 0);
    ASSERT_EQ(s.sum, (long long)s.n * (s.n + 1) / 2);
    coil_queue_destroy(&q);
    return coil_ok(NULL);
}

TEST(producer_consumer_stream) { RUN_MAIN(stream_main, NULL); }
