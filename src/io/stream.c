/* io/stream.c: a stream's life, from creation to close.
 *
 * A coil_stream is one malloc'd struct that holds the libuv handle (a
 * uv_tcp_t or a uv_pipe_t, in a union), the read buffer's bookkeeping, the
 * write side's counters and the waiter lists of the tasks parked on it. The
 * handle's `data` points back at the struct, which is how every libuv
 * callback finds its stream.
 *
 * Closing. libuv frees nothing: a handle may be released only after its
 * close callback has run, and until then libuv may still call back (with
 * UV_ECANCELED) the requests in flight on it. So coil_stream_close():
 *
 *   1. marks the stream closing, wakes every task parked on it with -EPIPE
 *      and stops reading;
 *   2. waits, like coil_stream_flush(), for the write queue to drain (an
 *      interruption or a write error ends the wait: the rest is dropped);
 *   3. calls uv_close() and parks, uninterruptibly, until close_cb;
 *   4. frees the stream once it runs again.
 *
 * The struct is freed by the closing task rather than by close_cb, because
 * of the tasks woken in step 1: they are ready, and may not have run yet
 * when close_cb fires. The run queue is FIFO and they were queued before
 * close_cb queued the closer, so by the time the closer frees the stream,
 * each of them has returned from its call; none of them touches it again
 * (the header makes that the caller's rule).
 *
 * Constructors that fail half-way use coil__stream_discard(), which closes
 * without waiting and frees in the close callback: nobody else knows the
 * stream yet.
 */
#include "io/internal.h"

#include <signal.h>
#include <stdlib.h>

/* ------------------------------------------------------------------ SIGPIPE */

static pthread_once_t sigpipe_once = PTHREAD_ONCE_INIT;

static void sigpipe_ignore(void) {
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) != 0) return;
    if ((sa.sa_flags & SA_SIGINFO) || sa.sa_handler != SIG_DFL) return;
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    sigaction(SIGPIPE, &sa, NULL);
}

void coil__ignore_sigpipe(void) { pthread_once(&sigpipe_once, sigpipe_ignore); }

/* ------------------------------------------------------------------ create */

coil_stream *coil__stream_new(bool tcp, int *err) {
    coil_loop *loop = coil__tls_loop;
    COIL_ASSERT(loop && loop->current);
    coil__ignore_sigpipe();
    coil_stream *s = calloc(1, sizeof *s);
    if (!s) {
        *err = -ENOMEM;
        return NULL;
    }
    int e = tcp ? uv_tcp_init(&loop->uv, &s->h.tcp) : uv_pipe_init(&loop->uv, &s->h.pipe, 0);
    if (e) {
        free(s);
        *err = e;
        return NULL;
    }
    s->magic = COIL__STREAM_MAGIC;
    s->h.handle.data = s;
    s->loop = loop;
    s->is_tcp = tcp;
    s->read_limit = COIL__READ_LIMIT;
    s->write_high = COIL__WRITE_HIGH;
    s->write_low = COIL__WRITE_LOW;
    coil__list_init(&s->readers);
    coil__list_init(&s->writers);
    coil__list_init(&s->flushers);
    coil__list_init(&s->shutters);
    coil__list_init(&s->connectors);
    return s;
}

static void discard_cb(uv_handle_t *h) {
    coil_stream *s = h->data;
    coil__read_free(s);
    free(s);
}

void coil__stream_discard(coil_stream *s) {
    s->magic = 0;
    s->closing = true;
    uv_close(&s->h.handle, discard_cb);
}

void coil__stream_check(const coil_stream *s) {
    COIL_ASSERT(s != NULL && s->magic == COIL__STREAM_MAGIC);
    COIL_ASSERT(s->loop == coil__tls_loop);
}

