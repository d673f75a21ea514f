/* runtime/loop.c: driving a loop.
 *
 * The scheduler alternates between two phases on the loop's thread:
 *
 *   run:  resume ready tasks in FIFO order. A task that becomes ready during
 *         this phase runs in it too. The phase ends when the queue is empty,
 *         or after COIL__RUN_BUDGET ns of task time, so that I/O is polled at
 *         least that often even while tasks keep yielding.
 *   poll: fire due timers, then run libuv once: without blocking if tasks
 *         are ready, otherwise blocking until the next timer or I/O event.
 *
 * libuv callbacks never switch stacks: they only make tasks ready
 * (coil__wake), and the run phase resumes them. So a task never runs inside
 * a libuv callback, and a callback never fires inside the call that
 * registered it.
 *
 * Cross-thread calls (coil_call_soon_threadsafe) go through a mutex-guarded
 * list and one uv_async. The async is unreferenced, so a loop whose tasks all
 * wait for nothing is seen as deadlocked, unless remote work is in flight
 * (xpending), which holds a reference.
 *
 * Heartbeat and busy time. Each resume publishes the task and bumps
 * loop->beat with plain atomic stores; the watchdog thread (watchdog.c)
 * samples them. Busy time per task is measured without a clock read per
 * resume, which would cost more than the resume itself (in an optimised
 * build a yield+resume takes about 17 ns and a clock read about 22 ns; a
 * read per resume made yields almost twice as slow, see docs/diagnostics.md
 * and `coil bench watchdog`). The run phase reads the clock
 * once when it starts, then times each resume one by one (exact) until 64
 * resumes in a row took under COIL__BUSY_EXACT each. From then on it reads
 * the clock once per 64 resumes, and the time of those cheap resumes goes
 * to the loop's pool (fast_ns over fast_resumes) while each task counts how
 * many it had: its share is charged at the pool's average (diag.c). A window
 * of 64 that took COIL__BUSY_EXACT or more per resume switches back to
 * exact timing. So resumes that do real work are timed exactly, and the
 * error is confined to resumes of a couple of microseconds.
 */
#include "runtime/internal.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum {
    COIL__RUN_BUDGET = 500 * 1000, /* ns */
    COIL__BUSY_WINDOW = 64,        /* cheap resumes between two clock reads */
    COIL__BUSY_EXACT = 2000,       /* ns: resumes this long are timed one by one */
};

atomic_bool coil__busy_accounting = true;

_Thread_local coil_loop *coil__tls_loop;
_Thread_local coil__site_t coil__site;

coil_time coil_now(void) { return (coil_time)uv_hrtime(); }

coil_loop *coil_loop_current(void) { return coil__tls_loop; }

struct uv_loop_s *coil_loop_uv(coil_loop *loop) { return &loop->uv; }

void coil__ready_push(coil_loop *loop, coil_task *t) {
    t->next_ready = NULL;
    if (loop->ready_tail) loop->ready_tail->next_ready = t;
    else loop->ready_head = t;
    loop->ready_tail = t;
}

void coil__ready_push_front(coil_loop *loop, coil_task *t) {
    t->next_ready = loop->ready_head;
    loop->ready_head = t;
    if (!loop->ready_tail) loop->ready_tail = t;
}

static coil_task *ready_pop(coil_loop *loop) {
    coil_task *t = loop->ready_head;
    if (t) {
        loop->ready_head = t->next_ready;
        if (!loop->ready_head) loop->ready_tail = NULL;
    }
    return t;
}

/* ------------------------------------------------------------------ cross-thread */

static void run_xcalls(uv_async_t *async) {
    coil_loop *loop = async->data;
    pthread_mutex_lock(&loop->xlock);
    coil__xcall *c = loop->xcalls_head;
    loop->xcalls_head = loop->xcalls_tail = NULL;
    pthread_mutex_unlock(&loop->xlock);
    while (c) {
        coil__xcall *next = c->next;
        bool heap = !c->caller_owned; /* a caller's node may be gone after fn */
        c->fn(c->arg);
        if (heap) free(c);
        c = next;
    }
}

