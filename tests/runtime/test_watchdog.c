/* tests/runtime/test_watchdog.c: stall reports and loop metrics.
 *
 * The watchdog is a thread of its own (COIL_TEST_THREADS: these also run
 * under TSan). Every test sets the threshold it needs, so COIL_STALL_MS in
 * the environment does not change the outcome.
 */
#include "test.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Blocks the calling thread for `ns` without ever yielding to the loop,
 * the way a synchronous PDF renderer would. The watchdog's stack signal
 * may cut a nanosleep short; the loop goes on until the time is up. */
__attribute__((noinline)) static void make_pdf_blocking(coil_time ns) {
    coil_time end = coil_now() + ns;
    while (coil_now() < end) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    __asm__ volatile("" ::: "memory"); /* keep this frame: no tail call */
}

static coil_result report_builder(void *arg) {
    coil_time ns = *(coil_time *)arg;
    make_pdf_blocking(ns);
    return coil_ok(NULL);
}

/* Reads the number after `key` in the first line of `text` containing
 * `line_key`, or -1. */
static long number_after(const char *text, const char *line_key, const char *key) {
    const char *line = strstr(text, line_key);
    if (!line) return -1;
    const char *eol = strchr(line, '\n');
    const char *at = strstr(line, key);
    if (!at || (eol && at > eol)) return -1;
    return strtol(at + strlen(key), NULL, 10);
}

