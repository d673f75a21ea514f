/* titles/fts_side.h: the full-text index, built on a thread of its own
 * into a side file while the loader fills the main one, then copied in.
 *
 * An SQLite file has one writer, so the FTS5 index cannot be built in the
 * main file while the rows go in; built after them it costs the import a
 * second pass. Instead a second thread builds the same FTS5 table in a
 * file of its own from the same batches, as the loader passes them on
 * (feed.h), and the importer copies its shadow tables into the main file
 * at the end: pages of blobs, a fraction of what building them cost.
 *
 * The index is contentless (content=''): the search asks it for rowids
 * only and reads the rows from titles, so storing the text twice would be
 * waste. columnsize=0 skips the per-row sizes table that only ranking
 * needs (it doubles the cost of building). originalTitle is indexed only
 * where it differs from primaryTitle: a search for either finds the row
 * either way, and nine rows in ten need one column, not two.
 */
#ifndef COIL_TITLES_FTS_SIDE_H
#define COIL_TITLES_FTS_SIDE_H

#include <pthread.h>
#include <sqlite3.h>

#include "titles/feed.h"

typedef struct titles_fts_side {
    char path[4200];          /* the side file */
    sqlite3 *db;              /* the builder thread's connection */
    titles_feed *feed;        /* borrowed: finished batches go back to it */
    titles_queue q;           /* batches the loader has finished with */
    titles_batch *batch;      /* the batch being read, and where */
    size_t at;
    titles_row *row;          /* the row the stream is on */
    pthread_t thread;
    bool started;
    int err;                  /* the builder's result: 0 or a negative errno */
    char error[512];          /* err's message */
} titles_fts_side;

/* Creates the side file `path` and starts its builder, fed by
 * titles_fts_side_push(). Registers its queue as the feed's downstream,
 * so that aborting the feed stops it. Returns 0 or a negative errno with
 * err; titles_fts_side_close() is due either way. */
int titles_fts_side_start(titles_fts_side *s, const char *path, titles_feed *feed, char *err,
                          size_t cap);

/* A batch the loader is done with (its refused rows marked dropped). */
void titles_fts_side_push(titles_fts_side *s, titles_batch *b);

/* Waits for the builder to reach the end of the stream and closes the
 * side file. Returns its result (0, or a negative errno with s->error). */
int titles_fts_side_finish(titles_fts_side *s);

/* Creates titles_fts in `db` (no transaction open) and copies the side
 * file's index into it. Returns an SQLite result code. */
int titles_fts_copy_into(sqlite3 *db, const char *side_path);

/* Stops the builder if it runs, closes and removes the side file. */
void titles_fts_side_close(titles_fts_side *s);

#endif
