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
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"

extern char **environ;

enum {
    NGINX_PORT = 18081,    /* fixed by the anchors' nginx.conf */
    FASTAPI_PORT = 18085,  /* as the anchors' README runs it */
    WRK_CONNECTIONS = 64,
    BLOCKERS = 4,          /* connections calling the blocking handler */
    BLOCK_MS = 500,        /* how long each of those calls blocks */
    START_TIMEOUT_S = 15,  /* for a server to accept connections */
    STOP_GRACE_MS = 5000,  /* SIGTERM, then SIGKILL after this */
    MAX_CHILDREN = 8,
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

/* What one server scored; 0 where not measured. */
typedef struct scores {
    double hello_rps;
    double hello_p99_ms;
    double health_p99_ms;      /* under block */
    double health_p99_off_ms;  /* under the offloaded block (FastAPI only) */
} scores;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* dir/name into out. Returns false if it does not fit. */
static bool join_path(char *out, size_t cap, const char *dir, const char *name) {
    int n = snprintf(out, cap, "%s/%s", dir, name);
    return n > 0 && (size_t)n < cap;
}

/* ------------------------------------------------------------------ child processes */

/* Process groups of the servers running, for the signal handler. */
static volatile pid_t child_groups[MAX_CHILDREN];

static void track(pid_t pid, bool on) {
    for (int i = 0; i < MAX_CHILDREN; i++) {
        if (on && child_groups[i] == 0) {
            child_groups[i] = pid;
            return;
        }
        if (!on && child_groups[i] == pid) {
            child_groups[i] = 0;
            return;
        }
    }
}

/* Interrupted: take every server down with us, politely first (so that
 * nginx's master reaps its worker), then by force after 2 s at most.
 * Async-signal-safe. */
static void on_signal(int sig) {
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (child_groups[i] > 0) kill(child_groups[i], SIGTERM);
    for (int tick = 0; tick < 200; tick++) {
        bool left = false;
        for (int i = 0; i < MAX_CHILDREN; i++) {
            pid_t pid = child_groups[i];
            if (pid > 0 && waitpid(pid, NULL, WNOHANG) == 0) left = true;
        }
        if (!left) break;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < MAX_CHILDREN; i++) {
        if (child_groups[i] <= 0) continue;
        kill(-child_groups[i], SIGKILL);
        waitpid(child_groups[i], NULL, 0);
    }
    _exit(128 + sig);
}

/* Starts argv[0] (a path) in `cwd` (NULL: ours), in a new process group,
 * with stdin on /dev/null and stdout and stderr appended to `log`. Returns
 * the pid, or -1. */
static pid_t spawn_in_group(char *const argv[], const char *cwd, const char *log) {
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF |
                                        POSIX_SPAWN_SETSIGMASK);
    posix_spawnattr_setpgroup(&attr, 0);
    sigset_t dfl, none;
    sigemptyset(&dfl);
    sigemptyset(&none);
    int reset[] = {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT}; /* an ignore would be inherited */
    for (size_t i = 0; i < sizeof reset / sizeof *reset; i++) sigaddset(&dfl, reset[i]);
    posix_spawnattr_setsigdefault(&attr, &dfl);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    if (cwd) posix_spawn_file_actions_addchdir_np(&fa, cwd);
    pid_t pid;
    int err = posix_spawn(&pid, argv[0], &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (err) return -1;
    track(pid, true);
    return pid;
}

/* Waits up to `ms` for `pid` to exit. Returns true if it was reaped. */
static bool reap_within(pid_t pid, long ms, int *status) {
    double deadline = now_s() + (double)ms / 1000;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD)) return true;
        if (now_s() > deadline) return false;
        sleep_ms(10);
    }
}

/* SIGTERM to the server (a graceful stop), SIGKILL to its whole group
 * after the grace period, and always SIGKILL to what is left of the group
 * (an nginx worker whose master is gone). */
