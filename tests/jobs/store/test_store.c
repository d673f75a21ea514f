/* tests/jobs/store/test_store.c: the durable job store: enqueue, claim, complete,
 * fail, cancel, progress, recovery, reads, group commit, watchers.
 * The writer is a thread, so these also run under TSan (COIL_TEST_THREADS);
 * they run on SQLite and on PostgreSQL (COIL_TEST_BOTH_STORES). */
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "jobs/store/store_fixture.h"

#include <jansson.h>

/* ------------------------------------------------------------------ basics */

static coil_result roundtrip_main(void *arg) {
    char *dir = arg;
    coil__store *s = fx_open(dir, NULL);
    const char payload[] = "{\"rows\":[1,2,3]}";
    int64_t before = coil__wall_ms();
    coil__job_spec spec = {
        .kind = "report.pdf",
        .payload = payload,
        .payload_len = sizeof payload - 1,
        .priority = 7,
        .idem_key = "order-1",
        .max_attempts = 5,
        .backoff_base_ms = 10,
        .backoff_cap_ms = 100,
        .timeout_ms = 30000,
    };
    coil__enqueued e;
    ASSERT_EQ(coil__store_enqueue(s, &spec, &e), 0);
    ASSERT(!e.duplicate);
    ASSERT_EQ(e.state, COIL__JOB_QUEUED);
    ASSERT(coil__job_id_valid(e.id));

    coil__job *j = NULL;
    ASSERT_EQ(coil__store_get(s, e.id, &j), 0);
    ASSERT_STR_EQ(j->id, e.id);
    ASSERT_STR_EQ(j->kind, "report.pdf");
    ASSERT_EQ(j->payload_len, sizeof payload - 1);
    ASSERT_STR_EQ((const char *)j->payload, payload); /* NUL-terminated */
    ASSERT_EQ(j->priority, 7);
    ASSERT_STR_EQ(j->idem_key, "order-1");
    ASSERT_EQ(j->attempts, 0);
    ASSERT_EQ(j->max_attempts, 5);
    ASSERT_EQ(j->backoff_base_ms, 10);
    ASSERT_EQ(j->backoff_cap_ms, 100);
    ASSERT_EQ(j->timeout_ms, 30000);
    ASSERT_EQ(j->state, COIL__JOB_QUEUED);
    ASSERT(!j->cancel_requested);
    ASSERT(j->lease_owner == NULL && j->result == NULL && j->result_path == NULL);
    ASSERT(j->error_msg == NULL);
    ASSERT_EQ(j->error_exit, -1);
    ASSERT_GE(j->created, before);
    ASSERT_EQ(j->run_at, j->created);
    ASSERT_EQ(j->started, 0);
    ASSERT_EQ(j->finished, 0);
    coil__job_free(j);

    /* Defaults for zero fields. */
    ASSERT_EQ(fx_enqueue(s, "demo.sleep", 0, &e), 0);
    ASSERT_EQ(coil__store_get(s, e.id, &j), 0);
    ASSERT_EQ(j->max_attempts, COIL__JOB_DEFAULT_MAX_ATTEMPTS);
    ASSERT_EQ(j->backoff_base_ms, COIL__JOB_DEFAULT_BACKOFF_BASE_MS);
    ASSERT_EQ(j->backoff_cap_ms, COIL__JOB_DEFAULT_BACKOFF_CAP_MS);
    ASSERT(j->idem_key == NULL);
    coil__job_free(j);

    /* Unknown and malformed ids are an honest -ENOENT. */
    ASSERT_EQ(coil__store_get(s, "00000000000000000000000000000000", &j), -ENOENT);
    ASSERT_EQ(coil__store_get(s, "nope", &j), -ENOENT);
    /* A bad spec writes nothing. */
    spec.kind = "bad kind";
    ASSERT_EQ(coil__store_enqueue(s, &spec, &e), -EINVAL);
    ASSERT_EQ(fx_total(s), 2);
    ASSERT_EQ(coil__store_close(s), 0);
    return coil_ok(NULL);
}

TEST(enqueue_get_roundtrip) {
    char *dir = fx_tmpdir();
    RUN_MAIN(roundtrip_main, dir);
    fx_rmtree(dir);
}

static coil_result reopen_main(void *arg) {
    char *dir = arg;
    coil__store *s = fx_open(dir, NULL);
    coil__enqueued e[10];
    for (int i = 0; i < 10; i++) ASSERT_EQ(fx_enqueue(s, "demo.cpu", i, &e[i]), 0);
    ASSERT_EQ(coil__store_close(s), 0);

    s = fx_open(dir, NULL);
    ASSERT_EQ(fx_total(s), 10);
    for (int i = 0; i < 10; i++) {
        coil__job *j;
        ASSERT_EQ(coil__store_get(s, e[i].id, &j), 0);
        ASSERT_EQ(j->priority, i);
        coil__job_free(j);
    }
    ASSERT_EQ(coil__store_close(s), 0);
    return coil_ok(NULL);
}

TEST(enqueue_durable_across_reopen) {
    char *dir = fx_tmpdir();
    RUN_MAIN(reopen_main, dir);
    if (fx_pg()) {
        fx_rmtree(dir);
        return;
    }
    /* The files the SQLite store documents. */
    char path[600];
    struct stat st;
    snprintf(path, sizeof path, "%s/jobs.db", dir);
    ASSERT_EQ(stat(path, &st), 0);
    snprintf(path, sizeof path, "%s/results", dir);
    ASSERT_EQ(stat(path, &st), 0);
    ASSERT(S_ISDIR(st.st_mode));
    fx_rmtree(dir);
}

/* ------------------------------------------------------------------ kill -9 */

typedef struct killed_ctx {
    const char *dir;
    int fd; /* acknowledged ids go here, one 33-byte record each */
} killed_ctx;

static coil__store *killed_store;

/* Enqueues from 16 tasks, each acknowledged id written to the pipe only
 * after enqueue returned. */
static coil_result killed_enqueuer_task(void *arg) {
    killed_ctx *k = arg;
    for (;;) {
        coil__enqueued e;
        if (fx_enqueue(killed_store, "demo.sleep", 0, &e)) return coil_ok(NULL);
        if (write(k->fd, e.id, COIL__JOB_ID_SIZE) != COIL__JOB_ID_SIZE) return coil_ok(NULL);
    }
}

static coil_result killed_child_main(void *arg) {
    killed_ctx *k = arg;
    killed_store = fx_open(k->dir, NULL);
    coil_group g;
    coil_group_init(&g);
    for (int i = 0; i < 16; i++) coil_group_spawn(&g, killed_enqueuer_task, k);
    coil_group_wait(&g);
    coil_group_destroy(&g);
    return coil_ok(NULL);
}

typedef struct acked {
    char (*ids)[COIL__JOB_ID_SIZE];
    size_t n;
    const char *dir;
} acked;

