/* app/titles_routes.c: GET /titles/{tconst} on coil serve.
 *
 * The handler is a task: its query goes to a reader connection of coil_db
 * and only this request waits; /health and every other request of the
 * loop go on. The database opens at the first request (and a coil_db
 * serves tasks of every loop) and closes after the server. When coil
 * import swaps a new titles.db in, requests
 * move to it within a second (titles_gen below); the old one serves the
 * requests already on it, then closes.
 */
#include "app/titles_routes.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/json_text.h"
#include "titles/tsv.h"

enum { SEARCH_DEFAULT = 20, SEARCH_MAX = 100, QUERY_MAX = 256 };

/* One database file as opened: coil import replaces titles.db by a
 * rename, so a new file (a new inode) is a new generation. Requests hold
 * the generation they started on; the last one out closes a retired one. */
typedef struct titles_gen {
    coil_db *db;
    dev_t dev;
    ino_t ino;
    int refs;                      /* requests using it (app_titles.lock) */
    char *stats[3];                /* /titles/stats answers by year, genre, type */
} titles_gen;

struct app_titles {
    char path[4096];
    pthread_mutex_t lock;          /* guards current, refs, stats, checked_at */
    titles_gen *current;
    coil_time checked_at;          /* when the file was last looked at */
    bool opening;                  /* a request opens the first one */
};

/* How often a request looks whether titles.db was replaced. */
#define RECHECK COIL_SEC(1)

/* A title's columns, in title_json()'s order. */
#define TITLE_COLUMNS                                                                        \
    "t.title_type, t.primary_title, t.original_title, t.is_adult, t.start_year, t.end_year," \
    " t.runtime_minutes, t.genres, r.average_rating, r.num_votes"

static const char get_sql[] =
    "SELECT " TITLE_COLUMNS " FROM titles t LEFT JOIN ratings r ON r.title_id = t.id"
    " WHERE t.id = ?";

/* Opens the file at t->path as a new generation. Suspends. */
static titles_gen *gen_open(app_titles *t) {
    struct stat st;
    if (stat(t->path, &st) != 0) return NULL;
    titles_gen *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->dev = st.st_dev;
    g->ino = st.st_ino;
    coil_db_config cfg;
    coil_db_config_init(&cfg);
    /* coil import never writes a titles.db in place: it makes a new file
     * and renames it over the old one (a new generation here). */
    cfg.immutable = true;
    if (coil_db_open(t->path, &cfg, &g->db) != 0) {
        fprintf(stderr, "coil serve: %s: %s\n", t->path, coil_db_error());
        free(g);
        return NULL;
    }
    return g;
}

/* Closes a generation nobody uses. Suspends. */
static void gen_close(titles_gen *g) {
    coil_db_close(g->db);
    for (int i = 0; i < 3; i++) free(g->stats[i]);
    free(g);
}

/* Once a second at most: if titles.db is another file now (an import
 * swapped it in), opens it and makes it current, while the old one serves
 * on. With none open yet, every request looks, and those that come while
 * one opens it wait for it (a sleep of 1 ms at a time: they are on other
 * loops) rather than answer 503. Suspends. */
static void maybe_swap(app_titles *t) {
    coil_time now = coil_now();
    pthread_mutex_lock(&t->lock);
    bool have = t->current != NULL;
    bool wait = !have && t->opening;
    bool due = !wait && (!have || now - t->checked_at >= RECHECK);
    if (due) t->checked_at = now;
    if (due && !have) t->opening = true;
    dev_t dev = have ? t->current->dev : 0;
    ino_t ino = have ? t->current->ino : 0;
    pthread_mutex_unlock(&t->lock);
    if (wait) {
        for (int i = 0; i < 10000; i++) { /* 10 s at most */
            pthread_mutex_lock(&t->lock);
            bool opening = t->opening;
            pthread_mutex_unlock(&t->lock);
            if (!opening || coil_sleep(COIL_MSEC(1)) != 0) break;
        }
        return;
    }
    if (!due) return;
    struct stat st;
    bool changed = stat(t->path, &st) == 0 && (!have || st.st_dev != dev || st.st_ino != ino);
    titles_gen *fresh = changed ? gen_open(t) : NULL;
    pthread_mutex_lock(&t->lock);
    if (!have) t->opening = false;
    titles_gen *old = t->current;
    if (fresh) t->current = fresh;
    bool unused = fresh && old && old->refs == 0;
    pthread_mutex_unlock(&t->lock);
    if (unused) gen_close(old);
}

