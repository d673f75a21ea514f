/* tests/app/test_titles_api.c: GET /titles/{tconst} on coil serve, over a
 * database made by coil import. */
#include "app/serve_harness.h"

#include <pthread.h>
#include <sqlite3.h>

typedef struct first_get {
    int port, status;
    pthread_t tid;
} first_get;

static void *get_one(void *arg) {
    first_get *g = arg;
    serve_reply r;
    serve_get(g->port, "/titles/tt0000001", &r);
    g->status = r.status;
    serve_reply_free(&r);
    return NULL;
}

/* Polls GET `path` (10 s at most) until it answers 200; until then it
 * must answer `meanwhile`. */
static void await_200(int port, const char *path, int meanwhile) {
    coil_time until = coil_now() + COIL_SEC(10);
    for (;;) {
        serve_reply r;
        serve_get(port, path, &r);
        int status = r.status;
        serve_reply_free(&r);
        if (status == 200) return;
        ASSERT_EQ(status, meanwhile);
        ASSERT(coil_now() < until);
        usleep(100 * 1000);
    }
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    ASSERT(f != NULL);
    ASSERT_EQ(fputs(text, f) >= 0, 1);
    ASSERT_EQ(fclose(f), 0);
}

TEST(titles_are_served_with_imdb_names_and_errors) {
    serve_proc p;
    serve_init(&p);
    ASSERT_EQ(mkdir(p.data, 0755), 0);
    char src[128], ratings[128];
    snprintf(src, sizeof src, "%s/t.tsv", p.dir);
    snprintf(ratings, sizeof ratings, "%s/r.tsv", p.dir);
    write_text(src, "tconst\ttitleType\tprimaryTitle\toriginalTitle\tisAdult\tstartYear\tendYear\t"
                    "runtimeMinutes\tgenres\n"
                    "tt0000001\tmovie\t\"Hamlet\"\tHamlet\t0\t1948\t\\N\t155\tDrama,History\n"
                    "tt0000002\ttvSeries\tNA\t\\N\t1\t2001\t2005\t\\N\t\\N\n"
                    "tt0000004\tmovie\tAC\\DC \"Live\"\tx\x01y\t0\t1991\t\\N\t90\tMusic\n"
                    "tt0000005\tmovie\tBroken\tBroken\t0\t1991\t\\N\t90\tMusic\n");
    write_text(ratings, "tconst\taverageRating\tnumVotes\ntt0000001\t7.8\t12345\n");
    serve_coil_ok(p.dir, (const char *const[]){"import", "titles", src, "--data", p.data, NULL});
    serve_coil_ok(p.dir, (const char *const[]){"import", "ratings", ratings, "--data", p.data, NULL});
    /* A genres column that coil import did not write is checked, not
     * copied into the answer. */
    char dbp[160];
    snprintf(dbp, sizeof dbp, "%s/titles.db", p.data);
    sqlite3 *h;
    ASSERT_EQ(sqlite3_open(dbp, &h), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(h, "UPDATE titles SET genres = '[\"Music\"' WHERE id = 5", NULL, NULL,
                           NULL),
              SQLITE_OK);
    sqlite3_close(h);
    serve_launch(&p, (const char *const[]){"--job-workers", "1", NULL});
    /* The first requests, all at once: they wait for the database to open
     * (the first of them opens it); none is told there are no titles. */
    static first_get firsts[16];
    for (int i = 0; i < 16; i++) {
        firsts[i].port = p.port;
        ASSERT_EQ(pthread_create(&firsts[i].tid, NULL, get_one, &firsts[i]), 0);
    }
    for (int i = 0; i < 16; i++) {
        ASSERT_EQ(pthread_join(firsts[i].tid, NULL), 0);
        ASSERT_EQ(firsts[i].status, 200);
    }
    serve_reply r;
    serve_get(p.port, "/titles/tt0000001", &r);
    ASSERT_EQ(r.status, 200);
    json_t *doc = serve_json(&r);
    ASSERT_STR_EQ(json_string_value(json_object_get(doc, "tconst")), "tt0000001");
    ASSERT_STR_EQ(json_string_value(json_object_get(doc, "titleType")), "movie");
    ASSERT_STR_EQ(json_string_value(json_object_get(doc, "primaryTitle")), "\"Hamlet\"");
    ASSERT(json_is_false(json_object_get(doc, "isAdult")));
    ASSERT_EQ(json_integer_value(json_object_get(doc, "startYear")), 1948);
    ASSERT(json_is_null(json_object_get(doc, "endYear")));
    ASSERT_EQ(json_integer_value(json_object_get(doc, "runtimeMinutes")), 155);
    json_t *genres = json_object_get(doc, "genres");
    ASSERT_EQ(json_array_size(genres), 2);
    ASSERT_STR_EQ(json_string_value(json_array_get(genres, 0)), "Drama");
    ASSERT(json_real_value(json_object_get(doc, "averageRating")) == 7.8);
    ASSERT_EQ(json_integer_value(json_object_get(doc, "numVotes")), 12345);
    json_decref(doc);
    serve_reply_free(&r);
    serve_get(p.port, "/titles/tt0000002", &r);
    ASSERT_EQ(r.status, 200);
    doc = serve_json(&r);
    ASSERT_STR_EQ(json_string_value(json_object_get(doc, "primaryTitle")), "NA"); /* not null */
    ASSERT(json_is_null(json_object_get(doc, "originalTitle")));
    ASSERT(json_is_true(json_object_get(doc, "isAdult")));
    ASSERT_EQ(json_array_size(json_object_get(doc, "genres")), 0);
    ASSERT(json_object_get(doc, "averageRating") == NULL); /* not rated */
    json_decref(doc);
    serve_reply_free(&r);
    /* Backslashes, quotes and control characters come out escaped. */
    serve_get(p.port, "/titles/tt0000004", &r);
    ASSERT_EQ(r.status, 200);
    ASSERT_CONTAINS(r.body, "\"primaryTitle\":\"AC\\\\DC \\\"Live\\\"\"");
    ASSERT_CONTAINS(r.body, "\"originalTitle\":\"x\\u0001y\"");
    doc = serve_json(&r);
    ASSERT_STR_EQ(json_string_value(json_object_get(doc, "primaryTitle")), "AC\\DC \"Live\"");
    ASSERT_STR_EQ(json_string_value(json_object_get(doc, "originalTitle")), "x\x01y");
    json_decref(doc);
    serve_reply_free(&r);
    serve_get(p.port, "/titles/tt0000005", &r);
    ASSERT_EQ(r.status, 200);
    doc = serve_json(&r);
    ASSERT_EQ(json_array_size(json_object_get(doc, "genres")), 0);
    json_decref(doc);
    serve_reply_free(&r);
    serve_expect(p.port, "/titles/tt0000003", 404, NULL);
    serve_expect(p.port, "/titles/bogus", 400, NULL);
    serve_expect(p.port, "/titles/tt00000001", 400, NULL); /* not canonical */
    /* A new import while it serves: the new titles within a second or so. */
    write_text(src, "tconst\ttitleType\tprimaryTitle\toriginalTitle\tisAdult\tstartYear\tendYear\t"
                    "runtimeMinutes\tgenres\n"
                    "tt0000003\tmovie\tThe Sequel\t\\N\t0\t2020\t\\N\t99\tAction\n");
    serve_coil_ok(p.dir, (const char *const[]){"import", "titles", src, "--data", p.data, NULL});
    await_200(p.port, "/titles/tt0000003", 404);
    serve_expect(p.port, "/titles/tt0000001", 404, NULL); /* the old file is gone */
    serve_stop(&p);
    serve_cleanup(&p);
}

