/* tests/db/test_db_pg.c: coil_db on a real PostgreSQL, what differs from
 * SQLite: "?" placeholders turned into $N (not inside quotes), bytea,
 * JSON from json_agg, SQLSTATEs as errnos, a write asked as a query moved
 * from a read-only reader session to the writer.
 * COIL_TEST_PG_ONLY, COIL_TEST_THREADS. */
#include "test.h"

#include <coil/coil.h>
#include <errno.h>

#include "jobs/store/store_fixture.h"

static coil_result pg_main(void *arg) {
    coil_db *db;
    ASSERT_EQ(coil_db_open(arg, NULL, &db), 0);
    ASSERT_EQ(coil_db_exec(db, "CREATE TABLE t (id serial PRIMARY KEY, name text UNIQUE,"
                               " n bigint CHECK (n >= 0), r double precision, b bytea, ok boolean)",
                           COIL_DB_NO_ARGS, NULL),
              0);
    const unsigned char blob[] = {0, 1, 255, '?', 0};
    coil_db_done done;
    ASSERT_EQ(coil_db_exec(db, "INSERT INTO t (name, n, r, b, ok) VALUES (?, ?, ?, ?, ?)",
                           COIL_DB_ARGS(COIL_DB_TEXT("it's a '?'"), COIL_DB_INT(42),
                                        COIL_DB_REAL(2.5), COIL_DB_BLOB(blob, sizeof blob),
                                        COIL_DB_INT(1)),
                           &done),
              0);
    ASSERT_EQ(done.changes, 1);
    /* A ? inside quotes is a character, not a parameter. */
    coil_db_rows *rows;
    ASSERT_EQ(coil_db_query(db, "SELECT name, n, r, b, ok, '?' AS q, NULL AS z FROM t"
                                " WHERE n = ?",
                            COIL_DB_ARGS(COIL_DB_INT(42)), &rows),
              0);
    ASSERT_EQ(coil_db_next(rows), 1);
    ASSERT_STR_EQ(coil_db_text(rows, 0, NULL), "it's a '?'");
    ASSERT_EQ(coil_db_type_of(rows, 1), COIL_DB_TYPE_INT);
    ASSERT_EQ(coil_db_int(rows, 1), 42);
    ASSERT(coil_db_real(rows, 2) == 2.5);
    size_t len;
    const void *b = coil_db_blob(rows, 3, &len);
    ASSERT_EQ(len, sizeof blob);
    ASSERT_EQ(memcmp(b, blob, sizeof blob), 0);
    ASSERT_EQ(coil_db_int(rows, 4), 1);
    ASSERT_STR_EQ(coil_db_text(rows, 5, NULL), "?");
    ASSERT_EQ(coil_db_type_of(rows, 6), COIL_DB_TYPE_NULL);
    ASSERT_EQ(coil_db_next(rows), 0);
    coil_db_rows_close(rows);
    char *json;
    ASSERT_EQ(coil_db_query_json(db, "SELECT name, n FROM t ORDER BY id", COIL_DB_NO_ARGS, &json,
                                 NULL),
              0);
    ASSERT_CONTAINS(json, "\"name\":\"it's a '?'\"");
    ASSERT_CONTAINS(json, "\"n\":42");
    free(json);
    /* A write asked as a query runs on the writer (the readers are read-only). */
    ASSERT_EQ(coil_db_query(db, "INSERT INTO t (name, n) VALUES (?, ?) RETURNING id",
                            COIL_DB_ARGS(COIL_DB_TEXT("two"), COIL_DB_INT(2)), &rows),
              0);
    ASSERT_EQ(coil_db_next(rows), 1);
    ASSERT_EQ(coil_db_int(rows, 0), 2);
    coil_db_rows_close(rows);
    /* SQLSTATEs as errnos. */
    ASSERT_EQ(coil_db_exec(db, "INSERT INTO t (name, n) VALUES ('two', 3)", COIL_DB_NO_ARGS, NULL),
              -EEXIST);
    ASSERT_CONTAINS(coil_db_error(), "duplicate key");
    ASSERT_EQ(coil_db_exec(db, "INSERT INTO t (name, n) VALUES ('x', -1)", COIL_DB_NO_ARGS, NULL),
              -EPERM);
    ASSERT_EQ(coil_db_exec(db, "SELEKT 1", COIL_DB_NO_ARGS, NULL), -EINVAL);
    ASSERT_EQ(coil_db_exec(db, "SELECT ?", COIL_DB_NO_ARGS, NULL), -EINVAL);
    ASSERT_CONTAINS(coil_db_error(), "1 parameters; 0 values");
    /* A statement that fails in a transaction fails the transaction. */
    coil_db_tx *tx;
    ASSERT_EQ(coil_db_begin(db, &tx), 0);
    ASSERT_EQ(coil_db_tx_exec(tx, "INSERT INTO t (name, n) VALUES ('three', 3)", COIL_DB_NO_ARGS,
                              NULL),
              0);
    ASSERT_EQ(coil_db_tx_exec(tx, "INSERT INTO t (name, n) VALUES ('two', 3)", COIL_DB_NO_ARGS,
                              NULL),
              -EEXIST);
    ASSERT_EQ(coil_db_commit(tx), -ECANCELED);
    ASSERT_EQ(coil_db_query(db, "SELECT count(*) FROM t", COIL_DB_NO_ARGS, &rows), 0);
    ASSERT_EQ(coil_db_next(rows), 1);
    ASSERT_EQ(coil_db_int(rows, 0), 2); /* 'three' rolled back */
    coil_db_rows_close(rows);
    ASSERT_EQ(coil_db_close(db), 0);
    return coil_ok(NULL);
}

TEST(postgres_placeholders_types_json_errors_and_routing) {
    char *url = fx_tmpdir();
    RUN_MAIN(pg_main, url);
    fx_rmtree(url);
}
