/* runtime/threadpool.c: the thread pool for blocking calls.
 *
 * One pool per process, shared by every loop and kept apart from libuv's
 * pool (which serves files and DNS), so that slow user calls never starve
 * file I/O. It starts on first use (pthread_once) and is bounded twice:
 * at most `max_threads` threads, started one at a time as load requires,
 * and at most `max_queue` calls waiting for a thread (-EAGAIN beyond).
 * coil_threadpool_configure(0, 0) or no call at all means the defaults:
 * COIL_THREADS (or 16) threads and a queue of 4096.
 *
 * A call's life. coil_to_thread() builds a `pool_call` on the calling
 * task's stack (no allocation), queues it and parks the task; the rest of
 * the loop goes on. A worker pops it, runs fn with the task's locals
 * borrowed (coil__thread_locals), and posts the call's own xcall node back
 * to the task's loop (coil__call_soon_threadsafe_node), where call_done()
 * wakes the task. Meanwhile the loop's `xpending` counts the call, so a
 * loop whose only hope is a pool call is not declared deadlocked.
 *
 *     task (loop thread)          pool                 worker thread
 *     ------------------          ----                 -------------
 *     submit, xpending++   --->   queue   --->   pop, fn(arg)
 *     park                                           post done node
 *     call_done: xpending--, wake   <--------------------'
 *
 * Interruption follows the park/wake protocol. While the call is queued,
 * call_interrupt() takes it out of the queue and the task returns the
 * interruption at once: fn never runs. Once a worker has it, the call
 * cannot be taken back: the interrupt sets the call's `cancelled` flag (what
 * coil_thread_cancelled() reads), returns false, and the task keeps waiting
 * until fn returns, then reports the interruption with the result stored.
 * Whether a call is still queued is decided under the pool lock, so the
 * worker and the interrupt never both take it.
 *
 * Waking workers. An idle worker first spins, watching the queue length,
 * and only then sleeps on the condvar: a task that offloads calls back to
 * back finds its worker still spinning, and neither side pays a futex
 * wake. How long it spins adapts to whether spinning pays off (see
 * spin()). A worker counts as "spinning" from the moment its call returns
 * until it sleeps, so a submission knows it will be seen. A submission
 * wakes at most one worker, and only when the calls queued outnumber the
 * workers already on their way to the queue (spinning, or signalled and
 * not yet up); when none sleeps, it starts a new thread, up to the bound.
 * So one task calling back to back uses one thread.
 *
 * Threads are joinable and live until the process exits; nothing is
 * registered with atexit (joining there could wait forever on a blocked
 * call). They block every signal, so that signals reach the loops.
 */
#include "runtime/internal.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

enum {
    DEFAULT_THREADS = 16,
    DEFAULT_MAX_QUEUE = 4096,
    MAX_THREADS_ENV = 1024,   /* largest COIL_THREADS accepted */
    SPIN_MIN_NS = 1000,       /* bounds of an idle worker's spin, see spin() */
    SPIN_MAX_NS = 64 * 1000,
    SPIN_PROBE_EVERY = 64,    /* one spin in this many tries the full budget */
};

/* One coil_to_thread() call. Lives on the calling task's stack, which stays
 * put because the task waits until the call is out of every thread's hands. */
typedef struct pool_call {
    coil__wait wait;         /* the calling task parks on this */
    coil__list link;         /* in pool.queue while queued */
    coil__xcall done;        /* posted to the task's loop when fn returned */
    coil_thread_fn fn;       /* what to run, and its argument */
    void *arg;
    void *result;            /* fn's return; written by the worker */
    coil__locals *locals;    /* the task's values, borrowed while fn runs */
    coil_task *task;         /* the calling task */
    coil_loop *loop;         /* its loop */
    bool queued;             /* in pool.queue; guarded by pool.lock */
    int interrupted;         /* loop thread: interruption while it ran */
    atomic_bool cancelled;   /* set by that interruption; fn polls it */
} pool_call;

/* The process-wide pool. Counters are guarded by `lock`. */
static struct {
    pthread_mutex_t lock;    /* guards everything below but nqueued reads */
    pthread_cond_t wake;     /* idle workers past their spin sleep here */
    pthread_once_t once;     /* first use starts the pool */
    bool started;            /* first use happened: configure is refused */
    int start_err;           /* pool_start() failed with this (-ENOMEM) */
    size_t max_threads;      /* bound on threads (0 before start: default) */
    size_t max_queue;        /* bound on queued calls (same) */
    coil__list queue;        /* queued pool_call, FIFO */
    atomic_size_t nqueued;   /* calls in queue; written under lock, spinners
                                read it without */
    size_t threads;          /* workers started */
    size_t spinning;         /* workers headed for the queue: spinning, just
                                created, or back from a call */
    size_t sleeping;         /* idle workers in pthread_cond_wait */
    size_t wakeups;          /* signals sent that no worker has taken yet */
    size_t busy;             /* workers running a call */
    uint64_t done;           /* calls whose fn returned */
    _Atomic coil_time spin_ns; /* idle workers' spin budget, see spin() */
    atomic_uint spins;       /* spins so far, to pick the probes */
    pthread_t *tids;         /* the workers, max_threads slots */
} pool = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .once = PTHREAD_ONCE_INIT,
    .spin_ns = SPIN_MAX_NS,
};

