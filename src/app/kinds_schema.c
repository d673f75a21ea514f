/* app/kinds_schema.c: the JSON Schema subset of kinds_schema.h.
 *
 * A schema is kept as the jansson document it was read as; patterns are
 * compiled once at load, in a list alongside, looked up by their node. */
#include "app/kinds_schema.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { PATTERNS_MAX = 64, DEPTH_MAX = 32 };

typedef struct pattern {
    const json_t *node; /* the "pattern" string it was compiled from */
    regex_t re;
} pattern;

struct app_schema {
    json_t *doc;
    pattern patterns[PATTERNS_MAX];
    size_t npatterns;
};

static const char *const known[] = {
    "type", "enum", "const", "properties", "required", "additionalProperties", "items",
    "minItems", "maxItems", "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "pattern", "description", "title", "$schema", "$id", "$comment",
    "default", "examples"};
static const char *const types[] = {"object", "array", "string", "number", "integer", "boolean",
                                    "null"};

static int fail(char *msg, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *msg, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static bool is_known(const char *k, const char *const *list, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(k, list[i]) == 0) return true;
    return false;
}

static bool count_ok(const json_t *v) { return json_is_integer(v) && json_integer_value(v) >= 0; }

/* Checks a schema node (and compiles its patterns). */
static int load_node(app_schema *s, const json_t *n, const char *at, int depth, char *err,
                     size_t cap) {
    if (depth > DEPTH_MAX) return fail(err, cap, "%s: nested too deep", at);
    if (json_is_true(n) || json_is_false(n)) return 0;
    if (!json_is_object(n)) return fail(err, cap, "%s: a schema is an object", at);
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)n, key, v) {
        if (!is_known(key, known, sizeof known / sizeof *known))
            return fail(err, cap, "%s: \"%s\" is not in the supported subset", at, key);
    }
    const json_t *t = json_object_get(n, "type");
    if (t) {
        size_t nt = json_is_array(t) ? json_array_size(t) : 1;
        for (size_t i = 0; i < nt; i++) {
            const char *name = json_string_value(json_is_array(t) ? json_array_get(t, i) : t);
            if (!name || !is_known(name, types, sizeof types / sizeof *types))
                return fail(err, cap, "%s: bad \"type\"", at);
        }
    }
    static const char *const counts[] = {"minItems", "maxItems", "minLength", "maxLength"};
    for (size_t i = 0; i < sizeof counts / sizeof *counts; i++)
        if (json_object_get(n, counts[i]) && !count_ok(json_object_get(n, counts[i])))
            return fail(err, cap, "%s: \"%s\" is a count", at, counts[i]);
    static const char *const bounds[] = {"minimum", "maximum", "exclusiveMinimum",
                                         "exclusiveMaximum"};
    for (size_t i = 0; i < sizeof bounds / sizeof *bounds; i++)
        if (json_object_get(n, bounds[i]) && !json_is_number(json_object_get(n, bounds[i])))
            return fail(err, cap, "%s: \"%s\" is a number", at, bounds[i]);
    const json_t *req = json_object_get(n, "required");
    if (req) {
        if (!json_is_array(req)) return fail(err, cap, "%s: \"required\" is a list of names", at);
        for (size_t i = 0; i < json_array_size(req); i++)
            if (!json_is_string(json_array_get(req, i)))
                return fail(err, cap, "%s: \"required\" is a list of names", at);
    }
    if (json_object_get(n, "enum") && !json_is_array(json_object_get(n, "enum")))
        return fail(err, cap, "%s: \"enum\" is a list", at);
    const json_t *pat = json_object_get(n, "pattern");
    if (pat) {
        if (!json_is_string(pat)) return fail(err, cap, "%s: \"pattern\" is a string", at);
        if (s->npatterns == PATTERNS_MAX) return fail(err, cap, "%s: too many patterns", at);
        pattern *p = &s->patterns[s->npatterns];
        if (regcomp(&p->re, json_string_value(pat), REG_EXTENDED | REG_NOSUB) != 0)
            return fail(err, cap, "%s: \"pattern\" is not a POSIX extended regular expression", at);
        p->node = pat;
        s->npatterns++;
    }
    char sub[512];
    const json_t *props = json_object_get(n, "properties");
    if (props) {
        if (!json_is_object(props)) return fail(err, cap, "%s: \"properties\" is an object", at);
        json_object_foreach((json_t *)props, key, v) {
            snprintf(sub, sizeof sub, "%s.properties.%s", at, key);
            int e = load_node(s, v, sub, depth + 1, err, cap);
            if (e) return e;
        }
    }
    const json_t *extra = json_object_get(n, "additionalProperties");
    if (extra) {
        snprintf(sub, sizeof sub, "%s.additionalProperties", at);
        int e = load_node(s, extra, sub, depth + 1, err, cap);
        if (e) return e;
    }
    const json_t *items = json_object_get(n, "items");
    if (items) {
        snprintf(sub, sizeof sub, "%s.items", at);
        int e = load_node(s, items, sub, depth + 1, err, cap);
        if (e) return e;
    }
    return 0;
}