static int xcall_post(coil_loop *loop, coil__xcall *c) {
    c->next = NULL;
    pthread_mutex_lock(&loop->xlock);
    if (loop->stopped) {
        pthread_mutex_unlock(&loop->xlock);
        return -ESRCH;
    }
    if (loop->xcalls_tail) loop->xcalls_tail->next = c;
    else loop->xcalls_head = c;
    loop->xcalls_tail = c;
    /* Sent under the lock: once `stopped` is set the async may be closed. */
    uv_async_send(&loop->async);
    pthread_mutex_unlock(&loop->xlock);
    return 0;
}

int coil_call_soon_threadsafe(coil_loop *loop, void (*fn)(void *), void *arg) {
    coil__xcall *c = malloc(sizeof *c);
    if (!c) return -ENOMEM;
    c->fn = fn;
    c->arg = arg;
    c->caller_owned = false;
    int err = xcall_post(loop, c);
    if (err) free(c);
    return err;
}

int coil__call_soon_threadsafe_node(coil_loop *loop, coil__xcall *node) {
    node->caller_owned = true;
    return xcall_post(loop, node);
}

/* ------------------------------------------------------------------ init */

static void wakeup_cb(uv_timer_t *timer) { (void)timer; }

int coil__loop_init(coil_loop *loop) {
    memset(loop, 0, sizeof *loop);
    int err = uv_loop_init(&loop->uv);
    if (err) return err;
    loop->stacks = coil__stack_pool_new();
    if (!loop->stacks) {
        uv_loop_close(&loop->uv);
        return -ENOMEM;
    }
    loop->default_stack = coil__stack_default_size();
    coil__list_init(&loop->tasks);
    pthread_mutex_init(&loop->xlock, NULL);
    uv_timer_init(&loop->uv, &loop->wakeup);
    uv_async_init(&loop->uv, &loop->async, run_xcalls);
    loop->async.data = loop;
    uv_unref((uv_handle_t *)&loop->async);
    coil__context_loop_init(loop);
    err = coil__watchdog_register(loop);
    if (err) coil__loop_close(loop);
    return err;
}

void coil__loop_on_close(coil_loop *loop, coil__close_hook *hook) {
    hook->next = loop->close_hooks;
    loop->close_hooks = hook;
}

static void run_close_hooks(coil_loop *loop) {
    coil__close_hook *h;
    while ((h = loop->close_hooks)) {
        loop->close_hooks = h->next; /* fn may free the node */
        h->fn(h->arg);
    }
}

/* A handle still open when the loop closes (a stream or listener main never
 * closed) would keep uv_run going forever: close it, and say so. Its memory
 * is leaked on purpose, since its owner may still point at it. */
static void close_leftover(uv_handle_t *h, void *arg) {
    (void)arg;
    if (uv_is_closing(h)) return;
    coil__log("a %s handle was still open when its loop closed; closing it",
              uv_handle_type_name(uv_handle_get_type(h)));
    uv_close(h, NULL);
}

void coil__loop_close(coil_loop *loop) {
    run_close_hooks(loop);
    coil__watchdog_unregister(loop);
    pthread_mutex_lock(&loop->xlock);
    loop->stopped = true;
    pthread_mutex_unlock(&loop->xlock);
    run_xcalls(&loop->async); /* calls that raced in run before we go */
    uv_close((uv_handle_t *)&loop->wakeup, NULL);
    uv_close((uv_handle_t *)&loop->async, NULL);
    uv_walk(&loop->uv, close_leftover, NULL);
    uv_run(&loop->uv, UV_RUN_DEFAULT);
    uv_loop_close(&loop->uv);
    coil__stack_pool_free(loop->stacks);
    coil__locals_free_spare(loop);
    free(loop->heap);
    pthread_mutex_destroy(&loop->xlock);
}

/* ------------------------------------------------------------------ drive */

static void after_run(coil_loop *loop, coil_task *t) {
    if (t->state != COIL__DONE) return;
    coil__context_destroy(t);
    if (t->detached || t->group) coil__task_free(t);
}

/* Runs `t` until it suspends, publishing the heartbeat around it. The beat
 * is stored with release order (a plain store on x86), so a watchdog that
 * reads it also sees the slice_start stored before it. */