/* The current generation, held for a request; NULL (after answering 503)
 * while no titles were imported. Suspends. */
static titles_gen *gen_hold(app_titles *t, coil_http_response *res) {
    maybe_swap(t);
    pthread_mutex_lock(&t->lock);
    titles_gen *g = t->current;
    if (g) g->refs++;
    pthread_mutex_unlock(&t->lock);
    if (!g)
        coil_http_respond_error(res, 503, "no titles imported yet: coil import titles FILE, or "
                                          "POST /jobs/titles.import");
    return g;
}

static void gen_release(app_titles *t, titles_gen *g) {
    pthread_mutex_lock(&t->lock);
    bool retired = --g->refs == 0 && g != t->current;
    pthread_mutex_unlock(&t->lock);
    if (retired) gen_close(g);
}



static void text_or_null(coil__json_text *b, const coil_db_rows *rows, size_t col) {
    size_t n;
    const char *s = coil_db_text(rows, col, &n);
    if (s) coil__json_str(b, s, n);
    else coil__json_lit(b, "null");
}

static void int_or_null(coil__json_text *b, const coil_db_rows *rows, size_t col) {
    if (coil_db_type_of(rows, col) == COIL_DB_TYPE_NULL) coil__json_lit(b, "null");
    else coil__json_int(b, coil_db_int(rows, col));
}

/* Whether `s` is a genres column as coil import writes it: a JSON array of
 * strings, with only '"' and '\\' escaped, and no control characters. A
 * database from anywhere else gets its genres checked, not trusted. */
static bool genres_shaped(const char *s, size_t n) {
    if (n < 2 || s[0] != '[' || s[n - 1] != ']') return false;
    size_t i = 1;
    if (i == n - 1) return true;
    for (;;) {
        if (s[i++] != '"') return false;
        while (i < n - 1 && s[i] != '"') {
            if ((unsigned char)s[i] < 0x20) return false;
            if (s[i] == '\\' && (++i == n - 1 || (s[i] != '"' && s[i] != '\\'))) return false;
            i++;
        }
        if (i++ >= n - 1) return false;
        if (i == n - 1) return true;
        if (s[i++] != ',') return false;
    }
}

/* A title as the API answers it, from a row whose columns from `at` on
 * are those of get_sql (then ratings, if asked). */
