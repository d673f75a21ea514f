/* bench/bench_serve.h: helpers of the benchmarks that drive servers as
 * child processes (`coil serve` itself and the anchors) over loopback.
 *
 *   children   every server runs in a process group of its own, tracked so
 *              that an interrupted benchmark takes them all down with it;
 *   ports      free ports, connections with timeouts;
 *   HTTP       a minimal blocking HTTP/1.1 keep-alive client (requests with
 *              Content-Length bodies only), and a latency sampler;
 *   scratch    the anchors' directory, temporary directories.
 *
 * Nothing here suspends: these are plain blocking calls, made from the
 * benchmark's own threads, never from a coil loop.
 */
#ifndef COIL_BENCH_SERVE_H
#define COIL_BENCH_SERVE_H

#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ------------------------------------------------------------------ time */

/* CLOCK_MONOTONIC in seconds. */
double coil_bench_now_s(void);
/* Sleeps `ms`, resuming after signals. */
void coil_bench_sleep_ms(long ms);
/* dir/name into out. Returns false if it does not fit. */
bool coil_bench_join_path(char *out, size_t cap, const char *dir, const char *name);
/* qsort comparator for doubles, ascending. */
int coil_bench_cmp_double(const void *a, const void *b);

/* ------------------------------------------------------------------ child processes */

/* Installs (or, with false, removes) the handlers of SIGINT, SIGTERM and
 * SIGHUP that stop every tracked child process group, then exit. */
void coil_bench_trap_signals(bool on);
/* Starts argv[0] (a path) in `cwd` (NULL: ours), in a new process group,
 * with stdin on /dev/null and stdout and stderr appended to `log`, and
 * tracks it. Returns the pid, or -1. */
pid_t coil_bench_spawn(char *const argv[], const char *cwd, const char *log);
/* Waits up to `ms` for `pid` to exit. Returns true if it was reaped. */
bool coil_bench_reap_within(pid_t pid, long ms, int *status);
/* SIGTERM to `pid` (a graceful stop), SIGKILL to its whole group after the
 * grace period, and always SIGKILL to what is left of the group; untracks
 * it. */
void coil_bench_stop_group(pid_t pid);
/* Has an interruption take down the process group of `pid` too, a daemon
 * the benchmark started but did not spawn (a PostgreSQL server); `on`
 * false forgets it. */
void coil_bench_track_group(pid_t pid, bool on);
/* Runs argv with stdout and stderr into `out` (NUL-terminated, `cap`
 * bytes at most), killing it after `timeout_s`; uses a file in `tmp`.
 * Returns its exit status, or -1. */
int coil_bench_run_capture(char *const argv[], int timeout_s, const char *tmp, char *out,
                           size_t cap);
/* Same, from directory `cwd` (NULL: this one), with its wall time in
 * *seconds and its peak RSS in *rss_mb (either may be NULL). */
int coil_bench_run_measured(char *const argv[], const char *cwd, int timeout_s, const char *tmp,
                            char *out, size_t cap, double *seconds, double *rss_mb);
/* Prints the last lines of a log file to stderr, to explain a failure. */
void coil_bench_show_log_tail(const char *log);

/* ------------------------------------------------------------------ ports */

/* A blocking TCP connection to 127.0.0.1:port, TCP_NODELAY, 10 s timeouts
 * on every read and write. Returns the fd (the caller closes it), or -1. */
int coil_bench_connect(uint16_t port);
/* Whether something accepts connections on 127.0.0.1:port. */
bool coil_bench_port_in_use(uint16_t port);
/* A port nobody listens on now (the kernel's pick for port 0), or -1. */
int coil_bench_free_port(void);
/* send(2) until all of it is out. Returns false on an error. */
bool coil_bench_send_all(int fd, const char *p, size_t n);
/* The value of a numeric header (case-insensitive name) in the header
 * block at `head` (NUL-terminated, ending with a blank line), or -1. */
long coil_bench_header_long(const char *head, const char *name);

/* ------------------------------------------------------------------ an HTTP/1.1 client */

/* One keep-alive connection; connects on first use, and again after a
 * failure. Initialise with {.port = P, .fd = -1}. */
typedef struct coil_bench_conn {
    uint16_t port;
    _Atomic int fd;           /* -1 when closed; read by a stopping thread */
    char buf[16384];          /* bytes received, not yet consumed, then a NUL */
    size_t len;
} coil_bench_conn;

void coil_bench_conn_close(coil_bench_conn *c);
/* GET `path`; returns the status, or -1 after closing the connection. */
int coil_bench_conn_get(coil_bench_conn *c, const char *path);
/* `method` `path` with `body` (NULL: none) as application/json and the
 * extra header lines `headers` (NULL, or each ending with "\r\n"). The
 * response body (Content-Length framed, NUL-terminated, truncated to
 * `cap` - 1) goes to `out` when it is not NULL. Returns the status, or -1
 * after closing the connection. */
int coil_bench_conn_request(coil_bench_conn *c, const char *method, const char *path,
                            const char *headers, const char *body, char *out, size_t cap);

/* Latencies of back-to-back requests, in ms. */
typedef struct coil_bench_latency {
    long samples;             /* requests answered with 200 */
    long failures;            /* requests that were not */
    double p50, p99, max;
} coil_bench_latency;

/* GETs `path` on one connection for `secs` (stopping early after 100
 * failures), one request after the other, with a pause of `pause_us`
 * between an answer and the next request (0: back to back). Returns false
 * if no request succeeded. */
bool coil_bench_measure_get(uint16_t port, const char *path, int secs, long pause_us,
                            coil_bench_latency *out);
/* Same, ending early once *stop is set (by another thread). */
bool coil_bench_measure_get_while(uint16_t port, const char *path, int secs, long pause_us,
                                  const atomic_bool *stop, coil_bench_latency *out);

/* ------------------------------------------------------------------ servers */

/* A server started for a benchmark. */
typedef struct coil_bench_server {
    const char *name;         /* for messages: "coil serve", "nginx"... */
    pid_t pid;                /* leader of its process group, -1 if not running */
    uint16_t port;
    char log[PATH_MAX];        /* its stdout and stderr */
} coil_bench_server;

/* Starts a server with its log in tmp/LOGNAME.log and waits (15 s at most)
 * until it accepts connections on 127.0.0.1:port. Returns false (after
 * saying why, with the end of its log) if it does not. */
bool coil_bench_server_start(const char *tmp, coil_bench_server *srv, const char *name,
                             const char *logname, char *const argv[], const char *cwd,
                             uint16_t port);
/* Stops it if it runs (coil_bench_stop_group). */
void coil_bench_server_stop(coil_bench_server *srv);

/* ------------------------------------------------------------------ scratch */

/* The anchors' directory: $COIL_ANCHORS_DIR, or shared/anchors next to the
 * source tree. Returns false if it is not there. */
bool coil_bench_find_anchors(char *dir, size_t cap);
/* Makes $TMPDIR/coil-bench-TAG-XXXXXX (TMPDIR defaults to /tmp). Returns
 * false after saying why. */
bool coil_bench_make_tmp(char *dir, size_t cap, const char *tag);
/* Removes a directory tree, ignoring errors. */
void coil_bench_remove_tree(const char *dir);

#endif
