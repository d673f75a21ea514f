/* coil/jobs.h: CPU-bound and crash-prone work in supervised worker processes.
 *
 * The process pool. A supervisor on one coil loop keeps N worker processes.
 * A task hands a job (a registered kind and a payload of bytes) to the pool
 * with coil_pool_run(); only that task waits, the loop goes on. A worker
 * runs the kind's handler and sends back a result (bytes and a content
 * type) and, on the way, progress reports.
 *
 * Crash isolation. A worker that dies (a signal, exit(), the OOM killer)
 * fails only the job it was running, with an outcome that says how it died;
 * the worker is replaced and every other job carries on. A job that runs
 * past its timeout, or whose caller is cancelled, is stopped: the worker is
 * asked to stop (coil_job_cancelled() turns true), then sent SIGTERM, then
 * SIGKILL after a grace period.
 *
 * Clean workers. Workers are not forked from the supervisor, which already
 * runs threads (the watchdog, the thread pool): each one is a fresh exec of
 * the running executable, which must therefore call
 * coil_worker_main_if_requested() at the top of main(). Handlers must be
 * registered before that call, in constructors (COIL_JOB_HANDLER) or at the
 * very top of main(), so that the supervisor and every worker know the same
 * kinds. docs/jobs.md ("Process pool") explains the choices.
 *
 *     static int resize(const void *payload, size_t len, coil_job_ctx *ctx) {
 *         ... coil_job_progress(ctx, 50, "halfway");
 *         if (coil_job_cancelled(ctx)) return -ECANCELED;
 *         return coil_job_set_result(ctx, png, png_len, "image/png");
 *     }
 *     COIL_JOB_HANDLER("image.resize", resize)
 *
 *     int main(int argc, char **argv) {
 *         coil_worker_main_if_requested(argc, argv);  // workers stop here
 *         ...
 *     }
 *
 *     // in a task:
 *     coil_pool *pool;
 *     coil_pool_start(NULL, &pool);
 *     coil_job_outcome out;
 *     int err = coil_pool_run(pool, "image.resize", json, json_len, NULL, &out);
 *     ... out.result, out.result_len, out.content_type ...
 *     coil_job_outcome_free(&out);
 *     coil_pool_stop(pool, COIL_POOL_DRAIN);
 */
#ifndef COIL_JOBS_H
#define COIL_JOBS_H

#include "coil/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ handlers
 * Everything in this section runs in a worker process. */

/* Longest job kind, in bytes. */
#define COIL_JOB_KIND_MAX 63
/* Longest content type and progress message, in bytes. Longer ones are
 * truncated. */
#define COIL_JOB_CONTENT_TYPE_MAX 127
#define COIL_JOB_MESSAGE_MAX 1023

/* What a handler gets to talk to its supervisor. Valid during the call. */
typedef struct coil_job_ctx coil_job_ctx;

/* A job handler. Runs in a worker process, one job at a time, as plain
 * blocking C (no loop); or, registered with coil_job_register_awaiting(),
 * as a task on the worker's loop, beside others. `payload` is the submitter's bytes, borrowed for the
 * call, followed by a NUL byte that `len` does not count (JSON text can be
 * parsed in place). Returns 0 on success or a negative errno-style code,
 * which becomes the outcome's err (a positive return is reported as -EIO).
 * Memory the handler leaves allocated stays with the worker process, which
 * runs many jobs: free it. */
typedef int (*coil_job_fn)(const void *payload, size_t len, coil_job_ctx *ctx);

/* The kind of the job a handler runs (one handler may serve several), its
 * id in the store ("" if the pool was not given one), and which attempt
 * this is (1 for the first; 0 if unknown). */
COIL_EXTERN const char *coil_job_kind(coil_job_ctx *ctx);
COIL_EXTERN const char *coil_job_id(coil_job_ctx *ctx);
COIL_EXTERN unsigned coil_job_attempt(coil_job_ctx *ctx);

