/* tests/http/app/test_router.c: route matching, parameters, 404/405, HEAD.
 *
 * Each test registers routes on a real server (one loop, port 0) and asks
 * it over loopback; the handlers answer with what they matched. The
 * server runs on a thread: COIL_TEST_THREADS.
 */
#include "http/app/app_harness.h"

/* Answers "<tag>" followed by " name=value" for each name in the
 * space-separated list `arg` points to after the tag: "tag|id size". */
static int echo(coil_http_request *req, coil_http_response *res, void *arg) {
    const char *spec = arg;
    const char *bar = strchr(spec, '|');
    char out[512];
    size_t n = (size_t)snprintf(out, sizeof out, "%.*s", bar ? (int)(bar - spec) : (int)strlen(spec),
                                spec);
    if (bar) {
        char names[128];
        snprintf(names, sizeof names, "%s", bar + 1);
        char *save = NULL;
        for (char *name = strtok_r(names, " ", &save); name; name = strtok_r(NULL, " ", &save)) {
            const char *v = coil_http_param(req, name);
            n += (size_t)snprintf(out + n, sizeof out - n, " %s=%s", name, v ? v : "(null)");
        }
    }
    return coil_http_respond_text(res, 200, out);
}

static void expect(int port, const char *method, const char *path, int status, const char *body) {
    reply r;
    harness_request(port, method, path, NULL, &r);
    if (r.status != status)
        coil_test_fail(__FILE__, __LINE__, "%s %s: status %d, want %d:\n%s", method, path,
                       r.status, status, r.raw);
    if (body) ASSERT_STR_EQ(reply_body(&r), body);
}

TEST(params_and_literals) {
    coil_http_server *srv = harness_server();
    ASSERT_EQ(coil_http_route(srv, "GET", "/titles/{id}", echo, "title|id", 0), 0);
    ASSERT_EQ(coil_http_route(srv, "GET", "/titles/new", echo, "new", 0), 0);
    ASSERT_EQ(coil_http_route(srv, "GET", "/titles/{id}/cover/{size}", echo, "cover|id size", 0),
              0);
    ASSERT_EQ(coil_http_route(srv, "GET", "/", echo, "root", 0), 0);
    harness h;
    harness_start(&h, srv);
    expect(h.port, "GET", "/titles/42", 200, "title id=42");
    expect(h.port, "GET", "/titles/new", 200, "new"); /* the literal wins */
    expect(h.port, "GET", "/titles/7/cover/big", 200, "cover id=7 size=big");
    expect(h.port, "GET", "/", 200, "root");
    expect(h.port, "GET", "/titles/42?x=1", 200, "title id=42"); /* the query is not the path */
    expect(h.port, "GET", "/titles", 404, NULL);
    expect(h.port, "GET", "/titles/", 404, NULL); /* a parameter is never empty */
    expect(h.port, "GET", "/titles/7/cover", 404, NULL);
    expect(h.port, "GET", "/titles/7/cover/big/more", 404, NULL);
    harness_stop(&h);
}

TEST(rest_parameter_takes_the_remainder) {
    coil_http_server *srv = harness_server();
    ASSERT_EQ(coil_http_route(srv, "GET", "/files/{path...}", echo, "files|path", 0), 0);
    ASSERT_EQ(coil_http_route(srv, "GET", "/files/special", echo, "special", 0), 0);
    harness h;
    harness_start(&h, srv);
    expect(h.port, "GET", "/files/a/b/c.txt", 200, "files path=a/b/c.txt");
    expect(h.port, "GET", "/files/one", 200, "files path=one");
    expect(h.port, "GET", "/files/special", 200, "special");
    expect(h.port, "GET", "/files/special/x", 200, "files path=special/x"); /* backs up */
    expect(h.port, "GET", "/files/", 200, "files path=");
    expect(h.port, "GET", "/files", 404, NULL);
    harness_stop(&h);
}

