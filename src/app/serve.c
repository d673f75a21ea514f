/* app/serve.c: `coil serve`, the HTTP server with its built-in routes.
 *
 *   coil serve [--listen HOST:PORT] [--data DIR] [--store URL] [--workers N]
 *              [--job-workers N] [--demo-unsafe] [--stall-ms N]
 *              [--no-access-log]
 *   coil worker --store URL [--job-workers N] [--kinds a,b] [--listen HOST:PORT]
 *
 * `coil worker` is a node that only runs jobs, from a store shared with
 * other nodes (PostgreSQL); with --listen it also serves /health and
 * /metrics. `coil serve --job-workers 0` is a node that serves HTTP and
 * runs no jobs.
 *
 * Routes:
 *
 *   GET /health             "ok"
 *   GET /hello              "Hello, World!"
 *   GET /demo/sleep?ms=N    a coroutine that sleeps N ms: the loop serves
 *                           others meanwhile
 *   GET /demo/block?ms=N    a real nanosleep(2) in a blocking handler, which
 *                           runs on the thread pool: the loop is untouched
 *   GET /demo/spin?ms=N     burns the loop for N ms on purpose, so that the
 *                           watchdog's stall report can be seen; only with
 *                           --demo-unsafe (404 otherwise)
 *   GET /metrics            Prometheus metrics
 *   /jobs..., /ids/next     the job system (jobs/api/api.c, docs/jobs.md), with
 *                           the kinds of app/kinds.h; demo.crash and
 *                           demo.append only with --demo-unsafe
 *
 * N is 0 to 60000; anything else gets 400 with a JSON error. One JSON line
 * per request goes to stderr (the access log). SIGTERM or SIGINT drains the
 * in-flight requests and exits 0.
 *
 * The startup line goes to stdout once the server listens, with the real
 * port (useful with --listen 127.0.0.1:0):
 *
 *   coil serve: listening on http://127.0.0.1:8080 (2 workers, data in ./var)
 */
#include <coil/coil.h>
#include <errno.h>
#include <limits.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "app/commands.h"
#include "app/titles_routes.h"
#include "app/dashboard.h"
#include "app/introspect.h"
#include "app/kind_notify.h"
#include "app/kinds.h"
#include "app/kinds_schema.h"

enum { MAX_DEMO_MS = 60000 };

/* Largest request body: room for the largest job payload the kinds take. */
#define SERVE_MAX_BODY ((size_t)16 << 20)

/* What the command line asked for. */
typedef struct serve_opts {
    char host[256];               /* listen address */
    uint16_t port;
    const char *data;             /* data directory */
    const char *store;            /* --store: a URL, or NULL (SQLite in data) */
    char kinds_buf[1024];         /* --kinds, split in place */
    const char *proxies[17];      /* --trusted-proxy, NULL-terminated */
    size_t nproxies;
    const char *kinds[64];        /* NULL-terminated, or kinds[0] NULL: any */
    bool pg;                      /* --store names PostgreSQL */
    bool worker;                  /* coil worker */
    bool listen_given;
    unsigned workers;             /* 0: one per core */
    long job_workers;             /* worker processes; -1: one per core; 0: none */
    bool demo_unsafe;             /* enable /demo/spin */
    long stall_ms;                /* watchdog threshold, -1: the default */
    long lease_ms;                /* --lease-ms; 0: the store's default (5 s) */
    bool access_log;
    bool dashboard;               /* GET / (not with --no-dashboard) */
    app_notify notify;            /* --smtp, --webhook-allow, ... */
    struct {
        char kind[COIL_JOB_KIND_MAX + 1];
        app_schema *schema;
    } schemas[32];                /* --kind-schema */
    size_t nschemas;
    char limit_kinds[32][COIL_JOB_KIND_MAX + 1];
    coil_job_limit limits[32];    /* --max-running */
    size_t nlimits;
} serve_opts;

