/* bench/bench_jobs.c: `coil bench jobs [--quick] [--no-anchors]`; with
 * `--store postgres`, bench_jobs_pg.c runs instead.
 *
 * The durable job system as its clients see it: `coil serve` (this very
 * binary) with `--job-workers 2`, driven over HTTP on 127.0.0.1, each run
 * with a fresh data directory. Every 202 counted here was answered after
 * its job was fsync'd.
 *
 *   throughput  64 keep-alive connections POST /jobs/demo.noop until N jobs
 *               are accepted, while the 2 workers run them; then the jobs
 *               lists are polled until no job is queued, running or
 *               waiting for a retry.
 *   backlog     N more no-op jobs, each with the delay_ms that makes all of
 *               them due at the same instant, after the last is accepted;
 *               from that instant until all have succeeded.
 *   crash       2 demo.sleep jobs keep both workers busy; a worker process
 *               (a child of the server whose command line has
 *               --coil-worker) is sent SIGKILL, and the job's event stream
 *               (GET /jobs/{id}/events) says when its status left
 *               `running`. That job is cancelled and replaced; 20 rounds.
 *   health      GET /health on one connection for 5 s, one request
 *               after the other with 1 ms between an answer and the next
 *               request, first with the server idle, then while demo.cpu
 *               jobs keep both workers burning CPU. Back to back requests
 *               would keep the client and the server's loop busy on one of
 *               the 2 cores between them, so that the workers would get
 *               only the other; with the pause they get both (the
 *               benchmark says on stderr how many CPUs they used), and
 *               each request has to win a CPU from them.
 *   kinds       the command kind, the awaiting kind and a per-kind
 *               limit (bench_jobs_kinds.c).
 *   beanstalkd  the anchor: beanstalkd with an fsync per write (-f 0), and
 *               the anchors' beanstalk_bench.py, N jobs.
 *
 * The throughput runs of coil and of beanstalkd take turns, 3 rounds of
 * each, each with a fresh server and data directory, so that drift on a
 * shared machine hits both alike; each figure is the median of its rounds
 * (each round's figures go to stderr).
 *
 * Figures, one per line as "name value unit":
 *
 *   jobs_enqueue_rate        N / (last 202 - first POST)             jobs/s
 *   jobs_end_to_end          N / (all succeeded - first POST)        jobs/s
 *   jobs_process_rate        N / (all succeeded - the instant the
 *                            backlog became due)                     jobs/s
 *   jobs_crash_detect_ms     SIGKILL to the status event, median     ms
 *   jobs_crash_detect_max_ms the worst of the rounds                 ms
 *   health_p50_idle, health_p99_idle, health_max_idle                ms
 *   health_p50_under_cpu_load, health_p99_under_cpu_load,
 *   health_max_under_cpu_load                                        ms
 *   health_p99_under_cpu_load_vs_idle  idle p99 / loaded p99         x
 *   beanstalkd_enqueue_rate, beanstalkd_process_rate,
 *   beanstalkd_end_to_end    as beanstalk_bench.py prints them        jobs/s
 *   jobs_enqueue_rate_vs_beanstalkd, jobs_process_rate_vs_beanstalkd,
 *   jobs_end_to_end_vs_beanstalkd                                    x
 *   command_kind_jobs_per_s, async_kind_concurrent_jobs, limit_overhead_vs_none
 *                            (bench_jobs_kinds.c)
 *
 * Ratios follow the bench convention: > 1 means coil is better.
 *
 * End to end means what beanstalk_bench.py means: jobs over the time from
 * the first enqueue to the last job done. beanstalk_bench.py enqueues
 * everything first and then processes with one client, while coil's
 * workers run the jobs as they arrive; both are a client's wait for N
 * jobs to be done.
 *
 * The machine may have 2 cores only: then the clients here (one thread
 * for all 64 connections), the server's loops, its store writer and its 2
 * worker processes all share them, and the figures are lower than on a
 * machine where the load generator has cores of its own. The same holds
 * for beanstalkd and its Python client.
 *
 * Every process started here runs in a process group of its own and is
 * stopped with it; every wait is bounded. The whole run takes about a
 * minute and a half (--quick: one round of a quarter of the jobs, a
 * quarter of the crash rounds, 2 s latency runs).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/bench_jobs_http.h"
#include "bench/bench_serve.h"

enum {
    JOBS = 20000,          /* per throughput run */
    JOB_WORKERS = 2,
    CRASH_RUNS = 20,
    HEALTH_SECS = 5,
    HEALTH_PAUSE_US = 1000, /* between one /health answer and the next request */
    CPU_JOB_MS = 2000,     /* each demo.cpu job of the health run */
    CPU_JOBS = 10,         /* 2 workers x 5 jobs x 2 s: ~10 s of load */
    EVENT_TIMEOUT_S = 10,  /* for a job to start, or its crash to be seen */
    ROUNDS = 3,            /* throughput runs of coil and beanstalkd, alternating */
    QUICK_DIVISOR = 4,
};

