/* jobs/store/calls.c: the coil__store_* calls, the same on every backend.
 * A write builds a request on the caller's stack and submits it to the
 * writer (writer.c); a read goes to the backend. On a backend that keeps
 * result files (SQLite), large results are written to DIR/results/ first,
 * on the thread pool.
 */
#include "jobs/store/store_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------ write calls */

int coil__store_enqueue(coil__store *s, const coil__job_spec *spec, coil__enqueued *out) {
    if (!out) return -EINVAL;
    int err = coil__job_spec_check(spec);
    if (err) return err;
    coil__store_req r = {.op = COIL__OP_ENQUEUE};
    r.u.enqueue.spec = spec;
    r.u.enqueue.out = out;
    err = coil__job_id_new(r.u.enqueue.id);
    if (err) return err;
    return coil__store_submit(s, &r);
}

int coil__store_peek(coil__store *s, const uint64_t *skip, size_t nskip, coil__job **jobs,
                     size_t max, size_t max_bytes, size_t *n, int64_t *next_run_at) {
    return coil__store_peek_limited(s, skip, nskip, NULL, 0, jobs, max, max_bytes, n,
                                    next_run_at);
}

int coil__store_peek_limited(coil__store *s, const uint64_t *skip, size_t nskip,
                             const coil__peek_limit *limits, size_t nlimits, coil__job **jobs,
                             size_t max, size_t max_bytes, size_t *n, int64_t *next_run_at) {
    if (n) *n = 0;
    if (!jobs || !n || max == 0 || (nskip && !skip) || (nlimits && !limits)) return -EINVAL;
    coil__store_req r = {.op = COIL__OP_PEEK};
    r.u.peek.skip = skip;
    r.u.peek.nskip = nskip;
    r.u.peek.limits = limits;
    r.u.peek.nlimits = nlimits;
    r.u.peek.jobs = jobs;
    r.u.peek.max = max;
    r.u.peek.max_bytes = max_bytes;
    int err = coil__store_submit(s, &r);
    if (err == -EAGAIN && next_run_at) *next_run_at = r.u.peek.next_run_at;
    if (err) return err;
    *n = r.u.peek.n;
    return 0;
}

int coil__store_start(coil__store *s, const char *id, const char *owner, int *attempts) {
    if (!coil__job_id_valid(id)) return -ENOENT;
    if (!owner) return -EINVAL;
    coil__store_req r = {.op = COIL__OP_START};
    r.u.start.id = id;
    r.u.start.owner = owner;
    int err = coil__store_submit(s, &r);
    if (!err && attempts) *attempts = r.u.start.attempts;
    return err;
}

int coil__fsync_dir(const char *path) {
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -errno;
    int err = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return err;
}

