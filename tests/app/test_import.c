/* tests/app/test_import.c: `coil import titles|ratings`, the real binary,
 * on fixtures for every column rule, on broken files, interrupted, and on
 * 1,000,000 generated rows compared field by field. The importer is
 * three threads (parser, loader, FTS builder): COIL_TEST_THREADS. */
#include "app/serve_harness.h"

#include <sqlite3.h>
#include <dirent.h>
#include <zlib.h>

#include "titles/tsv.h"

#define HEADER TITLES_BASICS_HEADER "\n"

static void write_file(const char *path, const char *text, size_t n, bool gz) {
    if (gz) {
        gzFile f = gzopen(path, "wb");
        ASSERT(f != NULL);
        ASSERT_EQ(gzwrite(f, text, (unsigned)n), (int)n);
        ASSERT_EQ(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(path, "w");
        ASSERT(f != NULL);
        ASSERT_EQ(fwrite(text, 1, n, f), n);
        ASSERT_EQ(fclose(f), 0);
    }
}

/* Imports `text` (as FILE.tsv.gz) into DIR/titles.db; returns the run. */
static void import_text(serve_ran *r, const char *dir, const char *text, const char *extra) {
    char src[256], db[256];
    snprintf(src, sizeof src, "%s/in.tsv.gz", dir);
    snprintf(db, sizeof db, "%s/titles.db", dir);
    write_file(src, text, strlen(text), true);
    const char *args[] = {"import", "titles", src, "--db", db, extra, NULL};
    serve_coil_run(dir, args, r);
}

static sqlite3 *open_ro(const char *dir) {
    char db[256];
    snprintf(db, sizeof db, "%s/titles.db", dir);
    sqlite3 *h;
    ASSERT_EQ(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    return h;
}

static long long q_int(sqlite3 *h, const char *sql) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK)
        coil_test_fail(__FILE__, __LINE__, "%s: %s", sql, sqlite3_errmsg(h));
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* The text of one value, "NULL" for a NULL, into buf. */
static const char *q_text(sqlite3 *h, const char *sql, char *buf, size_t cap) {
    sqlite3_stmt *st;
    ASSERT_EQ(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    const unsigned char *t = sqlite3_column_text(st, 0);
    snprintf(buf, cap, "%s", t ? (const char *)t : "NULL");
    sqlite3_finalize(st);
    return buf;
}

/* FTS5's own check that its index agrees with itself (a write: it needs
 * a read-write connection), and SQLite's of the file. */
static void assert_intact(const char *dir) {
    char db[256];
    snprintf(db, sizeof db, "%s/titles.db", dir);
    sqlite3 *h;
    ASSERT_EQ(sqlite3_open(db, &h), SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(h, "INSERT INTO titles_fts (titles_fts) VALUES ('integrity-check')", NULL,
                     NULL, &msg) != SQLITE_OK)
        coil_test_fail(__FILE__, __LINE__, "integrity-check: %s", msg);
    char buf[64];
    ASSERT_STR_EQ(q_text(h, "PRAGMA integrity_check", buf, sizeof buf), "ok");
    sqlite3_close(h);
}

/* The rejects file of an import with --skip-bad into DIR/titles.db. */
static char *rejects_of(const char *dir) {
    char rej[256];
    snprintf(rej, sizeof rej, "%s/titles.db.rejects.tsv", dir);
    char *rejects = serve_read_file(rej, NULL);
    ASSERT(rejects != NULL);
    return rejects;
}

static const char fixture[] =
    HEADER
    "tt0000001\tmovie\t\"Hamlet\"\t\"Hamlet\"\t0\t1948\t\\N\t155\tDrama\n"
    "tt0000002\tshort\t\"Weird Al\" Yankovic\t12\" Vinyl\t0\t1985\t\\N\t4\tComedy,Music\n"
    "tt0000003\ttvSeries\tNA\tNone\t0\t2001\t2005\t\\N\tComedy,Drama,Family\n"
    "tt0000004\tmovie\tCaf\xc3\xa9 \xe6\x9d\xb1\xe4\xba\xac\tit's\t1\t\\N\t\\N\t\\N\t\\N\n"
    "tt0000005\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\n";

TEST(every_column_rule_lands_in_the_database) {
    serve_proc p;
    serve_init(&p);
    serve_ran r;
    import_text(&r, p.dir, fixture, NULL);
    if (r.status) coil_test_fail(__FILE__, __LINE__, "%s", r.err);
    ASSERT_CONTAINS(r.out, "5 titles");
    serve_ran_free(&r);
    sqlite3 *h = open_ro(p.dir);
    char buf[256];
    ASSERT_EQ(q_int(h, "SELECT count(*) FROM titles"), 5);
    ASSERT_STR_EQ(q_text(h, "SELECT primary_title FROM titles WHERE id = 1", buf, sizeof buf),
                  "\"Hamlet\"");
    ASSERT_STR_EQ(q_text(h, "SELECT primary_title FROM titles WHERE id = 2", buf, sizeof buf),
                  "\"Weird Al\" Yankovic");
    ASSERT_STR_EQ(q_text(h, "SELECT original_title FROM titles WHERE id = 2", buf, sizeof buf),
                  "12\" Vinyl");
    ASSERT_STR_EQ(q_text(h, "SELECT primary_title FROM titles WHERE id = 3", buf, sizeof buf), "NA");
    ASSERT_STR_EQ(q_text(h, "SELECT original_title FROM titles WHERE id = 3", buf, sizeof buf),
                  "None");
    ASSERT_EQ(q_int(h, "SELECT end_year FROM titles WHERE id = 3"), 2005);
    ASSERT_STR_EQ(q_text(h, "SELECT primary_title FROM titles WHERE id = 4", buf, sizeof buf),
                  "Caf\xc3\xa9 \xe6\x9d\xb1\xe4\xba\xac");
    ASSERT_EQ(q_int(h, "SELECT is_adult FROM titles WHERE id = 4"), 1);
    ASSERT_EQ(q_int(h, "SELECT count(*) FROM titles WHERE id = 5 AND title_type IS NULL AND"
                       " primary_title IS NULL AND original_title IS NULL AND is_adult IS NULL"
                       " AND start_year IS NULL AND end_year IS NULL AND runtime_minutes IS NULL"),
              1);
    /* Genres: a table of their own, 0 to 3 a title. */
    ASSERT_EQ(q_int(h, "SELECT count(*) FROM genres"), 4);
    ASSERT_EQ(q_int(h, "SELECT count(*) FROM title_genres WHERE title_id = 3"), 3);
    ASSERT_EQ(q_int(h, "SELECT count(*) FROM title_genres WHERE title_id IN (4, 5)"), 0);
    /* The full-text index finds words, accents folded. */
    ASSERT_EQ(q_int(h, "SELECT rowid FROM titles_fts WHERE titles_fts MATCH 'cafe'"), 4);
    ASSERT_EQ(q_int(h, "SELECT count(*) FROM titles_fts WHERE titles_fts MATCH 'hamlet'"), 1);
    /* originalTitle is searched where it differs from primaryTitle. */
    ASSERT_EQ(q_int(h, "SELECT rowid FROM titles_fts WHERE titles_fts MATCH 'vinyl'"), 2);
    ASSERT_EQ(q_int(h, "SELECT rowid FROM titles_fts WHERE titles_fts MATCH 'none'"), 3);
    sqlite3_close(h);
    assert_intact(p.dir);
    serve_cleanup(&p);
}

/* The database's bytes, to see that a failed import left it alone. */
static char *db_bytes(const char *dir, size_t *len) {
    char db[256];
    snprintf(db, sizeof db, "%s/titles.db", dir);
    return serve_read_file(db, len);
}

static void assert_unchanged(const char *dir, const char *before, size_t before_len) {
    size_t len;
    char *now = db_bytes(dir, &len);
    ASSERT(now != NULL);
    ASSERT_EQ(len, before_len);
    ASSERT_EQ(memcmp(now, before, len), 0);
    free(now);
    /* No temporary file is left behind. */
    DIR *d = opendir(dir);
    ASSERT(d != NULL);
    for (struct dirent *e; (e = readdir(d));) ASSERT(strstr(e->d_name, ".import-") == NULL);
    closedir(d);
}

/* A first import of the fixture, whose database's bytes come back. */
static char *import_fixture(const char *dir, size_t *len) {
    serve_ran r;
    import_text(&r, dir, fixture, NULL);
    ASSERT_EQ(r.status, 0);
    serve_ran_free(&r);
    return db_bytes(dir, len);
}

TEST(a_failed_import_leaves_the_old_database_as_it_was) {
    serve_proc p;
    serve_init(&p);
    serve_ran r;
    size_t len;
    char *before = import_fixture(p.dir, &len);
    static const struct {
        const char *text, *want;
    } bad[] = {
        {HEADER "tt0000001\tmovie\tx\tx\t0\t1999\t\\N\t1\tDrama\n"
                "tt0000002\tmovie\tx\tx\t0\t19x9\t\\N\t1\tDrama\n",
         "line 3: bad startYear"},
        {HEADER "tt0000001\tmovie\tx\tx\t0\t1999\t\\N\t1\n", "line 2: 8 columns, not 9"},
        {HEADER "tt0000001\tmovie\tx\tx\t0\t1999\t\\N\t1\tDrama\tmore\n",
         "line 2: more than 9 columns"},
        {HEADER "tt0000001\tmovie\tCaf\xe9\tx\t0\t1999\t\\N\t1\tDrama\n", "line 2: invalid UTF-8"},
        {HEADER "tt0000001\tmovie\tx\tx\t0\t1999\t\\N\t1\tDrama\n"
                "tt0000001\tmovie\ty\ty\t0\t1999\t\\N\t1\tDrama\n",
         "line 3: duplicate tconst"},
        {"tconst,titleType\ntt0000001,movie\n", "line 1: not the header"},
        {"", "empty"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        import_text(&r, p.dir, bad[i].text, NULL);
        ASSERT_EQ(r.status, 1);
        ASSERT_CONTAINS(r.err, bad[i].want);
        ASSERT_CONTAINS(r.err, "is unchanged");
        serve_ran_free(&r);
        assert_unchanged(p.dir, before, len);
    }
    /* A ratings import that fails leaves it as it was too: ratings go into
     * a copy, renamed into place at the end. */
    char rsrc[256], rdb[256];
    snprintf(rsrc, sizeof rsrc, "%s/r.tsv", p.dir);
    snprintf(rdb, sizeof rdb, "%s/titles.db", p.dir);
    write_file(rsrc, TITLES_RATINGS_HEADER "\ntt0000001\t7.5\t10\ntt0000002\tx\t3\n",
               strlen(TITLES_RATINGS_HEADER) + 32, false);
    const char *rat[] = {"import", "ratings", rsrc, "--db", rdb, NULL};
    serve_coil_run(p.dir, rat, &r);
    ASSERT_EQ(r.status, 1);
    ASSERT_CONTAINS(r.err, "line 3");
    serve_ran_free(&r);
    assert_unchanged(p.dir, before, len);
    /* A truncated gzip: the first half of a good one. */
    char big[256], src[256], db[256];
    snprintf(big, sizeof big, "%s/big.tsv.gz", p.dir);
    snprintf(db, sizeof db, "%s/titles.db", p.dir);
    const char *gen[] = {"gen", "titles", "20000", big, NULL};
    serve_coil_run(p.dir, gen, &r);
    ASSERT_EQ(r.status, 0);
    serve_ran_free(&r);
    size_t glen;
    char *gz = serve_read_file(big, &glen);
    snprintf(src, sizeof src, "%s/cut.tsv.gz", p.dir);
    write_file(src, gz, glen / 2, false);
    free(gz);
    const char *cut[] = {"import", "titles", src, "--db", db, NULL};
    serve_coil_run(p.dir, cut, &r);
    ASSERT_EQ(r.status, 1);
    ASSERT_CONTAINS(r.err, "truncated");
    serve_ran_free(&r);
    assert_unchanged(p.dir, before, len);
    free(before);
    serve_cleanup(&p);
}

TEST(skip_bad_counts_bad_lines_and_keeps_them) {
    serve_proc p;
    serve_init(&p);
    serve_ran r;
    import_text(&r, p.dir,
                HEADER "tt0000001\tmovie\tx\tx\t0\t1999\t\\N\t1\tDrama\n"
                       "tt0000002\tmovie\tx\tx\t0\t19x9\t\\N\t1\tDrama\n"
                       "tt0000003\tmovie\ty\ty\t0\t2000\t\\N\t1\tDrama\n"
                       "bogus\n",
                "--skip-bad");
    if (r.status) coil_test_fail(__FILE__, __LINE__, "%s", r.err);
    ASSERT_CONTAINS(r.out, "2 titles");
    ASSERT_CONTAINS(r.out, "2 bad lines skipped");
    serve_ran_free(&r);
    char *rejects = rejects_of(p.dir);
    ASSERT_CONTAINS(rejects, "3\tbad startYear\ttt0000002\tmovie");
    ASSERT_CONTAINS(rejects, "5\t1 column, not 9\tbogus");
    free(rejects);
    sqlite3 *h = open_ro(p.dir);
    ASSERT_EQ(q_int(h, "SELECT count(*) FROM titles"), 2);
    sqlite3_close(h);
    serve_cleanup(&p);
}

/* Duplicates where batches meet and at the end: each one stops the load
 * statement, which starts again after it, and none of a refused row's
 * genres or words are kept. */
TEST(skip_bad_drops_duplicates_and_everything_they_would_have_added) {
    serve_proc p;
    serve_init(&p);
    enum { N = 10000 };
    size_t cap = (size_t)N * 80 + 4096, len = 0;
    char *text = malloc(cap);
    ASSERT(text != NULL);
    len += (size_t)snprintf(text + len, cap - len, "%s", HEADER);
    for (int id = 1; id <= N; id++) {
        len += (size_t)snprintf(text + len, cap - len,
                                "tt%07d\tmovie\tTitle %d\tTitle %d\t0\t2000\t\\N\t90\t%s\n", id,
                                id, id, id == 2 ? "Drama,Drama" : "Drama");
        /* Right after the first row, on the last line of the first batch
         * and of the file: a duplicate with a genre and a word of its own. */
        if (id == 1 || id == 4094 || id == N)
            len += (size_t)snprintf(text + len, cap - len,
                                    "tt%07d\tmovie\tDupe\tDupe\t0\t2000\t\\N\t90\tHorror\n", id);
    }
    serve_ran r;
    import_text(&r, p.dir, text, "--skip-bad");
    if (r.status) coil_test_fail(__FILE__, __LINE__, "%s", r.err);
    ASSERT_CONTAINS(r.out, "10,000 titles");
    ASSERT_CONTAINS(r.out, "3 bad lines skipped");
    serve_ran_free(&r);
    char *rejects = rejects_of(p.dir);
    ASSERT_CONTAINS(rejects, "3\tduplicate tconst\ttt0000001\tmovie\tDupe");
    ASSERT_CONTAINS(rejects, "4097\tduplicate tconst\ttt0004094\tmovie\tDupe");
    char want[128];
    snprintf(want, sizeof want, "%d\tduplicate tconst\ttt%07d\tmovie\tDupe", N + 4, N);
    ASSERT_CONTAINS(rejects, want);
    free(rejects);
    sqlite3 *h = open_ro(p.dir);
    ASSERT_EQ(q_int(h, "SELECT count(*) FROM titles"), N);
    ASSERT_EQ(q_int(h, "SELECT count(*) FROM titles WHERE primary_title = 'Dupe'"), 0);
    /* Drama once for each title (twice on a line is once), no Horror. */
    ASSERT_EQ(q_int(h, "SELECT count(*) FROM title_genres"), N);
    ASSERT_EQ(q_int(h, "SELECT count(*) FROM genres WHERE name = 'Horror'"), 0);
    ASSERT_EQ(q_int(h, "SELECT count(*) FROM titles_fts WHERE titles_fts MATCH 'dupe'"), 0);
    ASSERT_EQ(q_int(h, "SELECT count(*) FROM titles_fts WHERE titles_fts MATCH 'title'"), N);
    ASSERT_EQ(q_int(h, "SELECT rowid FROM titles_fts WHERE titles_fts MATCH '4094'"), 4094);
    sqlite3_close(h);
    assert_intact(p.dir);
    /* Without --skip-bad, the first duplicate fails the import. */
    import_text(&r, p.dir, text, NULL);
    ASSERT_EQ(r.status, 1);
    ASSERT_CONTAINS(r.err, "line 3: duplicate tconst");
    serve_ran_free(&r);
    free(text);
    serve_cleanup(&p);
}

TEST(an_interrupted_import_leaves_the_old_database_as_it_was) {
    serve_proc p;
    serve_init(&p);
    serve_ran r;
    size_t len;
    char *before = import_fixture(p.dir, &len);
    char big[256], db[256];
    snprintf(big, sizeof big, "%s/big.tsv.gz", p.dir);
    snprintf(db, sizeof db, "%s/titles.db", p.dir);
    const char *gen[] = {"gen", "titles", "400000", big, NULL};
    serve_coil_run(p.dir, gen, &r);
    ASSERT_EQ(r.status, 0);
    serve_ran_free(&r);
    char bin[PATH_MAX];
    serve_binary(bin, sizeof bin);
    fflush(NULL);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execl(bin, bin, "import", "titles", big, "--db", db, (char *)NULL);
        _exit(127);
    }
    usleep(300 * 1000); /* into the rows */
    ASSERT_EQ(kill(pid, SIGINT), 0);
    ASSERT_EQ(serve_wait_exit(pid) >> 8, 130);
    assert_unchanged(p.dir, before, len);
    free(before);
    serve_cleanup(&p);
}

TEST(a_million_generated_rows_survive_the_round_trip) {
    serve_proc p;
    serve_init(&p);
    char src[256], db[256], ratings[256];
    snprintf(src, sizeof src, "%s/t.tsv.gz", p.dir);
    snprintf(db, sizeof db, "%s/titles.db", p.dir);
    snprintf(ratings, sizeof ratings, "%s/r.tsv.gz", p.dir);
    serve_ran r;
    const char *gen[] = {"gen", "titles", "1000000", src, NULL};
    serve_coil_run(p.dir, gen, &r);
    ASSERT_EQ(r.status, 0);
    serve_ran_free(&r);
    const char *imp[] = {"import", "titles", src, "--db", db, NULL};
    serve_coil_run(p.dir, imp, &r);
    if (r.status) coil_test_fail(__FILE__, __LINE__, "%s", r.err);
    fprintf(stderr, "%s", r.out);
    serve_ran_free(&r);
    sqlite3 *h = open_ro(p.dir);
    ASSERT_EQ(q_int(h, "SELECT count(*) FROM titles"), 1000000);
    /* Every 997th line, field by field. */
    gzFile f = gzopen(src, "rb");
    ASSERT(f != NULL);
    static char line[4096];
    sqlite3_stmt *st;
    ASSERT_EQ(sqlite3_prepare_v2(h,
                                 "SELECT title_type, primary_title, original_title, is_adult,"
                                 " start_year, end_year, runtime_minutes, genres,"
                                 " (SELECT count(*) FROM genres g WHERE EXISTS (SELECT 1"
                                 " FROM title_genres tg WHERE tg.genre_id = g.id"
                                 " AND tg.title_id = t.id))"
                                 " FROM titles t WHERE id = ?",
                                 -1, &st, NULL),
              SQLITE_OK);
    int64_t n = 0, compared = 0;
    while (gzgets(f, line, sizeof line)) {
        if (n++ == 0 || n % 997) continue;
        size_t len = strcspn(line, "\n");
        titles_basics b;
        char why[96];
        ASSERT_EQ(titles_parse_basics(line, len, &b, why, sizeof why), 0);
        sqlite3_bind_int64(st, 1, b.id);
        ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
        titles_text texts[3] = {b.type, b.primary, b.original};
        for (int c = 0; c < 3; c++) {
            const char *v = (const char *)sqlite3_column_text(st, c);
            if (!texts[c].p) ASSERT(v == NULL);
            else ASSERT(v && strlen(v) == texts[c].n && memcmp(v, texts[c].p, texts[c].n) == 0);
        }
        int64_t nums[4] = {b.is_adult, b.start_year, b.end_year, b.runtime};
        for (int c = 0; c < 4; c++) {
            if (nums[c] < 0) ASSERT_EQ(sqlite3_column_type(st, 3 + c), SQLITE_NULL);
            else ASSERT_EQ(sqlite3_column_int64(st, 3 + c), nums[c]);
        }
        /* The genres on the row, as a JSON array, and in title_genres. */
        char want[256] = "[";
        for (int k = 0; k < b.ngenres; k++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s\"%.*s\"", k ? "," : "",
                     (int)b.genres[k].n, b.genres[k].p);
        strcat(want, "]");
        ASSERT_STR_EQ((const char *)sqlite3_column_text(st, 7), want);
        ASSERT_EQ(sqlite3_column_int(st, 8), b.ngenres);
        sqlite3_reset(st);
        compared++;
    }
    gzclose(f);
    sqlite3_finalize(st);
    ASSERT_EQ(n, 1000001);
    ASSERT_GE(compared, 1000);
    sqlite3_close(h);
    assert_intact(p.dir);
    /* Ratings, joined to the titles: one for every tenth. */
    const char *genr[] = {"gen", "ratings", "1000000", ratings, NULL};
    serve_coil_run(p.dir, genr, &r);
    ASSERT_EQ(r.status, 0);
    serve_ran_free(&r);
    const char *impr[] = {"import", "ratings", ratings, "--db", db, NULL};
    serve_coil_run(p.dir, impr, &r);
    if (r.status) coil_test_fail(__FILE__, __LINE__, "%s", r.err);
    ASSERT_CONTAINS(r.out, "100,000 ratings");
    serve_ran_free(&r);
    h = open_ro(p.dir);
    ASSERT_EQ(q_int(h, "SELECT count(*) FROM ratings r JOIN titles t ON t.id = r.title_id"),
              100000);
    sqlite3_close(h);
    serve_cleanup(&p);
}