static void title_json(coil__json_text *b, const coil_db_rows *rows, int64_t id, size_t at) {
    char canonical[16];
    titles_tconst(id, canonical, sizeof canonical);
    coil__json_lit(b, "{\"tconst\":");
    coil__json_str(b, canonical, strlen(canonical));
    coil__json_lit(b, ",\"titleType\":");
    text_or_null(b, rows, at + 0);
    coil__json_lit(b, ",\"primaryTitle\":");
    text_or_null(b, rows, at + 1);
    coil__json_lit(b, ",\"originalTitle\":");
    text_or_null(b, rows, at + 2);
    coil__json_lit(b, ",\"isAdult\":");
    if (coil_db_type_of(rows, at + 3) == COIL_DB_TYPE_NULL) coil__json_lit(b, "null");
    else if (coil_db_int(rows, at + 3)) coil__json_lit(b, "true");
    else coil__json_lit(b, "false");
    coil__json_lit(b, ",\"startYear\":");
    int_or_null(b, rows, at + 4);
    coil__json_lit(b, ",\"endYear\":");
    int_or_null(b, rows, at + 5);
    coil__json_lit(b, ",\"runtimeMinutes\":");
    int_or_null(b, rows, at + 6);
    coil__json_lit(b, ",\"genres\":");
    size_t n;
    const char *genres = coil_db_text(rows, at + 7, &n);
    if (genres && genres_shaped(genres, n)) coil__json_raw(b, genres, n);
    else coil__json_lit(b, "[]");
    if (coil_db_columns(rows) > at + 9 && coil_db_type_of(rows, at + 8) != COIL_DB_TYPE_NULL) {
        coil__json_lit(b, ",\"averageRating\":");
        coil__json_real(b, coil_db_real(rows, at + 8));
        coil__json_lit(b, ",\"numVotes\":");
        coil__json_int(b, coil_db_int(rows, at + 9));
    }
    coil__json_lit(b, "}");
}

/* Sends the text built, or 500 if building it ran out of memory. */
static int respond_text(coil_http_response *res, coil__json_text *b) {
    int err = b->failed ? -ENOMEM : coil_http_respond(res, 200, "application/json", b->s, b->len);
    free(b->s);
    return err;
}

static int get_title(coil_http_request *req, coil_http_response *res, void *arg) {
    app_titles *t = arg;
    const char *tconst = coil_http_param(req, "tconst");
    int64_t id = tconst ? titles_parse_tconst(tconst, strlen(tconst)) : -1;
    if (id < 0) return coil_http_respond_error(res, 400, "not a tconst (tt and 7 or 8 digits)");
    coil_db_rows *rows;
    titles_gen *g = gen_hold(t, res);
    if (!g) return 0;
    int err = coil_db_query(g->db, get_sql, COIL_DB_ARGS(COIL_DB_INT(id)), &rows);
    if (!err) err = coil_db_next(rows);
    if (err <= 0) {
        coil_db_rows_close(rows);
        gen_release(t, g);
        return err < 0 ? err : coil_http_respond_error(res, 404, "no such title");
    }
    coil__json_text b = {0};
    title_json(&b, rows, id, 0);
    coil_db_rows_close(rows);
    gen_release(t, g);
    return respond_text(res, &b);
}

/* ------------------------------------------------------------------ search */

/* A byte of a word: a letter or digit, or any byte of a non-ASCII character. */
static bool word_byte(unsigned char c) {
    return c >= 0x80 || (c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'z');
}

/* q as an FTS5 query that cannot be an FTS5 syntax error: its words (runs
 * of letters and digits, any non-ASCII byte a letter), each quoted, all of
 * them required. Returns how many words. */
static int fts_query(const char *q, char *out, size_t cap) {
    size_t len = 0;
    int words = 0;
    for (const unsigned char *p = (const unsigned char *)q; *p;) {
        while (*p && !word_byte(*p)) p++;
        const unsigned char *start = p;
        while (*p && word_byte(*p)) p++;
        size_t n = (size_t)(p - start);
        if (!n) continue;
        if (len + n + 4 >= cap) break;
        len += (size_t)snprintf(out + len, cap - len, "%s\"%.*s\"", words ? " " : "", (int)n,
                                (const char *)start);
        words++;
    }
    out[len] = '\0';
    return words;
}

/* A query parameter into buf: 1 if given, 0 if absent, -1 if too long. */
static int param(coil_http_request *req, const char *name, char *buf, size_t cap) {
    ssize_t n = coil_http_query_param(req, name, buf, cap);
    if (n == -ENOENT) return 0;
    return n >= 0 ? 1 : -1;
}

static bool all_digits(const char *s, size_t min, size_t max) {
    size_t n = strlen(s);
    if (n < min || n > max) return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return false;
    return true;
}

