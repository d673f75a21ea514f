/* tests/io/test_stream.c: stream semantics over Unix sockets: reading,
 * framing, peek/consume, back-pressure, cancellation, deadlines, close, and
 * Unix listeners. Most tests use a socketpair wrapped with
 * coil_stream_open(), so no network is involved. */
#include "test.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

/* Two connected streams. */
static void make_pair(coil_stream **a, coil_stream **b) {
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    ASSERT_EQ(coil_stream_open(fds[0], a), 0);
    ASSERT_EQ(coil_stream_open(fds[1], b), 0);
}

static void close_pair(coil_stream *a, coil_stream *b) {
    ASSERT_EQ(coil_stream_close(a), 0);
    ASSERT_EQ(coil_stream_close(b), 0);
}

/* A deterministic byte pattern, for integrity checks. */
static unsigned char pattern(size_t i) { return (unsigned char)((i * 131u) ^ (i >> 9)); }

static void fill_pattern(unsigned char *buf, size_t off, size_t len) {
    for (size_t i = 0; i < len; i++) buf[i] = pattern(off + i);
}

/* Waits (bounded) until `s` has at least `n` bytes buffered. */
static void wait_buffered(coil_stream *s, size_t n) {
    for (int i = 0; i < 5000 && coil_stream_buffered(s) < n; i++)
        ASSERT_EQ(coil_sleep(COIL_MSEC(1)), 0);
    ASSERT_GE(coil_stream_buffered(s), n);
}

/* ------------------------------------------------------------------ basics */

static coil_result roundtrip_main(void *arg) {
    (void)arg;
    coil_stream *a, *b;
    make_pair(&a, &b);
    ASSERT_EQ(coil_stream_write(a, "hello", 5), 0);
    char buf[16];
    ASSERT_EQ(coil_stream_read(b, buf, sizeof buf), 5);
    ASSERT(memcmp(buf, "hello", 5) == 0);
    /* And the other way, with writev. */
    struct iovec iov[3] = {{"ab", 2}, {"", 0}, {"cde", 3}};
    ASSERT_EQ(coil_stream_writev(b, iov, 3), 0);
    ASSERT_EQ(coil_stream_read_exactly(a, buf, 5), 5);
    ASSERT(memcmp(buf, "abcde", 5) == 0);
    close_pair(a, b);
    return coil_ok(NULL);
}

TEST(read_write_roundtrip) { RUN_MAIN(roundtrip_main, NULL); }

static coil_result eof_main(void *arg) {
    (void)arg;
    coil_stream *a, *b;
    make_pair(&a, &b);
    ASSERT_EQ(coil_stream_write(a, "last", 4), 0);
    ASSERT_EQ(coil_stream_shutdown(a), 0);
    ASSERT_EQ(coil_stream_shutdown(a), -EALREADY);
    ASSERT_EQ(coil_stream_write(a, "x", 1), -EPIPE);
    char buf[16];
    ASSERT_EQ(coil_stream_read(b, buf, 2), 2);
    ASSERT_EQ(coil_stream_read(b, buf, sizeof buf), 2);
    ASSERT(memcmp(buf, "st", 2) == 0);
    ASSERT_EQ(coil_stream_read(b, buf, sizeof buf), 0);
    ASSERT_EQ(coil_stream_read(b, buf, sizeof buf), 0); /* stays at the end */
    /* The half-closed side still reads. */
    ASSERT_EQ(coil_stream_write(b, "back", 4), 0);
    ASSERT_EQ(coil_stream_read_exactly(a, buf, 4), 4);
    ASSERT(memcmp(buf, "back", 4) == 0);
    close_pair(a, b);
    return coil_ok(NULL);
}

TEST(eof_after_shutdown) { RUN_MAIN(eof_main, NULL); }

static coil_result open_bad_fd_main(void *arg) {
    (void)arg;
    int fd = open("/dev/null", O_RDONLY);
    ASSERT(fd >= 0);
    coil_stream *s = NULL;
    ASSERT_EQ(coil_stream_open(fd, &s), -EINVAL);
    ASSERT(s == NULL);
    ASSERT_EQ(close(fd), 0); /* still ours */
    return coil_ok(NULL);
}

TEST(open_rejects_non_socket) { RUN_MAIN(open_bad_fd_main, NULL); }

/* ------------------------------------------------------------------ framing */

