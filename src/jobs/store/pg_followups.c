/* jobs/store/pg_followups.c: follow-ups on PostgreSQL (store.h has the
 * format; sqlite_write.c does the same on SQLite).
 *
 * A job enqueued with follow-ups has followups_pending set. Every
 * transaction that may end a job (complete, fail, cancel, release, a
 * requeue or a rescue) writes, before it commits, the follow-ups of every
 * job that is final and still pending, and clears the flag: so a job's
 * follow-ups commit with its final state. A job ended by a transaction that
 * does not look (none do today) would keep its flag, and the next one that
 * looks would write them: pending follow-ups are never lost, only late.
 *
 * Many nodes may look at once: FOR UPDATE SKIP LOCKED gives each pending
 * job to one of them, and the follow-ups' idempotency keys make a second
 * write of the same one a no-op.
 */
#include "jobs/store/pg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct sink {
    PGconn *c;
    coil__job_event **events;
    size_t *n;
} sink;

static int append_event(sink *k, const char *id, const char *kind, int64_t run_at) {
    coil__job_event *more = realloc(*k->events, (*k->n + 1) * sizeof *more);
    if (!more) return -ENOMEM;
    *k->events = more;
    coil__job_event_init(&more[(*k->n)++], id, kind, COIL__JOB_QUEUED, 0, run_at);
    return 0;
}

static int insert_child(void *arg, const coil__job_spec *child) {
    sink *k = arg;
    char id[COIL__JOB_ID_SIZE];
    if (coil__job_id_new(id) != 0) return -EIO;
    int64_t now = coil__wall_ms();
    coil__pg_num at = coil__pg_n64(now),
                 max = coil__pg_n64(child->max_attempts ? child->max_attempts
                                                        : COIL__JOB_DEFAULT_MAX_ATTEMPTS),
                 base = coil__pg_n64(child->backoff_base_ms ? child->backoff_base_ms
                                                            : COIL__JOB_DEFAULT_BACKOFF_BASE_MS),
                 cap = coil__pg_n64(child->backoff_cap_ms ? child->backoff_cap_ms
                                                          : COIL__JOB_DEFAULT_BACKOFF_CAP_MS);
    const char *p[] = {id,    child->kind, child->payload, child->idem_key, max.s,
                       base.s, cap.s,      at.s,           child->followups, child->parent};
    int err;
    PGresult *res = coil__pg_exec(
        k->c,
        "INSERT INTO coil_jobs (id, kind, payload, priority, run_at, idem_key, max_attempts,"
        " backoff_base, backoff_cap, timeout, created, updated, followups, followups_pending,"
        " parent) VALUES ($1::text, $2::text, convert_to($3::text, 'UTF8'), 0, $8::bigint,"
        " $4::text, $5::integer, $6::bigint, $7::bigint, 0, $8::bigint, $8::bigint, $9::text,"
        " $9::text IS NOT NULL, $10::text)"
        " ON CONFLICT (idem_key) DO NOTHING RETURNING id",
        10, p, NULL, NULL, &err);
    if (!res) return err;
    bool added = PQntuples(res) == 1;
    PQclear(res);
    return added ? append_event(k, id, child->kind, now) : 0;
}

int coil__pg_followups(PGconn *c, coil__job_event **events, size_t *nevents) {
    int err;
    PGresult *due = coil__pg_exec(c,
                                  "SELECT seq, id, kind, state, attempts, error_msg, finished,"
                                  " followups FROM coil_jobs WHERE followups_pending"
                                  " AND state IN (2, 4, 5) FOR UPDATE SKIP LOCKED",
                                  0, NULL, NULL, NULL, &err);
    if (!due) return err;
    sink k = {.c = c, .events = events, .n = nevents};
    err = 0;
    for (int i = 0; i < PQntuples(due) && !err; i++) {
        char id[COIL__JOB_ID_SIZE];
        snprintf(id, sizeof id, "%s", PQgetvalue(due, i, 1));
        coil__followup_parent p = {
            .id = id, .kind = PQgetvalue(due, i, 2),
            .state = (coil__job_state)coil__pg_int(due, i, 3),
            .attempts = (int)coil__pg_int(due, i, 4), .error = coil__pg_text(due, i, 5),
            .finished = coil__pg_int(due, i, 6)};
        err = coil__followups_each(coil__pg_text(due, i, 7), &p, insert_child, &k);
        coil__pg_num seq = coil__pg_n64(coil__pg_int(due, i, 0));
        const char *q[] = {seq.s};
        if (!err)
            err = coil__pg_command(c, "UPDATE coil_jobs SET followups_pending = false"
                                      " WHERE seq = $1::bigint",
                                   1, q);
    }
    PQclear(due);
    return err;
}
