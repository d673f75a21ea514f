/* coil/http.h: an HTTP/1.1 server and client on the coil runtime.
 *
 * Server model. A server runs `workers` loops, one per thread, each with its
 * own SO_REUSEPORT listener, so the kernel spreads connections over them.
 * Every connection is served by one task on one loop; requests on a
 * keep-alive connection are handled one after another, in order (pipelined
 * requests are answered in order). A handler is a coroutine that runs in the
 * connection's task: it may suspend (sleep, query, call another service) and
 * the loop serves other connections meanwhile. A handler registered with
 * COIL_HTTP_BLOCKING runs on the thread pool instead, for code that blocks
 * (FastAPI's `def` endpoints); the connection's task waits for it without
 * blocking the loop. If the client disconnects while its handler runs, the
 * handler's task is cancelled: its suspension points return -ECANCELED.
 *
 * Ownership. The server owns every request and response; a handler borrows
 * them for the duration of the call. Strings returned by the accessors stay
 * valid until the handler returns. Bodies passed to the respond functions
 * are copied (or written out) before they return.
 *
 * Errors. Functions return 0 or a negative errno-style code, like the rest
 * of coil. A handler that returns an error without having responded gets a
 * 500 for it; one that returns 0 without responding gets a 204.
 */
#ifndef COIL_HTTP_H
#define COIL_HTTP_H

#include "coil/runtime.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct coil_http_server coil_http_server;
typedef struct coil_http_request coil_http_request;
typedef struct coil_http_response coil_http_response;

/* ------------------------------------------------------------------ configuration */

typedef struct coil_http_config {
    const char *host;            /* listen address, default "127.0.0.1" */
    uint16_t port;               /* default 8080; 0 lets the kernel choose */
    unsigned workers;            /* loops (threads); 0: one per core */
    size_t max_request_line;     /* default 8 KiB; longer: 414 */
    size_t max_header_bytes;     /* whole header block, default 16 KiB; larger: 431 */
    size_t max_headers;          /* default 100; more: 431 */
    size_t max_body;             /* default 1 MiB; larger: 413 */
    coil_time header_timeout;    /* whole header block must arrive within, default 10 s: 408 */
    coil_time body_timeout;      /* max gap between body reads, default 30 s: 408 */
    coil_time idle_timeout;      /* idle keep-alive connection closed after, default 5 s */
    size_t max_connections;      /* per server; beyond: 503 and close. default 10000 */
    coil_time shutdown_grace;    /* in-flight requests get this long at shutdown, default 10 s */
    bool access_log;             /* one JSON line per request to stderr, default true */
    bool handle_signals;         /* SIGTERM/SIGINT start a graceful shutdown, default true */
    const char *const *trusted_proxies; /* NULL-terminated peer addresses ("10.0.0.7",
                                   "::1") whose X-Forwarded-For is believed; default
                                   none. Borrowed: kept alive while the server runs */
} coil_http_config;

/* Fills `cfg` with the defaults above. */
COIL_EXTERN void coil_http_config_init(coil_http_config *cfg);

/* ------------------------------------------------------------------ server */

/* A handler. Returns 0, or a negative error (500 if it had not responded). */
typedef int (*coil_http_handler)(coil_http_request *req, coil_http_response *res, void *arg);

/* Route flags. */
#define COIL_HTTP_BLOCKING 0x1u /* run the handler on the thread pool */

/* Creates a server (not yet listening). `cfg` is copied; NULL means the
 * defaults. Returns NULL with errno set on failure. Call from any thread,
 * before coil_http_server_run(). */
COIL_EXTERN coil_http_server *coil_http_server_new(const coil_http_config *cfg);

/* Registers `fn` for `method` ("GET", "POST", ...; "*" for any) and
 * `pattern`: a path whose segments are literals or {name} parameters, e.g.
 * "/titles/{id}", or ending in "/{path...}" to match the rest of the path.
 * An unknown path gets 404; a known path with another method gets 405 with
 * an Allow header. `arg` is passed to every call. Returns 0, -EINVAL for a
 * bad pattern, -EEXIST for a duplicate route, -ENOMEM. Before run only. */
COIL_EXTERN int coil_http_route(coil_http_server *srv, const char *method, const char *pattern,
                                coil_http_handler fn, void *arg, unsigned flags);

/* Middleware: runs around every handler, outermost first in the order they
 * were added. It calls coil_http_next(req, res) to run the rest of the chain
 * (and the handler), or responds itself to stop there. */
typedef int (*coil_http_middleware)(coil_http_request *req, coil_http_response *res, void *arg);
COIL_EXTERN int coil_http_use(coil_http_server *srv, coil_http_middleware mw, void *arg);
/* From inside a middleware: runs the rest of the chain. Suspends. */
COIL_EXTERN int coil_http_next(coil_http_request *req, coil_http_response *res);

