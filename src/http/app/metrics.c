/* http/app/metrics.c: GET /metrics in the Prometheus text format (0.0.4).
 *
 * coil_http_metrics() is an ordinary handler; `coil serve` registers it at
 * /metrics. It reports, at the moment of the scrape:
 *
 *   coil_loop_*        for each of the server's loops (label worker="0",
 *                      ...: the worker's index): timer lag over the
 *                      last 10 s (p50, p99, max), stalls over the watchdog's
 *                      threshold and the longest, the stall in progress,
 *                      tasks alive and spawned;
 *   coil_http_*        requests, responses by status class, latency
 *                      quantiles over the recent window, connections open,
 *                      accepted, and refused at the limit;
 *   coil_threadpool_*  the blocking-call pool: threads, busy, queued, done;
 *   then the sections added with coil_http_add_metrics() (the job system's
 *                      coil_jobs_*, for one), in the order they were added.
 *
 * Every figure comes from a call that is safe from any thread
 * (coil_loop_get_metrics, coil_http_server_get_stats,
 * coil_threadpool_get_stats), so the loop that answers the scrape reads the
 * other loops without stopping them. Times are in seconds, as Prometheus
 * expects.
 */
#include "http/app/router.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A growing text buffer: what a scrape answers. */
struct coil_http_metrics_out {
    char *buf;                    /* malloc'd */
    size_t len, cap;
    bool failed;                  /* out of memory: the rest is dropped */
};
typedef struct coil_http_metrics_out text;

static void vadd(text *t, const char *fmt, va_list args) {
    if (t->failed) return;
    for (;;) {
        va_list ap;
        va_copy(ap, args);
        int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = (t->cap + (size_t)n) * 2;
        char *b = realloc(t->buf, cap);
        if (!b) {
            t->failed = true;
            return;
        }
        t->buf = b;
        t->cap = cap;
    }
}

__attribute__((format(printf, 2, 3))) static void add(text *t, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vadd(t, fmt, ap);
    va_end(ap);
}

void coil_http_metrics_printf(coil_http_metrics_out *out, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vadd(out, fmt, ap);
    va_end(ap);
}

