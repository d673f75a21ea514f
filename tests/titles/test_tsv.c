/* tests/titles/test_tsv.c: IMDB's TSV lines, every column rule. */
#include "test.h"

#include <errno.h>
#include <string.h>

#include "titles/tsv.h"

static titles_basics parse_ok(const char *line) {
    titles_basics b;
    char why[96] = "";
    int err = titles_parse_basics(line, strlen(line), &b, why, sizeof why);
    if (err) coil_test_fail(__FILE__, __LINE__, "%s: %s", line, why);
    return b;
}

static void parse_bad(const char *line, const char *want) {
    titles_basics b;
    char why[96] = "";
    ASSERT_EQ(titles_parse_basics(line, strlen(line), &b, why, sizeof why), -EINVAL);
    ASSERT_CONTAINS(why, want);
}

static bool text_is(titles_text t, const char *s) {
    return t.p && t.n == strlen(s) && memcmp(t.p, s, t.n) == 0;
}

TEST(quotes_and_apostrophes_are_literal_characters) {
    titles_basics b = parse_ok("tt0000001\tmovie\t\"Hamlet\"\t12\" Vinyl\t0\t1999\t\\N\t90\tDrama");
    ASSERT_EQ(b.id, 1);
    ASSERT(text_is(b.type, "movie"));
    ASSERT(text_is(b.primary, "\"Hamlet\""));
    ASSERT(text_is(b.original, "12\" Vinyl"));
    b = parse_ok("tt0000002\tmovie\t\"Weird Al\" Yankovic\tPete's \"Big\" Day\t0\t1999\t\\N\t90\t\\N");
    ASSERT(text_is(b.primary, "\"Weird Al\" Yankovic"));
    ASSERT(text_is(b.original, "Pete's \"Big\" Day"));
    /* "NA", "None" and "null" are titles, not nulls: only \N is. */
    b = parse_ok("tt0000003\tmovie\tNA\tNone\t0\t1999\t\\N\t90\tDrama");
    ASSERT(text_is(b.primary, "NA"));
    ASSERT(text_is(b.original, "None"));
}

TEST(utf8_must_be_valid) {
    titles_basics b = parse_ok("tt0000004\tmovie\tCaf\xc3\xa9 \xe6\x9d\xb1\xe4\xba\xac\t\xd0\x9c\xd0\xb8\xd1\x80\t0\t2001\t\\N\t\\N\tDrama");
    ASSERT(text_is(b.primary, "Caf\xc3\xa9 \xe6\x9d\xb1\xe4\xba\xac"));
    parse_bad("tt0000005\tmovie\tCaf\xe9\tx\t0\t2001\t\\N\t\\N\tDrama", "invalid UTF-8"); /* Latin-1 */
    parse_bad("tt0000005\tmovie\t\xc0\xaf\tx\t0\t2001\t\\N\t\\N\tDrama", "invalid UTF-8"); /* overlong */
    parse_bad("tt0000005\tmovie\t\xed\xa0\x80\tx\t0\t2001\t\\N\t\\N\tDrama", "invalid UTF-8"); /* surrogate */
    parse_bad("tt0000005\tmovie\tabc\xe6\x9d\tx\t0\t2001\t\\N\t\\N\tDrama", "invalid UTF-8"); /* cut */
}

TEST(backslash_n_is_null_in_every_nullable_column) {
    titles_basics b = parse_ok("tt0000006\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N");
    ASSERT(b.type.p == NULL && b.primary.p == NULL && b.original.p == NULL);
    ASSERT_EQ(b.is_adult, -1);
    ASSERT_EQ(b.start_year, -1);
    ASSERT_EQ(b.end_year, -1);
    ASSERT_EQ(b.runtime, -1);
    ASSERT_EQ(b.ngenres, 0);
    /* A literal backslash-N inside a title is text. */
    b = parse_ok("tt0000007\tmovie\ta \\N b\t\\N\t1\t1950\t1960\t0\t\\N");
    ASSERT(text_is(b.primary, "a \\N b"));
    ASSERT_EQ(b.is_adult, 1);
    ASSERT_EQ(b.end_year, 1960);
    ASSERT_EQ(b.runtime, 0);
}

