/* app/kind_titles.c: the titles.import job kind: coil import titles as a
 * durable job, in a worker process, with its progress streamed like any
 * job's (GET /jobs/{id}/events).
 *
 *   payload  {"path": "FILE"}: a title.basics.tsv(.gz) under the data
 *            directory (relative, no ".."), which coil serve names to its
 *            workers in COIL_DATA_DIR
 *   result   {"rows", "genres", "rejected", "seconds"}
 *
 * The import builds a new DATA/titles.db and renames it into place at the
 * end, so coil serve answers from the old database until then, and from
 * the new one within a second after. A cancel stops the import, and the
 * old database stays.
 */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/kinds.h"
#include "titles/import.h"

int coil_app_validate_titles_import(const void *json, char *msg, size_t cap) {
    const json_t *doc = json;
    if (!json_is_object(doc)) return coil_app_reject(msg, cap, "payload must be a JSON object");
    size_t n;
    const json_t *path = json_object_get(doc, "path");
    const char *p = json_string_value(path);
    if (!coil_app_plain_string(path, &n) || n == 0 || n >= 1024 || p[0] == '/' ||
        strstr(p, "..") || strchr(p, '\\'))
        return coil_app_reject(msg, cap,
                               "\"path\" must be a file under the data directory (relative, "
                               "without \"..\")");
    return 0;
}

typedef struct job_progress {
    coil_job_ctx *ctx;
    volatile sig_atomic_t stop;
} job_progress;

static void on_progress(void *arg, const titles_progress *p) {
    job_progress *jp = arg;
    int pct;
    if (strcmp(p->phase, "rows") == 0)
        pct = p->bytes_total > 0 ? (int)(90 * p->bytes_read / p->bytes_total) : 0;
    else if (strcmp(p->phase, "indexes") == 0) pct = 92;
    else if (strcmp(p->phase, "full-text index") == 0) pct = 96;
    else pct = 100;
    char msg[128];
    snprintf(msg, sizeof msg, "%lld rows; %s", (long long)p->rows, p->phase);
    if (coil_job_progress(jp->ctx, pct > 100 ? 100 : pct, msg) == -EPIPE ||
        coil_job_cancelled(jp->ctx))
        jp->stop = 1;
}

static int titles_import(const void *payload, size_t len, coil_job_ctx *ctx) {
    void *parsed;
    int err = coil_app_parse_payload(payload, len, ctx, coil_app_validate_titles_import, &parsed);
    if (err) return err;
    const char *data = getenv("COIL_DATA_DIR");
    char src[PATH_MAX], db[PATH_MAX];
    if (!data || !*data) {
        json_decref(parsed);
        coil_job_set_error(ctx, "titles.import: this worker does not know the data directory");
        return -EINVAL;
    }
    snprintf(src, sizeof src, "%s/%s", data, json_string_value(json_object_get(parsed, "path")));
    snprintf(db, sizeof db, "%s/titles.db", data);
    json_decref(parsed);
    job_progress jp = {.ctx = ctx};
    titles_import_opts o = {.src = src, .db_path = db, .on_progress = on_progress, .arg = &jp,
                            .stop = &jp.stop};
    titles_import_result res;
    err = titles_import_basics(&o, &res);
    if (err) {
        coil_job_set_error(ctx, res.error);
        return jp.stop ? -ECANCELED : err;
    }
    char out[256];
    int n = snprintf(out, sizeof out,
                     "{\"rows\":%lld,\"genres\":%lld,\"rejected\":%lld,\"seconds\":%.3f}",
                     (long long)res.rows, (long long)res.genres, (long long)res.rejected,
                     res.seconds);
    return coil_job_set_result(ctx, out, (size_t)n, "application/json");
}
COIL_JOB_HANDLER("titles.import", titles_import)
