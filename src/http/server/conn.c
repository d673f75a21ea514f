/* http/server/conn.c: one task per connection.
 *
 * The connection's task loops over requests:
 *
 *   idle      nothing buffered: wait for the first byte of the next
 *             request, for at most idle_timeout (then close silently; the
 *             worker's sweeper enforces it, within an eighth of it). The
 *             shutdown interrupts this wait, and only this one.
 *   reading   feed the buffered bytes to the parser (coil_stream_peek /
 *             consume: the bytes are parsed where the stream buffered
 *             them). While the head is incomplete, wait for more within
 *             header_timeout of the request's first byte; while the body
 *             streams in, within body_timeout of the last read. Either
 *             timeout answers 408 and closes. Before waiting for a body
 *             announced with Expect: 100-continue, send "100 Continue".
 *             Bytes after the request stay buffered: pipelined requests
 *             are read, answered and consumed one at a time, in order.
 *   handling  run the handler (coil__http_dispatch) in a child task, and
 *             watch the socket while it runs (below).
 *
 * Watching for a disconnect. The handler never reads the socket: its body
 * was read before it ran. So while it runs, the connection's task is the
 * stream's one reader, and asks for one byte more than is buffered
 * (coil_stream_peek_at_least). Three outcomes:
 *   - more bytes: a pipelined request, not a disconnect; keep watching
 *     (up to WATCH_MAX buffered, then stop reading and let TCP push back);
 *   - the end of the stream, or a reset: the client is gone. Cancel the
 *     handler's task, whose suspension points then return -ECANCELED;
 *   - the handler finished: it cancels the watch's scope on its way out.
 * The handler runs first (the connection task yields to it right after
 * spawning it), so a handler that answers without suspending, the common
 * case, finishes before any watching starts. The end of the stream counts
 * as a disconnect even if the client only shut down its sending side: a
 * client that half-closes while waiting for its answer is rare, and one
 * that left is common.
 *
 * Background work (coil_http_background, background.c) waits on the
 * request's gate, which the connection opens once the response is written
 * or the connection is gone (coil__http_open_gate).
 *
 * Closing. Normally the queued response is flushed and the socket closed,
 * within FLUSH_TIMEOUT. After an error, or with unread bytes, the close
 * lingers (nginx's lingering_close): shut down the sending side, then read
 * and discard until the client closes, for a bounded time, so that the
 * kernel does not answer the unread bytes with a reset that would destroy
 * the response on its way.
  *
 * The connection task's suspending calls are wrapped in COIL__AT: inside
 * libcoil the site-recording macros are off, and without them `coil ps`
 * could not say where a connection waits.
 */
#include "http/server/core.h"

#include <arpa/inet.h>

#include <stdlib.h>
#include <string.h>

enum {
    CONN_IDLE = 0, /* waiting for a request's first byte */
    CONN_READING,  /* a request is arriving */
    CONN_HANDLING, /* its handler runs */
};

enum {
    WATCH_MAX = 64 * 1024,     /* bytes buffered while a handler runs, at most */
    LINGER_BYTES = 1 << 20,    /* a lingering close discards this much at most */
    REJECT_MAX = 128,          /* 503 answers in flight at once; beyond: reset */
};
#define LINGER_TIME COIL_SEC(2)    /* a lingering close lasts this long at most */
#define FLUSH_TIMEOUT COIL_SEC(10) /* a close waits this long for the peer to read */

_Thread_local coil__http_worker *coil__http_current_worker;

/* ------------------------------------------------------------------ requests */

static void begin_request(coil__http_conn *c) {
    coil__arena_reset(&c->arena);
    coil__http_request_init(&c->req, &c->arena, c->w->srv);
    c->req.peer = c->peer;
    coil__http_response_init(&c->res, c, &c->req);
    coil__http_parser_begin(&c->parser, &c->req);
    c->continue_sent = false;
}

