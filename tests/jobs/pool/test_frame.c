/* tests/jobs/pool/test_frame.c: the pool's frame format: round trips, and
 * decoders that reject truncated, oversized and malformed input without
 * reading a byte past it (inputs sit right against a guard page). */
#include "test.h"

#include "jobs/pool/frame.h"

#include <sys/mman.h>
#include <unistd.h>

/* Copies `len` bytes so that they end exactly at a PROT_NONE page. */
typedef struct guarded {
    uint8_t *map;  /* two pages */
    size_t page;
    uint8_t *data; /* the copy */
} guarded;

static guarded guard_copy(const void *src, size_t len) {
    guarded g;
    g.page = (size_t)sysconf(_SC_PAGESIZE);
    ASSERT(len <= g.page);
    g.map = mmap(NULL, 2 * g.page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT(g.map != MAP_FAILED);
    ASSERT_EQ(mprotect(g.map + g.page, g.page, PROT_NONE), 0);
    g.data = g.map + g.page - len;
    if (len) memcpy(g.data, src, len);
    return g;
}

static void guard_free(guarded *g) { munmap(g->map, 2 * g->page); }

/* Flattens `n` iovecs into buf; returns the length. */
static size_t flatten(uint8_t *buf, size_t cap, const struct iovec *iov, int n) {
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        ASSERT(len + iov[i].iov_len <= cap);
        if (iov[i].iov_len) memcpy(buf + len, iov[i].iov_base, iov[i].iov_len);
        len += iov[i].iov_len;
    }
    return len;
}

TEST(header_round_trip) {
    uint8_t h[COIL__FRAME_HEADER];
    coil__frame_header_encode(h, COIL__FRAME_RESULT, 1234567, 0x0102030405060708ull);
    ASSERT_EQ(h[0], COIL__FRAME_MAGIC);
    ASSERT_EQ(h[4], 1234567 & 0xff); /* little-endian */
    coil__frame_hdr d;
    ASSERT_EQ(coil__frame_header_decode(h, sizeof h, COIL__FRAME_MAX, &d), 0);
    ASSERT_EQ(d.type, COIL__FRAME_RESULT);
    ASSERT_EQ(d.length, 1234567);
    ASSERT(d.id == 0x0102030405060708ull);
}

TEST(header_rejects_bad_input) {
    uint8_t h[COIL__FRAME_HEADER];
    coil__frame_hdr d;
    coil__frame_header_encode(h, COIL__FRAME_RUN, 100, 1);
    for (size_t n = 0; n < sizeof h; n++) /* truncated */
        ASSERT_EQ(coil__frame_header_decode(h, n, COIL__FRAME_MAX, &d), -EAGAIN);
    ASSERT_EQ(coil__frame_header_decode(h, sizeof h, 99, &d), -EMSGSIZE); /* oversized */
    ASSERT_EQ(coil__frame_header_decode(h, sizeof h, 100, &d), 0);
    coil__frame_header_encode(h, COIL__FRAME_RUN, 0xffffffffu, 1);
    ASSERT_EQ(coil__frame_header_decode(h, sizeof h, COIL__FRAME_MAX, &d), -EMSGSIZE);
    coil__frame_header_encode(h, COIL__FRAME_RUN, 1, 1);
    h[0] ^= 1; /* magic */
    ASSERT_EQ(coil__frame_header_decode(h, sizeof h, COIL__FRAME_MAX, &d), -EPROTO);
    h[0] ^= 1;
    h[1] = 0; /* type */
    ASSERT_EQ(coil__frame_header_decode(h, sizeof h, COIL__FRAME_MAX, &d), -EPROTO);
    h[1] = COIL__FRAME_RESULT + 1;
    ASSERT_EQ(coil__frame_header_decode(h, sizeof h, COIL__FRAME_MAX, &d), -EPROTO);
    h[1] = COIL__FRAME_RUN;
    h[3] = 1; /* flags */
    ASSERT_EQ(coil__frame_header_decode(h, sizeof h, COIL__FRAME_MAX, &d), -EPROTO);
}

TEST(frame_decode_needs_whole_frame) {
    uint8_t buf[COIL__FRAME_HEADER + 5];
    coil__frame_header_encode(buf, COIL__FRAME_PROGRESS, 5, 9);
    memcpy(buf + COIL__FRAME_HEADER, "\x32" "abcd", 5);
    for (size_t n = 0; n <= sizeof buf; n++) {
        guarded g = guard_copy(buf, n);
        coil__frame_hdr d;
        const uint8_t *payload = NULL;
        ssize_t r = coil__frame_decode(g.data, n, COIL__FRAME_MAX, &d, &payload);
        if (n < sizeof buf) {
            ASSERT_EQ(r, -EAGAIN);
        } else {
            ASSERT_EQ(r, (ssize_t)sizeof buf);
            ASSERT(payload == g.data + COIL__FRAME_HEADER);
            int pct;
            const char *msg;
            size_t mlen;
            ASSERT_EQ(coil__frame_progress_decode(payload, d.length, &pct, &msg, &mlen), 0);
            ASSERT_EQ(pct, 50);
            ASSERT_EQ(mlen, 4);
            ASSERT(memcmp(msg, "abcd", 4) == 0);
        }
        guard_free(&g);
    }
}

