/* tests/runtime/test_lock.c: locks, events, semaphores and condition
 * variables: fairness, hand-off, and every waiting call interrupted by a
 * cancellation or a deadline. */
#include "test.h"

/* Lets every spawned task run until it parks. */
static void settle(void) {
    for (int i = 0; i < 4; i++) ASSERT_EQ(coil_yield(), 0);
}

/* ------------------------------------------------------------------ lock */

typedef struct locker {
    coil_lock *lock;
    int id;
    int *order;   /* ids in the order they got the lock */
    int *norder;
    int err;      /* what acquire returned */
    bool done;
} locker;

static coil_result lock_then_record(void *arg) {
    locker *k = arg;
    k->err = coil_lock_acquire(k->lock);
    if (k->err == 0) {
        k->order[(*k->norder)++] = k->id;
        /* Hold it across a suspension (which a cancelled task skips). */
        int y = coil_yield();
        ASSERT(y == 0 || y == -ECANCELED);
        coil_lock_release(k->lock);
    }
    k->done = true;
    return coil_fail(k->err);
}

static coil_result lock_basic_main(void *arg) {
    (void)arg;
    coil_lock l;
    coil_lock_init(&l);
    ASSERT(coil_lock_try(&l));
    ASSERT(!coil_lock_try(&l));
    coil_lock_release(&l);
    ASSERT_EQ(coil_lock_acquire(&l), 0);
    ASSERT(!coil_lock_try(&l));
    coil_lock_release(&l);
    ASSERT(coil_lock_try(&l));
    coil_lock_release(&l);
    return coil_ok(NULL);
}

TEST(lock_basic) { RUN_MAIN(lock_basic_main, NULL); }

static coil_result lock_fifo_main(void *arg) {
    (void)arg;
    coil_lock l;
    coil_lock_init(&l);
    int order[8], norder = 0;
    locker k[5];
    coil_task *t[5];
    ASSERT_EQ(coil_lock_acquire(&l), 0);
    for (int i = 0; i < 5; i++) {
        k[i] = (locker){&l, i, order, &norder, 1, false};
        t[i] = coil_spawn(lock_then_record, &k[i]);
        ASSERT(t[i] != NULL);
    }
    settle();
    ASSERT_EQ(norder, 0);
    coil_lock_release(&l);
    /* Handed to the first waiter: no barging, not even by the releaser. */
    ASSERT(!coil_lock_try(&l));
    ASSERT_EQ(coil_lock_acquire(&l), 0); /* queues behind all five */
    order[norder++] = 99;
    coil_lock_release(&l);
    for (int i = 0; i < 5; i++) ASSERT_EQ(coil_join(t[i], NULL), 0);
    int want[6] = {0, 1, 2, 3, 4, 99};
    ASSERT_EQ(norder, 6);
    for (int i = 0; i < 6; i++) ASSERT_EQ(order[i], want[i]);
    ASSERT(coil_lock_try(&l));
    coil_lock_release(&l);
    return coil_ok(NULL);
}

TEST(lock_fifo_fair) { RUN_MAIN(lock_fifo_main, NULL); }

static coil_result lock_cancel_main(void *arg) {
    (void)arg;
    coil_lock l;
    coil_lock_init(&l);
    int order[8], norder = 0;
    locker a = {&l, 1, order, &norder, 1, false};
    locker b = {&l, 2, order, &norder, 1, false};
    ASSERT_EQ(coil_lock_acquire(&l), 0);
    coil_task *ta = coil_spawn(lock_then_record, &a);
    coil_task *tb = coil_spawn(lock_then_record, &b);
    settle();
    coil_cancel(ta);
    settle();
    ASSERT(a.done);
    ASSERT_EQ(a.err, -ECANCELED);
    /* The cancelled waiter left the line: the lock goes to b. */
    coil_lock_release(&l);
    coil_result r;
    ASSERT_EQ(coil_join(ta, &r), 0);
    ASSERT_EQ(r.err, -ECANCELED);
    ASSERT_EQ(coil_join(tb, &r), 0);
    ASSERT_EQ(r.err, 0);
    ASSERT_EQ(norder, 1);
    ASSERT_EQ(order[0], 2);
    ASSERT(coil_lock_try(&l));
    coil_lock_release(&l);
    return coil_ok(NULL);
}

TEST(lock_cancelled_waiter_leaves_line) { RUN_MAIN(lock_cancel_main, NULL); }