/* Ends a request (its stats were recorded as its head went out). */
static void end_request(coil__http_conn *c) { coil__http_open_gate(c); }

/* Answers a request that could not be read, and marks the connection for
 * closing. Suspends. */
static void answer_error(coil__http_conn *c, int status, const char *why) {
    c->res.close = true;
    if (!c->req.start) c->req.start = coil_now();
    coil_http_respond_error(&c->res, status, why);
    end_request(c);
}

/* Waits, within `deadline`, until `need` bytes are buffered. Returns 0
 * with the bytes in *data and *len, 1 if the stream ended first, or an error.
 * Suspends. */
static int wait_bytes(coil__http_conn *c, size_t need, coil_time deadline, const char **data,
                      size_t *len) {
    coil_scope sc;
    coil_scope_enter(&sc, deadline);
    int err = COIL__AT(coil_stream_peek_at_least(c->s, need, data, len));
    coil_scope_exit(&sc);
    if (err) return err;
    return *len < need ? 1 : 0;
}

/* Waits for the first byte of a request. Returns 0, or 1 to close.
 * Suspends. The idle timeout is not a deadline scope of its own: arming
 * and disarming a timer (and reading the clock for it) per request is a
 * measurable share of a small request's cost. Instead the scope only
 * records when the wait began, on the loop's clock, and the worker's
 * sweeper cancels waits that have lasted idle_timeout (see below). */
static int wait_request(coil__http_conn *c) {
    if (coil_stream_buffered(c->s)) return 0;
    if (c->w->draining) return 1;
    c->state = CONN_IDLE;
    coil_scope sc;
    coil_scope_enter(&sc, COIL_NEVER);
    c->idle = &sc;
    c->idle_since = uv_now(&coil__tls_loop->uv);
    const char *data;
    size_t len;
    int err = COIL__AT(coil_stream_peek(c->s, &data, &len));
    c->idle = NULL;
    coil_scope_exit(&sc);
    return err || len == 0;
}

coil_result coil__http_sweep_main(void *arg) {
    coil__http_worker *w = arg;
    uint64_t idle_ms = (uint64_t)(w->srv->cfg.idle_timeout / COIL_MSEC(1));
    if (idle_ms == 0) idle_ms = 1;
    coil_time tick = w->srv->cfg.idle_timeout / 8;
    if (tick < COIL_MSEC(10)) tick = COIL_MSEC(10);
    if (tick > COIL_SEC(1)) tick = COIL_SEC(1);
    while (COIL__AT(coil_sleep(tick)) == 0) {
        uint64_t now = uv_now(&coil__tls_loop->uv);
        coil__list *it;
        coil__list_foreach(it, &w->conn_list) {
            coil__http_conn *c = COIL_CONTAINER_OF(it, coil__http_conn, link);
            if (c->idle && now - c->idle_since >= idle_ms) coil_scope_cancel(c->idle);
        }
    }
    return coil_ok(NULL);
}

/* Reads one request into c->req. Returns 0 when it is complete, or 1 to
 * close the connection (after answering, if there was something to
 * answer). Suspends. */
static int read_request(coil__http_conn *c) {
    if (wait_request(c)) return 1;
    c->state = CONN_READING;
    c->req.start = coil_now();
    const coil_http_config *cfg = &c->w->srv->cfg;
    coil_time head_deadline = c->req.start + cfg->header_timeout;
    const char *data;
    size_t len, used;
    int err = COIL__AT(coil_stream_peek(c->s, &data, &len));
    if (err || len == 0) return 1;
    for (;;) {
        int r = coil__http_parser_feed(&c->parser, data, len, &used);
        coil_stream_consume(c->s, used);
        if (r == COIL__HTTP_DONE) return 0;
        if (r == COIL__HTTP_ERROR) {
            answer_error(c, c->parser.status, c->parser.why);
            return 1;
        }
        size_t need;
        coil_time deadline;
        if (c->parser.phase == COIL__HTTP_PHASE_HEAD) {
            need = len + 1;
            deadline = head_deadline;
        } else {
            need = 1;
            deadline = coil_now() + cfg->body_timeout;
            if (c->req.expect_continue && !c->continue_sent) {
                c->continue_sent = true;
                static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
                if (coil_stream_write(c->s, cont, sizeof cont - 1)) return 1;
            }
        }
        err = wait_bytes(c, need, deadline, &data, &len);
        if (err == -ETIMEDOUT) {
            answer_error(c, 408, "request timeout");
            return 1;
        }
        if (err) return 1; /* gone (or shutting down past the grace period) */
    }
}

