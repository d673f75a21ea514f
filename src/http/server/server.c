/* http/server/server.c: the server's life: workers, listeners, startup, shutdown.
 *
 * Workers. A server runs `workers` loops. Worker 0's loop runs on the
 * thread that called coil_http_server_run(); each other worker runs its own
 * loop on a thread of its own. Every worker listens on the same port with
 * its own SO_REUSEPORT listener, so the kernel spreads connections over the
 * loops, and a connection stays on the loop that accepted it.
 *
 * Startup. Worker 0 listens first (port 0 lets the kernel choose), then
 * starts the other threads, which listen on the port it got. Each reports
 * back to worker 0's loop (coil_call_soon_threadsafe); once all have, the
 * port is published (coil_http_server_port) and serving begins. If any
 * failed, the others are stopped and run() returns that error.
 *
 * Stopping. coil_http_server_stop() writes one byte to a pipe: async-signal
 * safe, and possible from any thread, even before run() starts. Worker 0
 * reads that pipe with a task of its own and then tells every worker to
 * stop. With handle_signals, SIGTERM and SIGINT call coil_http_server_stop()
 * synchronously: run() blocks them in its thread (its workers block every
 * signal) and a small thread takes them with sigtimedwait(). No handler runs
 * on a loop thread in the middle of a task. A handler stays installed for
 * the case where a thread of the program's own takes the signal. Both are
 * undone when run() returns. Servers run inside tests leave handle_signals
 * off and call stop themselves.
 *
 * A stopping worker stops accepting (its listener closes), wakes its idle
 * connections (they close), and gives the connections in the middle of a
 * request shutdown_grace to finish: their responses carry Connection:
 * close. When the grace period ends, the rest are cancelled: their
 * handlers see -ECANCELED. Then the worker waits for its background work,
 * which is never cut short, and for the other workers (see "the end
 * barrier" below); then its loop ends.
 */
#include "http/server/core.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------ configuration */

void coil_http_config_init(coil_http_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->host = "127.0.0.1";
    cfg->port = 8080;
    cfg->workers = 0;
    cfg->max_request_line = 8 * 1024;
    cfg->max_header_bytes = 16 * 1024;
    cfg->max_headers = 100;
    cfg->max_body = 1024 * 1024;
    cfg->header_timeout = COIL_SEC(10);
    cfg->body_timeout = COIL_SEC(30);
    cfg->idle_timeout = COIL_SEC(5);
    cfg->max_connections = 10000;
    cfg->shutdown_grace = COIL_SEC(10);
    cfg->access_log = true;
    cfg->handle_signals = true;
}

/* Zero sizes and times mean the default: a zeroed struct still works. */
static void fill_defaults(coil_http_config *cfg) {
    coil_http_config d;
    coil_http_config_init(&d);
    if (!cfg->host) cfg->host = d.host;
#define DEFAULT(f) if (!cfg->f) cfg->f = d.f
    DEFAULT(max_request_line);
    DEFAULT(max_header_bytes);
    DEFAULT(max_headers);
    DEFAULT(max_body);
    DEFAULT(header_timeout);
    DEFAULT(body_timeout);
    DEFAULT(idle_timeout);
    DEFAULT(max_connections);
    DEFAULT(shutdown_grace);
#undef DEFAULT
    if (!cfg->workers) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->workers = n > 0 ? (unsigned)n : 1;
    }
}

/* ------------------------------------------------------------------ life */

coil_http_server *coil_http_server_new(const coil_http_config *cfg) {
    coil_http_server *srv = calloc(1, sizeof *srv);
    if (!srv) return NULL;
    srv->stop_rd = srv->stop_wr = -1;
    if (cfg) srv->cfg = *cfg;
    else coil_http_config_init(&srv->cfg);
    fill_defaults(&srv->cfg);
    srv->limits = (coil__http_limits){srv->cfg.max_request_line, srv->cfg.max_header_bytes,
                                      srv->cfg.max_headers, srv->cfg.max_body};
    atomic_init(&srv->port, -EAGAIN);
    srv->nworkers = srv->cfg.workers;
    int fds[2];
    if (!(srv->host = strdup(srv->cfg.host))) goto fail;
    srv->cfg.host = srv->host;
    if (!(srv->workers = calloc(srv->nworkers, sizeof *srv->workers))) goto fail;
    if (!(srv->router = coil__http_router_new(&srv->cfg))) goto fail;
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) goto fail;
    srv->stop_rd = fds[0];
    srv->stop_wr = fds[1];
    for (unsigned i = 0; i < srv->nworkers; i++) {
        srv->workers[i].srv = srv;
        srv->workers[i].index = i;
    }
    return srv;
