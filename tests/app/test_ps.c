/* tests/app/test_ps.c: `coil ps` and GET /debug/tasks against a running
 * coil serve: the connection tasks with the file:line they wait at, the
 * group tree, a socket only the owner can open, and a stalled loop named
 * rather than waited for. The snapshot crosses threads: COIL_TEST_THREADS. */
#include "app/serve_harness.h"

#include <pthread.h>

/* An idle keep-alive connection: its task waits for the next request. */
static int open_idle_connection(int port) {
    int fd = serve_connect(port);
    ASSERT(fd >= 0);
    static const char req[] = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    ASSERT_EQ(write(fd, req, sizeof req - 1), (ssize_t)(sizeof req - 1));
    char buf[1024];
    ASSERT(read(fd, buf, sizeof buf) > 0); /* answered; the connection stays */
    return fd;
}

static void run_ps(serve_proc *p, const char *const *args, serve_ran *r) {
    serve_coil_run(p->dir, args, r);
    if (r->status) coil_test_fail(__FILE__, __LINE__, "coil ps: %d: %s", r->status, r->err);
}

TEST(ps_lists_the_connection_tasks_with_their_file_and_line) {
    serve_proc p;
    serve_start(&p, (const char *const[]){"--job-workers", "1", "--workers", "2", NULL});
    int conn = open_idle_connection(p.port);
    serve_ran r;
    run_ps(&p, (const char *const[]){"ps", "--data", p.data, NULL}, &r);
    ASSERT_CONTAINS(r.out, "loop 1:");
    ASSERT_CONTAINS(r.out, "PARKED AT");
    ASSERT_CONTAINS(r.out, "http-accept");
    ASSERT_CONTAINS(r.out, "jobs claimer");
    const char *line = strstr(r.out, "http-conn");
    ASSERT(line != NULL);
    ASSERT(strstr(line, "src/http/server/conn.c:") != NULL); /* where it waits */
    serve_ran_free(&r);
    /* By pid, as a tree, and as the server's JSON. */
    char pid[16];
    snprintf(pid, sizeof pid, "%d", (int)p.pid);
    run_ps(&p, (const char *const[]){"ps", "--tree", pid, NULL}, &r);
    ASSERT_CONTAINS(r.out, "http-conn");
    char want[32];
    snprintf(want, sizeof want, "coil process %d", (int)p.pid);
    ASSERT_CONTAINS(r.out, want);
    serve_ran_free(&r);
    run_ps(&p, (const char *const[]){"ps", "--json", "--data", p.data, NULL}, &r);
    json_t *doc = json_loads(r.out, 0, NULL);
    ASSERT(json_is_object(doc));
    ASSERT_EQ(json_integer_value(json_object_get(doc, "pid")), p.pid);
    ASSERT_GE(json_array_size(json_object_get(doc, "loops")), 2);
    ASSERT_EQ(json_array_size(json_object_get(doc, "unanswered")), 0);
    json_t *t = json_array_get(json_object_get(json_array_get(json_object_get(doc, "loops"), 0),
                                               "tasks"), 0);
    ASSERT(json_is_string(json_object_get(t, "spawned_at")));
    ASSERT(json_is_number(json_object_get(t, "age_ms")));
    json_decref(doc);
    serve_ran_free(&r);
    /* Only the owner: the socket 0600, in a directory 0700. */
    char path[160];
    struct stat st;
    snprintf(path, sizeof path, "%s/run", p.data);
    ASSERT_EQ(stat(path, &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0700);
    snprintf(path, sizeof path, "%s/run/coil.sock", p.data);
    ASSERT_EQ(stat(path, &st), 0);
    ASSERT(S_ISSOCK(st.st_mode));
    ASSERT_EQ(st.st_mode & 0777, 0600);
    /* The same over HTTP. */
    serve_reply rep;
    serve_get(p.port, "/debug/tasks", &rep);
    ASSERT_EQ(rep.status, 200);
    ASSERT_CONTAINS(rep.body, "\"loops\":[");
    ASSERT_CONTAINS(rep.body, "http-conn");
    serve_reply_free(&rep);
    close(conn);
    serve_stop(&p);
    /* Stopped: the socket is gone, and ps says what it found. */
    ASSERT(stat(path, &st) != 0);
    serve_coil_run(p.dir, (const char *const[]){"ps", "--data", p.data, NULL}, &r);
    ASSERT_EQ(r.status, 1);
    ASSERT_CONTAINS(r.err, "is a coil serve running");
    serve_ran_free(&r);
    serve_cleanup(&p);
}

typedef struct spinner {
    int port;
    pthread_t tid;
} spinner;

static void *spin(void *arg) {
    spinner *s = arg;
    serve_reply r;
    serve_get(s->port, "/demo/spin?ms=2500", &r);
    serve_reply_free(&r);
    return NULL;
}

TEST(ps_names_a_stalled_loop_instead_of_waiting_for_it) {
    serve_proc p;
    serve_start(&p, (const char *const[]){"--job-workers", "1", "--workers", "1",
                                          "--demo-unsafe", NULL});
    static spinner s;
    s.port = p.port;
    ASSERT_EQ(pthread_create(&s.tid, NULL, spin, &s), 0);
    usleep(500 * 1000); /* the loop is spinning now */
    serve_ran r;
    run_ps(&p, (const char *const[]){"ps", "--data", p.data, NULL}, &r);
    /* Had it waited for the spin to end, the loop would have answered. */
    ASSERT_CONTAINS(r.out, "no answer within 500 ms");
    ASSERT_CONTAINS(r.out, "jobs claimer"); /* the jobs loop answered */
    serve_ran_free(&r);
    pthread_join(s.tid, NULL);
    serve_stop(&p);
    serve_cleanup(&p);
}
