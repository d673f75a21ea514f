/* tests/jobs/store/test_store_faults.c: a full or read-only data directory. Writes
 * fail with a clear error, nothing half-written remains, the process goes
 * on, and the store works again once the condition clears.
 *
 * Two ways to get there: SQLite's own limits (max_page_count makes "full"
 * deterministic; query_only makes it read-only), and, where the test may
 * create a mount namespace, a real tmpfs that fills up or is remounted
 * read-only. (COIL_TEST_THREADS: runs under TSan; COIL_TEST_BOTH_STORES: on
 * SQLite and on PostgreSQL, but for the cases only SQLite can stage.) */
#include <sched.h>
#include <sys/mount.h>

#include "jobs/store/store_fixture.h"

static coil__job_spec big_spec(size_t len) {
    static char payload[1 << 20];
    memset(payload, 'x', sizeof payload);
    ASSERT(len <= sizeof payload);
    coil__job_spec spec = {.kind = "demo.big", .payload = payload, .payload_len = len};
    return spec;
}

/* ------------------------------------------------------------------ max_page_count */

typedef struct mixed {
    coil__store *s;
    int err[10];
    coil__enqueued out[10];
    int big_err;
    int next;
} mixed;

static coil_result small_enqueue(void *arg) {
    mixed *m = arg;
    int i = m->next++;
    m->err[i] = fx_enqueue(m->s, "demo.small", 0, &m->out[i]);
    return coil_ok(NULL);
}

static coil_result big_enqueue(void *arg) {
    mixed *m = arg;
    coil__job_spec spec = big_spec(400 * 1024);
    coil__enqueued e;
    m->big_err = coil__store_enqueue(m->s, &spec, &e);
    return coil_ok(NULL);
}

static coil_result full_main(void *arg) {
    char *dir = arg;
    coil__store *s = fx_open(dir, NULL);
    coil__enqueued e;
    ASSERT_EQ(fx_enqueue(s, "demo.small", 0, &e), 0);
    uint64_t pages = 0;
    ASSERT_EQ(coil__store_set_max_pages(s, 1, &pages), 0); /* no room at all */
    ASSERT_GE(pages, 2);

    /* Full: a clear error, nothing written, and the writer goes on. */
    coil__job_spec spec = big_spec(64 * 1024);
    ASSERT_EQ(coil__store_enqueue(s, &spec, &e), -ENOSPC);
    coil__job_spec key = big_spec(64 * 1024);
    key.idem_key = "k1";
    ASSERT_EQ(coil__store_enqueue(s, &key, &e), -ENOSPC);
    ASSERT_EQ(fx_total(s), 1);
    coil__job_list l;
    coil__job_filter f = {.state = -1, .kind = "demo.big"};
    ASSERT_EQ(coil__store_list(s, &f, &l), 0);
    ASSERT_EQ(l.n, 0);
    coil__job_list_free(&l);
    coil__store_stats st;
    coil__store_get_stats(s, &st);
    ASSERT_GE(st.failed_commits, 2);

    /* Room for small writes but not for a big one: when they share a
     * transaction, only the big one fails. */
    ASSERT_EQ(coil__store_set_max_pages(s, pages + 30, NULL), 0);
    mixed m = {.s = s};
    coil_group g;
    coil_group_init(&g);
    for (int i = 0; i < 5; i++) coil_group_spawn(&g, small_enqueue, &m);
    coil_group_spawn(&g, big_enqueue, &m);
    for (int i = 0; i < 5; i++) coil_group_spawn(&g, small_enqueue, &m);
    ASSERT_EQ(coil_group_wait(&g), 0);
    coil_group_destroy(&g);
    ASSERT_EQ(m.big_err, -ENOSPC);
    for (int i = 0; i < 10; i++) {
        ASSERT_EQ(m.err[i], 0);
        ASSERT_EQ(fx_state(s, m.out[i].id), COIL__JOB_QUEUED);
    }
    ASSERT_EQ(fx_total(s), 11);

    /* The condition clears: the same writes go through. */
    ASSERT_EQ(coil__store_set_max_pages(s, 0, NULL), 0);
    ASSERT_EQ(coil__store_enqueue(s, &spec, &e), 0);
    ASSERT_EQ(coil__store_enqueue(s, &key, &e), 0);
    ASSERT(!e.duplicate); /* the failed attempt left no key behind */
    ASSERT_EQ(fx_total(s), 13);
    ASSERT_EQ(coil__store_close(s), 0);
    return coil_ok(NULL);
}

TEST(full_database_is_enospc_and_recovers) { /* SQLite only: max_page_count */
    char *dir = fx_tmpdir();
    RUN_MAIN(full_main, dir);
    fx_rmtree(dir);
}

/* ------------------------------------------------------------------ query_only */

