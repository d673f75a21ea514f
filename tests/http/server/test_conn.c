/* tests/http/server/test_conn.c: the raw-socket suite. A real server on loopback
 * and plain blocking sockets: one test per limit and per request-smuggling
 * shape, each asserting the exact status, that the connection closes, and
 * that the server still serves the next connection; then pipelining order,
 * keep-alive, HTTP/1.0, HEAD, 100-continue, the Date header, and the
 * timeouts. The server runs on a thread of its own (COIL_TEST_THREADS). */
#include "http/server/core_fixture.h"

/* ------------------------------------------------------------------ routes */

static int hello(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)req;
    (void)arg;
    return coil_http_respond_text(res, 200, "Hello, World!");
}

static int echo(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)arg;
    size_t len;
    const void *body = coil_http_body(req, &len);
    return coil_http_respond(res, 200, "application/octet-stream", body, len);
}

/* GET /sleep?ms=N&tag=T: answers T after N ms. */
static int sleepy(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)arg;
    char ms[16], tag[32] = "slept";
    if (coil_http_query_param(req, "ms", ms, sizeof ms) > 0) {
        int err = coil_sleep(COIL_MSEC(strtol(ms, NULL, 10)));
        if (err) return err;
    }
    coil_http_query_param(req, "tag", tag, sizeof tag);
    return coil_http_respond_text(res, 200, tag);
}

static coil_http_server *make_server(const coil_http_config *cfg) {
    coil_http_server *srv = coil_http_server_new(cfg);
    ASSERT(srv != NULL);
    ASSERT_EQ(coil_http_route(srv, "GET", "/hello", hello, NULL, 0), 0);
    ASSERT_EQ(coil_http_route(srv, "POST", "/echo", echo, NULL, 0), 0);
    ASSERT_EQ(coil_http_route(srv, "GET", "/sleep", sleepy, NULL, 0), 0);
    return srv;
}

static void start(fx_server *f, const coil_http_config *cfg) {
    coil_http_config d = fx_config();
    fx_start(f, make_server(cfg ? cfg : &d));
}

/* The server still answers a fresh connection. */
static void assert_serves(uint16_t port) {
    char *body = NULL;
    ASSERT_EQ(fx_get(port, "/hello", &body), 200);
    ASSERT_STR_EQ(body, "Hello, World!");
    free(body);
}

/* Sends `request`; asserts `status`, a closed connection, and a server
 * that still serves. */
static void expect_refusal(uint16_t port, const char *request, size_t len, int status) {
    ASSERT_EQ(fx_status_of(port, request, len, true), status);
    assert_serves(port);
}

static void refuse(const char *request, int status) {
    fx_server f;
    start(&f, NULL);
    expect_refusal(f.port, request, strlen(request), status);
    ASSERT_EQ(fx_stop(&f), 0);
}

/* "<prefix><n times c><suffix>", malloc'd, length in *len. */
static char *build(const char *prefix, char c, size_t n, const char *suffix, size_t *len) {
    size_t a = strlen(prefix), b = strlen(suffix);
    char *s = malloc(a + n + b + 1);
    ASSERT(s != NULL);
    memcpy(s, prefix, a);
    memset(s + a, c, n);
    memcpy(s + a + n, suffix, b + 1);
    *len = a + n + b;
    return s;
}

/* ------------------------------------------------------------------ limits */

TEST(limit_request_line_414) {
    fx_server f;
    start(&f, NULL);
    size_t len;
    char *req = build("GET /", 'a', 9000, " HTTP/1.1\r\nHost: h\r\n\r\n", &len);
    expect_refusal(f.port, req, len, 414);
    free(req);
    ASSERT_EQ(fx_stop(&f), 0);
}

TEST(limit_header_block_431) {
    fx_server f;
    start(&f, NULL);
    size_t len;
    char *req = build("GET /hello HTTP/1.1\r\nHost: h\r\nX-Big: ", 'b', 17 * 1024, "\r\n\r\n", &len);
    expect_refusal(f.port, req, len, 431);
    free(req);
    ASSERT_EQ(fx_stop(&f), 0);
}

