/* runtime/watchdog.c: the stall detector.
 *
 * One watchdog thread per process watches every loop. Loops register when
 * they open and unregister when they close; the thread starts with the
 * first loop and then stays, idle while nothing needs it.
 *
 * Heartbeat. A loop publishes two words as it runs tasks (loop.c):
 * `running`, the task on the CPU or NULL, and `beat`, bumped at every
 * resume. Both are plain atomic stores; the loop thread reads no clock for
 * them. The watchdog samples each loop every threshold/4. When two samples
 * see the same beat and the same non-NULL task, no resume happened in
 * between: that task has held the loop at least since the first of them.
 * The slice began somewhere between the previous sample and that one;
 * when the loop timed the resume (loop->slice_start, see loop.c) we know
 * exactly when. Once the slice is older than the threshold, it is a stall.
 *
 *      sample k-1        sample k         sample k+1 ... k+n
 *   ---- beat 41 -----|---- beat 42, task T ------------------|--> T parks
 *                     ^ first_seen        now - start >= threshold: report
 *
 * Report. A stall is counted (coil_loop_get_metrics) and, unless the rate
 * limit holds it back (a burst of REPORT_BURST, then one per
 * REPORT_REFILL_S seconds), reported: the watchdog signals the loop's
 * thread with STACK_SIGNAL, and the handler, running on that thread in the
 * middle of the stalled task, copies the task's identity (name, id, spawn
 * site) and unwinds its own stack with libunwind into a preallocated
 * buffer. Only the loop thread ever reads its tasks, so the watchdog never
 * dereferences `running`. The handler does no formatting, no allocation
 * and takes no lock of ours; it publishes through an atomic state word
 * that the watchdog polls. The watchdog then names the frames (libunwind
 * reads symbol tables, so static functions are named too; dladdr gives the
 * module) and writes the report with one write(2). While a stall is open
 * the watchdog samples every millisecond, and when the beat moves it
 * writes a second report with the total.
 *
 * The signal: a realtime signal installed only if nobody else handles it,
 * SA_RESTART, on an alternate signal stack (ours if the thread has none),
 * so a task near the end of its stack is safe. A blocking call that the
 * kernel cannot restart (nanosleep, poll, ...) returns EINTR in the stalled
 * task; that task is blocking the loop anyway. Risk left: libunwind, to
 * find unwind tables, walks the loaded objects under the dynamic loader's
 * lock; if the loop thread is interrupted while it holds that lock (inside
 * dlopen), the handler would wait for it forever. The watchdog then stops
 * asking for backtraces (capture_stuck) but that loop is lost.
 */
#define UNW_LOCAL_ONLY
#include "runtime/diag.h"

#include <dlfcn.h>
#include <libunwind.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

enum {
    DEFAULT_THRESHOLD_MS = 100,
    MAX_THRESHOLD_MS = 3600 * 1000,
    STALL_POLL_MS = 1,          /* sampling period while a stall is open */
    CAPTURE_WAIT_MS = 200,      /* how long the loop thread has to answer */
    CAPTURE_FINISH_MS = 2000,   /* to finish once it started answering */
    MAX_FRAMES = 48,
    REPORT_BURST = 5,           /* reports allowed in a burst */
    REPORT_REFILL_S = 10,       /* then one more per this many seconds */
    ALTSTACK_SIZE = 64 * 1024,
    REPORT_MAX = 8192,
};

#define STACK_SIGNAL (SIGRTMIN + 4)

/* ------------------------------------------------------------------ state */

/* What the loop thread's signal handler hands over. */
typedef struct capture_data {
    bool same_slice;           /* the loop was still in the requested slice */
    bool have_task;            /* a task was running: the next four are set */
    uint64_t task_id;          /* its id (coil_dump_tasks' #N) */
    char name[48];             /* its name, "" if never named */
    const char *spawn_file;    /* where it was spawned (a string literal) */
    int spawn_line;
    int nframes;               /* addresses in ips */
    int first;                 /* index of the interrupted frame */
    uintptr_t ips[MAX_FRAMES]; /* instruction pointers, innermost first */
} capture_data;

enum { CAP_IDLE, CAP_REQUESTED, CAP_CAPTURING, CAP_DONE };