TEST(run_round_trip_and_truncation) {
    const char payload[] = "{\"rows\": 3}";
    coil__frame_run run = {.max_address_space = 1ull << 33, .max_cpu_seconds = 7,
                           .kind = "report.pdf", .kind_len = 10, .attempt = 3,
                           .label = "0123abcd", .label_len = 8,
                           .payload = (const uint8_t *)payload, .payload_len = sizeof payload - 1};
    uint8_t fixed[COIL__FRAME_RUN_FIXED], buf[256];
    struct iovec iov[4];
    int n = coil__frame_run_encode(fixed, iov, &run);
    ASSERT_EQ(n, 4);
    size_t len = flatten(buf, sizeof buf, iov, n);
    guarded g = guard_copy(buf, len);
    coil__frame_run d;
    ASSERT_EQ(coil__frame_run_decode(g.data, len, &d), 0);
    ASSERT(d.max_address_space == 1ull << 33);
    ASSERT_EQ(d.max_cpu_seconds, 7);
    ASSERT_EQ(d.kind_len, 10);
    ASSERT(memcmp(d.kind, "report.pdf", 10) == 0);
    ASSERT_EQ(d.attempt, 3);
    ASSERT_EQ(d.label_len, 8);
    ASSERT(memcmp(d.label, "0123abcd", 8) == 0);
    ASSERT_EQ(d.payload_len, sizeof payload - 1);
    ASSERT(memcmp(d.payload, payload, d.payload_len) == 0);
    guard_free(&g);
    /* Cut before the end of the kind: rejected; cut in the payload: a
     * shorter payload, which the frame length decides. */
    for (size_t cut = 0; cut < COIL__FRAME_RUN_FIXED + 10; cut++) {
        g = guard_copy(buf, cut);
        ASSERT_EQ(coil__frame_run_decode(g.data, cut, &d), -EPROTO);
        guard_free(&g);
    }
}

TEST(run_rejects_bad_kinds) {
    uint8_t fixed[COIL__FRAME_RUN_FIXED];
    struct iovec iov[4];
    coil__frame_run run = {.kind = "", .kind_len = 0};
    ASSERT_EQ(coil__frame_run_encode(fixed, iov, &run), -EINVAL);
    char big[COIL_JOB_KIND_MAX + 2];
    memset(big, 'k', sizeof big);
    run.kind = big;
    run.kind_len = sizeof big;
    ASSERT_EQ(coil__frame_run_encode(fixed, iov, &run), -EINVAL);
    run.kind_len = 1;
    run.payload_len = COIL__FRAME_MAX;
    ASSERT_EQ(coil__frame_run_encode(fixed, iov, &run), -EMSGSIZE);
    /* A decoded kind length of 0, or over the maximum, is refused too. */
    uint8_t raw[COIL__FRAME_RUN_FIXED + 80];
    memset(raw, 'k', sizeof raw);
    coil__frame_run d;
    raw[18] = 0, raw[19] = 0; /* no label */
    raw[12] = 0, raw[13] = 0;
    ASSERT_EQ(coil__frame_run_decode(raw, sizeof raw, &d), -EPROTO);
    raw[12] = COIL_JOB_KIND_MAX + 1;
    ASSERT_EQ(coil__frame_run_decode(raw, sizeof raw, &d), -EPROTO);
    raw[12] = COIL_JOB_KIND_MAX;
    ASSERT_EQ(coil__frame_run_decode(raw, sizeof raw, &d), 0);
    ASSERT_EQ(d.payload_len, sizeof raw - COIL__FRAME_RUN_FIXED - COIL_JOB_KIND_MAX);
    /* A label over its maximum, or past the frame's end, is refused. */
    raw[18] = (COIL__FRAME_LABEL_MAX + 1) & 0xff, raw[19] = (COIL__FRAME_LABEL_MAX + 1) >> 8;
    ASSERT_EQ(coil__frame_run_decode(raw, sizeof raw, &d), -EPROTO);
    raw[19] = 0;
    raw[18] = 80 - COIL_JOB_KIND_MAX + 1;
    ASSERT_EQ(coil__frame_run_decode(raw, sizeof raw, &d), -EPROTO);
    raw[18] = 80 - COIL_JOB_KIND_MAX;
    ASSERT_EQ(coil__frame_run_decode(raw, sizeof raw, &d), 0);
    ASSERT_EQ(d.payload_len, 0);
}

