/* titles/import.c: the importer (import.h has the contract).
 *
 * Reading. zlib's gzread() inflates a .gz (and passes a plain .tsv through)
 * into a 4 MiB buffer; lines are cut there, a partial last line carried to
 * the next read. Memory is that buffer, zlib's, and SQLite's page cache
 * (16 MiB), whatever the file's size.
 *
 * Writing. Into DB_PATH.import-PID in the same directory, with no journal
 * and no syncs while it loads (a failed import is deleted, not rolled
 * back), in one transaction; then the secondary indexes and the FTS5
 * index, built once over the loaded rows, which is much cheaper than
 * keeping them up to date row by row; then the file is synced, renamed
 * over DB_PATH, and the directory synced. Until that rename, DB_PATH is
 * the old database, untouched, and readers of it see no change.
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
#include <zlib.h>

#include "titles/tsv.h"

enum {
    READ_BUF = 4 << 20,
    LINE_MAX_BYTES = 1 << 20,  /* a longer line is an error, not a reason to grow */
    MAX_GENRE_NAMES = 1024,
    STOP_CHECK_ROWS = 4096,
};

static const char schema_sql[] =
    "CREATE TABLE titles (id INTEGER PRIMARY KEY, title_type TEXT, primary_title TEXT,"
    " original_title TEXT, is_adult INTEGER, start_year INTEGER, end_year INTEGER,"
    " runtime_minutes INTEGER, genres TEXT NOT NULL);"
    "CREATE TABLE genres (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"
    /* By genre first: the genre filter and the counts go that way (a
     * title's own genres are on its row), and rows arrive in title order,
     * so each genre's part of the tree grows at its end: no index to
     * build after the load. */
    "CREATE TABLE title_genres (genre_id INTEGER NOT NULL, title_id INTEGER NOT NULL,"
    " PRIMARY KEY (genre_id, title_id)) WITHOUT ROWID;"
    "CREATE TABLE ratings (title_id INTEGER PRIMARY KEY, average_rating REAL NOT NULL,"
    " num_votes INTEGER NOT NULL);"
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);";

static const char index_sql[] =
    "CREATE INDEX titles_by_year ON titles (start_year);"
    "CREATE INDEX titles_by_type ON titles (title_type);";

static const char fts_sql[] =
    "CREATE VIRTUAL TABLE titles_fts USING fts5(primary_title, original_title,"
    " content='titles', content_rowid='id', tokenize='unicode61 remove_diacritics 2');"
    "INSERT INTO titles_fts (titles_fts) VALUES ('rebuild');";

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------ reading lines */

typedef struct reader {
    gzFile gz;
    int fd;
    char *buf;
    size_t len, at;      /* bytes in buf, and where the next line starts */
    bool eof;
    int64_t line;        /* the number of the line last returned (1: the header) */
    int64_t total;       /* the file's size */
} reader;

static int reader_open(reader *r, const char *path, char *err, size_t cap) {
    memset(r, 0, sizeof *r);
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) {
        int e = -errno;
        snprintf(err, cap, "%s: %s", path, strerror(-e));
        return e;
    }
    struct stat st;
    if (fstat(r->fd, &st) == 0) r->total = st.st_size;
    r->gz = gzdopen(r->fd, "rb");
    r->buf = malloc(READ_BUF);
    if (!r->gz || !r->buf) {
        snprintf(err, cap, "out of memory");
        return -ENOMEM;
    }
    gzbuffer(r->gz, 1 << 20);
    return 0;
}

static void reader_close(reader *r) {
    if (r->gz) gzclose(r->gz);
    else if (r->fd >= 0) close(r->fd);
    free(r->buf);
}

/* Compressed bytes consumed so far. */
static int64_t reader_offset(reader *r) {
    z_off_t off = gzoffset(r->gz);
    return off >= 0 ? (int64_t)off : 0;
}

/* The next line (without '\n') into *line, *len. Returns 1, 0 at the end,
 * or a negative errno with err (a truncated gzip, a read error, a line
 * too long). */
