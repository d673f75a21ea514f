/* tests/app/test_kinds.c: the job kinds of `coil serve` (src/app/kind*.c).
 *
 * The kinds run through a real process pool: the workers are this test
 * executable exec'd again, and the kinds' handlers, registered by
 * constructors in the object library linked in, exist on both sides. The
 * validators, which the server calls before it stores a job, are also
 * called directly. report.pdf's output is checked with poppler's pdfinfo
 * and pdftoppm, on files in a temporary directory removed at the end.
 * report.pdf's images come from coil's HTTP server on a thread of the
 * test process (COIL_TEST_THREADS).
 */
#include "test.h"

#include "app/kinds.h"
#include "http/loopback_server.h"

#include <cairo.h>
#include <coil/http.h>
#include <dirent.h>
#include <pthread.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ helpers */

/* A pool whose cancel grace leaves a polling handler ample time to notice,
 * even on a loaded machine: a handler that returned by itself shows as
 * signal 0 in the outcome. */
static coil_pool *start_pool(size_t workers) {
    coil_pool_config cfg = {.workers = workers, .cancel_grace = COIL_SEC(5),
                            .kill_grace = COIL_MSEC(300)};
    coil_pool *p = NULL;
    ASSERT_EQ(coil_pool_start(&cfg, &p), 0);
    ASSERT(p != NULL);
    return p;
}

static int run(coil_pool *p, const char *kind, const char *payload, const coil_job_opts *opts,
               coil_job_outcome *out) {
    return coil_pool_run(p, kind, payload, strlen(payload), opts, out);
}

/* Progress reports of one job, in arrival order. */
typedef struct progress_log {
    int n;
    int pct[512];
} progress_log;

static void on_progress(void *arg, int percent, const char *message) {
    progress_log *log = arg;
    ASSERT(message != NULL);
    if (log->n < (int)(sizeof log->pct / sizeof log->pct[0])) log->pct[log->n++] = percent;
}

/* The reports rose (never fell) and ended at 100. */
static void assert_progress_to_100(const progress_log *log) {
    ASSERT(log->n >= 2);
    for (int i = 1; i < log->n; i++) ASSERT_GE(log->pct[i], log->pct[i - 1]);
    ASSERT_EQ(log->pct[log->n - 1], 100);
}

/* Calls kind's validator on `text`: 0, or -EINVAL with a message. */
static int validate(const char *kind, const char *text, char *msg, size_t cap) {
    const app_kind *k = coil_app_kind_find(kind);
    ASSERT(k != NULL);
    json_error_t jerr;
    json_t *doc = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (!doc) coil_test_fail(__FILE__, __LINE__, "bad JSON in test: %s", text);
    msg[0] = '\0';
    int err = k->validate(doc, msg, cap);
    json_decref(doc);
    if (err) ASSERT(msg[0] != '\0');
    return err;
}

/* The validator rejects `text` with a message naming `needle`, and so
 * does the handler in a worker. */
static void assert_rejected(coil_pool *p, const char *kind, const char *text, const char *needle) {
    char msg[256];
    ASSERT_EQ(validate(kind, text, msg, sizeof msg), -EINVAL);
    ASSERT_CONTAINS(msg, needle);
    if (!p) return;
    coil_job_outcome out;
    ASSERT_EQ(run(p, kind, text, NULL, &out), -EINVAL);
    ASSERT_STR_EQ(out.error, msg);
    ASSERT(out.result == NULL && !out.crashed);
}

/* A directory of its own under $TMPDIR, removed by rm_tree(). */
static void make_temp_dir(char *out, size_t cap) {
    const char *tmp = getenv("TMPDIR");
    snprintf(out, cap, "%s/coil-kinds-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    ASSERT(mkdtemp(out) != NULL);
}

static void rm_tree(const char *dir) {
    DIR *d = opendir(dir);
    ASSERT(d != NULL);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ASSERT_EQ(unlink(path), 0);
    }
    closedir(d);
    ASSERT_EQ(rmdir(dir), 0);
}

/* Reads a whole (small) file into buf; returns its length. */
static size_t read_file(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    ASSERT(f != NULL);
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return n;
}

static void write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    ASSERT(f != NULL);
    ASSERT_EQ(fwrite(data, 1, len, f), len);
    ASSERT_EQ(fclose(f), 0);
}

/* Runs a shell command; its stdout and stderr go to out (cap bytes).
 * Returns its exit status. */
static int run_tool(const char *cmd, char *out, size_t cap) {
    char full[1024];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *f = popen(full, "r");
    ASSERT(f != NULL);
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    int st = pclose(f);
    ASSERT(st != -1 && WIFEXITED(st));
    return WEXITSTATUS(st);
}

