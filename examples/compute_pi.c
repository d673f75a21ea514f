/* compute_pi: digits of pi (the Chudnovsky series, with GMP's integers) on
 * the thread pool, while other tasks greet and a ticker ticks: the loop
 * keeps turning during a computation with no suspension point in it.
 *
 *     ./compute_pi [DIGITS]          (default 800, then a million)
 *
 * The seed's compute_pi(800) runs in a coroutine and the loop freezes for
 * its whole length; coil_to_thread() runs it on a pool thread and suspends
 * only the task that asked. The 800 digits are checked against known ones:
 * the start, and the six 9s that begin at the 762nd decimal (the Feynman
 * point). GMP makes 800 digits a matter of microseconds, so a million more
 * follow, long enough to count the ticks the loop made meanwhile.
 *
 * pkg-config: gmp
 */
#include <coil/coil.h>
#include <gmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ Chudnovsky */

/* Binary splitting of the series' terms a..b into P, Q and T. */
static void split(unsigned long a, unsigned long b, mpz_t P, mpz_t Q, mpz_t T) {
    if (b - a == 1) {
        if (a == 0) {
            mpz_set_ui(P, 1);
            mpz_set_ui(Q, 1);
        } else {
            mpz_set_ui(P, 6 * a - 5); /* (6a-5)(2a-1)(6a-1) */
            mpz_mul_ui(P, P, 2 * a - 1);
            mpz_mul_ui(P, P, 6 * a - 1);
            mpz_set_ui(Q, a); /* a^3 * 640320^3 / 24 */
            mpz_pow_ui(Q, Q, 3);
            mpz_mul_ui(Q, Q, 10939058860032000UL);
        }
        mpz_set_ui(T, 545140134);
        mpz_mul_ui(T, T, a);
        mpz_add_ui(T, T, 13591409);
        mpz_mul(T, T, P);
        if (a % 2) mpz_neg(T, T);
        return;
    }
    unsigned long m = (a + b) / 2;
    mpz_t P2, Q2, T2;
    mpz_inits(P2, Q2, T2, NULL);
    split(a, m, P, Q, T);
    split(m, b, P2, Q2, T2);
    mpz_mul(T, T, Q2); /* T = T1 Q2 + P1 T2 */
    mpz_addmul(T, P, T2);
    mpz_mul(P, P, P2);
    mpz_mul(Q, Q, Q2);
    mpz_clears(P2, Q2, T2, NULL);
}

/* On a pool thread: "3141..." (malloc'd), `digits` after the 3. */
static void *compute_pi(void *arg) {
    unsigned long digits = *(unsigned long *)arg;
    unsigned long terms = digits / 14 + 2; /* each term adds about 14.18 digits */
    mpz_t P, Q, T, one, root, pi;
    mpz_inits(P, Q, T, one, root, pi, NULL);
    split(0, terms, P, Q, T);
    mpz_ui_pow_ui(one, 10, digits + 10); /* 10 guard digits */
    mpz_mul(root, one, one);              /* sqrt(10005) * 10^(digits+10) */
    mpz_mul_ui(root, root, 10005);
    mpz_sqrt(root, root);
    mpz_mul(pi, Q, root); /* pi = 426880 sqrt(10005) Q / T */
    mpz_mul_ui(pi, pi, 426880);
    mpz_tdiv_q(pi, pi, T);
    char *s = mpz_get_str(NULL, 10, pi);
    s[digits + 1] = '\0'; /* drop the guard digits */
    mpz_clears(P, Q, T, one, root, pi, NULL);
    return s;
}

/* ------------------------------------------------------------------ the tasks */

static int ticks;

static coil_result ticker(void *arg) {
    (void)arg;
    while (coil_sleep(COIL_MSEC(5)) == 0) ticks++;
    return coil_ok(NULL);
}

static coil_result greet(void *arg) {
    int n = (int)(intptr_t)arg;
    coil_sleep(COIL_MSEC(n));
    printf("hello from task %d, while pi is computed\n", n);
    return coil_ok(NULL);
}

/* A million digits on the pool; the ticks the loop made meanwhile. */
static int ticks_during_a_million(void) {
    unsigned long digits = 1000000;
    int before = ticks;
    coil_time t0 = coil_now();
    void *pi = NULL;
    if (coil_to_thread(compute_pi, &digits, &pi) != 0) return -1;
    printf("a million digits in %lld ms, ending ...%s\n",
           (long long)((coil_now() - t0) / COIL_MSEC(1)), (char *)pi + 1000000 - 9);
    free(pi);
    return ticks - before;
}

static coil_result main_task(void *arg) {
    unsigned long digits = *(unsigned long *)arg;
    coil_task *tick = coil_spawn(ticker, NULL);
    coil_group g;
    coil_group_init(&g);
    for (intptr_t i = 1; i <= 3; i++) coil_group_spawn(&g, greet, (void *)i);
    void *result = NULL;
    coil_time t0 = coil_now();
    int err = coil_to_thread(compute_pi, &digits, &result); /* only this task waits */
    coil_time took = coil_now() - t0;
    coil_group_wait(&g);
    coil_group_destroy(&g);
    int during = err ? 0 : ticks_during_a_million();
    coil_cancel(tick);
    coil_join(tick, NULL);
    if (err) return coil_fail(err);
    char *pi = result;
    printf("pi = %.1s.%.50s... (%lu digits in %lld ms)\n", pi, pi + 1, digits,
           (long long)(took / COIL_MSEC(1)));
    printf("the ticker (every 5 ms) ticked %d times during the million\n", during);
    bool start_ok = strncmp(pi, "31415926535897932384626433832795028841971693993751", 50) == 0;
    bool feynman_ok = digits < 767 || strncmp(pi + 762, "999999", 6) == 0;
    printf("known digits: %s\n", start_ok && feynman_ok ? "match" : "DO NOT MATCH");
    free(pi);
    return start_ok && feynman_ok ? coil_ok(NULL) : coil_fail(-EIO);
}

int main(int argc, char **argv) {
    unsigned long digits = argc > 1 ? strtoul(argv[1], NULL, 10) : 800;
    if (digits < 50 || digits > 1000000) {
        fprintf(stderr, "compute_pi: 50 to 1000000 digits\n");
        return 2;
    }
    coil_result r;
    return coil_run(main_task, &digits, &r) == 0 && r.err == 0 ? 0 : 1;
}
