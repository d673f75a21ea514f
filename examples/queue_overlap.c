/* queue_overlap: the seed's producer/consumer, two producers and one
 * consumer on a queue, and why it finishes in the overlapped time.
 *
 * Each producer makes 5 items, 100 ms apart (500 ms of work each, both at
 * once); the consumer takes 50 ms an item (500 ms for all 10). Because
 * every wait suspends only its task, producing and consuming overlap: the
 * whole run takes a little over 500 ms, not 1000 (producers, then the
 * consumer) and not 1500 (everything in turn).
 *
 *     ./queue_overlap
 */
#include <coil/coil.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>

enum { PER_PRODUCER = 5 };

static coil_queue q;

static coil_result producer(void *arg) {
    intptr_t id = (intptr_t)arg;
    for (intptr_t i = 1; i <= PER_PRODUCER; i++) {
        int err = coil_sleep(COIL_MSEC(100)); /* await asyncio.sleep(0.1) */
        if (!err) err = coil_queue_put(&q, (void *)(id * 10 + i)); /* await q.put(item) */
        if (err) return coil_fail(err);
    }
    return coil_ok(NULL);
}

static coil_result consumer(void *arg) {
    int *handled = arg;
    void *item;
    while (coil_queue_get(&q, &item) == 0) { /* until the queue is closed and empty */
        coil_sleep(COIL_MSEC(50));
        printf("consumed %ld\n", (long)(intptr_t)item);
        (*handled)++;
    }
    return coil_ok(NULL);
}

static coil_result main_task(void *arg) {
    (void)arg;
    if (coil_queue_init(&q, COIL_QUEUE_FIFO, 8) != 0) return coil_fail(-ENOMEM);
    int handled = 0;
    coil_time t0 = coil_now();
    coil_task *c = coil_spawn(consumer, &handled);
    coil_task *p1 = coil_spawn(producer, (void *)1), *p2 = coil_spawn(producer, (void *)2);
    coil_join(p1, NULL);
    coil_join(p2, NULL);
    coil_queue_close(&q); /* the consumer drains what is left, then stops */
    coil_join(c, NULL);
    coil_queue_destroy(&q);
    printf("%d items in %lld ms (in turn: 1500 ms)\n", handled,
           (long long)((coil_now() - t0) / COIL_MSEC(1)));
    return coil_ok(NULL);
}

int main(void) { return coil_run(main_task, NULL, NULL) == 0 ? 0 : 1; }
