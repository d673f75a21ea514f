/* jobs/pool/pool.c: a pool's start, stop and counters.
 *
 * Start. The configuration gets its defaults, the worker command line is
 * prepared once (the executable's path for argv[0], the niceness, the
 * supervisor's pid), and one task per slot is spawned; each starts its
 * worker, so the workers' start-ups overlap. coil_pool_start() returns
 * when every first attempt is over: all ready, or the pool is torn down
 * and the first error returned. The registry of kinds is frozen then.
 *
 * Stop. New jobs are refused. In cancel mode queued jobs are dropped and
 * running ones stopped. Then stop waits until no job is queued or running,
 * shuts the write side of every idle worker's socket (the worker reads
 * the end of the stream and exits 0) and joins the slot tasks, which reap
 * their workers. If the stopping task is interrupted, joining cancels the
 * slot tasks, which kill their workers with SIGKILL and still reap them.
 */
#include "jobs/pool/pool.h"
#include "jobs/pool/worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

enum {
    DEFAULT_MAX_QUEUE = 1024,
    DEFAULT_NICE = 10,
    MAX_NICE = 19,
    DEFAULT_CANCEL_GRACE_MS = 100,
    DEFAULT_KILL_GRACE_MS = 2000,
    DEFAULT_SPAWN_TIMEOUT_MS = 10000,
    MAX_WORKERS = 1024,
};

/* ------------------------------------------------------------------ setup */

static int fill_config(coil_pool_config *c, const coil_pool_config *in) {
    if (in) *c = *in;
    else memset(c, 0, sizeof *c);
    if (c->workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        c->workers = n > 0 ? (size_t)n : 1;
    }
    if (c->workers > MAX_WORKERS || c->nice < -1 || c->cancel_grace < -1 ||
        c->kill_grace < 0 || c->spawn_timeout < 0)
        return -EINVAL;
    if (c->max_queue == 0) c->max_queue = DEFAULT_MAX_QUEUE;
    if (c->nice == 0) c->nice = DEFAULT_NICE;
    if (c->cancel_grace == 0) c->cancel_grace = COIL_MSEC(DEFAULT_CANCEL_GRACE_MS);
    if (c->kill_grace == 0) c->kill_grace = COIL_MSEC(DEFAULT_KILL_GRACE_MS);
    if (c->spawn_timeout == 0) c->spawn_timeout = COIL_MSEC(DEFAULT_SPAWN_TIMEOUT_MS);
    return 0;
}

/* The workers' argv: argv[0] (the executable's path, so that ps shows
 * it), the niceness ("-" to keep it) and the supervisor's pid. */
static int worker_args(coil_pool *p) {
    ssize_t n = readlink("/proc/self/exe", p->exe, sizeof p->exe - 1);
    if (n <= 0) return -ENOENT;
    p->exe[n] = '\0';
    if (p->cfg.nice < 0) {
        snprintf(p->nice_arg, sizeof p->nice_arg, "-");
    } else {
        errno = 0;
        int now = getpriority(PRIO_PROCESS, 0);
        if (now == -1 && errno) now = 0;
        int to = now + p->cfg.nice > MAX_NICE ? MAX_NICE : now + p->cfg.nice;
        snprintf(p->nice_arg, sizeof p->nice_arg, "%d", to < 0 ? 0 : to);
    }
    snprintf(p->ppid_arg, sizeof p->ppid_arg, "%d", (int)getpid());
    return 0;
}

/* Finds the cgroup v2 memory.events of this process (see pool_slot.c,
 * OOM) and reads its oom_kill count. Leaves "" when there is none. */
static void oom_setup(coil_pool *p) {
    p->oom_events[0] = '\0';
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f) return;
    char line[3072];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "0::", 3) != 0) continue;
        line[strcspn(line, "\n")] = '\0';
        const char *path = line + 3;
        snprintf(p->oom_events, sizeof p->oom_events, "/sys/fs/cgroup%s%smemory.events", path,
                 path[strlen(path) - 1] == '/' ? "" : "/");
        break;
    }
    fclose(f);
    if (p->oom_events[0] && access(p->oom_events, R_OK) != 0) p->oom_events[0] = '\0';
    p->oom_kills = 0;
    if (!p->oom_events[0]) return;
    f = fopen(p->oom_events, "re");
    if (!f) return;
    unsigned long long v;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "oom_kill %llu", &v) == 1) p->oom_kills = v;
    fclose(f);
}

static void pool_free(coil_pool *p) {
    free(p->slots);
    free(p);
}

/* ------------------------------------------------------------------ start */

/* Spawns the slot tasks. Returns 0 or -ENOMEM (those spawned are left for
 * coil_pool_stop to join). */
