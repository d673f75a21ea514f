/* tests/http/app/app_harness.h: a server on a thread and a plain blocking
 * client, for the router, middleware and static-file tests.
 *
 * The server runs coil_http_server_run() on its own thread and listens on
 * 127.0.0.1, port 0; the test's thread talks to it over ordinary sockets
 * with a receive timeout, one request per connection ("Connection: close"),
 * so every reply ends where the stream does.
 */
#ifndef COIL_TEST_APP_HARNESS_H
#define COIL_TEST_APP_HARNESS_H

#include "test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

typedef struct harness {
    coil_http_server *srv;
    pthread_t tid;
    int run_err;                  /* what coil_http_server_run returned */
    int port;
} harness;

/* A server with the test defaults: one worker, port 0, no signals, no
 * access log (tests that want it add the middleware themselves). */
static inline coil_http_server *harness_server(void) {
    coil_http_config cfg;
    coil_http_config_init(&cfg);
    cfg.host = "127.0.0.1";
    cfg.port = 0;
    cfg.workers = 1;
    cfg.handle_signals = false;
    cfg.access_log = false;
    cfg.shutdown_grace = COIL_SEC(5);
    coil_http_server *srv = coil_http_server_new(&cfg);
    ASSERT(srv != NULL);
    return srv;
}

static inline void *harness_thread(void *arg) {
    harness *h = arg;
    h->run_err = coil_http_server_run(h->srv);
    return NULL;
}

/* Runs `srv` on a thread and waits (10 s at most) until it listens. */
static inline void harness_start(harness *h, coil_http_server *srv) {
    h->srv = srv;
    h->run_err = 0;
    ASSERT_EQ(pthread_create(&h->tid, NULL, harness_thread, h), 0);
    for (int i = 0; i < 10000; i++) {
        h->port = coil_http_server_port(srv);
        if (h->port > 0) return;
        usleep(1000);
    }
    coil_test_fail(__FILE__, __LINE__, "the server did not listen within 10 s");
}

/* Stops the server, joins its thread, asserts a clean run, frees it. */
static inline void harness_stop(harness *h) {
    coil_http_server_stop(h->srv);
    ASSERT_EQ(pthread_join(h->tid, NULL), 0);
    ASSERT_EQ(h->run_err, 0);
    coil_http_server_free(h->srv);
    h->srv = NULL;
}

/* ------------------------------------------------------------------ client */

typedef struct reply {
    int status;                   /* 0 if no status line came */
    char raw[65536];              /* everything received, NUL-terminated */
    size_t len;
    const char *body;             /* into raw, after the blank line */
    size_t body_len;
} reply;

/* Connects to 127.0.0.1:port, with a 10 s receive timeout. */
static inline int harness_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT(fd >= 0);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* Sends `req` as is and reads the reply until the server closes. */
static inline void harness_raw(int port, const char *req, reply *r) {
    int fd = harness_connect(port);
    size_t n = strlen(req);
    ASSERT_EQ(write(fd, req, n), (ssize_t)n);
    r->len = 0;
    for (;;) {
        ssize_t got = read(fd, r->raw + r->len, sizeof r->raw - 1 - r->len);
        if (got <= 0) break;
        r->len += (size_t)got;
        if (r->len == sizeof r->raw - 1) break;
    }
    close(fd);
    r->raw[r->len] = '\0';
    r->status = 0;
    if (r->len > 12 && strncmp(r->raw, "HTTP/1.", 7) == 0) r->status = (int)strtol(r->raw + 9, NULL, 10);
    const char *end = strstr(r->raw, "\r\n\r\n");
    r->body = end ? end + 4 : r->raw + r->len;
    r->body_len = (size_t)(r->raw + r->len - r->body);
}

/* METHOD path HTTP/1.1 with `headers` ("Name: value\r\n" lines, or NULL). */
static inline void harness_request(int port, const char *method, const char *path,
                                   const char *headers, reply *r) {
    char req[8192];
    int n = snprintf(req, sizeof req,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s\r\n", method,
                     path, headers ? headers : "");
    ASSERT(n > 0 && (size_t)n < sizeof req);
    harness_raw(port, req, r);
}

static inline void harness_get(int port, const char *path, reply *r) {
    harness_request(port, "GET", path, NULL, r);
}

/* A response header's value (the first, case-insensitive name), copied
 * into `buf`; NULL if absent. */
static inline const char *reply_header(const reply *r, const char *name, char *buf, size_t size) {
    return coil_test_header(r->raw, r->body ? r->body - 2 : NULL, name, buf, size);
}

/* The body as a NUL-terminated string (the raw buffer is). */
static inline const char *reply_body(const reply *r) { return r->body; }

#endif