/* The one capture in flight (the watchdog asks one loop at a time). */
static struct {
    _Atomic int state;                 /* CAP_*: the handshake */
    _Atomic(coil_loop *) loop;         /* whose thread must answer */
    _Atomic uint64_t beat;             /* the slice it must still be in */
    capture_data data;                 /* written by the handler only */
} cap;

static struct {
    pthread_mutex_t lock;      /* guards everything below but the atomics */
    coil__list loops;          /* registered loops (coil__diag.link) */
    uint64_t next_id;          /* last loop id given */
    bool started;              /* the thread runs */
    bool handler_ok;           /* STACK_SIGNAL is ours */
    bool capture_stuck;        /* a handler never finished: no more backtraces */
    bool usr1_on;              /* SIGUSR1 dumps are enabled */
    struct sigaction usr1_old; /* the action they replaced */
    double tokens;             /* rate limit: reports available */
    coil_time refilled_at;     /* when tokens was last brought up to date */
    uint64_t suppressed;       /* reports held back since the last one */
    char report[REPORT_MAX];   /* the report being built */
    size_t report_len;
    char last_open[REPORT_MAX]; /* the latest stall's opening report */
    size_t last_open_len;
    /* A capture (up to CAPTURE_WAIT_MS + CAPTURE_FINISH_MS) and its report
     * run without the lock, so that loops register and metrics are read
     * meanwhile; no loop is forgotten until it ends (forget waits). */
    coil__diag *capturing;     /* the loop whose report is being made */
    pthread_cond_t captured;   /* signalled when capturing goes back to NULL */
} wd = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .captured = PTHREAD_COND_INITIALIZER,
    .loops = {&wd.loops, &wd.loops},
};

static _Atomic int wake_fd = -1;             /* eventfd that wakes the thread */
static _Atomic coil_time threshold_ns = -1;  /* -1: not read from the env yet */
static _Atomic bool dump_requested;          /* SIGUSR1 arrived */
static pthread_once_t env_once = PTHREAD_ONCE_INIT;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static pthread_once_t dump_env_once = PTHREAD_ONCE_INIT;
static pthread_key_t thread_key;             /* the diag of this thread's loop */

/* Wakes the watchdog thread. Async-signal-safe. */
static void wake(void) {
    int fd = atomic_load_explicit(&wake_fd, memory_order_relaxed);
    uint64_t one = 1;
    if (fd >= 0) (void)!write(fd, &one, sizeof one);
}

/* ------------------------------------------------------------------ threshold */

static void read_env(void) {
    coil_time ns = COIL_MSEC(DEFAULT_THRESHOLD_MS);
    const char *s = getenv("COIL_STALL_MS");
    if (s && *s) {
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno || *end || v < 0 || v > MAX_THRESHOLD_MS)
            coil__log("COIL_STALL_MS=%s is not a number of milliseconds in 0..%d; using %d", s,
                      MAX_THRESHOLD_MS, DEFAULT_THRESHOLD_MS);
        else
            ns = COIL_MSEC(v);
    }
    coil_time unset = -1; /* a value set through the API wins */
    atomic_compare_exchange_strong(&threshold_ns, &unset, ns);
}

coil_time coil_watchdog_threshold(void) {
    pthread_once(&env_once, read_env);
    return atomic_load_explicit(&threshold_ns, memory_order_relaxed);
}

int coil_watchdog_set_threshold(coil_time ns) {
    if (ns < 0) return -EINVAL;
    atomic_store(&threshold_ns, ns);
    wake();
    return 0;
}

/* ------------------------------------------------------------------ the handler */

/* Copies what the report needs about the running task. The loop thread is
 * the only one that reads its tasks, and this runs on it. */
static void capture_task(capture_data *out, coil_loop *loop, uint64_t beat) {
    out->same_slice = atomic_load_explicit(&loop->beat, memory_order_relaxed) == beat;
    coil_task *t = loop->current;
    out->have_task = t != NULL;
    if (!t) return;
    out->task_id = t->id;
    for (size_t i = 0; i < sizeof out->name; i++) out->name[i] = t->name[i];
    out->name[sizeof out->name - 1] = '\0';
    out->spawn_file = t->spawn_file;
    out->spawn_line = t->spawn_line;
}

/* Unwinds this thread's stack, from here, into out->ips. The frames before
 * the interrupted one are the handler's; `first` indexes the interrupted one. */
