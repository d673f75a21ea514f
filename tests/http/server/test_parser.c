/* tests/http/server/test_parser.c: the request parser on byte strings, without
 * sockets: requests, pipelining, every split point of a request, chunked
 * bodies, each limit and each request-smuggling shape, versions, targets
 * and query parameters, and input placed right against a guard page. */
#include "test.h"

#include "http/server/parser.h"

#include <sys/mman.h>
#include <unistd.h>

/* A parser, its request and arena, driven as a connection would drive it. */
typedef struct fixture {
    coil__http_parser p;
    coil__arena arena;
    coil_http_request req;
    _Alignas(16) char arena_buf[2048];
} fixture;

static const coil__http_limits defaults = {8192, 16384, 100, 1 << 20};

static void fx_init(fixture *f, const coil__http_limits *lim) {
    coil__arena_init(&f->arena, f->arena_buf, sizeof f->arena_buf);
    coil__http_parser_init(&f->p, lim ? lim : &defaults);
}

static void fx_begin(fixture *f) {
    coil__arena_reset(&f->arena);
    coil__http_request_init(&f->req, &f->arena, NULL);
    coil__http_parser_begin(&f->p, &f->req);
}

static void fx_free(fixture *f) {
    coil__http_parser_free(&f->p);
    coil__arena_free(&f->arena);
}

/* Feeds data[0, len) arriving `step` bytes at a time (0: all at once), the
 * way a connection does: bytes not consumed are fed again with the next
 * ones. Returns the parser's verdict on the first request; *consumed is
 * how many bytes it consumed in all. */
static int feed_steps(fixture *f, const char *data, size_t len, size_t step, size_t *consumed) {
    size_t start = 0, have = step && step < len ? step : len;
    for (;;) {
        size_t used = 0;
        int r = coil__http_parser_feed(&f->p, data + start, have - start, &used);
        ASSERT(used <= have - start);
        start += used;
        if (r != COIL__HTTP_MORE || have == len) {
            if (consumed) *consumed = start;
            return r;
        }
        have = have + step < len ? have + step : len;
    }
}

/* Parses one request given whole; returns the verdict. */
static int parse1(fixture *f, const char *s) {
    fx_begin(f);
    return feed_steps(f, s, strlen(s), 0, NULL);
}

/* The status a request gets (0 when it parses). */
static int status_of(const char *s, const coil__http_limits *lim) {
    fixture f;
    fx_init(&f, lim);
    int r = parse1(&f, s);
    int status = r == COIL__HTTP_ERROR ? f.p.status : r == COIL__HTTP_DONE ? 0 : -1;
    fx_free(&f);
    return status;
}

/* ------------------------------------------------------------------ requests */

TEST(simple_get) {
    fixture f;
    fx_init(&f, NULL);
    const char *s = "GET /hello/world?x=1&y=two HTTP/1.1\r\nHost: example\r\n"
                    "User-Agent:   test/1.0  \r\nX-Empty:\r\nAccept: */*\r\n\r\n";
    size_t used;
    fx_begin(&f);
    ASSERT_EQ(feed_steps(&f, s, strlen(s), 0, &used), COIL__HTTP_DONE);
    ASSERT_EQ(used, strlen(s));
    coil_http_request *req = &f.req;
    ASSERT_STR_EQ(coil_http_method(req), "GET");
    ASSERT_STR_EQ(coil_http_path(req), "/hello/world");
    ASSERT_STR_EQ(coil_http_query(req), "x=1&y=two");
    ASSERT_EQ(coil_http_minor_version(req), 1);
    ASSERT(req->keep_alive);
    ASSERT(!req->head);
    ASSERT_EQ(coil_http_header_count(req), 4);
    ASSERT_STR_EQ(coil_http_header(req, "host"), "example");
    ASSERT_STR_EQ(coil_http_header(req, "USER-AGENT"), "test/1.0");
    ASSERT_STR_EQ(coil_http_header(req, "x-empty"), "");
    ASSERT(coil_http_header(req, "missing") == NULL);
    const char *name, *value;
    ASSERT_EQ(coil_http_header_at(req, 3, &name, &value), 0);
    ASSERT_STR_EQ(name, "Accept");
    ASSERT_STR_EQ(value, "*/*");
    ASSERT_EQ(coil_http_header_at(req, 4, &name, &value), -ENOENT);
    size_t blen = 99;
    ASSERT(coil_http_body(req, &blen) == NULL);
    ASSERT_EQ(blen, 0);
    fx_free(&f);
}