static const char *python = "/usr/bin/python3";

typedef struct jobs_cfg {
    int jobs;                  /* per throughput run */
    int rounds;                /* of coil's and beanstalkd's throughput runs */
    int crash_runs;
    int health_secs;
    bool anchors;              /* run beanstalkd */
    char tmp[PATH_MAX];        /* scratch directory, removed at the end */
    char exe[PATH_MAX];        /* this coil binary */
    char anchors_dir[PATH_MAX];
} jobs_cfg;

/* Everything measured; 0 where not. */
typedef struct jobs_figures {
    coil_bench_samples enqueue, end_to_end, process;          /* coil, per round */
    coil_bench_samples bs_enqueue, bs_process, bs_end_to_end; /* beanstalkd, per round */
    double crash_p50_ms, crash_max_ms;
    coil_bench_latency idle, load;
} jobs_figures;

/* ------------------------------------------------------------------ the server */

/* Starts `coil serve --job-workers 2` on a free port with the data
 * directory tmp/data-TAG, and checks that it serves the jobs API. */
static bool start_coil(const jobs_cfg *b, coil_bench_server *srv, const char *tag) {
    int port = coil_bench_free_port();
    char listen[64], data[PATH_MAX], dir[64], workers[16], log[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    snprintf(dir, sizeof dir, "data-%s", tag);
    snprintf(workers, sizeof workers, "%d", JOB_WORKERS);
    snprintf(log, sizeof log, "coil-%s", tag);
    if (port <= 0 || !coil_bench_join_path(data, sizeof data, b->tmp, dir)) return false;
    char *argv[] = {(char *)b->exe, "serve", "--listen", listen, "--data", data,
                    "--job-workers", workers, "--no-access-log", NULL};
    if (!coil_bench_server_start(b->tmp, srv, "coil serve", log, argv, NULL, (uint16_t)port))
        return false;
    coil_bench_conn c = {.port = srv->port, .fd = -1};
    int status = coil_bench_conn_get(&c, "/jobs?limit=1");
    coil_bench_conn_close(&c);
    if (status == 200) return true;
    fprintf(stderr, "coil bench: GET /jobs answered %d: this coil serve has no jobs API\n",
            status);
    coil_bench_show_log_tail(srv->log);
    coil_bench_server_stop(srv);
    return false;
}

/* ------------------------------------------------------------------ throughput */

/* One round: enqueue rate and end to end on a fresh server; then the
 * backlog run on the same server. */
static void throughput_round(const jobs_cfg *b, jobs_figures *f, int round) {
    coil_bench_server srv = {.pid = -1};
    char tag[32];
    snprintf(tag, sizeof tag, "throughput-%d", round);
    if (!start_coil(b, &srv, tag)) return;
    coil_bench_burst run = {.port = srv.port, .total = b->jobs};
    double t_done, enqueue = 0, end_to_end = 0, process = 0;
    if (coil_bench_run_burst(&run)) {
        enqueue = run.total / (run.t_last - run.t_first);
        if (coil_bench_wait_all_finished(srv.port, COIL_BENCH_RUN_TIMEOUT_S, &t_done) &&
            coil_bench_all_succeeded(srv.port))
            end_to_end = run.total / (t_done - run.t_first);
    }
    if (end_to_end > 0) {
        /* All due at once, once the last is in: enqueuing takes about as
         * long as above; half as long again, plus a second, for safety. */
        double enqueue_s = run.t_last - run.t_first;
        long long lead_ms = (long long)(enqueue_s * 1500) + 1000;
        coil_bench_burst backlog = {
            .port = srv.port, .total = b->jobs, .due_wall_ms = coil_bench_wall_ms() + lead_ms};
        double t_due = coil_bench_now_s() + (double)lead_ms / 1000;
        bool in_time = coil_bench_run_burst(&backlog) && coil_bench_now_s() < t_due;
        if (backlog.accepted == backlog.total && !in_time)
            fprintf(stderr, "coil bench: the backlog was not in before it was due; "
                            "jobs_process_rate skipped\n");
        int timeout_s = COIL_BENCH_RUN_TIMEOUT_S + (int)(lead_ms / 1000);
        if (in_time && coil_bench_wait_all_finished(srv.port, timeout_s, &t_done) &&
            coil_bench_all_succeeded(srv.port)) {
            process = backlog.total / (t_done - t_due);
        }
    }
    coil_bench_server_stop(&srv);
    fprintf(stderr, "coil bench:   round %d: coil enqueue %.0f, end to end %.0f, backlog %.0f "
                    "jobs/s\n", round, enqueue, end_to_end, process);
    coil_bench_add_sample(&f->enqueue, enqueue);
    coil_bench_add_sample(&f->end_to_end, end_to_end);
    coil_bench_add_sample(&f->process, process);
}

/* ------------------------------------------------------------------ an event stream */

/* GET /jobs/{id}/events, read as it comes: the response head, then the
 * body (dechunked if need be) split into events at blank lines. */
typedef struct sse {
    int fd;                    /* -1 when closed */
    bool head_done;            /* the response head has been read */
    bool chunked;              /* the body is chunked */
    bool ended;                /* the last chunk, or the end of the stream, came */
    size_t raw_len, data_len;
    char raw[16384];           /* bytes received, not yet dechunked */
    char data[16384];          /* body bytes without \r, not yet split into events */
} sse;

static bool sse_open(sse *s, uint16_t port, const char *id) {
    *s = (sse){.fd = coil_bench_connect(port)};
    char req[256];
    int n = snprintf(req, sizeof req,
                     "GET /jobs/%s/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Accept: text/event-stream\r\n\r\n",
                     id);
    return s->fd >= 0 && coil_bench_send_all(s->fd, req, (size_t)n);
}

static void sse_close(sse *s) {
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
}

/* Appends body bytes to s->data, dropping carriage returns. */
static bool sse_append(sse *s, const char *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\r') continue;
        if (s->data_len == sizeof s->data - 1) return false;
        s->data[s->data_len++] = p[i];
    }
    s->data[s->data_len] = '\0';
    return true;
}

