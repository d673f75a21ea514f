/* jobs/store/writer.c: the store's single writer and its group commit.
 *
 * All writes go through one thread that owns the only write connection, on
 * either backend (store_impl.h). The loops never wait on the database: a write call (enqueue, start, complete, ...)
 * fills a coil__store_req on its own stack, queues it under the store's
 * lock, and parks its task. The rest of the loop goes on.
 *
 *     task (a loop thread)         store->queue         writer thread
 *     --------------------         ------------         -------------
 *     fill req, queue it   --->    req, req, ...  --->  take them ALL
 *     park (xpending++)                                 BEGIN
 *                                                       exec each req
 *                                                       COMMIT (one fsync)
 *     req_done: wake   <------ posted to each caller's loop, after COMMIT
 *
 * Group commit. The writer takes every request queued so far and runs them
 * in ONE transaction, and only after COMMIT returns (the WAL fsync'd, or
 * PostgreSQL's commit flushed) does
 * it post each request's completion node (coil__call_soon_threadsafe_node)
 * back to its caller's loop. While one commit waits for its fsync, the
 * next requests pile up in the queue, and the next commit takes them all:
 * the busier the store, the more writes share each fsync, with no timer
 * and no added latency when it is idle.
 *
 * Failure is all or nothing per transaction. A request's own outcome
 * (-ENOENT, -EINVAL, a duplicate key) does not disturb its neighbours. A
 * storage error (disk full, read-only, I/O error) rolls the whole
 * transaction back and every request in it gets the error: nothing of them
 * remains and none is acknowledged. When the error is a full disk and the
 * transaction held several requests, each is retried alone, so that one
 * oversized write does not fail the small ones that happened to share its
 * commit. The writer itself survives every error, and the next transaction
 * tries again: the store works again as soon as the condition clears.
 *
 * Control requests (open, close, pragmas) run outside transactions, in
 * queue order. Open is the first request the thread ever sees; close is
 * the last (the store refuses new work once it is queued), so everything
 * queued before close is written before the connection closes.
 *
 * Interruption. While a request is still queued, a cancelled caller takes
 * it back out and returns at once: nothing of it is ever written. Once the
 * writer has taken it, the caller keeps waiting and gets the true outcome;
 * its cancellation stays pending for its next suspension point. So a caller
 * that sees success knows the write is durable, and one that sees an error
 * knows nothing was written. Open and close cannot be interrupted.
 *
 * Progress updates are not requests: coil__store_progress() leaves them in
 * store->progress, at most one per job (a newer one replaces it), and the
 * writer applies them all with its next transaction. A transaction of
 * progress alone (or with flushes, which write nothing) is committed with
 * synchronous=NORMAL (synchronous_commit off on PostgreSQL): it costs no
 * fsync, and the next fsync'd commit, or closing the store, makes it
 * durable too (the log is written in order).
 *
 * Watchers get the changes of each commit, posted to their own loop after
 * the commit and before the callers are woken: a task on the watcher's loop
 * that sees its write succeed has had its change delivered already.
 *
 * Lock order: store->lock, then a loop's xlock (posting). Never the reverse.
 */
#include "jobs/store/store_impl.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
    DEFAULT_INLINE_RESULT_MAX = 64 * 1024,
    DEFAULT_MAX_READERS = 4,
    PROGRESS_MESSAGE_MAX = 1024, /* longer progress messages are cut */
};

struct coil__store_watcher {
    coil__list link;          /* in store->watchers (store lock) */
    coil__store *store;       /* NULL once the store is gone */
    coil_loop *loop;          /* where fn runs */
    coil__store_watch_fn fn;  /* the callback and its argument */
    void *arg;
    atomic_int refs;          /* the handle + deliveries in flight */
    bool active;              /* loop thread only: cleared by unwatch */
};

/* One commit's changes on their way to one watcher's loop. */
typedef struct delivery {
    coil__store_watcher *watch;
    size_t n;
    coil__job_event events[];
} delivery;

/* ------------------------------------------------------------------ callers */

