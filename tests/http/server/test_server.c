/* tests/http/server/test_server.c: the server's life and its responses, through
 * real sockets: graceful shutdown with a request in flight, the grace
 * period, a client disconnect cancelling its handler, background work (after
 * the response, in order, with the request's task-local values, awaited at
 * shutdown), several workers, signals, stats, and every kind of response:
 * JSON, defaults, chunked, SSE, files. Servers run on threads of their own
 * (COIL_TEST_THREADS). */
#include "http/server/core_fixture.h"

#include "http/internal.h"

#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <sys/stat.h>

/* What handlers observed, read by the test thread. */
static atomic_int started;       /* handlers that began */
static atomic_int handler_err;   /* what the last one's sleep returned, 1: not yet */
static atomic_int bg_done;       /* background steps done */
static char bg_seen_id[64];      /* the request ID background work saw */
static int bg_order[4];          /* the order background steps ran in */

static void reset_observations(void) {
    atomic_store(&started, 0);
    atomic_store(&handler_err, 1);
    atomic_store(&bg_done, 0);
    bg_seen_id[0] = '\0';
    memset(bg_order, 0, sizeof bg_order);
}

/* Waits up to 10 s for `v` to equal `want`. */
static bool wait_for(atomic_int *v, int want) {
    for (int i = 0; i < 10000; i++) {
        if (atomic_load(v) == want) return true;
        fx_sleep_ms(1);
    }
    return atomic_load(v) == want;
}

/* ------------------------------------------------------------------ handlers */

/* Sleeps ?ms= (default 10 s), records how the sleep ended, then answers. */
static int sleeper(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)arg;
    char ms[16];
    long n = coil_http_query_param(req, "ms", ms, sizeof ms) > 0 ? strtol(ms, NULL, 10) : 10000;
    atomic_fetch_add(&started, 1);
    int err = coil_sleep(COIL_MSEC(n));
    atomic_store(&handler_err, err);
    if (err) return err;
    return coil_http_respond_text(res, 200, "done");
}

static int hello(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)req;
    (void)arg;
    return coil_http_respond_text(res, 200, "Hello, World!");
}

static coil_result bg_step(void *arg) {
    int step = (int)(intptr_t)arg;
    if (step == 1) {
        coil_sleep(COIL_MSEC(100));
        const char *id = coil_http_current_request_id();
        snprintf(bg_seen_id, sizeof bg_seen_id, "%s", id ? id : "(none)");
    }
    int n = atomic_load(&bg_done);
    if (n < 4) bg_order[n] = step;
    atomic_store(&bg_done, n + 1);
    return coil_ok(NULL);
}

static coil_result bg_slow(void *arg) {
    (void)arg;
    coil_sleep(COIL_MSEC(300));
    atomic_fetch_add(&bg_done, 1);
    return coil_ok(NULL);
}

static int with_background(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)arg;
    if (coil_http_query(req)[0] == 's') {
        if (coil_http_background(req, bg_slow, NULL)) return -ENOMEM;
    } else {
        if (coil_http_background(req, bg_step, (void *)1)) return -ENOMEM;
        if (coil_http_background(req, bg_step, (void *)2)) return -ENOMEM;
    }
    return coil_http_respond_text(res, 200, "queued");
}

static coil_http_server *make_server(coil_http_config *cfg) {
    coil_http_config d = fx_config();
    coil_http_server *srv = coil_http_server_new(cfg ? cfg : &d);
    ASSERT(srv != NULL);
    ASSERT_EQ(coil_http_route(srv, "GET", "/sleep", sleeper, NULL, 0), 0);
    ASSERT_EQ(coil_http_route(srv, "GET", "/hello", hello, NULL, 0), 0);
    ASSERT_EQ(coil_http_route(srv, "GET", "/bg", with_background, NULL, 0), 0);
    return srv;
}

/* ------------------------------------------------------------------ shutdown */

TEST(graceful_shutdown_finishes_inflight_request) {
    reset_observations();
    fx_server f;
    fx_start(&f, make_server(NULL));
    fx_conn *idle = fx_open(f.port);          /* keep-alive, between requests */
    fx_send_str(idle->fd, "GET /hello HTTP/1.1\r\nHost: h\r\n\r\n");
    fx_response r;
    ASSERT(fx_read_response(idle, &r, false));
    fx_response_free(&r);
    fx_conn *busy = fx_open(f.port);
    fx_send_str(busy->fd, "GET /sleep?ms=300 HTTP/1.1\r\nHost: h\r\n\r\n");
    ASSERT(wait_for(&started, 1));
    coil_http_server_stop(f.srv);
    /* The idle connection is closed at once, without a word. */
    ASSERT(fx_closed(idle));
    ASSERT_EQ(idle->len, 0);
    /* The request in flight completes, and its connection then closes. */
    ASSERT(fx_read_response(busy, &r, false));
    ASSERT_EQ(r.status, 200);
    ASSERT_STR_EQ(r.body, "done");
    ASSERT_STR_EQ(fx_header(&r, "Connection"), "close");
    fx_response_free(&r);
    ASSERT(fx_closed(busy));
    ASSERT_EQ(atomic_load(&handler_err), 0);
    fx_close(idle);
    fx_close(busy);
    ASSERT_EQ(fx_stop(&f), 0);
}