/* Moves the body bytes of s->raw to s->data. Returns false if malformed. */
static bool sse_dechunk(sse *s) {
    if (!s->chunked) {
        bool ok = sse_append(s, s->raw, s->raw_len);
        s->raw_len = 0;
        return ok;
    }
    for (;;) {
        char *eol = memmem(s->raw, s->raw_len, "\r\n", 2);
        if (!eol) return s->raw_len < 32;
        char *end;
        unsigned long size = strtoul(s->raw, &end, 16);
        if (end == s->raw) return false;
        size_t line = (size_t)(eol - s->raw) + 2;
        if (size == 0) {
            s->ended = true;
            return true;
        }
        if (size > sizeof s->raw || s->raw_len < line + size + 2) return true;
        if (!sse_append(s, s->raw + line, size)) return false;
        memmove(s->raw, s->raw + line + size + 2, s->raw_len - line - size - 2);
        s->raw_len -= line + size + 2;
    }
}

/* One recv(2) (the caller saw the socket readable). Returns false when the
 * stream is over or malformed. */
static bool sse_read(sse *s) {
    ssize_t r = recv(s->fd, s->raw + s->raw_len, sizeof s->raw - 1 - s->raw_len, 0);
    if (r < 0 && errno == EINTR) return true;
    if (r <= 0) return false;
    s->raw_len += (size_t)r;
    s->raw[s->raw_len] = '\0';
    if (!s->head_done) {
        char *end = strstr(s->raw, "\r\n\r\n");
        if (!end) return s->raw_len < sizeof s->raw - 1;
        int status = 0;
        *end = '\0';
        if (sscanf(s->raw, "HTTP/1.%*d %d", &status) != 1 || status != 200) return false;
        s->chunked = strcasestr(s->raw, "transfer-encoding: chunked") != NULL;
        size_t head = (size_t)(end - s->raw) + 4;
        memmove(s->raw, s->raw + head, s->raw_len - head + 1);
        s->raw_len -= head;
        s->head_done = true;
    }
    return sse_dechunk(s);
}

