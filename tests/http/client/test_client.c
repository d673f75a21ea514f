/* tests/http/client/test_client.c: the HTTP client (coil_http_fetch / coil_http_get).
 *
 * Most tests talk to a small HTTP/1.1 responder written here on coil's own
 * streams, on the same loop as the client, so that the server side can
 * count what it sees (connections accepted, connections open at once,
 * requests, a client going away) and misbehave on purpose (/hang never
 * answers). Its routes:
 *
 *   /hello         200 "Hello, World!" text/plain
 *   /echo          200 with the request body, application/octet-stream
 *   /headers       200 with the request's header block as the body
 *   /method        200 with the request method as the body
 *   /slow?ms=N     200 "slow" after sleeping N ms
 *   /status/NNN    status NNN, body "status"
 *   /hang          reads the request and never answers
 *   /drop          200 "dropped", then closes the connection
 *
 * The tests at the end run against coil's own server (coil_http_server) on
 * a thread of its own, including a handler that is itself a client on the
 * server's worker loop. Requests from loops on other threads (each with its
 * own client) are covered too: COIL_TEST_THREADS.
 */
#include "test.h"

#include <jansson.h>

#include <coil/http.h>
#include <pthread.h>
#include <stdatomic.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

/* ------------------------------------------------------------------ the responder */

typedef struct responder {
    coil_listener *l;
    uint16_t port;
    coil_task *acceptor;    /* accepts and owns the connection tasks */
    size_t accepted;        /* connections accepted */
    size_t open, max_open;  /* connections open now, most open at once */
    size_t requests;        /* requests answered */
    size_t hangs;           /* /hang requests received */
    size_t hang_gone;       /* /hang connections whose client went away */
    coil_event hang_seen;   /* set at each /hang request */
    coil_event hang_closed; /* set when a /hang client went away */
} responder;

typedef struct request {
    char *head;       /* request line and headers, NUL-terminated */
    size_t head_len;
    char method[16];
    char path[256];
    char *body;       /* malloc'd, NULL if none */
    size_t body_len;
    bool close;       /* Connection: close */
} request;

static void request_free(request *q) {
    free(q->head);
    free(q->body);
    memset(q, 0, sizeof *q);
}

/* The value of header `name` in `head`, or NULL (points into head). */
static const char *head_value(const char *head, const char *name) {
    size_t n = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':') {
            p += 3 + n;
            while (*p == ' ') p++;
            return p;
        }
    }
    return NULL;
}

/* Reads one request. Returns 1, 0 at the end of the stream, or an error. */
static int read_request(coil_stream *s, request *q) {
    memset(q, 0, sizeof *q);
    const char *p, *end;
    size_t len, need = 1;
    for (;;) {
        int err = coil_stream_peek_at_least(s, need, &p, &len);
        if (err) return err;
        if (len < need) return 0;
        if ((end = memmem(p, len, "\r\n\r\n", 4))) break;
        if (len > 16384) return -E2BIG;
        need = len + 1;
    }
    q->head_len = (size_t)(end - p) + 4;
    q->head = malloc(q->head_len + 1);
    ASSERT(q->head != NULL);
    memcpy(q->head, p, q->head_len);
    q->head[q->head_len] = '\0';
    coil_stream_consume(s, q->head_len);
    ASSERT_EQ(sscanf(q->head, "%15s %255s", q->method, q->path), 2);
    const char *cl = head_value(q->head, "Content-Length");
    q->body_len = cl ? strtoul(cl, NULL, 10) : 0;
    const char *conn = head_value(q->head, "Connection");
    q->close = conn && strncasecmp(conn, "close", 5) == 0;
    if (q->body_len) {
        q->body = malloc(q->body_len);
        ASSERT(q->body != NULL);
        ssize_t n = coil_stream_read_exactly(s, q->body, q->body_len);
        if (n != (ssize_t)q->body_len) return n < 0 ? (int)n : -ENODATA;
    }
    return 1;
}

static int respond(coil_stream *s, int status, const char *type, const void *body, size_t len) {
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n", status,
                     type, len);
    ASSERT(n > 0 && (size_t)n < sizeof head);
    struct iovec iov[2] = {{head, (size_t)n}, {(void *)body, len}};
    return coil_stream_writev(s, iov, len ? 2 : 1);
}

/* /hang: never answers; waits for the client to go away. */
static void hang(responder *r, coil_stream *s) {
    r->hangs++;
    coil_event_set(&r->hang_seen);
    char buf[256];
    ssize_t n;
    while ((n = coil_stream_read(s, buf, sizeof buf)) > 0) {
    }
    if (n == 0 || n == -ECONNRESET) {
        r->hang_gone++;
        coil_event_set(&r->hang_closed);
    }
}

/* Answers one request. Returns 0 to go on with the connection. */
static int answer(responder *r, coil_stream *s, request *q) {
    const char *text = "text/plain", *bin = "application/octet-stream";
    if (strcmp(q->path, "/hello") == 0) return respond(s, 200, text, "Hello, World!", 13);
    if (strcmp(q->path, "/echo") == 0) return respond(s, 200, bin, q->body, q->body_len);
    if (strcmp(q->path, "/headers") == 0) return respond(s, 200, text, q->head, q->head_len);
    if (strcmp(q->path, "/method") == 0)
        return respond(s, 200, text, q->method, strlen(q->method));
    if (strncmp(q->path, "/slow?ms=", 9) == 0) {
        int err = coil_sleep(COIL_MSEC(strtol(q->path + 9, NULL, 10)));
        return err ? err : respond(s, 200, text, "slow", 4);
    }
    if (strncmp(q->path, "/status/", 8) == 0)
        return respond(s, (int)strtol(q->path + 8, NULL, 10), text, "status", 6);
    if (strcmp(q->path, "/hang") == 0) {
        hang(r, s);
        return -EPIPE;
    }
    if (strcmp(q->path, "/drop") == 0) { /* answers, then closes the connection */
        int err = respond(s, 200, text, "dropped", 7);
        r->requests += err == 0;
        return err ? err : -EPIPE;
    }
    return respond(s, 404, text, "no such path", 12);
}

