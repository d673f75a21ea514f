/* tests/faults/alloc_faults.h: allocation-failure injection, as curl's
 * torture tests and SQLite's OOM tests do it.
 *
 * A test file marked COIL_TEST_ALLOC_FAULTS is linked with alloc_faults.c
 * and with --wrap for malloc, calloc, realloc, strdup and strndup, so that
 * every allocation that coil's code (and the test's) makes goes through a
 * counter. Armed with N, the Nth allocation from then on fails (NULL,
 * errno ENOMEM), once. The libraries':
 *
 *   jansson, SQLite  through the counter too, once coil_faults_libraries()
 *                    has run (SQLite's through SQLITE_CONFIG_MALLOC)
 *   libcurl          only with COIL_FAULTS_CURL=1. Routing them found
 *                    coil's client waiting for ever on a multi handle that
 *                    had failed (CURLM_OUT_OF_MEMORY), now fixed; what is
 *                    left is libcurl's: after some of its allocations fail,
 *                    libcurl 7.88 divides by zero (SIGFPE inside
 *                    curl_multi_socket_action)
 *   libuv            not routed: libuv answers a failed allocation in its
 *                    core with abort() (growing its watcher array, making
 *                    its signal pipe), by design
 *
 * coil_faults_sweep() runs a scenario once to count its allocations, then
 * once for every N from 1 to that count (or an even subset of about
 * COIL_FAULTS_SUBSET of them, unless COIL_FAULTS_FULL=1: `make
 * test-faults`), each in a forked child with a time limit. A run passes if
 * the scenario returns 0 or a negative error and the child exits cleanly:
 * no crash, no sanitizer report (LeakSanitizer runs at its exit), no hang.
 * The sweep fails if any run does not, or if no run ended in -ENOMEM (the
 * injection would not be reaching anything).
 */
#ifndef COIL_TESTS_ALLOC_FAULTS_H
#define COIL_TESTS_ALLOC_FAULTS_H

#include <stddef.h>

enum { COIL_FAULTS_SUBSET = 120 };

/* Fails the `n`th allocation from now on (0: none, only count). */
void coil_faults_arm(long n);
/* Stops counting; returns the allocations counted since coil_faults_arm. */
long coil_faults_disarm(void);
/* Routes the libraries' allocations as above. Call in the scenario's
 * process before they allocate. */
void coil_faults_libraries(void);

typedef int (*coil_fault_scenario)(void *arg);

/* The sweep described above; prints one line of figures. Fails the test
 * on a bad run. */
void coil_faults_sweep(const char *name, coil_fault_scenario fn, void *arg);

/* The same, with `setup` (0, or an error that fails the test) run before
 * the count starts and `teardown` after it ends, in each child: the
 * failures then land only in `fn`, past a start-up whose own failures
 * would otherwise take most of the runs. */
typedef struct coil_fault_stages {
    int (*setup)(void *arg);
    coil_fault_scenario fn;
    void (*teardown)(void *arg);
} coil_fault_stages;
void coil_faults_sweep_stages(const char *name, const coil_fault_stages *st, void *arg);

/* Sends `req` on a new loopback connection to `port`, half-closes it, and
 * reads until the server closes it or 2 s pass without a byte. Returns the
 * first answer's status, 0 if none came, or -1 if it could not connect.
 * For scenarios that must not assert: any answer, or none, is fine. */
int coil_faults_exchange(int port, const char *req);

#endif
