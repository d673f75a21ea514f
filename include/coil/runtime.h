/* coil/runtime.h: the libcoil runtime, asyncio's model in C.
 *
 * A loop runs on one thread and interleaves many tasks. A task is a stackful
 * coroutine: plain straight-line C that suspends inside calls such as
 * coil_sleep(), coil_join() or coil_queue_get() and resumes when they are done.
 *
 * Guarantees every function below relies on:
 *
 *  - One loop per thread. A task belongs to the loop that spawned it and never
 *    migrates. Other threads reach a loop only through the thread-safe calls in
 *    the "Cross-thread use" section.
 *  - Atomicity. The code a task runs between two suspension points is atomic
 *    with respect to the other tasks of its loop: no other task of that loop
 *    runs in between. It is NOT atomic with respect to other loops or threads.
 *    Every function that can suspend says "Suspends." in its comment; nothing
 *    else ever does.
 *  - Errors are negative errno-style codes (-ECANCELED, -ETIMEDOUT, ...).
 *    coil_strerror() names them.
 *  - Cancellation is level-triggered and delivered at suspension points. Once a
 *    task is cancelled, every suspending call it makes returns -ECANCELED
 *    without suspending, until it returns, unless it is inside a shield scope.
 *    An expired deadline scope does the same with -ETIMEDOUT, for the code
 *    inside that scope.
 *  - Ownership of every pointer is stated by the function that takes it.
 *
 * Function-pointer types, structs the caller allocates (scopes, groups, sync
 * primitives) and the rest are all declared here; fields marked "private" are
 * for libcoil alone.
 */
#ifndef COIL_RUNTIME_H
#define COIL_RUNTIME_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define COIL_EXTERN __attribute__((visibility("default")))

/* ------------------------------------------------------------------ errors */

/* Every error coil returns itself, with its name and message. Calls may also
 * pass through other errno values from the OS or libuv (also negative). */
#define COIL_ERRNO_MAP(XX)                                                   \
    XX(ECANCELED, "operation cancelled")                                     \
    XX(ETIMEDOUT, "deadline expired")                                        \
    XX(EPIPE, "closed")                                                      \
    XX(EAGAIN, "would block")                                                \
    XX(ENOMEM, "out of memory")                                              \
    XX(EINVAL, "invalid argument")                                           \
    XX(EALREADY, "already done")                                             \
    XX(EPERM, "not allowed from this context")                               \
    XX(EDEADLK, "deadlock: nothing can wake the waiting tasks")              \
    XX(ESRCH, "no such task or loop")                                        \
    XX(ECHILD, "worker process died")                                        \
    XX(EBUSY, "resource busy")                                               \
    XX(ENOENT, "not found")

/* Returns a static message for a negative (or positive) error code. */
COIL_EXTERN const char *coil_strerror(int err);
/* Returns the symbolic name, such as "ECANCELED", or "E?" if unknown. */
COIL_EXTERN const char *coil_err_name(int err);

/* ------------------------------------------------------------------ time */

/* Monotonic time in nanoseconds. Deadlines are absolute values of this clock. */
typedef int64_t coil_time;

#define COIL_NSEC(n) ((coil_time)(n))
#define COIL_USEC(n) ((coil_time)(n) * 1000)
#define COIL_MSEC(n) ((coil_time)(n) * 1000000)
#define COIL_SEC(n)  ((coil_time)(n) * 1000000000)
#define COIL_NEVER   INT64_MAX

/* Current monotonic time in ns. Safe from any thread. */
COIL_EXTERN coil_time coil_now(void);

/* ------------------------------------------------------------------ tasks */

/* What a task returns: a value on success, or a negative error. */
typedef struct coil_result {
    void *value; /* owned as the task's function documents */
    int err;     /* 0 on success, negative error otherwise */
} coil_result;

static inline coil_result coil_ok(void *value) { coil_result r = {value, 0}; return r; }
static inline coil_result coil_fail(int err) { coil_result r = {NULL, err}; return r; }

typedef coil_result (*coil_fn)(void *arg);

typedef struct coil_loop coil_loop;
typedef struct coil_task coil_task;

/* Runs `fn(arg)` as the task "main" on a new loop on the calling thread and
 * drives the loop until main returns. Then every task still alive is reported
 * to stderr (name, spawn site, where it is parked), cancelled and awaited, and
 * every finished task whose handle was never joined is reported too.
 * `out` (may be NULL) receives main's result. Returns 0, -EINVAL if this
 * thread already runs a loop, -ENOMEM, or -EDEADLK if every task was parked
 * with nothing left that could wake them (they are then cancelled). */
