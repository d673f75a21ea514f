/* tests/app/test_jobs_api.c: the durable job system through the real
 * `coil serve`, end to end.
 *
 * Each test starts its own server in its own temporary directory
 * (serve_harness.h) and drives the job API over loopback: enqueue, status,
 * results, errors, crashes and timeouts in workers, cancelling, idempotency
 * keys, delays, priorities, retries, listing, the event stream, durable ids,
 * and what survives a kill -9 or a full disk. Waits poll every POLL_MS and
 * are bounded; nothing asserts on how fast the machine is, only on order
 * and on the times the server itself records. Client threads:
 * COIL_TEST_THREADS.
 */
#include "serve_harness.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/mount.h>
#include <time.h>

enum {
    POLL_MS = 20,                 /* between two looks at a job */
    WAIT_MS = 60000,              /* the longest wait for a job's state */
};

typedef struct job_id {
    char s[33];                   /* 32 hex digits */
} job_id;

/* Wall-clock ms since the epoch, as the server's timestamps. */
static long long wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------ JSON */

static const char *jstr(const json_t *o, const char *key) {
    return json_string_value(json_object_get(o, key));
}

/* The integer at `key`; fails the test if it is not one. */
static long long jint_at(const json_t *o, const char *key, int line) {
    const json_t *v = json_object_get(o, key);
    if (!json_is_integer(v)) {
        char *dump = json_dumps(o, JSON_COMPACT);
        coil_test_fail(__FILE__, line, "\"%s\" is not an integer in %s", key, dump);
    }
    return json_integer_value(v);
}
#define jint(o, key) jint_at((o), (key), __LINE__)

static bool jnull(const json_t *o, const char *key) {
    return json_is_null(json_object_get(o, key));
}

static bool is_final(const char *status) {
    return status && (!strcmp(status, "succeeded") || !strcmp(status, "dead") ||
                      !strcmp(status, "cancelled"));
}

static bool is_hex_id(const char *s) {
    if (!s || strlen(s) != 32) return false;
    for (; *s; s++)
        if (!strchr("0123456789abcdef", *s)) return false;
    return true;
}

/* ------------------------------------------------------------------ calls */

/* METHOD path (headers, body): asserts the answer is `want` with a JSON body,
 * and returns the body (the caller decrefs). */
static json_t *call_at(int port, const char *method, const char *path, const char *headers,
                       const char *body, int want, int line) {
    serve_reply r;
    serve_http(port, method, path, headers, body, &r);
    if (r.status != want)
        coil_test_fail(__FILE__, line, "%s %s (%s): status %d, want %d:\n%s%s", method, path,
                       body ? body : "", r.status, want, r.head, r.body);
    json_error_t e;
    json_t *j = json_loadb(r.body, r.body_len, 0, &e);
    if (!j)
        coil_test_fail(__FILE__, line, "%s %s: not JSON: %s%s", method, path, r.head, r.body);
    serve_reply_free(&r);
    return j;
}
#define call(port, method, path, headers, body, want) \
    call_at((port), (method), (path), (headers), (body), (want), __LINE__)

/* Asserts METHOD path answers `want` with {"error": "..."}. */
static void expect_error_at(int port, const char *method, const char *path, const char *headers,
                            const char *body, int want, int line) {
    json_t *j = call_at(port, method, path, headers, body, want, line);
    if (!json_is_string(json_object_get(j, "error")) || !*jstr(j, "error")) {
        char *dump = json_dumps(j, JSON_COMPACT);
        coil_test_fail(__FILE__, line, "%s %s: no \"error\" in %s", method, path, dump);
    }
    json_decref(j);
}
#define expect_error(port, method, path, headers, body, want) \
    expect_error_at((port), (method), (path), (headers), (body), (want), __LINE__)

/* POST /jobs/{kind}{query} with `headers` and `payload`: asserts 202 with a
 * Location of the job and a well-formed answer, copies the id into *id and
 * returns the answer (the caller decrefs). */
static json_t *post_job_at(int port, const char *kind, const char *query, const char *headers,
                           const char *payload, job_id *id, int line) {
    char path[512];
    snprintf(path, sizeof path, "/jobs/%s%s", kind, query ? query : "");
    serve_reply r;
    serve_http(port, "POST", path, headers, payload, &r);
    if (r.status != 202)
        coil_test_fail(__FILE__, line, "POST %s (%s): status %d, want 202:\n%s%s", path,
                       payload, r.status, r.head, r.body);
    json_t *j = serve_json(&r);
    const char *s = jstr(j, "id");
    if (!is_hex_id(s)) coil_test_fail(__FILE__, line, "POST %s: bad id in %s", path, r.body);
    memcpy(id->s, s, 33);
    char loc[128], want[64];
    snprintf(want, sizeof want, "/jobs/%s", id->s);
    if (!serve_header(&r, "Location", loc, sizeof loc) || strcmp(loc, want) != 0)
        coil_test_fail(__FILE__, line, "POST %s: Location is not %s:\n%s", path, want, r.head);
    if (!json_is_string(json_object_get(j, "status")) ||
        !json_is_boolean(json_object_get(j, "duplicate")))
        coil_test_fail(__FILE__, line, "POST %s: answer %s", path, r.body);
    serve_reply_free(&r);
    return j;
}

/* Enqueues a new job (not a duplicate: it must be "queued"). */
static void enqueue_at(int port, const char *kind, const char *query, const char *payload,
                       job_id *id, int line) {
    json_t *j = post_job_at(port, kind, query, NULL, payload, id, line);
    if (strcmp(jstr(j, "status"), "queued") != 0 || json_is_true(json_object_get(j, "duplicate")))
        coil_test_fail(__FILE__, line, "POST /jobs/%s: answer %s", kind,
                       json_dumps(j, JSON_COMPACT));
    json_decref(j);
}
#define enqueue(port, kind, query, payload, id) \
    enqueue_at((port), (kind), (query), (payload), (id), __LINE__)

/* GET /jobs/{id}: the status doc (the caller decrefs). */
static json_t *job_doc_at(int port, const job_id *id, int line) {
    char path[64];
    snprintf(path, sizeof path, "/jobs/%s", id->s);
    return call_at(port, "GET", path, NULL, NULL, 200, line);
}
#define job_doc(port, id) job_doc_at((port), (id), __LINE__)

/* Polls the job until its status is `want` (NULL: any final state), for
 * `ms` at most; fails if it reaches another final state first. Returns the
 * doc (the caller decrefs). */
static json_t *wait_job_at(int port, const job_id *id, const char *want, int ms, int line) {
    coil_time until = coil_now() + COIL_MSEC(ms);
    for (;;) {
        json_t *doc = job_doc_at(port, id, line);
        const char *st = jstr(doc, "status");
        if (want ? strcmp(st, want) == 0 : is_final(st)) return doc;
        if (is_final(st) || coil_now() > until) {
            char *dump = json_dumps(doc, JSON_COMPACT);
            serve_reply r, d; /* the scheduler's counters and state, to explain it */
            serve_http(port, "GET", "/jobs/stats", NULL, NULL, &r);
            serve_http(port, "GET", "/jobs/dump", NULL, NULL, &d);
            coil_test_fail(__FILE__, line, "job %s: want %s, %s: %s\nstats: %s\n%s", id->s,
                           want ? want : "a final state",
                           is_final(st) ? "ended otherwise" : "timed out", dump,
                           r.body ? r.body : "?", d.body ? d.body : "");
        }
        json_decref(doc);
        sleep_ms(POLL_MS);
    }
}
#define wait_job(port, id, want) wait_job_at((port), (id), (want), WAIT_MS, __LINE__)

/* Asserts `doc` is a whole status doc of job `id` of `kind`. */
static void check_doc_at(const json_t *doc, const job_id *id, const char *kind, int line) {
    static const char *const ints[] = {"priority", "attempts", "max_attempts", "progress",
                                       "created_at"};
    static const char *const maybe_ints[] = {"started_at", "finished_at", "run_at"};
    char *dump = json_dumps(doc, JSON_COMPACT);
    bool ok = json_is_object(doc) && jstr(doc, "id") && !strcmp(jstr(doc, "id"), id->s) &&
              jstr(doc, "kind") && !strcmp(jstr(doc, "kind"), kind) && jstr(doc, "status") &&
              json_is_boolean(json_object_get(doc, "cancel_requested"));
    for (size_t i = 0; ok && i < sizeof ints / sizeof ints[0]; i++)
        ok = json_is_integer(json_object_get(doc, ints[i]));
    for (size_t i = 0; ok && i < sizeof maybe_ints / sizeof maybe_ints[0]; i++)
        ok = json_is_integer(json_object_get(doc, maybe_ints[i])) || jnull(doc, maybe_ints[i]);
    ok = ok && (jnull(doc, "message") || json_is_string(json_object_get(doc, "message")));
    ok = ok && (jnull(doc, "error") || json_is_object(json_object_get(doc, "error")));
    ok = ok && (jnull(doc, "result") || json_is_object(json_object_get(doc, "result")));
    if (ok) {
        long long progress = json_integer_value(json_object_get(doc, "progress"));
        ok = progress >= 0 && progress <= 100;
    }
    if (!ok) coil_test_fail(__FILE__, line, "not a status doc of %s (%s): %s", id->s, kind, dump);
    free(dump);
}
#define check_doc(doc, id, kind) check_doc_at((doc), (id), (kind), __LINE__)

