/* jobs/store/sqlite_open.c: the SQLite backend's foundations: errors, reading
 * a row into a record, the schema and the writer's statements, and opening:
 * DIR and DIR/results are created, DIR/lock is flock'd (one process per
 * store: a second gets -EBUSY), the database is put in WAL mode with
 * synchronous=FULL (every commit fsyncs the WAL), the schema is created or
 * checked, and the writer's statements are prepared once. See sqlite.h.
 */
#include "jobs/store/sqlite.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

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


enum {
    COL_SEQ, COL_ID, COL_KIND, COL_PAYLOAD, COL_PRIORITY, COL_RUN_AT, COL_IDEM_KEY,
    COL_ATTEMPTS, COL_MAX_ATTEMPTS, COL_BACKOFF_BASE, COL_BACKOFF_CAP, COL_TIMEOUT,
    COL_STATE, COL_CANCEL_REQUESTED, COL_LEASE_OWNER, COL_PROGRESS, COL_PROGRESS_MSG,
    COL_RESULT, COL_RESULT_TYPE, COL_RESULT_PATH, COL_ERROR_MSG, COL_ERROR_SIGNAL,
    COL_ERROR_EXIT, COL_ERROR_OOM, COL_CREATED, COL_STARTED, COL_FINISHED, COL_UPDATED,
    COL_FOLLOWUPS, COL_PARENT,
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

static const int text_cols[] = {COL_KIND,        COL_IDEM_KEY,  COL_LEASE_OWNER, COL_PROGRESS_MSG,
                                COL_RESULT_TYPE, COL_ERROR_MSG, COL_FOLLOWUPS,   COL_PARENT};

/* Builds a record from the current row, in one allocation. `blobs`: the
 * row has payload and result bytes (else their lengths). NULL on ENOMEM. */
coil__job *coil__job_from_row(const coil__store *s, sqlite3_stmt *st, bool blobs) {
    size_t need = sizeof(coil__job);
    for (size_t i = 0; i < sizeof text_cols / sizeof *text_cols; i++)
        need += (size_t)(col_len(st, text_cols[i], false) + 1);
    ptrdiff_t path = col_len(st, COL_RESULT_PATH, false);
    if (path >= 0) need += strlen(coil__sq(s)->results_dir) + 1 + (size_t)path + 1;
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
    j->followups = col_copy(st, COL_FOLLOWUPS, false, &cur);
    j->parent = col_copy(st, COL_PARENT, false, &cur);
    if (path >= 0) {
        int n = snprintf(cur, need - (size_t)(cur - (char *)j), "%s/%s", coil__sq(s)->results_dir,
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

/* Jobs whose follow-ups are still to be written, by state: the final
 * ones are due. And a job's follow-ups, for its status document. */
#define FOLLOWUP_INDEXES                                                                     \
    "CREATE INDEX IF NOT EXISTS jobs_followups_due ON jobs(state)"                           \
    " WHERE followups_pending = 1;"                                                          \
    "CREATE INDEX IF NOT EXISTS jobs_by_parent ON jobs(parent, seq) WHERE parent IS NOT NULL;"

/* Version 1 to 2: follow-ups. */
static const char migrate_v2_sql[] =
    "ALTER TABLE jobs ADD COLUMN followups TEXT;"
    "ALTER TABLE jobs ADD COLUMN followups_pending INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN parent TEXT;" FOLLOWUP_INDEXES;

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
    " updated INTEGER NOT NULL,"
    " followups TEXT,"
    " followups_pending INTEGER NOT NULL DEFAULT 0,"
    " parent TEXT);"
    /* Runnable candidates only (queued = 0, failed = 3), in claim order. */
    "CREATE INDEX IF NOT EXISTS jobs_runnable ON jobs(priority DESC, run_at, seq)"
    " WHERE state IN (0, 3);"
    "CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(state, seq);"
    "CREATE INDEX IF NOT EXISTS jobs_by_kind ON jobs(kind, seq);"
    FOLLOWUP_INDEXES
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
        " backoff_base, backoff_cap, timeout, state, created, updated, followups,"
        " followups_pending, parent)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0, ?11, ?11, ?12, ?12 IS NOT NULL,"
        " ?13)",
    [COIL__STMT_FOLLOWUPS_DUE] =
        "SELECT seq, id, kind, state, attempts, error_msg, finished, followups FROM jobs"
        " INDEXED BY jobs_followups_due WHERE followups_pending = 1 AND state IN (2, 4, 5)",
    [COIL__STMT_FOLLOWUPS_DONE] = "UPDATE jobs SET followups_pending = 0 WHERE seq = ?1",
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
    /* peek walks the runnable jobs one priority level at a time,
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

/* Creates DIR and DIR/results, and makes the new entries durable. */
static int make_dirs(coil__store *s) {
    int made = make_dir(coil__sq(s)->dir);
    if (made < 0) return made;
    if (made) {
        char parent[4096];
        if ((size_t)snprintf(parent, sizeof parent, "%s/..", coil__sq(s)->dir) >= sizeof parent)
            return -ENAMETOOLONG;
        int err = coil__fsync_dir(parent);
        if (err) return err;
    }
    int err = make_dir(coil__sq(s)->results_dir);
    if (err < 0) return err;
    return err ? coil__fsync_dir(coil__sq(s)->dir) : 0;
}

/* One process per store: flock(DIR/lock). */
static int lock_dir(coil__store *s) {
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/lock", coil__sq(s)->dir) >= sizeof path)
        return -ENAMETOOLONG;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return -errno;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno == EWOULDBLOCK ? -EBUSY : -errno;
        close(fd);
        return err;
    }
    coil__sq(s)->lock_fd = fd;
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

/* Creates the schema, or checks the one found; *found gets its version
 * (0: none). Returns an SQLite code or -EPROTO (the file is from a newer
 * version). */
static int schema(sqlite3 *db, int *found) {
    int64_t version = 0;
    int rc = query_int(db, "PRAGMA user_version", &version);
    if (rc != SQLITE_OK) return rc;
    *found = (int)version;
    if (version > SCHEMA_VERSION) {
        coil__log("job store: schema version %lld is newer than this build's (%d)",
                  (long long)version, SCHEMA_VERSION);
        return -EPROTO;
    }
    if (version == SCHEMA_VERSION) return SQLITE_OK;
    char sql[sizeof schema_sql + 64];
    snprintf(sql, sizeof sql, "BEGIN IMMEDIATE;%sPRAGMA user_version=%d;COMMIT;",
             version == 0 ? schema_sql : migrate_v2_sql, SCHEMA_VERSION);
    rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK && !sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static int prepare_all(coil__store *s) {
    for (int i = 0; i < COIL__STMT_COUNT; i++) {
        int rc = sqlite3_prepare_v3(coil__sq(s)->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                                    &coil__sq(s)->stmt[i], NULL);
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
    sqlite3 *db = coil__sq(s)->db;
    int err = coil__sqlite_err(db, rc);
    /* The handle's message, if it still holds this failure (a failed
     * prepare under memory pressure may leave "not an error" there). */
    const char *why = db && sqlite3_errcode(db) != SQLITE_OK ? sqlite3_errmsg(db)
                                                             : sqlite3_errstr(rc);
    coil__log("job store: cannot open %s: %s", coil__sq(s)->db_path, why);
    return err;
}

/* The directory made and locked, the database open and its schema made;
 * *found gets the schema's version before. Returns an SQLite code or a
 * negative errno; the caller closes what was opened. */
static int open_db(coil__store *s, int *found) {
    int err = make_dirs(s);
    if (err) return err;
    err = lock_dir(s);
    if (err) return err;
    int rc = sqlite3_open_v2(coil__sq(s)->db_path, &coil__sq(s)->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc == SQLITE_OK) {
        sqlite3_extended_result_codes(coil__sq(s)->db, 1);
        sqlite3_busy_timeout(coil__sq(s)->db, BUSY_TIMEOUT_MS);
        rc = configure(coil__sq(s)->db);
    }
    if (rc == SQLITE_OK) rc = schema(coil__sq(s)->db, found);
    if (rc == SQLITE_OK) rc = coil__fsync_dir(coil__sq(s)->dir); /* the new db and WAL files */
    return rc;
}

int coil__sqlite_open(coil__store *s) {
    int found;
    int rc = open_db(s, &found);
    if (rc == SQLITE_OK) rc = prepare_all(s);
    if (rc == SQLITE_OK) rc = seed_rng(s);
    if (rc != SQLITE_OK) {
        int err = open_err(s, rc);
        coil__sqlite_close(s);
        return err;
    }
    return 0;
}

static int sq_migrate(coil__store *s, int *from, int *to) {
    int rc = open_db(s, from);
    *to = SCHEMA_VERSION;
    int err = rc == SQLITE_OK ? 0 : open_err(s, rc);
    coil__sqlite_close(s);
    return err;
}

void coil__sqlite_close(coil__store *s) {
    coil__store_readers_close(s);
    for (int i = 0; i < COIL__STMT_COUNT; i++) {
        sqlite3_finalize(coil__sq(s)->stmt[i]);
        coil__sq(s)->stmt[i] = NULL;
    }
    if (coil__sq(s)->db && sqlite3_close(coil__sq(s)->db) != SQLITE_OK)
        coil__log("job store: closing %s: %s", coil__sq(s)->db_path, sqlite3_errmsg(coil__sq(s)->db));
    coil__sq(s)->db = NULL;
    if (coil__sq(s)->lock_fd >= 0) close(coil__sq(s)->lock_fd);
    coil__sq(s)->lock_fd = -1;
}

void coil__sqlite_pragma(coil__store *s, coil__store_req *r) {
    int64_t pages = 0;
    int rc = query_int(coil__sq(s)->db, "PRAGMA page_count", &pages);
    r->u.pragma.page_count = (uint64_t)pages;
    char sql[64];
    if (r->u.pragma.which == COIL__PRAGMA_MAX_PAGES) {
        uint64_t v = r->u.pragma.value ? r->u.pragma.value : NO_PAGE_LIMIT;
        snprintf(sql, sizeof sql, "PRAGMA max_page_count=%llu", (unsigned long long)v);
    } else {
        snprintf(sql, sizeof sql, "PRAGMA query_only=%d", r->u.pragma.value ? 1 : 0);
    }
    if (rc == SQLITE_OK) rc = sqlite3_exec(coil__sq(s)->db, sql, NULL, NULL, NULL);
    r->err = rc == SQLITE_OK ? 0 : coil__sqlite_err(coil__sq(s)->db, rc);
}

/* ------------------------------------------------------------------ the backend */

static char *path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

int coil__sqlite_create(coil__store *s, const char *dir) {
    coil__sqlite *q = calloc(1, sizeof *q);
    if (!q) return -ENOMEM;
    s->impl = q;
    pthread_mutex_init(&q->rlock, NULL);
    q->lock_fd = -1;
    q->dir = strdup(dir);
    q->db_path = path_join(dir, "jobs.db");
    q->results_dir = path_join(dir, "results");
    q->readers = calloc(s->opts.max_readers, sizeof *q->readers);
    if (!q->dir || !q->db_path || !q->results_dir || !q->readers) {
        coil__sqlite_destroy(s);
        return -ENOMEM;
    }
    return 0;
}

void coil__sqlite_destroy(coil__store *s) {
    coil__sqlite *q = s->impl;
    if (!q) return;
    coil__store_readers_close(s);
    coil__held_free(s);
    pthread_mutex_destroy(&q->rlock);
    free(q->readers);
    free(q->results_dir);
    free(q->db_path);
    free(q->dir);
    free(q);
    s->impl = NULL;
}

static void set_sync(coil__sqlite *q, bool full) {
    (void)sqlite3_exec(q->db, full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
                       NULL, NULL, NULL);
}

int coil__sqlite_begin(coil__store *s, bool durable) {
    coil__sqlite *q = s->impl;
    q->txn_durable = durable;
    if (!durable) set_sync(q, false); /* progress alone: no fsync of its own */
    q->txn_changes = sqlite3_total_changes64(q->db);
    coil__held_txn_begin(s);
    return coil__stmt_run(q->stmt[COIL__STMT_BEGIN]);
}

int coil__sqlite_commit(coil__store *s, bool *changed) {
    coil__sqlite *q = s->impl;
    int rc = coil__stmt_run(q->stmt[COIL__STMT_COMMIT]);
    if (!q->txn_durable) set_sync(q, true);
    *changed = rc == SQLITE_OK && sqlite3_total_changes64(q->db) != q->txn_changes;
    return rc;
}

void coil__sqlite_rollback(coil__store *s) {
    coil__sqlite *q = s->impl;
    if (!sqlite3_get_autocommit(q->db)) (void)coil__stmt_run(q->stmt[COIL__STMT_ROLLBACK]);
    if (!q->txn_durable) set_sync(q, true);
    coil__held_txn_undo(s);
}

int coil__sqlite_error(coil__store *s, int rc) { return coil__sqlite_err(coil__sq(s)->db, rc); }

bool coil__sqlite_is_full(int rc) { return (rc & 0xff) == SQLITE_FULL; }

static const char *results_dir(const coil__store *s) { return coil__sq(s)->results_dir; }

const coil__store_backend coil__sqlite_backend = {
    .name = "sqlite",
    .create = coil__sqlite_create,
    .destroy = coil__sqlite_destroy,
    .open = coil__sqlite_open,
    .migrate = sq_migrate,
    .close = coil__sqlite_close,
    .control = coil__sqlite_pragma,
    .begin = coil__sqlite_begin,
    .exec = coil__sqlite_exec,
    .exec_progress = coil__sqlite_exec_progress,
    .commit = coil__sqlite_commit,
    .rollback = coil__sqlite_rollback,
    .error = coil__sqlite_error,
    .is_full = coil__sqlite_is_full,
    .read = coil__sqlite_read,
    .results_dir = results_dir,
};
