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

enum {
    SCHEMA_VERSION = 1,
    BUSY_TIMEOUT_MS = 5000,
    LIST_DEFAULT = 50,
    LIST_MAX = 1000,
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
    "error_oom, created, started, finished, updated"
#define FULL_COLUMNS JOB_COLUMNS("payload", "result")
#define SUMMARY_COLUMNS JOB_COLUMNS("length(payload)", "length(result)")

/* The record of the row `st` is on (selected with FULL_COLUMNS, or with
 * SUMMARY_COLUMNS when !blobs), in one allocation; NULL on ENOMEM. */
coil__job *coil__job_from_row(const coil__store *s, sqlite3_stmt *st, bool blobs);
/* fsync(2) of a directory. Returns 0 or a negative errno. */
int coil__fsync_dir(const char *path);

#endif /* COIL_JOBS_STORE_SQLITE_H */
