/* jobs/store/sqlite_write.c: the write operations, each an exec function the
 * writer thread runs inside its group transaction (store_impl.h has their
 * contract). The held set (store_held.c) fences cancels from jobs a peek
 * handed out.
 */
#include "jobs/store/sqlite.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ writes */

/* What the writes need to know about a job before changing it. */
typedef struct job_head {
    int64_t seq;
    char kind[COIL__JOB_KIND_MAX + 1];
    coil__job_state state;
    int attempts, max_attempts;
    int64_t backoff_base, backoff_cap, run_at;
    bool cancel_requested;
    int progress;
} job_head;

/* Reads a job's head. Sets *found. Returns an SQLite code. */
static int lookup(coil__store *s, const char *id, job_head *h, bool *found) {
    sqlite3_stmt *st = coil__sq(s)->stmt[COIL__STMT_LOOKUP];
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    *found = rc == SQLITE_ROW;
    if (*found) {
        h->seq = sqlite3_column_int64(st, 0);
        snprintf(h->kind, sizeof h->kind, "%s", (const char *)sqlite3_column_text(st, 1));
        h->state = (coil__job_state)sqlite3_column_int(st, 2);
        h->attempts = sqlite3_column_int(st, 3);
        h->max_attempts = sqlite3_column_int(st, 4);
        h->backoff_base = sqlite3_column_int64(st, 5);
        h->backoff_cap = sqlite3_column_int64(st, 6);
        h->cancel_requested = sqlite3_column_int(st, 7) != 0;
        h->run_at = sqlite3_column_int64(st, 8);
        h->progress = sqlite3_column_int(st, 9);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

/* lookup() for request `r`: a job that is not there is the request's own
 * outcome (-ENOENT), not the transaction's. */
static int lookup_for(coil__store *s, coil__store_req *r, const char *id, job_head *h,
                      bool *found) {
    int rc = lookup(s, id, h, found);
    if (rc == SQLITE_OK && !*found) r->err = -ENOENT;
    return rc;
}

static void note_head(coil__store *s, const char *id, const job_head *h, coil__job_state state) {
    coil__job_event ev;
    coil__job_event_init(&ev, id, h->kind, state, h->attempts, h->run_at);
    ev.progress = h->progress;
    ev.cancel_requested = h->cancel_requested;
    coil__store_note_event(s, &ev);
}

static int bind_text_or_null(sqlite3_stmt *st, int i, const char *s) {
    return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

/* Runs a bound write statement and clears its bindings. */
static int run_bound(sqlite3_stmt *st) {
    int rc = coil__stmt_run(st);
    sqlite3_clear_bindings(st);
    return rc;
}

/* The id of the job with idempotency key `key` into out (and its state),
 * if there is one: *found. Returns an SQLite code. */
static int find_key(coil__store *s, const char *key, coil__enqueued *out, bool *found) {
    sqlite3_stmt *st = coil__sq(s)->stmt[COIL__STMT_FIND_KEY];
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    *found = rc == SQLITE_ROW;
    if (*found && out) {
        snprintf(out->id, sizeof out->id, "%s", (const char *)sqlite3_column_text(st, 0));
        out->state = (coil__job_state)sqlite3_column_int(st, 1);
        out->duplicate = true;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Inserts a queued job. Returns an SQLite code (a constraint: the id is
 * taken, a 2^-128 chance, or the key is). */
static int insert_job(coil__store *s, const char *id, const coil__job_spec *sp, int64_t now,
                      int64_t run_at) {
    sqlite3_stmt *st = coil__sq(s)->stmt[COIL__STMT_INSERT];
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, sp->kind, -1, SQLITE_STATIC);
    if (sp->payload_len) sqlite3_bind_blob64(st, 3, sp->payload, sp->payload_len, SQLITE_STATIC);
    else sqlite3_bind_zeroblob(st, 3, 0);
    sqlite3_bind_int(st, 4, sp->priority);
    sqlite3_bind_int64(st, 5, run_at);
    bind_text_or_null(st, 6, sp->idem_key);
    sqlite3_bind_int(st, 7, sp->max_attempts ? sp->max_attempts : COIL__JOB_DEFAULT_MAX_ATTEMPTS);
    sqlite3_bind_int64(st, 8, sp->backoff_base_ms ? sp->backoff_base_ms
                                                  : COIL__JOB_DEFAULT_BACKOFF_BASE_MS);
    sqlite3_bind_int64(st, 9, sp->backoff_cap_ms ? sp->backoff_cap_ms
                                                 : COIL__JOB_DEFAULT_BACKOFF_CAP_MS);
    sqlite3_bind_int64(st, 10, sp->timeout_ms);
    sqlite3_bind_int64(st, 11, now);
    bind_text_or_null(st, 12, sp->followups);
    bind_text_or_null(st, 13, sp->parent);
    return run_bound(st);
}

static int exec_enqueue(coil__store *s, coil__store_req *r) {
    const coil__job_spec *sp = r->u.enqueue.spec;
    if (sp->idem_key) {
        bool found;
        int rc = find_key(s, sp->idem_key, r->u.enqueue.out, &found);
        if (rc != SQLITE_OK || found) return rc;
    }
    int64_t now = coil__wall_ms();
    int64_t run_at = sp->run_at ? sp->run_at : now;
    int rc = insert_job(s, r->u.enqueue.id, sp, now, run_at);
    if ((rc & 0xff) == SQLITE_CONSTRAINT) {
        r->err = -EEXIST; /* an id collision: 2^-128; the statement left nothing */
        return SQLITE_OK;
    }
    if (rc != SQLITE_OK) return rc;
    coil__store_note_enqueued(s, r, run_at);
    return SQLITE_OK;
}

/* ------------------------------------------------------------------ follow-ups */

/* One follow-up, unless its key says it was written already. */
static int insert_followup(void *arg, const coil__job_spec *child) {
    coil__store *s = arg;
    bool found;
    int rc = find_key(s, child->idem_key, NULL, &found);
    if (rc != SQLITE_OK || found) return rc;
    char id[COIL__JOB_ID_SIZE];
    if (coil__job_id_new(id) != 0) return SQLITE_IOERR;
    int64_t now = coil__wall_ms();
    if ((rc = insert_job(s, id, child, now, now)) != SQLITE_OK) return rc;
    coil__job_event ev;
    coil__job_event_init(&ev, id, child->kind, COIL__JOB_QUEUED, 0, now);
    coil__store_note_event(s, &ev);
    return SQLITE_OK;
}

/* A final job whose follow-ups are due, copied out of its row. */
typedef struct due_job {
    int64_t seq;
    char id[COIL__JOB_ID_SIZE];
    char *kind, *error, *followups;
    coil__job_state state;
    int attempts;
    int64_t finished;
} due_job;

static char *text_dup(sqlite3_stmt *st, int col) {
    const unsigned char *t = sqlite3_column_text(st, col);
    return t ? strdup((const char *)t) : NULL;
}

/* Writes the follow-ups of every job that has become final, in the
 * transaction that made it final: after each operation that can end a
 * job. Returns an SQLite code; a failure rolls the whole group back, so
 * that no job ends without its follow-ups. */
static int write_due_followups(coil__store *s) {
    sqlite3_stmt *st = coil__sq(s)->stmt[COIL__STMT_FOLLOWUPS_DUE];
    due_job *due = NULL;
    size_t n = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            size_t ncap = cap ? 2 * cap : 4;
            due_job *more = realloc(due, ncap * sizeof *due);
            if (!more) {
                rc = SQLITE_NOMEM;
                break;
            }
            due = more, cap = ncap;
        }
        due_job *d = &due[n++];
        d->seq = sqlite3_column_int64(st, 0);
        snprintf(d->id, sizeof d->id, "%s", (const char *)sqlite3_column_text(st, 1));
        d->kind = text_dup(st, 2);
        d->state = (coil__job_state)sqlite3_column_int(st, 3);
        d->attempts = sqlite3_column_int(st, 4);
        d->error = text_dup(st, 5);
        d->finished = sqlite3_column_int64(st, 6);
        d->followups = text_dup(st, 7);
        if (!d->kind || !d->followups) rc = SQLITE_NOMEM;
    }
    sqlite3_reset(st);
    if (rc == SQLITE_DONE) rc = SQLITE_OK;
    for (size_t i = 0; i < n && rc == SQLITE_OK; i++) {
        const due_job *d = &due[i];
        coil__followup_parent p = {.id = d->id, .kind = d->kind, .state = d->state,
                                   .attempts = d->attempts, .error = d->error,
                                   .finished = d->finished};
        int err = coil__followups_each(d->followups, &p, insert_followup, s);
        rc = err < 0 ? SQLITE_NOMEM : err;
        if (rc == SQLITE_OK) {
            sqlite3_stmt *done = coil__sq(s)->stmt[COIL__STMT_FOLLOWUPS_DONE];
            sqlite3_bind_int64(done, 1, d->seq);
            rc = run_bound(done);
        }
    }
    for (size_t i = 0; i < n; i++) {
        free(due[i].kind);
        free(due[i].error);
        free(due[i].followups);
    }
    free(due);
    return rc;
}

/* Steps a statement that answers one integer or NULL. Sets *found and
 * *value. Returns an SQLite code. */
static int step_int(sqlite3_stmt *st, bool *found, int64_t *value) {
    int rc = sqlite3_step(st);
    *found = rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL;
    *value = *found ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* The highest priority below `below` (none: INT64_MAX means from the top)
 * that has runnable or delayed jobs. */
static int priority_below(coil__store *s, int64_t below, bool *found, int64_t *prio) {
    sqlite3_stmt *st = coil__sq(s)->stmt[below == INT64_MAX ? COIL__STMT_TOP_PRIORITY
                                                  : COIL__STMT_NEXT_PRIORITY];
    if (below != INT64_MAX) sqlite3_bind_int64(st, 1, below);
    return step_int(st, found, prio);
}

/* When will a job that is not due yet become due? The earliest run_at
 * among the waiting jobs of every priority level, or 0 if none waits. */
static int next_run_at(coil__store *s, int64_t *out) {
    int64_t now = coil__wall_ms(), prio = INT64_MAX, next = 0;
    bool found;
    int rc;
    while ((rc = priority_below(s, prio, &found, &prio)) == SQLITE_OK && found) {
        sqlite3_stmt *st = coil__sq(s)->stmt[COIL__STMT_NEXT_AT_PRIORITY];
        sqlite3_bind_int64(st, 1, prio);
        sqlite3_bind_int64(st, 2, now);
        int64_t at;
        bool waiting;
        if ((rc = step_int(st, &waiting, &at)) != SQLITE_OK) return rc;
        if (waiting && (!next || at < next)) next = at;
    }
    *out = next;
    return rc;
}

/* Starts job `id` for request `r`: queued or failed -> running, attempts
 * + 1, leased to `owner`. A job that cannot start is the request's own
 * outcome (r->err). *attempts (may be NULL) gets the new count. */
static int start_job(coil__store *s, coil__store_req *r, const char *id, const char *owner,
                     int *attempts) {
    job_head h;
    bool found;
    int rc = lookup_for(s, r, id, &h, &found);
    if (rc != SQLITE_OK || !found) return rc;
    /* Started or not, a peek's hold ends here. */
    if ((rc = coil__held_remove(s, h.seq)) != SQLITE_OK) return rc;
    r->err = coil__job_transition(h.state, COIL__JOB_RUNNING);
    if (r->err) return SQLITE_OK;
    int64_t now = coil__wall_ms();
    sqlite3_stmt *st = coil__sq(s)->stmt[COIL__STMT_START];
    sqlite3_bind_int64(st, 1, h.seq);
    sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now);
    rc = run_bound(st);
    if (rc != SQLITE_OK) return rc;
    h.attempts++;
    if (attempts) *attempts = h.attempts;
    note_head(s, id, &h, COIL__JOB_RUNNING);
    return SQLITE_OK;
}

/* One job, by id, from queued or failed to running. */
static int exec_start(coil__store *s, coil__store_req *r) {
    return start_job(s, r, r->u.start.id, r->u.start.owner, &r->u.start.attempts);
}

static int exec_complete(coil__store *s, coil__store_req *r) {
    job_head h;
    bool found;
    const char *id = r->u.complete.id;
    if (r->u.complete.owner) {
        int rc = start_job(s, r, id, r->u.complete.owner, NULL);
        if (rc != SQLITE_OK || r->err) return rc;
    }
    int rc = lookup_for(s, r, id, &h, &found);
    if (rc != SQLITE_OK || !found) return rc;
    r->err = coil__job_transition(h.state, COIL__JOB_SUCCEEDED);
    if (r->err) return SQLITE_OK;
    const coil__job_result *res = r->u.complete.res;
    const char *file = r->u.complete.file;
    int64_t now = coil__wall_ms();
    sqlite3_stmt *st = coil__sq(s)->stmt[COIL__STMT_COMPLETE];
    sqlite3_bind_int64(st, 1, h.seq);
    if (!file && res->len) sqlite3_bind_blob64(st, 2, res->data, res->len, SQLITE_STATIC);
    else sqlite3_bind_null(st, 2);
    bool has_result = file || res->len;
    bind_text_or_null(st, 3, !has_result ? NULL
                             : res->content_type ? res->content_type
                                                 : DEFAULT_CONTENT_TYPE);
    bind_text_or_null(st, 4, file);
    sqlite3_bind_int64(st, 5, now);
    rc = run_bound(st);
    if (rc != SQLITE_OK) return rc;
    h.progress = 100;
    note_head(s, id, &h, COIL__JOB_SUCCEEDED);
    return SQLITE_OK;
}

static int exec_fail(coil__store *s, coil__store_req *r) {
    job_head h;
    bool found;
    const char *id = r->u.fail.id;
    if (r->u.fail.owner) {
        int rc = start_job(s, r, id, r->u.fail.owner, NULL);
        if (rc != SQLITE_OK || r->err) return rc;
    }
    int rc = lookup_for(s, r, id, &h, &found);
    if (rc != SQLITE_OK || !found) return rc;
    if (h.state != COIL__JOB_RUNNING) {
        r->err = -EINVAL;
        return SQLITE_OK;
    }
    const coil__job_error *e = r->u.fail.error;
    coil__job_state to = coil__job_failure_state(h.cancel_requested, h.attempts,
                                                 e && e->permanent ? h.attempts : h.max_attempts);
    r->err = coil__job_transition(h.state, to);
    if (r->err) return SQLITE_OK;
    int64_t now = coil__wall_ms();
    if (to == COIL__JOB_FAILED)
        h.run_at = coil__job_next_run_at(now, (unsigned)h.attempts, h.backoff_base,
                                         h.backoff_cap, &s->rng);
    sqlite3_stmt *st = coil__sq(s)->stmt[COIL__STMT_FAIL];
    sqlite3_bind_int64(st, 1, h.seq);
    sqlite3_bind_int(st, 2, to);
    sqlite3_bind_int64(st, 3, h.run_at);
    bind_text_or_null(st, 4, e ? e->message : NULL);
    sqlite3_bind_int(st, 5, e ? e->signal : 0);
    sqlite3_bind_int(st, 6, e ? e->exit_status : -1);
    sqlite3_bind_int(st, 7, e && e->oom);
    sqlite3_bind_int64(st, 8, coil__job_state_final(to) ? now : 0);
    sqlite3_bind_int64(st, 9, now);
    rc = run_bound(st);
    if (rc != SQLITE_OK) return rc;
    r->u.fail.state = to;
    note_head(s, id, &h, to);
    return SQLITE_OK;
}

static int exec_cancel(coil__store *s, coil__store_req *r) {
    job_head h;
    bool found;
    const char *id = r->u.cancel.id;
    int rc = lookup_for(s, r, id, &h, &found);
    if (rc != SQLITE_OK || !found) return rc;
    r->u.cancel.state = h.state;
    if (coil__job_state_final(h.state)) {
        r->err = -EALREADY;
        return SQLITE_OK;
    }
    int64_t now = coil__wall_ms();
    /* A held job may be in a worker already: it is stopped, not cancelled
     * here (store_held.c), and answers as a running one. */
    bool running = h.state == COIL__JOB_RUNNING || coil__held_has(s, h.seq);
    if (running) r->u.cancel.state = COIL__JOB_RUNNING;
    if (running && h.cancel_requested) return SQLITE_OK; /* asked already */
    if (!running) {
        r->err = coil__job_transition(h.state, COIL__JOB_CANCELLED);
        if (r->err) return SQLITE_OK;
    }
    sqlite3_stmt *st = coil__sq(s)->stmt[running ? COIL__STMT_CANCEL_FLAG : COIL__STMT_CANCEL_NOW];
    sqlite3_bind_int64(st, 1, h.seq);
    sqlite3_bind_int64(st, 2, now);
    rc = run_bound(st);
    if (rc != SQLITE_OK) return rc;
    if (running) h.cancel_requested = true;
    else r->u.cancel.state = COIL__JOB_CANCELLED;
    note_head(s, id, &h, running ? h.state : COIL__JOB_CANCELLED);
    return SQLITE_OK;
}

static int exec_requeue(coil__store *s, coil__store_req *r) {
    COIL_ASSERT(coil__job_can_transition(COIL__JOB_RUNNING, COIL__JOB_QUEUED) &&
                coil__job_can_transition(COIL__JOB_RUNNING, COIL__JOB_CANCELLED));
    sqlite3_stmt *st = coil__sq(s)->stmt[COIL__STMT_REQUEUE];
    sqlite3_bind_int64(st, 1, coil__wall_ms());
    int rc = run_bound(st);
    if (rc != SQLITE_OK) return rc;
    r->u.requeue.count = (size_t)sqlite3_changes64(coil__sq(s)->db);
    return SQLITE_OK;
}

/* release() of a job peeked and never started: no longer held, and
 * cancelled if a cancel flagged it meanwhile; else it stays as it is. */
static int release_held(coil__store *s, coil__store_req *r, const char *id, job_head *h) {
    r->u.release.state = h->state;
    if (!coil__held_has(s, h->seq)) {
        r->err = -EINVAL;
        return SQLITE_OK;
    }
    int rc = coil__held_remove(s, h->seq);
    if (rc != SQLITE_OK || !h->cancel_requested) return rc;
    r->err = coil__job_transition(h->state, COIL__JOB_CANCELLED);
    if (r->err) return SQLITE_OK;
    sqlite3_stmt *st = coil__sq(s)->stmt[COIL__STMT_CANCEL_NOW];
    sqlite3_bind_int64(st, 1, h->seq);
    sqlite3_bind_int64(st, 2, coil__wall_ms());
    if ((rc = run_bound(st)) != SQLITE_OK) return rc;
    r->u.release.state = COIL__JOB_CANCELLED;
    note_head(s, id, h, COIL__JOB_CANCELLED);
    return SQLITE_OK;
}

static int exec_release(coil__store *s, coil__store_req *r) {
    job_head h;
    bool found;
    const char *id = r->u.release.id;
    int rc = lookup_for(s, r, id, &h, &found);
    if (rc != SQLITE_OK || !found) return rc;
    if (h.state != COIL__JOB_RUNNING) return release_held(s, r, id, &h);
    coil__job_state to = h.cancel_requested ? COIL__JOB_CANCELLED : COIL__JOB_QUEUED;
    r->err = coil__job_transition(h.state, to);
    if (r->err) return SQLITE_OK;
    sqlite3_stmt *st = coil__sq(s)->stmt[COIL__STMT_RELEASE];
    sqlite3_bind_int64(st, 1, h.seq);
    sqlite3_bind_int(st, 2, to);
    sqlite3_bind_int64(st, 3, coil__wall_ms());
    rc = run_bound(st);
    if (rc != SQLITE_OK) return rc;
    if (h.attempts > 0) h.attempts--;
    r->u.release.state = to;
    note_head(s, id, &h, to);
    return SQLITE_OK;
}

static bool seq_skipped(const uint64_t *skip, size_t n, uint64_t seq) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (skip[mid] == seq) return true;
        if (skip[mid] < seq) lo = mid + 1;
        else hi = mid;
    }
    return false;
}

