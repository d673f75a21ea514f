/* http/server/response.c: writing responses.
 *
 * A response is one head and a body, written with as few writes as the
 * kind allows:
 *
 *   complete   head and body in one coil_stream_writev() (the body is
 *              copied into the head's buffer when it is small, so the
 *              common response is a single write(2));
 *   chunked    the head, then one writev per chunk (size line, data, CRLF),
 *              which suspends under back-pressure; an HTTP/1.0 client gets
 *              the raw body instead, ended by closing the connection;
 *   SSE        a chunked text/event-stream whose chunks are whole events.
 *
 * Every head carries Server, Date (the worker's cached value, refreshed
 * once a second from the loop's clock: no clock read per response),
 * Content-Length or Transfer-Encoding, and Connection: close when the
 * connection will close (or keep-alive for an HTTP/1.0 client that asked).
 * A HEAD request gets the same head and no body. Headers are formatted
 * with memcpy from known lengths: no printf on this path.
 *
 * Blocking handlers run off the loop, where the stream must not be used:
 * each call here first hands over to its capture twin (blocking.c) when
 * called from a pool thread (see internal.h).
 */
#include "http/server/core.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

enum {
    HEAD_STACK = 1024,  /* head (and small body) buffer on the stack */
    HEAD_FIXED = 256,   /* bound on everything but content type and handler headers */
    JSON_STACK = 1024,  /* JSON documents this small are built on the stack */
};

static const char text_plain[] = "text/plain; charset=utf-8";

/* ------------------------------------------------------------------ status and date */

static const char *reason(int status) {
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Status";
    }
}

/* Writes an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") into out[29]. */
static void format_date(char *out, time_t t) {
    static const char days[] = "SunMonTueWedThuFriSat";
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    struct tm tm;
    gmtime_r(&t, &tm);
    memcpy(out, days + 3 * tm.tm_wday, 3);
    out[3] = ',';
    out[4] = ' ';
    out[5] = (char)('0' + tm.tm_mday / 10);
    out[6] = (char)('0' + tm.tm_mday % 10);
    out[7] = ' ';
    memcpy(out + 8, months + 3 * tm.tm_mon, 3);
    out[11] = ' ';
    int y = tm.tm_year + 1900;
    for (int i = 15; i >= 12; i--, y /= 10) out[i] = (char)('0' + y % 10);
    out[16] = ' ';
    int hms[3] = {tm.tm_hour, tm.tm_min, tm.tm_sec};
    for (int i = 0; i < 3; i++) {
        out[17 + 3 * i] = (char)('0' + hms[i] / 10);
        out[18 + 3 * i] = (char)('0' + hms[i] % 10);
        if (i < 2) out[19 + 3 * i] = ':';
    }
    memcpy(out + 25, " GMT", 4);
}

const char *coil__http_date(coil__http_worker *w) {
    uint64_t now = uv_now(&coil__tls_loop->uv);
    if (now >= w->date_next) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        format_date(w->date, ts.tv_sec);
        w->date[29] = '\0';
        /* Stale at the next wall-clock second. */
        w->date_next = now + 1000 - (uint64_t)(ts.tv_nsec / 1000000);
    }
    return w->date;
}

/* ------------------------------------------------------------------ formatting */

typedef struct buf {
    char *p;
    size_t len;
} buf;

static inline void put(buf *b, const char *s, size_t n) {
    memcpy(b->p + b->len, s, n);
    b->len += n;
}
#define PUT_LIT(b, lit) put((b), (lit), sizeof(lit) - 1)

static void put_u64(buf *b, uint64_t v) {
    char tmp[20];
    size_t n = 0;
    do tmp[sizeof tmp - ++n] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    put(b, tmp + sizeof tmp - n, n);
}

/* Character classes for header names and values (RFC 9110), by byte. */
enum { TCHAR = 1, VCHAR = 2 };
static const uint8_t char_class[256] = {
    ['\t'] = VCHAR,
    [' '] = VCHAR, ['!'] = TCHAR | VCHAR, ['"'] = VCHAR, ['#'] = TCHAR | VCHAR,
    ['$'] = TCHAR | VCHAR, ['%'] = TCHAR | VCHAR, ['&'] = TCHAR | VCHAR, ['\''] = TCHAR | VCHAR,
    ['('] = VCHAR, [')'] = VCHAR, ['*'] = TCHAR | VCHAR, ['+'] = TCHAR | VCHAR,
    [','] = VCHAR, ['-'] = TCHAR | VCHAR, ['.'] = TCHAR | VCHAR, ['/'] = VCHAR,
    ['0' ... '9'] = TCHAR | VCHAR, [':' ... '@'] = VCHAR,
    ['A' ... 'Z'] = TCHAR | VCHAR, ['['] = VCHAR, ['\\'] = VCHAR, [']'] = VCHAR,
    ['^'] = TCHAR | VCHAR, ['_'] = TCHAR | VCHAR, ['`'] = TCHAR | VCHAR,
    ['a' ... 'z'] = TCHAR | VCHAR, ['{'] = VCHAR, ['|'] = TCHAR | VCHAR, ['}'] = VCHAR,
    ['~'] = TCHAR | VCHAR, [0x80 ... 0xff] = VCHAR,
};

