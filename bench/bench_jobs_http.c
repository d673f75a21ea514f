/* bench/bench_jobs_http.c: figures, rounds and a client of the jobs API,
 * shared by the job benchmarks (bench_jobs_http.h). */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_jobs_http.h"

/* ------------------------------------------------------------------ figures */

void coil_bench_add_sample(coil_bench_samples *s, double v) {
    if (v > 0 && s->n < COIL_BENCH_ROUNDS_MAX) s->v[s->n++] = v;
}

/* The median of the rounds, or 0 if none measured the figure. */
double coil_bench_median(const coil_bench_samples *s) {
    double v[COIL_BENCH_ROUNDS_MAX];
    memcpy(v, s->v, sizeof v);
    qsort(v, (size_t)s->n, sizeof *v, coil_bench_cmp_double);
    if (s->n == 0) return 0;
    return s->n % 2 ? v[s->n / 2] : (v[s->n / 2 - 1] + v[s->n / 2]) / 2;
}

long long coil_bench_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void coil_bench_figure(const char *name, double v, const char *unit) {
    printf(v >= 100 ? "%s %.0f %s\n" : "%s %.3f %s\n", name, v, unit);
    fflush(stdout);
}

/* Prints "name ratio x" where both figures exist. */
void coil_bench_ratio(const char *name, double coil, double anchor, bool higher_better) {
    if (coil <= 0 || anchor <= 0) return;
    printf("%s %.2f x\n", name, higher_better ? coil / anchor : anchor / coil);
    fflush(stdout);
}

/* ------------------------------------------------------------------ the jobs API */

/* The JSON document of a response body, or NULL. */
static json_t *parse_json(const char *body) { return json_loads(body, 0, NULL); }

/* `method` `path` with a JSON `body` (or NULL); the response's JSON
 * document (new reference) into *doc when it parses. Returns the status,
 * or -1. */
int coil_bench_request_json(coil_bench_conn *c, const char *method, const char *path,
                        const char *body, json_t **doc) {
    char out[COIL_BENCH_BODY_CAP];
    int status = coil_bench_conn_request(c, method, path, NULL, body, out, sizeof out);
    *doc = status > 0 ? parse_json(out) : NULL;
    return status;
}

/* POST /jobs/KIND?QUERY with `body`; the new job's id into id[33].
 * Returns false after saying why. */
bool coil_bench_enqueue_one(coil_bench_conn *c, const char *kind, const char *query,
                        const char *body, char *id) {
    char path[256];
    snprintf(path, sizeof path, "/jobs/%s%s%s", kind, query ? "?" : "", query ? query : "");
    json_t *doc;
    int status = coil_bench_request_json(c, "POST", path, body, &doc);
    const char *s = doc ? json_string_value(json_object_get(doc, "id")) : NULL;
    bool ok = status == 202 && s && strlen(s) < 33;
    if (ok) snprintf(id, 33, "%s", s);
    else fprintf(stderr, "coil bench: POST %s answered %d\n", path, status);
    json_decref(doc);
    return ok;
}

/* DELETE /jobs/ID, whatever the job's state. A keep-alive connection idle
 * past the server's idle timeout is closed by then: the failed request
 * closes ours, and a second try opens a new one. A cancel that does not
 * land would leave the job to be retried, taking a worker from the next
 * round. */
void coil_bench_cancel_one(coil_bench_conn *c, const char *id) {
    char path[64];
    snprintf(path, sizeof path, "/jobs/%.32s", id);
    for (int tries = 0; tries < 2; tries++)
        if (coil_bench_conn_request(c, "DELETE", path, NULL, NULL, NULL, 0) > 0) return;
    fprintf(stderr, "coil bench: DELETE %s failed\n", path);
}

