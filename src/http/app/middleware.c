/* http/app/middleware.c: the middleware chain, and the middleware coil ships.
 *
 * The chain. coil__http_chain_run() makes the dispatch's chain the task's
 * current one (the task-local `chain_key`) and calls coil_http_next(),
 * which runs middleware number c->next after bumping it; that middleware
 * calls coil_http_next() in turn, and so on, until the chain is past its
 * last middleware, where coil_http_next() runs the route
 * (coil__http_invoke). Each middleware thus wraps everything inside it, as
 * in Starlette or Express: code before its coil_http_next() runs on the
 * way in, code after it on the way out, and one that responds without
 * calling it stops the request there. The route runs once; a second
 * coil_http_next() on the way out returns -EALREADY.
 *
 * The current chain is a task-local value rather than a field of the
 * request because the request belongs to the core. A child task inherits
 * it, so coil_http_next() checks that the caller is the dispatching task
 * and that the request is the chain's (-EPERM otherwise).
 *
 * The shipped middleware:
 *
 *   request ID  takes a sane X-Request-ID (1 to 128 printable characters)
 *               or makes a random 128-bit one (32 hex digits), stores it in
 *               the request, returns it as X-Request-ID, and makes it the
 *               task-local value read by coil_http_current_request_id().
 *               Task-locals are copied into children at spawn and read by
 *               functions run on the thread pool, so every piece of code
 *               the request runs sees it. The string lives in the
 *               request's memory: background work gets a copy of its own
 *               (coil__http_adopt_request_id), and any other task that
 *               outlives the request must copy it.
 *   timing      adds "Server-Timing: app;dur=MS" to the response, the time
 *               from entering the middleware until the head is written
 *               (coil__http_before_head, called by the core).
 *   access log  one JSON line per request on stderr, written with a single
 *               write(2) so that lines from several loops never interleave:
 *               {"time":"2024-05-01T12:00:00.123Z","request_id":"...",
 *                "method":"GET","path":"/hello","status":200,"bytes":13,
 *                "duration_ms":0.212}
 */
#include "http/app/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

COIL_LOCAL_KEY(chain_key, "http.chain");
COIL_LOCAL_KEY(request_id_key, "http.request_id");

/* ------------------------------------------------------------------ chain */

coil__http_chain *coil__http_chain_current(void) {
    coil__http_chain *c = coil_local_get(&chain_key);
    return c && c->task == coil_current() ? c : NULL;
}

int coil__http_chain_run(coil__http_chain *c) {
    c->task = coil_current();
    c->outer = coil_local_get(&chain_key);
    int err = coil_local_set(&chain_key, c);
    if (err) return err;
    err = coil_http_next(c->req, c->res);
    /* Fails only when a child spawned meanwhile shares the values and there
     * is no memory to unshare them: the chain is then left current for the
     * few steps until the request's task ends (the core's fallback answer),
     * with `ran` set, so nothing runs it again. */
    coil_local_set(&chain_key, c->outer);
    return err;
}

int coil_http_next(coil_http_request *req, coil_http_response *res) {
    coil__http_chain *c = coil__http_chain_current();
    if (!c || c->req != req || c->res != res) return -EPERM;
    if (c->next < c->router->nmws) {
        const coil__http_mw *m = &c->router->mws[c->next++];
        return m->fn(req, res, m->arg);
    }
    if (c->ran) return -EALREADY;
    c->ran = true;
    return coil__http_invoke(c);
}

/* ------------------------------------------------------------------ request ID */

/* An ID from the client is used as is only if it cannot upset a log line or
 * a header: 1 to 128 visible ASCII characters. Returns its length, or 0
 * when it is not sane. */
static size_t id_sane_len(const char *s) {
    size_t n = 0;
    for (; s[n]; n++)
        if (n == 128 || s[n] < 0x21 || s[n] > 0x7e) return 0;
    return n;
}

/* splitmix64: a fast generator, one per thread, seeded from the kernel. IDs
 * must be unique, not secret. */
static uint64_t next_random(void) {
    static _Thread_local uint64_t state;
    static _Thread_local bool seeded;
    if (!seeded) {
        if (getrandom(&state, sizeof state, GRND_NONBLOCK) != (ssize_t)sizeof state)
            state = (uint64_t)coil_now() ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)&state;
        seeded = true;
    }
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Writes the 16 nibbles of `v` as 16 lowercase hex digits, 8 at a time
 * rather than one by one (a digit loop was most of this middleware's own
 * cost): each 32-bit half is spread so that every nibble gets a byte of
 * its own, then all 8 bytes become '0'..'9' or 'a'..'f' at once. The
 * digits come out in the machine's byte order, not most significant
 * first: for a random ID that is no loss, and the mapping stays one to
 * one, so distinct values still make distinct IDs. */
