/* jobs/service/scheduler.c: from the store to the pool and back, on the jobs loop.
 *
 * Four kinds of task:
 *
 *   claimer    peeks at the runnable jobs (claim order: priority, run_at,
 *              age) while fewer than `window` are held (on PostgreSQL:
 *              ready or in a worker, for outcomes being recorded do not
 *              count there, up to RECORDING_WINDOWS windows of them), and
 *              their payloads stay under cfg.prefetch_bytes, and puts them in
 *              `ready`, a priority queue. They stay `queued` in the store.
 *              With nothing runnable it sleeps until the earliest run_at or
 *              until `wake` is set.
 *   runners    one per worker process: take the most urgent ready job,
 *              start a starter, run the job in the pool at once (only this
 *              runner waits), hand the outcome to a recorder, take the next.
 *              As many runners as workers keeps the pool's own FIFO queue
 *              empty, so priority decides what a free worker runs next.
 *              Jobs of awaiting kinds, of which a worker runs many at once,
 *              wait in a ready queue of their own, with a runner for each
 *              place they have in one worker (the sum of their kinds'
 *              concurrency): they neither wait behind plain jobs nor
 *              crowd the plain jobs' runners.
 *   starters   one per job: write its start (queued -> running, attempts
 *              + 1, leased to this process). The job does not wait for this
 *              commit.
 *   recorders  one per outcome: write the outcome (complete, fail, or
 *              release) and free the job. A start still waiting for the
 *              writer when the outcome comes (a short job) is withdrawn and
 *              written with the outcome, in one write (run_complete,
 *              run_fail); a start under way is waited for. A runner never
 *              waits for a commit, so a worker never idles for an fsync.
 *
 * One process owns the store (its lock file), so a peeked job cannot be
 * taken by anyone else; peeks run in the writer's order, after every start
 * and record submitted before them, and pass over the jobs held here.
 *
 * A job runs in a worker before its start is written, so the store holds
 * every peeked job until its start or its release (store_held.c): a cancel
 * in that gap flags the job instead of cancelling it, and the job is
 * stopped like a running one. No job the store calls cancelled ever ran
 * unless its record says so: a job that reached a worker leaves an attempt.
 *
 * If the process dies, a job whose start is on disk is `running` and the
 * next start requeues it; a job whose start is not is still `queued`. Either
 * way it runs again: at least once.
 *
 * The store's watcher (a plain callback on this loop) sets `wake` when a job
 * becomes runnable, and marks cancelled and flagged jobs: a job in the pool
 * has its runner's scope cancelled (the pool sends a cancel frame, then
 * SIGTERM, then SIGKILL); a job still in `ready` is given back at once by
 * a giver task (released: the store cancels it), and its runner frees it
 * when its turn comes.
 *
 * How outcomes are recorded:
 *
 *   handler returned 0                   complete (the result), with the start
 *                                        if it was not written yet
 *   the start failed (a storage error)   nothing: the store has the truth
 *   stopped because of a cancel request  fail -> cancelled (with the start if
 *                                        it was not written: it ran)
 *   cancelled before reaching a worker,  release -> cancelled, or queued
 *   stopped by a shutdown, or never ran  with the attempt uncounted
 *   anything else (error, crash,         fail -> failed (retry at backoff)
 *   timeout, protocol)                        or dead (no attempts left)
 */
#include "jobs/service/service.h"
#include "jobs/pool/worker.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
    CLAIM_BATCH_MAX = 256,
    /* Jobs whose outcome waits for the writer do not count against the
     * window (they hold no worker and no place in `ready`), up to this many
     * windows of them. */
    RECORDING_WINDOWS = 4,
};

/* On a store shared with other nodes, a job claimed ahead is no other
 * node's to run: claim ahead only what the workers would finish in about
 * this long (at least one a worker, at most cfg.prefetch). */
#define AHEAD_HORIZON COIL_MSEC(50)

/* Store errors the claimer retries after this long. */
#define STORE_RETRY COIL_SEC(1)

/* An outcome on its way to the store. */
typedef struct record {
    coil_jobs *jobs;
    sched_job *sj;
    int err;                  /* coil_pool_run's return */
    coil_job_outcome out;
} record;