/* Whether `s` is a header name (a token); stores its length. */
static bool name_ok(const char *s, size_t *len) {
    size_t n = 0;
    while (char_class[(unsigned char)s[n]] & TCHAR) n++;
    *len = n;
    return n > 0 && s[n] == '\0';
}

/* Whether `v` may go into a header value (no CR, LF or other controls
 * but tab); stores its length. */
static bool value_ok(const char *v, size_t *len) {
    size_t n = 0;
    while (char_class[(unsigned char)v[n]] & VCHAR) n++;
    *len = n;
    return v[n] == '\0';
}

static bool bodyless(int status) { return status < 200 || status == 204 || status == 304; }

/* Builds the head into b (large enough: see write_head). */
static void build_head(coil_http_response *res, buf *b, int status, const char *ctype,
                       size_t ctype_len, int64_t len, bool chunked, bool close) {
    coil__http_conn *c = res->conn;
    PUT_LIT(b, "HTTP/1.1 ");
    char code[3] = {(char)('0' + status / 100), (char)('0' + status / 10 % 10),
                    (char)('0' + status % 10)};
    put(b, code, 3);
    put(b, " ", 1);
    const char *why = reason(status);
    put(b, why, strlen(why));
    PUT_LIT(b, "\r\n");
    if (!res->has_server) PUT_LIT(b, "Server: coil\r\n");
    PUT_LIT(b, "Date: ");
    put(b, coil__http_date(c->w), 29);
    PUT_LIT(b, "\r\n");
    if (ctype_len) {
        PUT_LIT(b, "Content-Type: ");
        put(b, ctype, ctype_len);
        PUT_LIT(b, "\r\n");
    }
    if (!bodyless(status)) {
        if (chunked) {
            PUT_LIT(b, "Transfer-Encoding: chunked\r\n");
        } else if (len >= 0) {
            PUT_LIT(b, "Content-Length: ");
            put_u64(b, (uint64_t)len);
            PUT_LIT(b, "\r\n");
        }
    }
    if (close) PUT_LIT(b, "Connection: close\r\n");
    else if (res->req->minor == 0) PUT_LIT(b, "Connection: keep-alive\r\n");
    if (res->hdrs_len) put(b, res->hdrs, res->hdrs_len);
    PUT_LIT(b, "\r\n");
}

/* Write errors past the first are the first. */
static int note_err(coil_http_response *res, int err) {
    if (err && !res->err && err != -ECANCELED && err != -ETIMEDOUT) res->err = err;
    return err;
}

int coil__http_write_head(coil_http_response *res, int status, const char *content_type,
                          int64_t len, bool chunked, const void *body, size_t body_len) {
    coil__http_conn *c = res->conn;
    coil_http_request *req = res->req;
    /* The hook may still add headers (coil_http_set_header): the response
     * counts as not started until its head is built. */
    uint8_t state = res->state;
    res->state = COIL__RES_NONE;
    /* One clock read serves the timing header and the stats. */
    coil_time now = coil_now();
    coil__http_before_head(req, res, now);
    res->state = state;
    size_t ctype_len = 0;
    if (content_type == text_plain) ctype_len = sizeof text_plain - 1; /* ours: known good */
    else if (content_type && !bodyless(status) && !value_ok(content_type, &ctype_len)) return -EINVAL;
    if (bodyless(status)) ctype_len = 0;
    bool close = res->close || !req->keep_alive || c->w->draining;
    res->close = close;
    res->status = status;
    if (req->head || bodyless(status)) body_len = 0;

    size_t need = HEAD_FIXED + ctype_len + res->hdrs_len;
    char stack[HEAD_STACK];
    buf b = {stack, 0};
    if (need > sizeof stack && !(b.p = coil__arena_alloc(req->arena, need))) return -ENOMEM;
    build_head(res, &b, status, content_type, ctype_len, len, chunked, close);
    /* Counted before the client can see it: a client that reads the stats
     * after its response finds its request there. The latency is thus the
     * time to the response's head. */
    coil__http_stats_record(&c->w->stats, status, req->start, now);
    struct iovec iov[2] = {{b.p, b.len}, {(void *)body, body_len}};
    size_t n = 1;
    if (body_len && b.p == stack && body_len <= sizeof stack - b.len) {
        put(&b, body, body_len); /* one buffer: one write(2) */
        iov[0].iov_len = b.len;
    } else if (body_len) {
        n = 2;
    }
    return note_err(res, coil_stream_writev(c->s, iov, n));
}