TEST(limit_header_count_431) {
    fx_server f;
    start(&f, NULL);
    char req[8192];
    size_t len = (size_t)snprintf(req, sizeof req, "GET /hello HTTP/1.1\r\nHost: h\r\n");
    for (int i = 0; i < 100; i++) len += (size_t)snprintf(req + len, sizeof req - len, "X-%d: v\r\n", i);
    len += (size_t)snprintf(req + len, sizeof req - len, "\r\n");
    expect_refusal(f.port, req, len, 431);
    ASSERT_EQ(fx_stop(&f), 0);
}

TEST(limit_body_413_at_once) {
    coil_http_config cfg = fx_config();
    cfg.max_body = 1000;
    fx_server f;
    start(&f, &cfg);
    /* Announced, never sent: the answer cannot wait for the body. */
    const char *announced = "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 1001\r\n\r\n";
    expect_refusal(f.port, announced, strlen(announced), 413);
    /* Sent, and far larger than the limit. */
    size_t len;
    char *req = build("POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 200000\r\n\r\n", 'x', 200000,
                      "", &len);
    expect_refusal(f.port, req, len, 413);
    free(req);
    ASSERT_EQ(fx_stop(&f), 0);
}

TEST(limit_body_chunked_413) {
    coil_http_config cfg = fx_config();
    cfg.max_body = 10;
    fx_server f;
    start(&f, &cfg);
    const char *req = "POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n";
    expect_refusal(f.port, req, strlen(req), 413);
    ASSERT_EQ(fx_stop(&f), 0);
}

TEST(header_timeout_408) {
    coil_http_config cfg = fx_config();
    cfg.header_timeout = COIL_MSEC(200);
    fx_server f;
    start(&f, &cfg);
    fx_conn *c = fx_open(f.port);
    fx_send_str(c->fd, "GET /hello HTTP/1.1\r\nHost: h\r\n"); /* and never the end */
    fx_response r;
    ASSERT(fx_read_response(c, &r, false));
    ASSERT_EQ(r.status, 408);
    ASSERT_STR_EQ(fx_header(&r, "Connection"), "close");
    fx_response_free(&r);
    ASSERT(fx_closed(c));
    fx_close(c);
    assert_serves(f.port);
    ASSERT_EQ(fx_stop(&f), 0);
}

TEST(header_timeout_counts_the_whole_head) {
    /* A byte every 50 ms keeps no read idle for long, but the head as a
     * whole must still arrive within the timeout. */
    coil_http_config cfg = fx_config();
    cfg.header_timeout = COIL_MSEC(300);
    fx_server f;
    start(&f, &cfg);
    fx_conn *c = fx_open(f.port);
    const char *head = "GET /hello HTTP/1.1\r\nHost: h\r\nX-Slow: abcdefghijklmnopqrstuvwxyz\r\n";
    bool refused = false;
    for (size_t i = 0; head[i] && !refused; i++) {
        char peek;
        if (send(c->fd, head + i, 1, MSG_NOSIGNAL) != 1) refused = true;
        else if (recv(c->fd, &peek, 1, MSG_PEEK | MSG_DONTWAIT) == 1) refused = true; /* answered */
        else fx_sleep_ms(50);
    }
    ASSERT(refused);
    fx_response r;
    ASSERT(fx_read_response(c, &r, false));
    ASSERT_EQ(r.status, 408);
    fx_response_free(&r);
    fx_close(c);
    assert_serves(f.port);
    ASSERT_EQ(fx_stop(&f), 0);
}

TEST(body_timeout_408) {
    coil_http_config cfg = fx_config();
    cfg.body_timeout = COIL_MSEC(200);
    fx_server f;
    start(&f, &cfg);
    fx_conn *c = fx_open(f.port);
    fx_send_str(c->fd, "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc");
    fx_response r;
    ASSERT(fx_read_response(c, &r, false));
    ASSERT_EQ(r.status, 408);
    fx_response_free(&r);
    ASSERT(fx_closed(c));
    fx_close(c);
    assert_serves(f.port);
    ASSERT_EQ(fx_stop(&f), 0);
}