TEST(post_with_content_length) {
    fixture f;
    fx_init(&f, NULL);
    const char *s = "POST /submit HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world";
    ASSERT_EQ(parse1(&f, s), COIL__HTTP_DONE);
    size_t len;
    const char *body = coil_http_body(&f.req, &len);
    ASSERT_EQ(len, 11);
    ASSERT(memcmp(body, "hello world", 11) == 0);
    ASSERT_STR_EQ(coil_http_method(&f.req), "POST");
    fx_free(&f);
}

TEST(leading_empty_lines_are_skipped) {
    ASSERT_EQ(status_of("\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", NULL), 0);
}

TEST(head_request) {
    fixture f;
    fx_init(&f, NULL);
    ASSERT_EQ(parse1(&f, "HEAD /x HTTP/1.1\r\nHost: h\r\n\r\n"), COIL__HTTP_DONE);
    ASSERT(f.req.head);
    ASSERT_STR_EQ(coil_http_method(&f.req), "HEAD");
    fx_free(&f);
}

/* Splits one request at every byte boundary, and feeds it byte by byte:
 * the result never depends on how the bytes arrive. */
static void check_every_split(const char *s, const char *path, const char *body) {
    size_t len = strlen(s);
    for (size_t cut = 0; cut <= len; cut++) {
        fixture f;
        fx_init(&f, NULL);
        fx_begin(&f);
        size_t used = 0;
        int r = COIL__HTTP_MORE;
        if (cut > 0) {
            r = coil__http_parser_feed(&f.p, s, cut, &used);
            ASSERT(r != COIL__HTTP_ERROR);
        }
        if (r == COIL__HTTP_MORE) {
            size_t more = 0;
            r = coil__http_parser_feed(&f.p, s + used, len - used, &more);
            used += more;
        }
        if (r != COIL__HTTP_DONE)
            coil_test_fail(__FILE__, __LINE__, "cut at %zu: %d %d %s", cut, r, f.p.status,
                           f.p.why ? f.p.why : "");
        ASSERT_EQ(used, len);
        ASSERT_STR_EQ(coil_http_path(&f.req), path);
        size_t blen;
        const char *b = coil_http_body(&f.req, &blen);
        ASSERT_EQ(blen, strlen(body));
        ASSERT(blen == 0 || memcmp(b, body, blen) == 0);
        ASSERT_STR_EQ(coil_http_header(&f.req, "x-tag"), "v");
        fx_free(&f);
    }
    fixture f;
    fx_init(&f, NULL);
    fx_begin(&f);
    size_t used;
    ASSERT_EQ(feed_steps(&f, s, len, 1, &used), COIL__HTTP_DONE);
    ASSERT_EQ(used, len);
    fx_free(&f);
}

TEST(every_split_point_plain) {
    check_every_split("GET /split/me?q=1 HTTP/1.1\r\nHost: h\r\nX-Tag: v\r\n\r\n", "/split/me", "");
}

TEST(every_split_point_content_length) {
    check_every_split("PUT /p HTTP/1.1\r\nHost: h\r\nX-Tag: v\r\nContent-Length: 10\r\n\r\n0123456789",
                      "/p", "0123456789");
}

TEST(every_split_point_chunked) {
    check_every_split("POST /c HTTP/1.1\r\nHost: h\r\nX-Tag: v\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "3\r\nabc\r\nA;ext=1\r\n0123456789\r\n0\r\nTrailer: t\r\n\r\n",
                      "/c", "abc0123456789");
}

