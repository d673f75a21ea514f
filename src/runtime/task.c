/* runtime/task.c: tasks and the park/wake protocol (see internal.h).
 *
 * A task's struct sits at the top of its own stack, so a parked task costs
 * one slot of a stack slab and the pages its frames touched: usually one.
 *
 * Lifetime. A task is freed exactly once, by whoever is last:
 *   - a handle joined with coil_join(): the joiner frees it after reading
 *     the result;
 *   - a detached task, or a child owned by a group: the scheduler frees it
 *     right after it finishes (never while running on its stack);
 *   - handles still unjoined at shutdown: coil_run() reports and frees them.
 */
#include "runtime/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ park */

int coil__park(coil__wait *w) {
    coil_loop *loop = coil__tls_loop;
    coil_task *t = loop ? loop->current : NULL;
    COIL_ASSERT(t != NULL);
    if (w->interrupt) {
        int err = coil__pending_cancel(t);
        if (err) return err;
    }
    t->wait = w;
    t->state = COIL__PARKED;
    t->park_file = coil__site.file;
    t->park_line = coil__site.line;
    coil__context_suspend(loop, t, false);
    t->wait = NULL;
    return t->wake_result;
}

void coil__wake(coil_task *t, int result) {
    COIL_ASSERT(t->state == COIL__PARKED);
    t->wake_result = result;
    t->state = COIL__READY;
    coil__ready_push(t->loop, t);
}

int coil__scope_chain_cancel(const coil_task *t, const coil_scope *s) {
    for (; s; s = s->outer) {
        if (s->fired) return s->fired;
        if (s->shield) return 0;
    }
    return t->cancelled ? -ECANCELED : 0;
}

int coil__pending_cancel(const coil_task *t) { return coil__scope_chain_cancel(t, t->scope); }

void coil__propagate_cancel(coil_task *t) {
    if (t->state == COIL__PARKED && t->wait && t->wait->interrupt) {
        int err = coil__pending_cancel(t);
        if (err && t->wait->interrupt(t->wait, err)) coil__wake(t, err);
    }
    for (coil_group *g = t->groups; g; g = g->outer)
        if (coil__scope_chain_cancel(t, g->scope)) coil__group_cancel_children(g);
}

/* Waiters on sync primitives. */

static bool waiter_interrupt(coil__wait *w, int err) {
    (void)err;
    coil__waiter *waiter = COIL_CONTAINER_OF(w, coil__waiter, wait);
    coil__list_remove(&waiter->link);
    return true;
}

int coil__wait_on(coil__list *waiters, coil__waiter *w) {
    w->wait.interrupt = waiter_interrupt;
    w->task = coil__running();
    w->value = NULL;
    int err = coil__pending_cancel(w->task);
    if (err) return err;
    coil__list_push_back(waiters, &w->link);
    return coil__park(&w->wait);
}

bool coil__wake_one(coil__list *waiters, void *value, int result) {
    coil__list *n = coil__list_pop_front(waiters);
    if (!n) return false;
    coil__waiter *w = COIL_CONTAINER_OF(n, coil__waiter, link);
    w->value = value;
    coil__wake(w->task, result);
    return true;
}

void coil__wake_all(coil__list *waiters, int result) {
    while (coil__wake_one(waiters, NULL, result)) {
    }
}

/* ------------------------------------------------------------------ spawn */

static void task_finish(coil_task *t);

static void task_entry(coil__transfer from) {
    coil_task *t = from.data;
    coil_loop *loop = t->loop;
    coil__context_started(loop, t, from);
    /* Cancelled before it ever ran: like asyncio, do not start it. */
    if (t->cancelled) t->result = coil_fail(-ECANCELED);
    else t->result = t->fn(t->arg);
    task_finish(t);
    coil__context_suspend(loop, t, true);
    coil__panic(__FILE__, __LINE__, "finished task resumed");
}

static void copy_name(coil_task *t, const char *name) {
    size_t n = strnlen(name, sizeof t->name - 1);
    memcpy(t->name, name, n);
    t->name[n] = '\0';
}

coil_task *coil__spawn(coil_loop *loop, const coil_spawn_opts *opts, coil_fn fn, void *arg,
                       coil_group *group, const char *file, int line) {
    coil__stack stack;
    if (coil__stack_get(loop->stacks, opts ? opts->stack_size : 0, &stack)) {
        errno = ENOMEM;
        return NULL;
    }
    coil_task *t = (coil_task *)(stack.top - COIL__TASK_ALIGN);
    t = (coil_task *)((uintptr_t)t & ~(uintptr_t)(COIL__TASK_ALIGN - 1));
    /* A pooled stack's slot held a task before: count it. (A fresh mapping
     * reads as zeros.) */
    uint32_t generation = t->magic == COIL__TASK_FREED ? t->generation + 1 : 0;
    memset(t, 0, sizeof *t);
    t->magic = COIL__TASK_LIVE;
    t->generation = generation;
    t->stack = stack;
    t->loop = loop;
    t->fn = fn;
    t->arg = arg;
    t->group = group;
    coil__list_init(&t->group_link);
    t->spawn_file = file;
    t->spawn_line = line;
    /* The loop's cached clock (ms, refreshed every poll): a clock read per
     * spawn would cost a fifth of a spawn+join. Ages are for dumps. */
    t->created = (coil_time)uv_now(&loop->uv) * 1000000;
    t->id = ++loop->spawned;
    if (opts && opts->name) copy_name(t, opts->name);
    coil_task *parent = loop->current;
    if (parent && parent->locals) {
        t->locals = parent->locals;
        coil__locals_retain(t->locals);
    }
    coil__context_make(t, task_entry);
    coil__list_push_back(&loop->tasks, &t->all_link);
    loop->ntasks++;
    t->state = COIL__READY;
    if (opts && opts->run_next) coil__ready_push_front(loop, t);
    else coil__ready_push(loop, t);
    return t;
}

