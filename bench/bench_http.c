/* bench/bench_http.c: `coil bench http [--quick] [--no-anchors]`.
 *
 * The HTTP server against its anchors, all in the same run, all on
 * 127.0.0.1, each server with one worker:
 *
 *   coil     `coil serve --workers 1 --no-access-log` (this very binary);
 *   nginx    the anchors' nginx.conf (one worker, port 18081);
 *   FastAPI  the anchors' fastapi_app.py on uvicorn + uvloop + httptools
 *            (port 18085).
 *
 * Two measurements:
 *
 *   hello      wrk -t1 -c64 -d5s --latency against /hello of coil and
 *              nginx, both running at once: a 1 s warm-up of each, then two
 *              rounds of coil, nginx, coil, nginx, keeping each server's
 *              best run (its requests per second, and that run's 99th
 *              percentile latency), so that drift on a shared machine hits
 *              both alike.
 *   blocking   4 client connections call a handler that sleeps 500 ms
 *              (coil: /demo/block?ms=500, a blocking handler on the thread
 *              pool; FastAPI: /blocking, time.sleep in an async def, the
 *              classic mistake, and /offloaded, asyncio.to_thread) in a
 *              loop, while one more connection requests /health back to
 *              back for 5 s: the 99th percentile of those latencies. The
 *              clients are threads of this process speaking HTTP/1.1 over
 *              plain blocking sockets, so that the figure is the server's,
 *              not a client library's.
 *
 * Figures, one per line as "name value unit":
 *
 *   http_hello_rps, nginx_hello_rps                       req/s
 *   http_hello_p99, nginx_hello_p99                       ms
 *   http_health_p99_under_block                           ms
 *   fastapi_health_p99_under_block                        ms (/blocking)
 *   fastapi_offloaded_health_p99_under_block              ms (/offloaded)
 *   http_hello_rps_vs_nginx, http_hello_p99_vs_nginx      x
 *   http_health_p99_under_block_vs_fastapi[_offloaded]    x
 *
 * Ratios follow the bench convention: > 1 means coil is better (more
 * requests per second, or a lower latency).
 *
 * Every process started here runs in a process group of its own and is
 * killed with its group at the end, or when the benchmark is interrupted.
 * Every wait is bounded: the whole run takes about a minute (--quick, one
 * round of 2 s runs: about 25 s). An anchor that is not installed is
 * skipped with a note on stderr; the exit status is 0 when coil's own
 * figures were measured.
 */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/bench_serve.h"

enum {
    NGINX_PORT = 18081,    /* fixed by the anchors' nginx.conf */
    FASTAPI_PORT = 18085,  /* as the anchors' README runs it */
    WRK_CONNECTIONS = 64,
    BLOCKERS = 4,          /* connections calling the blocking handler */
    BLOCK_MS = 500,        /* how long each of those calls blocks */
    OUT_CAP = 8192,        /* bytes of wrk output kept */
};

static const char *python = "/usr/bin/python3";

typedef struct bench_cfg {
    int secs;                  /* length of each measurement */
    int warmup_secs;           /* wrk warm-up of each server before the hello runs */
    int rounds;                /* measured hello runs of each server, best kept */
    bool anchors;              /* run nginx and FastAPI */
    char tmp[PATH_MAX];        /* scratch directory, removed at the end */
    char exe[PATH_MAX];        /* this coil binary */
    char anchors_dir[PATH_MAX]; /* "" when not found */
} bench_cfg;

typedef coil_bench_server server;

/* What one server scored; 0 where not measured. */
typedef struct scores {
    double hello_rps;
    double hello_p99_ms;
    double health_p99_ms;      /* under block */
    double health_p99_off_ms;  /* under the offloaded block (FastAPI only) */
} scores;

/* ------------------------------------------------------------------ wrk */

typedef struct wrk_result {
    double rps;
    double p99_ms;
    long non2xx;      /* responses that were not 2xx or 3xx */
    long errors;      /* socket errors of every kind */
} wrk_result;

/* A wrk duration such as "1.67ms", "850.00us" or "1.02s", in ms. */
static double parse_duration_ms(const char *s) {
    char *end;
    double v = strtod(s, &end);
    if (end == s) return -1;
    if (strncmp(end, "us", 2) == 0) return v / 1000;
    if (strncmp(end, "ms", 2) == 0) return v;
    if (strncmp(end, "s", 1) == 0) return v * 1000;
    if (strncmp(end, "m", 1) == 0) return v * 60000;
    return -1;
}