TEST(pipelining_three_in_one_buffer) {
    const char *s = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
                    "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz"
                    "GET /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    fixture f;
    fx_init(&f, NULL);
    const char *paths[3] = {"/a", "/b", "/c"};
    size_t off = 0, len = strlen(s);
    for (int i = 0; i < 3; i++) {
        fx_begin(&f);
        size_t used;
        ASSERT_EQ(coil__http_parser_feed(&f.p, s + off, len - off, &used), COIL__HTTP_DONE);
        ASSERT_STR_EQ(coil_http_path(&f.req), paths[i]);
        if (i == 1) {
            size_t blen;
            const char *b = coil_http_body(&f.req, &blen);
            ASSERT_EQ(blen, 3);
            ASSERT(memcmp(b, "xyz", 3) == 0);
        }
        ASSERT_EQ(f.req.keep_alive, i < 2);
        off += used;
    }
    ASSERT_EQ(off, len);
    fx_free(&f);
}

TEST(chunked_body) {
    fixture f;
    fx_init(&f, NULL);
    const char *s = "POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "5\r\nhello\r\n1;name=\"q\"\r\n \r\nb\r\nchunky body\r\n0\r\n\r\n";
    ASSERT_EQ(parse1(&f, s), COIL__HTTP_DONE);
    ASSERT(f.req.chunked);
    size_t blen;
    const char *b = coil_http_body(&f.req, &blen);
    ASSERT_EQ(blen, 17);
    ASSERT(memcmp(b, "hello chunky body", 17) == 0);
    fx_free(&f);
}

TEST(chunked_empty_body) {
    ASSERT_EQ(status_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                        NULL),
              0);
}

/* ------------------------------------------------------------------ limits */

/* "<prefix><n times c><suffix>" */
static char *build(const char *prefix, char c, size_t n, const char *suffix) {
    size_t a = strlen(prefix), b = strlen(suffix);
    char *s = malloc(a + n + b + 1);
    ASSERT(s != NULL);
    memcpy(s, prefix, a);
    memset(s + a, c, n);
    memcpy(s + a + n, suffix, b + 1);
    return s;
}

TEST(request_line_too_long_414) {
    char *ok = build("GET /", 'a', 8192 - 20, " HTTP/1.1\r\nHost: h\r\n\r\n");
    ASSERT_EQ(status_of(ok, NULL), 0);
    char *big = build("GET /", 'a', 9000, " HTTP/1.1\r\nHost: h\r\n\r\n");
    ASSERT_EQ(status_of(big, NULL), 414);
    /* Refused before the line even ends. */
    char *open = build("GET /", 'a', 9000, "");
    ASSERT_EQ(status_of(open, NULL), 414);
    free(ok);
    free(big);
    free(open);
}

TEST(header_block_too_large_431) {
    char *big = build("GET / HTTP/1.1\r\nHost: h\r\nX-Big: ", 'b', 17000, "\r\n\r\n");
    ASSERT_EQ(status_of(big, NULL), 431);
    char *open = build("GET / HTTP/1.1\r\nHost: h\r\nX-Big: ", 'b', 17000, "");
    ASSERT_EQ(status_of(open, NULL), 431);
    char *ok = build("GET / HTTP/1.1\r\nHost: h\r\nX-Big: ", 'b', 15000, "\r\n\r\n");
    ASSERT_EQ(status_of(ok, NULL), 0);
    free(big);
    free(open);
    free(ok);
}

static char *many_headers(size_t n) {
    size_t cap = 64 + n * 24;
    char *s = malloc(cap);
    ASSERT(s != NULL);
    size_t len = (size_t)snprintf(s, cap, "GET / HTTP/1.1\r\nHost: h\r\n");
    for (size_t i = 1; i < n; i++) len += (size_t)snprintf(s + len, cap - len, "X-H%zu: v\r\n", i);
    snprintf(s + len, cap - len, "\r\n");
    return s;
}