/* The command, for its messages. */
static const char *cmd_name(const serve_opts *o) {
    return o->worker ? "coil worker" : "coil serve";
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: coil serve [--listen HOST:PORT] [--data DIR] [--store URL] [--workers N]\n"
            "                  [--job-workers N] [--demo-unsafe] [--stall-ms N]\n"
            "                  [--lease-ms N] [--trusted-proxy ADDR]... [--no-access-log]\n"
            "                  [--no-dashboard] [notification flags, below]\n"
            "       coil worker --store URL [--job-workers N] [--kinds a,b] [--listen HOST:PORT]\n"
            "                  [--lease-ms N]\n"
            "\n"
            "  --listen HOST:PORT  address to listen on (default 127.0.0.1:8080;\n"
            "                      port 0 lets the kernel choose); coil worker serves\n"
            "                      /health and /metrics there, and nothing without it\n"
            "  --data DIR          data directory, created if missing (default ./var)\n"
            "  --store URL         where the jobs live: sqlite:DIR (the default, from\n"
            "                      --data), or postgres://... shared by many nodes\n"
            "  --workers N         event loops, one per thread (default: one per core)\n"
            "  --job-workers N     job worker processes (default: one per core; 0: this\n"
            "                      node runs no jobs)\n"
            "  --kinds a,b         the job kinds this node runs (default: all)\n"
            "  --demo-unsafe       enable GET /demo/spin, which blocks a loop on purpose,\n"
            "                      and the job kinds demo.crash and demo.append\n"
            "  --stall-ms N        watchdog threshold in ms (0 turns it off)\n"
            "  --lease-ms N        PostgreSQL: a node silent this long is presumed dead\n"
            "                      and its jobs rescued (default 5000, at least 500); the\n"
            "                      heartbeat renews it every fifth of that, 1 s at most\n"
            "  --trusted-proxy A   believe X-Forwarded-For from the proxy at address A\n"
            "                      (repeatable): it names the client, in the access log\n"
            "                      and GET /whoami\n"
            "  --no-access-log     do not log each request to stderr\n"
            "  --no-dashboard      do not serve the dashboard page at GET /\n"
            "  --command-kind D    a job kind that is a program: 'NAME[:TYPE]=PROGRAM ARG...'\n"
            "                      (payload on stdin, result on stdout; repeatable)\n"
            "  --kinds-file FILE   command kinds, one definition a line (quotes allowed)\n"
            "  --kind-schema K=F   check kind K's payloads against the JSON Schema in F\n"
            "                      before the 202 (a subset: docs/jobs.md)\n"
            "  --max-running K=N   at most N jobs of kind K run at once on the store (on\n"
            "                      PostgreSQL across every node: give them all the same)\n"
            "\n"
            "Notifications (POST /jobs/{kind}?notify=mailto:ADDR or ?notify=https://URL):\n"
            "%s",
            app_notify_usage);
}

/* ------------------------------------------------------------------ handlers */

/* The seed's "user info accessible from any part of the code": a
 * middleware puts it in a task-local, which every subtask of the handler
 * inherits and every function it offloads to the thread pool can read. */
typedef struct user_info {
    const char *request_id;
    const char *client;           /* coil_http_client_addr */
    const char *user;             /* the X-User header, or "anonymous" */
} user_info;

COIL_LOCAL_KEY(user_info_key, "user info");

static int user_info_mw(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)arg;
    const char *user = coil_http_header(req, "X-User");
    user_info info = {.request_id = coil_http_request_id(req),
                      .client = coil_http_client_addr(req),
                      .user = user && *user ? user : "anonymous"};
    int err = coil_local_set(&user_info_key, &info); /* alive until the chain returns */
    if (err) return err;
    err = coil_http_next(req, res);
    coil_local_set(&user_info_key, NULL);
    return err;
}

static json_t *user_info_json(const char *seen_in) {
    const user_info *u = coil_local_get(&user_info_key);
    return u ? json_pack("{s:s,s:s?,s:s,s:s}", "seen_in", seen_in, "request_id", u->request_id,
                         "client", u->client, "user", u->user)
             : json_pack("{s:s,s:n}", "seen_in", seen_in, "user");
}

static coil_result whoami_child(void *arg) {
    (void)arg;
    return coil_ok(user_info_json("a subtask"));
}

