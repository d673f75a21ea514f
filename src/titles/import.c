/* titles/import.c: the importer (import.h has the contract).
 *
 * A title.basics import is three threads and one pass over the file:
 *
 *     parser thread   inflate, cut lines, parse        (feed.c)
 *          |  batches of parsed rows
 *     this thread     INSERT INTO titles SELECT * FROM import_rows
 *          |  the same batches, refused rows marked
 *     FTS thread      the FTS5 index, into a side file (fts_side.c)
 *
 * The rows go in through one statement whose source is a stream
 * (stream_vtab.h), not a statement stepped per row: the per-statement
 * work is paid once. It is INSERT OR FAIL, so that a duplicate tconst
 * stops the statement with the rows before it kept; the stream knows
 * which row it was, rejects it (or fails the import), and the statement
 * runs again from the next row. A row counts as loaded when the stream
 * is asked for the one after it; only then do its genres go into the
 * (genre, title) pairs (pairs.h), which title_genres takes in key order
 * after the load.
 *
 * Writing is into DB_PATH.import-PID in the same directory, with no
 * journal and no syncs (a failed import is deleted, not rolled back).
 * After the rows: title_genres, the secondary indexes (built once over
 * the loaded rows, far cheaper than keeping them up to date row by row),
 * and the FTS5 index copied in from the side file. Then the file is
 * synced, renamed over DB_PATH, and the directory synced. Until that
 * rename, DB_PATH is the old database, untouched, and its readers see no
 * change.
 */
#include "titles/import.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "titles/feed.h"
#include "titles/fts_side.h"
#include "titles/lines.h"
#include "titles/pairs.h"
#include "titles/stream_vtab.h"
#include "titles/tsv.h"

enum {
    STOP_CHECK_ROWS = 4096,
};

static const char schema_sql[] =
    "CREATE TABLE titles (id INTEGER PRIMARY KEY, title_type TEXT, primary_title TEXT,"
    " original_title TEXT, is_adult INTEGER, start_year INTEGER, end_year INTEGER,"
    " runtime_minutes INTEGER, genres TEXT NOT NULL);"
    "CREATE TABLE genres (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"
    /* By genre first: the genre filter and the counts go that way (a
     * title's own genres are on its row, as JSON). */
    "CREATE TABLE title_genres (genre_id INTEGER NOT NULL, title_id INTEGER NOT NULL,"
    " PRIMARY KEY (genre_id, title_id)) WITHOUT ROWID;"
    "CREATE TABLE ratings (title_id INTEGER PRIMARY KEY, average_rating REAL NOT NULL,"
    " num_votes INTEGER NOT NULL);"
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);";

static const char index_sql[] =
    "CREATE INDEX titles_by_year ON titles (start_year);"
    "CREATE INDEX titles_by_type ON titles (title_type);";

/* The stream's columns: titles' own, in its order. */
static const char rows_columns[] =
    "id INTEGER, title_type TEXT, primary_title TEXT, original_title TEXT, is_adult INTEGER,"
    " start_year INTEGER, end_year INTEGER, runtime_minutes INTEGER, genres TEXT";

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct importer {
    const titles_import_opts *o;
    titles_import_result *res;
    sqlite3 *db;
    titles_lines rd;             /* ratings: the file */
    titles_feed feed;            /* basics: the parser and its batches */
    titles_fts_side fts;         /* basics: the FTS5 builder */
    bool feed_on, fts_on;        /* started (and so due a close) */
    titles_pairs *pairs;         /* (genre, title) for title_genres */
    titles_batch *batch;         /* the batch the rows stream is on, and where */
    size_t at;
    titles_row *row;             /* the row given to SQLite last */
    bool pending;                /* ... and not yet known to be in the table */
    bool ended;                  /* the stream gave its last row */
    int stream_err;              /* why the stream failed (res->error has it) */
    int pair_genre;              /* the pairs stream's current pair */
    int64_t pair_title;
    char *genre_names[TITLES_PAIRS_GENRES];
    size_t ngenres;
    int64_t seen;                /* rows given to SQLite */
    FILE *rejects;
    char rejects_path[4096];
    double start, last_report;
} importer;

