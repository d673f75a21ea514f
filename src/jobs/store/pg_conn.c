/* jobs/store/pg_conn.c: the PostgreSQL backend's connections, errors,
 * rows, schema, and its life and transactions as the writer sees them.
 *
 * Connecting never hangs: connect_timeout bounds it (5 s unless the URL
 * says otherwise) and TCP keepalives notice a server that went away
 * without closing. A connection that breaks is dropped; the writer tries
 * again with a backoff (100 ms doubling to 2 s) when the next transaction
 * comes, and until then every write fails at once with -ENOTCONN: a 503 for
 * an enqueue, a retry for an outcome. Nothing needs a restart.
 *
 * Results come back in binary (a bytea result is not hex-encoded on the
 * way), so integers are read by their width.
 */
#include "jobs/store/pg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

enum {
    RETRY_FIRST_MS = 100,
    RETRY_MAX_MS = 2000,
    DEFAULT_LEASE_MS = 5000,
    DEFAULT_HEARTBEAT_MS = 1000,
};

/* The advisory lock key of migrations ("coil" in ASCII). */
#define MIGRATE_LOCK_KEY "1668246892"

/* ------------------------------------------------------------------ connecting */

/* The server's notices ("relation already exists, skipping") are not
 * errors: kept off stderr. */
static void quiet(void *arg, const char *message) {
    (void)arg;
    (void)message;
}

/* `url` for a log line, with any password replaced by "***". */
static void redact(const char *url, char *out, size_t size) {
    snprintf(out, size, "%s", url);
    char *scheme = strstr(out, "://");
    if (!scheme) return;
    char *user = scheme + 3, *at = strchr(user, '@'), *colon = strchr(user, ':');
    if (!at || !colon || colon > at) return;
    size_t tail = strlen(at);
    if ((size_t)(colon + 1 - out) + 3 + tail + 1 > size) return;
    memmove(colon + 4, at, tail + 1);
    memcpy(colon + 1, "***", 3);
}

/* The first line of libpq's message. */
static void first_line(const char *msg, char *out, size_t size) {
    snprintf(out, size, "%s", msg && *msg ? msg : "unknown error");
    out[strcspn(out, "\n")] = '\0';
}

int coil__pg_connect(const char *url, const char *what, bool log, PGconn **out) {
    *out = NULL;
    /* Defaults first: what the URL says overrides them. */
    const char *keys[] = {"connect_timeout", "keepalives", "keepalives_idle",
                          "keepalives_interval", "keepalives_count", "application_name",
                          "dbname", NULL};
    const char *vals[] = {"5", "1", "5", "2", "3", "coil", url, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (!c) return -ENOMEM;
    if (PQstatus(c) != CONNECTION_OK) {
        const char *msg = PQerrorMessage(c);
        int err = strstr(msg, "authentication") || strstr(msg, "password") ? -EACCES
                  : strstr(msg, "does not exist")                         ? -ENOENT
                                                                          : -ECONNREFUSED;
        if (log) {
            char safe[512], line[256];
            redact(url, safe, sizeof safe);
            first_line(msg, line, sizeof line);
            coil__log("job store: %s: cannot connect to %s: %s", what, safe, line);
        }
        PQfinish(c);
        return err;
    }
    PQsetNoticeProcessor(c, quiet, NULL);
    /* Times are the client's milliseconds; the server's clock only runs
     * the leases. Statements must not wait forever on a row lock. */
    int err = coil__pg_command(c, "SET lock_timeout = '10s'", 0, NULL);
    if (err) {
        PQfinish(c);
        return err;
    }
    *out = c;
    return 0;
}

/* ------------------------------------------------------------------ errors */

int coil__pg_err(PGconn *c, const PGresult *res) {
    if (!c || PQstatus(c) != CONNECTION_OK) return -ENOTCONN;
    if (!res) return -ENOMEM;
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (!state) return PQresultStatus(res) == PGRES_FATAL_ERROR ? -ENOTCONN : -EIO;
    if (strcmp(state, "53100") == 0) return -ENOSPC;       /* disk_full */
    if (strcmp(state, "53200") == 0) return -ENOMEM;       /* out_of_memory */
    if (strcmp(state, "25006") == 0) return -EROFS;        /* read_only_sql_transaction */
    if (strncmp(state, "08", 2) == 0) return -ENOTCONN;    /* connection exceptions */
    if (strncmp(state, "57P", 3) == 0) return -ENOTCONN;   /* the server shuts down */
    if (strcmp(state, "53300") == 0) return -ENOTCONN;     /* too many connections */
    if (strcmp(state, "55P03") == 0) return -ETIMEDOUT;    /* lock_not_available */
    if (strncmp(state, "40", 2) == 0) return -EAGAIN;      /* serialization, deadlock */
    return -EIO;
}

/* The log line of an unexpected error (not a lost connection, which the
 * caller reports once). */
static void log_error(PGconn *c, const PGresult *res, const char *sql) {
    if (!c || PQstatus(c) != CONNECTION_OK) return;
    char line[256];
    first_line(res ? PQresultErrorMessage(res) : PQerrorMessage(c), line, sizeof line);
    coil__log("job store: postgres: %s (in: %.60s)", line, sql);
}

PGresult *coil__pg_exec(PGconn *c, const char *sql, int n, const char *const *params,
                        const int *lens, const int *bin, int *err) {
    *err = 0;
    if (!c) {
        *err = -ENOTCONN;
        return NULL;
    }
    PGresult *res = PQexecParams(c, sql, n, NULL, params, lens, bin, 1);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) return res;
    *err = coil__pg_err(c, res);
    if (*err != -ENOTCONN) log_error(c, res, sql);
    PQclear(res);
    return NULL;
}