static coil_result readline_main(void *arg) {
    (void)arg;
    coil_stream *a, *b;
    make_pair(&a, &b);
    const char *text = "one\ntwo\r\n\nthree";
    ASSERT_EQ(coil_stream_write(a, text, strlen(text)), 0);
    ASSERT_EQ(coil_stream_shutdown(a), 0);
    char line[32];
    ASSERT_EQ(coil_stream_readline(b, line, sizeof line), 4);
    ASSERT_STR_EQ(line, "one\n");
    ASSERT_EQ(coil_stream_readline(b, line, sizeof line), 5);
    ASSERT_STR_EQ(line, "two\r\n");
    ASSERT_EQ(coil_stream_readline(b, line, sizeof line), 1);
    ASSERT_STR_EQ(line, "\n");
    /* The last line has no newline; then the end. */
    ASSERT_EQ(coil_stream_readline(b, line, sizeof line), 5);
    ASSERT_STR_EQ(line, "three");
    ASSERT_EQ(coil_stream_readline(b, line, sizeof line), 0);
    ASSERT_EQ(coil_stream_readline(b, line, 1), -EINVAL);
    close_pair(a, b);
    return coil_ok(NULL);
}

TEST(readline_lines_and_last_line) { RUN_MAIN(readline_main, NULL); }

static coil_result line_too_long_main(void *arg) {
    (void)arg;
    coil_stream *a, *b;
    make_pair(&a, &b);
    ASSERT_EQ(coil_stream_write(a, "abcdefghij\nk\n", 13), 0);
    char line[64];
    /* 7 bytes of room, no newline among them: an error, nothing consumed. */
    ASSERT_EQ(coil_stream_readline(b, line, 8), -ENOBUFS);
    ASSERT_GE(coil_stream_buffered(b), 7);
    ASSERT_EQ(coil_stream_readline(b, line, sizeof line), 11);
    ASSERT_STR_EQ(line, "abcdefghij\n");
    /* A line exactly as long as the room fits. */
    ASSERT_EQ(coil_stream_readline(b, line, 3), 2);
    ASSERT_STR_EQ(line, "k\n");
    close_pair(a, b);
    return coil_ok(NULL);
}

TEST(readline_too_long) { RUN_MAIN(line_too_long_main, NULL); }

/* A line longer than the read limit: the limit is raised while it waits. */
static coil_result long_line_main(void *arg) {
    (void)arg;
    coil_stream *a, *b;
    make_pair(&a, &b);
    ASSERT_EQ(coil_stream_set_read_limit(b, 16), 0);
    ASSERT_EQ(coil_stream_set_read_limit(b, 0), -EINVAL);
    char out[1001];
    memset(out, 'x', 999);
    out[999] = '\n';
    ASSERT_EQ(coil_stream_write(a, out, 1000), 0);
    char line[2000];
    ASSERT_EQ(coil_stream_readline(b, line, sizeof line), 1000);
    ASSERT(memcmp(line, out, 1000) == 0);
    close_pair(a, b);
    return coil_ok(NULL);
}

TEST(readline_beyond_read_limit) { RUN_MAIN(long_line_main, NULL); }

/* Length-prefixed frames, as the job workers use. */
static coil_result frames_main(void *arg) {
    (void)arg;
    coil_stream *a, *b;
    make_pair(&a, &b);
    const char *payloads[] = {"alpha", "", "gamma-delta"};
    for (int i = 0; i < 3; i++) {
        uint32_t len = (uint32_t)strlen(payloads[i]);
        struct iovec iov[2] = {{&len, 4}, {(void *)(uintptr_t)payloads[i], len}};
        ASSERT_EQ(coil_stream_writev(a, iov, 2), 0);
    }
    ASSERT_EQ(coil_stream_shutdown(a), 0);
    for (int i = 0; i < 3; i++) {
        uint32_t len;
        char body[32];
        ASSERT_EQ(coil_stream_read_exactly(b, &len, 4), 4);
        ASSERT_EQ(len, strlen(payloads[i]));
        ASSERT_EQ(coil_stream_read_exactly(b, body, len), (ssize_t)len);
        ASSERT(memcmp(body, payloads[i], len) == 0);
    }
    uint32_t len;
    ASSERT_EQ(coil_stream_read_exactly(b, &len, 4), 0); /* clean end */
    close_pair(a, b);
    return coil_ok(NULL);
}

