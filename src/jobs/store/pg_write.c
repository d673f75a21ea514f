/* jobs/store/pg_write.c: the write operations on PostgreSQL, each run by
 * the writer thread inside its group transaction (store_impl.h has their
 * contract), and the NOTIFY that tells the other nodes what changed.
 *
 * A peek claims with FOR UPDATE SKIP LOCKED: nodes claiming at once pass
 * over each other's rows instead of waiting for them, so no job goes to
 * two nodes and no node waits for another's commit. Each claimed attempt
 * gets a token from the coil_tokens sequence; every later write of that
 * attempt names it (WHERE token = ...), so a node whose attempt was
 * rescued away writes nothing and gets -ESTALE.
 *
 * Tokens this node holds are in pg->owned. A transaction's changes to it
 * wait in `pending` until COMMIT succeeds: a rolled-back claim leaves no
 * token, and a rolled-back outcome keeps its token for the retry. An
 * outcome keeps its token in the row, so a retry of an outcome whose
 * COMMIT answer was lost (the connection broke) finds its own outcome
 * there and succeeds.
 *
 * NOTIFY: one commit's changes go out as few payloads as fit (a JSON array
 * of events, about 7.9 KB each), in the same transaction: every listener
 * sees them once the commit is visible, and never for a rollback. NOTIFY
 * serialises committers on a global lock, which is why a node sends one per
 * group commit and not one per job.
 */
#include "jobs/store/pg.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ owned tokens */

/* Room for one more item in a growing array. */
static int grow(coil__pg_owned **items, size_t n, size_t *cap) {
    if (n < *cap) return 0;
    size_t ncap = *cap ? *cap * 2 : 64;
    coil__pg_owned *o = realloc(*items, ncap * sizeof *o);
    if (!o) return -ENOMEM;
    *items = o;
    *cap = ncap;
    return 0;
}

int64_t coil__pg_token(coil__pg *pg, const char *id) {
    int64_t token = 0;
    pthread_mutex_lock(&pg->owned_lock);
    for (size_t i = 0; i < pg->nowned && !token; i++)
        if (strcmp(pg->owned[i].id, id) == 0) token = pg->owned[i].token;
    pthread_mutex_unlock(&pg->owned_lock);
    return token;
}

static int pending_add(coil__pg *pg, const char *id, int64_t token) {
    if (grow(&pg->pending, pg->npending, &pg->cap_pending)) return -ENOMEM;
    coil__pg_owned *o = &pg->pending[pg->npending++];
    snprintf(o->id, sizeof o->id, "%s", id);
    o->token = token;
    return 0;
}

int coil__pg_own_later(coil__pg *pg, const char *id, int64_t token) {
    return pending_add(pg, id, token);
}

int coil__pg_disown_later(coil__pg *pg, const char *id) { return pending_add(pg, id, 0); }

void coil__pg_pending_drop(coil__pg *pg) { pg->npending = 0; }

void coil__pg_pending_apply(coil__pg *pg) {
    pthread_mutex_lock(&pg->owned_lock);
    for (size_t k = 0; k < pg->npending; k++) {
        const coil__pg_owned *p = &pg->pending[k];
        size_t i = 0;
        while (i < pg->nowned && strcmp(pg->owned[i].id, p->id) != 0) i++;
        if (p->token == 0) {
            if (i < pg->nowned) pg->owned[i] = pg->owned[--pg->nowned];
        } else if (i < pg->nowned) {
            pg->owned[i].token = p->token;
        } else if (grow(&pg->owned, pg->nowned, &pg->cap_owned) == 0) {
            pg->owned[pg->nowned++] = *p;
        } else {
            /* Without its token the attempt cannot be recorded here; the
             * job is rescued once this node's lease is seen to lapse. */
            coil__log("job store: out of memory: job %s runs unrecorded", p->id);
        }
    }
    pthread_mutex_unlock(&pg->owned_lock);
    pg->npending = 0;
}

