/* tests/jobs/store/test_job.c: the job model: state machine, backoff, specs, ids. */
#include "jobs/store/store.h"
#include "test.h"

#define Q COIL__JOB_QUEUED
#define R COIL__JOB_RUNNING
#define S COIL__JOB_SUCCEEDED
#define F COIL__JOB_FAILED
#define C COIL__JOB_CANCELLED
#define D COIL__JOB_DEAD

/* Every legal transition; everything else must be refused. */
static const coil__job_state legal[][2] = {
    {Q, R}, {Q, C},
    {R, S}, {R, F}, {R, D}, {R, C}, {R, Q},
    {F, R}, {F, C},
};

static bool listed(coil__job_state from, coil__job_state to) {
    for (size_t i = 0; i < sizeof legal / sizeof *legal; i++)
        if (legal[i][0] == from && legal[i][1] == to) return true;
    return false;
}

TEST(transitions_exactly_the_table) {
    for (coil__job_state from = 0; from < COIL__JOB_NSTATES; from++) {
        for (coil__job_state to = 0; to < COIL__JOB_NSTATES; to++) {
            bool ok = listed(from, to);
            ASSERT_EQ(coil__job_can_transition(from, to), ok);
            ASSERT_EQ(coil__job_transition(from, to), ok ? 0 : -EINVAL);
        }
    }
    /* Out-of-range states are refused, not read out of bounds. */
    ASSERT_EQ(coil__job_transition((coil__job_state)-1, R), -EINVAL);
    ASSERT_EQ(coil__job_transition(Q, (coil__job_state)COIL__JOB_NSTATES), -EINVAL);
    ASSERT_EQ(coil__job_transition((coil__job_state)99, (coil__job_state)99), -EINVAL);
}

TEST(final_states) {
    ASSERT(coil__job_state_final(S));
    ASSERT(coil__job_state_final(C));
    ASSERT(coil__job_state_final(D));
    ASSERT(!coil__job_state_final(Q));
    ASSERT(!coil__job_state_final(R));
    ASSERT(!coil__job_state_final(F));
    /* A final state goes nowhere; a non-final one can end as cancelled. */
    for (coil__job_state s = 0; s < COIL__JOB_NSTATES; s++) {
        if (coil__job_state_final(s)) {
            for (coil__job_state to = 0; to < COIL__JOB_NSTATES; to++)
                ASSERT(!coil__job_can_transition(s, to));
        } else {
            ASSERT(coil__job_can_transition(s, C));
        }
    }
}

TEST(state_names_round_trip) {
    const char *names[] = {"queued", "running", "succeeded", "failed", "cancelled", "dead"};
    for (coil__job_state s = 0; s < COIL__JOB_NSTATES; s++) {
        ASSERT_STR_EQ(coil__job_state_name(s), names[s]);
        ASSERT_EQ(coil__job_state_parse(names[s]), s);
    }
    ASSERT(coil__job_state_name((coil__job_state)COIL__JOB_NSTATES) == NULL);
    ASSERT_EQ(coil__job_state_parse("Queued"), -EINVAL);
    ASSERT_EQ(coil__job_state_parse(""), -EINVAL);
    ASSERT_EQ(coil__job_state_parse(NULL), -EINVAL);
}

/* min(cap, base * 2^(attempt-1)), computed the slow way. */
static int64_t bound_of(unsigned attempt, int64_t base, int64_t cap) {
    long double b = (long double)base;
    for (unsigned i = 1; i < attempt && b < (long double)cap; i++) b *= 2;
    return b < (long double)cap ? (int64_t)b : cap;
}

TEST(backoff_within_bounds) {
    uint64_t rng = 42;
    const int64_t base = 100, cap = 60000;
    for (unsigned attempt = 1; attempt <= 80; attempt++) {
        int64_t bound = bound_of(attempt, base, cap), max = -1, min = INT64_MAX;
        for (int i = 0; i < 2000; i++) {
            int64_t d = coil__job_backoff_ms(attempt, base, cap, &rng);
            ASSERT_GE(d, 0);
            ASSERT_LE(d, bound);
            if (d > max) max = d;
            if (d < min) min = d;
        }
        /* Full jitter: the draws cover the range, not one corner of it. */
        ASSERT_GE(max, bound * 9 / 10);
        ASSERT_LE(min, bound / 10);
    }
    /* The bound doubles until the cap. */
    ASSERT_EQ(bound_of(1, base, cap), 100);
    ASSERT_EQ(bound_of(4, base, cap), 800);
    ASSERT_EQ(bound_of(11, base, cap), 60000);
}