/* Registers a job kind that is a program: "NAME[:CONTENT-TYPE]=PROGRAM
 * ARG..." (split on spaces, with '...' and "..." quoting; no shell). Each job runs PROGRAM in its own
 * process group and a fresh temporary directory, with the payload on its
 * stdin; its stdout (16 MiB at most) is the result, of CONTENT-TYPE
 * (default application/octet-stream); lines "progress PERCENT MESSAGE" on
 * fd 3 (COIL_PROGRESS_FD) are its progress. Exit 0 succeeds; another
 * status fails with stderr's last 4 KiB; a signal is a crash. A cancel or
 * timeout sends SIGTERM to the group, then SIGKILL. Call before the pool
 * starts, in the process that starts it (its workers inherit the
 * definitions). Returns 0, -EINVAL (malformed), -EEXIST, -ENOSPC, -EBUSY. */
COIL_EXTERN int coil_jobs_command_kind(const char *definition);
/* The same for each line of a file (blank lines and '#' comments skipped;
 * '...' and "..." quote words with spaces). Returns 0, or an error with
 * the file's name and line in err. */
COIL_EXTERN int coil_jobs_command_kinds_file(const char *path, char *err, size_t cap);
COIL_EXTERN bool coil_jobs_is_command_kind(const char *kind);

/* A handler's return for a failure that another attempt cannot mend (a
 * webhook answered 4xx, a payload the handler refuses): the job is dead at
 * once, whatever attempts it has left. Any other error is retried. */
#define COIL_JOB_NO_RETRY (-131) /* -ENOTRECOVERABLE */

/* Registers `fn` for `kind` (1 to COIL_JOB_KIND_MAX bytes, copied).
 * Register every kind before coil_worker_main_if_requested() and before the
 * first pool starts. Returns 0; -EEXIST if the kind is taken; -EINVAL for a
 * bad kind or NULL fn; -ENOSPC past 128 kinds; -EBUSY once a pool has
 * started in this process. Not thread-safe: call it from constructors or
 * from main() before any thread starts. */
COIL_EXTERN int coil_job_register(const char *kind, coil_job_fn fn);

/* Registers handler `fn` (a function name) for `kind` (a string literal)
 * when the program loads, before main(). A registration that fails (a kind
 * taken twice, say) stops the program there, with a message. */
#define COIL_JOB_HANDLER(kind, fn)                                            \
    __attribute__((constructor)) static void coil__job_register_##fn(void) {  \
        if (coil_job_register(kind, fn) != 0) {                               \
            fputs("coil: cannot register job kind \"" kind "\"\n", stderr);   \
            __builtin_trap();                                                 \
        }                                                                     \
    }

/* Registers `fn` for `kind` as a handler that awaits. It runs as a task on
 * a coil loop in its worker process, so it may suspend: coil_http_get(),
 * coil_gather(), coil_sleep(), coil_to_thread(), deadlines. One worker runs
 * up to `concurrency` jobs of the kind at once (1 to
 * COIL_JOB_CONCURRENCY_MAX), each in its own task; a worker that runs
 * awaiting jobs runs no plain ones. Cancelling a job (its timeout, its
 * caller) cancels its task: its suspension points return -ECANCELED, and
 * coil_job_cancelled() turns true. If it has not returned after the pool's
 * cancel_grace, the worker gets SIGTERM, then SIGKILL, and the other jobs
 * it ran die with it (a crash, as for any death). The per-job resource
 * limits of coil_job_opts do not apply: the jobs share one process.
 * Returns as coil_job_register(), and -EINVAL for a concurrency out of
 * range. */
COIL_EXTERN int coil_job_register_awaiting(const char *kind, coil_job_fn fn, unsigned concurrency);
#define COIL_JOB_CONCURRENCY_MAX 1024

/* COIL_JOB_HANDLER for a handler that awaits: up to `concurrency` jobs of
 * `kind` at once in one worker. */