__attribute__((noinline)) static void capture_frames(capture_data *out) {
    unw_context_t uc;
    unw_cursor_t cursor;
    out->nframes = 0;
    out->first = 2; /* this function and the handler, if no signal frame shows */
    if (unw_getcontext(&uc) != 0 || unw_init_local(&cursor, &uc) != 0) return;
    bool past_signal = false;
    int n = 0;
    do {
        unw_word_t ip;
        if (unw_get_reg(&cursor, UNW_REG_IP, &ip) < 0 || ip == 0) break;
        /* libunwind marks the interrupted frame itself as the signal frame
         * (the one the kernel's sigreturn trampoline returns into): that
         * frame, the innermost of the task's, is where the report starts. */
        if (!past_signal && unw_is_signal_frame(&cursor) > 0) {
            past_signal = true;
            out->first = n;
        }
        out->ips[n++] = (uintptr_t)ip;
    } while (n < MAX_FRAMES && unw_step(&cursor) > 0);
    out->nframes = n;
}

/* STACK_SIGNAL handler. Async-signal-safe: atomics, plain copies, and
 * libunwind's local unwinding, which is documented as signal-safe. */
static void on_stack_signal(int sig, siginfo_t *info, void *uctx) {
    (void)sig, (void)info, (void)uctx;
    int saved_errno = errno;
    coil_loop *loop = atomic_load_explicit(&cap.loop, memory_order_relaxed);
    int expect = CAP_REQUESTED;
    if (loop && loop == coil__tls_loop &&
        atomic_compare_exchange_strong_explicit(&cap.state, &expect, CAP_CAPTURING,
                                                memory_order_acq_rel, memory_order_relaxed)) {
        /* Re-read after the acquire: the request is now settled. */
        loop = atomic_load_explicit(&cap.loop, memory_order_relaxed);
        if (loop == coil__tls_loop) {
            capture_task(&cap.data, loop, atomic_load_explicit(&cap.beat, memory_order_relaxed));
            capture_frames(&cap.data);
        } else {
            cap.data.nframes = 0;
            cap.data.have_task = false;
            cap.data.same_slice = false;
        }
        atomic_store_explicit(&cap.state, CAP_DONE, memory_order_release);
    }
    errno = saved_errno;
}

/* ------------------------------------------------------------------ capture */

/* Waits for the handler to reach `want`, up to `ms`, looking every 100 us
 * (the handler usually answers within a few hundred). */
static bool wait_state(int want, int ms) {
    struct timespec step = {0, 100 * 1000};
    for (int i = 0; i <= ms * 10; i++) {
        if (atomic_load_explicit(&cap.state, memory_order_acquire) == want) return true;
        nanosleep(&step, NULL);
    }
    return false;
}

/* Asks the loop thread of `d` for its task and backtrace. Returns NULL and
 * sets *why when it did not answer. Watchdog lock held. */
static const capture_data *capture(coil__diag *d, const char **why) {
    if (!wd.handler_ok) {
        *why = "the stack signal is used by someone else";
        return NULL;
    }
    if (wd.capture_stuck) {
        *why = "an earlier backtrace never finished";
        return NULL;
    }
    atomic_store_explicit(&cap.loop, d->loop, memory_order_relaxed);
    atomic_store_explicit(&cap.beat, d->last_beat, memory_order_relaxed);
    atomic_store_explicit(&cap.state, CAP_REQUESTED, memory_order_release);
    if (pthread_kill(d->thread, STACK_SIGNAL) != 0) {
        atomic_store(&cap.state, CAP_IDLE);
        *why = "the loop thread cannot be signalled";
        return NULL;
    }
    if (!wait_state(CAP_DONE, CAPTURE_WAIT_MS)) {
        int expect = CAP_REQUESTED;
        if (atomic_compare_exchange_strong(&cap.state, &expect, CAP_IDLE)) {
            *why = "the loop thread did not take the stack signal in time";
            return NULL;
        }
        if (!wait_state(CAP_DONE, CAPTURE_FINISH_MS)) {
            wd.capture_stuck = true;
            *why = "the loop thread did not finish its backtrace";
            return NULL;
        }
    }
    atomic_store_explicit(&cap.loop, NULL, memory_order_relaxed);
    return &cap.data; /* valid until the state goes back to idle */
}

static void capture_release(void) { atomic_store_explicit(&cap.state, CAP_IDLE, memory_order_release); }

/* ------------------------------------------------------------------ reports */

