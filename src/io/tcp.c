/* io/tcp.c: TCP listeners and connects.
 *
 * Listening. libuv 1.44's uv_tcp_bind() knows no SO_REUSEPORT, so the
 * listener's socket is created up front (uv_tcp_init_ex with the address's
 * family), the option is set on its fd, and only then is it bound.
 * uv_tcp_bind() sets SO_REUSEADDR itself, and may defer EADDRINUSE to
 * uv_listen(); both report it.
 *
 * Connecting. The host is resolved (address literals without a thread, see
 * dns.c) and its addresses are tried one after the other, each as a fresh
 * handle: a failed connect leaves a socket in an unspecified state, so it
 * is discarded, never reused. An interruption stops at once; the attempt in
 * flight is discarded, and libuv cancels its request when the handle closes.
 * Happy eyeballs (RFC 8305) would race the families instead; a server
 * mostly connects to one address and does not need it yet.
 */
#include "io/internal.h"

/* ------------------------------------------------------------------ listen */

static int set_reuseport(coil_listener *l) {
#ifdef SO_REUSEPORT
    uv_os_fd_t fd;
    int err = uv_fileno(&l->h.handle, &fd);
    if (err) return err;
    int on = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0) return -errno;
    return 0;
#else
    (void)l;
    return -ENOTSUP;
#endif
}

static int listen_addr(const struct sockaddr *addr, int backlog, int flags,
                       coil_listener **out) {
    int err;
    coil_listener *l = coil__listener_new(true, addr->sa_family, &err);
    if (!l) return err;
    if (flags & COIL_LISTEN_REUSEPORT) {
        err = set_reuseport(l);
        if (err) goto fail;
    }
    err = uv_tcp_bind(&l->h.tcp, addr, (flags & COIL_LISTEN_IPV6ONLY) ? UV_TCP_IPV6ONLY : 0);
    if (err) goto fail;
    err = coil__listener_start(l, backlog);
    if (err) goto fail;
    *out = l;
    return 0;
fail:
    coil__listener_discard(l);
    return err;
}

int coil_listen_tcp(const char *host, uint16_t port, int backlog, int flags,
                    coil_listener **out) {
    if (!host || !out || backlog < 0) return -EINVAL;
    struct addrinfo *ai;
    int err = coil__resolve_tcp(host, port, AI_PASSIVE, &ai);
    if (err) return err;
    err = listen_addr(ai->ai_addr, backlog, flags, out);
    coil_freeaddrinfo(ai);
    return err;
}

/* ------------------------------------------------------------------ connect */

/* One attempt. Suspends. */
static int connect_addr(const struct sockaddr *addr, coil_stream **out) {
    int err;
    coil_stream *s = coil__stream_new(true, &err);
    if (!s) return err;
    err = uv_tcp_connect(&s->connect_req, &s->h.tcp, addr, coil__connect_cb);
    if (err) {
        coil__stream_discard(s);
        return err;
    }
    return coil__connect_finish(s, out);
}

int coil_connect_tcp(const char *host, uint16_t port, coil_stream **out) {
    if (!host || !out) return -EINVAL;
    struct addrinfo *res;
    int err = coil__resolve_tcp(host, port, 0, &res);
    if (err) return err;
    err = -ENOENT;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        err = connect_addr(ai->ai_addr, out);
        if (err == 0) break;
        int stop = coil_check_cancel();
        if (stop) {
            err = stop;
            break;
        }
    }
    coil_freeaddrinfo(res);
    return err;
}
