/* jobs/store/pg.h: what the PostgreSQL backend's files share (internal).
 *
 *   pg_conn.c   connecting (with a bounded timeout), errors, parameters,
 *               rows to records, the schema and its migration under an
 *               advisory lock, the backend's life and its transactions
 *   pg_write.c  each write as the writer runs it inside its group
 *               transaction, and the NOTIFY of every commit's changes
 *   pg_batch.c  the completes of a transaction, written by one statement
 *   pg_read.c   get, list and counts, on the thread pool, with a small
 *               pool of read connections
 *   pg_node.c   this process as a node: its row and lease, the heartbeat,
 *               the rescue of lapsed nodes' jobs, and LISTEN, on a thread
 *               of its own with its own connection
 *
 * Many processes on many machines share one database. Each is a node: a
 * row of coil_nodes with a lease it renews every heartbeat. A peek here
 * claims (FOR UPDATE SKIP LOCKED): the jobs become `running`, leased to
 * this node, each with an attempt token fresh from a sequence. Every later
 * write of the attempt (start, progress, complete, fail, release) names
 * its token and is refused (-ESTALE) once the token is no longer the job's:
 * a node that lost its lease cannot overwrite the attempt that replaced
 * its own. Tokens live in `owned` (id -> token), under its own lock: the
 * writer adds and drops them, and the node thread takes them all away when
 * it finds its node declared lost.
 *
 * No libpq call runs on a loop thread: the writer, the node thread and the
 * thread pool make them all.
 */
#ifndef COIL_JOBS_STORE_PG_H
#define COIL_JOBS_STORE_PG_H

#include "jobs/store/store_impl.h"

#include <libpq-fe.h>
#include <stdio.h>

enum {
    COIL__PG_SCHEMA_VERSION = 2,
    COIL__PG_NOTIFY_MAX = 7900,     /* bytes of one NOTIFY payload (the limit is 8000) */
};

/* The channel every node LISTENs on. */
#define COIL__PG_CHANNEL "coil_jobs"

/* The token of an attempt this node held and lost (its lease lapsed). */
#define COIL__PG_TAKEN INT64_C(-1)

/* A job this node has claimed and not yet finished. */
typedef struct coil__pg_owned {
    char id[COIL__JOB_ID_SIZE];
    int64_t token;
} coil__pg_owned;

/* The PostgreSQL backend's state (s->impl). */
typedef struct coil__pg {
    char *url;                  /* the connection URL, as given */
    char node_name[96];         /* host:pid (lease_owner of its jobs) */
    int64_t lease_ms, heartbeat_ms;
    char *kinds;                /* "{a,b}" array literal of the kinds claimed, or NULL: any */

    /* The writer thread's own. */
    PGconn *conn;               /* the write connection; NULL while down */
    int64_t retry_at_ms;        /* reconnect no sooner than this (wall ms) */
    int64_t retry_wait_ms;      /* current reconnect backoff */
    bool txn_changed;           /* this transaction changed a row */
    bool txn_may_end;           /* ... ran a write that can end a job */

    atomic_bool up;             /* the last round trip (writer, heartbeat) worked */

    /* The node: its id changes when it registers anew after losing its lease. */
    _Atomic int64_t node_id;

    pthread_mutex_t owned_lock; /* guards owned, nowned */
    coil__pg_owned *owned;
    size_t nowned, cap_owned;
    /* The writer's: this transaction's changes to `owned` (token 0: drop),
     * applied once it commits. */
    coil__pg_owned *pending;
    size_t npending, cap_pending;

    /* The writer's: completes waiting for one statement (pg_batch.c). */
    struct coil__pg_batched *batch;
    size_t nbatch, cap_batch, batch_bytes;

    /* The node thread (pg_node.c). */
    pthread_t node_thread;
    bool node_started;
    int wake_pipe[2];           /* written to stop it */
    PGconn *listen_conn;        /* its own connection */

    /* Read path. */
    pthread_mutex_t rlock;      /* guards readers, nreaders */
    PGconn **readers;
    size_t nreaders;
} coil__pg;

