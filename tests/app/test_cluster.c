/* tests/app/test_cluster.c: coil nodes on one PostgreSQL database, as real
 * processes: two `coil serve` and two `coil worker`. Jobs posted to either
 * server all end `succeeded` though a worker node and a serve node are
 * SIGKILLed mid-run; only a job a killed node was running may run twice;
 * a killed worker's jobs run again elsewhere within lease + 1 s; a node
 * paused past its lease comes back fenced.
 * COIL_TEST_PG_ONLY: needs the test server. */
#include "app/serve_harness.h"
#include "jobs/store/store_fixture.h"

enum { JOBS = 5000 };

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>

/* Starts a node; `lease_ms` NULL keeps the default lease (5 s). */
static void start_node_leased(serve_proc *p, const char *cmd, const char *url,
                              const char *workers, const char *lease_ms) {
    serve_init(p);
    p->cmd = cmd;
    const char *extra[] = {"--store", url, "--job-workers", workers, "--no-access-log",
                           "--demo-unsafe", lease_ms ? "--lease-ms" : NULL, lease_ms, NULL};
    const char *worker_extra[] = {"--store", url, "--job-workers", workers,
                                  lease_ms ? "--lease-ms" : NULL, lease_ms, NULL};
    serve_launch(p, strcmp(cmd, "worker") == 0 ? worker_extra : extra);
}

static void start_node(serve_proc *p, const char *cmd, const char *url, const char *workers) {
    start_node_leased(p, cmd, url, workers, NULL);
}

/* The pids of the processes whose parent is `parent` (its job workers),
 * at most `max`; returns how many. */
static int children_of(pid_t parent, pid_t *out, int max) {
    DIR *d = opendir("/proc");
    ASSERT(d != NULL);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) && n < max;) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        int fd = open(path, O_RDONLY);
        if (fd < 0) continue;
        ssize_t got = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (got <= 0) continue;
        buf[got] = '\0';
        const char *paren = strrchr(buf, ')'); /* pid (comm) state ppid ... */
        char state;
        long ppid;
        if (paren && sscanf(paren + 1, " %c %ld", &state, &ppid) == 2 && ppid == parent &&
            state != 'Z')
            out[n++] = (pid_t)atol(e->d_name);
    }
    closedir(d);
    return n;
}

/* Whether process `pid` is gone or a zombie (exited, not yet reaped). */
static bool process_ended(pid_t pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return true;
    ssize_t got = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (got <= 0) return true;
    buf[got] = '\0';
    const char *paren = strrchr(buf, ')');
    return !paren || paren[2] == 'Z';
}

/* Posts a job to the node on `port`; its id goes to id (40 bytes). */
static void post_job(int port, const char *kind, const char *body, char *id) {
    char path[64];
    snprintf(path, sizeof path, "/jobs/%s", kind);
    serve_reply r;
    serve_http(port, "POST", path, NULL, body, &r);
    ASSERT_EQ(r.status, 202);
    json_t *doc = serve_json(&r);
    snprintf(id, 40, "%s", json_string_value(json_object_get(doc, "id")));
    json_decref(doc);
    serve_reply_free(&r);
}

/* The integer `sql` yields, polled until it is `want` (10 s at most). */
static void await_sql(const char *url, const char *sql, long long want) {
    coil_time until = coil_now() + COIL_SEC(10);
    long long got;
    while ((got = fx_pg_sql(url, sql)) != want) {
        if (coil_now() >= until)
            coil_test_fail(__FILE__, __LINE__, "%s: %lld, not %lld after 10 s", sql, got, want);
        usleep(20 * 1000);
    }
}

static bool log_shows_now(const serve_proc *p, const char *text) {
    char *log = serve_read_log(p);
    bool found = log && strstr(log, text);
    free(log);
    return found;
}

/* Whether the node's stderr has `text`; waits up to 10 s for it. */
static bool log_shows(const serve_proc *p, const char *text) {
    coil_time until = coil_now() + COIL_SEC(10);
    for (;;) {
        char *log = serve_read_log(p);
        bool found = log && strstr(log, text);
        free(log);
        if (found || coil_now() >= until) return found;
        usleep(50 * 1000);
    }
}

/* How often `id` occurs in `all`. */
static int effects_of(const char *all, const char *id) {
    int n = 0;
    for (const char *p = all; (p = strstr(p, id)); p += strlen(id)) n++;
    return n;
}

