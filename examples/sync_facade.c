/* sync_facade: calling async code from a plain synchronous program.
 *
 * main() below is ordinary blocking C: no coil_run(), no tasks. It starts a
 * loop on a background thread with coil_loop_thread_start(), then calls
 * coil_call_sync(), which runs a function as a task on that loop and blocks
 * the calling thread until the task returns (asyncio's
 * run_coroutine_threadsafe(...).result()). Inside, the function is a normal
 * task: it may sleep, spawn, gather. The loop keeps its state between calls,
 * and coil_loop_thread_stop() shuts it down at the end.
 *
 * This is how a synchronous codebase adopts coil one function at a time.
 */
#include <coil/coil.h>
#include <stdio.h>

typedef struct lookup {
    const char *host; /* in */
    int latency_ms;   /* in: how long the simulated lookup takes */
} lookup;

static coil_result slow_lookup(void *arg) {
    lookup *l = arg;
    int err = coil_sleep(COIL_MSEC(l->latency_ms)); /* stands in for network I/O */
    return err ? coil_fail(err) : coil_ok(NULL);
}

/* Async code: looks up every host concurrently, so it takes as long as the
 * slowest lookup. Runs as a task on the loop thread. */
static coil_result lookup_all(void *arg) {
    lookup *hosts = arg;
    coil_call calls[3];
    for (int i = 0; i < 3; i++)
        calls[i] = (coil_call){.fn = slow_lookup, .arg = &hosts[i], .name = hosts[i].host};
    int err = coil_gather(calls, 3);
    return err ? coil_fail(err) : coil_ok((void *)"3 hosts resolved");
}

int main(void) {
    lookup hosts[] = {{"alpha", 100}, {"beta", 200}, {"gamma", 150}};

    coil_loop *loop = coil_loop_thread_start(); /* a loop on its own thread */
    if (!loop) {
        perror("coil_loop_thread_start");
        return 1;
    }
    for (int round = 1; round <= 2; round++) {
        coil_time t0 = coil_now();
        coil_result r = {0};
        /* Blocks this thread (not the loop) until lookup_all returns. */
        int err = coil_call_sync(loop, lookup_all, hosts, &r);
        if (err || r.err) {
            fprintf(stderr, "lookup failed: %s\n", coil_strerror(err ? err : r.err));
            coil_loop_thread_stop(loop);
            return 1;
        }
        printf("call %d: %s in %lld ms (the lookups overlapped: 100+200+150 ms of waiting)\n",
               round, (const char *)r.value, (long long)((coil_now() - t0) / COIL_MSEC(1)));
    }
    coil_loop_thread_stop(loop); /* cancels what is left, joins the thread */
    return 0;
}