TEST(too_many_headers_431) {
    char *ok = many_headers(100);
    ASSERT_EQ(status_of(ok, NULL), 0);
    char *big = many_headers(101);
    ASSERT_EQ(status_of(big, NULL), 431);
    free(ok);
    free(big);
}

TEST(body_too_large_413_from_content_length) {
    coil__http_limits lim = defaults;
    lim.max_body = 100;
    /* Decided from the header: no body byte needed. */
    fixture f;
    fx_init(&f, &lim);
    size_t used;
    fx_begin(&f);
    const char *s = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n";
    ASSERT_EQ(feed_steps(&f, s, strlen(s), 0, &used), COIL__HTTP_ERROR);
    ASSERT_EQ(f.p.status, 413);
    fx_free(&f);
    ASSERT_EQ(status_of("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999\r\n\r\n", NULL),
              413);
    char *ok = build("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n", 'x', 100, "");
    ASSERT_EQ(status_of(ok, &lim), 0);
    free(ok);
}

TEST(body_too_large_413_chunked) {
    coil__http_limits lim = defaults;
    lim.max_body = 10;
    ASSERT_EQ(status_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "6\r\nabcdef\r\n6\r\nabcdef\r\n0\r\n\r\n",
                        &lim),
              413);
    /* A chunk announcing too much is refused before its data arrives. */
    ASSERT_EQ(status_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nfff\r\n",
                        &lim),
              413);
    ASSERT_EQ(status_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "5\r\nabcde\r\n5\r\nabcde\r\n0\r\n\r\n",
                        &lim),
              0);
}

/* ------------------------------------------------------------------ smuggling shapes */

TEST(content_length_with_transfer_encoding_400) {
    ASSERT_EQ(status_of("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", NULL),
              400);
    ASSERT_EQ(status_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                        "Content-Length: 3\r\n\r\n0\r\n\r\n", NULL),
              400);
}

TEST(duplicate_content_length_400) {
    ASSERT_EQ(status_of("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
                        NULL),
              400);
}

TEST(differing_content_length_400) {
    ASSERT_EQ(status_of("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
                        NULL),
              400);
    ASSERT_EQ(status_of("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 4\r\n\r\nabcd", NULL), 400);
    ASSERT_EQ(status_of("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\nabc", NULL), 400);
    ASSERT_EQ(status_of("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x3\r\n\r\nabc", NULL), 400);
}

TEST(obs_fold_400) {
    ASSERT_EQ(status_of("GET / HTTP/1.1\r\nHost: h\r\nX-A: one\r\n two\r\n\r\n", NULL), 400);
    ASSERT_EQ(status_of("GET / HTTP/1.1\r\nHost: h\r\nX-A: one\r\n\ttwo\r\n\r\n", NULL), 400);
    ASSERT_EQ(status_of("GET / HTTP/1.1\r\n Host: h\r\n\r\n", NULL), 400);
}

TEST(bare_cr_400) {
    ASSERT_EQ(status_of("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n", NULL), 400);
    ASSERT_EQ(status_of("GET / HTTP/1.1\rHost: h\r\n\r\n", NULL), 400);
    ASSERT_EQ(status_of("GET /a\rb HTTP/1.1\r\nHost: h\r\n\r\n", NULL), 400);
    ASSERT_EQ(status_of("GET / HTTP/1.1\r\nHost: h\r\r\n\r\n", NULL), 400);
}

TEST(bare_lf_400) {
    ASSERT_EQ(status_of("GET / HTTP/1.1\nHost: h\n\n", NULL), 400);
    ASSERT_EQ(status_of("GET / HTTP/1.1\r\nHost: h\r\n\n", NULL), 400);
    ASSERT_EQ(status_of("GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n", NULL), 400);
}

