/* titles/gen.c: IMDB-like title.basics.tsv, deterministically (gen.h). */
#include "titles/gen.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "titles/tsv.h"

/* splitmix64: small, fast, and the same everywhere. */
static uint64_t next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, n). */
static unsigned below(uint64_t *s, unsigned n) { return (unsigned)(next(s) % n); }

typedef struct weighted {
    const char *name;
    unsigned weight;
} weighted;

static const weighted types[] = {
    {"tvEpisode", 690}, {"short", 95}, {"movie", 75},   {"video", 30},    {"tvSeries", 25},
    {"tvMovie", 15},    {"tvMiniSeries", 6}, {"tvSpecial", 5}, {"videoGame", 4},
    {"tvShort", 1},     {"tvPilot", 1},
};

static const weighted genres[] = {
    {"Drama", 30},      {"Comedy", 24},   {"Documentary", 14}, {"Talk-Show", 10},
    {"Reality-TV", 8},  {"News", 7},      {"Family", 7},       {"Romance", 7},
    {"Short", 7},       {"Animation", 6}, {"Action", 6},       {"Crime", 6},
    {"Adventure", 5},   {"Music", 5},     {"Game-Show", 4},    {"Thriller", 4},
    {"Mystery", 4},     {"Horror", 3},    {"Fantasy", 3},      {"Sport", 3},
    {"History", 3},     {"Biography", 2}, {"Sci-Fi", 2},       {"Adult", 1},
    {"Musical", 1},     {"War", 1},       {"Western", 1},      {"Film-Noir", 1},
};

static const char *const words[] = {
    "Love", "Night", "Day", "Man", "Woman", "Life", "Death", "World", "City", "Home",
    "Story", "Time", "Last", "First", "New", "Old", "Black", "White", "Red", "Blue",
    "Dark", "Light", "King", "Queen", "War", "Peace", "Game", "Show", "Summer", "Winter",
    "Road", "River", "Sea", "Island", "Star", "Moon", "Fire", "Water", "Blood", "Heart",
    "Dream", "Secret", "Lost", "Found", "Return", "Revenge", "Journey", "Garden", "Street",
    "Legend", "Shadow", "Ghost", "Angel", "Devil", "Hero", "Detective", "Doctor", "Murder",
    "Mystery", "Party", "Wedding", "School", "Hotel", "Train", "Castle", "Prison", "Forest",
    "Storm", "Rain", "Snow", "Silence", "Song", "Dance", "Music", "Golden", "Silver", "Wild",
    "Little", "Big", "Great", "Crazy", "Strange", "Broken", "Perfect", "Hidden", "the", "of",
    "and", "in", "a", "to", "Paris", "London", "Tokyo", "Johnny", "Mary", "Jack", "Anna",
    /* apostrophes, accents, other scripts */
    "Pete's", "Don't", "It's", "L'amour", "O'Brien", "Rock'n'Roll", "Mother's", "Lovers'",
    "Café", "Amélie", "Zoë", "São", "Müller", "Über", "Björk", "Łódź", "Naïve", "Crème",
    "Brûlée", "Señor", "Niño", "Göteborg", "Kraków", "Zürich", "Déjà", "Vu", "Ærø",
    "Москва", "Любовь", "Ночь", "東京", "愛", "物語", "사랑", "الحب", "Αθήνα", "İstanbul",
    "Dvořák", "Ångström",
};
enum { NWORDS = sizeof words / sizeof *words };

static const char *const na_titles[] = {"NA", "N/A", "None", "null", "NULL", "NaN", "nan"};

static const char *pick(uint64_t *s, const weighted *w, size_t n) {
    unsigned total = 0;
    for (size_t i = 0; i < n; i++) total += w[i].weight;
    unsigned r = below(s, total);
    for (size_t i = 0; i < n; i++) {
        if (r < w[i].weight) return w[i].name;
        r -= w[i].weight;
    }
    return w[n - 1].name;
}

/* A title into buf: words, sometimes with a hazard. */
static void title(uint64_t *s, const char *type, int64_t id, char *buf, size_t cap) {
    unsigned hazard = below(s, 1000);
    if (hazard < 3) { /* a title an NA list would turn into NULL */
        snprintf(buf, cap, "%s", na_titles[below(s, sizeof na_titles / sizeof *na_titles)]);
        return;
    }
    if (strcmp(type, "tvEpisode") == 0 && below(s, 3) == 0) {
        snprintf(buf, cap, "Episode #%u.%u", 1 + below(s, 20), 1 + below(s, 30));
        return;
    }
    size_t len = 0;
    unsigned n = 1 + below(s, 4);
    for (unsigned i = 0; i < n && len + 32 < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? " " : "",
                                words[below(s, NWORDS)]);
    char tmp[512];
    if (hazard < 13) snprintf(tmp, sizeof tmp, "\"%s\"", buf);            /* all of it quoted */
    else if (hazard < 20) snprintf(tmp, sizeof tmp, "\"%s\" %s", words[below(s, 40)], buf);
    else if (hazard < 25) snprintf(tmp, sizeof tmp, "12\" %s", buf);      /* an inch mark */
    else if (hazard < 30) snprintf(tmp, sizeof tmp, "%s: Part %lld", buf, (long long)(id % 9 + 1));
    else return;
    snprintf(buf, cap, "%s", tmp);
}

