/* coil/db.h: an async SQL database API for tasks (SQLite, and PostgreSQL
 * through libpq: docs/db.md, "PostgreSQL").
 *
 * A coil_db is a pool of connections, each on a thread of its own (not the
 * coil_to_thread pool, not libuv's): one writer and N readers, in WAL mode,
 * so reads run while a write commits. A call queues its request to a
 * connection and suspends only its task; the loop goes on.
 *
 *     coil_db *db;
 *     coil_db_open("app.db", NULL, &db);
 *     coil_db_exec(db, "INSERT INTO t (name, n) VALUES (?, ?)",
 *                  COIL_DB_ARGS(COIL_DB_TEXT("ada"), COIL_DB_INT(36)), NULL);
 *     coil_db_rows *rows;
 *     coil_db_query(db, "SELECT name, n FROM t WHERE n > ?",
 *                   COIL_DB_ARGS(COIL_DB_INT(30)), &rows);
 *     while (coil_db_next(rows) > 0)
 *         printf("%s %lld\n", coil_db_text(rows, 0, NULL), coil_db_int(rows, 1));
 *     coil_db_rows_close(rows);
 *
 * Values are bound, never formatted into SQL text. Each connection keeps
 * its prepared statements (by SQL text), so a statement run again is not
 * parsed again.
 *
 * Reads and writes. coil_db_exec() runs on the writer. coil_db_query() and
 * coil_db_query_json() run on a reader; a statement that writes (an
 * INSERT ... RETURNING, say) is moved to the writer. coil_db_begin() holds
 * the writer for one task's transaction.
 *
 * Interruption. If the calling task is cancelled or its deadline passes:
 * a request still queued is withdrawn (it never ran); a statement running
 * is interrupted (sqlite3_interrupt) and the call returns the interruption
 * once it has stopped; the connection goes back to the pool clean. An
 * interrupted write inside a transaction rolls the transaction back
 * (SQLite's rule); the transaction's later calls fail with -ECANCELED.
 *
 * Locks held by another process: a statement waits for them, sleeping (1
 * to 20 ms at a time, never spinning), up to cfg.busy_timeout, and less if
 * the task's deadline comes first; then -EBUSY.
 *
 * Errors are negative errnos: -EINVAL (bad SQL, a bad argument, a missing
 * parameter, a type mismatch), -EEXIST (a UNIQUE or PRIMARY KEY
 * constraint), -EPERM (another constraint: CHECK, NOT NULL, FOREIGN KEY),
 * -EBUSY, -EROFS, -ENOSPC, -EIO, -ENOMEM, -ENOENT/-EACCES (at open),
 * -EBADMSG (not a database, or corrupt), -ECANCELED/-ETIMEDOUT (the task
 * was interrupted), -EPIPE (the database is closing). coil_db_error() says
 * what SQLite said.
 *
 * Threads. Every call but coil_db_rows accessors suspends the calling
 * task, and must come from a task. A coil_db may be shared by tasks of
 * every loop. A coil_db_rows and a coil_db_tx belong to the task that got
 * them.
 */
#ifndef COIL_DB_H
#define COIL_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coil/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct coil_db coil_db;
typedef struct coil_db_rows coil_db_rows;
typedef struct coil_db_tx coil_db_tx;

/* ------------------------------------------------------------------ values */

typedef enum coil_db_type {
    COIL_DB_TYPE_NULL,
    COIL_DB_TYPE_INT,
    COIL_DB_TYPE_REAL,
    COIL_DB_TYPE_TEXT,
    COIL_DB_TYPE_BLOB,
} coil_db_type;

/* A bound parameter. Text and blobs are borrowed for the call. */
typedef struct coil_db_value {
    coil_db_type type;
    union {
        int64_t i;
        double r;
        struct {
            const void *p;
            size_t n; /* bytes; for text SIZE_MAX means up to the NUL */
        } b;
    } v;
} coil_db_value;

