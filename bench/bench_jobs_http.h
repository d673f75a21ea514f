/* bench/bench_jobs_http.h: what the job benchmarks share: figures and
 * their rounds, and a client of the jobs API of a running `coil serve`
 * (one keep-alive connection for single requests, a burst of
 * COIL_BENCH_CLIENTS for enqueue load). Every wait is bounded. */
#ifndef COIL_BENCH_JOBS_HTTP_H
#define COIL_BENCH_JOBS_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "bench/bench_serve.h"

enum {
    COIL_BENCH_CLIENTS = 64,       /* keep-alive connections enqueuing at once */
    COIL_BENCH_ROUNDS_MAX = 8,     /* rounds a figure may have */
    COIL_BENCH_RUN_TIMEOUT_S = 90, /* for any one run to finish */
    COIL_BENCH_POLL_MS = 2,        /* between two looks at the jobs lists */
    COIL_BENCH_BODY_CAP = 8192,
};

/* ------------------------------------------------------------------ figures */

/* The values of one figure over the rounds that measured it. */
typedef struct coil_bench_samples {
    double v[COIL_BENCH_ROUNDS_MAX];
    int n;
} coil_bench_samples;

/* Adds a value (ignored unless > 0, or once the rounds are full). */
void coil_bench_add_sample(coil_bench_samples *s, double v);
/* The median of the rounds, or 0 if none measured the figure. */
double coil_bench_median(const coil_bench_samples *s);
/* Prints "name value unit". */
void coil_bench_figure(const char *name, double v, const char *unit);
/* Prints "name ratio x" where both figures exist; > 1 means coil is better. */
void coil_bench_ratio(const char *name, double coil, double anchor, bool higher_better);
/* The wall clock in ms (job times in the stores are wall-clock ms). */
long long coil_bench_wall_ms(void);

/* ------------------------------------------------------------------ the jobs API */

/* `method` `path` with a JSON `body` (or NULL); the response's JSON
 * document (new reference) into *doc when it parses. Returns the status,
 * or -1. */
int coil_bench_request_json(coil_bench_conn *c, const char *method, const char *path,
                            const char *body, json_t **doc);
/* POST /jobs/KIND?QUERY with `body`; the new job's id into id[33].
 * Returns false after saying why. */
bool coil_bench_enqueue_one(coil_bench_conn *c, const char *kind, const char *query,
                            const char *body, char *id);
/* DELETE /jobs/ID, whatever the job's state (tried twice: a keep-alive
 * connection may have been closed by the server meanwhile). */
void coil_bench_cancel_one(coil_bench_conn *c, const char *id);
/* Polls the jobs lists until no job is queued, running or failed (waiting
 * for a retry); the moment that was seen goes to *t_done (monotonic s).
 * Returns false on an error or after `timeout_s`. */
bool coil_bench_wait_all_finished(uint16_t port, int timeout_s, double *t_done);
/* Whether every job has succeeded; says which other state is not empty. */
bool coil_bench_all_succeeded(uint16_t port);

/* A run of POST /jobs/KIND (demo.noop unless `kind` says otherwise) over
 * COIL_BENCH_CLIENTS keep-alive connections, one request out on each at a
 * time, all driven by the calling thread with poll(2). */
typedef struct coil_bench_burst {
    uint16_t port;
    int total;                 /* jobs to enqueue */
    long long due_wall_ms;     /* > 0: every job asks to run at this wall-clock ms */
    const char *kind;          /* NULL: demo.noop */
    const char *payload;       /* NULL: {} */
    /* If set, called with each 202's body (NUL-terminated) and the times
     * its request went out and its answer came in (monotonic s). */
    void (*on_202)(void *arg, const char *body, double sent_s, double answered_s);
    void *arg;
    int sent;                  /* requests sent */
    int accepted;              /* answered 202 */
    int refused;               /* answered otherwise, or lost with a connection */
    int first_refusal;         /* the status of the first refusal (-1: a broken connection) */
    double t_first, t_last;    /* first request sent, last 202 in (monotonic s) */
} coil_bench_burst;

/* Runs the burst. Returns true if every job was accepted (else says how
 * many were refused, and the first refusal). */
bool coil_bench_run_burst(coil_bench_burst *b);

/* ------------------------------------------------------------------ the kinds' figures */

/* bench_jobs_kinds.c: the command kind's, the awaiting kind's and the
 * per-kind limit's figures (`coil bench jobs`), each on a fresh coil serve
 * (`exe`) with its data under `tmp`. `scale` divides the work (--quick).
 * Returns false if a run failed. */
bool coil_bench_jobs_kinds(const char *exe, const char *tmp, int scale, int rounds);

#endif
