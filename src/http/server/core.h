/* http/server/core.h: what the server core's files share.
 *
 *   server.c    the server: worker loops and their threads, listeners,
 *               startup, graceful shutdown, signals;
 *   stats.c     counters and latency histograms, per worker, merged on read;
 *   conn.c      one task per connection: reading requests with timeouts,
 *               running the handler while watching for a disconnect,
 *               keep-alive, closing;
 *   parser.c,   requests from bytes (parser.h);
 *   request.c
 *   response.c  writing responses: heads, complete bodies, chunked, SSE;
 *   sendfile.c  files with sendfile(2).
 *
 * Threads. A server runs one loop per worker, each on its own thread. A
 * worker's fields are touched only by its loop's thread, except the
 * counters and histograms (atomics, single writer) and `loop` (atomic),
 * which other threads read for metrics.
 */
#ifndef COIL_HTTP_CORE_H
#define COIL_HTTP_CORE_H

#include "coil/io.h"
#include "http/server/parser.h"

#include <pthread.h>

typedef struct coil__http_worker coil__http_worker;
typedef struct coil__http_conn coil__http_conn;

/* ------------------------------------------------------------------ stats */

enum {
    COIL__HIST_BUCKETS = 496, /* log-linear: 8 per power of two, ns */
    COIL__HIST_SLOTS = 4,     /* the window: this many periods */
};
#define COIL__HIST_PERIOD COIL_SEC(5) /* one slot's span */

/* One period's latencies. Written by the worker's thread only. */
typedef struct coil__http_hist {
    _Atomic uint64_t epoch;   /* which period it holds (now / period + 1), 0: none */
    _Atomic uint64_t count[COIL__HIST_BUCKETS];
    _Atomic uint64_t max;     /* ns */
} coil__http_hist;

typedef struct coil__http_stats {
    _Atomic uint64_t requests;
    _Atomic uint64_t status[6];        /* by class */
    _Atomic uint64_t connections_total;
    _Atomic uint64_t rejected;
    coil__http_hist hist[COIL__HIST_SLOTS];
} coil__http_stats;

/* Records one answered request, begun at `start` and answered `now` (its
 * head written). Worker's thread. */
void coil__http_stats_record(coil__http_stats *st, int status, coil_time start, coil_time now);
/* Adds a counter (worker's thread). */
static inline void coil__http_count(_Atomic uint64_t *c) {
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}
/* Sums every worker's figures into *out (any thread). */
void coil__http_stats_merge(coil__http_stats *const *sts, size_t n, coil_http_stats *out);

/* ------------------------------------------------------------------ workers and server */

struct coil__http_worker {
    coil_http_server *srv;
    unsigned index;                 /* 0 runs on the thread that called run() */
    _Atomic(coil_loop *) loop;      /* while it runs, else NULL */
    pthread_t thread;               /* index > 0 */
    bool thread_started;
    coil_listener *listener;        /* NULL once closed */
    coil_group conns;               /* connection tasks and the acceptor */
    coil_group bg;                  /* background work */
    coil__list conn_list;           /* live coil__http_conn, for shutdown */
    coil_event stop;                /* set to start the shutdown */
    coil_event finished;            /* set once every worker is done serving */
    bool reported;                  /* told worker 0 how its start went */
    int start_err;                  /* how it went: 0 or the error */
    bool draining;                  /* shutting down: no new requests */
    size_t rejecting;               /* 503 answers in flight */
    char date[32];                  /* "Sun, 06 Nov 1994 08:49:37 GMT" */
    uint64_t date_next;             /* loop time (ms) when it goes stale */
    coil__http_stats stats;
};

struct coil_http_server {
    coil_http_config cfg;           /* copied; cfg.host points at host */
    char *host;                     /* malloc'd */
    coil__http_limits limits;       /* from cfg */
    coil__http_router *router;
    coil__http_metrics_source *metrics; /* extra /metrics sections (malloc'd) */
    size_t nmetrics;
    int stop_rd, stop_wr;           /* the stop pipe (non-blocking) */
    _Atomic int port;               /* listening port, -EAGAIN before */
    uint16_t bound_port;            /* worker 0's port, for the others */
    atomic_bool running;            /* inside run() */
    atomic_size_t open;             /* connections open, all workers */
    atomic_uint serving;            /* workers not done serving yet */
    unsigned nworkers;
    coil__http_worker *workers;     /* nworkers of them */
    /* Startup, on worker 0's loop. */
    coil_event all_ready;           /* every worker reported */
    unsigned reported;              /* workers that reported */
    int start_err;                  /* the first worker's failure */
};

