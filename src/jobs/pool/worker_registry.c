/* jobs/pool/worker_registry.c: job kinds and their handlers.
 *
 * A fixed table in static storage: registration runs in constructors, before
 * main() and before anything could be set up, and the same registrations
 * run again in every worker process because a worker is a fresh exec of the
 * same executable. Lookups are a linear scan: a program has a handful of
 * kinds, and a lookup happens once per job.
 */
#include "jobs/pool/worker.h"

#include <string.h>

enum { MAX_KINDS = 128 };

/* One registered kind. */
typedef struct registration {
    char kind[COIL_JOB_KIND_MAX + 1]; /* NUL-terminated copy */
    size_t len;                       /* strlen(kind) */
    coil_job_fn fn;                   /* its handler */
    unsigned awaiting;                /* 0: plain blocking C; else it awaits, and
                                         this many run at once in one worker */
} registration;

static registration table[MAX_KINDS]; /* the first `count` are in use */
static size_t count;
static bool frozen; /* a pool has started: the table no longer changes */

static int add(const char *kind, coil_job_fn fn, unsigned awaiting) {
    if (!kind || !fn) return -EINVAL;
    size_t len = strnlen(kind, COIL_JOB_KIND_MAX + 1);
    if (len == 0 || len > COIL_JOB_KIND_MAX) return -EINVAL;
    if (frozen) return -EBUSY;
    if (coil__job_lookup(kind, len)) return -EEXIST;
    if (count == MAX_KINDS) return -ENOSPC;
    registration *r = &table[count++];
    memcpy(r->kind, kind, len);
    r->kind[len] = '\0';
    r->len = len;
    r->fn = fn;
    r->awaiting = awaiting;
    return 0;
}

int coil_job_register(const char *kind, coil_job_fn fn) { return add(kind, fn, 0); }

int coil_job_register_awaiting(const char *kind, coil_job_fn fn, unsigned concurrency) {
    if (concurrency == 0 || concurrency > COIL_JOB_CONCURRENCY_MAX) return -EINVAL;
    return add(kind, fn, concurrency);
}

static const registration *find(const char *kind, size_t len) {
    for (size_t i = 0; i < count; i++)
        if (table[i].len == len && memcmp(table[i].kind, kind, len) == 0) return &table[i];
    return NULL;
}

coil_job_fn coil__job_lookup(const char *kind, size_t len) {
    const registration *r = find(kind, len);
    return r ? r->fn : NULL;
}

unsigned coil__job_awaiting(const char *kind, size_t len) {
    const registration *r = find(kind, len);
    return r ? r->awaiting : 0;
}

size_t coil__job_awaiting_places(void) {
    size_t n = 0;
    for (size_t i = 0; i < count; i++) n += table[i].awaiting;
    return n < COIL_JOB_CONCURRENCY_MAX ? n : COIL_JOB_CONCURRENCY_MAX;
}

void coil__job_registry_freeze(void) { frozen = true; }
