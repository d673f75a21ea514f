/* jobs/store/store.h: the durable job store (internal to libcoil).
 *
 * A store is one data directory:
 *
 *     DIR/jobs.db        SQLite database, WAL mode, synchronous=FULL
 *     DIR/jobs.db-wal    its write-ahead log (every commit is fsync'd here)
 *     DIR/results/       result files too large to keep inline
 *     DIR/lock           flock'd while a process has the store open
 *
 * Writes. Every write goes through one writer thread that owns the only
 * write connection (writer.c). A write call builds a request on the calling
 * task's stack, queues it and parks the task; the loop goes on. The writer
 * takes every request queued so far, runs them all in ONE transaction
 * (group commit: one fsync for many writes), and only after COMMIT has
 * returned, that is after the fsync, wakes each caller with its outcome. A
 * call that returns 0 is therefore on disk. A commit that fails is rolled
 * back whole: none of its requests is acknowledged and nothing of them
 * remains.
 *
 * Reads (get, list, counts) run on the thread pool (coil_to_thread) with
 * read connections of their own; WAL lets them read while the writer
 * writes. A read sees every write acknowledged before it started.
 *
 * Delivery is at least once: peek() hands a job to a worker, start() marks
 * it running with a lease; if the process dies, requeue_running() at the next
 * start puts the job back in the queue. docs/jobs.md ("Store and
 * guarantees") states exactly what is durable when.
 *
 * Threads. Every function that suspends must be called from a task (else
 * -EPERM); the store may be used from several loops at once, and results
 * come back to the caller's own loop. Functions that do not suspend are safe
 * from any thread unless stated otherwise.
 *
 * Times are wall-clock milliseconds since the Unix epoch (they are stored
 * and must survive restarts); 0 means "not yet" in timestamps.
 */
#ifndef COIL_JOBS_STORE_H
#define COIL_JOBS_STORE_H

#include "coil/runtime.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------ jobs */

/* A job's state. The values are stored in the database: never renumber.
 * The legal transitions (job.c holds them as a table):
 *
 *     from      to         by
 *     queued    running    start (or a claim, on PostgreSQL)
 *     queued    cancelled  cancel (not while a peek holds it: then it is
 *                          flagged, and release() cancels it)
 *     running   succeeded  complete
 *     running   failed     fail, with attempts left (retried from run_at)
 *     running   dead       fail, with no attempts left
 *     running   cancelled  fail after a cancel request (the pool stopped
 *                          it), or requeue_running or release of such a job
 *     running   dead       requeue_running, with no attempts left
 *     running   queued     requeue_running, at start (its process died);
 *                          release (claimed, never ran)
 *     failed    running    start, from run_at on
 *     failed    cancelled  cancel
 *
 * succeeded, cancelled and dead are final. */
typedef enum coil__job_state {
    COIL__JOB_QUEUED = 0,    /* waiting to run, from run_at on */
    COIL__JOB_RUNNING = 1,   /* claimed by a worker (leased) */
    COIL__JOB_SUCCEEDED = 2, /* final: the result is stored */
    COIL__JOB_FAILED = 3,    /* the last attempt failed; retried from run_at */
    COIL__JOB_CANCELLED = 4, /* final */
    COIL__JOB_DEAD = 5,      /* final: failed with no attempts left */
    COIL__JOB_NSTATES
} coil__job_state;

/* The stores' SQL writes the states as these numbers ("state IN (0, 3)"),
 * and the files on disk keep them: they never change. */
_Static_assert(COIL__JOB_QUEUED == 0 && COIL__JOB_RUNNING == 1 && COIL__JOB_SUCCEEDED == 2 &&
                   COIL__JOB_FAILED == 3 && COIL__JOB_CANCELLED == 4 && COIL__JOB_DEAD == 5 &&
                   COIL__JOB_NSTATES == 6,
               "the job states' numbers are in the stores' SQL and on disk");

/* Longest kind name (bytes, without the NUL) and idempotency key. */
#define COIL__JOB_KIND_MAX 63
#define COIL__JOB_KEY_MAX 255
/* A job id: 32 lowercase hex digits (128 random bits) and a NUL. */
#define COIL__JOB_ID_SIZE 33

