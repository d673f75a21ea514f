/* db/api.c: the public calls of coil/db.h, over the requests of pool.c. */
#include "db/db_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Thread_local char coil__db_last_error[256];

const char *coil_db_error(void) { return coil__db_last_error; }

struct coil_db_rows {
    coil_db *db;
    db_conn *conn;        /* held while rows remain on it; NULL once they are all here */
    size_t ncols;
    char *names;          /* one block */
    const char **name;    /* into names */
    db_chunk chunk;
    size_t at;            /* the current row in the chunk, +1 (0: before the first) */
    bool more;            /* the connection has rows left */
    int err;              /* a failed fetch: every later next() returns it */
};

struct coil_db_tx {
    coil_db *db;
    db_conn *conn;        /* the writer, held */
};

/* Runs a request; the outcome's message goes to coil_db_error(). */
static int submit(db_req *r, bool interruptible) {
    int err = coil__db_submit(r, interruptible);
    if (err) {
        if (r->errmsg[0]) snprintf(coil__db_last_error, sizeof coil__db_last_error, "%s", r->errmsg);
        else snprintf(coil__db_last_error, sizeof coil__db_last_error, "%s", coil_strerror(err));
    } else {
        coil__db_last_error[0] = '\0';
    }
    return err;
}

static db_req *new_req(db_req *r, coil_db *db, db_op op, const char *sql,
                       const coil_db_value *args, size_t nargs) {
    memset(r, 0, sizeof *r);
    r->db = db;
    r->op = op;
    r->sql = sql;
    r->args = args;
    r->nargs = nargs;
    coil__list_init(&r->link);
    return r;
}

static bool bad_args(const char *sql, const coil_db_value *args, size_t nargs) {
    return !sql || (nargs && !args);
}

/* ------------------------------------------------------------------ statements */

static int exec_on(coil_db *db, db_conn *target, const char *sql, const coil_db_value *args,
                   size_t nargs, coil_db_done *done) {
    if (!db || bad_args(sql, args, nargs)) return -EINVAL;
    db_req r;
    new_req(&r, db, DB_OP_EXEC, sql, args, nargs);
    r.target = target;
    r.writer = true;
    int err = submit(&r, true);
    if (!err && done) *done = r.done;
    return err;
}

int coil_db_exec(coil_db *db, const char *sql, const coil_db_value *args, size_t nargs,
                 coil_db_done *done) {
    return exec_on(db, NULL, sql, args, nargs, done);
}

static int query_on(coil_db *db, db_conn *target, const char *sql, const coil_db_value *args,
                    size_t nargs, coil_db_rows **out) {
    if (out) *out = NULL;
    if (!db || !out || bad_args(sql, args, nargs)) return -EINVAL;
    coil_db_rows *rows = calloc(1, sizeof *rows);
    if (!rows) return -ENOMEM;
    db_req r;
    new_req(&r, db, DB_OP_QUERY, sql, args, nargs);
    r.target = target;
    int err = submit(&r, true);
    if (!err) {
        rows->name = malloc(sizeof *rows->name * (r.ncols ? r.ncols : 1));
        if (!rows->name) err = -ENOMEM;
    }
    if (err) {
        coil__db_chunk_free(&r.chunk);
        free(r.names);
        if (r.more) { /* it is held: give it back */
            db_req *drop = calloc(1, sizeof *drop);
            if (drop) {
                new_req(drop, db, DB_OP_DROP, NULL, NULL, 0);
                drop->target = r.ran_on;
                coil__db_post(drop);
            }
        }
        free(rows->name);
        free(rows);
        return err;
    }
    rows->db = db;
    rows->ncols = r.ncols;
    rows->names = r.names;
    const char *p = r.names;
    for (size_t i = 0; i < r.ncols; i++) {
        rows->name[i] = p;
        p += strlen(p) + 1;
    }
    rows->chunk = r.chunk;
    rows->more = r.more;
    rows->conn = r.more ? r.ran_on : NULL;
    *out = rows;
    return 0;
}

int coil_db_query(coil_db *db, const char *sql, const coil_db_value *args, size_t nargs,
                  coil_db_rows **out) {
    return query_on(db, NULL, sql, args, nargs, out);
}

int coil_db_query_json(coil_db *db, const char *sql, const coil_db_value *args, size_t nargs,
                       char **json, size_t *len) {
    if (json) *json = NULL;
    if (!db || !json || bad_args(sql, args, nargs)) return -EINVAL;
    db_req r;
    new_req(&r, db, DB_OP_JSON, sql, args, nargs);
    int err = submit(&r, true);
    if (err) {
        free(r.json);
        return err;
    }
    *json = r.json;
    if (len) *len = r.json_len;
    return 0;
}

/* ------------------------------------------------------------------ rows */

int coil_db_next(coil_db_rows *rows) {
    if (!rows) return -EINVAL;
    if (rows->err) return rows->err;
    if (rows->at < rows->chunk.nrows) {
        rows->at++;
        return 1;
    }
    if (!rows->more) return 0;
    db_req r;
    new_req(&r, rows->db, DB_OP_FETCH, NULL, NULL, 0);
    r.target = rows->conn;
    int err = submit(&r, true);
    coil__db_chunk_free(&rows->chunk);
    rows->at = 0;
    if (err) {
        coil__db_chunk_free(&r.chunk);
        rows->err = err;
        /* Withdrawn before it ran, the query is still open on its
         * connection (close drops it); else the thread has reset it. */
        if (r.ran_on) rows->more = false;
        return err;
    }
    rows->chunk = r.chunk;
    rows->more = r.more;
    if (!rows->more) rows->conn = NULL;
    if (rows->chunk.nrows == 0) return 0;
    rows->at = 1;
    return 1;
}

