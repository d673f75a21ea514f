/* http/server/sendfile.c: coil_http_send_file(), with sendfile(2).
 *
 * The file's bytes go from the page cache to the socket without passing
 * through user space. Two things could block the loop, and neither runs
 * on it:
 *
 *   - open() and fstat() may wait for the disk: they run on the thread
 *     pool (coil_to_thread);
 *   - sendfile() may wait for the disk too, when the file is not cached:
 *     each call runs on the pool as well. The socket is non-blocking, so a
 *     call never waits for the peer: it sends what the socket buffer takes
 *     and returns, or fails with EAGAIN.
 *
 * On EAGAIN the task waits, on the loop, until the socket is writable
 * again. The stream's own handle is libuv's, and libuv has no "wait until
 * writable" for it; so a second descriptor of the same socket, dup()'d,
 * is watched with a uv_poll (epoll keys its registrations on the
 * descriptor, so both live side by side). The head goes through the
 * stream first, and the stream is flushed before the first sendfile, so
 * the bytes reach the socket in order.
 *
 * If the client goes away or a call fails halfway, the response is cut
 * short and the connection closes (its Content-Length was promised).
 */
#include "http/server/core.h"
#include "runtime/internal.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

enum { SEND_MAX = 1 << 30 }; /* bytes asked of one sendfile() call at most */

/* ------------------------------------------------------------------ content types */

static const char *content_type(const char *path) {
    static const struct {
        const char *ext, *type;
    } types[] = {
        {"html", "text/html; charset=utf-8"}, {"htm", "text/html; charset=utf-8"},
        {"css", "text/css; charset=utf-8"},   {"js", "text/javascript; charset=utf-8"},
        {"mjs", "text/javascript; charset=utf-8"}, {"json", "application/json"},
        {"txt", "text/plain; charset=utf-8"}, {"md", "text/markdown; charset=utf-8"},
        {"csv", "text/csv; charset=utf-8"},   {"xml", "application/xml"},
        {"svg", "image/svg+xml"},             {"png", "image/png"},
        {"jpg", "image/jpeg"},                {"jpeg", "image/jpeg"},
        {"gif", "image/gif"},                 {"webp", "image/webp"},
        {"ico", "image/x-icon"},              {"pdf", "application/pdf"},
        {"wasm", "application/wasm"},         {"woff", "font/woff"},
        {"woff2", "font/woff2"},              {"mp4", "video/mp4"},
        {"gz", "application/gzip"},           {"zip", "application/zip"},
    };
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    if (dot)
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcasecmp(dot + 1, types[i].ext) == 0) return types[i].type;
    return "application/octet-stream";
}

/* ------------------------------------------------------------------ pool calls */

typedef struct open_call {
    const char *path;
    int fd;                 /* out, -1 on failure */
    int err;                /* out: 0 or -errno */
    off_t size;             /* out */
} open_call;

static void *open_file(void *arg) {
    open_call *oc = arg;
    oc->fd = open(oc->path, O_RDONLY | O_CLOEXEC);
    if (oc->fd < 0) {
        oc->err = -errno;
        return NULL;
    }
    struct stat st;
    if (fstat(oc->fd, &st) != 0) oc->err = -errno;
    else if (!S_ISREG(st.st_mode)) oc->err = -EISDIR;
    if (oc->err) {
        close(oc->fd);
        oc->fd = -1;
        return NULL;
    }
    oc->size = st.st_size;
    return NULL;
}

typedef struct send_call {
    int out, in;            /* socket, file */
    off_t off;              /* in/out */
    size_t count;
    ssize_t result;         /* bytes sent or -errno */
} send_call;

static void *send_some(void *arg) {
    send_call *sc = arg;
    ssize_t n = sendfile(sc->out, sc->in, &sc->off, sc->count);
    sc->result = n < 0 ? -errno : n;
    return NULL;
}

/* ------------------------------------------------------------------ waiting for room */

typedef struct socket_poll {
    uv_poll_t h;            /* on `fd`; h.data == this */
    int fd;                 /* dup of the socket, closed after the handle */
    coil__wait wait;        /* while a task waits */
    coil_task *waiter;      /* the waiting task, NULL if none */
} socket_poll;

