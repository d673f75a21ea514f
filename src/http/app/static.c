/* http/app/static.c: serving the files under a directory.
 *
 * coil_http_static(srv, "/static", root) registers the route
 * "GET /static/{path...}" (HEAD follows GET) with a mount that holds the
 * canonical root (realpath, resolved once at registration). A request's
 * path is refused before the file system is touched if any segment is
 * empty, "." or ".." (the path is already percent-decoded by the core, so
 * "%2e%2e" arrives as ".." and is refused too): 403 for dot segments, 404
 * for empty ones. Then, on the thread pool (file-system calls block), the
 * file's path is resolved with realpath(), which follows every symlink, and
 * served only if the result still lies under the root (403 otherwise) and
 * is a regular file (404 otherwise). The core sends it with sendfile.
 *
 * A symlink swapped in between the check and the open could still escape;
 * the check guards against links in the tree, not against an attacker who
 * can write into it.
 */
#include "http/app/router.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* One mounted directory; owned by the router. */
typedef struct mount {
    size_t root_len;              /* strlen(root) */
    char root[];                  /* canonical absolute path, no trailing '/' but for "/" */
} mount;

/* A file to resolve on the pool; lives on the request task's stack. */
typedef struct lookup {
    const mount *m;
    char path[PATH_MAX];          /* root + "/" + the request's path */
    char real[PATH_MAX];          /* out: the canonical path */
    int err;                      /* out: 0, -ENOENT, -EACCES (escapes) */
} lookup;

static bool under_root(const mount *m, const char *real) {
    if (strncmp(real, m->root, m->root_len) != 0) return false;
    return m->root_len == 1 || real[m->root_len] == '/' || real[m->root_len] == '\0';
}

/* Runs on a pool thread. */
static void *resolve(void *arg) {
    lookup *lk = arg;
    struct stat st;
    if (!realpath(lk->path, lk->real)) lk->err = -errno;
    else if (!under_root(lk->m, lk->real)) lk->err = -EACCES;
    else if (stat(lk->real, &st) != 0) lk->err = -errno;
    else if (!S_ISREG(st.st_mode)) lk->err = -ENOENT;
    else lk->err = 0;
    return NULL;
}

/* 0 if every segment of `rel` is a plain name, 403 for "." or "..", 404
 * for an empty segment. */
static int check_segments(const char *rel) {
    for (const char *seg = rel;;) {
        const char *slash = strchr(seg, '/');
        size_t len = slash ? (size_t)(slash - seg) : strlen(seg);
        if (len == 0) return 404;
        if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
            return 403;
        if (!slash) return 0;
        seg = slash + 1;
    }
}

static int serve_file(coil_http_request *req, coil_http_response *res, void *arg) {
    const mount *m = arg;
    const char *rel = coil_http_param(req, "path");
    if (!rel || !*rel) return coil_http_respond_error(res, 404, "not found");
    int status = check_segments(rel);
    if (status) return coil_http_respond_error(res, status, status == 403 ? "forbidden" : "not found");
    lookup lk;
    lk.m = m;
    int n = snprintf(lk.path, sizeof lk.path, "%s/%s", m->root_len == 1 ? "" : m->root, rel);
    if (n < 0 || (size_t)n >= sizeof lk.path) return coil_http_respond_error(res, 414, "path too long");
    int err = coil_to_thread(resolve, &lk, NULL);
    if (err == -EAGAIN) return coil_http_respond_error(res, 503, "thread pool busy");
    if (err) return err;
    if (lk.err == -EACCES) return coil_http_respond_error(res, 403, "forbidden");
    if (lk.err) return coil_http_respond_error(res, 404, "not found");
    return coil_http_send_file(res, lk.real);
}

int coil_http_static(coil_http_server *srv, const char *prefix, const char *root) {
    if (!srv || !prefix || !root || prefix[0] != '/' || strpbrk(prefix, "{}")) return -EINVAL;
    size_t plen = strlen(prefix);
    while (plen > 0 && prefix[plen - 1] == '/') plen--; /* "/static/" and "/" too */
    char real[PATH_MAX];
    struct stat st;
    if (!realpath(root, real)) return -errno;
    if (stat(real, &st) != 0) return -errno;
    if (!S_ISDIR(st.st_mode)) return -ENOTDIR;
    size_t rlen = strlen(real);
    char *pattern = malloc(plen + sizeof "/{path...}");
    mount *m = malloc(sizeof *m + rlen + 1);
    int err = -ENOMEM;
    if (!pattern || !m) goto fail;
    memcpy(pattern, prefix, plen);
    memcpy(pattern + plen, "/{path...}", sizeof "/{path...}");
    m->root_len = rlen;
    memcpy(m->root, real, rlen + 1);
    coil__http_router *r = coil__http_server_router(srv);
    if ((err = coil__http_router_own(r, m)) != 0) goto fail;
    m = NULL; /* the router's now, even if the route below fails */
    err = coil__http_router_add(r, "GET", pattern, serve_file, r->owned[r->nowned - 1], 0);
fail:
    free(pattern);
    free(m);
    return err;
}