/* Whether any job is in `state`: 1, 0, or -1 if the list cannot be had. */
static int any_in_state(coil_bench_conn *c, const char *state) {
    char path[64];
    snprintf(path, sizeof path, "/jobs?state=%s&limit=1", state);
    json_t *doc;
    int status = coil_bench_request_json(c, "GET", path, NULL, &doc);
    json_t *jobs = doc ? json_object_get(doc, "jobs") : NULL;
    int n = status == 200 && json_is_array(jobs) ? (json_array_size(jobs) > 0) : -1;
    json_decref(doc);
    return n;
}

/* Polls the jobs lists until no job is queued (which includes delayed
 * jobs), running or failed (waiting for a retry); the moment that was
 * seen goes to *t_done. Returns false on an error or after `timeout_s`. */
bool coil_bench_wait_all_finished(uint16_t port, int timeout_s, double *t_done) {
    static const char *const unfinished[] = {"queued", "running", "failed"};
    coil_bench_conn c = {.port = port, .fd = -1};
    double deadline = coil_bench_now_s() + timeout_s;
    bool done = false;
    while (!done && coil_bench_now_s() < deadline) {
        done = true;
        for (size_t i = 0; i < sizeof unfinished / sizeof *unfinished && done; i++) {
            int any = any_in_state(&c, unfinished[i]);
            if (any < 0) {
                fprintf(stderr, "coil bench: GET /jobs?state=%s failed\n", unfinished[i]);
                coil_bench_conn_close(&c);
                return false;
            }
            done = !any;
        }
        if (done) *t_done = coil_bench_now_s();
        else coil_bench_sleep_ms(COIL_BENCH_POLL_MS);
    }
    coil_bench_conn_close(&c);
    if (!done) fprintf(stderr, "coil bench: jobs still unfinished after %d s\n", timeout_s);
    return done;
}

/* After a run: whether every job has succeeded (none is in any other
 * state). Says which state is not empty if not. */
bool coil_bench_all_succeeded(uint16_t port) {
    static const char *const others[] = {"queued", "running", "failed", "dead", "cancelled"};
    coil_bench_conn c = {.port = port, .fd = -1};
    bool ok = true;
    for (size_t i = 0; i < sizeof others / sizeof *others; i++) {
        if (any_in_state(&c, others[i]) != 0) {
            fprintf(stderr, "coil bench: after the run, some job is %s\n", others[i]);
            ok = false;
        }
    }
    coil_bench_conn_close(&c);
    return ok;
}

/* ------------------------------------------------------------------ enqueuing at once */

/* One of the enqueuing connections. */
typedef struct client {
    int fd;                    /* -1 when closed */
    bool waiting;              /* a request is out, its answer not yet in */
    double sent_at;            /* when it went out (monotonic s) */
    size_t len;                /* bytes in buf */
    char buf[2048];            /* the answer so far, NUL-terminated */
} client;


