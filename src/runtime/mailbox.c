/* runtime/mailbox.c: a single-slot "latest value" mailbox.
 *
 * The typical user is a worker that waits for its next command with a
 * timeout, where only the newest command matters: a post replaces a command
 * the worker has not taken yet (the replaced one goes to the `drop`
 * callback) and wakes the worker at once.
 *
 * Unlike the queue, a post does not hand its value to a parked taker. The
 * value always stays in the slot until a taker runs and takes it, so a post
 * that comes after a taker was woken but before it ran still replaces the
 * value that taker will get: the taker always sees the newest value. A post
 * that fills an empty slot wakes the first parked taker; further posts only
 * replace. Woken takers look at the slot again when they run. If another
 * task took the value in between (possible only with several takers), the
 * woken one parks again at the head of the list, keeping its turn.
 *
 * Close wakes every taker; a value still in the slot can be taken after the
 * close, then take reports -EPIPE.
 */
#include "runtime/internal.h"

void coil_mailbox_init(coil_mailbox *m, void (*drop)(void *value)) {
    coil__list_init(&m->waiters);
    m->value = NULL;
    m->full = false;
    m->closed = false;
    m->drop = drop;
}

void coil_mailbox_destroy(coil_mailbox *m) {
    /* The struct must outlive its waiters. */
    COIL_ASSERT(coil__list_empty(&m->waiters));
    if (m->full && m->drop) m->drop(m->value);
    m->value = NULL;
    m->full = false;
}

int coil_mailbox_post(coil_mailbox *m, void *value) {
    if (m->closed) return -EPIPE;
    void *old = m->value;
    bool replaced = m->full;
    m->value = value;
    m->full = true;
    if (!replaced) coil__wake_one(&m->waiters, NULL, 0);
    /* Last, so that a drop callback sees the mailbox already updated. */
    if (replaced && m->drop) m->drop(old);
    return 0;
}

void coil_mailbox_close(coil_mailbox *m) {
    m->closed = true;
    coil__wake_all(&m->waiters, -EPIPE);
}

static bool waiter_interrupt(coil__wait *w, int err) {
    (void)err;
    coil__waiter *waiter = COIL_CONTAINER_OF(w, coil__waiter, wait);
    coil__list_remove(&waiter->link);
    return true;
}

/* Parks at the head of the takers, for a woken taker that lost the value
 * to another task. Returns the wake result. Suspends. */
static int wait_again(coil_mailbox *m, coil__waiter *w) {
    int err = coil__pending_cancel(w->task);
    if (err) return err;
    w->wait.interrupt = waiter_interrupt;
    /* Inserting before the first node puts `w` at the front. */
    coil__list_push_back(m->waiters.next, &w->link);
    return coil__park(&w->wait);
}

/* Takes the value or waits for one. Suspends. */
static int take_or_wait(coil_mailbox *m, void **value) {
    coil__waiter w;
    bool woken = false;
    for (;;) {
        if (m->full) {
            *value = m->value;
            m->value = NULL;
            m->full = false;
            return 0;
        }
        if (m->closed) return -EPIPE;
        int err = woken ? wait_again(m, &w) : coil__wait_on(&m->waiters, &w);
        /* 0: a post filled the slot; -EPIPE: closed. Either way, look. */
        if (err && err != -EPIPE) return err;
        woken = true;
    }
}

/* The deadline `timeout` ns from now, without overflow. */
static coil_time deadline_after(coil_time timeout) {
    if (timeout == COIL_NEVER) return COIL_NEVER;
    coil_time now = coil_now();
    if (timeout <= 0) return now;
    return timeout >= COIL_NEVER - now ? COIL_NEVER : now + timeout;
}

int coil_mailbox_take(coil_mailbox *m, void **value, coil_time timeout) {
    coil_task *t = coil__running();
    COIL_ASSERT(t != NULL);
    int err = coil__pending_cancel(t);
    if (err) return err;
    /* Only a wait needs the clock and a deadline scope. */
    if (m->full || m->closed || timeout == COIL_NEVER) return take_or_wait(m, value);
    coil_scope s;
    coil_scope_enter(&s, deadline_after(timeout));
    err = take_or_wait(m, value);
    coil_scope_exit(&s);
    return err;
}