TEST(read_exactly_frames) { RUN_MAIN(frames_main, NULL); }

static coil_result truncated_main(void *arg) {
    (void)arg;
    coil_stream *a, *b;
    make_pair(&a, &b);
    ASSERT_EQ(coil_stream_write(a, "ab", 2), 0);
    ASSERT_EQ(coil_stream_shutdown(a), 0);
    char buf[8];
    ASSERT_EQ(coil_stream_read_exactly(b, buf, 4), -ENODATA);
    ASSERT_EQ(coil_stream_buffered(b), 2); /* nothing consumed */
    ASSERT_EQ(coil_stream_read(b, buf, sizeof buf), 2);
    ASSERT(memcmp(buf, "ab", 2) == 0);
    close_pair(a, b);
    return coil_ok(NULL);
}

TEST(read_exactly_truncated) { RUN_MAIN(truncated_main, NULL); }

enum { BIG = 300 * 1000 };

static coil_result big_writer(void *arg) {
    coil_stream *s = arg;
    static unsigned char chunk[7000];
    for (size_t off = 0; off < BIG; off += sizeof chunk) {
        size_t n = BIG - off < sizeof chunk ? BIG - off : sizeof chunk;
        fill_pattern(chunk, off, n);
        ASSERT_EQ(coil_stream_write(s, chunk, n), 0);
    }
    return coil_ok(NULL);
}

/* read_exactly of more than the read limit, arriving in pieces. */
static coil_result exactly_big_main(void *arg) {
    (void)arg;
    coil_stream *a, *b;
    make_pair(&a, &b);
    ASSERT_EQ(coil_stream_set_read_limit(b, 1024), 0);
    coil_task *w = coil_spawn(big_writer, a);
    unsigned char *buf = malloc(BIG);
    ASSERT(buf != NULL);
    ASSERT_EQ(coil_stream_read_exactly(b, buf, BIG), BIG);
    for (size_t i = 0; i < BIG; i++) ASSERT_EQ(buf[i], pattern(i));
    free(buf);
    ASSERT_EQ(coil_join(w, NULL), 0);
    close_pair(a, b);
    return coil_ok(NULL);
}

TEST(read_exactly_beyond_read_limit) { RUN_MAIN(exactly_big_main, NULL); }

/* ------------------------------------------------------------------ peek */

static coil_result late_writer(void *arg) {
    coil_stream *s = arg;
    ASSERT_EQ(coil_sleep(COIL_MSEC(5)), 0);
    ASSERT_EQ(coil_stream_write(s, "de", 2), 0);
    return coil_ok(NULL);
}

static coil_result peek_main(void *arg) {
    (void)arg;
    coil_stream *a, *b;
    make_pair(&a, &b);
    ASSERT_EQ(coil_stream_write(a, "abc", 3), 0);
    const char *p;
    size_t n;
    ASSERT_EQ(coil_stream_peek_at_least(b, 3, &p, &n), 0);
    ASSERT_EQ(n, 3);
    ASSERT(memcmp(p, "abc", 3) == 0);
    ASSERT_EQ(coil_stream_buffered(b), 3); /* peek consumes nothing */
    coil_stream_consume(b, 1);
    /* Needs more than is buffered: waits for the late writer. */
    coil_task *w = coil_spawn(late_writer, a);
    ASSERT_EQ(coil_stream_peek_at_least(b, 4, &p, &n), 0);
    ASSERT_EQ(n, 4);
    ASSERT(memcmp(p, "bcde", 4) == 0);
    coil_stream_consume(b, 4);
    ASSERT_EQ(coil_stream_buffered(b), 0);
    ASSERT_EQ(coil_join(w, NULL), 0);
    /* At the end: 0 with a short length. */
    ASSERT_EQ(coil_stream_write(a, "z", 1), 0);
    ASSERT_EQ(coil_stream_shutdown(a), 0);
    ASSERT_EQ(coil_stream_peek_at_least(b, 10, &p, &n), 0);
    ASSERT_EQ(n, 1);
    ASSERT_EQ(p[0], 'z');
    coil_stream_consume(b, 1);
    ASSERT_EQ(coil_stream_peek(b, &p, &n), 0);
    ASSERT_EQ(n, 0);
    close_pair(a, b);
    return coil_ok(NULL);
}

TEST(peek_and_consume) { RUN_MAIN(peek_main, NULL); }