TEST(result_round_trip_and_bounds) {
    coil__frame_result res = {.status = -22, .content_type = "application/pdf", .ctype_len = 15,
                              .error = "bad rows", .error_len = 8,
                              .data = (const uint8_t *)"%PDF-1.5", .data_len = 8};
    uint8_t fixed[COIL__FRAME_RESULT_FIXED], buf[256];
    struct iovec iov[4];
    int n = coil__frame_result_encode(fixed, iov, &res);
    ASSERT_EQ(n, 4);
    size_t len = flatten(buf, sizeof buf, iov, n);
    guarded g = guard_copy(buf, len);
    coil__frame_result d;
    ASSERT_EQ(coil__frame_result_decode(g.data, len, &d), 0);
    ASSERT_EQ(d.status, -22);
    ASSERT(d.ctype_len == 15 && memcmp(d.content_type, "application/pdf", 15) == 0);
    ASSERT(d.error_len == 8 && memcmp(d.error, "bad rows", 8) == 0);
    ASSERT(d.data_len == 8 && memcmp(d.data, "%PDF-1.5", 8) == 0);
    guard_free(&g);
    /* Strings that claim more than there is. */
    for (size_t cut = 0; cut < COIL__FRAME_RESULT_FIXED + 15 + 8; cut++) {
        g = guard_copy(buf, cut);
        ASSERT_EQ(coil__frame_result_decode(g.data, cut, &d), -EPROTO);
        guard_free(&g);
    }
    buf[4] = 0xff, buf[5] = 0xff; /* content type 65535 bytes */
    ASSERT_EQ(coil__frame_result_decode(buf, len, &d), -EPROTO);
}

TEST(small_frames_reject_bad_fields) {
    int pct;
    const char *msg;
    size_t mlen;
    uint8_t p[COIL_JOB_MESSAGE_MAX + 2] = {101};
    ASSERT_EQ(coil__frame_progress_decode(p, 1, &pct, &msg, &mlen), -EPROTO);
    p[0] = 100;
    ASSERT_EQ(coil__frame_progress_decode(p, 0, &pct, &msg, &mlen), -EPROTO);
    ASSERT_EQ(coil__frame_progress_decode(p, sizeof p, &pct, &msg, &mlen), -EPROTO);
    ASSERT_EQ(coil__frame_progress_decode(p, sizeof p - 1, &pct, &msg, &mlen), 0);
    uint32_t pid;
    uint8_t h[5] = {0};
    ASSERT_EQ(coil__frame_hello_decode(h, 4, &pid), -EPROTO); /* pid 0 */
    coil__put_u32(h, 4242);
    ASSERT_EQ(coil__frame_hello_decode(h, 3, &pid), -EPROTO);
    ASSERT_EQ(coil__frame_hello_decode(h, 5, &pid), -EPROTO);
    ASSERT_EQ(coil__frame_hello_decode(h, 4, &pid), 0);
    ASSERT_EQ(pid, 4242);
    coil__put_u32(h, 0x80000000u);
    ASSERT_EQ(coil__frame_hello_decode(h, 4, &pid), -EPROTO);
}

/* xorshift64*: a deterministic stream for the fuzz loop. */
static uint64_t rng(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* Decodes `buf` every way the pool would, checking that every view lies
 * inside it. */
static void decode_all(const uint8_t *buf, size_t len) {
    coil__frame_hdr d;
    const uint8_t *payload;
    ssize_t r = coil__frame_decode(buf, len, COIL__FRAME_MAX, &d, &payload);
    if (r < 0) return;
    ASSERT((size_t)r <= len);
    const uint8_t *end = payload + d.length;
    coil__frame_run run;
    if (coil__frame_run_decode(payload, d.length, &run) == 0)
        ASSERT((const uint8_t *)run.kind >= payload && run.payload + run.payload_len == end);
    coil__frame_result res;
    if (coil__frame_result_decode(payload, d.length, &res) == 0)
        ASSERT(res.data >= payload && res.data + res.data_len == end);
    int pct;
    const char *msg;
    size_t mlen;
    if (coil__frame_progress_decode(payload, d.length, &pct, &msg, &mlen) == 0)
        ASSERT(pct >= 0 && pct <= 100 && (const uint8_t *)msg + mlen == end);
}

TEST(random_input_never_escapes) {
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    uint8_t buf[96];
    for (int i = 0; i < 200000; i++) {
        size_t len = rng(&seed) % sizeof buf;
        for (size_t j = 0; j < len; j++) buf[j] = (uint8_t)rng(&seed);
        if (len >= COIL__FRAME_HEADER && (i & 1)) { /* a valid header, random body */
            uint32_t body = (uint32_t)(len - COIL__FRAME_HEADER);
            coil__frame_header_encode(buf, (coil__frame_type)(1 + rng(&seed) % 5), body, 1);
        }
        if (i % 1000 == 0) { /* some against the guard page */
            guarded g = guard_copy(buf, len);
            decode_all(g.data, len);
            guard_free(&g);
        } else {
            decode_all(buf, len);
        }
    }
}
