/* titles/gen.h: a generator of IMDB's title.basics.tsv, for tests and
 * benchmarks that must stand alone (the real file cannot be downloaded
 * everywhere). Deterministic: the same rows and seed give the same bytes.
 *
 * tconsts run tt0000001..ttROWS, so a benchmark can pick existing ids at
 * random. The mix follows the real file's: about 70 % tvEpisode, years
 * from 1890 skewed to recent ones, endYear only for series, runtimes and
 * years sometimes \N, zero to three genres (Drama and Comedy the most
 * common), isAdult 1 in about 2 %. Titles carry what breaks importers: a
 * whole title in quotes, a leading quote, an inch mark (12"), apostrophes,
 * accented and non-Latin UTF-8, and titles "NA", "None", "null", "NaN".
 */
#ifndef COIL_TITLES_GEN_H
#define COIL_TITLES_GEN_H

#include <stddef.h>
#include <stdint.h>

/* Writes `rows` rows and the header to `path` (gzip'd, level 4, if it ends
 * in ".gz"). Returns 0 or a negative errno with `err`. Blocks. */
int titles_generate(const char *path, int64_t rows, uint64_t seed, char *err, size_t cap);

/* Ratings for every tenth title of such a file (title.ratings.tsv). */
int titles_generate_ratings(const char *path, int64_t rows, uint64_t seed, char *err, size_t cap);

#endif