/* ------------------------------------------------------------------ cancellation */

typedef struct reader_arg {
    coil_stream *s;
    size_t len;
    char buf[64];
    ssize_t got;
} reader_arg;

static coil_result exact_reader(void *arg) {
    reader_arg *r = arg;
    r->got = coil_stream_read_exactly(r->s, r->buf, r->len);
    return r->got < 0 ? coil_fail((int)r->got) : coil_ok(NULL);
}

static coil_result cancel_midway_main(void *arg) {
    (void)arg;
    coil_stream *a, *b;
    make_pair(&a, &b);
    reader_arg r = {.s = b, .len = 10};
    coil_task *t = coil_spawn(exact_reader, &r);
    ASSERT_EQ(coil_stream_write(a, "01234", 5), 0);
    wait_buffered(b, 5); /* half of it arrived while the reader waits */
    coil_cancel(t);
    coil_result res;
    ASSERT_EQ(coil_join(t, &res), 0);
    ASSERT_EQ(res.err, -ECANCELED);
    ASSERT_EQ(r.got, -ECANCELED);
    /* Nothing was lost: the next read gets all of it, in order. */
    ASSERT_EQ(coil_stream_write(a, "56789", 5), 0);
    char buf[10];
    ASSERT_EQ(coil_stream_read_exactly(b, buf, 10), 10);
    ASSERT(memcmp(buf, "0123456789", 10) == 0);
    close_pair(a, b);
    return coil_ok(NULL);
}

TEST(cancelled_read_loses_no_bytes) { RUN_MAIN(cancel_midway_main, NULL); }

static coil_result deadline_read_main(void *arg) {
    (void)arg;
    coil_stream *a, *b;
    make_pair(&a, &b);
    ASSERT_EQ(coil_stream_write(a, "par", 3), 0);
    char line[32];
    coil_scope sc;
    coil_scope_enter(&sc, coil_now() + COIL_MSEC(20));
    ASSERT_EQ(coil_stream_readline(b, line, sizeof line), -ETIMEDOUT);
    ASSERT_EQ(coil_scope_exit(&sc), -ETIMEDOUT);
    ASSERT_EQ(coil_stream_write(a, "tial\n", 5), 0);
    ASSERT_EQ(coil_stream_readline(b, line, sizeof line), 8);
    ASSERT_STR_EQ(line, "partial\n");
    close_pair(a, b);
    return coil_ok(NULL);
}

TEST(deadline_read_times_out_keeps_bytes) { RUN_MAIN(deadline_read_main, NULL); }

static coil_result cancelled_sees_cancel_main(void *arg) {
    coil_stream *b = arg;
    ASSERT_EQ(coil_sleep(COIL_SEC(60)), -ECANCELED);
    char buf[4];
    /* Level-triggered: the data is there, but the task is cancelled. */
    ASSERT_EQ(coil_stream_read(b, buf, sizeof buf), -ECANCELED);
    ASSERT_EQ(coil_stream_write(b, "x", 1), -ECANCELED);
    return coil_ok(NULL);
}

static coil_result cancel_level_main(void *arg) {
    (void)arg;
    coil_stream *a, *b;
    make_pair(&a, &b);
    ASSERT_EQ(coil_stream_write(a, "data", 4), 0);
    const char *p;
    size_t n;
    ASSERT_EQ(coil_stream_peek_at_least(b, 4, &p, &n), 0);
    coil_task *t = coil_spawn(cancelled_sees_cancel_main, b);
    ASSERT_EQ(coil_yield(), 0); /* it runs and parks in its sleep */
    coil_cancel(t);
    coil_result res;
    ASSERT_EQ(coil_join(t, &res), 0);
    ASSERT_EQ(res.err, 0);
    ASSERT_EQ(coil_stream_buffered(b), 4);
    close_pair(a, b);
    return coil_ok(NULL);
}

TEST(cancelled_task_reads_nothing) { RUN_MAIN(cancel_level_main, NULL); }

/* ------------------------------------------------------------------ close */

typedef struct parked_arg {
    coil_stream *s;
    int err;
} parked_arg;

static coil_result parked_reader(void *arg) {
    parked_arg *p = arg;
    char buf[8];
    p->err = (int)coil_stream_read(p->s, buf, sizeof buf);
    return coil_ok(NULL);
}

