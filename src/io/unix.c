/* io/unix.c: Unix-socket listeners and connects.
 *
 * libuv calls these pipes (uv_pipe_t). Two things it leaves to us: it
 * truncates a path longer than sun_path without a word, so paths are
 * checked here (-ENAMETOOLONG) rather than silently bound or connected
 * elsewhere; and it unlinks the socket file of a listener when the handle
 * closes, but only a file it bound itself, never one that was in the way.
 */
#include "io/internal.h"

#include <string.h>
#include <sys/un.h>

static int check_path(const char *path) {
    if (!path || !*path) return -EINVAL;
    if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) return -ENAMETOOLONG;
    return 0;
}

int coil_listen_unix(const char *path, int backlog, coil_listener **out) {
    int err = check_path(path);
    if (err) return err;
    if (!out || backlog < 0) return -EINVAL;
    coil_listener *l = coil__listener_new(false, 0, &err);
    if (!l) return err;
    err = uv_pipe_bind(&l->h.pipe, path);
    if (err) goto fail;
    err = coil__listener_start(l, backlog);
    if (err) goto fail;
    *out = l;
    return 0;
fail:
    coil__listener_discard(l);
    return err;
}

int coil_connect_unix(const char *path, coil_stream **out) {
    int err = check_path(path);
    if (err) return err;
    if (!out) return -EINVAL;
    err = coil_check_cancel();
    if (err) return err;
    coil_stream *s = coil__stream_new(false, &err);
    if (!s) return err;
    /* Reports every failure, even an immediate one, through the callback. */
    uv_pipe_connect(&s->connect_req, &s->h.pipe, path, coil__connect_cb);
    return coil__connect_finish(s, out);
}
