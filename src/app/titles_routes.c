/* app/titles_routes.c: GET /titles/{tconst} on coil serve.
 *
 * The handler is a task: its query goes to a reader connection of coil_db
 * and only this request waits; /health and every other request of the
 * loop go on. The database opens before the server starts (a loop of its
 * own on the main thread: a coil_db serves tasks of every loop) and
 * closes after it.
 */
#include "app/titles_routes.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "titles/tsv.h"

struct app_titles {
    char path[4096];
    coil_db *db;
};

static const char get_sql[] =
    "SELECT t.title_type, t.primary_title, t.original_title, t.is_adult, t.start_year,"
    " t.end_year, t.runtime_minutes,"
    " (SELECT json_group_array(g.name) FROM title_genres tg JOIN genres g ON g.id = tg.genre_id"
    "  WHERE tg.title_id = t.id),"
    " r.average_rating, r.num_votes"
    " FROM titles t LEFT JOIN ratings r ON r.title_id = t.id WHERE t.id = ?";

static coil_result open_db(void *arg) {
    app_titles *t = arg;
    coil_db_config cfg;
    coil_db_config_init(&cfg);
    cfg.read_only = true; /* coil import writes it; the server only reads */
    int err = coil_db_open(t->path, &cfg, &t->db);
    if (err) fprintf(stderr, "coil serve: %s: %s\n", t->path, coil_db_error());
    return coil_fail(err);
}

static json_t *text_or_null(const coil_db_rows *rows, size_t col) {
    const char *s = coil_db_text(rows, col, NULL);
    return s ? json_string(s) : json_null();
}

static json_t *int_or_null(const coil_db_rows *rows, size_t col) {
    return coil_db_type_of(rows, col) == COIL_DB_TYPE_NULL ? json_null()
                                                             : json_integer(coil_db_int(rows, col));
}

static int get_title(coil_http_request *req, coil_http_response *res, void *arg) {
    app_titles *t = arg;
    const char *tconst = coil_http_param(req, "tconst");
    int64_t id = tconst ? titles_parse_tconst(tconst, strlen(tconst)) : -1;
    if (id < 0) return coil_http_respond_error(res, 400, "not a tconst (tt and 7 or 8 digits)");
    coil_db_rows *rows;
    int err = coil_db_query(t->db, get_sql, COIL_DB_ARGS(COIL_DB_INT(id)), &rows);
    if (err) return err;
    err = coil_db_next(rows);
    if (err <= 0) {
        coil_db_rows_close(rows);
        return err < 0 ? err : coil_http_respond_error(res, 404, "no such title");
    }
    char canonical[16];
    titles_tconst(id, canonical, sizeof canonical);
    json_t *doc = json_object();
    json_object_set_new(doc, "tconst", json_string(canonical));
    json_object_set_new(doc, "titleType", text_or_null(rows, 0));
    json_object_set_new(doc, "primaryTitle", text_or_null(rows, 1));
    json_object_set_new(doc, "originalTitle", text_or_null(rows, 2));
    json_object_set_new(doc, "isAdult", coil_db_type_of(rows, 3) == COIL_DB_TYPE_NULL
                                            ? json_null()
                                            : json_boolean(coil_db_int(rows, 3) != 0));
    json_object_set_new(doc, "startYear", int_or_null(rows, 4));
    json_object_set_new(doc, "endYear", int_or_null(rows, 5));
    json_object_set_new(doc, "runtimeMinutes", int_or_null(rows, 6));
    const char *genres = coil_db_text(rows, 7, NULL);
    json_t *g = genres ? json_loads(genres, 0, NULL) : NULL;
    json_object_set_new(doc, "genres", g ? g : json_array());
    if (coil_db_type_of(rows, 8) != COIL_DB_TYPE_NULL) {
        json_object_set_new(doc, "averageRating", json_real(coil_db_real(rows, 8)));
        json_object_set_new(doc, "numVotes", json_integer(coil_db_int(rows, 9)));
    }
    coil_db_rows_close(rows);
    err = coil_http_respond_json(res, 200, doc);
    json_decref(doc);
    return err;
}

int app_titles_mount(coil_http_server *srv, const char *data_dir, app_titles **out) {
    *out = NULL;
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/titles.db", data_dir) >= sizeof path)
        return -ENAMETOOLONG;
    if (access(path, R_OK) != 0) return 0; /* no titles imported: no routes */
    app_titles *t = calloc(1, sizeof *t);
    if (!t) return -ENOMEM;
    memcpy(t->path, path, sizeof path);
    coil_result r;
    int err = coil_run(open_db, t, &r);
    if (!err) err = r.err;
    if (!err) err = coil_http_route(srv, "GET", "/titles/{tconst}", get_title, t, 0);
    if (err) {
        app_titles_free(t);
        return err;
    }
    *out = t;
    return 0;
}

static coil_result close_db(void *arg) {
    coil_db_close(arg);
    return coil_ok(NULL);
}

void app_titles_free(app_titles *t) {
    if (!t) return;
    if (t->db) coil_run(close_db, t->db, NULL); /* a loop of its own, for the close */
    free(t);
}