/* Defaults for the zero fields of a coil__job_spec. */
#define COIL__JOB_DEFAULT_MAX_ATTEMPTS 3
#define COIL__JOB_DEFAULT_BACKOFF_BASE_MS 1000
#define COIL__JOB_DEFAULT_BACKOFF_CAP_MS (3600 * 1000)

/* What to enqueue. Every pointer is borrowed for the duration of the call. */
typedef struct coil__job_spec {
    const char *kind;       /* required: 1..COIL__JOB_KIND_MAX printable bytes */
    const void *payload;    /* the job's input, usually JSON (may be NULL if len 0) */
    size_t payload_len;
    int priority;           /* higher runs first */
    int64_t run_at;         /* not before this time (ms); 0: now */
    const char *idem_key;   /* idempotency key, 1..COIL__JOB_KEY_MAX bytes, or NULL */
    int max_attempts;       /* attempts before dead; 0: the default (3) */
    int64_t backoff_base_ms; /* first retry delay bound; 0: default (1 s) */
    int64_t backoff_cap_ms;  /* largest retry delay; 0: default (1 h) */
    int64_t timeout_ms;     /* per attempt, enforced by the pool; 0: none */
    const char *followups;  /* NULL, or the jobs to enqueue when this one ends
                               (followups.c checks the JSON) */
    const char *parent;     /* a follow-up's parent job id, or NULL */
} coil__job_spec;

/* What enqueue answers. */
typedef struct coil__enqueued {
    char id[COIL__JOB_ID_SIZE]; /* the job's id (the first job's, for a duplicate) */
    coil__job_state state;      /* its state now */
    bool duplicate;             /* the idempotency key existed: nothing was added */
} coil__enqueued;

/* How an attempt failed, as the pool saw it. Borrowed during the call. */
typedef struct coil__job_error {
    const char *message;    /* human-readable, may be NULL */
    int signal;             /* the signal that killed the worker, or 0 */
    int exit_status;        /* the worker's exit status, or -1 if none */
    bool oom;               /* the kernel's OOM killer killed it */
    bool permanent;         /* another attempt cannot help: dead now */
} coil__job_error;

/* A successful result: inline bytes, or a file already in DIR/results/.
 * Borrowed during the call. */
typedef struct coil__job_result {
    const void *data;         /* result bytes (NULL with len 0: none) */
    size_t len;
    const char *content_type; /* NULL: "application/octet-stream" */
    const char *file;         /* or: a file NAME inside DIR/results/ (no '/'),
                                 written and fsync'd by the caller; then data
                                 must be NULL */
} coil__job_result;

/* A job record, as read back. One allocation: coil__job_free() frees the
 * struct and every string and buffer it points to. */
typedef struct coil__job {
    uint64_t seq;             /* insertion order; list cursors are built on it */
    char id[COIL__JOB_ID_SIZE]; /* 32 hex digits */
    char *kind;               /* the handler's name */
    void *payload;            /* input bytes, NUL-terminated (not counted in
                                 payload_len); NULL in list results */
    size_t payload_len;       /* set in list results too */
    int priority;             /* higher runs first */
    int64_t run_at;           /* not runnable before (ms) */
    char *idem_key;           /* idempotency key, NULL if none */
    int attempts;             /* attempts started (claims) */
    int max_attempts;         /* attempts allowed before dead */
    int64_t backoff_base_ms;  /* retry delay bound of the first retry */
    int64_t backoff_cap_ms;   /* largest retry delay bound */
    int64_t timeout_ms;       /* per attempt; 0: none */
    coil__job_state state;    /* where it is in the state machine */
    bool cancel_requested;    /* cancel() while running: the pool must stop it */
    char *lease_owner;        /* who runs it while running, else NULL */
    int progress;             /* 0..100 */
    char *progress_msg;       /* NULL if none */
    void *result;             /* inline result bytes, NUL-terminated; NULL if
                                 none or in a file, and in list results */
    size_t result_len;        /* inline bytes (set in list results too) */
    char *result_type;        /* content type, NULL if no result */
    char *result_path;        /* full path of the result file, or NULL */
    char *error_msg;          /* last failure, NULL if none */
    int error_signal;         /* signal of the last failure, 0 if none */
    int error_exit;           /* exit status of the last failure, -1 if none */
    bool error_oom;           /* the last failure was an OOM kill */
    int64_t created;          /* ms; timestamps are 0 until they happen */
    int64_t started;          /* the latest attempt's start */
    int64_t finished;         /* reaching a final state */
    int64_t updated;          /* the latest change of any kind */
    char *followups;          /* the follow-up specs (JSON), NULL if none */
    char *parent;             /* a follow-up's parent id, NULL if not one */
} coil__job;

