/* jobs/service/service.c: the job system's life, and enqueue/cancel for any loop.
 *
 * coil_jobs_start() runs on a plain thread: it starts a loop thread (the
 * jobs loop) and, in one task there, opens the store, requeues what a dead
 * predecessor left running, starts the pool and the scheduler. Everything
 * that belongs to one loop (the pool, the scheduler) is created on the jobs
 * loop, so it is used there only; the store serves every loop.
 *
 * coil_jobs_stop() does the reverse in one task on the jobs loop, then
 * stops the loop thread.
 */
#include "jobs/service/service.h"
#include "jobs/pool/worker.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void coil_jobs_config_init(coil_jobs_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->log = true;
}

/* Fills the zero fields with defaults. Returns 0 or -EINVAL. */
static int settle_config(coil_jobs *j, const coil_jobs_config *cfg) {
    j->cfg = *cfg;
    /* Where: a PostgreSQL URL, sqlite:DIR, or the data directory. */
    const char *where = cfg->store && cfg->store[0] ? cfg->store : cfg->data_dir;
    if (!where || !where[0]) return -EINVAL;
    j->pg = coil__store_where_is_postgres(where);
    size_t n = strlen(where);
    if (n >= sizeof j->dir) return -EINVAL;
    memcpy(j->dir, where, n + 1);
    j->cfg.data_dir = j->dir;
    j->cfg.store = j->dir;
    if (j->cfg.pool.workers == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        j->cfg.pool.workers = cpus > 0 ? (size_t)cpus : 1;
    }
    if (j->cfg.prefetch == 0) j->cfg.prefetch = 32 * j->cfg.pool.workers;
    if (j->cfg.prefetch_bytes == 0) j->cfg.prefetch_bytes = (size_t)64 << 20;
    if (j->cfg.stop_grace == 0) j->cfg.stop_grace = COIL_SEC(2);
    if (j->cfg.stop_grace < 0) j->cfg.stop_grace = 0;
    if (cfg->nlimits > COIL__PEEK_LIMITS_MAX || (cfg->nlimits && !cfg->limits)) return -EINVAL;
    for (size_t i = 0; i < cfg->nlimits; i++)
        if (!cfg->limits[i].kind || !cfg->limits[i].kind[0] || cfg->limits[i].max_running == 0)
            return -EINVAL;
    return 0;
}

/* The jobs loop: everything start needs, in order; undone on failure. */
static coil_result start_main(void *arg) {
    coil_jobs *j = arg;
    coil__store_opts opts = {
        .lease_ms = j->cfg.lease / 1000000,
        .heartbeat_ms = j->cfg.heartbeat / 1000000,
        .kinds = j->cfg.kinds,
    };
    int err = coil__store_open(j->dir, &opts, &j->store);
    if (err) return coil_fail(err);
    if (j->cfg.no_workers) return coil_ok(NULL); /* enqueue, read, cancel: no more */
    size_t requeued = 0;
    err = coil__store_requeue_running(j->store, &requeued);
    if (err) goto close_store;
    atomic_store(&j->stats.requeued_at_start, requeued);
    if (requeued && j->cfg.log)
        coil__log("jobs: %zu job%s left running by a previous process went back to the queue",
                  requeued, requeued == 1 ? "" : "s");
    err = coil_pool_start(&j->cfg.pool, &j->pool);
    if (err) goto close_store;
    err = coil__sched_start(j);
    if (err) goto stop_pool;
    return coil_ok(NULL);
stop_pool:
    coil_pool_stop(j->pool, COIL_POOL_CANCEL);
    j->pool = NULL;
close_store:
    coil__store_close(j->store);
    j->store = NULL;
    return coil_fail(err);
}

int coil_jobs_start(const coil_jobs_config *cfg, coil_jobs **out) {
    if (!cfg || !out) return -EINVAL;
    if (coil_current()) return -EPERM; /* it blocks: not from a task */
    coil_jobs *j = calloc(1, sizeof *j);
    if (!j) return -ENOMEM;
    int err = settle_config(j, cfg);
    if (err) goto fail;
    /* The store makes its directory (and syncs the entry): not done here. */
    j->loop = coil_loop_thread_start();
    if (!j->loop) {
        err = -errno;
        goto fail;
    }
    coil_result r;
    err = coil_call_sync(j->loop, start_main, j, &r);
    if (!err) err = r.err;
    if (err) {
        coil_loop_thread_stop(j->loop);
        goto fail;
    }
    *out = j;
    return 0;
fail:
    free(j);
    return err;
}