static void stop_group(pid_t pid) {
    int status;
    kill(pid, SIGTERM);
    if (!reap_within(pid, STOP_GRACE_MS, &status)) {
        fprintf(stderr, "coil bench: pid %d ignored SIGTERM; killing it\n", (int)pid);
        kill(-pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    kill(-pid, SIGKILL);
    track(pid, false);
}

/* Runs argv with stdout and stderr into `out`, killing it after
 * `timeout_s`. Returns its exit status, or -1. */
static int run_capture(char *const argv[], int timeout_s, const char *tmp, char *out,
                       size_t cap) {
    char log[PATH_MAX];
    if (!join_path(log, sizeof log, tmp, "run.out")) return -1;
    unlink(log);
    pid_t pid = spawn_in_group(argv, NULL, log);
    if (pid < 0) return -1;
    int status = 0;
    bool done = reap_within(pid, (long)timeout_s * 1000, &status);
    if (!done) {
        kill(-pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    track(pid, false);
    out[0] = '\0';
    FILE *f = fopen(log, "r");
    if (f) {
        size_t n = fread(out, 1, cap - 1, f);
        out[n] = '\0';
        fclose(f);
    }
    if (!done) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Prints the last lines of a server's log, to explain a failure. */
static void show_log_tail(const char *log) {
    FILE *f = fopen(log, "r");
    if (!f) return;
    char buf[2048];
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, size > (long)sizeof buf - 1 ? size - (long)sizeof buf + 1 : 0, SEEK_SET);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    fprintf(stderr, "---- %s (end)\n%s\n----\n", log, buf);
}

/* ------------------------------------------------------------------ ports */

static int connect_local(uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {10, 0}; /* no read or write waits forever */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return fd;
}

static bool port_in_use(uint16_t port) {
    int fd = connect_local(port);
    if (fd < 0) return false;
    close(fd);
    return true;
}

/* A port nobody listens on now (the kernel's pick for port 0). */
static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

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
    if (run_capture(argv, secs + 15, b->tmp, text, sizeof text) != 0 || !parse_wrk(text, out)) {
        fprintf(stderr, "coil bench: wrk against %s failed:\n%s\n", url, text);
        return -1;
    }
    if (out->non2xx || out->errors)
        fprintf(stderr, "coil bench: warning: %s: %ld non-2xx responses, %ld socket errors\n",
                url, out->non2xx, out->errors);
    return 0;
}

/* ------------------------------------------------------------------ a raw HTTP/1.1 client */

/* One keep-alive connection, for the blocking scenario's threads. */
typedef struct hconn {
    uint16_t port;
    _Atomic int fd;           /* -1 when closed; read by the stopping thread */
    char buf[16384];          /* bytes received, not yet consumed, then a NUL */
    size_t len;
} hconn;

static void hconn_close(hconn *c) {
    int fd = atomic_exchange(&c->fd, -1);
    if (fd >= 0) close(fd);
    c->len = 0;
    c->buf[0] = '\0';
}

static bool send_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* Reads more bytes into c->buf, keeping it NUL-terminated. */
static bool fill(hconn *c, int fd) {
    if (c->len == sizeof c->buf - 1) return false;
    for (;;) {
        ssize_t r = recv(fd, c->buf + c->len, sizeof c->buf - 1 - c->len, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        c->len += (size_t)r;
        c->buf[c->len] = '\0';
        return true;
    }
}

/* The value of a numeric header (case-insensitive name) in the header block
 * at `head` (NUL-terminated, ending with a blank line), or -1. */
static long header_long(const char *head, const char *name) {
    size_t n = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p && p[2] != '\r'; p = strstr(p + 2, "\r\n"))
        if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':')
            return strtol(p + 3 + n, NULL, 10);
    return -1;
}

/* GET `path`; returns the status, or -1 after closing the connection. */
static int hconn_get(hconn *c, const char *path) {
    int fd = atomic_load(&c->fd);
    if (fd < 0) {
        fd = connect_local(c->port);
        if (fd < 0) return -1;
        atomic_store(&c->fd, fd);
    }
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (n <= 0 || (size_t)n >= sizeof req || !send_all(fd, req, (size_t)n)) goto fail;
    char *end;
    while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
        if (!fill(c, fd)) goto fail;
    size_t head_len = (size_t)(end - c->buf) + 4;
    int status = 0;
    if (sscanf(c->buf, "HTTP/1.%*d %d", &status) != 1) goto fail;
    long body = header_long(c->buf, "Content-Length");
    if (body < 0 || (size_t)body >= sizeof c->buf - head_len) goto fail; /* no chunked here */
    while (c->len < head_len + (size_t)body)
        if (!fill(c, fd)) goto fail;
    size_t used = head_len + (size_t)body;
    memmove(c->buf, c->buf + used, c->len - used + 1); /* with the NUL */
    c->len -= used;
    return status;
fail:
    hconn_close(c);
    return -1;
}

/* ------------------------------------------------------------------ the blocking scenario */

typedef struct blocker {
    pthread_t thread;
    hconn conn;
    const char *path;
    atomic_bool *stop;
    long done;                /* blocking calls answered with 200 */
} blocker;

static void *blocker_main(void *arg) {
    blocker *bl = arg;
    while (!atomic_load(bl->stop)) {
        int status = hconn_get(&bl->conn, bl->path);
        if (status == 200) bl->done++;
        else if (status < 0 && !atomic_load(bl->stop)) sleep_ms(10);
    }
    hconn_close(&bl->conn);
    return NULL;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Requests `path` back to back on one connection for `secs`; stores the
 * 99th percentile latency in ms. Returns the number of samples, or -1. */
static long measure_health(uint16_t port, const char *path, int secs, double *p99) {
    size_t cap = 1 << 16, n = 0;
    double *lat = malloc(cap * sizeof *lat);
    if (!lat) return -1;
    hconn c = {.port = port, .fd = -1};
    long failures = 0;
    double end = now_s() + secs;
    while (now_s() < end && failures < 100) {
        double t0 = now_s();
        int status = hconn_get(&c, path);
        double t1 = now_s();
        if (status != 200) {
            failures++;
            continue;
        }
        if (n == cap) {
            double *more = realloc(lat, 2 * cap * sizeof *lat);
            if (!more) break;
            lat = more;
            cap *= 2;
        }
        lat[n++] = (t1 - t0) * 1000;
    }
    hconn_close(&c);
    if (failures) fprintf(stderr, "coil bench: %s: %ld failed requests\n", path, failures);
    if (n == 0) {
        free(lat);
        return -1;
    }
    qsort(lat, n, sizeof *lat, cmp_double);
    size_t rank = (size_t)((double)n * 0.99 + 0.999999); /* nearest rank */
    *p99 = lat[(rank ? rank : 1) - 1];
    free(lat);
    return (long)n;
}

/* Waits (5 s at most) until `path` answers within 50 ms: a server whose
 * loop is still busy with the blocking calls of an earlier round (the
 * FastAPI mistake runs them to the end even after their clients left)
 * would otherwise start the next round handicapped. */
static void wait_responsive(uint16_t port, const char *path) {
    hconn c = {.port = port, .fd = -1};
    double deadline = now_s() + 5;
    while (now_s() < deadline) {
        double t0 = now_s();
        if (hconn_get(&c, path) == 200 && now_s() - t0 < 0.050) break;
        sleep_ms(10);
    }
    hconn_close(&c);
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
    sleep_ms(200); /* the blocking calls are under way */
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

/* A server started for the benchmark. */
typedef struct server {
    const char *name;         /* "coil serve", "nginx", "FastAPI" */
    pid_t pid;                /* leader of its process group, -1 if not running */
    uint16_t port;
    char log[PATH_MAX];       /* its stdout and stderr */
} server;

/* Starts a server and waits until it accepts connections. Returns false
 * (after saying why, with the end of its log) if it does not. */
static bool server_start(const bench_cfg *b, server *srv, const char *name, const char *logname,
                         char *const argv[], const char *cwd, uint16_t port) {
    srv->name = name;
    srv->port = port;
    char file[64];
    snprintf(file, sizeof file, "%s.log", logname);
    if (!join_path(srv->log, sizeof srv->log, b->tmp, file)) return false;
    fprintf(stderr, "coil bench: %s on 127.0.0.1:%u\n", name, port);
    srv->pid = spawn_in_group(argv, cwd, srv->log);
    if (srv->pid < 0) {
        fprintf(stderr, "coil bench: cannot start %s: %s\n", name, strerror(errno));
        return false;
    }
    double deadline = now_s() + START_TIMEOUT_S;
    while (now_s() < deadline) {
        int status;
        if (waitpid(srv->pid, &status, WNOHANG) == srv->pid) { /* it exited */
            kill(-srv->pid, SIGKILL);
            track(srv->pid, false);
            srv->pid = -1;
            break;
        }
        if (port_in_use(port)) return true;
        sleep_ms(20);
    }
    fprintf(stderr, "coil bench: %s did not start; its figures are skipped\n", name);
    show_log_tail(srv->log);
    if (srv->pid > 0) stop_group(srv->pid);
    srv->pid = -1;
    return false;
}

static void server_stop(server *srv) {
    if (srv->pid > 0) stop_group(srv->pid);
    srv->pid = -1;
}

static bool start_coil(const bench_cfg *b, server *srv) {
    int port = free_port();
    char listen[64], data[PATH_MAX];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    if (port <= 0 || !join_path(data, sizeof data, b->tmp, "coil-data")) return false;
    char *argv[] = {(char *)b->exe, "serve", "--listen", listen, "--workers", "1",
                    "--data", data, "--no-access-log", NULL};
    return server_start(b, srv, "coil serve", "coil", argv, NULL, (uint16_t)port);
}

static bool start_nginx(const bench_cfg *b, server *srv) {
    char conf[PATH_MAX], prefix[PATH_MAX], logs[PATH_MAX];
    const char *nginx = access("/usr/sbin/nginx", X_OK) == 0 ? "/usr/sbin/nginx" : NULL;
    if (!nginx || !join_path(conf, sizeof conf, b->anchors_dir, "nginx.conf") ||
        access(conf, R_OK) != 0) {
        fprintf(stderr, "coil bench: nginx or its nginx.conf not found; nginx skipped\n");
        return false;
    }
    if (port_in_use(NGINX_PORT)) {
        fprintf(stderr, "coil bench: port %d is taken; nginx skipped\n", NGINX_PORT);
        return false;
    }
    if (!join_path(prefix, sizeof prefix, b->tmp, "nginx") ||
        !join_path(logs, sizeof logs, prefix, "logs"))
        return false;
    mkdir(prefix, 0755);
    mkdir(logs, 0755);
    char *argv[] = {(char *)nginx, "-p", prefix, "-c", conf, "-e", "stderr", NULL};
    return server_start(b, srv, "nginx", "nginx", argv, NULL, NGINX_PORT);
}

static bool start_fastapi(const bench_cfg *b, server *srv) {
    char app[PATH_MAX], out[512], port[16];
    char *probe[] = {(char *)python, "-c", "import fastapi, uvicorn, uvloop, httptools", NULL};
    if (!join_path(app, sizeof app, b->anchors_dir, "fastapi_app.py") ||
        access(python, X_OK) != 0 || access(app, R_OK) != 0 ||
        run_capture(probe, 30, b->tmp, out, sizeof out) != 0) {
        fprintf(stderr, "coil bench: %s with fastapi, uvicorn, uvloop and httptools not "
                        "available (scripts/deps bench); FastAPI skipped\n", python);
        return false;
    }
    if (port_in_use(FASTAPI_PORT)) {
        fprintf(stderr, "coil bench: port %d is taken; FastAPI skipped\n", FASTAPI_PORT);
        return false;
    }
    snprintf(port, sizeof port, "%d", FASTAPI_PORT);
    char *argv[] = {(char *)python, "-m", "uvicorn", "fastapi_app:app", "--host", "127.0.0.1",
                    "--port", port, "--loop", "uvloop", "--http", "httptools",
                    "--no-access-log", NULL};
    return server_start(b, srv, "FastAPI (uvicorn)", "fastapi", argv, b->anchors_dir,
                        FASTAPI_PORT);
}

/* ------------------------------------------------------------------ the runs */

/* The hello runs: a warm-up of each server, then `rounds` alternating
 * measured runs, keeping each server's best (its req/s and that run's
 * p99), so that drift on a shared machine hits both alike. */
static void hello_runs(const bench_cfg *b, server *const srv[], scores *const sc[], int n) {
    wrk_result r;
    for (int i = 0; i < n; i++)
        if (srv[i]->pid > 0 && run_wrk(b, srv[i]->port, "/hello", b->warmup_secs, &r) != 0)
            server_stop(srv[i]);
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

static bool find_anchors(char *dir, size_t cap) {
    const char *env = getenv("COIL_ANCHORS_DIR");
    int n = env && *env ? snprintf(dir, cap, "%s", env)
                        : snprintf(dir, cap, "%s/../shared/anchors", COIL_SOURCE_DIR);
    return n > 0 && (size_t)n < cap && access(dir, R_OK | X_OK) == 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

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
    const char *tmpdir = getenv("TMPDIR");
    int len = snprintf(b->tmp, sizeof b->tmp, "%s/coil-bench-http-XXXXXX",
                       tmpdir && *tmpdir ? tmpdir : "/tmp");
    if (len <= 0 || (size_t)len >= sizeof b->tmp || !mkdtemp(b->tmp)) {
        fprintf(stderr, "coil bench: cannot make a scratch directory: %s\n", strerror(errno));
        return 1;
    }
    if (b->anchors && !find_anchors(b->anchors_dir, sizeof b->anchors_dir)) {
        fprintf(stderr, "coil bench: anchors not found (set COIL_ANCHORS_DIR); skipped\n");
        b->anchors = false;
    }
    return 0;
}

int coil_bench_http(int argc, char **argv) {
    bench_cfg b;
    int rc = setup(&b, argc, argv);
    if (rc) return rc;
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    scores cs = {0}, ns = {0}, fs = {0};
    server coil = {.pid = -1}, nginx = {.pid = -1}, fastapi = {.pid = -1};
    start_coil(&b, &coil);
    if (b.anchors) start_nginx(&b, &nginx);
    server *const hello_srv[] = {&coil, &nginx};
    scores *const hello_sc[] = {&cs, &ns};
    hello_runs(&b, hello_srv, hello_sc, 2);
    server_stop(&nginx);
    print_hello("http", &cs);
    print_hello("nginx", &ns);
    if (b.anchors) start_fastapi(&b, &fastapi);
    blocking_runs(&b, &coil, &fastapi, &cs, &fs);
    server_stop(&coil);
    server_stop(&fastapi);

    ratio("http_hello_rps_vs_nginx", cs.hello_rps, ns.hello_rps, true);
    ratio("http_hello_p99_vs_nginx", cs.hello_p99_ms, ns.hello_p99_ms, false);
    ratio("http_health_p99_under_block_vs_fastapi", cs.health_p99_ms, fs.health_p99_ms, false);
    ratio("http_health_p99_under_block_vs_fastapi_offloaded", cs.health_p99_ms,
          fs.health_p99_off_ms, false);
    nftw(b.tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    return cs.hello_rps > 0 && cs.health_p99_ms > 0 ? 0 : 1;
}