/* Reads the full record of `seq` into *out. Returns an SQLite code. */
static int read_by_seq(coil__store *s, int64_t seq, coil__job **out) {
    sqlite3_stmt *st = coil__sq(s)->stmt[COIL__STMT_BY_SEQ];
    sqlite3_bind_int64(st, 1, seq);
    int rc = sqlite3_step(st);
    *out = NULL;
    if (rc == SQLITE_ROW) {
        *out = coil__job_from_row(s, st, true);
        rc = *out ? SQLITE_OK : SQLITE_NOMEM;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_CORRUPT; /* the index named it a moment ago */
    }
    sqlite3_reset(st);
    return rc;
}

/* Adds the due jobs of priority `prio` to the peek, in claim order, within
 * the kinds' limits. Sets *full when the peek has all it may take. */
static int peek_level(coil__store *s, coil__store_req *r, unsigned *room, int64_t prio,
                      int64_t now, size_t *bytes, bool *full) {
    sqlite3_stmt *st = coil__sq(s)->stmt[COIL__STMT_DUE_AT_PRIORITY];
    sqlite3_bind_int64(st, 1, prio);
    sqlite3_bind_int64(st, 2, now);
    size_t max_bytes = r->u.peek.max_bytes;
    int rc;
    while (!*full && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t seq = sqlite3_column_int64(st, 0);
        if (seq_skipped(r->u.peek.skip, r->u.peek.nskip, (uint64_t)seq)) continue;
        coil__job *job;
        rc = read_by_seq(s, seq, &job);
        if (rc != SQLITE_OK) break;
        if (!coil__peek_limit_take(r, room, job->kind)) {
            coil__job_free(job); /* its kind is at its limit: it waits */
            continue;
        }
        if ((rc = coil__held_add(s, seq)) != SQLITE_OK) {
            coil__job_free(job);
            break;
        }
        r->u.peek.jobs[r->u.peek.n++] = job;
        *bytes += job->payload_len;
        *full = r->u.peek.n == r->u.peek.max || (max_bytes && *bytes >= max_bytes);
    }
    if (*full) rc = SQLITE_DONE;
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_OK ? SQLITE_OK : rc;
}

