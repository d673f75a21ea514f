/* tests/http/app/test_middleware.c: the chain, request IDs, timing, the access
 * log, and blocking handlers (which run on the thread pool:
 * COIL_TEST_THREADS).
 */
#include "http/app/app_harness.h"

#include <ctype.h>
#include <jansson.h>

/* ------------------------------------------------------------------ order */

/* The server's loop thread writes this; the test reads it after the
 * server's thread has been joined. */
static char order[128];

static void note(const char *s) {
    size_t n = strlen(order);
    snprintf(order + n, sizeof order - n, "%s", s);
}

static int mw_a(coil_http_request *req, coil_http_response *res, void *arg) {
    note("a>");
    int err = coil_http_next(req, res);
    note("<a");
    return err;
}

static int mw_b(coil_http_request *req, coil_http_response *res, void *arg) {
    note("b>");
    int err = coil_http_next(req, res);
    note(err == 0 ? "<b" : "<b!");
    ASSERT_EQ(coil_http_next(req, res), -EALREADY); /* the route ran once */
    return err;
}

static int handler_h(coil_http_request *req, coil_http_response *res, void *arg) {
    note("h");
    return coil_http_respond_text(res, 200, "h");
}

TEST(middleware_runs_in_order_around_the_handler) {
    order[0] = '\0';
    coil_http_server *srv = harness_server();
    ASSERT_EQ(coil_http_use(srv, mw_a, NULL), 0);
    ASSERT_EQ(coil_http_use(srv, mw_b, NULL), 0);
    ASSERT_EQ(coil_http_route(srv, "GET", "/h", handler_h, NULL, 0), 0);
    harness h;
    harness_start(&h, srv);
    reply r;
    harness_get(h.port, "/h", &r);
    ASSERT_EQ(r.status, 200);
    harness_get(h.port, "/missing", &r); /* middleware runs for a 404 too */
    ASSERT_EQ(r.status, 404);
    harness_stop(&h);
    ASSERT_STR_EQ(order, "a>b>h<b<aa>b><b<a");
}

static int deny(coil_http_request *req, coil_http_response *res, void *arg) {
    if (coil_http_header(req, "Authorization")) return coil_http_next(req, res);
    return coil_http_respond_error(res, 401, "who are you?");
}

TEST(middleware_can_answer_without_the_handler) {
    order[0] = '\0';
    coil_http_server *srv = harness_server();
    ASSERT_EQ(coil_http_use(srv, deny, NULL), 0);
    ASSERT_EQ(coil_http_route(srv, "GET", "/h", handler_h, NULL, 0), 0);
    harness h;
    harness_start(&h, srv);
    reply r;
    harness_get(h.port, "/h", &r);
    ASSERT_EQ(r.status, 401);
    char id[160];
    ASSERT(reply_header(&r, "X-Request-ID", id, sizeof id)); /* the default chain ran */
    harness_request(h.port, "GET", "/h", "Authorization: yes\r\n", &r);
    ASSERT_EQ(r.status, 200);
    harness_stop(&h);
    ASSERT_STR_EQ(order, "h");
}

/* ------------------------------------------------------------------ request IDs */

static int echo_id(coil_http_request *req, coil_http_response *res, void *arg) {
    const char *cur = coil_http_current_request_id();
    const char *own = coil_http_request_id(req);
    if (!cur || !own || strcmp(cur, own) != 0)
        return coil_http_respond_error(res, 500, "the two IDs differ");
    return coil_http_respond_text(res, 200, cur);
}

static bool all_hex(const char *s) {
    for (; *s; s++)
        if (!isdigit((unsigned char)*s) && !(*s >= 'a' && *s <= 'f')) return false;
    return true;
}