int coil__pg_command(PGconn *c, const char *sql, int n, const char *const *params) {
    if (n > 0) {
        int err;
        PGresult *res = coil__pg_exec(c, sql, n, params, NULL, NULL, &err);
        PQclear(res);
        return err;
    }
    /* Without parameters: the simple protocol, which takes several
     * statements at once (the schema). */
    if (!c) return -ENOTCONN;
    PGresult *res = PQexec(c, sql);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    int err = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : coil__pg_err(c, res);
    if (err && err != -ENOTCONN) log_error(c, res, sql);
    PQclear(res);
    return err;
}

/* ------------------------------------------------------------------ rows */

int64_t coil__pg_int(const PGresult *r, int row, int col) {
    if (PQgetisnull(r, row, col)) return 0;
    const unsigned char *p = (const unsigned char *)PQgetvalue(r, row, col);
    int len = PQgetlength(r, row, col);
    uint64_t v = 0;
    for (int i = 0; i < len; i++) v = v << 8 | p[i];
    switch (len) { /* sign-extend from the column's width */
    case 1: return (int8_t)v;
    case 2: return (int16_t)v;
    case 4: return (int32_t)v;
    default: return (int64_t)v;
    }
}

bool coil__pg_bool(const PGresult *r, int row, int col) {
    return !PQgetisnull(r, row, col) && PQgetvalue(r, row, col)[0] != 0;
}

