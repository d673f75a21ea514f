/* http/server/parser.c: HTTP/1.1 requests from bytes, with limits and no sockets.
 *
 * The connection feeds the bytes it holds; the parser says how many it may
 * consume and whether a request is ready. Two stages, one per phase:
 *
 *   head  A scanner of our own walks the header block line by line as the
 *         bytes arrive, without consuming them, until the blank line that
 *         ends it. It enforces what must be decided on raw bytes before
 *         any parsing: the request line's length (414), the header block's
 *         size and line count (431), and the line framing llhttp would let
 *         through or that a front proxy might read differently: every line
 *         ends in CRLF (no bare LF, no bare CR) and no line starts with
 *         whitespace (obs-fold). Only when the block is complete and valid
 *         is it copied, in one memcpy, into the request's arena and handed
 *         to llhttp in one call: llhttp's spans (URL, header names and
 *         values) then all point into that copy, and are NUL-terminated in
 *         place once llhttp has passed them. No per-header copy, no
 *         reassembly of spans split across reads, and the whole block is
 *         bounded by the limits before a byte of it is parsed.
 *
 *         Then the semantics llhttp leaves to us: the version (1.0 or 1.1;
 *         0.9 gets 400, 2+ gets 505), Host (exactly one in 1.1; never two),
 *         Transfer-Encoding (exactly "chunked", once, not in 1.0: else 501
 *         or 400), Expect (100-continue or 417), CONNECT (501), and the
 *         body size from Content-Length (413 before a byte is read).
 *         llhttp itself, with every lenient flag off, rejects
 *         Content-Length with Transfer-Encoding, duplicate Content-Length,
 *         invalid header bytes and the rest of the grammar.
 *
 *   body  Bytes go straight to llhttp, which pauses at the end of the
 *         message so pipelined requests are parsed one at a time. Content
 *         goes to the parser's body buffer (reused across requests). For
 *         chunked bodies the bytes between data spans (chunk-size lines,
 *         extensions, trailers) get the same CRLF and obs-fold checks as
 *         the head, and each chunk size is checked against the body limit
 *         before its data arrives. Trailers are parsed and dropped.
 *
 * Any error sets `status` (the answer) and `why`, and the parser stays
 * failed: the connection answers and closes.
 */
#include "http/server/parser.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum {
    BODY_KEEP = 64 * 1024, /* a body buffer larger than this is freed between requests */
};

/* ------------------------------------------------------------------ errors */

/* Fails the parser. Returns COIL__HTTP_ERROR. */
static int fail(coil__http_parser *p, int status, const char *why) {
    if (!p->status) {
        p->status = status;
        p->why = why;
    }
    p->phase = COIL__HTTP_PHASE_ERROR;
    return COIL__HTTP_ERROR;
}

/* From a callback: fails and stops llhttp. */
static int cb_fail(coil__http_parser *p, int status, const char *why) {
    fail(p, status, why);
    return HPE_USER;
}

/* Maps what llhttp_execute() returned to our answer. */
static int fail_llhttp(coil__http_parser *p, llhttp_errno_t err) {
    if (p->status) return fail(p, p->status, p->why);
    const char *why = llhttp_get_error_reason(&p->ll);
    if (!why) why = llhttp_errno_name(err);
    if (err == HPE_INVALID_TRANSFER_ENCODING) return fail(p, 501, why);
    return fail(p, 400, why);
}

/* ------------------------------------------------------------------ llhttp callbacks */

static int on_url(llhttp_t *ll, const char *at, size_t len) {
    coil__http_parser *p = ll->data;
    if (p->url && p->url + p->url_len != at) return cb_fail(p, 400, "split request target");
    if (!p->url) p->url = (char *)at;
    p->url_len += len;
    return 0;
}

