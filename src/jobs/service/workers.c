/* jobs/service/workers.c: this node's worker processes, for dashboards
 * (coil_jobs_workers_json in jobs.h).
 *
 * The pool's slots may be read only on the jobs loop, so the first half
 * runs there (a coil_submit, as the dump does) and copies what it needs;
 * the second half reads each worker's RSS and CPU time from /proc on the
 * thread pool, since even procfs is file I/O that a loop should not do.
 */
#include "jobs/pool/pool.h"
#include "jobs/service/service.h"
#include "runtime/json_text.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { WORKERS_MAX = 256 };

typedef struct worker_row {
    unsigned slot;
    const char *state;
    int pid;
    char job[COIL_JOB_ID_SIZE]; /* "" if none */
    char kind[COIL_JOB_KIND_MAX + 16]; /* "(+N)" after an awaiting worker's first */
    uint64_t jobs_done;
    int64_t rss_bytes, cpu_ms;  /* -1 if unknown */
} worker_row;

typedef struct workers {
    worker_row rows[WORKERS_MAX];
    size_t n;
} workers;


/* On the jobs loop. */
static coil_result copy_slots(void *arg) {
    coil_jobs *j = arg;
    workers *w = calloc(1, sizeof *w);
    if (!w) return coil_fail(-ENOMEM);
    const coil_pool *p = j->pool;
    for (size_t i = 0; p && i < p->cfg.workers && w->n < WORKERS_MAX; i++) {
        const pool_slot *sl = &p->slots[i];
        worker_row *r = &w->rows[w->n++];
        r->slot = (unsigned)i;
        r->state = coil__slot_state_name(sl->state);
        r->pid = sl->pid;
        r->jobs_done = sl->jobs_done;
        const pool_job *job = coil__slot_job(sl, 0);
        if (job) { /* an awaiting worker's first job, and how many run with it */
            snprintf(r->job, sizeof r->job, "%s", job->opts.label ? job->opts.label : "");
            if (sl->njobs > 1)
                snprintf(r->kind, sizeof r->kind, "%.*s (+%zu)", (int)job->kind_len, job->kind,
                         sl->njobs - 1);
            else
                snprintf(r->kind, sizeof r->kind, "%.*s", (int)job->kind_len, job->kind);
        }
    }
    return coil_ok(w);
}

/* On a pool thread: /proc/PID/stat's utime + stime, and statm's resident
 * pages. */
static void *read_proc(void *arg) {
    workers *w = arg;
    long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    for (size_t i = 0; i < w->n; i++) {
        worker_row *r = &w->rows[i];
        r->rss_bytes = r->cpu_ms = -1;
        if (r->pid <= 0) continue;
        char path[64], buf[1024];
        snprintf(path, sizeof path, "/proc/%d/stat", r->pid);
        FILE *f = fopen(path, "r");
        size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f) fclose(f);
        buf[n] = '\0';
        /* The name, in parentheses, may hold anything: fields start after
         * the last ')'. utime and stime are the 14th and 15th fields. */
        const char *p = strrchr(buf, ')');
        unsigned long long ut, st;
        if (p && tick > 0 &&
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2)
            r->cpu_ms = (int64_t)((ut + st) * 1000 / (unsigned long long)tick);
        snprintf(path, sizeof path, "/proc/%d/statm", r->pid);
        f = fopen(path, "r");
        long long size, resident;
        if (f && fscanf(f, "%lld %lld", &size, &resident) == 2) r->rss_bytes = resident * page;
        if (f) fclose(f);
    }
    return NULL;
}

int coil_jobs_workers_json(coil_jobs *j, char **json) {
    *json = NULL;
    coil_remote *rq = coil_submit(j->loop, copy_slots, j);
    coil_result res = {0};
    if (!rq) return -errno;
    int err = coil_remote_wait(rq, &res, COIL_SEC(5));
    if (!err) err = res.err;
    if (err) return err;
    workers *w = res.value;
    err = coil_to_thread(read_proc, w, NULL);
    coil__json_text b = {0};
    coil__json_lit(&b, "[");
    for (size_t i = 0; !err && i < w->n; i++) {
        const worker_row *r = &w->rows[i];
        if (i) coil__json_lit(&b, ",");
        coil__json_lit(&b, "{\"slot\":");
        coil__json_int(&b, r->slot);
        coil__json_lit(&b, ",\"state\":");
        coil__json_str(&b, r->state, strlen(r->state));
        coil__json_lit(&b, ",\"pid\":");
        coil__json_int(&b, r->pid);
        coil__json_lit(&b, ",\"job\":");
        if (r->job[0]) coil__json_str(&b, r->job, strlen(r->job));
        else coil__json_lit(&b, "null");
        coil__json_lit(&b, ",\"kind\":");
        if (r->kind[0]) coil__json_str(&b, r->kind, strlen(r->kind));
        else coil__json_lit(&b, "null");
        coil__json_lit(&b, ",\"jobs_done\":");
        coil__json_int(&b, (int64_t)r->jobs_done);
        coil__json_lit(&b, ",\"rss_bytes\":");
        coil__json_int(&b, r->rss_bytes);
        coil__json_lit(&b, ",\"cpu_ms\":");
        coil__json_int(&b, r->cpu_ms);
        coil__json_lit(&b, "}");
    }
    coil__json_lit(&b, "]");
    free(w);
    if (!err && b.failed) err = -ENOMEM;
    if (err) free(b.s);
    else *json = b.s;
    return err;
}