TEST(request_id_is_taken_or_generated) {
    coil_http_server *srv = harness_server();
    ASSERT_EQ(coil_http_route(srv, "GET", "/id", echo_id, NULL, 0), 0);
    harness h;
    harness_start(&h, srv);
    reply r;
    char id[256], first[256];

    harness_request(h.port, "GET", "/id", "X-Request-ID: abc-123.DEF\r\n", &r);
    ASSERT_EQ(r.status, 200);
    ASSERT_STR_EQ(reply_header(&r, "X-Request-ID", id, sizeof id), "abc-123.DEF");
    ASSERT_STR_EQ(reply_body(&r), "abc-123.DEF");

    harness_get(h.port, "/id", &r);
    ASSERT(reply_header(&r, "X-Request-ID", id, sizeof id));
    ASSERT_EQ(strlen(id), 32);
    ASSERT(all_hex(id));
    ASSERT_STR_EQ(reply_body(&r), id);
    snprintf(first, sizeof first, "%s", id);
    harness_get(h.port, "/id", &r);
    ASSERT(reply_header(&r, "X-Request-ID", id, sizeof id));
    ASSERT(strcmp(id, first) != 0);

    /* 129 characters: too long to trust, so a new one is made. */
    char hdr[200], xs[130];
    memset(xs, 'x', 129);
    xs[129] = '\0';
    snprintf(hdr, sizeof hdr, "X-Request-ID: %s\r\n", xs);
    harness_request(h.port, "GET", "/id", hdr, &r);
    ASSERT(reply_header(&r, "X-Request-ID", id, sizeof id));
    ASSERT_EQ(strlen(id), 32);
    /* 128 is fine. */
    xs[128] = '\0';
    snprintf(hdr, sizeof hdr, "X-Request-ID: %s\r\n", xs);
    harness_request(h.port, "GET", "/id", hdr, &r);
    ASSERT(reply_header(&r, "X-Request-ID", id, sizeof id));
    ASSERT_EQ(strlen(id), 128);
    harness_stop(&h);
}

static coil_result child_reads_id(void *arg) {
    const char *id = coil_http_current_request_id();
    return coil_ok(id ? strdup(id) : NULL);
}

static int spawn_child(coil_http_request *req, coil_http_response *res, void *arg) {
    coil_result cr;
    int err = coil_join(coil_spawn(child_reads_id, NULL), &cr);
    if (err) return err;
    char *id = cr.value;
    err = coil_http_respond_text(res, 200, id ? id : "(none)");
    free(id);
    return err;
}

TEST(request_id_is_seen_by_child_tasks) {
    coil_http_server *srv = harness_server();
    ASSERT_EQ(coil_http_route(srv, "GET", "/child", spawn_child, NULL, 0), 0);
    harness h;
    harness_start(&h, srv);
    reply r;
    char id[64];
    harness_request(h.port, "GET", "/child", "X-Request-ID: from-client\r\n", &r);
    ASSERT_STR_EQ(reply_body(&r), "from-client");
    harness_get(h.port, "/child", &r);
    ASSERT_STR_EQ(reply_body(&r), reply_header(&r, "X-Request-ID", id, sizeof id));
    harness_stop(&h);
}

/* Background work runs after the request has ended, and still sees its ID. */
static char background_id[64];

static coil_result background_reads_id(void *arg) {
    coil_sleep(COIL_MSEC(20)); /* the connection has moved on by now */
    const char *id = coil_http_current_request_id();
    snprintf(background_id, sizeof background_id, "%s", id ? id : "(none)");
    return coil_ok(NULL);
}

static int with_background(coil_http_request *req, coil_http_response *res, void *arg) {
    int err = coil_http_background(req, background_reads_id, NULL);
    if (err) return err;
    const char *id = coil_http_current_request_id(); /* unchanged for the handler */
    return coil_http_respond_text(res, 202, id ? id : "(none)");
}

TEST(request_id_is_seen_by_background_work) {
    background_id[0] = '\0';
    coil_http_server *srv = harness_server();
    ASSERT_EQ(coil_http_route(srv, "GET", "/bg", with_background, NULL, 0), 0);
    ASSERT_EQ(coil_http_route(srv, "GET", "/other", echo_id, NULL, 0), 0);
    harness h;
    harness_start(&h, srv);
    reply r;
    /* Keep-alive: the next request reuses the connection's memory while
     * the work still waits. */
    harness_raw(h.port,
                "GET /bg HTTP/1.1\r\nHost: x\r\nX-Request-ID: bg-request\r\n\r\n"
                "GET /other HTTP/1.1\r\nHost: x\r\nX-Request-ID: the-next-one-xxxxxxx\r\n"
                "Connection: close\r\n\r\n",
                &r);
    ASSERT_EQ(r.status, 202);
    ASSERT_CONTAINS(r.raw, "\r\n\r\nbg-request");
    ASSERT_CONTAINS(r.raw, "the-next-one-xxxxxxx");
    harness_stop(&h);
    ASSERT_STR_EQ(background_id, "bg-request");
}

/* ------------------------------------------------------------------ blocking handlers */

