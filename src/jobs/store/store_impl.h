/* jobs/store/store_impl.h: what the store's files share.
 *
 *   writer.c        the store's life (open, close), the writer thread and its
 *                   queue, group commit, parking callers and waking them,
 *                   progress coalescing, watchers.
 *   sqlite_*.c      everything that speaks SQL (sqlite.h has the map):
 *                   opening the database and its schema, each write
 *                   operation as the writer runs it inside a transaction,
 *                   the calls that submit them, and the read path (get,
 *                   list, counts) on the thread pool with read connections.
 *   store_held.c    the jobs a peek handed out and not yet started: the
 *                   fence that keeps a cancel from racing a job to a worker.
 *   ids.c           job ids and the durable sequence.
 *   job.c           the state machine, backoff, validation.
 *
 * A write operation is a coil__store_req on the calling task's stack. Its
 * `op` selects what the writer runs; its exec function (sqlite_write.c,
 * ids.c) returns an SQLite result code: SQLITE_OK when the operation went
 * through the database normally, whatever its own outcome (`err`: 0,
 * -ENOENT, -EINVAL, ...), or an SQLite error that dooms the whole
 * transaction (-ENOSPC, -EIO, ... for every request in it). Exec functions
 * note each change watchers see with coil__store_note_event(), in the order
 * they make them (published only if the transaction commits), and may
 * allocate outputs (claimed jobs) that coil__store_req_discard() frees if
 * the transaction is rolled back after all.
 */
#ifndef COIL_JOBS_STORE_IMPL_H
#define COIL_JOBS_STORE_IMPL_H

#include "jobs/store/store.h"
#include "runtime/internal.h"

#include <sqlite3.h>

/* ------------------------------------------------------------------ requests */

typedef enum coil__store_op {
    /* Control operations: run by the writer outside any transaction. */
    COIL__OP_OPEN,
    COIL__OP_CLOSE,
    COIL__OP_PRAGMA,
    /* Writes: grouped into one transaction with their neighbours. */
    COIL__OP_ENQUEUE,
    COIL__OP_COMPLETE,
    COIL__OP_FAIL,
    COIL__OP_CANCEL,
    COIL__OP_REQUEUE,
    COIL__OP_RELEASE,
    COIL__OP_PEEK,
    COIL__OP_START,
    COIL__OP_NEXT_ID,
    COIL__OP_FLUSH,
} coil__store_op;

/* What COIL__OP_PRAGMA sets. */
enum { COIL__PRAGMA_MAX_PAGES, COIL__PRAGMA_QUERY_ONLY };

typedef struct coil__store_req {
    coil__list link;          /* in the writer's queue, then in its batch */
    coil__wait wait;          /* the caller parks on it */
    coil__xcall done;         /* posted to the caller's loop with the outcome */
    coil_task *task;          /* the caller */
    coil_loop *loop;          /* its loop */
    coil__store *store;       /* the store it was submitted to */
    coil__store_op op;
    bool queued;              /* still in the queue (withdrawable); store lock */
    int err;                  /* outcome: 0 or a negative error */
    union {
        struct {
            const coil__job_spec *spec;   /* borrowed from the caller */
            char id[COIL__JOB_ID_SIZE];   /* the new job's id, made by the caller */
            coil__enqueued *out;
        } enqueue;
        struct {
            const char *id;
            const coil__job_result *res;
            const char *file;             /* result file name, or NULL */
            const char *owner;            /* start it first, leased to owner */
        } complete;
        struct {
            const char *id;
            const coil__job_error *error;
            coil__job_state state;        /* out */
            const char *owner;            /* start it first, leased to owner */
        } fail;
        struct {
            const char *id;
            coil__job_state state;        /* out */
        } cancel;
        struct {
            size_t count;                 /* out */
        } requeue;
        struct {
            const char *id;
            coil__job_state state;        /* out */
        } release;
        struct {
            const uint64_t *skip;         /* seqs to pass over, ascending */
            size_t nskip;
            coil__job **jobs;             /* out: the runnable jobs (caller's array) */
            size_t max;
            size_t max_bytes;             /* payload bytes to stop after; 0: any */
            size_t n;                     /* out */
            int64_t next_run_at;          /* out, when none is runnable */
        } peek;
        struct {
            const char *id;
            const char *owner;
            int attempts;                 /* out: attempts with this one */
        } start;
        struct {
            uint64_t value;               /* out */
        } next_id;
        struct {
            int which;                    /* COIL__PRAGMA_* */
            uint64_t value;
            uint64_t page_count;          /* out: database size before */
        } pragma;
    } u;
} coil__store_req;

/* A progress update waiting for the writer; at most one per job. */
typedef struct coil__progress {
    coil__list link;            /* in store->progress */
    char id[COIL__JOB_ID_SIZE];
    int percent;
    char *message;              /* malloc'd, or NULL */
} coil__progress;

/* One change of the held set inside a transaction (undone on rollback). */
typedef struct coil__held_change {
    int64_t seq;                /* the job */
    bool added;                 /* added (else removed) */
} coil__held_change;

/* Prepared statements of the write connection (sqlite_open.c has the SQL). */
typedef enum coil__stmt {
    COIL__STMT_BEGIN,
    COIL__STMT_COMMIT,
    COIL__STMT_ROLLBACK,
    COIL__STMT_FIND_KEY,
    COIL__STMT_INSERT,
    COIL__STMT_LOOKUP,
    COIL__STMT_COMPLETE,
    COIL__STMT_FAIL,
    COIL__STMT_CANCEL_NOW,
    COIL__STMT_CANCEL_FLAG,
    COIL__STMT_REQUEUE,
    COIL__STMT_RELEASE,
    COIL__STMT_TOP_PRIORITY,
    COIL__STMT_NEXT_PRIORITY,
    COIL__STMT_DUE_AT_PRIORITY,
    COIL__STMT_NEXT_AT_PRIORITY,
    COIL__STMT_BY_SEQ,
    COIL__STMT_START,
    COIL__STMT_PROGRESS,
    COIL__STMT_NEXT_ID,
    COIL__STMT_COUNT
} coil__stmt;