static void *whoami_offloaded(void *arg) {
    (void)arg;
    return user_info_json("a thread-pool function");
}

/* What the request's user info is, as the handler, a subtask and an
 * offloaded function each see it. */
static int whoami(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)req;
    (void)arg;
    json_t *seen = json_array();
    json_array_append_new(seen, user_info_json("the handler"));
    coil_task *t = coil_spawn(whoami_child, NULL);
    coil_result r = {0};
    if (t && coil_join(t, &r) == 0 && r.value) json_array_append_new(seen, r.value);
    void *v = NULL;
    if (coil_to_thread(whoami_offloaded, NULL, &v) == 0 && v) json_array_append_new(seen, v);
    json_t *doc = json_pack("{s:o}", "seen", seen);
    int err = coil_http_respond_json(res, 200, doc);
    json_decref(doc);
    return err;
}

/* "ok", or 503 while the job store cannot be reached (PostgreSQL down). */
static int health(coil_http_request *req, coil_http_response *res, void *arg) {
    coil_jobs *jobs = arg;
    if (jobs && !coil_jobs_store_available(jobs)) {
        coil_http_set_header(res, "Retry-After", "1");
        return coil_http_respond_error(res, 503, "the job store is unavailable");
    }
    return coil_http_respond_text(res, 200, "ok");
}

static int hello(coil_http_request *req, coil_http_response *res, void *arg) {
    return coil_http_respond_text(res, 200, "Hello, World!");
}

/* The ms=N query parameter, 0..MAX_DEMO_MS. Returns it, or -1 after
 * answering 400. Suspends (when it answers). */
static long demo_ms(coil_http_request *req, coil_http_response *res) {
    char buf[16];
    ssize_t n = coil_http_query_param(req, "ms", buf, sizeof buf);
    if (n > 0) {
        char *end;
        errno = 0;
        long ms = strtol(buf, &end, 10);
        if (errno == 0 && *end == '\0' && buf[0] >= '0' && buf[0] <= '9' && ms <= MAX_DEMO_MS)
            return ms;
    }
    coil_http_respond_error(res, 400, "ms must be an integer from 0 to 60000");
    return -1;
}

/* {"<key>": ms} with status 200. */
static int respond_ms(coil_http_response *res, const char *key, long ms) {
    json_t *doc = json_pack("{sI}", key, (json_int_t)ms);
    if (!doc) return -ENOMEM;
    int err = coil_http_respond_json(res, 200, doc);
    json_decref(doc);
    return err;
}

static int demo_sleep(coil_http_request *req, coil_http_response *res, void *arg) {
    long ms = demo_ms(req, res);
    if (ms < 0) return 0;
    int err = coil_sleep(COIL_MSEC(ms)); /* suspends this request only */
    if (err) return err;
    return respond_ms(res, "slept_ms", ms);
}

/* Registered with COIL_HTTP_BLOCKING: runs on a pool thread. */
static int demo_block(coil_http_request *req, coil_http_response *res, void *arg) {
    long ms = demo_ms(req, res);
    if (ms < 0) return 0;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    return respond_ms(res, "blocked_ms", ms);
}

/* Holds the loop: no other request of this loop is served meanwhile. */
static int demo_spin(coil_http_request *req, coil_http_response *res, void *arg) {
    long ms = demo_ms(req, res);
    if (ms < 0) return 0;
    coil_time until = coil_now() + COIL_MSEC(ms);
    volatile uint64_t burn = 0;
    while (coil_now() < until) burn++;
    return respond_ms(res, "spun_ms", ms);
}

/* ------------------------------------------------------------------ startup line */

/* The port is known only once coil_http_server_run() has listened, and run
 * blocks; a small thread waits for it and prints the startup line. */
typedef struct announcer {
    coil_http_server *srv;
    const serve_opts *opts;
    atomic_bool done;             /* run returned: stop waiting */
} announcer;

