/* bench/bench_jobs_pg.c: `coil bench jobs --store postgres [--quick]
 * [--no-anchors]`.
 *
 * The job system on PostgreSQL, as its clients see it, against the
 * PostgreSQL job queues people use now. The benchmark starts its own
 * throwaway PostgreSQL (tests/pg/pg_tmp.sh: a Unix socket, PostgreSQL's
 * durable defaults, fsync and synchronous_commit on) and, for each round,
 * a fresh database with coil nodes on it (this very binary):
 *
 *   enqueue     one `coil serve --store URL --job-workers 0` (a node that
 *               runs no jobs): 64 keep-alive connections POST N demo.noop
 *               jobs, one job a request; every 202 came after its commit.
 *   process     the backlog of those N jobs: a `coil worker` with 2 job
 *               workers starts, and runs them all.
 *   end to end  with that worker running, N more jobs, demo.stamp this
 *               time (its result is the wall clock when its handler began);
 *               from the first POST until all have succeeded. The pickup
 *               of a job is from its 202 to its handler's start.
 *   paced       the pickup below capacity: with the queue empty, 2,000
 *               demo.stamp jobs one at a time on one connection, 500 a
 *               second: the latency of the wake (LISTEN/NOTIFY) and the
 *               claim, not of a backlog.
 *   rescue      a `coil worker` running 2 long jobs is SIGKILLed with its
 *               workers (its process group: a machine that died); another
 *               worker node is up; from the SIGKILL until both jobs run
 *               again there (state running, attempt 2). The lease is the
 *               default, 5 s.
 *
 * The anchors, on the same server and in the same rounds, alternating with
 * coil's: graphile-worker and pg-boss, run by the anchors' own scripts
 * (anchors/pg: graphile_bench.js and pgboss_bench.js, N jobs, 64 calls in
 * flight). Their node_modules are installed once with `npm ci` into a
 * cache ($XDG_CACHE_HOME or ~/.cache, coil/pg-anchors) and reused while
 * package-lock.json is unchanged.
 *
 * Completion is seen by polling the database every 5 ms, as the anchors'
 * scripts do: whether any job is still queued, running or failed (waiting
 * for a retry), through the index on state.
 *
 * Figures, one per line as "name value unit", medians of the rounds:
 *
 *   pg_jobs_enqueue_rate     N / (last 202 - first POST)             jobs/s
 *   pg_jobs_process_rate     N / (all succeeded - worker started)    jobs/s
 *   pg_jobs_end_to_end       N / (all succeeded - first POST)        jobs/s
 *   pg_pickup_p50_ms, pg_pickup_p99_ms   202 to handler start         ms
 *   pg_pickup_from_request_p99_ms        request sent to handler start,
 *                            what the anchors' pickup measures        ms
 *   pg_pickup_paced_p50_ms, pg_pickup_paced_p99_ms  202 to handler start
 *                            at 500 jobs/s                            ms
 *   pg_rescue_ms             SIGKILL to both jobs running again       ms
 *   graphile_*, pgboss_*     as their scripts print them
 *   pg_jobs_end_to_end_vs_graphile, pg_jobs_end_to_end_vs_pgboss,
 *   pg_pickup_p99_vs_graphile, pg_pickup_p99_vs_pgboss (from request) x
 *
 * Ratios follow the bench convention: > 1 means coil is better.
 *
 * On a 2-core machine the load generator, PostgreSQL, the nodes and their
 * workers all share the cores, for coil and the anchors alike.
 */
#include <errno.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/bench_jobs_http.h"
#include "bench/bench_serve.h"

enum {
    PG_JOBS = 20000,       /* per run, as the anchors' figures */
    PG_ROUNDS = 3,
    RESCUE_RUNS = 3,
    QUICK_DIVISOR = 4,
    JOB_WORKERS = 2,
    DONE_POLL_MS = 5,      /* as the anchors' scripts poll */
    RESCUE_TIMEOUT_S = 30,
    NPM_TIMEOUT_S = 600,
    ANCHOR_TIMEOUT_S = 600,
    PACED_JOBS = 2000,     /* the pickup below capacity: this many jobs, */
    PACED_RATE = 500,      /* at this many a second, one at a time */
};