/* A result file name: one path component. */
static bool valid_file_name(const char *name) {
    return *name && !strchr(name, '/') && strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

/* A result written to DIR/results on the thread pool. */
typedef struct result_file {
    const char *dir;          /* DIR/results */
    char name[80];            /* ID-RANDOM */
    const void *data;
    size_t len;
    bool unlink;              /* remove it instead of writing it */
    int err;
} result_file;

static int write_all(int fd, const char *p, size_t len) {
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Thread pool: writes the file durably (temporary name, fsync, rename,
 * fsync the directory), or removes it. */
static void *result_file_main(void *arg) {
    result_file *f = arg;
    char path[4096], tmp[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", f->dir, f->name) >= sizeof path ||
        (size_t)snprintf(tmp, sizeof tmp, "%s/.%s.tmp", f->dir, f->name) >= sizeof tmp) {
        f->err = -ENAMETOOLONG;
        return NULL;
    }
    if (f->unlink) {
        f->err = unlink(path) == 0 ? 0 : -errno;
        return NULL;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        f->err = -errno;
        return NULL;
    }
    int err = write_all(fd, f->data, f->len);
    if (!err && fsync(fd) != 0) err = -errno;
    if (close(fd) != 0 && !err) err = -errno;
    if (!err && rename(tmp, path) != 0) err = -errno;
    if (!err) err = coil__fsync_dir(f->dir);
    if (err) unlink(tmp);
    f->err = err;
    return NULL;
}

static int result_file_run(result_file *f) {
    int err = coil_to_thread(result_file_main, f, NULL);
    return err ? err : f->err;
}

static int complete(coil__store *s, const char *id, const char *owner,
                    const coil__job_result *res) {
    static const coil__job_result none = {0};
    if (!res) res = &none;
    if (!coil__job_id_valid(id)) return -ENOENT;
    if ((res->len && !res->data) || (res->file && (res->data || !valid_file_name(res->file))))
        return -EINVAL;
    coil__store_req r = {.op = COIL__OP_COMPLETE};
    r.u.complete.id = id;
    r.u.complete.res = res;
    r.u.complete.file = res->file;
    r.u.complete.owner = owner;
    const char *dir = coil__store_results_dir(s);
    if (res->file && !dir) return -EINVAL; /* this backend keeps no files */
    result_file f = {.dir = dir, .data = res->data, .len = res->len};
    bool to_file = dir && res->len > s->opts.inline_result_max;
    if (to_file) {
        char rnd[COIL__JOB_ID_SIZE];
        int err = coil__job_id_new(rnd);
        if (err) return err;
        snprintf(f.name, sizeof f.name, "%s-%.8s", id, rnd);
        err = result_file_run(&f);
        if (err) return err;
        r.u.complete.file = f.name;
    }
    int err = coil__store_submit(s, &r);
    if (err && to_file) {
        /* Nothing refers to it. Interrupted: the file stays, harmless. */
        f.unlink = true;
        (void)result_file_run(&f);
    }
    return err;
}

int coil__store_complete(coil__store *s, const char *id, const coil__job_result *res) {
    return complete(s, id, NULL, res);
}

int coil__store_run_complete(coil__store *s, const char *id, const char *owner,
                             const coil__job_result *res) {
    return owner ? complete(s, id, owner, res) : -EINVAL;
}

static int fail(coil__store *s, const char *id, const char *owner, const coil__job_error *error,
                coil__job_state *state_out) {
    if (!coil__job_id_valid(id)) return -ENOENT;
    coil__store_req r = {.op = COIL__OP_FAIL};
    r.u.fail.id = id;
    r.u.fail.error = error;
    r.u.fail.owner = owner;
    int err = coil__store_submit(s, &r);
    if (!err && state_out) *state_out = r.u.fail.state;
    return err;
}

int coil__store_fail(coil__store *s, const char *id, const coil__job_error *error,
                     coil__job_state *state_out) {
    return fail(s, id, NULL, error, state_out);
}

int coil__store_run_fail(coil__store *s, const char *id, const char *owner,
                         const coil__job_error *error, coil__job_state *state_out) {
    return owner ? fail(s, id, owner, error, state_out) : -EINVAL;
}

int coil__store_cancel(coil__store *s, const char *id, coil__job_state *state_out) {
    if (!coil__job_id_valid(id)) return -ENOENT;
    coil__store_req r = {.op = COIL__OP_CANCEL};
    r.u.cancel.id = id;
    int err = coil__store_submit(s, &r);
    if ((!err || err == -EALREADY) && state_out) *state_out = r.u.cancel.state;
    return err;
}

int coil__store_flush(coil__store *s) {
    coil__store_req r = {.op = COIL__OP_FLUSH};
    return coil__store_submit(s, &r);
}

int coil__store_requeue_running(coil__store *s, size_t *count) {
    coil__store_req r = {.op = COIL__OP_REQUEUE};
    int err = coil__store_submit(s, &r);
    if (!err && count) *count = r.u.requeue.count;
    return err;
}

int coil__store_release(coil__store *s, const char *id, coil__job_state *state_out) {
    if (!coil__job_id_valid(id)) return -ENOENT;
    coil__store_req r = {.op = COIL__OP_RELEASE};
    r.u.release.id = id;
    int err = coil__store_submit(s, &r);
    if (!err && state_out) *state_out = r.u.release.state;
    return err;
}

static int pragma(coil__store *s, int which, uint64_t value, uint64_t *page_count) {
    coil__store_req r = {.op = COIL__OP_PRAGMA};
    r.u.pragma.which = which;
    r.u.pragma.value = value;
    int err = coil__store_submit(s, &r);
    if (!err && page_count) *page_count = r.u.pragma.page_count;
    return err;
}

int coil__store_set_max_pages(coil__store *s, uint64_t pages, uint64_t *page_count) {
    return pragma(s, COIL__PRAGMA_MAX_PAGES, pages, page_count);
}

int coil__store_set_readonly(coil__store *s, bool readonly) {
    return pragma(s, COIL__PRAGMA_QUERY_ONLY, readonly, NULL);
}

/* ------------------------------------------------------------------ reads */

typedef struct read_call {
    coil__store *s;
    coil__store_read op;
    int err;
} read_call;

/* Thread pool. */
static void *read_main(void *arg) {
    read_call *rc = arg;
    rc->err = rc->s->be->read(rc->s, &rc->op);
    return NULL;
}

/* Runs a read on the thread pool; on an error nothing of it is kept.
 * Suspends. */
static int read_run(coil__store *s, coil__store_read *op) {
    read_call rc = {.s = s, .op = *op};
    atomic_fetch_add(&s->reads, 1);
    int err = coil_to_thread(read_main, &rc, NULL);
    atomic_fetch_sub(&s->reads, 1);
    if (!err) err = rc.err;
    if (err) {
        coil__job_free(rc.op.job);
        rc.op.job = NULL;
        coil__job_list_free(&rc.op.list);
    }
    *op = rc.op;
    return err;
}

int coil__store_get(coil__store *s, const char *id, coil__job **out) {
    if (!out) return -EINVAL;
    *out = NULL;
    if (!coil__job_id_valid(id)) return -ENOENT;
    coil__store_read op = {.kind = COIL__READ_GET, .id = id};
    int err = read_run(s, &op);
    if (!err) *out = op.job;
    return err;
}

int coil__store_list(coil__store *s, const coil__job_filter *f, coil__job_list *out) {
    static const coil__job_filter all = {.state = -1};
    if (!out) return -EINVAL;
    if (!f) f = &all;
    if (f->state < -1 || f->state >= COIL__JOB_NSTATES || f->cursor > INT64_MAX) return -EINVAL;
    coil__job_filter settled = *f;
    if (!settled.limit) settled.limit = COIL__LIST_DEFAULT;
    if (settled.limit > COIL__LIST_MAX) settled.limit = COIL__LIST_MAX;
    coil__store_read op = {.kind = COIL__READ_LIST, .filter = &settled};
    int err = read_run(s, &op);
    if (!err) *out = op.list;
    return err;
}

int coil__store_nodes(coil__store *s, char **json) {
    *json = NULL;
    coil__store_read op = {.kind = COIL__READ_NODES};
    int err = read_run(s, &op);
    if (!err) *json = op.nodes;
    return err;
}

int coil__store_counts(coil__store *s, uint64_t counts[COIL__JOB_NSTATES]) {
    coil__store_read op = {.kind = COIL__READ_COUNTS, .counts = counts};
    return read_run(s, &op);
}

const char *coil__store_results_dir(const coil__store *s) { return s->be->results_dir(s); }

void coil__job_list_free(coil__job_list *l) {
    for (size_t i = 0; i < l->n; i++) coil__job_free(l->jobs[i]);
    free(l->jobs);
    l->jobs = NULL;
    l->n = 0;
    l->next_cursor = 0;
}

bool coil__peek_limit_take(const coil__store_req *r, unsigned *room, const char *kind) {
    for (size_t i = 0; i < r->u.peek.nlimits; i++) {
        if (strcmp(r->u.peek.limits[i].kind, kind) != 0) continue;
        if (room[i] == 0) return false;
        room[i]--;
        return true;
    }
    return true;
}
