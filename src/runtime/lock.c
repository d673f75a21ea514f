/* runtime/lock.c: locks, events, semaphores and condition variables.
 *
 * Each primitive is a counter or flag plus a FIFO list of coil__waiter nodes
 * that live on the parked tasks' stacks (see the park/wake protocol in
 * internal.h). No atomics: every call runs on the loop's thread, and the code
 * between two suspension points is atomic with respect to the other tasks.
 *
 * Hand-off, not barging. A release that finds a waiter gives the resource
 * (the lock, a permit) straight to the first waiter and wakes it; the
 * resource never becomes free in between, so a task that calls acquire
 * before the woken waiter runs cannot overtake it. Hence the invariants:
 *
 *     lock:  waiters non-empty  =>  held
 *     sem:   waiters non-empty  =>  count == 0
 *
 * and a woken waiter simply returns 0: it already owns what it waited for.
 * A waiter that is cancelled or times out unlinks itself (coil__wait_on's
 * interrupt), so it never receives the resource; a waiter that was woken
 * is READY, not PARKED, and can no longer be interrupted, so a grant is
 * never lost either.
 *
 * Checkpoints. Every waiting call checks for a pending cancellation or an
 * expired deadline on entry, even when it would not have to wait, as the
 * header promises ("every suspending call returns -ECANCELED without
 * suspending"). The non-waiting variants (try, release, set, signal) never
 * check.
 *
 * coil_cond_wait() must give the lock back to its caller on every path.
 * After the wait it re-acquires the lock inside a shield scope, so neither
 * a cancellation nor an expired deadline can interrupt that acquire, and
 * only then reports the interruption of the wait itself.
 */
#include "runtime/internal.h"

/* The pending interruption of the calling task, which must be a task. */
static int checkpoint(void) {
    coil_task *t = coil__running();
    COIL_ASSERT(t != NULL);
    return coil__pending_cancel(t);
}

/* ------------------------------------------------------------------ lock */

void coil_lock_init(coil_lock *l) {
    coil__list_init(&l->waiters);
    l->held = false;
}

/* Suspends when the lock is held. */
int coil_lock_acquire(coil_lock *l) {
    int err = checkpoint();
    if (err) return err;
    if (!l->held) {
        l->held = true;
        return 0;
    }
    coil__waiter w;
    /* 0: coil_lock_release() handed the lock over; we hold it. */
    return coil__wait_on(&l->waiters, &w);
}

bool coil_lock_try(coil_lock *l) {
    if (l->held) return false;
    l->held = true;
    return true;
}

void coil_lock_release(coil_lock *l) {
    COIL_ASSERT(l->held);
    /* The first waiter becomes the holder; `held` stays true. */
    if (!coil__wake_one(&l->waiters, NULL, 0)) l->held = false;
}

/* ------------------------------------------------------------------ event */

void coil_event_init(coil_event *e) {
    coil__list_init(&e->waiters);
    e->set = false;
}

void coil_event_set(coil_event *e) {
    if (e->set) return;
    e->set = true;
    coil__wake_all(&e->waiters, 0);
}

void coil_event_clear(coil_event *e) { e->set = false; }

bool coil_event_is_set(const coil_event *e) { return e->set; }

/* Suspends while the event is clear. A waiter woken by a set returns 0 even
 * if the event is cleared again before it runs (asyncio does the same). */
int coil_event_wait(coil_event *e) {
    int err = checkpoint();
    if (err) return err;
    if (e->set) return 0;
    coil__waiter w;
    return coil__wait_on(&e->waiters, &w);
}

/* ------------------------------------------------------------------ semaphore */

void coil_sem_init(coil_sem *s, size_t count) {
    coil__list_init(&s->waiters);
    s->count = count;
}

/* Suspends when no permit is left. */
int coil_sem_acquire(coil_sem *s) {
    int err = checkpoint();
    if (err) return err;
    if (s->count > 0) {
        s->count--;
        return 0;
    }
    coil__waiter w;
    /* 0: coil_sem_release() handed its permit over. */
    return coil__wait_on(&s->waiters, &w);
}

bool coil_sem_try(coil_sem *s) {
    if (s->count == 0) return false;
    s->count--;
    return true;
}

void coil_sem_release(coil_sem *s) {
    if (coil__wake_one(&s->waiters, NULL, 0)) return;
    COIL_ASSERT(s->count < SIZE_MAX);
    s->count++;
}

/* ------------------------------------------------------------------ condition */

void coil_cond_init(coil_cond *c) { coil__list_init(&c->waiters); }

/* Takes `l` back, whatever the task's cancellation state. Suspends while
 * another task holds it. */
static void relock(coil_lock *l) {
    coil_scope shield;
    coil_scope_enter_shielded(&shield, COIL_NEVER);
    int err = coil_lock_acquire(l);
    coil_scope_exit(&shield);
    /* A shield without a deadline cannot fire, so the acquire cannot fail. */
    COIL_ASSERT(err == 0);
}

/* Suspends. The caller must hold `l`; it holds it again on return. */
int coil_cond_wait(coil_cond *c, coil_lock *l) {
    COIL_ASSERT(l->held);
    /* Interrupted already: return without ever letting go of the lock. */
    int err = checkpoint();
    if (err) return err;
    coil__waiter w;
    /* Nothing runs between the release and the park, so no signal can be
     * missed in between. */
    coil_lock_release(l);
    err = coil__wait_on(&c->waiters, &w);
    relock(l);
    return err;
}

void coil_cond_signal(coil_cond *c) { coil__wake_one(&c->waiters, NULL, 0); }

void coil_cond_broadcast(coil_cond *c) { coil__wake_all(&c->waiters, 0); }