/* The next whole event: its name into `event`, its data parsed as JSON
 * into *doc (new reference, or NULL). Returns 1, or 0 if none is whole. */
static int sse_next(sse *s, char *event, size_t cap, json_t **doc) {
    char *end = strstr(s->data, "\n\n");
    if (!end) return 0;
    *end = '\0';
    char data[sizeof s->data];
    size_t dlen = 0;
    snprintf(event, cap, "message");
    for (char *line = s->data, *next; line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        if (strncmp(line, "event:", 6) == 0) {
            snprintf(event, cap, "%s", line + 6 + (line[6] == ' '));
        } else if (strncmp(line, "data:", 5) == 0) {
            int n = snprintf(data + dlen, sizeof data - dlen, "%s%s", dlen ? "\n" : "",
                             line + 5 + (line[5] == ' '));
            if (n > 0) dlen += (size_t)n;
        }
    }
    data[dlen < sizeof data ? dlen : sizeof data - 1] = '\0';
    *doc = json_loads(data, 0, NULL);
    size_t used = (size_t)(end - s->data) + 2;
    memmove(s->data, s->data + used, s->data_len - used + 1);
    s->data_len -= used;
    return 1;
}

/* ------------------------------------------------------------------ crash detection */

/* A demo.sleep job keeping one worker busy, followed by its events. */
typedef struct sleeper {
    char id[33];
    char status[16];           /* as of the last status event */
    sse events;
    bool busy;                 /* running, and a worker is in its handler */
    int attempts;              /* as of the last status event */
    bool left;                 /* its status left `running` while busy */
    double left_at;            /* when that event arrived (monotonic s) */
} sleeper;

static bool sleeper_start(coil_bench_conn *c, sleeper *s) {
    *s = (sleeper){.events = {.fd = -1}};
    return coil_bench_enqueue_one(c, "demo.sleep", "max_attempts=100&backoff_ms=60000",
                                  "{\"ms\":60000}", s->id) &&
           sse_open(&s->events, c->port, s->id);
}

/* A status event: `running` with a progress message means a worker has
 * started the handler (demo.sleep reports progress 0 as it starts). */
static void sleeper_status(sleeper *s, json_t *doc, double now) {
    const char *status = json_string_value(json_object_get(doc, "status"));
    int attempts = (int)json_integer_value(json_object_get(doc, "attempts"));
    bool running = status && strcmp(status, "running") == 0;
    if (s->busy && (!running || attempts != s->attempts) && !s->left) {
        s->left = true;
        s->left_at = now;
    }
    s->attempts = attempts;
    snprintf(s->status, sizeof s->status, "%s", status ? status : "?");
    if (!running) s->busy = false;
    else if (!s->left && json_is_string(json_object_get(doc, "message"))) s->busy = true;
}

static void sleeper_event(sleeper *s, const char *event, json_t *doc, double now) {
    if (!doc) return;
    if (strcmp(event, "status") == 0) sleeper_status(s, doc, now);
    else if (strcmp(event, "progress") == 0 && !s->left) s->busy = true;
}

/* Reads the events of `n` sleepers until `done` holds, for `timeout_s` at
 * most. Returns false on a timeout or a broken stream. */
static bool sleepers_wait(sleeper *sl, int n, bool (*done)(const sleeper *, int),
                          int timeout_s) {
    struct pollfd pf[2];
    double deadline = coil_bench_now_s() + timeout_s;
    while (!done(sl, n)) {
        double left = deadline - coil_bench_now_s();
        if (left <= 0) return false;
        for (int i = 0; i < n; i++)
            pf[i] = (struct pollfd){.fd = sl[i].events.fd, .events = POLLIN};
        int r = poll(pf, (nfds_t)n, (int)(left * 1000) + 1);
        if (r < 0 && errno != EINTR) return false;
        double now = coil_bench_now_s();
        for (int i = 0; i < n && r > 0; i++) {
            if (!pf[i].revents) continue;
            if (!sse_read(&sl[i].events)) {
                fprintf(stderr, "coil bench: the event stream of job %s broke\n", sl[i].id);
                return false;
            }
            char event[32];
            json_t *doc;
            while (sse_next(&sl[i].events, event, sizeof event, &doc)) {
                sleeper_event(&sl[i], event, doc, now);
                json_decref(doc);
            }
        }
    }
    return true;
}

