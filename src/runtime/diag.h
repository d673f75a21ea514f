/* runtime/diag.h: what the diagnostics files share.
 *
 *   watchdog.c  the watchdog thread: a registry of loops, stall detection
 *               from each loop's heartbeat, backtraces of a stalled loop's
 *               thread taken with a signal, stall reports, SIGUSR1 dumps.
 *   metrics.c   per-loop figures: loop lag from a probe timer, stall counts,
 *               task counts, the thread pool; coil_loop_get_metrics().
 *   diag.c      coil_dump_tasks() and the busy-time figure it prints.
 *
 * Every registered loop owns one coil__diag (loop->diag). Its fields are
 * grouped by who may touch them, because three kinds of thread do: the
 * loop's own thread, the watchdog thread, and any thread reading metrics.
 */
#ifndef COIL_RUNTIME_DIAG_H
#define COIL_RUNTIME_DIAG_H

#include "runtime/internal.h"

#include <sys/types.h>

enum {
    COIL__LAG_PROBE_MS = 20,  /* the lag probe fires this often */
    COIL__LAG_RING = 1024,    /* probes kept: about 20 s of a healthy loop */
};

#define COIL__LAG_WINDOW_DEFAULT COIL_SEC(10)

/* One lag probe: when it fired and how late. */
typedef struct coil__lag_sample {
    coil_time at;  /* coil_now() when the probe ran */
    coil_time lag; /* how long after its due time */
} coil__lag_sample;

/* What the watchdog learned about one stall (watchdog thread only). */
typedef struct coil__stall {
    bool open;             /* counted, not yet over */
    bool reported;         /* its opening report was written */
    bool identified;       /* the fields below are known */
    coil_time start;       /* best estimate of when the slice began */
    coil_time seen_at;     /* the first sample that saw the slice */
    coil_time cpu_at_seen; /* the thread's CPU time then, -1 if unknown */
    uint64_t task_id;      /* the task holding the loop */
    char name[48];         /* its name, "" if unnamed */
    const char *spawn_file;
    int spawn_line;
} coil__stall;

typedef struct coil__diag {
    /* Fixed at registration. */
    coil_loop *loop;          /* the loop this belongs to */
    uint64_t id;              /* 1, 2, ... in registration order */
    pthread_t thread;         /* the loop's thread (registration runs on it) */
    pid_t tid;                /* the same thread's kernel id, for reports */
    void *altstack;           /* signal stack we installed, or NULL */
    clockid_t cpu_clock;      /* the thread's CPU-time clock */
    bool have_cpu_clock;      /* cpu_clock is usable */

    /* Registry: under the watchdog's lock. */
    coil__list link;          /* in the watchdog's list of loops */

    /* Heartbeat sampling: watchdog thread only, under its lock. */
    uint64_t last_beat;       /* loop->beat at the last sample */
    const void *last_running; /* loop->running at the last sample */
    coil_time sampled_at;     /* when that sample was taken */
    coil_time prev_sample;    /* the sample before the current slice was seen */
    coil_time first_seen;     /* the first sample that saw the current slice */
    coil_time slice_start;    /* loop->slice_start read then (0: unknown) */
    coil_time cpu_first;      /* the thread's CPU time then, -1 if unknown */
    coil__stall stall;        /* the stall in progress, if any */

    /* Stall figures: written by the watchdog, read by any thread. */
    _Atomic uint64_t stalls;          /* stalls longer than the threshold */
    _Atomic coil_time longest_stall;  /* longest finished stall */
    _Atomic coil_time stall_since;    /* start of the open stall, 0 if none */

    /* Lag probe: the timer and the due time belong to the loop's thread;
     * the ring is read by any thread under lag_lock. */
    uv_timer_t probe;                 /* unreferenced: never keeps the loop alive */
    _Atomic coil_time probe_due;      /* when the pending probe should fire */
    pthread_mutex_t lag_lock;         /* guards ring, ring_head, ring_len */
    size_t ring_head, ring_len;       /* oldest sample, samples held */
    coil__lag_sample ring[COIL__LAG_RING];
    /* Task counts as of the last probe, for readers on other threads. */
    _Atomic size_t tasks_alive;
    _Atomic uint64_t tasks_spawned;
} coil__diag;

/* metrics.c: sets up and tears down the lag probe on the loop's thread. */
void coil__metrics_init(coil__diag *d);
/* Stops the probe and frees `d` once libuv has let go of it (the close
 * callback runs in the uv_run() of coil__loop_close). */
void coil__metrics_close(coil__diag *d);
/* Frees `d` without the uv loop's help, for a loop that will never run
 * again (abandoned when its thread exits). */
void coil__metrics_abandon(coil__diag *d);

/* diag.c: a task's busy time in ns (see loop.c for how it is measured). */
coil_time coil__task_busy(const coil_task *t);

/* watchdog.c: calls fn(d, arg) for every registered loop, under the
 * registry's lock (fn must not block or register). Returns how many. */
size_t coil__watchdog_each(void (*fn)(coil__diag *d, void *arg), void *arg);

/* diag.c: the name of a task state ("ready", "running", "parked", "done"),
 * and a task's busy time so far. */
const char *coil__task_state_name(uint8_t state);

#endif /* COIL_RUNTIME_DIAG_H */
