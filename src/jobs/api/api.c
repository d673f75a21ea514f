/* jobs/api/api.c: the job system's HTTP routes (coil_jobs_mount).
 *
 *   POST   /jobs/{kind}         enqueue: 202, Location: /jobs/{id}
 *   GET    /jobs                list, newest first: ?state=&kind=&limit=&cursor=
 *   GET    /jobs/stats          counts by state, scheduler and store counters
 *   GET    /jobs/dump           the stall dump (coil_jobs_dump), as text
 *   GET    /jobs/{id}           the status document (api_doc.c)
 *   GET    /jobs/{id}/result    the result, with its content type
 *   GET    /jobs/{id}/events    Server-Sent Events (api_events.c)
 *   DELETE /jobs/{id}           cancel
 *   GET    /ids/next            the durable sequence
 *
 * and a section of GET /metrics (coil_jobs_*).
 *
 * Handlers run on the server's loops and call the store directly. Every
 * error answer is JSON, {"error": "..."}; a store that cannot write answers
 * 503 with Retry-After, and nothing of the request remains.
 */
#include "jobs/service/service.h"
#include "jobs/pool/worker.h"

#include <coil/http.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Answers with the error `err` of the store (or of enqueue), as JSON. */
static int respond_store_error(coil_http_response *res, int err, const char *what) {
    int status = coil__jobs_http_status(err);
    char msg[160];
    snprintf(msg, sizeof msg, "%s: %s", what, coil_strerror(err));
    if (status == 503) coil_http_set_header(res, "Retry-After", "1");
    return coil_http_respond_error(res, status, msg);
}

/* Sends `doc` (a json_t *, taken) with `status`. */
static int respond_doc(coil_http_response *res, int status, json_t *doc) {
    if (!doc) return coil_http_respond_error(res, 500, "out of memory");
    int err = coil_http_respond_json(res, status, doc);
    json_decref(doc);
    return err;
}

/* ------------------------------------------------------------------ enqueue */

/* An integer query option in [min, max]. Returns 0 (absent: *out unchanged),
 * or -EINVAL after answering 400. Suspends (when it answers). */
static int query_long(coil_http_request *req, coil_http_response *res, const char *name,
                      long long min, long long max, long long *out) {
    char buf[32];
    ssize_t n = coil_http_query_param(req, name, buf, sizeof buf);
    if (n == -ENOENT) return 0;
    if (n > 0) {
        char *end;
        errno = 0;
        long long v = strtoll(buf, &end, 10);
        if (errno == 0 && *end == '\0' && v >= min && v <= max) {
            *out = v;
            return 0;
        }
    }
    char msg[128];
    snprintf(msg, sizeof msg, "%s must be an integer from %lld to %lld", name, min, max);
    coil_http_respond_error(res, 400, msg);
    return -EINVAL;
}

/* Reads the enqueue options of the query and headers. Returns 0 or -EINVAL
 * after answering 400. Suspends (when it answers). */
static int enqueue_opts(coil_http_request *req, coil_http_response *res,
                        coil_jobs_enqueue_opts *o) {
    long long prio = 0, delay = 0, attempts = 0, timeout = 0, backoff = 0, cap = 0;
    if (query_long(req, res, "priority", -1000, 1000, &prio) ||
        query_long(req, res, "delay_ms", 0, 30LL * 24 * 3600 * 1000, &delay) ||
        query_long(req, res, "max_attempts", 1, 100, &attempts) ||
        query_long(req, res, "timeout_ms", 0, 24LL * 3600 * 1000, &timeout) ||
        query_long(req, res, "backoff_ms", 1, 24LL * 3600 * 1000, &backoff) ||
        query_long(req, res, "backoff_cap_ms", 1, 7LL * 24 * 3600 * 1000, &cap))
        return -EINVAL;
    o->priority = (int)prio;
    o->delay = COIL_MSEC(delay);
    o->max_attempts = (int)attempts;
    o->timeout = COIL_MSEC(timeout);
    o->backoff = COIL_MSEC(backoff);
    o->backoff_cap = COIL_MSEC(cap);
    o->idempotency_key = coil_http_header(req, "Idempotency-Key");
    if (o->idempotency_key) {
        size_t n = strlen(o->idempotency_key);
        bool printable = n > 0 && n <= COIL__JOB_KEY_MAX;
        for (size_t i = 0; printable && i < n; i++)
            printable = o->idempotency_key[i] > 0x20 && o->idempotency_key[i] < 0x7f;
        if (!printable) {
            coil_http_respond_error(res, 400,
                                    "Idempotency-Key must be 1 to 255 printable characters");
            return -EINVAL;
        }
    }
    return 0;
}