typedef struct conn_arg {
    responder *r;
    coil_stream *s;
} conn_arg;

static coil_result serve_conn(void *arg) {
    conn_arg a = *(conn_arg *)arg;
    free(arg);
    responder *r = a.r;
    r->accepted++;
    if (++r->open > r->max_open) r->max_open = r->open;
    request q;
    while (read_request(a.s, &q) == 1) {
        int err = answer(r, a.s, &q);
        bool close = q.close;
        request_free(&q);
        if (err) break;
        r->requests++;
        if (close) break;
    }
    request_free(&q);
    r->open--;
    coil_stream_close(a.s);
    return coil_ok(NULL);
}

static coil_result acceptor(void *arg) {
    responder *r = arg;
    coil_group g;
    coil_group_init(&g);
    coil_stream *s;
    while (coil_listener_accept(r->l, &s) == 0) {
        conn_arg *a = malloc(sizeof *a);
        ASSERT(a != NULL);
        a->r = r;
        a->s = s;
        ASSERT(coil_group_spawn_named(&g, "conn", serve_conn, a) != NULL);
    }
    /* The listener is closing: connections still open (the client's pool)
     * are cancelled. */
    coil_group_cancel(&g);
    coil_group_wait(&g);
    coil_group_destroy(&g);
    return coil_ok(NULL);
}

static void responder_start(responder *r) {
    memset(r, 0, sizeof *r);
    coil_event_init(&r->hang_seen);
    coil_event_init(&r->hang_closed);
    ASSERT_EQ(coil_listen_tcp("127.0.0.1", 0, 0, 0, &r->l), 0);
    int port = coil_listener_port(r->l);
    ASSERT(port > 0 && port < 65536);
    r->port = (uint16_t)port;
    r->acceptor = coil_spawn_named("acceptor", acceptor, r);
    ASSERT(r->acceptor != NULL);
}

static void responder_stop(responder *r) {
    ASSERT_EQ(coil_listener_close(r->l), 0);
    ASSERT_EQ(coil_join(r->acceptor, NULL), 0);
}

static void url_of(const responder *r, const char *path, char *buf, size_t size) {
    int n = snprintf(buf, size, "http://127.0.0.1:%u%s", r->port, path);
    ASSERT(n > 0 && (size_t)n < size);
}

/* Runs fn(r) in a task with a responder on its loop. */
typedef void (*responder_test)(responder *r);

static coil_result responder_main(void *arg) {
    responder r;
    responder_start(&r);
    ((responder_test)arg)(&r);
    responder_stop(&r);
    return coil_ok(NULL);
}

static void run_with_responder(responder_test fn) {
    /* Tests talk to 127.0.0.1 directly, whatever the environment says. */
    unsetenv("http_proxy");
    unsetenv("HTTP_PROXY");
    unsetenv("all_proxy");
    unsetenv("ALL_PROXY");
    coil_result res;
    ASSERT_EQ(coil_run(responder_main, (void *)fn, &res), 0);
    ASSERT_EQ(res.err, 0);
}

/* Waits for an event, failing the test after 10 s. */
static void wait_event(coil_event *e) {
    coil_scope s;
    coil_scope_enter(&s, coil_now() + COIL_SEC(10));
    ASSERT_EQ(coil_event_wait(e), 0);
    ASSERT_EQ(coil_scope_exit(&s), 0);
}

/* ------------------------------------------------------------------ basics */

static void get_body(responder *r) {
    char url[128];
    url_of(r, "/hello", url, sizeof url);
    coil_http_client_response res;
    ASSERT_EQ(coil_http_get(url, &res), 0);
    ASSERT_EQ(res.status, 200);
    ASSERT_EQ(res.body_len, 13);
    ASSERT_STR_EQ(res.body, "Hello, World!");
    ASSERT_STR_EQ(res.content_type, "text/plain");
    coil_http_client_response_free(&res);
    ASSERT(res.body == NULL && res.content_type == NULL);
    ASSERT_EQ(r->requests, 1);
}

TEST(get_body) { run_with_responder(get_body); }

/* A binary body with NULs, large enough to take several reads each way. */
static void post_echo(responder *r) {
    enum { LEN = 300 * 1000 };
    unsigned char *body = malloc(LEN);
    ASSERT(body != NULL);
    for (size_t i = 0; i < LEN; i++) body[i] = (unsigned char)((i * 131u) ^ (i >> 8));
    char url[128];
    url_of(r, "/echo", url, sizeof url);
    coil_http_client_request rq = {.method = "POST", .url = url, .body = body, .body_len = LEN};
    coil_http_client_response res;
    ASSERT_EQ(coil_http_fetch(&rq, &res), 0);
    ASSERT_EQ(res.status, 200);
    ASSERT_EQ(res.body_len, LEN);
    ASSERT(memcmp(res.body, body, LEN) == 0);
    ASSERT_EQ(res.body[LEN], '\0');
    ASSERT_STR_EQ(res.content_type, "application/octet-stream");
    coil_http_client_response_free(&res);
    free(body);
}

TEST(post_echo) { run_with_responder(post_echo); }

static void headers_sent(responder *r) {
    char url[128];
    url_of(r, "/headers", url, sizeof url);
    const char *headers[] = {"X-Test: 42", "X-Other: a b c", "Accept: text/plain", NULL};
    coil_http_client_request rq = {.url = url, .headers = headers};
    coil_http_client_response res;
    ASSERT_EQ(coil_http_fetch(&rq, &res), 0);
    ASSERT_EQ(res.status, 200);
    ASSERT(strncmp(res.body, "GET /headers HTTP/1.1\r\n", 23) == 0);
    ASSERT_CONTAINS(res.body, "\r\nX-Test: 42\r\n");
    ASSERT_CONTAINS(res.body, "\r\nX-Other: a b c\r\n");
    ASSERT_CONTAINS(res.body, "\r\nAccept: text/plain\r\n");
    ASSERT_CONTAINS(res.body, "\r\nHost: 127.0.0.1:");
    ASSERT(strstr(res.body, "Expect:") == NULL);
    coil_http_client_response_free(&res);
}