static coil_result killed_check_main(void *arg) {
    acked *a = arg;
    coil__store *s = fx_open(a->dir, NULL);
    for (size_t i = 0; i < a->n; i++) {
        coil__job *j = NULL;
        int err = coil__store_get(s, a->ids[i], &j);
        if (err) coil_test_fail(__FILE__, __LINE__, "acknowledged job %s lost: %d", a->ids[i], err);
        ASSERT_EQ(j->state, COIL__JOB_QUEUED);
        coil__job_free(j);
    }
    /* Possibly a few more: committed, killed before the acknowledgement. */
    ASSERT_GE(fx_total(s), a->n);
    ASSERT_EQ(coil__store_close(s), 0);
    return coil_ok(NULL);
}

TEST(acknowledged_enqueues_survive_kill9) {
    char *dir = fx_tmpdir();
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        killed_ctx k = {dir, p[1]};
        coil_run(killed_child_main, &k, NULL);
        _exit(0);
    }
    close(p[1]);
    size_t cap = 1 << 16;
    acked a = {malloc(cap * COIL__JOB_ID_SIZE), 0, dir};
    ASSERT(a.ids != NULL);
    bool killed = false;
    for (;;) {
        ssize_t n = read(p[0], a.ids[a.n], COIL__JOB_ID_SIZE);
        if (n == 0) break;
        ASSERT_EQ(n, COIL__JOB_ID_SIZE); /* records are written whole (< PIPE_BUF) */
        if (++a.n == cap) break;
        if (!killed && a.n >= 300) {
            kill(pid, SIGKILL); /* in the middle of commits */
            killed = true;
        }
    }
    int status;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    close(p[0]);
    RUN_MAIN(killed_check_main, &a);
    free(a.ids);
    fx_rmtree(dir);
}

/* ------------------------------------------------------------------ group commit */

typedef struct many {
    coil__store *s;
    int failures;
    coil__enqueued out[100];
    int next;
} many;

static coil_result one_enqueue(void *arg) {
    many *m = arg;
    int i = m->next++;
    if (fx_enqueue(m->s, "demo.cpu", 0, &m->out[i])) m->failures++;
    return coil_ok(NULL);
}

static coil_result group_commit_main(void *arg) {
    char *dir = arg;
    many m = {.s = fx_open(dir, NULL)};
    coil__store_stats before, after;
    coil__store_get_stats(m.s, &before);
    coil_group g;
    coil_group_init(&g);
    for (int i = 0; i < 100; i++) coil_group_spawn(&g, one_enqueue, &m);
    ASSERT_EQ(coil_group_wait(&g), 0);
    coil_group_destroy(&g);
    ASSERT_EQ(m.failures, 0);
    coil__store_get_stats(m.s, &after);
    uint64_t commits = after.commits - before.commits;
    ASSERT_EQ(after.writes - before.writes, 100);
    /* One fsync for many enqueues: far fewer commits than enqueues. */
    ASSERT_GE(commits, 1);
    ASSERT_LE(commits, 20);
    ASSERT_GE(after.largest_batch, 10);
    ASSERT_EQ(after.failed_commits, 0);
    ASSERT_EQ(after.queued, 0);
    /* Every enqueue got its own job. */
    ASSERT_EQ(fx_total(m.s), 100);
    for (int i = 0; i < 100; i++)
        for (int k = 0; k < i; k++) ASSERT(strcmp(m.out[i].id, m.out[k].id) != 0);
    ASSERT_EQ(coil__store_close(m.s), 0);
    return coil_ok(NULL);
}

TEST(group_commit_shares_fsyncs) {
    char *dir = fx_tmpdir();
    RUN_MAIN(group_commit_main, dir);
    fx_rmtree(dir);
}

/* ------------------------------------------------------------------ every byte, batched */

enum { BYTES_JOBS = 40 };

typedef struct byte_jobs {
    coil__store *s;
    char keys[BYTES_JOBS][32];
    unsigned char payloads[BYTES_JOBS][300];
    coil__enqueued out[BYTES_JOBS];
    char ids[BYTES_JOBS][COIL__JOB_ID_SIZE];
    int next;
} byte_jobs;

/* Job i: a payload of every byte value, then i; a key with the characters
 * an array literal or an SQL string must escape, shared by jobs i and
 * i + 1 for even i. */
static coil_result bytes_enqueue(void *arg) {
    byte_jobs *b = arg;
    int i = b->next++;
    for (int c = 0; c < 256; c++) b->payloads[i][c] = (unsigned char)c;
    b->payloads[i][256] = (unsigned char)i;
    snprintf(b->keys[i], sizeof b->keys[i], "k\"\\{,}'NULL'%d", i / 2);
    coil__job_spec spec = {.kind = "demo.noop", .payload = b->payloads[i], .payload_len = 257,
                           .idem_key = b->keys[i]};
    ASSERT_EQ(coil__store_enqueue(b->s, &spec, &b->out[i]), 0);
    return coil_ok(NULL);
}

static coil_result bytes_complete(void *arg) {
    byte_jobs *b = arg;
    int i = b->next++;
    char type[64];
    snprintf(type, sizeof type, "text/x-\"%d\\", i);
    coil__job_result res = {.data = b->payloads[i], .len = 257, .content_type = type};
    ASSERT_EQ(coil__store_complete(b->s, b->ids[i], &res), 0);
    return coil_ok(NULL);
}

/* Enqueues and completes that share a group (and on PostgreSQL one
 * statement each) keep every byte of payloads, keys, results and types. */