static int sql_fail(importer *im, const char *what) {
    snprintf(im->res->error, sizeof im->res->error, "%.300s: %.200s", what, sqlite3_errmsg(im->db));
    int rc = sqlite3_errcode(im->db);
    return rc == SQLITE_FULL ? -ENOSPC : rc == SQLITE_NOMEM ? -ENOMEM : -EIO;
}

static void report(importer *im, const char *phase, bool force) {
    if (!im->o->on_progress) return;
    double t = now_s();
    if (!force && t - im->last_report < 0.2) return;
    im->last_report = t;
    bool basics = im->feed_on;
    titles_progress p = {
        .bytes_read = basics ? atomic_load(&im->feed.bytes_read) : titles_lines_offset(&im->rd),
        .bytes_total = basics ? im->feed.lines.total : im->rd.total,
        .rows = im->res->rows, .rejected = im->res->rejected,
        .seconds = t - im->start, .phase = phase};
    im->o->on_progress(im->o->arg, &p);
}

/* A bad line: an error, or (skip_bad) a line of the rejects file. */
static int reject(importer *im, int64_t line, titles_text raw, const char *why) {
    if (!im->o->skip_bad) {
        snprintf(im->res->error, sizeof im->res->error, "%s line %lld: %s", im->o->src,
                 (long long)line, why);
        return -EINVAL;
    }
    if (!im->rejects && !(im->rejects = fopen(im->rejects_path, "w"))) {
        snprintf(im->res->error, sizeof im->res->error, "%.400s: %s", im->rejects_path,
                 strerror(errno));
        return -errno;
    }
    fprintf(im->rejects, "%lld\t%s\t%.*s\n", (long long)line, why, (int)raw.n, raw.p);
    im->res->rejected++;
    return 0;
}

/* ------------------------------------------------------------------ the rows stream */

/* The id of genre `g`, numbered in order of first sight; -1 past the cap. */
static int genre_id(importer *im, titles_text g) {
    for (size_t i = 0; i < im->ngenres; i++)
        if (strlen(im->genre_names[i]) == g.n && memcmp(im->genre_names[i], g.p, g.n) == 0)
            return (int)i + 1;
    if (im->ngenres == TITLES_PAIRS_GENRES) return -1;
    char *name = strndup(g.p, g.n);
    if (!name) return -1;
    im->genre_names[im->ngenres++] = name;
    return (int)im->ngenres;
}

/* The pending row is in the table: count it and keep its genres (a genre
 * named twice on a line counts once). */
static int confirm(importer *im) {
    const titles_basics *b = &im->row->b;
    im->pending = false;
    int ids[TITLES_MAX_GENRES];
    for (int i = 0; i < b->ngenres; i++) {
        int g = genre_id(im, b->genres[i]);
        if (g < 0) {
            snprintf(im->res->error, sizeof im->res->error, "%s line %lld: more than %d genres",
                     im->o->src, (long long)im->row->line, TITLES_PAIRS_GENRES);
            return -E2BIG;
        }
        ids[i] = g;
        bool twice = false;
        for (int k = 0; k < i; k++) twice |= ids[k] == g;
        int err = twice ? 0 : titles_pairs_add(im->pairs, g, b->id);
        if (err) {
            snprintf(im->res->error, sizeof im->res->error, "writing the genre pairs: %s",
                     strerror(-err));
            return err;
        }
    }
    im->res->rows++;
    return 0;
}

static int stream_fail(importer *im, int err) {
    if (!im->stream_err) im->stream_err = err;
    return err;
}

/* Gives the batch it has finished on to the FTS builder, takes the next;
 * 1, 0 at the end of the stream, or a negative errno. */
static int next_batch(importer *im) {
    titles_batch *b = im->batch;
    im->batch = NULL;
    if (b && b->last && b->err) {
        snprintf(im->res->error, sizeof im->res->error, "%s", b->error);
        return b->err;
    }
    /* Read before the push: from then on the batch is the FTS builder's,
     * and, given back to the parser, refilled. */
    bool last = b && b->last;
    if (b) titles_fts_side_push(&im->fts, b);
    if (last) {
        im->ended = true;
        return 0;
    }
    im->at = 0;
    if (!(im->batch = titles_feed_next(&im->feed))) return -EPIPE; /* the FTS builder failed */
    return 1;
}

