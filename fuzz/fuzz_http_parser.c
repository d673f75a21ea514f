/* fuzz/fuzz_http_parser.c: libFuzzer harness for the HTTP request parser.
 *
 * Feeds bytes to the connection's request state machine without sockets,
 * exactly as a connection does: the bytes arrive in pieces, those the
 * parser does not consume are fed again with the next piece, and
 * pipelined requests are parsed one after another until the input ends or
 * a request is refused. Every request that parses is read back through the
 * accessors handlers use (path, query, headers, query parameters, body).
 *
 * The first input byte chooses small limits (so that every limit is hit)
 * and the size of the pieces; the rest is the byte stream.
 *
 *   make fuzz            builds it and runs it for FUZZ_TIME seconds (60)
 *                        over the seeds in fuzz/corpus/http/
 */
#include "http/server/parser.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The parser's COIL_ASSERT calls this; the rest of libcoil is not linked. */
void coil__panic(const char *file, int line, const char *msg) {
    fprintf(stderr, "%s:%d: %s\n", file, line, msg);
    abort();
}

/* Reads a request back the way handlers do; checks what must hold. */
static void inspect(coil_http_request *req) {
    volatile size_t sink = 0;
    const char *m = coil_http_method(req), *path = coil_http_path(req), *q = coil_http_query(req);
    if (!m || !path || !q) abort();
    sink += strlen(m) + strlen(path) + strlen(q);
    if (path[0] != '/' && strcmp(path, "*") != 0) abort();
    size_t n = coil_http_header_count(req);
    for (size_t i = 0; i < n; i++) {
        const char *name, *value;
        if (coil_http_header_at(req, i, &name, &value)) abort();
        if (!name[0] || strpbrk(name, " \t\r\n:") || strpbrk(value, "\r\n")) abort();
        if (coil_http_header(req, name) == NULL) abort();
        sink += strlen(value);
    }
    char buf[32];
    coil_http_query_param(req, "a", buf, sizeof buf);
    coil_http_query_param(req, "q", buf, 4);
    size_t blen;
    const char *body = coil_http_body(req, &blen);
    if (blen && !body) abort();
    for (size_t i = 0; i < blen; i += 512) sink += (unsigned char)body[i];
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    uint8_t knobs = data[0];
    const char *in = (const char *)data + 1;
    size_t len = size - 1;
    coil__http_limits lim = {8192, 16384, 100, 1 << 20};
    if (knobs & 1) lim = (coil__http_limits){64, 128, 4, 32};
    size_t step = (knobs >> 1) == 0 ? len : (size_t)(knobs >> 1); /* piece size */

    static _Alignas(16) char first[1024];
    coil__arena arena;
    coil__arena_init(&arena, first, sizeof first);
    coil__http_parser p;
    coil__http_parser_init(&p, &lim);
    coil_http_request req;

    size_t start = 0, have = step < len ? step : len;
    for (int requests = 0; requests < 64 && start < len; requests++) {
        coil__arena_reset(&arena);
        coil__http_request_init(&req, &arena, NULL);
        coil__http_parser_begin(&p, &req);
        int r;
        for (;;) {
            if (have < start) have = start;
            size_t used = 0;
            r = coil__http_parser_feed(&p, in + start, have - start, &used);
            if (used > have - start) abort();
            start += used;
            if (r != COIL__HTTP_MORE || have == len) break;
            have = have + step < len ? have + step : len;
        }
        if (r == COIL__HTTP_DONE) {
            inspect(&req);
            if (!req.keep_alive) break; /* the connection would close */
            continue;
        }
        if (r == COIL__HTTP_ERROR) {
            int s = p.status;
            if (s != 400 && s != 413 && s != 414 && s != 417 && s != 431 && s != 500 &&
                s != 501 && s != 505)
                abort();
        }
        break;
    }
    coil__http_parser_free(&p);
    coil__arena_free(&arena);
    return 0;
}
