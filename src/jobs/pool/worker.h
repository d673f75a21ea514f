/* jobs/pool/worker.h: the worker side of the process pool, and what the
 * supervisor shares with it (internal to libcoil).
 *
 *   worker_registry.c  the kinds and their handlers, known to every process
 *                      of the program because they are registered before
 *                      main() decides whether it is a worker.
 *   worker.c           a worker process: the frame loop, the handler's
 *                      context (result, progress, cancellation), the signal
 *                      handlers that keep a crash's signal visible.
 *   worker_limits.c    per-job resource limits as soft rlimits.
 *
 * A worker is the running executable exec'd again with
 *
 *     argv[0] COIL__WORKER_FLAG FD NICE SUPERVISOR_PID
 *
 * FD is its end of the socketpair, NICE the niceness to take ("-" to keep
 * the inherited one), SUPERVISOR_PID the process that must stay its parent.
 */
#ifndef COIL_JOBS_WORKER_H
#define COIL_JOBS_WORKER_H

#include "coil/jobs.h"

#include <stdint.h>
#include <sys/resource.h>

/* argv[1] of a worker process. */
#define COIL__WORKER_FLAG "--coil-worker"

/* ------------------------------------------------------------------ registry */

/* The handler of the `len` bytes at `kind`, or NULL. Any process. */
coil_job_fn coil__job_lookup(const char *kind, size_t len);
/* Refuses later registrations (-EBUSY): called when a pool starts. */
void coil__job_registry_freeze(void);

/* ------------------------------------------------------------------ worker.c */

/* Runs a worker with the argv above until its supervisor closes the socket
 * (0) or breaks the protocol (2); argument errors give 2, a dead supervisor
 * 1. The caller exits with the value. */
int coil__worker_main(int argc, char **argv);

/* ------------------------------------------------------------------ limits */

/* The soft limits a job replaced, restored after it. */
typedef struct coil__limits {
    bool as_set;             /* RLIMIT_AS was lowered: as_old holds it */
    bool cpu_set;            /* RLIMIT_CPU was lowered: cpu_old holds it */
    struct rlimit as_old;    /* the limits before the job */
    struct rlimit cpu_old;
} coil__limits;

/* Lowers the soft limits for one job: the address space to what is mapped
 * now plus `max_as` bytes, and the CPU time to what was used so far plus
 * `cpu_seconds` (rounded up to the next whole second, as RLIMIT_CPU
 * counts). 0 leaves a limit alone; a hard limit is never exceeded. Returns
 * 0 or a negative errno (nothing is left changed then). */
int coil__limits_apply(coil__limits *saved, uint64_t max_as, uint32_t cpu_seconds);
/* Puts back what coil__limits_apply() changed. */
void coil__limits_restore(const coil__limits *saved);

/* command.c: in a worker, registers the command kinds of COIL_COMMAND_KINDS
 * (the supervisor's); and kills the running program's group (from a signal
 * handler: async-signal-safe). */
void coil__command_kinds_from_env(void);
void coil__command_group_kill(void);

#endif /* COIL_JOBS_WORKER_H */