typedef struct pg_cfg {
    int jobs, rounds, rescue_runs;
    bool anchors;
    char tmp[PATH_MAX];        /* scratch, removed at the end */
    char exe[PATH_MAX];        /* this coil binary */
    char state[PATH_MAX];      /* pg_tmp.sh's state directory */
    char admin_url[1024];      /* the server's postgres database */
    pid_t postmaster;          /* the server, taken down by an interruption */
    char anchor_dir[PATH_MAX]; /* anchors/pg with its node_modules */
} pg_cfg;

typedef struct pg_figures {
    coil_bench_samples enqueue, process, end_to_end, pickup_p50, pickup_p99, pickup_req_p99;
    coil_bench_samples paced_p50, paced_p99;
    coil_bench_samples rescue;
    coil_bench_samples gw_enqueue, gw_process, gw_end_to_end, gw_pickup_p99;
    coil_bench_samples pb_enqueue, pb_process, pb_end_to_end, pb_pickup_p99;
} pg_figures;

/* ------------------------------------------------------------------ the server */

static bool pg_tmp(pg_cfg *b, const char *cmd, char *out, size_t cap) {
    char script[PATH_MAX];
    snprintf(script, sizeof script, "%s/tests/pg/pg_tmp.sh", COIL_SOURCE_DIR);
    if (access(script, X_OK) != 0) {
        fprintf(stderr, "coil bench: %s not found: the PostgreSQL benchmark needs coil's source "
                        "tree\n", script);
        return false;
    }
    char *argv[] = {"/bin/bash", script, (char *)cmd, b->state, NULL};
    int rc = coil_bench_run_capture(argv, 120, b->tmp, out, cap);
    if (rc == 0) return true;
    fprintf(stderr, "coil bench: pg_tmp.sh %s failed (%d):\n%s\n", cmd, rc, out);
    return false;
}

/* The first line of file dir/name, without its newline. */
static bool first_line(const char *dir, const char *name, char *out, size_t cap) {
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    bool ok = f && fgets(out, (int)cap, f);
    if (f) fclose(f);
    if (ok) out[strcspn(out, "\n")] = '\0';
    return ok;
}

static bool server_start(pg_cfg *b) {
    char out[4096], data[PATH_MAX], pid[32];
    if (!coil_bench_join_path(b->state, sizeof b->state, b->tmp, "pg-state") ||
        !pg_tmp(b, "start", out, sizeof out) ||
        !first_line(b->state, "url", b->admin_url, sizeof b->admin_url))
        return false;
    /* The data directory's postmaster.pid names the server's process. */
    if (first_line(b->state, "data", data, sizeof data) &&
        first_line(data, "postmaster.pid", pid, sizeof pid) && atol(pid) > 1) {
        b->postmaster = (pid_t)atol(pid);
        coil_bench_track_group(b->postmaster, true);
    }
    fprintf(stderr, "coil bench: PostgreSQL at %s\n", b->admin_url);
    return true;
}

static void quiet(void *arg, const char *message) {
    (void)arg;
    (void)message;
}

