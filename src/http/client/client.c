/* http/client/client.c: the HTTP client, libcurl's multi-socket API driven by the
 * calling task's loop.
 *
 * The pieces and how they fit:
 *
 *   client    one per loop, made on the first request and kept until the
 *             loop closes: a CURLM (whose connection pool and DNS cache are
 *             what "the loop's client" shares between requests), a uv_timer
 *             for curl's one timeout, and a keep-alive handle. The loop's
 *             thread finds it through a thread-local pointer checked against
 *             coil_loop_current(); a close hook (coil__loop_on_close) cleans
 *             it up as the loop closes, after its last task finished.
 *   socket    one uv_poll_t per socket curl asks us to watch
 *             (CURLMOPT_SOCKETFUNCTION). Its callback hands the readiness
 *             to curl_multi_socket_action().
 *   xfer      one request: a CURL easy handle, its header list and the body
 *             received so far. It lives on the requesting task's stack,
 *             which parks on xfer->wait until curl reports the transfer done
 *             (CURLMSG_DONE) or the park is interrupted.
 *
 *     coil_http_fetch ──add easy──▶ CURLM ◀──socket_action── poll / timer callbacks
 *        │ park                          │ info_read: DONE
 *        └───────────── wake ◀───────────┘ (the handle removed first)
 *
 * Every call into curl happens on the loop's thread, from a task or from a
 * libuv callback; never from inside one of curl's own callbacks, which only
 * start and stop libuv handles and append bytes. So removing an easy handle
 * is always allowed where we do it: in the callback that read its DONE
 * message, and in the park's interrupt callback, which runs from coil_cancel
 * or a deadline timer, both outside curl.
 *
 * Cancellation and deadlines. Interrupting the park removes the easy handle
 * from the multi handle, which aborts the transfer and closes its
 * connection (it cannot be reused half-read), and the call returns the
 * interruption. Exactly one of "done" and "interrupted" happens (the
 * park/wake protocol of runtime/internal.h), and removing a handle also
 * drops any DONE message curl had queued for it.
 *
 * Liveness. The poll and timer handles are unreferenced, so idle pooled
 * connections and curl's housekeeping timers never keep a loop alive. The
 * keep-alive handle (a uv_async_t nobody sends to) is referenced exactly
 * while a transfer is in flight: a task parked on a request is waiting for
 * real I/O, not deadlocked.
 *
 * Closing. The close hook calls curl_multi_cleanup(), which closes the
 * pooled connections, then closes every libuv handle; the client's memory
 * is freed by the last close callback, inside the loop's final uv_run.
 */
#include "coil/coil.h"
#include "http/internal.h"
#include "io/internal.h"

#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define COIL__CLIENT_MAGIC 0x48434c54u /* "HCLT" */

enum {
    CLIENT_MAX_CONNECTIONS = 64, /* open connections per loop; more requests queue */
    CLIENT_MAX_IDLE = 64,        /* idle connections the pool keeps */
    DEFAULT_TIMEOUT_MS = 30000,  /* rq->timeout == 0 */
    DEFAULT_REDIRECTS = 10,      /* rq->max_redirects == 0 */
    HEADERS_MIN_CAP = 1024,      /* the first allocation of a response's header lines */
    BODY_MIN_CAP = 1024,         /* first allocation of a response body */
};

typedef struct client {
    uint32_t magic;           /* COIL__CLIENT_MAGIC while usable */
    coil_loop *loop;          /* the loop it belongs to */
    CURLM *multi;             /* transfers, connection pool, DNS cache */
    uv_timer_t timer;         /* curl's timeout (CURLMOPT_TIMERFUNCTION) */
    uv_async_t keepalive;     /* referenced while inflight > 0 */
    size_t inflight;          /* easy handles added to multi */
    coil__list xfers;         /* their xfers (xfer.link) */
    coil__list sockets;       /* every client_socket not yet closing */
    unsigned open_handles;    /* libuv handles whose close callback is due */
    bool closing;             /* the close hook ran: free at open_handles == 0 */
    coil__close_hook hook;    /* runs client_close at loop close */
} client;

/* A socket curl asked us to watch. */
typedef struct client_socket {
    uv_poll_t poll;           /* poll.data == this */
    client *c;                /* owning client */
    curl_socket_t fd;         /* the socket (curl owns and closes it) */
    int events;               /* UV_READABLE | UV_WRITABLE being watched */
    bool closing;             /* uv_close() called; freed in its callback */
    coil__list link;          /* in c->sockets until closing */
} client_socket;

