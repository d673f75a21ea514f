/* jobs/store/store_impl.h: what the store's files share.
 *
 * The store is one interface (store.h) over two backends, chosen by
 * coil__store_open()'s `where`: a directory (or "sqlite:DIR") is the
 * embedded SQLite store, a "postgres://" or "postgresql://" URL is
 * PostgreSQL. What is the same for both lives here:
 *
 *   writer.c        the store's life (open, close), the writer thread and its
 *                   queue, group commit, parking callers and waking them,
 *                   progress coalescing, watchers.
 *   calls.c         the calls that build a request and submit it.
 *   job.c, ids.c    the state machine, backoff, validation; job ids.
 *
 * The backends (coil__store_backend below) speak their database's language:
 *
 *   sqlite_*.c      sqlite.h has the map; store_held.c is its fence that keeps
 *                   a cancel from racing a peeked job to a worker.
 *   pg_*.c          pg.h has the map: connections, the schema and its
 *                   migration, the writes, the reads, LISTEN, nodes and leases.
 *
 * A write operation is a coil__store_req on the calling task's stack. Its
 * `op` selects what the writer runs; the backend's exec returns its rc: 0
 * when the operation went through the database normally, whatever its own
 * outcome (`err`: 0, -ENOENT, -EINVAL, ...), or an error that dooms the
 * whole transaction (-ENOSPC, -EIO, ... for every request in it). Exec functions
 * note each change watchers see with coil__store_note_event(), in the order
 * they make them (published only if the transaction commits), and may
 * allocate outputs (claimed jobs) that coil__store_req_discard() frees if
 * the transaction is rolled back after all.
 */
#ifndef COIL_JOBS_STORE_IMPL_H
#define COIL_JOBS_STORE_IMPL_H

#include "jobs/store/store.h"
#include "runtime/internal.h"


/* ------------------------------------------------------------------ requests */

typedef enum coil__store_op {
    /* Control operations: run by the writer outside any transaction. */
    COIL__OP_OPEN,
    COIL__OP_CLOSE,
    COIL__OP_PRAGMA,
    /* Writes: grouped into one transaction with their neighbours. */
    COIL__OP_ENQUEUE,
    COIL__OP_COMPLETE,
    COIL__OP_FAIL,
    COIL__OP_CANCEL,
    COIL__OP_REQUEUE,
    COIL__OP_RELEASE,
    COIL__OP_PEEK,
    COIL__OP_START,
    COIL__OP_NEXT_ID,
    COIL__OP_FLUSH,
} coil__store_op;

/* What COIL__OP_PRAGMA sets. */
enum { COIL__PRAGMA_MAX_PAGES, COIL__PRAGMA_QUERY_ONLY };

typedef struct coil__store_req {
    coil__list link;          /* in the writer's queue, then in its batch */
    coil__wait wait;          /* the caller parks on it */
    coil__xcall done;         /* posted to the caller's loop with the outcome */
    coil_task *task;          /* the caller */
    coil_loop *loop;          /* its loop */
    coil__store *store;       /* the store it was submitted to */
    coil__store_op op;
    bool queued;              /* still in the queue (withdrawable); store lock */
    int err;                  /* outcome: 0 or a negative error */
    union {
        struct {
            const coil__job_spec *spec;   /* borrowed from the caller */
            char id[COIL__JOB_ID_SIZE];   /* the new job's id, made by the caller */
            coil__enqueued *out;
        } enqueue;
        struct {
            const char *id;
            const coil__job_result *res;
            const char *file;             /* result file name, or NULL */
            const char *owner;            /* start it first, leased to owner */
        } complete;
        struct {
            const char *id;
            const coil__job_error *error;
            coil__job_state state;        /* out */
            const char *owner;            /* start it first, leased to owner */
        } fail;
        struct {
            const char *id;
            coil__job_state state;        /* out */
        } cancel;
        struct {
            size_t count;                 /* out */
        } requeue;
        struct {
            const char *id;
            coil__job_state state;        /* out */
        } release;
        struct {
            const uint64_t *skip;         /* seqs to pass over, ascending */
            size_t nskip;
            coil__job **jobs;             /* out: the runnable jobs (caller's array) */
            size_t max;
            size_t max_bytes;             /* payload bytes to stop after; 0: any */
            const coil__peek_limit *limits; /* per-kind limits, or NULL */
            size_t nlimits;
            size_t n;                     /* out */
            int64_t next_run_at;          /* out, when none is runnable */
        } peek;
        struct {
            const char *id;
            const char *owner;
            int attempts;                 /* out: attempts with this one */
        } start;
        struct {
            uint64_t value;               /* out */
        } next_id;
        struct {
            int which;                    /* COIL__PRAGMA_* */
            uint64_t value;
            uint64_t page_count;          /* out: database size before */
        } pragma;
    } u;
} coil__store_req;

/* A progress update waiting for the writer; at most one per job. */
typedef struct coil__progress {
    coil__list link;            /* in store->progress */
    char id[COIL__JOB_ID_SIZE];
    int percent;
    char *message;              /* malloc'd, or NULL */
} coil__progress;

/* One read, as the backend runs it on a pool thread (calls.c makes the
 * hop). The filter of a list has its limit settled (1..COIL__LIST_MAX). */
typedef enum coil__read_kind {
    COIL__READ_GET,
    COIL__READ_LIST,
    COIL__READ_COUNTS,
    COIL__READ_NODES,
} coil__read_kind;

