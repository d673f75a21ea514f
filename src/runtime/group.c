/* runtime/group.c: task groups (nurseries).
 *
 * A group is opened by coil_group_init() in its owner task and linked into
 * the owner's chain of open groups (task->groups), remembering the owner's
 * innermost scope at that moment. That is how cancellation reaches children:
 * when the owner is cancelled, or a scope enclosing the group fires,
 * coil__propagate_cancel() finds the group in the chain and cancels its
 * children; a child spawned into an already-cancelled group is cancelled at
 * once, so it never starts.
 *
 * Children are owned by the group: the scheduler frees each one as it
 * finishes, after coil__group_child_done() has recorded its result. The
 * first failure (an error other than a cancellation the group caused)
 * cancels the siblings. coil_group_wait() returns when no child is left and
 * closes the group.
 */
#include "runtime/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void coil_group_init(coil_group *g) {
    coil_task *owner = coil__running();
    COIL_ASSERT(owner != NULL);
    memset(g, 0, sizeof *g);
    g->owner = owner;
    g->scope = owner->scope;
    g->outer = owner->groups;
    g->open = true;
    coil__list_init(&g->children);
    owner->groups = g;
}

coil_task *coil_group_spawn_at(coil_group *g, const coil_spawn_opts *opts, coil_fn fn, void *arg,
                               const char *file, int line) {
    COIL_ASSERT(g->open && g->owner->loop == coil__tls_loop);
    coil_task *t = coil__spawn(g->owner->loop, opts, fn, arg, g, file, line);
    if (!t) return NULL;
    coil__list_push_back(&g->children, &t->group_link);
    g->live++;
    if (g->cancelled || coil__scope_chain_cancel(g->owner, g->scope)) coil_cancel(t);
    return coil__handle_of(t);
}

void coil__group_cancel_children(coil_group *g) {
    g->cancelled = true;
    coil__list *it;
    coil__list_foreach(it, &g->children) {
        coil_cancel(COIL_CONTAINER_OF(it, coil_task, group_link));
    }
}

void coil_group_cancel(coil_group *g) { coil__group_cancel_children(g); }

static void record_error(coil_group *g, coil_task *child) {
    if (g->nerrors == g->cap_errors) {
        size_t cap = g->cap_errors ? g->cap_errors * 2 : 4;
        coil_group_error *e = realloc(g->errors, cap * sizeof *e);
        if (!e) return; /* first_err is still kept */
        g->errors = e;
        g->cap_errors = cap;
    }
    coil_group_error *e = &g->errors[g->nerrors++];
    e->err = child->result.err;
    snprintf(e->name, sizeof e->name, "%s", coil_task_name(child));
    e->file = child->spawn_file;
    e->line = child->spawn_line;
}

void coil__group_child_done(coil_group *g, coil_task *child) {
    coil__list_remove(&child->group_link);
    g->live--;
    int err = child->result.err;
    bool caused_by_us = err == -ECANCELED && g->cancelled;
    if (err && !caused_by_us) {
        record_error(g, child);
        if (!g->first_err) {
            g->first_err = err;
            coil__group_cancel_children(g);
        }
    }
    if (g->live == 0 && g->waiting) coil__wake(g->owner, 0);
}

static bool group_wait_interrupt(coil__wait *w, int err) {
    (void)w;
    (void)err;
    return true;
}

static void close_group(coil_group *g) {
    coil_group **link = &g->owner->groups;
    while (*link && *link != g) link = &(*link)->outer;
    if (*link) *link = g->outer;
    g->open = false;
}

int coil_group_wait(coil_group *g) {
    COIL_ASSERT(g->open && g->owner == coil__running());
    coil__wait interruptible = {group_wait_interrupt};
    coil__wait shielded = {NULL};
    int interrupted = 0;
    while (g->live) {
        g->waiting = true;
        int err = coil__park(interrupted ? &shielded : &interruptible);
        g->waiting = false;
        if (err && !interrupted) {
            /* Cancelled or timed out: the children go too, and are awaited. */
            interrupted = err;
            coil__group_cancel_children(g);
        }
    }
    close_group(g);
    /* A suspension point even when nothing was left to wait for. */
    if (!interrupted) interrupted = coil__pending_cancel(g->owner);
    return interrupted ? interrupted : g->first_err;
}

size_t coil_group_error_count(const coil_group *g) { return g->nerrors; }

const coil_group_error *coil_group_error_at(const coil_group *g, size_t i) {
    return i < g->nerrors ? &g->errors[i] : NULL;
}

void coil_group_destroy(coil_group *g) {
    COIL_ASSERT(!g->open);
    free(g->errors);
    g->errors = NULL;
    g->nerrors = g->cap_errors = 0;
}