/* One request in flight. Lives on the requesting task's stack. */
typedef struct xfer {
    coil__wait wait;              /* interrupt aborts the transfer */
    coil_task *task;              /* the requesting task */
    client *c;                    /* the loop's client */
    CURL *easy;                   /* the transfer, NULL before setup */
    CURLU *url;                   /* parsed URL, handed to curl (CURLOPT_CURLU) */
    struct curl_slist *headers;   /* request headers, NULL if none */
    bool in_multi;                /* easy is added to c->multi */
    coil__list link;              /* in c->xfers while in_multi */
    CURLcode code;                /* curl's result, once done */
    char *body;                   /* response body so far (malloc'd, NUL-terminated) */
    size_t len, cap;              /* bytes in body, bytes allocated */
    bool oom;                     /* a body allocation failed */
    size_t max_body;              /* rq->max_body */
    bool too_big;                 /* the body went past it */
    char *hdrs;                   /* the latest response's header lines (malloc'd) */
    size_t hlen, hcap;
    bool hdrs_oom;                /* a header line did not fit in memory */
} xfer;

/* The client of the loop running on this thread, or NULL. */
static _Thread_local client *tls_client;

/* ------------------------------------------------------------------ curl, once per process */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_status;

static void global_init(void) { global_status = curl_global_init(CURL_GLOBAL_DEFAULT); }

/* ------------------------------------------------------------------ liveness */

static void keepalive_update(client *c) {
    if (c->inflight) uv_ref((uv_handle_t *)&c->keepalive);
    else uv_unref((uv_handle_t *)&c->keepalive);
}

static void keepalive_cb(uv_async_t *a) { (void)a; }

/* ------------------------------------------------------------------ transfers done */

/* Takes the easy handle out of the multi handle (aborting it if it was
 * still running). Does not suspend. */
static void xfer_remove(xfer *x) {
    if (!x->in_multi) return;
    curl_multi_remove_handle(x->c->multi, x->easy);
    x->in_multi = false;
    coil__list_remove(&x->link);
    x->c->inflight--;
    keepalive_update(x->c);
}

/* Reads curl's DONE messages and wakes each transfer's task. Call after
 * every curl_multi_socket_action(). */
static void client_collect(client *c) {
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(c->multi, &left))) {
        if (msg->msg != CURLMSG_DONE) continue;
        CURLcode code = msg->data.result; /* msg is freed by the removal */
        char *priv = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        xfer *x = (xfer *)(void *)priv;
        COIL_ASSERT(x && x->in_multi && x->easy == msg->easy_handle);
        xfer_remove(x);
        x->code = code;
        coil__wake(x->task, 0);
    }
}

/* After curl_multi_socket_action() failed as a whole (CURLM_OUT_OF_MEMORY:
 * an allocation inside curl's multi handle): its transfers may never be
 * reported done, so each one ends now, out of memory, rather than waiting
 * for ever. */
static void client_failed(client *c, CURLMcode mc) {
    if (mc == CURLM_OK) return;
    while (!coil__list_empty(&c->xfers)) {
        xfer *x = COIL_CONTAINER_OF(c->xfers.next, xfer, link);
        xfer_remove(x);
        x->code = mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT;
        coil__wake(x->task, 0);
    }
}

/* ------------------------------------------------------------------ libuv handles */

static void client_handle_closed(client *c) {
    COIL_ASSERT(c->open_handles > 0);
    if (--c->open_handles == 0 && c->closing) {
        c->magic = 0;
        free(c);
    }
}

static void socket_closed_cb(uv_handle_t *h) {
    client_socket *cs = h->data;
    client *c = cs->c;
    free(cs);
    client_handle_closed(c);
}

/* Stops watching at once (so that curl may reuse the fd number for a new
 * socket before the close callback runs) and closes the handle. */
static void socket_close(client_socket *cs) {
    if (cs->closing) return;
    cs->closing = true;
    coil__list_remove(&cs->link);
    uv_poll_stop(&cs->poll);
    uv_close((uv_handle_t *)&cs->poll, socket_closed_cb);
}

static void poll_cb(uv_poll_t *h, int status, int events) {
    client_socket *cs = h->data;
    client *c = cs->c;
    int flags = 0;
    if (status < 0) flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    int running;
    CURLMcode mc = curl_multi_socket_action(c->multi, cs->fd, flags, &running);
    /* libuv stops a poll handle that reported an error. If curl still
     * wants the socket (it did not remove it), watch it again: curl, not
     * libuv, decides what a socket error means for the transfer. cs is
     * still allocated: a close only frees it in a later callback. */
    if (status < 0 && !cs->closing && cs->events) uv_poll_start(&cs->poll, cs->events, poll_cb);
    client_collect(c);
    client_failed(c, mc);
}