/* A schema from its document (taken: freed on failure too). */
static app_schema *from_doc(json_t *doc, char *err, size_t cap) {
    app_schema *s = calloc(1, sizeof *s);
    if (!s) {
        json_decref(doc);
        fail(err, cap, "out of memory");
        return NULL;
    }
    s->doc = doc;
    if (load_node(s, doc, "$", 0, err, cap) != 0) {
        app_schema_free(s);
        return NULL;
    }
    return s;
}

app_schema *app_schema_parse(const char *text, char *err, size_t cap) {
    json_error_t je;
    json_t *doc = json_loads(text, 0, &je);
    if (!doc) {
        fail(err, cap, "not JSON: %s (line %d)", je.text, je.line);
        return NULL;
    }
    return from_doc(doc, err, cap);
}

app_schema *app_schema_load(const char *path, char *err, size_t cap) {
    json_error_t je;
    json_t *doc = json_load_file(path, 0, &je);
    if (!doc) {
        fail(err, cap, "%s: %s (line %d)", path, je.text, je.line);
        return NULL;
    }
    char why[400];
    app_schema *s = from_doc(doc, why, sizeof why);
    if (!s) fail(err, cap, "%s: %s", path, why);
    return s;
}

void app_schema_free(app_schema *s) {
    if (!s) return;
    for (size_t i = 0; i < s->npatterns; i++) regfree(&s->patterns[i].re);
    json_decref(s->doc);
    free(s);
}

/* ------------------------------------------------------------------ checking */

static bool has_type(const json_t *v, const char *t) {
    if (strcmp(t, "object") == 0) return json_is_object(v);
    if (strcmp(t, "array") == 0) return json_is_array(v);
    if (strcmp(t, "string") == 0) return json_is_string(v);
    if (strcmp(t, "boolean") == 0) return json_is_boolean(v);
    if (strcmp(t, "null") == 0) return json_is_null(v);
    if (strcmp(t, "number") == 0) return json_is_number(v);
    /* integer: an integer, or a real with no fraction (JSON does not tell). */
    if (json_is_integer(v)) return true;
    return json_is_real(v) && floor(json_real_value(v)) == json_real_value(v);
}

