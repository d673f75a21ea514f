/* jobs/store/pg_batch.c: the enqueues, and the completes, of one group
 * transaction, each kind written by one statement.
 *
 * An enqueue is one INSERT and a complete one UPDATE of one row. Run one
 * at a time, each costs a round trip and a parse, plan and execute on the
 * server; measured, that was most of the writer's time when jobs come and
 * go by the thousand (0.33 ms a complete, against 0.46 ms for the COMMIT
 * that a whole group shares). So the writer collects consecutive requests
 * of one kind and sends
 *
 *     INSERT INTO coil_jobs (...) SELECT ... FROM unnest(ids, kinds, ...)
 *         WITH ORDINALITY ORDER BY ordinality
 *         ON CONFLICT (idem_key) DO NOTHING RETURNING id
 *     UPDATE coil_jobs SET ... FROM unnest(ids, tokens, results, types)
 *         WHERE id = b_id AND token = b_token AND state = 1 RETURNING ...
 *
 * once: before a request of another kind (which might read what they
 * write), before COMMIT, or when BATCH_MAX requests or BATCH_BYTES of
 * payload wait. Every value goes as an element of a text array literal
 * (bytes as hex). The rows inserted are numbered (seq) in request order,
 * so FIFO order holds. An enqueue whose row did not come back met its
 * idempotency key, and is answered with the job that has it; a complete
 * whose row did not come back is classified alone (its attempt was
 * rescued away, or written already). Nothing of this is seen outside the
 * writer: requests are answered after COMMIT in any case.
 */
#include "jobs/store/pg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    BATCH_MAX = 1024,
    BATCH_BYTES = 8 << 20, /* payload and result bytes; a larger one goes alone */
};

typedef struct coil__pg_batched {
    coil__store_req *r;
    int64_t token;   /* a complete's attempt */
    int64_t run_at;  /* an enqueue's */
    bool written;    /* its row came back */
} coil__pg_batched;

/* ------------------------------------------------------------------ array literals */

/* A growing array literal: "{a,b,...}". */
typedef struct lit {
    char *s;
    size_t len, cap;
    size_t n;
    bool failed;
} lit;

static void lit_room(lit *l, size_t more) {
    if (l->failed || l->len + more + 2 <= l->cap) return;
    size_t cap = l->cap ? l->cap : 256;
    while (cap < l->len + more + 2) cap *= 2;
    char *s = realloc(l->s, cap);
    if (!s) {
        l->failed = true;
        return;
    }
    l->s = s;
    l->cap = cap;
}

static void lit_sep(lit *l) {
    lit_room(l, 1);
    if (l->failed) return;
    l->s[l->len++] = l->n++ ? ',' : '{';
}

/* An element: NULL (unquoted) when text is NULL, else quoted, with " and
 * \ escaped. */
static void lit_text(lit *l, const char *text) {
    lit_sep(l);
    size_t len = text ? strlen(text) : 4;
    lit_room(l, 2 * len + 2);
    if (l->failed) return;
    if (!text) {
        memcpy(l->s + l->len, "NULL", 4);
        l->len += 4;
        return;
    }
    l->s[l->len++] = '"';
    for (const char *c = text; *c; c++) {
        if (*c == '"' || *c == '\\') l->s[l->len++] = '\\';
        l->s[l->len++] = *c;
    }
    l->s[l->len++] = '"';
}

static void lit_int(lit *l, int64_t v) {
    lit_sep(l);
    lit_room(l, 21);
    if (!l->failed) l->len += (size_t)snprintf(l->s + l->len, 22, "%lld", (long long)v);
}

/* Bytes as hex digits (decode(x, 'hex') on the server): no quoting needed,
 * but for none at all (""). */
static void lit_hex(lit *l, const void *data, size_t len) {
    static const char digits[] = "0123456789abcdef";
    if (len == 0) {
        lit_text(l, "");
        return;
    }
    lit_sep(l);
    lit_room(l, 2 * len);
    if (l->failed) return;
    const unsigned char *b = data;
    for (size_t i = 0; i < len; i++) {
        l->s[l->len++] = digits[b[i] >> 4];
        l->s[l->len++] = digits[b[i] & 15];
    }
}

/* The literal, terminated; NULL on ENOMEM (an empty one is "{}"). */
static const char *lit_end(lit *l) {
    if (l->n == 0) lit_room(l, 1);
    if (l->failed) return NULL;
    if (l->n == 0) l->s[l->len++] = '{';
    l->s[l->len++] = '}';
    l->s[l->len] = '\0';
    return l->s;
}