COIL_EXTERN int coil_run(coil_fn fn, void *arg, coil_result *out);

/* Per-task options; a NULL pointer means all defaults. */
typedef struct coil_spawn_opts {
    const char *name;  /* copied (first 47 bytes); NULL: the function's site */
    size_t stack_size; /* usable bytes; 0: the loop default (64 KiB, 256 KiB
                          under sanitizers; COIL_STACK_SIZE overrides) */
    bool run_next;     /* first in line: ahead of the tasks already ready */
} coil_spawn_opts;

/* Spawns a task on the current loop. It first runs when the caller next
 * suspends. The returned handle belongs to the caller, who must pass it to
 * exactly one of coil_join() or coil_detach(). The child gets a copy of the
 * caller's task-local values. May also be called on the loop's thread outside
 * any task (e.g. from a coil_call_soon_threadsafe callback). Returns NULL with
 * errno set (ENOMEM; EPERM on a thread without a loop). Does not suspend. Use the macros below, which
 * record the spawn site. */
COIL_EXTERN coil_task *coil_spawn_at(const coil_spawn_opts *opts, coil_fn fn, void *arg,
                                     const char *file, int line);
#define coil_spawn(fn, arg) coil_spawn_at(NULL, (fn), (arg), __FILE__, __LINE__)
#define coil_spawn_named(label, fn, arg)                                     \
    coil_spawn_at(&(coil_spawn_opts){.name = (label)}, (fn), (arg), __FILE__, __LINE__)

/* Waits for `t` to finish and stores its result in `out` (may be NULL).
 * Consumes the handle in every case. Returns 0 when the task finished. If the
 * joining task is (or already was) cancelled or past its deadline, the child
 * is cancelled too and awaited (a timeout never orphans the work it guards);
 * then the child's result is still stored and the interruption is returned
 * (-ECANCELED or -ETIMEDOUT). Suspends. */
COIL_EXTERN int coil_join(coil_task *t, coil_result *out);

/* Gives up the handle: the task frees itself when it finishes. If it fails,
 * the failure is logged at once with its name and spawn site. Does not
 * suspend. */
COIL_EXTERN void coil_detach(coil_task *t);

/* Requests cancellation of `t`: its current and every later suspension point
 * returns -ECANCELED (outside shield scopes), and its task groups cancel their
 * children. Idempotent; the handle stays the caller's. Does not suspend. */
COIL_EXTERN void coil_cancel(coil_task *t);

/* Lets every other ready task run once, then resumes. Returns 0, or the
 * pending cancellation (without yielding). Suspends. */
COIL_EXTERN int coil_yield(void);

/* Returns 0, or the cancellation or expired deadline that the next suspension
 * point would report. Lets CPU-bound loops stop early. Does not suspend. */
COIL_EXTERN int coil_check_cancel(void);

/* The running task, or NULL outside tasks (e.g. on a plain thread). */
COIL_EXTERN coil_task *coil_current(void);
/* The task's name. Valid while the task's handle is. */
COIL_EXTERN const char *coil_task_name(const coil_task *t);
COIL_EXTERN void coil_task_set_name(coil_task *t, const char *name);
/* The loop of the calling thread, or NULL. */
COIL_EXTERN coil_loop *coil_loop_current(void);
/* The libuv loop behind a coil loop, for the io layer. */
struct uv_loop_s;
COIL_EXTERN struct uv_loop_s *coil_loop_uv(coil_loop *loop);

/* ------------------------------------------------------------------ time */

/* Sleeps for `ns` (or until `deadline`). Returns 0, -ECANCELED or
 * -ETIMEDOUT. Suspends. */
COIL_EXTERN int coil_sleep(coil_time ns);
COIL_EXTERN int coil_sleep_until(coil_time deadline);

/* Deadline and cancel scopes (trio's CancelScope; asyncio.timeout()).
 *
 *     coil_scope s;
 *     coil_scope_enter(&s, coil_now() + COIL_MSEC(200));
 *     err = fetch_everything();          // suspensions inside return
 *                                        // -ETIMEDOUT once it expires
 *     if (coil_scope_exit(&s) == -ETIMEDOUT) ...  // move_on_after: ignore it
 *
 * Everything the task runs inside the scope is covered, including the
 * children of task groups opened inside it, which are cancelled when it
 * expires. Scopes nest and must be exited in reverse order, by the task that
 * entered them. The struct lives on the caller's stack. */
typedef struct coil_scope coil_scope;

/* Enters a scope that expires at `deadline` (COIL_NEVER: only explicit
 * cancellation). Does not suspend. */
