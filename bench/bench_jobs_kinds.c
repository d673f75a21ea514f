/* bench/bench_jobs_kinds.c: the figures of the three kinds of job kind, and
 * of per-kind limits, in `coil bench jobs`. Each run is a fresh `coil serve`
 * with a data directory of its own, driven over HTTP on 127.0.0.1 like the
 * other job figures (bench_jobs.c): a burst of enqueues on 64 connections,
 * then the jobs lists polled until nothing is left to run.
 *
 *   command_kind_jobs_per_s   jobs of `--command-kind bench.true=/bin/true`
 *                             on 2 workers: a fork and exec each, the
 *                             payload on stdin, stdout the result; N over
 *                             the time from the first POST to the last
 *                             job done                               jobs/s
 *   async_kind_concurrent_jobs  demo.wait jobs of 100 ms (an awaiting kind,
 *                             64 at once in a worker) on ONE worker: how
 *                             many it finishes a second. A plain kind
 *                             would do 10                            jobs/s
 *   limit_overhead_vs_none    demo.noop end to end on 2 workers with
 *                             `--max-running demo.noop=1000000` (a limit
 *                             that never binds, but is counted at every
 *                             claim) over the same without it, 5 rounds
 *                             each taking turns, medians             x
 */
#include <stdio.h>
#include <string.h>

#include "bench/bench_jobs_http.h"

enum {
    COMMAND_JOBS = 1000,
    WAIT_JOBS = 1280,
    NOOP_JOBS = 10000,
    LIMIT_ROUNDS = 5, /* each side; the figure is a small difference in a noisy one */
};

/* Starts coil serve with `extra` flags (NULL-terminated, at most 6). */
static bool start(const char *exe, const char *tmp, const char *tag, const char *workers,
                  const char *const *extra, coil_bench_server *srv) {
    int port = coil_bench_free_port();
    char listen[64], data[PATH_MAX], dir[64], log[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    snprintf(dir, sizeof dir, "data-%s", tag);
    snprintf(log, sizeof log, "coil-%s", tag);
    if (port <= 0 || !coil_bench_join_path(data, sizeof data, tmp, dir)) return false;
    char *argv[16] = {(char *)exe, "serve", "--listen", listen, "--data", data,
                      "--job-workers", (char *)workers, "--no-access-log"};
    int n = 9;
    for (; extra && *extra && n < 15; extra++) argv[n++] = (char *)*extra;
    argv[n] = NULL;
    *srv = (coil_bench_server){.pid = -1};
    return coil_bench_server_start(tmp, srv, "coil serve", log, argv, NULL, (uint16_t)port);
}

/* A burst of `total` jobs of `kind`, then until all are done: jobs/s from
 * the first POST to the last job done, or 0 after saying what failed. */
static double end_to_end(const char *exe, const char *tmp, const char *tag, const char *workers,
                         const char *const *extra, const char *kind, const char *payload,
                         int total) {
    coil_bench_server srv;
    if (!start(exe, tmp, tag, workers, extra, &srv)) return 0;
    coil_bench_burst run = {.port = srv.port, .total = total, .kind = kind, .payload = payload};
    double t_done = 0, rate = 0;
    if (coil_bench_run_burst(&run) &&
        coil_bench_wait_all_finished(srv.port, COIL_BENCH_RUN_TIMEOUT_S, &t_done) &&
        coil_bench_all_succeeded(srv.port))
        rate = total / (t_done - run.t_first);
    if (rate == 0) coil_bench_show_log_tail(srv.log);
    coil_bench_server_stop(&srv);
    fprintf(stderr, "coil bench:   %s: %d jobs, %.0f jobs/s\n", tag, total, rate);
    return rate;
}

bool coil_bench_jobs_kinds(const char *exe, const char *tmp, int scale, int rounds) {
    const char *const command[] = {"--command-kind", "bench.true=/bin/true", NULL};
    double cmd = end_to_end(exe, tmp, "command", "2", command, "bench.true", NULL,
                            COMMAND_JOBS / scale);
    double wait = end_to_end(exe, tmp, "await", "1", NULL, "demo.wait", "{\"ms\":100}",
                             WAIT_JOBS / scale);
    coil_bench_samples none = {0}, limited = {0};
    const char *const limit[] = {"--max-running", "demo.noop=1000000", NULL};
    if (rounds > 1) rounds = LIMIT_ROUNDS;
    for (int r = 1; r <= rounds; r++) {
        char tag[32];
        snprintf(tag, sizeof tag, "nolimit-%d", r);
        coil_bench_add_sample(&none, end_to_end(exe, tmp, tag, "2", NULL, "demo.noop", NULL,
                                                NOOP_JOBS / scale));
        snprintf(tag, sizeof tag, "limit-%d", r);
        coil_bench_add_sample(&limited, end_to_end(exe, tmp, tag, "2", limit, "demo.noop", NULL,
                                                   NOOP_JOBS / scale));
    }
    if (cmd > 0) coil_bench_figure("command_kind_jobs_per_s", cmd, "jobs/s");
    if (wait > 0) coil_bench_figure("async_kind_concurrent_jobs", wait, "jobs/s");
    coil_bench_ratio("limit_overhead_vs_none", coil_bench_median(&limited),
                     coil_bench_median(&none), true);
    return cmd > 0 && wait > 0 && limited.n == rounds && none.n == rounds;
}
