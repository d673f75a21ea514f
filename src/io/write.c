/* io/write.c: writes with back-pressure, flush and shutdown.
 *
 * A write goes through three steps, and suspends only in the first:
 *
 *   1. room:  while the queue (uv_stream_get_write_queue_size: bytes handed
 *             to libuv, not yet to the kernel) holds more than the high-water
 *             mark, park in `writers`; write_cb wakes them all once it has
 *             drained to the low-water mark. (libuv reports progress per
 *             request, so "drained" is seen when whole requests complete.)
 *   2. try:   uv_try_write() hands what the kernel takes right away to the
 *             socket (the fast path: no allocation, no copy). libuv refuses
 *             it while older data is queued, which keeps the order.
 *   3. queue: the rest is copied into one malloc'd request (uv_write_t and
 *             the bytes together) and given to uv_write(); write_cb frees it.
 *
 * Why copy. The alternative, handing the caller's memory to uv_write() and
 * waiting for the callback, saves a copy but cannot be interrupted: libuv
 * has no way to take a queued write back, so a deadline could not fire
 * until the peer read the data, and the caller's buffer would have to
 * outlive a cancelled call. Copying makes the write all or nothing: the
 * only suspension comes before any byte is taken, so an interrupted write
 * sent nothing, and a write that returned 0 will be sent (unless the
 * connection fails). A framed protocol is never left with half a frame.
 * The copy is bounded: the queue holds at most the high-water mark plus
 * one write.
 *
 * Errors are sticky. The first failed write (the peer reset, EPIPE) is
 * kept in write_err, returned by every later write, flush and close, and
 * wakes every task waiting for the queue.
 */
#include "io/internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

enum { TRY_BUFS = 16 }; /* buffers offered to uv_try_write() at most */

/* A queued write: libuv's request and the bytes it writes. */
typedef struct write_req {
    uv_write_t req; /* req.handle is the stream's handle */
    char data[];    /* the copied bytes */
} write_req;

static size_t queue_size(const coil_stream *s) {
    return uv_stream_get_write_queue_size(&s->h.stream);
}

size_t coil_stream_write_queue_size(const coil_stream *s) {
    coil__stream_check(s);
    return queue_size(s);
}

/* Wakes the writers and flushers whose wait is over. */
static void wake_drained(coil_stream *s) {
    if (s->write_err || queue_size(s) <= s->write_low) coil__wake_all(&s->writers, 0);
    if (s->write_err || s->pending_writes == 0) coil__wake_all(&s->flushers, 0);
}

static void write_cb(uv_write_t *req, int status) {
    coil_stream *s = req->handle->data;
    free(COIL_CONTAINER_OF(req, write_req, req));
    s->pending_writes--;
    if (status < 0 && !s->write_err) s->write_err = status;
    wake_drained(s);
}

int coil_stream_set_write_limits(coil_stream *s, size_t high, size_t low) {
    coil__stream_check(s);
    if (low > high) return -EINVAL;
    s->write_high = high;
    s->write_low = low;
    wake_drained(s);
    return 0;
}

/* ------------------------------------------------------------------ write */

/* Why a write cannot start, or 0. */
static int unwritable(const coil_stream *s) {
    if (s->closing || s->shut) return -EPIPE;
    return s->write_err;
}

/* Step 1: waits until the queue is at most the high-water mark. Suspends. */
static int wait_for_room(coil_stream *s) {
    for (;;) {
        int err = unwritable(s);
        if (err) return err;
        if (queue_size(s) <= s->write_high) return 0;
        coil__waiter w;
        err = coil__wait_on(&s->writers, &w);
        if (err) return err;
    }
}

/* Step 2: returns the bytes the kernel took at once (maybe 0), or a
 * negative error. */
static ssize_t try_write(coil_stream *s, const struct iovec *iov, size_t n) {
    uv_buf_t bufs[TRY_BUFS];
    unsigned nb = 0;
    size_t sum = 0;
    /* uv_try_write() returns an int: offer at most INT_MAX bytes. */
    for (; nb < n && nb < TRY_BUFS; nb++) {
        size_t len = iov[nb].iov_len;
        if (len > (size_t)INT_MAX - sum) len = (size_t)INT_MAX - sum;
        bufs[nb].base = iov[nb].iov_base;
        bufs[nb].len = len;
        sum += len;
        if (sum == (size_t)INT_MAX) {
            nb++;
            break;
        }
    }
    int r = uv_try_write(&s->h.stream, bufs, nb);
    if (r == UV_EAGAIN || r == UV_ENOSYS) return 0;
    return r;
}