/* The caller's loop: the writer is done with the request. */
static void req_done(void *arg) {
    coil__store_req *r = arg;
    atomic_fetch_sub(&r->loop->xpending, 1);
    coil__wake(r->task, 0);
}

/* The caller's loop: its task was cancelled or its deadline expired. */
static bool req_interrupt(coil__wait *w, int err) {
    (void)err;
    coil__store_req *r = COIL_CONTAINER_OF(w, coil__store_req, wait);
    coil__store *s = r->store;
    pthread_mutex_lock(&s->lock);
    bool withdrawn = r->queued;
    if (withdrawn) {
        coil__list_remove(&r->link);
        r->queued = false;
        s->nqueued--;
    }
    pthread_mutex_unlock(&s->lock);
    if (withdrawn) atomic_fetch_sub(&r->loop->xpending, 1);
    return withdrawn; /* otherwise wait for the outcome */
}

static void req_prepare(coil__store *s, coil__store_req *r, coil_task *t, bool interruptible) {
    r->store = s;
    r->task = t;
    r->loop = t->loop;
    r->wait.interrupt = interruptible ? req_interrupt : NULL;
    r->done = (coil__xcall){.fn = req_done, .arg = r};
    r->err = 0;
    coil__list_init(&r->link);
}

/* Store lock held. */
static void req_queue_locked(coil__store *s, coil__store_req *r) {
    coil__list_push_back(&s->queue, &r->link);
    r->queued = true;
    s->nqueued++;
    if (s->writer_idle) pthread_cond_signal(&s->work);
}

/* Parks the caller until the writer posts the outcome (or, if
 * interruptible, the caller withdraws the request). Suspends. */
static int req_park(coil__store_req *r) {
    atomic_fetch_add(&r->loop->xpending, 1);
    int err = coil__park(&r->wait);
    return err ? err : r->err;
}

int coil__store_submit(coil__store *s, coil__store_req *r) {
    coil_task *t = coil__running();
    if (!t) return -EPERM;
    int err = coil__pending_cancel(t);
    if (err) return err;
    req_prepare(s, r, t, true);
    pthread_mutex_lock(&s->lock);
    if (s->closing) {
        pthread_mutex_unlock(&s->lock);
        return -EPIPE;
    }
    req_queue_locked(s, r);
    pthread_mutex_unlock(&s->lock);
    /* No cancellation can arrive between the check above and the park. */
    return req_park(r);
}

/* ------------------------------------------------------------------ watchers */

static void watch_release(coil__store_watcher *w) {
    if (atomic_fetch_sub(&w->refs, 1) == 1) free(w);
}

/* The watcher's loop. */
static void deliver(void *arg) {
    delivery *d = arg;
    coil__store_watcher *w = d->watch;
    if (w->active) w->fn(d->events, d->n, w->arg);
    watch_release(w);
    free(d);
}

void coil__store_publish(coil__store *s, const coil__job_event *events, size_t n) {
    if (!n) return;
    size_t bytes = sizeof(delivery) + n * sizeof(coil__job_event);
    pthread_mutex_lock(&s->lock);
    coil__list *it;
    coil__list_foreach(it, &s->watchers) {
        coil__store_watcher *w = COIL_CONTAINER_OF(it, coil__store_watcher, link);
        delivery *d = malloc(bytes);
        if (!d) {
            coil__log("job store: out of memory: a watcher misses %zu changes", n);
            continue;
        }
        d->watch = w;
        d->n = n;
        memcpy(d->events, events, n * sizeof(coil__job_event));
        atomic_fetch_add(&w->refs, 1);
        if (coil_call_soon_threadsafe(w->loop, deliver, d) != 0) {
            atomic_fetch_sub(&w->refs, 1); /* its loop is gone; the handle remains */
            free(d);
        }
    }
    pthread_mutex_unlock(&s->lock);
}

void coil__store_note_event(coil__store *s, const coil__job_event *ev) {
    if (s->nevents == s->cap_events) {
        size_t cap = s->cap_events ? 2 * s->cap_events : 64;
        coil__job_event *e = realloc(s->events, cap * sizeof *e);
        if (!e) return; /* watchers miss it; the write itself stands */
        s->events = e;
        s->cap_events = cap;
    }
    s->events[s->nevents++] = *ev;
}