static int check_stop(importer *im) {
    if (im->o->stop && *im->o->stop) {
        snprintf(im->res->error, sizeof im->res->error, "interrupted at line %lld",
                 (long long)im->row->line);
        return -ECANCELED;
    }
    report(im, "rows", false);
    return 0;
}

static int rows_next(void *arg) {
    importer *im = arg;
    int err;
    if (im->pending && (err = confirm(im)) != 0) return stream_fail(im, err);
    while (!im->ended) {
        if (!im->batch || im->at == im->batch->n) {
            if ((err = next_batch(im)) < 0) return stream_fail(im, err);
            continue;
        }
        titles_row *row = &im->batch->rows[im->at++];
        if (row->why) {
            if ((err = reject(im, row->line, row->raw, row->why)) != 0) return stream_fail(im, err);
            continue;
        }
        im->row = row;
        im->pending = true;
        if (++im->seen % STOP_CHECK_ROWS == 0 && (err = check_stop(im)) != 0)
            return stream_fail(im, err);
        return 1;
    }
    return 0;
}

static void text_result(sqlite3_context *ctx, titles_text t) {
    if (t.p) sqlite3_result_text(ctx, t.p, (int)t.n, SQLITE_STATIC);
    else sqlite3_result_null(ctx);
}

static void int_result(sqlite3_context *ctx, int64_t v) {
    if (v >= 0) sqlite3_result_int64(ctx, v);
    else sqlite3_result_null(ctx);
}

static void rows_column(void *arg, sqlite3_context *ctx, int col) {
    const titles_row *row = ((importer *)arg)->row;
    const titles_basics *b = &row->b;
    switch (col) {
    case 0: sqlite3_result_int64(ctx, b->id); break;
    case 1: text_result(ctx, b->type); break;
    case 2: text_result(ctx, b->primary); break;
    case 3: text_result(ctx, b->original); break;
    case 4: int_result(ctx, b->is_adult); break;
    case 5: int_result(ctx, b->start_year); break;
    case 6: int_result(ctx, b->end_year); break;
    case 7: int_result(ctx, b->runtime); break;
    default: text_result(ctx, row->genres_json); break;
    }
}

/* ------------------------------------------------------------------ the pairs stream */

static int pairs_next(void *arg) {
    importer *im = arg;
    int got = titles_pairs_next(im->pairs, &im->pair_genre, &im->pair_title);
    if (got < 0) {
        snprintf(im->res->error, sizeof im->res->error, "reading the genre pairs: %s",
                 strerror(-got));
        stream_fail(im, got);
    }
    return got;
}

static void pairs_column(void *arg, sqlite3_context *ctx, int col) {
    importer *im = arg;
    sqlite3_result_int64(ctx, col == 0 ? im->pair_genre : im->pair_title);
}

/* ------------------------------------------------------------------ the import */