coil__pg_owned *coil__pg_disown_all(coil__pg *pg, size_t *n) {
    pthread_mutex_lock(&pg->owned_lock);
    coil__pg_owned *gone = malloc((pg->nowned ? pg->nowned : 1) * sizeof *gone);
    *n = 0;
    /* Each entry stays, marked taken, until its outcome is refused: an
     * attempt this node never had is another matter (-EINVAL). Without
     * memory for the list they are marked all the same. */
    for (size_t i = 0; i < pg->nowned; i++) {
        if (pg->owned[i].token == COIL__PG_TAKEN) continue;
        if (gone) gone[(*n)++] = pg->owned[i];
        pg->owned[i].token = COIL__PG_TAKEN;
    }
    pthread_mutex_unlock(&pg->owned_lock);
    return gone;
}
/* ------------------------------------------------------------------ events */

void coil__pg_event_from_row(const PGresult *r, int row, coil__job_event *ev) {
    coil__job_event_init(ev, PQgetvalue(r, row, 0), PQgetvalue(r, row, 1),
              (coil__job_state)coil__pg_int(r, row, 2), (int)coil__pg_int(r, row, 4),
              coil__pg_int(r, row, 5));
    ev->cancel_requested = coil__pg_bool(r, row, 3);
    ev->progress = (int)coil__pg_int(r, row, 6);
}

/* Notes the event of row 0 of `r` (COIL__PG_EVENT_COLUMNS). */
void coil__pg_note_row(coil__store *s, const PGresult *r, int row) {
    coil__job_event ev;
    coil__pg_event_from_row(r, row, &ev);
    coil__store_note_event(s, &ev);
}

/* One event as the JSON array listeners read (pg_node.c). */
static char *event_json(const coil__job_event *e) {
    json_t *a = json_pack("[s,i,b,i,i,I,s,s]", e->id, (int)e->state, e->cancel_requested,
                          e->attempts, e->progress, (json_int_t)e->run_at, e->kind, e->message);
    char *text = a ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    return text;
}

/* Sends `payload` (a NUL-terminated buffer) on the channel. */
static int notify_one(PGconn *c, const char *payload) {
    const char *p[] = {payload};
    return coil__pg_command(c, "SELECT pg_notify('" COIL__PG_CHANNEL "', $1)", 1, p);
}

int coil__pg_notify(PGconn *c, int64_t node, const coil__job_event *events, size_t n) {
    if (!n) return 0;
    char *buf = malloc(COIL__PG_NOTIFY_MAX + 64);
    if (!buf) return 0; /* the listeners' coarse poll covers it */
    int head = snprintf(buf, 64, "{\"n\":%" PRId64 ",\"e\":[", node);
    size_t len = (size_t)head;
    int err = 0;
    for (size_t i = 0; i < n && !err; i++) {
        char *one = event_json(&events[i]);
        if (!one) continue;
        size_t m = strlen(one);
        if (len > (size_t)head && len + 1 + m + 2 > COIL__PG_NOTIFY_MAX) {
            memcpy(buf + len, "]}", 3);
            err = notify_one(c, buf);
            len = (size_t)head;
        }
        if (len + 1 + m + 2 <= COIL__PG_NOTIFY_MAX) {
            if (len > (size_t)head) buf[len++] = ',';
            memcpy(buf + len, one, m);
            len += m;
        }
        free(one);
    }
    if (!err && len > (size_t)head) {
        memcpy(buf + len, "]}", 3);
        err = notify_one(c, buf);
    }
    free(buf);
    return err;
}

/* ------------------------------------------------------------------ misses */

/* A write of an attempt found no row with its token: why? Sets r->err to
 * -ENOENT (no such job), -ESTALE (the job's attempt is another's now),
 * or -EINVAL (not running), unless the job already holds this very
 * outcome (`done_states`, a bit per state, with our token): then 0 and
 * *state_out. Returns the transaction's rc. */
