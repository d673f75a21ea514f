/* jobs/pool/pool.h: the supervisor side of the process pool (internal).
 *
 *   pool.c       start, stop, stats, configuration.
 *   pool_slot.c  one worker slot: a task that spawns its worker process,
 *                reads its frames, sees it die, reaps it and replaces it.
 *   pool_proc.c  the process itself: posix_spawn, pidfd, waitid, signals.
 *   pool_run.c   coil_pool_run: the queue, dispatch, the submitter's wait,
 *                timeouts and the stop sequence of a job.
 *
 * Who does what. Each slot has one task (slot_main) that owns the worker
 * process and the stream: it alone reads frames and closes the stream. A
 * job is a pool_job on its submitter's stack, and the submitter writes the
 * job's own frames (RUN, then CANCEL if it must stop), so the slot task
 * never blocks on a write. Libuv callbacks (the exit callback, timers)
 * only record facts, send signals and wake tasks.
 *
 *   submitter               pool                  slot task       worker
 *   ---------               ----                  ---------       ------
 *   run: idle slot?  -----> assign (or queue)
 *   write RUN  ----------------------------------------------->   handler
 *   park                                          read PROGRESS <-- progress
 *                                                 on_progress()
 *                                                 read RESULT  <--- return
 *   wake  <---------------- finish, dispatch <--- job done
 *
 * A worker's death is seen through its pidfd, which becomes readable when
 * it exits: the callback reaps it, records the status and shuts the read
 * side of the supervisor's socket down, so the
 * slot task reads what the worker sent before it died and then the end of
 * the stream. Then it reaps: the job it was running, if any, fails with
 * the death's details, and a job assigned but never sent goes back to the
 * head of the queue.
 *
 * Stopping a running job (its timeout, or its caller's cancellation): the
 * submitter writes a CANCEL frame and the slot's escalation timer takes
 * over: after cancel_grace SIGTERM, after kill_grace SIGKILL. A RESULT on
 * the way stops the timer, and the worker is kept.
 */
#ifndef COIL_JOBS_POOL_H
#define COIL_JOBS_POOL_H

#include "coil/io.h"
#include "coil/jobs.h"
#include "jobs/pool/frame.h"
#include "runtime/internal.h"

typedef struct pool_slot pool_slot;
typedef struct pool_job pool_job;

/* A job's place in its life. */
typedef enum job_state {
    JOB_QUEUED,  /* in pool->queue */
    JOB_RUNNING, /* assigned to a slot (its RUN frame may not be out yet) */
    JOB_DONE     /* the outcome is written */
} job_state;

/* One coil_pool_run() call. Lives on the submitter's stack, which stays put
 * until the job is DONE and out of every list and timer. */
struct pool_job {
    coil__wait wait;          /* the submitter parks on this */
    coil__list link;          /* in pool->queue while QUEUED */
    coil__list slot_link;     /* in slot->jobs while RUNNING */
    coil_pool *pool;
    uint64_t id;              /* the pool's number for it, in every frame */
    const char *kind;         /* borrowed from the caller, like payload */
    size_t kind_len;
    const void *payload;
    size_t len;
    unsigned awaiting;        /* the kind awaits: this many share a worker */
    coil_job_opts opts;       /* the caller's options (copy) */
    job_state state;
    pool_slot *slot;          /* while RUNNING */
    coil_task *task;          /* the submitter */
    bool parked;              /* the submitter is parked on `wait` */
    bool sent;                /* the RUN frame's write has begun */
    bool cancel_sent;         /* the stop sequence has begun */
    int stop;                 /* 0, or why it must stop: -ETIMEDOUT, -ECANCELED */
    coil__timer timeout;      /* opts.timeout, armed when RUN is sent */
    coil_job_outcome *out;    /* where the outcome goes */
    coil_time submitted;      /* coil_now() at submission */
    coil_time started;        /* ... at dispatch */
};

/* A slot's place in its life. */
typedef enum slot_state {
    SLOT_DOWN,     /* no worker process */
    SLOT_STARTING, /* spawned, waiting for HELLO */
    SLOT_IDLE,     /* ready, no job */
    SLOT_BUSY,     /* running `jobs` */
    SLOT_RETIRING  /* finished a job after the pool signalled it: killed,
                      takes no job, replaced once it is reaped */
} slot_state;

/* One worker process, and the task that supervises it. */
struct pool_slot {
    coil_pool *pool;
    unsigned index;           /* 0 .. workers-1, for names */
    coil_task *task;          /* slot_main, joined by coil_pool_stop */
    slot_state state;
    coil__list jobs;          /* RUNNING jobs given to it: one plain job, or
                                 up to each awaiting kind's concurrency */
    size_t njobs;             /* their number */
    bool awaiting;            /* its worker was sent an awaiting kind's job,
                                 so it runs a loop: it takes no plain job */
    int pid;                  /* the worker's pid, 0 if none */
    int pidfd;                /* its pidfd, -1 if none */
    uv_poll_t exit_poll;      /* readable pidfd: the worker exited */
    bool poll_open;           /* exit_poll needs uv_close */
    bool exited;              /* reaped: exit_status/term_signal hold */
    int64_t exit_status;      /* its exit status if it exited, else 0 */
    int term_signal;          /* the signal that killed it, 0 if none */
    coil_stream *stream;      /* supervisor end of the socketpair */
    int fd;                   /* its descriptor (owned by stream), -1 */
    coil_task *reaper;        /* the slot task, parked waiting for the exit
                                 or for exit_poll's close */
    int killed_with;          /* the last signal the pool sent, 0 if none */
    int fault;                /* why the slot task gave up on the worker:
                                 -EPROTO (bad frames), -ECANCELED (the task
                                 was cancelled), another read error; 0 */
    int stage;                /* stop sequence: 0 none, 1 cancel sent,
                                 2 SIGTERM sent, 3 SIGKILL sent */
    coil__timer escalate;     /* fires the next stage */
    bool shut;                /* the socket's write side was shut (stop) */
    coil_time spawned_at;     /* when the worker was spawned */
    unsigned quick_failures;  /* deaths in a row before doing any work */
    bool tried;               /* the first start attempt is over */
    int start_err;            /* its error, 0 if it started */
    uint64_t jobs_done;       /* jobs finished by this worker process */
};