TEST(idle_timeout_closes_silently) {
    coil_http_config cfg = fx_config();
    cfg.idle_timeout = COIL_MSEC(200);
    fx_server f;
    start(&f, &cfg);
    fx_conn *c = fx_open(f.port);
    fx_send_str(c->fd, "GET /hello HTTP/1.1\r\nHost: h\r\n\r\n");
    fx_response r;
    ASSERT(fx_read_response(c, &r, false));
    ASSERT_EQ(r.status, 200);
    fx_response_free(&r);
    ASSERT(fx_closed(c));
    ASSERT_EQ(c->len, 0); /* nothing more was said */
    fx_close(c);
    /* A connection that never sends a byte is closed the same way. */
    c = fx_open(f.port);
    ASSERT(fx_closed(c));
    ASSERT_EQ(c->len, 0);
    fx_close(c);
    assert_serves(f.port);
    ASSERT_EQ(fx_stop(&f), 0);
}

TEST(max_connections_503) {
    coil_http_config cfg = fx_config();
    cfg.max_connections = 2;
    fx_server f;
    start(&f, &cfg);
    fx_conn *a = fx_open(f.port), *b = fx_open(f.port);
    /* Both are served and held open (keep-alive). */
    for (int i = 0; i < 2; i++) {
        fx_conn *c = i ? b : a;
        fx_send_str(c->fd, "GET /hello HTTP/1.1\r\nHost: h\r\n\r\n");
        fx_response r;
        ASSERT(fx_read_response(c, &r, false));
        ASSERT_EQ(r.status, 200);
        fx_response_free(&r);
    }
    const char *req = "GET /hello HTTP/1.1\r\nHost: h\r\n\r\n";
    ASSERT_EQ(fx_status_of(f.port, req, strlen(req), true), 503);
    coil_http_stats st;
    coil_http_server_get_stats(f.srv, &st);
    ASSERT_EQ(st.rejected, 1);
    ASSERT_EQ(st.connections, 2);
    fx_close(a);
    /* Once one closes, the next connection is served. */
    int status = 0;
    for (int i = 0; i < 200 && status != 200; i++) {
        status = fx_get(f.port, "/hello", NULL);
        if (status != 200) fx_sleep_ms(10);
    }
    ASSERT_EQ(status, 200);
    fx_close(b);
    ASSERT_EQ(fx_stop(&f), 0);
}

/* ------------------------------------------------------------------ smuggling shapes */

TEST(smuggle_content_length_and_transfer_encoding_400) {
    refuse("POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
           "0\r\n\r\n",
           400);
}

TEST(smuggle_transfer_encoding_and_content_length_400) {
    refuse("POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
           "0\r\n\r\n",
           400);
}