/* The call a pool thread is running, for coil_thread_cancelled(). */
static _Thread_local pool_call *running_call;

/* ------------------------------------------------------------------ start */

static size_t threads_from_env(void) {
    const char *s = getenv("COIL_THREADS");
    if (!s || !*s) return DEFAULT_THREADS;
    char *end;
    errno = 0;
    long n = strtol(s, &end, 10);
    if (errno || *end || n < 1 || n > MAX_THREADS_ENV) {
        coil__log("COIL_THREADS=%s is not a thread count in 1..%d; using %d", s,
                  MAX_THREADS_ENV, DEFAULT_THREADS);
        return DEFAULT_THREADS;
    }
    return (size_t)n;
}

/* Runs once, at the pool's first use. */
static void pool_start(void) {
    pthread_mutex_lock(&pool.lock);
    pool.started = true;
    if (!pool.max_threads) pool.max_threads = threads_from_env();
    if (!pool.max_queue) pool.max_queue = DEFAULT_MAX_QUEUE;
    coil__list_init(&pool.queue);
    pool.tids = calloc(pool.max_threads, sizeof *pool.tids);
    if (!pool.tids) pool.start_err = -ENOMEM;
    pthread_mutex_unlock(&pool.lock);
}

int coil_threadpool_configure(size_t threads, size_t max_queue) {
    int err = 0;
    pthread_mutex_lock(&pool.lock);
    if (pool.started) {
        err = -EBUSY;
    } else {
        pool.max_threads = threads;
        pool.max_queue = max_queue;
    }
    pthread_mutex_unlock(&pool.lock);
    return err;
}

void coil_threadpool_get_stats(coil_threadpool_stats *out) {
    pthread_mutex_lock(&pool.lock);
    out->threads = pool.threads;
    out->busy = pool.busy;
    out->queued = atomic_load_explicit(&pool.nqueued, memory_order_relaxed);
    out->done = pool.done;
    pthread_mutex_unlock(&pool.lock);
}

/* ------------------------------------------------------------------ workers */

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Watches the queue without the lock for the current spin budget. Returns
 * whether work showed up.
 *
 * The budget adapts. A spin that finds work doubles it (up to SPIN_MAX_NS);
 * one that times out halves it (down to SPIN_MIN_NS). Where the submitting
 * loop has a core of its own, a task calling back to back finds its worker
 * still spinning and the pair runs without a single sleep; the spin must
 * outlast the loop thread's own wake-up from epoll, which on virtual
 * machines takes tens of microseconds. Where worker and loop share a core,
 * spinning only keeps the loop from running: spins fail and the budget
 * drops to almost nothing. So does it where calls are sporadic. One spin
 * in SPIN_PROBE_EVERY is a probe at the full budget, so that a pool stuck
 * at the bottom notices when spinning would pay again. */
static bool spin(void) {
    coil_time budget = atomic_load_explicit(&pool.spin_ns, memory_order_relaxed);
    bool probe = atomic_fetch_add_explicit(&pool.spins, 1, memory_order_relaxed) %
                     SPIN_PROBE_EVERY == 0;
    coil_time limit = probe ? SPIN_MAX_NS : budget;
    coil_time start = coil_now();
    for (unsigned i = 1;; i++) {
        if (atomic_load_explicit(&pool.nqueued, memory_order_relaxed)) {
            budget = probe || budget * 2 > SPIN_MAX_NS ? SPIN_MAX_NS : budget * 2;
            atomic_store_explicit(&pool.spin_ns, budget, memory_order_relaxed);
            return true;
        }
        cpu_relax();
        if ((i & 15) == 0 && coil_now() - start >= limit) break;
    }
    if (probe) return false;
    budget = budget / 2 < SPIN_MIN_NS ? SPIN_MIN_NS : budget / 2;
    atomic_store_explicit(&pool.spin_ns, budget, memory_order_relaxed);
    return false;
}

/* Runs a popped call. Called and returns with the lock held; the worker
 * counts as spinning before and after, as it heads back to the queue. */
static void run_call(pool_call *c) {
    c->queued = false;
    atomic_fetch_sub_explicit(&pool.nqueued, 1, memory_order_relaxed);
    pool.spinning--;
    pool.busy++;
    pthread_mutex_unlock(&pool.lock);

    coil__thread_locals = c->locals;
    running_call = c;
    c->result = c->fn(c->arg);
    running_call = NULL;
    coil__thread_locals = NULL;

    pthread_mutex_lock(&pool.lock);
    pool.busy--;
    pool.done++;
    pool.spinning++;
    pthread_mutex_unlock(&pool.lock);
    /* The task's loop cannot close while the task waits for us, so this
     * cannot fail. After it, `c` may be gone at any moment. */
    int err = coil__call_soon_threadsafe_node(c->loop, &c->done);
    COIL_ASSERT(err == 0);
    pthread_mutex_lock(&pool.lock);
}