int coil__pg_classify_miss(coil__pg *pg, coil__store_req *r, const char *id, int64_t token,
                           unsigned done_states, coil__job_state *state_out) {
    if (token == COIL__PG_TAKEN) { /* rescued from this node: forget it with this write */
        r->err = -ESTALE;
        return coil__pg_disown_later(pg, id);
    }
    PGconn *c = pg->conn;
    const char *p[] = {id};
    int err;
    PGresult *res =
        coil__pg_exec(c, "SELECT state, coalesce(token, 0) FROM coil_jobs WHERE id = $1", 1, p,
                      NULL, NULL, &err);
    if (!res) return err;
    if (PQntuples(res) == 0) {
        r->err = -ENOENT;
    } else {
        coil__job_state state = (coil__job_state)coil__pg_int(res, 0, 0);
        int64_t now_token = coil__pg_int(res, 0, 1);
        if (token && now_token == token && (done_states >> state & 1u)) {
            r->err = 0;
            if (state_out) *state_out = state;
        } else if (token && now_token != token) {
            r->err = -ESTALE;
        } else if (!token && state == COIL__JOB_RUNNING) {
            r->err = -ESTALE; /* running, but not on this node */
        } else {
            r->err = -EINVAL;
        }
    }
    PQclear(res);
    return 0;
}

/* ------------------------------------------------------------------ writes */

/* Enqueues wait in the transaction's batch (pg_batch.c), as completes do. */
static int exec_enqueue(coil__store *s, coil__store_req *r) { return coil__pg_batch_add(s, r, 0); }

int coil__pg_enqueue_existing(coil__store *s, coil__store_req *r) {
    coil__pg *pg = s->impl;
    coil__enqueued *out = r->u.enqueue.out;
    const char *k[] = {r->u.enqueue.spec->idem_key};
    int err;
    PGresult *res = coil__pg_exec(pg->conn, "SELECT id, state FROM coil_jobs WHERE idem_key = $1",
                                  1, k, NULL, NULL, &err);
    if (!res) return err;
    if (PQntuples(res) == 1) {
        snprintf(out->id, sizeof out->id, "%s", PQgetvalue(res, 0, 0));
        out->state = (coil__job_state)coil__pg_int(res, 0, 1);
        out->duplicate = true;
    } else {
        r->err = -EIO; /* not inserted, yet no job has the key */
    }
    PQclear(res);
    return 0;
}

/* With nothing claimable: when to look again. The earliest run_at of a
 * waiting job; one due already is locked by another node's claim, so look
 * again shortly. 0: none waits. */
static int next_run_at(coil__store *s, int64_t now, int64_t *out) {
    coil__pg *pg = s->impl;
    const char *p[] = {pg->kinds};
    int err;
    PGresult *res = coil__pg_exec(pg->conn,
                                  "SELECT min(run_at) FROM coil_jobs WHERE state IN (0, 3)"
                                  " AND ($1::text[] IS NULL OR kind = ANY($1::text[]))",
                                  1, p, NULL, NULL, &err);
    if (!res) return err;
    int64_t at = coil__pg_int(res, 0, 0);
    PQclear(res);
    *out = at && at <= now ? now + 100 : at;
    return 0;
}

/* The advisory lock that claims with per-kind limits take, until their
 * transaction commits: two nodes counting a kind's running jobs at once
 * would each see room for the same last place. */
#define LIMITS_LOCK "7306571602553438208" /* "coil-max" as a bigint */

/* Under LIMITS_LOCK, the room each limit of the peek has left: its max
 * less the jobs of its kind running on every node. *full gets the kinds
 * with none left as a text[] literal (malloc'd), or NULL if none is. */