static int open_target(importer *im, const char *path) {
    int rc = sqlite3_open_v2(path, &im->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) return sql_fail(im, path);
    titles_stream rows = {.next = rows_next, .column = rows_column, .arg = im};
    titles_stream pairs = {.next = pairs_next, .column = pairs_column, .arg = im};
    rc = sqlite3_exec(im->db,
                      "PRAGMA page_size=16384; PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
                      " PRAGMA cache_size=-8000; PRAGMA locking_mode=EXCLUSIVE;"
                      " PRAGMA temp_store=FILE;",
                      NULL, NULL, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_exec(im->db, schema_sql, NULL, NULL, NULL);
    if (rc == SQLITE_OK) rc = titles_stream_register(im->db, "import_rows", rows_columns, &rows);
    if (rc == SQLITE_OK)
        rc = titles_stream_register(im->db, "import_pairs", "genre_id INTEGER, title_id INTEGER",
                                    &pairs);
    if (rc == SQLITE_OK) rc = sqlite3_exec(im->db, "BEGIN", NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : sql_fail(im, "creating the schema");
}

/* The statement's failure: the stream's own, a duplicate (rejected, and
 * the load goes on), or the database's. */
static int load_failed(importer *im, int rc) {
    if (im->stream_err == -EPIPE) {
        /* The FTS builder stopped the pipeline: its error is the one. */
        int err = titles_fts_side_finish(&im->fts);
        snprintf(im->res->error, sizeof im->res->error, "%s", im->fts.error);
        return err ? err : -EIO;
    }
    if (im->stream_err) return im->stream_err;
    if (rc == SQLITE_CONSTRAINT && im->pending) {
        im->row->dropped = true;
        im->pending = false;
        return reject(im, im->row->line, im->row->raw, "duplicate tconst");
    }
    return sql_fail(im, "inserting the titles");
}

static int load_rows(importer *im) {
    for (;;) {
        int rc = sqlite3_exec(im->db, "INSERT OR FAIL INTO titles SELECT * FROM import_rows", NULL,
                              NULL, NULL);
        if (rc == SQLITE_OK) return 0;
        int err = load_failed(im, rc);
        if (err) return err;
    }
}

static int load_genres(importer *im) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(im->db, "INSERT INTO genres VALUES (?, ?)", -1, &st, NULL) != SQLITE_OK)
        return sql_fail(im, "adding the genres");
    int rc = SQLITE_DONE;
    for (size_t i = 0; i < im->ngenres && rc == SQLITE_DONE; i++) {
        sqlite3_bind_int64(st, 1, (int64_t)i + 1);
        sqlite3_bind_text(st, 2, im->genre_names[i], -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return sql_fail(im, "adding the genres");
    titles_pairs_rewind(im->pairs);
    if (sqlite3_exec(im->db, "INSERT INTO title_genres SELECT * FROM import_pairs", NULL, NULL,
                     NULL) != SQLITE_OK)
        return im->stream_err ? im->stream_err : sql_fail(im, "adding the titles' genres");
    return 0;
}

static int stopped(importer *im) {
    if (!im->o->stop || !*im->o->stop) return 0;
    snprintf(im->res->error, sizeof im->res->error, "interrupted after the rows");
    return -ECANCELED;
}

static int finish(importer *im) {
    double t0 = now_s();
    report(im, "indexes", true);
    int err = load_genres(im);
    if (err) return err;
    im->res->load_seconds = now_s() - im->start;
    char meta[512];
    snprintf(meta, sizeof meta,
             "INSERT INTO meta VALUES ('schema', '%d'), ('rows', '%lld'), ('imported_at', '%lld');",
             TITLES_SCHEMA_VERSION, (long long)im->res->rows, (long long)time(NULL));
    if (sqlite3_exec(im->db, meta, NULL, NULL, NULL) != SQLITE_OK) return sql_fail(im, "meta");
    if ((err = stopped(im)) != 0) return err;
    if (sqlite3_exec(im->db, index_sql, NULL, NULL, NULL) != SQLITE_OK)
        return sql_fail(im, "building the indexes");
    if (sqlite3_exec(im->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        return sql_fail(im, "committing");
    double t1 = now_s();
    im->res->index_seconds = t1 - t0;
    report(im, "full-text index", true);
    if ((err = titles_fts_side_finish(&im->fts)) != 0) {
        snprintf(im->res->error, sizeof im->res->error, "%s", im->fts.error);
        return err;
    }
    if ((err = stopped(im)) != 0) return err;
    if (titles_fts_copy_into(im->db, im->fts.path) != SQLITE_OK)
        return sql_fail(im, "copying in the full-text index");
    im->res->fts_seconds = now_s() - t1;
    /* Readers open it in WAL mode, as coil_db does. */
    if (sqlite3_exec(im->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL) != SQLITE_OK)
        return sql_fail(im, "setting WAL mode");
    return 0;
}

static int sync_path(const char *path, int flags) {
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0) return -errno;
    int err = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return err;
}

static void dir_of(const char *path, char *out, size_t cap) {
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(out, cap, ".");
    else if (slash == path) snprintf(out, cap, "/");
    else snprintf(out, cap, "%.*s", (int)(slash - path), path);
}

static void importer_close(importer *im) {
    /* The pipeline's threads stop first: they use the batches and the
     * queues freed here. The FTS builder gives batches back to the feed,
     * and the feed's abort closes the builder's queue: so the builder is
     * joined, then the feed closed, then the builder's side. */
    if (im->feed_on) titles_feed_abort(&im->feed);
    if (im->fts_on) titles_fts_side_finish(&im->fts);
    if (im->feed_on) titles_feed_close(&im->feed);
    if (im->fts_on) titles_fts_side_close(&im->fts);
    im->fts_on = im->feed_on = false;
    if (im->db) sqlite3_close(im->db);
    im->db = NULL;
    for (size_t i = 0; i < im->ngenres; i++) free(im->genre_names[i]);
    im->ngenres = 0;
    titles_pairs_free(im->pairs);
    im->pairs = NULL;
    if (im->rejects) fclose(im->rejects);
    im->rejects = NULL;
    titles_lines_close(&im->rd);
}

/* Starts the parser and the FTS builder, and opens the target. */
static int start(importer *im, const char *tmp) {
    char side[4200];
    int err = titles_feed_start(&im->feed, im->o->src, im->res->error, sizeof im->res->error);
    im->feed_on = true;
    if (err) return err;
    snprintf(side, sizeof side, "%s-genres", tmp);
    if ((err = titles_pairs_open(&im->pairs, side)) != 0) {
        snprintf(im->res->error, sizeof im->res->error, "%.400s: %s", side, strerror(-err));
        return err;
    }
    snprintf(side, sizeof side, "%s-fts", tmp);
    err = titles_fts_side_start(&im->fts, side, &im->feed, im->res->error, sizeof im->res->error);
    im->fts_on = true;
    return err ? err : open_target(im, tmp);
}

/* Synced, then in place, then the directory entry synced. */
static int put_in_place(const char *tmp, const char *db_path, char *error, size_t cap) {
    int err = sync_path(tmp, O_RDONLY);
    if (err) {
        snprintf(error, cap, "syncing %.400s: %s", tmp, strerror(-err));
        return err;
    }
    if (rename(tmp, db_path) != 0) {
        err = -errno;
        snprintf(error, cap, "renaming %.400s: %s", tmp, strerror(errno));
        return err;
    }
    char wal[4200], shm[4200], dir[4096];
    snprintf(wal, sizeof wal, "%s-wal", db_path); /* an old database's leftovers */
    snprintf(shm, sizeof shm, "%s-shm", db_path);
    unlink(wal);
    unlink(shm);
    dir_of(db_path, dir, sizeof dir);
    (void)sync_path(dir, O_RDONLY | O_DIRECTORY);
    return 0;
}

int titles_import_basics(const titles_import_opts *o, titles_import_result *res) {
    memset(res, 0, sizeof *res);
    importer im = {.o = o, .res = res, .start = now_s(), .rd = {.fd = -1}};
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.import-%ld", o->db_path, (long)getpid()) >=
        sizeof tmp)
        return -ENAMETOOLONG;
    if (o->rejects) snprintf(im.rejects_path, sizeof im.rejects_path, "%s", o->rejects);
    else snprintf(im.rejects_path, sizeof im.rejects_path, "%s.rejects.tsv", o->db_path);
    unlink(tmp);
    int err = start(&im, tmp);
    if (!err) err = load_rows(&im);
    if (!err) err = finish(&im);
    int64_t total = im.feed.lines.total;
    res->genres = (int64_t)im.ngenres;
    importer_close(&im);
    if (!err) err = put_in_place(tmp, o->db_path, res->error, sizeof res->error);
    if (err) {
        unlink(tmp);
        char side[4200];
        snprintf(side, sizeof side, "%s-journal", tmp);
        unlink(side);
    }
    res->seconds = now_s() - im.start;
    if (!err && o->on_progress) {
        titles_progress p = {.bytes_read = total, .bytes_total = total, .rows = res->rows,
                             .rejected = res->rejected, .seconds = res->seconds, .phase = "done"};
        o->on_progress(o->arg, &p);
    }
    return err;
}

/* A copy of the database at `from`, page by page through SQLite (so a WAL
 * it may have is in the copy), opened for the ratings import. */
static int copy_for_ratings(importer *im, const char *from, const char *to) {
    sqlite3 *src = NULL;
    int rc = sqlite3_open_v2(from, &src, SQLITE_OPEN_READONLY, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_open_v2(to, &im->db, SQLITE_OPEN_READWRITE |
                                              SQLITE_OPEN_CREATE, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(src, 10000);
        sqlite3_backup *b = sqlite3_backup_init(im->db, "main", src, "main");
        if (!b) rc = sqlite3_errcode(im->db);
        else {
            rc = sqlite3_backup_step(b, -1);
            int fin = sqlite3_backup_finish(b);
            rc = rc == SQLITE_DONE ? fin : rc;
        }
    }
    int err = 0;
    if (rc != SQLITE_OK) {
        sqlite3 *why = im->db && sqlite3_errcode(im->db) != SQLITE_OK ? im->db : src;
        snprintf(im->res->error, sizeof im->res->error, "copying %.400s: %s", from,
                 why ? sqlite3_errmsg(why) : sqlite3_errstr(rc));
        err = rc == SQLITE_FULL ? -ENOSPC : -EIO;
    }
    sqlite3_close(src);
    return err;
}

int titles_import_ratings(const titles_import_opts *o, titles_import_result *res) {
    memset(res, 0, sizeof *res);
    importer im = {.o = o, .res = res, .start = now_s(), .rd = {.fd = -1}};
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.import-%ld", o->db_path, (long)getpid()) >=
        sizeof tmp)
        return -ENAMETOOLONG;
    if (o->rejects) snprintf(im.rejects_path, sizeof im.rejects_path, "%s", o->rejects);
    else snprintf(im.rejects_path, sizeof im.rejects_path, "%s.ratings-rejects.tsv", o->db_path);
    unlink(tmp);
    int err = titles_lines_open(&im.rd, o->src, res->error, sizeof res->error);
    if (!err)
        err = titles_lines_header(&im.rd, TITLES_RATINGS_HEADER, "title.ratings.tsv", res->error,
                                  sizeof res->error);
    if (!err && access(o->db_path, F_OK) != 0) {
        snprintf(res->error, sizeof res->error, "%s: no titles database: import the titles first",
                 o->db_path);
        err = -ENOENT;
    }
    if (!err) err = copy_for_ratings(&im, o->db_path, tmp);
    int rc = SQLITE_OK;
    sqlite3_stmt *ins = NULL;
    if (!err) {
        rc = sqlite3_exec(im.db,
                          "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
                          " PRAGMA locking_mode=EXCLUSIVE; BEGIN; DELETE FROM ratings;",
                          NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_prepare_v2(im.db,
                                    "INSERT INTO ratings SELECT ?1, ?2, ?3 WHERE EXISTS"
                                    " (SELECT 1 FROM titles WHERE id = ?1)",
                                    -1, &ins, NULL);
        if (rc != SQLITE_OK) err = sql_fail(&im, o->db_path);
    }
    const char *line;
    size_t len;
    char why[96];
    int got = 0;
    while (!err &&
           (got = titles_lines_next(&im.rd, &line, &len, res->error, sizeof res->error)) > 0) {
        titles_text raw = {line, len};
        titles_rating r;
        if (titles_parse_rating(line, len, &r, why, sizeof why) != 0) {
            err = reject(&im, im.rd.line, raw, why);
            continue;
        }
        sqlite3_bind_int64(ins, 1, r.id);
        sqlite3_bind_double(ins, 2, r.average);
        sqlite3_bind_int64(ins, 3, r.votes);
        rc = sqlite3_step(ins);
        sqlite3_reset(ins);
        if (rc == SQLITE_CONSTRAINT) err = reject(&im, im.rd.line, raw, "duplicate tconst");
        else if (rc != SQLITE_DONE) err = sql_fail(&im, "inserting a rating");
        else if (sqlite3_changes(im.db) == 1) res->rows++;
        else res->rejected++; /* no such title */
        if ((res->rows + res->rejected) % STOP_CHECK_ROWS == 0) {
            if (o->stop && *o->stop) {
                snprintf(res->error, sizeof res->error, "interrupted at line %lld",
                         (long long)im.rd.line);
                err = -ECANCELED;
            }
            report(&im, "rows", false);
        }
    }
    if (!err && got < 0) err = got;
    sqlite3_finalize(ins);
    if (!err && sqlite3_exec(im.db, "COMMIT; PRAGMA journal_mode=WAL", NULL, NULL, NULL) !=
                    SQLITE_OK)
        err = sql_fail(&im, "committing");
    importer_close(&im);
    if (!err) err = put_in_place(tmp, o->db_path, res->error, sizeof res->error);
    if (err) unlink(tmp);
    res->seconds = now_s() - im.start;
    return err;
}
