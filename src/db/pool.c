/* db/pool.c: coil_db's connection threads and how requests reach them.
 *
 * Each connection has a thread. A thread takes, in order: a request from
 * its own mailbox (its connection is held by a query or a transaction);
 * else, if its connection is not held, one from the queue of its kind (the
 * writer's, or the readers' shared one). It runs it without the lock and
 * posts the outcome to the waiting task's loop. A thread with nothing to
 * do waits on a condition variable of its own, and queueing a request
 * wakes the one thread that can take it: the held connection it is for,
 * or the writer.
 *
 * Readers are woken as the load needs them, not one per request. A reader
 * is "ready" when it is awake and free, or runs a request that began less
 * than HELP_AFTER ago (it will look at the queue in a moment). A read
 * wakes an idle reader only when no reader is ready, or when the head of
 * the queue has waited HELP_AFTER: the ready ones are not keeping up.
 * Waking one reader per request made every lookup two context switches,
 * and on two cores four readers took turns at one queue: a titles lookup
 * spent most of its CPU in the kernel, and one reader served more lookups
 * than four. A request that starts quickly and then runs long would hold
 * up the queue behind it, so a reader's thread checks in while it runs
 * (SQLite's progress handler; libpq's wait for a result) and, once its
 * request has run HELP_AFTER, wakes a reader for the queue if it needs
 * one (coil__db_running_long).
 *
 * A task's wait is interruptible for queries and statements: withdrawn if
 * still queued (it never ran), or, if running, sqlite3_interrupt() on its
 * connection and a flag the busy and progress handlers check; the task
 * then waits for the thread to finish with it, which is quick, and gets
 * the interruption.
 * sqlite3_interrupt() is called under db->lock while the request is seen
 * running, and a thread marks a request done under the same lock before it
 * takes the next, so an interrupt never reaches another request's
 * statement (SQLite ignores one that arrives when nothing runs).
 */
#include "db/db_impl.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

enum { DEFAULT_READERS = 4, DEFAULT_CACHE = 64, MAX_READERS = 64 };
#define DEFAULT_BUSY_TIMEOUT COIL_SEC(5)
#define HELP_AFTER COIL_USEC(500)

/* ------------------------------------------------------------------ the caller's side */

/* The caller's loop: the thread is done with the request. */
static void req_done(void *arg) {
    db_req *r = arg;
    atomic_fetch_sub(&r->loop->xpending, 1);
    coil__wake(r->task, 0);
}

/* The caller's loop: its task was cancelled or its deadline passed. */
static bool req_interrupt(coil__wait *w, int err) {
    db_req *r = COIL_CONTAINER_OF(w, db_req, wait);
    coil_db *db = r->db;
    pthread_mutex_lock(&db->lock);
    bool withdrawn = r->state == DB_QUEUED;
    if (withdrawn) {
        coil__list_remove(&r->link);
        r->state = DB_DONE;
    } else if (r->state == DB_RUNNING && !r->interrupted) {
        r->interrupted = err;
        atomic_store(&r->ran_on->interrupt, true);
        if (db->pg) coil__db_pg_interrupt(r->ran_on);
        else sqlite3_interrupt(r->ran_on->h);
    }
    pthread_mutex_unlock(&db->lock);
    if (withdrawn) atomic_fetch_sub(&r->loop->xpending, 1);
    return withdrawn; /* else the outcome comes soon: wait for it */
}

/* ------------------------------------------------------------------ who wakes */

/* The first reader's index: the writer, if any, is conns[0]. */
static size_t first_reader(const coil_db *db) { return db->cfg.read_only ? 0 : 1; }

/* db->lock held: a reader will take from the readers' queue soon, without
 * a wake. */
static bool reader_ready_locked(const coil_db *db, coil_time now) {
    for (size_t i = first_reader(db); i < db->nconns; i++) {
        const db_conn *k = &db->conns[i];
        if (k->idle || k->held) continue;
        if (!k->running || now - k->running_since < HELP_AFTER) return true;
    }
    return false;
}

/* db->lock held: the readers' queue needs a thread that is not on it now. */
static bool readq_needs_help_locked(const coil_db *db, coil_time now) {
    if (coil__list_empty(&db->readq)) return false;
    const db_req *head = COIL_CONTAINER_OF(db->readq.next, db_req, link);
    return now - head->queued_at >= HELP_AFTER || !reader_ready_locked(db, now);
}

/* db->lock held: wakes `c` if it sleeps. A thread woken stops counting as
 * idle at once, so that the next wake picks another. */
static void wake_conn_locked(db_conn *c) {
    if (!c || !c->idle) return;
    c->idle = false;
    pthread_cond_signal(&c->wake);
}

/* db->lock held: wakes an idle reader if the readers' queue needs one. */
static void help_readq_locked(coil_db *db, coil_time now) {
    if (!readq_needs_help_locked(db, now)) return;
    for (size_t i = first_reader(db); i < db->nconns; i++) {
        db_conn *k = &db->conns[i];
        if (k->idle && !k->held) {
            wake_conn_locked(k);
            return;
        }
    }
}

