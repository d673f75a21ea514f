/* tests/app/test_migrate.c: `coil migrate --store X`, the real binary, on
 * both backends (COIL_TEST_BOTH_STORES): it creates the schema, says so,
 * and says it is current the second time; several at once agree; a schema
 * newer than the build, an unreachable store and (SQLite) a directory a
 * server holds each end in exit status 1 with the cause. */
#include "app/serve_harness.h"
#include "jobs/store/store_fixture.h"

#include <sqlite3.h>

/* `coil migrate --store where` in dir, as tag. */
static pid_t spawn_migrate(const char *dir, const char *tag, const char *where) {
    return serve_coil_spawn(dir, tag, (const char *const[]){"migrate", "--store", where, NULL});
}

static void run_migrate(const char *dir, const char *where, serve_ran *r) {
    serve_coil_collect(spawn_migrate(dir, "migrate", where), dir, "migrate", r);
}

/* The number of lines in `s`. */
static int lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

TEST(migrate_creates_the_schema_then_finds_it_current) {
    char *where = fx_tmpdir();
    serve_proc d;
    serve_init(&d);
    serve_ran r;
    run_migrate(d.dir, where, &r);
    ASSERT_EQ(r.status, 0);
    ASSERT_CONTAINS(r.out, "schema created (version 2)");
    serve_ran_free(&r);
    run_migrate(d.dir, where, &r);
    ASSERT_EQ(r.status, 0);
    ASSERT_CONTAINS(r.out, "schema is current (version 2)");
    serve_ran_free(&r);
    /* The schema is real: a store opens on it and takes a job. */
    if (fx_pg()) {
        ASSERT_EQ(fx_pg_sql(where, "SELECT max(version) FROM coil_schema"), 2);
        ASSERT_EQ(fx_pg_sql(where, "SELECT count(*) FROM coil_jobs"), 0);
        ASSERT_EQ(fx_pg_sql(where, "SELECT count(*) FROM coil_enqueue('a.b', '{}', '{}')"), 1);
        ASSERT_EQ(fx_pg_sql(where, "SELECT count(*) FROM coil_jobs WHERE kind = 'a.b'"), 1);
    } else {
        char db[600];
        snprintf(db, sizeof db, "%s/jobs.db", where);
        sqlite3 *h;
        ASSERT_EQ(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        sqlite3_stmt *st;
        ASSERT_EQ(sqlite3_prepare_v2(h, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
        ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
        ASSERT_EQ(sqlite3_column_int(st, 0), 2);
        sqlite3_finalize(st);
        ASSERT_EQ(sqlite3_prepare_v2(h, "SELECT count(*) FROM jobs", -1, &st, NULL), SQLITE_OK);
        ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
        sqlite3_finalize(st);
        sqlite3_close(h);
    }
    serve_cleanup(&d);
    fx_rmtree(where);
}

/* Four at once on an empty store: on PostgreSQL all succeed (the advisory
 * lock serialises them) and exactly one created the schema; on SQLite the
 * directory lock lets one in and the rest say a coil has it open. */
TEST(several_migrates_at_once_agree) {
    enum { N = 4 };
    char *where = fx_tmpdir();
    serve_proc d;
    serve_init(&d);
    pid_t pids[N];
    char tags[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(tags[i], sizeof tags[i], "migrate-%d", i);
        pids[i] = spawn_migrate(d.dir, tags[i], where);
    }
    int created = 0, ok = 0, busy = 0;
    for (int i = 0; i < N; i++) {
        serve_ran r;
        serve_coil_collect(pids[i], d.dir, tags[i], &r);
        if (r.status == 0) ok++;
        if (strstr(r.out, "schema created")) created++;
        if (r.status == 1 && strstr(r.err, "a running coil has it open")) busy++;
        if (r.status) fprintf(stderr, "migrate %d: %d: %s", i, r.status, r.err);
        serve_ran_free(&r);
    }
    ASSERT_EQ(created, 1);
    if (fx_pg()) {
        ASSERT_EQ(ok, N);
        ASSERT_EQ(fx_pg_sql(where, "SELECT count(*) FROM coil_schema"), 2);
    } else {
        ASSERT_GE(ok, 1);
        ASSERT_EQ(ok + busy, N);
    }
    serve_cleanup(&d);
    fx_rmtree(where);
}

/* The one integer `sql` answers. */
static int sq_int(sqlite3 *h, const char *sql) {
    sqlite3_stmt *st;
    ASSERT_EQ(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    int v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* A version-1 job store (before follow-ups), as coil made it then. */
static const char v1_schema[] =
    "CREATE TABLE jobs (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,"
    " payload BLOB NOT NULL, priority INTEGER NOT NULL, run_at INTEGER NOT NULL,"
    " idem_key TEXT UNIQUE, attempts INTEGER NOT NULL DEFAULT 0, max_attempts INTEGER NOT NULL,"
    " backoff_base INTEGER NOT NULL, backoff_cap INTEGER NOT NULL, timeout INTEGER NOT NULL,"
    " state INTEGER NOT NULL, cancel_requested INTEGER NOT NULL DEFAULT 0, lease_owner TEXT,"
    " progress INTEGER NOT NULL DEFAULT 0, progress_msg TEXT, result BLOB, result_type TEXT,"
    " result_path TEXT, error_msg TEXT, error_signal INTEGER NOT NULL DEFAULT 0,"
    " error_exit INTEGER NOT NULL DEFAULT -1, error_oom INTEGER NOT NULL DEFAULT 0,"
    " created INTEGER NOT NULL, started INTEGER NOT NULL DEFAULT 0,"
    " finished INTEGER NOT NULL DEFAULT 0, updated INTEGER NOT NULL);"
    "CREATE INDEX jobs_runnable ON jobs(priority DESC, run_at, seq) WHERE state IN (0, 3);"
    "CREATE INDEX jobs_by_state ON jobs(state, seq);"
    "CREATE INDEX jobs_by_kind ON jobs(kind, seq);"
    "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT INTO counters VALUES ('ids', 7);"
    "INSERT INTO jobs (id, kind, payload, priority, run_at, max_attempts, backoff_base,"
    " backoff_cap, timeout, state, created, updated) VALUES"
    " ('0123456789abcdef0123456789abcdef', 'demo.sleep', '{}', 0, 0, 3, 1000, 3600000, 0, 2,"
    " 1, 1);"
    "PRAGMA user_version=1;";

TEST(a_version_1_store_is_upgraded_in_place) { /* SQLite only */
    char *where = fx_tmpdir();
    char db[600];
    snprintf(db, sizeof db, "%s/jobs.db", where);
    sqlite3 *h;
    ASSERT_EQ(sqlite3_open(db, &h), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(h, v1_schema, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
    serve_proc d;
    serve_init(&d);
    serve_ran r;
    run_migrate(d.dir, where, &r);
    if (r.status) coil_test_fail(__FILE__, __LINE__, "%s", r.err);
    ASSERT_CONTAINS(r.out, "schema upgraded from version 1 to 2");
    serve_ran_free(&r);
    ASSERT_EQ(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    /* The old job is there, and the new columns and indexes. */
    ASSERT_EQ(sq_int(h, "SELECT count(*) FROM jobs WHERE followups IS NULL"
                        " AND followups_pending = 0 AND parent IS NULL AND state = 2"),
              1);
    ASSERT_EQ(sq_int(h, "SELECT count(*) FROM sqlite_schema WHERE name IN"
                        " ('jobs_followups_due', 'jobs_by_parent')"),
              2);
    sqlite3_close(h);
    run_migrate(d.dir, where, &r);
    ASSERT_CONTAINS(r.out, "schema is current (version 2)");
    serve_ran_free(&r);
    serve_cleanup(&d);
    fx_rmtree(where);
}

TEST(a_newer_schema_is_refused_with_its_version) {
    char *where = fx_tmpdir();
    serve_proc d;
    serve_init(&d);
    serve_ran r;
    run_migrate(d.dir, where, &r);
    ASSERT_EQ(r.status, 0);
    serve_ran_free(&r);
    if (fx_pg()) {
        fx_pg_sql(where, "INSERT INTO coil_schema VALUES (99)");
    } else {
        char db[600];
        snprintf(db, sizeof db, "%s/jobs.db", where);
        sqlite3 *h;
        ASSERT_EQ(sqlite3_open(db, &h), SQLITE_OK);
        ASSERT_EQ(sqlite3_exec(h, "PRAGMA user_version=99", NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(h);
    }
    run_migrate(d.dir, where, &r);
    ASSERT_EQ(r.status, 1);
    ASSERT_CONTAINS(r.err, "99");
    ASSERT_CONTAINS(r.err, "newer");
    serve_ran_free(&r);
    serve_cleanup(&d);
    fx_rmtree(where);
}

/* A store that cannot be reached: a line or two that name the cause. */
TEST(an_unreachable_store_fails_with_its_cause) {
    serve_proc d;
    serve_init(&d);
    serve_ran r;
    coil_time t0 = coil_now();
    if (fx_pg()) run_migrate(d.dir, "postgresql://127.0.0.1:1/coil", &r); /* nothing listens */
    else run_migrate(d.dir, "sqlite:/proc/coil-no-such/dir", &r);
    ASSERT_EQ(r.status, 1);
    ASSERT_GE(lines(r.err), 1);
    ASSERT_LE(lines(r.err), 2);
    ASSERT_CONTAINS(r.err, "coil migrate: cannot migrate");
    ASSERT_CONTAINS(r.err, fx_pg() ? "cannot connect" : "not found");
    ASSERT_LE(coil_now() - t0, COIL_SEC(10)); /* never a hang */
    ASSERT_EQ(r.out[0], '\0');
    serve_ran_free(&r);
    serve_cleanup(&d);
}

TEST(a_directory_a_server_holds_is_busy) { /* SQLite only: PostgreSQL has no such lock */
    serve_proc p;
    serve_start(&p, NULL);
    serve_ran r;
    run_migrate(p.dir, p.data, &r);
    ASSERT_EQ(r.status, 1);
    ASSERT_CONTAINS(r.err, "a running coil has it open");
    serve_ran_free(&r);
    serve_stop(&p);
    run_migrate(p.dir, p.data, &r); /* and once it is gone, the schema is current */
    ASSERT_EQ(r.status, 0);
    ASSERT_CONTAINS(r.out, "schema is current");
    serve_ran_free(&r);
    serve_cleanup(&p);
}