static bool parse_wrk(const char *out, wrk_result *r) {
    memset(r, 0, sizeof *r);
    const char *p = strstr(out, "Requests/sec:");
    if (!p) return false;
    r->rps = strtod(p + strlen("Requests/sec:"), NULL);
    p = strstr(out, "Latency Distribution");
    p = p ? strstr(p, "99%") : NULL;
    if (!p) return false;
    p += 3;
    while (*p == ' ') p++;
    r->p99_ms = parse_duration_ms(p);
    if ((p = strstr(out, "Non-2xx or 3xx responses:"))) r->non2xx = strtol(p + 25, NULL, 10);
    if ((p = strstr(out, "Socket errors:"))) {
        long c = 0, rd = 0, w = 0, t = 0;
        if (sscanf(p, "Socket errors: connect %ld, read %ld, write %ld, timeout %ld", &c, &rd, &w,
                   &t) == 4)
            r->errors = c + rd + w + t;
    }
    return r->rps > 0 && r->p99_ms > 0;
}

static const char *find_wrk(void) {
    static const char *const paths[] = {"/usr/bin/wrk", "/usr/local/bin/wrk"};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++)
        if (access(paths[i], X_OK) == 0) return paths[i];
    return NULL;
}

/* wrk -t1 -cN -dS --latency http://127.0.0.1:PORT/PATH. Returns 0 or -1. */
static int run_wrk(const bench_cfg *b, uint16_t port, const char *path, int secs,
                   wrk_result *out) {
    const char *wrk = find_wrk();
    if (!wrk) return -1;
    char conns[16], dur[16], url[128];
    snprintf(conns, sizeof conns, "-c%d", WRK_CONNECTIONS);
    snprintf(dur, sizeof dur, "-d%ds", secs);
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, path);
    char *argv[] = {(char *)wrk, "-t1", conns, dur, "--latency", url, NULL};
    char text[OUT_CAP];
    if (coil_bench_run_capture(argv, secs + 15, b->tmp, text, sizeof text) != 0 ||
        !parse_wrk(text, out)) {
        fprintf(stderr, "coil bench: wrk against %s failed:\n%s\n", url, text);
        return -1;
    }
    if (out->non2xx || out->errors)
        fprintf(stderr, "coil bench: warning: %s: %ld non-2xx responses, %ld socket errors\n",
                url, out->non2xx, out->errors);
    return 0;
}

/* ------------------------------------------------------------------ the blocking scenario */

typedef struct blocker {
    pthread_t thread;
    coil_bench_conn conn;
    const char *path;
    atomic_bool *stop;
    long done;                /* blocking calls answered with 200 */
} blocker;

static void *blocker_main(void *arg) {
    blocker *bl = arg;
    while (!atomic_load(bl->stop)) {
        int status = coil_bench_conn_get(&bl->conn, bl->path);
        if (status == 200) bl->done++;
        else if (status < 0 && !atomic_load(bl->stop)) coil_bench_sleep_ms(10);
    }
    coil_bench_conn_close(&bl->conn);
    return NULL;
}

/* Requests `path` back to back on one connection for `secs`; stores the
 * 99th percentile latency in ms. Returns the number of samples, or -1. */
static long measure_health(uint16_t port, const char *path, int secs, double *p99) {
    coil_bench_latency lat;
    bool ok = coil_bench_measure_get(port, path, secs, 0, &lat);
    if (lat.failures)
        fprintf(stderr, "coil bench: %s: %ld failed requests\n", path, lat.failures);
    if (!ok) return -1;
    *p99 = lat.p99;
    return lat.samples;
}

/* Waits (5 s at most) until `path` answers within 50 ms: a server whose
 * loop is still busy with the blocking calls of an earlier round (the
 * FastAPI mistake runs them to the end even after their clients left)
 * would otherwise start the next round handicapped. */
static void wait_responsive(uint16_t port, const char *path) {
    coil_bench_conn c = {.port = port, .fd = -1};
    double deadline = coil_bench_now_s() + 5;
    while (coil_bench_now_s() < deadline) {
        double t0 = coil_bench_now_s();
        if (coil_bench_conn_get(&c, path) == 200 && coil_bench_now_s() - t0 < 0.050) break;
        coil_bench_sleep_ms(10);
    }
    coil_bench_conn_close(&c);
}

/* /health p99 while BLOCKERS connections call `block_path` in a loop. */
static int health_under_block(const bench_cfg *b, uint16_t port, const char *block_path,
                              const char *health_path, double *p99) {
    wait_responsive(port, health_path);
    atomic_bool stop = false;
    blocker bl[BLOCKERS];
    int started = 0;
    for (int i = 0; i < BLOCKERS; i++) {
        bl[i] = (blocker){.conn = {.port = port, .fd = -1}, .path = block_path, .stop = &stop};
        if (pthread_create(&bl[i].thread, NULL, blocker_main, &bl[i]) != 0) break;
        started++;
    }
    coil_bench_sleep_ms(200); /* the blocking calls are under way */
    long samples = started == BLOCKERS ? measure_health(port, health_path, b->secs, p99) : -1;
    atomic_store(&stop, true);
    for (int i = 0; i < started; i++) { /* wake the ones parked in recv */
        int fd = atomic_load(&bl[i].conn.fd);
        if (fd >= 0) shutdown(fd, SHUT_RDWR);
    }
    long blocked = 0;
    for (int i = 0; i < started; i++) {
        pthread_join(bl[i].thread, NULL);
        blocked += bl[i].done;
    }
    if (samples < 0) return -1;
    fprintf(stderr, "coil bench:   %s: %ld requests while %d clients completed %ld calls of %s\n",
            health_path, samples, BLOCKERS, blocked, block_path);
    return 0;
}