TEST(backoff_edges) {
    uint64_t rng = 7;
    /* No overflow however large the attempt or the base. */
    for (int i = 0; i < 1000; i++) {
        int64_t d = coil__job_backoff_ms(1000000, INT64_MAX / 3, INT64_MAX, &rng);
        ASSERT_GE(d, 0);
    }
    ASSERT_LE(coil__job_backoff_ms(UINT32_MAX, 1, 5000, &rng), 5000);
    ASSERT_EQ(coil__job_backoff_ms(3, 0, 1000, &rng), 0);
    ASSERT_EQ(coil__job_backoff_ms(3, 1000, 0, &rng), 0);
    /* A base above the cap is capped from the first attempt. */
    for (int i = 0; i < 100; i++) ASSERT_LE(coil__job_backoff_ms(1, 9000, 500, &rng), 500);
    /* Attempt 0 is treated as the first. */
    for (int i = 0; i < 100; i++) ASSERT_LE(coil__job_backoff_ms(0, 10, 1000, &rng), 10);
    /* next_run_at adds the delay, and saturates. */
    for (int i = 0; i < 100; i++) {
        int64_t at = coil__job_next_run_at(1000000, 2, 50, 10000, &rng);
        ASSERT_GE(at, 1000000);
        ASSERT_LE(at, 1000100);
    }
    ASSERT_EQ(coil__job_next_run_at(INT64_MAX - 5, 40, 1000, INT64_MAX, &rng) >= INT64_MAX - 5, 1);
}

TEST(backoff_is_jittered) {
    /* Two generators with different seeds schedule different retries. */
    uint64_t a = 1, b = 2;
    int same = 0;
    for (int i = 0; i < 100; i++)
        same += coil__job_backoff_ms(10, 1000, 3600000, &a) ==
                coil__job_backoff_ms(10, 1000, 3600000, &b);
    ASSERT_LE(same, 2);
}

TEST(spec_check) {
    coil__job_spec ok = {.kind = "report.pdf", .payload = "{}", .payload_len = 2};
    ASSERT_EQ(coil__job_spec_check(&ok), 0);
    coil__job_spec s = ok;
    s.kind = NULL;
    ASSERT_EQ(coil__job_spec_check(&s), -EINVAL);
    s.kind = "";
    ASSERT_EQ(coil__job_spec_check(&s), -EINVAL);
    s.kind = "has space";
    ASSERT_EQ(coil__job_spec_check(&s), -EINVAL);
    s.kind = "new\nline";
    ASSERT_EQ(coil__job_spec_check(&s), -EINVAL);
    char longname[COIL__JOB_KIND_MAX + 2];
    memset(longname, 'k', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    s.kind = longname;
    ASSERT_EQ(coil__job_spec_check(&s), -EINVAL);
    longname[COIL__JOB_KIND_MAX] = '\0'; /* exactly the maximum */
    ASSERT_EQ(coil__job_spec_check(&s), 0);
    s = ok;
    s.idem_key = "";
    ASSERT_EQ(coil__job_spec_check(&s), -EINVAL);
    s.idem_key = "order-17";
    ASSERT_EQ(coil__job_spec_check(&s), 0);
    s = ok;
    s.payload = NULL;
    ASSERT_EQ(coil__job_spec_check(&s), -EINVAL);
    s.payload_len = 0;
    ASSERT_EQ(coil__job_spec_check(&s), 0);
    s = ok;
    s.max_attempts = -1;
    ASSERT_EQ(coil__job_spec_check(&s), -EINVAL);
    s = ok;
    s.run_at = -5;
    ASSERT_EQ(coil__job_spec_check(&s), -EINVAL);
    s = ok;
    s.backoff_cap_ms = -1;
    ASSERT_EQ(coil__job_spec_check(&s), -EINVAL);
    ASSERT_EQ(coil__job_spec_check(NULL), -EINVAL);
}

TEST(job_ids_random_hex) {
    enum { N = 2000 };
    static char ids[N][COIL__JOB_ID_SIZE];
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(coil__job_id_new(ids[i]), 0);
        ASSERT_EQ(strlen(ids[i]), 32);
        ASSERT(coil__job_id_valid(ids[i]));
        for (int k = 0; k < i; k++) ASSERT(strcmp(ids[i], ids[k]) != 0);
    }
    ASSERT(!coil__job_id_valid("0123456789abcdef0123456789ABCDEF"));
    ASSERT(!coil__job_id_valid("0123456789abcdef0123456789abcde"));
    ASSERT(!coil__job_id_valid("0123456789abcdef0123456789abcdef0"));
    ASSERT(!coil__job_id_valid("../../../../../../../../etc/pass"));
    ASSERT(!coil__job_id_valid(""));
    ASSERT(!coil__job_id_valid(NULL));
}