/* ------------------------------------------------------------------ helpers */

static void sched_job_free(coil_jobs *j, sched_job *sj) {
    coil__list_remove(&sj->link);
    j->sched.nactive--;
    j->sched.held_bytes -= sj->rec->payload_len;
    coil__job_free(sj->rec);
    free(sj);
    coil_event_set(&j->sched.wake); /* room in the window */
}

/* Waits for `wake` until `deadline`. Returns the interruption of the task
 * (its cancellation), not the deadline. Suspends. */
static int wait_wake(coil__sched *s, coil_time deadline) {
    coil_scope sc;
    coil_scope_enter(&sc, deadline);
    int err = COIL__AT(coil_event_wait(&s->wake));
    int fired = coil_scope_exit(&sc);
    if (err && err == fired) return 0; /* our deadline, not the task's */
    return err;
}

static void give_back_soon(sched_job *sj);

/* ------------------------------------------------------------------ claimer */

static void take_peeked(coil_jobs *j, coil__job **recs, size_t n) {
    coil__sched *s = &j->sched;
    for (size_t i = 0; i < n; i++) {
        sched_job *sj = calloc(1, sizeof *sj);
        if (!sj) { /* still queued in the store: a later peek finds it */
            coil__job_free(recs[i]);
            continue;
        }
        sj->rec = recs[i];
        sj->jobs = j;
        sj->cancel = sj->rec->cancel_requested; /* flagged while held before */
        coil__list_push_back(&s->active, &sj->link);
        s->nactive++;
        s->held_bytes += sj->rec->payload_len;
        atomic_fetch_add(&j->stats.waiting, 1);
        /* Lowest value first: the highest priority. The window bounds the
         * queue's length, so the put cannot fail for want of room. */
        coil_queue *q = coil__job_awaiting(sj->rec->kind, strlen(sj->rec->kind))
                            ? &s->ready_awaiting
                            : &s->ready;
        int err = coil_queue_try_put_prio(q, sj, -(int64_t)sj->rec->priority);
        COIL_ASSERT(err == 0);
        if (sj->cancel) give_back_soon(sj);
    }
}

static int seq_cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The seqs of the jobs held, ascending, in `skip` (room for window). */
static size_t held_seqs(coil__sched *s, uint64_t *skip) {
    size_t n = 0;
    coil__list *it;
    coil__list_foreach(it, &s->active) skip[n++] = COIL_CONTAINER_OF(it, sched_job, link)->rec->seq;
    qsort(skip, n, sizeof *skip, seq_cmp);
    return n;
}

/* The window now: workers plus the jobs claimed ahead. */
static size_t window_now(const coil_jobs *j) {
    const coil__sched *s = &j->sched;
    size_t workers = j->cfg.pool.workers;
    if (!coil__store_poll_interval(j->store) || s->avg_run <= 0) return s->window;
    double ahead = (double)workers * (double)AHEAD_HORIZON / (double)s->avg_run;
    if (ahead < (double)workers) ahead = (double)workers;
    if (ahead > (double)j->cfg.prefetch) ahead = (double)j->cfg.prefetch;
    return workers + (size_t)ahead;
}

/* The kinds' limits, with what this process holds or runs of each (the
 * room SQLite's peek leaves them; PostgreSQL counts every node's). */
static size_t limits_now(const coil_jobs *j, coil__peek_limit *out) {
    size_t n = j->cfg.nlimits;
    if (n == 0) return 0; /* no walk of the held jobs for nothing */
    for (size_t i = 0; i < n; i++)
        out[i] = (coil__peek_limit){j->cfg.limits[i].kind, j->cfg.limits[i].max_running, 0};
    coil__list *it;
    coil__list_foreach(it, &j->sched.active) {
        const sched_job *sj = COIL_CONTAINER_OF(it, sched_job, link);
        for (size_t i = 0; i < n; i++)
            if (strcmp(sj->rec->kind, out[i].kind) == 0) out[i].taken++;
    }
    return n;
}