/* Runs `sql` with the `n` literals as $1..$n, then `last` (NULL: none) as
 * $n+1, and frees the literals. Returns the result, or NULL with *err. */
static PGresult *exec_with(coil__pg *pg, const char *sql, lit *l, int n, const char *last,
                           int *err) {
    const char *p[16];
    bool ok = n < 16;
    for (int k = 0; k < n && ok; k++) ok = (p[k] = lit_end(&l[k])) != NULL;
    p[n] = last;
    PGresult *res = NULL;
    *err = -ENOMEM;
    if (ok) res = coil__pg_exec(pg->conn, sql, n + (last != NULL), p, NULL, NULL, err);
    for (int k = 0; k < n; k++) free(l[k].s);
    return res;
}

/* ------------------------------------------------------------------ the batch */

static size_t bytes_of(const coil__store_req *r) {
    return r->op == COIL__OP_ENQUEUE ? r->u.enqueue.spec->payload_len : r->u.complete.res->len;
}

bool coil__pg_batch_takes(const coil__store *s, const coil__store_req *r) {
    const coil__pg *pg = coil__pgs(s);
    if (r->op != COIL__OP_ENQUEUE && r->op != COIL__OP_COMPLETE) return false;
    return pg->nbatch == 0 || pg->batch[0].r->op == r->op;
}

int coil__pg_batch_add(coil__store *s, coil__store_req *r, int64_t token) {
    coil__pg *pg = s->impl;
    int err = coil__pg_batch_takes(s, r) ? 0 : coil__pg_batch_flush(s);
    if (err) return err;
    if (pg->nbatch == pg->cap_batch) {
        size_t cap = pg->cap_batch ? pg->cap_batch * 2 : 64;
        coil__pg_batched *b = realloc(pg->batch, cap * sizeof *b);
        if (!b) return -ENOMEM;
        pg->batch = b;
        pg->cap_batch = cap;
    }
    coil__pg_batched *b = &pg->batch[pg->nbatch++];
    *b = (coil__pg_batched){.r = r, .token = token};
    if (r->op == COIL__OP_ENQUEUE) {
        const coil__job_spec *sp = r->u.enqueue.spec;
        b->run_at = sp->run_at ? sp->run_at : coil__wall_ms();
    }
    pg->batch_bytes += bytes_of(r);
    return pg->nbatch == BATCH_MAX || pg->batch_bytes >= BATCH_BYTES ? coil__pg_batch_flush(s)
                                                                      : 0;
}

void coil__pg_batch_drop(coil__pg *pg) {
    pg->nbatch = 0;
    pg->batch_bytes = 0;
}

/* The first unwritten entry of job `id`, or NULL. The batch is small
 * (BATCH_MAX) and flushed once a statement, so a linear search will do. */
static coil__pg_batched *find(coil__pg *pg, const char *id, bool enqueue) {
    for (size_t i = 0; i < pg->nbatch; i++) {
        coil__pg_batched *b = &pg->batch[i];
        const char *bid = enqueue ? b->r->u.enqueue.id : b->r->u.complete.id;
        if (!b->written && strcmp(bid, id) == 0) return b;
    }
    return NULL;
}

/* ------------------------------------------------------------------ writing it */

