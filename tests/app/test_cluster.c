/* tests/app/test_cluster.c: coil nodes on one PostgreSQL database, as real
 * processes: two `coil serve` and two `coil worker`. Jobs posted to either
 * server all end `succeeded` though a worker node and a serve node are
 * SIGKILLed mid-run; only a job a killed node was running may run twice;
 * a killed worker's jobs run again elsewhere within lease + 1 s.
 * COIL_TEST_PG_ONLY: needs the test server. */
#include "app/serve_harness.h"
#include "jobs/store/store_fixture.h"

enum { JOBS = 600 };

static void start_node(serve_proc *p, const char *cmd, const char *url, const char *workers) {
    serve_init(p);
    p->cmd = cmd;
    const char *extra[] = {"--store", url, "--job-workers", workers, "--no-access-log",
                           "--demo-unsafe", NULL};
    const char *worker_extra[] = {"--store", url, "--job-workers", workers, NULL};
    serve_launch(p, strcmp(cmd, "worker") == 0 ? worker_extra : extra);
}

/* How often `id` occurs in `all`. */
static int effects_of(const char *all, const char *id) {
    int n = 0;
    for (const char *p = all; (p = strstr(p, id)); p += strlen(id)) n++;
    return n;
}

TEST(cluster_survives_killed_nodes_and_runs_each_job_once) {
    char *url = fx_tmpdir();
    serve_proc s1, s2, w1, w2;
    start_node(&s1, "serve", url, "0");
    start_node(&s2, "serve", url, "1");
    start_node(&w1, "worker", url, "2");
    start_node(&w2, "worker", url, "2");
    char effects[128];
    snprintf(effects, sizeof effects, "%s/effects", s1.dir);
    static char ids[JOBS][40];
    for (int i = 0; i < JOBS; i++) {
        char body[256];
        snprintf(body, sizeof body, "{\"path\":\"%s\",\"line\":\"job%d\"}", effects, i);
        serve_reply r;
        serve_proc *to = i % 2 && s2.pid ? &s2 : &s1; /* alternate while both live */
        serve_http(to->port, "POST", "/jobs/demo.append", NULL, body, &r);
        ASSERT_EQ(r.status, 202);
        json_t *doc = serve_json(&r);
        snprintf(ids[i], sizeof ids[i], "%s", json_string_value(json_object_get(doc, "id")));
        json_decref(doc);
        serve_reply_free(&r);
        if (i == JOBS / 3) serve_kill(&w1); /* a worker node dies mid-run */
        if (i == JOBS / 2) serve_kill(&s2); /* and a serve node */
    }
    /* Every job that got a 202 ends succeeded (rescue takes lease + 1 s). */
    coil_time until = coil_now() + COIL_SEC(60);
    long long done = 0, total = fx_pg_sql(url, "SELECT count(*) FROM coil_jobs");
    while ((done = fx_pg_sql(url, "SELECT count(*) FROM coil_jobs WHERE state = 2")) < total) {
        ASSERT(coil_now() < until);
        usleep(100 * 1000);
    }
    ASSERT_EQ(fx_pg_sql(url, "SELECT count(*) FROM coil_jobs WHERE state <> 2"), 0);
    /* Effects: every job at least once; twice only after a rescue (its
     * attempt on a killed node counted). */
    char *all = serve_read_file(effects, NULL);
    int twice = 0;
    for (int i = 0; i < JOBS; i++) {
        if (!ids[i][0]) continue;
        char line[16], sql[160];
        snprintf(line, sizeof line, "job%d\n", i);
        int n = effects_of(all, line);
        ASSERT_GE(n, 1);
        if (n > 1) {
            snprintf(sql, sizeof sql, "SELECT attempts FROM coil_jobs WHERE id = '%s'", ids[i]);
            ASSERT_GE(fx_pg_sql(url, sql), 2);
            twice++;
        }
    }
    fprintf(stderr, "cluster: %lld jobs succeeded, %d ran twice (rescued from a killed node)\n",
            total, twice);
    free(all);
    serve_stop(&s1);
    serve_stop(&w2);
    serve_cleanup(&s1);
    serve_cleanup(&s2);
    serve_cleanup(&w1);
    serve_cleanup(&w2);
    fx_rmtree(url);
}

/* A cancel posted to one server stops the job on the worker node running it. */
TEST(cancel_stops_a_job_on_another_node) {
    char *url = fx_tmpdir();
    serve_proc s, w;
    start_node(&s, "serve", url, "0");
    start_node(&w, "worker", url, "1");
    serve_reply r;
    serve_http(s.port, "POST", "/jobs/demo.sleep", NULL, "{\"ms\":30000}", &r);
    ASSERT_EQ(r.status, 202);
    json_t *doc = serve_json(&r);
    char path[80];
    snprintf(path, sizeof path, "/jobs/%s", json_string_value(json_object_get(doc, "id")));
    json_decref(doc);
    serve_reply_free(&r);
    coil_time until = coil_now() + COIL_SEC(10);
    while (fx_pg_sql(url, "SELECT count(*) FROM coil_jobs WHERE state = 1") == 0) {
        ASSERT(coil_now() < until);
        usleep(20 * 1000);
    }
    serve_http(s.port, "DELETE", path, NULL, NULL, &r);
    ASSERT_EQ(r.status, 202); /* running elsewhere: asked to stop */
    serve_reply_free(&r);
    coil_time t0 = coil_now();
    while (fx_pg_sql(url, "SELECT count(*) FROM coil_jobs WHERE state = 4") == 0) {
        ASSERT(coil_now() < until);
        usleep(20 * 1000);
    }
    ASSERT_LE(coil_now() - t0, COIL_SEC(5)); /* not the 30 s the job would take */
    serve_stop(&s);
    serve_stop(&w);
    serve_cleanup(&s);
    serve_cleanup(&w);
    fx_rmtree(url);
}

/* A worker node SIGKILLed while it runs a job: the job runs again on
 * another node within lease (5 s) + 1 s. */
TEST(killed_workers_jobs_run_again_within_lease_and_a_second) {
    char *url = fx_tmpdir();
    serve_proc s, w1, w2;
    start_node(&s, "serve", url, "0");
    start_node(&w1, "worker", url, "1");
    serve_reply r;
    serve_http(s.port, "POST", "/jobs/demo.sleep", NULL, "{\"ms\":30000}", &r);
    ASSERT_EQ(r.status, 202);
    serve_reply_free(&r);
    coil_time until = coil_now() + COIL_SEC(10);
    while (fx_pg_sql(url, "SELECT count(*) FROM coil_jobs WHERE state = 1") == 0) {
        ASSERT(coil_now() < until);
        usleep(20 * 1000);
    }
    start_node(&w2, "worker", url, "1");
    coil_time t0 = coil_now();
    serve_kill(&w1);
    until = coil_now() + COIL_SEC(20);
    while (fx_pg_sql(url, "SELECT count(*) FROM coil_jobs WHERE state = 1 AND attempts = 2") == 0) {
        ASSERT(coil_now() < until);
        usleep(20 * 1000);
    }
    coil_time took = coil_now() - t0;
    fprintf(stderr, "cluster: rescued and running again %.0f ms after the SIGKILL\n",
            (double)took / 1e6);
    ASSERT_LE(took, COIL_SEC(6));
    ASSERT_EQ(fx_pg_sql(url, "SELECT count(*) FROM coil_jobs WHERE error_msg LIKE 'node lost%'"), 1);
    serve_stop(&s);
    serve_stop(&w2);
    serve_cleanup(&s);
    serve_cleanup(&w1);
    serve_cleanup(&w2);
    fx_rmtree(url);
}