void coil__store_note_enqueued(coil__store *s, coil__store_req *r, int64_t run_at) {
    coil__enqueued *out = r->u.enqueue.out;
    memcpy(out->id, r->u.enqueue.id, COIL__JOB_ID_SIZE);
    out->state = COIL__JOB_QUEUED;
    out->duplicate = false;
    coil__job_event ev;
    coil__job_event_init(&ev, out->id, r->u.enqueue.spec->kind, COIL__JOB_QUEUED, 0, run_at);
    coil__store_note_event(s, &ev);
}

int coil__store_watch(coil__store *s, coil__store_watch_fn fn, void *arg,
                      coil__store_watcher **out) {
    coil_loop *loop = coil__tls_loop;
    if (!loop) return -EPERM;
    if (!fn) return -EINVAL;
    coil__store_watcher *w = calloc(1, sizeof *w);
    if (!w) return -ENOMEM;
    w->store = s;
    w->loop = loop;
    w->fn = fn;
    w->arg = arg;
    w->active = true;
    atomic_init(&w->refs, 1);
    pthread_mutex_lock(&s->lock);
    coil__list_push_back(&s->watchers, &w->link);
    pthread_mutex_unlock(&s->lock);
    *out = w;
    return 0;
}

void coil__store_unwatch(coil__store_watcher *w) {
    if (!w) return;
    coil__store *s = w->store;
    if (s) {
        pthread_mutex_lock(&s->lock);
        coil__list_remove(&w->link);
        pthread_mutex_unlock(&s->lock);
    }
    w->active = false; /* deliveries still posted find it inactive */
    watch_release(w);
}

/* ------------------------------------------------------------------ progress */