/* Whether the job API takes `kind` with `payload`. Returns 0, or an error
 * after answering 404 or 422. Suspends (when it answers). */
static int check_payload(coil_jobs *j, coil_http_response *res, const char *kind,
                         const json_t *payload) {
    char msg[256] = "";
    int err;
    if (j->cfg.accept) {
        err = j->cfg.accept(j->cfg.accept_arg, kind, payload, msg, sizeof msg);
    } else {
        err = json_is_object(payload) ? 0 : -EINVAL;
        if (err) snprintf(msg, sizeof msg, "the payload must be a JSON object");
    }
    if (err == 0) return 0;
    if (err == -ENOENT) {
        snprintf(msg, sizeof msg, "no job kind called \"%s\"", kind);
        coil_http_respond_error(res, 404, msg);
    } else {
        coil_http_respond_error(res, 422, msg[0] ? msg : "the payload does not fit the job kind");
    }
    return err;
}

/* The notify=TARGET parameters, as follow-ups of the job. */
enum { NOTIFY_PAYLOAD_MAX = 2048, NOTIFY_TARGET_MAX = 1024 };

typedef struct notify_set {
    coil_job_followup followups[COIL__FOLLOWUPS_MAX];
    size_t n;
    char *payloads; /* COIL__FOLLOWUPS_MAX of NOTIFY_PAYLOAD_MAX bytes, malloc'd */
} notify_set;

/* Reads every notify= of the query into ns. Returns 0, or -EINVAL after
 * answering 422 (or 400). Suspends (when it answers). */
static int notify_opts(coil_jobs *j, coil_http_request *req, coil_http_response *res,
                       const char *kind, const json_t *payload, notify_set *ns) {
    char target[NOTIFY_TARGET_MAX], msg[256];
    for (size_t i = 0;; i++) {
        ssize_t n = coil_http_query_param_at(req, "notify", i, target, sizeof target);
        if (n == -ENOENT) return 0;
        if (n < 0) {
            coil_http_respond_error(res, 422, "a notify target is too long");
            return -EINVAL;
        }
        if (!j->cfg.notify) {
            coil_http_respond_error(res, 422, "this server sends no notifications");
            return -EINVAL;
        }
        if (ns->n == COIL__FOLLOWUPS_MAX) {
            coil_http_respond_error(res, 422, "at most 16 notify targets");
            return -EINVAL;
        }
        if (!ns->payloads && !(ns->payloads = malloc(COIL__FOLLOWUPS_MAX * NOTIFY_PAYLOAD_MAX))) {
            coil_http_respond_error(res, 503, "out of memory");
            return -ENOMEM;
        }
        msg[0] = '\0';
        coil_job_followup *f = &ns->followups[ns->n];
        memset(f, 0, sizeof *f);
        char *buf = ns->payloads + ns->n * NOTIFY_PAYLOAD_MAX;
        buf[0] = '\0';
        if (j->cfg.notify(j->cfg.notify_arg, kind, payload, target, f, buf, NOTIFY_PAYLOAD_MAX,
                          msg, sizeof msg) != 0) {
            coil_http_respond_error(res, 422, msg[0] ? msg : "this notify target is refused");
            return -EINVAL;
        }
        if (buf[0]) f->payload = buf;
        ns->n++;
    }
}