const char *coil__pg_text(const PGresult *r, int row, int col) {
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

#define JOB_COLUMNS(payload, result)                                                  \
    "seq, id, kind, " payload ", priority, run_at, idem_key, attempts, max_attempts, " \
    "backoff_base, backoff_cap, timeout, state, cancel_requested, lease_owner, "      \
    "progress, progress_msg, " result ", result_type, error_msg, error_signal, "      \
    "error_exit, error_oom, created, started, finished, updated, followups, parent"

enum {
    COL_SEQ, COL_ID, COL_KIND, COL_PAYLOAD, COL_PRIORITY, COL_RUN_AT, COL_IDEM_KEY,
    COL_ATTEMPTS, COL_MAX_ATTEMPTS, COL_BACKOFF_BASE, COL_BACKOFF_CAP, COL_TIMEOUT,
    COL_STATE, COL_CANCEL_REQUESTED, COL_LEASE_OWNER, COL_PROGRESS, COL_PROGRESS_MSG,
    COL_RESULT, COL_RESULT_TYPE, COL_ERROR_MSG, COL_ERROR_SIGNAL, COL_ERROR_EXIT,
    COL_ERROR_OOM, COL_CREATED, COL_STARTED, COL_FINISHED, COL_UPDATED, COL_FOLLOWUPS,
    COL_PARENT,
};

const char *coil__pg_columns(bool blobs) {
    return blobs ? JOB_COLUMNS("payload", "result")
                 : JOB_COLUMNS("octet_length(payload)", "octet_length(result)");
}

/* Bytes of a column (NUL not counted); -1 for NULL. */
static ptrdiff_t col_len(const PGresult *r, int row, int col) {
    return PQgetisnull(r, row, col) ? -1 : PQgetlength(r, row, col);
}

/* Copies a column to *cursor, NUL-terminated, advancing it; NULL stays NULL. */
static char *col_copy(const PGresult *r, int row, int col, char **cursor) {
    ptrdiff_t n = col_len(r, row, col);
    if (n < 0) return NULL;
    char *dst = *cursor;
    if (n) memcpy(dst, PQgetvalue(r, row, col), (size_t)n);
    dst[n] = '\0';
    *cursor += n + 1;
    return dst;
}

static const int copied_cols[] = {COL_KIND,        COL_IDEM_KEY,  COL_LEASE_OWNER, COL_PROGRESS_MSG,
                                  COL_RESULT_TYPE, COL_ERROR_MSG, COL_FOLLOWUPS,   COL_PARENT};

coil__job *coil__pg_job(const PGresult *r, int row, int first, bool blobs) {
    size_t need = sizeof(coil__job);
    for (size_t i = 0; i < sizeof copied_cols / sizeof *copied_cols; i++)
        need += (size_t)(col_len(r, row, first + copied_cols[i]) + 1);
    if (blobs) {
        need += (size_t)(col_len(r, row, first + COL_PAYLOAD) + 1);
        need += (size_t)(col_len(r, row, first + COL_RESULT) + 1);
    }
    coil__job *j = calloc(1, need);
    if (!j) return NULL;
    char *cur = (char *)(j + 1);
    j->seq = (uint64_t)coil__pg_int(r, row, first + COL_SEQ);
    snprintf(j->id, sizeof j->id, "%s", PQgetvalue(r, row, first + COL_ID));
    j->kind = col_copy(r, row, first + COL_KIND, &cur);
    j->idem_key = col_copy(r, row, first + COL_IDEM_KEY, &cur);
    j->lease_owner = col_copy(r, row, first + COL_LEASE_OWNER, &cur);
    j->progress_msg = col_copy(r, row, first + COL_PROGRESS_MSG, &cur);
    j->result_type = col_copy(r, row, first + COL_RESULT_TYPE, &cur);
    j->error_msg = col_copy(r, row, first + COL_ERROR_MSG, &cur);
    j->followups = col_copy(r, row, first + COL_FOLLOWUPS, &cur);
    j->parent = col_copy(r, row, first + COL_PARENT, &cur);
    if (blobs) {
        j->payload = col_copy(r, row, first + COL_PAYLOAD, &cur);
        j->payload_len = j->payload ? (size_t)PQgetlength(r, row, first + COL_PAYLOAD) : 0;
        j->result = col_copy(r, row, first + COL_RESULT, &cur);
        j->result_len = j->result ? (size_t)PQgetlength(r, row, first + COL_RESULT) : 0;
    } else {
        j->payload_len = (size_t)coil__pg_int(r, row, first + COL_PAYLOAD);
        j->result_len = (size_t)coil__pg_int(r, row, first + COL_RESULT);
    }
    j->priority = (int)coil__pg_int(r, row, first + COL_PRIORITY);
    j->run_at = coil__pg_int(r, row, first + COL_RUN_AT);
    j->attempts = (int)coil__pg_int(r, row, first + COL_ATTEMPTS);
    j->max_attempts = (int)coil__pg_int(r, row, first + COL_MAX_ATTEMPTS);
    j->backoff_base_ms = coil__pg_int(r, row, first + COL_BACKOFF_BASE);
    j->backoff_cap_ms = coil__pg_int(r, row, first + COL_BACKOFF_CAP);
    j->timeout_ms = coil__pg_int(r, row, first + COL_TIMEOUT);
    j->state = (coil__job_state)coil__pg_int(r, row, first + COL_STATE);
    j->cancel_requested = coil__pg_bool(r, row, first + COL_CANCEL_REQUESTED);
    j->progress = (int)coil__pg_int(r, row, first + COL_PROGRESS);
    j->error_signal = (int)coil__pg_int(r, row, first + COL_ERROR_SIGNAL);
    j->error_exit = (int)coil__pg_int(r, row, first + COL_ERROR_EXIT);
    j->error_oom = coil__pg_bool(r, row, first + COL_ERROR_OOM);
    j->created = coil__pg_int(r, row, first + COL_CREATED);
    j->started = coil__pg_int(r, row, first + COL_STARTED);
    j->finished = coil__pg_int(r, row, first + COL_FINISHED);
    j->updated = coil__pg_int(r, row, first + COL_UPDATED);
    return j;
}

/* ------------------------------------------------------------------ schema */

/* Version 1. States are job.c's numbers; times are ms since the epoch. The
 * runnable index holds only queued and failed jobs, in claim order. */
static const char schema_v1[] =
    "CREATE TABLE coil_jobs ("
    " seq bigserial PRIMARY KEY,"
    " id text NOT NULL UNIQUE,"
    " kind text NOT NULL,"
    " payload bytea NOT NULL,"
    " priority integer NOT NULL DEFAULT 0,"
    " run_at bigint NOT NULL,"
    " idem_key text UNIQUE,"
    " attempts integer NOT NULL DEFAULT 0,"
    " max_attempts integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),"
    " backoff_base bigint NOT NULL DEFAULT 1000,"
    " backoff_cap bigint NOT NULL DEFAULT 3600000,"
    " timeout bigint NOT NULL DEFAULT 0,"
    " state smallint NOT NULL DEFAULT 0,"
    " cancel_requested boolean NOT NULL DEFAULT false,"
    " lease_owner text,"
    " node bigint,"
    " token bigint,"
    " progress integer NOT NULL DEFAULT 0,"
    " progress_msg text,"
    " result bytea,"
    " result_type text,"
    " error_msg text,"
    " error_signal integer NOT NULL DEFAULT 0,"
    " error_exit integer NOT NULL DEFAULT -1,"
    " error_oom boolean NOT NULL DEFAULT false,"
    " created bigint NOT NULL,"
    " started bigint NOT NULL DEFAULT 0,"
    " finished bigint NOT NULL DEFAULT 0,"
    " updated bigint NOT NULL);\n"
    "CREATE INDEX coil_jobs_runnable ON coil_jobs (priority DESC, run_at, seq)"
    " WHERE state IN (0, 3);\n"
    "CREATE INDEX coil_jobs_running ON coil_jobs (node) WHERE state = 1;\n"
    "CREATE INDEX coil_jobs_by_state ON coil_jobs (state, seq);\n"
    "CREATE TABLE coil_nodes ("
    " id bigserial PRIMARY KEY,"
    " name text NOT NULL,"
    " started timestamptz NOT NULL DEFAULT now(),"
    " lease_until timestamptz NOT NULL,"
    " lost boolean NOT NULL DEFAULT false);\n"
    "CREATE TABLE coil_counters (name text PRIMARY KEY, value bigint NOT NULL);\n"
    "INSERT INTO coil_counters VALUES ('ids', 0);\n"
    "CREATE SEQUENCE coil_tokens;\n"
    /* Enqueue from SQL, inside the caller's own transaction: the job exists
     * if and only if it commits, and the NOTIFY is delivered at COMMIT. */
    "CREATE FUNCTION coil_enqueue(kind text, payload jsonb DEFAULT '{}',"
    "                             options jsonb DEFAULT '{}') RETURNS text"
    " LANGUAGE plpgsql AS $$\n"
    "#variable_conflict use_variable\n"
    "DECLARE\n"
    "  now_ms bigint := (extract(epoch FROM clock_timestamp()) * 1000)::bigint;\n"
    "  new_id text := replace(gen_random_uuid()::text, '-', '');\n"
    "  key text := options->>'idempotency_key';\n"
    "  due bigint := now_ms + greatest(coalesce((options->>'delay_ms')::bigint, 0), 0);\n"
    "  old_id text;\n"
    "BEGIN\n"
    "  IF kind IS NULL OR octet_length(kind) NOT BETWEEN 1 AND 63 THEN\n"
    "    RAISE EXCEPTION 'coil_enqueue: a kind is 1 to 63 bytes' USING ERRCODE = '22023';\n"
    "  END IF;\n"
    "  INSERT INTO coil_jobs (id, kind, payload, priority, run_at, idem_key, max_attempts,\n"
    "                         backoff_base, backoff_cap, timeout, created, updated)\n"
    "  VALUES (new_id, kind, convert_to(coalesce(payload, '{}')::text, 'UTF8'),\n"
    "          coalesce((options->>'priority')::integer, 0), due, key,\n"
    "          coalesce((options->>'max_attempts')::integer, 3),\n"
    "          coalesce((options->>'backoff_ms')::bigint, 1000),\n"
    "          coalesce((options->>'backoff_cap_ms')::bigint, 3600000),\n"
    "          coalesce((options->>'timeout_ms')::bigint, 0), now_ms, now_ms)\n"
    "  ON CONFLICT (idem_key) DO NOTHING;\n"
    "  IF NOT FOUND THEN\n"
    "    SELECT j.id INTO old_id FROM coil_jobs j WHERE j.idem_key = key;\n"
    "    RETURN old_id;\n"
    "  END IF;\n"
    "  PERFORM pg_notify('" COIL__PG_CHANNEL "', json_build_object('n', 0, 'e',\n"
    "    json_build_array(json_build_array(new_id, 0, false, 0, 0, due, kind, '')))::text);\n"
    "  RETURN new_id;\n"
    "END $$;\n";

/* Version 2: follow-ups (pg_followups.c). */
static const char schema_v2[] =
    "ALTER TABLE coil_jobs ADD COLUMN followups text,"
    " ADD COLUMN followups_pending boolean NOT NULL DEFAULT false, ADD COLUMN parent text;\n"
    "CREATE INDEX coil_jobs_followups_due ON coil_jobs (state) WHERE followups_pending;\n"
    "CREATE INDEX coil_jobs_by_parent ON coil_jobs (parent, seq) WHERE parent IS NOT NULL;\n";

int coil__pg_migrate(PGconn *c, int *found) {
    int err = coil__pg_command(c, "BEGIN", 0, NULL);
    if (!err) err = coil__pg_command(c, "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK_KEY ")", 0,
                                     NULL);
    if (!err) err = coil__pg_command(c, "CREATE TABLE IF NOT EXISTS coil_schema"
                                        " (version integer NOT NULL)", 0, NULL);
    PGresult *res = NULL;
    if (!err) res = coil__pg_exec(c, "SELECT coalesce(max(version), 0) FROM coil_schema", 0,
                                  NULL, NULL, NULL, &err);
    int64_t version = res ? coil__pg_int(res, 0, 0) : 0;
    PQclear(res);
    *found = (int)version;
    if (!err && version > COIL__PG_SCHEMA_VERSION) {
        coil__log("job store: the database's coil schema is version %lld, newer than this "
                  "coil's (%d): upgrade coil",
                  (long long)version, COIL__PG_SCHEMA_VERSION);
        err = -EPROTO;
    }
    if (!err && version < 1) {
        err = coil__pg_command(c, schema_v1, 0, NULL);
        if (!err) err = coil__pg_command(c, "INSERT INTO coil_schema VALUES (1)", 0, NULL);
    }
    if (!err && version < 2) {
        err = coil__pg_command(c, schema_v2, 0, NULL);
        if (!err) err = coil__pg_command(c, "INSERT INTO coil_schema VALUES (2)", 0, NULL);
    }
    if (!err) err = coil__pg_command(c, "COMMIT", 0, NULL);
    else (void)coil__pg_command(c, "ROLLBACK", 0, NULL);
    return err;
}