/* The jobs of GET /jobs{query}, following next_cursor to the end (at most
 * `max_pages` pages). Returns a JSON array of the docs (the caller decrefs). */
static json_t *list_all(int port, const char *query, int max_pages) {
    json_t *all = json_array();
    char cursor[128] = "";
    for (int page = 0; page < max_pages; page++) {
        char path[512];
        snprintf(path, sizeof path, "/jobs%s%s%s", query, *cursor ? "&cursor=" : "", cursor);
        json_t *j = call(port, "GET", path, NULL, NULL, 200);
        json_t *jobs = json_object_get(j, "jobs");
        json_t *next = json_object_get(j, "next_cursor");
        ASSERT(json_is_array(jobs));
        ASSERT(json_is_null(next) || json_is_string(next));
        json_array_extend(all, jobs);
        if (json_is_null(next)) {
            json_decref(j);
            return all;
        }
        ASSERT(strlen(json_string_value(next)) < sizeof cursor);
        snprintf(cursor, sizeof cursor, "%s", json_string_value(next));
        json_decref(j);
    }
    coil_test_fail(__FILE__, __LINE__, "GET /jobs%s: more than %d pages", query, max_pages);
}

/* How many jobs GET /jobs{query} lists in all. */
static size_t count_jobs(int port, const char *query) {
    json_t *all = list_all(port, query, 1000);
    size_t n = json_array_size(all);
    json_decref(all);
    return n;
}

/* Whether GET /jobs{query} lists any job (one page). */
static bool any_job(int port, const char *query) {
    char path[256];
    snprintf(path, sizeof path, "/jobs%s", query);
    json_t *j = call(port, "GET", path, NULL, NULL, 200);
    bool any = json_array_size(json_object_get(j, "jobs")) > 0;
    json_decref(j);
    return any;
}

/* ------------------------------------------------------------------ basics */

/* coil serve takes payloads past the library's 1 MiB default body limit:
 * a report of 100,000 rows is a few MiB. */
TEST(jobs_take_payloads_of_several_mib) {
    serve_proc p;
    serve_start(&p, NULL);
    enum { PAD = 3 << 20 };
    char *payload = malloc(PAD + 32);
    ASSERT(payload != NULL);
    int n = snprintf(payload, 32, "{\"pad\": \"");
    memset(payload + n, 'x', PAD);
    memcpy(payload + n + PAD, "\"}", 3);
    job_id id;
    enqueue_at(p.port, "demo.noop", NULL, payload, &id, __LINE__);
    free(payload);
    json_decref(wait_job(p.port, &id, "succeeded"));
    serve_stop(&p);
    serve_cleanup(&p);
}

TEST(jobs_noop_succeeds_with_its_result) {
    serve_proc p;
    serve_start(&p, NULL);
    job_id id;
    json_t *ans = post_job_at(p.port, "demo.noop", NULL, NULL, "{\"x\": 1}", &id, __LINE__);
    ASSERT_STR_EQ(jstr(ans, "status"), "queued");
    ASSERT(json_is_false(json_object_get(ans, "duplicate")));
    json_decref(ans);

    json_t *doc = wait_job(p.port, &id, "succeeded");
    check_doc(doc, &id, "demo.noop");
    ASSERT_EQ(jint(doc, "attempts"), 1);
    ASSERT_EQ(jint(doc, "max_attempts"), 3); /* the default */
    ASSERT_EQ(jint(doc, "priority"), 0);
    ASSERT(jnull(doc, "error"));
    ASSERT(json_is_false(json_object_get(doc, "cancel_requested")));
    ASSERT_GE(jint(doc, "started_at"), jint(doc, "created_at"));
    ASSERT_GE(jint(doc, "finished_at"), jint(doc, "started_at"));
    json_t *res = json_object_get(doc, "result");
    char url[96];
    snprintf(url, sizeof url, "/jobs/%s/result", id.s);
    ASSERT_STR_EQ(jstr(res, "url"), url);
    ASSERT_STR_EQ(jstr(res, "content_type"), "application/json");
    ASSERT_EQ(jint(res, "size"), 2);
    json_decref(doc);

    serve_reply r;
    serve_get(p.port, url, &r);
    ASSERT_EQ(r.status, 200);
    char type[128];
    ASSERT(serve_header(&r, "Content-Type", type, sizeof type));
    ASSERT_CONTAINS(type, "application/json");
    ASSERT_STR_EQ(r.body, "{}");
    serve_reply_free(&r);

    /* A final job cannot be cancelled. */
    char path[64];
    snprintf(path, sizeof path, "/jobs/%s", id.s);
    json_t *j = call(p.port, "DELETE", path, NULL, NULL, 409);
    ASSERT(json_is_string(json_object_get(j, "error")));
    ASSERT_STR_EQ(jstr(j, "status"), "succeeded");
    json_decref(j);

    serve_stop(&p);
    serve_cleanup(&p);
}

/* An awaiting kind through the whole service: sixteen demo.wait jobs on one
 * worker process run together, as their started_at/finished_at show. */
TEST(jobs_awaiting_kind_runs_many_in_one_worker) {
    enum { N = 16 };
    serve_proc p;
    serve_start(&p, (const char *const[]){"--job-workers", "1", NULL});
    job_id ids[N];
    for (int i = 0; i < N; i++)
        json_decref(post_job_at(p.port, "demo.wait", NULL, NULL, "{\"ms\": 400}", &ids[i],
                                __LINE__));
    long long start[N], end[N];
    for (int i = 0; i < N; i++) {
        json_t *doc = wait_job(p.port, &ids[i], "succeeded");
        start[i] = jint(doc, "started_at");
        end[i] = jint(doc, "finished_at");
        json_decref(doc);
        char url[96];
        snprintf(url, sizeof url, "/jobs/%s/result", ids[i].s);
        serve_reply r;
        serve_get(p.port, url, &r);
        ASSERT_STR_EQ(r.body, "{\"waited_ms\":400}");
        serve_reply_free(&r);
    }
    /* The most intervals that hold one instant: at a start, count the
     * jobs running then. One at a time would be 1. */
    int most = 0;
    for (int i = 0; i < N; i++) {
        int at = 0;
        for (int k = 0; k < N; k++) at += start[k] <= start[i] && start[i] < end[k];
        if (at > most) most = at;
    }
    ASSERT_GE(most, N / 2);
    serve_stop(&p);
    serve_cleanup(&p);
}

/* A report of a few thousand rows: a PDF large enough to be kept as a file
 * in the store, served with its type and its size. */
TEST(jobs_report_pdf_result_is_served) {
    enum { ROWS = 3000 };
    serve_proc p;
    serve_start(&p, NULL);
    json_t *rows = json_array();
    for (int i = 0; i < ROWS; i++)
        json_array_append_new(rows, json_pack("{s:s+, s:i}", "label", "row ",
                                              i % 2 ? "odd" : "even", "value", i % 97));
    json_t *payload = json_pack("{s:s, s:o}", "title", "Quarterly figures", "rows", rows);
    char *body = json_dumps(payload, JSON_COMPACT);
    json_decref(payload);
    job_id id;
    enqueue(p.port, "report.pdf", NULL, body, &id);
    free(body);
    json_t *doc = wait_job(p.port, &id, "succeeded");
    check_doc(doc, &id, "report.pdf");
    ASSERT_EQ(jint(doc, "progress"), 100);
    json_t *res = json_object_get(doc, "result");
    ASSERT_STR_EQ(jstr(res, "content_type"), "application/pdf");
    long long size = jint(res, "size");
    char url[96];
    snprintf(url, sizeof url, "/jobs/%s/result", id.s);
    serve_reply r;
    serve_get(p.port, url, &r);
    ASSERT_EQ(r.status, 200);
    char type[128];
    ASSERT(serve_header(&r, "Content-Type", type, sizeof type));
    ASSERT_CONTAINS(type, "application/pdf");
    ASSERT_EQ(r.body_len, size);
    ASSERT_GE(r.body_len, 65536); /* kept as a file in the store */
    ASSERT(memcmp(r.body, "%PDF-", 5) == 0);
    ASSERT(memmem(r.body, r.body_len, "%%EOF", 5) != NULL);
    serve_reply_free(&r);
    json_decref(doc);
    serve_stop(&p);
    serve_cleanup(&p);
}