COIL_EXTERN void coil_scope_enter(coil_scope *s, coil_time deadline);
/* Enters a shield: cancellation of the task and of outer scopes is held back
 * until it exits (trio's shield=True; asyncio.shield). Its own `deadline`
 * still applies. Use it around cleanup that must suspend. */
COIL_EXTERN void coil_scope_enter_shielded(coil_scope *s, coil_time deadline);
/* Cancels the scope: code inside it sees -ECANCELED. Does not suspend. */
COIL_EXTERN void coil_scope_cancel(coil_scope *s);
/* Leaves the scope. Returns 0 if it neither expired nor was cancelled,
 * -ETIMEDOUT if its deadline fired, -ECANCELED if coil_scope_cancel() was
 * called, or -ENOMEM if its deadline could not be armed (then the code inside
 * saw -ENOMEM at its suspension points, as if it had expired). Does not
 * suspend. */
COIL_EXTERN int coil_scope_exit(coil_scope *s);
/* Whether the scope has fired, while inside it. */
COIL_EXTERN bool coil_scope_fired(const coil_scope *s);

/* ------------------------------------------------------------------ futures */

/* A one-shot value with any number of waiters, on one loop. Resolved once.
 * The struct is caller-owned; it must outlive its waiters. */
typedef struct coil_future coil_future;

COIL_EXTERN void coil_future_init(coil_future *f);
/* Resolves with a value (ownership passes to whoever reads it, as the caller
 * documents) or an error (< 0). Wakes every waiter. Returns 0 or -EALREADY.
 * Does not suspend. */
COIL_EXTERN int coil_future_resolve(coil_future *f, void *value);
COIL_EXTERN int coil_future_reject(coil_future *f, int err);
COIL_EXTERN bool coil_future_done(const coil_future *f);
/* Waits until resolved. Returns the future's error, or 0 with `*value` set
 * (value may be NULL); or -ECANCELED/-ETIMEDOUT if the waiter was
 * interrupted (the future is unaffected). Suspends. */
COIL_EXTERN int coil_future_wait(coil_future *f, void **value);

/* ------------------------------------------------------------------ groups */

/* A task group (trio's nursery, asyncio.TaskGroup). Every child spawned in it
 * is owned by the group, and coil_group_wait() returns only when all of them
 * have finished. The first child that fails cancels its siblings; every
 * failure is kept and can be read back. Lives on the caller's stack; opened
 * and waited by the same task, nested like scopes. */
typedef struct coil_group coil_group;

/* One recorded failure. */
typedef struct coil_group_error {
    int err;           /* the child's error */
    char name[48];     /* the child's name */
    const char *file;  /* where it was spawned */
    int line;
} coil_group_error;

COIL_EXTERN void coil_group_init(coil_group *g);
/* Spawns a child owned by the group. Returns the child (borrowed: valid until
 * it finishes; use it only for coil_cancel/coil_task_name) or NULL with errno
 * set. Does not suspend. */
COIL_EXTERN coil_task *coil_group_spawn_at(coil_group *g, const coil_spawn_opts *opts,
                                           coil_fn fn, void *arg, const char *file, int line);
#define coil_group_spawn(g, fn, arg) \
    coil_group_spawn_at((g), NULL, (fn), (arg), __FILE__, __LINE__)
#define coil_group_spawn_named(g, label, fn, arg) \
    coil_group_spawn_at((g), &(coil_spawn_opts){.name = (label)}, (fn), (arg), __FILE__, __LINE__)
/* Cancels every child. Does not suspend. */
COIL_EXTERN void coil_group_cancel(coil_group *g);
/* Waits for every child. If the waiting task is cancelled or its deadline
 * expires, the children are cancelled and still awaited. Returns 0 if no
 * child failed, the first failure's error otherwise, or the interruption.
 * Suspends. */
COIL_EXTERN int coil_group_wait(coil_group *g);
/* The failures recorded, in the order they happened. Valid until
 * coil_group_destroy(). */
COIL_EXTERN size_t coil_group_error_count(const coil_group *g);
COIL_EXTERN const coil_group_error *coil_group_error_at(const coil_group *g, size_t i);
/* Frees the error list. Call after coil_group_wait(). */
COIL_EXTERN void coil_group_destroy(coil_group *g);

/* ------------------------------------------------------------------ combinators */

/* One unit of concurrent work for gather/race/as_completed. */
typedef struct coil_call {
    coil_fn fn;          /* in */
    void *arg;           /* in */
    const char *name;    /* in, may be NULL */
    coil_result result;  /* out: the call's result, or -ECANCELED */
} coil_call;