/* The integer after `key` in pdfinfo's output, -1 if none. */
static long info_field(const char *info, const char *key) {
    const char *at = strstr(info, key);
    return at ? strtol(at + strlen(key), NULL, 10) : -1;
}

/* ------------------------------------------------------------------ the table */

static int never(const void *payload, size_t len, coil_job_ctx *ctx) { return 0; }

TEST(every_kind_is_found_and_registered) {
    const char *safe[] = {"report.pdf", "titles.import", "demo.noop", "demo.stamp", "demo.sleep",
                          "demo.wait", "demo.cpu"};
    const char *unsafe[] = {"demo.crash", "demo.append"};
    ASSERT_EQ(coil_app_nkinds, 9);
    for (size_t i = 0; i < 7; i++) ASSERT(!coil_app_kind_find(safe[i])->unsafe);
    for (size_t i = 0; i < 2; i++) ASSERT(coil_app_kind_find(unsafe[i])->unsafe);
    for (size_t i = 0; i < coil_app_nkinds; i++) {
        const app_kind *k = &coil_app_kinds[i];
        ASSERT(coil_app_kind_find(k->name) == k);
        ASSERT(k->validate != NULL);
        /* The constructors registered a handler under the same name. */
        ASSERT_EQ(coil_job_register(k->name, never), -EEXIST);
    }
    ASSERT(coil_app_kind_find("demo.nope") == NULL);
    ASSERT(coil_app_kind_find("") == NULL);
    ASSERT(coil_app_kind_find(NULL) == NULL);
}

/* ------------------------------------------------------------------ demo.noop */

static coil_result noop_main(void *arg) {
    coil_pool *p = start_pool(1);
    coil_job_outcome out;
    ASSERT_EQ(run(p, "demo.noop", "{\"any\": [1, 2]}", NULL, &out), 0);
    ASSERT_EQ(out.result_len, 2);
    ASSERT_STR_EQ(out.result, "{}");
    ASSERT_STR_EQ(out.content_type, "application/json");
    coil_job_outcome_free(&out);
    assert_rejected(p, "demo.noop", "[1]", "object");
    /* Bytes that are not JSON fail in the handler too. */
    ASSERT_EQ(run(p, "demo.noop", "{nope", NULL, &out), -EINVAL);
    ASSERT_CONTAINS(out.error, "not JSON");
    ASSERT_EQ(coil_pool_stop(p, COIL_POOL_DRAIN), 0);
    return coil_ok(NULL);
}

TEST(noop_returns_an_empty_object) { RUN_MAIN(noop_main, NULL); }

/* ------------------------------------------------------------------ demo.stamp */