TEST(headers_sent) { run_with_responder(headers_sent); }

/* No made-up Content-Type for a body, and the caller's wins. */
static void body_content_type(responder *r) {
    char url[128];
    url_of(r, "/headers", url, sizeof url);
    coil_http_client_request rq = {.method = "POST", .url = url, .body = "{}", .body_len = 2};
    coil_http_client_response res;
    ASSERT_EQ(coil_http_fetch(&rq, &res), 0);
    ASSERT(strncmp(res.body, "POST /headers HTTP/1.1\r\n", 24) == 0);
    ASSERT_CONTAINS(res.body, "\r\nContent-Length: 2\r\n");
    ASSERT(strcasestr(res.body, "Content-Type") == NULL);
    coil_http_client_response_free(&res);
    const char *json[] = {"Content-Type: application/json", NULL};
    rq.headers = json;
    ASSERT_EQ(coil_http_fetch(&rq, &res), 0);
    ASSERT_CONTAINS(res.body, "\r\nContent-Type: application/json\r\n");
    coil_http_client_response_free(&res);
}

TEST(body_content_type) { run_with_responder(body_content_type); }

static void methods(responder *r) {
    char url[128];
    url_of(r, "/method", url, sizeof url);
    const char *names[] = {"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        coil_http_client_request rq = {.method = names[i], .url = url};
        coil_http_client_response res;
        ASSERT_EQ(coil_http_fetch(&rq, &res), 0);
        ASSERT_EQ(res.status, 200);
        ASSERT_STR_EQ(res.body, names[i]);
        coil_http_client_response_free(&res);
    }
    /* HEAD: the status and headers, no body. */
    url_of(r, "/hello", url, sizeof url);
    coil_http_client_request head = {.method = "HEAD", .url = url};
    coil_http_client_response res;
    ASSERT_EQ(coil_http_fetch(&head, &res), 0);
    ASSERT_EQ(res.status, 200);
    ASSERT_EQ(res.body_len, 0);
    ASSERT_STR_EQ(res.body, "");
    coil_http_client_response_free(&res);
}

TEST(methods) { run_with_responder(methods); }

/* Any HTTP status is a successful call. */
static void status_codes(responder *r) {
    const int codes[] = {201, 204, 301, 404, 500, 503};
    for (size_t i = 0; i < sizeof codes / sizeof *codes; i++) {
        char path[32], url[128];
        snprintf(path, sizeof path, "/status/%d", codes[i]);
        url_of(r, path, url, sizeof url);
        coil_http_client_response res;
        ASSERT_EQ(coil_http_get(url, &res), 0);
        ASSERT_EQ(res.status, codes[i]);
        coil_http_client_response_free(&res);
    }
}

TEST(status_codes) { run_with_responder(status_codes); }

/* The server closes connections after answering: a pooled connection
 * found closed is replaced, whether the close arrived before the next
 * request or races with it. */
static void server_closes(responder *r) {
    char url[128];
    url_of(r, "/drop", url, sizeof url);
    for (int i = 0; i < 6; i++) {
        coil_http_client_response res;
        ASSERT_EQ(coil_http_get(url, &res), 0);
        ASSERT_EQ(res.status, 200);
        ASSERT_STR_EQ(res.body, "dropped");
        coil_http_client_response_free(&res);
        if (i % 2) ASSERT_EQ(coil_sleep(COIL_MSEC(20)), 0);
    }
    ASSERT_EQ(r->requests, 6);
    ASSERT_EQ(r->accepted, 6);
}

TEST(server_closes) { run_with_responder(server_closes); }

/* ------------------------------------------------------------------ many at once */

typedef struct fetcher {
    const char *url;
    int rounds;
    int ok;          /* 200 responses with the right body */
} fetcher;

static coil_result fetch_rounds(void *arg) {
    fetcher *f = arg;
    for (int i = 0; i < f->rounds; i++) {
        coil_http_client_response res;
        int err = coil_http_get(f->url, &res);
        if (err) return coil_fail(err);
        if (res.status == 200 && res.body_len == 4 && strcmp(res.body, "slow") == 0) f->ok++;
        coil_http_client_response_free(&res);
    }
    return coil_ok(NULL);
}

/* Runs `tasks` tasks doing `rounds` requests each; returns the total ok. */
static int fetch_from_many(const char *url, int tasks, int rounds) {
    fetcher *f = calloc((size_t)tasks, sizeof *f);
    ASSERT(f != NULL);
    coil_group g;
    coil_group_init(&g);
    for (int i = 0; i < tasks; i++) {
        f[i].url = url;
        f[i].rounds = rounds;
        ASSERT(coil_group_spawn_named(&g, "fetcher", fetch_rounds, &f[i]) != NULL);
    }
    ASSERT_EQ(coil_group_wait(&g), 0);
    coil_group_destroy(&g);
    int ok = 0;
    for (int i = 0; i < tasks; i++) ok += f[i].ok;
    free(f);
    return ok;
}

/* 50 tasks, 4 requests each: all succeed, they overlap, and the pool
 * reuses connections. */
static void many_in_flight(responder *r) {
    enum { TASKS = 50, ROUNDS = 4 };
    char url[128];
    url_of(r, "/slow?ms=5", url, sizeof url);
    ASSERT_EQ(fetch_from_many(url, TASKS, ROUNDS), TASKS * ROUNDS);
    ASSERT_EQ(r->requests, TASKS * ROUNDS);
    ASSERT_GE(r->max_open, 2);
    ASSERT_GE(r->accepted, 1);
    ASSERT(r->accepted < TASKS * ROUNDS);
    /* A second wave finds the pool warm: no new connection at all. */
    size_t before = r->accepted;
    ASSERT_EQ(fetch_from_many(url, 10, 2), 20);
    ASSERT_EQ(r->accepted, before);
}