static int limits_room(coil__pg *pg, const coil__store_req *r, unsigned *room, char **full) {
    *full = NULL;
    size_t nl = r->u.peek.nlimits;
    if (nl > COIL__PEEK_LIMITS_MAX) return -EINVAL;
    const char *lock[] = {LIMITS_LOCK};
    int err = coil__pg_command(pg->conn, "SELECT pg_advisory_xact_lock($1::bigint)", 1, lock);
    if (err) return err;
    const char *names[COIL__PEEK_LIMITS_MAX + 1];
    for (size_t i = 0; i < nl; i++) names[i] = r->u.peek.limits[i].kind;
    names[nl] = NULL;
    char *all = coil__pg_kinds_literal(names);
    if (!all) return -ENOMEM;
    const char *p[] = {all};
    PGresult *res = coil__pg_exec(pg->conn,
                                  "SELECT kind, count(*) FROM coil_jobs WHERE state = 1"
                                  " AND kind = ANY($1::text[]) GROUP BY kind",
                                  1, p, NULL, NULL, &err);
    free(all);
    if (!res) return err;
    for (size_t i = 0; i < nl; i++) {
        int64_t running = 0;
        for (int k = 0; k < PQntuples(res); k++)
            if (strcmp(PQgetvalue(res, k, 0), names[i]) == 0) running = coil__pg_int(res, k, 1);
        int64_t max = r->u.peek.limits[i].max;
        room[i] = running < max ? (unsigned)(max - running) : 0;
    }
    PQclear(res);
    size_t nfull = 0;
    for (size_t i = 0; i < nl; i++)
        if (room[i] == 0) names[nfull++] = names[i];
    names[nfull] = NULL;
    if (nfull && !(*full = coil__pg_kinds_literal(names))) return -ENOMEM;
    return 0;
}

/* The claim: peek's meaning on PostgreSQL (store.h). */
static int exec_peek(coil__store *s, coil__store_req *r) {
    coil__pg *pg = s->impl;
    int64_t now = coil__wall_ms();
    coil__pg_num when = coil__pg_n64(now), limit = coil__pg_n64((int64_t)r->u.peek.max);
    unsigned room[COIL__PEEK_LIMITS_MAX];
    char *full = NULL;
    int err = r->u.peek.nlimits ? limits_room(pg, r, room, &full) : 0;
    if (err) return err;
    const char *p[] = {when.s, limit.s, pg->kinds, full};
    PGresult *res = coil__pg_exec(
        pg->conn,
        "SELECT seq, octet_length(payload), kind FROM coil_jobs"
        " WHERE state IN (0, 3) AND run_at <= $1"
        " AND ($3::text[] IS NULL OR kind = ANY($3::text[]))"
        " AND ($4::text[] IS NULL OR NOT kind = ANY($4::text[]))"
        " ORDER BY priority DESC, run_at, seq LIMIT $2 FOR UPDATE SKIP LOCKED",
        4, p, NULL, NULL, &err);
    free(full);
    if (!res) return err;
    int picked = PQntuples(res);
    if (picked == 0) {
        PQclear(res);
        r->err = -EAGAIN;
        return next_run_at(s, now, &r->u.peek.next_run_at);
    }
    /* Claim order, within the byte budget (the first whatever its size),
     * as an array literal "{seq,seq,...}": at most 20 digits and a comma
     * each. */
    int64_t order[picked];
    size_t cap = (size_t)picked * 21 + 3;
    char *arr = malloc(cap);
    if (!arr) {
        PQclear(res);
        return -ENOMEM;
    }
    size_t len = 0, bytes = 0;
    int take = 0;
    arr[len++] = '{';
    for (int i = 0; i < picked; i++) {
        size_t b = (size_t)coil__pg_int(res, i, 1);
        if (take && r->u.peek.max_bytes && bytes + b > r->u.peek.max_bytes) break;
        if (!coil__peek_limit_take(r, room, PQgetvalue(res, i, 2))) continue; /* its kind is full */
        order[take] = coil__pg_int(res, i, 0);
        len += (size_t)snprintf(arr + len, cap - len, "%s%" PRId64, take ? "," : "", order[take]);
        take++;
        bytes += b;
    }
    PQclear(res);
    arr[len++] = '}';
    arr[len] = '\0';
    if (take == 0) { /* every job picked is of a kind at its limit */
        free(arr);
        r->err = -EAGAIN;
        return 0; /* next_run_at 0: a job's end wakes the claimer */
    }
    coil__pg_num node = coil__pg_n64(atomic_load(&pg->node_id));
    char sql[1024];
    snprintf(sql, sizeof sql,
             "UPDATE coil_jobs SET state = 1, attempts = attempts + 1, node = $2,"
             " lease_owner = $3, token = nextval('coil_tokens'), started = $4, updated = $4"
             " WHERE seq = ANY($1::bigint[]) RETURNING token, %s",
             coil__pg_columns(true));
    const char *q[] = {arr, node.s, pg->node_name, when.s};
    res = coil__pg_exec(pg->conn, sql, 4, q, NULL, NULL, &err);
    free(arr);
    if (!res) return err;
    int got = PQntuples(res);
    if (got > 0) pg->txn_changed = true; /* not false: an earlier request may have written */
    /* RETURNING has no order: put the records in claim order. */
    for (int k = 0; k < take && !err; k++) {
        for (int i = 0; i < got; i++) {
            if (coil__pg_int(res, i, 1) != order[k]) continue;
            coil__job *job = coil__pg_job(res, i, 1, true);
            if (!job || coil__pg_own_later(pg, job->id, coil__pg_int(res, i, 0)) != 0) {
                coil__job_free(job);
                err = -ENOMEM; /* the claim must not stand without its records */
                break;
            }
            r->u.peek.jobs[r->u.peek.n++] = job;
            coil__job_event ev;
            coil__job_event_init(&ev, job->id, job->kind, COIL__JOB_RUNNING, job->attempts, job->run_at);
            coil__store_note_event(s, &ev);
        }
    }
    PQclear(res);
    return err;
}