fail:
    coil_http_server_free(srv);
    errno = ENOMEM;
    return NULL;
}

void coil_http_server_free(coil_http_server *srv) {
    if (!srv) return;
    COIL_ASSERT(!atomic_load(&srv->running));
    if (srv->router) coil__http_router_free(srv->router);
    free(srv->metrics);
    if (srv->stop_rd >= 0) close(srv->stop_rd);
    if (srv->stop_wr >= 0) close(srv->stop_wr);
    free(srv->workers);
    free(srv->host);
    free(srv);
}

int coil_http_server_port(const coil_http_server *srv) { return atomic_load(&srv->port); }

void coil_http_server_stop(coil_http_server *srv) {
    int saved = errno; /* may run in a signal handler */
    ssize_t n = write(srv->stop_wr, "s", 1);
    (void)n;           /* a full pipe already holds a stop */
    errno = saved;
}

coil__http_router *coil__http_server_router(coil_http_server *srv) { return srv->router; }
const coil_http_config *coil__http_server_config(const coil_http_server *srv) { return &srv->cfg; }

int coil_http_add_metrics(coil_http_server *srv,
                          void (*fn)(coil_http_metrics_out *out, void *arg), void *arg) {
    if (!srv || !fn) return -EINVAL;
    if (atomic_load(&srv->running)) return -EBUSY;
    coil__http_metrics_source *m = realloc(srv->metrics, (srv->nmetrics + 1) * sizeof *m);
    if (!m) return -ENOMEM;
    m[srv->nmetrics++] = (coil__http_metrics_source){fn, arg};
    srv->metrics = m;
    return 0;
}

size_t coil__http_server_metrics(const coil_http_server *srv,
                                 const coil__http_metrics_source **out) {
    *out = srv->metrics;
    return srv->nmetrics;
}

size_t coil__http_server_loops(coil_http_server *srv, coil_loop **out, size_t max) {
    size_t n = 0;
    for (unsigned i = 0; i < srv->nworkers && n < max; i++) {
        coil_loop *l = atomic_load(&srv->workers[i].loop);
        if (l) out[n++] = l;
    }
    return n;
}

void coil_http_server_get_stats(coil_http_server *srv, coil_http_stats *out) {
    memset(out, 0, sizeof *out);
    coil__http_stats *sts[64];
    size_t n = 0;
    for (unsigned i = 0; i < srv->nworkers; i++) {
        sts[n++] = &srv->workers[i].stats;
        if (n == sizeof sts / sizeof sts[0] || i + 1 == srv->nworkers) {
            coil__http_stats_merge(sts, n, out);
            n = 0;
        }
    }
    out->connections = atomic_load(&srv->open);
}

/* ------------------------------------------------------------------ signals */

static _Atomic(coil_http_server *) signal_server;
static struct sigaction saved_term, saved_int;

static void on_signal(int sig) {
    (void)sig;
    coil_http_server *srv = atomic_load(&signal_server);
    if (srv) coil_http_server_stop(srv);
}

/* The thread that takes SIGTERM and SIGINT while a server runs. */
static struct {
    pthread_t thread;
    bool started;
    atomic_bool done;
    sigset_t set;                 /* SIGTERM, SIGINT */
    sigset_t caller_mask;         /* run()'s thread's mask before */
} signal_taker;

static void *take_signals(void *arg) {
    coil_http_server *srv = arg;
    while (!atomic_load(&signal_taker.done)) {
        struct timespec wait = {1, 0};
        int sig = sigtimedwait(&signal_taker.set, NULL, &wait);
        if (sig > 0 && !atomic_load(&signal_taker.done)) coil_http_server_stop(srv);
    }
    return NULL;
}