/* The tconsts of a /titles answer, comma-joined, and its next_cursor. */
static void titles_of(int port, const char *path, char *ids, size_t cap, char *next, size_t ncap) {
    serve_reply r;
    serve_get(port, path, &r);
    if (r.status != 200) coil_test_fail(__FILE__, __LINE__, "GET %s: %d %s", path, r.status, r.body);
    json_t *doc = serve_json(&r);
    json_t *list = json_object_get(doc, "titles");
    ASSERT(json_is_array(list));
    size_t len = 0;
    ids[0] = '\0';
    for (size_t i = 0; i < json_array_size(list); i++)
        len += (size_t)snprintf(ids + len, cap - len, "%s%s", i ? "," : "",
                                json_string_value(json_object_get(json_array_get(list, i), "tconst")));
    json_t *c = json_object_get(doc, "next_cursor");
    snprintf(next, ncap, "%s", json_is_string(c) ? json_string_value(c) : "");
    json_decref(doc);
    serve_reply_free(&r);
}

TEST(search_filters_and_pages_and_stats_count) {
    serve_proc p;
    serve_init(&p);
    ASSERT_EQ(mkdir(p.data, 0755), 0);
    char src[128];
    snprintf(src, sizeof src, "%s/t.tsv", p.dir);
    write_text(src, "tconst\ttitleType\tprimaryTitle\toriginalTitle\tisAdult\tstartYear\tendYear\t"
                    "runtimeMinutes\tgenres\n"
                    "tt0000001\tmovie\tThe Night Train\tx\t0\t1999\t\\N\t90\tDrama\n"
                    "tt0000002\tmovie\tNight of the Caf\xc3\xa9\tx\t0\t2001\t\\N\t90\tComedy\n"
                    "tt0000003\tshort\tA Night Out\tx\t0\t1999\t\\N\t9\tDrama,Comedy\n"
                    "tt0000004\tmovie\tDay Train\tx\t0\t1999\t\\N\t90\tDrama\n"
                    "tt0000005\tmovie\tnight night\tx\t0\t\\N\t\\N\t90\t\\N\n");
    serve_coil_ok(p.dir, (const char *const[]){"import", "titles", src, "--data", p.data, NULL});
    serve_launch(&p, (const char *const[]){"--job-workers", "1", NULL});
    char ids[256], next[32];
    titles_of(p.port, "/titles?q=night", ids, sizeof ids, next, sizeof next);
    ASSERT_STR_EQ(ids, "tt0000001,tt0000002,tt0000003,tt0000005");
    ASSERT_STR_EQ(next, "");
    titles_of(p.port, "/titles?q=night+train", ids, sizeof ids, next, sizeof next);
    ASSERT_STR_EQ(ids, "tt0000001"); /* every word */
    titles_of(p.port, "/titles?q=cafe", ids, sizeof ids, next, sizeof next);
    ASSERT_STR_EQ(ids, "tt0000002"); /* accents folded */
    titles_of(p.port, "/titles?q=%22night%22+OR+(", ids, sizeof ids, next, sizeof next);
    ASSERT_STR_EQ(ids, ""); /* FTS5 syntax in q is words, not an error: "or" is not in a title */
    titles_of(p.port, "/titles?type=movie&year=1999", ids, sizeof ids, next, sizeof next);
    ASSERT_STR_EQ(ids, "tt0000001,tt0000004");
    titles_of(p.port, "/titles?genre=Comedy&q=night", ids, sizeof ids, next, sizeof next);
    ASSERT_STR_EQ(ids, "tt0000002,tt0000003");
    /* Keyset pages of 2. */
    titles_of(p.port, "/titles?limit=2", ids, sizeof ids, next, sizeof next);
    ASSERT_STR_EQ(ids, "tt0000001,tt0000002");
    ASSERT_STR_EQ(next, "tt0000002");
    titles_of(p.port, "/titles?limit=2&cursor=tt0000002", ids, sizeof ids, next, sizeof next);
    ASSERT_STR_EQ(ids, "tt0000003,tt0000004");
    titles_of(p.port, "/titles?limit=2&cursor=tt0000004", ids, sizeof ids, next, sizeof next);
    ASSERT_STR_EQ(ids, "tt0000005");
    ASSERT_STR_EQ(next, "");
    serve_expect(p.port, "/titles?limit=0", 400, NULL);
    serve_expect(p.port, "/titles?limit=101", 400, NULL);
    serve_expect(p.port, "/titles?year=99", 400, NULL);
    serve_expect(p.port, "/titles?cursor=x", 400, NULL);
    serve_expect(p.port, "/titles?q=%21%21", 400, NULL); /* no words */
    /* Stats: every row counted, the same answer twice (the second cached). */
    for (int round = 0; round < 2; round++) {
        serve_expect(p.port, "/titles/stats?by=year", 200,
                     "{\"by\":\"year\",\"rows\":[{\"key\":null,\"count\":1},{\"key\":1999,\"count\":3},"
                     "{\"key\":2001,\"count\":1}]}");
        serve_expect(p.port, "/titles/stats?by=genre", 200,
                     "{\"by\":\"genre\",\"rows\":[{\"key\":\"Drama\",\"count\":3},"
                     "{\"key\":\"Comedy\",\"count\":2}]}");
        serve_expect(p.port, "/titles/stats?by=type", 200,
                     "{\"by\":\"type\",\"rows\":[{\"key\":\"movie\",\"count\":4},"
                     "{\"key\":\"short\",\"count\":1}]}");
    }
    serve_expect(p.port, "/titles/stats?by=nope", 400, NULL);
    serve_expect(p.port, "/titles/stats", 400, NULL);
    serve_stop(&p);
    serve_cleanup(&p);
}