/* Start: the claim did it all; only confirm the attempt is still ours. */
static int exec_start(coil__store *s, coil__store_req *r) {
    coil__pg *pg = s->impl;
    int64_t token = coil__pg_token(pg, r->u.start.id);
    if (!token) return coil__pg_classify_miss(pg, r, r->u.start.id, 0, 0, NULL);
    coil__pg_num tok = coil__pg_n64(token);
    const char *p[] = {r->u.start.id, tok.s};
    int err;
    PGresult *res = coil__pg_exec(pg->conn, "SELECT attempts FROM coil_jobs"
                                            " WHERE id = $1 AND token = $2 AND state = 1",
                                  2, p, NULL, NULL, &err);
    if (!res) return err;
    bool ours = PQntuples(res) == 1;
    if (ours) r->u.start.attempts = (int)coil__pg_int(res, 0, 0);
    PQclear(res);
    return ours ? 0 : coil__pg_classify_miss(pg, r, r->u.start.id, token, 0, NULL);
}

/* Completes wait in the transaction's batch (pg_batch.c): one statement
 * writes them all. One whose attempt is not ours is answered at once. */
static int exec_complete(coil__store *s, coil__store_req *r) {
    coil__pg *pg = s->impl;
    const char *id = r->u.complete.id;
    int64_t token = coil__pg_token(pg, id);
    if (token <= 0)
        return coil__pg_classify_miss(pg, r, id, token, 1u << COIL__JOB_SUCCEEDED, NULL);
    return coil__pg_batch_add(s, r, token);
}