/* ------------------------------------------------------------------ the backend */

char *coil__pg_kinds_literal(const char *const *kinds) {
    size_t len = 3;
    for (const char *const *k = kinds; *k; k++) len += 2 * strlen(*k) + 3;
    char *lit = malloc(len), *p = lit;
    if (!lit) return NULL;
    *p++ = '{';
    for (const char *const *k = kinds; *k; k++) {
        if (k != kinds) *p++ = ',';
        *p++ = '"';
        for (const char *c = *k; *c; c++) {
            if (*c == '"' || *c == '\\') *p++ = '\\';
            *p++ = *c;
        }
        *p++ = '"';
    }
    *p++ = '}';
    *p = '\0';
    return lit;
}

/* Fails leave what they made for pg_destroy (store_new calls it). */
static int pg_create(coil__store *s, const char *url) {
    coil__pg *pg = calloc(1, sizeof *pg);
    if (!pg) return -ENOMEM;
    s->impl = pg;
    pthread_mutex_init(&pg->owned_lock, NULL);
    pthread_mutex_init(&pg->rlock, NULL);
    pg->wake_pipe[0] = pg->wake_pipe[1] = -1;
    /* A malformed URL is the caller's error, told once, here. */
    char *parse_err = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &parse_err);
    if (!opts) {
        char safe[512], line[256];
        redact(url, safe, sizeof safe);
        first_line(parse_err, line, sizeof line);
        coil__log("job store: bad PostgreSQL URL %s: %s", safe, line);
        PQfreemem(parse_err);
        return -EINVAL;
    }
    PQconninfoFree(opts);
    pg->url = strdup(url);
    pg->readers = calloc(s->opts.max_readers, sizeof *pg->readers);
    bool some_kinds = s->opts.kinds && s->opts.kinds[0];
    if (some_kinds) pg->kinds = coil__pg_kinds_literal(s->opts.kinds);
    if (!pg->url || !pg->readers || (some_kinds && !pg->kinds)) return -ENOMEM;
    pg->lease_ms = s->opts.lease_ms > 0 ? s->opts.lease_ms : DEFAULT_LEASE_MS;
    pg->heartbeat_ms = s->opts.heartbeat_ms > 0 ? s->opts.heartbeat_ms : DEFAULT_HEARTBEAT_MS;
    char host[64] = "";
    gethostname(host, sizeof host - 1);
    /* host:pid, and a number for a second store of the same process. */
    static atomic_uint opened;
    unsigned nth = atomic_fetch_add(&opened, 1);
    if (nth) snprintf(pg->node_name, sizeof pg->node_name, "%s:%ld#%u", host, (long)getpid(), nth);
    else snprintf(pg->node_name, sizeof pg->node_name, "%s:%ld", host, (long)getpid());
    return 0;
}