static coil_result bytes_main(void *arg) {
    static byte_jobs b;
    memset(&b, 0, sizeof b);
    b.s = fx_open(arg, NULL);
    coil_group g;
    coil_group_init(&g);
    for (int i = 0; i < BYTES_JOBS; i++) coil_group_spawn(&g, bytes_enqueue, &b);
    ASSERT_EQ(coil_group_wait(&g), 0);
    coil_group_destroy(&g);
    ASSERT_EQ(fx_total(b.s), BYTES_JOBS / 2);
    coil__store_stats st;
    coil__store_get_stats(b.s, &st);
    ASSERT_GE(st.largest_batch, 10); /* they did share transactions */
    for (int i = 0; i < BYTES_JOBS; i += 2) {
        ASSERT_STR_EQ(b.out[i].id, b.out[i + 1].id); /* one job a key */
        ASSERT_EQ(b.out[i].duplicate + b.out[i + 1].duplicate, 1);
        int first = b.out[i].duplicate ? i + 1 : i;
        coil__job *j;
        ASSERT_EQ(coil__store_get(b.s, b.out[i].id, &j), 0);
        ASSERT_EQ(j->payload_len, 257);
        ASSERT_EQ(memcmp(j->payload, b.payloads[first], 257), 0);
        ASSERT_STR_EQ(j->idem_key, b.keys[i]);
        coil__job_free(j);
    }
    /* Claim them all, then complete them all at once. */
    for (int n = 0; n < BYTES_JOBS / 2; n++) {
        coil__job *j;
        ASSERT_EQ(fx_claim(b.s, "pid:1", &j, NULL), 0);
        snprintf(b.ids[n], sizeof b.ids[n], "%s", j->id);
        coil__job_free(j);
    }
    b.next = 0;
    coil_group_init(&g);
    for (int i = 0; i < BYTES_JOBS / 2; i++) coil_group_spawn(&g, bytes_complete, &b);
    ASSERT_EQ(coil_group_wait(&g), 0);
    coil_group_destroy(&g);
    for (int i = 0; i < BYTES_JOBS / 2; i++) {
        coil__job *j;
        ASSERT_EQ(coil__store_get(b.s, b.ids[i], &j), 0);
        ASSERT_EQ(j->state, COIL__JOB_SUCCEEDED);
        ASSERT_EQ(j->result_len, 257);
        ASSERT_EQ(memcmp(j->result, b.payloads[i], 257), 0);
        char type[64];
        snprintf(type, sizeof type, "text/x-\"%d\\", i);
        ASSERT_STR_EQ(j->result_type, type);
        coil__job_free(j);
    }
    ASSERT_EQ(coil__store_close(b.s), 0);
    return coil_ok(NULL);
}

TEST(writes_in_one_group_keep_every_byte) {
    char *dir = fx_tmpdir();
    RUN_MAIN(bytes_main, dir);
    fx_rmtree(dir);
}

/* ------------------------------------------------------------------ idempotency */

typedef struct keyed {
    coil__store *s;
    coil__enqueued out[20];
    int next;
} keyed;

static coil_result keyed_enqueue(void *arg) {
    keyed *k = arg;
    int i = k->next++;
    coil__job_spec spec = {.kind = "demo.cpu", .idem_key = "same-key"};
    ASSERT_EQ(coil__store_enqueue(k->s, &spec, &k->out[i]), 0);
    return coil_ok(NULL);
}

static coil_result idempotency_main(void *arg) {
    char *dir = arg;
    coil__store *s = fx_open(dir, NULL);
    coil__job_spec spec = {.kind = "report.pdf", .payload = "{\"a\":1}", .payload_len = 7,
                           .idem_key = "order-9"};
    coil__enqueued first, again;
    ASSERT_EQ(coil__store_enqueue(s, &spec, &first), 0);
    ASSERT(!first.duplicate);
    /* Same key, other payload: the first job, and nothing new. */
    spec.payload = "{\"a\":2}";
    ASSERT_EQ(coil__store_enqueue(s, &spec, &again), 0);
    ASSERT(again.duplicate);
    ASSERT_STR_EQ(again.id, first.id);
    ASSERT_EQ(again.state, COIL__JOB_QUEUED);
    ASSERT_EQ(fx_total(s), 1);
    coil__job *j;
    ASSERT_EQ(coil__store_get(s, first.id, &j), 0);
    ASSERT_STR_EQ((const char *)j->payload, "{\"a\":1}");
    coil__job_free(j);

    /* The duplicate reports the job's current state. */
    ASSERT_EQ(fx_claim(s, "pid:1", &j, NULL), 0);
    coil__job_free(j);
    ASSERT_EQ(coil__store_enqueue(s, &spec, &again), 0);
    ASSERT(again.duplicate);
    ASSERT_EQ(again.state, COIL__JOB_RUNNING);

    /* Concurrent enqueues with one key, likely in one transaction: one job. */
    keyed k = {.s = s};
    coil_group g;
    coil_group_init(&g);
    for (int i = 0; i < 20; i++) coil_group_spawn(&g, keyed_enqueue, &k);
    ASSERT_EQ(coil_group_wait(&g), 0);
    coil_group_destroy(&g);
    int originals = 0;
    for (int i = 0; i < 20; i++) {
        originals += !k.out[i].duplicate;
        ASSERT_STR_EQ(k.out[i].id, k.out[0].id);
    }
    ASSERT_EQ(originals, 1);
    ASSERT_EQ(fx_total(s), 2);
    ASSERT_EQ(coil__store_close(s), 0);

    /* Keys are durable too. */
    s = fx_open(dir, NULL);
    ASSERT_EQ(coil__store_enqueue(s, &spec, &again), 0);
    ASSERT(again.duplicate);
    ASSERT_STR_EQ(again.id, first.id);
    ASSERT_EQ(coil__store_close(s), 0);
    return coil_ok(NULL);
}

TEST(idempotency_key_returns_first_job) {
    char *dir = fx_tmpdir();
    RUN_MAIN(idempotency_main, dir);
    fx_rmtree(dir);
}

/* ------------------------------------------------------------------ claiming */

static coil_result delayed_main(void *arg) {
    char *dir = arg;
    coil__store *s = fx_open(dir, NULL);
    int64_t now = coil__wall_ms();
    coil__job_spec later = {.kind = "demo.sleep", .run_at = now + 3600 * 1000, .priority = 100};
    coil__job_spec soon = {.kind = "demo.sleep", .run_at = now + 1000, .priority = 50};
    coil__enqueued e_later, e_soon;
    ASSERT_EQ(coil__store_enqueue(s, &later, &e_later), 0);
    ASSERT_EQ(coil__store_enqueue(s, &soon, &e_soon), 0);

    coil__job *j = NULL;
    int64_t next = -1;
    ASSERT_EQ(fx_claim(s, "pid:1", &j, &next), -EAGAIN);
    ASSERT_EQ(next, soon.run_at); /* the earliest waiting job */
    ASSERT_EQ(fx_state(s, e_soon.id), COIL__JOB_QUEUED);

    /* Once its time has come it is claimable; the other one still not. */
    while (coil__wall_ms() <= soon.run_at) coil_sleep(COIL_MSEC(50));
    ASSERT_EQ(fx_claim(s, "pid:1", &j, &next), 0);
    ASSERT_STR_EQ(j->id, e_soon.id);
    coil__job_free(j);
    ASSERT_EQ(fx_claim(s, "pid:1", &j, &next), -EAGAIN);
    ASSERT_EQ(next, later.run_at);

    /* Empty queue: next is 0. */
    ASSERT_EQ(coil__store_cancel(s, e_later.id, NULL), 0);
    ASSERT_EQ(fx_claim(s, "pid:1", &j, &next), -EAGAIN);
    ASSERT_EQ(next, 0);
    ASSERT_EQ(coil__store_close(s), 0);
    return coil_ok(NULL);
}

TEST(delayed_jobs_wait_for_run_at) {
    char *dir = fx_tmpdir();
    RUN_MAIN(delayed_main, dir);
    fx_rmtree(dir);
}