/* Runs one command on `url`. Returns false after saying why. */
static bool sql(const char *url, const char *command) {
    PGconn *c = PQconnectdb(url);
    PQsetNoticeProcessor(c, quiet, NULL); /* "does not exist, skipping" */
    PGresult *r = PQstatus(c) == CONNECTION_OK ? PQexec(c, command) : NULL;
    bool ok = r && (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK);
    if (!ok) fprintf(stderr, "coil bench: %s: %s", command, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return ok;
}

/* The URL of database `db` on the server (the admin URL names postgres). */
static void db_url(const pg_cfg *b, const char *db, char *out, size_t cap) {
    const char *q = strstr(b->admin_url, "/postgres?");
    if (!q) {
        snprintf(out, cap, "%s", b->admin_url);
        return;
    }
    snprintf(out, cap, "%.*s/%s%s", (int)(q - b->admin_url), b->admin_url, db,
             q + strlen("/postgres"));
}

/* A fresh database `db`; its URL into out. */
static bool fresh_db(const pg_cfg *b, const char *db, char *out, size_t cap) {
    char cmd[160];
    snprintf(cmd, sizeof cmd, "DROP DATABASE IF EXISTS %s WITH (FORCE)", db);
    if (!sql(b->admin_url, cmd)) return false;
    snprintf(cmd, sizeof cmd, "CREATE DATABASE %s", db);
    if (!sql(b->admin_url, cmd)) return false;
    db_url(b, db, out, cap);
    return true;
}

static void drop_db(const pg_cfg *b, const char *db) {
    char cmd[160];
    snprintf(cmd, sizeof cmd, "DROP DATABASE IF EXISTS %s WITH (FORCE)", db);
    sql(b->admin_url, cmd);
}

/* ------------------------------------------------------------------ nodes */

/* Starts `coil CMD --store URL --job-workers N --listen 127.0.0.1:PORT`
 * (a worker node serves /health there) and waits until it listens. */
static bool start_node(const pg_cfg *b, coil_bench_server *srv, const char *cmd,
                       const char *url, int workers, const char *tag) {
    int port = coil_bench_free_port();
    char listen[64], nworkers[16];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    snprintf(nworkers, sizeof nworkers, "%d", workers);
    if (port <= 0) return false;
    char *argv[] = {(char *)b->exe, (char *)cmd, "--store", (char *)url, "--job-workers",
                    nworkers, "--listen", listen, "--no-access-log", NULL};
    const char *name = strcmp(cmd, "worker") == 0 ? "coil worker" : "coil serve";
    return coil_bench_server_start(b->tmp, srv, name, tag, argv, NULL, (uint16_t)port);
}

/* One connection for polling. */
typedef struct poller {
    PGconn *c;
} poller;

static bool poller_open(poller *p, const char *url) {
    p->c = PQconnectdb(url);
    if (PQstatus(p->c) == CONNECTION_OK) return true;
    fprintf(stderr, "coil bench: cannot connect to %s: %s", url, PQerrorMessage(p->c));
    PQfinish(p->c);
    p->c = NULL;
    return false;
}

static void poller_close(poller *p) {
    PQfinish(p->c);
    p->c = NULL;
}

/* The integer `query` yields, or -1. */
static long long poll_int(poller *p, const char *query) {
    PGresult *r = PQexec(p->c, query);
    long long v = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1
                      ? atoll(PQgetvalue(r, 0, 0))
                      : -1;
    if (v < 0) fprintf(stderr, "coil bench: %s: %s", query, PQerrorMessage(p->c));
    PQclear(r);
    return v;
}

/* Polls until no job is queued, running or failed; *t_done gets the
 * moment (monotonic s). Returns false on an error or a timeout. */
static bool wait_drained(poller *p, int timeout_s, double *t_done) {
    double deadline = coil_bench_now_s() + timeout_s;
    while (coil_bench_now_s() < deadline) {
        long long busy = poll_int(p, "SELECT count(*) FROM (SELECT 1 FROM coil_jobs"
                                     " WHERE state IN (0, 1, 3) LIMIT 1) AS busy");
        if (busy < 0) return false;
        if (busy == 0) {
            *t_done = coil_bench_now_s();
            return true;
        }
        coil_bench_sleep_ms(DONE_POLL_MS);
    }
    fprintf(stderr, "coil bench: jobs still unfinished after %d s\n", timeout_s);
    return false;
}

/* Whether exactly `n` jobs exist and all of them succeeded. */
static bool all_succeeded(poller *p, long long n) {
    long long total = poll_int(p, "SELECT count(*) FROM coil_jobs");
    long long ok = poll_int(p, "SELECT count(*) FROM coil_jobs WHERE state = 2");
    if (total == n && ok == n) return true;
    fprintf(stderr, "coil bench: %lld jobs, %lld succeeded; %lld were enqueued\n", total, ok, n);
    return false;
}

/* ------------------------------------------------------------------ pickup */

/* When each 202 of the end-to-end run came, by job id. */
typedef struct pickups {
    int n, cap;
    char (*id)[33];
    double *sent_wall_ms, *answered_wall_ms;
    double wall_minus_mono_ms; /* to turn the burst's monotonic times to wall */
} pickups;

static void note_202(void *arg, const char *body, double sent_s, double answered_s) {
    pickups *pk = arg;
    if (pk->n == pk->cap) return;
    const char *at = strstr(body, "\"id\":\"");
    if (!at || strlen(at + 6) < 32) return;
    memcpy(pk->id[pk->n], at + 6, 32);
    pk->id[pk->n][32] = '\0';
    pk->sent_wall_ms[pk->n] = sent_s * 1000 + pk->wall_minus_mono_ms;
    pk->answered_wall_ms[pk->n] = answered_s * 1000 + pk->wall_minus_mono_ms;
    pk->n++;
}

/* A 202 of the end-to-end run, found by id. */
typedef struct accepted_job {
    const char *id;
    int k; /* its index in the pickups */
} accepted_job;

static int cmp_accepted(const void *a, const void *b) {
    return strcmp(((const accepted_job *)a)->id, ((const accepted_job *)b)->id);
}

/* Reads every demo.stamp result and computes the pickup percentiles, from
 * the 202 and from the request. Returns false if a job is missing. */
static bool pickup_figures(poller *p, pickups *pk, double *p50, double *p99, double *req_p99) {
    PGresult *r = PQexec(p->c, "SELECT id, convert_from(result, 'UTF8') FROM coil_jobs"
                               " WHERE kind = 'demo.stamp'");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "coil bench: reading the results: %s", PQerrorMessage(p->c));
        PQclear(r);
        return false;
    }
    int rows = PQntuples(r);
    size_t n = (size_t)(pk->n ? pk->n : 1);
    accepted_job *by_id = malloc(n * sizeof *by_id);
    double *from_202 = malloc(n * sizeof *from_202), *from_req = malloc(n * sizeof *from_req);
    bool ok = by_id && from_202 && from_req && rows == pk->n && rows > 0;
    for (int i = 0; ok && i < pk->n; i++) by_id[i] = (accepted_job){pk->id[i], i};
    if (ok) qsort(by_id, (size_t)pk->n, sizeof *by_id, cmp_accepted);
    for (int i = 0; ok && i < rows; i++) {
        accepted_job key = {PQgetvalue(r, i, 0), 0};
        const accepted_job *a = bsearch(&key, by_id, (size_t)pk->n, sizeof *by_id, cmp_accepted);
        json_t *doc = json_loads(PQgetvalue(r, i, 1), 0, NULL);
        long long us = json_integer_value(json_object_get(doc, "started_us"));
        json_decref(doc);
        ok = a && us > 0;
        if (!ok) break;
        from_202[i] = (double)us / 1000 - pk->answered_wall_ms[a->k];
        from_req[i] = (double)us / 1000 - pk->sent_wall_ms[a->k];
    }
    if (ok) {
        qsort(from_202, (size_t)rows, sizeof *from_202, coil_bench_cmp_double);
        qsort(from_req, (size_t)rows, sizeof *from_req, coil_bench_cmp_double);
        /* A job may start before its 202 reaches the client (the worker's
         * wake races the answer): its pickup counts as 0. */
        *p50 = from_202[rows / 2] > 0 ? from_202[rows / 2] : 0;
        *p99 = from_202[(int)(rows * 0.99)] > 0 ? from_202[(int)(rows * 0.99)] : 0;
        *req_p99 = from_req[(int)(rows * 0.99)];
    } else {
        fprintf(stderr, "coil bench: %d stamped results for %d accepted jobs\n", rows, pk->n);
    }
    free(by_id);
    free(from_202);
    free(from_req);
    PQclear(r);
    return ok;
}