TEST(cluster_survives_killed_nodes_and_runs_each_job_once) {
    char *url = fx_tmpdir();
    serve_proc s1, s2, w1, w2;
    start_node(&s1, "serve", url, "0");
    start_node(&s2, "serve", url, "1");
    start_node(&w1, "worker", url, "2");
    start_node(&w2, "worker", url, "2");
    char effects[128];
    snprintf(effects, sizeof effects, "%s/effects", s1.dir);
    static char ids[JOBS][40];
    for (int i = 0; i < JOBS; i++) {
        char body[256];
        snprintf(body, sizeof body, "{\"path\":\"%s\",\"line\":\"job%d\"}", effects, i);
        serve_reply r;
        serve_proc *to = i % 2 && s2.pid ? &s2 : &s1; /* alternate while both live */
        serve_http(to->port, "POST", "/jobs/demo.append", NULL, body, &r);
        ASSERT_EQ(r.status, 202);
        json_t *doc = serve_json(&r);
        snprintf(ids[i], sizeof ids[i], "%s", json_string_value(json_object_get(doc, "id")));
        json_decref(doc);
        serve_reply_free(&r);
        if (i == JOBS / 3) serve_kill(&w1); /* a worker node dies mid-run */
        if (i == JOBS / 2) serve_kill(&s2); /* and a serve node */
    }
    /* Every job that got a 202 ends succeeded (rescue takes lease + 1 s). */
    coil_time until = coil_now() + COIL_SEC(60);
    long long done = 0, total = fx_pg_sql(url, "SELECT count(*) FROM coil_jobs");
    while ((done = fx_pg_sql(url, "SELECT count(*) FROM coil_jobs WHERE state = 2")) < total) {
        ASSERT(coil_now() < until);
        usleep(100 * 1000);
    }
    ASSERT_EQ(fx_pg_sql(url, "SELECT count(*) FROM coil_jobs WHERE state <> 2"), 0);
    /* Effects: every job at least once; twice only after a rescue (its
     * attempt on a killed node counted). */
    char *all = serve_read_file(effects, NULL);
    int twice = 0;
    for (int i = 0; i < JOBS; i++) {
        if (!ids[i][0]) continue;
        char line[16], sql[160];
        snprintf(line, sizeof line, "job%d\n", i);
        int n = effects_of(all, line);
        ASSERT_GE(n, 1);
        if (n > 1) {
            snprintf(sql, sizeof sql, "SELECT attempts FROM coil_jobs WHERE id = '%.64s'", ids[i]);
            ASSERT_GE(fx_pg_sql(url, sql), 2);
            twice++;
        }
    }
    fprintf(stderr, "cluster: %lld jobs succeeded, %d ran twice (rescued from a killed node)\n",
            total, twice);
    free(all);
    serve_stop(&s1);
    serve_stop(&w2);
    serve_cleanup(&s1);
    serve_cleanup(&s2);
    serve_cleanup(&w1);
    serve_cleanup(&w2);
    fx_rmtree(url);
}

/* A cancel posted to one server stops the job on the worker node running it. */
TEST(cancel_stops_a_job_on_another_node) {
    char *url = fx_tmpdir();
    serve_proc s, w;
    start_node(&s, "serve", url, "0");
    start_node(&w, "worker", url, "1");
    serve_reply r;
    serve_http(s.port, "POST", "/jobs/demo.sleep", NULL, "{\"ms\":30000}", &r);
    ASSERT_EQ(r.status, 202);
    json_t *doc = serve_json(&r);
    char path[80];
    snprintf(path, sizeof path, "/jobs/%s", json_string_value(json_object_get(doc, "id")));
    json_decref(doc);
    serve_reply_free(&r);
    coil_time until = coil_now() + COIL_SEC(10);
    while (fx_pg_sql(url, "SELECT count(*) FROM coil_jobs WHERE state = 1") == 0) {
        ASSERT(coil_now() < until);
        usleep(20 * 1000);
    }
    serve_http(s.port, "DELETE", path, NULL, NULL, &r);
    ASSERT_EQ(r.status, 202); /* running elsewhere: asked to stop */
    serve_reply_free(&r);
    coil_time t0 = coil_now();
    while (fx_pg_sql(url, "SELECT count(*) FROM coil_jobs WHERE state = 4") == 0) {
        ASSERT(coil_now() < until);
        usleep(20 * 1000);
    }
    ASSERT_LE(coil_now() - t0, COIL_SEC(5)); /* not the 30 s the job would take */
    serve_stop(&s);
    serve_stop(&w);
    serve_cleanup(&s);
    serve_cleanup(&w);
    fx_rmtree(url);
}

