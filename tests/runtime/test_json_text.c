/* tests/runtime/test_json_text.c: JSON text written into a buffer, checked
 * against jansson's reading of it. */
#include "test.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/json_text.h"

/* b's text, parsed: it must be JSON. */
static json_t *parsed(const coil__json_text *b) {
    ASSERT(!b->failed);
    json_error_t e;
    json_t *v = json_loadb(b->s, b->len, JSON_DECODE_ANY, &e);
    if (!v) coil_test_fail(__FILE__, __LINE__, "not JSON (%s): %s", e.text, b->s);
    return v;
}

TEST(strings_escape_quotes_backslashes_and_control_bytes) {
    static const char in[] = "a\"b\\c\nd\te\rf\x01g\x1fh caf\xc3\xa9 \xe6\x9d\xb1";
    coil__json_text b = {0};
    coil__json_str(&b, in, sizeof in - 1);
    ASSERT_STR_EQ(b.s, "\"a\\\"b\\\\c\\nd\\te\\rf\\u0001g\\u001fh caf\xc3\xa9 \xe6\x9d\xb1\"");
    json_t *v = parsed(&b);
    ASSERT_EQ(json_string_length(v), sizeof in - 1);
    ASSERT_EQ(memcmp(json_string_value(v), in, sizeof in - 1), 0);
    json_decref(v);
    free(b.s);
    /* A NUL inside is a character too. */
    b = (coil__json_text){0};
    coil__json_str(&b, "x\0y", 3);
    ASSERT_STR_EQ(b.s, "\"x\\u0000y\"");
    free(b.s);
}

TEST(numbers_round_trip_and_non_finite_reals_are_null) {
    static const double reals[] = {7.3, 0.1, -0.0, 1e300, 5e-324, 123456789.125, 2.0 / 3.0};
    for (size_t i = 0; i < sizeof reals / sizeof *reals; i++) {
        coil__json_text b = {0};
        coil__json_real(&b, reals[i]);
        json_t *v = parsed(&b);
        ASSERT(json_number_value(v) == reals[i]);
        json_decref(v);
        free(b.s);
    }
    coil__json_text b = {0};
    coil__json_real(&b, 7.3); /* the short form, not 7.2999999999999998 */
    ASSERT_STR_EQ(b.s, "7.3");
    free(b.s);
    b = (coil__json_text){0};
    coil__json_lit(&b, "[");
    coil__json_real(&b, NAN);
    coil__json_lit(&b, ",");
    coil__json_real(&b, -INFINITY);
    coil__json_lit(&b, ",");
    coil__json_int(&b, INT64_MIN);
    coil__json_lit(&b, ",");
    coil__json_int(&b, INT64_MAX);
    coil__json_lit(&b, "]");
    ASSERT_STR_EQ(b.s, "[null,null,-9223372036854775808,9223372036854775807]");
    free(b.s);
}

TEST(blobs_are_base64_and_the_buffer_grows) {
    coil__json_text b = {0};
    coil__json_base64(&b, (const unsigned char *)"any carnal pleas", 16);
    ASSERT_STR_EQ(b.s, "\"YW55IGNhcm5hbCBwbGVhcw==\"");
    free(b.s);
    /* Far past the first allocation, escapes and all. */
    b = (coil__json_text){0};
    coil__json_lit(&b, "[");
    for (int i = 0; i < 20000; i++) {
        if (i) coil__json_lit(&b, ",");
        coil__json_str(&b, "\"\x02", 2);
    }
    coil__json_lit(&b, "]");
    json_t *v = parsed(&b);
    ASSERT_EQ(json_array_size(v), 20000);
    ASSERT_STR_EQ(json_string_value(json_array_get(v, 19999)), "\"\x02");
    ASSERT_EQ(strlen(b.s), b.len);
    json_decref(v);
    free(b.s);
}
