/* bench/bench_import.c: `coil bench import [--quick] [--no-anchors]`.
 *
 * The seeds' titles exercise, timed. One generated title.basics.tsv.gz
 * (`coil gen titles`, 1,000,000 rows; --quick: 200,000) is used by coil
 * and by every anchor in the same run:
 *
 *   import   `coil import titles` (this binary; its time includes the
 *            indexes and the FTS5 index), then the anchors of
 *            anchors/titles: pandas read_csv + to_sql, the sqlite3 command
 *            line, and plain Python with csv and executemany (none of them
 *            builds a full-text index). Rows/s is rows over wall time;
 *            coil's peak RSS comes from wait4().
 *   serve    `coil serve` over the imported database and the anchors'
 *            FastAPI app (uvicorn, uvloop, httptools, aiosqlite) over the
 *            plain Python importer's, with its FTS5 index built: wrk -t1
 *            -c64 for 5 s, GET /titles/ttNNNNNNN for random existing ids,
 *            and GET /titles?q=wild&limit=20.
 *   health   GET /health one after another (1 ms apart) on coil serve,
 *            while `coil import titles` of the same file runs, and while
 *            the first /titles/stats?by=year|genre|type answers compute.
 *
 * Figures, one per line as "name value unit":
 *
 *   import_rows_per_s, import_rss_max_mb, import_pandas_rows_per_s,
 *   import_sqlite3_cli_rows_per_s, import_python_rows_per_s,
 *   import_vs_best_anchor (x), titles_get_rps, titles_get_p99_ms,
 *   titles_search_rps, fastapi_get_rps, fastapi_get_p99_ms,
 *   fastapi_search_rps, titles_get_rps_vs_fastapi,
 *   titles_search_rps_vs_fastapi (x), health_p99_during_import,
 *   health_p99_during_stats (ms)
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/bench_jobs_http.h"
#include "bench/bench_serve.h"

enum { ROWS = 1000000, QUICK_ROWS = 200000, WRK_SECS = 5, RUN_TIMEOUT = 600 };

static const char *python = "/usr/bin/python3";

typedef struct imp_cfg {
    int rows;
    bool anchors;
    char tmp[PATH_MAX], exe[PATH_MAX], anchors_dir[PATH_MAX], src[PATH_MAX + 32];
} imp_cfg;

/* Runs argv to its end in the scratch directory; returns the wall seconds,
 * or -1 on failure (then its output is shown). *rss_mb (may be NULL) gets
 * its peak RSS. */
static double timed_run(const imp_cfg *b, char *const argv[], double *rss_mb, char *out,
                        size_t cap) {
    double secs = 0;
    int rc = coil_bench_run_measured(argv, b->tmp, RUN_TIMEOUT, b->tmp, out, cap, &secs, rss_mb);
    if (rc != 0) {
        fprintf(stderr, "coil bench: %s failed:\n%s\n", argv[0], out);
        return -1;
    }
    return secs;
}

static double rate(int rows, double secs) { return secs > 0 ? rows / secs : 0; }

/* ------------------------------------------------------------------ wrk */

typedef struct wrk_result {
    double rps, p99_ms;
} wrk_result;

static double value_after(const char *out, const char *key) {
    const char *p = strstr(out, key);
    return p ? strtod(p + strlen(key), NULL) : 0;
}

static bool run_wrk(const imp_cfg *b, uint16_t port, const char *path, wrk_result *w) {
    char cmd[PATH_MAX * 2], out[4096];
    snprintf(cmd, sizeof cmd,
             "TITLES_N=%d WRK_PATH='%s' wrk -t1 -c64 -d%ds --latency -s '%s/titles/wrk_random_ids.lua'"
             " http://127.0.0.1:%u",
             b->rows, path ? path : "", WRK_SECS, b->anchors_dir, (unsigned)port);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    if (timed_run(b, argv, NULL, out, sizeof out) < 0) return false;
    w->rps = value_after(out, "wrk_req_per_s ");
    w->p99_ms = value_after(out, "wrk_p99_ms ");
    if (value_after(out, "wrk_non2xx ") > 0) {
        fprintf(stderr, "coil bench: wrk %s saw non-2xx answers:\n%s\n", path ? path : "ids", out);
        return false;
    }
    return w->rps > 0;
}

/* ------------------------------------------------------------------ health meanwhile */

typedef struct background {
    const imp_cfg *b;
    uint16_t port;
    atomic_bool done;
    bool ok;
} background;