static int on_header_field(llhttp_t *ll, const char *at, size_t len) {
    coil__http_parser *p = ll->data;
    if (p->phase != COIL__HTTP_PHASE_HEAD) return 0; /* a trailer: dropped */
    coil_http_request *req = p->req;
    if (p->nheaders && !p->in_value) { /* continues the last name */
        coil__http_header *h = &req->headers[p->nheaders - 1];
        if (h->name + h->name_len != at) return cb_fail(p, 400, "split header name");
        h->name_len += (uint32_t)len;
        return 0;
    }
    if (p->nheaders == p->nlines) return cb_fail(p, 400, "header count mismatch");
    coil__http_header *h = &req->headers[p->nheaders++];
    h->name = at;
    h->name_len = (uint32_t)len;
    h->value = "";
    h->value_len = 0;
    p->in_value = false;
    return 0;
}

static int on_header_value(llhttp_t *ll, const char *at, size_t len) {
    coil__http_parser *p = ll->data;
    if (p->phase != COIL__HTTP_PHASE_HEAD) return 0;
    if (p->nheaders == 0) return cb_fail(p, 400, "value without a name");
    coil__http_header *h = &p->req->headers[p->nheaders - 1];
    if (p->in_value && h->value_len) {
        if (h->value + h->value_len != at) return cb_fail(p, 400, "folded header value");
        h->value_len += (uint32_t)len;
    } else {
        h->value = at;
        h->value_len = (uint32_t)len;
    }
    p->in_value = true;
    return 0;
}

static int on_header_value_complete(llhttp_t *ll) {
    coil__http_parser *p = ll->data;
    p->in_value = true; /* an empty value has no span: the next field is a new header */
    return 0;
}

static int on_headers_complete(llhttp_t *ll) {
    coil__http_parser *p = ll->data;
    if (p->phase != COIL__HTTP_PHASE_HEAD) return cb_fail(p, 400, "unexpected headers");
    return HPE_PAUSED; /* the semantics are checked before the body is read */
}

/* Checks the framing bytes [from, to) of a chunked body: CRLF line ends
 * only, no line starting with whitespace, bounded runs. Returns 0 or -1. */
static int check_frame(coil__http_parser *p, const char *from, const char *to) {
    for (const char *c = from; c < to; c++) {
        if (p->frame_cr) {
            if (*c != '\n') return fail(p, 400, "bare CR in chunked framing"), -1;
            p->frame_cr = false;
            p->frame_lf = true;
        } else if (*c == '\r') {
            p->frame_cr = true;
        } else if (*c == '\n') {
            return fail(p, 400, "bare LF in chunked framing"), -1;
        } else {
            if (p->frame_lf && (*c == ' ' || *c == '\t'))
                return fail(p, 400, "obs-fold in chunked framing"), -1;
            p->frame_lf = false;
        }
    }
    p->frame_run += (size_t)(to - from);
    if (p->frame_run > p->lim.max_header_bytes)
        return fail(p, 431, "chunk framing or trailers too large"), -1;
    return 0;
}

/* Makes room for `n` more body bytes. Returns 0 or -1. */
static int body_reserve(coil__http_parser *p, size_t n) {
    if (p->body_cap - p->body_len >= n) return 0;
    size_t cap = p->body_cap ? p->body_cap : 1024;
    while (cap - p->body_len < n) cap *= 2;
    if (cap > p->lim.max_body && p->body_len + n <= p->lim.max_body) cap = p->lim.max_body;
    char *b = realloc(p->body, cap);
    if (!b) return fail(p, 500, "out of memory"), -1;
    p->body = b;
    p->body_cap = cap;
    return 0;
}

static int on_body(llhttp_t *ll, const char *at, size_t len) {
    coil__http_parser *p = ll->data;
    if (p->req->chunked) {
        if (check_frame(p, p->frame, at)) return HPE_USER;
        if (p->frame_cr) return cb_fail(p, 400, "bare CR before chunk data");
        p->frame = at + len;
        p->frame_run = 0;
        p->frame_lf = false;
    }
    if (len > p->lim.max_body - p->body_len) return cb_fail(p, 413, "body too large");
    if (body_reserve(p, len)) return HPE_USER;
    memcpy(p->body + p->body_len, at, len);
    p->body_len += len;
    return 0;
}