static coil_result claimer_main(void *arg) {
    coil_jobs *j = arg;
    coil__sched *s = &j->sched;
    coil__job *recs[CLAIM_BATCH_MAX];
    uint64_t *skip = malloc((RECORDING_WINDOWS + 1) * s->window * sizeof *skip);
    if (!skip) return coil_fail(-ENOMEM);
    bool failing = false;
    while (!s->stopping) {
        /* The window. On a shared store (PostgreSQL), only jobs ready or in
         * a worker: outcomes on their way to the store would keep it full
         * for a commit's time after every job, most of a short job's life
         * there (a drain of 20,000 no-op jobs: 4.3k jobs/s with them
         * counted, 5.0k without). On SQLite, whose commits are quick, they
         * count: claiming sooner took the writer from the enqueues (16.0k
         * to 12.3k enqueues/s in `coil bench jobs --quick`). */
        bool shared = coil__store_poll_interval(j->store) != 0;
        size_t busy = shared ? s->nactive - s->recording : s->nactive;
        size_t window = window_now(j);
        size_t room = window > busy ? window - busy : 0;
        if (s->recording >= RECORDING_WINDOWS * s->window) room = 0;
        if (room > CLAIM_BATCH_MAX) room = CLAIM_BATCH_MAX;
        /* Payloads held in memory are bounded too (large reports). */
        size_t bytes = j->cfg.prefetch_bytes > s->held_bytes ? j->cfg.prefetch_bytes - s->held_bytes
                                                              : 0;
        if (bytes == 0 && s->nactive) room = 0;
        if (room == 0) {
            coil_event_clear(&s->wake);
            if (wait_wake(s, COIL_NEVER)) break;
            continue;
        }
        /* Cleared before the peek: a job enqueued meanwhile sets it again,
         * and the next round sees it. */
        coil_event_clear(&s->wake);
        size_t n = 0, nskip = held_seqs(s, skip);
        int64_t next_run_at = 0;
        coil__peek_limit limits[COIL__PEEK_LIMITS_MAX];
        size_t nlimits = limits_now(j, limits);
        int err = coil__store_peek_limited(j->store, skip, nskip, limits, nlimits, recs, room,
                                           bytes ? bytes : 1, &n, &next_run_at);
        if (err == 0) {
            failing = false;
            take_peeked(j, recs, n);
            continue;
        }
        coil_time deadline = COIL_NEVER;
        if (err == -EAGAIN) {
            failing = false;
            if (next_run_at) {
                int64_t wait_ms = next_run_at - coil__wall_ms();
                deadline = coil_now() + COIL_MSEC(wait_ms > 0 ? wait_ms : 0) + COIL_MSEC(1);
            }
            /* A store shared with other nodes: a coarse poll catches a wake
             * whose notification was lost while the connection was down. */
            coil_time poll = coil__store_poll_interval(j->store);
            if (poll && (deadline == COIL_NEVER || deadline > coil_now() + poll))
                deadline = coil_now() + poll;
        } else if (err == -ECANCELED || err == -EPIPE) {
            break;
        } else {
            atomic_fetch_add(&j->stats.store_errors, 1);
            if (!failing) coil__log("jobs: cannot read the queue: %s; retrying", coil_strerror(err));
            failing = true;
            deadline = coil_now() + STORE_RETRY;
        }
        if (wait_wake(s, deadline)) break;
    }
    free(skip);
    return coil_ok(NULL);
}

/* ------------------------------------------------------------------ starters */

static coil_result starter_main(void *arg) {
    sched_job *sj = arg;
    coil_jobs *j = sj->jobs;
    int err = coil__store_start(j->store, sj->rec->id, j->sched.owner, NULL);
    if (err == 0) {
        atomic_fetch_add(&j->stats.claimed, 1);
    } else if (err != -ECANCELED && sj->scope) {
        /* The store cannot write (or lost the job): it is not ours to run.
         * It stays as the store says. */
        coil_scope_cancel(sj->scope);
    }
    return coil_fail(err);
}

/* ------------------------------------------------------------------ recorders */