/* db->lock held: wakes the thread that will take `r`, if one must wake. */
static void wake_for_locked(coil_db *db, const db_req *r) {
    if (r->target) wake_conn_locked(r->target);
    else if (r->writer) wake_conn_locked(db->cfg.read_only ? NULL : &db->conns[0]);
    else help_readq_locked(db, r->queued_at);
}

void coil__db_running_long(db_conn *c) {
    coil_db *db = c->db;
    if (c->asked_help || c->writer) return;
    coil_time now = coil_now();
    if (now - c->running_since < HELP_AFTER) return; /* this thread wrote it */
    c->asked_help = true;
    pthread_mutex_lock(&db->lock);
    help_readq_locked(db, now);
    pthread_mutex_unlock(&db->lock);
}

static void queue_locked(coil_db *db, db_req *r) {
    coil__list *q = r->target ? &r->target->mailbox : r->writer ? &db->writeq : &db->readq;
    coil__list_push_back(q, &r->link);
    r->state = DB_QUEUED;
    r->queued_at = coil_now();
    wake_for_locked(db, r);
}

int coil__db_submit(db_req *r, bool interruptible) {
    coil_task *t = coil__running();
    if (!t) return -EPERM;
    int err = interruptible ? coil__pending_cancel(t) : 0;
    if (err) return err;
    coil_db *db = r->db;
    r->task = t;
    r->loop = t->loop;
    r->wait.interrupt = interruptible ? req_interrupt : NULL;
    r->xdone = (coil__xcall){.fn = req_done, .arg = r};
    r->err = 0;
    r->errmsg[0] = '\0';
    r->interrupted = 0;
    pthread_mutex_lock(&db->lock);
    if (db->stopping || (r->writer && !r->target && db->cfg.read_only)) {
        pthread_mutex_unlock(&db->lock);
        snprintf(r->errmsg, sizeof r->errmsg, "%s",
                 db->stopping ? "the database is closing" : "the database is read-only");
        return db->stopping ? -EPIPE : -EROFS;
    }
    queue_locked(db, r);
    pthread_mutex_unlock(&db->lock);
    atomic_fetch_add(&r->loop->xpending, 1);
    err = coil__park(&r->wait);
    if (err) return err; /* withdrawn: it never ran */
    return r->interrupted ? r->interrupted : r->err;
}

void coil__db_post(db_req *r) {
    coil_db *db = r->db;
    r->task = NULL;
    pthread_mutex_lock(&db->lock);
    queue_locked(db, r);
    pthread_mutex_unlock(&db->lock);
}

/* ------------------------------------------------------------------ the threads */

/* db->lock held: the request this connection's thread runs next, or NULL. */
static db_req *next_locked(coil_db *db, db_conn *c) {
    coil__list *q = !coil__list_empty(&c->mailbox) ? &c->mailbox
                    : c->held                      ? NULL
                    : c->writer                    ? &db->writeq
                                                   : &db->readq;
    if (!q || coil__list_empty(q)) return NULL;
    return COIL_CONTAINER_OF(coil__list_pop_front(q), db_req, link);
}

static void *conn_main(void *arg) {
    db_conn *c = arg;
    coil_db *db = c->db;
    pthread_mutex_lock(&db->lock);
    for (;;) {
        db_req *r = next_locked(db, c);
        if (!r) {
            if (db->stopping && !c->held) break;
            c->idle = true;
            pthread_cond_wait(&c->wake, &db->lock);
            c->idle = false;
            continue;
        }
        r->state = DB_RUNNING;
        r->ran_on = c;
        c->running = r;
        c->running_since = coil_now();
        c->asked_help = false;
        atomic_store(&c->interrupt, false);
        if (!c->writer) help_readq_locked(db, c->running_since);
        pthread_mutex_unlock(&db->lock);
        bool to_writer = coil__db_run(c, r);
        pthread_mutex_lock(&db->lock);
        c->running = NULL;
        c->held = c->in_tx || c->open_query || c->pq_open;
        if (c->held) help_readq_locked(db, coil_now()); /* this one serves its holder now */
        if (to_writer && !db->cfg.read_only && !r->interrupted) {
            r->writer = true; /* a write met on a reader: the writer runs it */
            r->err = 0;
            r->errmsg[0] = '\0';
            queue_locked(db, r);
            continue;
        }
        if (to_writer) {
            r->err = db->cfg.read_only ? -EROFS : r->interrupted;
            snprintf(r->errmsg, sizeof r->errmsg, "the statement writes, and the database is "
                                                  "read-only");
        }
        r->state = DB_DONE;
        if (!r->task) {
            free(r); /* a DROP: nobody waits */
            continue;
        }
        /* The caller's loop cannot close while its task waits for this. */
        int err = coil__call_soon_threadsafe_node(r->loop, &r->xdone);
        COIL_ASSERT(err == 0);
    }
    pthread_mutex_unlock(&db->lock);
    return NULL;
}

