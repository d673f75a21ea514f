/* runtime/queue.c: bounded queues of pointers (asyncio.Queue, LifoQueue,
 * PriorityQueue) for the tasks of one loop.
 *
 * Storage is allocated once, at init, for `cap` items:
 *
 *   FIFO      a ring: items[head], items[head+1], ... (mod cap), len items;
 *   LIFO      a stack: items[0 .. len-1], top at len-1 (head stays 0);
 *   PRIORITY  a binary min-heap over the parallel arrays items/prio/seq,
 *             ordered by (prio, seq). seq is a counter taken at insertion,
 *             so items of equal priority come out first in, first out.
 *
 * Waiters. A getter parks only when the queue is empty, a putter only when
 * it is full, so at most one of the two lists is ever non-empty:
 *
 *     getters non-empty  =>  len == 0
 *     putters non-empty  =>  len == cap
 *
 * Items are handed over directly. A put that finds a parked getter gives it
 * the item through its coil__waiter.value and wakes it; a get that frees a
 * slot moves the first parked putter's item in and wakes that putter. A
 * woken waiter has therefore already finished its operation and returns 0.
 * An interrupted waiter unlinks itself first (coil__wait_on), so a cancelled
 * getter never swallows an item and a cancelled putter's item never enters
 * the queue: it stays the putter's.
 *
 * Hot path. put into a non-full queue with no parked getter, and get from a
 * non-empty queue with no parked putter, touch only the arrays and the
 * counters: no allocation, no clock, no timer. A producer that wakes a
 * parked consumer does not switch to it; it keeps running, filling the queue
 * up to `cap` before it parks, and the consumer then drains the whole batch.
 * The timeout variants read the clock and enter a deadline scope only when
 * they actually have to wait.
 *
 * Priorities are honoured by PRIORITY queues only; FIFO and LIFO queues
 * accept coil_queue_put_prio() and ignore the priority, and plain puts into
 * a PRIORITY queue use priority 0.
 */
#include "runtime/internal.h"

#include <stdlib.h>

/* A putter parked on a full queue, with the item it wants to put. */
typedef struct put_waiter {
    coil__waiter w;   /* in q->putters */
    void *item;       /* moved into the queue by the get that makes room */
    int64_t prio;     /* its priority, for PRIORITY queues */
} put_waiter;

/* ------------------------------------------------------------------ storage */

static bool heap_less(const coil_queue *q, size_t a, size_t b) {
    if (q->prio[a] != q->prio[b]) return q->prio[a] < q->prio[b];
    return q->seq[a] < q->seq[b];
}

static void heap_swap(coil_queue *q, size_t a, size_t b) {
    void *item = q->items[a];
    int64_t prio = q->prio[a];
    uint64_t seq = q->seq[a];
    q->items[a] = q->items[b];
    q->prio[a] = q->prio[b];
    q->seq[a] = q->seq[b];
    q->items[b] = item;
    q->prio[b] = prio;
    q->seq[b] = seq;
}

static void heap_push(coil_queue *q, void *item, int64_t prio) {
    size_t i = q->len++;
    q->items[i] = item;
    q->prio[i] = prio;
    q->seq[i] = q->next_seq++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!heap_less(q, i, parent)) break;
        heap_swap(q, i, parent);
        i = parent;
    }
}

static void *heap_pop(coil_queue *q) {
    void *top = q->items[0];
    size_t n = --q->len;
    if (n > 0) heap_swap(q, 0, n);
    size_t i = 0;
    for (;;) {
        size_t left = 2 * i + 1, right = left + 1, least = i;
        if (left < n && heap_less(q, left, least)) least = left;
        if (right < n && heap_less(q, right, least)) least = right;
        if (least == i) break;
        heap_swap(q, i, least);
        i = least;
    }
    return top;
}

