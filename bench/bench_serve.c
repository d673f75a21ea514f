/* bench/bench_serve.c: helpers of the benchmarks that drive servers as
 * child processes over loopback (see bench_serve.h).
 *
 * Child processes: each one leads a process group of its own, so that
 * stopping it also stops what it started (nginx's worker, coil's job
 * workers). The groups are kept in a small table that the signal handler
 * reads: an interrupted benchmark leaves nothing running.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_serve.h"

extern char **environ;

enum {
    START_TIMEOUT_S = 15,  /* for a server to accept connections */
    STOP_GRACE_MS = 5000,  /* SIGTERM, then SIGKILL after this */
    MAX_CHILDREN = 8,
};

double coil_bench_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void coil_bench_sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

bool coil_bench_join_path(char *out, size_t cap, const char *dir, const char *name) {
    int n = snprintf(out, cap, "%s/%s", dir, name);
    return n > 0 && (size_t)n < cap;
}

int coil_bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
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

void coil_bench_track_group(pid_t pid, bool on) { track(pid, on); }

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

void coil_bench_trap_signals(bool on) {
    struct sigaction sa = {.sa_handler = on ? on_signal : SIG_DFL};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

pid_t coil_bench_spawn(char *const argv[], const char *cwd, const char *log) {
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

bool coil_bench_reap_within(pid_t pid, long ms, int *status) {
    double deadline = coil_bench_now_s() + (double)ms / 1000;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD)) return true;
        if (coil_bench_now_s() > deadline) return false;
        coil_bench_sleep_ms(10);
    }
}