/* Runnable jobs in claim order, passing over `skip`: nothing changes. With
 * none, the earliest run_at of a job not due yet. */
static int exec_peek(coil__store *s, coil__store_req *r) {
    int64_t now = coil__wall_ms(), prio = INT64_MAX;
    size_t bytes = 0;
    bool full = false, found;
    int rc;
    /* This process is the store's only user: what its scheduler has taken
     * of a kind is all that runs of it. */
    unsigned room[COIL__PEEK_LIMITS_MAX];
    if (r->u.peek.nlimits > COIL__PEEK_LIMITS_MAX) {
        r->err = -EINVAL;
        return SQLITE_OK;
    }
    for (size_t i = 0; i < r->u.peek.nlimits; i++) {
        const coil__peek_limit *l = &r->u.peek.limits[i];
        room[i] = l->taken < l->max ? l->max - l->taken : 0;
    }
    while (!full && (rc = priority_below(s, prio, &found, &prio)) == SQLITE_OK && found)
        if ((rc = peek_level(s, r, room, prio, now, &bytes, &full)) != SQLITE_OK) return rc;
    if (!full && rc != SQLITE_OK) return rc;
    if (r->u.peek.n) return SQLITE_OK;
    r->err = -EAGAIN;
    return next_run_at(s, &r->u.peek.next_run_at);
}