TEST(jobs_reject_bad_requests) {
    serve_proc p;
    serve_start(&p, NULL);
    /* Kinds: unknown, and demo.crash without --demo-unsafe. */
    expect_error(p.port, "POST", "/jobs/no.such.kind", NULL, "{}", 404);
    expect_error(p.port, "POST", "/jobs/demo.crash", NULL, "{}", 404);
    expect_error(p.port, "POST", "/jobs/demo.append", NULL, "{\"path\":\"/tmp/x\",\"line\":\"1\"}",
                 404);

    /* Not JSON: 400. (No body at all is taken as {}.) */
    const char *not_json[] = {"not json", "{", "{\"ms\": 5", "\"unterminated", "{}x"};
    for (size_t i = 0; i < sizeof not_json / sizeof not_json[0]; i++)
        expect_error(p.port, "POST", "/jobs/demo.noop", NULL, not_json[i], 400);
    expect_error(p.port, "POST", "/jobs/demo.sleep", NULL, "", 422); /* {} has no ms */

    /* JSON of the wrong shape for the kind: 422. */
    const char *shapes[][2] = {
        {"demo.sleep", "{\"ms\": -5}"},
        {"demo.sleep", "{}"},
        {"demo.sleep", "{\"ms\": 600001}"},
        {"demo.sleep", "{\"ms\": \"5\"}"},
        {"demo.sleep", "[1, 2]"},
        {"demo.cpu", "{\"ms\": 1.5e9}"},
        {"demo.noop", "[]"},
        {"demo.noop", "42"},
        {"demo.noop", "\"text\""},
        {"report.pdf", "{\"title\": \"t\", \"rows\": \"x\"}"},
        {"report.pdf", "{\"title\": \"t\"}"},
        {"report.pdf", "{\"title\": \"t\", \"rows\": []}"},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        char path[64];
        snprintf(path, sizeof path, "/jobs/%s", shapes[i][0]);
        expect_error(p.port, "POST", path, NULL, shapes[i][1], 422);
    }

    /* Bad options: 400. */
    const char *options[] = {"priority=1001",    "priority=-1001",   "priority=abc",
                             "priority=",        "delay_ms=-1",      "delay_ms=2592000001",
                             "max_attempts=0",   "max_attempts=101", "max_attempts=2x",
                             "timeout_ms=-1",    "timeout_ms=86400001", "backoff_ms=x",
                             "backoff_cap_ms=-5"};
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        char path[96];
        snprintf(path, sizeof path, "/jobs/demo.noop?%s", options[i]);
        expect_error(p.port, "POST", path, NULL, "{}", 400);
    }
    char key[300] = "Idempotency-Key: ";
    memset(key + strlen(key), 'k', 256); /* one byte too long */
    memcpy(key + strlen(key), "\r\n", 3);
    expect_error(p.port, "POST", "/jobs/demo.noop", key, "{}", 400);

    /* The list's filters. */
    expect_error(p.port, "GET", "/jobs?state=bogus", NULL, NULL, 400);
    expect_error(p.port, "GET", "/jobs?limit=0", NULL, NULL, 400);
    expect_error(p.port, "GET", "/jobs?limit=abc", NULL, NULL, 400);
    expect_error(p.port, "GET", "/jobs?limit=-3", NULL, NULL, 400);

    /* Ids that are no job, well-formed or not: 404 everywhere. */
    const char *ids[] = {"0123456789abcdef0123456789abcdef", "0123456789abcdef", "xyz",
                         "0123456789abcdef0123456789abcdef0", "0123456789abcdef0123456789abcdeg"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        char path[128];
        snprintf(path, sizeof path, "/jobs/%s", ids[i]);
        expect_error(p.port, "GET", path, NULL, NULL, 404);
        expect_error(p.port, "DELETE", path, NULL, NULL, 404);
        snprintf(path, sizeof path, "/jobs/%s/result", ids[i]);
        expect_error(p.port, "GET", path, NULL, NULL, 404);
        snprintf(path, sizeof path, "/jobs/%s/events", ids[i]);
        expect_error(p.port, "GET", path, NULL, NULL, 404);
    }

    /* None of the rejected requests made a job. */
    ASSERT_EQ(count_jobs(p.port, "?limit=1000"), 0);
    serve_stop(&p);
    serve_cleanup(&p);
}

/* ------------------------------------------------------------------ failures */

/* A job that segfaults its worker ends dead after its attempts, while jobs
 * submitted alongside succeed and the server goes on answering. */
TEST(jobs_crash_is_isolated) {
    serve_proc p;
    serve_start(&p, (const char *const[]){"--demo-unsafe", "--job-workers", "2", NULL});
    job_id crash, noop[6];
    enqueue(p.port, "demo.crash", "?max_attempts=2&backoff_ms=10", "{}", &crash);
    for (int i = 0; i < 6; i++) enqueue(p.port, "demo.noop", NULL, "{}", &noop[i]);
    serve_expect(p.port, "/health", 200, "ok");

    json_t *doc = wait_job(p.port, &crash, "dead");
    check_doc(doc, &crash, "demo.crash");
    ASSERT_EQ(jint(doc, "attempts"), 2);
    ASSERT_EQ(jint(doc, "max_attempts"), 2);
    json_t *err = json_object_get(doc, "error");
    ASSERT(json_is_object(err));
    ASSERT_EQ(jint(err, "signal"), 11);
    ASSERT(json_is_string(json_object_get(err, "message")));
    ASSERT(jnull(doc, "result"));
    json_decref(doc);
    for (int i = 0; i < 6; i++) json_decref(wait_job(p.port, &noop[i], "succeeded"));

    char path[96];
    snprintf(path, sizeof path, "/jobs/%s/result", crash.s);
    json_t *j = call(p.port, "GET", path, NULL, NULL, 409);
    ASSERT_STR_EQ(jstr(j, "status"), "dead");
    json_decref(j);

    /* The workers were replaced: more jobs run. */
    job_id after;
    enqueue(p.port, "demo.noop", NULL, "{}", &after);
    json_decref(wait_job(p.port, &after, "succeeded"));
    serve_expect(p.port, "/health", 200, "ok");
    serve_assert_alive(&p);
    serve_stop(&p);
    serve_cleanup(&p);
}

/* An attempt past its timeout is stopped: a 60 s sleep with a 200 ms
 * timeout and one attempt ends dead long before the sleep would. */
TEST(jobs_timeout_stops_the_attempt) {
    serve_proc p;
    serve_start(&p, (const char *const[]){"--job-workers", "1", NULL});
    job_id id;
    enqueue(p.port, "demo.sleep", "?timeout_ms=200&max_attempts=1", "{\"ms\": 60000}", &id);
    json_t *doc = wait_job_at(p.port, &id, "dead", 30000, __LINE__);
    check_doc(doc, &id, "demo.sleep");
    ASSERT_EQ(jint(doc, "attempts"), 1);
    json_t *err = json_object_get(doc, "error");
    ASSERT(json_is_object(err));
    const char *msg = jstr(err, "message");
    if (!msg || (!strcasestr(msg, "timeout") && !strcasestr(msg, "timed out")))
        coil_test_fail(__FILE__, __LINE__, "error does not say timeout: %s",
                       json_dumps(doc, JSON_COMPACT));
    /* The server's own clock: the attempt ended well before 60 s. */
    ASSERT(jint(doc, "finished_at") - jint(doc, "started_at") < 30000);
    json_decref(doc);
    serve_stop(&p);
    serve_cleanup(&p);
}

/* ------------------------------------------------------------------ cancelling */

/* Waits until the scheduler holds `n` jobs ahead of the workers. */
static void await_waiting(int port, long long n) {
    for (int i = 0; i < WAIT_MS / POLL_MS; i++) {
        json_t *st = call(port, "GET", "/jobs/stats", NULL, NULL, 200);
        long long waiting = jint(json_object_get(st, "scheduler"), "waiting");
        json_decref(st);
        if (waiting == n) return;
        sleep_ms(POLL_MS);
    }
    coil_test_fail(__FILE__, __LINE__, "the scheduler never held %lld jobs", n);
}