/* Shipped middleware. coil_http_server_new() installs request IDs, timing
 * and (when cfg.access_log) the access log; these are for custom chains. */
COIL_EXTERN int coil_http_mw_request_id(coil_http_request *req, coil_http_response *res, void *arg);
COIL_EXTERN int coil_http_mw_timing(coil_http_request *req, coil_http_response *res, void *arg);
COIL_EXTERN int coil_http_mw_access_log(coil_http_request *req, coil_http_response *res, void *arg);

/* A handler that answers with the server's metrics in the Prometheus text
 * format: loop lag and stalls per loop, requests, status classes,
 * latencies, connections, thread-pool depth. Register it yourself:
 * coil_http_route(srv, "GET", "/metrics", coil_http_metrics, NULL, 0).
 * Suspends. */
COIL_EXTERN int coil_http_metrics(coil_http_request *req, coil_http_response *res, void *arg);

/* More metrics for coil_http_metrics(): `fn` is called at each scrape, on
 * the scraping loop, and appends Prometheus text (HELP, TYPE and samples)
 * with coil_http_metrics_printf(). It must not suspend. Add before the
 * server runs. Returns 0, -EINVAL, -EBUSY (running) or -ENOMEM. */
typedef struct coil_http_metrics_out coil_http_metrics_out;
COIL_EXTERN int coil_http_add_metrics(coil_http_server *srv,
                                      void (*fn)(coil_http_metrics_out *out, void *arg),
                                      void *arg);
