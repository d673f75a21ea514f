/* titles/feed.c: the parser thread and its queues (feed.h has the design). */
#include "titles/feed.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    /* A batch's text: its lines, their genres as JSON and any reasons.
     * Room for the longest line titles_lines allows (1 MiB), always. */
    TEXT_BYTES = 2 << 20,
    ROW_EXTRA = 3 * (2 * 32 + 3) + 3 + 96, /* a row's JSON genres and its why, at most */
};

/* ------------------------------------------------------------------ queues */

void titles_queue_init(titles_queue *q) {
    memset(q, 0, sizeof *q);
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->ready, NULL);
}

void titles_queue_destroy(titles_queue *q) {
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->ready);
}

void titles_queue_push(titles_queue *q, titles_batch *b) {
    pthread_mutex_lock(&q->mu);
    if (!q->closed && q->count < TITLES_BATCHES) {
        q->items[(q->head + q->count++) % TITLES_BATCHES] = b;
        pthread_cond_signal(&q->ready);
    }
    pthread_mutex_unlock(&q->mu);
}

titles_batch *titles_queue_pop(titles_queue *q) {
    pthread_mutex_lock(&q->mu);
    while (!q->closed && q->count == 0) pthread_cond_wait(&q->ready, &q->mu);
    titles_batch *b = NULL;
    if (!q->closed) {
        b = q->items[q->head];
        q->head = (q->head + 1) % TITLES_BATCHES;
        q->count--;
    }
    pthread_mutex_unlock(&q->mu);
    return b;
}

void titles_queue_close(titles_queue *q) {
    pthread_mutex_lock(&q->mu);
    q->closed = true;
    q->count = 0;
    pthread_cond_broadcast(&q->ready);
    pthread_mutex_unlock(&q->mu);
}

/* ------------------------------------------------------------------ parsing */

static char *take(titles_batch *b, size_t n) {
    char *p = b->text + b->used;
    b->used += n;
    return p;
}

/* The genres as a JSON array. Names are 1 to 32 bytes without commas or
 * control characters (tsv.c checks); quotes and backslashes are escaped. */
static titles_text genres_json(titles_batch *b, const titles_basics *r) {
    char *start = b->text + b->used, *w = start;
    *w++ = '[';
    for (int i = 0; i < r->ngenres; i++) {
        if (i) *w++ = ',';
        *w++ = '"';
        for (size_t k = 0; k < r->genres[i].n; k++) {
            char c = r->genres[i].p[k];
            if (c == '"' || c == '\\') *w++ = '\\';
            *w++ = c;
        }
        *w++ = '"';
    }
    *w++ = ']';
    b->used += (size_t)(w - start);
    return (titles_text){start, (size_t)(w - start)};
}

static bool same_text(titles_text a, titles_text b) {
    return a.p && b.p && a.n == b.n && memcmp(a.p, b.p, a.n) == 0;
}

/* Copies `line` into the batch and parses it into the next row. */
static void add_row(titles_batch *b, const char *line, size_t len, int64_t number) {
    titles_row *row = &b->rows[b->n++];
    memset(row, 0, sizeof *row);
    char *copy = take(b, len);
    memcpy(copy, line, len);
    row->raw = (titles_text){copy, len};
    row->line = number;
    char why[96];
    if (titles_parse_basics(copy, len, &row->b, why, sizeof why) != 0) {
        size_t n = strlen(why) + 1;
        row->why = memcpy(take(b, n), why, n);
        return;
    }
    row->genres_json = genres_json(b, &row->b);
    if (!same_text(row->b.original, row->b.primary)) row->original_other = row->b.original;
}

/* Fills `b` from the file: rows until it is full, or the end, or an error. */
static void fill(titles_feed *f, titles_batch *b) {
    b->n = b->used = 0;
    b->last = false;
    b->err = 0;
    b->error[0] = '\0';
    const char *line;
    size_t len;
    while (b->n < TITLES_BATCH_ROWS) {
        /* The reader's line stays valid until its next call, so a line
         * that does not fit waits for the next batch in the reader. */
        if (TEXT_BYTES - b->used < (1u << 20) + ROW_EXTRA) break;
        int got = titles_lines_next(&f->lines, &line, &len, b->error, sizeof b->error);
        if (got <= 0) {
            b->last = true;
            b->err = got;
            break;
        }
        add_row(b, line, len, f->lines.line);
    }
    atomic_store(&f->bytes_read, titles_lines_offset(&f->lines));
}

static void *parser_main(void *arg) {
    titles_feed *f = arg;
    for (;;) {
        titles_batch *b = titles_queue_pop(&f->free_q);
        if (!b) return NULL;
        fill(f, b);
        titles_queue_push(&f->parsed_q, b);
        if (b->last) return NULL;
    }
}

/* ------------------------------------------------------------------ the feed */

int titles_feed_start(titles_feed *f, const char *src, char *err, size_t cap) {
    memset(f, 0, sizeof *f);
    f->lines.fd = -1;
    titles_queue_init(&f->free_q);
    titles_queue_init(&f->parsed_q);
    int e = titles_lines_open(&f->lines, src, err, cap);
    if (!e) e = titles_lines_header(&f->lines, TITLES_BASICS_HEADER, "title.basics.tsv", err, cap);
    if (e) return e;
    f->batches = calloc(TITLES_BATCHES, sizeof *f->batches);
    if (!f->batches) goto nomem;
    for (int i = 0; i < TITLES_BATCHES; i++) {
        if (!(f->batches[i].text = malloc(TEXT_BYTES))) goto nomem;
        titles_queue_push(&f->free_q, &f->batches[i]);
    }
    if ((e = pthread_create(&f->thread, NULL, parser_main, f)) != 0) {
        snprintf(err, cap, "starting the parser thread: %s", strerror(e));
        return -e;
    }
    f->started = true;
    return 0;
nomem:
    snprintf(err, cap, "out of memory");
    return -ENOMEM;
}

titles_batch *titles_feed_next(titles_feed *f) { return titles_queue_pop(&f->parsed_q); }

void titles_feed_recycle(titles_feed *f, titles_batch *b) { titles_queue_push(&f->free_q, b); }

void titles_feed_abort(titles_feed *f) {
    titles_queue_close(&f->free_q);
    titles_queue_close(&f->parsed_q);
    if (f->downstream) titles_queue_close(f->downstream);
}

void titles_feed_close(titles_feed *f) {
    titles_feed_abort(f);
    if (f->started) pthread_join(f->thread, NULL);
    f->started = false;
    titles_lines_close(&f->lines);
    if (f->batches)
        for (int i = 0; i < TITLES_BATCHES; i++) free(f->batches[i].text);
    free(f->batches);
    f->batches = NULL;
    titles_queue_destroy(&f->free_q);
    titles_queue_destroy(&f->parsed_q);
}
