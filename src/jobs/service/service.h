/* jobs/service/service.h: the job system as one object (internal).
 *
 *   service.c    coil_jobs_start/stop: the loop thread, the store, recovery
 *                of jobs left running, the pool, the scheduler's life;
 *                enqueue and cancel for tasks of any loop.
 *   scheduler.c  the scheduler on the jobs loop: claims runnable jobs into a
 *                priority queue, runners hand them to the pool one per
 *                worker, recorders write each outcome; a store watcher wakes
 *                it on new jobs and stops cancelled ones.
 *   follow.c     followers of one job's changes, sharing one store watcher
 *                per loop (event streams, coil_jobs_wait).
 *   dump.c       the stall dump (coil_jobs_dump).
 *   ../api/      the HTTP routes (any loop): api.c the routes, api_doc.c the
 *                JSON documents, api_events.c the Server-Sent Events stream.
 *
 * The other folders of src/jobs/: store/ (the durable store: its interface
 * store.h, the SQLite backend and its writer) and pool/ (the supervised
 * worker processes and their frames).
 *
 * Threads. The scheduler, the pool and everything in `sched` belong to the
 * jobs loop. The store is shared: HTTP handlers on the server's loops call
 * it directly (it takes callers from any loop). Counters in `stats` are
 * atomics that any thread reads.
 *
 * The life of a claimed job on the jobs loop:
 *
 *   claimer  --peek-->  ready (priority queue)  --runner-->  pool
 *                                                  |          |
 *                                        start (a task)       |
 *                                                  |          |
 *   store  <--complete/fail--  recorder task  <----+- outcome-+
 *
 * A job is `queued` in the store until a runner takes it, and `running`
 * from its start to its record: the lease is this process's, and a restart
 * requeues it (at-least-once).
 */
#ifndef COIL_JOBS_SERVICE_H
#define COIL_JOBS_SERVICE_H

#include <stdatomic.h>

#include "coil/http.h"
#include "coil/jobs.h"
#include "jobs/store/store.h"
#include "runtime/internal.h"

/* One job the scheduler holds, from peek to record. */
typedef struct sched_job {
    coil__list link;
    coil_jobs *jobs;          /* the service it belongs to */          /* in sched.active */
    coil__job *rec;           /* the record as peeked (owned) */
    coil_task *starter;       /* the task writing its start, joined by its
                                 recorder */
    coil_scope *scope;        /* its runner's scope while in the pool, else NULL */
    coil_task *giver;         /* gives it back at once, cancelled while it
                                 waits in `ready`; joined by its runner */
    bool cancel;              /* cancelled: skip it, or stop it */
} sched_job;

/* The scheduler's state; jobs loop only. */
typedef struct coil__sched {
    coil_queue ready;         /* peeked sched_jobs of plain kinds, priority order */
    coil_queue ready_awaiting; /* ... of awaiting kinds, which share workers */
    coil__list active;        /* every sched_job alive (peeked, not recorded) */
    size_t nactive;
    size_t window;            /* most jobs ready or in a worker */
    coil_time avg_run;        /* recent jobs' time in a worker (EWMA); 0: none yet */
    size_t held_bytes;        /* their payloads' bytes (at most about
                                 cfg.prefetch_bytes) */
    coil_event wake;          /* new work may be claimable, or room freed */
    coil__store_watcher *watcher;
    coil_task *claimer;       /* the claim loop */
    coil_task **runners;      /* one per worker for `ready`, then one per place
                                 the awaiting kinds have for `ready_awaiting` */
    size_t nrunners, nplain;
    size_t recording;         /* recorder tasks alive */
    coil_event recorded;      /* set when recording drops to 0 */
    coil_event idle;          /* set when no job is in a worker any more */
    bool stopping;            /* stop claiming; runners drain then exit */
    bool hard_stop;           /* stop jobs now; leave them running in the store */
    char owner[64];           /* lease owner written with each claim */
} coil__sched;

struct coil_jobs {
    coil_jobs_config cfg;     /* copy; data_dir points at dir */
    char dir[4096];               /* where the store is: a directory or a URL */
    bool pg;                      /* ... on PostgreSQL */
    coil_loop *loop;          /* the jobs loop (its own thread) */
    coil__store *store;
    coil_pool *pool;
    coil__sched sched;
    struct {
        _Atomic uint64_t claimed, succeeded, failed, crashed, cancelled, requeued_at_start,
            store_errors, enqueued;
        _Atomic size_t waiting, running;
    } stats;
};

/* ------------------------------------------------------------------ service.c */

/* coil_jobs_enqueue with the store's full answer (the state, for a
 * duplicate). Suspends. */
int coil__jobs_enqueue(coil_jobs *j, const char *kind, const void *payload, size_t len,
                       const coil_jobs_enqueue_opts *opts, coil__enqueued *out);

/* ------------------------------------------------------------------ scheduler.c */

/* Starts the scheduler on the jobs loop. Returns 0 or -ENOMEM. Jobs loop
 * task. Does not suspend. */
int coil__sched_start(coil_jobs *j);
/* Stops taking jobs, waits up to `grace` for running jobs, stops the rest
 * (given back to the queue), waits for every record, and frees the
 * scheduler. Jobs loop task. Suspends. */
void coil__sched_stop(coil_jobs *j, coil_time grace);

/* ------------------------------------------------------------------ dump.c */

/* coil_jobs_dump's report as a string (malloc'd, the caller frees it; NULL
 * on ENOMEM). Same threads and suspension as coil_jobs_dump. */
char *coil__jobs_dump_text(coil_jobs *j);

/* ------------------------------------------------------------------ api_doc.c */

/* The status document of `job` (a json_t *, new reference; NULL on ENOMEM). */
void *coil__job_status_doc(const coil__job *job);
/* Adds "followups" to a status document: job's follow-up specs, each with
 * its job from `children` (job's follow-ups as listed; may be NULL). */
int coil__job_status_add_followups(void *status_doc, const coil__job *job,
                                   const coil__job_list *children);
/* Maps a store error to an HTTP status: 503 for storage failures (full,
 * read-only, I/O), 404 for -ENOENT, 400 for -EINVAL, else 500. */
int coil__jobs_http_status(int err);

/* ------------------------------------------------------------------ follow.c */

/* One follower of one job's changes. The caller owns it and fills `id` and
 * `on_event` (called on the follower's loop for each change of the job, as
 * a plain callback: it must not suspend, and must not unfollow). */
typedef struct coil__job_follower {
    coil__list link;              /* in its hub (follow.c) */
    char id[COIL__JOB_ID_SIZE];
    void (*on_event)(struct coil__job_follower *f, const coil__job_event *ev);
} coil__job_follower;

/* Starts following, on the calling thread's loop. Returns 0, -ENOMEM or
 * -EPERM (no loop). Does not suspend. */
int coil__jobs_follow(coil_jobs *j, coil__job_follower *f);
/* Stops following. Same thread. Does not suspend. */
void coil__jobs_unfollow(coil_jobs *j, coil__job_follower *f);

/* ------------------------------------------------------------------ api_events.c */

/* GET /jobs/{id}/events; `arg` is the coil_jobs. Suspends. */
int coil__jobs_events(coil_http_request *req, coil_http_response *res, void *arg);

#endif /* COIL_JOBS_SERVICE_H */