TEST(jobs_cancel_queued_and_running) {
    serve_proc p;
    serve_start(&p, (const char *const[]){"--job-workers", "1", NULL});
    job_id sleeper, waiting;
    enqueue(p.port, "demo.sleep", NULL, "{\"ms\": 60000}", &sleeper);
    json_decref(wait_job(p.port, &sleeper, "running"));
    /* Delayed, so that the scheduler does not hold it yet. */
    enqueue(p.port, "demo.noop", "?delay_ms=600000", "{}", &waiting);

    /* The waiting job: cancelled at once, and it stays so. */
    char path[96];
    snprintf(path, sizeof path, "/jobs/%s", waiting.s);
    json_t *j = call(p.port, "DELETE", path, NULL, NULL, 200);
    ASSERT_STR_EQ(jstr(j, "id"), waiting.s);
    ASSERT_STR_EQ(jstr(j, "status"), "cancelled");
    json_decref(j);
    for (int i = 0; i < 10; i++) {
        json_t *doc = job_doc(p.port, &waiting);
        ASSERT_STR_EQ(jstr(doc, "status"), "cancelled");
        ASSERT_EQ(jint(doc, "attempts"), 0); /* it never ran */
        json_decref(doc);
        sleep_ms(50);
    }
    j = call(p.port, "DELETE", path, NULL, NULL, 409); /* already final */
    ASSERT_STR_EQ(jstr(j, "status"), "cancelled");
    json_decref(j);
    snprintf(path, sizeof path, "/jobs/%s/result", waiting.s);
    j = call(p.port, "GET", path, NULL, NULL, 409);
    ASSERT_STR_EQ(jstr(j, "status"), "cancelled");
    json_decref(j);

    /* A job the scheduler holds for the busy worker: the store cannot tell
     * whether it reached a worker, so it answers 202 like a running job;
     * the scheduler gives it back, and it ends cancelled without running. */
    job_id held;
    enqueue(p.port, "demo.noop", NULL, "{}", &held);
    await_waiting(p.port, 1);
    serve_reply d; /* the stall dump shows where it is */
    serve_http(p.port, "GET", "/jobs/dump", NULL, NULL, &d);
    ASSERT_EQ(d.status, 200);
    char want[96];
    snprintf(want, sizeof want, "job %s kind demo.noop", held.s);
    if (!d.body || !strstr(d.body, want) || !strstr(d.body, "slot 0 busy"))
        coil_test_fail(__FILE__, __LINE__, "GET /jobs/dump lacks %s:\n%s", want, d.body);
    serve_reply_free(&d);
    snprintf(path, sizeof path, "/jobs/%s", held.s);
    j = call(p.port, "DELETE", path, NULL, NULL, 202);
    json_decref(j);
    j = wait_job_at(p.port, &held, "cancelled", 30000, __LINE__);
    ASSERT_EQ(jint(j, "attempts"), 0);
    json_decref(j);

    /* The running job: 202, then the worker is stopped and it ends cancelled. */
    snprintf(path, sizeof path, "/jobs/%s/result", sleeper.s);
    j = call(p.port, "GET", path, NULL, NULL, 409);
    ASSERT_STR_EQ(jstr(j, "status"), "running");
    json_decref(j);
    snprintf(path, sizeof path, "/jobs/%s", sleeper.s);
    j = call(p.port, "DELETE", path, NULL, NULL, 202);
    ASSERT_STR_EQ(jstr(j, "id"), sleeper.s);
    ASSERT_STR_EQ(jstr(j, "status"), "running");
    ASSERT(json_is_true(json_object_get(j, "cancel_requested")));
    json_decref(j);
    json_t *doc = wait_job_at(p.port, &sleeper, "cancelled", 30000, __LINE__);
    ASSERT_EQ(jint(doc, "attempts"), 1); /* not retried */
    ASSERT(jnull(doc, "result"));
    json_decref(doc);

    /* The one worker is free again. */
    job_id next;
    enqueue(p.port, "demo.noop", NULL, "{}", &next);
    json_decref(wait_job(p.port, &next, "succeeded"));
    serve_stop(&p);
    serve_cleanup(&p);
}

/* ------------------------------------------------------------------ idempotency */

typedef struct same_key {
    int port;
    job_id id;
    bool duplicate;
    pthread_t tid;
} same_key;

static void *post_same_key(void *arg) {
    same_key *c = arg;
    json_t *j = post_job_at(c->port, "demo.noop", NULL, "Idempotency-Key: race\r\n", "{}", &c->id,
                            __LINE__);
    c->duplicate = json_is_true(json_object_get(j, "duplicate"));
    json_decref(j);
    return NULL;
}

TEST(jobs_idempotency_key_makes_one_job) {
    serve_proc p;
    serve_start(&p, NULL);
    job_id first, again, other;
    json_t *j = post_job_at(p.port, "demo.noop", NULL, "Idempotency-Key: order-17\r\n",
                            "{\"n\": 1}", &first, __LINE__);
    ASSERT(json_is_false(json_object_get(j, "duplicate")));
    json_decref(j);
    json_decref(wait_job(p.port, &first, "succeeded"));
    /* Same key, even another payload: the first job, flagged, with its
     * current status. */
    j = post_job_at(p.port, "demo.noop", NULL, "Idempotency-Key: order-17\r\n", "{\"n\": 2}",
                    &again, __LINE__);
    ASSERT_STR_EQ(again.s, first.s);
    ASSERT(json_is_true(json_object_get(j, "duplicate")));
    ASSERT_STR_EQ(jstr(j, "status"), "succeeded");
    json_decref(j);
    j = post_job_at(p.port, "demo.noop", NULL, "Idempotency-Key: order-18\r\n", "{}", &other,
                    __LINE__);
    ASSERT(strcmp(other.s, first.s) != 0);
    ASSERT(json_is_false(json_object_get(j, "duplicate")));
    json_decref(j);

    /* Sixteen clients at once with one key: one job. */
    enum { RACERS = 16 };
    same_key c[RACERS];
    for (int i = 0; i < RACERS; i++) {
        c[i] = (same_key){.port = p.port};
        ASSERT_EQ(pthread_create(&c[i].tid, NULL, post_same_key, &c[i]), 0);
    }
    int fresh = 0;
    for (int i = 0; i < RACERS; i++) {
        ASSERT_EQ(pthread_join(c[i].tid, NULL), 0);
        ASSERT_STR_EQ(c[i].id.s, c[0].id.s);
        fresh += !c[i].duplicate;
    }
    ASSERT_EQ(fresh, 1);

    json_t *all = list_all(p.port, "?kind=demo.noop&limit=1000", 2);
    ASSERT_EQ(json_array_size(all), 3);
    int seen_first = 0;
    size_t i;
    json_t *doc;
    json_array_foreach(all, i, doc) seen_first += !strcmp(jstr(doc, "id"), first.s);
    ASSERT_EQ(seen_first, 1);
    json_decref(all);
    serve_stop(&p);
    serve_cleanup(&p);
}

/* ------------------------------------------------------------------ scheduling */

TEST(jobs_delayed_job_waits_for_run_at) {
    serve_proc p;
    serve_start(&p, NULL);
    job_id id;
    long long asked = wall_ms();
    enqueue(p.port, "demo.noop", "?delay_ms=1500", "{}", &id);
    long long answered = wall_ms();
    json_t *doc = job_doc(p.port, &id);
    long long looked = wall_ms();
    check_doc(doc, &id, "demo.noop");
    /* 1500 ms from when the server took the request (the same clock). */
    long long run_at = jint(doc, "run_at");
    ASSERT_GE(run_at, asked + 1500);
    ASSERT_LE(run_at, answered + 1500);
    if (looked < run_at) { /* we looked before it was due (the usual case) */
        ASSERT_STR_EQ(jstr(doc, "status"), "queued");
        ASSERT(jnull(doc, "started_at"));
        char path[96];
        snprintf(path, sizeof path, "/jobs/%s/result", id.s);
        json_t *j = call(p.port, "GET", path, NULL, NULL, 409);
        ASSERT_STR_EQ(jstr(j, "status"), "queued");
        json_decref(j);
    }
    json_decref(doc);
    doc = wait_job(p.port, &id, "succeeded");
    ASSERT_GE(jint(doc, "started_at"), run_at);
    json_decref(doc);
    serve_stop(&p);
    serve_cleanup(&p);
}

/* With the one worker busy, a low-priority job and then a high-priority
 * one are enqueued; the high one runs first. demo.append writes in the
 * order the jobs ran. */