#define COIL_JOB_AWAITING_HANDLER(kind, fn, concurrency)                               \
    __attribute__((constructor)) static void coil__job_register_##fn(void) {           \
        if (coil_job_register_awaiting(kind, fn, concurrency) != 0) {                  \
            fputs("coil: cannot register job kind \"" kind "\"\n", stderr);             \
            __builtin_trap();                                                          \
        }                                                                              \
    }

/* In a worker process, runs the worker and exits: it never returns. In any
 * other process (argv[1] is not the worker marker) returns 0 at once. Call
 * it first thing in main(), after handlers are registered and before any
 * thread or loop starts. */
COIL_EXTERN int coil_worker_main_if_requested(int argc, char **argv);

/* Sets the job's result: `len` bytes of `data` (copied; the handler keeps
 * `data`) and its `content_type` (NULL: "application/octet-stream").
 * Replaces an earlier result. Returns 0 or -ENOMEM (which, under an address
 * space limit, may be the limit). */
COIL_EXTERN int coil_job_set_result(coil_job_ctx *ctx, const void *data, size_t len,
                                    const char *content_type);

/* Sets a message that explains a failure (copied, truncated to
 * COIL_JOB_MESSAGE_MAX bytes); the outcome carries it in `error`. */
COIL_EXTERN void coil_job_set_error(coil_job_ctx *ctx, const char *message);

/* Reports progress: `percent` 0..100 and a message (may be NULL). Sent to
 * the supervisor at once, which calls the job's on_progress in order.
 * Returns 0, -EINVAL for a percent out of range, or -EPIPE if the
 * supervisor is gone. Blocks only while the supervisor's socket is full. */
COIL_EXTERN int coil_job_progress(coil_job_ctx *ctx, int percent, const char *message);

/* Whether the supervisor has asked this job to stop (its timeout, or its
 * caller was cancelled) or is gone. Cheap (one poll(2) without waiting):
 * call it in long loops and return -ECANCELED when true, and the worker is
 * kept. A handler that never asks is stopped with SIGTERM, then SIGKILL. */
COIL_EXTERN bool coil_job_cancelled(coil_job_ctx *ctx);

/* ------------------------------------------------------------------ the pool
 * Everything below runs in the supervisor, on one coil loop: the pool
 * belongs to the loop of the task that started it and is used by that
 * loop's tasks only (others get -EPERM). */

typedef struct coil_pool coil_pool;

/* Pool settings; a NULL config, and every field left 0, mean the default. */
typedef struct coil_pool_config {
    size_t workers;          /* worker processes; 0: the online CPUs */
    size_t max_queue;        /* jobs waiting for a worker; 0: 1024 */
    int nice;                /* niceness added to the supervisor's for the
                                workers (capped at 19); 0: 10; -1: none */
    coil_time cancel_grace;  /* a stop request waits this long for the
                                handler to return before SIGTERM; 0: 100 ms;
                                -1: SIGTERM at once */
    coil_time kill_grace;    /* SIGTERM to SIGKILL; 0: 2 s */
    coil_time spawn_timeout; /* a new worker must be ready within this; 0: 10 s */
} coil_pool_config;

/* Per-job options; a NULL pointer, and every field left 0, mean none. */
typedef struct coil_job_opts {
    coil_time timeout;        /* running time (not queue time) before the
                                 job is stopped with -ETIMEDOUT */
    size_t max_address_space; /* bytes of address space the job may map on
                                 top of what the worker had mapped when it
                                 started (RLIMIT_AS); past it allocations
                                 fail (malloc returns NULL) */
    unsigned max_cpu_seconds; /* CPU seconds the job may use (RLIMIT_CPU);
                                 past it the worker gets SIGXCPU and dies */
    /* Called for each progress report, in order, on the pool's loop (not
     * in a task of the caller's: it must not suspend). `message` is
     * borrowed for the call. */
    void (*on_progress)(void *arg, int percent, const char *message);
    void *progress_arg;
    const char *label;        /* names the job in dumps and dashboards, and to
                                 its handler (the store's job id, 255 bytes
                                 at most); borrowed while it runs */
    unsigned attempt;         /* which attempt this is, 1 for the first; 0 */
} coil_job_opts;