/* Enqueues `n` demo.stamp jobs one at a time on one connection, one every
 * `gap_ms`, noting each 202 as the burst does. Returns false on a refusal. */
static bool paced_run(uint16_t port, int n, double gap_ms, pickups *pk) {
    coil_bench_conn c = {.port = port, .fd = -1};
    double next = coil_bench_now_s();
    bool ok = true;
    for (int i = 0; i < n && ok; i++) {
        double wait_ms = (next - coil_bench_now_s()) * 1000;
        if (wait_ms > 0) coil_bench_sleep_ms((long)wait_ms);
        next += gap_ms / 1000;
        char out[512];
        double sent = coil_bench_now_s();
        int status = coil_bench_conn_request(&c, "POST", "/jobs/demo.stamp", NULL, "{}", out,
                                             sizeof out);
        ok = status == 202;
        if (ok) note_202(pk, out, sent, coil_bench_now_s());
        else fprintf(stderr, "coil bench: paced POST answered %d\n", status);
    }
    coil_bench_conn_close(&c);
    return ok;
}

/* ------------------------------------------------------------------ a round of coil */

static void coil_round(pg_cfg *b, pg_figures *f, int round) {
    char db[32], url[1200], tag[32];
    snprintf(db, sizeof db, "coil_bench_%d", round);
    if (!fresh_db(b, db, url, sizeof url)) return;
    coil_bench_server serve = {.pid = -1}, worker = {.pid = -1};
    poller p = {0};
    double enqueue = 0, process = 0, end_to_end = 0, p50 = 0, p99 = 0, req_p99 = 0;
    double paced_p50 = 0, paced_p99 = 0, paced_req_p99 = 0;
    pickups pk = {.cap = b->jobs};
    pk.id = calloc((size_t)b->jobs, sizeof *pk.id);
    pk.sent_wall_ms = calloc((size_t)b->jobs, sizeof *pk.sent_wall_ms);
    pk.answered_wall_ms = calloc((size_t)b->jobs, sizeof *pk.answered_wall_ms);
    snprintf(tag, sizeof tag, "serve-%d", round);
    if (!pk.id || !pk.sent_wall_ms || !pk.answered_wall_ms ||
        !start_node(b, &serve, "serve", url, 0, tag) || !poller_open(&p, url))
        goto out;
    /* Enqueue, with no worker anywhere. */
    coil_bench_burst run = {.port = serve.port, .total = b->jobs};
    if (!coil_bench_run_burst(&run)) goto out;
    enqueue = run.total / (run.t_last - run.t_first);
    /* The backlog: a worker node starts and drains it. */
    double t_worker = coil_bench_now_s(), t_done;
    snprintf(tag, sizeof tag, "worker-%d", round);
    if (!start_node(b, &worker, "worker", url, JOB_WORKERS, tag)) goto out;
    if (!wait_drained(&p, COIL_BENCH_RUN_TIMEOUT_S, &t_done) || !all_succeeded(&p, b->jobs))
        goto out;
    process = b->jobs / (t_done - t_worker);
    /* End to end, the worker running. */
    pk.wall_minus_mono_ms = (double)coil_bench_wall_ms() - coil_bench_now_s() * 1000;
    coil_bench_burst e2e = {.port = serve.port, .total = b->jobs, .kind = "demo.stamp",
                            .on_202 = note_202, .arg = &pk};
    if (!coil_bench_run_burst(&e2e)) goto out;
    if (!wait_drained(&p, COIL_BENCH_RUN_TIMEOUT_S, &t_done) ||
        !all_succeeded(&p, 2LL * b->jobs))
        goto out;
    end_to_end = b->jobs / (t_done - e2e.t_first);
    if (!pickup_figures(&p, &pk, &p50, &p99, &req_p99)) p50 = p99 = req_p99 = 0;
    /* Pickup below capacity: PACED_JOBS at PACED_RATE, the queue empty. */
    if (!sql(url, "DELETE FROM coil_jobs")) goto out;
    pk.n = 0;
    if (paced_run(serve.port, PACED_JOBS, 1000.0 / PACED_RATE, &pk) &&
        wait_drained(&p, COIL_BENCH_RUN_TIMEOUT_S, &t_done) &&
        !pickup_figures(&p, &pk, &paced_p50, &paced_p99, &paced_req_p99))
        paced_p50 = paced_p99 = 0;
out:
    poller_close(&p);
    coil_bench_server_stop(&worker);
    coil_bench_server_stop(&serve);
    drop_db(b, db);
    free(pk.id);
    free(pk.sent_wall_ms);
    free(pk.answered_wall_ms);
    fprintf(stderr, "coil bench:   round %d: coil enqueue %.0f, backlog %.0f, end to end %.0f "
                    "jobs/s, pickup p50 %.1f p99 %.1f ms (from the request p99 %.1f); at "
                    "%d jobs/s: p50 %.2f p99 %.2f ms\n",
            round, enqueue, process, end_to_end, p50, p99, req_p99, PACED_RATE, paced_p50,
            paced_p99);
    coil_bench_add_sample(&f->enqueue, enqueue);
    coil_bench_add_sample(&f->process, process);
    coil_bench_add_sample(&f->end_to_end, end_to_end);
    if (end_to_end > 0 && p99 > 0) {
        coil_bench_add_sample(&f->pickup_p50, p50 > 0 ? p50 : 1e-3);
        coil_bench_add_sample(&f->pickup_p99, p99);
        coil_bench_add_sample(&f->pickup_req_p99, req_p99);
    }
    if (paced_p99 > 0) {
        coil_bench_add_sample(&f->paced_p50, paced_p50 > 0 ? paced_p50 : 1e-3);
        coil_bench_add_sample(&f->paced_p99, paced_p99);
    }
}