/* Whether a request that changes jobs comes from another site's page: a
 * browser names the page's origin in Origin (and says cross-site in
 * Sec-Fetch-Site), and a form or a fetch from elsewhere must not cancel or
 * retry jobs with the user's access. Requests without Origin (curl, other
 * programs) are not a browser's cross-site request. Answers 403 if so. */
static bool refuse_cross_site(coil_http_request *req, coil_http_response *res) {
    const char *origin = coil_http_header(req, "Origin");
    const char *site = coil_http_header(req, "Sec-Fetch-Site");
    const char *host = coil_http_header(req, "Host");
    bool cross = site && strcmp(site, "cross-site") == 0;
    if (origin && !cross) {
        const char *after = strstr(origin, "://");
        cross = !after || !host || strcmp(after + 3, host) != 0;
    }
    if (cross) coil_http_respond_error(res, 403, "cross-site request refused");
    return cross;
}

static int post_job(coil_http_request *req, coil_http_response *res, void *arg) {
    coil_jobs *j = arg;
    if (refuse_cross_site(req, res)) return 0;
    const char *kind = coil_http_param(req, "kind");
    if (strlen(kind) > COIL_JOB_KIND_MAX || !coil__job_lookup(kind, strlen(kind))) {
        char msg[128];
        snprintf(msg, sizeof msg, "no job kind called \"%.64s\"", kind);
        return coil_http_respond_error(res, 404, msg);
    }
    size_t len;
    const char *body = coil_http_body(req, &len);
    if (len == 0) { /* no body: no parameters */
        body = "{}";
        len = 2;
    }
    json_error_t jerr;
    json_t *payload = json_loadb(body, len, JSON_DECODE_ANY, &jerr);
    if (!payload) {
        char msg[256];
        snprintf(msg, sizeof msg, "the body is not JSON: %s (line %d, column %d)", jerr.text,
                 jerr.line, jerr.column);
        return coil_http_respond_error(res, 400, msg);
    }
    int err = check_payload(j, res, kind, payload);
    coil_jobs_enqueue_opts o = {0};
    notify_set ns = {0};
    if (!err) err = enqueue_opts(req, res, &o);
    if (!err) err = notify_opts(j, req, res, kind, payload, &ns);
    json_decref(payload);
    if (err) {
        free(ns.payloads);
        return 0;
    }
    o.followups = ns.followups;
    o.nfollowups = ns.n;
    coil__enqueued got;
    err = coil__jobs_enqueue(j, kind, body, len, &o, &got);
    free(ns.payloads);
    if (err) return respond_store_error(res, err, "cannot enqueue");
    char location[64];
    snprintf(location, sizeof location, "/jobs/%s", got.id);
    coil_http_set_header(res, "Location", location);
    return respond_doc(res, 202,
                       json_pack("{s:s, s:s, s:b}", "id", got.id, "status",
                                 coil__job_state_name(got.state), "duplicate", got.duplicate));
}

/* ------------------------------------------------------------------ one job */

/* Reads the job of the {id} parameter. Returns it, or NULL after answering
 * (404, or 503/500). Suspends. */
static coil__job *job_of(coil_jobs *j, coil_http_request *req, coil_http_response *res) {
    coil__job *job = NULL;
    int err = coil__store_get(j->store, coil_http_param(req, "id"), &job);
    if (err == -ENOENT) coil_http_respond_error(res, 404, "no such job");
    else if (err) respond_store_error(res, err, "cannot read the job");
    return err ? NULL : job;
}

