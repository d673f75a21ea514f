/* tests/jobs/store/store_fixture.h: scratch data directories and shorthands for
 * the job store's tests. */
#ifndef COIL_TEST_STORE_FIXTURE_H
#define COIL_TEST_STORE_FIXTURE_H

#include <ftw.h>
#include <unistd.h>

#include "jobs/store/store.h"
#include "test.h"

/* A fresh empty directory (malloc'd path). */
static inline char *fx_tmpdir(void) {
    const char *base = getenv("TMPDIR");
    char tmpl[512];
    snprintf(tmpl, sizeof tmpl, "%s/coil-store-XXXXXX", base && *base ? base : "/tmp");
    ASSERT(mkdtemp(tmpl) != NULL);
    char *dir = strdup(tmpl);
    ASSERT(dir != NULL);
    return dir;
}

static inline int fx_rm_entry(const char *path, const struct stat *st, int flag,
                              struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Removes the directory and everything in it, and frees `dir`. */
static inline void fx_rmtree(char *dir) {
    nftw(dir, fx_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

static inline coil__store *fx_open(const char *dir, const coil__store_opts *opts) {
    coil__store *s = NULL;
    ASSERT_EQ(coil__store_open(dir, opts, &s), 0);
    ASSERT(s != NULL);
    return s;
}

/* Enqueues a job of `kind` with a JSON-ish payload and a priority; returns 0
 * or the error, with *out filled on success. */
static inline int fx_enqueue(coil__store *s, const char *kind, int priority, coil__enqueued *out) {
    const char payload[] = "{\"n\":1}";
    coil__job_spec spec = {
        .kind = kind,
        .payload = payload,
        .payload_len = sizeof payload - 1,
        .priority = priority,
    };
    return coil__store_enqueue(s, &spec, out);
}

/* Total number of jobs. */
static inline uint64_t fx_total(coil__store *s) {
    uint64_t counts[COIL__JOB_NSTATES];
    ASSERT_EQ(coil__store_counts(s, counts), 0);
    uint64_t n = 0;
    for (int i = 0; i < COIL__JOB_NSTATES; i++) n += counts[i];
    return n;
}

/* qsort comparison of uint64_t values, ascending. */
static inline int fx_cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* What a claim was before the scheduler's peek and start: takes the next
 * runnable job (peek one, start it) and returns its record as it is now.
 * Returns 0 with *out set (the caller frees it), -EAGAIN with *next_run_at
 * (may be NULL) as peek sets it, or an error. Suspends. */
static inline int fx_claim(coil__store *s, const char *owner, coil__job **out,
                           int64_t *next_run_at) {
    coil__job *peeked = NULL;
    size_t n = 0;
    *out = NULL;
    int err = coil__store_peek(s, NULL, 0, &peeked, 1, 0, &n, next_run_at);
    if (err) return err;
    err = coil__store_start(s, peeked->id, owner, NULL);
    if (!err) err = coil__store_get(s, peeked->id, out);
    coil__job_free(peeked);
    return err;
}

static inline coil__job_state fx_state(coil__store *s, const char *id) {
    coil__job *j = NULL;
    ASSERT_EQ(coil__store_get(s, id, &j), 0);
    coil__job_state st = j->state;
    coil__job_free(j);
    return st;
}

#endif