/* What became of one job. Fields not listed as set are 0 / empty. */
typedef struct coil_job_outcome {
    int err;               /* 0: the handler succeeded; else its error, or
                              -ECHILD (its worker died: see signal,
                              exit_status, oom), -ETIMEDOUT (its timeout),
                              -ECANCELED (its caller was cancelled, or the
                              pool stopped), -ENOENT (kind unknown to the
                              worker), -EPROTO (the worker broke the
                              protocol and was killed) */
    void *result;          /* the handler's result (malloc'd, NUL-terminated
                              beyond result_len), owned by the caller:
                              coil_job_outcome_free(); NULL if none */
    size_t result_len;
    char content_type[COIL_JOB_CONTENT_TYPE_MAX + 1]; /* of result */
    char error[COIL_JOB_MESSAGE_MAX + 1]; /* the handler's message, or how
                                             its worker died */
    int signal;            /* signal that killed the worker, 0 if none */
    int exit_status;       /* the worker's exit status if it exited while
                              running the job, else -1 */
    bool oom;              /* out of memory, as far as can be told: killed by
                              the kernel's OOM killer (an unexplained SIGKILL
                              while the cgroup's oom_kill count rose), or a
                              job with max_address_space that failed with
                              -ENOMEM or SIGABRT */
    bool crashed;          /* the worker died on its own while running the
                              job (not stopped by the pool): counts against
                              the job's retry budget */
    bool ran;              /* the job reached a worker (false: it was still
                              queued when it was cancelled) */
    int pid;               /* the worker that ran it, 0 if none */
    uint64_t id;           /* the pool's number for the job (1, 2, ...) */
    coil_time queued_ns;   /* time spent waiting for a worker */
    coil_time run_ns;      /* time from dispatch to outcome */
} coil_job_outcome;

/* Frees out->result and clears it. NULL is fine. Does not suspend. */
COIL_EXTERN void coil_job_outcome_free(coil_job_outcome *out);

/* Starts a pool on the calling task's loop with `cfg` (NULL: defaults; the
 * struct is copied) and waits until every worker is ready. Stores the pool,
 * owned by the caller who must coil_pool_stop() it before the loop ends, in
 * *out. Returns 0; -EINVAL; -EPERM outside a task; -ENOMEM; -ECHILD if a
 * worker could not start (the executable does not call
 * coil_worker_main_if_requested()?) or was not ready in time; a spawn
 * error; or the interruption. Nothing is left running on failure. Suspends. */
COIL_EXTERN int coil_pool_start(const coil_pool_config *cfg, coil_pool **out);

/* Runs a job: `kind`, and `len` bytes of `payload` (both borrowed for the
 * call) with `opts` (may be NULL; copied). Waits for a free worker (in a
 * bounded queue, first in first out) and then for the outcome, which it
 * stores in *out (always written; the caller frees it with
 * coil_job_outcome_free()). Only the calling task waits.
 *
 * If the calling task is cancelled or its deadline expires, a queued job is
 * dropped (out->ran is false); a running job is stopped, and the call still
 * waits until it has stopped (at most cancel_grace + kill_grace): a job
 * never outlives its caller. It then returns the interruption.
 *
 * Returns out->err (0 if the handler succeeded), the interruption, or
 * before anything ran: -ENOENT (kind not registered), -EMSGSIZE (payload
 * over 64 MiB), -EAGAIN (queue full), -EPIPE (pool stopping), -EPERM.
 * Suspends. */
COIL_EXTERN int coil_pool_run(coil_pool *pool, const char *kind, const void *payload, size_t len,
                              const coil_job_opts *opts, coil_job_outcome *out);

/* How coil_pool_stop() treats jobs still queued or running. */
typedef enum coil_pool_stop_mode {
    COIL_POOL_DRAIN,  /* run every queued job, wait for every running one */
    COIL_POOL_CANCEL  /* drop queued jobs, stop running ones; both end with
                         -ECANCELED */
} coil_pool_stop_mode;