TEST(grace_period_expiry_cancels_handlers) {
    reset_observations();
    coil_http_config cfg = fx_config();
    cfg.shutdown_grace = COIL_MSEC(200);
    fx_server f;
    fx_start(&f, make_server(&cfg));
    fx_conn *c = fx_open(f.port);
    fx_send_str(c->fd, "GET /sleep HTTP/1.1\r\nHost: h\r\n\r\n"); /* 10 s */
    ASSERT(wait_for(&started, 1));
    ASSERT_EQ(fx_stop(&f), 0);
    ASSERT_EQ(atomic_load(&handler_err), -ECANCELED);
    ASSERT(fx_closed(c));
    fx_close(c);
}

TEST(stop_before_run_returns_at_once) {
    coil_http_server *srv = make_server(NULL);
    coil_http_server_stop(srv);
    ASSERT_EQ(coil_http_server_run(srv), 0);
    coil_http_server_free(srv);
}

TEST(sigterm_stops_the_server) {
    coil_http_config cfg = fx_config();
    cfg.handle_signals = true;
    fx_server f;
    fx_start(&f, make_server(&cfg));
    ASSERT_EQ(fx_get(f.port, "/hello", NULL), 200);
    ASSERT_EQ(kill(getpid(), SIGTERM), 0);
    pthread_join(f.thread, NULL);
    ASSERT_EQ(f.result, 0);
    /* The previous disposition is back. */
    struct sigaction sa;
    sigaction(SIGTERM, NULL, &sa);
    ASSERT(sa.sa_handler == SIG_DFL);
    coil_http_server_free(f.srv);
}

/* ------------------------------------------------------------------ disconnects */

static void disconnect_cancels(bool reset) {
    reset_observations();
    fx_server f;
    fx_start(&f, make_server(NULL));
    int fd = fx_connect(f.port);
    fx_send_str(fd, "GET /sleep HTTP/1.1\r\nHost: h\r\n\r\n");
    ASSERT(wait_for(&started, 1));
    if (reset) {
        struct linger lg = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(fd);
    ASSERT(wait_for(&handler_err, -ECANCELED));
    ASSERT_EQ(fx_get(f.port, "/hello", NULL), 200);
    ASSERT_EQ(fx_stop(&f), 0);
}

TEST(client_disconnect_cancels_handler) { disconnect_cancels(false); }

TEST(client_reset_cancels_handler) { disconnect_cancels(true); }

TEST(pipelined_bytes_are_not_a_disconnect) {
    reset_observations();
    fx_server f;
    fx_start(&f, make_server(NULL));
    fx_conn *c = fx_open(f.port);
    fx_send_str(c->fd, "GET /sleep?ms=200 HTTP/1.1\r\nHost: h\r\n\r\n");
    ASSERT(wait_for(&started, 1));
    fx_send_str(c->fd, "GET /hello HTTP/1.1\r\nHost: h\r\n\r\n"); /* while it sleeps */
    fx_response r;
    ASSERT(fx_read_response(c, &r, false));
    ASSERT_EQ(r.status, 200);
    ASSERT_STR_EQ(r.body, "done");
    fx_response_free(&r);
    ASSERT(fx_read_response(c, &r, false));
    ASSERT_STR_EQ(r.body, "Hello, World!");
    fx_response_free(&r);
    ASSERT_EQ(atomic_load(&handler_err), 0);
    fx_close(c);
    ASSERT_EQ(fx_stop(&f), 0);
}

/* ------------------------------------------------------------------ background work */

TEST(background_runs_after_response_in_order_with_request_id) {
    reset_observations();
    fx_server f;
    fx_start(&f, make_server(NULL));
    fx_conn *c = fx_open(f.port);
    fx_send_str(c->fd, "GET /bg HTTP/1.1\r\nHost: h\r\nX-Request-ID: req-42\r\n\r\n");
    fx_response r;
    ASSERT(fx_read_response(c, &r, false));
    ASSERT_EQ(r.status, 200);
    ASSERT_STR_EQ(r.body, "queued");
    ASSERT_EQ(atomic_load(&bg_done), 0); /* the first step sleeps 100 ms first */
    fx_response_free(&r);
    ASSERT(wait_for(&bg_done, 2));
    ASSERT_EQ(bg_order[0], 1);
    ASSERT_EQ(bg_order[1], 2);
    ASSERT_STR_EQ(bg_seen_id, "req-42");
    fx_close(c);
    ASSERT_EQ(fx_stop(&f), 0);
}

TEST(background_awaited_at_shutdown) {
    reset_observations();
    fx_server f;
    fx_start(&f, make_server(NULL));
    char *body = NULL;
    ASSERT_EQ(fx_get(f.port, "/bg?slow", &body), 200);
    free(body);
    ASSERT_EQ(fx_stop(&f), 0); /* returns only once the work is done */
    ASSERT_EQ(atomic_load(&bg_done), 1);
}

/* ------------------------------------------------------------------ workers and stats */

static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static coil_loop *seen_loops[8];
static int nseen;

static int which_loop(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)req;
    (void)arg;
    coil_loop *l = coil_loop_current();
    pthread_mutex_lock(&seen_lock);
    bool known = false;
    for (int i = 0; i < nseen; i++) known |= seen_loops[i] == l;
    if (!known && nseen < 8) seen_loops[nseen++] = l;
    pthread_mutex_unlock(&seen_lock);
    return coil_http_respond_text(res, 200, "ok");
}