static coil_result priority_main(void *arg) {
    char *dir = arg;
    coil__store *s = fx_open(dir, NULL);
    int prios[] = {0, 5, 1, 5, -3, 9};
    coil__enqueued e[6];
    for (int i = 0; i < 6; i++) ASSERT_EQ(fx_enqueue(s, "demo.cpu", prios[i], &e[i]), 0);
    /* Highest priority first; equal priorities in enqueue order. */
    int want[] = {5, 1, 3, 2, 0, 4};
    for (int i = 0; i < 6; i++) {
        coil__job *j = NULL;
        ASSERT_EQ(fx_claim(s, "pid:42", &j, NULL), 0);
        ASSERT_STR_EQ(j->id, e[want[i]].id);
        ASSERT_EQ(j->state, COIL__JOB_RUNNING);
        ASSERT_EQ(j->attempts, 1);
        /* On PostgreSQL the lease is the node's (host:pid), whoever starts it. */
        if (fx_pg()) ASSERT(j->lease_owner && strchr(j->lease_owner, ':'));
        else ASSERT_STR_EQ(j->lease_owner, "pid:42");
        ASSERT_GE(j->started, j->created);
        ASSERT_STR_EQ((const char *)j->payload, "{\"n\":1}");
        coil__job_free(j);
    }
    coil__job *j = NULL;
    ASSERT_EQ(fx_claim(s, "pid:42", &j, NULL), -EAGAIN);
    ASSERT(j == NULL);
    ASSERT_EQ(coil__store_close(s), 0);
    return coil_ok(NULL);
}

TEST(claim_by_priority_then_age) {
    char *dir = fx_tmpdir();
    RUN_MAIN(priority_main, dir);
    fx_rmtree(dir);
}

/* ------------------------------------------------------------------ outcomes */

static coil_result retry_main(void *arg) {
    char *dir = arg;
    coil__store *s = fx_open(dir, NULL);
    coil__job_spec spec = {.kind = "demo.crash", .max_attempts = 3, .backoff_base_ms = 20,
                           .backoff_cap_ms = 50};
    coil__enqueued e;
    ASSERT_EQ(coil__store_enqueue(s, &spec, &e), 0);
    coil__job_error crash = {.message = "worker killed by SIGSEGV", .signal = SIGSEGV,
                             .exit_status = -1};
    for (int attempt = 1; attempt <= 3; attempt++) {
        coil__job *j = NULL;
        while (fx_claim(s, "pid:7", &j, NULL) == -EAGAIN) coil_sleep(COIL_MSEC(5));
        ASSERT_STR_EQ(j->id, e.id);
        ASSERT_EQ(j->attempts, attempt);
        coil__job_free(j);
        coil__job_state st;
        ASSERT_EQ(coil__store_fail(s, e.id, &crash, &st), 0);
        ASSERT_EQ(st, attempt < 3 ? COIL__JOB_FAILED : COIL__JOB_DEAD);
        ASSERT_EQ(coil__store_get(s, e.id, &j), 0);
        ASSERT_EQ(j->state, st);
        ASSERT_STR_EQ(j->error_msg, "worker killed by SIGSEGV");
        ASSERT_EQ(j->error_signal, SIGSEGV);
        ASSERT_EQ(j->error_exit, -1);
        ASSERT(!j->error_oom);
        ASSERT(j->lease_owner == NULL);
        if (st == COIL__JOB_FAILED) {
            /* Retry at a backoff: within [0, min(cap, base * 2^(attempt-1))]. */
            int64_t bound = attempt == 1 ? 20 : 40;
            ASSERT_GE(j->run_at - j->updated, 0);
            ASSERT_LE(j->run_at - j->updated, bound);
            ASSERT_EQ(j->finished, 0);
        } else {
            ASSERT_GE(j->finished, j->started);
        }
        coil__job_free(j);
    }
    /* Dead: never claimed again, and fail/complete are refused. */
    coil__job *j = NULL;
    coil_sleep(COIL_MSEC(60));
    ASSERT_EQ(fx_claim(s, "pid:7", &j, NULL), -EAGAIN);
    ASSERT_EQ(coil__store_fail(s, e.id, &crash, NULL), -EINVAL);
    ASSERT_EQ(coil__store_complete(s, e.id, NULL), -EINVAL);

    /* An OOM kill with an exit status is recorded as such. */
    spec.max_attempts = 1;
    ASSERT_EQ(coil__store_enqueue(s, &spec, &e), 0);
    ASSERT_EQ(fx_claim(s, "pid:7", &j, NULL), 0);
    coil__job_free(j);
    coil__job_error oom = {.message = "out of memory", .signal = SIGKILL, .exit_status = -1,
                           .oom = true};
    coil__job_state st;
    ASSERT_EQ(coil__store_fail(s, e.id, &oom, &st), 0);
    ASSERT_EQ(st, COIL__JOB_DEAD);
    ASSERT_EQ(coil__store_get(s, e.id, &j), 0);
    ASSERT(j->error_oom);
    ASSERT_EQ(j->error_signal, SIGKILL);
    coil__job_free(j);
    ASSERT_EQ(coil__store_close(s), 0);
    return coil_ok(NULL);
}

TEST(retry_with_backoff_then_dead) {
    char *dir = fx_tmpdir();
    RUN_MAIN(retry_main, dir);
    fx_rmtree(dir);
}

