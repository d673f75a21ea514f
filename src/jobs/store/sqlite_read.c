/* jobs/store/sqlite_read.c: the read path: get, list and counts, each run
 * on a pool thread (calls.c) on a read connection taken from a small pool
 * of them (WAL readers never wait for the writer).
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

static int read_get(coil__store *s, coil__store_read *op, sqlite3 *db, bool *found) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, "SELECT " FULL_COLUMNS " FROM jobs WHERE id = ?1", -1, &st,
                                NULL);
    if (rc != SQLITE_OK) return rc;
    sqlite3_bind_text(st, 1, op->id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    *found = rc == SQLITE_ROW;
    if (rc == SQLITE_ROW) {
        op->job = coil__job_from_row(s, st, true);
        rc = op->job ? SQLITE_OK : SQLITE_NOMEM;
    } else if (rc == SQLITE_DONE) {
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

static int read_list(coil__store *s, coil__store_read *op, sqlite3 *db) {
    const coil__job_filter *f = op->filter;
    size_t limit = f->limit;
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT " SUMMARY_COLUMNS " FROM jobs WHERE seq < ?1%s%s%s ORDER BY seq DESC LIMIT ?4",
             f->state >= 0 ? " AND state = ?2" : "", f->kind ? " AND kind = ?3" : "",
             f->parent ? " AND parent = ?5" : "");
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) return rc;
    sqlite3_bind_int64(st, 1, f->cursor ? (int64_t)f->cursor : INT64_MAX);
    if (f->state >= 0) sqlite3_bind_int(st, 2, f->state);
    if (f->kind) sqlite3_bind_text(st, 3, f->kind, -1, SQLITE_STATIC);
    if (f->parent) sqlite3_bind_text(st, 5, f->parent, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (int64_t)limit + 1); /* one more: is there a next page? */
    size_t cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (op->list.n == limit) {
            op->list.next_cursor = op->list.jobs[limit - 1]->seq;
            continue;
        }
        coil__job *j = coil__job_from_row(s, st, false);
        if (!j || list_push(&op->list, &cap, j) != SQLITE_OK) {
            coil__job_free(j);
            rc = SQLITE_NOMEM;
            break;
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int read_counts(coil__store_read *op, sqlite3 *db) {
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

int coil__sqlite_read(coil__store *s, coil__store_read *op) {
    sqlite3 *db = NULL;
    bool found = true;
    int rc = reader_get(s, &db);
    if (rc == SQLITE_OK) {
        switch (op->kind) {
        case COIL__READ_GET: rc = read_get(s, op, db, &found); break;
        case COIL__READ_LIST: rc = read_list(s, op, db); break;
        case COIL__READ_COUNTS: rc = read_counts(op, db); break;
        case COIL__READ_NODES: /* one process owns the directory: no nodes */
            rc = (op->nodes = strdup("[]")) ? SQLITE_OK : SQLITE_NOMEM;
            break;
        }
    }
    int err = rc == SQLITE_OK ? (found ? 0 : -ENOENT) : coil__sqlite_err(db, rc);
    if (db) reader_put(s, db);
    return err;
}
