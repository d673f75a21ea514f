/* tests/runner.c: runs the TESTs registered in one test executable.
 *
 *   test_x                 run every test, each in a forked child
 *   test_x NAME...         run these, forked
 *   test_x --in-process N  run one in this process (gdb, valgrind)
 *   test_x --list          list the tests
 *
 * A child that exits 0 passed; one that exits 77 skipped (a component it
 * needs is not installed, and it said which); anything else (a failed
 * ASSERT, a signal, a sanitizer report, the timeout: COIL_TEST_TIMEOUT
 * seconds, default 120) failed. The last line is "N passed, N failed, N
 * skipped"; the exit status is 1 if any failed, 77 if all were skipped.
 */
#include "test.h"

#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { MAX_TESTS = 512 };

static struct {
    const char *name;
    coil_test_fn fn;
} tests[MAX_TESTS];
static int ntests;

void coil_test_register(const char *name, coil_test_fn fn) {
    if (ntests == MAX_TESTS) {
        fprintf(stderr, "too many tests\n");
        exit(2);
    }
    tests[ntests].name = name;
    tests[ntests].fn = fn;
    ntests++;
}

static int saved_stderr = -1;

void coil_test_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    if (saved_stderr >= 0) { /* a capture is active: fail visibly */
        fflush(stderr);
        dup2(saved_stderr, 2);
    }
    va_start(ap, fmt);
    fprintf(stderr, "FAILED at %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    fflush(stderr);
    _exit(1);
}

static int capture_fd = -1;
static char capture_path[64];

char *coil_test_capture_stderr_begin(void) {
    fflush(stderr);
    snprintf(capture_path, sizeof capture_path, "/tmp/coil-test-stderr-XXXXXX");
    capture_fd = mkstemp(capture_path);
    if (capture_fd < 0) coil_test_fail(__FILE__, __LINE__, "mkstemp");
    unlink(capture_path);
    saved_stderr = dup(2);
    dup2(capture_fd, 2);
    return NULL;
}

char *coil_test_capture_stderr_end(void) {
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    saved_stderr = -1;
    off_t len = lseek(capture_fd, 0, SEEK_END);
    char *buf = malloc((size_t)len + 1);
    if (!buf) coil_test_fail(__FILE__, __LINE__, "malloc");
    ssize_t got = pread(capture_fd, buf, (size_t)len, 0);
    buf[got > 0 ? got : 0] = '\0';
    close(capture_fd);
    /* Show what was captured too, so failures are debuggable. */
    fputs(buf, stderr);
    return buf;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int find(const char *name) {
    for (int i = 0; i < ntests; i++)
        if (strcmp(tests[i].name, name) == 0) return i;
    return -1;
}

/* A case that exits with this skips (a component the test needs is not
 * installed); ctest's SKIP_RETURN_CODE. */
enum { TEST_SKIPPED = 77 };

typedef enum { CASE_PASSED, CASE_FAILED, CASE_SKIPPED } case_result;

static case_result run_forked(int i, int timeout_s) {
    double start = now_ms();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return CASE_FAILED;
    }
    if (pid == 0) {
        alarm((unsigned)timeout_s);
        tests[i].fn();
        /* exit(), not _exit(): LeakSanitizer checks at exit in ASan builds. */
        exit(0);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
    }
    double ms = now_ms() - start;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        printf("ok   %s (%.0f ms)\n", tests[i].name, ms);
        return CASE_PASSED;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == TEST_SKIPPED) {
        printf("skip %s (%.0f ms)\n", tests[i].name, ms);
        return CASE_SKIPPED;
    }
    if (WIFSIGNALED(status))
        printf("FAIL %s: killed by signal %d%s (%.0f ms)\n", tests[i].name, WTERMSIG(status),
               WTERMSIG(status) == SIGALRM ? " (timeout)" : "", ms);
    else
        printf("FAIL %s: exit status %d (%.0f ms)\n", tests[i].name, WEXITSTATUS(status), ms);
    return CASE_FAILED;
}

int main(int argc, char **argv) {
    /* A process-pool worker exec'd from a test runs here and exits. */
    coil_worker_main_if_requested(argc, argv);
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *env = getenv("COIL_TEST_TIMEOUT");
    int timeout_s = env ? (int)strtol(env, NULL, 10) : 120;
    if (timeout_s <= 0) timeout_s = 120;
    if (argc > 1 && strcmp(argv[1], "--list") == 0) {
        for (int i = 0; i < ntests; i++) puts(tests[i].name);
        return 0;
    }
    if (argc > 2 && strcmp(argv[1], "--in-process") == 0) {
        int i = find(argv[2]);
        if (i < 0) {
            fprintf(stderr, "no test %s\n", argv[2]);
            return 2;
        }
        tests[i].fn();
        printf("ok   %s\n", tests[i].name);
        return 0;
    }
    int counts[3] = {0};
    if (argc > 1) {
        for (int a = 1; a < argc; a++) {
            int i = find(argv[a]);
            if (i < 0) {
                printf("FAIL %s: no such test\n", argv[a]);
                counts[CASE_FAILED]++;
                continue;
            }
            counts[run_forked(i, timeout_s)]++;
        }
    } else {
        for (int i = 0; i < ntests; i++) counts[run_forked(i, timeout_s)]++;
    }
    printf("%d passed, %d failed, %d skipped\n", counts[CASE_PASSED], counts[CASE_FAILED],
           counts[CASE_SKIPPED]);
    if (counts[CASE_FAILED]) return 1;
    return counts[CASE_SKIPPED] && !counts[CASE_PASSED] ? TEST_SKIPPED : 0;
}
