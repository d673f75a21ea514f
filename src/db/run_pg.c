/* db/run_pg.c: a coil_db request on a PostgreSQL connection's thread.
 *
 * The same contract as run.c, in libpq's terms:
 *
 *   - "?" placeholders (outside quotes) become $1, $2, ... so that one SQL
 *     text serves both backends; values go as parameters, never as text
 *     in the SQL (blobs in binary format).
 *   - Readers are sessions with default_transaction_read_only on: a
 *     statement that writes fails there (SQLSTATE 25006) and is moved to
 *     the writer, as a write met on an SQLite reader is.
 *   - A query's whole result comes back to its connection's thread; the
 *     task takes it in chunks of CHUNK_ROWS rows, as from SQLite.
 *   - JSON is PostgreSQL's own: json_agg over the query (blobs come out as
 *     bytea's "\x..." text, not base64).
 *   - An interrupt is PQcancel(), which libpq allows from any thread.
 *   - A statement's result is awaited in slices of a millisecond (poll on
 *     libpq's socket), so that a long one lets the pool wake another
 *     reader for the queue behind it (coil__db_running_long).
 */
#include "db/db_impl.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CHUNK_ROWS = 256, MAX_ARGS = 256 };

/* PostgreSQL's type OIDs (pg_type.dat), for the columns' types. */
enum { OID_BOOL = 16, OID_BYTEA = 17, OID_INT8 = 20, OID_INT2 = 21, OID_INT4 = 23,
       OID_OID = 26, OID_FLOAT4 = 700, OID_FLOAT8 = 701, OID_NUMERIC = 1700 };

/* SQLSTATE as a negative errno. */
static int pg_errno(const PGresult *res, PGconn *c) {
    const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (!st) return PQstatus(c) == CONNECTION_OK ? -EIO : -ENOTCONN;
    if (strcmp(st, "23505") == 0) return -EEXIST;
    if (strncmp(st, "23", 2) == 0) return -EPERM;
    if (strcmp(st, "57014") == 0) return -ECANCELED;
    if (strcmp(st, "25P02") == 0) return -ECANCELED; /* the transaction failed earlier */
    if (strcmp(st, "25006") == 0) return -EROFS;
    if (strcmp(st, "40001") == 0 || strcmp(st, "40P01") == 0 || strcmp(st, "55P03") == 0)
        return -EBUSY;
    if (strcmp(st, "53100") == 0) return -ENOSPC;
    if (strncmp(st, "53", 2) == 0) return -ENOMEM;
    if (strncmp(st, "08", 2) == 0) return -ENOTCONN;
    if (strncmp(st, "28", 2) == 0) return -EACCES;
    return -EINVAL; /* 42 syntax and names, 22 data, ... */
}

static bool fail_res(db_conn *c, db_req *r, PGresult *res) {
    r->err = pg_errno(res, c->pq);
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    snprintf(r->errmsg, sizeof r->errmsg, "%s", msg ? msg : PQerrorMessage(c->pq));
    r->errmsg[strcspn(r->errmsg, "\n")] = '\0';
    return false;
}

static bool fail_msg(db_req *r, int err, const char *msg) {
    r->err = err;
    snprintf(r->errmsg, sizeof r->errmsg, "%s", msg);
    return false;
}

/* ------------------------------------------------------------------ the connection */

static void quiet(void *arg, const char *message) {
    (void)arg;
    (void)message;
}

int coil__db_pg_open(db_conn *c, char *errmsg, size_t cap) {
    const char *keys[] = {"dbname", "connect_timeout", "application_name", NULL};
    const char *vals[] = {c->db->path, "5", "coil_db", NULL};
    c->pq = PQconnectdbParams(keys, vals, 1);
    if (!c->pq || PQstatus(c->pq) != CONNECTION_OK) {
        const char *msg = c->pq ? PQerrorMessage(c->pq) : "out of memory";
        snprintf(errmsg, cap, "%s", msg);
        errmsg[strcspn(errmsg, "\n")] = '\0';
        return strstr(msg, "authentication") || strstr(msg, "password") ? -EACCES
               : strstr(msg, "does not exist")                          ? -ENOENT
                                                                        : -ECONNREFUSED;
    }
    PQsetNoticeProcessor(c->pq, quiet, NULL);
    if (!c->writer) {
        PGresult *res = PQexec(c->pq, "SET default_transaction_read_only = on");
        bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
        if (!ok) {
            snprintf(errmsg, cap, "%s", PQerrorMessage(c->pq));
            return -EIO;
        }
    }
    c->pq_cancel = PQgetCancel(c->pq);
    return 0;
}