/* Runs every call concurrently and waits for all (asyncio.gather with
 * return_exceptions=True). Each result lands in calls[i].result. Returns 0 if
 * all succeeded, else the error of the lowest-indexed failure, or the
 * interruption of the caller (the calls are then cancelled and awaited).
 * Suspends. */
COIL_EXTERN int coil_gather(coil_call *calls, size_t n);

/* Runs every call concurrently; the first to succeed wins and the rest are
 * cancelled and awaited (asyncio.wait FIRST_COMPLETED + cancel; "first DNS
 * answer wins"). Sets *winner and returns 0, or returns the last failure's
 * error if none succeeded. A loser that succeeded before it saw the
 * cancellation keeps its value in calls[i].result for the caller to free.
 * Suspends. */
COIL_EXTERN int coil_race(coil_call *calls, size_t n, size_t *winner);

/* asyncio.as_completed: yields each call's index as it finishes. */
typedef struct coil_as_completed coil_as_completed;
/* Starts every call. Returns 0 or -ENOMEM. Does not suspend. */
COIL_EXTERN int coil_as_completed_start(coil_as_completed *ac, coil_call *calls, size_t n);
/* Waits for the next finished call and stores its index. Returns 0, -EPIPE
 * when all have been returned, or the caller's interruption. Suspends. */
COIL_EXTERN int coil_as_completed_next(coil_as_completed *ac, size_t *index);
/* Cancels and awaits the calls not yet finished, and frees. Suspends. */
COIL_EXTERN void coil_as_completed_stop(coil_as_completed *ac);

/* ------------------------------------------------------------------ sync */

/* All of these belong to one loop and are used by its tasks. Waiters are
 * served first in, first out. Every waiting call is a suspension point. The
 * structs are caller-owned and must outlive their waiters. */

typedef struct coil_lock coil_lock;
COIL_EXTERN void coil_lock_init(coil_lock *l);
/* Returns 0 holding the lock, or -ECANCELED/-ETIMEDOUT. Suspends. */
COIL_EXTERN int coil_lock_acquire(coil_lock *l);
COIL_EXTERN bool coil_lock_try(coil_lock *l);
/* Hands the lock to the first waiter. Does not suspend. */
COIL_EXTERN void coil_lock_release(coil_lock *l);

typedef struct coil_event coil_event;
COIL_EXTERN void coil_event_init(coil_event *e);
COIL_EXTERN void coil_event_set(coil_event *e);    /* wakes all waiters */
COIL_EXTERN void coil_event_clear(coil_event *e);
COIL_EXTERN bool coil_event_is_set(const coil_event *e);
/* Returns 0 once set, or -ECANCELED/-ETIMEDOUT. Suspends. */
COIL_EXTERN int coil_event_wait(coil_event *e);

typedef struct coil_sem coil_sem;
COIL_EXTERN void coil_sem_init(coil_sem *s, size_t count);
COIL_EXTERN int coil_sem_acquire(coil_sem *s); /* Suspends. */
COIL_EXTERN bool coil_sem_try(coil_sem *s);
COIL_EXTERN void coil_sem_release(coil_sem *s);

typedef struct coil_cond coil_cond;
COIL_EXTERN void coil_cond_init(coil_cond *c);
/* Releases `l`, waits for a signal, re-acquires `l` (always, even when
 * interrupted, shielded from cancellation). Returns 0 or the interruption.
 * Suspends. */
COIL_EXTERN int coil_cond_wait(coil_cond *c, coil_lock *l);
COIL_EXTERN void coil_cond_signal(coil_cond *c);
COIL_EXTERN void coil_cond_broadcast(coil_cond *c);

/* Bounded queue of pointers. Items are owned by the queue between put and
 * get; items still inside at destroy are returned by coil_queue_try_get(). */
typedef enum coil_queue_kind {
    COIL_QUEUE_FIFO,
    COIL_QUEUE_LIFO,
    COIL_QUEUE_PRIORITY /* lowest priority value first; FIFO among equals */
} coil_queue_kind;
typedef struct coil_queue coil_queue;
/* capacity >= 1. Returns 0 or -ENOMEM/-EINVAL. */
COIL_EXTERN int coil_queue_init(coil_queue *q, coil_queue_kind kind, size_t capacity);
COIL_EXTERN void coil_queue_destroy(coil_queue *q);
/* Waits for room. Returns 0, -EPIPE if closed, or the interruption.
 * Suspends. */
