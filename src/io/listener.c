/* io/listener.c: listeners and accept, for TCP and Unix sockets alike.
 *
 * libuv announces each connection with connection_cb and expects
 * uv_accept() to take it. On Unix it accepts one connection from the kernel
 * ahead, then stops watching the socket until that one is taken. So the
 * queue of pending connections is the kernel's backlog, bounded by the
 * `backlog` given to listen, plus at most one held by libuv; `pending`
 * counts the announced ones. Nothing piles up in user space, and a server
 * that stops accepting pushes back on its clients.
 *
 * connection_cb wakes one parked acceptor per announcement; the woken task
 * takes a connection if one is still there when it runs (a task that called
 * accept in between may have taken it) and parks again otherwise, so several
 * tasks may accept on one listener. An accept error announced by libuv
 * (EMFILE, ...) goes to one acceptor, and the listener stays usable.
 *
 * Closing follows stream.c: wake the acceptors with -EPIPE, uv_close(),
 * park until close_cb, free.
 */
#include "io/internal.h"

#include <stdlib.h>

coil_listener *coil__listener_new(bool tcp, int family, int *err) {
    coil_loop *loop = coil__tls_loop;
    COIL_ASSERT(loop && loop->current);
    coil__ignore_sigpipe();
    coil_listener *l = calloc(1, sizeof *l);
    if (!l) {
        *err = -ENOMEM;
        return NULL;
    }
    /* uv_tcp_init_ex creates the socket now, so that options can be set
     * on it before bind. */
    int e = tcp ? uv_tcp_init_ex(&loop->uv, &l->h.tcp, (unsigned)family)
                : uv_pipe_init(&loop->uv, &l->h.pipe, 0);
    if (e) {
        free(l);
        *err = e;
        return NULL;
    }
    l->magic = COIL__LISTENER_MAGIC;
    l->h.handle.data = l;
    l->loop = loop;
    l->is_tcp = tcp;
    coil__list_init(&l->acceptors);
    return l;
}

static void discard_cb(uv_handle_t *h) { free(h->data); }

void coil__listener_discard(coil_listener *l) {
    l->magic = 0;
    l->closing = true;
    uv_close(&l->h.handle, discard_cb);
}

static void check(const coil_listener *l) {
    COIL_ASSERT(l != NULL && l->magic == COIL__LISTENER_MAGIC);
    COIL_ASSERT(l->loop == coil__tls_loop);
}

static void connection_cb(uv_stream_t *server, int status) {
    coil_listener *l = server->data;
    if (status < 0) {
        if (!l->pending_err) l->pending_err = status;
    } else {
        l->pending++;
    }
    coil__wake_one(&l->acceptors, NULL, 0);
}

int coil__listener_start(coil_listener *l, int backlog) {
    return uv_listen(&l->h.stream, backlog > 0 ? backlog : COIL__BACKLOG, connection_cb);
}

/* Takes one announced connection. Returns 0, -EAGAIN if libuv had none
 * after all, or an error. Does not suspend. */
static int take(coil_listener *l, coil_stream **out) {
    int err;
    coil_stream *s = coil__stream_new(l->is_tcp, &err);
    if (!s) goto fail;
    err = uv_accept(&l->h.stream, &s->h.stream);
    /* Any answer but EAGAIN used up the connection libuv held. */
    if (err == UV_EAGAIN) l->pending = 0;
    else l->pending--;
    if (err) {
        coil__stream_discard(s);
        goto fail;
    }
    if (l->is_tcp) uv_tcp_nodelay(&s->h.tcp, 1);
    *out = s;
    return 0;
fail:
    /* Someone else may take what is still pending. */
    if (l->pending) coil__wake_one(&l->acceptors, NULL, 0);
    return err;
}

int coil_listener_accept(coil_listener *l, coil_stream **out) {
    check(l);
    coil_task *t = coil__running();
    COIL_ASSERT(t != NULL);
    int err = coil__pending_cancel(t);
    if (err) return err;
    for (;;) {
        if (l->closing) return -EPIPE;
        if (l->pending_err) {
            err = l->pending_err;
            l->pending_err = 0;
            return err;
        }
        if (l->pending) {
            err = take(l, out);
            if (err != UV_EAGAIN) return err;
            continue;
        }
        coil__waiter w;
        err = coil__wait_on(&l->acceptors, &w);
        if (err) return err;
    }
}

int coil_listener_port(const coil_listener *l) {
    check(l);
    if (!l->is_tcp) return -EINVAL;
    struct sockaddr_storage ss;
    int len = (int)sizeof ss;
    int err = uv_tcp_getsockname(&l->h.tcp, (struct sockaddr *)&ss, &len);
    if (err) return err;
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -EINVAL;
}

static void close_cb(uv_handle_t *h) {
    coil_listener *l = h->data;
    coil__wake(l->closer, 0);
}

int coil_listener_close(coil_listener *l) {
    check(l);
    coil_task *self = coil__running();
    COIL_ASSERT(self != NULL);
    if (l->closing) return -EPIPE;
    l->closing = true;
    coil__wake_all(&l->acceptors, -EPIPE);
    l->closer = self;
    uv_close(&l->h.handle, close_cb);
    /* Freed by us, after the acceptors woken above have run (FIFO). */
    coil__wait uninterruptible = {NULL};
    coil__park(&uninterruptible);
    l->magic = 0;
    free(l);
    return 0;
}
