/* jobs/api_events.c: GET /jobs/{id}/events, a job's changes as Server-Sent
 * Events.
 *
 *   event: status      the status document (api_doc.c): first the current
 *                      one, then after every change of state (or of
 *                      cancel_requested), and every 15 s as a heartbeat
 *   event: progress    {"id", "progress", "message"} for each progress report
 *
 * The stream ends after the status event of a final state (succeeded,
 * cancelled, dead). A job already final gets its status and the end.
 *
 * How it follows the job: the handler joins its loop's hub before it reads
 * the job, so that no change falls between the read and the watch (a change
 * seen twice is harmless: events carry whole states). A hub is one store
 * watcher per loop (per job system) shared by every stream on that loop:
 * the store delivers each commit once per loop, not once per stream, and
 * the hub hands each event to the streams of its job, found by a hash of
 * the id. (With a watcher per stream, 500 open streams halved the enqueue
 * rate.) A stream's events go into a bounded queue that its handler's task
 * drains. If the queue is full the events are dropped and the next status
 * document, read afresh, covers them.
 */
#include "jobs/service.h"

#include <coil/http.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

enum { EVENT_QUEUE = 64, HUB_BUCKETS = 256 };
#define HEARTBEAT COIL_SEC(15)

/* One event stream. */
typedef struct follower {
    coil__list link;              /* in its hub's bucket */
    char id[COIL__JOB_ID_SIZE];
    coil_queue events;            /* malloc'd coil__job_event copies */
    bool dropped;                 /* events were lost to a full queue */
} follower;

/* The streams of one loop thread, for one job system. */
typedef struct events_hub {
    coil_jobs *jobs;
    coil__store_watcher *watcher;
    coil__list buckets[HUB_BUCKETS]; /* followers, by bucket_of(id) */
    size_t followers;
    struct events_hub *next;      /* this thread's other hubs */
} events_hub;

/* The hubs of this thread's loop. Loop thread only, like its streams. */
static _Thread_local events_hub *thread_hubs;

/* Job ids are random hex: their first two digits spread them evenly. */
static size_t bucket_of(const char *id) {
    size_t b = 0;
    for (int i = 0; i < 2; i++) {
        char c = id[i];
        b = b * 16 + (size_t)(c >= 'a' ? c - 'a' + 10 : c >= '0' && c <= '9' ? c - '0' : 0);
    }
    return b % HUB_BUCKETS;
}

static void deliver(follower *f, const coil__job_event *ev) {
    coil__job_event *copy = malloc(sizeof *copy);
    if (copy) *copy = *ev;
    if (!copy || coil_queue_try_put(&f->events, copy) != 0) {
        free(copy);
        f->dropped = true;
    }
}

static void on_events(const coil__job_event *ev, size_t n, void *arg) {
    events_hub *h = arg;
    for (size_t i = 0; i < n; i++) {
        coil__list *it;
        coil__list_foreach(it, &h->buckets[bucket_of(ev[i].id)]) {
            follower *f = COIL_CONTAINER_OF(it, follower, link);
            if (strcmp(ev[i].id, f->id) == 0) deliver(f, &ev[i]);
        }
    }
}

/* Adds `f` to its loop's hub for `j`, making the hub (and its watcher) if
 * there is none. Returns 0, -ENOMEM or -EPERM. Does not suspend. */
static int hub_join(coil_jobs *j, follower *f) {
    events_hub *h = thread_hubs;
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

/* Takes `f` out of its hub; the last one out unwatches and frees the hub.
 * Does not suspend. */
static void hub_leave(coil_jobs *j, follower *f) {
    events_hub **at = &thread_hubs;
    while (*at && (*at)->jobs != j) at = &(*at)->next;
    events_hub *h = *at;
    coil__list_remove(&f->link);
    if (--h->followers) return;
    coil__store_unwatch(h->watcher);
    *at = h->next;
    free(h);
}

/* Sends `doc` (a json_t *, taken) as an event. Returns 0 or -EPIPE, ...
 * Suspends. */
static int send_doc(coil_http_response *res, const char *event, json_t *doc) {
    if (!doc) return -ENOMEM;
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!text) return -ENOMEM;
    int err = coil_http_sse_send(res, event, text);
    free(text);
    return err;
}

/* Reads the job and sends its status. Sets *final. Suspends. */
static int send_status(coil_jobs *j, coil_http_response *res, const char *id, bool *final,
                       coil__job_state *state, bool *cancel_requested) {
    coil__job *job;
    int err = coil__store_get(j->store, id, &job);
    if (err) return err;
    *final = coil__job_state_final(job->state);
    *state = job->state;
    *cancel_requested = job->cancel_requested;
    err = send_doc(res, "status", coil__job_status_doc(job));
    coil__job_free(job);
    return err;
}

/* Follows the job until it is final, the client goes, or the request is
 * cancelled. Suspends. */
static int follow(coil_jobs *j, coil_http_response *res, follower *f, coil__job_state state,
                  bool cancel_requested) {
    bool final = false;
    while (!final) {
        void *item = NULL;
        int err = coil_queue_get_timeout(&f->events, &item, HEARTBEAT);
        if (err == -ETIMEDOUT || (err == 0 && f->dropped)) {
            f->dropped = false;
            free(item);
            err = send_status(j, res, f->id, &final, &state, &cancel_requested);
            if (err) return err;
            continue;
        }
        if (err) return err;
        coil__job_event *ev = item;
        if (ev->state != state || ev->cancel_requested != cancel_requested) {
            err = send_status(j, res, f->id, &final, &state, &cancel_requested);
        } else {
            err = send_doc(res, "progress",
                           json_pack("{s:s, s:i, s:s?}", "id", f->id, "progress", ev->progress,
                                     "message", ev->message[0] ? ev->message : NULL));
        }
        free(ev);
        if (err) return err;
    }
    return 0;
}

int coil__jobs_events(coil_http_request *req, coil_http_response *res, void *arg) {
    coil_jobs *j = arg;
    const char *id = coil_http_param(req, "id");
    if (!coil__job_id_valid(id)) return coil_http_respond_error(res, 404, "no such job");
    follower *f = calloc(1, sizeof *f);
    if (!f) return -ENOMEM;
    memcpy(f->id, id, sizeof f->id);
    int err = coil_queue_init(&f->events, COIL_QUEUE_FIFO, EVENT_QUEUE);
    if (err) {
        free(f);
        return err;
    }
    bool joined = (err = hub_join(j, f)) == 0;
    coil__job *job = NULL;
    if (!err) err = coil__store_get(j->store, id, &job);
    if (err == -ENOENT) {
        err = coil_http_respond_error(res, 404, "no such job");
    } else if (!err) {
        coil__job_state state = job->state;
        bool cancel_requested = job->cancel_requested, final = coil__job_state_final(state);
        err = coil_http_sse_begin(res);
        if (!err) err = send_doc(res, "status", coil__job_status_doc(job));
        if (!err && !final) err = follow(j, res, f, state, cancel_requested);
        if (err == -EPIPE) err = 0; /* the client went away: nothing to report */
    }
    coil__job_free(job);
    if (joined) hub_leave(j, f);
    void *item;
    coil_queue_close(&f->events);
    while (coil_queue_try_get(&f->events, &item) == 0) free(item);
    coil_queue_destroy(&f->events);
    free(f);
    return err;
}