static int exec_fail(coil__store *s, coil__store_req *r) {
    coil__pg *pg = s->impl;
    const char *id = r->u.fail.id;
    int64_t token = coil__pg_token(pg, id);
    coil__pg_num tok = coil__pg_n64(token);
    const char *p[] = {id, tok.s};
    int err;
    PGresult *res = coil__pg_exec(pg->conn,
                                  "SELECT attempts, max_attempts, backoff_base, backoff_cap,"
                                  " cancel_requested, run_at FROM coil_jobs"
                                  " WHERE id = $1 AND token = $2 AND state = 1 FOR UPDATE",
                                  2, p, NULL, NULL, &err);
    if (!res) return err;
    if (PQntuples(res) == 0) {
        PQclear(res);
        unsigned done = 1u << COIL__JOB_FAILED | 1u << COIL__JOB_DEAD | 1u << COIL__JOB_CANCELLED;
        return coil__pg_classify_miss(pg, r, id, token, done, &r->u.fail.state);
    }
    int attempts = (int)coil__pg_int(res, 0, 0), max = (int)coil__pg_int(res, 0, 1);
    int64_t base = coil__pg_int(res, 0, 2), cap = coil__pg_int(res, 0, 3);
    bool cancel = coil__pg_bool(res, 0, 4);
    int64_t run_at = coil__pg_int(res, 0, 5);
    PQclear(res);
    const coil__job_error *e = r->u.fail.error;
    coil__job_state to = coil__job_failure_state(cancel, attempts,
                                                 e && e->permanent ? attempts : max);
    r->err = coil__job_transition(COIL__JOB_RUNNING, to);
    if (r->err) return 0;
    int64_t now = coil__wall_ms();
    if (to == COIL__JOB_FAILED)
        run_at = coil__job_next_run_at(now, (unsigned)attempts, base, cap, &s->rng);
    coil__pg_num st = coil__pg_n64(to), at = coil__pg_n64(run_at), sig = coil__pg_n64(e ? e->signal : 0),
        ex = coil__pg_n64(e ? e->exit_status : -1), fin = coil__pg_n64(coil__job_state_final(to) ? now : 0),
        upd = coil__pg_n64(now);
    const char *q[] = {id, st.s, at.s, e ? e->message : NULL, sig.s, ex.s,
                       e && e->oom ? "true" : "false", fin.s, upd.s};
    res = coil__pg_exec(pg->conn,
                        "UPDATE coil_jobs SET state = $2, run_at = $3, error_msg = $4,"
                        " error_signal = $5, error_exit = $6, error_oom = $7, finished = $8,"
                        " updated = $9, node = NULL, lease_owner = NULL"
                        " WHERE id = $1 RETURNING " COIL__PG_EVENT_COLUMNS,
                        9, q, NULL, NULL, &err);
    if (!res) return err;
    pg->txn_changed = true;
    r->u.fail.state = to;
    coil__pg_note_row(s, res, 0);
    PQclear(res);
    return coil__pg_disown_later(pg, id);
}

static int exec_cancel(coil__store *s, coil__store_req *r) {
    coil__pg *pg = s->impl;
    const char *id = r->u.cancel.id;
    coil__pg_num now = coil__pg_n64(coil__wall_ms());
    const char *p[] = {id, now.s};
    int err;
    /* Queued or failed: cancelled now. Running (here or on any node): flagged;
     * its node hears of it (NOTIFY) and stops it. */
    PGresult *res = coil__pg_exec(
        pg->conn,
        "UPDATE coil_jobs SET"
        " cancel_requested = (state = 1),"
        " finished = CASE WHEN state = 1 THEN finished ELSE $2 END,"
        " state = CASE WHEN state = 1 THEN 1 ELSE 4 END, updated = $2"
        " WHERE id = $1 AND (state IN (0, 3) OR (state = 1 AND NOT cancel_requested))"
        " RETURNING " COIL__PG_EVENT_COLUMNS,
        2, p, NULL, NULL, &err);
    if (!res) return err;
    if (PQntuples(res) == 1) {
        pg->txn_changed = true;
        r->u.cancel.state = (coil__job_state)coil__pg_int(res, 0, 2);
        coil__pg_note_row(s, res, 0);
        PQclear(res);
        return 0;
    }
    PQclear(res);
    res = coil__pg_exec(pg->conn, "SELECT state FROM coil_jobs WHERE id = $1", 1, p, NULL, NULL,
                        &err);
    if (!res) return err;
    if (PQntuples(res) == 0) {
        r->err = -ENOENT;
    } else {
        r->u.cancel.state = (coil__job_state)coil__pg_int(res, 0, 0);
        /* Running and flagged already: asked before, nothing to change. */
        r->err = r->u.cancel.state == COIL__JOB_RUNNING ? 0 : -EALREADY;
    }
    PQclear(res);
    return 0;
}

