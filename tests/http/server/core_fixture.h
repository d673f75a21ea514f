/* tests/http/server/core_fixture.h: a server on a thread of its own, and a raw
 * blocking-socket client, for the server core's tests (test_conn.c,
 * test_server.c). Everything listens on 127.0.0.1, port 0; every read has
 * a timeout, so a server that fails to answer fails the test instead of
 * hanging it. */
#ifndef COIL_TESTS_HTTP_CORE_FIXTURE_H
#define COIL_TESTS_HTTP_CORE_FIXTURE_H

#include "test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ the server */

typedef struct fx_server {
    coil_http_server *srv;
    pthread_t thread;
    int result;           /* what run() returned */
    atomic_bool returned; /* run() has returned */
    uint16_t port;
} fx_server;

static inline void fx_sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Defaults for tests: one worker, loopback, port 0, no log, no signals. */
static inline coil_http_config fx_config(void) {
    coil_http_config cfg;
    coil_http_config_init(&cfg);
    cfg.port = 0;
    cfg.workers = 1;
    cfg.access_log = false;
    cfg.handle_signals = false;
    return cfg;
}

static inline void *fx_run_thread(void *arg) {
    fx_server *f = arg;
    f->result = coil_http_server_run(f->srv);
    atomic_store(&f->returned, true);
    return NULL;
}

/* Runs `srv` on a thread and waits until it listens. */
static inline void fx_start(fx_server *f, coil_http_server *srv) {
    f->srv = srv;
    f->result = -1;
    atomic_store(&f->returned, false);
    ASSERT_EQ(coil_http_server_port(srv), -EAGAIN);
    ASSERT_EQ(pthread_create(&f->thread, NULL, fx_run_thread, f), 0);
    for (int i = 0; i < 10000 && coil_http_server_port(srv) <= 0; i++) {
        if (atomic_load(&f->returned)) break;
        fx_sleep_ms(1);
    }
    int port = coil_http_server_port(srv);
    ASSERT(port > 0);
    f->port = (uint16_t)port;
}

/* Stops it, waits for run() and returns what it returned; frees it. */
static inline int fx_stop(fx_server *f) {
    coil_http_server_stop(f->srv);
    pthread_join(f->thread, NULL);
    coil_http_server_free(f->srv);
    return f->result;
}

/* ------------------------------------------------------------------ the raw client */