static void *stats_client(void *arg) {
    background *bg = arg;
    static const char *const by[] = {"year", "genre", "type"};
    coil_bench_conn c = {.port = bg->port, .fd = -1};
    bg->ok = true;
    for (int i = 0; i < 3; i++) {
        char path[64], out[256];
        snprintf(path, sizeof path, "/titles/stats?by=%s", by[i]);
        if (coil_bench_conn_request(&c, "GET", path, NULL, NULL, out, sizeof out) != 200)
            bg->ok = false;
    }
    coil_bench_conn_close(&c);
    atomic_store(&bg->done, true);
    return NULL;
}

static void *import_client(void *arg) {
    background *bg = arg;
    char db[PATH_MAX + 32], out[4096];
    snprintf(db, sizeof db, "%s/during.db", bg->b->tmp);
    char *argv[] = {(char *)bg->b->exe, "import", "titles", (char *)bg->b->src, "--db", db, NULL};
    bg->ok = timed_run(bg->b, argv, NULL, out, sizeof out) > 0;
    atomic_store(&bg->done, true);
    return NULL;
}

/* /health p99 while `work` runs on a thread of its own. */
static double health_during(const imp_cfg *b, uint16_t port, void *(*work)(void *)) {
    background bg = {.b = b, .port = port};
    pthread_t t;
    if (pthread_create(&t, NULL, work, &bg) != 0) return -1;
    coil_bench_latency lat;
    bool ok = coil_bench_measure_get_while(port, "/health", RUN_TIMEOUT, 1000, &bg.done, &lat);
    pthread_join(t, NULL);
    if (!ok || !bg.ok) return -1;
    fprintf(stderr, "coil bench:   /health: %ld requests meanwhile, p50 %.3f max %.3f ms\n",
            lat.samples, lat.p50, lat.max);
    return lat.p99;
}

/* ------------------------------------------------------------------ the run */

static bool start_coil(const imp_cfg *b, coil_bench_server *srv, const char *data) {
    int port = coil_bench_free_port();
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    char *argv[] = {(char *)b->exe, "serve", "--listen", listen, "--data", (char *)data,
                    "--job-workers", "1", "--no-access-log", NULL};
    return port > 0 &&
           coil_bench_server_start(b->tmp, srv, "coil serve", "coil-titles", argv, NULL,
                                   (uint16_t)port);
}