TEST(multi_worker_serves_on_every_worker) {
    coil_http_config cfg = fx_config();
    cfg.workers = 3;
    coil_http_server *srv = make_server(&cfg);
    ASSERT_EQ(coil_http_route(srv, "GET", "/loop", which_loop, NULL, 0), 0);
    fx_server f;
    fx_start(&f, srv);
    for (int i = 0; i < 300; i++) {
        ASSERT_EQ(fx_get(f.port, "/loop", NULL), 200);
        pthread_mutex_lock(&seen_lock);
        int n = nseen;
        pthread_mutex_unlock(&seen_lock);
        if (n == 3) break;
    }
    ASSERT_EQ(nseen, 3);
    coil_loop *loops[8];
    ASSERT_EQ(coil__http_server_loops(f.srv, loops, 8), 3);
    ASSERT_EQ(fx_stop(&f), 0);
}

TEST(stats_count_requests_and_latencies) {
    fx_server f;
    fx_start(&f, make_server(NULL));
    for (int i = 0; i < 5; i++) ASSERT_EQ(fx_get(f.port, "/hello", NULL), 200);
    ASSERT_EQ(fx_get(f.port, "/nowhere", NULL), 404);
    ASSERT_EQ(fx_get(f.port, "/sleep?ms=50", NULL), 200);
    coil_http_stats st;
    for (int i = 0; i < 1000; i++) {
        coil_http_server_get_stats(f.srv, &st);
        if (st.requests == 7) break;
        fx_sleep_ms(1);
    }
    ASSERT_EQ(st.requests, 7);
    ASSERT_EQ(st.status[2], 6);
    ASSERT_EQ(st.status[4], 1);
    ASSERT_EQ(st.connections_total, 7);
    ASSERT(st.latency_p50 > 0);
    ASSERT(st.latency_max >= 0.045 && st.latency_max < 5);
    ASSERT(st.latency_p50 <= st.latency_p99 && st.latency_p99 <= st.latency_max * 1.07);
    ASSERT_EQ(fx_stop(&f), 0);
}

/* ------------------------------------------------------------------ responses */