static int search(coil_http_request *req, coil_http_response *res, void *arg) {
    app_titles *t = arg;
    char q[QUERY_MAX], fts[2 * QUERY_MAX], type[80], year[16], genre[48], limit_s[16], cursor[24];
    int has_q = param(req, "q", q, sizeof q), has_type = param(req, "type", type, sizeof type),
        has_year = param(req, "year", year, sizeof year),
        has_genre = param(req, "genre", genre, sizeof genre),
        has_limit = param(req, "limit", limit_s, sizeof limit_s),
        has_cursor = param(req, "cursor", cursor, sizeof cursor);
    if (has_q < 0 || has_type < 0 || has_year < 0 || has_genre < 0 || has_limit < 0 ||
        has_cursor < 0)
        return coil_http_respond_error(res, 400, "a query parameter is too long");
    if (has_q && fts_query(q, fts, sizeof fts) == 0)
        return coil_http_respond_error(res, 400, "q has no words to search for");
    long limit = SEARCH_DEFAULT;
    if (has_limit) {
        if (!all_digits(limit_s, 1, 3) || (limit = atol(limit_s)) < 1 || limit > SEARCH_MAX)
            return coil_http_respond_error(res, 400, "limit is 1 to 100");
    }
    if (has_year && !all_digits(year, 4, 4))
        return coil_http_respond_error(res, 400, "year is 4 digits");
    int64_t after = 0;
    if (has_cursor && (after = titles_parse_tconst(cursor, strlen(cursor))) < 0)
        return coil_http_respond_error(res, 400, "cursor is a next_cursor from an earlier page");
    /* The page's ids first (the FTS5 index gives them in rowid order),
     * then their columns: the genres' subquery runs for the page alone. */
    char sql[1536];
    bool filters = has_type || has_year || has_genre;
    const char *id = has_q ? "f.rowid" : "t.id";
    snprintf(sql, sizeof sql,
             "SELECT t.id, " TITLE_COLUMNS " FROM (SELECT %s AS id FROM %s%s"
             " WHERE %s > ?%s%s%s%s ORDER BY %s LIMIT ?) page"
             " JOIN titles t ON t.id = page.id LEFT JOIN ratings r ON r.title_id = t.id"
             " ORDER BY t.id",
             id, has_q ? "titles_fts f" : "titles t",
             has_q && filters ? " JOIN titles t ON t.id = f.rowid" : "", id,
             has_q ? " AND titles_fts MATCH ?" : "", has_type ? " AND t.title_type = ?" : "",
             has_year ? " AND t.start_year = ?" : "",
             has_genre ? " AND EXISTS (SELECT 1 FROM title_genres tg2 JOIN genres g2"
                         " ON g2.id = tg2.genre_id WHERE tg2.title_id = t.id AND g2.name = ?)"
                       : "",
             id);
    coil_db_value args[6];
    size_t n = 0;
    args[n++] = COIL_DB_INT(after);
    if (has_q) args[n++] = COIL_DB_TEXT(fts);
    if (has_type) args[n++] = COIL_DB_TEXT(type);
    if (has_year) args[n++] = COIL_DB_INT(atol(year));
    if (has_genre) args[n++] = COIL_DB_TEXT(genre);
    args[n++] = COIL_DB_INT(limit + 1); /* one more: is there a next page? */
    coil_db_rows *rows;
    titles_gen *gen = gen_hold(t, res);
    if (!gen) return 0;
    int err = coil_db_query(gen->db, sql, args, n, &rows);
    if (err) {
        gen_release(t, gen);
        return err;
    }
    coil__json_text b = {0};
    coil__json_lit(&b, "{\"titles\":[");
    int64_t last = 0;
    long got = 0;
    bool more = false;
    while ((err = coil_db_next(rows)) > 0) {
        if (got == limit) {
            more = true;
            break;
        }
        last = coil_db_int(rows, 0);
        if (got++) coil__json_lit(&b, ",");
        title_json(&b, rows, last, 1);
    }
    coil_db_rows_close(rows);
    gen_release(t, gen);
    if (err < 0) {
        free(b.s);
        return err;
    }
    coil__json_lit(&b, "],\"next_cursor\":");
    char next[16];
    titles_tconst(last, next, sizeof next);
    if (more) coil__json_str(&b, next, strlen(next));
    else coil__json_lit(&b, "null");
    coil__json_lit(&b, "}");
    return respond_text(res, &b);
}

