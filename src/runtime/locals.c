/* runtime/locals.c: task-local values with contextvars semantics.
 *
 * A task's values form one immutable-once-shared block: spawn shares the
 * parent's block (a reference, no copy), and the first set in a task whose
 * block is shared copies it (copy on write). So spawning is O(1), and a set
 * is never seen by tasks that already exist.
 *
 * A task that sets a value in a task spawned with no values of its own
 * (an HTTP request's handler does, once per request) needs a fresh block,
 * and drops it when it ends: each loop keeps one freed block of the
 * smallest size to hand out next, so that this costs no malloc and free.
 *
 * Reference counts are plain integers: blocks live on one loop. A function
 * run by coil_to_thread() borrows its task's block through
 * coil__thread_locals without counting (the task waits for the call), and
 * may only read it.
 */
#include "runtime/internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct local_slot {
    coil_local_key *key;
    void *value;
} local_slot;

struct coil__locals {
    size_t refs;     /* tasks (and calls) sharing this block */
    size_t n, cap;   /* slots used / allocated */
    local_slot slots[];
};

_Thread_local coil__locals *coil__thread_locals;

void coil__locals_retain(coil__locals *l) { l->refs++; }

enum { SPARE_CAP = 4 }; /* the smallest block: the size the loop keeps a spare of */

void coil__locals_release(coil__locals *l) {
    if (!l || --l->refs != 0) return;
    coil_loop *loop = coil__tls_loop;
    if (l->cap == SPARE_CAP && loop && !loop->spare_locals) {
        loop->spare_locals = l;
        return;
    }
    free(l);
}

void coil__locals_free_spare(coil_loop *loop) {
    free(loop->spare_locals);
    loop->spare_locals = NULL;
}

static coil__locals *copy_with_room(const coil__locals *from) {
    size_t n = from ? from->n : 0;
    size_t cap = n < SPARE_CAP ? SPARE_CAP : n * 2;
    coil_loop *loop = coil__tls_loop;
    coil__locals *l;
    if (cap == SPARE_CAP && loop && loop->spare_locals) {
        l = loop->spare_locals;
        loop->spare_locals = NULL;
    } else {
        l = malloc(sizeof *l + cap * sizeof(local_slot));
        if (!l) return NULL;
    }
    l->refs = 1;
    l->n = n;
    l->cap = cap;
    if (n) memcpy(l->slots, from->slots, n * sizeof(local_slot));
    return l;
}

static local_slot *find(coil__locals *l, const coil_local_key *key) {
    for (size_t i = 0; l && i < l->n; i++)
        if (l->slots[i].key == key) return &l->slots[i];
    return NULL;
}

/* Makes *blockp a block the calling task alone holds, with room for one more
 * slot. Returns 0 or -ENOMEM (then *blockp is unchanged). */
static int make_writable(coil__locals **blockp) {
    coil__locals *l = *blockp;
    if (l && l->refs == 1) {
        if (l->n < l->cap) return 0;
        coil__locals *bigger = realloc(l, sizeof *l + l->cap * 2 * sizeof(local_slot));
        if (!bigger) return -ENOMEM;
        bigger->cap *= 2;
        *blockp = bigger;
        return 0;
    }
    coil__locals *copy = copy_with_room(l);
    if (!copy) return -ENOMEM;
    coil__locals_release(l);
    *blockp = copy;
    return 0;
}

int coil_local_set(coil_local_key *key, void *value) {
    coil_task *t = coil__running();
    if (!t) return -EPERM; /* plain threads, and offloaded functions: read-only */
    int err = make_writable(&t->locals);
    if (err) return err;
    local_slot *s = find(t->locals, key);
    if (!s) {
        s = &t->locals->slots[t->locals->n++];
        s->key = key;
    }
    s->value = value;
    return 0;
}

void *coil_local_get(coil_local_key *key) {
    coil_task *t = coil__running();
    local_slot *s = find(t ? t->locals : coil__thread_locals, key);
    return s ? s->value : NULL;
}