static int next_line(reader *r, const char **line, size_t *len, const char *path, char *err,
                     size_t cap) {
    for (;;) {
        char *nl = r->at < r->len ? memchr(r->buf + r->at, '\n', r->len - r->at) : NULL;
        if (nl || (r->eof && r->at < r->len)) {
            size_t end = nl ? (size_t)(nl - r->buf) : r->len;
            *line = r->buf + r->at;
            *len = end - r->at;
            r->at = nl ? end + 1 : end;
            r->line++;
            return 1;
        }
        if (r->eof) return 0;
        /* Keep the partial line, fill the rest. */
        size_t keep = r->len - r->at;
        if (keep >= LINE_MAX_BYTES) {
            snprintf(err, cap, "%s line %lld: longer than %d bytes", path, (long long)r->line + 1,
                     LINE_MAX_BYTES);
            return -EINVAL;
        }
        memmove(r->buf, r->buf + r->at, keep);
        r->len = keep;
        r->at = 0;
        int got = gzread(r->gz, r->buf + r->len, (unsigned)(READ_BUF - r->len));
        if (got < 0) {
            int zerr;
            const char *msg = gzerror(r->gz, &zerr);
            snprintf(err, cap, "%s: %s", path, zerr == Z_ERRNO ? strerror(errno) : msg);
            return zerr == Z_ERRNO ? -EIO : -EBADMSG;
        }
        if (got == 0) {
            int zerr;
            const char *msg = gzerror(r->gz, &zerr);
            if (zerr == Z_BUF_ERROR) { /* the stream ended before its end */
                snprintf(err, cap, "%s: truncated: the gzip stream ends early (%s)", path, msg);
                return -EBADMSG;
            }
            r->eof = true;
        }
        r->len += (size_t)got;
    }
}

/* ------------------------------------------------------------------ the import */

typedef struct importer {
    const titles_import_opts *o;
    titles_import_result *res;
    sqlite3 *db;
    sqlite3_stmt *ins_title, *ins_genre, *ins_title_genre;
    char *genre_names[MAX_GENRE_NAMES];
    size_t ngenres;
    FILE *rejects;
    char rejects_path[4096];
    double start, last_report;
    reader rd;
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
    titles_progress p = {.bytes_read = reader_offset(&im->rd), .bytes_total = im->rd.total,
                         .rows = im->res->rows, .rejected = im->res->rejected,
                         .seconds = t - im->start, .phase = phase};
    im->o->on_progress(im->o->arg, &p);
}

/* The id of genre `g`, inserting it at first sight. */
static int64_t genre_id(importer *im, titles_text g) {
    for (size_t i = 0; i < im->ngenres; i++)
        if (strlen(im->genre_names[i]) == g.n && memcmp(im->genre_names[i], g.p, g.n) == 0)
            return (int64_t)i + 1;
    if (im->ngenres == MAX_GENRE_NAMES) return -1;
    char *name = strndup(g.p, g.n);
    if (!name) return -1;
    sqlite3_bind_int64(im->ins_genre, 1, (int64_t)im->ngenres + 1);
    sqlite3_bind_text(im->ins_genre, 2, g.p, (int)g.n, SQLITE_STATIC);
    int rc = sqlite3_step(im->ins_genre);
    sqlite3_reset(im->ins_genre);
    if (rc != SQLITE_DONE) {
        free(name);
        return -1;
    }
    im->genre_names[im->ngenres++] = name;
    return (int64_t)im->ngenres;
}

static void bind_text(sqlite3_stmt *st, int col, titles_text t) {
    if (t.p) sqlite3_bind_text(st, col, t.p, (int)t.n, SQLITE_STATIC);
    else sqlite3_bind_null(st, col);
}

static void bind_int(sqlite3_stmt *st, int col, int64_t v) {
    if (v >= 0) sqlite3_bind_int64(st, col, v);
    else sqlite3_bind_null(st, col);
}