/* A worker node SIGKILLed while it runs a job: the job runs again on
 * another node within lease (5 s) + 1 s. */
TEST(killed_workers_jobs_run_again_within_lease_and_a_second) {
    char *url = fx_tmpdir();
    serve_proc s, w1, w2;
    start_node(&s, "serve", url, "0");
    start_node(&w1, "worker", url, "1");
    serve_reply r;
    serve_http(s.port, "POST", "/jobs/demo.sleep", NULL, "{\"ms\":30000}", &r);
    ASSERT_EQ(r.status, 202);
    serve_reply_free(&r);
    coil_time until = coil_now() + COIL_SEC(10);
    while (fx_pg_sql(url, "SELECT count(*) FROM coil_jobs WHERE state = 1") == 0) {
        ASSERT(coil_now() < until);
        usleep(20 * 1000);
    }
    start_node(&w2, "worker", url, "1");
    coil_time t0 = coil_now();
    serve_kill(&w1);
    until = coil_now() + COIL_SEC(20);
    while (fx_pg_sql(url, "SELECT count(*) FROM coil_jobs WHERE state = 1 AND attempts = 2") == 0) {
        ASSERT(coil_now() < until);
        usleep(20 * 1000);
    }
    coil_time took = coil_now() - t0;
    fprintf(stderr, "cluster: rescued and running again %.0f ms after the SIGKILL\n",
            (double)took / 1e6);
    ASSERT_LE(took, COIL_SEC(6));
    ASSERT_EQ(fx_pg_sql(url, "SELECT count(*) FROM coil_jobs WHERE error_msg LIKE 'node lost%'"),
              1);
    serve_stop(&s);
    serve_stop(&w2);
    serve_cleanup(&s);
    serve_cleanup(&w1);
    serve_cleanup(&w2);
    fx_rmtree(url);
}

/* A worker node SIGSTOPped past its lease (2 s here) with two jobs: A
 * (1 s) ends while it is paused, B (30 s) does not. Another node rescues
 * and reruns both. After SIGCONT the paused node learns it was declared
 * lost: A's outcome, which it brings back late, is refused and the
 * rescuer's stands; B's job there is stopped and its outcome refused too;
 * the rescued B runs on. */
TEST(a_node_paused_past_its_lease_comes_back_fenced) {
    char *url = fx_tmpdir();
    serve_proc s, w1, w2;
    start_node_leased(&s, "serve", url, "0", "2000");
    start_node_leased(&w1, "worker", url, "2", "2000");
    char a[40], b[40], sql[200];
    post_job(s.port, "demo.sleep", "{\"ms\":1000}", a);
    post_job(s.port, "demo.sleep", "{\"ms\":30000}", b);
    await_sql(url, "SELECT count(*) FROM coil_jobs WHERE state = 1", 2);
    pid_t kids[4];
    ASSERT_EQ(children_of(w1.pid, kids, 4), 2); /* its two job workers, both busy */
    start_node_leased(&w2, "worker", url, "2", "2000");
    ASSERT_EQ(kill(w1.pid, SIGSTOP), 0);
    /* The rescue: A ran again on w2 and succeeded there; B runs there. */
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM coil_jobs WHERE id = '%s' AND state = 2 AND attempts = 2", a);
    await_sql(url, sql, 1);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM coil_jobs WHERE id = '%s' AND state = 1 AND attempts = 2", b);
    await_sql(url, sql, 1);
    snprintf(sql, sizeof sql, "SELECT updated FROM coil_jobs WHERE id = '%s'", a);
    long long a_updated = fx_pg_sql(url, sql);
    ASSERT_EQ(fx_pg_sql(url, "SELECT count(*) FROM coil_nodes WHERE lost"), 1);
    ASSERT_EQ(kill(w1.pid, SIGCONT), 0);
    ASSERT(log_shows(&w1, "missed its lease"));
    /* Both late outcomes are refused: A's, which it brought back, and B's,
     * whose job it stopped (as a cancel does), long before B's 30 s. */
    char dropped[100];
    snprintf(dropped, sizeof dropped, "job %s was taken over by another node", a);
    ASSERT(log_shows(&w1, dropped));
    snprintf(dropped, sizeof dropped, "job %s was taken over by another node", b);
    ASSERT(log_shows(&w1, dropped));
    ASSERT(!log_shows_now(&w1, "cannot record"));
    /* The rows are as the rescuer left them. */
    snprintf(sql, sizeof sql, "SELECT updated FROM coil_jobs WHERE id = '%s'", a);
    ASSERT_EQ(fx_pg_sql(url, sql), a_updated);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM coil_jobs WHERE id = '%s' AND state = 2 AND attempts = 2", a);
    ASSERT_EQ(fx_pg_sql(url, sql), 1);
    /* Its worker processes live on, idle, for the jobs it claims next. */
    for (int i = 0; i < 2; i++) ASSERT(!process_ended(kids[i]));
    /* The rescued B still runs (the zombie's stop did not touch it), and
     * the paused node serves on as a new node. */
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM coil_jobs WHERE id = '%s' AND state = 1 AND attempts = 2", b);
    ASSERT_EQ(fx_pg_sql(url, sql), 1);
    ASSERT(log_shows(&w1, "serves on as id"));
    serve_assert_alive(&w1);
    char path[64];
    snprintf(path, sizeof path, "/jobs/%s", b);
    serve_reply r;
    serve_http(s.port, "DELETE", path, NULL, NULL, &r);
    ASSERT_EQ(r.status, 202);
    serve_reply_free(&r);
    serve_stop(&s);
    serve_stop(&w1);
    serve_stop(&w2);
    serve_cleanup(&s);
    serve_cleanup(&w1);
    serve_cleanup(&w2);
    fx_rmtree(url);
}