static void pg_destroy(coil__store *s) {
    coil__pg *pg = s->impl;
    if (!pg) return;
    coil__pg_readers_close(pg);
    pthread_mutex_destroy(&pg->owned_lock);
    pthread_mutex_destroy(&pg->rlock);
    free(pg->owned);
    free(pg->pending);
    free(pg->batch);
    free(pg->readers);
    free(pg->kinds);
    free(pg->url);
    free(pg);
    s->impl = NULL;
}

static int pg_open(coil__store *s) {
    coil__pg *pg = s->impl;
    if (getrandom(&s->rng, sizeof s->rng, 0) != (ssize_t)sizeof s->rng) return -EIO;
    int found;
    int err = coil__pg_connect(pg->url, "opening", true, &pg->conn);
    if (!err) err = coil__pg_migrate(pg->conn, &found);
    if (!err) err = coil__pg_node_register(pg, pg->conn);
    if (!err) err = coil__pg_node_start(s);
    atomic_store(&pg->up, err == 0);
    if (err) {
        PQfinish(pg->conn);
        pg->conn = NULL;
    }
    return err;
}

static int pg_migrate(coil__store *s, int *from, int *to) {
    PGconn *c;
    *from = 0;
    *to = COIL__PG_SCHEMA_VERSION;
    int err = coil__pg_connect(coil__pgs(s)->url, "migrating", true, &c);
    if (!err) err = coil__pg_migrate(c, from);
    PQfinish(c);
    return err;
}