static coil_result stamp_main(void *arg) {
    coil_pool *p = start_pool(1);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long before = (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    coil_job_outcome out;
    ASSERT_EQ(run(p, "demo.stamp", "{}", NULL, &out), 0);
    clock_gettime(CLOCK_REALTIME, &ts);
    long long after = (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    ASSERT_STR_EQ(out.content_type, "application/json");
    json_t *doc = json_loadb(out.result, out.result_len, 0, NULL);
    ASSERT(doc != NULL);
    long long at = json_integer_value(json_object_get(doc, "started_us"));
    ASSERT_GE(at, before); /* the handler's own clock, read while it ran */
    ASSERT_LE(at, after);
    json_decref(doc);
    coil_job_outcome_free(&out);
    assert_rejected(p, "demo.stamp", "[1]", "object");
    ASSERT_EQ(coil_pool_stop(p, COIL_POOL_DRAIN), 0);
    return coil_ok(NULL);
}

TEST(stamp_returns_when_its_handler_began) { RUN_MAIN(stamp_main, NULL); }

/* ------------------------------------------------------------------ demo.sleep */

static coil_result sleep_main(void *arg) {
    coil_pool *p = start_pool(1);
    progress_log log = {0};
    coil_job_opts opts = {.on_progress = on_progress, .progress_arg = &log};
    coil_job_outcome out;
    ASSERT_EQ(run(p, "demo.sleep", "{\"ms\": 150}", &opts, &out), 0);
    ASSERT_STR_EQ(out.result, "{\"slept_ms\":150}");
    ASSERT_STR_EQ(out.content_type, "application/json");
    ASSERT_GE(out.run_ns, COIL_MSEC(150)); /* it slept at least that long */
    coil_job_outcome_free(&out);
    ASSERT_EQ(log.pct[0], 0);
    ASSERT_GE(log.n, 3);
    assert_progress_to_100(&log);
    ASSERT_EQ(run(p, "demo.sleep", "{\"ms\": 0}", NULL, &out), 0);
    ASSERT_STR_EQ(out.result, "{\"slept_ms\":0}");
    coil_job_outcome_free(&out);
    ASSERT_EQ(coil_pool_stop(p, COIL_POOL_DRAIN), 0);
    return coil_ok(NULL);
}

TEST(sleep_sleeps_and_reports_progress) { RUN_MAIN(sleep_main, NULL); }

typedef struct job_call {
    coil_pool *pool;
    const char *kind;
    const char *payload;
    progress_log log;
    coil_job_outcome out;
    int ret;
} job_call;

static coil_result call_task(void *arg) {
    job_call *c = arg;
    coil_job_opts opts = {.on_progress = on_progress, .progress_arg = &c->log};
    c->ret = run(c->pool, c->kind, c->payload, &opts, &c->out);
    return coil_ok(NULL);
}

/* Starts a long job in a task, waits (20 s at most) for its first
 * progress report, cancels the task, and checks the handler itself
 * stopped: no signal, and its worker runs the next job. */
static void assert_cancel_stops(coil_pool *p, const char *kind) {
    job_call c = {.pool = p, .kind = kind, .payload = "{\"ms\": 600000}"};
    coil_task *t = coil_spawn(call_task, &c);
    ASSERT(t != NULL);
    for (int i = 0; i < 2000 && c.log.n == 0; i++) coil_sleep(COIL_MSEC(10));
    ASSERT(c.log.n > 0);
    coil_cancel(t);
    ASSERT_EQ(coil_join(t, NULL), 0);
    ASSERT_EQ(c.ret, -ECANCELED);
    ASSERT_EQ(c.out.err, -ECANCELED);
    ASSERT_EQ(c.out.signal, 0);
    ASSERT(c.out.ran && !c.out.crashed);
    coil_job_outcome out;
    ASSERT_EQ(run(p, "demo.noop", "{}", NULL, &out), 0);
    ASSERT_EQ(out.pid, c.out.pid);
    coil_job_outcome_free(&out);
}

/* The same with the job's timeout. */
static void assert_timeout_stops(coil_pool *p, const char *kind) {
    coil_job_opts opts = {.timeout = COIL_MSEC(200)};
    coil_job_outcome out;
    ASSERT_EQ(run(p, kind, "{\"ms\": 600000}", &opts, &out), -ETIMEDOUT);
    ASSERT_EQ(out.signal, 0);
    ASSERT(out.ran && !out.crashed);
    int pid = out.pid;
    ASSERT_EQ(run(p, "demo.noop", "{}", NULL, &out), 0);
    ASSERT_EQ(out.pid, pid);
    coil_job_outcome_free(&out);
}

static coil_result sleep_cancel_main(void *arg) {
    coil_pool *p = start_pool(1);
    assert_cancel_stops(p, "demo.sleep");
    assert_timeout_stops(p, "demo.sleep");
    coil_pool_stats st;
    coil_pool_get_stats(p, &st);
    ASSERT_EQ(st.crashes, 0);
    ASSERT_EQ(st.spawned, 1);
    ASSERT_EQ(coil_pool_stop(p, COIL_POOL_DRAIN), 0);
    return coil_ok(NULL);
}

TEST(sleep_stops_when_cancelled_or_timed_out) { RUN_MAIN(sleep_cancel_main, NULL); }

/* ------------------------------------------------------------------ demo.cpu */

static coil_result cpu_main(void *arg) {
    coil_pool *p = start_pool(1);
    progress_log log = {0};
    coil_job_opts opts = {.on_progress = on_progress, .progress_arg = &log};
    coil_job_outcome out;
    ASSERT_EQ(run(p, "demo.cpu", "{\"ms\": 60}", &opts, &out), 0);
    ASSERT_GE(out.run_ns, COIL_MSEC(60));
    ASSERT_STR_EQ(out.content_type, "application/json");
    json_t *doc = json_loads(out.result, 0, NULL);
    ASSERT(doc != NULL);
    ASSERT_EQ(json_integer_value(json_object_get(doc, "ms")), 60);
    ASSERT(json_integer_value(json_object_get(doc, "iterations")) > 0);
    json_decref(doc);
    coil_job_outcome_free(&out);
    assert_progress_to_100(&log);
    assert_cancel_stops(p, "demo.cpu");
    assert_timeout_stops(p, "demo.cpu");
    ASSERT_EQ(coil_pool_stop(p, COIL_POOL_DRAIN), 0);
    return coil_ok(NULL);
}

TEST(cpu_burns_and_stops_when_asked) { RUN_MAIN(cpu_main, NULL); }

static coil_result ms_rejects_main(void *arg) {
    coil_pool *p = start_pool(1);
    const char *kinds[] = {"demo.sleep", "demo.cpu"};
    for (int i = 0; i < 2; i++) {
        assert_rejected(p, kinds[i], "{}", "\"ms\"");
        assert_rejected(p, kinds[i], "{\"ms\": -1}", "\"ms\"");
        assert_rejected(p, kinds[i], "{\"ms\": 600001}", "\"ms\"");
        assert_rejected(p, kinds[i], "{\"ms\": \"5\"}", "\"ms\"");
        assert_rejected(p, kinds[i], "{\"ms\": 1.5}", "\"ms\"");
        assert_rejected(p, kinds[i], "{\"ms\": null}", "\"ms\"");
        assert_rejected(p, kinds[i], "[{\"ms\": 5}]", "object");
        assert_rejected(p, kinds[i], "5", "object");
        char msg[256];
        ASSERT_EQ(validate(kinds[i], "{\"ms\": 600000}", msg, sizeof msg), 0);
        ASSERT_EQ(validate(kinds[i], "{\"ms\": 0, \"extra\": true}", msg, sizeof msg), 0);
    }
    ASSERT_EQ(coil_pool_stop(p, COIL_POOL_DRAIN), 0);
    return coil_ok(NULL);
}

TEST(sleep_and_cpu_reject_bad_ms) { RUN_MAIN(ms_rejects_main, NULL); }

/* ------------------------------------------------------------------ demo.crash */

static coil_result crash_main(void *arg) {
    coil_pool *p = start_pool(1);
    coil_job_outcome out;
    ASSERT_EQ(run(p, "demo.crash", "{}", NULL, &out), -ECHILD);
    ASSERT(out.crashed && out.ran);
    ASSERT_EQ(out.signal, SIGSEGV);
    ASSERT(out.result == NULL);
    int dead = out.pid;
    /* A new worker takes over. */
    ASSERT_EQ(run(p, "demo.noop", "{}", NULL, &out), 0);
    ASSERT_NE(out.pid, dead);
    coil_job_outcome_free(&out);
    coil_pool_stats st;
    coil_pool_get_stats(p, &st);
    ASSERT_EQ(st.crashes, 1);
    ASSERT_EQ(coil_pool_stop(p, COIL_POOL_DRAIN), 0);
    return coil_ok(NULL);
}

TEST(crash_dies_of_sigsegv) { RUN_MAIN(crash_main, NULL); }

/* ------------------------------------------------------------------ demo.append */

static void append(coil_pool *p, const char *path, const char *line) {
    json_t *doc = json_pack("{ssss}", "path", path, "line", line);
    char *text = json_dumps(doc, 0);
    coil_job_outcome out;
    ASSERT_EQ(run(p, "demo.append", text, NULL, &out), 0);
    ASSERT_STR_EQ(out.result, "{}");
    coil_job_outcome_free(&out);
    free(text);
    json_decref(doc);
}

static coil_result append_main(void *arg) {
    char dir[256], path[320], buf[1024];
    make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/log", dir);
    coil_pool *p = start_pool(2);
    append(p, path, "first");
    append(p, path, "");
    append(p, path, "third, \xc3\xa9t\xc3\xa9");
    ASSERT_EQ(read_file(path, buf, sizeof buf), 20);
    ASSERT_STR_EQ(buf, "first\n\nthird, \xc3\xa9t\xc3\xa9\n");
    char line200[201];
    memset(line200, 'x', 200);
    line200[200] = '\0';
    append(p, path, line200);
    ASSERT_EQ(read_file(path, buf, sizeof buf), 20 + 201);
    /* Shapes the validator refuses. */
    assert_rejected(p, "demo.append", "{\"path\": \"rel/log\", \"line\": \"a\"}", "\"path\"");
    assert_rejected(p, "demo.append", "{\"line\": \"a\"}", "\"path\"");
    assert_rejected(p, "demo.append", "{\"path\": \"/tmp/x\", \"line\": \"a\\nb\"}", "\"line\"");
    assert_rejected(p, "demo.append", "{\"path\": \"/tmp/x\", \"line\": 5}", "\"line\"");
    assert_rejected(p, "demo.append", "{\"path\": \"/tmp/x\"}", "\"line\"");
    char big[300];
    snprintf(big, sizeof big, "{\"path\": \"/tmp/x\", \"line\": \"%sx\"}", line200);
    assert_rejected(p, "demo.append", big, "200 bytes");
    /* A file that cannot be opened fails the job with the reason. */
    char missing[400];
    snprintf(missing, sizeof missing, "{\"path\": \"%s/no/such\", \"line\": \"a\"}", dir);
    coil_job_outcome out;
    ASSERT_EQ(run(p, "demo.append", missing, NULL, &out), -ENOENT);
    ASSERT_CONTAINS(out.error, "open");
    ASSERT_EQ(coil_pool_stop(p, COIL_POOL_DRAIN), 0);
    ASSERT_EQ(read_file(path, buf, sizeof buf), 20 + 201); /* no stray writes */
    rm_tree(dir);
    return coil_ok(NULL);
}

TEST(append_writes_one_line_per_job) { RUN_MAIN(append_main, NULL); }

/* ------------------------------------------------------------------ report.pdf */

/* A report payload of `rows` rows; value of row i is value(i). */
static char *report_payload(const char *title, size_t rows, double (*value)(size_t)) {
    json_t *arr = json_array();
    for (size_t i = 0; i < rows; i++) {
        char label[64];
        snprintf(label, sizeof label, "item %zu", i + 1);
        json_array_append_new(arr, json_pack("{sssf}", "label", label, "value", value(i)));
    }
    json_t *doc = json_pack("{sssssO}", "title", title, "subtitle", "made by a test", "rows", arr);
    json_decref(arr);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    ASSERT(text != NULL);
    return text;
}

static double ramp(size_t i) { return (double)(i % 97) * 12.5 + 0.25; }

/* Renders `payload`, stores the PDF as DIR/NAME.pdf, checks it with
 * pdfinfo (page count `pages`, title `title`) and renders page 1 with
 * pdftoppm. */
static void check_report(coil_pool *p, const char *dir, const char *name, const char *payload,
                         const char *title, size_t pages, progress_log *log) {
    coil_job_opts opts = {.on_progress = on_progress, .progress_arg = log};
    coil_job_outcome out;
    if (run(p, "report.pdf", payload, &opts, &out) != 0)
        coil_test_fail(__FILE__, __LINE__, "report.pdf failed: %d %s", out.err, out.error);
    ASSERT_STR_EQ(out.content_type, "application/pdf");
    ASSERT(out.result_len > 5);
    ASSERT_EQ(memcmp(out.result, "%PDF-", 5), 0);
    char pdf[512], cmd[1200], info[4096];
    snprintf(pdf, sizeof pdf, "%s/%s.pdf", dir, name);
    write_file(pdf, out.result, out.result_len);
    coil_job_outcome_free(&out);
    snprintf(cmd, sizeof cmd, "pdfinfo '%s'", pdf);
    ASSERT_EQ(run_tool(cmd, info, sizeof info), 0);
    ASSERT_EQ(info_field(info, "\nPages:"), (long)pages);
    ASSERT_CONTAINS(info, title);
    ASSERT_CONTAINS(info, "595.276 x 841.89 pts (A4)");
    /* Page 1 renders, without a word on stderr. */
    snprintf(cmd, sizeof cmd, "pdftoppm -r 20 -png -f 1 -l 1 -singlefile '%s' '%s/%s'", pdf, dir,
             name);
    ASSERT_EQ(run_tool(cmd, info, sizeof info), 0);
    ASSERT_STR_EQ(info, "");
    char png[512];
    snprintf(png, sizeof png, "%s/%s.png", dir, name);
    struct stat st;
    ASSERT_EQ(stat(png, &st), 0);
    ASSERT(st.st_size > 100);
}

static coil_result report_main(void *arg) {
    char dir[256];
    make_temp_dir(dir, sizeof dir);
    coil_pool *p = start_pool(2);
    progress_log log = {0};
    char *one = report_payload("One row", 1, ramp);
    check_report(p, dir, "one", one, "One row", 2, &log);
    assert_progress_to_100(&log);
    free(one);
    log = (progress_log){0};
    char *many = report_payload("Five hundred rows", 500, ramp);
    check_report(p, dir, "many", many, "Five hundred rows", 14, &log);
    free(many);
    assert_progress_to_100(&log);
    ASSERT_EQ(coil_pool_stop(p, COIL_POOL_DRAIN), 0);
    rm_tree(dir);
    return coil_ok(NULL);
}

TEST(report_renders_a_pdf_with_its_pages) { RUN_MAIN(report_main, NULL); }

TEST(report_page_count) {
    ASSERT_EQ(COIL_APP_REPORT_ROWS_PER_PAGE, 40);
    ASSERT_EQ(coil_app_report_pages(1), 2);
    ASSERT_EQ(coil_app_report_pages(40), 2);
    ASSERT_EQ(coil_app_report_pages(41), 3);
    ASSERT_EQ(coil_app_report_pages(500), 14);
    ASSERT_EQ(coil_app_report_pages(COIL_APP_REPORT_ROWS_MAX), 2501);
}

/* Negative, zero, huge and tiny values, long and non-ASCII labels: the
 * chart's scale and the cutting of text must cope. */
static double odd(size_t i) {
    const double v[] = {-1e308, 1e308, 0, -3.5, 1e-300, 42, -0.001, 7e14, 1.7e308, -2};
    return v[i % 10];
}

static double zero(size_t i) { return 0; }

static coil_result report_odd_main(void *arg) {
    char dir[256];
    make_temp_dir(dir, sizeof dir);
    coil_pool *p = start_pool(1);
    progress_log log = {0};
    char *text = report_payload("Odd values", 45, odd);
    check_report(p, dir, "odd", text, "Odd values", 3, &log);
    free(text);
    text = report_payload("Mixed signs", 10, odd); /* the chart spans zero */
    check_report(p, dir, "mixed", text, "Mixed signs", 2, &log);
    free(text);
    text = report_payload("Zeros", 3, zero);
    check_report(p, dir, "zeros", text, "Zeros", 2, &log);
    free(text);
    /* Strings at their longest, wider than their places. */
    char title[201], label[201];
    for (int i = 0; i < 100; i++) memcpy(title + 2 * i, "\xc3\xa9", 2); /* é */
    title[200] = '\0';
    memset(label, 'W', 200);
    label[200] = '\0';
    json_t *doc = json_pack("{sssss[{sssf}]}", "title", title, "subtitle", label, "rows",
                            "label", label, "value", 1.0);
    text = json_dumps(doc, 0);
    json_decref(doc);
    check_report(p, dir, "long", text, "\xc3\xa9\xc3\xa9\xc3\xa9", 2, &log);
    free(text);
    ASSERT_EQ(coil_pool_stop(p, COIL_POOL_DRAIN), 0);
    rm_tree(dir);
    return coil_ok(NULL);
}

TEST(report_copes_with_odd_values_and_long_text) { RUN_MAIN(report_odd_main, NULL); }

/* The largest report: stopped between pages by its timeout, then drawn
 * whole. The payload (7 MB) is made before the loop starts. */
static coil_result report_most_rows_main(void *arg) {
    const char *payload = arg;
    char dir[256];
    make_temp_dir(dir, sizeof dir);
    coil_pool *p = start_pool(1);
    coil_job_opts opts = {.timeout = COIL_MSEC(100)};
    coil_job_outcome out;
    ASSERT_EQ(run(p, "report.pdf", payload, &opts, &out), -ETIMEDOUT);
    ASSERT_EQ(out.signal, 0); /* the handler saw it and returned */
    ASSERT(out.result == NULL && !out.crashed);
    progress_log log = {0};
    check_report(p, dir, "most", payload, "Most rows", 2501, &log);
    assert_progress_to_100(&log);
    ASSERT_GE(log.n, 3); /* relayed while the pages were drawn */
    ASSERT_EQ(coil_pool_stop(p, COIL_POOL_DRAIN), 0);
    rm_tree(dir);
    return coil_ok(NULL);
}

static double cycle(size_t i) { return (double)(i % 1000) * 1.5 - 100; }

TEST(report_draws_the_most_rows_and_can_be_stopped) {
    char *payload = report_payload("Most rows", COIL_APP_REPORT_ROWS_MAX, cycle);
    RUN_MAIN(report_most_rows_main, payload);
    free(payload);
}

static coil_result report_rejects_main(void *arg) {
    coil_pool *p = start_pool(1);
    const char *k = "report.pdf";
    assert_rejected(p, k, "[]", "object");
    assert_rejected(p, k, "\"report\"", "object");
    assert_rejected(p, k, "{\"rows\": [{\"label\": \"a\", \"value\": 1}]}", "\"title\"");
    assert_rejected(p, k, "{\"title\": \"\", \"rows\": [{\"label\": \"a\", \"value\": 1}]}",
                    "\"title\"");
    assert_rejected(p, k, "{\"title\": 7, \"rows\": [{\"label\": \"a\", \"value\": 1}]}",
                    "\"title\"");
    assert_rejected(p, k,
                    "{\"title\": \"t\", \"subtitle\": 1, \"rows\": [{\"label\": \"a\", "
                    "\"value\": 1}]}",
                    "\"subtitle\"");
    assert_rejected(p, k, "{\"title\": \"t\"}", "\"rows\"");
    assert_rejected(p, k, "{\"title\": \"t\", \"rows\": []}", "\"rows\"");
    assert_rejected(p, k, "{\"title\": \"t\", \"rows\": {}}", "\"rows\"");
    assert_rejected(p, k, "{\"title\": \"t\", \"rows\": [5]}", "rows[0]");
    assert_rejected(p, k, "{\"title\": \"t\", \"rows\": [{\"label\": \"a\", \"value\": 1}, "
                    "{\"value\": 2}]}", "rows[1].label");
    assert_rejected(p, k, "{\"title\": \"t\", \"rows\": [{\"label\": \"a\", \"value\": \"1\"}]}",
                    "rows[0].value");
    assert_rejected(p, k, "{\"title\": \"t\", \"rows\": [{\"label\": \"a\"}]}", "rows[0].value");
    assert_rejected(p, k, "{\"title\": \"t\", \"rows\": [{\"label\": \"a\", \"value\": null}]}",
                    "rows[0].value");
    /* A title one byte too long. */
    char text[512], msg[256];
    char title[202];
    memset(title, 't', 201);
    title[201] = '\0';
    snprintf(text, sizeof text, "{\"title\": \"%s\", \"rows\": [{\"label\": \"a\", \"value\": 1}]}",
             title);
    assert_rejected(p, k, text, "\"title\"");
    title[200] = '\0';
    snprintf(text, sizeof text, "{\"title\": \"%s\", \"rows\": [{\"label\": \"a\", \"value\": 1}]}",
             title);
    ASSERT_EQ(validate(k, text, msg, sizeof msg), 0);
    ASSERT_EQ(validate(k, "{\"title\": \"t\", \"subtitle\": null, \"rows\": "
                          "[{\"label\": \"\", \"value\": -1e300}]}", msg, sizeof msg), 0);
    /* Images: an array of at most 16 http(s) URLs. */
    const char *rows1 = "\"rows\": [{\"label\": \"a\", \"value\": 1}]";
    snprintf(text, sizeof text, "{\"title\": \"t\", %s, \"images\": \"x\"}", rows1);
    assert_rejected(p, k, text, "\"images\"");
    snprintf(text, sizeof text, "{\"title\": \"t\", %s, \"images\": [\"ftp://h/a.png\"]}",
             rows1);
    assert_rejected(p, k, text, "images[0]");
    snprintf(text, sizeof text, "{\"title\": \"t\", %s, \"images\": [\"http://h/a\", 5]}",
             rows1);
    assert_rejected(p, k, text, "images[1]");
    snprintf(text, sizeof text, "{\"title\": \"t\", %s, \"images\": [%s]}", rows1,
             "\"http://h\",\"http://h\",\"http://h\",\"http://h\",\"http://h\",\"http://h\","
             "\"http://h\",\"http://h\",\"http://h\",\"http://h\",\"http://h\",\"http://h\","
             "\"http://h\",\"http://h\",\"http://h\",\"http://h\",\"http://h\"");
    assert_rejected(p, k, text, "at most 16");
    snprintf(text, sizeof text, "{\"title\": \"t\", %s, \"images\": []}", rows1);
    ASSERT_EQ(validate(k, text, msg, sizeof msg), 0);
    ASSERT_EQ(coil_pool_stop(p, COIL_POOL_DRAIN), 0);
    return coil_ok(NULL);
}

TEST(report_rejects_wrong_shapes) { RUN_MAIN(report_rejects_main, NULL); }

/* ------------------------------------------------------------------ report.pdf's images */

/* coil's server on a thread: /img.png (a 64x48 opaque PNG), /text (200,
 * not an image); anything else 404. */
typedef struct image_server {
    loopback_server http;
    int port;
    unsigned char *png;
    size_t png_len;
} image_server;

static cairo_status_t png_append(void *closure, const unsigned char *data, unsigned int len) {
    image_server *s = closure;
    unsigned char *p = realloc(s->png, s->png_len + len);
    if (!p) return CAIRO_STATUS_WRITE_ERROR;
    memcpy(p + s->png_len, data, len);
    s->png = p;
    s->png_len += len;
    return CAIRO_STATUS_SUCCESS;
}

static int h_png(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)req;
    image_server *s = arg;
    return coil_http_respond(res, 200, "image/png", s->png, s->png_len);
}

static int h_text(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)req, (void)arg;
    return coil_http_respond_text(res, 200, "not an image");
}