/* Stops the pool: refuses new jobs (-EPIPE), drains or cancels the rest,
 * lets every worker exit (or kills it), reaps it, and frees the pool, which
 * must not be used again. If the calling task is interrupted, the workers
 * are killed at once (SIGKILL), still reaped, and the interruption is
 * returned. No worker process is left behind in any case, not even a
 * zombie. Returns 0 or the interruption. Suspends. */
COIL_EXTERN int coil_pool_stop(coil_pool *pool, coil_pool_stop_mode mode);

/* Counters for dashboards and health checks. */
typedef struct coil_pool_stats {
    size_t workers;          /* configured worker count */
    size_t alive;            /* worker processes running and ready */
    size_t busy;             /* ... of them running a job */
    size_t queued;           /* jobs waiting for a worker (queue depth) */
    size_t max_queue;        /* the queue's bound */
    uint64_t submitted;      /* jobs accepted */
    uint64_t succeeded;      /* ... whose handler returned 0 */
    uint64_t failed;         /* ... that ended any other way */
    uint64_t crashes;        /* workers that died while running a job */
    uint64_t spawned;        /* worker processes started */
    uint64_t spawn_failures; /* ... that failed to start or get ready */
} coil_pool_stats;

/* Fills *out. Loop thread only. Does not suspend. */
COIL_EXTERN void coil_pool_get_stats(const coil_pool *pool, coil_pool_stats *out);

/* ------------------------------------------------------------------ durable jobs
 * The job system: a durable store (SQLite in a data directory), a scheduler
 * that claims runnable jobs and runs them in a process pool, and an HTTP
 * API. docs/jobs.md states its guarantees and shows the API.
 *
 *     coil_jobs_config jc;
 *     coil_jobs_config_init(&jc);
 *     jc.data_dir = "./var";
 *     coil_jobs *jobs;
 *     coil_jobs_start(&jc, &jobs);          // plain thread, before the server runs
 *     coil_jobs_mount(jobs, srv);            // POST /jobs/{kind}, GET /jobs/{id}, ...
 *     coil_http_server_run(srv);
 *     coil_jobs_stop(jobs);
 *
 * The jobs run on a loop of their own (a thread coil_jobs_start starts);
 * every other loop may enqueue, read and cancel from its tasks. */

typedef struct coil_jobs coil_jobs;
struct coil_http_server;

/* Decides whether the HTTP API accepts a job of `kind` with the parsed JSON
 * payload `json` (a jansson json_t *, borrowed). Returns 0; -ENOENT: no such
 * kind (404); -EINVAL with a reason in msg (cap bytes): the payload does not
 * fit the kind (422). Called on the request's loop; must not suspend. */
/* When a follow-up runs: its parent succeeded; failed for good (dead) or
 * was cancelled; or either. */
typedef enum coil_job_when {
    COIL_JOB_ON_SUCCESS = 1,
    COIL_JOB_ON_FAILURE = 2,
    COIL_JOB_ON_DONE = 3,
} coil_job_when;

/* A job to enqueue when another ends, like Celery's link and link_error.
 * It is written in the same store transaction as its parent's final state,
 * so a crash cannot lose it. Its payload is `payload` (a JSON object, or
 * NULL for {}) with a "parent" member added:
 *   {"id", "kind", "status", "attempts", "error", "finished"}. */
typedef struct coil_job_followup {
    const char *kind;          /* registered, like any job's */
    const char *payload;       /* a JSON object (borrowed), or NULL */
    coil_job_when when;
    int max_attempts;          /* 0: 3 */
    coil_time backoff;         /* 0: 1 s */
    coil_time backoff_cap;     /* 0: 1 h */
    const struct coil_job_followup *followups; /* its own, for a chain (4 deep at most) */
    size_t nfollowups;
} coil_job_followup;

