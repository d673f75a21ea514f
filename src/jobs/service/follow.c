/* jobs/service/follow.c: following one job's changes, for many followers at once.
 *
 * Event streams (api_events.c) and coil_jobs_wait() each follow one job. A
 * store watcher apiece would make every commit be copied and posted once
 * per follower (500 open streams halved the enqueue rate). Instead, the
 * followers of one loop thread share a hub: one store watcher per loop and
 * job system, which hands each event to the followers of its job, found by
 * a hash of the id.
 *
 * Threads. A hub belongs to its loop thread (thread-local); its followers
 * join, leave and get their callbacks there.
 */
#include "jobs/service/service.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum { HUB_BUCKETS = 256 };

/* The followers of one loop thread, for one job system. */
typedef struct follow_hub {
    coil_jobs *jobs;
    coil__store_watcher *watcher;
    coil__list buckets[HUB_BUCKETS]; /* followers, by bucket_of(id) */
    size_t followers;
    struct follow_hub *next;      /* this thread's other hubs */
} follow_hub;

/* The hubs of this thread's loop. */
static _Thread_local follow_hub *thread_hubs;

/* Job ids are random hex: their first two digits spread them evenly. */
static size_t bucket_of(const char *id) {
    size_t b = 0;
    for (int i = 0; i < 2; i++) {
        char c = id[i];
        b = b * 16 + (size_t)(c >= 'a' ? c - 'a' + 10 : c >= '0' && c <= '9' ? c - '0' : 0);
    }
    return b % HUB_BUCKETS;
}

static void on_events(const coil__job_event *ev, size_t n, void *arg) {
    follow_hub *h = arg;
    for (size_t i = 0; i < n; i++) {
        coil__list *it;
        coil__list_foreach(it, &h->buckets[bucket_of(ev[i].id)]) {
            coil__job_follower *f = COIL_CONTAINER_OF(it, coil__job_follower, link);
            if (strcmp(ev[i].id, f->id) == 0) f->on_event(f, &ev[i]);
        }
    }
}

int coil__jobs_follow(coil_jobs *j, coil__job_follower *f) {
    follow_hub *h = thread_hubs;
    while (h && h->jobs != j) h = h->next;
    if (!h) {
        if (!(h = calloc(1, sizeof *h))) return -ENOMEM;
        for (size_t i = 0; i < HUB_BUCKETS; i++) coil__list_init(&h->buckets[i]);
        int err = coil__store_watch(j->store, on_events, h, &h->watcher);
        if (err) {
            free(h);
            return err;
        }
        h->jobs = j;
        h->next = thread_hubs;
        thread_hubs = h;
    }
    coil__list_push_back(&h->buckets[bucket_of(f->id)], &f->link);
    h->followers++;
    return 0;
}

void coil__jobs_unfollow(coil_jobs *j, coil__job_follower *f) {
    follow_hub **at = &thread_hubs;
    while (*at && (*at)->jobs != j) at = &(*at)->next;
    follow_hub *h = *at;
    coil__list_remove(&f->link);
    if (--h->followers) return;
    coil__store_unwatch(h->watcher);
    *at = h->next;
    free(h);
}