static bool all_busy(const sleeper *sl, int n) {
    for (int i = 0; i < n; i++)
        if (!sl[i].busy) return false;
    return true;
}

static bool any_left(const sleeper *sl, int n) {
    for (int i = 0; i < n; i++)
        if (sl[i].left) return true;
    return false;
}

/* The live job workers of `server`: its children (not zombies) whose
 * command line has --coil-worker. Returns how many went to pids[]. */
static int worker_pids(pid_t server, pid_t *pids, int cap) {
    DIR *d = opendir("/proc");
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while (n < cap && (e = readdir(d))) {
        if (!isdigit((unsigned char)e->d_name[0])) continue;
        char path[300], buf[4096];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = '\0';
        char *paren = strrchr(buf, ')'), state;
        int ppid;
        if (!paren || sscanf(paren + 1, " %c %d", &state, &ppid) != 2 || ppid != server ||
            state == 'Z' || state == 'X')
            continue;
        snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
        if (!(f = fopen(path, "r"))) continue;
        len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = '\0';
        for (size_t i = 0; i < len; i += strlen(buf + i) + 1)
            if (strcmp(buf + i, "--coil-worker") == 0) {
                pids[n++] = (pid_t)strtol(e->d_name, NULL, 10);
                break;
            }
    }
    closedir(d);
    return n;
}

/* Prints the sleepers' status documents as GET /jobs/{id} has them (their
 * event streams may tell otherwise) and the server's counters, to explain
 * a failure. */
static void show_state(coil_bench_conn *c, const sleeper sl[2]) {
    char out[COIL_BENCH_BODY_CAP], path[64];
    coil_bench_conn_close(c); /* it may have been idle longer than the server keeps it */
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "/jobs/%.32s", sl[i].id);
        int status = coil_bench_conn_request(c, "GET", path, NULL, NULL, out, sizeof out);
        fprintf(stderr, "coil bench: GET %s: %d %s\n", path, status, status > 0 ? out : "");
    }
    int status = coil_bench_conn_request(c, "GET", "/jobs/stats", NULL, NULL, out, sizeof out);
    fprintf(stderr, "coil bench: GET /jobs/stats: %d %s\n", status, status > 0 ? out : "");
}

/* One round: both workers busy, SIGKILL to one, time until a job's status
 * event says so. That job is cancelled and replaced. Returns the ms, or
 * -1 after saying why. */
static double crash_round(coil_bench_conn *c, pid_t server, sleeper sl[2], int round) {
    if (!sleepers_wait(sl, 2, all_busy, EVENT_TIMEOUT_S)) {
        fprintf(stderr, "coil bench: round %d: the sleeping jobs did not both start within "
                        "%d s (%s: %s, %s; %s: %s, %s)\n", round, EVENT_TIMEOUT_S, sl[0].id,
                sl[0].status, sl[0].busy ? "busy" : "not busy", sl[1].id, sl[1].status,
                sl[1].busy ? "busy" : "not busy");
        show_state(c, sl);
        return -1;
    }
    pid_t pids[JOB_WORKERS + 2];
    int n = worker_pids(server, pids, JOB_WORKERS + 2);
    if (n != JOB_WORKERS) {
        fprintf(stderr, "coil bench: found %d worker processes, not %d\n", n, JOB_WORKERS);
        return -1;
    }
    double t_kill = coil_bench_now_s();
    kill(pids[round % n], SIGKILL);
    if (!sleepers_wait(sl, 2, any_left, EVENT_TIMEOUT_S)) {
        fprintf(stderr, "coil bench: round %d: no job left running within %d s of a SIGKILL\n",
                round, EVENT_TIMEOUT_S);
        show_state(c, sl);
        return -1;
    }
    int i = sl[0].left ? 0 : 1;
    double ms = (sl[i].left_at - t_kill) * 1000;
    coil_bench_cancel_one(c, sl[i].id);
    sse_close(&sl[i].events);
    return sleeper_start(c, &sl[i]) ? ms : -1;
}