/* ------------------------------------------------------------------ rescue */

/* Two long jobs on worker node w1, a second worker node up, SIGKILL to w1's
 * process group: the ms until both run again. -1 on a failure. */
static double rescue_run(pg_cfg *b, int run) {
    char db[32], url[1200], tag[32];
    snprintf(db, sizeof db, "coil_rescue_%d", run);
    if (!fresh_db(b, db, url, sizeof url)) return -1;
    coil_bench_server serve = {.pid = -1}, w1 = {.pid = -1}, w2 = {.pid = -1};
    poller p = {0};
    double ms = -1;
    snprintf(tag, sizeof tag, "rescue-serve-%d", run);
    if (!start_node(b, &serve, "serve", url, 0, tag) || !poller_open(&p, url)) goto out;
    snprintf(tag, sizeof tag, "rescue-w1-%d", run);
    if (!start_node(b, &w1, "worker", url, JOB_WORKERS, tag)) goto out;
    coil_bench_conn c = {.port = serve.port, .fd = -1};
    char id[33];
    for (int i = 0; i < 2; i++)
        if (!coil_bench_enqueue_one(&c, "demo.sleep", NULL, "{\"ms\":120000}", id)) goto out;
    coil_bench_conn_close(&c);
    double deadline = coil_bench_now_s() + RESCUE_TIMEOUT_S;
    while (poll_int(&p, "SELECT count(*) FROM coil_jobs WHERE state = 1") != 2) {
        if (coil_bench_now_s() > deadline) goto out;
        coil_bench_sleep_ms(DONE_POLL_MS);
    }
    snprintf(tag, sizeof tag, "rescue-w2-%d", run);
    if (!start_node(b, &w2, "worker", url, JOB_WORKERS, tag)) goto out;
    double t_kill = coil_bench_now_s();
    kill(-w1.pid, SIGKILL);
    deadline = t_kill + RESCUE_TIMEOUT_S;
    long long again;
    while ((again = poll_int(&p, "SELECT count(*) FROM coil_jobs"
                                 " WHERE state = 1 AND attempts = 2")) != 2) {
        if (again < 0 || coil_bench_now_s() > deadline) goto out;
        coil_bench_sleep_ms(DONE_POLL_MS);
    }
    ms = (coil_bench_now_s() - t_kill) * 1000;
out:
    if (ms < 0) fprintf(stderr, "coil bench: rescue run %d failed\n", run);
    poller_close(&p);
    coil_bench_server_stop(&w1);
    coil_bench_server_stop(&w2);
    coil_bench_server_stop(&serve);
    drop_db(b, db);
    return ms;
}