static coil_result complete_main(void *arg) {
    char *dir = arg;
    coil__store_opts opts = {.inline_result_max = 64};
    coil__store *s = fx_open(dir, &opts);
    coil__enqueued small, big, unclaimed;
    ASSERT_EQ(fx_enqueue(s, "demo.cpu", 1, &small), 0);
    ASSERT_EQ(fx_enqueue(s, "report.pdf", 1, &big), 0);
    ASSERT_EQ(fx_enqueue(s, "demo.cpu", 0, &unclaimed), 0);
    coil__job *j;
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(fx_claim(s, "pid:1", &j, NULL), 0);
        coil__job_free(j);
    }
    /* Completing a job that is not running is an illegal transition. */
    ASSERT_EQ(coil__store_complete(s, unclaimed.id, NULL), -EINVAL);
    ASSERT_EQ(coil__store_complete(s, "00000000000000000000000000000000", NULL), -ENOENT);

    coil__job_result inl = {.data = "{\"ok\":true}", .len = 11, .content_type = "application/json"};
    ASSERT_EQ(coil__store_complete(s, small.id, &inl), 0);
    ASSERT_EQ(coil__store_get(s, small.id, &j), 0);
    ASSERT_EQ(j->state, COIL__JOB_SUCCEEDED);
    ASSERT_EQ(j->progress, 100);
    ASSERT_EQ(j->result_len, 11);
    ASSERT(memcmp(j->result, "{\"ok\":true}", 11) == 0);
    ASSERT_STR_EQ(j->result_type, "application/json");
    ASSERT(j->result_path == NULL);
    ASSERT_GE(j->finished, j->started);
    coil__job_free(j);
    ASSERT_EQ(coil__store_complete(s, small.id, &inl), -EINVAL); /* only once */

    /* Above the inline limit: a file in DIR/results, written durably. */
    char pdf[4096];
    for (size_t i = 0; i < sizeof pdf; i++) pdf[i] = (char)(i * 7);
    coil__job_result large = {.data = pdf, .len = sizeof pdf, .content_type = "application/pdf"};
    ASSERT_EQ(coil__store_complete(s, big.id, &large), 0);
    ASSERT_EQ(coil__store_get(s, big.id, &j), 0);
    ASSERT_EQ(j->state, COIL__JOB_SUCCEEDED);
    ASSERT(j->result == NULL);
    ASSERT_STR_EQ(j->result_type, "application/pdf");
    ASSERT(j->result_path != NULL);
    ASSERT(strncmp(j->result_path, coil__store_results_dir(s), strlen(coil__store_results_dir(s))) == 0);
    FILE *f = fopen(j->result_path, "rb");
    ASSERT(f != NULL);
    char back[sizeof pdf + 1];
    ASSERT_EQ(fread(back, 1, sizeof back, f), sizeof pdf);
    fclose(f);
    ASSERT(memcmp(back, pdf, sizeof pdf) == 0);
    coil__job_free(j);

    /* A result file the worker wrote itself. */
    ASSERT_EQ(fx_enqueue(s, "report.pdf", 5, &big), 0);
    ASSERT_EQ(fx_claim(s, "pid:1", &j, NULL), 0);
    coil__job_free(j);
    coil__job_result bad = {.file = "../escape.pdf"};
    ASSERT_EQ(coil__store_complete(s, big.id, &bad), -EINVAL);
    coil__job_result own = {.file = "mine.pdf", .content_type = "application/pdf"};
    ASSERT_EQ(coil__store_complete(s, big.id, &own), 0);
    ASSERT_EQ(coil__store_get(s, big.id, &j), 0);
    char want[600];
    snprintf(want, sizeof want, "%s/mine.pdf", coil__store_results_dir(s));
    ASSERT_STR_EQ(j->result_path, want);
    coil__job_free(j);
    ASSERT_EQ(coil__store_close(s), 0);
    return coil_ok(NULL);
}

TEST(complete_inline_and_file_results) { /* SQLite only: result files */
    char *dir = fx_tmpdir();
    RUN_MAIN(complete_main, dir);
    fx_rmtree(dir);
}

/* ------------------------------------------------------------------ cancel */

typedef struct seen {
    coil__job_event ev[64];
    int n;
} seen;

static void record_events(const coil__job_event *events, size_t n, void *arg) {
    seen *w = arg;
    for (size_t i = 0; i < n && w->n < 64; i++) w->ev[w->n++] = events[i];
}

static coil_result cancel_main(void *arg) {
    char *dir = arg;
    coil__store *s = fx_open(dir, NULL);
    coil__enqueued q, r;
    ASSERT_EQ(fx_enqueue(s, "demo.sleep", 0, &r), 0);
    ASSERT_EQ(fx_enqueue(s, "demo.sleep", 0, &q), 0);
    coil__job *j;
    ASSERT_EQ(fx_claim(s, "pid:3", &j, NULL), 0);
    ASSERT_STR_EQ(j->id, r.id);
    coil__job_free(j);

    seen w = {0};
    coil__store_watcher *watch;
    ASSERT_EQ(coil__store_watch(s, record_events, &w, &watch), 0);

    /* Queued: cancelled at once, never claimed. */
    coil__job_state st;
    ASSERT_EQ(coil__store_cancel(s, q.id, &st), 0);
    ASSERT_EQ(st, COIL__JOB_CANCELLED);
    ASSERT_EQ(coil__store_get(s, q.id, &j), 0);
    ASSERT_EQ(j->state, COIL__JOB_CANCELLED);
    ASSERT_GE(j->finished, j->created);
    coil__job_free(j);
    ASSERT_EQ(fx_claim(s, "pid:3", &j, NULL), -EAGAIN);
    ASSERT_EQ(coil__store_cancel(s, q.id, &st), -EALREADY);
    ASSERT_EQ(st, COIL__JOB_CANCELLED);

    /* Running: flagged for the pool, still running. */
    ASSERT_EQ(coil__store_cancel(s, r.id, &st), 0);
    ASSERT_EQ(st, COIL__JOB_RUNNING);
    ASSERT_EQ(coil__store_get(s, r.id, &j), 0);
    ASSERT_EQ(j->state, COIL__JOB_RUNNING);
    ASSERT(j->cancel_requested);
    coil__job_free(j);
    ASSERT_EQ(coil__store_cancel(s, r.id, &st), 0); /* asking twice is fine */
    /* The pool stops the worker and reports it: cancelled, not retried. */
    coil__job_error killed = {.message = "cancelled", .signal = SIGTERM, .exit_status = -1};
    ASSERT_EQ(coil__store_fail(s, r.id, &killed, &st), 0);
    ASSERT_EQ(st, COIL__JOB_CANCELLED);
    ASSERT_EQ(coil__store_get(s, r.id, &j), 0);
    ASSERT_EQ(j->state, COIL__JOB_CANCELLED);
    ASSERT_EQ(j->attempts, 1);
    coil__job_free(j);
    ASSERT_EQ(coil__store_cancel(s, "ffffffffffffffffffffffffffffffff", &st), -ENOENT);

    /* Watchers saw each change, in order, before the calls returned. */
    ASSERT_EQ(w.n, 3);
    ASSERT_STR_EQ(w.ev[0].id, q.id);
    ASSERT_EQ(w.ev[0].state, COIL__JOB_CANCELLED);
    ASSERT_STR_EQ(w.ev[1].id, r.id);
    ASSERT_EQ(w.ev[1].state, COIL__JOB_RUNNING);
    ASSERT(w.ev[1].cancel_requested);
    ASSERT_STR_EQ(w.ev[1].kind, "demo.sleep");
    ASSERT_EQ(w.ev[2].state, COIL__JOB_CANCELLED);
    coil__store_unwatch(watch);
    ASSERT_EQ(fx_enqueue(s, "demo.sleep", 0, &q), 0);
    coil_sleep(COIL_MSEC(10));
    ASSERT_EQ(w.n, 3);
    ASSERT_EQ(coil__store_close(s), 0);
    return coil_ok(NULL);
}

TEST(cancel_queued_and_running) {
    char *dir = fx_tmpdir();
    RUN_MAIN(cancel_main, dir);
    fx_rmtree(dir);
}

/* ------------------------------------------------------------------ recovery */

