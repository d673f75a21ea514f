/* tests/app/serve_harness.h: the real `coil serve` binary under test, and a
 * plain HTTP/1.1 client to talk to it.
 *
 * Server. serve_start() makes a temporary directory DIR and starts the coil
 * binary of this build (BUILD/coil, next to BUILD/tests/ where the tests
 * live) as `coil serve --listen 127.0.0.1:0 --data DIR/var` plus the test's
 * own arguments. The server's stdout and stderr go to DIR/stdout.log and
 * DIR/stderr.log, appended across runs; its port is read from the startup
 * line it prints. serve_launch() starts it again on the same DIR, so a test
 * can stop (SIGTERM, which must drain and exit 0: serve_stop) or kill
 * (SIGKILL: serve_kill) a server and restart it on the same data.
 * serve_cleanup() removes DIR and everything in it. The server dies with
 * the test process (PR_SET_PDEATHSIG), so a failed test leaves none behind.
 *
 * Client. One request per connection ("Connection: close"). serve_http()
 * asserts that an answer came; serve_try_http() reports a failed connection
 * or a cut-off answer instead, for tests that kill the server under their
 * clients. Bodies are read whole, whatever their size, and de-chunked.
 * Everything is bounded in time.
 *
 * Every function is static inline: each test file uses a subset.
 */
#ifndef COIL_TEST_SERVE_HARNESS_H
#define COIL_TEST_SERVE_HARNESS_H

#include "test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------------ the server */

typedef struct serve_proc {
    pid_t pid;                    /* the running server; 0 when none */
    int port;                     /* its port, from its startup line */
    char dir[64];                 /* temporary directory of the test */
    char data[96];                /* DIR/var: the --data directory */
    char out[96];                 /* DIR/stdout.log: the startup lines */
    char log[96];                 /* DIR/stderr.log: the access log, errors */
    const char *cmd;              /* "serve" (NULL) or "worker" */
} serve_proc;

/* The path of this build's coil binary. */
static inline void serve_binary(char *out, size_t size) {
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

/* Makes the test's temporary directory; starts no server. */
static inline void serve_init(serve_proc *p) {
    memset(p, 0, sizeof *p);
    snprintf(p->dir, sizeof p->dir, "/tmp/coil-serve-XXXXXX");
    ASSERT(mkdtemp(p->dir) != NULL);
    snprintf(p->data, sizeof p->data, "%s/var", p->dir);
    snprintf(p->out, sizeof p->out, "%s/stdout.log", p->dir);
    snprintf(p->log, sizeof p->log, "%s/stderr.log", p->dir);
}

/* Size of the file at `path`, 0 if there is none. */
static inline off_t serve_file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : 0;
}

/* Waits (30 s at most) for the startup line that the server `pid` writes to
 * p->out after byte `from`, and returns its port. Fails the test if the
 * server exits first. */
static inline int serve_read_port(serve_proc *p, off_t from) {
    char buf[512];
    coil_time until = coil_now() + COIL_SEC(30);
    while (coil_now() < until) {
        int fd = open(p->out, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd >= 0 ? pread(fd, buf, sizeof buf - 1, from) : -1;
        if (fd >= 0) close(fd);
        buf[n > 0 ? n : 0] = '\0';
        if (strchr(buf, '\n')) {
            const char *at = strstr(buf, "http://127.0.0.1:");
            if (!at) coil_test_fail(__FILE__, __LINE__, "startup line: %s", buf);
            return (int)strtol(at + strlen("http://127.0.0.1:"), NULL, 10);
        }
        int status;
        if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
            p->pid = 0;
            coil_test_fail(__FILE__, __LINE__, "coil serve exited (status 0x%x) before listening",
                           status);
        }
        usleep(10 * 1000);
    }
    coil_test_fail(__FILE__, __LINE__, "no startup line within 30 s; got: %s", buf);
}

/* Starts `coil serve --listen 127.0.0.1:0 --data DIR/var` plus `extra`
 * (NULL-terminated, NULL for none) on the directory serve_init() made;
 * does not wait for it to listen (serve_launch does). */
