/* http/server/background.c: coil_http_background, Starlette's BackgroundTask.
 *
 * The first call in a request spawns one task into the worker's background
 * group, from the caller's task, so that it inherits that task's
 * task-local values (the request ID among them). The task waits, shielded,
 * on the request's gate, which the connection opens once the response is
 * written (or the connection is gone: coil__http_open_gate), then runs the
 * request's work in order. Shutdown waits for that group. A blocking
 * handler's calls are captured on its thread and replayed here
 * (coil__http_capture_background, app/blocking.c).
 */
#include "http/server/core.h"

#include <stdlib.h>
#include <string.h>

typedef struct coil__http_gate {
    coil_event sent;                /* the response is out */
    coil__http_work *work, **tail;  /* what to run, in order (malloc'd nodes) */
    char *request_id;               /* the work's request ID (malloc'd), see below */
} coil__http_gate;

static coil_result background_main(void *arg) {
    coil__http_gate *g = arg;
    /* Shielded: the work is never dropped, even if the loop is torn down
     * while the response is still being written. */
    coil_scope shield;
    coil_scope_enter_shielded(&shield, COIL_NEVER);
    COIL__AT(coil_event_wait(&g->sent));
    coil_scope_exit(&shield);
    for (coil__http_work *w = g->work, *next; w; w = next) {
        next = w->next;
        coil_result r = w->fn(w->arg);
        if (r.err) coil__log("http: background work failed: %s", coil_strerror(r.err));
        free(w);
    }
    free(g->request_id);
    free(g);
    return coil_ok(NULL);
}

int coil_http_background(coil_http_request *req, coil_fn fn, void *arg) {
    if (coil__http_offloaded()) return coil__http_capture_background(req, fn, arg);
    if (!fn) return -EINVAL;
    coil__http_conn *c = coil__http_conn_of(req);
    coil__http_work *w = malloc(sizeof *w);
    if (!w) return -ENOMEM;
    w->fn = fn;
    w->arg = arg;
    w->next = NULL;
    if (!c->gate) {
        coil__http_gate *g = malloc(sizeof *g);
        if (!g) goto fail;
        coil_event_init(&g->sent);
        g->work = NULL;
        g->tail = &g->work;
        /* The current request ID points into the request's memory, which
         * is gone when the work runs: the caller and, by inheritance, the
         * work's task switch to a copy that the gate keeps until the work
         * is done (the caller finishes before the gate opens). */
        const char *id = coil_http_current_request_id();
        g->request_id = id ? strdup(id) : NULL;
        if (id && (!g->request_id || coil__http_adopt_request_id(g->request_id) != 0)) {
            free(g->request_id);
            free(g);
            goto fail;
        }
        if (!coil_group_spawn_named(&c->w->bg, "http-background", background_main, g)) {
            if (id) coil__http_adopt_request_id(id); /* cannot fail: the slot is ours */
            free(g->request_id);
            free(g);
            goto fail;
        }
        c->gate = g;
    }
    *c->gate->tail = w;
    c->gate->tail = &w->next;
    return 0;
fail:
    free(w);
    return -ENOMEM;
}

void coil__http_open_gate(coil__http_conn *c) {
    if (!c->gate) return;
    coil_event_set(&c->gate->sent);
    c->gate = NULL; /* the background task owns it now */
}