int coil_stream_open(int fd, coil_stream **out) {
    uv_handle_type type = uv_guess_handle(fd);
    if (type != UV_TCP && type != UV_NAMED_PIPE) return -EINVAL;
    bool tcp = type == UV_TCP;
    int err;
    coil_stream *s = coil__stream_new(tcp, &err);
    if (!s) return err;
    err = tcp ? uv_tcp_open(&s->h.tcp, fd) : uv_pipe_open(&s->h.pipe, fd);
    if (err) {
        /* The handle never took the fd: closing it leaves fd alone. */
        coil__stream_discard(s);
        return err;
    }
    *out = s;
    return 0;
}

/* ------------------------------------------------------------------ connect */

void coil__connect_cb(uv_connect_t *req, int status) {
    coil_stream *s = req->handle->data;
    /* No waiter left if the connecting task was interrupted; the stream is
     * being discarded then, and this is its UV_ECANCELED. */
    coil__wake_one(&s->connectors, NULL, status);
}

int coil__connect_finish(coil_stream *s, coil_stream **out) {
    coil__waiter w;
    int err = coil__wait_on(&s->connectors, &w);
    if (err) {
        coil__stream_discard(s);
        return err;
    }
    if (s->is_tcp) uv_tcp_nodelay(&s->h.tcp, 1);
    *out = s;
    return 0;
}

/* ------------------------------------------------------------------ options */

int coil_stream_set_read_limit(coil_stream *s, size_t bytes) {
    coil__stream_check(s);
    if (bytes == 0) return -EINVAL;
    s->read_limit = bytes;
    coil__read_update(s);
    return 0;
}

int coil_stream_set_nodelay(coil_stream *s, bool on) {
    coil__stream_check(s);
    if (!s->is_tcp) return -ENOTSUP;
    return uv_tcp_nodelay(&s->h.tcp, on ? 1 : 0);
}

int coil_stream_peername(const coil_stream *s, struct sockaddr *addr, socklen_t *len) {
    coil__stream_check(s);
    uv_os_fd_t fd;
    int err = uv_fileno(&s->h.handle, &fd);
    if (err) return err;
    if (getpeername(fd, addr, len) != 0) return -errno;
    return 0;
}

/* ------------------------------------------------------------------ close */

void coil__stream_wake_all(coil_stream *s, int err) {
    coil__wake_all(&s->readers, err);
    coil__wake_all(&s->writers, err);
    coil__wake_all(&s->flushers, err);
    coil__wake_all(&s->shutters, err);
    coil__wake_all(&s->connectors, err);
}

static void close_cb(uv_handle_t *h) {
    coil_stream *s = h->data;
    coil__wake(s->closer, 0);
}

/* Steps 1 to 4 of the file comment; `reset` skips the drain and makes a
 * TCP peer see a reset. */
static int stream_close(coil_stream *s, bool reset) {
    coil__stream_check(s);
    coil_task *self = coil__running();
    COIL_ASSERT(self != NULL);
    if (s->closing) return -EPIPE;
    s->closing = true;
    coil__stream_wake_all(s, -EPIPE);
    coil__read_update(s);
    int err = reset ? 0 : coil__write_drain(s, true);
    s->closer = self;
    /* uv_tcp_close_reset() refuses while a shutdown is pending; a plain
     * close is the best we can do then. */
    if (!reset || !s->is_tcp || uv_tcp_close_reset(&s->h.tcp, close_cb) != 0)
        uv_close(&s->h.handle, close_cb);
    /* From here on failure is not an option: the handle is going away, and
     * the struct must outlive libuv's last callback. */
    coil__wait uninterruptible = {NULL};
    coil__park(&uninterruptible);
    coil__read_free(s);
    s->magic = 0;
    free(s);
    return err;
}

int coil_stream_fileno(coil_stream *s, int *fd) {
    uv_os_fd_t sock;
    int err = s ? uv_fileno(&s->h.handle, &sock) : UV_EBADF;
    if (err) return err;
    *fd = sock;
    return 0;
}

int coil_stream_close(coil_stream *s) { return stream_close(s, false); }

int coil_stream_close_reset(coil_stream *s) { return stream_close(s, true); }