static bool client_send(coil_bench_burst *b, client *c) {
    char path[128], req[512];
    const char *kind = b->kind ? b->kind : "demo.noop";
    if (b->due_wall_ms > 0) {
        long long delay = b->due_wall_ms - coil_bench_wall_ms();
        snprintf(path, sizeof path, "/jobs/%s?delay_ms=%lld", kind, delay > 0 ? delay : 0);
    } else {
        snprintf(path, sizeof path, "/jobs/%s", kind);
    }
    const char *body = b->payload ? b->payload : "{}";
    int n = snprintf(req, sizeof req,
                     "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     path, strlen(body), body);
    if (n < 0 || (size_t)n >= sizeof req) return false;
    if (!coil_bench_send_all(c->fd, req, (size_t)n)) return false;
    b->sent++;
    c->waiting = true;
    c->sent_at = coil_bench_now_s();
    return true;
}

/* Takes one whole answer out of c->buf: 1 with its status, 0 if more
 * bytes are needed, -1 if it is malformed (or chunked: coil frames its
 * JSON answers with a Content-Length). A 202's body goes to b->on_202. */
static int client_take(coil_bench_burst *b, client *c, int *status) {
    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (!end) return c->len == sizeof c->buf - 1 ? -1 : 0;
    size_t head = (size_t)(end - c->buf) + 4;
    long body = coil_bench_header_long(c->buf, "Content-Length");
    if (sscanf(c->buf, "HTTP/1.%*d %d", status) != 1 || body < 0 ||
        head + (size_t)body >= sizeof c->buf)
        return -1;
    if (c->len < head + (size_t)body) return 0;
    size_t used = head + (size_t)body;
    if (*status == 202 && b->on_202) {
        char keep = c->buf[used];
        c->buf[used] = '\0';
        b->on_202(b->arg, c->buf + head, c->sent_at, coil_bench_now_s());
        c->buf[used] = keep;
    }
    memmove(c->buf, c->buf + used, c->len - used + 1);
    c->len -= used;
    return 1;
}

static void client_close(coil_bench_burst *b, client *c) {
    if (c->waiting) {
        b->refused++;
        if (!b->first_refusal) b->first_refusal = -1;
    }
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->waiting = false;
}

/* Reads what arrived on c and answers each response with the next request. */
static void client_ready(coil_bench_burst *b, client *c) {
    ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len, 0);
    if (r <= 0) {
        if (r < 0 && errno == EINTR) return;
        client_close(b, c);
        return;
    }
    c->len += (size_t)r;
    c->buf[c->len] = '\0';
    int status, got;
    while ((got = client_take(b, c, &status)) > 0) {
        c->waiting = false;
        if (status == 202) {
            b->accepted++;
            b->t_last = coil_bench_now_s();
        } else {
            b->refused++;
            if (!b->first_refusal) b->first_refusal = status;
        }
        if (b->sent < b->total && !client_send(b, c)) {
            client_close(b, c);
            return;
        }
    }
    if (got < 0) client_close(b, c);
}

/* Runs the burst: COIL_BENCH_CLIENTS connections, one request out on each at a time,
 * all driven by this thread with poll(2). Returns true if every job was
 * accepted. */
bool coil_bench_run_burst(coil_bench_burst *b) {
    client *cl = calloc(COIL_BENCH_CLIENTS, sizeof *cl);
    struct pollfd pf[COIL_BENCH_CLIENTS];
    if (!cl) return false;
    for (int i = 0; i < COIL_BENCH_CLIENTS; i++) cl[i].fd = coil_bench_connect(b->port);
    b->t_first = coil_bench_now_s();
    for (int i = 0; i < COIL_BENCH_CLIENTS && b->sent < b->total; i++)
        if (cl[i].fd >= 0 && !client_send(b, &cl[i])) client_close(b, &cl[i]);
    double deadline = b->t_first + COIL_BENCH_RUN_TIMEOUT_S;
    for (;;) {
        int out = 0;
        for (int i = 0; i < COIL_BENCH_CLIENTS; i++) {
            pf[i] = (struct pollfd){.fd = cl[i].waiting ? cl[i].fd : -1, .events = POLLIN};
            out += cl[i].waiting;
        }
        if (!out) break;
        if (coil_bench_now_s() > deadline) {
            fprintf(stderr, "coil bench: enqueuing took more than %d s\n",
                    COIL_BENCH_RUN_TIMEOUT_S);
            break;
        }
        if (poll(pf, COIL_BENCH_CLIENTS, 1000) < 0 && errno != EINTR) break;
        for (int i = 0; i < COIL_BENCH_CLIENTS; i++)
            if (pf[i].fd >= 0 && pf[i].revents) client_ready(b, &cl[i]);
    }
    for (int i = 0; i < COIL_BENCH_CLIENTS; i++) client_close(b, &cl[i]);
    free(cl);
    if (b->refused || b->accepted < b->total)
        fprintf(stderr, "coil bench: %d of %d jobs accepted; %d refused (first: %d)\n",
                b->accepted, b->total, b->refused, b->first_refusal);
    return b->accepted == b->total;
}