/* COIL__OP_NEXT_ID: the durable sequence (ids.c). */
static int exec_next_id(coil__store *s, coil__store_req *r) {
    sqlite3_stmt *st = coil__sq(s)->stmt[COIL__STMT_NEXT_ID];
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        r->u.next_id.value = (uint64_t)sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        r->err = -EIO; /* the row is created with the schema: corrupt */
        rc = SQLITE_OK;
    }
    sqlite3_reset(st);
    return rc;
}

/* After an operation that may have ended a job: its follow-ups. */
static int then_followups(coil__store *s, int rc) {
    return rc == SQLITE_OK ? write_due_followups(s) : rc;
}

int coil__sqlite_exec(coil__store *s, coil__store_req *r) {
    switch (r->op) {
    case COIL__OP_ENQUEUE: return exec_enqueue(s, r);
    case COIL__OP_COMPLETE: return then_followups(s, exec_complete(s, r));
    case COIL__OP_FAIL: return then_followups(s, exec_fail(s, r));
    case COIL__OP_CANCEL: return then_followups(s, exec_cancel(s, r));
    case COIL__OP_REQUEUE: return then_followups(s, exec_requeue(s, r));
    case COIL__OP_RELEASE: return then_followups(s, exec_release(s, r));
    case COIL__OP_PEEK: return exec_peek(s, r);
    case COIL__OP_START: return exec_start(s, r);
    case COIL__OP_NEXT_ID: return exec_next_id(s, r);
    case COIL__OP_FLUSH: return SQLITE_OK;
    default: COIL_ASSERT(!"not a write");
    }
    return SQLITE_MISUSE;
}

int coil__sqlite_exec_progress(coil__store *s, const coil__progress *p, bool *changed,
                               coil__job_event *ev) {
    sqlite3_stmt *st = coil__sq(s)->stmt[COIL__STMT_PROGRESS];
    sqlite3_bind_text(st, 1, p->id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, p->percent);
    bind_text_or_null(st, 3, p->message);
    sqlite3_bind_int64(st, 4, coil__wall_ms());
    int rc = sqlite3_step(st);
    *changed = rc == SQLITE_ROW;
    if (*changed) {
        coil__job_event_init(ev, p->id, (const char *)sqlite3_column_text(st, 0), COIL__JOB_RUNNING,
                  sqlite3_column_int(st, 1), sqlite3_column_int64(st, 3));
        ev->cancel_requested = sqlite3_column_int(st, 2) != 0;
        ev->progress = p->percent;
        snprintf(ev->message, sizeof ev->message, "%s", p->message ? p->message : "");
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}