static int kinds(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)arg;
    const char *p = coil_http_path(req);
    if (strcmp(p, "/json") == 0) {
        json_t *doc = json_pack("{s:i,s:s}", "a", 1, "b", "x\"y");
        int err = coil_http_respond_json(res, 201, doc);
        json_decref(doc);
        return err;
    }
    if (strcmp(p, "/nothing") == 0) return 0;
    if (strcmp(p, "/fail") == 0) return -EIO;
    if (strcmp(p, "/headers") == 0) {
        ASSERT_EQ(coil_http_set_header(res, "X-Bad", "a\r\nInjected: 1"), -EINVAL);
        ASSERT_EQ(coil_http_set_header(res, "Bad Name", "v"), -EINVAL);
        ASSERT_EQ(coil_http_set_header(res, "Content-Length", "5"), -EINVAL);
        ASSERT_EQ(coil_http_set_header(res, "X-Good", "yes"), 0);
        ASSERT_EQ(coil_http_respond_text(res, 200, "h"), 0);
        ASSERT_EQ(coil_http_set_header(res, "X-Late", "no"), -EALREADY);
        ASSERT_EQ(coil_http_respond_text(res, 200, "again"), -EALREADY);
        ASSERT(coil_http_responded(res));
        ASSERT_EQ(coil_http_status(res), 200);
        return 0;
    }
    if (strcmp(p, "/chunked") == 0) {
        int err = coil_http_begin_chunked(res, 200, "text/plain");
        for (int i = 0; i < 3 && !err; i++) {
            char piece[16];
            int n = snprintf(piece, sizeof piece, "piece%d;", i);
            err = coil_http_write_chunk(res, piece, (size_t)n);
            if (!err) err = coil_sleep(COIL_MSEC(5));
        }
        return err ? err : coil_http_end_chunked(res);
    }
    if (strcmp(p, "/big") == 0) { /* 4 MiB, streamed under back-pressure */
        static char block[64 * 1024];
        int err = coil_http_begin_chunked(res, 200, "application/octet-stream");
        for (int i = 0; i < 64 && !err; i++) {
            memset(block, 'a' + i % 26, sizeof block);
            err = coil_http_write_chunk(res, block, sizeof block);
        }
        return err ? err : coil_http_end_chunked(res);
    }
    if (strcmp(p, "/sse") == 0) {
        int err = coil_http_sse_begin(res);
        if (!err) err = coil_http_sse_send(res, "greet", "line1\nline2\r\nline3");
        if (!err) err = coil_http_sse_send(res, NULL, "x");
        if (!err) ASSERT_EQ(coil_http_sse_send(res, "bad\nname", "y"), -EINVAL);
        return err; /* the core ends the stream */
    }
    return coil_http_respond_error(res, 404, "no such kind");
}

static char file_path[64];

static int send_one_file(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)arg;
    const char *which = coil_http_param(req, "name");
    if (strcmp(which, "missing") == 0) return coil_http_send_file(res, "/nonexistent/file.txt");
    return coil_http_send_file(res, file_path);
}