static coil_result readonly_main(void *arg) {
    char *dir = arg;
    coil__store *s = fx_open(dir, NULL);
    coil__enqueued e;
    ASSERT_EQ(fx_enqueue(s, "demo.cpu", 0, &e), 0);
    ASSERT_EQ(coil__store_set_readonly(s, true), 0);

    coil__enqueued e2;
    ASSERT_EQ(fx_enqueue(s, "demo.cpu", 0, &e2), -EROFS);
    coil__job *j = NULL;
    ASSERT_EQ(fx_claim(s, "pid:1", &j, NULL), -EROFS);
    ASSERT(j == NULL);
    ASSERT_EQ(coil__store_cancel(s, e.id, NULL), -EROFS);
    uint64_t id;
    ASSERT_EQ(coil__store_next_id(s, &id), -EROFS);
    /* Reads still work, and show nothing changed. */
    ASSERT_EQ(fx_total(s), 1);
    ASSERT_EQ(fx_state(s, e.id), COIL__JOB_QUEUED);

    ASSERT_EQ(coil__store_set_readonly(s, false), 0);
    ASSERT_EQ(fx_claim(s, "pid:1", &j, NULL), 0);
    ASSERT_STR_EQ(j->id, e.id);
    ASSERT_EQ(j->attempts, 1); /* the refused claim left no trace */
    coil__job_free(j);
    ASSERT_EQ(fx_enqueue(s, "demo.cpu", 0, &e2), 0);
    ASSERT_EQ(coil__store_next_id(s, &id), 0);
    ASSERT_EQ(id, 1);
    ASSERT_EQ(coil__store_close(s), 0);
    return coil_ok(NULL);
}

TEST(readonly_database_is_erofs_and_recovers) {
    char *dir = fx_tmpdir();
    RUN_MAIN(readonly_main, dir);
    fx_rmtree(dir);
}

/* ------------------------------------------------------------------ a real tmpfs */

/* A private mount namespace with a small tmpfs at a fresh directory, or
 * NULL where this process may not mount (then the test passes, saying so). */
static char *private_tmpfs(const char *size) {
    if (unshare(CLONE_NEWNS) != 0) return NULL;
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) return NULL;
    char *dir = fx_tmpdir();
    char opts[64];
    snprintf(opts, sizeof opts, "size=%s,mode=0755", size);
    if (mount("tmpfs", dir, "tmpfs", 0, opts) != 0) {
        fx_rmtree(dir);
        return NULL;
    }
    return dir;
}

static void release_tmpfs(char *dir) {
    umount2(dir, MNT_DETACH);
    fx_rmtree(dir);
}

/* Fills the file system with one file; returns its path (static). */
static const char *fill_up(const char *dir) {
    static char path[600];
    snprintf(path, sizeof path, "%s/filler", dir);
    FILE *f = fopen(path, "wb");
    ASSERT(f != NULL);
    static char chunk[4096];
    while (fwrite(chunk, 1, sizeof chunk, f) == sizeof chunk) {}
    fclose(f);
    return path;
}

static coil_result disk_full_main(void *arg) {
    char *dir = arg;
    char data[600];
    snprintf(data, sizeof data, "%s/data", dir);
    coil__store *s = fx_open(data, NULL);
    coil__enqueued e;
    ASSERT_EQ(fx_enqueue(s, "demo.cpu", 0, &e), 0);
    const char *filler = fill_up(dir);

    coil__job_spec spec = big_spec(256 * 1024);
    int err = coil__store_enqueue(s, &spec, &e);
    ASSERT_EQ(err, -ENOSPC);
    ASSERT_EQ(fx_total(s), 1);

    /* Space again: the store works, without a restart. */
    ASSERT_EQ(unlink(filler), 0);
    ASSERT_EQ(coil__store_enqueue(s, &spec, &e), 0);
    ASSERT_EQ(fx_total(s), 2);
    ASSERT_EQ(coil__store_close(s), 0);
    s = fx_open(data, NULL);
    ASSERT_EQ(fx_total(s), 2);
    ASSERT_EQ(coil__store_close(s), 0);
    return coil_ok(NULL);
}

TEST(full_disk_is_enospc_and_recovers) { /* SQLite only: a tmpfs */
    char *dir = private_tmpfs("2m");
    if (!dir) {
        fprintf(stderr, "skipped: cannot mount a private tmpfs here\n");
        return;
    }
    RUN_MAIN(disk_full_main, dir);
    release_tmpfs(dir);
}

static coil_result ro_open_main(void *arg) {
    char *dir = arg;
    char data[600];
    snprintf(data, sizeof data, "%s/data", dir);
    coil__store *s = fx_open(data, NULL);
    coil__enqueued e;
    ASSERT_EQ(fx_enqueue(s, "demo.cpu", 0, &e), 0);
    ASSERT_EQ(coil__store_close(s), 0);

    /* A read-only file system: open says so, and nothing crashes. */
    ASSERT_EQ(mount(NULL, dir, NULL, MS_REMOUNT | MS_RDONLY, "size=2m"), 0);
    ASSERT_EQ(coil__store_open(data, NULL, &s), -EROFS);
    /* Not even a new directory can be made there. */
    char fresh[700];
    snprintf(fresh, sizeof fresh, "%s/other", dir);
    ASSERT_EQ(coil__store_open(fresh, NULL, &s), -EROFS);

    ASSERT_EQ(mount(NULL, dir, NULL, MS_REMOUNT, "size=2m"), 0);
    s = fx_open(data, NULL);
    ASSERT_EQ(fx_state(s, e.id), COIL__JOB_QUEUED);
    ASSERT_EQ(coil__store_close(s), 0);
    return coil_ok(NULL);
}

TEST(readonly_filesystem_open_is_erofs) { /* SQLite only: a read-only mount */
    char *dir = private_tmpfs("2m");
    if (!dir) {
        fprintf(stderr, "skipped: cannot mount a private tmpfs here\n");
        return;
    }
    RUN_MAIN(ro_open_main, dir);
    release_tmpfs(dir);
}