TEST(many_in_flight) { run_with_responder(many_in_flight); }

/* More tasks than the loop's connection limit: the extra requests wait
 * for a connection rather than opening more. */
static void connection_limit(responder *r) {
    enum { TASKS = 150 };
    char url[128];
    url_of(r, "/slow?ms=20", url, sizeof url);
    ASSERT_EQ(fetch_from_many(url, TASKS, 1), TASKS);
    ASSERT_EQ(r->requests, TASKS);
    ASSERT_LE(r->max_open, 64);
    ASSERT_LE(r->accepted, 64);
}

TEST(connection_limit) { run_with_responder(connection_limit); }

/* ------------------------------------------------------------------ timeouts and cancellation */

static void timeout_option(responder *r) {
    char url[128];
    url_of(r, "/hang", url, sizeof url);
    coil_http_client_request rq = {.url = url, .timeout = COIL_MSEC(200)};
    coil_http_client_response res;
    ASSERT_EQ(coil_http_fetch(&rq, &res), -ETIMEDOUT);
    ASSERT(res.body == NULL && res.status == 0);
    coil_http_client_response_free(&res); /* harmless on a failed call */
    /* The transfer was aborted: the server sees its client go. */
    wait_event(&r->hang_closed);
    ASSERT_EQ(r->hangs, 1);
    ASSERT_EQ(r->hang_gone, 1);
}

TEST(timeout_option) { run_with_responder(timeout_option); }

static void deadline_scope(responder *r) {
    char url[128];
    url_of(r, "/hang", url, sizeof url);
    coil_http_client_response res;
    coil_scope s;
    coil_scope_enter(&s, coil_now() + COIL_MSEC(200));
    ASSERT_EQ(coil_http_get(url, &res), -ETIMEDOUT);
    ASSERT_EQ(coil_scope_exit(&s), -ETIMEDOUT);
    wait_event(&r->hang_closed);
    ASSERT_EQ(r->hang_gone, 1);
    /* The client still works afterwards. */
    url_of(r, "/hello", url, sizeof url);
    ASSERT_EQ(coil_http_get(url, &res), 0);
    ASSERT_EQ(res.status, 200);
    coil_http_client_response_free(&res);
}

TEST(deadline_scope) { run_with_responder(deadline_scope); }

static int get_line; /* the line of the coil_http_get() below */

static coil_result get_and_return(void *arg) {
    coil_http_client_response res;
    get_line = __LINE__ + 1;
    int err = coil_http_get(arg, &res);
    coil_http_client_response_free(&res);
    return err ? coil_fail(err) : coil_ok(NULL);
}

/* Task dumps name the line where a task waits for its response. */
static void assert_dump_shows_getter(void) {
    char *dump = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&dump, &len);
    ASSERT(f != NULL);
    coil_dump_tasks(f);
    fclose(f);
    char want[64];
    snprintf(want, sizeof want, "parked at tests/http/client/test_client.c:%d", get_line);
    const char *line = strstr(dump, "getter");
    ASSERT(line != NULL);
    const char *eol = strchr(line, '\n');
    const char *at = strstr(line, want);
    ASSERT(at != NULL && (!eol || at < eol));
    free(dump);
}

/* A task cancelled while its request is in flight gets -ECANCELED at once
 * (long before the 30 s default timeout), and the connection is closed. */
static void cancel_in_flight(responder *r) {
    char url[128];
    url_of(r, "/hang", url, sizeof url);
    coil_task *t = coil_spawn_named("getter", get_and_return, url);
    ASSERT(t != NULL);
    wait_event(&r->hang_seen);
    assert_dump_shows_getter();
    coil_time start = coil_now();
    coil_cancel(t);
    coil_result res;
    ASSERT_EQ(coil_join(t, &res), 0);
    ASSERT_EQ(res.err, -ECANCELED);
    ASSERT(coil_now() - start < COIL_SEC(10));
    wait_event(&r->hang_closed);
    ASSERT_EQ(r->hang_gone, 1);
}

TEST(cancel_in_flight) { run_with_responder(cancel_in_flight); }

/* Already cancelled: returns at once without a request. */
static coil_result cancelled_first(void *arg) {
    coil_cancel(coil_current());
    return get_and_return(arg);
}

static void cancel_before(responder *r) {
    char url[128];
    url_of(r, "/hello", url, sizeof url);
    coil_task *t = coil_spawn_named("cancelled", cancelled_first, url);
    coil_result res;
    ASSERT_EQ(coil_join(t, &res), 0);
    ASSERT_EQ(res.err, -ECANCELED);
    ASSERT_EQ(coil_sleep(COIL_MSEC(20)), 0);
    ASSERT_EQ(r->requests, 0);
}

TEST(cancel_before) { run_with_responder(cancel_before); }

/* ------------------------------------------------------------------ errors */