static int get_job(coil_http_request *req, coil_http_response *res, void *arg) {
    coil__job *job = job_of(arg, req, res);
    if (!job) return 0;
    json_t *doc = coil__job_status_doc(job);
    coil__job_list children = {0};
    int err = 0;
    if (job->followups) {
        coil__job_filter f = {.state = -1, .parent = job->id, .limit = COIL__FOLLOWUPS_MAX};
        err = coil__store_list(((coil_jobs *)arg)->store, &f, &children);
    }
    if (!err && doc) err = coil__job_status_add_followups(doc, job, &children);
    coil__job_list_free(&children);
    coil__job_free(job);
    if (err) {
        json_decref(doc);
        return respond_store_error(res, err, "cannot read the job's follow-ups");
    }
    return respond_doc(res, 200, doc);
}

/* 409 with the job's status: what was asked does not fit its state. */
static int respond_conflict(coil_http_response *res, const char *message,
                            coil__job_state state) {
    return respond_doc(res, 409, json_pack("{s:s, s:s}", "error", message, "status",
                                           coil__job_state_name(state)));
}

static int get_result(coil_http_request *req, coil_http_response *res, void *arg) {
    coil__job *job = job_of(arg, req, res);
    if (!job) return 0;
    int err;
    if (job->state != COIL__JOB_SUCCEEDED) {
        char msg[64];
        snprintf(msg, sizeof msg, "the job is %s: no result", coil__job_state_name(job->state));
        err = respond_conflict(res, msg, job->state);
    } else if (job->result_path) {
        err = coil_http_send_file_as(res, job->result_path, job->result_type);
    } else {
        err = coil_http_respond(res, 200,
                                job->result_type ? job->result_type : "application/octet-stream",
                                job->result, job->result_len);
    }
    coil__job_free(job);
    return err;
}


/* POST /jobs/{id}/retry: a dead or cancelled job runs again, as a new job
 * with the same kind, payload, limits and follow-ups (a final state stays
 * final; the old job keeps its history). */
static int retry_job(coil_http_request *req, coil_http_response *res, void *arg) {
    coil_jobs *j = arg;
    if (refuse_cross_site(req, res)) return 0;
    coil__job *job = job_of(j, req, res);
    if (!job) return 0;
    if (job->state != COIL__JOB_DEAD && job->state != COIL__JOB_CANCELLED) {
        coil__job_state state = job->state;
        coil__job_free(job);
        return respond_conflict(res, "only a dead or cancelled job can be retried", state);
    }
    if (!coil__job_lookup(job->kind, strlen(job->kind))) {
        coil__job_free(job);
        return coil_http_respond_error(res, 409, "this server no longer runs the job's kind");
    }
    coil__job_spec spec = {
        .kind = job->kind, .payload = job->payload, .payload_len = job->payload_len,
        .priority = job->priority, .max_attempts = job->max_attempts,
        .backoff_base_ms = job->backoff_base_ms, .backoff_cap_ms = job->backoff_cap_ms,
        .timeout_ms = job->timeout_ms, .followups = job->followups};
    coil__enqueued got;
    int err = coil__store_enqueue(j->store, &spec, &got);
    char old[COIL__JOB_ID_SIZE];
    memcpy(old, job->id, sizeof old);
    coil__job_free(job);
    if (err) return respond_store_error(res, err, "cannot enqueue the retry");
    char location[64];
    snprintf(location, sizeof location, "/jobs/%s", got.id);
    coil_http_set_header(res, "Location", location);
    return respond_doc(res, 202, json_pack("{s:s, s:s, s:s}", "id", got.id, "status",
                                           coil__job_state_name(got.state), "retry_of", old));
}