static void *announce(void *arg) {
    announcer *a = arg;
    for (int i = 0; i < 30000 && !atomic_load(&a->done); i++) { /* 30 s at most */
        int port = coil_http_server_port(a->srv);
        if (port >= 0) {
            unsigned w = a->opts->workers;
            if (w == 0) { /* the server's default: one per core */
                long n = sysconf(_SC_NPROCESSORS_ONLN);
                w = n > 0 ? (unsigned)n : 1;
            }
            bool v6 = strchr(a->opts->host, ':') != NULL;
            bool pg = a->opts->pg;
            printf("coil %s: listening on http://%s%s%s:%d (%u worker%s, %s %s)\n",
                   a->opts->worker ? "worker" : "serve", v6 ? "[" : "", a->opts->host,
                   v6 ? "]" : "", port, w, w == 1 ? "" : "s", pg ? "jobs in" : "data in",
                   pg ? "PostgreSQL" : a->opts->data);
            fflush(stdout);
            return NULL;
        }
        usleep(1000);
    }
    return NULL;
}

/* ------------------------------------------------------------------ options */

/* HOST:PORT or [V6HOST]:PORT. Returns 0 or -EINVAL. */
static int parse_listen(const char *s, serve_opts *o) {
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s) return -EINVAL;
    const char *h = s;
    size_t hlen = (size_t)(colon - s);
    if (h[0] == '[') {
        if (hlen < 3 || h[hlen - 1] != ']') return -EINVAL;
        h++;
        hlen -= 2;
    }
    if (hlen >= sizeof o->host) return -EINVAL;
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno || *end || colon[1] < '0' || colon[1] > '9' || port > 65535) return -EINVAL;
    memcpy(o->host, h, hlen);
    o->host[hlen] = '\0';
    o->port = (uint16_t)port;
    return 0;
}

static bool parse_long(const char *s, long max, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || s[0] < '0' || s[0] > '9' || v > max) return false;
    *out = v;
    return true;
}

