/* app/kinds_demo.c: the demo.* job kinds, which show what the job system
 * does with jobs that wait, burn CPU, crash or leave a trace. Handlers run
 * in worker processes as plain blocking C, but for demo.wait, which awaits.
 *
 *   demo.noop    payload: any JSON object. Result: {} (application/json).
 *   demo.stamp   payload: any JSON object. Result: {"started_us": T}, T the
 *                wall clock (CLOCK_REALTIME, microseconds) when the handler
 *                began: benchmarks read when each job reached a worker.
 *   demo.sleep   payload: {"ms": integer 0..600000}. Sleeps that long in
 *                steps of at most 10 ms, stopping with -ECANCELED as soon as
 *                the job is cancelled. Progress: 0, then every 10%, then 100.
 *                Result: {"slept_ms": ms}.
 *   demo.wait    payload: {"ms": integer 0..600000}. Waits that long on its
 *                worker's loop (coil_sleep): an awaiting kind, 64 at once
 *                in one worker. A cancel ends the wait with -ECANCELED.
 *                Result: {"waited_ms": ms}.
 *   demo.cpu     payload: {"ms": integer 0..600000}. Burns one CPU for that
 *                long (CLOCK_MONOTONIC), checking for cancellation every
 *                2 ms. Progress as demo.sleep. Result: {"ms": ms,
 *                "iterations": I}, I the rounds of arithmetic it did.
 *   demo.crash   payload: any JSON object. Writes to a page it cannot
 *                write to: the worker dies of SIGSEGV. Unsafe.
 *   demo.append  payload: {"path": absolute path, "line": string of at most
 *                200 bytes, no newline}. Appends line + "\n" to the file
 *                (created 0644 if missing) with one write(2) under
 *                O_APPEND, then fsync(2)s it. Result: {}. Unsafe: it
 *                writes where the submitter says; tests use it to see
 *                which jobs ran, and how many times.
 *
 * A payload of the wrong shape fails with -EINVAL and the validator's
 * message, the same one the server answers 422 with.
 */
#include "app/kinds.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

enum {
    SLEEP_STEP_MS = 10,        /* longest sleep between cancellation checks */
    CPU_CHECK_MS = 2,          /* cancellation checks while burning */
    CPU_ROUND = 4096,          /* iterations between clock readings */
};

#define JSON_EMPTY "{}"
#define JSON_TYPE "application/json"

/* ------------------------------------------------------------------ validators */

int coil_app_validate_object(const void *json, char *msg, size_t cap) {
    if (!json_is_object((const json_t *)json))
        return coil_app_reject(msg, cap, "payload must be a JSON object");
    return 0;
}

int coil_app_validate_ms(const void *json, char *msg, size_t cap) {
    const json_t *doc = json;
    if (!json_is_object(doc)) return coil_app_reject(msg, cap, "payload must be a JSON object");
    const json_t *ms = json_object_get(doc, "ms");
    if (!json_is_integer(ms) || json_integer_value(ms) < 0 ||
        json_integer_value(ms) > COIL_APP_DEMO_MS_MAX)
        return coil_app_reject(msg, cap, "\"ms\" must be an integer from 0 to %d",
                               COIL_APP_DEMO_MS_MAX);
    return 0;
}

int coil_app_validate_append(const void *json, char *msg, size_t cap) {
    const json_t *doc = json;
    if (!json_is_object(doc)) return coil_app_reject(msg, cap, "payload must be a JSON object");
    size_t n;
    const json_t *path = json_object_get(doc, "path");
    if (!coil_app_plain_string(path, &n) || n >= PATH_MAX || json_string_value(path)[0] != '/')
        return coil_app_reject(msg, cap, "\"path\" must be an absolute path");
    const json_t *line = json_object_get(doc, "line");
    if (!coil_app_plain_string(line, &n) || n > COIL_APP_APPEND_LINE_MAX ||
        memchr(json_string_value(line), '\n', n))
        return coil_app_reject(msg, cap,
                               "\"line\" must be a string of at most %d bytes without a newline",
                               COIL_APP_APPEND_LINE_MAX);
    return 0;
}