/* Idle with an empty queue: spins, then sleeps until signalled. Called and
 * returns with the lock held, counted as spinning. */
static void idle(void) {
    pthread_mutex_unlock(&pool.lock);
    (void)spin(); /* what it found is looked at under the lock */
    pthread_mutex_lock(&pool.lock);
    if (!coil__list_empty(&pool.queue)) return;
    pool.spinning--;
    pool.sleeping++;
    pthread_cond_wait(&pool.wake, &pool.lock);
    pool.sleeping--;
    if (pool.wakeups) pool.wakeups--;
    pool.spinning++;
}

/* A worker is counted as spinning whenever it is neither running a call
 * nor asleep: the submitter then knows it will look at the queue. */
static void *worker_main(void *unused) {
    (void)unused;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        coil__list *n = coil__list_pop_front(&pool.queue);
        if (n) run_call(COIL_CONTAINER_OF(n, pool_call, link));
        else idle();
    }
    return NULL;
}

/* Starts one worker. Lock held. Returns 0 or a negative error. */
static int start_worker(void) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = pthread_create(&pool.tids[pool.threads], NULL, worker_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) return -err;
    pool.threads++;
    pool.spinning++; /* it looks at the queue first */
    return 0;
}

/* Makes sure enough workers are headed for the queue. Lock held. Returns 0,
 * or an error when no worker exists and none could be started. */
static int staff_queue(void) {
    size_t queued = atomic_load_explicit(&pool.nqueued, memory_order_relaxed);
    if (queued <= pool.spinning + pool.wakeups) return 0;
    if (pool.sleeping > pool.wakeups) {
        pool.wakeups++;
        pthread_cond_signal(&pool.wake);
        return 0;
    }
    if (pool.threads == pool.max_threads) return 0; /* busy ones come back */
    int err = start_worker();
    if (err && pool.threads == 0) return err;
    if (err) coil__log("thread pool: cannot start a thread: %s", coil_strerror(err));
    return 0;
}

/* Queues `c`. Returns 0, -EAGAIN when the queue is full, or the error that
 * kept the first thread from starting. */
static int pool_submit(pool_call *c) {
    int err = 0;
    pthread_mutex_lock(&pool.lock);
    if (atomic_load_explicit(&pool.nqueued, memory_order_relaxed) >= pool.max_queue) {
        err = -EAGAIN;
        goto out;
    }
    coil__list_push_back(&pool.queue, &c->link);
    c->queued = true;
    atomic_fetch_add_explicit(&pool.nqueued, 1, memory_order_relaxed);
    err = staff_queue();
    if (err) {
        coil__list_remove(&c->link);
        c->queued = false;
        atomic_fetch_sub_explicit(&pool.nqueued, 1, memory_order_relaxed);
    }
out:
    pthread_mutex_unlock(&pool.lock);
    return err;
}

/* ------------------------------------------------------------------ the task side */

/* Loop thread: fn has returned. */
static void call_done(void *arg) {
    pool_call *c = arg;
    atomic_fetch_sub(&c->loop->xpending, 1);
    coil__wake(c->task, 0);
}

/* Loop thread: the task is cancelled or its deadline expired. */
static bool call_interrupt(coil__wait *w, int err) {
    pool_call *c = COIL_CONTAINER_OF(w, pool_call, wait);
    pthread_mutex_lock(&pool.lock);
    bool was_queued = c->queued;
    if (was_queued) {
        coil__list_remove(&c->link);
        c->queued = false;
        atomic_fetch_sub_explicit(&pool.nqueued, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&pool.lock);
    if (was_queued) {
        atomic_fetch_sub(&c->loop->xpending, 1);
        return true; /* fn never ran */
    }
    /* A worker has it: ask fn to stop, and wait for it all the same. */
    if (!c->interrupted) c->interrupted = err;
    atomic_store(&c->cancelled, true);
    return false;
}

int coil_to_thread(coil_thread_fn fn, void *arg, void **result) {
    coil_task *t = coil__running();
    if (!t) return -EPERM; /* plain threads, and pool threads themselves */
    if (!fn) return -EINVAL;
    int err = coil__pending_cancel(t);
    if (err) return err;
    pthread_once(&pool.once, pool_start);
    if (pool.start_err) return pool.start_err;

    pool_call c = {
        .wait = {call_interrupt},
        .done = {.fn = call_done},
        .fn = fn,
        .arg = arg,
        .locals = t->locals,
        .task = t,
        .loop = t->loop,
    };
    c.done.arg = &c;
    atomic_init(&c.cancelled, false);
    coil__list_init(&c.link);
    err = pool_submit(&c);
    if (err) return err;
    atomic_fetch_add(&t->loop->xpending, 1);
    /* No cancellation can arrive between the check above and the park: the
     * park's own check passes, so the call is never left behind. */
    err = coil__park(&c.wait);
    if (err) return err; /* taken out of the queue: fn never ran */
    if (result) *result = c.result;
    return c.interrupted;
}

bool coil_thread_cancelled(void) {
    pool_call *c = running_call;
    return c && atomic_load(&c->cancelled);
}