void coil__db_pg_close(db_conn *c) {
    PQclear(c->pq_open);
    c->pq_open = NULL;
    if (c->pq_cancel) PQfreeCancel(c->pq_cancel);
    c->pq_cancel = NULL;
    if (c->pq) PQfinish(c->pq);
    c->pq = NULL;
}

void coil__db_pg_interrupt(db_conn *c) {
    char err[128];
    if (c->pq_cancel) (void)PQcancel(c->pq_cancel, err, sizeof err);
}

/* ------------------------------------------------------------------ statements */

/* The result of the statement just sent (PQexecParams' answer, as one
 * statement's last result): NULL if sending failed, which fail_res reads
 * from the connection. An interrupt flagged while it runs is sent again
 * every CANCEL_AGAIN: one that reached the server before the statement
 * did (the caller's loop can flag a request the moment it is taken) had
 * nothing to cancel. */
#define CANCEL_AGAIN COIL_MSEC(50)

static PGresult *await_result(db_conn *c, int sent) {
    if (!sent) return NULL;
    int fd = PQsocket(c->pq);
    coil_time cancel_at = 0;
    while (PQisBusy(c->pq)) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, 1);
        if (n == 0) {
            coil__db_running_long(c);
            coil_time now = coil_now();
            if (atomic_load(&c->interrupt) && now >= cancel_at) {
                coil__db_pg_interrupt(c);
                cancel_at = now + CANCEL_AGAIN;
            }
        }
        if ((n > 0 || (n < 0 && errno != EINTR)) && !PQconsumeInput(c->pq)) break;
    }
    PGresult *res = NULL, *next;
    while ((next = PQgetResult(c->pq))) {
        PQclear(res);
        res = next;
    }
    return res;
}

/* `sql` with each ? outside quotes and comments turned into $N, in
 * malloc'd memory; *count gets N. NULL on ENOMEM. */
static char *placeholders(const char *sql, size_t *count) {
    size_t len = strlen(sql), n = 0, marks = 0;
    for (const char *p = sql; *p; p++) marks += *p == '?';
    size_t cap = len + marks * 21 + 1; /* a ? grows to $ and 20 digits at most */
    char *out = malloc(cap), *w = out;
    if (!out) return NULL;
    char quote = 0;
    for (const char *p = sql; *p; p++) {
        if (quote) {
            if (*p == quote) quote = 0;
            *w++ = *p;
        } else if (*p == '\'' || *p == '"') {
            quote = *p;
            *w++ = *p;
        } else if (*p == '?') {
            w += snprintf(w, cap - (size_t)(w - out), "$%zu", ++n);
        } else {
            *w++ = *p;
        }
    }
    *w = '\0';
    *count = n;
    return out;
}

