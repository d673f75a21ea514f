/* tests/app/test_serve.c: the real `coil serve` command, end to end.
 *
 * Each test starts the coil binary of this build with --listen 127.0.0.1:0
 * (serve_harness.h), talks to it over loopback, and stops it with SIGTERM,
 * which must drain and exit 0. Its stderr (the access log) goes to a file
 * the test reads. Client threads: COIL_TEST_THREADS.
 */
#include "serve_harness.h"

#include <pthread.h>
#include <stdatomic.h>

/* ------------------------------------------------------------------ tests */

TEST(serve_answers_its_routes) {
    serve_proc p;
    serve_start(&p, (const char *const[]){"--workers", "2", NULL});
    struct stat st;
    ASSERT(stat(p.data, &st) == 0 && S_ISDIR(st.st_mode)); /* --data was created */

    serve_expect(p.port, "/health", 200, "ok");
    serve_expect(p.port, "/hello", 200, "Hello, World!");
    serve_expect_json(p.port, "/demo/sleep?ms=20", "slept_ms", 20);
    serve_expect_json(p.port, "/demo/block?ms=5", "blocked_ms", 5);
    serve_expect_json(p.port, "/demo/sleep?ms=0", "slept_ms", 0);
    const char *bad[] = {"/demo/sleep", "/demo/sleep?ms=", "/demo/sleep?ms=abc",
                         "/demo/sleep?ms=-1", "/demo/sleep?ms=60001", "/demo/sleep?ms=5x",
                         "/demo/block?ms=99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        serve_reply r;
        serve_get(p.port, bad[i], &r);
        if (r.status != 400) coil_test_fail(__FILE__, __LINE__, "%s: %d", bad[i], r.status);
        ASSERT_CONTAINS(r.body, "\"error\"");
        serve_reply_free(&r);
    }
    serve_expect(p.port, "/demo/spin?ms=1", 404, NULL); /* not without --demo-unsafe */
    serve_expect(p.port, "/nope", 404, NULL);

    serve_reply r;
    serve_get(p.port, "/metrics", &r);
    ASSERT_EQ(r.status, 200);
    const char *m = r.body;
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
    serve_reply_free(&r);

    serve_stop(&p);
    char *log = serve_read_log(&p);
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
    serve_expect_json(p.port, "/demo/spin?ms=300", "spun_ms", 300);
    serve_expect(p.port, "/demo/spin?ms=nope", 400, NULL);
    serve_reply r;
    serve_get(p.port, "/metrics", &r);
    const char *at = strstr(r.body, "coil_loop_stalls_total{worker=\"0\"} ");
    ASSERT(at != NULL);
    ASSERT_GE(strtol(at + strlen("coil_loop_stalls_total{worker=\"0\"} "), NULL, 10), 1);
    serve_reply_free(&r);
    serve_stop(&p);
    char *log = serve_read_log(&p);
    ASSERT_CONTAINS(log, "stall: task 'GET /demo/spin'");
    free(log);
    serve_cleanup(&p);
}

TEST(serve_rejects_bad_options) {
    char bin[PATH_MAX];
    serve_binary(bin, sizeof bin);
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
        int status = serve_wait_exit(pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 2)
            coil_test_fail(__FILE__, __LINE__, "%s %s: status 0x%x", cases[i][0],
                           cases[i][1] ? cases[i][1] : "", status);
    }
}

/* `coil --help` names every command and benchmark that the binary runs
 * (a build without benchmarks, -DCOIL_BUILD_BENCH=OFF, lists none). */
TEST(help_lists_every_command) {
    serve_proc p;
    serve_init(&p);
    serve_ran bench;
    serve_coil_run(p.dir, (const char *const[]){"bench", "--help", NULL}, &bench);
    bool benches = bench.status == 0;
    if (benches) ASSERT_CONTAINS(bench.out, "coil bench jobs [--store sqlite|postgres]");
    else ASSERT_CONTAINS(bench.err, "unknown command 'bench'");
    serve_ran_free(&bench);
    serve_ran help;
    serve_coil_run(p.dir, (const char *const[]){"--help", NULL}, &help);
    const char *commands[] = {"serve", "worker", "migrate", "import", "gen", "ps", "version",
                              "bench runtime", "bench watchdog", "bench http", "bench store",
                              "bench pool", "bench jobs", "bench import"};
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        char line[64];
        snprintf(line, sizeof line, "\n  %s ", commands[i]);
        if (i < 7 || benches) ASSERT_CONTAINS(help.out, line);
        else ASSERT(strstr(help.out, line) == NULL);
    }
    serve_ran_free(&help);
    serve_cleanup(&p);
}