static int on_chunk_header(llhttp_t *ll) {
    coil__http_parser *p = ll->data;
    /* ll->content_length is the announced chunk size: refuse it now. */
    if (ll->content_length > p->lim.max_body - p->body_len) {
        fail(p, 413, "body too large");
        return -1;
    }
    return 0;
}

static int on_message_complete(llhttp_t *ll) {
    coil__http_parser *p = ll->data;
    p->phase = COIL__HTTP_PHASE_DONE;
    return HPE_PAUSED; /* one request at a time: pipelined bytes wait */
}

static const llhttp_settings_t settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_chunk_header = on_chunk_header,
    .on_message_complete = on_message_complete,
};

/* ------------------------------------------------------------------ life */

void coil__http_parser_init(coil__http_parser *p, const coil__http_limits *lim) {
    memset(p, 0, sizeof *p);
    p->lim = *lim;
    llhttp_init(&p->ll, HTTP_REQUEST, &settings);
    /* Off is llhttp's default; said out loud because it is the point. */
    llhttp_set_lenient_headers(&p->ll, 0);
    llhttp_set_lenient_chunked_length(&p->ll, 0);
    llhttp_set_lenient_keep_alive(&p->ll, 0);
    llhttp_set_lenient_transfer_encoding(&p->ll, 0);
    p->ll.data = p;
}

void coil__http_parser_begin(coil__http_parser *p, coil_http_request *req) {
    /* Between messages: a fresh start forgets the last one's pause,
     * Connection: close or upgrade, which the connection has handled. */
    llhttp_reset(&p->ll);
    if (p->body_cap > BODY_KEEP) {
        free(p->body);
        p->body = NULL;
        p->body_cap = 0;
    }
    p->req = req;
    p->phase = COIL__HTTP_PHASE_HEAD;
    p->status = 0;
    p->why = NULL;
    p->scanned = p->skip = p->line = p->reqline_end = p->nlines = 0;
    p->url = NULL;
    p->url_len = 0;
    p->nheaders = 0;
    p->in_value = false;
    p->body_len = 0;
    p->frame = NULL;
    p->frame_run = 0;
    p->frame_cr = p->frame_lf = false;
}

void coil__http_parser_free(coil__http_parser *p) {
    free(p->body);
    p->body = NULL;
    p->body_cap = p->body_len = 0;
}

/* ------------------------------------------------------------------ head scan */

/* Whether data[from, to) holds a CR. */
static bool has_cr(const char *data, size_t from, size_t to) {
    return to > from && memchr(data + from, '\r', to - from) != NULL;
}

/* One complete line data[p->line, at] (at is its LF). Returns 1 when it is
 * the blank line ending the block, 0 to go on, or COIL__HTTP_ERROR. */
static int scan_line(coil__http_parser *p, const char *data, size_t at, size_t checked) {
    if (at == p->line || data[at - 1] != '\r') return fail(p, 400, "bare LF");
    size_t len = at - 1 - p->line; /* without the CRLF */
    size_t from = checked > p->line ? checked - 1 : p->line;
    if (has_cr(data, from, at - 1)) return fail(p, 400, "bare CR");
    if (!p->reqline_end) {
        if (len == 0) { /* an empty line before the request line: skipped */
            p->skip = at + 1;
            if (p->skip > p->lim.max_request_line) return fail(p, 400, "too many empty lines");
            return 0;
        }
        if (len > p->lim.max_request_line) return fail(p, 414, "request line too long");
        p->reqline_end = at + 1;
        return 0;
    }
    if (at + 1 - p->reqline_end > p->lim.max_header_bytes)
        return fail(p, 431, "header block too large");
    if (len == 0) return 1;
    if (data[p->line] == ' ' || data[p->line] == '\t') return fail(p, 400, "obs-fold");
    if (++p->nlines > p->lim.max_headers) return fail(p, 431, "too many headers");
    return 0;
}

/* Scans data[p->scanned, len). Returns 1 with *end just past the blank
 * line, 0 if the block is not complete yet, or COIL__HTTP_ERROR. */