/* Makes worker `w`'s loop start its shutdown. Any thread. */
void coil__http_worker_stop(coil__http_worker *w);

/* ------------------------------------------------------------------ responses */

enum {
    COIL__RES_NONE = 0, /* nothing sent */
    COIL__RES_STREAM,   /* head sent, body streaming (chunked or until close) */
    COIL__RES_DONE,     /* complete */
};

struct coil_http_response {
    coil__http_conn *conn;
    coil_http_request *req;
    int status;                     /* sent status, 0 before */
    uint8_t state;                  /* COIL__RES_* */
    bool chunked;                   /* streaming with chunked encoding */
    bool close;                     /* the connection closes after it */
    bool has_server;                /* the handler set Server itself */
    bool sse;                       /* an event stream */
    int err;                        /* first write error, 0 if none */
    uint64_t bytes;                 /* body bytes written */
    char *hdrs;                     /* handler's headers, "N: v\r\n"..., arena */
    size_t hdrs_len, hdrs_cap;
};

/* Sets up the response to `req` on `c`. */
void coil__http_response_init(coil_http_response *res, coil__http_conn *c, coil_http_request *req);
/* Ends a response the handler left open (a chunked body without its last
 * chunk). Returns 0 or the write error. Suspends. */
int coil__http_response_finish(coil_http_response *res);
/* Writes the head of a response; `len` is the Content-Length (ignored when
 * `chunked`; -1: neither, the body ends with the connection). Returns 0 or
 * the write error. Suspends. */
int coil__http_write_head(coil_http_response *res, int status, const char *content_type,
                          int64_t len, bool chunked, const void *body, size_t body_len);
/* The worker's cached Date value (29 bytes). Worker's thread. */
const char *coil__http_date(coil__http_worker *w);

/* ------------------------------------------------------------------ connections */

/* A connection, on its task's stack. */
struct coil__http_conn {
    coil__http_worker *w;
    coil_stream *s;
    coil_task *task;                /* the connection's task */
    coil__list link;                /* in w->conn_list */
    uint8_t state;                  /* CONN_* in conn.c */
    coil_scope *idle;               /* the idle wait's scope, while idle */
    uint64_t idle_since;            /* when that wait began (loop clock, ms) */
    coil__http_parser parser;
    coil__arena arena;              /* the current request's memory */
    coil_http_request req;
    coil_http_response res;
    /* While a handler runs. */
    coil_task *handler;             /* its task */
    coil_scope watch;               /* the watch for a disconnect */
    bool watching;                  /* inside `watch` */
    bool handler_done;              /* it has returned */
    bool gone;                      /* the client disconnected */
    bool continue_sent;             /* 100 Continue went out */
    struct coil__http_gate *gate;   /* background work waiting for the response */
    char peer[48];                  /* the peer's address as text, "" if none */
    _Alignas(16) char arena_buf[4096]; /* the arena's first chunk */
};

/* The worker of the calling thread's loop. */
extern _Thread_local coil__http_worker *coil__http_current_worker;
/* The task of one accepted connection (a coil_stream *), spawned into the
 * current worker's conns group. */
coil_result coil__http_conn_main(void *arg);

/* background.c: lets the request's background work start (the response is
 * out, or the connection is gone); the work's task owns the gate from
 * then on. Does not suspend. */
void coil__http_open_gate(coil__http_conn *c);
/* Answers 503 on `s` and closes it, in a task of its own. Takes `s`. */
void coil__http_reject(coil__http_worker *w, coil_stream *s);
/* The worker's sweeper: closes connections idle for idle_timeout. Runs
 * until cancelled. */
coil_result coil__http_sweep_main(void *arg);
/* Interrupts `c`'s wait for its next request, if it is idle: it closes. */
void coil__http_conn_wake_idle(coil__http_conn *c);
/* The conn a request belongs to. */
static inline coil__http_conn *coil__http_conn_of(const coil_http_request *req) {
    return COIL_CONTAINER_OF(req, coil__http_conn, req);
}

#endif