TEST(smuggle_duplicate_content_length_400) {
    refuse("POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400);
}

TEST(smuggle_differing_content_length_400) {
    refuse("POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 7\r\n\r\nabcdefg",
           400);
}

TEST(smuggle_obs_fold_400) {
    refuse("GET /hello HTTP/1.1\r\nHost: h\r\nX-Folded: one\r\n two\r\n\r\n", 400);
}

TEST(smuggle_bare_cr_400) { refuse("GET /hello HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n", 400); }

TEST(smuggle_bare_lf_400) { refuse("GET /hello HTTP/1.1\nHost: h\n\n", 400); }

TEST(smuggle_invalid_chunk_size_400) {
    refuse("POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
           "0x5\r\nhello\r\n0\r\n\r\n",
           400);
}

TEST(smuggle_chunk_size_overflow_400) {
    refuse("POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
           "ffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
           400);
}

TEST(smuggle_transfer_encoding_not_chunked_501) {
    refuse("POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\nabc", 501);
}

TEST(smuggle_transfer_encoding_chunked_not_alone_501) {
    refuse("POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501);
}

TEST(parse_error_400_closes) { refuse("GET /hello HTTP/1.1\r\nHost: h\r\nBad Header\r\n\r\n", 400); }

TEST(parse_error_after_good_request_closes) {
    fx_server f;
    start(&f, NULL);
    fx_conn *c = fx_open(f.port);
    fx_send_str(c->fd, "GET /hello HTTP/1.1\r\nHost: h\r\n\r\nGARBAGE\r\n\r\n");
    fx_response r;
    ASSERT(fx_read_response(c, &r, false));
    ASSERT_EQ(r.status, 200);
    fx_response_free(&r);
    ASSERT(fx_read_response(c, &r, false));
    ASSERT_EQ(r.status, 400);
    fx_response_free(&r);
    ASSERT(fx_closed(c));
    fx_close(c);
    assert_serves(f.port);
    ASSERT_EQ(fx_stop(&f), 0);
}

/* ------------------------------------------------------------------ protocol */

TEST(pipelining_answers_in_order) {
    fx_server f;
    start(&f, NULL);
    fx_conn *c = fx_open(f.port);
    /* The slowest first: answers still come back in request order. */
    fx_send_str(c->fd, "GET /sleep?ms=100&tag=first HTTP/1.1\r\nHost: h\r\n\r\n"
                       "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\n\r\nsecond"
                       "GET /sleep?ms=0&tag=third HTTP/1.1\r\nHost: h\r\n\r\n"
                       "GET /hello HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    const char *want[] = {"first", "second", "third", "Hello, World!"};
    for (int i = 0; i < 4; i++) {
        fx_response r;
        ASSERT(fx_read_response(c, &r, false));
        ASSERT_EQ(r.status, 200);
        ASSERT_STR_EQ(r.body, want[i]);
        fx_response_free(&r);
    }
    ASSERT(fx_closed(c));
    fx_close(c);
    ASSERT_EQ(fx_stop(&f), 0);
}

TEST(keep_alive_serves_many_on_one_connection) {
    fx_server f;
    start(&f, NULL);
    fx_conn *c = fx_open(f.port);
    for (int i = 0; i < 20; i++) {
        char req[128];
        snprintf(req, sizeof req, "GET /sleep?tag=n%d HTTP/1.1\r\nHost: h\r\n\r\n", i);
        fx_send_str(c->fd, req);
        fx_response r;
        ASSERT(fx_read_response(c, &r, false));
        ASSERT_EQ(r.status, 200);
        ASSERT(fx_header(&r, "Connection") == NULL);
        char want[16];
        snprintf(want, sizeof want, "n%d", i);
        ASSERT_STR_EQ(r.body, want);
        fx_response_free(&r);
    }
    /* The last request is counted just after its answer went out. */
    coil_http_stats st;
    coil_http_server_get_stats(f.srv, &st);
    for (int i = 0; i < 1000 && st.requests < 20; i++) {
        fx_sleep_ms(1);
        coil_http_server_get_stats(f.srv, &st);
    }
    ASSERT_EQ(st.connections_total, 1);
    ASSERT_EQ(st.requests, 20);
    ASSERT_EQ(st.status[2], 20);
    fx_close(c);
    ASSERT_EQ(fx_stop(&f), 0);
}

TEST(http10_closes_unless_keep_alive) {
    fx_server f;
    start(&f, NULL);
    fx_conn *c = fx_open(f.port);
    fx_send_str(c->fd, "GET /hello HTTP/1.0\r\n\r\n");
    fx_response r;
    ASSERT(fx_read_response(c, &r, false));
    ASSERT_EQ(r.status, 200);
    ASSERT_STR_EQ(r.body, "Hello, World!");
    ASSERT_STR_EQ(fx_header(&r, "Connection"), "close");
    fx_response_free(&r);
    ASSERT(fx_closed(c));
    fx_close(c);

    c = fx_open(f.port);
    for (int i = 0; i < 2; i++) {
        fx_send_str(c->fd, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        ASSERT(fx_read_response(c, &r, false));
        ASSERT_EQ(r.status, 200);
        ASSERT_STR_EQ(fx_header(&r, "Connection"), "keep-alive");
        fx_response_free(&r);
    }
    fx_close(c);
    ASSERT_EQ(fx_stop(&f), 0);
}

TEST(head_has_length_but_no_body) {
    fx_server f;
    start(&f, NULL);
    fx_conn *c = fx_open(f.port);
    fx_send_str(c->fd, "HEAD /hello HTTP/1.1\r\nHost: h\r\n\r\nGET /hello HTTP/1.1\r\nHost: h\r\n\r\n");
    fx_response r;
    ASSERT(fx_read_response(c, &r, true));
    ASSERT_EQ(r.status, 200);
    ASSERT_STR_EQ(fx_header(&r, "Content-Length"), "13");
    fx_response_free(&r);
    /* If a body had been sent, it would be read as the next status line. */
    ASSERT(fx_read_response(c, &r, false));
    ASSERT_EQ(r.status, 200);
    ASSERT_STR_EQ(r.body, "Hello, World!");
    fx_response_free(&r);
    fx_close(c);
    ASSERT_EQ(fx_stop(&f), 0);
}

TEST(expect_100_continue) {
    fx_server f;
    start(&f, NULL);
    fx_conn *c = fx_open(f.port);
    fx_send_str(c->fd, "POST /echo HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
                       "Content-Length: 5\r\n\r\n");
    fx_response r;
    ASSERT(fx_read_response(c, &r, false));
    ASSERT_EQ(r.status, 100);
    fx_response_free(&r);
    fx_send_str(c->fd, "hello");
    ASSERT(fx_read_response(c, &r, false));
    ASSERT_EQ(r.status, 200);
    ASSERT_STR_EQ(r.body, "hello");
    fx_response_free(&r);
    fx_close(c);
    ASSERT_EQ(fx_stop(&f), 0);
}

TEST(expect_100_continue_too_large_413) {
    coil_http_config cfg = fx_config();
    cfg.max_body = 100;
    fx_server f;
    start(&f, &cfg);
    fx_conn *c = fx_open(f.port);
    fx_send_str(c->fd, "POST /echo HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
                       "Content-Length: 101\r\n\r\n");
    fx_response r;
    ASSERT(fx_read_response(c, &r, false));
    ASSERT_EQ(r.status, 413); /* at once, and no 100 before it */
    fx_response_free(&r);
    ASSERT(fx_closed(c));
    fx_close(c);
    assert_serves(f.port);
    ASSERT_EQ(fx_stop(&f), 0);
}

TEST(chunked_request_body) {
    fx_server f;
    start(&f, NULL);
    fx_conn *c = fx_open(f.port);
    fx_send_str(c->fd, "POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki");
    fx_sleep_ms(20);
    fx_send_str(c->fd, "\r\n6\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\n\r\n");
    fx_response r;
    ASSERT(fx_read_response(c, &r, false));
    ASSERT_EQ(r.status, 200);
    ASSERT_STR_EQ(r.body, "Wikipedia in \r\n\r\nchunks.");
    fx_response_free(&r);
    fx_close(c);
    ASSERT_EQ(fx_stop(&f), 0);
}

TEST(date_and_server_on_every_response) {
    fx_server f;
    start(&f, NULL);
    const char *reqs[] = {"GET /hello HTTP/1.1\r\nHost: h\r\n\r\n",
                          "GET /missing HTTP/1.1\r\nHost: h\r\n\r\n",
                          "DELETE /hello HTTP/1.1\r\nHost: h\r\n\r\n",
                          "GET /hello HTTP/1.1\r\n\r\n"};
    int want[] = {200, 404, 405, 400};
    for (int i = 0; i < 4; i++) {
        fx_conn *c = fx_open(f.port);
        fx_send_str(c->fd, reqs[i]);
        fx_response r;
        ASSERT(fx_read_response(c, &r, false));
        ASSERT_EQ(r.status, want[i]);
        const char *date = fx_header(&r, "Date");
        ASSERT(date != NULL);
        ASSERT_EQ(strlen(date), 29);
        ASSERT(strcmp(date + 25, " GMT") == 0);
        ASSERT_STR_EQ(fx_header(&r, "Server"), "coil");
        if (want[i] == 405) ASSERT(fx_header(&r, "Allow") != NULL);
        fx_response_free(&r);
        fx_close(c);
    }
    ASSERT_EQ(fx_stop(&f), 0);
}