static int delete_job(coil_http_request *req, coil_http_response *res, void *arg) {
    coil_jobs *j = arg;
    if (refuse_cross_site(req, res)) return 0;
    const char *id = coil_http_param(req, "id");
    coil__job_state state = COIL__JOB_QUEUED;
    int err = coil__store_cancel(j->store, id, &state);
    if (err == -ENOENT) return coil_http_respond_error(res, 404, "no such job");
    if (err == -EALREADY) {
        char msg[64];
        snprintf(msg, sizeof msg, "the job is %s already", coil__job_state_name(state));
        return respond_conflict(res, msg, state);
    }
    if (err) return respond_store_error(res, err, "cannot cancel");
    if (state == COIL__JOB_RUNNING) /* the worker is being stopped */
        return respond_doc(res, 202, json_pack("{s:s, s:s, s:b}", "id", id, "status", "running",
                                               "cancel_requested", 1));
    return respond_doc(res, 200,
                       json_pack("{s:s, s:s}", "id", id, "status", coil__job_state_name(state)));
}

/* ------------------------------------------------------------------ lists */

static int list_jobs(coil_http_request *req, coil_http_response *res, void *arg) {
    coil_jobs *j = arg;
    coil__job_filter f = {.state = -1};
    char state[32], kind[COIL__JOB_KIND_MAX + 1];
    ssize_t n = coil_http_query_param(req, "state", state, sizeof state);
    if (n != -ENOENT) {
        f.state = n > 0 ? coil__job_state_parse(state) : -EINVAL;
        if (f.state < 0)
            return coil_http_respond_error(
                res, 400, "state must be queued, running, succeeded, failed, cancelled or dead");
    }
    n = coil_http_query_param(req, "kind", kind, sizeof kind);
    if (n > 0) f.kind = kind;
    else if (n != -ENOENT) return coil_http_respond_error(res, 400, "kind is malformed");
    long long limit = 50, cursor = 0;
    if (query_long(req, res, "limit", 1, 1000, &limit) ||
        query_long(req, res, "cursor", 1, INT64_MAX, &cursor))
        return 0;
    f.limit = (size_t)limit;
    f.cursor = (uint64_t)cursor;
    coil__job_list l;
    int err = coil__store_list(j->store, &f, &l);
    if (err) return respond_store_error(res, err, "cannot list jobs");
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < l.n; i++)
        if (json_array_append_new(arr, coil__job_status_doc(l.jobs[i])) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    char next[24];
    snprintf(next, sizeof next, "%llu", (unsigned long long)l.next_cursor);
    json_t *doc = arr ? json_pack("{s:o, s:o}", "jobs", arr,
                                  "next_cursor", l.next_cursor ? json_string(next) : json_null())
                      : NULL;
    coil__job_list_free(&l);
    return respond_doc(res, 200, doc);
}

static int job_stats(coil_http_request *req, coil_http_response *res, void *arg) {
    coil_jobs *j = arg;
    uint64_t counts[COIL__JOB_NSTATES];
    int err = coil__store_counts(j->store, counts);
    if (err) return respond_store_error(res, err, "cannot count jobs");
    json_t *by_state = json_object();
    for (int s = 0; by_state && s < COIL__JOB_NSTATES; s++)
        json_object_set_new(by_state, coil__job_state_name((coil__job_state)s),
                            json_integer((json_int_t)counts[s]));
    coil_jobs_stats st;
    coil_jobs_get_stats(j, &st);
    coil__store_stats ss;
    coil__store_get_stats(j->store, &ss);
    json_t *doc = json_pack(
        "{s:o, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}, s:{s:I, s:I, s:I, s:I}}",
        "jobs", by_state ? by_state : json_null(), "scheduler", "started",
        (json_int_t)st.claimed, "succeeded", (json_int_t)st.succeeded, "failed",
        (json_int_t)st.failed, "crashed", (json_int_t)st.crashed, "cancelled",
        (json_int_t)st.cancelled, "requeued_at_start", (json_int_t)st.requeued_at_start,
        "store_errors", (json_int_t)st.store_errors, "waiting", (json_int_t)st.waiting,
        "running", (json_int_t)st.running, "store", "commits", (json_int_t)ss.commits, "writes",
        (json_int_t)ss.writes, "failed_commits", (json_int_t)ss.failed_commits, "largest_batch",
        (json_int_t)ss.largest_batch);
    return respond_doc(res, 200, doc);
}