COIL_EXTERN int coil_queue_put(coil_queue *q, void *item);
COIL_EXTERN int coil_queue_put_prio(coil_queue *q, void *item, int64_t priority);
/* Waits for an item. Returns 0, -EPIPE once closed and drained, or the
 * interruption. Suspends. */
COIL_EXTERN int coil_queue_get(coil_queue *q, void **item);
/* Same, giving up after `timeout` ns with -ETIMEDOUT. Suspends. */
COIL_EXTERN int coil_queue_get_timeout(coil_queue *q, void **item, coil_time timeout);
COIL_EXTERN int coil_queue_put_timeout(coil_queue *q, void *item, coil_time timeout);
/* Non-suspending variants: -EAGAIN when full/empty, -EPIPE when closed. */
COIL_EXTERN int coil_queue_try_put(coil_queue *q, void *item);
COIL_EXTERN int coil_queue_try_put_prio(coil_queue *q, void *item, int64_t priority);
COIL_EXTERN int coil_queue_try_get(coil_queue *q, void **item);
/* Closes: waiting and later puts get -EPIPE; gets drain what is left, then
 * get -EPIPE. Wakes all waiters. Does not suspend. */
COIL_EXTERN void coil_queue_close(coil_queue *q);
COIL_EXTERN size_t coil_queue_len(const coil_queue *q);

/* Single-slot "latest value" mailbox: a new post replaces a pending one and
 * wakes the waiter at once (a worker waiting on a command with a timeout). */
typedef struct coil_mailbox coil_mailbox;
/* `drop` (may be NULL) frees a value that is replaced or left at destroy. */
COIL_EXTERN void coil_mailbox_init(coil_mailbox *m, void (*drop)(void *value));
COIL_EXTERN void coil_mailbox_destroy(coil_mailbox *m);
/* Stores `value` (ownership passes to the mailbox), replacing and dropping a
 * pending one. Returns 0, or -EPIPE if closed (value not taken). Does not
 * suspend. */
COIL_EXTERN int coil_mailbox_post(coil_mailbox *m, void *value);
/* Takes the pending value (ownership passes to the caller), waiting up to
 * `timeout` ns (COIL_NEVER: no limit). Returns 0, -ETIMEDOUT, -EPIPE once
 * closed and empty, or the interruption. Suspends. */
COIL_EXTERN int coil_mailbox_take(coil_mailbox *m, void **value, coil_time timeout);
COIL_EXTERN void coil_mailbox_close(coil_mailbox *m);

/* Async once-initialiser for lazy shared resources: the first caller runs
 * `init`; concurrent callers wait for it and get the same value. If init
 * fails, its waiters get the error and the next call tries again. */
typedef struct coil_once coil_once;
COIL_EXTERN void coil_once_init(coil_once *o);
/* Returns 0 with *value set, init's error, or the caller's interruption.
 * Suspends. */
COIL_EXTERN int coil_once_get(coil_once *o, coil_fn init, void *arg, void **value);

/* ------------------------------------------------------------------ task-locals */

/* Task-local values with contextvars semantics: a child task starts with a
 * copy of its parent's values at spawn; a set in one task is seen by that
 * task (and children spawned later) only; functions run by coil_to_thread()
 * see (read-only) the values of the task that offloaded them. Values are borrowed: the
 * caller keeps them alive while any task may read them. */
typedef struct coil_local_key {
    const char *name; /* for diagnostics */
} coil_local_key;
#define COIL_LOCAL_KEY(var, name_) static coil_local_key var = {name_}

/* Sets the calling task's value. Returns 0, -ENOMEM, or -EPERM outside a
 * task (offloaded functions included). Does not suspend. */
COIL_EXTERN int coil_local_set(coil_local_key *key, void *value);
/* Returns the value, or NULL if unset. Does not suspend. */
COIL_EXTERN void *coil_local_get(coil_local_key *key);

/* ------------------------------------------------------------------ thread pool */

/* A bounded pool of threads for blocking calls, separate from libuv's pool
 * (which serves files and DNS), shared by every loop of the process. */
typedef void *(*coil_thread_fn)(void *arg);

/* Sets the pool size (default: COIL_THREADS or 16) and the queue bound
 * (default 4096). Only before the pool's first use; returns -EBUSY after. */
COIL_EXTERN int coil_threadpool_configure(size_t threads, size_t max_queue);

/* Runs fn(arg) on a pool thread; only the calling task waits. Stores fn's
 * return in *result (may be NULL). Returns 0; -EAGAIN if the queue is full;
 * -ECANCELED/-ETIMEDOUT if interrupted while queued (fn never ran); or, if
 * interrupted while fn runs, the interruption after fn has returned (fn can
 * notice through coil_thread_cancelled()). Suspends. */