/* ------------------------------------------------------------------ helpers */

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Parses the payload of demo.sleep or demo.cpu: its ms, or -EINVAL. */
static long payload_ms(const void *payload, size_t len, coil_job_ctx *ctx) {
    void *doc;
    int err = coil_app_parse_payload(payload, len, ctx, coil_app_validate_ms, &doc);
    if (err) return err;
    long ms = (long)json_integer_value(json_object_get(doc, "ms"));
    json_decref(doc);
    return ms;
}

/* Reports progress when another tenth of `total_ms` has passed since the
 * last report (*last, in percent). 100 is left to the end of the job.
 * Returns 0 or -EPIPE (the supervisor is gone). */
static int progress_tenths(coil_job_ctx *ctx, int *last, int64_t done_ns, long total_ms,
                           const char *verb) {
    long done_ms = (long)(done_ns / 1000000);
    int pct = total_ms > 0 ? (int)(done_ms * 10 / total_ms) * 10 : 100;
    if (pct > 90) pct = 90;
    if (pct <= *last) return 0;
    *last = pct;
    char msg[64];
    snprintf(msg, sizeof msg, "%s %ld of %ld ms", verb, done_ms, total_ms);
    return coil_job_progress(ctx, pct, msg) == -EPIPE ? -EPIPE : 0;
}

/* The start of a timed demo job: reads {"ms"}, reports 0 % ("<doing> N ms")
 * and sets the job's *start and *end (CLOCK_MONOTONIC ns). Returns the ms,
 * or a negative error. */
static long begin_timed(const void *payload, size_t len, coil_job_ctx *ctx, const char *doing,
                        int64_t *start, int64_t *end) {
    long ms = payload_ms(payload, len, ctx);
    if (ms < 0) return ms;
    char msg[64];
    snprintf(msg, sizeof msg, "%s %ld ms", doing, ms);
    if (coil_job_progress(ctx, 0, msg) == -EPIPE) return -EPIPE;
    *start = now_ns();
    *end = *start + (int64_t)ms * 1000000;
    return ms;
}

/* ------------------------------------------------------------------ handlers */

static int demo_noop(const void *payload, size_t len, coil_job_ctx *ctx) {
    void *doc;
    int err = coil_app_parse_payload(payload, len, ctx, coil_app_validate_object, &doc);
    if (err) return err;
    json_decref(doc);
    return coil_job_set_result(ctx, JSON_EMPTY, sizeof JSON_EMPTY - 1, JSON_TYPE);
}
COIL_JOB_HANDLER("demo.noop", demo_noop)