TEST(backtracks_from_a_literal_dead_end) {
    coil_http_server *srv = harness_server();
    ASSERT_EQ(coil_http_route(srv, "GET", "/a/{x}/b", echo, "param|x", 0), 0);
    ASSERT_EQ(coil_http_route(srv, "GET", "/a/lit/c", echo, "lit", 0), 0);
    ASSERT_EQ(coil_http_route(srv, "GET", "/a/{name}", echo, "short|name", 0), 0);
    harness h;
    harness_start(&h, srv);
    expect(h.port, "GET", "/a/lit/c", 200, "lit");
    expect(h.port, "GET", "/a/lit/b", 200, "param x=lit");
    expect(h.port, "GET", "/a/lit", 200, "short name=lit"); /* names are per route */
    harness_stop(&h);
}

TEST(unknown_path_is_404_json) {
    coil_http_server *srv = harness_server();
    ASSERT_EQ(coil_http_route(srv, "GET", "/hello", echo, "hello", 0), 0);
    harness h;
    harness_start(&h, srv);
    reply r;
    harness_get(h.port, "/nope", &r);
    ASSERT_EQ(r.status, 404);
    char ct[128];
    ASSERT(reply_header(&r, "Content-Type", ct, sizeof ct));
    ASSERT_CONTAINS(ct, "application/json");
    ASSERT_CONTAINS(reply_body(&r), "\"error\"");
    harness_get(h.port, "/hello/", &r); /* no implicit trailing slash */
    ASSERT_EQ(r.status, 404);
    harness_stop(&h);
}

TEST(wrong_method_is_405_with_allow) {
    coil_http_server *srv = harness_server();
    ASSERT_EQ(coil_http_route(srv, "GET", "/items", echo, "list", 0), 0);
    ASSERT_EQ(coil_http_route(srv, "POST", "/items", echo, "create", 0), 0);
    ASSERT_EQ(coil_http_route(srv, "DELETE", "/items/{id}", echo, "delete|id", 0), 0);
    harness h;
    harness_start(&h, srv);
    reply r;
    char allow[128];
    harness_request(h.port, "PUT", "/items", NULL, &r);
    ASSERT_EQ(r.status, 405);
    ASSERT_STR_EQ(reply_header(&r, "Allow", allow, sizeof allow), "GET, HEAD, POST");
    harness_request(h.port, "GET", "/items/3", NULL, &r);
    ASSERT_EQ(r.status, 405);
    ASSERT_STR_EQ(reply_header(&r, "Allow", allow, sizeof allow), "DELETE");
    expect(h.port, "POST", "/items", 200, "create");
    expect(h.port, "DELETE", "/items/3", 200, "delete id=3");
    harness_stop(&h);
}

TEST(allow_gathers_every_matching_pattern) {
    coil_http_server *srv = harness_server();
    ASSERT_EQ(coil_http_route(srv, "POST", "/users/new", echo, "create", 0), 0);
    ASSERT_EQ(coil_http_route(srv, "GET", "/users/{id}", echo, "user|id", 0), 0);
    harness h;
    harness_start(&h, srv);
    /* The literal has no GET; the parameter route does, and answers. */
    expect(h.port, "GET", "/users/new", 200, "user id=new");
    reply r;
    char allow[128];
    harness_request(h.port, "DELETE", "/users/new", NULL, &r);
    ASSERT_EQ(r.status, 405);
    ASSERT_STR_EQ(reply_header(&r, "Allow", allow, sizeof allow), "POST, GET, HEAD");
    harness_stop(&h);
}

static int count_calls(coil_http_request *req, coil_http_response *res, void *arg) {
    atomic_int *calls = arg;
    atomic_fetch_add(calls, 1);
    return coil_http_respond_text(res, 200, "Hello, World!");
}