/* ------------------------------------------------------------------ the database restarts */

enum { LOAD_CLIENTS = 4, LOAD_MAX = 40000 };

typedef struct {
    int port;
    atomic_bool stop;
    pthread_mutex_t lock;
    char (*ids)[40]; /* every 202's job id */
    int nids;
    int accepted, unavailable, other; /* 202, 503 with Retry-After, anything else */
    coil_time last_accepted;
} enqueue_load;

static void *enqueue_client(void *arg) {
    enqueue_load *l = arg;
    while (!atomic_load(&l->stop)) {
        serve_reply r;
        int err = serve_try_http_for(l->port, "POST", "/jobs/demo.noop", NULL, "{}", 15000, &r);
        char retry[16] = "";
        if (!err && r.status == 503) serve_header(&r, "Retry-After", retry, sizeof retry);
        json_t *doc = !err && r.status == 202 ? serve_json(&r) : NULL;
        pthread_mutex_lock(&l->lock);
        if (doc && l->nids < LOAD_MAX) {
            snprintf(l->ids[l->nids++], 40, "%s", json_string_value(json_object_get(doc, "id")));
            l->accepted++;
            l->last_accepted = coil_now();
        } else if (!err && r.status == 503 && retry[0]) {
            l->unavailable++;
        } else {
            if (l->other++ < 5)
                fprintf(stderr, "enqueue: %s, status %d: %s\n", err ? strerror(-err) : "answered",
                        r.status, r.body ? r.body : "");
        }
        pthread_mutex_unlock(&l->lock);
        json_decref(doc);
        serve_reply_free(&r);
        if (!err && r.status == 503) usleep(20 * 1000); /* honours Retry-After, but sooner */
    }
    return NULL;
}

/* pg_tmp.sh CMD STATE [ARG]: a private server this test may restart. */
static void pg_tmp(const char *cmd, const char *state, const char *arg) {
    char line[1024];
    snprintf(line, sizeof line, "%s/tests/pg/pg_tmp.sh %s %s %s >/dev/null", COIL_SOURCE_DIR,
             cmd, state, arg ? arg : "");
    ASSERT_EQ(system(line), 0);
}

/* PostgreSQL restarts (2 s down) under an enqueue load from 4 clients on
 * a serve node, with a worker node running the jobs: enqueues get 503
 * with Retry-After and /health 503 while it is down; every 202'd job
 * exists afterwards and succeeds, none twice; neither node restarts. */
