/* app/dashboard.c: GET / and its event stream (dashboard.h). */
#include "app/dashboard.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/json_text.h"

extern const unsigned char app_dashboard_html[];
extern const size_t app_dashboard_html_len;

enum {
    HISTORY = 600,     /* seconds of job counters kept: the chart's ten minutes */
    LOOPS_MAX = 64,
    STALL_REPORT_MAX = 4096,
};

/* Cumulative counters at one second. */
typedef struct sample {
    int64_t at_ms;
    uint64_t enqueued, succeeded, failed;
} sample;

struct app_dashboard {
    coil_jobs *jobs;
    pthread_t sampler;
    pthread_mutex_t lock;     /* guards ring, head, count, stop */
    pthread_cond_t wake;
    bool stop, started;
    sample ring[HISTORY];
    size_t head, count;
};

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *sampler_main(void *arg) {
    app_dashboard *d = arg;
    pthread_mutex_lock(&d->lock);
    while (!d->stop) {
        coil_jobs_stats st;
        coil_jobs_get_stats(d->jobs, &st);
        d->ring[d->head] = (sample){.at_ms = wall_ms(), .enqueued = st.enqueued,
                                    .succeeded = st.succeeded, .failed = st.failed};
        d->head = (d->head + 1) % HISTORY;
        if (d->count < HISTORY) d->count++;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&d->wake, &d->lock, &until);
    }
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

static void put_sample(coil__json_text *b, const sample *s) {
    coil__json_lit(b, "[");
    coil__json_int(b, s->at_ms);
    coil__json_lit(b, ",");
    coil__json_int(b, (int64_t)s->enqueued);
    coil__json_lit(b, ",");
    coil__json_int(b, (int64_t)s->succeeded);
    coil__json_lit(b, ",");
    coil__json_int(b, (int64_t)s->failed);
    coil__json_lit(b, "]");
}

/* {"samples": [[at_ms, enqueued, succeeded, failed], ...]}: the oldest first,
 * all of them (`all`) or the latest. */