static coil_result requeue_main(void *arg) {
    char *dir = arg;
    coil__store *s = fx_open(dir, NULL);
    coil__enqueued a, b, c, d;
    ASSERT_EQ(fx_enqueue(s, "demo.cpu", 3, &a), 0);
    ASSERT_EQ(fx_enqueue(s, "demo.cpu", 2, &b), 0);
    ASSERT_EQ(fx_enqueue(s, "demo.cpu", 1, &c), 0);
    ASSERT_EQ(fx_enqueue(s, "demo.cpu", 0, &d), 0);
    coil__job *j;
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(fx_claim(s, "pid:99", &j, NULL), 0);
        coil__job_free(j);
    }
    ASSERT_EQ(coil__store_complete(s, c.id, NULL), 0);
    ASSERT_EQ(coil__store_cancel(s, b.id, NULL), 0); /* cancel requested */
    /* The process "dies" here: a and b stay running in the database. */
    ASSERT_EQ(coil__store_close(s), 0);

    s = fx_open(dir, NULL);
    size_t n = 0;
    ASSERT_EQ(coil__store_requeue_running(s, &n), 0);
    ASSERT_EQ(n, 2);
    ASSERT_EQ(coil__store_get(s, a.id, &j), 0);
    ASSERT_EQ(j->state, COIL__JOB_QUEUED);
    ASSERT_EQ(j->attempts, 1); /* the interrupted attempt counts */
    ASSERT(j->lease_owner == NULL);
    coil__job_free(j);
    ASSERT_EQ(fx_state(s, b.id), COIL__JOB_CANCELLED); /* it was being cancelled */
    ASSERT_EQ(fx_state(s, c.id), COIL__JOB_SUCCEEDED);
    ASSERT_EQ(fx_state(s, d.id), COIL__JOB_QUEUED);
    /* It runs again, first by its priority. */
    ASSERT_EQ(fx_claim(s, "pid:100", &j, NULL), 0);
    ASSERT_STR_EQ(j->id, a.id);
    ASSERT_EQ(j->attempts, 2);
    coil__job_free(j);
    ASSERT_EQ(coil__store_requeue_running(s, &n), 0); /* idempotent */
    ASSERT_EQ(n, 1);
    ASSERT_EQ(coil__store_close(s), 0);
    return coil_ok(NULL);
}

TEST(requeue_running_on_startup) { /* SQLite only: one process owns it; PostgreSQL rescues by lease */
    char *dir = fx_tmpdir();
    RUN_MAIN(requeue_main, dir);
    fx_rmtree(dir);
}

/* ------------------------------------------------------------------ progress */

static coil_result progress_main(void *arg) {
    char *dir = arg;
    coil__store *s = fx_open(dir, NULL);
    coil__enqueued e, idle;
    ASSERT_EQ(fx_enqueue(s, "report.pdf", 1, &e), 0);
    ASSERT_EQ(fx_enqueue(s, "report.pdf", 0, &idle), 0);
    coil__job *j;
    ASSERT_EQ(fx_claim(s, "pid:5", &j, NULL), 0);
    coil__job_free(j);
    seen w = {0};
    coil__store_watcher *watch;
    ASSERT_EQ(coil__store_watch(s, record_events, &w, &watch), 0);

    coil__store_stats before;
    coil__store_get_stats(s, &before);
    /* Several updates without yielding: at most the last few are written. */
    for (int p = 0; p <= 40; p += 10) ASSERT_EQ(coil__store_progress(s, e.id, p, "drawing"), 0);
    ASSERT_EQ(coil__store_progress(s, e.id, 150, "almost"), 0); /* clamped */
    ASSERT_EQ(coil__store_progress(s, idle.id, 50, "ignored"), 0); /* not running */
    ASSERT_EQ(coil__store_progress(s, "bad", 50, NULL), -EINVAL);
    ASSERT_EQ(coil__store_flush(s), 0);
    ASSERT_EQ(coil__store_get(s, e.id, &j), 0);
    ASSERT_EQ(j->progress, 100);
    ASSERT_STR_EQ(j->progress_msg, "almost");
    coil__job_free(j);
    ASSERT_EQ(coil__store_get(s, idle.id, &j), 0);
    ASSERT_EQ(j->progress, 0);
    ASSERT(j->progress_msg == NULL);
    coil__job_free(j);

    coil__store_stats after;
    coil__store_get_stats(s, &after);
    uint64_t written = after.progress_written - before.progress_written;
    uint64_t dropped = after.progress_superseded - before.progress_superseded;
    ASSERT_GE(written, 1);
    ASSERT_EQ(written + dropped, 6); /* each update written or superseded */
    ASSERT_EQ(after.commits, before.commits); /* progress costs no fsync'd commit */
    /* The watcher saw the updates that were written, the last one last. */
    ASSERT_EQ(w.n, (int)written);
    ASSERT_EQ(w.ev[w.n - 1].progress, 100);
    ASSERT_STR_EQ(w.ev[w.n - 1].message, "almost");
    ASSERT_EQ(w.ev[w.n - 1].state, COIL__JOB_RUNNING);
    coil__store_unwatch(watch);

    /* Progress left pending at close is written before the store closes. */
    ASSERT_EQ(coil__store_progress(s, e.id, 77, "late"), 0);
    ASSERT_EQ(coil__store_close(s), 0);
    s = fx_open(dir, NULL);
    ASSERT_EQ(coil__store_get(s, e.id, &j), 0);
    ASSERT_EQ(j->progress, 77);
    ASSERT_STR_EQ(j->progress_msg, "late");
    coil__job_free(j);
    ASSERT_EQ(coil__store_close(s), 0);
    return coil_ok(NULL);
}

TEST(progress_coalesced) {
    char *dir = fx_tmpdir();
    RUN_MAIN(progress_main, dir);
    fx_rmtree(dir);
}

/* ------------------------------------------------------------------ reads */

