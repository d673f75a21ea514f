/* jobs/store/pg_read.c: get, list and counts on PostgreSQL. Each read runs
 * on a pool thread (calls.c; libpq blocks) with a connection from a small
 * pool of them; a connection that broke is dropped, and the next read connects
 * anew. Reads see every commit acknowledged before they started (READ
 * COMMITTED), on every node.
 */
#include "jobs/store/pg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static int read_get(coil__store_read *op, PGconn *c) {
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

static int read_list(coil__store_read *op, PGconn *c) {
    const coil__job_filter *f = op->filter;
    size_t limit = f->limit;
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT %s FROM coil_jobs WHERE seq < $1 AND ($2::smallint IS NULL OR state = $2)"
             " AND ($3::text IS NULL OR kind = $3) AND ($5::text IS NULL OR parent = $5)"
             " ORDER BY seq DESC LIMIT $4",
             coil__pg_columns(false));
    coil__pg_num cursor = coil__pg_n64(f->cursor ? (int64_t)f->cursor : INT64_MAX),
                 state = coil__pg_n64(f->state),
                 lim = coil__pg_n64((int64_t)limit + 1); /* one more: is there a next page? */
    const char *p[] = {cursor.s, f->state >= 0 ? state.s : NULL, f->kind, lim.s, f->parent};
    int err;
    PGresult *res = coil__pg_exec(c, sql, 5, p, NULL, NULL, &err);
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

static int read_counts(coil__store_read *op, PGconn *c) {
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

/* Each node's lease, how long since it renewed it, and the jobs it runs. */
static int read_nodes(const coil__store *s, coil__store_read *op, PGconn *c) {
    int err;
    coil__pg_num lease = coil__pg_n64(coil__pgs(s)->lease_ms);
    PGresult *res = coil__pg_exec(
        c,
        "SELECT json_agg(json_build_object('id', n.id, 'name', n.name,"
        " 'started', (extract(epoch FROM n.started) * 1000)::bigint,"
        " 'heartbeat_age_ms', greatest(0, (extract(epoch FROM now() - (n.lease_until"
        "  - $1::bigint * interval '1 millisecond')) * 1000)::bigint),"
        " 'lost', n.lost, 'running', (SELECT count(*) FROM coil_jobs j"
        "  WHERE j.state = 1 AND j.node = n.id)) ORDER BY n.id)::text"
        " FROM coil_nodes n WHERE NOT n.lost OR n.lease_until > now() - interval '1 hour'",
        1, (const char *const[]){lease.s}, NULL, NULL, &err);
    if (!res) return err;
    const char *text = PQgetisnull(res, 0, 0) ? "[]" : PQgetvalue(res, 0, 0);
    op->nodes = strdup(text);
    PQclear(res);
    return op->nodes ? 0 : -ENOMEM;
}

int coil__pg_read(coil__store *s, coil__store_read *op) {
    PGconn *c;
    int err = reader_get(s, &c);
    if (err) return err;
    switch (op->kind) {
    case COIL__READ_GET: err = read_get(op, c); break;
    case COIL__READ_LIST: err = read_list(op, c); break;
    case COIL__READ_COUNTS: err = read_counts(op, c); break;
    case COIL__READ_NODES: err = read_nodes(s, op, c); break;
    }
    reader_put(s, c);
    return err;
}