/* The error a failed attempt leaves in the store. */
static void describe_failure(const record *r, char *buf, size_t cap, coil__job_error *e) {
    const coil_job_outcome *o = &r->out;
    e->signal = o->signal;
    e->exit_status = o->exit_status;
    e->oom = o->oom;
    e->permanent = r->err == COIL_JOB_NO_RETRY && !o->crashed;
    if (r->err == -ETIMEDOUT)
        snprintf(buf, cap, "timed out after %lld ms", (long long)r->sj->rec->timeout_ms);
    else if (r->err == -ECANCELED && r->sj->cancel)
        snprintf(buf, cap, "cancelled on request");
    else if (o->crashed && o->signal)
        snprintf(buf, cap, "worker killed by signal %d (%s)%s", o->signal, strsignal(o->signal),
                 o->oom ? ", out of memory" : "");
    else if (o->crashed)
        snprintf(buf, cap, "worker exited with status %d", o->exit_status);
    else if (o->error[0])
        snprintf(buf, cap, "%s", o->error);
    else
        snprintf(buf, cap, "%s (%s)", coil_strerror(r->err), coil_err_name(r->err));
    e->message = buf;
}

/* Whether the run was an attempt of the job's own, to record and count: it
 * succeeded, or failed for a reason of its own. Not: it never reached a
 * worker, the shutdown stopped it, or (its start unwritten) it was
 * cancelled while still queued in the store. */
static bool is_attempt(const coil_jobs *j, const record *r, bool started) {
    if (r->err == 0) return true;
    if (r->sj->cancel) return started || r->out.ran; /* a worker had it */
    if (!r->out.ran) return !(r->err == -ECANCELED || r->err == -EPIPE || r->err == -EAGAIN);
    return !(j->sched.hard_stop && r->err == -ECANCELED);
}

/* Writes the outcome. `started`: the job's start is written; else the
 * start goes in the same write as the outcome (a job that ended before its
 * start reached the writer: one write instead of two). */
static int record_outcome(record *r, bool started) {
    coil_jobs *j = r->jobs;
    sched_job *sj = r->sj;
    const char *id = sj->rec->id;
    const char *owner = started ? NULL : j->sched.owner;
    if (r->err == 0) {
        coil__job_result res = {.data = r->out.result, .len = r->out.result_len,
                                .content_type = r->out.content_type[0] ? r->out.content_type
                                                                       : NULL};
        return started ? coil__store_complete(j->store, id, &res)
                       : coil__store_run_complete(j->store, id, owner, &res);
    }
    if (!is_attempt(j, r, started)) /* give it back, started or held */
        return coil__store_release(j->store, id, NULL);
    char msg[COIL_JOB_MESSAGE_MAX + 64];
    coil__job_error e;
    describe_failure(r, msg, sizeof msg, &e);
    return started ? coil__store_fail(j->store, id, &e, NULL)
                   : coil__store_run_fail(j->store, id, owner, &e, NULL);
}

/* Counts a recorded outcome in the scheduler's stats. */
static void count_outcome(const record *r, bool started) {
    coil_jobs *j = r->jobs;
    if (!is_attempt(j, r, started)) return;
    if (!started) atomic_fetch_add(&j->stats.claimed, 1); /* started with the outcome */
    if (r->err == 0) atomic_fetch_add(&j->stats.succeeded, 1);
    else if (r->sj->cancel && r->err == -ECANCELED) atomic_fetch_add(&j->stats.cancelled, 1);
    else atomic_fetch_add(&j->stats.failed, 1);
    if (r->out.crashed) atomic_fetch_add(&j->stats.crashed, 1);
}

/* Whether `err` says the store cannot write now (full, read-only, I/O),
 * a condition that may clear. */
static bool storage_error(int err) {
    return err == -ENOSPC || err == -EDQUOT || err == -EROFS || err == -EIO || err == -ENOMEM ||
           err == -EBUSY || err == -ENOTCONN || err == -ETIMEDOUT || err == -EAGAIN;
}

/* Waits up to STORE_RETRY, less if the scheduler starts to stop. Suspends
 * (in a shield: it cannot be interrupted). */
static void pause_for_store(coil_jobs *j) {
    for (int i = 0; i < 10 && !j->sched.stopping; i++) coil_sleep(STORE_RETRY / 10);
}

