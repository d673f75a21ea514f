/* tests/jobs/store/store_fixture.h: scratch data directories and shorthands for
 * the job store's tests. */
#ifndef COIL_TEST_STORE_FIXTURE_H
#define COIL_TEST_STORE_FIXTURE_H

#include <ftw.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <unistd.h>

#include "jobs/store/store.h"
#include "test.h"

/* The store tests run on both backends. ctest runs each case a second
 * time with COIL_TEST_STORE=pg and COIL_TEST_PG_STATE naming the state
 * directory of the throwaway server tests/pg/pg_tmp.sh started (its `url`
 * file): then every scratch place is a fresh database on that server. */
static inline bool fx_pg(void) {
    const char *b = getenv("COIL_TEST_STORE");
    return b && strcmp(b, "pg") == 0;
}

/* The admin URL of the test server (malloc'd), ending in "/postgres?host=...". */
static inline char *fx_pg_admin_url(void) {
    const char *state = getenv("COIL_TEST_PG_STATE");
    ASSERT(state != NULL);
    char path[1024];
    snprintf(path, sizeof path, "%s/skipped", state);
    if (access(path, F_OK) == 0) { /* no PostgreSQL binaries: say so and skip */
        fprintf(stderr, "skipped: PostgreSQL is not installed (scripts/deps test installs it)\n");
        exit(77);
    }
    snprintf(path, sizeof path, "%s/url", state);
    FILE *f = fopen(path, "r");
    ASSERT(f != NULL); /* the pg/start fixture did not run */
    char url[1024];
    ASSERT(fgets(url, sizeof url, f) != NULL);
    fclose(f);
    url[strcspn(url, "\n")] = '\0';
    char *dup = strdup(url);
    ASSERT(dup != NULL);
    return dup;
}

/* The URL of database `db` on the test server (malloc'd). */
static inline char *fx_pg_url(const char *db) {
    char *admin = fx_pg_admin_url();
    char *slash = strstr(admin, "/postgres?");
    ASSERT(slash != NULL);
    *slash = '\0';
    char url[1200];
    snprintf(url, sizeof url, "%s/%s?%s", admin, db, slash + strlen("/postgres?"));
    free(admin);
    char *dup = strdup(url);
    ASSERT(dup != NULL);
    return dup;
}

/* Runs `sql` (one or more statements) on the database at `url`; fails the
 * test unless it succeeds. Returns the first column of the first row of
 * the last statement as an integer (0 if it returned no rows). */
static inline long long fx_pg_sql(const char *url, const char *sql) {
    PGconn *c = PQconnectdb(url);
    ASSERT(PQstatus(c) == CONNECTION_OK);
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fprintf(stderr, "%s: %s", sql, PQerrorMessage(c));
    ASSERT(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK);
    long long v = st == PGRES_TUPLES_OK && PQntuples(r) ? atoll(PQgetvalue(r, 0, 0)) : 0;
    PQclear(r);
    PQfinish(c);
    return v;
}

/* Runs one SQL command on the admin database. */
static inline void fx_pg_admin(const char *sql) {
    char *admin = fx_pg_admin_url();
    fx_pg_sql(admin, sql);
    free(admin);
}

/* A fresh empty place for a store (malloc'd): a directory, or on
 * PostgreSQL the URL of a new database. */
static inline char *fx_tmpdir(void) {
    if (fx_pg()) {
        char db[64], sql[128];
        static unsigned n;
        snprintf(db, sizeof db, "coil_t_%ld_%u", (long)getpid(), n++);
        snprintf(sql, sizeof sql, "CREATE DATABASE %s", db);
        fx_pg_admin(sql);
        return fx_pg_url(db);
    }
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

/* Removes the place and everything in it (a directory, or a database), and
 * frees `where`. */
static inline void fx_rmtree(char *where) {
    if (strncmp(where, "postgresql://", 13) == 0) {
        const char *q = strchr(where, '?'), *db = q;
        ASSERT(q != NULL);
        while (db > where && db[-1] != '/') db--;
        char sql[128];
        snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %.*s WITH (FORCE)", (int)(q - db), db);
        fx_pg_admin(sql);
    } else {
        nftw(where, fx_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    free(where);
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

/* The one follow-up job of `parent` (asserted: exactly one), read in full. */
static inline coil__job *fx_only_followup(coil__store *s, const char *parent) {
    coil__job_filter f = {.state = -1, .parent = parent};
    coil__job_list l;
    ASSERT_EQ(coil__store_list(s, &f, &l), 0);
    ASSERT_EQ(l.n, 1);
    coil__job *j = NULL;
    ASSERT_EQ(coil__store_get(s, l.jobs[0]->id, &j), 0);
    coil__job_list_free(&l);
    return j;
}

#endif
