/* http/app/blocking.c: COIL_HTTP_BLOCKING handlers, run on the thread pool.
 *
 * A blocking handler is plain blocking C (FastAPI's `def` endpoints): it
 * runs on a thread of coil's pool through coil_to_thread(), and only the
 * request's task waits for it; the loop serves everything else.
 *
 * The handler may read the request freely: the request's task is parked
 * until the handler returns, so nothing on the loop touches the request
 * meanwhile, and the pool's hand-off orders the memory accesses. But the
 * connection's stream belongs to the loop, so the handler's response
 * cannot be written from the pool thread. Instead, while the handler runs,
 * its thread points `tls_capture` at a capture record, and response.c
 * hands every response call made off the loop to the capture functions
 * below (see internal.h): headers, the complete response (status, content
 * type and a copy of the body) and background work are recorded. Once the
 * handler has returned, the task replays the record through the public
 * API on the loop. Streaming responses (chunked, SSE, send_file) need the
 * stream while the handler runs, so they return -EPERM there; a handler
 * that needs them is a coroutine handler that offloads its blocking part
 * with coil_to_thread() itself.
 *
 * Task-local values, the request ID among them, are readable on the pool
 * thread (coil_to_thread lends the task's values to the call).
 */
#include "http/app/router.h"

#include <stdlib.h>
#include <string.h>

typedef struct cap_header {
    char *name;                   /* both malloc'd */
    char *value;
} cap_header;

typedef struct cap_work {
    coil_fn fn;
    void *arg;
} cap_work;

/* What a blocking handler did to its response. */
typedef struct capture {
    coil_http_request *req;       /* the handler's request and response */
    coil_http_response *res;
    cap_header *headers;          /* coil_http_set_header calls (malloc'd) */
    size_t nheaders, cap_headers;
    cap_work *work;               /* coil_http_background calls (malloc'd) */
    size_t nwork, cap_work;
    bool responded;               /* coil_http_respond was called */
    int status;                   /* its arguments, copied */
    char *content_type;           /* malloc'd or NULL */
    void *body;                   /* malloc'd or NULL */
    size_t len;
} capture;

/* The capture of the blocking handler this pool thread is running. */
static _Thread_local capture *tls_capture;

static capture *capture_of(const coil_http_response *res) {
    capture *c = tls_capture;
    return c && c->res == res ? c : NULL;
}

/* Makes room for one more element in a growing array. */
static int grow(void **arr, size_t *cap, size_t n, size_t size) {
    if (n < *cap) return 0;
    size_t ncap = *cap ? *cap * 2 : 4;
    void *p = realloc(*arr, ncap * size);
    if (!p) return -ENOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

int coil__http_capture_header(coil_http_response *res, const char *name, const char *value) {
    capture *c = capture_of(res);
    if (!c) return -EPERM;
    if (!name || !value) return -EINVAL;
    if (c->responded) return -EALREADY;
    if (grow((void **)&c->headers, &c->cap_headers, c->nheaders, sizeof *c->headers))
        return -ENOMEM;
    cap_header h = {strdup(name), strdup(value)};
    if (!h.name || !h.value) {
        free(h.name);
        free(h.value);
        return -ENOMEM;
    }
    c->headers[c->nheaders++] = h;
    return 0;
}

int coil__http_capture_respond(coil_http_response *res, int status, const char *content_type,
                               const void *body, size_t len) {
    capture *c = capture_of(res);
    if (!c) return -EPERM;
    if (c->responded) return -EALREADY;
    if (len && !body) return -EINVAL;
    char *ct = NULL;
    void *copy = NULL;
    if (content_type && !(ct = strdup(content_type))) return -ENOMEM;
    if (len && !(copy = malloc(len))) {
        free(ct);
        return -ENOMEM;
    }
    if (len) memcpy(copy, body, len);
    c->responded = true;
    c->status = status;
    c->content_type = ct;
    c->body = copy;
    c->len = len;
    return 0;
}

bool coil__http_capture_responded(const coil_http_response *res) {
    capture *c = capture_of(res);
    return c && c->responded;
}

int coil__http_capture_status(const coil_http_response *res) {
    capture *c = capture_of(res);
    return c && c->responded ? c->status : 0;
}

int coil__http_capture_background(coil_http_request *req, coil_fn fn, void *arg) {
    capture *c = tls_capture;
    if (!c || c->req != req) return -EPERM;
    if (!fn) return -EINVAL;
    if (grow((void **)&c->work, &c->cap_work, c->nwork, sizeof *c->work)) return -ENOMEM;
    c->work[c->nwork++] = (cap_work){fn, arg};
    return 0;
}

static void capture_free(capture *c) {
    for (size_t i = 0; i < c->nheaders; i++) {
        free(c->headers[i].name);
        free(c->headers[i].value);
    }
    free(c->headers);
    free(c->work);
    free(c->content_type);
    free(c->body);
}

/* ------------------------------------------------------------------ offload */

/* One blocking call; lives on the request task's stack. */
typedef struct offload {
    coil_http_handler fn;         /* the handler and its argument */
    void *arg;
    int ret;                      /* what it returned */
    capture cap;                  /* what it did to the response */
} offload;

/* Runs on a pool thread. */
static void *on_pool(void *p) {
    offload *o = p;
    tls_capture = &o->cap;
    o->ret = o->fn(o->cap.req, o->cap.res, o->arg);
    tls_capture = NULL;
    return NULL;
}

/* On the loop: sends what the handler captured. Background work is handed
 * over even when the response cannot be sent: it is never dropped. Returns
 * 0 or the first error. Suspends. */
static int replay(capture *c, bool send) {
    int err = 0;
    for (size_t i = 0; i < c->nwork; i++) {
        int e = coil_http_background(c->req, c->work[i].fn, c->work[i].arg);
        if (e && !err) err = e;
    }
    if (!send) return err;
    for (size_t i = 0; i < c->nheaders; i++) { /* also for the 204/500 answered for it */
        int e = coil_http_set_header(c->res, c->headers[i].name, c->headers[i].value);
        if (e && !err) err = e;
    }
    if (!c->responded) return err;
    int e = coil_http_respond(c->res, c->status, c->content_type, c->body, c->len);
    return err ? err : e;
}

int coil__http_run_blocking(coil_http_handler fn, void *arg, coil_http_request *req,
                            coil_http_response *res) {
    offload o;
    memset(&o, 0, sizeof o);
    o.fn = fn;
    o.arg = arg;
    o.cap.req = req;
    o.cap.res = res;
    int err = coil_to_thread(on_pool, &o, NULL);
    /* fn ran unless the call never left the queue (nothing captured then). */
    int rerr = replay(&o.cap, err == 0);
    capture_free(&o.cap);
    if (err) return err;
    return o.ret ? o.ret : rerr;
}
