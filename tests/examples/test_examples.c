/* tests/examples/test_examples.c: every program in examples/ runs, as a
 * reader of the README would run it, and says what its comment promises.
 * The programs are this build's (BUILD/examples/NAME); the servers get a
 * free port, one request, then SIGTERM, and must drain and exit 0. The
 * feed_reader case calls it from a second thread of the test. */
#include "app/serve_harness.h"

#include <pthread.h>
#include <stdatomic.h>

/* BUILD/examples/NAME. */
static void example_path(const char *name, char *out, size_t cap) {
    char bin[PATH_MAX];
    serve_binary(bin, sizeof bin); /* BUILD/coil */
    char *slash = strrchr(bin, '/');
    ASSERT(slash != NULL);
    *slash = '\0';
    ASSERT((size_t)snprintf(out, cap, "%s/examples/%s", bin, name) < cap);
    ASSERT_EQ(access(out, X_OK), 0);
}

/* Runs an example to its end (60 s at most) in directory `cwd` with its
 * stdout into a malloc'd string; returns its exit status. */
static int run_example(const char *name, const char *arg, const char *cwd, char **out) {
    char path[PATH_MAX + 32], log[PATH_MAX + 32];
    example_path(name, path, sizeof path);
    snprintf(log, sizeof log, "%s/%s.out", cwd, name);
    fflush(NULL);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || dup2(fd, 1) < 0 || chdir(cwd) != 0) _exit(127);
        execl(path, name, arg, (char *)NULL);
        _exit(127);
    }
    int status = serve_try_wait_exit(pid);
    if (status == -1) {
        kill(pid, SIGKILL);
        coil_test_fail(__FILE__, __LINE__, "%s did not end", name);
    }
    *out = serve_read_file(log, NULL);
    ASSERT(*out != NULL);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* serve_init(p) (for its directory), then runs an example to its end and
 * fails the test unless it exits 0. Returns its stdout (malloc'd). */
static char *run_ok(serve_proc *p, const char *name, const char *arg) {
    serve_init(p);
    char *out;
    int status = run_example(name, arg, p->dir, &out);
    if (status != 0) coil_test_fail(__FILE__, __LINE__, "%s exited %d:\n%s", name, status, out);
    return out;
}

static void expect_run(const char *name, const char *arg, const char *const *wants) {
    serve_proc p;
    serve_init(&p); /* for its temporary directory */
    char *out;
    int status = run_example(name, arg, p.dir, &out);
    if (status != 0) coil_test_fail(__FILE__, __LINE__, "%s exited %d:\n%s", name, status, out);
    for (; *wants; wants++) ASSERT_CONTAINS(out, *wants);
    free(out);
    serve_cleanup(&p);
}

TEST(hello_tasks_overlaps_its_sleeps) {
    expect_run("hello_tasks", NULL,
               (const char *const[]){"slept 100 ms", "slept 300 ms", "all done in", NULL});
}

TEST(producer_consumer_drains_and_closes) {
    expect_run("producer_consumer", NULL,
               (const char *const[]){"queue full, waiting", "closing the queue",
                                     "all consumers finished", NULL});
}

TEST(race_first_answer_takes_the_first_and_cancels_the_rest) {
    expect_run("race_first_answer", NULL,
               (const char *const[]){"winner:", "stopped at", "no answer within 50 ms", NULL});
}

TEST(sync_facade_calls_async_code_from_plain_c) {
    expect_run("sync_facade", NULL, (const char *const[]){"call 1:", "the lookups overlapped", NULL});
}

TEST(ticker_offload_keeps_the_ticker_going) {
    expect_run("ticker_offload", NULL,
               (const char *const[]){"found", "the ticker never stopped", NULL});
}

TEST(notes_db_reads_writes_and_interrupts) {
    expect_run("notes_db", "notes.db",
               (const char *const[]){"20 readers saw 2 notes", "\"title\":\"call \\\"Ada\\\"\"",
                                     "the slow query: deadline expired", NULL});
}


/* Starts a server example on a free port and waits (10 s) until it answers. */
static pid_t start_server(const char *name, const char *dir, int port, const char *arg2) {
    char path[PATH_MAX + 32], log[PATH_MAX + 32], portarg[16];
    example_path(name, path, sizeof path);
    snprintf(log, sizeof log, "%s/%s.out", dir, name);
    snprintf(portarg, sizeof portarg, "%d", port);
    fflush(NULL);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0 || chdir(dir) != 0) _exit(127);
        execl(path, name, portarg, arg2, (char *)NULL);
        _exit(127);
    }
    serve_await_port(port, pid, 10, name);
    return pid;
}