static void image_server_start(image_server *s) {
    memset(s, 0, sizeof *s);
    cairo_surface_t *img = cairo_image_surface_create(CAIRO_FORMAT_RGB24, 64, 48);
    cairo_t *cr = cairo_create(img);
    cairo_set_source_rgb(cr, 0.9, 0.3, 0.1);
    cairo_paint(cr);
    cairo_destroy(cr);
    ASSERT_EQ(cairo_surface_write_to_png_stream(img, png_append, s), CAIRO_STATUS_SUCCESS);
    cairo_surface_destroy(img);
    ASSERT_EQ(loopback_new(&s->http), 0);
    ASSERT_EQ(coil_http_route(s->http.srv, "GET", "/img.png", h_png, s, 0), 0);
    ASSERT_EQ(coil_http_route(s->http.srv, "GET", "/text", h_text, s, 0), 0);
    s->port = loopback_start(&s->http);
    ASSERT_GE(s->port, 1);
}

static void image_server_stop(image_server *s) {
    ASSERT_EQ(loopback_stop(&s->http), 0);
    free(s->png);
}

/* A one-row report with the images at `paths` (comma-separated) of s. */
static char *images_payload(const image_server *s, const char *paths) {
    json_t *images = json_array();
    char copy[256], url[128];
    snprintf(copy, sizeof copy, "%s", paths);
    for (char *save = NULL, *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (strncmp(t, "http", 4) == 0) snprintf(url, sizeof url, "%s", t);
        else snprintf(url, sizeof url, "http://127.0.0.1:%d%s", s->port, t);
        json_array_append_new(images, json_string(url));
    }
    json_t *doc = json_pack("{sss[{sssf}]sO}", "title", "With images", "rows", "label", "a",
                            "value", 1.0, "images", images);
    json_decref(images);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    ASSERT(text != NULL);
    return text;
}