static void report_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void report_line(const char *fmt, ...) {
    static const char prefix[] = "coil: ";
    size_t room = sizeof wd.report - wd.report_len;
    if (room < sizeof prefix + 2) return;
    char *p = wd.report + wd.report_len;
    memcpy(p, prefix, sizeof prefix - 1);
    size_t at = sizeof prefix - 1;
    /* Leave one byte for the newline (vsnprintf's NUL takes the last). */
    size_t cap_text = room - at - 1;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(p + at, cap_text, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    size_t text = (size_t)n < cap_text ? (size_t)n : cap_text - 1;
    p[at + text] = '\n';
    wd.report_len += at + text + 1;
}

/* Writes the report with one write(2), so it does not interleave. */
static void report_flush(void) {
    size_t off = 0;
    while (off < wd.report_len) {
        ssize_t n = write(STDERR_FILENO, wd.report + off, wd.report_len - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        off += (size_t)n;
    }
    wd.report_len = 0;
}

static double to_ms(coil_time ns) { return (double)ns / 1e6; }

/* Names the function containing `at` from the symbol tables (static
 * functions included). A stripped library has only its exported symbols,
 * and the nearest one below `at` may be another function: the name is kept
 * only if it starts where the unwind tables say this function starts. */
static bool symbol_name(uintptr_t at, char *name, size_t len, unw_word_t *off) {
    unw_accessors_t *acc = unw_get_accessors(unw_local_addr_space);
    if (!acc || !acc->get_proc_name) return false;
    int err = acc->get_proc_name(unw_local_addr_space, at, name, len, off, NULL);
    if (err != 0 && err != -UNW_ENOMEM) return false; /* ENOMEM: truncated */
    unw_proc_info_t pi;
    if (unw_get_proc_info_by_ip(unw_local_addr_space, at, &pi, NULL) == 0 &&
        pi.start_ip != at - *off)
        return false;
    return true;
}

/* Prints one frame as "name+off (module+off)". For callers, both offsets
 * point one byte before the return address, inside the call instruction:
 * that byte belongs to the caller even after a noreturn call, and
 * `addr2line -e MODULE OFF` then names the line of the call. */
static void format_frame(int index, uintptr_t ip, bool return_address) {
    uintptr_t at = return_address ? ip - 1 : ip;
    char name[160];
    unw_word_t off = 0;
    bool named = symbol_name(at, name, sizeof name, &off);
    Dl_info dl;
    memset(&dl, 0, sizeof dl);
    const char *module = "?";
    uintptr_t base = 0;
    if (dladdr((void *)at, &dl) && dl.dli_fname) {
        const char *slash = strrchr(dl.dli_fname, '/');
        module = slash ? slash + 1 : dl.dli_fname;
        base = (uintptr_t)dl.dli_fbase;
    }
    if (named)
        report_line("stall:     #%-2d %s+0x%llx (%s+0x%llx)", index, name,
                    (unsigned long long)off, module, (unsigned long long)(at - base));
    else
        report_line("stall:     #%-2d ?? (%s+0x%llx)", index, module,
                    (unsigned long long)(at - base));
}

/* CPU time the loop's thread has used, or -1. */
static coil_time thread_cpu(const coil__diag *d) {
    struct timespec ts;
    if (!d->have_cpu_clock || clock_gettime(d->cpu_clock, &ts) != 0) return -1;
    return COIL_SEC(ts.tv_sec) + ts.tv_nsec;
}

/* How much of the time since the stall was first seen the thread spent on
 * a CPU: tells CPU-bound work from a blocking call. */
static void report_cpu(const coil__diag *d, coil_time now, const char *prefix) {
    coil_time cpu = thread_cpu(d), was = d->stall.cpu_at_seen;
    if (cpu < 0 || was < 0 || now <= d->stall.seen_at) return;
    report_line("%s   its thread ran on a CPU for %.0f ms of the last %.0f ms", prefix,
                to_ms(cpu - was), to_ms(now - d->stall.seen_at));
}

static const char *task_label(const coil__stall *s, char *buf, size_t len) {
    if (s->name[0]) snprintf(buf, len, "'%s' (#%llu)", s->name, (unsigned long long)s->task_id);
    else snprintf(buf, len, "'task-%llu' (#%llu)", (unsigned long long)s->task_id,
                  (unsigned long long)s->task_id);
    return buf;
}

/* Watchdog lock held on entry and on return; released in between, while
 * `d` is pinned (forget waits for it). */
static void report_open(coil__diag *d, coil_time now, coil_time thr) {
    coil__stall *s = &d->stall;
    const char *why = NULL;
    uint64_t suppressed = wd.suppressed;
    wd.suppressed = 0;
    wd.capturing = d;
    pthread_mutex_unlock(&wd.lock);
    const capture_data *c = capture(d, &why);
    if (c && c->same_slice && c->have_task) {
        s->identified = true;
        s->task_id = c->task_id;
        memcpy(s->name, c->name, sizeof s->name);
        s->spawn_file = c->spawn_file;
        s->spawn_line = c->spawn_line;
    } else if (c) {
        why = c->same_slice ? "no task was running" : "the stall ended before the backtrace";
    }
    char label[80];
    if (s->identified) {
        report_line("stall: task %s has held loop %llu (thread %d) for %.0f ms; the threshold is "
                    "%.0f ms",
                    task_label(s, label, sizeof label), (unsigned long long)d->id, (int)d->tid,
                    to_ms(now - s->start), to_ms(thr));
        report_line("stall:   spawned at %s:%d", s->spawn_file ? s->spawn_file : "?",
                    s->spawn_line);
        report_cpu(d, now, "stall:");
        report_line("stall:   backtrace of thread %d, innermost first:", (int)d->tid);
        for (int i = c->first; i < c->nframes; i++)
            format_frame(i - c->first, c->ips[i], i > c->first);
    } else {
        report_line("stall: a task has held loop %llu (thread %d) for %.0f ms; the threshold is "
                    "%.0f ms",
                    (unsigned long long)d->id, (int)d->tid, to_ms(now - s->start), to_ms(thr));
        report_line("stall:   no task details or backtrace: %s", why ? why : "unknown");
        report_cpu(d, now, "stall:");
    }
    if (c) capture_release();
    if (suppressed)
        report_line("stall:   (%llu earlier stall reports were held back by the rate limit)",
                    (unsigned long long)suppressed);
    pthread_mutex_lock(&wd.lock);
    wd.capturing = NULL;
    pthread_cond_broadcast(&wd.captured);
    memcpy(wd.last_open, wd.report, wd.report_len);
    wd.last_open_len = wd.report_len;
    report_flush();
}

static void report_close(coil__diag *d, coil_time now, coil_time duration) {
    char label[80];
    if (d->stall.identified)
        report_line("stall over: task %s held loop %llu for %.0f ms in total",
                    task_label(&d->stall, label, sizeof label), (unsigned long long)d->id,
                    to_ms(duration));
    else
        report_line("stall over: loop %llu was held for %.0f ms in total",
                    (unsigned long long)d->id, to_ms(duration));
    report_cpu(d, now, "stall over:");
    report_flush();
}

/* Token bucket: REPORT_BURST at once, then one per REPORT_REFILL_S. */
static bool take_token(coil_time now) {
    if (!wd.refilled_at) wd.tokens = REPORT_BURST;
    else wd.tokens += (double)(now - wd.refilled_at) / (double)COIL_SEC(REPORT_REFILL_S);
    if (wd.tokens > REPORT_BURST) wd.tokens = REPORT_BURST;
    wd.refilled_at = now;
    if (wd.tokens < 1) {
        wd.suppressed++;
        return false;
    }
    wd.tokens -= 1;
    return true;
}

/* ------------------------------------------------------------------ sampling */

static void stall_open(coil__diag *d, coil_time now, coil_time start, coil_time thr) {
    memset(&d->stall, 0, sizeof d->stall);
    d->stall.open = true;
    d->stall.start = start;
    d->stall.seen_at = d->first_seen;
    d->stall.cpu_at_seen = d->cpu_first;
    atomic_fetch_add(&d->stalls, 1);
    atomic_store(&d->stall_since, start);
    if (!take_token(now)) return;
    d->stall.reported = true;
    report_open(d, now, thr);
}

static void stall_close(coil__diag *d, coil_time now) {
    coil_time duration = now - d->stall.start;
    if (duration > atomic_load(&d->longest_stall)) atomic_store(&d->longest_stall, duration);
    atomic_store(&d->stall_since, 0);
    if (d->stall.reported) report_close(d, now, duration);
    memset(&d->stall, 0, sizeof d->stall);
}

/* When the current slice began: loop->slice_start if the loop timed it and
 * it fits between the two samples around the start, else the first sample
 * that saw the slice (a lower bound for the stall's length). */
static coil_time slice_start(const coil__diag *d) {
    coil_time s = d->slice_start;
    if (s > 0 && s <= d->first_seen && s >= d->prev_sample) return s;
    return d->first_seen;
}

static void sample(coil__diag *d, coil_time now, coil_time thr) {
    coil_loop *loop = d->loop;
    const void *running = atomic_load_explicit(&loop->running, memory_order_relaxed);
    uint64_t beat = atomic_load_explicit(&loop->beat, memory_order_acquire);
    coil_time prev = d->sampled_at;
    d->sampled_at = now;
    if (!running || beat != d->last_beat || running != d->last_running) {
        /* A new slice, or none: whatever was open is over. */
        if (d->stall.open) stall_close(d, now);
        d->last_beat = beat;
        d->last_running = running;
        d->prev_sample = prev;
        d->first_seen = now;
        d->slice_start =
            running ? atomic_load_explicit(&loop->slice_start, memory_order_relaxed) : 0;
        d->cpu_first = running ? thread_cpu(d) : -1;
        return;
    }
    if (d->stall.open) return;
    coil_time start = slice_start(d);
    if (now - start >= thr) stall_open(d, now, start, thr);
}

static void sample_all(coil_time now) {
    coil_time thr = coil_watchdog_threshold();
    coil__list *it;
    coil__list_foreach(it, &wd.loops) {
        coil__diag *d = COIL_CONTAINER_OF(it, coil__diag, link);
        if (thr > 0) {
            sample(d, now, thr);
        } else {
            /* Turned off: close what is open and forget the samples. */
            if (d->stall.open) stall_close(d, now);
            d->last_running = NULL;
        }
    }
}

/* How long to sleep before the next pass, in ms for poll(); -1: until woken. */
static int next_timeout(void) {
    coil_time thr = coil_watchdog_threshold();
    if (thr == 0 || coil__list_empty(&wd.loops)) return -1;
    coil__list *it;
    coil__list_foreach(it, &wd.loops) {
        coil__diag *d = COIL_CONTAINER_OF(it, coil__diag, link);
        if (d->stall.open) return STALL_POLL_MS;
    }
    coil_time period = thr / 4;
    if (period < COIL_MSEC(1)) return 1;
    if (period > COIL_SEC(1)) return 1000;
    return (int)((period + COIL_MSEC(1) - 1) / COIL_MSEC(1));
}

/* ------------------------------------------------------------------ SIGUSR1 */

static void dump_on_loop(void *arg) {
    (void)arg;
    coil_dump_tasks(stderr);
}

static void on_sigusr1(int sig) {
    (void)sig;
    int saved_errno = errno;
    atomic_store(&dump_requested, true);
    wake();
    errno = saved_errno;
}

/* Asks every loop to dump its tasks on its own thread, where reading them
 * is safe. A stalled loop dumps when the stall ends. Watchdog lock held. */
static void request_dumps(void) {
    coil__list *it;
    coil__list_foreach(it, &wd.loops) {
        coil__diag *d = COIL_CONTAINER_OF(it, coil__diag, link);
        coil_call_soon_threadsafe(d->loop, dump_on_loop, NULL);
    }
}

static int start_locked(void);

int coil_dump_on_sigusr1(bool enable) {
    int err = 0;
    pthread_mutex_lock(&wd.lock);
    if (enable && !wd.usr1_on) {
        err = start_locked();
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_sigusr1;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        if (!err && sigaction(SIGUSR1, &sa, &wd.usr1_old) != 0) err = -errno;
        wd.usr1_on = err == 0;
    } else if (!enable && wd.usr1_on) {
        if (sigaction(SIGUSR1, &wd.usr1_old, NULL) != 0) err = -errno;
        else wd.usr1_on = false;
    }
    pthread_mutex_unlock(&wd.lock);
    return err;
}

/* ------------------------------------------------------------------ the thread */

static void wait_for_wakeup(int timeout_ms) {
    struct pollfd p = {.fd = atomic_load(&wake_fd), .events = POLLIN};
    if (poll(&p, 1, timeout_ms) > 0) {
        uint64_t n;
        (void)!read(p.fd, &n, sizeof n);
    }
}

/* Runs libunwind once here, so that its one-time setup does not happen in
 * a signal handler. */
static void warm_unwinder(void) {
    capture_data scratch;
    capture_frames(&scratch);
    if (scratch.nframes > 0) {
        char name[64];
        unw_word_t off;
        unw_accessors_t *acc = unw_get_accessors(unw_local_addr_space);
        if (acc && acc->get_proc_name)
            acc->get_proc_name(unw_local_addr_space, scratch.ips[0], name, sizeof name, &off,
                               NULL);
    }
}

static void *watchdog_main(void *arg) {
    (void)arg;
    warm_unwinder();
    pthread_mutex_lock(&wd.lock);
    for (;;) {
        int timeout = next_timeout();
        pthread_mutex_unlock(&wd.lock);
        wait_for_wakeup(timeout);
        pthread_mutex_lock(&wd.lock);
        if (atomic_exchange(&dump_requested, false)) request_dumps();
        sample_all(coil_now());
    }
    return NULL;
}

static void install_stack_signal(void) {
    struct sigaction old, sa;
    if (sigaction(STACK_SIGNAL, NULL, &old) != 0) return;
    if (!(old.sa_flags & SA_SIGINFO) && old.sa_handler != SIG_DFL) {
        coil__log("signal %d is in use: stall reports will have no backtrace", STACK_SIGNAL);
        return;
    }
    if ((old.sa_flags & SA_SIGINFO) && old.sa_sigaction != on_stack_signal) {
        coil__log("signal %d is in use: stall reports will have no backtrace", STACK_SIGNAL);
        return;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_stack_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    wd.handler_ok = sigaction(STACK_SIGNAL, &sa, NULL) == 0;
}

static void atfork_prepare(void) { pthread_mutex_lock(&wd.lock); }
static void atfork_parent(void) { pthread_mutex_unlock(&wd.lock); }

/* The child has only the forking thread: the watchdog thread and every
 * other thread's loop are gone. It starts again with the child's next loop
 * registration or SIGUSR1 request. */
static void atfork_child(void) {
    int fd = atomic_exchange(&wake_fd, -1);
    if (fd >= 0) close(fd);
    wd.started = false;
    coil__list *it = wd.loops.next;
    while (it != &wd.loops) {
        coil__diag *d = COIL_CONTAINER_OF(it, coil__diag, link);
        it = it->next;
        if (!pthread_equal(d->thread, pthread_self())) coil__list_remove(&d->link);
        memset(&d->stall, 0, sizeof d->stall);
        atomic_store(&d->stall_since, 0);
        d->last_running = NULL;
    }
    atomic_store(&cap.state, CAP_IDLE);
    pthread_mutex_unlock(&wd.lock);
}

/* Starts the thread if it is not running. Watchdog lock held. Returns 0 or
 * a negative errno (the loops then run unwatched). */
static int start_locked(void) {
    static bool once;
    if (wd.started) return 0;
    if (!once) {
        once = true;
        install_stack_signal();
        pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
    }
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0) return -errno;
    atomic_store(&wake_fd, fd);
    /* The thread takes no signals: SIGUSR1 and the rest go to the others. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t thread;
    int err = pthread_create(&thread, &attr, watchdog_main, NULL);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) {
        atomic_store(&wake_fd, -1);
        close(fd);
        coil__log("watchdog: cannot start its thread: %s", coil_strerror(-err));
        return -err;
    }
    wd.started = true;
    return 0;
}

/* ------------------------------------------------------------------ registry */

/* Gives the loop thread a signal stack if it has none, and lets it take
 * STACK_SIGNAL. Runs on the loop's thread. */
static void prepare_thread(coil__diag *d) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, STACK_SIGNAL);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    stack_t cur;
    if (sigaltstack(NULL, &cur) != 0 || !(cur.ss_flags & SS_DISABLE)) return;
    stack_t ss = {.ss_sp = malloc(ALTSTACK_SIZE), .ss_size = ALTSTACK_SIZE, .ss_flags = 0};
    if (!ss.ss_sp) return;
    if (sigaltstack(&ss, NULL) != 0) {
        free(ss.ss_sp);
        return;
    }
    d->altstack = ss.ss_sp;
}

/* Removes the signal stack we installed, if it is still this thread's. */
static void release_thread(coil__diag *d) {
    if (!d->altstack) return;
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && cur.ss_sp == d->altstack &&
        !(cur.ss_flags & SS_ONSTACK)) {
        stack_t off = {.ss_flags = SS_DISABLE};
        if (sigaltstack(&off, NULL) == 0) free(d->altstack);
    }
    d->altstack = NULL; /* otherwise still installed: leave it to the thread */
}

