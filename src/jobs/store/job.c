/* jobs/store/job.c: the job model: states and their legal transitions, retry
 * backoff, and what a valid job spec is.
 *
 * The state machine is one table, `legal`, indexed by the state a job is
 * in: a bit set of the states it may move to. Every write the store makes
 * to a job's state asks coil__job_transition() first, so the table is the
 * one place that says what can happen to a job (store.h draws it).
 *
 * Backoff is exponential with full jitter (the retry waits a uniform time
 * in [0, min(cap, base * 2^(attempt-1))]): retries of jobs that failed
 * together spread out instead of failing together again.
 */
#include "jobs/store/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const state_names[COIL__JOB_NSTATES] = {
    [COIL__JOB_QUEUED] = "queued",       [COIL__JOB_RUNNING] = "running",
    [COIL__JOB_SUCCEEDED] = "succeeded", [COIL__JOB_FAILED] = "failed",
    [COIL__JOB_CANCELLED] = "cancelled", [COIL__JOB_DEAD] = "dead",
};

#define TO(state) (1u << (state))

/* legal[from] has bit `to` set when from -> to is allowed. */
static const unsigned legal[COIL__JOB_NSTATES] = {
    [COIL__JOB_QUEUED] = TO(COIL__JOB_RUNNING) | TO(COIL__JOB_CANCELLED),
    [COIL__JOB_RUNNING] = TO(COIL__JOB_SUCCEEDED) | TO(COIL__JOB_FAILED) | TO(COIL__JOB_DEAD) |
                          TO(COIL__JOB_CANCELLED) | TO(COIL__JOB_QUEUED),
    [COIL__JOB_FAILED] = TO(COIL__JOB_RUNNING) | TO(COIL__JOB_CANCELLED),
    [COIL__JOB_SUCCEEDED] = 0,
    [COIL__JOB_CANCELLED] = 0,
    [COIL__JOB_DEAD] = 0,
};

static bool valid_state(int s) { return s >= 0 && s < COIL__JOB_NSTATES; }

const char *coil__job_state_name(coil__job_state state) {
    return valid_state((int)state) ? state_names[state] : NULL;
}

int coil__job_state_parse(const char *name) {
    if (!name) return -EINVAL;
    for (int s = 0; s < COIL__JOB_NSTATES; s++)
        if (strcmp(name, state_names[s]) == 0) return s;
    return -EINVAL;
}

bool coil__job_state_final(coil__job_state state) {
    return valid_state((int)state) && legal[state] == 0;
}

bool coil__job_can_transition(coil__job_state from, coil__job_state to) {
    return valid_state((int)from) && valid_state((int)to) && (legal[from] & TO(to)) != 0;
}

int coil__job_transition(coil__job_state from, coil__job_state to) {
    return coil__job_can_transition(from, to) ? 0 : -EINVAL;
}

/* ------------------------------------------------------------------ backoff */

uint64_t coil__rng_next(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* min(cap, base * 2^(attempt-1)) without overflow; base, cap >= 0. */
static int64_t backoff_bound(unsigned attempt, int64_t base, int64_t cap) {
    if (base <= 0 || cap <= 0) return 0;
    if (base >= cap) return cap;
    int64_t bound = base;
    for (unsigned i = 1; i < attempt; i++) {
        if (bound > cap / 2) return cap;
        bound *= 2;
    }
    return bound < cap ? bound : cap;
}

int64_t coil__job_backoff_ms(unsigned attempt, int64_t base_ms, int64_t cap_ms, uint64_t *rng) {
    int64_t bound = backoff_bound(attempt ? attempt : 1, base_ms, cap_ms);
    if (bound <= 0) return 0;
    /* Uniform in [0, bound]; the modulo bias is below 2^-20 for any bound
     * that fits in 44 bits (139 years of milliseconds). */
    return (int64_t)(coil__rng_next(rng) % ((uint64_t)bound + 1));
}

int64_t coil__job_next_run_at(int64_t now_ms, unsigned attempt, int64_t base_ms, int64_t cap_ms,
                              uint64_t *rng) {
    int64_t delay = coil__job_backoff_ms(attempt, base_ms, cap_ms, rng);
    return delay > INT64_MAX - now_ms ? INT64_MAX : now_ms + delay;
}

coil__job_state coil__job_failure_state(bool cancel_requested, int attempts, int max_attempts) {
    return cancel_requested          ? COIL__JOB_CANCELLED
           : attempts < max_attempts ? COIL__JOB_FAILED
                                     : COIL__JOB_DEAD;
}

void coil__job_event_init(coil__job_event *ev, const char *id, const char *kind,
                          coil__job_state state, int attempts, int64_t run_at) {
    memset(ev, 0, sizeof *ev);
    snprintf(ev->id, sizeof ev->id, "%s", id);
    snprintf(ev->kind, sizeof ev->kind, "%s", kind ? kind : "");
    ev->state = state;
    ev->attempts = attempts;
    ev->run_at = run_at;
}

/* ------------------------------------------------------------------ specs */

/* 1..max bytes, printable ASCII without spaces. */
static bool valid_name(const char *s, size_t max) {
    if (!s) return false;
    size_t n = 0;
    for (; s[n]; n++)
        if (n >= max || s[n] <= ' ' || s[n] > '~') return false;
    return n > 0;
}

int coil__job_spec_check(const coil__job_spec *spec) {
    if (!spec || !valid_name(spec->kind, COIL__JOB_KIND_MAX)) return -EINVAL;
    if (spec->idem_key && !valid_name(spec->idem_key, COIL__JOB_KEY_MAX)) return -EINVAL;
    if (spec->payload_len && !spec->payload) return -EINVAL;
    /* SQLite's own limit on one value is 1e9 bytes; stay well inside it. */
    if (spec->payload_len > 512u * 1024 * 1024) return -EINVAL;
    if (spec->max_attempts < 0 || spec->run_at < 0 || spec->timeout_ms < 0) return -EINVAL;
    if (spec->backoff_base_ms < 0 || spec->backoff_cap_ms < 0) return -EINVAL;
    return 0;
}

void coil__job_free(coil__job *job) { free(job); }

int64_t coil__wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