/* Frees a record (NULL is fine). */
void coil__job_free(coil__job *job);

/* Names: "queued", "running", ...; NULL for an invalid state. */
const char *coil__job_state_name(coil__job_state state);
/* Parses a name. Returns the state, or -EINVAL. */
int coil__job_state_parse(const char *name);
/* Whether the state is final (succeeded, cancelled, dead). */
bool coil__job_state_final(coil__job_state state);
/* Whether the state machine allows from -> to. */
bool coil__job_can_transition(coil__job_state from, coil__job_state to);
/* Returns 0 if from -> to is legal, else -EINVAL. */
int coil__job_transition(coil__job_state from, coil__job_state to);
/* The state a failed attempt of a running job leads to: cancelled if a
 * cancel was asked, failed (retried) with attempts left, else dead. */
coil__job_state coil__job_failure_state(bool cancel_requested, int attempts, int max_attempts);

/* Retry delay after failed attempt number `attempt` (1 for the first),
 * exponential with full jitter: uniform in [0, min(cap, base * 2^(attempt-1))]
 * ms. `rng` is the caller's generator state (coil__rng_next). */
int64_t coil__job_backoff_ms(unsigned attempt, int64_t base_ms, int64_t cap_ms, uint64_t *rng);
/* now_ms + coil__job_backoff_ms(...): when the retry may run. */
int64_t coil__job_next_run_at(int64_t now_ms, unsigned attempt, int64_t base_ms, int64_t cap_ms,
                              uint64_t *rng);
/* A small fast generator (splitmix64); not for secrets. */
uint64_t coil__rng_next(uint64_t *state);

/* ------------------------------------------------------------------ follow-ups (followups.c) */

/* A job's follow-ups are jobs enqueued when it reaches a final state, in
 * the transaction that records that state: a crash cannot come between
 * the two (an outbox). They are stored with the job as a JSON array:
 *
 *   [{"kind": K, "when": "success" | "failure" | "done", "payload": {...},
 *     "max_attempts": N, "backoff_ms": N, "backoff_cap_ms": N,
 *     "followups": [...]}, ...]
 *
 * A follow-up's own "followups" become the follow-ups of its job: a chain,
 * COIL__FOLLOWUPS_DEPTH links at most.
 * "failure" is dead or cancelled; "done" is any final state. A follow-up's
 * payload gets a "parent" member: {"id", "kind", "status", "attempts",
 * "error", "finished"}. Its idempotency key is "followup:PARENT:INDEX",
 * so writing the same parent's follow-ups twice adds nothing. */
enum { COIL__FOLLOWUPS_MAX = 16, COIL__FOLLOWUPS_DEPTH = 4 };

/* Checks a follow-ups array. Returns 0, or -EINVAL with the reason in msg. */
int coil__followups_check(const char *json, char *msg, size_t cap);

/* The parent as its follow-ups see it. */
typedef struct coil__followup_parent {
    const char *id, *kind;
    coil__job_state state;      /* final */
    int attempts;
    const char *error;          /* NULL if none */
    int64_t finished;           /* ms */
} coil__followup_parent;

/* One follow-up to insert: a spec (kind, payload, key, limits, parent). */
typedef int (*coil__followup_fn)(void *arg, const coil__job_spec *child);