COIL_EXTERN void coil_http_metrics_printf(coil_http_metrics_out *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Serves the files under directory `root` for GET/HEAD requests under
 * `prefix` (e.g. "/static"), with sendfile. A path that escapes `root`
 * (.., symlinks out of it) is refused with 403/404. */
COIL_EXTERN int coil_http_static(coil_http_server *srv, const char *prefix, const char *root);

/* Listens and serves until coil_http_server_stop() or, when
 * cfg.handle_signals, SIGTERM or SIGINT. Then stops accepting, lets
 * in-flight requests finish within the grace period, closes idle
 * connections, runs pending background work, and returns 0 (or a negative
 * error if it could not listen). Blocks the calling thread, which must not
 * be running a coil loop. */
COIL_EXTERN int coil_http_server_run(coil_http_server *srv);
/* The port actually listened on (after run started listening; for port 0),
 * or -EAGAIN before. Any thread. */
COIL_EXTERN int coil_http_server_port(const coil_http_server *srv);
/* Starts a graceful shutdown. Any thread, async-signal-safe. */
COIL_EXTERN void coil_http_server_stop(coil_http_server *srv);
/* Frees a server that is not running. */
COIL_EXTERN void coil_http_server_free(coil_http_server *srv);

/* Server-wide counters, for /metrics. */
typedef struct coil_http_stats {
    uint64_t requests;            /* completed requests */
    uint64_t status[6];           /* by class: [1]..[5] = 1xx..5xx */
    uint64_t connections;         /* open now */
    uint64_t connections_total;
    uint64_t rejected;            /* refused with 503 at max_connections */
    double latency_p50, latency_p99, latency_max; /* seconds, recent window */
} coil_http_stats;
COIL_EXTERN void coil_http_server_get_stats(coil_http_server *srv, coil_http_stats *out);

/* ------------------------------------------------------------------ requests */

COIL_EXTERN const char *coil_http_method(const coil_http_request *req);  /* "GET" */
COIL_EXTERN const char *coil_http_path(const coil_http_request *req);    /* decoded, no query */
COIL_EXTERN const char *coil_http_query(const coil_http_request *req);   /* raw, "" if none */
/* 1 for HTTP/1.1, 0 for HTTP/1.0. */
COIL_EXTERN int coil_http_minor_version(const coil_http_request *req);
/* A header's value (case-insensitive name; the first if repeated) or NULL. */
COIL_EXTERN const char *coil_http_header(const coil_http_request *req, const char *name);
/* Number of headers, and the i-th name/value. */
COIL_EXTERN size_t coil_http_header_count(const coil_http_request *req);
COIL_EXTERN int coil_http_header_at(const coil_http_request *req, size_t i, const char **name,
                                    const char **value);
/* The client's address as text ("192.0.2.7", "2001:db8::1"): the peer of
 * the connection, or, when that peer is one of cfg.trusted_proxies, the
 * last address of X-Forwarded-For that is not a trusted proxy (a client
 * cannot forge its way past the proxies it came through). "" if unknown
 * (a Unix socket). Valid while the request is. Does not suspend. */
COIL_EXTERN const char *coil_http_client_addr(const coil_http_request *req);
/* A route parameter ("id" for "/titles/{id}") or NULL. */
COIL_EXTERN const char *coil_http_param(const coil_http_request *req, const char *name);
/* A query parameter, percent-decoded into `buf`. Returns its length, -ENOENT,
 * or -ENOBUFS if it does not fit. */
COIL_EXTERN ssize_t coil_http_query_param(const coil_http_request *req, const char *name,
                                          char *buf, size_t size);
/* The same for a parameter given more than once: its index-th value (0 is
 * the first), or -ENOENT past the last. */
COIL_EXTERN ssize_t coil_http_query_param_at(const coil_http_request *req, const char *name,
                                             size_t index, char *buf, size_t size);
/* The whole request body (read before the handler runs, within max_body). */
COIL_EXTERN const void *coil_http_body(const coil_http_request *req, size_t *len);
/* The request's ID (X-Request-ID or a generated one). Also readable from
 * any code the request runs with coil_http_current_request_id(). */
COIL_EXTERN const char *coil_http_request_id(const coil_http_request *req);
/* The request ID of the running task (a task-local value), or NULL. */
COIL_EXTERN const char *coil_http_current_request_id(void);
/* The server this request arrived on. */
COIL_EXTERN coil_http_server *coil_http_request_server(const coil_http_request *req);

/* ------------------------------------------------------------------ responses */

/* Adds a response header (copied). Before the status line is sent only:
 * -EALREADY after. */
COIL_EXTERN int coil_http_set_header(coil_http_response *res, const char *name, const char *value);

/* Sends a complete response. `body` is copied or written before the call
 * returns. Returns 0, -EALREADY if a response was already started, or a
 * write error. Suspends. */
COIL_EXTERN int coil_http_respond(coil_http_response *res, int status, const char *content_type,
                                  const void *body, size_t len);
/* Same with a NUL-terminated text/plain body. Suspends. */
COIL_EXTERN int coil_http_respond_text(coil_http_response *res, int status, const char *text);
/* Same with a JSON document (a jansson json_t *, borrowed). Suspends. */
COIL_EXTERN int coil_http_respond_json(coil_http_response *res, int status, const void *json);
/* {"error": message} with the given status. Suspends. */
COIL_EXTERN int coil_http_respond_error(coil_http_response *res, int status, const char *message);

/* Streaming: starts a chunked response, writes chunks (each suspends under
 * back-pressure), and ends it. Suspends. */
COIL_EXTERN int coil_http_begin_chunked(coil_http_response *res, int status,
                                        const char *content_type);
COIL_EXTERN int coil_http_write_chunk(coil_http_response *res, const void *data, size_t len);
COIL_EXTERN int coil_http_end_chunked(coil_http_response *res);

/* Server-Sent Events: starts a text/event-stream response, then sends
 * events (`event` may be NULL; `data` may hold newlines). Returns -EPIPE
 * once the client has gone. Suspends. */
COIL_EXTERN int coil_http_sse_begin(coil_http_response *res);
COIL_EXTERN int coil_http_sse_send(coil_http_response *res, const char *event, const char *data);

/* Sends the file at `path` with sendfile (Content-Type from its extension).
 * 404 if it does not exist. Suspends. */
COIL_EXTERN int coil_http_send_file(coil_http_response *res, const char *path);
/* Same with the given Content-Type (NULL: from the extension). Suspends. */
COIL_EXTERN int coil_http_send_file_as(coil_http_response *res, const char *path,
                                       const char *content_type);

/* Whether a response was started. */
COIL_EXTERN bool coil_http_responded(const coil_http_response *res);
/* The status sent (0 if none yet). */
COIL_EXTERN int coil_http_status(const coil_http_response *res);

/* Runs fn(arg) after the response has been sent (Starlette's
 * BackgroundTask), as a task owned by the server: it is never dropped, and
 * shutdown waits for it. Returns 0 or -ENOMEM. Does not suspend. */
COIL_EXTERN int coil_http_background(coil_http_request *req, coil_fn fn, void *arg);

/* ------------------------------------------------------------------ client */

/* A response received by the client. Free with coil_http_client_response_free. */
typedef struct coil_http_client_response {
    int status;          /* HTTP status */
    char *body;          /* NUL-terminated (may also contain NULs), malloc'd */
    size_t body_len;
    char *content_type;  /* malloc'd or NULL */
    char *headers;       /* the final response's header lines, "Name: value\r\n"
                            each, NUL-terminated (malloc'd): coil_http_client_header */
    char *url;           /* where the response came from, after redirects (malloc'd) */
    int redirects;       /* redirects followed to get there */
} coil_http_client_response;

typedef struct coil_http_client_request {
    const char *method;        /* default "GET" */
    const char *url;
    const char *const *headers; /* "Name: value" strings, NULL-terminated, or NULL */
    const void *body;
    size_t body_len;
    coil_time timeout;         /* whole request; 0: 30 s. Deadline scopes also apply */
    size_t max_body;           /* bytes of response body at most; past them the
                                  request fails with -EMSGSIZE. 0: no limit */
    int max_redirects;         /* redirects followed at most (http and https
                                  only); past them -ELOOP. 0: 10; -1: none (a
                                  3xx is then the response) */
    bool insecure;             /* do not verify the server's TLS certificate
                                  and name. Off by default; each request that
                                  turns it on is logged */
} coil_http_client_request;

/* Performs a request through the calling loop's client (a libcurl multi
 * handle driven by the loop, with a connection pool). Many requests may be
 * in flight at once from different tasks. `rq` and what it points to are
 * borrowed for the call. Stores the response in *out, which the caller
 * then owns and frees with coil_http_client_response_free(); on an error
 * *out is zeroed. Returns 0 (any HTTP status), or a negative error
 * (-ETIMEDOUT, -ECONNREFUSED, -EINVAL for a bad URL, the interruption: the
 * transfer is then aborted; docs/http-client.md lists them all). Suspends. */
COIL_EXTERN int coil_http_fetch(const coil_http_client_request *rq, coil_http_client_response *out);
/* GET `url`. Suspends. */
COIL_EXTERN int coil_http_get(const char *url, coil_http_client_response *out);
/* The value of the response header `name` (any case), the first if it
 * came more than once: a pointer into r->headers and its length in *len
 * (not NUL-terminated). NULL if the response has no such header. */
COIL_EXTERN const char *coil_http_client_header(const coil_http_client_response *r,
                                                const char *name, size_t *len);
/* resp.json(): parses the body as JSON into *doc (a jansson json_t *, the
 * caller's reference: json_decref it). Returns 0, or -EBADMSG with what is
 * wrong and where in `why` (cap bytes) for a body that is not JSON. */
COIL_EXTERN int coil_http_client_json(const coil_http_client_response *r, void **doc, char *why,
                                      size_t cap);
/* raise_for_status(): 0 for a status below 400; else the status as an
 * error: 400 -EINVAL, 401 and 403 -EACCES, 404 and 410 -ENOENT, 405
 * -EOPNOTSUPP, 408 and 504 -ETIMEDOUT, 409 -EEXIST, 413 -EMSGSIZE, 429 and
 * 503 -EAGAIN, 501 -ENOSYS, another 4xx -EPROTO, another 5xx -EREMOTEIO. */
COIL_EXTERN int coil_http_client_status_error(const coil_http_client_response *r);
/* Frees the body, content type, headers and URL and zeroes *r. NULL is
 * fine. */
COIL_EXTERN void coil_http_client_response_free(coil_http_client_response *r);

/* Site-recording wrappers (see runtime.h). */
#ifndef COIL_BUILDING
#define coil_http_fetch(rq, out) COIL__AT(coil_http_fetch(rq, out))
#define coil_http_get(url, out) COIL__AT(coil_http_get(url, out))
#define coil_http_next(req, res) COIL__AT(coil_http_next(req, res))
#define coil_http_metrics(req, res, arg) COIL__AT(coil_http_metrics(req, res, arg))
#define coil_http_respond(res, st, ct, b, n) COIL__AT(coil_http_respond(res, st, ct, b, n))
#define coil_http_respond_text(res, st, t) COIL__AT(coil_http_respond_text(res, st, t))
#define coil_http_respond_json(res, st, j) COIL__AT(coil_http_respond_json(res, st, j))
#define coil_http_respond_error(res, st, m) COIL__AT(coil_http_respond_error(res, st, m))
#define coil_http_begin_chunked(res, st, ct) COIL__AT(coil_http_begin_chunked(res, st, ct))
#define coil_http_write_chunk(res, d, n) COIL__AT(coil_http_write_chunk(res, d, n))
#define coil_http_end_chunked(res) COIL__AT(coil_http_end_chunked(res))
#define coil_http_sse_begin(res) COIL__AT(coil_http_sse_begin(res))
#define coil_http_sse_send(res, e, d) COIL__AT(coil_http_sse_send(res, e, d))
#define coil_http_send_file(res, p) COIL__AT(coil_http_send_file(res, p))
#define coil_http_send_file_as(res, p, ct) COIL__AT(coil_http_send_file_as(res, p, ct))
#endif

#ifdef __cplusplus
}
#endif
#endif /* COIL_HTTP_H */
