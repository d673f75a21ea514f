/* db/run.c: a coil_db request on its connection's thread, in SQLite terms.
 *
 * Statements are prepared once a connection and kept by SQL text (LRU, up
 * to cfg.statement_cache); one request is one statement, so SQL with a
 * second statement after the first is refused rather than half run.
 * Parameters are bound, and their number must match. A query's rows come
 * back in chunks of up to CHUNK_ROWS rows (or about CHUNK_BYTES), copied
 * into one arena, so that the task reads them without a trip per row.
 *
 * The busy handler sleeps, 1 ms doubling to 20 ms, until busy_timeout, or
 * until the request's task gives up (the interrupt flag): it never spins.
 */
#include "db/db_impl.h"
#include "runtime/json_text.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { CHUNK_ROWS = 256, CHUNK_BYTES = 1 << 20, BUSY_SLEEP_MAX_MS = 20 };

/* ------------------------------------------------------------------ errors */

int coil__db_errno(int rc) {
    switch (rc & 0xff) {
    case SQLITE_OK: case SQLITE_ROW: case SQLITE_DONE: return 0;
    case SQLITE_BUSY: case SQLITE_LOCKED: return -EBUSY;
    case SQLITE_NOMEM: return -ENOMEM;
    case SQLITE_READONLY: return -EROFS;
    case SQLITE_INTERRUPT: return -ECANCELED;
    case SQLITE_IOERR: return -EIO;
    case SQLITE_CORRUPT: case SQLITE_NOTADB: return -EBADMSG;
    case SQLITE_FULL: return -ENOSPC;
    case SQLITE_CANTOPEN: return -ENOENT;
    case SQLITE_PERM: case SQLITE_AUTH: return -EACCES;
    case SQLITE_TOOBIG: return -EMSGSIZE;
    case SQLITE_CONSTRAINT:
        return rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY ? -EEXIST
                                                                                      : -EPERM;
    default: return -EINVAL; /* SQLITE_ERROR, MISMATCH, RANGE, MISUSE... */
    }
}

/* Fails `r` with rc and the connection's message. Returns false. */
static bool fail(db_conn *c, db_req *r, int rc) {
    int ext = sqlite3_extended_errcode(c->h); /* the extended code of the same error */
    r->err = coil__db_errno((ext & 0xff) == (rc & 0xff) ? ext : rc);
    snprintf(r->errmsg, sizeof r->errmsg, "%s", sqlite3_errmsg(c->h));
    return false;
}

static bool fail_msg(db_req *r, int err, const char *msg) {
    r->err = err;
    snprintf(r->errmsg, sizeof r->errmsg, "%s", msg);
    return false;
}

/* ------------------------------------------------------------------ the connection */

/* SQLite calls it every PROGRESS_EVERY virtual machine steps: a reader's
 * long statement lets the pool wake another reader, and a request whose
 * task gave up stops here even if sqlite3_interrupt() came before the
 * statement began (when SQLite ignores it). */
enum { PROGRESS_EVERY = 1000 };

static int progress_handler(void *arg) {
    db_conn *c = arg;
    coil__db_running_long(c);
    return atomic_load(&c->interrupt) ? 1 : 0; /* nonzero: SQLITE_INTERRUPT */
}

static int busy_handler(void *arg, int count) {
    db_conn *c = arg;
    coil__db_running_long(c);
    if (count == 0) c->busy_sleep_ms = 1;
    if (atomic_load(&c->interrupt) || coil_now() >= c->busy_until) return 0;
    struct timespec ts = {0, (long)c->busy_sleep_ms * 1000000L};
    nanosleep(&ts, NULL);
    if (c->busy_sleep_ms < BUSY_SLEEP_MAX_MS) c->busy_sleep_ms *= 2;
    if (c->busy_sleep_ms > BUSY_SLEEP_MAX_MS) c->busy_sleep_ms = BUSY_SLEEP_MAX_MS;
    return 1;
}

/* "file:PATH?immutable=1", PATH with the bytes that mean something in a
 * URI ('%', '?', '#') percent-encoded. malloc'd, or NULL. */
