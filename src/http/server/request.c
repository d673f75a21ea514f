/* http/server/request.c: a request's memory and the accessors that read it.
 *
 * The arena. Every request of a connection allocates from the connection's
 * arena, which is reset when the request ends. Its first chunk is kept (and
 * usually lives inside the connection itself), so the common request, whose
 * head and tables fit in it, allocates nothing from the heap. Larger ones
 * chain more chunks, freed at the reset.
 *
 * The accessors only read what the parser built (parser.c): strings are
 * NUL-terminated in the arena, lengths are known, and nothing is computed
 * twice. They may be called from a blocking handler's pool thread, since
 * the request's task is parked meanwhile and nothing else touches it.
 */
#include "http/server/core.h"
#include "http/server/parser.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------ arena */

enum { CHUNK_MIN = 4096 };

void coil__arena_init(coil__arena *a, void *buf, size_t size) {
    a->head = a->first = NULL;
    if (buf && size > sizeof(coil__arena_chunk) + 64) {
        coil__arena_chunk *c = buf;
        c->next = NULL;
        c->cap = size - sizeof *c;
        c->used = 0;
        c->owned = false;
        a->head = a->first = c;
    }
}

static coil__arena_chunk *chunk_new(size_t n) {
    size_t cap = n < CHUNK_MIN ? CHUNK_MIN : n;
    coil__arena_chunk *c = malloc(sizeof *c + cap);
    if (!c) return NULL;
    c->next = NULL;
    c->cap = cap;
    c->used = 0;
    c->owned = true;
    return c;
}

void *coil__arena_alloc(coil__arena *a, size_t n) {
    n = (n + 7) & ~(size_t)7;
    coil__arena_chunk *c = a->head;
    if (COIL_LIKELY(c && c->cap - c->used >= n)) {
        void *p = c->data + c->used;
        c->used += n;
        return p;
    }
    size_t want = c && c->cap * 2 > n ? c->cap * 2 : n;
    coil__arena_chunk *fresh = chunk_new(want);
    if (!fresh) return NULL;
    fresh->next = c;
    a->head = fresh;
    if (!a->first) a->first = fresh;
    fresh->used = n;
    return fresh->data;
}