static void crash_runs(const jobs_cfg *b, jobs_figures *f) {
    coil_bench_server srv = {.pid = -1};
    if (!start_coil(b, &srv, "crash")) return;
    coil_bench_conn c = {.port = srv.port, .fd = -1};
    sleeper sl[2] = {{.events = {.fd = -1}}, {.events = {.fd = -1}}};
    double *ms = calloc((size_t)b->crash_runs, sizeof *ms);
    int done = 0;
    if (ms && sleeper_start(&c, &sl[0]) && sleeper_start(&c, &sl[1])) {
        while (done < b->crash_runs) {
            double v = crash_round(&c, srv.pid, sl, done);
            if (v < 0) break;
            ms[done++] = v;
        }
    }
    coil_bench_conn_close(&c); /* it may have been idle longer than the server keeps it */
    for (int i = 0; i < 2; i++) {
        if (sl[i].id[0]) coil_bench_cancel_one(&c, sl[i].id);
        sse_close(&sl[i].events);
    }
    coil_bench_conn_close(&c);
    coil_bench_server_stop(&srv);
    if (done == b->crash_runs) {
        qsort(ms, (size_t)done, sizeof *ms, coil_bench_cmp_double);
        f->crash_p50_ms = done % 2 ? ms[done / 2] : (ms[done / 2 - 1] + ms[done / 2]) / 2;
        f->crash_max_ms = ms[done - 1];
        coil_bench_figure("jobs_crash_detect_ms", f->crash_p50_ms, "ms");
        coil_bench_figure("jobs_crash_detect_max_ms", f->crash_max_ms, "ms");
    }
    free(ms);
}

/* ------------------------------------------------------------------ /health under load */

/* CPU time (user + system, in clock ticks) used so far by `pids`. */
static long long cpu_ticks(const pid_t *pids, int n) {
    long long sum = 0;
    for (int i = 0; i < n; i++) {
        char path[64], buf[4096];
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pids[i]);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = '\0';
        char *p = strrchr(buf, ')');
        unsigned long long ut, st;
        /* after the comm: state ppid pgrp session tty tpgid flags minflt
         * cminflt majflt cmajflt utime stime */
        if (p && sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
                        &st) == 2)
            sum += (long long)(ut + st);
    }
    return sum;
}

static void print_latency(const char *what, const coil_bench_latency *l) {
    char name[64];
    snprintf(name, sizeof name, "health_p50_%s", what);
    coil_bench_figure(name, l->p50, "ms");
    snprintf(name, sizeof name, "health_p99_%s", what);
    coil_bench_figure(name, l->p99, "ms");
    snprintf(name, sizeof name, "health_max_%s", what);
    coil_bench_figure(name, l->max, "ms");
}

static void health_runs(const jobs_cfg *b, jobs_figures *f) {
    coil_bench_server srv = {.pid = -1};
    if (!start_coil(b, &srv, "health")) return;
    coil_bench_conn c = {.port = srv.port, .fd = -1};
    for (int i = 0; i < 100; i++) coil_bench_conn_get(&c, "/health"); /* warm up */
    coil_bench_conn_close(&c); /* idle longer than the server keeps it, below */
    if (coil_bench_measure_get(srv.port, "/health", b->health_secs, HEALTH_PAUSE_US,
                               &f->idle))
        print_latency("idle", &f->idle);
    char ids[CPU_JOBS][33];
    char body[32];
    snprintf(body, sizeof body, "{\"ms\":%d}", CPU_JOB_MS);
    int n = 0;
    while (n < CPU_JOBS && coil_bench_enqueue_one(&c, "demo.cpu", NULL, body, ids[n])) n++;
    if (n == CPU_JOBS) {
        coil_bench_sleep_ms(500); /* both workers are into their first job */
        pid_t pids[JOB_WORKERS + 2];
        int np = worker_pids(srv.pid, pids, JOB_WORKERS + 2);
        long long t0 = cpu_ticks(pids, np);
        double s0 = coil_bench_now_s();
        bool ok = coil_bench_measure_get(srv.port, "/health", b->health_secs,
                                         HEALTH_PAUSE_US, &f->load);
        double cpus = (double)(cpu_ticks(pids, np) - t0) / (double)sysconf(_SC_CLK_TCK) /
                      (coil_bench_now_s() - s0);
        fprintf(stderr, "coil bench:   %d workers used %.2f CPUs during the loaded run (%ld "
                        "requests)\n", np, cpus, f->load.samples);
        if (ok) print_latency("under_cpu_load", &f->load);
    }
    coil_bench_conn_close(&c);
    for (int i = 0; i < n; i++) coil_bench_cancel_one(&c, ids[i]);
    coil_bench_conn_close(&c);
    coil_bench_server_stop(&srv);
    if (f->load.p99 > 0 && f->idle.p99 > 0)
        coil_bench_ratio("health_p99_under_cpu_load_vs_idle", f->load.p99, f->idle.p99, false);
}

