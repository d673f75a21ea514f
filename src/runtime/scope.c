/* runtime/scope.c: deadline and cancel scopes, and sleeping.
 *
 * A scope is a link in its task's chain of scopes (task->scope, innermost
 * first). Whether code is cancelled is a walk up that chain: the first fired
 * scope gives the error, a shield stops the walk, and past the outermost
 * scope the task's own cancel flag decides (coil__scope_chain_cancel).
 *
 * A scope with a deadline arms one timer for its whole life, not one per
 * suspension. When it fires, coil__propagate_cancel() interrupts the task's
 * current park and cancels the task groups opened inside the scope, so
 * children see it too.
 */
#include "runtime/internal.h"

static void scope_fire(coil__timer *timer) {
    coil_scope *s = COIL_CONTAINER_OF(timer, coil_scope, timer);
    if (s->fired) return;
    s->fired = -ETIMEDOUT;
    coil__propagate_cancel(s->owner);
}

static void enter(coil_scope *s, coil_time deadline, bool shield) {
    coil_task *t = coil__running();
    COIL_ASSERT(t != NULL);
    s->outer = t->scope;
    s->owner = t;
    s->fired = 0;
    s->shield = shield;
    s->depth = s->outer ? s->outer->depth + 1 : 1;
    coil__timer_init(&s->timer, scope_fire);
    t->scope = s;
    if (deadline == COIL_NEVER) return;
    if (deadline <= coil_now()) s->fired = -ETIMEDOUT;
    else if (coil__timer_start(t->loop, &s->timer, deadline)) s->fired = -ENOMEM;
}

void coil_scope_enter(coil_scope *s, coil_time deadline) { enter(s, deadline, false); }

void coil_scope_enter_shielded(coil_scope *s, coil_time deadline) { enter(s, deadline, true); }

void coil_scope_cancel(coil_scope *s) {
    if (s->fired) return;
    s->fired = -ECANCELED;
    coil__timer_stop(s->owner->loop, &s->timer);
    coil__propagate_cancel(s->owner);
}

int coil_scope_exit(coil_scope *s) {
    coil_task *t = s->owner;
    COIL_ASSERT(t == coil__running() && t->scope == s);
    coil__timer_stop(t->loop, &s->timer);
    t->scope = s->outer;
    /* Leaving a shield may expose a cancellation it held back; it is
     * delivered at the next suspension point, which checks the chain. */
    return s->fired;
}

bool coil_scope_fired(const coil_scope *s) { return s->fired != 0; }

/* ------------------------------------------------------------------ sleep */

typedef struct sleep_wait {
    coil__wait wait;
    coil__timer timer;
    coil_task *task;
} sleep_wait;

static void sleep_fire(coil__timer *timer) {
    sleep_wait *sw = COIL_CONTAINER_OF(timer, sleep_wait, timer);
    coil__wake(sw->task, 0);
}

static bool sleep_interrupt(coil__wait *w, int err) {
    (void)err;
    sleep_wait *sw = COIL_CONTAINER_OF(w, sleep_wait, wait);
    coil__timer_stop(sw->task->loop, &sw->timer);
    return true;
}

int coil_sleep_until(coil_time deadline) {
    coil_task *t = coil__running();
    COIL_ASSERT(t != NULL);
    if (deadline <= coil_now()) return coil_yield();
    int err = coil__pending_cancel(t);
    if (err) return err;
    sleep_wait sw = {.wait = {sleep_interrupt}, .task = t};
    coil__timer_init(&sw.timer, sleep_fire);
    err = coil__timer_start(t->loop, &sw.timer, deadline);
    if (err) return err;
    return coil__park(&sw.wait);
}

int coil_sleep(coil_time ns) {
    if (ns <= 0) return coil_yield();
    return coil_sleep_until(coil_now() + ns);
}
