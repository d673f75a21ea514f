/* runtime/json_text.c: JSON text into a buffer (json_text.h has the contract). */
#include "runtime/json_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room for n more bytes and the NUL. */
static bool reserve(coil__json_text *b, size_t n) {
    if (b->failed) return false;
    if (b->len + n + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + n + 1) cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) {
        b->failed = true;
        return false;
    }
    b->s = s;
    b->cap = cap;
    return true;
}

void coil__json_raw(coil__json_text *b, const char *p, size_t n) {
    if (!reserve(b, n)) return;
    memcpy(b->s + b->len, p, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void coil__json_str(coil__json_text *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    /* At most 6 bytes out for a byte in ("\u001f"), and the quotes. */
    if (!reserve(b, 6 * n + 2)) return;
    char *w = b->s + b->len;
    *w++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *w++ = (char)c;
            continue;
        }
        *w++ = '\\';
        switch (c) {
        case '"': *w++ = '"'; break;
        case '\\': *w++ = '\\'; break;
        case '\n': *w++ = 'n'; break;
        case '\t': *w++ = 't'; break;
        case '\r': *w++ = 'r'; break;
        default:
            *w++ = 'u', *w++ = '0', *w++ = '0';
            *w++ = hex[c >> 4], *w++ = hex[c & 15];
        }
    }
    *w++ = '"';
    b->len = (size_t)(w - b->s);
    b->s[b->len] = '\0';
}

void coil__json_int(coil__json_text *b, int64_t v) {
    char num[24];
    int n = snprintf(num, sizeof num, "%lld", (long long)v);
    coil__json_raw(b, num, (size_t)n);
}

void coil__json_real(coil__json_text *b, double v) {
    if (v != v || v - v != 0) { /* NaN, or an infinity */
        coil__json_lit(b, "null");
        return;
    }
    char num[40];
    int n = 0;
    /* The shortest of %.15g, %.16g, %.17g that round-trips: 7.3, not
     * 7.2999999999999998. */
    for (int digits = 15; digits <= 17; digits++) {
        n = snprintf(num, sizeof num, "%.*g", digits, v);
        if (strtod(num, NULL) == v) break;
    }
    coil__json_raw(b, num, (size_t)n);
}

void coil__json_base64(coil__json_text *b, const unsigned char *p, size_t n) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    coil__json_lit(b, "\"");
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        char out[4] = {tab[v >> 18 & 63], tab[v >> 12 & 63],
                       i + 1 < n ? tab[v >> 6 & 63] : '=', i + 2 < n ? tab[v & 63] : '='};
        coil__json_raw(b, out, 4);
    }
    coil__json_lit(b, "\"");
}
