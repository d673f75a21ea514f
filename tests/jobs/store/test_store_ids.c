/* tests/jobs/store/test_store_ids.c: the durable sequence behind GET /ids/next:
 * never repeated, never skipped, under concurrency and across restarts,
 * and no gap when a commit fails. (COIL_TEST_THREADS: runs under TSan;
 * COIL_TEST_BOTH_STORES: on SQLite and on PostgreSQL.) */
#include "jobs/store/store_fixture.h"

enum { TASKS = 64, CALLS = 30 };

typedef struct taker {
    coil__store *s;
    uint64_t *values; /* TASKS * calls slots */
    int calls;
    int next;         /* next task index */
    int failures;
} taker;

static coil_result take_ids(void *arg) {
    taker *t = arg;
    int me = t->next++;
    for (int i = 0; i < t->calls; i++) {
        uint64_t v = 0;
        if (coil__store_next_id(t->s, &v)) {
            t->failures++;
            return coil_ok(NULL);
        }
        t->values[me * t->calls + i] = v;
        if (i > 0 && v <= t->values[me * t->calls + i - 1]) t->failures++; /* per task: rising */
    }
    return coil_ok(NULL);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Runs TASKS concurrent takers of `calls` ids each; asserts that together
 * they got exactly first, first+1, ... */
static void take_round(coil__store *s, int calls, uint64_t first) {
    size_t n = (size_t)TASKS * (size_t)calls;
    taker t = {.s = s, .values = calloc(n, sizeof(uint64_t)), .calls = calls};
    ASSERT(t.values != NULL);
    coil_group g;
    coil_group_init(&g);
    for (int i = 0; i < TASKS; i++) coil_group_spawn(&g, take_ids, &t);
    ASSERT_EQ(coil_group_wait(&g), 0);
    coil_group_destroy(&g);
    ASSERT_EQ(t.failures, 0);
    qsort(t.values, n, sizeof(uint64_t), cmp_u64);
    for (size_t i = 0; i < n; i++)
        if (t.values[i] != first + i)
            coil_test_fail(__FILE__, __LINE__, "id #%zu is %" PRIu64 ", want %" PRIu64, i,
                           t.values[i], first + i);
    free(t.values);
}

static coil_result contiguous_main(void *arg) {
    char *dir = arg;
    coil__store *s = fx_open(dir, NULL);
    take_round(s, CALLS, 1);
    coil__store_stats st;
    coil__store_get_stats(s, &st);
    ASSERT_LE(st.commits, (uint64_t)TASKS * CALLS / 2); /* they share commits */
    ASSERT_EQ(coil__store_close(s), 0);

    /* After a restart: on from where it stopped. */
    s = fx_open(dir, NULL);
    take_round(s, 10, (uint64_t)TASKS * CALLS + 1);
    ASSERT_EQ(coil__store_close(s), 0);
    s = fx_open(dir, NULL);
    uint64_t v;
    ASSERT_EQ(coil__store_next_id(s, &v), 0);
    ASSERT_EQ(v, (uint64_t)TASKS * (CALLS + 10) + 1);
    ASSERT_EQ(coil__store_close(s), 0);
    return coil_ok(NULL);
}

TEST(ids_contiguous_and_unique_across_restart) {
    char *dir = fx_tmpdir();
    RUN_MAIN(contiguous_main, dir);
    fx_rmtree(dir);
}

typedef struct failing {
    coil__store *s;
    int errors[TASKS];
    int next;
} failing;

static coil_result one_failing_id(void *arg) {
    failing *f = arg;
    uint64_t v;
    f->errors[f->next++] = coil__store_next_id(f->s, &v);
    return coil_ok(NULL);
}

static coil_result failed_commit_main(void *arg) {
    char *dir = arg;
    coil__store *s = fx_open(dir, NULL);
    uint64_t v;
    ASSERT_EQ(coil__store_next_id(s, &v), 0);
    ASSERT_EQ(v, 1);
    /* Commits fail: every caller gets the error, none gets a value. */
    ASSERT_EQ(coil__store_set_readonly(s, true), 0);
    failing f = {.s = s};
    coil_group g;
    coil_group_init(&g);
    for (int i = 0; i < TASKS; i++) coil_group_spawn(&g, one_failing_id, &f);
    ASSERT_EQ(coil_group_wait(&g), 0);
    coil_group_destroy(&g);
    for (int i = 0; i < TASKS; i++) ASSERT_EQ(f.errors[i], -EROFS);
    /* The condition clears: no gap. */
    ASSERT_EQ(coil__store_set_readonly(s, false), 0);
    ASSERT_EQ(coil__store_next_id(s, &v), 0);
    ASSERT_EQ(v, 2);
    ASSERT_EQ(coil__store_close(s), 0);
    s = fx_open(dir, NULL);
    ASSERT_EQ(coil__store_next_id(s, &v), 0);
    ASSERT_EQ(v, 3);
    ASSERT_EQ(coil__store_close(s), 0);
    return coil_ok(NULL);
}

TEST(ids_failed_commit_leaves_no_gap) {
    char *dir = fx_tmpdir();
    RUN_MAIN(failed_commit_main, dir);
    fx_rmtree(dir);
}
