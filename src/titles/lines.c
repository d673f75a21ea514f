/* titles/lines.c: a file as lines (lines.h has the contract). */
#include "titles/lines.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
    READ_BUF = 4 << 20,
    LINE_MAX_BYTES = 1 << 20,
};

int titles_lines_open(titles_lines *r, const char *path, char *err, size_t cap) {
    memset(r, 0, sizeof *r);
    r->path = path;
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) {
        int e = -errno;
        snprintf(err, cap, "%s: %s", path, strerror(-e));
        return e;
    }
    struct stat st;
    if (fstat(r->fd, &st) == 0) r->total = st.st_size;
    r->gz = gzdopen(r->fd, "rb");
    r->buf = malloc(READ_BUF);
    if (!r->gz || !r->buf) {
        snprintf(err, cap, "out of memory");
        return -ENOMEM;
    }
    gzbuffer(r->gz, 1 << 20);
    return 0;
}

void titles_lines_close(titles_lines *r) {
    if (r->gz) gzclose(r->gz);
    else if (r->fd >= 0) close(r->fd);
    r->gz = NULL;
    r->fd = -1;
    free(r->buf);
    r->buf = NULL;
}

int64_t titles_lines_offset(titles_lines *r) {
    z_off_t off = r->gz ? gzoffset(r->gz) : 0;
    return off >= 0 ? (int64_t)off : 0;
}

/* Moves the partial line to the front and reads more after it. */
static int fill(titles_lines *r, char *err, size_t cap) {
    size_t keep = r->len - r->at;
    if (keep >= LINE_MAX_BYTES) {
        snprintf(err, cap, "%s line %lld: longer than %d bytes", r->path, (long long)r->line + 1,
                 LINE_MAX_BYTES);
        return -EINVAL;
    }
    memmove(r->buf, r->buf + r->at, keep);
    r->len = keep;
    r->at = 0;
    int got = gzread(r->gz, r->buf + r->len, (unsigned)(READ_BUF - r->len));
    int zerr = Z_OK;
    const char *msg = got <= 0 ? gzerror(r->gz, &zerr) : NULL;
    if (got < 0) {
        snprintf(err, cap, "%s: %s", r->path, zerr == Z_ERRNO ? strerror(errno) : msg);
        return zerr == Z_ERRNO ? -EIO : -EBADMSG;
    }
    if (got == 0 && zerr == Z_BUF_ERROR) { /* the stream ended before its end */
        snprintf(err, cap, "%s: truncated: the gzip stream ends early (%s)", r->path, msg);
        return -EBADMSG;
    }
    if (got == 0) r->eof = true;
    r->len += (size_t)got;
    return 0;
}

int titles_lines_next(titles_lines *r, const char **line, size_t *len, char *err, size_t cap) {
    for (;;) {
        char *nl = r->at < r->len ? memchr(r->buf + r->at, '\n', r->len - r->at) : NULL;
        if (nl || (r->eof && r->at < r->len)) {
            size_t end = nl ? (size_t)(nl - r->buf) : r->len;
            *line = r->buf + r->at;
            *len = end - r->at;
            r->at = nl ? end + 1 : end;
            r->line++;
            return 1;
        }
        if (r->eof) return 0;
        int e = fill(r, err, cap);
        if (e) return e;
    }
}

int titles_lines_header(titles_lines *r, const char *header, const char *what, char *err,
                        size_t cap) {
    const char *line;
    size_t len;
    int got = titles_lines_next(r, &line, &len, err, cap);
    if (got < 0) return got;
    if (got == 0) {
        snprintf(err, cap, "%s: empty: no header line", r->path);
        return -EINVAL;
    }
    if (len && line[len - 1] == '\r') len--;
    if (len != strlen(header) || memcmp(line, header, len) != 0) {
        snprintf(err, cap, "%s line 1: not the header of %s (want \"%s\", tab-separated)",
                 r->path, what, header);
        return -EINVAL;
    }
    return 0;
}