static coil_result refused_main(void *arg) {
    (void)arg;
    coil_listener *l;
    ASSERT_EQ(coil_listen_tcp("127.0.0.1", 0, 0, 0, &l), 0);
    int port = coil_listener_port(l);
    ASSERT_EQ(coil_listener_close(l), 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    coil_http_client_response res;
    ASSERT_EQ(coil_http_get(url, &res), -ECONNREFUSED);
    ASSERT(res.body == NULL);
    return coil_ok(NULL);
}

TEST(connection_refused) { RUN_MAIN(refused_main, NULL); }

static coil_result bad_input_main(void *arg) {
    (void)arg;
    const char *urls[] = {"",          "not a url",   "ftp://127.0.0.1/x", "file:///etc/passwd",
                          "http://",   "http://[::1", "127.0.0.1/x",       "http://a b/"};
    coil_http_client_response res;
    for (size_t i = 0; i < sizeof urls / sizeof *urls; i++) {
        if (coil_http_get(urls[i], &res) != -EINVAL)
            coil_test_fail(__FILE__, __LINE__, "URL \"%s\" was not refused", urls[i]);
    }
    ASSERT_EQ(coil_http_get(NULL, &res), -EINVAL);
    ASSERT_EQ(coil_http_fetch(NULL, &res), -EINVAL);
    /* Header and method injection. */
    const char *bad_headers[][2] = {{"X-A: 1\r\nX-B: 2", NULL}, {"no colon", NULL}, {": x", NULL}};
    for (size_t i = 0; i < 3; i++) {
        coil_http_client_request rq = {.url = "http://127.0.0.1:1/", .headers = bad_headers[i]};
        ASSERT_EQ(coil_http_fetch(&rq, &res), -EINVAL);
    }
    const char *bad_methods[] = {"", "GE T", "GET\r\nX: y", "G(ET)"};
    for (size_t i = 0; i < 4; i++) {
        coil_http_client_request rq = {.method = bad_methods[i], .url = "http://127.0.0.1:1/"};
        ASSERT_EQ(coil_http_fetch(&rq, &res), -EINVAL);
    }
    coil_http_client_request nobody = {.method = "POST", .url = "http://127.0.0.1:1/",
                                       .body_len = 5};
    ASSERT_EQ(coil_http_fetch(&nobody, &res), -EINVAL);
    return coil_ok(NULL);
}

TEST(bad_input) { RUN_MAIN(bad_input_main, NULL); }

/* Outside a task there is nothing to suspend. */
TEST(outside_task) {
    coil_http_client_response res;
    ASSERT_EQ(coil_http_get("http://127.0.0.1:1/", &res), -EPERM);
}

/* ------------------------------------------------------------------ loops and threads */

/* Each loop gets its own client, made on first use and freed as the loop
 * closes; a second loop on the same thread starts afresh. */
TEST(loop_after_loop) {
    run_with_responder(get_body);
    run_with_responder(get_body);
    run_with_responder(many_in_flight);
}

typedef struct remote_fetch {
    char url[128];
    int rounds;
    int ok;
} remote_fetch;

static coil_result remote_fetch_fn(void *arg) {
    remote_fetch *f = arg;
    for (int i = 0; i < f->rounds; i++) {
        coil_http_client_response res;
        int err = coil_http_get(f->url, &res);
        if (err) return coil_fail(err);
        if (res.status == 200 && strcmp(res.body, "Hello, World!") == 0) f->ok++;
        coil_http_client_response_free(&res);
    }
    return coil_ok(NULL);
}

/* Requests from loops on two other threads at once, each loop with its own
 * client, against the responder on this one. */
static void other_threads(responder *r) {
    enum { LOOPS = 2, ROUNDS = 20 };
    coil_loop *loops[LOOPS];
    remote_fetch f[LOOPS];
    coil_remote *rem[LOOPS];
    for (int i = 0; i < LOOPS; i++) {
        loops[i] = coil_loop_thread_start();
        ASSERT(loops[i] != NULL);
        url_of(r, "/hello", f[i].url, sizeof f[i].url);
        f[i].rounds = ROUNDS;
        f[i].ok = 0;
        rem[i] = coil_submit(loops[i], remote_fetch_fn, &f[i]);
        ASSERT(rem[i] != NULL);
    }
    for (int i = 0; i < LOOPS; i++) {
        coil_result res;
        ASSERT_EQ(coil_remote_wait(rem[i], &res, COIL_SEC(30)), 0);
        ASSERT_EQ(res.err, 0);
        ASSERT_EQ(f[i].ok, ROUNDS);
    }
    ASSERT_EQ(r->requests, LOOPS * ROUNDS);
    /* Stopping a loop thread closes its client (on that thread). */
    for (int i = 0; i < LOOPS; i++) coil_loop_thread_stop(loops[i]);
}

TEST(other_threads) { run_with_responder(other_threads); }

/* ------------------------------------------------------------------ against coil's own server */

typedef struct real_server {
    coil_http_server *srv;
    pthread_t thread;
    int run_err;                /* what coil_http_server_run returned */
    int port;
    atomic_int sleeping;        /* /sleep handlers started */
    atomic_int interrupted;     /* /sleep handlers whose sleep was interrupted */
    atomic_int self_port;       /* port, for the handlers (set after start) */
} real_server;

static int h_hello(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)req, (void)arg;
    return coil_http_respond_text(res, 200, "Hello, World!");
}

static int h_echo(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)arg;
    size_t len;
    const void *body = coil_http_body(req, &len);
    const char *type = coil_http_header(req, "Content-Type");
    return coil_http_respond(res, 200, type ? type : "application/octet-stream", body, len);
}

static int h_header(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)arg;
    const char *v = coil_http_header(req, "X-Test");
    return coil_http_respond_text(res, 200, v ? v : "(none)");
}

/* /sleep?ms=N: a coroutine sleep, then "slept". */
static int h_sleep(coil_http_request *req, coil_http_response *res, void *arg) {
    real_server *s = arg;
    char buf[16];
    long ms = 0;
    if (coil_http_query_param(req, "ms", buf, sizeof buf) > 0) ms = strtol(buf, NULL, 10);
    atomic_fetch_add(&s->sleeping, 1);
    int err = coil_sleep(COIL_MSEC(ms));
    if (err) {
        atomic_fetch_add(&s->interrupted, 1);
        return err;
    }
    return coil_http_respond_text(res, 200, "slept");
}

/* /proxy: a handler that is itself a client, on the server's worker loop,
 * fetching /hello from its own server. */