static int spawn_slots(coil_pool *p) {
    for (size_t i = 0; i < p->cfg.workers; i++) {
        pool_slot *s = &p->slots[i];
        char name[48];
        snprintf(name, sizeof name, "pool-worker-%u", s->index);
        s->task = coil_spawn_at(&(coil_spawn_opts){.name = name}, coil__slot_main, s, __FILE__,
                                __LINE__);
        if (!s->task) return -ENOMEM;
    }
    return 0;
}

/* Waits until every slot's first start attempt is over. Returns the first
 * slot's error, 0, or the interruption. Suspends. */
static int await_first_starts(coil_pool *p) {
    for (;;) {
        bool all = true;
        for (size_t i = 0; i < p->cfg.workers; i++) {
            pool_slot *s = &p->slots[i];
            if (s->tried && s->start_err) return s->start_err;
            if (!s->tried) all = false;
        }
        if (all) return 0;
        coil_event_clear(&p->changed);
        int err = COIL__AT(coil_event_wait(&p->changed));
        if (err) return err;
    }
}

int coil_pool_start(const coil_pool_config *cfg, coil_pool **out) {
    coil_task *self = coil__running();
    if (!self) return -EPERM;
    coil_pool *p = calloc(1, sizeof *p);
    if (!p) return -ENOMEM;
    int err = fill_config(&p->cfg, cfg);
    if (err) goto fail_free;
    p->slots = calloc(p->cfg.workers, sizeof *p->slots);
    if (!p->slots) {
        err = -ENOMEM;
        goto fail_free;
    }
    if ((err = worker_args(p)) != 0) goto fail_free;
    p->loop = self->loop;
    coil__list_init(&p->queue);
    coil_event_init(&p->stopped);
    coil_event_init(&p->changed);
    oom_setup(p);
    for (size_t i = 0; i < p->cfg.workers; i++) {
        pool_slot *s = &p->slots[i];
        s->pool = p;
        s->index = (unsigned)i;
        s->fd = -1;
        s->pidfd = -1;
        coil__list_init(&s->jobs);
        coil__timer_init(&s->escalate, coil__slot_escalate_fire);
    }
    coil__job_registry_freeze();
    err = spawn_slots(p);
    if (!err) err = await_first_starts(p);
    if (err) {
        coil_pool_stop(p, COIL_POOL_CANCEL); /* joins what was spawned, frees */
        return err;
    }
    *out = p;
    return 0;
fail_free:
    pool_free(p);
    return err;
}

/* ------------------------------------------------------------------ stop */

static size_t running_jobs(const coil_pool *p) {
    size_t n = 0;
    for (size_t i = 0; i < p->cfg.workers; i++) n += p->slots[i].njobs;
    return n;
}

static void cancel_all(coil_pool *p) {
    while (!coil__list_empty(&p->queue))
        coil__job_drop(COIL_CONTAINER_OF(p->queue.next, pool_job, link), -ECANCELED);
    for (size_t i = 0; i < p->cfg.workers; i++) {
        pool_slot *s = &p->slots[i];
        for (coil__list *n = s->jobs.next; n != &s->jobs; n = n->next)
            coil__job_request_stop(COIL_CONTAINER_OF(n, pool_job, slot_link), -ECANCELED);
    }
}

/* Waits until no job is queued or running. Suspends. */
static int await_quiet(coil_pool *p) {
    while (p->queued || running_jobs(p)) {
        coil_event_clear(&p->changed);
        int err = COIL__AT(coil_event_wait(&p->changed));
        if (err) return err;
    }
    return 0;
}

int coil_pool_stop(coil_pool *p, coil_pool_stop_mode mode) {
    coil_task *self = coil__running();
    COIL_ASSERT(p && self && self->loop == p->loop && !p->stopping);
    p->stopping = true;
    coil_event_set(&p->stopped);
    if (mode == COIL_POOL_CANCEL) cancel_all(p);
    int err = await_quiet(p);
    for (size_t i = 0; i < p->cfg.workers && !err; i++)
        if (p->slots[i].state == SLOT_IDLE) coil__slot_shut(&p->slots[i]);
    for (size_t i = 0; i < p->cfg.workers; i++) {
        if (!p->slots[i].task) continue;
        /* An interrupted join cancels the slot task, which kills its
         * worker, and still waits for it. */
        int jerr = coil_join(p->slots[i].task, NULL);
        if (jerr && !err) err = jerr;
    }
    pool_free(p);
    return err;
}

/* ------------------------------------------------------------------ stats */

void coil_pool_get_stats(const coil_pool *p, coil_pool_stats *out) {
    *out = p->stats;
    out->workers = p->cfg.workers;
    out->alive = out->busy = 0;
    for (size_t i = 0; i < p->cfg.workers; i++) {
        slot_state st = p->slots[i].state;
        out->alive += st == SLOT_IDLE || st == SLOT_BUSY;
        out->busy += st == SLOT_BUSY;
    }
    out->queued = p->queued;
    out->max_queue = p->cfg.max_queue;
}
