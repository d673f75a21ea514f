/* examples/jobs_server.c: an HTTP server with durable jobs of its own kind.
 *
 *     ./jobs_server [PORT] [DATA_DIR]         (defaults: 8090, ./jobs-data)
 *
 *     curl -si -X POST localhost:8090/jobs/primes.count -d '{"below": 5000000}'
 *     curl -s  localhost:8090/jobs/ID             # status and progress
 *     curl -sN localhost:8090/jobs/ID/events      # the same, live
 *     curl -s  localhost:8090/jobs/ID/result      # {"below": 5000000, "primes": 348513}
 *
 * The handler counts primes by trial division: CPU-bound on purpose. It runs
 * in a worker process, at a lower priority than the server's loops, so the
 * server keeps answering while every core counts. It reports progress and
 * stops when the job is cancelled (DELETE /jobs/ID) or times out.
 */
#include <coil/coil.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { BELOW_MAX = 100000000 };

/* {"below": N} -> N, or -1. A real program would use a JSON parser. */
static long parse_below(const char *json) {
    const char *at = strstr(json, "\"below\"");
    if (!at || !(at = strchr(at, ':'))) return -1;
    char *end;
    long n = strtol(at + 1, &end, 10);
    return end == at + 1 || n < 2 || n > BELOW_MAX ? -1 : n;
}

static int is_prime(long n) {
    if (n < 2) return 0;
    for (long d = 2; d * d <= n; d++)
        if (n % d == 0) return 0;
    return 1;
}

/* Runs in a worker process: plain blocking C. */
static int count_primes(const void *payload, size_t len, coil_job_ctx *ctx) {
    (void)len;
    long below = parse_below(payload); /* the payload is NUL-terminated */
    if (below < 0) {
        coil_job_set_error(ctx, "payload must be {\"below\": N}, 2 <= N <= 100000000");
        return -EINVAL;
    }
    long count = 0, step = below / 20 + 1;
    for (long n = 2; n < below; n++) {
        count += is_prime(n);
        if (n % step == 0) {
            if (coil_job_cancelled(ctx)) return -ECANCELED;
            char msg[64];
            snprintf(msg, sizeof msg, "%ld primes below %ld", count, n);
            coil_job_progress(ctx, (int)(100 * n / below), msg);
        }
    }
    char result[96];
    int n = snprintf(result, sizeof result, "{\"below\": %ld, \"primes\": %ld}", below, count);
    return coil_job_set_result(ctx, result, (size_t)n, "application/json");
}
COIL_JOB_HANDLER("primes.count", count_primes)

int main(int argc, char **argv) {
    coil_worker_main_if_requested(argc, argv); /* worker processes stop here */
    int port = argc > 1 ? atoi(argv[1]) : 8090;
    const char *data = argc > 2 ? argv[2] : "./jobs-data";

    coil_http_config cfg;
    coil_http_config_init(&cfg);
    cfg.port = (uint16_t)port;
    coil_http_server *srv = coil_http_server_new(&cfg);
    if (!srv) return 1;

    coil_jobs_config jc;
    coil_jobs_config_init(&jc);
    jc.data_dir = data;
    coil_jobs *jobs;
    int err = coil_jobs_start(&jc, &jobs); /* opens the store, requeues, starts workers */
    if (err) {
        fprintf(stderr, "jobs_server: %s: %s\n", data, coil_strerror(err));
        coil_http_server_free(srv);
        return 1;
    }
    if ((err = coil_jobs_mount(jobs, srv)) == 0) {
        printf("jobs_server: http://127.0.0.1:%d/jobs (data in %s)\n", port, data);
        fflush(stdout);
        err = coil_http_server_run(srv); /* until SIGTERM or Ctrl-C */
    }
    coil_http_server_free(srv);
    coil_jobs_stop(jobs); /* running jobs get 2 s, then go back to the queue */
    if (err) fprintf(stderr, "jobs_server: %s\n", coil_strerror(err));
    return err ? 1 : 0;
}
