/* tests/titles/test_pairs.c: (genre, title) pairs come back in genre
 * order, each genre's titles in the order they went in, across spilled
 * chunks, ids out of order and the largest ids. */
#include "test.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "titles/pairs.h"

static void spill_path(char *out, size_t cap) {
    snprintf(out, cap, "/tmp/coil-test-pairs-%ld", (long)getpid());
}

/* The id of the k-th pair of genre g: ascending with gaps, except every
 * 1000th, which jumps back (a file out of title order). */
static int64_t id_of(int g, int64_t k) {
    int64_t id = 3 * k + g;
    return k % 1000 == 999 ? id / 2 + 1 : id;
}

TEST(pairs_come_back_by_genre_in_the_order_they_went_in) {
    char path[128];
    spill_path(path, sizeof path);
    titles_pairs *p;
    ASSERT_EQ(titles_pairs_open(&p, path), 0);
    /* Three genres, interleaved as a file's lines interleave them, with
     * enough pairs in genre 2 to spill many 16 KiB chunks; genre 5 has
     * one pair; genre 1 none. */
    enum { MANY = 200000 };
    for (int64_t k = 0; k < MANY; k++) {
        ASSERT_EQ(titles_pairs_add(p, 2, id_of(2, k)), 0);
        if (k % 7 == 0) ASSERT_EQ(titles_pairs_add(p, TITLES_PAIRS_GENRES, id_of(9, k)), 0);
        if (k == 5000) ASSERT_EQ(titles_pairs_add(p, 5, INT64_MAX), 0);
    }
    int64_t want_total = MANY + (MANY + 6) / 7 + 1;
    ASSERT_EQ(titles_pairs_count(p), want_total);
    struct stat st;
    ASSERT_EQ(stat(path, &st), 0);
    ASSERT_GE(st.st_size, 16 << 10); /* it did spill */

    ASSERT_EQ(titles_pairs_rewind(p), 0);
    int g;
    int64_t title, k2 = 0, k5 = 0, klast = 0;
    int last_genre = 0;
    for (int got; (got = titles_pairs_next(p, &g, &title)) != 0;) {
        ASSERT_EQ(got, 1);
        ASSERT_GE(g, last_genre);
        last_genre = g;
        if (g == 2) {
            ASSERT_EQ(title, id_of(2, k2));
            k2++;
        } else if (g == 5) {
            ASSERT_EQ(title, INT64_MAX);
            k5++;
        } else {
            ASSERT_EQ(g, TITLES_PAIRS_GENRES);
            ASSERT_EQ(title, id_of(9, klast * 7));
            klast++;
        }
    }
    ASSERT_EQ(k2, MANY);
    ASSERT_EQ(k5, 1);
    ASSERT_EQ(k2 + k5 + klast, want_total);
    /* A second pass gives the same. */
    ASSERT_EQ(titles_pairs_rewind(p), 0);
    int64_t again = 0;
    while (titles_pairs_next(p, &g, &title) == 1) again++;
    ASSERT_EQ(again, want_total);
    titles_pairs_free(p);
    ASSERT(access(path, F_OK) != 0); /* the spill file went with it */
}

TEST(out_of_range_pairs_are_refused) {
    char path[128];
    spill_path(path, sizeof path);
    titles_pairs *p;
    ASSERT_EQ(titles_pairs_open(&p, path), 0);
    ASSERT_EQ(titles_pairs_add(p, 0, 1), -EINVAL);
    ASSERT_EQ(titles_pairs_add(p, TITLES_PAIRS_GENRES + 1, 1), -EINVAL);
    ASSERT_EQ(titles_pairs_add(p, 1, 0), -EINVAL);
    ASSERT_EQ(titles_pairs_count(p), 0);
    ASSERT_EQ(titles_pairs_rewind(p), 0);
    int g;
    int64_t title;
    ASSERT_EQ(titles_pairs_next(p, &g, &title), 0);
    titles_pairs_free(p);
}

TEST(an_unwritable_spill_file_is_an_error) {
    titles_pairs *p = NULL;
    ASSERT_EQ(titles_pairs_open(&p, "/nonexistent-dir/pairs"), -ENOENT);
    ASSERT(p == NULL);
}