static size_t count(const char *text, const char *needle) {
    size_t n = 0;
    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

/* A CPU-bound leaf: no call out of it while it spins, so the interrupted
 * frame itself must be in the backtrace (it is the line that blocks). */
static volatile unsigned long spin_sink;

__attribute__((noinline)) static void render_chart_spinning(coil_time ns) {
    coil_time end = coil_now() + ns;
    for (;;) {
        for (unsigned long i = 0; i < 200000; i++) spin_sink += i * i;
        if (coil_now() >= end) break;
    }
}

static coil_result chart_renderer(void *arg) {
    render_chart_spinning(*(coil_time *)arg);
    return coil_ok(NULL);
}

static coil_result spin_main(void *arg) {
    (void)arg;
    coil_time block = COIL_MSEC(300);
    ASSERT_EQ(coil_join(coil_spawn_named("chart", chart_renderer, &block), NULL), 0);
    return coil_ok(NULL);
}

TEST(stall_report_names_cpu_bound_leaf) {
    ASSERT_EQ(coil_watchdog_set_threshold(COIL_MSEC(100)), 0);
    coil_test_capture_stderr_begin();
    RUN_MAIN(spin_main, NULL);
    char *err = coil_test_capture_stderr_end();
    const char *bt = strstr(err, "backtrace of thread");
    ASSERT(bt != NULL);
    /* The spinning function is in the trace, inside its caller. Almost
     * every sample lands in its loop, where it is the interrupted frame
     * itself (TSan delivers signals later, at an intercepted call, which
     * puts a few frames of its own inside it). */
    const char *leaf = strstr(bt, "render_chart_spinning");
    ASSERT(leaf != NULL);
    ASSERT(strstr(bt, "chart_renderer") != NULL);
    ASSERT(leaf < strstr(bt, "chart_renderer"));
    free(err);
}

/* ------------------------------------------------------------------ stall report */

static int builder_line;

static coil_result stall_main(void *arg) {
    (void)arg;
    coil_time block = COIL_MSEC(300);
    builder_line = __LINE__ + 1;
    coil_task *t = coil_spawn_named("report-builder", report_builder, &block);
    ASSERT(t != NULL);
    ASSERT_EQ(coil_join(t, NULL), 0);
    coil_loop_metrics m;
    ASSERT_EQ(coil_loop_get_metrics(NULL, 0, &m), 0);
    ASSERT_GE(m.stalls, 1);
    ASSERT_GE(m.longest_stall, COIL_MSEC(100));
    /* The watchdog sees the end at its next sample, a millisecond later. */
    ASSERT_EQ(coil_sleep(COIL_MSEC(50)), 0);
    ASSERT_EQ(coil_loop_get_metrics(NULL, 0, &m), 0);
    ASSERT_EQ(m.stalled_for, 0);
    ASSERT_GE(m.longest_stall, COIL_MSEC(250));
    return coil_ok(NULL);
}

TEST(stall_report_names_task_site_and_function) {
    ASSERT_EQ(coil_watchdog_set_threshold(COIL_MSEC(100)), 0);
    coil_test_capture_stderr_begin();
    RUN_MAIN(stall_main, NULL);
    char *err = coil_test_capture_stderr_end();
    ASSERT_CONTAINS(err, "stall: task 'report-builder'");
    char site[64];
    snprintf(site, sizeof site, "spawned at tests/runtime/test_watchdog.c:%d", builder_line);
    ASSERT_CONTAINS(err, site);
    ASSERT_CONTAINS(err, "make_pdf_blocking");
    ASSERT_CONTAINS(err, "report_builder");
    /* "has held loop N (thread T) for X ms": X is how long it had run. */
    long held = number_after(err, "stall: task 'report-builder'", ") for ");
    ASSERT_GE(held, 100);
    long total = number_after(err, "stall over: task 'report-builder'", " for ");
    ASSERT_GE(total, 100);
    ASSERT_GE(total, held);
    /* The blocking function is the innermost frame of ours. */
    const char *bt = strstr(err, "backtrace of thread");
    ASSERT(bt != NULL);
    ASSERT(strstr(bt, "make_pdf_blocking") < strstr(bt, "report_builder"));
    free(err);
}

/* ------------------------------------------------------------------ threshold */

static coil_result block_main(void *arg) {
    make_pdf_blocking(*(coil_time *)arg);
    coil_loop_metrics m;
    ASSERT_EQ(coil_loop_get_metrics(NULL, 0, &m), 0);
    ASSERT_EQ(m.stalls, 0);
    return coil_ok(NULL);
}

TEST(threshold_zero_turns_detector_off) {
    ASSERT_EQ(coil_watchdog_set_threshold(0), 0);
    ASSERT_EQ(coil_watchdog_threshold(), 0);
    coil_time block = COIL_MSEC(150);
    coil_test_capture_stderr_begin();
    RUN_MAIN(block_main, &block);
    char *err = coil_test_capture_stderr_end();
    ASSERT(strstr(err, "stall") == NULL);
    free(err);
}

TEST(threshold_from_environment_and_api) {
    setenv("COIL_STALL_MS", "250", 1);
    ASSERT_EQ(coil_watchdog_threshold(), COIL_MSEC(250));
    ASSERT_EQ(coil_watchdog_set_threshold(-1), -EINVAL);
    ASSERT_EQ(coil_watchdog_threshold(), COIL_MSEC(250));
    ASSERT_EQ(coil_watchdog_set_threshold(COIL_MSEC(40)), 0);
    ASSERT_EQ(coil_watchdog_threshold(), COIL_MSEC(40));
}

TEST(bad_environment_value_keeps_default) {
    setenv("COIL_STALL_MS", "12abc", 1);
    coil_test_capture_stderr_begin();
    coil_time thr = coil_watchdog_threshold();
    char *err = coil_test_capture_stderr_end();
    ASSERT_EQ(thr, COIL_MSEC(100));
    ASSERT_CONTAINS(err, "COIL_STALL_MS=12abc");
    free(err);
}

/* ------------------------------------------------------------------ rate limit */

static coil_result repeat_main(void *arg) {
    (void)arg;
    for (int i = 0; i < 8; i++) {
        make_pdf_blocking(COIL_MSEC(40));
        ASSERT_EQ(coil_sleep(COIL_MSEC(5)), 0);
    }
    coil_loop_metrics m;
    ASSERT_EQ(coil_loop_get_metrics(NULL, 0, &m), 0);
    ASSERT_GE(m.stalls, 8);
    ASSERT_GE(m.longest_stall, COIL_MSEC(10));
    return coil_ok(NULL);
}

TEST(reports_are_rate_limited_but_stalls_counted) {
    ASSERT_EQ(coil_watchdog_set_threshold(COIL_MSEC(10)), 0);
    coil_test_capture_stderr_begin();
    RUN_MAIN(repeat_main, NULL);
    char *err = coil_test_capture_stderr_end();
    /* A burst of five, then one per ten seconds: the other stalls of this
     * short test are only counted. Each report is followed by its end. */
    ASSERT_EQ(count(err, "coil: stall: task 'main'"), 5);
    ASSERT_EQ(count(err, "coil: stall over: task 'main'"), 5);
    free(err);
}

/* ------------------------------------------------------------------ other loops */

static coil_result named_blocker(void *arg) {
    coil_task_set_name(coil_current(), "sync-call");
    make_pdf_blocking(*(coil_time *)arg);
    return coil_ok(NULL);
}

TEST(stall_on_a_loop_thread_is_reported) {
    ASSERT_EQ(coil_watchdog_set_threshold(COIL_MSEC(50)), 0);
    coil_test_capture_stderr_begin();
    coil_loop *loop = coil_loop_thread_start();
    ASSERT(loop != NULL);
    coil_time block = COIL_MSEC(200);
    coil_result r;
    ASSERT_EQ(coil_call_sync(loop, named_blocker, &block, &r), 0);
    coil_loop_metrics m;
    ASSERT_EQ(coil_loop_get_metrics(loop, 0, &m), 0);
    ASSERT_GE(m.stalls, 1);
    coil_loop_thread_stop(loop);
    char *err = coil_test_capture_stderr_end();
    ASSERT_CONTAINS(err, "stall: task 'sync-call'");
    ASSERT_CONTAINS(err, "make_pdf_blocking");
    ASSERT_CONTAINS(err, "stall over: task 'sync-call'");
    free(err);
}

/* ------------------------------------------------------------------ lag */

typedef struct lag_watch {
    coil_loop *loop;
    _Atomic bool stop;
    _Atomic coil_time seen_max; /* highest lag_max read while it ran */
} lag_watch;

static void *lag_watcher(void *arg) {
    lag_watch *w = arg;
    while (!atomic_load(&w->stop)) {
        coil_loop_metrics m;
        if (coil_loop_get_metrics(w->loop, COIL_MSEC(200), &m) == 0 &&
            m.lag_max > atomic_load(&w->seen_max))
            atomic_store(&w->seen_max, m.lag_max);
        sleep_ms(5);
    }
    return NULL;
}

static coil_result lag_main(void *arg) {
    (void)arg;
    ASSERT_EQ(coil_sleep(COIL_MSEC(100)), 0); /* a few probes on time */
    coil_loop_metrics before;
    ASSERT_EQ(coil_loop_get_metrics(NULL, COIL_MSEC(100), &before), 0);
    ASSERT_GE(before.lag_samples, 1);

    lag_watch w = {.loop = coil_loop_current()};
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, lag_watcher, &w), 0);
    make_pdf_blocking(COIL_MSEC(400));
    /* Read from another thread while the loop was blocked. */
    coil_time during = atomic_load(&w.seen_max);
    atomic_store(&w.stop, true);
    pthread_join(th, NULL);
    ASSERT_GE(during, COIL_MSEC(200));
    ASSERT(during > before.lag_max);

    ASSERT_EQ(coil_sleep(COIL_MSEC(1)), 0); /* let the late probe run */
    coil_loop_metrics after;
    ASSERT_EQ(coil_loop_get_metrics(NULL, COIL_SEC(1), &after), 0);
    ASSERT_GE(after.lag_max, COIL_MSEC(300));

    ASSERT_EQ(coil_sleep(COIL_MSEC(300)), 0); /* healthy again */
    coil_loop_metrics later;
    ASSERT_EQ(coil_loop_get_metrics(NULL, COIL_MSEC(150), &later), 0);
    ASSERT_GE(later.lag_samples, 3);
    ASSERT(later.lag_p50 < COIL_MSEC(100));
    ASSERT(later.lag_max < after.lag_max);
    return coil_ok(NULL);
}