static coil_result stop_main(void *arg) {
    coil_jobs *j = arg;
    if (j->cfg.no_workers) {
        int err = coil__store_close(j->store);
        if (err) coil__log("jobs: closing the store: %s", coil_strerror(err));
        return coil_ok(NULL);
    }
    coil__sched_stop(j, j->cfg.stop_grace);
    /* Jobs the scheduler stopped are still `running` in the store; the pool
     * has nothing left to run. Put them back now rather than at the next
     * start, so that the store's state is honest while nobody runs. */
    coil_pool_stop(j->pool, COIL_POOL_CANCEL);
    size_t back = 0;
    coil__store_requeue_running(j->store, &back);
    if (back && j->cfg.log)
        coil__log("jobs: %zu running job%s stopped and requeued at shutdown", back,
                  back == 1 ? "" : "s");
    int err = coil__store_close(j->store);
    if (err) coil__log("jobs: closing the store: %s", coil_strerror(err));
    return coil_ok(NULL);
}

void coil_jobs_stop(coil_jobs *j) {
    if (!j) return;
    coil_result r;
    coil_call_sync(j->loop, stop_main, j, &r);
    coil_loop_thread_stop(j->loop);
    free(j);
}

/* ms from ns, rounding up so that a positive duration stays positive. */
static int64_t ms_of(coil_time ns) { return ns <= 0 ? 0 : (ns + 999999) / 1000000; }

_Static_assert(COIL_JOB_NO_RETRY == -ENOTRECOVERABLE, "COIL_JOB_NO_RETRY is -ENOTRECOVERABLE");

/* The follow-ups as a JSON array (store.h), each kind registered here and
 * each payload a JSON object; a chain's nested in its link's. */
static int followups_array(const coil_job_followup *f, size_t n, int depth, json_t **out) {
    static const char *const when[] = {NULL, "success", "failure", "done"};
    *out = NULL;
    if (!f || n == 0 || n > COIL__FOLLOWUPS_MAX || depth > COIL__FOLLOWUPS_DEPTH) return -EINVAL;
    json_t *list = json_array();
    int err = list ? 0 : -ENOMEM;
    for (size_t i = 0; i < n && !err; i++) {
        if (!f[i].kind || !coil__job_lookup(f[i].kind, strlen(f[i].kind))) {
            err = f[i].kind ? -ENOENT : -EINVAL;
            break;
        }
        if (f[i].when < COIL_JOB_ON_SUCCESS || f[i].when > COIL_JOB_ON_DONE ||
            f[i].max_attempts < 0 || f[i].max_attempts > 100 || f[i].backoff < 0 ||
            f[i].backoff_cap < 0) {
            err = -EINVAL;
            break;
        }
        json_t *payload = f[i].payload ? json_loads(f[i].payload, 0, NULL) : json_object();
        if (!json_is_object(payload)) {
            json_decref(payload);
            err = -EINVAL;
            break;
        }
        /* "o" takes the payload's reference, and the _new calls take
         * theirs, on failure too. */
        json_t *one = json_pack("{s:s, s:s, s:o, s:i, s:I, s:I}", "kind", f[i].kind, "when",
                                when[f[i].when], "payload", payload, "max_attempts",
                                f[i].max_attempts, "backoff_ms", (json_int_t)ms_of(f[i].backoff),
                                "backoff_cap_ms", (json_int_t)ms_of(f[i].backoff_cap));
        if (!one) {
            err = -ENOMEM;
            break;
        }
        json_t *next = NULL;
        if (f[i].nfollowups) err = followups_array(f[i].followups, f[i].nfollowups, depth + 1, &next);
        if (!err && next && json_object_set_new(one, "followups", next) != 0) err = -ENOMEM;
        if (err) json_decref(one);
        else if (json_array_append_new(list, one) != 0) err = -ENOMEM;
    }
    if (err) json_decref(list);
    else *out = list;
    return err;
}

/* The follow-ups as the store keeps them, checked; NULL for none. */
static int followups_json(const coil_job_followup *f, size_t n, char **out) {
    *out = NULL;
    if (n == 0) return 0;
    json_t *list;
    int err = followups_array(f, n, 1, &list);
    if (err) return err;
    char msg[160];
    *out = json_dumps(list, JSON_COMPACT);
    json_decref(list);
    if (!*out) return -ENOMEM;
    if (coil__followups_check(*out, msg, sizeof msg) != 0) {
        free(*out);
        *out = NULL;
        return -EINVAL;
    }
    return 0;
}