/* A bad line: an error, or (skip_bad) a line of the rejects file. */
static int reject(importer *im, const char *line, size_t len, const char *why) {
    if (!im->o->skip_bad) {
        snprintf(im->res->error, sizeof im->res->error, "%s line %lld: %s", im->o->src,
                 (long long)im->rd.line, why);
        return -EINVAL;
    }
    if (!im->rejects && !(im->rejects = fopen(im->rejects_path, "w"))) {
        snprintf(im->res->error, sizeof im->res->error, "%.400s: %s", im->rejects_path,
                 strerror(errno));
        return -errno;
    }
    fprintf(im->rejects, "%lld\t%s\t%.*s\n", (long long)im->rd.line, why, (int)len, line);
    im->res->rejected++;
    return 0;
}

static int insert_row(importer *im, const titles_basics *b, const char *line, size_t len) {
    sqlite3_stmt *st = im->ins_title;
    sqlite3_bind_int64(st, 1, b->id);
    bind_text(st, 2, b->type);
    bind_text(st, 3, b->primary);
    bind_text(st, 4, b->original);
    bind_int(st, 5, b->is_adult);
    bind_int(st, 6, b->start_year);
    bind_int(st, 7, b->end_year);
    bind_int(st, 8, b->runtime);
    /* The genres also as a JSON array on the row, for the API to answer
     * without a join (title_genres is for filters and counts). Genre
     * names are 1 to 32 bytes of UTF-8 without commas; quotes and
     * backslashes are escaped. */
    char genres[3 * (2 * 32 + 3) + 3], *w = genres;
    *w++ = '[';
    for (int i = 0; i < b->ngenres; i++) {
        if (i) *w++ = ',';
        *w++ = '"';
        for (size_t k = 0; k < b->genres[i].n; k++) {
            char c = b->genres[i].p[k];
            if (c == '"' || c == '\\') *w++ = '\\';
            *w++ = c;
        }
        *w++ = '"';
    }
    *w++ = ']';
    sqlite3_bind_text(st, 9, genres, (int)(w - genres), SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_CONSTRAINT) return reject(im, line, len, "duplicate tconst");
    if (rc != SQLITE_DONE) return sql_fail(im, "inserting a title");
    for (int i = 0; i < b->ngenres; i++) {
        int64_t g = genre_id(im, b->genres[i]);
        if (g < 0) return sql_fail(im, "adding a genre");
        sqlite3_bind_int64(im->ins_title_genre, 1, b->id);
        sqlite3_bind_int64(im->ins_title_genre, 2, g);
        rc = sqlite3_step(im->ins_title_genre);
        sqlite3_reset(im->ins_title_genre);
        if (rc != SQLITE_DONE && rc != SQLITE_CONSTRAINT) /* a genre twice: once is enough */
            return sql_fail(im, "adding a title's genre");
    }
    im->res->rows++;
    return 0;
}