TEST(head_runs_the_get_handler_without_a_body) {
    static atomic_int calls;
    coil_http_server *srv = harness_server();
    ASSERT_EQ(coil_http_route(srv, "GET", "/hello", count_calls, &calls, 0), 0);
    harness h;
    harness_start(&h, srv);
    reply r;
    harness_request(h.port, "HEAD", "/hello", NULL, &r);
    ASSERT_EQ(r.status, 200);
    ASSERT_EQ(r.body_len, 0);
    char cl[32];
    ASSERT_STR_EQ(reply_header(&r, "Content-Length", cl, sizeof cl), "13");
    ASSERT_EQ(atomic_load(&calls), 1);
    harness_get(h.port, "/hello", &r);
    ASSERT_STR_EQ(reply_body(&r), "Hello, World!");
    ASSERT_EQ(atomic_load(&calls), 2);
    harness_stop(&h);
}

TEST(any_method_route) {
    coil_http_server *srv = harness_server();
    ASSERT_EQ(coil_http_route(srv, "*", "/any", echo, "any", 0), 0);
    ASSERT_EQ(coil_http_route(srv, "POST", "/any", echo, "post", 0), 0);
    harness h;
    harness_start(&h, srv);
    expect(h.port, "PATCH", "/any", 200, "any");
    expect(h.port, "GET", "/any", 200, "any");
    expect(h.port, "POST", "/any", 200, "post"); /* an exact method first */
    harness_stop(&h);
}

static int silent(coil_http_request *req, coil_http_response *res, void *arg) {
    return (int)(intptr_t)arg;
}

TEST(handler_that_does_not_respond) {
    coil_http_server *srv = harness_server();
    ASSERT_EQ(coil_http_route(srv, "GET", "/ok", silent, (void *)0, 0), 0);
    ASSERT_EQ(coil_http_route(srv, "GET", "/fail", silent, (void *)-EIO, 0), 0);
    harness h;
    harness_start(&h, srv);
    expect(h.port, "GET", "/ok", 204, "");
    expect(h.port, "GET", "/fail", 500, NULL);
    harness_stop(&h);
}

TEST(bad_registrations) {
    coil_http_server *srv = harness_server();
    const char *bad[] = {"",          "nope",         "/a//b",        "/a/{",    "/a/{}",
                         "/a/x{id}",  "/a/{id}x",     "/a/{x}/{x}",   "/a/{p...}/b",
                         "/a/{...}",  "/a/{b c}",     "/a/}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (coil_http_route(srv, "GET", bad[i], echo, "x", 0) != -EINVAL)
            coil_test_fail(__FILE__, __LINE__, "pattern \"%s\" was accepted", bad[i]);
    ASSERT_EQ(coil_http_route(srv, "get", "/a", echo, "x", 0), -EINVAL);
    ASSERT_EQ(coil_http_route(srv, "", "/a", echo, "x", 0), -EINVAL);
    ASSERT_EQ(coil_http_route(srv, "GET", "/a", NULL, "x", 0), -EINVAL);
    ASSERT_EQ(coil_http_route(srv, "GET", "/a", echo, "x", 0x100), -EINVAL);
    ASSERT_EQ(coil_http_route(srv, "GET", "/a/{id}", echo, "x", 0), 0);
    ASSERT_EQ(coil_http_route(srv, "GET", "/a/{other}", echo, "x", 0), -EEXIST);
    ASSERT_EQ(coil_http_route(srv, "POST", "/a/{other}", echo, "x", 0), 0);
    ASSERT_EQ(coil_http_route(srv, "GET", "/a/{id}/", echo, "x", 0), 0); /* trailing slash */
    ASSERT_EQ(coil_http_use(srv, NULL, NULL), -EINVAL);
    coil_http_server_free(srv);
}

static int task_name(coil_http_request *req, coil_http_response *res, void *arg) {
    return coil_http_respond_text(res, 200, coil_task_name(coil_current()));
}

TEST(request_task_is_named_after_its_route) {
    coil_http_server *srv = harness_server();
    ASSERT_EQ(coil_http_route(srv, "GET", "/titles/{id}", task_name, NULL, 0), 0);
    harness h;
    harness_start(&h, srv);
    expect(h.port, "GET", "/titles/42", 200, "GET /titles/{id}");
    harness_stop(&h);
}