static client_socket *socket_open(client *c, curl_socket_t fd) {
    client_socket *cs = calloc(1, sizeof *cs);
    if (!cs) return NULL;
    if (uv_poll_init_socket(coil_loop_uv(c->loop), &cs->poll, fd) != 0) {
        free(cs);
        return NULL;
    }
    uv_unref((uv_handle_t *)&cs->poll);
    cs->poll.data = cs;
    cs->c = c;
    cs->fd = fd;
    coil__list_push_back(&c->sockets, &cs->link);
    c->open_handles++;
    return cs;
}

/* CURLMOPT_SOCKETFUNCTION: start, change or stop watching a socket. curl
 * calls it with CURL_POLL_REMOVE before it closes a socket. Runs inside
 * curl: touches libuv only. */
static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
    (void)easy;
    client *c = userp;
    client_socket *cs = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (cs) socket_close(cs);
        return 0;
    }
    if (!cs) {
        cs = socket_open(c, fd);
        if (!cs) return -1; /* curl fails the transfers of this socket */
        curl_multi_assign(c->multi, fd, cs);
    }
    cs->events = 0;
    if (what & CURL_POLL_IN) cs->events |= UV_READABLE;
    if (what & CURL_POLL_OUT) cs->events |= UV_WRITABLE;
    return uv_poll_start(&cs->poll, cs->events, poll_cb) == 0 ? 0 : -1;
}

static void timer_fire(uv_timer_t *t) {
    client *c = t->data;
    int running;
    CURLMcode mc = curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    client_collect(c);
    client_failed(c, mc);
}

/* CURLMOPT_TIMERFUNCTION: curl's one timeout, -1 to stop it. Runs inside
 * curl: touches libuv only (0 fires at the loop's next turn, not here). */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp) {
    (void)multi;
    client *c = userp;
    if (timeout_ms < 0) uv_timer_stop(&c->timer);
    else uv_timer_start(&c->timer, timer_fire, (uint64_t)timeout_ms, 0);
    return 0;
}

/* ------------------------------------------------------------------ the loop's client */

static void handle_closed_cb(uv_handle_t *h) { client_handle_closed(h->data); }

/* The close hook: the loop's last task has finished, so no transfer is in
 * flight. Runs on the loop's thread. */
static void client_close(void *arg) {
    client *c = arg;
    COIL_ASSERT(c->magic == COIL__CLIENT_MAGIC && c->inflight == 0);
    c->closing = true;
    curl_multi_cleanup(c->multi); /* closes the pool; may call socket_cb */
    c->multi = NULL;
    coil__list *n;
    while ((n = c->sockets.next) != &c->sockets)
        socket_close(COIL_CONTAINER_OF(n, client_socket, link));
    uv_close((uv_handle_t *)&c->timer, handle_closed_cb);
    uv_close((uv_handle_t *)&c->keepalive, handle_closed_cb);
    if (tls_client == c) tls_client = NULL;
}

static int client_new(coil_loop *loop, client **out) {
    pthread_once(&global_once, global_init);
    if (global_status != CURLE_OK) return -ENOMEM; /* curl_global_init only fails so */
    client *c = calloc(1, sizeof *c);
    if (!c) return -ENOMEM;
    c->multi = curl_multi_init();
    if (!c->multi) {
        free(c);
        return -ENOMEM;
    }
    c->magic = COIL__CLIENT_MAGIC;
    c->loop = loop;
    coil__list_init(&c->sockets);
    coil__list_init(&c->xfers);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)CLIENT_MAX_CONNECTIONS);
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)CLIENT_MAX_IDLE);
    /* From here on nothing fails. */
    uv_timer_init(coil_loop_uv(loop), &c->timer);
    c->timer.data = c;
    uv_unref((uv_handle_t *)&c->timer);
    uv_async_init(coil_loop_uv(loop), &c->keepalive, keepalive_cb);
    c->keepalive.data = c;
    uv_unref((uv_handle_t *)&c->keepalive);
    c->open_handles = 2;
    c->hook.fn = client_close;
    c->hook.arg = c;
    coil__loop_on_close(loop, &c->hook);
    coil__ignore_sigpipe(); /* TLS writes to a closed peer */
    *out = c;
    return 0;
}

