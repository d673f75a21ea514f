/* tests/faults/alloc_faults.c: the counting allocator and the sweep
 * (alloc_faults.h). */
#include "faults/alloc_faults.h"
#include "test.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

enum { RUN_TIMEOUT_S = 20 }; /* a run that takes longer hangs */

static atomic_bool armed;
static atomic_long counted;
static long fail_at;

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);

/* The distinct call sites of the counting run (return addresses: every
 * SQLite or jansson allocation has one site, their allocator's), in an
 * open-addressed table that threads fill with compare-and-swap. */
enum { SITES_CAP = 8192 };
static _Atomic(uintptr_t) sites[SITES_CAP];
static atomic_long nsites;

static void note_site(void *site) {
    uintptr_t v = (uintptr_t)site;
    for (size_t i = (v >> 4) % SITES_CAP, k = 0; k < SITES_CAP; i = (i + 1) % SITES_CAP, k++) {
        uintptr_t seen = atomic_load_explicit(&sites[i], memory_order_relaxed);
        if (seen == v) return;
        if (seen == 0 && atomic_compare_exchange_strong(&sites[i], &seen, v)) {
            atomic_fetch_add(&nsites, 1);
            return;
        }
        if (seen == v) return; /* another thread put it there first */
    }
}

static bool fails_now(void *site) {
    if (!atomic_load_explicit(&armed, memory_order_relaxed)) return false;
    long n = atomic_fetch_add(&counted, 1) + 1;
    if (fail_at == 0) note_site(site);
    if (n != fail_at) return false;
    errno = ENOMEM;
    return true;
}

#define CALLER __builtin_return_address(0)
void *__wrap_malloc(size_t n) { return fails_now(CALLER) ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t size) {
    return fails_now(CALLER) ? NULL : __real_calloc(n, size);
}
void *__wrap_realloc(void *p, size_t n) { return fails_now(CALLER) ? NULL : __real_realloc(p, n); }
char *__wrap_strdup(const char *s) { return fails_now(CALLER) ? NULL : __real_strdup(s); }
char *__wrap_strndup(const char *s, size_t n) {
    return fails_now(CALLER) ? NULL : __real_strndup(s, n);
}

void coil_faults_arm(long n) {
    fail_at = n;
    atomic_store(&counted, 0);
    atomic_store(&armed, true);
}

long coil_faults_disarm(void) {
    atomic_store(&armed, false);
    return atomic_load(&counted);
}

static void *json_malloc(size_t n) { return __wrap_malloc(n); }

/* SQLite's allocator, over the counting one: a 16-byte header keeps each
 * block's size, which SQLite asks for. */
enum { SQ_HEADER = 16 };

static void *sq_malloc(int n) {
    size_t *p = __wrap_malloc((size_t)n + SQ_HEADER);
    if (!p) return NULL;
    p[0] = (size_t)n;
    return (char *)p + SQ_HEADER;
}

static void sq_free(void *p) {
    if (p) free((char *)p - SQ_HEADER);
}

static void *sq_realloc(void *p, int n) {
    size_t *q = __wrap_realloc(p ? (char *)p - SQ_HEADER : NULL, (size_t)n + SQ_HEADER);
    if (!q) return NULL;
    q[0] = (size_t)n;
    return (char *)q + SQ_HEADER;
}

static int sq_size(void *p) { return p ? (int)*(size_t *)((char *)p - SQ_HEADER) : 0; }
static int sq_roundup(int n) { return (n + 7) & ~7; }
static int sq_init(void *arg) { (void)arg; return SQLITE_OK; }
static void sq_shutdown(void *arg) { (void)arg; }

void coil_faults_libraries(void) {
    json_set_alloc_funcs(json_malloc, free);
    /* libcurl's, only when asked (alloc_faults.h). It takes its allocator
     * at its first global init, which coil's client would otherwise make. */
    const char *curl = getenv("COIL_FAULTS_CURL");
    if (curl && strcmp(curl, "1") == 0)
        curl_global_init_mem(CURL_GLOBAL_DEFAULT, __wrap_malloc, free, __wrap_realloc,
                             __wrap_strdup, __wrap_calloc);
    static const sqlite3_mem_methods mem = {sq_malloc, sq_free, sq_realloc, sq_size,
                                            sq_roundup, sq_init, sq_shutdown, NULL};
    sqlite3_config(SQLITE_CONFIG_MALLOC, &mem);
    sqlite3_initialize(); /* its own start-up, outside the count */
}

/* What a child reports through its pipe. */
typedef struct run_report {
    int result;   /* the scenario's return */
    long allocs;  /* allocations it made */
    long sites;   /* their distinct call sites (the counting run) */
} run_report;

