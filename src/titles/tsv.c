/* titles/tsv.c: IMDB's TSV lines, field by field (tsv.h has the rules). */
#include "titles/tsv.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

bool titles_utf8_valid(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        if (*p < 0x80) {
            p++;
            continue;
        }
        size_t need;
        uint32_t cp;
        if (*p >= 0xc2 && *p <= 0xdf) need = 1, cp = *p & 0x1f;
        else if (*p >= 0xe0 && *p <= 0xef) need = 2, cp = *p & 0x0f;
        else if (*p >= 0xf0 && *p <= 0xf4) need = 3, cp = *p & 0x07;
        else return false;
        if ((size_t)(end - p) <= need) return false;
        for (size_t i = 1; i <= need; i++) {
            if ((p[i] & 0xc0) != 0x80) return false;
            cp = cp << 6 | (p[i] & 0x3f);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        p += need + 1;
    }
    return true;
}

int64_t titles_parse_tconst(const char *p, size_t n) {
    if ((n != 9 && n != 10) || p[0] != 't' || p[1] != 't') return -1;
    if (n == 10 && p[2] == '0') return -1; /* not canonical: 8 digits with a leading zero */
    int64_t v = 0;
    for (size_t i = 2; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v > 0 ? v : -1;
}

void titles_tconst(int64_t id, char *buf, size_t cap) { snprintf(buf, cap, "tt%07lld", (long long)id); }

static bool is_null(const char *p, size_t n) { return n == 2 && p[0] == '\\' && p[1] == 'N'; }

static int bad(char *why, size_t cap, const char *what) {
    snprintf(why, cap, "%s", what);
    return -EINVAL;
}

/* Splits into exactly `want` fields at tabs. Returns how many there are
 * (stops counting past want). */
static int split(const char *line, size_t len, titles_text *f, int want) {
    int n = 0;
    const char *p = line, *end = line + len;
    for (;;) {
        const char *tab = memchr(p, '\t', (size_t)(end - p));
        const char *stop = tab ? tab : end;
        if (n < want) f[n] = (titles_text){p, (size_t)(stop - p)};
        n++;
        if (!tab || n > want) break;
        p = tab + 1;
    }
    return n;
}

/* Digits only, 1 to max of them; the value, or -1. */
static int64_t digits(titles_text t, size_t max) {
    if (t.n == 0 || t.n > max) return -1;
    int64_t v = 0;
    for (size_t i = 0; i < t.n; i++) {
        if (t.p[i] < '0' || t.p[i] > '9') return -1;
        v = v * 10 + (t.p[i] - '0');
    }
    return v;
}

static titles_text text_or_null(titles_text t) {
    return is_null(t.p, t.n) ? (titles_text){NULL, 0} : t;
}

static int year(titles_text t, int *out) {
    if (is_null(t.p, t.n)) {
        *out = -1;
        return 0;
    }
    int64_t v = t.n == 4 ? digits(t, 4) : -1;
    if (v < 0) return -1;
    *out = (int)v;
    return 0;
}

/* Splits into exactly `want` fields. Returns 0, or -EINVAL with how many
 * there were in `why`. */
static int fields(const char *line, size_t len, titles_text *f, int want, char *why, size_t cap) {
    int n = split(line, len, f, want);
    if (n == want) return 0;
    if (n > want) snprintf(why, cap, "more than %d columns", want);
    else snprintf(why, cap, "%d column%s, not %d", n, n == 1 ? "" : "s", want);
    return -EINVAL;
}

static size_t chomp(const char *line, size_t len) {
    return len && line[len - 1] == '\r' ? len - 1 : len;
}

int titles_parse_basics(const char *line, size_t len, titles_basics *out, char *why, size_t cap) {
    len = chomp(line, len);
    if (!titles_utf8_valid(line, len)) return bad(why, cap, "invalid UTF-8");
    titles_text f[9];
    if (fields(line, len, f, 9, why, cap)) return -EINVAL;
    memset(out, 0, sizeof *out);
    if ((out->id = titles_parse_tconst(f[0].p, f[0].n)) < 0) return bad(why, cap, "bad tconst");
    out->type = text_or_null(f[1]);
    if (out->type.p && (out->type.n == 0 || out->type.n > 64)) return bad(why, cap, "bad titleType");
    out->primary = text_or_null(f[2]);
    out->original = text_or_null(f[3]);
    if (is_null(f[4].p, f[4].n)) out->is_adult = -1;
    else if (f[4].n == 1 && (f[4].p[0] == '0' || f[4].p[0] == '1')) out->is_adult = f[4].p[0] - '0';
    else return bad(why, cap, "bad isAdult");
    if (year(f[5], &out->start_year)) return bad(why, cap, "bad startYear");
    if (year(f[6], &out->end_year)) return bad(why, cap, "bad endYear");
    if (is_null(f[7].p, f[7].n)) out->runtime = -1;
    else if ((out->runtime = digits(f[7], 9)) < 0) return bad(why, cap, "bad runtimeMinutes");
    if (!is_null(f[8].p, f[8].n)) {
        const char *p = f[8].p, *end = f[8].p + f[8].n;
        for (;;) {
            const char *comma = memchr(p, ',', (size_t)(end - p));
            const char *stop = comma ? comma : end;
            size_t gn = (size_t)(stop - p);
            if (gn == 0 || gn > 32 || out->ngenres == TITLES_MAX_GENRES)
                return bad(why, cap, "bad genres");
            for (size_t k = 0; k < gn; k++)
                if ((unsigned char)p[k] < 0x20) return bad(why, cap, "bad genres");
            out->genres[out->ngenres++] = (titles_text){p, gn};
            if (!comma) break;
            p = comma + 1;
        }
    }
    return 0;
}

int titles_parse_rating(const char *line, size_t len, titles_rating *out, char *why, size_t cap) {
    len = chomp(line, len);
    titles_text f[3];
    if (fields(line, len, f, 3, why, cap)) return -EINVAL;
    if ((out->id = titles_parse_tconst(f[0].p, f[0].n)) < 0) return bad(why, cap, "bad tconst");
    /* D or DD, a point, one digit: 0.0 to 10.0. */
    titles_text r = f[1];
    const char *dot = memchr(r.p, '.', r.n);
    titles_text whole = {r.p, dot ? (size_t)(dot - r.p) : r.n};
    int64_t w = digits(whole, 2), frac = 0;
    if (dot) frac = digits((titles_text){dot + 1, r.n - whole.n - 1}, 1);
    if (w < 0 || frac < 0 || w * 10 + frac > 100) return bad(why, cap, "bad averageRating");
    out->average = (double)(w * 10 + frac) / 10;
    if ((out->votes = digits(f[2], 12)) < 0) return bad(why, cap, "bad numVotes");
    return 0;
}