static void poll_cb(uv_poll_t *h, int status, int events) {
    (void)events;
    socket_poll *sp = h->data;
    uv_poll_stop(h);
    if (!sp->waiter) return;
    coil_task *t = sp->waiter;
    sp->waiter = NULL;
    coil__wake(t, status < 0 ? status : 0);
}

static bool poll_interrupt(coil__wait *w, int err) {
    (void)err;
    socket_poll *sp = COIL_CONTAINER_OF(w, socket_poll, wait);
    uv_poll_stop(&sp->h);
    sp->waiter = NULL;
    return true;
}

static void poll_closed(uv_handle_t *h) {
    socket_poll *sp = h->data;
    close(sp->fd);
    free(sp);
}

/* Creates the watcher for `sock`. Returns NULL with *err set. */
static socket_poll *poll_new(int sock, int *err) {
    socket_poll *sp = calloc(1, sizeof *sp);
    if (!sp) {
        *err = -ENOMEM;
        return NULL;
    }
    sp->fd = fcntl(sock, F_DUPFD_CLOEXEC, 0);
    if (sp->fd < 0) {
        *err = -errno;
        free(sp);
        return NULL;
    }
    *err = uv_poll_init_socket(&coil__tls_loop->uv, &sp->h, sp->fd);
    if (*err) {
        close(sp->fd);
        free(sp);
        return NULL;
    }
    sp->h.data = sp;
    sp->wait.interrupt = poll_interrupt;
    return sp;
}

/* Waits until the socket takes more bytes. Suspends. */
static int wait_writable(socket_poll *sp) {
    int err = coil_check_cancel();
    if (err) return err;
    if ((err = uv_poll_start(&sp->h, UV_WRITABLE | UV_DISCONNECT, poll_cb))) return err;
    sp->waiter = coil__running();
    return coil__park(&sp->wait);
}

/* ------------------------------------------------------------------ sending */

/* Sends [0, size) of `fd` after the head. Returns 0 or an error. Suspends. */
static int send_body(coil_http_response *res, int fd, off_t size) {
    coil_stream *s = res->conn->s;
    int err = coil_stream_flush(s);
    if (err) return err;
    int sock;
    if ((err = coil_stream_fileno(s, &sock))) return err;
    socket_poll *sp = NULL;
    send_call sc = {.out = sock, .in = fd, .off = 0};
    while (sc.off < size) {
        size_t left = (size_t)(size - sc.off);
        sc.count = left < SEND_MAX ? left : SEND_MAX;
        if ((err = coil_to_thread(send_some, &sc, NULL))) break;
        if (sc.result > 0) {
            res->bytes += (uint64_t)sc.result;
            continue;
        }
        if (sc.result == 0) { /* the file shrank under us */
            err = -EIO;
            break;
        }
        if (sc.result != -EAGAIN) {
            err = (int)sc.result;
            break;
        }
        if (!sp && !(sp = poll_new(sock, &err))) break;
        if ((err = wait_writable(sp))) break;
    }
    if (sp) uv_close((uv_handle_t *)&sp->h, poll_closed);
    return err;
}

int coil_http_send_file(coil_http_response *res, const char *path) {
    return coil_http_send_file_as(res, path, NULL);
}

int coil_http_send_file_as(coil_http_response *res, const char *path, const char *type) {
    if (coil__http_offloaded()) return -EPERM;
    if (!path) return -EINVAL;
    if (res->state != COIL__RES_NONE) return -EALREADY;
    open_call oc = {.path = path, .fd = -1};
    int err = coil_to_thread(open_file, &oc, NULL);
    if (err) {
        if (oc.fd >= 0) close(oc.fd); /* interrupted after the pool opened it */
        return err;
    }
    if (oc.err == -ENOENT || oc.err == -ENOTDIR || oc.err == -EISDIR)
        return coil_http_respond_error(res, 404, "not found");
    if (oc.err == -EACCES || oc.err == -EPERM) return coil_http_respond_error(res, 403, "forbidden");
    if (oc.err) return coil_http_respond_error(res, 500, "cannot open file");
    res->state = COIL__RES_DONE;
    err = coil__http_write_head(res, 200, type ? type : content_type(path), (int64_t)oc.size,
                                false, NULL, 0);
    if (!err && !res->req->head && oc.size > 0) {
        err = send_body(res, oc.fd, oc.size);
        /* A body cut short cannot be repaired: the connection must close. */
        if (err && !res->err) res->err = err;
    }
    close(oc.fd);
    return err;
}