struct coil__store {
    char *dir;                  /* the data directory */
    char *db_path;              /* DIR/jobs.db */
    char *results_dir;          /* DIR/results */
    coil__store_opts opts;      /* with defaults filled in */
    pthread_t writer;           /* the writer thread */

    pthread_mutex_t lock;       /* guards the fields down to `watchers` */
    pthread_cond_t work;        /* signalled when work arrives for an idle writer */
    coil__list queue;           /* coil__store_req waiting for the writer (FIFO) */
    size_t nqueued;             /* requests in `queue` */
    coil__list progress;        /* coil__progress waiting for the writer */
    bool writer_idle;           /* the writer waits on `work` */
    bool closing;               /* close() was called: refuse new work */
    coil__list watchers;        /* coil__store_watcher */

    /* The writer thread's own. */
    sqlite3 *db;                /* the write connection */
    sqlite3_stmt *stmt[COIL__STMT_COUNT];
    int lock_fd;                /* DIR/lock, flock'd while open; -1 if not */
    uint64_t rng;               /* backoff jitter */
    coil__job_event *events;    /* a commit's changes, for the watchers */
    size_t nevents, cap_events;
    int64_t *held;              /* seqs peeked and not yet started (store_held.c) */
    size_t nheld, cap_held;
    coil__held_change *held_log; /* this transaction's changes of `held` */
    size_t nheld_log, cap_held_log;

    /* Read path. */
    pthread_mutex_t rlock;      /* guards readers, nreaders */
    sqlite3 **readers;          /* idle read connections (opts.max_readers) */
    size_t nreaders;
    atomic_size_t reads;        /* reads in progress (must be 0 at close) */

    /* Stats (coil__store_stats), written by the writer. */
    _Atomic uint64_t commits, writes, failed_commits, largest_batch;
    _Atomic uint64_t progress_written, progress_superseded;
};

/* ------------------------------------------------------------------ writer.c */

/* Queues `r` (op and arguments set) and parks the calling task until the
 * writer has its outcome. Returns r->err, -EPERM outside a task, -EPIPE
 * once the store is closing, or the caller's interruption if it came while
 * the request was still queued (then nothing of it was written). An
 * interruption after the writer took it is left pending: the call returns
 * the true outcome. Suspends. */
int coil__store_submit(coil__store *s, coil__store_req *r);

/* Writer thread, inside a transaction: keeps a change for the watchers,
 * published when (and only if) the transaction commits. */
void coil__store_note_event(coil__store *s, const coil__job_event *ev);

/* ------------------------------------------------------------------ sqlite_*.c */

/* Writer thread. Opens DIR, its lock and the database, creates or checks
 * the schema, prepares the statements. Returns 0 or a negative error, with
 * everything undone. */
int coil__store_db_open(coil__store *s);
/* Writer thread. Finalizes, closes, unlocks. */
void coil__store_db_close(coil__store *s);
/* Writer thread. Runs a COIL__OP_PRAGMA request; sets r->err. */
void coil__store_db_pragma(coil__store *s, coil__store_req *r);
/* Writer thread, inside a transaction: runs a write request (see above). */
int coil__store_exec(coil__store *s, coil__store_req *r);
/* Writer thread, inside a transaction: applies a progress update. Sets
 * *changed and fills *ev when the job was running. Returns an SQLite code. */
int coil__store_exec_progress(coil__store *s, const coil__progress *p, bool *changed,
                              coil__job_event *ev);
/* Frees what exec allocated for `r`, after a rollback. */
void coil__store_req_discard(coil__store_req *r);
/* Steps a statement that returns no rows, then resets it. Returns an
 * SQLite code (SQLITE_OK for done). */
int coil__stmt_run(sqlite3_stmt *st);
/* Maps an SQLite result on `db` to a negative errno (-EROFS, -ENOSPC, -EIO,
 * ...), using the OS error behind it where there is one. */
int coil__sqlite_err(sqlite3 *db, int rc);
/* Closes the idle read connections. */
void coil__store_readers_close(coil__store *s);

/* ------------------------------------------------------------------ store_held.c */

/* Writer thread. Whether a peek handed out `seq` and it is not started yet. */
bool coil__held_has(const coil__store *s, int64_t seq);
/* Writer thread, inside a transaction: adds or removes `seq` (either is
 * idempotent), logged for coil__held_txn_undo. Return SQLITE_OK or
 * SQLITE_NOMEM (then nothing changed). */
int coil__held_add(coil__store *s, int64_t seq);
int coil__held_remove(coil__store *s, int64_t seq);
/* Writer thread: a transaction begins (its log is emptied), or rolled back
 * (its changes are undone). */
void coil__held_txn_begin(coil__store *s);
void coil__held_txn_undo(coil__store *s);
/* Frees the set. */
void coil__held_free(coil__store *s);

/* ------------------------------------------------------------------ ids.c */

/* Writer thread, inside a transaction: COIL__OP_NEXT_ID. */
int coil__ids_exec_next(coil__store *s, coil__store_req *r);

#endif /* COIL_JOBS_STORE_IMPL_H */