#define COIL_DB_NULL ((coil_db_value){.type = COIL_DB_TYPE_NULL})
#define COIL_DB_INT(x) ((coil_db_value){.type = COIL_DB_TYPE_INT, .v.i = (x)})
#define COIL_DB_REAL(x) ((coil_db_value){.type = COIL_DB_TYPE_REAL, .v.r = (x)})
#define COIL_DB_TEXT(s) ((coil_db_value){.type = COIL_DB_TYPE_TEXT, .v.b = {(s), SIZE_MAX}})
#define COIL_DB_TEXTN(s, n) ((coil_db_value){.type = COIL_DB_TYPE_TEXT, .v.b = {(s), (n)}})
#define COIL_DB_BLOB(p, n) ((coil_db_value){.type = COIL_DB_TYPE_BLOB, .v.b = {(p), (n)}})

/* An argument list: the array and its length, for the calls below. */
#define COIL_DB_ARGS(...) ((const coil_db_value[]){__VA_ARGS__}), \
    (sizeof((const coil_db_value[]){__VA_ARGS__}) / sizeof(coil_db_value))
#define COIL_DB_NO_ARGS NULL, 0

/* ------------------------------------------------------------------ the pool */

typedef struct coil_db_config {
    size_t readers;          /* reader connections; 0: 4 */
    coil_time busy_timeout;  /* wait for another process's lock; 0: 5 s */
    size_t statement_cache;  /* prepared statements kept a connection; 0: 64 */
    bool read_only;          /* open for reading only (no writer) */
    bool immutable;          /* SQLite: read_only, and the file is never written
                                while open (it is replaced by a rename, if at all):
                                no locks and no change checks per query. Wrong
                                answers or SQLITE_CORRUPT if something writes it */
    bool relaxed;            /* synchronous=NORMAL: a commit may be lost in a
                                power cut (never corrupt); default FULL */
} coil_db_config;

/* Fills `cfg` with the defaults. */
COIL_EXTERN void coil_db_config_init(coil_db_config *cfg);

/* Opens (creating it unless read_only) the SQLite database at `where`: a
 * path, or "sqlite:PATH"; or the PostgreSQL database of a postgres:// or
 * postgresql:// URL. `cfg` may be NULL. Starts its connection threads.
 * Returns 0 with *out set, or -EINVAL, -ENOENT, -EACCES, -ECONNREFUSED,
 * -EBADMSG, -ENOMEM, -EPERM outside a task. Suspends. */
COIL_EXTERN int coil_db_open(const char *where, const coil_db_config *cfg, coil_db **out);

/* Stops the threads, closes the connections and frees `db`. Every call on
 * it must have returned, and every coil_db_rows and coil_db_tx be closed.
 * Returns 0. Suspends in a task; from a plain thread (at shutdown) it
 * blocks instead. */
COIL_EXTERN int coil_db_close(coil_db *db);

/* What SQLite said about the calling task's last failed call ("" if
 * none). Valid until the task suspends again. Does not suspend. */
COIL_EXTERN const char *coil_db_error(void);

/* ------------------------------------------------------------------ statements */

/* The outcome of a write. */
typedef struct coil_db_done {
    int64_t changes;  /* rows inserted, updated or deleted */
    int64_t last_id;  /* rowid of the last INSERT */
} coil_db_done;

/* Runs one statement on the writer (rows it returns are dropped). `done`
 * may be NULL. Returns 0 or an error. Suspends. */
COIL_EXTERN int coil_db_exec(coil_db *db, const char *sql, const coil_db_value *args,
                             size_t nargs, coil_db_done *done);

/* Runs a query; its rows come back one at a time from coil_db_next(), a
 * chunk (up to 256 rows) a trip to the connection's thread. The rows hold
 * their connection until coil_db_rows_close(). Returns 0 with *out set,
 * or an error (then *out is NULL). Suspends. */
COIL_EXTERN int coil_db_query(coil_db *db, const char *sql, const coil_db_value *args,
                              size_t nargs, coil_db_rows **out);

/* Every row of a query as one JSON array of objects, keyed by column name
 * (integers and reals as numbers, text as strings, blobs as base64
 * strings, NULL as null), NUL-terminated, malloc'd into *json, its length
 * into *len (may be NULL). Returns 0 or an error. Suspends. */
COIL_EXTERN int coil_db_query_json(coil_db *db, const char *sql, const coil_db_value *args,
                                   size_t nargs, char **json, size_t *len);

