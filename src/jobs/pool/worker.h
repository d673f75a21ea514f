/* jobs/pool/worker.h: the worker side of the process pool, and what the
 * supervisor shares with it (internal to libcoil).
 *
 *   worker_registry.c  the kinds and their handlers, known to every process
 *                      of the program because they are registered before
 *                      main() decides whether it is a worker.
 *   worker.c           a worker process: the frame loop, the handler's
 *                      context (result, progress, cancellation), the signal
 *                      handlers that keep a crash's signal visible.
 *   worker_await.c     a worker that runs awaiting kinds: a coil loop, a task
 *                      per job, a task reading the supervisor's frames.
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

#include "coil/io.h"
#include "coil/jobs.h"
#include "jobs/pool/frame.h"
#include "runtime/internal.h"

#include <stdint.h>
#include <sys/resource.h>

/* argv[1] of a worker process. */
#define COIL__WORKER_FLAG "--coil-worker"

/* ------------------------------------------------------------------ registry */

/* The handler of the `len` bytes at `kind`, or NULL. Any process. */
coil_job_fn coil__job_lookup(const char *kind, size_t len);
/* 0 for a plain kind (or none), else how many jobs of this awaiting kind
 * one worker runs at once. Any process. */
unsigned coil__job_awaiting(const char *kind, size_t len);
/* The concurrency of every awaiting kind, summed (at most
 * COIL_JOB_CONCURRENCY_MAX): the places they have in one worker. */
size_t coil__job_awaiting_places(void);
/* Refuses later registrations (-EBUSY): called when a pool starts. */
void coil__job_registry_freeze(void);

/* ------------------------------------------------------------------ worker.c */

/* A job's context. A plain job's lives on run_job's stack; an awaiting
 * job's in its worker_await.c record, with `stream` set. */
struct coil_job_ctx {
    int fd;                /* the socket to the supervisor */
    uint64_t id;           /* the job's id, echoed in every frame */
    bool cancelled;        /* a CANCEL for this job arrived */
    bool gone;             /* the supervisor closed the socket or broke the
                              protocol: exit after this job */
    uint8_t *result;       /* coil_job_set_result's copy (malloc'd) */
    size_t result_len;
    char ctype[COIL_JOB_CONTENT_TYPE_MAX + 1]; /* its content type */
    char error[COIL_JOB_MESSAGE_MAX + 1];      /* coil_job_set_error's message */
    char label[COIL__FRAME_LABEL_MAX + 1];     /* the job's id in the store */
    unsigned attempt;
    coil_stream *stream;   /* awaiting: frames go out through the loop */
    char kind[COIL_JOB_KIND_MAX + 1]; /* awaiting: the job's kind */
};

/* The kind of the plain job running now ("" between jobs), for the crash
 * line a signal handler writes. */
extern char coil__running_kind[COIL_JOB_KIND_MAX + 1];

/* Sends a frame about ctx's job whose payload is the `n` buffers at
 * iov[1..n] (iov[0] is the header's). Plain: blocks while the socket is
 * full. Awaiting: suspends, shielded. Returns 0 or -errno. */
int coil__worker_send(coil_job_ctx *ctx, coil__frame_type type, struct iovec *iov, int n);
/* Sends ctx's RESULT: `status` and what the handler set. */
int coil__worker_send_result(coil_job_ctx *ctx, int status);
/* Runs the rest of a worker's life on a loop, beginning with the awaiting
 * job of the RUN frame `payload` (`len` bytes, malloc'd, taken). Returns
 * the exit status, as coil__worker_main. */
int coil__worker_await(int fd, uint64_t id, uint8_t *payload, size_t len);

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