static void stop_server(pid_t pid) {
    ASSERT_EQ(kill(pid, SIGTERM), 0);
    int status = serve_wait_exit(pid);
    ASSERT(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0); /* drained and stopped */
}

/* Starts /usr/bin/python3 with `args` (argv, NULL-terminated, args[0]
 * "python3") in `cwd`, its output silenced, as an upstream that listens on
 * `port`, and waits (10 s) until it does. */
static pid_t start_python(const char *cwd, int port, const char *const *args) {
    fflush(NULL);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        if (chdir(cwd) != 0) _exit(127);
        execv("/usr/bin/python3", (char *const *)args);
        _exit(127);
    }
    serve_await_port(port, pid, 10, args[1]);
    return pid;
}

static void stop_python(pid_t pid) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* Writes `text` to `path`. */
static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    ASSERT(f != NULL);
    fputs(text, f);
    ASSERT_EQ(fclose(f), 0);
}

TEST(http_server_answers_its_routes) {
    serve_proc p;
    serve_init(&p);
    int port = serve_free_port();
    pid_t pid = start_server("http_server", p.dir, port, NULL);
    serve_reply r;
    serve_http(port, "GET", "/hello/ada", NULL, NULL, &r);
    ASSERT_EQ(r.status, 200);
    ASSERT_CONTAINS(r.body, "\"hello\":\"ada\"");
    serve_reply_free(&r);
    serve_http(port, "POST", "/signup?email=a@b", NULL, NULL, &r);
    ASSERT_EQ(r.status, 202);
    serve_reply_free(&r);
    stop_server(pid);
    serve_cleanup(&p);
}

TEST(jobs_server_runs_its_own_job_kind) {
    serve_proc p;
    serve_init(&p);
    int port = serve_free_port();
    char data[128];
    snprintf(data, sizeof data, "%s/jobs-data", p.dir);
    pid_t pid = start_server("jobs_server", p.dir, port, data);
    serve_reply r;
    serve_http(port, "POST", "/jobs/primes.count", NULL, "{\"below\": 100000}", &r);
    ASSERT_EQ(r.status, 202);
    json_t *doc = serve_json(&r);
    char path[96];
    snprintf(path, sizeof path, "/jobs/%s/result", json_string_value(json_object_get(doc, "id")));
    json_decref(doc);
    serve_reply_free(&r);
    coil_time until = coil_now() + COIL_SEC(30);
    for (;;) {
        serve_http(port, "GET", path, NULL, NULL, &r);
        if (r.status == 200) break;
        serve_reply_free(&r);
        ASSERT(coil_now() < until);
        usleep(50 * 1000);
    }
    ASSERT_CONTAINS(r.body, "\"primes\": 9592"); /* below 100,000 */
    serve_reply_free(&r);
    stop_server(pid);
    serve_cleanup(&p);
}

/* examples/python: the README's three commands, then the report's progress
 * and result through the Python app. */