static coil_result list_main(void *arg) {
    char *dir = arg;
    coil__store *s = fx_open(dir, NULL);
    enum { N = 25 };
    coil__enqueued e[N];
    for (int i = 0; i < N; i++)
        ASSERT_EQ(fx_enqueue(s, i % 2 ? "kind.b" : "kind.a", 0, &e[i]), 0);
    /* Pages of 10, newest first, each job exactly once. */
    coil__job_filter f = {.state = -1, .limit = 10};
    int seen_n = 0, pages = 0;
    for (;;) {
        coil__job_list l;
        ASSERT_EQ(coil__store_list(s, &f, &l), 0);
        pages++;
        for (size_t i = 0; i < l.n; i++) {
            ASSERT_STR_EQ(l.jobs[i]->id, e[N - 1 - seen_n].id);
            ASSERT(l.jobs[i]->payload == NULL); /* summaries */
            ASSERT_EQ(l.jobs[i]->payload_len, 7);
            seen_n++;
        }
        uint64_t next = l.next_cursor;
        ASSERT_EQ(l.n, pages < 3 ? 10 : 5);
        coil__job_list_free(&l);
        if (!next) break;
        f.cursor = next;
    }
    ASSERT_EQ(seen_n, N);
    ASSERT_EQ(pages, 3);

    /* Filters. */
    coil__job_list l;
    coil__job_filter byk = {.state = -1, .kind = "kind.a", .limit = 100};
    ASSERT_EQ(coil__store_list(s, &byk, &l), 0);
    ASSERT_EQ(l.n, 13);
    ASSERT_EQ(l.next_cursor, 0);
    for (size_t i = 0; i < l.n; i++) ASSERT_STR_EQ(l.jobs[i]->kind, "kind.a");
    coil__job_list_free(&l);
    coil__job *j;
    for (int i = 0; i < 4; i++) {
        ASSERT_EQ(fx_claim(s, "pid:1", &j, NULL), 0);
        coil__job_free(j);
    }
    coil__job_filter running = {.state = COIL__JOB_RUNNING};
    ASSERT_EQ(coil__store_list(s, &running, &l), 0);
    ASSERT_EQ(l.n, 4);
    for (size_t i = 0; i < l.n; i++) ASSERT_EQ(l.jobs[i]->state, COIL__JOB_RUNNING);
    coil__job_list_free(&l);
    coil__job_filter both = {.state = COIL__JOB_QUEUED, .kind = "kind.b"};
    ASSERT_EQ(coil__store_list(s, &both, &l), 0);
    for (size_t i = 0; i < l.n; i++) {
        ASSERT_EQ(l.jobs[i]->state, COIL__JOB_QUEUED);
        ASSERT_STR_EQ(l.jobs[i]->kind, "kind.b");
    }
    size_t queued_b = l.n;
    coil__job_list_free(&l);
    ASSERT_EQ(queued_b, 12 - 2); /* the four claimed were a, b, a, b */
    coil__job_filter bad = {.state = 17};
    ASSERT_EQ(coil__store_list(s, &bad, &l), -EINVAL);

    uint64_t counts[COIL__JOB_NSTATES];
    ASSERT_EQ(coil__store_counts(s, counts), 0);
    ASSERT_EQ(counts[COIL__JOB_QUEUED], N - 4);
    ASSERT_EQ(counts[COIL__JOB_RUNNING], 4);
    ASSERT_EQ(counts[COIL__JOB_SUCCEEDED], 0);
    ASSERT_EQ(coil__store_close(s), 0);
    return coil_ok(NULL);
}

TEST(list_newest_first_paginated) {
    char *dir = fx_tmpdir();
    RUN_MAIN(list_main, dir);
    fx_rmtree(dir);
}

/* ------------------------------------------------------------------ interruption */

typedef struct interrupted {
    coil__store *s;
    coil__enqueued out[50];
    int err[50];
    int next;
} interrupted;

static coil_result interruptible_enqueue(void *arg) {
    interrupted *x = arg;
    int i = x->next++;
    x->err[i] = fx_enqueue(x->s, "demo.cpu", 0, &x->out[i]);
    return coil_ok(NULL);
}

static coil_result interrupt_main(void *arg) {
    char *dir = arg;
    interrupted x = {.s = fx_open(dir, NULL)};
    coil_task *t[50];
    for (int i = 0; i < 50; i++) t[i] = coil_spawn(interruptible_enqueue, &x);
    coil_yield(); /* they all queue their request */
    for (int i = 0; i < 50; i++) coil_cancel(t[i]);
    for (int i = 0; i < 50; i++) coil_join(t[i], NULL);
    /* Success means written, -ECANCELED means nothing written. */
    int ok = 0;
    for (int i = 0; i < 50; i++) {
        if (x.err[i] == 0) {
            ok++;
            ASSERT_EQ(fx_state(x.s, x.out[i].id), COIL__JOB_QUEUED);
        } else {
            ASSERT_EQ(x.err[i], -ECANCELED);
        }
    }
    ASSERT_EQ(fx_total(x.s), (uint64_t)ok);
    ASSERT_EQ(coil__store_close(x.s), 0);
    return coil_ok(NULL);
}

TEST(interrupted_write_is_all_or_nothing) {
    char *dir = fx_tmpdir();
    RUN_MAIN(interrupt_main, dir);
    fx_rmtree(dir);
}

/* ------------------------------------------------------------------ opening */

static coil_result busy_main(void *arg) {
    char *dir = arg;
    coil__store *s = fx_open(dir, NULL);
    coil__store *other = NULL;
    ASSERT_EQ(coil__store_open(dir, NULL, &other), -EBUSY); /* one owner per directory */
    ASSERT(other == NULL);
    ASSERT_EQ(coil__store_close(s), 0);
    s = fx_open(dir, NULL); /* free again after close */
    ASSERT_EQ(coil__store_close(s), 0);
    /* A data directory that is a file. */
    char path[600];
    snprintf(path, sizeof path, "%s/jobs.db", dir);
    ASSERT_EQ(coil__store_open(path, NULL, &other), -ENOTDIR);
    return coil_ok(NULL);
}

TEST(open_twice_is_busy) { /* SQLite only: its lock file */
    char *dir = fx_tmpdir();
    RUN_MAIN(busy_main, dir);
    fx_rmtree(dir);
}

TEST(open_outside_a_task) {
    coil__store *s = NULL;
    ASSERT_EQ(coil__store_open("/nonexistent", NULL, &s), -EPERM);
    ASSERT(s == NULL);
}

/* ------------------------------------------------------------------ follow-ups */


static size_t followups_of(coil__store *s, const char *parent) {
    coil__job_filter f = {.state = -1, .parent = parent};
    coil__job_list l;
    ASSERT_EQ(coil__store_list(s, &f, &l), 0);
    size_t n = l.n;
    coil__job_list_free(&l);
    return n;
}