/* Turns `target`, a notify=TARGET of POST /jobs/{kind}, into a follow-up
 * of the job (told when it ends): fills *out (its kind a static string,
 * its payload written into payload, payload_cap bytes). Returns 0, or
 * -EINVAL with a reason in msg (cap bytes): 422. `json` is the job's
 * parsed payload (a jansson json_t *, borrowed). Called on the request's
 * loop; must not suspend. */
typedef int (*coil_jobs_notify_fn)(void *arg, const char *kind, const void *json,
                                   const char *target, coil_job_followup *out, char *payload,
                                   size_t payload_cap, char *msg, size_t cap);

typedef int (*coil_jobs_accept_fn)(void *arg, const char *kind, const void *json, char *msg,
                                   size_t cap);

/* A per-kind limit: at most `max_running` jobs of `kind` run at once on the
 * store (on PostgreSQL across every node; give every node the same
 * limits). The jobs past it wait, queued, in their order. */
typedef struct coil_job_limit {
    const char *kind;
    unsigned max_running;      /* 1 or more */
} coil_job_limit;

typedef struct coil_jobs_config {
    const char *data_dir;      /* the store's directory (created); required
                                  unless `store` names PostgreSQL */
    const char *store;         /* where the jobs live: NULL or "sqlite:DIR"
                                  (then DIR, or data_dir), or a
                                  "postgres://" / "postgresql://" URL shared
                                  by every node (docs/jobs.md, "Several
                                  machines") */
    bool no_workers;           /* a node that enqueues, reads and cancels but
                                  runs no jobs (no pool, no scheduler) */
    const char *const *kinds;  /* NULL-terminated: the kinds this node runs
                                  (PostgreSQL); NULL: every one */
    coil_time lease;           /* PostgreSQL: a node silent this long is
                                  presumed dead and its jobs rescued; 0: 5 s */
    coil_time heartbeat;       /* PostgreSQL: how often a node renews its
                                  lease; 0: 1 s */
    coil_pool_config pool;     /* the worker processes (see above) */
    const coil_job_limit *limits; /* `nlimits` per-kind limits (borrowed while
                                  the service runs), or NULL */
    size_t nlimits;
    size_t prefetch;           /* jobs claimed ahead of the workers, so that a
                                  worker never waits for a commit; they wait
                                  in priority order; 0: 32 per worker. On
                                  PostgreSQL, where a claimed job is no other
                                  node's to take, a node claims ahead only
                                  what its workers would finish in about
                                  50 ms at the recent pace, up to this */
    size_t prefetch_bytes;     /* ... and no more than this many payload
                                  bytes held in memory (the first job is
                                  taken whatever its size); 0: 64 MiB */
    coil_time stop_grace;      /* coil_jobs_stop() lets running jobs finish
                                  this long before it stops them (they are
                                  requeued at the next start); 0: 2 s */
    coil_jobs_accept_fn accept; /* NULL: every registered kind, any JSON */
    void *accept_arg;
    coil_jobs_notify_fn notify; /* NULL: notify= gets 422 */
    void *notify_arg;
    bool log;                  /* one line to stderr per job failure and at
                                  start (jobs recovered); default true */
} coil_jobs_config;

/* Fills `cfg` with the defaults. */
COIL_EXTERN void coil_jobs_config_init(coil_jobs_config *cfg);

/* Opens the store in cfg->data_dir (creating it), puts back in the queue
 * every job a previous process left running (at-least-once), starts the
 * worker processes and the scheduler on a loop thread of its own. Call
 * from a plain thread (not a task); it blocks until all is ready. Returns 0
 * with *out set, or -EBUSY (another process has the directory), -EROFS,
 * -EACCES, -ENOSPC, -EIO, -ECHILD (workers could not start), -EINVAL,
 * -ENOMEM. Nothing is left running on failure. */
COIL_EXTERN int coil_jobs_start(const coil_jobs_config *cfg, coil_jobs **out);