static void pg_close(coil__store *s) {
    coil__pg *pg = s->impl;
    coil__pg_node_stop(s);
    if (pg->conn) coil__pg_node_leave(s, pg->conn);
    PQfinish(pg->conn);
    pg->conn = NULL;
}

static void pg_control(coil__store *s, coil__store_req *r) {
    coil__pg *pg = s->impl;
    if (r->u.pragma.which != COIL__PRAGMA_QUERY_ONLY) {
        r->err = -ENOTSUP; /* the server's disk is not ours to cap */
        return;
    }
    r->err = coil__pg_command(pg->conn, r->u.pragma.value
                                            ? "SET default_transaction_read_only = on"
                                            : "SET default_transaction_read_only = off",
                              0, NULL);
}

/* The writer's connection, reconnected if it broke (at most once per
 * backoff step). Returns 0 or -ENOTCONN. */
static int writer_conn(coil__pg *pg) {
    if (pg->conn && PQstatus(pg->conn) == CONNECTION_OK) return 0;
    if (pg->conn) {
        coil__log("job store: lost the PostgreSQL connection; reconnecting");
        PQfinish(pg->conn);
        pg->conn = NULL;
        pg->retry_at_ms = 0;
        pg->retry_wait_ms = RETRY_FIRST_MS;
    }
    int64_t now = coil__wall_ms();
    if (now < pg->retry_at_ms) return -ENOTCONN;
    PGconn *c;
    if (coil__pg_connect(pg->url, "reconnecting", false, &c) != 0) {
        pg->retry_at_ms = now + pg->retry_wait_ms;
        pg->retry_wait_ms = pg->retry_wait_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS
                                                                  : pg->retry_wait_ms * 2;
        return -ENOTCONN;
    }
    pg->conn = c;
    pg->retry_wait_ms = RETRY_FIRST_MS;
    coil__log("job store: reconnected to PostgreSQL");
    return 0;
}