static coil_result second_reader(void *arg) {
    parked_arg *p = arg;
    char buf[8];
    p->err = (int)coil_stream_read(p->s, buf, sizeof buf);
    return coil_ok(NULL);
}

static coil_result close_parked_main(void *arg) {
    (void)arg;
    coil_stream *a, *b;
    make_pair(&a, &b);
    parked_arg p = {b, 1}, q = {b, 1};
    coil_task *t = coil_spawn(parked_reader, &p);
    ASSERT_EQ(coil_sleep(COIL_MSEC(2)), 0);
    ASSERT_EQ(p.err, 1); /* still parked */
    /* One reader at a time. */
    coil_task *u = coil_spawn(second_reader, &q);
    ASSERT_EQ(coil_join(u, NULL), 0);
    ASSERT_EQ(q.err, -EBUSY);
    ASSERT_EQ(coil_stream_close(b), 0);
    ASSERT_EQ(coil_join(t, NULL), 0);
    ASSERT_EQ(p.err, -EPIPE);
    ASSERT_EQ(coil_stream_close(a), 0);
    return coil_ok(NULL);
}

TEST(close_wakes_parked_reader) { RUN_MAIN(close_parked_main, NULL); }

static coil_result blocked_writer(void *arg) {
    parked_arg *p = arg;
    static unsigned char chunk[4096];
    for (int i = 0; i < 100000; i++) {
        p->err = coil_stream_write(p->s, chunk, sizeof chunk);
        if (p->err) break;
    }
    return coil_ok(NULL);
}

/* The peer never reads: the writer parks on back-pressure, and close cannot
 * drain, so its deadline makes it drop the queue. */
static coil_result close_parked_writer_main(void *arg) {
    (void)arg;
    coil_stream *a, *b;
    make_pair(&a, &b);
    parked_arg p = {a, 1};
    coil_task *t = coil_spawn(blocked_writer, &p);
    for (int i = 0; i < 5000 && coil_stream_write_queue_size(a) <= 64 * 1024; i++)
        ASSERT_EQ(coil_sleep(COIL_MSEC(1)), 0);
    ASSERT(coil_stream_write_queue_size(a) > 64 * 1024);
    ASSERT_EQ(p.err, 0); /* parked in a write */
    coil_scope sc;
    coil_scope_enter(&sc, coil_now() + COIL_MSEC(20));
    ASSERT_EQ(coil_stream_close(a), -ETIMEDOUT);
    ASSERT_EQ(coil_scope_exit(&sc), -ETIMEDOUT);
    ASSERT_EQ(coil_join(t, NULL), 0);
    ASSERT_EQ(p.err, -EPIPE);
    ASSERT_EQ(coil_stream_close(b), 0);
    return coil_ok(NULL);
}

TEST(close_wakes_parked_writer) { RUN_MAIN(close_parked_writer_main, NULL); }

/* close() delivers what was queued before it returns. */
static coil_result slow_drainer(void *arg) {
    coil_stream *s = arg;
    size_t total = 0;
    unsigned char buf[8192];
    for (;;) {
        ASSERT_EQ(coil_sleep(COIL_MSEC(1)), 0);
        ssize_t n = coil_stream_read(s, buf, sizeof buf);
        ASSERT_GE(n, 0);
        if (n == 0) break;
        for (ssize_t i = 0; i < n; i++) ASSERT_EQ(buf[i], pattern(total + (size_t)i));
        total += (size_t)n;
    }
    return coil_ok((void *)(uintptr_t)total);
}

static coil_result close_flushes_main(void *arg) {
    (void)arg;
    coil_stream *a, *b;
    make_pair(&a, &b);
    coil_task *t = coil_spawn(slow_drainer, b);
    /* Write until some of it has to wait in the queue. */
    static unsigned char chunk[8192];
    size_t sent = 0;
    while (coil_stream_write_queue_size(a) == 0 && sent < 64 * 1024 * 1024) {
        fill_pattern(chunk, sent, sizeof chunk);
        ASSERT_EQ(coil_stream_write(a, chunk, sizeof chunk), 0);
        sent += sizeof chunk;
    }
    ASSERT(coil_stream_write_queue_size(a) > 0);
    ASSERT_EQ(coil_stream_close(a), 0);
    coil_result r;
    ASSERT_EQ(coil_join(t, &r), 0);
    ASSERT_EQ((uintptr_t)r.value, sent);
    ASSERT_EQ(coil_stream_close(b), 0);
    return coil_ok(NULL);
}

