/* titles/stream_vtab.c: a titles_stream as an eponymous virtual table
 * (stream_vtab.h has the contract).
 *
 * The module's client data is the registration: the stream and the
 * CREATE TABLE text xConnect declares. One cursor at a time reads it;
 * xFilter takes the first row, xNext the next, and xEof says whether the
 * last call ran out.
 */
#include "titles/stream_vtab.h"

#include <stdlib.h>
#include <string.h>

typedef struct registration {
    titles_stream stream; /* a copy of the caller's */
    char *declare;        /* "CREATE TABLE x(...)", owned */
} registration;

typedef struct stream_cursor {
    sqlite3_vtab_cursor base; /* first, as SQLite requires */
    registration *reg;        /* borrowed from the module */
    int eof;                  /* the last next() returned 0 */
    sqlite3_int64 rowid;      /* rows produced, for xRowid */
} stream_cursor;

typedef struct stream_table {
    sqlite3_vtab base;  /* first, as SQLite requires */
    registration *reg;  /* borrowed from the module */
} stream_table;

static int x_connect(sqlite3 *db, void *aux, int argc, const char *const *argv,
                     sqlite3_vtab **out, char **errmsg) {
    (void)argc, (void)argv, (void)errmsg;
    registration *reg = aux;
    int rc = sqlite3_declare_vtab(db, reg->declare);
    if (rc != SQLITE_OK) return rc;
    stream_table *t = sqlite3_malloc(sizeof *t);
    if (!t) return SQLITE_NOMEM;
    memset(t, 0, sizeof *t);
    t->reg = reg;
    *out = &t->base;
    return SQLITE_OK;
}

static int x_disconnect(sqlite3_vtab *vt) {
    sqlite3_free(vt);
    return SQLITE_OK;
}

/* One plan: a full scan, in stream order. */
static int x_best_index(sqlite3_vtab *vt, sqlite3_index_info *info) {
    (void)vt;
    info->estimatedCost = 1e9;
    info->estimatedRows = 1000000000;
    return SQLITE_OK;
}

static int x_open(sqlite3_vtab *vt, sqlite3_vtab_cursor **out) {
    stream_cursor *c = sqlite3_malloc(sizeof *c);
    if (!c) return SQLITE_NOMEM;
    memset(c, 0, sizeof *c);
    c->reg = ((stream_table *)vt)->reg;
    *out = &c->base;
    return SQLITE_OK;
}

static int x_close(sqlite3_vtab_cursor *cur) {
    sqlite3_free(cur);
    return SQLITE_OK;
}

static int advance(stream_cursor *c) {
    int got = c->reg->stream.next(c->reg->stream.arg);
    if (got < 0) {
        sqlite3_free(c->base.pVtab->zErrMsg);
        c->base.pVtab->zErrMsg = sqlite3_mprintf("the stream failed");
        return SQLITE_ERROR;
    }
    c->eof = got == 0;
    c->rowid++;
    return SQLITE_OK;
}

static int x_filter(sqlite3_vtab_cursor *cur, int idx, const char *idx_str, int argc,
                    sqlite3_value **argv) {
    (void)idx, (void)idx_str, (void)argc, (void)argv;
    return advance((stream_cursor *)cur);
}

static int x_next(sqlite3_vtab_cursor *cur) { return advance((stream_cursor *)cur); }

static int x_eof(sqlite3_vtab_cursor *cur) { return ((stream_cursor *)cur)->eof; }

static int x_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int col) {
    registration *reg = ((stream_cursor *)cur)->reg;
    reg->stream.column(reg->stream.arg, ctx, col);
    return SQLITE_OK;
}

static int x_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *rowid) {
    *rowid = ((stream_cursor *)cur)->rowid;
    return SQLITE_OK;
}

static const sqlite3_module stream_module = {
    .iVersion = 1,
    .xCreate = NULL, /* eponymous only */
    .xConnect = x_connect,
    .xBestIndex = x_best_index,
    .xDisconnect = x_disconnect,
    .xDestroy = x_disconnect,
    .xOpen = x_open,
    .xClose = x_close,
    .xFilter = x_filter,
    .xNext = x_next,
    .xEof = x_eof,
    .xColumn = x_column,
    .xRowid = x_rowid,
};

static void registration_free(void *p) {
    registration *reg = p;
    if (!reg) return;
    sqlite3_free(reg->declare);
    free(reg);
}

int titles_stream_register(sqlite3 *db, const char *name, const char *columns,
                           const titles_stream *s) {
    registration *reg = calloc(1, sizeof *reg);
    if (!reg) return SQLITE_NOMEM;
    reg->stream = *s;
    reg->declare = sqlite3_mprintf("CREATE TABLE x(%s)", columns);
    if (!reg->declare) {
        free(reg);
        return SQLITE_NOMEM;
    }
    /* On failure SQLite calls registration_free itself. */
    return sqlite3_create_module_v2(db, name, &stream_module, reg, registration_free);
}
