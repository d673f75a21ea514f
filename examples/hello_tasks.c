/* hello_tasks: three tasks sleep at the same time, so the whole program
 * takes as long as the slowest one (about 300 ms), not the sum (600 ms). */
#include <coil/coil.h>
#include <stdio.h>

static coil_result greet(void *arg) {
    int ms = *(int *)arg;
    coil_sleep(COIL_MSEC(ms)); /* suspends this task only; the others run */
    printf("hello from the task that slept %d ms\n", ms);
    return coil_ok(NULL);
}

static coil_result hello_main(void *arg) {
    static int ms[] = {300, 100, 200};
    coil_call calls[] = {{.fn = greet, .arg = &ms[0], .name = "slow"},
                         {.fn = greet, .arg = &ms[1], .name = "fast"},
                         {.fn = greet, .arg = &ms[2], .name = "medium"}};
    coil_time start = coil_now();
    int err = coil_gather(calls, 3); /* runs all three, waits for all */
    printf("all done in %lld ms\n", (long long)((coil_now() - start) / COIL_MSEC(1)));
    return err ? coil_fail(err) : coil_ok(NULL);
}

int main(void) {
    coil_result r = {0};
    return coil_run(hello_main, NULL, &r) == 0 && r.err == 0 ? 0 : 1;
}