/* Takes `d` off the watchdog's list, closing its open stall first. */
static void forget(coil__diag *d) {
    pthread_mutex_lock(&wd.lock);
    /* Not while a report is made without the lock: it may be this loop's,
     * and stall_close below writes the same report buffer. */
    while (wd.capturing) pthread_cond_wait(&wd.captured, &wd.lock);
    if (d->stall.open) stall_close(d, coil_now());
    coil__list_remove(&d->link);
    pthread_mutex_unlock(&wd.lock);
}

/* A loop abandoned on this thread (its tasks could not finish, so it was
 * never closed) is dropped when the thread registers another or exits: it
 * will never run again. */
static void abandon(coil__diag *d) {
    forget(d);
    release_thread(d);
    d->loop->diag = NULL;
    coil__metrics_abandon(d);
}

static void on_thread_exit(void *p) { abandon(p); }

static void dump_from_env(void) {
    const char *s = getenv("COIL_DUMP_SIGNAL");
    if (s && strcmp(s, "1") == 0) coil_dump_on_sigusr1(true);
}
static void make_key(void) { pthread_key_create(&thread_key, on_thread_exit); }

size_t coil_watchdog_last_report(char *buf, size_t size) {
    if (!buf || size == 0) return 0;
    pthread_mutex_lock(&wd.lock);
    size_t n = wd.last_open_len < size - 1 ? wd.last_open_len : size - 1;
    memcpy(buf, wd.last_open, n);
    pthread_mutex_unlock(&wd.lock);
    buf[n] = '\0';
    return n;
}

