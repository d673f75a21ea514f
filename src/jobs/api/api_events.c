/* jobs/api/api_events.c: GET /jobs/{id}/events, a job's changes as Server-Sent
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
 * How it follows the job: the handler starts following it (follow.c: the
 * streams of a loop share one store watcher) before it reads the job, so
 * that no change falls between the read and the watch (a change seen twice
 * is harmless: events carry whole states). A stream's events go into a
 * bounded queue that its handler's task drains. If the queue is full the events are dropped and the next status
 * document, read afresh, covers them.
 */
#include "jobs/service/service.h"

#include <coil/http.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

enum { EVENT_QUEUE = 64 };
#define HEARTBEAT COIL_SEC(15)

/* One event stream. */
typedef struct follower {
    coil__job_follower follow;    /* the job's changes (follow.c) */
    coil_queue events;            /* malloc'd coil__job_event copies */
    bool dropped;                 /* events were lost to a full queue */
} follower;

static void on_event(coil__job_follower *jf, const coil__job_event *ev) {
    follower *f = COIL_CONTAINER_OF(jf, follower, follow);
    coil__job_event *copy = malloc(sizeof *copy);
    if (copy) *copy = *ev;
    if (!copy || coil_queue_try_put(&f->events, copy) != 0) {
        free(copy);
        f->dropped = true;
    }
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
            err = send_status(j, res, f->follow.id, &final, &state, &cancel_requested);
            if (err) return err;
            continue;
        }
        if (err) return err;
        coil__job_event *ev = item;
        if (ev->state != state || ev->cancel_requested != cancel_requested) {
            err = send_status(j, res, f->follow.id, &final, &state, &cancel_requested);
        } else {
            err = send_doc(res, "progress",
                           json_pack("{s:s, s:i, s:s?}", "id", f->follow.id, "progress",
                                     ev->progress, "message",
                                     ev->message[0] ? ev->message : NULL));
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
    memcpy(f->follow.id, id, sizeof f->follow.id);
    f->follow.on_event = on_event;
    int err = coil_queue_init(&f->events, COIL_QUEUE_FIFO, EVENT_QUEUE);
    if (err) {
        free(f);
        return err;
    }
    bool joined = (err = coil__jobs_follow(j, &f->follow)) == 0;
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
    if (joined) coil__jobs_unfollow(j, &f->follow);
    void *item;
    coil_queue_close(&f->events);
    while (coil_queue_try_get(&f->events, &item) == 0) free(item);
    coil_queue_destroy(&f->events);
    free(f);
    return err;
}