/* A cancellation that arrives after the hand-off does not undo it. */
static coil_result lock_cancel_after_grant_main(void *arg) {
    (void)arg;
    coil_lock l;
    coil_lock_init(&l);
    int order[4], norder = 0;
    locker a = {&l, 1, order, &norder, 1, false};
    ASSERT_EQ(coil_lock_acquire(&l), 0);
    coil_task *ta = coil_spawn(lock_then_record, &a);
    settle();
    coil_lock_release(&l);
    coil_cancel(ta); /* a is ready, holding the lock */
    coil_result r;
    ASSERT_EQ(coil_join(ta, &r), 0);
    ASSERT_EQ(a.err, 0);
    ASSERT_EQ(norder, 1);
    ASSERT(coil_lock_try(&l)); /* a released it */
    coil_lock_release(&l);
    return coil_ok(NULL);
}

TEST(lock_cancel_after_grant_keeps_lock) { RUN_MAIN(lock_cancel_after_grant_main, NULL); }

static coil_result lock_with_deadline(void *arg) {
    coil_lock *l = arg;
    coil_scope s;
    coil_scope_enter(&s, coil_now() + COIL_MSEC(5));
    int err = coil_lock_acquire(l);
    ASSERT_EQ(coil_scope_exit(&s), -ETIMEDOUT);
    return coil_fail(err);
}

static coil_result lock_deadline_main(void *arg) {
    (void)arg;
    coil_lock l;
    coil_lock_init(&l);
    ASSERT_EQ(coil_lock_acquire(&l), 0);
    coil_result r;
    ASSERT_EQ(coil_join(coil_spawn(lock_with_deadline, &l), &r), 0);
    ASSERT_EQ(r.err, -ETIMEDOUT);
    coil_lock_release(&l);
    ASSERT(coil_lock_try(&l)); /* the timed-out waiter left no trace */
    coil_lock_release(&l);
    return coil_ok(NULL);
}

TEST(lock_deadline_while_parked) { RUN_MAIN(lock_deadline_main, NULL); }

static coil_result cancelled_checkpoint_main(void *arg) {
    (void)arg;
    coil_lock l;
    coil_event e;
    coil_sem s;
    coil_cond c;
    coil_lock_init(&l);
    coil_event_init(&e);
    coil_sem_init(&s, 1);
    coil_cond_init(&c);
    coil_event_set(&e);
    coil_cancel(coil_current());
    /* Level-triggered: even calls that need not wait report it, and take
     * nothing. */
    ASSERT_EQ(coil_lock_acquire(&l), -ECANCELED);
    ASSERT(!l.held);
    ASSERT_EQ(coil_event_wait(&e), -ECANCELED);
    ASSERT_EQ(coil_sem_acquire(&s), -ECANCELED);
    ASSERT(coil_sem_try(&s));
    ASSERT(coil_lock_try(&l));
    ASSERT_EQ(coil_cond_wait(&c, &l), -ECANCELED);
    ASSERT(l.held); /* never let go */
    coil_lock_release(&l);
    return coil_ok(NULL);
}

TEST(cancelled_task_checkpoints_without_taking) { RUN_MAIN(cancelled_checkpoint_main, NULL); }

/* ------------------------------------------------------------------ event */

typedef struct ewaiter {
    coil_event *e;
    int err;
    bool done;
} ewaiter;

static coil_result event_waiter(void *arg) {
    ewaiter *w = arg;
    w->err = coil_event_wait(w->e);
    w->done = true;
    return coil_ok(NULL);
}

static coil_result event_main(void *arg) {
    (void)arg;
    coil_event e;
    coil_event_init(&e);
    ASSERT(!coil_event_is_set(&e));
    ewaiter w[3];
    coil_task *t[3];
    for (int i = 0; i < 3; i++) {
        w[i] = (ewaiter){&e, 1, false};
        t[i] = coil_spawn(event_waiter, &w[i]);
    }
    settle();
    for (int i = 0; i < 3; i++) ASSERT(!w[i].done);
    coil_cancel(t[1]);
    settle();
    ASSERT(w[1].done);
    ASSERT_EQ(w[1].err, -ECANCELED);
    coil_event_set(&e);
    ASSERT(coil_event_is_set(&e));
    for (int i = 0; i < 3; i++) ASSERT_EQ(coil_join(t[i], NULL), 0);
    ASSERT_EQ(w[0].err, 0);
    ASSERT_EQ(w[2].err, 0);
    ASSERT_EQ(coil_event_wait(&e), 0); /* set: no wait */
    coil_event_clear(&e);
    ASSERT(!coil_event_is_set(&e));
    return coil_ok(NULL);
}