TEST(jobs_higher_priority_runs_first) {
    serve_proc p;
    serve_start(&p, (const char *const[]){"--demo-unsafe", "--job-workers", "1", NULL});
    char payload[256];
    job_id blocker, low, high;
    enqueue(p.port, "demo.sleep", NULL, "{\"ms\": 2000}", &blocker);
    json_decref(wait_job(p.port, &blocker, "running"));
    snprintf(payload, sizeof payload, "{\"path\": \"%s/order\", \"line\": \"low\"}", p.dir);
    enqueue(p.port, "demo.append", "?priority=-5", payload, &low);
    snprintf(payload, sizeof payload, "{\"path\": \"%s/order\", \"line\": \"high\"}", p.dir);
    enqueue(p.port, "demo.append", "?priority=7", payload, &high);

    json_t *b = wait_job(p.port, &blocker, "succeeded");
    json_t *l = wait_job(p.port, &low, "succeeded");
    json_t *h = wait_job(p.port, &high, "succeeded");
    ASSERT_EQ(jint(l, "priority"), -5);
    ASSERT_EQ(jint(h, "priority"), 7);
    /* Both were waiting when the worker came free (else this proves nothing). */
    if (jint(b, "finished_at") < jint(h, "created_at"))
        coil_test_fail(__FILE__, __LINE__, "the blocker ended before the jobs were enqueued");
    char path[128];
    snprintf(path, sizeof path, "%s/order", p.dir);
    char *order = serve_read_file(path, NULL);
    /* The effects' order is the proof: finished_at is when each record
     * reached the writer, and records are written apart from the runs. */
    ASSERT_STR_EQ(order, "high\nlow\n");
    free(order);
    json_decref(b);
    json_decref(l);
    json_decref(h);
    serve_stop(&p);
    serve_cleanup(&p);
}

/* A job that always crashes, 3 attempts, backoff 200 ms: each retry waits
 * uniform(0, 200 * 2^(n-1)) ms after attempt n failed, as the "failed" docs
 * show (run_at against updated_at, the failure), and no attempt starts
 * before its run_at. */
TEST(jobs_retries_back_off) {
    enum { BASE = 200, SLACK_MS = 10000 };
    serve_proc p;
    serve_start(&p, (const char *const[]){"--demo-unsafe", "--job-workers", "1", NULL});
    job_id id;
    enqueue(p.port, "demo.crash", "?max_attempts=3&backoff_ms=200", "{}", &id);
    long long started[4] = {0}, run_at[4] = {0}; /* by attempt number */
    int failed_seen = 0;
    coil_time until = coil_now() + COIL_MSEC(WAIT_MS);
    json_t *doc;
    for (;;) {
        doc = job_doc(p.port, &id);
        const char *st = jstr(doc, "status");
        long long n = jint(doc, "attempts");
        ASSERT(n >= 0 && n <= 3);
        if (!jnull(doc, "started_at") && n >= 1) started[n] = jint(doc, "started_at");
        if (!strcmp(st, "failed")) {
            ASSERT(n == 1 || n == 2);
            /* The delay counts from the failure, the job's last change. */
            long long end = jint(doc, "updated_at");
            long long wait = jint(doc, "run_at") - end, bound = (long long)BASE << (n - 1);
            if (wait < 0 || wait > bound)
                coil_test_fail(__FILE__, __LINE__, "retry %lld waits %lld ms, not in [0, %lld]: %s",
                               n, wait, bound, json_dumps(doc, JSON_COMPACT));
            if (!run_at[n]) failed_seen++;
            run_at[n] = jint(doc, "run_at");
            ASSERT_EQ(jint(json_object_get(doc, "error"), "signal"), 11);
        }
        if (is_final(st)) break;
        if (coil_now() > until)
            coil_test_fail(__FILE__, __LINE__, "not final: %s", json_dumps(doc, JSON_COMPACT));
        json_decref(doc);
        sleep_ms(5);
    }
    ASSERT_STR_EQ(jstr(doc, "status"), "dead");
    ASSERT_EQ(jint(doc, "attempts"), 3);
    ASSERT_EQ(jint(json_object_get(doc, "error"), "signal"), 11);
    for (int n = 2; n <= 3; n++) {
        if (run_at[n - 1] && started[n]) ASSERT_GE(started[n], run_at[n - 1]);
        if (started[n - 1] && started[n]) {
            long long gap = started[n] - started[n - 1];
            ASSERT_GE(gap, 0);
            ASSERT_LE(gap, ((long long)BASE << (n - 2)) + SLACK_MS);
        }
    }
    printf("backoff: %d of 2 waits seen; attempts started at +0, +%lld, +%lld ms\n", failed_seen,
           started[2] ? started[2] - started[1] : -1, started[3] ? started[3] - started[1] : -1);
    json_decref(doc);
    serve_stop(&p);
    serve_cleanup(&p);
}

/* ------------------------------------------------------------------ listing */

TEST(jobs_list_paginates_and_filters) {
    serve_proc p;
    serve_start(&p, NULL);
    enum { N = 5 };
    job_id noop[N], later;
    for (int i = 0; i < N; i++) {
        enqueue(p.port, "demo.noop", NULL, "{}", &noop[i]);
        json_decref(wait_job(p.port, &noop[i], "succeeded"));
    }
    enqueue(p.port, "demo.sleep", "?delay_ms=600000", "{\"ms\": 1}", &later);

    /* Pages of two, newest first, to the end. */
    char path[256] = "/jobs?kind=demo.noop&limit=2";
    int got = 0;
    for (int page = 0; page < N + 2; page++) {
        json_t *j = call(p.port, "GET", path, NULL, NULL, 200);
        json_t *jobs = json_object_get(j, "jobs");
        ASSERT(json_is_array(jobs));
        ASSERT_LE(json_array_size(jobs), 2);
        size_t i;
        json_t *doc;
        json_array_foreach(jobs, i, doc) {
            ASSERT(got < N);
            ASSERT_STR_EQ(jstr(doc, "id"), noop[N - 1 - got].s);
            check_doc(doc, &noop[N - 1 - got], "demo.noop");
            got++;
        }
        json_t *next = json_object_get(j, "next_cursor");
        if (json_is_null(next)) {
            json_decref(j);
            break;
        }
        ASSERT(json_is_string(next));
        ASSERT_EQ(json_array_size(jobs), 2); /* a short page is the last */
        snprintf(path, sizeof path, "/jobs?kind=demo.noop&limit=2&cursor=%s",
                 json_string_value(next));
        json_decref(j);
    }
    ASSERT_EQ(got, N);

    /* Filters. */
    json_t *all = list_all(p.port, "?state=queued", 10);
    ASSERT_EQ(json_array_size(all), 1);
    ASSERT_STR_EQ(jstr(json_array_get(all, 0), "id"), later.s);
    json_decref(all);
    ASSERT_EQ(count_jobs(p.port, "?state=queued&kind=demo.noop"), 0);
    ASSERT_EQ(count_jobs(p.port, "?state=succeeded"), N);
    ASSERT_EQ(count_jobs(p.port, "?state=succeeded&kind=demo.sleep"), 0);
    ASSERT_EQ(count_jobs(p.port, "?state=dead"), 0);
    ASSERT_EQ(count_jobs(p.port, "?kind=demo.sleep"), 1);
    json_t *j = call(p.port, "GET", "/jobs", NULL, NULL, 200); /* no filter, default limit */
    ASSERT_EQ(json_array_size(json_object_get(j, "jobs")), N + 1);
    ASSERT(json_is_null(json_object_get(j, "next_cursor")));
    ASSERT_STR_EQ(jstr(json_array_get(json_object_get(j, "jobs"), 0), "id"), later.s);
    json_decref(j);
    serve_stop(&p);
    serve_cleanup(&p);
}

/* ------------------------------------------------------------------ events */

typedef struct sse_event {
    char name[32];
    json_t *data;
} sse_event;

/* Parses a text/event-stream body into events (at most `max`). Returns
 * how many. Fails the test on data that is not JSON. */
static size_t parse_sse(const char *body, sse_event *ev, size_t max) {
    size_t n = 0;
    char *copy = strdup(body);
    ASSERT(copy != NULL);
    /* Drop the CRs: an event ends at an empty line whichever ending is used. */
    char *w = copy;
    for (const char *r = copy; *r; r++)
        if (*r != '\r') *w++ = *r;
    *w = '\0';
    char name[32] = "message";
    char data[65536] = "";
    size_t dlen = 0;
    for (char *line = copy; line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        if (!*line) {
            if (dlen) {
                ASSERT(n < max);
                json_error_t e;
                ev[n].data = json_loads(data, 0, &e);
                if (!ev[n].data) coil_test_fail(__FILE__, __LINE__, "event data: %s", data);
                snprintf(ev[n].name, sizeof ev[n].name, "%s", name);
                n++;
            }
            snprintf(name, sizeof name, "message");
            dlen = 0;
            data[0] = '\0';
        } else if (!strncmp(line, "event:", 6)) {
            snprintf(name, sizeof name, "%s", line + 6 + (line[6] == ' '));
        } else if (!strncmp(line, "data:", 5)) {
            const char *v = line + 5 + (line[5] == ' ');
            ASSERT(dlen + strlen(v) + 2 < sizeof data);
            if (dlen) data[dlen++] = '\n';
            memcpy(data + dlen, v, strlen(v) + 1);
            dlen += strlen(v);
        }
        line = nl ? nl + 1 : NULL;
    }
    free(copy);
    return n;
}