static int scan_head(coil__http_parser *p, const char *data, size_t len, size_t *end) {
    size_t checked = p->scanned, pos = p->scanned;
    const char *nl;
    while (pos < len && (nl = memchr(data + pos, '\n', len - pos)) != NULL) {
        size_t at = (size_t)(nl - data);
        int r = scan_line(p, data, at, checked);
        if (r) {
            *end = at + 1;
            return r;
        }
        p->line = pos = checked = at + 1;
    }
    /* A partial line: bound it now rather than when it ends. */
    if (!p->reqline_end) {
        if (len - p->line > p->lim.max_request_line + 1)
            return fail(p, 414, "request line too long");
    } else if (len - p->reqline_end > p->lim.max_header_bytes) {
        return fail(p, 431, "header block too large");
    }
    /* A CR is fine only as the last byte so far (its LF may follow). */
    size_t from = checked > p->line ? checked - 1 : p->line;
    if (len > 0 && has_cr(data, from, len - 1)) return fail(p, 400, "bare CR");
    p->scanned = len;
    return 0;
}

/* ------------------------------------------------------------------ head semantics */

/* Whether the first `n` bytes of `s` are a token (RFC 9110) name. */
static bool name_ok(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] == ' ' || s[i] == '\t') return false;
    return n > 0;
}

/* NUL-terminates the spans llhttp found, in the arena copy. */
static int terminate_spans(coil__http_parser *p) {
    coil_http_request *req = p->req;
    if (!p->url || p->url_len == 0) return fail(p, 400, "no request target");
    for (size_t i = 0; i < p->nheaders; i++) {
        coil__http_header *h = &req->headers[i];
        if (!name_ok(h->name, h->name_len)) return fail(p, 400, "whitespace in header name");
        ((char *)h->name)[h->name_len] = '\0';
        while (h->value_len && (h->value[h->value_len - 1] == ' ' ||
                                h->value[h->value_len - 1] == '\t'))
            h->value_len--;
        if (h->value_len) ((char *)h->value)[h->value_len] = '\0';
        else h->value = "";
    }
    req->nheaders = p->nheaders;
    p->url[p->url_len] = '\0';
    return 0;
}

/* Header rules llhttp leaves to its caller. */
static int check_headers(coil__http_parser *p) {
    coil_http_request *req = p->req;
    size_t hosts = 0, tes = 0;
    const char *te = NULL;
    for (size_t i = 0; i < req->nheaders; i++) {
        const coil__http_header *h = &req->headers[i];
        if (h->name_len == 4 && strcasecmp(h->name, "host") == 0) {
            hosts++;
        } else if (h->name_len == 17 && strcasecmp(h->name, "transfer-encoding") == 0) {
            tes++;
            te = h->value;
        } else if (h->name_len == 6 && strcasecmp(h->name, "expect") == 0) {
            if (strcasecmp(h->value, "100-continue") != 0) return fail(p, 417, "unknown Expect");
            req->expect_continue = req->minor == 1;
        }
    }
    if (hosts > 1) return fail(p, 400, "several Host headers");
    if (hosts == 0 && req->minor == 1) return fail(p, 400, "no Host header");
    if (tes || (p->ll.flags & F_TRANSFER_ENCODING)) {
        if (req->minor == 0) return fail(p, 400, "Transfer-Encoding in HTTP/1.0");
        if (tes != 1 || strcasecmp(te, "chunked") != 0)
            return fail(p, 501, "unsupported Transfer-Encoding");
    }
    return 0;
}

/* Sets the body up from the framing headers. */
static int prepare_body(coil__http_parser *p) {
    coil_http_request *req = p->req;
    req->chunked = (p->ll.flags & F_CHUNKED) != 0;
    if (req->chunked || !(p->ll.flags & F_CONTENT_LENGTH)) return 0;
    req->content_length = p->ll.content_length;
    if (req->content_length > p->lim.max_body) return fail(p, 413, "body too large");
    if (req->content_length && body_reserve(p, (size_t)req->content_length)) return COIL__HTTP_ERROR;
    return 0;
}

