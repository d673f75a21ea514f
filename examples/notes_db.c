/* notes_db: coil_db, SQLite from tasks without blocking the loop
 * (aiosqlite's job, on connections with threads of their own).
 *
 *     ./notes_db [PATH]          (default: notes.db in the current directory)
 *
 *  - A transaction writes three notes: coil_db_transaction() commits when
 *    its function returns 0 and rolls back when it fails.
 *  - Twenty tasks read at once, sharing the 4 reader connections; values
 *    are bound (?), never formatted into the SQL.
 *  - A query as JSON, ready for an HTTP answer.
 *  - A slow query given 100 ms: the deadline interrupts it, and its
 *    connection goes back to the pool, while a ticker task kept ticking.
 */
#include <coil/coil.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

static int add_notes(coil_db_tx *tx, void *arg) {
    (void)arg;
    static const char *const titles[] = {"buy milk", "call \"Ada\"", "it's done"};
    for (int i = 0; i < 3; i++) {
        int err = coil_db_tx_exec(tx, "INSERT INTO notes (title, stars) VALUES (?, ?)",
                                  COIL_DB_ARGS(COIL_DB_TEXT(titles[i]), COIL_DB_INT(i + 1)), NULL);
        if (err) return err;
    }
    return 0;
}

typedef struct reader {
    coil_db *db;
    int found;
} reader;

static coil_result read_one(void *arg) {
    reader *r = arg;
    coil_db_rows *rows;
    if (coil_db_query(r->db, "SELECT count(*) FROM notes WHERE stars >= ?",
                      COIL_DB_ARGS(COIL_DB_INT(2)), &rows) == 0) {
        if (coil_db_next(rows) > 0) r->found += (int)coil_db_int(rows, 0);
        coil_db_rows_close(rows);
    }
    return coil_ok(NULL);
}

static coil_result tick(void *arg) {
    int *ticks = arg;
    while (coil_sleep(COIL_MSEC(10)) == 0) (*ticks)++;
    return coil_ok(NULL);
}

static coil_result start(void *arg) {
    const char *path = arg;
    coil_db *db;
    int err = coil_db_open(path, NULL, &db);
    if (err) {
        fprintf(stderr, "notes_db: cannot open %s: %s\n", path, coil_db_error());
        return coil_fail(err);
    }
    coil_db_exec(db, "DROP TABLE IF EXISTS notes", COIL_DB_NO_ARGS, NULL);
    coil_db_exec(db, "CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT NOT NULL, stars INT)",
                 COIL_DB_NO_ARGS, NULL);
    if ((err = coil_db_transaction(db, add_notes, NULL)) != 0) {
        fprintf(stderr, "notes_db: %s\n", coil_db_error());
        return coil_fail(err);
    }

    reader r = {.db = db};
    coil_group g;
    coil_group_init(&g);
    for (int i = 0; i < 20; i++) coil_group_spawn(&g, read_one, &r);
    coil_group_wait(&g);
    coil_group_destroy(&g);
    printf("20 readers saw %d notes with 2 stars or more\n", r.found / 20);

    char *json;
    if (coil_db_query_json(db, "SELECT id, title, stars FROM notes ORDER BY id", COIL_DB_NO_ARGS,
                           &json, NULL) == 0) {
        printf("%s\n", json);
        free(json);
    }

    int ticks = 0;
    coil_task *ticker = coil_spawn(tick, &ticks);
    coil_scope sc;
    coil_scope_enter(&sc, coil_now() + COIL_MSEC(100));
    coil_db_rows *rows = NULL;
    err = coil_db_query(db,
                        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c"
                        " WHERE x < 1e10) SELECT count(*) FROM c",
                        COIL_DB_NO_ARGS, &rows);
    coil_scope_exit(&sc);
    coil_db_rows_close(rows);
    coil_cancel(ticker);
    coil_join(ticker, NULL);
    printf("the slow query: %s after 100 ms; the ticker ticked %d times meanwhile\n",
           coil_strerror(err), ticks);
    coil_db_close(db);
    return coil_ok(NULL);
}

int main(int argc, char **argv) {
    coil_result r;
    if (coil_run(start, argc > 1 ? argv[1] : "notes.db", &r) != 0 || r.err) return 1;
    return 0;
}