/* Calls fn for each follow-up of `json` that `p`'s final state triggers,
 * in order, and stops at the first non-zero return, which it returns.
 * Returns -ENOMEM if a payload cannot be built; a malformed array (the
 * store holds only checked ones) triggers nothing. */
int coil__followups_each(const char *json, const coil__followup_parent *p, coil__followup_fn fn,
                         void *arg);

/* Checks a spec: kind, key, sizes and limits. Returns 0 or -EINVAL. */
int coil__job_spec_check(const coil__job_spec *spec);

/* Wall-clock time in ms since the epoch. */
int64_t coil__wall_ms(void);

/* ------------------------------------------------------------------ ids (ids.c) */

/* Fills `out` with a new random job id (getrandom; 32 hex digits). Returns
 * 0 or a negative errno. Does not suspend. */
int coil__job_id_new(char out[COIL__JOB_ID_SIZE]);
/* Whether `s` has the shape of a job id. */
bool coil__job_id_valid(const char *s);

/* ------------------------------------------------------------------ store */

typedef struct coil__store coil__store;

typedef struct coil__store_opts {
    size_t inline_result_max; /* larger results go to files; 0: 64 KiB (SQLite) */
    size_t max_readers;       /* read connections kept open; 0: 4 */
    /* PostgreSQL only. */
    int64_t lease_ms;         /* a node silent this long is presumed dead; 0: 5 s */
    int64_t heartbeat_ms;     /* how often a node renews its lease; 0: 1 s */
    const char *const *kinds; /* NULL-terminated kinds this node claims; NULL: any */
} coil__store_opts;

/* Opens (creating if needed) the store at `where`, and starts its writer.
 * `where` chooses the backend:
 *
 *     DIR, sqlite:DIR                    the embedded store in a directory
 *     postgres://..., postgresql://...   PostgreSQL (libpq's URL syntax)
 *
 * `opts` may be NULL. Returns 0 with *out set, or -EBUSY if another store
 * has DIR open (this or another process), -EROFS/-EACCES/-ENOSPC/-EIO if
 * it cannot be created or written, -ECONNREFUSED (the server cannot be
 * reached) or -EACCES (authentication failed) on PostgreSQL, -EINVAL for a
 * malformed `where`, -EPERM outside a task. Suspends. */
int coil__store_open(const char *where, const coil__store_opts *opts, coil__store **out);

/* Creates or upgrades the schema of the store at `where` (as for
 * coil__store_open) and does nothing else: no writer, no node, no jobs
 * requeued. *from gets the version found (0: there was none), *to this
 * build's. Safe while other processes start on the same PostgreSQL
 * database; -EBUSY while a process has an SQLite DIR open (it made its
 * schema when it opened). Errors as coil__store_open's, logged. A plain
 * thread; blocks. */
int coil__store_migrate(const char *where, int *from, int *to);

/* Whether the database answered the last time it was asked (PostgreSQL:
 * the writer's and the heartbeat's last round trips); always true on
 * SQLite. Any thread. */
bool coil__store_available(const coil__store *s);

/* Whether `where` names PostgreSQL (a postgres:// or postgresql:// URL). */
bool coil__store_where_is_postgres(const char *where);

/* Which backend the store uses: "sqlite" or "postgres". */
const char *coil__store_backend_name(const coil__store *s);

/* How often a scheduler should look for runnable jobs it was not told of:
 * 0 (never: every change reaches the watchers) on SQLite; on PostgreSQL a
 * coarse poll, for a notification lost while the connection was down. */
coil_time coil__store_poll_interval(const coil__store *s);
/* Finishes every write queued so far (pending progress included), stops the
 * writer and frees the store. No read may be in progress, and every watcher
 * should be unwatched first (one left behind is detached: unwatch then only
 * frees it). Writes submitted once close has started get -EPIPE. Returns 0
 * or the error of the final close. Suspends; cannot be interrupted. */
int coil__store_close(coil__store *s);

/* The directory where result files live (DIR/results). Valid while open. */
const char *coil__store_results_dir(const coil__store *s);

