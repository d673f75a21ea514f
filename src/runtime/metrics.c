/* runtime/metrics.c: loop metrics (coil_loop_get_metrics).
 *
 * Loop lag is how late timers fire. Each loop keeps a probe: a uv_timer
 * that fires every COIL__LAG_PROBE_MS and records how long after its due
 * time it ran. On a healthy loop that is well under a millisecond (libuv
 * keeps time in milliseconds, so that is about the resolution); while a
 * task blocks the loop, the probe waits with everything else, and when it
 * finally runs it records the whole delay. The last COIL__LAG_RING samples
 * are kept; the figures cover those taken within the caller's window. The
 * probe now due and not yet run counts too, with the delay so far, so lag
 * read from another thread rises while the loop is still blocked.
 *
 * The probe is unreferenced: it never keeps a loop alive, so a loop whose
 * tasks all wait for nothing is still seen as deadlocked (loop.c only looks
 * at referenced handles and coil timers). It is a libuv timer rather than a
 * coil timer for the same reason: the coil timer heap counts as work.
 *
 * Readers on other threads take the ring under its lock; task counts come
 * from a snapshot the probe refreshes, so from another thread they are at
 * most one probe period old (older while the loop is blocked).
 */
#include "runtime/diag.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ probe */

static void probe_fire(uv_timer_t *timer);

/* Arms the probe for COIL__LAG_PROBE_MS from now. Its due time is kept in
 * libuv's terms (its millisecond clock), so a probe on time shows no lag. */
static void probe_arm(coil__diag *d) {
    uv_loop_t *uv = &d->loop->uv;
    uv_update_time(uv);
    coil_time due = COIL_MSEC((coil_time)uv_now(uv) + COIL__LAG_PROBE_MS);
    atomic_store_explicit(&d->probe_due, due, memory_order_relaxed);
    uv_timer_start(&d->probe, probe_fire, COIL__LAG_PROBE_MS, 0);
}

static void record(coil__diag *d, coil_time at, coil_time lag) {
    pthread_mutex_lock(&d->lag_lock);
    size_t slot = (d->ring_head + d->ring_len) % COIL__LAG_RING;
    d->ring[slot] = (coil__lag_sample){at, lag};
    if (d->ring_len < COIL__LAG_RING) d->ring_len++;
    else d->ring_head = (d->ring_head + 1) % COIL__LAG_RING;
    pthread_mutex_unlock(&d->lag_lock);
}

static void probe_fire(uv_timer_t *timer) {
    coil__diag *d = timer->data;
    coil_time now = coil_now();
    coil_time due = atomic_load_explicit(&d->probe_due, memory_order_relaxed);
    record(d, now, now > due ? now - due : 0);
    atomic_store_explicit(&d->tasks_alive, d->loop->ntasks, memory_order_relaxed);
    atomic_store_explicit(&d->tasks_spawned, d->loop->spawned, memory_order_relaxed);
    probe_arm(d);
}

void coil__metrics_init(coil__diag *d) {
    uv_timer_init(&d->loop->uv, &d->probe);
    d->probe.data = d;
    uv_unref((uv_handle_t *)&d->probe);
    probe_arm(d);
}

static void free_diag(coil__diag *d) {
    pthread_mutex_destroy(&d->lag_lock);
    free(d);
}

static void probe_closed(uv_handle_t *h) { free_diag(h->data); }

void coil__metrics_close(coil__diag *d) {
    uv_close((uv_handle_t *)&d->probe, probe_closed);
}

void coil__metrics_abandon(coil__diag *d) {
    uv_timer_stop(&d->probe);
    free_diag(d);
}

/* ------------------------------------------------------------------ figures */

static int cmp_time(const void *a, const void *b) {
    coil_time x = *(const coil_time *)a, y = *(const coil_time *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of n sorted values. */
static coil_time percentile(const coil_time *v, size_t n, unsigned pct) {
    size_t rank = (n * pct + 99) / 100;
    return v[rank ? rank - 1 : 0];
}

static int lag_figures(coil__diag *d, coil_time now, coil_time window, coil_loop_metrics *out) {
    coil_time *v = malloc((COIL__LAG_RING + 1) * sizeof *v);
    if (!v) return -ENOMEM;
    size_t n = 0;
    pthread_mutex_lock(&d->lag_lock);
    for (size_t i = 0; i < d->ring_len; i++) {
        const coil__lag_sample *s = &d->ring[(d->ring_head + i) % COIL__LAG_RING];
        if (now - s->at <= window) v[n++] = s->lag;
    }
    pthread_mutex_unlock(&d->lag_lock);
    coil_time due = atomic_load_explicit(&d->probe_due, memory_order_relaxed);
    if (now > due) v[n++] = now - due; /* the probe still waiting to run */
    out->lag_samples = n;
    if (n) {
        qsort(v, n, sizeof *v, cmp_time);
        out->lag_p50 = percentile(v, n, 50);
        out->lag_p99 = percentile(v, n, 99);
        out->lag_max = v[n - 1];
    }
    free(v);
    return 0;
}

static void stall_figures(coil__diag *d, coil_time now, coil_loop_metrics *out) {
    out->stalls = atomic_load(&d->stalls);
    out->longest_stall = atomic_load(&d->longest_stall);
    coil_time since = atomic_load(&d->stall_since);
    if (since) {
        out->stalled_for = now - since;
        if (out->stalled_for > out->longest_stall) out->longest_stall = out->stalled_for;
    }
}

int coil_loop_get_metrics(coil_loop *loop, coil_time window, coil_loop_metrics *out) {
    if (!loop) loop = coil__tls_loop;
    if (!loop || !loop->diag) return -ESRCH;
    coil__diag *d = loop->diag;
    memset(out, 0, sizeof *out);
    coil_time now = coil_now();
    out->window = window > 0 ? window : COIL__LAG_WINDOW_DEFAULT;
    int err = lag_figures(d, now, out->window, out);
    if (err) return err;
    stall_figures(d, now, out);
    if (loop == coil__tls_loop) {
        out->tasks_alive = loop->ntasks;
        out->tasks_spawned = loop->spawned;
    } else {
        out->tasks_alive = atomic_load_explicit(&d->tasks_alive, memory_order_relaxed);
        out->tasks_spawned = atomic_load_explicit(&d->tasks_spawned, memory_order_relaxed);
    }
    coil_threadpool_stats pool;
    coil_threadpool_get_stats(&pool);
    out->pool_threads = pool.threads;
    out->pool_busy = pool.busy;
    out->pool_queued = pool.queued;
    return 0;
}
