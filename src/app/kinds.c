/* app/kinds.c: the table of job kinds `coil serve` offers, and what their
 * handlers share: parsing and checking a payload.
 *
 * The handlers themselves are in kinds_demo.c (demo.*) and kind_report.c
 * (report.pdf); kinds.h lists every payload and result. A kind in this
 * table must also be registered with COIL_JOB_HANDLER under the same name,
 * or its jobs fail with -ENOENT in the workers.
 */
#include "app/kinds.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const app_kind coil_app_kinds[] = {
    {"report.pdf", false, coil_app_validate_report},
    {"titles.import", false, coil_app_validate_titles_import},
    {"demo.noop", false, coil_app_validate_object},
    {"demo.stamp", false, coil_app_validate_object},
    {"demo.sleep", false, coil_app_validate_ms},
    {"demo.wait", false, coil_app_validate_ms},
    {"demo.cpu", false, coil_app_validate_ms},
    {"demo.crash", true, coil_app_validate_object},
    {"demo.append", true, coil_app_validate_append},
};
const size_t coil_app_nkinds = sizeof coil_app_kinds / sizeof coil_app_kinds[0];

const app_kind *coil_app_kind_find(const char *name) {
    if (!name) return NULL;
    for (size_t i = 0; i < coil_app_nkinds; i++)
        if (strcmp(coil_app_kinds[i].name, name) == 0) return &coil_app_kinds[i];
    return NULL;
}

int coil_app_reject(char *msg, size_t cap, const char *fmt, ...) {
    if (msg && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, cap, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

bool coil_app_plain_string(const void *json, size_t *len) {
    const json_t *s = json;
    if (!json_is_string(s)) return false;
    *len = json_string_length(s);
    return strlen(json_string_value(s)) == *len;
}

int coil_app_parse_payload(const void *payload, size_t len, coil_job_ctx *ctx,
                           int (*validate)(const void *, char *, size_t), void **out) {
    *out = NULL;
    json_error_t jerr;
    json_t *doc = json_loadb(payload, len, JSON_DECODE_ANY, &jerr);
    if (!doc) {
        char msg[256];
        snprintf(msg, sizeof msg, "payload is not JSON: %s", jerr.text);
        coil_job_set_error(ctx, msg);
        return -EINVAL;
    }
    char msg[256] = "";
    if (validate(doc, msg, sizeof msg) != 0) {
        json_decref(doc);
        coil_job_set_error(ctx, msg[0] ? msg : "invalid payload");
        return -EINVAL;
    }
    *out = doc;
    return 0;
}