/* Enqueues a job durably. With an idempotency key that already exists,
 * nothing is written and *out describes the existing job (duplicate =
 * true). Returns 0, -EINVAL for a bad spec, or a write error (-EROFS,
 * -ENOSPC, -EIO, -ENOMEM; then nothing was written). Suspends. */
int coil__store_enqueue(coil__store *s, const coil__job_spec *spec, coil__enqueued *out);

/* The scheduler's way to claim (see jobs/service/scheduler.c): peek, then start.
 *
 * Reads up to `max` runnable jobs in claim order (state queued or failed
 * with run_at <= now, highest priority first, then oldest run_at, then
 * oldest enqueue) without changing them,
 * passing over the jobs whose seq is in `skip` (ascending; the caller holds
 * those already), and stopping once their payloads add up to `max_bytes`
 * (0: no limit; the first job is read whatever its size). Runs in the
 * writer's order: it sees every write submitted before it. The jobs read
 * are held (store_held.c) until start() or release(): a cancel meanwhile
 * only flags them. Returns 0 with jobs[0..*n) set (*n >= 1; the caller frees
 * each), -EAGAIN if nothing is runnable now, with *next_run_at (may be NULL) set to
 * the earliest run_at of a waiting job, or 0 if there is none, or an error.
 * Suspends.  *
 * On PostgreSQL, where many nodes share the queue, a peek claims: the jobs
 * it returns are `running` at once, leased to this node (FOR UPDATE SKIP
 * LOCKED, so no two nodes get the same job), each with a fresh attempt
 * token; `skip` is not needed and ignored. start() then only confirms the
 * attempt. Every write of an attempt (start, complete, fail, release,
 * run_complete, run_fail) whose token is no longer the job's, because the
 * node lost its lease and the job was rescued, returns -ESTALE and writes
 * nothing. */
int coil__store_peek(coil__store *s, const uint64_t *skip, size_t nskip, coil__job **jobs,
                     size_t max, size_t max_bytes, size_t *n, int64_t *next_run_at);

/* A kind's limit for a peek: at most `max` of its jobs may run at once.
 * `taken` is how many the caller holds or runs now: on SQLite, which one
 * process owns, that is all there is; on PostgreSQL the jobs of the kind
 * running on every node are counted in the claim's transaction instead,
 * under a lock that claims with limits share, and `taken` is ignored. */
enum { COIL__PEEK_LIMITS_MAX = 64 }; /* limits a peek takes at most */

typedef struct coil__peek_limit {
    const char *kind;
    unsigned max;
    unsigned taken;
} coil__peek_limit;

/* coil__store_peek, passing over the jobs of kinds at their limit and
 * taking no more of a kind than its room. With nothing left to take it
 * returns -EAGAIN, *next_run_at 0 for a kind at its limit (the caller is
 * woken when a job ends). */
int coil__store_peek_limited(coil__store *s, const uint64_t *skip, size_t nskip,
                             const coil__peek_limit *limits, size_t nlimits, coil__job **jobs,
                             size_t max, size_t max_bytes, size_t *n, int64_t *next_run_at);
/* Starts one job: queued or failed -> running, leased to `owner`, attempts
 * incremented (*attempts, may be NULL, gets the new count), no longer held;
 * a cancel flag set while it was held stays set. Returns 0,
 * -ENOENT, -EINVAL if it is not runnable any more (cancelled meanwhile), or
 * a write error. Suspends. */
int coil__store_start(coil__store *s, const char *id, const char *owner, int *attempts);

/* Marks a running job succeeded with its result. Results larger than the
 * store's inline limit are written to a file in DIR/results/ first (on the
 * thread pool, fsync'd). Returns 0, -ENOENT, -EINVAL if the job is not
 * running, or a write error. Suspends. */
int coil__store_complete(coil__store *s, const char *id, const coil__job_result *res);

/* Records a failed attempt of a running job: if a cancel was requested it
 * becomes cancelled; else, with attempts < max_attempts, failed (retried at
 * a backoff run_at); else dead. Crashes, timeouts and kills all count.
 * *state_out (may be NULL) gets the new state. Returns 0, -ENOENT, -EINVAL if
 * not running, or a write error. Suspends. */
