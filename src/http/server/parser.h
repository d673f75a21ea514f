/* http/server/parser.h: the request parser and the request's memory (server core).
 *
 * Two pieces, both free of sockets so that tests and the fuzzer drive them
 * with plain byte strings:
 *
 *   the arena (request.c): a bump allocator whose first chunk is reused
 *       request after request, so that a request costs no malloc at all in
 *       the common case. Everything a request points to (its header block,
 *       header table, decoded path, route parameters, ID) lives there until
 *       the request ends.
 *
 *   the parser (parser.c): llhttp with every lenient flag off, wrapped in
 *       a header-block scanner that enforces the limits and the framing
 *       rules llhttp leaves to its caller. See parser.c for the design.
 *
 * The request struct is defined here because the parser fills it; the
 * accessors of include/coil/http.h that read it are in request.c.
 */
#ifndef COIL_HTTP_PARSER_H
#define COIL_HTTP_PARSER_H

#include "http/internal.h"
#include "llhttp.h"

/* ------------------------------------------------------------------ arena */

typedef struct coil__arena_chunk {
    struct coil__arena_chunk *next; /* older chunk, NULL for the first */
    size_t cap;                     /* bytes at data */
    size_t used;                    /* bytes handed out */
    bool owned;                     /* malloc'd by the arena (else the caller's) */
    _Alignas(16) char data[];       /* the memory handed out */
} coil__arena_chunk;

typedef struct coil__arena {
    coil__arena_chunk *head;        /* the chunk allocations come from */
    coil__arena_chunk *first;       /* kept across resets */
} coil__arena;

/* Sets up an arena whose first chunk is `buf` (caller's, `size` bytes,
 * 16-byte aligned; may be NULL/0: the first allocation mallocs one). */
void coil__arena_init(coil__arena *a, void *buf, size_t size);
/* Returns `n` bytes aligned to 8, or NULL on ENOMEM. */
void *coil__arena_alloc(coil__arena *a, size_t n);
/* Copies `n` bytes of `s` and a NUL. Returns NULL on ENOMEM. */
char *coil__arena_strndup(coil__arena *a, const char *s, size_t n);
/* Forgets every allocation; frees every chunk but the first. */
void coil__arena_reset(coil__arena *a);
/* Frees every chunk the arena allocated. */
void coil__arena_free(coil__arena *a);

/* ------------------------------------------------------------------ request */

typedef struct coil__http_header {
    const char *name;               /* NUL-terminated, in the arena */
    const char *value;              /* NUL-terminated, trimmed, in the arena */
    uint32_t name_len, value_len;
} coil__http_header;

typedef struct coil__http_param {
    struct coil__http_param *next;  /* newer parameters first */
    const char *name, *value;       /* NUL-terminated, in the arena */
} coil__http_param;

typedef struct coil__http_work {
    struct coil__http_work *next;   /* in registration order */
    coil_fn fn;                     /* background work, run after the response */
    void *arg;
} coil__http_work;

struct coil_http_request {
    coil__arena *arena;             /* the connection's arena: this request's memory */
    coil_http_server *server;       /* where it arrived */
    const char *method;             /* static string ("GET") */
    const char *path;               /* decoded, no query */
    const char *query;              /* raw, after '?', "" if none */
    coil__http_header *headers;     /* in arrival order */
    size_t nheaders;
    const char *body;               /* the whole body (parser's buffer), NULL if none */
    size_t body_len;
    coil__http_param *params;       /* route parameters */
    const char *id;                 /* request ID, NULL until set */
    const char *peer;               /* the connection's peer address ("" if none) */
    const char *client;             /* coil_http_client_addr's answer, once asked (arena) */
    coil__http_work *work, **work_tail; /* background work, in order */
    coil_time start;                /* when its first byte was seen */
    uint64_t content_length;        /* declared body length (not chunked) */
    uint8_t llmethod;               /* llhttp_method_t */
    uint8_t minor;                  /* 0 or 1 */
    bool head;                      /* HEAD: the response carries no body */
    bool keep_alive;                /* the connection may serve another request */
    bool chunked;                   /* the body is chunked */
    bool expect_continue;           /* Expect: 100-continue */
};

