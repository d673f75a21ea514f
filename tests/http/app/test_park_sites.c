/* tests/http/app/test_park_sites.c: a task dump names the line where a handler
 * waits, for handlers parked in the response functions (an SSE send, a
 * chunked write) by back-pressure from a client that does not read; and
 * never a line of another task's. The server's loops and this thread meet
 * in coil_tasks_snapshot: COIL_TEST_THREADS. */
#include "http/app/app_harness.h"

#include <jansson.h>

static char big[256 << 10];
static int sse_line, chunk_line;

static int sse(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)req, (void)arg;
    int err = coil_http_sse_begin(res);
    while (!err) {
        sse_line = __LINE__ + 1;
        err = coil_http_sse_send(res, "fill", big); /* blocks once the client stops reading */
    }
    return 0;
}

static int chunks(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)req, (void)arg;
    int err = coil_http_begin_chunked(res, 200, "text/plain");
    while (!err) {
        chunk_line = __LINE__ + 1;
        err = coil_http_write_chunk(res, big, sizeof big - 1);
    }
    return 0;
}

/* Opens a request and never reads its answer. */
static int stuck_client(int port, const char *path) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT(fd >= 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ASSERT_EQ(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    char req[128];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    ASSERT_EQ(write(fd, req, (size_t)n), n);
    return fd;
}

/* The parked_at of the task named `name` (waits up to 10 s for it to park
 * at a site in this file). */
static void await_site(const char *name, char *out, size_t cap) {
    coil_time until = coil_now() + COIL_SEC(10);
    for (;;) {
        char *json = NULL;
        ASSERT_EQ(coil_tasks_snapshot(&json, COIL_SEC(2)), 0);
        json_t *doc = json_loads(json, 0, NULL);
        free(json);
        size_t i, k;
        json_t *loop, *t;
        out[0] = '\0';
        json_array_foreach(json_object_get(doc, "loops"), i, loop) {
            json_array_foreach(json_object_get(loop, "tasks"), k, t) {
                const char *n = json_string_value(json_object_get(t, "name"));
                const char *at = json_string_value(json_object_get(t, "parked_at"));
                if (n && strcmp(n, name) == 0 && at) snprintf(out, cap, "%s", at);
            }
        }
        json_decref(doc);
        if (strstr(out, "test_park_sites.c")) return;
        if (coil_now() > until)
            coil_test_fail(__FILE__, __LINE__, "task '%s' parked at '%s', not in this file", name, out);
        usleep(20 * 1000);
    }
}

TEST(a_dump_names_the_handlers_own_line) {
    memset(big, 'x', sizeof big - 1);
    coil_http_server *srv = harness_server();
    ASSERT_EQ(coil_http_route(srv, "GET", "/sse", sse, NULL, 0), 0);
    ASSERT_EQ(coil_http_route(srv, "GET", "/chunks", chunks, NULL, 0), 0);
    harness h;
    harness_start(&h, srv);
    int a = stuck_client(h.port, "/sse");
    int b = stuck_client(h.port, "/chunks");
    char site[512], want[512];
    await_site("GET /sse", site, sizeof site);
    snprintf(want, sizeof want, "test_park_sites.c:%d", sse_line);
    ASSERT(strstr(site, want) != NULL);
    await_site("GET /chunks", site, sizeof site);
    snprintf(want, sizeof want, "test_park_sites.c:%d", chunk_line);
    ASSERT(strstr(site, want) != NULL);
    close(a);
    close(b);
    harness_stop(&h);
}
