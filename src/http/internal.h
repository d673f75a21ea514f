/* http/internal.h: what the HTTP layer's files share (coil__http names).
 *
 * Two halves meet here:
 *
 *   the server core (server/: server.c, conn.c, parser.c, request.c,
 *       response.c, sendfile.c, stats.c): listeners, one task per
 *       connection, llhttp parsing with limits, keep-alive and pipelining,
 *       writing responses, shutdown, stats;
 *   the application side (app/: router.c, middleware.c, blocking.c,
 *       static.c, metrics.c): routes, middleware chains, blocking handlers
 *       on the thread pool, static files, /metrics.
 *
 * The client (client/client.c) shares only the public API and this
 * header's helpers.
 *
 * The core owns coil_http_server, coil_http_request and coil_http_response
 * and calls coil__http_dispatch() once per parsed request; the application
 * side owns coil__http_router and uses only the accessors below (and the
 * public API) to reach into requests.
 */
#ifndef COIL_HTTP_INTERNAL_H
#define COIL_HTTP_INTERNAL_H

#include "coil/http.h"
#include "runtime/internal.h"

typedef struct coil__http_router coil__http_router;

/* ------------------------------------------------------------------ application side */

/* Creates the router a new server uses, with the default middleware
 * (request ID, timing, and the access log when cfg->access_log). Returns
 * NULL on ENOMEM. */
coil__http_router *coil__http_router_new(const coil_http_config *cfg);
void coil__http_router_free(coil__http_router *r);
/* Runs the middleware chain and the matching handler (on the thread pool
 * for COIL_HTTP_BLOCKING routes), answering 404/405 itself. Returns what
 * the chain returned. Suspends. */
int coil__http_dispatch(coil__http_router *r, coil_http_request *req, coil_http_response *res);

/* Called by response.c just before it writes a response's status line and
 * headers (any kind of response: complete, chunked, SSE, file), while
 * headers may still be added; `now` is coil_now(), read by the caller. The
 * timing middleware adds its header here. Does not suspend. */
void coil__http_before_head(coil_http_request *req, coil_http_response *res, coil_time now);

/* Appends "name: value" to the response's headers like
 * coil_http_set_header(), for the shipped middleware, without its checks:
 * the caller vouches that `name` (nlen bytes) is a token that header does
 * not treat specially, that `value` (vlen bytes) holds only characters a
 * header value may. Validating the two headers every request carries cost
 * more than building the rest of the head. Loop thread only. Returns 0,
 * -EALREADY (the head is written) or -ENOMEM. Does not suspend. */
int coil__http_add_header(coil_http_response *res, const char *name, size_t nlen,
                          const char *value, size_t vlen);

/* Makes `id` the calling task's current request ID (the value
 * coil_http_current_request_id() returns, there and in tasks it spawns
 * from now on); the caller keeps `id` alive while they may read it. The
 * request-ID middleware points it into the request's memory, which ends
 * with the request; coil_http_background() switches to a copy that lives
 * as long as the work. Returns 0 or -ENOMEM. Does not suspend. */
int coil__http_adopt_request_id(const char *id);

/* Blocking handlers (blocking.c). A COIL_HTTP_BLOCKING handler runs on a
 * thread-pool thread, where the connection's stream must not be touched
 * (it belongs to the loop). While it runs, the response calls it makes are
 * captured, and the loop replays them once the handler has returned. So
 * each public function of response.c that touches the response starts,
 * when coil__http_offloaded(), by handing over to its capture twin:
 *
 *   coil_http_set_header             coil__http_capture_header
 *   coil_http_respond (and the text,
 *     JSON and error forms, with the
 *     body they built)               coil__http_capture_respond
 *   coil_http_responded              coil__http_capture_responded
 *   coil_http_status                 coil__http_capture_status
 *   coil_http_background             coil__http_capture_background
 *   chunked, SSE and send_file       return -EPERM
 *
 * Outside a blocking handler (a plain thread) the capture calls return
 * -EPERM. */
static inline bool coil__http_offloaded(void) { return coil__running() == NULL; }
int coil__http_capture_header(coil_http_response *res, const char *name, const char *value);
int coil__http_capture_respond(coil_http_response *res, int status, const char *content_type,
                               const void *body, size_t len);
bool coil__http_capture_responded(const coil_http_response *res);
int coil__http_capture_status(const coil_http_response *res);
int coil__http_capture_background(coil_http_request *req, coil_fn fn, void *arg);
/* Runs `fn` on the thread pool with the capture above, then replays what it
 * captured. Returns fn's result, -EAGAIN if the pool's queue is full, or the
 * interruption. Suspends. (router.c calls it for blocking routes.) */
int coil__http_run_blocking(coil_http_handler fn, void *arg, coil_http_request *req,
                            coil_http_response *res);

/* ------------------------------------------------------------------ server core */

coil__http_router *coil__http_server_router(coil_http_server *srv);
const coil_http_config *coil__http_server_config(const coil_http_server *srv);
/* Adds a route parameter to `req` (both strings copied into request memory
 * that lives until the request ends). Returns 0 or -ENOMEM. */
int coil__http_request_add_param(coil_http_request *req, const char *name, size_t name_len,
                                 const char *value, size_t value_len);
/* Sets the request's ID (copied). Returns 0 or -ENOMEM. */
int coil__http_request_set_id(coil_http_request *req, const char *id);
/* When the request's first byte arrived. */
coil_time coil__http_request_start(const coil_http_request *req);
/* Bytes of response body sent so far. */
uint64_t coil__http_response_bytes(const coil_http_response *res);
/* The server's worker loops, for /metrics (metrics.c): stores up to `max`
 * of them in `out` and returns how many it stored. A handler of the server
 * may pass them to coil_loop_get_metrics() while it runs. Any thread. */
size_t coil__http_server_loops(coil_http_server *srv, coil_loop **out, size_t max);

/* An extra section of /metrics (coil_http_add_metrics). */
typedef struct coil__http_metrics_source {
    void (*fn)(coil_http_metrics_out *out, void *arg);
    void *arg;
} coil__http_metrics_source;
/* The server's extra sections: sets *out, returns how many. Any thread
 * once the server runs (they do not change then). */
size_t coil__http_server_metrics(const coil_http_server *srv,
                                 const coil__http_metrics_source **out);

#endif