int coil__store_fail(coil__store *s, const char *id, const coil__job_error *err,
                     coil__job_state *state_out);

/* complete() and fail() of a job whose start was never written (a
 * scheduler's job that ended before its start() got to the writer): the
 * job is started first, leased to `owner`, then completed or failed, in
 * one write. Returns what start() would (-EINVAL: not runnable any more,
 * cancelled meanwhile), or what complete()/fail() would. Suspends. */
int coil__store_run_complete(coil__store *s, const char *id, const char *owner,
                             const coil__job_result *res);
int coil__store_run_fail(coil__store *s, const char *id, const char *owner,
                         const coil__job_error *err, coil__job_state *state_out);

/* Cancels a job. Queued or failed: cancelled at once. Running, or held
 * by a peek (it may be in a worker already): flagged cancel_requested
 * (watchers see it; the pool stops the worker and reports the end with
 * fail() or release(), which make it cancelled), the state stays as it is
 * and *state_out says running.
 * *state_out (may be NULL) gets the state after the call. Returns 0,
 * -ENOENT, -EALREADY if it was already final (then *state_out is that state),
 * or a write error. Suspends. */
int coil__store_cancel(coil__store *s, const char *id, coil__job_state *state_out);

/* Records progress (0..100, clamped) and a message (may be NULL; cut at 1 KiB)
 * of a running job. Best effort and coalesced: the update is written with
 * the writer's next transaction; a later update of the same job not yet
 * written replaces it; an update of a job that is not running is ignored.
 * Progress costs no fsync of its own: it becomes durable with the next
 * fsync'd commit or at close. Returns 0, -EINVAL (malformed id), -ENOMEM or
 * -EPIPE. Does not suspend; any thread. */
int coil__store_progress(coil__store *s, const char *id, int percent, const char *message);

/* Waits until everything submitted before is written (progress included:
 * then reads see it). Returns 0 or the commit's error. Suspends. */
int coil__store_flush(coil__store *s);

/* At-least-once recovery, to call once at start, before anything is claimed:
 * every job left running by a previous process is put back to queued (its
 * interrupted attempt still counts in attempts), made dead if that was its
 * last attempt, or made cancelled if a cancel had been requested; so is a
 * queued one flagged while held. *count (may be NULL) gets how many. Returns 0
 * or a write error. Suspends. */
int coil__store_requeue_running(coil__store *s, size_t *count);

/* Gives back a job that never reached a worker. A running one (claimed
 * ahead, then not run: a shutdown, or a cancel before its turn) is queued
 * again with its attempt uncounted. A peeked one not started is no longer
 * held, and stays as it is. Either is cancelled instead if a cancel was
 * requested. *state_out (may be NULL) gets the new state. Returns 0,
 * -ENOENT, -EINVAL if it is neither running nor held, or a write error.
 * Suspends. */
int coil__store_release(coil__store *s, const char *id, coil__job_state *state_out);

/* The durable sequence: the next value of 1, 2, 3, ... Every value is
 * returned once (after its commit is on disk), none is skipped, across
 * restarts. Returns 0 or a write error (then no value was used). Suspends. */
int coil__store_next_id(coil__store *s, uint64_t *out);

/* Reads one job. Returns 0 with *out set (the caller frees it), or -ENOENT
 * (unknown or malformed id). Suspends. */
int coil__store_get(coil__store *s, const char *id, coil__job **out);

/* List filters and pages, newest first. */
typedef struct coil__job_filter {
    int state;          /* a coil__job_state, or -1 for any */
    const char *kind;   /* NULL: any */
    size_t limit;       /* 0: 50; at most 1000 */
    uint64_t cursor;    /* 0: from the newest; else a next_cursor */
    const char *parent; /* NULL: any; else only this job's follow-ups */
} coil__job_filter;

typedef struct coil__job_list {
    coil__job **jobs;     /* n records, without payload and result bytes */
    size_t n;
    uint64_t next_cursor; /* pass it to get the next page; 0: this was the last */
} coil__job_list;

