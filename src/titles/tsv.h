/* titles/tsv.h: one line of IMDB's title.basics.tsv and title.ratings.tsv,
 * parsed exactly as IMDB documents the format.
 *
 * Fields are separated by one tab each, with no quoting of any kind: a '"'
 * is a literal character, as is an apostrophe. "\N" alone is NULL. A line
 * ends at '\n' (a '\r' before it is dropped). Every byte must be valid
 * UTF-8. A field's rules:
 *
 *   tconst          "tt" and 7 or 8 digits, canonical: "tt0000001", not
 *                   "tt00000001" (so that the number alone names it)
 *   titleType       1 to 64 bytes, or NULL
 *   primaryTitle,
 *   originalTitle   any text, or NULL
 *   isAdult         "0" or "1", or NULL
 *   startYear,
 *   endYear         4 digits, or NULL
 *   runtimeMinutes  1 to 9 digits, or NULL
 *   genres          NULL, or 1 to 3 names (1 to 32 bytes, no comma, no
 *                   control character) joined by commas
 *   averageRating   a decimal 0.0 to 10.0 (ratings)
 *   numVotes        1 to 12 digits (ratings)
 *
 * Nothing here allocates; fields point into the line.
 */
#ifndef COIL_TITLES_TSV_H
#define COIL_TITLES_TSV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TITLES_BASICS_HEADER                                                      \
    "tconst\ttitleType\tprimaryTitle\toriginalTitle\tisAdult\tstartYear\tendYear\t" \
    "runtimeMinutes\tgenres"
#define TITLES_RATINGS_HEADER "tconst\taverageRating\tnumVotes"

enum { TITLES_MAX_GENRES = 3 };

/* A text field: NULL (p == NULL) or bytes. */
typedef struct titles_text {
    const char *p;
    size_t n;
} titles_text;

typedef struct titles_basics {
    int64_t id;                   /* tconst's number */
    titles_text type, primary, original;
    int is_adult;                 /* 0, 1, or -1 for NULL */
    int start_year, end_year;     /* -1 for NULL */
    int64_t runtime;              /* -1 for NULL */
    titles_text genres[TITLES_MAX_GENRES];
    int ngenres;
} titles_basics;

typedef struct titles_rating {
    int64_t id;
    double average;
    int64_t votes;
} titles_rating;

/* Parses `line` (`len` bytes, its '\n' not included). Returns 0, or
 * -EINVAL with why (a short phrase naming the column) in `why`. */
int titles_parse_basics(const char *line, size_t len, titles_basics *out, char *why, size_t cap);
int titles_parse_rating(const char *line, size_t len, titles_rating *out, char *why, size_t cap);

/* The tconst of `id` ("tt" and at least 7 digits) into buf (>= 16 bytes). */
void titles_tconst(int64_t id, char *buf, size_t cap);
/* Parses a tconst as the rules above say; -1 if it is not one. */
int64_t titles_parse_tconst(const char *p, size_t n);
/* Whether `n` bytes at `p` are valid UTF-8 (no overlongs, no surrogates). */
bool titles_utf8_valid(const char *p, size_t n);

#endif