COIL_EXTERN int coil_to_thread(coil_thread_fn fn, void *arg, void **result);

/* Inside a function run by coil_to_thread(): whether its task has asked it
 * to stop. Any thread. */
COIL_EXTERN bool coil_thread_cancelled(void);

typedef struct coil_threadpool_stats {
    size_t threads; /* threads started */
    size_t busy;    /* threads running a call */
    size_t queued;  /* calls waiting for a thread */
    uint64_t done;  /* calls completed */
} coil_threadpool_stats;
COIL_EXTERN void coil_threadpool_get_stats(coil_threadpool_stats *out);

/* ------------------------------------------------------------------ cross-thread */

/* Runs fn(arg) soon on `loop`'s thread as a plain callback (it must not
 * suspend; spawn a task from it to do so). Any thread. Returns 0, -ENOMEM,
 * or -ESRCH if the loop has stopped (fn is then not called). */
COIL_EXTERN int coil_call_soon_threadsafe(coil_loop *loop, void (*fn)(void *), void *arg);

/* A cross-thread future for a task submitted to a loop
 * (asyncio.run_coroutine_threadsafe). */
typedef struct coil_remote coil_remote;

/* Spawns fn(arg) as a task on `loop` from any thread. Returns a handle the
 * caller must pass to coil_remote_wait() exactly once, or NULL with errno
 * set. Does not suspend. */
COIL_EXTERN coil_remote *coil_submit(coil_loop *loop, coil_fn fn, void *arg);
/* Waits for the submitted task and consumes the handle. On a plain thread it
 * blocks; in a task it suspends only that task. Stores the task's result in
 * *out. Returns 0, -ETIMEDOUT after `timeout` ns (COIL_NEVER: none; the task
 * is then cancelled and the handle still consumed), or -ESRCH if the loop
 * stopped first. May suspend. */
COIL_EXTERN int coil_remote_wait(coil_remote *r, coil_result *out, coil_time timeout);
/* Requests cancellation of the submitted task. Any thread. */
COIL_EXTERN void coil_remote_cancel(coil_remote *r);

/* The sync facade: submit and block for the result. */
COIL_EXTERN int coil_call_sync(coil_loop *loop, coil_fn fn, void *arg, coil_result *out);

/* Starts a thread that runs a loop until coil_loop_thread_stop(). Lets plain
 * synchronous programs call async code through coil_call_sync(). The thread
 * blocks every signal (they stay with the program's own threads). Returns
 * the loop or NULL with errno set. */
COIL_EXTERN coil_loop *coil_loop_thread_start(void);
/* Stops that loop (cancelling its tasks) and joins the thread. */
COIL_EXTERN void coil_loop_thread_stop(coil_loop *loop);

/* ------------------------------------------------------------------ diagnostics
 * docs/diagnostics.md shows what these print and how to read it. */

/* Lists every task of the calling thread's loop, one line each: id, name,
 * state, spawn site, where it is parked (the file:line of the suspending
 * call), age, and busy time (wall time it has spent running on the loop, up
 * to its last suspension). Does nothing on a thread without a loop. Does
 * not suspend. */
COIL_EXTERN void coil_dump_tasks(FILE *out);

/* Every loop's tasks, as JSON, into *json (malloc'd):
 *   {"pid", "loops": [{"loop", "tasks_alive", "spawned", "tasks": [{"id",
 *    "name", "state", "spawned_at", "parked_at", "age_ms", "busy_ms",
 *    "parent"}]}], "unanswered": [loop ids]}
 * "parked_at" is the file:line of the suspending call (null unless parked);
 * "parent" is the id of the task whose group owns it (null if none). Each
 * loop reads its own tasks on its thread; one that does not answer within
 * `timeout` (stalled) is listed in "unanswered". Blocks: call it from a
 * plain thread (coil_to_thread from a task), never a loop's (-EDEADLK).
 * Returns 0, -ENOMEM. */
COIL_EXTERN int coil_tasks_snapshot(char **json, coil_time timeout);

/* The stall detector. A watchdog thread watches every loop. When one task
 * holds its loop longer than the threshold, it writes a report to stderr:
 * the loop, the task's name and spawn site, how long it has run, and a
 * backtrace of the loop's thread taken at that moment; and a second one
 * with the total when the stall ends. Reports are rate-limited (5 at once,
 * then one per 10 s); every stall is counted in the metrics below.
 * The threshold is process-wide: 100 ms by default, COIL_STALL_MS (in ms)
 * overrides that, and this call overrides both. 0 turns the detector off.
 * Any thread. Returns 0, or -EINVAL if ns < 0. */
