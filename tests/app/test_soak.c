/* tests/app/test_soak.c: the soak test of the job system, through the real
 * `coil serve`: every job acknowledged with 202 reaches a final state.
 *
 * A run is ROUNDS rounds (COIL_SOAK_ROUNDS, default 2) on one server and
 * one data directory, while two CPU hogs keep both cores busy. Each round
 * draws, from its own seed, a mix of jobs:
 *
 *   quick       demo.append (its effect: one line in a file), any priority
 *   slow        demo.sleep, 20..200 ms
 *   crash       demo.crash, 1..3 attempts: ends dead
 *   timeout     demo.sleep 60 s with a 50..150 ms timeout: ends dead
 *   cq          demo.append delayed 10 min, then DELETE: 200, cancelled,
 *               no effect
 *   cr          demo.sleep 60 s, then DELETE: ends cancelled
 *   delayed     demo.append delayed 50..400 ms
 *   duplicate   demo.append posted twice with one Idempotency-Key: one job
 *   cx          demo.append, then DELETE at once, racing it to a worker:
 *               200 means it never ran (no effect, no attempt), 202 that
 *               it is stopped or finishes, 409 that it finished first
 *
 * and, in about half the rounds, kills the server with SIGKILL halfway
 * through the submissions and starts it again on the same data. Then it
 * waits for every job and checks the invariants:
 *
 * The server and its workers are separate processes; this test's own
 * threads are the HTTP client's only (COIL_TEST_THREADS: it runs under
 * TSan too, where the server is the TSan build).
 *
 *   - every 202'd job is final within a bound made of its delay, its
 *     attempts times (its timeout or length plus the largest backoff), and
 *     a slack for the sanitizers, the hogs and a restart;
 *   - no job runs while cancelled or after its final state: a job
 *     cancelled while queued left no effect, nothing is running once all
 *     are final, and the effects file does not grow after that;
 *   - attempts never exceed max_attempts;
 *   - a succeeded append left its line once (at least once after a kill);
 *   - /jobs/stats agrees with the jobs' own states, counted over all rounds.
 *
 * A failure prints the round's seed (replay it with COIL_SOAK_SEED=N
 * COIL_SOAK_ROUNDS=1), /jobs/stats and the stall dump of GET /jobs/dump.
 * `make soak` runs many rounds under ASan and TSan.
 */
#include "serve_harness.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
    PER_ROUND = 24,               /* jobs a round submits */
    MAX_ROUNDS = 1000,
    SLACK_MS = 30000,             /* scheduling under sanitizers and hogs */
    RESTART_MS = 30000,           /* a kill and a restart */
    POLL_MS = 25,
};

typedef enum mix { QUICK, SLOW, CRASH, TIMEOUT, CANCEL_QUEUED, CANCEL_RUNNING, DELAYED,
                   DUPLICATE, CANCEL_RACE, NMIX } mix;

static const char *const mix_names[NMIX] = {"quick", "slow", "crash", "timeout", "cq", "cr",
                                            "delayed", "duplicate", "cx"};

typedef struct soak_job {
    char id[33];
    mix what;
    int tag;                      /* the line an append writes: "t<tag>" */
    int max_attempts;
    long long bound_ms;           /* from created_at to finished_at */
    bool cancel_200;              /* DELETE answered 200: it never ran */
    int cancel_status;            /* what DELETE answered (cx) */
} soak_job;

typedef struct soak {
    serve_proc p;
    uint64_t seed, rng;
    int round;
    char effects[128];            /* the file every append writes */
    soak_job jobs[PER_ROUND];
    int n;
    bool killed;                  /* this round killed the server */
    long long tally[6];           /* final states of every job so far */
    int next_tag;
    pid_t hogs[2];
} soak;

/* The server's arguments, at the start and at each restart. */
static const char *const serve_args[] = {"--demo-unsafe", "--job-workers", "2",
                                         "--no-access-log", NULL};

/* ------------------------------------------------------------------ helpers */