int coil__store_progress(coil__store *s, const char *id, int percent, const char *message) {
    if (!coil__job_id_valid(id)) return -EINVAL;
    percent = percent < 0 ? 0 : percent > 100 ? 100 : percent;
    char *msg = NULL;
    if (message) {
        msg = strndup(message, PROGRESS_MESSAGE_MAX);
        if (!msg) return -ENOMEM;
    }
    coil__progress *fresh = malloc(sizeof *fresh);
    if (!fresh) {
        free(msg);
        return -ENOMEM;
    }
    pthread_mutex_lock(&s->lock);
    if (s->closing) {
        pthread_mutex_unlock(&s->lock);
        free(fresh);
        free(msg);
        return -EPIPE;
    }
    coil__list *it;
    coil__list_foreach(it, &s->progress) {
        coil__progress *p = COIL_CONTAINER_OF(it, coil__progress, link);
        if (strcmp(p->id, id) != 0) continue;
        /* Superseded before it was written: the newer one takes its place. */
        free(p->message);
        p->message = msg;
        p->percent = percent;
        pthread_mutex_unlock(&s->lock);
        atomic_fetch_add(&s->progress_superseded, 1);
        free(fresh);
        return 0;
    }
    memcpy(fresh->id, id, COIL__JOB_ID_SIZE);
    fresh->percent = percent;
    fresh->message = msg;
    coil__list_push_back(&s->progress, &fresh->link);
    if (s->writer_idle) pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static void progress_free_all(coil__list *progress) {
    coil__list *n;
    while ((n = coil__list_pop_front(progress))) {
        coil__progress *p = COIL_CONTAINER_OF(n, coil__progress, link);
        free(p->message);
        free(p);
    }
}

/* ------------------------------------------------------------------ transactions */

/* Writer thread: hands the outcome back. `r` may be gone after this. */
static void complete(coil__store_req *r) {
    /* The caller's loop cannot close while the caller waits for us. */
    int err = coil__call_soon_threadsafe_node(r->loop, &r->done);
    COIL_ASSERT(err == 0);
}

static void complete_all(coil__list *reqs) {
    coil__list *n;
    while ((n = coil__list_pop_front(reqs))) complete(COIL_CONTAINER_OF(n, coil__store_req, link));
}

static size_t list_len(const coil__list *l) {
    size_t n = 0;
    for (const coil__list *it = l->next; it != l; it = it->next) n++;
    return n;
}

static bool only_flushes(const coil__list *reqs) {
    for (const coil__list *it = reqs->next; it != reqs; it = it->next)
        if (COIL_CONTAINER_OF(it, coil__store_req, link)->op != COIL__OP_FLUSH) return false;
    return true;
}

static void stat_max(_Atomic uint64_t *stat, uint64_t v) {
    if (v > atomic_load(stat)) atomic_store(stat, v); /* one writer */
}

/* Inside the transaction: applies the pending progress updates. */
static int apply_progress(coil__store *s, const coil__list *progress, size_t *written) {
    for (const coil__list *it = progress->next; it != progress; it = it->next) {
        const coil__progress *p = COIL_CONTAINER_OF(it, coil__progress, link);
        bool changed = false;
        coil__job_event ev;
        int rc = s->be->exec_progress(s, p, &changed, &ev);
        if (rc != 0) return rc;
        if (changed) {
            coil__store_note_event(s, &ev);
            (*written)++;
        }
    }
    return 0;
}

/* Inside the transaction: runs every request. */
static int exec_all(coil__store *s, coil__list *reqs) {
    for (coil__list *it = reqs->next; it != reqs; it = it->next) {
        coil__store_req *r = COIL_CONTAINER_OF(it, coil__store_req, link);
        r->err = 0;
        int rc = s->be->exec(s, r);
        if (rc != 0) return rc;
    }
    return 0;
}

static void run_txn(coil__store *s, coil__list *reqs, coil__list *progress);

/* A storage error doomed the transaction of `reqs`. */
static void txn_failed(coil__store *s, coil__list *reqs, int rc) {
    for (coil__list *it = reqs->next; it != reqs; it = it->next)
        coil__store_req_discard(COIL_CONTAINER_OF(it, coil__store_req, link));
    if (s->be->is_full(rc) && list_len(reqs) > 1) {
        /* Each alone: only what does not fit fails. */
        coil__list none, one;
        coil__list_init(&none);
        coil__list *n;
        while ((n = coil__list_pop_front(reqs))) {
            coil__list_init(&one);
            coil__list_push_back(&one, n);
            run_txn(s, &one, &none);
        }
        return;
    }
    int err = s->be->error(s, rc);
    for (coil__list *it = reqs->next; it != reqs; it = it->next)
        COIL_CONTAINER_OF(it, coil__store_req, link)->err = err;
    complete_all(reqs);
}

/* Runs `reqs` (writes) and `progress` in one transaction and completes the
 * requests. Consumes both lists. */
static void run_txn(coil__store *s, coil__list *reqs, coil__list *progress) {
    /* Flushes write nothing of their own: with progress alone, no fsync. */
    bool progress_only = only_flushes(reqs);
    if (progress_only && coil__list_empty(progress)) {
        complete_all(reqs); /* everything before them is written already */
        return;
    }
    size_t nreqs = list_len(reqs), written = 0;
    bool changed = false;
    s->nevents = 0;
    int rc = s->be->begin(s, !progress_only);
    if (rc == 0) rc = apply_progress(s, progress, &written);
    if (rc == 0) rc = exec_all(s, reqs);
    if (rc == 0) rc = s->be->commit(s, &changed);
    progress_free_all(progress);
    if (rc != 0) {
        s->be->rollback(s);
        s->nevents = 0; /* none of it happened */
        atomic_fetch_add(&s->failed_commits, 1);
        txn_failed(s, reqs, rc);
        return;
    }
    /* Durable from here on. */
    if (!progress_only && changed) {
        atomic_fetch_add(&s->commits, 1);
        atomic_fetch_add(&s->writes, nreqs);
        stat_max(&s->largest_batch, nreqs);
    }
    atomic_fetch_add(&s->progress_written, written);
    coil__store_publish(s, s->events, s->nevents);
    complete_all(reqs);
}

/* ------------------------------------------------------------------ the writer */

/* Runs a control request and completes it. Returns whether the writer must
 * stop (after close, or an open that failed). */
static bool run_control(coil__store *s, coil__store_req *r) {
    bool stop = false;
    switch (r->op) {
    case COIL__OP_OPEN:
        r->err = s->be->open(s);
        stop = r->err != 0;
        break;
    case COIL__OP_CLOSE:
        s->be->close(s);
        stop = true;
        break;
    default:
        s->be->control(s, r);
        break;
    }
    complete(r);
    return stop;
}

static bool is_control(const coil__store_req *r) {
    return r->op == COIL__OP_OPEN || r->op == COIL__OP_CLOSE || r->op == COIL__OP_PRAGMA;
}

/* Runs one batch taken from the queue, in order: each run of writes in one
 * transaction, control requests between them. Returns whether to stop. */
static bool run_batch(coil__store *s, coil__list *batch, coil__list *progress) {
    while (!coil__list_empty(batch)) {
        coil__store_req *r = COIL_CONTAINER_OF(batch->next, coil__store_req, link);
        if (is_control(r)) {
            if (r->op != COIL__OP_OPEN) {
                coil__list none; /* progress first: close must not lose it */
                coil__list_init(&none);
                run_txn(s, &none, progress);
            }
            coil__list_remove(&r->link);
            if (run_control(s, r)) {
                /* Close is the last request; a failed open the only one. */
                COIL_ASSERT(coil__list_empty(batch));
                return true;
            }
            continue;
        }
        coil__list txn;
        coil__list_init(&txn);
        while (!coil__list_empty(batch)) {
            coil__list *n = batch->next;
            if (is_control(COIL_CONTAINER_OF(n, coil__store_req, link))) break;
            coil__list_remove(n);
            coil__list_push_back(&txn, n);
        }
        run_txn(s, &txn, progress);
    }
    coil__list none;
    coil__list_init(&none);
    run_txn(s, &none, progress);
    return false;
}

/* Moves every node of `from` to `to` (empty). */
static void list_take_all(coil__list *from, coil__list *to) {
    coil__list_init(to);
    if (coil__list_empty(from)) return;
    to->next = from->next;
    to->prev = from->prev;
    to->next->prev = to;
    to->prev->next = to;
    coil__list_init(from);
}

static void *writer_main(void *arg) {
    coil__store *s = arg;
    coil__list batch, progress;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (coil__list_empty(&s->queue) && coil__list_empty(&s->progress)) {
            s->writer_idle = true;
            pthread_cond_wait(&s->work, &s->lock);
            s->writer_idle = false;
        }
        list_take_all(&s->queue, &batch);
        list_take_all(&s->progress, &progress);
        s->nqueued = 0;
        for (coil__list *it = batch.next; it != &batch; it = it->next)
            COIL_CONTAINER_OF(it, coil__store_req, link)->queued = false;
        pthread_mutex_unlock(&s->lock);
        if (run_batch(s, &batch, &progress)) return NULL;
        pthread_mutex_lock(&s->lock);
    }
}