static char *history_json(app_dashboard *d, bool all) {
    coil__json_text b = {0};
    coil__json_lit(&b, "{\"samples\":[");
    pthread_mutex_lock(&d->lock);
    size_t n = all ? d->count : d->count ? 1 : 0;
    for (size_t i = 0; i < n; i++) {
        size_t at = (d->head + HISTORY - n + i) % HISTORY;
        if (i) coil__json_lit(&b, ",");
        put_sample(&b, &d->ring[at]);
    }
    pthread_mutex_unlock(&d->lock);
    coil__json_lit(&b, "]}");
    if (b.failed) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

static void put_ms(coil__json_text *b, const char *key, coil_time ns) {
    coil__json_str(b, key, strlen(key));
    coil__json_lit(b, ":");
    coil__json_real(b, (double)ns / 1e6);
}

/* The runtime: each loop's lag, stalls and tasks; the thread pool; the
 * latest stall report. */
static void put_runtime(coil__json_text *b) {
    coil_loop_info *loops = malloc(LOOPS_MAX * sizeof *loops);
    char *report = malloc(STALL_REPORT_MAX);
    if (!loops || !report) {
        free(loops);
        free(report);
        b->failed = true;
        return;
    }
    size_t n = coil_loops_get_metrics(loops, LOOPS_MAX, COIL_SEC(10));
    coil__json_lit(b, "\"loops\":[");
    for (size_t i = 0; i < n; i++) {
        const coil_loop_metrics *m = &loops[i].metrics;
        if (i) coil__json_lit(b, ",");
        coil__json_lit(b, "{\"loop\":");
        coil__json_int(b, (int64_t)loops[i].id);
        coil__json_lit(b, ",");
        put_ms(b, "lag_p50_ms", m->lag_p50);
        coil__json_lit(b, ",");
        put_ms(b, "lag_p99_ms", m->lag_p99);
        coil__json_lit(b, ",");
        put_ms(b, "lag_max_ms", m->lag_max);
        coil__json_lit(b, ",\"stalls\":");
        coil__json_int(b, (int64_t)m->stalls);
        coil__json_lit(b, ",");
        put_ms(b, "longest_stall_ms", m->longest_stall);
        coil__json_lit(b, ",");
        put_ms(b, "stalled_for_ms", m->stalled_for);
        coil__json_lit(b, ",\"tasks_alive\":");
        coil__json_int(b, (int64_t)m->tasks_alive);
        coil__json_lit(b, "}");
    }
    coil__json_lit(b, "]");
    if (n) {
        const coil_loop_metrics *m = &loops[0].metrics;
        coil__json_lit(b, ",\"thread_pool\":{\"threads\":");
        coil__json_int(b, (int64_t)m->pool_threads);
        coil__json_lit(b, ",\"busy\":");
        coil__json_int(b, (int64_t)m->pool_busy);
        coil__json_lit(b, ",\"queued\":");
        coil__json_int(b, (int64_t)m->pool_queued);
        coil__json_lit(b, "}");
    }
    size_t len = coil_watchdog_last_report(report, STALL_REPORT_MAX);
    coil__json_lit(b, ",\"stall_report\":");
    if (len) coil__json_str(b, report, len);
    else coil__json_lit(b, "null");
    free(loops);
    free(report);
}

/* One snapshot: {"time", "jobs": overview, "store_ok", "workers",
 * "history": {latest sample}, "loops", "thread_pool", "stall_report"}.
 * Suspends (the store, the jobs loop). */
static char *snapshot_json(app_dashboard *d) {
    char *jobs = NULL, *workers = NULL;
    int err = coil_jobs_overview_json(d->jobs, &jobs);
    int werr = coil_jobs_workers_json(d->jobs, &workers);
    char *latest = history_json(d, false);
    coil__json_text b = {0};
    coil__json_lit(&b, "{\"time\":");
    coil__json_int(&b, wall_ms());
    coil__json_lit(&b, ",\"jobs\":");
    if (err || !jobs) coil__json_lit(&b, "null");
    else coil__json_raw(&b, jobs, strlen(jobs));
    coil__json_lit(&b, ",\"store_ok\":");
    if (err) coil__json_lit(&b, "false");
    else coil__json_lit(&b, "true");
    coil__json_lit(&b, ",\"workers\":");
    if (werr || !workers) coil__json_lit(&b, "[]");
    else coil__json_raw(&b, workers, strlen(workers));
    coil__json_lit(&b, ",\"history\":");
    if (latest) coil__json_raw(&b, latest, strlen(latest));
    else coil__json_lit(&b, "null");
    coil__json_lit(&b, ",");
    put_runtime(&b);
    coil__json_lit(&b, "}");
    free(jobs);
    free(workers);
    free(latest);
    if (b.failed) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

static int page(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)req, (void)arg;
    coil_http_set_header(res, "Cache-Control", "no-store");
    coil_http_set_header(res, "Content-Security-Policy",
                         "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                         "script-src 'self' 'unsafe-inline'; img-src 'self' data:");
    coil_http_set_header(res, "X-Frame-Options", "DENY");
    return coil_http_respond(res, 200, "text/html; charset=utf-8",
                             (const char *)app_dashboard_html, app_dashboard_html_len);
}

static int events(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)req;
    app_dashboard *d = arg;
    int err = coil_http_sse_begin(res);
    char *first = err ? NULL : history_json(d, true);
    if (!err) err = first ? coil_http_sse_send(res, "history", first) : -ENOMEM;
    free(first);
    while (!err) {
        char *snap = snapshot_json(d);
        err = snap ? coil_http_sse_send(res, "snapshot", snap) : -ENOMEM;
        free(snap);
        if (!err) err = coil_sleep(COIL_SEC(1));
    }
    return 0; /* the page went away, or the server stops */
}

int app_dashboard_mount(coil_http_server *srv, coil_jobs *jobs, app_dashboard **out) {
    *out = NULL;
    app_dashboard *d = calloc(1, sizeof *d);
    if (!d) return -ENOMEM;
    d->jobs = jobs;
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->wake, NULL);
    int err = coil_http_route(srv, "GET", "/", page, d, 0);
    if (!err) err = coil_http_route(srv, "GET", "/dashboard/events", events, d, 0);
    if (!err) {
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        err = -pthread_create(&d->sampler, NULL, sampler_main, d);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        d->started = err == 0;
    }
    if (err) {
        app_dashboard_free(d);
        return err;
    }
    *out = d;
    return 0;
}

void app_dashboard_free(app_dashboard *d) {
    if (!d) return;
    if (d->started) {
        pthread_mutex_lock(&d->lock);
        d->stop = true;
        pthread_cond_signal(&d->wake);
        pthread_mutex_unlock(&d->lock);
        pthread_join(d->sampler, NULL);
    }
    pthread_cond_destroy(&d->wake);
    pthread_mutex_destroy(&d->lock);
    free(d);
}