static bool start_fastapi(const imp_cfg *b, coil_bench_server *srv, const char *db) {
    int port = coil_bench_free_port();
    char cmd[PATH_MAX * 3], dir[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/titles", b->anchors_dir);
    snprintf(cmd, sizeof cmd,
             "cd '%s' && TITLES_DB='%s' exec %s -m uvicorn fastapi_titles:app --host 127.0.0.1"
             " --port %d --loop uvloop --http httptools --no-access-log --log-level warning",
             dir, db, python, port);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    return port > 0 &&
           coil_bench_server_start(b->tmp, srv, "FastAPI", "fastapi", argv, NULL, (uint16_t)port);
}

int coil_bench_import(int argc, char **argv) {
    imp_cfg b = {.rows = ROWS, .anchors = true};
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) b.rows = QUICK_ROWS;
        else if (strcmp(argv[i], "--no-anchors") == 0) b.anchors = false;
        else {
            fprintf(stderr, "usage: coil bench import [--quick] [--no-anchors]\n");
            return 2;
        }
    }
    ssize_t n = readlink("/proc/self/exe", b.exe, sizeof b.exe - 1);
    if (n <= 0) return 1;
    b.exe[n] = '\0';
    if (!coil_bench_make_tmp(b.tmp, sizeof b.tmp, "import")) return 1;
    if (b.anchors && !coil_bench_find_anchors(b.anchors_dir, sizeof b.anchors_dir)) {
        fprintf(stderr, "coil bench: anchors not found (COIL_ANCHORS_DIR); coil alone\n");
        b.anchors = false;
    }
    coil_bench_trap_signals(true);
    char rows_s[16], out[8192], data[PATH_MAX + 16], db[PATH_MAX + 32];
    snprintf(rows_s, sizeof rows_s, "%d", b.rows);
    snprintf(b.src, sizeof b.src, "%s/title.basics.tsv.gz", b.tmp);
    snprintf(data, sizeof data, "%s/var", b.tmp);
    snprintf(db, sizeof db, "%s/titles.db", data);
    mkdir(data, 0755);
    char *gen[] = {b.exe, "gen", "titles", rows_s, b.src, NULL};
    int rc = 1;
    if (timed_run(&b, gen, NULL, out, sizeof out) < 0) goto out;

    double rss = 0;
    char *imp[] = {b.exe, "import", "titles", b.src, "--db", db, NULL};
    double coil_s = timed_run(&b, imp, &rss, out, sizeof out);
    if (coil_s < 0) goto out;
    fprintf(stderr, "coil bench:   %s", out);
    double coil_rate = rate(b.rows, coil_s), best = 0;
    coil_bench_figure("import_rows_per_s", coil_rate, "rows/s");
    coil_bench_figure("import_rss_max_mb", rss, "MB");
    char pydb[PATH_MAX + 32] = "";
    if (b.anchors) {
        static const struct {
            const char *figure, *script;
            bool py;
        } anchors[] = {
            {"import_pandas_rows_per_s", "import_pandas.py", true},
            {"import_sqlite3_cli_rows_per_s", "import_sqlite3.sh", false},
            {"import_python_rows_per_s", "import_python_sqlite.py", true},
        };
        for (size_t i = 0; i < sizeof anchors / sizeof *anchors; i++) {
            char script[PATH_MAX + 64], adb[PATH_MAX + 32];
            snprintf(script, sizeof script, "%s/titles/%s", b.anchors_dir, anchors[i].script);
            snprintf(adb, sizeof adb, "%s/anchor-%zu.db", b.tmp, i);
            char *py[] = {(char *)python, script, b.src, adb, NULL};
            char *sh[] = {"/bin/bash", script, b.src, adb, NULL};
            double s = timed_run(&b, anchors[i].py ? py : sh, NULL, out, sizeof out);
            if (s < 0) continue;
            coil_bench_figure(anchors[i].figure, rate(b.rows, s), "rows/s");
            if (rate(b.rows, s) > best) best = rate(b.rows, s);
            if (i == 2) snprintf(pydb, sizeof pydb, "%s", adb);
        }
        coil_bench_ratio("import_vs_best_anchor", coil_rate, best, true);
    }

    coil_bench_server srv = {.pid = -1};
    if (!start_coil(&b, &srv, data)) goto out;
    wrk_result get = {0}, search = {0};
    if (run_wrk(&b, srv.port, NULL, &get)) {
        coil_bench_figure("titles_get_rps", get.rps, "req/s");
        coil_bench_figure("titles_get_p99_ms", get.p99_ms, "ms");
    }
    if (run_wrk(&b, srv.port, "/titles?q=wild&limit=20", &search))
        coil_bench_figure("titles_search_rps", search.rps, "req/s");
    double during_stats = health_during(&b, srv.port, stats_client);
    if (during_stats >= 0) coil_bench_figure("health_p99_during_stats", during_stats, "ms");
    double during_import = health_during(&b, srv.port, import_client);
    if (during_import >= 0) coil_bench_figure("health_p99_during_import", during_import, "ms");
    coil_bench_server_stop(&srv);

    if (b.anchors && pydb[0]) {
        char fts[PATH_MAX * 2];
        snprintf(fts, sizeof fts, "%s/titles/fastapi_titles.py", b.anchors_dir);
        char *build[] = {(char *)python, fts, "--build-fts", pydb, NULL};
        coil_bench_server api = {.pid = -1};
        wrk_result fget = {0}, fsearch = {0};
        if (timed_run(&b, build, NULL, out, sizeof out) >= 0 && start_fastapi(&b, &api, pydb)) {
            if (run_wrk(&b, api.port, NULL, &fget)) {
                coil_bench_figure("fastapi_get_rps", fget.rps, "req/s");
                coil_bench_figure("fastapi_get_p99_ms", fget.p99_ms, "ms");
            }
            if (run_wrk(&b, api.port, "/titles?q=wild&limit=20", &fsearch))
                coil_bench_figure("fastapi_search_rps", fsearch.rps, "req/s");
            coil_bench_server_stop(&api);
        }
        coil_bench_ratio("titles_get_rps_vs_fastapi", get.rps, fget.rps, true);
        coil_bench_ratio("titles_search_rps_vs_fastapi", search.rps, fsearch.rps, true);
    }
    rc = 0;
out:
    coil_bench_remove_tree(b.tmp);
    coil_bench_trap_signals(false);
    return rc;
}
