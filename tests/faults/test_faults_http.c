/* tests/faults/test_faults_http.c: the HTTP server under allocation failure
 * (COIL_TEST_ALLOC_FAULTS): a server on a thread of its own, with a route
 * that answers JSON and one that streams chunks, and a raw client that
 * sends a GET, two pipelined requests, a POST with a body and a malformed
 * request, each on a connection of its own; then coil's client (libcurl on
 * a loop of this thread) GETs and POSTs. Whatever allocation fails, each
 * request gets an answer, an error or a closed connection, the server
 * stops when told, and nothing leaks. */
#include "faults/alloc_faults.h"
#include "test.h"
#include "http/loopback_server.h"

#include <coil/coil.h>
#include <errno.h>
#include <stdio.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

static int h_json(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)req, (void)arg;
    return coil_http_respond(res, 200, "application/json", "{\"ok\":true}", 11);
}

static int h_echo(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)arg;
    size_t len;
    const void *body = coil_http_body(req, &len);
    return coil_http_respond(res, 200, "application/octet-stream", body, len);
}

static int h_chunks(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)req, (void)arg;
    int err = coil_http_begin_chunked(res, 200, "text/plain");
    for (int i = 0; i < 3 && !err; i++) err = coil_http_write_chunk(res, "chunk\n", 6);
    return err ? err : coil_http_end_chunked(res);
}

/* coil's client against the server: a GET and a POST. Their errors are
 * the client's clean answers to a failed allocation. */
static coil_result client_main(void *arg) {
    int port = *(int *)arg;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/json", port);
    coil_http_client_response r;
    if (coil_http_get(url, &r) == 0) coil_http_client_response_free(&r);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/echo", port);
    coil_http_client_request post = {.method = "POST", .url = url, .body = "hello", .body_len = 5};
    if (coil_http_fetch(&post, &r) == 0) coil_http_client_response_free(&r);
    return coil_ok(NULL);
}

static int http_scenario(void *arg) {
    (void)arg;
    loopback_server s;
    if (loopback_new(&s) != 0) return -ENOMEM;
    int err = coil_http_route(s.srv, "GET", "/json", h_json, NULL, 0);
    if (!err) err = coil_http_route(s.srv, "POST", "/echo", h_echo, NULL, 0);
    if (!err) err = coil_http_route(s.srv, "GET", "/chunks", h_chunks, NULL, 0);
    if (err) {
        coil_http_server_free(s.srv);
        return err;
    }
    int port = loopback_start(&s);
    if (port < 0) return port; /* the server could not serve: its error */
    coil_faults_exchange(port, "GET /json HTTP/1.1\r\nHost: x\r\n\r\n");
    coil_faults_exchange(port, "GET /json HTTP/1.1\r\nHost: x\r\n\r\nGET /chunks HTTP/1.1\r\nHost: x\r\n\r\n");
    coil_faults_exchange(port, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    coil_faults_exchange(port, "GET /json HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n");
    coil_run(client_main, &port, NULL);
    return loopback_stop(&s); /* 0, or why it stopped serving */
}

TEST(http_server_ends_cleanly_whichever_allocation_fails) {
    coil_faults_sweep("http", http_scenario, NULL);
}
