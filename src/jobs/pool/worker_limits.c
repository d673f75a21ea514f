/* jobs/pool/worker_limits.c: a job's resource limits, as soft rlimits.
 *
 * Limits belong to a process, and a worker runs many jobs, so a job's
 * limits are set just before its handler runs and put back just after.
 * Only soft limits change: an unprivileged process may lower its hard
 * limit but never raise it again, while it may move its soft limit
 * anywhere below the hard one. A job therefore never gets more than the
 * hard limits the worker inherited.
 *
 * Both limits are relative to where the worker stands when the job starts:
 *
 *   RLIMIT_AS counts every mapping of the process: libraries, the heap,
 *   and under sanitizers terabytes of reserved shadow memory. A job's
 *   budget is what it may add: the limit is set to the current size
 *   (/proc/self/statm) plus the budget.
 *   RLIMIT_CPU counts the CPU seconds of the whole process life, checked
 *   by the kernel at whole seconds. The limit is set to the seconds used
 *   so far, rounded up, plus the budget: the job gets at least the budget
 *   and less than one second more. Past the soft limit the kernel sends
 *   SIGXCPU, whose default action kills the worker.
 */
#include "jobs/pool/worker.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Bytes mapped by this process now, or 0 if unknown. */
static uint64_t mapped_bytes(void) {
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[64];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    unsigned long long pages = strtoull(buf, NULL, 10);
    long page = sysconf(_SC_PAGESIZE);
    return page > 0 ? pages * (uint64_t)page : 0;
}

/* CPU seconds used by this process so far, rounded up. */
static uint64_t cpu_seconds_used(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    uint64_t s = (uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec;
    uint64_t us = (uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec;
    return s + (us + 999999) / 1000000;
}

/* Sets the soft limit `res` to `base + extra` (capped at the hard limit),
 * saving the old one in *old. Returns 0 or -errno. */
static int lower(int res, uint64_t base, uint64_t extra, struct rlimit *old) {
    if (getrlimit(res, old) != 0) return -errno;
    uint64_t want = base > UINT64_MAX - extra ? UINT64_MAX : base + extra;
    struct rlimit rl = *old;
    if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max) want = rl.rlim_max;
    if (rl.rlim_cur != RLIM_INFINITY && want > rl.rlim_cur) want = rl.rlim_cur;
    rl.rlim_cur = (rlim_t)want;
    if (setrlimit(res, &rl) != 0) return -errno;
    return 0;
}

int coil__limits_apply(coil__limits *saved, uint64_t max_as, uint32_t cpu_seconds) {
    saved->as_set = saved->cpu_set = false;
    int err;
    if (max_as) {
        err = lower(RLIMIT_AS, mapped_bytes(), max_as, &saved->as_old);
        if (err) return err;
        saved->as_set = true;
    }
    if (cpu_seconds) {
        err = lower(RLIMIT_CPU, cpu_seconds_used(), cpu_seconds, &saved->cpu_old);
        if (err) goto undo;
        saved->cpu_set = true;
    }
    return 0;
undo:
    coil__limits_restore(saved);
    saved->as_set = false;
    return err;
}

void coil__limits_restore(const coil__limits *saved) {
    /* Raising a soft limit back up to where it was, below the unchanged
     * hard limit, is always allowed. */
    if (saved->as_set) setrlimit(RLIMIT_AS, &saved->as_old);
    if (saved->cpu_set) setrlimit(RLIMIT_CPU, &saved->cpu_old);
}