coil_task *coil_spawn_at(const coil_spawn_opts *opts, coil_fn fn, void *arg, const char *file,
                         int line) {
    coil_loop *loop = coil__tls_loop;
    if (!loop) { /* only a loop's own thread may spawn on it */
        errno = EPERM;
        return NULL;
    }
    return coil__handle_of(coil__spawn(loop, opts, fn, arg, NULL, file, line));
}

static void task_finish(coil_task *t) {
    coil_loop *loop = t->loop;
    t->state = COIL__DONE;
    loop->ntasks--;
    if (t->locals) {
        coil__locals_release(t->locals);
        t->locals = NULL;
    }
    if (t->group) coil__group_child_done(t->group, t);
    else if (t->on_finish) t->on_finish(t);
    else if (t->detached) coil__report_lost_failure(t);
    if (t->joiner) {
        coil_task *j = t->joiner;
        t->joiner = NULL;
        coil__wake(j, 0);
    }
}

void coil__task_free(coil_task *t) {
    coil_loop *loop = t->loop;
    COIL_ASSERT(t->state == COIL__DONE);
    coil__list_remove(&t->all_link);
    coil__context_destroy(t);
    t->magic = COIL__TASK_FREED;
    coil__stack_put(loop->stacks, &t->stack);
}

/* ------------------------------------------------------------------ handles */

/* The task a handle passed to coil_join, coil_detach, coil_cancel or the
 * name calls names. It must be live, and of the handle's generation: a
 * task that was joined, or detached and finished, is gone, and its slot
 * may hold another task by now (internal.h, "Handles"). Reports the call
 * and its site, then aborts. */
static coil_task *check_handle(const coil_task *h, const char *call) {
    coil_task *t = coil__task_of(h);
    const char *what = NULL;
    if (!t) what = "a NULL task handle";
    else if (t->magic == COIL__TASK_FREED) what = "its task was freed";
    else if (t->magic != COIL__TASK_LIVE) what = "not a task handle";
    else if (h != t && h != coil__handle_of(t))
        what = "its task was freed, and its slot holds another task now";
    if (!what) return t;
    char site[300] = "";
    if (coil__site.file)
        snprintf(site, sizeof site, ", called at %s:%d", coil__site.file, coil__site.line);
    fprintf(stderr,
            "coil: %s(%p): %s%s; a handle is good for one coil_join or coil_detach, and for "
            "coil_cancel until then\n",
            call, (const void *)h, what, site);
    abort();
}

typedef struct join_wait {
    coil__wait wait;
    coil_task *child;
} join_wait;

static bool join_wait_interrupt(coil__wait *w, int err) {
    (void)err;
    join_wait *jw = COIL_CONTAINER_OF(w, join_wait, wait);
    jw->child->joiner = NULL;
    return true;
}

int coil_join(coil_task *h, coil_result *out) {
    coil_task *t = check_handle(h, "coil_join");
    coil_task *self = coil__running();
    COIL_ASSERT(self && t && t != self && t->loop == self->loop);
    COIL_ASSERT(!t->joined && !t->detached && !t->group && !t->joiner);
    t->joined = true;
    int err = coil__pending_cancel(self);
    if (t->state != COIL__DONE) {
        join_wait jw = {{join_wait_interrupt}, t};
        t->joiner = self;
        err = coil__park(&jw.wait);
        if (err) {
            /* Interrupted: the child must not outlive the wait for it. */
            t->joiner = NULL;
            coil_cancel(t);
            if (t->state != COIL__DONE) {
                coil__wait shielded = {NULL};
                t->joiner = self;
                coil__park(&shielded);
            }
        }
    }
    if (out) *out = t->result;
    coil__task_free(t);
    return err;
}

void coil_detach(coil_task *h) {
    coil_task *t = check_handle(h, "coil_detach");
    COIL_ASSERT(t && !t->joined && !t->detached && !t->group);
    t->detached = true;
    if (t->state == COIL__DONE) {
        coil__report_lost_failure(t);
        coil__task_free(t);
    }
}

void coil_cancel(coil_task *h) {
    if (!h) return;
    coil_task *t = check_handle(h, "coil_cancel");
    if (t->state == COIL__DONE || t->cancelled) return;
    t->cancelled = true;
    coil__propagate_cancel(t);
}

int coil_yield(void) {
    coil_loop *loop = coil__tls_loop;
    coil_task *t = loop ? loop->current : NULL;
    COIL_ASSERT(t != NULL);
    int err = coil__pending_cancel(t);
    if (err) return err;
    t->state = COIL__READY;
    t->park_file = coil__site.file;
    t->park_line = coil__site.line;
    coil__ready_push(loop, t);
    coil__context_suspend(loop, t, false);
    return coil__pending_cancel(t);
}

int coil_check_cancel(void) {
    coil_task *t = coil__running();
    return t ? coil__pending_cancel(t) : 0;
}

coil_task *coil_current(void) { return coil__handle_of(coil__running()); }

const char *coil_task_name(const coil_task *h) {
    /* Unnamed tasks get "task-ID", rendered on first use to keep spawn cheap. */
    coil_task *m = check_handle(h, "coil_task_name");
    if (!m->name[0]) snprintf(m->name, sizeof m->name, "task-%llu", (unsigned long long)m->id);
    return m->name;
}

void coil_task_set_name(coil_task *h, const char *name) {
    copy_name(check_handle(h, "coil_task_set_name"), name ? name : "");
}