TEST(python_app_hands_its_reports_to_coil) {
    char def[PATH_MAX + 96], app[PATH_MAX + 32];
    snprintf(def, sizeof def,
             "report.py:application/json=/usr/bin/python3 %s/examples/python/report_job.py",
             COIL_SOURCE_DIR);
    snprintf(app, sizeof app, "%s/examples/python/app.py", COIL_SOURCE_DIR);
    serve_proc p;
    serve_start(&p, (const char *const[]){"--job-workers", "1", "--command-kind", def, NULL});
    int port = serve_free_port();
    char coil_url[64], app_port[16], log[160];
    snprintf(coil_url, sizeof coil_url, "http://127.0.0.1:%d", p.port);
    snprintf(app_port, sizeof app_port, "%d", port);
    snprintf(log, sizeof log, "%s/app.log", p.dir);
    fflush(NULL);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0) _exit(127);
        setenv("COIL_URL", coil_url, 1);
        setenv("PORT", app_port, 1);
        execl("/usr/bin/python3", "python3", app, (char *)NULL);
        _exit(127);
    }
    coil_time until = coil_now() + COIL_SEC(30); /* to start, then to finish the report */
    serve_await_port(port, pid, 15, "examples/python/app.py");
    serve_reply r;
    serve_http(port, "POST", "/reports", NULL,
               "{\"title\": \"Q3\", \"rows\": [{\"value\": 3}, {\"value\": 5}, {\"value\": 1.5}]}", &r);
    ASSERT_EQ(r.status, 202);
    json_t *doc = serve_json(&r);
    char id[40], path[64];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(doc, "report")));
    json_decref(doc);
    serve_reply_free(&r);
    snprintf(path, sizeof path, "/reports/%s", id);
    bool saw_progress = false;
    for (;;) {
        serve_get(port, path, &r);
        ASSERT_EQ(r.status, 200);
        doc = serve_json(&r);
        serve_reply_free(&r);
        const char *st = json_string_value(json_object_get(doc, "status"));
        const char *msg = json_string_value(json_object_get(doc, "message"));
        saw_progress |= msg && strstr(msg, "row ") != NULL;
        if (strcmp(st, "succeeded") == 0) break;
        ASSERT(strcmp(st, "dead") != 0 && coil_now() < until);
        json_decref(doc);
        usleep(30 * 1000);
    }
    json_t *result = json_object_get(doc, "result");
    ASSERT(json_real_value(json_object_get(result, "total")) == 9.5);
    ASSERT_EQ(json_integer_value(json_object_get(result, "rows")), 3);
    ASSERT_STR_EQ(json_string_value(json_object_get(result, "job")), id);
    ASSERT(saw_progress);
    json_decref(doc);
    kill(pid, SIGTERM);
    serve_wait_exit(pid);
    serve_stop(&p);
    serve_cleanup(&p);
}

TEST(http_as_completed_takes_each_answer_as_it_comes) {
    serve_proc p;
    char *out = run_ok(&p, "http_as_completed", NULL);
    /* Fastest first: the delays in ascending order, every one answered. */
    const char *at = out;
    for (int ms = 10; ms <= 100; ms += 10) {
        char want[64];
        snprintf(want, sizeof want, "done: /delay?ms=%d answered 200", ms);
        const char *found = strstr(at, want);
        if (!found) coil_test_fail(__FILE__, __LINE__, "no '%s' after the last:\n%s", want, out);
        at = found;
    }
    ASSERT_CONTAINS(out, "all 10 in");
    free(out);
    serve_cleanup(&p);
}

TEST(lazy_connection_shows_the_race_and_its_fix) {
    expect_run("lazy_connection", NULL,
               (const char *const[]){"uses connection #2", "connections opened: 2 (one too many)",
                                     "the request's user is still ada", "connections opened: 1\n",
                                     NULL});
}

