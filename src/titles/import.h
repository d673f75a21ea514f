/* titles/import.h: IMDB's title.basics.tsv(.gz) into an SQLite database,
 * atomically, in bounded memory; and title.ratings.tsv(.gz) into it.
 *
 * These functions block: the coil command calls them on its own thread,
 * and the titles.import job kind in a worker process.
 */
#ifndef COIL_TITLES_IMPORT_H
#define COIL_TITLES_IMPORT_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* How far an import is. */
typedef struct titles_progress {
    int64_t bytes_read;   /* of the file as stored (compressed if gzip) */
    int64_t bytes_total;  /* its size */
    int64_t rows;         /* rows written */
    int64_t rejected;     /* bad lines skipped (--skip-bad) */
    double seconds;       /* since the start */
    const char *phase;    /* "rows", "indexes", "full-text index", "done" */
} titles_progress;

typedef struct titles_import_opts {
    const char *src;            /* .tsv or .tsv.gz */
    const char *db_path;        /* the database made (replaced atomically) */
    bool skip_bad;              /* bad lines go to `rejects` and are counted */
    const char *rejects;        /* NULL: DB_PATH.rejects.tsv */
    /* Called about every 200 ms and at each phase (may be NULL). */
    void (*on_progress)(void *arg, const titles_progress *p);
    void *arg;
    volatile sig_atomic_t *stop; /* set (Ctrl-C) to abandon the import; may be NULL */
} titles_import_opts;

typedef struct titles_import_result {
    int64_t rows, rejected, genres;
    double seconds;
    double load_seconds, index_seconds, fts_seconds; /* the phases of a titles import */
    char error[512];            /* why it failed: "FILE line N: bad startYear" */
} titles_import_result;

/* Imports title.basics into a new file next to db_path and renames it over
 * db_path once complete (indexes and the FTS5 index built, synced). On
 * any failure (a bad line without skip_bad, a truncated gzip, an empty
 * file or a wrong header, a full disk, *stop) the temporary file is
 * removed and db_path is as it was. Returns 0 or a negative errno, with
 * res->error. Memory stays within about 50 MB whatever the file's size. */
int titles_import_basics(const titles_import_opts *o, titles_import_result *res);

/* Imports title.ratings into a copy of the database at db_path and renames
 * the copy over it, as titles_import_basics() does: a titles.db in place
 * is never written, so that readers may open it immutable. Rows whose
 * tconst has no title are counted in res->rejected and skipped. On any
 * failure db_path is as it was. */
int titles_import_ratings(const titles_import_opts *o, titles_import_result *res);

/* The schema version of a titles database made here. */
enum { TITLES_SCHEMA_VERSION = 1 };

#endif