/* Runs r->sql with r->args. The result (NULL: failed, r->err set). */
static PGresult *execute(db_conn *c, db_req *r, const char *wrap) {
    size_t want;
    char *sql = placeholders(r->sql, &want);
    if (!sql) {
        fail_msg(r, -ENOMEM, "out of memory");
        return NULL;
    }
    if (want != r->nargs || r->nargs > MAX_ARGS) {
        char msg[96];
        snprintf(msg, sizeof msg, "the statement has %zu parameters; %zu values were given", want,
                 r->nargs);
        free(sql);
        fail_msg(r, -EINVAL, msg);
        return NULL;
    }
    if (wrap) { /* the query inside another (JSON) */
        size_t n = strlen(wrap) + strlen(sql) + 1;
        char *w = malloc(n);
        if (!w) {
            free(sql);
            fail_msg(r, -ENOMEM, "out of memory");
            return NULL;
        }
        snprintf(w, n, wrap, sql);
        free(sql);
        sql = w;
    }
    const char *vals[MAX_ARGS];
    int lens[MAX_ARGS], fmts[MAX_ARGS];
    char nums[MAX_ARGS][32];
    char *copies[MAX_ARGS] = {0};
    bool ok = true;
    for (size_t i = 0; i < r->nargs && ok; i++) {
        const coil_db_value *v = &r->args[i];
        lens[i] = 0;
        fmts[i] = 0;
        switch (v->type) {
        case COIL_DB_TYPE_NULL: vals[i] = NULL; break;
        case COIL_DB_TYPE_INT:
            snprintf(nums[i], sizeof nums[i], "%lld", (long long)v->v.i);
            vals[i] = nums[i];
            break;
        case COIL_DB_TYPE_REAL:
            snprintf(nums[i], sizeof nums[i], "%.17g", v->v.r);
            vals[i] = nums[i];
            break;
        case COIL_DB_TYPE_TEXT:
            if (!v->v.b.p) ok = fail_msg(r, -EINVAL, "a NULL text value (use COIL_DB_NULL)");
            else if (v->v.b.n == SIZE_MAX) vals[i] = v->v.b.p;
            else if (!(copies[i] = strndup(v->v.b.p, v->v.b.n))) ok = fail_msg(r, -ENOMEM, "out of memory");
            else vals[i] = copies[i];
            break;
        case COIL_DB_TYPE_BLOB:
            vals[i] = v->v.b.n ? v->v.b.p : "";
            lens[i] = (int)v->v.b.n;
            fmts[i] = 1;
            break;
        default: ok = fail_msg(r, -EINVAL, "a value of no known type");
        }
    }
    PGresult *res = NULL;
    if (ok) {
        res = await_result(c, PQsendQueryParams(c->pq, sql, (int)r->nargs, NULL, vals, lens,
                                                fmts, 0));
        ExecStatusType st = PQresultStatus(res);
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
            fail_res(c, r, res);
            PQclear(res);
            res = NULL;
        }
    }
    for (size_t i = 0; i < r->nargs; i++) free(copies[i]);
    free(sql);
    return res;
}

/* ------------------------------------------------------------------ rows */

static bool take_names(db_req *r, const PGresult *res) {
    r->ncols = (size_t)PQnfields(res);
    size_t len = 0;
    for (size_t i = 0; i < r->ncols; i++) len += strlen(PQfname(res, (int)i)) + 1;
    r->names = malloc(len ? len : 1);
    if (!r->names) return fail_msg(r, -ENOMEM, "out of memory");
    char *p = r->names;
    for (size_t i = 0; i < r->ncols; i++) {
        size_t k = strlen(PQfname(res, (int)i)) + 1;
        memcpy(p, PQfname(res, (int)i), k);
        p += k;
    }
    return true;
}