/* Stores an item; the queue must not be full. */
static inline void push(coil_queue *q, void *item, int64_t prio) {
    switch (q->kind) {
    case COIL_QUEUE_FIFO: {
        size_t i = q->head + q->len;
        if (i >= q->cap) i -= q->cap;
        q->items[i] = item;
        q->len++;
        return;
    }
    case COIL_QUEUE_LIFO:
        q->items[q->len++] = item;
        return;
    case COIL_QUEUE_PRIORITY:
        heap_push(q, item, prio);
        return;
    }
}

/* Removes the next item; the queue must not be empty. */
static inline void *pop(coil_queue *q) {
    switch (q->kind) {
    case COIL_QUEUE_FIFO: {
        void *item = q->items[q->head];
        if (++q->head == q->cap) q->head = 0;
        q->len--;
        return item;
    }
    case COIL_QUEUE_LIFO:
        return q->items[--q->len];
    case COIL_QUEUE_PRIORITY:
        return heap_pop(q);
    }
    coil__panic(__FILE__, __LINE__, "bad queue kind");
}

/* ------------------------------------------------------------------ lifetime */

/* Frees the item, priority and sequence arrays (any may be NULL). */
static void free_storage(coil_queue *q) {
    free(q->items);
    free(q->prio);
    free(q->seq);
    q->items = NULL;
    q->prio = NULL;
    q->seq = NULL;
}

int coil_queue_init(coil_queue *q, coil_queue_kind kind, size_t capacity) {
    if (capacity == 0) return -EINVAL;
    if (kind != COIL_QUEUE_FIFO && kind != COIL_QUEUE_LIFO && kind != COIL_QUEUE_PRIORITY)
        return -EINVAL;
    q->items = calloc(capacity, sizeof *q->items);
    q->prio = NULL;
    q->seq = NULL;
    if (!q->items) goto fail;
    if (kind == COIL_QUEUE_PRIORITY) {
        q->prio = calloc(capacity, sizeof *q->prio);
        q->seq = calloc(capacity, sizeof *q->seq);
        if (!q->prio || !q->seq) goto fail;
    }
    q->next_seq = 0;
    q->cap = capacity;
    q->len = 0;
    q->head = 0;
    q->kind = kind;
    q->closed = false;
    coil__list_init(&q->getters);
    coil__list_init(&q->putters);
    return 0;
fail:
    free_storage(q);
    return -ENOMEM;
}

void coil_queue_destroy(coil_queue *q) {
    /* The struct must outlive its waiters. */
    COIL_ASSERT(coil__list_empty(&q->getters) && coil__list_empty(&q->putters));
    free_storage(q);
    q->cap = q->len = 0;
}

void coil_queue_close(coil_queue *q) {
    q->closed = true;
    /* Parked getters mean the queue is empty: nothing is left to drain.
     * Parked putters keep their items. */
    coil__wake_all(&q->getters, -EPIPE);
    coil__wake_all(&q->putters, -EPIPE);
}

size_t coil_queue_len(const coil_queue *q) { return q->len; }

/* ------------------------------------------------------------------ put */

/* The pending interruption of the calling task, which must be a task. */
static inline int checkpoint(void) {
    coil_task *t = coil__running();
    COIL_ASSERT(t != NULL);
    if (COIL_LIKELY(!t->scope && !t->cancelled)) return 0;
    return coil__pending_cancel(t);
}

/* The deadline `timeout` ns from now, without overflow. */
static coil_time deadline_after(coil_time timeout) {
    if (timeout == COIL_NEVER) return COIL_NEVER;
    coil_time now = coil_now();
    if (timeout <= 0) return now;
    return timeout >= COIL_NEVER - now ? COIL_NEVER : now + timeout;
}

/* Puts without waiting. Returns 0, -EAGAIN when full, -EPIPE when closed. */
static inline int put_now(coil_queue *q, void *item, int64_t prio) {
    if (COIL_UNLIKELY(q->closed)) return -EPIPE;
    if (COIL_UNLIKELY(!coil__list_empty(&q->getters))) {
        coil__wake_one(&q->getters, item, 0);
        return 0;
    }
    if (q->len == q->cap) return -EAGAIN;
    push(q, item, prio);
    return 0;
}