TEST(loop_lag_rises_while_blocked_and_falls_back) {
    ASSERT_EQ(coil_watchdog_set_threshold(0), 0); /* keep stall reports out */
    RUN_MAIN(lag_main, NULL);
}

static coil_result counts_main(void *arg) {
    (void)arg;
    coil_task *t = coil_spawn(report_builder, &(coil_time){0});
    coil_loop_metrics m;
    ASSERT_EQ(coil_loop_get_metrics(NULL, 0, &m), 0);
    ASSERT_EQ(m.tasks_alive, 2);
    ASSERT_EQ(m.tasks_spawned, 2);
    ASSERT_EQ(m.window, COIL_SEC(10));
    ASSERT_EQ(coil_join(t, NULL), 0);
    ASSERT_EQ(coil_loop_get_metrics(NULL, 0, &m), 0);
    ASSERT_EQ(m.tasks_alive, 1);
    ASSERT_EQ(m.tasks_spawned, 2);
    ASSERT(m.pool_busy <= m.pool_threads);
    return coil_ok(NULL);
}

TEST(metrics_count_tasks) {
    coil_loop_metrics m;
    ASSERT_EQ(coil_loop_get_metrics(NULL, 0, &m), -ESRCH);
    RUN_MAIN(counts_main, NULL);
}

/* The probe timer must not keep a loop alive: a loop whose tasks wait for
 * nothing is still a deadlock, found at once rather than never. */
static coil_result wait_forever(void *arg) {
    (void)arg;
    coil_event e;
    coil_event_init(&e);
    return coil_fail(coil_event_wait(&e));
}

TEST(lag_probe_does_not_hide_deadlock) {
    ASSERT_EQ(coil_watchdog_set_threshold(COIL_MSEC(100)), 0);
    coil_test_capture_stderr_begin();
    coil_result r;
    ASSERT_EQ(coil_run(wait_forever, NULL, &r), -EDEADLK);
    char *err = coil_test_capture_stderr_end();
    ASSERT_EQ(r.err, -ECANCELED);
    ASSERT_CONTAINS(err, "deadlock");
    free(err);
}