/* Step 3: copies `len` bytes of `iov`, after the first `skip`, into a
 * queued write. Returns 0 or a negative error. */
static int queue_copy(coil_stream *s, const struct iovec *iov, size_t n, size_t skip,
                      size_t len) {
    if (len > SIZE_MAX - sizeof(write_req)) return -ENOMEM;
    write_req *w = malloc(sizeof *w + len);
    if (!w) return -ENOMEM;
    char *p = w->data;
    for (size_t i = 0; i < n; i++) {
        size_t l = iov[i].iov_len;
        const char *b = iov[i].iov_base;
        if (skip >= l) {
            skip -= l;
            continue;
        }
        if (l - skip) memcpy(p, b + skip, l - skip);
        p += l - skip;
        skip = 0;
    }
    uv_buf_t buf = uv_buf_init(w->data, 0);
    buf.len = len;
    int err = uv_write(&w->req, &s->h.stream, &buf, 1, write_cb);
    if (err) {
        free(w);
        return err;
    }
    s->pending_writes++;
    return 0;
}

int coil_stream_writev(coil_stream *s, const struct iovec *iov, size_t n) {
    coil__stream_check(s);
    coil_task *t = coil__running();
    COIL_ASSERT(t != NULL);
    int err = coil__pending_cancel(t);
    if (err) return err;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (iov[i].iov_len > SIZE_MAX - total) return -EINVAL;
        total += iov[i].iov_len;
    }
    if (total == 0) return unwritable(s);
    err = wait_for_room(s);
    if (err) return err;
    /* No suspension from here on: the write is all or nothing. */
    ssize_t done = try_write(s, iov, n);
    if (done < 0) {
        s->write_err = (int)done;
        wake_drained(s);
        return (int)done;
    }
    if ((size_t)done == total) return 0;
    err = queue_copy(s, iov, n, (size_t)done, total - (size_t)done);
    if (err && done > 0) {
        /* Part of it is on the wire and the rest cannot follow: the stream
         * is broken for good. */
        s->write_err = err;
        wake_drained(s);
    }
    return err;
}

int coil_stream_write(coil_stream *s, const void *buf, size_t len) {
    struct iovec iov = {(void *)(uintptr_t)buf, len};
    return coil_stream_writev(s, &iov, 1);
}

/* ------------------------------------------------------------------ flush */

int coil__write_drain(coil_stream *s, bool from_close) {
    for (;;) {
        if (!from_close && s->closing) return -EPIPE;
        if (s->write_err) return s->write_err;
        if (s->pending_writes == 0) return 0;
        coil__waiter w;
        int err = coil__wait_on(&s->flushers, &w);
        if (err) return err;
    }
}

int coil_stream_flush(coil_stream *s) {
    coil__stream_check(s);
    coil_task *t = coil__running();
    COIL_ASSERT(t != NULL);
    int err = coil__pending_cancel(t);
    if (err) return err;
    return coil__write_drain(s, false);
}

/* ------------------------------------------------------------------ shutdown */

static void shutdown_cb(uv_shutdown_t *req, int status) {
    coil_stream *s = req->handle->data;
    s->shutting = false;
    s->shutdown_status = status;
    coil__wake_all(&s->shutters, 0);
}

int coil_stream_shutdown(coil_stream *s) {
    coil__stream_check(s);
    coil_task *t = coil__running();
    COIL_ASSERT(t != NULL);
    int err = coil__pending_cancel(t);
    if (err) return err;
    if (s->closing) return -EPIPE;
    if (s->shut) return -EALREADY;
    if (s->write_err) return s->write_err;
    /* libuv sends the FIN after every queued write is done. */
    err = uv_shutdown(&s->shutdown_req, &s->h.stream, shutdown_cb);
    if (err) return err;
    s->shut = true;
    s->shutting = true;
    while (s->shutting) {
        coil__waiter w;
        err = coil__wait_on(&s->shutters, &w);
        if (err) return err;
    }
    return s->shutdown_status;
}