static int flush_enqueues(coil__store *s) {
    coil__pg *pg = s->impl;
    enum { COLS = 13 };
    lit l[COLS] = {{0}};
    int64_t now = coil__wall_ms();
    for (size_t i = 0; i < pg->nbatch; i++) {
        const coil__store_req *r = pg->batch[i].r;
        const coil__job_spec *sp = r->u.enqueue.spec;
        lit_text(&l[0], r->u.enqueue.id);
        lit_text(&l[1], sp->kind);
        lit_hex(&l[2], sp->payload_len ? sp->payload : "", sp->payload_len);
        lit_int(&l[3], sp->priority);
        lit_int(&l[4], pg->batch[i].run_at);
        lit_text(&l[5], sp->idem_key);
        lit_int(&l[6], sp->max_attempts ? sp->max_attempts : COIL__JOB_DEFAULT_MAX_ATTEMPTS);
        lit_int(&l[7], sp->backoff_base_ms ? sp->backoff_base_ms
                                           : COIL__JOB_DEFAULT_BACKOFF_BASE_MS);
        lit_int(&l[8], sp->backoff_cap_ms ? sp->backoff_cap_ms : COIL__JOB_DEFAULT_BACKOFF_CAP_MS);
        lit_int(&l[9], sp->timeout_ms);
        lit_int(&l[10], now);
        lit_text(&l[11], sp->followups);
        lit_text(&l[12], sp->parent);
    }
    int err;
    PGresult *res = exec_with(
        pg,
        "INSERT INTO coil_jobs (id, kind, payload, priority, run_at, idem_key, max_attempts,"
        " backoff_base, backoff_cap, timeout, created, updated, followups, followups_pending,"
        " parent)"
        " SELECT b_id, b_kind, decode(b_payload, 'hex'), b_priority, b_run_at, b_key,"
        " b_max, b_base, b_cap, b_timeout, b_created, b_created, b_followups,"
        " b_followups IS NOT NULL, b_parent"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::integer[], $5::bigint[],"
        " $6::text[], $7::integer[], $8::bigint[], $9::bigint[], $10::bigint[],"
        " $11::bigint[], $12::text[], $13::text[]) WITH ORDINALITY AS b(b_id, b_kind,"
        " b_payload, b_priority, b_run_at, b_key, b_max, b_base, b_cap, b_timeout, b_created,"
        " b_followups, b_parent, b_nth)"
        " ORDER BY b_nth ON CONFLICT (idem_key) DO NOTHING RETURNING id",
        l, COLS, NULL, &err);
    if (!res) return err;
    int rows = PQntuples(res);
    if (rows > 0) pg->txn_changed = true;
    for (int i = 0; i < rows; i++) {
        coil__pg_batched *b = find(pg, PQgetvalue(res, i, 0), true);
        if (!b) continue;
        b->written = true;
        b->r->err = 0;
        coil__store_note_enqueued(s, b->r, b->run_at);
    }
    PQclear(res);
    for (size_t i = 0; i < pg->nbatch && !err; i++)
        if (!pg->batch[i].written) err = coil__pg_enqueue_existing(s, pg->batch[i].r);
    return err;
}

static int flush_completes(coil__store *s) {
    coil__pg *pg = s->impl;
    lit l[4] = {{0}};
    for (size_t i = 0; i < pg->nbatch; i++) {
        const coil__store_req *r = pg->batch[i].r;
        const coil__job_result *res = r->u.complete.res;
        bool has = res->len > 0;
        lit_text(&l[0], r->u.complete.id);
        lit_int(&l[1], pg->batch[i].token);
        if (has) lit_hex(&l[2], res->data, res->len);
        else lit_text(&l[2], NULL);
        lit_text(&l[3], !has ? NULL
                        : res->content_type ? res->content_type
                                            : "application/octet-stream");
    }
    coil__pg_num now = coil__pg_n64(coil__wall_ms());
    int err;
    PGresult *res = exec_with(
        pg,
        "UPDATE coil_jobs SET state = 2, result = decode(b_result, 'hex'),"
        " result_type = b_type, progress = 100, node = NULL, finished = $5, updated = $5"
        " FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[])"
        " AS b(b_id, b_token, b_result, b_type)"
        " WHERE id = b_id AND token = b_token AND state = 1"
        " RETURNING " COIL__PG_EVENT_COLUMNS,
        l, 4, now.s, &err);
    if (!res) return err;
    int rows = PQntuples(res);
    if (rows > 0) pg->txn_changed = true;
    for (int i = 0; i < rows && !err; i++) {
        coil__pg_batched *b = find(pg, PQgetvalue(res, i, 0), false);
        if (!b) continue;
        b->written = true;
        b->r->err = 0;
        coil__pg_note_row(s, res, i);
        err = coil__pg_disown_later(pg, b->r->u.complete.id);
    }
    PQclear(res);
    for (size_t i = 0; i < pg->nbatch && !err; i++) {
        coil__pg_batched *b = &pg->batch[i];
        if (!b->written)
            err = coil__pg_classify_miss(pg, b->r, b->r->u.complete.id, b->token,
                                         1u << COIL__JOB_SUCCEEDED, NULL);
    }
    return err;
}

int coil__pg_batch_flush(coil__store *s) {
    coil__pg *pg = s->impl;
    if (pg->nbatch == 0) return 0;
    int err = pg->batch[0].r->op == COIL__OP_ENQUEUE ? flush_enqueues(s) : flush_completes(s);
    coil__pg_batch_drop(pg);
    return err;
}