static int exec_release(coil__store *s, coil__store_req *r) {
    coil__pg *pg = s->impl;
    const char *id = r->u.release.id;
    int64_t token = coil__pg_token(pg, id);
    coil__pg_num tok = coil__pg_n64(token), now = coil__pg_n64(coil__wall_ms());
    const char *p[] = {id, tok.s, now.s};
    int err;
    PGresult *res = coil__pg_exec(
        pg->conn,
        "UPDATE coil_jobs SET state = CASE WHEN cancel_requested THEN 4 ELSE 0 END,"
        " attempts = greatest(attempts - 1, 0), node = NULL, lease_owner = NULL, token = NULL,"
        " finished = CASE WHEN cancel_requested THEN $3 ELSE finished END, updated = $3"
        " WHERE id = $1 AND token = $2 AND state = 1 RETURNING " COIL__PG_EVENT_COLUMNS,
        3, p, NULL, NULL, &err);
    if (!res) return err;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return coil__pg_classify_miss(pg, r, id, token, 0, NULL);
    }
    pg->txn_changed = true;
    r->u.release.state = (coil__job_state)coil__pg_int(res, 0, 2);
    coil__pg_note_row(s, res, 0);
    PQclear(res);
    return coil__pg_disown_later(pg, id);
}

int coil__pg_rescue(PGconn *c, int64_t leaving, coil__job_event **events, size_t *nevents) {
    *events = NULL;
    *nevents = 0;
    int err = 0;
    if (!leaving)
        err = coil__pg_command(c, "UPDATE coil_nodes SET lost = true"
                                  " WHERE NOT lost AND lease_until < now()",
                               0, NULL);
    if (err) return err;
    coil__pg_num now = coil__pg_n64(coil__wall_ms()), node = coil__pg_n64(leaving);
    const char *p[] = {now.s, node.s};
    /* $2 = 0: the jobs of every lost node; else those of node $2, which
     * stops (its jobs were interrupted, not lost). */
    PGresult *res = coil__pg_exec(
        c,
        "UPDATE coil_jobs SET"
        " state = CASE WHEN cancel_requested THEN 4 WHEN attempts >= max_attempts THEN 5"
        "  ELSE 3 END,"
        " error_msg = CASE WHEN cancel_requested THEN error_msg"
        "  WHEN $2::bigint <> 0 THEN 'interrupted: its node (' || coalesce(lease_owner, '?')"
        "   || ') stopped while it ran'"
        "  ELSE 'node lost: ' || coalesce(lease_owner, 'a node')"
        "   || ' stopped renewing its lease' END,"
        " error_signal = 0, error_exit = -1, error_oom = false, run_at = $1,"
        " finished = CASE WHEN cancel_requested OR attempts >= max_attempts THEN $1"
        "  ELSE finished END,"
        " node = NULL, lease_owner = NULL, token = NULL, updated = $1"
        " WHERE state = 1 AND CASE WHEN $2::bigint = 0"
        "  THEN node IN (SELECT id FROM coil_nodes WHERE lost) ELSE node = $2::bigint END"
        " RETURNING " COIL__PG_EVENT_COLUMNS,
        2, p, NULL, NULL, &err);
    if (!res) return err;
    int n = PQntuples(res);
    if (n > 0) {
        *events = calloc((size_t)n, sizeof **events);
        if (*events) {
            for (int i = 0; i < n; i++) coil__pg_event_from_row(res, i, &(*events)[i]);
            *nevents = (size_t)n;
        }
    }
    PQclear(res);
    /* Jobs it left dead or cancelled: their follow-ups, in the same
     * transaction. */
    return coil__pg_followups(c, events, nevents);
}