static inline coil__pg *coil__pgs(const coil__store *s) { return s->impl; }

/* An integer as a text parameter. */
typedef struct coil__pg_num {
    char s[24];
} coil__pg_num;

static inline coil__pg_num coil__pg_n64(int64_t v) {
    coil__pg_num n;
    snprintf(n.s, sizeof n.s, "%lld", (long long)v);
    return n;
}

/* ------------------------------------------------------------------ pg_conn.c */

/* Connects to `url`, a URL pg_create has checked (connect_timeout bounded;
 * keepalives on). Returns 0 with *out set, or -ECONNREFUSED/-EACCES/-ENOENT
 * with the reason logged under `what` when `log`. Blocks: not on a loop
 * thread. */
int coil__pg_connect(const char *url, const char *what, bool log, PGconn **out);
/* The negative errno for a failed result (or a NULL one): -ENOTCONN when
 * the connection is gone, -ENOSPC, -EROFS, -EIO, ... */
int coil__pg_err(PGconn *c, const PGresult *res);
/* Runs `sql` with text parameters (NULL: SQL NULL), binary results.
 * Returns the result (the caller clears it) or NULL when it failed, with
 * *err set. `bin` (may be NULL) marks parameters sent as binary, with
 * their lengths in `lens`. Blocks. */
PGresult *coil__pg_exec(PGconn *c, const char *sql, int n, const char *const *params,
                        const int *lens, const int *bin, int *err);
/* Runs a command that returns no rows (or rows left unread). Returns 0 or
 * a negative errno. Blocks. */
int coil__pg_command(PGconn *c, const char *sql, int n, const char *const *params);
/* Binary result columns: an integer of any width, a boolean; text. */
int64_t coil__pg_int(const PGresult *r, int row, int col);
bool coil__pg_bool(const PGresult *r, int row, int col);
const char *coil__pg_text(const PGresult *r, int row, int col);
/* The columns every record read selects, in coil__pg_job order; `blobs`
 * chooses payload and result, else their lengths. */
const char *coil__pg_columns(bool blobs);
/* The NULL-terminated `kinds` as a text[] literal, each quoted with \ and "
 * escaped: {"a","b"} (malloc'd). NULL on ENOMEM. */
char *coil__pg_kinds_literal(const char *const *kinds);
/* The record in `row` of a result whose columns from `first` on are
 * coil__pg_columns(blobs), in one allocation; NULL on ENOMEM. */
coil__job *coil__pg_job(const PGresult *r, int row, int first, bool blobs);
/* Creates or upgrades the schema, under an advisory lock (several nodes
 * may start at once); *found gets the version found (0: none). Returns 0
 * or a negative errno, logged. Blocks. */
int coil__pg_migrate(PGconn *c, int *found);

/* ------------------------------------------------------------------ pg_write.c */

int coil__pg_exec_req(coil__store *s, coil__store_req *r);
int coil__pg_exec_progress(coil__store *s, const coil__progress *p, bool *changed,
                           coil__job_event *ev);
/* Inside the transaction, before COMMIT: NOTIFY of `events`. Returns 0 or
 * a negative errno. */
int coil__pg_notify(PGconn *c, int64_t node, const coil__job_event *events, size_t n);
/* A job's event from a row with the columns of COIL__PG_EVENT_COLUMNS. */
#define COIL__PG_EVENT_COLUMNS "id, kind, state, cancel_requested, attempts, run_at, progress"
void coil__pg_event_from_row(const PGresult *r, int row, coil__job_event *ev);
/* The rescue: every job running on a node whose lease lapsed (or that is
 * marked lost) is retried (failed, due now) if it has attempts left, else
 * dead ("node lost"), or cancelled if a cancel was requested; the nodes are
 * marked lost. With `leaving` (a node id), only that node's jobs, and the
 * cause is "interrupted". Runs inside the caller's transaction; returns the
 * changes in *events (malloc'd, the caller frees) and *nevents. Returns 0
 * or a negative errno. */
