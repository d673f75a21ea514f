/* say_after: the asyncio tutorial's say_after(), twice at once, and the two
 * ways to run a loop.
 *
 *     ./say_after [SCALE]        (default 1: delays of 1 s and 2 s)
 *
 * 1. run_until_complete: coil_run(main) drives a loop until main returns.
 *    main starts say_after(1 s, "hello") and say_after(2 s, "world") as two
 *    tasks and joins them: both sleeps overlap, so it takes 2 s, not 3 s.
 *    (Calling say_after() directly, one after the other, takes 3 s: there
 *    is no hidden concurrency, only tasks.)
 * 2. run_forever: coil_loop_thread_start() starts a loop on a thread of its
 *    own, which runs until it is stopped; plain code hands it work with
 *    coil_call_sync() (run_coroutine_threadsafe(...).result()), as often as
 *    it likes, then stops it with coil_loop_thread_stop().
 *
 * SCALE divides the delays (the tests run it with 10).
 */
#include <coil/coil.h>
#include <stdio.h>
#include <stdlib.h>

static int scale = 1;

typedef struct say {
    int ms;
    const char *what;
} say;

static coil_result say_after(void *arg) {
    say *s = arg;
    int err = coil_sleep(COIL_MSEC(s->ms / scale));
    if (err) return coil_fail(err);
    printf("%s\n", s->what);
    return coil_ok(NULL);
}

static long long ms_since(coil_time t0) { return (long long)((coil_now() - t0) / COIL_MSEC(1)); }

static coil_result main_task(void *arg) {
    (void)arg;
    say hello = {1000, "hello"}, world = {2000, "world"};
    coil_time t0 = coil_now();
    say_after(&hello); /* awaited in turn: 1 s, then 2 s */
    say_after(&world);
    printf("one after the other: %lld ms\n", ms_since(t0) * scale);
    t0 = coil_now();
    coil_task *a = coil_spawn(say_after, &hello); /* create_task() twice */
    coil_task *b = coil_spawn(say_after, &world);
    coil_join(a, NULL);
    coil_join(b, NULL);
    printf("as two tasks: %lld ms\n", ms_since(t0) * scale);
    return coil_ok(NULL);
}

int main(int argc, char **argv) {
    if (argc > 1) scale = atoi(argv[1]) > 0 ? atoi(argv[1]) : 1;
    /* 1. run_until_complete(main()) */
    if (coil_run(main_task, NULL, NULL) != 0) return 1;
    /* 2. run_forever(), in a thread, and work handed to it */
    coil_loop *loop = coil_loop_thread_start();
    if (!loop) return 1;
    say again = {500, "hello again, from the loop that runs until stopped"};
    for (int i = 0; i < 2; i++) coil_call_sync(loop, say_after, &again, NULL);
    coil_loop_thread_stop(loop);
    printf("the loop thread stopped\n");
    return 0;
}