/* ------------------------------------------------------------------ open, close */

static void store_free(coil__store *s) {
    if (s->be) s->be->destroy(s);
    pthread_cond_destroy(&s->work);
    pthread_mutex_destroy(&s->lock);
    free(s->events);
    free(s);
}

/* Which backend `where` names, and what it says of the place: a
 * "postgres://" or "postgresql://" URL (passed whole), "sqlite:DIR", or a
 * plain directory. */
bool coil__store_where_is_postgres(const char *where) {
    return strncmp(where, "postgres://", 11) == 0 || strncmp(where, "postgresql://", 13) == 0;
}

static const coil__store_backend *backend_for(const char *where, const char **place) {
    if (coil__store_where_is_postgres(where)) {
        *place = where;
        return &coil__pg_backend;
    }
    *place = strncmp(where, "sqlite:", 7) == 0 ? where + 7 : where;
    return &coil__sqlite_backend;
}

static int store_new(const char *where, const coil__store_opts *opts, coil__store **out) {
    coil__store *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    if (opts) s->opts = *opts;
    if (!s->opts.inline_result_max) s->opts.inline_result_max = DEFAULT_INLINE_RESULT_MAX;
    if (!s->opts.max_readers) s->opts.max_readers = DEFAULT_MAX_READERS;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->work, NULL);
    coil__list_init(&s->queue);
    coil__list_init(&s->progress);
    coil__list_init(&s->watchers);
    const char *place;
    const coil__store_backend *be = backend_for(where, &place);
    if (!*place) {
        store_free(s);
        return -EINVAL;
    }
    s->be = be; /* so that store_free undoes what create did */
    int err = be->create(s, place);
    if (err) {
        store_free(s);
        return err;
    }
    *out = s;
    return 0;
}

