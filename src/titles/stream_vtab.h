/* titles/stream_vtab.h: rows that C code produces, as a table that one
 * INSERT ... SELECT reads.
 *
 * Loading a million rows with a prepared INSERT stepped once per row pays
 * the statement's start and end (its cursors, its transaction checks) a
 * million times; one "INSERT INTO t SELECT ... FROM stream" pays them
 * once, and each row costs only the insert itself. A stream is a table
 * with no storage: SQLite calls next() for each row and column() for each
 * value, and the INSERT takes them as they come.
 *
 * The table is eponymous (no CREATE VIRTUAL TABLE: it exists once the
 * module is registered on the connection) and read-only; a scan of it is
 * a single pass, so a statement that reads it twice sees the rest of the
 * stream the second time. Everything runs on the thread that steps the
 * statement, and nothing here suspends.
 */
#ifndef COIL_TITLES_STREAM_VTAB_H
#define COIL_TITLES_STREAM_VTAB_H

#include <sqlite3.h>

typedef struct titles_stream {
    /* Moves to the next row: 1, 0 at the end, or a negative errno (the
     * statement then fails with SQLITE_ERROR; the stream keeps its own
     * account of why). The first call gives the first row. */
    int (*next)(void *arg);
    /* The value of column `col` of the current row, by sqlite3_result_*().
     * Text may be SQLITE_STATIC: it must stay valid until next(). */
    void (*column)(void *arg, sqlite3_context *ctx, int col);
    void *arg;
} titles_stream;

/* Registers table `name` with the columns `columns` ("a INTEGER, b TEXT")
 * on `db`, its rows coming from `s` (borrowed until the connection
 * closes). Returns an SQLite result code. */
int titles_stream_register(sqlite3 *db, const char *name, const char *columns,
                           const titles_stream *s);

#endif