/* ------------------------------------------------------------------ the servers */

static bool start_coil(const bench_cfg *b, server *srv) {
    int port = coil_bench_free_port();
    char listen[64], data[PATH_MAX];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    if (port <= 0 || !coil_bench_join_path(data, sizeof data, b->tmp, "coil-data")) return false;
    char *argv[] = {(char *)b->exe, "serve", "--listen", listen, "--workers", "1",
                    "--data", data, "--no-access-log", NULL};
    return coil_bench_server_start(b->tmp, srv, "coil serve", "coil", argv, NULL, (uint16_t)port);
}

static bool start_nginx(const bench_cfg *b, server *srv) {
    char conf[PATH_MAX], prefix[PATH_MAX], logs[PATH_MAX];
    const char *nginx = access("/usr/sbin/nginx", X_OK) == 0 ? "/usr/sbin/nginx" : NULL;
    if (!nginx || !coil_bench_join_path(conf, sizeof conf, b->anchors_dir, "nginx.conf") ||
        access(conf, R_OK) != 0) {
        fprintf(stderr, "coil bench: nginx or its nginx.conf not found; nginx skipped\n");
        return false;
    }
    if (coil_bench_port_in_use(NGINX_PORT)) {
        fprintf(stderr, "coil bench: port %d is taken; nginx skipped\n", NGINX_PORT);
        return false;
    }
    if (!coil_bench_join_path(prefix, sizeof prefix, b->tmp, "nginx") ||
        !coil_bench_join_path(logs, sizeof logs, prefix, "logs"))
        return false;
    mkdir(prefix, 0755);
    mkdir(logs, 0755);
    char *argv[] = {(char *)nginx, "-p", prefix, "-c", conf, "-e", "stderr", NULL};
    return coil_bench_server_start(b->tmp, srv, "nginx", "nginx", argv, NULL, NGINX_PORT);
}

static bool start_fastapi(const bench_cfg *b, server *srv) {
    char app[PATH_MAX], out[512], port[16];
    char *probe[] = {(char *)python, "-c", "import fastapi, uvicorn, uvloop, httptools", NULL};
    if (!coil_bench_join_path(app, sizeof app, b->anchors_dir, "fastapi_app.py") ||
        access(python, X_OK) != 0 || access(app, R_OK) != 0 ||
        coil_bench_run_capture(probe, 30, b->tmp, out, sizeof out) != 0) {
        fprintf(stderr, "coil bench: %s with fastapi, uvicorn, uvloop and httptools not "
                        "available (scripts/deps bench); FastAPI skipped\n", python);
        return false;
    }
    if (coil_bench_port_in_use(FASTAPI_PORT)) {
        fprintf(stderr, "coil bench: port %d is taken; FastAPI skipped\n", FASTAPI_PORT);
        return false;
    }
    snprintf(port, sizeof port, "%d", FASTAPI_PORT);
    char *argv[] = {(char *)python, "-m", "uvicorn", "fastapi_app:app", "--host", "127.0.0.1",
                    "--port", port, "--loop", "uvloop", "--http", "httptools",
                    "--no-access-log", NULL};
    return coil_bench_server_start(b->tmp, srv, "FastAPI (uvicorn)", "fastapi", argv,
                                   b->anchors_dir, FASTAPI_PORT);
}

/* ------------------------------------------------------------------ the runs */

/* The hello runs: a warm-up of each server, then `rounds` alternating
 * measured runs, keeping each server's best (its req/s and that run's
 * p99), so that drift on a shared machine hits both alike. */
static void hello_runs(const bench_cfg *b, server *const srv[], scores *const sc[], int n) {
    wrk_result r;
    for (int i = 0; i < n; i++)
        if (srv[i]->pid > 0 && run_wrk(b, srv[i]->port, "/hello", b->warmup_secs, &r) != 0)
            coil_bench_server_stop(srv[i]);
    for (int round = 0; round < b->rounds; round++) {
        for (int i = 0; i < n; i++) {
            if (srv[i]->pid <= 0 || run_wrk(b, srv[i]->port, "/hello", b->secs, &r) != 0)
                continue;
            if (r.rps > sc[i]->hello_rps) {
                sc[i]->hello_rps = r.rps;
                sc[i]->hello_p99_ms = r.p99_ms;
            }
        }
    }
}