static char *immutable_uri(const char *path) {
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(path);
    char *uri = malloc(5 + 3 * n + sizeof "?immutable=1");
    if (!uri) return NULL;
    char *w = uri;
    memcpy(w, "file:", 5);
    w += 5;
    for (const char *p = path; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '%' || ch == '?' || ch == '#') {
            *w++ = '%';
            *w++ = hex[ch >> 4];
            *w++ = hex[ch & 15];
        } else {
            *w++ = (char)ch;
        }
    }
    memcpy(w, "?immutable=1", sizeof "?immutable=1");
    return uri;
}

int coil__db_conn_open(db_conn *c, char *errmsg, size_t cap) {
    coil_db *db = c->db;
    if (db->pg) return coil__db_pg_open(c, errmsg, cap);
    int flags = SQLITE_OPEN_NOMUTEX | (c->writer ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
                                                 : SQLITE_OPEN_READONLY);
    char *uri = NULL;
    if (db->cfg.immutable) {
        if (!(uri = immutable_uri(db->path))) {
            snprintf(errmsg, cap, "out of memory");
            return -ENOMEM;
        }
        flags |= SQLITE_OPEN_URI;
    }
    int rc = sqlite3_open_v2(uri ? uri : db->path, &c->h, flags, NULL);
    free(uri);
    if (rc == SQLITE_OK) {
        sqlite3_extended_result_codes(c->h, 1);
        sqlite3_busy_handler(c->h, busy_handler, c);
        sqlite3_progress_handler(c->h, PROGRESS_EVERY, progress_handler, c);
        c->busy_until = coil_now() + db->cfg.busy_timeout;
        /* WAL: readers run while the writer commits. A reader's
         * journal_mode is the file's, set by the writer first. */
        if (c->writer) rc = sqlite3_exec(c->h, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(c->h, db->cfg.relaxed ? "PRAGMA synchronous=NORMAL"
                                                    : "PRAGMA synchronous=FULL",
                              NULL, NULL, NULL);
        /* A first read validates the file (not a database: SQLITE_NOTADB). */
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(c->h, "SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL);
    }
    c->cache = calloc(db->cfg.statement_cache, sizeof *c->cache);
    if (rc == SQLITE_OK && !c->cache) rc = SQLITE_NOMEM;
    if (rc != SQLITE_OK) {
        snprintf(errmsg, cap, "%s: %s", db->path, c->h ? sqlite3_errmsg(c->h) : sqlite3_errstr(rc));
        int err = coil__db_errno(c->h ? sqlite3_extended_errcode(c->h) : rc);
        if ((rc & 0xff) == SQLITE_CANTOPEN && access(db->path, F_OK) == 0) err = -EACCES;
        return err ? err : -EIO;
    }
    return 0;
}

void coil__db_conn_close(db_conn *c) {
    if (c->db->pg) {
        coil__db_pg_close(c);
        return;
    }
    if (c->open_query) sqlite3_reset(c->open_query);
    for (size_t i = 0; i < c->ncache; i++) {
        sqlite3_finalize(c->cache[i].st);
        free(c->cache[i].sql);
    }
    free(c->cache);
    c->cache = NULL;
    c->ncache = 0;
    if (c->h) sqlite3_close(c->h);
    c->h = NULL;
}

/* ------------------------------------------------------------------ statements */

/* The prepared statement for `sql`, from the cache or prepared now. */
static sqlite3_stmt *prepare(db_conn *c, db_req *r) {
    for (size_t i = 0; i < c->ncache; i++) {
        if (strcmp(c->cache[i].sql, r->sql) == 0) {
            c->cache[i].used = ++c->tick;
            return c->cache[i].st;
        }
    }
    sqlite3_stmt *st = NULL;
    const char *tail = NULL;
    int rc = sqlite3_prepare_v3(c->h, r->sql, -1, SQLITE_PREPARE_PERSISTENT, &st, &tail);
    if (rc != SQLITE_OK) {
        fail(c, r, rc);
        return NULL;
    }
    if (!st) {
        fail_msg(r, -EINVAL, "no statement in the SQL");
        return NULL;
    }
    while (tail && (*tail == ' ' || *tail == '\n' || *tail == '\t' || *tail == '\r' || *tail == ';'))
        tail++;
    if (tail && *tail) {
        sqlite3_finalize(st);
        fail_msg(r, -EINVAL, "one statement a call: there is SQL after the first statement");
        return NULL;
    }
    char *copy = strdup(r->sql);
    if (!copy) {
        sqlite3_finalize(st);
        fail_msg(r, -ENOMEM, "out of memory");
        return NULL;
    }
    size_t slot = c->ncache;
    if (c->ncache == c->db->cfg.statement_cache) { /* evict the least recently used */
        slot = 0;
        for (size_t i = 1; i < c->ncache; i++)
            if (c->cache[i].used < c->cache[slot].used) slot = i;
        sqlite3_finalize(c->cache[slot].st);
        free(c->cache[slot].sql);
    } else {
        c->ncache++;
    }
    c->cache[slot] = (db_stmt){.sql = copy, .st = st, .used = ++c->tick};
    return st;
}

static bool bind_all(db_conn *c, db_req *r, sqlite3_stmt *st) {
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    int want = sqlite3_bind_parameter_count(st);
    if ((size_t)want != r->nargs) {
        char msg[96];
        snprintf(msg, sizeof msg, "the statement has %d parameters; %zu values were given", want,
                 r->nargs);
        return fail_msg(r, -EINVAL, msg);
    }
    for (size_t i = 0; i < r->nargs; i++) {
        const coil_db_value *v = &r->args[i];
        int at = (int)i + 1, rc;
        switch (v->type) {
        case COIL_DB_TYPE_NULL: rc = sqlite3_bind_null(st, at); break;
        case COIL_DB_TYPE_INT: rc = sqlite3_bind_int64(st, at, v->v.i); break;
        case COIL_DB_TYPE_REAL: rc = sqlite3_bind_double(st, at, v->v.r); break;
        case COIL_DB_TYPE_TEXT:
            if (!v->v.b.p) return fail_msg(r, -EINVAL, "a NULL text value (use COIL_DB_NULL)");
            rc = sqlite3_bind_text64(st, at, v->v.b.p,
                                     v->v.b.n == SIZE_MAX ? strlen(v->v.b.p) : v->v.b.n,
                                     SQLITE_STATIC, SQLITE_UTF8);
            break;
        case COIL_DB_TYPE_BLOB:
            rc = v->v.b.n ? sqlite3_bind_blob64(st, at, v->v.b.p, v->v.b.n, SQLITE_STATIC)
                          : sqlite3_bind_zeroblob(st, at, 0);
            break;
        default: return fail_msg(r, -EINVAL, "a value of no known type");
        }
        if (rc != SQLITE_OK) return fail(c, r, rc);
    }
    return true;
}

/* Steps, with the busy deadline armed. */
static int step(db_conn *c, sqlite3_stmt *st) {
    c->busy_until = coil_now() + c->db->cfg.busy_timeout;
    return sqlite3_step(st);
}

/* ------------------------------------------------------------------ chunks */

bool coil__db_arena_put(db_chunk *ch, const void *p, size_t n, size_t *off) {
    if (ch->arena_len + n + 1 > ch->arena_cap) {
        size_t cap = ch->arena_cap ? ch->arena_cap : 4096;
        while (cap < ch->arena_len + n + 1) cap *= 2;
        char *a = realloc(ch->arena, cap);
        if (!a) return false;
        ch->arena = a;
        ch->arena_cap = cap;
    }
    *off = ch->arena_len;
    if (n) memcpy(ch->arena + ch->arena_len, p, n);
    ch->arena[ch->arena_len + n] = '\0';
    ch->arena_len += n + 1;
    return true;
}

void coil__db_chunk_free(db_chunk *ch) {
    free(ch->cells);
    free(ch->arena);
    memset(ch, 0, sizeof *ch);
}

/* The column names, in one block. */
static bool take_names(db_req *r, sqlite3_stmt *st) {
    r->ncols = (size_t)sqlite3_column_count(st);
    size_t len = 0;
    for (size_t i = 0; i < r->ncols; i++) len += strlen(sqlite3_column_name(st, (int)i)) + 1;
    r->names = malloc(len ? len : 1);
    if (!r->names) return fail_msg(r, -ENOMEM, "out of memory");
    char *p = r->names;
    for (size_t i = 0; i < r->ncols; i++) {
        const char *n = sqlite3_column_name(st, (int)i);
        size_t k = strlen(n) + 1;
        memcpy(p, n, k);
        p += k;
    }
    return true;
}

/* Steps up to a chunk of rows out of `st` into r->chunk; r->more says
 * whether rows remain (then `st` stays open on the connection). */
static bool fetch_chunk(db_conn *c, db_req *r, sqlite3_stmt *st) {
    db_chunk *ch = &r->chunk;
    size_t ncols = (size_t)sqlite3_column_count(st);
    ch->cells = malloc(sizeof *ch->cells * (ncols ? ncols : 1) * CHUNK_ROWS);
    if (!ch->cells) return fail_msg(r, -ENOMEM, "out of memory");
    r->more = false;
    while (ch->nrows < CHUNK_ROWS && ch->arena_len < CHUNK_BYTES) {
        int rc = step(c, st);
        if (rc == SQLITE_DONE) break;
        if (rc != SQLITE_ROW) {
            sqlite3_reset(st);
            c->open_query = NULL;
            return fail(c, r, rc);
        }
        db_cell *row = &ch->cells[ch->nrows * ncols];
        for (size_t i = 0; i < ncols; i++) {
            db_cell *cell = &row[i];
            int col = (int)i;
            memset(cell, 0, sizeof *cell);
            switch (sqlite3_column_type(st, col)) {
            case SQLITE_INTEGER:
                cell->type = COIL_DB_TYPE_INT;
                cell->i = sqlite3_column_int64(st, col);
                break;
            case SQLITE_FLOAT:
                cell->type = COIL_DB_TYPE_REAL;
                cell->r = sqlite3_column_double(st, col);
                break;
            case SQLITE_NULL: cell->type = COIL_DB_TYPE_NULL; break;
            default: {
                bool text = sqlite3_column_type(st, col) == SQLITE_TEXT;
                const void *p = text ? (const void *)sqlite3_column_text(st, col)
                                     : sqlite3_column_blob(st, col);
                cell->type = text ? COIL_DB_TYPE_TEXT : COIL_DB_TYPE_BLOB;
                cell->n = (size_t)sqlite3_column_bytes(st, col);
                if (!coil__db_arena_put(ch, p, cell->n, &cell->off)) {
                    sqlite3_reset(st);
                    c->open_query = NULL;
                    return fail_msg(r, -ENOMEM, "out of memory");
                }
            }
            }
        }
        ch->nrows++;
    }
    r->more = ch->nrows == CHUNK_ROWS || ch->arena_len >= CHUNK_BYTES;
    if (r->more) {
        c->open_query = st;
    } else {
        sqlite3_reset(st);
        c->open_query = NULL;
    }
    return true;
}

/* ------------------------------------------------------------------ JSON */

static bool run_json(db_conn *c, db_req *r, sqlite3_stmt *st) {
    coil__json_text b = {0};
    int ncols = sqlite3_column_count(st), rc;
    coil__json_lit(&b, "[");
    size_t rows = 0;
    while ((rc = step(c, st)) == SQLITE_ROW && !b.failed) {
        coil__json_raw(&b, rows ? ",{" : "{", rows ? 2 : 1);
        rows++;
        for (int i = 0; i < ncols; i++) {
            if (i) coil__json_lit(&b, ",");
            const char *name = sqlite3_column_name(st, i);
            coil__json_str(&b, name, strlen(name));
            coil__json_lit(&b, ":");
            switch (sqlite3_column_type(st, i)) {
            case SQLITE_INTEGER: coil__json_int(&b, sqlite3_column_int64(st, i)); break;
            case SQLITE_FLOAT: coil__json_real(&b, sqlite3_column_double(st, i)); break;
            case SQLITE_NULL: coil__json_lit(&b, "null"); break;
            case SQLITE_TEXT:
                coil__json_str(&b, (const char *)sqlite3_column_text(st, i),
                               (size_t)sqlite3_column_bytes(st, i));
                break;
            default:
                coil__json_base64(&b, sqlite3_column_blob(st, i),
                                  (size_t)sqlite3_column_bytes(st, i));
            }
        }
        coil__json_lit(&b, "}");
    }
    coil__json_lit(&b, "]");
    sqlite3_reset(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        free(b.s);
        return fail(c, r, rc);
    }
    if (b.failed) {
        free(b.s);
        return fail_msg(r, -ENOMEM, "out of memory");
    }
    r->json = b.s;
    r->json_len = b.len;
    return true;
}

/* ------------------------------------------------------------------ requests */

static bool run_plain(db_conn *c, db_req *r, const char *sql) {
    c->busy_until = coil_now() + c->db->cfg.busy_timeout;
    int rc = sqlite3_exec(c->h, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? true : fail(c, r, rc);
}

static void run_exec(db_conn *c, db_req *r, sqlite3_stmt *st) {
    int rc;
    while ((rc = step(c, st)) == SQLITE_ROW) {
    }
    if (rc != SQLITE_DONE) {
        fail(c, r, rc);
    } else {
        r->done.changes = sqlite3_changes64(c->h);
        r->done.last_id = sqlite3_last_insert_rowid(c->h);
    }
    sqlite3_reset(st);
}

bool coil__db_run(db_conn *c, db_req *r) {
    if (c->db->pg) return coil__db_pg_run(c, r);
    switch (r->op) {
    case DB_OP_BEGIN:
        if (run_plain(c, r, "BEGIN IMMEDIATE")) c->in_tx = true;
        return false;
    case DB_OP_COMMIT:
    case DB_OP_ROLLBACK:
        if (c->open_query) sqlite3_reset(c->open_query);
        c->open_query = NULL;
        if (r->op == DB_OP_COMMIT && !sqlite3_get_autocommit(c->h)) {
            if (!run_plain(c, r, "COMMIT") && !sqlite3_get_autocommit(c->h))
                sqlite3_exec(c->h, "ROLLBACK", NULL, NULL, NULL);
        } else if (!sqlite3_get_autocommit(c->h)) {
            run_plain(c, r, "ROLLBACK");
        } else if (r->op == DB_OP_COMMIT) {
            fail_msg(r, -ECANCELED, "the transaction was rolled back already (an interrupted "
                                    "statement, or an error SQLite rolls back for)");
        }
        c->in_tx = false;
        return false;
    case DB_OP_DROP:
        if (c->open_query) sqlite3_reset(c->open_query);
        c->open_query = NULL;
        return false;
    case DB_OP_FETCH:
        if (!c->open_query) {
            fail_msg(r, -EINVAL, "the query has no rows left");
            return false;
        }
        fetch_chunk(c, r, c->open_query);
        return false;
    default: break;
    }
    if (r->op == DB_OP_QUERY && c->open_query)
        return fail_msg(r, -EBUSY, "a query of this transaction is still open: close its rows "
                                   "first");
    if (c->in_tx && sqlite3_get_autocommit(c->h))
        return fail_msg(r, -ECANCELED, "the transaction was rolled back (an interrupted "
                                       "statement, or an error SQLite rolls back for)");
    sqlite3_stmt *st = prepare(c, r);
    if (!st) return false;
    if (!c->writer && !sqlite3_stmt_readonly(st)) return true; /* the writer's */
    if (!bind_all(c, r, st)) return false;
    switch (r->op) {
    case DB_OP_EXEC: run_exec(c, r, st); break;
    case DB_OP_QUERY:
        if (take_names(r, st)) fetch_chunk(c, r, st);
        break;
    case DB_OP_JSON: run_json(c, r, st); break;
    default: fail_msg(r, -EINVAL, "not a statement");
    }
    return false;
}
