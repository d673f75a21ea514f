/* io/read.c: the read buffer and the calls that read from it.
 *
 * Each stream owns one growable buffer; the unconsumed bytes are
 * rbuf[rhead, rtail). libuv reads straight into its free tail: alloc_cb
 * hands out that space and read_cb advances rtail, so a byte is copied once,
 * from the kernel into the buffer, and once more only if the caller asks
 * for a copy (read, read_exactly, readline; peek/consume copy nothing).
 *
 *     rbuf              rhead                  rtail              rcap
 *     |  consumed        |  buffered: readable   |  free: libuv reads |
 *
 * When the tail runs short, the buffered bytes move to the front (rarely
 * more than a partial request) and the buffer doubles if that is not
 * enough. Consuming everything resets both ends to 0, and a reader about to
 * park on an empty buffer frees it, so an idle connection holds no buffer:
 * a million of them waiting for their next request cost no read memory.
 *
 * When to read. A stream reads nothing until a task first asks for data;
 * from then on it reads eagerly, whether or not a task is waiting, until
 * `read_limit` bytes are buffered. Then it stops (uv_read_stop), and the
 * kernel's receive window pushes back on the peer. It starts again when the
 * buffer has drained to half the limit, so that a reader consuming a few
 * bytes at a time does not toggle the socket for each. A parked reader that
 * needs more than the limit to finish (`need`) raises it while it waits.
 * coil__read_update() makes that decision after every change.
 *
 * Waiting. Every reading call is built on fill(s, need): it returns at once
 * if `need` bytes are buffered, and otherwise parks the (single) reader
 * until read_cb has buffered them or the stream has ended or failed. It
 * consumes nothing, so an interrupted call loses nothing. The calls copy
 * and consume only after fill() succeeded, without suspending in between.
 *
 * Order of outcomes: buffered bytes come first; the end of the stream
 * (eof) or a read error (read_err, sticky) is reported once the bytes a
 * call needs cannot all arrive. A stream being closed reports -EPIPE.
 */
#include "io/internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

enum {
    READ_CHUNK = 64 * 1024, /* most bytes asked of the kernel per read */
    MIN_CAP = 4 * 1024,     /* smallest buffer allocated */
    FILL_EOF = 1,           /* fill(): the stream ended first */
};

static size_t buffered(const coil_stream *s) { return s->rtail - s->rhead; }

size_t coil_stream_buffered(const coil_stream *s) {
    coil__stream_check(s);
    return buffered(s);
}

/* The buffer may hold this much before reading stops. */
static size_t effective_limit(const coil_stream *s) {
    return s->need > s->read_limit ? s->need : s->read_limit;
}

/* Spare buffers. A busy connection frees its buffer each time it waits
 * with nothing buffered, and needs one again for its next message: from
 * malloc, that is a READ_CHUNK block that glibc trims away and faults back
 * in, a sixth of the time of a small HTTP request. So each loop keeps a
 * few freed buffers of that size for its next reader (per thread, since a
 * thread runs one loop at a time); an idle stream still holds none. They
 * are freed when the loop closes. */
enum { SPARE_MAX = 16 };
typedef struct spares {
    char *buf[SPARE_MAX];          /* READ_CHUNK bytes each */
    size_t n;
    coil_loop *loop;               /* the loop they belong to, NULL if none */
    coil__close_hook hook;         /* frees them when it closes */
} spares;
static _Thread_local spares tls_spares;

static void spares_free(void *arg) {
    spares *sp = arg;
    while (sp->n) free(sp->buf[--sp->n]);
    sp->loop = NULL;
}

/* Keeps `buf` (READ_CHUNK bytes) for the next reader. Returns false if it
 * should be freed instead. */
static bool spare_put(char *buf) {
    spares *sp = &tls_spares;
    coil_loop *loop = coil__tls_loop;
    if (!loop || loop->stopped || sp->n == SPARE_MAX) return false;
    if (sp->loop != loop) {
        if (sp->loop) return false;
        sp->loop = loop;
        sp->hook.fn = spares_free;
        sp->hook.arg = sp;
        coil__loop_on_close(loop, &sp->hook);
    }
    sp->buf[sp->n++] = buf;
    return true;
}

