/* tests/app/test_serve.c: the real `coil serve` command, end to end.
 *
 * Each test starts the coil binary of this build (BUILD/coil, next to
 * BUILD/tests/ where this test lives) with --listen 127.0.0.1:0, reads the
 * port from its startup line, talks to it over loopback, and stops it with
 * SIGTERM, which must drain and exit 0. Its stderr (the access log) goes to
 * a file the test reads. Client threads: COIL_TEST_THREADS.
 */
#include "../http/app_harness.h"

#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

typedef struct serve_proc {
    pid_t pid;
    int port;
    char dir[64];                 /* temporary directory: data and log */
    char log[96];                 /* the server's stderr */
} serve_proc;

static void coil_binary(char *out, size_t size) {
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    ASSERT(n > 0);
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    ASSERT(slash != NULL);
    ASSERT((size_t)(slash - self) + sizeof "/../coil" <= sizeof self);
    memcpy(slash, "/../coil", sizeof "/../coil"); /* BUILD/tests/../coil */
    ASSERT(strlen(self) < size);
    memcpy(out, self, strlen(self) + 1);
    ASSERT_EQ(access(out, X_OK), 0);
}

/* Reads the startup line from `fd` (30 s at most) and returns the port. */
static int read_port(int fd) {
    char buf[512];
    size_t len = 0;
    coil_time until = coil_now() + COIL_SEC(30);
    while (coil_now() < until && len < sizeof buf - 1) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0) continue;
        ssize_t got = read(fd, buf + len, sizeof buf - 1 - len);
        if (got <= 0) break;
        len += (size_t)got;
        buf[len] = '\0';
        const char *nl = strchr(buf, '\n');
        if (!nl) continue;
        const char *at = strstr(buf, "http://127.0.0.1:");
        if (!at) coil_test_fail(__FILE__, __LINE__, "startup line: %s", buf);
        return (int)strtol(at + strlen("http://127.0.0.1:"), NULL, 10);
    }
    coil_test_fail(__FILE__, __LINE__, "no startup line; got: %.*s", (int)len, buf);
}

/* Starts `coil serve --listen 127.0.0.1:0 --data DIR/var` plus `extra`
 * (NULL-terminated). */