TEST(echo_server_echoes_lines_and_stops_on_sigterm) {
    serve_proc p;
    serve_init(&p);
    int port = serve_free_port();
    pid_t pid = start_server("echo_server", p.dir, port, NULL);
    int fd = serve_connect(port);
    const char lines[] = "hello\nworld\nbye\nnot echoed\n";
    ASSERT_EQ(write(fd, lines, sizeof lines - 1), (ssize_t)(sizeof lines - 1));
    char buf[256];
    size_t got = 0;
    ssize_t n;
    while (got < sizeof buf - 1 && (n = read(fd, buf + got, sizeof buf - 1 - got)) > 0)
        got += (size_t)n; /* until the server closes, after "bye" */
    buf[got] = '\0';
    close(fd);
    ASSERT_STR_EQ(buf, "hello\nworld\n");
    stop_server(pid); /* SIGTERM: drains, exits 0 */
    char log[PATH_MAX + 32];
    snprintf(log, sizeof log, "%s/echo_server.out", p.dir);
    char *out = serve_read_file(log, NULL);
    ASSERT_CONTAINS(out, "echo_server: stopped");
    free(out);
    serve_cleanup(&p);
}

/* An upstream of files (python3's http.server), as the real API's JSON. */
TEST(planet_proxy_answers_from_its_upstream) {
    serve_proc p;
    serve_init(&p);
    char dir[PATH_MAX + 64], file[PATH_MAX + 96];
    snprintf(dir, sizeof dir, "%s/up/api/planets/1", p.dir);
    char cmd[PATH_MAX * 2];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    ASSERT_EQ(system(cmd), 0);
    snprintf(file, sizeof file, "%s/index.html", dir);
    write_text(file, "{\"name\": \"Tatooine\", \"climate\": \"arid\", \"population\": \"200000\"}");
    int up = serve_free_port();
    char root[PATH_MAX + 8], portarg[16];
    snprintf(root, sizeof root, "%s/up", p.dir);
    snprintf(portarg, sizeof portarg, "%d", up);
    pid_t upid = start_python(root, up, (const char *const[]){"python3", "-m", "http.server",
                                                             portarg, "--bind", "127.0.0.1",
                                                             NULL});
    char upstream[64];
    snprintf(upstream, sizeof upstream, "http://127.0.0.1:%d", up);
    int port = serve_free_port();
    pid_t pid = start_server("planet_proxy", p.dir, port, upstream);
    serve_reply r;
    serve_get(port, "/planet/1", &r);
    ASSERT_EQ(r.status, 200);
    ASSERT_STR_EQ(r.body, "{\"name\":\"Tatooine\",\"climate\":\"arid\",\"population\":\"200000\"}");
    serve_reply_free(&r);
    serve_get(port, "/planet/2", &r); /* the upstream's 404 is ours */
    ASSERT_EQ(r.status, 404);
    serve_reply_free(&r);
    serve_get(port, "/planet/x", &r);
    ASSERT_EQ(r.status, 400);
    serve_reply_free(&r);
    stop_server(pid);
    stop_python(upid);
    serve_cleanup(&p);
}

TEST(compute_pi_keeps_the_loop_turning) {
    serve_proc p;
    char *out = run_ok(&p, "compute_pi", NULL);
    ASSERT_CONTAINS(out, "pi = 3.14159265358979323846264338327950288419716939937510...");
    ASSERT_CONTAINS(out, "known digits: match");
    ASSERT_CONTAINS(out, "ending ...5779458151"); /* the millionth decimal is the last 1 */
    ASSERT_CONTAINS(out, "hello from task 3");
    const char *t = strstr(out, "ticked ");
    ASSERT(t != NULL);
    ASSERT_GE(atoi(t + 7), 5); /* the loop turned while the pool computed */
    free(out);
    serve_cleanup(&p);
}

/* ------------------------------------------------------------------ feed_reader */

/* A feed server that answers after `delay` seconds (python3's http.server). */
static const char slow_feed_py[] =
    "import http.server, sys, time\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        time.sleep(float(sys.argv[2]))\n"
    "        body = (b'<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>t</title>'\n"
    "                b'<lastBuildDate>Mon, 07 Dec 2026 10:00:00 GMT</lastBuildDate>'\n"
    "                b'</channel></rss>')\n"
    "        self.send_response(200)\n"
    "        self.send_header('Content-Type', 'application/rss+xml')\n"
    "        self.send_header('Content-Length', str(len(body)))\n"
    "        self.end_headers()\n"
    "        self.wfile.write(body)\n"
    "    def log_message(self, *args):\n"
    "        pass\n"
    "http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n";

