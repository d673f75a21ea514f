/* ticker_offload: the loop never blocks, as long as CPU work is offloaded.
 *
 * A ticker task prints a tick every 100 ms. Meanwhile the main task counts
 * the primes below 6,000,000 by trial division: a second or two of pure CPU
 * work with no suspension point in it.
 *
 *  - By default the count runs through coil_to_thread(): a pool thread does
 *    the math and only the main task waits for it, suspended. The loop keeps
 *    running every other task, so the ticks keep coming, 100 ms apart.
 *  - With --inline the same function runs on the loop's own thread. No other
 *    task of the loop can run until it returns: the ticker stalls for the
 *    whole computation, and the watchdog reports the stall on stderr.
 */
#include <coil/coil.h>
#include <stdio.h>
#include <string.h>

enum { PRIME_LIMIT = 6000000, TICK_MS = 100 };

typedef struct ticker_stats {
    coil_time start; /* when the ticker started */
    coil_time last;  /* its latest tick */
    coil_time max_gap; /* longest time between two ticks */
    int ticks;
} ticker_stats;

static long ms_since(coil_time t) { return (long)((coil_now() - t) / COIL_MSEC(1)); }

/* Ticks every TICK_MS until cancelled. Ticks missed while the loop was
 * blocked are skipped, not fired in a burst. */
static coil_result ticker(void *arg) {
    ticker_stats *s = arg;
    s->start = s->last = coil_now();
    coil_time next = s->start;
    for (;;) {
        next += COIL_MSEC(TICK_MS);
        if (coil_sleep_until(next) == -ECANCELED) return coil_ok(NULL);
        coil_time now = coil_now(), gap = now - s->last;
        if (gap > s->max_gap) s->max_gap = gap;
        s->last = now;
        if (now > next) next = now;
        printf("  tick %2d at %5ld ms%s\n", ++s->ticks, ms_since(s->start),
               gap > COIL_MSEC(TICK_MS * 3 / 2) ? "   <- late: the loop was blocked" : "");
    }
}

/* Plain C with no suspension point: runs wherever it is called. noinline
 * keeps it a frame of its own, so the watchdog's backtrace can name it in
 * this optimised build. */
__attribute__((noinline)) static void *count_primes(void *arg) {
    unsigned long limit = *(unsigned long *)arg, count = 0;
    for (unsigned long n = 2; n < limit; n++) {
        bool prime = true;
        for (unsigned long d = 2; d * d <= n && prime; d++) prime = n % d != 0;
        count += prime;
    }
    *(unsigned long *)arg = count; /* the answer replaces the limit */
    return arg;
}

static coil_result ticker_main(void *arg) {
    bool inline_mode = *(bool *)arg;
    ticker_stats stats = {0};
    coil_task *t = coil_spawn_named("ticker", ticker, &stats);
    if (!t) return coil_fail(-errno);
    coil_sleep(COIL_MSEC(250)); /* a few ticks before the work starts */

    printf("counting primes below %d %s...\n", PRIME_LIMIT,
           inline_mode ? "INLINE, on the loop thread" : "on a pool thread (coil_to_thread)");
    unsigned long n = PRIME_LIMIT;
    coil_time t0 = coil_now();
    int ticks0 = stats.ticks;
    stats.max_gap = 0;
    int err = 0;
    if (inline_mode) count_primes(&n); /* blocks the loop: do not do this */
    else err = coil_to_thread(count_primes, &n, NULL); /* suspends main only */
    if (!err) {
        printf("found %lu primes in %ld ms; %d ticks meanwhile\n", n, ms_since(t0),
               stats.ticks - ticks0);
        coil_sleep(COIL_MSEC(250)); /* let the ticker catch up, if it must */
    }
    coil_cancel(t); /* every task we spawn is stopped and joined */
    coil_join(t, NULL);
    if (err) return coil_fail(err);

    printf("\nlongest gap between ticks: %ld ms (expected: %d ms)\n",
           (long)(stats.max_gap / COIL_MSEC(1)), TICK_MS);
    if (inline_mode)
        printf("=> the ticker stalled: CPU work on the loop thread stops every task of the\n"
               "   loop (timers, I/O, requests) until it returns. Offload it instead.\n"
               "   coil's watchdog noticed too: its \"stall\" lines on stderr name the task\n"
               "   that held the loop, and for how long.\n");
    else
        printf("=> the ticker never stopped: the loop stayed free while a pool thread did\n"
               "   the work. Run with --inline to see the same work stall the ticker.\n");
    return coil_ok(NULL);
}

int main(int argc, char **argv) {
    bool inline_mode = argc > 1 && strcmp(argv[1], "--inline") == 0;
    printf("A ticker task prints every %d ms while the main task does CPU-heavy work.\n",
           TICK_MS);
    coil_result r = {0};
    int err = coil_run(ticker_main, &inline_mode, &r);
    if (err || r.err) fprintf(stderr, "error: %s\n", coil_strerror(err ? err : r.err));
    return err || r.err ? 1 : 0;
}