/* ------------------------------------------------------------------ stats */

static const char *const stats_by[] = {"year", "genre", "type"};
static const char *const stats_sql[] = {
    "SELECT start_year AS key, count(*) AS count FROM titles GROUP BY start_year"
    " ORDER BY start_year",
    "SELECT g.name AS key, count(*) AS count FROM title_genres tg JOIN genres g"
    " ON g.id = tg.genre_id GROUP BY g.id ORDER BY count DESC, g.name",
    "SELECT title_type AS key, count(*) AS count FROM titles GROUP BY title_type"
    " ORDER BY count DESC, title_type",
};

/* The heavy route: an aggregation over every row. It runs on a reader
 * connection's thread (the loop goes on) and is computed once. */
static int stats(coil_http_request *req, coil_http_response *res, void *arg) {
    app_titles *t = arg;
    char by[16];
    int which = -1;
    if (param(req, "by", by, sizeof by) > 0)
        for (int i = 0; i < 3; i++)
            if (strcmp(by, stats_by[i]) == 0) which = i;
    if (which < 0) return coil_http_respond_error(res, 400, "by is year, genre or type");
    titles_gen *g = gen_hold(t, res);
    if (!g) return 0;
    pthread_mutex_lock(&t->lock);
    char *cached = g->stats[which] ? strdup(g->stats[which]) : NULL;
    pthread_mutex_unlock(&t->lock);
    if (!cached) {
        char *rows;
        int err = coil_db_query_json(g->db, stats_sql[which], COIL_DB_NO_ARGS, &rows, NULL);
        size_t cap = err ? 0 : strlen(rows) + 64;
        cached = err ? NULL : malloc(cap);
        if (!err && cached)
            snprintf(cached, cap, "{\"by\":\"%s\",\"rows\":%s}", stats_by[which], rows);
        if (!err) free(rows);
        if (!err && !cached) err = -ENOMEM;
        if (err) {
            gen_release(t, g);
            return err;
        }
        pthread_mutex_lock(&t->lock);
        if (!g->stats[which]) g->stats[which] = strdup(cached);
        pthread_mutex_unlock(&t->lock);
    }
    gen_release(t, g);
    int err = coil_http_respond(res, 200, "application/json", cached, strlen(cached));
    free(cached);
    return err;
}

int app_titles_mount(coil_http_server *srv, const char *data_dir, app_titles **out) {
    *out = NULL;
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/titles.db", data_dir) >= sizeof path)
        return -ENAMETOOLONG;
    app_titles *t = calloc(1, sizeof *t);
    if (!t) return -ENOMEM;
    memcpy(t->path, path, sizeof path);
    pthread_mutex_init(&t->lock, NULL);
    t->checked_at = coil_now() - RECHECK; /* the first request opens it */
    int err = coil_http_route(srv, "GET", "/titles/{tconst}", get_title, t, 0);
    if (!err) err = coil_http_route(srv, "GET", "/titles", search, t, 0);
    if (!err) err = coil_http_route(srv, "GET", "/titles/stats", stats, t, 0);
    if (err) {
        app_titles_free(t);
        return err;
    }
    *out = t;
    return 0;
}

void app_titles_free(app_titles *t) {
    if (!t) return;
    if (t->current) gen_close(t->current); /* coil_db_close blocks here: a plain thread */
    pthread_mutex_destroy(&t->lock);
    free(t);
}
