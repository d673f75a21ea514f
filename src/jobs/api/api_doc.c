/* jobs/api/api_doc.c: the JSON documents of the job API.
 *
 * The status document of a job, as GET /jobs/{id}, the list and the event
 * stream send it:
 *
 *   {"id", "kind", "status", "priority", "attempts", "max_attempts",
 *    "progress", "message", "created_at", "started_at", "finished_at",
 *    "updated_at", "run_at", "timeout_ms", "cancel_requested",
 *    "error": null | {"message", "signal", "exit_status", "oom"},
 *    "result": null | {"url", "content_type", "size"},
 *    "parent": null | "ID" (a follow-up's),
 *    "followups": [{"kind", "when", "id": null | "ID", "status"}]}
 *
 * A follow-up's status is its job's once its parent has ended and written
 * it; "waiting" before; "skipped" if the parent ended the other way.
 *
 * Times are milliseconds since the Unix epoch, null until they happen.
 */
#include "jobs/service/service.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A time, or null for "not yet". */
static json_t *time_or_null(int64_t ms) { return ms ? json_integer(ms) : json_null(); }

static json_t *string_or_null(const char *s) { return s ? json_string(s) : json_null(); }

static json_t *error_doc(const coil__job *job) {
    if (!job->error_msg && !job->error_signal && job->error_exit < 0 && !job->error_oom)
        return json_null();
    return json_pack("{s:o, s:i, s:o, s:b}", "message", string_or_null(job->error_msg),
                     "signal", job->error_signal, "exit_status",
                     job->error_exit >= 0 ? json_integer(job->error_exit) : json_null(), "oom",
                     job->error_oom);
}

static json_t *result_doc(const coil__job *job) {
    if (job->state != COIL__JOB_SUCCEEDED || !job->result_type) return json_null();
    char url[64];
    snprintf(url, sizeof url, "/jobs/%s/result", job->id);
    json_int_t size = (json_int_t)job->result_len;
    struct stat st;
    if (job->result_path && stat(job->result_path, &st) == 0) size = (json_int_t)st.st_size;
    return json_pack("{s:s, s:s, s:I}", "url", url, "content_type", job->result_type, "size",
                     size);
}

void *coil__job_status_doc(const coil__job *job) {
    json_t *doc = json_object();
    if (!doc) return NULL;
    int bad = 0;
    bad |= json_object_set_new(doc, "id", json_string(job->id));
    bad |= json_object_set_new(doc, "kind", json_string(job->kind));
    bad |= json_object_set_new(doc, "status", json_string(coil__job_state_name(job->state)));
    bad |= json_object_set_new(doc, "priority", json_integer(job->priority));
    bad |= json_object_set_new(doc, "attempts", json_integer(job->attempts));
    bad |= json_object_set_new(doc, "max_attempts", json_integer(job->max_attempts));
    bad |= json_object_set_new(doc, "progress", json_integer(job->progress));
    bad |= json_object_set_new(doc, "message", string_or_null(job->progress_msg));
    bad |= json_object_set_new(doc, "created_at", time_or_null(job->created));
    bad |= json_object_set_new(doc, "started_at", time_or_null(job->started));
    bad |= json_object_set_new(doc, "finished_at", time_or_null(job->finished));
    bad |= json_object_set_new(doc, "updated_at", time_or_null(job->updated));
    bad |= json_object_set_new(doc, "run_at", time_or_null(job->run_at));
    bad |= json_object_set_new(doc, "timeout_ms",
                               job->timeout_ms ? json_integer(job->timeout_ms) : json_null());
    bad |= json_object_set_new(doc, "cancel_requested", json_boolean(job->cancel_requested));
    bad |= json_object_set_new(doc, "error", error_doc(job));
    bad |= json_object_set_new(doc, "result", result_doc(job));
    bad |= json_object_set_new(doc, "parent", string_or_null(job->parent));
    if (bad) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/* The follow-up a child is, from its key "followup:PARENT:INDEX"; -1. */
static long followup_index(const coil__job *child, const char *parent) {
    char prefix[COIL__JOB_ID_SIZE + 16];
    int n = snprintf(prefix, sizeof prefix, "followup:%s:", parent);
    if (!child->idem_key || strncmp(child->idem_key, prefix, (size_t)n) != 0) return -1;
    char *end;
    long i = strtol(child->idem_key + n, &end, 10);
    return *end == '\0' && i >= 0 ? i : -1;
}

int coil__job_status_add_followups(void *status_doc, const coil__job *job,
                                   const coil__job_list *children) {
    json_t *specs = job->followups ? json_loads(job->followups, 0, NULL) : NULL;
    json_t *list = json_array();
    size_t i;
    json_t *f;
    json_array_foreach(specs, i, f) {
        const coil__job *child = NULL;
        for (size_t k = 0; children && k < children->n && !child; k++)
            if (followup_index(children->jobs[k], job->id) == (long)i) child = children->jobs[k];
        const char *status = child                              ? coil__job_state_name(child->state)
                             : coil__job_state_final(job->state) ? "skipped"
                                                                 : "waiting";
        json_array_append_new(list, json_pack("{s:O, s:O, s:o, s:s}", "kind",
                                              json_object_get(f, "kind"), "when",
                                              json_object_get(f, "when"),
                                              "id", child ? json_string(child->id) : json_null(),
                                              "status", status));
    }
    json_decref(specs);
    return json_object_set_new(status_doc, "followups", list) == 0 ? 0 : -ENOMEM;
}

int coil__jobs_http_status(int err) {
    switch (err) {
    case -ENOENT: return 404;
    case -EINVAL: return 400;
    case -EROFS:
    case -ENOSPC:
    case -EDQUOT:
    case -EIO:
    case -EACCES:
    case -EPERM:
    case -EBUSY:
    case -EPIPE:
    case -ENOMEM:
    case -ENOTCONN:
    case -ETIMEDOUT:
    case -EAGAIN:
        return 503; /* the store cannot take writes now: try again later */
    default: return 500;
    }
}