static int demo_stamp(const void *payload, size_t len, coil_job_ctx *ctx) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    void *doc;
    int err = coil_app_parse_payload(payload, len, ctx, coil_app_validate_object, &doc);
    if (err) return err;
    json_decref(doc);
    char out[64];
    int n = snprintf(out, sizeof out, "{\"started_us\":%lld}",
                     (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
    return coil_job_set_result(ctx, out, (size_t)n, JSON_TYPE);
}
COIL_JOB_HANDLER("demo.stamp", demo_stamp)

static int demo_sleep(const void *payload, size_t len, coil_job_ctx *ctx) {
    int64_t start, end;
    long ms = begin_timed(payload, len, ctx, "sleeping", &start, &end);
    if (ms < 0) return (int)ms;
    int last = 0;
    for (int64_t now = start; now < end; now = now_ns()) {
        if (coil_job_cancelled(ctx)) return -ECANCELED;
        if (progress_tenths(ctx, &last, now - start, ms, "slept")) return -EPIPE;
        int64_t step = end - now;
        if (step > (int64_t)SLEEP_STEP_MS * 1000000) step = (int64_t)SLEEP_STEP_MS * 1000000;
        struct timespec ts = {0, (long)step};
        nanosleep(&ts, NULL); /* an EINTR just ends the step early */
    }
    if (coil_job_progress(ctx, 100, "done") == -EPIPE) return -EPIPE;
    char res[64];
    int n = snprintf(res, sizeof res, "{\"slept_ms\":%ld}", ms);
    return coil_job_set_result(ctx, res, (size_t)n, JSON_TYPE);
}
COIL_JOB_HANDLER("demo.sleep", demo_sleep)

static int demo_wait(const void *payload, size_t len, coil_job_ctx *ctx) {
    long ms = payload_ms(payload, len, ctx);
    if (ms < 0) return (int)ms;
    int err = coil_sleep(COIL_MSEC(ms));
    if (err) return err;
    char res[64];
    int n = snprintf(res, sizeof res, "{\"waited_ms\":%ld}", ms);
    return coil_job_set_result(ctx, res, (size_t)n, JSON_TYPE);
}
COIL_JOB_AWAITING_HANDLER("demo.wait", demo_wait, 64)

static int demo_cpu(const void *payload, size_t len, coil_job_ctx *ctx) {
    int64_t start, end;
    long ms = begin_timed(payload, len, ctx, "burning", &start, &end);
    if (ms < 0) return (int)ms;
    int last = 0;
    int64_t check = start + (int64_t)CPU_CHECK_MS * 1000000;
    uint64_t x = 0x9e3779b97f4a7c15u, iterations = 0;
    for (;;) {
        for (int i = 0; i < CPU_ROUND; i++) { /* xorshift64: work no compiler can skip */
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        iterations += CPU_ROUND;
        int64_t now = now_ns();
        if (now >= end) break;
        if (now >= check) {
            if (coil_job_cancelled(ctx)) return -ECANCELED;
            if (progress_tenths(ctx, &last, now - start, ms, "burned")) return -EPIPE;
            check = now + (int64_t)CPU_CHECK_MS * 1000000;
        }
    }
    volatile uint64_t sink = x; /* the rounds' result is used */
    (void)sink;
    if (coil_job_progress(ctx, 100, "done") == -EPIPE) return -EPIPE;
    char res[96];
    int n = snprintf(res, sizeof res, "{\"ms\":%ld,\"iterations\":%llu}", ms,
                     (unsigned long long)iterations);
    return coil_job_set_result(ctx, res, (size_t)n, JSON_TYPE);
}
COIL_JOB_HANDLER("demo.cpu", demo_cpu)

/* A real segmentation fault: a store to a page mapped without access, made
 * through a volatile pointer so that the compiler must emit it. (Not a NULL
 * store: UBSan would catch that and exit instead.) */
static int demo_crash(const void *payload, size_t len, coil_job_ctx *ctx) {
    void *doc;
    int err = coil_app_parse_payload(payload, len, ctx, coil_app_validate_object, &doc);
    if (err) return err;
    json_decref(doc);
    void *page = mmap(NULL, (size_t)sysconf(_SC_PAGESIZE), PROT_NONE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    volatile int *volatile target = page == MAP_FAILED ? (volatile int *)(uintptr_t)8 : page;
    *target = 1;
    coil_job_set_error(ctx, "demo.crash: the write did not fault");
    return -EFAULT;
}
COIL_JOB_HANDLER("demo.crash", demo_crash)

/* Fails the job with "what: strerror(-err)" and returns err. */
static int fail_errno(coil_job_ctx *ctx, const char *what, const char *path, int err) {
    char msg[PATH_MAX + 64];
    snprintf(msg, sizeof msg, "%s %s: %s", what, path, strerror(-err));
    coil_job_set_error(ctx, msg);
    return err;
}

static int demo_append(const void *payload, size_t len, coil_job_ctx *ctx) {
    void *parsed;
    int err = coil_app_parse_payload(payload, len, ctx, coil_app_validate_append, &parsed);
    if (err) return err;
    json_t *doc = parsed;
    const char *path = json_string_value(json_object_get(doc, "path"));
    const json_t *line = json_object_get(doc, "line");
    char buf[COIL_APP_APPEND_LINE_MAX + 1];
    size_t n = json_string_length(line);
    memcpy(buf, json_string_value(line), n);
    buf[n++] = '\n';
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        err = fail_errno(ctx, "open", path, -errno);
        goto out;
    }
    ssize_t w;
    do w = write(fd, buf, n);
    while (w < 0 && errno == EINTR);
    if (w < 0) err = fail_errno(ctx, "write", path, -errno);
    else if ((size_t)w != n) err = fail_errno(ctx, "write (short)", path, -EIO);
    else if (fsync(fd) != 0) err = fail_errno(ctx, "fsync", path, -errno);
    close(fd);
    if (err == 0) err = coil_job_set_result(ctx, JSON_EMPTY, sizeof JSON_EMPTY - 1, JSON_TYPE);
out:
    json_decref(doc);
    return err;
}
COIL_JOB_HANDLER("demo.append", demo_append)