static void serve_start(serve_proc *p, const char *const *extra) {
    char bin[PATH_MAX], data[128];
    coil_binary(bin, sizeof bin);
    snprintf(p->dir, sizeof p->dir, "/tmp/coil-serve-XXXXXX");
    ASSERT(mkdtemp(p->dir) != NULL);
    snprintf(p->log, sizeof p->log, "%s/stderr.log", p->dir);
    snprintf(data, sizeof data, "%s/var", p->dir);
    const char *argv[16] = {bin, "serve", "--listen", "127.0.0.1:0", "--data", data};
    int argc = 6;
    for (; extra && *extra && argc < 15; extra++) argv[argc++] = *extra;
    argv[argc] = NULL;
    int out[2];
    ASSERT_EQ(pipe2(out, O_CLOEXEC), 0);
    fflush(NULL);
    p->pid = fork();
    ASSERT(p->pid >= 0);
    if (p->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed test takes its server along */
        int log = open(p->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (log < 0 || dup2(out[1], 1) < 0 || dup2(log, 2) < 0) _exit(127);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(out[1]);
    p->port = read_port(out[0]);
    close(out[0]);
    ASSERT(p->port > 0);
}

/* Waits (30 s at most) for the process and returns its wait status. */
static int wait_exit(pid_t pid) {
    int status;
    for (int i = 0; i < 3000; i++) {
        pid_t got = waitpid(pid, &status, WNOHANG);
        if (got == pid) return status;
        usleep(10 * 1000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    coil_test_fail(__FILE__, __LINE__, "coil serve did not exit within 30 s of SIGTERM");
}

/* SIGTERM, then asserts exit status 0. */
static void serve_stop(serve_proc *p) {
    ASSERT_EQ(kill(p->pid, SIGTERM), 0);
    int status = wait_exit(p->pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        coil_test_fail(__FILE__, __LINE__, "coil serve ended with status 0x%x", status);
}

/* The server's stderr so far (malloc'd). */
static char *read_log(const serve_proc *p) {
    int fd = open(p->log, O_RDONLY | O_CLOEXEC);
    ASSERT(fd >= 0);
    struct stat st;
    ASSERT_EQ(fstat(fd, &st), 0);
    char *buf = malloc((size_t)st.st_size + 1);
    ASSERT(buf != NULL);
    ssize_t n = read(fd, buf, (size_t)st.st_size);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

static void serve_cleanup(serve_proc *p) {
    char path[160];
    unlink(p->log);
    snprintf(path, sizeof path, "%s/var", p->dir);
    rmdir(path);
    rmdir(p->dir);
}

static void expect(int port, const char *path, int status, const char *body) {
    reply r;
    harness_get(port, path, &r);
    if (r.status != status)
        coil_test_fail(__FILE__, __LINE__, "GET %s: status %d, want %d:\n%s", path, r.status,
                       status, r.raw);
    if (body) ASSERT_STR_EQ(reply_body(&r), body);
}

/* Asserts that GET `path` answers 200 with the JSON object {key: value}. */
static void expect_json(int port, const char *path, const char *key, long long value) {
    reply r;
    harness_get(port, path, &r);
    if (r.status != 200)
        coil_test_fail(__FILE__, __LINE__, "GET %s: status %d:\n%s", path, r.status, r.raw);
    json_error_t e;
    json_t *j = json_loads(reply_body(&r), 0, &e);
    if (!j) coil_test_fail(__FILE__, __LINE__, "GET %s: not JSON: %s", path, reply_body(&r));
    ASSERT(json_is_integer(json_object_get(j, key)));
    ASSERT_EQ(json_integer_value(json_object_get(j, key)), value);
    json_decref(j);
}

/* ------------------------------------------------------------------ tests */

TEST(serve_answers_its_routes) {
    serve_proc p;
    serve_start(&p, (const char *const[]){"--workers", "2", NULL});
    char data[128];
    struct stat st;
    snprintf(data, sizeof data, "%s/var", p.dir);
    ASSERT(stat(data, &st) == 0 && S_ISDIR(st.st_mode)); /* --data was created */

    expect(p.port, "/health", 200, "ok");
    expect(p.port, "/hello", 200, "Hello, World!");
    expect_json(p.port, "/demo/sleep?ms=20", "slept_ms", 20);
    expect_json(p.port, "/demo/block?ms=5", "blocked_ms", 5);
    expect_json(p.port, "/demo/sleep?ms=0", "slept_ms", 0);
    const char *bad[] = {"/demo/sleep", "/demo/sleep?ms=", "/demo/sleep?ms=abc",
                         "/demo/sleep?ms=-1", "/demo/sleep?ms=60001", "/demo/sleep?ms=5x",
                         "/demo/block?ms=99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        reply r;
        harness_get(p.port, bad[i], &r);
        if (r.status != 400) coil_test_fail(__FILE__, __LINE__, "%s: %d", bad[i], r.status);
        ASSERT_CONTAINS(reply_body(&r), "\"error\"");
    }
    expect(p.port, "/demo/spin?ms=1", 404, NULL); /* not without --demo-unsafe */
    expect(p.port, "/nope", 404, NULL);

    reply r;
    harness_get(p.port, "/metrics", &r);
    ASSERT_EQ(r.status, 200);
    const char *m = reply_body(&r);
    ASSERT_CONTAINS(m, "# TYPE coil_loop_lag_seconds gauge");
    ASSERT_CONTAINS(m, "coil_loop_lag_seconds{worker=\"0\",quantile=\"0.99\"}");
    ASSERT_CONTAINS(m, "coil_loop_lag_seconds{worker=\"1\",quantile=\"0.5\"}"); /* both loops */
    ASSERT_CONTAINS(m, "coil_loop_stalls_total{worker=\"0\"}");
    ASSERT_CONTAINS(m, "coil_loop_longest_stall_seconds");
    ASSERT_CONTAINS(m, "coil_http_requests_total ");
    ASSERT_CONTAINS(m, "coil_http_responses_total{class=\"2xx\"}");
    ASSERT_CONTAINS(m, "coil_http_responses_total{class=\"4xx\"}");
    ASSERT_CONTAINS(m, "coil_http_request_duration_seconds{quantile=\"0.99\"}");
    ASSERT_CONTAINS(m, "coil_http_connections ");
    ASSERT_CONTAINS(m, "coil_threadpool_threads ");
    ASSERT_CONTAINS(m, "coil_threadpool_queued ");
    /* At least the requests above were counted, 4xx among them. */
    const char *req = strstr(m, "\ncoil_http_requests_total ");
    ASSERT(req && strtol(req + strlen("\ncoil_http_requests_total "), NULL, 10) >= 10);

    serve_stop(&p);
    char *log = read_log(&p);
    ASSERT_CONTAINS(log, "\"path\":\"/hello\"");
    ASSERT_CONTAINS(log, "\"status\":404");
    ASSERT_CONTAINS(log, "\"request_id\":\"");
    free(log);
    serve_cleanup(&p);
}

/* With --demo-unsafe, /demo/spin holds the loop, and the watchdog's report
 * names the route's task; /metrics counts the stall. */
TEST(serve_demo_spin_stalls_and_is_reported) {
    serve_proc p;
    serve_start(&p, (const char *const[]){"--workers", "1", "--demo-unsafe", "--stall-ms", "50",
                                          NULL});
    expect_json(p.port, "/demo/spin?ms=300", "spun_ms", 300);
    expect(p.port, "/demo/spin?ms=nope", 400, NULL);
    reply r;
    harness_get(p.port, "/metrics", &r);
    const char *at = strstr(reply_body(&r), "coil_loop_stalls_total{worker=\"0\"} ");
    ASSERT(at != NULL);
    ASSERT_GE(strtol(at + strlen("coil_loop_stalls_total{worker=\"0\"} "), NULL, 10), 1);
    serve_stop(&p);
    char *log = read_log(&p);
    ASSERT_CONTAINS(log, "stall: task 'GET /demo/spin'");
    free(log);
    serve_cleanup(&p);
}

TEST(serve_rejects_bad_options) {
    char bin[PATH_MAX];
    coil_binary(bin, sizeof bin);
    const char *cases[][4] = {{"--listen", "nonsense", NULL},
                              {"--listen", "127.0.0.1:99999", NULL},
                              {"--workers", "0", NULL},
                              {"--stall-ms", "-5", NULL},
                              {"--bogus", NULL}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fflush(NULL);
        pid_t pid = fork();
        ASSERT(pid >= 0);
        if (pid == 0) {
            int null = open("/dev/null", O_WRONLY);
            dup2(null, 1);
            dup2(null, 2);
            const char *argv[6] = {bin, "serve", cases[i][0], cases[i][1], cases[i][2], NULL};
            execv(bin, (char *const *)argv);
            _exit(127);
        }
        int status = wait_exit(pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 2)
            coil_test_fail(__FILE__, __LINE__, "%s %s: status 0x%x", cases[i][0],
                           cases[i][1] ? cases[i][1] : "", status);
    }
}

/* ------------------------------------------------------------------ draining */

typedef struct slow_call {
    int port;
    reply r;
} slow_call;

static void *slow_client(void *arg) {
    slow_call *c = arg;
    harness_get(c->port, "/demo/sleep?ms=1000", &c->r);
    return NULL;
}

TEST(serve_drains_in_flight_requests_on_sigterm) {
    serve_proc p;
    serve_start(&p, (const char *const[]){"--workers", "1", NULL});
    static slow_call c;
    c.port = p.port;
    pthread_t tid;
    ASSERT_EQ(pthread_create(&tid, NULL, slow_client, &c), 0);
    usleep(300 * 1000); /* the request is in its sleep by now */
    serve_stop(&p);     /* SIGTERM; exits 0 only after answering it */
    ASSERT_EQ(pthread_join(tid, NULL), 0);
    ASSERT_EQ(c.r.status, 200);
    ASSERT_CONTAINS(reply_body(&c.r), "1000");
    serve_cleanup(&p);
}

/* ------------------------------------------------------------------ the blocking scenario */

enum { BLOCK_MS = 500, BLOCKERS = 4, HEALTH_CHECKS = 20 };

typedef struct blocker {
    int port;
    atomic_bool *stop;
    int done, failed;             /* calls answered 200, and the others */
    pthread_t tid;
} blocker;

static void *block_client(void *arg) {
    blocker *b = arg;
    char path[64];
    snprintf(path, sizeof path, "/demo/block?ms=%d", BLOCK_MS);
    for (int i = 0; i < 100 && !atomic_load(b->stop); i++) {
        reply *r = malloc(sizeof *r);
        ASSERT(r != NULL);
        harness_get(b->port, path, r);
        if (r->status == 200) b->done++;
        else b->failed++;
        free(r);
    }
    return NULL;
}

/* coil_threadpool_busy from /metrics. */
static long pool_busy(int port) {
    static reply r;
    harness_get(port, "/metrics", &r);
    const char *at = strstr(reply_body(&r), "\ncoil_threadpool_busy ");
    return at ? strtol(at + strlen("\ncoil_threadpool_busy "), NULL, 10) : -1;
}

/* While four clients keep calling a blocking handler that sleeps 500 ms,
 * on a server with a single loop, /health keeps answering: every check
 * completes in less time than one blocking call takes, which could not
 * happen if the blocking calls held the loop. */
TEST(serve_blocking_handlers_leave_the_loop_free) {
    serve_proc p;
    serve_start(&p, (const char *const[]){"--workers", "1", NULL});
    atomic_bool stop = false;
    blocker b[BLOCKERS];
    for (int i = 0; i < BLOCKERS; i++) {
        b[i] = (blocker){.port = p.port, .stop = &stop};
        ASSERT_EQ(pthread_create(&b[i].tid, NULL, block_client, &b[i]), 0);
    }
    /* Wait until all four are on the pool at once (10 s at most). Were the
     * handler run on the loop, no call would ever be on the pool. */
    long busy = 0;
    coil_time until = coil_now() + COIL_SEC(10);
    while ((busy = pool_busy(p.port)) < BLOCKERS && coil_now() < until) usleep(10 * 1000);
    if (busy != BLOCKERS)
        coil_test_fail(__FILE__, __LINE__, "%ld blocking calls on the pool, want %d", busy,
                       BLOCKERS);

    coil_time worst = 0;
    for (int i = 0; i < HEALTH_CHECKS; i++) {
        coil_time t0 = coil_now();
        reply r;
        harness_get(p.port, "/health", &r);
        coil_time took = coil_now() - t0;
        ASSERT_EQ(r.status, 200);
        ASSERT_STR_EQ(reply_body(&r), "ok");
        if (took > worst) worst = took;
    }
    if (worst >= COIL_MSEC(BLOCK_MS))
        coil_test_fail(__FILE__, __LINE__, "a /health check took %lld ms, as long as a block call",
                       (long long)(worst / COIL_MSEC(1)));

    atomic_store(&stop, true);
    int done = 0;
    for (int i = 0; i < BLOCKERS; i++) {
        ASSERT_EQ(pthread_join(b[i].tid, NULL), 0);
        ASSERT_EQ(b[i].failed, 0);
        done += b[i].done;
    }
    ASSERT_GE(done, BLOCKERS);
    serve_stop(&p);
    serve_cleanup(&p);
}
