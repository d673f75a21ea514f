/* runtime/submit.c: reaching a loop from other threads.
 *
 * A coil_remote is a thread-safe future for one task submitted to a loop
 * (asyncio.run_coroutine_threadsafe). It is shared by two sides and freed by
 * whichever lets go last (`refs`):
 *
 *   - the submitter's handle, given up by coil_remote_wait();
 *   - the loop side, given up once the result is published;
 *   - a posted cancellation, while its callback is in flight.
 *
 * coil_submit() posts the remote's own start node to the loop, so a
 * submission allocates nothing but the remote. On the loop's thread,
 * remote_start() spawns a detached task whose on_finish hook publishes its
 * result, even when the task is cancelled before it ever ran (at the loop's
 * shutdown, say). If the loop is closing by then, the result is -ESRCH.
 *
 * Waiting. A plain thread blocks on the remote's condvar. A task must not
 * block its loop, so it parks instead: it leaves a remote_waiter (on its
 * stack) in the remote, and whoever publishes the result posts the waiter's
 * node to the waiting task's loop, which wakes it. That works when the
 * remote runs on the waiter's own loop too. Publishing and giving up
 * (timeout, cancellation) race for the waiter under the remote's lock:
 * whoever takes it out of `r->waiter` wakes the task, exactly once. While
 * it waits, the waiter's loop counts it in `xpending`.
 *
 * Thread loops. coil_loop_thread_start() runs a loop on a new thread for
 * synchronous programs. It holds one `xpending` for its whole life, so it
 * idles waiting for submissions instead of being declared deadlocked. The
 * stop request (posted by coil_loop_thread_stop) drops that hold, refuses
 * new submissions (-ESRCH), cancels every task, and the thread drives the
 * loop until none is left, closes it and exits.
 *
 * Lock order: a remote's lock may be held while posting to a loop (its
 * xlock), never the other way round.
 */
#include "runtime/internal.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct remote_waiter remote_waiter;

struct coil_remote {
    pthread_mutex_t lock;    /* guards done, result, err, waiter, cancel_posted */
    pthread_cond_t cond;     /* broadcast when done (plain-thread waiters) */
    atomic_int refs;         /* handle + loop side + posted cancel */
    coil_loop *loop;         /* where the task runs */
    coil_fn fn;              /* the task's function and argument */
    void *arg;
    coil_task *task;         /* loop thread only: the task while it lives */
    coil__xcall start;       /* spawns the task on the loop */
    coil__xcall cancel;      /* cancels it on the loop */
    bool cancel_posted;      /* `cancel` is in use (at most once) */
    bool done;               /* result (or err) published */
    coil_result result;      /* the task's result */
    int err;                 /* -ESRCH or -ENOMEM when it never ran, else 0 */
    remote_waiter *waiter;   /* the task parked in coil_remote_wait, or NULL */
};

/* A task waiting for a remote; lives on that task's stack. */
struct remote_waiter {
    coil__wait wait;         /* interrupt: the waiter's cancellation */
    coil__timer timer;       /* the wait's timeout, idle for COIL_NEVER */
    coil__xcall wake;        /* posted to the waiter's loop on completion */
    coil_task *task;         /* the waiting task */
    coil_loop *loop;         /* its loop */
    coil_remote *remote;
    int interrupted;         /* interruption that came after completion */
    bool timed_out;          /* the timer, not a cancellation, woke it */
};

/* ------------------------------------------------------------------ remotes */

