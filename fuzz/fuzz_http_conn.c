/* fuzz/fuzz_http_conn.c: libFuzzer harness for the HTTP connection
 * (src/http/server/conn.c), not only the parser.
 *
 * One coil_http_server runs on a thread for the whole run, with handlers
 * that answer, stream chunks, send events, fail, block on the thread pool
 * and echo the body. Each input becomes one connection: a Unix socketpair
 * whose server end is handed to the worker's loop the way its acceptor
 * hands a new connection, and whose client end gets the input written in
 * pieces whose sizes the input's first byte seeds (requests split at
 * arbitrary points, pipelined, bodies that stop early), then the end of
 * the stream. The connection must end: the harness reads until the server
 * closes, and aborts if it has not within 5 s (a hang is a finding like a
 * crash). The server's timeouts are short, so that a request that stops
 * halfway is answered 408 quickly rather than held.
 *
 *   make fuzz-conn FUZZ_RUNS=10000000   (or FUZZ_TIME=600)
 */
#include "http/server/core.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int h_ok(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)req, (void)arg;
    return coil_http_respond_text(res, 200, "ok");
}

static int h_echo(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)arg;
    size_t len;
    const void *body = coil_http_body(req, &len);
    return coil_http_respond(res, 200, "application/octet-stream", body, len);
}

static int h_stream(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)req, (void)arg;
    int err = coil_http_begin_chunked(res, 200, "text/plain");
    for (int i = 0; i < 3 && !err; i++) err = coil_http_write_chunk(res, "part\n", 5);
    return err ? err : coil_http_end_chunked(res);
}

static int h_events(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)req, (void)arg;
    int err = coil_http_sse_begin(res);
    if (!err) err = coil_http_sse_send(res, "tick", "1");
    if (!err) err = coil_http_sse_send(res, NULL, "two\nlines");
    return err;
}

static int h_fail(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)req, (void)res, (void)arg;
    return -EIO; /* the server answers 500 */
}

static int h_block(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)req, (void)arg;
    usleep(100); /* on the thread pool */
    return coil_http_respond_text(res, 200, "blocked");
}

static coil_http_server *server;

static void *serve(void *arg) {
    (void)arg;
    coil_http_server_run(server);
    return NULL;
}

static void start_server(void) {
    coil_http_config cfg;
    coil_http_config_init(&cfg);
    cfg.host = "127.0.0.1";
    cfg.port = 0;
    cfg.workers = 1;
    cfg.access_log = false;
    cfg.handle_signals = false;
    cfg.max_body = 4096;
    cfg.max_header_bytes = 4096;
    cfg.header_timeout = COIL_MSEC(300);
    cfg.body_timeout = COIL_MSEC(300);
    cfg.idle_timeout = COIL_MSEC(300);
    server = coil_http_server_new(&cfg);
    if (!server || coil_http_route(server, "GET", "/ok", h_ok, NULL, 0) ||
        coil_http_route(server, "POST", "/echo", h_echo, NULL, 0) ||
        coil_http_route(server, "GET", "/stream", h_stream, NULL, 0) ||
        coil_http_route(server, "GET", "/events", h_events, NULL, 0) ||
        coil_http_route(server, "GET", "/fail", h_fail, NULL, 0) ||
        coil_http_route(server, "GET", "/block", h_block, NULL, COIL_HTTP_BLOCKING))
        abort();
    pthread_t t;
    if (pthread_create(&t, NULL, serve, NULL) != 0) abort();
    while (coil_http_server_port(server) == -EAGAIN) usleep(1000);
}

/* A connection task of the worker, as its acceptor spawns them, whose
 * stream is the socketpair's server end. */
static coil_result adopted_main(void *arg) {
    int fd = (int)(intptr_t)arg;
    coil_stream *s;
    if (coil_stream_open(fd, &s) != 0) {
        close(fd);
        return coil_ok(NULL);
    }
    atomic_fetch_add(&server->open, 1);
    return coil__http_conn_main(s);
}

/* On the worker's loop (a cross-thread call, outside any task). */
static void adopt(void *arg) {
    coil__http_worker *w = &server->workers[0];
    if (!coil_group_spawn_named(&w->conns, "http-conn", adopted_main, arg))
        close((int)(intptr_t)arg);
}

/* Reads until the server closes; aborts past 5 s. */
static void drain(int fd) {
    char buf[16384];
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, 5000);
        if (n == 0) {
            fprintf(stderr, "fuzz_http_conn: the connection did not end within 5 s\n");
            abort();
        }
        if (n < 0) continue;
        ssize_t got = read(fd, buf, sizeof buf);
        if (got <= 0) return;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, start_server);
    if (size < 1) return 0;
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return 0;
    coil_loop *loop = atomic_load(&server->workers[0].loop);
    if (!loop || coil_call_soon_threadsafe(loop, adopt, (void *)(intptr_t)fds[1]) != 0) {
        close(fds[0]);
        close(fds[1]);
        return 0;
    }
    /* The pieces: sizes from a generator seeded by the first byte. */
    uint32_t seed = data[0] * 2654435761u + 1;
    size_t at = 1;
    while (at < size) {
        seed = seed * 1103515245u + 12345u;
        size_t piece = 1 + (seed >> 16) % 64;
        if (piece > size - at) piece = size - at;
        ssize_t w = send(fds[0], data + at, piece, MSG_NOSIGNAL);
        if (w <= 0) break; /* the server closed: it is done with us */
        at += (size_t)w;
    }
    shutdown(fds[0], SHUT_WR);
    drain(fds[0]);
    close(fds[0]);
    return 0;
}
