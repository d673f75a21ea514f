/* tests/http/loopback_server.h: coil's HTTP server on a thread of the test
 * process, on 127.0.0.1 and a port the kernel picks, for tests whose
 * subject is something else (the pool's awaiting jobs, report.pdf's
 * images, allocation failures). Nothing here asserts: a failure comes back
 * as an error, so that the fault sweeps can use it too. */
#ifndef COIL_TESTS_HTTP_LOOPBACK_SERVER_H
#define COIL_TESTS_HTTP_LOOPBACK_SERVER_H

#include <coil/coil.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

typedef struct loopback_server {
    coil_http_server *srv;  /* routes go on it between new and start */
    pthread_t thread;
    int port;               /* once started */
    int result;             /* what coil_http_server_run returned */
    atomic_bool returned;   /* it has */
} loopback_server;

/* One worker on loopback, port 0, no access log, no signal handling.
 * Returns 0 or -ENOMEM. */
static inline int loopback_new(loopback_server *s) {
    coil_http_config cfg;
    coil_http_config_init(&cfg);
    cfg.host = "127.0.0.1";
    cfg.port = 0;
    cfg.workers = 1;
    cfg.access_log = false;
    cfg.handle_signals = false;
    s->srv = coil_http_server_new(&cfg);
    atomic_init(&s->returned, false);
    return s->srv ? 0 : -ENOMEM;
}

static inline void *loopback_run(void *arg) {
    loopback_server *s = arg;
    s->result = coil_http_server_run(s->srv);
    atomic_store(&s->returned, true);
    return NULL;
}

/* Runs it on a thread and waits until it listens. Returns its port, or the
 * error that kept it from serving (it is then stopped and freed). */
static inline int loopback_start(loopback_server *s) {
    if (pthread_create(&s->thread, NULL, loopback_run, s) != 0) {
        coil_http_server_free(s->srv);
        s->srv = NULL;
        return -EAGAIN;
    }
    int port;
    while ((port = coil_http_server_port(s->srv)) == -EAGAIN && !atomic_load(&s->returned))
        nanosleep(&(struct timespec){0, 500000}, NULL);
    if (port > 0) return s->port = port;
    pthread_join(s->thread, NULL);
    coil_http_server_free(s->srv);
    s->srv = NULL;
    return s->result ? s->result : -EIO;
}

/* Stops it, joins its thread and frees it. Returns what run returned. */
static inline int loopback_stop(loopback_server *s) {
    coil_http_server_stop(s->srv);
    pthread_join(s->thread, NULL);
    coil_http_server_free(s->srv);
    s->srv = NULL;
    return s->result;
}

#endif