/* ------------------------------------------------------------------ handling */

static coil_result handler_main(void *arg) {
    coil__http_conn *c = arg;
    int err = coil__http_dispatch(c->w->srv->router, &c->req, &c->res);
    if (!c->gone) {
        if (c->res.state == COIL__RES_NONE) { /* a chain that did not answer */
            if (err) coil_http_respond_error(&c->res, 500, "internal server error");
            else coil_http_respond(&c->res, 204, NULL, NULL, 0);
        } else {
            coil__http_response_finish(&c->res);
        }
    }
    c->handler_done = true;
    if (c->watching) coil_scope_cancel(&c->watch);
    return coil_ok(NULL);
}

/* Watches the socket until the handler is done (see the file header). */
static void watch(coil__http_conn *c) {
    coil_scope_enter(&c->watch, COIL_NEVER);
    c->watching = true;
    while (!c->handler_done) {
        size_t have = coil_stream_buffered(c->s);
        if (have >= WATCH_MAX) break;
        const char *data;
        size_t len;
        int err = COIL__AT(coil_stream_peek_at_least(c->s, have + 1, &data, &len));
        if (c->handler_done) break;
        if (err == 0 && len > have) continue;            /* pipelined bytes */
        if (err == -ECANCELED || err == -ETIMEDOUT) break; /* we are cancelled */
        c->gone = true;                                   /* end of stream, or reset */
        coil_cancel(c->handler);
        break;
    }
    c->watching = false;
    coil_scope_exit(&c->watch);
}

/* Runs the handler for c->req. Suspends. */
static void handle(coil__http_conn *c) {
    c->state = CONN_HANDLING;
    c->handler_done = false;
    /* The handler runs next, ahead of the other connections that are
     * ready: this request's response goes out before the next request is
     * parsed, as in a server that answers each event in turn, rather than
     * after a whole batch of parses (which costs latency, not throughput).
     * Most handlers finish without suspending, so no watch is needed. */
    static const coil_spawn_opts first = {.name = "http-handler", .run_next = true};
    c->handler = coil_spawn_at(&first, handler_main, c, __FILE__, __LINE__);
    if (!c->handler) {
        coil_http_respond_error(&c->res, 503, "out of memory");
        return;
    }
    coil_yield();
    if (!c->handler_done) watch(c);
    coil_join(c->handler, NULL); /* if we are cancelled, so is the handler */
    c->handler = NULL;
}

/* ------------------------------------------------------------------ closing */

/* Reads and discards until the peer closes, within the caller's scope. */
static void drain(coil_stream *s) {
    size_t total = 0;
    const char *data;
    size_t len;
    while (total < LINGER_BYTES && coil_stream_peek(s, &data, &len) == 0 && len > 0) {
        coil_stream_consume(s, len);
        total += len;
    }
}

/* Closes the connection, lingering after an error or with unread bytes.
 * Frees the stream. Suspends (bounded). */
static void close_stream(coil_stream *s, bool linger) {
    coil_scope sc;
    coil_scope_enter(&sc, coil_now() + (linger ? LINGER_TIME : FLUSH_TIMEOUT));
    if (linger && coil_stream_shutdown(s) == 0) drain(s);
    coil_stream_close(s); /* discards what the peer did not take in time */
    coil_scope_exit(&sc);
}