static inline void resume(coil_loop *loop, coil_task *t) {
    loop->current = t;
    t->state = COIL__RUNNING;
    /* The call site a park records is the running task's own: whatever an
     * earlier task of this thread left there is not. A suspending call
     * without a site wrapper then shows "?", never another task's line. */
    coil__site.file = NULL;
    coil__site.line = 0;
    atomic_store_explicit(&loop->running, t, memory_order_relaxed);
    atomic_store_explicit(&loop->beat,
                          atomic_load_explicit(&loop->beat, memory_order_relaxed) + 1,
                          memory_order_release);
    coil__context_resume(loop, t);
    loop->current = NULL;
    atomic_store_explicit(&loop->running, NULL, memory_order_relaxed);
}

/* Without busy accounting: the clock is read every 64 resumes, for the
 * budget only. */
static void run_ready_untimed(coil_loop *loop) {
    coil_time start = 0;
    unsigned n = 0;
    coil_task *t;
    while ((t = ready_pop(loop))) {
        resume(loop, t);
        after_run(loop, t);
        if ((++n & 63) == 0) {
            coil_time now = coil_now();
            if (!start) start = now;
            else if (now - start >= COIL__RUN_BUDGET) break;
        }
    }
}

static void charge_fast(coil_loop *loop, coil_time ns, unsigned resumes) {
    loop->fast_ns += ns;
    loop->fast_resumes += resumes;
}

/* With busy accounting, as the file header describes. */
static void run_ready_timed(coil_loop *loop) {
    coil_time start = coil_now(), mark = start, now;
    unsigned n = 0, cheap = 0;
    bool exact = true;
    coil_task *t;
    while ((t = ready_pop(loop))) {
        if (exact) atomic_store_explicit(&loop->slice_start, mark, memory_order_relaxed);
        resume(loop, t);
        if (exact) {
            now = coil_now();
            t->busy_ns += now - mark;
            cheap = now - mark < COIL__BUSY_EXACT ? cheap + 1 : 0;
            mark = now;
            if (cheap == COIL__BUSY_WINDOW) {
                exact = false;
                atomic_store_explicit(&loop->slice_start, 0, memory_order_relaxed);
            }
        } else {
            t->fast_resumes++;
            if (++n < COIL__BUSY_WINDOW) {
                after_run(loop, t);
                continue;
            }
            now = coil_now();
            charge_fast(loop, now - mark, n);
            if (now - mark >= (coil_time)n * COIL__BUSY_EXACT) exact = true, cheap = 0;
            n = 0;
            mark = now;
        }
        after_run(loop, t);
        if (now - start >= COIL__RUN_BUDGET) break;
    }
    if (n) charge_fast(loop, coil_now() - mark, n);
}

static void run_ready(coil_loop *loop) {
    if (atomic_load_explicit(&coil__busy_accounting, memory_order_relaxed))
        run_ready_timed(loop);
    else
        run_ready_untimed(loop);
}

/* Arms the loop's one uv_timer for the earliest coil timer. */
static void arm_wakeup(coil_loop *loop, coil_time next) {
    if (next == COIL_NEVER) {
        uv_timer_stop(&loop->wakeup);
        return;
    }
    coil_time now = coil_now();
    uint64_t ms = next > now ? (uint64_t)((next - now + 999999) / 1000000) : 0;
    uv_update_time(&loop->uv);
    uv_timer_start(&loop->wakeup, wakeup_cb, ms, 0);
}

int coil__loop_drive(coil_loop *loop, bool (*until)(coil_loop *loop)) {
    for (;;) {
        run_ready(loop);
        if (until(loop)) return 0;
        coil__timers_run(loop, coil_now());
        if (loop->ready_head) {
            /* Tasks are ready, so the loop is alive: reference the async,
             * or a loop with no other live handle would run nothing, not
             * even NOWAIT, and cross-thread calls would wait as long as
             * tasks keep yielding. */
            uv_ref((uv_handle_t *)&loop->async);
            uv_run(&loop->uv, UV_RUN_NOWAIT);
            continue;
        }
        arm_wakeup(loop, coil__timers_next(loop));
        bool remote = atomic_load(&loop->xpending) > 0;
        if (remote) uv_ref((uv_handle_t *)&loop->async);
        else uv_unref((uv_handle_t *)&loop->async);
        if (!uv_loop_alive(&loop->uv)) {
            /* Nothing ready, no timer, no I/O, no remote work: nothing can
             * ever wake the parked tasks. */
            return -EDEADLK;
        }
        uv_run(&loop->uv, UV_RUN_ONCE);
    }
}

