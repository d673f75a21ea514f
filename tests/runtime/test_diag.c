/* tests/runtime/test_diag.c: task dumps, busy time, lost failures.
 *
 * The SIGUSR1 dump goes through the watchdog thread (COIL_TEST_THREADS).
 */
#include "test.h"

#include <signal.h>
#include <unistd.h>

/* Dumps the current loop's tasks into a malloc'd string. */
static char *dump_to_string(void) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ASSERT(f != NULL);
    coil_dump_tasks(f);
    fclose(f);
    return text;
}

/* The dump line of the task named `name`, copied into `out`. */
static void line_of(const char *dump, const char *name, char *out, size_t len) {
    char key[64];
    snprintf(key, sizeof key, " %s ", name);
    const char *at = strstr(dump, key);
    if (!at) coil_test_fail(__FILE__, __LINE__, "no task %s in:\n%s", name, dump);
    const char *start = at;
    while (start > dump && start[-1] != '\n') start--;
    const char *end = strchr(at, '\n');
    size_t n = end ? (size_t)(end - start) : strlen(start);
    if (n >= len) n = len - 1;
    memcpy(out, start, n);
    out[n] = '\0';
}

/* Busy time in ms from a dump line ("busy 12.345 ms"). */
static double busy_ms(const char *line) {
    const char *at = strstr(line, "busy ");
    ASSERT(at != NULL);
    return strtod(at + 5, NULL);
}

static void spin(coil_time ns) {
    coil_time end = coil_now() + ns;
    while (coil_now() < end) {
    }
}

/* ------------------------------------------------------------------ parked-at */

static int park_line;

static coil_result parks_in_sleep(void *arg) {
    (void)arg;
    park_line = __LINE__ + 1;
    int err = coil_sleep(COIL_SEC(60));
    return coil_fail(err);
}

static coil_result dump_main(void *arg) {
    (void)arg;
    coil_task *t = coil_spawn_named("sleepy", parks_in_sleep, NULL);
    ASSERT_EQ(coil_yield(), 0); /* sleepy runs and parks */
    char *dump = dump_to_string();
    char line[512];
    line_of(dump, "sleepy", line, sizeof line);
    ASSERT_CONTAINS(line, "parked");
    char want[96];
    snprintf(want, sizeof want, "parked at tests/runtime/test_diag.c:%d", park_line);
    ASSERT_CONTAINS(line, want);
    ASSERT_CONTAINS(line, "spawned at tests/runtime/test_diag.c:");
    ASSERT_CONTAINS(line, "age ");
    line_of(dump, "main", line, sizeof line);
    ASSERT_CONTAINS(line, "running");
    ASSERT_CONTAINS(dump, "2 tasks alive, 2 spawned");
    free(dump);
    coil_cancel(t);
    coil_result r;
    ASSERT_EQ(coil_join(t, &r), 0);
    ASSERT_EQ(r.err, -ECANCELED);
    return coil_ok(NULL);
}

TEST(dump_lists_parked_task_with_its_line) { RUN_MAIN(dump_main, NULL); }

/* ------------------------------------------------------------------ busy time */

typedef struct worker_sync {
    coil_event spun;    /* set by the worker after its three spins */
    coil_event release; /* set by main once it has dumped */
} worker_sync;

static coil_result worker(void *arg) {
    worker_sync *ws = arg;
    for (int i = 0; i < 3; i++) {
        spin(COIL_MSEC(10));
        ASSERT_EQ(coil_yield(), 0);
    }
    coil_event_set(&ws->spun);
    return coil_fail(coil_event_wait(&ws->release));
}

static coil_result yielder(void *arg) {
    for (int i = 0; i < *(int *)arg; i++) ASSERT_EQ(coil_yield(), 0);
    return coil_ok(NULL);
}

static coil_result sleeper(void *arg) {
    (void)arg;
    return coil_fail(coil_sleep(COIL_MSEC(60)));
}

static coil_result busy_main(void *arg) {
    (void)arg;
    int rounds = 20000;
    worker_sync ws;
    coil_event_init(&ws.spun);
    coil_event_init(&ws.release);
    coil_task *w = coil_spawn_named("worker", worker, &ws);
    coil_task *y = coil_spawn_named("yielder", yielder, &rounds);
    coil_task *s = coil_spawn_named("sleeper", sleeper, NULL);
    ASSERT_EQ(coil_event_wait(&ws.spun), 0); /* all three have run */
    char *dump = dump_to_string();
    char line[512];
    line_of(dump, "worker", line, sizeof line);
    double worker_busy = busy_ms(line);
    line_of(dump, "sleeper", line, sizeof line);
    double sleeper_busy = busy_ms(line);
    line_of(dump, "yielder", line, sizeof line);
    double yielder_busy = busy_ms(line);
    free(dump);
    /* 30 ms of spinning in three resumes, each timed on its own. */
    ASSERT(worker_busy >= 29.0);
    /* Parked 40 ms of its 40 ms of age, yet hardly busy at all. */
    ASSERT(sleeper_busy < worker_busy / 10);
    /* Thousands of cheap resumes, charged at the loop's average. */
    ASSERT(yielder_busy > 0.0);
    coil_event_set(&ws.release);
    ASSERT_EQ(coil_join(w, NULL), 0);
    ASSERT_EQ(coil_join(y, NULL), 0);
    ASSERT_EQ(coil_join(s, NULL), 0);
    return coil_ok(NULL);
}