char *coil__arena_strndup(coil__arena *a, const char *s, size_t n) {
    char *d = coil__arena_alloc(a, n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

void coil__arena_reset(coil__arena *a) {
    coil__arena_chunk *c = a->head;
    while (c && c != a->first) {
        coil__arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = a->first;
    if (a->first) a->first->used = 0;
}

void coil__arena_free(coil__arena *a) {
    coil__arena_reset(a);
    if (a->first && a->first->owned) free(a->first);
    a->head = a->first = NULL;
}

/* ------------------------------------------------------------------ building */

void coil__http_request_init(coil_http_request *req, coil__arena *arena, coil_http_server *srv) {
    memset(req, 0, sizeof *req);
    req->arena = arena;
    req->server = srv;
    req->method = "GET";
    req->path = "/";
    req->query = "";
    req->work_tail = &req->work;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes src[0, n) into a new arena string. Returns NULL with
 * *err set (-EINVAL: a bad escape or %00; -ENOMEM). */
static char *decode_path(coil__arena *a, const char *src, size_t n, int *err) {
    char *out = coil__arena_alloc(a, n + 1);
    if (!out) {
        *err = -ENOMEM;
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (src[i] != '%') {
            out[o++] = src[i];
            continue;
        }
        int hi = i + 2 < n ? hexval(src[i + 1]) : -1;
        int lo = i + 2 < n ? hexval(src[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            *err = -EINVAL;
            return NULL;
        }
        out[o++] = (char)(hi << 4 | lo);
        i += 2;
    }
    out[o] = '\0';
    return out;
}

/* Where the path starts in an absolute-form target ("http://host/p"), or
 * NULL if `url` is not one. */
static char *absolute_path(char *url, size_t len, char *end) {
    size_t i = 0;
    while (i < len && (url[i] == '+' || url[i] == '-' || url[i] == '.' ||
                       (url[i] >= 'a' && url[i] <= 'z') || (url[i] >= 'A' && url[i] <= 'Z') ||
                       (url[i] >= '0' && url[i] <= '9')))
        i++;
    if (i == 0 || len - i < 3 || memcmp(url + i, "://", 3) != 0) return NULL;
    char *p = url + i + 3;
    while (p < end && *p != '/' && *p != '?' && *p != '#') p++;
    return p;
}

int coil__http_request_set_target(coil_http_request *req, char *url, size_t len) {
    char *end = url + len;
    req->query = "";
    if (len == 1 && url[0] == '*') { /* OPTIONS * */
        req->path = "*";
        return 0;
    }
    char *p = url;
    if (url[0] != '/') {
        p = absolute_path(url, len, end);
        if (!p) return -EINVAL;
    }
    char *hash = memchr(p, '#', (size_t)(end - p));
    if (hash) {
        *hash = '\0';
        end = hash;
    }
    char *q = memchr(p, '?', (size_t)(end - p));
    char *path_end = q ? q : end;
    if (q) req->query = q + 1;
    if (p == path_end) { /* "http://host" or "http://host?x" */
        req->path = "/";
        return 0;
    }
    if (*p != '/') return -EINVAL;
    int err = 0;
    if (!memchr(p, '%', (size_t)(path_end - p))) {
        /* Nothing to decode: the path is the target's own bytes, ended by
         * a NUL in place of the '?' (the raw target is not kept). */
        *path_end = '\0';
        req->path = p;
        return 0;
    }
    char *path = decode_path(req->arena, p, (size_t)(path_end - p), &err);
    if (!path) return err;
    req->path = path;
    return 0;
}

const coil__http_header *coil__http_find_header(const coil_http_request *req, const char *name,
                                                size_t len) {
    for (size_t i = 0; i < req->nheaders; i++) {
        const coil__http_header *h = &req->headers[i];
        if (h->name_len == len && strcasecmp(h->name, name) == 0) return h;
    }
    return NULL;
}

/* ------------------------------------------------------------------ accessors */

const char *coil_http_method(const coil_http_request *req) { return req->method; }
const char *coil_http_path(const coil_http_request *req) { return req->path; }
const char *coil_http_query(const coil_http_request *req) { return req->query; }
int coil_http_minor_version(const coil_http_request *req) { return req->minor; }
size_t coil_http_header_count(const coil_http_request *req) { return req->nheaders; }
coil_http_server *coil_http_request_server(const coil_http_request *req) { return req->server; }
coil_time coil__http_request_start(const coil_http_request *req) { return req->start; }
const char *coil_http_request_id(const coil_http_request *req) { return req->id; }

const char *coil_http_header(const coil_http_request *req, const char *name) {
    if (!name) return NULL;
    const coil__http_header *h = coil__http_find_header(req, name, strlen(name));
    return h ? h->value : NULL;
}

int coil_http_header_at(const coil_http_request *req, size_t i, const char **name,
                        const char **value) {
    if (i >= req->nheaders) return -ENOENT;
    if (name) *name = req->headers[i].name;
    if (value) *value = req->headers[i].value;
    return 0;
}

const void *coil_http_body(const coil_http_request *req, size_t *len) {
    if (len) *len = req->body_len;
    return req->body;
}

/* ------------------------------------------------------------------ the client */

static bool trusted(const coil_http_server *srv, const char *addr, size_t len) {
    for (const char *const *p = srv->cfg.trusted_proxies; p && *p; p++)
        if (strlen(*p) == len && memcmp(*p, addr, len) == 0) return true;
    return false;
}

/* The hop before `end` in the X-Forwarded-For headers (in arrival order,
 * each a comma-separated list), skipping spaces: *at and *len, or false
 * if there is none. `hop` counts from the right, 0 the last. */
static bool xff_hop(const coil_http_request *req, size_t hop, const char **at, size_t *len) {
    /* Collect the hops right to left, header by header from the last. */
    size_t seen = 0;
    for (size_t h = req->nheaders; h-- > 0;) {
        const coil__http_header *hd = &req->headers[h];
        if (strcasecmp(hd->name, "X-Forwarded-For") != 0) continue;
        const char *v = hd->value, *end = v + strlen(v);
        while (end > v) {
            const char *comma = end;
            while (comma > v && comma[-1] != ',') comma--;
            const char *a = comma, *b = end;
            while (a < b && (*a == ' ' || *a == '\t')) a++;
            while (b > a && (b[-1] == ' ' || b[-1] == '\t')) b--;
            if (b > a && seen++ == hop) {
                *at = a;
                *len = (size_t)(b - a);
                return true;
            }
            end = comma > v ? comma - 1 : v;
        }
    }
    return false;
}

const char *coil_http_client_addr(const coil_http_request *req) {
    if (req->client) return req->client;
    const char *addr = req->peer ? req->peer : "";
    size_t len = strlen(addr);
    /* From the peer leftwards, past every trusted proxy. */
    for (size_t hop = 0; trusted(req->server, addr, len); hop++) {
        const char *a;
        size_t n;
        if (!xff_hop(req, hop, &a, &n)) break;
        addr = a;
        len = n;
    }
    char *copy = coil__arena_alloc(req->arena, len + 1);
    if (!copy) return req->peer ? req->peer : "";
    memcpy(copy, addr, len);
    copy[len] = '\0';
    ((coil_http_request *)req)->client = copy; /* a cache; the request is the caller's */
    return copy;
}

const char *coil_http_param(const coil_http_request *req, const char *name) {
    if (!name) return NULL;
    for (const coil__http_param *p = req->params; p; p = p->next)
        if (strcmp(p->name, name) == 0) return p->value;
    return NULL;
}

int coil__http_request_add_param(coil_http_request *req, const char *name, size_t name_len,
                                 const char *value, size_t value_len) {
    coil__http_param *p = coil__arena_alloc(req->arena, sizeof *p);
    if (!p) return -ENOMEM;
    char *n = coil__arena_strndup(req->arena, name, name_len);
    char *v = coil__arena_strndup(req->arena, value, value_len);
    if (!n || !v) return -ENOMEM;
    p->name = n;
    p->value = v;
    p->next = req->params;
    req->params = p;
    return 0;
}

int coil__http_request_set_id(coil_http_request *req, const char *id) {
    if (!id) return -EINVAL;
    char *copy = coil__arena_strndup(req->arena, id, strlen(id));
    if (!copy) return -ENOMEM;
    req->id = copy;
    return 0;
}

/* ------------------------------------------------------------------ query parameters */

/* Decodes one form-encoded character at s (of the n left); stores it in *c
 * and returns how many bytes it took. A '%' that is no escape is itself. */
static size_t form_char(const char *s, size_t n, char *c) {
    if (*s == '+') {
        *c = ' ';
        return 1;
    }
    if (*s == '%' && n >= 3) {
        int hi = hexval(s[1]), lo = hexval(s[2]);
        if (hi >= 0 && lo >= 0) {
            *c = (char)(hi << 4 | lo);
            return 3;
        }
    }
    *c = *s;
    return 1;
}

/* Whether the form-encoded key k[0, n) decodes to `name`. */
static bool key_is(const char *k, size_t n, const char *name) {
    size_t i = 0;
    while (i < n) {
        char c;
        i += form_char(k + i, n - i, &c);
        if (*name++ != c) return false;
    }
    return *name == '\0';
}

ssize_t coil_http_query_param(const coil_http_request *req, const char *name, char *buf,
                              size_t size) {
    return coil_http_query_param_at(req, name, 0, buf, size);
}

ssize_t coil_http_query_param_at(const coil_http_request *req, const char *name, size_t index,
                                 char *buf, size_t size) {
    if (!name) return -EINVAL;
    const char *q = req->query;
    while (*q) {
        const char *amp = strchr(q, '&');
        size_t pair = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', pair);
        size_t klen = eq ? (size_t)(eq - q) : pair;
        if (key_is(q, klen, name) && index-- == 0) {
            const char *v = eq ? eq + 1 : q + pair;
            size_t vlen = (size_t)(q + pair - v), o = 0;
            for (size_t i = 0; i < vlen;) {
                char c;
                i += form_char(v + i, vlen - i, &c);
                if (o + 1 >= size) return -ENOBUFS;
                buf[o++] = c;
            }
            if (size == 0) return -ENOBUFS;
            buf[o] = '\0';
            return (ssize_t)o;
        }
        if (!amp) break;
        q = amp + 1;
    }
    return -ENOENT;
}
