/* runtime/once.c: an async once-initialiser for lazy shared resources.
 *
 * States: IDLE (nothing yet, or the last attempt failed), RUNNING (a caller
 * is running init) and DONE (o->value holds the result for good).
 *
 * The first caller to find the once IDLE runs init(arg) inline, in its own
 * task, so init sees that task's task-locals, deadlines and cancellation at
 * its own suspension points. Whatever init returns is the outcome: a value
 * makes the once DONE even if the caller was cancelled meanwhile, and a
 * failure (a cancellation that init reported included) is handed to every
 * caller that waited for this attempt, after which the once is IDLE again
 * and the next call runs init anew.
 *
 * Callers that arrive during RUNNING park on o->waiters. The runner wakes
 * them all when init returns, with 0 (read o->value) or init's error. A
 * waiter that is itself interrupted unlinks itself and returns its own
 * interruption; init goes on for the others.
 *
 * init must not call coil_once_get() on the same once: it would wait for
 * itself.
 */
#include "runtime/internal.h"

enum { ONCE_IDLE = 0, ONCE_RUNNING = 1, ONCE_DONE = 2 };

void coil_once_init(coil_once *o) {
    coil__list_init(&o->waiters);
    o->value = NULL;
    o->state = ONCE_IDLE;
}

/* Runs init and publishes its outcome to the waiters. Suspends (in init). */
static int run_init(coil_once *o, coil_fn init, void *arg, void **value) {
    o->state = ONCE_RUNNING;
    coil_result r = init(arg);
    if (r.err) {
        o->state = ONCE_IDLE;
        coil__wake_all(&o->waiters, r.err);
        return r.err;
    }
    o->value = r.value;
    o->state = ONCE_DONE;
    coil__wake_all(&o->waiters, 0);
    if (value) *value = r.value;
    return 0;
}

int coil_once_get(coil_once *o, coil_fn init, void *arg, void **value) {
    coil_task *t = coil__running();
    COIL_ASSERT(t != NULL);
    int err = coil__pending_cancel(t);
    if (err) return err;
    switch (o->state) {
    case ONCE_DONE:
        if (value) *value = o->value;
        return 0;
    case ONCE_IDLE:
        return run_init(o, init, arg, value);
    default: {
        coil__waiter w;
        err = coil__wait_on(&o->waiters, &w);
        if (err) return err;
        COIL_ASSERT(o->state == ONCE_DONE);
        if (value) *value = o->value;
        return 0;
    }
    }
}