/* Connects to 127.0.0.1:port with a 10 s receive timeout. */
static inline int fx_connect(uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static inline void fx_send(int fd, const void *data, size_t len) {
    const char *p = data;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        ASSERT(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

static inline void fx_send_str(int fd, const char *s) { fx_send(fd, s, strlen(s)); }

/* A connection's received bytes not yet handed out. */
typedef struct fx_conn {
    int fd;
    char *buf;  /* malloc'd, grows */
    size_t len, cap;
    bool eof;
} fx_conn;

static inline fx_conn *fx_open(uint16_t port) {
    fx_conn *c = calloc(1, sizeof *c);
    ASSERT(c != NULL);
    c->fd = fx_connect(port);
    return c;
}

static inline void fx_close(fx_conn *c) {
    close(c->fd);
    free(c->buf);
    free(c);
}

/* Reads more bytes; false at EOF, on a reset, or on the timeout. */
static inline bool fx_fill(fx_conn *c) {
    if (c->eof) return false;
    if (c->cap - c->len < 65536) {
        c->cap = c->cap ? c->cap * 2 : 131072;
        c->buf = realloc(c->buf, c->cap);
        ASSERT(c->buf != NULL);
    }
    ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
    if (n <= 0) {
        c->eof = true;
        return false;
    }
    c->len += (size_t)n;
    return true;
}

static inline void fx_drop(fx_conn *c, size_t n) {
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* One response, as received. */
typedef struct fx_response {
    int status;       /* 0 if none arrived */
    char head[4096];  /* status line and headers, NUL-terminated */
    char *body;       /* malloc'd, NUL-terminated */
    size_t body_len;
    bool chunked;
} fx_response;

/* A header of r (case-insensitive), copied into a static buffer, or NULL. */
static inline const char *fx_header(const fx_response *r, const char *name) {
    static char value[1024];
    size_t n = strlen(name);
    for (const char *p = strstr(r->head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ') v++;
            size_t len = strcspn(v, "\r");
            if (len >= sizeof value) len = sizeof value - 1;
            memcpy(value, v, len);
            value[len] = '\0';
            return value;
        }
    }
    return NULL;
}

/* Reads one response (no body for HEAD or 1xx/204/304). Returns false if
 * the connection ended before a whole one arrived. */
static inline bool fx_read_response(fx_conn *c, fx_response *r, bool head_request) {
    memset(r, 0, sizeof *r);
    char *end;
    while (!c->len || !(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
        if (!fx_fill(c)) return false;
    size_t hlen = (size_t)(end - c->buf) + 4;
    ASSERT(hlen < sizeof r->head);
    memcpy(r->head, c->buf, hlen);
    r->head[hlen] = '\0';
    fx_drop(c, hlen);
    ASSERT(strncmp(r->head, "HTTP/1.1 ", 9) == 0);
    r->status = (int)strtol(r->head + 9, NULL, 10);
    r->body = calloc(1, 1);
    ASSERT(r->body != NULL);
    if (head_request || r->status < 200 || r->status == 204 || r->status == 304) return true;
    const char *te = fx_header(r, "Transfer-Encoding");
    const char *cl = fx_header(r, "Content-Length");
    if (te && strcasecmp(te, "chunked") == 0) {
        r->chunked = true;
        for (;;) {
            char *nl;
            while (!c->len || !(nl = memmem(c->buf, c->len, "\r\n", 2)))
                if (!fx_fill(c)) return false;
            size_t size = (size_t)strtoul(c->buf, NULL, 16);
            size_t line = (size_t)(nl - c->buf) + 2;
            while (c->len < line + size + 2)
                if (!fx_fill(c)) return false;
            r->body = realloc(r->body, r->body_len + size + 1);
            ASSERT(r->body != NULL);
            memcpy(r->body + r->body_len, c->buf + line, size);
            r->body_len += size;
            r->body[r->body_len] = '\0';
            fx_drop(c, line + size + 2);
            if (size == 0) return true; /* no trailers from our server */
        }
    }
    size_t want = cl ? (size_t)strtoul(cl, NULL, 10) : SIZE_MAX;
    while (c->len < want && (cl || !c->eof))
        if (!fx_fill(c)) break;
    if (cl && c->len < want) return false;
    size_t take = c->len < want ? c->len : want;
    r->body = realloc(r->body, take + 1);
    ASSERT(r->body != NULL);
    memcpy(r->body, c->buf, take);
    r->body[take] = '\0';
    r->body_len = take;
    fx_drop(c, take);
    return true;
}

static inline void fx_response_free(fx_response *r) {
    free(r->body);
    r->body = NULL;
}

/* Whether the server closed the connection (after what was received). */
static inline bool fx_closed(fx_conn *c) {
    while (fx_fill(c)) {
    }
    return c->eof;
}

/* Sends `request` on a new connection; returns the response's status, and
 * asserts the server then closed the connection if `expect_close`. */
static inline int fx_status_of(uint16_t port, const char *request, size_t len, bool expect_close) {
    fx_conn *c = fx_open(port);
    fx_send(c->fd, request, len);
    fx_response r;
    int status = fx_read_response(c, &r, false) ? r.status : 0;
    if (status) {
        ASSERT(fx_header(&r, "Date") != NULL);
        fx_response_free(&r);
    }
    if (expect_close) ASSERT(fx_closed(c));
    fx_close(c);
    return status;
}

/* A simple GET on a new connection; returns the status, body in *body
 * (malloc'd) when not NULL. */
static inline int fx_get(uint16_t port, const char *path, char **body) {
    fx_conn *c = fx_open(port);
    char req[512];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: test\r\n\r\n", path);
    fx_send_str(c->fd, req);
    fx_response r;
    int status = fx_read_response(c, &r, false) ? r.status : 0;
    if (body) *body = status ? r.body : NULL;
    else if (status) fx_response_free(&r);
    fx_close(c);
    return status;
}

#endif