/* Routes SIGTERM and SIGINT to `srv` (one server at a time). */
static bool signals_install(coil_http_server *srv) {
    coil_http_server *none = NULL;
    if (!atomic_compare_exchange_strong(&signal_server, &none, srv)) return false;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, &saved_term);
    sigaction(SIGINT, &sa, &saved_int);
    sigemptyset(&signal_taker.set);
    sigaddset(&signal_taker.set, SIGTERM);
    sigaddset(&signal_taker.set, SIGINT);
    atomic_store(&signal_taker.done, false);
    /* This thread, and the workers it starts, leave the two to the taker;
     * the taker itself blocks every signal (sigtimedwait wants them
     * blocked). Without the taker, the handler takes them. */
    pthread_sigmask(SIG_BLOCK, &signal_taker.set, &signal_taker.caller_mask);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    signal_taker.started = pthread_create(&signal_taker.thread, NULL, take_signals, srv) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!signal_taker.started) pthread_sigmask(SIG_SETMASK, &signal_taker.caller_mask, NULL);
    return true;
}

static void signals_restore(void) {
    if (signal_taker.started) {
        atomic_store(&signal_taker.done, true);
        pthread_kill(signal_taker.thread, SIGTERM); /* ends its wait at once */
        pthread_join(signal_taker.thread, NULL);
        signal_taker.started = false;
        pthread_sigmask(SIG_SETMASK, &signal_taker.caller_mask, NULL);
    }
    sigaction(SIGTERM, &saved_term, NULL);
    sigaction(SIGINT, &saved_int, NULL);
    atomic_store(&signal_server, NULL);
}

/* ------------------------------------------------------------------ a worker's loop */

static coil_result accept_main(void *arg) {
    coil__http_worker *w = arg;
    coil_http_server *srv = w->srv;
    while (w->listener) {
        coil_stream *s;
        int err = COIL__AT(coil_listener_accept(w->listener, &s));
        if (err == -EPIPE || err == -ECANCELED) break;
        if (err) { /* out of descriptors, say: let connections finish */
            if (coil_sleep(COIL_MSEC(10))) break;
            continue;
        }
        if (atomic_fetch_add(&srv->open, 1) >= srv->cfg.max_connections) {
            atomic_fetch_sub(&srv->open, 1);
            coil__http_reject(w, s);
            continue;
        }
        coil__http_count(&w->stats.connections_total);
        if (!coil_group_spawn_named(&w->conns, "http-conn", coil__http_conn_main, s)) {
            atomic_fetch_sub(&srv->open, 1);
            coil_stream_close_reset(s);
        }
    }
    return coil_ok(NULL);
}

static void stop_cb(void *arg) {
    coil__http_worker *w = arg;
    coil_event_set(&w->stop);
}

void coil__http_worker_stop(coil__http_worker *w) {
    coil_loop *l = atomic_load(&w->loop);
    if (l == coil_loop_current()) coil_event_set(&w->stop);
    else if (l) coil_call_soon_threadsafe(l, stop_cb, w);
}

/* Serves until told to stop, then drains (see the file header). Suspends. */
static void worker_serve(coil__http_worker *w) {
    coil_group_init(&w->bg);
    coil_group_init(&w->conns);
    if (!coil_group_spawn_named(&w->conns, "http-accept", accept_main, w))
        coil__log("http: cannot start accepting on worker %u", w->index);
    coil_task *sweeper = coil_spawn_named("http-sweep", coil__http_sweep_main, w);
    if (!sweeper) coil__log("http: no idle timeouts on worker %u (out of memory)", w->index);
    COIL__AT(coil_event_wait(&w->stop));
    w->draining = true;
    coil_listener *l = w->listener;
    w->listener = NULL;
    coil_listener_close(l);
    coil__list *it;
    coil__list_foreach(it, &w->conn_list) {
        coil__http_conn_wake_idle(COIL_CONTAINER_OF(it, coil__http_conn, link));
    }
    coil_scope grace;
    coil_scope_enter(&grace, coil_now() + w->srv->cfg.shutdown_grace);
    coil_group_wait(&w->conns); /* past the grace period: cancelled, then awaited */
    coil_scope_exit(&grace);
    if (sweeper) {
        coil_cancel(sweeper);
        coil_join(sweeper, NULL);
    }
    coil_group_wait(&w->bg);
    coil_group_destroy(&w->conns);
    coil_group_destroy(&w->bg);
}