static void put_hex16(char out[16], uint64_t v) {
    for (int half = 0; half < 2; half++, v >>= 32) {
        uint64_t x = v & 0xffffffffu;
        x = (x | x << 16) & 0x0000ffff0000ffffull;
        x = (x | x << 8) & 0x00ff00ff00ff00ffull;
        x = (x | x << 4) & 0x0f0f0f0f0f0f0f0full; /* one nibble per byte */
        /* 1 in each byte that holds 10 or more: adding 6 carries into bit 4. */
        uint64_t letters = ((x + 0x0606060606060606ull) >> 4) & 0x0101010101010101ull;
        x += 0x3030303030303030ull + letters * ('a' - '0' - 10);
        memcpy(out + 8 * half, &x, 8);
    }
}

static void new_id(char out[33]) {
    put_hex16(out, next_random());
    put_hex16(out + 16, next_random());
    out[32] = '\0';
}

int coil_http_mw_request_id(coil_http_request *req, coil_http_response *res, void *arg) {
    const char *given = coil_http_header(req, "X-Request-ID");
    size_t len = given ? id_sane_len(given) : 0;
    char made[33];
    if (!len) {
        new_id(made);
        given = made;
        len = 32;
    }
    int err = coil__http_request_set_id(req, given);
    if (err) return err;
    const char *id = coil_http_request_id(req); /* the request's own copy */
    /* Sane or made here: a valid value, so the checks can be skipped. */
    static const char name[] = "X-Request-ID";
    if ((err = coil__http_add_header(res, name, sizeof name - 1, id, len)) < 0) return err;
    void *outer = coil_local_get(&request_id_key);
    if ((err = coil_local_set(&request_id_key, (void *)id)) < 0) return err;
    err = coil_http_next(req, res);
    coil_local_set(&request_id_key, outer);
    return err;
}

const char *coil_http_current_request_id(void) { return coil_local_get(&request_id_key); }

int coil__http_adopt_request_id(const char *id) {
    return coil_local_set(&request_id_key, (void *)id);
}

/* ------------------------------------------------------------------ timing */

int coil_http_mw_timing(coil_http_request *req, coil_http_response *res, void *arg) {
    coil__http_chain *c = coil__http_chain_current();
    if (c && c->req == req) {
        c->timing = true;
        c->timing_start = coil_now();
    }
    return coil_http_next(req, res);
}

/* Writes `prefix` then `us` microseconds as milliseconds with three
 * decimals ("12.345"). Returns the length written (0: it did not fit). By
 * hand: snprintf's %f cost a sixth of a small request's CPU time. */
static size_t format_duration_ms(char *out, size_t size, const char *prefix, uint64_t us) {
    char digits[24];
    size_t n = 0;
    uint64_t ms = us / 1000;
    do {
        digits[n++] = (char)('0' + ms % 10);
        ms /= 10;
    } while (ms && n < sizeof digits);
    size_t plen = strlen(prefix), need = plen + n + 5;
    if (need > size) {
        out[0] = '\0';
        return 0;
    }
    memcpy(out, prefix, plen);
    char *p = out + plen;
    while (n) *p++ = digits[--n];
    unsigned frac = (unsigned)(us % 1000);
    *p++ = '.';
    *p++ = (char)('0' + frac / 100);
    *p++ = (char)('0' + frac / 10 % 10);
    *p++ = (char)('0' + frac % 10);
    *p = '\0';
    return (size_t)(p - out);
}

void coil__http_before_head(coil_http_request *req, coil_http_response *res, coil_time now) {
    coil__http_chain *c = coil__http_chain_current();
    if (!c || c->req != req || c->res != res || !c->timing) return;
    c->timing = false; /* one header, even if the core calls twice */
    char v[48];
    coil_time ns = now - c->timing_start;
    size_t len = format_duration_ms(v, sizeof v, "app;dur=", ns < 0 ? 0 : (uint64_t)ns / 1000);
    /* Digits and "app;dur=.": a valid value. Best effort. */
    static const char name[] = "Server-Timing";
    if (len) coil__http_add_header(res, name, sizeof name - 1, v, len);
}

/* ------------------------------------------------------------------ access log */

