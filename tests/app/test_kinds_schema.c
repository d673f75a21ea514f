/* tests/app/test_kinds_schema.c: the JSON Schema subset that checks a
 * kind's payloads before the 202: each keyword, the field named in the
 * message, the keywords outside the subset refused at load; and coil
 * serve's 422 for a command kind with --kind-schema. */
#include "app/kinds.h"
#include "app/kinds_schema.h"
#include "app/serve_harness.h"

static const char schema[] =
    "{\"$schema\": \"https://json-schema.org/draft/2020-12/schema\", \"type\": \"object\","
    " \"required\": [\"title\", \"rows\"], \"additionalProperties\": false,"
    " \"properties\": {"
    "  \"title\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 5},"
    "  \"format\": {\"enum\": [\"pdf\", \"png\"]},"
    "  \"code\": {\"type\": \"string\", \"pattern\": \"^[A-Z]{3}-[0-9]+$\"},"
    "  \"version\": {\"const\": 2},"
    "  \"rows\": {\"type\": \"array\", \"minItems\": 1, \"maxItems\": 3, \"items\": {"
    "    \"type\": \"object\", \"required\": [\"value\"],"
    "    \"properties\": {\"value\": {\"type\": [\"number\", \"null\"], \"minimum\": 0,"
    "                     \"exclusiveMaximum\": 100},"
    "                   \"count\": {\"type\": \"integer\"}}}}}}";

static void expect(const app_schema *s, const char *doc, const char *want) {
    json_t *v = json_loads(doc, 0, NULL);
    ASSERT(v != NULL);
    char msg[256] = "";
    int err = app_schema_check(s, v, msg, sizeof msg);
    json_decref(v);
    if (!want) {
        if (err) coil_test_fail(__FILE__, __LINE__, "%s: refused: %s", doc, msg);
        return;
    }
    if (err != -EINVAL) coil_test_fail(__FILE__, __LINE__, "%s: accepted, want %s", doc, want);
    ASSERT_CONTAINS(msg, want);
}

TEST(payloads_are_checked_field_by_field) {
    char err[256];
    app_schema *s = app_schema_parse(schema, err, sizeof err);
    if (!s) coil_test_fail(__FILE__, __LINE__, "%s", err);
    expect(s, "{\"title\": \"Q3\", \"rows\": [{\"value\": 3}]}", NULL);
    expect(s, "{\"title\": \"Q3\", \"rows\": [{\"value\": null, \"count\": 2.0}], \"format\": \"png\","
              " \"code\": \"ABC-12\", \"version\": 2}", NULL);
    expect(s, "[]", "$: must be of type \"object\"");
    expect(s, "{\"rows\": [{\"value\": 1}]}", "$.title: is required");
    expect(s, "{\"title\": \"\", \"rows\": [{\"value\": 1}]}", "$.title: must be at least 1");
    expect(s, "{\"title\": \"caf\xc3\xa9s\", \"rows\": [{\"value\": 1}]}", NULL); /* 5 characters */
    expect(s, "{\"title\": \"toolong\", \"rows\": [{\"value\": 1}]}", "$.title: must be at most 5");
    expect(s, "{\"title\": \"a\", \"rows\": []}", "$.rows: must have at least 1 items");
    expect(s, "{\"title\": \"a\", \"rows\": [{}, {}, {}, {}]}", "$.rows: must have at most 3");
    expect(s, "{\"title\": \"a\", \"rows\": [{\"value\": 1}, {\"value\": \"x\"}]}",
           "$.rows[1].value: must be of type [\"number\",\"null\"]");
    expect(s, "{\"title\": \"a\", \"rows\": [{\"value\": -1}]}", "$.rows[0].value: must be at least 0");
    expect(s, "{\"title\": \"a\", \"rows\": [{\"value\": 100}]}", "$.rows[0].value: must be less than 100");
    expect(s, "{\"title\": \"a\", \"rows\": [{\"value\": 1, \"count\": 1.5}]}",
           "$.rows[0].count: must be of type \"integer\"");
    expect(s, "{\"title\": \"a\", \"rows\": [{}]}", "$.rows[0].value: is required");
    expect(s, "{\"title\": \"a\", \"rows\": [{\"value\": 1}], \"format\": \"gif\"}",
           "$.format: must be one of");
    expect(s, "{\"title\": \"a\", \"rows\": [{\"value\": 1}], \"code\": \"abc-1\"}", "$.code: must match");
    expect(s, "{\"title\": \"a\", \"rows\": [{\"value\": 1}], \"version\": 3}", "$.version: must be the given value");
    expect(s, "{\"title\": \"a\", \"rows\": [{\"value\": 1}], \"extra\": true}", "$.extra: not allowed");
    app_schema_free(s);
}

TEST(keywords_outside_the_subset_are_refused) {
    char err[256];
    static const struct {
        const char *schema, *want;
    } bad[] = {
        {"{\"oneOf\": [{}]}", "\"oneOf\" is not in the supported subset"},
        {"{\"properties\": {\"a\": {\"$ref\": \"#/x\"}}}", "$.properties.a: \"$ref\""},
        {"{\"type\": \"thing\"}", "bad \"type\""},
        {"{\"minLength\": -1}", "\"minLength\" is a count"},
        {"{\"pattern\": \"(\"}", "not a POSIX extended regular expression"},
        {"{\"required\": \"a\"}", "\"required\" is a list"},
        {"[1]", "a schema is an object"},
        {"{", "not JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        app_schema *s = app_schema_parse(bad[i].schema, err, sizeof err);
        if (s) coil_test_fail(__FILE__, __LINE__, "%s: accepted", bad[i].schema);
        ASSERT_CONTAINS(err, bad[i].want);
    }
}

TEST(serve_answers_422_naming_the_field) {
    serve_proc p;
    serve_init(&p);
    char file[160], def[64];
    snprintf(file, sizeof file, "%s/schema.json", p.dir);
    FILE *f = fopen(file, "w");
    ASSERT(f != NULL);
    fputs(schema, f);
    fclose(f);
    snprintf(def, sizeof def, "cat.job:application/json=/bin/cat");
    char arg[200];
    snprintf(arg, sizeof arg, "cat.job=%s", file);
    serve_launch(&p, (const char *const[]){"--job-workers", "1", "--command-kind", def,
                                           "--kind-schema", arg, NULL});
    serve_reply r;
    serve_http(p.port, "POST", "/jobs/cat.job", NULL, "{\"title\": \"a\", \"rows\": [{\"value\": \"x\"}]}", &r);
    ASSERT_EQ(r.status, 422);
    ASSERT_CONTAINS(r.body, "$.rows[0].value: must be of type");
    serve_reply_free(&r);
    serve_http(p.port, "POST", "/jobs/cat.job", NULL, "{\"title\": \"a\", \"rows\": [{\"value\": 1}]}", &r);
    ASSERT_EQ(r.status, 202);
    serve_reply_free(&r);
    serve_stop(&p);
    /* A schema outside the subset stops the server at its start. */
    f = fopen(file, "w");
    fputs("{\"anyOf\": []}", f);
    fclose(f);
    serve_ran bad;
    serve_coil_run(p.dir, (const char *const[]){"serve", "--kind-schema", arg, NULL}, &bad);
    ASSERT_EQ(bad.status, 2);
    ASSERT_CONTAINS(bad.err, "anyOf");
    serve_ran_free(&bad);
    serve_cleanup(&p);
}