/* Reads GET /jobs/{id}/events to its end (30 s at most) and parses it. */
static size_t read_events(int port, const job_id *id, sse_event *ev, size_t max) {
    char path[96];
    snprintf(path, sizeof path, "/jobs/%s/events", id->s);
    serve_reply r;
    int err = serve_try_http_for(port, "GET", path, NULL, NULL, 30000, &r);
    if (err || !r.complete)
        coil_test_fail(__FILE__, __LINE__, "GET %s did not end (%s); got:\n%s%s", path,
                       strerror(-err), r.head ? r.head : "", r.body ? r.body : "");
    ASSERT_EQ(r.status, 200);
    char type[128];
    ASSERT(serve_header(&r, "Content-Type", type, sizeof type));
    ASSERT_CONTAINS(type, "text/event-stream");
    size_t n = parse_sse(r.body, ev, max);
    serve_reply_free(&r);
    return n;
}

TEST(jobs_events_stream_until_final) {
    serve_proc p;
    serve_start(&p, (const char *const[]){"--job-workers", "1", NULL});
    job_id id;
    enqueue(p.port, "demo.sleep", NULL, "{\"ms\": 800}", &id);
    enum { MAX_EVENTS = 512 };
    static sse_event ev[MAX_EVENTS];
    size_t n = read_events(p.port, &id, ev, MAX_EVENTS);
    ASSERT_GE(n, 2);
    ASSERT_STR_EQ(ev[0].name, "status");
    bool running = false;
    int progress = 0;
    long long last_pct = -1;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(ev[i].name, "status")) {
            check_doc(ev[i].data, &id, "demo.sleep");
            const char *st = jstr(ev[i].data, "status");
            running |= !strcmp(st, "running");
            if (i + 1 < n) ASSERT(!is_final(st)); /* nothing after the final state */
        } else if (!strcmp(ev[i].name, "progress")) {
            ASSERT_STR_EQ(jstr(ev[i].data, "id"), id.s);
            long long pct = jint(ev[i].data, "progress");
            ASSERT(pct >= 0 && pct <= 100);
            ASSERT_GE(pct, last_pct);
            last_pct = pct;
            json_t *m = json_object_get(ev[i].data, "message");
            ASSERT(json_is_string(m) || json_is_null(m));
            progress++;
        } else if (strcmp(ev[i].name, "message") != 0) {
            coil_test_fail(__FILE__, __LINE__, "unexpected event %s", ev[i].name);
        }
    }
    ASSERT_STR_EQ(ev[n - 1].name, "status");
    ASSERT_STR_EQ(jstr(ev[n - 1].data, "status"), "succeeded");
    ASSERT(running);
    ASSERT_GE(progress, 1);
    printf("events: %zu, %d of them progress\n", n, progress);
    for (size_t i = 0; i < n; i++) json_decref(ev[i].data);

    /* A job already final: its status, and the end. */
    n = read_events(p.port, &id, ev, MAX_EVENTS);
    ASSERT_EQ(n, 1);
    ASSERT_STR_EQ(ev[0].name, "status");
    ASSERT_STR_EQ(jstr(ev[0].data, "status"), "succeeded");
    json_decref(ev[0].data);
    serve_stop(&p);
    serve_cleanup(&p);
}

/* ------------------------------------------------------------------ /ids/next */

enum { ID_CLIENTS = 64, IDS_EACH = 20, IDS_MAX = 8192 };

typedef struct id_client {
    int port;
    int want;                     /* ids to take; 0: until stopped or refused */
    atomic_bool *stop;
    atomic_int *taken;            /* ids taken by all clients */
    long long ids[IDS_MAX];       /* the ids acknowledged with 200 */
    int n;
    pthread_t tid;
} id_client;

/* Takes ids one request at a time. A failed connection or a cut-off
 * answer ends the client only in "until refused" mode. */
static void *take_ids(void *arg) {
    id_client *c = arg;
    while (c->want ? c->n < c->want : !atomic_load(c->stop)) {
        ASSERT(c->n < IDS_MAX);
        serve_reply r;
        int err = serve_try_http(c->port, "GET", "/ids/next", NULL, NULL, &r);
        if (err && !c->want) {
            serve_reply_free(&r);
            break;
        }
        if (err || r.status != 200)
            coil_test_fail(__FILE__, __LINE__, "GET /ids/next: %s, status %d: %s",
                           strerror(-err), r.status, r.body ? r.body : "");
        json_t *j = serve_json(&r);
        long long id = jint(j, "id");
        ASSERT_GE(id, 1);
        c->ids[c->n++] = id;
        json_decref(j);
        serve_reply_free(&r);
        if (c->taken) atomic_fetch_add(c->taken, 1);
    }
    return NULL;
}

/* Runs ID_CLIENTS clients taking `each` ids at once; appends what they got
 * to ids[] (*n of them). */
static void take_ids_together(int port, int each, long long *ids, int *n) {
    static id_client c[ID_CLIENTS];
    for (int i = 0; i < ID_CLIENTS; i++) {
        c[i] = (id_client){.port = port, .want = each};
        ASSERT_EQ(pthread_create(&c[i].tid, NULL, take_ids, &c[i]), 0);
    }
    for (int i = 0; i < ID_CLIENTS; i++) {
        ASSERT_EQ(pthread_join(c[i].tid, NULL), 0);
        ASSERT_EQ(c[i].n, each);
        memcpy(ids + *n, c[i].ids, sizeof c[i].ids[0] * (size_t)each);
        *n += each;
    }
}

/* 64 clients take ids at once, the server restarts (SIGTERM), they take
 * more: every id from 1 to the total comes exactly once. */
TEST(jobs_ids_are_unique_and_dense_across_restart) {
    enum { TOTAL = 2 * ID_CLIENTS * IDS_EACH };
    serve_proc p;
    serve_start(&p, NULL);
    static long long ids[TOTAL];
    int n = 0;
    take_ids_together(p.port, IDS_EACH, ids, &n);
    serve_stop(&p);
    serve_launch(&p, NULL);
    take_ids_together(p.port, IDS_EACH, ids, &n);
    ASSERT_EQ(n, TOTAL);
    static bool seen[TOTAL + 1];
    for (int i = 0; i < n; i++) {
        if (ids[i] < 1 || ids[i] > TOTAL)
            coil_test_fail(__FILE__, __LINE__, "id %lld out of 1..%d", ids[i], TOTAL);
        if (seen[ids[i]]) coil_test_fail(__FILE__, __LINE__, "id %lld given twice", ids[i]);
        seen[ids[i]] = true;
    }
    /* n ids in 1..TOTAL, none twice: each exactly once. */
    serve_stop(&p);
    serve_cleanup(&p);
}