TEST(zero_to_three_genres) {
    ASSERT_EQ(parse_ok("tt0000008\tmovie\tx\tx\t0\t2000\t\\N\t1\t\\N").ngenres, 0);
    ASSERT_EQ(parse_ok("tt0000008\tmovie\tx\tx\t0\t2000\t\\N\t1\tDrama").ngenres, 1);
    titles_basics b = parse_ok("tt0000008\tmovie\tx\tx\t0\t2000\t\\N\t1\tDrama,Sci-Fi,Film-Noir");
    ASSERT_EQ(b.ngenres, 3);
    ASSERT(text_is(b.genres[0], "Drama"));
    ASSERT(text_is(b.genres[2], "Film-Noir"));
    parse_bad("tt0000008\tmovie\tx\tx\t0\t2000\t\\N\t1\tA,B,C,D", "bad genres");
    parse_bad("tt0000008\tmovie\tx\tx\t0\t2000\t\\N\t1\tDrama,,Comedy", "bad genres");
    parse_bad("tt0000008\tmovie\tx\tx\t0\t2000\t\\N\t1\t", "bad genres");
}

TEST(column_counts_and_bad_values_are_named) {
    parse_bad("tt0000009\tmovie\tx\tx\t0\t2000\t\\N\t1", "8 columns, not 9");
    parse_bad("tt0000009\tmovie\tx\tx\t0\t2000\t\\N\t1\tDrama\textra", "more than 9 columns");
    parse_bad("", "1 column, not 9");
    parse_bad("tt123\tmovie\tx\tx\t0\t2000\t\\N\t1\tDrama", "bad tconst");
    parse_bad("tx0000001\tmovie\tx\tx\t0\t2000\t\\N\t1\tDrama", "bad tconst");
    parse_bad("tt00000001\tmovie\tx\tx\t0\t2000\t\\N\t1\tDrama", "bad tconst"); /* not canonical */
    parse_bad("tt0000000\tmovie\tx\tx\t0\t2000\t\\N\t1\tDrama", "bad tconst");
    parse_bad("tt0000009\tmovie\tx\tx\t2\t2000\t\\N\t1\tDrama", "bad isAdult");
    parse_bad("tt0000009\tmovie\tx\tx\t0\t19x9\t\\N\t1\tDrama", "bad startYear");
    parse_bad("tt0000009\tmovie\tx\tx\t0\t199\t\\N\t1\tDrama", "bad startYear");
    parse_bad("tt0000009\tmovie\tx\tx\t0\t1999\t20000\t1\tDrama", "bad endYear");
    parse_bad("tt0000009\tmovie\tx\tx\t0\t1999\t\\N\t-5\tDrama", "bad runtimeMinutes");
    parse_bad("tt0000009\t\tx\tx\t0\t1999\t\\N\t5\tDrama", "bad titleType");
    /* 8-digit ids, and a CR before the newline. */
    titles_basics b = parse_ok("tt12345678\tmovie\tx\tx\t0\t1999\t\\N\t5\tDrama\r");
    ASSERT_EQ(b.id, 12345678);
    ASSERT(text_is(b.genres[0], "Drama"));
    char tc[16];
    titles_tconst(b.id, tc, sizeof tc);
    ASSERT_STR_EQ(tc, "tt12345678");
    titles_tconst(42, tc, sizeof tc);
    ASSERT_STR_EQ(tc, "tt0000042");
}

static int rating(const char *line, titles_rating *r, char *why) {
    return titles_parse_rating(line, strlen(line), r, why, 96);
}

TEST(ratings_lines) {
    titles_rating r;
    char why[96];
    ASSERT_EQ(rating("tt0000001\t5.7\t2034", &r, why), 0);
    ASSERT_EQ(r.id, 1);
    ASSERT(r.average > 5.69 && r.average < 5.71);
    ASSERT_EQ(r.votes, 2034);
    ASSERT_EQ(rating("tt0000001\t10.0\t1", &r, why), 0);
    ASSERT_EQ(rating("tt0000001\t10.1\t1", &r, why), -EINVAL);
    ASSERT_CONTAINS(why, "bad averageRating");
    ASSERT_EQ(rating("tt0000001\t5.7", &r, why), -EINVAL);
    ASSERT_CONTAINS(why, "2 columns, not 3");
    ASSERT_EQ(rating("tt0000001\t5.7\tmany", &r, why), -EINVAL);
    ASSERT_CONTAINS(why, "bad numVotes");
}