/* ------------------------------------------------------------------ draining */

typedef struct slow_call {
    int port;
    serve_reply r;
} slow_call;

static void *slow_client(void *arg) {
    slow_call *c = arg;
    serve_get(c->port, "/demo/sleep?ms=1000", &c->r);
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
    ASSERT_CONTAINS(c.r.body, "1000");
    serve_reply_free(&c.r);
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
        serve_reply r;
        serve_get(b->port, path, &r);
        if (r.status == 200) b->done++;
        else b->failed++;
        serve_reply_free(&r);
    }
    return NULL;
}

/* coil_threadpool_busy from /metrics. */
static long pool_busy(int port) {
    serve_reply r;
    serve_get(port, "/metrics", &r);
    const char *at = strstr(r.body, "\ncoil_threadpool_busy ");
    long busy = at ? strtol(at + strlen("\ncoil_threadpool_busy "), NULL, 10) : -1;
    serve_reply_free(&r);
    return busy;
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
        serve_reply r;
        serve_get(p.port, "/health", &r);
        coil_time took = coil_now() - t0;
        ASSERT_EQ(r.status, 200);
        ASSERT_STR_EQ(r.body, "ok");
        serve_reply_free(&r);
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

/* The client's address, X-Forwarded-For believed only from a trusted proxy,
 * and the user info a middleware sets, as a subtask and a thread-pool
 * function see it. */
TEST(whoami_names_the_client_and_its_user_everywhere) {
    serve_proc p;
    serve_start(&p, (const char *const[]){"--job-workers", "1", NULL});
    serve_reply r;
    serve_http(p.port, "GET", "/whoami", "X-User: ada\r\nX-Forwarded-For: 203.0.113.9\r\n", NULL,
               &r);
    ASSERT_EQ(r.status, 200);
    json_t *doc = serve_json(&r);
    json_t *seen = json_object_get(doc, "seen");
    ASSERT_EQ(json_array_size(seen), 3);
    for (size_t i = 0; i < 3; i++) {
        json_t *s = json_array_get(seen, i);
        ASSERT_STR_EQ(json_string_value(json_object_get(s, "user")), "ada");
        /* Not a trusted proxy: its X-Forwarded-For is not believed. */
        ASSERT_STR_EQ(json_string_value(json_object_get(s, "client")), "127.0.0.1");
        ASSERT(json_string_value(json_object_get(s, "request_id")) != NULL);
    }
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(seen, 1), "seen_in")),
                  "a subtask");
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(seen, 2), "seen_in")),
                  "a thread-pool function");
    json_decref(doc);
    serve_reply_free(&r);
    serve_stop(&p);
    /* Behind a trusted proxy: the client it names, past other trusted hops. */
    serve_launch(&p, (const char *const[]){"--job-workers", "1", "--trusted-proxy", "127.0.0.1",
                                           "--trusted-proxy", "10.0.0.2", NULL});
    serve_http(p.port, "GET", "/whoami",
               "X-Forwarded-For: 198.51.100.1, 203.0.113.9\r\nX-Forwarded-For: 10.0.0.2\r\n", NULL,
               &r);
    ASSERT_EQ(r.status, 200);
    doc = serve_json(&r);
    json_t *first = json_array_get(json_object_get(doc, "seen"), 0);
    ASSERT_STR_EQ(json_string_value(json_object_get(first, "client")), "203.0.113.9");
    ASSERT_STR_EQ(json_string_value(json_object_get(first, "user")), "anonymous");
    json_decref(doc);
    serve_reply_free(&r);
    serve_stop(&p);
    /* The access log carries the client. */
    char *log = serve_read_log(&p);
    ASSERT_CONTAINS(log, "\"client\":\"203.0.113.9\"");
    ASSERT_CONTAINS(log, "\"client\":\"127.0.0.1\"");
    free(log);
    serve_cleanup(&p);
}
