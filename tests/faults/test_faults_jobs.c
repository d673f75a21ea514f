/* tests/faults/test_faults_jobs.c: the job service and its HTTP API under
 * allocation failure (COIL_TEST_ALLOC_FAULTS): coil_jobs_start() on a fresh
 * SQLite store (a node without workers), mounted on a loopback server, then
 * the API's requests as a client sends them: enqueues (one with an
 * idempotency key, twice; one with a bad body), the list, a job, its
 * cancel, the stats and the durable sequence. Whatever allocation fails,
 * the start fails cleanly or every request gets an answer, the service
 * stops, and nothing leaks. */
#include "faults/alloc_faults.h"
#include "http/loopback_server.h"
#include "test.h"

#include <coil/coil.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

static int f_job(const void *payload, size_t len, coil_job_ctx *ctx) {
    (void)payload, (void)len, (void)ctx;
    return 0;
}
COIL_JOB_HANDLER("f.job", f_job)

/* Every request of the scenario, each on a connection of its own. Returns
 * -ENOMEM if one was answered 500 or 503 (a failed allocation reaching the
 * client, as the server promises), else 0. */
static int requests(int port) {
    static const char *const reqs[] = {
        "POST /jobs/f.job HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 7\r\n\r\n{\"a\":1}",
        "POST /jobs/f.job HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Idempotency-Key: k-1\r\nContent-Length: 7\r\n\r\n{\"b\":2}",
        "POST /jobs/f.job HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Idempotency-Key: k-1\r\nContent-Length: 7\r\n\r\n{\"b\":2}",
        "POST /jobs/f.job HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 5\r\n\r\n{nope",
        "GET /jobs?limit=5 HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /jobs/0123456789abcdef0123456789abcdef HTTP/1.1\r\nHost: x\r\n\r\n",
        "DELETE /jobs/0123456789abcdef0123456789abcdef HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /jobs/stats HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /ids/next HTTP/1.1\r\nHost: x\r\n\r\n",
    };
    int err = 0;
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        int status = coil_faults_exchange(port, reqs[i]);
        if (status == 500 || status == 503) err = -ENOMEM;
    }
    return err;
}

static int jobs_scenario(void *arg) {
    (void)arg;
    char dir[] = "/tmp/coil-faults-jobs-XXXXXX";
    if (!mkdtemp(dir)) return -errno;
    coil_jobs_config jc;
    coil_jobs_config_init(&jc);
    jc.data_dir = dir;
    jc.no_workers = true;
    jc.log = false;
    coil_jobs *jobs = NULL;
    int err = coil_jobs_start(&jc, &jobs);
    loopback_server s = {0};
    if (!err) err = loopback_new(&s);
    if (!err && (err = coil_jobs_mount(jobs, s.srv)) != 0) coil_http_server_free(s.srv);
    int port = err ? err : loopback_start(&s);
    if (port > 0) {
        err = requests(port);
        int stop = loopback_stop(&s);
        if (!err) err = stop;
    } else if (!err) {
        err = port; /* the server could not serve */
    }
    if (jobs) coil_jobs_stop(jobs);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0 && !err) err = -EIO;
    return err;
}

TEST(jobs_api_ends_cleanly_whichever_allocation_fails) {
    coil_faults_sweep("jobs", jobs_scenario, NULL);
}

/* The same once the service runs: the failures land in the requests and
 * in the stop, not in the start. */
typedef struct running {
    char dir[64];
    coil_jobs *jobs;
    loopback_server s;
    int port;
} running;

static int start_running(void *arg) {
    running *r = arg;
    snprintf(r->dir, sizeof r->dir, "/tmp/coil-faults-jobs-XXXXXX");
    if (!mkdtemp(r->dir)) return -errno;
    coil_jobs_config jc;
    coil_jobs_config_init(&jc);
    jc.data_dir = r->dir;
    jc.no_workers = true;
    jc.log = false;
    int err = coil_jobs_start(&jc, &r->jobs);
    if (!err) err = loopback_new(&r->s);
    if (!err) err = coil_jobs_mount(r->jobs, r->s.srv);
    if (!err) r->port = loopback_start(&r->s);
    return err ? err : r->port > 0 ? 0 : r->port;
}

static int serve_and_stop(void *arg) {
    running *r = arg;
    int err = requests(r->port);
    int stop = loopback_stop(&r->s);
    coil_jobs_stop(r->jobs);
    return err ? err : stop;
}

static void remove_running(void *arg) {
    running *r = arg;
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", r->dir);
    if (system(cmd) != 0) fprintf(stderr, "faults: cannot remove %s\n", r->dir);
}

TEST(a_running_jobs_api_ends_cleanly_whichever_allocation_fails) {
    running r = {0};
    coil_fault_stages st = {start_running, serve_and_stop, remove_running};
    coil_faults_sweep_stages("jobs running", &st, &r);
}