/* ------------------------------------------------------------------ beanstalkd */

static const char *find_beanstalkd(void) {
    static const char *const paths[] = {"/usr/bin/beanstalkd", "/usr/sbin/beanstalkd",
                                        "/usr/local/bin/beanstalkd"};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++)
        if (access(paths[i], X_OK) == 0) return paths[i];
    return NULL;
}

/* The value after "name " in the anchor's output, or 0. */
static double anchor_value(const char *out, const char *name) {
    const char *p = strstr(out, name);
    return p ? strtod(p + strlen(name), NULL) : 0;
}

/* Whether beanstalkd, python3 and the anchor's script are there; says so
 * if not. */
static bool beanstalkd_available(const jobs_cfg *b) {
    char script[PATH_MAX];
    if (find_beanstalkd() && access(python, X_OK) == 0 &&
        coil_bench_join_path(script, sizeof script, b->anchors_dir, "beanstalk_bench.py") &&
        access(script, R_OK) == 0)
        return true;
    fprintf(stderr, "coil bench: beanstalkd, %s or beanstalk_bench.py not found "
                    "(scripts/deps bench); beanstalkd skipped\n", python);
    return false;
}

/* One round of the anchor, with a fresh binlog directory. */
static void beanstalkd_round(const jobs_cfg *b, jobs_figures *f, int round) {
    const char *bs = find_beanstalkd();
    char script[PATH_MAX], dir[PATH_MAX], name[32], port[16], n[16];
    snprintf(name, sizeof name, "beanstalkd-%d", round);
    int p = coil_bench_free_port();
    if (p <= 0 || !coil_bench_join_path(dir, sizeof dir, b->tmp, name) ||
        !coil_bench_join_path(script, sizeof script, b->anchors_dir, "beanstalk_bench.py"))
        return;
    mkdir(dir, 0700);
    snprintf(port, sizeof port, "%d", p);
    snprintf(n, sizeof n, "%d", b->jobs);
    char *argv[] = {(char *)bs, "-l", "127.0.0.1", "-p", port, "-b", dir, "-f", "0", NULL};
    coil_bench_server srv = {.pid = -1};
    if (!coil_bench_server_start(b->tmp, &srv, "beanstalkd (fsync per write)", name, argv,
                                 NULL, (uint16_t)p))
        return;
    char *run[] = {(char *)python, script, port, n, NULL};
    char out[4096];
    int rc = coil_bench_run_capture(run, COIL_BENCH_RUN_TIMEOUT_S * 2, b->tmp, out, sizeof out);
    coil_bench_server_stop(&srv);
    double enqueue = anchor_value(out, "enqueue_per_s ");
    double process = anchor_value(out, "process_per_s ");
    double end_to_end = anchor_value(out, "end_to_end_per_s ");
    if (rc != 0 || enqueue <= 0 || process <= 0 || end_to_end <= 0) {
        fprintf(stderr, "coil bench: beanstalk_bench.py failed:\n%s\n", out);
        return;
    }
    fprintf(stderr, "coil bench:   round %d: beanstalkd enqueue %.0f, end to end %.0f, "
                    "process %.0f jobs/s\n", round, enqueue, end_to_end, process);
    coil_bench_add_sample(&f->bs_enqueue, enqueue);
    coil_bench_add_sample(&f->bs_process, process);
    coil_bench_add_sample(&f->bs_end_to_end, end_to_end);
}

/* ------------------------------------------------------------------ the rounds */

/* Prints the median of a figure, if it was measured. */
static void median_figure(const char *name, const coil_bench_samples *s, const char *unit) {
    if (s->n) coil_bench_figure(name, coil_bench_median(s), unit);
}