TEST(a_database_restart_under_load_loses_nothing) {
    char state[] = "/tmp/coil-pg-restart-XXXXXX";
    ASSERT(mkdtemp(state) != NULL);
    free(fx_pg_admin_url()); /* skips (exit 77) if the binaries are missing */
    pg_tmp("start", state, NULL);
    char path[128];
    snprintf(path, sizeof path, "%s/url", state);
    char *url = serve_read_file(path, NULL);
    ASSERT(url != NULL);
    url[strcspn(url, "\n")] = '\0';
    serve_proc s, w;
    start_node(&s, "serve", url, "0");
    start_node(&w, "worker", url, "2");
    static enqueue_load l;
    l.port = s.port;
    l.ids = calloc(LOAD_MAX, sizeof *l.ids);
    ASSERT(l.ids != NULL);
    pthread_mutex_init(&l.lock, NULL);
    pthread_t clients[LOAD_CLIENTS];
    for (int i = 0; i < LOAD_CLIENTS; i++)
        ASSERT_EQ(pthread_create(&clients[i], NULL, enqueue_client, &l), 0);
    usleep(1000 * 1000);
    /* Down for 2 s: the restart runs in a child while /health is watched. */
    fflush(NULL);
    pid_t restarter = fork();
    ASSERT(restarter >= 0);
    if (restarter == 0) {
        char line[1024];
        snprintf(line, sizeof line, "%s/tests/pg/pg_tmp.sh restart %s 2 >/dev/null",
                 COIL_SOURCE_DIR, state);
        _exit(system(line) == 0 ? 0 : 1);
    }
    int health_503 = 0;
    for (int ws;;) {
        pid_t done = waitpid(restarter, &ws, WNOHANG);
        if (done == restarter) {
            ASSERT(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
            break;
        }
        serve_reply r;
        if (serve_try_http_for(s.port, "GET", "/health", NULL, NULL, 5000, &r) == 0 &&
            r.status == 503)
            health_503++;
        serve_reply_free(&r);
        usleep(50 * 1000);
    }
    coil_time back = coil_now();
    /* Recovery: enqueues are accepted again, without a restart of coil. */
    coil_time until = back + COIL_SEC(20);
    for (;;) {
        pthread_mutex_lock(&l.lock);
        bool recovered = l.last_accepted > back + COIL_SEC(1);
        pthread_mutex_unlock(&l.lock);
        if (recovered) break;
        ASSERT(coil_now() < until);
        usleep(50 * 1000);
    }
    atomic_store(&l.stop, true);
    for (int i = 0; i < LOAD_CLIENTS; i++) pthread_join(clients[i], NULL);
    fprintf(stderr,
            "restart: %d enqueues accepted, %d got 503 while down, %d other; /health 503 %d "
            "times\n",
            l.accepted, l.unavailable, l.other, health_503);
    ASSERT_GE(l.unavailable, 1);
    ASSERT_GE(health_503, 1);
    ASSERT_EQ(l.other, 0);
    serve_assert_alive(&s);
    serve_assert_alive(&w);
    /* Nothing acknowledged is lost: every 202'd id is a row, and all of
     * them succeed, once each. */
    size_t cap = (size_t)l.nids * 36 + 128;
    char *sql = malloc(cap), *p = sql;
    ASSERT(sql != NULL);
    p += sprintf(p, "SELECT count(*) FROM coil_jobs WHERE id = ANY('{");
    for (int i = 0; i < l.nids; i++) p += sprintf(p, "%s%s", i ? "," : "", l.ids[i]);
    sprintf(p, "}')");
    ASSERT_EQ(fx_pg_sql(url, sql), l.nids);
    until = coil_now() + COIL_SEC(60);
    while (fx_pg_sql(url, "SELECT count(*) FROM coil_jobs WHERE state <> 2") > 0) {
        ASSERT(coil_now() < until);
        usleep(100 * 1000);
    }
    ASSERT_EQ(fx_pg_sql(url, "SELECT count(*) FROM coil_jobs"), l.nids);
    ASSERT_EQ(fx_pg_sql(url, "SELECT count(*) FROM coil_jobs WHERE attempts <> 1"), 0);
    free(sql);
    free(l.ids);
    serve_stop(&s);
    serve_stop(&w);
    serve_cleanup(&s);
    serve_cleanup(&w);
    pg_tmp("stop", state, NULL);
    rmdir(state);
    free(url);
}

/* ------------------------------------------------------------------ one API on every node */

enum { ID_CLIENTS = 16, IDS_EACH = 25 };

typedef struct {
    int ports[2];
    long long ids[IDS_EACH];
    pthread_t tid;
} id_taker;

/* Takes IDS_EACH ids, alternating between the two nodes. */
static void *take_ids(void *arg) {
    id_taker *t = arg;
    for (int i = 0; i < IDS_EACH; i++) {
        serve_reply r;
        serve_http(t->ports[i % 2], "GET", "/ids/next", NULL, NULL, &r);
        ASSERT_EQ(r.status, 200);
        json_t *doc = serve_json(&r);
        t->ids[i] = json_integer_value(json_object_get(doc, "id"));
        json_decref(doc);
        serve_reply_free(&r);
    }
    return NULL;
}

typedef struct {
    int port;
    char id[40];
    int status;
    bool duplicate;
    pthread_t tid;
} dup_poster;

static void *post_duplicate(void *arg) {
    dup_poster *d = arg;
    serve_reply r;
    serve_http(d->port, "POST", "/jobs/demo.noop", "Idempotency-Key: order-42\r\n", "{}", &r);
    d->status = r.status;
    json_t *doc = serve_json(&r);
    snprintf(d->id, sizeof d->id, "%s", json_string_value(json_object_get(doc, "id")));
    d->duplicate = json_is_true(json_object_get(doc, "duplicate"));
    json_decref(doc);
    serve_reply_free(&r);
    return NULL;
}

static int cmp_ll(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

/* Two serve nodes and a worker node: /ids/next from 16 clients across both
 * nodes is 1..400, each once; one Idempotency-Key posted at both nodes at
 * once makes one job; a job run on the worker node streams its progress
 * to GET /jobs/{id}/events on a serve node. */
TEST(every_node_serves_one_api) {
    char *url = fx_tmpdir();
    serve_proc s1, s2, w;
    start_node(&s1, "serve", url, "0");
    start_node(&s2, "serve", url, "0");
    start_node(&w, "worker", url, "1");
    static id_taker t[ID_CLIENTS];
    for (int i = 0; i < ID_CLIENTS; i++) {
        t[i].ports[0] = i % 2 ? s1.port : s2.port;
        t[i].ports[1] = i % 2 ? s2.port : s1.port;
        ASSERT_EQ(pthread_create(&t[i].tid, NULL, take_ids, &t[i]), 0);
    }
    for (int i = 0; i < ID_CLIENTS; i++) ASSERT_EQ(pthread_join(t[i].tid, NULL), 0);
    static long long all[ID_CLIENTS * IDS_EACH];
    for (int i = 0; i < ID_CLIENTS; i++) memcpy(all + i * IDS_EACH, t[i].ids, sizeof t[i].ids);
    qsort(all, ID_CLIENTS * IDS_EACH, sizeof *all, cmp_ll);
    for (int i = 0; i < ID_CLIENTS * IDS_EACH; i++)
        ASSERT_EQ(all[i], i + 1); /* none repeated, none skipped */

    /* Concurrent duplicates at two nodes: one job, one id, one "new". */
    enum { DUPS = 8 };
    static dup_poster d[DUPS];
    for (int i = 0; i < DUPS; i++) {
        d[i].port = i % 2 ? s1.port : s2.port;
        ASSERT_EQ(pthread_create(&d[i].tid, NULL, post_duplicate, &d[i]), 0);
    }
    int fresh = 0;
    for (int i = 0; i < DUPS; i++) {
        ASSERT_EQ(pthread_join(d[i].tid, NULL), 0);
        ASSERT(d[i].status == 202 || d[i].status == 200);
        ASSERT_STR_EQ(d[i].id, d[0].id);
        fresh += !d[i].duplicate;
    }
    ASSERT_EQ(fresh, 1);
    ASSERT_EQ(fx_pg_sql(url, "SELECT count(*) FROM coil_jobs WHERE idem_key = 'order-42'"), 1);

    /* Events made on the worker node, streamed by a serve node. */
    char id[40], path[96];
    post_job(s2.port, "demo.sleep", "{\"ms\":600}", id);
    snprintf(path, sizeof path, "/jobs/%s/events", id);
    serve_reply r;
    ASSERT_EQ(serve_try_http_for(s1.port, "GET", path, NULL, NULL, 30000, &r), 0);
    ASSERT_EQ(r.status, 200);
    ASSERT(strstr(r.body, "event: progress") != NULL);
    ASSERT(strstr(r.body, "\"running\"") != NULL);
    const char *last = strstr(r.body, "event: status"), *next;
    while (last && (next = strstr(last + 1, "event: status"))) last = next;
    if (!last || !strstr(last, "\"succeeded\"")) fprintf(stderr, "events: %s\n", r.body);
    ASSERT(last && strstr(last, "\"succeeded\"") != NULL); /* it ends with the final state */
    serve_reply_free(&r);
    serve_stop(&s1);
    serve_stop(&s2);
    serve_stop(&w);
    serve_cleanup(&s1);
    serve_cleanup(&s2);
    serve_cleanup(&w);
    fx_rmtree(url);
}