static uint64_t draw(soak *s) { /* splitmix64 */
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int draw_in(soak *s, int lo, int hi) { return lo + (int)(draw(s) % (uint64_t)(hi - lo + 1)); }

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static char *http_text(soak *s, const char *path) {
    serve_reply r;
    int err = serve_try_http_for(s->p.port, "GET", path, NULL, NULL, 10000, &r);
    char *text = strdup(err == 0 && r.body ? r.body : "(no answer)");
    serve_reply_free(&r);
    return text;
}

/* Fails the test with the seed, the scheduler's counters and the dump. */
__attribute__((format(printf, 3, 4), noreturn)) static void soak_fail(soak *s, int line,
                                                                      const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char *stats = http_text(s, "/jobs/stats"), *dump = http_text(s, "/jobs/dump");
    coil_test_fail(__FILE__, line,
                   "soak round %d (replay: COIL_SOAK_SEED=%llu COIL_SOAK_ROUNDS=1): %s\n"
                   "stats: %s\n%s",
                   s->round, (unsigned long long)s->seed, msg, stats, dump);
}
#define SOAK_FAIL(s, ...) soak_fail((s), __LINE__, __VA_ARGS__)

static json_t *json_of(soak *s, const serve_reply *r, const char *what) {
    json_error_t e;
    json_t *j = r->body ? json_loadb(r->body, r->body_len, 0, &e) : NULL;
    if (!j) SOAK_FAIL(s, "%s: not JSON: %s", what, r->body ? r->body : "");
    return j;
}

/* GET path as JSON; NULL if the server did not answer (it was killed). */
static json_t *get_json(soak *s, const char *path) {
    serve_reply r;
    int err = serve_try_http_for(s->p.port, "GET", path, NULL, NULL, 10000, &r);
    json_t *j = NULL;
    if (err == 0 && r.status == 200) j = json_of(s, &r, path);
    else if (err == 0) SOAK_FAIL(s, "GET %s: status %d: %s", path, r.status, r.body);
    serve_reply_free(&r);
    return j;
}

static long long int_of(const json_t *o, const char *key) {
    return (long long)json_integer_value(json_object_get(o, key));
}

/* ------------------------------------------------------------------ submitting */

/* POSTs one job; fails the test unless it answers 202. The kill comes
 * between two submissions, so every request gets an answer. */
static void post(soak *s, const char *kind, const char *query, const char *headers,
                const char *payload, char id[33], bool *duplicate) {
    char path[256];
    snprintf(path, sizeof path, "/jobs/%s%s", kind, query);
    serve_reply r;
    int err = serve_try_http_for(s->p.port, "POST", path, headers, payload, 10000, &r);
    if (err != 0) SOAK_FAIL(s, "POST %s: no answer (%s)", path, strerror(-err));
    if (r.status != 202) SOAK_FAIL(s, "POST %s: status %d: %s", path, r.status, r.body);
    json_t *j = json_of(s, &r, path);
    snprintf(id, 33, "%s", json_string_value(json_object_get(j, "id")));
    if (duplicate) *duplicate = json_is_true(json_object_get(j, "duplicate"));
    json_decref(j);
    serve_reply_free(&r);
}

/* DELETE; returns the status (200, 202 or 409). */
static int cancel(soak *s, const char *id) {
    char path[64];
    snprintf(path, sizeof path, "/jobs/%s", id);
    serve_reply r;
    int err = serve_try_http_for(s->p.port, "DELETE", path, NULL, NULL, 10000, &r);
    if (err != 0) SOAK_FAIL(s, "DELETE %s: no answer", path);
    int status = r.status;
    serve_reply_free(&r);
    if (status != 200 && status != 202 && status != 409)
        SOAK_FAIL(s, "DELETE %s: status %d", path, status);
    return status;
}

static void append_payload(soak *s, int tag, char *out, size_t cap) {
    snprintf(out, cap, "{\"path\": \"%s\", \"line\": \"t%d\"}", s->effects, tag);
}

/* Draws and submits one job of the round. */
static void submit(soak *s, soak_job *job) {
    char query[160], payload[256], headers[128];
    const char *kind = "demo.append";
    const char *hdr = NULL;
    memset(job, 0, sizeof *job);
    job->what = (mix)(draw(s) % NMIX);
    job->tag = s->next_tag++;
    job->max_attempts = 3;
    long long run_ms = 1000, delay = 0;
    snprintf(query, sizeof query, "?priority=%d", draw_in(s, -5, 5));
    append_payload(s, job->tag, payload, sizeof payload);
    switch (job->what) {
    case QUICK: break;
    case SLOW:
        kind = "demo.sleep";
        run_ms = draw_in(s, 20, 200);
        snprintf(payload, sizeof payload, "{\"ms\": %lld}", run_ms);
        break;
    case CRASH:
        kind = "demo.crash";
        job->max_attempts = draw_in(s, 1, 3);
        snprintf(query, sizeof query, "?max_attempts=%d&backoff_ms=10&backoff_cap_ms=50",
                 job->max_attempts);
        snprintf(payload, sizeof payload, "{}");
        break;
    case TIMEOUT:
        kind = "demo.sleep";
        job->max_attempts = draw_in(s, 1, 2);
        run_ms = draw_in(s, 50, 150);
        snprintf(query, sizeof query, "?max_attempts=%d&timeout_ms=%lld&backoff_ms=10"
                 "&backoff_cap_ms=50", job->max_attempts, run_ms);
        snprintf(payload, sizeof payload, "{\"ms\": 60000}");
        break;
    case CANCEL_QUEUED:
        snprintf(query, sizeof query, "?delay_ms=600000");
        break;
    case CANCEL_RUNNING:
        kind = "demo.sleep";
        snprintf(payload, sizeof payload, "{\"ms\": 60000}");
        break;
    case DELAYED:
        delay = draw_in(s, 50, 400);
        snprintf(query, sizeof query, "?delay_ms=%lld&priority=%d", delay, draw_in(s, -5, 5));
        break;
    case DUPLICATE:
        snprintf(headers, sizeof headers, "Idempotency-Key: soak-%llu-%d\r\n",
                 (unsigned long long)s->seed, job->tag);
        hdr = headers;
        break;
    default: break;
    }
    job->bound_ms = delay + job->max_attempts * (run_ms + 50) + SLACK_MS;
    bool dup = false;
    post(s, kind, query, hdr, payload, job->id, &dup);
    if (dup) SOAK_FAIL(s, "job %s: a new key answered duplicate", job->id);
    if (job->what == DUPLICATE) {
        char again[33];
        post(s, kind, query, hdr, payload, again, &dup);
        if (!dup || strcmp(again, job->id) != 0)
            SOAK_FAIL(s, "the same key made two jobs: %s and %s", job->id, again);
    }
    if (job->what == CANCEL_RACE) job->cancel_status = cancel(s, job->id);
    if (job->what == CANCEL_QUEUED) {
        int st = cancel(s, job->id);
        if (st == 200) job->cancel_200 = true;
        else SOAK_FAIL(s, "DELETE of a delayed job %s: %d, want 200", job->id, st);
    }
}

/* Cancels the round's long sleeps, at a random moment each. */
static void cancel_running(soak *s) {
    for (int i = 0; i < s->n; i++) {
        soak_job *job = &s->jobs[i];
        if (job->what != CANCEL_RUNNING) continue;
        sleep_ms(draw_in(s, 0, 60));
        int st = cancel(s, job->id);
        if (st == 200) job->cancel_200 = true;
    }
}

/* ------------------------------------------------------------------ checking */

/* How many times line "t<tag>" is in the effects file. */
static int effects_of(const char *text, int tag) {
    char want[32];
    int n = snprintf(want, sizeof want, "t%d\n", tag), count = 0;
    for (const char *p = text; p && (p = strstr(p, want)); p += n)
        if (p == text || p[-1] == '\n') count++;
    return count;
}

static bool is_final(const char *st) {
    return strcmp(st, "succeeded") == 0 || strcmp(st, "cancelled") == 0 ||
           strcmp(st, "dead") == 0;
}

/* The states, in the store's order: the index of s->tally. */
static const char *const state_names[6] = {"queued", "running", "succeeded",
                                           "failed", "cancelled", "dead"};

static int state_index(soak *s, const char *st) {
    for (int i = 0; i < 6; i++)
        if (strcmp(st, state_names[i]) == 0) return i;
    SOAK_FAIL(s, "unknown state %s", st);
}

/* Waits until job `job` is final; returns its document. */
static json_t *await_final(soak *s, const soak_job *job, coil_time until) {
    char path[64];
    snprintf(path, sizeof path, "/jobs/%s", job->id);
    for (;;) {
        json_t *doc = get_json(s, path);
        if (!doc) SOAK_FAIL(s, "GET %s: no answer", path);
        const char *st = json_string_value(json_object_get(doc, "status"));
        if (is_final(st)) return doc;
        if (coil_now() > until) {
            char *text = json_dumps(doc, JSON_COMPACT);
            SOAK_FAIL(s, "%s job %s is still %s: %s", mix_names[job->what], job->id, st, text);
        }
        json_decref(doc);
        sleep_ms(POLL_MS);
    }
}

/* What each job's final state must be. */
static void check_job(soak *s, const soak_job *job, const json_t *doc, const char *effects) {
    const char *st = json_string_value(json_object_get(doc, "status"));
    long long attempts = int_of(doc, "attempts"), max = int_of(doc, "max_attempts");
    long long took = int_of(doc, "finished_at") - int_of(doc, "created_at");
    int seen = effects_of(effects, job->tag);
    const char *name = mix_names[job->what];
    if (attempts > max) SOAK_FAIL(s, "%s job %s: %lld attempts of %lld", name, job->id, attempts, max);
    long long bound = job->bound_ms + (s->killed ? RESTART_MS : 0);
    if (took > bound)
        SOAK_FAIL(s, "%s job %s: final after %lld ms, bound %lld", name, job->id, took, bound);
    const char *want = NULL;
    switch (job->what) {
    case QUICK:
    case DELAYED:
    case DUPLICATE:
        want = "succeeded";
        if (seen < 1 || (seen > 1 && !s->killed))
            SOAK_FAIL(s, "%s job %s: its effect seen %d times", name, job->id, seen);
        break;
    case SLOW: want = "succeeded"; break;
    case CRASH:
    case TIMEOUT: want = "dead"; break;
    case CANCEL_QUEUED:
        want = "cancelled";
        if (seen || attempts)
            SOAK_FAIL(s, "cq job %s: cancelled while queued, yet %d effects and %lld attempts",
                      job->id, seen, attempts);
        break;
    case CANCEL_RACE:
        if (job->cancel_status == 409) want = "succeeded";
        if (job->cancel_status == 200) want = "cancelled";
        if (job->cancel_status == 200 && (seen || attempts))
            SOAK_FAIL(s, "cx job %s: 200 (never ran), yet %d effects and %lld attempts", job->id,
                      seen, attempts);
        /* Succeeded: its effect, once. Cancelled after a 202: stopped
         * before or after its write, either may be. */
        bool succeeded = strcmp(st, "succeeded") == 0;
        if (succeeded && (seen < 1 || (seen > 1 && !s->killed)))
            SOAK_FAIL(s, "cx job %s: succeeded with its effect seen %d times", job->id, seen);
        break;
    case CANCEL_RUNNING:
        want = "cancelled";
        /* 200: it was queued, so it has not run since its last restart. */
        if (job->cancel_200 && attempts && !s->killed)
            SOAK_FAIL(s, "cr job %s: 200 (never ran), yet %lld attempts: %s", job->id, attempts,
                      json_dumps(doc, JSON_COMPACT));
        break;
    default: break;
    }
    if (want && strcmp(st, want) != 0)
        SOAK_FAIL(s, "%s job %s: %s, want %s", name, job->id, st, want);
}

/* /jobs/stats against the jobs' own states; nothing left running. */
static void check_stats(soak *s) {
    json_t *stats = get_json(s, "/jobs/stats");
    if (!stats) SOAK_FAIL(s, "GET /jobs/stats: no answer");
    json_t *by_state = json_object_get(stats, "jobs"), *sched = json_object_get(stats, "scheduler");
    for (int i = 0; i < 6; i++)
        if (int_of(by_state, state_names[i]) != s->tally[i])
            SOAK_FAIL(s, "/jobs/stats says %lld %s, the jobs say %lld",
                      int_of(by_state, state_names[i]), state_names[i], s->tally[i]);
    if (int_of(sched, "running") != 0 || int_of(sched, "waiting") != 0)
        SOAK_FAIL(s, "all jobs are final, yet the scheduler has %lld running, %lld waiting",
                  int_of(sched, "running"), int_of(sched, "waiting"));
    json_decref(stats);
}

/* ------------------------------------------------------------------ a round */

static void run_round(soak *s) {
    s->rng = s->seed;
    s->n = 0;
    s->killed = false;
    bool kill_it = draw(s) % 2;
    int kill_at = draw_in(s, PER_ROUND / 4, PER_ROUND * 3 / 4);
    for (int i = 0; i < PER_ROUND; i++) {
        if (kill_it && i == kill_at) {
            serve_kill(&s->p);
            serve_launch(&s->p, serve_args);
            s->killed = true;
        }
        submit(s, &s->jobs[s->n++]);
    }
    cancel_running(s);
    coil_time until = coil_now() + COIL_MSEC(SLACK_MS + RESTART_MS + 60000);
    json_t *docs[PER_ROUND];
    for (int i = 0; i < s->n; i++) docs[i] = await_final(s, &s->jobs[i], until);
    char *effects = serve_read_file(s->effects, NULL);
    for (int i = 0; i < s->n; i++) {
        check_job(s, &s->jobs[i], docs[i], effects ? effects : "");
        s->tally[state_index(s, json_string_value(json_object_get(docs[i], "status")))]++;
        json_decref(docs[i]);
    }
    check_stats(s);
    /* Nothing runs after its final state: the effects stay as they were. */
    sleep_ms(200);
    char *later = serve_read_file(s->effects, NULL);
    if ((effects ? strlen(effects) : 0) != (later ? strlen(later) : 0))
        SOAK_FAIL(s, "the effects file grew after every job was final");
    free(effects);
    free(later);
}

/* ------------------------------------------------------------------ the run */

static pid_t start_hog(void) {
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        for (volatile uint64_t x = 0;; x++) {
        }
    }
    ASSERT(pid > 0);
    return pid;
}