TEST(event_set_wakes_all_but_the_cancelled) { RUN_MAIN(event_main, NULL); }

static coil_result event_deadline_main(void *arg) {
    (void)arg;
    coil_event e;
    coil_event_init(&e);
    coil_scope s;
    coil_scope_enter(&s, coil_now() + COIL_MSEC(5));
    ASSERT_EQ(coil_event_wait(&e), -ETIMEDOUT);
    ASSERT_EQ(coil_scope_exit(&s), -ETIMEDOUT);
    /* No stale waiter: a set now wakes nobody and the event works on. */
    coil_event_set(&e);
    ASSERT_EQ(coil_event_wait(&e), 0);
    return coil_ok(NULL);
}

TEST(event_deadline_while_parked) { RUN_MAIN(event_deadline_main, NULL); }

/* ------------------------------------------------------------------ semaphore */

typedef struct sworker {
    coil_sem *s;
    int id;
    int *order;
    int *norder;
    int err;
    bool hold; /* keep the permit */
} sworker;

static coil_result sem_acquirer(void *arg) {
    sworker *w = arg;
    w->err = coil_sem_acquire(w->s);
    if (w->err == 0) {
        w->order[(*w->norder)++] = w->id;
        if (!w->hold) coil_sem_release(w->s);
    }
    return coil_fail(w->err);
}

static coil_result sem_main(void *arg) {
    (void)arg;
    coil_sem s;
    coil_sem_init(&s, 2);
    int order[8], norder = 0;
    sworker w[5];
    coil_task *t[5];
    for (int i = 0; i < 5; i++) {
        w[i] = (sworker){&s, i, order, &norder, 1, true};
        t[i] = coil_spawn(sem_acquirer, &w[i]);
    }
    settle();
    ASSERT_EQ(norder, 2); /* two permits */
    ASSERT(!coil_sem_try(&s));
    coil_cancel(t[2]); /* next in line; it must not eat a permit */
    settle();
    ASSERT_EQ(w[2].err, -ECANCELED);
    coil_sem_release(&s);
    ASSERT(!coil_sem_try(&s)); /* handed to waiter 3, not left free */
    coil_sem_release(&s);
    for (int i = 0; i < 5; i++) ASSERT_EQ(coil_join(t[i], NULL), 0);
    int want[4] = {0, 1, 3, 4};
    ASSERT_EQ(norder, 4);
    for (int i = 0; i < 4; i++) ASSERT_EQ(order[i], want[i]);
    ASSERT(!coil_sem_try(&s)); /* 3 and 4 still hold theirs */
    coil_sem_release(&s);
    coil_sem_release(&s);
    ASSERT(coil_sem_try(&s));
    ASSERT(coil_sem_try(&s));
    ASSERT(!coil_sem_try(&s));
    return coil_ok(NULL);
}

TEST(sem_fifo_and_cancelled_waiter) { RUN_MAIN(sem_main, NULL); }

static coil_result sem_deadline_main(void *arg) {
    (void)arg;
    coil_sem s;
    coil_sem_init(&s, 0);
    coil_scope sc;
    coil_scope_enter(&sc, coil_now() + COIL_MSEC(5));
    ASSERT_EQ(coil_sem_acquire(&s), -ETIMEDOUT);
    ASSERT_EQ(coil_scope_exit(&sc), -ETIMEDOUT);
    coil_sem_release(&s);
    ASSERT(coil_sem_try(&s)); /* the permit was not handed to a ghost */
    return coil_ok(NULL);
}

TEST(sem_deadline_while_parked) { RUN_MAIN(sem_deadline_main, NULL); }

/* ------------------------------------------------------------------ condition */

typedef struct cstate {
    coil_lock lock;
    coil_cond cond;
    int items;        /* guarded by lock */
    int got[8];       /* consumer ids in wake order */
    int ngot;
} cstate;

typedef struct consumer {
    cstate *st;
    int id;
    int err;
    bool held_after;  /* the lock was held when cond_wait returned */
    bool done;
} consumer;

static coil_result cond_consumer(void *arg) {
    consumer *c = arg;
    cstate *st = c->st;
    ASSERT_EQ(coil_lock_acquire(&st->lock), 0);
    while (st->items == 0) {
        c->err = coil_cond_wait(&st->cond, &st->lock);
        c->held_after = st->lock.held;
        if (c->err) break;
    }
    if (!c->err) {
        st->items--;
        st->got[st->ngot++] = c->id;
    }
    c->done = true;
    coil_lock_release(&st->lock);
    return coil_fail(c->err);
}

