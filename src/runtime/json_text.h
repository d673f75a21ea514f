/* runtime/json_text.h: JSON written straight into a growable buffer.
 *
 * For answers built from rows (coil_db_query_json(), the titles routes):
 * a tree of jansson values costs an allocation a value and a walk to
 * print it; writing the text as the values come costs one buffer. The
 * caller keeps the structure right ('{', ',', ':'); these functions get
 * the values right: strings escaped, numbers in full, NaN and infinities
 * as null (JSON has neither).
 *
 * A failed allocation sets `failed` and makes every later call a no-op, so
 * a writer checks once at the end. The buffer is always NUL-terminated
 * once anything was written. Owned by the caller: free(b->s). Nothing here
 * suspends.
 */
#ifndef COIL_RUNTIME_JSON_TEXT_H
#define COIL_RUNTIME_JSON_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct coil__json_text {
    char *s;        /* s[0..len), then a NUL */
    size_t len, cap;
    bool failed;    /* an allocation failed: s is incomplete */
} coil__json_text;

/* Bytes as they are (structure, or text known to be JSON already). */
void coil__json_raw(coil__json_text *b, const char *p, size_t n);
/* `lit` must be a string literal (pasting "" onto anything else fails to
 * compile): its length is its sizeof. */
#define coil__json_lit(b, lit) coil__json_raw((b), "" lit, sizeof("" lit) - 1)

/* A string value: quoted, with '"', '\' and control characters escaped.
 * Bytes >= 0x80 pass through (the caller's text is UTF-8). */
void coil__json_str(coil__json_text *b, const char *s, size_t n);

void coil__json_int(coil__json_text *b, int64_t v);

/* The shortest form that reads back as the same double; null for NaN and
 * the infinities. */
void coil__json_real(coil__json_text *b, double v);

/* Bytes as a base64 string (a BLOB). */
void coil__json_base64(coil__json_text *b, const unsigned char *p, size_t n);

#endif