/* Starts the writer with every signal blocked, so that signals reach the
 * loops. Returns 0 or a negative error. */
static int writer_start(coil__store *s) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = pthread_create(&s->writer, NULL, writer_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) return -err;
    pthread_setname_np(s->writer, "coil-store");
    return 0;
}

int coil__store_open(const char *where, const coil__store_opts *opts, coil__store **out) {
    coil_task *t = coil__running();
    if (!t) return -EPERM;
    if (!where || !*where || !out) return -EINVAL;
    int err = coil__pending_cancel(t);
    if (err) return err;
    coil__store *s;
    err = store_new(where, opts, &s);
    if (err) return err;
    /* The open request is queued before the writer exists: it is the first
     * thing the writer does, on its own thread (mkdir, flock, schema). */
    coil__store_req r = {.op = COIL__OP_OPEN};
    req_prepare(s, &r, t, false);
    pthread_mutex_lock(&s->lock);
    req_queue_locked(s, &r);
    pthread_mutex_unlock(&s->lock);
    err = writer_start(s);
    if (err) {
        store_free(s);
        return err;
    }
    err = req_park(&r);
    if (err) {
        pthread_join(s->writer, NULL); /* it stopped after the failed open */
        store_free(s);
        return err;
    }
    *out = s;
    return 0;
}

int coil__store_migrate(const char *where, int *from, int *to) {
    if (!where || !*where) return -EINVAL;
    coil__store *s;
    int err = store_new(where, NULL, &s);
    if (err) return err;
    err = s->be->migrate(s, from, to);
    store_free(s);
    return err;
}

int coil__store_close(coil__store *s) {
    if (!s) return 0;
    coil_task *t = coil__running();
    if (!t) return -EPERM;
    COIL_ASSERT(atomic_load(&s->reads) == 0); /* no read may outlive the store */
    coil__store_req r = {.op = COIL__OP_CLOSE};
    req_prepare(s, &r, t, false);
    pthread_mutex_lock(&s->lock);
    COIL_ASSERT(!s->closing);
    s->closing = true;
    req_queue_locked(s, &r);
    pthread_mutex_unlock(&s->lock);
    int err = req_park(&r);
    pthread_join(s->writer, NULL); /* it returns right after posting */
    /* Watchers left registered outlive the store; unwatch only frees them. */
    coil__list *n;
    while ((n = coil__list_pop_front(&s->watchers)))
        COIL_CONTAINER_OF(n, coil__store_watcher, link)->store = NULL;
    store_free(s);
    return err;
}

const char *coil__store_backend_name(const coil__store *s) { return s->be->name; }

bool coil__store_available(const coil__store *s) {
    return !s->be->available || s->be->available(s);
}

coil_time coil__store_poll_interval(const coil__store *s) { return s->be->poll_interval; }

void coil__store_get_stats(coil__store *s, coil__store_stats *out) {
    out->commits = atomic_load(&s->commits);
    out->writes = atomic_load(&s->writes);
    out->failed_commits = atomic_load(&s->failed_commits);
    out->largest_batch = atomic_load(&s->largest_batch);
    out->progress_written = atomic_load(&s->progress_written);
    out->progress_superseded = atomic_load(&s->progress_superseded);
    pthread_mutex_lock(&s->lock);
    out->queued = s->nqueued;
    pthread_mutex_unlock(&s->lock);
}

void coil__store_req_discard(coil__store_req *r) {
    if (r->op != COIL__OP_PEEK) return;
    for (size_t i = 0; i < r->u.peek.n; i++) {
        coil__job_free(r->u.peek.jobs[i]);
        r->u.peek.jobs[i] = NULL;
    }
    r->u.peek.n = 0;
}