static coil_result recorder_main(void *arg) {
    record *r = arg;
    coil_jobs *j = r->jobs;
    /* A record must reach the store even while the scheduler stops. */
    coil_scope shield;
    coil_scope_enter_shielded(&shield, COIL_NEVER);
    /* A start still waiting for the writer is withdrawn (-ECANCELED, nothing
     * written) and goes with the outcome; one under way is waited for. */
    coil_cancel(r->sj->starter);
    coil_result started = {0};
    coil_join(r->sj->starter, &started);
    int err = 0;
    if (started.err == 0 || started.err == -ECANCELED) {
        /* A full or read-only store may come back: retry, holding the job's
         * place in the window (so no more jobs are taken meanwhile). */
        bool logged = false;
        while ((err = record_outcome(r, started.err == 0)) && storage_error(err) &&
               !j->sched.stopping) {
            atomic_fetch_add(&j->stats.store_errors, 1);
            if (!logged)
                coil__log("jobs: cannot record the outcome of job %s: %s; retrying",
                          r->sj->rec->id, coil_strerror(err));
            logged = true;
            pause_for_store(j);
        }
        if (!err) count_outcome(r, started.err == 0);
    } else if (storage_error(started.err)) {
        /* The start was not written: the job is given back, to run again,
         * retried as an outcome is. On SQLite it is still queued and only
         * held; on PostgreSQL the claim made it running under this node's
         * token, and left so it would wait for a rescue that never comes
         * while this node lives. Not at once, or a full store would make a
         * busy loop. */
        atomic_fetch_add(&j->stats.store_errors, 1);
        coil__log("jobs: cannot record the start of job %s: %s; it is given back to run again",
                  r->sj->rec->id, coil_strerror(started.err));
        do pause_for_store(j);
        while ((err = coil__store_release(j->store, r->sj->rec->id, NULL)) && storage_error(err) &&
               !j->sched.stopping);
    }
    coil_scope_exit(&shield);
    if (err == -ESTALE) {
        /* This node lost its lease, and the job went to another node: that
         * attempt's outcome is the one that counts. */
        coil__log("jobs: job %s was taken over by another node; its outcome here is dropped",
                  r->sj->rec->id);
    } else if (err && err != -EPIPE) {
        atomic_fetch_add(&j->stats.store_errors, 1);
        /* Still `running` in the store: requeued at the next start. */
        coil__log("jobs: cannot record the outcome of job %s: %s", r->sj->rec->id,
                  coil_strerror(err));
    }
    coil_job_outcome_free(&r->out);
    sched_job_free(j, r->sj);
    free(r);
    if (--j->sched.recording == 0) coil_event_set(&j->sched.recorded);
    return coil_ok(NULL);
}

/* Hands an outcome to a recorder task, which takes `out`'s contents.
 * Returns 0, or -ENOMEM (then the caller still owns everything). Does not
 * suspend. */
static int record_later(coil_jobs *j, sched_job *sj, int err, coil_job_outcome *out) {
    record *r = malloc(sizeof *r);
    coil_task *t = r ? coil_spawn_named("jobs recorder", recorder_main, r) : NULL;
    if (!t) {
        free(r);
        return -ENOMEM;
    }
    r->jobs = j;
    r->sj = sj;
    r->err = err;
    r->out = *out;
    memset(out, 0, sizeof *out);
    j->sched.recording++;
    coil_event_clear(&j->sched.recorded);
    coil_event_set(&j->sched.wake); /* room in the window */
    coil_detach(t);
    return 0;
}

/* ------------------------------------------------------------------ runners */

static void forward_progress(void *arg, int percent, const char *message) {
    sched_job *sj = arg;
    coil__store_progress(sj->jobs->store, sj->rec->id, percent, message);
}

/* Gives back a held job that will not run here: the store cancels it if a
 * cancel flagged it. A release that fails leaves it held; then a later
 * peek takes it again, and a restart cancels or requeues it. Suspends (in
 * a shield: the release must reach the store). */
static void release_held(coil_jobs *j, sched_job *sj) {
    coil_scope shield;
    coil_scope_enter_shielded(&shield, COIL_NEVER);
    int err = coil__store_release(j->store, sj->rec->id, NULL);
    coil_scope_exit(&shield);
    if (err && err != -EPIPE) {
        atomic_fetch_add(&j->stats.store_errors, 1);
        coil__log("jobs: cannot give back job %s: %s", sj->rec->id, coil_strerror(err));
    }
}

static coil_result giver_main(void *arg) {
    sched_job *sj = arg;
    release_held(sj->jobs, sj);
    return coil_ok(NULL);
}