/* The calling loop's client, made on first use. */
static int client_get(client **out) {
    coil_loop *loop = coil_loop_current();
    if (tls_client && tls_client->loop == loop) {
        COIL_ASSERT(tls_client->magic == COIL__CLIENT_MAGIC);
        *out = tls_client;
        return 0;
    }
    int err = client_new(loop, out);
    if (!err) tls_client = *out;
    return err;
}

/* ------------------------------------------------------------------ building a request */

/* Appends `n` bytes to the NUL-terminated buffer *buf (*len bytes in *cap),
 * growing it by doubling from `first_cap`. Returns false for want of
 * memory (the buffer is kept). */
static bool buf_append(char **buf, size_t *len, size_t *cap, size_t first_cap, const char *data,
                       size_t n) {
    if (*cap - *len <= n) {
        size_t c = *cap ? *cap : first_cap;
        while (c - *len <= n) {
            if (c > SIZE_MAX / 2) return false;
            c *= 2;
        }
        char *p = realloc(*buf, c);
        if (!p) return false;
        *buf = p;
        *cap = c;
    }
    memcpy(*buf + *len, data, n);
    *len += n;
    (*buf)[*len] = '\0';
    return true;
}

static size_t body_cb(char *data, size_t size, size_t nmemb, void *userdata) {
    xfer *x = userdata;
    size_t n = size * nmemb; /* size is always 1 */
    if (x->max_body && n > x->max_body - x->len) {
        x->too_big = true;
        return 0; /* fails the transfer, as below */
    }
    if (buf_append(&x->body, &x->len, &x->cap, BODY_MIN_CAP, data, n)) return n;
    x->oom = true;
    return 0; /* not n: curl fails the transfer with CURLE_WRITE_ERROR */
}

/* CURLOPT_HEADERFUNCTION: one header line at a time, status lines too.
 * A status line starts a response (the next one after a redirect or a
 * 100 Continue): the lines kept are the final response's. */
static size_t header_cb(char *line, size_t size, size_t n, void *userdata) {
    xfer *x = userdata;
    size_t len = size * n; /* size is always 1 */
    if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
        x->hlen = 0;
        return len;
    }
    if (len <= 2) return len; /* the blank line that ends the block */
    if (buf_append(&x->hdrs, &x->hlen, &x->hcap, HEADERS_MIN_CAP, line, len)) return len;
    x->hdrs_oom = true;
    return 0; /* curl fails the transfer: CURLE_WRITE_ERROR */
}

/* An HTTP token (RFC 9110 tchar), as methods are. */
static bool is_token(const char *s) {
    if (!*s) return false;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (!isalnum(ch) && !strchr("!#$%&'*+-.^_`|~", ch)) return false;
    }
    return true;
}

/* Whether `headers` sets `name` (case-insensitive "Name:" prefix). */
static bool has_header(const char *const *headers, const char *name) {
    size_t n = strlen(name);
    for (; headers && *headers; headers++)
        if (strncasecmp(*headers, name, n) == 0 && (*headers)[n] == ':') return true;
    return false;
}

static int append_header(xfer *x, const char *line) {
    struct curl_slist *l = curl_slist_append(x->headers, line);
    if (!l) return -ENOMEM;
    x->headers = l;
    return 0;
}

/* Builds the header list. A line with CR or LF, or without a "Name:",
 * would let a value inject headers: -EINVAL. */
static int build_headers(xfer *x, const coil_http_client_request *rq) {
    int err;
    for (const char *const *h = rq->headers; h && *h; h++) {
        const char *colon = strchr(*h, ':');
        if (!colon || colon == *h || strpbrk(*h, "\r\n")) return -EINVAL;
        if ((err = append_header(x, *h))) return err;
    }
    /* No 100-continue round trip for large bodies, and no made-up
     * form-urlencoded type for a body whose type the caller did not give
     * ("Name:" with nothing after it removes a header curl would add). */
    if (!has_header(rq->headers, "Expect") && (err = append_header(x, "Expect:"))) return err;
    if (rq->body_len && !has_header(rq->headers, "Content-Type") &&
        (err = append_header(x, "Content-Type:")))
        return err;
    return 0;
}