/* Everything decided once the head is parsed. */
static int finish_head(coil__http_parser *p) {
    coil_http_request *req = p->req;
    llhttp_t *ll = &p->ll;
    if (ll->http_major != 1) {
        if (ll->http_major == 0) return fail(p, 400, "HTTP/0.9");
        return fail(p, 505, "HTTP version not supported");
    }
    if (ll->http_minor > 1) return fail(p, 505, "HTTP version not supported");
    req->minor = ll->http_minor;
    req->llmethod = ll->method;
    req->method = llhttp_method_name((llhttp_method_t)ll->method);
    req->head = ll->method == HTTP_HEAD;
    if (ll->method == HTTP_CONNECT) return fail(p, 501, "CONNECT not supported");
    if (terminate_spans(p) || check_headers(p) || prepare_body(p)) return COIL__HTTP_ERROR;
    int err = coil__http_request_set_target(req, p->url, p->url_len);
    if (err == -ENOMEM) return fail(p, 500, "out of memory");
    if (err) return fail(p, 400, "bad request target");
    req->keep_alive = llhttp_should_keep_alive(ll) &&
                      !((ll->flags & F_UPGRADE) && (ll->flags & F_CONNECTION_UPGRADE));
    return 0;
}

/* Copies the complete head data[skip, end) into the arena and parses it. */
static int parse_head(coil__http_parser *p, const char *data, size_t end) {
    coil_http_request *req = p->req;
    size_t n = end - p->skip;
    char *copy = coil__arena_alloc(req->arena, n + 1);
    req->headers = coil__arena_alloc(req->arena, (p->nlines ? p->nlines : 1) * sizeof *req->headers);
    if (!copy || !req->headers) return fail(p, 500, "out of memory");
    memcpy(copy, data + p->skip, n);
    copy[n] = '\0';
    llhttp_errno_t err = llhttp_execute(&p->ll, copy, n);
    if (err != HPE_PAUSED) return err == HPE_OK ? fail(p, 400, "incomplete head") : fail_llhttp(p, err);
    if (llhttp_get_error_pos(&p->ll) != copy + n) return fail(p, 400, "head framing mismatch");
    llhttp_resume(&p->ll);
    if (finish_head(p)) return COIL__HTTP_ERROR;
    p->phase = COIL__HTTP_PHASE_BODY;
    return 0;
}

/* ------------------------------------------------------------------ feeding */

/* Body phase: hands data to llhttp until the message ends. */
static int feed_body(coil__http_parser *p, const char *data, size_t len, size_t *used) {
    coil_http_request *req = p->req;
    p->frame = data;
    llhttp_errno_t err = llhttp_execute(&p->ll, data, len);
    const char *stop = err == HPE_OK ? data + len : llhttp_get_error_pos(&p->ll);
    bool done = (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) &&
                p->phase == COIL__HTTP_PHASE_DONE;
    if (err != HPE_OK && !done) return fail_llhttp(p, err);
    if (req->chunked && check_frame(p, p->frame, stop)) return COIL__HTTP_ERROR;
    *used = (size_t)(stop - data);
    if (!done) return COIL__HTTP_MORE;
    if (p->frame_cr) return fail(p, 400, "bare CR in chunked framing");
    req->body = p->body_len ? p->body : NULL;
    req->body_len = p->body_len;
    return COIL__HTTP_DONE;
}

int coil__http_parser_feed(coil__http_parser *p, const char *data, size_t len, size_t *used) {
    *used = 0;
    switch (p->phase) {
    case COIL__HTTP_PHASE_HEAD: {
        COIL_ASSERT(len >= p->scanned);
        size_t end = 0;
        int r = scan_head(p, data, len, &end);
        if (r != 1) return r; /* MORE or ERROR */
        if (parse_head(p, data, end)) return COIL__HTTP_ERROR;
        size_t rest = 0;
        r = feed_body(p, data + end, len - end, &rest);
        if (r != COIL__HTTP_ERROR) *used = end + rest;
        return r;
    }
    case COIL__HTTP_PHASE_BODY:
        return feed_body(p, data, len, used);
    case COIL__HTTP_PHASE_DONE:
        return COIL__HTTP_DONE;
    default:
        return COIL__HTTP_ERROR;
    }
}