/* A job cancelled while it waits in `ready` is given back now, not when a
 * worker is free: its cancel must not wait for other jobs to end. Without
 * memory for the task, its runner gives it back instead. */
static void give_back_soon(sched_job *sj) {
    sj->giver = coil_spawn_named("jobs giver", giver_main, sj);
}

/* Gives back a job its runner took and will not run, and frees it. */
static void give_back(coil_jobs *j, sched_job *sj) {
    if (sj->giver) coil_join(sj->giver, NULL);
    else release_held(j, sj);
    sched_job_free(j, sj);
}

/* Runs one job in the pool and hands its outcome on. Suspends. */
static void run_one(coil_jobs *j, sched_job *sj) {
    if (sj->cancel || j->sched.stopping) { /* still queued in the store, held */
        give_back(j, sj);
        return;
    }
    coil_scope sc;
    coil_scope_enter(&sc, COIL_NEVER);
    sj->scope = &sc;
    sj->starter = coil_spawn_named("jobs starter", starter_main, sj);
    if (!sj->starter) {
        coil_scope_exit(&sc);
        sched_job_free(j, sj); /* still queued and held: a later peek takes it */
        return;
    }
    coil_job_opts opts = {
        .timeout = COIL_MSEC(sj->rec->timeout_ms),
        .on_progress = forward_progress,
        .progress_arg = sj,
        .label = sj->rec->id,
        .attempt = (unsigned)sj->rec->attempts + 1, /* the start counts it */
    };
    coil_job_outcome out;
    atomic_fetch_add(&j->stats.running, 1);
    int err = coil_pool_run(j->pool, sj->rec->kind, sj->rec->payload, sj->rec->payload_len,
                            &opts, &out);
    if (atomic_fetch_sub(&j->stats.running, 1) == 1) coil_event_set(&j->sched.idle);
    if (out.ran) /* an exponential average over about 8 jobs */
        j->sched.avg_run += j->sched.avg_run ? (out.run_ns - j->sched.avg_run) / 8 : out.run_ns;
    sj->scope = NULL;
    coil_scope_exit(&sc);
    if (record_later(j, sj, err, &out) != 0) {
        /* Left as the start made it: requeued at the next start. */
        coil__log("jobs: out of memory recording job %s", sj->rec->id);
        coil_join(sj->starter, NULL);
        coil_job_outcome_free(&out);
        sched_job_free(j, sj);
    }
}

static void run_from(coil_jobs *j, coil_queue *q) {
    for (;;) {
        void *item;
        if (COIL__AT(coil_queue_get(q, &item)) != 0) break; /* closed and drained */
        atomic_fetch_sub(&j->stats.waiting, 1);
        run_one(j, item);
    }
}

static coil_result runner_main(void *arg) {
    coil_jobs *j = arg;
    run_from(j, &j->sched.ready);
    return coil_ok(NULL);
}

static coil_result awaiting_runner_main(void *arg) {
    coil_jobs *j = arg;
    run_from(j, &j->sched.ready_awaiting);
    return coil_ok(NULL);
}

/* ------------------------------------------------------------------ watcher */

static sched_job *find_active(coil__sched *s, const char *id) {
    coil__list *it;
    coil__list_foreach(it, &s->active) {
        sched_job *sj = COIL_CONTAINER_OF(it, sched_job, link);
        if (strcmp(sj->rec->id, id) == 0) return sj;
    }
    return NULL;
}

static void on_changes(const coil__job_event *ev, size_t n, void *arg) {
    coil_jobs *j = arg;
    coil__sched *s = &j->sched;
    for (size_t i = 0; i < n; i++) {
        /* A cancel of a held job flags it, whatever its state. */
        /* So does a job this node lost to another (PostgreSQL's rescue). */
        if (ev[i].cancel_requested || ev[i].state == COIL__JOB_CANCELLED || ev[i].lost) {
            sched_job *sj = find_active(s, ev[i].id);
            if (!sj || sj->cancel) continue;
            sj->cancel = true;
            if (sj->scope) coil_scope_cancel(sj->scope);
            else if (!sj->starter) give_back_soon(sj);
        } else if (ev[i].state == COIL__JOB_QUEUED || ev[i].state == COIL__JOB_FAILED) {
            coil_event_set(&s->wake);
        }
    }
}

