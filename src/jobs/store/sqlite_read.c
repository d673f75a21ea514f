/* jobs/store/sqlite_read.c: the read path: get, list and counts run on the
 * thread pool, each on a read connection taken from a small pool of them
 * (WAL readers never wait for the writer).
 */
#include "jobs/store/sqlite.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ reads */

/* Takes an idle read connection, or opens one. Returns an SQLite code. */
static int reader_get(coil__store *s, sqlite3 **out) {
    pthread_mutex_lock(&coil__sq(s)->rlock);
    sqlite3 *db = coil__sq(s)->nreaders ? coil__sq(s)->readers[--coil__sq(s)->nreaders] : NULL;
    pthread_mutex_unlock(&coil__sq(s)->rlock);
    if (db) {
        *out = db;
        return SQLITE_OK;
    }
    int rc = sqlite3_open_v2(coil__sq(s)->db_path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        sqlite3_close(db);
        return rc;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
    *out = db;
    return SQLITE_OK;
}

/* Gives a connection back; beyond the pool's size it is closed. */
static void reader_put(coil__store *s, sqlite3 *db) {
    pthread_mutex_lock(&coil__sq(s)->rlock);
    bool kept = coil__sq(s)->nreaders < s->opts.max_readers;
    if (kept) coil__sq(s)->readers[coil__sq(s)->nreaders++] = db;
    pthread_mutex_unlock(&coil__sq(s)->rlock);
    if (!kept) sqlite3_close(db);
}

void coil__store_readers_close(coil__store *s) {
    pthread_mutex_lock(&coil__sq(s)->rlock);
    while (coil__sq(s)->nreaders) sqlite3_close(coil__sq(s)->readers[--coil__sq(s)->nreaders]);
    pthread_mutex_unlock(&coil__sq(s)->rlock);
}

typedef enum read_kind { READ_GET, READ_LIST, READ_COUNTS } read_kind;

/* One read, run on the thread pool. */
typedef struct read_op {
    coil__store *s;
    read_kind kind;
    const char *id;               /* READ_GET */
    const coil__job_filter *filter; /* READ_LIST */
    coil__job *job;               /* out: READ_GET */
    coil__job_list list;          /* out: READ_LIST */
    uint64_t *counts;             /* out: READ_COUNTS */
    int err;                      /* the read's outcome */
} read_op;

static int read_get(read_op *op, sqlite3 *db) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, "SELECT " FULL_COLUMNS " FROM jobs WHERE id = ?1", -1, &st,
                                NULL);
    if (rc != SQLITE_OK) return rc;
    sqlite3_bind_text(st, 1, op->id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        op->job = coil__job_from_row(op->s, st, true);
        rc = op->job ? SQLITE_OK : SQLITE_NOMEM;
    } else if (rc == SQLITE_DONE) {
        op->err = -ENOENT;
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

static int list_push(coil__job_list *l, size_t *cap, coil__job *j) {
    if (l->n == *cap) {
        size_t ncap = *cap ? 2 * *cap : 16;
        coil__job **p = realloc(l->jobs, ncap * sizeof *p);
        if (!p) return SQLITE_NOMEM;
        l->jobs = p;
        *cap = ncap;
    }
    l->jobs[l->n++] = j;
    return SQLITE_OK;
}

static int read_list(read_op *op, sqlite3 *db) {
    const coil__job_filter *f = op->filter;
    size_t limit = f->limit ? f->limit : LIST_DEFAULT;
    if (limit > LIST_MAX) limit = LIST_MAX;
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT " SUMMARY_COLUMNS " FROM jobs WHERE seq < ?1%s%s ORDER BY seq DESC LIMIT ?4",
             f->state >= 0 ? " AND state = ?2" : "", f->kind ? " AND kind = ?3" : "");
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) return rc;
    sqlite3_bind_int64(st, 1, f->cursor ? (int64_t)f->cursor : INT64_MAX);
    if (f->state >= 0) sqlite3_bind_int(st, 2, f->state);
    if (f->kind) sqlite3_bind_text(st, 3, f->kind, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (int64_t)limit + 1); /* one more: is there a next page? */
    size_t cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (op->list.n == limit) {
            op->list.next_cursor = op->list.jobs[limit - 1]->seq;
            continue;
        }
        coil__job *j = coil__job_from_row(op->s, st, false);
        if (!j || list_push(&op->list, &cap, j) != SQLITE_OK) {
            coil__job_free(j);
            rc = SQLITE_NOMEM;
            break;
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int read_counts(read_op *op, sqlite3 *db) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, "SELECT state, count(*) FROM jobs GROUP BY state", -1, &st,
                                NULL);
    if (rc != SQLITE_OK) return rc;
    memset(op->counts, 0, COIL__JOB_NSTATES * sizeof *op->counts);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int state = sqlite3_column_int(st, 0);
        if (state >= 0 && state < COIL__JOB_NSTATES)
            op->counts[state] = (uint64_t)sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Thread pool. */
static void *read_main(void *arg) {
    read_op *op = arg;
    sqlite3 *db = NULL;
    int rc = reader_get(op->s, &db);
    if (rc == SQLITE_OK) {
        switch (op->kind) {
        case READ_GET: rc = read_get(op, db); break;
        case READ_LIST: rc = read_list(op, db); break;
        case READ_COUNTS: rc = read_counts(op, db); break;
        }
    }
    if (rc != SQLITE_OK) op->err = coil__sqlite_err(db, rc);
    if (db) reader_put(op->s, db);
    return NULL;
}

static void read_discard(read_op *op) {
    coil__job_free(op->job);
    op->job = NULL;
    coil__job_list_free(&op->list);
}

/* Runs a read on the thread pool. Suspends. */
static int read_run(read_op *op) {
    int err = coil_to_thread(read_main, op, NULL);
    if (!err) err = op->err;
    if (err) read_discard(op);
    return err;
}

int coil__sqlite_get(coil__store *s, const char *id, coil__job **out) {
    if (!coil__job_id_valid(id)) return -ENOENT;
    read_op op = {.s = s, .kind = READ_GET, .id = id};
    int err = read_run(&op);
    if (!err) *out = op.job;
    return err;
}

int coil__sqlite_list(coil__store *s, const coil__job_filter *f, coil__job_list *out) {
    static const coil__job_filter all = {.state = -1};
    if (!f) f = &all;
    if (f->state < -1 || f->state >= COIL__JOB_NSTATES || f->cursor > INT64_MAX) return -EINVAL;
    read_op op = {.s = s, .kind = READ_LIST, .filter = f};
    int err = read_run(&op);
    if (!err) *out = op.list;
    return err;
}

int coil__sqlite_counts(coil__store *s, uint64_t counts[COIL__JOB_NSTATES]) {
    read_op op = {.s = s, .kind = READ_COUNTS, .counts = counts};
    return read_run(&op);
}