typedef struct hello_call {
    int port;
    serve_reply r;
    atomic_bool done;
} hello_call;

static void *call_hello(void *arg) {
    hello_call *c = arg;
    serve_get(c->port, "/hello/ada", &c->r);
    atomic_store(&c->done, true);
    return NULL;
}

TEST(feed_reader_greets_while_health_stays_free) {
    serve_proc p;
    serve_init(&p);
    char script[PATH_MAX + 16];
    snprintf(script, sizeof script, "%s/feed.py", p.dir);
    write_text(script, slow_feed_py);
    int up = serve_free_port();
    char portarg[16];
    snprintf(portarg, sizeof portarg, "%d", up);
    pid_t upid = start_python(p.dir, up, (const char *const[]){"python3", script, portarg, "1.0",
                                                                NULL});
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/feed.xml", up);
    int port = serve_free_port();
    pid_t pid = start_server("feed_reader", p.dir, port, url);
    hello_call c = {.port = port};
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, call_hello, &c), 0);
    usleep(200 * 1000); /* /hello is waiting for the feed (1 s) */
    serve_reply h;
    serve_get(port, "/health", &h);
    ASSERT_EQ(h.status, 200);
    ASSERT(!atomic_load(&c.done)); /* answered while /hello still waited */
    serve_reply_free(&h);
    ASSERT_EQ(pthread_join(t, NULL), 0);
    ASSERT_EQ(c.r.status, 200);
    ASSERT_STR_EQ(c.r.body, "Hello, ada. Recent feed was built on Mon, 07 Dec 2026 10:00:00 GMT");
    serve_reply_free(&c.r);
    stop_server(pid);
    stop_python(upid);
    serve_cleanup(&p);
}

TEST(next_id_is_atomic_on_the_loop_and_durable_in_the_store) {
    serve_proc p;
    char *out = run_ok(&p, "next_id", "ids");
    ASSERT_CONTAINS(out, "on the loop, ++next: 0 duplicates among 100 tasks");
    ASSERT(strstr(out, "with a yield between read and write: 0 duplicates") == NULL);
    ASSERT_CONTAINS(out, "durable ids: 1 to 5, each once");
    free(out);
    ASSERT_EQ(run_example("next_id", "ids", p.dir, &out), 0); /* a restart goes on */
    ASSERT_CONTAINS(out, "durable ids: 6 to 10, each once");
    free(out);
    serve_cleanup(&p);
}

/* The tutorial's numbers, at a fifth of their length: 3 s in turn, 2 s as
 * two tasks (the margin is the difference, 1 s, not the exact times). */
TEST(say_after_overlaps_as_two_tasks) {
    serve_proc p;
    char *out = run_ok(&p, "say_after", "5");
    const char *seq = strstr(out, "one after the other: "), *par = strstr(out, "as two tasks: ");
    ASSERT(seq != NULL && par != NULL);
    long in_turn = strtol(seq + strlen("one after the other: "), NULL, 10);
    long together = strtol(par + strlen("as two tasks: "), NULL, 10);
    ASSERT_GE(in_turn, 3000);
    ASSERT_GE(together, 2000);
    ASSERT_LE(together + 500, in_turn);
    ASSERT_CONTAINS(out, "hello again, from the loop that runs until stopped\nhello again");
    ASSERT_CONTAINS(out, "the loop thread stopped");
    free(out);
    serve_cleanup(&p);
}

TEST(queue_overlap_finishes_in_the_overlapped_time) {
    serve_proc p;
    char *out = run_ok(&p, "queue_overlap", NULL);
    const char *at = strstr(out, "10 items in ");
    ASSERT(at != NULL);
    long ms = strtol(at + strlen("10 items in "), NULL, 10);
    ASSERT_GE(ms, 500);  /* the producers' own time */
    ASSERT_LE(ms, 1000); /* well under producing and then consuming */
    free(out);
    serve_cleanup(&p);
}