static int blocking(coil_http_request *req, coil_http_response *res, void *arg) {
    char body[256];
    const char *id = coil_http_current_request_id();
    /* On a pool thread: not a task, and streaming is refused here. */
    int chunked = coil_http_begin_chunked(res, 200, "text/plain");
    snprintf(body, sizeof body, "task=%s id=%s chunked=%s param=%s",
             coil_current() ? "yes" : "no", id ? id : "(none)", coil_err_name(chunked),
             coil_http_param(req, "x"));
    usleep(20 * 1000); /* really blocks, on its own thread */
    int err = coil_http_set_header(res, "X-Blocking", "yes");
    if (err) return err;
    err = coil_http_respond(res, 201, "text/plain", body, strlen(body));
    if (err) return err;
    if (!coil_http_responded(res) || coil_http_status(res) != 201) return -EPROTO;
    return coil_http_respond_text(res, 200, "twice") == -EALREADY ? 0 : -EPROTO;
}

TEST(blocking_handler_runs_on_the_pool_and_its_response_is_sent) {
    coil_http_server *srv = harness_server();
    ASSERT_EQ(coil_http_route(srv, "GET", "/block/{x}", blocking, NULL, COIL_HTTP_BLOCKING), 0);
    harness h;
    harness_start(&h, srv);
    reply r;
    char v[64];
    harness_request(h.port, "GET", "/block/seven", "X-Request-ID: blocking-1\r\n", &r);
    ASSERT_EQ(r.status, 201);
    ASSERT_STR_EQ(reply_body(&r), "task=no id=blocking-1 chunked=EPERM param=seven");
    ASSERT_STR_EQ(reply_header(&r, "X-Blocking", v, sizeof v), "yes");
    ASSERT_STR_EQ(reply_header(&r, "X-Request-ID", v, sizeof v), "blocking-1");
    harness_stop(&h);
}

static int blocking_silent(coil_http_request *req, coil_http_response *res, void *arg) {
    coil_http_set_header(res, "X-Seen", "1");
    return (int)(intptr_t)arg;
}

TEST(blocking_handler_that_does_not_respond) {
    coil_http_server *srv = harness_server();
    ASSERT_EQ(coil_http_route(srv, "GET", "/ok", blocking_silent, (void *)0, COIL_HTTP_BLOCKING),
              0);
    ASSERT_EQ(coil_http_route(srv, "GET", "/fail", blocking_silent, (void *)-EIO,
                              COIL_HTTP_BLOCKING),
              0);
    harness h;
    harness_start(&h, srv);
    reply r;
    char v[16];
    harness_get(h.port, "/ok", &r);
    ASSERT_EQ(r.status, 204);
    ASSERT_STR_EQ(reply_header(&r, "X-Seen", v, sizeof v), "1");
    harness_get(h.port, "/fail", &r);
    ASSERT_EQ(r.status, 500);
    harness_stop(&h);
}

/* Background work attached from a blocking handler runs after the
 * response, on the loop. */
static atomic_int background_ran;

static coil_result background(void *arg) {
    ASSERT(coil_current() != NULL);
    atomic_store(&background_ran, (int)(intptr_t)arg);
    return coil_ok(NULL);
}

static int blocking_with_work(coil_http_request *req, coil_http_response *res, void *arg) {
    int err = coil_http_background(req, background, (void *)42);
    if (err) return err;
    return coil_http_respond_text(res, 202, "accepted");
}

TEST(blocking_handler_background_work_runs) {
    atomic_store(&background_ran, 0);
    coil_http_server *srv = harness_server();
    ASSERT_EQ(coil_http_route(srv, "POST", "/work", blocking_with_work, NULL, COIL_HTTP_BLOCKING),
              0);
    harness h;
    harness_start(&h, srv);
    reply r;
    harness_request(h.port, "POST", "/work", "Content-Length: 0\r\n", &r);
    ASSERT_EQ(r.status, 202);
    harness_stop(&h); /* shutdown runs pending background work */
    ASSERT_EQ(atomic_load(&background_ran), 42);
}

/* ------------------------------------------------------------------ timing and log */

static int hello(coil_http_request *req, coil_http_response *res, void *arg) {
    return coil_http_respond_text(res, 200, "Hello, World!");
}

TEST(timing_header) {
    coil_http_server *srv = harness_server();
    ASSERT_EQ(coil_http_route(srv, "GET", "/hello", hello, NULL, 0), 0);
    harness h;
    harness_start(&h, srv);
    reply r;
    char v[64];
    harness_get(h.port, "/hello", &r);
    ASSERT(reply_header(&r, "Server-Timing", v, sizeof v));
    ASSERT_EQ(strncmp(v, "app;dur=", 8), 0);
    char *end;
    double ms = strtod(v + 8, &end);
    ASSERT(end != v + 8 && *end == '\0' && ms >= 0);
    harness_stop(&h);
}

static int slow_hello(coil_http_request *req, coil_http_response *res, void *arg) {
    ASSERT_EQ(coil_sleep(COIL_MSEC(25)), 0);
    return coil_http_respond_text(res, 200, "slow");
}