/* The next chunk of c->pq_open into r->chunk. */
static bool fetch_chunk(db_conn *c, db_req *r) {
    PGresult *res = c->pq_open;
    db_chunk *ch = &r->chunk;
    int rows = PQntuples(res), ncols = PQnfields(res);
    ch->cells = malloc(sizeof *ch->cells * (size_t)(ncols ? ncols : 1) * CHUNK_ROWS);
    if (!ch->cells) return fail_msg(r, -ENOMEM, "out of memory");
    for (; c->pq_next < rows && ch->nrows < CHUNK_ROWS; c->pq_next++) {
        db_cell *row = &ch->cells[ch->nrows * (size_t)ncols];
        for (int col = 0; col < ncols; col++) {
            db_cell *cell = &row[col];
            memset(cell, 0, sizeof *cell);
            if (PQgetisnull(res, c->pq_next, col)) {
                cell->type = COIL_DB_TYPE_NULL;
                continue;
            }
            const char *v = PQgetvalue(res, c->pq_next, col);
            switch (PQftype(res, col)) {
            case OID_INT2: case OID_INT4: case OID_INT8: case OID_OID:
                cell->type = COIL_DB_TYPE_INT;
                cell->i = strtoll(v, NULL, 10);
                break;
            case OID_BOOL:
                cell->type = COIL_DB_TYPE_INT;
                cell->i = v[0] == 't';
                break;
            case OID_FLOAT4: case OID_FLOAT8: case OID_NUMERIC:
                cell->type = COIL_DB_TYPE_REAL;
                cell->r = strtod(v, NULL);
                break;
            case OID_BYTEA: {
                size_t n;
                unsigned char *b = PQunescapeBytea((const unsigned char *)v, &n);
                cell->type = COIL_DB_TYPE_BLOB;
                cell->n = n;
                bool put = b && coil__db_arena_put(ch, b, n, &cell->off);
                PQfreemem(b);
                if (!put) return fail_msg(r, -ENOMEM, "out of memory");
                break;
            }
            default:
                cell->type = COIL_DB_TYPE_TEXT;
                cell->n = (size_t)PQgetlength(res, c->pq_next, col);
                if (!coil__db_arena_put(ch, v, cell->n, &cell->off))
                    return fail_msg(r, -ENOMEM, "out of memory");
            }
        }
        ch->nrows++;
    }
    r->more = c->pq_next < rows;
    if (!r->more) {
        PQclear(c->pq_open);
        c->pq_open = NULL;
    }
    return true;
}

/* ------------------------------------------------------------------ requests */

static bool run_plain(db_conn *c, db_req *r, const char *sql) {
    PGresult *res = PQexec(c->pq, sql);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok) fail_res(c, r, res);
    PQclear(res);
    return ok;
}

bool coil__db_pg_run(db_conn *c, db_req *r) {
    switch (r->op) {
    case DB_OP_BEGIN:
        if (run_plain(c, r, "BEGIN")) c->in_tx = true;
        return false;
    case DB_OP_COMMIT:
    case DB_OP_ROLLBACK: {
        PQclear(c->pq_open);
        c->pq_open = NULL;
        bool failed = PQtransactionStatus(c->pq) == PQTRANS_INERROR;
        if (r->op == DB_OP_COMMIT && !failed) run_plain(c, r, "COMMIT");
        else run_plain(c, r, "ROLLBACK");
        if (r->op == DB_OP_COMMIT && failed && !r->err)
            fail_msg(r, -ECANCELED, "the transaction was rolled back: a statement in it failed");
        c->in_tx = false;
        return false;
    }
    case DB_OP_DROP:
        PQclear(c->pq_open);
        c->pq_open = NULL;
        return false;
    case DB_OP_FETCH:
        if (!c->pq_open) return fail_msg(r, -EINVAL, "the query has no rows left");
        fetch_chunk(c, r);
        return false;
    default: break;
    }
    if (r->op == DB_OP_QUERY && c->pq_open)
        return fail_msg(r, -EBUSY, "a query of this transaction is still open: close its rows "
                                   "first");
    PGresult *res = execute(c, r, r->op == DB_OP_JSON
                                      ? "SELECT coalesce(json_agg(q), '[]')::text FROM (%s) q"
                                      : NULL);
    if (!res) return !c->writer && r->err == -EROFS; /* a write on a reader: the writer's */
    switch (r->op) {
    case DB_OP_EXEC:
        r->done.changes = strtoll(PQcmdTuples(res), NULL, 10);
        r->done.last_id = 0; /* PostgreSQL has no rowid: use RETURNING */
        PQclear(res);
        break;
    case DB_OP_JSON:
        r->json = strdup(PQntuples(res) ? PQgetvalue(res, 0, 0) : "[]");
        r->json_len = r->json ? strlen(r->json) : 0;
        if (!r->json) fail_msg(r, -ENOMEM, "out of memory");
        PQclear(res);
        break;
    case DB_OP_QUERY:
        c->pq_open = res;
        c->pq_next = 0;
        if (take_names(r, res)) fetch_chunk(c, r);
        else {
            PQclear(c->pq_open);
            c->pq_open = NULL;
        }
        break;
    default:
        PQclear(res);
        fail_msg(r, -EINVAL, "not a statement");
    }
    return false;
}
