/* jobs/pool/pool_proc.c: starting and reaping a worker process, with pidfds.
 *
 * The operating-system half of a slot, with no loop in it: pool_slot.c
 * runs coil__proc_spawn() on a thread of the thread pool, so the loop never
 * waits for a fork or an exec, and watches the pidfd from the loop.
 *
 * Spawning is posix_spawn(), which glibc implements with a vfork-style
 * clone: no copy of the supervisor's page tables, whatever its size, and
 * only async-signal-safe steps in the child, in this order:
 *
 *   fd 0       /dev/null
 *   fd 1       the supervisor's fd 2: a handler's printf must not mix into
 *              what the server writes on its stdout
 *   fd 3       the worker's end of the socketpair
 *   fd 4 and up  closed, whatever the program left without FD_CLOEXEC
 *   signals    every disposition back to the default, an empty mask
 *
 * A pidfd names the process itself, not a number that may be reused: it
 * becomes readable when the process exits (no SIGCHLD handler, which a
 * program or a sanitizer's runtime could disturb), waitid(P_PIDFD) reaps
 * exactly that child, and pidfd_send_signal() can never hit another
 * process, even after the reap. The child cannot be reaped by anyone else
 * between posix_spawn() and pidfd_open() (it stays a zombie until its
 * parent waits), so the pidfd always names it.
 */
#include "jobs/pool/pool.h"
#include "jobs/pool/worker.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

enum { WORKER_FD = 3 }; /* the socket's number in the worker */

/* Fills the file actions and attributes described above. */
static int prepare(posix_spawn_file_actions_t *fa, posix_spawnattr_t *at, int child_fd) {
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    int e = posix_spawn_file_actions_addopen(fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    if (!e) e = posix_spawn_file_actions_adddup2(fa, STDERR_FILENO, STDOUT_FILENO);
    if (!e) e = posix_spawn_file_actions_adddup2(fa, child_fd, WORKER_FD);
    if (!e) e = posix_spawn_file_actions_addclosefrom_np(fa, WORKER_FD + 1);
    if (!e) e = posix_spawnattr_setsigdefault(at, &all);
    if (!e) e = posix_spawnattr_setsigmask(at, &none);
    if (!e) e = posix_spawnattr_setflags(at, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    return -e;
}

int coil__proc_spawn(const coil_pool *p, int child_fd, int *pid, int *pidfd) {
    /* dup2 onto itself would keep FD_CLOEXEC: move the socket off fd 3. */
    int moved = -1;
    if (child_fd == WORKER_FD) {
        moved = fcntl(child_fd, F_DUPFD_CLOEXEC, WORKER_FD + 1);
        if (moved < 0) return -errno;
        child_fd = moved;
    }
    char fd_arg[] = {'0' + WORKER_FD, '\0'};
    char *argv[] = {(char *)p->exe, COIL__WORKER_FLAG, fd_arg, (char *)p->nice_arg,
                    (char *)p->ppid_arg, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    int err = -posix_spawn_file_actions_init(&fa);
    if (err) goto out;
    err = -posix_spawnattr_init(&at);
    if (err) goto out_fa;
    err = prepare(&fa, &at, child_fd);
    pid_t child = 0;
    if (!err) err = -posix_spawn(&child, "/proc/self/exe", &fa, &at, argv, environ);
    if (!err) {
        *pid = (int)child;
        *pidfd = pidfd_open(child, 0);
        if (*pidfd < 0) { /* out of fds: the child must not outlive this */
            err = -errno;
            kill(child, SIGKILL);
            waitpid(child, NULL, 0);
        }
    }
    posix_spawnattr_destroy(&at);
out_fa:
    posix_spawn_file_actions_destroy(&fa);
out:
    if (moved >= 0) close(moved);
    return err;
}

int coil__proc_reap(int pidfd, bool wait, int64_t *exit_status, int *term_signal) {
    siginfo_t si = {0};
    int r;
    do r = waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED | (wait ? 0 : WNOHANG));
    while (r != 0 && errno == EINTR);
    if (r != 0) return -errno; /* ECHILD: reaped by someone else */
    if (si.si_pid == 0) return 0;
    if (si.si_code == CLD_EXITED) {
        *exit_status = si.si_status;
        *term_signal = 0;
    } else { /* CLD_KILLED, CLD_DUMPED */
        *exit_status = 0;
        *term_signal = si.si_status;
    }
    return 1;
}

int coil__proc_signal(int pidfd, int sig) {
    return pidfd_send_signal(pidfd, sig, NULL, 0) == 0 ? 0 : -errno;
}