/* Stops claiming, lets running jobs finish for cfg.stop_grace, stops the
 * rest (they go back to the queue: at-least-once), stops the workers,
 * closes the store and frees `jobs`. From a plain thread, after the HTTP
 * server (if mounted) has stopped. Blocks. */
COIL_EXTERN void coil_jobs_stop(coil_jobs *jobs);

/* Whether `store` (a coil_jobs_config.store) names PostgreSQL: a
 * postgres:// or postgresql:// URL. NULL is fine (false). */
COIL_EXTERN bool coil_jobs_store_is_postgres(const char *store);

/* Creates or upgrades the schema of `store` (a coil_jobs_config.store,
 * or a data directory) and returns: it starts nothing. *from gets the
 * version found (0: none), *to this build's. Safe while other nodes start
 * on the same PostgreSQL database (an advisory lock serialises them).
 * Returns 0, -EINVAL (a malformed store), -ECONNREFUSED, -EACCES, -ENOENT
 * (no such database), -EPROTO (the schema is newer than this build),
 * -EBUSY (a process has the SQLite directory open: it migrated when it
 * opened), -EROFS, -EIO; the cause is logged. A plain thread; blocks. */
COIL_EXTERN int coil_jobs_migrate(const char *store, int *from, int *to);

/* Whether the store answers now: false while a PostgreSQL store cannot be
 * reached (enqueues get 503 meanwhile); always true on SQLite. Any thread.
 * Does not suspend. */
COIL_EXTERN bool coil_jobs_store_available(coil_jobs *jobs);

/* Adds the job API's routes to `srv` (before it runs):
 *   POST /jobs/{kind}  GET /jobs  GET /jobs/stats  GET /jobs/{id}
 *   GET /jobs/{id}/result  GET /jobs/{id}/events  DELETE /jobs/{id}
 *   GET /ids/next
 * Returns 0 or the route error. Does not suspend. */
COIL_EXTERN int coil_jobs_mount(coil_jobs *jobs, struct coil_http_server *srv);


/* How to enqueue; every field 0 means the default. */
typedef struct coil_jobs_enqueue_opts {
    int priority;              /* higher runs first; -1000..1000 */
    coil_time delay;           /* not before now + delay */
    int max_attempts;          /* attempts before the job is dead; 0: 3 */
    coil_time timeout;         /* per attempt; 0: none */
    coil_time backoff;         /* bound of the first retry's delay; 0: 1 s */
    coil_time backoff_cap;     /* largest retry delay; 0: 1 h */
    const char *idempotency_key; /* NULL: none; 1..255 printable bytes */
    const coil_job_followup *followups; /* up to 16 (borrowed during the call) */
    size_t nfollowups;
} coil_jobs_enqueue_opts;

/* Size of a job id: 32 hex digits and a NUL. */
#define COIL_JOB_ID_SIZE 33

/* Enqueues a job of `kind` with `len` bytes of `payload` (both borrowed).
 * Returns 0 once the job is on disk (fsync'd), with its id in `id`;
 * *duplicate (may be NULL) tells whether the idempotency key was known (then
 * `id` is the first job's and nothing was added). Errors: -EINVAL (a bad
 * kind, key or option), -ENOENT (kind not registered), -EROFS, -ENOSPC,
 * -EIO (the store could not write; nothing was added), -EPIPE (stopping).
 * From a task on any loop. Suspends. */
COIL_EXTERN int coil_jobs_enqueue(coil_jobs *jobs, const char *kind, const void *payload,
                                  size_t len, const coil_jobs_enqueue_opts *opts,
                                  char id[COIL_JOB_ID_SIZE], bool *duplicate);

/* Requests cancellation: a queued job is cancelled at once, a running one is
 * stopped (SIGTERM, then SIGKILL) and then cancelled. Returns 0, -ENOENT,
 * -EALREADY (already final), or a store error. From a task. Suspends. */
COIL_EXTERN int coil_jobs_cancel(coil_jobs *jobs, const char *id);