static long env_long(const char *name, long dflt) {
    const char *v = getenv(name);
    if (!v || !*v) return dflt;
    char *end;
    long n = strtol(v, &end, 10);
    return *end || n < 0 ? dflt : n;
}

TEST(soak_every_acknowledged_job_ends) {
    static soak s;
    memset(&s, 0, sizeof s);
    long rounds = env_long("COIL_SOAK_ROUNDS", 2);
    if (rounds > MAX_ROUNDS) rounds = MAX_ROUNDS;
    uint64_t first = (uint64_t)env_long("COIL_SOAK_SEED", (long)time(NULL));
    serve_start(&s.p, serve_args);
    snprintf(s.effects, sizeof s.effects, "%s/effects", s.p.dir);
    for (int i = 0; i < 2; i++) s.hogs[i] = start_hog();
    long jobs = 0, kills = 0;
    for (s.round = 1; s.round <= rounds; s.round++) {
        s.seed = first + (uint64_t)s.round - 1;
        run_round(&s);
        jobs += s.n;
        kills += s.killed;
    }
    for (int i = 0; i < 2; i++) {
        kill(s.hogs[i], SIGKILL);
        waitpid(s.hogs[i], NULL, 0);
    }
    printf("soak: %ld rounds from seed %llu, %ld jobs, %ld kill -9, none stalled\n", rounds,
           (unsigned long long)first, jobs, kills);
    serve_stop(&s.p);
    serve_cleanup(&s.p);
}
