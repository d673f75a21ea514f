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
 * blocking C (no loop). `payload` is the submitter's bytes, borrowed for the
 * call, followed by a NUL byte that `len` does not count (JSON text can be
 * parsed in place). Returns 0 on success or a negative errno-style code,
 * which becomes the outcome's err (a positive return is reported as -EIO).
 * Memory the handler leaves allocated stays with the worker process, which
 * runs many jobs: free it. */
typedef int (*coil_job_fn)(const void *payload, size_t len, coil_job_ctx *ctx);

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

/* Site-recording wrappers (see runtime.h). */
#ifndef COIL_BUILDING
#define coil_pool_start(c, o) COIL__AT(coil_pool_start(c, o))
#define coil_pool_run(p, k, d, n, o, out) COIL__AT(coil_pool_run(p, k, d, n, o, out))
#define coil_pool_stop(p, m) COIL__AT(coil_pool_stop(p, m))
#endif

#ifdef __cplusplus
}
#endif
#endif /* COIL_JOBS_H */
