/* tests/app/test_migrate.c: `coil migrate --store X`, the real binary, on
 * both backends (COIL_TEST_BOTH_STORES): it creates the schema, says so,
 * and says it is current the second time; several at once agree; a schema
 * newer than the build, an unreachable store and (SQLite) a directory a
 * server holds each end in exit status 1 with the cause. */
#include "app/serve_harness.h"
#include "jobs/store/store_fixture.h"

#include <sqlite3.h>

typedef struct {
    int status;     /* exit status, or -1 if it did not exit normally */
    char out[1024]; /* its stdout */
    char err[2048]; /* its stderr */
} migrate_run;

/* Reads `fd` into buf until EOF (a NUL-terminated prefix of what came). */
static void drain(int fd, char *buf, size_t size) {
    size_t n = 0;
    ssize_t got;
    while ((got = read(fd, buf + n, size - 1 - n)) > 0) n += (size_t)got;
    buf[n] = '\0';
    close(fd);
}

/* Starts `coil migrate --store where`, its stdout and stderr going to the
 * files `out` and `err`; returns its pid. */
static pid_t spawn_migrate(const char *where, const char *out, const char *err) {
    char bin[PATH_MAX];
    serve_binary(bin, sizeof bin);
    fflush(NULL);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0) _exit(127);
        execl(bin, bin, "migrate", "--store", where, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void collect(pid_t pid, const char *out, const char *err, migrate_run *r) {
    int ws = serve_wait_exit(pid);
    r->status = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
    int fd = open(out, O_RDONLY);
    ASSERT(fd >= 0);
    drain(fd, r->out, sizeof r->out);
    fd = open(err, O_RDONLY);
    ASSERT(fd >= 0);
    drain(fd, r->err, sizeof r->err);
    unlink(out);
    unlink(err);
}

static void run_migrate(const char *where, migrate_run *r) {
    char out[64], err[64];
    snprintf(out, sizeof out, "/tmp/coil-migrate-%ld.out", (long)getpid());
    snprintf(err, sizeof err, "/tmp/coil-migrate-%ld.err", (long)getpid());
    collect(spawn_migrate(where, out, err), out, err, r);
}

/* The number of lines in `s`. */
static int lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

TEST(migrate_creates_the_schema_then_finds_it_current) {
    char *where = fx_tmpdir();
    static migrate_run r;
    run_migrate(where, &r);
    ASSERT_EQ(r.status, 0);
    ASSERT(strstr(r.out, "schema created (version 1)") != NULL);
    run_migrate(where, &r);
    ASSERT_EQ(r.status, 0);
    ASSERT(strstr(r.out, "schema is current (version 1)") != NULL);
    /* The schema is real: a store opens on it and takes a job. */
    if (fx_pg()) {
        ASSERT_EQ(fx_pg_sql(where, "SELECT max(version) FROM coil_schema"), 1);
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
        ASSERT_EQ(sqlite3_column_int(st, 0), 1);
        sqlite3_finalize(st);
        ASSERT_EQ(sqlite3_prepare_v2(h, "SELECT count(*) FROM jobs", -1, &st, NULL), SQLITE_OK);
        ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
        sqlite3_finalize(st);
        sqlite3_close(h);
    }
    fx_rmtree(where);
}

/* Four at once on an empty store: on PostgreSQL all succeed (the advisory
 * lock serialises them) and exactly one created the schema; on SQLite the
 * directory lock lets one in and the rest say a coil has it open. */
TEST(several_migrates_at_once_agree) {
    enum { N = 4 };
    char *where = fx_tmpdir();
    pid_t pids[N];
    char outs[N][64], errs[N][64];
    for (int i = 0; i < N; i++) {
        snprintf(outs[i], sizeof outs[i], "/tmp/coil-migrate-%ld-%d.out", (long)getpid(), i);
        snprintf(errs[i], sizeof errs[i], "/tmp/coil-migrate-%ld-%d.err", (long)getpid(), i);
        pids[i] = spawn_migrate(where, outs[i], errs[i]);
    }
    static migrate_run r[N];
    int created = 0, ok = 0, busy = 0;
    for (int i = 0; i < N; i++) {
        collect(pids[i], outs[i], errs[i], &r[i]);
        if (r[i].status == 0) ok++;
        if (strstr(r[i].out, "schema created")) created++;
        if (r[i].status == 1 && strstr(r[i].err, "a running coil has it open")) busy++;
        if (r[i].status) fprintf(stderr, "migrate %d: %d: %s", i, r[i].status, r[i].err);
    }
    ASSERT_EQ(created, 1);
    if (fx_pg()) {
        ASSERT_EQ(ok, N);
        ASSERT_EQ(fx_pg_sql(where, "SELECT count(*) FROM coil_schema"), 1);
    } else {
        ASSERT_GE(ok, 1);
        ASSERT_EQ(ok + busy, N);
    }
    fx_rmtree(where);
}

TEST(a_newer_schema_is_refused_with_its_version) {
    char *where = fx_tmpdir();
    static migrate_run r;
    run_migrate(where, &r);
    ASSERT_EQ(r.status, 0);
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
    run_migrate(where, &r);
    ASSERT_EQ(r.status, 1);
    ASSERT(strstr(r.err, "99") != NULL);
    ASSERT(strstr(r.err, "newer") != NULL);
    fx_rmtree(where);
}

/* A store that cannot be reached: a line or two that name the cause. */
TEST(an_unreachable_store_fails_with_its_cause) {
    static migrate_run r;
    coil_time t0 = coil_now();
    if (fx_pg()) run_migrate("postgresql://127.0.0.1:1/coil", &r); /* nothing listens */
    else run_migrate("sqlite:/proc/coil-no-such/dir", &r);
    ASSERT_EQ(r.status, 1);
    ASSERT_GE(lines(r.err), 1);
    ASSERT_LE(lines(r.err), 2);
    ASSERT(strstr(r.err, "coil migrate: cannot migrate") != NULL);
    ASSERT(strstr(r.err, fx_pg() ? "cannot connect" : "not found") != NULL);
    ASSERT_LE(coil_now() - t0, COIL_SEC(10)); /* never a hang */
    ASSERT_EQ(r.out[0], '\0');
}

TEST(a_directory_a_server_holds_is_busy) { /* SQLite only: PostgreSQL has no such lock */
    serve_proc p;
    serve_start(&p, NULL);
    static migrate_run r;
    run_migrate(p.data, &r);
    ASSERT_EQ(r.status, 1);
    ASSERT(strstr(r.err, "a running coil has it open") != NULL);
    serve_stop(&p);
    run_migrate(p.data, &r); /* and once it is gone, the schema is current */
    ASSERT_EQ(r.status, 0);
    ASSERT(strstr(r.out, "schema is current") != NULL);
    serve_cleanup(&p);
}