/* Looks a header up by name (case-insensitive, `len` bytes). */
const coil__http_header *coil__http_find_header(const coil_http_request *req, const char *name,
                                                size_t len);
/* Splits the target into path (percent-decoded into the arena) and query.
 * Returns 0, -EINVAL for a malformed target, or -ENOMEM. */
int coil__http_request_set_target(coil_http_request *req, char *url, size_t len);
/* Clears `req` for a new request that uses `arena`. */
void coil__http_request_init(coil_http_request *req, coil__arena *arena, coil_http_server *srv);

/* ------------------------------------------------------------------ parser */

/* What coil__http_parser_feed() found. */
enum {
    COIL__HTTP_MORE = 0,  /* needs more bytes (see `need`) */
    COIL__HTTP_DONE = 1,  /* a whole request is ready */
    COIL__HTTP_ERROR = 2, /* bad request: answer `status` and close */
};

/* Where the parser is within the current request. */
enum {
    COIL__HTTP_PHASE_HEAD = 0, /* waiting for the whole header block */
    COIL__HTTP_PHASE_BODY,     /* the body is streaming in */
    COIL__HTTP_PHASE_DONE,     /* request complete */
    COIL__HTTP_PHASE_ERROR,    /* failed; feed again returns the error */
};

/* The limits a parser enforces (from coil_http_config). */
typedef struct coil__http_limits {
    size_t max_request_line;        /* longer: 414 */
    size_t max_header_bytes;        /* longer header block: 431 */
    size_t max_headers;             /* more header lines: 431 */
    size_t max_body;                /* larger body: 413 */
} coil__http_limits;

typedef struct coil__http_parser {
    llhttp_t ll;                    /* llhttp's state; ll.data == this */
    coil__http_limits lim;
    coil_http_request *req;         /* the request being filled */
    uint8_t phase;                  /* COIL__HTTP_PHASE_* */
    int status;                     /* the answer for an error, 0 if none */
    const char *why;                /* what went wrong (static text) */

    /* Header block scan (head phase). Offsets are from the first byte fed;
     * bytes not consumed are fed again, so they stay valid. */
    size_t scanned;                 /* bytes already scanned */
    size_t skip;                    /* leading empty lines, skipped */
    size_t line;                    /* start of the line being scanned */
    size_t reqline_end;             /* just past the request line, 0 before */
    size_t nlines;                  /* header lines seen */

    /* llhttp callbacks over the head (a copy in the arena). */
    char *url;                      /* request target span */
    size_t url_len;
    size_t nheaders;                /* entries of req->headers filled */
    bool in_value;                  /* the last span was a value */

    /* Body. */
    char *body;                     /* malloc'd, reused across requests */
    size_t body_len, body_cap;
    const char *frame;              /* chunked: framing checked up to here */
    size_t frame_run;               /* framing bytes since the last data */
    bool frame_cr;                  /* last framing byte was a CR */
    bool frame_lf;                  /* last framing byte was an LF */
} coil__http_parser;

/* Sets a parser up (no allocation). */
void coil__http_parser_init(coil__http_parser *p, const coil__http_limits *lim);
/* Starts a new request, to be filled into `req` (already initialised). */
void coil__http_parser_begin(coil__http_parser *p, coil_http_request *req);
/* Frees the body buffer. */
void coil__http_parser_free(coil__http_parser *p);

/* Feeds the bytes the connection holds, starting at the first byte not
 * yet consumed. Stores in *used how many the caller may now consume:
 *
 *   COIL__HTTP_MORE   more bytes are needed. In the head phase nothing is
 *                     consumed (*used == 0): feed the same bytes again with
 *                     more after them. In the body phase all are consumed.
 *   COIL__HTTP_DONE   the request is complete; *used ends it (pipelined
 *                     bytes after it stay for the next request).
 *   COIL__HTTP_ERROR  p->status is the answer (400, 413, 414, 431, 417,
 *                     501, 505); the connection must close.
 *
 * Does not suspend. */
int coil__http_parser_feed(coil__http_parser *p, const char *data, size_t len, size_t *used);

#endif
