/* app/kinds.h: the job kinds `coil serve` offers over HTTP.
 *
 * Each kind has a handler, registered with COIL_JOB_HANDLER in its source
 * file (kinds_demo.c, kind_report.c) and run in a worker process, and a
 * validator, which the server calls on the parsed payload before it stores
 * the job, so that a payload of the wrong shape is answered 422 at once
 * rather than failing in a worker. Handlers validate again (they can be
 * handed any bytes) and fail with -EINVAL and the validator's message.
 *
 * Payloads and results, all JSON objects unless said otherwise:
 *
 *   demo.noop    any object                     -> {}
 *   demo.sleep   {"ms": 0..600000}               -> {"slept_ms": N}
 *   demo.wait    {"ms": 0..600000}               -> {"waited_ms": N} (awaits)
 *   demo.cpu     {"ms": 0..600000}               -> {"ms": N, "iterations": I}
 *   demo.crash   any object                      -> dies of SIGSEGV (unsafe)
 *   demo.append  {"path": "/abs", "line": "..."} -> {} (unsafe)
 *   report.pdf   {"title", "subtitle"?, "rows": [{"label", "value"}...],
 *                 "images"?: [PNG URL, ...]}     -> application/pdf
 *
 * The table and the registrations live in the kind*.c files, compiled into
 * an object library so that the registering constructors are always linked.
 */
#ifndef COIL_APP_KINDS_H
#define COIL_APP_KINDS_H

#include <coil/coil.h>
#include <stdbool.h>
#include <stddef.h>

/* One job kind coil serve offers over HTTP. */
typedef struct app_kind {
    const char *name; /* "report.pdf" */
    bool unsafe;      /* only with --demo-unsafe */
    /* Checks a parsed JSON payload (a json_t *, jansson) before enqueue.
     * Returns 0, or -EINVAL with a message in msg (cap bytes) -> the server
     * answers 422. Does not keep `json`. */
    int (*validate)(const void *json, char *msg, size_t cap);
} app_kind;

extern const app_kind coil_app_kinds[];
extern const size_t coil_app_nkinds;

/* The kind called `name`, or NULL. */
const app_kind *coil_app_kind_find(const char *name);

/* ------------------------------------------------------------------ limits */

#define COIL_APP_DEMO_MS_MAX 600000      /* demo.sleep, demo.cpu: ms */
#define COIL_APP_APPEND_LINE_MAX 200     /* demo.append: bytes of line */
#define COIL_APP_REPORT_TITLE_MAX 200    /* report.pdf: title, subtitle */
#define COIL_APP_REPORT_LABEL_MAX 200    /* report.pdf: a row's label */
#define COIL_APP_REPORT_ROWS_MAX 100000  /* report.pdf: rows */
#define COIL_APP_REPORT_IMAGES_MAX 16    /* report.pdf: image URLs */
#define COIL_APP_REPORT_URL_MAX 2048     /* report.pdf: bytes of an image URL */
#define COIL_APP_REPORT_IMAGE_BYTES_MAX (8 * 1024 * 1024) /* an image's bytes */
#define COIL_APP_REPORT_IMAGE_SIDE_MAX 4096 /* an image's pixels a side */
#define COIL_APP_REPORT_IMAGES_TIMEOUT COIL_SEC(30) /* all of them, fetched */
/* Table rows on each page of a report after the first (the summary and
 * chart page). */
#define COIL_APP_REPORT_ROWS_PER_PAGE 40

/* Pages of a report of `rows` rows (1..COIL_APP_REPORT_ROWS_MAX): the
 * summary page, then the table's pages. */
size_t coil_app_report_pages(size_t rows);

/* ------------------------------------------------------------------ validators
 * The `validate` functions of the table; same contract. */

int coil_app_validate_object(const void *json, char *msg, size_t cap); /* noop, crash */
int coil_app_validate_ms(const void *json, char *msg, size_t cap);     /* sleep, cpu */
int coil_app_validate_append(const void *json, char *msg, size_t cap);
int coil_app_validate_report(const void *json, char *msg, size_t cap);
int coil_app_validate_titles_import(const void *json, char *msg, size_t cap); /* kind_titles.c */

/* ------------------------------------------------------------------ for handlers */

/* Parses `len` bytes of `payload` as JSON and checks them with `validate`.
 * Returns 0 and the document in *out (the caller json_decref()s it), or
 * -EINVAL after coil_job_set_error() with the reason. */
int coil_app_parse_payload(const void *payload, size_t len, coil_job_ctx *ctx,
                           int (*validate)(const void *, char *, size_t), void **out);

/* Whether `json` is a string without NUL bytes; its length in bytes goes
 * to *len. */
bool coil_app_plain_string(const void *json, size_t *len);

/* Formats a message into msg (cap bytes) and returns -EINVAL: a validator's
 * failure. */
int coil_app_reject(char *msg, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