/* ------------------------------------------------------------------ complete responses */

void coil__http_response_init(coil_http_response *res, coil__http_conn *c, coil_http_request *req) {
    memset(res, 0, sizeof *res);
    res->conn = c;
    res->req = req;
}

int coil_http_set_header(coil_http_response *res, const char *name, const char *value) {
    if (coil__http_offloaded()) return coil__http_capture_header(res, name, value);
    if (!name || !value) return -EINVAL;
    if (res->state != COIL__RES_NONE) return -EALREADY;
    size_t nlen, vlen;
    if (!name_ok(name, &nlen) || !value_ok(value, &vlen)) return -EINVAL;
    /* Framing and Date belong to the server. */
    switch (nlen) {
    case 4:
        if (strcasecmp(name, "date") == 0) return -EINVAL;
        break;
    case 6:
        if (strcasecmp(name, "server") == 0) res->has_server = true;
        break;
    case 10:
        if (strcasecmp(name, "connection") == 0) {
            if (strcasestr(value, "close")) res->close = true;
            return 0;
        }
        break;
    case 14:
    case 17:
        if (strcasecmp(name, "content-length") == 0 || strcasecmp(name, "transfer-encoding") == 0)
            return -EINVAL;
        break;
    }
    return coil__http_add_header(res, name, nlen, value, vlen);
}

int coil__http_add_header(coil_http_response *res, const char *name, size_t nlen,
                          const char *value, size_t vlen) {
    if (res->state != COIL__RES_NONE) return -EALREADY;
    size_t add = nlen + 2 + vlen + 2;
    if (res->hdrs_cap - res->hdrs_len < add) {
        size_t cap = res->hdrs_cap ? res->hdrs_cap * 2 : 256;
        while (cap - res->hdrs_len < add) cap *= 2;
        char *p = coil__arena_alloc(res->req->arena, cap);
        if (!p) return -ENOMEM;
        if (res->hdrs_len) memcpy(p, res->hdrs, res->hdrs_len);
        res->hdrs = p;
        res->hdrs_cap = cap;
    }
    buf b = {res->hdrs, res->hdrs_len};
    put(&b, name, nlen);
    PUT_LIT(&b, ": ");
    put(&b, value, vlen);
    PUT_LIT(&b, "\r\n");
    res->hdrs_len = b.len;
    return 0;
}

int coil_http_respond(coil_http_response *res, int status, const char *content_type,
                      const void *body, size_t len) {
    if (coil__http_offloaded()) return coil__http_capture_respond(res, status, content_type, body, len);
    if (res->state != COIL__RES_NONE) return -EALREADY;
    if (status < 200 || status > 999 || (len && !body)) return -EINVAL;
    if (bodyless(status)) len = 0;
    res->state = COIL__RES_DONE;
    int err = coil__http_write_head(res, status, content_type, (int64_t)len, false, body, len);
    if (!err && !res->req->head) res->bytes = len;
    return err;
}

int coil_http_respond_text(coil_http_response *res, int status, const char *text) {
    if (!text) text = "";
    return coil_http_respond(res, status, text_plain, text, strlen(text));
}

/* 15 significant digits: a decimal like 4.7 comes out as 4.7, not as
 * 4.7000000000000002 (what 17 digits show of its double). */
#define JSON_FLAGS (JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15))

int coil_http_respond_json(coil_http_response *res, int status, const void *json) {
    if (!json) return -EINVAL;
    char stack[JSON_STACK];
    size_t n = json_dumpb(json, stack, sizeof stack, JSON_FLAGS);
    if (n == 0) return -EINVAL;
    char *doc = stack;
    if (n > sizeof stack) {
        if (!(doc = malloc(n))) return -ENOMEM;
        if (json_dumpb(json, doc, n, JSON_FLAGS) != n) {
            free(doc);
            return -EINVAL;
        }
    }
    int err = coil_http_respond(res, status, "application/json", doc, n);
    if (doc != stack) free(doc);
    return err;
}

int coil_http_respond_error(coil_http_response *res, int status, const char *message) {
    json_t *doc = json_pack("{s:s}", "error", message ? message : "");
    if (!doc) return -ENOMEM;
    int err = coil_http_respond_json(res, status, doc);
    json_decref(doc);
    return err;
}

bool coil_http_responded(const coil_http_response *res) {
    if (coil__http_offloaded()) return coil__http_capture_responded(res);
    return res->state != COIL__RES_NONE;
}

int coil_http_status(const coil_http_response *res) {
    if (coil__http_offloaded()) return coil__http_capture_status(res);
    return res->status;
}

