/* tests/faults/test_faults_store.c: the job store's writes under allocation
 * failure (COIL_TEST_ALLOC_FAULTS), on SQLite: open a fresh store, enqueue
 * three jobs (one with an idempotency key, enqueued twice), claim two
 * (peek, start), complete one with a result, fail the other, cancel the
 * third, read them back, close. Whatever allocation fails, the call that
 * needed it returns an error, the store closes, and nothing leaks;
 * SQLite's own allocations fail too (SQLITE_NOMEM). */
#include "faults/alloc_faults.h"
#include "jobs/store/store.h"
#include "test.h"

#include <coil/coil.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

/* Peeks one runnable job and starts it; its id into id. */
static int claim(coil__store *s, char *id) {
    coil__job *j = NULL;
    size_t n = 0;
    int err = coil__store_peek(s, NULL, 0, &j, 1, 0, &n, NULL);
    if (err) return err;
    snprintf(id, COIL__JOB_ID_SIZE, "%s", j->id);
    err = coil__store_start(s, j->id, "faults", NULL);
    coil__job_free(j);
    return err;
}

static int writes(coil__store *s) {
    const char payload[] = "{\"n\":1}";
    coil__job_spec spec = {.kind = "f.kind", .payload = payload, .payload_len = sizeof payload - 1};
    coil__enqueued e[4];
    int err = 0;
    for (int i = 0; i < 3 && !err; i++) {
        spec.idem_key = i == 0 ? "key-0" : NULL;
        err = coil__store_enqueue(s, &spec, &e[i]);
    }
    spec.idem_key = "key-0";
    if (!err) err = coil__store_enqueue(s, &spec, &e[3]);
    if (!err && !e[3].duplicate) return -EIO;
    char a[COIL__JOB_ID_SIZE], b[COIL__JOB_ID_SIZE];
    if (!err) err = claim(s, a);
    if (!err) err = claim(s, b);
    coil__job_result res = {.data = "{\"done\":true}", .len = 13,
                            .content_type = "application/json"};
    if (!err) err = coil__store_complete(s, a, &res);
    coil__job_error fail = {.message = "it broke", .exit_status = -1};
    if (!err) err = coil__store_fail(s, b, &fail, NULL);
    if (!err) err = coil__store_cancel(s, e[2].id, NULL);
    coil__job *j = NULL;
    if (!err) err = coil__store_get(s, a, &j);
    if (!err && j->state != COIL__JOB_SUCCEEDED) err = -EIO;
    coil__job_free(j);
    return err;
}

static coil_result store_main(void *arg) {
    coil__store *s = NULL;
    int err = coil__store_open(arg, NULL, &s);
    if (err) return coil_fail(err);
    err = writes(s);
    int cerr = coil__store_close(s);
    return coil_fail(err ? err : cerr);
}

static int store_scenario(void *arg) {
    char dir[] = "/tmp/coil-faults-XXXXXX";
    if (!mkdtemp(dir)) return -errno;
    (void)arg;
    coil_result r;
    int err = coil_run(store_main, dir, &r);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) return -EIO;
    return err ? err : r.err;
}

TEST(store_writes_end_cleanly_whichever_allocation_fails) {
    coil_faults_sweep("store", store_scenario, NULL);
}