static int h_proxy(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)req;
    real_server *s = arg;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/hello", atomic_load(&s->self_port));
    coil_http_client_response inner;
    int err = coil_http_get(url, &inner);
    if (err) return coil_http_respond_error(res, 502, coil_strerror(err));
    char text[128];
    snprintf(text, sizeof text, "%d %s", inner.status, inner.body);
    coil_http_client_response_free(&inner);
    return coil_http_respond_text(res, 200, text);
}

/* /hop?n=N: 302 to /hop?n=N-1, and /hop?n=0 answers "landed". /loop: 302
 * to itself. */
static int h_hop(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)arg;
    char buf[16];
    long n = 0;
    if (coil_http_query_param(req, "n", buf, sizeof buf) > 0) n = strtol(buf, NULL, 10);
    if (n <= 0) return coil_http_respond_text(res, 200, "landed");
    char next[32];
    snprintf(next, sizeof next, "/hop?n=%ld", n - 1);
    coil_http_set_header(res, "Location", next);
    return coil_http_respond_text(res, 302, "moved");
}

static int h_loop(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)req, (void)arg;
    coil_http_set_header(res, "Location", "/loop");
    return coil_http_respond_text(res, 302, "again");
}

/* /doc: JSON with headers of its own; /notdoc: not JSON. */
static int h_doc(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)req, (void)arg;
    coil_http_set_header(res, "X-Planet", "  Tatooine ");
    coil_http_set_header(res, "X-Count", "2");
    return coil_http_respond(res, 200, "application/json", "{\"name\": \"Luke\", \"n\": 1}", 24);
}

static int h_notdoc(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)req, (void)arg;
    return coil_http_respond(res, 200, "application/json", "{\"name\": ", 9);
}

/* /status?code=N: answers N. */
static int h_status(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)arg;
    char buf[16] = "200";
    coil_http_query_param(req, "code", buf, sizeof buf);
    return coil_http_respond_text(res, (int)strtol(buf, NULL, 10), "as asked");
}

static void *real_server_thread(void *arg) {
    real_server *s = arg;
    s->run_err = coil_http_server_run(s->srv);
    return NULL;
}

static void real_server_start(real_server *s) {
    memset(s, 0, sizeof *s);
    coil_http_config cfg;
    coil_http_config_init(&cfg);
    cfg.host = "127.0.0.1";
    cfg.port = 0;
    cfg.workers = 1;
    cfg.access_log = false;
    cfg.handle_signals = false;
    cfg.shutdown_grace = COIL_SEC(5);
    s->srv = coil_http_server_new(&cfg);
    ASSERT(s->srv != NULL);
    ASSERT_EQ(coil_http_route(s->srv, "GET", "/hello", h_hello, s, 0), 0);
    ASSERT_EQ(coil_http_route(s->srv, "POST", "/echo", h_echo, s, 0), 0);
    ASSERT_EQ(coil_http_route(s->srv, "GET", "/header", h_header, s, 0), 0);
    ASSERT_EQ(coil_http_route(s->srv, "GET", "/sleep", h_sleep, s, 0), 0);
    ASSERT_EQ(coil_http_route(s->srv, "GET", "/proxy", h_proxy, s, 0), 0);
    ASSERT_EQ(coil_http_route(s->srv, "GET", "/hop", h_hop, s, 0), 0);
    ASSERT_EQ(coil_http_route(s->srv, "GET", "/loop", h_loop, s, 0), 0);
    ASSERT_EQ(coil_http_route(s->srv, "GET", "/doc", h_doc, s, 0), 0);
    ASSERT_EQ(coil_http_route(s->srv, "GET", "/notdoc", h_notdoc, s, 0), 0);
    ASSERT_EQ(coil_http_route(s->srv, "GET", "/status", h_status, s, 0), 0);
    ASSERT_EQ(pthread_create(&s->thread, NULL, real_server_thread, s), 0);
    for (int i = 0; i < 10000 && (s->port = coil_http_server_port(s->srv)) <= 0; i++)
        usleep(1000);
    ASSERT(s->port > 0);
    atomic_store(&s->self_port, s->port);
}

static void real_server_stop(real_server *s) {
    coil_http_server_stop(s->srv);
    ASSERT_EQ(pthread_join(s->thread, NULL), 0);
    ASSERT_EQ(s->run_err, 0);
    coil_http_server_free(s->srv);
}

static void real_url(const real_server *s, const char *path, char *buf, size_t size) {
    int n = snprintf(buf, size, "http://127.0.0.1:%d%s", s->port, path);
    ASSERT(n > 0 && (size_t)n < size);
}

/* Runs fn(s) as the main task of a client loop, with coil's server on a
 * thread of its own. The client's loop closes (and with it the pool's
 * connections) before the server stops. */
typedef void (*server_test)(real_server *s);

typedef struct server_case {
    real_server *s;
    server_test fn;
} server_case;

static coil_result server_case_main(void *arg) {
    server_case *c = arg;
    c->fn(c->s);
    return coil_ok(NULL);
}

static void run_with_server(server_test fn) {
    unsetenv("http_proxy");
    unsetenv("HTTP_PROXY");
    real_server s;
    real_server_start(&s);
    server_case c = {&s, fn};
    RUN_MAIN(server_case_main, &c);
    real_server_stop(&s);
}

/* Waits (10 s at most) until *counter reaches `n`. */
static void wait_count(atomic_int *counter, int n) {
    for (int i = 0; i < 1000 && atomic_load(counter) < n; i++)
        ASSERT_EQ(coil_sleep(COIL_MSEC(10)), 0);
    ASSERT_EQ(atomic_load(counter), n);
}