static int set_method(xfer *x, const coil_http_client_request *rq) {
    const char *m = rq->method ? rq->method : "GET";
    if (!is_token(m)) return -EINVAL;
    if (rq->body_len && !rq->body) return -EINVAL;
    if (strcmp(m, "HEAD") == 0 && !rq->body_len) {
        curl_easy_setopt(x->easy, CURLOPT_NOBODY, 1L);
        return 0;
    }
    bool post_like = !strcmp(m, "POST") || !strcmp(m, "PUT") || !strcmp(m, "PATCH");
    if (rq->body_len || post_like) {
        curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
        curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, rq->body_len ? rq->body : "");
    }
    if (strcmp(m, "GET") != 0 && strcmp(m, "POST") != 0)
        curl_easy_setopt(x->easy, CURLOPT_CUSTOMREQUEST, m);
    else if (strcmp(m, "GET") == 0 && rq->body_len)
        curl_easy_setopt(x->easy, CURLOPT_CUSTOMREQUEST, "GET");
    return 0;
}

/* Parses the URL: http and https only. */
static int parse_url(xfer *x, const char *url) {
    x->url = curl_url();
    if (!x->url) return -ENOMEM;
    CURLUcode uc = curl_url_set(x->url, CURLUPART_URL, url, 0);
    if (uc == CURLUE_OUT_OF_MEMORY) return -ENOMEM;
    if (uc != CURLUE_OK) return -EINVAL;
    char *scheme = NULL;
    if (curl_url_get(x->url, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) return -EINVAL;
    bool ok = strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0;
    curl_free(scheme);
    return ok ? 0 : -EINVAL;
}

static long timeout_ms(coil_time timeout) {
    if (timeout <= 0) return DEFAULT_TIMEOUT_MS;
    coil_time ms = (timeout + COIL_MSEC(1) - 1) / COIL_MSEC(1);
    return ms > (coil_time)LONG_MAX ? LONG_MAX : (long)ms;
}

/* Makes the easy handle for `rq`. Returns 0, -EINVAL or -ENOMEM. */
static int xfer_setup(xfer *x, const coil_http_client_request *rq) {
    int err = parse_url(x, rq->url);
    if (err) return err;
    x->easy = curl_easy_init();
    if (!x->easy) return -ENOMEM;
    if ((err = set_method(x, rq)) || (err = build_headers(x, rq))) return err;
    CURL *e = x->easy;
    curl_easy_setopt(e, CURLOPT_CURLU, x->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms(rq->timeout));
    x->max_body = rq->max_body;
    curl_easy_setopt(e, CURLOPT_USERAGENT, "coil/" COIL_VERSION_STRING);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, body_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    if (rq->max_redirects >= 0) {
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(e, CURLOPT_MAXREDIRS,
                         (long)(rq->max_redirects ? rq->max_redirects : DEFAULT_REDIRECTS));
    }
    if (rq->insecure) {
        char *host = NULL;
        curl_url_get(x->url, CURLUPART_HOST, &host, 0);
        coil__log("http client: TLS certificate verification is off for a request to %s",
                  host ? host : "?");
        curl_free(host);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)(void *)x);
    return 0;
}

static void xfer_cleanup(xfer *x) {
    if (x->easy) curl_easy_cleanup(x->easy);
    if (x->url) curl_url_cleanup(x->url);
    curl_slist_free_all(x->headers);
    free(x->body);
    free(x->hdrs);
}

/* ------------------------------------------------------------------ results */

/* curl's result as a negative errno. */
static int map_error(const xfer *x) {
    long os_errno = 0;
    switch (x->code) {
    case CURLE_OK:
        return 0;
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return -EINVAL;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return -EHOSTUNREACH;
    case CURLE_OUT_OF_MEMORY:
        return -ENOMEM;
    case CURLE_WRITE_ERROR:
        return x->too_big ? -EMSGSIZE : x->oom || x->hdrs_oom ? -ENOMEM : -EIO;
    case CURLE_TOO_MANY_REDIRECTS:
        return -ELOOP;
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
        /* The socket's own error when curl kept it: ECONNREFUSED,
         * EHOSTUNREACH, ENETUNREACH, ECONNRESET, ... */
        curl_easy_getinfo(x->easy, CURLINFO_OS_ERRNO, &os_errno);
        if (os_errno > 0 && os_errno < 4096) return -(int)os_errno;
        return x->code == CURLE_COULDNT_CONNECT ? -ECONNREFUSED : -EIO;
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
        return -ECONNRESET; /* the server closed without a (whole) response */
    default:
        return -EIO;
    }
}