static int cmp_ll(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/* Clients take ids until the server is killed with SIGKILL; after the
 * restart no id acknowledged before the kill is handed out again, and the
 * counter goes on from above them. */
TEST(jobs_ids_never_repeat_after_kill_9) {
    enum { CLIENTS = 16, AFTER = 200 };
    serve_proc p;
    serve_start(&p, NULL);
    static id_client c[CLIENTS];
    atomic_bool stop = false;
    atomic_int taken = 0;
    for (int i = 0; i < CLIENTS; i++) {
        c[i] = (id_client){.port = p.port, .stop = &stop, .taken = &taken};
        ASSERT_EQ(pthread_create(&c[i].tid, NULL, take_ids, &c[i]), 0);
    }
    coil_time until = coil_now() + COIL_SEC(60);
    while (atomic_load(&taken) < 1000 && coil_now() < until) sleep_ms(5);
    ASSERT_GE(atomic_load(&taken), 1000);
    serve_kill(&p); /* under the clients' requests */
    atomic_store(&stop, true);
    static long long ids[CLIENTS * IDS_MAX + AFTER];
    int n = 0;
    long long top = 0;
    for (int i = 0; i < CLIENTS; i++) {
        ASSERT_EQ(pthread_join(c[i].tid, NULL), 0);
        for (int k = 0; k < c[i].n; k++) {
            ids[n++] = c[i].ids[k];
            if (c[i].ids[k] > top) top = c[i].ids[k];
        }
    }
    int before = n;

    serve_launch(&p, NULL);
    static id_client one;
    one = (id_client){.port = p.port, .want = AFTER};
    take_ids(&one);
    for (int k = 0; k < AFTER; k++) {
        if (one.ids[k] <= top)
            coil_test_fail(__FILE__, __LINE__, "after the restart, id %lld <= %lld from before",
                           one.ids[k], top);
        if (k) ASSERT_EQ(one.ids[k], one.ids[k - 1] + 1); /* one client: consecutive */
        ids[n++] = one.ids[k];
    }
    qsort(ids, (size_t)n, sizeof ids[0], cmp_ll);
    for (int i = 1; i < n; i++)
        if (ids[i] == ids[i - 1]) coil_test_fail(__FILE__, __LINE__, "id %lld twice", ids[i]);
    printf("ids: %d acknowledged before kill -9 (highest %lld), the next after it %lld\n", before,
           top, one.ids[0]);
    serve_stop(&p);
    serve_cleanup(&p);
}

/* ------------------------------------------------------------------ kill -9 */

enum { APPENDS = 2000, SLEEP_EVERY = 25, SUBMITTERS = 8 };

typedef struct submit_state {
    int port;
    char effects[128];            /* the file demo.append writes */
    job_id ids[APPENDS];          /* job of append i, if accepted[i] */
    bool accepted[APPENDS];
    job_id sleeps[APPENDS / SLEEP_EVERY + 1];
    atomic_int nsleeps;
} submit_state;

typedef struct submitter {
    submit_state *s;
    int index;                    /* this one submits i = index mod SUBMITTERS */
    pthread_t tid;
} submitter;

static void *submit_appends(void *arg) {
    submitter *me = arg;
    submit_state *s = me->s;
    for (int i = me->index; i < APPENDS; i += SUBMITTERS) {
        char payload[256];
        snprintf(payload, sizeof payload, "{\"path\": \"%s\", \"line\": \"%d\"}", s->effects, i);
        enqueue(s->port, "demo.append", NULL, payload, &s->ids[i]);
        s->accepted[i] = true;
        if (i % SLEEP_EVERY == 0) { /* so that jobs are running at the kill */
            int k = atomic_fetch_add(&s->nsleeps, 1);
            enqueue(s->port, "demo.sleep", NULL, "{\"ms\": 300}", &s->sleeps[k]);
        }
    }
    return NULL;
}

/* The headline: 2,000 demo.append jobs (and some sleeps) are accepted, the
 * server is killed with SIGKILL while many wait and some run, and after a
 * restart on the same data every accepted job succeeds: each line is in
 * the effects file at least once. */
TEST(jobs_accepted_jobs_survive_kill_9) {
    const char *const args[] = {"--demo-unsafe", "--job-workers", "2", "--no-access-log", NULL};
    serve_proc p;
    serve_start(&p, args);
    coil_time deadline = coil_now() + COIL_SEC(110); /* under the runner's 120 s */
    static submit_state s;
    memset(&s, 0, sizeof s);
    s.port = p.port;
    snprintf(s.effects, sizeof s.effects, "%s/effects", p.dir);
    submitter sub[SUBMITTERS];
    for (int i = 0; i < SUBMITTERS; i++) {
        sub[i] = (submitter){.s = &s, .index = i};
        ASSERT_EQ(pthread_create(&sub[i].tid, NULL, submit_appends, &sub[i]), 0);
    }
    for (int i = 0; i < SUBMITTERS; i++) ASSERT_EQ(pthread_join(sub[i].tid, NULL), 0);
    for (int i = 0; i < APPENDS; i++) ASSERT(s.accepted[i]);

    /* Wait for some to succeed, then look at the queue and kill. */
    while (!any_job(p.port, "?state=succeeded&limit=1") && coil_now() < deadline)
        sleep_ms(POLL_MS);
    size_t queued = count_jobs(p.port, "?state=queued&limit=1000");
    size_t running = count_jobs(p.port, "?state=running&limit=1000");
    size_t done = count_jobs(p.port, "?state=succeeded&limit=1000");
    serve_kill(&p);
    int nsleeps = atomic_load(&s.nsleeps);
    printf("kill -9 with %zu queued, %zu running, %zu succeeded (counted in turn) of %d jobs\n",
           queued, running, done, APPENDS + nsleeps);
    ASSERT_GE(done, 1);
    if (queued + running == 0)
        coil_test_fail(__FILE__, __LINE__, "nothing was waiting at the kill: this proves nothing");

    serve_launch(&p, args);
    /* Every accepted job reaches a final state. */
    for (;;) {
        size_t left = count_jobs(p.port, "?state=queued&limit=1000") +
                      count_jobs(p.port, "?state=running&limit=1000") +
                      count_jobs(p.port, "?state=failed&limit=1000");
        if (left == 0) break;
        if (coil_now() > deadline)
            coil_test_fail(__FILE__, __LINE__, "%zu jobs not final after the restart", left);
        sleep_ms(200);
    }
    for (int i = 0; i < APPENDS; i++) {
        json_t *doc = job_doc(p.port, &s.ids[i]);
        if (strcmp(jstr(doc, "status"), "succeeded") != 0)
            coil_test_fail(__FILE__, __LINE__, "append %d: %s", i, json_dumps(doc, JSON_COMPACT));
        json_decref(doc);
    }
    for (int k = 0; k < nsleeps; k++) {
        json_t *doc = job_doc(p.port, &s.sleeps[k]);
        ASSERT_STR_EQ(jstr(doc, "status"), "succeeded");
        json_decref(doc);
    }
    serve_stop(&p);

    /* Every accepted append happened, at least once. */
    size_t len;
    char *effects = serve_read_file(s.effects, &len);
    static int times[APPENDS];
    memset(times, 0, sizeof times);
    int lines = 0, bad = 0;
    for (char *line = effects; *line;) {
        char *nl = strchr(line, '\n');
        if (!nl) break;
        char *end;
        long i = strtol(line, &end, 10);
        if (end == nl && i >= 0 && i < APPENDS) times[i]++;
        else bad++;
        lines++;
        line = nl + 1;
    }
    free(effects);
    int twice = 0;
    for (int i = 0; i < APPENDS; i++) {
        if (times[i] == 0) coil_test_fail(__FILE__, __LINE__, "append %d never happened", i);
        twice += times[i] > 1;
    }
    ASSERT_EQ(bad, 0);
    printf("effects: %d lines, %d appends ran more than once\n", lines, twice);
    serve_cleanup(&p);
}

/* SIGTERM with a job running: the server exits 0 (it stops the job after a
 * grace period), and the next server runs the job again to success. */
TEST(jobs_running_job_resumes_after_sigterm) {
    const char *const args[] = {"--job-workers", "1", NULL};
    serve_proc p;
    serve_start(&p, args);
    job_id id;
    enqueue(p.port, "demo.sleep", NULL, "{\"ms\": 4000}", &id);
    json_decref(wait_job(p.port, &id, "running"));
    serve_stop(&p);
    serve_launch(&p, args);
    json_t *doc = job_doc(p.port, &id);
    const char *st = jstr(doc, "status");
    if (strcmp(st, "queued") != 0 && strcmp(st, "running") != 0)
        coil_test_fail(__FILE__, __LINE__, "after the restart: %s", json_dumps(doc, JSON_COMPACT));
    json_decref(doc);
    doc = wait_job(p.port, &id, "succeeded");
    ASSERT_LE(jint(doc, "attempts"), 2);
    ASSERT(jnull(doc, "error"));
    json_decref(doc);
    serve_stop(&p);
    serve_cleanup(&p);
}

/* ------------------------------------------------------------------ full disk */

/* Moves this test process into a mount namespace of its own (the server it
 * starts inherits it), so that its mounts vanish with it. Returns false if
 * mounting is not permitted here. */
static bool private_mounts(void) {
    if (unshare(CLONE_NEWNS) != 0) {
        printf("SKIPPED: unshare(CLONE_NEWNS): %s\n", strerror(errno));
        return false;
    }
    ASSERT_EQ(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
    return true;
}

/* Fills the file system of `path`: writes the file until ENOSPC. */
static void fill_up(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ASSERT(fd >= 0);
    static char block[65536];
    memset(block, 'f', sizeof block);
    for (size_t size = sizeof block; size >= 1; size /= 2) {
        for (;;) {
            ssize_t n = write(fd, block, size);
            if (n < 0) {
                ASSERT_EQ(errno, ENOSPC);
                break;
            }
            ASSERT(n > 0);
        }
    }
    close(fd);
}

/* The data directory on a small tmpfs: once it is full, enqueues answer 503
 * with {"error"} and store nothing; the server lives on; once space is free
 * again, enqueues work again and every accepted job runs. */
TEST(jobs_full_disk_answers_503_and_recovers) {
    if (!private_mounts()) return;
    serve_proc p;
    serve_init(&p);
    ASSERT_EQ(mkdir(p.data, 0755), 0);
    ASSERT_EQ(mount("tmpfs", p.data, "tmpfs", 0, "size=16m"), 0);
    serve_launch(&p, (const char *const[]){"--job-workers", "1", NULL});
    job_id first;
    enqueue(p.port, "demo.noop", NULL, "{}", &first);
    json_decref(wait_job(p.port, &first, "succeeded"));

    char filler[128];
    snprintf(filler, sizeof filler, "%s/filler", p.data);
    fill_up(filler);

    /* Enqueue biggish payloads until the store cannot write. */
    static char payload[16384];
    snprintf(payload, sizeof payload, "{\"pad\": \"%0*d\"}", (int)sizeof payload - 16, 0);
    enum { TRIES = 500 };
    static job_id accepted[TRIES];
    int naccepted = 0, refused_at = -1;
    for (int k = 0; k < TRIES && refused_at < 0; k++) {
        char key[64];
        snprintf(key, sizeof key, "Idempotency-Key: full-%d\r\n", k);
        serve_reply r;
        serve_http(p.port, "POST", "/jobs/demo.noop", key, payload, &r);
        if (r.status == 202) {
            json_t *j = serve_json(&r);
            memcpy(accepted[naccepted++].s, jstr(j, "id"), 33);
            json_decref(j);
        } else if (r.status == 503) {
            json_t *j = serve_json(&r);
            ASSERT(json_is_string(json_object_get(j, "error")));
            json_decref(j);
            refused_at = k;
        } else {
            coil_test_fail(__FILE__, __LINE__, "POST on a full disk: %d %s", r.status, r.body);
        }
        serve_reply_free(&r);
    }
    if (refused_at < 0)
        coil_test_fail(__FILE__, __LINE__, "%d enqueues on a full disk, none refused", TRIES);
    serve_expect(p.port, "/health", 200, "ok");
    serve_reply r;
    serve_get(p.port, "/ids/next", &r); /* may fit in the log's free pages, or not */
    ASSERT(r.status == 200 || r.status == 503);
    int ids_status = r.status;
    serve_reply_free(&r);
    serve_assert_alive(&p);

    /* Space again: the refused key was never stored, so it makes a new job. */
    ASSERT_EQ(unlink(filler), 0);
    char key[64];
    snprintf(key, sizeof key, "Idempotency-Key: full-%d\r\n", refused_at);
    job_id again;
    json_t *j = post_job_at(p.port, "demo.noop", NULL, key, "{}", &again, __LINE__);
    ASSERT(json_is_false(json_object_get(j, "duplicate")));
    json_decref(j);
    json_decref(wait_job(p.port, &again, "succeeded"));
    for (int k = 0; k < naccepted; k++) json_decref(wait_job(p.port, &accepted[k], "succeeded"));
    printf("full disk: %d enqueues accepted, then 503; /ids/next answered %d\n", naccepted,
           ids_status);
    serve_stop(&p);
    ASSERT_EQ(umount(p.data), 0);
    serve_cleanup(&p);
}

/* A data directory on a read-only mount: the server refuses to start and
 * says why. (A mount cannot be made read-only under a running server: the
 * kernel refuses while files on it are open for writing.) */
TEST(jobs_read_only_data_dir_is_refused_at_start) {
    if (!private_mounts()) return;
    serve_proc p;
    serve_start(&p, NULL);
    job_id id;
    enqueue(p.port, "demo.noop", NULL, "{}", &id);
    json_decref(wait_job(p.port, &id, "succeeded"));
    serve_stop(&p);
    ASSERT_EQ(mount(p.data, p.data, NULL, MS_BIND, NULL), 0);
    ASSERT_EQ(mount(NULL, p.data, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL), 0);
    serve_spawn(&p, NULL);
    int status = serve_wait_exit(p.pid);
    p.pid = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 1)
        coil_test_fail(__FILE__, __LINE__, "coil serve on a read-only directory: status 0x%x",
                       status);
    char *log = serve_read_log(&p);
    ASSERT_CONTAINS(log, "Read-only file system");
    free(log);
    ASSERT_EQ(umount(p.data), 0);
    serve_cleanup(&p);
}

/* A dead or cancelled job runs again as a new job: same kind, payload and
 * limits; the old one stays as it ended. Other states are refused. */
TEST(jobs_retry_a_cancelled_or_dead_job) {
    serve_proc p;
    serve_start(&p, (const char *const[]){"--job-workers", "1", NULL});
    job_id cancelled, dead, done;
    enqueue(p.port, "demo.noop", "?delay_ms=600000&max_attempts=4", "{\"n\": 7}", &cancelled);
    char path[96];
    snprintf(path, sizeof path, "/jobs/%s", cancelled.s);
    json_decref(call(p.port, "DELETE", path, NULL, NULL, 200));
    snprintf(path, sizeof path, "/jobs/%s/retry", cancelled.s);
    json_t *j = call(p.port, "POST", path, NULL, NULL, 202);
    ASSERT_STR_EQ(jstr(j, "retry_of"), cancelled.s);
    job_id again;
    memcpy(again.s, jstr(j, "id"), 33);
    ASSERT(strcmp(again.s, cancelled.s) != 0);
    json_decref(j);
    json_t *doc = wait_job(p.port, &again, "succeeded");
    ASSERT_EQ(jint(doc, "max_attempts"), 4); /* its limits came along */
    json_decref(doc);
    doc = job_doc(p.port, &cancelled);
    ASSERT_STR_EQ(jstr(doc, "status"), "cancelled"); /* final stays final */
    json_decref(doc);
    /* Dead: one attempt, past its timeout. */
    enqueue(p.port, "demo.sleep", "?max_attempts=1&timeout_ms=50", "{\"ms\": 5000}", &dead);
    json_decref(wait_job(p.port, &dead, "dead"));
    snprintf(path, sizeof path, "/jobs/%s/retry", dead.s);
    j = call(p.port, "POST", path, NULL, NULL, 202);
    memcpy(again.s, jstr(j, "id"), 33);
    json_decref(j);
    json_decref(wait_job(p.port, &again, "dead"));
    /* Succeeded, and unknown: refused. */
    enqueue(p.port, "demo.noop", NULL, "{}", &done);
    json_decref(wait_job(p.port, &done, "succeeded"));
    snprintf(path, sizeof path, "/jobs/%s/retry", done.s);
    j = call(p.port, "POST", path, NULL, NULL, 409);
    ASSERT_STR_EQ(jstr(j, "status"), "succeeded");
    json_decref(j);
    expect_error(p.port, "POST", "/jobs/0123456789abcdef0123456789abcdef/retry", NULL, NULL, 404);
    serve_stop(&p);
    serve_cleanup(&p);
}

/* The routes that change jobs refuse another site's page (a form or a
 * fetch from elsewhere, with the user's access); the same origin, and
 * clients that are not browsers, pass. */
TEST(jobs_cross_site_changes_are_refused) {
    serve_proc p;
    serve_start(&p, (const char *const[]){"--job-workers", "1", NULL});
    job_id waiting;
    enqueue(p.port, "demo.noop", "?delay_ms=600000", "{}", &waiting);
    char path[96], retry[112], same[128];
    snprintf(path, sizeof path, "/jobs/%s", waiting.s);
    snprintf(retry, sizeof retry, "/jobs/%s/retry", waiting.s);
    static const char *const evil[] = {"Origin: http://evil.example\r\n",
                                       "Origin: null\r\n",
                                       "Sec-Fetch-Site: cross-site\r\n"};
    for (size_t i = 0; i < sizeof evil / sizeof *evil; i++) {
        expect_error(p.port, "POST", "/jobs/demo.noop", evil[i], "{}", 403);
        expect_error(p.port, "DELETE", path, evil[i], NULL, 403);
        expect_error(p.port, "POST", retry, evil[i], NULL, 403);
    }
    json_t *doc = job_doc(p.port, &waiting);
    ASSERT_STR_EQ(jstr(doc, "status"), "queued"); /* nothing happened to it */
    json_decref(doc);
    snprintf(same, sizeof same, "Origin: http://127.0.0.1\r\n"); /* the harness's Host */
    json_decref(call(p.port, "DELETE", path, same, NULL, 200));
    serve_stop(&p);
    serve_cleanup(&p);
}