typedef struct metrics_walk {
    coil_loop_info *out;
    size_t max, n;
    coil_time window;
} metrics_walk;

static void one_loop_metrics(coil__diag *d, void *arg) {
    metrics_walk *w = arg;
    if (w->n == w->max) return;
    coil_loop_info *info = &w->out[w->n];
    if (coil_loop_get_metrics(d->loop, w->window, &info->metrics) != 0) return;
    info->id = d->id;
    w->n++;
}

size_t coil_loops_get_metrics(coil_loop_info *out, size_t max, coil_time window) {
    metrics_walk w = {.out = out, .max = out ? max : 0, .window = window};
    coil__watchdog_each(one_loop_metrics, &w);
    return w.n;
}

size_t coil__watchdog_each(void (*fn)(coil__diag *d, void *arg), void *arg) {
    size_t n = 0;
    pthread_mutex_lock(&wd.lock);
    coil__list *it;
    coil__list_foreach(it, &wd.loops) {
        fn(COIL_CONTAINER_OF(it, coil__diag, link), arg);
        n++;
    }
    pthread_mutex_unlock(&wd.lock);
    return n;
}

int coil__watchdog_register(coil_loop *loop) {
    pthread_once(&key_once, make_key);
    pthread_once(&env_once, read_env);
    coil__diag *old = pthread_getspecific(thread_key);
    if (old) abandon(old);
    coil__diag *d = calloc(1, sizeof *d);
    if (!d) return -ENOMEM;
    d->loop = loop;
    d->thread = pthread_self();
    d->tid = gettid();
    d->have_cpu_clock = pthread_getcpuclockid(d->thread, &d->cpu_clock) == 0;
    coil__list_init(&d->link);
    pthread_mutex_init(&d->lag_lock, NULL);
    prepare_thread(d);
    coil__metrics_init(d);
    loop->diag = d;
    pthread_setspecific(thread_key, d);
    pthread_mutex_lock(&wd.lock);
    d->id = ++wd.next_id;
    coil__list_push_back(&wd.loops, &d->link);
    start_locked();
    pthread_mutex_unlock(&wd.lock);
    pthread_once(&dump_env_once, dump_from_env);
    wake();
    return 0;
}

void coil__watchdog_unregister(coil_loop *loop) {
    coil__diag *d = loop->diag;
    if (!d) return;
    forget(d);
    if (pthread_getspecific(thread_key) == d) pthread_setspecific(thread_key, NULL);
    release_thread(d);
    loop->diag = NULL;
    coil__metrics_close(d);
}