/* ------------------------------------------------------------------ the anchors */

static bool same_file(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    bool same = fa && fb;
    while (same) {
        int ca = fgetc(fa), cb = fgetc(fb);
        if (ca != cb) same = false;
        if (ca == EOF || cb == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

/* anchors/pg with its node_modules, in the cache: copied and `npm ci`'d
 * unless the cache has this very package-lock.json installed. */
static bool anchors_ready(pg_cfg *b) {
    char anchors[PATH_MAX], src[PATH_MAX], lock_src[PATH_MAX + 32], lock_dst[PATH_MAX + 32];
    if (!coil_bench_find_anchors(anchors, sizeof anchors) ||
        !coil_bench_join_path(src, sizeof src, anchors, "pg") || access(src, R_OK) != 0) {
        fprintf(stderr, "coil bench: anchors/pg not found (set COIL_ANCHORS_DIR); "
                        "graphile-worker and pg-boss skipped\n");
        return false;
    }
    if (access("/usr/bin/node", X_OK) != 0 || access("/usr/bin/npm", X_OK) != 0) {
        fprintf(stderr, "coil bench: node and npm not found (scripts/deps bench); "
                        "graphile-worker and pg-boss skipped\n");
        return false;
    }
    const char *cache = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char base[PATH_MAX];
    if (cache && *cache) snprintf(base, sizeof base, "%s/coil", cache);
    else snprintf(base, sizeof base, "%s/.cache/coil", home && *home ? home : "/tmp");
    if ((size_t)snprintf(b->anchor_dir, sizeof b->anchor_dir, "%s/pg-anchors", base) >=
        sizeof b->anchor_dir)
        return false;
    snprintf(lock_src, sizeof lock_src, "%s/package-lock.json", src);
    snprintf(lock_dst, sizeof lock_dst, "%s/package-lock.json", b->anchor_dir);
    char installed[PATH_MAX + 32];
    snprintf(installed, sizeof installed, "%s/node_modules/.package-lock.json", b->anchor_dir);
    if (same_file(lock_src, lock_dst) && access(installed, R_OK) == 0) return true;
    fprintf(stderr, "coil bench: installing graphile-worker and pg-boss (npm ci) in %s\n",
            b->anchor_dir);
    char cmd[6 * PATH_MAX];
    if ((size_t)snprintf(cmd, sizeof cmd,
                         "mkdir -p '%s' && rm -rf '%s' && cp -r '%s' '%s' && cd '%s' && "
                         "npm ci --no-audit --no-fund --loglevel=error",
                         base, b->anchor_dir, src, b->anchor_dir, b->anchor_dir) >= sizeof cmd)
        return false;
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    char out[4096];
    int rc = coil_bench_run_capture(argv, NPM_TIMEOUT_S, b->tmp, out, sizeof out);
    if (rc == 0 && access(installed, R_OK) == 0) return true;
    fprintf(stderr, "coil bench: npm ci failed (%d):\n%s\ngraphile-worker and pg-boss skipped\n",
            rc, out);
    return false;
}

/* The value after "name " in the output, or 0. */
static double value_of(const char *out, const char *name) {
    char key[96];
    snprintf(key, sizeof key, "%s ", name);
    const char *p = strstr(out, key);
    return p ? strtod(p + strlen(key), NULL) : 0;
}

/* node SCRIPT URL N on the server's postgres database. */
static void anchor_round(pg_cfg *b, const char *prefix, const char *script, int round,
                         coil_bench_samples *enq, coil_bench_samples *proc,
                         coil_bench_samples *e2e, coil_bench_samples *pickup) {
    char path[PATH_MAX + 64], n[16], out[8192];
    snprintf(path, sizeof path, "%s/%s", b->anchor_dir, script);
    snprintf(n, sizeof n, "%d", b->jobs);
    char *argv[] = {"/usr/bin/node", path, b->admin_url, n, NULL};
    int rc = coil_bench_run_capture(argv, ANCHOR_TIMEOUT_S, b->tmp, out, sizeof out);
    char name[64];
    double v[4];
    const char *figs[] = {"enqueue_rate", "process_rate", "end_to_end", "e2e_pickup_p99"};
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "%s_%s", prefix, figs[i]);
        v[i] = value_of(out, name);
    }
    if (rc != 0 || v[0] <= 0 || v[1] <= 0 || v[2] <= 0 || v[3] <= 0) {
        fprintf(stderr, "coil bench: %s failed (%d):\n%s\n", script, rc, out);
        return;
    }
    fprintf(stderr, "coil bench:   round %d: %s enqueue %.0f, process %.0f, end to end %.0f "
                    "jobs/s, pickup p99 %.1f ms\n", round, prefix, v[0], v[1], v[2], v[3]);
    coil_bench_add_sample(enq, v[0]);
    coil_bench_add_sample(proc, v[1]);
    coil_bench_add_sample(e2e, v[2]);
    coil_bench_add_sample(pickup, v[3]);
}

/* ------------------------------------------------------------------ the run */

static void print_median(const char *name, const coil_bench_samples *s, const char *unit) {
    if (s->n) coil_bench_figure(name, coil_bench_median(s), unit);
}

static void report(const pg_figures *f) {
    print_median("pg_jobs_enqueue_rate", &f->enqueue, "jobs/s");
    print_median("pg_jobs_process_rate", &f->process, "jobs/s");
    print_median("pg_jobs_end_to_end", &f->end_to_end, "jobs/s");
    print_median("pg_pickup_p50_ms", &f->pickup_p50, "ms");
    print_median("pg_pickup_p99_ms", &f->pickup_p99, "ms");
    print_median("pg_pickup_from_request_p99_ms", &f->pickup_req_p99, "ms");
    print_median("pg_pickup_paced_p50_ms", &f->paced_p50, "ms");
    print_median("pg_pickup_paced_p99_ms", &f->paced_p99, "ms");
    print_median("pg_rescue_ms", &f->rescue, "ms");
    print_median("graphile_enqueue_rate", &f->gw_enqueue, "jobs/s");
    print_median("graphile_process_rate", &f->gw_process, "jobs/s");
    print_median("graphile_end_to_end", &f->gw_end_to_end, "jobs/s");
    print_median("graphile_e2e_pickup_p99", &f->gw_pickup_p99, "ms");
    print_median("pgboss_enqueue_rate", &f->pb_enqueue, "jobs/s");
    print_median("pgboss_process_rate", &f->pb_process, "jobs/s");
    print_median("pgboss_end_to_end", &f->pb_end_to_end, "jobs/s");
    print_median("pgboss_e2e_pickup_p99", &f->pb_pickup_p99, "ms");
    double e2e = coil_bench_median(&f->end_to_end), req = coil_bench_median(&f->pickup_req_p99);
    coil_bench_ratio("pg_jobs_enqueue_rate_vs_graphile", coil_bench_median(&f->enqueue),
                     coil_bench_median(&f->gw_enqueue), true);
    coil_bench_ratio("pg_jobs_enqueue_rate_vs_pgboss", coil_bench_median(&f->enqueue),
                     coil_bench_median(&f->pb_enqueue), true);
    coil_bench_ratio("pg_jobs_end_to_end_vs_graphile", e2e, coil_bench_median(&f->gw_end_to_end),
                     true);
    coil_bench_ratio("pg_jobs_end_to_end_vs_pgboss", e2e, coil_bench_median(&f->pb_end_to_end),
                     true);
    coil_bench_ratio("pg_pickup_p99_vs_graphile", req, coil_bench_median(&f->gw_pickup_p99),
                     false);
    coil_bench_ratio("pg_pickup_p99_vs_pgboss", req, coil_bench_median(&f->pb_pickup_p99), false);
}

static int usage(void) {
    fprintf(stderr, "usage: coil bench jobs --store postgres [--quick] [--no-anchors]\n");
    return 2;
}

int coil_bench_jobs_pg(int argc, char **argv) {
    pg_cfg b = {.jobs = PG_JOBS, .rounds = PG_ROUNDS, .rescue_runs = RESCUE_RUNS,
                .anchors = true};
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            b.jobs /= QUICK_DIVISOR;
            b.rounds = 1;
            b.rescue_runs = 1;
        } else if (strcmp(argv[i], "--no-anchors") == 0) {
            b.anchors = false;
        } else {
            return usage();
        }
    }
    ssize_t n = readlink("/proc/self/exe", b.exe, sizeof b.exe - 1);
    if (n <= 0) return 1;
    b.exe[n] = '\0';
    if (!coil_bench_make_tmp(b.tmp, sizeof b.tmp, "jobs-pg")) return 1;
    coil_bench_trap_signals(true);
    pg_figures f = {0};
    if (b.anchors) b.anchors = anchors_ready(&b);
    if (server_start(&b)) {
        for (int round = 1; round <= b.rounds; round++) {
            coil_round(&b, &f, round);
            if (!b.anchors) continue;
            anchor_round(&b, "graphile", "graphile_bench.js", round, &f.gw_enqueue,
                         &f.gw_process, &f.gw_end_to_end, &f.gw_pickup_p99);
            anchor_round(&b, "pgboss", "pgboss_bench.js", round, &f.pb_enqueue, &f.pb_process,
                         &f.pb_end_to_end, &f.pb_pickup_p99);
        }
        for (int run = 1; run <= b.rescue_runs; run++) {
            double ms = rescue_run(&b, run);
            if (ms > 0) fprintf(stderr, "coil bench:   rescue %d: %.0f ms\n", run, ms);
            coil_bench_add_sample(&f.rescue, ms);
        }
        report(&f);
        char out[1024];
        if (b.postmaster) coil_bench_track_group(b.postmaster, false);
        pg_tmp(&b, "stop", out, sizeof out);
    }
    coil_bench_remove_tree(b.tmp);
    coil_bench_trap_signals(false);
    return f.enqueue.n && f.end_to_end.n && f.rescue.n ? 0 : 1;
}
