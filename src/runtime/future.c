/* runtime/future.c: one-shot futures with any number of waiters. */
#include "runtime/internal.h"

void coil_future_init(coil_future *f) {
    coil__list_init(&f->waiters);
    f->value = NULL;
    f->err = 0;
    f->done = false;
}

static int settle(coil_future *f, void *value, int err) {
    if (f->done) return -EALREADY;
    f->value = value;
    f->err = err;
    f->done = true;
    coil__wake_all(&f->waiters, 0);
    return 0;
}

int coil_future_resolve(coil_future *f, void *value) { return settle(f, value, 0); }

int coil_future_reject(coil_future *f, int err) {
    if (err >= 0) return -EINVAL;
    return settle(f, NULL, err);
}

bool coil_future_done(const coil_future *f) { return f->done; }

int coil_future_wait(coil_future *f, void **value) {
    /* A suspension point even when resolved: cancellation is level-triggered. */
    int err = coil_check_cancel();
    if (err) return err;
    if (!f->done) {
        coil__waiter w;
        err = coil__wait_on(&f->waiters, &w);
        if (err) return err;
    }
    if (f->err) return f->err;
    if (value) *value = f->value;
    return 0;
}