/* ------------------------------------------------------------------ coil_run */

static bool main_done(coil_loop *loop) { return loop->main->state == COIL__DONE; }
static bool all_done(coil_loop *loop) { return loop->ntasks == 0; }

static void cancel_all(coil_loop *loop) {
    coil__list *it;
    coil__list_foreach(it, &loop->tasks) {
        coil_task *t = COIL_CONTAINER_OF(it, coil_task, all_link);
        if (t->state != COIL__DONE) coil_cancel(t);
    }
}

static void report_alive(coil_loop *loop, const char *why) {
    coil__list *it;
    coil__list_foreach(it, &loop->tasks) {
        coil_task *t = COIL_CONTAINER_OF(it, coil_task, all_link);
        if (t->state == COIL__DONE || t == loop->main) continue;
        coil__log("%s: task '%s' spawned at %s:%d, %s %s:%d", why, coil_task_name(t),
                  t->spawn_file ? t->spawn_file : "?", t->spawn_line,
                  t->state == COIL__PARKED ? "parked at" : "ready, last at",
                  t->park_file ? t->park_file : "?", t->park_line);
    }
}

void coil__loop_reap_unjoined(coil_loop *loop) {
    coil__list *it = loop->tasks.next;
    while (it != &loop->tasks) {
        coil_task *t = COIL_CONTAINER_OF(it, coil_task, all_link);
        it = it->next;
        if (t->state != COIL__DONE) continue;
        if (t != loop->main && !t->joined) {
            if (t->result.err)
                coil__log("task '%s' spawned at %s:%d was never joined; it failed: %s",
                          coil_task_name(t), t->spawn_file ? t->spawn_file : "?", t->spawn_line,
                          coil_strerror(t->result.err));
            else
                coil__log("task '%s' spawned at %s:%d was never joined", coil_task_name(t),
                          t->spawn_file ? t->spawn_file : "?", t->spawn_line);
        }
        coil__task_free(t);
    }
}

/* Drives until `until`; on deadlock reports, cancels everything and tries
 * once more. Returns 0 (setting *deadlocked if it had to break one), or
 * -EDEADLK if tasks stay stuck even after cancellation. */
static int drive_or_break_deadlock(coil_loop *loop, bool (*until)(coil_loop *loop),
                                   bool *deadlocked) {
    int err = coil__loop_drive(loop, until);
    if (err != -EDEADLK) return err;
    *deadlocked = true;
    coil__log("deadlock: every task is parked and nothing can wake them");
    coil_dump_tasks(stderr);
    if (loop->main->state != COIL__DONE) coil_cancel(loop->main);
    cancel_all(loop);
    return coil__loop_drive(loop, until);
}

int coil_run(coil_fn fn, void *arg, coil_result *out) {
    if (coil__tls_loop) return -EINVAL;
    coil_loop *loop = malloc(sizeof *loop);
    if (!loop) return -ENOMEM;
    int err = coil__loop_init(loop);
    if (err) {
        free(loop);
        return err;
    }
    coil__tls_loop = loop;
    loop->main = coil__spawn(loop, &(coil_spawn_opts){.name = "main"}, fn, arg, NULL, "coil_run", 0);
    if (!loop->main) {
        err = -ENOMEM;
        goto close;
    }
    bool deadlocked = false;
    err = drive_or_break_deadlock(loop, main_done, &deadlocked);
    if (err) goto close;
    if (out) *out = loop->main->result;
    loop->main->joined = true;
    if (loop->ntasks) {
        report_alive(loop, "still running when main returned");
        cancel_all(loop);
        err = drive_or_break_deadlock(loop, all_done, &deadlocked);
        if (err) goto close;
    }
    coil__loop_reap_unjoined(loop);
    if (deadlocked) err = -EDEADLK;
close:
    /* Tasks stuck even after cancellation keep their stacks: leak the loop
     * rather than free memory they still point into. */
    if (loop->ntasks == 0) {
        coil__loop_close(loop);
        free(loop);
    }
    coil__tls_loop = NULL;
    return err;
}