COIL_EXTERN int coil_watchdog_set_threshold(coil_time ns);
COIL_EXTERN coil_time coil_watchdog_threshold(void);

/* When enabled, SIGUSR1 makes every loop write coil_dump_tasks(stderr) on
 * its own thread at its next turn (a stalled loop, once the stall ends).
 * COIL_DUMP_SIGNAL=1 enables it when the first loop starts. Disabling
 * restores the SIGUSR1 action that was there before. Any thread. Returns 0
 * or a negative errno. */
COIL_EXTERN int coil_dump_on_sigusr1(bool enable);

/* A loop's health, for dashboards and health checks. Lag is how late the
 * loop's timers fire, measured by a probe timer every 20 ms (resolution
 * about 1 ms); a task blocking the loop shows up as lag. */
typedef struct coil_loop_metrics {
    coil_time window;        /* the span the lag figures cover */
    size_t lag_samples;      /* probes in the window (including one overdue now) */
    coil_time lag_p50;       /* median lag over the window, ns */
    coil_time lag_p99;       /* 99th percentile, ns */
    coil_time lag_max;       /* worst, ns; includes the probe overdue right now */
    uint64_t stalls;         /* stalls over the threshold since the loop opened */
    coil_time longest_stall; /* the longest of them (the open one included), ns */
    coil_time stalled_for;   /* how long the stall in progress has lasted, 0 if none */
    size_t tasks_alive;      /* tasks not finished */
    uint64_t tasks_spawned;  /* tasks spawned since the loop opened */
    size_t pool_threads;     /* the shared thread pool (coil_to_thread): threads */
    size_t pool_busy;        /* ... running a call */
    size_t pool_queued;      /* ... calls waiting for a thread */
} coil_loop_metrics;

/* Fills *out for `loop` (NULL: the calling thread's loop), with lag
 * figures over the last `window` ns (0: 10 s; the last 1024 probes at
 * most, about 20 s). Any thread, while the loop is open; from another
 * thread the task counts are as of the loop's last probe. Returns 0,
 * -ESRCH if there is no loop, or -ENOMEM. Does not suspend. */
COIL_EXTERN int coil_loop_get_metrics(coil_loop *loop, coil_time window, coil_loop_metrics *out);

/* Every open loop's metrics, with the loop's number (1, 2, ... in the
 * order they opened, as in stall reports and coil ps). Fills up to `max`
 * and returns how many. Any thread; does not suspend. */
typedef struct coil_loop_info {
    uint64_t id;
    coil_loop_metrics metrics;
} coil_loop_info;
COIL_EXTERN size_t coil_loops_get_metrics(coil_loop_info *out, size_t max, coil_time window);

/* The opening report of the latest stall (what the watchdog wrote to
 * stderr: the task, its spawn site, the backtrace), NUL-terminated into
 * buf; "" if there was none. Returns its length. Any thread. */
COIL_EXTERN size_t coil_watchdog_last_report(char *buf, size_t cap);

/* ------------------------------------------------------------------ call sites
 * Every suspending call records the file:line it was called from, so that task
 * dumps and leak reports can say where a task is parked. The macros below wrap
 * each suspending function of this header; taking a function's address still
 * works, because a function-like macro expands only when followed by '('. */
typedef struct coil__site_t {
    const char *file;
    int line;
} coil__site_t;
extern COIL_EXTERN _Thread_local coil__site_t coil__site
    __attribute__((tls_model("initial-exec")));
#define COIL__AT(call) (coil__site.file = __FILE__, coil__site.line = __LINE__, (call))

/* ------------------------------------------------------------------ private layouts
 * Sizes of the caller-allocated structs. Fields are private. */

typedef struct coil__list {
    struct coil__list *next, *prev;
} coil__list;

typedef struct coil__timer {
    coil_time deadline;                   /* absolute expiry */
    size_t index;                         /* slot in the loop's heap, SIZE_MAX if idle */
    void (*fire)(struct coil__timer *t);  /* called on the loop when it expires */
} coil__timer;

struct coil_scope {
    struct coil_scope *outer; /* enclosing scope of the same task */
    coil_task *owner;         /* the task that entered it */
    coil__timer timer;        /* deadline timer, idle when COIL_NEVER */
    int fired;                /* 0, -ETIMEDOUT or -ECANCELED */
    bool shield;              /* hides outer cancellation */
    unsigned depth;           /* nesting depth, 1 for the outermost */
};