/* Starts a connection's thread with every signal blocked. */
static int conn_start(db_conn *c) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = pthread_create(&c->thread, NULL, conn_main, c);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) return -err;
    c->started = true;
    return 0;
}

/* ------------------------------------------------------------------ open and close */

void coil_db_config_init(coil_db_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->readers = DEFAULT_READERS;
    cfg->busy_timeout = DEFAULT_BUSY_TIMEOUT;
    cfg->statement_cache = DEFAULT_CACHE;
}

static void db_free(coil_db *db) {
    if (!db) return;
    pthread_mutex_lock(&db->lock);
    db->stopping = true;
    for (size_t i = 0; i < db->nconns; i++) pthread_cond_signal(&db->conns[i].wake);
    pthread_mutex_unlock(&db->lock);
    for (size_t i = 0; i < db->nconns; i++) {
        if (db->conns[i].started) pthread_join(db->conns[i].thread, NULL);
        coil__db_conn_close(&db->conns[i]);
        pthread_cond_destroy(&db->conns[i].wake);
    }
    free(db->conns);
    pthread_mutex_destroy(&db->lock);
    free(db->path);
    free(db);
}

/* The blocking part of open, on a pool thread: every handle opened (the
 * writer first, which creates the file and sets WAL). */
typedef struct open_job {
    coil_db *db;
    int err;
    char errmsg[256];
} open_job;

static void *open_all(void *arg) {
    open_job *o = arg;
    for (size_t i = 0; i < o->db->nconns && !o->err; i++)
        o->err = coil__db_conn_open(&o->db->conns[i], o->errmsg, sizeof o->errmsg);
    return NULL;
}

int coil_db_open(const char *where, const coil_db_config *cfg, coil_db **out) {
    if (!coil__running()) return -EPERM;
    if (!where || !out) return -EINVAL;
    *out = NULL;
    coil__db_last_error[0] = '\0';
    bool pg = strncmp(where, "postgres://", 11) == 0 || strncmp(where, "postgresql://", 13) == 0;
    if (strncmp(where, "sqlite:", 7) == 0) where += 7;
    if (!*where || (!pg && strstr(where, "://"))) {
        snprintf(coil__db_last_error, sizeof coil__db_last_error,
                 "coil_db opens SQLite paths (or sqlite:PATH) and postgres:// URLs");
        return -EINVAL;
    }
    coil_db_config c;
    coil_db_config_init(&c);
    if (cfg) {
        c = *cfg;
        if (!c.readers) c.readers = DEFAULT_READERS;
        if (!c.busy_timeout) c.busy_timeout = DEFAULT_BUSY_TIMEOUT;
        if (!c.statement_cache) c.statement_cache = DEFAULT_CACHE;
    }
    if (c.readers > MAX_READERS || c.busy_timeout < 0) return -EINVAL;
    if (c.immutable) c.read_only = true;
    coil_db *db = calloc(1, sizeof *db);
    if (!db) return -ENOMEM;
    pthread_mutex_init(&db->lock, NULL);
    coil__list_init(&db->writeq);
    coil__list_init(&db->readq);
    db->cfg = c;
    db->pg = pg;
    db->path = strdup(where);
    db->nconns = c.readers + (c.read_only ? 0 : 1);
    db->conns = calloc(db->nconns, sizeof *db->conns);
    if (!db->path || !db->conns) {
        db->nconns = 0; /* none of them initialised */
        db_free(db);
        return -ENOMEM;
    }
    for (size_t i = 0; i < db->nconns; i++) {
        db_conn *k = &db->conns[i];
        k->db = db;
        k->writer = !c.read_only && i == 0;
        coil__list_init(&k->mailbox);
        pthread_cond_init(&k->wake, NULL);
        atomic_init(&k->interrupt, false);
    }
    open_job o = {.db = db};
    int err = coil_to_thread(open_all, &o, NULL);
    if (!err) err = o.err;
    for (size_t i = 0; i < db->nconns && !err; i++) err = conn_start(&db->conns[i]);
    if (err) {
        snprintf(coil__db_last_error, sizeof coil__db_last_error, "%s", o.errmsg);
        db_free(db);
        return err;
    }
    *out = db;
    return 0;
}

typedef struct close_job {
    coil_db *db;
    bool ran;
} close_job;

static void *close_all(void *arg) {
    close_job *j = arg;
    j->ran = true;
    db_free(j->db);
    return NULL;
}

int coil_db_close(coil_db *db) {
    if (!db) return 0;
    if (!coil__running()) { /* a plain thread: it may block */
        db_free(db);
        return 0;
    }
    /* Joining the threads and closing the handles may block (a checkpoint
     * of the WAL): a pool thread does it. */
    close_job j = {.db = db};
    (void)coil_to_thread(close_all, &j, NULL);
    if (!j.ran) db_free(db); /* interrupted while queued: here, then */
    return 0;
}