static int pg_begin(coil__store *s, bool durable) {
    coil__pg *pg = s->impl;
    int err = writer_conn(pg);
    atomic_store(&pg->up, err == 0);
    if (err) return err;
    pg->txn_changed = false;
    pg->txn_may_end = false;
    coil__pg_pending_drop(pg);
    coil__pg_batch_drop(pg);
    err = coil__pg_command(pg->conn, "BEGIN", 0, NULL);
    /* Progress alone need not wait for its flush (as on SQLite). */
    if (!err && !durable) err = coil__pg_command(pg->conn, "SET LOCAL synchronous_commit = off",
                                                 0, NULL);
    return err;
}

/* The follow-ups of the jobs this transaction ended, into it. */
static int write_followups(coil__store *s) {
    coil__pg *pg = s->impl;
    coil__job_event *evs = NULL;
    size_t n = 0;
    int err = coil__pg_followups(pg->conn, &evs, &n);
    for (size_t i = 0; !err && i < n; i++) coil__store_note_event(s, &evs[i]);
    if (n) pg->txn_changed = true;
    free(evs);
    return err;
}

static int pg_commit(coil__store *s, bool *changed) {
    coil__pg *pg = s->impl;
    int err = coil__pg_batch_flush(s);
    if (!err && pg->txn_may_end) err = write_followups(s);
    if (!err) err = coil__pg_notify(pg->conn, atomic_load(&pg->node_id), s->events, s->nevents);
    if (!err) err = coil__pg_command(pg->conn, "COMMIT", 0, NULL);
    if (!err) coil__pg_pending_apply(pg);
    if (err == -ENOTCONN) atomic_store(&pg->up, false);
    *changed = !err && pg->txn_changed;
    return err;
}

static void pg_rollback(coil__store *s) {
    coil__pg *pg = s->impl;
    if (pg->conn && PQtransactionStatus(pg->conn) != PQTRANS_IDLE)
        (void)coil__pg_command(pg->conn, "ROLLBACK", 0, NULL);
    coil__pg_pending_drop(pg);
    coil__pg_batch_drop(pg);
}

static int pg_error(coil__store *s, int rc) {
    (void)s;
    return rc;
}

static bool pg_is_full(int rc) { return rc == -ENOSPC; }

static bool pg_available(const coil__store *s) { return atomic_load(&coil__pgs(s)->up); }

static const char *pg_results_dir(const coil__store *s) {
    (void)s;
    return NULL; /* results are rows: every node can serve them */
}

const coil__store_backend coil__pg_backend = {
    .name = "postgres",
    .create = pg_create,
    .destroy = pg_destroy,
    .open = pg_open,
    .migrate = pg_migrate,
    .close = pg_close,
    .control = pg_control,
    .begin = pg_begin,
    .exec = coil__pg_exec_req,
    .exec_progress = coil__pg_exec_progress,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .error = pg_error,
    .is_full = pg_is_full,
    .read = coil__pg_read,
    .results_dir = pg_results_dir,
    .available = pg_available,
    .poll_interval = COIL_SEC(1),
};