struct coil_future {
    coil__list waiters; /* parked coil__waiter nodes */
    void *value;
    int err;
    bool done;
};

struct coil_group {
    coil_task *owner;           /* task that opened the group */
    struct coil_group *outer;   /* owner's enclosing open group */
    coil_scope *scope;          /* owner's innermost scope when opened */
    coil__list children;        /* running children */
    size_t live;                /* children not finished */
    int first_err;              /* first failure, 0 if none */
    bool cancelled;             /* coil_group_cancel() or a failure happened */
    bool waiting;               /* owner is parked in coil_group_wait() */
    bool open;                  /* between init and the end of wait */
    coil_group_error *errors;   /* recorded failures (malloc'd) */
    size_t nerrors, cap_errors;
};

struct coil_as_completed {
    coil_group group;     /* owns the calls' tasks */
    coil_call *calls;
    void *slots;          /* per-call wrapper arguments (malloc'd) */
    void *state;          /* shared wrapper state (malloc'd) */
    size_t n, returned;   /* total, indices handed out */
    size_t *done;         /* finished indices in finishing order (malloc'd) */
    size_t finished;      /* entries in done */
    coil__list waiters;   /* the caller, while it waits in next() */
};

struct coil_lock {
    coil__list waiters;
    bool held;
};

struct coil_event {
    coil__list waiters;
    bool set;
};

struct coil_sem {
    coil__list waiters;
    size_t count;
};

struct coil_cond {
    coil__list waiters;
};

struct coil_queue {
    void **items;             /* ring (FIFO/LIFO) or binary heap (PRIORITY) */
    int64_t *prio;            /* priorities for PRIORITY */
    uint64_t *seq;            /* insertion order for PRIORITY (stable) */
    uint64_t next_seq;
    size_t cap, len, head;
    coil_queue_kind kind;
    bool closed;
    coil__list getters, putters;
};

struct coil_mailbox {
    coil__list waiters;
    void *value;
    bool full, closed;
    void (*drop)(void *value);
};

struct coil_once {
    coil__list waiters;
    void *value;
    int state; /* 0 idle, 1 running, 2 done */
};

/* Site-recording wrappers (see "call sites" above). Inside libcoil's own
 * sources they are off, so that the user's line is the one kept. */
#ifndef COIL_BUILDING
#define coil_join(t, out) COIL__AT(coil_join(t, out))
#define coil_yield() COIL__AT(coil_yield())
#define coil_sleep(ns) COIL__AT(coil_sleep(ns))
#define coil_sleep_until(d) COIL__AT(coil_sleep_until(d))
#define coil_future_wait(f, v) COIL__AT(coil_future_wait(f, v))
#define coil_group_wait(g) COIL__AT(coil_group_wait(g))
#define coil_gather(c, n) COIL__AT(coil_gather(c, n))
#define coil_race(c, n, w) COIL__AT(coil_race(c, n, w))
#define coil_as_completed_next(ac, i) COIL__AT(coil_as_completed_next(ac, i))
#define coil_as_completed_stop(ac) COIL__AT(coil_as_completed_stop(ac))
#define coil_lock_acquire(l) COIL__AT(coil_lock_acquire(l))
#define coil_event_wait(e) COIL__AT(coil_event_wait(e))
#define coil_sem_acquire(s) COIL__AT(coil_sem_acquire(s))
#define coil_cond_wait(c, l) COIL__AT(coil_cond_wait(c, l))
#define coil_queue_put(q, i) COIL__AT(coil_queue_put(q, i))
#define coil_queue_put_prio(q, i, p) COIL__AT(coil_queue_put_prio(q, i, p))
#define coil_queue_get(q, i) COIL__AT(coil_queue_get(q, i))
#define coil_queue_get_timeout(q, i, t) COIL__AT(coil_queue_get_timeout(q, i, t))
#define coil_queue_put_timeout(q, i, t) COIL__AT(coil_queue_put_timeout(q, i, t))
#define coil_mailbox_take(m, v, t) COIL__AT(coil_mailbox_take(m, v, t))
#define coil_once_get(o, f, a, v) COIL__AT(coil_once_get(o, f, a, v))
#define coil_to_thread(f, a, r) COIL__AT(coil_to_thread(f, a, r))
#define coil_remote_wait(r, o, t) COIL__AT(coil_remote_wait(r, o, t))
#define coil_call_sync(l, f, a, o) COIL__AT(coil_call_sync(l, f, a, o))
#endif

#ifdef __cplusplus
}
#endif
#endif /* COIL_RUNTIME_H */
