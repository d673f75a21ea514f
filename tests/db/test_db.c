/* tests/db/test_db.c: coil_db on real SQLite files, and the cases that are
 * not "SQLite only" again on a real PostgreSQL (COIL_TEST_BOTH_STORES).
 * COIL_TEST_THREADS: connections run on threads of their own. */
#include "test.h"

#include <coil/coil.h>

#include "jobs/store/store_fixture.h"
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A fresh database (malloc'd): a file in a new directory, or on the
 * PostgreSQL runs the URL of a new database. */
static char *tmp_db(void) {
    if (fx_pg()) return fx_tmpdir();
    char dir[] = "/tmp/coil-db-XXXXXX";
    ASSERT(mkdtemp(dir) != NULL);
    char *path = malloc(strlen(dir) + 16);
    ASSERT(path != NULL);
    sprintf(path, "%s/t.db", dir);
    return path;
}

static void rm_db(char *path) {
    if (fx_pg()) {
        fx_rmtree(path);
        return;
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf \"$(dirname '%s')\"", path);
    ASSERT_EQ(system(cmd), 0);
    free(path);
}

static coil_db *open_db(const char *path, size_t readers) {
    coil_db_config cfg;
    coil_db_config_init(&cfg);
    cfg.readers = readers;
    coil_db *db;
    int err = coil_db_open(path, &cfg, &db);
    if (err) coil_test_fail(__FILE__, __LINE__, "open: %d %s", err, coil_db_error());
    return db;
}

static void exec_ok(coil_db *db, const char *sql) {
    int err = coil_db_exec(db, sql, COIL_DB_NO_ARGS, NULL);
    if (err) coil_test_fail(__FILE__, __LINE__, "%s: %d %s", sql, err, coil_db_error());
}

static long long count_of(coil_db *db, const char *sql) {
    coil_db_rows *rows;
    ASSERT_EQ(coil_db_query(db, sql, COIL_DB_NO_ARGS, &rows), 0);
    ASSERT_EQ(coil_db_next(rows), 1);
    long long n = coil_db_int(rows, 0);
    ASSERT_EQ(coil_db_next(rows), 0);
    coil_db_rows_close(rows);
    return n;
}

/* ------------------------------------------------------------------ values */

static coil_result roundtrip_main(void *arg) {
    coil_db *db = open_db(arg, 2);
    exec_ok(db, "CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n TEXT)");
    const char text[] = "it's \"quoted\", accented: caf\xc3\xa9, tab\there";
    const unsigned char blob[] = {0, 1, 2, 255, 0, 7};
    coil_db_done done;
    ASSERT_EQ(coil_db_exec(db, "INSERT INTO t VALUES (?, ?, ?, ?, ?)",
                           COIL_DB_ARGS(COIL_DB_INT(-42), COIL_DB_REAL(2.5), COIL_DB_TEXT(text),
                                        COIL_DB_BLOB(blob, sizeof blob), COIL_DB_NULL),
                           &done),
              0);
    ASSERT_EQ(done.changes, 1);
    ASSERT_EQ(done.last_id, 1);
    coil_db_rows *rows;
    ASSERT_EQ(coil_db_query(db, "SELECT i, r, s, b, n FROM t WHERE i = ?",
                            COIL_DB_ARGS(COIL_DB_INT(-42)), &rows),
              0);
    ASSERT_EQ(coil_db_columns(rows), 5);
    ASSERT_STR_EQ(coil_db_column_name(rows, 2), "s");
    ASSERT_EQ(coil_db_next(rows), 1);
    ASSERT_EQ(coil_db_type_of(rows, 0), COIL_DB_TYPE_INT);
    ASSERT_EQ(coil_db_int(rows, 0), -42);
    ASSERT(coil_db_real(rows, 1) == 2.5);
    size_t len;
    ASSERT_STR_EQ(coil_db_text(rows, 2, &len), text);
    ASSERT_EQ(len, strlen(text));
    const void *b = coil_db_blob(rows, 3, &len);
    ASSERT_EQ(len, sizeof blob);
    ASSERT_EQ(memcmp(b, blob, sizeof blob), 0);
    ASSERT_EQ(coil_db_type_of(rows, 4), COIL_DB_TYPE_NULL);
    ASSERT(coil_db_text(rows, 4, NULL) == NULL);
    ASSERT_EQ(coil_db_next(rows), 0);
    ASSERT_EQ(coil_db_next(rows), 0); /* the end stays the end */
    coil_db_rows_close(rows);

    char *json;
    ASSERT_EQ(coil_db_query_json(db, "SELECT i, r, s, b, n FROM t", COIL_DB_NO_ARGS, &json, &len),
              0);
    ASSERT_STR_EQ(json, "[{\"i\":-42,\"r\":2.5,\"s\":\"it's \\\"quoted\\\", accented: "
                        "caf\xc3\xa9, tab\\there\",\"b\":\"AAEC/wAH\",\"n\":null}]");
    ASSERT_EQ(len, strlen(json));
    free(json);
    ASSERT_EQ(coil_db_query_json(db, "SELECT * FROM t WHERE 0", COIL_DB_NO_ARGS, &json, NULL), 0);
    ASSERT_STR_EQ(json, "[]");
    free(json);
    ASSERT_EQ(coil_db_close(db), 0);
    return coil_ok(NULL);
}

TEST(values_round_trip_bound_never_formatted) { /* SQLite only */
    char *path = tmp_db();
    RUN_MAIN(roundtrip_main, path);
    rm_db(path);
}

/* ------------------------------------------------------------------ chunks */

static int fill(coil_db_tx *tx, void *arg) {
    int n = *(int *)arg;
    for (int i = 0; i < n; i++) {
        int err = coil_db_tx_exec(tx, "INSERT INTO t (n, s) VALUES (?, ?)",
                                  COIL_DB_ARGS(COIL_DB_INT(i), COIL_DB_TEXT("row")), NULL);
        if (err) return err;
    }
    return 0;
}

static coil_result chunks_main(void *arg) {
    coil_db *db = open_db(arg, 1); /* one reader: a query left open would hold it */
    exec_ok(db, "CREATE TABLE t (n INTEGER, s TEXT)");
    int n = 1000;
    ASSERT_EQ(coil_db_transaction(db, fill, &n), 0);
    coil_db_rows *rows;
    ASSERT_EQ(coil_db_query(db, "SELECT n FROM t ORDER BY n", COIL_DB_NO_ARGS, &rows), 0);
    long long seen = 0, sum = 0;
    int more;
    while ((more = coil_db_next(rows)) > 0) {
        ASSERT_EQ(coil_db_int(rows, 0), seen);
        sum += coil_db_int(rows, 0);
        seen++;
    }
    ASSERT_EQ(more, 0);
    ASSERT_EQ(seen, 1000); /* four chunks of 256 and less */
    ASSERT_EQ(sum, 999 * 1000 / 2);
    coil_db_rows_close(rows);
    /* Closed after one row: the reader is given back for the next query. */
    for (int round = 0; round < 3; round++) {
        ASSERT_EQ(coil_db_query(db, "SELECT n FROM t", COIL_DB_NO_ARGS, &rows), 0);
        ASSERT_EQ(coil_db_next(rows), 1);
        coil_db_rows_close(rows);
    }
    ASSERT_EQ(count_of(db, "SELECT count(*) FROM t"), 1000);
    ASSERT_EQ(coil_db_close(db), 0);
    return coil_ok(NULL);
}

TEST(rows_come_in_chunks_and_close_gives_the_connection_back) {
    char *path = tmp_db();
    RUN_MAIN(chunks_main, path);
    rm_db(path);
}

/* ------------------------------------------------------------------ errors */

static coil_result errors_main(void *arg) {
    coil_db *db = open_db(arg, 1);
    exec_ok(db, "CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL CHECK (v >= 0))");
    ASSERT_EQ(coil_db_exec(db, "SELEKT 1", COIL_DB_NO_ARGS, NULL), -EINVAL);
    ASSERT_CONTAINS(coil_db_error(), "syntax error");
    ASSERT_EQ(coil_db_exec(db, "INSERT INTO t VALUES (?, ?)", COIL_DB_ARGS(COIL_DB_TEXT("a")),
                           NULL),
              -EINVAL);
    ASSERT_CONTAINS(coil_db_error(), "2 parameters; 1 values");
    ASSERT_EQ(coil_db_exec(db, "INSERT INTO t VALUES ('a', 1); DROP TABLE t", COIL_DB_NO_ARGS,
                           NULL),
              -EINVAL);
    ASSERT_CONTAINS(coil_db_error(), "one statement a call");
    ASSERT_EQ(count_of(db, "SELECT count(*) FROM t"), 0); /* not half run */
    exec_ok(db, "INSERT INTO t VALUES ('a', 1)");
    ASSERT_EQ(coil_db_exec(db, "INSERT INTO t VALUES ('a', 2)", COIL_DB_NO_ARGS, NULL), -EEXIST);
    ASSERT_CONTAINS(coil_db_error(), "UNIQUE");
    ASSERT_EQ(coil_db_exec(db, "INSERT INTO t VALUES ('b', NULL)", COIL_DB_NO_ARGS, NULL), -EPERM);
    ASSERT_EQ(coil_db_exec(db, "INSERT INTO t VALUES ('b', -1)", COIL_DB_NO_ARGS, NULL), -EPERM);
    ASSERT_CONTAINS(coil_db_error(), "CHECK");
    coil_db_rows *rows;
    ASSERT_EQ(coil_db_query(db, "SELECT nope FROM t", COIL_DB_NO_ARGS, &rows), -EINVAL);
    ASSERT(rows == NULL);
    /* A statement that writes, asked as a query, runs on the writer. */
    ASSERT_EQ(coil_db_query(db, "INSERT INTO t VALUES ('c', 3) RETURNING v", COIL_DB_NO_ARGS,
                            &rows),
              0);
    ASSERT_EQ(coil_db_next(rows), 1);
    ASSERT_EQ(coil_db_int(rows, 0), 3);
    ASSERT_EQ(coil_db_next(rows), 0);
    coil_db_rows_close(rows);
    ASSERT_EQ(count_of(db, "SELECT count(*) FROM t"), 2);
    /* After all that, the connections are fine. */
    exec_ok(db, "INSERT INTO t VALUES ('d', 4)");
    ASSERT_EQ(coil_db_close(db), 0);

    /* Open: a directory that does not exist, a file that is not a database. */
    char bad[600];
    snprintf(bad, sizeof bad, "%s.nodir/x.db", (const char *)arg);
    ASSERT_EQ(coil_db_open(bad, NULL, &db), -ENOENT);
    ASSERT_CONTAINS(coil_db_error(), "x.db");
    snprintf(bad, sizeof bad, "%s.junk", (const char *)arg);
    int fd = open(bad, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT(fd >= 0);
    ASSERT_EQ(write(fd, "this is not an SQLite database, not at all..........", 52), 52);
    close(fd);
    ASSERT_EQ(coil_db_open(bad, NULL, &db), -EBADMSG);
    ASSERT_EQ(coil_db_open("mysql://x/y", NULL, &db), -EINVAL);
    ASSERT_EQ(coil_db_open("postgresql://127.0.0.1:1/nothing", NULL, &db), -ECONNREFUSED);
    ASSERT_CONTAINS(coil_db_error(), "127.0.0.1");
    return coil_ok(NULL);
}

TEST(errors_are_named_and_leave_connections_clean) { /* SQLite only */
    char *path = tmp_db();
    RUN_MAIN(errors_main, path);
    rm_db(path);
}

/* ------------------------------------------------------------------ transactions */

static int insert_then_fail(coil_db_tx *tx, void *arg) {
    (void)arg;
    int err = coil_db_tx_exec(tx, "INSERT INTO t VALUES (1)", COIL_DB_NO_ARGS, NULL);
    if (err) return err;
    /* The transaction sees its own write. */
    coil_db_rows *rows;
    err = coil_db_tx_query(tx, "SELECT count(*) FROM t", COIL_DB_NO_ARGS, &rows);
    if (err) return err;
    ASSERT_EQ(coil_db_next(rows), 1);
    ASSERT_EQ(coil_db_int(rows, 0), 1);
    coil_db_rows_close(rows);
    return -EIO; /* and then it fails */
}

static int insert_two(coil_db_tx *tx, void *arg) {
    coil_db *db = arg;
    int err = coil_db_tx_exec(tx, "INSERT INTO t VALUES (2)", COIL_DB_NO_ARGS, NULL);
    if (!err) err = coil_db_tx_exec(tx, "INSERT INTO t VALUES (3)", COIL_DB_NO_ARGS, NULL);
    /* Readers do not see it before the commit. */
    ASSERT_EQ(count_of(db, "SELECT count(*) FROM t"), 0);
    return err;
}

static coil_result tx_main(void *arg) {
    coil_db *db = open_db(arg, 2);
    exec_ok(db, "CREATE TABLE t (v INTEGER)");
    ASSERT_EQ(coil_db_transaction(db, insert_then_fail, NULL), -EIO);
    ASSERT_EQ(count_of(db, "SELECT count(*) FROM t"), 0); /* rolled back */
    ASSERT_EQ(coil_db_transaction(db, insert_two, db), 0);
    ASSERT_EQ(count_of(db, "SELECT count(*) FROM t"), 2);
    /* By hand: rollback. */
    coil_db_tx *tx;
    ASSERT_EQ(coil_db_begin(db, &tx), 0);
    ASSERT_EQ(coil_db_tx_exec(tx, "DELETE FROM t", COIL_DB_NO_ARGS, NULL), 0);
    ASSERT_EQ(coil_db_rollback(tx), 0);
    ASSERT_EQ(count_of(db, "SELECT count(*) FROM t"), 2);
    ASSERT_EQ(coil_db_close(db), 0);
    return coil_ok(NULL);
}

TEST(a_transaction_rolls_back_when_its_function_fails) {
    char *path = tmp_db();
    RUN_MAIN(tx_main, path);
    rm_db(path);
}

/* ------------------------------------------------------------------ interruption */

/* A query that runs for minutes: counts to 10^10. */
#define LONG_QUERY                                                                   \
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1e10) " \
    "SELECT count(*) FROM c"

typedef struct long_query {
    coil_db *db;
    int err;
    coil_time took;
} long_query;

static coil_result run_long(void *arg) {
    long_query *q = arg;
    coil_time t0 = coil_now();
    coil_db_rows *rows = NULL;
    q->err = coil_db_query(q->db, LONG_QUERY, COIL_DB_NO_ARGS, &rows);
    q->took = coil_now() - t0;
    coil_db_rows_close(rows);
    return coil_ok(NULL);
}

static coil_result ticker(void *arg) {
    int *ticks = arg;
    for (;;) {
        if (coil_sleep(COIL_MSEC(10))) return coil_ok(NULL);
        (*ticks)++;
    }
}

static coil_result cancel_main(void *arg) {
    coil_db *db = open_db(arg, 1); /* one reader: it must come back clean */
    exec_ok(db, "CREATE TABLE t (v INTEGER)");
    exec_ok(db, "INSERT INTO t VALUES (7)");
    /* Cancelled in the middle. */
    long_query q = {.db = db};
    int ticks = 0;
    coil_task *tick = coil_spawn(ticker, &ticks);
    coil_task *t = coil_spawn(run_long, &q);
    coil_sleep(COIL_MSEC(200));
    coil_cancel(t);
    ASSERT_EQ(coil_join(t, NULL), 0);
    ASSERT_EQ(q.err, -ECANCELED);
    ASSERT_LE(q.took, COIL_SEC(2)); /* 200 ms, and the interrupt */
    ASSERT_GE(ticks, 5);            /* the loop went on meanwhile */
    /* The reader is back, clean. */
    ASSERT_EQ(count_of(db, "SELECT v FROM t"), 7);
    /* A deadline. */
    coil_scope sc;
    coil_time t0 = coil_now();
    coil_scope_enter(&sc, coil_now() + COIL_MSEC(100));
    coil_db_rows *rows = NULL;
    int err = coil_db_query(db, LONG_QUERY, COIL_DB_NO_ARGS, &rows);
    coil_scope_exit(&sc);
    ASSERT_EQ(err, -ETIMEDOUT);
    ASSERT(rows == NULL);
    ASSERT_LE(coil_now() - t0, COIL_SEC(2));
    ASSERT_EQ(count_of(db, "SELECT v FROM t"), 7);
    /* Queued behind a busy reader, then cancelled: withdrawn, never run. */
    long_query first = {.db = db}, second = {.db = db};
    coil_task *a = coil_spawn(run_long, &first);
    coil_sleep(COIL_MSEC(50));
    coil_task *b = coil_spawn(run_long, &second);
    coil_sleep(COIL_MSEC(50));
    coil_cancel(b);
    ASSERT_EQ(coil_join(b, NULL), 0);
    ASSERT_EQ(second.err, -ECANCELED);
    ASSERT_LE(second.took, COIL_MSEC(500));
    coil_cancel(a);
    ASSERT_EQ(coil_join(a, NULL), 0);
    ASSERT_EQ(first.err, -ECANCELED);
    coil_cancel(tick);
    coil_join(tick, NULL);
    ASSERT_EQ(count_of(db, "SELECT v FROM t"), 7);
    ASSERT_EQ(coil_db_close(db), 0);
    return coil_ok(NULL);
}

TEST(a_cancelled_or_late_query_is_interrupted_and_its_connection_comes_back) {
    char *path = tmp_db();
    RUN_MAIN(cancel_main, path);
    rm_db(path);
}

/* A query queued right behind one that turns out long is not held up by
 * it, whether it came before the long one had run a while (its thread
 * then wakes another reader) or after (the query's own wake does). */
static coil_result behind_long_main(void *arg) {
    coil_db *db = open_db(arg, 2);
    exec_ok(db, "CREATE TABLE t (v INTEGER)");
    exec_ok(db, "INSERT INTO t VALUES (7)");
    for (int late = 0; late < 2; late++) {
        long_query q = {.db = db};
        coil_task *t = coil_spawn(run_long, &q);
        ASSERT_EQ(coil_yield(), 0); /* the long one is queued first */
        if (late) coil_sleep(COIL_MSEC(20));
        coil_scope sc;
        coil_scope_enter(&sc, coil_now() + COIL_SEC(5)); /* held up: fail, not hang */
        coil_db_rows *rows = NULL;
        int err = coil_db_query(db, "SELECT v FROM t", COIL_DB_NO_ARGS, &rows);
        coil_scope_exit(&sc);
        ASSERT_EQ(err, 0);
        ASSERT_EQ(coil_db_next(rows), 1);
        ASSERT_EQ(coil_db_int(rows, 0), 7);
        coil_db_rows_close(rows);
        ASSERT_EQ(q.took, 0); /* still running: the short one did not wait for it */
        coil_cancel(t);
        ASSERT_EQ(coil_join(t, NULL), 0);
        ASSERT_EQ(q.err, -ECANCELED);
    }
    ASSERT_EQ(coil_db_close(db), 0);
    return coil_ok(NULL);
}

TEST(a_query_behind_a_long_one_is_not_held_up) {
    char *path = tmp_db();
    RUN_MAIN(behind_long_main, path);
    rm_db(path);
}

/* Another process's write lock: the statement sleeps for it, up to the
 * busy timeout (or the task's deadline), while the loop goes on. */
static coil_result busy_main(void *arg) {
    coil_db_config cfg;
    coil_db_config_init(&cfg);
    cfg.busy_timeout = COIL_MSEC(300);
    coil_db *db;
    ASSERT_EQ(coil_db_open(arg, &cfg, &db), 0);
    exec_ok(db, "CREATE TABLE t (v INTEGER)");
    sqlite3 *other;
    ASSERT_EQ(sqlite3_open(arg, &other), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    int ticks = 0;
    coil_task *tick = coil_spawn(ticker, &ticks);
    coil_time t0 = coil_now();
    ASSERT_EQ(coil_db_exec(db, "INSERT INTO t VALUES (1)", COIL_DB_NO_ARGS, NULL), -EBUSY);
    coil_time took = coil_now() - t0;
    ASSERT_GE(took, COIL_MSEC(250));
    ASSERT_LE(took, COIL_SEC(2));
    ASSERT_GE(ticks, 10);
    /* The task's deadline, sooner than the busy timeout. */
    coil_scope sc;
    t0 = coil_now();
    coil_scope_enter(&sc, coil_now() + COIL_MSEC(50));
    int err = coil_db_exec(db, "INSERT INTO t VALUES (1)", COIL_DB_NO_ARGS, NULL);
    coil_scope_exit(&sc);
    ASSERT_EQ(err, -ETIMEDOUT);
    ASSERT_LE(coil_now() - t0, COIL_MSEC(250));
    /* Released: it goes through. */
    ASSERT_EQ(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    exec_ok(db, "INSERT INTO t VALUES (1)");
    coil_cancel(tick);
    coil_join(tick, NULL);
    ASSERT_EQ(coil_db_close(db), 0);
    return coil_ok(NULL);
}

TEST(a_locked_database_is_waited_for_with_a_deadline_not_a_spin) { /* SQLite only */
    char *path = tmp_db();
    RUN_MAIN(busy_main, path);
    rm_db(path);
}

/* ------------------------------------------------------------------ many tasks */

typedef struct crowd {
    coil_db *db;
    int next, failures;
} crowd;

static coil_result member(void *arg) {
    crowd *c = arg;
    int me = c->next++;
    coil_db_done done;
    if (coil_db_exec(c->db, "INSERT INTO t VALUES (?)", COIL_DB_ARGS(COIL_DB_INT(me)), &done) ||
        done.changes != 1)
        c->failures++;
    coil_db_rows *rows;
    if (coil_db_query(c->db, "SELECT v FROM t WHERE v = ?", COIL_DB_ARGS(COIL_DB_INT(me)),
                      &rows)) {
        c->failures++;
        return coil_ok(NULL);
    }
    if (coil_db_next(rows) != 1 || coil_db_int(rows, 0) != me) c->failures++;
    coil_db_rows_close(rows);
    return coil_ok(NULL);
}

static coil_result crowd_main(void *arg) {
    crowd c = {.db = open_db(arg, 3)}; /* 4 connections: the writer and 3 readers */
    exec_ok(c.db, "CREATE TABLE t (v INTEGER)");
    coil_group g;
    coil_group_init(&g);
    for (int i = 0; i < 100; i++) coil_group_spawn(&g, member, &c);
    ASSERT_EQ(coil_group_wait(&g), 0);
    coil_group_destroy(&g);
    ASSERT_EQ(c.failures, 0);
    ASSERT_EQ(count_of(c.db, "SELECT count(DISTINCT v) FROM t"), 100);
    ASSERT_EQ(coil_db_close(c.db), 0);
    return coil_ok(NULL);
}

TEST(a_hundred_tasks_share_four_connections) {
    char *path = tmp_db();
    RUN_MAIN(crowd_main, path);
    rm_db(path);
}

static coil_result read_only_main(void *arg) {
    coil_db *db = open_db(arg, 1);
    exec_ok(db, "CREATE TABLE t (v INTEGER)");
    exec_ok(db, "INSERT INTO t VALUES (5)");
    ASSERT_EQ(coil_db_close(db), 0);
    coil_db_config cfg;
    coil_db_config_init(&cfg);
    cfg.read_only = true;
    ASSERT_EQ(coil_db_open(arg, &cfg, &db), 0);
    ASSERT_EQ(count_of(db, "SELECT v FROM t"), 5);
    ASSERT_EQ(coil_db_exec(db, "INSERT INTO t VALUES (6)", COIL_DB_NO_ARGS, NULL), -EROFS);
    coil_db_rows *rows;
    ASSERT_EQ(coil_db_query(db, "INSERT INTO t VALUES (6) RETURNING v", COIL_DB_NO_ARGS, &rows),
              -EROFS);
    ASSERT_EQ(count_of(db, "SELECT count(*) FROM t"), 1);
    ASSERT_EQ(coil_db_close(db), 0);
    return coil_ok(NULL);
}

TEST(a_read_only_database_refuses_writes) { /* SQLite only */
    char *path = tmp_db();
    RUN_MAIN(read_only_main, path);
    rm_db(path);
}

/* An immutable file is read without locks: it reads while another
 * connection holds an exclusive lock on it, which a plain reader cannot.
 * The path has the bytes a URI gives meaning to. */
static coil_result immutable_main(void *arg) {
    const char *path = arg;
    sqlite3 *w;
    ASSERT_EQ(sqlite3_open(path, &w), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(w, "CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (7), (8);", NULL,
                           NULL, NULL),
              SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(w, "PRAGMA locking_mode=EXCLUSIVE; BEGIN EXCLUSIVE;", NULL, NULL, NULL),
              SQLITE_OK);
    coil_db_config cfg;
    coil_db_config_init(&cfg);
    cfg.immutable = true;
    cfg.busy_timeout = COIL_MSEC(50);
    coil_db *db;
    ASSERT_EQ(coil_db_open(path, &cfg, &db), 0);
    ASSERT_EQ(count_of(db, "SELECT count(*) FROM t"), 2);
    ASSERT_EQ(coil_db_exec(db, "INSERT INTO t VALUES (9)", COIL_DB_NO_ARGS, NULL), -EROFS);
    ASSERT_EQ(coil_db_close(db), 0);
    /* The same file, not immutable: the lock is in the way. */
    cfg.immutable = false;
    cfg.read_only = true;
    int err = coil_db_open(path, &cfg, &db);
    if (err == 0) {
        coil_db_rows *rows;
        err = coil_db_query(db, "SELECT count(*) FROM t", COIL_DB_NO_ARGS, &rows);
        if (!err) coil_db_rows_close(rows);
        coil_db_close(db);
    }
    ASSERT_EQ(err, -EBUSY);
    sqlite3_exec(w, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(w);
    return coil_ok(NULL);
}

TEST(an_immutable_database_is_read_without_locks) { /* SQLite only */
    char dir[] = "/tmp/coil-db-XXXXXX";
    ASSERT(mkdtemp(dir) != NULL);
    char path[128];
    snprintf(path, sizeof path, "%s/odd?name#100%%.db", dir);
    RUN_MAIN(immutable_main, path);
    rm_db(strdup(path));
}