static coil_result followups_main(void *arg) {
    coil__store *s = fx_open(arg, NULL);
    static const char specs[] =
        "[{\"kind\":\"on.success\",\"when\":\"success\",\"payload\":{\"to\":\"a\"},"
        "\"max_attempts\":7},"
        "{\"kind\":\"on.failure\",\"when\":\"failure\"},"
        "{\"kind\":\"on.done\",\"when\":\"done\",\"followups\":"
        "[{\"kind\":\"on.chain\",\"when\":\"success\"}]}]";
    char msg[160];
    ASSERT_EQ(coil__followups_check(specs, msg, sizeof msg), 0);
    ASSERT_EQ(coil__followups_check("[{\"kind\":\"x\",\"when\":\"later\"}]", msg, sizeof msg),
              -EINVAL);
    ASSERT_CONTAINS(msg, "\"when\"");
    ASSERT_EQ(coil__followups_check("{}", msg, sizeof msg), -EINVAL);
    ASSERT_EQ(coil__followups_check("[{\"kind\":\"x\",\"when\":\"done\",\"payload\":"
                                    "{\"parent\":1}}]", msg, sizeof msg),
              -EINVAL);
    /* A job that succeeds: its success and done follow-ups, in the same
     * commit as its state; not its failure one. */
    coil__job_spec spec = {.kind = "parent.ok", .payload = "{}", .payload_len = 2,
                           .followups = specs};
    coil__enqueued ok, bad;
    ASSERT_EQ(coil__store_enqueue(s, &spec, &ok), 0);
    spec.kind = "parent.bad";
    spec.max_attempts = 1;
    ASSERT_EQ(coil__store_enqueue(s, &spec, &bad), 0);
    coil__job *j;
    ASSERT_EQ(fx_claim(s, "pid:1", &j, NULL), 0);
    ASSERT_STR_EQ(j->id, ok.id);
    ASSERT_STR_EQ(j->followups, specs);
    coil__job_free(j);
    ASSERT_EQ(followups_of(s, ok.id), 0); /* not before it ends */
    coil__job_result res = {.data = "{}", .len = 2};
    ASSERT_EQ(coil__store_complete(s, ok.id, &res), 0);
    ASSERT_EQ(followups_of(s, ok.id), 2);
    coil__job_filter f = {.state = COIL__JOB_QUEUED, .kind = "on.success"};
    coil__job_list l;
    ASSERT_EQ(coil__store_list(s, &f, &l), 0);
    ASSERT_EQ(l.n, 1);
    ASSERT_EQ(coil__store_get(s, l.jobs[0]->id, &j), 0);
    coil__job_list_free(&l);
    ASSERT_STR_EQ(j->parent, ok.id);
    ASSERT_EQ(j->max_attempts, 7);
    char key[80];
    snprintf(key, sizeof key, "followup:%s:0", ok.id);
    ASSERT_STR_EQ(j->idem_key, key);
    ASSERT_CONTAINS((const char *)j->payload, "\"to\":\"a\"");
    char want[96];
    snprintf(want, sizeof want, "\"parent\":{\"id\":\"%s\"", ok.id);
    ASSERT_CONTAINS((const char *)j->payload, want);
    ASSERT_CONTAINS((const char *)j->payload, "\"status\":\"succeeded\"");
    ASSERT(j->followups == NULL);
    coil__job_free(j);
    /* The done one carries its own follow-up: a chain. */
    f.kind = "on.done";
    ASSERT_EQ(coil__store_list(s, &f, &l), 0);
    ASSERT_EQ(l.n, 2 - 1);
    ASSERT_EQ(coil__store_get(s, l.jobs[0]->id, &j), 0);
    coil__job_list_free(&l);
    ASSERT_STR_EQ(j->followups, "[{\"kind\":\"on.chain\",\"when\":\"success\"}]");
    coil__job_free(j);
    /* A job that fails for good: its failure and done follow-ups. */
    ASSERT_EQ(fx_claim(s, "pid:1", &j, NULL), 0);
    ASSERT_STR_EQ(j->id, bad.id);
    coil__job_free(j);
    coil__job_error e = {.message = "no", .exit_status = -1};
    ASSERT_EQ(coil__store_fail(s, bad.id, &e, NULL), 0);
    ASSERT_EQ(fx_state(s, bad.id), COIL__JOB_DEAD);
    ASSERT_EQ(followups_of(s, bad.id), 2);
    j = NULL;
    f = (coil__job_filter){.state = -1, .kind = "on.failure", .parent = bad.id};
    ASSERT_EQ(coil__store_list(s, &f, &l), 0);
    ASSERT_EQ(l.n, 1);
    ASSERT_EQ(coil__store_get(s, l.jobs[0]->id, &j), 0);
    coil__job_list_free(&l);
    ASSERT_CONTAINS((const char *)j->payload, "\"status\":\"dead\"");
    ASSERT_CONTAINS((const char *)j->payload, "\"error\":\"no\"");
    coil__job_free(j);
    /* A permanent failure is dead at once, attempts left or not. */
    spec = (coil__job_spec){.kind = "parent.refused", .payload = "{}", .payload_len = 2,
                            .max_attempts = 9,
                            .followups = "[{\"kind\":\"on.failure\",\"when\":\"failure\"}]"};
    coil__enqueued refused;
    ASSERT_EQ(coil__store_enqueue(s, &spec, &refused), 0);
    coil__job *claimed = NULL;
    for (;;) { /* the on.* jobs are queued too: claim until it is ours */
        ASSERT_EQ(fx_claim(s, "pid:1", &claimed, NULL), 0);
        bool ours = strcmp(claimed->id, refused.id) == 0;
        if (!ours) ASSERT_EQ(coil__store_complete(s, claimed->id, &res), 0);
        coil__job_free(claimed);
        if (ours) break;
    }
    e.permanent = true;
    ASSERT_EQ(coil__store_fail(s, refused.id, &e, NULL), 0);
    ASSERT_EQ(fx_state(s, refused.id), COIL__JOB_DEAD);
    coil__job *child = fx_only_followup(s, refused.id);
    ASSERT_STR_EQ(child->kind, "on.failure");
    coil__job_free(child);
    ASSERT_EQ(coil__store_close(s), 0);
    return coil_ok(NULL);
}

TEST(followups_are_written_with_the_final_state_of_their_parent) {
    char *dir = fx_tmpdir();
    RUN_MAIN(followups_main, dir);
    fx_rmtree(dir);
}

/* ------------------------------------------------------------------ nodes */

static coil_result nodes_main(void *arg) {
    coil__store *s = fx_open(arg, NULL);
    char *json = NULL;
    ASSERT_EQ(coil__store_nodes(s, &json), 0);
    json_t *doc = json_loads(json, 0, NULL);
    ASSERT(json_is_array(doc));
    if (!fx_pg()) {
        ASSERT_EQ(json_array_size(doc), 0); /* one process owns the directory */
    } else {
        /* This store is a node: its lease renewed a moment ago, no jobs. */
        ASSERT_GE(json_array_size(doc), 1);
        json_t *n = json_array_get(doc, json_array_size(doc) - 1);
        char pid[24];
        snprintf(pid, sizeof pid, ":%d", (int)getpid());
        ASSERT_CONTAINS(json_string_value(json_object_get(n, "name")), pid);
        ASSERT_GE(json_integer_value(json_object_get(n, "heartbeat_age_ms")), 0);
        ASSERT(json_integer_value(json_object_get(n, "heartbeat_age_ms")) < 60000);
        ASSERT(json_is_false(json_object_get(n, "lost")));
        ASSERT_EQ(json_integer_value(json_object_get(n, "running")), 0);
    }
    json_decref(doc);
    free(json);
    ASSERT_EQ(coil__store_close(s), 0);
    return coil_ok(NULL);
}

TEST(nodes_are_listed_with_their_heartbeat) {
    char *dir = fx_tmpdir();
    RUN_MAIN(nodes_main, dir);
    fx_rmtree(dir);
}
