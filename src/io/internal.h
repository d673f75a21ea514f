/* io/internal.h: what the io layer's files share (coil__ names).
 *
 * The pieces and how they fit:
 *
 *   stream.c    a coil_stream's life: creation around a uv_tcp_t or
 *               uv_pipe_t, limits, close; wrapping an fd.
 *   read.c      the read buffer and every reading call.
 *   write.c     writes with back-pressure, flush, shutdown.
 *   listener.c  a coil_listener's life and accept, for TCP and Unix.
 *   tcp.c       TCP listen and connect, TCP socket options.
 *   unix.c      Unix-socket listen and connect.
 *   dns.c       coil_getaddrinfo over uv_getaddrinfo.
 *
 * Every suspending call follows the runtime's park/wake protocol
 * (runtime/internal.h): a task parks on a coil__waiter linked in one of the
 * stream's waiter lists, and a libuv callback (data read, write done, close
 * done) wakes it. libuv callbacks never switch stacks; they only wake tasks.
 * Requests libuv may still complete after a waiter gave up (connect,
 * shutdown, getaddrinfo) live in heap memory that outlives the wait, never
 * on a task's stack.
 */
#ifndef COIL_IO_INTERNAL_H
#define COIL_IO_INTERNAL_H

#include "coil/io.h"
#include "runtime/internal.h"

/* Debug-friendly handle checks (curl's magic numbers), kept in release. */
#define COIL__STREAM_MAGIC 0x5354524du   /* "STRM" */
#define COIL__LISTENER_MAGIC 0x4c53544eu /* "LSTN" */

enum {
    COIL__READ_LIMIT = 64 * 1024,  /* default read limit */
    COIL__WRITE_HIGH = 64 * 1024,  /* default write high-water mark */
    COIL__WRITE_LOW = 16 * 1024,   /* default write low-water mark */
    COIL__BACKLOG = 511,           /* default listen backlog (as Node's) */
};

/* The libuv handle under a stream or listener. */
typedef union coil__uv_stream {
    uv_handle_t handle; /* for uv_close, uv_fileno */
    uv_stream_t stream; /* for reads, writes, listen, accept */
    uv_tcp_t tcp;       /* when is_tcp */
    uv_pipe_t pipe;     /* otherwise: Unix sockets and pipes */
} coil__uv_stream;

struct coil_stream {
    uint32_t magic;            /* COIL__STREAM_MAGIC while usable */
    coil__uv_stream h;         /* the libuv handle; h.handle.data == this */
    coil_loop *loop;           /* owning loop */
    bool is_tcp;               /* h is a uv_tcp_t (else a uv_pipe_t) */

    /* Read side. Buffered bytes are rbuf[rhead, rtail). */
    char *rbuf;                /* malloc'd, NULL while empty and idle */
    size_t rcap;               /* bytes allocated at rbuf */
    size_t rhead, rtail;       /* unconsumed bytes */
    size_t read_limit;         /* stop reading at this many bytes buffered */
    size_t need;               /* bytes the parked reader waits for, 0 if none */
    bool read_started;         /* a task asked for data once: read eagerly */
    bool reading;              /* uv_read_start is in effect */
    bool eof;                  /* the peer ended the stream */
    int read_err;              /* sticky read error, 0 if none */
    coil__list readers;        /* the one task waiting for data */

    /* Write side. */
    size_t write_high, write_low; /* back-pressure marks, bytes */
    size_t pending_writes;     /* uv_write requests not yet called back */
    int write_err;             /* sticky write error, 0 if none */
    coil__list writers;        /* tasks waiting for the queue to drain */
    coil__list flushers;       /* tasks waiting for pending_writes == 0 */
    uv_shutdown_t shutdown_req; /* coil_stream_shutdown()'s request */
    bool shut;                 /* coil_stream_shutdown() was called */
    bool shutting;             /* shutdown_req is in flight */
    int shutdown_status;       /* its result, once called back */
    coil__list shutters;       /* tasks waiting for the shutdown */

    /* Connect and close. */
    uv_connect_t connect_req;  /* the connect that made the stream */
    coil__list connectors;     /* the task waiting for its connect */
    bool closing;              /* close began: every call returns -EPIPE */
    coil_task *closer;         /* parked until close_cb, NULL otherwise */
};

struct coil_listener {
    uint32_t magic;            /* COIL__LISTENER_MAGIC while usable */
    coil__uv_stream h;         /* the listening handle; data == this */
    coil_loop *loop;           /* owning loop */
    bool is_tcp;               /* TCP (else Unix socket) */
    size_t pending;            /* connections libuv announced, not accepted */
    int pending_err;           /* an announced accept error, 0 if none */
    coil__list acceptors;      /* tasks waiting in coil_listener_accept */
    bool closing;              /* close began */
    coil_task *closer;         /* parked until close_cb */
};

/* ------------------------------------------------------------------ stream.c */

/* Allocates a stream and initialises its handle on the current loop, TCP
 * or pipe. Returns NULL on failure (errno-style code in *err). Does not
 * suspend. */
coil_stream *coil__stream_new(bool tcp, int *err);
/* Closes and frees a stream nobody else uses, without waiting: for error
 * paths of constructors. Does not suspend. */
void coil__stream_discard(coil_stream *s);
/* Checks that `s` is a live stream of the calling task's loop. */
void coil__stream_check(const coil_stream *s);
/* Wakes every task parked on the stream with `err` (close). */
void coil__stream_wake_all(coil_stream *s, int err);
/* Sets SIGPIPE to SIG_IGN once per process if it is at SIG_DFL. */
void coil__ignore_sigpipe(void);
/* The connect callback of TCP and Unix connects: wakes the connecting task
 * with the connect's status. */
void coil__connect_cb(uv_connect_t *req, int status);
/* Waits for the connect started on `s` (stream_new + uv_*_connect), then
 * returns the stream in *out, or discards it on failure or interruption.
 * Suspends. */
int coil__connect_finish(coil_stream *s, coil_stream **out);

/* ------------------------------------------------------------------ read.c */

/* Starts or stops reading from the socket as the buffer and the reader's
 * need require. Call after any change to them. */
void coil__read_update(coil_stream *s);
/* Frees the read buffer (close). */
void coil__read_free(coil_stream *s);

/* ------------------------------------------------------------------ write.c */

/* Waits for pending writes to finish. Returns 0, the write error, -EPIPE
 * (`closing` only when not called from close), or the interruption.
 * Suspends. */
int coil__write_drain(coil_stream *s, bool from_close);

/* ------------------------------------------------------------------ listener.c */

/* Allocates a listener around a fresh handle (TCP: of `family`; pipe
 * otherwise). Returns NULL with *err set. Does not suspend. */
coil_listener *coil__listener_new(bool tcp, int family, int *err);
/* Starts listening. Returns 0 or a negative error. */
int coil__listener_start(coil_listener *l, int backlog);
/* Frees a listener that never got going, without waiting. */
void coil__listener_discard(coil_listener *l);

/* ------------------------------------------------------------------ dns.c */

/* Resolves `host` for a stream socket on `port`, with getaddrinfo `flags`
 * (AI_PASSIVE, ...). The caller frees *res with coil_freeaddrinfo().
 * Returns as coil_getaddrinfo(). Suspends. */
int coil__resolve_tcp(const char *host, uint16_t port, int flags, struct addrinfo **res);

#endif /* COIL_IO_INTERNAL_H */