/* ROUNDS rounds of coil's throughput runs and beanstalkd's, alternating so
 * that drift on a shared machine hits both alike; then the medians. */
static void throughput_rounds(const jobs_cfg *b, jobs_figures *f) {
    bool anchor = b->anchors && beanstalkd_available(b);
    for (int round = 1; round <= b->rounds; round++) {
        throughput_round(b, f, round);
        if (anchor) beanstalkd_round(b, f, round);
    }
    median_figure("jobs_enqueue_rate", &f->enqueue, "jobs/s");
    median_figure("jobs_end_to_end", &f->end_to_end, "jobs/s");
    median_figure("jobs_process_rate", &f->process, "jobs/s");
    median_figure("beanstalkd_enqueue_rate", &f->bs_enqueue, "jobs/s");
    median_figure("beanstalkd_process_rate", &f->bs_process, "jobs/s");
    median_figure("beanstalkd_end_to_end", &f->bs_end_to_end, "jobs/s");
}

/* ------------------------------------------------------------------ setup */

static int usage(void) {
    fprintf(stderr, "usage: coil bench jobs [--store sqlite|postgres] [--quick] [--no-anchors]\n");
    return 2;
}

static int setup(jobs_cfg *b, int argc, char **argv) {
    *b = (jobs_cfg){.jobs = JOBS, .rounds = ROUNDS, .crash_runs = CRASH_RUNS,
                    .health_secs = HEALTH_SECS, .anchors = true};
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            b->jobs /= QUICK_DIVISOR;
            b->rounds = 1;
            b->crash_runs /= QUICK_DIVISOR;
            b->health_secs = 2;
        } else if (strcmp(argv[i], "--no-anchors") == 0) {
            b->anchors = false;
        } else {
            return usage();
        }
    }
    ssize_t n = readlink("/proc/self/exe", b->exe, sizeof b->exe - 1);
    if (n <= 0) {
        fprintf(stderr, "coil bench: cannot find the coil binary\n");
        return 1;
    }
    b->exe[n] = '\0';
    if (!coil_bench_make_tmp(b->tmp, sizeof b->tmp, "jobs")) return 1;
    if (b->anchors && !coil_bench_find_anchors(b->anchors_dir, sizeof b->anchors_dir)) {
        fprintf(stderr, "coil bench: anchors not found (set COIL_ANCHORS_DIR); beanstalkd "
                        "skipped\n");
        b->anchors = false;
    }
    return 0;
}

int coil_bench_jobs(int argc, char **argv) {
    for (int i = 0; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--store") != 0) continue;
        if (strcmp(argv[i + 1], "postgres") != 0 && strcmp(argv[i + 1], "sqlite") != 0)
            return usage();
        if (strcmp(argv[i + 1], "sqlite") == 0) { /* the default: drop the option */
            memmove(argv + i, argv + i + 2, (size_t)(argc - i - 2) * sizeof *argv);
            argc -= 2;
            break;
        }
        memmove(argv + i, argv + i + 2, (size_t)(argc - i - 2) * sizeof *argv);
        return coil_bench_jobs_pg(argc - 2, argv);
    }
    jobs_cfg b;
    int rc = setup(&b, argc, argv);
    if (rc) return rc;
    coil_bench_trap_signals(true);
    jobs_figures f = {0};
    throughput_rounds(&b, &f);
    crash_runs(&b, &f);
    health_runs(&b, &f);
    bool kinds = coil_bench_jobs_kinds(b.exe, b.tmp, b.jobs == JOBS ? 1 : QUICK_DIVISOR, b.rounds);
    coil_bench_ratio("jobs_enqueue_rate_vs_beanstalkd", coil_bench_median(&f.enqueue),
                     coil_bench_median(&f.bs_enqueue), true);
    coil_bench_ratio("jobs_process_rate_vs_beanstalkd", coil_bench_median(&f.process),
                     coil_bench_median(&f.bs_process), true);
    coil_bench_ratio("jobs_end_to_end_vs_beanstalkd", coil_bench_median(&f.end_to_end),
                     coil_bench_median(&f.bs_end_to_end), true);
    coil_bench_remove_tree(b.tmp);
    coil_bench_trap_signals(false);
    return f.enqueue.n && f.end_to_end.n && f.crash_p50_ms > 0 && f.load.p99 > 0 && kinds ? 0
                                                                                          : 1;
}
