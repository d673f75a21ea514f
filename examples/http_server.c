/* examples/http_server.c: a first coil HTTP server, on 127.0.0.1:8000
 * (or the port given: ./http_server 9000).
 *   curl localhost:8000/hello/ada                   {"hello":"ada"}, after a 50 ms wait
 *   curl localhost:8000/report                      blocks 1 s on the thread pool
 *   curl -X POST 'localhost:8000/signup?email=a@b'  202 at once, the mail after */
#define _POSIX_C_SOURCE 200809L /* strdup and sleep under -std=c11 */
#include <coil/coil.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int hello(coil_http_request *req, coil_http_response *res, void *arg) {
    int err = coil_sleep(COIL_MSEC(50));         /* a coroutine: other requests run meanwhile */
    if (err) return err;
    json_t *doc = json_pack("{ss}", "hello", coil_http_param(req, "name"));
    err = coil_http_respond_json(res, 200, doc);
    json_decref(doc);
    return err;
}

static int report(coil_http_request *req, coil_http_response *res, void *arg) {
    sleep(1);                                    /* blocking is fine: we are on a pool thread */
    return coil_http_respond_text(res, 200, "report ready\n");
}

static coil_result send_welcome(void *email) { /* background work: after the 202 is sent */
    coil_sleep(COIL_MSEC(500));
    fprintf(stderr, "welcome mail sent to %s\n", (char *)email);
    free(email);
    return coil_ok(NULL);
}

static int signup(coil_http_request *req, coil_http_response *res, void *arg) {
    char email[128];
    if (coil_http_query_param(req, "email", email, sizeof email) <= 0)
        return coil_http_respond_error(res, 400, "email is required");
    char *copy = strdup(email);
    if (!copy || coil_http_background(req, send_welcome, copy) != 0) {
        free(copy);
        return -ENOMEM;                          /* the server answers 500 */
    }
    return coil_http_respond_text(res, 202, "welcome!\n");
}

int main(int argc, char **argv) {
    coil_http_config cfg;
    coil_http_config_init(&cfg);
    cfg.port = argc > 1 ? (uint16_t)atoi(argv[1]) : 8000;
    coil_http_server *srv = coil_http_server_new(&cfg);
    if (!srv) return 1;
    coil_http_route(srv, "GET", "/hello/{name}", hello, NULL, 0);
    coil_http_route(srv, "GET", "/report", report, NULL, COIL_HTTP_BLOCKING);
    coil_http_route(srv, "POST", "/signup", signup, NULL, 0);
    int err = coil_http_server_run(srv);         /* until Ctrl-C, then drains */
    coil_http_server_free(srv);
    return err ? 1 : 0;
}