static size_t utf8_chars(const char *s) {
    size_t n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

static const regex_t *regex_of(const app_schema *s, const json_t *node) {
    for (size_t i = 0; i < s->npatterns; i++)
        if (s->patterns[i].node == node) return &s->patterns[i].re;
    return NULL;
}

static int check(const app_schema *s, const json_t *n, const json_t *v, const char *at, char *msg,
                 size_t cap) {
    if (json_is_true(n)) return 0;
    if (json_is_false(n)) return fail(msg, cap, "%s: not allowed", at);
    const json_t *t = json_object_get(n, "type");
    if (t) {
        bool ok = false;
        size_t nt = json_is_array(t) ? json_array_size(t) : 1;
        for (size_t i = 0; i < nt && !ok; i++)
            ok = has_type(v, json_string_value(json_is_array(t) ? json_array_get(t, i) : t));
        if (!ok) {
            char *want = json_dumps(t, JSON_ENCODE_ANY | JSON_COMPACT);
            int e = fail(msg, cap, "%s: must be of type %s", at, want ? want : "?");
            free(want);
            return e;
        }
    }
    const json_t *en = json_object_get(n, "enum");
    if (en) {
        bool ok = false;
        for (size_t i = 0; i < json_array_size(en) && !ok; i++) ok = json_equal(json_array_get(en, i), v);
        if (!ok) return fail(msg, cap, "%s: must be one of the listed values", at);
    }
    const json_t *cst = json_object_get(n, "const");
    if (cst && !json_equal(cst, v)) return fail(msg, cap, "%s: must be the given value", at);
    if (json_is_number(v)) {
        double x = json_number_value(v);
        const json_t *b;
        if ((b = json_object_get(n, "minimum")) && x < json_number_value(b))
            return fail(msg, cap, "%s: must be at least %g", at, json_number_value(b));
        if ((b = json_object_get(n, "maximum")) && x > json_number_value(b))
            return fail(msg, cap, "%s: must be at most %g", at, json_number_value(b));
        if ((b = json_object_get(n, "exclusiveMinimum")) && x <= json_number_value(b))
            return fail(msg, cap, "%s: must be more than %g", at, json_number_value(b));
        if ((b = json_object_get(n, "exclusiveMaximum")) && x >= json_number_value(b))
            return fail(msg, cap, "%s: must be less than %g", at, json_number_value(b));
    }
    if (json_is_string(v)) {
        size_t len = utf8_chars(json_string_value(v));
        const json_t *b;
        if ((b = json_object_get(n, "minLength")) && len < (size_t)json_integer_value(b))
            return fail(msg, cap, "%s: must be at least %lld characters", at,
                        (long long)json_integer_value(b));
        if ((b = json_object_get(n, "maxLength")) && len > (size_t)json_integer_value(b))
            return fail(msg, cap, "%s: must be at most %lld characters", at,
                        (long long)json_integer_value(b));
        const json_t *pat = json_object_get(n, "pattern");
        const regex_t *re = pat ? regex_of(s, pat) : NULL;
        if (re && regexec(re, json_string_value(v), 0, NULL, 0) != 0)
            return fail(msg, cap, "%s: must match %s", at, json_string_value(pat));
    }
    char sub[512];
    if (json_is_array(v)) {
        size_t len = json_array_size(v);
        const json_t *b;
        if ((b = json_object_get(n, "minItems")) && len < (size_t)json_integer_value(b))
            return fail(msg, cap, "%s: must have at least %lld items", at,
                        (long long)json_integer_value(b));
        if ((b = json_object_get(n, "maxItems")) && len > (size_t)json_integer_value(b))
            return fail(msg, cap, "%s: must have at most %lld items", at,
                        (long long)json_integer_value(b));
        const json_t *items = json_object_get(n, "items");
        for (size_t i = 0; items && i < len; i++) {
            snprintf(sub, sizeof sub, "%s[%zu]", at, i);
            int e = check(s, items, json_array_get(v, i), sub, msg, cap);
            if (e) return e;
        }
    }
    if (json_is_object(v)) {
        const json_t *req = json_object_get(n, "required");
        for (size_t i = 0; req && i < json_array_size(req); i++) {
            const char *name = json_string_value(json_array_get(req, i));
            if (!json_object_get(v, name)) return fail(msg, cap, "%s.%s: is required", at, name);
        }
        const json_t *props = json_object_get(n, "properties");
        const json_t *extra = json_object_get(n, "additionalProperties");
        const char *key;
        const json_t *val;
        json_object_foreach((json_t *)v, key, val) {
            snprintf(sub, sizeof sub, "%s.%s", at, key);
            const json_t *ps = props ? json_object_get(props, key) : NULL;
            int e = ps ? check(s, ps, val, sub, msg, cap)
                       : extra ? check(s, extra, val, sub, msg, cap) : 0;
            if (e) return e;
        }
    }
    return 0;
}

int app_schema_check(const app_schema *s, const void *doc, char *msg, size_t cap) {
    return check(s, s->doc, doc, "$", msg, cap);
}