/* Runs the scenario in a child, failing allocation `n` (0: none). Returns
 * true with *rep filled if the child exited 0 after reporting; else says
 * what happened. */
static bool run_child(const char *name, const coil_fault_stages *st, void *arg, long n,
                      run_report *rep) {
    int fds[2];
    if (pipe(fds) != 0) coil_test_fail(__FILE__, __LINE__, "pipe");
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) coil_test_fail(__FILE__, __LINE__, "fork");
    if (pid == 0) {
        close(fds[0]);
        alarm(RUN_TIMEOUT_S);
        coil_faults_libraries();
        if (st->setup && st->setup(arg) != 0) _exit(3); /* not a run: said below */
        coil_faults_arm(n);
        run_report r = {.result = st->fn(arg)};
        r.allocs = coil_faults_disarm();
        r.sites = atomic_load(&nsites);
        if (st->teardown) st->teardown(arg);
        ssize_t w = write(fds[1], &r, sizeof r);
        (void)w;
        close(fds[1]);
        exit(0); /* exit(), not _exit(): LeakSanitizer checks at exit */
    }
    close(fds[1]);
    ssize_t got = read(fds[0], rep, sizeof *rep);
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0) {
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && got == (ssize_t)sizeof *rep) return true;
    if (WIFSIGNALED(status))
        fprintf(stderr, "faults: %s: allocation %ld failed: killed by signal %d%s\n", name, n,
                WTERMSIG(status), WTERMSIG(status) == SIGALRM ? " (hung)" : "");
    else
        fprintf(stderr, "faults: %s: allocation %ld failed: exit status %d%s\n", name, n,
                WEXITSTATUS(status), got == (ssize_t)sizeof *rep ? "" : " before it reported");
    return false;
}

void coil_faults_sweep(const char *name, coil_fault_scenario fn, void *arg) {
    coil_fault_stages st = {.fn = fn};
    coil_faults_sweep_stages(name, &st, arg);
}

void coil_faults_sweep_stages(const char *name, const coil_fault_stages *st, void *arg) {
    const char *only = getenv("COIL_FAULTS_AT"); /* one run, in this process: debugging */
    if (only) {
        coil_faults_libraries();
        if (st->setup && st->setup(arg) != 0) coil_test_fail(__FILE__, __LINE__, "setup");
        coil_faults_arm(strtol(only, NULL, 10));
        int result = st->fn(arg);
        long allocs = coil_faults_disarm();
        if (st->teardown) st->teardown(arg);
        printf("faults: %s: allocation %s of %ld: %d\n", name, only, allocs, result);
        return;
    }
    run_report base;
    if (!run_child(name, st, arg, 0, &base) || base.result != 0)
        coil_test_fail(__FILE__, __LINE__, "%s: the run without a failure failed (%d)", name,
                       base.result);
    const char *full = getenv("COIL_FAULTS_FULL");
    long stride = full && strcmp(full, "1") == 0 ? 1 : base.allocs / COIL_FAULTS_SUBSET + 1;
    long runs = 0, nomem = 0, other = 0, bad = 0;
    for (long n = 1; n <= base.allocs; n += stride) {
        run_report r;
        runs++;
        if (!run_child(name, st, arg, n, &r)) bad++;
        else if (r.result == -ENOMEM) nomem++;
        else if (r.result != 0) other++;
    }
    printf("faults: %s: %ld allocations from %ld call sites, %ld runs (every %ld), %ld ended in "
           "-ENOMEM, %ld in another error, %ld went on without it, %ld bad\n",
           name, base.allocs, base.sites, runs, stride, nomem, other, runs - nomem - other - bad,
           bad);
    if (bad) coil_test_fail(__FILE__, __LINE__, "%s: %ld bad runs (above)", name, bad);
    if (!nomem) coil_test_fail(__FILE__, __LINE__, "%s: no run ended in -ENOMEM", name);
}

/* ------------------------------------------------------------------ a raw client */

int coil_faults_exchange(int port, const char *req) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    ssize_t sent = write(fd, req, strlen(req));
    (void)sent;
    shutdown(fd, SHUT_WR); /* the server answers, then sees the end */
    char buf[4096], head[16] = "";
    size_t got = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) /* keeps the first bytes: the status line */
        for (ssize_t i = 0; i < n && got < sizeof head - 1; i++) head[got++] = buf[i];
    close(fd);
    int status = 0;
    if (strncmp(head, "HTTP/1.", 7) == 0) status = atoi(head + 9);
    return status;
}