static void server_basics(real_server *s) {
    char url[128];
    coil_http_client_response res;
    real_url(s, "/hello", url, sizeof url);
    ASSERT_EQ(coil_http_get(url, &res), 0);
    ASSERT_EQ(res.status, 200);
    ASSERT_STR_EQ(res.body, "Hello, World!");
    ASSERT(res.content_type && strncmp(res.content_type, "text/plain", 10) == 0);
    coil_http_client_response_free(&res);

    enum { LEN = 200 * 1000 };
    char *body = malloc(LEN);
    ASSERT(body != NULL);
    for (size_t i = 0; i < LEN; i++) body[i] = (char)((i * 7u) ^ (i >> 10));
    real_url(s, "/echo", url, sizeof url);
    const char *type[] = {"Content-Type: application/x-test", NULL};
    coil_http_client_request post = {.method = "POST", .url = url, .headers = type,
                                     .body = body, .body_len = LEN};
    ASSERT_EQ(coil_http_fetch(&post, &res), 0);
    ASSERT_EQ(res.status, 200);
    ASSERT_EQ(res.body_len, LEN);
    ASSERT(memcmp(res.body, body, LEN) == 0);
    ASSERT_STR_EQ(res.content_type, "application/x-test");
    coil_http_client_response_free(&res);
    free(body);

    real_url(s, "/header", url, sizeof url);
    const char *hdr[] = {"X-Test: forty two", NULL};
    coil_http_client_request get = {.url = url, .headers = hdr};
    ASSERT_EQ(coil_http_fetch(&get, &res), 0);
    ASSERT_STR_EQ(res.body, "forty two");
    coil_http_client_response_free(&res);

    /* Error statuses are responses too. */
    real_url(s, "/no/such/path", url, sizeof url);
    ASSERT_EQ(coil_http_get(url, &res), 0);
    ASSERT_EQ(res.status, 404);
    coil_http_client_response_free(&res);
    real_url(s, "/hello", url, sizeof url);
    coil_http_client_request wrong = {.method = "DELETE", .url = url};
    ASSERT_EQ(coil_http_fetch(&wrong, &res), 0);
    ASSERT_EQ(res.status, 405);
    coil_http_client_response_free(&res);

    /* A body bound: "Hello, World!" is 13 bytes. */
    coil_http_client_request small = {.url = url, .max_body = 12};
    ASSERT_EQ(coil_http_fetch(&small, &res), -EMSGSIZE);
    ASSERT(res.body == NULL);
    small.max_body = 13;
    ASSERT_EQ(coil_http_fetch(&small, &res), 0);
    ASSERT_STR_EQ(res.body, "Hello, World!");
    coil_http_client_response_free(&res);
}

TEST(server_basics) { run_with_server(server_basics); }

/* Redirects are followed, up to a limit, and not at all when asked. */
static void server_redirects(real_server *s) {
    char url[128];
    coil_http_client_response res;
    real_url(s, "/hop?n=3", url, sizeof url);
    ASSERT_EQ(coil_http_get(url, &res), 0);
    ASSERT_EQ(res.status, 200);
    ASSERT_STR_EQ(res.body, "landed");
    ASSERT_EQ(res.redirects, 3);
    ASSERT_CONTAINS(res.url, "/hop?n=0");
    coil_http_client_response_free(&res);
    coil_http_client_request two = {.url = url, .max_redirects = 2};
    ASSERT_EQ(coil_http_fetch(&two, &res), -ELOOP);
    coil_http_client_request none = {.url = url, .max_redirects = -1};
    ASSERT_EQ(coil_http_fetch(&none, &res), 0);
    ASSERT_EQ(res.status, 302);
    size_t len;
    const char *where = coil_http_client_header(&res, "location", &len);
    ASSERT(where != NULL);
    ASSERT_EQ(len, strlen("/hop?n=2"));
    ASSERT(memcmp(where, "/hop?n=2", len) == 0);
    coil_http_client_response_free(&res);
    real_url(s, "/loop", url, sizeof url);
    ASSERT_EQ(coil_http_get(url, &res), -ELOOP); /* the default limit, 10 */
}

TEST(server_redirects) { run_with_server(server_redirects); }

/* Headers by name, resp.json(), raise_for_status(). */
static void server_headers_json_status(real_server *s) {
    char url[128];
    coil_http_client_response res;
    real_url(s, "/doc", url, sizeof url);
    ASSERT_EQ(coil_http_get(url, &res), 0);
    size_t len = 0;
    const char *v = coil_http_client_header(&res, "x-planet", &len);
    ASSERT(v != NULL && len == 8 && memcmp(v, "Tatooine", 8) == 0); /* trimmed */
    ASSERT(coil_http_client_header(&res, "X-Count", &len) != NULL && len == 1);
    ASSERT(coil_http_client_header(&res, "X-Missing", &len) == NULL);
    ASSERT(coil_http_client_header(&res, "X-Plane", &len) == NULL); /* not a prefix match */
    void *doc = NULL;
    char why[128];
    ASSERT_EQ(coil_http_client_json(&res, &doc, why, sizeof why), 0);
    ASSERT_STR_EQ(json_string_value(json_object_get(doc, "name")), "Luke");
    json_decref(doc);
    ASSERT_EQ(coil_http_client_status_error(&res), 0);
    coil_http_client_response_free(&res);
    real_url(s, "/notdoc", url, sizeof url);
    ASSERT_EQ(coil_http_get(url, &res), 0);
    ASSERT_EQ(coil_http_client_json(&res, &doc, why, sizeof why), -EBADMSG);
    ASSERT(doc == NULL);
    ASSERT_CONTAINS(why, "not JSON");
    coil_http_client_response_free(&res);
    const struct { int code, err; } cases[] = {{204, 0}, {304, 0}, {400, -EINVAL}, {401, -EACCES},
                                               {404, -ENOENT}, {409, -EEXIST}, {418, -EPROTO},
                                               {429, -EAGAIN}, {500, -EREMOTEIO},
                                               {503, -EAGAIN}, {504, -ETIMEDOUT}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[32];
        snprintf(path, sizeof path, "/status?code=%d", cases[i].code);
        real_url(s, path, url, sizeof url);
        ASSERT_EQ(coil_http_get(url, &res), 0);
        ASSERT_EQ(res.status, cases[i].code);
        ASSERT_EQ(coil_http_client_status_error(&res), cases[i].err);
        coil_http_client_response_free(&res);
    }
}