static coil_result cond_signal_main(void *arg) {
    (void)arg;
    cstate st;
    memset(&st, 0, sizeof st);
    coil_lock_init(&st.lock);
    coil_cond_init(&st.cond);
    consumer c[3];
    coil_task *t[3];
    for (int i = 0; i < 3; i++) {
        c[i] = (consumer){&st, i, 0, false, false};
        t[i] = coil_spawn(cond_consumer, &c[i]);
    }
    settle();
    ASSERT(!st.lock.held); /* every consumer released it to wait */
    ASSERT_EQ(coil_lock_acquire(&st.lock), 0);
    st.items = 1;
    coil_cond_signal(&st.cond);
    coil_lock_release(&st.lock);
    settle();
    ASSERT_EQ(st.ngot, 1);
    ASSERT_EQ(st.got[0], 0); /* first in, first woken */
    ASSERT_EQ(coil_lock_acquire(&st.lock), 0);
    st.items = 2;
    coil_cond_broadcast(&st.cond);
    coil_lock_release(&st.lock);
    for (int i = 0; i < 3; i++) ASSERT_EQ(coil_join(t[i], NULL), 0);
    ASSERT_EQ(st.ngot, 3);
    ASSERT_EQ(st.got[1], 1);
    ASSERT_EQ(st.got[2], 2);
    for (int i = 0; i < 3; i++) ASSERT(c[i].held_after);
    ASSERT(!st.lock.held);
    return coil_ok(NULL);
}

TEST(cond_signal_and_broadcast) { RUN_MAIN(cond_signal_main, NULL); }

static coil_result cond_cancel_main(void *arg) {
    (void)arg;
    cstate st;
    memset(&st, 0, sizeof st);
    coil_lock_init(&st.lock);
    coil_cond_init(&st.cond);
    consumer c = {&st, 7, 0, false, false};
    coil_task *t = coil_spawn(cond_consumer, &c);
    settle();
    /* Hold the lock while cancelling: the consumer must wait for it,
     * shielded, before it can report the cancellation. */
    ASSERT_EQ(coil_lock_acquire(&st.lock), 0);
    coil_cancel(t);
    settle();
    ASSERT(!c.done);
    coil_lock_release(&st.lock);
    coil_result r;
    ASSERT_EQ(coil_join(t, &r), 0);
    ASSERT_EQ(r.err, -ECANCELED);
    ASSERT(c.held_after);
    ASSERT(!st.lock.held); /* it released the lock it got back */
    /* No stale waiter: a signal now wakes nobody. */
    coil_cond_signal(&st.cond);
    ASSERT(coil_lock_try(&st.lock));
    coil_lock_release(&st.lock);
    return coil_ok(NULL);
}

TEST(cond_cancelled_wait_reacquires_lock) { RUN_MAIN(cond_cancel_main, NULL); }

static coil_result cond_deadline_consumer(void *arg) {
    consumer *c = arg;
    cstate *st = c->st;
    ASSERT_EQ(coil_lock_acquire(&st->lock), 0);
    coil_scope s;
    coil_scope_enter(&s, coil_now() + COIL_MSEC(5));
    c->err = coil_cond_wait(&st->cond, &st->lock);
    c->held_after = st->lock.held;
    ASSERT_EQ(coil_scope_exit(&s), -ETIMEDOUT);
    c->done = true;
    coil_lock_release(&st->lock);
    return coil_fail(c->err);
}

static coil_result cond_deadline_main(void *arg) {
    (void)arg;
    cstate st;
    memset(&st, 0, sizeof st);
    coil_lock_init(&st.lock);
    coil_cond_init(&st.cond);
    consumer c = {&st, 1, 0, false, false};
    coil_task *t = coil_spawn(cond_deadline_consumer, &c);
    settle();
    /* Hold the lock past the deadline: the re-acquire must still wait. */
    ASSERT_EQ(coil_lock_acquire(&st.lock), 0);
    ASSERT_EQ(coil_sleep(COIL_MSEC(20)), 0);
    ASSERT(!c.done);
    coil_lock_release(&st.lock);
    coil_result r;
    ASSERT_EQ(coil_join(t, &r), 0);
    ASSERT_EQ(r.err, -ETIMEDOUT);
    ASSERT(c.held_after);
    ASSERT(!st.lock.held);
    return coil_ok(NULL);
}

TEST(cond_deadline_reacquires_lock) { RUN_MAIN(cond_deadline_main, NULL); }