TEST(invalid_chunk_sizes_400) {
    static const char *const bad[] = {"zz\r\nabc\r\n0\r\n\r\n", "-3\r\nabc\r\n0\r\n\r\n",
                                      "0x3\r\nabc\r\n0\r\n\r\n", "3 \r\nabc\r\n0\r\n\r\n",
                                      "\r\nabc\r\n0\r\n\r\n",
                                      "10000000000000003\r\nabc\r\n0\r\n\r\n",
                                      "3\r\nabcX\r\n0\r\n\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char s[256];
        snprintf(s, sizeof s, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n%s",
                 bad[i]);
        int st = status_of(s, NULL);
        if (st != 400) coil_test_fail(__FILE__, __LINE__, "chunk %zu: status %d", i, st);
    }
}

TEST(chunked_framing_bare_cr_lf_and_fold_400) {
    const char *head = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
    static const char *const bad[] = {"3;a\rb\r\nabc\r\n0\r\n\r\n", "3\nabc\n0\n\n",
                                      "3\r\nabc\r\n0\n\n", "3\r\nabc\r\n0\r\nX: y\r\n z\r\n\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char s[256];
        snprintf(s, sizeof s, "%s%s", head, bad[i]);
        int st = status_of(s, NULL);
        if (st != 400) coil_test_fail(__FILE__, __LINE__, "framing %zu: status %d", i, st);
    }
}

TEST(transfer_encoding_other_than_chunked_501) {
    const char *tes[] = {"gzip", "gzip, chunked", "chunked, gzip", "identity", "chunked;q=1"};
    for (size_t i = 0; i < sizeof tes / sizeof tes[0]; i++) {
        char s[256];
        snprintf(s, sizeof s, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: %s\r\n\r\n0\r\n\r\n",
                 tes[i]);
        int st = status_of(s, NULL);
        if (st != 501 && st != 400) coil_test_fail(__FILE__, __LINE__, "TE %s: %d", tes[i], st);
        if (i < 3) ASSERT_EQ(st, 501);
    }
    int twice = status_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                          "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", NULL);
    ASSERT(twice == 400 || twice == 501);
    ASSERT_EQ(status_of("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", NULL), 400);
    ASSERT_EQ(status_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n",
                        NULL),
              0);
}

TEST(whitespace_before_colon_400) {
    ASSERT_EQ(status_of("GET / HTTP/1.1\r\nHost : h\r\n\r\n", NULL), 400);
    ASSERT_EQ(status_of("GET / HTTP/1.1\r\nHost: h\r\nX-A\t: 1\r\n\r\n", NULL), 400);
}

TEST(invalid_bytes_400) {
    ASSERT_EQ(status_of("GET / HTTP/1.1\r\nHost: a\001b\r\n\r\n", NULL), 400);
    ASSERT_EQ(status_of("GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", NULL), 400);
    ASSERT_EQ(status_of("FOO / HTTP/1.1\r\nHost: h\r\n\r\n", NULL), 400);
    ASSERT_EQ(status_of("GET / HTTP/1.1\r\nHo\x7fst: h\r\n\r\n", NULL), 400);
    char nul[] = "GET / HTTP/1.1\r\nHost: h\r\nX: a?b\r\n\r\n";
    nul[strlen("GET / HTTP/1.1\r\nHost: h\r\nX: a")] = '\0';
    fixture f;
    fx_init(&f, NULL);
    fx_begin(&f);
    ASSERT_EQ(feed_steps(&f, nul, sizeof nul - 1, 0, NULL), COIL__HTTP_ERROR);
    ASSERT_EQ(f.p.status, 400);
    fx_free(&f);
}

/* ------------------------------------------------------------------ versions and headers */

TEST(http10_keep_alive_rules) {
    fixture f;
    fx_init(&f, NULL);
    ASSERT_EQ(parse1(&f, "GET / HTTP/1.0\r\n\r\n"), COIL__HTTP_DONE);
    ASSERT_EQ(coil_http_minor_version(&f.req), 0);
    ASSERT(!f.req.keep_alive);
    ASSERT_EQ(parse1(&f, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), COIL__HTTP_DONE);
    ASSERT(f.req.keep_alive);
    ASSERT_EQ(parse1(&f, "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"), COIL__HTTP_DONE);
    ASSERT(!f.req.keep_alive);
    ASSERT_EQ(parse1(&f, "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: ws\r\n\r\n"),
              COIL__HTTP_DONE);
    ASSERT(!f.req.keep_alive);
    fx_free(&f);
}

