/* jobs/store/sqlite.h: what the SQLite backend's files share (internal).
 *
 *   sqlite_open.c   errors, the row reader, the schema and its statements,
 *                   opening DIR, its lock and the database
 *   sqlite_write.c  each write operation as the writer runs it, inside its
 *                   group transaction
 *   sqlite_calls.c  the calls that submit those operations (coil__store_*)
 *   sqlite_read.c   get, list and counts on read connections of their own
 *
 * The schema. One row per job in `jobs`, keyed by `seq` (the rowid: insert
 * order, the cursor of list pages) and by `id` (unique). A partial index
 * holds only runnable candidates (queued and failed), ordered the way peek
 * wants them, so peeking stays cheap however many finished jobs pile up.
 * The durable sequence is a row of `counters` (ids.c).
 *
 * Every state change checks coil__job_transition() (job.c) before it
 * writes; an illegal one is the request's -EINVAL, never a write.
 */
#ifndef COIL_JOBS_STORE_SQLITE_H
#define COIL_JOBS_STORE_SQLITE_H

#include "jobs/store/store_impl.h"

#include <sqlite3.h>

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
    COIL__STMT_FOLLOWUPS_DUE,
    COIL__STMT_FOLLOWUPS_DONE,
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

/* The SQLite backend's state (s->impl). */
typedef struct coil__sqlite {
    char *dir;                  /* the data directory */
    char *db_path;              /* DIR/jobs.db */
    char *results_dir;          /* DIR/results */

    /* The writer thread's own. */
    sqlite3 *db;                /* the write connection */
    sqlite3_stmt *stmt[COIL__STMT_COUNT];
    int lock_fd;                /* DIR/lock, flock'd while open; -1 if not */
    int64_t txn_changes;        /* total changes when the transaction began */
    bool txn_durable;           /* the transaction waits for its fsync */
    int64_t *held;              /* seqs peeked and not yet started (store_held.c) */
    size_t nheld, cap_held;
    coil__held_change *held_log; /* this transaction's changes of `held` */
    size_t nheld_log, cap_held_log;

    /* Read path. */
    pthread_mutex_t rlock;      /* guards readers, nreaders */
    sqlite3 **readers;          /* idle read connections (opts.max_readers) */
    size_t nreaders;
} coil__sqlite;

static inline coil__sqlite *coil__sq(const coil__store *s) { return s->impl; }

enum {
    SCHEMA_VERSION = 2,
    BUSY_TIMEOUT_MS = 5000,
};

#define NO_PAGE_LIMIT 4294967294ull /* SQLite's largest max_page_count */
#define DEFAULT_CONTENT_TYPE "application/octet-stream"

/* A job row as every read selects it; `payload` and `result` are replaced
 * by their lengths in list results. */
#define JOB_COLUMNS(payload, result)                                         \
    "seq, id, kind, " payload ", priority, run_at, idem_key, attempts, "     \
    "max_attempts, backoff_base, backoff_cap, timeout, state, "              \
    "cancel_requested, lease_owner, progress, progress_msg, " result ", "    \
    "result_type, result_path, error_msg, error_signal, error_exit, "        \
    "error_oom, created, started, finished, updated, followups, parent"
#define FULL_COLUMNS JOB_COLUMNS("payload", "result")
#define SUMMARY_COLUMNS JOB_COLUMNS("length(payload)", "length(result)")

/* The record of the row `st` is on (selected with FULL_COLUMNS, or with
 * SUMMARY_COLUMNS when !blobs), in one allocation; NULL on ENOMEM. */
coil__job *coil__job_from_row(const coil__store *s, sqlite3_stmt *st, bool blobs);

/* ------------------------------------------------------------------ sqlite_open.c */

/* The backend's entries (coil__store_backend has their contracts). */
int coil__sqlite_create(coil__store *s, const char *dir);
void coil__sqlite_destroy(coil__store *s);
int coil__sqlite_open(coil__store *s);
void coil__sqlite_close(coil__store *s);
void coil__sqlite_pragma(coil__store *s, coil__store_req *r);
int coil__sqlite_begin(coil__store *s, bool durable);
int coil__sqlite_commit(coil__store *s, bool *changed);
void coil__sqlite_rollback(coil__store *s);
int coil__sqlite_error(coil__store *s, int rc);
bool coil__sqlite_is_full(int rc);
/* sqlite_write.c */
int coil__sqlite_exec(coil__store *s, coil__store_req *r);
int coil__sqlite_exec_progress(coil__store *s, const coil__progress *p, bool *changed,
                               coil__job_event *ev);
/* sqlite_read.c */
int coil__sqlite_read(coil__store *s, coil__store_read *op);
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



#endif /* COIL_JOBS_STORE_SQLITE_H */