TEST(dump_shows_busy_time) { RUN_MAIN(busy_main, NULL); }

/* ------------------------------------------------------------------ lost failures */

static coil_result fails_busy(void *arg) {
    (void)arg;
    return coil_fail(-EBUSY);
}

/* Everything written to the captured stderr so far. */
static char *stderr_so_far(void) {
    fflush(stderr);
    static char buf[8192];
    ssize_t n = pread(STDERR_FILENO, buf, sizeof buf - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

static coil_result lost_main(void *arg) {
    (void)arg;
    coil_detach(coil_spawn_named("doomed-upload", fails_busy, NULL));
    ASSERT_EQ(coil_yield(), 0); /* it runs and fails */
    /* Reported already: the loop has not gone idle, and main still runs. */
    char *text = stderr_so_far();
    ASSERT_CONTAINS(text, "detached task 'doomed-upload' spawned at tests/runtime/test_diag.c:");
    ASSERT_CONTAINS(text, "EBUSY");
    return coil_ok(NULL);
}

TEST(detached_failure_reported_before_loop_idles) {
    coil_test_capture_stderr_begin();
    RUN_MAIN(lost_main, NULL);
    free(coil_test_capture_stderr_end());
}

static coil_result never_joined_main(void *arg) {
    (void)arg;
    coil_spawn_named("orphan", fails_busy, NULL); /* handle dropped */
    ASSERT_EQ(coil_yield(), 0);
    ASSERT(strstr(stderr_so_far(), "orphan") == NULL); /* not before shutdown */
    return coil_ok(NULL);
}

TEST(unjoined_handle_reported_at_shutdown) {
    coil_test_capture_stderr_begin();
    RUN_MAIN(never_joined_main, NULL);
    char *err = coil_test_capture_stderr_end();
    ASSERT_CONTAINS(err, "task 'orphan' spawned at tests/runtime/test_diag.c:");
    ASSERT_CONTAINS(err, "never joined");
    free(err);
}

/* ------------------------------------------------------------------ SIGUSR1 */

static coil_result sigusr1_main(void *arg) {
    (void)arg;
    coil_task *t = coil_spawn_named("napping", parks_in_sleep, NULL);
    ASSERT_EQ(coil_yield(), 0);
    ASSERT_EQ(raise(SIGUSR1), 0);
    /* The watchdog asks the loop, which dumps at its next turn. */
    for (int i = 0; i < 200 && !strstr(stderr_so_far(), "napping"); i++)
        ASSERT_EQ(coil_sleep(COIL_MSEC(10)), 0);
    coil_cancel(t);
    ASSERT_EQ(coil_join(t, NULL), 0);
    return coil_ok(NULL);
}

TEST(sigusr1_dumps_tasks) {
    ASSERT_EQ(coil_dump_on_sigusr1(true), 0);
    coil_test_capture_stderr_begin();
    RUN_MAIN(sigusr1_main, NULL);
    char *err = coil_test_capture_stderr_end();
    ASSERT_CONTAINS(err, "tasks alive");
    ASSERT_CONTAINS(err, "napping");
    ASSERT_CONTAINS(err, "parked at tests/runtime/test_diag.c:");
    free(err);
    ASSERT_EQ(coil_dump_on_sigusr1(false), 0);
    struct sigaction now;
    ASSERT_EQ(sigaction(SIGUSR1, NULL, &now), 0);
    ASSERT(now.sa_handler == SIG_DFL); /* the previous action is back */
}

static coil_result env_dump_main(void *arg) {
    (void)arg;
    ASSERT_EQ(raise(SIGUSR1), 0);
    for (int i = 0; i < 200 && !strstr(stderr_so_far(), "tasks alive"); i++)
        ASSERT_EQ(coil_sleep(COIL_MSEC(10)), 0);
    return coil_ok(NULL);
}

TEST(dump_signal_from_environment) {
    setenv("COIL_DUMP_SIGNAL", "1", 1);
    coil_test_capture_stderr_begin();
    RUN_MAIN(env_dump_main, NULL); /* the first loop reads the variable */
    char *err = coil_test_capture_stderr_end();
    ASSERT_CONTAINS(err, "1 tasks alive");
    ASSERT_CONTAINS(err, "main");
    free(err);
}
