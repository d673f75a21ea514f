/* titles/feed.h: title.basics parsed on a thread of its own, in batches
 * that travel down a pipeline and come back.
 *
 * Reading a line, inflating it, checking its UTF-8 and cutting its fields
 * is a fifth of an import's work, and none of it needs the database; on a
 * thread of its own it overlaps the inserts. The pipeline:
 *
 *     parser --parsed--> loader --(its own queue)--> FTS builder --free--> parser
 *
 * A fixed set of batches circulates, so memory is bounded whatever the
 * file's size: a batch is TITLES_BATCH_ROWS rows and the text they point
 * into. Each stage owns a batch between taking and passing it on. The
 * loader marks the rows the database refused (`dropped`) before passing a
 * batch on, so the later stages see only the rows that were loaded.
 *
 * The parser stops at the end of the file or its first error: the batch it
 * sends last has `last` set and, for an error, err and error. Any stage
 * can end the pipeline early with titles_feed_abort(): every queue then
 * gives NULL, and every stage sees that and stops.
 */
#ifndef COIL_TITLES_FEED_H
#define COIL_TITLES_FEED_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "titles/lines.h"
#include "titles/tsv.h"

enum {
    TITLES_BATCH_ROWS = 4096,
    TITLES_BATCHES = 4,
};

typedef struct titles_row {
    titles_basics b;             /* fields point into the batch's text */
    int64_t line;                /* its line number in the file */
    const char *why;             /* NULL, or why the line is bad (in the batch's text) */
    titles_text raw;             /* the line as read, for a rejects file */
    titles_text genres_json;     /* the genres as a JSON array: ["Drama","Short"] */
    titles_text original_other;  /* originalTitle where it differs from primaryTitle, else NULL */
    bool dropped;                /* the database refused it (a duplicate tconst) */
} titles_row;

typedef struct titles_batch {
    titles_row rows[TITLES_BATCH_ROWS]; /* rows[0..n) */
    size_t n;
    char *text;                  /* the rows' bytes, owned */
    size_t used;                 /* of text */
    bool last;                   /* the stream ends with this batch */
    int err;                     /* 0, or (last) why it ended early: a negative errno */
    char error[512];             /* err's message */
} titles_batch;

/* A blocking FIFO of batches, large enough for all of them: a push never
 * waits. Closed, it gives NULL to every pop and drops what it holds. */
typedef struct titles_queue {
    pthread_mutex_t mu;
    pthread_cond_t ready;
    titles_batch *items[TITLES_BATCHES];
    size_t head, count;
    bool closed;
} titles_queue;

void titles_queue_init(titles_queue *q);
void titles_queue_destroy(titles_queue *q);
void titles_queue_push(titles_queue *q, titles_batch *b);
titles_batch *titles_queue_pop(titles_queue *q); /* blocks; NULL once closed */
void titles_queue_close(titles_queue *q);

typedef struct titles_feed {
    titles_lines lines;          /* the parser thread's once started */
    titles_batch *batches;       /* TITLES_BATCHES of them, owned */
    titles_queue free_q;         /* batches the parser may fill */
    titles_queue parsed_q;       /* batches for the loader */
    titles_queue *downstream;    /* borrowed: closed with the feed by titles_feed_abort */
    atomic_llong bytes_read;     /* titles_lines_offset(), updated per batch */
    pthread_t thread;
    bool started;
} titles_feed;

/* Opens `src`, checks its header, and starts the parser thread. Returns 0
 * or a negative errno with err; titles_feed_close() is due either way. */
int titles_feed_start(titles_feed *f, const char *src, char *err, size_t cap);

/* The next parsed batch, for the loader; NULL once aborted. */
titles_batch *titles_feed_next(titles_feed *f);

/* Gives a batch back to the parser, by the pipeline's last stage. */
void titles_feed_recycle(titles_feed *f, titles_batch *b);

/* Ends the pipeline: every queue of it (and `downstream`) gives NULL from
 * now on. Any thread may call it, any number of times. */
void titles_feed_abort(titles_feed *f);

/* Aborts if still running, joins the parser and frees everything. */
void titles_feed_close(titles_feed *f);

#endif
