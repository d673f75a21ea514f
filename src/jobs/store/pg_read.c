/* jobs/store/pg_read.c: get, list and counts on PostgreSQL. Each read runs
 * on the thread pool (libpq blocks) with a connection from a small pool of
 * them; a connection that broke is dropped, and the next read connects
 * anew. Reads see every commit acknowledged before they started (READ
 * COMMITTED), on every node.
 */
#include "jobs/store/pg.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { LIST_DEFAULT = 50, LIST_MAX = 1000 };

/* ------------------------------------------------------------------ connections */

static int reader_get(coil__store *s, PGconn **out) {
    coil__pg *pg = s->impl;
    pthread_mutex_lock(&pg->rlock);
    PGconn *c = pg->nreaders ? pg->readers[--pg->nreaders] : NULL;
    pthread_mutex_unlock(&pg->rlock);
    if (c) {
        *out = c;
        return 0;
    }
    return coil__pg_connect(pg->url, "reading", false, out) ? -ENOTCONN : 0;
}

static void reader_put(coil__store *s, PGconn *c) {
    coil__pg *pg = s->impl;
    bool kept = false;
    if (PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) == PQTRANS_IDLE) {
        pthread_mutex_lock(&pg->rlock);
        kept = pg->nreaders < s->opts.max_readers;
        if (kept) pg->readers[pg->nreaders++] = c;
        pthread_mutex_unlock(&pg->rlock);
    }
    if (!kept) PQfinish(c);
}

void coil__pg_readers_close(coil__pg *pg) {
    pthread_mutex_lock(&pg->rlock);
    while (pg->nreaders) PQfinish(pg->readers[--pg->nreaders]);
    pthread_mutex_unlock(&pg->rlock);
}

/* ------------------------------------------------------------------ reads */

typedef enum read_kind { READ_GET, READ_LIST, READ_COUNTS } read_kind;

typedef struct read_op {
    coil__store *s;
    read_kind kind;
    const char *id;                 /* READ_GET */
    const coil__job_filter *filter; /* READ_LIST */
    coil__job *job;                 /* out: READ_GET */
    coil__job_list list;            /* out: READ_LIST */
    uint64_t *counts;               /* out: READ_COUNTS */
    int err;
} read_op;

static int read_get(read_op *op, PGconn *c) {
    char sql[1024];
    snprintf(sql, sizeof sql, "SELECT %s FROM coil_jobs WHERE id = $1", coil__pg_columns(true));
    const char *p[] = {op->id};
    int err;
    PGresult *res = coil__pg_exec(c, sql, 1, p, NULL, NULL, &err);
    if (!res) return err;
    if (PQntuples(res) == 0) err = -ENOENT;
    else if (!(op->job = coil__pg_job(res, 0, 0, true))) err = -ENOMEM;
    PQclear(res);
    return err;
}

static int read_list(read_op *op, PGconn *c) {
    const coil__job_filter *f = op->filter;
    size_t limit = f->limit ? f->limit : LIST_DEFAULT;
    if (limit > LIST_MAX) limit = LIST_MAX;
    char sql[1024], cursor[24], state[24], lim[24];
    snprintf(sql, sizeof sql,
             "SELECT %s FROM coil_jobs WHERE seq < $1 AND ($2::smallint IS NULL OR state = $2)"
             " AND ($3::text IS NULL OR kind = $3) ORDER BY seq DESC LIMIT $4",
             coil__pg_columns(false));
    snprintf(cursor, sizeof cursor, "%" PRId64, f->cursor ? (int64_t)f->cursor : INT64_MAX);
    snprintf(state, sizeof state, "%d", f->state);
    snprintf(lim, sizeof lim, "%zu", limit + 1); /* one more: is there a next page? */
    const char *p[] = {cursor, f->state >= 0 ? state : NULL, f->kind, lim};
    int err;
    PGresult *res = coil__pg_exec(c, sql, 4, p, NULL, NULL, &err);
    if (!res) return err;
    size_t rows = (size_t)PQntuples(res), n = rows > limit ? limit : rows;
    op->list.jobs = n ? calloc(n, sizeof *op->list.jobs) : NULL;
    if (n && !op->list.jobs) err = -ENOMEM;
    for (size_t i = 0; i < n && !err; i++) {
        coil__job *j = coil__pg_job(res, (int)i, 0, false);
        if (!j) err = -ENOMEM;
        else op->list.jobs[op->list.n++] = j;
    }
    if (!err && rows > limit) op->list.next_cursor = op->list.jobs[limit - 1]->seq;
    PQclear(res);
    return err;
}

static int read_counts(read_op *op, PGconn *c) {
    int err;
    PGresult *res = coil__pg_exec(c, "SELECT state, count(*) FROM coil_jobs GROUP BY state", 0,
                                  NULL, NULL, NULL, &err);
    if (!res) return err;
    memset(op->counts, 0, COIL__JOB_NSTATES * sizeof *op->counts);
    for (int i = 0; i < PQntuples(res); i++) {
        int64_t state = coil__pg_int(res, i, 0);
        if (state >= 0 && state < COIL__JOB_NSTATES)
            op->counts[state] = (uint64_t)coil__pg_int(res, i, 1);
    }
    PQclear(res);
    return 0;
}

/* Thread pool. */
static void *read_main(void *arg) {
    read_op *op = arg;
    PGconn *c;
    op->err = reader_get(op->s, &c);
    if (op->err) return NULL;
    switch (op->kind) {
    case READ_GET: op->err = read_get(op, c); break;
    case READ_LIST: op->err = read_list(op, c); break;
    case READ_COUNTS: op->err = read_counts(op, c); break;
    }
    reader_put(op->s, c);
    return NULL;
}

static int read_run(read_op *op) {
    int err = coil_to_thread(read_main, op, NULL);
    if (!err) err = op->err;
    if (err) {
        coil__job_free(op->job);
        op->job = NULL;
        coil__job_list_free(&op->list);
    }
    return err;
}

int coil__pg_get(coil__store *s, const char *id, coil__job **out) {
    read_op op = {.s = s, .kind = READ_GET, .id = id};
    int err = read_run(&op);
    if (!err) *out = op.job;
    return err;
}

int coil__pg_list(coil__store *s, const coil__job_filter *f, coil__job_list *out) {
    read_op op = {.s = s, .kind = READ_LIST, .filter = f};
    int err = read_run(&op);
    if (!err) *out = op.list;
    return err;
}

int coil__pg_counts(coil__store *s, uint64_t counts[COIL__JOB_NSTATES]) {
    read_op op = {.s = s, .kind = READ_COUNTS, .counts = counts};
    return read_run(&op);
}