/* ------------------------------------------------------------------ rows */

/* Moves to the next row: 1 if there is one, 0 at the end, or an error
 * (the query failed or was interrupted). Suspends only to fetch a chunk. */
COIL_EXTERN int coil_db_next(coil_db_rows *rows);

/* The columns, and the current row's values. Text and blobs are valid
 * until the next coil_db_next() or coil_db_rows_close(). Do not suspend. */
COIL_EXTERN size_t coil_db_columns(const coil_db_rows *rows);
COIL_EXTERN const char *coil_db_column_name(const coil_db_rows *rows, size_t col);
COIL_EXTERN coil_db_type coil_db_type_of(const coil_db_rows *rows, size_t col);
COIL_EXTERN int64_t coil_db_int(const coil_db_rows *rows, size_t col);
COIL_EXTERN double coil_db_real(const coil_db_rows *rows, size_t col);
/* NULL for a NULL; *len (may be NULL) gets the bytes. */
COIL_EXTERN const char *coil_db_text(const coil_db_rows *rows, size_t col, size_t *len);
COIL_EXTERN const void *coil_db_blob(const coil_db_rows *rows, size_t col, size_t *len);

/* Gives the connection back (the query is dropped if rows remain) and
 * frees `rows`. NULL is fine. Does not suspend. */
COIL_EXTERN void coil_db_rows_close(coil_db_rows *rows);

/* ------------------------------------------------------------------ transactions */

/* Waits for the writer and begins a transaction (BEGIN IMMEDIATE) that
 * holds it until coil_db_commit() or coil_db_rollback(). Returns 0 with
 * *out set, or an error. Suspends. */
COIL_EXTERN int coil_db_begin(coil_db *db, coil_db_tx **out);
/* coil_db_exec and coil_db_query inside the transaction. */
COIL_EXTERN int coil_db_tx_exec(coil_db_tx *tx, const char *sql, const coil_db_value *args,
                                size_t nargs, coil_db_done *done);
COIL_EXTERN int coil_db_tx_query(coil_db_tx *tx, const char *sql, const coil_db_value *args,
                                 size_t nargs, coil_db_rows **out);
/* Ends the transaction, gives the writer back and frees `tx` (whatever
 * the outcome). Return 0 or an error (a failed commit is rolled back).
 * They cannot be interrupted: once asked, the end is waited for.
 * Suspend. */
COIL_EXTERN int coil_db_commit(coil_db_tx *tx);
COIL_EXTERN int coil_db_rollback(coil_db_tx *tx);

/* Runs fn(tx, arg) in a transaction: commits if it returns 0, else rolls
 * back and returns its error. Suspends. */
typedef int (*coil_db_tx_fn)(coil_db_tx *tx, void *arg);
COIL_EXTERN int coil_db_transaction(coil_db *db, coil_db_tx_fn fn, void *arg);

/* Site-recording wrappers (see runtime.h). */
#ifndef COIL_BUILDING
/* Variadic: COIL_DB_ARGS() stands for two arguments. */
#define coil_db_open(w, c, o) COIL__AT(coil_db_open(w, c, o))
#define coil_db_close(d) COIL__AT(coil_db_close(d))
#define coil_db_exec(...) COIL__AT(coil_db_exec(__VA_ARGS__))
#define coil_db_query(...) COIL__AT(coil_db_query(__VA_ARGS__))
#define coil_db_query_json(...) COIL__AT(coil_db_query_json(__VA_ARGS__))
#define coil_db_next(r) COIL__AT(coil_db_next(r))
#define coil_db_begin(d, o) COIL__AT(coil_db_begin(d, o))
#define coil_db_tx_exec(...) COIL__AT(coil_db_tx_exec(__VA_ARGS__))
#define coil_db_tx_query(...) COIL__AT(coil_db_tx_query(__VA_ARGS__))
#define coil_db_commit(t) COIL__AT(coil_db_commit(t))
#define coil_db_rollback(t) COIL__AT(coil_db_rollback(t))
#define coil_db_transaction(d, f, a) COIL__AT(coil_db_transaction(d, f, a))
#endif

#ifdef __cplusplus
}
#endif
#endif /* COIL_DB_H */