int coil__jobs_enqueue(coil_jobs *j, const char *kind, const void *payload, size_t len,
                       const coil_jobs_enqueue_opts *opts, coil__enqueued *out) {
    static const coil_jobs_enqueue_opts none = {0};
    if (!opts) opts = &none;
    if (!kind) return -EINVAL;
    if (opts->priority < -1000 || opts->priority > 1000 || opts->delay < 0 ||
        opts->max_attempts < 0 || opts->max_attempts > 100 || opts->timeout < 0 ||
        opts->backoff < 0 || opts->backoff_cap < 0)
        return -EINVAL;
    if (strnlen(kind, COIL_JOB_KIND_MAX + 1) > COIL_JOB_KIND_MAX) return -EINVAL;
    if (!coil__job_lookup(kind, strlen(kind))) return -ENOENT;
    char *followups = NULL;
    int err = followups_json(opts->followups, opts->nfollowups, &followups);
    if (err) return err;
    coil__job_spec spec = {
        .kind = kind,
        .payload = payload,
        .payload_len = len,
        .priority = opts->priority,
        .run_at = opts->delay > 0 ? coil__wall_ms() + ms_of(opts->delay) : 0,
        .idem_key = opts->idempotency_key,
        .max_attempts = opts->max_attempts,
        .backoff_base_ms = ms_of(opts->backoff),
        .backoff_cap_ms = ms_of(opts->backoff_cap),
        .timeout_ms = ms_of(opts->timeout),
        .followups = followups,
    };
    err = coil__store_enqueue(j->store, &spec, out);
    free(followups);
    if (!err && !out->duplicate) atomic_fetch_add(&j->stats.enqueued, 1);
    return err;
}

int coil_jobs_enqueue(coil_jobs *j, const char *kind, const void *payload, size_t len,
                      const coil_jobs_enqueue_opts *opts, char id[COIL_JOB_ID_SIZE],
                      bool *duplicate) {
    if (!id) return -EINVAL;
    coil__enqueued got;
    int err = coil__jobs_enqueue(j, kind, payload, len, opts, &got);
    if (err) return err;
    memcpy(id, got.id, COIL_JOB_ID_SIZE);
    if (duplicate) *duplicate = got.duplicate;
    return 0;
}

int coil_jobs_cancel(coil_jobs *j, const char *id) {
    if (!id) return -EINVAL;
    return coil__store_cancel(j->store, id, NULL);
}

/* What coil_jobs_wait follows. */
typedef struct final_watch {
    coil__job_follower follow;
    coil_event changed;           /* the job changed: read it again */
} final_watch;

static void on_job_change(coil__job_follower *f, const coil__job_event *ev) {
    (void)ev;
    coil_event_set(&COIL_CONTAINER_OF(f, final_watch, follow)->changed);
}

int coil_jobs_wait(coil_jobs *j, const char *id, coil_time timeout, const char **state) {
    if (!id) return -EINVAL;
    if (!coil__job_id_valid(id)) return -ENOENT;
    final_watch fw = {.follow.on_event = on_job_change};
    memcpy(fw.follow.id, id, COIL__JOB_ID_SIZE);
    coil_event_init(&fw.changed);
    /* Follow first, then read: a change between the two sets the event. */
    int err = coil__jobs_follow(j, &fw.follow);
    if (err) return err;
    coil_scope sc;
    coil_scope_enter(&sc, timeout == COIL_NEVER ? COIL_NEVER : coil_now() + timeout);
    for (;;) {
        coil_event_clear(&fw.changed);
        coil__job *job;
        if ((err = coil__store_get(j->store, id, &job)) != 0) break;
        bool final = coil__job_state_final(job->state);
        if (final && state) *state = coil__job_state_name(job->state);
        coil__job_free(job);
        if (final || (err = coil_event_wait(&fw.changed)) != 0) break;
    }
    coil_scope_exit(&sc);
    coil__jobs_unfollow(j, &fw.follow);
    return err;
}

void coil_jobs_get_stats(coil_jobs *j, coil_jobs_stats *out) {
    out->claimed = atomic_load(&j->stats.claimed);
    out->succeeded = atomic_load(&j->stats.succeeded);
    out->failed = atomic_load(&j->stats.failed);
    out->crashed = atomic_load(&j->stats.crashed);
    out->cancelled = atomic_load(&j->stats.cancelled);
    out->requeued_at_start = atomic_load(&j->stats.requeued_at_start);
    out->store_errors = atomic_load(&j->stats.store_errors);
    out->enqueued = atomic_load(&j->stats.enqueued);
    out->waiting = atomic_load(&j->stats.waiting);
    out->running = atomic_load(&j->stats.running);
}

bool coil_jobs_store_available(coil_jobs *j) { return coil__store_available(j->store); }

int coil_jobs_migrate(const char *store, int *from, int *to) {
    int unused_from, unused_to;
    return coil__store_migrate(store, from ? from : &unused_from, to ? to : &unused_to);
}

bool coil_jobs_store_is_postgres(const char *store) {
    return store && coil__store_where_is_postgres(store);
}