/* Returns 0, or the exit status for a usage error (2) or help (-1). */
static int parse_args(int argc, char **argv, serve_opts *o) {
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return -1;
        } else if (strcmp(a, "--demo-unsafe") == 0) {
            o->demo_unsafe = true;
        } else if (strcmp(a, "--no-access-log") == 0) {
            o->access_log = false;
        } else if (strcmp(a, "--no-dashboard") == 0) {
            o->dashboard = false;
        } else if (!v) {
            fprintf(stderr, "%s: %s needs a value\n", cmd_name(o), a);
            return 2;
        } else if (strcmp(a, "--listen") == 0 && parse_listen(v, o) == 0) {
            o->listen_given = true;
            i++;
        } else if (strcmp(a, "--data") == 0 && v[0]) {
            o->data = v;
            i++;
        } else if (strcmp(a, "--workers") == 0 && parse_long(v, 1024, &n) && n > 0) {
            o->workers = (unsigned)n;
            i++;
        } else if (strcmp(a, "--job-workers") == 0 && parse_long(v, 256, &n)) {
            o->job_workers = n;
            i++;
        } else if (strcmp(a, "--store") == 0 && v[0]) {
            o->store = v;
            i++;
        } else if (strcmp(a, "--trusted-proxy") == 0 && v[0] && o->nproxies < 16) {
            o->proxies[o->nproxies++] = v;
            o->proxies[o->nproxies] = NULL;
            i++;
        } else if (strcmp(a, "--kinds") == 0 && v[0] && strlen(v) < sizeof o->kinds_buf) {
            snprintf(o->kinds_buf, sizeof o->kinds_buf, "%s", v);
            size_t k = 0;
            for (char *save = NULL, *t = strtok_r(o->kinds_buf, ",", &save);
                 t && k + 1 < sizeof o->kinds / sizeof *o->kinds; t = strtok_r(NULL, ",", &save))
                o->kinds[k++] = t;
            o->kinds[k] = NULL;
            i++;
        } else if (strcmp(a, "--command-kind") == 0) {
            int err = coil_jobs_command_kind(v);
            if (err) {
                fprintf(stderr, "%s: --command-kind %s: %s\n", cmd_name(o), v,
                        err == -EINVAL ? "expected NAME[:TYPE]=PROGRAM ARG..."
                                       : coil_strerror(err));
                return 2;
            }
            i++;
        } else if (strcmp(a, "--kind-schema") == 0) {
            const char *eq = strchr(v, '=');
            char why[512];
            if (!eq || eq == v || (size_t)(eq - v) > COIL_JOB_KIND_MAX || o->nschemas == 32) {
                fprintf(stderr, "%s: --kind-schema is NAME=FILE (32 at most)\n", cmd_name(o));
                return 2;
            }
            app_schema *sc = app_schema_load(eq + 1, why, sizeof why);
            if (!sc) {
                fprintf(stderr, "%s: --kind-schema %s\n", cmd_name(o), why);
                return 2;
            }
            snprintf(o->schemas[o->nschemas].kind, sizeof o->schemas[0].kind, "%.*s",
                     (int)(eq - v), v);
            o->schemas[o->nschemas++].schema = sc;
            i++;
        } else if (strcmp(a, "--max-running") == 0) {
            const char *eq = strchr(v, '=');
            long max = 0;
            if (!eq || eq == v || (size_t)(eq - v) > COIL_JOB_KIND_MAX || o->nlimits == 32 ||
                !parse_long(eq + 1, 1000000, &max) || max < 1) {
                fprintf(stderr, "%s: --max-running is KIND=N, N from 1 (32 kinds at most)\n",
                        cmd_name(o));
                return 2;
            }
            char *kind = o->limit_kinds[o->nlimits];
            snprintf(kind, sizeof o->limit_kinds[0], "%.*s", (int)(eq - v), v);
            o->limits[o->nlimits++] = (coil_job_limit){kind, (unsigned)max};
            i++;
        } else if (strcmp(a, "--kinds-file") == 0) {
            char why[512];
            if (coil_jobs_command_kinds_file(v, why, sizeof why) != 0) {
                fprintf(stderr, "%s: --kinds-file %s\n", cmd_name(o), why);
                return 2;
            }
            i++;
        } else if (strcmp(a, "--stall-ms") == 0 && parse_long(v, 3600000, &n)) {
            o->stall_ms = n;
            i++;
        } else if (strcmp(a, "--lease-ms") == 0 && parse_long(v, 3600000, &n) && n >= 500) {
            o->lease_ms = n;
            i++;
        } else {
            const char *why;
            int taken = app_notify_flag(&o->notify, a, v, &why);
            if (taken < 0) fprintf(stderr, "%s: %s\n", cmd_name(o), why);
            if (taken == 0) fprintf(stderr, "%s: bad option or value: %s %s\n", cmd_name(o), a, v);
            if (taken <= 0) {
                usage(stderr);
                return 2;
            }
            i++;
        }
    }
    const char *why;
    if (app_notify_check(&o->notify, &why) != 0) {
        fprintf(stderr, "%s: %s\n", cmd_name(o), why);
        return 2;
    }
    return 0;
}

/* mkdir -p. Returns 0 or a negative errno. */
static int make_dirs(const char *path) {
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return -EINVAL;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -errno;
        buf[i] = c;
    }
    struct stat st;
    if (stat(path, &st) != 0) return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* ------------------------------------------------------------------ jobs */

/* The job API takes the kinds of app/kinds.h, the unsafe ones only with
 * --demo-unsafe, and checks their payloads. */
static int accept_job(void *arg, const char *kind, const void *json, char *msg, size_t cap) {
    const serve_opts *o = arg;
    for (size_t i = 0; i < o->nschemas; i++)
        if (strcmp(o->schemas[i].kind, kind) == 0 &&
            app_schema_check(o->schemas[i].schema, json, msg, cap) != 0)
            return -EINVAL;
    const app_kind *k = coil_app_kind_find(kind);
    if (!k && coil_jobs_is_command_kind(kind)) return 0; /* the program checks its input */
    if (!k || (k->unsafe && !o->demo_unsafe)) return -ENOENT;
    return k->validate ? k->validate(json, msg, cap) : 0;
}