int coil__pg_rescue(PGconn *c, int64_t leaving, coil__job_event **events, size_t *nevents);

/* Owned attempts. The token of `id`, 0 if this node holds none, or
 * COIL__PG_TAKEN if it held one that was rescued away (any thread). */
int64_t coil__pg_token(coil__pg *pg, const char *id);
/* Writer thread: takes or drops an attempt when this transaction commits
 * (coil__pg_pending_apply), or not at all if it rolls back
 * (coil__pg_pending_drop). Return 0 or -ENOMEM. */
int coil__pg_own_later(coil__pg *pg, const char *id, int64_t token);
int coil__pg_disown_later(coil__pg *pg, const char *id);
void coil__pg_pending_apply(coil__pg *pg);
void coil__pg_pending_drop(coil__pg *pg);
/* Node thread: takes every owned attempt away (the node lost its lease):
 * each stays known as COIL__PG_TAKEN until its next write is refused
 * (-ESTALE). Returns the ones taken now (malloc'd, the caller frees; NULL
 * on ENOMEM) with their count. */
coil__pg_owned *coil__pg_disown_all(coil__pg *pg, size_t *n);

/* Notes the event of row `row` of `r` (COIL__PG_EVENT_COLUMNS). */
void coil__pg_note_row(coil__store *s, const PGresult *r, int row);
/* A write of an attempt found no row with its token: why? Sets r->err to
 * -ENOENT (no such job), -ESTALE (the job's attempt is another's now, or
 * `token` is COIL__PG_TAKEN), or -EINVAL (not running), unless the job
 * already holds this very outcome (`done_states`, a bit per state, with
 * our token): then 0 and *state_out (may be NULL). Returns the
 * transaction's rc. */
int coil__pg_classify_miss(coil__pg *pg, coil__store_req *r, const char *id, int64_t token,
                           unsigned done_states, coil__job_state *state_out);

/* An enqueue that inserted nothing (its idempotency key exists): answers
 * with the job that has the key. Returns 0 or the transaction's rc. */
int coil__pg_enqueue_existing(coil__store *s, coil__store_req *r);

/* ------------------------------------------------------------------ pg_batch.c */

/* Writer thread, inside the transaction. Enqueues and completes (of an
 * attempt this node holds: `token`) wait in a batch of one kind, which is
 * written by one statement when a request of another kind comes, at
 * COMMIT, or when it is full; r->err and the answer are set then. Returns
 * 0 or the transaction's rc. */
int coil__pg_batch_add(coil__store *s, coil__store_req *r, int64_t token);
/* Whether `r` may join the batch as it is (same kind, or empty batch). */
bool coil__pg_batch_takes(const coil__store *s, const coil__store_req *r);
/* Writes the batch and answers its requests. Returns 0 or the
 * transaction's rc. */
int coil__pg_batch_flush(coil__store *s);
/* Forgets the batch (the transaction rolled back). */
void coil__pg_batch_drop(coil__pg *pg);

/* ------------------------------------------------------------------ pg_read.c */

int coil__pg_read(coil__store *s, coil__store_read *op);
void coil__pg_readers_close(coil__pg *pg);

/* ------------------------------------------------------------------ pg_node.c */

/* Writer thread, at open: registers the node (pg->node_id). Returns 0 or
 * a negative errno. */
int coil__pg_node_register(coil__pg *pg, PGconn *c);
/* Starts and stops the node thread (heartbeat, rescue, LISTEN). */
int coil__pg_node_start(coil__store *s);
void coil__pg_node_stop(coil__store *s);
/* Writer thread, at close: the node leaves (its row is marked lost, and
 * anything it still ran is rescued at once). */
void coil__pg_node_leave(coil__store *s, PGconn *c);

/* pg_followups.c: inside a transaction, writes the follow-ups of every job
 * that is final and still has them pending, appending an event for each
 * job added to *events (realloc'd). Returns 0 or a negative errno. */
int coil__pg_followups(PGconn *c, coil__job_event **events, size_t *nevents);

#endif /* COIL_JOBS_STORE_PG_H */