/* Waits until job `id` is final (succeeded, cancelled or dead), at most
 * `timeout` (COIL_NEVER: no limit). Sets *state (may be NULL) to its state's
 * name ("succeeded", ...; static). Returns 0, -ETIMEDOUT, -ENOENT, a store
 * error, or the interruption. From a task on any loop; only that task
 * waits. Suspends. */
COIL_EXTERN int coil_jobs_wait(coil_jobs *jobs, const char *id, coil_time timeout,
                               const char **state);

/* Scheduler counters. Any thread. */
typedef struct coil_jobs_stats {
    uint64_t claimed;          /* attempts started */
    uint64_t succeeded;        /* attempts that succeeded */
    uint64_t failed;           /* attempts that failed (crashes included) */
    uint64_t crashed;          /* attempts whose worker died */
    uint64_t cancelled;        /* attempts stopped by a cancellation */
    uint64_t requeued_at_start; /* jobs recovered by coil_jobs_start */
    uint64_t store_errors;     /* claims or records the store refused */
    uint64_t enqueued;         /* jobs this node added (duplicates not counted) */
    size_t waiting;            /* claimed, waiting for a worker */
    size_t running;            /* in a worker now */
} coil_jobs_stats;
COIL_EXTERN void coil_jobs_get_stats(coil_jobs *jobs, coil_jobs_stats *out);

/* What a dashboard shows, as JSON into *json (malloc'd):
 *   {"counts": {"queued": N, ..., "dead": N}, "stats": {coil_jobs_stats},
 *    "running": [status documents, up to 25], "failures": [status documents
 *    of the latest failed and dead jobs, up to 10], "recent": [the latest
 *    jobs of any state, up to 15], "nodes": [on PostgreSQL, each node's
 *    {"id", "name", "started", "heartbeat_age_ms", "lost", "running"}]}
 * Also served as GET /jobs/overview. From a task; suspends. Returns 0 or
 * a store error. */
COIL_EXTERN int coil_jobs_overview_json(coil_jobs *jobs, char **json);

/* This node's worker processes, as JSON into *json (malloc'd):
 *   [{"slot", "state" ("down", "starting", "idle", "busy", "retiring"),
 *     "pid", "job" (the store id of the job it runs, or null), "kind",
 *     "jobs_done", "rss_bytes", "cpu_ms"}]
 * RSS and CPU time come from /proc, read on the thread pool. From a task;
 * suspends (5 s at most for the jobs loop). Returns 0, -ETIMEDOUT, -ENOMEM. */
COIL_EXTERN int coil_jobs_workers_json(coil_jobs *jobs, char **json);

/* The stall dump: writes to `out` what the job system holds now, read on
 * its own loop: the scheduler's window (every job it holds, and where each
 * is: ready, in the pool, recording, being given back), the pool's worker
 * slots, every task of the jobs loop with where it is parked, and the
 * store's writer queue. For a test or an operator asking "where is my
 * job?". Any thread but the jobs loop's own; suspends the calling task (a
 * plain thread blocks), 5 s at most. Also served as GET /jobs/dump. */
COIL_EXTERN void coil_jobs_dump(coil_jobs *jobs, FILE *out);

/* Site-recording wrappers (see runtime.h). */
#ifndef COIL_BUILDING
#define coil_pool_start(c, o) COIL__AT(coil_pool_start(c, o))
#define coil_pool_run(p, k, d, n, o, out) COIL__AT(coil_pool_run(p, k, d, n, o, out))
#define coil_pool_stop(p, m) COIL__AT(coil_pool_stop(p, m))
#define coil_jobs_enqueue(j, k, p, n, o, id, d) COIL__AT(coil_jobs_enqueue(j, k, p, n, o, id, d))
#define coil_jobs_cancel(j, id) COIL__AT(coil_jobs_cancel(j, id))
#define coil_jobs_wait(j, id, t, s) COIL__AT(coil_jobs_wait(j, id, t, s))
#endif

#ifdef __cplusplus
}
#endif
#endif /* COIL_JOBS_H */
