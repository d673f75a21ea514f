/* tests/test.h: coil's test harness (see runner.c).
 *
 *     TEST(spawn_join) { ... ASSERT_EQ(x, 3); ... }
 *
 * Every TEST in a file becomes one ctest test. The runner forks each test
 * with a timeout; `test_foo --in-process NAME` runs one without forking, for
 * gdb or valgrind. A failed assertion prints file:line and exits non-zero.
 */
#ifndef COIL_TEST_H
#define COIL_TEST_H

#include <coil/coil.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef void (*coil_test_fn)(void);
void coil_test_register(const char *name, coil_test_fn fn);
__attribute__((noreturn)) void coil_test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define TEST(name)                                                               \
    static void test_##name(void);                                               \
    __attribute__((constructor)) static void register_##name(void) {             \
        coil_test_register(#name, test_##name);                                  \
    }                                                                            \
    static void test_##name(void)

#define ASSERT(cond)                                                             \
    do {                                                                         \
        if (!(cond)) coil_test_fail(__FILE__, __LINE__, "ASSERT(%s)", #cond);    \
    } while (0)

#define ASSERT_EQ(a, b)                                                          \
    do {                                                                         \
        long long a_ = (long long)(a), b_ = (long long)(b);                      \
        if (a_ != b_)                                                            \
            coil_test_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, \
                           a_, b_);                                              \
    } while (0)

#define ASSERT_NE(a, b)                                                          \
    do {                                                                         \
        long long a_ = (long long)(a), b_ = (long long)(b);                      \
        if (a_ == b_)                                                            \
            coil_test_fail(__FILE__, __LINE__, "%s != %s: both %lld", #a, #b, a_); \
    } while (0)

#define ASSERT_GE(a, b)                                                          \
    do {                                                                         \
        long long a_ = (long long)(a), b_ = (long long)(b);                      \
        if (a_ < b_)                                                             \
            coil_test_fail(__FILE__, __LINE__, "%s >= %s: %lld < %lld", #a, #b,  \
                           a_, b_);                                              \
    } while (0)

#define ASSERT_LE(a, b) ASSERT_GE(b, a)

#define ASSERT_STR_EQ(a, b)                                                      \
    do {                                                                         \
        const char *a_ = (a), *b_ = (b);                                         \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                                   \
            coil_test_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, \
                           #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)");          \
    } while (0)

#define ASSERT_CONTAINS(haystack, needle)                                        \
    do {                                                                         \
        const char *h_ = (haystack), *n_ = (needle);                             \
        if (!h_ || !strstr(h_, n_))                                              \
            coil_test_fail(__FILE__, __LINE__, "%s contains \"%s\"; it is: %s",  \
                           #haystack, n_, h_ ? h_ : "(null)");                   \
    } while (0)

/* Runs fn(arg) as the main task of a fresh loop and asserts it returned 0. */
#define RUN_MAIN(fn, arg)                                                        \
    do {                                                                         \
        coil_result r_;                                                          \
        ASSERT_EQ(coil_run((fn), (arg), &r_), 0);                                \
        ASSERT_EQ(r_.err, 0);                                                    \
    } while (0)

/* Captures what `body` writes to stderr into a malloc'd string. */
char *coil_test_capture_stderr_begin(void);
char *coil_test_capture_stderr_end(void);

/* The value of header `name` (case-insensitive, the first one) in the
 * response head `head` (status line, then "Name: value" lines ending in
 * CRLF), looking no further than `stop` (NULL: to the end). Copied into
 * `buf` (truncated to fit); NULL if absent. */
static inline const char *coil_test_header(const char *head, const char *stop, const char *name,
                                           char *buf, size_t size) {
    size_t nlen = strlen(name);
    const char *p = head ? strstr(head, "\r\n") : NULL;
    while (p && (!stop || p < stop)) {
        p += 2;
        if (strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            const char *v = p + nlen + 1;
            while (*v == ' ') v++;
            const char *e = strstr(v, "\r\n");
            size_t vlen = e ? (size_t)(e - v) : strlen(v);
            if (vlen >= size) vlen = size - 1;
            memcpy(buf, v, vlen);
            buf[vlen] = '\0';
            return buf;
        }
        p = strstr(p, "\r\n");
    }
    return NULL;
}

#endif
