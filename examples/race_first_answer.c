/* race_first_answer: ask several resolvers the same question and take the
 * first answer (asyncio.wait(FIRST_COMPLETED) plus cancelling the rest).
 *
 * Each resolver is simulated by a sleep of its own latency. coil_race() runs
 * them all at once; the first to SUCCEED wins, and the others are cancelled:
 * their coil_sleep() returns -ECANCELED at once and they return. A failure
 * (the empty cache below) does not end the race; the others keep going.
 *
 * Round 2 wraps the whole race in a deadline scope of 50 ms: no resolver is
 * that fast, so the race is cut short with -ETIMEDOUT, and every resolver is
 * still cancelled and awaited before coil_race() returns: nothing is left
 * running behind the caller's back.
 */
#include <coil/coil.h>
#include <stdio.h>

typedef struct resolver {
    const char *name;
    int latency_ms; /* how long it takes to answer */
    const char *answer; /* NULL: it fails (nothing cached) */
} resolver;

static coil_time start;

static long elapsed_ms(void) { return (long)((coil_now() - start) / COIL_MSEC(1)); }

static coil_result resolve(void *arg) {
    resolver *r = arg;
    int err = coil_sleep(COIL_MSEC(r->latency_ms)); /* the "network" */
    if (err) {
        printf("  %-8s stopped at %3ld ms: %s\n", r->name, elapsed_ms(), coil_strerror(err));
        return coil_fail(err);
    }
    if (!r->answer) {
        printf("  %-8s failed  at %3ld ms: not cached\n", r->name, elapsed_ms());
        return coil_fail(-ENOENT);
    }
    printf("  %-8s answered at %3ld ms\n", r->name, elapsed_ms());
    return coil_ok((void *)r->answer);
}

/* One race over every resolver. Returns coil_race()'s result. */
static int race(resolver *rs, coil_call *calls, size_t n) {
    size_t winner;
    for (size_t i = 0; i < n; i++)
        calls[i] = (coil_call){.fn = resolve, .arg = &rs[i], .name = rs[i].name};
    start = coil_now();
    int err = coil_race(calls, n, &winner);
    if (err == 0)
        printf("winner: %s -> %s after %ld ms\n", rs[winner].name,
               (const char *)calls[winner].result.value, elapsed_ms());
    return err;
}

static coil_result race_main(void *arg) {
    resolver rs[] = {
        {"cache", 10, NULL},           /* fast, but has nothing */
        {"primary", 300, "10.0.0.1"},
        {"backup", 120, "10.0.0.2"},   /* should win */
        {"far-away", 2000, "10.9.9.9"},
    };
    enum { N = sizeof rs / sizeof rs[0] };
    coil_call calls[N];

    printf("round 1: first answer wins\n");
    if (race(rs, calls, N) != 0) return coil_fail(-EINVAL);

    printf("\nround 2: the same race inside a 50 ms deadline\n");
    coil_scope deadline;
    coil_scope_enter(&deadline, coil_now() + COIL_MSEC(50));
    int err = race(rs, calls, N); /* every wait inside sees the deadline */
    if (coil_scope_exit(&deadline) != -ETIMEDOUT) return coil_fail(-EINVAL);
    printf("coil_race returned %s: no answer within 50 ms;\n"
           "every resolver was cancelled and awaited by %ld ms\n",
           coil_err_name(err), elapsed_ms());
    return coil_ok(NULL);
}

int main(void) {
    coil_result r = {0};
    return coil_run(race_main, NULL, &r) == 0 && r.err == 0 ? 0 : 1;
}