TEST(timing_header_measures_the_handler) {
    coil_http_server *srv = harness_server();
    ASSERT_EQ(coil_http_route(srv, "GET", "/slow", slow_hello, NULL, 0), 0);
    harness h;
    harness_start(&h, srv);
    reply r;
    char v[64];
    harness_get(h.port, "/slow", &r);
    ASSERT(reply_header(&r, "Server-Timing", v, sizeof v));
    ASSERT_EQ(strncmp(v, "app;dur=", 8), 0);
    const char *dot = strchr(v + 8, '.');
    ASSERT(dot != NULL);
    ASSERT_EQ(strlen(dot + 1), 3); /* milliseconds with three decimals */
    double ms = strtod(v + 8, NULL);
    ASSERT(ms >= 25.0);
    ASSERT(ms < 60000.0);
    harness_stop(&h);
}

/* The line of `log` that contains `needle`, parsed. */
static json_t *log_line(const char *log, const char *needle) {
    const char *hit = strstr(log, needle);
    ASSERT(hit != NULL);
    const char *start = hit;
    while (start > log && start[-1] != '\n') start--;
    const char *end = strchr(hit, '\n');
    ASSERT(end != NULL);
    json_error_t e;
    json_t *j = json_loadb(start, (size_t)(end - start), 0, &e);
    if (!j) coil_test_fail(__FILE__, __LINE__, "not JSON (%s): %.*s", e.text, (int)(end - start), start);
    return j;
}

TEST(access_log_writes_one_json_line_per_request) {
    coil_http_config cfg;
    coil_http_config_init(&cfg);
    cfg.host = "127.0.0.1";
    cfg.port = 0;
    cfg.workers = 1;
    cfg.handle_signals = false;
    cfg.access_log = true;
    coil_http_server *srv = coil_http_server_new(&cfg);
    ASSERT(srv != NULL);
    ASSERT_EQ(coil_http_route(srv, "GET", "/hello", hello, NULL, 0), 0);
    coil_test_capture_stderr_begin();
    harness h;
    harness_start(&h, srv);
    reply r;
    harness_request(h.port, "GET", "/hello", "X-Request-ID: log-1\r\n", &r);
    harness_request(h.port, "GET", "/missing%22%5c%01", "X-Request-ID: log-2\r\n", &r);
    harness_stop(&h);
    char *log = coil_test_capture_stderr_end();

    json_t *j = log_line(log, "\"log-1\"");
    ASSERT_STR_EQ(json_string_value(json_object_get(j, "method")), "GET");
    ASSERT_STR_EQ(json_string_value(json_object_get(j, "path")), "/hello");
    ASSERT_EQ(json_integer_value(json_object_get(j, "status")), 200);
    ASSERT_EQ(json_integer_value(json_object_get(j, "bytes")), 13);
    ASSERT(json_is_number(json_object_get(j, "duration_ms")));
    const char *t = json_string_value(json_object_get(j, "time"));
    ASSERT(t && strlen(t) == 24 && t[10] == 'T' && t[23] == 'Z');
    json_decref(j);

    /* Quotes and control characters in the path are escaped. */
    j = log_line(log, "\"log-2\"");
    ASSERT_STR_EQ(json_string_value(json_object_get(j, "path")), "/missing\"\\\x01");
    ASSERT_EQ(json_integer_value(json_object_get(j, "status")), 404);
    json_decref(j);

    /* One line per request. */
    int lines = 0;
    for (const char *p = log; (p = strstr(p, "\"request_id\"")) != NULL; p++) lines++;
    ASSERT_EQ(lines, 2);
    free(log);
}

/* ------------------------------------------------------------------ misuse */

static coil_result call_next(void *arg) {
    void **rr = arg;
    return coil_fail(coil_http_next(rr[0], rr[1]));
}

static int next_from_child(coil_http_request *req, coil_http_response *res, void *arg) {
    void *rr[2] = {req, res};
    coil_result cr;
    coil_join(coil_spawn(call_next, rr), &cr);
    return coil_http_respond_text(res, 200, coil_err_name(cr.err));
}

TEST(next_outside_the_chain_is_refused) {
    coil_http_server *srv = harness_server();
    ASSERT_EQ(coil_http_route(srv, "GET", "/x", next_from_child, NULL, 0), 0);
    harness h;
    harness_start(&h, srv);
    reply r;
    harness_get(h.port, "/x", &r);
    ASSERT_STR_EQ(reply_body(&r), "EPERM");
    harness_stop(&h);
}
