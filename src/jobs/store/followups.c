/* jobs/store/followups.c: a job's follow-ups, checked when it is enqueued
 * and expanded into jobs when it ends (store.h has the format). Both
 * backends call coil__followups_each() inside the transaction that makes
 * the parent final. Nothing here suspends or touches a database. */
#include "jobs/store/store.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int reject(char *msg, size_t cap, const char *fmt, size_t i) {
    snprintf(msg, cap, fmt, i);
    return -EINVAL;
}

/* An optional non-negative integer member no larger than max. */
static bool bounded(const json_t *v, json_int_t max) {
    return !v || (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= max);
}

static int check_array(const json_t *doc, int depth, char *msg, size_t cap);

int coil__followups_check(const char *text, char *msg, size_t cap) {
    json_t *doc = json_loads(text, 0, NULL);
    int err = check_array(doc, 1, msg, cap);
    json_decref(doc);
    return err;
}

static int check_array(const json_t *doc, int depth, char *msg, size_t cap) {
    int err = 0;
    if (depth > COIL__FOLLOWUPS_DEPTH)
        return reject(msg, cap, "follow-ups: chains of at most %zu", COIL__FOLLOWUPS_DEPTH);
    if (!json_is_array(doc) || json_array_size(doc) == 0 ||
        json_array_size(doc) > COIL__FOLLOWUPS_MAX) {
        err = reject(msg, cap, "follow-ups: an array of 1 to %zu objects", COIL__FOLLOWUPS_MAX);
    }
    size_t i;
    json_t *f;
    json_array_foreach(doc, i, f) {
        if (err) break;
        const char *kind = json_string_value(json_object_get(f, "kind"));
        const char *when = json_string_value(json_object_get(f, "when"));
        const json_t *payload = json_object_get(f, "payload");
        coil__job_spec probe = {.kind = kind};
        if (!json_is_object(f) || !kind || coil__job_spec_check(&probe) != 0)
            err = reject(msg, cap, "follow-up %zu: \"kind\" must be a job kind", i);
        else if (!when || (strcmp(when, "success") && strcmp(when, "failure") && strcmp(when, "done")))
            err = reject(msg, cap, "follow-up %zu: \"when\" is success, failure or done", i);
        else if (payload && !json_is_object(payload))
            err = reject(msg, cap, "follow-up %zu: \"payload\" must be an object", i);
        else if (payload && json_object_get(payload, "parent"))
            err = reject(msg, cap, "follow-up %zu: \"parent\" is added to the payload, not given",
                         i);
        else if (!bounded(json_object_get(f, "max_attempts"), 100) ||
                 !bounded(json_object_get(f, "backoff_ms"), 86400000) ||
                 !bounded(json_object_get(f, "backoff_cap_ms"), 86400000))
            err = reject(msg, cap, "follow-up %zu: a retry setting is out of range", i);
        else if (json_object_get(f, "followups"))
            err = check_array(json_object_get(f, "followups"), depth + 1, msg, cap);
    }
    return err;
}

static bool triggers(const char *when, coil__job_state state) {
    if (strcmp(when, "done") == 0) return true;
    if (strcmp(when, "success") == 0) return state == COIL__JOB_SUCCEEDED;
    return state == COIL__JOB_DEAD || state == COIL__JOB_CANCELLED;
}

static json_t *parent_doc(const coil__followup_parent *p) {
    return json_pack("{s:s, s:s, s:s, s:i, s:s?, s:I}", "id", p->id, "kind", p->kind, "status",
                     coil__job_state_name(p->state), "attempts", p->attempts, "error", p->error,
                     "finished", (json_int_t)p->finished);
}

int coil__followups_each(const char *text, const coil__followup_parent *p, coil__followup_fn fn,
                         void *arg) {
    json_t *doc = json_loads(text, 0, NULL);
    if (!json_is_array(doc)) {
        json_decref(doc);
        return 0;
    }
    int err = 0;
    size_t i;
    json_t *f;
    json_array_foreach(doc, i, f) {
        const char *when = json_string_value(json_object_get(f, "when"));
        const char *kind = json_string_value(json_object_get(f, "kind"));
        if (!when || !kind || !triggers(when, p->state)) continue;
        const json_t *given = json_object_get(f, "payload");
        json_t *payload = json_is_object(given) ? json_deep_copy(given) : json_object();
        json_t *parent = parent_doc(p);
        if (!payload || !parent || json_object_set_new(payload, "parent", parent) != 0) {
            json_decref(payload);
            err = -ENOMEM;
            break;
        }
        char *body = json_dumps(payload, JSON_COMPACT);
        json_decref(payload);
        const json_t *chain = json_object_get(f, "followups");
        char *next = chain ? json_dumps(chain, JSON_COMPACT) : NULL;
        if (!body || (chain && !next)) {
            free(body);
            free(next);
            err = -ENOMEM;
            break;
        }
        char key[COIL__JOB_ID_SIZE + 32];
        snprintf(key, sizeof key, "followup:%s:%zu", p->id, i);
        coil__job_spec child = {
            .kind = kind, .payload = body, .payload_len = strlen(body), .idem_key = key,
            .max_attempts = (int)json_integer_value(json_object_get(f, "max_attempts")),
            .backoff_base_ms = json_integer_value(json_object_get(f, "backoff_ms")),
            .backoff_cap_ms = json_integer_value(json_object_get(f, "backoff_cap_ms")),
            .parent = p->id, .followups = next};
        err = fn(arg, &child);
        free(body);
        free(next);
        if (err) break;
    }
    json_decref(doc);
    return err;
}
