/* tests/app/test_titles_api.c: GET /titles/{tconst} on coil serve, over a
 * database made by coil import. */
#include "app/serve_harness.h"

/* Runs `coil ARGS...` to its end and asserts exit 0. */
static void coil_ok_run(const char *const *args) {
    char bin[PATH_MAX];
    serve_binary(bin, sizeof bin);
    const char *argv[12] = {bin};
    int n = 1;
    for (; *args; args++) argv[n++] = *args;
    argv[n] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    int status = serve_wait_exit(pid);
    ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
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
                    "tt0000002\ttvSeries\tNA\t\\N\t1\t2001\t2005\t\\N\t\\N\n");
    write_text(ratings, "tconst\taverageRating\tnumVotes\ntt0000001\t7.8\t12345\n");
    coil_ok_run((const char *const[]){"import", "titles", src, "--data", p.data, NULL});
    coil_ok_run((const char *const[]){"import", "ratings", ratings, "--data", p.data, NULL});
    serve_launch(&p, (const char *const[]){"--job-workers", "1", NULL});
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
    serve_expect(p.port, "/titles/tt0000003", 404, NULL);
    serve_expect(p.port, "/titles/bogus", 400, NULL);
    serve_expect(p.port, "/titles/tt00000001", 400, NULL); /* not canonical */
    serve_stop(&p);
    serve_cleanup(&p);
}
