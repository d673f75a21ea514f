/* jobs/store/store_sqlite.c: the job store's SQL.
 *
 * Three parts, in this order:
 *
 *   - opening: DIR and DIR/results are created, DIR/lock is flock'd (one
 *     process per store: a second gets -EBUSY), the database is put in WAL
 *     mode with synchronous=FULL (every commit fsyncs the WAL), the schema
 *     is created or checked, and the writer's statements are prepared once;
 *   - the write operations, each an exec function the writer thread runs
 *     inside its group transaction (see store_impl.h for their contract),
 *     and the calls that submit them;
 *   - the read path: get, list and counts run on the thread pool, each on a
 *     read connection taken from a small pool of them (WAL readers never
 *     wait for the writer).
 *
 * The schema. One row per job in `jobs`, keyed by `seq` (the rowid: insert
 * order, the cursor of list pages) and by `id` (unique). A partial index
 * holds only runnable candidates (queued and failed), ordered the way claim
 * wants them, so claiming stays cheap however many finished jobs pile up.
 * The durable sequence is a row of `counters` (ids.c).
 *
 * Every state change checks coil__job_transition() (job.c) before it
 * writes; an illegal one is the request's -EINVAL, never a write.
 */
#include "jobs/store/store_impl.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
    SCHEMA_VERSION = 1,
    BUSY_TIMEOUT_MS = 5000,
    LIST_DEFAULT = 50,
    LIST_MAX = 1000,
};

#define NO_PAGE_LIMIT 4294967294ull /* SQLite's largest max_page_count */
#define DEFAULT_CONTENT_TYPE "application/octet-stream"

/* ------------------------------------------------------------------ errors */

/* SQLite primary result codes and the errno each becomes. */
#define COIL__SQLITE_ERRNO_MAP(XX)                                          \
    XX(SQLITE_READONLY, EROFS)                                              \
    XX(SQLITE_FULL, ENOSPC)                                                 \
    XX(SQLITE_IOERR, EIO)                                                   \
    XX(SQLITE_CANTOPEN, EIO)                                                \
    XX(SQLITE_CORRUPT, EIO)                                                 \
    XX(SQLITE_NOTADB, EIO)                                                  \
    XX(SQLITE_PROTOCOL, EIO)                                                \
    XX(SQLITE_BUSY, EBUSY)                                                  \
    XX(SQLITE_LOCKED, EBUSY)                                                \
    XX(SQLITE_NOMEM, ENOMEM)                                                \
    XX(SQLITE_PERM, EACCES)                                                 \
    XX(SQLITE_AUTH, EACCES)                                                 \
    XX(SQLITE_TOOBIG, E2BIG)                                                \
    XX(SQLITE_CONSTRAINT, EEXIST)                                           \
    XX(SQLITE_INTERRUPT, EINTR)                                             \
    XX(SQLITE_RANGE, EINVAL)                                                \
    XX(SQLITE_MISUSE, EINVAL)

/* For I/O failures, the OS error says more (a read-only file system is
 * EROFS, not EIO). Only these are trusted. */
static int os_errno(sqlite3 *db) {
    int e = db ? sqlite3_system_errno(db) : 0;
    switch (e) {
    case EROFS: case ENOSPC: case EIO: case EACCES: case EPERM: case ENOENT: return -e;
    case EDQUOT: return -ENOSPC;
    default: return 0;
    }
}

int coil__sqlite_err(sqlite3 *db, int rc) {
    int primary = rc & 0xff;
    if (primary == SQLITE_IOERR || primary == SQLITE_CANTOPEN) {
        int e = os_errno(db);
        if (e) return e;
    }
    switch (primary) {
#define COIL__SQLITE_CASE(code, err) case code: return -err;
        COIL__SQLITE_ERRNO_MAP(COIL__SQLITE_CASE)
#undef COIL__SQLITE_CASE
    default: return -EIO;
    }
}