/* Parks until a get moves the item in, the queue closes, or the task is
 * interrupted (`timeout` ns counted from now also interrupts). Suspends. */
static int put_wait(coil_queue *q, void *item, int64_t prio, coil_time timeout) {
    put_waiter pw = {.item = item, .prio = prio};
    if (timeout == COIL_NEVER) return coil__wait_on(&q->putters, &pw.w);
    coil_scope s;
    coil_scope_enter(&s, deadline_after(timeout));
    int err = coil__wait_on(&q->putters, &pw.w);
    coil_scope_exit(&s);
    return err;
}

static inline int put(coil_queue *q, void *item, int64_t prio, coil_time timeout) {
    int err = checkpoint();
    if (err) return err;
    err = put_now(q, item, prio);
    if (COIL_LIKELY(err != -EAGAIN)) return err;
    return put_wait(q, item, prio, timeout);
}

int coil_queue_put(coil_queue *q, void *item) { return put(q, item, 0, COIL_NEVER); }

int coil_queue_put_prio(coil_queue *q, void *item, int64_t priority) {
    return put(q, item, priority, COIL_NEVER);
}

int coil_queue_put_timeout(coil_queue *q, void *item, coil_time timeout) {
    return put(q, item, 0, timeout);
}

int coil_queue_try_put(coil_queue *q, void *item) { return put_now(q, item, 0); }

int coil_queue_try_put_prio(coil_queue *q, void *item, int64_t priority) {
    return put_now(q, item, priority);
}

/* ------------------------------------------------------------------ get */

/* A slot just came free: moves the first parked putter's item in. */
static void admit_putter(coil_queue *q) {
    coil__list *n = coil__list_pop_front(&q->putters);
    if (!n) return;
    put_waiter *pw = COIL_CONTAINER_OF(n, put_waiter, w.link);
    push(q, pw->item, pw->prio);
    coil__wake(pw->w.task, 0);
}

/* Gets without waiting. Returns 0, -EAGAIN when empty, -EPIPE when closed
 * and empty. */
static inline int get_now(coil_queue *q, void **item) {
    if (COIL_LIKELY(q->len > 0)) {
        *item = pop(q);
        if (COIL_UNLIKELY(!coil__list_empty(&q->putters))) admit_putter(q);
        return 0;
    }
    return q->closed ? -EPIPE : -EAGAIN;
}

/* Parks until a put hands over an item, the queue closes, or the task is
 * interrupted (`timeout` ns counted from now also interrupts). Suspends. */
static int get_wait(coil_queue *q, void **item, coil_time timeout) {
    coil__waiter w;
    int err;
    if (timeout == COIL_NEVER) {
        err = coil__wait_on(&q->getters, &w);
    } else {
        coil_scope s;
        coil_scope_enter(&s, deadline_after(timeout));
        err = coil__wait_on(&q->getters, &w);
        coil_scope_exit(&s);
    }
    /* A getter woken with 0 owns the item, even if the deadline fired
     * after the hand-over: dropping it here would lose it. */
    if (err == 0) *item = w.value;
    return err;
}

static inline int get(coil_queue *q, void **item, coil_time timeout) {
    int err = checkpoint();
    if (err) return err;
    err = get_now(q, item);
    if (COIL_LIKELY(err != -EAGAIN)) return err;
    return get_wait(q, item, timeout);
}

int coil_queue_get(coil_queue *q, void **item) { return get(q, item, COIL_NEVER); }

int coil_queue_get_timeout(coil_queue *q, void **item, coil_time timeout) {
    return get(q, item, timeout);
}

int coil_queue_try_get(coil_queue *q, void **item) { return get_now(q, item); }