static int exec_requeue(coil__store *s, coil__store_req *r) {
    coil__pg *pg = s->impl;
    coil__job_event *events;
    size_t n;
    int err = coil__pg_rescue(pg->conn, 0, &events, &n);
    if (err) return err;
    for (size_t i = 0; i < n; i++) coil__store_note_event(s, &events[i]);
    free(events);
    pg->txn_changed = pg->txn_changed || n > 0;
    r->u.requeue.count = n;
    return 0;
}

static int exec_next_id(coil__store *s, coil__store_req *r) {
    coil__pg *pg = s->impl;
    int err;
    PGresult *res = coil__pg_exec(pg->conn, "UPDATE coil_counters SET value = value + 1"
                                            " WHERE name = 'ids' RETURNING value",
                                  0, NULL, NULL, NULL, &err);
    if (!res) return err;
    if (PQntuples(res) == 1) r->u.next_id.value = (uint64_t)coil__pg_int(res, 0, 0);
    else r->err = -EIO; /* the row is made with the schema */
    pg->txn_changed = true;
    PQclear(res);
    return 0;
}

int coil__pg_exec_req(coil__store *s, coil__store_req *r) {
    /* The batch first: what follows may read what it writes. */
    if (r->op != COIL__OP_FLUSH && !coil__pg_batch_takes(s, r)) {
        int err = coil__pg_batch_flush(s);
        if (err) return err;
    }
    coil__pg *pg = s->impl;
    if (r->op == COIL__OP_COMPLETE || r->op == COIL__OP_FAIL || r->op == COIL__OP_CANCEL ||
        r->op == COIL__OP_RELEASE || r->op == COIL__OP_REQUEUE)
        pg->txn_may_end = true; /* pg_commit writes the follow-ups */
    switch (r->op) {
    case COIL__OP_ENQUEUE: return exec_enqueue(s, r);
    case COIL__OP_PEEK: return exec_peek(s, r);
    case COIL__OP_START: return exec_start(s, r);
    case COIL__OP_COMPLETE: return exec_complete(s, r);
    case COIL__OP_FAIL: return exec_fail(s, r);
    case COIL__OP_CANCEL: return exec_cancel(s, r);
    case COIL__OP_REQUEUE: return exec_requeue(s, r);
    case COIL__OP_RELEASE: return exec_release(s, r);
    case COIL__OP_NEXT_ID: return exec_next_id(s, r);
    case COIL__OP_FLUSH: return 0;
    default: COIL_ASSERT(!"not a write");
    }
    return -EINVAL;
}

int coil__pg_exec_progress(coil__store *s, const coil__progress *p, bool *changed,
                           coil__job_event *ev) {
    coil__pg *pg = s->impl;
    *changed = false;
    int64_t token = coil__pg_token(pg, p->id);
    if (token <= 0) return 0; /* not ours (any more): ignored, as for a job not running */
    coil__pg_num tok = coil__pg_n64(token), pct = coil__pg_n64(p->percent), now = coil__pg_n64(coil__wall_ms());
    const char *q[] = {p->id, tok.s, pct.s, p->message, now.s};
    int err;
    PGresult *res = coil__pg_exec(pg->conn,
                                  "UPDATE coil_jobs SET progress = $3, progress_msg = $4,"
                                  " updated = $5 WHERE id = $1 AND token = $2 AND state = 1"
                                  " RETURNING " COIL__PG_EVENT_COLUMNS,
                                  5, q, NULL, NULL, &err);
    if (!res) return err;
    if (PQntuples(res) == 1) {
        *changed = true;
        pg->txn_changed = true;
        coil__pg_event_from_row(res, 0, ev);
        snprintf(ev->message, sizeof ev->message, "%s", p->message ? p->message : "");
    }
    PQclear(res);
    return 0;
}