TEST(server_headers_json_status) { run_with_server(server_headers_json_status); }

typedef struct server_fetcher {
    const char *url;
    int ok;
} server_fetcher;

static coil_result server_fetch_rounds(void *arg) {
    server_fetcher *f = arg;
    for (int i = 0; i < 4; i++) {
        coil_http_client_response res;
        int err = coil_http_get(f->url, &res);
        if (err) return coil_fail(err);
        if (res.status == 200 && strcmp(res.body, "slept") == 0) f->ok++;
        coil_http_client_response_free(&res);
    }
    return coil_ok(NULL);
}

/* 50 tasks, 4 requests each, against coil's server: all succeed, and the
 * server saw fewer connections than requests. */
static void server_many_in_flight(real_server *s) {
    enum { TASKS = 50, ROUNDS = 4 };
    char url[128];
    real_url(s, "/sleep?ms=5", url, sizeof url);
    server_fetcher f[TASKS];
    coil_group g;
    coil_group_init(&g);
    for (int i = 0; i < TASKS; i++) {
        f[i] = (server_fetcher){url, 0};
        ASSERT(coil_group_spawn(&g, server_fetch_rounds, &f[i]) != NULL);
    }
    ASSERT_EQ(coil_group_wait(&g), 0);
    coil_group_destroy(&g);
    for (int i = 0; i < TASKS; i++) ASSERT_EQ(f[i].ok, ROUNDS);
    coil_http_stats st;
    coil_http_server_get_stats(s->srv, &st);
    ASSERT_GE(st.requests, TASKS * ROUNDS);
    ASSERT_GE(st.connections_total, 1);
    ASSERT(st.connections_total < TASKS * ROUNDS);
}

TEST(server_many_in_flight) { run_with_server(server_many_in_flight); }

/* A timeout aborts the request; the server sees its client go and cancels
 * the handler. */
static void server_timeout(real_server *s) {
    char url[128];
    real_url(s, "/sleep?ms=20000", url, sizeof url);
    coil_http_client_request rq = {.url = url, .timeout = COIL_MSEC(500)};
    coil_http_client_response res;
    ASSERT_EQ(coil_http_fetch(&rq, &res), -ETIMEDOUT);
    ASSERT_EQ(atomic_load(&s->sleeping), 1);
    wait_count(&s->interrupted, 1);
}

TEST(server_timeout) { run_with_server(server_timeout); }

static void server_cancel(real_server *s) {
    char url[128];
    real_url(s, "/sleep?ms=20000", url, sizeof url);
    coil_task *t = coil_spawn_named("getter", get_and_return, url);
    ASSERT(t != NULL);
    wait_count(&s->sleeping, 1);
    coil_cancel(t);
    coil_result r;
    ASSERT_EQ(coil_join(t, &r), 0);
    ASSERT_EQ(r.err, -ECANCELED);
    wait_count(&s->interrupted, 1);
}

TEST(server_cancel) { run_with_server(server_cancel); }

/* The client inside a handler, on one of the server's worker loops; that
 * loop's client is freed when the server stops (sanitizers check it). */
static void server_handler_as_client(real_server *s) {
    char url[128];
    real_url(s, "/proxy", url, sizeof url);
    for (int i = 0; i < 3; i++) {
        coil_http_client_response res;
        ASSERT_EQ(coil_http_get(url, &res), 0);
        ASSERT_EQ(res.status, 200);
        ASSERT_STR_EQ(res.body, "200 Hello, World!");
        coil_http_client_response_free(&res);
    }
}

TEST(server_handler_as_client) { run_with_server(server_handler_as_client); }

/* ------------------------------------------------------------------ TLS verification */

/* openssl s_server with a self-signed certificate for 127.0.0.1: the
 * client refuses it by default, and takes it only when told to, saying so
 * on stderr. */
typedef struct tls_case {
    int port;
} tls_case;

static coil_result tls_main(void *arg) {
    tls_case *c = arg;
    char url[64];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/", c->port);
    coil_http_client_response res;
    ASSERT_EQ(coil_http_get(url, &res), -EIO); /* not a certificate anyone vouches for */
    coil_http_client_request rq = {.url = url, .insecure = true};
    coil_test_capture_stderr_begin();
    int err = coil_http_fetch(&rq, &res);
    char *log = coil_test_capture_stderr_end();
    ASSERT_EQ(err, 0);
    ASSERT_EQ(res.status, 200);
    ASSERT_CONTAINS(log, "TLS certificate verification is off for a request to 127.0.0.1");
    free(log);
    coil_http_client_response_free(&res);
    return coil_ok(NULL);
}

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ASSERT_EQ(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ASSERT_EQ(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

TEST(tls_verification_is_on_unless_turned_off) {
    char dir[] = "/tmp/coil-tls-XXXXXX", cmd[512];
    ASSERT(mkdtemp(dir) != NULL);
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout %s/key.pem -out %s/cert.pem -days 1 -subj /CN=127.0.0.1 2>/dev/null",
             dir, dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "skip: the openssl command is not installed\n");
        exit(77);
    }
    tls_case c = {.port = free_port()};
    char accept[32], cert[64], key[64];
    snprintf(accept, sizeof accept, "127.0.0.1:%d", c.port);
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    fflush(NULL);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        execlp("openssl", "openssl", "s_server", "-accept", accept, "-cert", cert, "-key", key,
               "-www", "-quiet", (char *)NULL);
        _exit(127);
    }
    bool up = false;
    for (int i = 0; i < 200 && !up; i++) { /* 10 s at most */
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c.port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        up = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
        if (!up) usleep(50000);
    }
    ASSERT(up);
    RUN_MAIN(tls_main, &c);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ASSERT_EQ(system(cmd), 0);
}
