/* jobs/api/api_overview.c: the dashboard's view of the jobs, in one
 * document (coil_jobs_overview_json in jobs.h). Reads of the store: the
 * counts by state, the running jobs, the latest failures, the latest jobs. */
#include "jobs/service/service.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>

enum { RUNNING_MAX = 25, FAILURES_MAX = 10, RECENT_MAX = 15 };

/* The jobs of one state, newest first, as status documents into `arr`. */
static int add_state(coil_jobs *j, int state, size_t limit, json_t *arr) {
    coil__job_filter f = {.state = state, .limit = limit};
    coil__job_list l;
    int err = coil__store_list(j->store, &f, &l);
    if (err) return err;
    for (size_t i = 0; !err && i < l.n; i++)
        if (json_array_append_new(arr, coil__job_status_doc(l.jobs[i])) != 0) err = -ENOMEM;
    coil__job_list_free(&l);
    return err;
}

static int by_newest_end(const void *a, const void *b) {
    const json_t *x = *(const json_t *const *)a, *y = *(const json_t *const *)b;
    json_int_t tx = json_integer_value(json_object_get(x, "updated_at"));
    json_int_t ty = json_integer_value(json_object_get(y, "updated_at"));
    return tx < ty ? 1 : tx > ty ? -1 : 0;
}

/* Failed (being retried) and dead jobs together, the latest first. */
static int add_failures(coil_jobs *j, json_t *out) {
    json_t *all = json_array();
    int err = all ? 0 : -ENOMEM;
    if (!err) err = add_state(j, COIL__JOB_DEAD, FAILURES_MAX, all);
    if (!err) err = add_state(j, COIL__JOB_FAILED, FAILURES_MAX, all);
    size_t n = json_array_size(all);
    json_t **v = n ? malloc(n * sizeof *v) : NULL;
    if (n && !v) err = -ENOMEM;
    for (size_t i = 0; !err && i < n; i++) v[i] = json_array_get(all, i);
    if (!err && n) qsort(v, n, sizeof *v, by_newest_end);
    for (size_t i = 0; !err && i < n && i < FAILURES_MAX; i++)
        if (json_array_append(out, v[i]) != 0) err = -ENOMEM;
    free(v);
    json_decref(all);
    return err;
}

int coil_jobs_overview_json(coil_jobs *j, char **json) {
    *json = NULL;
    uint64_t counts[COIL__JOB_NSTATES];
    int err = coil__store_counts(j->store, counts);
    if (err) return err;
    coil_jobs_stats st;
    coil_jobs_get_stats(j, &st);
    /* Each member is set as it is made; the _new calls take the reference
     * on failure too, so the document is all there is to free. */
    json_t *doc = json_object(), *c = json_object(), *running = json_array(),
           *failures = json_array(), *recent = json_array();
    if (!doc || json_object_set_new(doc, "counts", c) || json_object_set_new(doc, "running", running) ||
        json_object_set_new(doc, "failures", failures) ||
        json_object_set_new(doc, "recent", recent) ||
        json_object_set_new(doc, "stats",
                            json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "enqueued",
                                      (json_int_t)st.enqueued, "claimed", (json_int_t)st.claimed,
                                      "succeeded", (json_int_t)st.succeeded, "failed",
                                      (json_int_t)st.failed, "crashed", (json_int_t)st.crashed,
                                      "cancelled", (json_int_t)st.cancelled, "waiting",
                                      (json_int_t)st.waiting, "running",
                                      (json_int_t)st.running)))
        err = -ENOMEM;
    for (int s = 0; !err && s < COIL__JOB_NSTATES; s++)
        if (json_object_set_new(c, coil__job_state_name((coil__job_state)s),
                                json_integer((json_int_t)counts[s])))
            err = -ENOMEM;
    if (!err) err = add_state(j, COIL__JOB_RUNNING, RUNNING_MAX, running);
    if (!err) err = add_failures(j, failures);
    if (!err) err = add_state(j, -1, RECENT_MAX, recent);
    char *nodes = NULL;
    if (!err) err = coil__store_nodes(j->store, &nodes);
    if (!err && json_object_set_new(doc, "nodes", json_loads(nodes, 0, NULL))) err = -ENOMEM;
    free(nodes);
    if (!err && !(*json = json_dumps(doc, JSON_COMPACT))) err = -ENOMEM;
    json_decref(doc);
    return err;
}