static inline void serve_spawn(serve_proc *p, const char *const *extra) {
    char bin[PATH_MAX];
    serve_binary(bin, sizeof bin);
    const char *argv[24] = {bin, p->cmd ? p->cmd : "serve", "--listen", "127.0.0.1:0",
                            "--data", p->data};
    int argc = 6;
    for (; extra && *extra; extra++) {
        ASSERT(argc < 23);
        argv[argc++] = *extra;
    }
    argv[argc] = NULL;
    fflush(NULL);
    p->pid = fork();
    ASSERT(p->pid >= 0);
    if (p->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed test takes its server along */
        int out = open(p->out, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int log = open(p->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (out < 0 || log < 0 || dup2(out, 1) < 0 || dup2(log, 2) < 0) _exit(127);
        setenv("COIL_DUMP_SIGNAL", "1", 1); /* SIGUSR1 dumps its tasks (see serve_stop) */
        execv(bin, (char *const *)argv);
        _exit(127);
    }
}

/* serve_spawn(), then waits (30 s at most) until the server listens. */
static inline void serve_launch(serve_proc *p, const char *const *extra) {
    off_t from = serve_file_size(p->out);
    serve_spawn(p, extra);
    p->port = serve_read_port(p, from);
    ASSERT(p->port > 0);
}

/* serve_init() and serve_launch(). */
static inline void serve_start(serve_proc *p, const char *const *extra) {
    serve_init(p);
    serve_launch(p, extra);
}

/* Waits (30 s at most) for the process and returns its wait status, or -1
 * past that (the process still runs). */
static inline int serve_try_wait_exit(pid_t pid) {
    int status;
    for (int i = 0; i < 3000; i++) {
        pid_t got = waitpid(pid, &status, WNOHANG);
        if (got == pid) return status;
        usleep(10 * 1000);
    }
    return -1;
}

/* Waits (30 s at most) for the process and returns its wait status; past
 * that, kills it and fails the test. */
static inline int serve_wait_exit(pid_t pid) {
    int status = serve_try_wait_exit(pid);
    if (status != -1) return status;
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    coil_test_fail(__FILE__, __LINE__, "coil serve did not exit within 30 s");
}

static inline char *serve_read_file(const char *path, size_t *len);

/* A server that does not stop: asks it for a task dump (SIGUSR1), kills it,
 * and fails the test with the end of its log. */
__attribute__((noreturn)) static inline void serve_stuck(serve_proc *p, int line) {
    kill(p->pid, SIGUSR1);
    usleep(1000 * 1000);
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
    p->pid = 0;
    size_t len = 0;
    char *log = serve_read_file(p->log, &len);
    size_t tail = len > 6000 ? len - 6000 : 0;
    coil_test_fail(__FILE__, line,
                   "coil serve did not exit within 30 s of SIGTERM; its log ends:\n%s",
                   log ? log + tail : "(none)");
}

/* SIGTERM, then asserts exit status 0. */
static inline void serve_stop(serve_proc *p) {
    ASSERT(p->pid > 0);
    ASSERT_EQ(kill(p->pid, SIGTERM), 0);
    int status = serve_try_wait_exit(p->pid);
    if (status == -1) serve_stuck(p, __LINE__);
    p->pid = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        coil_test_fail(__FILE__, __LINE__, "coil serve ended with status 0x%x", status);
}

/* SIGKILL, and reaps it. */
static inline void serve_kill(serve_proc *p) {
    ASSERT(p->pid > 0);
    ASSERT_EQ(kill(p->pid, SIGKILL), 0);
    int status = serve_wait_exit(p->pid);
    p->pid = 0;
    ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

/* Asserts the server is still running (it did not exit or crash). */
static inline void serve_assert_alive(serve_proc *p) {
    int status;
    pid_t got = waitpid(p->pid, &status, WNOHANG);
    if (got == p->pid) {
        p->pid = 0;
        coil_test_fail(__FILE__, __LINE__, "coil serve died: status 0x%x", status);
    }
    ASSERT_EQ(got, 0);
}

/* The whole file at `path` (malloc'd, NUL-terminated); "" if there is none. */
static inline char *serve_read_file(const char *path, size_t *len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st = {0};
    if (fd >= 0) ASSERT_EQ(fstat(fd, &st), 0);
    char *buf = malloc((size_t)st.st_size + 1);
    ASSERT(buf != NULL);
    size_t have = 0;
    while (fd >= 0 && have < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + have, (size_t)st.st_size - have);
        if (n <= 0) break;
        have += (size_t)n;
    }
    if (fd >= 0) close(fd);
    buf[have] = '\0';
    if (len) *len = have;
    return buf;
}

/* The server's stderr so far, every run (malloc'd). */
static inline char *serve_read_log(const serve_proc *p) { return serve_read_file(p->log, NULL); }

static inline int serve_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)ftw;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

/* Removes the test's directory and everything in it (the server must be
 * stopped). */
static inline void serve_cleanup(serve_proc *p) {
    ASSERT_EQ(p->pid, 0);
    ASSERT_EQ(nftw(p->dir, serve_rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
}

/* ------------------------------------------------------------------ other commands */

/* A run of another coil command: its exit status (128 + N for signal N)
 * and what it wrote. */
typedef struct serve_ran {
    int status;
    char *out, *err;
} serve_ran;

/* Starts this build's `coil ARGS...` (NULL-terminated) in `dir`, its
 * stdout and stderr going to dir/TAG.out and dir/TAG.err. Returns its pid. */
static inline pid_t serve_coil_spawn(const char *dir, const char *tag, const char *const *args) {
    char bin[PATH_MAX], out[PATH_MAX], err[PATH_MAX];
    serve_binary(bin, sizeof bin);
    snprintf(out, sizeof out, "%s/%s.out", dir, tag);
    snprintf(err, sizeof err, "%s/%s.err", dir, tag);
    const char *argv[24] = {bin};
    int n = 1;
    for (; *args; args++) {
        ASSERT(n < 23);
        argv[n++] = *args;
    }
    argv[n] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0 || chdir(dir) != 0) _exit(127);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

/* Waits (120 s at most) for a serve_coil_spawn()ed command and reads what
 * it wrote; free with serve_ran_free(). */
static inline void serve_coil_collect(pid_t pid, const char *dir, const char *tag, serve_ran *r) {
    int ws;
    coil_time until = coil_now() + COIL_SEC(120);
    while (waitpid(pid, &ws, WNOHANG) == 0) {
        if (coil_now() >= until) {
            kill(pid, SIGKILL);
            coil_test_fail(__FILE__, __LINE__, "coil %s did not end within 120 s", tag);
        }
        usleep(10 * 1000);
    }
    r->status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s.out", dir, tag);
    r->out = serve_read_file(path, NULL);
    snprintf(path, sizeof path, "%s/%s.err", dir, tag);
    r->err = serve_read_file(path, NULL);
    ASSERT(r->out && r->err);
}

/* serve_coil_spawn() and serve_coil_collect(). */
static inline void serve_coil_run(const char *dir, const char *const *args, serve_ran *r) {
    serve_coil_collect(serve_coil_spawn(dir, "cmd", args), dir, "cmd", r);
}

static inline void serve_ran_free(serve_ran *r) {
    free(r->out);
    free(r->err);
}

/* serve_coil_run(), failing the test unless it exits 0. */
static inline void serve_coil_ok(const char *dir, const char *const *args) {
    serve_ran r;
    serve_coil_run(dir, args, &r);
    if (r.status != 0)
        coil_test_fail(__FILE__, __LINE__, "coil %s exited %d:\n%s", args[0], r.status, r.err);
    serve_ran_free(&r);
}

/* ------------------------------------------------------------------ the client */

typedef struct serve_reply {
    int status;                   /* from the status line; 0 if none came */
    char *head;                   /* status line and headers (malloc'd) */
    char *body;                   /* the body, de-chunked (malloc'd, NUL-terminated) */
    size_t body_len;
    bool complete;                /* the body ended as its framing says */
} serve_reply;

static inline void serve_reply_free(serve_reply *r) {
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* A response header's value (the first of that name, case-insensitive),
 * copied into `buf`; NULL if absent. */
static inline const char *serve_header(const serve_reply *r, const char *name, char *buf,
                                       size_t size) {
    return coil_test_header(r->head, NULL, name, buf, size);
}

/* De-chunks `in` (len bytes of a chunked body) into `out` (len bytes at
 * least). Returns 1 when the last chunk and the trailer are all there, 0
 * while more is to come, -1 if malformed. */
static inline int serve_dechunk(const char *in, size_t len, char *out, size_t *out_len) {
    size_t at = 0;
    *out_len = 0;
    for (;;) {
        const char *eol = memmem(in + at, len - at, "\r\n", 2);
        if (!eol) return 0;
        char *end;
        unsigned long size = strtoul(in + at, &end, 16);
        if (end == in + at) return -1;
        at = (size_t)(eol - in) + 2;
        if (size == 0) { /* trailer lines until an empty one */
            for (;;) {
                const char *t = memmem(in + at, len - at, "\r\n", 2);
                if (!t) return 0;
                if (t == in + at) return 1;
                at = (size_t)(t - in) + 2;
            }
        }
        if (len - at < size + 2) return 0;
        memcpy(out + *out_len, in + at, size);
        *out_len += size;
        at += size + 2;
    }
}

/* Splits `raw` (len bytes) into r. Returns true when the message is
 * complete by its framing (Content-Length, chunked) or, without either,
 * when `eof`. */
static inline bool serve_parse(const char *raw, size_t len, bool eof, serve_reply *r) {
    const char *end = memmem(raw, len, "\r\n\r\n", 4);
    if (!end) return false;
    free(r->head);
    free(r->body);
    size_t hlen = (size_t)(end - raw) + 2;
    r->head = strndup(raw, hlen);
    ASSERT(r->head != NULL);
    r->status = strncmp(raw, "HTTP/1.", 7) == 0 ? (int)strtol(raw + 9, NULL, 10) : 0;
    const char *body = end + 4;
    size_t blen = len - (size_t)(body - raw);
    r->body = malloc(blen + 1);
    ASSERT(r->body != NULL);
    char v[64];
    bool done;
    if (serve_header(r, "Transfer-Encoding", v, sizeof v) && strcasestr(v, "chunked")) {
        done = serve_dechunk(body, blen, r->body, &r->body_len) == 1;
    } else {
        memcpy(r->body, body, blen);
        r->body_len = blen;
        if (serve_header(r, "Content-Length", v, sizeof v)) {
            size_t want = strtoul(v, NULL, 10);
            done = blen >= want;
            if (done) r->body_len = want;
        } else {
            done = eof;
        }
    }
    r->body[r->body_len] = '\0';
    return done;
}

/* A TCP socket bound to 127.0.0.1 on a port the kernel chose, in *port. */
static inline int serve_loopback_socket(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ASSERT_EQ(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    ASSERT_EQ(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* A port nothing listens on now (the kernel's choice, let go). */
static inline int serve_free_port(void) {
    int port;
    close(serve_loopback_socket(&port));
    return port;
}

/* Connects to 127.0.0.1:port. Returns the socket or -errno. */
static inline int serve_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

/* Waits (`secs` at most) until something accepts connections on `port`:
 * a process the test started, `pid` (0: none to watch), which must not
 * exit meanwhile; `what` names it in the failure. */
static inline void serve_await_port(int port, pid_t pid, int secs, const char *what) {
    coil_time until = coil_now() + COIL_SEC(secs);
    int fd;
    while ((fd = serve_connect(port)) < 0) {
        int status;
        if (pid > 0 && waitpid(pid, &status, WNOHANG) == pid)
            coil_test_fail(__FILE__, __LINE__, "%s exited (status %d) before it listened", what,
                           status);
        if (coil_now() >= until)
            coil_test_fail(__FILE__, __LINE__, "%s did not listen on %d within %d s", what, port,
                           secs);
        usleep(20 * 1000);
    }
    close(fd);
}

/* Sends METHOD path with `headers` ("Name: value\r\n" lines, or NULL) and
 * `body` (NULL for none) and reads the answer until it is complete, the
 * server closes, or `timeout_ms` passed. Returns 0 with r->complete set,
 * -ETIMEDOUT, or another -errno (connection refused or reset, answer cut
 * off: r->complete is false); r holds what came either way and must be
 * freed. */
static inline int serve_try_http_for(int port, const char *method, const char *path,
                                     const char *headers, const char *body, int timeout_ms,
                                     serve_reply *r) {
    memset(r, 0, sizeof *r);
    int fd = serve_connect(port);
    if (fd < 0) return fd;
    size_t blen = body ? strlen(body) : 0;
    size_t cap = strlen(path) + (headers ? strlen(headers) : 0) + blen + 256;
    char *req = malloc(cap);
    ASSERT(req != NULL);
    int n = snprintf(req, cap,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s"
                     "Content-Length: %zu\r\n\r\n",
                     method, path, headers ? headers : "", blen);
    ASSERT(n > 0 && (size_t)n + blen < cap);
    if (blen) memcpy(req + n, body, blen);
    size_t total = (size_t)n + blen, sent = 0;
    int send_err = 0, err = 0;
    while (sent < total) {
        ssize_t w = send(fd, req + sent, total - sent, MSG_NOSIGNAL);
        if (w <= 0) { /* the server may have answered early: read on */
            send_err = w < 0 ? -errno : -EPIPE;
            break;
        }
        sent += (size_t)w;
    }
    free(req);
    size_t len = 0, rcap = 4096;
    char *raw = malloc(rcap);
    ASSERT(raw != NULL);
    coil_time until = coil_now() + COIL_MSEC(timeout_ms);
    bool eof = false;
    while (!err) {
        coil_time left = until - coil_now();
        if (left <= 0) {
            err = -ETIMEDOUT;
            break;
        }
        struct pollfd pfd = {fd, POLLIN, 0};
        int ready = poll(&pfd, 1, (int)(left / COIL_MSEC(1)) + 1);
        if (ready < 0 && errno != EINTR) err = -errno;
        if (ready <= 0) continue;
        if (len + 4096 > rcap) {
            rcap *= 2;
            raw = realloc(raw, rcap);
            ASSERT(raw != NULL);
        }
        ssize_t got = recv(fd, raw + len, rcap - len - 1, 0);
        if (got < 0) {
            err = -errno;
            break;
        }
        eof = got == 0;
        len += (size_t)got;
        if (serve_parse(raw, len, eof, r)) {
            r->complete = true;
            break;
        }
        if (eof) err = -EPIPE;
    }
    if (err && len) serve_parse(raw, len, false, r); /* what came before the cut */
    free(raw);
    close(fd);
    if (r->complete) return 0;
    return send_err ? send_err : err;
}

/* serve_try_http_for() with 30 s. */
static inline int serve_try_http(int port, const char *method, const char *path,
                                 const char *headers, const char *body, serve_reply *r) {
    return serve_try_http_for(port, method, path, headers, body, 30000, r);
}

/* Like serve_try_http(), but fails the test unless a whole answer came. */
static inline void serve_http(int port, const char *method, const char *path,
                              const char *headers, const char *body, serve_reply *r) {
    int err = serve_try_http(port, method, path, headers, body, r);
    if (err)
        coil_test_fail(__FILE__, __LINE__, "%s %s: no answer (%s); got: %s%s", method, path,
                       strerror(-err), r->head ? r->head : "", r->body ? r->body : "");
}

static inline void serve_get(int port, const char *path, serve_reply *r) {
    serve_http(port, "GET", path, NULL, NULL, r);
}

/* The body parsed as JSON (the caller decrefs); fails the test if it is
 * not JSON. */
static inline json_t *serve_json(const serve_reply *r) {
    json_error_t e;
    json_t *j = json_loadb(r->body ? r->body : "", r->body_len, 0, &e);
    if (!j)
        coil_test_fail(__FILE__, __LINE__, "not JSON (%s): %s%s", e.text, r->head ? r->head : "",
                       r->body ? r->body : "");
    return j;
}

/* GET /jobs/{id}, asserted 200: the job's status document (the caller
 * decrefs). */
static inline json_t *serve_job_doc(int port, const char *id) {
    char path[96];
    snprintf(path, sizeof path, "/jobs/%s", id);
    serve_reply r;
    serve_get(port, path, &r);
    ASSERT_EQ(r.status, 200);
    json_t *doc = serve_json(&r);
    serve_reply_free(&r);
    return doc;
}

/* Asserts GET `path` answers `status`, with `body` if not NULL. */
static inline void serve_expect(int port, const char *path, int status, const char *body) {
    serve_reply r;
    serve_get(port, path, &r);
    if (r.status != status)
        coil_test_fail(__FILE__, __LINE__, "GET %s: status %d, want %d:\n%s%s", path, r.status,
                       status, r.head, r.body);
    if (body) ASSERT_STR_EQ(r.body, body);
    serve_reply_free(&r);
}

/* Asserts GET `path` answers 200 with a JSON object holding {key: value}. */
static inline void serve_expect_json(int port, const char *path, const char *key,
                                     long long value) {
    serve_reply r;
    serve_get(port, path, &r);
    if (r.status != 200)
        coil_test_fail(__FILE__, __LINE__, "GET %s: status %d:\n%s%s", path, r.status, r.head,
                       r.body);
    json_t *j = serve_json(&r);
    ASSERT(json_is_integer(json_object_get(j, key)));
    ASSERT_EQ(json_integer_value(json_object_get(j, key)), value);
    json_decref(j);
    serve_reply_free(&r);
}

#endif