static char *spare_take(void) {
    spares *sp = &tls_spares;
    if (sp->n == 0 || sp->loop != coil__tls_loop) return NULL;
    return sp->buf[--sp->n];
}

void coil__read_free(coil_stream *s) {
    if (!s->rbuf || s->rcap != READ_CHUNK || !spare_put(s->rbuf)) free(s->rbuf);
    s->rbuf = NULL;
    s->rcap = s->rhead = s->rtail = 0;
}

/* Makes room for `want` more bytes at the tail. Returns 0 or -ENOMEM. */
static int reserve(coil_stream *s, size_t want) {
    if (s->rcap - s->rtail >= want) return 0;
    size_t n = buffered(s);
    if (s->rhead) {
        memmove(s->rbuf, s->rbuf + s->rhead, n);
        s->rhead = 0;
        s->rtail = n;
        if (s->rcap - n >= want) return 0;
    }
    size_t cap = s->rcap > MIN_CAP ? s->rcap : MIN_CAP;
    while (cap - n < want) {
        if (cap > SIZE_MAX / 2) return -ENOMEM;
        cap *= 2;
    }
    char *p = !s->rbuf && cap == READ_CHUNK ? spare_take() : NULL;
    if (!p && !(p = realloc(s->rbuf, cap))) return -ENOMEM;
    s->rbuf = p;
    s->rcap = cap;
    return 0;
}

/* ------------------------------------------------------------------ libuv side */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    coil_stream *s = h->data;
    size_t limit = effective_limit(s), n = buffered(s);
    size_t room = limit > n ? limit - n : 0;
    size_t want = room < READ_CHUNK ? room : READ_CHUNK;
    if (want == 0 || reserve(s, want)) {
        *buf = uv_buf_init(NULL, 0); /* read_cb sees UV_ENOBUFS */
        return;
    }
    size_t space = s->rcap - s->rtail;
    if (space > room) space = room;
    if (space > INT_MAX) space = INT_MAX;
    *buf = uv_buf_init(s->rbuf + s->rtail, (unsigned)space);
}

/* Wakes the parked reader if what it waits for has happened. */
static void maybe_wake_reader(coil_stream *s) {
    if (coil__list_empty(&s->readers)) return;
    if (buffered(s) >= s->need || s->eof || s->read_err) coil__wake_one(&s->readers, NULL, 0);
}

static void read_cb(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf) {
    (void)buf;
    coil_stream *s = h->data;
    if (nread > 0) {
        s->rtail += (size_t)nread;
    } else if (nread == UV_EOF) {
        s->eof = true;
    } else if (nread == UV_ENOBUFS) {
        /* alloc_cb had nothing to give: out of memory, or (defensively)
         * full, in which case reading simply stops below. */
        if (buffered(s) < effective_limit(s)) s->read_err = -ENOMEM;
    } else if (nread < 0) {
        s->read_err = (int)nread;
    }
    coil__read_update(s);
    maybe_wake_reader(s);
}

void coil__read_update(coil_stream *s) {
    size_t n = buffered(s);
    bool want;
    if (!s->read_started || s->eof || s->read_err || s->closing) want = false;
    else if (s->need > n) want = true;
    else if (s->reading) want = n < s->read_limit;
    else want = n <= s->read_limit / 2;
    if (want == s->reading) return;
    if (want) {
        int err = uv_read_start(&s->h.stream, alloc_cb, read_cb);
        if (err) {
            s->read_err = err;
            maybe_wake_reader(s);
            return;
        }
    } else {
        uv_read_stop(&s->h.stream);
    }
    s->reading = want;
}

/* ------------------------------------------------------------------ waiting */

/* Waits until `need` bytes are buffered. Returns 0 when they are, FILL_EOF
 * if the stream ended first, or a negative error. Consumes nothing.
 * Suspends when fewer than `need` bytes are buffered. */