int coil__stmt_run(sqlite3_stmt *st) {
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* ------------------------------------------------------------------ columns */

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

enum {
    COL_SEQ, COL_ID, COL_KIND, COL_PAYLOAD, COL_PRIORITY, COL_RUN_AT, COL_IDEM_KEY,
    COL_ATTEMPTS, COL_MAX_ATTEMPTS, COL_BACKOFF_BASE, COL_BACKOFF_CAP, COL_TIMEOUT,
    COL_STATE, COL_CANCEL_REQUESTED, COL_LEASE_OWNER, COL_PROGRESS, COL_PROGRESS_MSG,
    COL_RESULT, COL_RESULT_TYPE, COL_RESULT_PATH, COL_ERROR_MSG, COL_ERROR_SIGNAL,
    COL_ERROR_EXIT, COL_ERROR_OOM, COL_CREATED, COL_STARTED, COL_FINISHED, COL_UPDATED,
};

/* Bytes of a text or blob column, NUL not included; -1 for NULL. */
static ptrdiff_t col_len(sqlite3_stmt *st, int col, bool blob) {
    if (sqlite3_column_type(st, col) == SQLITE_NULL) return -1;
    if (blob) (void)sqlite3_column_blob(st, col);
    else (void)sqlite3_column_text(st, col);
    return sqlite3_column_bytes(st, col);
}

/* Copies a text or blob column to *cursor (NUL-terminated, so JSON
 * payloads read as strings), advancing it. NULL stays NULL. */
static char *col_copy(sqlite3_stmt *st, int col, bool blob, char **cursor) {
    ptrdiff_t n = col_len(st, col, blob);
    if (n < 0) return NULL;
    const void *src = blob ? sqlite3_column_blob(st, col) : (const void *)sqlite3_column_text(st, col);
    char *dst = *cursor;
    if (n) memcpy(dst, src, (size_t)n);
    dst[n] = '\0';
    *cursor += n + 1;
    return dst;
}

static const int text_cols[] = {COL_KIND, COL_IDEM_KEY, COL_LEASE_OWNER, COL_PROGRESS_MSG,
                                COL_RESULT_TYPE, COL_ERROR_MSG};

/* Builds a record from the current row, in one allocation. `blobs`: the
 * row has payload and result bytes (else their lengths). NULL on ENOMEM. */
static coil__job *job_from_row(const coil__store *s, sqlite3_stmt *st, bool blobs) {
    size_t need = sizeof(coil__job);
    for (size_t i = 0; i < sizeof text_cols / sizeof *text_cols; i++)
        need += (size_t)(col_len(st, text_cols[i], false) + 1);
    ptrdiff_t path = col_len(st, COL_RESULT_PATH, false);
    if (path >= 0) need += strlen(s->results_dir) + 1 + (size_t)path + 1;
    if (blobs) {
        need += (size_t)(col_len(st, COL_PAYLOAD, true) + 1);
        need += (size_t)(col_len(st, COL_RESULT, true) + 1);
    }
    coil__job *j = calloc(1, need);
    if (!j) return NULL;
    char *cur = (char *)(j + 1);
    j->seq = (uint64_t)sqlite3_column_int64(st, COL_SEQ);
    const unsigned char *id = sqlite3_column_text(st, COL_ID);
    snprintf(j->id, sizeof j->id, "%s", id ? (const char *)id : "");
    j->kind = col_copy(st, COL_KIND, false, &cur);
    j->idem_key = col_copy(st, COL_IDEM_KEY, false, &cur);
    j->lease_owner = col_copy(st, COL_LEASE_OWNER, false, &cur);
    j->progress_msg = col_copy(st, COL_PROGRESS_MSG, false, &cur);
    j->result_type = col_copy(st, COL_RESULT_TYPE, false, &cur);
    j->error_msg = col_copy(st, COL_ERROR_MSG, false, &cur);
    if (path >= 0) {
        int n = snprintf(cur, need - (size_t)(cur - (char *)j), "%s/%s", s->results_dir,
                         (const char *)sqlite3_column_text(st, COL_RESULT_PATH));
        j->result_path = cur;
        cur += n + 1;
    }
    if (blobs) {
        j->payload = col_copy(st, COL_PAYLOAD, true, &cur);
        j->payload_len = j->payload ? (size_t)sqlite3_column_bytes(st, COL_PAYLOAD) : 0;
        j->result = col_copy(st, COL_RESULT, true, &cur);
        j->result_len = j->result ? (size_t)sqlite3_column_bytes(st, COL_RESULT) : 0;
    } else {
        j->payload_len = (size_t)sqlite3_column_int64(st, COL_PAYLOAD);
        j->result_len = (size_t)sqlite3_column_int64(st, COL_RESULT);
    }
    j->priority = sqlite3_column_int(st, COL_PRIORITY);
    j->run_at = sqlite3_column_int64(st, COL_RUN_AT);
    j->attempts = sqlite3_column_int(st, COL_ATTEMPTS);
    j->max_attempts = sqlite3_column_int(st, COL_MAX_ATTEMPTS);
    j->backoff_base_ms = sqlite3_column_int64(st, COL_BACKOFF_BASE);
    j->backoff_cap_ms = sqlite3_column_int64(st, COL_BACKOFF_CAP);
    j->timeout_ms = sqlite3_column_int64(st, COL_TIMEOUT);
    j->state = (coil__job_state)sqlite3_column_int(st, COL_STATE);
    j->cancel_requested = sqlite3_column_int(st, COL_CANCEL_REQUESTED) != 0;
    j->progress = sqlite3_column_int(st, COL_PROGRESS);
    j->error_signal = sqlite3_column_int(st, COL_ERROR_SIGNAL);
    j->error_exit = sqlite3_column_int(st, COL_ERROR_EXIT);
    j->error_oom = sqlite3_column_int(st, COL_ERROR_OOM) != 0;
    j->created = sqlite3_column_int64(st, COL_CREATED);
    j->started = sqlite3_column_int64(st, COL_STARTED);
    j->finished = sqlite3_column_int64(st, COL_FINISHED);
    j->updated = sqlite3_column_int64(st, COL_UPDATED);
    return j;
}

/* ------------------------------------------------------------------ schema */

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS jobs ("
    " seq INTEGER PRIMARY KEY,"
    " id TEXT NOT NULL UNIQUE,"
    " kind TEXT NOT NULL,"
    " payload BLOB NOT NULL,"
    " priority INTEGER NOT NULL,"
    " run_at INTEGER NOT NULL,"
    " idem_key TEXT UNIQUE,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " max_attempts INTEGER NOT NULL,"
    " backoff_base INTEGER NOT NULL,"
    " backoff_cap INTEGER NOT NULL,"
    " timeout INTEGER NOT NULL,"
    " state INTEGER NOT NULL,"
    " cancel_requested INTEGER NOT NULL DEFAULT 0,"
    " lease_owner TEXT,"
    " progress INTEGER NOT NULL DEFAULT 0,"
    " progress_msg TEXT,"
    " result BLOB,"
    " result_type TEXT,"
    " result_path TEXT,"
    " error_msg TEXT,"
    " error_signal INTEGER NOT NULL DEFAULT 0,"
    " error_exit INTEGER NOT NULL DEFAULT -1,"
    " error_oom INTEGER NOT NULL DEFAULT 0,"
    " created INTEGER NOT NULL,"
    " started INTEGER NOT NULL DEFAULT 0,"
    " finished INTEGER NOT NULL DEFAULT 0,"
    " updated INTEGER NOT NULL);"
    /* Runnable candidates only (queued = 0, failed = 3), in claim order. */
    "CREATE INDEX IF NOT EXISTS jobs_runnable ON jobs(priority DESC, run_at, seq)"
    " WHERE state IN (0, 3);"
    "CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(state, seq);"
    "CREATE INDEX IF NOT EXISTS jobs_by_kind ON jobs(kind, seq);"
    "CREATE TABLE IF NOT EXISTS counters ("
    " name TEXT PRIMARY KEY,"
    " value INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT OR IGNORE INTO counters(name, value) VALUES ('ids', 0);";

/* The writer's statements, by coil__stmt. States are numbers here: queued
 * 0, running 1, succeeded 2, failed 3, cancelled 4 (store.h). */
static const char *const stmt_sql[COIL__STMT_COUNT] = {
    [COIL__STMT_BEGIN] = "BEGIN IMMEDIATE",
    [COIL__STMT_COMMIT] = "COMMIT",
    [COIL__STMT_ROLLBACK] = "ROLLBACK",
    [COIL__STMT_FIND_KEY] = "SELECT id, state FROM jobs WHERE idem_key = ?1",
    [COIL__STMT_INSERT] =
        "INSERT INTO jobs (id, kind, payload, priority, run_at, idem_key, max_attempts,"
        " backoff_base, backoff_cap, timeout, state, created, updated)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0, ?11, ?11)",
    [COIL__STMT_CLAIM] = "UPDATE jobs SET state = 1, attempts = attempts + 1, lease_owner = ?2,"
                         " started = ?3, updated = ?3 WHERE seq = ?1 RETURNING " FULL_COLUMNS,
    [COIL__STMT_LOOKUP] = "SELECT seq, kind, state, attempts, max_attempts, backoff_base,"
                          " backoff_cap, cancel_requested, run_at, progress"
                          " FROM jobs WHERE id = ?1",
    [COIL__STMT_COMPLETE] = "UPDATE jobs SET state = 2, result = ?2, result_type = ?3,"
                            " result_path = ?4, progress = 100, lease_owner = NULL,"
                            " finished = ?5, updated = ?5 WHERE seq = ?1",
    [COIL__STMT_FAIL] = "UPDATE jobs SET state = ?2, run_at = ?3, error_msg = ?4,"
                        " error_signal = ?5, error_exit = ?6, error_oom = ?7,"
                        " lease_owner = NULL, finished = ?8, updated = ?9 WHERE seq = ?1",
    [COIL__STMT_CANCEL_NOW] = "UPDATE jobs SET state = 4, finished = ?2, updated = ?2"
                              " WHERE seq = ?1",
    [COIL__STMT_CANCEL_FLAG] = "UPDATE jobs SET cancel_requested = 1, updated = ?2"
                               " WHERE seq = ?1",
    [COIL__STMT_REQUEUE] =
        /* An interrupted attempt counts: one that used up the last attempt
         * leaves the job dead, so attempts never exceed max_attempts. */
        "UPDATE jobs SET state = CASE WHEN cancel_requested THEN 4"
        "  WHEN state = 1 AND attempts >= max_attempts THEN 5 ELSE 0 END,"
        " error_msg = CASE WHEN NOT cancel_requested AND state = 1"
        "  AND attempts >= max_attempts"
        "  THEN 'interrupted: the server stopped while it ran, and no attempts are left'"
        "  ELSE error_msg END,"
        " finished = CASE WHEN cancel_requested OR (state = 1 AND attempts >= max_attempts)"
        "  THEN ?1 ELSE finished END,"
        " lease_owner = NULL, updated = ?1"
        " WHERE state = 1 OR (state IN (0, 3) AND cancel_requested)",
    [COIL__STMT_RELEASE] =
        "UPDATE jobs SET state = ?2, attempts = max(attempts - 1, 0), lease_owner = NULL,"
        " finished = CASE WHEN ?2 = 4 THEN ?3 ELSE finished END, updated = ?3"
        " WHERE seq = ?1",
    /* claim and peek walk the runnable jobs one priority level at a time,
     * each a range of jobs_runnable: delayed jobs cost nothing until they
     * are due, however many there are. INDEXED BY: without statistics the
     * planner would rather sort the queued jobs by way of jobs_by_state. */
    [COIL__STMT_TOP_PRIORITY] = "SELECT max(priority) FROM jobs INDEXED BY jobs_runnable"
                                " WHERE state IN (0, 3)",
    [COIL__STMT_NEXT_PRIORITY] = "SELECT max(priority) FROM jobs INDEXED BY jobs_runnable"
                                 " WHERE state IN (0, 3) AND priority < ?1",
    [COIL__STMT_DUE_AT_PRIORITY] = "SELECT seq, state FROM jobs INDEXED BY jobs_runnable"
                                   " WHERE state IN (0, 3) AND priority = ?1 AND run_at <= ?2"
                                   " ORDER BY run_at, seq",
    [COIL__STMT_NEXT_AT_PRIORITY] = "SELECT min(run_at) FROM jobs INDEXED BY jobs_runnable"
                                    " WHERE state IN (0, 3) AND priority = ?1 AND run_at > ?2",
    [COIL__STMT_BY_SEQ] = "SELECT " FULL_COLUMNS " FROM jobs WHERE seq = ?1",
    [COIL__STMT_START] = "UPDATE jobs SET state = 1, attempts = attempts + 1, lease_owner = ?2,"
                         " started = ?3, updated = ?3 WHERE seq = ?1",
    [COIL__STMT_PROGRESS] = "UPDATE jobs SET progress = ?2, progress_msg = ?3, updated = ?4"
                            " WHERE id = ?1 AND state = 1"
                            " RETURNING kind, attempts, cancel_requested, run_at",
    [COIL__STMT_NEXT_ID] = "UPDATE counters SET value = value + 1 WHERE name = 'ids'"
                           " RETURNING value",
};

/* ------------------------------------------------------------------ opening */

/* mkdir that accepts an existing directory. Returns 1 if it created it, 0
 * if it was there, or a negative errno. */
static int make_dir(const char *path) {
    if (mkdir(path, 0755) == 0) return 1;
    if (errno != EEXIST) return -errno;
    struct stat st;
    if (stat(path, &st) != 0) return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static int fsync_dir(const char *path) {
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -errno;
    int err = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return err;
}

/* Creates DIR and DIR/results, and makes the new entries durable. */
static int make_dirs(coil__store *s) {
    int made = make_dir(s->dir);
    if (made < 0) return made;
    if (made) {
        char parent[4096];
        if ((size_t)snprintf(parent, sizeof parent, "%s/..", s->dir) >= sizeof parent)
            return -ENAMETOOLONG;
        int err = fsync_dir(parent);
        if (err) return err;
    }
    int err = make_dir(s->results_dir);
    if (err < 0) return err;
    return err ? fsync_dir(s->dir) : 0;
}

/* One process per store: flock(DIR/lock). */
static int lock_dir(coil__store *s) {
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/lock", s->dir) >= sizeof path)
        return -ENAMETOOLONG;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return -errno;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno == EWOULDBLOCK ? -EBUSY : -errno;
        close(fd);
        return err;
    }
    s->lock_fd = fd;
    return 0;
}

/* Runs a statement that yields one integer; *out gets it. */
static int query_int(sqlite3 *db, const char *sql, int64_t *out) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* WAL, and an fsync at every commit. Returns an SQLite code. */
static int configure(sqlite3 *db) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
    if (rc != SQLITE_OK) return rc;
    rc = sqlite3_step(st);
    bool wal = rc == SQLITE_ROW &&
               strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW) return rc;
    if (!wal) return SQLITE_CANTOPEN; /* a file system without shared memory */
    return sqlite3_exec(db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
}

/* Creates the schema, or checks the one found. Returns an SQLite code or
 * -EPROTO (the file is from a newer version). */
static int schema(sqlite3 *db) {
    int64_t version = 0;
    int rc = query_int(db, "PRAGMA user_version", &version);
    if (rc != SQLITE_OK) return rc;
    if (version > SCHEMA_VERSION) {
        coil__log("job store: schema version %lld is newer than this build's (%d)",
                  (long long)version, SCHEMA_VERSION);
        return -EPROTO;
    }
    if (version == SCHEMA_VERSION) return SQLITE_OK;
    char sql[sizeof schema_sql + 64];
    snprintf(sql, sizeof sql, "BEGIN IMMEDIATE;%sPRAGMA user_version=%d;COMMIT;", schema_sql,
             SCHEMA_VERSION);
    rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK && !sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static int prepare_all(coil__store *s) {
    for (int i = 0; i < COIL__STMT_COUNT; i++) {
        int rc = sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                                    &s->stmt[i], NULL);
        if (rc != SQLITE_OK) return rc;
    }
    return SQLITE_OK;
}

static int seed_rng(coil__store *s) {
    return getrandom(&s->rng, sizeof s->rng, 0) == (ssize_t)sizeof s->rng ? 0 : -EIO;
}

/* An SQLite code or an errno-style code from the steps above, as errno. */
static int open_err(coil__store *s, int rc) {
    if (rc < 0) return rc;
    int err = coil__sqlite_err(s->db, rc);
    coil__log("job store: cannot open %s: %s", s->db_path,
              s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
    return err;
}

int coil__store_db_open(coil__store *s) {
    int err = make_dirs(s);
    if (err) return err;
    err = lock_dir(s);
    if (err) return err;
    int rc = sqlite3_open_v2(s->db_path, &s->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc == SQLITE_OK) {
        sqlite3_extended_result_codes(s->db, 1);
        sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
        rc = configure(s->db);
    }
    if (rc == SQLITE_OK) rc = schema(s->db);
    if (rc == SQLITE_OK) rc = prepare_all(s);
    if (rc == SQLITE_OK) rc = fsync_dir(s->dir); /* the new db and WAL files */
    if (rc == SQLITE_OK) rc = seed_rng(s);
    if (rc != SQLITE_OK) {
        err = open_err(s, rc);
        coil__store_db_close(s);
        return err;
    }
    return 0;
}

void coil__store_db_close(coil__store *s) {
    coil__store_readers_close(s);
    for (int i = 0; i < COIL__STMT_COUNT; i++) {
        sqlite3_finalize(s->stmt[i]);
        s->stmt[i] = NULL;
    }
    if (s->db && sqlite3_close(s->db) != SQLITE_OK)
        coil__log("job store: closing %s: %s", s->db_path, sqlite3_errmsg(s->db));
    s->db = NULL;
    if (s->lock_fd >= 0) close(s->lock_fd);
    s->lock_fd = -1;
}

void coil__store_db_pragma(coil__store *s, coil__store_req *r) {
    int64_t pages = 0;
    int rc = query_int(s->db, "PRAGMA page_count", &pages);
    r->u.pragma.page_count = (uint64_t)pages;
    char sql[64];
    if (r->u.pragma.which == COIL__PRAGMA_MAX_PAGES) {
        uint64_t v = r->u.pragma.value ? r->u.pragma.value : NO_PAGE_LIMIT;
        snprintf(sql, sizeof sql, "PRAGMA max_page_count=%llu", (unsigned long long)v);
    } else {
        snprintf(sql, sizeof sql, "PRAGMA query_only=%d", r->u.pragma.value ? 1 : 0);
    }
    if (rc == SQLITE_OK) rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    r->err = rc == SQLITE_OK ? 0 : coil__sqlite_err(s->db, rc);
}

/* ------------------------------------------------------------------ writes */

/* What the writes need to know about a job before changing it. */
typedef struct job_head {
    int64_t seq;
    char kind[COIL__JOB_KIND_MAX + 1];
    coil__job_state state;
    int attempts, max_attempts;
    int64_t backoff_base, backoff_cap, run_at;
    bool cancel_requested;
    int progress;
} job_head;

/* Reads a job's head. Sets *found. Returns an SQLite code. */
static int lookup(coil__store *s, const char *id, job_head *h, bool *found) {
    sqlite3_stmt *st = s->stmt[COIL__STMT_LOOKUP];
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    *found = rc == SQLITE_ROW;
    if (*found) {
        h->seq = sqlite3_column_int64(st, 0);
        snprintf(h->kind, sizeof h->kind, "%s", (const char *)sqlite3_column_text(st, 1));
        h->state = (coil__job_state)sqlite3_column_int(st, 2);
        h->attempts = sqlite3_column_int(st, 3);
        h->max_attempts = sqlite3_column_int(st, 4);
        h->backoff_base = sqlite3_column_int64(st, 5);
        h->backoff_cap = sqlite3_column_int64(st, 6);
        h->cancel_requested = sqlite3_column_int(st, 7) != 0;
        h->run_at = sqlite3_column_int64(st, 8);
        h->progress = sqlite3_column_int(st, 9);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

/* lookup() for request `r`: a job that is not there is the request's own
 * outcome (-ENOENT), not the transaction's. */
static int lookup_for(coil__store *s, coil__store_req *r, const char *id, job_head *h,
                      bool *found) {
    int rc = lookup(s, id, h, found);
    if (rc == SQLITE_OK && !*found) r->err = -ENOENT;
    return rc;
}

static void event_set(coil__job_event *ev, const char *id, const char *kind,
                      coil__job_state state, int attempts, int64_t run_at) {
    memset(ev, 0, sizeof *ev);
    memcpy(ev->id, id, COIL__JOB_ID_SIZE);
    snprintf(ev->kind, sizeof ev->kind, "%s", kind);
    ev->state = state;
    ev->attempts = attempts;
    ev->run_at = run_at;
}

static void note_head(coil__store *s, const char *id, const job_head *h, coil__job_state state) {
    coil__job_event ev;
    event_set(&ev, id, h->kind, state, h->attempts, h->run_at);
    ev.progress = h->progress;
    ev.cancel_requested = h->cancel_requested;
    coil__store_note_event(s, &ev);
}

static int bind_text_or_null(sqlite3_stmt *st, int i, const char *s) {
    return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

/* Runs a bound write statement and clears its bindings. */
static int run_bound(sqlite3_stmt *st) {
    int rc = coil__stmt_run(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static int exec_enqueue(coil__store *s, coil__store_req *r) {
    const coil__job_spec *sp = r->u.enqueue.spec;
    coil__enqueued *out = r->u.enqueue.out;
    if (sp->idem_key) {
        sqlite3_stmt *st = s->stmt[COIL__STMT_FIND_KEY];
        sqlite3_bind_text(st, 1, sp->idem_key, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            snprintf(out->id, sizeof out->id, "%s", (const char *)sqlite3_column_text(st, 0));
            out->state = (coil__job_state)sqlite3_column_int(st, 1);
            out->duplicate = true;
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        if (rc == SQLITE_ROW) return SQLITE_OK;
        if (rc != SQLITE_DONE) return rc;
    }
    int64_t now = coil__wall_ms();
    int64_t run_at = sp->run_at ? sp->run_at : now;
    sqlite3_stmt *st = s->stmt[COIL__STMT_INSERT];
    sqlite3_bind_text(st, 1, r->u.enqueue.id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, sp->kind, -1, SQLITE_STATIC);
    if (sp->payload_len) sqlite3_bind_blob64(st, 3, sp->payload, sp->payload_len, SQLITE_STATIC);
    else sqlite3_bind_zeroblob(st, 3, 0);
    sqlite3_bind_int(st, 4, sp->priority);
    sqlite3_bind_int64(st, 5, run_at);
    bind_text_or_null(st, 6, sp->idem_key);
    sqlite3_bind_int(st, 7, sp->max_attempts ? sp->max_attempts : COIL__JOB_DEFAULT_MAX_ATTEMPTS);
    sqlite3_bind_int64(st, 8, sp->backoff_base_ms ? sp->backoff_base_ms
                                                  : COIL__JOB_DEFAULT_BACKOFF_BASE_MS);
    sqlite3_bind_int64(st, 9, sp->backoff_cap_ms ? sp->backoff_cap_ms
                                                 : COIL__JOB_DEFAULT_BACKOFF_CAP_MS);
    sqlite3_bind_int64(st, 10, sp->timeout_ms);
    sqlite3_bind_int64(st, 11, now);
    int rc = run_bound(st);
    if ((rc & 0xff) == SQLITE_CONSTRAINT) {
        r->err = -EEXIST; /* an id collision: 2^-128; the statement left nothing */
        return SQLITE_OK;
    }
    if (rc != SQLITE_OK) return rc;
    memcpy(out->id, r->u.enqueue.id, COIL__JOB_ID_SIZE);
    out->state = COIL__JOB_QUEUED;
    out->duplicate = false;
    coil__job_event ev;
    event_set(&ev, out->id, sp->kind, COIL__JOB_QUEUED, 0, run_at);
    coil__store_note_event(s, &ev);
    return SQLITE_OK;
}

/* Steps a statement that answers one integer or NULL. Sets *found and
 * *value. Returns an SQLite code. */
static int step_int(sqlite3_stmt *st, bool *found, int64_t *value) {
    int rc = sqlite3_step(st);
    *found = rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL;
    *value = *found ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* The highest priority below `below` (none: INT64_MAX means from the top)
 * that has runnable or delayed jobs. */
static int priority_below(coil__store *s, int64_t below, bool *found, int64_t *prio) {
    sqlite3_stmt *st = s->stmt[below == INT64_MAX ? COIL__STMT_TOP_PRIORITY
                                                  : COIL__STMT_NEXT_PRIORITY];
    if (below != INT64_MAX) sqlite3_bind_int64(st, 1, below);
    return step_int(st, found, prio);
}

/* When will a job that is not due yet become due? The earliest run_at
 * among the waiting jobs of every priority level, or 0 if none waits. */
static int next_run_at(coil__store *s, int64_t *out) {
    int64_t now = coil__wall_ms(), prio = INT64_MAX, next = 0;
    bool found;
    int rc;
    while ((rc = priority_below(s, prio, &found, &prio)) == SQLITE_OK && found) {
        sqlite3_stmt *st = s->stmt[COIL__STMT_NEXT_AT_PRIORITY];
        sqlite3_bind_int64(st, 1, prio);
        sqlite3_bind_int64(st, 2, now);
        int64_t at;
        bool waiting;
        if ((rc = step_int(st, &waiting, &at)) != SQLITE_OK) return rc;
        if (waiting && (!next || at < next)) next = at;
    }
    *out = next;
    return rc;
}

/* The best due job: the oldest due one of the highest priority level that
 * has one. Sets *seq (0: none) and *from (its state). */
static int pick_due(coil__store *s, int64_t now, int64_t *seq, coil__job_state *from) {
    int64_t prio = INT64_MAX;
    bool found;
    int rc;
    *seq = 0;
    while ((rc = priority_below(s, prio, &found, &prio)) == SQLITE_OK && found) {
        sqlite3_stmt *st = s->stmt[COIL__STMT_DUE_AT_PRIORITY];
        sqlite3_bind_int64(st, 1, prio);
        sqlite3_bind_int64(st, 2, now);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *seq = sqlite3_column_int64(st, 0);
            *from = (coil__job_state)sqlite3_column_int(st, 1);
        }
        sqlite3_reset(st);
        if (rc == SQLITE_ROW) return SQLITE_OK;
        if (rc != SQLITE_DONE) return rc;
    }
    return rc;
}

/* Claims the best runnable job into *out, or sets *out = NULL if there is
 * none. Returns an SQLite code. */
static int claim_one(coil__store *s, const char *owner, int64_t now, coil__job **out) {
    *out = NULL;
    int64_t seq;
    coil__job_state from = COIL__JOB_QUEUED;
    int rc = pick_due(s, now, &seq, &from);
    if (rc != SQLITE_OK || !seq) return rc;
    /* The pick only sees queued and failed jobs; both may run. */
    if (coil__job_transition(from, COIL__JOB_RUNNING) != 0) return SQLITE_CORRUPT;

    sqlite3_stmt *st = s->stmt[COIL__STMT_CLAIM];
    sqlite3_bind_int64(st, 1, seq);
    sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = job_from_row(s, st, true);
        /* The row is claimed already: without a record for the caller the
         * transaction must not stand. */
        rc = *out ? SQLITE_OK : SQLITE_NOMEM;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_CORRUPT; /* picked a moment ago in this transaction */
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static int exec_claim(coil__store *s, coil__store_req *r) {
    int64_t now = coil__wall_ms();
    while (r->u.claim.n < r->u.claim.max) {
        coil__job *job;
        int rc = claim_one(s, r->u.claim.owner, now, &job);
        if (rc != SQLITE_OK) return rc;
        if (!job) break;
        r->u.claim.jobs[r->u.claim.n++] = job;
        coil__job_event ev;
        event_set(&ev, job->id, job->kind, COIL__JOB_RUNNING, job->attempts, job->run_at);
        coil__store_note_event(s, &ev);
    }
    if (r->u.claim.n) return SQLITE_OK;
    r->err = -EAGAIN;
    return next_run_at(s, &r->u.claim.next_run_at);
}

/* Starts job `id` for request `r`: queued or failed -> running, attempts
 * + 1, leased to `owner`. A job that cannot start is the request's own
 * outcome (r->err). *attempts (may be NULL) gets the new count. */
static int start_job(coil__store *s, coil__store_req *r, const char *id, const char *owner,
                     int *attempts) {
    job_head h;
    bool found;
    int rc = lookup_for(s, r, id, &h, &found);
    if (rc != SQLITE_OK || !found) return rc;
    /* Started or not, a peek's hold ends here. */
    if ((rc = coil__held_remove(s, h.seq)) != SQLITE_OK) return rc;
    r->err = coil__job_transition(h.state, COIL__JOB_RUNNING);
    if (r->err) return SQLITE_OK;
    int64_t now = coil__wall_ms();
    sqlite3_stmt *st = s->stmt[COIL__STMT_START];
    sqlite3_bind_int64(st, 1, h.seq);
    sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now);
    rc = run_bound(st);
    if (rc != SQLITE_OK) return rc;
    h.attempts++;
    if (attempts) *attempts = h.attempts;
    note_head(s, id, &h, COIL__JOB_RUNNING);
    return SQLITE_OK;
}

/* One job, by id, from queued or failed to running. */
static int exec_start(coil__store *s, coil__store_req *r) {
    return start_job(s, r, r->u.start.id, r->u.start.owner, &r->u.start.attempts);
}

static int exec_complete(coil__store *s, coil__store_req *r) {
    job_head h;
    bool found;
    const char *id = r->u.complete.id;
    if (r->u.complete.owner) {
        int rc = start_job(s, r, id, r->u.complete.owner, NULL);
        if (rc != SQLITE_OK || r->err) return rc;
    }
    int rc = lookup_for(s, r, id, &h, &found);
    if (rc != SQLITE_OK || !found) return rc;
    r->err = coil__job_transition(h.state, COIL__JOB_SUCCEEDED);
    if (r->err) return SQLITE_OK;
    const coil__job_result *res = r->u.complete.res;
    const char *file = r->u.complete.file;
    int64_t now = coil__wall_ms();
    sqlite3_stmt *st = s->stmt[COIL__STMT_COMPLETE];
    sqlite3_bind_int64(st, 1, h.seq);
    if (!file && res->len) sqlite3_bind_blob64(st, 2, res->data, res->len, SQLITE_STATIC);
    else sqlite3_bind_null(st, 2);
    bool has_result = file || res->len;
    bind_text_or_null(st, 3, !has_result ? NULL
                             : res->content_type ? res->content_type
                                                 : DEFAULT_CONTENT_TYPE);
    bind_text_or_null(st, 4, file);
    sqlite3_bind_int64(st, 5, now);
    rc = run_bound(st);
    if (rc != SQLITE_OK) return rc;
    h.progress = 100;
    note_head(s, id, &h, COIL__JOB_SUCCEEDED);
    return SQLITE_OK;
}

static int exec_fail(coil__store *s, coil__store_req *r) {
    job_head h;
    bool found;
    const char *id = r->u.fail.id;
    if (r->u.fail.owner) {
        int rc = start_job(s, r, id, r->u.fail.owner, NULL);
        if (rc != SQLITE_OK || r->err) return rc;
    }
    int rc = lookup_for(s, r, id, &h, &found);
    if (rc != SQLITE_OK || !found) return rc;
    if (h.state != COIL__JOB_RUNNING) {
        r->err = -EINVAL;
        return SQLITE_OK;
    }
    coil__job_state to = h.cancel_requested             ? COIL__JOB_CANCELLED
                         : h.attempts < h.max_attempts ? COIL__JOB_FAILED
                                                       : COIL__JOB_DEAD;
    r->err = coil__job_transition(h.state, to);
    if (r->err) return SQLITE_OK;
    int64_t now = coil__wall_ms();
    if (to == COIL__JOB_FAILED)
        h.run_at = coil__job_next_run_at(now, (unsigned)h.attempts, h.backoff_base,
                                         h.backoff_cap, &s->rng);
    const coil__job_error *e = r->u.fail.error;
    sqlite3_stmt *st = s->stmt[COIL__STMT_FAIL];
    sqlite3_bind_int64(st, 1, h.seq);
    sqlite3_bind_int(st, 2, to);
    sqlite3_bind_int64(st, 3, h.run_at);
    bind_text_or_null(st, 4, e ? e->message : NULL);
    sqlite3_bind_int(st, 5, e ? e->signal : 0);
    sqlite3_bind_int(st, 6, e ? e->exit_status : -1);
    sqlite3_bind_int(st, 7, e && e->oom);
    sqlite3_bind_int64(st, 8, coil__job_state_final(to) ? now : 0);
    sqlite3_bind_int64(st, 9, now);
    rc = run_bound(st);
    if (rc != SQLITE_OK) return rc;
    r->u.fail.state = to;
    note_head(s, id, &h, to);
    return SQLITE_OK;
}

static int exec_cancel(coil__store *s, coil__store_req *r) {
    job_head h;
    bool found;
    const char *id = r->u.cancel.id;
    int rc = lookup_for(s, r, id, &h, &found);
    if (rc != SQLITE_OK || !found) return rc;
    r->u.cancel.state = h.state;
    if (coil__job_state_final(h.state)) {
        r->err = -EALREADY;
        return SQLITE_OK;
    }
    int64_t now = coil__wall_ms();
    /* A held job may be in a worker already: it is stopped, not cancelled
     * here (store_held.c), and answers as a running one. */
    bool running = h.state == COIL__JOB_RUNNING || coil__held_has(s, h.seq);
    if (running) r->u.cancel.state = COIL__JOB_RUNNING;
    if (running && h.cancel_requested) return SQLITE_OK; /* asked already */
    if (!running) {
        r->err = coil__job_transition(h.state, COIL__JOB_CANCELLED);
        if (r->err) return SQLITE_OK;
    }
    sqlite3_stmt *st = s->stmt[running ? COIL__STMT_CANCEL_FLAG : COIL__STMT_CANCEL_NOW];
    sqlite3_bind_int64(st, 1, h.seq);
    sqlite3_bind_int64(st, 2, now);
    rc = run_bound(st);
    if (rc != SQLITE_OK) return rc;
    if (running) h.cancel_requested = true;
    else r->u.cancel.state = COIL__JOB_CANCELLED;
    note_head(s, id, &h, running ? h.state : COIL__JOB_CANCELLED);
    return SQLITE_OK;
}

static int exec_requeue(coil__store *s, coil__store_req *r) {
    COIL_ASSERT(coil__job_can_transition(COIL__JOB_RUNNING, COIL__JOB_QUEUED) &&
                coil__job_can_transition(COIL__JOB_RUNNING, COIL__JOB_CANCELLED));
    sqlite3_stmt *st = s->stmt[COIL__STMT_REQUEUE];
    sqlite3_bind_int64(st, 1, coil__wall_ms());
    int rc = run_bound(st);
    if (rc != SQLITE_OK) return rc;
    r->u.requeue.count = (size_t)sqlite3_changes64(s->db);
    return SQLITE_OK;
}

/* release() of a job peeked and never started: no longer held, and
 * cancelled if a cancel flagged it meanwhile; else it stays as it is. */
static int release_held(coil__store *s, coil__store_req *r, const char *id, job_head *h) {
    r->u.release.state = h->state;
    if (!coil__held_has(s, h->seq)) {
        r->err = -EINVAL;
        return SQLITE_OK;
    }
    int rc = coil__held_remove(s, h->seq);
    if (rc != SQLITE_OK || !h->cancel_requested) return rc;
    r->err = coil__job_transition(h->state, COIL__JOB_CANCELLED);
    if (r->err) return SQLITE_OK;
    sqlite3_stmt *st = s->stmt[COIL__STMT_CANCEL_NOW];
    sqlite3_bind_int64(st, 1, h->seq);
    sqlite3_bind_int64(st, 2, coil__wall_ms());
    if ((rc = run_bound(st)) != SQLITE_OK) return rc;
    r->u.release.state = COIL__JOB_CANCELLED;
    note_head(s, id, h, COIL__JOB_CANCELLED);
    return SQLITE_OK;
}

static int exec_release(coil__store *s, coil__store_req *r) {
    job_head h;
    bool found;
    const char *id = r->u.release.id;
    int rc = lookup_for(s, r, id, &h, &found);
    if (rc != SQLITE_OK || !found) return rc;
    if (h.state != COIL__JOB_RUNNING) return release_held(s, r, id, &h);
    coil__job_state to = h.cancel_requested ? COIL__JOB_CANCELLED : COIL__JOB_QUEUED;
    r->err = coil__job_transition(h.state, to);
    if (r->err) return SQLITE_OK;
    sqlite3_stmt *st = s->stmt[COIL__STMT_RELEASE];
    sqlite3_bind_int64(st, 1, h.seq);
    sqlite3_bind_int(st, 2, to);
    sqlite3_bind_int64(st, 3, coil__wall_ms());
    rc = run_bound(st);
    if (rc != SQLITE_OK) return rc;
    if (h.attempts > 0) h.attempts--;
    r->u.release.state = to;
    note_head(s, id, &h, to);
    return SQLITE_OK;
}

static bool seq_skipped(const uint64_t *skip, size_t n, uint64_t seq) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (skip[mid] == seq) return true;
        if (skip[mid] < seq) lo = mid + 1;
        else hi = mid;
    }
    return false;
}

/* Reads the full record of `seq` into *out. Returns an SQLite code. */
static int read_by_seq(coil__store *s, int64_t seq, coil__job **out) {
    sqlite3_stmt *st = s->stmt[COIL__STMT_BY_SEQ];
    sqlite3_bind_int64(st, 1, seq);
    int rc = sqlite3_step(st);
    *out = NULL;
    if (rc == SQLITE_ROW) {
        *out = job_from_row(s, st, true);
        rc = *out ? SQLITE_OK : SQLITE_NOMEM;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_CORRUPT; /* the index named it a moment ago */
    }
    sqlite3_reset(st);
    return rc;
}

/* Adds the due jobs of priority `prio` to the peek, in claim order. Sets
 * *full when the peek has all it may take. */
static int peek_level(coil__store *s, coil__store_req *r, int64_t prio, int64_t now,
                      size_t *bytes, bool *full) {
    sqlite3_stmt *st = s->stmt[COIL__STMT_DUE_AT_PRIORITY];
    sqlite3_bind_int64(st, 1, prio);
    sqlite3_bind_int64(st, 2, now);
    size_t max_bytes = r->u.peek.max_bytes;
    int rc;
    while (!*full && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t seq = sqlite3_column_int64(st, 0);
        if (seq_skipped(r->u.peek.skip, r->u.peek.nskip, (uint64_t)seq)) continue;
        coil__job *job;
        rc = read_by_seq(s, seq, &job);
        if (rc != SQLITE_OK) break;
        if ((rc = coil__held_add(s, seq)) != SQLITE_OK) {
            coil__job_free(job);
            break;
        }
        r->u.peek.jobs[r->u.peek.n++] = job;
        *bytes += job->payload_len;
        *full = r->u.peek.n == r->u.peek.max || (max_bytes && *bytes >= max_bytes);
    }
    if (*full) rc = SQLITE_DONE;
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_OK ? SQLITE_OK : rc;
}

/* Runnable jobs in claim order, passing over `skip`: nothing changes. With
 * none, the earliest run_at of a job not due yet. */
static int exec_peek(coil__store *s, coil__store_req *r) {
    int64_t now = coil__wall_ms(), prio = INT64_MAX;
    size_t bytes = 0;
    bool full = false, found;
    int rc;
    while (!full && (rc = priority_below(s, prio, &found, &prio)) == SQLITE_OK && found)
        if ((rc = peek_level(s, r, prio, now, &bytes, &full)) != SQLITE_OK) return rc;
    if (!full && rc != SQLITE_OK) return rc;
    if (r->u.peek.n) return SQLITE_OK;
    r->err = -EAGAIN;
    return next_run_at(s, &r->u.peek.next_run_at);
}

int coil__store_exec(coil__store *s, coil__store_req *r) {
    switch (r->op) {
    case COIL__OP_ENQUEUE: return exec_enqueue(s, r);
    case COIL__OP_CLAIM: return exec_claim(s, r);
    case COIL__OP_COMPLETE: return exec_complete(s, r);
    case COIL__OP_FAIL: return exec_fail(s, r);
    case COIL__OP_CANCEL: return exec_cancel(s, r);
    case COIL__OP_REQUEUE: return exec_requeue(s, r);
    case COIL__OP_RELEASE: return exec_release(s, r);
    case COIL__OP_PEEK: return exec_peek(s, r);
    case COIL__OP_START: return exec_start(s, r);
    case COIL__OP_NEXT_ID: return coil__ids_exec_next(s, r);
    case COIL__OP_FLUSH: return SQLITE_OK;
    default: COIL_ASSERT(!"not a write");
    }
    return SQLITE_MISUSE;
}

int coil__store_exec_progress(coil__store *s, const coil__progress *p, bool *changed,
                              coil__job_event *ev) {
    sqlite3_stmt *st = s->stmt[COIL__STMT_PROGRESS];
    sqlite3_bind_text(st, 1, p->id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, p->percent);
    bind_text_or_null(st, 3, p->message);
    sqlite3_bind_int64(st, 4, coil__wall_ms());
    int rc = sqlite3_step(st);
    *changed = rc == SQLITE_ROW;
    if (*changed) {
        event_set(ev, p->id, (const char *)sqlite3_column_text(st, 0), COIL__JOB_RUNNING,
                  sqlite3_column_int(st, 1), sqlite3_column_int64(st, 3));
        ev->cancel_requested = sqlite3_column_int(st, 2) != 0;
        ev->progress = p->percent;
        snprintf(ev->message, sizeof ev->message, "%s", p->message ? p->message : "");
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

void coil__store_req_discard(coil__store_req *r) {
    if (r->op == COIL__OP_PEEK) {
        for (size_t i = 0; i < r->u.peek.n; i++) {
            coil__job_free(r->u.peek.jobs[i]);
            r->u.peek.jobs[i] = NULL;
        }
        r->u.peek.n = 0;
    }
    if (r->op == COIL__OP_CLAIM) {
        for (size_t i = 0; i < r->u.claim.n; i++) {
            coil__job_free(r->u.claim.jobs[i]);
            r->u.claim.jobs[i] = NULL;
        }
        r->u.claim.n = 0;
    }
}

/* ------------------------------------------------------------------ write calls */

int coil__store_enqueue(coil__store *s, const coil__job_spec *spec, coil__enqueued *out) {
    if (!out) return -EINVAL;
    int err = coil__job_spec_check(spec);
    if (err) return err;
    coil__store_req r = {.op = COIL__OP_ENQUEUE};
    r.u.enqueue.spec = spec;
    r.u.enqueue.out = out;
    err = coil__job_id_new(r.u.enqueue.id);
    if (err) return err;
    return coil__store_submit(s, &r);
}

int coil__store_claim_batch(coil__store *s, const char *owner, coil__job **jobs, size_t max,
                            size_t *n, int64_t *next_run_at) {
    if (n) *n = 0;
    if (!owner || !jobs || !n || max == 0) return -EINVAL;
    coil__store_req r = {.op = COIL__OP_CLAIM};
    r.u.claim.owner = owner;
    r.u.claim.jobs = jobs;
    r.u.claim.max = max;
    int err = coil__store_submit(s, &r);
    if (err == -EAGAIN && next_run_at) *next_run_at = r.u.claim.next_run_at;
    if (err) return err;
    *n = r.u.claim.n;
    return 0;
}

int coil__store_peek(coil__store *s, const uint64_t *skip, size_t nskip, coil__job **jobs,
                     size_t max, size_t max_bytes, size_t *n, int64_t *next_run_at) {
    if (n) *n = 0;
    if (!jobs || !n || max == 0 || (nskip && !skip)) return -EINVAL;
    coil__store_req r = {.op = COIL__OP_PEEK};
    r.u.peek.skip = skip;
    r.u.peek.nskip = nskip;
    r.u.peek.jobs = jobs;
    r.u.peek.max = max;
    r.u.peek.max_bytes = max_bytes;
    int err = coil__store_submit(s, &r);
    if (err == -EAGAIN && next_run_at) *next_run_at = r.u.peek.next_run_at;
    if (err) return err;
    *n = r.u.peek.n;
    return 0;
}

int coil__store_start(coil__store *s, const char *id, const char *owner, int *attempts) {
    if (!coil__job_id_valid(id)) return -ENOENT;
    if (!owner) return -EINVAL;
    coil__store_req r = {.op = COIL__OP_START};
    r.u.start.id = id;
    r.u.start.owner = owner;
    int err = coil__store_submit(s, &r);
    if (!err && attempts) *attempts = r.u.start.attempts;
    return err;
}

int coil__store_claim(coil__store *s, const char *owner, coil__job **out, int64_t *next_run_at) {
    if (!out) return -EINVAL;
    size_t n;
    *out = NULL;
    return coil__store_claim_batch(s, owner, out, 1, &n, next_run_at);
}

/* A result file name: one path component. */
static bool valid_file_name(const char *name) {
    return *name && !strchr(name, '/') && strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

/* A result written to DIR/results on the thread pool. */
typedef struct result_file {
    const char *dir;          /* DIR/results */
    char name[80];            /* ID-RANDOM */
    const void *data;
    size_t len;
    bool unlink;              /* remove it instead of writing it */
    int err;
} result_file;

static int write_all(int fd, const char *p, size_t len) {
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Thread pool: writes the file durably (temporary name, fsync, rename,
 * fsync the directory), or removes it. */
static void *result_file_main(void *arg) {
    result_file *f = arg;
    char path[4096], tmp[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", f->dir, f->name) >= sizeof path ||
        (size_t)snprintf(tmp, sizeof tmp, "%s/.%s.tmp", f->dir, f->name) >= sizeof tmp) {
        f->err = -ENAMETOOLONG;
        return NULL;
    }
    if (f->unlink) {
        f->err = unlink(path) == 0 ? 0 : -errno;
        return NULL;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        f->err = -errno;
        return NULL;
    }
    int err = write_all(fd, f->data, f->len);
    if (!err && fsync(fd) != 0) err = -errno;
    if (close(fd) != 0 && !err) err = -errno;
    if (!err && rename(tmp, path) != 0) err = -errno;
    if (!err) err = fsync_dir(f->dir);
    if (err) unlink(tmp);
    f->err = err;
    return NULL;
}

static int result_file_run(result_file *f) {
    int err = coil_to_thread(result_file_main, f, NULL);
    return err ? err : f->err;
}

static int complete(coil__store *s, const char *id, const char *owner,
                    const coil__job_result *res) {
    static const coil__job_result none = {0};
    if (!res) res = &none;
    if (!coil__job_id_valid(id)) return -ENOENT;
    if ((res->len && !res->data) || (res->file && (res->data || !valid_file_name(res->file))))
        return -EINVAL;
    coil__store_req r = {.op = COIL__OP_COMPLETE};
    r.u.complete.id = id;
    r.u.complete.res = res;
    r.u.complete.file = res->file;
    r.u.complete.owner = owner;
    result_file f = {.dir = s->results_dir, .data = res->data, .len = res->len};
    bool to_file = res->len > s->opts.inline_result_max;
    if (to_file) {
        char rnd[COIL__JOB_ID_SIZE];
        int err = coil__job_id_new(rnd);
        if (err) return err;
        snprintf(f.name, sizeof f.name, "%s-%.8s", id, rnd);
        err = result_file_run(&f);
        if (err) return err;
        r.u.complete.file = f.name;
    }
    int err = coil__store_submit(s, &r);
    if (err && to_file) {
        /* Nothing refers to it. Interrupted: the file stays, harmless. */
        f.unlink = true;
        (void)result_file_run(&f);
    }
    return err;
}

int coil__store_complete(coil__store *s, const char *id, const coil__job_result *res) {
    return complete(s, id, NULL, res);
}

int coil__store_run_complete(coil__store *s, const char *id, const char *owner,
                             const coil__job_result *res) {
    return owner ? complete(s, id, owner, res) : -EINVAL;
}

static int fail(coil__store *s, const char *id, const char *owner, const coil__job_error *error,
                coil__job_state *state_out) {
    if (!coil__job_id_valid(id)) return -ENOENT;
    coil__store_req r = {.op = COIL__OP_FAIL};
    r.u.fail.id = id;
    r.u.fail.error = error;
    r.u.fail.owner = owner;
    int err = coil__store_submit(s, &r);
    if (!err && state_out) *state_out = r.u.fail.state;
    return err;
}

int coil__store_fail(coil__store *s, const char *id, const coil__job_error *error,
                     coil__job_state *state_out) {
    return fail(s, id, NULL, error, state_out);
}

int coil__store_run_fail(coil__store *s, const char *id, const char *owner,
                         const coil__job_error *error, coil__job_state *state_out) {
    return owner ? fail(s, id, owner, error, state_out) : -EINVAL;
}

int coil__store_cancel(coil__store *s, const char *id, coil__job_state *state_out) {
    if (!coil__job_id_valid(id)) return -ENOENT;
    coil__store_req r = {.op = COIL__OP_CANCEL};
    r.u.cancel.id = id;
    int err = coil__store_submit(s, &r);
    if ((!err || err == -EALREADY) && state_out) *state_out = r.u.cancel.state;
    return err;
}

int coil__store_flush(coil__store *s) {
    coil__store_req r = {.op = COIL__OP_FLUSH};
    return coil__store_submit(s, &r);
}

int coil__store_requeue_running(coil__store *s, size_t *count) {
    coil__store_req r = {.op = COIL__OP_REQUEUE};
    int err = coil__store_submit(s, &r);
    if (!err && count) *count = r.u.requeue.count;
    return err;
}

int coil__store_release(coil__store *s, const char *id, coil__job_state *state_out) {
    if (!coil__job_id_valid(id)) return -ENOENT;
    coil__store_req r = {.op = COIL__OP_RELEASE};
    r.u.release.id = id;
    int err = coil__store_submit(s, &r);
    if (!err && state_out) *state_out = r.u.release.state;
    return err;
}

static int pragma(coil__store *s, int which, uint64_t value, uint64_t *page_count) {
    coil__store_req r = {.op = COIL__OP_PRAGMA};
    r.u.pragma.which = which;
    r.u.pragma.value = value;
    int err = coil__store_submit(s, &r);
    if (!err && page_count) *page_count = r.u.pragma.page_count;
    return err;
}

int coil__store_set_max_pages(coil__store *s, uint64_t pages, uint64_t *page_count) {
    return pragma(s, COIL__PRAGMA_MAX_PAGES, pages, page_count);
}

int coil__store_set_readonly(coil__store *s, bool readonly) {
    return pragma(s, COIL__PRAGMA_QUERY_ONLY, readonly, NULL);
}

/* ------------------------------------------------------------------ reads */

/* Takes an idle read connection, or opens one. Returns an SQLite code. */
static int reader_get(coil__store *s, sqlite3 **out) {
    pthread_mutex_lock(&s->rlock);
    sqlite3 *db = s->nreaders ? s->readers[--s->nreaders] : NULL;
    pthread_mutex_unlock(&s->rlock);
    if (db) {
        *out = db;
        return SQLITE_OK;
    }
    int rc = sqlite3_open_v2(s->db_path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        sqlite3_close(db);
        return rc;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
    *out = db;
    return SQLITE_OK;
}

/* Gives a connection back; beyond the pool's size it is closed. */
static void reader_put(coil__store *s, sqlite3 *db) {
    pthread_mutex_lock(&s->rlock);
    bool kept = s->nreaders < s->opts.max_readers;
    if (kept) s->readers[s->nreaders++] = db;
    pthread_mutex_unlock(&s->rlock);
    if (!kept) sqlite3_close(db);
}

void coil__store_readers_close(coil__store *s) {
    pthread_mutex_lock(&s->rlock);
    while (s->nreaders) sqlite3_close(s->readers[--s->nreaders]);
    pthread_mutex_unlock(&s->rlock);
}

typedef enum read_kind { READ_GET, READ_LIST, READ_COUNTS } read_kind;

/* One read, run on the thread pool. */
typedef struct read_op {
    coil__store *s;
    read_kind kind;
    const char *id;               /* READ_GET */
    const coil__job_filter *filter; /* READ_LIST */
    coil__job *job;               /* out: READ_GET */
    coil__job_list list;          /* out: READ_LIST */
    uint64_t *counts;             /* out: READ_COUNTS */
    int err;                      /* the read's outcome */
} read_op;

static int read_get(read_op *op, sqlite3 *db) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, "SELECT " FULL_COLUMNS " FROM jobs WHERE id = ?1", -1, &st,
                                NULL);
    if (rc != SQLITE_OK) return rc;
    sqlite3_bind_text(st, 1, op->id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        op->job = job_from_row(op->s, st, true);
        rc = op->job ? SQLITE_OK : SQLITE_NOMEM;
    } else if (rc == SQLITE_DONE) {
        op->err = -ENOENT;
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

static int list_push(coil__job_list *l, size_t *cap, coil__job *j) {
    if (l->n == *cap) {
        size_t ncap = *cap ? 2 * *cap : 16;
        coil__job **p = realloc(l->jobs, ncap * sizeof *p);
        if (!p) return SQLITE_NOMEM;
        l->jobs = p;
        *cap = ncap;
    }
    l->jobs[l->n++] = j;
    return SQLITE_OK;
}

static int read_list(read_op *op, sqlite3 *db) {
    const coil__job_filter *f = op->filter;
    size_t limit = f->limit ? f->limit : LIST_DEFAULT;
    if (limit > LIST_MAX) limit = LIST_MAX;
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT " SUMMARY_COLUMNS " FROM jobs WHERE seq < ?1%s%s ORDER BY seq DESC LIMIT ?4",
             f->state >= 0 ? " AND state = ?2" : "", f->kind ? " AND kind = ?3" : "");
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) return rc;
    sqlite3_bind_int64(st, 1, f->cursor ? (int64_t)f->cursor : INT64_MAX);
    if (f->state >= 0) sqlite3_bind_int(st, 2, f->state);
    if (f->kind) sqlite3_bind_text(st, 3, f->kind, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (int64_t)limit + 1); /* one more: is there a next page? */
    size_t cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (op->list.n == limit) {
            op->list.next_cursor = op->list.jobs[limit - 1]->seq;
            continue;
        }
        coil__job *j = job_from_row(op->s, st, false);
        if (!j || list_push(&op->list, &cap, j) != SQLITE_OK) {
            coil__job_free(j);
            rc = SQLITE_NOMEM;
            break;
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int read_counts(read_op *op, sqlite3 *db) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, "SELECT state, count(*) FROM jobs GROUP BY state", -1, &st,
                                NULL);
    if (rc != SQLITE_OK) return rc;
    memset(op->counts, 0, COIL__JOB_NSTATES * sizeof *op->counts);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int state = sqlite3_column_int(st, 0);
        if (state >= 0 && state < COIL__JOB_NSTATES)
            op->counts[state] = (uint64_t)sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Thread pool. */
static void *read_main(void *arg) {
    read_op *op = arg;
    sqlite3 *db = NULL;
    int rc = reader_get(op->s, &db);
    if (rc == SQLITE_OK) {
        switch (op->kind) {
        case READ_GET: rc = read_get(op, db); break;
        case READ_LIST: rc = read_list(op, db); break;
        case READ_COUNTS: rc = read_counts(op, db); break;
        }
    }
    if (rc != SQLITE_OK) op->err = coil__sqlite_err(db, rc);
    if (db) reader_put(op->s, db);
    return NULL;
}

static void read_discard(read_op *op) {
    coil__job_free(op->job);
    op->job = NULL;
    coil__job_list_free(&op->list);
}

/* Runs a read on the thread pool. Suspends. */
static int read_run(read_op *op) {
    atomic_fetch_add(&op->s->reads, 1);
    int err = coil_to_thread(read_main, op, NULL);
    atomic_fetch_sub(&op->s->reads, 1);
    if (!err) err = op->err;
    if (err) read_discard(op);
    return err;
}

int coil__store_get(coil__store *s, const char *id, coil__job **out) {
    if (!coil__job_id_valid(id)) return -ENOENT;
    read_op op = {.s = s, .kind = READ_GET, .id = id};
    int err = read_run(&op);
    if (!err) *out = op.job;
    return err;
}

int coil__store_list(coil__store *s, const coil__job_filter *f, coil__job_list *out) {
    static const coil__job_filter all = {.state = -1};
    if (!f) f = &all;
    if (f->state < -1 || f->state >= COIL__JOB_NSTATES || f->cursor > INT64_MAX) return -EINVAL;
    read_op op = {.s = s, .kind = READ_LIST, .filter = f};
    int err = read_run(&op);
    if (!err) *out = op.list;
    return err;
}

void coil__job_list_free(coil__job_list *l) {
    for (size_t i = 0; i < l->n; i++) coil__job_free(l->jobs[i]);
    free(l->jobs);
    l->jobs = NULL;
    l->n = 0;
    l->next_cursor = 0;
}

int coil__store_counts(coil__store *s, uint64_t counts[COIL__JOB_NSTATES]) {
    read_op op = {.s = s, .kind = READ_COUNTS, .counts = counts};
    return read_run(&op);
}