static int open_target(importer *im, const char *path) {
    int rc = sqlite3_open_v2(path, &im->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) return sql_fail(im, path);
    rc = sqlite3_exec(im->db,
                      "PRAGMA page_size=16384; PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-16000;"
                      " PRAGMA locking_mode=EXCLUSIVE; PRAGMA temp_store=FILE;",
                      NULL, NULL, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_exec(im->db, schema_sql, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(im->db, "INSERT INTO titles VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                -1, &im->ins_title, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(im->db, "INSERT INTO genres VALUES (?, ?)", -1, &im->ins_genre,
                                NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(im->db, "INSERT INTO title_genres (title_id, genre_id)"
                                        " VALUES (?, ?)",
                                -1, &im->ins_title_genre, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_exec(im->db, "BEGIN", NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : sql_fail(im, "creating the schema");
}

static int load_rows(importer *im) {
    const char *line;
    size_t len;
    char why[96];
    int got = next_line(&im->rd, &line, &len, im->o->src, im->res->error, sizeof im->res->error);
    if (got < 0) return got;
    if (got == 0) {
        snprintf(im->res->error, sizeof im->res->error, "%s: empty: no header line", im->o->src);
        return -EINVAL;
    }
    if (len && line[len - 1] == '\r') len--;
    if (len != strlen(TITLES_BASICS_HEADER) || memcmp(line, TITLES_BASICS_HEADER, len) != 0) {
        snprintf(im->res->error, sizeof im->res->error,
                 "%s line 1: not the header of title.basics.tsv (want \"%s\", tab-separated)",
                 im->o->src, TITLES_BASICS_HEADER);
        return -EINVAL;
    }
    int err = 0;
    int64_t seen = 0;
    while ((got = next_line(&im->rd, &line, &len, im->o->src, im->res->error,
                            sizeof im->res->error)) > 0) {
        titles_basics b;
        if (titles_parse_basics(line, len, &b, why, sizeof why) != 0) err = reject(im, line, len, why);
        else err = insert_row(im, &b, line, len);
        if (err) return err;
        if (++seen % STOP_CHECK_ROWS == 0) {
            if (im->o->stop && *im->o->stop) {
                snprintf(im->res->error, sizeof im->res->error, "interrupted at line %lld",
                         (long long)im->rd.line);
                return -ECANCELED;
            }
            report(im, "rows", false);
        }
    }
    return got;
}

static int finish(importer *im) {
    double t0 = now_s();
    im->res->load_seconds = t0 - im->start;
    report(im, "indexes", true);
    char meta[512];
    snprintf(meta, sizeof meta,
             "INSERT INTO meta VALUES ('schema', '%d'), ('rows', '%lld'), ('imported_at', '%lld');",
             TITLES_SCHEMA_VERSION, (long long)im->res->rows, (long long)time(NULL));
    if (sqlite3_exec(im->db, meta, NULL, NULL, NULL) != SQLITE_OK) return sql_fail(im, "meta");
    if (sqlite3_exec(im->db, index_sql, NULL, NULL, NULL) != SQLITE_OK)
        return sql_fail(im, "building the indexes");
    if (im->o->stop && *im->o->stop) return -ECANCELED;
    double t1 = now_s();
    im->res->index_seconds = t1 - t0;
    report(im, "full-text index", true);
    if (sqlite3_exec(im->db, fts_sql, NULL, NULL, NULL) != SQLITE_OK)
        return sql_fail(im, "building the full-text index");
    im->res->fts_seconds = now_s() - t1;
    if (sqlite3_exec(im->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        return sql_fail(im, "committing");
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
    sqlite3_finalize(im->ins_title);
    sqlite3_finalize(im->ins_genre);
    sqlite3_finalize(im->ins_title_genre);
    if (im->db) sqlite3_close(im->db);
    im->db = NULL;
    for (size_t i = 0; i < im->ngenres; i++) free(im->genre_names[i]);
    if (im->rejects) fclose(im->rejects);
    reader_close(&im->rd);
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
    int err = reader_open(&im.rd, o->src, res->error, sizeof res->error);
    if (!err) err = open_target(&im, tmp);
    if (!err) err = load_rows(&im);
    if (!err) err = finish(&im);
    importer_close(&im);
    /* Synced, then in place, then the directory entry synced. */
    if (!err && (err = sync_path(tmp, O_RDONLY)) != 0)
        snprintf(res->error, sizeof res->error, "syncing %.400s: %s", tmp, strerror(-err));
    if (!err && rename(tmp, o->db_path) != 0) {
        err = -errno;
        snprintf(res->error, sizeof res->error, "renaming %.400s: %s", tmp, strerror(errno));
    }
    if (!err) {
        char wal[4200], shm[4200], dir[4096];
        snprintf(wal, sizeof wal, "%s-wal", o->db_path); /* an old database's leftovers */
        snprintf(shm, sizeof shm, "%s-shm", o->db_path);
        unlink(wal);
        unlink(shm);
        dir_of(o->db_path, dir, sizeof dir);
        (void)sync_path(dir, O_RDONLY | O_DIRECTORY);
    }
    if (err) {
        unlink(tmp);
        char side[4200];
        snprintf(side, sizeof side, "%s-journal", tmp);
        unlink(side);
    }
    res->genres = (int64_t)im.ngenres;
    res->seconds = now_s() - im.start;
    if (!err && o->on_progress) {
        titles_progress p = {.bytes_read = im.rd.total, .bytes_total = im.rd.total,
                             .rows = res->rows, .rejected = res->rejected,
                             .seconds = res->seconds, .phase = "done"};
        o->on_progress(o->arg, &p);
    }
    return err;
}

int titles_import_ratings(const titles_import_opts *o, titles_import_result *res) {
    memset(res, 0, sizeof *res);
    importer im = {.o = o, .res = res, .start = now_s(), .rd = {.fd = -1}};
    if (o->rejects) snprintf(im.rejects_path, sizeof im.rejects_path, "%s", o->rejects);
    else snprintf(im.rejects_path, sizeof im.rejects_path, "%s.ratings-rejects.tsv", o->db_path);
    int err = reader_open(&im.rd, o->src, res->error, sizeof res->error);
    int rc = SQLITE_OK;
    sqlite3_stmt *ins = NULL;
    if (!err && access(o->db_path, F_OK) != 0) {
        snprintf(res->error, sizeof res->error, "%s: no titles database: import the titles first",
                 o->db_path);
        err = -ENOENT;
    }
    if (!err) {
        rc = sqlite3_open_v2(o->db_path, &im.db, SQLITE_OPEN_READWRITE, NULL);
        if (rc == SQLITE_OK) sqlite3_busy_timeout(im.db, 10000);
        if (rc == SQLITE_OK) rc = sqlite3_exec(im.db, "BEGIN IMMEDIATE; DELETE FROM ratings;", NULL, NULL, NULL);
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
    if (!err) {
        got = next_line(&im.rd, &line, &len, o->src, res->error, sizeof res->error);
        if (got > 0 && len && line[len - 1] == '\r') len--;
        if (got < 0) err = got;
        else if (got == 0 || len != strlen(TITLES_RATINGS_HEADER) ||
                 memcmp(line, TITLES_RATINGS_HEADER, len) != 0) {
            snprintf(res->error, sizeof res->error,
                     "%s line 1: not the header of title.ratings.tsv (want \"%s\")", o->src,
                     TITLES_RATINGS_HEADER);
            err = -EINVAL;
        }
    }
    while (!err && (got = next_line(&im.rd, &line, &len, o->src, res->error,
                                    sizeof res->error)) > 0) {
        titles_rating r;
        if (titles_parse_rating(line, len, &r, why, sizeof why) != 0) {
            err = reject(&im, line, len, why);
            continue;
        }
        sqlite3_bind_int64(ins, 1, r.id);
        sqlite3_bind_double(ins, 2, r.average);
        sqlite3_bind_int64(ins, 3, r.votes);
        rc = sqlite3_step(ins);
        sqlite3_reset(ins);
        if (rc == SQLITE_CONSTRAINT) err = reject(&im, line, len, "duplicate tconst");
        else if (rc != SQLITE_DONE) err = sql_fail(&im, "inserting a rating");
        else if (sqlite3_changes(im.db) == 1) res->rows++;
        else res->rejected++; /* no such title */
        if ((res->rows + res->rejected) % STOP_CHECK_ROWS == 0) {
            if (o->stop && *o->stop) err = -ECANCELED;
            report(&im, "rows", false);
        }
    }
    if (!err && got < 0) err = got;
    if (!err && sqlite3_exec(im.db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        err = sql_fail(&im, "committing");
    if (err && im.db) sqlite3_exec(im.db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_finalize(ins);
    importer_close(&im);
    res->seconds = now_s() - im.start;
    return err;
}