static int fill(coil_stream *s, size_t need) {
    for (;;) {
        if (s->closing) return -EPIPE;
        if (buffered(s) >= need) return 0;
        if (s->read_err) return s->read_err;
        if (s->eof) return FILL_EOF;
        if (!coil__list_empty(&s->readers)) return -EBUSY;
        if (buffered(s) == 0) coil__read_free(s); /* idle: hold no memory */
        s->read_started = true;
        s->need = need;
        coil__read_update(s);
        int err = s->read_err;
        if (!err) {
            coil__waiter w;
            err = coil__wait_on(&s->readers, &w);
        }
        /* Still ours even after a close woke us: the closer frees the
         * stream only after we have run (see stream.c). */
        s->need = 0;
        coil__read_update(s);
        if (err) return err;
    }
}

/* Entry checks shared by the reading calls: a cancelled task gets its
 * cancellation even when the data is already there. */
static int enter(const coil_stream *s) {
    coil__stream_check(s);
    coil_task *t = coil__running();
    COIL_ASSERT(t != NULL);
    return coil__pending_cancel(t);
}

/* Copies the first `n` buffered bytes to `buf` and consumes them. */
static void take(coil_stream *s, void *buf, size_t n) {
    if (n) memcpy(buf, s->rbuf + s->rhead, n);
    coil_stream_consume(s, n);
}

/* ------------------------------------------------------------------ calls */

ssize_t coil_stream_read(coil_stream *s, void *buf, size_t len) {
    int err = enter(s);
    if (err) return err;
    if (len == 0) return 0;
    err = fill(s, 1);
    if (err == FILL_EOF) return 0;
    if (err) return err;
    size_t n = buffered(s);
    if (n > len) n = len;
    if (n > SSIZE_MAX) n = SSIZE_MAX;
    take(s, buf, n);
    return (ssize_t)n;
}

ssize_t coil_stream_read_exactly(coil_stream *s, void *buf, size_t len) {
    int err = enter(s);
    if (err) return err;
    if (len > SSIZE_MAX) return -EINVAL;
    if (len == 0) return 0;
    err = fill(s, len);
    if (err == FILL_EOF) return buffered(s) ? -ENODATA : 0;
    if (err) return err;
    take(s, buf, len);
    return (ssize_t)len;
}

/* Copies and consumes a line of `n` bytes and NUL-terminates it. */
static ssize_t take_line(coil_stream *s, char *buf, size_t n) {
    take(s, buf, n);
    buf[n] = '\0';
    return (ssize_t)n;
}

ssize_t coil_stream_readline(coil_stream *s, char *buf, size_t size) {
    int err = enter(s);
    if (err) return err;
    if (size < 2 || size - 1 > SSIZE_MAX) return -EINVAL;
    size_t max = size - 1; /* longest line, '\n' included */
    size_t scanned = 0;    /* bytes from rhead known to hold no '\n' */
    for (;;) {
        size_t n = buffered(s);
        size_t lim = n < max ? n : max;
        if (lim > scanned) {
            const char *p = s->rbuf + s->rhead;
            const char *nl = memchr(p + scanned, '\n', lim - scanned);
            if (nl) return take_line(s, buf, (size_t)(nl - p) + 1);
            scanned = lim;
        }
        if (n >= max) return -ENOBUFS;
        err = fill(s, n + 1);
        if (err == FILL_EOF) return n ? take_line(s, buf, n) : 0;
        if (err) return err;
    }
}

int coil_stream_peek_at_least(coil_stream *s, size_t min, const char **ptr, size_t *len) {
    int err = enter(s);
    if (err) return err;
    err = fill(s, min ? min : 1);
    if (err < 0) return err;
    *ptr = s->rbuf ? s->rbuf + s->rhead : NULL;
    *len = buffered(s);
    return 0;
}

int coil_stream_peek(coil_stream *s, const char **ptr, size_t *len) {
    return coil_stream_peek_at_least(s, 1, ptr, len);
}

void coil_stream_consume(coil_stream *s, size_t n) {
    coil__stream_check(s);
    COIL_ASSERT(n <= buffered(s));
    s->rhead += n;
    if (s->rhead == s->rtail) s->rhead = s->rtail = 0;
    coil__read_update(s);
}
