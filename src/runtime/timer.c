/* runtime/timer.c: the loop's timers.
 *
 * A binary min-heap of coil__timer pointers ordered by deadline; each timer
 * remembers its slot so it can be stopped in O(log n). The timers themselves
 * live wherever their owner put them, usually on a parked task's stack, so
 * arming one never allocates except to grow the heap. The loop arms a single
 * uv_timer for the earliest deadline (loop.c).
 */
#include "runtime/internal.h"

#include <stdlib.h>

void coil__timer_init(coil__timer *t, void (*fire)(coil__timer *t)) {
    t->deadline = COIL_NEVER;
    t->index = SIZE_MAX;
    t->fire = fire;
}

static void place(coil_loop *loop, size_t i, coil__timer *t) {
    loop->heap[i] = t;
    t->index = i;
}

static void sift_up(coil_loop *loop, size_t i) {
    coil__timer *t = loop->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (loop->heap[parent]->deadline <= t->deadline) break;
        place(loop, i, loop->heap[parent]);
        i = parent;
    }
    place(loop, i, t);
}

static void sift_down(coil_loop *loop, size_t i) {
    coil__timer *t = loop->heap[i];
    size_t n = loop->heap_len;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && loop->heap[child + 1]->deadline < loop->heap[child]->deadline)
            child++;
        if (t->deadline <= loop->heap[child]->deadline) break;
        place(loop, i, loop->heap[child]);
        i = child;
    }
    place(loop, i, t);
}

static void heap_remove(coil_loop *loop, size_t i) {
    coil__timer *last = loop->heap[--loop->heap_len];
    if (i == loop->heap_len) return;
    place(loop, i, last);
    if (i > 0 && loop->heap[(i - 1) / 2]->deadline > last->deadline) sift_up(loop, i);
    else sift_down(loop, i);
}

int coil__timer_start(coil_loop *loop, coil__timer *t, coil_time deadline) {
    if (coil__timer_active(t)) coil__timer_stop(loop, t);
    if (loop->heap_len == loop->heap_cap) {
        size_t cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
        coil__timer **heap = realloc(loop->heap, cap * sizeof *heap);
        if (!heap) return -ENOMEM;
        loop->heap = heap;
        loop->heap_cap = cap;
    }
    t->deadline = deadline;
    loop->heap[loop->heap_len] = t;
    t->index = loop->heap_len++;
    sift_up(loop, t->index);
    return 0;
}

void coil__timer_stop(coil_loop *loop, coil__timer *t) {
    if (!coil__timer_active(t)) return;
    COIL_ASSERT(t->index < loop->heap_len && loop->heap[t->index] == t);
    heap_remove(loop, t->index);
    t->index = SIZE_MAX;
}

size_t coil__timers_run(coil_loop *loop, coil_time now) {
    size_t fired = 0;
    while (loop->heap_len && loop->heap[0]->deadline <= now) {
        coil__timer *t = loop->heap[0];
        heap_remove(loop, 0);
        t->index = SIZE_MAX;
        t->fire(t);
        fired++;
    }
    return fired;
}

coil_time coil__timers_next(const coil_loop *loop) {
    return loop->heap_len ? loop->heap[0]->deadline : COIL_NEVER;
}