TEST(close_flushes_queued_writes) { RUN_MAIN(close_flushes_main, NULL); }

static coil_result peer_gone_main(void *arg) {
    (void)arg;
    coil_stream *a, *b;
    make_pair(&a, &b);
    ASSERT_EQ(coil_stream_close(b), 0);
    int err = 0;
    for (int i = 0; i < 100 && !err; i++) err = coil_stream_write(a, "x", 1);
    ASSERT_EQ(err, -EPIPE);
    ASSERT_EQ(coil_stream_write(a, "x", 1), -EPIPE); /* sticky */
    ASSERT_EQ(coil_stream_flush(a), -EPIPE);
    char buf[4];
    ASSERT_EQ(coil_stream_read(a, buf, sizeof buf), 0);
    ASSERT_EQ(coil_stream_close(a), -EPIPE);
    return coil_ok(NULL);
}

TEST(write_to_closed_peer_fails) { RUN_MAIN(peer_gone_main, NULL); }

/* ------------------------------------------------------------------ back-pressure */

enum { FLOOD = 4 * 1024 * 1024, FLOOD_CHUNK = 32 * 1024, SMALL_LIMIT = 16 * 1024 };

typedef struct flood_arg {
    coil_stream *s;
    size_t sent;
    size_t max_queue; /* largest write queue seen after a write */
} flood_arg;

static coil_result flooder(void *arg) {
    flood_arg *f = arg;
    unsigned char *chunk = malloc(FLOOD_CHUNK);
    ASSERT(chunk != NULL);
    while (f->sent < FLOOD) {
        fill_pattern(chunk, f->sent, FLOOD_CHUNK);
        ASSERT_EQ(coil_stream_write(f->s, chunk, FLOOD_CHUNK), 0);
        f->sent += FLOOD_CHUNK;
        size_t q = coil_stream_write_queue_size(f->s);
        if (q > f->max_queue) f->max_queue = q;
    }
    free(chunk);
    ASSERT_EQ(coil_stream_flush(f->s), 0);
    ASSERT_EQ(coil_stream_write_queue_size(f->s), 0);
    return coil_ok(NULL);
}

static coil_result backpressure_main(void *arg) {
    (void)arg;
    coil_stream *a, *b;
    make_pair(&a, &b);
    ASSERT_EQ(coil_stream_set_read_limit(b, SMALL_LIMIT), 0);
    ASSERT_EQ(coil_stream_set_write_limits(a, 8, 16), -EINVAL);
    flood_arg f = {.s = a};
    coil_task *t = coil_spawn(flooder, &f);
    /* Start b reading, then stop consuming: it must stop at its limit,
     * the kernel buffers fill, and the writer must park. */
    const char *p;
    size_t n;
    ASSERT_EQ(coil_stream_peek(b, &p, &n), 0);
    ASSERT_EQ(coil_sleep(COIL_MSEC(50)), 0);
    ASSERT_LE(coil_stream_buffered(b), SMALL_LIMIT);
    ASSERT(f.sent < FLOOD);
    ASSERT_LE(f.max_queue, 64 * 1024 + FLOOD_CHUNK);
    /* Drain and check every byte. */
    unsigned char *buf = malloc(FLOOD_CHUNK);
    ASSERT(buf != NULL);
    size_t got = 0;
    while (got < FLOOD) {
        ssize_t r = coil_stream_read(b, buf, FLOOD_CHUNK);
        ASSERT(r > 0);
        ASSERT_LE(coil_stream_buffered(b), SMALL_LIMIT);
        for (ssize_t i = 0; i < r; i++) ASSERT_EQ(buf[i], pattern(got + (size_t)i));
        got += (size_t)r;
    }
    free(buf);
    ASSERT_EQ(coil_join(t, NULL), 0);
    ASSERT_LE(f.max_queue, 64 * 1024 + FLOOD_CHUNK);
    close_pair(a, b);
    return coil_ok(NULL);
}

TEST(backpressure_bounds_both_sides) { RUN_MAIN(backpressure_main, NULL); }

/* A writer parked on back-pressure times out with nothing of that write
 * sent: the peer receives exactly the bytes of the writes that returned 0. */