static const db_cell *cell(const coil_db_rows *rows, size_t col) {
    if (!rows || col >= rows->ncols || rows->at == 0 || rows->at > rows->chunk.nrows) return NULL;
    return &rows->chunk.cells[(rows->at - 1) * rows->ncols + col];
}

size_t coil_db_columns(const coil_db_rows *rows) { return rows ? rows->ncols : 0; }

const char *coil_db_column_name(const coil_db_rows *rows, size_t col) {
    return rows && col < rows->ncols ? rows->name[col] : NULL;
}

coil_db_type coil_db_type_of(const coil_db_rows *rows, size_t col) {
    const db_cell *c = cell(rows, col);
    return c ? c->type : COIL_DB_TYPE_NULL;
}

int64_t coil_db_int(const coil_db_rows *rows, size_t col) {
    const db_cell *c = cell(rows, col);
    if (!c) return 0;
    if (c->type == COIL_DB_TYPE_REAL) return (int64_t)c->r;
    if (c->type == COIL_DB_TYPE_TEXT) return strtoll(rows->chunk.arena + c->off, NULL, 10);
    return c->type == COIL_DB_TYPE_INT ? c->i : 0;
}

double coil_db_real(const coil_db_rows *rows, size_t col) {
    const db_cell *c = cell(rows, col);
    if (!c) return 0;
    if (c->type == COIL_DB_TYPE_INT) return (double)c->i;
    if (c->type == COIL_DB_TYPE_TEXT) return strtod(rows->chunk.arena + c->off, NULL);
    return c->type == COIL_DB_TYPE_REAL ? c->r : 0;
}

/* Text and blobs are stored alike; integers and reals have no bytes here. */
static const char *bytes(const coil_db_rows *rows, size_t col, size_t *len) {
    const db_cell *c = cell(rows, col);
    bool has = c && (c->type == COIL_DB_TYPE_TEXT || c->type == COIL_DB_TYPE_BLOB);
    if (len) *len = has ? c->n : 0;
    return has ? rows->chunk.arena + c->off : NULL;
}

const char *coil_db_text(const coil_db_rows *rows, size_t col, size_t *len) {
    return bytes(rows, col, len);
}

const void *coil_db_blob(const coil_db_rows *rows, size_t col, size_t *len) {
    return bytes(rows, col, len);
}

void coil_db_rows_close(coil_db_rows *rows) {
    if (!rows) return;
    if (rows->more && rows->conn) {
        db_req *drop = calloc(1, sizeof *drop);
        if (drop) {
            new_req(drop, rows->db, DB_OP_DROP, NULL, NULL, 0);
            drop->target = rows->conn;
            coil__db_post(drop);
        }
        /* Without memory for the request the connection stays held by the
         * query until the database closes: no wrong answer, one reader less. */
    }
    coil__db_chunk_free(&rows->chunk);
    free(rows->names);
    free(rows->name);
    free(rows);
}

/* ------------------------------------------------------------------ transactions */

int coil_db_begin(coil_db *db, coil_db_tx **out) {
    if (out) *out = NULL;
    if (!db || !out) return -EINVAL;
    coil_db_tx *tx = calloc(1, sizeof *tx);
    if (!tx) return -ENOMEM;
    db_req r;
    new_req(&r, db, DB_OP_BEGIN, NULL, NULL, 0);
    r.writer = true;
    int err = submit(&r, true);
    if (err && r.ran_on && r.ran_on->in_tx) {
        /* Interrupted after BEGIN ran: end it. */
        db_req end;
        new_req(&end, db, DB_OP_ROLLBACK, NULL, NULL, 0);
        end.target = r.ran_on;
        (void)coil__db_submit(&end, false);
    }
    if (err) {
        free(tx);
        return err;
    }
    tx->db = db;
    tx->conn = r.ran_on;
    *out = tx;
    return 0;
}

int coil_db_tx_exec(coil_db_tx *tx, const char *sql, const coil_db_value *args, size_t nargs,
                    coil_db_done *done) {
    if (!tx) return -EINVAL;
    return exec_on(tx->db, tx->conn, sql, args, nargs, done);
}

int coil_db_tx_query(coil_db_tx *tx, const char *sql, const coil_db_value *args, size_t nargs,
                     coil_db_rows **out) {
    if (!tx) return -EINVAL;
    return query_on(tx->db, tx->conn, sql, args, nargs, out);
}

static int end_tx(coil_db_tx *tx, db_op op) {
    if (!tx) return -EINVAL;
    db_req r;
    new_req(&r, tx->db, op, NULL, NULL, 0);
    r.target = tx->conn;
    int err = submit(&r, false);
    free(tx);
    return err;
}

int coil_db_commit(coil_db_tx *tx) { return end_tx(tx, DB_OP_COMMIT); }

int coil_db_rollback(coil_db_tx *tx) { return end_tx(tx, DB_OP_ROLLBACK); }

int coil_db_transaction(coil_db *db, coil_db_tx_fn fn, void *arg) {
    if (!fn) return -EINVAL;
    coil_db_tx *tx;
    int err = coil_db_begin(db, &tx);
    if (err) return err;
    err = fn(tx, arg);
    if (err) {
        char keep[sizeof coil__db_last_error];
        memcpy(keep, coil__db_last_error, sizeof keep);
        (void)coil_db_rollback(tx);
        memcpy(coil__db_last_error, keep, sizeof keep); /* the failure's own message */
        return err;
    }
    return coil_db_commit(tx);
}