/* A metric's HELP and TYPE lines. */
static void head(text *t, const char *name, const char *type, const char *help) {
    add(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static double secs(coil_time ns) { return (double)ns / 1e9; }

/* One sample of a per-worker metric in seconds; `quantile` may be NULL. */
static void seconds(text *t, const char *name, size_t worker, const char *quantile, coil_time ns) {
    if (quantile)
        add(t, "%s{worker=\"%zu\",quantile=\"%s\"} %.6f\n", name, worker, quantile, secs(ns));
    else
        add(t, "%s{worker=\"%zu\"} %.6f\n", name, worker, secs(ns));
}

/* One per-worker count. */
static void count(text *t, const char *name, size_t worker, uint64_t v) {
    add(t, "%s{worker=\"%zu\"} %llu\n", name, worker, (unsigned long long)v);
}

static void loop_metrics(text *t, coil_loop **loops, size_t n) {
    enum { MAX = 64 };
    coil_loop_metrics m[MAX];
    bool ok[MAX];
    if (n > MAX) n = MAX;
    for (size_t i = 0; i < n; i++) ok[i] = coil_loop_get_metrics(loops[i], 0, &m[i]) == 0;

    head(t, "coil_loop_lag_seconds", "gauge",
         "How late the loop's timers fire, over the last 10 s (a blocked loop lags).");
    for (size_t i = 0; i < n; i++) {
        if (!ok[i]) continue;
        seconds(t, "coil_loop_lag_seconds", i, "0.5", m[i].lag_p50);
        seconds(t, "coil_loop_lag_seconds", i, "0.99", m[i].lag_p99);
        seconds(t, "coil_loop_lag_seconds", i, "1", m[i].lag_max);
    }
    head(t, "coil_loop_stalls_total", "counter",
         "Times one task held the loop longer than the watchdog threshold.");
    for (size_t i = 0; i < n; i++)
        if (ok[i]) count(t, "coil_loop_stalls_total", i, m[i].stalls);
    head(t, "coil_loop_longest_stall_seconds", "gauge", "The longest stall so far.");
    for (size_t i = 0; i < n; i++)
        if (ok[i]) seconds(t, "coil_loop_longest_stall_seconds", i, NULL, m[i].longest_stall);
    head(t, "coil_loop_stalled_seconds", "gauge", "How long the stall in progress has lasted.");
    for (size_t i = 0; i < n; i++)
        if (ok[i]) seconds(t, "coil_loop_stalled_seconds", i, NULL, m[i].stalled_for);
    head(t, "coil_loop_tasks", "gauge", "Tasks alive on the loop.");
    for (size_t i = 0; i < n; i++)
        if (ok[i]) count(t, "coil_loop_tasks", i, m[i].tasks_alive);
    head(t, "coil_loop_tasks_spawned_total", "counter", "Tasks spawned on the loop.");
    for (size_t i = 0; i < n; i++)
        if (ok[i]) count(t, "coil_loop_tasks_spawned_total", i, m[i].tasks_spawned);
}

static void http_metrics(text *t, const coil_http_stats *s) {
    head(t, "coil_http_requests_total", "counter", "Requests answered.");
    add(t, "coil_http_requests_total %llu\n", (unsigned long long)s->requests);
    head(t, "coil_http_responses_total", "counter", "Responses by status class.");
    for (int c = 1; c <= 5; c++)
        add(t, "coil_http_responses_total{class=\"%dxx\"} %llu\n", c,
            (unsigned long long)s->status[c]);
    head(t, "coil_http_request_duration_seconds", "gauge",
         "Request latency quantiles over the recent window.");
    add(t, "coil_http_request_duration_seconds{quantile=\"0.5\"} %.6f\n", s->latency_p50);
    add(t, "coil_http_request_duration_seconds{quantile=\"0.99\"} %.6f\n", s->latency_p99);
    add(t, "coil_http_request_duration_seconds{quantile=\"1\"} %.6f\n", s->latency_max);
    head(t, "coil_http_connections", "gauge", "Connections open.");
    add(t, "coil_http_connections %llu\n", (unsigned long long)s->connections);
    head(t, "coil_http_connections_total", "counter", "Connections accepted.");
    add(t, "coil_http_connections_total %llu\n", (unsigned long long)s->connections_total);
    head(t, "coil_http_connections_rejected_total", "counter",
         "Connections refused with 503 at the connection limit.");
    add(t, "coil_http_connections_rejected_total %llu\n", (unsigned long long)s->rejected);
}

static void pool_metrics(text *t) {
    coil_threadpool_stats p;
    coil_threadpool_get_stats(&p);
    head(t, "coil_threadpool_threads", "gauge", "Threads of the blocking-call pool.");
    add(t, "coil_threadpool_threads %zu\n", p.threads);
    head(t, "coil_threadpool_busy", "gauge", "Pool threads running a call.");
    add(t, "coil_threadpool_busy %zu\n", p.busy);
    head(t, "coil_threadpool_queued", "gauge", "Calls waiting for a pool thread.");
    add(t, "coil_threadpool_queued %zu\n", p.queued);
    head(t, "coil_threadpool_calls_total", "counter", "Calls the pool has completed.");
    add(t, "coil_threadpool_calls_total %llu\n", (unsigned long long)p.done);
}

int coil_http_metrics(coil_http_request *req, coil_http_response *res, void *arg) {
    coil_http_server *srv = coil_http_request_server(req);
    coil_loop *loops[64];
    size_t n = coil__http_server_loops(srv, loops, sizeof loops / sizeof loops[0]);
    coil_http_stats s;
    coil_http_server_get_stats(srv, &s);
    text t = {0};
    loop_metrics(&t, loops, n);
    http_metrics(&t, &s);
    pool_metrics(&t);
    const coil__http_metrics_source *extra;
    size_t nextra = coil__http_server_metrics(srv, &extra);
    for (size_t i = 0; i < nextra; i++) extra[i].fn(&t, extra[i].arg);
    int err = t.failed ? coil_http_respond_error(res, 500, "out of memory")
                       : coil_http_respond(res, 200, "text/plain; version=0.0.4; charset=utf-8",
                                           t.buf, t.len);
    free(t.buf);
    return err;
}