TEST(versions) {
    ASSERT_EQ(status_of("GET / HTTP/2.0\r\nHost: h\r\n\r\n", NULL), 505);
    int v12 = status_of("GET / HTTP/1.2\r\nHost: h\r\n\r\n", NULL);
    ASSERT(v12 == 505 || v12 == 400);
    ASSERT_EQ(status_of("GET /\r\n\r\n", NULL), 400);
    ASSERT_EQ(status_of("GET / HTTP/1.1\r\n\r\n", NULL), 400); /* no Host */
    ASSERT_EQ(status_of("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", NULL), 400);
    ASSERT_EQ(status_of("CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n", NULL), 501);
}

TEST(expect_continue) {
    fixture f;
    fx_init(&f, NULL);
    fx_begin(&f);
    const char *s = "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 4\r\n\r\n";
    size_t used;
    ASSERT_EQ(feed_steps(&f, s, strlen(s), 0, &used), COIL__HTTP_MORE);
    ASSERT_EQ(used, strlen(s));
    ASSERT(f.req.expect_continue);
    ASSERT_EQ(f.p.phase, COIL__HTTP_PHASE_BODY);
    ASSERT_EQ(coil__http_parser_feed(&f.p, "data", 4, &used), COIL__HTTP_DONE);
    ASSERT_EQ(used, 4);
    fx_free(&f);
    ASSERT_EQ(status_of("POST / HTTP/1.1\r\nHost: h\r\nExpect: something\r\n\r\n", NULL), 417);
}

/* ------------------------------------------------------------------ targets */

TEST(targets) {
    fixture f;
    fx_init(&f, NULL);
    ASSERT_EQ(parse1(&f, "GET /a%20b/c%2Fd?x=%41 HTTP/1.1\r\nHost: h\r\n\r\n"), COIL__HTTP_DONE);
    ASSERT_STR_EQ(coil_http_path(&f.req), "/a b/c/d");
    ASSERT_STR_EQ(coil_http_query(&f.req), "x=%41");
    ASSERT_EQ(parse1(&f, "GET http://example.com:80/p/q?z HTTP/1.1\r\nHost: h\r\n\r\n"),
              COIL__HTTP_DONE);
    ASSERT_STR_EQ(coil_http_path(&f.req), "/p/q");
    ASSERT_STR_EQ(coil_http_query(&f.req), "z");
    ASSERT_EQ(parse1(&f, "GET http://example.com HTTP/1.1\r\nHost: h\r\n\r\n"), COIL__HTTP_DONE);
    ASSERT_STR_EQ(coil_http_path(&f.req), "/");
    ASSERT_EQ(parse1(&f, "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"), COIL__HTTP_DONE);
    ASSERT_STR_EQ(coil_http_path(&f.req), "*");
    ASSERT_EQ(parse1(&f, "GET /only HTTP/1.1\r\nHost: h\r\n\r\n"), COIL__HTTP_DONE);
    ASSERT_STR_EQ(coil_http_query(&f.req), "");
    fx_free(&f);
    ASSERT_EQ(status_of("GET /a%00b HTTP/1.1\r\nHost: h\r\n\r\n", NULL), 400);
    ASSERT_EQ(status_of("GET /a%zz HTTP/1.1\r\nHost: h\r\n\r\n", NULL), 400);
    ASSERT_EQ(status_of("GET /a%4 HTTP/1.1\r\nHost: h\r\n\r\n", NULL), 400);
}