/* ------------------------------------------------------------------ life */

int coil__sched_start(coil_jobs *j) {
    coil__sched *s = &j->sched;
    memset(s, 0, sizeof *s);
    coil__list_init(&s->active);
    coil_event_init(&s->wake);
    coil_event_init(&s->recorded);
    coil_event_set(&s->recorded);
    coil_event_init(&s->idle);
    size_t awaiting = coil__job_awaiting_places();
    s->window = j->cfg.pool.workers + awaiting + j->cfg.prefetch;
    snprintf(s->owner, sizeof s->owner, "pid:%d", (int)getpid());
    int err = coil_queue_init(&s->ready, COIL_QUEUE_PRIORITY, s->window);
    if (err) return err;
    err = coil_queue_init(&s->ready_awaiting, COIL_QUEUE_PRIORITY, s->window);
    if (err) {
        coil_queue_destroy(&s->ready);
        return err;
    }
    s->nplain = j->cfg.pool.workers;
    s->nrunners = s->nplain + awaiting;
    s->runners = calloc(s->nrunners, sizeof *s->runners);
    if (!s->runners) goto nomem;
    err = coil__store_watch(j->store, on_changes, j, &s->watcher);
    if (err) goto fail;
    for (size_t i = 0; i < s->nrunners; i++) {
        s->runners[i] = i < s->nplain
                            ? coil_spawn_named("jobs runner", runner_main, j)
                            : coil_spawn_named("jobs awaiting runner", awaiting_runner_main, j);
        if (!s->runners[i]) goto nomem;
    }
    s->claimer = coil_spawn_named("jobs claimer", claimer_main, j);
    if (!s->claimer) goto nomem;
    return 0;
nomem:
    err = -ENOMEM;
fail:
    coil_queue_close(&s->ready);
    coil_queue_close(&s->ready_awaiting);
    for (size_t i = 0; s->runners && i < s->nrunners; i++)
        if (s->runners[i]) coil_join(s->runners[i], NULL);
    if (s->watcher) coil__store_unwatch(s->watcher);
    free(s->runners);
    coil_queue_destroy(&s->ready);
    coil_queue_destroy(&s->ready_awaiting);
    return err;
}

/* Whether no job is in a worker. */
static bool pool_idle(coil_jobs *j) { return atomic_load(&j->stats.running) == 0; }

void coil__sched_stop(coil_jobs *j, coil_time grace) {
    coil__sched *s = &j->sched;
    if (!s->runners) return; /* stopped already */
    /* A cancelled stop still stops, and waits rather than spins: every
     * wait below is shielded, and the grace is a deadline of its own. */
    coil_scope shield;
    coil_scope_enter_shielded(&shield, COIL_NEVER);
    s->stopping = true;
    coil_cancel(s->claimer);
    coil_join(s->claimer, NULL);
    /* Runners give back what they take from now on (run_one sees
     * `stopping`); jobs in the pool get the grace to finish. */
    coil_queue_close(&s->ready);
    coil_queue_close(&s->ready_awaiting);
    coil_scope in_grace;
    coil_scope_enter(&in_grace, coil_now() + grace);
    while (!pool_idle(j)) {
        coil_event_clear(&s->idle);
        if (!pool_idle(j) && COIL__AT(coil_event_wait(&s->idle)) != 0) break; /* the grace */
    }
    coil_scope_exit(&in_grace);
    s->hard_stop = true;
    coil__list *it;
    coil__list_foreach(it, &s->active) {
        sched_job *sj = COIL_CONTAINER_OF(it, sched_job, link);
        if (sj->scope) coil_scope_cancel(sj->scope);
    }
    for (size_t i = 0; i < s->nrunners; i++) coil_join(s->runners[i], NULL);
    while (s->recording) COIL__AT(coil_event_wait(&s->recorded));
    coil__store_unwatch(s->watcher);
    free(s->runners);
    s->runners = NULL; /* stopped: nothing left to dump */
    coil_queue_destroy(&s->ready);
    coil_queue_destroy(&s->ready_awaiting);
    coil_scope_exit(&shield);
}