static void print_hello(const char *prefix, const scores *s) {
    if (s->hello_rps <= 0) return;
    printf("%s_hello_rps %.0f req/s\n", prefix, s->hello_rps);
    printf("%s_hello_p99 %.3f ms\n", prefix, s->hello_p99_ms);
    fflush(stdout);
}

static void blocking_runs(const bench_cfg *b, const server *coil, const server *fastapi,
                          scores *cs, scores *fs) {
    char block[64];
    snprintf(block, sizeof block, "/demo/block?ms=%d", BLOCK_MS);
    if (coil->pid > 0 &&
        health_under_block(b, coil->port, block, "/health", &cs->health_p99_ms) == 0) {
        printf("http_health_p99_under_block %.3f ms\n", cs->health_p99_ms);
        fflush(stdout);
    }
    if (fastapi->pid <= 0) return;
    if (health_under_block(b, fastapi->port, "/blocking", "/health", &fs->health_p99_ms) == 0) {
        printf("fastapi_health_p99_under_block %.3f ms\n", fs->health_p99_ms);
        fflush(stdout);
    }
    if (health_under_block(b, fastapi->port, "/offloaded", "/health", &fs->health_p99_off_ms) ==
        0) {
        printf("fastapi_offloaded_health_p99_under_block %.3f ms\n", fs->health_p99_off_ms);
        fflush(stdout);
    }
}

/* ------------------------------------------------------------------ setup */

/* Prints "name ratio x" where both figures exist; `higher_better` says
 * which way round. */
static void ratio(const char *name, double coil, double anchor, bool higher_better) {
    if (coil <= 0 || anchor <= 0) return;
    printf("%s %.2f x\n", name, higher_better ? coil / anchor : anchor / coil);
}

static int usage(void) {
    fprintf(stderr, "usage: coil bench http [--quick] [--no-anchors]\n");
    return 2;
}

static int setup(bench_cfg *b, int argc, char **argv) {
    *b = (bench_cfg){.secs = 5, .warmup_secs = 1, .rounds = 2, .anchors = true};
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) b->secs = 2, b->rounds = 1;
        else if (strcmp(argv[i], "--no-anchors") == 0) b->anchors = false;
        else return usage();
    }
    ssize_t n = readlink("/proc/self/exe", b->exe, sizeof b->exe - 1);
    if (n <= 0) {
        fprintf(stderr, "coil bench: cannot find the coil binary\n");
        return 1;
    }
    b->exe[n] = '\0';
    if (!find_wrk())
        fprintf(stderr, "coil bench: wrk not found (scripts/deps bench); the hello figures "
                        "will be missing\n");
    if (!coil_bench_make_tmp(b->tmp, sizeof b->tmp, "http")) return 1;
    if (b->anchors && !coil_bench_find_anchors(b->anchors_dir, sizeof b->anchors_dir)) {
        fprintf(stderr, "coil bench: anchors not found (set COIL_ANCHORS_DIR); skipped\n");
        b->anchors = false;
    }
    return 0;
}

int coil_bench_http(int argc, char **argv) {
    bench_cfg b;
    int rc = setup(&b, argc, argv);
    if (rc) return rc;
    coil_bench_trap_signals(true);

    scores cs = {0}, ns = {0}, fs = {0};
    server coil = {.pid = -1}, nginx = {.pid = -1}, fastapi = {.pid = -1};
    start_coil(&b, &coil);
    if (b.anchors) start_nginx(&b, &nginx);
    server *const hello_srv[] = {&coil, &nginx};
    scores *const hello_sc[] = {&cs, &ns};
    hello_runs(&b, hello_srv, hello_sc, 2);
    coil_bench_server_stop(&nginx);
    print_hello("http", &cs);
    print_hello("nginx", &ns);
    if (b.anchors) start_fastapi(&b, &fastapi);
    blocking_runs(&b, &coil, &fastapi, &cs, &fs);
    coil_bench_server_stop(&coil);
    coil_bench_server_stop(&fastapi);

    ratio("http_hello_rps_vs_nginx", cs.hello_rps, ns.hello_rps, true);
    ratio("http_hello_p99_vs_nginx", cs.hello_p99_ms, ns.hello_p99_ms, false);
    ratio("http_health_p99_under_block_vs_fastapi", cs.health_p99_ms, fs.health_p99_ms, false);
    ratio("http_health_p99_under_block_vs_fastapi_offloaded", cs.health_p99_ms,
          fs.health_p99_off_ms, false);
    coil_bench_remove_tree(b.tmp);
    coil_bench_trap_signals(false);
    return cs.hello_rps > 0 && cs.health_p99_ms > 0 ? 0 : 1;
}