/* ------------------------------------------------------------------ the end barrier
 *
 * A handler may read the metrics of every worker's loop (/metrics does),
 * so no loop may close while a handler of another worker can still run.
 * Each worker, done serving, counts itself out and waits; the last one
 * out releases them all. While a loop waits it has nothing but this
 * cross-thread wake-up to wait for, so it counts as remote work in
 * flight (xpending), which keeps the loop from seeing a deadlock. */

static void finished_cb(void *arg) {
    coil__http_worker *w = arg;
    coil_event_set(&w->finished);
}

/* Counts `w` out of serving; the last one out releases every waiting
 * worker. Any thread. */
static void leave_serving(coil__http_worker *w) {
    coil_http_server *srv = w->srv;
    if (atomic_fetch_sub(&srv->serving, 1) != 1) return;
    for (unsigned i = 0; i < srv->nworkers; i++) {
        coil__http_worker *o = &srv->workers[i];
        coil_loop *l = atomic_load(&o->loop);
        if (!l) continue; /* failed, or never started */
        if (l == coil_loop_current()) coil_event_set(&o->finished);
        else coil_call_soon_threadsafe(l, finished_cb, o);
    }
}

/* Waits until every worker is done serving. Suspends. */
static void wait_all_done(coil__http_worker *w) {
    coil_loop *loop = coil_loop_current();
    atomic_fetch_add(&loop->xpending, 1);
    leave_serving(w);
    coil_scope shield;
    coil_scope_enter_shielded(&shield, COIL_NEVER);
    COIL__AT(coil_event_wait(&w->finished));
    coil_scope_exit(&shield);
    atomic_fetch_sub(&loop->xpending, 1);
}

/* Sets the worker up on the calling loop and listens on `port`. */
static int worker_listen(coil__http_worker *w, uint16_t port) {
    coil_event_init(&w->stop);
    coil_event_init(&w->finished);
    atomic_store(&w->loop, coil_loop_current());
    coil__http_current_worker = w;
    coil__list_init(&w->conn_list);
    w->draining = false;
    w->rejecting = 0;
    w->date_next = 0;
    return coil_listen_tcp(w->srv->cfg.host, port, 0, COIL_LISTEN_REUSEPORT, &w->listener);
}

static void worker_leave(coil__http_worker *w) {
    atomic_store(&w->loop, NULL);
    coil__http_current_worker = NULL;
}

/* On worker 0's loop: worker `arg` is listening, or failed. */
static void report_cb(void *arg) {
    coil__http_worker *w = arg;
    coil_http_server *srv = w->srv;
    if (w->start_err && !srv->start_err) srv->start_err = w->start_err;
    if (++srv->reported == srv->nworkers - 1) coil_event_set(&srv->all_ready);
}

static void report(coil__http_worker *w, int err) {
    w->reported = true;
    w->start_err = err;
    coil_loop *l0 = atomic_load(&w->srv->workers[0].loop);
    if (coil_call_soon_threadsafe(l0, report_cb, w))
        coil__log("http: worker %u could not report to worker 0", w->index);
}

static coil_result worker_main(void *arg) {
    coil__http_worker *w = arg;
    int err = worker_listen(w, w->srv->bound_port);
    if (err) {
        worker_leave(w);
        report(w, err);
        leave_serving(w);
        return coil_fail(err);
    }
    report(w, 0);
    worker_serve(w);
    wait_all_done(w);
    worker_leave(w);
    return coil_ok(NULL);
}

