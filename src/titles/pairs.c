/* titles/pairs.c: bucketed (genre, title) pairs (pairs.h has the design).
 *
 * A chunk is a genre's buffer as it was when it filled: varints, the
 * first one a title id and each next one the difference from the one
 * before, zig-zag encoded so that a file out of title order still round
 * trips. Chunks of all the genres interleave in the spill file; each
 * genre keeps the list of its own (offset, length), in order.
 */
#include "titles/pairs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
    CHUNK_BYTES = 16 << 10,
    VARINT_MAX = 10,
};

typedef struct chunk {
    int64_t offset; /* in the spill file */
    uint32_t len;   /* bytes */
} chunk;

typedef struct bucket {
    uint8_t *buf;          /* CHUNK_BYTES, allocated at the genre's first pair */
    size_t len;            /* bytes in buf */
    int64_t prev;          /* the last id encoded into buf (0 at a chunk's start) */
    chunk *chunks;         /* spilled, in order */
    size_t nchunks, cap;
} bucket;

struct titles_pairs {
    bucket genres[TITLES_PAIRS_GENRES + 1]; /* by genre id; 0 unused */
    int fd;                /* the spill file */
    char *path;            /* its name, owned */
    int64_t spilled;       /* its size */
    int64_t count;         /* pairs added */
    /* Reading back. */
    int genre;             /* the genre being read */
    size_t chunk_at;       /* its next chunk to load; nchunks: then its buffer */
    uint8_t *read_buf;     /* CHUNK_BYTES: the chunk being decoded */
    size_t read_len, read_at;
    int64_t read_prev;
};

static uint64_t zigzag(int64_t v) { return ((uint64_t)v << 1) ^ (v < 0 ? UINT64_MAX : 0); }
static int64_t unzigzag(uint64_t u) { return (int64_t)(u >> 1) ^ -(int64_t)(u & 1); }

int titles_pairs_open(titles_pairs **out, const char *spill_path) {
    titles_pairs *p = calloc(1, sizeof *p);
    if (!p) return -ENOMEM;
    p->fd = open(spill_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    p->path = strdup(spill_path);
    p->read_buf = malloc(CHUNK_BYTES);
    if (p->fd < 0 || !p->path || !p->read_buf) {
        int err = p->fd < 0 ? -errno : -ENOMEM;
        titles_pairs_free(p);
        return err;
    }
    *out = p;
    return 0;
}

static int write_all(int fd, const uint8_t *buf, size_t len, int64_t offset) {
    while (len) {
        ssize_t n = pwrite(fd, buf, len, offset);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return n < 0 ? -errno : -EIO;
        buf += n, len -= (size_t)n, offset += n;
    }
    return 0;
}

static int spill(titles_pairs *p, bucket *g) {
    if (g->nchunks == g->cap) {
        size_t cap = g->cap ? 2 * g->cap : 8;
        chunk *c = realloc(g->chunks, cap * sizeof *c);
        if (!c) return -ENOMEM;
        g->chunks = c, g->cap = cap;
    }
    int err = write_all(p->fd, g->buf, g->len, p->spilled);
    if (err) return err;
    g->chunks[g->nchunks++] = (chunk){p->spilled, (uint32_t)g->len};
    p->spilled += (int64_t)g->len;
    g->len = 0;
    g->prev = 0;
    return 0;
}

int titles_pairs_add(titles_pairs *p, int genre, int64_t title) {
    if (genre < 1 || genre > TITLES_PAIRS_GENRES || title <= 0) return -EINVAL;
    bucket *g = &p->genres[genre];
    if (!g->buf && !(g->buf = malloc(CHUNK_BYTES))) return -ENOMEM;
    if (CHUNK_BYTES - g->len < VARINT_MAX) {
        int err = spill(p, g);
        if (err) return err;
    }
    uint64_t v = zigzag(title - g->prev);
    while (v >= 0x80) {
        g->buf[g->len++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    g->buf[g->len++] = (uint8_t)v;
    g->prev = title;
    p->count++;
    return 0;
}

int64_t titles_pairs_count(const titles_pairs *p) { return p->count; }

int titles_pairs_rewind(titles_pairs *p) {
    p->genre = 1;
    p->chunk_at = 0;
    p->read_len = p->read_at = 0;
    return 0;
}

static int read_all(int fd, uint8_t *buf, size_t len, int64_t offset) {
    while (len) {
        ssize_t n = pread(fd, buf, len, offset);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return n < 0 ? -errno : -EIO;
        buf += n, len -= (size_t)n, offset += n;
    }
    return 0;
}

/* Loads the next chunk of the genre being read (its spilled ones, then
 * what is in its buffer). Returns 1, 0 when the genre has no more, or a
 * negative errno. */
static int load_chunk(titles_pairs *p) {
    bucket *g = &p->genres[p->genre];
    p->read_at = 0;
    p->read_prev = 0;
    if (p->chunk_at < g->nchunks) {
        chunk c = g->chunks[p->chunk_at++];
        p->read_len = c.len;
        int err = read_all(p->fd, p->read_buf, c.len, c.offset);
        return err ? err : 1;
    }
    if (p->chunk_at == g->nchunks && g->len) {
        p->chunk_at++;
        memcpy(p->read_buf, g->buf, g->len);
        p->read_len = g->len;
        return 1;
    }
    return 0;
}

int titles_pairs_next(titles_pairs *p, int *genre, int64_t *title) {
    while (p->read_at == p->read_len) {
        if (p->genre > TITLES_PAIRS_GENRES) return 0;
        int got = load_chunk(p);
        if (got < 0) return got;
        if (got == 0) {
            p->genre++;
            p->chunk_at = 0;
            p->read_len = p->read_at = 0;
        }
    }
    uint64_t v = 0;
    for (int shift = 0; p->read_at < p->read_len; shift += 7) {
        uint8_t byte = p->read_buf[p->read_at++];
        v |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) break;
    }
    p->read_prev += unzigzag(v);
    *genre = p->genre;
    *title = p->read_prev;
    return 1;
}

void titles_pairs_free(titles_pairs *p) {
    if (!p) return;
    for (int i = 0; i <= TITLES_PAIRS_GENRES; i++) {
        free(p->genres[i].buf);
        free(p->genres[i].chunks);
    }
    if (p->fd >= 0) close(p->fd);
    if (p->path) unlink(p->path);
    free(p->path);
    free(p->read_buf);
    free(p);
}