static coil_http_server *kinds_server(void) {
    coil_http_server *srv = make_server(NULL);
    const char *paths[] = {"/json", "/nothing", "/fail", "/headers", "/chunked", "/big", "/sse"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        ASSERT_EQ(coil_http_route(srv, "GET", paths[i], kinds, NULL, 0), 0);
    ASSERT_EQ(coil_http_route(srv, "GET", "/file/{name}", send_one_file, NULL, 0), 0);
    return srv;
}

/* GETs `path` on a fresh connection into *r. */
static void get(uint16_t port, const char *path, fx_response *r) {
    fx_conn *c = fx_open(port);
    char req[256];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: h\r\n\r\n", path);
    fx_send_str(c->fd, req);
    ASSERT(fx_read_response(c, r, false));
    fx_close(c);
}

TEST(json_default_and_error_responses) {
    fx_server f;
    fx_start(&f, kinds_server());
    fx_response r;
    get(f.port, "/json", &r);
    ASSERT_EQ(r.status, 201);
    ASSERT_STR_EQ(fx_header(&r, "Content-Type"), "application/json");
    ASSERT_STR_EQ(r.body, "{\"a\":1,\"b\":\"x\\\"y\"}");
    fx_response_free(&r);
    get(f.port, "/nothing", &r);
    ASSERT_EQ(r.status, 204);
    ASSERT(fx_header(&r, "Content-Length") == NULL);
    fx_response_free(&r);
    get(f.port, "/fail", &r);
    ASSERT_EQ(r.status, 500);
    ASSERT_CONTAINS(r.body, "\"error\"");
    fx_response_free(&r);
    get(f.port, "/headers", &r);
    ASSERT_EQ(r.status, 200);
    ASSERT_STR_EQ(fx_header(&r, "X-Good"), "yes");
    ASSERT(fx_header(&r, "Injected") == NULL);
    ASSERT_STR_EQ(r.body, "h");
    fx_response_free(&r);
    ASSERT_EQ(fx_stop(&f), 0);
}

TEST(chunked_and_streaming_responses) {
    fx_server f;
    fx_start(&f, kinds_server());
    fx_response r;
    get(f.port, "/chunked", &r);
    ASSERT_EQ(r.status, 200);
    ASSERT(r.chunked);
    ASSERT_STR_EQ(r.body, "piece0;piece1;piece2;");
    fx_response_free(&r);
    /* A slow reader: the server must stream under back-pressure. */
    fx_conn *c = fx_open(f.port);
    int small = 65536;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    fx_send_str(c->fd, "GET /big HTTP/1.1\r\nHost: h\r\n\r\n");
    fx_sleep_ms(200);
    ASSERT(fx_read_response(c, &r, false));
    ASSERT_EQ(r.body_len, 64 * 64 * 1024);
    for (size_t i = 0; i < r.body_len; i += 64 * 1024) ASSERT_EQ(r.body[i], 'a' + (int)(i / 65536) % 26);
    fx_response_free(&r);
    fx_close(c);
    /* HTTP/1.0 has no chunks: the body ends with the connection. */
    c = fx_open(f.port);
    fx_send_str(c->fd, "GET /chunked HTTP/1.0\r\n\r\n");
    ASSERT(fx_read_response(c, &r, false));
    ASSERT(!r.chunked);
    ASSERT_STR_EQ(r.body, "piece0;piece1;piece2;");
    fx_response_free(&r);
    fx_close(c);
    ASSERT_EQ(fx_stop(&f), 0);
}

TEST(server_sent_events) {
    fx_server f;
    fx_start(&f, kinds_server());
    fx_response r;
    get(f.port, "/sse", &r);
    ASSERT_EQ(r.status, 200);
    ASSERT_STR_EQ(fx_header(&r, "Content-Type"), "text/event-stream");
    ASSERT_STR_EQ(fx_header(&r, "Cache-Control"), "no-cache");
    ASSERT_STR_EQ(r.body, "event: greet\ndata: line1\ndata: line2\ndata: line3\n\ndata: x\n\n");
    fx_response_free(&r);
    ASSERT_EQ(fx_stop(&f), 0);
}

TEST(send_file_with_sendfile) {
    snprintf(file_path, sizeof file_path, "/tmp/coil-test-%d.txt", (int)getpid());
    size_t size = 12 * 1024 * 1024 + 17; /* more than the socket buffers hold */
    char *content = malloc(size);
    ASSERT(content != NULL);
    for (size_t i = 0; i < size; i++) content[i] = (char)('A' + i % 23);
    int fd = open(file_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ASSERT(fd >= 0);
    ASSERT_EQ(write(fd, content, size), (ssize_t)size);
    close(fd);
    fx_server f;
    fx_start(&f, kinds_server());
    fx_response r;
    /* A slow reader: sendfile meets a full socket and must wait for room. */
    fx_conn *c = fx_open(f.port);
    int small = 65536;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    fx_send_str(c->fd, "GET /file/x.txt HTTP/1.1\r\nHost: h\r\n\r\n"
                       "HEAD /file/x.txt HTTP/1.1\r\nHost: h\r\n\r\n");
    fx_sleep_ms(100);
    ASSERT(fx_read_response(c, &r, false));
    ASSERT_EQ(r.status, 200);
    ASSERT_STR_EQ(fx_header(&r, "Content-Type"), "text/plain; charset=utf-8");
    ASSERT_EQ(r.body_len, size);
    ASSERT(memcmp(r.body, content, size) == 0);
    fx_response_free(&r);
    ASSERT(fx_read_response(c, &r, true));
    ASSERT_EQ(r.status, 200);
    char len[32];
    snprintf(len, sizeof len, "%zu", size);
    ASSERT_STR_EQ(fx_header(&r, "Content-Length"), len);
    fx_response_free(&r);
    fx_close(c);
    get(f.port, "/file/missing", &r);
    ASSERT_EQ(r.status, 404);
    fx_response_free(&r);
    ASSERT_EQ(fx_stop(&f), 0);
    unlink(file_path);
    free(content);
}

/* A blocking handler answers from a pool thread; the loop sends it. */
static int blocking_hello(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)arg;
    ASSERT(coil_current() == NULL);
    char who[32] = "nobody";
    coil_http_query_param(req, "who", who, sizeof who);
    coil_http_set_header(res, "X-Who", who);
    return coil_http_respond_text(res, 200, "from the pool");
}

TEST(blocking_handler_response) {
    coil_http_server *srv = make_server(NULL);
    ASSERT_EQ(coil_http_route(srv, "GET", "/blocking", blocking_hello, NULL, COIL_HTTP_BLOCKING), 0);
    fx_server f;
    fx_start(&f, srv);
    fx_response r;
    get(f.port, "/blocking?who=me", &r);
    ASSERT_EQ(r.status, 200);
    ASSERT_STR_EQ(r.body, "from the pool");
    ASSERT_STR_EQ(fx_header(&r, "X-Who"), "me");
    fx_response_free(&r);
    ASSERT_EQ(fx_stop(&f), 0);
}