static int start_jobs(const serve_opts *o, coil_jobs **out) {
    /* The job kinds that read the data directory (titles.import) learn it
     * here: the worker processes inherit the environment. */
    char abs[PATH_MAX];
    if (realpath(o->data, abs)) setenv("COIL_DATA_DIR", abs, 1);
    coil_jobs_config jc;
    coil_jobs_config_init(&jc);
    jc.data_dir = o->data;
    jc.store = o->store;
    jc.pool.workers = o->job_workers > 0 ? (size_t)o->job_workers : 0;
    jc.no_workers = o->job_workers == 0;
    jc.kinds = o->kinds[0] ? o->kinds : NULL;
    jc.limits = o->limits;
    jc.nlimits = o->nlimits;
    if (o->lease_ms) {
        jc.lease = COIL_MSEC(o->lease_ms);
        jc.heartbeat = COIL_MSEC(o->lease_ms / 5 < 1000 ? o->lease_ms / 5 : 1000);
    }
    jc.accept = accept_job;
    jc.accept_arg = (void *)o;
    /* The delivering kinds read their settings in the workers. */
    app_notify_export(&o->notify);
    jc.notify = app_notify_target;
    jc.notify_arg = (void *)&o->notify;
    int err = coil_jobs_start(&jc, out);
    if (err)
        fprintf(stderr, "%s: cannot start the jobs (%s): %s\n", cmd_name(o),
                o->pg ? "PostgreSQL" : o->data, coil_strerror(err));
    return err;
}

/* ------------------------------------------------------------------ command */

static int add_routes(coil_http_server *srv, const serve_opts *o, coil_jobs *jobs) {
    int err = coil_http_route(srv, "GET", "/health", health, jobs, 0);
    if (!err) err = coil_http_route(srv, "GET", "/metrics", coil_http_metrics, NULL, 0);
    if (!err) err = app_debug_mount(srv);
    if (o->worker) return err; /* a worker node serves nothing else */
    if (!err) err = coil_http_use(srv, user_info_mw, NULL);
    if (!err) err = coil_http_route(srv, "GET", "/whoami", whoami, NULL, 0);
    if (!err) err = coil_http_route(srv, "GET", "/hello", hello, NULL, 0);
    if (!err) err = coil_http_route(srv, "GET", "/demo/sleep", demo_sleep, NULL, 0);
    if (!err)
        err = coil_http_route(srv, "GET", "/demo/block", demo_block, NULL, COIL_HTTP_BLOCKING);
    if (!err && o->demo_unsafe) err = coil_http_route(srv, "GET", "/demo/spin", demo_spin, NULL, 0);
    if (!err) err = coil_jobs_mount(jobs, srv);
    return err;
}

/* The HTTP side of a node: serve (all routes) or worker (/health and
 * /metrics), until SIGTERM or SIGINT. Returns the exit status. */
static int run_http(serve_opts *o, coil_jobs *jobs) {
    coil_http_config cfg;
    coil_http_config_init(&cfg);
    cfg.host = o->host;
    cfg.port = o->port;
    cfg.workers = o->workers;
    cfg.access_log = o->access_log;
    cfg.handle_signals = true;
    cfg.trusted_proxies = o->nproxies ? o->proxies : NULL;
    /* A report.pdf of 100,000 rows is a payload of a few MiB. */
    cfg.max_body = SERVE_MAX_BODY;
    coil_http_server *srv = coil_http_server_new(&cfg);
    if (!srv) {
        fprintf(stderr, "%s: %s\n", cmd_name(o), strerror(errno));
        return 1;
    }
    int err = add_routes(srv, o, jobs);
    app_titles *titles = NULL;
    app_dashboard *dash = NULL;
    if (!err && !o->worker) err = app_titles_mount(srv, o->data, &titles);
    if (!err && !o->worker && o->dashboard) err = app_dashboard_mount(srv, jobs, &dash);
    if (err) {
        fprintf(stderr, "%s: adding routes: %s\n", cmd_name(o), coil_strerror(err));
        coil_http_server_free(srv);
        app_dashboard_free(dash);
        app_titles_free(titles);
        return 1;
    }
    /* `coil ps` asks here; without it the server still serves. */
    app_ctl *ctl = NULL;
    if (!o->pg || access(o->data, W_OK) == 0) (void)app_ctl_start(o->data, &ctl);
    announcer a = {.srv = srv, .opts = o};
    pthread_t tid;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* signals are for the server */
    bool announcing = pthread_create(&tid, NULL, announce, &a) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    err = coil_http_server_run(srv);
    atomic_store(&a.done, true);
    if (announcing) pthread_join(tid, NULL);
    app_ctl_stop(ctl);
    coil_http_server_free(srv);
    app_dashboard_free(dash);
    app_titles_free(titles);
    if (err) {
        fprintf(stderr, "%s: %s:%u: %s\n", cmd_name(o), o->host, (unsigned)o->port,
                coil_strerror(err));
        return 1;
    }
    return 0;
}

