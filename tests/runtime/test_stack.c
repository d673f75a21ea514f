/* tests/runtime/test_stack.c: stack guard pages, the slab design at scale,
 * custom stack sizes. */
#include "test.h"

#include "runtime/internal.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------------ guard page */

static char altstack[64 * 1024];

/* Exits 42 if the fault hit the guard page just below the running task's
 * stack: proof the overflow was caught by the guard, not by luck. */
static void on_segv(int sig, siginfo_t *si, void *ctx) {
    (void)sig;
    (void)ctx;
    coil_task *t = coil__running();
    char *addr = si->si_addr;
    long page = sysconf(_SC_PAGESIZE);
    if (t && t->stack.guarded && addr < t->stack.limit && addr >= t->stack.limit - page) _exit(42);
    _exit(43);
}

static volatile int depth_limit = 1 << 30; /* volatile: no provable infinity */

__attribute__((noinline)) static int recurse(int depth) {
    volatile char frame[512];
    frame[0] = (char)depth;
    if (depth >= depth_limit) return frame[0];
    return recurse(depth + 1) + frame[0];
}

static coil_result overflow(void *arg) {
    (void)arg;
    return coil_ok((void *)(intptr_t)recurse(0));
}

static coil_result overflow_main(void *arg) {
    (void)arg;
    coil_result r;
    coil_join(coil_spawn_named("deep", overflow, NULL), &r);
    return coil_ok(NULL);
}

/* Runs an overflowing task in a forked child; returns the child's status. */
static int overflow_in_child(const char *guard_mode) {
    fflush(NULL);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        if (guard_mode) setenv("COIL_STACK_GUARD", guard_mode, 1);
        stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack};
        sigaltstack(&ss, NULL);
        struct sigaction sa = {0};
        sa.sa_sigaction = on_segv;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigaction(SIGSEGV, &sa, NULL);
        sigaction(SIGBUS, &sa, NULL);
        coil_run(overflow_main, NULL, NULL);
        _exit(0);
    }
    int status;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    return status;
}

TEST(overflow_hits_guard_page) {
    int status = overflow_in_child(NULL);
    ASSERT(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 42);
}

TEST(overflow_hits_mprotect_guard) {
    int status = overflow_in_child("mprotect");
    ASSERT(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 42);
}

/* ------------------------------------------------------------------ scale */

enum { PARKED = 1000000 };

static size_t parked;

static coil_result park_on(void *arg) {
    parked++;
    int err = coil_future_wait(arg, NULL);
    return coil_fail(err);
}

static size_t count_maps(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    size_t n = 0;
    int c;
    while ((c = fgetc(f)) != EOF) n += c == '\n';
    fclose(f);
    return n;
}

static coil_result million_main(void *arg) {
    (void)arg;
    coil_future f;
    coil_future_init(&f);
    coil_task **tasks = malloc(PARKED * sizeof *tasks);
    ASSERT(tasks != NULL);
    for (size_t i = 0; i < PARKED; i++) {
        tasks[i] = coil_spawn(park_on, &f);
        ASSERT(tasks[i] != NULL);
    }
    ASSERT_EQ(coil_yield(), 0); /* every task runs and parks */
    ASSERT_EQ(parked, PARKED);
    /* Far below vm.max_map_count (65530): stacks share slab mappings. */
    size_t maps = count_maps();
    printf("mappings with %d tasks parked: %zu\n", PARKED, maps);
    ASSERT(maps < 10000);
    /* Every one of them has a guard page. */
    ASSERT(coil__task_of(tasks[0])->stack.guarded &&
           coil__task_of(tasks[PARKED - 1])->stack.guarded);
    ASSERT_EQ(coil_future_reject(&f, -EPIPE), 0);
    for (size_t i = 0; i < PARKED; i++) {
        coil_result r;
        ASSERT_EQ(coil_join(tasks[i], &r), 0);
        ASSERT_EQ(r.err, -EPIPE);
    }
    free(tasks);
    return coil_ok(NULL);
}

TEST(million_parked_tasks) {
    /* Small stacks keep the sanitizer builds' memory in check; the stack
     * size does not change the design being tested. */
    setenv("COIL_STACK_SIZE", "32768", 1);
    parked = 0;
    RUN_MAIN(million_main, NULL);
}

/* ------------------------------------------------------------------ sizes */

static coil_result use_big_stack(void *arg) {
    (void)arg;
    volatile char big[512 * 1024];
    big[0] = 1;
    big[sizeof big - 1] = 2;
    return coil_ok((void *)(intptr_t)(big[0] + big[sizeof big - 1]));
}

static coil_result custom_size_main(void *arg) {
    (void)arg;
    coil_spawn_opts opts = {.name = "big", .stack_size = 2 * 1024 * 1024};
    coil_task *t = coil_spawn_at(&opts, use_big_stack, NULL, __FILE__, __LINE__);
    ASSERT(t != NULL);
    ASSERT_GE(coil__task_of(t)->stack.top - coil__task_of(t)->stack.limit, 2 * 1024 * 1024);
    coil_result r;
    ASSERT_EQ(coil_join(t, &r), 0);
    ASSERT_EQ((intptr_t)r.value, 3);
    return coil_ok(NULL);
}

TEST(custom_stack_size) { RUN_MAIN(custom_size_main, NULL); }

static coil_result trivial(void *arg) { return coil_ok(arg); }

static coil_result reuse_main(void *arg) {
    (void)arg;
    /* Stacks are pooled: sequential tasks keep getting the same hot stack. */
    coil_task *t = coil_spawn(trivial, NULL);
    char *limit = coil__task_of(t)->stack.limit;
    ASSERT_EQ(coil_join(t, NULL), 0);
    for (int i = 0; i < 1000; i++) {
        t = coil_spawn(trivial, NULL);
        ASSERT(coil__task_of(t)->stack.limit == limit);
        ASSERT_EQ(coil_join(t, NULL), 0);
    }
    return coil_ok(NULL);
}

TEST(stacks_are_pooled) { RUN_MAIN(reuse_main, NULL); }