static void *worker_thread(void *arg) {
    coil__http_worker *w = arg;
    coil_result r;
    int err = coil_run(worker_main, w, &r);
    if (!w->reported) { /* the loop never ran worker_main */
        report(w, err ? err : -ENOMEM);
        leave_serving(w);
    }
    return NULL;
}

/* Waits for stop bytes, then stops every worker. */
static coil_result stop_watch_main(void *arg) {
    coil_http_server *srv = arg;
    coil_stream *s = NULL;
    int fd = fcntl(srv->stop_rd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0 || coil_stream_open(fd, &s)) {
        if (fd >= 0) close(fd);
        coil__log("http: cannot watch for stop requests");
    } else {
        char c;
        COIL__AT(coil_stream_read(s, &c, 1)); /* a byte, or an error: stop either way */
        coil_stream_close(s);
    }
    for (unsigned i = 0; i < srv->nworkers; i++) coil__http_worker_stop(&srv->workers[i]);
    return coil_ok(NULL);
}

/* Starts workers 1..n-1 and waits for their reports. Returns 0 or the
 * first failure. Suspends. */
static int start_others(coil_http_server *srv) {
    coil_event_init(&srv->all_ready);
    srv->reported = 0;
    srv->start_err = 0;
    for (unsigned i = 1; i < srv->nworkers; i++) {
        coil__http_worker *w = &srv->workers[i];
        w->reported = false;
        w->start_err = 0;
        /* Process signals (SIGTERM, SIGINT) go to the thread that called
         * run(), where the handler is installed; the other loops block them
         * (a signal left pending on a busy thread could wait there). */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        int err = pthread_create(&w->thread, NULL, worker_thread, w);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        w->thread_started = err == 0;
        if (err) { /* report for it, so the counts complete */
            w->start_err = -err;
            report_cb(w);
            leave_serving(w);
        }
    }
    if (srv->nworkers > 1) coil_event_wait(&srv->all_ready);
    return srv->start_err;
}

static coil_result server_main(void *arg) {
    coil_http_server *srv = arg;
    coil__http_worker *w0 = &srv->workers[0];
    int err = worker_listen(w0, srv->cfg.port);
    if (err) { /* no other worker started */
        worker_leave(w0);
        return coil_fail(err);
    }
    srv->bound_port = (uint16_t)coil_listener_port(w0->listener); /* for the others */
    err = start_others(srv);
    if (err) {
        for (unsigned i = 1; i < srv->nworkers; i++)
            if (srv->workers[i].reported && !srv->workers[i].start_err)
                coil__http_worker_stop(&srv->workers[i]);
        coil_listener_close(w0->listener);
        w0->listener = NULL;
        wait_all_done(w0);
        worker_leave(w0);
        return coil_fail(err);
    }
    atomic_store(&srv->port, srv->bound_port); /* every worker listens: serve */
    coil_task *watcher = coil_spawn_named("http-stop", stop_watch_main, srv);
    if (!watcher) {
        coil_event_set(&w0->stop);
        for (unsigned i = 1; i < srv->nworkers; i++) coil__http_worker_stop(&srv->workers[i]);
    }
    worker_serve(w0);
    if (watcher) coil_join(watcher, NULL);
    wait_all_done(w0);
    worker_leave(w0);
    return coil_ok(NULL);
}

int coil_http_server_run(coil_http_server *srv) {
    if (atomic_exchange(&srv->running, true)) return -EBUSY;
    atomic_store(&srv->port, -EAGAIN);
    atomic_store(&srv->serving, srv->nworkers);
    bool signals = srv->cfg.handle_signals && signals_install(srv);
    coil_result r = {NULL, 0};
    int err = coil_run(server_main, srv, &r);
    for (unsigned i = 1; i < srv->nworkers; i++) {
        coil__http_worker *w = &srv->workers[i];
        if (w->thread_started) pthread_join(w->thread, NULL);
        w->thread_started = false;
    }
    if (signals) signals_restore();
    char drop[64]; /* stop bytes left over: this run has stopped */
    while (read(srv->stop_rd, drop, sizeof drop) > 0) {
    }
    atomic_store(&srv->running, false);
    return err ? err : r.err;
}