uint64_t coil__http_response_bytes(const coil_http_response *res) { return res->bytes; }

/* ------------------------------------------------------------------ streaming */

int coil_http_begin_chunked(coil_http_response *res, int status, const char *content_type) {
    if (coil__http_offloaded()) return -EPERM;
    if (res->state != COIL__RES_NONE) return -EALREADY;
    if (status < 200 || status > 999 || bodyless(status)) return -EINVAL;
    /* HTTP/1.0 knows no chunks: the body runs until the connection closes. */
    res->chunked = res->req->minor == 1;
    if (!res->chunked) res->close = true;
    res->state = COIL__RES_STREAM;
    return coil__http_write_head(res, status, content_type, -1, res->chunked, NULL, 0);
}

int coil_http_write_chunk(coil_http_response *res, const void *data, size_t len) {
    if (coil__http_offloaded()) return -EPERM;
    if (res->state != COIL__RES_STREAM) return -EINVAL;
    if (res->err) return res->err;
    if (len == 0 || res->req->head) return 0; /* an empty chunk would end the body */
    if (!data) return -EINVAL;
    coil_stream *s = res->conn->s;
    int err;
    if (res->chunked) {
        char size[24];
        size_t n = 0;
        for (size_t v = len; v; v >>= 4) n++;
        for (size_t i = 0, v = len; i < n; i++, v >>= 4)
            size[n - 1 - i] = "0123456789abcdef"[v & 15];
        size[n++] = '\r';
        size[n++] = '\n';
        struct iovec iov[3] = {{size, n}, {(void *)data, len}, {"\r\n", 2}};
        err = coil_stream_writev(s, iov, 3);
    } else {
        err = coil_stream_write(s, data, len);
    }
    if (!err) res->bytes += len;
    return note_err(res, err);
}

int coil_http_end_chunked(coil_http_response *res) {
    if (coil__http_offloaded()) return -EPERM;
    if (res->state != COIL__RES_STREAM) return -EINVAL;
    res->state = COIL__RES_DONE;
    if (res->err) return res->err;
    if (!res->chunked || res->req->head) return 0;
    return note_err(res, coil_stream_write(res->conn->s, "0\r\n\r\n", 5));
}

int coil__http_response_finish(coil_http_response *res) {
    if (res->state != COIL__RES_STREAM) return res->err;
    return coil_http_end_chunked(res);
}

/* ------------------------------------------------------------------ server-sent events */

int coil_http_sse_begin(coil_http_response *res) {
    if (coil__http_offloaded()) return -EPERM;
    if (res->state != COIL__RES_NONE) return -EALREADY;
    int err = coil_http_set_header(res, "Cache-Control", "no-cache");
    if (err) return err;
    res->sse = true;
    return coil_http_begin_chunked(res, 200, "text/event-stream");
}

/* Length of the line at s (ending at CR, LF, CRLF or the end) and of its
 * ending, in *eol. */
static size_t line_len(const char *s, size_t *eol) {
    size_t n = strcspn(s, "\r\n");
    *eol = s[n] == '\r' && s[n + 1] == '\n' ? 2 : s[n] ? 1 : 0;
    return n;
}

int coil_http_sse_send(coil_http_response *res, const char *event, const char *data) {
    if (coil__http_offloaded()) return -EPERM;
    if (!res->sse || res->state != COIL__RES_STREAM) return -EINVAL;
    if (res->err || res->conn->gone) return -EPIPE;
    if (event && event[strcspn(event, "\r\n")]) return -EINVAL;
    if (!data) data = "";
    /* Every line of data becomes a "data: " line: at most 7 bytes more each. */
    size_t elen = event ? strlen(event) : 0, dlen = strlen(data), lines = 1;
    for (const char *p = data; *p; p++)
        if (*p == '\n' || (*p == '\r' && p[1] != '\n')) lines++;
    size_t need = (elen ? elen + 8 : 0) + dlen + 7 * lines + 1;
    char stack[1024];
    char *msg = need <= sizeof stack ? stack : malloc(need);
    if (!msg) return -ENOMEM;
    buf b = {msg, 0};
    if (elen) {
        PUT_LIT(&b, "event: ");
        put(&b, event, elen);
        PUT_LIT(&b, "\n");
    }
    const char *p = data;
    for (;;) {
        size_t eol, n = line_len(p, &eol);
        PUT_LIT(&b, "data: ");
        put(&b, p, n);
        PUT_LIT(&b, "\n");
        if (!eol) break;
        p += n + eol;
    }
    PUT_LIT(&b, "\n");
    int err = coil_http_write_chunk(res, b.p, b.len);
    if (msg != stack) free(msg);
    if (err && err != -ECANCELED && err != -ETIMEDOUT && err != -ENOMEM) err = -EPIPE;
    return err;
}