static int next_id(coil_http_request *req, coil_http_response *res, void *arg) {
    coil_jobs *j = arg;
    uint64_t id;
    int err = coil__store_next_id(j->store, &id);
    if (err) return respond_store_error(res, err, "cannot take an id");
    return respond_doc(res, 200, json_pack("{s:I}", "id", (json_int_t)id));
}

/* The job system's section of GET /metrics. */
static void jobs_metrics(coil_http_metrics_out *out, void *arg) {
    coil_jobs_stats st;
    coil_jobs_get_stats(arg, &st);
    coil_http_metrics_printf(out,
                             "# HELP coil_jobs_attempts_total Job attempts, by how they ended.\n"
                             "# TYPE coil_jobs_attempts_total counter\n"
                             "coil_jobs_attempts_total{outcome=\"started\"} %llu\n"
                             "coil_jobs_attempts_total{outcome=\"succeeded\"} %llu\n"
                             "coil_jobs_attempts_total{outcome=\"failed\"} %llu\n"
                             "coil_jobs_attempts_total{outcome=\"crashed\"} %llu\n"
                             "coil_jobs_attempts_total{outcome=\"cancelled\"} %llu\n",
                             (unsigned long long)st.claimed, (unsigned long long)st.succeeded,
                             (unsigned long long)st.failed, (unsigned long long)st.crashed,
                             (unsigned long long)st.cancelled);
    coil_http_metrics_printf(out,
                             "# HELP coil_jobs_waiting Jobs taken from the store, waiting for a "
                             "worker process (the pool's queue depth).\n"
                             "# TYPE coil_jobs_waiting gauge\ncoil_jobs_waiting %zu\n"
                             "# HELP coil_jobs_running Jobs in a worker process.\n"
                             "# TYPE coil_jobs_running gauge\ncoil_jobs_running %zu\n"
                             "# HELP coil_jobs_store_errors_total Reads and writes the store "
                             "refused (full, read-only, I/O).\n"
                             "# TYPE coil_jobs_store_errors_total counter\n"
                             "coil_jobs_store_errors_total %llu\n",
                             st.waiting, st.running, (unsigned long long)st.store_errors);
}

static int job_dump(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)req;
    char *text = coil__jobs_dump_text(arg);
    if (!text) return coil_http_respond_error(res, 500, "out of memory");
    int err = coil_http_respond(res, 200, "text/plain", text, strlen(text));
    free(text);
    return err;
}

static int job_overview(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)req;
    char *json;
    int err = coil_jobs_overview_json(arg, &json);
    if (err) return respond_store_error(res, err, "cannot read the jobs");
    err = coil_http_respond(res, 200, "application/json", json, strlen(json));
    free(json);
    return err;
}

int coil_jobs_mount(coil_jobs *j, struct coil_http_server *srv) {
    static const struct {
        const char *method, *pattern;
        coil_http_handler fn;
    } routes[] = {
        {"POST", "/jobs/{kind}", post_job},
        {"GET", "/jobs", list_jobs},
        {"GET", "/jobs/stats", job_stats},
        {"GET", "/jobs/dump", job_dump},
        {"GET", "/jobs/overview", job_overview},
        {"GET", "/jobs/{id}", get_job},
        {"GET", "/jobs/{id}/result", get_result},
        {"GET", "/jobs/{id}/events", coil__jobs_events},
        {"DELETE", "/jobs/{id}", delete_job},
        {"POST", "/jobs/{id}/retry", retry_job},
        {"GET", "/ids/next", next_id},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        int err = coil_http_route(srv, routes[i].method, routes[i].pattern, routes[i].fn, j, 0);
        if (err) return err;
    }
    return coil_http_add_metrics(srv, jobs_metrics, j);
}