void coil_bench_stop_group(pid_t pid) {
    int status;
    kill(pid, SIGTERM);
    if (!coil_bench_reap_within(pid, STOP_GRACE_MS, &status)) {
        fprintf(stderr, "coil bench: pid %d ignored SIGTERM; killing it\n", (int)pid);
        kill(-pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    kill(-pid, SIGKILL);
    track(pid, false);
}

int coil_bench_run_measured(char *const argv[], const char *cwd, int timeout_s, const char *tmp,
                            char *out, size_t cap, double *seconds, double *rss_mb) {
    char log[PATH_MAX];
    if (!coil_bench_join_path(log, sizeof log, tmp, "run.out")) return -1;
    unlink(log);
    double t0 = coil_bench_now_s(), deadline = t0 + timeout_s;
    pid_t pid = coil_bench_spawn(argv, cwd, log);
    if (pid < 0) return -1;
    int status = 0;
    struct rusage ru = {0};
    pid_t got;
    while ((got = wait4(pid, &status, WNOHANG, &ru)) == 0 && coil_bench_now_s() < deadline)
        coil_bench_sleep_ms(5);
    bool done = got == pid || (got < 0 && errno == ECHILD); /* reaped elsewhere */
    if (got == 0) {
        kill(-pid, SIGKILL);
        wait4(pid, &status, 0, &ru);
    }
    if (seconds) *seconds = coil_bench_now_s() - t0;
    if (rss_mb) *rss_mb = (double)ru.ru_maxrss / 1024;
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

int coil_bench_run_capture(char *const argv[], int timeout_s, const char *tmp, char *out,
                           size_t cap) {
    return coil_bench_run_measured(argv, NULL, timeout_s, tmp, out, cap, NULL, NULL);
}

void coil_bench_show_log_tail(const char *log) {
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

int coil_bench_connect(uint16_t port) {
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

bool coil_bench_port_in_use(uint16_t port) {
    int fd = coil_bench_connect(port);
    if (fd < 0) return false;
    close(fd);
    return true;
}

int coil_bench_free_port(void) {
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

bool coil_bench_send_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

long coil_bench_header_long(const char *head, const char *name) {
    size_t n = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p && p[2] != '\r'; p = strstr(p + 2, "\r\n"))
        if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':')
            return strtol(p + 3 + n, NULL, 10);
    return -1;
}

/* ------------------------------------------------------------------ an HTTP/1.1 client */

void coil_bench_conn_close(coil_bench_conn *c) {
    int fd = atomic_exchange(&c->fd, -1);
    if (fd >= 0) close(fd);
    c->len = 0;
    c->buf[0] = '\0';
}

/* Reads more bytes into c->buf, keeping it NUL-terminated. */
static bool fill(coil_bench_conn *c, int fd) {
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

int coil_bench_conn_request(coil_bench_conn *c, const char *method, const char *path,
                            const char *headers, const char *body, char *out, size_t cap) {
    int fd = atomic_load(&c->fd);
    if (fd < 0) {
        fd = coil_bench_connect(c->port);
        if (fd < 0) return -1;
        atomic_store(&c->fd, fd);
    }
    char req[2048];
    int n = body ? snprintf(req, sizeof req,
                            "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s"
                            "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                            method, path, headers ? headers : "", strlen(body), body)
                 : snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n",
                            method, path, headers ? headers : "");
    if (n <= 0 || (size_t)n >= sizeof req || !coil_bench_send_all(fd, req, (size_t)n)) goto fail;
    char *end;
    while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
        if (!fill(c, fd)) goto fail;
    size_t head_len = (size_t)(end - c->buf) + 4;
    int status = 0;
    if (sscanf(c->buf, "HTTP/1.%*d %d", &status) != 1) goto fail;
    long len = coil_bench_header_long(c->buf, "Content-Length");
    if (len < 0 || (size_t)len >= sizeof c->buf - head_len) goto fail; /* no chunked here */
    while (c->len < head_len + (size_t)len)
        if (!fill(c, fd)) goto fail;
    if (out && cap) {
        size_t keep = (size_t)len < cap - 1 ? (size_t)len : cap - 1;
        memcpy(out, c->buf + head_len, keep);
        out[keep] = '\0';
    }
    size_t used = head_len + (size_t)len;
    memmove(c->buf, c->buf + used, c->len - used + 1); /* with the NUL */
    c->len -= used;
    return status;
fail:
    coil_bench_conn_close(c);
    return -1;
}

int coil_bench_conn_get(coil_bench_conn *c, const char *path) {
    return coil_bench_conn_request(c, "GET", path, NULL, NULL, NULL, 0);
}

/* The value at rank ceil(q * n) of n sorted values (nearest rank). */
static double nearest_rank(const double *sorted, size_t n, double q) {
    size_t rank = (size_t)((double)n * q + 0.999999);
    return sorted[(rank ? rank : 1) - 1];
}

bool coil_bench_measure_get(uint16_t port, const char *path, int secs, long pause_us,
                            coil_bench_latency *out) {
    return coil_bench_measure_get_while(port, path, secs, pause_us, NULL, out);
}

bool coil_bench_measure_get_while(uint16_t port, const char *path, int secs, long pause_us,
                                  const atomic_bool *stop, coil_bench_latency *out) {
    *out = (coil_bench_latency){0};
    size_t cap = 1 << 16, n = 0;
    double *lat = malloc(cap * sizeof *lat);
    if (!lat) return false;
    coil_bench_conn c = {.port = port, .fd = -1};
    double end = coil_bench_now_s() + secs;
    while (coil_bench_now_s() < end && out->failures < 100 && !(stop && atomic_load(stop))) {
        double t0 = coil_bench_now_s();
        int status = coil_bench_conn_get(&c, path);
        double t1 = coil_bench_now_s();
        if (status != 200) {
            out->failures++;
            continue;
        }
        if (n == cap) {
            double *more = realloc(lat, 2 * cap * sizeof *lat);
            if (!more) break;
            lat = more;
            cap *= 2;
        }
        lat[n++] = (t1 - t0) * 1000;
        if (pause_us > 0) {
            struct timespec ts = {pause_us / 1000000, (pause_us % 1000000) * 1000};
            nanosleep(&ts, NULL);
        }
    }
    coil_bench_conn_close(&c);
    if (n) {
        qsort(lat, n, sizeof *lat, coil_bench_cmp_double);
        out->samples = (long)n;
        out->p50 = nearest_rank(lat, n, 0.50);
        out->p99 = nearest_rank(lat, n, 0.99);
        out->max = lat[n - 1];
    }
    free(lat);
    return n > 0;
}

/* ------------------------------------------------------------------ servers */

bool coil_bench_server_start(const char *tmp, coil_bench_server *srv, const char *name,
                             const char *logname, char *const argv[], const char *cwd,
                             uint16_t port) {
    srv->name = name;
    srv->port = port;
    char file[64];
    snprintf(file, sizeof file, "%s.log", logname);
    if (!coil_bench_join_path(srv->log, sizeof srv->log, tmp, file)) return false;
    fprintf(stderr, "coil bench: %s on 127.0.0.1:%u\n", name, port);
    srv->pid = coil_bench_spawn(argv, cwd, srv->log);
    if (srv->pid < 0) {
        fprintf(stderr, "coil bench: cannot start %s: %s\n", name, strerror(errno));
        return false;
    }
    double deadline = coil_bench_now_s() + START_TIMEOUT_S;
    while (coil_bench_now_s() < deadline) {
        int status;
        if (waitpid(srv->pid, &status, WNOHANG) == srv->pid) { /* it exited */
            kill(-srv->pid, SIGKILL);
            track(srv->pid, false);
            srv->pid = -1;
            break;
        }
        if (coil_bench_port_in_use(port)) return true;
        coil_bench_sleep_ms(20);
    }
    fprintf(stderr, "coil bench: %s did not start; its figures are skipped\n", name);
    coil_bench_show_log_tail(srv->log);
    if (srv->pid > 0) coil_bench_stop_group(srv->pid);
    srv->pid = -1;
    return false;
}

void coil_bench_server_stop(coil_bench_server *srv) {
    if (srv->pid > 0) coil_bench_stop_group(srv->pid);
    srv->pid = -1;
}

/* ------------------------------------------------------------------ scratch */

bool coil_bench_find_anchors(char *dir, size_t cap) {
    const char *env = getenv("COIL_ANCHORS_DIR");
    int n = env && *env ? snprintf(dir, cap, "%s", env)
                        : snprintf(dir, cap, "%s/../shared/anchors", COIL_SOURCE_DIR);
    return n > 0 && (size_t)n < cap && access(dir, R_OK | X_OK) == 0;
}

bool coil_bench_make_tmp(char *dir, size_t cap, const char *tag) {
    const char *tmpdir = getenv("TMPDIR");
    int len = snprintf(dir, cap, "%s/coil-bench-%s-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp",
                       tag);
    if (len <= 0 || (size_t)len >= cap || !mkdtemp(dir)) {
        fprintf(stderr, "coil bench: cannot make a scratch directory: %s\n", strerror(errno));
        return false;
    }
    return true;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

void coil_bench_remove_tree(const char *dir) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }
