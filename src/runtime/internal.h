/* runtime/internal.h: what the runtime's files share (coil__ names).
 *
 * The pieces and how they fit:
 *
 *   loop.c      drives one libuv loop per thread and the run queue of ready
 *               tasks; coil_run() and shutdown.
 *   task.c      spawn, finish, join, detach, cancel; the park/wake protocol
 *               below, which every suspending call is built on.
 *   switch.c    the context switch (Boost.Context fcontext) and the hooks
 *               that let ASan, TSan and valgrind follow it.
 *   stack.c     mmap'd stacks carved from slabs, with guard pages, pooled.
 *   timer.c     a binary min-heap of coil__timer on each loop, woken by one
 *               uv_timer; sleep and deadline scopes use it.
 *   scope.c     deadline/cancel scopes and how cancellation is computed.
 *   group.c ... the rest are built from the above only.
 *
 * Park/wake protocol. A task suspends only through coil__park(). Before it
 * parks, it links a coil__wait (usually on its own stack) wherever a waker
 * will find it, and gives the wait an `interrupt` callback. Then:
 *
 *   - a waker unlinks the wait and calls coil__wake(task, result): the task
 *     becomes ready and coil__park() returns `result`;
 *   - a cancellation or an expired scope calls wait->interrupt(wait, err). If
 *     it returns true it has unlinked the wait, and the task is woken with
 *     `err`; if false (or interrupt is NULL) the park goes on and the
 *     cancellation stays pending for the next suspension point.
 *
 * Exactly one of the two happens, because both run on the loop's thread and
 * each first unlinks the wait. A task is never woken twice for one park.
 */
#ifndef COIL_RUNTIME_INTERNAL_H
#define COIL_RUNTIME_INTERNAL_H

#include "coil/runtime.h"

#include <pthread.h>
#include <stdatomic.h>
#include <uv.h>

/* ------------------------------------------------------------------ checks */

/* Defensive checks stay on in release builds (libdill's dill_assert). */
#define COIL_ASSERT(cond)                                                    \
    do {                                                                     \
        if (__builtin_expect(!(cond), 0))                                    \
            coil__panic(__FILE__, __LINE__, "assertion failed: " #cond);     \
    } while (0)

__attribute__((noreturn)) void coil__panic(const char *file, int line, const char *msg);

#define COIL_LIKELY(x)   __builtin_expect(!!(x), 1)
#define COIL_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define COIL_CONTAINER_OF(ptr, type, field) ((type *)((char *)(ptr) - offsetof(type, field)))

/* ------------------------------------------------------------------ lists */

static inline void coil__list_init(coil__list *l) { l->next = l->prev = l; }
static inline bool coil__list_empty(const coil__list *l) { return l->next == l; }
static inline void coil__list_push_back(coil__list *l, coil__list *n) {
    n->prev = l->prev;
    n->next = l;
    l->prev->next = n;
    l->prev = n;
}
/* Unlinks `n` and makes it a list of its own, so a second unlink is harmless. */
static inline void coil__list_remove(coil__list *n) {
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = n;
}
static inline coil__list *coil__list_pop_front(coil__list *l) {
    if (coil__list_empty(l)) return NULL;
    coil__list *n = l->next;
    coil__list_remove(n);
    return n;
}
#define coil__list_foreach(it, head) for ((it) = (head)->next; (it) != (head); (it) = (it)->next)

/* ------------------------------------------------------------------ context */

typedef void *coil__fctx;
typedef struct coil__transfer {
    coil__fctx fctx;
    void *data;
} coil__transfer;

/* ------------------------------------------------------------------ stacks */

typedef struct coil__stack {
    char *limit;       /* lowest usable byte */
    char *top;         /* one past the highest usable byte */
    bool pooled;       /* carved from a slab; returns to the loop's pool */
    bool guarded;      /* a guard page sits just below `limit` */
    unsigned vg_id;    /* valgrind stack id, 0 when not running on valgrind */
} coil__stack;

typedef struct coil__stack_pool coil__stack_pool;

/* ------------------------------------------------------------------ tasks */

typedef enum coil__task_state {
    COIL__READY,   /* in the run queue */
    COIL__RUNNING, /* the loop's current task */
    COIL__PARKED,  /* suspended in coil__park() */
    COIL__DONE     /* returned; waiting to be joined or freed */
} coil__task_state;

typedef struct coil__wait coil__wait;
struct coil__wait {
    /* See the protocol above. NULL: the park cannot be interrupted. */
    bool (*interrupt)(coil__wait *w, int err);
};

/* A waiter parked on a sync primitive's list. */
typedef struct coil__waiter {
    coil__wait wait;    /* interrupt unlinks `link` */
    coil__list link;    /* in the primitive's waiter list */
    coil_task *task;    /* the parked task */
    void *value;        /* handed over by the waker (queue item, ...) */
} coil__waiter;

typedef struct coil__locals coil__locals;

/* coil_task.magic: a live task, and one freed (its stack back in the
 * pool, where the struct's memory stays mapped until the slot is reused). */
#define COIL__TASK_LIVE 0x7a5c11feu
#define COIL__TASK_FREED 0xdead7a5cu

/* Handles. A task struct starts on a COIL__TASK_ALIGN boundary, and the
 * handle the public calls give out (spawn, group spawn, coil_current) is
 * not the struct's address but one of COIL__HANDLE_SLOTS - 1 addresses
 * COIL__HANDLE_STEP apart after it, chosen by the slot's generation. The
 * calls that take a handle mask it back to the struct and check that it
 * names this generation: a handle kept after its task was freed is caught
 * even once the slot holds another task (unless that task is a multiple of
 * 63 generations later). The struct's own address, slot 0, is what the
 * runtime uses inside, and the calls take it too. Users never dereference a
 * handle: coil_task is opaque to them. */
enum {
    COIL__TASK_ALIGN = 1024,
    COIL__HANDLE_STEP = 16,
    COIL__HANDLE_SLOTS = COIL__TASK_ALIGN / COIL__HANDLE_STEP,
};

struct coil_task {
    uint32_t magic;          /* COIL__TASK_LIVE, COIL__TASK_FREED once freed */
    uint32_t generation;     /* tasks this stack slot held before this one */
    coil__fctx ctx;          /* saved context while not running */
    coil_task *next_ready;   /* run-queue link */
    coil_loop *loop;         /* owning loop, never changes */
    uint8_t state;           /* coil__task_state */
    bool cancelled;          /* coil_cancel() was called */
    bool detached;           /* handle given up: free on finish */
    bool joined;             /* handle consumed by coil_join() */
    bool failure_reported;   /* lost-failure report already written */
    int wake_result;         /* what coil__park() returns */
    coil__wait *wait;        /* what it is parked on, while PARKED */
    coil_scope *scope;       /* innermost scope, NULL at top level */
    coil_group *groups;      /* innermost open group it owns */
    coil_group *group;       /* group that owns this task, or NULL */
    coil__list group_link;   /* in group->children */
    coil_task *joiner;       /* task parked in coil_join() on this one */
    /* Detached tasks only: called as the task finishes, even if it never
     * started, instead of the lost-failure report (submit.c hands the
     * result to another thread). NULL for ordinary tasks. */
    void (*on_finish)(coil_task *t);
    coil_fn fn;              /* entry point and its argument */
    void *arg;
    coil_result result;      /* set when DONE */
    coil__locals *locals;    /* task-local values (shared, copy on write) */
    coil__list all_link;     /* in loop->tasks, for dumps and shutdown */
    const char *spawn_file;  /* where coil_spawn was called */
    int spawn_line;
    const char *park_file;   /* the suspending call, while parked */
    int park_line;
    coil_time created;       /* spawn time, from the loop's ms clock */
    coil_time busy_ns;       /* time spent running, see loop.c */
    uint64_t fast_resumes;   /* resumes charged at the loop's average, see loop.c */
    uint64_t id;             /* 1, 2, ... per loop */
    coil__stack stack;       /* this struct sits at the top of it */
    void *asan_fake_stack;   /* ASan fiber bookkeeping */
    void *tsan_fiber;        /* TSan fiber */
    char name[48];
};

_Static_assert(sizeof(coil_task) <= COIL__TASK_ALIGN, "a task fits its handle span");

/* The handle of task `t` (see above). */
static inline coil_task *coil__handle_of(coil_task *t) {
    return t ? (coil_task *)(void *)((char *)t + COIL__HANDLE_STEP *
                                                     (1 + t->generation % (COIL__HANDLE_SLOTS - 1)))
             : NULL;
}

/* The task a handle (or the task's own address) names, or NULL if it is
 * NULL. Does not check it: task.c's calls do. */
static inline coil_task *coil__task_of(const coil_task *h) {
    return h ? (coil_task *)(void *)((uintptr_t)h & ~(uintptr_t)(COIL__TASK_ALIGN - 1)) : NULL;
}

/* ------------------------------------------------------------------ loop */

typedef struct coil__xcall {
    void (*fn)(void *arg);
    void *arg;
    struct coil__xcall *next;
    bool caller_owned; /* posted by coil__call_soon_threadsafe_node: never freed */
} coil__xcall;

/* A callback run as a loop closes (coil__loop_on_close). */
typedef struct coil__close_hook {
    void (*fn)(void *arg);         /* runs on the loop's thread */
    void *arg;
    struct coil__close_hook *next; /* next hook to run */
} coil__close_hook;

struct coil_loop {
    uv_loop_t uv;                 /* the libuv loop */
    coil__fctx sched_ctx;         /* scheduler context while a task runs */
    coil_task *current;           /* running task, NULL in the scheduler */
    coil_task *ready_head;        /* run queue (FIFO, intrusive) */
    coil_task *ready_tail;
    coil__timer **heap;           /* timer min-heap */
    size_t heap_len, heap_cap;
    uv_timer_t wakeup;            /* armed for the earliest timer */
    uv_async_t async;             /* cross-thread wakeups */
    pthread_mutex_t xlock;        /* guards xcalls, stopped */
    coil__xcall *xcalls_head;     /* pending cross-thread callbacks (FIFO) */
    coil__xcall *xcalls_tail;
    bool stopped;                 /* no more cross-thread calls accepted */
    atomic_size_t xpending;       /* remote work in flight keeping us alive */
    coil__list tasks;             /* every task not yet freed */
    size_t ntasks;                /* tasks alive (not DONE) */
    uint64_t spawned;             /* tasks spawned in total */
    coil__stack_pool *stacks;     /* this loop's stack pool */
    size_t default_stack;         /* usable bytes for default stacks */
    coil__locals *spare_locals;   /* one freed smallest locals block, for reuse (locals.c) */
    coil_task *main;              /* the task coil_run() started */
    bool stopping;                /* coil_loop_thread_stop() was called */
    void *tsan_sched_fiber;       /* TSan fiber of the scheduler */
    const void *sched_stack_bottom; /* ASan: the thread's own stack */
    size_t sched_stack_size;
    /* Watchdog heartbeat: written by the loop thread, read by the watchdog. */
    _Atomic uint64_t beat;        /* bumped at every resume */
    _Atomic(coil_task *) running; /* task on the CPU, or NULL */
    _Atomic coil_time slice_start; /* when it was resumed, 0 if not timed */
    /* Busy time of cheap resumes, charged by average (loop thread only). */
    coil_time fast_ns;            /* time of the resumes not timed one by one */
    uint64_t fast_resumes;        /* how many there were */
    struct coil__diag *diag;      /* watchdog and metrics state (diag.h) */
    coil__close_hook *close_hooks; /* run by coil__loop_close, last added first */
};

/* The loop of this thread. */
extern _Thread_local coil_loop *coil__tls_loop __attribute__((tls_model("initial-exec")));

/* ------------------------------------------------------------------ task.c */

/* Parks the running task until coil__wake() or an interruption (see the
 * protocol above). Returns the pending cancellation without parking if there
 * is one and `w` is interruptible. Suspends. */
int coil__park(coil__wait *w);
/* Makes a PARKED task ready; its coil__park() returns `result`. */
void coil__wake(coil_task *t, int result);
/* Offers the task's pending cancellation to its current park, and cancels the
 * groups it owns that the cancellation covers. Call after any change that may
 * cancel `t` (coil_cancel, a scope firing). */
void coil__propagate_cancel(coil_task *t);
/* The error the task's next suspension point would report, 0 if none. */
int coil__pending_cancel(const coil_task *t);
/* Same, for code inside scope `s` of task `t` (NULL: the task level). */
int coil__scope_chain_cancel(const coil_task *t, const coil_scope *s);
/* Spawns with an explicit owning group (NULL: a plain handle). */
coil_task *coil__spawn(coil_loop *loop, const coil_spawn_opts *opts, coil_fn fn, void *arg,
                       coil_group *group, const char *file, int line);
/* Frees a finished task (stack back to the pool). */
void coil__task_free(coil_task *t);
/* Called by task.c when a group-owned child finishes. */
void coil__group_child_done(coil_group *g, coil_task *child);
/* Cancels a group's children (used by scope.c and task.c). */
void coil__group_cancel_children(coil_group *g);

/* Waits on a primitive's list: links `w` at the tail, parks, and unlinks on
 * interruption. Returns the wake result. Suspends. */
int coil__wait_on(coil__list *waiters, coil__waiter *w);
/* Pops the first waiter, stores `value` in it and wakes it with `result`.
 * Returns false if there was none. */
bool coil__wake_one(coil__list *waiters, void *value, int result);
/* Wakes every waiter with `result`. */
void coil__wake_all(coil__list *waiters, int result);

/* Running task of this thread's loop, or NULL. */
static inline coil_task *coil__running(void) {
    coil_loop *l = coil__tls_loop;
    return l ? l->current : NULL;
}

/* ------------------------------------------------------------------ switch.c */

/* Prepares `t`'s context on its stack. */
void coil__context_make(coil_task *t, void (*entry)(coil__transfer));
/* From the scheduler, runs `t` until it suspends or finishes. */
void coil__context_resume(coil_loop *loop, coil_task *t);
/* From a task, returns to the scheduler. `finished`: never resumed again. */
void coil__context_suspend(coil_loop *loop, coil_task *t, bool finished);
/* The task entry must call this first, with what it received. */
void coil__context_started(coil_loop *loop, coil_task *t, coil__transfer from);
void coil__context_destroy(coil_task *t);
void coil__context_loop_init(coil_loop *loop);

/* ------------------------------------------------------------------ stack.c */

coil__stack_pool *coil__stack_pool_new(void);
void coil__stack_pool_free(coil__stack_pool *p);
/* Gets a stack of at least `size` usable bytes. Returns 0 or -ENOMEM. */
int coil__stack_get(coil__stack_pool *p, size_t size, coil__stack *out);
void coil__stack_put(coil__stack_pool *p, coil__stack *s);
size_t coil__stack_default_size(void);

/* ------------------------------------------------------------------ timer.c */

void coil__timer_init(coil__timer *t, void (*fire)(coil__timer *t));
/* Arms (or re-arms) `t` for `deadline` on `loop`. Returns 0 or -ENOMEM. */
int coil__timer_start(coil_loop *loop, coil__timer *t, coil_time deadline);
void coil__timer_stop(coil_loop *loop, coil__timer *t);
static inline bool coil__timer_active(const coil__timer *t) { return t->index != SIZE_MAX; }
/* Fires every timer due at `now`. Returns how many fired. */
size_t coil__timers_run(coil_loop *loop, coil_time now);
/* Earliest deadline, or COIL_NEVER. */
coil_time coil__timers_next(const coil_loop *loop);

/* ------------------------------------------------------------------ loop.c */

int coil__loop_init(coil_loop *loop);
/* Drives the loop until `until()` is true. Returns 0 or -EDEADLK. */
int coil__loop_drive(coil_loop *loop, bool (*until)(coil_loop *loop));
void coil__loop_close(coil_loop *loop);
/* Frees the finished tasks whose handles nobody joined (but main), reporting
 * each one, and whether it had failed. */
void coil__loop_reap_unjoined(coil_loop *loop);
void coil__ready_push(coil_loop *loop, coil_task *t);
/* The same at the front: it runs next (coil_spawn_opts.run_next). */
void coil__ready_push_front(coil_loop *loop, coil_task *t);
/* coil_call_soon_threadsafe() without allocating: `node` (fn and arg set by
 * the caller) stays the caller's and must stay valid until node->fn has
 * started; the loop never frees it. Any thread. Returns 0 or -ESRCH. */
int coil__call_soon_threadsafe_node(coil_loop *loop, coil__xcall *node);
/* Registers per-loop state of another layer (the HTTP client's multi
 * handle) for cleanup: hook->fn(hook->arg) runs in coil__loop_close, on the
 * loop's thread, after the last task finished and before the loop's own
 * handles close, last registered first. It may uv_close() handles of the
 * loop; their close callbacks run before the loop is freed. `hook` (fn and
 * arg set by the caller) stays the caller's and must stay valid until fn
 * has started. Loop thread only. Does not suspend. */
void coil__loop_on_close(coil_loop *loop, coil__close_hook *hook);

/* ------------------------------------------------------------------ locals.c */

void coil__locals_retain(coil__locals *l);
/* Drops a reference; the last one frees the block, or keeps it as the
 * loop's spare. Loop thread only. */
void coil__locals_release(coil__locals *l);
/* Frees the loop's spare block (coil__loop_close). */
void coil__locals_free_spare(coil_loop *loop);
/* The context a thread-pool call reads (set for the duration of the call). */
extern _Thread_local coil__locals *coil__thread_locals;

/* ------------------------------------------------------------------ log */

/* Writes one diagnostic line to stderr, prefixed with "coil: ". */
void coil__log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Failure of a detached task: logged at once. */
void coil__report_lost_failure(coil_task *t);

/* ------------------------------------------------------------------ watchdog.c */

/* Registers a loop with the watchdog and starts its lag probe. Call on the
 * loop's thread, as the last step of coil__loop_init. Returns 0 or -ENOMEM. */
int coil__watchdog_register(coil_loop *loop);
/* Undoes it; first step of coil__loop_close, on the loop's thread. */
void coil__watchdog_unregister(coil_loop *loop);
/* Whether loops measure busy time per task (see loop.c). On by default; the
 * watchdog benchmark turns it off to measure what it costs. */
extern atomic_bool coil__busy_accounting;

#endif /* COIL_RUNTIME_INTERNAL_H */
