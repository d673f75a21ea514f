/* db/db_impl.h: what the files of coil_db share.
 *
 *   pool.c   the connections' threads, the queues, and how a task's
 *            request reaches a thread and its outcome comes back (the park
 *            and wake protocol of runtime/internal.h, as the job store's
 *            writer does it); open and close
 *   run.c    a request on its connection, in SQLite's terms: the
 *            statement cache, binding, stepping, chunks of rows, JSON
 *   api.c    the public calls of coil/db.h
 *
 * Requests. A task fills a db_req on its stack and queues it: to the
 * writer's queue, to the readers' queue (any reader takes it), or to the
 * mailbox of one connection that a coil_db_rows or a coil_db_tx holds.
 * The connection's thread runs it and posts the outcome to the task's loop
 * (coil__call_soon_threadsafe_node), which wakes the task. Everything
 * shared is under db->lock; a connection's sqlite3 handle is its thread's
 * alone, but for sqlite3_interrupt(), which SQLite allows from any thread.
 *
 * A held connection (an open query, a transaction) serves only its
 * mailbox, so its holder's statements see one connection from begin to
 * end.
 */
#ifndef COIL_DB_IMPL_H
#define COIL_DB_IMPL_H

#include "coil/db.h"
#include "runtime/internal.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <sqlite3.h>

typedef enum db_op {
    DB_OP_EXEC,     /* one statement, rows dropped */
    DB_OP_QUERY,    /* prepare, bind, first chunk */
    DB_OP_FETCH,    /* the next chunk of the open query */
    DB_OP_JSON,     /* every row as JSON */
    DB_OP_BEGIN,    /* BEGIN IMMEDIATE: the connection is held */
    DB_OP_COMMIT,
    DB_OP_ROLLBACK,
    DB_OP_DROP,     /* close the open query (no task waits: freed by the thread) */
} db_op;

typedef enum db_state { DB_QUEUED, DB_RUNNING, DB_DONE } db_state;

/* One value of a chunk: text and blobs are offsets into the chunk's arena. */
typedef struct db_cell {
    coil_db_type type;
    int64_t i;
    double r;
    size_t off, n;
} db_cell;

/* Rows fetched in one trip to the connection's thread. */
typedef struct db_chunk {
    size_t nrows;
    db_cell *cells;            /* nrows * the query's columns */
    char *arena;
    size_t arena_len, arena_cap;
} db_chunk;

typedef struct db_conn db_conn;

typedef struct db_req {
    coil__list link;           /* in a queue or a mailbox (db->lock) */
    db_op op;
    coil_db *db;
    const char *sql;
    const coil_db_value *args;
    size_t nargs;
    db_conn *target;           /* a held connection's mailbox, or NULL */
    bool writer;               /* NULL target: the writer's queue, else any reader */

    /* Outcome, written by the connection's thread. */
    int err;
    char errmsg[256];
    coil_db_done done;
    db_chunk chunk;            /* QUERY, FETCH */
    size_t ncols;              /* QUERY: the columns, and their names in */
    char *names;               /* one malloc'd block of NUL-terminated names */
    bool more;                 /* QUERY, FETCH: rows remain (connection held) */
    char *json;                /* JSON */
    size_t json_len;
    db_conn *ran_on;           /* the connection that ran it */

    /* Waiting, on the task's loop. */
    db_state state;            /* db->lock */
    coil_time queued_at;       /* db->lock: when it joined its queue */
    int interrupted;           /* the interruption, if one stopped it running */
    coil_task *task;
    coil_loop *loop;
    coil__wait wait;
    coil__xcall xdone;
} db_req;

/* A cached prepared statement. */
typedef struct db_stmt {
    char *sql;
    sqlite3_stmt *st;
    uint64_t used;             /* for LRU eviction */
} db_stmt;

struct db_conn {
    coil_db *db;
    pthread_t thread;
    bool started;
    bool writer;
    sqlite3 *h;                /* SQLite */
    PGconn *pq;                /* PostgreSQL (run_pg.c) */
    PGcancel *pq_cancel;       /* for an interrupt from the caller's loop */
    PGresult *pq_open;         /* a query's result with rows left */
    int pq_next;               /* its next row */
    coil__list mailbox;        /* requests for this held connection (db->lock) */
    pthread_cond_t wake;       /* signalled when there is work for this thread */
    bool idle;                 /* waiting on wake, and not yet signalled (db->lock) */
    bool in_tx;                /* a transaction is open (thread) */
    sqlite3_stmt *open_query;  /* a query with rows left (thread) */
    bool held;                 /* in_tx || open_query || pq_open (db->lock) */
    db_req *running;           /* db->lock */
    coil_time running_since;   /* db->lock: when `running` began */
    bool asked_help;           /* thread: coil__db_running_long() woke a reader */
    atomic_bool interrupt;     /* the running request's task gave up */
    coil_time busy_until;      /* thread: how long the busy handler waits */
    int busy_sleep_ms;
    db_stmt *cache;
    size_t ncache;
    uint64_t tick;
};

struct coil_db {
    pthread_mutex_t lock;
    coil__list writeq, readq;
    bool stopping;
    bool pg;                   /* path is a postgres:// URL */
    coil_db_config cfg;
    char *path;
    db_conn *conns;            /* [0] the writer unless read_only */
    size_t nconns;
};

/* pool.c, called by a connection's thread while it runs a request, often
 * (run.c, run_pg.c): once the request has run a while, wakes a reader for
 * the readers' queue if no other reader will take it soon. Never blocks
 * for long (db->lock). */
void coil__db_running_long(db_conn *c);

/* api.c: coil_db_error()'s text for the calling thread's running task. */
extern _Thread_local char coil__db_last_error[256];

/* pool.c: queues `r` (filled by the caller) and waits for its outcome.
 * `interruptible`: a cancel or deadline withdraws it if queued, or
 * interrupts it if running. Returns r->err, or the interruption.
 * Suspends. */
int coil__db_submit(db_req *r, bool interruptible);
/* Queues a request no task waits for (DB_OP_DROP); the thread frees it. */
void coil__db_post(db_req *r);

/* run.c, on the connection's thread: runs `r`. Returns true if the
 * request must go to the writer instead (a reader met a statement that
 * writes). */
bool coil__db_run(db_conn *c, db_req *r);
/* Opens the connection's handle and configures it. Returns 0 or an
 * error, with r->errmsg. */
int coil__db_conn_open(db_conn *c, char *errmsg, size_t cap);
void coil__db_conn_close(db_conn *c);
/* run_pg.c: the same three, on PostgreSQL. */
bool coil__db_pg_run(db_conn *c, db_req *r);
int coil__db_pg_open(db_conn *c, char *errmsg, size_t cap);
void coil__db_pg_close(db_conn *c);
/* Interrupts the statement running on `c` (any thread). */
void coil__db_pg_interrupt(db_conn *c);
/* Takes room for one more row in a chunk of `ncols` columns; NULL on
 * ENOMEM (run.c). */
bool coil__db_arena_put(db_chunk *ch, const void *p, size_t n, size_t *off);

/* An SQLite result code as a negative errno. */
int coil__db_errno(int rc);
void coil__db_chunk_free(db_chunk *ch);

#endif