/* The report fails before drawing, with `needle` in its error. */
static void assert_images_fail(coil_pool *p, const image_server *s, const char *paths, int err,
                               const char *needle) {
    char *text = images_payload(s, paths);
    coil_job_outcome out;
    ASSERT_EQ(run(p, "report.pdf", text, NULL, &out), err);
    ASSERT_CONTAINS(out.error, needle);
    ASSERT(out.result == NULL && !out.crashed);
    free(text);
}

static coil_result report_images_main(void *arg) {
    image_server *s = arg;
    char dir[256];
    make_temp_dir(dir, sizeof dir);
    coil_pool *p = start_pool(1);
    /* Three images: the summary, two pages of images, one of the table. */
    char *text = images_payload(s, "/img.png,/img.png,/img.png");
    progress_log log = {0};
    check_report(p, dir, "images", text, "With images", 4, &log);
    free(text);
    char cmd[600], list[4096];
    snprintf(cmd, sizeof cmd, "pdfimages -list '%s/images.pdf'", dir);
    ASSERT_EQ(run_tool(cmd, list, sizeof list), 0);
    int drawn = 0;
    for (char *save = NULL, *l = strtok_r(list, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        int page, num, w, h;
        char type[16];
        if (sscanf(l, "%d %d %15s %d %d", &page, &num, type, &w, &h) == 5 &&
            strcmp(type, "image") == 0 && w == 64 && h == 48 && (page == 2 || page == 3))
            drawn++;
    }
    ASSERT_EQ(drawn, 3);
    /* Each failure names its image, and is not retried. */
    assert_images_fail(p, s, "/img.png,/missing.png", COIL_JOB_NO_RETRY, "images[1]: answered 404");
    assert_images_fail(p, s, "/text", COIL_JOB_NO_RETRY, "images[0]: not a PNG image");
    assert_images_fail(p, s, "/img.png,http://10.0.0.1/x.png", COIL_JOB_NO_RETRY,
                       "images[1]: the URL's host is not allowed");
    ASSERT_EQ(coil_pool_stop(p, COIL_POOL_DRAIN), 0);
    rm_tree(dir);
    return coil_ok(NULL);
}

TEST(report_draws_the_images_it_fetched) {
    image_server s;
    image_server_start(&s);
    /* The allowlist the workers read (they inherit it at spawn). */
    ASSERT_EQ(setenv("COIL_WEBHOOK_ALLOW", "127.0.0.1", 1), 0);
    RUN_MAIN(report_images_main, &s);
    unsetenv("COIL_WEBHOOK_ALLOW");
    image_server_stop(&s);
}

/* The row limit, checked by the validator alone (no PDF is drawn). */
TEST(report_rejects_too_many_rows) {
    json_t *rows = json_array();
    for (int i = 0; i <= COIL_APP_REPORT_ROWS_MAX; i++)
        json_array_append_new(rows, json_pack("{siss}", "value", i, "label", "r"));
    json_t *doc = json_pack("{ssso}", "title", "t", "rows", rows);
    const app_kind *k = coil_app_kind_find("report.pdf");
    char msg[256] = "";
    ASSERT_EQ(k->validate(doc, msg, sizeof msg), -EINVAL);
    ASSERT_CONTAINS(msg, "\"rows\"");
    json_array_remove(rows, 0); /* now exactly the limit */
    ASSERT_EQ(k->validate(doc, msg, sizeof msg), 0);
    json_decref(doc);
}