/* ------------------------------------------------------------------ the connection task */

static void serve(coil__http_conn *c) {
    for (;;) {
        begin_request(c);
        if (read_request(c)) return;
        handle(c);
        end_request(c);
        coil_http_response *res = &c->res;
        if (c->gone || res->close || res->err || res->state != COIL__RES_DONE) return;
    }
}

/* The peer's address as text (no port), "" for a Unix socket. */
static void peer_text(coil_stream *s, char *out, size_t cap) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    out[0] = '\0';
    if (coil_stream_peername(s, (struct sockaddr *)&ss, &len) != 0) return;
    if (ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, out, (socklen_t)cap);
    else if (ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, out, (socklen_t)cap);
}

/* Everything before arena_buf is zeroed, and the 4 KiB buffer is not: it
 * must stay the last field. */
_Static_assert(offsetof(coil__http_conn, arena_buf) +
                       sizeof(((coil__http_conn *)0)->arena_buf) ==
                   sizeof(coil__http_conn),
               "arena_buf is coil__http_conn's last field");

coil_result coil__http_conn_main(void *arg) {
    coil__http_worker *w = coil__http_current_worker;
    coil__http_conn *c = malloc(sizeof *c);
    if (!c) {
        coil_stream_close_reset(arg);
        atomic_fetch_sub(&w->srv->open, 1);
        return coil_ok(NULL);
    }
    memset(c, 0, offsetof(coil__http_conn, arena_buf));
    c->w = w;
    c->s = arg;
    c->task = coil_current();
    peer_text(c->s, c->peer, sizeof c->peer);
    coil__arena_init(&c->arena, c->arena_buf, sizeof c->arena_buf);
    coil__http_parser_init(&c->parser, &w->srv->limits);
    coil__list_push_back(&w->conn_list, &c->link);
    serve(c);
    coil__list_remove(&c->link);
    coil__http_open_gate(c);
    /* Linger when the client may still be sending: after an error, in the
     * middle of a request, or with bytes left unread. */
    uint8_t phase = c->parser.phase;
    bool linger = !c->gone && (phase == COIL__HTTP_PHASE_ERROR || phase == COIL__HTTP_PHASE_BODY ||
                               coil_stream_buffered(c->s) > 0);
    close_stream(c->s, linger);
    coil__http_parser_free(&c->parser);
    coil__arena_free(&c->arena);
    free(c);
    atomic_fetch_sub(&w->srv->open, 1);
    return coil_ok(NULL);
}

/* Interrupts an idle connection's wait: it closes. Worker's thread. */
void coil__http_conn_wake_idle(coil__http_conn *c) {
    if (c->state == CONN_IDLE && c->idle) coil_scope_cancel(c->idle);
}

/* ------------------------------------------------------------------ 503 */

static coil_result reject_main(void *arg) {
    coil__http_worker *w = coil__http_current_worker;
    coil_stream *s = arg;
    static const char body[] = "{\"error\":\"too many connections\"}";
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 503 Service Unavailable\r\nServer: coil\r\nDate: %s\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     coil__http_date(w), sizeof body - 1);
    struct iovec iov[2] = {{head, (size_t)n}, {(void *)body, sizeof body - 1}};
    coil_scope sc;
    coil_scope_enter(&sc, coil_now() + LINGER_TIME);
    if (coil_stream_writev(s, iov, 2) == 0 && coil_stream_shutdown(s) == 0) drain(s);
    coil_stream_close(s);
    coil_scope_exit(&sc);
    w->rejecting--;
    return coil_ok(NULL);
}

void coil__http_reject(coil__http_worker *w, coil_stream *s) {
    coil__http_count(&w->stats.rejected);
    if (w->rejecting >= REJECT_MAX ||
        !coil_group_spawn_named(&w->conns, "http-reject", reject_main, s)) {
        coil_stream_close_reset(s);
        return;
    }
    w->rejecting++;
}
