/* titles/fts_side.c: the FTS5 builder thread and the copy (fts_side.h has
 * the design).
 *
 * The builder runs one statement, INSERT INTO titles_fts ... SELECT FROM
 * fts_rows, whose stream (stream_vtab.h) takes the loader's batches from
 * the side's queue and gives each batch back to the parser once read.
 */
#include "titles/fts_side.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "titles/stream_vtab.h"

#define FTS_COLUMNS                                                       \
    "fts5(primary_title, original_title, content='', columnsize=0,"      \
    " tokenize='unicode61 remove_diacritics 2')"

/* The in-memory index is flushed to a segment at this size: the default
 * (1 MiB) makes ten times the segments to merge. */
enum { FTS_HASH_BYTES = 2 << 20 };

/* The stream: rows the loader kept, in file order. */
static int side_next(void *arg) {
    titles_fts_side *s = arg;
    for (;;) {
        if (s->batch && s->at < s->batch->n) {
            titles_row *row = &s->batch->rows[s->at++];
            if (row->why || row->dropped) continue;
            s->row = row;
            return 1;
        }
        if (s->batch) {
            bool last = s->batch->last;
            titles_feed_recycle(s->feed, s->batch);
            s->batch = NULL;
            if (last) return 0;
        }
        s->at = 0;
        if (!(s->batch = titles_queue_pop(&s->q))) return -ECANCELED;
    }
}

static void text_result(sqlite3_context *ctx, titles_text t) {
    if (t.p) sqlite3_result_text(ctx, t.p, (int)t.n, SQLITE_STATIC);
    else sqlite3_result_null(ctx);
}

static void side_column(void *arg, sqlite3_context *ctx, int col) {
    titles_row *row = ((titles_fts_side *)arg)->row;
    if (col == 0) sqlite3_result_int64(ctx, row->b.id);
    else if (col == 1) text_result(ctx, row->b.primary);
    else text_result(ctx, row->original_other);
}

static int side_fail(titles_fts_side *s, const char *what) {
    if (!s->err) {
        int rc = sqlite3_errcode(s->db);
        snprintf(s->error, sizeof s->error, "%s: %s", what, sqlite3_errmsg(s->db));
        s->err = rc == SQLITE_FULL ? -ENOSPC : rc == SQLITE_NOMEM ? -ENOMEM : -EIO;
    }
    return s->err;
}

static void *builder_main(void *arg) {
    titles_fts_side *s = arg;
    char sql[256];
    snprintf(sql, sizeof sql, "INSERT INTO titles_fts(titles_fts, rank) VALUES ('hashsize', %d)",
             FTS_HASH_BYTES);
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(s->db,
                     "BEGIN; INSERT INTO titles_fts (rowid, primary_title, original_title)"
                     " SELECT id, primary_title, original_title FROM fts_rows; COMMIT;",
                     NULL, NULL, NULL) != SQLITE_OK) {
        side_fail(s, "building the full-text index");
        /* Nothing downstream will take the batches any more. */
        titles_feed_abort(s->feed);
    }
    return NULL;
}

int titles_fts_side_start(titles_fts_side *s, const char *path, titles_feed *feed, char *err,
                          size_t cap) {
    memset(s, 0, sizeof *s);
    titles_queue_init(&s->q);
    s->feed = feed;
    feed->downstream = &s->q;
    snprintf(s->path, sizeof s->path, "%s", path);
    unlink(path);
    static const titles_stream proto = {.next = side_next, .column = side_column};
    titles_stream stream = proto;
    stream.arg = s;
    int rc = sqlite3_open_v2(path, &s->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(s->db,
                          "PRAGMA page_size=16384; PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
                          " PRAGMA cache_size=-4000; PRAGMA locking_mode=EXCLUSIVE;"
                          " CREATE VIRTUAL TABLE titles_fts USING " FTS_COLUMNS ";",
                          NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = titles_stream_register(s->db, "fts_rows",
                                    "id INTEGER, primary_title TEXT, original_title TEXT", &stream);
    if (rc != SQLITE_OK) {
        snprintf(err, cap, "%s: %s", path, s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        return rc == SQLITE_FULL ? -ENOSPC : -EIO;
    }
    if ((rc = pthread_create(&s->thread, NULL, builder_main, s)) != 0) {
        snprintf(err, cap, "starting the full-text index thread: %s", strerror(rc));
        return -rc;
    }
    s->started = true;
    return 0;
}

void titles_fts_side_push(titles_fts_side *s, titles_batch *b) { titles_queue_push(&s->q, b); }

int titles_fts_side_finish(titles_fts_side *s) {
    if (s->started) pthread_join(s->thread, NULL);
    s->started = false;
    /* Closed, its exclusive lock goes with it: the copy attaches the file. */
    if (s->db) sqlite3_close(s->db);
    s->db = NULL;
    return s->err;
}

int titles_fts_copy_into(sqlite3 *db, const char *side_path) {
    sqlite3_stmt *attach = NULL;
    int rc = sqlite3_prepare_v2(db, "ATTACH ? AS fts_side", -1, &attach, NULL);
    if (rc == SQLITE_OK) sqlite3_bind_text(attach, 1, side_path, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK && (rc = sqlite3_step(attach)) == SQLITE_DONE) rc = SQLITE_OK;
    sqlite3_finalize(attach);
    if (rc != SQLITE_OK) return rc;
    /* The shadow tables of a contentless, columnsize=0 table are _data,
     * _idx and _config; CREATE fills them for an empty index, and the
     * copies replace that (whole-table copies, page by page). The side's
     * hash size is a setting for building, not for this file. */
    rc = sqlite3_exec(db,
                      "BEGIN;"
                      " CREATE VIRTUAL TABLE main.titles_fts USING " FTS_COLUMNS ";"
                      " DELETE FROM main.titles_fts_data;"
                      " INSERT INTO main.titles_fts_data SELECT * FROM fts_side.titles_fts_data;"
                      " DELETE FROM main.titles_fts_idx;"
                      " INSERT INTO main.titles_fts_idx SELECT * FROM fts_side.titles_fts_idx;"
                      " DELETE FROM main.titles_fts_config;"
                      " INSERT INTO main.titles_fts_config SELECT * FROM fts_side.titles_fts_config"
                      "  WHERE k <> 'hashsize';"
                      " COMMIT;",
                      NULL, NULL, NULL);
    if (rc != SQLITE_OK) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    int detach = sqlite3_exec(db, "DETACH fts_side", NULL, NULL, NULL);
    return rc != SQLITE_OK ? rc : detach;
}

void titles_fts_side_close(titles_fts_side *s) {
    titles_queue_close(&s->q);
    titles_fts_side_finish(s);
    if (s->path[0]) unlink(s->path);
    titles_queue_destroy(&s->q);
}