/* Moves the response out of the finished transfer into *out. */
static int take_response(xfer *x, coil_http_client_response *out) {
    long status = 0, redirects = 0;
    char *type = NULL, *url = NULL;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &type);
    curl_easy_getinfo(x->easy, CURLINFO_EFFECTIVE_URL, &url);
    curl_easy_getinfo(x->easy, CURLINFO_REDIRECT_COUNT, &redirects);
    if ((type && !(out->content_type = strdup(type))) || (url && !(out->url = strdup(url))) ||
        (!x->body && !(x->body = calloc(1, 1))) || (!x->hdrs && !(x->hdrs = calloc(1, 1)))) {
        coil_http_client_response_free(out);
        return -ENOMEM;
    }
    out->status = (int)status;
    out->redirects = (int)redirects;
    out->body = x->body;
    out->body_len = x->len;
    out->headers = x->hdrs;
    x->body = NULL;
    x->hdrs = NULL;
    return 0;
}

/* ------------------------------------------------------------------ public */

static bool xfer_interrupt(coil__wait *w, int err) {
    (void)err;
    xfer_remove(COIL_CONTAINER_OF(w, xfer, wait));
    return true;
}

int coil_http_fetch(const coil_http_client_request *rq, coil_http_client_response *out) {
    if (!out) return -EINVAL;
    memset(out, 0, sizeof *out);
    if (!rq || !rq->url) return -EINVAL;
    coil_task *t = coil__running();
    if (!t) return -EPERM;
    int err = coil__pending_cancel(t);
    if (err) return err;
    xfer x = {.wait = {xfer_interrupt}, .task = t};
    if ((err = client_get(&x.c))) return err;
    if ((err = xfer_setup(&x, rq))) goto done;
    if (curl_multi_add_handle(x.c->multi, x.easy) != CURLM_OK) {
        err = -ENOMEM;
        goto done;
    }
    x.in_multi = true;
    coil__list_push_back(&x.c->xfers, &x.link);
    x.c->inflight++;
    keepalive_update(x.c);
    err = coil__park(&x.wait);
    xfer_remove(&x); /* still in when park returned a pending cancellation */
    if (!err) err = map_error(&x);
    if (!err) err = take_response(&x, out);
done:
    xfer_cleanup(&x);
    return err;
}

int coil_http_get(const char *url, coil_http_client_response *out) {
    coil_http_client_request rq = {.method = "GET", .url = url};
    return coil_http_fetch(&rq, out);
}

void coil_http_client_response_free(coil_http_client_response *r) {
    if (!r) return;
    free(r->body);
    free(r->content_type);
    free(r->headers);
    free(r->url);
    memset(r, 0, sizeof *r);
}

const char *coil_http_client_header(const coil_http_client_response *r, const char *name,
                                    size_t *len) {
    if (!r || !r->headers || !name) return NULL;
    size_t n = strlen(name);
    for (const char *line = r->headers; *line;) {
        const char *end = strstr(line, "\r\n");
        if (!end) end = line + strlen(line);
        if ((size_t)(end - line) > n && line[n] == ':' && strncasecmp(line, name, n) == 0) {
            const char *v = line + n + 1;
            while (v < end && (*v == ' ' || *v == '\t')) v++;
            const char *e = end;
            while (e > v && (e[-1] == ' ' || e[-1] == '\t')) e--;
            if (len) *len = (size_t)(e - v);
            return v;
        }
        line = *end ? end + 2 : end;
    }
    return NULL;
}

int coil_http_client_json(const coil_http_client_response *r, void **doc, char *why, size_t cap) {
    if (!r || !doc) return -EINVAL;
    json_error_t jerr;
    json_t *d = json_loadb(r->body ? r->body : "", r->body_len, JSON_DECODE_ANY, &jerr);
    *doc = d;
    if (d) return 0;
    if (why && cap) snprintf(why, cap, "the body is not JSON: line %d, column %d: %s", jerr.line,
                             jerr.column, jerr.text);
    return -EBADMSG;
}

int coil_http_client_status_error(const coil_http_client_response *r) {
    int st = r ? r->status : 0;
    if (st < 400) return 0;
    switch (st) {
    case 400: return -EINVAL;
    case 401: case 403: return -EACCES;
    case 404: case 410: return -ENOENT;
    case 405: return -EOPNOTSUPP;
    case 408: case 504: return -ETIMEDOUT;
    case 409: return -EEXIST;
    case 413: return -EMSGSIZE;
    case 429: case 503: return -EAGAIN;
    case 501: return -ENOSYS;
    default: return st < 500 ? -EPROTO : -EREMOTEIO;
    }
}