typedef struct coil__store_read {
    coil__read_kind kind;
    const char *id;                 /* GET: a valid id */
    const coil__job_filter *filter; /* LIST */
    coil__job *job;                 /* out: GET */
    coil__job_list list;            /* out: LIST */
    uint64_t *counts;               /* out: COUNTS, COIL__JOB_NSTATES of them */
    char *nodes;                    /* out: NODES, JSON (malloc'd) */
} coil__store_read;

enum { COIL__LIST_DEFAULT = 50, COIL__LIST_MAX = 1000 };

/* A backend: where the requests go. Each function runs where its comment
 * says; "rc" is the backend's own result code, 0 for success, that its
 * `error` maps to a negative errno. */
typedef struct coil__store_backend {
    const char *name;
    /* The opening task, before the writer starts: reads `where` (a
     * directory, a URL) into s->impl. Returns 0 or a negative errno. */
    int (*create)(coil__store *s, const char *where);
    /* After the writer has stopped: frees s->impl. */
    void (*destroy)(coil__store *s);
    /* Writer thread: connect, schema; and the end. open returns 0 or a
     * negative errno, with everything undone. */
    int (*open)(coil__store *s);
    void (*close)(coil__store *s);
    /* The caller's thread, after create and instead of open: makes or
     * upgrades the schema and lets go of the database again. *from gets
     * the version found (0: none), *to this build's. Returns 0 or a
     * negative errno, logged. Blocks. */
    int (*migrate)(coil__store *s, int *from, int *to);
    /* Writer thread: a COIL__OP_PRAGMA request; sets r->err. */
    void (*control)(coil__store *s, coil__store_req *r);
    /* Writer thread: one group transaction. `durable` is false for one of
     * progress alone, which need not wait for its flush. commit sets
     * *changed if the transaction changed anything. */
    int (*begin)(coil__store *s, bool durable);
    int (*exec)(coil__store *s, coil__store_req *r);
    int (*exec_progress)(coil__store *s, const coil__progress *p, bool *changed,
                         coil__job_event *ev);
    int (*commit)(coil__store *s, bool *changed);
    void (*rollback)(coil__store *s);
    /* Writer thread: the negative errno of a failed transaction's rc, and
     * whether it means "full" (then each request is retried alone). */
    int (*error)(coil__store *s, int rc);
    bool (*is_full)(int rc);
    /* A pool thread (it blocks): runs one read with a read connection of
     * its own. Returns 0 or a negative errno (-ENOENT: no such job); on an
     * error the caller frees whatever `op` holds. */
    int (*read)(coil__store *s, coil__store_read *op);
    /* Any thread: where result files live, or NULL if results are inline. */
    const char *(*results_dir)(const coil__store *s);
    /* Any thread: whether the database answers now (NULL: always). */
    bool (*available)(const coil__store *s);
    /* coil__store_poll_interval's answer. */
    coil_time poll_interval;
} coil__store_backend;

extern const coil__store_backend coil__sqlite_backend;
extern const coil__store_backend coil__pg_backend;

struct coil__store {
    const coil__store_backend *be; /* chosen by coil__store_open's `where` */
    void *impl;                 /* the backend's own state */
    coil__store_opts opts;      /* with defaults filled in */
    pthread_t writer;           /* the writer thread */

    pthread_mutex_t lock;       /* guards the fields down to `watchers` */
    pthread_cond_t work;        /* signalled when work arrives for an idle writer */
    coil__list queue;           /* coil__store_req waiting for the writer (FIFO) */
    size_t nqueued;             /* requests in `queue` */
    coil__list progress;        /* coil__progress waiting for the writer */
    bool writer_idle;           /* the writer waits on `work` */
    bool closing;               /* close() was called: refuse new work */
    coil__list watchers;        /* coil__store_watcher */

    /* The writer thread's own. */
    uint64_t rng;               /* backoff jitter */
    coil__job_event *events;    /* a commit's changes, for the watchers */
    size_t nevents, cap_events;

    atomic_size_t reads;        /* reads in progress (must be 0 at close) */

    /* Stats (coil__store_stats), written by the writer. */
    _Atomic uint64_t commits, writes, failed_commits, largest_batch;
    _Atomic uint64_t progress_written, progress_superseded;
};

/* ------------------------------------------------------------------ writer.c */

/* Queues `r` (op and arguments set) and parks the calling task until the
 * writer has its outcome. Returns r->err, -EPERM outside a task, -EPIPE
 * once the store is closing, or the caller's interruption if it came while
 * the request was still queued (then nothing of it was written). An
 * interruption after the writer took it is left pending: the call returns
 * the true outcome. Suspends. */
int coil__store_submit(coil__store *s, coil__store_req *r);

/* Writer thread, inside a transaction: keeps a change for the watchers,
 * published when (and only if) the transaction commits. */
void coil__store_note_event(coil__store *s, const coil__job_event *ev);
/* Writer thread, inside a transaction: an enqueue `r` inserted its job
 * (due at run_at): fills its answer and notes the change. */
void coil__store_note_enqueued(coil__store *s, coil__store_req *r, int64_t run_at);


/* Any thread: hands this commit's changes to every watcher, each on its
 * own loop. `events` is copied. */
void coil__store_publish(coil__store *s, const coil__job_event *events, size_t n);

/* fsync(2) of a directory. Returns 0 or a negative errno. */
int coil__fsync_dir(const char *path);

/* Frees what exec allocated for `r` (peeked jobs), after a rollback. */
void coil__store_req_discard(coil__store_req *r);

/* A peek's per-kind limits (both backends): whether a job of `kind` may be
 * taken, `room` holding what each of r's limits has left; takes the place
 * if so. */
bool coil__peek_limit_take(const coil__store_req *r, unsigned *room, const char *kind);

#endif /* COIL_JOBS_STORE_IMPL_H */