/* Lists jobs. Returns 0 with *out filled (free with coil__job_list_free),
 * or -EINVAL. Suspends. */
int coil__store_list(coil__store *s, const coil__job_filter *f, coil__job_list *out);
void coil__job_list_free(coil__job_list *l);

/* The nodes sharing the store, as JSON into *json (malloc'd):
 *   [{"id", "name", "started", "heartbeat_age_ms", "lost", "running"}]
 * (SQLite: one process, no nodes: []). Returns 0 or an error. Suspends. */
int coil__store_nodes(coil__store *s, char **json);

/* Number of jobs in each state. Returns 0 or an error. Suspends. */
int coil__store_counts(coil__store *s, uint64_t counts[COIL__JOB_NSTATES]);

/* ------------------------------------------------------------------ watching */

/* One change, as committed. */
typedef struct coil__job_event {
    char id[COIL__JOB_ID_SIZE];        /* the job */
    char kind[COIL__JOB_KIND_MAX + 1]; /* its kind */
    coil__job_state state;   /* state after the change */
    bool cancel_requested;   /* running, and the pool must stop it */
    bool lost;               /* this node's attempt is no longer the job's (its
                                lease lapsed and another node took the job):
                                stop it; its outcome will be refused. Only
                                ever delivered on the node that lost it. */
    int progress;            /* 0..100 */
    char message[128];       /* progress message (progress events), truncated; else "" */
    int attempts;            /* attempts started so far */
    int64_t run_at;          /* when a queued or failed job becomes runnable */
} coil__job_event;

/* Called on the watcher's loop thread, as a plain callback (it must not
 * suspend), with the changes of one commit in commit order. `events` is
 * valid during the call only. */
typedef void (*coil__store_watch_fn)(const coil__job_event *events, size_t n, void *arg);

/* Fills `ev` with these fields, the others zero. */
void coil__job_event_init(coil__job_event *ev, const char *id, const char *kind,
                          coil__job_state state, int attempts, int64_t run_at);

typedef struct coil__store_watcher coil__store_watcher;

/* Registers `fn` for every committed change of state or progress (enqueue,
 * claim, complete, fail, cancel, progress; not requeue_running). It is
 * called on the calling thread's loop. Returns 0 with *out set, -ENOMEM, or
 * -EPERM without a loop. Unwatch before that loop closes. Does not suspend. */
int coil__store_watch(coil__store *s, coil__store_watch_fn fn, void *arg,
                      coil__store_watcher **out);
/* Stops the callbacks: none runs after this returns. Call on the watcher's
 * loop thread. Does not suspend. */
void coil__store_unwatch(coil__store_watcher *w);

/* ------------------------------------------------------------------ stats, faults */

typedef struct coil__store_stats {
    uint64_t commits;        /* fsync'd transactions that changed something */
    uint64_t writes;         /* requests acknowledged by those commits */
    uint64_t failed_commits; /* transactions rolled back on a storage error */
    uint64_t largest_batch;  /* most requests in one transaction */
    uint64_t progress_written;    /* progress updates written */
    uint64_t progress_superseded; /* replaced before they were written */
    size_t queued;           /* requests waiting for the writer now */
} coil__store_stats;

/* Any thread. */
void coil__store_get_stats(coil__store *s, coil__store_stats *out);

/* Fault injection, for tests and drills. Caps the database at `pages`
 * pages (PRAGMA max_page_count; 0: no cap; a cap below the current size
 * acts as the current size) so that writes that need more fail with
 * -ENOSPC. *page_count (may be NULL) gets the database's size in pages
 * before the call. Returns 0 or an error. Suspends. */
int coil__store_set_max_pages(coil__store *s, uint64_t pages, uint64_t *page_count);
/* Makes writes fail with -EROFS (PRAGMA query_only) until turned off.
 * Returns 0 or an error. Suspends. */
int coil__store_set_readonly(coil__store *s, bool readonly);

#endif /* COIL_JOBS_STORE_H */