TEST(query_params) {
    fixture f;
    fx_init(&f, NULL);
    ASSERT_EQ(parse1(&f, "GET /?ms=250&name=a+b%21&flag&empty=&ms=9 HTTP/1.1\r\nHost: h\r\n\r\n"),
              COIL__HTTP_DONE);
    char buf[16];
    ASSERT_EQ(coil_http_query_param(&f.req, "ms", buf, sizeof buf), 3);
    ASSERT_STR_EQ(buf, "250");
    ASSERT_EQ(coil_http_query_param(&f.req, "name", buf, sizeof buf), 4);
    ASSERT_STR_EQ(buf, "a b!");
    ASSERT_EQ(coil_http_query_param(&f.req, "flag", buf, sizeof buf), 0);
    ASSERT_STR_EQ(buf, "");
    ASSERT_EQ(coil_http_query_param(&f.req, "empty", buf, sizeof buf), 0);
    ASSERT_EQ(coil_http_query_param(&f.req, "nope", buf, sizeof buf), -ENOENT);
    ASSERT_EQ(coil_http_query_param(&f.req, "name", buf, 4), -ENOBUFS);
    ASSERT_EQ(coil_http_query_param(&f.req, "name", buf, 5), 4);
    fx_free(&f);
}

TEST(params_and_id) {
    fixture f;
    fx_init(&f, NULL);
    ASSERT_EQ(parse1(&f, "GET /titles/42 HTTP/1.1\r\nHost: h\r\n\r\n"), COIL__HTTP_DONE);
    ASSERT(coil_http_param(&f.req, "id") == NULL);
    ASSERT_EQ(coil__http_request_add_param(&f.req, "idx", 2, "42zz", 2), 0);
    ASSERT_STR_EQ(coil_http_param(&f.req, "id"), "42");
    ASSERT(coil_http_request_id(&f.req) == NULL);
    ASSERT_EQ(coil__http_request_set_id(&f.req, "abc"), 0);
    ASSERT_STR_EQ(coil_http_request_id(&f.req), "abc");
    fx_free(&f);
}

TEST(arena_grows_and_resets) {
    coil__arena a;
    char buf[256] __attribute__((aligned(16)));
    coil__arena_init(&a, buf, sizeof buf);
    char *small = coil__arena_alloc(&a, 16);
    ASSERT(small >= buf && small < buf + sizeof buf);
    char *big = coil__arena_alloc(&a, 10000);
    ASSERT(big != NULL && (big < buf || big >= buf + sizeof buf));
    memset(big, 1, 10000);
    char *s = coil__arena_strndup(&a, "hello", 3);
    ASSERT_STR_EQ(s, "hel");
    coil__arena_reset(&a);
    ASSERT(coil__arena_alloc(&a, 16) == small);
    coil__arena_free(&a);
}

/* ------------------------------------------------------------------ guard page */

/* Places each input so that its last byte is the last byte before a
 * PROT_NONE page: any read past the end faults. */
TEST(input_against_guard_page) {
    long page = sysconf(_SC_PAGESIZE);
    char *mem = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                     -1, 0);
    ASSERT(mem != MAP_FAILED);
    ASSERT_EQ(mprotect(mem + page, (size_t)page, PROT_NONE), 0);
    static const char *const inputs[] = {
        "GET / HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\n\r",
        "GET / HTTP/1.1\r\nHost: h\r",
        "GET /%4",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nab",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: y\r\n\r",
        "GET /?a=%4",
        "\r",
    };
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        size_t len = strlen(inputs[i]);
        char *at = mem + page - len;
        memcpy(at, inputs[i], len);
        for (size_t step = 1; step <= len; step = step * 2 + 1) {
            fixture f;
            fx_init(&f, NULL);
            fx_begin(&f);
            int r = feed_steps(&f, at, len, step, NULL);
            if (r == COIL__HTTP_DONE) {
                char buf[8];
                coil_http_query_param(&f.req, "a", buf, sizeof buf);
            }
            fx_free(&f);
        }
    }
    munmap(mem, (size_t)page * 2);
}
