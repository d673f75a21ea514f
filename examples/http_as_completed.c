/* http_as_completed: ten HTTP requests at once, each handled the moment it
 * completes (asyncio.as_completed over httpx or aiohttp calls).
 *
 * The program starts a small server of its own on a loopback port, whose
 * /delay?ms=N answers after N ms, then asks it ten questions of different
 * delays at once. coil_as_completed_next() hands back each call's index as
 * it finishes, fastest first, while the others are still in flight; the
 * whole batch takes about as long as the slowest request, not the sum.
 *
 *     ./http_as_completed
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep under -std=c11 */
#include <coil/coil.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { N = 10 };

/* ------------------------------------------------------------------ the server */

static int delay(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)arg;
    char ms[16] = "0";
    coil_http_query_param(req, "ms", ms, sizeof ms);
    int err = coil_sleep(COIL_MSEC(atoi(ms))); /* a coroutine wait: the others go on */
    if (err) return err;
    return coil_http_respond_text(res, 200, ms);
}

static void *serve(void *arg) {
    coil_http_server_run(arg);
    return NULL;
}

/* ------------------------------------------------------------------ the client */

typedef struct request {
    char url[64];
    int ms;
    int status;
} request;

static coil_result fetch(void *arg) {
    request *r = arg;
    coil_http_client_response res;
    int err = coil_http_get(r->url, &res); /* only this task waits */
    if (err) return coil_fail(err);
    r->status = res.status;
    coil_http_client_response_free(&res);
    return coil_ok(NULL);
}

static coil_result client_main(void *arg) {
    int port = *(int *)arg;
    static const int delays[N] = {90, 10, 50, 30, 70, 20, 100, 40, 80, 60};
    request reqs[N];
    coil_call calls[N];
    for (int i = 0; i < N; i++) {
        reqs[i] = (request){.ms = delays[i]};
        snprintf(reqs[i].url, sizeof reqs[i].url, "http://127.0.0.1:%d/delay?ms=%d", port,
                 delays[i]);
        calls[i] = (coil_call){.fn = fetch, .arg = &reqs[i]};
    }
    coil_time t0 = coil_now();
    coil_as_completed ac;
    if (coil_as_completed_start(&ac, calls, N) != 0) return coil_fail(-ENOMEM);
    size_t i;
    while (coil_as_completed_next(&ac, &i) == 0) { /* for coro in as_completed(...) */
        if (calls[i].result.err)
            printf("request %zu failed: %s\n", i, coil_strerror(calls[i].result.err));
        else
            printf("done: /delay?ms=%d answered %d after %lld ms\n", reqs[i].ms, reqs[i].status,
                   (long long)((coil_now() - t0) / COIL_MSEC(1)));
    }
    coil_as_completed_stop(&ac);
    printf("all %d in %lld ms (their delays add up to 550 ms)\n", N,
           (long long)((coil_now() - t0) / COIL_MSEC(1)));
    return coil_ok(NULL);
}

int main(void) {
    coil_http_config cfg;
    coil_http_config_init(&cfg);
    cfg.host = "127.0.0.1";
    cfg.port = 0; /* any free port */
    cfg.workers = 1;
    cfg.access_log = false;
    cfg.handle_signals = false;
    coil_http_server *srv = coil_http_server_new(&cfg);
    if (!srv || coil_http_route(srv, "GET", "/delay", delay, NULL, 0) != 0) return 1;
    pthread_t t;
    if (pthread_create(&t, NULL, serve, srv) != 0) return 1;
    int port;
    while ((port = coil_http_server_port(srv)) == -EAGAIN) /* until it listens */
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    int rc = port > 0 && coil_run(client_main, &port, NULL) == 0 ? 0 : 1;
    coil_http_server_stop(srv);
    pthread_join(t, NULL);
    coil_http_server_free(srv);
    return rc;
}