/* One log line, in a buffer big enough for the longest line the fields
 * below can make (each is bounded); should one not fit anyway, the rest is
 * dropped and the line stays valid JSON (room for the closing quote and
 * "}\n" is always kept). */
typedef struct line {
    char buf[8192];
    size_t len;
} line;

enum { LINE_RESERVE = 4 };

static void put(line *l, const char *s, size_t n) {
    if (l->len + n > sizeof l->buf - LINE_RESERVE) return;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void puts_(line *l, const char *s) { put(l, s, strlen(s)); }

/* The length of the valid UTF-8 sequence at `p` (at most `n` bytes), or 0. */
static size_t utf8_len(const unsigned char *p, size_t n) {
    size_t k;
    uint32_t cp;
    if (p[0] >= 0xc2 && p[0] <= 0xdf) k = 2, cp = p[0] & 0x1f;
    else if (p[0] >= 0xe0 && p[0] <= 0xef) k = 3, cp = p[0] & 0x0f;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4) k = 4, cp = p[0] & 0x07;
    else return 0;
    if (k > n) return 0;
    for (size_t i = 1; i < k; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if ((k == 3 && cp < 0x800) || (k == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0; /* overlong, out of range, or a surrogate */
    return k;
}

/* A JSON string, escaped, of at most `max` input bytes; null for NULL or
 * when the line has no room left for its longest escaped form. */
static void put_json_str(line *l, const char *s, size_t max) {
    static const char hex[] = "0123456789abcdef";
    size_t n = s ? strnlen(s, max) : 0;
    if (!s || l->len + 2 + 6 * n > sizeof l->buf - LINE_RESERVE) {
        put(l, "null", 4);
        return;
    }
    put(l, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        char esc[6] = {'\\', 0};
        if (ch == '"' || ch == '\\') {
            esc[1] = (char)ch;
            put(l, esc, 2);
        } else if (ch < 0x20 || ch == 0x7f) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[ch >> 4];
            esc[5] = hex[ch & 0xf];
            put(l, esc, 6);
        } else if (ch < 0x80) {
            put(l, (const char *)&ch, 1);
        } else {
            size_t k = utf8_len((const unsigned char *)s + i, n - i);
            if (k) {
                put(l, s + i, k);
                i += k - 1;
            } else {
                put(l, "\\ufffd", 6); /* not UTF-8: keep the line valid JSON */
            }
        }
    }
    put(l, "\"", 1);
}

/* "2024-05-01T12:00:00.123Z", UTC. The part up to the seconds is kept per
 * thread and remade once a second. */
static void put_time(line *l) {
    static _Thread_local time_t last;
    static _Thread_local char stamp[24];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != last || !stamp[0]) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
        last = ts.tv_sec;
    }
    char ms[24];
    snprintf(ms, sizeof ms, ".%03dZ", (int)(ts.tv_nsec / 1000000));
    put(l, "\"", 1);
    puts_(l, stamp);
    puts_(l, ms);
    put(l, "\"", 1);
}

static void write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return; /* a log that cannot be written is dropped */
        p += w;
        n -= (size_t)w;
    }
}

int coil_http_mw_access_log(coil_http_request *req, coil_http_response *res, void *arg) {
    int err = coil_http_next(req, res);
    int status = coil_http_status(res);
    if (status == 0) status = err < 0 ? 500 : 204; /* what the core answers */
    coil_time dur = coil_now() - coil__http_request_start(req);
    char num[64];
    line l;
    l.len = 0;
    puts_(&l, "{\"time\":");
    put_time(&l);
    puts_(&l, ",\"request_id\":");
    put_json_str(&l, coil_http_request_id(req), 128);
    puts_(&l, ",\"client\":");
    put_json_str(&l, coil_http_client_addr(req), 64);
    puts_(&l, ",\"method\":");
    put_json_str(&l, coil_http_method(req), 32);
    puts_(&l, ",\"path\":");
    put_json_str(&l, coil_http_path(req), 1024);
    snprintf(num, sizeof num, ",\"status\":%d,\"bytes\":%llu", status,
             (unsigned long long)coil__http_response_bytes(res));
    puts_(&l, num);
    snprintf(num, sizeof num, ",\"duration_ms\":%.3f", dur > 0 ? (double)dur / 1e6 : 0.0);
    puts_(&l, num);
    memcpy(l.buf + l.len, "}\n", 2);
    l.len += 2;
    write_all(STDERR_FILENO, l.buf, l.len);
    return err;
}