static int write_out(gzFile gz, FILE *f, const char *p, size_t n) {
    if (gz) return gzwrite(gz, p, (unsigned)n) == (int)n ? 0 : -EIO;
    return fwrite(p, 1, n, f) == n ? 0 : -EIO;
}

/* Opens path for writing, gzip'd if it ends in ".gz". */
static int open_out(const char *path, gzFile *gz, FILE **f, char *err, size_t cap) {
    size_t n = strlen(path);
    *gz = NULL;
    *f = NULL;
    if (n > 3 && strcmp(path + n - 3, ".gz") == 0) *gz = gzopen(path, "wb4");
    else *f = fopen(path, "w");
    if (!*gz && !*f) {
        snprintf(err, cap, "%s: %s", path, strerror(errno));
        return errno ? -errno : -ENOMEM;
    }
    return 0;
}

static int close_out(gzFile gz, FILE *f, int err, const char *path, char *msg, size_t cap) {
    int rc = gz ? (gzclose(gz) == Z_OK ? 0 : -EIO) : (fclose(f) == 0 ? 0 : -errno);
    if (!err) err = rc;
    if (err) snprintf(msg, cap, "%s: %s", path, strerror(-err));
    return err;
}

int titles_generate(const char *path, int64_t rows, uint64_t seed, char *err, size_t cap) {
    gzFile gz;
    FILE *f;
    int e = open_out(path, &gz, &f, err, cap);
    if (e) return e;
    uint64_t s = seed * 0x2545f4914f6cdd1dULL + 1;
    char line[2048], primary[600], original[600];
    int n = snprintf(line, sizeof line, "%s\n", TITLES_BASICS_HEADER);
    e = write_out(gz, f, line, (size_t)n);
    for (int64_t id = 1; id <= rows && !e; id++) {
        const char *type = pick(&s, types, sizeof types / sizeof *types);
        title(&s, type, id, primary, sizeof primary);
        if (below(&s, 10) == 0) title(&s, type, id, original, sizeof original);
        else snprintf(original, sizeof original, "%s", primary);
        bool series = strstr(type, "Series") != NULL;
        unsigned y = below(&s, 100);
        int start = y < 4 ? -1 : 1890 + (int)(135 - (below(&s, 135) * below(&s, 135)) / 135);
        int end = series && start > 0 && below(&s, 2) ? start + (int)below(&s, 12) : -1;
        int runtime = below(&s, 10) < 3 ? -1 : 1 + (int)below(&s, strcmp(type, "movie") ? 60 : 150);
        char sy[16] = "\\N", ey[16] = "\\N", rt[16] = "\\N", gs[128] = "\\N";
        if (start > 0) snprintf(sy, sizeof sy, "%d", start);
        if (end > 0) snprintf(ey, sizeof ey, "%d", end);
        if (runtime > 0) snprintf(rt, sizeof rt, "%d", runtime);
        unsigned ng = below(&s, 10) < 1 ? 0 : 1 + below(&s, 3);
        size_t gl = 0;
        const char *chosen[3];
        for (unsigned i = 0; i < ng; i++) {
            const char *g = pick(&s, genres, sizeof genres / sizeof *genres);
            bool dup = false;
            for (unsigned k = 0; k < i; k++) dup |= chosen[k] == g;
            if (dup) continue;
            chosen[i] = g;
            gl += (size_t)snprintf(gs + gl, sizeof gs - gl, "%s%s", gl ? "," : "", g);
        }
        if (gl == 0) snprintf(gs, sizeof gs, "\\N");
        char tc[16];
        titles_tconst(id, tc, sizeof tc);
        n = snprintf(line, sizeof line, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", tc, type, primary,
                     original, below(&s, 50) == 0, sy, ey, rt, gs);
        e = write_out(gz, f, line, (size_t)n);
    }
    return close_out(gz, f, e, path, err, cap);
}

int titles_generate_ratings(const char *path, int64_t rows, uint64_t seed, char *err, size_t cap) {
    gzFile gz;
    FILE *f;
    int e = open_out(path, &gz, &f, err, cap);
    if (e) return e;
    uint64_t s = seed * 0x9e3779b97f4a7c15ULL + 7;
    char line[128];
    int n = snprintf(line, sizeof line, "%s\n", TITLES_RATINGS_HEADER);
    e = write_out(gz, f, line, (size_t)n);
    for (int64_t id = 1; id <= rows && !e; id += 10) {
        char tc[16];
        titles_tconst(id, tc, sizeof tc);
        unsigned r = 10 + below(&s, 91); /* 1.0 to 10.0 */
        n = snprintf(line, sizeof line, "%s\t%u.%u\t%u\n", tc, r / 10, r % 10,
                     5 + below(&s, 1000) * below(&s, 100));
        e = write_out(gz, f, line, (size_t)n);
    }
    return close_out(gz, f, e, path, err, cap);
}