static coil_result deadline_write_main(void *arg) {
    (void)arg;
    coil_stream *a, *b;
    make_pair(&a, &b);
    ASSERT_EQ(coil_stream_set_write_limits(a, 1024, 0), 0);
    enum { CHUNK = 16 * 1024 };
    unsigned char *chunk = malloc(CHUNK);
    ASSERT(chunk != NULL);
    size_t accepted = 0;
    int err = 0;
    coil_scope sc;
    coil_scope_enter(&sc, coil_now() + COIL_MSEC(30));
    for (int i = 0; i < 100000 && !err; i++) {
        fill_pattern(chunk, accepted, CHUNK);
        err = coil_stream_write(a, chunk, CHUNK);
        if (!err) accepted += CHUNK;
    }
    ASSERT_EQ(coil_scope_exit(&sc), -ETIMEDOUT);
    ASSERT_EQ(err, -ETIMEDOUT);
    free(chunk);
    coil_task *t = coil_spawn(slow_drainer, b);
    ASSERT_EQ(coil_stream_shutdown(a), 0);
    coil_result r;
    ASSERT_EQ(coil_join(t, &r), 0);
    ASSERT_EQ((uintptr_t)r.value, accepted);
    close_pair(a, b);
    return coil_ok(NULL);
}

TEST(deadline_write_is_all_or_nothing) { RUN_MAIN(deadline_write_main, NULL); }

/* ------------------------------------------------------------------ unix listeners */

static void sock_path(char *buf, size_t size, const char *tag) {
    snprintf(buf, size, "/tmp/coil-test-%s-%d.sock", tag, (int)getpid());
    unlink(buf);
}

static coil_result line_echo_server(void *arg) {
    coil_listener *l = arg;
    coil_stream *s;
    ASSERT_EQ(coil_listener_accept(l, &s), 0);
    char line[128];
    ssize_t n;
    while ((n = coil_stream_readline(s, line, sizeof line)) > 0)
        ASSERT_EQ(coil_stream_write(s, line, (size_t)n), 0);
    ASSERT_EQ(n, 0);
    ASSERT_EQ(coil_stream_close(s), 0);
    return coil_ok(NULL);
}

static coil_result unix_roundtrip_main(void *arg) {
    (void)arg;
    char path[108];
    sock_path(path, sizeof path, "echo");
    coil_listener *l;
    ASSERT_EQ(coil_listen_unix(path, 0, &l), 0);
    ASSERT_EQ(access(path, F_OK), 0);
    ASSERT_EQ(coil_listener_port(l), -EINVAL);
    coil_listener *dup;
    ASSERT_EQ(coil_listen_unix(path, 0, &dup), -EADDRINUSE);
    coil_task *srv = coil_spawn(line_echo_server, l);
    coil_stream *c;
    ASSERT_EQ(coil_connect_unix(path, &c), 0);
    ASSERT_EQ(coil_stream_write(c, "ping\npong\n", 10), 0);
    char line[32];
    ASSERT_EQ(coil_stream_readline(c, line, sizeof line), 5);
    ASSERT_STR_EQ(line, "ping\n");
    ASSERT_EQ(coil_stream_readline(c, line, sizeof line), 5);
    ASSERT_STR_EQ(line, "pong\n");
    ASSERT_EQ(coil_stream_shutdown(c), 0);
    ASSERT_EQ(coil_stream_readline(c, line, sizeof line), 0);
    ASSERT_EQ(coil_join(srv, NULL), 0);
    ASSERT_EQ(coil_stream_close(c), 0);
    ASSERT_EQ(coil_listener_close(l), 0);
    ASSERT_EQ(access(path, F_OK), -1); /* the listener removed its file */
    return coil_ok(NULL);
}

TEST(unix_socket_roundtrip) { RUN_MAIN(unix_roundtrip_main, NULL); }

static coil_result unix_errors_main(void *arg) {
    (void)arg;
    char path[108];
    sock_path(path, sizeof path, "missing");
    coil_stream *c = NULL;
    ASSERT_EQ(coil_connect_unix(path, &c), -ENOENT);
    ASSERT(c == NULL);
    char longpath[200];
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = '\0';
    ASSERT_EQ(coil_connect_unix(longpath, &c), -ENAMETOOLONG);
    coil_listener *l;
    ASSERT_EQ(coil_listen_unix(longpath, 0, &l), -ENAMETOOLONG);
    return coil_ok(NULL);
}

TEST(unix_socket_errors) { RUN_MAIN(unix_errors_main, NULL); }