struct coil_pool {
    coil_loop *loop;          /* the pool's loop */
    coil_pool_config cfg;     /* with defaults filled in */
    pool_slot *slots;         /* cfg.workers of them (malloc'd) */
    coil__list queue;         /* QUEUED jobs, FIFO */
    size_t queued;            /* length of queue */
    uint64_t next_id;         /* last job id given */
    bool stopping;            /* coil_pool_stop() was called */
    coil_event stopped;       /* set by coil_pool_stop(): ends backoffs */
    coil_event changed;       /* set when a job ends or a slot's first start
                                 is over; start and stop wait on it */
    char exe[4096];           /* the executable workers exec (argv[0]) */
    char nice_arg[16];        /* argv[3] of workers */
    char ppid_arg[16];        /* argv[4] */
    char oom_events[4096];    /* the cgroup's memory.events, "" if unknown */
    uint64_t oom_kills;       /* its oom_kill count when last read */
    coil_pool_stats stats;    /* counters (alive/busy/queued computed) */
};

/* A slot state's name: "down", "starting", "idle", "busy", "retiring". */
const char *coil__slot_state_name(slot_state st);
/* The slot's job with frame id `id`, or (id 0) its first; NULL if none. */
pool_job *coil__slot_job(const pool_slot *s, uint64_t id);

/* ------------------------------------------------------------------ pool_slot.c */

/* Spawns slot `s`'s worker and waits for its HELLO. Returns 0 (the slot is
 * IDLE), or an error after which the slot is DOWN again (the process, if
 * any, reaped). Suspends. */
int coil__slot_start(pool_slot *s);
/* The slot's task: serves, reaps and respawns until the pool stops. */
coil_result coil__slot_main(void *arg);
/* Sends `sig` to the slot's worker unless it has exited. */
void coil__slot_kill(pool_slot *s, int sig);
/* The escalation timer's callback (set up by the pool). */
void coil__slot_escalate_fire(coil__timer *t);
/* Begins the stop sequence of the slot's job after its CANCEL frame went
 * out (or at once with SIGTERM when cancel_grace < 0). */
void coil__slot_escalate(pool_slot *s);
/* Shuts the write side of an idle slot's socket down, so that its worker
 * exits. Suspends. */
void coil__slot_shut(pool_slot *s);

/* ------------------------------------------------------------------ pool_proc.c */

/* Spawns a worker of `p` whose end of the socketpair is `child_fd` (the
 * caller keeps it), and opens its pidfd. Returns 0 with *pid and *pidfd
 * set, or a negative errno (no process is left then). Any thread. */
int coil__proc_spawn(const coil_pool *p, int child_fd, int *pid, int *pidfd);
/* Reaps the child of `pidfd` if it has exited (`wait`: waits until it
 * has). Returns 1 with its status set, 0 if it runs on, or -errno
 * (-ECHILD: someone else reaped it). */
int coil__proc_reap(int pidfd, bool wait, int64_t *exit_status, int *term_signal);
/* Sends `sig` to the process of `pidfd`. Returns 0 or -errno (-ESRCH once
 * it was reaped). Never reaches another process. */
int coil__proc_signal(int pidfd, int sig);

/* ------------------------------------------------------------------ pool_run.c */

/* Hands queued jobs to idle slots. Does not suspend. */
void coil__pool_dispatch(coil_pool *p);
/* Finishes `job`, one of slot `s`'s, with a RESULT frame, decoded in `res`
 * from the payload `buf` (malloc'd, one byte longer than the payload),
 * which it takes. Does not suspend. */
void coil__job_finish_result(pool_slot *s, pool_job *job, const coil__frame_result *res,
                             uint8_t *buf);
/* Finishes the jobs of a slot whose worker died (or requeues those whose
 * RUN never went out). Does not suspend. */
void coil__job_finish_death(pool_slot *s, bool oom_kill);
/* Forwards a PROGRESS frame about job `id` to the job's callback. */
void coil__job_progress(pool_slot *s, uint64_t id, int percent, const char *message);
/* Makes a job stop with `reason` (coil_pool_stop's cancel mode). */
void coil__job_request_stop(pool_job *job, int reason);
/* Ends a QUEUED job with `err`, unqueued, and wakes its submitter. */
void coil__job_drop(pool_job *job, int err);

#endif /* COIL_JOBS_POOL_H */