static void free_opts(serve_opts *o) {
    for (size_t i = 0; i < o->nschemas; i++) app_schema_free(o->schemas[i].schema);
    o->nschemas = 0;
}

/* Where a SQLite store lives: --store sqlite:DIR names it, else --data. */
static int settle_store(serve_opts *o) {
    if (o->store && strncmp(o->store, "sqlite:", 7) == 0) o->data = o->store + 7;
    o->pg = coil_jobs_store_is_postgres(o->store);
    if (o->store && !o->pg && strncmp(o->store, "sqlite:", 7) != 0) {
        fprintf(stderr, "%s: --store %s: expected sqlite:DIR, postgres://... or postgresql://...\n",
                cmd_name(o), o->store);
        return 2;
    }
    if (o->pg) return 0;
    int err = make_dirs(o->data);
    if (err) {
        fprintf(stderr, "%s: data directory %s: %s\n", cmd_name(o), o->data, strerror(-err));
        return 1;
    }
    return 0;
}

int coil_cmd_worker(int argc, char **argv) {
    serve_opts o = {.host = "127.0.0.1", .port = 8080, .data = "./var", .stall_ms = -1,
                    .job_workers = -1, .worker = true};
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;
    if (!o.store) {
        fprintf(stderr, "coil worker: --store URL is required: the store the serve nodes use\n");
        return 2;
    }
    if (o.job_workers == 0) {
        fprintf(stderr, "coil worker: --job-workers must be at least 1\n");
        return 2;
    }
    if ((rc = settle_store(&o)) != 0) return rc;
    if (o.stall_ms >= 0) coil_watchdog_set_threshold(COIL_MSEC(o.stall_ms));
    /* Without --listen the main thread only waits for SIGTERM or SIGINT:
     * blocked here, before any thread starts, so that every thread inherits
     * the mask and sigwait() gets them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    if (!o.listen_given) pthread_sigmask(SIG_BLOCK, &stop, NULL);
    coil_jobs *jobs = NULL;
    if (start_jobs(&o, &jobs) != 0) return 1;
    if (o.listen_given) {
        rc = run_http(&o, jobs);
    } else {
        printf("coil worker: running jobs (%ld worker%s, jobs in %s)\n", o.job_workers,
               o.job_workers == 1 ? "" : "s",
               o.pg ? "PostgreSQL" : o.data);
        fflush(stdout);
        int sig;
        while (sigwait(&stop, &sig) != 0) {
        }
    }
    coil_jobs_stop(jobs);
    free_opts(&o);
    return rc;
}

int coil_cmd_serve(int argc, char **argv) {
    serve_opts o = {.host = "127.0.0.1", .port = 8080, .data = "./var", .stall_ms = -1,
                    .access_log = true, .job_workers = -1, .dashboard = true};
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;
    if ((rc = settle_store(&o)) != 0) return rc;
    if (o.stall_ms >= 0) coil_watchdog_set_threshold(COIL_MSEC(o.stall_ms));
    coil_jobs *jobs = NULL;
    if (start_jobs(&o, &jobs) != 0) return 1;
    rc = run_http(&o, jobs);
    coil_jobs_stop(jobs);
    free_opts(&o);
    return rc;
}
