/* titles/pairs.h: (genre, title) pairs gathered in title order, given back
 * in (genre, title) order, in bounded memory.
 *
 * title_genres is keyed by genre first, so that a genre's titles are
 * together; but the file comes in title order. Inserting each pair as it
 * comes lands it at one of the genres' many places in the tree, a seek
 * each; inserting them in key order appends, which is several times
 * cheaper. The pairs are sorted by bucketing: each genre has a buffer of
 * its title ids, delta-encoded as varints (a genre's ids ascend in a
 * sorted file, so most take a byte or two), and a full buffer is appended
 * to a spill file as a chunk. Reading back takes each genre's chunks in
 * order. Memory is a buffer per genre; the spill file holds the rest.
 *
 * One thread uses a titles_pairs; nothing here suspends.
 */
#ifndef COIL_TITLES_PAIRS_H
#define COIL_TITLES_PAIRS_H

#include <stddef.h>
#include <stdint.h>

typedef struct titles_pairs titles_pairs;

/* A new, empty set spilling to `spill_path` (created, truncated; removed
 * by titles_pairs_free). Returns 0 or a negative errno. */
int titles_pairs_open(titles_pairs **out, const char *spill_path);

/* Adds (genre, title): genre is 1 to TITLES_PAIRS_GENRES, title > 0.
 * Returns 0 or a negative errno (the spill file's write). */
int titles_pairs_add(titles_pairs *p, int genre, int64_t title);

/* Starts reading back, in (genre, title) order of adding within a genre. */
int titles_pairs_rewind(titles_pairs *p);

/* The next pair: 1, 0 at the end, or a negative errno. */
int titles_pairs_next(titles_pairs *p, int *genre, int64_t *title);

/* How many pairs were added. */
int64_t titles_pairs_count(const titles_pairs *p);

void titles_pairs_free(titles_pairs *p);

enum { TITLES_PAIRS_GENRES = 1024 };

#endif