/* The import as a job: 202, progress over SSE, then the titles served. */
TEST(titles_import_runs_as_a_job_with_progress) {
    serve_proc p;
    serve_init(&p);
    ASSERT_EQ(mkdir(p.data, 0755), 0);
    char src[128];
    snprintf(src, sizeof src, "%s/basics.tsv.gz", p.data);
    serve_coil_ok(p.dir, (const char *const[]){"gen", "titles", "50000", src, NULL});
    serve_launch(&p, (const char *const[]){"--job-workers", "1", NULL});
    serve_expect(p.port, "/titles/tt0000001", 503, NULL); /* no titles imported yet */
    serve_reply r;
    serve_http(p.port, "POST", "/jobs/titles.import", NULL, "{\"path\":\"../etc/passwd\"}", &r);
    ASSERT_EQ(r.status, 422);
    serve_reply_free(&r);
    serve_http(p.port, "POST", "/jobs/titles.import", NULL, "{\"path\":\"basics.tsv.gz\"}", &r);
    ASSERT_EQ(r.status, 202);
    json_t *doc = serve_json(&r);
    char path[96];
    snprintf(path, sizeof path, "/jobs/%s/events", json_string_value(json_object_get(doc, "id")));
    json_decref(doc);
    serve_reply_free(&r);
    ASSERT_EQ(serve_try_http_for(p.port, "GET", path, NULL, NULL, 60000, &r), 0);
    ASSERT_EQ(r.status, 200);
    ASSERT_CONTAINS(r.body, "event: progress");
    ASSERT_CONTAINS(r.body, "rows; ");
    ASSERT_CONTAINS(r.body, "\"succeeded\"");
    serve_reply_free(&r);
    /* Served within a second of the swap, without a restart. */
    await_200(p.port, "/titles/tt0000001", 503);
    serve_stop(&p);
    serve_cleanup(&p);
}