static void remote_release(coil_remote *r) {
    if (atomic_fetch_sub(&r->refs, 1) != 1) return;
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* Publishes the outcome and gives up the loop side's reference. Any thread
 * (the loop's, in practice). */
static void remote_complete(coil_remote *r, coil_result result, int err) {
    pthread_mutex_lock(&r->lock);
    r->done = true;
    r->result = result;
    r->err = err;
    remote_waiter *w = r->waiter;
    r->waiter = NULL;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    if (w) {
        /* The waiter's loop stays open while the waiter is parked. */
        int e = coil__call_soon_threadsafe_node(w->loop, &w->wake);
        COIL_ASSERT(e == 0);
    }
    remote_release(r);
}

static coil_result remote_entry(void *arg) {
    coil_remote *r = arg;
    return r->fn(r->arg);
}

/* The task's on_finish hook, on the loop thread. */
static void remote_finished(coil_task *t) {
    coil_remote *r = t->arg;
    r->task = NULL;
    remote_complete(r, t->result, 0);
}

/* Loop thread: the start node. */
static void remote_start(void *arg) {
    coil_remote *r = arg;
    coil_loop *loop = r->loop;
    if (loop->stopped || loop->stopping) {
        remote_complete(r, coil_fail(-ESRCH), -ESRCH);
        return;
    }
    coil_task *t = coil__spawn(loop, &(coil_spawn_opts){.name = "remote"}, remote_entry, r, NULL,
                               "coil_submit", 0);
    if (!t) {
        remote_complete(r, coil_fail(-ENOMEM), -ENOMEM);
        return;
    }
    t->detached = true;
    t->on_finish = remote_finished;
    r->task = t;
}

/* Loop thread: the cancel node. It was posted after the start node, so the
 * task exists already, or has finished (or never will). */
static void remote_cancel_cb(void *arg) {
    coil_remote *r = arg;
    if (r->task) coil_cancel(r->task);
    remote_release(r);
}

coil_remote *coil_submit(coil_loop *loop, coil_fn fn, void *arg) {
    if (!loop || !fn) {
        errno = EINVAL;
        return NULL;
    }
    coil_remote *r = calloc(1, sizeof *r);
    if (!r) {
        errno = ENOMEM;
        return NULL;
    }
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cond, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&r->lock, NULL);
    atomic_init(&r->refs, 2);
    r->loop = loop;
    r->fn = fn;
    r->arg = arg;
    r->start = (coil__xcall){.fn = remote_start, .arg = r};
    r->cancel = (coil__xcall){.fn = remote_cancel_cb, .arg = r};
    int err = coil__call_soon_threadsafe_node(loop, &r->start);
    if (err) {
        pthread_cond_destroy(&r->cond);
        pthread_mutex_destroy(&r->lock);
        free(r);
        errno = -err;
        return NULL;
    }
    return r;
}

void coil_remote_cancel(coil_remote *r) {
    /* Under the lock: while the remote is not done its loop cannot finish
     * closing (the task, or remote_start, still has to publish), so
     * r->loop is safe to post to. */
    pthread_mutex_lock(&r->lock);
    if (!r->done && !r->cancel_posted) {
        r->cancel_posted = true;
        atomic_fetch_add(&r->refs, 1);
        if (coil__call_soon_threadsafe_node(r->loop, &r->cancel))
            atomic_fetch_sub(&r->refs, 1); /* closing: it will never run */
    }
    pthread_mutex_unlock(&r->lock);
}

/* ------------------------------------------------------------------ waiting */

/* Loop thread of the waiter: takes `w` out of the remote if nobody else
 * has. Returns whether it did (then the caller wakes the task). */
static bool waiter_detach(remote_waiter *w) {
    coil_remote *r = w->remote;
    pthread_mutex_lock(&r->lock);
    bool mine = r->waiter == w;
    if (mine) r->waiter = NULL;
    pthread_mutex_unlock(&r->lock);
    if (mine) atomic_fetch_sub(&w->loop->xpending, 1);
    return mine;
}

/* The waiter's loop: the remote published its result. */
static void waiter_wake(void *arg) {
    remote_waiter *w = arg;
    atomic_fetch_sub(&w->loop->xpending, 1);
    coil__wake(w->task, 0);
}

static void waiter_timeout(coil__timer *timer) {
    remote_waiter *w = COIL_CONTAINER_OF(timer, remote_waiter, timer);
    /* Otherwise the result is already on its way: it wins. */
    if (waiter_detach(w)) {
        w->timed_out = true;
        coil__wake(w->task, -ETIMEDOUT);
    }
}

static bool waiter_interrupt(coil__wait *wait, int err) {
    remote_waiter *w = COIL_CONTAINER_OF(wait, remote_waiter, wait);
    if (waiter_detach(w)) {
        coil__timer_stop(w->loop, &w->timer);
        return true;
    }
    /* The result is on its way: take it, then report the interruption. */
    if (!w->interrupted) w->interrupted = err;
    return false;
}

static coil_time deadline_after(coil_time timeout) {
    if (timeout == COIL_NEVER) return COIL_NEVER;
    coil_time now = coil_now();
    if (timeout <= 0) return now;
    return timeout >= COIL_NEVER - now ? COIL_NEVER : now + timeout;
}

/* Parks the calling task until the remote is done, the timeout expires or
 * the task is interrupted. Returns 0 when done, else the reason. Suspends. */
static int wait_in_task(coil_remote *r, coil_task *self, coil_time timeout) {
    int err = coil__pending_cancel(self);
    if (err) return err;
    remote_waiter w = {
        .wait = {waiter_interrupt},
        .wake = {.fn = waiter_wake},
        .task = self,
        .loop = self->loop,
        .remote = r,
    };
    w.wake.arg = &w;
    coil__timer_init(&w.timer, waiter_timeout);
    pthread_mutex_lock(&r->lock);
    bool done = r->done;
    if (!done) r->waiter = &w;
    pthread_mutex_unlock(&r->lock);
    if (done) return 0;
    atomic_fetch_add(&self->loop->xpending, 1);
    coil_time deadline = deadline_after(timeout);
    if (deadline != COIL_NEVER) {
        err = coil__timer_start(self->loop, &w.timer, deadline);
        if (err) {
            if (waiter_detach(&w)) return err;
            /* Completed meanwhile: its wake is on the way; take it. */
            coil__wait shielded = {NULL};
            return coil__park(&shielded);
        }
    }
    err = coil__park(&w.wait);
    coil__timer_stop(self->loop, &w.timer);
    if (w.timed_out) {
        /* As on a plain thread: a result in by the time we look wins. */
        pthread_mutex_lock(&r->lock);
        if (r->done) err = 0;
        pthread_mutex_unlock(&r->lock);
        return err;
    }
    return err ? err : w.interrupted;
}

/* Blocks the calling thread until the remote is done or the timeout
 * expires. Returns 0 or -ETIMEDOUT. */
static int wait_blocking(coil_remote *r, coil_time timeout) {
    coil_time deadline = deadline_after(timeout);
    struct timespec ts = {
        .tv_sec = (time_t)(deadline / COIL_SEC(1)),
        .tv_nsec = (long)(deadline % COIL_SEC(1)),
    };
    int err = 0;
    pthread_mutex_lock(&r->lock);
    while (!r->done && !err) {
        if (deadline == COIL_NEVER) pthread_cond_wait(&r->cond, &r->lock);
        else if (pthread_cond_timedwait(&r->cond, &r->lock, &ts) == ETIMEDOUT) err = -ETIMEDOUT;
    }
    if (r->done) err = 0;
    pthread_mutex_unlock(&r->lock);
    return err;
}

int coil_remote_wait(coil_remote *r, coil_result *out, coil_time timeout) {
    COIL_ASSERT(r != NULL);
    coil_task *self = coil__running();
    int err;
    if (self) err = wait_in_task(r, self, timeout);
    else if (coil__tls_loop == r->loop) /* blocking would stall the loop it waits for */
        err = wait_blocking(r, 0) ? -EDEADLK : 0;
    else err = wait_blocking(r, timeout);

    pthread_mutex_lock(&r->lock);
    bool done = r->done;
    coil_result result = r->result;
    int rerr = r->err;
    pthread_mutex_unlock(&r->lock);
    if (!done) {
        /* A timeout cancels the work it guards. */
        coil_remote_cancel(r);
        result = coil_fail(err);
    } else if (rerr && !err) {
        err = rerr;
    }
    if (out) *out = result;
    remote_release(r);
    return err;
}

int coil_call_sync(coil_loop *loop, coil_fn fn, void *arg, coil_result *out) {
    coil_remote *r = coil_submit(loop, fn, arg);
    if (!r) return -errno;
    return coil_remote_wait(r, out, COIL_NEVER);
}

/* ------------------------------------------------------------------ thread loops */

enum { THREAD_LOOP_MAGIC = 0x636f696c }; /* "coil" */

typedef struct thread_loop {
    coil_loop loop;          /* first: the handle users hold */
    uint32_t magic;          /* THREAD_LOOP_MAGIC while running */
    pthread_t thread;        /* runs the loop */
    pthread_mutex_t lock;    /* start handshake: guards ready, err */
    pthread_cond_t cond;
    bool ready;              /* the thread has set up (or failed to) */
    int err;                 /* why setting up failed, or 0 */
    bool leaked;             /* tasks were stuck at stop: the loop stays */
    coil__xcall stop;        /* the stop request */
} thread_loop;

/* Loop thread: the stop request. */
static void loop_stop_cb(void *arg) {
    coil_loop *loop = arg;
    loop->stopping = true;
    coil__list *it;
    coil__list_foreach(it, &loop->tasks) {
        coil_task *t = COIL_CONTAINER_OF(it, coil_task, all_link);
        if (t->state != COIL__DONE) coil_cancel(t);
    }
    atomic_fetch_sub(&loop->xpending, 1); /* drop the thread loop's hold */
}

static bool stopped_and_drained(coil_loop *loop) { return loop->stopping && loop->ntasks == 0; }

/* For a loop that will never run again: marks it stopped, so posts fail
 * with -ESRCH, and runs what was posted before (a submission then finds
 * the loop stopped and answers -ESRCH). */
static void refuse_xcalls(coil_loop *loop) {
    pthread_mutex_lock(&loop->xlock);
    loop->stopped = true;
    coil__xcall *c = loop->xcalls_head;
    loop->xcalls_head = loop->xcalls_tail = NULL;
    pthread_mutex_unlock(&loop->xlock);
    while (c) {
        coil__xcall *next = c->next;
        bool heap = !c->caller_owned;
        c->fn(c->arg);
        if (heap) free(c);
        c = next;
    }
}

static void handshake(thread_loop *tl, int err) {
    pthread_mutex_lock(&tl->lock);
    tl->ready = true;
    tl->err = err;
    pthread_cond_signal(&tl->cond);
    pthread_mutex_unlock(&tl->lock);
}

static void *loop_thread_main(void *arg) {
    thread_loop *tl = arg;
    coil_loop *loop = &tl->loop;
    int err = coil__loop_init(loop);
    if (err) {
        handshake(tl, err); /* tl is freed by the starter after this */
        return NULL;
    }
    coil__tls_loop = loop;
    atomic_store(&loop->xpending, 1); /* idle is not deadlock: wait for work */
    handshake(tl, 0);
    err = coil__loop_drive(loop, stopped_and_drained);
    if (err) {
        /* Tasks stuck even after cancellation keep their stacks: leak the
         * loop rather than free memory they still point into, and refuse
         * what is submitted to it from now on. */
        coil__log("loop thread stopping: tasks cannot finish: %s", coil_strerror(err));
        coil_dump_tasks(stderr);
        refuse_xcalls(loop);
        tl->leaked = true; /* read by the stopper after joining us */
    } else {
        coil__loop_reap_unjoined(loop);
        coil__loop_close(loop);
    }
    coil__tls_loop = NULL;
    return NULL;
}

static void thread_loop_free(thread_loop *tl) {
    tl->magic = 0;
    pthread_cond_destroy(&tl->cond);
    pthread_mutex_destroy(&tl->lock);
    free(tl);
}

coil_loop *coil_loop_thread_start(void) {
    thread_loop *tl = calloc(1, sizeof *tl);
    if (!tl) {
        errno = ENOMEM;
        return NULL;
    }
    pthread_mutex_init(&tl->lock, NULL);
    pthread_cond_init(&tl->cond, NULL);
    /* The thread inherits a mask that blocks every signal: process signals
     * (SIGTERM, SIGINT) belong to the program's own threads, and a signal
     * parked on a loop thread that never takes it would be lost. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = pthread_create(&tl->thread, NULL, loop_thread_main, tl);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) {
        thread_loop_free(tl);
        errno = err;
        return NULL;
    }
    pthread_mutex_lock(&tl->lock);
    while (!tl->ready) pthread_cond_wait(&tl->cond, &tl->lock);
    err = tl->err;
    pthread_mutex_unlock(&tl->lock);
    if (err) {
        pthread_join(tl->thread, NULL);
        thread_loop_free(tl);
        errno = -err;
        return NULL;
    }
    tl->magic = THREAD_LOOP_MAGIC;
    return &tl->loop;
}

void coil_loop_thread_stop(coil_loop *loop) {
    thread_loop *tl = COIL_CONTAINER_OF(loop, thread_loop, loop);
    COIL_ASSERT(tl->magic == THREAD_LOOP_MAGIC);
    COIL_ASSERT(coil__tls_loop != loop); /* it would join itself */
    tl->stop = (coil__xcall){.fn = loop_stop_cb, .arg = loop};
    /* Only the stop request closes the loop, so it is still open. */
    int err = coil__call_soon_threadsafe_node(loop, &tl->stop);
    COIL_ASSERT(err == 0);
    pthread_join(tl->thread, NULL);
    if (tl->leaked) tl->magic = 0;
    else thread_loop_free(tl);
}
